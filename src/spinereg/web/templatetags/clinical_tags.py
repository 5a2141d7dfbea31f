"""``{% load clinical_tags %}``: ``user|can:"capability"`` (:func:`spinereg.web.permissions.can`), to show a
link only to the users its page lets in."""

from __future__ import annotations

from typing import Any

from django import template

from spinereg.web.permissions import can as _can

register = template.Library()


@register.filter  # type: ignore[untyped-decorator]
def can(user: Any, capability: str) -> bool:
    return _can(user, capability)

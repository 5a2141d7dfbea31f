"""Audit history: who is acting, and the one format of an audit entry's values.

Every create, update and delete of registry data goes through the write
service (:mod:`spinereg.registry._service`), which writes one audit entry per
change in the same transaction: who (:func:`actor`), when, what (entity and
key), why (``reason``, where one is required) and the values in the one format
of :func:`changes_json`.
"""

from __future__ import annotations

import contextlib
import contextvars
import getpass
import json
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

__all__ = ["REGISTRY_COLUMNS", "acting_as", "actor", "changes_json", "json_value", "model_row"]

_ACTOR: contextvars.ContextVar[str | None] = contextvars.ContextVar("spinereg_actor", default=None)


def actor() -> str:
    """Who is acting: set with :func:`acting_as`, else the operating-system user."""
    who = _ACTOR.get()
    if who:
        return who
    try:
        return f"os:{getpass.getuser()}"
    except (KeyError, OSError):  # pragma: no cover - no user database
        return "os:unknown"


@contextlib.contextmanager
def acting_as(who: str) -> Iterator[None]:
    """Attribute registry changes in this block to ``who`` (e.g. a web user)."""
    token = _ACTOR.set(who)
    try:
        yield
    finally:
        _ACTOR.reset(token)


def json_value(v: Any) -> Any:
    """A JSON-safe value: dates as ISO strings, NaN/NaT/NA as null."""
    if v is None:
        return None
    import pandas as pd

    try:
        if pd.isna(v):  # before the date test: NaT is a datetime
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(v, datetime):
        return v.date().isoformat()
    if isinstance(v, date):
        return v.isoformat()
    if hasattr(v, "item"):
        return v.item()
    return v


def model_row(instance: Any) -> dict[str, Any]:
    """The tidy columns of a model instance, JSON-safe (registry columns left out)."""
    return {f.column: json_value(getattr(instance, f.attname)) for f in instance._meta.concrete_fields
            if f.column not in REGISTRY_COLUMNS}


#: Columns of the entity tables that are the registry's own, not the tidy schema's.
REGISTRY_COLUMNS = ("dataset_id", "batch_id")


def changes_json(old: dict[str, Any] | None, new: dict[str, Any] | None) -> str:
    """The one format of an audit entry's values: ``{"old": ..., "new": ...}``, each
    side present when it exists (create: new; update: both, changed columns only;
    delete: old).  The create entries of an import hold ``{"snapshot": batch id}``
    in place of ``new``: the values are in the import's snapshot, once per batch and
    entity (see docs/audit.md); :func:`spinereg.registry.row_history` resolves them."""
    doc: dict[str, Any] = {}
    if old is not None:
        doc["old"] = old
    if new is not None:
        doc["new"] = new
    return json.dumps(doc, sort_keys=True, default=str)

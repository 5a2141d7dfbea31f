"""Audit history: every create, update and delete of registry data.

ORM saves and deletes (admin, the web app of a later issue, scripts) are
recorded by Django signals; imports write their audit rows in bulk in the
same transaction as the data (see ``_store.py``).  Each entry records who
(:func:`actor`), when, what (entity and key) and the values: ``{"new": {...}}``
for a create, ``{"old": {...}, "new": {...}}`` (changed columns only) for an
update and ``{"old": {...}}`` for a delete.
"""

from __future__ import annotations

import contextlib
import contextvars
import getpass
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

__all__ = ["acting_as", "actor", "connect_signals", "json_value"]

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
    """A JSON-safe value: dates as ISO strings, NaN/NA as null."""
    if v is None:
        return None
    if isinstance(v, (datetime, date)):
        return v.isoformat()[:10] if not isinstance(v, datetime) else v.date().isoformat()
    try:
        import pandas as pd

        if pd.isna(v):
            return None
        if isinstance(v, pd.Timestamp):
            return v.date().isoformat()
    except (TypeError, ValueError):
        pass
    if hasattr(v, "item"):
        return v.item()
    return v


def _row(instance: Any) -> dict[str, Any]:
    return {f.column: json_value(getattr(instance, f.attname)) for f in instance._meta.concrete_fields}


def _key(instance: Any) -> str:
    from spinereg.data import entity

    ent = entity(instance._meta.db_table.removeprefix("spinereg_"))
    row = _row(instance)
    return "/".join(str(row[k]) for k in ent.key)


def connect_signals() -> None:
    """Record ORM saves and deletes of the entity models in the audit table."""
    from django.db.models.signals import post_delete, post_save, pre_save

    from spinereg.registry.models import ENTITY_MODELS, AuditEntry

    def before(sender: Any, instance: Any, raw: bool = False, using: str = "default", **kw: Any) -> None:
        old = None
        if instance.pk is not None:
            old = sender.objects.using(using).filter(pk=instance.pk).first()
        instance._spinereg_old = _row(old) if old is not None else None

    def after(sender: Any, instance: Any, created: bool, using: str = "default", **kw: Any) -> None:
        new = _row(instance)
        old = getattr(instance, "_spinereg_old", None)
        if created or old is None:
            changes: dict[str, Any] = {"new": new}
            action = "create"
        else:
            diff = [k for k, v in new.items() if old.get(k) != v]
            if not diff:
                return
            changes = {"old": {k: old.get(k) for k in diff}, "new": {k: new[k] for k in diff}}
            action = "update"
        AuditEntry.objects.using(using).create(
            at=datetime.now(UTC), actor=actor(), action=action,
            entity=sender._meta.db_table.removeprefix("spinereg_"), record_key=_key(instance),
            changes=json.dumps(changes, sort_keys=True, default=str))

    def deleted(sender: Any, instance: Any, using: str = "default", **kw: Any) -> None:
        old = _row(instance)
        AuditEntry.objects.using(using).create(
            at=datetime.now(UTC), actor=actor(), action="delete",
            entity=sender._meta.db_table.removeprefix("spinereg_"), record_key=_key(instance),
            changes=json.dumps({"old": old}, sort_keys=True, default=str))

    for model in ENTITY_MODELS.values():
        pre_save.connect(before, sender=model, dispatch_uid=f"spinereg-pre-{model.__name__}", weak=False)
        post_save.connect(after, sender=model, dispatch_uid=f"spinereg-post-{model.__name__}", weak=False)
        post_delete.connect(deleted, sender=model, dispatch_uid=f"spinereg-del-{model.__name__}", weak=False)

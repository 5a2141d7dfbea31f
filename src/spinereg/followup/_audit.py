"""Audited writes of the follow-up tables: one entry in the registry's audit trail per change.

The follow-up tables are not the registry's data tables, so :class:`spinereg.registry.RegistryWriter`
does not write them; each change here appends an :class:`spinereg.registry.models.AuditEntry` in the
same transaction, like the write service does: who (:func:`spinereg.registry.actor`), when, action,
entity (``invitations``, ``delivery_attempts``, ``contacts``, ``consents``), record key and
``{"old": ..., "new": ...}`` of the changed fields.  Entries never hold personal data: no e-mail
address (only whether there is one), no token and no token hash.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from spinereg.registry import actor

__all__ = ["audit", "audit_many", "audited", "entry"]


@contextlib.contextmanager
def audited(alias: str) -> Iterator[None]:
    """One transaction in which the registry's audit trail may be appended to."""
    # the registry's guard refuses audit entries outside its write service's transaction
    from spinereg.registry import service_transaction

    with service_transaction(alias):
        yield


def entry(action: str, entity: str, key: object, old: dict[str, Any] | None, new: dict[str, Any] | None, *,
          who: str, at: datetime | None = None) -> Any:
    """One unsaved audit entry (for :func:`audit_many`); the same content as :func:`audit` writes."""
    from spinereg.registry.models import AuditEntry

    doc: dict[str, Any] = {}
    if old is not None:
        doc["old"] = old
    if new is not None:
        doc["new"] = new
    return AuditEntry(at=at or datetime.now(UTC), actor=who, action=action, entity=entity, record_key=str(key),
                      changes=json.dumps(doc, sort_keys=True, default=str), reason="")


def audit(alias: str, action: str, entity: str, key: object, old: dict[str, Any] | None,
          new: dict[str, Any] | None, *, who: str | None = None) -> None:
    """Append one audit entry (inside :func:`audited`)."""
    entry(action, entity, key, old, new, who=who or actor()).save(using=alias, force_insert=True)


def audit_many(alias: str, entries: list[Any]) -> None:
    """Append many entries of :func:`entry` at once, in their order (inside :func:`audited`)."""
    from spinereg.registry.models import AuditEntry

    if entries:
        AuditEntry.objects.using(alias).bulk_create(entries, batch_size=500)

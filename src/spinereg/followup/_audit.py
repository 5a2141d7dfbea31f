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
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from spinereg.registry import actor

__all__ = ["audit", "audit_many", "audited", "entry", "insert_rows"]


@contextlib.contextmanager
def audited(alias: str) -> Iterator[None]:
    """One transaction in which the registry's audit trail may be appended to."""
    # the registry's guard refuses audit entries outside its write service's transaction
    from spinereg.registry import service_transaction

    with service_transaction(alias):
        yield


def entry(action: str, entity: str, key: object, old: dict[str, Any] | None, new: dict[str, Any] | None, *,
          who: str, at: datetime) -> tuple[datetime, str, str, str, str, str]:
    """One audit entry for :func:`audit_many`: the same content as :func:`audit` writes."""
    doc: dict[str, Any] = {}
    if old is not None:
        doc["old"] = old
    if new is not None:
        doc["new"] = new
    return at, who, action, entity, str(key), json.dumps(doc, sort_keys=True, default=str)


def audit(alias: str, action: str, entity: str, key: object, old: dict[str, Any] | None,
          new: dict[str, Any] | None, *, who: str | None = None) -> None:
    """Append one audit entry (inside :func:`audited`)."""
    from spinereg.registry.models import AuditEntry

    at, by, action, entity, record_key, changes = entry(action, entity, key, old, new, who=who or actor(),
                                                        at=datetime.now(UTC))
    AuditEntry.objects.using(alias).create(at=at, actor=by, action=action, entity=entity, record_key=record_key,
                                           changes=changes, reason="")


def audit_many(alias: str, entries: Sequence[tuple[datetime, str, str, str, str, str]]) -> None:
    """Append the entries of :func:`entry`, in their order (inside :func:`audited`): one multi-row INSERT
    per 500 entries, the columns :func:`audit` writes (a twentieth of the ORM's time per entry)."""
    from django.db import connections

    adapt = connections[alias].ops.adapt_datetimefield_value
    when: dict[datetime, Any] = {}
    rows = []
    for at, *rest in entries:
        if at not in when:
            when[at] = adapt(at)
        rows.append((when[at], *rest, ""))
    insert_rows(alias, "spinereg_audit", ("at", "actor", "action", "entity", "record_key", "changes", "reason"), rows)


def insert_rows(alias: str, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
                returning: bool = False) -> list[int]:
    """Insert ``rows`` (values ready for the database) with multi-row INSERTs of 500 rows; with
    ``returning``, the new ids in the order of ``rows`` (``RETURNING id``, as Django's own bulk insert
    does on SQLite >= 3.35 and PostgreSQL)."""
    from django.db import connections

    names = ", ".join(f'"{c}"' for c in columns)
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    ids: list[int] = []
    with connections[alias].cursor() as cursor:
        for i in range(0, len(rows), 500):
            part = rows[i:i + 500]
            cursor.execute(f'INSERT INTO "{table}" ({names}) VALUES ' + ", ".join([one] * len(part))
                           + (' RETURNING "id"' if returning else ""), [v for row in part for v in row])
            if returning:
                ids.extend(int(r[0]) for r in cursor.fetchall())
    return ids

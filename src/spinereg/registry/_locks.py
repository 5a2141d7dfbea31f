"""Record locking with an e-signature, kept in the audit trail itself.

A completed record is locked by a signer (``RegistryWriter.lock``): one audit
entry with action ``lock`` holding who signed, the meaning of the signature
(e.g. "authored", "reviewed") and when.  ``unlock`` (a reason required) appends
an entry with action ``unlock``.  A record is locked while its newest
``lock``/``unlock`` entry is a ``lock``: the state lives in the append-only
trail, so it cannot be changed without leaving a trace, and needs no table of
its own (the entries are found through the index on ``record_key``).

What a lock covers: the record itself, and, for an operation, its treated
levels (the operation form holds them): a change to a covered record (update,
delete, and a new treated level of a locked operation) needs a reason, and the
refusal names the lock.  Imaging findings, complications and questionnaires
are forms of their own, each locked on its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from spinereg._errors import SpineregError

__all__ = ["LockInfo", "RecordLockedError", "covering_locks", "lock_state", "record_locks"]


@dataclass(frozen=True)
class LockInfo:
    """A record's lock: the e-signature that locked it.

    Attributes
    ----------
    entity, key : str
        The locked record.
    signed_by : str
        The signer (the actor of the ``lock`` entry).
    signature_meaning : str
        What the signature means ("authored", "reviewed", "approved" ...).
    at : datetime
        When (UTC).
    audit_id : int
        The ``lock`` audit entry.
    """

    entity: str
    key: str
    signed_by: str
    signature_meaning: str
    at: datetime
    audit_id: int

    def describe(self) -> str:
        return (f"{self.entity} {self.key!r} is locked (signed by {self.signed_by} on "
                f"{self.at:%Y-%m-%d %H:%M} UTC, meaning {self.signature_meaning!r})")


class RecordLockedError(SpineregError):
    """A change to a locked record without a reason; :attr:`lock` is the lock."""

    def __init__(self, what: str, lock: LockInfo) -> None:
        self.lock = lock
        super().__init__(f"{what}: {lock.describe()}; a change to a locked record requires a reason "
                         "(nothing was written)")


def lock_state(alias: str, entity_name: str, key: str) -> LockInfo | None:
    """The lock of one record, or None when it is not locked."""
    from django.db import connections

    from spinereg.registry.models import AuditEntry

    conn = connections[alias]
    with conn.cursor() as cur:  # plain SQL first: every single-record write asks, and almost no record is locked
        cur.execute(f"SELECT action FROM {conn.ops.quote_name(AuditEntry._meta.db_table)} "
                    "WHERE record_key = %s AND entity = %s AND action IN ('lock', 'unlock') ORDER BY id DESC LIMIT 1",
                    [key, entity_name])
        got = cur.fetchone()
    if got is None or got[0] != "lock":
        return None
    last = (AuditEntry.objects.using(alias).filter(record_key=key, entity=entity_name, action__in=("lock", "unlock"))
            .order_by("-id").first())
    if last is None or last.action != "lock":
        return None
    meaning = json.loads(last.changes).get("new", {}).get("signature_meaning", "")
    return LockInfo(entity_name, key, str(last.actor), str(meaning), last.at, int(last.pk))


def covering_locks(alias: str, entity_name: str, key: str, row: dict[str, Any] | None = None) -> list[LockInfo]:
    """The locks that cover a record: its own, and for a treated level its operation's."""
    out = []
    own = lock_state(alias, entity_name, key)
    if own is not None:
        out.append(own)
    if entity_name == "treated_levels":
        op = (row or {}).get("operation_id") or key.split("/", 1)[0]
        parent = lock_state(alias, "operations", str(op))
        if parent is not None:
            out.append(parent)
    return out


def record_locks(alias: str, *, entity: str | None = None) -> pd.DataFrame:
    """Every record locked now: entity, key, signed_by, signature_meaning, at, audit_id.

    Reads the ``lock``/``unlock`` entries of the audit trail (a scan of the trail)."""
    from spinereg.registry.models import AuditEntry

    qs = AuditEntry.objects.using(alias).filter(action__in=("lock", "unlock"))
    if entity is not None:
        qs = qs.filter(entity=entity)
    latest: dict[tuple[str, str], Any] = {}
    for e in qs.order_by("id"):
        latest[(e.entity, e.record_key)] = e
    rows = [{"entity": e.entity, "key": e.record_key, "signed_by": e.actor,
             "signature_meaning": json.loads(e.changes).get("new", {}).get("signature_meaning", ""),
             "at": e.at, "audit_id": e.pk} for e in latest.values() if e.action == "lock"]
    cols = ["entity", "key", "signed_by", "signature_meaning", "at", "audit_id"]
    return pd.DataFrame(rows, columns=cols).sort_values(["entity", "key"], ignore_index=True)

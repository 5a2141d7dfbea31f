"""The audit trail read back: a row's history with its values, filtered audit entries,
and what the registry holds (datasets, write batches, counts, key fingerprint)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from spinereg.data import Entity
from spinereg.registry._audit import json_value
from spinereg.registry._snapshot import read_snapshot

__all__ = ["HistoryEntry", "row_history"]


@dataclass(frozen=True)
class HistoryEntry:
    """One change of one row, with its values: ``new`` for a create (every column) and an
    update (changed columns), ``old`` for an update (changed columns) and a delete (every
    column).  ``batch_id`` is the import that made it (None for a single edit)."""

    id: int
    at: datetime
    actor: str
    action: str
    batch_id: int | None
    old: dict[str, Any] | None
    new: dict[str, Any] | None

def _snapshot_row(alias: str, batch_id: int, ent: Entity, key: str,
                  cache: dict[tuple[int, str], dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """The values of row ``key`` in the snapshot of import ``batch_id``."""
    from spinereg.registry.models import ImportSnapshot

    rows = cache.get((batch_id, ent.name))
    if rows is None:
        snap = ImportSnapshot.objects.using(alias).get(batch_id=batch_id, entity=ent.name)
        table = read_snapshot(snap.data)
        if table.num_rows != snap.n_rows:  # pragma: no cover - a damaged snapshot
            raise RuntimeError(f"snapshot of import {batch_id}, {ent.name}: {table.num_rows} rows, not {snap.n_rows}")
        keys = pc.binary_join_element_wise(*(pc.cast(table[k], pa.string()) for k in ent.key), "/") \
            if len(ent.key) > 1 else pc.cast(table[ent.key[0]], pa.string())
        wanted = pc.equal(keys, key)
        picked = table.filter(wanted).to_pylist()
        if len(picked) != 1:  # pragma: no cover - a create entry without its row
            raise RuntimeError(f"snapshot of import {batch_id}, {ent.name}: {len(picked)} rows with key {key!r}")
        cache[(batch_id, ent.name)] = rows = {key: {c: json_value(v) for c, v in picked[0].items()}}
    return rows[key]

def row_history(alias: str, entity_name: str, key: str) -> list[HistoryEntry]:
    """Every change of one row, oldest first, with its values.

    The ``create`` entries written by an import hold no values themselves
    (``{"snapshot": batch id}``); their values are read from the import's snapshot
    (``spinereg_import_snapshot``), so each entry here carries its values whichever
    way the change was made.  ``key`` is the row's key as in ``record_key``
    (composite keys joined by ``/``).
    """
    from spinereg.data import entity
    from spinereg.registry.models import AuditEntry

    ent = entity(entity_name)
    cache: dict[tuple[int, str], dict[str, dict[str, Any]]] = {}
    out = []
    for a in AuditEntry.objects.using(alias).filter(entity=ent.name, record_key=key).order_by("id"):
        changes = json.loads(a.changes)
        new = changes.get("new")
        if "snapshot" in changes:
            new = _snapshot_row(alias, int(changes["snapshot"]), ent, key, cache)
        out.append(HistoryEntry(int(a.pk), a.at, a.actor, a.action, a.batch_id, changes.get("old"), new))
    return out

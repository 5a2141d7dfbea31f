"""The audit trail read back: a row's history with its values, filtered audit entries,
and what the registry holds (datasets, write batches, counts, key fingerprint)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from spinereg.data import Entity, entities
from spinereg.data import entity as schema_entity
from spinereg.registry._audit import json_value
from spinereg.registry._snapshot import read_snapshot

__all__ = ["HistoryEntry", "RegistryInfo", "audit_entries", "registry_info", "row_history"]


@dataclass(frozen=True)
class HistoryEntry:
    """One change of one row, with its values: ``new`` for a create (every column) and an
    update (changed columns), ``old`` for an update (changed columns) and a delete (every
    column).  ``batch_id`` is the write batch that made it (an import, or one edit)."""

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
    from spinereg.registry.models import AuditEntry

    ent = schema_entity(entity_name)
    cache: dict[tuple[int, str], dict[str, dict[str, Any]]] = {}
    out = []
    for a in AuditEntry.objects.using(alias).filter(entity=ent.name, record_key=key).order_by("id"):
        changes = json.loads(a.changes)
        new = changes.get("new")
        if "snapshot" in changes:
            new = _snapshot_row(alias, int(changes["snapshot"]), ent, key, cache)
        out.append(HistoryEntry(int(a.pk), a.at, a.actor, a.action, a.batch_id, changes.get("old"), new))
    return out


def audit_entries(alias: str, *, entity: str | None = None, key: str | None = None, actor: str | None = None,
                  since: date | None = None, until: date | None = None, batch: int | None = None,
                  limit: int | None = None) -> pd.DataFrame:
    """Audit entries, oldest first, filtered: one row per entry with ``id``, ``at`` (UTC),
    ``actor``, ``action``, ``entity``, ``key``, ``batch``, ``reason``, ``old`` and ``new``
    (JSON text; an import's create entries resolved from its snapshot when ``key`` is
    given).  ``since`` and ``until`` are dates (UTC), both inclusive."""
    from datetime import UTC, time, timedelta

    from spinereg.registry.models import AuditEntry

    qs = AuditEntry.objects.using(alias).order_by("id")
    if entity is not None:
        qs = qs.filter(entity=entity)
    if key is not None:
        qs = qs.filter(record_key=key)
    if actor is not None:
        qs = qs.filter(actor=actor)
    if since is not None:
        qs = qs.filter(at__gte=datetime.combine(since, time(), tzinfo=UTC))
    if until is not None:
        qs = qs.filter(at__lt=datetime.combine(until + timedelta(days=1), time(), tzinfo=UTC))
    if batch is not None:
        qs = qs.filter(batch_id=batch)
    if limit is not None:
        qs = qs[:limit]
    cache: dict[tuple[int, str], dict[str, dict[str, Any]]] = {}
    rows = []
    for a in qs:
        changes = json.loads(a.changes)
        new = changes.get("new")
        if "snapshot" in changes and key is not None:
            new = _snapshot_row(alias, int(changes["snapshot"]), schema_entity(a.entity), a.record_key, cache)
        elif "snapshot" in changes:
            new = {"snapshot": changes["snapshot"]}
        rows.append({"id": int(a.pk), "at": a.at.isoformat(timespec="seconds"), "actor": a.actor,
                     "action": a.action, "entity": a.entity, "key": a.record_key, "batch": a.batch_id,
                     "reason": a.reason,
                     "old": None if changes.get("old") is None else json.dumps(changes["old"], sort_keys=True),
                     "new": None if new is None else json.dumps(new, sort_keys=True)})
    cols = ["id", "at", "actor", "action", "entity", "key", "batch", "reason", "old", "new"]
    return pd.DataFrame(rows, columns=cols)


@dataclass(frozen=True)
class RegistryInfo:
    """What a registry holds: ``datasets`` (one row each, with rows per entity),
    ``batches`` (every write batch), ``counts`` (rows per entity, and audit entries) and
    the site key's fingerprint (None before the first import with a key)."""

    datasets: pd.DataFrame
    batches: pd.DataFrame
    counts: dict[str, int]
    key_fingerprint: str | None


def registry_info(alias: str) -> RegistryInfo:
    """See :class:`RegistryInfo`."""
    from django.db import connections

    from spinereg.registry._read import registry_counts
    from spinereg.registry._service import stored_fingerprint
    from spinereg.registry.models import Dataset, ImportBatch

    per: dict[int, dict[str, int]] = {}
    with connections[alias].cursor() as cursor:
        for ent in entities():
            cursor.execute(f"SELECT dataset_id, COUNT(*) FROM spinereg_{ent.name} GROUP BY dataset_id")
            for ds, n in cursor.fetchall():
                per.setdefault(int(ds or 0), {})[ent.name] = int(n)
    drows = []
    for d in Dataset.objects.using(alias).order_by("id"):
        drows.append({"id": int(d.pk), "name": d.name, "code": d.code, "synthetic": bool(d.synthetic),
                      "source": d.source, "extract_date": d.extract_date.isoformat() if d.extract_date else None,
                      **{e.name: per.get(int(d.pk), {}).get(e.name, 0) for e in entities()}})
    dcols = ["id", "name", "code", "synthetic", "source", "extract_date", *(e.name for e in entities())]
    brows = [{"id": int(b.pk), "at": b.at.isoformat(timespec="seconds"), "actor": b.actor, "kind": b.kind,
              "dataset": b.dataset_id, "mapping": b.mapping, "files": b.files.replace("\n", "; "),
              "created": b.n_created, "updated": b.n_updated, "unchanged": b.n_unchanged}
             for b in ImportBatch.objects.using(alias).order_by("id")]
    bcols = ["id", "at", "actor", "kind", "dataset", "mapping", "files", "created", "updated", "unchanged"]
    return RegistryInfo(pd.DataFrame(drows, columns=dcols), pd.DataFrame(brows, columns=bcols),
                        registry_counts(alias), stored_fingerprint(alias))

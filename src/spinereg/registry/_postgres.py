"""The PostgreSQL writer of the bulk import: ``COPY`` per batch, each batch followed by
its audit entries, built by the database from the batch's rows."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from spinereg.data import Entity
from spinereg.registry._audit import REGISTRY_COLUMNS
from spinereg.registry._snapshot import snapshot_changes
from spinereg.registry._sql import BATCH, Progress, RawCursor, column_values, key_sql, table_name

__all__ = ["insert_postgresql"]


def insert_postgresql(cursor: RawCursor, ent: Entity, ins: pd.DataFrame, stamp: Any, who: str,
                       marks: tuple[int, int], progress: Progress | None, spent: dict[str, float]) -> None:
    """Insert new rows (PostgreSQL ``COPY``), batch by batch, each batch followed by its
    audit entries, built by the database from the batch's rows (selected by key)."""
    table = table_name(ent)
    total = len(ins)
    cols = [np.asarray(v, dtype=object) for v in column_values(ins, ent, False)]
    cols += [np.full(total, v, dtype=object) for v in marks]
    batch_id = marks[1]
    keys = [ins[k].astype(str).to_numpy(dtype=object) for k in ent.key]
    if len(ent.key) == 1:
        where = f"{ent.key[0]} = ANY(%s)"
    else:
        where = f"({', '.join(ent.key)}) IN (SELECT * FROM unnest({', '.join(['%s::text[]'] * len(ent.key))}))"
    audit = ("INSERT INTO spinereg_audit (at, actor, action, entity, record_key, changes, batch_id, reason) "
             f"SELECT %s, %s, 'create', '{ent.name}', {key_sql(ent)}, %s, %s, '' "
             f"FROM (SELECT {', '.join(ent.key)} FROM {table} WHERE {where}) AS r")
    for i in range(0, total, BATCH):
        started = time.perf_counter()
        rows = list(zip(*(c[i:i + BATCH] for c in cols), strict=True))
        cursor.copy_rows(table, [*ent.column_names, *REGISTRY_COLUMNS], rows)
        inserted = time.perf_counter()
        cursor.execute(audit, (stamp, who, snapshot_changes(batch_id), batch_id,
                               *(list(k[i:i + BATCH]) for k in keys)))
        if cursor.rowcount != len(rows):  # pragma: no cover - a row without its audit entry
            raise RuntimeError(f"audit of {ent.name}: {cursor.rowcount} entries for {len(rows)} new rows")
        spent["insert"] += inserted - started
        spent["audit"] += time.perf_counter() - inserted
        if progress is not None:
            progress(ent.name, min(total, i + BATCH), total)

"""The SQLite writer of the bulk import: multi-row INSERTs prepared in a helper thread,
audit entries built by SQLite from the stored rows, foreign keys checked in bulk."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from spinereg.data import Entity
from spinereg.registry._audit import REGISTRY_COLUMNS
from spinereg.registry._snapshot import snapshot_changes
from spinereg.registry._sql import BATCH, Progress, RawCursor, arrow_strings, iso_dates, key_sql, table_name

__all__ = ["check_references", "foreign_keys_off", "insert_sqlite", "max_rowid", "sqlite_columns"]

# SQLite stores a bound NaN as NULL.  Binding Python's None goes through the sqlite3
# module's adaptation lookup (~20x slower than binding a float), so SQLite rows carry
# this one NaN object for every missing value.
_SQLITE_NULL = float("nan")

def sqlite_columns(df: pd.DataFrame, ent: Entity) -> list[npt.NDArray[np.object_]]:
    """Per column, the values to bind on SQLite, built column-wise without per-value Python.

    Missing values are :data:`_SQLITE_NULL`; integers and booleans are Python ints
    (small ones are shared objects), dates ISO strings, and repeated strings
    (categories, dates) share one object each.
    """
    cols: list[npt.NDArray[np.object_]] = []
    for c in ent.columns:
        s = df[c.name]
        miss = s.isna().to_numpy(dtype=bool)
        vals: npt.NDArray[np.object_]
        if (c.type == "int" and pd.api.types.is_integer_dtype(s.dtype)) or \
                (c.type == "bool" and pd.api.types.is_bool_dtype(s.dtype)):
            vals = s.astype("Int64").to_numpy(dtype=np.int64, na_value=0).astype(object)
        elif c.type in ("int", "bool"):  # not in the tidy dtype: values as they are
            vals = np.array(pa.array(s, from_pandas=True).to_pylist(), dtype=object)
        elif c.type == "float":
            vals = s.to_numpy(dtype=np.float64, na_value=np.nan).astype(object)
        elif c.type == "category" and isinstance(s.dtype, pd.CategoricalDtype):
            cats = np.array([*map(str, s.cat.categories), _SQLITE_NULL], dtype=object)
            vals = cats[s.cat.codes.to_numpy()]
        elif c.type == "date":
            enc = pc.dictionary_encode(iso_dates(s))
            cats = np.array([*enc.dictionary.to_pylist(), _SQLITE_NULL], dtype=object)
            vals = cats[pc.fill_null(enc.indices, len(cats) - 1).to_numpy()]
        else:
            vals = arrow_strings(s).to_numpy(zero_copy_only=False)
        if miss.any():
            vals[miss] = _SQLITE_NULL
        cols.append(vals)
    return cols

@contextlib.contextmanager
def foreign_keys_off(alias: str, wanted: bool) -> Iterator[bool]:
    """SQLite: foreign keys not checked row by row while the rows go in (Django's
    ``constraint_checks_disabled``, as ``loaddata`` does).  Yields whether that took
    effect (not inside an outer transaction, where SQLite keeps checking each row);
    if so, the caller checks the rows it wrote (:func:`check_references`) before it
    commits."""
    from django.db import connections

    conn = connections[alias]
    off = wanted and bool(conn.disable_constraint_checking())
    try:
        yield off
    finally:
        if off:
            conn.enable_constraint_checking()

def check_references(cursor: RawCursor, ent: Entity, after: int, updated: Sequence[Any]) -> None:
    """Every foreign key of the rows of ``ent`` written by this import refers to an
    existing row (SQLite); else IntegrityError, which rolls the import back.

    The rows written are those inserted (rowid above ``after``, the largest before)
    and those updated (first key column in ``updated``).  One statement per foreign
    key and kind, one parent-index lookup per row.
    """
    from django.db import IntegrityError

    table = table_name(ent)
    cursor.execute(f"SELECT \"table\", \"from\", \"to\" FROM pragma_foreign_key_list('{table}')")
    for parent, col, parent_col in cursor.fetchall():
        missing = (f"c.{col} IS NOT NULL AND NOT EXISTS "
                   f"(SELECT 1 FROM {parent} AS p WHERE p.{parent_col} = c.{col})")
        found: list[Any] = []
        cursor.execute(f"SELECT c.{col} FROM {table} AS c WHERE c.rowid > %s AND {missing} LIMIT 1", (after,))
        found += cursor.fetchall()
        for i in range(0, len(updated), 500):
            part = list(updated[i:i + 500])
            cursor.execute(f"SELECT c.{col} FROM {table} AS c WHERE c.{ent.key[0]} IN "
                           f"({', '.join(['%s'] * len(part))}) AND {missing} LIMIT 1", part)
            found += cursor.fetchall()
        if found:
            raise IntegrityError(f"FOREIGN KEY constraint failed: {ent.name}.{col} refers to a row missing "
                                 f"from {parent}")

def max_rowid(cursor: RawCursor, table: str) -> int:
    """The largest rowid of ``table`` (SQLite; 0 when empty): new rows get the ones above."""
    cursor.execute(f"SELECT max(rowid) FROM {table}")
    return int(cursor.fetchone()[0] or 0)

_ROWS_PER_INSERT = 1000  # rows per SQLite INSERT statement (multi-row VALUES; fewer statements, fewer GIL handoffs)

@dataclass(frozen=True)
class _Batch:
    """Parameters for one batch of new rows of one entity (SQLite)."""

    ent: Entity
    end: int  # rows of the entity written after this batch
    total: int
    multi: list[list[Any]]  # parameters of full multi-row statements
    single: list[list[Any]]  # parameters of the remaining rows, one row each

class _SqliteRows:
    """The new rows of one entity as SQLite ``INSERT`` parameters, one batch at a time.

    The column values (:func:`sqlite_columns`) are built on the first batch and
    dropped after the last one."""

    def __init__(self, ent: Entity, ins: pd.DataFrame, per_statement: int, marks: tuple[int, int]) -> None:
        self.ent = ent
        self.ins = ins
        self.per_statement = per_statement
        self.marks = marks  # the registry columns' values: dataset id, batch id
        self.cols: list[npt.NDArray[np.object_]] | None = None

    def batches(self) -> list[Callable[[], _Batch]]:
        return [functools.partial(self.batch, i) for i in range(0, len(self.ins), BATCH)]

    def batch(self, start: int) -> _Batch:
        if self.cols is None:
            self.cols = sqlite_columns(self.ins, self.ent)
        n = min(BATCH, len(self.ins) - start)
        k = len(self.cols) + len(self.marks)
        grid = np.empty((n, k), dtype=object)
        for j, c in enumerate(self.cols):
            grid[:, j] = c[start:start + n]
        for j, v in enumerate(self.marks, start=len(self.cols)):
            grid[:, j] = v
        flat = grid.ravel().tolist()  # row after row
        full = n // self.per_statement * self.per_statement
        step = self.per_statement * k
        if start + n >= len(self.ins):
            self.cols = None
        return _Batch(self.ent, start + n, len(self.ins), [flat[p:p + step] for p in range(0, full * k, step)],
                      [flat[p:p + k] for p in range(full * k, n * k, k)])

def insert_sqlite(cursor: RawCursor, new_rows: Sequence[tuple[Entity, pd.DataFrame]], stamp: Any, who: str,
                   marks: tuple[int, int], progress: Progress | None, max_variables: int,
                   spent: dict[str, float], deferred: list[Callable[[], None]]) -> None:
    """Insert new rows (SQLite), batch by batch; each batch's audit entries are
    appended to ``deferred``, for the caller to write (all before the commit).

    Rows go in by ``executemany`` of multi-row ``INSERT`` statements, while a
    helper thread prepares the next batch's parameters.  The audit entries
    (``create``) are built by SQLite from the rows stored, in one ``INSERT ...
    SELECT`` per batch: no per-row Python.  The batch's rows are the ``n`` rowids
    after the largest before the batch (the transaction holds the write lock, and
    new rowids follow the largest); the number of entries written is checked
    against ``n``.
    """
    if not new_rows:
        return
    width = max(len(e.columns) for e, _ in new_rows) + len(REGISTRY_COLUMNS)
    per_statement = max(1, min(_ROWS_PER_INSERT, max_variables // width))
    jobs = [job for ent, ins in new_rows for job in _SqliteRows(ent, ins, per_statement, marks).batches()]
    batch_id = marks[1]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="spinereg-import") as helper:
        batch = jobs[0]()
        for k in range(len(jobs)):
            ent = batch.ent
            table = table_name(ent)
            one = f"({', '.join(['%s'] * (len(ent.columns) + len(REGISTRY_COLUMNS)))})"
            head = f"INSERT INTO {table} ({', '.join([*ent.column_names, *REGISTRY_COLUMNS])}) VALUES "
            started = time.perf_counter()
            last = max_rowid(cursor, table)
            ahead = helper.submit(jobs[k + 1]) if k + 1 < len(jobs) else None
            cursor.executemany(head + ", ".join([one] * per_statement), batch.multi)
            cursor.executemany(head + one, batch.single)
            n = len(batch.multi) * per_statement + len(batch.single)
            spent["insert"] += time.perf_counter() - started
            deferred.append(functools.partial(_audit_sqlite, cursor, ent, last, n, stamp, who, batch_id, spent))
            if progress is not None:
                progress(ent.name, batch.end, batch.total)
            if ahead is not None:
                batch = ahead.result()

def _audit_sqlite(cursor: RawCursor, ent: Entity, last: int, n: int, stamp: Any, who: str, batch_id: int,
                  spent: dict[str, float]) -> None:
    """The ``create`` entries of the ``n`` rows of ``ent`` stored after rowid ``last``."""
    started = time.perf_counter()
    cursor.execute(f"INSERT INTO spinereg_audit (at, actor, action, entity, record_key, changes, batch_id, reason) "
                   f"SELECT %s, %s, 'create', '{ent.name}', {key_sql(ent)}, %s, %s, '' FROM {table_name(ent)} "
                   f"WHERE rowid > %s AND rowid <= %s ORDER BY rowid",
                   (stamp, who, snapshot_changes(batch_id), batch_id, last, last + n))
    if cursor.rowcount != n:  # pragma: no cover - a row without its audit entry
        raise RuntimeError(f"audit of {ent.name}: {cursor.rowcount} entries for {n} new rows")
    spent["audit"] += time.perf_counter() - started

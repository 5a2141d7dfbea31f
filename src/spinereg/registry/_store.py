"""Moving tidy extracts into and out of the registry database.

:func:`import_extract` writes an extract in ONE transaction: new rows are
inserted, changed rows updated, unchanged rows left alone (so re-importing
the same file is idempotent), and every create and update gets an audit
entry in the same transaction.  A failure, or a process killed mid-way,
leaves the database as it was.

Bulk work uses the database cursor directly (``executemany``); column names
equal the tidy schema's, so no ORM round trip per row is needed.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from spinereg._errors import IntegrityConflictError
from spinereg.data import Entity, Extract, conform, entities
from spinereg.registry._audit import REGISTRY_COLUMNS, changes_json, json_value
from spinereg.registry._audit import actor as current_actor
from spinereg.registry._guard import writes_allowed
from spinereg.registry._service import check_site_key, get_or_create_dataset

__all__ = ["HistoryEntry", "ImportSummary", "Tables", "import_extract", "load_extract", "load_references", "migrate",
           "read_snapshot", "registry_counts", "row_history"]

_BATCH = 20_000
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ImportSummary:
    """What an import did, per entity: created, updated, unchanged rows."""

    batch_id: int
    created: dict[str, int]
    updated: dict[str, int]
    unchanged: dict[str, int]
    changes: tuple[RowChange, ...] = ()  # with update=True: each changed key and column, old -> new

    @property
    def total_created(self) -> int:
        return sum(self.created.values())

    @property
    def total_updated(self) -> int:
        return sum(self.updated.values())


def _table(ent: Entity) -> str:
    return f"spinereg_{ent.name}"


def _is_sqlite(alias: str) -> bool:
    from django.db import connections

    return bool(connections[alias].vendor == "sqlite")


def _column_values(df: pd.DataFrame, ent: Entity, sqlite: bool) -> list[list[Any]]:
    """Per column, Python values for the database (None for missing)."""
    cols: list[list[Any]] = []
    for c in ent.columns:
        s = df[c.name]
        if c.type == "date":
            if sqlite:
                cols.append(_iso_dates(s).to_pylist())
            else:
                cols.append([None if pd.isna(v) else v.date() for v in s])
        elif c.type in ("int", "float", "bool"):
            cols.append(pa.array(s, from_pandas=True).to_pylist())
        else:
            cols.append(pa.array(s.astype(object), from_pandas=True, type=pa.string()).to_pylist())
    return cols


def _arrow_strings(s: pd.Series) -> pa.Array | pa.ChunkedArray:
    """A text column as Arrow strings (null where missing); Arrow-backed text without
    a round trip through Python objects."""
    if isinstance(s.dtype, pd.StringDtype) and s.dtype.storage.startswith("pyarrow"):
        return pc.cast(pa.array(s), pa.string())
    return pa.array(s.astype(object), from_pandas=True, type=pa.string())


def _iso_dates(s: pd.Series) -> pa.Array:
    """Dates as ISO ``YYYY-MM-DD`` strings (null where missing), computed by Arrow."""
    days = pa.array(s.to_numpy(dtype="datetime64[s]").astype("datetime64[D]"), from_pandas=True)
    return pc.cast(days, pa.string())


# SQLite stores a bound NaN as NULL.  Binding Python's None goes through the sqlite3
# module's adaptation lookup (~20x slower than binding a float), so SQLite rows carry
# this one NaN object for every missing value.
_SQLITE_NULL = float("nan")


def _sqlite_columns(df: pd.DataFrame, ent: Entity) -> list[npt.NDArray[np.object_]]:
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
            enc = pc.dictionary_encode(_iso_dates(s))
            cats = np.array([*enc.dictionary.to_pylist(), _SQLITE_NULL], dtype=object)
            vals = cats[pc.fill_null(enc.indices, len(cats) - 1).to_numpy()]
        else:
            vals = _arrow_strings(s).to_numpy(zero_copy_only=False)
        if miss.any():
            vals[miss] = _SQLITE_NULL
        cols.append(vals)
    return cols


def _key_sql(ent: Entity) -> str:
    return " || '/' || ".join(ent.key)


_ARROW_TYPES = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "date": pa.date32()}


def _snapshot_table(df: pd.DataFrame, ent: Entity) -> pa.Table:
    """The rows as stored, every tidy column, as an Arrow table (dates as dates, floats
    exact, missing values null)."""
    arrays: list[pa.Array | pa.ChunkedArray] = []
    for c in ent.columns:
        s = df[c.name]
        if c.type == "date":
            days = s.to_numpy(dtype="datetime64[s]").astype("datetime64[D]")
            arr = pa.array(days, from_pandas=True).cast(pa.date32())
        elif c.type == "category" and isinstance(s.dtype, pd.CategoricalDtype):
            arr = pc.cast(pa.array(s, from_pandas=True), pa.string())
        elif c.type in _ARROW_TYPES:
            arr = pa.array(s, from_pandas=True, type=_ARROW_TYPES[c.type])
        else:
            arr = _arrow_strings(s)
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, names=list(ent.column_names))


def _snapshot_blob(df: pd.DataFrame, ent: Entity) -> bytes:
    """:func:`_snapshot_table` as a zstd-compressed Arrow IPC stream."""
    table = _snapshot_table(df, ent)
    sink = pa.BufferOutputStream()
    opts = pa.ipc.IpcWriteOptions(compression=pa.Codec("zstd", compression_level=1), use_threads=False)
    with pa.ipc.new_stream(sink, table.schema, options=opts) as writer:
        writer.write_table(table, max_chunksize=65_536)
    return bytes(sink.getvalue().to_pybytes())


def read_snapshot(data: bytes | memoryview) -> pa.Table:
    """An import snapshot (``spinereg_import_snapshot.data``) as an Arrow table."""
    with pa.ipc.open_stream(pa.py_buffer(bytes(data))) as reader:
        return reader.read_all()


def _snapshot_changes(batch_id: int) -> str:
    """The ``changes`` of a create entry written by an import: the values are in the batch's snapshot."""
    return json.dumps({"snapshot": batch_id})


def _row_values(df: pd.DataFrame, ent: Entity) -> list[dict[str, Any]]:
    """Per row, the JSON-safe values of the tidy columns (None where missing)."""
    cols = {c: [json_value(v) for v in df[c].tolist()] for c in ent.column_names}
    return [dict(zip(cols, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]


def _key_strings(df: pd.DataFrame, ent: Entity) -> pd.Series:
    parts = [df[k].astype(str) for k in ent.key]
    key = parts[0]
    for p in parts[1:]:
        key = key + "/" + p
    return key


def _existing(cursor: Any, ent: Entity, keys: pd.DataFrame) -> tuple[pd.DataFrame, npt.NDArray[np.int64]]:
    """Rows already in the database with these keys (tidy columns), and the dataset id
    each belongs to (0 where none)."""
    cols = ", ".join([*ent.column_names, "dataset_id"])
    first = ent.key[0]
    wanted = pd.unique(keys[first].astype(str))
    rows: list[tuple[Any, ...]] = []
    for i in range(0, len(wanted), 500):
        chunk = list(wanted[i:i + 500])
        marks = ", ".join(["%s"] * len(chunk))
        cursor.execute(f"SELECT {cols} FROM {_table(ent)} WHERE {first} IN ({marks})", chunk)
        rows.extend(cursor.fetchall())
    frame = pd.DataFrame.from_records(rows, columns=[*ent.column_names, "dataset_id"])
    owner = frame["dataset_id"].fillna(0).to_numpy(dtype=np.int64)
    return conform(frame.drop(columns="dataset_id"), ent), owner


@dataclass(frozen=True)
class RowChange:
    """One column of one row that an import would change: ``old`` -> ``new`` (JSON-safe
    values), and the dataset the row belongs to."""

    entity: str
    key: str
    column: str
    old: Any
    new: Any
    dataset: str


@dataclass
class _Comparison:
    """An entity's incoming rows against the registry."""

    new_mask: npt.NDArray[np.bool_]  # rows whose key is new
    unchanged: int  # rows found and identical
    changed: pd.DataFrame  # incoming rows found, of this dataset, that differ
    changed_old: pd.DataFrame  # their stored values, in the same order
    own: list[RowChange]  # the changes of those rows, column by column
    foreign: list[RowChange]  # differing rows that belong to another dataset


def _compare(cursor: Any, ent: Entity, df: pd.DataFrame, dataset_id: int | None, names: dict[int, str],
             has_rows: bool) -> _Comparison:
    """Which incoming rows are new, identical, or changed (and whose they are)."""
    empty = df.iloc[:0]
    result = _Comparison(np.ones(len(df), dtype=bool), 0, empty, empty, [], [])
    if not has_rows:
        return result
    old, owner = _existing(cursor, ent, df)
    if not len(old):
        return result
    inc_key = _key_strings(df, ent)
    old_key = _key_strings(old, ent)
    found = inc_key.isin(old_key).to_numpy(dtype=bool)
    result.new_mask = ~found
    if not found.any():
        return result
    inc = _norm_rows(df[found], ent).set_index(inc_key[found].to_numpy())
    prev_all = _norm_rows(old, ent).set_index(old_key.to_numpy())
    prev = prev_all.loc[inc.index]
    cells = (inc != prev).to_numpy(dtype=bool)
    differs = cells.any(axis=1)
    result.unchanged = int((~differs).sum())
    if not differs.any():
        return result
    owners = pd.Series(owner, index=old_key.to_numpy()).loc[inc.index].to_numpy()
    mine = owners == (dataset_id or 0)
    raw_new = df[found].set_index(inc_key[found].to_numpy())
    raw_old = old.set_index(old_key.to_numpy()).loc[inc.index]
    cols = list(ent.column_names)
    for i, j in zip(*np.nonzero(cells), strict=True):
        c = cols[j]
        change = RowChange(ent.name, str(inc.index[i]), c, json_value(raw_old[c].iloc[i]),
                           json_value(raw_new[c].iloc[i]), names.get(int(owners[i]), "(none)"))
        (result.own if mine[i] else result.foreign).append(change)
    take = differs & mine
    result.changed = df[found][take]
    result.changed_old = raw_old[take]
    return result


class ImportConflictError(IntegrityConflictError):
    """An import would change rows already in the registry: rows of another dataset
    (never allowed), or rows of its own dataset without ``update=True``.  ``changes``
    lists every changed key and column, old -> new."""

    def __init__(self, message: str, changes: Sequence[RowChange]) -> None:
        super().__init__(message)
        self.changes = tuple(changes)


def _conflict(own: Sequence[RowChange], foreign: Sequence[RowChange]) -> ImportConflictError:
    lines = []
    if foreign:
        owners = sorted({c.dataset for c in foreign})
        lines.append(f"{len({(c.entity, c.key) for c in foreign}):,} row(s) of another dataset "
                     f"({', '.join(owners)}) would change; an import never changes another dataset's rows:")
        lines += [f"  {c.entity} {c.key}: {c.column} {c.old!r} -> {c.new!r} (dataset {c.dataset})"
                  for c in foreign[:20]]
        if len(foreign) > 20:
            lines.append(f"  ... and {len(foreign) - 20:,} more change(s)")
    if own:
        lines.append(f"{len({(c.entity, c.key) for c in own}):,} existing row(s) would change; nothing was "
                     "written. Check the changes (the dry run lists them all); import with --update to apply:")
        lines += [f"  {c.entity} {c.key}: {c.column} {c.old!r} -> {c.new!r}" for c in own[:20]]
        if len(own) > 20:
            lines.append(f"  ... and {len(own) - 20:,} more change(s)")
    return ImportConflictError("\n".join(lines), [*foreign, *own])


def _norm_rows(df: pd.DataFrame, ent: Entity) -> pd.DataFrame:
    """Comparable string form of every value (for change detection)."""
    out = pd.DataFrame(index=df.index)
    for c in ent.columns:
        s = df[c.name]
        if c.type == "date":
            out[c.name] = s.dt.strftime("%Y-%m-%d").fillna("")
        elif c.type == "float":
            out[c.name] = s.map(lambda v: "" if pd.isna(v) else repr(float(v)))
        else:
            out[c.name] = s.astype("string").fillna("")
    return out


class Tables(Protocol):
    """Tidy tables by entity name, e.g. an :class:`Extract`."""

    def __getitem__(self, name: str) -> pd.DataFrame: ...


@runtime_checkable
class StreamedTables(Tables, Protocol):
    """Tables still being validated while the store writes the earlier ones (the import
    pipeline): ``tables[name]`` waits until that entity's rows are ready, and
    ``ready(name)`` says whether it would return at once (the store does other work,
    such as writing audit entries, while it would wait)."""

    def ready(self, name: str) -> bool: ...


def import_extract(alias: str, extract: Tables, *, mapping: str = "", files: Sequence[str] = (),
                   dataset: dict[str, Any] | None = None, progress: Progress | None = None,
                   timings: dict[str, float] | None = None,
                   before_commit: Callable[[], None] | None = None, update: bool = False, kind: str = "import",
                   site_key_fingerprint: str | None = None) -> ImportSummary:
    """Write a validated extract into the registry, all or nothing.

    Parameters
    ----------
    alias : str
        Connection alias from :func:`spinereg.registry.open_registry`.
    extract : Extract or Tables
        Validated, conformed tidy data.  The entities are written one after the other
        (in the order of :func:`spinereg.data.entities`), each as soon as
        ``extract[name]`` returns.
    mapping, files : str, sequence of str
        Recorded in the import batch (file names only).
    dataset : dict, optional
        ``name``, ``synthetic``, ``source``, ``extract_date`` of the dataset
        the rows belong to (created when new; default name ``registry``).  Every
        row written records its dataset and this write batch.
    progress : callable, optional
        ``progress(entity, done, total)`` after each batch.
    timings : dict, optional
        Filled with seconds spent: ``insert`` (new rows), ``audit`` (their audit
        entries), ``references`` (checking the foreign keys of the rows written),
        ``commit``.
    before_commit : callable, optional
        Called when everything is written, inside the transaction: an exception it
        raises rolls the whole import back (used to finish validating while the rows
        are written).
    update : bool
        Rows whose key exists already and whose values differ are changed only with
        ``update=True``; otherwise the import is refused (:class:`ImportConflictError`
        listing each changed key and column, old -> new) and nothing is written.
        Identical rows are left unchanged.  A row of another dataset is never changed.
    kind : str
        The write batch's kind: ``import`` or ``synth``.
    site_key_fingerprint : str, optional
        Fingerprint of the pseudonymisation key the data were made with: recorded on
        first use, and an import with another key is refused (:class:`SiteKeyError`).

    Notes
    -----
    Foreign keys on SQLite: the rows go in without a check per row (as Django's
    ``loaddata`` does, and unless an outer transaction is open, where SQLite keeps
    checking); instead, before the commit, one statement per foreign key checks
    every row this import inserted or updated, and any row referring to a
    missing one raises IntegrityError and rolls the import back.  Validation has
    already checked the references; this is the database's own check of the
    same rows, done in bulk (about a third of the cost of checking row by row).
    PostgreSQL checks each row as it goes in.
    """
    from django.db import connections

    from spinereg.registry.models import Dataset, ImportBatch

    sqlite = _is_sqlite(alias)
    who = current_actor()
    now = datetime.now(UTC)
    created: dict[str, int] = {}
    updated: dict[str, int] = {}
    unchanged: dict[str, int] = {}
    spent = timings if timings is not None else {}
    for k in ("insert", "audit", "references", "commit"):
        spent[k] = 0.0
    own: list[RowChange] = []
    foreign: list[RowChange] = []
    changes: list[RowChange] = []
    meta = dataset or {}
    # SQLite: foreign keys are checked once, in bulk, for the rows written (see Notes)
    with _foreign_keys_off(alias, sqlite) as checks_off, writes_allowed(alias), contextlib.ExitStack() as stack:
        if site_key_fingerprint is not None:
            check_site_key(alias, site_key_fingerprint, record=True)
        owner = get_or_create_dataset(alias, str(meta.get("name") or "registry"),
                                      synthetic=bool(meta.get("synthetic", False)),
                                      source=str(meta.get("source") or ""),
                                      extract_date=_as_date(meta.get("extract_date")))
        names = {int(d.pk): d.name for d in Dataset.objects.using(alias).all()}
        batch = ImportBatch.objects.using(alias).create(
            at=now, actor=who, kind=kind, dataset=owner, mapping=mapping,
            files="\n".join(os.path.basename(f) for f in files))
        marks = (int(owner.pk), int(batch.pk))
        django_conn = connections[alias]
        django_conn.ensure_connection()
        cursor = _RawCursor(django_conn.connection.cursor(), sqlite)
        stamp = django_conn.ops.adapt_datetimefield_value(now)  # as Django stores it
        snapper = stack.enter_context(ThreadPoolExecutor(max_workers=1, thread_name_prefix="spinereg-snapshot"))
        blobs: list[tuple[Entity, int, Future[bytes]]] = []
        written: list[tuple[Entity, int, list[Any]]] = []  # entity, largest rowid before, first key of updated
        # SQLite: audit entries of rows already inserted, written while the next entity is
        # still being validated (else right away)
        deferred: list[Callable[[], None]] = []
        ready = extract.ready if isinstance(extract, StreamedTables) else None
        for ent in entities():
            while deferred and ready is not None and not ready(ent.name):
                deferred.pop(0)()
            df = extract[ent.name]
            created[ent.name] = updated[ent.name] = unchanged[ent.name] = 0
            if df.empty:
                continue
            cursor.execute(f"SELECT 1 FROM {_table(ent)} LIMIT 1")
            cmp = _compare(cursor, ent, df, int(owner.pk), names, cursor.fetchone() is not None)
            new_mask = cmp.new_mask
            unchanged[ent.name] = cmp.unchanged
            foreign += cmp.foreign
            changed_keys: list[Any] = []
            if len(cmp.changed):
                if update:
                    _update_rows(cursor, ent, cmp.changed, cmp.changed_old, sqlite, stamp, who, batch.pk)
                    updated[ent.name] = len(cmp.changed)
                    changed_keys = pd.unique(cmp.changed[ent.key[0]].astype(str)).tolist()
                    changes += cmp.own
                else:
                    own += cmp.own
            ins = df[new_mask]
            created[ent.name] = len(ins)
            if checks_off and (len(ins) or changed_keys):
                written.append((ent, _max_rowid(cursor, _table(ent)), changed_keys))
            if not len(ins):
                continue
            # the snapshot is compressed in a helper thread (Arrow lets it run beside the inserts)
            blobs.append((ent, len(ins), snapper.submit(_snapshot_blob, ins, ent)))
            if sqlite:
                _insert_sqlite(cursor, [(ent, ins)], stamp, who, marks, progress,
                               django_conn.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER), spent,
                               deferred)
            else:
                _insert_postgresql(cursor, ent, ins, stamp, who, marks, progress, spent)
        while deferred:
            deferred.pop(0)()
        if own or foreign:
            raise _conflict(own, foreign)
        started = time.perf_counter()
        for ent, n, blob in blobs:
            cursor.execute("INSERT INTO spinereg_import_snapshot (batch_id, entity, n_rows, data) "
                           "VALUES (%s, %s, %s, %s)", (int(batch.pk), ent.name, n, blob.result()))
        spent["audit"] += time.perf_counter() - started
        if checks_off:
            started = time.perf_counter()
            for ent, after, keys in written:
                _check_references(cursor, ent, after, keys)
            spent["references"] += time.perf_counter() - started
        if before_commit is not None:
            before_commit()
        ImportBatch.objects.using(alias).filter(pk=batch.pk).update(
            n_created=sum(created.values()), n_updated=sum(updated.values()),
            n_unchanged=sum(unchanged.values()))
        committing = time.perf_counter()
    spent["commit"] = time.perf_counter() - committing
    return ImportSummary(int(batch.pk), created, updated, unchanged, tuple(changes))


@dataclass(frozen=True)
class ImportPreview:
    """What an import would do, per entity (a dry run against the registry): rows it would
    create and leave unchanged, the changes it would make to its own dataset's rows
    (``changes``, applied only with ``update``), and the changes to other datasets' rows
    that it would be refused for (``foreign``)."""

    created: dict[str, int]
    unchanged: dict[str, int]
    changes: tuple[RowChange, ...]
    foreign: tuple[RowChange, ...]


def preview_import(alias: str, extract: Tables, dataset: str) -> ImportPreview:
    """Compare an extract with the registry, writing nothing (see :class:`ImportPreview`)."""
    from django.db import connections

    from spinereg.registry.models import Dataset

    names = {int(d.pk): d.name for d in Dataset.objects.using(alias).all()}
    owner = Dataset.objects.using(alias).filter(name=dataset).first()
    created: dict[str, int] = {}
    unchanged: dict[str, int] = {}
    own: list[RowChange] = []
    foreign: list[RowChange] = []
    with connections[alias].cursor() as cursor:
        for ent in entities():
            df = extract[ent.name]
            if df.empty:
                continue
            cursor.execute(f"SELECT 1 FROM {_table(ent)} LIMIT 1")
            cmp = _compare(cursor, ent, df, None if owner is None else int(owner.pk), names,
                           cursor.fetchone() is not None)
            created[ent.name] = int(cmp.new_mask.sum())
            unchanged[ent.name] = cmp.unchanged
            own += cmp.own
            foreign += cmp.foreign
    return ImportPreview(created, unchanged, tuple(own), tuple(foreign))


@contextlib.contextmanager
def _foreign_keys_off(alias: str, wanted: bool) -> Iterator[bool]:
    """SQLite: foreign keys not checked row by row while the rows go in (Django's
    ``constraint_checks_disabled``, as ``loaddata`` does).  Yields whether that took
    effect (not inside an outer transaction, where SQLite keeps checking each row);
    if so, the caller checks the rows it wrote (:func:`_check_references`) before it
    commits."""
    from django.db import connections

    conn = connections[alias]
    off = wanted and bool(conn.disable_constraint_checking())
    try:
        yield off
    finally:
        if off:
            conn.enable_constraint_checking()


def _check_references(cursor: _RawCursor, ent: Entity, after: int, updated: Sequence[Any]) -> None:
    """Every foreign key of the rows of ``ent`` written by this import refers to an
    existing row (SQLite); else IntegrityError, which rolls the import back.

    The rows written are those inserted (rowid above ``after``, the largest before)
    and those updated (first key column in ``updated``).  One statement per foreign
    key and kind, one parent-index lookup per row.
    """
    from django.db import IntegrityError

    table = _table(ent)
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


def _max_rowid(cursor: _RawCursor, table: str) -> int:
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

    The column values (:func:`_sqlite_columns`) are built on the first batch and
    dropped after the last one."""

    def __init__(self, ent: Entity, ins: pd.DataFrame, per_statement: int, marks: tuple[int, int]) -> None:
        self.ent = ent
        self.ins = ins
        self.per_statement = per_statement
        self.marks = marks  # the registry columns' values: dataset id, batch id
        self.cols: list[npt.NDArray[np.object_]] | None = None

    def batches(self) -> list[Callable[[], _Batch]]:
        return [functools.partial(self.batch, i) for i in range(0, len(self.ins), _BATCH)]

    def batch(self, start: int) -> _Batch:
        if self.cols is None:
            self.cols = _sqlite_columns(self.ins, self.ent)
        n = min(_BATCH, len(self.ins) - start)
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


def _insert_sqlite(cursor: _RawCursor, new_rows: Sequence[tuple[Entity, pd.DataFrame]], stamp: Any, who: str,
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
            table = _table(ent)
            one = f"({', '.join(['%s'] * (len(ent.columns) + len(REGISTRY_COLUMNS)))})"
            head = f"INSERT INTO {table} ({', '.join([*ent.column_names, *REGISTRY_COLUMNS])}) VALUES "
            started = time.perf_counter()
            last = _max_rowid(cursor, table)
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


def _audit_sqlite(cursor: _RawCursor, ent: Entity, last: int, n: int, stamp: Any, who: str, batch_id: int,
                  spent: dict[str, float]) -> None:
    """The ``create`` entries of the ``n`` rows of ``ent`` stored after rowid ``last``."""
    started = time.perf_counter()
    cursor.execute(f"INSERT INTO spinereg_audit (at, actor, action, entity, record_key, changes, batch_id, reason) "
                   f"SELECT %s, %s, 'create', '{ent.name}', {_key_sql(ent)}, %s, %s, '' FROM {_table(ent)} "
                   f"WHERE rowid > %s AND rowid <= %s ORDER BY rowid",
                   (stamp, who, _snapshot_changes(batch_id), batch_id, last, last + n))
    if cursor.rowcount != n:  # pragma: no cover - a row without its audit entry
        raise RuntimeError(f"audit of {ent.name}: {cursor.rowcount} entries for {n} new rows")
    spent["audit"] += time.perf_counter() - started


def _insert_postgresql(cursor: _RawCursor, ent: Entity, ins: pd.DataFrame, stamp: Any, who: str,
                       marks: tuple[int, int], progress: Progress | None, spent: dict[str, float]) -> None:
    """Insert new rows (PostgreSQL ``COPY``), batch by batch, each batch followed by its
    audit entries, built by the database from the batch's rows (selected by key)."""
    table = _table(ent)
    total = len(ins)
    cols = [np.asarray(v, dtype=object) for v in _column_values(ins, ent, False)]
    cols += [np.full(total, v, dtype=object) for v in marks]
    batch_id = marks[1]
    keys = [ins[k].astype(str).to_numpy(dtype=object) for k in ent.key]
    if len(ent.key) == 1:
        where = f"{ent.key[0]} = ANY(%s)"
    else:
        where = f"({', '.join(ent.key)}) IN (SELECT * FROM unnest({', '.join(['%s::text[]'] * len(ent.key))}))"
    audit = ("INSERT INTO spinereg_audit (at, actor, action, entity, record_key, changes, batch_id, reason) "
             f"SELECT %s, %s, 'create', '{ent.name}', {_key_sql(ent)}, %s, %s, '' "
             f"FROM (SELECT {', '.join(ent.key)} FROM {table} WHERE {where}) AS r")
    for i in range(0, total, _BATCH):
        started = time.perf_counter()
        rows = list(zip(*(c[i:i + _BATCH] for c in cols), strict=True))
        cursor.copy_rows(table, [*ent.column_names, *REGISTRY_COLUMNS], rows)
        inserted = time.perf_counter()
        cursor.execute(audit, (stamp, who, _snapshot_changes(batch_id), batch_id,
                               *(list(k[i:i + _BATCH]) for k in keys)))
        if cursor.rowcount != len(rows):  # pragma: no cover - a row without its audit entry
            raise RuntimeError(f"audit of {ent.name}: {cursor.rowcount} entries for {len(rows)} new rows")
        spent["insert"] += inserted - started
        spent["audit"] += time.perf_counter() - inserted
        if progress is not None:
            progress(ent.name, min(total, i + _BATCH), total)


class _RawCursor:
    """The DB-API cursor of Django's connection (same transaction), with
    ``%s`` placeholders translated for SQLite: bulk work skips Django's
    per-call wrappers."""

    def __init__(self, cursor: Any, sqlite: bool) -> None:
        self._cursor = cursor
        self._sqlite = sqlite

    def _sql(self, sql: str) -> str:
        return sql.replace("%s", "?") if self._sqlite else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._cursor.execute(self._sql(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._cursor.executemany(self._sql(sql), rows)

    def copy_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """PostgreSQL ``COPY ... FROM STDIN`` (much faster than executemany)."""
        with self._cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    def fetchall(self) -> list[Any]:
        return list(self._cursor.fetchall())


def _as_date(v: Any) -> date | None:
    if v is None or v == "":
        return None
    if isinstance(v, date):
        return v
    return date.fromisoformat(str(v)[:10])


def _update_rows(cursor: Any, ent: Entity, new: pd.DataFrame, old: pd.DataFrame, sqlite: bool,
                 stamp: Any, who: str, batch_id: int) -> None:
    cols = _column_values(new, ent, sqlite)
    rows = list(zip(*cols, strict=True))
    non_key = [c for c in ent.column_names if c not in ent.key]
    sets = ", ".join(f"{c} = %s" for c in non_key) + f", batch_id = {int(batch_id)}"
    where = " AND ".join(f"{k} = %s" for k in ent.key)
    idx = {c: i for i, c in enumerate(ent.column_names)}
    params = [tuple(r[idx[c]] for c in non_key) + tuple(r[idx[k]] for k in ent.key) for r in rows]
    cursor.executemany(f"UPDATE {_table(ent)} SET {sets} WHERE {where}", params)
    keys = _key_strings(new, ent).tolist()
    audit = []
    for k, o, n in zip(keys, _row_values(old, ent), _row_values(new, ent), strict=True):
        diff = [c for c in ent.column_names if n[c] != o[c]]
        changes = changes_json({c: o[c] for c in diff}, {c: n[c] for c in diff})
        audit.append((stamp, who, "update", ent.name, k, changes, batch_id, ""))
    cursor.executemany("INSERT INTO spinereg_audit (at, actor, action, entity, record_key, changes, batch_id, reason)"
                       " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", audit)


def load_extract(alias: str) -> Extract:
    """Read the whole registry as a tidy extract (with dataset metadata)."""
    from django.db import connections

    from spinereg.registry.models import Dataset

    cursor = connections[alias].cursor()
    tables: dict[str, pd.DataFrame] = {}
    for ent in entities():
        cursor.execute(f"SELECT {', '.join(ent.column_names)} FROM {_table(ent)} "
                       f"ORDER BY {', '.join(ent.key)}")
        frame = pd.DataFrame.from_records(cursor.fetchall(), columns=list(ent.column_names))
        tables[ent.name] = conform(frame, ent)
    sets = list(Dataset.objects.using(alias).order_by("name"))
    meta: dict[str, Any] = {
        "name": "; ".join(d.name for d in sets) or "spinereg registry",
        "synthetic": any(d.synthetic for d in sets),
        "source": "; ".join(sorted({d.source for d in sets if d.source})),
    }
    dates = [d.extract_date for d in sets if d.extract_date]
    if dates:
        meta["extract_date"] = max(dates).isoformat()
    return Extract(tables, meta)


def load_references(alias: str) -> Extract:
    """What validation reads of the rows already in the registry (the entities and
    columns of :data:`spinereg.data._validate.REFERENCE_COLUMNS`; other entities empty):
    an import's foreign keys may refer to these rows, and its dates are checked
    against them."""
    from django.db import connections

    from spinereg.data._validate import REFERENCE_COLUMNS

    sqlite = _is_sqlite(alias)
    tables: dict[str, pd.DataFrame] = {}
    with connections[alias].cursor() as cursor:
        for ent in entities():
            cols = REFERENCE_COLUMNS.get(ent.name)
            if cols:
                # SQLite: dates as their ISO text (an expression, so the driver does not make
                # a date object of each; conform() parses them column-wise)
                sel = [f"CAST({c} AS TEXT)" if sqlite and ent.column(c).type == "date" else c for c in cols]
                cursor.execute(f"SELECT {', '.join(sel)} FROM {_table(ent)}")
                tables[ent.name] = conform(pd.DataFrame.from_records(cursor.fetchall(), columns=list(cols)), ent)
    return Extract(tables)


def registry_counts(alias: str) -> dict[str, int]:
    """Row counts per entity table and of the audit table."""
    from django.db import connections

    cursor = connections[alias].cursor()
    out = {}
    for ent in entities():
        cursor.execute(f"SELECT COUNT(*) FROM {_table(ent)}")
        out[ent.name] = int(cursor.fetchone()[0])
    cursor.execute("SELECT COUNT(*) FROM spinereg_audit")
    out["audit"] = int(cursor.fetchone()[0])
    return out


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

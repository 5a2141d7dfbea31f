"""The bulk write path of the write service: an extract into the registry.

:func:`import_extract` writes an extract in ONE transaction, inside the
write service: new rows are inserted, identical rows left alone (so
re-importing the same file is idempotent), changed rows of the import's own
dataset updated only when asked (``update=True``), rows of another dataset
never; every create and update gets an audit entry in the same transaction.
A failure, or a process killed mid-way, leaves the database as it was.  The
per-backend writers are in ``_sqlite.py`` and ``_postgres.py``, snapshots in
``_snapshot.py``; reading back in ``_read.py`` and ``_history.py``.

Bulk work uses the database cursor directly (``executemany``); column names
equal the tidy schema's, so no ORM round trip per row is needed.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import pandas as pd

from spinereg._errors import IntegrityConflictError
from spinereg.data import Entity, conform, entities
from spinereg.registry._audit import actor as current_actor
from spinereg.registry._audit import changes_json, json_value
from spinereg.registry._guard import writes_allowed
from spinereg.registry._postgres import insert_postgresql
from spinereg.registry._service import check_site_key, get_or_create_dataset
from spinereg.registry._settings import translated_errors
from spinereg.registry._snapshot import snapshot_blob
from spinereg.registry._sql import Progress, RawCursor, column_values, is_sqlite, key_strings, table_name
from spinereg.registry._sqlite import check_references, foreign_keys_off, insert_sqlite, max_rowid

__all__ = ["ImportConflictError", "ImportPreview", "ImportSummary", "RowChange", "StreamedTables", "Tables",
           "import_extract", "preview_import"]


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


def _row_values(df: pd.DataFrame, ent: Entity) -> list[dict[str, Any]]:
    """Per row, the JSON-safe values of the tidy columns (None where missing)."""
    cols = {c: [json_value(v) for v in df[c].tolist()] for c in ent.column_names}
    return [dict(zip(cols, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]


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
        cursor.execute(f"SELECT {cols} FROM {table_name(ent)} WHERE {first} IN ({marks})", chunk)
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
    inc_key = key_strings(df, ent)
    old_key = key_strings(old, ent)
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

    sqlite = is_sqlite(alias)
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
    with translated_errors(alias), foreign_keys_off(alias, sqlite) as checks_off, writes_allowed(alias), \
            contextlib.ExitStack() as stack:
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
        cursor = RawCursor(django_conn.connection.cursor(), sqlite)
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
            cursor.execute(f"SELECT 1 FROM {table_name(ent)} LIMIT 1")
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
                written.append((ent, max_rowid(cursor, table_name(ent)), changed_keys))
            if not len(ins):
                continue
            # the snapshot is compressed in a helper thread (Arrow lets it run beside the inserts)
            blobs.append((ent, len(ins), snapper.submit(snapshot_blob, ins, ent)))
            if sqlite:
                insert_sqlite(cursor, [(ent, ins)], stamp, who, marks, progress,
                               django_conn.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER), spent,
                               deferred)
            else:
                insert_postgresql(cursor, ent, ins, stamp, who, marks, progress, spent)
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
                check_references(cursor, ent, after, keys)
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
            cursor.execute(f"SELECT 1 FROM {table_name(ent)} LIMIT 1")
            cmp = _compare(cursor, ent, df, None if owner is None else int(owner.pk), names,
                           cursor.fetchone() is not None)
            created[ent.name] = int(cmp.new_mask.sum())
            unchanged[ent.name] = cmp.unchanged
            own += cmp.own
            foreign += cmp.foreign
    return ImportPreview(created, unchanged, tuple(own), tuple(foreign))


def _as_date(v: Any) -> date | None:
    if v is None or v == "":
        return None
    if isinstance(v, date):
        return v
    return date.fromisoformat(str(v)[:10])


def _update_rows(cursor: Any, ent: Entity, new: pd.DataFrame, old: pd.DataFrame, sqlite: bool,
                 stamp: Any, who: str, batch_id: int) -> None:
    cols = column_values(new, ent, sqlite)
    rows = list(zip(*cols, strict=True))
    non_key = [c for c in ent.column_names if c not in ent.key]
    sets = ", ".join(f"{c} = %s" for c in non_key) + f", batch_id = {int(batch_id)}"
    where = " AND ".join(f"{k} = %s" for k in ent.key)
    idx = {c: i for i, c in enumerate(ent.column_names)}
    params = [tuple(r[idx[c]] for c in non_key) + tuple(r[idx[k]] for k in ent.key) for r in rows]
    cursor.executemany(f"UPDATE {table_name(ent)} SET {sets} WHERE {where}", params)
    keys = key_strings(new, ent).tolist()
    audit = []
    for k, o, n in zip(keys, _row_values(old, ent), _row_values(new, ent), strict=True):
        diff = [c for c in ent.column_names if n[c] != o[c]]
        changes = changes_json({c: o[c] for c in diff}, {c: n[c] for c in diff})
        audit.append((stamp, who, "update", ent.name, k, changes, batch_id, ""))
    cursor.executemany("INSERT INTO spinereg_audit (at, actor, action, entity, record_key, changes, batch_id, reason)"
                       " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", audit)

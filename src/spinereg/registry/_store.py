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

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from spinereg.data import Entity, Extract, conform, entities
from spinereg.registry._audit import actor as current_actor

__all__ = ["ImportSummary", "import_extract", "load_extract", "migrate", "registry_counts"]

_BATCH = 20_000
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ImportSummary:
    """What an import did, per entity: created, updated, unchanged rows."""

    batch_id: int
    created: dict[str, int]
    updated: dict[str, int]
    unchanged: dict[str, int]

    @property
    def total_created(self) -> int:
        return sum(self.created.values())

    @property
    def total_updated(self) -> int:
        return sum(self.updated.values())


def migrate(alias: str) -> None:
    """Create or upgrade the registry tables (Django migrations)."""
    from django.core.management import call_command

    call_command("migrate", database=alias, verbosity=0, interactive=False)


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


def _iso_dates(s: pd.Series) -> pa.Array:
    """Dates as ISO strings (null where missing), computed by Arrow."""
    arr = pa.array(s.astype("datetime64[s]"), from_pandas=True)
    return pc.strftime(arr, format="%Y-%m-%d")


def _json_rows(df: pd.DataFrame, ent: Entity) -> list[str]:
    """One compact JSON object per row with the row's non-missing tidy values.

    Built column-wise with Arrow string kernels (no per-row Python): each
    column becomes ``"name":value`` pieces that are joined per row, skipping
    missing values.  Strings are JSON-escaped; dates are ISO strings.
    """
    pieces: list[pa.ChunkedArray | pa.Array] = []
    for c in ent.columns:
        s = df[c.name]
        if c.type == "date":
            val = pc.binary_join_element_wise('"', _iso_dates(s), '"', "")
        elif c.type in ("int", "float"):
            arr = pa.array(s.astype("Float64" if c.type == "float" else "Int64"), from_pandas=True)
            val = pc.cast(arr, pa.string())
        elif c.type == "bool":
            arr = pa.array(s.astype("boolean"), from_pandas=True)
            val = pc.if_else(arr, pa.scalar("true"), pa.scalar("false"))
        else:
            arr = pc.cast(pa.array(s.astype(object), from_pandas=True, type=pa.string()), pa.string())
            esc = pc.replace_substring(pc.replace_substring(arr, "\\", "\\\\"), '"', '\\"')
            esc = pc.replace_substring_regex(esc, "[\\x00-\\x1f]", " ")
            val = pc.binary_join_element_wise('"', esc, '"', "")
        pieces.append(pc.binary_join_element_wise(f'"{c.name}":', val, ""))
    joined = pc.binary_join_element_wise(*pieces, ",", null_handling="skip")
    wrapped: list[str] = pc.binary_join_element_wise("{", joined, "}", "").to_pylist()
    return wrapped


def _key_strings(df: pd.DataFrame, ent: Entity) -> pd.Series:
    parts = [df[k].astype(str) for k in ent.key]
    key = parts[0]
    for p in parts[1:]:
        key = key + "/" + p
    return key


def _existing(cursor: Any, ent: Entity, keys: pd.DataFrame) -> pd.DataFrame:
    """Rows already in the database with these keys (tidy columns)."""
    cols = ", ".join(ent.column_names)
    first = ent.key[0]
    wanted = pd.unique(keys[first].astype(str))
    rows: list[tuple[Any, ...]] = []
    for i in range(0, len(wanted), 500):
        chunk = list(wanted[i:i + 500])
        marks = ", ".join(["%s"] * len(chunk))
        cursor.execute(f"SELECT {cols} FROM {_table(ent)} WHERE {first} IN ({marks})", chunk)
        rows.extend(cursor.fetchall())
    frame = pd.DataFrame.from_records(rows, columns=list(ent.column_names))
    return conform(frame, ent)


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


def import_extract(alias: str, extract: Extract, *, mapping: str = "", files: Sequence[str] = (),
                   dataset: dict[str, Any] | None = None, progress: Progress | None = None) -> ImportSummary:
    """Write a validated extract into the registry, all or nothing.

    Parameters
    ----------
    alias : str
        Connection alias from :func:`spinereg.registry.open_registry`.
    extract : Extract
        Validated, conformed tidy data.
    mapping, files : str, sequence of str
        Recorded in the import batch (file names only).
    dataset : dict, optional
        ``name``, ``synthetic``, ``source``, ``extract_date`` of the dataset
        the rows belong to (created or updated).
    progress : callable, optional
        ``progress(entity, done, total)`` after each batch.
    """
    from django.db import connections, transaction

    from spinereg.registry.models import Dataset, ImportBatch

    pause = float(os.environ.get("SPINEREG_IMPORT_PAUSE", "0") or 0)
    sqlite = _is_sqlite(alias)
    who = current_actor()
    now = datetime.now(UTC)
    created: dict[str, int] = {}
    updated: dict[str, int] = {}
    unchanged: dict[str, int] = {}
    with transaction.atomic(using=alias):
        batch = ImportBatch.objects.using(alias).create(
            at=now, actor=who, mapping=mapping, files="\n".join(os.path.basename(f) for f in files))
        if dataset:
            Dataset.objects.using(alias).update_or_create(
                name=str(dataset.get("name", "registry")),
                defaults={"synthetic": bool(dataset.get("synthetic", False)),
                          "source": str(dataset.get("source", "")),
                          "extract_date": _as_date(dataset.get("extract_date"))})
        django_conn = connections[alias]
        django_conn.ensure_connection()
        cursor = _RawCursor(django_conn.connection.cursor(), sqlite)
        stamp = now.isoformat() if sqlite else now
        for ent in entities():
            df = extract[ent.name]
            created[ent.name] = updated[ent.name] = unchanged[ent.name] = 0
            if df.empty:
                continue
            cursor.execute(f"SELECT 1 FROM {_table(ent)} LIMIT 1")
            has_rows = cursor.fetchone() is not None
            new_mask = np.ones(len(df), dtype=bool)
            if has_rows:
                old = _existing(cursor, ent, df)
                if len(old):
                    inc_key = _key_strings(df, ent)
                    old_key = _key_strings(old, ent)
                    found = inc_key.isin(old_key).to_numpy(dtype=bool)
                    new_mask = ~found
                    if found.any():
                        inc = _norm_rows(df[found], ent).set_index(inc_key[found].to_numpy())
                        prev = _norm_rows(old, ent).set_index(old_key.to_numpy()).loc[inc.index]
                        differs = (inc != prev).any(axis=1).to_numpy(dtype=bool)
                        unchanged[ent.name] = int((~differs).sum())
                        if differs.any():
                            _update_rows(cursor, ent, df[found][differs], old.set_index(old_key.to_numpy())
                                         .loc[inc.index[differs]], sqlite, stamp, who, batch.pk)
                            updated[ent.name] = int(differs.sum())
            ins = df[new_mask]
            total = len(ins)
            if total:
                cols = _column_values(ins, ent, sqlite)
                rows = list(zip(*cols, strict=True))
                names = ", ".join(ent.column_names)
                marks = ", ".join(["%s"] * len(ent.columns))
                sql = f"INSERT INTO {_table(ent)} ({names}) VALUES ({marks})"
                keys = _key_strings(ins, ent).tolist()
                news = _json_rows(ins, ent)
                audit_sql = ("INSERT INTO spinereg_audit (at, actor, action, entity, record_key, changes, batch_id)"
                             " VALUES (%s, %s, %s, %s, %s, %s, %s)")
                batch_id = int(batch.pk)
                audit_cols = ("at", "actor", "action", "entity", "record_key", "changes", "batch_id")
                for i in range(0, total, _BATCH):
                    audit_rows = [(stamp, who, "create", ent.name, k, '{"new": ' + js + "}", batch_id)
                                  for k, js in zip(keys[i:i + _BATCH], news[i:i + _BATCH], strict=True)]
                    if sqlite:
                        cursor.executemany(sql, rows[i:i + _BATCH])
                        cursor.executemany(audit_sql, audit_rows)
                    else:
                        cursor.copy_rows(_table(ent), ent.column_names, rows[i:i + _BATCH])
                        cursor.copy_rows("spinereg_audit", audit_cols, audit_rows)
                    if progress is not None:
                        progress(ent.name, min(total, i + _BATCH), total)
                    if pause:
                        print(f"spinereg: importing {ent.name} {min(total, i + _BATCH)}/{total}",
                              file=sys.stderr, flush=True)
                        time.sleep(pause)
            created[ent.name] = total
        ImportBatch.objects.using(alias).filter(pk=batch.pk).update(
            n_created=sum(created.values()), n_updated=sum(updated.values()),
            n_unchanged=sum(unchanged.values()))
    return ImportSummary(int(batch.pk), created, updated, unchanged)


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
    sets = ", ".join(f"{c} = %s" for c in non_key)
    where = " AND ".join(f"{k} = %s" for k in ent.key)
    idx = {c: i for i, c in enumerate(ent.column_names)}
    params = [tuple(r[idx[c]] for c in non_key) + tuple(r[idx[k]] for k in ent.key) for r in rows]
    cursor.executemany(f"UPDATE {_table(ent)} SET {sets} WHERE {where}", params)
    new_json = [json.loads(x) for x in _json_rows(new, ent)]
    old_json = [json.loads(x) for x in _json_rows(old, ent)]
    keys = _key_strings(new, ent).tolist()
    audit = []
    for k, o, n in zip(keys, old_json, new_json, strict=True):
        diff = [c for c in ent.column_names if n.get(c) != o.get(c)]
        changes = json.dumps({"old": {c: o.get(c) for c in diff}, "new": {c: n.get(c) for c in diff}},
                             sort_keys=True)
        audit.append((stamp, who, "update", ent.name, k, changes, batch_id))
    cursor.executemany("INSERT INTO spinereg_audit (at, actor, action, entity, record_key, changes, batch_id)"
                       " VALUES (%s, %s, %s, %s, %s, %s, %s)", audit)


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

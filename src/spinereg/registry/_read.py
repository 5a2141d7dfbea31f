"""Reading the registry: the whole tidy extract, the rows validation compares with, counts."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Collection
from typing import Any

import pandas as pd

from spinereg.data import Extract, conform, entities, entity
from spinereg.registry._sql import is_sqlite, table_name

__all__ = ["PatientChoice", "load_extract", "load_references", "registry_counts"]


#: The tables every study reads whole; the others can be restricted to some patients' operations.
_WHOLE = ("patients", "operations")

#: A choice of patients from the whole ``patients`` and ``operations`` tables (conformed).
PatientChoice = Callable[[pd.DataFrame, pd.DataFrame], Collection[str]]


def load_extract(alias: str, *, only: PatientChoice | None = None) -> Extract:
    """Read the registry as a tidy extract (with dataset metadata), rows in key order.

    PostgreSQL: one consistent snapshot (a repeatable-read transaction whose snapshot is
    shared with parallel readers, as ``pg_dump --jobs`` does), each table copied out as CSV
    (``COPY ... TO STDOUT``) in parallel slices of its pages and read by Arrow, then sorted by
    key (bytewise, as SQLite sorts, whatever the database's collation).  SQLite: one read per
    table, in key order (one transaction).

    ``only``: the patients and operations tables are read whole; ``only(patients,
    operations)`` then names the patients whose rows of the other tables (questionnaires,
    treated levels, complications, imaging findings) are read: the rows of all those
    patients' operations, from the same snapshot.  A study passes the patients its cohort
    can reach (:func:`spinereg.study.candidate_patients`), so a national registry is not
    read whole for a cohort of a thousand.  The metadata then carries ``latest_dates``,
    the latest date of each dated table over the whole registry (a study without a
    recorded extract date takes the latest date in the data).
    """
    from django.db import connections, transaction

    from spinereg.registry.models import Dataset

    conn = connections[alias]
    latest: dict[str, str | None] = {}
    if conn.vendor == "postgresql":
        raw = _postgres_tables(alias, only, latest)
    else:
        raw = {}
        with transaction.atomic(using=alias), conn.cursor() as cursor:
            for ent in entities():
                if only is not None and ent.name not in _WHOLE:
                    continue
                cursor.execute(f"SELECT {', '.join(ent.column_names)} FROM {table_name(ent)} "
                               f"ORDER BY {', '.join(ent.key)}")
                raw[ent.name] = pd.DataFrame.from_records(cursor.fetchall(), columns=list(ent.column_names))
            if only is not None:
                ops = _conformed(raw, "operations")
                ids = _operation_ids(ops, only(_conformed(raw, "patients"), ops))
                for ent in entities():
                    if ent.name in _WHOLE:
                        continue
                    cursor.execute(f"SELECT {', '.join(ent.column_names)} FROM {table_name(ent)} "
                                   f"WHERE operation_id IN (SELECT value FROM json_each(%s)) "
                                   f"ORDER BY {', '.join(ent.key)}", [json.dumps(ids)])
                    raw[ent.name] = pd.DataFrame.from_records(cursor.fetchall(), columns=list(ent.column_names))
                    latest.update(_latest(cursor, ent))
    tables: dict[str, pd.DataFrame] = {}
    for ent in entities():
        # strict: a value outside the schema (a vocabulary that changed, a hand edit) is an
        # error naming table, row, column and value, never a silent missing value
        tables[ent.name] = conform(raw[ent.name], ent, strict=True, source=f"table {table_name(ent)}")
    sets = list(Dataset.objects.using(alias).order_by("name"))
    meta: dict[str, Any] = {
        "name": "; ".join(d.name for d in sets) or "spinereg registry",
        "synthetic": any(d.synthetic for d in sets),
        "source": "; ".join(sorted({d.source for d in sets if d.source})),
    }
    dates = [d.extract_date for d in sets if d.extract_date]
    if dates:
        meta["extract_date"] = max(dates).isoformat()
    if only is not None:
        meta["latest_dates"] = latest
    return Extract(tables, meta)


def _conformed(raw: dict[str, pd.DataFrame], name: str) -> pd.DataFrame:
    ent = entity(name)
    return conform(raw[name].copy(), ent, strict=True, source=f"table {table_name(ent)}")


def _operation_ids(operations: pd.DataFrame, patients: Collection[str]) -> list[str]:
    """The operations of these patients, sorted."""
    chosen = operations[operations["patient_id"].astype(str).isin(set(map(str, patients)))]
    return sorted(chosen["operation_id"].astype(str))


def _latest(cursor: Any, ent: Any) -> dict[str, str | None]:
    """The latest date of a restricted table over the whole registry (``{table: ISO date or None}``)."""
    col = {"proms": "answer_date", "complications": "date", "imaging_findings": "date"}.get(ent.name)
    if col is None:
        return {}
    cursor.execute(f"SELECT MAX({col}) FROM {table_name(ent)}")
    value = cursor.fetchone()[0]
    return {ent.name: None if value is None else str(value)[:10]}


#: pages per parallel slice of a table (8 kB pages: about 80 MB of table a slice), and readers
_SLICE_PAGES = 10_000
_READERS = 4


def _postgres_tables(alias: str, only: PatientChoice | None = None,
                     latest: dict[str, str | None] | None = None) -> dict[str, pd.DataFrame]:
    """Entity tables from one snapshot, copied out in parallel slices (TID ranges of pages); with
    ``only``, first patients and operations, then the other tables' rows of the chosen patients."""
    from concurrent.futures import ThreadPoolExecutor

    import psycopg
    from django.db import connections, transaction
    from psycopg import sql

    conn = connections[alias]
    params = conn.get_connection_params()
    jobs: list[tuple[Any, str]] = []
    parts: list[Any] = []
    with transaction.atomic(using=alias), conn.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cursor.execute("SELECT pg_export_snapshot()")
        snapshot = str(cursor.fetchone()[0])

        def read(job: tuple[Any, str]) -> Any:
            ent, select = job
            with psycopg.connect(**params) as reader:
                reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                reader.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                with reader.cursor() as cur:
                    return _copy_table(cur, ent, select)

        first = [e for e in entities() if only is None or e.name in _WHOLE]
        for ent in first:
            cursor.execute("SELECT pg_relation_size(%s) / current_setting('block_size')::int", [table_name(ent)])
            pages = int(cursor.fetchone()[0])
            cols = ", ".join(ent.column_names)
            if pages <= _SLICE_PAGES:
                jobs.append((ent, f"SELECT {cols} FROM {table_name(ent)}"))
                continue
            for lo in range(0, pages, _SLICE_PAGES):
                upper = "" if lo + _SLICE_PAGES >= pages else f" AND ctid < '({lo + _SLICE_PAGES},0)'::tid"
                jobs.append((ent, f"SELECT {cols} FROM {table_name(ent)} WHERE ctid >= '({lo},0)'::tid{upper}"))
        with ThreadPoolExecutor(_READERS) as pool:
            parts = list(pool.map(read, jobs))
        if only is not None:
            whole = {e.name: _sorted_frame(e, [t for (x, _s), t in zip(jobs, parts, strict=True) if x.name == e.name])
                     for e in first}
            ops = _conformed(whole, "operations")
            ids = _operation_ids(ops, only(_conformed(whole, "patients"), ops))
            # COPY takes no parameters: the ids go in as one quoted array literal
            chosen = sql.Literal(ids).as_string(cursor.connection)
            rest = [e for e in entities() if e.name not in _WHOLE]
            more = [(e, f"SELECT {', '.join(e.column_names)} FROM {table_name(e)} "
                        f"WHERE operation_id = ANY({chosen}::text[])") for e in rest]
            with ThreadPoolExecutor(_READERS) as pool:
                more_parts = list(pool.map(read, more))
            jobs += more
            parts += more_parts
            if latest is not None:
                for e in rest:
                    latest.update(_latest(cursor, e))
    out: dict[str, pd.DataFrame] = {}
    for ent in entities():
        out[ent.name] = _sorted_frame(ent, [t for (e, _sql), t in zip(jobs, parts, strict=True) if e.name == ent.name])
    return out


def _sorted_frame(ent: Any, pieces: list[Any]) -> pd.DataFrame:
    """The Arrow pieces of one table as one frame sorted by key (bytewise, as SQLite sorts)."""
    import pyarrow as pa

    table = pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0]
    table = table.sort_by([(k, "ascending") for k in ent.key])
    frame: pd.DataFrame = table.to_pandas(date_as_object=False)
    return frame


def _copy_table(cursor: Any, ent: Any, select: str) -> Any:
    """``select`` copied out as CSV (``COPY ... TO STDOUT``) and read by Arrow's CSV reader: columnar,
    about ten times faster than fetching rows as Python tuples.  Types as the schema says; an empty
    unquoted field is NULL, a quoted one an empty string; booleans come as t/f."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    kinds = {"int": pa.int64(), "float": pa.float64(), "date": pa.date32(), "bool": pa.bool_()}
    names = list(ent.column_names)
    types = {c.name: kinds.get(c.type, pa.string()) for c in ent.columns}
    buf = io.BytesIO()
    with cursor.copy(f"COPY ({select}) TO STDOUT WITH (FORMAT csv)") as copy:
        for block in copy:
            buf.write(block)
    if not buf.tell():  # no rows (Arrow refuses an empty file)
        return pa.table({n: pa.array([], type=types[n]) for n in names})
    buf.seek(0)
    return pacsv.read_csv(
        buf, read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 24),
        convert_options=pacsv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=True,
                                             quoted_strings_can_be_null=False, true_values=["t"],
                                             false_values=["f"]))


def load_references(alias: str) -> Extract:
    """What validation reads of the rows already in the registry (the entities and
    columns of :data:`spinereg.data._validate.REFERENCE_COLUMNS`; other entities empty):
    an import's foreign keys may refer to these rows, and its dates are checked
    against them."""
    from django.db import connections

    from spinereg.data import REFERENCE_COLUMNS

    sqlite = is_sqlite(alias)
    tables: dict[str, pd.DataFrame] = {}
    with connections[alias].cursor() as cursor:
        for ent in entities():
            cols = REFERENCE_COLUMNS.get(ent.name)
            if cols:
                # SQLite: dates as their ISO text (an expression, so the driver does not make
                # a date object of each; conform() parses them column-wise)
                sel = [f"CAST({c} AS TEXT)" if sqlite and ent.column(c).type == "date" else c for c in cols]
                cursor.execute(f"SELECT {', '.join(sel)} FROM {table_name(ent)}")
                tables[ent.name] = conform(pd.DataFrame.from_records(cursor.fetchall(), columns=list(cols)), ent)
    return Extract(tables)

def registry_counts(alias: str) -> dict[str, int]:
    """Row counts per entity table and of the audit table."""
    from django.db import connections

    cursor = connections[alias].cursor()
    out = {}
    for ent in entities():
        cursor.execute(f"SELECT COUNT(*) FROM {table_name(ent)}")
        out[ent.name] = int(cursor.fetchone()[0])
    cursor.execute("SELECT COUNT(*) FROM spinereg_audit")
    out["audit"] = int(cursor.fetchone()[0])
    return out

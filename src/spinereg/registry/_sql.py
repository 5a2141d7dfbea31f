"""Low-level helpers shared by the registry's writers and readers: table names, column
values for the database drivers, and the raw DB-API cursor of Django's connection."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from spinereg.data import Entity

__all__ = ["BATCH", "Progress", "RawCursor", "arrow_strings", "column_values", "is_sqlite", "iso_dates", "key_sql",
           "key_strings", "table_name"]

BATCH = 20_000

Progress = Callable[[str, int, int], None]

def table_name(ent: Entity) -> str:
    return f"spinereg_{ent.name}"

def is_sqlite(alias: str) -> bool:
    from django.db import connections

    return bool(connections[alias].vendor == "sqlite")

def column_values(df: pd.DataFrame, ent: Entity, sqlite: bool) -> list[list[Any]]:
    """Per column, Python values for the database (None for missing)."""
    cols: list[list[Any]] = []
    for c in ent.columns:
        s = df[c.name]
        if c.type == "date":
            if sqlite:
                cols.append(iso_dates(s).to_pylist())
            else:
                cols.append([None if pd.isna(v) else v.date() for v in s])
        elif c.type in ("int", "float", "bool"):
            cols.append(pa.array(s, from_pandas=True).to_pylist())
        else:
            cols.append(pa.array(s.astype(object), from_pandas=True, type=pa.string()).to_pylist())
    return cols

def arrow_strings(s: pd.Series) -> pa.Array | pa.ChunkedArray:
    """A text column as Arrow strings (null where missing); Arrow-backed text without
    a round trip through Python objects."""
    if isinstance(s.dtype, pd.StringDtype) and s.dtype.storage.startswith("pyarrow"):
        return pc.cast(pa.array(s), pa.string())
    return pa.array(s.astype(object), from_pandas=True, type=pa.string())

def iso_dates(s: pd.Series) -> pa.Array:
    """Dates as ISO ``YYYY-MM-DD`` strings (null where missing), computed by Arrow."""
    days = pa.array(s.to_numpy(dtype="datetime64[s]").astype("datetime64[D]"), from_pandas=True)
    return pc.cast(days, pa.string())

def key_sql(ent: Entity) -> str:
    return " || '/' || ".join(ent.key)

def key_strings(df: pd.DataFrame, ent: Entity) -> pd.Series:
    parts = [df[k].astype(str) for k in ent.key]
    key = parts[0]
    for p in parts[1:]:
        key = key + "/" + p
    return key

class RawCursor:
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

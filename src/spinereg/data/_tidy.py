"""The tidy extract: one DataFrame per entity plus dataset metadata.

This is what the registry exports, what importers produce, what the
synthetic registry writes and what the study engine reads.  Column dtypes
are canonical (see :func:`conform`):

=========  ===============================================
str        pandas ``string``
codes      pandas ``string`` (semicolon-separated codes)
int        pandas ``Int64`` (nullable)
float      ``float64`` (NaN = missing)
date       ``datetime64[s]`` (NaT = missing)
bool       pandas ``boolean`` (nullable)
category   pandas ``Categorical`` with the schema's values
=========  ===============================================

On disk a directory holds ``<entity>.csv`` or ``<entity>.parquet`` per
entity and ``dataset.json`` with the metadata (``synthetic`` flag,
``extract_date``, ``source``, ``spinereg_version``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from spinereg._errors import SpineregError
from spinereg._version import __version__
from spinereg.data._csv import to_csv
from spinereg.data._schema import Column, Entity, entities, entity

__all__ = ["Extract", "conform", "empty_table", "read_extract", "write_extract"]

Format = Literal["csv", "parquet"]


def _dtype(col: Column) -> Any:
    if col.type in ("str", "codes"):
        return "string"
    if col.type == "int":
        return "Int64"
    if col.type == "float":
        return "float64"
    if col.type == "date":
        return "datetime64[s]"
    if col.type == "bool":
        return "boolean"
    return pd.CategoricalDtype(list(col.values))


def _all_missing(col: Column, n: int) -> Any:
    """``n`` missing values in the column's dtype, built without a Python object per value."""
    if col.type in ("str", "codes"):
        return pd.arrays.StringArray(np.full(n, pd.NA, dtype=object))
    if col.type == "int":
        return pd.arrays.IntegerArray(np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool))
    if col.type == "float":
        return np.full(n, np.nan)
    if col.type == "date":
        return np.full(n, np.datetime64("NaT"), dtype="datetime64[s]")
    if col.type == "bool":
        return pd.arrays.BooleanArray(np.zeros(n, dtype=bool), np.ones(n, dtype=bool))
    return pd.Categorical.from_codes(np.full(n, -1, dtype=np.int8), dtype=_dtype(col))


def empty_table(ent: Entity) -> pd.DataFrame:
    """A zero-row DataFrame with the entity's columns and dtypes."""
    return pd.DataFrame({c.name: pd.Series([], dtype=_dtype(c)) for c in ent.columns})


def conform(df: pd.DataFrame, ent: Entity | str) -> pd.DataFrame:
    """Return ``df`` with exactly the entity's columns, in order, canonical dtypes.

    Absent optional columns are added as missing; extra columns are dropped.
    Values must already be valid (use :mod:`spinereg.data` validation first):
    this only converts types, e.g. ``"2015-03-01"`` to a date.
    """
    e = entity(ent) if isinstance(ent, str) else ent
    out: dict[str, pd.Series] = {}
    n = len(df)
    for c in e.columns:
        dt = _dtype(c)
        if c.name not in df.columns:
            out[c.name] = pd.Series(_all_missing(c, n), index=pd.RangeIndex(n))
            continue
        s = df[c.name]
        if s.dtype == dt or (c.type in ("str", "codes") and isinstance(s.dtype, pd.StringDtype)):
            pass  # already canonical (strings: Python- or Arrow-backed): no copy
        elif c.type == "date":
            s = pd.to_datetime(s, errors="raise").astype("datetime64[s]")
        elif c.type == "bool" and (s.dtype == object or pd.api.types.is_string_dtype(s)):
            s = s.astype(object).map(lambda v: v if v is pd.NA or v is None or isinstance(v, bool) else
                                     str(v).strip().lower() in ("true", "1", "yes")).astype("boolean")
        elif c.type in ("str", "codes") and not isinstance(s.dtype, pd.StringDtype):
            s = s.astype("string")
        else:
            s = s.astype(dt)
        out[c.name] = s if s.index.equals(pd.RangeIndex(n)) else s.reset_index(drop=True)
    return pd.DataFrame(out, copy=False)


@dataclass
class Extract:
    """A tidy registry extract.

    Attributes
    ----------
    tables : dict of str to DataFrame
        One conformed DataFrame per entity (see :func:`conform`).
    meta : dict
        Dataset metadata: ``name``, ``synthetic`` (bool), ``extract_date``
        (ISO date string), ``source``; free-form extra keys are kept.
    """

    tables: dict[str, pd.DataFrame]
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def empty(cls, **meta: Any) -> Extract:
        return cls({e.name: empty_table(e) for e in entities()}, dict(meta))

    def __post_init__(self) -> None:
        for e in entities():
            if e.name not in self.tables:
                self.tables[e.name] = empty_table(e)

    @property
    def synthetic(self) -> bool:
        return bool(self.meta.get("synthetic", False))

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]


def _to_csv_frame(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for name in out.columns:
        s = out[name]
        if pd.api.types.is_datetime64_any_dtype(s):
            out[name] = s.dt.strftime("%Y-%m-%d")
        elif isinstance(s.dtype, pd.BooleanDtype):
            out[name] = s.map({True: "true", False: "false"}).astype("string")
    return out


def write_extract(extract: Extract, directory: str | Path, fmt: Format = "csv",
                  extra: Mapping[str, pd.DataFrame] | None = None) -> list[Path]:
    """Write the extract to ``directory`` (one file per entity + ``dataset.json``).

    Files are written to temporary names and renamed, so a reader never sees a
    half-written file.  ``extra`` tables (e.g. derived scores) are written too.
    """
    if fmt not in ("csv", "parquet"):
        raise SpineregError(f"format must be 'csv' or 'parquet', not {fmt!r}")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    tables: dict[str, pd.DataFrame] = dict(extract.tables)
    if extra:
        tables.update(extra)
    for name, df in tables.items():
        path = d / f"{name}.{fmt}"
        tmp = d / f".{name}.{fmt}.partial"
        if fmt == "csv":
            to_csv(_to_csv_frame(df), tmp, index=False, lineterminator="\n")
        else:
            df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
        written.append(path)
    meta = {**extract.meta, "spinereg_version": __version__, "format": fmt,
            "tables": sorted(tables)}
    tmp = d / ".dataset.json.partial"
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, d / "dataset.json")
    written.append(d / "dataset.json")
    return written


def _column_bytes(s: pd.Series, col: Column) -> list[bytes]:
    """Canonical bytes of one conformed column: values, then the missing mask."""
    if col.type in ("str", "codes"):
        if getattr(s.dtype, "storage", "") == "pyarrow":
            arr = pa.chunked_array(pa.array(s.array)).combine_chunks().cast(pa.large_string())
        else:
            arr = pa.array(s.to_numpy(dtype=object), type=pa.large_string(), from_pandas=True)
        mask = arr.is_null().to_numpy(zero_copy_only=False)
        _, offsets, data = pc.fill_null(arr, "").buffers()
        return [offsets.to_pybytes() if offsets is not None else b"",
                data.to_pybytes() if data is not None else b"", mask.astype(np.bool_).tobytes()]
    missing = s.isna().to_numpy(dtype=bool)
    if col.type == "date":
        values = s.to_numpy(dtype="datetime64[s]").view(np.int64)
    elif col.type == "float":
        values = np.where(missing, 0.0, s.to_numpy(dtype=np.float64, na_value=np.nan))
    elif col.type in ("int", "bool"):
        values = s.to_numpy(dtype=np.int64, na_value=0)
    else:  # category: codes into the schema's fixed list of values
        values = np.asarray(s.cat.codes, dtype=np.int64)
    return [np.ascontiguousarray(values, dtype="<i8" if values.dtype.kind in "iu" else "<f8").tobytes(),
            missing.tobytes()]


def extract_sha256(extract: Extract) -> str:
    """SHA-256 of the extract's data, independent of where it is stored.

    For every entity in schema order the digest covers its name, its column
    names and row count, then, with the rows in key order, the SHA-256 of
    each column's canonical bytes: strings as UTF-8 with 64-bit offsets
    (Arrow ``large_string`` layout), dates as seconds since 1970, integers
    and booleans as little-endian int64, floats as IEEE doubles, categories
    as their position in the schema's list of values, each followed by the
    column's missing-value mask (one byte per row).  The same data therefore
    give the same digest whether they come from the registry database, a CSV
    or a Parquet extract.  Dataset metadata (name, dates) are not part of it.
    Columns are hashed in parallel threads.
    """
    jobs: list[tuple[str, pd.Series, Column]] = []
    headers: dict[str, str] = {}
    for e in entities():
        df = extract.tables[e.name]
        keys = list(e.key)
        in_order = len(keys) == 1 and pd.Index(df[keys[0]].astype(object)).is_monotonic_increasing
        if not in_order and len(df):
            df = df.sort_values(keys, kind="stable").reset_index(drop=True)
        headers[e.name] = f"# {e.name} {','.join(c.name for c in e.columns)} {len(df)}\n"
        jobs += [(e.name, df[c.name], c) for c in e.columns]

    def digest(job: tuple[str, pd.Series, Column]) -> bytes:
        h = hashlib.sha256()
        for part in _column_bytes(job[1], job[2]):
            h.update(part)
        return h.digest()

    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        digests = list(pool.map(digest, jobs))
    total = hashlib.sha256()
    seen: set[str] = set()
    for (name, _, _), d in zip(jobs, digests, strict=True):
        if name not in seen:
            total.update(headers[name].encode())
            seen.add(name)
        total.update(d)
    return total.hexdigest()


_ARROW_TO_PANDAS: dict[pa.DataType, Any] = {
    pa.string(): pd.StringDtype("pyarrow"),
    pa.large_string(): pd.StringDtype("pyarrow"),
    pa.int64(): pd.Int64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


def _read_parquet(path: Path) -> pd.DataFrame:
    """A Parquet table with Arrow-backed strings: no conversion to Python objects.

    Arrow-backed ``string`` columns behave as the Python-backed ones (same
    dtype family, same missing-value semantics) and are zero-copy here,
    which halves the time to load a national registry.
    """
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    frame: pd.DataFrame = table.to_pandas(types_mapper=_ARROW_TO_PANDAS.get, split_blocks=True, self_destruct=True)
    return frame


def read_extract(directory: str | Path) -> Extract:
    """Read an extract directory written by :func:`write_extract`."""
    d = Path(directory)
    meta_path = d / "dataset.json"
    if not meta_path.exists():
        raise SpineregError(f"{d}: not a spinereg extract (no dataset.json)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    fmt = meta.get("format", "csv")
    tables: dict[str, pd.DataFrame] = {}
    for e in entities():
        path = d / f"{e.name}.{fmt}"
        if not path.exists():
            raise SpineregError(f"{d}: missing {path.name}")
        if fmt == "csv":
            raw = pd.read_csv(path, dtype="string", keep_default_na=False, na_values=[""])
        else:
            raw = _read_parquet(path)
        tables[e.name] = conform(raw, e)
    meta.pop("spinereg_version", None)
    meta.pop("tables", None)
    meta.pop("format", None)
    return Extract(tables, meta)


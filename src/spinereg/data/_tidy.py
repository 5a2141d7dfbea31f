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
``extract_date``, ``source``, ``spinereg_version``); :func:`read_dataset_meta`
finds it for the files of an extract being imported, so that the flag and the
date survive the registry.

Reading is strict: :func:`read_extract` (and the registry's reader) conform
with ``strict=True``, so a value outside its column's vocabulary or range, or
a date or number that does not parse, is an error naming the file or table,
the row by its key, the column and the value, never a missing value.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from spinereg._errors import (
    IntegrityConflictError,
    InvalidInputError,
    Problem,
    SourceFileError,
    SpineregError,
    show_value,
)
from spinereg._version import __version__
from spinereg.data._csv import to_csv
from spinereg.data._schema import Column, Entity, entities, entity

__all__ = ["DATASET_KEYS", "Extract", "conform", "empty_table", "read_dataset_meta", "read_extract", "write_extract"]

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


_EMPTY: dict[int, tuple[Entity, pd.DataFrame]] = {}


def empty_table(ent: Entity) -> pd.DataFrame:
    """A zero-row DataFrame with the entity's columns and dtypes (a fresh copy of one built per entity:
    a single record's check asks for every entity's, and building them was a quarter of its time)."""
    cached = _EMPTY.get(id(ent))
    if cached is None or cached[0] is not ent:
        cached = (ent, pd.DataFrame({c.name: pd.Series([], dtype=_dtype(c)) for c in ent.columns}))
        _EMPTY[id(ent)] = cached
    return cached[1].copy()


_BOOL_TEXT = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_MAX_PROBLEMS = 100  # problems kept per error (all bad rows are counted)
_MAX_PER_RULE = 10  # of which at most this many per column and rule, so that the first shown are varied


def _bool_from_text(v: Any) -> Any:
    """Non-strict: ``true``/``1``/``yes`` (any case) is True, any other text False."""
    if v is pd.NA or v is None or isinstance(v, bool):
        return v
    return str(v).strip().lower() in ("true", "1", "yes")


def _row_keys(df: pd.DataFrame, keys: tuple[str, ...], rows: npt.NDArray[np.int64]) -> list[str]:
    """``"operation_id 'OP12'"`` (``", "``-joined for composite keys) for each row position; the
    0-based position when the frame lacks the key columns."""
    present = [k for k in keys if k in df.columns]
    if not present:
        return [f"at position {int(r)}" for r in rows]
    parts = [[f"{k} {show_value(v)}" for v in df[k].iloc[rows].astype(object).tolist()] for k in present]
    return [", ".join(p) for p in zip(*parts, strict=True)]


class _Problems:
    """Bad values found by a strict :func:`conform`: a mask of bad rows, and the first
    ``_MAX_PROBLEMS`` as :class:`~spinereg.Problem` (the row's key leads the rule: a
    registry table has no row numbers)."""

    def __init__(self, df: pd.DataFrame, keys: tuple[str, ...]) -> None:
        self.df = df
        self.keys = keys
        self.found: list[tuple[int, Problem]] = []
        self.bad_rows = np.zeros(len(df), dtype=bool)

    def add(self, col: Column, bad: Any, rule: str) -> None:
        mask = np.asarray(bad, dtype=bool)
        if not mask.any():
            return
        self.bad_rows |= mask
        room = min(_MAX_PROBLEMS - len(self.found), _MAX_PER_RULE)
        if room <= 0:
            return
        rows = np.flatnonzero(mask)[:room]
        values = self.df[col.name].iloc[rows].astype(object).tolist()
        for r, key, v in zip(rows, _row_keys(self.df, self.keys, rows), values, strict=True):
            self.found.append((int(r), Problem(None, col.name, v, f"row {key}: {rule}")))

    def raise_if_any(self, source: str) -> None:
        if self.found:
            self.found.sort(key=lambda rp: rp[0])
            raise InvalidInputError(source, [p for _, p in self.found], n_invalid=int(self.bad_rows.sum()))


def _vocabulary_rule(col: Column) -> str:
    return f"not in the vocabulary of {col.name}: {', '.join(col.values)}"


def _range_rule(col: Column) -> str:
    lo = "" if col.min is None else f"{col.min:g}"
    hi = "" if col.max is None else f"{col.max:g}"
    src = f" ({col.instrument} {col.item})" if col.instrument else ""
    return f"outside the range {lo}..{hi} of {col.name}{src}"


def _to_bool(v: Any) -> Any:
    """A stored boolean: bool, ``true``/``false``/``yes``/``no``/``1``/``0`` text (any case), or
    the numbers 1 and 0; None for anything else (and for missing)."""
    if v is None or v is pd.NA or isinstance(v, (bool, np.bool_)):
        return None if v is None or v is pd.NA else bool(v)
    if isinstance(v, str):
        return _BOOL_TEXT.get(v.strip().lower())
    if isinstance(v, (int, float, np.integer, np.floating)) and v in (0, 1):
        return bool(v)
    return None


def _as_floats(s: pd.Series) -> npt.NDArray[np.float64]:
    """Numbers as float64, NaN where missing or not a number (text: Arrow's strict cast, falling
    back to pandas' parser, which also takes surrounding blanks)."""
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        return np.asarray(s.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    if isinstance(s.dtype, pd.StringDtype):
        try:
            arr = pa.array(s.astype(object).where(s.notna(), None).to_numpy(), type=pa.string(), from_pandas=True)
            return np.asarray(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            num = pd.to_numeric(s.str.strip(), errors="coerce")
    else:
        num = pd.to_numeric(s.astype(object).map(lambda x: None if isinstance(x, (bool, np.bool_)) else
                                                 x.strip() if isinstance(x, str) else x), errors="coerce")
    return np.asarray(num.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def _strict_column(s: pd.Series, col: Column, dt: Any, problems: _Problems) -> pd.Series:
    """One column in its canonical dtype; every value that does not fit is recorded in ``problems``."""
    if col.type in ("str", "codes"):
        return s if isinstance(s.dtype, pd.StringDtype) else s.astype("string")
    present = s.notna().to_numpy(dtype=bool)
    if col.type == "category":
        if s.dtype == dt:
            return s
        if isinstance(s.dtype, pd.CategoricalDtype):  # check the categories, then find the rows of a stray one
            stray = [v for v in s.cat.categories if v not in col.values]
            bad = s.isin(stray).to_numpy(dtype=bool) if stray else np.zeros(len(s), dtype=bool)
        else:
            bad = present & ~s.isin(col.values).to_numpy(dtype=bool)
        problems.add(col, bad, _vocabulary_rule(col))
        return s.astype(dt)
    if col.type == "date":
        if s.dtype == dt:
            return s
        if pd.api.types.is_datetime64_any_dtype(s):
            return s.astype("datetime64[s]")
        try:  # text must be ISO 8601 (YYYY-MM-DD), as the tidy format writes it
            parsed = pd.to_datetime(s, format="ISO8601", errors="coerce")
        except (ValueError, TypeError, OverflowError):  # mixed objects pandas cannot take as one column
            parsed = pd.to_datetime(s.astype(object).map(lambda v: pd.to_datetime(v, format="ISO8601",
                                                                                  errors="coerce")),
                                    errors="coerce")
        problems.add(col, present & parsed.isna().to_numpy(dtype=bool), "not a date (YYYY-MM-DD)")
        return parsed.astype("datetime64[s]")
    if col.type == "bool":
        if s.dtype == dt:
            return s
        parsed = s.astype(object).map(_to_bool)
        problems.add(col, present & parsed.isna().to_numpy(dtype=bool), "not a boolean (true/false, yes/no, 1/0)")
        return parsed.astype("boolean")
    # int, float
    v = _as_floats(s)
    bad = present & ~np.isfinite(v)
    problems.add(col, bad, "not a number")
    if col.type == "int":
        with np.errstate(invalid="ignore"):
            frac = present & ~bad & (np.floor(v) != v)
            huge = present & ~bad & ~frac & (np.abs(v) > 2.0 ** 53)  # not exact as a double
        problems.add(col, frac, "not a whole number")
        problems.add(col, huge, "too large a whole number")
        bad |= frac | huge
    lo = -np.inf if col.min is None else col.min
    hi = np.inf if col.max is None else col.max
    with np.errstate(invalid="ignore"):
        problems.add(col, present & ~bad & ((v < lo) | (v > hi)), _range_rule(col))
    if s.dtype == dt:
        return s
    ok = present & ~bad
    if col.type == "int":
        return pd.Series(pd.arrays.IntegerArray(np.where(ok, v, 0).astype(np.int64), ~ok), index=s.index)
    return pd.Series(np.where(ok, v, np.nan), index=s.index)


def conform(df: pd.DataFrame, ent: Entity | str, *, strict: bool = False, source: str | None = None,
            keys: Sequence[str] | None = None) -> pd.DataFrame:
    """Return ``df`` with exactly the entity's columns, in order, canonical dtypes.

    Absent optional columns are added as missing; extra columns are dropped.
    By default values must already be valid (use :mod:`spinereg.data`
    validation first): this only converts types, e.g. ``"2015-03-01"`` to a
    date, and a category value outside the schema's vocabulary would become
    missing.  A value that cannot be converted at all (``"2015-13-45"`` as a
    date, ``"many"`` as a number) raises :class:`~spinereg.InvalidInputError`.

    With ``strict=True`` (reading the registry or an extract) every value is
    checked against the schema first, and any value that does not fit raises
    instead of becoming missing:

    * category: a value outside the column's vocabulary (``Column.values``);
    * date: a value that is not a date (text must be ISO 8601, ``YYYY-MM-DD``);
    * int, float: not a number, not a whole number (int), or outside the
      column's ``min``..``max`` (for PROM items the instrument's range);
    * bool: not ``true``/``false``, ``yes``/``no``, ``1``/``0`` (any case).

    Missing values (None, NaN, NA, NaT) are always allowed here; whether a
    column is required is validation's business.

    Parameters
    ----------
    df : DataFrame
        The rows, with (some of) the entity's columns.
    ent : Entity or str
        The tidy entity.
    strict : bool
        Check every value first (see above).
    source : str, optional
        Where the rows come from, for the message, e.g. ``"table
        spinereg_operations"`` or ``"operations.csv"``; default ``"entity
        <name>"``.
    keys : sequence of str, optional
        Columns that name a row in the message; default the entity's key.

    Raises
    ------
    InvalidInputError
        A value does not fit its column.  The message names the source, and
        for each bad value (the first 10 shown; :attr:`problems` holds up to
        100 in row order, at most 10 per column and rule; :attr:`n_invalid`
        counts all the bad rows) the column,
        the value, the row by its key and the rule, e.g.::

            table spinereg_operations: 1 invalid row(s)
              column 'indication': value 'cancer': row operation_id 'OP1': not in the
              vocabulary of indication: cancer_vcf, osteoporotic_vcf, ...
    """
    e = entity(ent) if isinstance(ent, str) else ent
    where = source or f"entity {e.name}"
    row_keys = tuple(keys) if keys is not None else e.key
    if strict:
        return _conform(df, e, _Problems(df, row_keys), where)
    try:
        return _conform(df, e, None, where)
    except (ValueError, TypeError, OverflowError) as exc:
        # a value that cannot be converted: name it (the strict pass finds it)
        _conform(df, e, _Problems(df, row_keys), where)
        raise exc from None  # not a value the strict checks know (should not happen)


def _conform(df: pd.DataFrame, e: Entity, problems: _Problems | None, where: str) -> pd.DataFrame:
    out: dict[str, pd.Series] = {}
    n = len(df)
    for c in e.columns:
        dt = _dtype(c)
        if c.name not in df.columns:
            out[c.name] = pd.Series(_all_missing(c, n), index=pd.RangeIndex(n))
            continue
        s = df[c.name]
        if problems is not None:
            s = _strict_column(s, c, dt, problems)
        elif s.dtype == dt or (c.type in ("str", "codes") and isinstance(s.dtype, pd.StringDtype)):
            pass  # already canonical (strings: Python- or Arrow-backed): no copy
        elif c.type == "date":
            s = pd.to_datetime(s, errors="raise").astype("datetime64[s]")
        elif c.type == "bool" and (s.dtype == object or pd.api.types.is_string_dtype(s)):
            s = s.astype(object).map(_bool_from_text).astype("boolean")
        elif c.type in ("str", "codes") and not isinstance(s.dtype, pd.StringDtype):
            s = s.astype("string")
        else:
            s = s.astype(dt)
        out[c.name] = s if s.index.equals(pd.RangeIndex(n)) else s.reset_index(drop=True)
    if problems is not None:
        problems.raise_if_any(where)
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
    """Read an extract directory written by :func:`write_extract`.

    Every value is checked against the schema (:func:`conform` with
    ``strict=True``): a category outside its vocabulary, a date or number that
    does not parse, or a number outside its range raises
    :class:`~spinereg.InvalidInputError` naming the file, row (by its key),
    column and value, instead of being read as missing.
    """
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
        tables[e.name] = conform(raw, e, strict=True, source=str(path))
    meta.pop("spinereg_version", None)
    meta.pop("tables", None)
    meta.pop("format", None)
    return Extract(tables, meta)



DATASET_KEYS = ("name", "synthetic", "source", "extract_date")
"""The keys of ``dataset.json`` that describe the dataset (what the registry keeps of it)."""


def _dataset_json(path: Path) -> Path:
    if path.is_dir():
        return path / "dataset.json"
    if path.name == "dataset.json":
        return path
    return path.parent / "dataset.json"


def read_dataset_meta(paths: Sequence[str | Path]) -> dict[str, Any]:
    """The dataset metadata of the extract that ``paths`` come from: its ``dataset.json``.

    Used when an extract directory is imported (``spinereg import --mapping tidy``),
    so that the synthetic flag, the extract date, the name and the source survive
    the round trip through the registry.  Each path may be an extract directory, a
    file in one (``patients.csv``, ...), or the ``dataset.json`` itself; the
    ``dataset.json`` beside each is read.

    Returns
    -------
    dict
        The keys of :data:`DATASET_KEYS` that the file holds: ``name``, ``source``
        (str), ``synthetic`` (bool), ``extract_date`` (ISO date string).  Empty when
        no path has a ``dataset.json`` beside it (e.g. hand-written tidy CSV files).

    Raises
    ------
    SourceFileError
        A ``dataset.json`` cannot be read, is not a JSON object, or holds a
        ``synthetic`` that is not true/false or an ``extract_date`` that is not an
        ISO date (YYYY-MM-DD); the message names the file.
    IntegrityConflictError
        The paths come from two extracts whose ``dataset.json`` disagree on one of
        these keys; the message names both files, the key and both values.
    """
    found: dict[Path, dict[str, Any]] = {}
    for p in paths:
        meta_path = _dataset_json(Path(p))
        key = meta_path.resolve()
        if key in found or not meta_path.is_file():
            continue
        try:
            doc = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise SourceFileError(f"{meta_path}: cannot read the extract's dataset metadata: {exc}") from None
        if not isinstance(doc, dict):
            raise SourceFileError(f"{meta_path}: not an extract's dataset metadata (a JSON object)")
        meta = {k: doc[k] for k in DATASET_KEYS if k in doc and doc[k] is not None}
        if "synthetic" in meta and not isinstance(meta["synthetic"], bool):
            raise SourceFileError(f"{meta_path}: \"synthetic\" must be true or false, not {meta['synthetic']!r}")
        if "extract_date" in meta:
            text = str(meta["extract_date"])
            try:
                if len(text) != 10:
                    raise ValueError
                meta["extract_date"] = date.fromisoformat(text).isoformat()
            except ValueError:
                raise SourceFileError(f"{meta_path}: \"extract_date\" must be a date (YYYY-MM-DD), "
                                      f"not {meta['extract_date']!r}") from None
        for k in ("name", "source"):
            if k in meta:
                meta[k] = str(meta[k])
        found[key] = meta
        first_path, first = next(iter(found.items()))
        for k in DATASET_KEYS:
            if first.get(k) != meta.get(k):
                raise IntegrityConflictError(
                    f"the files come from two extracts: {first_path} has {k} {first.get(k)!r}, {key} has "
                    f"{meta.get(k)!r}; import one extract at a time")
    return next(iter(found.values())) if found else {}

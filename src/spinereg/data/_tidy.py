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

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from spinereg._errors import SpineregError
from spinereg._version import __version__
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
            out[c.name] = pd.Series([None] * n, index=df.index, dtype=object).astype(
                "float64" if c.type == "float" else dt)
            continue
        s = df[c.name]
        if c.type == "date":
            s = pd.to_datetime(s, errors="raise").astype("datetime64[s]")
        elif c.type == "bool" and (s.dtype == object or pd.api.types.is_string_dtype(s)):
            s = s.astype(object).map(lambda v: v if v is pd.NA or v is None or isinstance(v, bool) else
                                     str(v).strip().lower() in ("true", "1", "yes")).astype("boolean")
        elif c.type in ("str", "codes") and s.dtype != "string":
            s = s.astype("string")
        else:
            s = s.astype(dt)
        out[c.name] = s
    return pd.DataFrame(out, index=df.index).reset_index(drop=True)


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
            _to_csv_frame(df).to_csv(tmp, index=False, lineterminator="\n")
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
            raw = pd.read_parquet(path)
        tables[e.name] = conform(raw, e)
    meta.pop("spinereg_version", None)
    meta.pop("tables", None)
    meta.pop("format", None)
    return Extract(tables, meta)


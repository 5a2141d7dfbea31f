"""Reading and writing tabular files for the CLI (CSV, XLSX, Parquet)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from spinereg._errors import SpineregError

__all__ = ["SUFFIXES", "read_table", "row_label", "write_table"]

SUFFIXES = (".csv", ".xlsx", ".parquet")


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise SpineregError(f"{path}: unsupported file type {suffix or '(none)'!r}; "
                            f"use {', '.join(SUFFIXES)}")
    return suffix


def read_table(path: Path, text_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a CSV, XLSX (first sheet) or Parquet file into a DataFrame."""
    kind = _kind(path)
    if not path.exists():
        raise SpineregError(f"{path}: no such file")
    try:
        if kind == ".csv":
            head = pd.read_csv(path, nrows=0)
            dtype = {c: "string" for c in text_columns if c in head.columns}
            return pd.read_csv(path, dtype=dtype, keep_default_na=True)
        if kind == ".xlsx":
            return pd.read_excel(path, sheet_name=0, engine="openpyxl")
        return pd.read_parquet(path)
    except Exception as exc:  # any reader failure is the file's problem, reported in one line
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SpineregError(f"{path}: cannot read as {kind[1:].upper()}: {first}") from None


def write_table(df: pd.DataFrame, path: Path) -> None:
    """Write ``df`` as CSV, XLSX or Parquet (by the suffix of ``path``)."""
    kind = _kind(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    try:
        if kind == ".csv":
            df.to_csv(tmp, index=False)
        elif kind == ".xlsx":
            df.to_excel(tmp, index=False, engine="openpyxl")
        else:
            df.to_parquet(tmp, index=False)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def row_label(path: Path, row: int) -> str:
    """Where data row ``row`` (0-based) stands in the file, for messages."""
    kind = path.suffix.lower()
    if kind == ".csv":
        return f"line {row + 2}"
    if kind == ".xlsx":
        return f"sheet row {row + 2}"
    return f"row {row + 1}"

"""Reading and writing the data files of ``spinereg score``.

Input is read as ``spinereg import`` reads it (:func:`spinereg.data.read_table`):
CSV, XLSX, Parquet, SAS, Stata or SPSS; a CSV file's delimiter and encoding are
detected, and its columns are kept as text exactly as written.  Output is CSV
(UTF-8, comma-separated, ``.`` as decimal mark, floats without binary noise:
:func:`spinereg.data.to_csv`), XLSX or Parquet, written under a temporary name and
renamed, so a failed run leaves no half-written file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from spinereg._errors import SpineregError
from spinereg.data import SourceTable, read_table, to_csv

__all__ = ["NUMBER", "OUTPUT_SUFFIXES", "check_output", "numbers", "read_input", "typed_columns", "write_table"]

OUTPUT_SUFFIXES = (".csv", ".xlsx", ".parquet")

#: A number as written in a data file: optional sign, digits, optional decimals after ``.`` or ``,``.
NUMBER = r"[+-]?[0-9]+(?:[.,][0-9]+)?"


def read_input(path: Path, *, sep: str | None = None, encoding: str | None = None, sheet: str | None = None,
               header_row: int | None = None) -> SourceTable:
    """The input file as a :class:`~spinereg.data.SourceTable` (see :func:`spinereg.data.read_table`)."""
    if sep is not None:
        sep = {"tab": "\t", "\\t": "\t"}.get(sep, sep)
    return read_table(path, sheet=sheet, delimiter=sep, encoding=encoding, header_row=header_row)


def check_output(input: Path, output: Path) -> None:
    """Refuse an output of an unknown type, or one that is the input file itself."""
    suffix = output.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise SpineregError(f"{output}: cannot write {suffix or 'a file without suffix'!r}; "
                            f"the output is {', '.join(OUTPUT_SUFFIXES)}")
    same = output.resolve() == input.resolve()
    if not same and output.exists() and input.exists():
        same = os.path.samefile(output, input)
    if same:
        raise SpineregError(f"{output}: is the input file; write the scores to another file (-o)")


def numbers(values: pd.Series) -> npt.NDArray[Any]:
    """Numbers from a column as read: text with ``.`` or ``,`` as decimal mark, blank = NaN.

    A column that is already numeric is returned as it is.  Text that is not a
    number is kept as it was, so the scoring function reports it as invalid with
    its value.
    """
    if not (pd.api.types.is_string_dtype(values.dtype) or values.dtype == object):
        return values.to_numpy()
    raw = values.to_numpy(dtype=object)
    txt = values.astype("string[pyarrow]").str.strip()
    blank = (txt.isna() | txt.eq("")).to_numpy(dtype=bool, na_value=True)
    number = txt.str.fullmatch(NUMBER).to_numpy(dtype=bool, na_value=False)
    parsed = pd.to_numeric(txt.where(number).str.replace(",", ".", regex=False), errors="coerce")
    out = np.asarray(parsed.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    bad = ~blank & ~number
    if not bad.any():
        return out
    mixed = out.astype(object)
    mixed[bad] = raw[bad]
    return mixed


def typed_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns that hold only numbers (and blanks) as numbers, for XLSX and Parquet output.

    A column is converted when every non-blank value is a plain number
    (``.`` or ``,`` as decimal mark) of at most 15 digits without a leading zero:
    ``007`` and long identifiers stay text.  Whole numbers become ``Int64``,
    others ``float64``.
    """
    out = frame.copy()
    plain = re.compile(r"[+-]?(?:0|[1-9][0-9]*)(?:[.,][0-9]+)?")
    for j in range(frame.shape[1]):
        s = frame.iloc[:, j]
        if not pd.api.types.is_string_dtype(s.dtype) or s.dtype == object:
            continue
        txt = s.astype("string[pyarrow]").str.strip()
        filled = txt.fillna("")
        given = filled.ne("").to_numpy(dtype=bool)
        if not given.any() or not filled[given].str.fullmatch(plain.pattern).all() or (
                filled[given].str.count("[0-9]").max() > 15):
            continue
        num = pd.to_numeric(filled.where(given, None).str.replace(",", ".", regex=False), errors="coerce")
        whole = (num.dropna() % 1 == 0).all()
        out.isetitem(j, num.astype("Int64").array if whole else num.to_numpy(dtype=np.float64))
    return out


def write_table(df: pd.DataFrame, path: Path) -> None:
    """Write ``df`` as CSV, XLSX or Parquet (by the suffix of ``path``), all or nothing."""
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        if suffix == ".csv":
            to_csv(df, tmp, index=False, encoding="utf-8")
        elif suffix == ".xlsx":
            typed_columns(df).to_excel(tmp, index=False, engine="openpyxl")
        else:
            typed_columns(df).to_parquet(tmp, index=False)
        tmp.replace(path)
    except OSError as exc:
        raise SpineregError(f"{path}: cannot write: {exc.strerror or type(exc).__name__}") from None
    finally:
        tmp.unlink(missing_ok=True)

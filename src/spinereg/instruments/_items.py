"""Validation of integer item responses against an instrument definition."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from spinereg._errors import InvalidInputError, Problem
from spinereg.instruments._definitions import Instrument

__all__ = ["ItemBlock", "item_matrix"]

_CHUNK = 1 << 15  # rows per pass: keeps the temporaries in cache


@dataclass(frozen=True)
class ItemBlock:
    """Validated item responses.

    Attributes
    ----------
    columns : list of ndarray
        Float responses per item; NaN where missing or invalid.
    n_missing : ndarray of int
        Items not answered per row (invalid cells are not counted as missing).
    total : ndarray of int
        Sum of the valid answered items per row.
    invalid : ndarray of bool
        Rows with at least one invalid value.
    problems : list of Problem
        One per invalid cell (row, column, value, rule), at most 1000.
    index : pandas.Index or None
    kind : str
        ``pandas``, ``array`` or ``scalar``.
    """

    columns: list[npt.NDArray[np.float64]]
    n_missing: npt.NDArray[np.int64]
    total: npt.NDArray[np.int64]
    invalid: npt.NDArray[np.bool_]
    problems: list[Problem]
    index: pd.Index | None
    kind: str

    @property
    def values(self) -> npt.NDArray[np.float64]:
        """The responses as an (n, k) float matrix (NaN = missing or invalid)."""
        return np.column_stack(self.columns)


def _numeric(a: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Float values of a column; NaN, None and empty strings become NaN,
    text that is not a number becomes +inf (so it is flagged invalid)."""
    if a.dtype.kind in "iufb":
        return a.astype(np.float64, copy=False)
    s = pd.Series(a, dtype="object")
    blank = s.isna().to_numpy(dtype=bool) | s.astype("string").str.strip().eq("").fillna(False).to_numpy(
        dtype=bool)
    parsed = np.asarray(pd.to_numeric(s.where(~blank, None), errors="coerce"), dtype=np.float64)
    return np.where(~blank & np.isnan(parsed), np.inf, parsed)


def _columns(data: Any, inst: Instrument,
             cols: list[str]) -> tuple[list[npt.NDArray[Any]], pd.Index | None, str]:
    if isinstance(data, pd.DataFrame):
        absent = [c for c in cols if c not in data.columns]
        if absent:
            raise InvalidInputError(inst.name, [Problem(None, None, list(map(str, data.columns)),
                                                        f"missing column(s) {' '.join(absent)}")])
        sub = data[cols]
        if all(dt.kind in "iufb" for dt in sub.dtypes):
            block = sub.to_numpy(dtype=np.float64)
            return [block[:, j] for j in range(block.shape[1])], data.index, "pandas"
        return [sub[c].to_numpy() for c in cols], data.index, "pandas"
    if isinstance(data, pd.Series) and len(inst.items) == 1:
        return [data.to_numpy()], data.index, "pandas"
    a = np.asarray(data)
    if len(inst.items) == 1 and a.ndim <= 1:
        return [a.reshape(-1)], None, "scalar" if a.ndim == 0 else "array"
    if a.ndim == 2 and a.shape[1] == len(inst.items):
        return [a[:, j] for j in range(a.shape[1])], None, "array"
    raise InvalidInputError(inst.name, [Problem(None, None, getattr(a, "shape", None),
                                                f"expected {len(inst.items)} columns")])


def item_matrix(data: Any, inst: Instrument, columns: Sequence[str] | None = None) -> ItemBlock:
    """Read and validate integer item responses (NaN = not answered).

    A value is valid when it is an integer within the item's range; anything
    else (out of range, decimals, text) is listed in ``problems``.  Vectorised
    in cache-sized chunks: no per-row Python.
    """
    cols = list(columns) if columns is not None else list(inst.item_ids)
    if len(cols) != len(inst.items):
        raise InvalidInputError(inst.name, [Problem(None, None, cols,
                                                    f"give {len(inst.items)} column names")])
    raw, index, kind = _columns(data, inst, cols)
    floats = [_numeric(a) for a in raw]
    n = floats[0].shape[0] if floats else 0
    small = all(it.max <= 127 and it.min >= -128 for it in inst.items)
    int_type: type[np.integer[Any]] = np.int8 if small else np.int64
    bad: npt.NDArray[np.bool_] = np.zeros(n, dtype=bool)
    # Narrow accumulators are faster; a row of <= 256 items of |value| <= 127 fits int16.
    narrow = small and len(floats) <= 256
    acc_type: type[np.integer[Any]] = np.int16 if narrow else np.int64
    n_missing: npt.NDArray[np.integer[Any]] = np.zeros(n, dtype=acc_type)
    total: npt.NDArray[np.integer[Any]] = np.zeros(n, dtype=acc_type)
    with np.errstate(invalid="ignore", over="ignore"):
        for start in range(0, n, _CHUNK):
            stop = min(n, start + _CHUNK)
            b, nm, tot = bad[start:stop], n_missing[start:stop], total[start:stop]
            for j, item in enumerate(inst.items):
                c = floats[j][start:stop]
                ki: npt.NDArray[np.integer[Any]] = c.astype(int_type)
                miss = np.isnan(c)
                ok = ki == c
                if item.min == 0 and small:
                    ok &= ki.view(np.uint8) <= item.max
                else:
                    ok &= (ki >= item.min) & (ki <= item.max)
                b |= ~(ok | miss)
                nm += miss
                ki[~ok] = 0
                tot += ki
    problems: list[Problem] = []
    if bad.any():
        rows = np.flatnonzero(bad)
        cells = []
        for j, item in enumerate(inst.items):
            c = floats[j][rows]
            good = np.isnan(c) | ((c == np.floor(c)) & (c >= item.min) & (c <= item.max))
            for i in rows[~good]:
                cells.append((int(i), j))
        cells.sort()
        for i, j in cells[:1000]:
            v = raw[j][i]
            item = inst.items[j]
            problems.append(Problem(i, cols[j], v.item() if isinstance(v, np.generic) else v,
                                    f"{inst.name} {item.id} must be an integer {item.min}..{item.max}"))
        floats = [f.copy() for f in floats]
        for i, j in cells:
            floats[j][i] = np.nan
    return ItemBlock(floats, n_missing.astype(np.int64), total.astype(np.int64), bad, problems, index, kind)

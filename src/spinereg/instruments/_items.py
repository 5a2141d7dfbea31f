"""Validation of item responses against an instrument definition."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from spinereg._errors import InvalidInputError, Problem
from spinereg.instruments._definitions import Instrument

__all__ = ["item_matrix"]


def _numeric(a: npt.NDArray[Any]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Float values and a missing mask (NaN, None, empty string are missing)."""
    if a.dtype.kind in "iufb":
        num = a.astype(np.float64)
        return num, np.isnan(num)
    s = pd.Series(a, dtype="object")
    blank = s.astype("string").str.strip().eq("").fillna(False).to_numpy(dtype=bool)
    missing = s.isna().to_numpy(dtype=bool) | blank
    parsed = pd.to_numeric(s.where(~missing, None), errors="coerce")
    return np.asarray(parsed, dtype=np.float64), missing


def item_matrix(data: Any, inst: Instrument, columns: Sequence[str] | None = None,
                ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_], list[Problem],
                           pd.Index | None, str]:
    """Read item responses into a float matrix (NaN = not answered).

    Returns
    -------
    values, invalid_rows, problems, index, kind
        ``values`` has shape (n, k); out-of-range or non-integer values are
        listed in ``problems`` and flagged in ``invalid_rows`` (their cells are
        NaN in ``values``).
    """
    cols = list(columns) if columns is not None else list(inst.item_ids)
    if len(cols) != len(inst.items):
        raise InvalidInputError(inst.name, [Problem(None, None, cols,
                                                    f"give {len(inst.items)} column names")])
    index: pd.Index | None = None
    kind = "array"
    if isinstance(data, pd.DataFrame):
        absent = [c for c in cols if c not in data.columns]
        if absent:
            raise InvalidInputError(inst.name, [Problem(None, None, list(map(str, data.columns)),
                                                        f"missing column(s) {' '.join(absent)}")])
        raw = [data[c].to_numpy() for c in cols]
        index = data.index
        kind = "pandas"
    elif isinstance(data, pd.Series) and len(inst.items) == 1:
        raw = [data.to_numpy()]
        index = data.index
        kind = "pandas"
    else:
        a = np.asarray(data)
        if len(inst.items) == 1 and a.ndim <= 1:
            kind = "scalar" if a.ndim == 0 else "array"
            raw = [a.reshape(-1)]
        elif a.ndim == 2 and a.shape[1] == len(inst.items):
            raw = [a[:, j] for j in range(a.shape[1])]
        else:
            raise InvalidInputError(inst.name, [Problem(None, None, getattr(a, "shape", None),
                                                        f"expected {len(inst.items)} columns")])
    n = len(raw[0]) if raw else 0
    values = np.full((n, len(cols)), np.nan)
    invalid = np.zeros(n, dtype=bool)
    problems: list[Problem] = []
    for j, (col, item) in enumerate(zip(cols, inst.items, strict=True)):
        a = raw[j]
        num, missing = _numeric(a)
        safe = np.nan_to_num(num)
        ok = ~missing & np.isfinite(num) & (np.floor(safe) == safe) & (num >= item.min) & (num <= item.max)
        bad = ~missing & ~ok
        for i in np.flatnonzero(bad)[:1000]:
            v = a[i]
            problems.append(Problem(int(i), col, v.item() if isinstance(v, np.generic) else v,
                                    f"{inst.name} {item.id} must be an integer {item.min}..{item.max}"))
        invalid |= bad
        values[:, j] = np.where(ok, num, np.nan)
    return values, invalid, problems, index, kind

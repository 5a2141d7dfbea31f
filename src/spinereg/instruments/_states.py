"""Turning user input into EQ-5D health states.

Accepted inputs (for every function that takes EQ-5D responses):

* a DataFrame with five dimension columns (``MO SC UA PD AD`` by default,
  renamable with ``dimensions=``), or with a ``state`` column of profiles;
* a mapping (e.g. a dict) of the five dimension names to arrays or scalars;
* a 2-D array of shape (n, 5);
* a 1-D array, Series or list of 5-digit profiles (``21345`` or ``"21345"``);
* a single profile (int or str).

Validation is vectorised.  Every invalid row is reported with its position,
column and value; nothing is silently coerced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from spinereg._errors import InvalidInputError, Problem
from spinereg.instruments._valuesets import DIMENSIONS

__all__ = ["ParsedStates", "parse_states"]

IntArray = npt.NDArray[np.int64]
Invalid = Literal["raise", "nan"]


@dataclass(frozen=True)
class ParsedStates:
    """Health states parsed from input.

    Attributes
    ----------
    code : ndarray of int64
        Table index of each row's state (``-1`` for invalid rows).
    valid : ndarray of bool
        Whether the row holds a valid state.
    problems : tuple of Problem
        One entry per invalid value (row, column, value, rule).
    index : pandas.Index or None
        The input's index, for pandas input (results are aligned to it).
    kind : str
        ``"pandas"``, ``"array"`` or ``"scalar"``: how to shape the result.
    """

    code: IntArray
    valid: npt.NDArray[np.bool_]
    problems: tuple[Problem, ...]
    index: pd.Index | None
    kind: str

    @property
    def n_invalid(self) -> int:
        return int((~self.valid).sum())

    def levels(self, n_levels: int) -> IntArray:
        """Dimension levels, shape (n, 5); invalid rows hold 0."""
        out = np.zeros((self.code.size, 5), dtype=np.int64)
        c = np.where(self.valid, self.code, 0)
        for j in range(4, -1, -1):
            out[:, j] = c % n_levels + 1
            c = c // n_levels
        out[~self.valid] = 0
        return out


def _fast_int_code(cols: Sequence[npt.NDArray[Any]], levels: int) -> IntArray | None:
    """Table index from integer columns, or None if any value is out of range."""
    try:
        return np.ravel_multi_index(
            tuple(np.asarray(c, dtype=np.intp) - 1 for c in cols), (levels,) * 5
        ).astype(np.int64, copy=False)
    except ValueError:
        return None


def _columns_code(cols: Sequence[Any], names: Sequence[str], levels: int,
                  what: str) -> tuple[IntArray, npt.NDArray[np.bool_], list[Problem]]:
    arrays = [np.asarray(c) for c in cols]
    n = max((a.size for a in arrays), default=0)
    arrays = [np.broadcast_to(a.reshape(-1) if a.ndim else a, (n,)) for a in arrays]
    if all(a.dtype.kind in "iu" for a in arrays):
        code = _fast_int_code(arrays, levels)
        if code is not None:
            return code, np.ones(n, dtype=bool), []
    valid = np.ones(n, dtype=bool)
    problems: list[Problem] = []
    ints: list[IntArray] = []
    for a, name in zip(arrays, names, strict=True):
        if a.dtype.kind in "iub":
            v = a.astype(np.int64)
            ok = (v >= 1) & (v <= levels)
        elif a.dtype.kind == "f":
            finite = np.isfinite(a)
            whole = finite & (np.floor(np.where(finite, a, 0)) == np.where(finite, a, 0))
            ok = whole & (a >= 1) & (a <= levels)
            v = np.where(ok, a, 1).astype(np.int64)
        else:
            num = pd.to_numeric(pd.Series(a, dtype="object"), errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan)
            whole = np.isfinite(num) & (np.floor(np.nan_to_num(num)) == np.nan_to_num(num))
            ok = whole & (num >= 1) & (num <= levels)
            v = np.where(ok, num, 1).astype(np.int64)
        for i in np.flatnonzero(~ok)[:1000]:
            problems.append(Problem(int(i), name, _py(a[i]), _rule(a[i], levels, what)))
        valid &= ok
        ints.append(np.where(ok, v, 1))
    code = np.ravel_multi_index(tuple(x - 1 for x in ints), (levels,) * 5).astype(np.int64)
    code[~valid] = -1
    return code, valid, problems


def _py(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x


def _rule(x: Any, levels: int, what: str) -> str:
    if x is None or (isinstance(x, float | np.floating) and np.isnan(x)) or x is pd.NA:
        return f"missing; {what} levels must be integers 1..{levels}"
    return f"not a level of {what} (integers 1..{levels})"


def _profile_code(values: Any, levels: int, what: str,
                  column: str) -> tuple[IntArray, npt.NDArray[np.bool_], list[Problem]]:
    a = np.asarray(values)
    if a.ndim == 0:
        a = a.reshape(1)
    n = a.size
    if a.dtype.kind in "iu":
        num = a.astype(np.int64)
        finite = np.ones(n, dtype=bool)
    elif a.dtype.kind == "f":
        finite = np.isfinite(a)
        numf = np.where(finite, a, 0.0)
        finite &= np.floor(numf) == numf
        num = numf.astype(np.int64)
    else:
        s = pd.Series(a, dtype="object").astype("string").str.strip()
        ok_text = s.str.fullmatch(r"[0-9]{5}").fillna(False).to_numpy(dtype=bool)
        num = np.where(ok_text, pd.to_numeric(s.where(ok_text, "0"), errors="coerce")
                       .to_numpy(dtype=np.float64, na_value=0), 0).astype(np.int64)
        finite = ok_text
    digits = np.stack([(num // 10 ** (4 - j)) % 10 for j in range(5)], axis=1)
    valid = finite & (num >= 11111) & (num <= 99999) & np.all((digits >= 1) & (digits <= levels), axis=1)
    problems = [
        Problem(int(i), column, _py(a[i]),
                f"not an {what} profile (5 digits, each 1..{levels})")
        for i in np.flatnonzero(~valid)[:1000]
    ]
    safe = np.where(valid[:, None], digits, 1)
    code = np.ravel_multi_index(tuple(safe[:, j] - 1 for j in range(5)), (levels,) * 5).astype(np.int64)
    code[~valid] = -1
    return code, valid, problems


def parse_states(scores: Any, levels: int, *, what: str,
                 dimensions: Sequence[str] = DIMENSIONS) -> ParsedStates:
    """Parse EQ-5D responses into table indices (see module docstring)."""
    dims = list(dimensions)
    if len(dims) != 5:
        raise InvalidInputError("dimensions", [Problem(None, None, dims, "give exactly five names")])
    if isinstance(scores, pd.DataFrame):
        cols = {str(c): c for c in scores.columns}
        if all(d in cols for d in dims):
            code, valid, problems = _columns_code(
                [scores[cols[d]].to_numpy() for d in dims], dims, levels, what)
        elif "state" in cols:
            code, valid, problems = _profile_code(scores[cols["state"]].to_numpy(), levels, what, "state")
        else:
            missing = [d for d in dims if d not in cols]
            raise InvalidInputError(
                "EQ-5D input", [Problem(None, None, list(cols),
                                        f"needs columns {' '.join(dims)} or 'state'; "
                                        f"missing {' '.join(missing)}")])
        return ParsedStates(code, valid, tuple(problems), scores.index, "pandas")
    if isinstance(scores, Mapping):
        missing = [d for d in dims if d not in scores]
        if missing:
            raise InvalidInputError(
                "EQ-5D input", [Problem(None, None, sorted(map(str, scores)),
                                        f"needs keys {' '.join(dims)}; missing {' '.join(missing)}")])
        cols_in = [np.asarray(scores[d]) for d in dims]
        scalar = all(c.ndim == 0 for c in cols_in)
        code, valid, problems = _columns_code(cols_in, dims, levels, what)
        return ParsedStates(code, valid, tuple(problems), None, "scalar" if scalar else "array")
    if isinstance(scores, pd.Series):
        code, valid, problems = _profile_code(scores.to_numpy(), levels, what,
                                              str(scores.name) if scores.name is not None else "state")
        return ParsedStates(code, valid, tuple(problems), scores.index, "pandas")
    if isinstance(scores, (str, int, np.integer)):
        code, valid, problems = _profile_code(np.array([scores]), levels, what, "state")
        return ParsedStates(code, valid, tuple(problems), None, "scalar")
    a = np.asarray(scores)
    if a.ndim == 2:
        if a.shape[1] != 5:
            raise InvalidInputError("EQ-5D input", [Problem(None, None, a.shape,
                                                            "a 2-D array needs 5 columns")])
        code, valid, problems = _columns_code([a[:, j] for j in range(5)], dims, levels, what)
        return ParsedStates(code, valid, tuple(problems), None, "array")
    if a.ndim == 1:
        code, valid, problems = _profile_code(a, levels, what, "state")
        return ParsedStates(code, valid, tuple(problems), None, "array")
    raise InvalidInputError("EQ-5D input", [Problem(None, None, type(scores).__name__,
                                                    "unsupported input type")])

"""EQ-5D index scoring, mirroring the R package ``eq5d``."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from spinereg._errors import InvalidInputError, SpineregError
from spinereg.instruments._rounding import round_half_away
from spinereg.instruments._states import ParsedStates, parse_states
from spinereg.instruments._valuesets import DIMENSIONS, ValueSet, find_valueset, normalise_version

__all__ = ["InvalidInputWarning", "eq5d", "resolve_valueset", "shape_result"]

Invalid = Literal["raise", "nan"]


class InvalidInputWarning(UserWarning):
    """Rows were invalid and scored as NaN (``invalid="nan"``)."""


def resolve_valueset(version: str, type: str | None, country: str,
                     method: str | None = None) -> ValueSet:
    """Find the value set, checking that it scores data of ``version``."""
    v = normalise_version(version)
    t = None if type is None else str(type).strip()
    if t is not None and t.upper() == "CW" and v != "5L":
        raise SpineregError(
            f"the CW crosswalk scores EQ-5D-5L responses on a 3L value set; "
            f"version must be '5L', not {version!r}")
    if t is not None and t.upper() == "RCW" and v != "3L":
        raise SpineregError(
            f"the RCW reverse crosswalk scores EQ-5D-3L responses on a 5L value set; "
            f"version must be '3L', not {version!r}")
    return find_valueset(v, t, country, method)


def shape_result(values: npt.NDArray[np.float64], parsed: ParsedStates, name: str) -> Any:
    """Return ``values`` shaped like the input (Series, array or float)."""
    if parsed.kind == "pandas":
        return pd.Series(values, index=parsed.index, name=name)
    if parsed.kind == "scalar":
        return float(values[0])
    return values


def check_invalid(parsed: ParsedStates, invalid: str, what: str) -> None:
    """Raise (strict) or warn (nan mode) about invalid rows."""
    if invalid not in ("raise", "nan"):
        raise SpineregError(f"invalid must be 'raise' or 'nan', not {invalid!r}")
    n_bad = parsed.n_invalid
    if not n_bad:
        return
    if invalid == "raise":
        raise InvalidInputError(what, parsed.problems, n_bad)
    warnings.warn(f"{what}: {n_bad} invalid row(s) scored as NaN", InvalidInputWarning, stacklevel=3)


def eq5d(
    scores: Any,
    version: str = "5L",
    type: str | None = "VT",
    country: str = "Denmark",
    *,
    invalid: Invalid = "raise",
    digits: int | None = None,
    dimensions: Sequence[str] = DIMENSIONS,
    method: str | None = None,
    age: Any = None,
    sex: Any = None,
) -> Any:
    """Compute EQ-5D index values with a published value set.

    Mirrors R's ``eq5d::eq5d(scores, version, type, country)``.

    Parameters
    ----------
    scores : DataFrame, mapping, array, Series, int or str
        Five dimension columns (``MO SC UA PD AD`` by default), a ``state``
        column of 5-digit profiles, a mapping of dimension names to arrays, an
        (n, 5) array, or profiles as ints or strings.
    version : {"3L", "5L", "Y3L"}
        The descriptive system the responses were collected with.
    type : str or None
        ``TTO``, ``VAS`` (3L), ``VT`` (5L), ``cTTO``/``DCE`` (Y3L, may be
        omitted), ``CW`` (5L responses on a 3L set, van Hout 2012) or ``RCW``
        (3L responses on a 5L set).  ``DSU`` (the NICE DSU age/sex mapping)
        is accepted as in R but not bundled: it raises an error that says why.
    country : str
        Country as the R package spells it (``Denmark``, ``UK``,
        ``Japan_cTTO``...) or an unambiguous ISO 3166 code (``DK``).
    invalid : {"raise", "nan"}
        ``raise`` (default): any invalid row raises one
        :class:`~spinereg.InvalidInputError` naming the rows and values.
        ``nan``: invalid rows give NaN and an :class:`InvalidInputWarning`
        reports how many; Series results also carry
        ``result.attrs["n_invalid"]``.
    digits : int, optional
        Round the result to this many decimals, half away from zero on the
        decimal value (see :func:`spinereg.instruments.round_half_away`).
        Default: full precision.
    dimensions : sequence of str
        The five dimension column names, in MO SC UA PD AD order.
    method : {"VH", "EQ"}, optional
        For ``RCW``: van Hout & Shaw 2021 (``VH``, default) or EuroQol 2019 (``EQ``).
    age, sex : array_like, optional
        Reserved for ``DSU`` (not bundled); must be None otherwise.

    Returns
    -------
    Series, ndarray or float
        Index values aligned with the input (a Series with the input's index
        for pandas input).

    Notes
    -----
    Missing responses are invalid: strict mode raises, ``nan`` mode gives NaN.
    Every value set is evaluated once into a table over all health states
    and scoring is a single vectorised gather.
    """
    vs = resolve_valueset(version, type, country, method)
    what = f"EQ-5D-{vs.version}"
    parsed = parse_states(scores, vs.levels, what=what, dimensions=dimensions)
    check_invalid(parsed, invalid, what)
    if age is not None or sex is not None:
        raise SpineregError("age and sex are used only by type='DSU'")
    table = vs.table()
    if parsed.n_invalid:
        values = np.where(parsed.valid, table[np.where(parsed.valid, parsed.code, 0)], np.nan)
    else:
        values = table[parsed.code]
    if digits is not None:
        values = round_half_away(values, digits)
    result = shape_result(values, parsed, "index")
    if isinstance(result, pd.Series):
        result.attrs["n_invalid"] = parsed.n_invalid
        result.attrs["valueset"] = vs.key
    return result

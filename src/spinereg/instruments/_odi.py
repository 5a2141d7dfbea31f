"""Oswestry Disability Index 2.1a."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from spinereg._errors import InvalidInputError, SpineregError
from spinereg.instruments._definitions import get_instrument
from spinereg.instruments._eq5d import InvalidInputWarning
from spinereg.instruments._items import item_matrix
from spinereg.instruments._rounding import round_half_away

__all__ = ["odi", "odi_band"]


def _band_codes(score: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.int8], list[str]]:
    """Band index of each score (-1 for NaN or above the last limit)."""
    params = get_instrument("odi").params
    limits = [float(x) for x in params["band_limits"]]
    codes = np.zeros(score.shape, dtype=np.int8)
    for limit in limits[:-1]:
        codes += score > limit
    codes[~(score <= limits[-1]) | (score < 0)] = -1  # NaN compares False
    return codes, [str(x) for x in params["band_labels"]]


def odi_band(score: Any) -> Any:
    """Disability band of ODI scores (Fairbank & Pynsent 2000).

    0-20 ``minimal``, over 20 to 40 ``moderate``, over 40 to 60 ``severe``,
    over 60 to 80 ``crippled``, over 80 to 100 ``bed-bound``; NaN gives a
    missing band.  A score with decimals (sections missing) is banded by its
    exact value: 20.0 is minimal, 20.1 moderate.

    Returns an ordered Categorical (a Series for Series input, a str or None
    for a scalar).
    """
    s = np.asarray(score, dtype=float)
    codes, labels = _band_codes(s.reshape(-1))
    cat = pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(labels, ordered=True))
    if isinstance(score, pd.Series):
        return pd.Series(cat, index=score.index, name="odi_band")
    if s.ndim == 0:
        return None if codes[0] < 0 else labels[int(codes[0])]
    return cat


def odi(items: Any, max_missing: int = 1, invalid: Literal["raise", "nan"] = "raise", *,
        columns: Sequence[str] | None = None, digits: int | None = None) -> pd.DataFrame:
    """Score the Oswestry Disability Index (ODI) version 2.1a.

    ``odi = 100 * sum / (5 * sections answered)``, each of the ten sections
    scored 0-5.  A missing section (NaN or empty) is left out of both the
    sum and the denominator, as the ODI's authors advise.

    Parameters
    ----------
    items : DataFrame or array
        Columns ``odi_1`` ... ``odi_10`` (or ``columns``), or an (n, 10) array.
    max_missing : int
        Most sections that may be missing (default 1).  With more missing
        the score is NaN and ``odi_note`` says why.
    invalid : {"raise", "nan"}
        A value outside 0-5 or not an integer raises
        :class:`~spinereg.InvalidInputError` naming row, column and value
        (default), or gives a NaN score with the reason (``"nan"``).
    digits : int, optional
        Round the score half away from zero on its decimal value.

    Returns
    -------
    pandas.DataFrame
        ``odi`` (0-100), ``odi_band`` (ordered categorical), ``odi_missing``
        (number of missing sections) and ``odi_note`` (categorical: why the
        score is NaN, else empty), aligned with the input rows.

    References
    ----------
    Fairbank JC, Pynsent PB. The Oswestry Disability Index. Spine
    2000;25(22):2940-52. doi:10.1097/00007632-200011150-00017
    """
    if invalid not in ("raise", "nan"):
        raise SpineregError(f"invalid must be 'raise' or 'nan', not {invalid!r}")
    inst = get_instrument("odi")
    k = len(inst.items)
    if not 0 <= max_missing < k:
        raise SpineregError(f"max_missing must be between 0 and {k - 1}, got {max_missing}")
    block = item_matrix(items, inst, columns)
    if block.problems and invalid == "raise":
        raise InvalidInputError("ODI", block.problems)
    bad = block.invalid
    n_missing = block.n_missing
    answered = k - n_missing
    total = block.total
    too_many = n_missing > max_missing
    with np.errstate(invalid="ignore", divide="ignore"):
        score: npt.NDArray[np.float64] = total.astype(np.float64) * 20.0  # = 100 * total / (5 * answered)
        score /= answered
    score[too_many | bad] = np.nan
    if digits is not None:
        score = round_half_away(score, digits)
    score = np.asarray(score, dtype=np.float64)  # rounding keeps float64
    # Notes as a categorical: "" (scored), "invalid section value", or "m of k missing".
    note_labels = ["", "invalid section value"] + [
        f"{m} of {k} sections missing (at most {max_missing} allowed)" for m in range(max_missing + 1, k + 1)]
    note_codes = np.zeros(score.shape, dtype=np.int8)
    if too_many.any():
        note_codes[too_many] = (n_missing[too_many] - max_missing + 1).astype(np.int8)
    note_codes[bad] = 1
    if bad.any():
        warnings.warn(f"ODI: {int(bad.sum())} invalid row(s) scored as NaN", InvalidInputWarning,
                      stacklevel=2)
    band_codes, band_labels = _band_codes(score)
    return pd.DataFrame({
        "odi": score,
        "odi_band": pd.Categorical.from_codes(band_codes,
                                              dtype=pd.CategoricalDtype(band_labels, ordered=True)),
        "odi_missing": n_missing.astype(np.int64),
        "odi_note": pd.Categorical.from_codes(note_codes, dtype=pd.CategoricalDtype(note_labels)),
    }, index=block.index)

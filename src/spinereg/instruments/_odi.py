"""Oswestry Disability Index 2.1a."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from spinereg._errors import InvalidInputError, SpineregError
from spinereg.instruments._definitions import get_instrument
from spinereg.instruments._eq5d import InvalidInputWarning
from spinereg.instruments._items import item_matrix
from spinereg.instruments._rounding import round_half_away

__all__ = ["odi", "odi_band"]


def odi_band(score: Any) -> Any:
    """Disability band of ODI scores (Fairbank & Pynsent 2000).

    0-20 ``minimal``, over 20 to 40 ``moderate``, over 40 to 60 ``severe``,
    over 60 to 80 ``crippled``, over 80 to 100 ``bed-bound``; NaN gives None.
    A score with decimals (sections missing) is banded by its exact value:
    20.0 is minimal, 20.1 moderate.
    """
    params = get_instrument("odi").params
    limits = np.asarray(params["band_limits"], dtype=float)
    labels = np.asarray([*params["band_labels"], None], dtype=object)
    s = np.asarray(score, dtype=float)
    pos = np.searchsorted(limits, s, side="left")
    pos = np.where(np.isnan(s), len(limits), pos)
    out = labels[np.minimum(pos, len(limits))]
    if isinstance(score, pd.Series):
        return pd.Series(out, index=score.index, name="odi_band", dtype="object")
    return out if out.ndim else out.item()


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
        ``odi`` (0-100), ``odi_band``, ``odi_missing`` (number of missing
        sections) and ``odi_note`` (why the score is NaN, else empty),
        aligned with the input rows.

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
    values, bad, problems, index, _ = item_matrix(items, inst, columns)
    if problems and invalid == "raise":
        raise InvalidInputError("ODI", problems)
    answered = (~np.isnan(values)).sum(axis=1)
    n_missing = k - answered
    total = np.nansum(values, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = 100.0 * total / (5.0 * answered)
    too_many = n_missing > max_missing
    score = np.where(too_many | bad, np.nan, score)
    if digits is not None:
        score = round_half_away(score, digits)
    note = np.full(score.shape, "", dtype=object)
    note[too_many] = [f"{m} of {k} sections missing (at most {max_missing} allowed)"
                      for m in n_missing[too_many]]
    note[bad] = "invalid section value"
    if bad.any():
        warnings.warn(f"ODI: {int(bad.sum())} invalid row(s) scored as NaN", InvalidInputWarning,
                      stacklevel=2)
    out = pd.DataFrame({
        "odi": score,
        "odi_band": odi_band(score),
        "odi_missing": n_missing.astype(np.int64),
        "odi_note": note,
    }, index=index)
    return out

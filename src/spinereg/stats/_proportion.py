"""A binomial proportion with its confidence interval, as R's binom.test and prop.test."""

from __future__ import annotations

import math
import numbers
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from spinereg._errors import SpineregError
from spinereg.stats._checks import check_conf_level

__all__ = ["proportion"]

_COLUMNS = ["x", "n", "proportion", "ci_low", "ci_high", "method", "note"]
#: our method name -> scipy's ``proportion_ci(method=...)``
_SCIPY_METHOD = {"clopper-pearson": "exact", "wilson": "wilson", "wilson-cc": "wilsoncc"}


def _count(value: Any, name: str) -> int:
    """A non-negative whole number given as int, integral float or numpy scalar."""
    if isinstance(value, (bool, np.bool_)):
        raise SpineregError(f"{name} must be a whole number, not {value!r}")
    if isinstance(value, numbers.Integral):
        out = int(value)
    elif isinstance(value, numbers.Real) and math.isfinite(float(value)) and float(value).is_integer():
        out = int(float(value))
    else:
        raise SpineregError(f"{name} must be a whole number, not {value!r}")
    if out < 0:
        raise SpineregError(f"{name} must not be negative, got {out}")
    return out




def proportion(x: int, n: int,
               method: Literal["clopper-pearson", "wilson", "wilson-cc"] = "clopper-pearson",
               conf_level: float = 0.95) -> pd.DataFrame:
    """Proportion ``x / n`` with a two-sided confidence interval.

    Parameters
    ----------
    x : int
        Number of patients with the outcome, ``0 <= x <= n``.
    n : int
        Number of patients (``n >= 0``).  Patients with a missing outcome
        must not be counted in ``n``: the interval is for the complete cases.
    method : {"clopper-pearson", "wilson", "wilson-cc"}
        ``"clopper-pearson"``: exact interval of R's ``binom.test`` (Clopper &
        Pearson 1934): :math:`[B(\\alpha/2; x, n-x+1),\\ B(1-\\alpha/2; x+1, n-x)]`
        with :math:`B` the beta quantile, 0 for ``x = 0`` and 1 for ``x = n``.

        ``"wilson"``: Wilson (1927) score interval, R's
        ``prop.test(x, n, correct = FALSE)``:
        :math:`\\bigl(\\hat p + \\tfrac{z^2}{2n} \\mp z\\sqrt{\\hat p(1-\\hat p)/n
        + z^2/(4n^2)}\\bigr) / (1 + z^2/n)`.

        ``"wilson-cc"``: Wilson interval with continuity correction, R's
        ``prop.test(x, n, correct = TRUE)`` (Newcombe 1998, method 4): the
        formula above with :math:`\\hat p` replaced by :math:`\\hat p \\pm c/n`
        for the upper/lower limit, lower limit 0 if :math:`\\hat p - c/n \\le 0`
        and upper 1 if :math:`\\hat p + c/n \\ge 1`, where
        :math:`c = \\min(0.5, |x - n/2|)`.  That minimum is R's: for
        ``x = n/2`` R applies no correction and the interval equals Wilson's.
        scipy (``binomtest(...).proportion_ci``), used for the computation,
        always applies ``c = 0.5``, so that one case is taken from the Wilson
        interval here.
    conf_level : float
        Confidence level, strictly between 0 and 1.

    Returns
    -------
    pandas.DataFrame
        One row: ``x, n, proportion, ci_low, ci_high, method, note``.  For
        ``n = 0`` nothing is estimable: the numbers are NaN and ``note``
        says so; otherwise ``note`` is ``""``.

    Raises
    ------
    SpineregError
        ``x`` or ``n`` not a whole number, negative, ``x > n``, ``conf_level``
        outside (0, 1) or an unknown ``method``.

    References
    ----------
    R Core Team, ``?binom.test`` and ``?prop.test`` (package stats).
    Clopper CJ, Pearson ES (1934). The use of confidence or fiducial limits
    illustrated in the case of the binomial. Biometrika 26:404-413.
    Wilson EB (1927). Probable inference, the law of succession, and
    statistical inference. JASA 22:209-212.
    Newcombe RG (1998). Two-sided confidence intervals for the single
    proportion: comparison of seven methods. Stat Med 17:857-872.
    """
    if method not in _SCIPY_METHOD:
        raise SpineregError(f"method must be one of {', '.join(map(repr, _SCIPY_METHOD))}, "
                            f"not {method!r}")
    level = check_conf_level(conf_level)
    k = _count(x, "x")
    size = _count(n, "n")
    if k > size:
        raise SpineregError(f"x must not exceed n, got x={k} and n={size}")
    if size == 0:
        values = (math.nan, math.nan, math.nan)
        note = "not estimable: n = 0"
    else:
        scipy_method = _SCIPY_METHOD[method]
        if method == "wilson-cc" and 2 * k == size:
            scipy_method = "wilson"  # R: correction min(0.5, |x - n/2|) = 0
        ci = binomtest(k, size).proportion_ci(confidence_level=level, method=scipy_method)
        values = (k / size, float(ci.low), float(ci.high))
        note = ""
    out = pd.DataFrame([[k, size, *values, method, note]], columns=_COLUMNS)
    out[["x", "n"]] = out[["x", "n"]].astype(np.int64)
    out[["proportion", "ci_low", "ci_high"]] = out[["proportion", "ci_low", "ci_high"]].astype(np.float64)
    return out

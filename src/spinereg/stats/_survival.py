"""Kaplan-Meier survival with Greenwood CIs and the median, as R's survival package.

Hand-written (not lifelines): lifelines offers only the log(-log) interval
and does not reproduce ``summary.survfit`` at requested times nor the
median's confidence interval of ``print.survfit``.  The formulas follow
survival 3.5 (``survfitKM``/``survfitkm.c``, ``survfit_confint``,
``survfit0``, ``summary.survfit`` and ``survmean``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import special

from spinereg._errors import SpineregError
from spinereg.stats._checks import check_conf_level

__all__ = ["KaplanMeierResult", "kaplan_meier"]

FloatArray = npt.NDArray[np.float64]

_CONF_TYPES = ("log", "log-log", "plain")
_TABLE_COLUMNS = ["time", "n_risk", "survival", "ci_low", "ci_high"]
_MEDIAN_COLUMNS = ["median", "ci_low", "ci_high"]
_SUMMARY_COLUMNS = ["quantity", "time", "n_risk", "estimate", "ci_low", "ci_high", "conf_type",
                    "conf_level", "note"]
#: survmean's tolerance for "survival equals 0.5" (same as all.equal).
_HALF_TOL = math.sqrt(float(np.finfo(np.float64).eps))


@dataclass(frozen=True)
class KaplanMeierResult:
    """Result of :func:`kaplan_meier`.

    Attributes
    ----------
    table : pandas.DataFrame
        ``time, n_risk, survival, ci_low, ci_high`` at the requested times,
        as R's ``summary(survfit(...), times = ...)`` reports them.
    median : pandas.DataFrame
        One row ``median, ci_low, ci_high``: R's median survival time and its
        confidence interval (NaN where R gives NA, e.g. median not reached).
    summary : pandas.DataFrame
        Both combined in long form: ``quantity`` ("survival" rows at each
        time, then one "median" row whose ``estimate`` is the median time and
        ``n_risk`` the number of patients), ``time, n_risk, estimate, ci_low,
        ci_high, conf_type, conf_level, note``.
    n : int
        Number of patients used (complete rows).
    events : int
        Number of events.
    conf_type : str
        Transformation of the pointwise CIs.
    conf_level : float
        Confidence level.
    note : str
        ``""`` when everything is estimable, else a plain explanation
        (no patients, no events, median not reached ...).
    """

    table: pd.DataFrame
    median: pd.DataFrame
    summary: pd.DataFrame
    n: int
    events: int
    conf_type: str
    conf_level: float
    note: str


def _as_vector(values: Any, name: str) -> FloatArray:
    obj = values if isinstance(values, (pd.Series, pd.Index)) else np.asarray(values, dtype=object)
    if obj.ndim != 1:
        raise SpineregError(f"{name} must be one-dimensional, got shape {np.shape(values)}")
    try:
        return pd.Series(obj).to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise SpineregError(f"{name} must be numeric: {exc}") from None




def _confint(surv: FloatArray, se: FloatArray, conf_type: str, level: float
             ) -> tuple[FloatArray, FloatArray]:
    """R's ``survfit_confint(p, se, logse = TRUE, ...)``; NaN where R gives NA."""
    z = float(special.ndtri(1.0 - (1.0 - level) / 2.0))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # scale = ifelse(selow == 0, 1, selow/se) with selow = se: 1, or NaN for se = Inf
        scale = np.where(se == 0, 1.0, se / se)
        if conf_type == "plain":
            se2 = se * surv * z
            lower = np.fmax(surv - se2 * scale, 0.0)
            upper = np.fmin(surv + se2, 1.0)
            bad = np.isnan(se2)  # R's pmax/pmin propagate NA
            lower[bad] = np.nan
            upper[bad] = np.nan
        elif conf_type == "log":
            xx = np.where(surv == 0, np.nan, surv)
            se2 = z * se
            lower = np.exp(np.log(xx) - se2 * scale)
            upper = np.fmin(np.exp(np.log(xx) + se2), 1.0)
            upper[np.isnan(xx) | np.isnan(se2)] = np.nan
        else:  # log-log
            xx = np.where((surv == 0) | (surv == 1), np.nan, surv)
            se2 = z * se / np.log(xx)
            lower = np.exp(-np.exp(np.log(-np.log(xx)) - se2 * scale))
            upper = np.exp(-np.exp(np.log(-np.log(xx)) + se2))
    return lower.astype(np.float64), upper.astype(np.float64)


def _first_below_half(y: FloatArray, x: FloatArray) -> float:
    """survmean's ``minmin``: first x with y <= 0.5 (within tolerance), the
    midpoint rule when y is 0.5 over an interval, NaN when never reached."""
    keep = ~np.isnan(y) & (y < 0.5 + _HALF_TOL)
    if not keep.any():
        return math.nan
    xs, ys = x[keep], y[keep]
    lower = np.flatnonzero(ys < ys[0])
    if abs(ys[0] - 0.5) < _HALF_TOL and lower.size:
        return float((xs[0] + xs[lower[0]]) / 2)
    return float(xs[0])


def _empty(times: FloatArray, conf_type: str, level: float, note: str) -> KaplanMeierResult:
    table = pd.DataFrame({"time": times, "n_risk": np.zeros(times.size, dtype=np.int64),
                          "survival": np.nan, "ci_low": np.nan, "ci_high": np.nan},
                         columns=_TABLE_COLUMNS)
    median = pd.DataFrame([[math.nan] * 3], columns=_MEDIAN_COLUMNS, dtype=np.float64)
    return KaplanMeierResult(table, median, _summary(table, median, 0, conf_type, level, note),
                             0, 0, conf_type, level, note)


def _summary(table: pd.DataFrame, median: pd.DataFrame, n: int, conf_type: str, level: float,
             note: str) -> pd.DataFrame:
    surv = pd.DataFrame({"quantity": "survival", "time": table["time"], "n_risk": table["n_risk"],
                         "estimate": table["survival"], "ci_low": table["ci_low"],
                         "ci_high": table["ci_high"]})
    med = pd.DataFrame({"quantity": ["median"], "time": [math.nan], "n_risk": [n],
                        "estimate": median["median"].to_numpy(), "ci_low": median["ci_low"].to_numpy(),
                        "ci_high": median["ci_high"].to_numpy()})
    out = pd.concat([surv, med], ignore_index=True) if len(surv) else med
    out["n_risk"] = out["n_risk"].astype(np.int64)
    out["conf_type"] = conf_type
    out["conf_level"] = level
    out["note"] = note
    return out[_SUMMARY_COLUMNS]


def kaplan_meier(time: Any, event: Any, conf_type: Literal["log", "log-log", "plain"] = "log",
                 times: Any = None, conf_level: float = 0.95) -> KaplanMeierResult:
    """Kaplan-Meier estimate with pointwise CIs at chosen times, and the median.

    Matches R's ``survfit(Surv(time, event) ~ 1, conf.type = conf_type)``
    with ``summary(fit, times = times)`` and the median of ``print(fit)``.

    Parameters
    ----------
    time : array-like of float
        Follow-up time, >= 0.
    event : array-like of {0, 1}
        1 = event, 0 = censored (booleans accepted).
    conf_type : {"log", "log-log", "plain"}
        Scale of the pointwise interval (see Notes).  R's default is "log".
    times : array-like of float, optional
        Times at which to report survival (>= 0, in the order given).
        Default: every distinct event time (R's ``summary(fit)``).  Times
        after the last observed time are omitted, as R's
        ``summary.survfit(extend = FALSE)`` does.
    conf_level : float
        Confidence level, strictly between 0 and 1.

    Returns
    -------
    KaplanMeierResult
        ``.table``, ``.median``, ``.summary`` and ``.note`` (see the class).

    Raises
    ------
    SpineregError
        Lengths differ, negative or infinite times, events other than 0/1,
        negative or missing requested ``times``, ``conf_level`` outside
        (0, 1) or an unknown ``conf_type``.

    Notes
    -----
    Missing data: a patient with a missing time or event is dropped
    (complete cases, as R's default ``na.action``).

    At the distinct observed times :math:`t_j` with :math:`n_j` at risk
    (time >= :math:`t_j`) and :math:`d_j` events,

    .. math::

        \\hat S(t) = \\prod_{t_j \\le t} (1 - d_j/n_j), \\qquad
        \\sigma^2(t) = \\sum_{t_j \\le t} \\frac{d_j}{n_j(n_j - d_j)}

    (Greenwood 1926; :math:`\\sigma` is R's ``std.err``, the standard error
    of :math:`-\\log \\hat S`).  With :math:`z = \\Phi^{-1}(1 - \\alpha/2)`:

    * log: :math:`\\hat S \\exp(\\mp z\\sigma)`, upper limit capped at 1;
    * log-log: :math:`\\hat S^{\\exp(\\pm z\\sigma/\\log \\hat S)}`, NaN where
      :math:`\\hat S` is 0 or 1 (R: NA) except before the first time, where
      R reports the limits 1, 1;
    * plain: :math:`\\hat S \\mp z\\sigma\\hat S`, clipped to [0, 1].

    Where :math:`\\hat S = 0` the limits are NaN, as in R.  At a requested
    time the values of the last observed time <= it are reported (1 before
    the first), and ``n_risk`` is the number at risk at the first observed
    time >= it.

    The median is the first time at which :math:`\\hat S \\le 0.5` (if
    :math:`\\hat S = 0.5` exactly on an interval, the midpoint of that
    interval); its CI is the same quantity read off the lower and upper
    confidence curves (Brookmeyer & Crowley 1982), NaN where a curve never
    reaches 0.5.

    References
    ----------
    Therneau T (2023). A Package for Survival Analysis in R, version 3.5;
    ``?survfit.formula``, ``?summary.survfit``, ``?print.survfit``.
    Kaplan EL, Meier P (1958). Nonparametric estimation from incomplete
    observations. JASA 53:457-481.
    Greenwood M (1926). The natural duration of cancer. Reports on Public
    Health and Medical Subjects 33. HMSO.
    Brookmeyer R, Crowley J (1982). A confidence interval for the median
    survival time. Biometrics 38:29-41.
    """
    if conf_type not in _CONF_TYPES:
        raise SpineregError(f"conf_type must be one of {', '.join(map(repr, _CONF_TYPES))}, "
                            f"not {conf_type!r}")
    level = check_conf_level(conf_level)
    t = _as_vector(time, "time")
    e = _as_vector(event, "event")
    if t.size != e.size:
        raise SpineregError(f"time and event must have the same length, got {t.size} and {e.size}")
    ok = ~(np.isnan(t) | np.isnan(e))
    t, e = t[ok], e[ok]
    if np.isinf(t).any():
        raise SpineregError("time contains infinite values")
    if (t < 0).any():
        raise SpineregError(f"time must not be negative, got {t[t < 0][0]:g}")
    if not np.isin(e, (0.0, 1.0)).all():
        bad = e[~np.isin(e, (0.0, 1.0))][0]
        raise SpineregError(f"event must be 0 (censored) or 1 (event), got {bad:g}")
    req: FloatArray | None = None
    if times is not None:
        req = _as_vector(times, "times")
        if np.isnan(req).any():
            raise SpineregError("times contains missing values")
        if np.isinf(req).any() or (req < 0).any():
            raise SpineregError("times must be finite and not negative")

    n = int(t.size)
    n_events = int(e.sum())
    if n == 0:
        return _empty(req if req is not None else np.empty(0), conf_type, level,
                      "not estimable: no patients with time and event")

    # counts at the distinct observed times (survfitkm.c)
    utime, inverse = np.unique(t, return_inverse=True)
    d = np.bincount(inverse, weights=e, minlength=utime.size)
    n_risk = n - np.concatenate(([0], np.cumsum(np.bincount(inverse, minlength=utime.size))[:-1]))
    n_risk_f = n_risk.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        surv: FloatArray = np.cumprod(np.where(d > 0, (n_risk_f - d) / n_risk_f, 1.0), dtype=np.float64)
        var = np.cumsum(np.where(d > 0, d / (n_risk_f * (n_risk_f - d)), 0.0), dtype=np.float64)
    se = np.sqrt(var)
    lower, upper = _confint(surv, se, conf_type, level)

    # survfit0: a row at time 0 (surv 1, limits 1) unless the first time is 0
    if utime[0] > 0:
        ftime = np.concatenate(([0.0], utime))
        fsurv = np.concatenate(([1.0], surv))
        flower = np.concatenate(([1.0], lower))
        fupper = np.concatenate(([1.0], upper))
        frisk = np.concatenate(([n_risk[0]], n_risk))
    else:
        ftime, fsurv, flower, fupper, frisk = utime, surv, lower, upper, n_risk

    # summary.survfit(times = ...)
    if req is None:
        req = utime[d > 0]
    beyond = req[req > ftime[-1]]
    req = req[req <= ftime[-1]]
    row = np.maximum(np.searchsorted(ftime, req, side="right"), 1) - 1
    at_risk = np.concatenate((frisk, [0]))[np.searchsorted(ftime, req, side="left")]
    table = pd.DataFrame({"time": req, "n_risk": at_risk.astype(np.int64), "survival": fsurv[row],
                          "ci_low": flower[row], "ci_high": fupper[row]}, columns=_TABLE_COLUMNS)

    # survmean: median and its CI from the curves including time 0
    med = _first_below_half(fsurv, ftime)
    med_lo = _first_below_half(flower, ftime)
    med_hi = _first_below_half(fupper, ftime)
    median = pd.DataFrame([[med, med_lo, med_hi]], columns=_MEDIAN_COLUMNS, dtype=np.float64)

    notes = []
    if n_events == 0:
        notes.append("no events: survival is 1 throughout and the median is not estimable")
    elif math.isnan(med):
        notes.append("median not reached: survival does not fall to 0.5")
    elif math.isnan(med_hi):
        notes.append("upper confidence limit of the median not reached")
    if (fsurv == 0).any() and n_events:
        notes.append("survival reaches 0: confidence limits are NaN from then on (as R)")
    if conf_type == "log-log" and (table["ci_low"].isna() & (table["survival"] == 1)).any():
        notes.append("log-log limits are NaN where survival is exactly 1 after time 0 (as R)")
    if beyond.size:
        shown = ", ".join(f"{v:g}" for v in np.unique(beyond))
        notes.append(f"time(s) {shown} after the last follow-up ({ftime[-1]:g}) omitted (as R)")
    note = "; ".join(notes)
    return KaplanMeierResult(table, median, _summary(table, median, n, conf_type, level, note),
                             n, n_events, conf_type, level, note)

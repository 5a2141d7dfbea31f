"""Change over time in a random-intercept linear mixed model, as R's nlme::lme.

The model is ``y ~ timepoint + (1 | id)`` fitted by REML on the observed
rows.  The variance ratio (patient / residual variance) maximises the
REML likelihood profiled over the fixed effects and the residual variance,
a one-dimensional problem: a coarse grid finds the basin and a bounded
Brent search polishes it.  The fixed-effect covariance is the
generalised-least-squares one that nlme reports.  (statsmodels' ``MixedLM``
fits the same model, but its ``bse_fe`` comes from the joint observed
information of all parameters and differs from nlme's by about 1e-3
relative, and its optimiser loops over patients in Python, which is slow
for national registries.)  Degrees of freedom follow nlme's containment
("between/within") rule.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import optimize, stats

from spinereg._errors import SpineregError
from spinereg.stats._checks import check_conf_level

__all__ = ["mixed_change"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

_COLUMNS = ["term", "estimate", "std_error", "df", "p_value", "ci_low", "ci_high", "note"]




class _Reml:
    """Profiled REML criterion of y = X beta + b_id + e, b ~ N(0, gamma sigma^2).

    With group sizes n_i, group sums G (of X) and s (of y), and
    w_i = gamma / (1 + n_i gamma), the inverse of V* = I + gamma J per group
    gives X'V*^-1 X = X'X - G' diag(w) G, and likewise for X'V*^-1 y and
    y'V*^-1 y, so the criterion is computed without forming V.
    """

    def __init__(self, X: FloatArray, y: FloatArray, codes: IntArray, n_groups: int) -> None:
        self.N, self.p = X.shape
        self.XtX = X.T @ X
        self.Xty = X.T @ y
        self.yty = float(y @ y)
        self.n_i = np.bincount(codes, minlength=n_groups).astype(np.float64)
        self.G = np.zeros((n_groups, self.p))
        np.add.at(self.G, codes, X)
        self.s = np.bincount(codes, weights=y, minlength=n_groups)

    def parts(self, gamma: float) -> tuple[FloatArray, FloatArray, float]:
        """(X'V*^-1 X, beta_hat, RSS) at the variance ratio ``gamma``."""
        w = gamma / (1.0 + self.n_i * gamma)
        A = self.XtX - self.G.T @ (w[:, None] * self.G)
        b = self.Xty - self.G.T @ (w * self.s)
        c = self.yty - float(np.sum(w * self.s**2))
        beta = np.asarray(np.linalg.solve(A, b), dtype=np.float64)
        return A, beta, c - float(b @ beta)

    def criterion(self, log_gamma: float) -> float:
        """-2 x REML log-likelihood, profiled over sigma^2, up to a constant."""
        gamma = math.exp(log_gamma)
        A, _, rss = self.parts(gamma)
        if not rss > 0:
            return math.inf
        _, logdet_a = np.linalg.slogdet(A)
        return float((self.N - self.p) * math.log(rss) + float(np.sum(np.log1p(self.n_i * gamma)))
                     + float(logdet_a))


def _grid_start(reml: _Reml) -> float | None:
    """log(var_id / var_residual) at the best point of a coarse grid, None if the criterion is flat/undefined.

    The profiled criterion costs O(patients) per evaluation, so a grid over
    ratios from e^-12 to e^8 is cheap and, unlike a local start, cannot be
    trapped by a poor initial guess.
    """
    grid = np.arange(-12.0, 8.0 + 1e-9, 0.5)
    values = np.array([reml.criterion(float(g)) for g in grid])
    if not np.isfinite(values).any():
        return None
    return float(grid[int(np.nanargmin(np.where(np.isfinite(values), values, np.inf)))])


def _fit_gamma(reml: _Reml, start: float | None) -> float:
    """REML variance ratio: polish around the grid's best point; 0 at the boundary."""
    centre = 0.0 if start is None else start
    lo, hi = centre - 1.0, centre + 1.0
    for _ in range(6):  # widen the search when the optimum sits on an edge
        with np.errstate(invalid="ignore", over="ignore"):  # inf where the criterion is undefined
            res = optimize.minimize_scalar(reml.criterion, bounds=(lo, hi), method="bounded",
                                           options={"xatol": 1e-10, "maxiter": 500})
        x = float(res.x)
        if x - lo < 1e-3 and lo > -30:
            lo, hi = lo - 8.0, x + 1.0
        elif hi - x < 1e-3 and hi < 30:
            lo, hi = x - 1.0, hi + 8.0
        else:
            break
    gamma = math.exp(x)
    if x < -25:  # boundary: the between-patient variance is (numerically) zero
        gamma = 0.0
    return gamma


def _containment_df(X: FloatArray, codes: IntArray, n_groups: int) -> FloatArray:
    """nlme's ``getFixDF`` for one grouping level (Pinheiro & Bates 2000, sec. 2.4.2).

    A column that varies within at least one patient is estimated at the
    residual level, otherwise at the patient level.  Levels start with
    m (patients) and N - m (residual) degrees of freedom, each loses one per
    column estimated there, the intercept takes one from the patient level
    and gets the larger of the two.
    """
    N = X.shape[0]
    frame = pd.DataFrame(X)
    grouped = frame.groupby(codes)
    inner = (grouped.max() != grouped.min()).any(axis=0).to_numpy()
    const = np.all(X[0] == X, axis=0)
    df_level = np.array([n_groups, N - n_groups], dtype=np.float64)
    level = np.where(inner, 1, 0)
    not_int = ~const
    np.subtract.at(df_level, level[not_int], 1.0)
    if const.any():
        df_level[0] -= 1.0
    out = np.where(not_int, df_level[level], np.max(df_level))
    return out.astype(np.float64)


def _frame(terms: list[str], note: str) -> pd.DataFrame:
    out = pd.DataFrame({"term": terms, "estimate": math.nan, "std_error": math.nan, "df": math.nan,
                        "p_value": math.nan, "ci_low": math.nan, "ci_high": math.nan, "note": note},
                       columns=_COLUMNS)
    for col in _COLUMNS[1:7]:
        out[col] = out[col].astype(np.float64)
    return out


def mixed_change(data: pd.DataFrame, id: str = "id", time: str = "timepoint", y: str = "y",
                 reference: Any = "baseline", conf_level: float = 0.95) -> pd.DataFrame:
    """Mean change from ``reference`` at each timepoint, random-intercept mixed model.

    Fits :math:`y_{ij} = \\beta_0 + \\beta_{t(j)} + b_i + \\varepsilon_{ij}`,
    :math:`b_i \\sim N(0, \\tau^2)`, :math:`\\varepsilon_{ij} \\sim N(0, \\sigma^2)`,
    by REML: R's ``nlme::lme(y ~ timepoint, random = ~ 1 | id, method =
    "REML")`` with treatment contrasts and ``reference`` as baseline.

    Parameters
    ----------
    data : pandas.DataFrame
        Long format, one row per patient and timepoint.
    id, time, y : str
        Column names of the patient identifier, the timepoint (categorical)
        and the outcome (numeric).
    reference : object
        The timepoint level used as baseline (the intercept).
    conf_level : float
        Level of the confidence intervals (nlme's ``intervals()``), in (0, 1).

    Returns
    -------
    pandas.DataFrame
        One row per fixed-effect term, named as R names them:
        ``"(Intercept)"`` (the mean at ``reference``), then
        ``f"{time}{level}"`` (e.g. ``"timepointm3"``: the mean change from
        ``reference`` to that level).  Columns ``term, estimate, std_error,
        df, p_value, ci_low, ci_high`` and ``note`` (``""`` when the term is
        estimable, else the reason; its numbers are then NaN).  Levels come
        in the order of a categorical column's categories, otherwise in order
        of first appearance.

    Raises
    ------
    SpineregError
        ``data`` is not a DataFrame, a column is missing, ``y`` is not
        numeric, ``reference`` is not a level of ``time``, or ``conf_level``
        outside (0, 1).

    Notes
    -----
    Missing data: rows with a missing ``y``, ``id`` or ``time`` are dropped
    (the model uses every observed value; under missing-at-random this is
    the likelihood-based analysis, unlike complete-case analysis).  A level
    without any observed value gives a "not estimable" row.

    Estimation: with :math:`\\gamma = \\tau^2/\\sigma^2` and
    :math:`V_i = I + \\gamma J` for patient :math:`i`,
    :math:`\\hat\\beta = (X'V^{-1}X)^{-1}X'V^{-1}y`,
    :math:`\\hat\\sigma^2 = r'V^{-1}r/(N-p)` and
    :math:`\\mathrm{Var}(\\hat\\beta) = \\hat\\sigma^2 (X'V^{-1}X)^{-1}`;
    :math:`\\hat\\gamma` minimises the profiled REML criterion
    :math:`(N-p)\\log(r'V^{-1}r) + \\log|V| + \\log|X'V^{-1}X|`
    (statsmodels ``MixedLM`` gives the starting value).

    Degrees of freedom (nlme's containment method): with :math:`m` patients
    and :math:`N` observations, a change term (varying within patients) has
    :math:`N - m - (\\text{number of such terms})`; a term constant within
    every patient would have :math:`m - 1 - (\\text{number of such terms})`;
    the intercept gets the larger.  t-tests and intervals use the t
    distribution with these df: :math:`p = 2P(T_{df} > |\\hat\\beta/se|)`,
    CI :math:`\\hat\\beta \\pm t_{df, 1-\\alpha/2}\\, se`.

    References
    ----------
    Pinheiro JC, Bates DM (2000). Mixed-Effects Models in S and S-PLUS.
    Springer (sec. 2.4.2 for the degrees of freedom).
    Pinheiro J, Bates D, R Core Team. nlme: Linear and Nonlinear Mixed
    Effects Models, ``?lme``, ``?intervals.lme``, ``?summary.lme``.
    Patterson HD, Thompson R (1971). Recovery of inter-block information when
    block sizes are unequal. Biometrika 58:545-554.
    """
    if not isinstance(data, pd.DataFrame):
        raise SpineregError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    missing = [c for c in (id, time, y) if c not in data.columns]
    if missing:
        raise SpineregError(f"data has no column(s) {', '.join(map(repr, missing))}")
    level_ = check_conf_level(conf_level)
    try:
        yv = pd.to_numeric(data[y], errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        raise SpineregError(f"column {y!r} must be numeric") from None
    if np.isinf(yv).any():
        raise SpineregError(f"column {y!r} contains infinite values")

    tcol = data[time]
    if isinstance(tcol.dtype, pd.CategoricalDtype):
        levels = [lv for lv in tcol.cat.categories if (tcol == lv).any()]
    else:
        levels = list(pd.unique(tcol.dropna()))
    if reference not in levels:
        raise SpineregError(f"reference {reference!r} is not a level of column {time!r} "
                            f"(levels: {', '.join(map(repr, levels))})")
    others = [lv for lv in levels if lv != reference]
    terms = ["(Intercept)"] + [f"{time}{lv}" for lv in others]

    ok = ~np.isnan(yv) & data[id].notna().to_numpy() & tcol.notna().to_numpy()
    obs_t = tcol[ok]
    observed = [lv for lv in others if (obs_t == lv).any()]
    if not ok.any():
        return _frame(terms, f"not estimable: no observed {y}")
    if not (obs_t == reference).any():
        return _frame(terms, f"not estimable: no observed {y} at {reference!r}")

    codes_id, uniq_id = pd.factorize(data[id][ok], sort=False)
    codes = np.asarray(codes_id, dtype=np.intp)
    m = len(uniq_id)
    yy = yv[ok]
    X = np.column_stack([np.ones(yy.size)] + [(obs_t == lv).to_numpy(dtype=np.float64)
                                              for lv in observed])
    N, p = X.shape
    if m < 2 or N - p < 1:
        return _frame(terms, f"not estimable: {m} patient(s) and {N} observation(s) for "
                      f"{p} fixed effects")

    reml = _Reml(X, yy, codes, m)
    gamma = _fit_gamma(reml, _grid_start(reml))
    A, beta, rss = reml.parts(gamma)
    if not rss > 1e-12 * max(reml.yty, 1.0):
        return _frame(terms, "not estimable: the model fits the data exactly (no residual variance)")
    sigma2 = rss / (N - p)
    se = np.sqrt(np.diag(np.linalg.inv(A)) * sigma2)
    df = _containment_df(X, codes, m)
    with np.errstate(divide="ignore", invalid="ignore"):
        tval = beta / se
        pval = np.where(df > 0, 2.0 * stats.t.sf(np.abs(tval), np.where(df > 0, df, 1.0)), np.nan)
        q = np.where(df > 0, stats.t.ppf(0.5 + level_ / 2.0, np.where(df > 0, df, 1.0)), np.nan)
    fitted = pd.DataFrame({"term": ["(Intercept)"] + [f"{time}{lv}" for lv in observed],
                           "estimate": beta, "std_error": se, "df": df, "p_value": pval,
                           "ci_low": beta - q * se, "ci_high": beta + q * se,
                           "note": np.where(df > 0, "", "not estimable: no degrees of freedom "
                                            "left for the t-test")})
    out = _frame(terms, "")
    out = out.set_index("term")
    fitted = fitted.set_index("term")
    out.loc[fitted.index, :] = fitted
    unobserved = [f"{time}{lv}" for lv in others if lv not in observed]
    out.loc[unobserved, "note"] = [f"not estimable: no observed {y} at {t[len(time):]!r}"
                                   for t in unobserved]
    out = out.reset_index()
    for col in _COLUMNS[1:7]:
        out[col] = out[col].astype(np.float64)
    return out[_COLUMNS]

"""Paired change: paired t-test and Wilcoxon signed-rank test with CIs, as R computes them.

The numbers reproduce R (``stats::t.test(after, before, paired = TRUE)`` and
``stats::wilcox.test(after, before, paired = TRUE, conf.int = TRUE)``, R 4.2)
to floating-point precision, including R's root-finding for the asymptotic
Wilcoxon interval and estimate, which is ported here step for step
(:func:`_zeroin`), and R's normal quantile function (:func:`_qnorm`) that
sets the targets of that root-finding.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import special, stats

from spinereg._errors import SpineregError
from spinereg.stats._checks import check_conf_level

__all__ = ["paired_change"]

FloatArray = npt.NDArray[np.float64]

_EPS = float(np.finfo(np.float64).eps)
_COLUMNS = ["n_pairs", "estimate", "ci_low", "ci_high", "statistic", "df", "p_value", "method", "note"]
_METHODS = ("t", "wilcoxon")
#: R's default ``tol.root`` of wilcox.test (and the tol it passes to uniroot).
_TOL_ROOT = 1e-4
#: R's ``uniroot(maxiter = 1000)``.
_MAXITER = 1000


# ---------------------------------------------------------------------------
# input handling


def _as_vector(values: Any, name: str) -> FloatArray:
    """A 1-D float array of ``values``; missing values (None, NaN, pd.NA) become NaN."""
    obj = values if isinstance(values, (pd.Series, pd.Index)) else np.asarray(values, dtype=object)
    if obj.ndim != 1:
        raise SpineregError(f"{name} must be one-dimensional, got shape {np.shape(values)}")
    try:
        arr = pd.Series(obj).to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise SpineregError(f"{name} must be numeric: {exc}") from None
    if np.isinf(arr).any():
        raise SpineregError(f"{name} contains infinite values")
    return arr




def _row(n_pairs: int, method: str, note: str = "", **values: float) -> pd.DataFrame:
    row: dict[str, Any] = {"n_pairs": n_pairs, "estimate": math.nan, "ci_low": math.nan,
                           "ci_high": math.nan, "statistic": math.nan, "df": math.nan,
                           "p_value": math.nan}
    row.update(values)
    row["method"] = method
    row["note"] = note
    out = pd.DataFrame([row], columns=_COLUMNS)
    out["n_pairs"] = out["n_pairs"].astype(np.int64)
    for col in _COLUMNS[1:7]:
        out[col] = out[col].astype(np.float64)
    return out


# ---------------------------------------------------------------------------
# R's numerical building blocks


def _zeroin(f: Callable[[float], float], ax: float, bx: float, fa: float, fb: float,
            tol: float, maxit: int = _MAXITER) -> float:
    """Brent's root finder exactly as R's ``R_zeroin2`` (src/library/stats/src/zeroin.c).

    ``uniroot()`` calls this with the function values at the ends already known.
    The Wilcoxon statistic is a step function of the shift, so the root that is
    returned depends on the path of the iteration, not only on the tolerance:
    the port keeps every branch and every floating-point operation of the C
    code so that the iterates, and hence the answer, are R's.
    """
    a, b = ax, bx
    c, fc = a, fa
    if fa == 0.0:
        return a
    if fb == 0.0:
        return b
    for _ in range(maxit + 1):
        prev_step = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2.0 * _EPS * abs(b) + tol / 2.0
        new_step = (c - b) / 2.0
        if abs(new_step) <= tol_act or fb == 0.0:
            return b
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:
                t1 = fb / fa
                p = cb * t1
                q = 1.0 - t1
            else:
                q = fa / fc
                t1 = fb / fc
                t2 = fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0.0:
                q = -q
            else:
                p = -p
            if p < (0.75 * cb * q - abs(tol_act * q) / 2.0) and p < abs(prev_step * q / 2.0):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0.0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = f(b)
        if (fb > 0.0 and fc > 0.0) or (fb < 0.0 and fc < 0.0):
            c, fc = a, fa
    warnings.warn("root finding did not converge in the iteration limit (as R's uniroot)",
                  RuntimeWarning, stacklevel=3)
    return b


# Wichura's AS 241 (PPND16) rational approximations, coefficients as published
# (Appl Stat 1988;37:477-484); R's qnorm() evaluates them in this Horner order.
_AS241_A = (3.387132872796366608, 133.14166789178437745, 1971.5909503065514427, 13731.693765509461125,
            45921.953931549871457, 67265.770927008700853, 33430.575583588128105, 2509.0809287301226727)
_AS241_B = (1.0, 42.313330701600911252, 687.1870074920579083, 5394.1960214247511077,
            21213.794301586595867, 39307.89580009271061, 28729.085735721942674, 5226.495278852854561)
_AS241_C = (1.42343711074968357734, 4.6303378461565452959, 5.7694972214606914055, 3.64784832476320460504,
            1.27045825245236838258, .24178072517745061177, .0227238449892691845833, 7.7454501427834140764e-4)
_AS241_D = (1.0, 2.05319162663775882187, 1.6763848301838038494, .68976733498510000455,
            .14810397642748007459, .0151986665636164571966, 5.475938084995344946e-4, 1.05075007164441684324e-9)
_AS241_E = (6.6579046435011037772, 5.4637849111641143699, 1.7848265399172913358, .29656057182850489123,
            .026532189526576123093, .0012426609473880784386, 2.71155556874348757815e-5, 2.01033439929228813265e-7)
_AS241_F = (1.0, .59983220655588793769, .13692988092273580531, .0148753612908506148525,
            7.868691311456132591e-4, 1.8463183175100546818e-5, 1.4215117583164458887e-7, 2.04426310338993978564e-15)


def _horner(coef: tuple[float, ...], r: float) -> float:
    """coef[0] + coef[1] r + ... + coef[7] r^7, evaluated from the top as R does."""
    acc = r * coef[7] + coef[6]
    for c in coef[5::-1]:
        acc = acc * r + c
    return acc


def _qnorm(p: float, lower_tail: bool = True) -> float:
    """R's ``qnorm(p, lower.tail = lower_tail)`` for 0 < p < 1, bit for bit.

    SciPy's ``ndtri`` (Cephes) differs from R's AS 241 in the last bits, and
    ``ndtri(1 - p)`` rounds ``1 - p`` first; R computes the upper quantile
    from ``p`` itself.  The Wilcoxon interval is a root of a step function, so
    a one-ulp change of the target can move the root by a whole step.
    """
    p_ = p if lower_tail else 0.5 - p + 0.5  # lower-tail probability, as R_DT_qIv
    q = p_ - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        return q * _horner(_AS241_A, r) / _horner(_AS241_B, r)
    tail = (0.5 - p + 0.5 if lower_tail else p) if q > 0 else p_  # min(p, 1 - p)
    r = math.sqrt(-math.log(tail))
    if r <= 5.0:
        r += -1.6
        val = _horner(_AS241_C, r) / _horner(_AS241_D, r)
    else:
        r += -5.0
        val = _horner(_AS241_E, r) / _horner(_AS241_F, r)
    return -val if q < 0.0 else val


def _signrank_probs(n: int) -> FloatArray:
    """P(V = v), v = 0..n(n+1)/2, of the signed-rank statistic without ties.

    The counts are the coefficients of prod_{k=1}^{n} (1 + z^k) (R's
    ``csignrank``), scaled by 2^-n as R does (``exp(-n log 2)``).
    """
    m = n * (n + 1) // 2
    counts = np.zeros(m + 1, dtype=np.float64)
    counts[0] = 1.0
    for k in range(1, n + 1):  # n polynomial products, not a loop over data rows
        top = k * (k + 1) // 2
        counts[k:top + 1] += counts[:top + 1 - k].copy()
    return counts * math.exp(-n * math.log(2.0))


def _psignrank(q: float, n: int, probs: FloatArray, lower_tail: bool = True) -> float:
    """R's ``psignrank(q, n, lower.tail)`` (src/nmath/signrank.c)."""
    x = float(np.rint(q + 1e-7))
    m = n * (n + 1) / 2
    if x < 0.0:
        return 0.0 if lower_tail else 1.0
    if x >= m:
        return 1.0 if lower_tail else 0.0
    if x <= m / 2:
        p = float(np.cumsum(probs[: int(x) + 1])[-1])
    else:
        k = int(m - x)
        p = float(np.cumsum(probs[:k])[-1]) if k > 0 else 0.0
        lower_tail = not lower_tail
    return p if lower_tail else 1.0 - p


def _qsignrank(p: float, n: int, probs: FloatArray) -> int:
    """R's ``qsignrank(p, n)`` for the lower tail (src/nmath/signrank.c)."""
    cum = np.cumsum(probs)  # sequential sums, as the C loop
    m = n * (n + 1) // 2
    if p <= 0.5:
        hit = np.flatnonzero(cum >= p - 10 * _EPS)
        return int(hit[0])
    hit = np.flatnonzero(cum > 1.0 - p + 10 * _EPS)
    return int(m - hit[0])


def _median(x: FloatArray) -> float:
    """R's ``median``: the middle value, or the mean of the two middle values."""
    return float(np.median(x))


# ---------------------------------------------------------------------------
# the tests


def _t_test(d: FloatArray, conf_level: float) -> pd.DataFrame:
    """Paired t-test on the differences ``d`` as R's ``t.test``."""
    n = d.size
    if n < 2:
        return _row(n, "t_paired", "not estimable: fewer than 2 complete pairs")
    mx = float(np.mean(d))
    vx = float(np.var(d, ddof=1))
    stderr = math.sqrt(vx / n)
    if stderr < 10 * _EPS * abs(mx) or stderr == 0.0:
        return _row(n, "t_paired", "not estimable: all paired differences are equal "
                    "(zero variance)", estimate=mx)
    tstat = mx / stderr
    df = n - 1.0
    pval = 2.0 * float(stats.t.cdf(-abs(tstat), df))
    q = float(stats.t.ppf(1.0 - (1.0 - conf_level) / 2.0, df))
    return _row(n, "t_paired", estimate=mx, ci_low=(tstat - q) * stderr, ci_high=(tstat + q) * stderr,
                statistic=tstat, df=df, p_value=pval)


def _ranks_v(x: FloatArray) -> tuple[float, FloatArray]:
    """Signed-rank statistic V = sum of the ranks of |x| over x > 0, and the ranks."""
    r = stats.rankdata(np.abs(x), method="average")
    return float(np.sum(r[x > 0])), r


def _tie_sigma(nx: int, ranks: FloatArray) -> float:
    """sqrt(n(n+1)(2n+1)/24 - sum(t^3 - t)/48), t the sizes of the tie groups."""
    _, t = np.unique(ranks, return_counts=True)
    t = t.astype(np.float64)
    return math.sqrt(nx * (nx + 1) * (2 * nx + 1) / 24 - float(np.sum(t**3 - t)) / 48)


def _wilcoxon_exact(x: FloatArray, n_pairs: int, conf_level: float) -> pd.DataFrame:
    """Exact signed-rank test and Bauer's (1972) exact CI; no ties, no zeros."""
    n = x.size
    v, _ = _ranks_v(x)
    probs = _signrank_probs(n)
    if v > n * (n + 1) / 4:
        p = _psignrank(v - 1, n, probs, lower_tail=False)
    else:
        p = _psignrank(v, n, probs)
    pval = min(2.0 * p, 1.0)
    alpha = 1.0 - conf_level
    iu = np.triu_indices(n)
    walsh = np.sort(np.add.outer(x, x)[iu]) / 2.0
    qu = _qsignrank(alpha / 2.0, n, probs)
    if qu == 0:
        qu = 1
    ql = n * (n + 1) // 2 - qu
    achieved = 2.0 * _psignrank(qu - 1, n, probs)
    if achieved - alpha > alpha / 2.0:
        warnings.warn(f"paired_change: requested conf_level {conf_level} not achievable with "
                      f"{n} pairs; exact interval has level {1 - achieved:.2g} (as R warns)",
                      RuntimeWarning, stacklevel=3)
    return _row(n_pairs, "wilcoxon_exact", estimate=_median(walsh), ci_low=float(walsh[qu - 1]),
                ci_high=float(walsh[ql]), statistic=v, p_value=pval)


def _wilcoxon_normal(d: FloatArray, n_pairs: int, conf_level: float) -> pd.DataFrame:
    """Normal approximation with continuity and tie correction, CI and estimate by
    root-finding on the corrected z statistic, as R's wilcox.test (exact = FALSE)."""
    x = d[d != 0]  # R drops zero differences (Wilcoxon's convention)
    n = x.size
    method = "wilcoxon_normal_cc"
    if n == 0:
        # V is the sum over an empty set (0, as R reports); z = 0/0, so no p-value
        return _row(n_pairs, method, "not estimable: all paired differences are zero", statistic=0.0)
    v, r = _ranks_v(x)
    sigma = _tie_sigma(n, r)
    z = v - n * (n + 1) / 4
    z = (z - math.copysign(0.5, z) * (z != 0)) / sigma if sigma > 0 else math.nan
    pval = 2.0 * min(float(special.ndtr(z)), float(special.ndtr(-z)))

    def w_stat(shift: float, correct: bool) -> float:
        xd = x - shift
        xd = xd[xd != 0]
        nx = xd.size
        vd, dr = _ranks_v(xd)
        zd = vd - nx * (nx + 1) / 4
        sig = _tie_sigma(nx, dr) if nx > 0 else 0.0
        corr = (0.5 * np.sign(zd)) if correct else 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(np.float64(zd - corr) / np.float64(sig))

    mumin, mumax = float(np.min(x)), float(np.max(x))
    w_min = w_stat(mumin, True)
    w_max = w_stat(mumax, True) if math.isfinite(w_min) else math.nan
    if not (math.isfinite(w_min) and math.isfinite(w_max)):
        return _row(n_pairs, method, "confidence interval not estimable: all non-zero paired "
                    "differences are equal", estimate=(mumin + mumax) / 2, statistic=v,
                    p_value=pval)
    alpha = 1.0 - conf_level
    while True:  # R doubles alpha until the limits fall inside [min, max]
        mindiff = w_min - _qnorm(alpha / 2.0, lower_tail=False)
        maxdiff = w_max - _qnorm(alpha / 2.0)
        if mindiff < 0 or maxdiff > 0:
            alpha *= 2.0
        else:
            break
    if alpha >= 1 or 1 - conf_level < alpha * 0.75:
        warnings.warn(f"paired_change: requested conf_level {conf_level} not achievable with "
                      f"{n} non-zero differences; the interval has level {1 - min(1.0, alpha):.3g} "
                      "(as R warns)", RuntimeWarning, stacklevel=3)
    if alpha < 1:
        def root(zq: float) -> float:
            return _zeroin(lambda s: w_stat(s, True) - zq, mumin, mumax, w_min - zq, w_max - zq,
                           _TOL_ROOT)

        lo = root(_qnorm(alpha / 2.0, lower_tail=False))
        hi = root(_qnorm(alpha / 2.0))
    else:
        lo = hi = _median(x)
    est = _zeroin(lambda s: w_stat(s, False), mumin, mumax, w_stat(mumin, False),
                  w_stat(mumax, False), _TOL_ROOT)
    return _row(n_pairs, method, estimate=est, ci_low=lo, ci_high=hi, statistic=v, p_value=pval)


def paired_change(before: Any, after: Any, method: Literal["t", "wilcoxon"] = "t",
                  conf_level: float = 0.95, exact: bool | None = None) -> pd.DataFrame:
    """Within-patient change from ``before`` to ``after``, with CI and test.

    The difference is ``after - before``; a pair with a missing value in
    either (NaN, None, ``pd.NA``) is dropped (complete-case analysis, as R's
    ``complete.cases``).

    Parameters
    ----------
    before, after : array-like of float
        Paired measurements of the same patients, in the same order, of equal
        length.
    method : {"t", "wilcoxon"}
        ``"t"``: paired t-test, R's ``t.test(after, before, paired = TRUE)``.
        The estimate is the mean difference
        :math:`\\bar d`, the statistic :math:`t = \\bar d / (s_d/\\sqrt n)`
        with :math:`n - 1` degrees of freedom, the CI
        :math:`(t \\mp t_{1-\\alpha/2, n-1})\\, s_d/\\sqrt n`.

        ``"wilcoxon"``: Wilcoxon signed-rank test, R's
        ``wilcox.test(after, before, paired = TRUE, conf.int = TRUE,
        correct = TRUE)``.  ``statistic`` is R's V, the sum of the ranks of
        :math:`|d_i|` over :math:`d_i > 0`; ``df`` is NaN.

        *Exact* (n < 50 complete pairs, no tied :math:`|d_i|`, no zero
        differences, unless ``exact`` says otherwise): the p-value from the
        exact null distribution of V; the estimate is the Hodges-Lehmann
        estimate, the median of the :math:`n(n+1)/2` Walsh averages
        :math:`(d_i + d_j)/2, i \\le j`; the CI runs from the
        :math:`q`-th smallest to the :math:`q`-th largest Walsh average with
        :math:`q` = ``qsignrank(alpha/2, n)`` (Bauer 1972).

        *Normal approximation* (otherwise): zero differences are dropped
        (Wilcoxon's convention; ``n`` below counts the non-zero ones) and
        :math:`z = (V - n(n+1)/4 - \\tfrac12\\,\\mathrm{sign}) / \\sigma` with
        :math:`\\sigma^2 = n(n+1)(2n+1)/24 - \\sum (t^3 - t)/48`
        (:math:`t` the tie-group sizes of :math:`|d_i|`).

        The estimate and the CI are not read off the Walsh averages.  For a
        shift :math:`\\mu` let :math:`W_c(\\mu)` be the standardized statistic of
        :math:`d - \\mu`, recomputed from scratch: zeros of :math:`d - \\mu`
        dropped, ranks, tie correction and :math:`n` redone, and with the
        continuity correction :math:`c \\in \\{0, \\tfrac12\\}`:

        .. math::
            W_c(\\mu) = \\frac{V(\\mu) - n_\\mu(n_\\mu+1)/4 - c\\,\\mathrm{sign}(\\cdot)}{\\sigma_\\mu}.

        The CI limits solve :math:`W_{1/2}(\\mu) = z_{1-\\alpha/2}` and
        :math:`W_{1/2}(\\mu) = z_{\\alpha/2}`; the estimate solves
        :math:`W_0(\\mu) = 0` (R drops the continuity correction for it).
        :math:`W` is a decreasing step function, so "solves" means: the point
        that R's ``uniroot`` returns when started on the bracket
        :math:`[\\min d, \\max d]` (with :math:`W` at both ends already
        evaluated) and ``tol = 1e-4`` (``wilcox.test``'s ``tol.root``, not
        uniroot's own default ``.Machine$double.eps^0.25``).  That point lies
        within about ``tol`` of a jump of :math:`W` but is not the jump itself,
        and which jump it lands on depends on the path of Brent's iteration.
        This function runs the same iteration (:func:`_zeroin`, R's
        ``R_zeroin2``) on the same doubles, with R's ``qnorm`` (AS 241,
        :func:`_qnorm`) for the targets, and so returns R's numbers to the
        last bit.

        *Difference from the median of the Walsh averages.*  The classical
        Hodges-Lehmann estimate, :math:`\\mathrm{median}\\{(d_i + d_j)/2\\}`, is
        the centre of the set where :math:`W_0` changes sign.  R's root is one
        point of that set chosen by the iteration, and a tie-corrected,
        zero-dropping :math:`W_0` can jump at other places than the Walsh
        averages.  With ties (integer scores) the two often differ by about
        ``tol`` only (d = -18, -18, -20, -20, -18, -18: R -18.999996, Walsh
        median -19), but on small samples they can differ by whole steps:
        -15.437 against -16.047 (3.8 %) on a continuous sample of 8 pairs,
        3.428 against 4.75 for the non-zero differences 8, -3, 7 (both in
        tests/stats/reference).  This function reports R's value; the exact
        branch above reports the Walsh median, as R does there.

        Where the requested level cannot be reached inside
        :math:`[\\min d, \\max d]` R widens alpha (doubling it) and warns: so
        does this function (``RuntimeWarning``).  When all non-zero
        differences are equal :math:`W` is 0/0 at both ends: the estimate is
        their value (R's midrange), the CI is NaN and ``note`` says why.
        When every difference is zero, ``statistic`` is 0 (R's V) and the rest
        is NaN.
    conf_level : float
        Confidence level, strictly between 0 and 1.
    exact : bool or None
        Wilcoxon only.  None: exact when n < 50 and there are no ties or
        zeros.  True: exact unless ties or zeros make it impossible (then the
        normal approximation, with a warning, as R).  False: always the
        normal approximation.

    Returns
    -------
    pandas.DataFrame
        One row: ``n_pairs, estimate, ci_low, ci_high, statistic, df,
        p_value, method, note``.  ``method`` names what was computed
        (``"t_paired"``, ``"wilcoxon_exact"``, ``"wilcoxon_normal_cc"``).
        ``note`` is ``""`` when everything is estimable, otherwise a plain
        reason (e.g. ``"not estimable: fewer than 2 complete pairs"``) and the
        quantities that cannot be estimated are NaN.

    Raises
    ------
    SpineregError
        Lengths differ, non-numeric or infinite values, ``conf_level`` not in
        (0, 1), unknown ``method`` or invalid ``exact``.

    Notes
    -----
    Fewer than 2 complete pairs gives a "not estimable" row for both methods
    (R would compute a degenerate Wilcoxon result for 1 pair and fail for the
    t-test).  All differences equal (zero variance) makes the t-test not
    estimable, as R's "data are essentially constant" error.

    References
    ----------
    R Core Team, ``?t.test``, ``?wilcox.test`` and ``?uniroot`` (package stats), R 4.2;
    the Brent iteration is ``R_zeroin2`` in src/library/stats/src/zeroin.c.
    Brent RP (1973). Algorithms for Minimization without Derivatives. Prentice-Hall, ch. 4.
    Wichura MJ (1988). Algorithm AS 241: the percentage points of the normal
    distribution. Appl Stat 37:477-484.
    Wilcoxon F (1945). Individual comparisons by ranking methods. Biometrics 1:80-83.
    Hodges JL, Lehmann EL (1963). Estimates of location based on rank tests.
    Ann Math Stat 34:598-611.
    Bauer DF (1972). Constructing confidence sets using rank statistics.
    JASA 67:687-690.
    Hollander M, Wolfe DA (1973). Nonparametric Statistical Methods. Wiley.
    """
    if method not in _METHODS:
        raise SpineregError(f"method must be one of {', '.join(map(repr, _METHODS))}, not {method!r}")
    level = check_conf_level(conf_level)
    if exact is not None and not isinstance(exact, (bool, np.bool_)):
        raise SpineregError(f"exact must be True, False or None, not {exact!r}")
    b = _as_vector(before, "before")
    a = _as_vector(after, "after")
    if a.size != b.size:
        raise SpineregError(f"before and after must have the same length, got {b.size} and {a.size}")
    ok = ~(np.isnan(a) | np.isnan(b))
    d = a[ok] - b[ok]
    n = int(d.size)
    if method == "t":
        return _t_test(d, level)
    if n < 2:
        name = "wilcoxon_normal_cc" if exact is False else "wilcoxon_exact"
        return _row(n, name, "not estimable: fewer than 2 complete pairs")
    has_zero = bool(np.any(d == 0))
    has_ties = bool(np.unique(np.abs(d[d != 0])).size != np.count_nonzero(d))
    use_exact = (n < 50) if exact is None else bool(exact)
    if use_exact and (has_zero or has_ties):
        if exact:
            warnings.warn("paired_change: cannot compute the exact Wilcoxon test with "
                          + ("zero differences" if has_zero else "ties")
                          + "; using the normal approximation (as R)", RuntimeWarning, stacklevel=2)
        use_exact = False
    if use_exact:
        return _wilcoxon_exact(d, n, level)
    return _wilcoxon_normal(d, n, level)

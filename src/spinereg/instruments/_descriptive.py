"""Descriptive EQ-5D tools: level sum and frequency scores, Shannon indices,
health state density index and the Paretian classification of health change."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from spinereg._errors import SpineregError
from spinereg.instruments._eq5d import check_invalid, shape_result
from spinereg.instruments._states import ParsedStates, parse_states
from spinereg.instruments._valuesets import DIMENSIONS, levels_of_version, normalise_version

__all__ = ["hsdi", "lfs", "lss", "pchc", "shannon"]

Invalid = Literal["raise", "nan"]
PCHC_CATEGORIES = ("no_change", "better", "worse", "mixed", "no_problems")


def _parse(scores: Any, version: str, invalid: str, dimensions: Sequence[str]) -> tuple[ParsedStates, int]:
    v = normalise_version(version)
    levels = levels_of_version(v)
    parsed = parse_states(scores, levels, what=f"EQ-5D-{v}", dimensions=dimensions)
    check_invalid(parsed, invalid, f"EQ-5D-{v}")
    return parsed, levels


def lss(scores: Any, version: str = "5L", *, invalid: Invalid = "raise",
        dimensions: Sequence[str] = DIMENSIONS) -> Any:
    """Level sum score: the sum of the five dimension levels.

    Ranges 5..15 (3L) or 5..25 (5L).  Invalid rows give NaN in ``nan`` mode.

    References
    ----------
    Devlin N, Parkin D, Janssen B. Methods for Analysing and Reporting EQ-5D
    Data. Springer; 2020. doi:10.1007/978-3-030-47622-9
    """
    parsed, levels = _parse(scores, version, invalid, dimensions)
    lv = parsed.levels(levels)
    out = np.where(parsed.valid, lv.sum(axis=1), np.nan).astype(np.float64)
    return shape_result(out, parsed, "lss")


def lfs(scores: Any, version: str = "5L", *, invalid: Invalid = "raise",
        dimensions: Sequence[str] = DIMENSIONS) -> Any:
    """Level frequency score: how many dimensions are at each level.

    A string of 3 (3L) or 5 (5L) digits: the count of dimensions at level 1,
    level 2, ...  E.g. 5L state 12345 -> ``"11111"``, 11112 -> ``"41000"``.
    Invalid rows give ``None`` in ``nan`` mode.

    References
    ----------
    Devlin N, Parkin D, Janssen B. Methods for Analysing and Reporting EQ-5D
    Data. Springer; 2020, chapter 2.
    """
    parsed, levels = _parse(scores, version, invalid, dimensions)
    lv = parsed.levels(levels)
    counts = np.stack([(lv == k).sum(axis=1) for k in range(1, levels + 1)], axis=1)
    text = ["".join(map(str, row)) for row in counts]
    labels = np.array([t if ok else None for t, ok in zip(text, parsed.valid, strict=True)],
                      dtype=object)
    if parsed.kind == "pandas":
        return pd.Series(labels, index=parsed.index, name="lfs", dtype="object")
    if parsed.kind == "scalar":
        return labels[0]
    return labels


def _shannon_row(counts: np.ndarray[Any, Any], h_max_n: int, base: float) -> tuple[float, float, float]:
    n = counts.sum()
    if n == 0:
        return (np.nan, np.nan, np.nan)
    p = counts[counts > 0] / n
    h = float(-(p * (np.log(p) / np.log(base))).sum()) + 0.0
    h_max = float(np.log(h_max_n) / np.log(base)) if h_max_n > 0 else np.nan
    j = h / h_max if h_max and h_max > 0 else np.nan
    return h, h_max, j


def shannon(scores: Any, version: str = "5L", *, by_dimension: bool = True, base: float = 2.0,
            permutations: bool = True, invalid: Invalid = "nan",
            dimensions: Sequence[str] = DIMENSIONS) -> pd.DataFrame:
    """Shannon's diversity index H', its maximum H'max and evenness J'.

    ``H' = -sum(p_i * log_b(p_i))`` over the levels (by dimension) or over the
    observed profiles (whole states); ``J' = H' / H'max``.  With
    ``permutations=True`` H'max is ``log_b(L)`` by dimension and
    ``log_b(L**5)`` for whole states (243 or 3125); otherwise it uses the number
    of distinct observed levels or profiles.  Invalid rows are left out
    (``invalid="nan"``, the default, as in R).

    Note: R's ``eq5d::shannon`` uses ``5**L`` possible 3L states (125) for
    H'max; spinereg uses the true count, ``3**5 = 243``.

    Returns
    -------
    pandas.DataFrame
        Columns ``dimension, n, h, h_max, j``; ``dimension`` is a dimension
        name or ``"state"``.

    References
    ----------
    Janssen MF, Birnie E, Haagsma JA, Bonsel GJ. Comparing the standard EQ-5D
    three-level system with a five-level version. Value Health 2008;11(2):275-84.
    doi:10.1111/j.1524-4733.2007.00230.x
    """
    parsed, levels = _parse(scores, version, invalid, dimensions)
    lv = parsed.levels(levels)[parsed.valid]
    rows = []
    if by_dimension:
        for j, dim in enumerate(DIMENSIONS):
            counts = np.bincount(lv[:, j], minlength=levels + 1)[1:]
            h_n = levels if permutations else int((counts > 0).sum())
            rows.append((dim, int(counts.sum()), *_shannon_row(counts, h_n, base)))
    else:
        codes = parsed.code[parsed.valid]
        counts = np.bincount(codes, minlength=levels**5)
        h_n = levels**5 if permutations else int((counts > 0).sum())
        rows.append(("state", int(counts.sum()), *_shannon_row(counts, h_n, base)))
    return pd.DataFrame(rows, columns=["dimension", "n", "h", "h_max", "j"])


def hsdi(scores: Any, version: str = "5L", *, invalid: Invalid = "nan",
         dimensions: Sequence[str] = DIMENSIONS) -> float:
    """Health State Density Index.

    Profiles are sorted by frequency, most frequent first.  With ``c_k`` the
    cumulative proportion of observations and ``s_k = k / K`` the cumulative
    proportion of the K distinct observed profiles,
    ``HSDI = sum_k (c_k - c_{k-1}) * (s_k + s_{k-1})``, twice the area under
    the curve of ``s`` against ``c``.  It is 1 when all observed profiles are
    equally frequent and tends to 0 as observations concentrate in few
    profiles.  Invalid rows are left out; an empty input gives NaN.

    References
    ----------
    Zamora B, Parkin D, Feng Y, Bateman A, Herdman M, Devlin N. New methods
    for analysing the distribution of EQ-5D observations. OHE Research Paper
    18/07. London: Office of Health Economics; 2018.
    """
    parsed, levels = _parse(scores, version, invalid, dimensions)
    codes = parsed.code[parsed.valid]
    if codes.size == 0:
        return float("nan")
    freq = np.bincount(codes, minlength=levels**5)
    freq = np.sort(freq[freq > 0])[::-1]
    c = np.cumsum(freq) / freq.sum()
    k = freq.size
    s = np.arange(1, k + 1) / k
    dc = np.diff(np.concatenate([[0.0], c]))
    ss = s + np.concatenate([[0.0], s[:-1]])
    return float((dc * ss).sum())


def pchc(before: Any, after: Any, version: str = "5L", *, no_problems: bool = True,
         summary: bool = False, invalid: Invalid = "raise",
         dimensions: Sequence[str] = DIMENSIONS) -> Any:
    """Paretian classification of health change between paired profiles.

    For each pair: ``better`` if at least one dimension improved (lower
    level) and none worsened; ``worse`` if at least one worsened and none
    improved; ``mixed`` if some improved and some worsened; ``no_change``
    otherwise.  With ``no_problems=True`` pairs at 11111 before and after
    are ``no_problems`` instead of ``no_change``.  A pair with an invalid or
    missing profile gives ``None`` (``invalid="nan"``) or raises.

    Parameters
    ----------
    before, after : EQ-5D input
        Paired responses in the same order (same length).
    summary : bool
        Return counts instead of one label per pair: a DataFrame with
        columns ``category, n, percent`` (percent of classified pairs; NaN if
        none).

    References
    ----------
    Devlin NJ, Parkin D, Browne J. Patient-reported outcome measures in the
    NHS: new methods for analysing and reporting EQ-5D data. Health Econ
    2010;19(8):886-905. doi:10.1002/hec.1608
    """
    pb, levels = _parse(before, version, invalid, dimensions)
    pa, _ = _parse(after, version, invalid, dimensions)
    if pb.code.size != pa.code.size:
        raise SpineregError(
            f"before and after differ in length ({pb.code.size} vs {pa.code.size}); pairs must align")
    lb = pb.levels(levels)
    la = pa.levels(levels)
    ok = pb.valid & pa.valid
    improved = (la < lb).any(axis=1)
    worsened = (la > lb).any(axis=1)
    nothing = (lb == 1).all(axis=1) & (la == 1).all(axis=1)
    label = np.full(lb.shape[0], "no_change", dtype=object)
    label[improved & ~worsened] = "better"
    label[worsened & ~improved] = "worse"
    label[improved & worsened] = "mixed"
    if no_problems:
        label[~improved & ~worsened & nothing] = "no_problems"
    label[~ok] = None
    if summary:
        cats = [c for c in PCHC_CATEGORIES if no_problems or c != "no_problems"]
        n_ok = int(ok.sum())
        counts = [int((label[ok] == c).sum()) for c in cats]
        return pd.DataFrame({
            "category": cats,
            "n": counts,
            "percent": [100.0 * k / n_ok if n_ok else np.nan for k in counts],
        })
    if pb.kind == "pandas":
        return pd.Series(label, index=pb.index, name="pchc", dtype="object")
    if pb.kind == "scalar":
        return label[0]
    return label

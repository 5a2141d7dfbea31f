"""Hodges-Lehmann estimate and CI under the normal approximation, against R.

Reference values: tests/stats/reference/ (see its README.md), made by R 4.2.2 with
``wilcox.test(after, before, paired = TRUE, exact = FALSE, correct = TRUE,
conf.int = TRUE, conf.level = ...)``.  Inputs and outputs are stored as hexadecimal
doubles, so Python sees exactly the numbers R saw and the comparison can be tight.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spinereg.stats import paired_change
from spinereg.stats._paired import _qnorm

REFERENCE = Path(__file__).parent / "reference"
#: estimates and limits are bit-identical to R; p-values come from SciPy's ndtr, not
#: R's pnorm, and agree to about 1e-15 relative.
REL = 1e-13


def _hex(text: str) -> float:
    return math.nan if text == "NA" else float.fromhex(text)


def _vector(text: str) -> list[float]:
    return [_hex(v) for v in text.split()]


def _table(name: str) -> pd.DataFrame:
    return pd.read_csv(REFERENCE / name, dtype=str, keep_default_na=False)


def _same(actual: float, expected: float) -> bool:
    if math.isnan(expected):
        return math.isnan(actual)
    return math.isclose(actual, expected, rel_tol=REL, abs_tol=0.0)


def _run(before: str, after: str, conf_level: float) -> tuple[pd.Series, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = paired_change(_vector(before), _vector(after), method="wilcoxon", exact=False,
                            conf_level=conf_level)
    return got.iloc[0], [str(w.message) for w in caught]


_CASES = _table("hl_normal_reference.csv")


@pytest.mark.parametrize("row", [r for _, r in _CASES.iterrows()],
                         ids=[f"{c}-{lvl}" for c, lvl in zip(_CASES["case"], _CASES["conf_level"], strict=True)])
def test_matches_r_wilcox_test(row: pd.Series) -> None:
    got, messages = _run(row["before"], row["after"], float(row["conf_level"]))
    assert got["method"] == "wilcoxon_normal_cc"
    assert got["n_pairs"] == int(row["n_pairs"])
    for col in ("statistic", "p_value", "estimate", "ci_low", "ci_high"):
        assert _same(float(got[col]), _hex(row[col])), (col, float(got[col]).hex(), row[col])
    # R warns "requested conf.level not achievable" exactly when this function does
    r_warned = "not achievable" in row["r_warnings"]
    assert r_warned == any("not achievable" in m for m in messages), (row["r_warnings"], messages)
    # where R cannot compute the interval (all observations zero or tied) the note says so
    if "cannot compute confidence interval" in row["r_warnings"]:
        assert got["note"] != ""


def test_reference_covers_ties_zeros_and_degenerate_samples() -> None:
    """The reference table holds the kinds of sample the brief asks for."""
    names = set(_CASES["case"])
    assert {"all_pairs_equal_n6", "all_differences_equal_n5", "one_nonzero_n5", "two_nonzero_n6",
            "all_abs_tied_n8", "with_missing_n10"} <= names
    sizes = {int(n) for n in _CASES["n_pairs"]}
    assert set(range(5, 13)) <= sizes
    assert len(_CASES) >= 300


def test_estimate_is_r_root_not_walsh_median() -> None:
    """d = 8, -3, 7 (and four zero differences): the median of the six Walsh
    averages is 4.75, R's uniroot stops at 3.4275650899787861."""
    before = [5, 5, 1, 6, 6, 8, 1]
    after = [5, 5, 9, 6, 3, 8, 8]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = paired_change(before, after, method="wilcoxon", exact=False).iloc[0]
    d = np.array([8.0, -3.0, 7.0])
    walsh = (d[:, None] + d[None, :])[np.triu_indices(3)] / 2
    assert float(np.median(walsh)) == 4.75
    assert float(got["estimate"]) == float.fromhex("0x1.b6ba73ef2f623p+1")  # R: 3.4275650899787861


def test_ties_estimate_is_within_tol_of_a_jump() -> None:
    """Integer scores with ties: d = -18 x4, -20 x2 (plus two zeros).  R's root
    -18.999995692547397 lies within tol.root = 1e-4 of the Walsh median -19."""
    before = [40, 52, 38, 60, 44, 30, 50, 46]
    after = [22, 52, 20, 40, 24, 30, 32, 28]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = paired_change(before, after, method="wilcoxon", exact=False).iloc[0]
    assert float(got["estimate"]) == -18.999995692547397
    assert float(got["estimate"]) != -19.0
    assert abs(float(got["estimate"]) + 19.0) < 1e-4


@pytest.mark.parametrize("row", [r for _, r in _table("shared_paired_normal_rerun.csv").iterrows()],
                         ids=list(_table("shared_paired_normal_rerun.csv")["dataset"]))
def test_shared_reference_inputs_as_r_reads_them(row: pd.Series) -> None:
    """Every shared paired data set (../shared/reference/stats/paired_input.csv), run by R
    from the stored digits, and data set 1 rebuilt at full precision from its seed."""
    got, _ = _run(row["before"], row["after"], 0.95)
    for col in ("statistic", "p_value", "estimate", "ci_low", "ci_high"):
        assert _same(float(got[col]), _hex(row[col])), (col, float(got[col]).hex(), row[col])


# R: sprintf("%a", qnorm(p)) and sprintf("%a", qnorm(p, lower.tail = FALSE)), R 4.2.2
_R_QNORM = [
    (0.025, "-0x1.f5c0331eeff83p+0", "0x1.f5c0331eeff83p+0"),
    (0.05, "-0x1.a515209676abdp+0", "0x1.a515209676abdp+0"),
    (0.1, "-0x1.4813c36e26d34p+0", "0x1.4813c36e26d34p+0"),
    (0.2, "-0x1.aee8fa73a1333p-1", "0x1.aee8fa73a1335p-1"),
    (0.4, "-0x1.036d6c4a04b5ap-2", "0x1.036d6c4a04b5ap-2"),
    (0.005, "-0x1.49b4c64d6915fp+1", "0x1.49b4c64d6915fp+1"),
]


@pytest.mark.parametrize(("p", "lower", "upper"), _R_QNORM)
def test_qnorm_is_r_bit_for_bit(p: float, lower: str, upper: str) -> None:
    """The targets of the root search are R's quantiles to the last bit; SciPy's
    ndtri(0.975) is 0x1.f5c0331eeff84p+0, one ulp off, which moves some roots by a
    whole step of the signed-rank statistic."""
    assert _qnorm(p) == float.fromhex(lower)
    assert _qnorm(p, lower_tail=False) == float.fromhex(upper)

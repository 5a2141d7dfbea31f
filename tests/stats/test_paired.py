"""paired_change against R (t.test, wilcox.test) and by hand."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from spinereg._errors import SpineregError
from spinereg.stats import paired_change
from spinereg.stats._paired import _psignrank, _qsignrank, _signrank_probs, _zeroin
from tests.conftest import SHARED, shared_path

REL = 1e-6
NUMBERS = ["n_pairs", "estimate", "ci_low", "ci_high", "statistic", "df", "p_value"]
COLUMNS = [*NUMBERS, "method", "note"]
CALL = {"t_paired": ("t", None), "wilcoxon_exact": ("wilcoxon", True),
        "wilcoxon_normal_cc": ("wilcoxon", False)}

# R's normal-approximation Wilcoxon estimate is a root of a step function found by
# uniroot(); for these five data sets it sits on a jump whose side depends on the last
# bits of the inputs.  paired_expected.csv was computed by R from the unrounded
# simulated data, paired_input.csv keeps 15 significant digits, and R itself, given
# the stored digits, returns another estimate (relative change 1.1e-6, 4.1e-3, 3.3e-3,
# 2.3e-6, 6.3e-6).  paired_change matches R on the same doubles bit for bit: see
# tests/stats/reference/shared_paired_normal_rerun.csv (R run on the stored digits, and
# data set 1 rebuilt at full precision from its seed, which reproduces the shared value)
# and test_hl_normal.py.
KNIFE_EDGE = {(1, "wilcoxon_normal_cc"), (6, "wilcoxon_normal_cc"), (15, "wilcoxon_normal_cc"),
              (18, "wilcoxon_normal_cc"), (21, "wilcoxon_normal_cc")}


def _inputs() -> pd.DataFrame:
    return pd.read_csv(shared_path("reference", "stats", "paired_input.csv"))


def _expected() -> pd.DataFrame:
    return pd.read_csv(shared_path("reference", "stats", "paired_expected.csv"))


def _reference_cases() -> list[tuple[int, str]]:
    path = SHARED / "reference" / "stats" / "paired_expected.csv"
    if not path.exists():  # one case that skips (or fails under CI) with the reason
        return [(0, "absent")]
    exp = pd.read_csv(path)
    return [(int(d), str(m)) for d, m in zip(exp["dataset"], exp["method"], strict=True)]


def _close(actual: float, expected: float, rel: float = REL) -> bool:
    if math.isnan(expected):
        return math.isnan(actual)
    return math.isclose(actual, expected, rel_tol=rel, abs_tol=1e-300)


def _run(dataset: int, method: str) -> tuple[pd.Series, pd.Series]:
    inp = _inputs()
    exp = _expected()
    data = inp[inp["dataset"] == dataset]
    how, exact = CALL[method]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # R's conf.level warnings
        got = paired_change(data["before"], data["after"], method=how, exact=exact)  # type: ignore[arg-type]
    assert list(got.columns) == COLUMNS
    want = exp[(exp["dataset"] == dataset) & (exp["method"] == method)].iloc[0]
    return got.iloc[0], want


@pytest.mark.parametrize(("dataset", "method"), _reference_cases())
def test_matches_r(dataset: int, method: str) -> None:
    if method == "absent":
        shared_path("reference", "stats", "paired_expected.csv")
    got, want = _run(dataset, method)
    assert got["method"] == method
    assert got["note"] == ""
    for col in NUMBERS:
        if col == "estimate" and (dataset, method) in KNIFE_EDGE:
            continue  # see test_knife_edge_estimates
        assert _close(float(got[col]), float(want[col])), (col, got[col], want[col])


def _rerun() -> pd.DataFrame:
    path = Path(__file__).parent / "reference" / "shared_paired_normal_rerun.csv"
    return pd.read_csv(path, dtype=str, keep_default_na=False).set_index("dataset")


@pytest.mark.parametrize(("dataset", "method"), sorted(KNIFE_EDGE))
def test_knife_edge_estimates(dataset: int, method: str) -> None:
    """On the stored digits the estimate is R's own estimate from those digits, exactly."""
    got, want = _run(dataset, method)
    rerun = _rerun().loc[str(dataset)]
    inp = _inputs()
    data = inp[inp["dataset"] == dataset]
    # the doubles R read are the doubles pandas reads
    for col in ("before", "after"):
        r_read = [math.nan if v == "NA" else float.fromhex(v) for v in rerun[col].split()]
        np.testing.assert_array_equal(r_read, data[col].to_numpy(dtype=float))
    r_estimate = float.fromhex(str(rerun["estimate"]))
    assert float(got["estimate"]) == r_estimate
    # and R's value from the stored digits is not the shared (unrounded-input) value
    assert not _close(r_estimate, float(want["estimate"]))


@pytest.mark.parametrize(("dataset", "row", "column", "ulps"),
                         [(1, 3, "after", -30), (6, 6, "after", -26), (15, 14, "before", -27),
                          (18, 28, "after", -20), (21, 6, "after", -19)])
def test_wilcoxon_estimate_is_knife_edge(dataset: int, row: int, column: str, ulps: int) -> None:
    """Moving one input by a few dozen ulps (far below the CSV's rounding of
    the data R saw) reproduces R's estimate: the deviation is in the input."""
    inp = _inputs()
    exp = _expected()
    data = inp[inp["dataset"] == dataset].dropna().reset_index(drop=True)
    value = float(data[column].iloc[row])
    data.loc[row, column] = value + ulps * float(np.spacing(value))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # R's conf.level warning (n = 5)
        got = paired_change(data["before"], data["after"], method="wilcoxon", exact=False)
    want = exp[(exp["dataset"] == dataset) & (exp["method"] == "wilcoxon_normal_cc")].iloc[0]
    assert math.isclose(float(got["estimate"].iloc[0]), float(want["estimate"]), rel_tol=1e-12)


def test_auto_exact_choice_follows_r() -> None:
    inp = _inputs()
    exp = _expected()
    for dataset, data in inp.groupby("dataset"):
        methods = set(exp.loc[exp["dataset"] == dataset, "method"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            got = paired_change(data["before"], data["after"], method="wilcoxon")
        expected = "wilcoxon_exact" if "wilcoxon_exact" in methods else "wilcoxon_normal_cc"
        assert got["method"].iloc[0] == expected, dataset


# --- by hand --------------------------------------------------------------------------


def test_t_two_pairs_by_hand() -> None:
    # d = (1, -4): mean -1.5, sd = 5/sqrt(2), se = 2.5, t = -0.6 on 1 df (Cauchy)
    got = paired_change([10.0, 13.0], [11.0, 9.0]).iloc[0]
    assert got["n_pairs"] == 2
    assert got["estimate"] == pytest.approx(-1.5, rel=1e-12)
    assert got["statistic"] == pytest.approx(-0.6, rel=1e-12)
    assert got["df"] == 1
    assert got["p_value"] == pytest.approx(1 - 2 / math.pi * math.atan(0.6), rel=1e-12)
    q = math.tan(math.pi * 0.475)  # Cauchy 97.5% quantile
    assert got["ci_low"] == pytest.approx(-1.5 - q * 2.5, rel=1e-12)
    assert got["ci_high"] == pytest.approx(-1.5 + q * 2.5, rel=1e-12)
    assert got["note"] == ""


def test_t_drops_incomplete_pairs() -> None:
    full = paired_change([1.0, 2.0, 4.0], [2.0, 5.0, 5.0])
    gappy = paired_change([1.0, 2.0, None, 4.0, 7.0], [2.0, 5.0, 9.0, 5.0, float("nan")])
    pd.testing.assert_frame_equal(full, gappy)


def test_t_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    before = rng.normal(50, 10, 30)
    after = before + rng.normal(-5, 8, 30)
    got = paired_change(before, after).iloc[0]
    ref = stats.ttest_rel(after, before)
    assert got["statistic"] == pytest.approx(ref.statistic, rel=1e-12)
    assert got["p_value"] == pytest.approx(ref.pvalue, rel=1e-10)
    ci = ref.confidence_interval(0.9)
    got90 = paired_change(before, after, conf_level=0.9).iloc[0]
    assert (got90["ci_low"], got90["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-12)


def test_wilcoxon_exact_three_pairs_by_hand() -> None:
    # d = (1, -4, 2): |d| ranks 1, 3, 2; V = 1 + 2 = 3; P(V <= 3) = 5/8 -> p = min(1, 5/4) = 1
    # Walsh averages: -4, -1.5, -1, 1, 1.5, 2 -> median (-1 + 1)/2 = 0
    with pytest.warns(RuntimeWarning, match="not achievable"):
        got = paired_change([10.0, 13.0, 16.0], [11.0, 9.0, 18.0], method="wilcoxon").iloc[0]
    assert got["method"] == "wilcoxon_exact"
    assert got["statistic"] == 3
    assert got["p_value"] == 1.0
    assert got["estimate"] == 0.0
    assert (got["ci_low"], got["ci_high"]) == (-4.0, 2.0)  # qsignrank(0.025, 3) = 0 -> extremes
    assert math.isnan(got["df"])


def test_wilcoxon_exact_matches_scipy_pvalue() -> None:
    d = np.array([-3.1, 4.2, -5.3, -6.4, 1.05, -7.6, -8.7, 2.15, -9.9, -10.2, 11.4, -12.8])
    got = paired_change(np.zeros(d.size), d, method="wilcoxon").iloc[0]
    ref = stats.wilcoxon(d, method="exact")
    assert got["method"] == "wilcoxon_exact"
    assert got["p_value"] == pytest.approx(ref.pvalue, rel=1e-12)
    walsh = (d[:, None] + d[None, :])[np.triu_indices(d.size)] / 2
    assert got["estimate"] == pytest.approx(np.median(walsh), rel=1e-12)  # Hodges-Lehmann


@pytest.mark.filterwarnings("ignore:paired_change. requested conf_level")
def test_wilcoxon_ties_fall_back_to_normal_with_warning_when_exact_forced() -> None:
    with pytest.warns(RuntimeWarning, match="ties"):
        got = paired_change([0, 0, 0, 0, 0, 0], [1, 1, -2, 3, 4, 5], method="wilcoxon", exact=True)
    assert got["method"].iloc[0] == "wilcoxon_normal_cc"


@pytest.mark.filterwarnings("ignore:paired_change. requested conf_level")
def test_wilcoxon_normal_drops_zero_differences() -> None:
    # d = (0, 2, -1, 3, 5): the zero is dropped, V over (2, -1, 3, 5): ranks 2, 1, 3, 4 -> 9
    got = paired_change([1, 1, 1, 1, 1], [1, 3, 0, 4, 6], method="wilcoxon").iloc[0]
    assert got["n_pairs"] == 5
    assert got["method"] == "wilcoxon_normal_cc"
    assert got["statistic"] == 9
    z = (9 - 4 * 5 / 4 - 0.5) / math.sqrt(4 * 5 * 9 / 24)
    assert got["p_value"] == pytest.approx(2 * stats.norm.sf(z), rel=1e-12)


def test_signrank_distribution() -> None:
    # n = 3: V in 0..6 with counts 1, 1, 1, 2, 1, 1, 1
    # (scaled by exp(-n log 2) as R does, which is 2^-n only to rounding)
    np.testing.assert_allclose(_signrank_probs(3) * 8, [1, 1, 1, 2, 1, 1, 1], rtol=1e-15)
    probs = _signrank_probs(10)
    assert probs.sum() == pytest.approx(1.0, rel=1e-15)
    assert _psignrank(8, 10, probs) == pytest.approx(25 / 1024, rel=1e-12)  # table value
    assert _qsignrank(0.025, 10, probs) == 9  # R: qsignrank(0.025, 10)
    assert _qsignrank(0.975, 10, probs) == 46  # R: qsignrank(0.975, 10)


def test_zeroin_finds_root_within_tolerance() -> None:
    root = _zeroin(lambda x: math.cos(x) - x, 0.0, 1.0, 1.0, math.cos(1.0) - 1.0, 1e-10)
    assert root == pytest.approx(0.7390851332151607, abs=1e-9)
    assert _zeroin(lambda x: x, 0.0, 1.0, 0.0, 1.0, 1e-4) == 0.0  # root at an end


# --- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"before": [1, 2, 3], "after": [1, 2]}, "same length"),
        ({"before": [1, 2], "after": [1, 2], "conf_level": 1.0}, "conf_level"),
        ({"before": [1, 2], "after": [1, 2], "conf_level": 0}, "conf_level"),
        ({"before": [1, 2], "after": [1, 2], "conf_level": "high"}, "conf_level"),
        ({"before": [1, 2], "after": [1, 2], "method": "sign"}, "method"),
        ({"before": [1, 2], "after": [1, 2], "method": "wilcoxon", "exact": "yes"}, "exact"),
        ({"before": ["a", "b"], "after": [1, 2]}, "numeric"),
        ({"before": [1, float("inf")], "after": [1, 2]}, "infinite"),
        ({"before": [[1, 2]], "after": [[1, 2]]}, "one-dimensional"),
    ],
)
def test_bad_input_raises(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(SpineregError, match=message):
        paired_change(**kwargs)  # type: ignore[arg-type]

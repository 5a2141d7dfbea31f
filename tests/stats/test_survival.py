"""kaplan_meier against R (survival::survfit, summary, print) and by hand."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from spinereg._errors import SpineregError
from spinereg.stats import KaplanMeierResult, kaplan_meier
from tests.conftest import SHARED, shared_path

REL = 1e-6
Z = 1.959963984540054


def _reference_cases() -> list[tuple[int, str]]:
    path = SHARED / "reference" / "stats" / "km_expected.csv"
    if not path.exists():  # one case that skips (or fails under CI) with the reason
        return [(0, "absent")]
    exp = pd.read_csv(path)
    pairs = exp[["dataset", "conf_type"]].drop_duplicates()
    return [(int(d), str(c)) for d, c in zip(pairs["dataset"], pairs["conf_type"], strict=True)]


def _close(actual: float, expected: float) -> bool:
    if math.isnan(expected):
        return math.isnan(actual)
    return math.isclose(actual, expected, rel_tol=REL, abs_tol=1e-300)


@pytest.mark.parametrize(("dataset", "conf_type"), _reference_cases())
def test_matches_r(dataset: int, conf_type: str) -> None:
    inp = pd.read_csv(shared_path("reference", "stats", "km_input.csv"))
    exp = pd.read_csv(shared_path("reference", "stats", "km_expected.csv"))
    med = pd.read_csv(shared_path("reference", "stats", "km_median_expected.csv"))
    data = inp[inp["dataset"] == dataset]
    want = exp[(exp["dataset"] == dataset) & (exp["conf_type"] == conf_type)]
    got = kaplan_meier(data["time"], data["event"], conf_type=conf_type,  # type: ignore[arg-type]
                       times=want["time"].to_numpy())
    assert list(got.table.columns) == ["time", "n_risk", "survival", "ci_low", "ci_high"]
    assert len(got.table) == len(want)
    np.testing.assert_array_equal(got.table["time"], want["time"])
    np.testing.assert_array_equal(got.table["n_risk"], want["n_risk"])
    for col in ("survival", "ci_low", "ci_high"):
        for a, b in zip(got.table[col], want[col], strict=True):
            assert _close(float(a), float(b)), (col, a, b)
    wm = med[(med["dataset"] == dataset) & (med["conf_type"] == conf_type)].iloc[0]
    assert (got.n, got.events) == (wm["n"], wm["events"])
    assert list(got.median.columns) == ["median", "ci_low", "ci_high"]
    m = got.median.iloc[0]
    for col, ref in (("median", "median"), ("ci_low", "median_ci_low"), ("ci_high", "median_ci_high")):
        assert _close(float(m[col]), float(wm[ref])), (col, m[col], wm[ref])
    if math.isnan(float(wm["median"])):
        assert "median not reached" in got.note


# --- by hand ---------------------------------------------------------------------------

TIME = [1.0, 2.0, 3.0, 4.0, 5.0]
EVENT = [1, 0, 1, 1, 0]
# S(1) = 4/5, S(3) = 4/5 * 2/3, S(4) = S(3) * 1/2;
# Greenwood: 1/(5*4), + 1/(3*2), + 1/(2*1)
S = {1: 0.8, 3: 0.8 * 2 / 3, 4: 0.8 * 2 / 3 * 0.5}
V = {1: 1 / 20, 3: 1 / 20 + 1 / 6, 4: 1 / 20 + 1 / 6 + 1 / 2}


def test_by_hand_log() -> None:
    got = kaplan_meier(TIME, EVENT, times=[0.5, 1, 3, 3.5, 4])
    tab = got.table
    np.testing.assert_array_equal(tab["n_risk"], [5, 5, 3, 2, 2])  # at the first time >= t
    np.testing.assert_allclose(tab["survival"], [1, S[1], S[3], S[3], S[4]], rtol=1e-14)
    se = np.sqrt([0, V[1], V[3], V[3], V[4]])
    surv = tab["survival"].to_numpy()
    np.testing.assert_allclose(tab["ci_low"], surv * np.exp(-Z * se), rtol=1e-12)
    np.testing.assert_allclose(tab["ci_high"], np.minimum(surv * np.exp(Z * se), 1), rtol=1e-12)
    assert got.median["median"].iloc[0] == 4.0
    assert math.isnan(got.median["ci_high"].iloc[0])  # upper curve stays above 0.5
    assert got.note == "upper confidence limit of the median not reached"


def test_by_hand_plain_is_clipped() -> None:
    tab = kaplan_meier(TIME, EVENT, conf_type="plain", times=[1, 4]).table
    hi = S[1] * (1 + Z * math.sqrt(V[1]))
    assert hi > 1
    assert tab["ci_high"].iloc[0] == 1.0  # clipped as R
    lo = S[4] * (1 - Z * math.sqrt(V[4]))
    assert lo < 0
    assert tab["ci_low"].iloc[1] == 0.0
    assert tab["ci_low"].iloc[0] == pytest.approx(S[1] * (1 - Z * math.sqrt(V[1])), rel=1e-12)


def test_by_hand_log_log() -> None:
    tab = kaplan_meier(TIME, EVENT, conf_type="log-log", times=[3]).table
    s, v = S[3], V[3]
    shift = Z * math.sqrt(v) / math.log(s)
    assert tab["ci_low"].iloc[0] == pytest.approx(s ** math.exp(-shift), rel=1e-12)
    assert tab["ci_high"].iloc[0] == pytest.approx(s ** math.exp(shift), rel=1e-12)


def test_median_midpoint_rule() -> None:
    # S = 0.75, 0.5, 0.25, 0: S is 0.5 exactly on [2, 3) -> median (2 + 3) / 2
    got = kaplan_meier([1, 2, 3, 4], [1, 1, 1, 1])
    assert got.median["median"].iloc[0] == 2.5
    np.testing.assert_array_equal(got.table["time"], [1, 2, 3, 4])  # default: event times


def test_default_times_are_event_times_and_late_times_are_omitted_with_note() -> None:
    got = kaplan_meier(TIME, EVENT, times=[2, 6, 9])
    np.testing.assert_array_equal(got.table["time"], [2])
    assert "6, 9 after the last follow-up (5) omitted" in got.note
    np.testing.assert_array_equal(kaplan_meier(TIME, EVENT).table["time"], [1, 3, 4])


def test_matches_lifelines_survival_and_loglog_interval() -> None:
    lifelines = pytest.importorskip("lifelines")
    rng = np.random.default_rng(7)
    t = np.round(rng.exponential(12, 80), 1)
    e = (rng.random(80) < 0.7).astype(int)
    fit = lifelines.KaplanMeierFitter().fit(t, e)
    grid = np.unique(t[e == 1])
    got = kaplan_meier(t, e, conf_type="log-log", times=grid).table
    np.testing.assert_allclose(got["survival"], fit.survival_function_at_times(grid), rtol=1e-12)
    ci = fit.confidence_interval_survival_function_.loc[grid]
    ok = got["survival"].to_numpy() > 0
    np.testing.assert_allclose(got["ci_low"][ok], ci.iloc[:, 0][ok], rtol=1e-9)
    np.testing.assert_allclose(got["ci_high"][ok], ci.iloc[:, 1][ok], rtol=1e-9)


def test_missing_rows_are_dropped() -> None:
    full = kaplan_meier(TIME, EVENT, times=[1, 3])
    gappy = kaplan_meier([*TIME, None, 7.0], [*EVENT, 1, float("nan")], times=[1, 3])
    pd.testing.assert_frame_equal(full.table, gappy.table)
    assert gappy.n == 5


def test_no_events() -> None:
    got = kaplan_meier([3.0, 5.0, 8.0], [0, 0, 0], times=[1, 4])
    assert got.events == 0
    np.testing.assert_array_equal(got.table["survival"], [1.0, 1.0])
    assert got.median.isna().all(axis=None)
    assert got.note.startswith("no events")


def test_survival_reaching_zero_gives_nan_limits_with_note() -> None:
    got = kaplan_meier([1, 2], [1, 1], times=[2])
    row = got.table.iloc[0]
    assert row["survival"] == 0.0
    assert math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])
    assert "survival reaches 0" in got.note


def test_result_is_frozen_and_summary_combines() -> None:
    got = kaplan_meier(TIME, EVENT, times=[1, 3])
    assert isinstance(got, KaplanMeierResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.note = "x"  # type: ignore[misc]
    summ = got.summary
    assert list(summ["quantity"]) == ["survival", "survival", "median"]
    assert summ["estimate"].iloc[-1] == got.median["median"].iloc[0]
    np.testing.assert_array_equal(summ["estimate"].iloc[:2], got.table["survival"])
    assert (summ["conf_type"] == "log").all()


# --- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"time": [1, 2], "event": [1]}, "same length"),
        ({"time": [-1, 2], "event": [1, 1]}, "negative"),
        ({"time": [1, float("inf")], "event": [1, 1]}, "infinite"),
        ({"time": [1, 2], "event": [1, 2]}, "0 .censored. or 1"),
        ({"time": [1, 2], "event": [1, 0.5]}, "0 .censored. or 1"),
        ({"time": [1, 2], "event": [1, 0], "conf_type": "logit"}, "conf_type"),
        ({"time": [1, 2], "event": [1, 0], "conf_level": 1.5}, "conf_level"),
        ({"time": [1, 2], "event": [1, 0], "times": [-1]}, "not negative"),
        ({"time": [1, 2], "event": [1, 0], "times": [1, None]}, "missing"),
        ({"time": ["a", "b"], "event": [1, 0]}, "numeric"),
    ],
)
def test_bad_input_raises(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(SpineregError, match=message):
        kaplan_meier(**kwargs)  # type: ignore[arg-type]

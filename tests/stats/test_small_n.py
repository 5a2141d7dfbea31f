"""Small cohorts (n = 0, 1, 2): explicit "not estimable" results, never an exception
or a silent NaN; plus the package's public surface and layering."""

from __future__ import annotations

import ast
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import spinereg.stats
from spinereg.stats import kaplan_meier, mixed_change, paired_change, proportion

NUMBERS = ["estimate", "ci_low", "ci_high", "statistic", "df", "p_value"]


def _no_silent_nan(frame: pd.DataFrame, numbers: list[str]) -> None:
    """Every row with a NaN number explains itself in ``note``."""
    has_nan = frame[numbers].isna().any(axis=1)
    assert (frame.loc[has_nan, "note"] != "").all(), frame


# --- paired_change ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["t", "wilcoxon"])
@pytest.mark.parametrize("n", [0, 1])
def test_paired_fewer_than_two_pairs(method: str, n: int) -> None:
    got = paired_change([10.0] * n, [12.0] * n, method=method)  # type: ignore[arg-type]
    row = got.iloc[0]
    assert row["n_pairs"] == n
    assert row["note"] == "not estimable: fewer than 2 complete pairs"
    assert row[NUMBERS].isna().all()


def test_paired_pairs_lost_to_missing_values() -> None:
    got = paired_change([1.0, None, 3.0], [np.nan, 2.0, None]).iloc[0]
    assert got["n_pairs"] == 0
    assert got["note"].startswith("not estimable")


def test_paired_two_pairs_t_is_estimable_by_hand() -> None:
    # d = (2, 4): mean 3, se = sd/sqrt(2) = 1, t = 3 on 1 df
    row = paired_change([1.0, 1.0], [3.0, 5.0]).iloc[0]
    assert (row["estimate"], row["statistic"], row["df"]) == (3.0, 3.0, 1.0)
    assert row["p_value"] == pytest.approx(1 - 2 / math.pi * math.atan(3.0), rel=1e-12)
    assert row["note"] == ""


def test_paired_two_pairs_wilcoxon_by_hand() -> None:
    # d = (2, 4): V = 3 = max -> P(V >= 3) = 1/4 -> p = 1/2; Walsh 2, 3, 4
    with pytest.warns(RuntimeWarning, match="not achievable"):
        row = paired_change([1.0, 1.0], [3.0, 5.0], method="wilcoxon").iloc[0]
    assert (row["statistic"], row["p_value"], row["estimate"]) == (3.0, 0.5, 3.0)
    assert (row["ci_low"], row["ci_high"]) == (2.0, 4.0)
    assert row["method"] == "wilcoxon_exact"
    assert math.isnan(row["df"])


def test_paired_constant_differences() -> None:
    t = paired_change([1.0, 2.0], [3.0, 4.0]).iloc[0]
    assert t["note"].startswith("not estimable: all paired differences are equal")
    assert t["estimate"] == 2.0
    assert math.isnan(t["p_value"])
    w = paired_change([1.0, 2.0], [1.0, 2.0], method="wilcoxon").iloc[0]
    assert w["note"] == "not estimable: all paired differences are zero"


@pytest.mark.parametrize("n", [0, 1, 2, 3])
@pytest.mark.parametrize("method", ["t", "wilcoxon"])
def test_paired_never_a_silent_nan(n: int, method: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = paired_change(np.arange(n, dtype=float), np.arange(n) * 1.5 + 1,
                            method=method)  # type: ignore[arg-type]
    numbers = [c for c in NUMBERS if not (method == "wilcoxon" and c == "df")]  # df NaN by design
    _no_silent_nan(got, numbers)


# --- proportion ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["clopper-pearson", "wilson", "wilson-cc"])
def test_proportion_small_n(method: str) -> None:
    zero = proportion(0, 0, method=method).iloc[0]  # type: ignore[arg-type]
    assert zero["note"] == "not estimable: n = 0"
    assert zero[["proportion", "ci_low", "ci_high"]].isna().all()
    for x, n in [(0, 1), (1, 1), (1, 2)]:
        row = proportion(x, n, method=method).iloc[0]  # type: ignore[arg-type]
        assert row["note"] == ""
        assert 0.0 <= row["ci_low"] <= row["proportion"] <= row["ci_high"] <= 1.0


def test_proportion_one_of_one_clopper_pearson_by_hand() -> None:
    row = proportion(1, 1).iloc[0]
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(0.025), 1.0)


# --- kaplan_meier ----------------------------------------------------------------------


def test_km_no_patients() -> None:
    got = kaplan_meier([], [], times=[1, 2])
    assert got.n == 0
    assert got.note == "not estimable: no patients with time and event"
    assert got.table["survival"].isna().all()
    assert got.median.isna().all(axis=None)
    assert (got.summary["note"] == got.note).all()


def test_km_one_patient_with_event() -> None:
    got = kaplan_meier([4.0], [1], times=[2, 4])
    np.testing.assert_array_equal(got.table["survival"], [1.0, 0.0])
    np.testing.assert_array_equal(got.table["n_risk"], [1, 1])
    assert got.median["median"].iloc[0] == 4.0
    assert "survival reaches 0" in got.note


def test_km_one_censored_patient() -> None:
    got = kaplan_meier([4.0], [0], times=[2])
    assert got.table["survival"].iloc[0] == 1.0
    assert got.median.isna().all(axis=None)
    assert got.note.startswith("no events")


def test_km_two_patients_by_hand() -> None:
    # times 3 (event), 5 (censored): S(3) = 1/2 exactly and stays: median = 3 (no later drop)
    got = kaplan_meier([3.0, 5.0], [1, 0], times=[3])
    row = got.table.iloc[0]
    assert row["survival"] == 0.5
    se = math.sqrt(1 / (2 * 1))
    assert row["ci_low"] == pytest.approx(0.5 * math.exp(-1.959963984540054 * se), rel=1e-12)
    assert row["ci_high"] == 1.0
    assert got.median["median"].iloc[0] == 3.0


# --- mixed_change ----------------------------------------------------------------------


def _long(n_patients: int) -> pd.DataFrame:
    rows = [{"id": i, "timepoint": tp, "y": 40.0 - 8 * j + 3 * i + (j * i) % 3}
            for i in range(n_patients) for j, tp in enumerate(("baseline", "m3", "m12"))]
    return pd.DataFrame(rows, columns=["id", "timepoint", "y"])


def test_mixed_no_patients() -> None:
    data = pd.DataFrame({"id": [1, 1], "timepoint": ["baseline", "m3"], "y": [np.nan, np.nan]})
    got = mixed_change(data)
    assert list(got["term"]) == ["(Intercept)", "timepointm3"]
    assert (got["note"] == "not estimable: no observed y").all()
    assert got[["estimate", "std_error", "p_value"]].isna().all(axis=None)


def test_mixed_one_patient() -> None:
    got = mixed_change(_long(1))
    assert got["note"].iloc[0].startswith("not estimable: 1 patient(s)")
    assert got[["estimate", "std_error", "df"]].isna().all(axis=None)


def test_mixed_two_patients_is_estimable() -> None:
    got = mixed_change(_long(2))
    assert (got["note"] == "").all()
    np.testing.assert_array_equal(got["df"], [2.0, 2.0, 2.0])  # N - m - 2 = 6 - 2 - 2
    assert np.isfinite(got[["estimate", "std_error", "p_value"]].to_numpy()).all()


def test_mixed_without_reference_observations() -> None:
    data = _long(3)
    data.loc[data["timepoint"] == "baseline", "y"] = np.nan
    got = mixed_change(data)
    assert (got["note"] == "not estimable: no observed y at 'baseline'").all()


# --- the package ---------------------------------------------------------------------


def test_public_api_is_sorted_and_resolves() -> None:
    assert spinereg.stats.__all__ == sorted(spinereg.stats.__all__)
    assert spinereg.stats.__all__ == ["KaplanMeierResult", "kaplan_meier", "mixed_change",
                                      "paired_change", "proportion"]
    for name in spinereg.stats.__all__:
        assert getattr(spinereg.stats, name).__doc__


def test_stats_imports_nothing_from_cli_or_instruments() -> None:
    pkg = Path(spinereg.stats.__file__).parent
    for path in pkg.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                assert not name.startswith(("spinereg.cli", "spinereg.instruments")), (path.name, name)
                if name.startswith("spinereg"):
                    assert name.startswith(("spinereg.stats", "spinereg._errors")), (path.name, name)

"""spinereg.study._compare: standardised differences (hand-computed), reverse Kaplan-Meier follow-up (R survival),
answer days and the setting."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from spinereg.study._compare import (
    answer_days,
    follow_up_time,
    setting,
    standardized_difference,
    standardized_difference_binary,
)

REF = Path(__file__).parent / "reference"


def _r_values() -> dict[str, float]:
    with (REF / "reverse_km_R.csv").open(encoding="utf-8") as f:
        return {r["quantity"]: (math.nan if r["value"] == "NA" else float(r["value"])) for r in csv.DictReader(f)}


def test_standardized_difference_continuous_by_hand() -> None:
    # a: mean 2, var 1 (1, 2, 3); b: mean 5, var 4 (3, 5, 7): d = (2 - 5) / sqrt((1 + 4) / 2) = -3 / sqrt(2.5)
    assert standardized_difference([1, 2, 3], [3, 5, 7, np.nan]) == pytest.approx(-3 / math.sqrt(2.5), abs=1e-12)
    assert math.isnan(standardized_difference([1], [2, 3]))
    assert standardized_difference([2, 2], [2, 2]) == 0.0  # no variation, equal means: no imbalance
    assert math.isnan(standardized_difference([2, 2], [3, 3]))  # no variation, different means: undefined


def test_standardized_difference_binary_by_hand() -> None:
    # p1 = 0.5, p0 = 0.2: (0.3) / sqrt((0.25 + 0.16) / 2) = 0.3 / sqrt(0.205) = 0.662589...
    assert standardized_difference_binary(0.5, 0.2) == pytest.approx(0.3 / math.sqrt(0.205), abs=1e-12)
    assert standardized_difference_binary(0.5, 0.2) == pytest.approx(0.6625891564490792, abs=1e-12)
    assert standardized_difference_binary(1.0, 1.0) == 0.0
    assert math.isnan(standardized_difference_binary(1.0, 0.0))


def _ops() -> pd.DataFrame:
    days = [10, 45, 45, 120, 200, 365, 400, 730, 800, 1000, 1200, 1500]
    dead = [1, 1, 0, 1, 0, 1, 0, 0, 1, 0, 0, 0]
    cutoff = pd.Timestamp("2021-06-30")
    # operation dates chosen so that the alive patients are followed exactly `days` to the extract date
    op = [cutoff - pd.Timedelta(days=d) if not x else pd.Timestamp("2015-01-01")
          for d, x in zip(days, dead, strict=True)]
    death = [o + pd.Timedelta(days=d) if x else pd.NaT for o, d, x in zip(op, days, dead, strict=True)]
    return pd.DataFrame({"operation_id": [f"o{i}" for i in range(12)], "date": pd.to_datetime(op),
                         "death_date": pd.to_datetime(death),
                         "hospital": ["A", "A", "B", "B", "C", None, "A", "A", "B", "C", "C", "A"],
                         "department": ["x", "y", "x", "x", "x", "x", "x", "x", "x", "x", None, "x"]})


def test_reverse_km_median_follow_up_matches_r_survival() -> None:
    r = _r_values()
    out = follow_up_time(_ops(), pd.Timestamp("2021-06-30")).iloc[0]
    assert out["n"] == 12 and out["n_alive_censored"] == 7
    assert out["median_months"] == pytest.approx(r["median_months"], abs=1e-9)
    assert out["ci_low"] == pytest.approx(r["ci_low"], abs=1e-9)
    assert math.isnan(r["ci_high"]) and math.isnan(out["ci_high"])
    assert out["median_days"] == pytest.approx(1000.0, abs=1e-9)  # the median reverse-KM time is day 1000
    # the plain median of time to death or extract is shorter: early deaths shorten it
    assert out["observed_median_months"] == pytest.approx(382.5 / (365.25 / 12), abs=1e-9)


def test_answer_days_one_answer_per_patient_and_time_point() -> None:
    from spinereg.study import load_spec  # noqa: F401  (the package imports cleanly)

    class _TP:
        def __init__(self, window: tuple[int, int], target: int) -> None:
            self.window, self.target = window, target

    class _Spec:
        timepoints: ClassVar[dict[str, _TP]] = {"baseline": _TP((-90, 0), 0), "3m": _TP((60, 150), 90)}

    scores = pd.DataFrame({"operation_id": ["a", "a", "b", "c", "c", "d"],
                           "timepoint": ["3m", "3m", "3m", "3m", "baseline", "3m"],
                           "day": [80, 80, 90, 100, -5, 130], "outcome": ["eq5d", "odi", "eq5d", "eq5d", "eq5d",
                                                                          "odi"],
                           "value": [1.0] * 6})
    out = answer_days(scores, _Spec()).set_index("timepoint")  # type: ignore[arg-type]
    # 3m days 80, 90, 100, 130: median 95, R type 7 quartiles 87.5 and 107.5
    assert out.loc["3m", "n"] == 4
    assert out.loc["3m", ["median", "q1", "q3", "min", "max"]].tolist() == [95.0, 87.5, 107.5, 80.0, 130.0]
    assert out.loc["baseline", "n"] == 1 and out.loc["baseline", "median"] == -5.0


def test_setting_counts_hospitals_and_department_pairs() -> None:
    s = setting(_ops()).iloc[0]
    assert s["n_hospitals"] == 3  # A, B, C
    assert s["n_departments"] == 4  # (A,x) (A,y) (B,x) (C,x); rows without hospital or department not counted
    assert s["n_missing_hospital"] == 1
    assert s["first_operation"] == pd.Timestamp("2015-01-01")

"""Estimands when patients die, against R (``reference/estimands.R``) and hand calculations.

The 12-patient cohort of ``reference/estimands.csv`` covers each way a patient can meet death: alive
throughout (A, I, L), died between time points without answering (B, C), answered and died before the
time point's target day (D), alive with a missing answer (E), died inside the last window after its
target day (F), not yet due (G), no baseline score (H), died on the day of the operation (J), answered
the last time point and died later (K).  R computes the composite with death = 0 (t.test), the QALYs
(approx over the breakpoints, checked with integrate) and the mixed model among the patients alive at
each time point (nlme::lme, REML); its output is committed as ``reference/estimands_R.csv``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spinereg.study import load_spec, run_study
from spinereg.study._analyses import mixed_models, responders
from spinereg.study._cohort import extract_date, follow_up, match_timepoints
from spinereg.study._estimands import (
    alive_counts,
    composite_death_zero,
    followup_status,
    qaly_auc,
    trapezoid_death_zero,
)
from spinereg.study._spec import StudySpec

from .test_cohort import SPEC
from .test_run import extract_with_rates

REF = Path(__file__).resolve().parent / "reference"


@pytest.fixture(scope="module")
def spec() -> StudySpec:
    return load_spec(SPEC)[0]


@pytest.fixture(scope="module")
def cohort() -> tuple[pd.DataFrame, pd.DataFrame]:
    d = pd.read_csv(REF / "estimands.csv")
    status = pd.DataFrame({"operation_id": "O" + d["patient_id"], "patient_id": d["patient_id"],
                           "timepoint": d["timepoint"], "status": d["status"],
                           "death_day": d["death_day"].astype(float)})
    s = d[d["value"].notna()]
    target = {"baseline": 0, "3m": 90, "1y": 365}
    scores = pd.DataFrame({"patient_id": s["patient_id"], "operation_id": "O" + s["patient_id"],
                           "timepoint": s["timepoint"], "day": s["timepoint"].map(target).astype(np.int64),
                           "outcome": "eq5d", "value": s["value"].astype(float)})
    return scores, status


@pytest.fixture(scope="module")
def r_ref() -> dict[str, float]:
    t = pd.read_csv(REF / "estimands_R.csv")
    return dict(zip(t["quantity"], t["value"].astype(float), strict=True))


def test_trapezoid_by_hand() -> None:
    # alive: 90 x (0.5 + 0.8)/2 + 275 x (0.8 + 0.9)/2 = 58.5 + 233.75
    assert trapezoid_death_zero([0, 90, 365], [0.5, 0.8, 0.9], math.nan, 365) == pytest.approx(292.25)
    # died on day 200 after answering at day 90: 90 x 0.4 + 110 x 0.6/2, then 0
    assert trapezoid_death_zero([0, 90], [0.2, 0.6], 200.0, 365) == pytest.approx(36 + 33)
    # died on day 500, after the horizon: the value at 365 is 0.9 x 135/410 on the line to (500, 0)
    at = 0.9 * 135 / 410
    assert trapezoid_death_zero([0, 90], [0.5, 0.9], 500.0, 365) == pytest.approx(63 + 275 * (0.9 + at) / 2)
    # a point on or after death is dropped; death on the day of the operation gives 0
    assert trapezoid_death_zero([0, 90], [0.3, 0.7], 85.0, 365) == pytest.approx(85 * 0.3 / 2)
    assert trapezoid_death_zero([0], [0.5], 0.0, 365) == 0.0


def test_composite_death_zero_against_r(cohort: tuple[pd.DataFrame, pd.DataFrame], spec: StudySpec,
                                        r_ref: dict[str, float]) -> None:
    scores, status = cohort
    c = composite_death_zero(scores, status, spec).set_index("timepoint")
    for tp in ("3m", "1y"):
        row = c.loc[tp]
        assert row["n"] == r_ref[f"composite_{tp}_n"]
        assert row["mean_diff"] == pytest.approx(r_ref[f"composite_{tp}_mean"], abs=1e-12)
        assert row["ci_low"] == pytest.approx(r_ref[f"composite_{tp}_ci_low"], abs=1e-9)
        assert row["ci_high"] == pytest.approx(r_ref[f"composite_{tp}_ci_high"], abs=1e-9)
    # by hand at 3 months: dead C and J score 0 (changes -0.4, -0.5); E (no answer) and H (no baseline) left out
    assert c.loc["3m", "mean_diff"] == pytest.approx((0.3 + 0.4 - 0.4 + 0.4 + 0.4 + 0 + 0.5 - 0.5 + 0.1 + 0.05) / 10)
    assert (c.loc["3m", "n_answered"], c.loc["3m", "n_died"], c.loc["3m", "n_missing"]) == (8, 2, 2)
    # 1 year: B, C, D, F, J died before answering; G not yet due, H no baseline / no answer
    assert (c.loc["1y", "n_answered"], c.loc["1y", "n_died"], c.loc["1y", "n_missing"],
            c.loc["1y", "n_not_due"]) == (5, 5, 1, 1)
    assert c.loc["1y", "mean_value"] == pytest.approx((0.9 + 0.5 + 0.4 + 0.6 + 0.65) / 10)


def test_qaly_against_r(cohort: tuple[pd.DataFrame, pd.DataFrame], spec: StudySpec, r_ref: dict[str, float]) -> None:
    scores, status = cohort
    q = qaly_auc(scores, status, spec).iloc[0]
    assert q["horizon_days"] == 365
    assert q["n"] == r_ref["qaly_n"] == 9            # E (3m missing), G (not due), H (no baseline) left out
    # alive at day 365: A, F (died day 500), I, K (died day 400), L; dead by then: B, C, D, J
    assert (q["n_alive"], q["n_died"], q["n_missing"], q["n_not_due"]) == (5, 4, 2, 1)
    assert q["mean_qaly"] == pytest.approx(r_ref["qaly_mean"], abs=1e-12)
    assert q["ci_low"] == pytest.approx(r_ref["qaly_ci_low"], abs=1e-9)
    assert q["ci_high"] == pytest.approx(r_ref["qaly_ci_high"], abs=1e-9)
    assert q["max_qaly"] == pytest.approx(365 / 365.25)
    # patient A by hand: 292.25 / 365.25
    assert r_ref["qaly_A"] == pytest.approx(292.25 / 365.25)


def test_mixed_model_among_the_living_against_r(cohort: tuple[pd.DataFrame, pd.DataFrame], spec: StudySpec,
                                                r_ref: dict[str, float]) -> None:
    scores, status = cohort
    eq_only = spec.model_copy(update={"outcomes": {"eq5d": spec.outcomes["eq5d"]}})
    mm = mixed_models(scores, eq_only, alive=status).set_index("timepoint")
    for tp in ("3m", "1y"):
        row = mm.loc[tp]
        assert row["n_patients"] == r_ref[f"mixed_{tp}_n_patients"]
        assert row["estimate"] == pytest.approx(r_ref[f"mixed_{tp}_estimate"], abs=1e-6)
        assert row["df"] == r_ref[f"mixed_{tp}_df"]
        assert row["ci_low"] == pytest.approx(r_ref[f"mixed_{tp}_ci_low"], abs=1e-6)
        assert row["ci_high"] == pytest.approx(r_ref[f"mixed_{tp}_ci_high"], abs=1e-6)
    # without the restriction the model uses everyone (the dead's missing scores treated as MAR): another estimate
    assert (mm["population"] == "alive").all()
    everyone = mixed_models(scores, eq_only).set_index("timepoint")
    assert (everyone["population"] == "all").all()
    assert everyone.loc["1y", "n_patients"] == 12
    assert everyone.loc["1y", "estimate"] != pytest.approx(mm.loc["1y", "estimate"], abs=1e-3)


def test_alive_counts_by_hand(cohort: tuple[pd.DataFrame, pd.DataFrame], spec: StudySpec) -> None:
    scores, status = cohort
    eq_only = spec.model_copy(update={"outcomes": {"eq5d": spec.outcomes["eq5d"]}})
    a = alive_counts(scores, status, eq_only).set_index("timepoint")
    # 3 months: dead C, J; alive A B D E F G H I K L (E without an answer); pairs: the 8 with both scores
    assert a.loc["3m", ["n", "n_died", "n_alive", "n_not_due", "n_scored", "n_pairs"]].tolist() == [12, 2, 10, 0, 9, 8]
    # 1 year: dead B C D F J; G not due; alive A E H I K L; scores A E I K L
    assert a.loc["1y", ["n", "n_died", "n_alive", "n_not_due", "n_scored", "n_pairs"]].tolist() == [12, 5, 6, 1, 5, 5]


def test_status_adds_up_to_the_follow_up_table(spec: StudySpec) -> None:
    x = extract_with_rates()
    res = run_study(spec, x)  # type: ignore[arg-type]
    ops = res.cohort.operations
    cutoff, _ = extract_date(x)  # type: ignore[arg-type]
    matched = match_timepoints(x["proms"], ops, spec)  # type: ignore[index]
    st = followup_status(matched, ops, spec, cutoff)
    fu = follow_up(res.cohort, x, spec, cutoff).set_index("timepoint")  # type: ignore[arg-type]
    for tp, g in st.groupby("timepoint"):
        counts = g["status"].value_counts()
        for k in ("answered", "died_before_answering", "alive_not_answered", "not_yet_due"):
            assert counts.get(k, 0) == fu.loc[tp, k], (tp, k)
    # the paired change carries the while-alive denominators
    pc = res.tables["paired_change"].set_index(["outcome", "timepoint"])
    fu3 = fu.loc["3m"]
    assert pc.loc[("odi", "3m"), "n_alive"] == fu3["answered"] + fu3["alive_not_answered"]
    assert pc.loc[("odi", "3m"), "n_died"] == fu3["died_before_answering"]
    assert {"composite_death0", "qaly"} <= set(res.tables)


def test_odi_relative_responders_by_hand(spec: StudySpec) -> None:
    # ODI (lower is better): baseline -> 3 months
    pairs = {"P1": (50.0, 35.0),    # 30% better: a responder (exactly at the threshold)
             "P2": (50.0, 36.0),    # 28%: not, though 14 points >= the MCID of 10
             "P3": (20.0, 12.0),    # 40% better, but 8 points < the MCID
             "P4": (0.0, 0.0),      # baseline 0: cannot improve, a non-responder
             "P5": (40.0, 44.0)}    # worse
    rows = []
    for pid, (b, a) in pairs.items():
        rows += [(pid, "baseline", b), (pid, "3m", a)]
    scores = pd.DataFrame({"patient_id": [r[0] for r in rows], "operation_id": [r[0] for r in rows],
                           "timepoint": [r[1] for r in rows], "day": 0, "outcome": "odi",
                           "value": [r[2] for r in rows]})
    ops = pd.DataFrame({"operation_id": list(pairs)})
    odi_only = spec.model_copy(update={"outcomes": {"odi": spec.outcomes["odi"]}})
    r = responders(scores, ops, odi_only).set_index(["criterion", "timepoint"])
    assert (r.loc[("relative", "3m"), "x"], r.loc[("relative", "3m"), "n_pairs"]) == (2, 5)   # P1, P3
    assert r.loc[("relative", "3m"), "threshold"] == 30.0
    assert "1 patient with a baseline score of 0 counted as non-responder" in r.loc[("relative", "3m"), "note"]
    assert (r.loc[("mcid", "3m"), "x"], r.loc[("mcid", "3m"), "n_pairs"]) == (2, 5)           # P1, P2
    # R: binom.test(2, 5)$conf.int = 0.05274495 0.85336720
    assert r.loc[("relative", "3m"), "ci_low"] == pytest.approx(0.05274495, abs=1e-8)
    assert r.loc[("relative", "3m"), "ci_high"] == pytest.approx(0.85336720, abs=1e-8)


def test_seed_study_has_back_pain(spec: StudySpec) -> None:
    oc = spec.outcomes["nrs_back"]
    assert (oc.instrument, oc.higher_is_better, oc.mcid) == ("nrs_back", False, 2)

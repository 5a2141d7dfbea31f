"""Follow-up accounting: four groups that add up to the cohort, the response rate among those alive, and deaths by
each window's end that agree with the survival data.

An 11-patient extract built by hand covers every case of the rule (answered then died in the window, death on the
window's last day, death the day after, death before the window opens, an answer on the day of death, a window that
ends after the extract date with and without a death before it, a death recorded after the extract date); the
expected numbers are counted by hand in the comments.  The demo-like synthetic registry checks the same agreement at
scale, against the deaths counted from the patients table and the Kaplan-Meier curve.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from spinereg.data import Extract, conform
from spinereg.data._synth import synthesize
from spinereg.study import load_spec, run_study
from spinereg.study._analyses import DAYS_PER_MONTH, survival
from spinereg.study._cohort import follow_up, select_cohort

SPEC = Path(__file__).resolve().parent.parent.parent / "examples" / "pvp-cancer-vcf" / "study.toml"
EQ = {"eq5d3l_mo": 2, "eq5d3l_sc": 1, "eq5d3l_ua": 2, "eq5d3l_pd": 3, "eq5d3l_ad": 1}
EXTRACT_DATE = "2018-12-31"
# the spec's windows: 3m days 60 to 150, 1y days 270 to 545


def d(s: str, days: int = 0) -> str:
    return (date.fromisoformat(s) + timedelta(days=days)).isoformat()


def build() -> Extract:
    pats, ops, proms = [], [], []

    def patient(pid: str, op_date: str, death_day: int | None = None, answers: tuple[tuple[str, int], ...] = (),
                death: str | None = None) -> None:
        if death_day is not None:
            death = d(op_date, death_day)
        pats.append({"patient_id": pid, "sex": "female", "birth_date": "1950-01-01", "death_date": death})
        ops.append({"operation_id": f"O{pid}", "patient_id": pid, "date": op_date,
                    "procedure_category": "vertebroplasty", "indication": "cancer_vcf", "diagnosis_codes": "C795"})
        for k, (tp, day) in enumerate((("baseline", -5), *answers)):
            proms.append({"prom_id": f"Q{pid}{k}", "patient_id": pid, "operation_id": f"O{pid}", "timepoint": tp,
                          "answer_date": d(op_date, day), **EQ})

    patient("A", "2015-01-01", None, (("3m", 90), ("1y", 365)))   # alive, answers both
    patient("B", "2015-01-01", 120, (("3m", 90),))                # answers at 3m, dies day 120 (in the 3m window)
    patient("C", "2015-01-01", 150)                               # dies on the last day of the 3m window
    patient("D", "2015-01-01", 151)                               # dies the day after the 3m window
    patient("E", "2015-01-01", 30)                                # dies before the 3m window opens
    patient("F", "2015-01-01", 500, (("1y", 400),))               # answers at 1y, dies day 500 (in the 1y window)
    patient("G", "2017-11-01", None, (("3m", 100),))              # 1y window ends 2019-04-30: after the extract
    patient("H", "2017-12-01", 304)                               # dies 2018-10-01, before its 1y window ends
    patient("I", "2017-12-15")                                    # alive; 1y not yet due
    patient("J", "2015-06-01", 100, (("3m", 100),))               # answers on the day of death
    patient("K", "2017-10-01", death="2019-01-15")                # death recorded after the extract date
    x = Extract.empty(extract_date=EXTRACT_DATE)
    x.tables["patients"] = conform(pd.DataFrame(pats), "patients")
    x.tables["operations"] = conform(pd.DataFrame(ops), "operations")
    x.tables["proms"] = conform(pd.DataFrame(proms), "proms")
    return x


# Hand count.
# 3m: answered A, B, G, J (4); died before answering C (day 150, the last day), E (day 30) (2); alive without an
#     answer D (died day 151), F, H (died day 304), I, K (5); not yet due none.  Response 4 / (4 + 5).
#     Deaths by day 150: B (120), C (150), E (30), J (100) = 4, of whom B and J answered first.
# 1y: answered A, F (2); died before answering B, C, D, E, H, J (6); alive without an answer none; not yet due G, I,
#     K (their windows end in 2019; K's death on 2019-01-15 lies after the extract date) (3).  Response 2 / 2.
#     Deaths by day 545: the six above and F (day 500) = 7, of whom F answered first.  K is not a death: the
#     extract ends first (the survival analysis censors K at the extract date).
HAND = {
    "baseline": dict(n=11, answered=11, died_before_answering=0, alive_not_answered=0, not_yet_due=0,
                     response_rate=1.0, died_by_window_end=0, answered_then_died=0),
    "3m": dict(n=11, answered=4, died_before_answering=2, alive_not_answered=5, not_yet_due=0,
               response_rate=4 / 9, died_by_window_end=4, answered_then_died=2),
    "1y": dict(n=11, answered=2, died_before_answering=6, alive_not_answered=0, not_yet_due=3,
               response_rate=1.0, died_by_window_end=7, answered_then_died=1),
}
# Deaths by each window's end counted straight from the death days above (not from the rule).
DEATH_DAYS = [120, 150, 151, 30, 500, 304, 100]


@pytest.fixture(scope="module")
def hand() -> tuple[pd.DataFrame, Extract]:
    spec, _ = load_spec(SPEC)
    x = build()
    cohort = select_cohort(x, spec)
    assert len(cohort.operations) == 11
    return follow_up(cohort, x, spec).set_index("timepoint"), x


def test_follow_up_groups_on_a_hand_built_cohort(hand: tuple[pd.DataFrame, Extract]) -> None:
    acc, _ = hand
    for tp, want in HAND.items():
        got = acc.loc[tp].to_dict()
        assert got.pop("response_rate") == pytest.approx(want["response_rate"]), tp
        assert got == {k: v for k, v in want.items() if k != "response_rate"}, tp


def test_groups_add_up_and_deaths_split_into_before_and_after_answering(hand: tuple[pd.DataFrame, Extract]) -> None:
    acc, _ = hand
    groups = acc[["answered", "died_before_answering", "alive_not_answered", "not_yet_due"]].sum(axis=1)
    assert (groups == acc["n"]).all()
    assert (acc["died_by_window_end"] == acc["died_before_answering"] + acc["answered_then_died"]).all()


def test_deaths_by_window_end_agree_with_kaplan_meier_on_the_hand_built_cohort(
        hand: tuple[pd.DataFrame, Extract]) -> None:
    acc, x = hand
    spec, _ = load_spec(SPEC)
    ops = select_cohort(x, spec).operations
    km = survival(ops, pd.Timestamp(EXTRACT_DATE), spec)["curve"]
    for tp, end in (("baseline", 0), ("3m", 150), ("1y", 545)):
        by_hand = sum(day <= end for day in DEATH_DAYS)
        km_events = int(km.loc[km["months"] <= end / DAYS_PER_MONTH + 1e-12, "n_event"].sum())
        assert acc.loc[tp, "died_by_window_end"] == by_hand == km_events, tp
    assert (by_hand, km_events) == (7, 7)
    # the whole run writes the same numbers to results.json
    res = run_study(spec, x, data_sha256="0" * 64).to_dict(generated_at="t")
    fu = {r["timepoint"]: r for r in res["tables"]["follow_up"]}
    assert fu["1y"]["died_by_window_end"] == 7 and fu["3m"]["died_by_window_end"] == 4
    assert math.isclose(fu["3m"]["response_rate"], 4 / 9)
    assert res["tables"]["survival_median"][0]["events"] == 7   # K's death after the extract date is censored


def test_no_one_alive_and_due_gives_no_response_rate() -> None:
    spec, _ = load_spec(SPEC)
    x = build()
    for name in ("patients", "operations", "proms"):  # patient E alone: dead on day 30
        x.tables[name] = x.tables[name][x.tables[name]["patient_id"] == "E"].reset_index(drop=True)
    acc = follow_up(select_cohort(x, spec), x, spec).set_index("timepoint")
    assert acc.loc["3m", ["answered", "died_before_answering", "alive_not_answered", "not_yet_due"]].tolist() == \
        [0, 1, 0, 0]
    assert math.isnan(acc.loc["3m", "response_rate"]) and math.isnan(acc.loc["1y", "response_rate"])
    assert acc.loc["baseline", "response_rate"] == 1.0


@pytest.fixture(scope="module")
def demo() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    spec, _ = load_spec(SPEC)
    x = synthesize(20000, seed=2018)
    res = run_study(spec, x, data_sha256="0" * 64)
    cutoff = pd.Timestamp(x.meta["extract_date"])
    return (res.tables["follow_up"].set_index("timepoint"), res.tables["survival_curve"],
            res.cohort.operations, cutoff)


def test_deaths_by_window_end_agree_with_the_survival_data_on_the_demo_registry(
        demo: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.Timestamp]) -> None:
    acc, curve, ops, cutoff = demo
    spec, _ = load_spec(SPEC)
    for tp, t in spec.timepoints.items():
        end = t.window[1]
        # from the patients table: death date on or before the window's last day and the extract date
        died = ops["death_date"].notna() & (ops["death_date"] <= cutoff) & \
            ((ops["death_date"] - ops["date"]).dt.days <= end)
        km = int(curve.loc[curve["months"] <= end / DAYS_PER_MONTH + 1e-12, "n_event"].sum())
        assert acc.loc[tp, "died_by_window_end"] == int(died.sum()) == km, tp
    # the numbers the issue reports from the Kaplan-Meier curve of the demo registry: 9 by day 150, 15 by day 545
    assert acc.loc["3m", "died_by_window_end"] == 9 and acc.loc["1y", "died_by_window_end"] == 15
    # ... of whom 2 and 2 had answered before dying: the old "died" column gave 7 and 13
    assert acc.loc["3m", "died_before_answering"] == 7 and acc.loc["1y", "died_before_answering"] == 13
    groups = acc[["answered", "died_before_answering", "alive_not_answered", "not_yet_due"]].sum(axis=1)
    assert (groups == acc["n"]).all()
    rate = acc["answered"] / (acc["answered"] + acc["alive_not_answered"])
    assert acc["response_rate"].to_numpy() == pytest.approx(rate.to_numpy())

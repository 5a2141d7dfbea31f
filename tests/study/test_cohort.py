"""A hand-built 12-patient extract: cohort flow, window matching (ties, out-of-window
answers) and follow-up accounting with deaths, checked against hand counts."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from spinereg.data import Extract, conform
from spinereg.study import load_spec
from spinereg.study._cohort import follow_up, match_timepoints, select_cohort

SPEC = Path(__file__).resolve().parent.parent.parent / "examples" / "pvp-cancer-vcf" / "study.toml"
EQ = {"eq5d3l_mo": 2, "eq5d3l_sc": 1, "eq5d3l_ua": 2, "eq5d3l_pd": 3, "eq5d3l_ad": 1}


def d(s: str, days: int = 0) -> str:
    return (date.fromisoformat(s) + timedelta(days=days)).isoformat()


def build() -> Extract:
    pats, ops, proms = [], [], []

    def patient(pid: str, birth: str = "1950-01-01", death: str | None = None) -> None:
        pats.append({"patient_id": pid, "sex": "female", "birth_date": birth, "death_date": death})

    def op(oid: str, pid: str, when: str, cat: str = "vertebroplasty", ind: str = "cancer_vcf") -> None:
        ops.append({"operation_id": oid, "patient_id": pid, "date": when, "procedure_category": cat,
                    "indication": ind, "diagnosis_codes": "C795"})

    def prom(qid: str, pid: str, oid: str, tp: str, when: str, **items: int | None) -> None:
        proms.append({"prom_id": qid, "patient_id": pid, "operation_id": oid, "timepoint": tp,
                      "answer_date": when, **EQ, **items})

    patient("P01")
    op("O01", "P01", "2014-03-01")
    prom("Q01b", "P01", "O01", "baseline", d("2014-03-01", -10))
    prom("Q01m3a", "P01", "O01", "3m", d("2014-03-01", 85))
    prom("Q01m3b", "P01", "O01", "3m", d("2014-03-01", 100))
    prom("Q01y", "P01", "O01", "1y", d("2014-03-01", 370))
    patient("P02")
    op("O02", "P02", "2015-05-10")
    prom("Q02b", "P02", "O02", "baseline", d("2015-05-10", -5))
    prom("Q02m3late", "P02", "O02", "3m", d("2015-05-10", 100))
    prom("Q02m3early", "P02", "O02", "3m", d("2015-05-10", 80))
    patient("P03", death="2016-06-01")
    op("O03", "P03", "2016-01-15")
    prom("Q03b", "P03", "O03", "baseline", "2016-01-15")
    patient("P04", death="2018-05-01")
    op("O04", "P04", "2016-06-01")
    prom("Q04b", "P04", "O04", "baseline", d("2016-06-01", -30))
    prom("Q04m3", "P04", "O04", "3m", d("2016-06-01", 160))   # outside the 3m window
    prom("Q04y", "P04", "O04", "1y", d("2016-06-01", 300))
    patient("P05")
    op("O05", "P05", "2015-02-01", cat="kyphoplasty")
    patient("P06")
    op("O06", "P06", "2015-02-01", ind="osteoporotic_vcf")
    patient("P07")
    op("O07", "P07", "2012-12-31")
    patient("P08", birth="1997-06-01")
    op("O08", "P08", "2014-06-01")          # aged 17
    patient("P09")
    op("O09a", "P09", "2014-02-01")
    op("O09b", "P09", "2015-02-01")
    prom("Q09b", "P09", "O09a", "baseline", d("2014-02-01", -20))
    patient("P10")
    op("O10", "P10", "2017-09-01")
    prom("Q10b", "P10", "O10", "baseline", d("2017-09-01", -1))
    patient("P11")
    op("O11", "P11", "2016-03-01")
    prom("Q11b", "P11", "O11", "baseline", d("2016-03-01", -100))            # outside the baseline window
    patient("P12")
    op("O12", "P12", "2017-01-10")
    prom("Q12b", "P12", "O12", "baseline", d("2017-01-10", -3), eq5d3l_mo=None)  # incomplete EQ-5D
    x = Extract.empty(extract_date="2018-12-31")
    x.tables["patients"] = conform(pd.DataFrame(pats), "patients")
    x.tables["operations"] = conform(pd.DataFrame(ops), "operations")
    x.tables["proms"] = conform(pd.DataFrame(proms), "proms")
    return x


def test_flow_matches_hand_count() -> None:
    spec, _ = load_spec(SPEC)
    result = select_cohort(build(), spec)
    flow = result.flow.set_index("step")
    # hand count: 13 operations of 12 patients; P05 kyphoplasty; P06 osteoporotic; P07 operated 2012;
    # P08 aged 17; O09b is P09's second operation; P11 baseline 100 days before; P12 incomplete EQ-5D
    assert flow["n_operations"].tolist() == [13, 12, 11, 10, 9, 8, 6]
    assert flow["n_patients"].tolist() == [12, 11, 10, 9, 8, 8, 6]
    assert flow["excluded"].tolist() == [0, 1, 1, 1, 1, 1, 2]
    assert sorted(result.operations["operation_id"]) == ["O01", "O02", "O03", "O04", "O09a", "O10"]


def test_window_matching_nearest_target_and_ties() -> None:
    spec, _ = load_spec(SPEC)
    x = build()
    result = select_cohort(x, spec)
    m = match_timepoints(x["proms"], result.operations, spec)
    got = {(r.operation_id, r.timepoint_matched): r.prom_id for r in m.itertuples()}
    assert got[("O01", "3m")] == "Q01m3a"       # day 85 is nearer day 90 than day 100
    assert got[("O02", "3m")] == "Q02m3early"   # days 80 and 100 are equally near: the earlier
    assert ("O04", "3m") not in got             # day 160 lies outside 60..150
    assert got[("O04", "1y")] == "Q04y"
    assert got[("O01", "1y")] == "Q01y"


def test_follow_up_accounting_with_deaths() -> None:
    spec, _ = load_spec(SPEC)
    x = build()
    acc = follow_up(select_cohort(x, spec), x, spec).set_index("timepoint")
    counts = ["n", "answered", "died_before_answering", "alive_not_answered", "not_yet_due", "died_by_window_end",
              "answered_then_died"]
    # 3m: answered P01, P02; P03 died day 138 < day 150; P04 (day 160), P09, P10 alive without an answer;
    # response 2 / (2 + 3)
    assert acc.loc["3m", counts].tolist() == [6, 2, 1, 3, 0, 1, 0]
    assert acc.loc["3m", "response_rate"] == 0.4
    # 1y: answered P01, P04 (P04 dies in 2018, after its window); P03 died; P10's window closes 2019-02-28, after the
    # 2018-12-31 extract; P02 and P09 alive without an answer; response 2 / (2 + 2)
    assert acc.loc["1y", counts].tolist() == [6, 2, 1, 2, 1, 1, 0]
    assert acc.loc["1y", "response_rate"] == 0.5
    assert acc.loc["baseline", counts].tolist() == [6, 6, 0, 0, 0, 0, 0]

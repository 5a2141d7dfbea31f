"""The study pipeline on the hand-built 12-patient extract: leak and complication rates per
patient and per level, paired change, responders and descriptive numbers against hand
calculations; small cohorts; the empty-cohort error; results.json and its schema."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from pathlib import Path

import jsonschema
import pandas as pd
import pytest

from spinereg.data import conform
from spinereg.study import EmptyCohortError, load_spec, results_schema, run_study
from spinereg.study._run import StudyResult

from .test_cohort import SPEC, build

ODI_ALL = [f"odi_{k}" for k in range(1, 11)]


def odi_items(*values: int) -> dict[str, int]:
    vals = list(values) if len(values) == 10 else [values[0]] * 10
    return dict(zip(ODI_ALL, vals, strict=True))


def extract_with_rates() -> object:
    x = build()
    proms = x["proms"].copy()
    # ODI answers (sum / 50 x 100): P01 baseline 30 -> 60, 3 months 10 -> 20;
    # P02 baseline 40 -> 80, 3 months (the day-80 answer) 21 -> 42
    for pid, items in (("Q01b", odi_items(3)), ("Q01m3a", odi_items(1)), ("Q02b", odi_items(4)),
                       ("Q02m3early", odi_items(2, 2, 2, 2, 2, 2, 2, 2, 2, 3))):
        for k, v in items.items():
            proms.loc[proms["prom_id"] == pid, k] = v
    x.tables["proms"] = conform(proms, "proms")
    levels = [("O01", "T12", 4.0), ("O01", "L1", 3.5), ("O02", "L2", 5.0), ("O03", "T8", 2.0), ("O03", "T9", 2.5),
              ("O03", "T10", 3.0), ("O04", "L3", None), ("O09a", "L1", 6.0), ("O10", "T11", 3.0), ("O10", "T12", 3.0),
              ("O05", "L4", 4.0)]
    x.tables["treated_levels"] = conform(pd.DataFrame(levels, columns=["operation_id", "level", "cement_volume_ml"]),
                                         "treated_levels")
    findings = [
        ("F1", "O01", "T12", "xray", True, "yeom_c", False),
        ("F2", "O01", "L1", "xray", False, None, None),
        ("F3", "O02", "L2", "xray", False, None, None),
        ("F4", "O02", "L2", "ct", True, "yeom_c", False),           # the CT shows what the X-ray missed
        ("F5", "O03", "T8", "xray", True, "yeom_b", True),
        ("F6", "O03", "T9", "xray", True, "yeom_s", False),
        ("F7", "O03", "T10", "xray", False, None, None),
        ("F8", "O09a", "L1", "xray", False, None, None),
        ("F9", "O10", "T11", "xray", True, None, False),            # leak, type not recorded; T12 not imaged
        ("F10", "O05", "L4", "xray", True, "yeom_c", True),         # not in the cohort
    ]
    img = pd.DataFrame(findings, columns=["finding_id", "operation_id", "level", "modality", "leak", "leak_type",
                                          "symptomatic"])
    img["leak_location"] = img["finding_id"].map({"F4": "intradiscal", "F5": "venous"})  # the rest: not recorded
    x.tables["imaging_findings"] = conform(img, "imaging_findings")
    compl = [("C1", "O01", "new_fracture", "II"), ("C2", "O03", "haematoma", "I"),
             ("C3", "O03", "neurological_deficit", "IIIb"), ("C4", "O10", "urinary", None),
             ("C5", "O05", "cardiac", "V")]
    x.tables["complications"] = conform(pd.DataFrame(compl, columns=[
        "complication_id", "operation_id", "type", "clavien_dindo"]), "complications")
    return x


@pytest.fixture(scope="module")
def result() -> StudyResult:
    spec, digest = load_spec(SPEC)
    return run_study(spec, extract_with_rates(), spec_sha256=digest)  # type: ignore[arg-type]


def rate(table: pd.DataFrame, unit: str, category: str, measure: str = "cement leak") -> tuple[int, int]:
    row = table[(table["measure"] == measure) & (table["unit"] == unit) & (table["category"] == category)]
    assert len(row) == 1, (unit, category)
    return int(row["x"].iloc[0]), int(row["n"].iloc[0])


def test_leak_rates_per_patient_and_per_level(result: StudyResult) -> None:
    leaks = result.tables["leaks"]
    # hand count. Assessed patients (any imaging): O01, O02, O03, O09a, O10 = 5 (O04 has none).
    # Leaking patients: O01, O02 (CT), O03, O10 = 4.
    assert rate(leaks, "patient", "any") == (4, 5)
    # Assessed levels: O01 T12, L1; O02 L2; O03 T8, T9, T10; O09a L1; O10 T11 = 8 (O10 T12 not imaged).
    # Leaking levels: O01 T12, O02 L2, O03 T8, O03 T9, O10 T11 = 5.
    assert rate(leaks, "level", "any") == (5, 8)
    assert rate(leaks, "level", "yeom_c") == (2, 8)       # O01 T12, O02 L2
    # locations, a second classification of the same leaks: O02 L2 intradiscal, O03 T8 venous;
    # O01 T12, O03 T9 and O10 T11 leak without a recorded location
    assert rate(leaks, "level", "intradiscal") == (1, 8)
    assert rate(leaks, "patient", "venous") == (1, 5)
    assert rate(leaks, "level", "location not recorded") == (3, 8)
    assert rate(leaks, "patient", "location not recorded") == (3, 5)   # O01, O03, O10
    assert rate(leaks, "patient", "yeom_b") == (1, 5)
    assert rate(leaks, "patient", "yeom_s") == (1, 5)
    assert rate(leaks, "level", "paravertebral") == (0, 8)
    assert rate(leaks, "level", "type not recorded") == (1, 8)
    assert rate(leaks, "patient", "any", "symptomatic cement leak") == (1, 5)
    assert rate(leaks, "level", "any", "symptomatic cement leak") == (1, 8)
    row = leaks[(leaks["unit"] == "level") & (leaks["category"] == "any") & (leaks["measure"] == "cement leak")]
    assert row["proportion"].iloc[0] == pytest.approx(5 / 8)
    # R: binom.test(5, 8)$conf.int = 0.2448632 0.9147666
    assert row["ci_low"].iloc[0] == pytest.approx(0.2448632, abs=1e-7)
    assert row["ci_high"].iloc[0] == pytest.approx(0.9147666, abs=1e-7)
    # Wilson by hand: (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), p = 5/8, n = 8
    z, pp, n = 1.959963984540054, 5 / 8, 8
    centre, half = pp + z * z / (2 * n), z * math.sqrt(pp * (1 - pp) / n + z * z / (4 * n * n))
    assert row["wilson_ci_low"].iloc[0] == pytest.approx((centre - half) / (1 + z * z / n), rel=1e-9)
    assert row["wilson_ci_high"].iloc[0] == pytest.approx((centre + half) / (1 + z * z / n), rel=1e-9)


def test_complications_by_worst_grade(result: StudyResult) -> None:
    c = result.tables["complications"]
    # cohort: 6 patients; O01 grade II; O03 grades I and IIIb (worst IIIb); O10 ungraded; O05 not in cohort
    assert rate(c, "patient", "any", "complications") == (3, 6)
    assert rate(c, "patient", "Clavien-Dindo II", "complications") == (1, 6)
    assert rate(c, "patient", "Clavien-Dindo IIIb", "complications") == (1, 6)
    assert rate(c, "patient", "Clavien-Dindo I", "complications") == (0, 6)
    assert rate(c, "patient", "Clavien-Dindo V", "complications") == (0, 6)
    assert rate(c, "patient", "ungraded", "complications") == (1, 6)


def test_paired_odi_change_by_hand(result: StudyResult) -> None:
    p = result.tables["paired_change"].set_index(["outcome", "timepoint"]).loc[("odi", "3m")]
    # pairs: P01 60 -> 20 (-40), P02 80 -> 42 (-38); mean -39, SD sqrt(2), SE 1, t = -39 on 1 df
    assert p["n_pairs"] == 2
    assert p["mean_before"] == pytest.approx(70.0)
    assert p["mean_after"] == pytest.approx(31.0)
    assert p["mean_diff"] == pytest.approx(-39.0)
    assert p["sd_diff"] == pytest.approx(math.sqrt(2))
    assert p["t_statistic"] == pytest.approx(-39.0)
    assert p["df"] == 1
    # t on 1 df is Cauchy: p = 2 atan(1/|t|) / pi; t_0.975,1 = tan(0.475 pi)
    assert p["p_value"] == pytest.approx(2 * math.atan(1 / 39) / math.pi, rel=1e-9)
    q = math.tan(0.475 * math.pi)
    assert p["ci_low"] == pytest.approx(-39 - q, rel=1e-9)
    assert p["ci_high"] == pytest.approx(-39 + q, rel=1e-9)
    assert p["srm"] == pytest.approx(-39 / math.sqrt(2))
    assert p["effect_size"] == pytest.approx(-39 / math.sqrt(200))   # baseline SD of 60, 80
    # Wilcoxon on 2 pairs: V = 0 (both negative), exact p = 2 x 1/4 = 0.5
    assert p["wilcoxon_v"] == 0
    assert p["wilcoxon_p_value"] == pytest.approx(0.5)
    resp = result.tables["responders"].set_index(["outcome", "criterion", "timepoint"]).sort_index()
    r = resp.loc[("odi", "mcid", "3m")]
    assert (r["x"], r["n_pairs"]) == (2, 2)       # both improved by >= 10 points
    r = resp.loc[("odi", "relative", "3m")]
    assert (r["x"], r["n_pairs"]) == (2, 2)       # 60 -> 20 is 67% better, 80 -> 42 is 47.5%: both >= 30%
    # 1 year: P01 has an answer but no ODI items; P04 none either: no pairs -> not estimable, no crash
    y = result.tables["paired_change"].set_index(["outcome", "timepoint"]).loc[("odi", "1y")]
    assert y["n_pairs"] == 0
    assert math.isnan(y["mean_diff"])
    assert "not estimable" in y["note"]


def test_descriptive_by_hand(result: StudyResult) -> None:
    t1 = result.tables["table1"].set_index(["variable", "level"])
    lv = t1.loc[("n_levels", "")]
    # levels per cohort operation: O01 2, O02 1, O03 3, O04 1, O09a 1, O10 2
    assert lv["n"] == 6
    assert lv["mean"] == pytest.approx(10 / 6)
    # an integer count: observed-value median and quartiles, R's quantile(c(1, 1, 1, 2, 2, 3), type = 1)
    # = 1 (median), 1 and 2 (quartiles); type 7 would give 1.5, 1 and 2
    assert (lv["median"], lv["q1"], lv["q3"]) == (1.0, 1.0, 2.0)
    assert lv["quantile_type"] == 1 and lv["summary"] == "median_iqr"
    age = t1.loc[("age", "")]
    assert age["summary"] == "mean_sd"
    assert float(age["mean"]) * 6 == pytest.approx(round(float(age["mean"]) * 6))  # completed years: whole numbers
    vol = t1.loc[("cement_volume_ml", "")]
    # O01 7.5, O02 5, O03 7.5, O04 unknown, O09a 6, O10 6
    assert (vol["n"], vol["missing"]) == (5, 1)
    assert vol["mean"] == pytest.approx(32 / 5)
    sex = t1.loc[("sex", "female")]
    assert (sex["count"], sex["percent"]) == (6, 100.0)


def test_small_cohort_not_estimable() -> None:
    spec, _ = load_spec(SPEC)
    x = extract_with_rates()
    keep = {"P01"}
    for name in ("patients", "operations", "proms"):
        x.tables[name] = x[name][x[name]["patient_id"].isin(keep)].reset_index(drop=True)  # type: ignore[attr-defined]
    res = run_study(spec, x)  # type: ignore[arg-type]
    assert len(res.cohort.operations) == 1
    paired = res.tables["paired_change"]
    assert (paired["n_pairs"] <= 1).all()
    assert paired["note"].str.contains("not estimable").all()
    summ = res.tables["outcome_summary"]
    assert (summ.loc[summ["n"] == 1, "note"] != "").all()
    mm = res.tables["mixed_model"]
    assert mm["note"].str.contains("not estimable").all()
    med = res.tables["survival_median"].iloc[0]
    assert med["note"] != ""                      # no deaths: median not reached
    json.dumps(res.to_dict("t"), allow_nan=False)  # no NaN reaches the JSON


def test_empty_cohort_is_one_clear_error() -> None:
    spec, _ = load_spec(SPEC)
    x = extract_with_rates()
    x.tables["operations"] = x["operations"].assign(procedure_category="fusion")  # type: ignore[attr-defined]
    with pytest.raises(EmptyCohortError, match=r"the cohort is empty: .*procedure 0"):
        run_study(spec, x)  # type: ignore[arg-type]


def test_results_json_matches_schema_and_is_reproducible(tmp_path: Path, result: StudyResult) -> None:
    result.write(tmp_path / "a")
    spec, digest = load_spec(SPEC)
    again = run_study(spec, extract_with_rates(), spec_sha256=digest)  # type: ignore[arg-type]
    again.write(tmp_path / "b")
    a = (tmp_path / "a" / "results.json").read_text()
    b = (tmp_path / "b" / "results.json").read_text()
    doc = json.loads(a)
    jsonschema.validate(doc, results_schema())
    assert doc["study"]["spec_sha256"] == digest
    assert len(doc["data"]["sha256"]) == 64
    assert doc["data"]["synthetic"] is False
    assert doc["settings"]["suppress_small_cells"] is True     # real (non-synthetic) data: on by default

    # only the timestamp may differ: without it the two documents are equal, and so are
    # their texts once the one generated_at line is taken out
    again_doc = json.loads(b)
    for d in (doc, again_doc):
        stamp = d.pop("generated_at")
        assert datetime.fromisoformat(stamp).utcoffset() == timedelta(0), stamp
    assert doc == again_doc

    def strip(text: str) -> list[str]:
        lines = text.splitlines()
        stamps = [i for i, line in enumerate(lines) if line.startswith(' "generated_at": ')]
        assert len(stamps) == 1, stamps
        return lines[:stamps[0]] + lines[stamps[0] + 1:]

    assert strip(a) == strip(b)
    # with the timestamp fixed, the two runs write byte-identical files, tables included
    fixed = "2026-01-01T00:00:00+00:00"
    result.write(tmp_path / "c", generated_at=fixed)
    again.write(tmp_path / "d", generated_at=fixed)
    files_c = sorted(p.relative_to(tmp_path / "c") for p in (tmp_path / "c").rglob("*") if p.is_file())
    files_d = sorted(p.relative_to(tmp_path / "d") for p in (tmp_path / "d").rglob("*") if p.is_file())
    assert files_c == files_d and len(files_c) > 1
    for rel in files_c:
        assert (tmp_path / "c" / rel).read_bytes() == (tmp_path / "d" / rel).read_bytes(), rel
    assert json.loads((tmp_path / "c" / "results.json").read_text())["generated_at"] == fixed
    for name in doc["tables"]:
        assert (tmp_path / "a" / "tables" / f"{name}.csv").exists()


def test_everyone_dead_gives_zero_survival_not_a_gap() -> None:
    spec, _ = load_spec(SPEC)
    x = extract_with_rates()
    ops = x["operations"]  # type: ignore[index]
    first = ops.groupby("patient_id")["date"].min()
    pats = x["patients"].copy()  # type: ignore[index]
    pats["death_date"] = pats["patient_id"].map(first) + pd.Timedelta(days=100)
    x.tables["patients"] = pats  # type: ignore[attr-defined]
    res = run_study(spec, x)  # type: ignore[arg-type]
    s = res.tables["survival"].set_index("months")
    # all six died on day 100 = 3.29 months: S(3) = 1 (6 at risk), S(12) = 0 by hand
    assert s.loc[3, "survival"] == 1.0
    assert s.loc[3, "n_risk"] == 6
    assert s.loc[12, "survival"] == 0.0
    assert "every patient had died" in s.loc[12, "note"]
    med = res.tables["survival_median"].iloc[0]
    assert med["median_months"] == pytest.approx(100 / (365.25 / 12))
    fu = res.tables["follow_up"].set_index("timepoint")
    assert fu.loc["1y", "died_before_answering"] + fu.loc["1y", "answered"] == 6


def one_patient_extract(death: str | None, answers: list[tuple[str, str, int]], birth: str = "1950-01-01",
                        extract_date: str | None = "2018-12-31") -> object:
    from spinereg.data import Extract

    x = Extract.empty(**({"extract_date": extract_date} if extract_date else {}))
    x.tables["patients"] = conform(pd.DataFrame([{"patient_id": "P1", "sex": "male", "birth_date": birth,
                                                  "death_date": death}]), "patients")
    x.tables["operations"] = conform(pd.DataFrame([{"operation_id": "O1", "patient_id": "P1", "date": "2015-01-01",
                                                    "procedure_category": "vertebroplasty",
                                                    "indication": "cancer_vcf"}]), "operations")
    eq = {"eq5d3l_mo": 2, "eq5d3l_sc": 1, "eq5d3l_ua": 2, "eq5d3l_pd": 3, "eq5d3l_ad": 1}
    x.tables["proms"] = conform(pd.DataFrame([{"prom_id": q, "patient_id": "P1", "operation_id": "O1",
                                               "timepoint": tp, "answer_date": (pd.Timestamp("2015-01-01")
                                                                                + pd.Timedelta(days=day)), **eq}
                                              for q, tp, day in answers]), "proms")
    return x


def follow(x: object) -> pd.DataFrame:
    spec, _ = load_spec(SPEC)
    return run_study(spec, x).tables["follow_up"].set_index("timepoint")  # type: ignore[arg-type]


def test_death_on_the_last_day_of_a_window_counts_as_died() -> None:
    # the 3-month window closes on day 150 = 2015-05-31
    fu = follow(one_patient_extract("2015-05-31", [("B", "baseline", -3)]))
    assert fu.loc["3m", ["died_before_answering", "alive_not_answered"]].tolist() == [1, 0]
    fu = follow(one_patient_extract("2015-06-01", [("B", "baseline", -3)]))
    assert fu.loc["3m", ["died_before_answering", "alive_not_answered"]].tolist() == [0, 1]


def test_an_answer_dated_after_death_is_disregarded() -> None:
    # died day 100, "answered" day 120: a data error, not an answer
    x = one_patient_extract("2015-04-11", [("B", "baseline", -3), ("Q", "3m", 120)])
    fu = follow(x)
    assert fu.loc["3m", ["answered", "died_before_answering"]].tolist() == [0, 1]


def test_follow_up_uses_the_same_extract_date_as_survival() -> None:
    # no extract date recorded: the latest date in the whole extract stands in, for follow-up and survival alike
    x = one_patient_extract(None, [("B", "baseline", -3)], extract_date=None)
    other = conform(pd.DataFrame([{"patient_id": "P2", "sex": "male", "birth_date": "1950-01-01"}]), "patients")
    x.tables["patients"] = pd.concat([x["patients"], other], ignore_index=True)  # type: ignore[attr-defined,index]
    late = conform(pd.DataFrame([{"operation_id": "O2", "patient_id": "P2", "date": "2017-01-01",
                                  "procedure_category": "fusion", "indication": "degenerative"}]), "operations")
    x.tables["operations"] = pd.concat([x["operations"], late], ignore_index=True)  # type: ignore[attr-defined,index]
    spec, _ = load_spec(SPEC)
    res = run_study(spec, x)  # type: ignore[arg-type]
    assert res.data["extract_date"] == "2017-01-01"
    # P1's 1-year window closed on 2016-06-28, before 2017-01-01: due and missing (the cohort's own latest
    # date, 2015-01-01, would have made it look not yet due)
    fu = res.tables["follow_up"].set_index("timepoint")
    assert fu.loc["1y", ["not_yet_due", "alive_not_answered"]].tolist() == [0, 1]


def test_age_limits_use_completed_years() -> None:
    # born 2000-01-01, operated 2015-01-01 on the 15th birthday: 15 completed years (5478 days / 365.25 < 15)
    spec, _ = load_spec(SPEC)
    x = one_patient_extract(None, [("B", "baseline", -3)], birth="2000-01-01")
    strict = spec.model_copy(update={"cohort": spec.cohort.model_copy(update={"age_min": 15})})
    assert len(run_study(strict, x).cohort.operations) == 1  # type: ignore[arg-type]
    older = spec.model_copy(update={"cohort": spec.cohort.model_copy(update={"age_min": 16})})
    with pytest.raises(EmptyCohortError, match="age 0"):
        run_study(older, x)  # type: ignore[arg-type]


def test_leak_denominators_use_post_operative_findings_at_treated_levels() -> None:
    spec, _ = load_spec(SPEC)
    x = extract_with_rates()
    extra = conform(pd.DataFrame([
        ("F11", "O09a", "L2", "xray", "2014-03-01", True, "yeom_c", False),    # untreated level L2
        ("F12", "O09a", "L1", "xray", "2014-01-15", True, "yeom_c", False),    # before the 2014-02-01 operation
    ], columns=["finding_id", "operation_id", "level", "modality", "date", "leak", "leak_type", "symptomatic"]),
        "imaging_findings")
    x.tables["imaging_findings"] = pd.concat([x["imaging_findings"], extra],  # type: ignore[attr-defined,index]
                                             ignore_index=True)
    leaks = run_study(spec, x).tables["leaks"]  # type: ignore[arg-type]
    assert rate(leaks, "patient", "any") == (4, 5)      # unchanged: neither finding counts
    assert rate(leaks, "level", "any") == (5, 8)


def test_deaths_table_and_csv_data_status(tmp_path: Path) -> None:
    spec, _ = load_spec(SPEC)
    # operated 2015-01-01, died 2015-04-11: day 100 by hand; a death after the extract date is not listed
    res = run_study(spec, one_patient_extract("2015-04-11", [("B", "baseline", -3)]))  # type: ignore[arg-type]
    assert res.tables["deaths"][["case", "day"]].values.tolist() == [[1, 100]]
    late = run_study(spec, one_patient_extract("2019-02-01", [("B", "baseline", -3)]))  # type: ignore[arg-type]
    assert late.tables["deaths"].empty
    res.write(tmp_path / "real")
    res.data["synthetic"] = True
    res.write(tmp_path / "syn")
    for folder, status in (("real", "real"), ("syn", "synthetic")):
        for csv in sorted((tmp_path / folder / "tables").glob("*.csv")):
            frame = pd.read_csv(csv)
            assert frame.columns[-1] == "data_status", csv.name
            assert set(frame["data_status"]) <= {status}, csv.name

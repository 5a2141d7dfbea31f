"""Safety analyses and the clustered per-level leak rate against hand counts and R.

* 30- and 90-day mortality, new fractures, repeat augmentation, complications by type and timing, imaging
  modality and the complication-linked symptomatic leaks: hand counts on the 12-patient extract of
  ``test_run`` with dated complications and later operations added; CIs from R's ``binom.test``.
* The cluster-robust (sandwich) logit interval of the per-level rate: R (``reference/clustered_leaks.R``,
  output ``reference/clustered_leaks_R.csv``), computed there twice (ratio formula, and glm's logistic fit
  with per-patient score sums).  The bootstrap: boot's percentile rule exactly on a fixed vector, and the
  interval within 4 Monte-Carlo SDs (estimated in R from 200 bootstraps of 2000 resamples) of boot's
  interval from 200,000 resamples.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray

from spinereg.data import conform
from spinereg.study import load_spec, results_schema, run_study
from spinereg.study._analyses import (
    _percentile,
    cluster_bootstrap_proportion,
    cluster_robust_proportion,
    mortality,
)
from spinereg.study._run import StudyResult

from .test_cohort import SPEC
from .test_run import extract_with_rates

Clusters = tuple[NDArray[np.float64], NDArray[np.float64]]
REF = Path(__file__).resolve().parent / "reference"


def day(start: str, n: int) -> str:
    return (date.fromisoformat(start) + timedelta(days=n)).isoformat()


def safety_extract() -> object:
    x = extract_with_rates()
    # index operations: O01 2014-03-01, O02 2015-05-10, O03 2016-01-15, O10 2017-09-01 (extract date 2018-12-31)
    compl = [
        ("C1", "O01", "new_fracture", "II", day("2014-03-01", 40), False),
        ("C2", "O03", "haematoma", "I", "2016-01-15", True),
        ("C3", "O03", "neurological_deficit", "IIIb", day("2016-01-15", 10), False),  # linked: day 10
        ("C4", "O10", "urinary", None, None, None),                                    # timing not recorded
        ("C5", "O05", "cardiac", "V", None, False),                                    # not in the cohort
        ("C6", "O01", "cement_embolism", "II", day("2014-03-01", 31), False),          # day 31: not linked
        ("C7", "O02", "cement_embolism", "I", None, True),                             # intra-operative: linked
        ("C8", "O10", "neurological_deficit", "II", day("2017-09-01", 30), False),     # day 30: linked
    ]
    x.tables["complications"] = conform(pd.DataFrame(compl, columns=[  # type: ignore[attr-defined]
        "complication_id", "operation_id", "type", "clavien_dindo", "date", "intraoperative"]), "complications")
    ops = x["operations"].copy()  # type: ignore[index]
    later = pd.DataFrame([
        ("O09b", "P09", "2015-02-01", "vertebroplasty"),   # exists already: P09's second operation, at L1 (index L1)
        ("O01b", "P01", "2014-06-01", "kyphoplasty"),      # at L3, not treated at the index operation
        ("O02b", "P02", "2019-02-01", "vertebroplasty"),   # after the extract date: not counted
        ("O10b", "P10", "2018-01-01", "fusion"),           # not an augmentation
    ], columns=["operation_id", "patient_id", "date", "procedure_category"])
    ops = pd.concat([ops[ops["operation_id"] != "O09b"], later.assign(indication="cancer_vcf",
                                                                      diagnosis_codes="C795")], ignore_index=True)
    x.tables["operations"] = conform(ops, "operations")  # type: ignore[attr-defined]
    lv = x["treated_levels"]  # type: ignore[index]
    more = pd.DataFrame([("O09b", "L1", 3.0), ("O01b", "L3", 3.0), ("O02b", "L2", 3.0)],
                        columns=["operation_id", "level", "cement_volume_ml"])
    x.tables["treated_levels"] = conform(pd.concat([lv, more], ignore_index=True),  # type: ignore[attr-defined]
                                         "treated_levels")
    return x


@pytest.fixture(scope="module")
def result() -> StudyResult:
    spec, digest = load_spec(SPEC)
    return run_study(spec, safety_extract(), spec_sha256=digest)  # type: ignore[arg-type]


def row(t: pd.DataFrame, **key: str) -> pd.Series:
    sel = t
    for k, v in key.items():
        sel = sel[sel[k] == v]
    assert len(sel) == 1, key
    return sel.iloc[0]


def test_cohort_unchanged(result: StudyResult) -> None:
    assert sorted(result.cohort.operations["operation_id"]) == ["O01", "O02", "O03", "O04", "O09a", "O10"]


def test_mortality_denominator_rule() -> None:
    # day 0 = the operation day; extract 2020-12-31
    rows = [("a", "2020-01-01", "2020-01-01"), ("b", "2020-01-01", "2020-01-31"),   # day 0, day 30
            ("c", "2020-01-01", "2020-02-01"), ("d", "2020-01-01", "2020-03-31"),   # day 31, day 90
            ("e", "2020-01-01", "2020-04-01"), ("f", "2020-12-01", None),           # day 91; alive, 30 days
            ("g", "2020-12-15", None), ("h", "2020-12-15", "2020-12-20"),           # alive 16 days; day 5
            ("i", "2020-01-01", "2021-02-01"), ("j", "2019-01-01", None)]           # death after the extract
    ops = pd.DataFrame(rows, columns=["operation_id", "date", "death_date"])
    ops["date"] = pd.to_datetime(ops["date"])
    ops["death_date"] = pd.to_datetime(ops["death_date"])
    spec, _ = load_spec(SPEC)
    m = pd.DataFrame(mortality(ops, pd.Timestamp("2020-12-31"), spec)).set_index("event")
    # 30 days: dead a, b, h; known: all but g (f was followed exactly 30 days) -> 3/9
    assert (m.loc["death_30d", "x"], m.loc["death_30d", "n"]) == (3, 9)
    # 90 days: dead a, b, c, d, h; f and g followed < 90 days -> 5/8
    assert (m.loc["death_90d", "x"], m.loc["death_90d", "n"]) == (5, 8)
    # R: binom.test(3, 9)$conf.int; binom.test(5, 8)$conf.int
    assert m.loc["death_30d", "ci_low"] == pytest.approx(0.0748546, abs=1e-7)
    assert m.loc["death_30d", "ci_high"] == pytest.approx(0.7007049, abs=1e-7)
    assert m.loc["death_90d", "ci_low"] == pytest.approx(0.2448632, abs=1e-7)
    assert m.loc["death_90d", "ci_high"] == pytest.approx(0.9147666, abs=1e-7)
    assert "2 patients alive with fewer than 90 days" in str(m.loc["death_90d", "note"])
    assert "1 patient alive with fewer than 30 days" in str(m.loc["death_30d", "note"])


def test_safety_events(result: StudyResult) -> None:
    s = result.tables["safety"].set_index("event")
    # nobody died within 90 days (P03 died on day 138, P04 after 2 years); all followed > 90 days
    assert (s.loc["death_30d", "x"], s.loc["death_30d", "n"]) == (0, 6)
    assert (s.loc["death_90d", "x"], s.loc["death_90d", "n"]) == (0, 6)
    assert (s.loc["new_fracture", "x"], s.loc["new_fracture", "n"]) == (1, 6)       # C1 (O01)
    # P09 (O09b at L1, the index level) and P01 (O01b at L3); O02b after the extract date, O10b a fusion
    assert (s.loc["repeat_augmentation", "x"], s.loc["repeat_augmentation", "n"]) == (2, 6)
    assert s.loc["repeat_augmentation_same_level", "x"] == 1
    assert s.loc["repeat_augmentation_other_level", "x"] == 1
    # R: binom.test(2, 6)$conf.int
    assert s.loc["repeat_augmentation", "ci_low"] == pytest.approx(0.0432719, abs=1e-7)
    assert s.loc["repeat_augmentation", "ci_high"] == pytest.approx(0.7772219, abs=1e-7)


def test_complications_by_type_and_timing(result: StudyResult) -> None:
    t = result.tables["complication_types"]

    def xe(type_: str, timing: str) -> tuple[int, int]:
        r = row(t, type=type_, timing=timing)
        return int(r["x"]), int(r["events"])

    # cohort complications: O01 C1, C6; O02 C7; O03 C2, C3; O10 C4, C8
    assert xe("any", "any") == (4, 7)
    assert xe("any", "intraoperative") == (2, 2)          # C2 (O03), C7 (O02)
    assert xe("any", "postoperative") == (3, 4)           # C1, C6 (O01), C3 (O03), C8 (O10)
    assert xe("any", "not recorded") == (1, 1)            # C4 (O10)
    assert xe("cement_embolism", "any") == (2, 2)
    assert xe("cement_embolism", "intraoperative") == (1, 1)
    assert xe("neurological_deficit", "postoperative") == (2, 2)
    assert xe("cardiac", "any") == (0, 0)                 # C5 is not the cohort's
    r = row(t, type="any", timing="any")
    assert r["n"] == 6
    # R: binom.test(4, 6)$conf.int
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((0.2227781, 0.9567281), abs=1e-7)
    # the grade table is unchanged: most severe grade per patient
    c = result.tables["complications"]
    assert int(c.loc[c["category"] == "any", "x"].iloc[0]) == 4


def test_imaging_modality(result: StudyResult) -> None:
    t = result.tables["imaging_modality"].set_index("modality")
    # assessed levels: 8 (O01 T12, L1; O02 L2; O03 T8, T9, T10; O09a L1; O10 T11), all X-rayed; O02 L2 also CT
    assert list(t.loc["xray", ["findings", "levels", "patients"]]) == [8, 8, 5]
    assert list(t.loc["ct", ["findings", "levels", "patients"]]) == [1, 1, 1]
    assert t.loc["mri", "levels"] == 0
    assert t.loc["ct", "percent_levels"] == pytest.approx(12.5)
    assert "not recorded" not in t.index


def test_symptomatic_leaks_linked_to_complications(result: StudyResult) -> None:
    t = result.tables["symptomatic_leaks"].set_index("unit")
    # leaking levels: O01 T12 (reviewer no; C6 on day 31 not linked) -> neither; O02 L2 (C7 intra-operative)
    # -> linked only; O03 T8 (reviewer yes; C3 day 10) -> both; O03 T9 -> linked only; O10 T11 (C8 day 30)
    # -> linked only
    cols = ["n_leak", "reviewer", "linked", "both", "reviewer_only", "linked_only", "neither", "agree"]
    assert list(t.loc["level", cols]) == [5, 1, 4, 1, 0, 3, 1, 2]
    # patients: O01 neither, O02 linked only, O03 both, O10 linked only
    assert list(t.loc["patient", cols]) == [4, 1, 3, 1, 0, 2, 1, 2]


def test_new_tables_in_results_json(result: StudyResult) -> None:
    doc = result.to_dict(generated_at="2026-12-04T00:00:00+00:00")
    jsonschema.validate(doc, results_schema())
    c = doc["tables"]["leak_clustered"][0]
    assert c["seed"] == 20261204 and c["bootstrap_replicates"] == 2000
    assert (c["x"], c["n_levels"], c["n_patients"]) == (5, 8, 5)


# -- clustering ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ref() -> dict[str, float]:
    r = pd.read_csv(REF / "clustered_leaks_R.csv")
    return dict(zip(r["quantity"], r["value"].astype(float), strict=True))


@pytest.fixture(scope="module")
def clusters() -> Clusters:
    d = pd.read_csv(REF / "clustered_leaks.csv")
    g = d.groupby("patient")["leak"].agg(["sum", "size"])
    return g["sum"].to_numpy(dtype=float), g["size"].to_numpy(dtype=float)


def test_cluster_robust_interval_matches_r(ref: dict[str, float], clusters: Clusters) -> None:
    y, m = clusters
    assert (y.sum(), m.sum(), len(y)) == (ref["x"], ref["n_levels"], ref["n_patients"]) == (12, 26, 12)
    r = cluster_robust_proportion(y, m, 0.95)
    assert r["proportion"] == pytest.approx(12 / 26, rel=1e-12)
    # R prints 12 significant digits
    assert r["robust_se"] == pytest.approx(ref["robust_se"], rel=1e-10)
    assert r["robust_se"] == pytest.approx(ref["robust_se_from_glm"], rel=1e-9)
    assert r["design_effect"] == pytest.approx(ref["design_effect"], rel=1e-10)
    assert r["ci_low"] == pytest.approx(ref["robust_ci_low"], rel=1e-9)
    assert r["ci_high"] == pytest.approx(ref["robust_ci_high"], rel=1e-9)
    # wider than the naive exact interval's span would suggest for independent levels (design effect > 1)
    assert ref["design_effect"] > 2


def test_cluster_robust_hand_case() -> None:
    # one level per patient: V = K/(K-1) p(1-p)/K, so the design effect is K/(K-1)
    y = np.array([1, 0, 0, 1, 0], dtype=float)
    r = cluster_robust_proportion(y, np.ones(5))
    assert r["design_effect"] == pytest.approx(5 / 4)
    assert r["robust_se"] == pytest.approx(np.sqrt(5 / 4 * 0.4 * 0.6 / 5))
    assert np.isnan(cluster_robust_proportion([0, 0], [1, 2])["ci_low"])     # p = 0: logit undefined
    assert np.isnan(cluster_robust_proportion([1], [2])["robust_se"])        # one cluster


def test_percentile_rule_is_boots(ref: dict[str, float]) -> None:
    tv = ((np.arange(1, 2001) * 7919) % 2003) / 2003
    assert _percentile(tv, 0.025) == pytest.approx(ref["norm_inter_2000_low"], rel=1e-10)
    assert _percentile(tv, 0.975) == pytest.approx(ref["norm_inter_2000_high"], rel=1e-10)
    assert _percentile(tv[:1999], 0.025) == pytest.approx(ref["norm_inter_1999_low"], rel=1e-10)
    assert _percentile(tv[:1999], 0.975) == pytest.approx(ref["norm_inter_1999_high"], rel=1e-10)


def test_cluster_bootstrap_against_r(ref: dict[str, float], clusters: Clusters) -> None:
    y, m = clusters
    lo, hi = cluster_bootstrap_proportion(y, m, 2000, 20261204)
    # R's limits from 200,000 resamples have a negligible Monte-Carlo error; ours (2000) within 4 SDs
    assert abs(lo - ref["boot_large_ci_low"]) < 4 * ref["boot2000_mc_sd_low"]
    assert abs(hi - ref["boot_large_ci_high"]) < 4 * ref["boot2000_mc_sd_high"]
    # the same seed gives the same interval; another seed (almost surely) another
    assert cluster_bootstrap_proportion(y, m, 2000, 20261204) == (lo, hi)
    assert cluster_bootstrap_proportion(y, m, 2000, 1) != (lo, hi)
    assert np.isnan(cluster_bootstrap_proportion(y, m, 0, 1)[0])


def test_clustered_leak_rate_table(result: StudyResult) -> None:
    r = result.tables["leak_clustered"].iloc[0]
    # per patient (leaking levels / assessed levels): O01 1/2, O02 1/1, O03 2/3, O09a 0/1, O10 1/1
    y, m = np.array([1, 1, 2, 0, 1.0]), np.array([2, 1, 3, 1, 1.0])
    p = 5 / 8
    v = 5 / 4 * float(((y - p * m) ** 2).sum()) / 64          # by hand: K/(K-1) sum e_i^2 / M^2
    assert r["robust_se"] == pytest.approx(np.sqrt(v), rel=1e-12)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((0.2448632, 0.9147666), abs=1e-7)   # binom.test(5, 8)
    assert r["robust_ci_low"] < p < r["robust_ci_high"]
    assert r["boot_ci_low"] <= p <= r["boot_ci_high"]

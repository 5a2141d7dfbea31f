"""The report's estimands: denominators in the Key results, the composites, and no choice by CI excluding 0.

The tables of the hand-built cohort's results are replaced by rows with the demo's numbers (EQ-5D at 1 year:
complete pairs 0.30 (-0.04 to 0.64), 9 of 13 alive answered, 13 dead; the mixed model's CI excluding 0),
so that the expected sentences are written out by hand here.  The decisive test flips which CIs exclude 0
and checks that no sentence changes except for its numbers: text that picked an analysis by its CI would.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from spinereg.report import Document, Table, build_document
from spinereg.study import load_spec, run_study
from tests.study.test_cohort import SPEC
from tests.study.test_run import extract_with_rates

from .test_suppression_text import _block_texts


def _pc(outcome: str, tp: str, n: int, alive: int, died: int, diff: float, lo: float, hi: float) -> dict[str, Any]:
    return {"outcome": outcome, "timepoint": tp, "n_pairs": n, "mean_before": 0.34, "sd_before": 0.44,
            "mean_after": 0.64, "sd_after": 0.26, "mean_diff": diff, "sd_diff": 0.45, "ci_low": lo, "ci_high": hi,
            "t_statistic": 2.0, "df": n - 1, "p_value": 0.079, "wilcoxon_v": 35.0, "hl_estimate": diff,
            "hl_ci_low": lo, "hl_ci_high": hi, "wilcoxon_p_value": 0.16, "wilcoxon_method": "wilcoxon_exact",
            "srm": 0.67, "effect_size": 0.68, "note": "", "n_alive": alive, "n_died": died}


def _mm(outcome: str, tp: str, n: int, est: float, lo: float, hi: float) -> dict[str, Any]:
    return {"outcome": outcome, "timepoint": tp, "estimate": est, "std_error": 0.1, "df": 13.0, "p_value": 0.03,
            "ci_low": lo, "ci_high": hi, "n_patients": n, "n_observations": 2 * n + 2, "note": "",
            "population": "alive"}


def _results(suppress: bool) -> dict[str, Any]:
    spec, sha = load_spec(SPEC)
    spec = spec.model_copy(update={"analyses": spec.analyses.model_copy(
        update={"suppress_small_cells": suppress, "small_cell_threshold": 5})})
    r = run_study(spec, extract_with_rates(), spec_sha256=sha,  # type: ignore[arg-type]
                  data_sha256="0" * 64).to_dict(generated_at="t")
    t = r["tables"]
    t["paired_change"] = [_pc("eq5d", "3m", 12, 19, 7, 0.4547, 0.2374, 0.6719),
                          _pc("eq5d", "1y", 9, 13, 13, 0.2998, -0.0444, 0.6439),
                          _pc("odi", "3m", 13, 19, 7, -27.97, -42.90, -13.03),
                          _pc("odi", "1y", 9, 13, 13, -18.64, -34.99, -2.29)]
    t["mixed_model"] = [_mm("eq5d", "3m", 19, 0.4404, 0.2323, 0.6484), _mm("eq5d", "1y", 13, 0.2592, 0.0256, 0.4927),
                        _mm("odi", "3m", 19, -25.04, -36.13, -13.96), _mm("odi", "1y", 13, -16.41, -29.24, -3.58)]
    t["composite_death0"] = [
        {"outcome": "eq5d", "timepoint": "3m", "n": 19, "n_answered": 12, "n_died": 7, "n_missing": 7,
         "n_not_due": 0, "mean_baseline": 0.38, "mean_value": 0.52, "mean_diff": 0.1432, "sd_diff": 0.57,
         "ci_low": -0.1318, "ci_high": 0.4171, "note": ""},
        {"outcome": "eq5d", "timepoint": "1y", "n": 22, "n_answered": 9, "n_died": 13, "n_missing": 4,
         "n_not_due": 0, "mean_baseline": 0.35, "mean_value": 0.26, "mean_diff": -0.0914, "sd_diff": 0.53,
         "ci_low": -0.3274, "ci_high": 0.1441, "note": ""}]
    t["qaly"] = [{"outcome": "eq5d", "horizon_days": 365, "n": 18, "n_alive": 5, "n_died": 13, "n_missing": 8,
                  "n_not_due": 0, "mean_qaly": 0.3011, "sd_qaly": 0.32, "ci_low": 0.1430, "ci_high": 0.4592,
                  "max_qaly": 365 / 365.25, "note": ""}]
    t["responders"] = [row for row in t["responders"] if row["outcome"] in ("eq5d", "odi")]
    return r


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    return _results(False)


def texts(doc: Document, section: str | None = None) -> list[str]:
    return [x for s in doc.sections if section is None or s.id == section for b in s.blocks for x in _block_texts(b)]


def tables(doc: Document) -> dict[str, Table]:
    return {b.id: b for s in doc.sections for b in s.blocks if isinstance(b, Table)}


def test_key_results_give_answered_of_alive(results: dict[str, Any]) -> None:
    key = texts(build_document(results), "key-results")
    assert ("EQ-5D-3L index, Denmark value set, baseline to 1 year, survivors who answered: mean change 0.30 "
            "(95% CI \u22120.04 to 0.64; paired t-test p = 0.079); 9 of 13 patients alive at 1 year answered; 13 had "
            "died before answering.") in key
    for r in results["tables"]["paired_change"]:
        when = {"3m": "3 months", "1y": "1 year"}[r["timepoint"]]
        want = f"{r['n_pairs']} of {r['n_alive']} patients alive at {when} answered; {r['n_died']} had died"
        assert any(want in k for k in key), want


def test_key_results_give_the_composites(results: dict[str, Any]) -> None:
    key = texts(build_document(results), "key-results")
    assert ("EQ-5D-3L index, Denmark value set, death = 0, baseline to 1 year: mean change \u22120.09 (95% CI "
            "\u22120.33 to 0.14; 22 patients included, 9 alive with a score and 13 dead; 4 alive without a score "
            "left out).") in key
    assert ("Quality-adjusted life years from the operation to day 365 (EQ-5D-3L index, Denmark value set, 0 from "
            "death): mean 0.30 of at most 1.00 (95% CI 0.14 to 0.46; 18 patients included, 5 alive at day 365 and "
            "13 dead by then; 8 left out for a missing score).") in key


def test_tables_show_answered_of_alive_and_the_composites(results: dict[str, Any]) -> None:
    t = tables(build_document(results))
    change = [r.cells for r in t["table-change"].rows if r.kind != "group"]
    assert [c[1] for c in change] == ["12 of 19", "9 of 13", "13 of 19", "9 of 13"]
    assert t["table-change"].header[1] == "Answered of alive"
    mixed = [r.cells for r in t["table-mixed"].rows if r.kind != "group"]
    assert mixed[1][:6] == ("1 year", "9 of 13", "0.30 (\u22120.04 to 0.64)", "13 (28)", "0.26 (0.03 to 0.49)",
                            "\u22120.04")
    comp = {r.cells[0]: r.cells[1:] for r in t["table-composite"].rows if r.kind != "group"}
    assert comp["Change to 1 year, death = 0"] == ("22", "9", "13", "4", "\u22120.09 (\u22120.33 to 0.14)")
    assert comp["QALYs, day 0 to 365 (at most 1.00)"] == ("18", "5", "13", "8", "0.30 (0.14 to 0.46)")
    groups = [r.cells[0] for r in t["table-responders"].rows if r.kind == "group"]
    assert "Oswestry Disability Index (0-100): improvement of at least 30%" in groups


_CI_CHOICE = re.compile(r"exclud\w* (?:0|zero)|includ\w* (?:0|zero)|conclusions? (?:agree|differ)|weaker assumption"
                        r"|statistically significant", re.I)


def test_no_sentence_selects_an_analysis_by_its_ci(results: dict[str, Any]) -> None:
    doc = build_document(results)
    for x in texts(doc):
        # the Methods may say that nothing rests on a CI including 0; no sentence may read a result that way
        if "no conclusion rests on whether a CI includes 0" in x:
            x = x.replace("no conclusion rests on whether a CI includes 0", "")
        assert not _CI_CHOICE.search(x), x
    # flip which CIs exclude 0 (complete pairs now excludes it, the mixed model includes it): apart from the
    # numbers, every sentence stays the same
    flipped = copy.deepcopy(results)
    pc = next(r for r in flipped["tables"]["paired_change"] if r["outcome"] == "eq5d" and r["timepoint"] == "1y")
    mm = next(r for r in flipped["tables"]["mixed_model"] if r["outcome"] == "eq5d" and r["timepoint"] == "1y")
    pc["ci_low"], mm["ci_low"] = 0.0444, -0.0256
    assert pc["ci_low"] > 0 > mm["ci_low"]

    def masked(d: Document) -> list[str]:
        return [re.sub(r"[\u2212\-]?\d+(?:\.\d+)?", "#", x) for x in texts(d)]

    assert masked(build_document(flipped)) == masked(doc)


def test_methods_state_the_estimands_without_contradiction(results: dict[str, Any]) -> None:
    methods = " ".join(texts(build_document(results), "methods"))
    assert "Estimands" in methods and "ICH E9(R1)" in methods
    for phrase in ("while-alive strategy", "composite strategy", "the value of dead on the EQ-5D scale",
                   "trapezoidal rule", "the patients alive at the time point"):
        assert phrase in methods, phrase
    # the old, contradictory wording: a model said to estimate nothing for the dead while it did
    assert "no analysis estimates what they would have scored" not in methods
    assert "every available score of every patient" not in methods
    sens = " ".join(texts(build_document(results), "results"))
    assert "neither estimates scores for the dead" in sens


def test_small_cells_withhold_the_counts_that_give_away_a_small_one() -> None:
    """With suppression, 9 of 13 alive answering gives away 4 survivors without an answer: the 13 is withheld.

    The composite's four groups add up to the cohort: the 4 left out is hidden, so the smallest other
    non-zero group (9) is withheld too, and with it the patients included (9 + 13).
    """
    doc = build_document(_results(True))
    key = texts(doc, "key-results")
    assert any("9 patients alive at 1 year answered (the number alive is withheld: small-cell suppression); 13 had "
               "died before answering" in k for k in key)
    assert not any("of 13 patients alive" in k for k in key)
    assert any("a withheld number patients included, a withheld number alive with a score and 13 dead; <5 alive "
               "without a score left out" in k for k in key)
    t = tables(doc)
    change = [r.cells for r in t["table-change"].rows if r.kind != "group"]
    assert [c[1] for c in change] == ["12 of 19", "9 of \u2013", "13 of 19", "9 of \u2013"]
    comp = {r.cells[0]: r.cells[1:5] for r in t["table-composite"].rows if r.kind != "group"}
    assert comp["Change to 1 year, death = 0"] == ("\u2013", "\u2013", "13", "<5")


def test_an_older_mixed_model_is_not_passed_off_as_while_alive(results: dict[str, Any]) -> None:
    old = copy.deepcopy(results)
    for r in old["tables"]["mixed_model"]:
        del r["population"]
    text = " ".join(texts(build_document(old), "results"))
    assert "estimates the change had no patient died, not the while-alive change" in text
    assert "estimates the change had no patient died" not in " ".join(texts(build_document(results), "results"))

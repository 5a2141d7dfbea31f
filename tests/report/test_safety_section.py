"""The report's Safety and Cement leaks sections, on the hand-counted extract of ``tests/study/test_safety.py``.

Expected cells are hand counts with CIs from R (``binom.test``) and a hand computation of the cluster-robust
interval; with suppression on, every count below 5 is hidden, and the symptomatic-leak breakdown is withheld.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from spinereg.report import Document, Table, build_document, render_report
from spinereg.study import load_spec, run_study
from tests.study.test_cohort import SPEC
from tests.study.test_safety import safety_extract

from .test_suppression_text import _block_texts, small_counts


def _results(suppress: bool) -> dict[str, Any]:
    spec, sha = load_spec(SPEC)
    spec = spec.model_copy(update={"analyses": spec.analyses.model_copy(
        update={"suppress_small_cells": suppress, "small_cell_threshold": 5})})
    return run_study(spec, safety_extract(), spec_sha256=sha,  # type: ignore[arg-type]
                     data_sha256="0" * 64).to_dict(generated_at="t")


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    return _results(False)


@pytest.fixture(scope="module")
def doc(results: dict[str, Any]) -> Document:
    return build_document(results)


def tables(doc: Document) -> dict[str, Table]:
    return {b.id: b for s in doc.sections for b in s.blocks if isinstance(b, Table)}


def cells(t: Table) -> dict[str, tuple[str, ...]]:
    return {r.cells[0]: r.cells[1:] for r in t.rows}


def section_text(doc: Document, sid: str) -> str:
    return " ".join(t for s in doc.sections if s.id == sid for b in s.blocks for t in _block_texts(b))


def test_safety_table(doc: Document) -> None:
    c = cells(tables(doc)["table-safety"])
    # R: binom.test(0, 6)$conf.int[2] = 0.4592581; binom.test(1, 6) 0.0042107 0.6412346;
    # binom.test(2, 6) 0.0432719 0.7772219
    assert c["Death within 30 days"] == ("0/6", "0% (0% to 46%)")
    assert c["Death within 90 days"] == ("0/6", "0% (0% to 46%)")
    assert c["New vertebral fracture"] == ("1/6", "17% (0% to 64%)")
    assert c["Repeat augmentation"] == ("2/6", "33% (4% to 78%)")
    assert c["At a level treated at the index operation"] == ("1/6", "17% (0% to 64%)")
    assert c["At other levels"] == ("1/6", "17% (0% to 64%)")


def test_complications_by_type_and_timing(doc: Document) -> None:
    t = tables(doc)["table-complication-types"]
    c = cells(t)
    # hand count (see tests/study/test_safety.py); R: binom.test(4, 6) 0.2227781 0.9567281
    assert c["Any complication"] == ("4/6", "67% (22% to 96%)", "2", "3", "1")
    assert c["Cement embolism"] == ("2/6", "33% (4% to 78%)", "1", "1", "0")
    assert c["Neurological deficit"][2:] == ("0", "2", "0")
    assert c["Urinary"][2:] == ("0", "0", "1")
    # no all-zero rows: the cardiac complication belongs to an operation outside the cohort
    assert "Cardiac" not in c and "Infection" not in c
    assert t.header[3:] == ("Intra-operative", "Post-operative", "Timing not recorded")
    # the grades stay in their own table, complications only
    grades = cells(tables(doc)["table-rates"])
    assert grades["Any"] == ("4/6", "67% (22% to 96%)")
    assert "Type C, through a cortical defect" not in grades


def test_mechanism_and_location_are_separate_tables(doc: Document) -> None:
    mech = cells(tables(doc)["table-leak-mechanism"])
    loc = cells(tables(doc)["table-leak-location"])
    assert set(mech) == {"Any cement leak", "Type B, via the basivertebral vein", "Type S, via the segmental veins",
                         "Type C, through a cortical defect", "Mechanism not recorded"}
    assert set(loc) == {"Any cement leak", "Intradiscal", "Paravertebral", "Epidural or foraminal", "Venous",
                        "Location not recorded"}
    # R: binom.test(2, 8) 0.03185 0.65086 (levels); binom.test(1, 8) 0.00316 0.52651
    assert mech["Type C, through a cortical defect"][2:] == ("2/8", "25% (3% to 65%)")
    assert loc["Intradiscal"][2:] == ("1/8", "13% (0% to 53%)")
    assert loc["Location not recorded"][:1] == ("3/5",)


def test_clustered_interval(doc: Document) -> None:
    c = cells(tables(doc)["table-leak-clustered"])
    # by hand: leaking/assessed levels per patient 1/2, 1/1, 2/3, 0/1, 1/1; p = 5/8;
    # V = 5/4 * sum (y - p m)^2 / 8^2 = 5/4 * 0.75 / 64; logit CI
    p = 5 / 8  # whole percentages: 8 levels (< 100)
    se = math.sqrt(5 / 4 * 0.75 / 64) / (p * (1 - p))
    z = 1.959963984540054
    lo, hi = (100 / (1 + math.exp(-(math.log(p / (1 - p)) + s * z * se))) for s in (-1, 1))
    assert (round(lo, 1), round(hi, 1)) == (37.7, 82.1)
    assert c["Per level, cluster-robust CI (primary)"] == ("5/8", f"63% ({lo:.0f}% to {hi:.0f}%)")
    assert c["Per level, exact CI treating levels as independent"] == ("5/8", "63% (24% to 91%)")
    assert c["Per patient, exact CI"][0] == "4/5"
    boot = next(k for k in c if k.startswith("Per level, patient bootstrap"))
    assert "2,000 resamples, seed 20261204" in boot or "2000 resamples, seed 20261204" in boot


def test_symptomatic_table(doc: Document) -> None:
    t = tables(doc)["table-symptomatic"]
    c = cells(t)
    assert t.header[1:] == ("Leaking patients (N = 4)", "Leaking levels (N = 5)")
    assert c["Symptomatic by the reviewer's flag"] == ("1 (25%)", "1 (20%)")
    assert c["Symptomatic by a linked complication"] == ("3 (75%)", "4 (80%)")
    assert c["Linked complication only"] == ("2 (50%)", "3 (60%)")
    assert c["Agreement (both or neither)"] == ("2 (50%)", "2 (40%)")


def test_modality_table(doc: Document) -> None:
    c = cells(tables(doc)["table-modality"])
    assert c["X-ray"] == ("8 (100%)", "5", "8")
    assert c["CT"] == ("1 (13%)", "1", "1")


def test_text_and_methods(doc: Document) -> None:
    key = section_text(doc, "key-results")
    assert "Deaths from any cause after the operation: within 30 days 0/6 patients" in key
    assert "5/8 treated levels (63%, 95% CI 38% to 82%, allowing for several levels per patient)" in key
    methods = section_text(doc, "methods")
    for rule in ("followed at least that long", "cement embolism or a neurological deficit",
                 "dated from the day of the operation to 30 days after it", "cluster-robust (sandwich) variance",
                 "random seed 20261204", "two separate variables: by its mechanism"):
        assert rule in methods, rule
    results = section_text(doc, "results")
    assert "Of the 4 patients with a leak, 1 had a leak flagged symptomatic by the reviewer and 3 a complication" \
        in results


def test_suppression(tmp_path: Path) -> None:
    res = _results(True)
    doc = build_document(res)
    t = tables(doc)
    assert cells(t["table-safety"])["New vertebral fracture"] == ("<5/6", "\u2013")
    sym = cells(t["table-symptomatic"])
    assert sym["Both"] == ("\u2013", "\u2013") and sym["Agreement (both or neither)"] == ("\u2013", "\u2013")
    # every timing count is small (2, 3, 1): all hidden
    assert cells(t["table-complication-types"])["Any complication"] == ("<5/6", "\u2013", "<5", "<5", "<5")
    found = {hit for s in doc.sections for b in s.blocks for text in _block_texts(b)
             for hit in small_counts(" ".join(text.split()))}
    assert not found, found
    assert "agreement is withheld" in section_text(doc, "results")


def test_old_results_without_the_new_tables(results: dict[str, Any]) -> None:
    old: dict[str, Any] = copy.deepcopy(results)
    for k in ("safety", "complication_types", "imaging_modality", "symptomatic_leaks", "leak_clustered"):
        del old["tables"][k]
    t = tables(build_document(old))
    assert {"table-rates", "table-leak-mechanism", "table-leak-location"} <= set(t)
    assert not {"table-safety", "table-leak-clustered", "table-symptomatic"} & set(t)


def test_rendered_in_every_format(results: Mapping[str, Any], tmp_path: Path) -> None:
    paths = render_report(results, tmp_path, formats=("html", "docx"))
    html = paths[0].read_text(encoding="utf-8")
    assert "Deaths, new fractures and repeat augmentation" in html and "cluster-robust CI (primary)" in html
    import docx

    text = "\n".join(c.text for tb in docx.Document(str(paths[1])).tables for row in tb.rows for c in row.cells)
    assert "Death within 90 days" in text and "Linked complication only" in text

"""Small-cell suppression in every generated sentence: reports of tiny cohorts with suppression on are scanned, all
their text (methods, results sentences, key results, table captions and footnotes, figure titles, captions and
drawn labels, byline, provenance, and the terminal summary of ``spinereg demo``), for a count from 1 to
``threshold - 1`` shown in clear.

A count is recognised by its context, as a reader would: a small number (in digits or words) before a word that
counts people or things ("4 operations", "one value", "2 complete pairs"), after ``n =``, in a fraction
("3/26"), before a percentage ("3 (11.5%)"), or before what happened to the patients ("3 answered", "2 had died").
Numbers that are not counts (table and figure numbers, time points, rules such as "fewer than 2 complete pairs" or
"counts from 1 to 4") are not.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from spinereg.data._synth import synthesize
from spinereg.report import BulletList, Document, Figure, Heading, Paragraph, Table, build_document, summary_rows
from spinereg.report._figures import make_figures
from spinereg.report._format import Suppression
from spinereg.study import load_spec, run_study
from spinereg.study._spec import Period, StudySpec

SPEC = Path(__file__).resolve().parent.parent.parent / "examples" / "pvp-cancer-vcf" / "study.toml"
SVG = "{http://www.w3.org/2000/svg}"
THRESHOLD = 5

_DIGIT = r"(?<![\w<.,:/\-\u2212])[1-4](?![\w.,%/])"
_WORD = r"\b(?:one|two|three|four)\b"
_SMALL = rf"(?:{_DIGIT}|{_WORD})"
_NOUN = (r"(?:operations?|patients?|people|persons?|pairs?|levels?|deaths?|events?|values?|scores?|answers?|"
         r"questionnaires?|responders?|cases?|leaks?|complications?)\b")
# in words, only before what counts people and their answers ("three levels each" describes the EQ-5D)
_WORD_NOUN = r"(?:operations?|patients?|people|persons?|pairs?|deaths?|values?|scores?|answers?|questionnaires?)\b"
_PATTERNS = [
    re.compile(rf"{_DIGIT}\s+(?:[a-z-]+\s+){{0,3}}?{_NOUN}", re.IGNORECASE),
    re.compile(rf"{_WORD}\s+(?:[a-z-]+\s+){{0,2}}?{_WORD_NOUN}", re.IGNORECASE),
    re.compile(rf"\bn\s*=\s*{_SMALL}", re.IGNORECASE),
    re.compile(r"(?<![\d<.,])[1-4]\s*/\s*\d|\d\s*/\s*[1-4](?![\d.,])"),
    re.compile(rf"{_SMALL}\s*\(\s*\d+(?:\.\d+)?\s*%\s*\)", re.IGNORECASE),
    re.compile(rf"{_SMALL}\s+(?:answered|had died|died|were alive|was alive|not yet due)\b", re.IGNORECASE),
]
# a number that states a rule or names something is not a count
_NOT_A_COUNT = re.compile(r"(?:fewer than|at least|at most|more than|less than|from|table|figure|table s)\s*$",
                          re.IGNORECASE)


def small_counts(text: str) -> list[str]:
    """Every count below the threshold shown in clear in ``text``, with a little context."""
    found = []
    for pattern in _PATTERNS:
        for m in pattern.finditer(text):
            if _NOT_A_COUNT.search(text[max(0, m.start() - 14):m.start()]):
                continue
            found.append(text[max(0, m.start() - 40):m.end() + 10])
    return found


def test_the_scanner_finds_small_counts_and_passes_rules() -> None:
    """The scanner itself, on literal sentences: what it must catch and what it must let pass."""
    for leak in ("The extract held 4 operations of 4 patients.", "CI not estimable: one value",
                 "3 complete pairs", "n = 2", "N = 3", "died in 3/26 patients", "in 26/4", "2 (7.7%)",
                 "at 3 months, 3 answered", "2 had died before answering", "of the 2 patients with a score"):
        assert small_counts(leak), leak
    for fine in ("Counts from 1 to 4 are shown as <5.", "fewer than 2 complete pairs", "Table 1 describes the "
                 "patients", "at 3 months and 1 year", "<5 operations of <5 patients", "n = <5", "<5/26",
                 "26 patients", "EQ-5D-3L index", "365.25/12 days", "(1 | patient)", "Figure 2 shows 26 patients",
                 "a dot where only one was answered", "at least one score", "2013-10-01 to 2014-01-31",
                 "one thin grey line per patient", "five dimensions with three levels each",
                 "a level with two leak types counts under both"):
        assert not small_counts(fine), fine


def _block_texts(block: Any) -> Iterator[str]:
    if isinstance(block, Paragraph):
        yield f"{block.lead} {block.text}"
    elif isinstance(block, Heading):
        yield block.text
    elif isinstance(block, BulletList):
        yield from block.items
    elif isinstance(block, Table):
        yield f"{block.label}. {block.caption}"
        yield " | ".join(block.header)
        yield from (" | ".join(r.cells) for r in block.rows)
        yield from (f.text for f in block.footnotes)
    elif isinstance(block, Figure):
        yield f"{block.label}. {block.title}. {block.caption}"
    else:  # a new kind of block must be scanned too
        raise AssertionError(f"unknown block {type(block).__name__}")


def all_text(results: Mapping[str, Any], out: Path) -> dict[str, list[str]]:
    """Every piece of generated text of the report of ``results``, by where it comes from."""
    sup = Suppression(True, THRESHOLD)
    figures = make_figures(results, out, suppression=sup)
    doc: Document = build_document(results, figures)
    texts: dict[str, list[str]] = {"front": [doc.title, doc.subtitle, doc.byline, doc.banner, *doc.footer,
                                             *(f"{k}: {v}" for k, v in doc.provenance)]}
    for sec in doc.sections:
        texts[sec.id] = [t for b in sec.blocks for t in _block_texts(b)]
    texts["figure captions"] = [f"{f.title}. {f.caption}" for f in figures]
    texts["figure labels"] = [" ".join("".join(t.itertext()) for t in ET.parse(f.svg).getroot().iter(f"{SVG}text"))
                              for f in figures]
    texts["terminal summary"] = [f"{label}: {value}" for label, value in summary_rows(dict(results))]
    return texts


def _suppressed(spec: StudySpec, **cohort: Any) -> StudySpec:
    return spec.model_copy(update={"cohort": spec.cohort.model_copy(update=cohort),
                                   "analyses": spec.analyses.model_copy(update={"suppress_small_cells": True,
                                                                                "small_cell_threshold": THRESHOLD})})


@pytest.fixture(scope="module")
def tiny_registry() -> dict[str, Any]:
    """A registry of 4 patients with 4 operations, all in the cohort (the issue's example)."""
    spec, sha = load_spec(SPEC)
    s = _suppressed(spec, procedure_categories=[], indications=[], period=None, age_min=None, require_baseline=[])
    res = run_study(s, synthesize(4, seed=0), spec_sha256=sha, data_sha256="0" * 64).to_dict(generated_at="t")
    assert (res["data"]["n_operations"], res["data"]["n_patients"], res["tables"]["flow"][-1]["n_patients"]) == \
        (4, 4, 4)
    return res


@pytest.fixture(scope="module")
def tiny_cohort() -> dict[str, Any]:
    """The demo registry, the study period narrowed to 4 patients, some of whom die during follow-up."""
    spec, sha = load_spec(SPEC)
    s = _suppressed(spec, period=Period(start="2013-10-01", end="2014-01-31"))
    res = run_study(s, synthesize(20000, seed=2018), spec_sha256=sha, data_sha256="0" * 64).to_dict(
        generated_at="t")
    assert res["tables"]["flow"][-1]["n_patients"] == 4
    assert any(r["died_by_window_end"] for r in res["tables"]["follow_up"])
    return res


@pytest.fixture(scope="module")
def demo_cohort() -> dict[str, Any]:
    """The demo study itself (26 patients) with suppression on: small groups inside a larger cohort."""
    spec, sha = load_spec(SPEC)
    res = run_study(_suppressed(spec), synthesize(20000, seed=2018), spec_sha256=sha, data_sha256="0" * 64)
    return res.to_dict(generated_at="t")


@pytest.mark.parametrize("case", ["tiny_registry", "tiny_cohort", "demo_cohort"])
def test_no_count_below_the_threshold_in_any_generated_text(case: str, request: pytest.FixtureRequest,
                                                             tmp_path: Path) -> None:
    results = request.getfixturevalue(case)
    texts = all_text(results, tmp_path)
    assert texts["methods"] and texts["key-results"] and texts["results"] and texts["figure captions"]
    leaks = {f"{where}: ...{hit}...": None for where, parts in texts.items() for t in parts
             for hit in small_counts(" ".join(t.split()))}
    assert not leaks, "small counts shown in clear:\n" + "\n".join(leaks)
    every = " ".join(" ".join(parts) for parts in texts.values())
    assert "<5" in every  # the small counts are there, suppressed

"""STROBE/RECORD items of the report (issue 16, point 5): design in the title, structured abstract, setting, code
lists, study size and bias, comparisons at baseline, follow-up time, numbered references, declarations, software
versions and the checklist written beside the report.

Expected values are computed here from the cohort and the raw numbers of results.json, not with the report's
formatting functions.
"""

from __future__ import annotations

import csv
import io
import re
from decimal import ROUND_HALF_UP, Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from spinereg.data._synth import synthesize
from spinereg.report import BulletList, Paragraph, Table, build_document, render_report
from spinereg.report._model import Document, Heading
from spinereg.report._strobe import AUTHOR_YEAR, CHECKLIST, checklist_csv, checklist_rows, unnumbered_citations
from spinereg.study import load_spec
from spinereg.study._run import StudyResult, run_study

ROOT = Path(__file__).resolve().parent.parent.parent
SPEC = ROOT / "examples" / "pvp-cancer-vcf" / "study.toml"
MINUS = "\u2212"


def num(x: float, digits: int) -> str:
    d = Decimal(repr(float(x))).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return f"{abs(d) if d == 0 else d:.{digits}f}".replace("-", MINUS)


@pytest.fixture(scope="module")
def result() -> StudyResult:
    spec, sha = load_spec(SPEC)
    return run_study(spec, synthesize(20000, seed=2018), spec_sha256=sha, data_sha256="5" * 64)


@pytest.fixture(scope="module")
def sample(result: StudyResult) -> dict[str, Any]:
    return result.to_dict(generated_at="2026-01-01T00:00:00+00:00")


@pytest.fixture(scope="module")
def doc(sample: dict[str, Any]) -> Document:
    return build_document(sample)


def _section(doc: Document, sid: str) -> Any:
    return next(s for s in doc.sections if s.id == sid)


def _texts(doc: Document, sid: str | None = None) -> str:
    out = []
    for s in doc.sections:
        if sid is not None and s.id != sid:
            continue
        for b in s.blocks:
            if isinstance(b, Paragraph):
                out.append(b.text)
            elif isinstance(b, BulletList):
                out += list(b.items)
            elif isinstance(b, Table):
                out += [b.caption, *(c for r in b.rows for c in r.cells), *(f.text for f in b.footnotes)]
    return "\n".join(out)


def _table(doc: Document, tid: str) -> Table:
    return next(t for t in doc.tables() if t.id == tid)


def test_title_names_the_design(doc: Document) -> None:
    assert doc.title.endswith(": a registry-based cohort study")


def test_structured_abstract_with_the_numbers(doc: Document, sample: dict[str, Any]) -> None:
    ab = _section(doc, "abstract")
    assert [b.lead for b in ab.blocks] == ["Background and objectives.", "Methods.", "Results.", "Conclusions."]
    text = _texts(doc, "abstract")
    n = sample["tables"]["flow"][-1]["n_patients"]
    assert f"{n} patients were included" in text
    safety = {r["event"]: r for r in sample["tables"]["safety"]}
    assert f"{safety['death_90d']['x']}/{safety['death_90d']['n']} within 90 days" in text
    # each change with its denominators: complete pairs of the patients alive at the window's end
    fu = {r["timepoint"]: r for r in sample["tables"]["follow_up"]}
    one_year = next(r for r in sample["tables"]["paired_change"] if r["timepoint"] == "1y")
    alive = fu["1y"]["n"] - fu["1y"]["died_by_window_end"]
    assert f"({one_year['n_pairs']} complete pairs of {alive} patients alive at the window's end)" in text
    # no choosing between analyses by whether a CI excludes 0
    assert "excludes 0" not in text and "weaker assumption" not in text


def test_setting_counts_the_cohort_hospitals_and_dates(doc: Document, result: StudyResult) -> None:
    ops = result.cohort.operations
    hospitals = ops["hospital"].dropna().nunique()
    text = _texts(doc, "methods")
    assert f"done at {hospitals} hospitals" in text
    first, last = ops["date"].min().date().isoformat(), ops["date"].max().date().isoformat()
    assert f"the first on {first} and the last on {last}" in text
    assert "Data were extracted on 2021-06-30" in text


def test_code_lists_table_holds_the_spec_criteria(doc: Document) -> None:
    t = _table(doc, "table-codes")
    rows = [r.cells[:3] for r in t.rows]
    assert ("Procedure category", "vertebroplasty", "Vertebroplasty") in rows
    assert ("Indication", "cancer_vcf", "Cancer-related vertebral compression fracture") in rows


def test_study_size_and_bias_paragraphs(doc: Document) -> None:
    heads = [b.text for b in _section(doc, "methods").blocks if isinstance(b, Heading)]
    assert "Study size" in heads and "Bias" in heads
    text = _texts(doc, "methods")
    assert "no sample size was calculated" in text
    assert "Selection bias" in text and "Information bias" in text and "Attrition" in text


def test_comparison_tables_show_the_engine_differences(doc: Document, sample: dict[str, Any]) -> None:
    rows = sample["tables"]["baseline_comparison"]
    inc = {r["variable"]: r for r in rows if r["comparison"] == "included_vs_excluded"}
    t = _table(doc, "table-included-excluded")
    age = next(r for r in t.rows if r.cells[0].startswith("Age"))
    assert age.cells[1] == f"{inc['age']['n_1']} / {inc['age']['n_0']}"
    assert age.cells[4] == num(inc["age"]["smd"], 2)
    assert age.cells[2] == f"{num(inc['age']['mean_1'], 1)} ({num(inc['age']['sd_1'], 1)})"
    # the excluded are the 11 operations the baseline step removed
    flow = {r["step"]: r for r in sample["tables"]["flow"]}
    assert inc["age"]["n_0"] == flow["baseline"]["excluded"]
    resp = [r for r in rows if r["comparison"].startswith("responders_vs_nonresponders")]
    fu = {r["timepoint"]: r for r in sample["tables"]["follow_up"]}
    assert resp[0]["n_1"] == fu["1y"]["answered"] and resp[0]["n_0"] == fu["1y"]["alive_not_answered"]
    assert "p-value" not in " ".join(_table(doc, "table-answered-unanswered").header).lower()


def test_follow_up_time_and_answer_days(doc: Document, sample: dict[str, Any]) -> None:
    fut = sample["tables"]["follow_up_time"][0]
    text = _texts(doc, "results")
    assert f"The median follow-up was {num(fut['median_months'], 1)} months" in text
    assert "reverse Kaplan-Meier" in text
    t = _table(doc, "table-answer-days")
    days = {r["timepoint"]: r for r in sample["tables"]["answer_days"]}
    row = next(r for r in t.rows if r.cells[0] == "1 year")
    d = days["1y"]
    assert row.cells[3] == f"{num(d['median'], 0)} ({num(d['q1'], 0)} to {num(d['q3'], 0)})"


def test_references_numbered_once_and_no_author_year_left(doc: Document) -> None:
    assert unnumbered_citations(doc) == []
    refs = _section(doc, "references").blocks[0].items
    numbers = [int(re.match(r"\[(\d+)\]", r).group(1)) for r in refs]  # type: ignore[union-attr]
    assert numbers == list(range(1, len(refs) + 1))
    assert len(set(r.split("] ", 1)[1] for r in refs)) == len(refs)  # each source once
    body = "\n".join(_texts(doc, s.id) for s in doc.sections if s.id != "references")
    body += "\n".join(f.caption for f in doc.figures())
    cited = [int(m) for m in re.findall(r"\[(\d+)\]", body)]
    assert set(cited) == set(numbers)  # every listed source is cited, every citation is listed
    first = list(dict.fromkeys(cited))
    assert first == sorted(first)  # numbered in order of first citation
    whole = "\n".join(refs)
    assert "Wittrup-Jensen KU" in whole and "Yeom JS" in whole and "Austin PC" in whole and "Schemper M" in whole


def test_author_year_pattern_catches_what_it_must() -> None:
    found = [m.group(0) for m in AUTHOR_YEAR.finditer("as Yeom et al. 2003 and Fairbank and Pynsent 2000 (Bauer 1972)")]
    assert found == ["Yeom et al. 2003", "Fairbank and Pynsent 2000", "Bauer 1972"]


def test_declarations_are_templates_for_the_authors_and_software_versions(doc: Document) -> None:
    text = _texts(doc, "declarations")
    for what in ("ethics committee", "funding", "conflicts of interest"):
        assert re.search(r"\[Authors: state [^\]]*" + what, text, re.IGNORECASE)
    for pkg in ("numpy", "pandas", "scipy", "statsmodels"):
        assert f"{pkg} {version(pkg)}" in text
    assert "EQ-5D-3L value set (eq5d) 3L/TTO/Denmark" in text
    assert "10.1177/1403494809105287" in text


def test_checklist_points_at_sections_that_exist(doc: Document) -> None:
    rows = list(csv.DictReader(io.StringIO(checklist_csv(doc))))
    assert [r["item"] for r in rows] == [c[0] for c in CHECKLIST]
    titles = {s.id: s for s in doc.sections}
    checked = 0
    for r in rows:
        for loc in filter(None, r["section"].split("; ")):
            sid, _, heading = loc.removeprefix("#").partition(" > ")
            assert sid in titles, r
            if heading:
                assert heading in [b.text for b in titles[sid].blocks if isinstance(b, Heading)], r
            checked += 1
    assert checked >= 30
    where = {r["item"]: r["where"] for r in rows}
    assert where["STROBE 5"] == "Methods > Setting"
    assert where["STROBE 10"] == "Methods > Study size"
    assert where["STROBE 2"].startswith("for the authors")


def test_checklist_says_not_reported_when_a_section_is_missing(doc: Document) -> None:
    from dataclasses import replace

    methods = _section(doc, "methods")
    blocks = tuple(b for b in methods.blocks if not (isinstance(b, Heading) and b.text == "Study size"))
    broken = replace(doc, sections=tuple(replace(s, blocks=blocks) if s.id == "methods" else s for s in doc.sections))
    where = {r["item"]: r["where"] for r in checklist_rows(broken)}
    assert where["STROBE 10"] == "not reported"


def test_checklist_written_beside_the_report(sample: dict[str, Any], tmp_path: Path) -> None:
    render_report(sample, tmp_path, formats=["html"])
    path = tmp_path / "strobe_record_checklist.csv"
    assert path.is_file()
    assert path.read_text(encoding="utf-8").splitlines()[0] == "item,description,where,section"


def test_every_table_id_is_unique(doc: Document) -> None:
    ids = [t.id for t in doc.tables()]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)

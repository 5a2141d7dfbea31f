"""Acceptance tests of the report layer: the numbers of results.json reach the PDF, the Word tables and the
HTML page as rounded for display, edge cases render, small cells are suppressed, the banner is on every page.

Expected strings are computed here from the raw numbers with an independent rounding (Decimal, half up on the
decimal value), never with the report's own formatting functions.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import docx
import pypdf
import pytest

from spinereg._errors import SpineregError
from spinereg.data import Extract
from spinereg.data._synth import synthesize
from spinereg.report import BulletList, Paragraph, build_document, load_results, render_pdf, render_report
from spinereg.report._build import BANNER
from spinereg.study import load_spec
from spinereg.study._run import StudyResult, run_study
from spinereg.study._spec import Period, StudySpec, TimePointSpec

ROOT = Path(__file__).resolve().parent.parent.parent
SPEC = ROOT / "examples" / "pvp-cancer-vcf" / "study.toml"
STAMP = "2026-01-01T00:00:00+00:00"
MINUS = "\u2212"
DASH = "\u2013"


# -- independent display rounding -----------------------------------------------------------------------------


def num(x: float, digits: int) -> str:
    d = Decimal(repr(float(x))).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    s = f"{abs(d) if d == 0 else d:.{digits}f}"
    return s.replace("-", MINUS)


def pct(p: float, n: int = 100) -> str:
    """A percentage as the report shows it: whole below a denominator of 100, else one decimal."""
    digits = 0 if n < 100 else 1
    d = (Decimal(repr(float(p))) * 100).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return f"{d:.{digits}f}".replace("-", MINUS) + "%"


def pval(p: float) -> str:
    return "< 0.001" if p < 0.001 else num(p, 3)


DIGITS = {"eq5d3l": 2, "eq5d5l": 2, "odi": 1, "eqvas": 1, "nrs_back": 1, "nrs_leg": 1}


# -- fixtures -------------------------------------------------------------------------------------------------


def _run(spec: StudySpec, x: Extract, sha: str) -> dict[str, Any]:
    return run_study(spec, x, spec_sha256=sha, data_sha256="5" * 64).to_dict(generated_at=STAMP)


@pytest.fixture(scope="module")
def engine() -> tuple[StudySpec, str, Extract]:
    spec, sha = load_spec(SPEC)
    return spec, sha, synthesize(20000, seed=2018)


@pytest.fixture(scope="module")
def sample_result(engine: tuple[StudySpec, str, Extract]) -> StudyResult:
    spec, sha, x = engine
    return run_study(spec, x, spec_sha256=sha, data_sha256="5" * 64)


@pytest.fixture(scope="module")
def sample(sample_result: StudyResult) -> dict[str, Any]:
    return sample_result.to_dict(generated_at=STAMP)


@pytest.fixture(scope="module")
def one_patient(engine: tuple[StudySpec, str, Extract], sample_result: StudyResult) -> dict[str, Any]:
    """A cohort of 1: the study period narrowed to the day of one cohort operation."""
    spec, sha, x = engine
    days = sample_result.cohort.operations["date"].dt.date.value_counts()
    day = sorted(days[days == 1].index)[0]
    res = _run(spec.model_copy(update={"cohort": spec.cohort.model_copy(update={"period": Period(start=day,
                                                                                                   end=day)})}), x, sha)
    assert res["tables"]["flow"][-1]["n_patients"] == 1
    return res


@pytest.fixture(scope="module")
def all_dead(engine: tuple[StudySpec, str, Extract]) -> dict[str, Any]:
    """Every patient dies 200 days after the first operation (before the 1-year window closes)."""
    spec, sha, x = engine
    t = {k: v.copy() for k, v in x.tables.items()}
    death = t["operations"].groupby("patient_id", observed=True)["date"].min() + timedelta(days=200)
    t["patients"]["death_date"] = t["patients"]["patient_id"].map(death).astype(t["patients"]["death_date"].dtype)
    proms = t["proms"]
    keep = proms["answer_date"] <= proms["patient_id"].map(death)
    t["proms"] = proms[keep.fillna(False).to_numpy(dtype=bool)].reset_index(drop=True)
    res = _run(spec, Extract(t, dict(x.meta)), sha)
    one_year = next(r for r in res["tables"]["follow_up"] if r["timepoint"] == "1y")
    assert one_year["answered"] == 0 and one_year["died_before_answering"] == one_year["n"] > 0
    return res


@pytest.fixture(scope="module")
def suppressed(engine: tuple[StudySpec, str, Extract]) -> dict[str, Any]:
    """Small-cell suppression on, and a 6-week time point that nobody answered."""
    spec, sha, x = engine
    tps = {"baseline": spec.timepoints["baseline"], "6w": TimePointSpec(window=(20, 50), target=42),
           "3m": spec.timepoints["3m"], "1y": spec.timepoints["1y"]}
    s = spec.model_copy(update={"timepoints": tps,
                                "analyses": spec.analyses.model_copy(update={"suppress_small_cells": True})})
    res = _run(s, x, sha)
    six = next(r for r in res["tables"]["follow_up"] if r["timepoint"] == "6w")
    assert six["answered"] == 0 and six["n"] > 0
    return res


class Rendered:
    """The three files of one report, read back."""

    def __init__(self, out: Path, paths: list[Path]) -> None:
        self.out = out
        self.paths = paths
        reader = pypdf.PdfReader(out / "report.pdf")
        self.pdf_pages = [p.extract_text() or "" for p in reader.pages]
        self.html = (out / "report.html").read_text(encoding="utf-8")
        self.docx = docx.Document(str(out / "report.docx"))

    @property
    def pdf_text(self) -> str:
        return "\n".join(self.pdf_pages)

    def pdf_compact(self) -> str:
        return re.sub(r"\s+", "", self.pdf_text)

    def docx_rows(self) -> list[list[str]]:
        """Every row of every Word table as cell texts, footnote marks (superscript runs) left out."""
        return [["".join(run.text for par in c.paragraphs for run in par.runs if not run.font.superscript)
                 for c in row.cells] for t in self.docx.tables for row in t.rows]

    def docx_text(self) -> str:
        d = self.docx
        parts = [p.text for p in d.paragraphs] + [" | ".join(r) for r in self.docx_rows()]
        parts += [p.text for s in d.sections for p in (*s.header.paragraphs, *s.footer.paragraphs)]
        return "\n".join(parts)

    def html_rows(self) -> list[list[str]]:
        return _HtmlTables.parse(self.html)

    def html_text(self) -> str:
        return _HtmlText.parse(self.html)


@pytest.fixture(scope="module")
def report_of(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Mapping[str, Any], str], Rendered]:
    cache: dict[str, Rendered] = {}

    def render(results: Mapping[str, Any], name: str) -> Rendered:
        if name not in cache:
            out = tmp_path_factory.mktemp(name)
            cache[name] = Rendered(out, render_report(results, out))
        return cache[name]

    return render


@pytest.fixture(scope="module")
def report(sample: dict[str, Any], report_of: Callable[[Mapping[str, Any], str], Rendered]) -> Rendered:
    return report_of(sample, "sample")


# -- HTML reading ---------------------------------------------------------------------------------------------


class _HtmlTables(HTMLParser):
    """Rows of every table as cell texts (footnote marks in <sup> dropped)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._sup = False

    @classmethod
    def parse(cls, html: str) -> list[list[str]]:
        p = cls()
        p.feed(html)
        return p.rows

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "sup":
            self._sup = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "sup":
            self._sup = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None and not self._sup:
            self._cell.append(data)


class _HtmlText(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    @classmethod
    def parse(cls, html: str) -> str:
        p = cls()
        p.feed(html)
        return " ".join(" ".join(p.parts).split())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._skip += tag in ("style", "title")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("style", "title")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


# -- expected rows ----------------------------------------------------------------------------------------------


def _digits(results: Mapping[str, Any], outcome: str) -> int:
    inst = next(o["instrument"] for o in results["outcomes"] if o["name"] == outcome)
    return DIGITS[inst]


def expected_outcome_rows(results: Mapping[str, Any]) -> Iterator[list[str]]:
    """Outcome scores: n, mean (SD), CI of the mean, median (IQR)."""
    for r in results["tables"]["outcome_summary"]:
        d = _digits(results, r["outcome"])
        yield [str(r["n"]), f"{num(r['mean'], d)} ({num(r['sd'], d)})", f"{num(r['ci_low'], d)} to "
               f"{num(r['ci_high'], d)}", f"{num(r['median'], d)} ({num(r['q1'], d)} to {num(r['q3'], d)})"]


def expected_change_rows(results: Mapping[str, Any]) -> Iterator[list[str]]:
    """Change from baseline: answered of alive, baseline and follow-up mean (SD), mean change (CI), t p, HL (CI),
    Wilcoxon p."""
    for r in results["tables"]["paired_change"]:
        d = _digits(results, r["outcome"])
        yield [f"{r['n_pairs']} of {r['n_alive']}", f"{num(r['mean_before'], d)} ({num(r['sd_before'], d)})",
               f"{num(r['mean_after'], d)} ({num(r['sd_after'], d)})",
               f"{num(r['mean_diff'], d)} ({num(r['ci_low'], d)} to {num(r['ci_high'], d)})", pval(r["p_value"]),
               f"{num(r['hl_estimate'], d)} ({num(r['hl_ci_low'], d)} to {num(r['hl_ci_high'], d)})",
               pval(r["wilcoxon_p_value"])]


def _rate(r: Mapping[str, Any]) -> list[str]:
    n = r["n"]
    return [f"{r['x']}/{n}", f"{pct(r['proportion'], n)} ({pct(r['ci_low'], n)} to {pct(r['ci_high'], n)})"]


def expected_rate_rows(results: Mapping[str, Any]) -> Iterator[list[str]]:
    """Leaks (mechanism and location tables): patient and level side by side; complications: patient only.

    The reviewer's symptomatic flag has its own table (tests/report/test_safety_section.py).
    """
    leaks = results["tables"]["leaks"]
    for r in leaks:
        if r["unit"] == "patient" and r["measure"] == "cement leak":
            lev = next(x for x in leaks if x["unit"] == "level" and x["measure"] == r["measure"]
                       and x["category"] == r["category"])
            yield _rate(r) + _rate(lev)
    for r in results["tables"]["complications"]:
        yield _rate(r)


def expected_responder_rows(results: Mapping[str, Any]) -> Iterator[list[str]]:
    for r in results["tables"]["responders"]:
        n = r["n_pairs"]
        yield [f"{n} of {r['n_alive']}", f"{r['x']} ({pct(r['proportion'], n)})",
               f"{pct(r['ci_low'], n)} to {pct(r['ci_high'], n)}"]


EXPECTED = {"outcomes": expected_outcome_rows, "change": expected_change_rows, "rates": expected_rate_rows,
            "responders": expected_responder_rows}


# -- (1)-(3): the numbers in each format ---------------------------------------------------------------------


@pytest.mark.parametrize("table", sorted(EXPECTED))
def test_pdf_shows_the_numbers_of_results(report: Rendered, sample: dict[str, Any], table: str) -> None:
    text = report.pdf_compact()
    rows = list(EXPECTED[table](sample))
    assert rows
    for cells in rows:
        want = re.sub(r"\s+", "", "".join(cells))
        assert want in text, f"{table}: {cells} not in the PDF"


@pytest.mark.parametrize("table", sorted(EXPECTED))
def test_docx_tables_show_the_numbers_of_results(report: Rendered, sample: dict[str, Any], table: str) -> None:
    got = [r[1:] for r in report.docx_rows()]
    for cells in EXPECTED[table](sample):
        assert cells in got, f"{table}: {cells} is no row of a Word table"


@pytest.mark.parametrize("table", sorted(EXPECTED))
def test_html_tables_show_the_numbers_of_results(report: Rendered, sample: dict[str, Any], table: str) -> None:
    got = [r[1:] for r in report.html_rows()]
    for cells in EXPECTED[table](sample):
        assert cells in got, f"{table}: {cells} is no row of an HTML table"


def test_the_word_tables_are_real_tables_with_numbered_captions(report: Rendered) -> None:
    d = report.docx
    assert len(d.tables) >= 10
    assert not any("<w:drawing" in t._tbl.xml for t in d.tables)
    captions = [p.text for p in d.paragraphs if p.style is not None and p.style.name == "Caption"]
    tables = [c for c in captions if re.match(r"Table \d+\. ", c)]
    figures = [c for c in captions if re.match(r"Figure \d+\. ", c)]
    assert [int(c.split()[1].rstrip(".")) for c in tables] == list(range(1, len(tables) + 1))
    assert [int(c.split()[1].rstrip(".")) for c in figures] == list(range(1, len(figures) + 1))
    assert len(d.inline_shapes) == len(figures) == 9


def test_html_is_self_contained_with_every_figure(report: Rendered) -> None:
    html = report.html
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert not re.search(r"<script|<link|@import|url\(\s*['\"]?http", html, re.I)
    srcs = re.findall(r"<img\b[^>]*\bsrc=\"([^\"]*)\"", html)
    figures = sorted(p.stem for p in (report.out / "figures").glob("*.svg"))
    assert len(srcs) == len(figures) == 9
    assert all(s.startswith(("data:image/svg+xml;base64,", "data:image/png;base64,")) and len(s) > 1000 for s in srcs)
    for fig in figures:
        assert f'id="figure-{fig}"' in html
    assert '<meta name="viewport"' in html and "@media print" in html and "overflow-x: auto" in html


def test_every_format_has_the_same_tables(report: Rendered, sample: dict[str, Any]) -> None:
    """One document model: each table's label and caption appear in all three formats."""
    doc = build_document(sample)
    pdf = re.sub(r"\s+", "", report.pdf_text)
    docx_text = report.docx_text()
    html = report.html_text()
    assert len(doc.tables()) >= 12
    for t in doc.tables():
        head = f"{t.label}. {t.caption}"
        assert re.sub(r"\s+", "", head) in pdf
        assert head in docx_text
        assert head in html


def test_report_files_and_timing_contract(report: Rendered) -> None:
    assert [p.name for p in report.paths] == ["report.html", "report.pdf", "report.docx"]
    assert not list(report.out.rglob("*.partial"))
    assert report.pdf_text.count("Table 1.") >= 1


# -- (4): edge cases ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["one_patient", "all_dead", "suppressed"])
def test_edge_cases_render_in_every_format_and_say_not_estimable(
        case: str, request: pytest.FixtureRequest, report_of: Callable[[Mapping[str, Any], str], Rendered]) -> None:
    results = request.getfixturevalue(case)
    r = report_of(results, case)
    for name, text in (("pdf", r.pdf_text), ("docx", r.docx_text()), ("html", r.html_text())):
        assert "not estimable" in text.lower(), f"{case}: no 'not estimable' in the {name}"
        assert DASH in text


def test_cohort_of_one_has_no_change_estimates(one_patient: dict[str, Any],
                                               report_of: Callable[[Mapping[str, Any], str], Rendered]) -> None:
    r = report_of(one_patient, "one_patient")
    notes = {row["note"] for row in one_patient["tables"]["paired_change"]}
    assert notes == {"not estimable: fewer than 2 complete pairs"}
    for text in (r.pdf_text, r.docx_text(), r.html_text()):
        assert "Not estimable: fewer than 2 complete pairs" in " ".join(text.split())
    # the change table: no interval and no test for a single pair
    rows = [row for row in r.docx_rows() if row[0] in ("3 months", "1 year") and len(row) == 8]
    assert len(rows) == 6   # EQ-5D, ODI and back-pain NRS at two time points
    for row in rows:
        assert row[4].endswith(f"({DASH})") and row[5] == DASH and row[7] == DASH


def test_all_dead_by_one_year(all_dead: dict[str, Any],
                              report_of: Callable[[Mapping[str, Any], str], Rendered]) -> None:
    r = report_of(all_dead, "all_dead")
    fu = next(x for x in all_dead["tables"]["follow_up"] if x["timepoint"] == "1y")
    window = "270 to 545 (365)"
    row = next(row for row in r.docx_rows() if len(row) > 1 and row[1] == window)
    # nobody alive and due: no response rate; every death came before an answer
    assert row[2:] == [str(fu["n"]), "0", str(fu["n"]), "0", "0", DASH, str(fu["n"])]
    change = next(x for x in all_dead["tables"]["paired_change"] if x["timepoint"] == "1y")
    assert change["n_pairs"] == 0 and change["mean_diff"] is None
    assert f"{fu['n']} had died before answering" in r.html_text()


def test_follow_up_rows_of_the_demo_registry(report: Rendered, sample: dict[str, Any]) -> None:
    """The demo's follow-up in every format: deaths by the window's end as the Kaplan-Meier curve counts them."""
    # 3m: 13 answered, 7 died before answering, 6 alive without an answer; 13 / 19 = 0.6842; 9 deaths by day 150
    # (2 of them after answering).  1y: 9 / 13 = 0.6923; 15 deaths by day 545.  Whole percentages: fewer than 100
    # patients alive and due.
    want = {"60 to 150 (90)": ["26", "13", "7", "6", "0", "68%", "9"],
            "270 to 545 (365)": ["26", "9", "13", "4", "0", "69%", "15"]}
    for rows in (report.docx_rows(), report.html_rows()):
        got = {row[1]: row[2:] for row in rows if len(row) > 1 and row[1] in want}
        assert got == want
    pdf = report.pdf_compact()
    for window, cells in want.items():
        assert re.sub(r"\s+", "", window + "".join(cells)) in pdf
    text = " ".join(report.html_text().split())
    assert ("Deaths by the end of each window, counting also the patients who answered and died later in the "
            "window, as the survival analysis does: 9 at 3 months and 15 at 1 year.") in text
    assert "Of the patients alive and due, 68% at 3 months and 69% at 1 year answered." in text
    header = next(row for row in report.docx_rows() if row and row[0] == "Time point")
    assert header[3:] == ["Answered", "Died before answering", "Alive, no answer", "Not yet due",
                          "Response among those alive", "Deaths by the window's end"]


def test_version_1_results_still_render(sample: dict[str, Any]) -> None:
    """A results.json of schema version 1 (follow-up columns died and missing) reads as version 2."""
    old = copy.deepcopy(sample)
    old["schema_version"] = 1
    old["tables"]["follow_up"] = [{"timepoint": "3m", "n": 26, "answered": 13, "died": 7, "not_yet_due": 0,
                                   "missing": 6}]
    doc = build_document(load_results(old))
    row = next(r for r in _table(doc, "table-follow-up").rows if r.cells[0] == "3 months")
    assert row.cells[3:] == ("13", "7", "6", "0", "68%", DASH)  # version 1 did not count deaths after answers


def test_suppression_hides_small_counts_everywhere(suppressed: dict[str, Any],
                                                   report_of: Callable[[Mapping[str, Any], str], Rendered]) -> None:
    r = report_of(suppressed, "suppressed")
    texts = {"pdf": " ".join(r.pdf_text.split()), "docx": r.docx_text(), "html": r.html_text()}
    for name, text in texts.items():
        assert "<5" in text, name
        # a small count never shows, neither as x/N nor as x (p%)
        assert not re.search(r"(?<![\d<.])[1-4]/\d", text), name
        assert not re.search(r"(?<![\d<.])[1-4] \(\d+\.\d%\)", text), name
    rows = r.docx_rows()
    # the flow step that excluded 4 operations is shown with the next step; the 6-week time point nobody answered
    flow = suppressed["tables"]["flow"]
    i = next(i for i, x in enumerate(flow) if x["excluded"] == 4)
    merged = next(row for row in rows if row[-1] == f"{flow[i]['reason']}; {flow[i + 1]['reason']}")
    assert merged[3] == str(flow[i]["excluded"] + flow[i + 1]["excluded"])
    assert not any(row[-1] == flow[i]["reason"] for row in rows)
    six = next(row for row in rows if len(row) > 1 and row[1] == "20 to 50 (42)")
    assert six[3] == "0"            # nobody answered: zero identifies nobody and is shown
    # rates from suppressed counts hide their percentage
    small = [row for row in rows if len(row) == 5 and row[1].startswith("<5/")]
    assert small and all(row[2] == DASH for row in small)
    # large counts still show
    big = next(x for x in suppressed["tables"]["outcome_summary"] if x["n"] >= 5)
    assert str(big["n"]) in texts["docx"]


# -- (5): banner and footer on every page ---------------------------------------------------------------------


def test_synthetic_banner_and_provenance_on_every_pdf_page(report: Rendered, sample: dict[str, Any]) -> None:
    banner = " ".join(BANNER.split()[:8])
    assert len(report.pdf_pages) > 3
    for i, page in enumerate(report.pdf_pages, start=1):
        flat = " ".join(page.split())
        assert banner in flat, f"no banner on page {i}"
        assert sample["study"]["spec_sha256"] in flat and sample["data"]["sha256"] in flat
        assert f"Page {i} of {len(report.pdf_pages)}" in flat
    assert banner in " ".join(report.docx_text().split())
    assert banner in report.html_text()


def test_no_banner_for_real_data(sample: dict[str, Any], tmp_path: Path) -> None:
    real = copy.deepcopy(sample)
    real["data"]["synthetic"] = False
    doc = build_document(real)
    assert doc.banner == ""
    reader = pypdf.PdfReader(_write(tmp_path / "r.pdf", render_pdf(doc)))
    assert all("SYNTHETIC" not in (p.extract_text() or "") for p in reader.pages)
    assert "SYNTHETIC" in BANNER


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# -- API ----------------------------------------------------------------------------------------------------


def test_unknown_format_raises_before_writing(sample: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(SpineregError, match="unknown report format"):
        render_report(sample, tmp_path / "out", formats=("html", "odt"))
    with pytest.raises(SpineregError, match="no report format"):
        render_report(sample, tmp_path / "out", formats=())
    assert not (tmp_path / "out").exists()


def test_an_unwritable_directory_is_a_spinereg_error(sample: dict[str, Any], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(SpineregError, match="cannot create the report directory"):
        render_report(sample, blocker / "out")


def test_results_file_errors(tmp_path: Path) -> None:
    with pytest.raises(SpineregError, match="cannot read"):
        render_report(tmp_path / "missing.json", tmp_path / "out")
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(SpineregError, match="not valid JSON"):
        render_report(bad, tmp_path / "out")
    bad.write_text(json.dumps({"tables": {}}), encoding="utf-8")
    with pytest.raises(SpineregError, match="not a spinereg results file"):
        render_report(str(bad), tmp_path / "out")
    bad.write_text(json.dumps({"study": {}, "tables": {}, "schema_version": 99}), encoding="utf-8")
    with pytest.raises(SpineregError, match="schema version 99"):
        render_report(bad, tmp_path / "out")


def test_results_from_a_file_path(sample: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(sample), encoding="utf-8")
    assert load_results(path) == load_results(str(path)) == json.loads(json.dumps(sample))


def test_tables_absent_from_results_are_left_out(sample: dict[str, Any]) -> None:
    """A spec that disabled analyses gives results without their tables; the report leaves them out."""
    lean = copy.deepcopy(sample)
    for name in ("table1", "paired_change", "responders", "pchc", "mixed_model", "survival", "survival_median"):
        lean["tables"].pop(name)
    doc = build_document(lean)
    ids = [t.id for t in doc.tables()]
    assert "table-baseline" not in ids and "table-change" not in ids and "table-mixed" not in ids
    # the code lists (a supplementary table in the methods) and the comparisons at baseline (not table1) stay
    ids = [i for i in ids if i not in ("table-codes", "table-included-excluded", "table-answered-unanswered")]
    assert ids[0] == "table-follow-up"
    assert next(t for t in doc.tables() if t.id == "table-included-excluded").label == "Table 1"
    text = " ".join(b.text for s in doc.sections for b in s.blocks if isinstance(b, Paragraph))
    assert "paired t-test" not in text and "mixed model" not in text


def test_a_dataframe_free_results_dict_is_enough(sample: dict[str, Any]) -> None:
    """The report reads results.json only: a JSON round trip gives the same document."""
    assert build_document(json.loads(json.dumps(sample))) == build_document(sample)


# -- small-cell suppression, complementary suppression and what the text claims (document model only) ---------


def _on(sample: Mapping[str, Any]) -> dict[str, Any]:
    res = copy.deepcopy(dict(sample))
    res["settings"]["suppress_small_cells"] = True
    return res


def _table(doc: Any, table_id: str) -> Any:
    return next(t for t in doc.tables() if t.id == table_id)


def _text(doc: Any) -> str:
    parts: list[str] = []
    for sec in doc.sections:
        for b in sec.blocks:
            if isinstance(b, Paragraph):
                parts.append(b.text)
            elif hasattr(b, "items"):
                parts += list(b.items)
            elif hasattr(b, "rows"):
                parts += [" | ".join(r.cells) for r in b.rows] + [f.text for f in b.footnotes]
            elif hasattr(b, "caption"):
                parts.append(b.caption)
    return "\n".join(parts)


def test_follow_up_complementary_suppression(sample: dict[str, Any]) -> None:
    res = _on(sample)
    row = next(r for r in res["tables"]["follow_up"] if r["timepoint"] == "3m")
    row.update(answered=13, died_before_answering=3, alive_not_answered=10, not_yet_due=0, response_rate=13 / 23,
               died_by_window_end=5, answered_then_died=2)
    assert row["n"] == 26
    doc = build_document(res)
    t = _table(doc, "table-follow-up")
    cells = next(r for r in t.rows if r.cells[0] == "3 months")
    # died (3) is hidden; the smallest other non-zero count (alive without an answer, 10) too, else
    # 10 = 26 - 13 - 3 gives it away; the response rate 13/23 would give the 10 back as well
    assert cells.cells[3:] == ("13", "<5", DASH, "0", DASH, "5")
    assert cells.marks[5] and any("calculated back" in f.text for f in t.footnotes)
    text = _text(doc)
    assert ("at 3 months, 13 answered, <5 had died before answering and a withheld number were alive without an "
            "answer") in text
    assert "10 were alive" not in text and "57%" not in text
    plain = _table(build_document(copy.deepcopy(sample) | {"tables": res["tables"]}), "table-follow-up")
    assert next(r for r in plain.rows if r.cells[0] == "3 months").cells[3:] == \
        ("13", "3", "10", "0", "57%", "5")  # 13 / 23 = 0.5652, a whole percentage of fewer than 100


def test_deaths_by_window_end_never_give_away_a_small_number_who_answered_then_died(sample: dict[str, Any]) -> None:
    """Demo: at 3 months 7 died before answering and 9 by the window's end, so 9 - 7 = 2 answered and then died."""
    doc = build_document(_on(sample))
    rows = {r.cells[0]: r for r in _table(doc, "table-follow-up").rows}
    assert rows["3 months"].cells[3:] == ("13", "7", "6", "0", "68%", DASH)
    assert rows["3 months"].marks[-1]
    # 1 year: 4 alive without an answer -> <5; the smallest other non-zero count (9 answered) withheld, and with
    # it the response rate 9/13; the deaths (15, of whom 2 had answered) withheld as at 3 months
    assert rows["1 year"].cells[3:] == (DASH, "13", "<5", "0", DASH, DASH)
    text = _text(doc)
    assert "Deaths by the end of each window" in text and "a withheld number at 3 months" in text
    assert "9 at 3 months" not in text and "15 at 1 year" not in text
    assert "answered and then died in the window, which is below the suppression threshold" in text
    # 5 or more who answered and then died: nothing to protect, the deaths are shown
    res = _on(sample)
    row = next(r for r in res["tables"]["follow_up"] if r["timepoint"] == "3m")
    row.update(answered_then_died=5, died_by_window_end=12)
    assert next(r for r in _table(build_document(res), "table-follow-up").rows
                if r.cells[0] == "3 months").cells[-1] == "12"


def test_table1_complementary_suppression_and_empty_cancer_rows(sample: dict[str, Any]) -> None:
    res = _on(sample)
    t1 = res["tables"]["table1"]
    for r in t1:
        if r["variable"] == "sex":
            count = 3 if r["level"] == "female" else 23
            r.update(count=count, percent=100 * count / 26)
    rows = {(r.cells[0]): r for r in _table(build_document(res), "table-baseline").rows}
    assert rows["Female"].cells[2] == "<5" and rows["Male"].cells[2] == DASH and rows["Male"].marks[2]
    assert rows["Lung"].cells[2] == "<5"  # several hidden levels already protect each other
    # a non-cancer study: every cancer variable missing -> left out; a missing non-cancer variable stays
    for r in t1:
        if r["variable"] in ("cancer_primary_site", "sins", "tokuhashi", "tomita", "cement_volume_ml", "sins_group",
                             "tokuhashi_group"):
            r.update(n=0, missing=26, count=0 if r["kind"] == "categorical" else None, percent=None, mean=None,
                     sd=None, median=None, q1=None, q3=None, min=None, max=None)
    labels = [r.cells[0] for r in _table(build_document(res), "table-baseline").rows]
    for gone in ("Primary cancer site", "SINS", "Revised Tokuhashi score", "Tomita score", "Myeloma"):
        assert not any(label.startswith(gone) for label in labels)
    assert "Cement volume per operation (ml), median (IQR)" in labels and "Sex" in labels


def test_flow_merges_a_small_exclusion_with_the_next_step(sample: dict[str, Any]) -> None:
    res = _on(sample)
    flow = res["tables"]["flow"]
    doc = build_document(res)
    rows = _table(doc, "table-flow").rows
    assert [r.cells[0] for r in rows] == ["Registry", "Procedure", "Indication", "Period", "Age",
                                          "First per patient and baseline"]
    assert rows[-1].cells[1:4] == (str(flow[-1]["n_operations"]), str(flow[-1]["n_patients"]),
                                   str(flow[-2]["excluded"] + flow[-1]["excluded"]))
    text = _text(doc)
    assert "combined with the next step" in text and "shown together with the next step" in text
    assert f"{flow[-2]['excluded']} a later operation" not in text
    off = [r.cells[0] for r in _table(build_document(sample), "table-flow").rows]
    assert off[-2:] == ["First per patient", "Baseline"]


def test_no_baseline_claim_without_a_baseline_requirement(sample: dict[str, Any], tmp_path: Path) -> None:
    from spinereg.report._figures import make_figures
    from spinereg.report._format import Suppression

    res = copy.deepcopy(sample)
    res["study"]["spec"]["cohort"]["require_baseline"] = []
    flow = res["tables"]["flow"]
    flow[-1].update(n_operations=flow[-2]["n_operations"], n_patients=flow[-2]["n_patients"], excluded=0)
    res["tables"] = {"flow": flow}
    doc = build_document(res)
    assert "baseline questionnaire" not in _text(doc).lower()
    assert "baseline questionnaire" in _text(build_document(sample)).lower()
    assert [r.cells[0] for r in _table(doc, "table-flow").rows][-1] == "First per patient"
    fig = make_figures(res, tmp_path, suppression=Suppression(False, 5))[0]
    svg = fig.svg.read_text(encoding="utf-8")
    assert "Study cohort" in svg and "aseline" not in svg
    assert "Baseline questionnaire answered" in make_figures(sample | {"tables": {"flow": sample["tables"]["flow"]}},
                                                             tmp_path / "b", suppression=Suppression(False, 5))[0] \
        .svg.read_text(encoding="utf-8")


def test_methods_state_what_the_code_does(sample: dict[str, Any]) -> None:
    methods = next(s for s in build_document(_on(sample)).sections if s.id == "methods")
    text = " ".join(b.text for b in methods.blocks if isinstance(b, Paragraph))
    for claim in ("Only questionnaires linked to the index operation were used (the same operation id",
                  "or dated after the patient's death, were disregarded",
                  "Age is in completed years at the day of the operation",
                  "patients whose age was unknown were excluded",
                  "treated levels with at least one post-operative imaging finding at that level",
                  "died before answering (died before the window's end, or on its last day, without an answer",
                  "answered (a questionnaire in the window, also when the patient died later in the window)",
                  "not yet due (the window ended after the extract date, without an answer)",
                  "answered / (answered + alive without an answer)",
                  "equal the deaths the survival analysis counts by then",
                  "linked to the operation they follow by the registry's operation id",
                  "each recorded with its source", "spinereg's validation report",
                  "complementary suppression is applied", "shown together with the next step",
                  "individual patients' scores are drawn only when every time point has at least 5 patients"):
        assert claim.lower() in text.lower(), claim
    spec = copy.deepcopy(sample)
    spec["study"]["spec"]["cohort"].update(age_min=None, age_max=None)
    text = " ".join(b.text for s in build_document(spec).sections for b in s.blocks if isinstance(b, Paragraph))
    assert "completed years" not in text


def test_key_results_without_imaging_and_with_an_open_median_ci(sample: dict[str, Any]) -> None:
    res = copy.deepcopy(sample)
    for r in res["tables"]["leaks"]:
        r.update(x=0, n=0, proportion=None, ci_low=None, ci_high=None, wilson_ci_low=None, wilson_ci_high=None,
                 note="not estimable: no assessed units")
    m = res["tables"]["survival_median"][0]
    m["ci_high"] = None
    doc = build_document(res)
    block = next(s for s in doc.sections if s.id == "key-results").blocks[0]
    assert isinstance(block, BulletList)
    key = " ".join(block.items)
    assert "0/0" not in key
    assert "Cement leaks were not assessed: no patient had post-operative imaging" in key
    lo = num(m["ci_low"], 1)
    assert f"Median survival {num(m['median_months'], 1)} months (95% CI {lo} to not reached)" in key
    cells = [r.cells for r in _table(doc, "table-survival").rows]
    assert ("Median survival, months", "", f"{num(m['median_months'], 1)} ({lo} to not reached)") in cells


def test_engine_notes_never_show_nan(sample: dict[str, Any]) -> None:
    res = copy.deepcopy(sample)
    r = res["tables"]["paired_change"][0]
    r.update(mean_diff=None, ci_low=None, ci_high=None, note="not estimable: SD of the change is nan (0.123456789)")
    text = _text(build_document(res))
    assert not re.search(r"\bnan\b", text.replace("not estimable", ""), re.IGNORECASE)  # not "Meenan" in a reference
    assert "SD of the change is not estimable (0.123)" in text


# The browser test is tests/report/test_browser.py (headless Debian Chromium; fails under CI=true without it).

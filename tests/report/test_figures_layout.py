"""Issue 16 points 7 and 8: honest figures and a clean PDF.

Figures: 300 dpi PNG (read from the PNG's pHYs chunk) and a vector PDF for each; the SYNTHETIC mark in each
figure file when the data are synthetic (and in none when they are not); short captions; full-scale outcome
axes (the Danish EQ-5D-3L value set's worst state, -0.624, computed here by hand from its published
coefficients); paired means joined only over the same patients; n and deaths under each time point; deaths
marked on the individual paths; the Kaplan-Meier curve cut by a rule checked on a hand-made cohort; leak
mechanism and location in separate panels.

PDF: every font embedded, no page but the last less than half full, no heading at the bottom of a page.
"""

from __future__ import annotations

import copy
import re
import struct
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pypdf
import pytest
from PIL import Image

from spinereg.data._synth import synthesize
from spinereg.report import build_document, render_pdf
from spinereg.report._figures import SYNTHETIC_MARK, FigureFile, _leak_types, _Study, _trajectory, km_cut, make_figures
from spinereg.report._format import Suppression
from spinereg.study import load_spec
from spinereg.study._run import run_study

SPEC = Path(__file__).resolve().parent.parent.parent / "examples" / "pvp-cancer-vcf" / "study.toml"
SVG = "{http://www.w3.org/2000/svg}"
OFF = Suppression(False, 5)
#: Danish EQ-5D-3L TTO value set (Wittrup-Jensen et al. 2009), worst state 33333: 1 - 0.114 (any level 2 or 3)
#: - 0.411 (MO3) - 0.192 (SC3) - 0.144 (UA3) - 0.396 (PD3) - 0.367 (AD3).
DK_3L_WORST = 1 - 0.114 - 0.411 - 0.192 - 0.144 - 0.396 - 0.367


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    spec, sha = load_spec(SPEC)
    res = run_study(spec, synthesize(20000, seed=2018), spec_sha256=sha).to_dict(generated_at="t")
    assert res["data"]["synthetic"] is True
    return res


@pytest.fixture(scope="module")
def figures(results: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, FigureFile]:
    return {f.id: f for f in make_figures(results, tmp_path_factory.mktemp("figs"), suppression=OFF)}


def texts(svg: Path) -> list[str]:
    return ["".join(t.itertext()) for t in ET.parse(svg).getroot().iter(f"{SVG}text")]


def png_chunks(png: Path) -> dict[bytes, list[bytes]]:
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out: dict[bytes, list[bytes]] = {}
    i = 8
    while i < len(data):
        (length,) = struct.unpack(">I", data[i:i + 4])
        kind = data[i + 4:i + 8]
        out.setdefault(kind, []).append(data[i + 8:i + 8 + length])
        i += 12 + length
    return out


# --------------------------------------------------------------------------- files


def test_png_is_300_dpi_and_16_cm_wide(figures: dict[str, FigureFile]) -> None:
    for f in figures.values():
        chunks = png_chunks(f.png)
        x_ppu, y_ppu, unit = struct.unpack(">IIB", chunks[b"pHYs"][0])
        assert unit == 1 and x_ppu == y_ppu  # pixels per metre
        assert abs(x_ppu * 0.0254 - 300) < 0.5, f.id  # 11811 px/m = 300 dpi
        width, _h = struct.unpack(">II", chunks[b"IHDR"][0][:8])
        assert abs(width - 16 / 2.54 * 300) <= 2, f.id  # 1890 px


def test_every_figure_has_a_vector_pdf(figures: dict[str, FigureFile]) -> None:
    for f in figures.values():
        assert f.pdf is not None and f.pdf.is_file()
        reader = pypdf.PdfReader(f.pdf)
        assert len(reader.pages) == 1
        page = reader.pages[0]
        assert abs(float(page.mediabox.width) - 16 / 2.54 * 72) < 0.5  # 16 cm in points
        xobjects = page["/Resources"].get("/XObject") or {}
        images = [k for k, v in xobjects.items() if v.get_object().get("/Subtype") == "/Image"]
        assert images == [], f.id  # drawn as vectors, no embedded raster
        assert SYNTHETIC_MARK.split(" \u2013")[0] in page.extract_text(), f.id  # text kept as text
    assert "Number at risk" in pypdf.PdfReader(figures["survival"].pdf).pages[0].extract_text()  # type: ignore[arg-type]


def test_every_figure_is_marked_synthetic_only_when_the_data_are(results: dict[str, Any],
                                                                  figures: dict[str, FigureFile],
                                                                  tmp_path: Path) -> None:
    assert set(figures) >= {"flow", "trajectory_eq5d", "individual_eq5d", "leak_types", "survival"}
    narrow = figures["flow"].svg.parent / "narrow" / "flow.svg"
    for svg in [f.svg for f in figures.values()] + [narrow]:
        assert SYNTHETIC_MARK in texts(svg), svg.name
    for f in figures.values():
        with Image.open(f.png) as im:
            assert im.text.get("Description") == SYNTHETIC_MARK  # type: ignore[attr-defined]
        assert pypdf.PdfReader(f.pdf).metadata.subject == SYNTHETIC_MARK  # type: ignore[arg-type,union-attr]
    real = copy.deepcopy(results)
    real["data"]["synthetic"] = False
    for f in make_figures(real, tmp_path, suppression=OFF, pdf=False):
        assert not any("SYNTHETIC" in t for t in texts(f.svg)), f.id
        with Image.open(f.png) as im:
            assert "Description" not in im.text  # type: ignore[attr-defined]


def test_captions_are_short(figures: dict[str, FigureFile]) -> None:
    # two printed lines: about 105 characters a line in the PDF (8.5 pt over 174 mm), 110 in the HTML
    for f in figures.values():
        assert len(f.caption) <= 200, (f.id, len(f.caption), f.caption)


# --------------------------------------------------------------------------- trajectories


def test_outcome_axes_span_the_whole_scale(results: dict[str, Any]) -> None:
    study = _Study(results, OFF)
    eq5d, odi, nrs = study.outcomes
    assert (eq5d.instrument, eq5d.valueset, odi.instrument, nrs.instrument) == ("eq5d3l", "Denmark", "odi", "nrs_back")
    assert eq5d.scale == pytest.approx((DK_3L_WORST, 1.0))
    for oc, (lo, hi) in ((eq5d, (DK_3L_WORST, 1.0)), (odi, (0.0, 100.0)), (nrs, (0.0, 10.0))):
        drawn = _trajectory(study, oc)
        assert drawn is not None
        y0, y1 = drawn.fig.axes[0].get_ylim()
        assert y0 <= lo and y1 >= hi
        assert (hi - lo) / (y1 - y0) > 0.9  # padded a little, not stretched


def test_only_means_of_the_same_patients_are_joined(results: dict[str, Any]) -> None:
    study = _Study(results, OFF)
    drawn = _trajectory(study, study.outcomes[0])
    assert drawn is not None
    ax = drawn.fig.axes[0]
    lines = {line.get_gid(): line for line in ax.lines if line.get_gid()}
    pairs = [r for r in results["tables"]["paired_change"] if r["outcome"] == "eq5d"]
    assert len(pairs) == 2
    for r in pairs:
        line = lines[f"pair-{r['timepoint']}"]
        assert list(line.get_ydata()) == [r["mean_before"], r["mean_after"]]  # type: ignore[arg-type]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]  # type: ignore[union-attr]
    for r in pairs:
        assert f"Answered baseline and {r['timepoint']} (n = {r['n_pairs']})" in legend
    singles = [line for gid, line in lines.items() if gid.startswith("all-")]
    assert len(singles) == 3
    for line in singles:  # the mean of everyone who answered: a point with its CI, joined to nothing
        assert len(line.get_xdata()) == 1 and line.get_linestyle() == "None"  # type: ignore[arg-type]


def test_time_points_show_n_and_deaths_before_answering(results: dict[str, Any],
                                                        figures: dict[str, FigureFile]) -> None:
    follow = {r["timepoint"]: r for r in results["tables"]["follow_up"]}
    summary = {r["timepoint"]: r for r in results["tables"]["outcome_summary"] if r["outcome"] == "eq5d"}
    assert follow["3m"]["died_before_answering"] > 0
    for fid in ("trajectory_eq5d", "individual_eq5d"):
        drawn = texts(figures[fid].svg)
        for tp in ("3m", "1y"):
            i = drawn.index(tp)
            assert drawn[i + 1:i + 3] == [f"n = {summary[tp]['n']}", f"{follow[tp]['died_before_answering']} died"]


def _with_deaths(results: dict[str, Any]) -> tuple[dict[str, Any], tuple[float, float]]:
    """Two deaths: a patient last seen at 3 months dies on day 200 (drawn); one dies on day 600, after the
    last window (ends day 545): not drawn."""
    res = copy.deepcopy(results)
    res["outcomes"] = [o for o in res["outcomes"] if o["name"] == "eq5d"]
    scores = [r for r in res["tables"]["scores"] if r["outcome"] == "eq5d"]
    last = {}
    for r in scores:
        last[r["case"]] = r  # sorted by case and day
    at_3m = next(r for r in last.values() if r["timepoint"] == "3m")
    at_base = next(r for r in last.values() if r["timepoint"] == "baseline")
    assert res["timepoints"][-1]["window_end"] == 545
    res["tables"]["deaths"] = [{"case": at_3m["case"], "day": 200}, {"case": at_base["case"], "day": 600}]
    return res, (200.0, at_3m["value"])


def test_deaths_are_crosses_on_the_individual_paths(results: dict[str, Any], tmp_path: Path) -> None:
    from spinereg.report._figures import _individual

    res, (day, value) = _with_deaths(results)
    study = _Study(res, OFF)
    drawn = _individual(study, study.outcomes[0])
    assert drawn is not None
    crosses = [line for line in drawn.fig.axes[0].lines if line.get_gid() == "deaths"]
    assert len(crosses) == 1 and crosses[0].get_marker() == "x"
    assert list(zip(crosses[0].get_xdata(), crosses[0].get_ydata(), strict=True)) == [(day, value)]  # type: ignore[arg-type]
    assert "death during follow-up (1 patient)" in drawn.caption
    # without the deaths table: no cross, and the caption claims none
    bare = {**results, "tables": {k: v for k, v in results["tables"].items() if k != "deaths"}}
    plain = _individual(_Study(bare, OFF), _Study(bare, OFF).outcomes[0])
    assert plain is not None and not [ln for ln in plain.fig.axes[0].lines if ln.get_gid() == "deaths"]
    assert "death" not in plain.caption


# --------------------------------------------------------------------------- Kaplan-Meier


#: A hand-made cohort of 20: curve times (months) with the number at risk at each.
KM = [(1.0, 20), (2.0, 15), (4.0, 8), (7.0, 3), (9.0, 2), (12.0, 1)]


def test_km_cut_rule_by_hand() -> None:
    # 10% of 20 = 2: at 9 months 2 remain at risk (kept); just after, 1 (< 2): the curve ends at 9 months
    assert km_cut(KM, 20) == 9.0
    # 10% of 10 = 1: every time keeps at least 1 at risk: nothing cut
    assert km_cut(KM, 10) is None
    # 20% of 20 = 4: the last time with 4 or more at risk is 4 months
    assert km_cut(KM, 20, fraction=0.2) == 4.0
    assert km_cut([(1.0, 1)], 20) == 0.0 and km_cut([], 20) is None


def test_km_figure_is_cut_and_says_so(tmp_path: Path) -> None:
    surv, curve = 1.0, []
    for months, n_risk in KM:
        surv *= 1 - 1 / n_risk  # one death at each time
        curve.append({"months": months, "n_risk": n_risk, "survival": surv, "ci_low": surv / 2,
                      "ci_high": min(1.0, surv * 1.5), "n_event": 1, "n_censor": 0})
    at_risk = [{"months": m, "n_risk": n} for m, n in ((0.0, 20), (3.0, 8), (6.0, 3), (9.0, 2), (12.0, 1))]
    res = {"tables": {"survival_curve": curve, "survival_at_risk": at_risk,
                      "survival_median": [{"median_months": 4.0, "ci_low": 2.0, "ci_high": 9.0, "n": 20,
                                           "events": 6, "note": ""}]}}
    fig = {f.id: f for f in make_figures(res, tmp_path, suppression=OFF, pdf=False)}["survival"]
    assert "Cut at 9 months: beyond it fewer than 10% of the patients remained at risk." in fig.caption
    drawn = {g.get("id"): "".join(t.itertext()) for g in ET.parse(fig.svg).getroot().iter(f"{SVG}g")
             for t in [g.find(f"{SVG}text")] if g.get("id", "").startswith("atrisk-") and t is not None}
    assert drawn == {"atrisk-0": "20", "atrisk-3": "8", "atrisk-6": "3", "atrisk-9": "2"}  # not 12 months


# --------------------------------------------------------------------------- leaks


def test_leak_mechanism_and_location_are_separate_panels(results: dict[str, Any]) -> None:
    drawn = _leak_types(_Study(results, OFF))
    assert drawn is not None
    panels = [[t.get_text() for t in ax.get_yticklabels()] for ax in drawn.fig.axes]
    assert panels == [["Any leak", "Symptomatic leak"],
                      ["Type B (basivertebral vein)", "Type S (segmental vein)", "Type C (cortical defect)"],
                      ["Intradiscal", "Paravertebral", "Epidural or foraminal", "Venous"]]
    titles = [t.get_text() for ax in drawn.fig.axes for t in ax.texts if (t.get_gid() or "").startswith("leak-panel")]
    assert titles == ["All leaks", "By mechanism (Yeom et al. 2003)", "By location"]


# --------------------------------------------------------------------------- the report PDF


@pytest.fixture(scope="module")
def pdf(results: dict[str, Any], figures: dict[str, FigureFile]) -> tuple[pypdf.PdfReader, Any]:
    doc = build_document(results, list(figures.values()))
    import io

    return pypdf.PdfReader(io.BytesIO(render_pdf(doc))), doc


def _fonts(reader: pypdf.PdfReader) -> dict[str, bool]:
    """Every font of every page and form XObject: name -> embedded."""
    out: dict[str, bool] = {}

    def visit(resources: Any) -> None:
        for f in (resources.get("/Font") or {}).values():
            f = f.get_object()
            desc = f.get("/FontDescriptor")
            if desc is None and "/DescendantFonts" in f:
                desc = f["/DescendantFonts"][0].get_object().get("/FontDescriptor")
            desc = desc.get_object() if desc is not None else {}
            out[str(f.get("/BaseFont"))] = any(k in desc for k in ("/FontFile", "/FontFile2", "/FontFile3"))
        for x in (resources.get("/XObject") or {}).values():
            x = x.get_object()
            if "/Resources" in x:
                visit(x["/Resources"])

    for page in reader.pages:
        visit(page.get("/Resources") or {})
    return out


def test_pdf_embeds_every_font(pdf: tuple[pypdf.PdfReader, Any]) -> None:
    fonts = _fonts(pdf[0])
    assert len(fonts) >= 4
    assert all(fonts.values()), fonts
    assert not any("Helvetica" in name for name in fonts)


def _lines(page: Any) -> list[tuple[float, str]]:
    """(y, text) of each text run of the page body (between the footer and the banner)."""
    runs: list[tuple[float, str]] = []

    def visit(text: str, cm: Any, tm: Any, _font: Any, _size: Any) -> None:
        if text.strip():
            y = float(tm[5]) * float(cm[3]) + float(cm[5])
            runs.append((y, text.strip()))

    page.extract_text(visitor_text=visit)
    height = float(page.mediabox.height)
    return [(y, t) for y, t in runs if 22 * 72 / 25.4 < y < height - 30 * 72 / 25.4]


def test_pdf_has_no_half_empty_page_and_no_heading_at_a_page_bottom(pdf: tuple[pypdf.PdfReader, Any]) -> None:
    reader, doc = pdf
    headings = {s.title for s in doc.sections} | {b.text for s in doc.sections for b in s.blocks
                                                  if type(b).__name__ == "Heading"}
    assert len(reader.pages) >= 8
    for i, page in enumerate(reader.pages[:-1], start=1):
        lines = _lines(page)
        lowest = min(y for y, _t in lines)
        assert lowest < float(page.mediabox.height) / 2, f"page {i} is less than half full"
        last = min(lines)[1]
        assert re.sub(r"\s+", " ", last) not in headings, f"page {i} ends with the heading {last!r}"

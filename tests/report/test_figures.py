"""Report figures from a study run on synthetic data: files, drawn counts, suppression, reproducibility, edge cases."""

from __future__ import annotations

import copy
import re
import struct
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
from PIL import Image

from spinereg.data._synth import synthesize
from spinereg.report._figures import DPI, FigureFile, make_figures
from spinereg.report._format import Suppression
from spinereg.study import load_spec
from spinereg.study._run import run_study

SPEC = Path(__file__).resolve().parent.parent.parent / "examples" / "pvp-cancer-vcf" / "study.toml"
SVG = "{http://www.w3.org/2000/svg}"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
OFF = Suppression(False, 5)
ON = Suppression(True, 5)
EXPECTED = ["flow", "trajectory_eq5d", "individual_eq5d", "trajectory_odi", "individual_odi", "trajectory_nrs_back",
            "individual_nrs_back", "leak_types", "survival"]


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    spec, sha = load_spec(SPEC)
    return run_study(spec, synthesize(20000, seed=2018), spec_sha256=sha).to_dict(generated_at="t")


@pytest.fixture(scope="module")
def figures(results: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, FigureFile]:
    return {f.id: f for f in make_figures(results, tmp_path_factory.mktemp("figs"), suppression=OFF)}


@pytest.fixture(scope="module")
def suppressed(results: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
               ) -> tuple[dict[str, Any], dict[str, FigureFile]]:
    """Suppression on, with a cohort of 3 (flow and leaks only); the step before the last excluded 4 operations."""
    res = only(results, "flow", "leaks")
    flow = res["tables"]["flow"]
    assert flow[-2]["step"] == "first per patient" and flow[-2]["excluded"] == 4
    flow[-1].update(n_operations=3, n_patients=3, excluded=flow[-2]["n_operations"] - 3)
    return res, run(res, tmp_path_factory.mktemp("suppressed"), ON)


def texts(svg: Path) -> list[str]:
    """Every text element of an SVG file, in document order."""
    return ["".join(t.itertext()) for t in ET.parse(svg).getroot().iter(f"{SVG}text")]


def texts_by_id(svg: Path) -> dict[str, str]:
    """Text of each group with an id holding a text element (matplotlib writes an artist's gid as the id)."""
    out = {}
    for g in ET.parse(svg).getroot().iter(f"{SVG}g"):
        t = g.find(f"{SVG}text")
        if g.get("id") and t is not None:
            out[str(g.get("id"))] = "".join(t.itertext())
    return out


def png_size(png: Path) -> tuple[int, int]:
    head = png.read_bytes()[:24]
    assert head[:8] == PNG_MAGIC and head[12:16] == b"IHDR"
    w, h = struct.unpack(">II", head[16:24])
    return int(w), int(h)


def run(results: dict[str, Any], out: Path, sup: Suppression = OFF) -> dict[str, FigureFile]:
    return {f.id: f for f in make_figures(results, out, suppression=sup)}


def only(results: dict[str, Any], *tables: str, outcomes: tuple[str, ...] = ()) -> dict[str, Any]:
    """A copy of ``results`` keeping only these tables and outcomes (fewer figures: faster tests)."""
    res = copy.deepcopy(results)
    res["tables"] = {k: v for k, v in res["tables"].items() if k in tables}
    res["outcomes"] = [o for o in res["outcomes"] if o["name"] in outcomes]
    return res


# --------------------------------------------------------------------------- files


def test_every_figure_is_written_in_report_order_as_valid_svg_png_and_pdf(figures: dict[str, FigureFile]) -> None:
    assert list(figures) == EXPECTED
    for f in figures.values():
        assert f.svg.name == f"{f.id}.svg" and f.png.name == f"{f.id}.png"
        assert f.pdf is not None and f.pdf.name == f"{f.id}.pdf" and f.pdf.read_bytes()[:5] == b"%PDF-"
        assert ET.parse(f.svg).getroot().tag == f"{SVG}svg"
        w, h = png_size(f.png)
        assert DPI == 300 and abs(w - 16 / 2.54 * 300) <= 2  # 16 cm wide at 300 dpi: 1890 px
        with Image.open(f.png) as im:
            im.load()  # decodes every row: a broken PNG raises
            assert im.size == (w, h) and im.mode == "RGB"
            assert round(im.info["dpi"][0]) == DPI
        assert f.title and f.caption.endswith(".") and "  " not in f.caption


def test_captions_state_the_confidence_level_and_the_groups(figures: dict[str, FigureFile]) -> None:
    assert "(95% CI) of all who answered" in figures["trajectory_eq5d"].caption
    assert "the same patients" in figures["trajectory_odi"].caption
    assert "95% confidence band" in figures["survival"].caption
    assert "exact 95% CIs" in figures["leak_types"].caption


def test_style_does_not_leak_into_global_rcparams(results: dict[str, Any], tmp_path: Path) -> None:
    before = dict(matplotlib.rcParams)
    make_figures({"tables": {}}, tmp_path, suppression=OFF)
    assert dict(matplotlib.rcParams) == before


# --------------------------------------------------------------------------- numbers drawn as text


def test_flow_diagram_shows_the_counts_of_every_step(results: dict[str, Any], figures: dict[str, FigureFile]) -> None:
    drawn = texts_by_id(figures["flow"].svg)
    flow = results["tables"]["flow"]
    assert len(flow) >= 5
    # expected text written out here (integers with a thousands separator, plural nouns: every demo count is above
    # 1), not with the report's own formatter
    assert all(row["n_operations"] > 1 and row["n_patients"] > 1 and row["excluded"] != 1 for row in flow)
    for i, row in enumerate(flow):
        want = f"{int(row['n_operations']):,} operations in {int(row['n_patients']):,} patients"
        assert drawn[f"flow-count-{i}"] == want
        if i:
            assert drawn[f"flow-excluded-{i}"] == f"Excluded: {int(row['excluded']):,} operations"
    assert f"{flow[0]['n_operations']:,} operations in {flow[0]['n_patients']:,} patients" in texts(figures["flow"].svg)
    # the demo registry's size as the synthetic generator is documented to make it: 20000 patients
    assert drawn["flow-count-0"].endswith(" operations in 20,000 patients")


def test_flow_diagram_suppresses_small_counts(suppressed: tuple[dict[str, Any], dict[str, FigureFile]]) -> None:
    res, figs = suppressed
    flow = res["tables"]["flow"]
    drawn = texts_by_id(figs["flow"].svg)
    # the step that excluded 4 is drawn together with the last step (else 4 = before - after), and the last
    # step's exclusion is withheld (else 3 = before - excluded)
    last = len(flow) - 2
    assert f"flow-count-{last + 1}" not in drawn
    assert drawn[f"flow-count-{last}"] == "<5 operations in <5 patients"
    assert drawn[f"flow-excluded-{last}"] == "Excluded: number withheld"
    every = " ".join(texts(figs["flow"].svg))
    assert "First operation per patient and baseline questionnaire answered" in every
    assert flow[-2]["reason"] in every and flow[-1]["reason"] in every
    for n in (3, 4, flow[-1]["excluded"], flow[-1]["excluded"] + 4):
        assert not re.search(rf"(?<!\d){n} operations", every), n
    big = flow[1]  # the procedure step keeps hundreds: unchanged by suppression
    assert drawn["flow-count-1"] == f"{big['n_operations']} operations in {big['n_patients']} patients"
    assert "Counts from 1 to 4 are shown as <5." in figs["flow"].caption
    assert "shown together with the next step" in figs["flow"].caption


def test_number_at_risk_row_equals_the_table(results: dict[str, Any], figures: dict[str, FigureFile]) -> None:
    # the at-risk times are whole multiples of 3 months, drawn as whole numbers; the counts as plain integers
    rows = results["tables"]["survival_at_risk"]
    assert [r["months"] for r in rows] == [3.0 * k for k in range(len(rows))]
    table = {str(3 * k): str(int(r["n_risk"])) for k, r in enumerate(rows)}
    assert table["0"] == str(results["tables"]["flow"][-1]["n_patients"])  # everyone is at risk at the operation
    drawn = {k.removeprefix("atrisk-"): v for k, v in texts_by_id(figures["survival"].svg).items()
             if k.startswith("atrisk-")}
    assert len(drawn) >= min(len(table), 8)
    assert "0" in drawn  # the row starts at the operation
    assert drawn == {m: table[m] for m in drawn}
    assert "Number at risk" in texts(figures["survival"].svg)


def test_trajectory_labels_n_per_time_point(results: dict[str, Any], figures: dict[str, FigureFile]) -> None:
    drawn = texts(figures["trajectory_eq5d"].svg)
    for r in results["tables"]["outcome_summary"]:
        if r["outcome"] == "eq5d":
            # the time point's tick label, then its n on the line below
            assert r["n"] >= 5 and drawn[drawn.index(r["timepoint"]) + 1] == f"n = {int(r['n'])}"
    assert {"baseline", "3m", "1y"} <= set(drawn)


def test_leak_labels_hide_small_cells(suppressed: tuple[dict[str, Any], dict[str, FigureFile]]) -> None:
    res, figs = suppressed
    drawn = " ".join(texts(figs["leak_types"].svg))
    assert "(suppressed)" in drawn and "<5/" in drawn
    big = next(r for r in res["tables"]["leaks"] if r["x"] >= 5 and r["n"] >= 5)
    assert f"({big['x']}/{big['n']})" in drawn


# --------------------------------------------------------------------------- reproducibility


def test_same_results_give_byte_identical_svg_and_png(results: dict[str, Any], figures: dict[str, FigureFile],
                                               tmp_path: Path) -> None:
    again = run(results, tmp_path)
    assert list(again) == EXPECTED
    for fid, f in figures.items():
        assert f.svg.read_bytes() == again[fid].svg.read_bytes(), fid
        assert f.png.read_bytes() == again[fid].png.read_bytes(), fid


def test_same_results_give_byte_identical_pdf(results: dict[str, Any], tmp_path: Path) -> None:
    res = only(results, "flow")
    a, b = (make_figures(res, tmp_path / d, suppression=OFF, pdf=True) for d in "ab")
    assert [f.id for f in a] == ["flow"]
    assert a[0].pdf is not None and b[0].pdf is not None
    assert a[0].pdf.read_bytes()[:5] == b"%PDF-"
    assert a[0].pdf.read_bytes() == b[0].pdf.read_bytes()


# --------------------------------------------------------------------------- edge cases


def test_only_baseline_answered(results: dict[str, Any], tmp_path: Path) -> None:
    res = only(results, "flow", "outcome_summary", "scores", outcomes=("eq5d",))
    t = res["tables"]
    t["scores"] = [r for r in t["scores"] if r["timepoint"] == "baseline"]
    for r in t["outcome_summary"]:
        if r["timepoint"] != "baseline":
            r.update(n=0, mean=None, sd=None, ci_low=None, ci_high=None, median=None, q1=None, q3=None,
                     note="not estimable: no values")
    figs = run(res, tmp_path)
    assert list(figs) == ["flow", "trajectory_eq5d", "individual_eq5d"]
    drawn = texts(figs["trajectory_eq5d"].svg)
    assert drawn.count("no answers") == 2 and "n = 0" in drawn
    assert "Not estimable at 3m and 1y" in figs["trajectory_eq5d"].caption


def test_a_time_point_without_answers(results: dict[str, Any], tmp_path: Path) -> None:
    res = only(results, "outcome_summary", "scores", outcomes=("odi",))
    t = res["tables"]
    t["scores"] = [r for r in t["scores"] if r["timepoint"] != "3m"]
    for r in t["outcome_summary"]:
        if r["timepoint"] == "3m":
            r.update(n=0, mean=None, sd=None, ci_low=None, ci_high=None)
    figs = run(res, tmp_path)
    assert "no answers" in texts(figs["trajectory_odi"].svg)
    assert list(figs) == ["flow", "trajectory_odi", "individual_odi"]


def test_absent_and_empty_tables_skip_their_figures(results: dict[str, Any], tmp_path: Path) -> None:
    res = copy.deepcopy(results)
    t = res["tables"]
    t["survival_curve"], t["survival_at_risk"], t["scores"] = [], [], []
    del t["leaks"]
    t["outcome_summary"] = [r for r in t["outcome_summary"] if r["outcome"] == "eq5d"]
    assert list(run(res, tmp_path)) == ["flow", "trajectory_eq5d"]


def test_flow_diagram_is_drawn_without_any_table(tmp_path: Path) -> None:
    figs = make_figures({}, tmp_path, suppression=OFF)
    assert [f.id for f in figs] == ["flow"]
    assert ET.parse(figs[0].svg).getroot().tag == f"{SVG}svg"


def one_patient(results: dict[str, Any]) -> dict[str, Any]:
    """The results of a cohort of one patient (case 1), answering every time point."""
    res = copy.deepcopy(results)
    t = res["tables"]
    t["flow"][-1].update(n_operations=1, n_patients=1)
    case = t["scores"][0]["case"]
    t["scores"] = [r for r in t["scores"] if r["case"] == case]
    value = {(r["outcome"], r["timepoint"]): r["value"] for r in t["scores"]}
    for r in t["outcome_summary"]:
        v = value.get((r["outcome"], r["timepoint"]))
        r.update(n=int(v is not None), mean=v, sd=None, ci_low=None, ci_high=None, median=v, q1=v, q3=v,
                 note="CI not estimable: one value" if v is not None else "not estimable: no values")
    for r in t["leaks"]:
        r.update(x=0, n=1, proportion=0.0, ci_low=0.0, ci_high=0.975, wilson_ci_low=0.0, wilson_ci_high=0.79)
    t["survival_curve"] = [{"months": 7.5, "n_risk": 1, "survival": 0.0, "ci_low": None, "ci_high": None,
                            "n_event": 1, "n_censor": 0}]
    t["survival_at_risk"] = [{"months": 0.0, "n_risk": 1}, {"months": 3.0, "n_risk": 1}, {"months": 6.0, "n_risk": 1}]
    t["survival_median"] = [{"median_months": 7.5, "ci_low": 7.5, "ci_high": None, "n": 1, "events": 1,
                             "note": "upper confidence limit of the median not reached"}]
    return res


@pytest.mark.parametrize("sup", [OFF, ON], ids=["plain", "suppressed"])
def test_a_cohort_of_one_patient(results: dict[str, Any], tmp_path: Path, sup: Suppression) -> None:
    res = one_patient(results)
    res["outcomes"] = [o for o in res["outcomes"] if o["name"] == "eq5d"]
    figs = run(res, tmp_path, sup)
    if sup.on:  # one patient's scores and death are never drawn; the mean of one is not plotted
        assert list(figs) == ["flow", "trajectory_eq5d", "leak_types"]
        drawn = texts(figs["trajectory_eq5d"].svg)
        assert "n = <5" in drawn and "n = 1" not in drawn
        return
    assert list(figs) == ["flow", "trajectory_eq5d", "individual_eq5d", "leak_types", "survival"]
    at_risk = [v for k, v in texts_by_id(figs["survival"].svg).items() if k.startswith("atrisk-")]
    assert at_risk == ["1"] * 3
    assert "n = 1" in texts(figs["individual_eq5d"].svg)
    assert "each of the 1 patient with a score" in figs["individual_eq5d"].caption


def test_everyone_dead_by_one_year(results: dict[str, Any], tmp_path: Path) -> None:
    res = only(results, "survival_curve")
    t = res["tables"]
    deaths = [1.0, 4.0, 7.0, 11.0]
    t["survival_curve"] = [
        {"months": m, "n_risk": 4 - i, "survival": (3 - i) / 4, "ci_low": None if i == 3 else 0.1 * (3 - i),
         "ci_high": None if i == 3 else 1.0, "n_event": 1, "n_censor": 0} for i, m in enumerate(deaths)]
    t["survival_at_risk"] = [{"months": 3.0 * k, "n_risk": n} for k, n in enumerate([4, 3, 2, 1])]
    t["survival_median"] = [{"median_months": 4.0, "ci_low": 1.0, "ci_high": None, "n": 4, "events": 4,
                             "note": "survival reaches 0: confidence limits are NaN from then on (as R)"}]
    fig = run(res, tmp_path)["survival"]
    drawn = texts(fig.svg)
    assert "Median survival 4.0 months" in drawn
    assert [v for k, v in texts_by_id(fig.svg).items() if k.startswith("atrisk-")] == ["4", "3", "2", "1"]
    assert "4 patients, 4 deaths" in fig.caption


# --------------------------------------------------------------------------- small-cell suppression


def _lines_x(fig: Any) -> list[float]:
    """x of every line point and every error-bar vertex of the figure's first axes, rounded to whole days
    (the markers of different groups are set apart by a fraction of a day's width)."""
    ax = fig.axes[0]
    xs = [float(x) for line in ax.lines for x in np.asarray(line.get_xdata(), dtype=float)]
    xs += [float(x) for c in ax.collections for p in c.get_paths() for x in np.asarray(p.vertices)[:, 0]]
    return [float(round(x / 10) * 10) for x in xs]  # time points at days 0, 90, 365: 10-day bins


def test_trajectory_hides_the_mean_and_ci_of_fewer_than_threshold_patients(results: dict[str, Any]) -> None:
    from spinereg.report._figures import _Study, _trajectory

    res = only(results, "outcome_summary", outcomes=("eq5d",))
    one_year = next(r for r in res["tables"]["outcome_summary"] if r["outcome"] == "eq5d" and r["timepoint"] == "1y")
    one_year["n"] = 3  # mean and CI stay in results.json: the analysis record
    study = _Study(res, ON)
    drawn = _trajectory(study, study.outcomes[0])
    assert drawn is not None
    xs = _lines_x(drawn.fig)
    assert 370.0 not in xs and 360.0 not in xs and 90.0 in xs  # no point, no error bar at 1 year
    labels = [t.get_text() for t in drawn.fig.axes[0].get_xticklabels()]
    assert "1y\nn = <5" in labels
    assert "Not shown at 1y: fewer than 5 patients answered" in drawn.caption
    plain = _trajectory(_Study(res, OFF), study.outcomes[0])
    assert plain is not None and 360.0 in _lines_x(plain.fig)


def test_individual_trajectories_only_when_every_time_point_has_threshold_patients(
        results: dict[str, Any], tmp_path: Path) -> None:
    res = only(results, "outcome_summary", "scores", outcomes=("eq5d",))
    counts = {tp: len({r["case"] for r in res["tables"]["scores"] if r["outcome"] == "eq5d" and r["timepoint"] == tp})
              for tp in ("baseline", "3m", "1y")}
    assert min(counts.values()) >= 5
    assert "individual_eq5d" in run(res, tmp_path / "all", ON)  # every time point >= 5: drawn
    keep = sorted({r["case"] for r in res["tables"]["scores"] if r["timepoint"] == "1y"})[:4]
    res["tables"]["scores"] = [r for r in res["tables"]["scores"] if r["timepoint"] != "1y" or r["case"] in keep]
    assert "individual_eq5d" not in run(res, tmp_path / "small", ON)
    assert "individual_eq5d" in run(res, tmp_path / "off", OFF)


def test_survival_curve_of_fewer_than_threshold_patients_is_not_drawn(results: dict[str, Any],
                                                                        tmp_path: Path) -> None:
    res = only(results, "survival_curve", "survival_at_risk", "survival_median")
    assert "survival" in run(res, tmp_path / "big", ON)
    res["tables"]["survival_median"][0]["n"] = 4
    assert "survival" not in run(res, tmp_path / "small", ON)
    assert "survival" in run(res, tmp_path / "off", OFF)


def test_median_survival_note_never_shows_nan(results: dict[str, Any], tmp_path: Path) -> None:
    res = only(results, "survival_curve", "survival_median")
    res["tables"]["survival_median"] = [{"median_months": None, "ci_low": None, "ci_high": None, "n": 26,
                                         "events": 10, "note": "median not reached; limits nan and NaN"}]
    caption = run(res, tmp_path)["survival"].caption
    assert "nan" not in caption.lower().replace("not estimable", "")
    assert "limits not estimable and not estimable" in caption

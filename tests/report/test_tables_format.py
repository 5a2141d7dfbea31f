"""Table and number formats (issue 16, point 6): one summary per variable, observed-value quartiles for integer
scores (R quantile type 1), standard SINS/Tokuhashi categories, thoracic/lumbar split, no all-zero rows, whole
percentages below 100, one p notation, thousands separators, journal style presets.

Expected values are hand-computed or from R (tests/study/reference/reverse_km_R.csv).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from spinereg.report import build_document
from spinereg.report._context import Ctx
from spinereg.report._format import (
    STYLES,
    fmt_ci,
    fmt_count,
    fmt_p,
    fmt_p_text,
    pct_digits,
    use_style,
)
from spinereg.report._tables import baseline_table, pchc_table
from spinereg.study import load_spec
from spinereg.study._analyses import SCORE_GROUPS, describe_continuous, level_region, score_group
from spinereg.study._spec import SpecError

ROOT = Path(__file__).resolve().parent.parent.parent
SPEC = ROOT / "examples" / "pvp-cancer-vcf" / "study.toml"
R_REF = ROOT / "tests" / "study" / "reference" / "reverse_km_R.csv"
MINUS = "\u2212"
EN = "\u2013"


def _r() -> dict[str, float]:
    with R_REF.open(encoding="utf-8") as f:
        return {r["quantity"]: (math.nan if r["value"] == "NA" else float(r["value"])) for r in csv.DictReader(f)}


# -- numbers -------------------------------------------------------------------------------------------------------


def test_p_notation_is_one_throughout() -> None:
    assert fmt_p(0.0004) == "< 0.001"
    assert fmt_p(0.07861) == "0.079"
    assert fmt_p_text(0.0004) == "p < 0.001"
    assert fmt_p_text(0.07861) == "p = 0.079"


def test_thousands_separator_and_minus() -> None:
    assert fmt_count(21404) == "21,404"
    assert fmt_count(20000) == "20,000"
    assert fmt_count(999) == "999"
    assert fmt_count(-1200) == f"{MINUS}1,200"


def test_whole_percentages_below_100() -> None:
    assert pct_digits(26) == 0
    assert pct_digits(99) == 0
    assert pct_digits(100) == 1
    assert pct_digits(None) == 1


def test_style_presets() -> None:
    with use_style(STYLES["spine"]):
        assert fmt_p_text(0.07861) == "P = 0.079"
        assert fmt_p_text(0.0001) == "P < 0.001"
        assert fmt_ci(0.24, 0.67, 2) == f"0.24{EN}0.67"
        assert fmt_ci(-0.04, 0.64, 2) == f"{MINUS}0.04 to 0.64"  # never a dash beside a minus sign
    with use_style(STYLES["esj"]):
        assert fmt_p_text(0.07861) == "p = 0.08"
        assert fmt_p_text(0.0042) == "p = 0.004"
        assert fmt_ci(0.24, 0.67, 2) == "0.24 to 0.67"
    assert fmt_p_text(0.07861) == "p = 0.079"  # the default again outside the block


def test_spec_report_style(tmp_path: Path) -> None:
    text = SPEC.read_text(encoding="utf-8")
    ok = tmp_path / "ok.toml"
    ok.write_text(text + '\n[report]\nstyle = "esj"\n', encoding="utf-8")
    spec, _ = load_spec(ok)
    assert spec.report.style == "esj"
    assert load_spec(SPEC)[0].report.style == "default"
    bad = tmp_path / "bad.toml"
    bad.write_text(text + '\n[report]\nstyle = "nature"\n', encoding="utf-8")
    with pytest.raises(SpecError, match="style"):
        load_spec(bad)


# -- the study engine: summaries, quantiles, categories ------------------------------------------------------------


def test_integer_scores_have_observed_quartiles_as_r_type_1() -> None:
    r = _r()
    sins = [7, 8, 9, 10, 11, 12, 13, 15]
    d1 = describe_continuous(sins, quantile_type=1)
    assert (d1["q1"], d1["median"], d1["q3"]) == (r["sins_q1_type1"], r["sins_median_type1"], r["sins_q3_type1"])
    d7 = describe_continuous(sins)
    assert (d7["q1"], d7["median"], d7["q3"]) == (r["sins_q1_type7"], r["sins_median_type7"], r["sins_q3_type7"])
    with pytest.raises(ValueError, match="quantile_type"):
        describe_continuous(sins, quantile_type=6)


def test_standard_categories_at_their_boundaries() -> None:
    sins = score_group([0, 6, 7, 12, 13, 18, None], SCORE_GROUPS["sins"]).tolist()
    assert sins[:6] == ["0-6 stable", "0-6 stable", "7-12 potentially unstable", "7-12 potentially unstable",
                        "13-18 unstable", "13-18 unstable"]
    assert pd.isna(sins[6])
    tok = score_group([8, 9, 11, 12, 15], SCORE_GROUPS["tokuhashi"]).tolist()
    assert tok == ["0-8", "9-11", "9-11", "12-15", "12-15"]


def test_level_region_per_operation() -> None:
    levels = pd.DataFrame({"operation_id": ["a", "b", "c", "c", "d", "d"],
                           "level": ["T12", "L1", "T11", "L2", "L5", "S1"]})
    got = level_region(levels, pd.Series(["a", "b", "c", "d", "e"])).tolist()
    assert got[:4] == ["thoracic only", "lumbar only", "thoracic and lumbar", "other"]
    assert pd.isna(got[4])


# -- Table 1 in the report -----------------------------------------------------------------------------------------


def _results(table1: list[dict[str, Any]], n: int = 26) -> dict[str, Any]:
    return {"schema_version": 2, "study": {"title": "t", "question": "q", "spec": {}}, "data": {},
            "settings": {"conf_level": 0.95, "small_cell_threshold": 5, "suppress_small_cells": False},
            "outcomes": [], "timepoints": [],
            "tables": {"flow": [{"step": "registry", "n_operations": n, "n_patients": n, "excluded": 0,
                                 "reason": ""}], "table1": table1}}


def _cont(variable: str, summary: str, qtype: int, **kw: Any) -> dict[str, Any]:
    base = {"variable": variable, "label": variable.upper(), "kind": "continuous", "level": "", "n": 26,
            "missing": 0, "mean": 10.04, "sd": 2.25, "median": 10.0, "q1": 8.0, "q3": 11.0, "min": 5.0,
            "max": 15.0, "count": None, "percent": None, "summary": summary, "quantile_type": qtype, "note": ""}
    return {**base, **kw}


def _cat(variable: str, level: str, count: int, n: int = 26) -> dict[str, Any]:
    return {"variable": variable, "label": "Site", "kind": "categorical", "level": level, "n": n, "missing": 0,
            "count": count, "percent": 100 * count / n, "summary": "", "quantile_type": None, "note": ""}


def test_baseline_table_one_summary_no_zero_rows_whole_percentages() -> None:
    rows = [_cont("age", "mean_sd", 7, mean=68.577, sd=11.107),
            _cont("sins", "median_iqr", 1),
            _cat("site", "breast", 4), _cat("site", "kidney", 0), _cat("site", "myeloma", 22)]
    t = baseline_table(Ctx(_results(rows), []))
    assert t is not None
    cells = [r.cells for r in t.rows]
    assert ("AGE, mean (SD)", "26", "68.6 (11.1)", "0") in cells
    assert ("SINS, median (IQR)", "26", "10 (8 to 11)", "0") in cells  # integer score: no decimals
    assert not any("Median" in c[0] for c in cells if c[0].startswith("AGE"))
    labels = [c[0] for c in cells]
    assert "Kidney" not in labels  # no all-zero rows
    assert ("Breast", "", "4 (15%)", "") in cells  # 4/26 = 15.38%: whole percentage below 100 patients
    assert ("Myeloma", "", "22 (85%)", "") in cells
    notes = " ".join(f.text for f in t.footnotes)
    assert "Kidney (Site)" in notes


def test_baseline_table_keeps_a_decimal_from_100_patients() -> None:
    rows = [_cat("site", "breast", 15, n=120), _cat("site", "myeloma", 105, n=120)]
    t = baseline_table(Ctx(_results(rows, n=120), []))
    assert t is not None
    assert ("Breast", "", "15 (12.5%)", "") in [r.cells for r in t.rows]


def test_pchc_table_is_not_labelled_with_a_value_set() -> None:
    res = _results([])
    res["outcomes"] = [{"name": "eq5d", "instrument": "eq5d3l", "label": "EQ-5D-3L index", "valueset": "Denmark"}]
    res["timepoints"] = [{"name": "baseline"}, {"name": "3m"}]
    res["tables"]["pchc"] = [{"outcome": "eq5d", "timepoint": "3m", "n_pairs": 10, "category": c, "n": k,
                              "percent": 10.0 * k} for c, k in (("better", 6), ("worse", 1), ("mixed", 1),
                                                                ("no_change", 2), ("no_problems", 0))]
    t = pchc_table(Ctx(res, []))
    assert t is not None
    text = " ".join([t.caption, *(c for r in t.rows for c in r.cells)])
    assert "Denmark" not in text
    assert "EQ-5D-3L health profile" in text
    assert "6 (60%)" in text  # whole percentages of 10 pairs


def test_demo_document_uses_one_notation(tmp_path: Path) -> None:
    from spinereg.data._synth import synthesize
    from spinereg.study._run import run_study

    spec, sha = load_spec(SPEC)
    res = run_study(spec, synthesize(20000, seed=2018), spec_sha256=sha, data_sha256="5" * 64).to_dict()
    doc = build_document(res)
    from spinereg.report import BulletList, Paragraph

    text = " ".join(b.text if isinstance(b, Paragraph) else " ".join(b.items) for s in doc.sections
                    for b in s.blocks if isinstance(b, (Paragraph, BulletList)))
    assert "p <0.001" not in text and "p < 0.001" in text
    assert "21,404 operations" in text
    assert " -0." not in text  # a true minus sign, never a hyphen
    # the spec's journal style reaches the document
    res["study"]["spec"]["report"] = {"style": "spine"}
    spine = build_document(res)
    text = " ".join(b.text if isinstance(b, Paragraph) else " ".join(b.items) for s in spine.sections
                    for b in s.blocks if isinstance(b, (Paragraph, BulletList)))
    assert "P < 0.001" in text and "P = 0.079" in text and "p = 0.079" not in text

"""Unit tests of the report layer's parts: composite number formats, vocabulary, column widths, footnote
marks, the public API and the layering rule (the report reads results.json only)."""

from __future__ import annotations

import pytest

import spinereg.report
from spinereg.report._context import Marks, suppression_of
from spinereg.report._format import (
    NA_TEXT,
    Suppression,
    fmt_count_pct,
    fmt_est_ci,
    fmt_fraction,
    fmt_level,
    fmt_mean_sd,
    hidden,
)
from spinereg.report._layout import column_widths
from spinereg.report._model import Row, Table
from spinereg.report._render import FORMATS
from spinereg.report._text import category_label, join_words, timepoint_label

ON = Suppression(True, 5)


@pytest.mark.parametrize(("level", "text"), [(0.95, "95%"), (0.9, "90%"), (0.975, "97.5%"), (0.999, "99.9%"),
                                             (None, NA_TEXT)])
def test_confidence_level(level: float | None, text: str) -> None:
    assert fmt_level(level) == text


def test_mean_sd_and_estimate_with_interval() -> None:
    assert fmt_mean_sd(0.38776923, 0.39545369, 2) == "0.39 (0.40)"
    assert fmt_mean_sd(0.771, None, 2) == f"0.77 ({NA_TEXT})"
    assert fmt_mean_sd(None, 0.1, 2) == NA_TEXT
    assert fmt_mean_sd(5.0, 1.0, 1, counts=(3,), sup=ON) == NA_TEXT
    assert fmt_est_ci(-27.96581, -42.89871, -13.03292, 1) == "\u221228.0 (\u221242.9 to \u221213.0)"
    assert fmt_est_ci(0.26923, 0.11573, 0.47787, 1, percent=True) == "26.9% (11.6% to 47.8%)"
    assert fmt_est_ci(0.5, None, None, 1) == f"0.5 ({NA_TEXT})"
    assert fmt_est_ci(0.5, 0.1, 0.9, 1, percent=True, counts=(2, 26), sup=ON) == NA_TEXT


def test_counts_with_percentages_and_fractions_under_suppression() -> None:
    assert fmt_count_pct(13, 50.0, total=26) == "13 (50%)"  # whole percentages of a total below 100
    assert fmt_count_pct(13, 50.0, total=26, sup=ON) == "13 (50%)"
    assert fmt_count_pct(13, 50.0, total=26, digits=1) == "13 (50.0%)"
    assert fmt_count_pct(125, 62.5, total=200) == "125 (62.5%)"
    assert fmt_count_pct(3, 11.538, total=26, sup=ON) == "<5"
    assert fmt_count_pct(3, 75.0, total=4, sup=ON) == "<5"
    assert fmt_count_pct(6, 75.0, total=4, sup=ON) == "6"  # the denominator is suppressed: no percentage
    assert fmt_count_pct(None, None) == NA_TEXT
    assert fmt_fraction(7, 26) == "7/26"
    assert fmt_fraction(3, 26, ON) == "<5/26"
    assert fmt_fraction(None, None) == NA_TEXT
    assert hidden((3, 26), ON) and not hidden((5, 26), ON) and not hidden((3,), Suppression(False, 5))


def test_suppression_settings_of_results() -> None:
    assert suppression_of({"settings": {"suppress_small_cells": True, "small_cell_threshold": 10}}) == \
        Suppression(True, 10)
    assert suppression_of({}) == Suppression(False, 5)
    assert suppression_of({"settings": {"suppress_small_cells": True, "small_cell_threshold": None}}) == ON


@pytest.mark.parametrize(("name", "label"), [("baseline", "Baseline"), ("3m", "3 months"), ("1y", "1 year"),
                                             ("2y", "2 years"), ("6w", "6 weeks"), ("10d", "10 days"),
                                             ("discharge_visit", "Discharge visit")])
def test_timepoint_labels(name: str, label: str) -> None:
    assert timepoint_label(name) == label


def test_category_labels_and_lists() -> None:
    assert category_label("yeom_b").startswith("Type B")
    assert category_label("no_change") == "No change"
    assert category_label("some_new_code") == "Some new code"
    assert join_words(["a"]) == "a"
    assert join_words(["a", "b", "c"], "or") == "a, b or c"


def test_footnote_marks_are_shared_by_equal_notes() -> None:
    m = Marks()
    assert [m.mark("x"), m.mark(""), m.mark("y"), m.mark("x"), m.mark(None)] == ["a", "", "b", "a", ""]
    assert [(f.mark, f.text) for f in m.footnotes()] == [("a", "X"), ("b", "Y")]
    many = Marks()
    assert [many.mark(str(i)) for i in range(28)][-3:] == ["z", "aa", "ab"]


def _table(*rows: tuple[str, ...], header: tuple[str, ...] = ("Characteristic", "n", "Value")) -> Table:
    return Table("t", "Table 1", "c", header, tuple(Row(r) for r in rows), widths=(2, 1, 1))


def _chars(text: str, bold: bool) -> float:
    return float(len(text))


def test_column_widths_fill_the_page_and_never_break_a_word() -> None:
    t = _table(("Age at operation (years)", "26", "69.1 (64.3 to 74.8)"))
    w = column_widths(t, 100.0, _chars, padding=2)
    assert sum(w) == pytest.approx(100.0)
    assert w[2] >= len("69.1 (64.3 to 74.8)") + 2  # the number stays on one line
    assert w[0] >= len("(years)") + 2
    narrow = column_widths(t, 30.0, _chars, padding=2)
    assert sum(narrow) == pytest.approx(30.0)  # too narrow for whole cells: words only, then scaled


def test_default_column_widths_and_alignment() -> None:
    t = Table("t", "Table 1", "c", ("a", "b", "c"), ())
    assert t.column_widths() == pytest.approx((0.5, 0.25, 0.25))
    assert [t.column_align(i) for i in range(3)] == ["left", "right", "right"]
    assert Row(("x", "y"), marks=("a",)).mark(1) == ""


def test_public_api_is_sorted_and_resolves() -> None:
    from spinereg.report import _build, _docx, _html, _model, _pdf, _render, _summary

    # the documented public API (docs/report.md), written out: each name and the object it must be
    expected = {"BulletList": _model.BulletList, "Document": _model.Document, "Figure": _model.Figure,
                "Footnote": _model.Footnote, "Heading": _model.Heading, "Paragraph": _model.Paragraph,
                "Row": _model.Row, "Section": _model.Section, "Table": _model.Table,
                "build_document": _build.build_document, "load_results": _build.load_results,
                "render_docx": _docx.render_docx, "render_html": _html.render_html, "render_pdf": _pdf.render_pdf,
                "render_report": _render.render_report, "summary_rows": _summary.summary_rows}
    assert spinereg.report.__all__ == sorted(expected)
    for name, obj in expected.items():
        assert getattr(spinereg.report, name) is obj, name
    star: dict[str, object] = {}
    exec("from spinereg.report import *", star)  # the star import a user writes
    assert set(star) - {"__builtins__"} == set(expected)
    assert FORMATS == ("html", "pdf", "docx")


# The report's import rule (results.json only) is tested with every layer in tests/test_public_api.py.



def test_complementary_suppression_of_a_row() -> None:
    from spinereg.report._suppress import complementary

    assert complementary([13, 3, 10, 0], ON) == {2}           # one hidden: the smallest other non-zero
    assert complementary([13, 3, 13, 0], ON) == {0}           # a tie: the first in column order
    assert complementary([13, 3, 2, 8], ON) == set()          # two hidden protect each other
    assert complementary([3, 0, 0, 0], ON) == set()           # nothing else to hide
    assert complementary([13, 3, 10, 0], Suppression(False, 5)) == set()


def test_flow_steps_merge_small_exclusions() -> None:
    from spinereg.report._suppress import flow_steps

    rows = [{"step": "registry", "n_operations": 100, "n_patients": 90},
            {"step": "procedure", "n_operations": 60, "n_patients": 55, "excluded": 40, "reason": "a"},
            {"step": "period", "n_operations": 57, "n_patients": 55, "excluded": 3, "reason": "b"},
            {"step": "age", "n_operations": 57, "n_patients": 55, "excluded": 0, "reason": "c"},
            {"step": "baseline", "n_operations": 50, "n_patients": 48, "excluded": 7, "reason": "d"}]
    steps = flow_steps(rows, ON)
    assert [s.steps for s in steps] == [("registry",), ("procedure",), ("period", "age", "baseline")]
    assert steps[-1].excluded == 10 and steps[-1].reasons == ("b", "c", "d") and steps[-1].merged
    assert len(flow_steps(rows, Suppression(False, 5))) == 5
    # patients lost count too: 55 -> 52 patients is a small cell even when 8 operations left
    lost = [*rows[:2], {"step": "period", "n_operations": 52, "n_patients": 52, "excluded": 8, "reason": "b"}]
    assert [s.steps for s in flow_steps(lost, ON)] == [("registry",), ("procedure", "period")]
    # the last step alone: merged with the one before it
    last = [*rows[:2], {"step": "baseline", "n_operations": 58, "n_patients": 55, "excluded": 2, "reason": "d"}]
    assert [s.steps for s in flow_steps(last, ON)] == [("registry",), ("procedure", "baseline")]
    # no baseline requirement: the baseline step (excluding nobody) is left out
    none = [*rows[:2], {"step": "baseline", "n_operations": 60, "n_patients": 55, "excluded": 0, "reason": "d"}]
    assert [s.steps for s in flow_steps(none, ON, require_baseline=False)] == [("registry",), ("procedure",)]
    assert len(flow_steps(none, ON, require_baseline=True)) == 3


def test_median_ci_and_reader_notes() -> None:
    from spinereg.report._format import fmt_median_ci, reader_note

    assert fmt_median_ci(7.5, None) == "7.5 to not reached"
    assert fmt_median_ci(None, None) == NA_TEXT and fmt_median_ci(1, 2) == "1.0 to 2.0"
    assert reader_note("limits are NaN from then on") == "limits are not estimable from then on"
    assert reader_note("sd nan, t inf, value 0.123456789, nanny") == \
        "sd not estimable, t not estimable, value 0.123, nanny"
    assert reader_note(None) == ""

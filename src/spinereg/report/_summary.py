"""The short terminal summary of a study's results (``spinereg demo`` prints it):
label and value rows, formatted and suppressed as in the report."""

from __future__ import annotations

from typing import Any

from spinereg.report._context import suppression_of
from spinereg.report._format import (
    NA_TEXT,
    digits_for,
    fmt_ci,
    fmt_count,
    fmt_level,
    fmt_num,
    fmt_p_text,
    fmt_proportion,
    hidden,
    pct_digits,
)
from spinereg.report._text import timepoint_label

__all__ = ["summary_rows"]


def summary_rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    """The terminal summary: (label, value) rows, formatted and suppressed as in the report.

    As in the report's change table, the means, change, CI and p-value of
    fewer than ``small_cell_threshold`` pairs are not shown when suppression
    is on; the confidence level is the study's.
    """
    sup = suppression_of(results)
    conf = results.get("settings", {}).get("conf_level")
    level = fmt_level(0.95 if conf is None else conf)
    tables = results["tables"]
    rows: list[tuple[str, str]] = []
    flow = tables["flow"]
    rows.append(("Cohort", f"{fmt_count(flow[-1]['n_patients'], sup)} patients "
                           f"(of {fmt_count(flow[0]['n_operations'], sup)} operations in the registry)"))
    instruments = {o["name"]: o for o in results["outcomes"]}
    for r in tables.get("paired_change", []):
        o = instruments[r["outcome"]]
        d = digits_for(o["instrument"])
        label = o["label"].split(" (")[0]
        n = fmt_count(r["n_pairs"], sup)
        alive = r.get("n_alive")
        if alive is not None and not sup.hides(alive - r["n_pairs"]):  # the while-alive denominator, as the report
            n += f" of {fmt_count(alive, sup)} alive"
        if hidden((r["n_pairs"],), sup):
            value = f"{NA_TEXT} (not shown: fewer than {sup.threshold} complete pairs); n = {n}"
        else:
            value = (f"{fmt_num(r['mean_before'], d)} \u2192 {fmt_num(r['mean_after'], d)}, change "
                     f"{fmt_num(r['mean_diff'], d, signed=True)} ({level} CI {fmt_ci(r['ci_low'], r['ci_high'], d)}), "
                     f"{fmt_p_text(r['p_value'])}; n = {n}")
        rows.append((f"{label}, {timepoint_label(str(r['timepoint'])).lower()}", value))
    for r in tables.get("leaks", []):
        if r["measure"] == "cement leak" and r["category"] == "any":
            x, n, dg = r["x"], r["n"], pct_digits(r["n"])
            pct = fmt_proportion(r["proportion"], dg, counts=(x, n), sup=sup)
            ci = fmt_ci(r["ci_low"], r["ci_high"], dg, percent=True, counts=(x, n), sup=sup)
            rows.append((f"Cement leak per {r['unit']}",
                         f"{fmt_count(x, sup)}/{fmt_count(n, sup)} = {pct} ({level} CI {ci})"))
    return rows

"""The report's tables, built from the tables of ``results.json``.

Each builder takes the shared :class:`~spinereg.report._context.Ctx` and
returns a numbered :class:`~spinereg.report._model.Table` (or None when the
study did not compute that table).  Every cell is a string formatted by
:mod:`spinereg.report._format`; a row's ``note`` becomes a footnote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spinereg.report._context import Ctx, Marks, number
from spinereg.report._format import (
    NA_TEXT,
    fmt_ci,
    fmt_count,
    fmt_count_pct,
    fmt_est_ci,
    fmt_fraction,
    fmt_mean_sd,
    fmt_median_ci,
    fmt_num,
    fmt_p,
    fmt_proportion,
    is_missing,
    pct_digits,
)
from spinereg.report._model import Row, Table
from spinereg.report._suppress import SECONDARY_NOTE, complementary
from spinereg.report._text import category_label, human, join_words

__all__ = [
    "COMPOSITE_PARTS",
    "QALY_PARTS",
    "Comparison",
    "alive_answered",
    "alive_withheld",
    "baseline_table",
    "change_table",
    "clustered_level_ci",
    "clustered_table",
    "compare",
    "complication_type_table",
    "composite_table",
    "flow_table",
    "follow_up_deaths_withheld",
    "follow_up_response",
    "follow_up_secondary",
    "follow_up_table",
    "leak_location_table",
    "leak_mechanism_table",
    "mixed_model_table",
    "modality_table",
    "outcome_table",
    "pchc_table",
    "rates_table",
    "responder_table",
    "responsiveness_table",
    "safety_rows",
    "safety_table",
    "survival_table",
    "symptomatic_table",
    "wilson_table",
    "withheld_counts",
]

Rec = Mapping[str, Any]


def _group(records: list[Rec], key: str) -> dict[str, list[Rec]]:
    out: dict[str, list[Rec]] = {}
    for r in records:
        out.setdefault(str(r.get(key)), []).append(r)
    return out


def _window(ctx: Ctx, name: Any) -> str:
    for t in ctx.timepoints:
        if t.get("name") == name:
            return (f"{fmt_num(t.get('window_start'), 0)} to {fmt_num(t.get('window_end'), 0)} "
                    f"({fmt_num(t.get('target'), 0)})")
    return NA_TEXT


def flow_table(ctx: Ctx) -> Table | None:
    """Cohort selection: operations and patients left after each step, and why others left."""
    rows = ctx.table_rows("flow")
    if rows is None:
        return None
    steps = ctx.flow_steps()
    marks = Marks()
    merged_note = (f"selection steps shown together (small-cell suppression): a step that excluded fewer than "
                   f"{ctx.sup.threshold} operations or patients is combined with the next one")
    body = []
    for i, st in enumerate(steps):
        labels = [category_label(x) for x in st.steps]
        label = join_words([labels[0], *(t[:1].lower() + t[1:] for t in labels[1:])])
        excluded = "" if i == 0 else NA_TEXT if st.excluded_hidden else ctx.count(st.excluded)
        mark = marks.mark(SECONDARY_NOTE) if st.excluded_hidden else ""
        body.append(Row((label, ctx.count(st.n_operations), ctx.count(st.n_patients), excluded, "; ".join(st.reasons)),
                        marks=(marks.mark(merged_note) if st.merged else "", "", "", mark)))
    return ctx.table("table-flow", "Cohort selection: operations and patients remaining after each step",
                     ("Step", "Operations", "Patients", "Operations excluded", "Reason for exclusion"), body,
                     marks=marks, align=("left", "right", "right", "right", "left"), widths=(1.3, 1, 1, 1, 3.2),
                     supplementary=True)


#: Table 1 variables left out when no patient has a value (cancer-specific: empty in other studies).
OPTIONAL_VARIABLES = frozenset({"cancer_primary_site", "sins", "tokuhashi", "tomita"})


def _all_missing(recs: list[Rec]) -> bool:
    first = recs[0]
    if first.get("kind") == "continuous":
        return not number(first.get("n"))
    return not number(first.get("n")) and not any(number(r.get("count")) for r in recs)


def _summary_kind(rec: Rec) -> str:
    """The one summary a continuous Table 1 row shows (``mean_sd`` or ``median_iqr``; results before v2.1: mean)."""
    kind = str(rec.get("summary") or "")
    return kind if kind in ("mean_sd", "median_iqr") else "mean_sd"


def baseline_table(ctx: Ctx) -> Table | None:
    """Table 1: baseline characteristics, one summary per variable (its declared type), n (%), missing counts.

    A continuous variable shows mean (SD) or median (IQR), as the study
    engine declared for it (``summary``); categories that no patient had are
    not shown (listed in a footnote); percentages are whole numbers when the
    cohort has fewer than 100 patients (:func:`pct_digits`).
    """
    rows = ctx.table_rows("table1")
    if rows is None:
        return None
    marks = Marks()
    body: list[Row] = []
    digits = pct_digits(ctx.cohort_n())
    empty: list[str] = []
    kinds: set[str] = set()
    observed = False
    for variable, recs in _group(rows, "variable").items():
        if variable.removesuffix("_group") in OPTIONAL_VARIABLES and _all_missing(recs):
            continue
        first = recs[0]
        label = str(first.get("label") or human(variable))
        n = first.get("n")
        note_marks = {marks.mark(ctx.note(r.get("note"), n)) for r in recs} - {""}
        if first.get("kind") == "continuous":
            d = ctx.digits(variable.removeprefix("baseline_")) if variable.startswith("baseline_") else 1
            kind = _summary_kind(first)
            kinds.add(kind)
            if kind == "mean_sd":
                cell = fmt_mean_sd(first.get("mean"), first.get("sd"), d, counts=(n,), sup=ctx.sup)
                what = "mean (SD)"
            else:
                q_type = number(first.get("quantile_type"))
                observed |= q_type == 1
                dq = 0 if q_type == 1 else d
                cell = fmt_est_ci(first.get("median"), first.get("q1"), first.get("q3"), dq, counts=(n,),
                                  sup=ctx.sup)
                what = "median (IQR)"
            body.append(Row((f"{label}, {what}", ctx.count(n), cell, ctx.count(first.get("missing"))),
                            marks=(",".join(sorted(note_marks)),)))
            continue
        secondary = complementary([r.get("count") for r in recs], ctx.sup)
        shown = [(i, r) for i, r in enumerate(recs)
                 if i in secondary or number(r.get("count")) != 0 or not number(r.get("n"))]
        dash = "\u2013" if variable.endswith("_group") else "-"
        empty += [f"{category_label(str(r.get('level') or '')).replace('-', dash)} ({label})"
                  for i, r in enumerate(recs) if (i, r) not in shown]
        if not shown:
            continue
        body.append(Row((label, ctx.count(n), "", ctx.count(first.get("missing"))),
                        marks=(",".join(sorted(note_marks)),)))
        for i, r in shown:
            cell = (NA_TEXT if i in secondary else
                    fmt_count_pct(r.get("count"), r.get("percent"), total=r.get("n"), digits=digits, sup=ctx.sup))
            level = category_label(str(r.get("level") or ""))
            if variable.endswith("_group"):
                level = level.replace("-", "\u2013")
            body.append(Row((level, "", cell, ""), indent=1,
                            marks=("", "", marks.mark(SECONDARY_NOTE) if i in secondary else "")))
    notes = ["Categorical variables: n (%) of the patients with a value"
             + (" (whole percentages: fewer than 100 patients)." if digits == 0 else ".")]
    if kinds:
        notes.append("Each continuous variable is summarised once, by the summary that fits its distribution: "
                     "mean (SD) for roughly symmetric measurements, median (interquartile range, IQR) for skewed, "
                     "bounded or ordinal ones (docs/report.md).")
    if observed:
        notes.append("Integer scores and counts: median and quartiles are observed values (the inverse of the "
                     "empirical distribution function, R's quantile type 1; Hyndman and Fan 1996).")
    if any(v.endswith("_group") for v in _group(rows, "variable")):
        notes.append("SINS categories as Fisher et al. 2010; revised Tokuhashi score categories as Tokuhashi et al. "
                     "2005.")
    if empty:
        notes.append(f"Categories that no patient had are not shown: {join_words(empty)}.")
    return ctx.table("table-baseline", "Baseline characteristics of the patients",
                     ("Characteristic", "n", f"Patients (N = {ctx.count(ctx.cohort_n())})", "Missing"), body,
                     marks=marks, notes=notes, widths=(3.2, 0.7, 2.0, 0.9))


FOLLOW_UP_COUNTS = ("answered", "died_before_answering", "alive_not_answered", "not_yet_due")


def follow_up_secondary(ctx: Ctx, r: Rec) -> set[str]:
    """The follow-up counts of row ``r`` hidden by complementary suppression (they add up to ``n``)."""
    return {FOLLOW_UP_COUNTS[i] for i in complementary([r.get(k) for k in FOLLOW_UP_COUNTS], ctx.sup)}


def follow_up_response(ctx: Ctx, r: Rec, secondary: set[str]) -> str:
    """The response rate among those alive as a percentage.

    Hidden when the number who answered or the number alive without an
    answer is hidden (suppressed, or withheld by complementary
    suppression): with the other count shown, the rate would give it back.
    """
    if {"answered", "alive_not_answered"} & secondary:
        return NA_TEXT
    a, m = number(r.get("answered")), number(r.get("alive_not_answered"))
    digits = pct_digits(a + m) if a is not None and m is not None else 1
    return fmt_proportion(r.get("response_rate"), digits, counts=(r.get("answered"), r.get("alive_not_answered")),
                          sup=ctx.sup)


_DEATHS_NOTE = ("withheld: with the deaths before answering shown, it would give away the number of patients who "
                "answered and then died in the window, which is below the suppression threshold")


def follow_up_deaths_withheld(ctx: Ctx, r: Rec, secondary: set[str]) -> bool:
    """Whether the deaths by the window's end are withheld by complementary suppression.

    They are the deaths before answering plus the patients who answered and
    died later in the window; the latter are not shown, and when they are
    fewer than the threshold the two shown numbers would give them back by
    subtraction.  Then the deaths by the window's end are withheld, unless
    the deaths before answering are hidden already.
    """
    if not ctx.sup.hides(r.get("answered_then_died")) or ctx.hidden(r.get("died_by_window_end")):
        return False
    return "died_before_answering" not in secondary and not ctx.hidden(r.get("died_before_answering"))


def follow_up_table(ctx: Ctx) -> Table | None:
    """Follow-up per time point: the four groups, the response among those alive, deaths by the window's end."""
    rows = ctx.table_rows("follow_up")
    if rows is None:
        return None
    marks = Marks()
    body = []
    for r in rows:
        secondary = follow_up_secondary(ctx, r)
        cells = [NA_TEXT if k in secondary else ctx.count(r.get(k)) for k in FOLLOW_UP_COUNTS]
        deaths_withheld = follow_up_deaths_withheld(ctx, r, secondary)
        body.append(Row((ctx.tp(r.get("timepoint")), _window(ctx, r.get("timepoint")), ctx.count(r.get("n")),
                         *cells, follow_up_response(ctx, r, secondary),
                         NA_TEXT if deaths_withheld else ctx.count(r.get("died_by_window_end"))),
                        marks=("", "", "", *(marks.mark(SECONDARY_NOTE) if k in secondary else ""
                                             for k in FOLLOW_UP_COUNTS), "",
                               marks.mark(_DEATHS_NOTE) if deaths_withheld else "")))
    return ctx.table("table-follow-up", "Follow-up questionnaires at each time point",
                     ("Time point", "Window, days (target)", "Patients", "Answered", "Died before answering",
                      "Alive, no answer", "Not yet due", "Response among those alive", "Deaths by the window's end"),
                     body, marks=marks,
                     notes=["Days are counted from the day of the operation. Each patient is counted once per time "
                            "point: answered (including patients who answered and died later in the window); died "
                            "before answering (died by the window's last day, or on it, without an answer); alive, "
                            "no answer (the window had closed by the extract date); not yet due (the window had not "
                            "closed by the extract date). Response among those alive: answered / (answered + alive, "
                            "no answer). Deaths by the window's end: every patient who died by the window's last day, "
                            "answered or not, as counted by the survival analysis."],
                     widths=(1.2, 1.4, 0.8, 0.8, 0.9, 0.8, 0.8, 0.9, 0.9))


def outcome_table(ctx: Ctx) -> Table | None:
    """Outcome scores at each time point (everyone who answered)."""
    rows = ctx.table_rows("outcome_summary")
    if rows is None:
        return None
    marks = Marks()
    body: list[Row] = []
    for outcome, recs in _group(rows, "outcome").items():
        d = ctx.digits(outcome)
        body.append(Row((ctx.outcome_label(outcome),), kind="group"))
        for r in recs:
            n = r.get("n")
            body.append(Row((ctx.tp(r.get("timepoint")), ctx.count(n),
                             fmt_mean_sd(r.get("mean"), r.get("sd"), d, counts=(n,), sup=ctx.sup),
                             fmt_ci(r.get("ci_low"), r.get("ci_high"), d, counts=(n,), sup=ctx.sup),
                             fmt_est_ci(r.get("median"), r.get("q1"), r.get("q3"), d, counts=(n,), sup=ctx.sup)),
                            indent=1, marks=(marks.mark(ctx.note(r.get("note"), n)),)))
    return ctx.table("table-outcomes", "Patient-reported outcomes at each time point (all patients who answered)",
                     ("Outcome and time point", "n", "Mean (SD)", f"{ctx.level} CI of the mean", "Median (IQR)"),
                     body, marks=marks, widths=(2.2, 0.6, 1.4, 1.6, 1.8))


_NORMAL_NOTE = ("Wilcoxon signed-rank test by the normal approximation with continuity correction (ties or zero "
                "differences, or 50 pairs or more); unmarked Wilcoxon p-values are exact.")


def alive_withheld(ctx: Ctx, timepoint: Any) -> bool:
    """Whether the number alive at ``timepoint`` is withheld (small-cell suppression).

    Shown beside the patients who answered, it would give away the survivors
    without an answer (alive minus answered) when that number is below the
    threshold for any outcome at the time point; the number alive is the same
    for every outcome, so it is withheld for all of them.
    """
    if not ctx.sup.on:
        return False
    for r in ctx.table_rows("paired_change") or []:
        if str(r.get("timepoint")) != str(timepoint):
            continue
        n, alive = number(r.get("n_pairs")), number(r.get("n_alive"))
        if n is not None and alive is not None and ctx.sup.hides(alive - n):
            return True
    return False


def alive_answered(ctx: Ctx, r: Rec, answered: str = "n_pairs") -> str:
    """``"9 of 13"``: the patients with the analysis's scores among those alive at the time point."""
    n, alive = r.get(answered), r.get("n_alive")
    if is_missing(alive):
        return ctx.count(n)
    if alive_withheld(ctx, r.get("timepoint")):
        return f"{ctx.count(n)} of {NA_TEXT}"
    return f"{ctx.count(n)} of {ctx.count(alive)}"


def withheld_counts(ctx: Ctx, r: Rec, parts: tuple[str, ...], total: str = "n") -> dict[str, str]:
    """The counts ``parts`` of ``r`` (adding up to the cohort) and their ``total`` (the first two), as shown.

    Complementary suppression as in the follow-up table: when exactly one part
    is below the threshold, the smallest other non-zero part is withheld too;
    the total of the first two parts is withheld when either is.
    """
    secondary = {parts[i] for i in complementary([r.get(k) for k in parts], ctx.sup)}
    out = {k: NA_TEXT if k in secondary else ctx.count(r.get(k)) for k in parts}
    hidden = secondary | {k for k in parts if ctx.hidden(r.get(k))}
    out[total] = NA_TEXT if hidden & set(parts[:2]) else ctx.count(r.get(total))
    return out


_ALIVE_NOTE = ("Answered of alive: the patients with scores at baseline and at the time point (complete pairs) among "
               "the patients alive at the time point (answered, or alive without an answer when the window closed); "
               "patients who died before answering are not part of this while-alive analysis.")


def _paired(ctx: Ctx) -> dict[tuple[str, str], Rec]:
    return {(str(r.get("outcome")), str(r.get("timepoint"))): r for r in ctx.table_rows("paired_change") or []}


def change_table(ctx: Ctx) -> Table | None:
    """Change from baseline among survivors who answered (while alive): paired t-test, Wilcoxon with Hodges-Lehmann."""
    rows = ctx.table_rows("paired_change")
    if rows is None:
        return None
    marks = Marks()
    body: list[Row] = []
    for outcome, recs in _group(rows, "outcome").items():
        d = ctx.digits(outcome)
        body.append(Row((ctx.outcome_label(outcome),), kind="group"))
        for r in recs:
            n = r.get("n_pairs")
            hide = ctx.hidden(n)
            method = str(r.get("wilcoxon_method") or "")
            wp = NA_TEXT if hide else fmt_p(r.get("wilcoxon_p_value"))
            wmark = ""
            if wp != NA_TEXT and method != "wilcoxon_exact":
                wmark = marks.mark(_NORMAL_NOTE if method == "wilcoxon_normal_cc" else
                                   f"Wilcoxon signed-rank test: {human(method.removeprefix('wilcoxon_'))}.")
            body.append(Row(
                (ctx.tp(r.get("timepoint")), alive_answered(ctx, r),
                 fmt_mean_sd(r.get("mean_before"), r.get("sd_before"), d, counts=(n,), sup=ctx.sup),
                 fmt_mean_sd(r.get("mean_after"), r.get("sd_after"), d, counts=(n,), sup=ctx.sup),
                 fmt_est_ci(r.get("mean_diff"), r.get("ci_low"), r.get("ci_high"), d, counts=(n,), sup=ctx.sup),
                 NA_TEXT if hide else fmt_p(r.get("p_value")),
                 fmt_est_ci(r.get("hl_estimate"), r.get("hl_ci_low"), r.get("hl_ci_high"), d, counts=(n,),
                            sup=ctx.sup),
                 wp),
                indent=1, marks=(marks.mark(ctx.note(r.get("note"), n)), "", "", "", "", "", "", wmark)))
    notes = ["Change is the follow-up score minus the baseline score, among the survivors who answered (a "
             "while-alive estimand)."]
    if any(not is_missing(r.get("n_alive")) for r in rows):
        notes.append(_ALIVE_NOTE)
    return ctx.table("table-change", "Change from baseline among the patients alive and with scores at both times "
                     "(complete pairs)",
                     ("Outcome and time point", "Answered of alive", "Baseline, mean (SD)", "Follow-up, mean (SD)",
                      f"Mean change ({ctx.level} CI)", "p, paired t-test", f"Hodges-Lehmann change ({ctx.level} CI)",
                      "p, Wilcoxon"), body, marks=marks, notes=notes,
                     widths=(1.7, 0.8, 1.3, 1.3, 2.0, 0.8, 2.0, 0.8))


def responder_table(ctx: Ctx) -> Table | None:
    """Responders among survivors who answered: improving by at least the MCID (or 30% for ODI), exact CI."""
    rows = ctx.table_rows("responders")
    if rows is None:
        return None
    marks = Marks()
    body: list[Row] = []
    groups: dict[tuple[str, str], list[Rec]] = {}
    for r in rows:
        groups.setdefault((str(r.get("outcome")), str(r.get("criterion") or "mcid")), []).append(r)
    for (outcome, criterion), recs in groups.items():
        d = ctx.digits(outcome)
        if criterion == "relative":
            head = f"{ctx.outcome_label(outcome)}: improvement of at least {fmt_num(recs[0].get('threshold'), 0)}%"
        else:
            head = f"{ctx.outcome_label(outcome)}: MCID {fmt_num(recs[0].get('mcid'), d)}"
        body.append(Row((head,), kind="group"))
        for r in recs:
            x, n = r.get("x"), r.get("n_pairs")
            pct = fmt_proportion(r.get("proportion"), pct_digits(n), counts=(x, n), sup=ctx.sup)
            resp = ctx.count(x) if pct == NA_TEXT else f"{ctx.count(x)} ({pct})"
            body.append(Row((ctx.tp(r.get("timepoint")), alive_answered(ctx, r), resp,
                             fmt_ci(r.get("ci_low"), r.get("ci_high"), pct_digits(n),
                                    percent=True, counts=(x, n), sup=ctx.sup)),
                            indent=1, marks=(marks.mark(ctx.note(r.get("note"), x, n)),)))
    notes = ["Responders among the complete pairs. MCID: a change of at least the minimal clinically important "
             "difference in the better direction."]
    if any(str(r.get("criterion")) == "relative" for r in rows):
        notes.append("Relative improvement: the score fell by at least that percentage of the baseline score "
                     "(Ostelo et al. 2008); a patient with a baseline score of 0 cannot improve and counts as a "
                     "non-responder.")
    if any(not is_missing(r.get("n_alive")) for r in rows):
        notes.append(_ALIVE_NOTE)
    return ctx.table("table-responders", "Responders among the patients alive and with scores at both times "
                     "(complete pairs)",
                     ("Outcome and time point", "Answered of alive", "Responders, n (%)", f"{ctx.level} CI (exact)"),
                     body, marks=marks, notes=notes, widths=(3.0, 0.9, 1.6, 1.8))


#: The counts of the composite rows that add up to the cohort (the first two make up the patients included).
COMPOSITE_PARTS = ("n_answered", "n_died", "n_missing", "n_not_due")
QALY_PARTS = ("n_alive", "n_died", "n_missing", "n_not_due")


def composite_table(ctx: Ctx) -> Table | None:
    """EQ-5D when death counts: the change with death = 0, and QALYs to the last time point."""
    comp = ctx.table_rows("composite_death0") or []
    qaly = ctx.table_rows("qaly") or []
    if not comp and not qaly:
        return None
    marks = Marks()
    body: list[Row] = []
    outcomes = list(dict.fromkeys([str(r.get("outcome")) for r in comp] + [str(r.get("outcome")) for r in qaly]))
    for outcome in outcomes:
        d = ctx.digits(outcome)
        body.append(Row((ctx.outcome_label(outcome),), kind="group"))
        for r in comp:
            if str(r.get("outcome")) != outcome:
                continue
            n = r.get("n")
            c = withheld_counts(ctx, r, COMPOSITE_PARTS)
            body.append(Row((f"Change to {ctx.tp(r.get('timepoint')).lower()}, death = 0", c["n"],
                             c["n_answered"], c["n_died"], c["n_missing"],
                             fmt_est_ci(r.get("mean_diff"), r.get("ci_low"), r.get("ci_high"), d, counts=(n,),
                                        sup=ctx.sup)),
                            indent=1, marks=(marks.mark(ctx.note(r.get("note"), n)),)))
        for r in qaly:
            if str(r.get("outcome")) != outcome:
                continue
            n = r.get("n")
            c = withheld_counts(ctx, r, QALY_PARTS)
            body.append(Row((f"QALYs, day 0 to {fmt_num(r.get('horizon_days'), 0)} (at most "
                             f"{fmt_num(r.get('max_qaly'), 2)})", c["n"], c["n_alive"], c["n_died"],
                             c["n_missing"],
                             fmt_est_ci(r.get("mean_qaly"), r.get("ci_low"), r.get("ci_high"), 2, counts=(n,),
                                        sup=ctx.sup)),
                            indent=1, marks=(marks.mark(ctx.note(r.get("note"), n)),)))
    return ctx.table("table-composite", "EQ-5D when death counts: change from baseline with death = 0, and "
                     "quality-adjusted life years (QALYs)",
                     ("Measure", "Patients", "Alive (own scores)", "Died (0 from death)", "Left out (missing)",
                      f"Mean ({ctx.level} CI)"), body, marks=marks,
                     notes=["Death = 0: a patient who died before answering at the time point has the value 0 there "
                            "(the EQ-5D value of dead); the others have their own score; patients alive without a "
                            "score are left out (complete cases). QALYs: area under each patient's EQ-5D curve (the "
                            "baseline on day 0, each time point's score on its target day, linear in between; 0 from "
                            "the day of death, reached linearly from the last score), in years of 365.25 days; "
                            "patients alive with a missing score before the last time point are left out. For QALYs "
                            "'Alive' counts the patients alive at the last time point's target day. t-based CIs."],
                     widths=(2.6, 0.8, 1.0, 1.0, 1.0, 1.8))


_PCHC = ("better", "worse", "mixed", "no_change", "no_problems")


def pchc_table(ctx: Ctx) -> Table | None:
    """Paretian classification of EQ-5D health change (Devlin et al. 2010), n (%) of complete pairs."""
    rows = ctx.table_rows("pchc")
    if not rows:
        return None
    cats = list(_PCHC) + sorted({str(r.get("category")) for r in rows} - set(_PCHC))
    marks = Marks()
    body: list[Row] = []
    for outcome, recs in _group(rows, "outcome").items():
        # the PCHC compares health profiles (the five dimensions' levels): no value set is involved
        label = str((ctx.outcomes.get(outcome) or {}).get("label") or outcome).removesuffix(" index")
        body.append(Row((f"{label} health profile",), kind="group"))
        for tp, trs in _group(recs, "timepoint").items():
            by = {str(r.get("category")): r for r in trs}
            n_pairs = trs[0].get("n_pairs")
            alive = _paired(ctx).get((outcome, tp), {}).get("n_alive")
            cells = [ctx.tp(tp), alive_answered(ctx, {"n_pairs": n_pairs, "n_alive": alive})]
            for c in cats:
                r = by.get(c)
                cells.append(NA_TEXT if r is None else
                             fmt_count_pct(r.get("n"), r.get("percent"), total=n_pairs, digits=pct_digits(n_pairs),
                                           sup=ctx.sup))
            note = "; ".join(dict.fromkeys(str(r.get("note")) for r in trs if r.get("note")))
            body.append(Row(tuple(cells), indent=1, marks=(marks.mark(ctx.note(note, n_pairs)),)))
    return ctx.table("table-pchc", "Change in EQ-5D health profile from baseline by the Paretian classification "
                     "(PCHC), n (%) of complete pairs (independent of any value set)",
                     ("Outcome and time point", "Answered of alive", *(category_label(c) for c in cats)), body,
                     marks=marks,
                     notes=["Better: better in at least one dimension and worse in none; worse: the reverse; mixed: "
                            "better in some and worse in others; no problems: the best level in every dimension at "
                            "both times."],
                     widths=(2.0, 0.7, *(1.1 for _ in cats)))


def _rate_cells(ctx: Ctx, r: Rec | None) -> tuple[str, str]:
    if r is None:
        return "", ""
    x, n = r.get("x"), r.get("n")
    return (fmt_fraction(x, n, ctx.sup),
            fmt_est_ci(r.get("proportion"), r.get("ci_low"), r.get("ci_high"), pct_digits(n),
                       percent=True, counts=(x, n),
                       sup=ctx.sup))


_MEASURES = {"cement leak": "Cement leak", "symptomatic cement leak": "Symptomatic cement leak",
             "complications": "Complications, most severe Clavien-Dindo grade"}


def rates_table(ctx: Ctx) -> Table | None:
    """Complications per patient by the most severe Clavien-Dindo grade (exact CIs); leaks have their own tables."""
    comps = ctx.table_rows("complications")
    if comps is None:
        return None
    marks = Marks()
    body: list[Row] = []
    for measure, recs in _group(list(comps), "measure").items():
        body.append(Row((_MEASURES.get(measure, category_label(measure)),), kind="group"))
        for r in recs:
            if str(r.get("unit")) != "patient":
                continue
            note = ctx.note(r.get("note"), r.get("x"), r.get("n"))
            body.append(Row((category_label(str(r.get("category"))), *_rate_cells(ctx, r)), indent=1,
                            marks=(marks.mark(note),)))
    return ctx.table("table-rates", "Complications per patient by the most severe Clavien-Dindo grade",
                     ("Measure", "Patients, n/N", f"% ({ctx.level} CI)"), body, marks=marks,
                     notes=["Exact (Clopper-Pearson) confidence intervals; Wilson score intervals in the "
                            "supplementary tables. Among all patients, each counted once under the most severe grade "
                            "(Clavien-Dindo, Dindo et al. 2004)."],
                     widths=(3.0, 1.2, 2.2))


def wilson_table(ctx: Ctx) -> Table | None:
    """Every rate with both intervals: exact (Clopper-Pearson) and Wilson score."""
    recs = [*(ctx.table_rows("leaks") or []), *(ctx.table_rows("complications") or [])]
    if not recs:
        return None
    body = []
    for r in recs:
        x, n = r.get("x"), r.get("n")
        body.append(Row((f"{category_label(str(r.get('measure')))}: {category_label(str(r.get('category')))}",
                         str(r.get("unit") or ""), fmt_fraction(x, n, ctx.sup),
                         fmt_proportion(r.get("proportion"), pct_digits(n), counts=(x, n), sup=ctx.sup),
                         fmt_ci(r.get("ci_low"), r.get("ci_high"), pct_digits(n),
                                percent=True, counts=(x, n), sup=ctx.sup),
                         fmt_ci(r.get("wilson_ci_low"), r.get("wilson_ci_high"), pct_digits(n),
                                percent=True, counts=(x, n),
                                sup=ctx.sup))))
    return ctx.table("table-wilson", "Rates with exact (Clopper-Pearson) and Wilson score confidence intervals",
                     ("Measure", "Unit", "n/N", "%", f"Exact {ctx.level} CI", f"Wilson {ctx.level} CI"), body,
                     widths=(3.2, 0.8, 0.9, 0.8, 1.6, 1.6), supplementary=True)


def survival_table(ctx: Ctx) -> Table | None:
    """Kaplan-Meier survival at fixed times and the median survival."""
    rows = ctx.table_rows("survival")
    med = ctx.table_rows("survival_median")
    if rows is None and med is None:
        return None
    m = (med or [{}])[0] if med else {}
    n_all = m.get("n", ctx.cohort_n())
    marks = Marks()
    body = []
    for r in rows or []:
        months = fmt_num(r.get("months"), 0)
        body.append(Row((f"Survival at {months} month{'' if months == '1' else 's'}", ctx.count(r.get("n_risk")),
                         fmt_est_ci(r.get("survival"), r.get("ci_low"), r.get("ci_high"), pct_digits(n_all),
                                    percent=True, counts=(n_all,), sup=ctx.sup)),
                        marks=(marks.mark(ctx.note(r.get("note"), n_all)),)))
    if med:
        median = fmt_est_ci(m.get("median_months"), m.get("ci_low"), m.get("ci_high"), 1, counts=(n_all,),
                            sup=ctx.sup)
        if median != NA_TEXT:
            median = f"{fmt_num(m.get('median_months'), 1)} ({fmt_median_ci(m.get('ci_low'), m.get('ci_high'))})"
        body.append(Row(("Median survival, months", "", median), marks=(marks.mark(ctx.note(m.get("note"), n_all)),)))
        body.append(Row(("Deaths/patients", "", fmt_fraction(m.get("events"), m.get("n"), ctx.sup))))
    return ctx.table("table-survival", "Survival after the operation (Kaplan-Meier)",
                     ("", "At risk", f"Estimate ({ctx.level} CI)"), body, marks=marks,
                     notes=[f"Survival: % with the pointwise {ctx.level} CI on the log scale; median: "
                            f"Brookmeyer-Crowley {ctx.level} CI. Patients alive were censored at the extract date."],
                     widths=(2.4, 0.8, 2.4))


def mixed_model_table(ctx: Ctx) -> Table | None:
    """Sensitivity analysis: the while-alive change by complete pairs (MCAR) and by a mixed model (MAR)."""
    rows = ctx.table_rows("mixed_model")
    if rows is None:
        return None
    cc = {(str(r.get("outcome")), str(r.get("timepoint"))): r for r in ctx.table_rows("paired_change") or []}
    marks = Marks()
    body: list[Row] = []
    for outcome, recs in _group(rows, "outcome").items():
        d = ctx.digits(outcome)
        body.append(Row((ctx.outcome_label(outcome),), kind="group"))
        for r in recs:
            c = cc.get((outcome, str(r.get("timepoint")))) or {}
            npairs = c.get("n_pairs")
            npat, nobs = r.get("n_patients"), r.get("n_observations")
            cmp = compare(ctx, outcome, c, r)
            body.append(Row(
                (ctx.tp(r.get("timepoint")), alive_answered(ctx, c) if c else NA_TEXT,
                 fmt_est_ci(c.get("mean_diff"), c.get("ci_low"), c.get("ci_high"), d, counts=(npairs,), sup=ctx.sup),
                 f"{ctx.count(npat)} ({ctx.count(nobs)})",
                 fmt_est_ci(r.get("estimate"), r.get("ci_low"), r.get("ci_high"), d, counts=(npat,), sup=ctx.sup),
                 NA_TEXT if cmp.diff is None else fmt_num(cmp.diff, d)),
                indent=1, marks=(marks.mark(ctx.note(r.get("note"), npat)),)))
    return ctx.table("table-mixed", "Sensitivity analysis: change from baseline among the patients alive at each "
                     "time point, by complete pairs and by a mixed model",
                     ("Outcome and time point", "Answered of alive", f"Complete pairs ({ctx.level} CI)",
                      "Alive patients (scores)", f"Mixed model ({ctx.level} CI)", "Difference"), body, marks=marks,
                     notes=["Both estimate the mean change among the patients alive at the time point (while "
                            "alive). Complete pairs assume that the survivors' missing answers are missing completely "
                            "at random; the mixed model (random intercept per patient, time point as a fixed effect, "
                            "REML, containment degrees of freedom), fitted for each time point on every score of the "
                            "patients alive then, assumes they are missing at random given the patient's observed "
                            "scores. Difference: mixed model minus complete pairs."],
                     widths=(1.7, 0.9, 2.0, 1.0, 2.0, 0.9))


def responsiveness_table(ctx: Ctx) -> Table | None:
    """Standardised response mean and effect size of the paired change."""
    rows = ctx.table_rows("paired_change")
    if not rows:
        return None
    body: list[Row] = []
    for outcome, recs in _group(rows, "outcome").items():
        body.append(Row((ctx.outcome_label(outcome),), kind="group"))
        for r in recs:
            n = r.get("n_pairs")
            hide = ctx.hidden(n)
            body.append(Row((ctx.tp(r.get("timepoint")), alive_answered(ctx, r),
                             NA_TEXT if hide else fmt_num(r.get("srm"), 2),
                             NA_TEXT if hide else fmt_num(r.get("effect_size"), 2)), indent=1))
    return ctx.table("table-responsiveness", "Responsiveness of the outcomes: standardised response mean (SRM) and "
                     "effect size, complete pairs",
                     ("Outcome and time point", "Answered of alive", "SRM", "Effect size"), body,
                     notes=["SRM: mean change / SD of the change (Liang et al. 1990); effect size: mean change / "
                            "baseline SD of the pairs (Kazis et al. 1989)."],
                     widths=(3.0, 0.8, 1.0, 1.0), supplementary=True)


# -- the complete-case versus mixed-model comparison (shared with the text) ----------------------------------------


@dataclass(frozen=True)
class Comparison:
    """Complete-pair and mixed-model estimates of one while-alive change, compared by their size.

    Attributes
    ----------
    diff : float or None
        Mixed-model minus complete-pair estimate; None when either is not
        available (not estimable or suppressed).
    threshold : float or None
        The difference regarded as material: half the MCID, else 0.2
        baseline SDs (a small standardised effect).
    threshold_text : str
        How the threshold was chosen (``"half the MCID"``).
    """

    diff: float | None
    threshold: float | None
    threshold_text: str


def compare(ctx: Ctx, outcome: str, cc: Rec, mm: Rec) -> Comparison:
    """Compare the complete-pair (``cc``, a paired_change record) and mixed-model (``mm``) estimates by size.

    Deliberately nothing about whether either CI excludes 0: the two analyses
    are read side by side, never chosen between by significance.
    """
    oc = ctx.outcomes.get(outcome) or {}
    threshold: float | None = None
    text = ""
    if not is_missing(oc.get("mcid")):
        threshold = float(oc["mcid"]) / 2
        text = "half the MCID"
    else:
        base = [r for r in ctx.table_rows("outcome_summary") or []
                if r.get("outcome") == outcome and r.get("timepoint") == "baseline"]
        if base and not is_missing(base[0].get("sd")) and not ctx.hidden(base[0].get("n")):
            threshold = 0.2 * float(base[0]["sd"])
            text = "0.2 baseline standard deviations"
    cc_hidden = ctx.hidden(cc.get("n_pairs"))
    mm_hidden = ctx.hidden(mm.get("n_patients"))
    est_cc, est_mm = number(cc.get("mean_diff")), number(mm.get("estimate"))
    diff = None
    if not (cc_hidden or mm_hidden or est_cc is None or est_mm is None):
        diff = est_mm - est_cc
    return Comparison(diff, threshold, text)


# -- safety ----------------------------------------------------------------------------------------------------------

_SAFETY_EVENTS = {"death_30d": "Death within 30 days", "death_90d": "Death within 90 days",
                  "new_fracture": "New vertebral fracture", "repeat_augmentation": "Repeat augmentation",
                  "repeat_augmentation_same_level": "At a level treated at the index operation",
                  "repeat_augmentation_other_level": "At other levels"}


def safety_rows(ctx: Ctx) -> dict[str, Rec]:
    """The ``safety`` table of ``results.json`` by event."""
    return {str(r.get("event")): r for r in ctx.table_rows("safety") or []}


def safety_table(ctx: Ctx) -> Table | None:
    """Deaths within 30 and 90 days, new fractures and repeat augmentation, per patient, with exact CIs."""
    rows = safety_rows(ctx)
    if not rows:
        return None
    marks = Marks()
    split = ("repeat_augmentation_same_level", "repeat_augmentation_other_level")
    # the two kinds of repeat augmentation add up to (about) the total: hide both when one is hidden
    withheld = {split[i] for i in complementary([(rows.get(k) or {}).get("x") for k in split], ctx.sup)}
    body: list[Row] = []
    for event, label in _SAFETY_EVENTS.items():
        r = rows.get(event)
        if r is None:
            continue
        indent = 1 if event in split else 0
        if event in withheld:
            body.append(Row((label, NA_TEXT, NA_TEXT), indent=indent, marks=("", marks.mark(SECONDARY_NOTE))))
            continue
        body.append(Row((label, *_rate_cells(ctx, r)), indent=indent,
                        marks=(marks.mark(ctx.note(r.get("note"), r.get("x"), r.get("n"))
                                          if not str(event).startswith("death_") else ""),)))
    return ctx.table("table-safety", "Deaths, new fractures and repeat augmentation after the index operation",
                     ("Event", "Patients, n/N", f"% ({ctx.level} CI)"), body, marks=marks,
                     notes=["Exact (Clopper-Pearson) confidence intervals. Deaths from any cause within 30 and 90 "
                            "days of the operation (the day of the operation is day 0); N: the patients who died "
                            "within that time or were followed at least that long. New fracture: a complication of "
                            "the index operation recorded as a new vertebral fracture. Repeat augmentation: a later "
                            "vertebroplasty or kyphoplasty of the same patient up to death or the extract date; "
                            "at other levels: a later operation that treated none of the index levels (or whose "
                            "levels were not recorded). A patient with several later operations can count under "
                            "both. New fractures and repeat augmentation: N is every patient."],
                     widths=(3.0, 1.2, 2.2))


_TIMING_COLS = ("intraoperative", "postoperative", "not recorded")


def complication_type_table(ctx: Ctx) -> Table | None:
    """Complications of the index operation by type (patients, exact CI) and timing (patients)."""
    rows = ctx.table_rows("complication_types")
    if rows is None:
        return None
    by = {(str(r.get("type")), str(r.get("timing"))): r for r in rows}
    types = list(dict.fromkeys(str(r.get("type")) for r in rows))
    marks = Marks()
    body: list[Row] = []
    for t in types:
        any_row = by.get((t, "any")) or {}
        if t != "any" and not number(any_row.get("x")):
            continue  # no patient had this type: no all-zero rows
        x, n = any_row.get("x"), any_row.get("n")
        timing = [(by.get((t, tm)) or {}).get("x") for tm in _TIMING_COLS]
        secondary = complementary(timing, ctx.sup)
        cells = [NA_TEXT if i in secondary else ctx.count(v) for i, v in enumerate(timing)]
        label = "Any complication" if t == "any" else category_label(t)
        pct = fmt_est_ci(any_row.get("proportion"), any_row.get("ci_low"), any_row.get("ci_high"), pct_digits(n),
                         percent=True,
                         counts=(x, n), sup=ctx.sup)
        body.append(Row((label, fmt_fraction(x, n, ctx.sup), pct, *cells), indent=0 if t == "any" else 1,
                        marks=(marks.mark(ctx.note(any_row.get("note"), x, n)), "", "",
                               *(marks.mark(SECONDARY_NOTE) if i in secondary else "" for i in range(3)))))
    return ctx.table("table-complication-types", "Complications of the index operation by type and timing",
                     ("Complication", "Patients, n/N", f"% ({ctx.level} CI)", "Intra-operative", "Post-operative",
                      "Timing not recorded"), body, marks=marks,
                     notes=["Patients with at least one complication of the type, among all patients, with exact "
                            "(Clopper-Pearson) confidence intervals; a patient with complications of two types or "
                            "timings counts under each. Timing: as recorded (during or after the operation). Types "
                            "that no patient had are not listed."],
                     widths=(2.4, 1.1, 1.9, 1.0, 1.0, 1.0))


#: Leak categories that classify the mechanism (Yeom et al. 2003); the others classify the location.
LEAK_MECHANISMS = ("yeom_b", "yeom_s", "yeom_c", "type not recorded")


def _leak_table(ctx: Ctx, mechanism: bool) -> Table | None:
    leaks = ctx.table_rows("leaks")
    if leaks is None:
        return None
    recs = [r for r in leaks if r.get("measure") == "cement leak"]
    marks = Marks()
    body: list[Row] = []
    for category, crs in _group(recs, "category").items():
        if category != "any" and (category in LEAK_MECHANISMS) != mechanism:
            continue
        by = {str(r.get("unit")): r for r in crs}
        shown = (ctx.note(r.get("note"), r.get("x"), r.get("n")) for r in crs)
        note = "; ".join(dict.fromkeys(t for t in shown if t))
        label = "Any cement leak" if category == "any" else category_label(category)
        body.append(Row((label, *_rate_cells(ctx, by.get("patient")), *_rate_cells(ctx, by.get("level"))),
                        indent=0 if category == "any" else 1, marks=(marks.mark(note),)))
    what = "mechanism (Yeom et al. 2003)" if mechanism else "location"
    note = ("Type B: through the basivertebral vein; type S: through a segmental vein; type C: through a cortical "
            "defect." if mechanism else "Where the cement went; cement reaching the lungs is also recorded as a "
                                         "complication (cement embolism).")
    return ctx.table(f"table-leak-{'mechanism' if mechanism else 'location'}",
                     f"Cement leaks by {what}, per patient and per treated level",
                     ("Leak", "Patients, n/N", f"% ({ctx.level} CI)", "Levels, n/N", f"% ({ctx.level} CI)"), body,
                     marks=marks,
                     notes=[note, "Among the patients and treated levels with post-operative imaging; a level with "
                                  "leaks of two kinds counts under both. Exact (Clopper-Pearson) confidence "
                                  "intervals, which treat levels as independent (see the clustered interval)."],
                     widths=(2.6, 1.0, 2.0, 1.0, 2.0))


def leak_mechanism_table(ctx: Ctx) -> Table | None:
    """Cement leaks by mechanism (Yeom B, S, C), per patient and per level."""
    return _leak_table(ctx, True)


def leak_location_table(ctx: Ctx) -> Table | None:
    """Cement leaks by location (intradiscal, paravertebral, epidural or foraminal, venous)."""
    return _leak_table(ctx, False)


def clustered_level_ci(ctx: Ctx, r: Rec, kind: str = "robust") -> str:
    """``p% (lo to hi)`` of the per-level leak rate with the cluster-robust or bootstrap interval."""
    x, n = r.get("x"), r.get("n_levels")
    return fmt_est_ci(r.get("proportion"), r.get(f"{kind}_ci_low"), r.get(f"{kind}_ci_high"), pct_digits(n),
                      percent=True,
                      counts=(x, n), sup=ctx.sup)


def clustered_table(ctx: Ctx) -> Table | None:
    """The per-patient leak rate beside the per-level rate with intervals that allow for clustering."""
    rows = ctx.table_rows("leak_clustered")
    if not rows:
        return None
    c = rows[0]
    pat = next((r for r in ctx.table_rows("leaks") or [] if r.get("measure") == "cement leak"
                and r.get("unit") == "patient" and r.get("category") == "any"), None)
    x, n = c.get("x"), c.get("n_levels")
    marks = Marks()
    frac = fmt_fraction(x, n, ctx.sup)
    body: list[Row] = []
    if pat is not None:
        body.append(Row(("Per patient, exact CI", *_rate_cells(ctx, pat))))
    b = c.get("bootstrap_replicates")
    boot_label = (f"Per level, patient bootstrap percentile CI ({fmt_count(b)} resamples, seed "
                  f"{fmt_num(c.get('seed'), 0).replace(',', '')})")
    body += [Row(("Per level, exact CI treating levels as independent", frac,
                  fmt_est_ci(c.get("proportion"), c.get("ci_low"), c.get("ci_high"), pct_digits(n),
                             percent=True, counts=(x, n),
                             sup=ctx.sup))),
             Row(("Per level, cluster-robust CI (primary)", frac, clustered_level_ci(ctx, c)),
                 marks=(marks.mark(ctx.note(c.get("note"), x, n)),))]
    if number(b):
        body.append(Row((boot_label, frac, clustered_level_ci(ctx, c, "boot"))))
    deff = NA_TEXT if ctx.hidden(x, n) else fmt_num(c.get("design_effect"), 2)
    npat = ctx.count(c.get("n_patients"))
    return ctx.table("table-leak-clustered", "Cement leak per patient, and per treated level with intervals that "
                     "allow for several levels per patient",
                     ("Rate and interval", "n/N", f"% ({ctx.level} CI)"), body, marks=marks,
                     notes=[f"The treated levels come from {npat} patients, and levels of the same patient are not "
                            f"independent. Cluster-robust CI: Wald interval on the logit scale with the "
                            f"cluster-robust (sandwich) variance of the proportion, patients as clusters; design "
                            f"effect (that variance over the variance for independent levels) {deff}. Bootstrap: "
                            f"patients resampled with replacement, percentile interval."],
                     widths=(3.6, 1.0, 2.2))


_SYMPTOMATIC_ROWS = (("reviewer", "Symptomatic by the reviewer's flag"),
                     ("linked", "Symptomatic by a linked complication"),
                     ("both", "Both"), ("reviewer_only", "Reviewer's flag only"),
                     ("linked_only", "Linked complication only"), ("neither", "Neither"),
                     ("agree", "Agreement (both or neither)"))
_BREAKDOWN = ("both", "reviewer_only", "linked_only", "neither", "agree")
_BREAKDOWN_NOTE = ("withheld: a count of this breakdown is below the suppression threshold, and the others would "
                   "give it back")


def symptomatic_table(ctx: Ctx) -> Table | None:
    """Symptomatic leaks among leaking patients and levels: the reviewer's flag, the complication-linked rule."""
    rows = ctx.table_rows("symptomatic_leaks")
    if not rows:
        return None
    by = {str(r.get("unit")): r for r in rows}
    units = [u for u in ("patient", "level") if u in by]
    withheld = {u for u in units if any(ctx.sup.hides(by[u].get(k)) for k in _BREAKDOWN[:4])}
    marks = Marks()
    body: list[Row] = []
    for key, label in _SYMPTOMATIC_ROWS:
        cells: list[str] = []
        cmarks: list[str] = [""]
        for u in units:
            r = by[u]
            if key in _BREAKDOWN and u in withheld:
                cells.append(NA_TEXT)
                cmarks.append(marks.mark(_BREAKDOWN_NOTE))
                continue
            k, n = r.get(key), r.get("n_leak")
            kk, nn = number(k), number(n)
            pct = 100.0 * kk / nn if kk is not None and nn else None
            cells.append(fmt_count_pct(k, pct, total=n, sup=ctx.sup))
            cmarks.append("")
        body.append(Row((label, *cells), indent=1 if key in _BREAKDOWN[:4] else 0, marks=tuple(cmarks)))
    header = ("", *(f"Leaking {'patients' if u == 'patient' else 'levels'} (N = {ctx.count(by[u].get('n_leak'))})"
                    for u in units))
    return ctx.table("table-symptomatic", "Symptomatic cement leaks: the reviewer's flag and a linked complication",
                     header, body, marks=marks,
                     notes=["Reviewer's flag: a leak recorded as symptomatic on the imaging finding. Linked "
                            "complication: a cement embolism or neurological deficit of the same operation that "
                            "occurred during it or within 30 days after it (complications carry no level, so every "
                            "leaking level of that operation counts). n (%) of the leaking patients or levels."],
                     widths=(3.0, 1.8, 1.8))


def modality_table(ctx: Ctx) -> Table | None:
    """The imaging modality of the assessed treated levels."""
    rows = ctx.table_rows("imaging_modality")
    if not rows:
        return None
    levels = [r.get("levels") for r in rows]
    secondary = complementary(levels, ctx.sup)
    marks = Marks()
    body = []
    for i, r in enumerate(rows):
        cell = NA_TEXT if i in secondary else fmt_count_pct(r.get("levels"), r.get("percent_levels"),
                                                            total=r.get("n_levels"), sup=ctx.sup)
        body.append(Row((category_label(str(r.get("modality"))).replace("Xray", "X-ray").replace("Ct", "CT")
                         .replace("Mri", "MRI"), cell, ctx.count(r.get("patients")), ctx.count(r.get("findings"))),
                        marks=("", marks.mark(SECONDARY_NOTE) if i in secondary else "")))
    n_lv = ctx.count(rows[0].get("n_levels"))
    return ctx.table("table-modality", "Imaging modality of the treated levels assessed for cement leaks",
                     ("Modality", f"Levels, n (%) of {n_lv}", "Patients", "Images (findings)"), body, marks=marks,
                     notes=["Post-operative imaging findings at a treated level of the index operation; a level "
                            "imaged with two modalities counts under both."],
                     widths=(1.6, 1.8, 1.0, 1.2))

"""``results.json`` -> one format-neutral :class:`~spinereg.report._model.Document`.

The builder decides the content and its order (STROBE/RECORD: title and
data source, methods, participants with the flow diagram, baseline table,
follow-up, outcomes, rates, survival, sensitivity analysis, provenance); the
renderers decide only the layout.  Numbers are formatted here, once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from spinereg._errors import SpineregError
from spinereg.report import _strobe as strobe
from spinereg.report import _tables as tb
from spinereg.report._context import Ctx, FigureLike, number, p_text
from spinereg.report._format import (
    MINUS,
    NA_TEXT,
    fmt_ci,
    fmt_count,
    fmt_est_ci,
    fmt_fraction,
    fmt_median_ci,
    fmt_num,
    fmt_proportion,
    is_missing,
    pct_digits,
    reader_note,
    style_of,
    use_style,
)
from spinereg.report._methods import methods_blocks
from spinereg.report._model import Block, BulletList, Document, Heading, Paragraph, Section, Table
from spinereg.report._suppress import individual_withheld, survival_withheld
from spinereg.report._text import join_words

__all__ = ["BANNER", "SUPPORTED_SCHEMA_VERSIONS", "build_document", "load_results"]

BANNER = ("SYNTHETIC DATA \u2013 simulated patients, not real people. For demonstration and testing only; "
          "not for clinical or scientific conclusions.")

SUPPORTED_SCHEMA_VERSIONS = (1, 2)

Rec = Mapping[str, Any]


def load_results(results: Mapping[str, Any] | str | Path) -> Mapping[str, Any]:
    """The content of ``results.json``: a mapping as given, or read from a path.

    Raises
    ------
    SpineregError
        The file cannot be read, is not JSON, is not a spinereg results
        file, or has a schema version this spinereg cannot report.
    """
    if isinstance(results, Mapping):
        data: Any = results
        where = "results"
    else:
        p = Path(results)
        where = str(p)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SpineregError(f"{p}: cannot read the results file: {exc.strerror}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SpineregError(f"{p}: not valid JSON: {exc}") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("tables"), Mapping) or "study" not in data:
        raise SpineregError(f"{where}: not a spinereg results file (expected the keys 'study' and 'tables'; "
                            f"write one with `spinereg study run`)")
    version = data.get("schema_version")
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        raise SpineregError(f"{where}: results schema version {version!r} is not supported by this spinereg "
                            f"(supported: {', '.join(map(str, SUPPORTED_SCHEMA_VERSIONS))})")
    return _upgrade(data) if version == 1 else data


def _upgrade(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """Version 1 results as version 2: the follow-up columns renamed, the response rate added.

    Version 1's ``died`` and ``missing`` were the patients who died before
    answering and those alive without an answer; it did not record the deaths
    of patients who answered, so ``died_by_window_end`` and
    ``answered_then_died`` are unknown (null).
    """
    rows = []
    for r in (data.get("tables") or {}).get("follow_up") or []:
        a, m = number(r.get("answered")), number(r.get("missing"))
        rows.append({"timepoint": r.get("timepoint"), "n": r.get("n"), "answered": r.get("answered"),
                     "died_before_answering": r.get("died"), "alive_not_answered": r.get("missing"),
                     "not_yet_due": r.get("not_yet_due"),
                     "response_rate": a / (a + m) if a is not None and m is not None and a + m > 0 else None,
                     "died_by_window_end": None, "answered_then_died": None})
    tables = dict(data["tables"])
    if "follow_up" in tables:
        tables["follow_up"] = rows
    return {**data, "tables": tables}


# -- results text --------------------------------------------------------------------------------------------------


def _alive_phrase(ctx: Ctx, r: Rec) -> str:
    """``"9 of 13 patients alive at 1 year answered; 13 had died"``: the while-alive denominators of a change."""
    n, alive, died = r.get("n_pairs"), r.get("n_alive"), r.get("n_died")
    when = ctx.tp(r.get("timepoint")).lower()
    if is_missing(alive):
        return f"{ctx.count(n)} complete pairs"
    if tb.alive_withheld(ctx, r.get("timepoint")):
        text = (f"{ctx.count(n)} patients alive at {when} answered (the number alive is withheld: small-cell "
                f"suppression)")
    else:
        text = f"{ctx.count(n)} of {ctx.count(alive)} patients alive at {when} answered"
    if not is_missing(died):
        text += f"; {ctx.count(died)} had died before answering"
    return text


def _change_sentence(ctx: Ctx, r: Rec) -> str:
    """The while-alive change of one outcome and time point, with its denominators (survivors who answered)."""
    outcome = str(r.get("outcome"))
    d = ctx.digits(outcome)
    n = r.get("n_pairs")
    what = f"{ctx.outcome_label(outcome)}, baseline to {ctx.tp(r.get('timepoint')).lower()}, survivors who answered"
    est = fmt_est_ci(r.get("mean_diff"), r.get("ci_low"), r.get("ci_high"), d, counts=(n,), sup=ctx.sup)
    alive = _alive_phrase(ctx, r)
    if ctx.hidden(n):
        return f"{what}: mean change not shown (fewer than {ctx.sup.threshold} complete pairs); {alive}."
    if est == NA_TEXT:
        why = reader_note(r.get("note")).removeprefix("not estimable: ")
        return f"{what}: mean change not estimable{f' ({why})' if why else ''}; {alive}."
    mean = fmt_num(r.get("mean_diff"), d)
    ci = fmt_ci(r.get("ci_low"), r.get("ci_high"), d)
    return f"{what}: mean change {mean} ({ctx.level} CI {ci}; paired t-test {p_text(r.get('p_value'))}); {alive}."


def _composite_sentences(ctx: Ctx) -> list[str]:
    """The EQ-5D composites in which death counts: the change with death = 0 at the last time point, and QALYs."""
    items = []
    comp = ctx.table_rows("composite_death0") or []
    by_outcome: dict[str, Rec] = {}
    for r in comp:
        by_outcome[str(r.get("outcome"))] = r  # the last follow-up time point
    for outcome, r in by_outcome.items():
        d = ctx.digits(outcome)
        n = r.get("n")
        est = fmt_est_ci(r.get("mean_diff"), r.get("ci_low"), r.get("ci_high"), d, counts=(n,), sup=ctx.sup)
        when = ctx.tp(r.get("timepoint")).lower()
        c = {k: "a withheld number" if v == NA_TEXT else v
             for k, v in tb.withheld_counts(ctx, r, tb.COMPOSITE_PARTS).items()}
        counts = (f"{c['n']} patients included, {c['n_answered']} alive with a score and {c['n_died']} dead; "
                  f"{c['n_missing']} alive without a score left out")
        if est == NA_TEXT:
            items.append(f"{ctx.outcome_label(outcome)}, death = 0, baseline to {when}: mean change not "
                         f"estimable or not shown ({counts}).")
        else:
            items.append(f"{ctx.outcome_label(outcome)}, death = 0, baseline to {when}: mean change "
                         f"{fmt_num(r.get('mean_diff'), d)} ({ctx.level} CI "
                         f"{fmt_ci(r.get('ci_low'), r.get('ci_high'), d)}; {counts}).")
    for r in ctx.table_rows("qaly") or []:
        n = r.get("n")
        est = fmt_est_ci(r.get("mean_qaly"), r.get("ci_low"), r.get("ci_high"), 2, counts=(n,), sup=ctx.sup)
        horizon = fmt_num(r.get("horizon_days"), 0)
        q = {k: "a withheld number" if v == NA_TEXT else v
             for k, v in tb.withheld_counts(ctx, r, tb.QALY_PARTS).items()}
        counts = (f"{q['n']} patients included, {q['n_alive']} alive at day {horizon} and {q['n_died']} dead by "
                  f"then; {q['n_missing']} left out for a missing score")
        label = ctx.outcome_label(str(r.get("outcome")))
        if est == NA_TEXT:
            items.append(f"Quality-adjusted life years from the operation to day {horizon} ({label}, 0 from death): "
                         f"not estimable or not shown ({counts}).")
        else:
            items.append(f"Quality-adjusted life years from the operation to day {horizon} ({label}, 0 from death): "
                         f"mean {fmt_num(r.get('mean_qaly'), 2)} of at most {fmt_num(r.get('max_qaly'), 2)} "
                         f"({ctx.level} CI {fmt_ci(r.get('ci_low'), r.get('ci_high'), 2)}; {counts}).")
    return items


def _rate_phrase(ctx: Ctx, r: Rec | None, unit: str) -> str:
    if r is None:
        return ""
    x, n = r.get("x"), r.get("n")
    pct = fmt_proportion(r.get("proportion"), pct_digits(n), counts=(x, n), sup=ctx.sup)
    ci = fmt_ci(r.get("ci_low"), r.get("ci_high"), pct_digits(n), percent=True, counts=(x, n), sup=ctx.sup)
    detail = "" if pct == NA_TEXT else f" ({pct}, {ctx.level} CI {ci})"
    return f"{fmt_fraction(x, n, ctx.sup)} {unit}{detail}"


def _first(rows: Sequence[Rec] | None) -> Rec | None:
    return rows[0] if rows else None


def _clustered_phrase(ctx: Ctx, c: Rec) -> str:
    """``x/n treated levels (p%, 95% CI lo to hi allowing for clustering within patients)``."""
    x, n = c.get("x"), c.get("n_levels")
    pct = fmt_proportion(c.get("proportion"), pct_digits(n), counts=(x, n), sup=ctx.sup)
    ci = fmt_ci(c.get("robust_ci_low"), c.get("robust_ci_high"), pct_digits(n), percent=True, counts=(x, n),
                sup=ctx.sup)
    if pct == NA_TEXT:
        return f"{fmt_fraction(x, n, ctx.sup)} treated levels"
    ci_text = (f"{ctx.level} CI not estimable" if ci == NA_TEXT
               else f"{ctx.level} CI {ci}, allowing for several levels per patient")
    return f"{fmt_fraction(x, n, ctx.sup)} treated levels ({pct}, {ci_text})"


def _mortality_sentence(ctx: Ctx) -> str:
    """Deaths within 30 and 90 days, with the exact CIs and the patients left out for short follow-up."""
    rows = tb.safety_rows(ctx)
    parts = []
    for event, days in (("death_30d", "30"), ("death_90d", "90")):
        r = rows.get(event)
        if r is not None:
            parts.append(f"within {days} days {_rate_phrase(ctx, r, 'patients')}")
    if not parts:
        return ""
    return f"Deaths from any cause after the operation: {join_words(parts, 'and')}."


def _safety_text(ctx: Ctx, tables: Sequence[Table | None]) -> str:
    rows = tb.safety_rows(ctx)
    texts = []
    deaths = _mortality_sentence(ctx)
    if deaths:
        texts.append(deaths)
        total = number(ctx.cohort_n())
        left = [(d, total - n) for d, e in (("30", "death_30d"), ("90", "death_90d"))
                if total is not None and (n := number((rows.get(e) or {}).get("n"))) is not None and total > n]
        if left:
            texts.append("The denominators leave out the patients alive and followed for less than that long: "
                         + join_words([f"{ctx.count(k)} for {d} days" for d, k in left], "and") + ".")
    nf, rep = rows.get("new_fracture"), rows.get("repeat_augmentation")
    if nf is not None:
        texts.append(f"A new vertebral fracture was recorded as a complication in {_rate_phrase(ctx, nf, 'patients')}.")
    if rep is not None:
        texts.append(f"A repeat vertebroplasty or kyphoplasty followed in {_rate_phrase(ctx, rep, 'patients')}.")
    refs = [t.label for t in tables if t is not None]
    if refs:
        texts.append(f"Details in {join_words(refs)}.")
    return " ".join(texts)


def _leak_text(ctx: Ctx, tables: Sequence[Table | None]) -> str:
    texts = []
    c = _first(ctx.table_rows("leak_clustered"))
    if c is not None and number(c.get("n_levels")):
        texts.append(f"Cement leaked in {_clustered_phrase(ctx, c)}; the {ctx.count(c.get('n_levels'))} levels "
                     f"assessed came from {ctx.count(c.get('n_patients'))} patients.")
    sym = {str(r.get("unit")): r for r in ctx.table_rows("symptomatic_leaks") or []}
    p = sym.get("patient")
    if p is not None and number(p.get("n_leak")):
        breakdown = [p.get(k) for k in ("both", "reviewer_only", "linked_only", "neither")]
        agree = ("the agreement is withheld (small-cell suppression)" if any(ctx.sup.hides(k) for k in breakdown)
                 else f"the two agreed for {ctx.count(p.get('agree'))} of them")
        texts.append(f"Of the {ctx.count(p.get('n_leak'))} patients with a leak, {ctx.count(p.get('reviewer'))} had a "
                     f"leak flagged symptomatic by the reviewer and {ctx.count(p.get('linked'))} a complication "
                     f"linked to the leak (see Methods); {agree}.")
    refs = [t.label for t in tables if t is not None]
    if refs:
        texts.append(f"Imaging, leak mechanism and location, the clustered interval and symptomatic leaks are given "
                     f"in {join_words(refs)}.")
    return " ".join(texts)


def _find(rows: Sequence[Rec] | None, **key: Any) -> Rec | None:
    for r in rows or []:
        if all(r.get(k) == v for k, v in key.items()):
            return r
    return None


def _key_results(ctx: Ctx) -> list[str]:
    items = []
    flow = ctx.table_rows("flow") or []
    if flow:
        first, last = flow[0], flow[-1]
        items.append(f"{ctx.count(last.get('n_patients'))} patients ({ctx.count(last.get('n_operations'))} "
                     f"operations) were included from {ctx.count(first.get('n_operations'))} operations of "
                     f"{ctx.count(first.get('n_patients'))} patients in the data.")
    for r in ctx.table_rows("paired_change") or []:
        items.append(_change_sentence(ctx, r))
    items += _composite_sentences(ctx)
    leaks = ctx.table_rows("leaks")
    if leaks:
        pat = _find(leaks, measure="cement leak", unit="patient", category="any")
        lev = _find(leaks, measure="cement leak", unit="level", category="any")
        sym = _find(leaks, measure="symptomatic cement leak", unit="patient", category="any")
        clustered = _first(ctx.table_rows("leak_clustered"))
        lev_text = (_clustered_phrase(ctx, clustered) if clustered is not None
                    else _rate_phrase(ctx, lev, "treated levels"))
        parts = [p for p in (_rate_phrase(ctx, pat, "patients"), lev_text) if p]
        if not any(number((r or {}).get("n")) for r in (pat, lev)) and (pat or lev):
            items.append("Cement leaks were not assessed: no patient had post-operative imaging of a treated level.")
        elif parts:
            text = f"Cement leaked in {join_words(parts)}"
            if sym is not None:
                text += f"; symptomatic leaks in {_rate_phrase(ctx, sym, 'patients')}"
            items.append(text + ".")
    comp = _find(ctx.table_rows("complications"), category="any", unit="patient")
    if comp is not None:
        items.append(f"Complications in {_rate_phrase(ctx, comp, 'patients')}.")
    deaths = _mortality_sentence(ctx)
    if deaths:
        items.append(deaths)
    med = ctx.table_rows("survival_median")
    if med:
        m = med[0]
        est = fmt_est_ci(m.get("median_months"), m.get("ci_low"), m.get("ci_high"), 1, counts=(m.get("n"),),
                         sup=ctx.sup)
        if est == NA_TEXT:
            died = fmt_fraction(m.get("events"), m.get("n"), ctx.sup)
            items.append(f"Median survival not estimable or not shown; {died} patients died during follow-up.")
        else:
            ci = fmt_median_ci(m.get("ci_low"), m.get("ci_high"))
            ci = f"{ctx.level} CI not estimable" if ci == NA_TEXT else f"{ctx.level} CI {ci}"
            items.append(f"Median survival {fmt_num(m.get('median_months'), 1)} months ({ci}); "
                         f"{fmt_fraction(m.get('events'), m.get('n'), ctx.sup)} patients died during follow-up.")
    return items


def _follow_up_text(ctx: Ctx, table: Table | None) -> str:
    rows = [r for r in ctx.table_rows("follow_up") or [] if r.get("timepoint") != "baseline"]
    parts, rates, deaths = [], [], []
    withheld = False
    for r in rows:
        secondary = tb.follow_up_secondary(ctx, r)
        withheld |= bool(secondary)
        c = {k: "a withheld number" if k in secondary else ctx.count(r.get(k)) for k in tb.FOLLOW_UP_COUNTS}
        when = ctx.tp(r.get("timepoint")).lower()
        s = (f"at {when}, {c['answered']} answered, {c['died_before_answering']} had died before answering and "
             f"{c['alive_not_answered']} were alive without an answer")
        if not is_missing(r.get("not_yet_due")) and r.get("not_yet_due"):
            s += f" ({c['not_yet_due']} not yet due)"
        parts.append(s)
        rate = tb.follow_up_response(ctx, r, secondary)
        if rate != NA_TEXT:
            rates.append(f"{rate} at {when}")
        if tb.follow_up_deaths_withheld(ctx, r, secondary):
            withheld = True
            deaths.append(f"a withheld number at {when}")
        elif not is_missing(r.get("died_by_window_end")):
            deaths.append(f"{ctx.count(r.get('died_by_window_end'))} at {when}")
    if not parts:
        return ""
    ref = f" ({table.label})" if table else ""
    n = rows[0].get("n")
    text = f"Of the {ctx.count(n)} patients, {join_words(parts, 'and')}{ref}."
    if rates:
        text += f" Of the patients alive and due, {join_words(rates, 'and')} answered."
    if deaths:
        text += (f" Deaths by the end of each window, counting also the patients who answered and died later in the "
                 f"window, as the survival analysis does: {join_words(deaths, 'and')}.")
    if withheld:
        text += (" A withheld number is hidden so that a count below "
                 f"{ctx.sup.threshold} cannot be calculated back from the other numbers shown.")
    return text


def _shown(x: float, digits: int) -> Decimal:
    """``x`` as the report shows it, as a number."""
    return Decimal(fmt_num(x, digits).replace(MINUS, "-"))


def _sensitivity_text(ctx: Ctx) -> tuple[list[str], str]:
    """One sentence per outcome and time point, and an overall sentence.

    The complete-pair and mixed-model analyses estimate the same while-alive
    change under two assumptions about the survivors' missing answers.  They
    are compared only by the size of their difference; the text never prefers
    one, and never reads either by whether its CI excludes 0.
    """
    cc = {(str(r.get("outcome")), str(r.get("timepoint"))): r for r in ctx.table_rows("paired_change") or []}
    items = []
    material = compared = not_compared = 0
    for r in ctx.table_rows("mixed_model") or []:
        outcome = str(r.get("outcome"))
        c = cc.get((outcome, str(r.get("timepoint")))) or {}
        d = ctx.digits(outcome)
        cmp = tb.compare(ctx, outcome, c, r)
        what = f"{ctx.outcome_label(outcome)} at {ctx.tp(r.get('timepoint')).lower()}"
        if cmp.diff is None:
            why = (reader_note(ctx.note(r.get("note"), r.get("n_patients")))
                   or reader_note(ctx.note(c.get("note"), c.get("n_pairs")))
                   or "an estimate is not estimable or not shown")
            items.append(f"{what}: the two analyses cannot be compared ({why}).")
            not_compared += 1
            continue
        compared += 1
        mm = fmt_est_ci(r.get("estimate"), r.get("ci_low"), r.get("ci_high"), d)
        cct = fmt_est_ci(c.get("mean_diff"), c.get("ci_low"), c.get("ci_high"), d)
        # compare the numbers as shown (one more decimal when they round alike), so that the sentence never
        # contradicts its own figures
        dd = d + 1 if cmp.threshold is not None and _shown(abs(cmp.diff), d) == _shown(cmp.threshold, d) else d
        s = (f"{what}: complete pairs {cct}, mixed model {mm} ({ctx.count(r.get('n_patients'))} patients alive); "
             f"they differ by {fmt_num(abs(cmp.diff), dd)}")
        if cmp.threshold is not None:
            big = _shown(abs(cmp.diff), dd) >= _shown(cmp.threshold, dd)
            material += big
            s += f", {'at least' if big else 'less than'} {cmp.threshold_text} ({fmt_num(cmp.threshold, dd)})"
        items.append(s + ".")
    if not compared:
        summary = "The mixed model and the complete-pair analysis could not be compared."
    else:
        summary = (f"In {fmt_count(material)} of {fmt_count(compared)} comparisons the two estimates differ by a "
                   f"material amount" + (f" ({fmt_count(not_compared)} could not be compared)" if not_compared else "")
                   + ". Both describe the patients alive at each time point; neither estimates scores for the dead. "
                   "They differ only in how the survivors' missing answers are treated: missing completely at random "
                   "(complete pairs) or missing at random given the patient's observed scores (mixed model). "
                   "Neither assumption can be checked from the data, so the two are read together, with their "
                   "intervals, rather than one preferred.")
        if material:
            summary += (" Where they differ materially, survivors who did not answer may have fared differently from "
                        "those who did.")
    if any(r.get("population") != "alive" for r in ctx.table_rows("mixed_model") or []):
        summary += (" Note: this results file was written before the mixed model was restricted to the patients "
                    "alive at each time point. Its mixed model used every patient's scores and so, under missing at "
                    "random, estimates the change had no patient died, not the while-alive change; read it as such.")
    return items, summary


# -- the document --------------------------------------------------------------------------------------------------


def _add(blocks: list[Block], *items: Block | None) -> None:
    blocks.extend(b for b in items if b is not None)


def _results(ctx: Ctx) -> list[Block]:
    b: list[Block] = [Heading("Participants")]
    flow_fig = ctx.figure("flow")
    n = ctx.cohort_n()
    flow = ctx.flow_steps()
    if flow:
        steps = "; ".join(f"{'a withheld number' if st.excluded_hidden else ctx.count(st.excluded)} "
                          f"{' or '.join(r for r in st.reasons if r) or join_words(st.steps)}" for st in flow[1:])
        ref = f" ({flow_fig.label})" if flow_fig else ""
        text = f"{ctx.count(n)} patients were included{ref}."
        if steps:
            text += f" Operations excluded, step by step: {steps}."
        if any(st.merged for st in flow):
            text += (f" Steps that excluded fewer than {ctx.sup.threshold} operations or patients are combined with "
                     f"the next step (small-cell suppression).")
        b.append(Paragraph(text))
    _add(b, flow_fig)
    t1 = tb.baseline_table(ctx)
    if t1:
        b += [Heading("Baseline characteristics"), Paragraph(f"{t1.label} describes the patients at the operation."),
              t1]
    b += strobe.comparison_blocks(ctx)
    fu = tb.follow_up_table(ctx)
    if fu:
        b.append(Heading("Follow-up"))
        text = _follow_up_text(ctx, fu)
        _add(b, Paragraph(text) if text else None, fu)
        b += strobe.follow_up_time_blocks(ctx)
    out = tb.outcome_table(ctx)
    ch = tb.change_table(ctx)
    if out or ch:
        b.append(Heading("Patient-reported outcomes"))
        refs = join_words([t.label for t in (out, ch) if t])
        b.append(Paragraph(f"Scores at each time point and the change from baseline are given in {refs}."))
        _add(b, out)
        for name in ctx.outcomes:
            _add(b, ctx.figure(f"trajectory_{name}"))
        _add(b, ch)
        for name in ctx.outcomes:
            fig = ctx.figure(f"individual_{name}")
            small = individual_withheld(ctx.r, name, ctx.sup)
            if fig is None and small:
                b.append(Paragraph(
                    f"The individual {ctx.outcome_label(name)} trajectories are not shown: fewer than "
                    f"{ctx.sup.threshold} patients have a score at {join_words([ctx.tp(t).lower() for t in small])}, "
                    f"and their values must not be drawn (small-cell suppression)."))
            _add(b, fig)
    resp = tb.responder_table(ctx)
    pchc = tb.pchc_table(ctx)
    if resp or pchc:
        b.append(Heading("Responders"))
        _add(b, resp, pchc)
    comp = tb.composite_table(ctx)
    if comp:
        b += [Heading("EQ-5D when death counts"),
              Paragraph(f"{comp.label} gives the composite estimands in which death counts (see Methods, "
                        f"Estimands): " + " ".join(_composite_sentences(ctx))), comp]
    safety = tb.safety_table(ctx)
    types = tb.complication_type_table(ctx)
    rates = tb.rates_table(ctx)
    if safety or types or rates:
        b.append(Heading("Safety"))
        text = _safety_text(ctx, (safety, types, rates))
        _add(b, Paragraph(text) if text else None, safety, types, rates)
    leak_tables = (tb.modality_table(ctx), tb.leak_mechanism_table(ctx), tb.leak_location_table(ctx),
                   tb.clustered_table(ctx), tb.symptomatic_table(ctx))
    if any(leak_tables):
        b.append(Heading("Cement leaks"))
        text = _leak_text(ctx, leak_tables)
        _add(b, Paragraph(text) if text else None, *leak_tables, ctx.figure("leak_types"))
    surv = tb.survival_table(ctx)
    surv_fig = ctx.figure("survival")
    surv_withheld = surv_fig is None and survival_withheld(ctx.r, ctx.sup)
    if surv or surv_fig:
        b.append(Heading("Survival"))
        _add(b, surv, surv_fig)
        if surv_withheld:
            b.append(Paragraph(f"The survival curve is not shown: it describes fewer than {ctx.sup.threshold} "
                               f"patients (small-cell suppression)."))
    mm = tb.mixed_model_table(ctx)
    if mm:
        items, summary = _sensitivity_text(ctx)
        b += [Heading("Sensitivity analysis: missing answers of survivors"), mm, BulletList(tuple(items)),
              Paragraph(summary)]
    rest = [f for f in (ctx.figure(k) for k in ctx.unused_figures()) if f is not None]
    if rest:
        b.append(Heading("Other figures"))
        b += rest
    return b


def _provenance(results: Mapping[str, Any], ctx: Ctx) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    version = str(results.get("spinereg_version") or "unknown")
    spec_sha = str(ctx.study.get("spec_sha256") or "unknown")
    data_sha = str(ctx.data.get("sha256") or "unknown")
    when = str(results.get("generated_at") or "unknown")
    items = (("spinereg version", version), ("Results generated", when), ("Study spec SHA-256", spec_sha),
             ("Data SHA-256", data_sha), ("Results schema version", str(results.get("schema_version"))))
    footer = (f"spinereg {version} \u00b7 results generated {when}", f"spec SHA-256 {spec_sha}",
              f"data SHA-256 {data_sha}")
    return items, footer


def build_document(results: Mapping[str, Any], figures: Sequence[FigureLike] = ()) -> Document:
    """The report of ``results`` as a format-neutral document, in the spec's journal style (see :func:`_build`)."""
    spec = (results.get("study") or {}).get("spec") or {}
    style = (spec.get("report") or {}).get("style") if isinstance(spec, Mapping) else None
    with use_style(style_of(style)):
        return _build(results, figures)


def _build(results: Mapping[str, Any], figures: Sequence[FigureLike] = ()) -> Document:
    """The report of ``results`` as a format-neutral document.

    Parameters
    ----------
    results : Mapping
        The content of ``results.json`` (:func:`load_results`).
    figures : sequence of FigureFile
        The figures drawn by ``make_figures``; each is placed by its ``id``
        (unknown ids go to the end of the results).

    Returns
    -------
    Document
        Sections: key results, methods, results, supplementary tables,
        provenance.  Tables and figures are numbered in reading order.
    """
    ctx = Ctx(results, figures)
    title = str(ctx.study.get("title") or "Study report")
    question = str(ctx.study.get("question") or "")
    d = ctx.data
    period = (f", operations {d['period_start']} to {d['period_end']}" if d.get("period_start")
              and d.get("period_end") else "")
    byline = (f"Data: {d.get('name') or 'unknown source'}{period}; extract date {d.get('extract_date') or 'unknown'}. "
              f"Report generated by spinereg from results.json; every number comes from that file.")
    sections = [strobe.abstract_section(ctx),
                Section("key-results", "Key results", (BulletList(tuple(_key_results(ctx))),)),
                Section("methods", "Methods", (*methods_blocks(ctx), *strobe.methods_extra_blocks(ctx))),
                Section("results", "Results", tuple(_results(ctx)))]
    supp: list[Block] = []
    for t in (tb.flow_table(ctx), tb.wilson_table(ctx), tb.responsiveness_table(ctx)):
        _add(supp, t)
    if supp:
        sections.append(Section("supplementary", "Supplementary tables", tuple(supp)))
    sections += strobe.declarations_sections(ctx)
    items, footer = _provenance(results, ctx)
    sections.append(Section("provenance", "Provenance", (
        Paragraph("The report can be reproduced from the study spec and the data identified by these checksums."),
        BulletList(tuple(f"{k}: {v}" for k, v in items)))))
    doc = Document(title=strobe.design_title(title), subtitle=question, byline=byline,
                   banner=BANNER if d.get("synthetic") else "", sections=tuple(sections), provenance=items,
                   footer=footer)
    return strobe.number_citations(doc, ctx)


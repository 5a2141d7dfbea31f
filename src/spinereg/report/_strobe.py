"""STROBE and RECORD items the rest of the report does not carry.

* the design in the title (STROBE 1a) and a structured abstract (1b);
* setting: centres and period (5); the code lists of the cohort definition
  (RECORD 6.2, 7.1); study size (10) and bias (9);
* included vs excluded, and responders vs non-responders, at baseline, with
  standardised differences (13-14; Austin 2009);
* follow-up time: median by reverse Kaplan-Meier and the answer days (14c);
* declarations for the authors to complete (ethics and data permission,
  funding, conflicts: STROBE 22, RECORD 12); software and value-set versions;
* numbered references: every author-year citation of the document becomes a
  number (the authors' names stay), listed once in order of first citation;
* the STROBE/RECORD checklist, generated from the finished document so that
  every location it names exists (:func:`checklist_rows`).

Every number comes from ``results.json``; nothing is recomputed.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from spinereg.report._context import Ctx, number
from spinereg.report._format import (
    NA_TEXT,
    fmt_ci,
    fmt_count_pct,
    fmt_est_ci,
    fmt_fraction,
    fmt_mean_sd,
    fmt_median_ci,
    fmt_num,
    fmt_proportion,
    pct_digits,
)
from spinereg.report._model import (
    Block,
    BulletList,
    Document,
    Figure,
    Footnote,
    Heading,
    Paragraph,
    Row,
    Section,
    Table,
)
from spinereg.report._text import category_label, join_words

__all__ = [
    "CITATIONS",
    "abstract_section",
    "checklist_csv",
    "checklist_rows",
    "comparison_blocks",
    "declarations_sections",
    "design_title",
    "follow_up_time_blocks",
    "methods_extra_blocks",
    "number_citations",
    "unnumbered_citations",
]

DESIGN = "a registry-based cohort study"

#: Author-year citations the report's text uses, with the full reference (Vancouver style).
CITATIONS: dict[str, str] = {
    "Bauer 1972": "Bauer DF. Constructing confidence sets using rank statistics. J Am Stat Assoc "
                  "1972;67(339):687-90.",
    "Devlin et al. 2010": "Devlin NJ, Parkin D, Browne J. Patient-reported outcome measures in the NHS: new methods "
                          "for analysing and reporting EQ-5D data. Health Econ 2010;19(8):886-905.",
    "Dindo et al. 2004": "Dindo D, Demartines N, Clavien PA. Classification of surgical complications: a new proposal "
                         "with evaluation in a cohort of 6336 patients and results of a survey. Ann Surg "
                         "2004;240(2):205-13.",
    "Fairbank and Pynsent 2000": "Fairbank JC, Pynsent PB. The Oswestry Disability Index. Spine "
                                 "2000;25(22):2940-52.",
    "Fisher et al. 2010": "Fisher CG, DiPaola CP, Ryken TC, et al. A novel classification system for spinal "
                          "instability in neoplastic disease: an evidence-based approach and expert consensus from "
                          "the Spine Oncology Study Group. Spine 2010;35(22):E1221-9.",
    "Hyndman and Fan 1996": "Hyndman RJ, Fan Y. Sample quantiles in statistical packages. Am Stat "
                            "1996;50(4):361-5.",
    "Kazis et al. 1989": "Kazis LE, Anderson JJ, Meenan RF. Effect sizes for interpreting changes in health status. "
                         "Med Care 1989;27(3 Suppl):S178-89.",
    "Liang et al. 1990": "Liang MH, Fossel AH, Larson MG. Comparisons of five health status instruments for "
                         "orthopedic evaluation. Med Care 1990;28(7):632-42.",
    "Tokuhashi et al. 2005": "Tokuhashi Y, Matsuzaki H, Oda H, Oshima M, Ryu J. A revised scoring system for "
                             "preoperative evaluation of metastatic spine tumor prognosis. Spine "
                             "2005;30(19):2186-91.",
    "Yeom et al. 2003": "Yeom JS, Kim WJ, Choy WS, Lee CK, Chang BS, Kang JW. Leakage of cement in percutaneous "
                        "transpedicular vertebroplasty for painful osteoporotic compression fractures. J Bone Joint "
                        "Surg Br 2003;85(1):83-9.",
    "Austin 2009": "Austin PC. Balance diagnostics for comparing the distribution of baseline covariates between "
                   "treatment groups in propensity-score matched samples. Stat Med 2009;28(25):3083-107.",
    "Schemper and Smith 1996": "Schemper M, Smith TL. A note on quantifying follow-up in studies of failure time. "
                               "Control Clin Trials 1996;17(4):343-6.",
    "ICH 2019": "International Council for Harmonisation of Technical Requirements for Pharmaceuticals for Human "
                "Use. ICH E9(R1) addendum on estimands and sensitivity analysis in clinical trials to the guideline "
                "on statistical principles for clinical trials. Step 4 version, 20 November 2019.",
    "Ostelo et al. 2008": "Ostelo RW, Deyo RA, Stratford P, et al. Interpreting change scores for pain and "
                          "functional status in low back pain: towards international consensus regarding minimal "
                          "important change. Spine 2008;33(1):90-4.",
    "von Elm et al. 2007": "von Elm E, Altman DG, Egger M, Pocock SJ, Gøtzsche PC, Vandenbroucke JP. The "
                           "Strengthening the Reporting of Observational Studies in Epidemiology (STROBE) statement: "
                           "guidelines for reporting observational studies. Lancet 2007;370(9596):1453-7.",
    "Benchimol et al. 2015": "Benchimol EI, Smeeth L, Guttmann A, et al. The REporting of studies Conducted using "
                             "Observational Routinely-collected health Data (RECORD) statement. PLoS Med "
                             "2015;12(10):e1001885.",
}

#: An author-year citation as the report writes it ("Yeom et al. 2003", "Fairbank and Pynsent 2000", "Bauer 1972").
AUTHOR_YEAR = re.compile(
    r"\b(?:von )?[A-Z][A-Za-z\u00c0-\u017f'-]+(?: et al\.| and [A-Z][A-Za-z'-]+)? (?:19|20)\d{2}\b")

_SOURCE_LABELS = {
    "procedure_categories": ("Procedure category", "operations.procedure_category",
                             "the registry's vocabulary (docs/data-dictionary.md)"),
    "procedure_codes": ("Procedure code (prefix)", "operations.procedure_codes",
                        "NOMESCO Classification of Surgical Procedures (SKS)"),
    "indications": ("Indication", "operations.indication", "the registry's vocabulary (docs/data-dictionary.md)"),
    "diagnosis_codes": ("Diagnosis code (prefix)", "operations.diagnosis_codes",
                        "WHO ICD-10 (SKS without the D prefix)"),
    "exclude_diagnosis_codes": ("Excluded diagnosis code (prefix)", "operations.diagnosis_codes",
                                "WHO ICD-10 (SKS without the D prefix)"),
}

Rec = Mapping[str, Any]


# -- title and abstract ----------------------------------------------------------------------------------------------


def design_title(title: str) -> str:
    """The title with the design (STROBE 1a), unless the title names it already."""
    if re.search(r"\bcohort\b|\bregistry-based\b", title, re.IGNORECASE):
        return title
    return f"{title}: {DESIGN}"


def _rows(ctx: Ctx, name: str) -> list[Rec]:
    return list(ctx.table_rows(name) or [])


def _period_text(ctx: Ctx) -> str:
    s = (_rows(ctx, "setting") or [{}])[0]
    first, last = s.get("first_operation"), s.get("last_operation")
    period = ((ctx.spec.get("cohort") or {}).get("period") or {})
    if period.get("start") and period.get("end"):
        text = f"operated from {period['start']} to {period['end']}"
    elif first and last:
        text = f"operated from {first} to {last}"
    else:
        return ""
    return text


def _centres(ctx: Ctx) -> str:
    s = (_rows(ctx, "setting") or [{}])[0]
    h, d = number(s.get("n_hospitals")), number(s.get("n_departments"))
    if h is None:
        return ""
    text = f"{ctx.count(h)} hospital{'s' * (h != 1)}"
    if d is not None and d != h:
        text += f" ({ctx.count(d)} departments)"
    return text


def _change_phrase(ctx: Ctx, r: Rec) -> str:
    outcome = str(r.get("outcome"))
    d = ctx.digits(outcome)
    n = r.get("n_pairs")
    est = fmt_est_ci(r.get("mean_diff"), r.get("ci_low"), r.get("ci_high"), d, counts=(n,), sup=ctx.sup)
    tp = str(r.get("timepoint"))
    fu = {str(x.get("timepoint")): x for x in _rows(ctx, "follow_up")}.get(tp, {})
    alive = None
    if number(fu.get("n")) is not None and number(fu.get("died_by_window_end")) is not None:
        alive = float(fu["n"]) - float(fu["died_by_window_end"])
    denom = (f"{ctx.count(n)} complete pairs of {ctx.count(alive)} patients alive at the window's end"
             if alive is not None else f"{ctx.count(n)} complete pairs")
    if est == NA_TEXT:
        return f"{ctx.tp(tp).lower()}: not shown ({denom})"
    return f"{ctx.tp(tp).lower()} {est} ({denom})"


def abstract_section(ctx: Ctx) -> Section:
    """A structured abstract (STROBE 1b): background/objectives, methods, results, conclusions.

    The conclusions restate the main numbers and who they describe; they do
    not choose between analyses by whether an interval excludes 0.
    """
    question = str(ctx.study.get("question") or "").strip()
    background = (f"{question} " if question else "") + ("Routinely collected registry data allow the outcomes of "
                                                         "consecutive patients to be described.")
    flow = _rows(ctx, "flow")
    n = ctx.cohort_n()
    d = ctx.data
    period = _period_text(ctx)
    centres = _centres(ctx)
    outcomes = join_words([ctx.outcome_label(k) for k in ctx.outcomes])
    analyses = [f"{outcomes or 'no outcomes'} at baseline and follow-up"]
    if ctx.has("paired_change"):
        analyses.append(f"change from baseline in complete pairs (paired t-test, {ctx.level} CIs)")
    if ctx.has("safety") or ctx.has("leaks") or ctx.has("complications"):
        analyses.append("deaths, complications and cement leaks per patient with exact CIs")
    if ctx.has("survival_median"):
        analyses.append("survival by Kaplan-Meier")
    methods = (f"Registry-based cohort study of consecutive patients{f' {period}' if period else ''}"
               f"{f' at {centres}' if centres else ''}, from {d.get('name') or 'the registry'} (extract date "
               f"{d.get('extract_date') or 'unknown'}). Outcomes: {'; '.join(analyses)}.")
    res: list[str] = []
    if flow:
        res.append(f"{ctx.count(n)} patients were included of {ctx.count(flow[0].get('n_patients'))} in the data.")
    fut = (_rows(ctx, "follow_up_time") or [{}])[0]
    if number(fut.get("median_months")) is not None:
        res.append(f"Median follow-up (reverse Kaplan-Meier) {fmt_num(fut.get('median_months'), 1)} months.")
    by_outcome: dict[str, list[Rec]] = {}
    for r in _rows(ctx, "paired_change"):
        by_outcome.setdefault(str(r.get("outcome")), []).append(r)
    for outcome, recs in by_outcome.items():
        res.append(f"Mean change in {ctx.outcome_label(outcome)} among survivors who answered: "
                   + join_words([_change_phrase(ctx, r) for r in recs], "and") + ".")
    deaths = {str(r.get("event")): r for r in _rows(ctx, "safety")}
    parts = [f"{fmt_fraction(deaths[e].get('x'), deaths[e].get('n'), ctx.sup)} within {days} days"
             for e, days in (("death_30d", "30"), ("death_90d", "90")) if e in deaths]
    if parts:
        res.append(f"Deaths: {join_words(parts, 'and')}.")
    med = (_rows(ctx, "survival_median") or [{}])[0]
    if number(med.get("median_months")) is not None and not ctx.hidden(med.get("n")):
        res.append(f"Median survival {fmt_num(med.get('median_months'), 1)} months ({ctx.level} CI "
                   f"{fmt_median_ci(med.get('ci_low'), med.get('ci_high'))}).")
    leak = next((r for r in _rows(ctx, "leaks") if r.get("measure") == "cement leak" and r.get("unit") == "patient"
                 and r.get("category") == "any"), None)
    if leak is not None and number(leak.get("n")):
        pct = fmt_proportion(leak.get("proportion"), pct_digits(leak.get("n")), counts=(leak.get("x"), leak.get("n")),
                             sup=ctx.sup)
        res.append(f"Cement leaked in {fmt_fraction(leak.get('x'), leak.get('n'), ctx.sup)} patients"
                   f"{f' ({pct})' if pct != NA_TEXT else ''}.")
    comp = next((r for r in _rows(ctx, "complications") if r.get("category") == "any"
                 and r.get("unit") == "patient"), None)
    if comp is not None:
        res.append(f"Complications: {fmt_fraction(comp.get('x'), comp.get('n'), ctx.sup)} patients.")
    concl = ("The outcome changes describe the patients who survived and answered, a shrinking and selected group "
             "where many patients die within a year; they are not the expected change for every treated patient. "
             "Deaths, complications and cement leaks describe every patient.")
    if d.get("synthetic"):
        concl += " The data are synthetic: the numbers demonstrate the method only."
    blocks: list[Block] = [Paragraph(background, lead="Background and objectives."),
                           Paragraph(methods, lead="Methods."),
                           Paragraph(" ".join(res) or "No results.", lead="Results."),
                           Paragraph(concl, lead="Conclusions.")]
    return Section("abstract", "Abstract", tuple(blocks))


# -- methods: setting, code lists, study size, bias ------------------------------------------------------------------


def _code_table(ctx: Ctx) -> Table | None:
    cohort = ctx.spec.get("cohort") or {}
    body = []
    for key, (what, variable, source) in _SOURCE_LABELS.items():
        for code in cohort.get(key) or []:
            label = category_label(str(code)) if key in ("procedure_categories", "indications") else "prefix match"
            label = label[:1].upper() + label[1:]
            body.append(Row((what, str(code), label, variable, source)))
    if not body:
        return None
    return ctx.table("table-codes", "Code lists of the cohort definition",
                     ("Criterion", "Code", "Label", "Registry variable", "Source of the codes"), body,
                     notes=["An operation qualifies by procedure category or procedure code, and by indication or "
                            "diagnosis code, as the study spec lists them; codes match by prefix."],
                     widths=(1.5, 1.2, 2.2, 1.8, 2.3), supplementary=True)


def methods_extra_blocks(ctx: Ctx) -> list[Block]:
    """Setting (STROBE 5), code lists (RECORD 6.2, 7.1), bias (STROBE 9), study size (STROBE 10)."""
    d = ctx.data
    centres = _centres(ctx)
    s = (_rows(ctx, "setting") or [{}])[0]
    first, last = s.get("first_operation"), s.get("last_operation")
    setting = (f"The cohort's index operations were done at {centres or 'an unknown number of hospitals'} "
               f"(hospital and department as recorded in the registry)"
               + (f"; the first on {first} and the last on {last}" if first and last else "")
               + f". Data were extracted on {d.get('extract_date') or 'an unknown date'}, which ends follow-up.")
    if number(s.get("n_missing_hospital")):
        setting += f" {ctx.count(s.get('n_missing_hospital'))} operations had no hospital recorded."
    blocks: list[Block] = [Heading("Setting"), Paragraph(setting)]
    codes = _code_table(ctx)
    if codes is not None:
        blocks += [Heading("Code lists"), Paragraph(f"The codes defining the cohort are listed in {codes.label}."),
                   codes]
    blocks += [Heading("Study size"), Paragraph(
        "All eligible consecutive patients operated in the study period and recorded in the registry were included; "
        "the study size was fixed by the registry, and no sample size was calculated in advance. The precision of "
        "each estimate is given by its confidence interval.")]
    req = ctx.require_baseline()
    bias = ["Selection bias: patients entered consecutively by operation date, the first eligible operation of each "
            "patient"
            + ("; patients without a complete baseline questionnaire were excluded, and are compared with those "
               "included at baseline in the Results" if req else "")
            + ".",
            "Information bias: the outcomes are self-reported questionnaires; imaging findings and complications "
            "are as recorded by the treating departments, unblinded.",
            "Attrition: patients who died cannot answer later questionnaires, so later outcome results describe "
            "survivors; deaths are counted apart from non-response, and patients alive who did not answer are "
            "compared with those who did at baseline in the Results."]
    blocks += [Heading("Bias"), Paragraph(" ".join(bias))]
    return blocks


# -- results: comparisons at baseline and follow-up time -------------------------------------------------------------


def _comparison_table(ctx: Ctx, recs: list[Rec], caption: str, what: str, groups: tuple[str, str]) -> Table:
    g1, g0 = groups
    n1 = max((number(r.get("n_1")) or 0 for r in recs), default=0)
    n0 = max((number(r.get("n_0")) or 0 for r in recs), default=0)
    body = []
    for r in recs:
        if r.get("kind") == "binary":
            c1 = fmt_count_pct(r.get("count_1"), r.get("percent_1"), total=r.get("n_1"),
                               digits=pct_digits(r.get("n_1")), sup=ctx.sup)
            c0 = fmt_count_pct(r.get("count_0"), r.get("percent_0"), total=r.get("n_0"),
                               digits=pct_digits(r.get("n_0")), sup=ctx.sup)
            label = f"{r.get('label')}, n (%)"
        else:
            var = str(r.get("variable"))
            dg = ctx.digits(var.removeprefix("baseline_")) if var.startswith("baseline_") else 1
            c1 = fmt_mean_sd(r.get("mean_1"), r.get("sd_1"), dg, counts=(r.get("n_1"),), sup=ctx.sup)
            c0 = fmt_mean_sd(r.get("mean_0"), r.get("sd_0"), dg, counts=(r.get("n_0"),), sup=ctx.sup)
            label = f"{r.get('label')}, mean (SD)"
        hide = ctx.hidden(r.get("n_1"), r.get("n_0"), r.get("count_1"), r.get("count_0"))
        smd = NA_TEXT if hide else fmt_num(r.get("smd"), 2)
        body.append(Row((label, f"{ctx.count(r.get('n_1'))} / {ctx.count(r.get('n_0'))}", c1, c0, smd)))
    return ctx.table(f"table-{what}", caption,
                     ("Characteristic", "n with a value", f"{g1} (N = {ctx.count(n1)})",
                      f"{g0} (N = {ctx.count(n0)})", "Standardised difference"), body,
                     notes=["Standardised difference: difference of the means (or proportions) over the pooled SD "
                            "(Austin 2009); an absolute value above 0.1 is commonly read as imbalance. No p-values: "
                            "the groups are described, not tested."],
                     align=("left", "right", "right", "right", "right"), widths=(2.6, 1.1, 1.6, 1.6, 1.1))


def comparison_blocks(ctx: Ctx) -> list[Block]:
    """Included vs excluded and responders vs non-responders at baseline (STROBE 13-14, RECORD 13.1)."""
    groups: dict[str, list[Rec]] = {}
    for r in _rows(ctx, "baseline_comparison"):
        groups.setdefault(str(r.get("comparison")), []).append(r)
    blocks: list[Block] = []
    inc = groups.get("included_vs_excluded")
    if inc:
        t = _comparison_table(ctx, inc, "Patients included and patients excluded for lacking a complete baseline "
                                        "questionnaire, at the operation", "included-excluded",
                              ("Included", "Excluded: no complete baseline questionnaire"))
        blocks += [Heading("Included and excluded patients"),
                   Paragraph(f"{t.label} compares the included patients with those who met every other criterion "
                             f"but had no complete baseline questionnaire."), t]
    for key, recs in groups.items():
        if not key.startswith("responders_vs_nonresponders"):
            continue
        tp = ctx.tp(key.removeprefix("responders_vs_nonresponders_")).lower()
        t = _comparison_table(ctx, recs, f"Baseline characteristics of the patients who answered at {tp} and of "
                                         f"those alive without an answer", "answered-unanswered",
                              (f"Answered at {tp}", f"Alive, no answer at {tp}"))
        blocks += [Heading("Responders and non-responders"),
                   Paragraph(f"{t.label} compares, at baseline, the patients who answered at {tp} with those alive "
                             f"at the end of the window who did not answer (patients who had died, or whose window "
                             f"had not closed by the extract date, are in neither group)."), t]
    return blocks


def follow_up_time_blocks(ctx: Ctx) -> list[Block]:
    """Median follow-up by reverse Kaplan-Meier and the answer days of each time point (STROBE 14c)."""
    blocks: list[Block] = []
    futs = _rows(ctx, "follow_up_time")
    if futs:
        fut = futs[0]
        med = number(fut.get("median_months"))
        if med is None:
            text = "The median follow-up by the reverse Kaplan-Meier method was not reached."
        else:
            text = (f"The median follow-up was {fmt_num(med, 1)} months ({ctx.level} CI "
                    f"{fmt_median_ci(fut.get('ci_low'), fut.get('ci_high'))}) by the reverse Kaplan-Meier method "
                    f"(Schemper and Smith 1996), in which death censors and reaching the extract date alive is the "
                    f"event: the time patients would have been followed had they not died. The median time to death "
                    f"or the extract date was {fmt_num(fut.get('observed_median_months'), 1)} months.")
        blocks.append(Paragraph(text, lead="Follow-up time."))
    days = _rows(ctx, "answer_days")
    if days:
        body = [Row((ctx.tp(r.get("timepoint")), fmt_num(r.get("target"), 0), ctx.count(r.get("n")),
                     NA_TEXT if ctx.hidden(r.get("n")) else
                     fmt_est_ci(r.get("median"), r.get("q1"), r.get("q3"), 0),
                     NA_TEXT if ctx.hidden(r.get("n")) else fmt_ci(r.get("min"), r.get("max"), 0)))
                for r in days]
        t = ctx.table("table-answer-days", "Days from the operation of the answers used at each time point",
                      ("Time point", "Target day", "Answers", "Median (IQR) day", "Range"), body,
                      notes=["Days from the day of the operation; for each patient and time point, the answer "
                             "nearest the target day within the time point's window (see Methods)."],
                      align=("left", "right", "right", "right", "right"))
        blocks += [Paragraph(f"The answers were given on the days shown in {t.label}."), t]
    return blocks


# -- declarations and references -------------------------------------------------------------------------------------


def declarations_sections(ctx: Ctx) -> list[Section]:
    """Ethics and data permission, funding, conflicts (templates for the authors), software and value sets."""
    todo = [Paragraph("[Authors: state the approval of the ethics committee or why none was needed, and the "
                      "permission to use the registry data (data controller, approval number and date).]",
                      lead="Ethics and data permission."),
            Paragraph("[Authors: state the funding of the study and the role of the funders, or that there was "
                      "none.]", lead="Funding."),
            Paragraph("[Authors: state any conflicts of interest, or that there are none.]",
                      lead="Conflicts of interest.")]
    soft = _rows(ctx, "software")
    items = []
    for r in soft:
        detail = f" ({r.get('detail')})" if r.get("detail") else ""
        m = re.search(r"\(([^)]*)\)$", str(r.get("component") or ""))
        cite = str((ctx.outcomes.get(m.group(1)) or {}).get("valueset_citation") or "") if m else ""
        items.append(f"{r.get('component')} {r.get('version')}{detail}" + (f", {cite}" if cite else ""))
    blocks: list[Block] = list(todo)
    if items:
        blocks += [Heading("Software and value sets"),
                   Paragraph("The analyses were run with the software below; the EQ-5D value sets are identified by "
                             "their key in spinereg's value-set catalogue and their publication."),
                   BulletList(tuple(items))]
    return [Section("declarations", "Declarations", tuple(blocks))]


def _outcome_citations(ctx: Ctx) -> dict[str, str]:
    """Full citations that the report quotes whole (value sets, MCID sources): the text -> the reference."""
    out = {}
    for o in ctx.outcomes.values():
        for key in ("valueset_citation", "mcid_source"):
            text = str(o.get(key) or "").strip()
            if text:
                out[text] = text
    return out


def number_citations(doc: Document, ctx: Ctx) -> Document:
    """Every citation of ``doc`` as a number, and a References section listing each source once.

    Author-year citations from :data:`CITATIONS` keep the authors and replace
    the year with the number ("Yeom et al. [4]"); whole references quoted in
    the text (value sets, MCID sources) become the number alone.  Numbers
    follow the order of first citation; the STROBE and RECORD statements are
    cited where the methods name them.
    """
    order: dict[str, int] = {}
    whole = _outcome_citations(ctx)
    refs: dict[str, str] = {**CITATIONS, **whole}

    def num(key: str) -> int:
        if key not in order:
            order[key] = len(order) + 1
        return order[key]

    pattern = re.compile("|".join(re.escape(k) for k in sorted(refs, key=len, reverse=True)
                                  if k) + r"|STROBE statement|RECORD extension")

    def sub(text: str) -> str:
        def one(m: re.Match[str]) -> str:
            k = m.group(0)
            if k == "STROBE statement":
                return f"STROBE statement [{num('von Elm et al. 2007')}]"
            if k == "RECORD extension":
                return f"RECORD extension [{num('Benchimol et al. 2015')}]"
            if k in whole:
                return f"[{num(k)}]"
            authors, _, _year = k.rpartition(" ")
            return f"{authors} [{num(k)}]"
        return pattern.sub(one, text)

    def block(b: Block) -> Block:
        if isinstance(b, Paragraph):
            return replace(b, text=sub(b.text))
        if isinstance(b, BulletList):
            return replace(b, items=tuple(sub(i) for i in b.items))
        if isinstance(b, Table):
            return replace(b, caption=sub(b.caption),
                           rows=tuple(replace(r, cells=tuple(sub(c) for c in r.cells)) for r in b.rows),
                           footnotes=tuple(Footnote(f.mark, sub(f.text)) for f in b.footnotes))
        if isinstance(b, Figure):
            return replace(b, title=sub(b.title), caption=sub(b.caption))
        return b

    sections = [replace(s, blocks=tuple(block(b) for b in s.blocks)) for s in doc.sections]
    if order:
        items = tuple(f"[{i}] {refs[k]}" for k, i in sorted(order.items(), key=lambda kv: kv[1]))
        ref = Section("references", "References", (BulletList(items),))
        at = next((i for i, s in enumerate(sections) if s.id == "provenance"), len(sections))
        sections.insert(at, ref)
    return replace(doc, sections=tuple(sections))


# -- the checklist ---------------------------------------------------------------------------------------------------

#: STROBE (von Elm et al. 2007) and RECORD (Benchimol et al. 2015) items: number, item, where the report answers it
#: as (section id, heading text or "" for the section itself).  Items the report cannot answer for the authors
#: (e.g. discussion items) point to no section and are listed as for the authors.
CHECKLIST: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("STROBE 1a", "Study design in the title or abstract", (("abstract", ""),)),
    ("STROBE 1b", "Informative and balanced abstract", (("abstract", ""),)),
    ("RECORD 1.1", "Type of data used named in the title or abstract", (("abstract", ""),)),
    ("RECORD 1.3", "Linkage between databases stated", (("methods", "Study design and data source"),)),
    ("STROBE 2", "Background and rationale", ()),
    ("STROBE 3", "Objectives", (("abstract", ""),)),
    ("STROBE 4", "Study design", (("methods", "Study design and data source"),)),
    ("STROBE 5", "Setting: locations, periods of recruitment, follow-up, data collection", (("methods", "Setting"),)),
    ("STROBE 6a", "Eligibility criteria, sources and methods of selection; follow-up", (("methods", "Participants"),
                                                                                        ("methods", "Follow-up"))),
    ("RECORD 6.1", "Methods of selecting the population (codes, algorithms)", (("methods", "Participants"),)),
    ("RECORD 6.2", "Validation of codes or algorithms", (("methods", "Code lists"),)),
    ("RECORD 6.3", "Linkage flow diagram", (("results", "Participants"),)),
    ("STROBE 7", "Outcomes, exposures, predictors, confounders; diagnostic criteria", (("methods", "Outcomes"),)),
    ("RECORD 7.1", "Complete list of codes and algorithms", (("methods", "Code lists"),)),
    ("STROBE 8", "Data sources and measurement", (("methods", "Outcomes"),)),
    ("STROBE 9", "Efforts to address potential sources of bias", (("methods", "Bias"),)),
    ("STROBE 10", "How the study size was arrived at", (("methods", "Study size"),)),
    ("STROBE 11", "Handling of quantitative variables", (("methods", "Statistical analysis"),)),
    ("STROBE 12a-e", "Statistical methods, subgroups, missing data, loss to follow-up, sensitivity analyses",
     (("methods", "Statistical analysis"), ("methods", "Missing data and deaths"))),
    ("RECORD 12.1", "Extent of data access", (("methods", "Study design and data source"),)),
    ("RECORD 12.2", "Data cleaning methods", (("methods", "Study design and data source"),)),
    ("STROBE 13a-c", "Numbers at each stage, reasons for non-participation, flow diagram",
     (("results", "Participants"), ("supplementary", ""))),
    ("RECORD 13.1", "Selection of the population, with a flow diagram", (("results", "Participants"),)),
    ("STROBE 14a", "Characteristics of participants", (("results", "Baseline characteristics"),
                                                       ("results", "Included and excluded patients"))),
    ("STROBE 14b", "Participants with missing data for each variable", (("results", "Baseline characteristics"),)),
    ("STROBE 14c", "Follow-up time (average and total)", (("results", "Follow-up"),)),
    ("STROBE 15", "Outcome events or summary measures over time", (("results", "Follow-up"),
                                                                   ("results", "Patient-reported outcomes"))),
    ("STROBE 16a", "Unadjusted estimates with their precision", (("results", "Patient-reported outcomes"),
                                                                 ("results", "Safety"))),
    ("STROBE 17", "Other analyses: subgroups, interactions, sensitivity analyses", (("results", "Responders"),)),
    ("STROBE 18", "Key results with reference to the objectives", (("key-results", ""),)),
    ("STROBE 19", "Limitations, sources of bias and imprecision", (("methods", "Bias"),)),
    ("RECORD 19.1", "Implications of using data not created for the research question", (("methods", "Bias"),)),
    ("STROBE 20", "Cautious overall interpretation", (("abstract", ""),)),
    ("STROBE 21", "Generalisability", ()),
    ("STROBE 22", "Funding and the role of the funders", (("declarations", ""),)),
    ("RECORD 22.1", "Access to the protocol, raw data and programming code",
     (("provenance", ""), ("declarations", "Software and value sets"))),
)


def _locations(doc: Document) -> set[tuple[str, str]]:
    found = set()
    for s in doc.sections:
        found.add((s.id, ""))
        for b in s.blocks:
            if isinstance(b, Heading):
                found.add((s.id, b.text))
    return found


def checklist_rows(doc: Document) -> list[dict[str, str]]:
    """The STROBE/RECORD checklist of ``doc``: item, description, where (section and heading) it is reported.

    Only locations that exist in ``doc`` are listed; an item with none reads
    "for the authors (discussion or introduction)" or "not reported".
    """
    found = _locations(doc)
    titles = {s.id: s.title for s in doc.sections}
    out = []
    for item, text, where in CHECKLIST:
        present = [(sid, h) for sid, h in where if (sid, h) in found]
        if present:
            loc = "; ".join(f"{titles[sid]}{f' > {h}' if h else ''}" for sid, h in present)
            ids = "; ".join(f"#{sid}" + (f" > {h}" if h else "") for sid, h in present)
        else:
            loc = "for the authors (introduction or discussion)" if not where else "not reported"
            ids = ""
        out.append({"item": item, "description": text, "where": loc, "section": ids})
    return out


def checklist_csv(doc: Document) -> str:
    """:func:`checklist_rows` as CSV (``item,description,where,section``), written beside the report."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["item", "description", "where", "section"], lineterminator="\n")
    w.writeheader()
    w.writerows(checklist_rows(doc))
    return buf.getvalue()


def unnumbered_citations(doc: Document) -> list[str]:
    """Author-year citations left in ``doc`` (for tests: after :func:`number_citations` there are none)."""
    texts: list[str] = []
    for s in doc.sections:
        if s.id == "references":
            continue
        for b in s.blocks:
            if isinstance(b, Paragraph):
                texts.append(b.text)
            elif isinstance(b, BulletList):
                texts += list(b.items)
            elif isinstance(b, Table):
                texts += [b.caption, *(c for r in b.rows for c in r.cells), *(f.text for f in b.footnotes)]
            elif isinstance(b, Figure):
                texts += [b.title, b.caption]
    return [m.group(0) for t in texts for m in AUTHOR_YEAR.finditer(t)]


"""Cohort selection with an attrition flow, time-point matching and follow-up accounting.

Selection steps (each row of the flow counts what remains and why rows left):

1. ``registry``: every operation in the extract;
2. ``procedure``: procedure category in ``cohort.procedure_categories`` or a
   procedure code starting with one of ``cohort.procedure_codes`` (either
   criterion suffices; no criterion keeps all);
3. ``indication``: indication in ``cohort.indications`` or a diagnosis code
   starting with one of ``cohort.diagnosis_codes``; then any diagnosis code
   starting with one of ``cohort.exclude_diagnosis_codes`` excludes;
4. ``period``: operation date within the period (inclusive);
5. ``age``: age at operation in completed years (18 from the 18th birthday)
   within [age_min, age_max] (unknown age is excluded when a limit is set);
6. ``first per patient``: each patient's earliest qualifying operation
   ("consecutive patients"; ties broken by operation id);
7. ``baseline``: a baseline answer with the items of every outcome in
   ``cohort.require_baseline`` complete.

Time-point matching: a questionnaire belongs to a time point when it follows
the index operation (same ``operation_id``) and its answer date falls in the
time point's window (days from the operation).  Several in a window: the one
nearest the target day; equally near: the earlier one.  Questionnaires
without an answer date, or dated after the patient's death (a data error),
are not placed.

Follow-up accounting per time point puts every cohort patient in exactly one
of four categories, tested in this order (they add up to the cohort):

* ``answered``: a questionnaire matched to the time point (a patient who
  answered and died later in the window counts here: the answer exists);
* ``died_before_answering``: no answer in the window, and died on or before
  the window's last day (and on or before the extract date);
* ``not_yet_due``: no answer, not known to have died, and the window's last
  day falls after the extract date;
* ``alive_not_answered``: the window has ended by the extract date, the
  patient was alive at its end, and did not answer.

Besides, ``response_rate`` = answered / (answered + alive_not_answered): the
share who answered among those alive and due (patients who answered and died
later in the window stay in numerator and denominator; NaN when nobody is in
the denominator); and ``died_by_window_end``, every cohort patient who died
on or before the window's last day and the extract date, answered or not
(``answered_then_died`` are those who answered).  ``died_by_window_end``
counts the same deaths as the Kaplan-Meier analysis, whose time is the days
from the operation to death and which censors at the extract date: it equals
the number of events at or before the window's last day.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from spinereg.data import Extract
from spinereg.study._spec import StudySpec

__all__ = ["FOLLOW_UP_CATEGORIES", "FOLLOW_UP_COLUMNS", "OUTCOME_ITEMS", "CohortResult", "candidate_patients",
           "completed_years", "extract_date", "follow_up", "match_timepoints", "reachable", "select_cohort"]

OUTCOME_ITEMS: dict[str, list[str]] = {
    "eq5d3l": [f"eq5d3l_{d}" for d in ("mo", "sc", "ua", "pd", "ad")],
    "eq5d5l": [f"eq5d5l_{d}" for d in ("mo", "sc", "ua", "pd", "ad")],
    "odi": [f"odi_{k}" for k in range(1, 11)],
    "eqvas": ["eqvas"],
    "nrs_back": ["nrs_back"],
    "nrs_leg": ["nrs_leg"],
}


@dataclass(frozen=True)
class CohortResult:
    """The selected cohort.

    Attributes
    ----------
    operations : DataFrame
        One index operation per patient, with the patient's ``sex``,
        ``birth_date``, ``death_date`` and ``age`` at operation.
    flow : DataFrame
        ``step, n_operations, n_patients, excluded, reason`` per step.
    """

    operations: pd.DataFrame
    flow: pd.DataFrame


def _prefix(codes: pd.Series, prefixes: list[str]) -> np.ndarray[Any, np.dtype[np.bool_]]:
    if not prefixes:
        return np.zeros(len(codes), dtype=bool)
    parts = codes.fillna("").astype(str).str.split(";")
    pre = tuple(prefixes)
    return np.array([any(c.startswith(pre) for c in row if c) for row in parts], dtype=bool)


def _complete(proms: pd.DataFrame, instrument: str) -> np.ndarray[Any, np.dtype[np.bool_]]:
    items = OUTCOME_ITEMS[instrument]
    if instrument == "odi":  # ODI is scored with at most one section missing
        return np.asarray(proms[items].notna().sum(axis=1) >= len(items) - 1, dtype=bool)
    return np.asarray(proms[items].notna().all(axis=1), dtype=bool)


def match_timepoints(proms: pd.DataFrame, operations: pd.DataFrame, spec: StudySpec) -> pd.DataFrame:
    """The questionnaire matched to each (index operation, time point).

    Returns the matched PROM rows with columns ``timepoint_matched`` and
    ``day`` (days from the operation) added.
    """
    cols = ["operation_id", "date", *(["death_date"] if "death_date" in operations.columns else [])]
    ops = operations[cols].rename(columns={"date": "_op_date", "death_date": "_death"})
    q = proms[proms["operation_id"].isin(ops["operation_id"].unique())]
    q = q.merge(ops, on="operation_id", how="inner")
    q = q[q["answer_date"].notna()]
    if "_death" in q.columns:  # an answer dated after the patient's death is a data error: disregarded
        q = q[~(q["answer_date"] > q["_death"]).fillna(False).to_numpy(dtype=bool)].drop(columns=["_death"])
    q = q.copy()
    q["day"] = (q["answer_date"] - q["_op_date"]).dt.days
    out = []
    for name, tp in spec.timepoints.items():
        lo, hi = tp.window
        inside = q[(q["day"] >= lo) & (q["day"] <= hi)].copy()
        if inside.empty:
            continue
        inside["_dist"] = (inside["day"] - tp.target).abs()
        inside = inside.sort_values(["operation_id", "_dist", "answer_date", "prom_id"], kind="stable")
        best = inside.drop_duplicates("operation_id", keep="first").copy()
        best["timepoint_matched"] = name
        out.append(best.drop(columns=["_dist"]))
    if not out:
        cols = [*proms.columns, "day", "timepoint_matched"]
        return pd.DataFrame(columns=cols)
    return pd.concat(out, ignore_index=True).drop(columns=["_op_date"])


def completed_years(birth: pd.Series, when: pd.Series) -> pd.Series:
    """Age in completed years on ``when`` (the birthday counts: 18 on the 18th birthday); NA when unknown.

    A birthday on 29 February is reached on 1 March in years without one.
    """
    years = when.dt.year - birth.dt.year
    before = (when.dt.month < birth.dt.month) | ((when.dt.month == birth.dt.month) & (when.dt.day < birth.dt.day))
    out: pd.Series = (years - before.astype("Int64")).astype("Int64")
    return out


def select_cohort(extract: Extract, spec: StudySpec) -> CohortResult:
    """Select the cohort and record the attrition flow (see module docstring)."""
    c = spec.cohort
    ops = extract["operations"]
    flow: list[dict[str, Any]] = []

    def record(step: str, frame: pd.DataFrame, before: pd.DataFrame, reason: str) -> None:
        flow.append({"step": step, "n_operations": len(frame), "n_patients": frame["patient_id"].nunique(),
                     "excluded": len(before) - len(frame), "reason": reason})

    record("registry", ops, ops, "all operations in the registry extract")
    before = ops
    if c.procedure_categories or c.procedure_codes:
        keep = ops["procedure_category"].astype(str).isin(c.procedure_categories).to_numpy(dtype=bool) | \
            _prefix(ops["procedure_codes"], c.procedure_codes)
        ops = ops[keep]
    record("procedure", ops, before, "not the study's procedure")
    before = ops
    if c.indications or c.diagnosis_codes:
        keep = ops["indication"].astype(str).isin(c.indications).to_numpy(dtype=bool) | \
            _prefix(ops["diagnosis_codes"], c.diagnosis_codes)
        ops = ops[keep]
    if c.exclude_diagnosis_codes:
        ops = ops[~_prefix(ops["diagnosis_codes"], c.exclude_diagnosis_codes)]
    record("indication", ops, before, "not the study's indication or diagnosis, or an excluded diagnosis")
    before = ops
    if c.period is not None:
        start, end = pd.Timestamp(c.period.start), pd.Timestamp(c.period.end)
        ops = ops[(ops["date"] >= start) & (ops["date"] <= end)]
    record("period", ops, before, "operated outside the study period")
    before = ops
    # patient facts joined only now, to the few operations left (a national registry has millions)
    pats = extract["patients"]
    pats = pats[pats["patient_id"].isin(ops["patient_id"].unique())]
    ops = ops.merge(pats[["patient_id", "sex", "birth_date", "death_date"]], on="patient_id", how="left")
    ops = ops.assign(age=(ops["date"] - ops["birth_date"]).dt.days / 365.25, age_years=completed_years(
        ops["birth_date"], ops["date"]))
    if c.age_min is not None:
        ops = ops[(ops["age_years"] >= c.age_min).fillna(False).to_numpy(dtype=bool)]
    if c.age_max is not None:
        ops = ops[(ops["age_years"] <= c.age_max).fillna(False).to_numpy(dtype=bool)]
    record("age", ops, before, "age outside the study's range or unknown")
    before = ops
    if c.first_per_patient:
        ops = ops.sort_values(["patient_id", "date", "operation_id"], kind="stable").drop_duplicates(
            "patient_id", keep="first")
    record("first per patient", ops, before, "a later operation of a patient already included")
    before = ops
    if c.require_baseline:
        matched = match_timepoints(extract["proms"], ops, spec)
        base = matched[matched["timepoint_matched"] == "baseline"]
        ok = np.ones(len(base), dtype=bool)
        for name in c.require_baseline:
            ok &= _complete(base, spec.outcomes[name].instrument)
        ops = ops[ops["operation_id"].isin(base.loc[ok, "operation_id"])]
    record("baseline", ops, before, "no complete baseline questionnaire")
    return CohortResult(ops.sort_values(["date", "operation_id"]).reset_index(drop=True),
                        pd.DataFrame(flow))


def candidate_patients(patients: pd.DataFrame, operations: pd.DataFrame, spec: StudySpec) -> set[str]:
    """The patients the cohort can reach: those with an operation that passes every selection
    step but the baseline questionnaire (:func:`select_cohort` without ``require_baseline``,
    on the whole ``patients`` and ``operations`` tables).  Only their rows of the other tables
    (questionnaires, levels, complications, imaging) can enter a study of ``spec``, so a
    registry read for it may leave the rest out (``spinereg.registry.load_extract(only=...)``)."""
    cohort = spec.cohort.model_copy(update={"require_baseline": []})
    reach = select_cohort(Extract({"patients": patients, "operations": operations}),
                          spec.model_copy(update={"cohort": cohort}))
    return set(reach.operations["patient_id"].astype(str))


#: The dated column of each table a study reads only in part (:func:`reachable`).
_DATED = {"proms": "answer_date", "complications": "date", "imaging_findings": "date"}


def reachable(extract: Extract, spec: StudySpec) -> Extract:
    """The part of ``extract`` a study of ``spec`` can reach: every patient and operation, and
    the questionnaires, treated levels, complications and imaging findings of the operations of
    :func:`candidate_patients`.  The study's results, and its data digest, are computed from
    this part, so they are the same whether the registry was read whole (a file extract) or in
    part (``spinereg.registry.load_extract(only=...)``, which already returns this part and
    says so with the metadata key ``latest_dates``).  ``latest_dates`` keeps the latest date
    of each partly read table over all of it, for :func:`extract_date`."""
    if "latest_dates" in extract.meta:
        return extract
    pats, ops = extract["patients"], extract["operations"]
    chosen = set(candidate_patients(pats, ops, spec))
    oid = set(ops.loc[ops["patient_id"].astype(str).isin(chosen), "operation_id"].astype(str))
    tables = {"patients": pats, "operations": ops}
    latest: dict[str, str | None] = {}
    for name in ("proms", "treated_levels", "complications", "imaging_findings"):
        t = extract[name]
        tables[name] = t[t["operation_id"].astype(str).isin(oid).to_numpy(dtype=bool)].reset_index(drop=True)
        if name in _DATED:
            top = t[_DATED[name]].max()
            latest[name] = None if pd.isna(top) else pd.Timestamp(top).date().isoformat()
    return Extract(tables, {**extract.meta, "latest_dates": latest})


def extract_date(extract: Extract) -> tuple[pd.Timestamp, str]:
    """The date the data were extracted, and where it comes from.

    The dataset's ``extract_date`` when recorded; otherwise the latest date
    anywhere in the data (operations, answers, complications, imaging,
    deaths), so that the result never depends on the day the study is run.
    """
    recorded = extract.meta.get("extract_date")
    if recorded:
        return pd.Timestamp(recorded), "recorded with the dataset"
    latest = [extract[t][c].max() for t, c in (("operations", "date"), ("proms", "answer_date"),
                                                 ("complications", "date"), ("imaging_findings", "date"),
                                                 ("patients", "death_date"))]
    # a registry read for some patients only (load_extract(only=...)) gives the latest dates of the rest
    latest += [pd.Timestamp(d) for d in (extract.meta.get("latest_dates") or {}).values() if d]
    found = [d for d in latest if not pd.isna(d)]
    if not found:
        return pd.Timestamp("1970-01-01"), "no dates in the data"
    return pd.Timestamp(max(found)), "latest date in the data (no extract date recorded)"


FOLLOW_UP_CATEGORIES = ("answered", "died_before_answering", "alive_not_answered", "not_yet_due")
FOLLOW_UP_COLUMNS = ["timepoint", "n", *FOLLOW_UP_CATEGORIES, "response_rate", "died_by_window_end",
                     "answered_then_died"]


def follow_up(cohort: CohortResult, extract: Extract, spec: StudySpec,
              cutoff: pd.Timestamp | None = None) -> pd.DataFrame:
    """Follow-up accounting per time point (see the module docstring for the rule).

    Parameters
    ----------
    cohort : CohortResult
        The selected cohort; ``operations`` needs ``date`` and ``death_date``.
    extract : Extract
        Its ``proms`` are matched to the time points (:func:`match_timepoints`).
    spec : StudySpec
        The time points and their windows (days from the operation).
    cutoff : Timestamp, optional
        The extract date (:func:`extract_date` when not given).  A death
        recorded after it is not counted, as in the survival analysis.

    Returns
    -------
    DataFrame
        ``timepoint, n, answered, died_before_answering, alive_not_answered,
        not_yet_due, response_rate, died_by_window_end, answered_then_died``.
        The four categories add up to ``n``; ``died_by_window_end =
        died_before_answering + answered_then_died``.
    """
    ops = cohort.operations
    matched = match_timepoints(extract["proms"], ops, spec)
    if cutoff is None:
        cutoff, _ = extract_date(extract)
    death = ops["death_date"]
    known_dead = (death.notna() & (death <= cutoff)).to_numpy(dtype=bool)
    rows = []
    for name, tp in spec.timepoints.items():
        closes = ops["date"] + pd.to_timedelta(tp.window[1], unit="D")
        answered = ops["operation_id"].isin(
            matched.loc[matched["timepoint_matched"] == name, "operation_id"]).to_numpy(dtype=bool)
        dead_by_end = known_dead & (death <= closes).fillna(False).to_numpy(dtype=bool)
        died = ~answered & dead_by_end
        not_due = ~answered & ~died & (closes > cutoff).to_numpy(dtype=bool)
        alive_missing = ~answered & ~died & ~not_due
        n_ans, n_alive = int(answered.sum()), int(alive_missing.sum())
        rows.append({"timepoint": name, "n": len(ops), "answered": n_ans, "died_before_answering": int(died.sum()),
                     "alive_not_answered": n_alive, "not_yet_due": int(not_due.sum()),
                     "response_rate": n_ans / (n_ans + n_alive) if n_ans + n_alive else math.nan,
                     "died_by_window_end": int(dead_by_end.sum()),
                     "answered_then_died": int((answered & dead_by_end).sum())})
    return pd.DataFrame(rows, columns=FOLLOW_UP_COLUMNS)

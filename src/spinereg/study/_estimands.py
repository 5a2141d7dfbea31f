"""Estimands when patients die: while alive, and composites in which death counts.

In a cohort where many patients die during follow-up, "the change in EQ-5D at
1 year" is not one quantity.  Following ICH E9(R1) (2019), each analysis
states its estimand: the population, the variable, how the intercurrent
event *death* is handled, and the population-level summary.

* **While alive** (:func:`alive_counts`, the paired change and the
  mixed model restricted to the living): the change from baseline among the
  patients alive at the time point.  Death is handled by the while-alive
  strategy: scores after death do not exist and are not estimated.  The
  paired change uses the survivors who answered (complete pairs; unbiased
  for the survivors when their missing answers are missing completely at
  random); the restricted mixed model uses every score of the patients alive
  at the time point (valid when the survivors' missing answers are missing
  at random given their observed scores).
* **Composite, death = 0** (:func:`composite_death_zero`): EQ-5D index with
  the value 0 (the value of *dead* on the EQ-5D scale) at each time point at
  which the patient had died before answering.  Population: all patients
  whose status at the time point is known (answered with a score, or died);
  summary: the mean change from baseline.
* **Area under the EQ-5D curve, QALYs** (:func:`qaly_auc`): quality-adjusted
  life years from the operation to the last time point's target day, by the
  trapezoidal rule, with the value 0 from death on.

Every patient's status at a time point follows the follow-up accounting of
:func:`spinereg.study._cohort.follow_up`: *answered* (a questionnaire
matched to the time point), *died before answering* (no answer, died on or
before the window's last day and the extract date), *alive without an
answer* (the window had ended by the extract date) or *not yet due*.

References
----------
ICH E9(R1) addendum on estimands and sensitivity analysis in clinical trials
(EMA/CHMP/ICH/436221/2017), 2019.  Manca A, Hawkins N, Sculpher MJ.
Estimating mean QALYs in trial-based cost-effectiveness analysis: the
importance of controlling for baseline utility.  Health Econ 2005;14:487-96.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from spinereg.study._spec import StudySpec

__all__ = [
    "ALIVE_COLUMNS",
    "COMPOSITE_COLUMNS",
    "QALY_COLUMNS",
    "STATUSES",
    "add_alive_counts",
    "alive_counts",
    "composite_death_zero",
    "followup_status",
    "qaly_auc",
]

#: Days per year for QALYs (the survival analysis's months are 365.25/12 days).
DAYS_PER_YEAR = 365.25

STATUSES = ("answered", "died_before_answering", "alive_not_answered", "not_yet_due")

EQ5D = ("eq5d3l", "eq5d5l")


def followup_status(matched: pd.DataFrame, operations: pd.DataFrame, spec: StudySpec,
                    cutoff: pd.Timestamp) -> pd.DataFrame:
    """Each cohort patient's follow-up status at each time point.

    The rule of :func:`spinereg.study._cohort.follow_up` per patient (its
    counts are the sums of this table).

    Returns
    -------
    DataFrame
        ``operation_id, patient_id, timepoint, status, death_day``: ``status``
        one of :data:`STATUSES`; ``death_day`` the day of death counted from
        the operation (NaN when the patient is not known dead by ``cutoff``).
    """
    ops = operations
    death = ops["death_date"]
    known_dead = (death.notna() & (death <= cutoff)).to_numpy(dtype=bool)
    death_day = np.where(known_dead, (death - ops["date"]).dt.days.to_numpy(dtype=float, na_value=np.nan), np.nan)
    oid = ops["operation_id"].astype(str).to_numpy()
    frames = []
    for name, tp in spec.timepoints.items():
        closes = ops["date"] + pd.to_timedelta(tp.window[1], unit="D")
        answered = np.isin(oid, matched.loc[matched["timepoint_matched"] == name, "operation_id"].astype(str))
        dead_by_end = known_dead & (death <= closes).fillna(False).to_numpy(dtype=bool)
        died = ~answered & dead_by_end
        not_due = ~answered & ~died & (closes > cutoff).to_numpy(dtype=bool)
        status = np.select([answered, died, not_due], ["answered", "died_before_answering", "not_yet_due"],
                           "alive_not_answered")
        frames.append(pd.DataFrame({"operation_id": oid, "patient_id": ops["patient_id"].astype(str).to_numpy(),
                                    "timepoint": name, "status": status, "death_day": death_day}))
    return pd.concat(frames, ignore_index=True)


def _score_table(scores: pd.DataFrame, outcome: str, status: pd.DataFrame) -> pd.DataFrame:
    """``status`` with the outcome's score at each time point (NaN when none) and the baseline score."""
    s = scores.loc[scores["outcome"] == outcome, ["operation_id", "timepoint", "value"]]
    s = s.assign(operation_id=s["operation_id"].astype(str))
    out = status.merge(s, on=["operation_id", "timepoint"], how="left")
    base = s[s["timepoint"] == "baseline"].set_index("operation_id")["value"]
    out["baseline"] = out["operation_id"].map(base).astype(float)
    out["value"] = out["value"].astype(float)
    return out


ALIVE_COLUMNS = ["outcome", "timepoint", "n", "n_died", "n_alive", "n_not_due", "n_scored", "n_pairs"]


def alive_counts(scores: pd.DataFrame, status: pd.DataFrame, spec: StudySpec) -> pd.DataFrame:
    """The denominators of the while-alive estimand, per outcome and follow-up time point.

    ``n`` cohort patients; ``n_died`` died before answering; ``n_alive``
    alive at the time point and due (answered, or alive without an answer
    when the window ended); ``n_not_due``; ``n_scored`` patients with a
    score of the outcome at the time point; ``n_pairs`` with a score at
    baseline and at the time point (the complete pairs of the paired change).
    """
    rows = []
    for name in spec.outcomes:
        t = _score_table(scores, name, status)
        for tp in spec.timepoints:
            if tp == "baseline":
                continue
            r = t[t["timepoint"] == tp]
            st = r["status"]
            rows.append({"outcome": name, "timepoint": tp, "n": len(r),
                         "n_died": int((st == "died_before_answering").sum()),
                         "n_alive": int(st.isin(["answered", "alive_not_answered"]).sum()),
                         "n_not_due": int((st == "not_yet_due").sum()),
                         "n_scored": int(r["value"].notna().sum()),
                         "n_pairs": int((r["value"].notna() & r["baseline"].notna()).sum())})
    return pd.DataFrame(rows, columns=ALIVE_COLUMNS)


def add_alive_counts(table: pd.DataFrame, counts: pd.DataFrame) -> pd.DataFrame:
    """``table`` (one row per outcome and time point) with ``n_alive`` and ``n_died`` of :func:`alive_counts`."""
    keyed = counts.set_index(["outcome", "timepoint"])[["n_alive", "n_died"]]
    idx = pd.MultiIndex.from_frame(table[["outcome", "timepoint"]].astype(str))
    out = table.copy()
    for col in ("n_alive", "n_died"):
        out[col] = keyed[col].reindex(idx).to_numpy(dtype=float)
        out[col] = out[col].astype("Int64")
    return out


def _t_mean(v: np.ndarray[Any, np.dtype[np.float64]], level: float) -> tuple[float, float, float, float, str]:
    """Mean, SD, and the t-based CI of the mean, with a note when not estimable."""
    n = v.size
    if n == 0:
        return math.nan, math.nan, math.nan, math.nan, "not estimable: no patients"
    mean = float(v.mean())
    if n == 1:
        return mean, math.nan, math.nan, math.nan, "CI not estimable: one patient"
    sd = float(v.std(ddof=1))
    half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return mean, sd, mean - half, mean + half, ""


COMPOSITE_COLUMNS = ["outcome", "timepoint", "n", "n_answered", "n_died", "n_missing", "n_not_due", "mean_baseline",
                     "mean_value", "mean_diff", "sd_diff", "ci_low", "ci_high", "note"]


def composite_death_zero(scores: pd.DataFrame, status: pd.DataFrame, spec: StudySpec) -> pd.DataFrame:
    """EQ-5D with death = 0: the mean change from baseline when the dead score 0.

    Per EQ-5D outcome and follow-up time point :math:`k`, patient :math:`i`'s
    value is

    .. math:: v_{ik} = \\begin{cases} y_{ik} & \\text{answered, with a score} \\\\
              0 & \\text{died before answering at } k \\\\ \\text{missing} & \\text{otherwise} \\end{cases}

    and the change is :math:`v_{ik} - y_{i0}`.  The mean change over the
    patients with a baseline score and a value, with the t-based CI
    :math:`\\bar d \\pm t_{1-\\alpha/2,n-1} s_d/\\sqrt n`.

    Missing data: complete cases.  Left out (and counted): patients alive
    without a score at the time point (``n_missing``: no answer, or an
    incomplete questionnaire) and patients not yet due (``n_not_due``).
    """
    level = spec.analyses.conf_level
    rows = []
    for name, oc in spec.outcomes.items():
        if oc.instrument not in EQ5D:
            continue
        t = _score_table(scores, name, status)
        for tp in spec.timepoints:
            if tp == "baseline":
                continue
            r = t[t["timepoint"] == tp]
            died = (r["status"] == "died_before_answering").to_numpy(dtype=bool)
            value = np.where(died, 0.0, r["value"].to_numpy(dtype=float))
            base = r["baseline"].to_numpy(dtype=float)
            ok = ~np.isnan(value) & ~np.isnan(base)
            not_due = (r["status"] == "not_yet_due").to_numpy(dtype=bool)
            mean, sd, lo, hi, note = _t_mean(value[ok] - base[ok], level)
            rows.append({"outcome": name, "timepoint": tp, "n": int(ok.sum()),
                         "n_answered": int((ok & ~died).sum()), "n_died": int((ok & died).sum()),
                         "n_missing": int((~ok & ~not_due).sum()), "n_not_due": int((~ok & not_due).sum()),
                         "mean_baseline": float(base[ok].mean()) if ok.any() else math.nan,
                         "mean_value": float(value[ok].mean()) if ok.any() else math.nan,
                         "mean_diff": mean, "sd_diff": sd, "ci_low": lo, "ci_high": hi, "note": note})
    return pd.DataFrame(rows, columns=COMPOSITE_COLUMNS)


def trapezoid_death_zero(days: Any, values: Any, death_day: float, horizon: float) -> float:
    """Area under the piecewise-linear curve through ``(days, values)`` over ``[0, horizon]``, 0 from death on.

    Points at or after ``death_day`` are dropped; the curve runs linearly from
    the last point before death to 0 on ``death_day`` and stays 0 after it.
    ``days`` must start at 0 and be increasing; without a death the last day
    must be ``horizon``.  Returns value x days.
    """
    x = np.asarray(days, dtype=float)
    y = np.asarray(values, dtype=float)
    if not math.isnan(death_day):
        keep = x < death_day
        x, y = x[keep], y[keep]
        x, y = np.append(x, max(death_day, 0.0)), np.append(y, 0.0)
        if x[-1] < horizon:
            x, y = np.append(x, horizon), np.append(y, 0.0)
    if x[-1] > horizon:  # death after the horizon: the curve's value at the horizon by linear interpolation
        at = float(np.interp(horizon, x, y))
        keep = x < horizon
        x, y = np.append(x[keep], horizon), np.append(y[keep], at)
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


QALY_COLUMNS = ["outcome", "horizon_days", "n", "n_alive", "n_died", "n_missing", "n_not_due", "mean_qaly", "sd_qaly",
                "ci_low", "ci_high", "max_qaly", "note"]


def qaly_auc(scores: pd.DataFrame, status: pd.DataFrame, spec: StudySpec) -> pd.DataFrame:
    """Quality-adjusted life years from the operation to the last time point (area under the EQ-5D curve).

    Per EQ-5D outcome: each patient's EQ-5D curve runs through the baseline
    score on day 0 and the score of each follow-up time point on its target
    day, linearly between them (trapezoidal rule), to the horizon :math:`H`,
    the last time point's target day.  A patient who died (by the extract
    date) scores 0 from the day of death on; the curve runs linearly from the
    last score before death to 0 on that day
    (:func:`trapezoid_death_zero`), also when death came after :math:`H`
    but before the last window closed.  QALYs = area (value x days) / 365.25.

    Missing data: complete cases.  A patient is included when the baseline
    score exists and, at every follow-up time point whose target day is
    before death, the patient has a score or died before answering there.
    Left out and counted: ``n_missing`` (a survivor's answer missing before
    the horizon) and ``n_not_due`` (a time point not yet due).  ``n_died``
    included patients who died by day :math:`H`; ``n_alive`` included
    patients alive at :math:`H`.  ``max_qaly`` = :math:`H`/365.25 (full
    health throughout).  Mean QALYs with the t-based CI.
    """
    level = spec.analyses.conf_level
    follow = [t for t in spec.timepoints if t != "baseline"]
    rows = []
    if not follow:
        return pd.DataFrame(columns=QALY_COLUMNS)
    targets = {t: float(spec.timepoints[t].target) for t in follow}
    horizon = targets[follow[-1]]
    for name, oc in spec.outcomes.items():
        if oc.instrument not in EQ5D:
            continue
        t = _score_table(scores, name, status)
        qalys, died_n, alive_n, missing_n, not_due_n = [], 0, 0, 0, 0
        for _, g in t.groupby("operation_id", sort=True):
            by = g.set_index("timepoint")
            st = by["status"].to_dict()
            val = by["value"].astype(float).to_dict()
            base = float(by["baseline"].iloc[0])
            dday = float(by["death_day"].iloc[0])
            if any(st[k] == "not_yet_due" for k in follow):
                not_due_n += 1
                continue
            days, vals, complete = [0.0], [base], not math.isnan(base)
            for k in follow:
                if not math.isnan(dday) and targets[k] >= dday:
                    break  # death came first: the curve reaches 0 at death
                v = float(val[k])
                if not math.isnan(v):
                    days.append(targets[k])
                    vals.append(v)
                elif st[k] != "died_before_answering":
                    complete = False
            if not complete:
                missing_n += 1
                continue
            qalys.append(trapezoid_death_zero(days, vals, dday, horizon) / DAYS_PER_YEAR)
            if not math.isnan(dday) and dday <= horizon:
                died_n += 1
            else:
                alive_n += 1
        arr = np.asarray(qalys, dtype=np.float64)
        mean, sd, lo, hi, note = _t_mean(arr, level)
        rows.append({"outcome": name, "horizon_days": int(horizon), "n": int(arr.size), "n_alive": alive_n,
                     "n_died": died_n, "n_missing": missing_n, "n_not_due": not_due_n, "mean_qaly": mean,
                     "sd_qaly": sd, "ci_low": lo, "ci_high": hi, "max_qaly": horizon / DAYS_PER_YEAR, "note": note})
    return pd.DataFrame(rows, columns=QALY_COLUMNS)

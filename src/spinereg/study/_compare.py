"""STROBE items 12-14 in numbers: who was left out, who answered, and how long patients were followed.

* :func:`baseline_comparison` compares, at baseline, the patients included with
  those excluded for lacking a complete baseline questionnaire (the last
  cohort step), and the patients who answered at the last follow-up time
  point (responders) with those alive and due who did not (non-responders).
* :func:`follow_up_time` gives the median follow-up by the reverse
  Kaplan-Meier method (Schemper and Smith 1996).
* :func:`answer_days` gives the days from the operation of each time point's
  answers.

Standardised differences, not p-values, describe the comparisons, as STROBE
recommends for baseline comparisons (Vandenbroucke et al. 2007, item 14a;
Austin 2009 for the formulas):

.. math::

    d = \\frac{\\bar x_1 - \\bar x_0}{\\sqrt{(s_1^2 + s_0^2)/2}} \\quad\\text{(continuous)},\\qquad
    d = \\frac{p_1 - p_0}{\\sqrt{(p_1(1-p_1) + p_0(1-p_0))/2}} \\quad\\text{(binary)}

with SDs on n - 1 degrees of freedom.  An absolute difference above 0.1 is
commonly read as a meaningful imbalance (Austin 2009).

Missing-data policy: each variable uses the patients with a value in both
groups; the n of each group is given per variable.  A difference that cannot
be computed (an empty group, or no variation in either group) is NaN with a
note.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from spinereg.data import Extract
from spinereg.stats import kaplan_meier
from spinereg.study._analyses import DAYS_PER_MONTH, OUTCOME_LABELS, outcome_scores
from spinereg.study._cohort import CohortResult, match_timepoints, select_cohort
from spinereg.study._spec import StudySpec

__all__ = [
    "COMPARISON_COLUMNS",
    "answer_days",
    "baseline_comparison",
    "follow_up_time",
    "setting",
    "software_versions",
    "standardized_difference",
    "standardized_difference_binary",
]

COMPARISON_COLUMNS = ["comparison", "group_1", "group_0", "variable", "label", "kind", "n_1", "n_0", "mean_1",
                      "sd_1", "mean_0", "sd_0", "count_1", "percent_1", "count_0", "percent_0", "smd", "note"]


def standardized_difference(a: Any, b: Any) -> float:
    """Standardised difference of two means: (mean_a - mean_b) / sqrt((var_a + var_b) / 2).

    NaN with fewer than 2 values in a group; 0 when neither group varies and the means agree.
    """
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if x.size < 2 or y.size < 2:
        return math.nan
    pooled = (x.var(ddof=1) + y.var(ddof=1)) / 2
    if pooled <= 0:  # no variation in either group: no imbalance when the means agree, else undefined
        return 0.0 if x.mean() == y.mean() else math.nan
    return float((x.mean() - y.mean()) / math.sqrt(pooled))


def standardized_difference_binary(p1: float, p0: float) -> float:
    """Standardised difference of two proportions (Austin 2009); 0 when both are 0 or both 1, NaN for 0 against 1."""
    pooled = (p1 * (1 - p1) + p0 * (1 - p0)) / 2
    if not pooled > 0:  # both groups all 0 or all 1: no imbalance when they agree, else undefined
        return 0.0 if p1 == p0 else math.nan
    return float((p1 - p0) / math.sqrt(pooled))


def _continuous(comparison: str, g1: str, g0: str, variable: str, label: str, x1: Any, x0: Any) -> dict[str, Any]:
    a = np.asarray(x1, dtype=float)
    b = np.asarray(x0, dtype=float)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    smd = standardized_difference(a, b)
    note = "" if not math.isnan(smd) else "not estimable: needs at least 2 values with some variation per group"
    return {"comparison": comparison, "group_1": g1, "group_0": g0, "variable": variable, "label": label,
            "kind": "continuous", "n_1": int(a.size), "n_0": int(b.size),
            "mean_1": float(a.mean()) if a.size else math.nan, "sd_1": float(a.std(ddof=1)) if a.size > 1 else math.nan,
            "mean_0": float(b.mean()) if b.size else math.nan, "sd_0": float(b.std(ddof=1)) if b.size > 1 else math.nan,
            "smd": smd, "note": note}


def _binary(comparison: str, g1: str, g0: str, variable: str, label: str, x1: Any, x0: Any) -> dict[str, Any]:
    a = pd.Series(x1, dtype="boolean").dropna()
    b = pd.Series(x0, dtype="boolean").dropna()
    k1, k0 = int(a.sum()), int(b.sum())
    n1, n0 = len(a), len(b)
    p1 = k1 / n1 if n1 else math.nan
    p0 = k0 / n0 if n0 else math.nan
    smd = standardized_difference_binary(p1, p0) if n1 and n0 else math.nan
    note = "" if not math.isnan(smd) else "not estimable: an empty group, or no variation in either group"
    return {"comparison": comparison, "group_1": g1, "group_0": g0, "variable": variable, "label": label,
            "kind": "binary", "n_1": n1, "n_0": n0, "count_1": k1, "percent_1": 100 * p1, "count_0": k0,
            "percent_0": 100 * p0, "smd": smd, "note": note}


def _baseline_scores(extract: Extract, ops: pd.DataFrame, spec: StudySpec) -> dict[str, pd.Series]:
    """Per outcome, the baseline score of each operation (NaN when none), indexed by operation id."""
    matched = match_timepoints(extract["proms"], ops, spec)
    scores = outcome_scores(matched[matched["timepoint_matched"] == "baseline"], spec)
    oid = ops["operation_id"].astype(str)
    out = {}
    for name in spec.outcomes:
        s = scores[scores["outcome"] == name].set_index("operation_id")["value"]
        out[name] = s.reindex(oid)
    return out


def _rows(comparison: str, g1: str, g0: str, in1: np.ndarray[Any, np.dtype[np.bool_]],
          in0: np.ndarray[Any, np.dtype[np.bool_]], ops: pd.DataFrame, base: dict[str, pd.Series],
          spec: StudySpec, labels: dict[str, str], skip: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    rows = []
    age = ops["age_years"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    rows.append(_continuous(comparison, g1, g0, "age", "Age at operation (years)", age[in1], age[in0]))
    sex = ops["sex"].astype("string")
    female = (sex == "female").astype("boolean").where(sex.notna())
    rows.append(_binary(comparison, g1, g0, "female", "Female sex", female[in1], female[in0]))
    asa = pd.to_numeric(ops["asa_class"], errors="coerce")
    asa3 = (asa >= 3).astype("boolean").where(asa.notna())
    rows.append(_binary(comparison, g1, g0, "asa_3_or_more", "ASA class 3 or more", asa3[in1], asa3[in0]))
    for name, label in (("sins", "SINS"), ("tokuhashi", "Revised Tokuhashi score")):
        v = pd.to_numeric(ops[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        rows.append(_continuous(comparison, g1, g0, name, label, v[in1], v[in0]))
    for name in spec.outcomes:
        if name in skip:
            continue
        v = base[name].to_numpy(dtype=float, na_value=np.nan)
        rows.append(_continuous(comparison, g1, g0, f"baseline_{name}", f"Baseline {labels[name]}", v[in1], v[in0]))
    return rows


def baseline_comparison(extract: Extract, spec: StudySpec, cohort: CohortResult,
                        cutoff: pd.Timestamp) -> pd.DataFrame:
    """Included vs excluded, and responders vs non-responders: baseline characteristics, standardised differences.

    Parameters
    ----------
    extract : Extract
        The whole extract (the excluded patients are not in the cohort's part).
    spec : StudySpec
        The study.
    cohort : CohortResult
        The selected cohort.
    cutoff : Timestamp
        The extract date: whether a follow-up window has closed.

    Returns
    -------
    DataFrame
        :data:`COMPARISON_COLUMNS`; ``comparison`` is ``included_vs_excluded``
        (only when the spec requires a baseline questionnaire: group 1 the
        cohort, group 0 the patients who met every other criterion) and
        ``responders_vs_nonresponders`` at the last follow-up time point
        (group 1 answered, group 0 alive, due and without an answer; the dead
        and those not yet due are in neither).
    """
    rows: list[dict[str, Any]] = []
    ops = cohort.operations
    labels = {k: OUTCOME_LABELS[oc.instrument] + (f", {oc.valueset} value set" if oc.valueset else "")
              for k, oc in spec.outcomes.items()}
    if spec.cohort.require_baseline:
        loose = spec.model_copy(update={"cohort": spec.cohort.model_copy(update={"require_baseline": []})})
        eligible = select_cohort(extract, loose).operations.reset_index(drop=True)
        inc = eligible["operation_id"].isin(ops["operation_id"]).to_numpy(dtype=bool)
        base = _baseline_scores(extract, eligible, spec)
        # the outcomes whose baseline questionnaire was required are missing for every excluded patient: left out
        rows += _rows("included_vs_excluded", "included", "excluded: no complete baseline questionnaire", inc, ~inc,
                      eligible, base, spec, labels, frozenset(spec.cohort.require_baseline))
    follow = [k for k in spec.timepoints if k != "baseline"]
    if follow:
        last = max(follow, key=lambda k: spec.timepoints[k].window[1])
        tp = spec.timepoints[last]
        matched = match_timepoints(extract["proms"], ops, spec)
        answered = ops["operation_id"].isin(
            matched.loc[matched["timepoint_matched"] == last, "operation_id"]).to_numpy(dtype=bool)
        closes = ops["date"] + pd.to_timedelta(tp.window[1], unit="D")
        death = ops["death_date"]
        dead_by_end = (death.notna() & (death <= cutoff) & (death <= closes)).to_numpy(dtype=bool)
        due = (closes <= cutoff).to_numpy(dtype=bool)
        nonresp = ~answered & ~dead_by_end & due
        base = _baseline_scores(extract, ops, spec)
        rows += _rows(f"responders_vs_nonresponders_{last}", f"answered at {last}",
                      f"alive and due at {last}, no answer", answered, nonresp, ops, base, spec, labels)
    out = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    for c in ("count_1", "count_0"):
        out[c] = out[c].astype("Int64")
    return out


FOLLOW_UP_TIME_COLUMNS = ["n", "n_alive_censored", "median_months", "ci_low", "ci_high", "median_days",
                          "observed_median_months", "note"]


def follow_up_time(operations: pd.DataFrame, cutoff: pd.Timestamp, conf_level: float = 0.95) -> pd.DataFrame:
    """Median follow-up by the reverse Kaplan-Meier method (Schemper and Smith 1996).

    The Kaplan-Meier estimator with the indicator reversed: being alive at the
    extract date (censored for survival) is the "event", and death censors.
    Its median is the median potential follow-up, which is not shortened by
    early deaths.  As R: ``survfit(Surv(time, 1 - dead) ~ 1)``, median with
    the Brookmeyer-Crowley CI on the log scale; months are 365.25/12 days.
    ``observed_median_months`` is the plain median time to death or the extract
    date, for comparison.
    """
    death = operations["death_date"]
    dead = (death.notna() & (death <= cutoff)).to_numpy(dtype=bool)
    end = death.where(pd.Series(dead, index=operations.index), cutoff)
    days = np.maximum((end - operations["date"]).dt.days.to_numpy(dtype=float), 0.0)
    n = int(days.size)
    if n == 0:
        return pd.DataFrame([{"n": 0, "n_alive_censored": 0, "median_months": math.nan, "ci_low": math.nan,
                              "ci_high": math.nan, "median_days": math.nan, "observed_median_months": math.nan,
                              "note": "not estimable: no patients"}], columns=FOLLOW_UP_TIME_COLUMNS)
    km = kaplan_meier(days / DAYS_PER_MONTH, (~dead).astype(int), conf_type="log", conf_level=conf_level)
    med = km.median.iloc[0]
    m = float(med["median"])
    note = "" if not math.isnan(m) else "not reached: fewer than half the patients were followed to the extract date"
    return pd.DataFrame([{"n": n, "n_alive_censored": int((~dead).sum()), "median_months": m,
                          "ci_low": float(med["ci_low"]), "ci_high": float(med["ci_high"]),
                          "median_days": m * DAYS_PER_MONTH, "observed_median_months": float(np.median(days))
                          / DAYS_PER_MONTH, "note": note}], columns=FOLLOW_UP_TIME_COLUMNS)


ANSWER_DAYS_COLUMNS = ["timepoint", "target", "window_start", "window_end", "n", "median", "q1", "q3", "min", "max"]


def answer_days(scores: pd.DataFrame, spec: StudySpec) -> pd.DataFrame:
    """Days from the operation of the answers used at each time point: n, median, quartiles (R type 7), range.

    One answer per patient and time point (the one matched to it); ``scores``
    is :func:`spinereg.study.outcome_scores`' long table, so a questionnaire
    counts when it gave any outcome's score.
    """
    per = scores.drop_duplicates(["operation_id", "timepoint"])
    rows = []
    for name, tp in spec.timepoints.items():
        d = per.loc[per["timepoint"] == name, "day"].to_numpy(dtype=float)
        q1, med, q3 = np.quantile(d, [0.25, 0.5, 0.75]) if d.size else (math.nan,) * 3
        rows.append({"timepoint": name, "target": tp.target, "window_start": tp.window[0],
                     "window_end": tp.window[1], "n": int(d.size), "median": float(med), "q1": float(q1),
                     "q3": float(q3), "min": float(d.min()) if d.size else math.nan,
                     "max": float(d.max()) if d.size else math.nan})
    return pd.DataFrame(rows, columns=ANSWER_DAYS_COLUMNS)


SETTING_COLUMNS = ["n_hospitals", "n_departments", "first_operation", "last_operation", "n_missing_hospital"]


def setting(operations: pd.DataFrame) -> pd.DataFrame:
    """The cohort's setting (STROBE 5): hospitals and departments that operated, first and last operation date.

    Departments are counted as distinct (hospital, department) pairs; operations
    without a hospital are counted in ``n_missing_hospital``.
    """
    hosp = operations["hospital"].astype("string") if "hospital" in operations else pd.Series(dtype="string")
    dept = operations["department"].astype("string") if "department" in operations else pd.Series(dtype="string")
    pairs = pd.DataFrame({"h": hosp, "d": dept}).dropna()
    dates = operations["date"]
    return pd.DataFrame([{
        "n_hospitals": int(hosp.dropna().nunique()), "n_departments": len(pairs.drop_duplicates()),
        "first_operation": dates.min() if len(dates) else pd.NaT,
        "last_operation": dates.max() if len(dates) else pd.NaT,
        "n_missing_hospital": int(hosp.isna().sum())}], columns=SETTING_COLUMNS)


SOFTWARE_COLUMNS = ["component", "version", "detail"]


def software_versions(spec: StudySpec) -> pd.DataFrame:
    """The software and value sets that computed the results (STROBE 12, RECORD 12): name, version, detail.

    spinereg, Python and the numerical libraries at run time; for each EQ-5D
    outcome its value set's key, EQ-5D version and citation.
    """
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from spinereg._version import __version__
    from spinereg.instruments import find_valueset

    rows = [{"component": "spinereg", "version": __version__, "detail": ""},
            {"component": "Python", "version": platform.python_version(), "detail": platform.python_implementation()}]
    for pkg in ("numpy", "pandas", "scipy", "statsmodels"):
        try:
            v = version(pkg)
        except PackageNotFoundError:
            v = "not installed"
        rows.append({"component": pkg, "version": v, "detail": ""})
    for name, oc in spec.outcomes.items():
        if not oc.valueset:
            continue
        form, type_ = ("3L", "TTO") if oc.instrument == "eq5d3l" else ("5L", "VT")
        vs = find_valueset(form, type_, oc.valueset)
        src = dict(vs.source)
        rows.append({"component": f"EQ-5D-{vs.version} value set ({name})", "version": str(vs.key),
                     "detail": f"{vs.label}; doi:{src['doi']}" if src.get("doi") else str(vs.label)})
    return pd.DataFrame(rows, columns=SOFTWARE_COLUMNS)

"""The analyses of a study, each a tidy DataFrame with stable snake_case columns.

Every function takes the selected cohort (one index operation per patient)
and returns numbers only; the report layer formats them.  Quantities that
cannot be computed (no patients, one patient, no variation) are NaN with a
plain reason in ``note``; nothing raises for a small cohort.

Missing-data policy
-------------------
* Descriptive statistics use the non-missing values and report the missing
  count beside them.
* Paired change and responders are complete-case: a patient counts at a
  follow-up time point when both the baseline and that time point's score
  exist.
* The mixed model uses every available score of the patients alive at the
  time point (valid when the survivors' missing answers are missing at random
  given their observed scores); see :mod:`spinereg.study._estimands` for the
  estimands and the composites in which death counts.
* Rates use the patients (levels) that could be assessed: complications all
  cohort patients; cement leaks the patients (treated levels) with at least one
  post-operative imaging finding.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from spinereg.data import Extract, entity
from spinereg.instruments import InvalidInputWarning, eq5d, odi, pchc
from spinereg.stats import kaplan_meier, mixed_change, paired_change, proportion
from spinereg.study._cohort import OUTCOME_ITEMS
from spinereg.study._spec import Outcome, StudySpec

__all__ = [
    "DAYS_PER_MONTH",
    "LEAK_COMPLICATIONS",
    "LEAK_LINK_DAYS",
    "OUTCOME_LABELS",
    "OUTCOME_SCALES",
    "RELATIVE_RESPONSE",
    "cluster_bootstrap_proportion",
    "cluster_robust_proportion",
    "clustered_leak_rate",
    "complication_rates",
    "complication_types",
    "describe_continuous",
    "descriptive",
    "imaging_modality",
    "leak_rates",
    "level_region",
    "mixed_models",
    "mortality",
    "outcome_scores",
    "outcome_summary",
    "paired_changes",
    "pchc_table",
    "responders",
    "safety_events",
    "score_group",
    "survival",
    "symptomatic_leaks",
]

DAYS_PER_MONTH = 365.25 / 12

OUTCOME_LABELS: dict[str, str] = {
    "eq5d3l": "EQ-5D-3L index",
    "eq5d5l": "EQ-5D-5L index",
    "odi": "Oswestry Disability Index (0-100)",
    "eqvas": "EQ VAS (0-100)",
    "nrs_back": "Back pain NRS (0-10)",
    "nrs_leg": "Leg pain NRS (0-10)",
}

#: Whole scale of each instrument's score (lowest, highest); the EQ-5D index's comes from its value set.
OUTCOME_SCALES: dict[str, tuple[float, float]] = {"odi": (0.0, 100.0), "eqvas": (0.0, 100.0),
                                                  "nrs_back": (0.0, 10.0), "nrs_leg": (0.0, 10.0)}


def outcome_scale(instrument: str, valueset: str | None) -> tuple[float, float] | None:
    """The whole scale of an outcome: fixed for ODI, EQ VAS and NRS; for an EQ-5D index the lowest
    and highest value of its value set over every health state (243 for 3L, 3,125 for 5L).
    ``None`` when not known (an EQ-5D outcome without a value set)."""
    if not instrument.startswith("eq5d"):
        return OUTCOME_SCALES.get(instrument)
    if not valueset:
        return None
    import itertools

    from spinereg.instruments import eq5d

    version, type_ = ("3L", "TTO") if instrument == "eq5d3l" else ("5L", "VT")
    levels = 3 if version == "3L" else 5
    states = ["".join(map(str, st)) for st in itertools.product(range(1, levels + 1), repeat=5)]
    values = np.asarray(eq5d(states, version=version, type=type_, country=valueset), dtype=float)
    return (float(np.nanmin(values)), float(np.nanmax(values)))

_CONTINUOUS = ["n", "missing", "mean", "sd", "median", "q1", "q3", "min", "max"]
TABLE1_COLUMNS = ["variable", "label", "kind", "level", *_CONTINUOUS, "count", "percent", "summary", "quantile_type",
                  "note"]

#: The summary Table 1 shows for a continuous variable, declared per variable (and per instrument for the
#: baseline scores): ``mean_sd`` for a roughly symmetric measurement, ``median_iqr`` for a skewed, bounded or
#: ordinal one.  Documented in docs/report.md ("Table 1").
SUMMARY_BY_VARIABLE: dict[str, str] = {
    "age": "mean_sd",
    "n_levels": "median_iqr",
    "cement_volume_ml": "median_iqr",
    "sins": "median_iqr",
    "tokuhashi": "median_iqr",
    "tomita": "median_iqr",
}
SUMMARY_BY_INSTRUMENT: dict[str, str] = {
    "eq5d3l": "median_iqr",  # bounded above at 1, skewed, with a gap below full health
    "eq5d5l": "median_iqr",
    "odi": "mean_sd",
    "eqvas": "mean_sd",
    "nrs_back": "median_iqr",  # an 11-point ordinal scale
    "nrs_leg": "median_iqr",
}
#: Integer scores and counts: quartiles of R's type 1 (the inverse of the empirical distribution function,
#: Hyndman and Fan 1996), which are observed values, so a score of whole points never shows as 10.8.
INTEGER_VARIABLES = frozenset({"n_levels", "sins", "tokuhashi", "tomita"})
INTEGER_INSTRUMENTS = frozenset({"nrs_back", "nrs_leg"})

#: Standard categories.  SINS: Fisher CG et al. Spine 2010;35(22):E1221-9 (0-6 stable, 7-12 potentially
#: unstable (indeterminate), 13-18 unstable).  Revised Tokuhashi: Tokuhashi Y et al. Spine 2005;30(19):2186-91
#: (0-8 predicted survival < 6 months, 9-11 >= 6 months, 12-15 >= 1 year).
SCORE_GROUPS: dict[str, tuple[tuple[int, int, str], ...]] = {
    "sins": ((0, 6, "0-6 stable"), (7, 12, "7-12 potentially unstable"), (13, 18, "13-18 unstable")),
    "tokuhashi": ((0, 8, "0-8"), (9, 11, "9-11"), (12, 15, "12-15")),
}
REGION_LEVELS = ("thoracic only", "lumbar only", "thoracic and lumbar", "other")


def _nan_note(n: int, need: int, what: str) -> str:
    return "" if n >= need else f"not estimable: {what} needs at least {need} value{'s' * (need > 1)}, n = {n}"


def describe_continuous(values: Any, quantile_type: int = 7) -> dict[str, Any]:
    """n, missing, mean, SD (n - 1), median, quartiles, min, max and a note.

    ``quantile_type`` 7 (R's default, linear interpolation) or 1 (R's type 1,
    the inverse of the empirical distribution function: the smallest observed
    value x with F_n(x) >= p, so an integer score gives integer quartiles and
    median; Hyndman RJ, Fan Y. Am Stat 1996;50(4):361-5).
    """
    if quantile_type not in (1, 7):
        raise ValueError(f"quantile_type must be 1 or 7, not {quantile_type!r}")
    v = pd.to_numeric(pd.Series(values, dtype="Float64"), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    ok = v[~np.isnan(v)]
    n = int(ok.size)
    out: dict[str, Any] = {"n": n, "missing": int(v.size - n)}
    if n:
        q1, med, q3 = np.quantile(ok, [0.25, 0.5, 0.75], method="inverted_cdf" if quantile_type == 1 else "linear")
        out.update(mean=float(ok.mean()), sd=float(ok.std(ddof=1)) if n > 1 else math.nan, median=float(med),
                   q1=float(q1), q3=float(q3), min=float(ok.min()), max=float(ok.max()))
    else:
        out.update(mean=math.nan, sd=math.nan, median=math.nan, q1=math.nan, q3=math.nan, min=math.nan,
                   max=math.nan)
    out["note"] = "not estimable: no values" if n == 0 else ("SD not estimable: one value" if n == 1 else "")
    return out


def _categorical_rows(variable: str, label: str, values: pd.Series, levels: Sequence[str]) -> list[dict[str, Any]]:
    s = values.astype("string")
    n = int(s.notna().sum())
    missing = int(s.isna().sum())
    counts = s.value_counts()
    extra = [str(x) for x in counts.index if x not in levels]
    rows = []
    for level in [*levels, *sorted(extra)]:
        k = int(counts.get(level, 0))
        rows.append({"variable": variable, "label": label, "kind": "categorical", "level": level, "n": n,
                     "missing": missing, "count": k, "percent": 100.0 * k / n if n else math.nan,
                     "note": "" if n else "not estimable: no values"})
    return rows


def _continuous_row(variable: str, label: str, values: Any, summary: str = "mean_sd",
                    quantile_type: int = 7) -> dict[str, Any]:
    return {"variable": variable, "label": label, "kind": "continuous", "level": "",
            **describe_continuous(values, quantile_type), "summary": summary, "quantile_type": quantile_type}


def _table1_continuous(variable: str, label: str, values: Any) -> dict[str, Any]:
    return _continuous_row(variable, label, values, SUMMARY_BY_VARIABLE.get(variable, "median_iqr"),
                           1 if variable in INTEGER_VARIABLES else 7)


def score_group(values: Any, groups: Sequence[tuple[int, int, str]]) -> pd.Series:
    """The standard category of each score (``groups``: inclusive lower, upper, label); missing stays missing."""
    v = pd.to_numeric(pd.Series(values), errors="coerce")
    out = pd.Series(pd.NA, index=v.index, dtype="string")
    for lo, hi, label in groups:
        out[(v >= lo) & (v <= hi)] = label
    return out


def level_region(levels: pd.DataFrame, operation_ids: pd.Series) -> pd.Series:
    """Per operation: whether its treated levels are thoracic only, lumbar only, both, or other (any C or S level).

    Levels are the registry's vertebra codes (T1-T12 thoracic, L1-L5 lumbar); an operation without treated
    levels is missing.
    """
    code = levels["level"].astype(str).str.upper().str[0]
    per = pd.DataFrame({"op": levels["operation_id"].astype(str), "t": code == "T", "l": code == "L",
                        "o": ~code.isin(["T", "L"])}).groupby("op").any()
    region = pd.Series(np.select([per["o"], per["t"] & per["l"], per["t"], per["l"]],
                                 ["other", "thoracic and lumbar", "thoracic only", "lumbar only"], "other"),
                       index=per.index, dtype="string")
    return region.reindex(operation_ids.astype(str)).reset_index(drop=True)


def outcome_scores(matched: pd.DataFrame, spec: StudySpec) -> pd.DataFrame:
    """The score of every outcome at every matched time point, long format.

    Returns
    -------
    DataFrame
        ``patient_id, operation_id, timepoint, day, outcome, value`` (rows with
        a missing score dropped).  EQ-5D index with the outcome's value set,
        missing when any item is missing; ODI with at most one section
        missing (Fairbank & Pynsent 2000); EQ VAS and NRS as answered.
    """
    frames = []
    for name, oc in spec.outcomes.items():
        if matched.empty:
            continue
        vals = _score(matched, oc)
        f = pd.DataFrame({"patient_id": matched["patient_id"].astype(str).to_numpy(),
                          "operation_id": matched["operation_id"].astype(str).to_numpy(),
                          "timepoint": matched["timepoint_matched"].astype(str).to_numpy(),
                          "day": matched["day"].to_numpy(dtype=np.int64),
                          "outcome": name, "value": vals})
        frames.append(f[~np.isnan(vals)])
    if not frames:
        return pd.DataFrame({"patient_id": pd.Series(dtype=str), "operation_id": pd.Series(dtype=str),
                             "timepoint": pd.Series(dtype=str), "day": pd.Series(dtype=np.int64),
                             "outcome": pd.Series(dtype=str), "value": pd.Series(dtype=float)})
    out: pd.DataFrame = pd.concat(frames, ignore_index=True)
    return out


def _score(matched: pd.DataFrame, oc: Outcome) -> np.ndarray[Any, np.dtype[np.float64]]:
    items = OUTCOME_ITEMS[oc.instrument]
    arr = matched[items].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    if oc.instrument in ("eq5d3l", "eq5d5l"):
        version, type_ = ("3L", "TTO") if oc.instrument == "eq5d3l" else ("5L", "VT")
        cols = {d.upper(): arr[:, i] for i, d in enumerate(("mo", "sc", "ua", "pd", "ad"))}
        with warnings.catch_warnings():  # incomplete questionnaires are expected: their index is missing
            warnings.simplefilter("ignore", InvalidInputWarning)
            return np.asarray(eq5d(cols, version, type_, oc.valueset or "", invalid="nan"), dtype=np.float64)
    if oc.instrument == "odi":
        return np.asarray(odi(arr, max_missing=1, invalid="nan")["odi"].to_numpy(dtype=float), dtype=np.float64)
    return arr[:, 0].astype(np.float64)


def descriptive(operations: pd.DataFrame, extract: Extract, scores: pd.DataFrame,
                spec: StudySpec) -> pd.DataFrame:
    """Table 1: baseline characteristics of the cohort.

    Continuous variables: n, missing, mean (SD), median (IQR), range, and
    ``summary``, the one the report shows (:data:`SUMMARY_BY_VARIABLE`,
    :data:`SUMMARY_BY_INSTRUMENT`); integer scores have observed-value
    quartiles (``quantile_type`` 1, :data:`INTEGER_VARIABLES`).  Age is in
    completed years.  SINS and the revised Tokuhashi score also in their
    standard categories (:data:`SCORE_GROUPS`); the region of the treated
    levels per patient (:func:`level_region`).
    Categorical variables: count and percent of the non-missing values, with
    the missing count.  Baseline outcomes come from the matched baseline
    questionnaires.
    """
    ops = operations
    oid = ops["operation_id"].astype(str)
    lv = extract["treated_levels"]
    lv = lv[lv["operation_id"].astype(str).isin(set(oid))]
    per_op = lv.groupby(lv["operation_id"].astype(str), observed=True)
    n_levels = per_op.size().reindex(oid, fill_value=0).to_numpy(dtype=float)
    has_volume = per_op["cement_volume_ml"].count().reindex(oid, fill_value=0)
    volume = per_op["cement_volume_ml"].sum(min_count=1).astype("Float64").reindex(oid)
    volume = volume.where(has_volume.to_numpy() > 0)
    age = ops["age_years"] if "age_years" in ops else np.floor(pd.to_numeric(ops["age"]))
    rows: list[dict[str, Any]] = [_table1_continuous("age", "Age at operation (completed years)", age)]
    col = entity("patients").column("sex")
    rows += _categorical_rows("sex", "Sex", ops["sex"], col.values)
    op_ent = entity("operations")
    for name, label in (("asa_class", "ASA class"), ("anaesthesia", "Anaesthesia"),
                        ("cancer_primary_site", "Primary cancer site")):
        rows += _categorical_rows(name, label, ops[name], op_ent.column(name).values)
    rows.append(_table1_continuous("n_levels", "Vertebral levels treated", np.where(n_levels > 0, n_levels, np.nan)))
    rows += _categorical_rows("level_region", "Region of the treated levels", level_region(lv, oid), REGION_LEVELS)
    rows.append(_table1_continuous("cement_volume_ml", "Cement volume per operation (ml)", volume.to_numpy(
        dtype=float, na_value=np.nan)))
    for name, label in (("sins", "SINS"), ("tokuhashi", "Revised Tokuhashi score"), ("tomita", "Tomita score")):
        rows.append(_table1_continuous(name, label, ops[name]))
        if name in SCORE_GROUPS:
            groups = SCORE_GROUPS[name]
            rows += _categorical_rows(f"{name}_group", f"{label}, category", score_group(ops[name], groups),
                                      [g[2] for g in groups])
    base = scores[scores["timepoint"] == "baseline"]
    for name, oc in spec.outcomes.items():
        v = base.loc[base["outcome"] == name].set_index("operation_id")["value"].reindex(oid)
        rows.append(_continuous_row(f"baseline_{name}", f"Baseline {_outcome_label(oc)}", v.to_numpy(),
                                    SUMMARY_BY_INSTRUMENT.get(oc.instrument, "median_iqr"),
                                    1 if oc.instrument in INTEGER_INSTRUMENTS else 7))
    out = pd.DataFrame(rows).reindex(columns=TABLE1_COLUMNS)
    out["count"] = out["count"].astype("Int64")
    out["quantile_type"] = out["quantile_type"].astype("Int64")
    out["summary"] = out["summary"].fillna("")
    return out


def _outcome_label(oc: Outcome) -> str:
    label = OUTCOME_LABELS[oc.instrument]
    return f"{label}, {oc.valueset} value set" if oc.valueset else label


def _followups(spec: StudySpec) -> list[str]:
    return [t for t in spec.timepoints if t != "baseline"]


def _wide(scores: pd.DataFrame, outcome: str, operations: pd.DataFrame) -> pd.DataFrame:
    s = scores[scores["outcome"] == outcome]
    # pivot, not pivot_table: one score per operation and time point, and a duplicate must raise
    w = s.pivot(index="operation_id", columns="timepoint", values="value")  # noqa: PD010
    return w.reindex(operations["operation_id"].astype(str))


def outcome_summary(scores: pd.DataFrame, operations: pd.DataFrame, spec: StudySpec) -> pd.DataFrame:
    """Per outcome and time point: n, mean with its t-based CI, SD, median and IQR.

    Uses every patient with a score at that time point (not only pairs); the
    CI is :math:`\\bar y \\pm t_{1-\\alpha/2, n-1} s/\\sqrt n`.
    """
    level = spec.analyses.conf_level
    rows = []
    for name in spec.outcomes:
        w = _wide(scores, name, operations)
        for tp in spec.timepoints:
            v = w[tp].to_numpy(dtype=float) if tp in w else np.full(len(w), np.nan)
            d = describe_continuous(v)
            n = d["n"]
            if n > 1 and d["sd"] > 0:
                half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * d["sd"] / math.sqrt(n)
                lo, hi = d["mean"] - half, d["mean"] + half
            elif n > 1:
                lo = hi = d["mean"]
            else:
                lo = hi = math.nan
            note = d["note"] if n != 1 else "CI not estimable: one value"
            rows.append({"outcome": name, "timepoint": tp, "n": n, "mean": d["mean"], "sd": d["sd"],
                         "ci_low": lo, "ci_high": hi, "median": d["median"], "q1": d["q1"], "q3": d["q3"],
                         "note": note})
    return pd.DataFrame(rows, columns=["outcome", "timepoint", "n", "mean", "sd", "ci_low", "ci_high", "median",
                                       "q1", "q3", "note"])


PAIRED_COLUMNS = ["outcome", "timepoint", "n_pairs", "mean_before", "sd_before", "mean_after", "sd_after",
                  "mean_diff", "sd_diff", "ci_low", "ci_high", "t_statistic", "df", "p_value", "wilcoxon_v",
                  "hl_estimate", "hl_ci_low", "hl_ci_high", "wilcoxon_p_value", "wilcoxon_method", "srm",
                  "effect_size", "note"]


def paired_changes(scores: pd.DataFrame, operations: pd.DataFrame, spec: StudySpec) -> pd.DataFrame:
    """Paired change from baseline at each follow-up (complete pairs).

    Columns: ``n_pairs``; ``mean_before, sd_before, mean_after, sd_after``
    of the pairs; ``mean_diff`` (after - before) with its t CI (``ci_low,
    ci_high``), ``t_statistic, df, p_value`` (paired t-test); ``wilcoxon_v,
    hl_estimate, hl_ci_low, hl_ci_high, wilcoxon_p_value, wilcoxon_method``
    (Wilcoxon signed-rank with the Hodges-Lehmann estimate, see
    :func:`spinereg.stats.paired_change`); ``srm`` (standardised response
    mean: mean change / SD of the change, Liang et al. 1990) and
    ``effect_size`` (mean change / baseline SD of the pairs, Kazis et al.
    1989); ``note``.
    """
    level = spec.analyses.conf_level
    rows = []
    for name in spec.outcomes:
        w = _wide(scores, name, operations)
        before = w["baseline"].to_numpy(dtype=float) if "baseline" in w else np.full(len(w), np.nan)
        for tp in _followups(spec):
            after = w[tp].to_numpy(dtype=float) if tp in w else np.full(len(w), np.nan)
            ok = ~np.isnan(before) & ~np.isnan(after)
            b, a = before[ok], after[ok]
            t = paired_change(b, a, method="t", conf_level=level).iloc[0]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", RuntimeWarning)
                wx = paired_change(b, a, method="wilcoxon", conf_level=level).iloc[0]
            n = int(ok.sum())
            d = a - b
            sd_d = float(d.std(ddof=1)) if n > 1 else math.nan
            sd_b = float(b.std(ddof=1)) if n > 1 else math.nan
            mean_d = float(d.mean()) if n else math.nan
            notes = [str(x) for x in (t["note"], wx["note"]) if x]
            notes += [f"Wilcoxon: {w.message}".replace("paired_change: ", "") for w in caught]
            srm = mean_d / sd_d if n > 1 and sd_d > 0 else math.nan
            es = mean_d / sd_b if n > 1 and sd_b > 0 else math.nan
            if n > 1 and not sd_d > 0:
                notes.append("SRM not estimable: the change does not vary")
            if n > 1 and not sd_b > 0:
                notes.append("effect size not estimable: the baseline does not vary")
            rows.append({
                "outcome": name, "timepoint": tp, "n_pairs": n,
                "mean_before": float(b.mean()) if n else math.nan, "sd_before": sd_b,
                "mean_after": float(a.mean()) if n else math.nan,
                "sd_after": float(a.std(ddof=1)) if n > 1 else math.nan,
                "mean_diff": mean_d, "sd_diff": sd_d, "ci_low": t["ci_low"], "ci_high": t["ci_high"],
                "t_statistic": t["statistic"], "df": t["df"], "p_value": t["p_value"],
                "wilcoxon_v": wx["statistic"], "hl_estimate": wx["estimate"], "hl_ci_low": wx["ci_low"],
                "hl_ci_high": wx["ci_high"], "wilcoxon_p_value": wx["p_value"], "wilcoxon_method": wx["method"],
                "srm": srm, "effect_size": es, "note": "; ".join(dict.fromkeys(notes)),
            })
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


RESPONDER_COLUMNS = ["outcome", "timepoint", "criterion", "threshold", "mcid", "n_pairs", "x", "proportion", "ci_low",
                     "ci_high", "method", "note"]

# A change equal to the MCID counts as reaching it; this tolerance absorbs
# binary floating-point error in scores such as 22/50*100.
_MCID_TOL = 1e-9

#: Relative-improvement responder thresholds (percent of the baseline score) reported beside the MCID, by
#: instrument: ODI 30% (Ostelo RW, et al. Spine 2008;33(1):90-4: a 30% improvement is a clinically important
#: change in back-pain disability).
RELATIVE_RESPONSE: dict[str, float] = {"odi": 30.0}


def responders(scores: pd.DataFrame, operations: pd.DataFrame, spec: StudySpec) -> pd.DataFrame:
    """Share of complete pairs whose change reaches a responder threshold in the better direction.

    ``criterion = "mcid"``: the change reaches the MCID, ``after - before >=
    mcid`` when higher is better, ``before - after >= mcid`` otherwise
    (``threshold`` = the MCID; outcomes without an MCID have no such rows).

    ``criterion = "relative"`` (instruments in :data:`RELATIVE_RESPONSE`,
    where lower is better; ``threshold`` in percent): the score falls by at
    least that share of the baseline, ``(before - after) / before >=
    threshold / 100``.  A patient with a baseline score of 0 cannot improve and
    counts as a non-responder (kept in the denominator; counted in ``note``).

    Denominator: the complete pairs.  CI: Clopper-Pearson (exact).
    """
    level = spec.analyses.conf_level
    rows = []
    for name, oc in spec.outcomes.items():
        w = _wide(scores, name, operations)
        before = w["baseline"].to_numpy(dtype=float) if "baseline" in w else np.full(len(w), np.nan)
        sign = 1.0 if oc.higher_is_better else -1.0
        criteria: list[tuple[str, float]] = []
        if oc.mcid is not None:
            criteria.append(("mcid", float(oc.mcid)))
        if oc.instrument in RELATIVE_RESPONSE and not oc.higher_is_better:
            criteria.append(("relative", RELATIVE_RESPONSE[oc.instrument]))
        for criterion, threshold in criteria:
            for tp in _followups(spec):
                after = w[tp].to_numpy(dtype=float) if tp in w else np.full(len(w), np.nan)
                ok = ~np.isnan(before) & ~np.isnan(after)
                b, a = before[ok], after[ok]
                notes = []
                if criterion == "mcid":
                    hit = sign * (a - b) >= threshold - _MCID_TOL
                else:
                    zero = b == 0
                    with np.errstate(divide="ignore", invalid="ignore"):
                        rel = np.where(zero, -np.inf, (b - a) / np.where(zero, 1.0, b))
                    hit = rel >= threshold / 100 - _MCID_TOL
                    if zero.any():
                        k = int(zero.sum())
                        notes.append(f"{k} patient{'s' * (k > 1)} with a baseline score of 0 counted as "
                                     f"non-responder{'s' * (k > 1)}")
                x = int(hit.sum())
                p = proportion(x, int(ok.sum()), method="clopper-pearson", conf_level=level).iloc[0]
                rows.append({"outcome": name, "timepoint": tp, "criterion": criterion, "threshold": threshold,
                             "mcid": oc.mcid, "n_pairs": int(ok.sum()), "x": x,
                             "proportion": p["proportion"], "ci_low": p["ci_low"], "ci_high": p["ci_high"],
                             "method": "clopper-pearson",
                             "note": "; ".join(t for t in (str(p["note"] or ""), *notes) if t)})
    return pd.DataFrame(rows, columns=RESPONDER_COLUMNS)


def pchc_table(matched: pd.DataFrame, operations: pd.DataFrame, spec: StudySpec) -> pd.DataFrame:
    """Paretian classification of EQ-5D profile change from baseline (Devlin et al. 2010).

    Per EQ-5D outcome and follow-up: ``category`` (better, worse, mixed,
    no_change, no_problems), ``n`` and ``percent`` of the complete pairs.
    """
    rows = []
    oid = operations["operation_id"].astype(str)
    for name, oc in spec.outcomes.items():
        if oc.instrument not in ("eq5d3l", "eq5d5l"):
            continue
        items = OUTCOME_ITEMS[oc.instrument]
        version = "3L" if oc.instrument == "eq5d3l" else "5L"

        def profiles(tp: str, items: list[str] = items) -> pd.DataFrame:
            m = matched[matched["timepoint_matched"] == tp]
            return m.set_index(m["operation_id"].astype(str))[items].reindex(oid)

        base = profiles("baseline")
        for tp in _followups(spec):
            after = profiles(tp)
            ok = (base.notna().all(axis=1) & after.notna().all(axis=1)).to_numpy(dtype=bool)
            n_pairs = int(ok.sum())

            def as_cols(f: pd.DataFrame, ok: np.ndarray[Any, np.dtype[np.bool_]] = ok) -> dict[str, Any]:
                arr = f.to_numpy(dtype=float, na_value=np.nan)[ok].astype(np.int64)
                return {d.upper(): arr[:, i] for i, d in enumerate(("mo", "sc", "ua", "pd", "ad"))}

            if n_pairs:
                summ = pchc(as_cols(base), as_cols(after), version, summary=True)
                counts = dict(zip(summ["category"], summ["n"], strict=True))
            else:
                counts = {}
            for cat in ("better", "worse", "mixed", "no_change", "no_problems"):
                k = int(counts.get(cat, 0))
                rows.append({"outcome": name, "timepoint": tp, "category": cat, "n_pairs": n_pairs, "n": k,
                             "percent": 100.0 * k / n_pairs if n_pairs else math.nan,
                             "note": "" if n_pairs else "not estimable: no complete pairs"})
    return pd.DataFrame(rows, columns=["outcome", "timepoint", "category", "n_pairs", "n", "percent", "note"])


RATE_COLUMNS = ["measure", "unit", "category", "x", "n", "proportion", "ci_low", "ci_high", "wilson_ci_low",
                "wilson_ci_high", "note"]


def _rate(measure: str, unit: str, category: str, x: int, n: int, level: float) -> dict[str, Any]:
    cp = proportion(x, n, method="clopper-pearson", conf_level=level).iloc[0]
    wi = proportion(x, n, method="wilson", conf_level=level).iloc[0]
    return {"measure": measure, "unit": unit, "category": category, "x": x, "n": n, "proportion": cp["proportion"],
            "ci_low": cp["ci_low"], "ci_high": cp["ci_high"], "wilson_ci_low": wi["ci_low"],
            "wilson_ci_high": wi["ci_high"], "note": cp["note"]}


_GRADES = ["I", "II", "IIIa", "IIIb", "IVa", "IVb", "V"]


def complication_rates(operations: pd.DataFrame, extract: Extract, spec: StudySpec) -> pd.DataFrame:
    """Complications of the index operation, per patient.

    ``any``: patients with at least one complication; then by Clavien-Dindo
    grade: patients whose *most severe* complication has that grade
    (``ungraded`` when none of a patient's complications is graded), so the
    grade rows add up to ``any``.  Symptomatic cement leaks are reported by
    :func:`leak_rates`.  Denominator: every cohort patient.  CIs: Clopper-Pearson (``ci_low,
    ci_high``) and Wilson (``wilson_ci_low, wilson_ci_high``).
    """
    level = spec.analyses.conf_level
    oid = set(operations["operation_id"].astype(str))
    n = len(oid)
    c = extract["complications"]
    c = c[c["operation_id"].astype(str).isin(oid)]
    rank = {g: i for i, g in enumerate(_GRADES)}
    graded = c.assign(_r=c["clavien_dindo"].astype("string").map(rank).astype("Float64"))
    worst = graded.groupby(graded["operation_id"].astype(str))["_r"].max()
    rows = [_rate("complications", "patient", "any", int(worst.size), n, level)]
    for i, g in enumerate(_GRADES):
        rows.append(_rate("complications", "patient", f"Clavien-Dindo {g}", int((worst == i).sum()), n, level))
    rows.append(_rate("complications", "patient", "ungraded", int(worst.isna().sum()), n, level))
    return pd.DataFrame(rows, columns=RATE_COLUMNS)


def leak_rates(operations: pd.DataFrame, extract: Extract, spec: StudySpec) -> pd.DataFrame:
    """Cement leaks per patient and per treated level, overall, by type, and symptomatic.

    A treated level is *assessed* when it has at least one post-operative
    (or undated) imaging finding at that level; a patient when any treated
    level of the index operation is.  Findings at untreated levels or dated
    before the operation are not counted.  A level leaks when any of its findings shows a leak (of a
    given type); a patient when any level does.  Denominators: assessed
    patients and assessed levels.  Each leak is classified twice: by its
    mechanism (``leak_type``, Yeom et al. 2003: B, S, C; then "type not
    recorded") and by its location (``leak_location``; then "location not
    recorded").  A level with leaks of two mechanisms (or locations) counts
    under both, so those rows need not add up to ``any``.
    """
    level = spec.analyses.conf_level
    # only post-operative findings (or undated ones) at a level the operation treated count
    f = _assessed_findings(operations, extract)
    key_op = f["operation_id"].astype(str).to_numpy()
    key_lv = f["level"].astype(str).to_numpy()
    frame = pd.DataFrame({"op": key_op, "lv": key_lv, "leak": f["leak"].fillna(False).to_numpy(dtype=bool),
                          "type": f["leak_type"].astype("string").to_numpy(dtype=object),
                          "location": (f["leak_location"].astype("string").to_numpy(dtype=object)
                                       if "leak_location" in f.columns else np.full(len(f), None, dtype=object)),
                          "sym": f["symptomatic"].fillna(False).to_numpy(dtype=bool)})
    frame["sym"] &= frame["leak"]
    lv = frame.groupby(["op", "lv"], sort=True)
    per_level = pd.DataFrame({"leak": lv["leak"].any(), "sym": lv["sym"].any()})
    per_patient = per_level.groupby(level="op").any()
    n_lv, n_pt = len(per_level), len(per_patient)
    rows = [_rate("cement leak", "patient", "any", int(per_patient["leak"].sum()), n_pt, level),
            _rate("cement leak", "level", "any", int(per_level["leak"].sum()), n_lv, level)]
    leaking = frame[frame["leak"]]
    # the mechanism (Yeom type) rows, then the location rows: two classifications of the same leaks
    for col, schema_col, missing in (("type", "leak_type", "type not recorded"),
                                     ("location", "leak_location", "location not recorded")):
        for t in entity("imaging_findings").column(schema_col).values:
            hit = leaking[leaking[col] == t]
            rows.append(_rate("cement leak", "patient", t, int(hit["op"].nunique()), n_pt, level))
            rows.append(_rate("cement leak", "level", t, int(hit.groupby(["op", "lv"]).size().size), n_lv, level))
        untyped = leaking[leaking[col].isna()]
        if len(untyped):
            rows.append(_rate("cement leak", "patient", missing, int(untyped["op"].nunique()), n_pt, level))
            rows.append(_rate("cement leak", "level", missing, int(untyped.groupby(["op", "lv"]).size().size),
                              n_lv, level))
    rows.append(_rate("symptomatic cement leak", "patient", "any", int(per_patient["sym"].sum()), n_pt, level))
    rows.append(_rate("symptomatic cement leak", "level", "any", int(per_level["sym"].sum()), n_lv, level))
    return pd.DataFrame(rows, columns=RATE_COLUMNS)


def survival(operations: pd.DataFrame, extract_date: pd.Timestamp, spec: StudySpec,
             at_months: Iterable[float] = (3, 12)) -> dict[str, pd.DataFrame]:
    """Kaplan-Meier survival from the index operation (time in months of 365.25/12 days).

    Death is the event; patients alive are censored at the extract date (a
    death recorded after the extract date is censored there).  Returns
    ``table`` (survival at ``at_months``), ``median`` (median survival in
    months with its CI, Brookmeyer-Crowley as R), ``curve`` (the estimate
    at every distinct observed time, with ``n_event`` and ``n_censor``, for
    the figure) and ``at_risk`` (numbers at risk every 3 months).
    Pointwise CIs on the log scale (R's default ``conf.type = "log"``).
    """
    level = spec.analyses.conf_level
    op_date = operations["date"]
    death = operations["death_date"]
    dead = (death.notna() & (death <= extract_date)).to_numpy(dtype=bool)
    end = death.where(pd.Series(dead, index=operations.index), extract_date)
    days = (end - op_date).dt.days.to_numpy(dtype=float)
    time = np.maximum(days, 0.0) / DAYS_PER_MONTH
    event = dead.astype(int)
    at = list(at_months)
    km = kaplan_meier(time, event, conf_type="log", times=at, conf_level=level)
    table = km.table.rename(columns={"time": "months"})
    table = pd.DataFrame({"months": at}).merge(table, on="months", how="left")
    table["n_risk"] = table["n_risk"].astype("Int64")
    table["note"] = np.where(table["survival"].isna(), "not estimable: no patient followed this long" if len(time)
                             else "not estimable: no patients", "")
    median = km.median.rename(columns={"median": "median_months"}).assign(
        n=km.n, events=km.events, note=km.note)
    uniq = np.unique(time)
    if len(uniq):
        curve = kaplan_meier(time, event, conf_type="log", times=uniq, conf_level=level).table.rename(
            columns={"time": "months"})
        ev = pd.Series(event).groupby(time).agg(["sum", "size"])
        curve["n_event"] = ev["sum"].reindex(curve["months"]).to_numpy(dtype=np.int64)
        curve["n_censor"] = (ev["size"] - ev["sum"]).reindex(curve["months"]).to_numpy(dtype=np.int64)
        if len(curve) and float(curve["survival"].iloc[-1]) == 0.0:
            # everyone died by the longest follow-up: the estimate is 0 from then on (R's summary omits these times)
            after = table["survival"].isna() & (table["months"] >= float(time.max()))
            table.loc[after, "survival"] = 0.0
            table.loc[after, "n_risk"] = 0
            table.loc[after, "note"] = "every patient had died by then: survival 0, CI not estimable"
    else:
        curve = pd.DataFrame(columns=["months", "n_risk", "survival", "ci_low", "ci_high", "n_event", "n_censor"])
    horizon = float(time.max()) if len(time) else 0.0
    ticks = np.arange(0.0, max(horizon, 0.0) + 1e-9, 3.0)
    at_risk = pd.DataFrame({"months": ticks, "n_risk": [int((time >= t).sum()) for t in ticks]})
    return {"table": table, "median": median, "curve": curve.reset_index(drop=True), "at_risk": at_risk}


MIXED_COLUMNS = ["outcome", "timepoint", "estimate", "std_error", "df", "p_value", "ci_low", "ci_high",
                 "n_patients", "n_observations", "note", "population"]


def mixed_models(scores: pd.DataFrame, spec: StudySpec, alive: pd.DataFrame | None = None) -> pd.DataFrame:
    """Sensitivity analysis: mean change from baseline by a random-intercept mixed model.

    Per outcome, ``y ~ timepoint + (1 | patient)`` by REML (nlme's ``lme``;
    see :func:`spinereg.stats.mixed_change`).  One row per follow-up time
    point: the estimated mean change from baseline.

    Without ``alive``, one model per outcome over every score of every cohort
    patient: under missing at random it treats the scores the dead never had
    as missing, and so estimates the change *had no patient died* (a
    hypothetical estimand).

    With ``alive`` (``patient_id, timepoint, status`` from
    :func:`spinereg.study._estimands.followup_status`), the model for time
    point :math:`k` is fitted on every score of the patients *alive at*
    :math:`k` (status answered or alive without an answer) and gives the
    mean change among them: the while-alive estimand of the paired change,
    valid when the survivors' missing answers are missing at random given
    their observed scores (the complete-case paired change assumes missing
    completely at random).  ``n_patients`` and ``n_observations`` are then
    those of time point :math:`k`'s model.  ``population`` says which:
    ``"all"`` or ``"alive"``.
    """
    level = spec.analyses.conf_level
    order = list(spec.timepoints)
    rows = []
    living: dict[str, set[str]] = {}
    if alive is not None:
        ok = alive[alive["status"].isin(["answered", "alive_not_answered"])]
        living = {str(tp): set(g["patient_id"].astype(str)) for tp, g in ok.groupby("timepoint")}
    for name in spec.outcomes:
        s = scores[scores["outcome"] == name]
        data = pd.DataFrame({"id": s["patient_id"].astype(str).to_numpy(),
                             "timepoint": pd.Categorical(s["timepoint"], categories=order),
                             "y": s["value"].to_numpy(dtype=float)})
        fits: dict[str, tuple[pd.DataFrame | None, int, int]] = {}

        def fit_of(d: pd.DataFrame) -> tuple[pd.DataFrame | None, int, int]:
            has_base = bool((d["timepoint"] == "baseline").any())
            f = mixed_change(d, reference="baseline", conf_level=level) if has_base else None
            return f, int(d["id"].nunique()), len(d)

        for tp in _followups(spec):
            if alive is None:
                if "all" not in fits:
                    fits["all"] = fit_of(data)
                fit, n_pat, n_obs = fits["all"]
            else:
                fit, n_pat, n_obs = fit_of(data[data["id"].isin(living.get(tp, set()))])
            rec: dict[str, Any] = {"outcome": name, "timepoint": tp, "n_patients": n_pat, "n_observations": n_obs,
                                   "population": "all" if alive is None else "alive"}
            row = None if fit is None else fit[fit["term"] == f"timepoint{tp}"]
            if row is None or row.empty:
                rec.update(estimate=math.nan, std_error=math.nan, df=math.nan, p_value=math.nan, ci_low=math.nan,
                           ci_high=math.nan, note="not estimable: no baseline scores" if fit is None
                           else f"not estimable: no scores at {tp}")
            else:
                r = row.iloc[0]
                rec.update({k: float(r[k]) for k in ("estimate", "std_error", "df", "p_value", "ci_low",
                                                     "ci_high")}, note=str(r["note"]))
            rows.append(rec)
    return pd.DataFrame(rows, columns=MIXED_COLUMNS)


# -- safety ----------------------------------------------------------------------------------------------------------

SAFETY_COLUMNS = ["event", "day", "x", "n", "proportion", "ci_low", "ci_high", "method", "note"]

#: Procedure categories that count as a repeat augmentation.
AUGMENTATION = ("vertebroplasty", "kyphoplasty")


def _exact(event: str, day: float, x: int, n: int, level: float, note: str = "") -> dict[str, Any]:
    p = proportion(x, n, method="clopper-pearson", conf_level=level).iloc[0]
    notes = "; ".join(t for t in (str(p["note"] or ""), note) if t)
    return {"event": event, "day": day, "x": x, "n": n, "proportion": p["proportion"], "ci_low": p["ci_low"],
            "ci_high": p["ci_high"], "method": "clopper-pearson", "note": notes}


def _follow_end(operations: pd.DataFrame, extract_date: pd.Timestamp) -> tuple[pd.Series, pd.Series]:
    """Per cohort operation: whether the patient died by the extract date, and the last day followed (a date)."""
    death = operations["death_date"]
    dead = death.notna() & (death <= extract_date)
    end = death.where(dead, extract_date)
    return dead, end


def mortality(operations: pd.DataFrame, extract_date: pd.Timestamp, spec: StudySpec,
              days: Iterable[int] = (30, 90)) -> list[dict[str, Any]]:
    """Deaths from any cause within ``d`` days of the index operation, with the exact CI.

    A patient died within ``d`` days when ``death_date - date <= d`` (the
    day of the operation is day 0) and the death is on or before the
    extract date.  Denominator: the patients who either died within ``d``
    days or were followed for at least ``d`` days (extract date ``-`` date
    of operation ``>= d``); patients alive and followed for fewer than ``d``
    days are left out (their outcome at day ``d`` is unknown) and counted in
    ``note``.  CI: Clopper-Pearson, as R's ``binom.test``.
    """
    level = spec.analyses.conf_level
    dead, end = _follow_end(operations, extract_date)
    followed = (end - operations["date"]).dt.days.to_numpy(dtype=float)
    dead_a = dead.to_numpy(dtype=bool)
    rows = []
    for d in days:
        died = dead_a & (followed <= d)
        known = died | (followed >= d)
        short = int((~known).sum())
        note = (f"{short} patient{'s' * (short != 1)} alive with fewer than {d} days of follow-up left out"
                if short else "")
        rows.append(_exact(f"death_{d}d", float(d), int(died.sum()), int(known.sum()), level, note))
    return rows


def safety_events(operations: pd.DataFrame, extract: Extract, all_operations: pd.DataFrame,
                  extract_date: pd.Timestamp, spec: StudySpec) -> pd.DataFrame:
    """Safety events per patient: 30- and 90-day mortality, new fractures, repeat augmentation.

    * ``death_30d``, ``death_90d``: see :func:`mortality`.
    * ``new_fracture``: patients with at least one complication of type
      ``new_fracture`` recorded for the index operation.  Denominator: every
      cohort patient.
    * ``repeat_augmentation``: patients with a later operation (dated after
      the index operation) whose procedure category is vertebroplasty or
      kyphoplasty, up to the end of follow-up (death or the extract date).
      Split into ``repeat_augmentation_same_level`` (the later operation
      treated a level the index operation treated) and
      ``repeat_augmentation_other_level`` (it treated only other levels, or
      its levels are not recorded); a patient with two later operations can
      count under both.  ``all_operations`` are the registry's operations
      (not only the cohort's).  Denominator: every cohort patient.

    Columns: ``event, day`` (the horizon for mortality, else NaN), ``x, n,
    proportion, ci_low, ci_high`` (Clopper-Pearson), ``method, note``.
    """
    level = spec.analyses.conf_level
    rows = mortality(operations, extract_date, spec)
    n = len(operations)
    oid = set(operations["operation_id"].astype(str))
    c = extract["complications"]
    c = c[c["operation_id"].astype(str).isin(oid)]
    nf = int(c.loc[c["type"].astype("string") == "new_fracture", "operation_id"].astype(str).nunique())
    rows.append(_exact("new_fracture", math.nan, nf, n, level))
    _, end = _follow_end(operations, extract_date)
    idx = pd.DataFrame({"patient_id": operations["patient_id"].astype(str).to_numpy(),
                        "index_op": operations["operation_id"].astype(str).to_numpy(),
                        "index_date": operations["date"].to_numpy(), "end": end.to_numpy()})
    later = all_operations[all_operations["procedure_category"].astype("string").isin(AUGMENTATION)]
    later = pd.DataFrame({"patient_id": later["patient_id"].astype(str).to_numpy(),
                          "op": later["operation_id"].astype(str).to_numpy(), "date": later["date"].to_numpy()})
    later = later.merge(idx, on="patient_id")
    later = later[(later["date"] > later["index_date"]) & (later["date"] <= later["end"])]
    lv = extract["treated_levels"]
    levels: dict[str, set[str]] = {}
    for o, lvl in zip(lv["operation_id"].astype(str), lv["level"].astype(str), strict=True):
        levels.setdefault(o, set()).add(lvl)
    same = [bool(levels.get(o, set()) & levels.get(i, set())) for o, i in zip(later["op"], later["index_op"],
                                                                              strict=True)]
    later = later.assign(same=np.asarray(same, dtype=bool))
    rows.append(_exact("repeat_augmentation", math.nan, int(later["patient_id"].nunique()), n, level))
    rows.append(_exact("repeat_augmentation_same_level", math.nan,
                       int(later.loc[later["same"], "patient_id"].nunique()), n, level))
    rows.append(_exact("repeat_augmentation_other_level", math.nan,
                       int(later.loc[~later["same"], "patient_id"].nunique()), n, level))
    return pd.DataFrame(rows, columns=SAFETY_COLUMNS)


COMPLICATION_TYPE_COLUMNS = ["type", "timing", "x", "events", "n", "proportion", "ci_low", "ci_high", "note"]
TIMINGS = ("any", "intraoperative", "postoperative", "not recorded")


def complication_types(operations: pd.DataFrame, extract: Extract, spec: StudySpec) -> pd.DataFrame:
    """Complications of the index operation by type and timing, per patient.

    For each type (``any``, then the registry's types in schema order) and
    timing (``any``; ``intraoperative`` when ``complications.intraoperative``
    is true; ``postoperative`` when it is false; ``not recorded`` when it is
    missing): ``x`` patients with at least one such complication, ``events``
    the complications themselves, ``n`` every cohort patient, and the
    proportion ``x / n`` with its Clopper-Pearson CI.  A patient with
    complications of two types or timings counts under each, so the rows
    need not add up.  The Clavien-Dindo grades are in
    :func:`complication_rates`.
    """
    level = spec.analyses.conf_level
    oid = set(operations["operation_id"].astype(str))
    n = len(oid)
    c = extract["complications"]
    c = c[c["operation_id"].astype(str).isin(oid)]
    intra = c["intraoperative"] if "intraoperative" in c.columns else pd.Series(pd.NA, index=c.index)
    timing = np.where(intra.isna(), "not recorded", np.where(intra.fillna(False).astype(bool), "intraoperative",
                                                              "postoperative"))
    frame = pd.DataFrame({"op": c["operation_id"].astype(str).to_numpy(),
                          "type": c["type"].astype("string").to_numpy(dtype=object), "timing": timing})
    rows = []
    for t in ["any", *entity("complications").column("type").values]:
        ft = frame if t == "any" else frame[frame["type"] == t]
        for tm in TIMINGS:
            f = ft if tm == "any" else ft[ft["timing"] == tm]
            x = int(f["op"].nunique())
            p = proportion(x, n, method="clopper-pearson", conf_level=level).iloc[0]
            rows.append({"type": t, "timing": tm, "x": x, "events": len(f), "n": n, "proportion": p["proportion"],
                         "ci_low": p["ci_low"], "ci_high": p["ci_high"], "note": p["note"]})
    return pd.DataFrame(rows, columns=COMPLICATION_TYPE_COLUMNS)


def _assessed_findings(operations: pd.DataFrame, extract: Extract) -> pd.DataFrame:
    """The imaging findings that count: at a treated level of the index operation, on or after its day (or undated)."""
    oid = set(operations["operation_id"].astype(str))
    f = extract["imaging_findings"]
    f = f[f["operation_id"].astype(str).isin(oid)]
    treated = extract["treated_levels"]
    treated_keys = set(zip(treated["operation_id"].astype(str), treated["level"].astype(str), strict=True))
    at_treated = np.array([k in treated_keys for k in zip(f["operation_id"].astype(str), f["level"].astype(str),
                                                               strict=True)], dtype=bool)
    op_date = operations.set_index(operations["operation_id"].astype(str))["date"]
    when = op_date.reindex(f["operation_id"].astype(str)).to_numpy()
    post_op = (f["date"].isna() | (f["date"].to_numpy() >= when)).to_numpy(dtype=bool)
    return f[at_treated & post_op]


MODALITY_COLUMNS = ["modality", "findings", "levels", "patients", "n_levels", "n_patients", "percent_levels", "note"]


def imaging_modality(operations: pd.DataFrame, extract: Extract) -> pd.DataFrame:
    """The imaging modality of the assessed levels (the findings :func:`leak_rates` uses).

    Per modality (the schema's, then ``not recorded``): ``findings``,
    ``levels`` (assessed levels with at least one finding by it),
    ``patients`` (assessed patients with at least one), the totals
    ``n_levels`` and ``n_patients`` of assessed levels and patients, and
    ``percent_levels = 100 levels / n_levels``.  A level imaged by two
    modalities counts under both, so the rows need not add up.
    """
    f = _assessed_findings(operations, extract)
    mod = f["modality"].astype("string").fillna("not recorded").to_numpy(dtype=object)
    frame = pd.DataFrame({"op": f["operation_id"].astype(str).to_numpy(), "lv": f["level"].astype(str).to_numpy(),
                          "mod": mod})
    n_lv = int(frame.groupby(["op", "lv"]).ngroups) if len(frame) else 0
    n_pt = int(frame["op"].nunique())
    rows = []
    for m in [*entity("imaging_findings").column("modality").values, "not recorded"]:
        g = frame[frame["mod"] == m]
        if m == "not recorded" and g.empty:
            continue
        k = int(g.groupby(["op", "lv"]).ngroups) if len(g) else 0
        rows.append({"modality": m, "findings": len(g), "levels": k, "patients": int(g["op"].nunique()),
                     "n_levels": n_lv, "n_patients": n_pt, "percent_levels": 100.0 * k / n_lv if n_lv else math.nan,
                     "note": "" if n_lv else "not estimable: no assessed levels"})
    return pd.DataFrame(rows, columns=MODALITY_COLUMNS)


#: Complication types that a cement leak can cause (a leak is symptomatic by the data when one is recorded).
LEAK_COMPLICATIONS = ("cement_embolism", "neurological_deficit")
#: Days after the operation within which a complication is linked to a leak.
LEAK_LINK_DAYS = 30

SYMPTOMATIC_COLUMNS = ["unit", "n_leak", "reviewer", "linked", "both", "reviewer_only", "linked_only", "neither",
                       "agree", "note"]


def symptomatic_leaks(operations: pd.DataFrame, extract: Extract) -> pd.DataFrame:
    """Symptomatic cement leaks: the reviewer's flag beside a rule applied to the data, and their agreement.

    Rule (*complication-linked*): a leaking level (see :func:`leak_rates`)
    is symptomatic when its operation has a complication of type
    ``cement_embolism`` or ``neurological_deficit`` that occurred during the
    operation (``intraoperative`` true) or is dated from the day of the
    operation to 30 days after it (``0 <= date - operation date <= 30``).
    Complications carry no level, so such a complication makes every
    leaking level of the operation symptomatic.  An undated complication
    that is not marked intra-operative is not linked.  A patient is
    symptomatic when any level is.  *Reviewer*: the ``symptomatic`` flag of
    any leaking finding of the level.

    One row per ``unit`` (``patient``, ``level``) among the leaking units
    (``n_leak``): ``reviewer``, ``linked``, ``both``, ``reviewer_only``,
    ``linked_only``, ``neither`` (the last four add up to ``n_leak``) and
    ``agree = both + neither``.
    """
    f = _assessed_findings(operations, extract)
    frame = pd.DataFrame({"op": f["operation_id"].astype(str).to_numpy(), "lv": f["level"].astype(str).to_numpy(),
                          "leak": f["leak"].fillna(False).to_numpy(dtype=bool),
                          "sym": f["symptomatic"].fillna(False).to_numpy(dtype=bool)})
    frame = frame[frame["leak"]]
    oid = set(operations["operation_id"].astype(str))
    c = extract["complications"]
    c = c[c["operation_id"].astype(str).isin(oid) & c["type"].astype("string").isin(LEAK_COMPLICATIONS)]
    op_date = operations.set_index(operations["operation_id"].astype(str))["date"]
    day = (c["date"] - op_date.reindex(c["operation_id"].astype(str)).to_numpy()).dt.days
    intra = (c["intraoperative"].fillna(False).astype(bool) if "intraoperative" in c.columns
             else pd.Series(False, index=c.index))
    linked_ops = set(c.loc[(intra | ((day >= 0) & (day <= LEAK_LINK_DAYS))).to_numpy(dtype=bool),
                           "operation_id"].astype(str))
    per_level = frame.groupby(["op", "lv"], sort=True)["sym"].any().to_frame("reviewer")
    per_level["linked"] = [o in linked_ops for o in per_level.index.get_level_values("op")]
    per_patient = per_level.groupby(level="op").any()
    rows = []
    for unit, t in (("patient", per_patient), ("level", per_level)):
        r, k = t["reviewer"].to_numpy(dtype=bool), t["linked"].to_numpy(dtype=bool)
        both, neither = int((r & k).sum()), int((~r & ~k).sum())
        rows.append({"unit": unit, "n_leak": len(t), "reviewer": int(r.sum()), "linked": int(k.sum()), "both": both,
                     "reviewer_only": int((r & ~k).sum()), "linked_only": int((~r & k).sum()), "neither": neither,
                     "agree": both + neither, "note": "" if len(t) else "no leaks"})
    return pd.DataFrame(rows, columns=SYMPTOMATIC_COLUMNS)


# -- clustering ------------------------------------------------------------------------------------------------------

CLUSTERED_COLUMNS = ["x", "n_levels", "n_patients", "proportion", "ci_low", "ci_high", "robust_se", "design_effect",
                     "robust_ci_low", "robust_ci_high", "boot_ci_low", "boot_ci_high", "bootstrap_replicates", "seed",
                     "note"]


def cluster_robust_proportion(y: Any, m: Any, conf_level: float = 0.95) -> dict[str, float]:
    """A proportion of units clustered in groups, with a cluster-robust (sandwich) logit interval.

    Cluster ``i`` (of ``K``) has ``m_i`` units of which ``y_i`` are events;
    :math:`\\hat p = \\sum y_i / \\sum m_i = Y/M`.  Cluster-robust variance
    (the linearisation / sandwich variance of a ratio, with the small-sample
    factor :math:`K/(K-1)` of Stata's cluster option):

    .. math:: \\widehat{V}(\\hat p) = \\frac{K}{K-1} \\frac{\\sum_i (y_i - \\hat p\\, m_i)^2}{M^2}.

    It equals the robust variance of an intercept-only logistic GEE with
    independence working correlation, by the delta method.  The interval is
    Wald on the logit scale, :math:`\\operatorname{expit}(\\operatorname{logit}\\hat p \\pm z\\,
    \\widehat{SE}/(\\hat p(1-\\hat p)))`, so it stays within (0, 1).  The
    design effect is :math:`\\widehat V / (\\hat p(1-\\hat p)/M)`.  Not
    estimable (NaN) when ``p`` is 0 or 1 or there are fewer than 2 clusters.
    """
    ya = np.asarray(y, dtype=float)
    ma = np.asarray(m, dtype=float)
    k = ya.size
    big_y, big_m = float(ya.sum()), float(ma.sum())
    p = big_y / big_m if big_m else math.nan
    out = {"proportion": p, "robust_se": math.nan, "design_effect": math.nan, "ci_low": math.nan,
           "ci_high": math.nan}
    if k < 2 or not big_m:
        return out
    var = k / (k - 1) * float(((ya - p * ma) ** 2).sum()) / big_m**2
    out["robust_se"] = math.sqrt(var)
    if 0 < p < 1:
        out["design_effect"] = var / (p * (1 - p) / big_m)
        z = float(sps.norm.ppf(0.5 + conf_level / 2))
        se_logit = math.sqrt(var) / (p * (1 - p))
        centre = math.log(p / (1 - p))
        out["ci_low"], out["ci_high"] = (1 / (1 + math.exp(-(centre - z * se_logit))),
                                         1 / (1 + math.exp(-(centre + z * se_logit))))
    return out


def _percentile(t: np.ndarray[Any, np.dtype[np.float64]], alpha: float) -> float:
    """The bootstrap percentile limit of boot.ci: order statistic ``(B+1) alpha``, interpolated on the normal scale.

    Davison & Hinkley (1997) eq. 5.8: with ``k = floor((B+1) alpha)``,
    ``t_(k) + (z_a - z_k)/(z_{k+1} - z_k) (t_(k+1) - t_(k))`` where ``z_j =
    Phi^-1(j/(B+1))``; the extreme order statistic when ``k`` is 0 or ``B``.
    """
    s = np.sort(t)
    b = s.size
    rk = (b + 1) * alpha
    k = math.floor(rk + 1e-10)
    if abs(rk - round(rk)) < 1e-10:
        return float(s[min(max(round(rk), 1), b) - 1])
    if k == 0:
        return float(s[0])
    if k >= b:
        return float(s[-1])
    zk, zk1, za = (float(sps.norm.ppf(v)) for v in (k / (b + 1), (k + 1) / (b + 1), alpha))
    return float(s[k - 1] + (za - zk) / (zk1 - zk) * (s[k] - s[k - 1]))


def cluster_bootstrap_proportion(y: Any, m: Any, replicates: int, seed: int,
                                 conf_level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``sum y / sum m`` by resampling clusters with replacement.

    ``replicates`` resamples of the ``K`` clusters (numpy's PCG64 generator
    seeded with ``seed``, so the interval is reproducible); limits as R's
    ``boot.ci(type = "perc")`` (see :func:`_percentile`).  NaN when there
    are fewer than 2 clusters or no replicates.
    """
    ya = np.asarray(y, dtype=float)
    ma = np.asarray(m, dtype=float)
    k = ya.size
    if k < 2 or replicates < 1:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, k, size=(replicates, k))
    t = ya[idx].sum(axis=1) / ma[idx].sum(axis=1)
    alpha = (1 - conf_level) / 2
    return _percentile(t, alpha), _percentile(t, 1 - alpha)


def clustered_leak_rate(operations: pd.DataFrame, extract: Extract, spec: StudySpec) -> pd.DataFrame:
    """The per-level cement-leak rate with intervals that allow for levels clustered within patients.

    Levels and leaks as in :func:`leak_rates` (assessed levels; a level leaks
    when any finding shows a leak).  One row: ``x`` leaking levels of
    ``n_levels`` in ``n_patients`` patients; ``proportion``; ``ci_low,
    ci_high`` the exact interval that treats levels as independent (as in
    ``leaks``); ``robust_se, design_effect, robust_ci_low, robust_ci_high``
    the cluster-robust logit interval (:func:`cluster_robust_proportion`,
    the primary one: deterministic); ``boot_ci_low, boot_ci_high`` the
    patient (cluster) bootstrap percentile interval
    (:func:`cluster_bootstrap_proportion`) with ``bootstrap_replicates`` and
    ``seed`` from the spec.
    """
    a = spec.analyses
    f = _assessed_findings(operations, extract)
    frame = pd.DataFrame({"op": f["operation_id"].astype(str).to_numpy(), "lv": f["level"].astype(str).to_numpy(),
                          "leak": f["leak"].fillna(False).to_numpy(dtype=bool)})
    per_level = frame.groupby(["op", "lv"], sort=True)["leak"].any()
    per_patient = per_level.groupby(level="op").agg(["sum", "size"])
    y = per_patient["sum"].to_numpy(dtype=float)
    m = per_patient["size"].to_numpy(dtype=float)
    x, n = int(y.sum()), int(m.sum())
    cp = proportion(x, n, method="clopper-pearson", conf_level=a.conf_level).iloc[0]
    rob = cluster_robust_proportion(y, m, a.conf_level)
    boot = cluster_bootstrap_proportion(y, m, a.bootstrap_replicates, a.seed, a.conf_level)
    notes = [str(cp["note"] or "")]
    if len(y) < 2:
        notes.append("clustered intervals not estimable: fewer than 2 patients")
    elif not 0 < x < n:
        notes.append("cluster-robust interval not estimable: " + ("no level leaked" if x == 0 else "every level "
                                                                    "leaked"))
    return pd.DataFrame([{"x": x, "n_levels": n, "n_patients": len(y), "proportion": cp["proportion"],
                          "ci_low": cp["ci_low"], "ci_high": cp["ci_high"], "robust_se": rob["robust_se"],
                          "design_effect": rob["design_effect"], "robust_ci_low": rob["ci_low"],
                          "robust_ci_high": rob["ci_high"], "boot_ci_low": boot[0], "boot_ci_high": boot[1],
                          "bootstrap_replicates": a.bootstrap_replicates, "seed": a.seed,
                          "note": "; ".join(t for t in notes if t)}], columns=CLUSTERED_COLUMNS)

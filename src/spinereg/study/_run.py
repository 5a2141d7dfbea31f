"""Run a study: cohort, follow-up, analyses; the result and its ``results.json``.

``results.json`` is the one record of a study's numbers: the report layer
reads it and never recomputes.  Its layout is held by the JSON Schema
``spinereg/study/resources/results.schema.json`` and documented in
``docs/results-format.md``.  The same spec and data give a byte-identical
file except for the ``generated_at`` field.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spinereg._errors import SpineregError
from spinereg._version import __version__
from spinereg.data import Extract, extract_sha256, to_csv
from spinereg.instruments import find_valueset
from spinereg.study import _analyses as an
from spinereg.study import _compare as cmp
from spinereg.study import _estimands as es
from spinereg.study._cohort import (
    CohortResult,
    extract_date,
    follow_up,
    match_timepoints,
    reachable,
    select_cohort,
)
from spinereg.study._spec import StudySpec

__all__ = ["RESULTS_SCHEMA_VERSION", "EmptyCohortError", "StudyResult", "results_schema", "run_study"]

RESULTS_SCHEMA_VERSION = 2


class EmptyCohortError(SpineregError):
    """No operation passes the cohort criteria; the message shows where the flow emptied."""


@dataclass
class StudyResult:
    """Everything a study computed.

    Attributes
    ----------
    spec : StudySpec
        The validated spec.
    spec_sha256, data_sha256 : str
        SHA-256 of the spec file and of the data
        (:func:`spinereg.data.extract_sha256`).
    data : dict
        Dataset facts: name, source, synthetic, extract date (and where it
        comes from), registry size.
    cohort : CohortResult
        The selected index operations (``.operations``, the patient-level
        cohort table) and the attrition ``.flow``.
    tables : dict of str to DataFrame
        The tidy result tables, in report order (see ``docs/results-format.md``).
    """

    spec: StudySpec
    spec_sha256: str
    data_sha256: str
    data: dict[str, Any]
    cohort: CohortResult
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def suppress_small_cells(self) -> bool:
        s = self.spec.analyses.suppress_small_cells
        return (not self.data["synthetic"]) if s is None else bool(s)

    def to_dict(self, generated_at: str | None = None) -> dict[str, Any]:
        """The content of ``results.json`` (JSON-ready; NaN becomes null)."""
        spec = self.spec
        outcomes = []
        for name, oc in spec.outcomes.items():
            entry: dict[str, Any] = {"name": name, "instrument": oc.instrument,
                                     "label": an.OUTCOME_LABELS[oc.instrument], "valueset": oc.valueset,
                                     "valueset_citation": None, "higher_is_better": oc.higher_is_better,
                                     "mcid": oc.mcid, "mcid_source": oc.mcid_source or None}
            scale = an.outcome_scale(oc.instrument, oc.valueset)
            entry["scale"] = list(scale) if scale is not None else None
            if oc.valueset:
                version, type_ = ("3L", "TTO") if oc.instrument == "eq5d3l" else ("5L", "VT")
                entry["valueset_citation"] = _citation(dict(find_valueset(version, type_, oc.valueset).source))
            outcomes.append(entry)
        return {
            "schema_version": RESULTS_SCHEMA_VERSION,
            "spinereg_version": __version__,
            "generated_at": generated_at or datetime.now(UTC).replace(microsecond=0).isoformat(),
            "study": {"title": spec.title, "question": spec.question, "spec_sha256": self.spec_sha256,
                      "spec": spec.model_dump(mode="json")},
            "data": {**self.data, "sha256": self.data_sha256},
            "settings": {"conf_level": spec.analyses.conf_level,
                         "small_cell_threshold": spec.analyses.small_cell_threshold,
                         "suppress_small_cells": self.suppress_small_cells},
            "timepoints": [{"name": k, "window_start": v.window[0], "window_end": v.window[1],
                            "target": v.target} for k, v in spec.timepoints.items()],
            "outcomes": outcomes,
            "tables": {name: _records(df) for name, df in self.tables.items()},
        }

    def write(self, out_dir: str | Path, generated_at: str | None = None) -> list[Path]:
        """Write ``results.json`` and one CSV per table to ``out_dir``.

        Files are written under temporary names and renamed, so no reader
        sees a half-written file.  Returns the written paths.
        """
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        written = []
        tables_dir = d / "tables"
        tables_dir.mkdir(exist_ok=True)
        status = "synthetic" if self.data.get("synthetic") else "real"
        for name, df in self.tables.items():
            # every row says whether the data are synthetic, so a CSV copied alone still says so
            written.append(_atomic(tables_dir / f"{name}.csv",
                                   to_csv(df.assign(data_status=status), index=False, lineterminator="\n")))
        text = json.dumps(self.to_dict(generated_at), indent=1, allow_nan=False, ensure_ascii=False) + "\n"
        written.append(_atomic(d / "results.json", text))
        return written


def _atomic(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def _citation(src: dict[str, Any]) -> str:
    parts = [f"{src.get('authors', '')}.", f"{src.get('title', '')}.", f"{src.get('journal', '')}"]
    vol = f" {src.get('year', '')};{src.get('volume', '')}"
    if src.get("issue"):
        vol += f"({src['issue']})"
    if src.get("pages"):
        vol += f":{src['pages']}"
    text = " ".join(p for p in parts if p.strip(". ")) + vol + "."
    if src.get("doi"):
        text += f" doi:{src['doi']}"
    return text


def _value(v: Any) -> Any:
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(v, pd.Timestamp):
        return v.date().isoformat()
    return str(v)


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    cols = list(df.columns)
    return [{c: _value(v) for c, v in zip(cols, row, strict=True)} for row in df.itertuples(index=False, name=None)]


def results_schema() -> dict[str, Any]:
    """The JSON Schema of ``results.json``."""
    text = resources.files("spinereg.study").joinpath("resources/results.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _restrict(extract: Extract, operations: pd.DataFrame) -> Extract:
    """The part of the extract that concerns the cohort's index operations."""
    oid = set(operations["operation_id"].astype(str))
    tables = {}
    for name in ("proms", "treated_levels", "complications", "imaging_findings"):
        t = extract[name]
        tables[name] = t[t["operation_id"].astype(str).isin(oid)].reset_index(drop=True)
    tables["patients"] = extract["patients"]
    tables["operations"] = operations
    return Extract(tables, extract.meta)


def _restrict_levels(extract: Extract, operations: pd.DataFrame) -> Extract:
    """The cohort's part of the extract, but the treated levels of every operation of the cohort's patients.

    A repeat augmentation is a later operation of the same patient; whether it treated a level the index
    operation treated needs its levels.
    """
    sub = _restrict(extract, operations)
    pids = set(operations["patient_id"].astype(str))
    ops = extract["operations"]
    oid = set(ops.loc[ops["patient_id"].astype(str).isin(pids), "operation_id"].astype(str))
    lv = extract["treated_levels"]
    tables = {name: sub[name] for name in ("proms", "complications", "imaging_findings", "patients", "operations")}
    tables["treated_levels"] = lv[lv["operation_id"].astype(str).isin(oid)].reset_index(drop=True)
    return Extract(tables, extract.meta)


def run_study(spec: StudySpec, extract: Extract, *, spec_sha256: str = "",
              data_sha256: str | None = None) -> StudyResult:
    """Run a study on a tidy extract.

    Parameters
    ----------
    spec : StudySpec
        From :func:`spinereg.study.load_spec`.
    extract : Extract
        The registry data (from the registry database or an extract directory).
    spec_sha256 : str
        SHA-256 of the spec file (``load_spec`` returns it).
    data_sha256 : str, optional
        SHA-256 of the data; computed with :func:`spinereg.data.extract_sha256`
        when not given.

    Raises
    ------
    EmptyCohortError
        No operation passes the cohort criteria; the message gives the flow.
    """
    extract = reachable(extract, spec)  # the part a study can reach: the same from a file or the database
    cohort = select_cohort(extract, spec)
    if cohort.operations.empty:
        steps = "; ".join(f"{r.step} {r.n_operations}" for r in cohort.flow.itertuples())
        raise EmptyCohortError(f"the cohort is empty: no operation passes the criteria of \"{spec.title}\" "
                               f"(operations left after each step: {steps})")
    # the data digest is mostly hashing and Arrow conversion, which release the GIL: compute it alongside
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(extract_sha256, extract) if data_sha256 is None else None
        result = _run(spec, extract, spec_sha256, cohort)
        result.data_sha256 = pending.result() if pending is not None else str(data_sha256)
    return result


def _run(spec: StudySpec, extract: Extract, spec_sha256: str, cohort: CohortResult) -> StudyResult:
    ops = cohort.operations
    sub = _restrict(extract, ops)
    cutoff, cutoff_source = extract_date(extract)
    matched = match_timepoints(sub["proms"], ops, spec)
    scores = an.outcome_scores(matched, spec)
    case = pd.Series(np.arange(1, len(ops) + 1), index=ops["operation_id"].astype(str))
    tables: dict[str, pd.DataFrame] = {
        "flow": cohort.flow,
        "follow_up": follow_up(cohort, sub, spec, cutoff),
    }
    a = spec.analyses
    if a.descriptive:
        tables["table1"] = an.descriptive(ops, sub, scores, spec)
    tables["outcome_summary"] = an.outcome_summary(scores, ops, spec)
    status = es.followup_status(matched, ops, spec, cutoff)
    alive = es.alive_counts(scores, status, spec)
    if a.paired_change:
        tables["paired_change"] = es.add_alive_counts(an.paired_changes(scores, ops, spec), alive)
        tables["composite_death0"] = es.composite_death_zero(scores, status, spec)
        tables["qaly"] = es.qaly_auc(scores, status, spec)
    if a.responders:
        tables["responders"] = es.add_alive_counts(an.responders(scores, ops, spec), alive)
        tables["pchc"] = an.pchc_table(matched, ops, spec)
    if a.rates:
        tables["complications"] = an.complication_rates(ops, sub, spec)
        tables["leaks"] = an.leak_rates(ops, sub, spec)
        tables["leak_clustered"] = an.clustered_leak_rate(ops, sub, spec)
        tables["symptomatic_leaks"] = an.symptomatic_leaks(ops, sub)
        tables["imaging_modality"] = an.imaging_modality(ops, sub)
        tables["complication_types"] = an.complication_types(ops, sub, spec)
        tables["safety"] = an.safety_events(ops, _restrict_levels(extract, ops), extract["operations"], cutoff, spec)
    if a.survival:
        surv = an.survival(ops, cutoff, spec)
        tables.update({"survival": surv["table"], "survival_median": surv["median"],
                       "survival_curve": surv["curve"], "survival_at_risk": surv["at_risk"]})
    if a.sensitivity_mixed_model:
        tables["mixed_model"] = an.mixed_models(scores, spec, alive=status)
    # each cohort patient's death (days after the index operation) by the extract date: the figures mark them
    dead = ops["death_date"].notna() & (ops["death_date"] <= cutoff)
    tables["deaths"] = pd.DataFrame({
        "case": case.reindex(ops.loc[dead, "operation_id"].astype(str)).to_numpy(dtype=np.int64),
        "day": (ops.loc[dead, "death_date"] - ops.loc[dead, "date"]).dt.days.to_numpy(dtype=np.int64)})
    # STROBE 5, 12-14 (setting, comparisons at baseline, follow-up time): spinereg.study._compare
    tables["setting"] = cmp.setting(ops)
    tables["baseline_comparison"] = cmp.baseline_comparison(extract, spec, cohort, cutoff)
    tables["follow_up_time"] = cmp.follow_up_time(ops, cutoff, spec.analyses.conf_level)
    tables["answer_days"] = cmp.answer_days(scores, spec)
    tables["software"] = cmp.software_versions(spec)
    tables["scores"] = pd.DataFrame({
        "case": case.reindex(scores["operation_id"]).to_numpy(dtype=np.int64),
        "outcome": scores["outcome"].to_numpy(), "timepoint": scores["timepoint"].to_numpy(),
        "day": scores["day"].to_numpy(dtype=np.int64), "value": scores["value"].to_numpy(dtype=float),
    }).sort_values(["outcome", "case", "day"], kind="stable").reset_index(drop=True)
    meta = extract.meta
    data = {
        "name": str(meta.get("name") or ""),
        "source": str(meta.get("source") or ""),
        "synthetic": bool(meta.get("synthetic", False)),
        "extract_date": cutoff.date().isoformat(),
        "extract_date_source": cutoff_source,
        "n_patients": len(extract["patients"]),
        "n_operations": len(extract["operations"]),
        "period_start": _iso(extract["operations"]["date"].min()),
        "period_end": _iso(extract["operations"]["date"].max()),
    }
    return StudyResult(spec, spec_sha256, "", data, cohort, tables)


def _iso(v: Any) -> str | None:
    return None if pd.isna(v) else pd.Timestamp(v).date().isoformat()

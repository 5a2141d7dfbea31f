"""Observation resources of the derived scores of a ``proms`` row (read-only; computed, never stored).

For each stored questionnaire row, up to three Observations:

* ``<prom>.eq5d5l-index``: the EQ-5D-5L index, SNOMED CT 736534008 (``codes.toml``), scored with the
  5L value set of ``country_5l`` (VT; default Denmark, Jensen et al. 2021);
* ``<prom>.eq5d3l-index``: the EQ-5D-3L index with the 3L TTO value set of ``country_3l`` (default
  Denmark, Wittrup-Jensen et al. 2009); no SNOMED CT or LOINC code for it could be checked, so its
  code is the registry's :data:`SCORE_SYSTEM` ``eq5d3l-index``;
* ``<prom>.odi-score``: the ODI 2.1a score 0-100, LOINC 97909-6 (``codes.toml``),
  ``100 * sum / (5 * sections answered)`` with at most one section missing.

``<prom>`` is the row's resource id stem (:func:`spinereg.fhir.fhir_id` of its ``prom_id``), so the
id of an Observation never changes.  The value set an index was computed with is
``Observation.method`` (code system :data:`VALUESET_SYSTEM`, code ``<version>-<type>-<country>``,
the citation as its display).  An index needs all five dimensions; a row without the items of a
score has no Observation of it.  ``derivedFrom`` names the QuestionnaireResponse.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from spinereg.fhir._codes import instrument_codes
from spinereg.fhir._convert import instrument_columns
from spinereg.instruments import InvalidInputWarning, eq5d, find_valueset, odi

__all__ = ["OBSERVATION_KINDS", "SCORE_SYSTEM", "VALUESET_SYSTEM", "observations_from_row"]

#: The registry's code system of scores without a checked standard code.
SCORE_SYSTEM = "urn:spinereg:fhir:score"
#: Code system of the EQ-5D value sets: code ``<version>-<type>-<country>``, e.g. ``5L-VT-Denmark``.
VALUESET_SYSTEM = "urn:spinereg:fhir:eq5d-valueset"
#: Observation id suffix -> (instrument, questionnaire id).
OBSERVATION_KINDS: dict[str, tuple[str, str]] = {
    "eq5d3l-index": ("eq5d3l", "eq5d3l"), "eq5d5l-index": ("eq5d5l", "eq5d5l"), "odi-score": ("odi", "odi")}
_VALUATION = {"eq5d3l": ("3L", "TTO"), "eq5d5l": ("5L", "VT")}


@functools.cache
def _code(instrument: str) -> dict[str, Any]:
    for c in instrument_codes():
        if c.instrument == instrument and c.use == "score":
            return {"coding": [{"system": c.system, "code": c.code, "display": c.display}]}
    return {"coding": [{"system": SCORE_SYSTEM, "code": f"{instrument}-index",
                        "display": f"{instrument.upper().replace('EQ5D', 'EQ-5D-')} index value"}]}


@functools.cache
def _method(version: str, type_: str, country: str) -> dict[str, Any]:
    vs = find_valueset(version, type_, country)
    src = vs.source
    cite = f"{src.get('authors', '')} ({src.get('year', '')})".strip()
    doi = f", doi:{src['doi']}" if src.get("doi") else ""
    code = f"{vs.version}-{vs.type}-{vs.country}"
    return {"coding": [{"system": VALUESET_SYSTEM, "code": code}],
            "text": f"EQ-5D-{vs.version} value set {vs.country} ({vs.type}): {cite}{doi}"}


def _items(row: Mapping[str, Any], instrument: str) -> list[float]:
    out = []
    for col in instrument_columns(instrument).values():
        v = row.get(col)
        out.append(np.nan if v is None or (isinstance(v, float) and v != v) or str(v) == "<NA>" else float(v))
    return out


def observations_from_row(row: Mapping[str, Any], stem: str, *, country_3l: str = "Denmark",
                          country_5l: str = "Denmark") -> list[dict[str, Any]]:
    """The score Observations of one ``proms`` row (id stem ``stem``), validated by the R4B model."""
    from fhir.resources.R4B.observation import Observation

    out: list[dict[str, Any]] = []
    for suffix, (instrument, qid) in OBSERVATION_KINDS.items():
        items = _items(row, instrument)
        if all(np.isnan(items)):
            continue
        method: dict[str, Any] | None = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InvalidInputWarning)
            if instrument == "odi":
                value = float(odi(np.array([items]), max_missing=1, invalid="nan")["odi"].iloc[0])
                quantity = {"value": value, "unit": "score", "system": "http://unitsofmeasure.org",
                            "code": "{score}"}
            else:
                version, type_ = _VALUATION[instrument]
                country = country_3l if instrument == "eq5d3l" else country_5l
                dims = dict(zip(("MO", "SC", "UA", "PD", "AD"), ([v] for v in items), strict=True))
                value = float(np.asarray(eq5d(dims, version, type_, country, invalid="nan"))[0])
                quantity = {"value": value}
                method = _method(version, type_, country)
        if value != value:  # no score: an item missing
            continue
        doc: dict[str, Any] = {
            "resourceType": "Observation", "id": f"{stem}.{suffix}", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "survey"}]}],
            "code": _code(instrument), "subject": {"reference": f"Patient/{row['patient_id']}"},
            "valueQuantity": quantity, "derivedFrom": [{"reference": f"QuestionnaireResponse/{stem}.{qid}"}],
        }
        if row.get("answer_date") and str(row["answer_date"]) not in ("NaT", "<NA>", "None"):
            doc["effectiveDateTime"] = str(row["answer_date"])[:10]
        if method is not None:
            doc["method"] = method
        out.append(dict(Observation.model_validate(doc).model_dump(mode="json", exclude_none=True)))
    return out

"""Bulk FHIR files: the registry as NDJSON (one file per resource type), and FHIR files read back as
registry rows.

Export (:func:`export_resources`, :func:`write_ndjson`): ``Patient.ndjson``, ``Procedure.ndjson``,
``QuestionnaireResponse.ndjson`` and ``Observation.ndjson``, one resource per line without
whitespace, as FHIR's NDJSON format and the Bulk Data export's output files (one resource type per
file, named by the type).  Patients carry their pseudonym only.

Import (:func:`read_bulk`): FHIR Bundles (``transaction``, ``batch`` or ``collection``), NDJSON
files, or single resources, read into the tidy rows of ``patients``, ``operations``,
``treated_levels`` and ``proms``.  Each resource goes through the checks of the API
(:func:`~spinereg.fhir.parse_procedure`, :func:`~spinereg.fhir.parse_response`, the Patient rules):
a refused resource is reported with its file and line (NDJSON) or entry index (Bundle), the
element (FHIRPath, the ``linkId``) and the value.  A Patient with a CPR identifier is pseudonymised
at once with the site key (the number goes nowhere else); a Patient without one is a registry
pseudonym (its id, as exported).  References inside a Bundle may use the entries' ``fullUrl``
(``urn:uuid:...``).  A QuestionnaireResponse's operation is its ``partOf`` Procedure, else the
patient's operation whose time point window holds ``authored`` (as the API assigns it); its time
point is the ``timepoint`` column extension when given (an export), else the assigned one.
Observations are derived scores: read and skipped (the registry computes them).  Nothing here
writes to the registry; the caller imports the rows through the registry's audited import.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from spinereg._errors import SpineregError
from spinereg.data import HIDDEN, entity, parse_cpr
from spinereg.fhir._convert import (
    PROM_ELEMENTS,
    PROM_SYSTEM,
    assign_timepoint,
    check_resource,
    parse_response,
    prom_row,
    response_from_row,
)
from spinereg.fhir._observation import observations_from_row
from spinereg.fhir._outcome import FhirInputError
from spinereg.fhir._patient import CPR_SYSTEM, patient_cpr, patient_resource
from spinereg.fhir._procedure import (
    extension_columns,
    fhir_id,
    parse_procedure,
    procedure_resource,
    registry_id,
)
from spinereg.fhir._questionnaires import fhir_instruments

__all__ = ["BULK_TYPES", "BulkRows", "FhirBulkError", "export_resources", "read_bulk", "write_ndjson"]

#: The resource types of an export, in file order.
BULK_TYPES = ("Patient", "Procedure", "QuestionnaireResponse", "Observation")
#: The most problems listed in one :class:`FhirBulkError`.
MAX_LISTED = 50


class FhirBulkError(SpineregError):
    """FHIR files refused: :attr:`problems` lists each as ``FILE line N`` / ``FILE entry N``, the
    resource type, the element and the value.  Nothing was imported."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        shown = "\n".join(f"  {p}" for p in self.problems[:MAX_LISTED])
        more = f"\n  ... and {len(self.problems) - MAX_LISTED} more" if len(self.problems) > MAX_LISTED else ""
        super().__init__(f"{len(self.problems)} FHIR resource(s) refused, nothing was imported:\n{shown}{more}")


# -- export -------------------------------------------------------------------------------------------------
def _records(df: pd.DataFrame | None) -> Iterator[dict[str, Any]]:
    if df is None or df.empty:
        return
    clean = df.astype(object).where(df.notna(), None)
    for rec in clean.to_dict("records"):
        yield {str(k): v for k, v in rec.items()}


def export_resources(tables: Mapping[str, pd.DataFrame], *, country_3l: str = "Denmark",
                     country_5l: str = "Denmark") -> Iterator[tuple[str, dict[str, Any]]]:
    """(resource type, resource) of every exportable record of a tidy extract's ``tables``.

    A record whose id cannot be a FHIR id (see :func:`spinereg.fhir.fhir_id`) is left out (none of the
    ids the registry makes)."""
    for row in _records(tables.get("patients")):
        yield "Patient", patient_resource(row)
    levels: dict[str, list[dict[str, Any]]] = {}
    for lv in _records(tables.get("treated_levels")):
        levels.setdefault(str(lv["operation_id"]), []).append(lv)
    for row in _records(tables.get("operations")):
        rid = fhir_id(str(row["operation_id"]))
        if rid is not None:
            yield "Procedure", procedure_resource(row, levels.get(str(row["operation_id"]), []), rid)
    observations: list[dict[str, Any]] = []
    for row in _records(tables.get("proms")):
        stem = fhir_id(str(row["prom_id"]))
        if stem is None:
            continue
        for fi in fhir_instruments():
            doc = response_from_row(row, fi, f"{stem}.{fi.id}")
            if doc is not None:
                yield "QuestionnaireResponse", doc
        observations += observations_from_row(row, stem, country_3l=country_3l, country_5l=country_5l)
    for obs in observations:
        yield "Observation", obs


def write_ndjson(directory: str | Path, resources: Iterator[tuple[str, dict[str, Any]]]) -> dict[str, Path]:
    """Write ``<type>.ndjson`` files (one resource a line, no whitespace) to ``directory``; each is
    written to a temporary name and renamed, so no reader sees half a file.  Returns type -> path."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    handles = {t: (d / f".{t}.ndjson.part").open("w", encoding="utf-8", newline="\n") for t in BULK_TYPES}
    try:
        for rtype, doc in resources:
            handles[rtype].write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")
    finally:
        for h in handles.values():
            h.close()
    out = {}
    for t in BULK_TYPES:
        final = d / f"{t}.ndjson"
        (d / f".{t}.ndjson.part").replace(final)
        out[t] = final
    return out


# -- import -------------------------------------------------------------------------------------------------
@dataclass
class BulkRows:
    """Tidy registry rows read from FHIR files, by entity, and the number of resources skipped by type."""

    tables: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {
        "patients": [], "operations": [], "treated_levels": [], "proms": []})
    skipped: dict[str, int] = field(default_factory=dict)

    def frames(self) -> dict[str, pd.DataFrame]:
        """One DataFrame per entity, the schema's columns in order (text values, as a file holds them)."""
        return {name: pd.DataFrame(rows, columns=list(entity(name).column_names))
                for name, rows in self.tables.items() if rows}


@dataclass(frozen=True)
class _Item:
    where: str
    doc: dict[str, Any]
    full_url: str | None


#: (patient id) -> the patient's (operation id, date) in the registry; (patient id) -> known there.
OperationsLookup = Callable[[str], Sequence[tuple[str, date]]]
PatientLookup = Callable[[str], bool]


def _items(path: Path, problems: list[str]) -> Iterator[_Item]:
    name = path.name
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{name}: cannot be read as UTF-8 text ({type(exc).__name__})")
        return
    stripped = text.strip()
    ndjson = path.suffix.lower() in (".ndjson", ".jsonl") or ("\n" in stripped and not stripped.startswith("["))
    if ndjson:
        try:
            json.loads(stripped)  # one JSON document spread over lines: not NDJSON
            ndjson = False
        except json.JSONDecodeError:
            pass
    if ndjson:
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"{name} line {n}: malformed JSON: {exc.msg} at column {exc.colno}")
                continue
            yield from _unpack(doc, f"{name} line {n}", problems)
        return
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append(f"{name}: malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
        return
    yield from _unpack(doc, name, problems)


def _unpack(doc: Any, where: str, problems: list[str]) -> Iterator[_Item]:
    if not isinstance(doc, dict):
        problems.append(f"{where}: not a FHIR resource (a JSON object), a JSON {type(doc).__name__}")
        return
    if doc.get("resourceType") != "Bundle":
        yield _Item(where, doc, None)
        return
    if doc.get("type") not in ("transaction", "batch", "collection"):
        problems.append(f"{where}: Bundle.type {doc.get('type')!r} is not accepted (transaction, batch or "
                        "collection)")
        return
    for i, entry in enumerate(doc.get("entry") or []):
        res = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(res, dict):
            problems.append(f"{where} entry {i}: Bundle.entry[{i}].resource is missing")
            continue
        yield _Item(f"{where} entry {i}", res, str(entry["fullUrl"]) if entry.get("fullUrl") else None)


def _resolve(node: Any, refs: Mapping[str, str]) -> Any:
    """``node`` with every ``reference`` that is a Bundle entry's fullUrl replaced by ``Type/id``."""
    if isinstance(node, dict):
        return {k: (refs.get(v, v) if k == "reference" and isinstance(v, str) else _resolve(v, refs))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, refs) for v in node]
    return node


def _digest(doc: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def _problem(item: _Item, exc: FhirInputError) -> str:
    rtype = item.doc.get("resourceType")
    expr = exc.outcome["issue"][0].get("expression")
    at = f" [{expr[0]}]" if expr else ""
    return f"{item.where}: {rtype}{at}: {exc}"


def _patient(item: _Item, key: bytes) -> dict[str, Any]:
    doc = item.doc
    ids = [i for i in doc.get("identifier") or [] if isinstance(i, dict) and i.get("system") == CPR_SYSTEM]
    if ids:
        cpr = patient_cpr(doc)
        parsed = parse_cpr([cpr], key)
        if not bool(parsed.valid[0]):
            raise FhirInputError(f"Patient.identifier: {parsed.reason[0]} ({HIDDEN})", code="invalid",
                                 expression="Patient.identifier", value=HIDDEN)
        return {"patient_id": str(parsed.pseudonym[0]), "sex": parsed.sex[0],
                "birth_date": str(parsed.birth_date[0])[:10]}
    doc = check_resource(doc, "Patient")
    pid = doc.get("id")
    if not pid:
        raise FhirInputError("give the CPR number (identifier system urn:oid:1.2.208.176.1.2) or the registry "
                             "pseudonym as the id", code="required", expression="Patient.identifier")
    from fhir.resources.R4B.patient import Patient
    from pydantic import ValidationError

    try:
        Patient.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-"))
        raise FhirInputError(f"not a valid R4 Patient: {where}: {first['msg']}", code="structure",
                             expression=f"Patient.{where}") from None
    for k in ("name", "telecom", "address", "photo", "contact"):
        if k in doc:
            raise FhirInputError(f"Patient.{k} is not accepted: the registry keeps no names or contact details",
                                 code="business-rule", expression=f"Patient.{k}")
    row: dict[str, Any] = {"patient_id": str(pid), "sex": doc.get("gender"), "birth_date": doc.get("birthDate"),
                           "death_date": (str(doc["deceasedDateTime"])[:10] if doc.get("deceasedDateTime")
                                          else None)}
    row.update(extension_columns("patients", doc.get("extension"), "Patient",
                                 ("patient_id", "sex", "birth_date", "death_date")))
    return row


def read_bulk(files: Sequence[str | Path], *, key: bytes, id_prefix: str = "fhir",
              registry_operations: OperationsLookup | None = None,
              registry_patient: PatientLookup | None = None) -> BulkRows:
    """Read FHIR files (Bundles, NDJSON, single resources) into tidy registry rows.

    Parameters
    ----------
    files : sequence of path
        ``.ndjson`` / ``.jsonl`` files (one resource a line) or ``.json`` files (a Bundle or a resource).
    key : bytes
        The site key: CPR identifiers become keyed pseudonyms at once.
    id_prefix : str
        Namespace of the ids made for records that bring none (``<prefix>:<32 hex digits>`` of a digest
        of the resource, so a file read twice gives the same ids).
    registry_operations, registry_patient : callable, optional
        The registry's operations of a patient, and whether a patient is registered, for references
        to records already in the registry.

    Raises :class:`FhirBulkError` listing every refused resource (file, line or entry, element, value).
    """
    problems: list[str] = []
    items = [it for f in files for it in _items(Path(f), problems)]
    out = BulkRows()
    refs: dict[str, str] = {}
    by_type: dict[str, list[_Item]] = {}
    for it in items:
        by_type.setdefault(str(it.doc.get("resourceType")), []).append(it)
    # patients first: their pseudonyms are what the other resources refer to
    patients: dict[str, dict[str, Any]] = {}
    for it in by_type.pop("Patient", []):
        try:
            row = _patient(it, key)
        except FhirInputError as exc:
            problems.append(_problem(it, exc))
            continue
        patients.setdefault(row["patient_id"], row)
        if it.full_url:
            refs[it.full_url] = f"Patient/{row['patient_id']}"
    out.tables["patients"] = list(patients.values())

    def known(pid: str) -> bool:
        return pid in patients or (registry_patient is not None and registry_patient(pid))

    procedures = by_type.pop("Procedure", [])
    ops: dict[str, dict[str, Any]] = {}
    parsed_ops = []
    for it in procedures:
        try:
            p = parse_procedure(_resolve(it.doc, refs), keep_id=True)
        except FhirInputError as exc:
            problems.append(_problem(it, exc))
            continue
        op_id = p.operation_id or f"{id_prefix}:{_digest(it.doc)}"
        if it.full_url:
            refs[it.full_url] = f"Procedure/{fhir_id(op_id) or op_id}"
        parsed_ops.append((it, p, op_id))
    for it, p, op_id in parsed_ops:
        if not known(p.patient_id):
            problems.append(f"{it.where}: Procedure [Procedure.subject]: Patient/{p.patient_id} is neither in the "
                            "files nor in the registry")
            continue
        if op_id in ops:
            problems.append(f"{it.where}: Procedure [Procedure.identifier]: operation {op_id!r} is given twice")
            continue
        ops[op_id] = {"operation_id": op_id, "patient_id": p.patient_id, **p.operation}
        out.tables["treated_levels"] += [{"operation_id": op_id, **lv} for lv in p.levels]
    out.tables["operations"] = list(ops.values())
    proms: dict[str, dict[str, Any]] = {}
    for it in by_type.pop("QuestionnaireResponse", []):
        try:
            doc = _resolve(it.doc, refs)
            parsed = parse_response(doc, complete=False)
            row = _prom(doc, parsed, ops, registry_operations, id_prefix, it)
        except FhirInputError as exc:
            problems.append(_problem(it, exc))
            continue
        if not known(parsed.patient_id):
            problems.append(f"{it.where}: QuestionnaireResponse [QuestionnaireResponse.subject]: "
                            f"Patient/{parsed.patient_id} is neither in the files nor in the registry")
            continue
        have = proms.get(row["prom_id"])
        if have is None:
            proms[row["prom_id"]] = row
            continue
        for k, v in row.items():  # one questionnaire row answered several instruments: one resource each
            if have.get(k) is not None and v is not None and have[k] != v:
                problems.append(f"{it.where}: QuestionnaireResponse [QuestionnaireResponse.identifier]: prom "
                                f"{row['prom_id']!r} is given again with {k} {v!r} (was {have[k]!r})")
                break
            if v is not None:
                have[k] = v
    out.tables["proms"] = list(proms.values())
    for rtype, rest in by_type.items():
        if rtype in ("Observation", "Questionnaire"):
            out.skipped[rtype] = len(rest)  # derived scores / the instruments: the registry makes them
            continue
        for it in rest:
            problems.append(f"{it.where}: resourceType {rtype!r} is not imported (Patient, Procedure, "
                            "QuestionnaireResponse; Observation and Questionnaire are skipped)")
    if problems:
        raise FhirBulkError(problems)
    return out


def _prom(doc: dict[str, Any], parsed: Any, ops: Mapping[str, Mapping[str, Any]],
          registry_operations: OperationsLookup | None, id_prefix: str, it: _Item) -> dict[str, Any]:
    ident = doc.get("identifier") or {}
    if isinstance(ident, dict) and ident.get("system") == PROM_SYSTEM and ident.get("value"):
        prom_id = str(ident["value"])
    else:
        prom_id = f"{id_prefix}:{_digest(doc)}"
    extra = extension_columns("proms", doc.get("extension"), "QuestionnaireResponse", PROM_ELEMENTS)
    part = [str(p.get("reference", "")) for p in doc.get("partOf") or [] if isinstance(p, dict)]
    procs = [registry_id(p[len("Procedure/"):]) for p in part if p.startswith("Procedure/")]
    candidates = [(str(o["operation_id"]), date.fromisoformat(str(o["date"])[:10])) for o in ops.values()
                  if o["patient_id"] == parsed.patient_id]
    if registry_operations is not None:
        candidates += [c for c in registry_operations(parsed.patient_id) if c[0] not in ops]
    if procs:
        chosen = [c for c in candidates if c[0] == procs[0]]
        if not chosen:
            raise FhirInputError(f"partOf Procedure/{fhir_id(procs[0]) or procs[0]} is not an operation of "
                                 f"Patient/{parsed.patient_id} in the files or the registry", code="not-found",
                                 expression="QuestionnaireResponse.partOf", value=part[0])
        candidates = chosen
    if "timepoint" in extra and procs:
        op_id, timepoint = procs[0], str(extra.pop("timepoint"))
    else:
        op_id, timepoint = assign_timepoint(parsed.authored, candidates)
        extra.pop("timepoint", None)
    row = prom_row(parsed, prom_id=prom_id, operation_id=op_id, timepoint=timepoint)
    row.update(extra)  # proms.mode comes with the export's column extension (an API write's "fhir" included)
    return copy.deepcopy(row)

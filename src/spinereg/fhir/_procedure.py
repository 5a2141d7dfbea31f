"""Procedure resources: a registry operation with its treated levels, and back.

An ``operations`` row and its ``treated_levels`` rows are one Procedure:

========================  ==========================================================================
Procedure element         registry column
========================  ==========================================================================
``id``                    ``operation_id`` (``:`` written ``..``; FHIR ids allow ``A-Z a-z 0-9 - .``)
``identifier``            ``operation_id`` as it is, system :data:`OPERATION_SYSTEM`
``status``                always ``completed`` (the registry records operations that took place)
``category``              ``procedure_category``, code system :data:`CATEGORY_SYSTEM`
``code``                  ``procedure_codes``: SKS (NOMESCO) codes, system :data:`SKS_SYSTEM`
``subject``               ``patient_id``: ``Patient/<pseudonym>``
``performedDateTime``     ``date``
``reasonCode``            ``diagnosis_codes`` (ICD-10, :data:`ICD10_SYSTEM`) and ``indication``
                          (:data:`INDICATION_SYSTEM`)
``bodySite``              one per treated level: ``level`` in :data:`VERTEBRA_SYSTEM`, its
                          ``cement_volume_ml`` and ``approach`` as extensions
``extension``             the other operation columns (hospital, department, ASA class, SINS, ...),
                          one extension each, URL :data:`COLUMN_EXTENSION` + ``operations.<column>``
========================  ==========================================================================

Checking a posted Procedure (:func:`parse_procedure`) refuses, with an
OperationOutcome naming the element and the value: another resource type, a
CPR-shaped number anywhere, an invalid R4 resource, an element the registry
does not keep, ``status`` other than ``completed``, a missing subject, date or
category, a coding of an unknown code system, an unknown extension, and a
level given twice.  The registry's own rules (vocabularies, ranges, the
references) are applied by the write service.  Nothing here writes anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spinereg.data import entity
from spinereg.fhir._convert import check_resource, load_json, required_date, subject_patient
from spinereg.fhir._outcome import FhirInputError

__all__ = ["CATEGORY_SYSTEM", "COLUMN_EXTENSION", "ICD10_SYSTEM", "INDICATION_SYSTEM", "OPERATION_SYSTEM",
           "SKS_SYSTEM", "VERTEBRA_SYSTEM", "ParsedProcedure", "column_extensions", "extension_columns",
           "fhir_id", "parse_procedure", "procedure_resource", "registry_id"]

#: SKS, Sundhedsvæsenets Klassifikations System (Danish health classification; the procedure codes
#: are NOMESCO codes with SKS's ``K`` prefix, e.g. ``KNAG40``).
SKS_SYSTEM = "urn:oid:1.2.208.176.2.4"
#: WHO ICD-10 (HL7's URI); written with the dot (``M80.0``), the registry keeps them without it (``M800``).
ICD10_SYSTEM = "http://hl7.org/fhir/sid/icd-10"
#: The registry's own code systems (documented in docs/fhir.md): the codes are the schema's values.
VERTEBRA_SYSTEM = "urn:spinereg:fhir:vertebra"
CATEGORY_SYSTEM = "urn:spinereg:fhir:procedure-category"
INDICATION_SYSTEM = "urn:spinereg:fhir:indication"
OPERATION_SYSTEM = "urn:spinereg:fhir:operation"
#: Extensions that carry one registry column: this + ``<entity>.<column>``.
COLUMN_EXTENSION = "urn:spinereg:fhir:column:"

#: Columns carried by named elements (not by column extensions).
_OPERATION_ELEMENTS = ("operation_id", "patient_id", "date", "procedure_codes", "procedure_category",
                       "indication", "diagnosis_codes")
_LEVEL_ELEMENTS = ("operation_id", "level")
#: Procedure elements a posted resource may hold; others are refused (the registry would not keep them).
ACCEPTED = ("resourceType", "id", "meta", "text", "identifier", "status", "category", "code", "subject",
            "performedDateTime", "reasonCode", "bodySite", "extension")


def fhir_id(registry_key: str) -> str | None:
    """The FHIR id of a registry id (``:`` written ``..``); None when it cannot be one."""
    import re

    if ".." in registry_key or not re.fullmatch(r"[A-Za-z0-9\-:]+", registry_key):
        return None
    rid = registry_key.replace(":", "..")
    return rid if len(rid) <= 64 else None


def registry_id(resource_id: str) -> str:
    """The registry id of a FHIR id (the inverse of :func:`fhir_id`)."""
    return resource_id.replace("..", ":")


def _value(column: Any, v: Any) -> dict[str, Any]:
    if column.type == "int":
        return {"valueInteger": int(v)}
    if column.type == "float":
        return {"valueDecimal": float(v)}
    if column.type == "bool":
        return {"valueBoolean": bool(v)}
    if column.type == "date":
        return {"valueDate": str(v)[:10]}
    if column.type == "category":
        return {"valueCode": str(v)}
    return {"valueString": str(v)}


def _missing(v: Any) -> bool:
    return v is None or v == "" or (isinstance(v, float) and v != v) or str(v) in ("<NA>", "NaT", "nan")


def column_extensions(entity_name: str, row: Mapping[str, Any], skip: Sequence[str]) -> list[dict[str, Any]]:
    """One extension per non-empty column of ``row`` not in ``skip`` (URL :data:`COLUMN_EXTENSION` +
    ``entity.column``)."""
    out = []
    for col in entity(entity_name).columns:
        if col.name in skip or _missing(row.get(col.name)):
            continue
        out.append({"url": f"{COLUMN_EXTENSION}{entity_name}.{col.name}", **_value(col, row[col.name])})
    return out


def extension_columns(entity_name: str, extensions: Any, where: str, skip: Sequence[str]) -> dict[str, Any]:
    """The registry columns of column extensions (the inverse of :func:`column_extensions`);
    :class:`FhirInputError` for an unknown extension or a value of the wrong kind."""
    out: dict[str, Any] = {}
    names = {c.name for c in entity(entity_name).columns} - set(skip)
    for i, ext in enumerate(extensions or []):
        url = str(ext.get("url", "")) if isinstance(ext, dict) else ""
        here = f"{where}.extension[{i}]"
        prefix = f"{COLUMN_EXTENSION}{entity_name}."
        col = url[len(prefix):] if url.startswith(prefix) else None
        if col not in names:
            allowed = ", ".join(prefix + n for n in sorted(names))
            raise FhirInputError(f"{here}: extension {url!r} is not accepted here (accepted: {allowed})",
                                 code="not-supported", expression=here, value=url)
        values = [k for k in ext if k.startswith("value")]
        if len(values) != 1:
            raise FhirInputError(f"{here}: extension {url!r} needs one value", code="required", expression=here,
                                 value=url)
        v = ext[values[0]]
        if isinstance(v, dict | list):
            raise FhirInputError(f"{here}: extension {url!r}: {values[0]} is not accepted (a simple value)",
                                 code="value", expression=here, value=values[0])
        out[str(col)] = v
    return out


def _codings(concept: Any, where: str, systems: Sequence[str]) -> list[tuple[str, str]]:
    """(system, code) of a CodeableConcept's codings; an unknown system is refused."""
    out = []
    for j, coding in enumerate((concept or {}).get("coding") or []):
        here = f"{where}.coding[{j}]"
        system, code = coding.get("system"), coding.get("code")
        if system not in systems:
            raise FhirInputError(f"{here}: code system {system!r} is not accepted here (accepted: "
                                 f"{', '.join(systems)})", code="code-invalid", expression=f"{here}.system",
                                 value=str(system))
        if not code:
            raise FhirInputError(f"{here}: the code is missing", code="required", expression=f"{here}.code")
        out.append((str(system), str(code)))
    return out


@dataclass(frozen=True)
class ParsedProcedure:
    """A checked Procedure: the ``operations`` values (no ``operation_id``) and the treated levels."""

    patient_id: str
    operation: dict[str, Any]
    levels: list[dict[str, Any]]
    #: The registry id given in ``identifier`` or ``id`` (bulk import), else None.
    operation_id: str | None = None


def _validate_model(doc: dict[str, Any]) -> None:
    from fhir.resources.R4B.procedure import Procedure
    from pydantic import ValidationError

    try:
        Procedure.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-"))
        raise FhirInputError(f"not a valid R4 Procedure: {where}: {first['msg']} (value {first.get('input')!r})"[:500],
                             status=400, code="structure", expression=f"Procedure.{where}") from None


def parse_procedure(body: bytes | str | Mapping[str, Any], *, keep_id: bool = False) -> ParsedProcedure:
    """Check a Procedure and return the registry rows it describes (see the module docstring).

    ``keep_id``: take the operation id from ``identifier`` (system :data:`OPERATION_SYSTEM`) or ``id``
    (bulk import of an export); the API makes new ids."""
    doc = check_resource(load_json(body), "Procedure")
    if not (doc.get("subject") or {}).get("reference"):  # before the model's own (1..1) check: a clearer answer
        raise FhirInputError("the subject is missing: give Procedure.subject, a reference Patient/<id>",
                             code="required", expression="Procedure.subject")
    _validate_model(doc)
    for key in doc:
        if key not in ACCEPTED:
            raise FhirInputError(f"Procedure.{key} is not accepted: the registry does not keep it (accepted: "
                                 f"{', '.join(ACCEPTED[1:])}). Nothing was stored", code="not-supported",
                                 expression=f"Procedure.{key}", value=key)
    if doc.get("status") != "completed":
        raise FhirInputError(f"status {doc.get('status')!r} is not accepted: the registry records completed "
                             "operations (status completed)", code="business-rule", expression="Procedure.status",
                             value=str(doc.get("status")))
    pid = subject_patient(doc, "Procedure")
    day = required_date(doc, "Procedure", "performedDateTime", "the date of the operation is required")
    categories = _codings(doc.get("category"), "Procedure.category", (CATEGORY_SYSTEM,))
    if len(categories) != 1:
        values = ", ".join(entity("operations").column("procedure_category").values)
        raise FhirInputError(f"give one Procedure.category coding in {CATEGORY_SYSTEM} (found {len(categories)}): "
                             f"one of {values}", code="required", expression="Procedure.category")
    op: dict[str, Any] = {"date": day.isoformat(), "procedure_category": categories[0][1]}
    codes = [c for _, c in _codings(doc.get("code"), "Procedure.code", (SKS_SYSTEM,))]
    if codes:
        op["procedure_codes"] = ";".join(codes)
    diagnoses: list[str] = []
    indications: list[str] = []
    for i, concept in enumerate(doc.get("reasonCode") or []):
        for system, code in _codings(concept, f"Procedure.reasonCode[{i}]", (ICD10_SYSTEM, INDICATION_SYSTEM)):
            (diagnoses if system == ICD10_SYSTEM else indications).append(code.replace(".", ""))
    if len(indications) > 1:
        raise FhirInputError(f"Procedure.reasonCode: {len(indications)} indications in {INDICATION_SYSTEM}; the "
                             "registry keeps one", code="invalid", expression="Procedure.reasonCode",
                             value=", ".join(indications))
    if indications:
        op["indication"] = indications[0]
    if diagnoses:
        op["diagnosis_codes"] = ";".join(diagnoses)
    op.update(extension_columns("operations", doc.get("extension"), "Procedure", _OPERATION_ELEMENTS))
    levels: list[dict[str, Any]] = []
    for i, site in enumerate(doc.get("bodySite") or []):
        where = f"Procedure.bodySite[{i}]"
        found = _codings(site, where, (VERTEBRA_SYSTEM,))
        if len(found) != 1:
            raise FhirInputError(f"{where}: give one coding in {VERTEBRA_SYSTEM} (the vertebra, e.g. L1); found "
                                 f"{len(found)}", code="required", expression=where)
        level = found[0][1]
        if any(lv["level"] == level for lv in levels):
            raise FhirInputError(f"{where}: level {level!r} is given twice", code="invalid", expression=where,
                                 value=level)
        levels.append({"level": level, **extension_columns("treated_levels", site.get("extension"), where,
                                                           _LEVEL_ELEMENTS)})
    given: str | None = None
    if keep_id:
        ids = [str(i.get("value")) for i in doc.get("identifier") or [] if i.get("system") == OPERATION_SYSTEM]
        given = ids[0] if ids else (registry_id(str(doc["id"])) if doc.get("id") else None)
    return ParsedProcedure(pid, op, levels, given)


def procedure_resource(row: Mapping[str, Any], levels: Sequence[Mapping[str, Any]],
                       resource_id: str) -> dict[str, Any]:
    """The Procedure of an ``operations`` row and its ``treated_levels`` rows, validated by the R4B model."""
    from fhir.resources.R4B.procedure import Procedure

    doc: dict[str, Any] = {
        "resourceType": "Procedure", "id": resource_id,
        "identifier": [{"system": OPERATION_SYSTEM, "value": str(row["operation_id"])}],
        "status": "completed",
        "category": {"coding": [{"system": CATEGORY_SYSTEM, "code": str(row["procedure_category"])}]},
        "subject": {"reference": f"Patient/{row['patient_id']}"},
        "performedDateTime": str(row["date"])[:10],
    }
    if not _missing(row.get("procedure_codes")):
        doc["code"] = {"coding": [{"system": SKS_SYSTEM, "code": c}
                                  for c in str(row["procedure_codes"]).split(";") if c]}
    reasons = []
    if not _missing(row.get("diagnosis_codes")):
        reasons += [{"coding": [{"system": ICD10_SYSTEM, "code": c[:3] + ("." + c[3:] if len(c) > 3 else "")}]}
                    for c in str(row["diagnosis_codes"]).split(";") if c]  # WHO's form: M80.0 (stored M800)
    if not _missing(row.get("indication")):
        reasons.append({"coding": [{"system": INDICATION_SYSTEM, "code": str(row["indication"])}]})
    if reasons:
        doc["reasonCode"] = reasons
    sites = []
    for lv in sorted(levels, key=lambda r: _LEVEL_ORDER.get(str(r["level"]), 99)):
        site: dict[str, Any] = {"coding": [{"system": VERTEBRA_SYSTEM, "code": str(lv["level"]),
                                            "display": f"Vertebra {lv['level']}"}]}
        ext = column_extensions("treated_levels", lv, _LEVEL_ELEMENTS)
        if ext:
            site["extension"] = ext
        sites.append(site)
    if sites:
        doc["bodySite"] = sites
    ext = column_extensions("operations", row, _OPERATION_ELEMENTS)
    if ext:
        doc["extension"] = ext
    return dict(Procedure.model_validate(doc).model_dump(mode="json", exclude_none=True))


_LEVEL_ORDER = {v: i for i, v in enumerate(entity("treated_levels").column("level").values)}

"""Patient resources: the CPR identifier taken out at once, everything else checked.

A Patient is accepted with exactly one identifier in the Danish CPR system
(:data:`CPR_SYSTEM`); the registry stores only its keyed pseudonym (the
resource id), the sex and the birth date derived from it.  Names, contact
details and photos are refused (the registry keeps none); so is a CPR-shaped
number anywhere else in the resource.  No message ever shows the CPR number.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from spinereg.data import HIDDEN
from spinereg.fhir._convert import check_resource, load_json
from spinereg.fhir._outcome import FhirInputError

__all__ = ["CPR_SYSTEM", "patient_cpr", "patient_resource"]

#: The Danish CPR number's identifier system (OID of the CPR register).
CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"
#: Elements the registry does not keep: refused rather than silently dropped.
REFUSED = ("name", "telecom", "address", "photo", "contact", "deceasedBoolean", "deceasedDateTime")


def patient_cpr(body: bytes | str | Mapping[str, Any]) -> str:
    """The CPR number of a Patient resource (checked: R4 valid, one CPR identifier, nothing refused).

    :class:`FhirInputError` names the element; the number is never shown."""
    doc = load_json(body)
    if doc.get("resourceType") != "Patient":
        check_resource(doc, "Patient")  # refuses the type (400)
    raw = doc.get("identifier")
    ids: list[Any] = raw if isinstance(raw, list) else []
    cprs = [i for i in ids if isinstance(i, dict) and i.get("system") == CPR_SYSTEM]
    if len(cprs) != 1 or not isinstance(cprs[0].get("value"), str) or not cprs[0]["value"].strip():
        raise FhirInputError(f"give exactly one identifier with system {CPR_SYSTEM} (the CPR number); "
                             f"found {len(cprs)}", code="required", expression="Patient.identifier")
    cpr = str(cprs[0]["value"]).strip()
    rest = copy.deepcopy(doc)
    rest["identifier"] = [i for i in ids if i not in cprs]
    if not rest["identifier"]:
        del rest["identifier"]
    rest = check_resource(rest, "Patient")  # the type; a CPR-shaped number elsewhere
    for key in REFUSED:
        if key in rest:
            raise FhirInputError(f"Patient.{key} is not accepted: the registry keeps no names, contact details or "
                                 "death records from the API (nothing was stored)", code="business-rule",
                                 expression=f"Patient.{key}")
    _validate(rest)
    return cpr


def _validate(doc: dict[str, Any]) -> None:
    from fhir.resources.R4B.patient import Patient
    from pydantic import ValidationError

    try:
        Patient.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-"))
        raise FhirInputError(f"not a valid R4 Patient: {where}: {first['msg']}", status=400, code="structure",
                             expression=f"Patient.{where}") from None


def patient_resource(row: Mapping[str, Any]) -> dict[str, Any]:
    """The Patient resource of a registry ``patients`` row: id = pseudonym, gender, birth date, death date
    (its source as a column extension, :data:`spinereg.fhir.COLUMN_EXTENSION` ``patients.death_source``)."""
    from fhir.resources.R4B.patient import Patient

    doc: dict[str, Any] = {"resourceType": "Patient", "id": str(row["patient_id"])}
    if row.get("sex") in ("female", "male"):
        doc["gender"] = row["sex"]
    if row.get("birth_date"):
        doc["birthDate"] = str(row["birth_date"])[:10]
    if row.get("death_date"):
        doc["deceasedDateTime"] = str(row["death_date"])[:10]
    from spinereg.fhir._procedure import column_extensions

    ext = column_extensions("patients", row, ("patient_id", "sex", "birth_date", "death_date"))
    if ext:
        doc["extension"] = ext
    out = dict(Patient.model_validate(doc).model_dump(mode="json", exclude_none=True))
    assert HIDDEN not in str(out)
    return out

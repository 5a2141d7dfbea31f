"""QuestionnaireResponse -> a row of the registry's ``proms`` table, and back.

:func:`parse_response` checks a QuestionnaireResponse (JSON text or parsed) and
returns its answers as ``proms`` columns (the schema's columns whose
``instrument``/``item`` name the answered item, e.g. ``odi_3``,
``eq5d3l_mo``); :func:`assign_timepoint` assigns the follow-up time point from
``authored`` and the patient's operations with the schema's day windows
(:func:`spinereg.data.timepoints`); :func:`prom_row` makes the row;
:func:`response_from_row` renders a stored row as a QuestionnaireResponse.

Every refusal is a :class:`FhirInputError` whose OperationOutcome names the
place (a FHIRPath ``expression``, the item's ``linkId``) and the value, in this
order of checks: malformed JSON; not a JSON object / wrong ``resourceType``; a
CPR-shaped number in any text (the value is never shown); the R4B model's
validation; ``status``; ``questionnaire``; ``subject``; ``authored``; then
each item (unknown or repeated ``linkId``, more than one answer, the wrong
answer type, an answer outside the item's levels) and the missing required
items.  Nothing here writes anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from spinereg.data import HIDDEN, contains_cpr, entity, timepoints
from spinereg.fhir._outcome import FhirInputError
from spinereg.fhir._questionnaires import FhirInstrument, fhir_instrument

__all__ = ["PROM_ELEMENTS", "PROM_SYSTEM", "ParsedResponse", "assign_timepoint", "check_resource",
           "instrument_columns", "load_json", "parse_response", "prom_row", "response_from_row"]

STATUSES = ("completed", "amended")
#: ``QuestionnaireResponse.identifier`` system of the registry's ``prom_id``.
PROM_SYSTEM = "urn:spinereg:fhir:prom"
#: ``proms`` columns carried by named elements or items; the others (time point, satisfaction, global
#: assessment) are column extensions (:func:`spinereg.fhir.column_extensions`).
PROM_ELEMENTS = ("prom_id", "patient_id", "operation_id", "answer_date",
                 *(c.name for c in entity("proms").columns if c.instrument))


@dataclass(frozen=True)
class ParsedResponse:
    """A checked QuestionnaireResponse: questionnaire, patient (pseudonym), date, answers by proms column."""

    questionnaire: FhirInstrument
    patient_id: str
    authored: date
    answers: dict[str, int]



def subject_patient(doc: Mapping[str, Any], resource: str) -> str:
    """The patient id of ``subject`` (a reference ``Patient/<id>``), or :class:`FhirInputError` naming it."""
    subject = str((doc.get("subject") or {}).get("reference") or "")
    if not subject:
        raise FhirInputError(f"the subject is missing: give {resource}.subject, a reference Patient/<id>",
                             code="required", expression=f"{resource}.subject")
    pid = subject[len("Patient/"):] if subject.startswith("Patient/") else ""
    if not pid or "/" in pid:
        raise FhirInputError(f"subject {subject!r} is not a reference Patient/<id>", code="invalid",
                             expression=f"{resource}.subject", value=subject)
    return pid


def required_date(doc: Mapping[str, Any], resource: str, element: str, why: str) -> date:
    """The date (``YYYY-MM-DD``, a time after it ignored) of a required element, or :class:`FhirInputError`."""
    text = doc.get(element)
    if not text:
        raise FhirInputError(f"{element} is missing: {why}", code="required", expression=f"{resource}.{element}")
    try:
        return date.fromisoformat(str(text)[:10])
    except ValueError:
        raise FhirInputError(f"{element} {text!r} has no full date (YYYY-MM-DD)", code="invalid",
                             expression=f"{resource}.{element}", value=str(text)) from None

def instrument_columns(instrument_id: str) -> dict[str, str]:
    """Item id -> ``proms`` column, for one instrument (from the schema's ``instrument``/``item``)."""
    return {c.item: c.name for c in entity("proms").columns if c.instrument == instrument_id}


def _strings(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(k, path)
            yield from _strings(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _strings(v, f"{path}[{i}]")


def load_json(body: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    """A JSON object from a request body (:class:`FhirInputError` 400 for malformed JSON or another value)."""
    if isinstance(body, Mapping):
        return dict(body)
    try:
        doc = json.loads(body)
    except UnicodeDecodeError:
        raise FhirInputError("malformed JSON: the body is not UTF-8 text", status=400, code="structure") from None
    except json.JSONDecodeError as exc:
        raise FhirInputError(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                             status=400, code="structure") from None
    if not isinstance(doc, dict):
        raise FhirInputError(f"the body must be a JSON object (a FHIR resource), not a JSON {type(doc).__name__}",
                             status=400, code="structure")
    return doc


def check_resource(body: bytes | str | Mapping[str, Any], resource_type: str) -> dict[str, Any]:
    """Parse ``body``, refuse another resource type and any CPR-shaped number in its text."""
    doc = load_json(body)
    got = doc.get("resourceType")
    if got != resource_type:
        raise FhirInputError(f"resourceType {got!r} is not accepted here: expected {resource_type!r}",
                             status=400, code="invalid", expression="resourceType", value=repr(got))
    for where, text in _strings(doc, resource_type):
        if contains_cpr(text):
            raise FhirInputError(f"{where}: the text holds a CPR number ({HIDDEN}); remove it. Nothing was stored",
                                 status=422, code="security", expression=where, value=HIDDEN)
    return doc


def _validate_model(doc: dict[str, Any]) -> None:
    from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
    from pydantic import ValidationError

    try:
        QuestionnaireResponse.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-"))
        raise FhirInputError(f"not a valid R4 QuestionnaireResponse: {where}: {first['msg']} "
                             f"(value {first.get('input')!r})"[:500], status=400, code="structure",
                             expression=f"QuestionnaireResponse.{where}") from None


def _items(items: Sequence[Any], path: str) -> Iterator[tuple[dict[str, Any], str]]:
    for i, it in enumerate(items):
        here = f"{path}.item[{i}]"
        if it.get("item"):
            yield from _items(it["item"], here)
        if it.get("answer") or not it.get("item"):
            yield it, here


def _answer(fi: FhirInstrument, link_id: str, answer: dict[str, Any], where: str) -> int:
    item = fi.instrument.item(link_id)
    expr = f"QuestionnaireResponse.item.where(linkId='{link_id}').answer"
    kinds = sorted(k for k in answer if k.startswith("value"))
    value: Any
    if kinds == ["valueInteger"]:
        value = answer["valueInteger"]
        shown = repr(value)
    elif kinds == ["valueCoding"] and fi.is_choice(link_id):
        coding = answer["valueCoding"]
        system, code = coding.get("system"), coding.get("code")
        shown = repr(code) + (f" (system {system})" if system else "")
        if system not in (None, fi.answer_system):
            raise FhirInputError(f"item {link_id!r}: answer code {shown} is not of the questionnaire's code system "
                                 f"{fi.answer_system}", code="code-invalid", expression=expr, link_id=link_id,
                                 value=str(code))
        try:
            value = int(str(code))
        except ValueError:
            raise FhirInputError(f"item {link_id!r}: answer code {shown} is not one of the levels "
                                 f"{item.min}..{item.max}", code="code-invalid", expression=expr,
                                 link_id=link_id, value=str(code)) from None
    else:
        allowed = "valueCoding or valueInteger" if fi.is_choice(link_id) else "valueInteger"
        raise FhirInputError(f"item {link_id!r}: answer {', '.join(kinds) or '(no value)'} is not accepted: "
                             f"use {allowed}", code="value", expression=expr, link_id=link_id,
                             value=", ".join(kinds))
    if isinstance(value, bool) or not isinstance(value, int) or not item.min <= value <= item.max:
        raise FhirInputError(f"item {link_id!r}: answer {shown} is outside the item's range {item.min}..{item.max}",
                             code="value", expression=expr, link_id=link_id, value=str(value))
    return value


def parse_response(body: bytes | str | Mapping[str, Any], *, complete: bool = True) -> ParsedResponse:
    """Check a QuestionnaireResponse and return its answers as ``proms`` columns.

    Raises :class:`FhirInputError` (with the OperationOutcome naming ``linkId`` and
    value) for every refusal listed in the module docstring.  ``complete=False`` (bulk import,
    as every registry import) accepts a response with required items unanswered: the registry
    keeps partial answers, and the derived score is then missing.
    """
    doc = check_resource(body, "QuestionnaireResponse")
    _validate_model(doc)
    status = doc.get("status")
    if status not in STATUSES:
        raise FhirInputError(f"status {status!r} is not accepted: only {' or '.join(STATUSES)} answers are stored",
                             code="business-rule", expression="QuestionnaireResponse.status", value=str(status))
    ref = doc.get("questionnaire")
    if not ref:
        raise FhirInputError("the questionnaire is missing: give QuestionnaireResponse.questionnaire",
                             code="required", expression="QuestionnaireResponse.questionnaire")
    try:
        fi = fhir_instrument(str(ref))
    except FhirInputError as exc:
        raise FhirInputError(str(exc), status=422, code="not-found", expression="QuestionnaireResponse.questionnaire",
                             value=str(ref)) from None
    patient = subject_patient(doc, "QuestionnaireResponse")
    authored = required_date(doc, "QuestionnaireResponse", "authored",
                             "the time point is assigned from the date answered")
    columns = instrument_columns(fi.instrument.id)
    answers: dict[str, int] = {}
    for it, where in _items(doc.get("item") or [], "QuestionnaireResponse"):
        link_id = str(it.get("linkId"))
        expr = f"QuestionnaireResponse.item.where(linkId='{link_id}')"
        if link_id not in columns:
            raise FhirInputError(f"item {link_id!r} is not an item of {fi.instrument.name} "
                                 f"({', '.join(fi.instrument.item_ids)})", code="invalid", expression=expr,
                                 link_id=link_id, value=link_id)
        if columns[link_id] in answers:
            raise FhirInputError(f"item {link_id!r} is answered twice", code="invalid", expression=expr,
                                 link_id=link_id, value=link_id)
        given = it.get("answer") or []
        if len(given) > 1:
            raise FhirInputError(f"item {link_id!r} has {len(given)} answers: one is allowed", code="invalid",
                                 expression=expr, link_id=link_id, value=str(len(given)))
        if given:
            answers[columns[link_id]] = _answer(fi, link_id, given[0], where)
    missing = [i for i in fi.instrument.item_ids if columns[i] not in answers]
    if not complete:
        if not answers:
            raise FhirInputError(f"the response answers no item of {fi.instrument.name}", code="required",
                                 expression="QuestionnaireResponse.item")
        missing = []
    for link_id in missing:
        if fi.required(link_id):
            raise FhirInputError(f"required item {link_id!r} has no answer", code="required",
                                 expression=f"QuestionnaireResponse.item.where(linkId='{link_id}')",
                                 link_id=link_id, value="(missing)")
    if len(missing) > fi.max_missing:
        raise FhirInputError(f"{len(missing)} items have no answer ({', '.join(map(repr, missing))}): at most "
                             f"{fi.max_missing} may be left out of {fi.instrument.name}", code="required",
                             expression=f"QuestionnaireResponse.item.where(linkId='{missing[0]}')",
                             link_id=missing[0], value="(missing)")
    return ParsedResponse(fi, patient, authored, answers)


def assign_timepoint(authored: date, operations: Sequence[tuple[str, date]]) -> tuple[str, str]:
    """The operation and time point of an answer dated ``authored``.

    ``operations`` are the patient's (operation id, operation date).  The time point
    is the one whose window (days after the operation, :func:`spinereg.data.timepoints`)
    holds ``authored``; of several (operations, windows), the one nearest its target
    day.  :class:`FhirInputError` when no window holds the date.
    """
    tps = timepoints()
    best: tuple[int, str, str] | None = None
    for op_id, op_date in operations:
        days = (authored - op_date).days
        for tp in tps.values():
            if tp.window[0] <= days <= tp.window[1]:
                cand = (abs(days - tp.target), op_id, tp.name)
                best = cand if best is None or cand < best else best
    if best is None:
        windows = ", ".join(f"{t.name} {t.window[0]}..{t.window[1]}" for t in tps.values())
        if not operations:
            raise FhirInputError("the patient has no operation in the registry: a questionnaire is stored "
                                 "with the operation it follows", code="business-rule",
                                 expression="QuestionnaireResponse.subject")
        nearest = min(((authored - d).days for _, d in operations), key=abs)
        raise FhirInputError(f"authored {authored.isoformat()} is {nearest} days from the patient's nearest "
                             f"operation: outside every time point window (days: {windows})",
                             code="business-rule", expression="QuestionnaireResponse.authored",
                             value=authored.isoformat())
    return best[1], best[2]


def prom_row(parsed: ParsedResponse, *, prom_id: str, operation_id: str, timepoint: str) -> dict[str, Any]:
    """The ``proms`` row of a checked response."""
    return {"prom_id": prom_id, "patient_id": parsed.patient_id, "operation_id": operation_id,
            "timepoint": timepoint, "answer_date": parsed.authored.isoformat(), **parsed.answers}


def response_from_row(row: Mapping[str, Any], fi: FhirInstrument, resource_id: str) -> dict[str, Any] | None:
    """A stored ``proms`` row as the QuestionnaireResponse of instrument ``fi`` (None when the row has
    none of its answers), validated by the R4B model."""
    from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

    items: list[dict[str, Any]] = []
    for link_id, col in instrument_columns(fi.instrument.id).items():
        v = row.get(col)
        if v is None or (isinstance(v, float) and v != v):
            continue
        level = int(v)
        answer: dict[str, Any] = ({"valueCoding": {"system": fi.answer_system, "code": str(level),
                                                   "display": str(level)}}
                                  if fi.is_choice(link_id) else {"valueInteger": level})
        items.append({"linkId": link_id, "answer": [answer]})
    if not items:
        return None
    doc: dict[str, Any] = {"resourceType": "QuestionnaireResponse", "id": resource_id, "questionnaire": fi.url,
                           "status": "completed", "subject": {"reference": f"Patient/{row['patient_id']}"},
                           "item": items}
    if row.get("prom_id"):
        doc["identifier"] = {"system": PROM_SYSTEM, "value": str(row["prom_id"])}
    if row.get("operation_id"):
        from spinereg.fhir._procedure import fhir_id

        op = fhir_id(str(row["operation_id"]))
        if op is not None:
            doc["partOf"] = [{"reference": f"Procedure/{op}"}]
    if row.get("answer_date") and str(row["answer_date"]) not in ("NaT", "<NA>", "None"):
        doc["authored"] = str(row["answer_date"])[:10]
    from spinereg.fhir._procedure import column_extensions

    ext = column_extensions("proms", row, PROM_ELEMENTS)
    if ext:
        doc["extension"] = ext
    return dict(QuestionnaireResponse.model_validate(doc).model_dump(mode="json", exclude_none=True))

"""The ``/fhir/`` endpoints: CapabilityStatement, Questionnaire, QuestionnaireResponse.

Every answer is FHIR JSON (``application/fhir+json``); every error is an
OperationOutcome with the HTTP status of its issue.  Only ``GET /fhir/metadata``
is open; every other endpoint needs ``Authorization: Bearer TOKEN`` (401
otherwise).  Reading needs the capability ``view_records``, writing
``write_clinical`` (:data:`spinereg.web.permissions.CAPABILITIES`; 403
otherwise).  Records are reached only through
:func:`~spinereg.web.permissions.patients_of` /
:func:`~spinereg.web.permissions.operations_of`: another site's patient is a
404, as a patient that does not exist.

A QuestionnaireResponse is stored as one ``proms`` row through
:class:`spinereg.registry.RegistryWriter` (validated by the import's rules,
scanned for CPR numbers, audited); on any error nothing is stored.  Its
resource id is ``<prom_id>.<questionnaire id>`` with ``:`` of the prom id
written ``..`` (FHIR ids allow letters, digits, ``-`` and ``.``); a stored row
with answers of several instruments is served as one QuestionnaireResponse per
instrument.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db.models import Q
from django.http import HttpRequest, HttpResponse

from spinereg._errors import PrivacyError, SpineregError
from spinereg.fhir import (
    FhirInputError,
    FhirInstrument,
    assign_timepoint,
    fhir_instrument,
    fhir_instruments,
    instrument_columns,
    operation_outcome,
    parse_response,
    patient_cpr,
    patient_resource,
    prom_row,
    questionnaire,
    questionnaires,
    response_from_row,
)
from spinereg.registry import RecordValidationError, RegistryWriter, dataset_code
from spinereg.web.permissions import can, operations_of, patients_of

__all__ = ["metadata", "patient_read", "patient_type", "questionnaire_read", "questionnaire_type", "response_read",
           "response_type"]

ALIAS = "default"
FHIR_JSON = "application/fhir+json"
#: Largest accepted request body (bytes); larger: 413.
MAX_BODY = 1024 * 1024
DEFAULT_COUNT = 50
MAX_COUNT = 500
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_PROM_ID = re.compile(r"^[A-Za-z0-9\-:]+$")


def _dataset() -> str:
    return str(getattr(settings, "SPINEREG_FHIR_DATASET", "fhir api"))


def fhir_response(doc: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    resp = HttpResponse(json.dumps(doc, ensure_ascii=False), status=status,
                        content_type=f"{FHIR_JSON}; charset=utf-8")
    for k, v in (headers or {}).items():
        resp[k] = v
    return resp


def outcome_response(message: str, status: int, code: str, **kw: Any) -> HttpResponse:
    return fhir_response(operation_outcome(message, code=code, **kw), status)


def _error(exc: FhirInputError) -> HttpResponse:
    return fhir_response(exc.outcome, exc.status)


def _bearer(request: HttpRequest) -> str | None:
    header = str(request.META.get("HTTP_AUTHORIZATION", ""))
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


_View = Callable[..., HttpResponse]


def api(capability: str, methods: tuple[str, ...] = ("GET",)) -> Callable[[_View], _View]:
    """Token authentication (401), the method (405) and the capability (403) of an endpoint;
    the view gets the user's StaffProfile as ``request.fhir_profile``."""

    def decorate(view: _View) -> _View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            from spinereg.fhir_api.models import ApiToken

            token = _bearer(request)
            record = ApiToken.lookup(token) if token else None
            user = record.user if record is not None else None
            profile = getattr(user, "staff", None) if user is not None else None
            if record is None or user is None or not user.is_active or profile is None:
                why = ("no bearer token: send Authorization: Bearer TOKEN (spinereg token create USER)"
                       if token is None else "the bearer token is unknown, revoked, or its user is disabled")
                resp = outcome_response(why, 401, "login")
                resp["WWW-Authenticate"] = 'Bearer realm="spinereg"'
                return resp
            if request.method not in methods:
                resp = outcome_response(f"method {request.method} is not supported here: {', '.join(methods)}",
                                        405, "not-supported")
                resp["Allow"] = ", ".join(methods)
                return resp
            need = capability if request.method == "GET" else "write_clinical"
            if not can(user, need):
                return outcome_response(f"role {profile.role!r} may not do this (needs {need})", 403, "forbidden")
            request.fhir_profile = profile
            try:
                return view(request, *args, **kwargs)
            except FhirInputError as exc:
                return _error(exc)

        wrapped.csrf_exempt = True  # type: ignore[attr-defined]  # token auth, no cookies: Django's csrf_exempt
        return wrapped

    return decorate


# -- CapabilityStatement ------------------------------------------------------------------------------------
def _capability_statement(base: str) -> dict[str, Any]:
    from fhir.resources.R4B.capabilitystatement import CapabilityStatement

    search_qr = [{"name": "patient", "type": "reference"}, {"name": "questionnaire", "type": "reference"},
                 {"name": "_count", "type": "number"}, {"name": "_summary", "type": "token"}]
    doc = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-04",
        "kind": "instance",
        "software": {"name": "spinereg"},
        "implementation": {"description": "spinereg registry FHIR API", "url": base},
        "fhirVersion": "4.0.1",
        "format": [FHIR_JSON, "json"],
        "rest": [{
            "mode": "server",
            "security": {"description": "Authorization: Bearer TOKEN (spinereg token create USER); the token "
                                        "acts with its user's role and site."},
            "resource": [
                {"type": "Questionnaire", "interaction": [{"code": "read"}, {"code": "search-type"}],
                 "searchParam": [{"name": "_id", "type": "token"}, {"name": "url", "type": "uri"}]},
                {"type": "Patient", "interaction": [{"code": "read"}, {"code": "create"}]},
                {"type": "QuestionnaireResponse",
                 "interaction": [{"code": "read"}, {"code": "search-type"}, {"code": "create"}],
                 "searchParam": search_qr},
            ],
        }],
    }
    return dict(CapabilityStatement.model_validate(doc).model_dump(mode="json", exclude_none=True))


def metadata(request: HttpRequest) -> HttpResponse:
    """``GET /fhir/metadata``: the CapabilityStatement (no token needed)."""
    if request.method != "GET":
        return outcome_response("only GET", 405, "not-supported")
    return fhir_response(_capability_statement(request.build_absolute_uri("/fhir")))


metadata.csrf_exempt = True  # type: ignore[attr-defined]


# -- Bundles and paging -------------------------------------------------------------------------------------
def _count(request: HttpRequest) -> int:
    raw = request.GET.get("_count", str(DEFAULT_COUNT))
    try:
        n = int(raw)
    except ValueError:
        raise FhirInputError(f"_count {raw!r} is not a whole number", status=400, code="invalid",
                             expression="_count", value=raw) from None
    if n < 0:
        raise FhirInputError(f"_count {n} is negative", status=400, code="invalid", expression="_count", value=raw)
    return min(n, MAX_COUNT)


def _offset(request: HttpRequest) -> int:
    raw = request.GET.get("_offset", "0")
    if not raw.isdigit():
        raise FhirInputError(f"_offset {raw!r} is not a whole number >= 0", status=400, code="invalid",
                             expression="_offset", value=raw)
    return int(raw)


def _bundle(request: HttpRequest, total: int, resources: list[dict[str, Any]], offset: int, count: int,
            summary_count: bool) -> dict[str, Any]:
    from fhir.resources.R4B.bundle import Bundle

    base = request.build_absolute_uri(request.path)
    params = {k: v for k, v in request.GET.items() if k != "_offset"}

    def link(relation: str, at: int) -> dict[str, str]:
        return {"relation": relation, "url": f"{base}?{urlencode({**params, '_offset': str(at)})}"}

    doc: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": total,
                           "link": [link("self", offset)]}
    if not summary_count:
        if count and offset + count < total:
            doc["link"].append(link("next", offset + count))
        if offset > 0:
            doc["link"].append(link("previous", max(0, offset - count)))
        root = request.build_absolute_uri("/fhir/")
        doc["entry"] = [{"fullUrl": f"{root}{r['resourceType']}/{r['id']}", "resource": r,
                         "search": {"mode": "match"}} for r in resources]
    return dict(Bundle.model_validate(doc).model_dump(mode="json", exclude_none=True))


def _summary_count(request: HttpRequest) -> bool:
    summary = request.GET.get("_summary")
    if summary not in (None, "count", "false"):
        raise FhirInputError(f"_summary={summary!r} is not supported (only count or false)", status=400,
                             code="not-supported", expression="_summary", value=str(summary))
    return bool(summary == "count")


# -- Questionnaire ------------------------------------------------------------------------------------------
@api("view_records")
def questionnaire_type(request: HttpRequest) -> HttpResponse:
    """``GET /fhir/Questionnaire[?_id=&url=]``: search."""
    found = questionnaires()
    if "_id" in request.GET:
        ids = set(request.GET["_id"].split(","))
        found = [q for q in found if q["id"] in ids]
    if "url" in request.GET:
        found = [q for q in found if q["url"] == request.GET["url"].split("|")[0]]
    count, offset = _count(request), _offset(request)
    return fhir_response(_bundle(request, len(found), found[offset:offset + count], offset, count,
                                 _summary_count(request)))


@api("view_records")
def questionnaire_read(request: HttpRequest, resource_id: str) -> HttpResponse:
    """``GET /fhir/Questionnaire/ID``."""
    return fhir_response(questionnaire(resource_id))


# -- QuestionnaireResponse ----------------------------------------------------------------------------------
def to_fhir_id(prom_id: str, fi: FhirInstrument) -> str | None:
    """The resource id of a prom row's answers to one instrument (None when the prom id cannot be one)."""
    if not _PROM_ID.match(prom_id) or ".." in prom_id:
        return None
    rid = f"{prom_id.replace(':', '..')}.{fi.id}"
    return rid if _FHIR_ID.match(rid) else None


def from_fhir_id(resource_id: str) -> tuple[str, FhirInstrument]:
    """The prom id and instrument of a resource id; 404 when it is not one."""
    stem, dot, qid = resource_id.rpartition(".")
    if not dot or not stem or not _FHIR_ID.match(resource_id):
        raise FhirInputError(f"QuestionnaireResponse/{resource_id} not found", status=404, code="not-found")
    try:
        fi = fhir_instrument(qid)
    except FhirInputError:
        raise FhirInputError(f"QuestionnaireResponse/{resource_id} not found", status=404, code="not-found") from None
    return stem.replace("..", ":"), fi


def _proms_model() -> Any:
    from spinereg.registry.models import ENTITY_MODELS

    return ENTITY_MODELS["proms"]


def _visible_proms(profile: Any) -> Any:
    return _proms_model().objects.filter(operation_id__in=operations_of(profile).values("operation_id"))


def _has_answers(fi: FhirInstrument) -> Q:
    q = Q()
    for col in instrument_columns(fi.instrument.id).values():
        q |= Q(**{f"{col}__isnull": False})
    return q


def _row(obj: Any) -> dict[str, Any]:
    from spinereg.data import entity

    return {c: getattr(obj, c) for c in entity("proms").column_names}


def _resource(obj: Any, fi: FhirInstrument) -> dict[str, Any] | None:
    rid = to_fhir_id(str(obj.prom_id), fi)
    if rid is None:
        return None
    return response_from_row(_row(obj), fi, rid)


@api("view_records")
def response_read(request: HttpRequest, resource_id: str) -> HttpResponse:
    """``GET /fhir/QuestionnaireResponse/ID``."""
    prom_id, fi = from_fhir_id(resource_id)
    obj = _visible_proms(request.fhir_profile).filter(prom_id=prom_id).first()
    doc = _resource(obj, fi) if obj is not None else None
    if doc is None:
        raise FhirInputError(f"QuestionnaireResponse/{resource_id} not found", status=404, code="not-found")
    return fhir_response(doc)


@api("view_records", methods=("GET", "POST"))
def response_type(request: HttpRequest) -> HttpResponse:
    """``GET /fhir/QuestionnaireResponse?patient=&questionnaire=&_count=&_summary=count``: search;
    ``POST /fhir/QuestionnaireResponse``: create."""
    if request.method == "POST":
        return _create_response(request)
    profile = request.fhir_profile
    rows = _visible_proms(profile)
    if request.GET.get("patient"):
        rows = rows.filter(patient_id=request.GET["patient"].removeprefix("Patient/"))
    chosen = fhir_instruments()
    if request.GET.get("questionnaire"):
        chosen = tuple(fhir_instrument(r) for r in request.GET["questionnaire"].split(","))
    parts = [(fi, rows.filter(_has_answers(fi)).order_by("prom_id")) for fi in chosen]
    counts = [qs.count() for _, qs in parts]
    total = sum(counts)
    count, offset, only_count = _count(request), _offset(request), _summary_count(request)
    found: list[dict[str, Any]] = []
    skip, want = offset, 0 if only_count else count
    for (fi, qs), n in zip(parts, counts, strict=True):
        if want <= 0:
            break
        if skip >= n:
            skip -= n
            continue
        for obj in qs[skip:skip + want]:
            doc = _resource(obj, fi)
            if doc is not None:
                found.append(doc)
            want -= 1
        skip = 0
    return fhir_response(_bundle(request, total, found, offset, count, only_count))


def _body(request: HttpRequest) -> bytes:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    too_big = FhirInputError(f"the body is larger than {MAX_BODY} bytes", status=413, code="too-long")
    if length > MAX_BODY:
        raise too_big
    try:
        body = request.body
    except RequestDataTooBig:
        raise too_big from None
    if len(body) > MAX_BODY:
        raise too_big
    ctype = str(request.META.get("CONTENT_TYPE", "")).split(";")[0].strip().lower()
    if ctype not in (FHIR_JSON, "application/json", "application/json+fhir"):
        raise FhirInputError(f"Content-Type {ctype or '(none)'!r} is not accepted: send {FHIR_JSON}",
                             status=415, code="not-supported")
    return bytes(body)


def _create_response(request: HttpRequest) -> HttpResponse:
    profile = request.fhir_profile
    parsed = parse_response(_body(request))
    patient = patients_of(profile).filter(patient_id=parsed.patient_id).first()
    if patient is None:
        raise FhirInputError(f"Patient/{parsed.patient_id} not found", status=404, code="not-found",
                             expression="QuestionnaireResponse.subject", value=f"Patient/{parsed.patient_id}")
    ops = [(str(op_id), d) for op_id, d in operations_of(profile).filter(patient_id=parsed.patient_id)
           .values_list("operation_id", "date") if d is not None]
    operation_id, timepoint = assign_timepoint(parsed.authored, ops)
    prom_id = f"{dataset_code(_dataset())}:{uuid.uuid4().hex}"
    row = prom_row(parsed, prom_id=prom_id, operation_id=operation_id, timepoint=timepoint)
    writer = RegistryWriter(ALIAS, _dataset(), who=f"{profile.user.get_username()} (FHIR API)")
    try:
        writer.create("proms", row)
    except RecordValidationError as exc:
        by_column = {c: i for i, c in instrument_columns(parsed.questionnaire.instrument.id).items()}
        first = exc.problems[0] if getattr(exc, "problems", None) else None
        link_id = by_column.get(first.column) if first is not None else None
        expr = (f"QuestionnaireResponse.item.where(linkId='{link_id}')" if link_id
                else "QuestionnaireResponse")
        raise FhirInputError(f"refused by the registry's rules: {exc}", status=422, code="business-rule",
                             expression=expr, link_id=link_id) from None
    except PrivacyError as exc:
        raise FhirInputError(str(exc), status=422, code="security") from None
    except SpineregError as exc:
        raise FhirInputError(f"not stored: {exc}", status=422, code="processing") from None
    obj = _proms_model().objects.get(prom_id=prom_id)
    doc = _resource(obj, parsed.questionnaire)
    assert doc is not None
    location = request.build_absolute_uri(f"/fhir/QuestionnaireResponse/{doc['id']}")
    return fhir_response(doc, 201, {"Location": location})


# -- Patient ------------------------------------------------------------------------------------------------
def _site_key() -> bytes:
    """The site's pseudonymisation key: SPINEREG_SITE_KEY, else the key file (setting SPINEREG_KEY_FILE, default
    $SPINEREG_HOME/site.key), created only for a registry that has no key yet."""
    import os
    from pathlib import Path

    from spinereg.data import default_key_path, load_site_key
    from spinereg.registry import registry_info

    path = Path(getattr(settings, "SPINEREG_KEY_FILE", "") or default_key_path())
    if os.environ.get("SPINEREG_SITE_KEY") or path.exists():
        return load_site_key(path, create=False)
    if registry_info(ALIAS).key_fingerprint is not None:
        raise FhirInputError("the server has no site key but the registry has one: give the server the registry's "
                             "key (SPINEREG_KEY_FILE or SPINEREG_SITE_KEY)", status=500, code="exception")
    return load_site_key(path, create=True)


def _patient_doc(pid: str) -> dict[str, Any] | None:
    from spinereg.registry.models import Patient

    obj = Patient.objects.filter(patient_id=pid).first()
    if obj is None:
        return None
    return patient_resource({"patient_id": obj.patient_id, "sex": obj.sex, "birth_date": obj.birth_date,
                             "death_date": obj.death_date})


@api("view_records", methods=("POST",))
def patient_type(request: HttpRequest) -> HttpResponse:
    """``POST /fhir/Patient``: register a patient by CPR number (pseudonymised at once); 201 when new, 200 when
    registered already; the resource id is the pseudonym, and no answer holds the CPR number.  As on the web's
    register page, the token's site may then read the patient (knowing the number is the credential)."""
    from spinereg.registry import find_patient, register_patient

    profile = request.fhir_profile
    cpr = patient_cpr(_body(request))
    key = _site_key()
    try:
        existed = find_patient(ALIAS, cpr, key=key) is not None
        pid = register_patient(ALIAS, cpr, dataset=_dataset(), key=key, who=f"{profile.user.get_username()} (FHIR API)")
    except SpineregError as exc:
        message = str(exc).replace(cpr, "[CPR number hidden]")
        raise FhirInputError(f"Patient.identifier: not registered: {message}", status=422, code="invalid",
                             expression="Patient.identifier") from None
    _grant(profile, pid, "found" if existed else "registered")
    doc = _patient_doc(pid)
    assert doc is not None
    return fhir_response(doc, 200 if existed else 201,
                         {"Location": request.build_absolute_uri(f"/fhir/Patient/{pid}")})


def _grant(profile: Any, pseudonym: str, how: str) -> None:
    """Record that the token's site reached this patient by CPR number, as the web's register and find pages
    do (:class:`spinereg.web.models.PatientAccess`; nothing for a national role)."""
    from datetime import UTC, datetime

    from spinereg.web.models import PatientAccess

    if profile.national or profile.site is None:
        return
    PatientAccess.objects.get_or_create(site=profile.site, patient_id=pseudonym,
                                        defaults={"how": how, "at": datetime.now(UTC)})


@api("view_records")
def patient_read(request: HttpRequest, resource_id: str) -> HttpResponse:
    """``GET /fhir/Patient/ID``: a patient operated at the token's site, or reached there by CPR number
    (:func:`spinereg.web.clinical.patients_visible`); 404 otherwise."""
    from spinereg.web.clinical import patients_visible

    visible = patients_visible(request.fhir_profile).filter(patient_id=resource_id).exists()
    doc = _patient_doc(resource_id) if visible else None
    if doc is None:
        raise FhirInputError(f"Patient/{resource_id} not found", status=404, code="not-found")
    return fhir_response(doc)

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
from django.db import InterfaceError, OperationalError
from django.db.models import Q
from django.http import HttpRequest, HttpResponse

from spinereg._errors import DatabaseError, PrivacyError, SpineregError
from spinereg.fhir import (
    OBSERVATION_KINDS,
    FhirInputError,
    FhirInstrument,
    assign_timepoint,
    fhir_id,
    fhir_instrument,
    fhir_instruments,
    instrument_columns,
    observations_from_row,
    operation_outcome,
    parse_procedure,
    parse_response,
    patient_cpr,
    patient_resource,
    procedure_resource,
    prom_row,
    questionnaire,
    questionnaires,
    registry_id,
    response_from_row,
)
from spinereg.registry import RecordValidationError, RegistryWriter, dataset_code
from spinereg.web.permissions import can, operations_of, patients_of

__all__ = ["metadata", "observation_read", "observation_type", "patient_read", "patient_type", "procedure_read",
           "procedure_type", "questionnaire_read", "questionnaire_type", "response_read", "response_type"]

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
            try:
                return checked(request, *args, **kwargs)
            except (DatabaseError, OperationalError, InterfaceError):
                # the database is unreachable (a restart, a full disk): nothing was stored, the client may
                # retry; a neutral text (never the driver's message, which names hosts and paths)
                resp = outcome_response("the registry database is not available just now; nothing was stored. "
                                        "Try again shortly", 503, "transient")
                resp["Retry-After"] = "5"
                return resp

        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
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
                {"type": "Procedure", "interaction": [{"code": "read"}, {"code": "create"}]},
                {"type": "Observation", "interaction": [{"code": "read"}, {"code": "search-type"}],
                 "searchParam": [{"name": "patient", "type": "reference"}, {"name": "code", "type": "token"},
                                 {"name": "_count", "type": "number"}, {"name": "_summary", "type": "token"}]},
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
    site_ops = list(operations_of(profile).filter(patient_id=parsed.patient_id).values_list("operation_id", "date"))
    # a patient operated at the site is one the site sees (patients_of); only without such an operation is
    # the whole rule asked (a patient the site reached by CPR number: seen, but no operation to answer after)
    if not site_ops and not patients_of(profile).filter(patient_id=parsed.patient_id).exists():
        raise FhirInputError(f"Patient/{parsed.patient_id} not found", status=404, code="not-found",
                             expression="QuestionnaireResponse.subject", value=f"Patient/{parsed.patient_id}")
    ops = [(str(op_id), d) for op_id, d in site_ops if d is not None]
    operation_id, timepoint = assign_timepoint(parsed.authored, ops)
    prom_id = f"{dataset_code(_dataset())}:{uuid.uuid4().hex}"
    row = prom_row(parsed, prom_id=prom_id, operation_id=operation_id, timepoint=timepoint)
    row["mode"] = "fhir"  # proms.mode: the answers came from a hospital system or app
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
    except DatabaseError:
        raise  # 503 from the api decorator, not a 422
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
                             "death_date": obj.death_date, "death_source": obj.death_source})


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
    except DatabaseError:
        raise  # 503 from the api decorator, not a 422
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
    (:func:`spinereg.web.permissions.patients_of`); 404 otherwise."""
    visible = patients_of(request.fhir_profile).filter(patient_id=resource_id).exists()
    doc = _patient_doc(resource_id) if visible else None
    if doc is None:
        raise FhirInputError(f"Patient/{resource_id} not found", status=404, code="not-found")
    return fhir_response(doc)


# -- Procedure ----------------------------------------------------------------------------------------------
def _procedure_doc(op: Any) -> dict[str, Any] | None:
    from spinereg.data import entity
    from spinereg.registry.models import TreatedLevel

    rid = fhir_id(str(op.operation_id))
    if rid is None:
        return None
    row = {c: getattr(op, c) for c in entity("operations").column_names}
    cols = entity("treated_levels").column_names
    levels = [{c: getattr(lv, c) for c in cols} for lv in TreatedLevel.objects.filter(operation_id=op.operation_id)]
    return procedure_resource(row, levels, rid)


def _problem_expression(exc: RecordValidationError, levels: list[dict[str, Any]]) -> tuple[str, str]:
    """The FHIR element of the first problem the registry found (its column), and the problem."""
    first = exc.problems[0] if getattr(exc, "problems", None) else None
    if first is None:
        return "Procedure", str(exc)
    named = {"date": "performedDateTime", "procedure_category": "category", "procedure_codes": "code",
             "diagnosis_codes": "reasonCode", "indication": "reasonCode", "patient_id": "subject"}
    if first.entity == "treated_levels":
        key = str(first.key).rsplit("/", 1)[-1]
        idx = next((i for i, lv in enumerate(levels) if str(lv["level"]) == key), 0)
        where = f"Procedure.bodySite[{idx}]"
        if first.column not in ("level", "operation_id"):
            where += f".extension('{first.column}')"
    else:
        where = f"Procedure.{named.get(first.column, f'extension({first.column!r})')}"
    return where, f"{first.column}: value {first.value}: {first.message}"


@api("view_records", methods=("POST",))
def procedure_type(request: HttpRequest) -> HttpResponse:
    """``POST /fhir/Procedure``: an operation with its treated levels (``bodySite``), written through the audited
    write service in one transaction: the operation and every level, or nothing."""
    from django.db import transaction

    profile = request.fhir_profile
    parsed = parse_procedure(_body(request))
    if not patients_of(profile).filter(patient_id=parsed.patient_id).exists():
        raise FhirInputError(f"Patient/{parsed.patient_id} not found", status=404, code="not-found",
                             expression="Procedure.subject", value=f"Patient/{parsed.patient_id}")
    values = dict(parsed.operation)
    if not profile.national:
        if profile.site is None:
            raise FhirInputError("the token's user has no site: an operation is recorded at a site", status=403,
                                 code="forbidden")
        values["hospital"] = profile.site.hospital  # the site's own operation, as on the web form
        values["department"] = profile.site.department or None
    op_id = f"{dataset_code(_dataset())}:{uuid.uuid4().hex}"
    who = f"{profile.user.get_username()} (FHIR API)"
    record = {"operation_id": op_id, "patient_id": parsed.patient_id, **values}
    try:
        with transaction.atomic(using=ALIAS):  # each writer call is a savepoint inside: all or nothing
            writer = RegistryWriter(ALIAS, _dataset(), who=who)
            writer.create("operations", record)
            for lv in parsed.levels:
                writer.create("treated_levels", {"operation_id": op_id, **lv})
    except RecordValidationError as exc:
        where, what = _problem_expression(exc, parsed.levels)
        entity_name = exc.problems[0].entity if exc.problems else "operations"
        raise FhirInputError(f"refused by the registry's rules ({entity_name}): {what}. Nothing was stored",
                             status=422, code="business-rule", expression=where) from None
    except PrivacyError as exc:
        raise FhirInputError(f"{exc}. Nothing was stored", status=422, code="security") from None
    except DatabaseError:
        raise  # 503 from the api decorator, not a 422
    except SpineregError as exc:
        raise FhirInputError(f"not stored: {exc}", status=422, code="processing") from None
    doc = _procedure_doc(operations_of(profile).get(operation_id=op_id))
    assert doc is not None
    return fhir_response(doc, 201, {"Location": request.build_absolute_uri(f"/fhir/Procedure/{doc['id']}")})


@api("view_records")
def procedure_read(request: HttpRequest, resource_id: str) -> HttpResponse:
    """``GET /fhir/Procedure/ID``: an operation of the token's site (every operation for a national role)."""
    op = operations_of(request.fhir_profile).filter(operation_id=registry_id(resource_id)).first()
    doc = _procedure_doc(op) if op is not None and _FHIR_ID.match(resource_id) else None
    if doc is None:
        raise FhirInputError(f"Procedure/{resource_id} not found", status=404, code="not-found")
    return fhir_response(doc)


# -- Observation (derived scores, read-only) ----------------------------------------------------------------
def _countries() -> tuple[str, str]:
    return (str(getattr(settings, "SPINEREG_FHIR_COUNTRY_3L", "Denmark")),
            str(getattr(settings, "SPINEREG_FHIR_COUNTRY_5L", "Denmark")))


def _observations(obj: Any) -> list[dict[str, Any]]:
    stem = fhir_id(str(obj.prom_id))
    if stem is None:
        return []
    c3, c5 = _countries()
    return observations_from_row(_row(obj), stem, country_3l=c3, country_5l=c5)


@api("view_records")
def observation_read(request: HttpRequest, resource_id: str) -> HttpResponse:
    """``GET /fhir/Observation/<prom>.<kind>``: a derived score (kind ``eq5d3l-index``, ``eq5d5l-index`` or
    ``odi-score``), computed from the stored answers."""
    stem, dot, kind = resource_id.rpartition(".")
    obj = (_visible_proms(request.fhir_profile).filter(prom_id=registry_id(stem)).first()
           if dot and kind in OBSERVATION_KINDS and _FHIR_ID.match(resource_id) else None)
    found = [o for o in _observations(obj) if o["id"] == resource_id] if obj is not None else []
    if not found:
        raise FhirInputError(f"Observation/{resource_id} not found", status=404, code="not-found")
    return fhir_response(found[0])


@api("view_records")
def observation_type(request: HttpRequest) -> HttpResponse:
    """``GET /fhir/Observation?patient=ID[&code=SYSTEM|CODE][&_count=&_offset=&_summary=count]``: the derived
    scores of one patient's questionnaires (``patient`` is required)."""
    patient = request.GET.get("patient", "").removeprefix("Patient/")
    if not patient:
        raise FhirInputError("search Observations by patient: give ?patient=ID", status=400, code="required",
                             expression="patient")
    rows = _visible_proms(request.fhir_profile).filter(patient_id=patient).order_by("prom_id")
    found = [o for obj in rows for o in _observations(obj)]
    if request.GET.get("code"):
        wanted = set(request.GET["code"].split(","))
        found = [o for o in found if any(c["code"] in wanted or f"{c['system']}|{c['code']}" in wanted
                                         for c in o["code"]["coding"])]
    count, offset = _count(request), _offset(request)
    return fhir_response(_bundle(request, len(found), found[offset:offset + count], offset, count,
                                 _summary_count(request)))

"""Clinical staff pages: patients by CPR number, deaths, the operation form, complications.

Thin views over the registry's audited write service (:mod:`spinereg.registry`):
every write is a :class:`~spinereg.registry.RegistryWriter` call (or
:func:`~spinereg.registry.register_patient`) in the user's name, every rule and
message is the import's (:meth:`~spinereg.registry.RegistryWriter.check`, placed on
the form field it names), and records are reached only through
:func:`~spinereg.web.permissions.patients_of` / :func:`~spinereg.web.permissions.operations_of`
(another site's record is a 404).

Visibility of a patient by CPR number
-------------------------------------
A site sees the patients operated there (:func:`~spinereg.web.permissions.patients_of`).
A patient registered or found by CPR number has no operation at the site yet; knowing
the number is the credential, so those pages record the site's access
(:class:`spinereg.web.models.PatientAccess`, the pseudonym only) and
:func:`~spinereg.web.permissions.patients_of` admits the patient to the site: its sex, birth date and
death, and the new-operation form.  The patient's operations stay visible by their own site only
(:func:`~spinereg.web.permissions.operations_of`), so another site's operations of the
same patient remain hidden, and a pseudonym guessed in a URL is still a 404.

Datasets
--------
New records go into the web dataset (setting ``SPINEREG_WEB_DATASET``); an edit writes
in the edited record's own dataset (the writer never changes another dataset's record),
and the treated levels added to an existing operation go into the operation's dataset.

All or nothing
--------------
An operation and its treated levels are written in one database transaction
(``transaction.atomic``): each writer call nests inside it (the writer opens a
savepoint), and any refused level rolls back the operation too.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.utils.translation import gettext as _

from spinereg._errors import SiteKeyError, SpineregError
from spinereg.data import entity
from spinereg.registry import (
    RecordLockedError,
    RecordValidationError,
    RegistryWriter,
    dataset_code,
    find_patient,
    lock_state,
    register_patient,
)
from spinereg.web.clinical_forms import SITE_COLUMNS, CprForm, SchemaForm, column_label, level_formset, schema_form
from spinereg.web.models import PatientAccess
from spinereg.web.permissions import can, operations_of, patients_of, staff_view

__all__ = [
    "complication_edit",
    "complication_new",
    "death",
    "find",
    "operation_detail",
    "operation_edit",
    "operation_new",
    "operation_or_404",
    "patient_found",
    "patient_or_404",
    "register",
]

ALIAS = "default"
PAGE_SIZE = 50
#: Empty treated-level rows on the operation form (no script: rows are not added in the page).
EXTRA_LEVELS = 3


# -- records the user may reach -----------------------------------------------------------------------------
def patient_or_404(profile: Any, pseudonym: str) -> Any:
    """A patient the user may see (:func:`~spinereg.web.permissions.patients_of`: operated at the site,
    or reached there by CPR number), else 404."""
    patient = patients_of(profile).filter(patient_id=pseudonym).first()
    if patient is None:
        raise Http404(_("No such patient at your site."))
    return patient


def operation_or_404(profile: Any, operation_id: str) -> Any:
    """One of the user's site's operations (:func:`operations_of`), else 404."""
    op = operations_of(profile).filter(operation_id=operation_id).first()
    if op is None:
        raise Http404(_("No such operation at your site."))
    return op


def _complication(profile: Any, complication_id: str) -> Any:
    from spinereg.registry.models import Complication

    comp = (Complication.objects.filter(complication_id=complication_id,
                                        operation_id__in=operations_of(profile).values("operation_id")).first())
    if comp is None:
        raise Http404(_("No such complication at your site."))
    return comp


def _grant(profile: Any, pseudonym: str, how: str) -> None:
    """Record that the user's site reached this patient by CPR number (nothing for a national role)."""
    if profile.national or profile.site is None:
        return
    PatientAccess.objects.get_or_create(site=profile.site, patient_id=pseudonym,
                                        defaults={"how": how, "at": datetime.now(UTC)})


# -- helpers --------------------------------------------------------------------------------------------------
def _who(request: HttpRequest) -> str:
    return str(request.user.get_username())


def _dataset_of(record: Any) -> str:
    """The name of the dataset a record belongs to (the web dataset for a record without one)."""
    return str(record.dataset.name) if record.dataset_id is not None else str(settings.SPINEREG_WEB_DATASET)


def _new_id() -> str:
    """A new record id in the web dataset's namespace: ``code:`` and 32 random hex digits (a run of hex
    digits that long is never read as a CPR number)."""
    return f"{dataset_code(settings.SPINEREG_WEB_DATASET)}:{uuid.uuid4().hex}"


def _site_key(*, create: bool) -> bytes:
    """The site's pseudonymisation key, found as ``spinereg import`` finds it: ``SPINEREG_SITE_KEY``, else
    the key file (setting ``SPINEREG_KEY_FILE``, by default :func:`spinereg.data.default_key_path`).
    With ``create``, a missing key file is created, but only for a registry that has no key yet (a new
    key would give every registered patient a second pseudonym)."""
    from spinereg.data import load_site_key
    from spinereg.registry import registry_info

    path = Path(settings.SPINEREG_KEY_FILE)
    try:
        if os.environ.get("SPINEREG_SITE_KEY") or path.exists() or not create:
            return load_site_key(path, create=False)
        stored = registry_info(ALIAS).key_fingerprint
        if stored is not None:
            raise SiteKeyError(f"no site key at {path}, and this registry was written with the key whose "
                               f"fingerprint is {stored}: give the web server that key (SPINEREG_KEY_FILE or "
                               "SPINEREG_SITE_KEY)")
        return load_site_key(path, create=True)
    except SiteKeyError:
        raise
    except SpineregError as exc:  # unreadable, malformed or missing: the installation's problem, not the number's
        raise SiteKeyError(str(exc)) from None


def _initial(record: Any, form_class: type[SchemaForm]) -> dict[str, str]:
    """A record's stored values as form text."""
    from spinereg.registry.models import ENTITY_MODELS

    out: dict[str, str] = {}
    model = ENTITY_MODELS[form_class.entity_name]
    for col in form_class.columns:
        field = next(f for f in model._meta.concrete_fields if f.column == col)
        v = getattr(record, field.attname)
        if v is None:
            continue
        out[col] = ("true" if v else "false") if isinstance(v, bool) else (v.isoformat() if hasattr(
            v, "isoformat") else f"{v:g}" if isinstance(v, float) else str(v))
    return out


def _refused(form: SchemaForm, exc: SpineregError, entity_name: str) -> None:
    """Put the writer's refusal on the form: the import's problems on their fields, a lock on the reason."""
    if isinstance(exc, RecordValidationError):
        form.add_problems(exc.problems, entity_name=entity_name)
    elif isinstance(exc, RecordLockedError) and "reason" in form.fields:
        form.add_error("reason", str(exc))
    else:
        form.add_error(None, str(exc))


def _locked_for(request: HttpRequest, entity_name: str, key: str) -> bool:
    """Whether the record is locked; a user who may not change a locked record gets 403."""
    if lock_state(ALIAS, entity_name, key) is None:
        return False
    if not can(request.user, "change_locked"):
        raise PermissionDenied("change_locked")
    return True


# -- patients by CPR number ---------------------------------------------------------------------------------
@staff_view("write_clinical")
def register(request: HttpRequest) -> HttpResponse:
    """Register a patient by CPR number: the number becomes the keyed pseudonym; sex and birth date
    come from it.  The number is never stored, logged or shown back (not even on an error)."""
    form = CprForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        cpr = str(form.cleaned_data["cpr"])
        try:
            key = _site_key(create=True)
            known = find_patient(ALIAS, cpr, key=key) is not None if cpr else False
            pid = register_patient(ALIAS, cpr, dataset=settings.SPINEREG_WEB_DATASET, key=key, who=_who(request))
        except SiteKeyError as exc:
            form.add_error(None, str(exc))
        except SpineregError as exc:
            form.add_error("cpr", str(exc))
        else:
            _grant(request.user.staff, pid, "registered")
            messages.success(request, _("The patient was registered already.") if known
                             else _("Patient registered."))
            return redirect("clinical-patient", pseudonym=pid)
        finally:
            del cpr
    return render(request, "web/clinical/cpr.html", {
        "form": form, "title": _("Register a patient"), "button": _("Register"),
        "intro": _("Sex and birth date are taken from the CPR number.")})


@staff_view("view_records")
def find(request: HttpRequest) -> HttpResponse:
    """Find a patient by CPR number (through the keyed pseudonym)."""
    form = CprForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        cpr = str(form.cleaned_data["cpr"])
        try:
            pid = find_patient(ALIAS, cpr, key=_site_key(create=False))
        except SiteKeyError as exc:
            form.add_error(None, str(exc))
        except SpineregError as exc:
            form.add_error("cpr", str(exc))
        else:
            if pid is not None:
                _grant(request.user.staff, pid, "found")
                return redirect("clinical-patient", pseudonym=pid)
            form.add_error("cpr", _("No patient with this CPR number is registered."))
        finally:
            del cpr
    return render(request, "web/clinical/cpr.html", {
        "form": form, "title": _("Find a patient"), "button": _("Find"), "intro": ""})


@staff_view("view_records")
def patient_found(request: HttpRequest, pseudonym: str) -> HttpResponse:
    """The patient page for a patient the site may reach (also one registered or found by CPR number
    here and not yet operated here): the patient and the site's own operations of the patient."""
    profile = request.user.staff
    patient = patient_or_404(profile, pseudonym)
    operations = operations_of(profile).filter(patient_id=pseudonym).order_by("date", "operation_id")
    return render(request, "web/patient.html", {"patient": patient, "operations": operations})


@staff_view("write_clinical")
def death(request: HttpRequest, pseudonym: str) -> HttpResponse:
    """Record (or correct) a patient's death date and its source."""
    patient = patient_or_404(request.user.staff, pseudonym)
    form_class = schema_form("patients", exclude=("sex", "birth_date"))
    locked = _locked_for(request, "patients", pseudonym)
    form = form_class(request.POST or None, initial=_initial(patient, form_class), reason=locked)
    if request.method == "POST" and form.is_valid():
        writer = RegistryWriter(ALIAS, _dataset_of(patient), who=_who(request))
        values = form.values()
        if not form.add_problems(writer.check("patients", values, key=pseudonym)):
            try:
                writer.update("patients", pseudonym, values, reason=form.reason)
            except SpineregError as exc:
                _refused(form, exc, "patients")
            else:
                messages.success(request, _("Death recorded."))
                return redirect("clinical-patient", pseudonym=pseudonym)
    return render(request, "web/clinical/death.html", {"form": form, "patient": patient, "locked": locked})


# -- operations ---------------------------------------------------------------------------------------------
def _operation_form_class(profile: Any) -> type[SchemaForm]:
    return schema_form("operations", exclude=() if profile.national else SITE_COLUMNS)


def _level_rows(formset: Any) -> list[tuple[Any, str, bool, dict[str, str | None]]]:
    """The rows of the levels formset to act on: (form, original level, delete, values)."""
    rows = []
    for f in formset.forms:
        data = getattr(f, "cleaned_data", None) or {}
        original = str(data.get("original") or "")
        delete = bool(data.get("DELETE"))
        values = f.values()
        if not original and not any(v is not None for v in values.values()):
            continue  # an empty extra row
        rows.append((f, original, delete, values))
    return rows


def _save_operation(request: HttpRequest, form: SchemaForm, formset: Any, patient_id: str,
                    op: Any | None) -> str | None:
    """Write the operation and its treated levels, all or nothing; the operation's id, or None when
    anything was refused (the problems are on the forms)."""
    from spinereg.registry.models import TreatedLevel

    profile = request.user.staff
    who = _who(request)
    values = form.values()
    reason = form.reason
    if op is None:
        op_id = _new_id()
        dataset = str(settings.SPINEREG_WEB_DATASET)
        if not profile.national:
            values["hospital"] = profile.site.hospital
            values["department"] = profile.site.department or None
        record: dict[str, Any] = {"operation_id": op_id, "patient_id": patient_id, **values}
        problems = RegistryWriter(ALIAS, dataset, who=who).check("operations", record)
    else:
        op_id, dataset = str(op.operation_id), _dataset_of(op)
        problems = RegistryWriter(ALIAS, dataset, who=who).check("operations", values, key=op_id)
    warnings = [p for p in problems if p.severity != "error"]
    failed = form.add_problems(problems) > 0
    stored = {str(lv.level): lv for lv in TreatedLevel.objects.filter(operation_id=op_id)} if op else {}
    rows = _level_rows(formset)
    with transaction.atomic(using=ALIAS):
        if not failed:
            writer = RegistryWriter(ALIAS, dataset, who=who)
            try:
                if op is None:
                    writer.create("operations", record, reason=reason)
                else:
                    writer.update("operations", op_id, values, reason=reason)
            except SpineregError as exc:
                _refused(form, exc, "operations")
                failed = True
        for row, original, delete, lvl in rows:
            old = stored.get(original)
            if original and old is None:
                row.add_error(None, _("This treated level was removed meanwhile: open the form again."))
                failed = True
                continue
            lw = RegistryWriter(ALIAS, _dataset_of(old) if old is not None else dataset, who=who)
            try:
                if failed:  # nothing will be written: check the level's own rules only
                    if delete:
                        continue
                    own = [p for p in lw.check("treated_levels", {"operation_id": op_id, **lvl})
                           if p.rule != "reference"]
                    row.add_problems(own)
                    continue
                if old is not None and (delete or lvl["level"] != original):
                    try:
                        lw.delete("treated_levels", f"{op_id}/{original}", reason=reason)
                    except SpineregError as exc:  # the writer's refusal: a removed level needs a reason
                        form.add_error("reason" if "reason" in form.fields else None, str(exc))
                        failed = True
                        continue
                if delete:
                    continue
                if old is not None and lvl["level"] == original:
                    lw.update("treated_levels", f"{op_id}/{original}",
                              {k: v for k, v in lvl.items() if k != "level"}, reason=reason)
                else:
                    RegistryWriter(ALIAS, dataset, who=who).create(
                        "treated_levels", {"operation_id": op_id, **lvl}, reason=reason)
            except SpineregError as exc:
                failed = True
                _refused(row, exc, "treated_levels")
        if failed:
            transaction.set_rollback(True, using=ALIAS)
            return None
    for p in warnings:
        messages.warning(request, f"{p.column}: {p.message}")
    return op_id


def _operation_page(request: HttpRequest, patient: Any, op: Any | None) -> HttpResponse:
    from spinereg.registry.models import TreatedLevel

    profile = request.user.staff
    locked = op is not None and _locked_for(request, "operations", str(op.operation_id))
    form_class = _operation_form_class(profile)
    formset_class = level_formset(EXTRA_LEVELS)
    levels = list(TreatedLevel.objects.filter(operation_id=op.operation_id).order_by("level")) if op else []
    initial_levels = [{**_initial(lv, formset_class.form), "original": str(lv.level)} for lv in levels]
    # the reason field: shown for a locked operation, and for removing a level (the writer needs one)
    with_reason = op is not None and (locked or bool(levels))
    if request.method == "POST":
        form = form_class(request.POST, reason=with_reason)
        formset = formset_class(request.POST, prefix="levels", initial=initial_levels)
        if form.is_valid() and formset.is_valid():
            op_id = _save_operation(request, form, formset, str(patient.patient_id), op)
            if op_id is not None:
                messages.success(request, _("Operation saved."))
                return redirect("operation", operation_id=op_id)
    else:
        form = form_class(initial=_initial(op, form_class) if op else {}, reason=with_reason)
        formset = formset_class(prefix="levels", initial=initial_levels)
    return render(request, "web/clinical/operation_form.html", {
        "form": form, "formset": formset, "patient": patient, "operation": op, "locked": locked,
        "site": None if profile.national else profile.site})


@staff_view("write_clinical")
def operation_new(request: HttpRequest, pseudonym: str) -> HttpResponse:
    """A new operation of a patient the site may reach, at the user's site."""
    profile = request.user.staff
    patient = patient_or_404(profile, pseudonym)
    if not profile.national and profile.site is None:
        raise PermissionDenied("no site")
    return _operation_page(request, patient, None)


@staff_view("write_clinical")
def operation_edit(request: HttpRequest, operation_id: str) -> HttpResponse:
    """Change an operation and its treated levels (a locked one: with a reason, by a role that may)."""
    from spinereg.registry.models import Patient

    op = operation_or_404(request.user.staff, operation_id)
    patient = Patient.objects.get(patient_id=op.patient_id)
    return _operation_page(request, patient, op)


def _table(form_class: type[SchemaForm], records: Any) -> tuple[list[str], list[tuple[Any, list[str]]]]:
    """Column labels and rows (record, values as text) of records, with the schema's columns."""
    ent = entity(form_class.entity_name)
    labels = [gettext(column_label(ent.column(c))) for c in form_class.columns]
    rows = []
    for r in records:
        text = _initial(r, form_class)
        rows.append((r, [text.get(c, "") for c in form_class.columns]))
    return labels, rows


@staff_view("view_records")
def operation_detail(request: HttpRequest, operation_id: str) -> HttpResponse:
    """An operation with its treated levels, complications and imaging findings."""
    from spinereg.registry.models import Complication, ImagingFinding, TreatedLevel

    op = operation_or_404(request.user.staff, operation_id)
    form_class = schema_form("operations", exclude=SITE_COLUMNS)
    ent = entity("operations")
    fields = [(gettext(column_label(ent.column(c))), v) for c, v in _initial(op, form_class).items()]
    levels = _table(level_formset(0).form,
                    TreatedLevel.objects.filter(operation_id=operation_id).order_by("level"))
    complications = _table(schema_form("complications"),
                           Complication.objects.filter(operation_id=operation_id).order_by("date", "complication_id"))
    findings = _table(schema_form("imaging_findings"),
                      ImagingFinding.objects.filter(operation_id=operation_id).order_by("level", "date", "finding_id"))
    return render(request, "web/clinical/operation.html", {
        "operation": op, "fields": fields, "lock": lock_state(ALIAS, "operations", operation_id),
        "levels": levels, "complications": complications, "findings": findings,
        "can_write": can(request.user, "write_clinical")})


# -- complications ------------------------------------------------------------------------------------------
def _complication_page(request: HttpRequest, op: Any, comp: Any | None) -> HttpResponse:
    form_class = schema_form("complications")
    key = None if comp is None else str(comp.complication_id)
    locked = key is not None and _locked_for(request, "complications", key)
    if comp is not None:
        initial = _initial(comp, form_class)
    else:
        initial = {"intraoperative": "true"} if request.GET.get("intraoperative") == "1" else {}
        initial = {k: v for k, v in initial.items() if k in form_class.columns}
    form = form_class(request.POST or None, initial=initial, reason=locked)
    if request.method == "POST" and form.is_valid():
        values = form.values()
        if comp is None:
            writer = RegistryWriter(ALIAS, str(settings.SPINEREG_WEB_DATASET), who=_who(request))
            key = _new_id()
            record: dict[str, Any] = {"complication_id": key, "operation_id": str(op.operation_id), **values}
            problems = writer.check("complications", record)
        else:
            writer = RegistryWriter(ALIAS, _dataset_of(comp), who=_who(request))
            problems = writer.check("complications", values, key=key)
        if not form.add_problems(problems):
            try:
                if comp is None:
                    writer.create("complications", record)
                else:
                    assert key is not None
                    writer.update("complications", key, values, reason=form.reason)
            except SpineregError as exc:
                _refused(form, exc, "complications")
            else:
                messages.success(request, _("Complication saved."))
                return redirect("operation", operation_id=op.operation_id)
    return render(request, "web/clinical/complication_form.html", {
        "form": form, "operation": op, "complication": comp, "locked": locked})


@staff_view("write_clinical")
def complication_new(request: HttpRequest, operation_id: str) -> HttpResponse:
    """A complication of an operation, from chart review (``?intraoperative=1``: an intra-operative one)."""
    return _complication_page(request, operation_or_404(request.user.staff, operation_id), None)


@staff_view("write_clinical")
def complication_edit(request: HttpRequest, complication_id: str) -> HttpResponse:
    """Change a complication."""
    comp = _complication(request.user.staff, complication_id)
    return _complication_page(request, operation_or_404(request.user.staff, str(comp.operation_id)), comp)

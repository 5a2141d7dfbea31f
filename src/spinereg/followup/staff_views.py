# mypy: disallow-subclassing-any=False
"""Staff pages of follow-up: the non-responder worklist, the completeness dashboard, a patient's
follow-up (consent, withdrawal, contact), and paper or phone entry of a questionnaire.

Thin views in the web registry's pattern: every view declares its capability
(:func:`spinereg.web.permissions.staff_view`), reaches records only through
:func:`~spinereg.web.permissions.operations_of` and
:func:`spinereg.web.clinical.patient_or_404` (another site's record is a 404), and writes only
through audited services: :class:`spinereg.registry.RegistryWriter` for a questionnaire (its
messages, from :meth:`~spinereg.registry.RegistryWriter.check`, go on the fields they name),
:func:`spinereg.followup.service.record_consent` and :func:`~spinereg.followup.service.set_contact`.

No page shows an e-mail address (only whether one is recorded) or a CPR number.  "Today" is the
server's UTC date, as on the patient's page.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, date, datetime
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from spinereg._errors import SpineregError
from spinereg.data import entity
from spinereg.followup import service
from spinereg.followup.staff import ALL_SITES, PAPER_MODES, dashboard, patient_followup, prom_row, worklist
from spinereg.followup.views import item_column
from spinereg.instruments import get_instrument
from spinereg.registry import RecordValidationError, RegistryWriter, dataset_code
from spinereg.web.clinical import operation_or_404, patient_or_404
from spinereg.web.clinical_forms import SchemaForm, schema_field
from spinereg.web.permissions import can, operations_of, staff_view

__all__ = ["PAPER_INSTRUMENTS", "completeness_page", "consent", "contact", "paper_entry", "patient",
           "worklist_page"]

ALIAS = "default"
#: The instruments of the paper form, in order.
PAPER_INSTRUMENTS = ("eq5d3l", "eq5d5l", "eqvas", "odi", "nrs_back", "nrs_leg")


def _today() -> date:
    return datetime.now(UTC).date()


def _who(request: HttpRequest) -> str:
    return str(request.user.get_username())


def _visible(profile: Any) -> Any:
    """The user's operations queryset, or None for a national role (every operation)."""
    return None if profile.national else operations_of(profile)


def _rate(value: float) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.0f}%"


def _rows(table: Any, keys: list[str]) -> list[dict[str, Any]]:
    out = []
    for r in table.to_dict("records"):
        r["site"] = _("All sites") if r["hospital"] == ALL_SITES else (r["hospital"] or _("(no hospital)"))
        r["rate"] = _rate(r["response_rate"])
        r["total"] = r["hospital"] == ALL_SITES
        out.append(r)
    return out


# -- the worklist and the dashboard ---------------------------------------------------------------------------
@staff_view("view_worklists")
def worklist_page(request: HttpRequest) -> HttpResponse:
    """Non-responders for phone or paper follow-up: the user's site's (every site's for a national role)."""
    profile = request.user.staff
    today = _today()
    table = worklist(ALIAS, today, _visible(profile))
    rows = [{**r, "due_date": r["due_date"].date(), "closes": r["closes"].date()} for r in table.to_dict("records")]
    return render(request, "followup/staff/worklist.html", {
        "rows": rows, "today": today, "can_enter": can(request.user, "write_followup")})


@staff_view("view_records")
def completeness_page(request: HttpRequest) -> HttpResponse:
    """Follow-up completeness per site and time point, and the monthly trend."""
    profile = request.user.staff
    hospitals = None if profile.national else ([profile.site.hospital] if profile.site is not None else [])
    board = dashboard(ALIAS, _today(), hospitals)
    return render(request, "followup/staff/completeness.html", {
        "today": board.today, "rows": _rows(board.by_timepoint, ["timepoint"]),
        "trend": _rows(board.by_month, ["month", "timepoint"])})


# -- a patient's follow-up: consent, withdrawal, contact ------------------------------------------------------
@staff_view("view_records")
def patient(request: HttpRequest, pseudonym: str) -> HttpResponse:
    """A patient's consent and withdrawal, whether an e-mail address is recorded, and the follow-up of
    the site's operations of the patient."""
    profile = request.user.staff
    found = patient_or_404(profile, pseudonym)
    ops = list(operations_of(profile).filter(patient_id=pseudonym).values_list("operation_id", flat=True))
    info = patient_followup(ALIAS, pseudonym, ops, _today())
    return render(request, "followup/staff/patient.html", {
        "patient": found, **info, "can_write": can(request.user, "write_followup")})


class ConsentForm(forms.Form):
    status = forms.ChoiceField(label=gettext_lazy("Status"), choices=[
        ("consented", gettext_lazy("Consented")), ("withdrawn", gettext_lazy("Withdrawn"))])
    on = forms.DateField(label=gettext_lazy("Date"), widget=forms.DateInput(attrs={"type": "date"}),
                         help_text=gettext_lazy("The day consent was given or withdrawn."))


@staff_view("write_followup")
def consent(request: HttpRequest, pseudonym: str) -> HttpResponse:
    """Record that the patient consented or withdrew (a new event; the latest counts)."""
    found = patient_or_404(request.user.staff, pseudonym)
    form = ConsentForm(request.POST or None, initial={"on": _today().isoformat()})
    if request.method == "POST" and form.is_valid():
        on = form.cleaned_data["on"]
        if on > _today():
            form.add_error("on", _("The date is in the future."))
        else:
            try:
                service.record_consent(ALIAS, pseudonym, form.cleaned_data["status"], on, who=_who(request))
            except SpineregError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, _("Consent recorded."))
                return redirect("followup-patient", pseudonym=pseudonym)
    return render(request, "followup/staff/form.html", {
        "form": form, "patient": found, "title": _("Consent or withdrawal"), "intro": _(
            "A withdrawal stops invitations and reminders from the next run of followup send.")})


class ContactForm(forms.Form):
    email = forms.CharField(label=gettext_lazy("E-mail address"), required=False, max_length=254,
                            help_text=gettext_lazy("Leave empty for invitations by letter. The address is never "
                                                   "shown again."),
                            widget=forms.EmailInput(attrs={"autocomplete": "off"}))


@staff_view("write_followup")
def contact(request: HttpRequest, pseudonym: str) -> HttpResponse:
    """Record or remove the patient's e-mail address (invitations by e-mail, else by letter)."""
    found = patient_or_404(request.user.staff, pseudonym)
    form = ContactForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            service.set_contact(ALIAS, pseudonym, form.cleaned_data["email"], who=_who(request))
        except SpineregError:
            form.add_error("email", _("This is not a valid e-mail address."))
        else:
            messages.success(request, _("Contact saved."))
            return redirect("followup-patient", pseudonym=pseudonym)
    return render(request, "followup/staff/form.html", {
        "form": form, "patient": found, "title": _("E-mail address for invitations"), "intro": ""})


# -- paper or phone entry -------------------------------------------------------------------------------------
def _paper_form_class() -> type[SchemaForm]:
    ent = entity("proms")
    fields: dict[str, Any] = {}
    cols: list[str] = []
    for c in ("timepoint", "answer_date"):
        fields[c] = schema_field(ent.column(c))
        cols.append(c)
    # without its date an answer counts for no time point (the follow-up rule reads the date): asked here
    fields["answer_date"].required = True
    for inst_id in PAPER_INSTRUMENTS:
        inst = get_instrument(inst_id)
        for item in inst.items:
            col = item_column(inst_id, item.id)
            f = schema_field(ent.column(col))
            f.label = f"{inst.name}: {item.label} ({item.min}–{item.max})"
            f.help_text = ""
            fields[col] = f
            cols.append(col)
    attrs: dict[str, Any] = {"entity_name": "proms", "columns": tuple(cols), "__module__": __name__, **fields}
    attrs["mode"] = forms.ChoiceField(label=gettext_lazy("How it was answered"), choices=[
        ("paper", gettext_lazy("Paper questionnaire")), ("phone", gettext_lazy("By telephone"))])
    return type("PaperPromForm", (SchemaForm,), attrs)


def _sections(form: SchemaForm) -> list[tuple[str, list[Any]]]:
    out = []
    for inst_id in PAPER_INSTRUMENTS:
        inst = get_instrument(inst_id)
        out.append((inst.name, [form[item_column(inst_id, item.id)] for item in inst.items]))
    return out


def _close_invitation(op_id: str, timepoint: str, who: str) -> None:
    """The open invitation of (operation, time point), if any, is answered: its link no longer works."""
    from spinereg.followup._audit import audit, audited
    from spinereg.followup.models import Invitation

    inv = Invitation.objects.using(ALIAS).filter(operation_id=op_id, timepoint=timepoint,
                                                 status__in=("pending", "sent", "reminded")).first()
    if inv is None:
        return
    now = datetime.now(UTC)
    with audited(ALIAS):
        old = {"status": inv.status, "used_at": None}
        inv.status, inv.used_at, inv.draft = "answered", now, ""
        inv.save(using=ALIAS, update_fields=["status", "used_at", "draft"])
        audit(ALIAS, "update", "invitations", inv.pk, old, {"status": "answered", "used_at": now.isoformat()},
              who=who)


@staff_view("write_followup")
def paper_entry(request: HttpRequest, operation_id: str) -> HttpResponse:
    """Enter a questionnaire answered on paper or by telephone (``proms.mode`` paper or phone), checked by
    the import's rules and written through the audited write service."""
    op = operation_or_404(request.user.staff, operation_id)
    form_class = _paper_form_class()
    initial = {"mode": "paper"}
    if request.GET.get("timepoint") in entity("proms").column("timepoint").values:
        initial["timepoint"] = str(request.GET["timepoint"])
    form = form_class(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        dataset = str(op.dataset.name) if op.dataset_id is not None else str(settings.SPINEREG_WEB_DATASET)
        writer = RegistryWriter(ALIAS, dataset, who=_who(request))
        mode = str(form.cleaned_data["mode"])
        if mode not in PAPER_MODES:  # the ChoiceField allows only these
            raise Http404
        row = prom_row(f"{dataset_code(dataset)}:{uuid.uuid4().hex}", op, form.values(), mode)
        if not form.add_problems(writer.check("proms", row)):
            try:
                with transaction.atomic(using=ALIAS):
                    writer.create("proms", row)
                    _close_invitation(str(op.operation_id), str(row["timepoint"]), _who(request))
            except RecordValidationError as exc:
                form.add_problems(exc.problems)
            except SpineregError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, _("Questionnaire saved."))
                return redirect("followup-patient", pseudonym=op.patient_id)
    return render(request, "followup/staff/paper.html", {
        "form": form, "operation": op, "sections": _sections(form)})

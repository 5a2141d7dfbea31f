"""Record integrity pages: a record's status, lock with e-signature and unlock, the audit trail per
record and per user (with a CSV download), and the worklists (missing forms, data-quality problems).

Thin views over :mod:`spinereg.registry`: locks are ``RegistryWriter.lock``/``unlock`` (entries in
the one audit trail), the audit view reads ``row_history``/``audit_entries`` and the audit model,
the worklists are ``missing_forms``/``quality_problems`` restricted to the user's site.  Records
are reached only through :func:`~spinereg.web.permissions.operations_of` /
:func:`~spinereg.web.permissions.patients_of` (another site's record is a 404).  The audit trail
never holds a CPR number (the write service refuses one); no page echoes a free-text input that
holds one.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from typing import Any

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from spinereg.web.permissions import can, operations_of, patients_of, staff_view
from spinereg.web.review import PAGE_SIZE, level_order, page_size, web_dataset

__all__ = ["SIGNATURE_MEANINGS", "audit_complication", "audit_finding", "audit_index", "audit_operation",
           "audit_patient", "audit_user", "lock_record", "record_status",
           "unlock_record", "worklist_missing", "worklist_quality"]

ALIAS = "default"
OPERATIONS = "operations"

#: What an e-signature means (stored with the lock).
SIGNATURE_MEANINGS = (
    ("authored", gettext_lazy("Authored: I entered this record and it is complete")),
    ("reviewed", gettext_lazy("Reviewed: I checked this record against the chart")),
    ("approved", gettext_lazy("Approved: I approve this record as final")),
)


def _no_cpr(text: str) -> bool:
    from spinereg.data import contains_cpr

    return not contains_cpr(text)


def _operation(request: HttpRequest, operation_id: str) -> Any:
    op = operations_of(request.user.staff).filter(operation_id=operation_id).first()
    if op is None:
        raise Http404(_("No such operation at your site."))
    return op


def _dataset_name(obj: Any) -> str:
    """The record's own dataset: a lock is written within it."""
    from spinereg.registry.models import Dataset

    if obj.dataset_id is None:
        return web_dataset()
    return str(Dataset.objects.get(pk=obj.dataset_id).name)


# -- record status, lock and unlock ---------------------------------------------------------------

@staff_view("view_records")
def record_status(request: HttpRequest, operation_id: str) -> HttpResponse:
    """The lock state of an operation record (who signed, when, meaning) and of its imaging findings."""
    from spinereg.registry import lock_state
    from spinereg.registry.models import ImagingFinding

    op = _operation(request, operation_id)
    stored = list(ImagingFinding.objects.filter(operation_id=op.operation_id).order_by("finding_id"))
    order = {lv: i for i, lv in enumerate(level_order([str(f.level) for f in stored]))}
    stored.sort(key=lambda f: order[str(f.level)])
    findings = [(f, lock_state(ALIAS, "imaging_findings", str(f.finding_id))) for f in stored]
    return render(request, "web/integrity/status.html", {
        "op": op, "lock": lock_state(ALIAS, OPERATIONS, op.operation_id), "findings": findings,
        "imaging_locked": any(lock for _f, lock in findings),
        "imaging_open": any(lock is None for _f, lock in findings),
        "can_lock": can(request.user, "lock"), "can_unlock": can(request.user, "change_locked"),
        "can_audit": can(request.user, "view_audit"), "can_review": can(request.user, "write_imaging")})


class LockForm(forms.Form):
    signature_meaning = forms.ChoiceField(label=gettext_lazy("Meaning of the signature"), choices=SIGNATURE_MEANINGS,
                                          widget=forms.RadioSelect)
    password = forms.CharField(label=gettext_lazy("Your password"), strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
                               help_text=gettext_lazy("Re-enter your password to sign: the signature is yours."))


class UnlockForm(forms.Form):
    reason = forms.CharField(label=gettext_lazy("Reason for unlocking"), max_length=500,
                             widget=forms.Textarea(attrs={"rows": 3}),
                             help_text=gettext_lazy("Required; kept in the audit trail. No CPR numbers."))


#: The parts of an operation's record that are signed apart: the surgeon's operation form (the lock
#: covers its treated levels) and the imaging review (every finding of the operation).
PARTS: dict[str, Any] = {
    "operation": gettext_lazy("Operation form (with its treated levels)"),
    "imaging": gettext_lazy("Imaging review (every finding of the operation)"),
}


def _part(request: HttpRequest) -> str:
    part = request.GET.get("part", "operation")
    if part not in PARTS:
        raise Http404(_("No such part of a record."))
    return str(part)


def _records(op: Any, part: str) -> list[tuple[str, str, Any]]:
    """The records a part consists of: (entity, key, stored row)."""
    from spinereg.registry.models import ImagingFinding

    if part == "operation":
        return [(OPERATIONS, str(op.operation_id), op)]
    return [("imaging_findings", str(f.finding_id), f)
            for f in ImagingFinding.objects.filter(operation_id=op.operation_id).order_by("level", "finding_id")]


def _completion_problems(op: Any, part: str, records: list[tuple[str, str, Any]]) -> list[str]:
    """Why the part is not complete, so cannot be signed: the import's errors on its records, and for
    the imaging review a treated level without a finding.  Empty when it is complete."""
    from spinereg.registry import RegistryWriter
    from spinereg.registry.models import TreatedLevel

    out = []
    if part == "imaging":
        reviewed = {str(r.level) for _e, _k, r in records}
        levels = TreatedLevel.objects.filter(operation_id=op.operation_id).values_list("level", flat=True)
        out += [_("Not complete, cannot be signed: level %(level)s has no imaging finding.") % {"level": lv}
                for lv in levels if lv not in reviewed]
    for entity, key, row in records:
        problems = RegistryWriter(ALIAS, _dataset_name(row)).check(entity, {}, key=key)
        out += [_("Not complete, cannot be signed: %(record)s, %(column)s: %(message)s")
                % {"record": key, "column": p.column, "message": p.message} for p in problems if p.severity == "error"]
    return out


@staff_view("lock")
def lock_record(request: HttpRequest, operation_id: str) -> HttpResponse:
    """Lock and e-sign a completed part of an operation's record (``?part=operation``, the default, or
    ``imaging``) after the password is entered again; every record of the part is locked, or none."""
    from django.db import transaction

    from spinereg import SpineregError
    from spinereg.registry import RegistryWriter, lock_state

    op = _operation(request, operation_id)
    part = _part(request)
    records = _records(op, part)
    current = [lock_state(ALIAS, e, k) for e, k, _r in records]
    done = bool(records) and all(current)
    form = LockForm(request.POST or None)
    if request.method == "POST" and records and not done and form.is_valid():
        # a wrong password refuses the signature; it is not a login (no lockout count, no session change)
        if not request.user.check_password(form.cleaned_data["password"]):
            form.add_error("password", _("The password is not correct: the record was not locked."))
        elif problems := _completion_problems(op, part, records):
            for p in problems:
                form.add_error(None, p)
        else:
            who = request.user.get_username()
            meaning = form.cleaned_data["signature_meaning"]
            try:
                with transaction.atomic(using=ALIAS):
                    for (entity, key, row), lock in zip(records, current, strict=True):
                        if lock is None:
                            RegistryWriter(ALIAS, _dataset_name(row), who=who).lock(entity, key, who=who,
                                                                                     signature_meaning=meaning)
            except SpineregError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, _("Operation %(op)s: %(part)s locked and signed.")
                                 % {"op": op.operation_id, "part": PARTS[part]})
                return redirect("record-status", operation_id=op.operation_id)
    return render(request, "web/integrity/lock.html", {
        "op": op, "form": form, "part": part, "part_label": PARTS[part], "done": done,
        "records": list(zip(records, current, strict=True))})


@staff_view("change_locked")
def unlock_record(request: HttpRequest, operation_id: str) -> HttpResponse:
    """Unlock a locked part of an operation's record; a reason is required (kept in the audit trail)."""
    from django.db import transaction

    from spinereg import SpineregError
    from spinereg.registry import RegistryWriter, lock_state

    op = _operation(request, operation_id)
    part = _part(request)
    records = _records(op, part)
    current = [lock_state(ALIAS, e, k) for e, k, _r in records]
    locked = [(r, lock) for r, lock in zip(records, current, strict=True) if lock is not None]
    form = UnlockForm(request.POST or None)
    if request.method == "POST" and locked and form.is_valid():
        reason = form.cleaned_data["reason"].strip()
        if not _no_cpr(reason):
            form.data = form.data.copy()  # never show it again
            form.data["reason"] = ""
            form.add_error("reason", _("The reason holds a CPR number: remove it (it was not saved or shown)."))
        else:
            who = request.user.get_username()
            try:
                with transaction.atomic(using=ALIAS):
                    for (entity, key, row), _lock in locked:
                        RegistryWriter(ALIAS, _dataset_name(row), who=who).unlock(entity, key, reason=reason, who=who)
            except SpineregError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, _("Operation %(op)s: %(part)s unlocked.")
                                 % {"op": op.operation_id, "part": PARTS[part]})
                return redirect("record-status", operation_id=op.operation_id)
    return render(request, "web/integrity/unlock.html", {
        "op": op, "form": form, "part": part, "part_label": PARTS[part], "locked": locked})


# -- audit ----------------------------------------------------------------------------------------

def _changes(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per field: ``field, old, new`` (old -> new; a create has only new, a delete only old)."""
    old, new = old or {}, new or {}
    fields = list(dict.fromkeys([*old, *new]))
    return [{"field": f, "old": _shown(old.get(f)), "new": _shown(new.get(f)), "had_old": f in old,
             "has_new": f in new} for f in fields if f not in ("dataset_id", "batch_id")]


def _shown(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(_("yes") if v else _("no"))
    return str(v)


def _entry(e: Any, *, entity: str | None = None, key: str | None = None) -> dict[str, Any]:
    return {"id": e.id, "at": e.at, "actor": e.actor, "action": e.action, "batch": e.batch_id,
            "entity": entity, "key": key, "reason": getattr(e, "reason", ""),
            "changes": _changes(e.old, e.new)}


#: entity -> (URL name of its audit page, URL parameter name)
AUDIT_PAGES = {
    "patients": ("audit-patient", "pseudonym"),
    "operations": ("audit-operation", "operation_id"),
    "imaging_findings": ("audit-finding", "finding_id"),
    "complications": ("audit-complication", "complication_id"),
}


def _record_keys(request: HttpRequest, entity: str, key: str) -> list[tuple[str, str]]:
    """The records whose history one audit page shows: the record (reached through the user's site),
    and for an operation its treated levels (the operation form holds them).  A record deleted since
    is still shown to a national role (its history stays in the trail)."""
    from spinereg.registry.models import AuditEntry, Complication, ImagingFinding

    profile = request.user.staff
    ops = operations_of(profile)
    exists = {
        "patients": lambda: patients_of(profile).filter(patient_id=key).exists(),
        "operations": lambda: ops.filter(operation_id=key).exists(),
        "imaging_findings": lambda: ImagingFinding.objects.filter(finding_id=key,
                                                                  operation_id__in=ops.values("operation_id")).exists(),
        "complications": lambda: Complication.objects.filter(complication_id=key,
                                                             operation_id__in=ops.values("operation_id")).exists(),
    }[entity]()
    trail = AuditEntry.objects.filter(entity=entity, record_key=key)
    if not exists and not (profile.national and trail.exists()):
        raise Http404(_("No such record at your site."))
    keys = [(entity, key)]
    if entity == OPERATIONS:
        levels = (AuditEntry.objects.filter(entity="treated_levels", record_key__startswith=f"{key}/")
                  .values_list("record_key", flat=True).distinct())
        keys += [("treated_levels", str(k)) for k in sorted(set(levels))]
    return keys


def _csv_response(frame: Any, filename: str) -> HttpResponse:
    """The audit entries as CSV; a cell that a spreadsheet would read as a formula is prefixed with '."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(list(frame.columns))
    for row in frame.itertuples(index=False):
        cells = ["" if v is None or (isinstance(v, float) and v != v) else str(v) for v in row]
        writer.writerow(["'" + c if c[:1] in ("=", "+", "-", "@", "\t", "\r") else c for c in cells])
    response = HttpResponse(buf.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _audit_record(request: HttpRequest, entity: str, key: str) -> HttpResponse:
    import pandas as pd

    from spinereg.registry import audit_entries, row_history

    keys = _record_keys(request, entity, key)
    if request.GET.get("format") == "csv":
        frame = pd.concat([audit_entries(ALIAS, entity=e, key=k) for e, k in keys], ignore_index=True)
        frame = frame.sort_values("id", ignore_index=True)
        return _csv_response(frame, f"audit-{entity}-{key}.csv".replace("/", "_"))
    from spinereg.registry.models import AuditEntry

    reasons = dict(AuditEntry.objects.filter(entity__in={e for e, _k in keys}, record_key__in=[k for _e, k in keys])
                   .values_list("id", "reason"))
    entries = []
    for e, k in keys:
        for h in row_history(ALIAS, e, k):
            item = _entry(h, entity=e, key=k)
            item["reason"] = reasons.get(h.id, "")
            entries.append(item)
    entries.sort(key=lambda x: x["id"])
    page = Paginator(entries, page_size(request)).get_page(request.GET.get("page"))
    return render(request, "web/integrity/audit_record.html", {
        "entity": entity, "key": key, "page": page, "csv_query": urlencode({"format": "csv"}),
        "query": urlencode(_per_page(request))})


@staff_view("view_audit")
def audit_operation(request: HttpRequest, operation_id: str) -> HttpResponse:
    return _audit_record(request, OPERATIONS, operation_id)


@staff_view("view_audit")
def audit_patient(request: HttpRequest, pseudonym: str) -> HttpResponse:
    return _audit_record(request, "patients", pseudonym)


@staff_view("view_audit")
def audit_finding(request: HttpRequest, finding_id: str) -> HttpResponse:
    return _audit_record(request, "imaging_findings", finding_id)


@staff_view("view_audit")
def audit_complication(request: HttpRequest, complication_id: str) -> HttpResponse:
    return _audit_record(request, "complications", complication_id)


class AuditFilterForm(forms.Form):
    actor = forms.CharField(label=gettext_lazy("User"), max_length=150, required=False,
                            help_text=gettext_lazy("A user name, as recorded in the audit trail."))
    since = forms.DateField(label=gettext_lazy("From (date, UTC)"), required=False,
                            widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label=gettext_lazy("To (date, UTC, inclusive)"), required=False,
                            widget=forms.DateInput(attrs={"type": "date"}))

    def clean_actor(self) -> str:
        actor = str(self.cleaned_data.get("actor") or "").strip()
        if not _no_cpr(actor):
            raise forms.ValidationError(_("This holds a CPR number: audit entries are found by user name."))
        return actor

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            raise forms.ValidationError(_("The start date is after the end date."))
        return cleaned


@staff_view("view_audit")
def audit_index(request: HttpRequest) -> HttpResponse:
    """Find a user's audit entries (user name, optional dates), then show their page.  The form is
    POSTed: what is typed stays out of URLs (and so out of access logs and the page's links)."""
    form = AuditFilterForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if form.cleaned_data["actor"]:
            query = {k: form.cleaned_data[k].isoformat() for k in ("since", "until") if form.cleaned_data.get(k)}
            url = _reverse("audit-user", username=form.cleaned_data["actor"])
            return redirect(url + (f"?{urlencode(query)}" if query else ""))
        form.add_error("actor", _("Give a user name."))
    elif request.method == "POST" and "actor" in form.errors:
        form.data = form.data.copy()  # never show a refused value again (it may hold a CPR number)
        form.data["actor"] = ""
    return render(request, "web/integrity/audit_index.html", {"form": form})


def _reverse(name: str, **kwargs: str) -> str:
    from django.urls import reverse

    return str(reverse(name, kwargs=kwargs))


@staff_view("view_audit")
def audit_user(request: HttpRequest, username: str) -> HttpResponse:
    """Every audit entry by one actor, oldest first, filtered by date (UTC, both inclusive), paginated."""
    from datetime import UTC, datetime, time, timedelta

    from spinereg.registry import audit_entries
    from spinereg.registry.models import AuditEntry

    if not _no_cpr(username):
        raise Http404(_("No such user."))
    form = AuditFilterForm({"actor": username, **{k: v for k, v in request.GET.items() if k in ("since", "until")}})
    since: date | None = None
    until: date | None = None
    if form.is_valid():
        since, until = form.cleaned_data.get("since"), form.cleaned_data.get("until")
    if request.GET.get("format") == "csv" and form.is_valid():
        frame = audit_entries(ALIAS, actor=username, since=since, until=until)
        return _csv_response(frame, "audit-user.csv")
    qs = AuditEntry.objects.filter(actor=username).order_by("id")
    if since is not None:
        qs = qs.filter(at__gte=datetime.combine(since, time(), tzinfo=UTC))
    if until is not None:
        qs = qs.filter(at__lt=datetime.combine(until + timedelta(days=1), time(), tzinfo=UTC))
    page = Paginator(qs, page_size(request)).get_page(request.GET.get("page"))
    entries = []
    for e in page:
        changes = json.loads(e.changes)
        new = changes.get("new")
        if "snapshot" in changes:  # an import's create: the values are in its snapshot (see the record's page)
            new = None
        entries.append({"id": e.pk, "at": e.at, "actor": e.actor, "action": e.action, "entity": e.entity,
                        "key": e.record_key, "reason": e.reason, "snapshot": changes.get("snapshot"),
                        "page": AUDIT_PAGES.get(e.entity, (None, None))[0],
                        "changes": _changes(changes.get("old"), new)})
    query: dict[str, Any] = {k: v.isoformat() for k, v in (("since", since), ("until", until)) if v is not None}
    query.update(_per_page(request))
    return render(request, "web/integrity/audit_user.html", {
        "username": username, "form": form, "page": page, "entries": entries, "query": urlencode(query),
        "csv_query": urlencode({**query, "format": "csv"})})


# -- worklists ------------------------------------------------------------------------------------

#: The last registry-wide worklist of each kind in this process, with the newest audit entry and the day
#: (UTC) it was computed at.
_WORKLISTS: dict[str, tuple[tuple[int, date], Any]] = {}


def _registry_wide(kind: str, compute: Any) -> Any:
    """``compute(ALIAS)`` (a registry-wide worklist), computed again only after the registry changed or the
    day did (the validator's date rules take today as the extract date): every write appends an audit
    entry, so the newest entry's id tells whether the last result still holds."""
    from datetime import UTC, datetime

    from django.db.models import Max

    from spinereg.registry.models import AuditEntry

    state = (int(AuditEntry.objects.aggregate(m=Max("id"))["m"] or 0), datetime.now(UTC).date())
    cached = _WORKLISTS.get(kind)
    if cached is not None and cached[0] == state:
        return cached[1]
    frame = compute(ALIAS)
    _WORKLISTS[kind] = (state, frame)
    return frame


def _site_scope(request: HttpRequest) -> tuple[Any, Any, list[Any]]:
    """(site chosen, sites to choose from, the site filter) for a worklist: the user's own site, or for a
    national role every site or the one chosen with ``?site=``."""
    from spinereg.web.models import Site

    profile = request.user.staff
    if not profile.national:
        return profile.site, [], []
    sites = list(Site.objects.order_by("code"))
    chosen = next((s for s in sites if s.code == request.GET.get("site")), None)
    return chosen, sites, sites


def _in_site(frame: Any, site: Any, national: bool) -> Any:
    """The rows of ``frame`` at ``site`` (hospital, and department when the site names one)."""
    if site is None:
        return frame if national else frame.iloc[0:0]
    keep = frame["hospital"] == site.hospital
    if site.department:
        keep &= frame["department"] == site.department
    return frame[keep.fillna(False)]


def _per_page(request: HttpRequest) -> dict[str, str]:
    size = page_size(request)
    return {} if size == PAGE_SIZE else {"per_page": str(size)}


def _frame_rows(frame: Any) -> list[dict[str, Any]]:
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return [{str(k): v for k, v in r.items()} for r in rows]


@staff_view("view_worklists")
def worklist_missing(request: HttpRequest) -> HttpResponse:
    """Operations with missing forms (``spinereg.registry.missing_forms``) at the user's site."""
    from spinereg.registry import MISSING_FORMS, missing_forms

    site, sites, _all = _site_scope(request)
    frame = _in_site(_registry_wide("missing_forms", missing_forms), site, request.user.staff.national)
    form_filter = request.GET.get("form")
    if form_filter in MISSING_FORMS:
        frame = frame[frame["form"] == form_filter]
    frame = frame.assign(date=frame["date"].dt.strftime("%Y-%m-%d"))
    counts = frame["form"].value_counts().to_dict()
    page = Paginator(_frame_rows(frame), page_size(request)).get_page(request.GET.get("page"))
    query = {k: v for k, v in (("site", site.code if site and sites else None), ("form", form_filter)) if v}
    query.update(_per_page(request))
    return render(request, "web/integrity/worklist_missing.html", {
        "page": page, "site": site, "sites": sites, "forms": [(f, _(d), counts.get(f, 0))
                                                              for f, d in MISSING_FORMS.items()],
        "form_filter": form_filter, "query": urlencode(query), "total": len(frame),
        "can_review": can(request.user, "write_imaging")})


@staff_view("view_worklists")
def worklist_quality(request: HttpRequest) -> HttpResponse:
    """The data-quality problems the import's validator finds in the registry's rows
    (``spinereg.registry.quality_problems``) at the user's site."""
    from spinereg.registry import quality_problems

    site, sites, _all = _site_scope(request)
    frame = _in_site(_registry_wide("quality_problems", quality_problems), site, request.user.staff.national)
    severity = request.GET.get("severity")
    if severity in ("error", "warning"):
        frame = frame[frame["severity"] == severity]
    counts = frame["severity"].value_counts().to_dict()
    page = Paginator(_frame_rows(frame), page_size(request)).get_page(request.GET.get("page"))
    query = {k: v for k, v in (("site", site.code if site and sites else None), ("severity", severity)) if v}
    query.update(_per_page(request))
    return render(request, "web/integrity/worklist_quality.html", {
        "page": page, "site": site, "sites": sites, "total": len(frame), "severity": severity,
        "errors": int(counts.get("error", 0)), "warnings": int(counts.get("warning", 0)),
        "query": urlencode(query)})

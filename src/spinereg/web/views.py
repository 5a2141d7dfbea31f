"""Staff pages: home (the site's patients), patient search, operations, a patient, TOTP setup, the health check.

The lists use keyset pagination (no OFFSET) and a capped count (no COUNT over the registry): their
queries stay index range scans at 1,000,000 patients (benchmarks/bench_web.py)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth import views as auth_views
from django.db import connection
from django.db.models import Q
from django.db.models.functions import Left
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from spinereg.web.forms import LoginForm, TokenForm
from spinereg.web.permissions import operations_of, patients_of, staff_view

PAGE_SIZE = 50
#: lists show an exact count up to this many rows, then "more than ..." (no COUNT over a whole registry)
COUNT_CAP = 1000
#: the upper bound of a prefix range: every pseudonym that starts with q sorts before q + this.
#: Pseudonyms are ASCII (hex digits, or a dataset code and a source id); SQLite and PostgreSQL's
#: C collation (the registry's test clusters: initdb --no-locale) compare bytes, and ICU's root
#: collation sorts U+FFFF after every character; a glibc-locale database has not been checked.
_PREFIX_END = "\uffff"


@dataclass
class KeysetPage:
    """One page of a keyset-paginated list: its rows and the keys of the links to the pages beside it.

    ``after``/``before``: the query-string value for the next/previous page (None: no such page).
    ``count``: the number of rows of the whole list, up to :data:`COUNT_CAP` (``capped``: more)."""

    rows: list[Any]
    after: str | None
    before: str | None
    count: int
    capped: bool


def _keyset(request: HttpRequest) -> tuple[str | None, str | None]:
    after, before = request.GET.get("after") or None, request.GET.get("before") or None
    if after is not None and before is not None:
        raise Http404(_("Give either after or before, not both."))
    return after, before


def _capped_count(qs: Any) -> tuple[int, bool]:
    """The number of rows of ``qs`` counted up to COUNT_CAP + 1 (a bounded subquery, never all rows)."""
    n = int(qs[:COUNT_CAP + 1].count())
    return min(n, COUNT_CAP), n > COUNT_CAP


def _prefix(qs: Any, field: str, prefix: str) -> Any:
    """Rows whose ``field`` starts with ``prefix`` (case-sensitive): the index range >= prefix and
    < prefix + U+FFFF.  On SQLite (byte order) the range is exactly the prefix match for ASCII keys;
    elsewhere the collation decides the order, so the exact prefix test is added on what the range found."""
    qs = qs.filter(**{f"{field}__gte": prefix, f"{field}__lt": prefix + _PREFIX_END})
    if connection.vendor != "sqlite":  # (Left, not __startswith: a foreign key has no startswith lookup)
        qs = qs.alias(key_start=Left(field, len(prefix))).filter(key_start=prefix)
    return qs


def _patient_page(profile: Any, after: str | None, before: str | None, prefix: str = "") -> KeysetPage:
    """A page of the user's patients in pseudonym order (keyset on ``patient_id``), optionally only
    the pseudonyms starting with ``prefix``.

    A national role pages through the patients table itself; a site pages through its operations'
    distinct patients in the (hospital, patient_id, department) index (a site's patients are those
    operated there), then reads those patients through :func:`patients_of`."""
    field = "patient_id"
    if profile.national:
        keys = patients_of(profile)
    else:
        keys = operations_of(profile).values_list(field, flat=True).distinct()
    if prefix:
        keys = _prefix(keys, field, prefix)
    count, capped = _capped_count(keys.order_by() if profile.national else keys.order_by(field))
    if before is not None:
        found = list(keys.filter(**{f"{field}__lt": before}).order_by(f"-{field}")
                     .values_list(field, flat=True)[:PAGE_SIZE + 1])
        more_before, ids = len(found) > PAGE_SIZE, found[:PAGE_SIZE][::-1]
        more_after = True
    else:
        page = keys.filter(**{f"{field}__gt": after}) if after is not None else keys
        found = list(page.order_by(field).values_list(field, flat=True)[:PAGE_SIZE + 1])
        more_after, ids = len(found) > PAGE_SIZE, found[:PAGE_SIZE]
        more_before = after is not None
    rows = list(patients_of(profile).filter(patient_id__in=ids).order_by("patient_id")
                .only("patient_id", "sex", "birth_date", "death_date"))
    return KeysetPage(rows, ids[-1] if ids and more_after else None, ids[0] if ids and more_before else None,
                      count, capped)


def _list_context(request: HttpRequest, page: KeysetPage, **extra: Any) -> dict[str, Any]:
    """Template context of a list: the page, and the query strings of the next/previous links (other
    parameters, e.g. the search, kept)."""
    def link(key: str, value: str | None) -> str | None:
        if value is None:
            return None
        params = {k: v for k, v in request.GET.items() if k not in ("after", "before")}
        params[key] = value
        return "?" + urlencode(params)

    return {"page": page, "next_url": link("after", page.after), "previous_url": link("before", page.before),
            "profile": request.user.staff, **extra}


@staff_view("view_records")
def home(request: HttpRequest) -> HttpResponse:
    """The user's patients (their site's; every patient for a national role), 50 a page in
    pseudonym order: keyset pagination (``?after=``/``?before=`` a pseudonym), a capped count."""
    profile = request.user.staff
    after, before = _keyset(request)
    page = _patient_page(profile, after, before)
    from django_otp import devices_for_user

    has_totp = any(True for _d in devices_for_user(request.user, confirmed=True))
    return render(request, "web/home.html", {**_list_context(request, page), "has_totp": has_totp})


@staff_view("view_records")
def patient_search(request: HttpRequest) -> HttpResponse:
    """The user's patients whose pseudonym starts with ``?q=`` (case-sensitive), keyset-paginated."""
    profile = request.user.staff
    query = request.GET.get("q", "").strip()
    after, before = _keyset(request)
    page = _patient_page(profile, after, before, prefix=query) if query else None
    context = _list_context(request, page, query=query) if page is not None else {"page": None, "query": query}
    return render(request, "web/lists/patient_search.html", context)


@staff_view("view_records")
def operation_list(request: HttpRequest) -> HttpResponse:
    """The user's operations (their site's; all for a national role), newest first: keyset on
    (date, operation_id) descending; ``?after=``/``?before=`` name the operation the page starts after
    (it must be one the user may see)."""
    profile = request.user.staff
    after, before = _keyset(request)
    ops = operations_of(profile)
    mark = after or before
    if mark is not None:
        found = ops.filter(operation_id=mark).values_list("date", flat=True).first()
        if found is None:
            raise Http404(_("No such operation at your site."))
        # (date, id) < (d, o) as date <= d AND (date < d OR id < o): the index range is date <= d
        if after is not None:
            page_q = ops.filter(Q(date__lt=found) | Q(operation_id__lt=mark), date__lte=found)
        else:
            page_q = ops.filter(Q(date__gt=found) | Q(operation_id__gt=mark), date__gte=found)
    else:
        page_q = ops
    columns = ("operation_id", "patient_id", "date", "hospital", "department", "procedure_category")
    if before is not None:
        found_rows = list(page_q.order_by("date", "operation_id").only(*columns)[:PAGE_SIZE + 1])
        more_before, rows = len(found_rows) > PAGE_SIZE, found_rows[:PAGE_SIZE][::-1]
        more_after = True
    else:
        found_rows = list(page_q.order_by("-date", "-operation_id").only(*columns)[:PAGE_SIZE + 1])
        more_after, rows = len(found_rows) > PAGE_SIZE, found_rows[:PAGE_SIZE]
        more_before = after is not None
    count, capped = _capped_count(ops.order_by())
    page = KeysetPage(rows, rows[-1].operation_id if rows and more_after else None,
                      rows[0].operation_id if rows and more_before else None, count, capped)
    return render(request, "web/lists/operations.html", _list_context(request, page))


@staff_view("view_records")
def patient_detail(request: HttpRequest, pseudonym: str) -> HttpResponse:
    from spinereg.registry.models import Patient

    profile = request.user.staff
    patient = patients_of(profile).filter(patient_id=pseudonym).first()
    if patient is None:
        raise Http404(_("No such patient at your site."))
    # sorted here, not by ORDER BY: with it SQLite walked the site's (hospital, date, operation_id) index,
    # every operation of the hospital (~0.5 s at 1,000,000 patients), instead of seeking the patient's few
    operations = sorted(operations_of(profile).filter(patient_id=pseudonym).order_by(),
                        key=lambda op: (op.date, op.operation_id))
    assert isinstance(patient, Patient)
    return render(request, "web/patient.html", {"patient": patient, "operations": operations})


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        if form.otp_device is not None:
            from django_otp import login as otp_login

            otp_login(self.request, form.otp_device)
        return response


def totp_setup(request: HttpRequest) -> HttpResponse:
    """Set up a TOTP device: show its secret, confirm it with a first code."""
    from django_otp import devices_for_user
    from django_otp import login as otp_login
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user: Any = request.user
    if any(True for _d in devices_for_user(user, confirmed=True)):
        return render(request, "web/totp_done.html")
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if device.verify_token(form.cleaned_data["otp_token"].strip()):
            device.confirmed = True
            device.save()
            otp_login(request, device)
            return redirect("home")
        form.add_error("otp_token", _("The code does not match: check the time on your phone and try again."))
    secret = base64.b32encode(device.bin_key).decode("ascii")
    return render(request, "web/totp_setup.html", {"form": form, "secret": secret, "uri": device.config_url})


@require_GET  # type: ignore[untyped-decorator]
def healthz(request: HttpRequest) -> JsonResponse:
    from spinereg.registry import schema_state

    state = schema_state("default")
    return JsonResponse({"status": "ok" if state == "current" else "error", "schema": state},
                        status=200 if state == "current" else 503)

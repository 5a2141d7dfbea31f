"""Staff pages: home (the site's patients), a patient, TOTP setup, the health check."""

from __future__ import annotations

import base64
from typing import Any

from django.contrib.auth import views as auth_views
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from spinereg.web.forms import LoginForm, TokenForm
from spinereg.web.permissions import operations_of, patients_of, staff_view

PAGE_SIZE = 50


@staff_view("view_records")
def home(request: HttpRequest) -> HttpResponse:
    profile = request.user.staff
    patients = patients_of(profile).order_by("patient_id").only("patient_id", "sex", "birth_date", "death_date")
    page = Paginator(patients, PAGE_SIZE).get_page(request.GET.get("page"))
    from django_otp import devices_for_user

    has_totp = any(True for _d in devices_for_user(request.user, confirmed=True))
    return render(request, "web/home.html", {"profile": profile, "page": page, "has_totp": has_totp})


@staff_view("view_records")
def patient_detail(request: HttpRequest, pseudonym: str) -> HttpResponse:
    from spinereg.registry.models import Patient

    profile = request.user.staff
    patient = patients_of(profile).filter(patient_id=pseudonym).first()
    if patient is None:
        raise Http404(_("No such patient at your site."))
    operations = operations_of(profile).filter(patient_id=pseudonym).order_by("date", "operation_id")
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

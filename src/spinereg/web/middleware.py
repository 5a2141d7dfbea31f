"""Every staff page needs a login (of an active staff user, at most SPINEREG_SESSION_MAX_AGE seconds old);
role admin needs a confirmed TOTP device, and a session verified with it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse
from django.shortcuts import redirect

from spinereg.web.events import LOGIN_AT

#: Paths open to anyone (no login): the login page, the health check, static files; the FHIR API
#: (it authenticates each request by its bearer token: spinereg.fhir_api).
OPEN_PREFIXES = ("/accounts/login/", "/healthz", "/static/", "/i18n/", "/fhir/")
#: Paths a logged-in admin without a second factor may still reach.
SETUP_PATHS = ("/accounts/totp/", "/accounts/logout/")


class StaffAccessMiddleware:
    def __init__(self, get_response: Callable[[Any], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> HttpResponse:
        path = request.path_info
        if path.startswith(OPEN_PREFIXES):
            return self.get_response(request)
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        profile = getattr(user, "staff", None)
        started = request.session.get(LOGIN_AT, 0.0)
        if profile is None or not user.is_active or time.time() - started > settings.SPINEREG_SESSION_MAX_AGE:
            logout(request)
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        if profile.role == "admin" and not user.is_verified() and not path.startswith(SETUP_PATHS):
            from django_otp import devices_for_user

            if any(True for _ in devices_for_user(user, confirmed=True)):
                # a device exists but this session did not pass it: log in again with the code
                logout(request)
                return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
            return redirect("totp-setup")
        return self.get_response(request)

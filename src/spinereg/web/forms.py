"""The login form: user name, password and, for a user with a confirmed TOTP device, its code."""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.utils.translation import gettext_lazy as _


class LoginForm(AuthenticationForm):
    otp_token = forms.CharField(
        label=_("Authenticator code"), required=False, max_length=8,
        help_text=_("Six digits from your authenticator app, if you have set one up."),
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}))

    error_messages: ClassVar[dict[str, Any]] = {
        **AuthenticationForm.error_messages,
        "otp_required": _("Enter the code from your authenticator app."),
        "otp_invalid": _("The authenticator code is not valid."),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.otp_device: Any = None

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean()
        user = self.get_user()
        if user is None:
            return cleaned
        from django_otp import devices_for_user, match_token

        if not any(True for _d in devices_for_user(user, confirmed=True)):
            return cleaned
        token = (cleaned.get("otp_token") or "").strip()
        if not token:
            raise forms.ValidationError(self.error_messages["otp_required"], code="otp_required")
        device = match_token(user, token)
        if device is None:
            # a wrong code counts as a failed login (django-axes counts these)
            user_login_failed.send(sender=__name__, credentials={"username": cleaned.get("username")},
                                   request=self.request)
            raise forms.ValidationError(self.error_messages["otp_invalid"], code="otp_invalid")
        self.otp_device = device
        return cleaned


class TokenForm(forms.Form):
    otp_token = forms.CharField(label=_("Authenticator code"), max_length=8,
                                widget=forms.TextInput(attrs={"autocomplete": "one-time-code",
                                                              "inputmode": "numeric"}))

"""User management: list staff users, create one, change role and site, disable and enable.

The account operations (:func:`add_user`, :func:`set_role`, :func:`set_active`,
:func:`user_rows`) are plain functions over Django's user model and
:class:`~spinereg.web.models.StaffProfile`, raising :class:`~spinereg.SpineregError`
with a message for the user; the pages (role ``admin``, capability ``manage_users``)
are thin views over them, and so can be the ``spinereg user`` commands.

Passwords: the administrator types the new user's password twice; it must pass
Django's password validators (12 characters at least, not a common password, not
like the user name, not all digits).  No password, hash or secret is ever shown:
the list shows name, role, site, active, whether a TOTP device is confirmed and
the last login.

Every account change is logged as an authentication event (logger
``spinereg.web.auth``, as :mod:`spinereg.web.events`): the action, the changed
user's numeric id, the acting user's numeric id, and the role or site id when
they change - never a user name.
"""

from __future__ import annotations

import logging
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import password_validators_help_text_html, validate_password
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from spinereg._errors import SpineregError
from spinereg.web.models import NATIONAL_ROLES, ROLES, Site, StaffProfile
from spinereg.web.permissions import staff_view

__all__ = ["add_user", "set_active", "set_role", "user_add", "user_edit", "user_list", "user_rows"]

log = logging.getLogger("spinereg.web.auth")
PAGE_SIZE = 50

ROLE_LABELS: dict[str, Any] = {
    "admin": gettext_lazy("Administrator"),
    "surgeon": gettext_lazy("Surgeon"),
    "reviewer": gettext_lazy("Imaging reviewer"),
    "data_manager": gettext_lazy("Data manager"),
    "analyst": gettext_lazy("Analyst"),
    "auditor": gettext_lazy("Auditor"),
}


# -- the account operations ----------------------------------------------------------------------------------
def _site_for(role: str, site: Site | None) -> Site | None:
    if role not in ROLES:
        raise SpineregError(_("unknown role %(role)s") % {"role": role})
    if site is None and role not in NATIONAL_ROLES:
        raise SpineregError(_("a %(role)s works at one site: choose the site") % {"role": role})
    return site


def add_user(username: str, password: str, role: str, site: Site | None, *, by: Any = None) -> Any:
    """Create an active staff user with this role and site; the password must pass the validators.

    A site-bound role (surgeon, reviewer, data manager) needs a site; a national role may have
    none (it sees every site).  Raises :class:`~spinereg.SpineregError` for a user name in use,
    a refused password, an unknown role or a missing site."""
    model = get_user_model()
    site = _site_for(role, site)
    if model.objects.filter(username=username).exists():
        raise SpineregError(_("user %(name)s exists already") % {"name": username})
    user = model(username=username)
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        raise SpineregError(_("password refused: %(why)s") % {"why": " ".join(exc.messages)}) from None
    user.set_password(password)
    with transaction.atomic():
        user.save()
        profile = StaffProfile.objects.create(user=user, role=role, site=site)
    log.info("user created user_id=%s role=%s site_id=%s by user_id=%s", user.pk, role, profile.site_id,
             getattr(by, "pk", None))
    return user


def set_role(user: Any, role: str, site: Site | None, *, by: Any = None) -> bool:
    """Give ``user`` this role and site; returns whether anything changed."""
    site = _site_for(role, site)
    profile = StaffProfile.objects.filter(user=user).first()
    if profile is not None and profile.role == role and profile.site_id == (site.pk if site else None):
        return False
    StaffProfile.objects.update_or_create(user=user, defaults={"role": role, "site": site})
    log.info("user role set user_id=%s role=%s site_id=%s by user_id=%s", user.pk, role,
             site.pk if site else None, getattr(by, "pk", None))
    return True


def set_active(user: Any, active: bool, *, by: Any = None) -> bool:
    """Enable or disable ``user`` (a disabled user's open sessions end at their next request);
    returns whether anything changed."""
    if user.is_active == active:
        return False
    user.is_active = active
    user.save(update_fields=["is_active"])
    log.info("user %s user_id=%s by user_id=%s", "enabled" if active else "disabled", user.pk,
             getattr(by, "pk", None))
    return True


def user_rows() -> Any:
    """Every user, ordered by name, with ``staff`` and its site loaded and ``has_totp`` (a confirmed
    TOTP device) annotated; no password data."""
    from django.db.models import Exists, OuterRef
    from django_otp.plugins.otp_totp.models import TOTPDevice

    confirmed = TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)
    return (get_user_model().objects.select_related("staff__site").annotate(has_totp=Exists(confirmed))
            .only("id", "username", "is_active", "last_login", "staff__role", "staff__site__code",
                  "staff__site__name")
            .order_by("username"))


# -- forms ---------------------------------------------------------------------------------------------------
def _role_choices() -> list[tuple[str, Any]]:
    return [(r, ROLE_LABELS[r]) for r in ROLES]


class _RoleSiteForm(forms.Form):
    role = forms.ChoiceField(label=gettext_lazy("Role"), choices=_role_choices)
    site = forms.ModelChoiceField(
        label=gettext_lazy("Site"), queryset=Site.objects.order_by("code"), required=False,
        empty_label=gettext_lazy("All sites (administrator, analyst, auditor only)"),
        help_text=gettext_lazy("Surgeons, imaging reviewers and data managers see their own site's records only."))

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        role, site = cleaned.get("role"), cleaned.get("site")
        if role and site is None and role not in NATIONAL_ROLES:
            self.add_error("site", _("This role works at one site: choose the site."))
        return cleaned


class UserAddForm(_RoleSiteForm):
    username = forms.CharField(label=gettext_lazy("User name"), max_length=150,
                               validators=[get_user_model().username_validator],
                               widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "none"}))
    password1 = forms.CharField(label=gettext_lazy("Password"), strip=False,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    password2 = forms.CharField(label=gettext_lazy("Password again"), strip=False,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    field_order = ("username", "role", "site", "password1", "password2")

    def clean_username(self) -> str:
        name = str(self.cleaned_data["username"])
        if get_user_model().objects.filter(username__iexact=name).exists():
            raise ValidationError(_("This user name is taken."))
        return name

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        p1, p2 = cleaned.get("password1"), cleaned.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", _("The two passwords differ."))
        elif p1 and cleaned.get("username"):
            try:
                validate_password(p1, user=get_user_model()(username=cleaned["username"]))
            except ValidationError as exc:
                self.add_error("password1", exc)
        return cleaned


class UserEditForm(_RoleSiteForm):
    active = forms.BooleanField(label=gettext_lazy("Active (may log in)"), required=False)


# -- pages ---------------------------------------------------------------------------------------------------
@staff_view("manage_users")
def user_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(user_rows(), PAGE_SIZE).get_page(request.GET.get("page"))
    for u in page:
        profile = getattr(u, "staff", None)
        u.role_label = ROLE_LABELS[profile.role] if profile is not None else "-"
    return render(request, "web/users/list.html", {"page": page})


@staff_view("manage_users")
def user_add(request: HttpRequest) -> HttpResponse:
    form = UserAddForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            add_user(data["username"], data["password1"], data["role"], data["site"], by=request.user)
        except SpineregError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, _("User %(name)s created.") % {"name": data["username"]})
            return redirect("users")
    return render(request, "web/users/add.html", {"form": form,
                                                  "password_help": password_validators_help_text_html()})


@staff_view("manage_users")
def user_edit(request: HttpRequest, username: str) -> HttpResponse:
    user: Any = get_user_model().objects.select_related("staff__site").filter(username=username).first()
    if user is None:
        raise Http404(_("No such user."))
    profile = getattr(user, "staff", None)
    initial = {"role": profile.role if profile else "", "site": profile.site if profile else None,
               "active": user.is_active}
    form = UserEditForm(request.POST or None, initial=initial)
    own = user.pk == request.user.pk
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if own and (data["role"] != initial["role"] or not data["active"]):
            form.add_error(None, _("You cannot disable your own account or change your own role: "
                                   "ask another administrator."))
        else:
            try:
                with transaction.atomic():
                    changed = set_role(user, data["role"], data["site"], by=request.user)
                    changed = set_active(user, bool(data["active"]), by=request.user) or changed
            except SpineregError as exc:
                form.add_error(None, str(exc))
            else:
                if changed:
                    messages.success(request, _("User %(name)s changed.") % {"name": user.username})
                return redirect("users")
    return render(request, "web/users/edit.html", {"form": form, "account": user, "own": own})

"""Template context: whether the registry holds synthetic data (the SYNTHETIC banner), and the
navigation links the user's role may follow."""

from __future__ import annotations

from typing import Any

from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _

from spinereg.web.permissions import can

#: (URL name, label, capability): the main navigation, in order
NAV: list[tuple[str, Any, str]] = [
    ("home", _("Patients"), "view_records"),
    ("operations", _("Operations"), "view_records"),
    ("patient-find", _("Find by CPR"), "view_records"),
    ("patient-register", _("Register patient"), "write_clinical"),
    ("review-queue", _("Imaging review"), "write_imaging"),
    ("worklist-missing", _("Missing forms"), "view_worklists"),
    ("worklist-quality", _("Data quality"), "view_worklists"),
    ("followup-worklist", _("Follow-up worklist"), "view_worklists"),
    ("followup-completeness", _("Follow-up completeness"), "view_records"),
    ("audit", _("Audit trail"), "view_audit"),
    ("studies", _("Studies"), "run_studies"),
    ("users", _("Users"), "manage_users"),
]


def registry(request: Any) -> dict[str, Any]:
    from spinereg.registry.models import Dataset

    nav: list[dict[str, Any]] = []
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        for name, label, capability in NAV:
            if not can(user, capability):
                continue
            try:
                url = reverse(name)
            except NoReverseMatch:  # a page this installation does not have
                continue
            nav.append({"url": url, "label": label, "current": request.path == url})
    return {"synthetic": Dataset.objects.filter(synthetic=True).exists(), "nav": nav}

"""Who may do what, and which records a user may see (object-level checks).

Every view checks a capability (:func:`require`) and reaches records only
through :func:`operations_of` / :func:`patients_of`, which hold the site rule:
a user sees their own site's records unless their role is national; another
site's record is a 404, never a 403 that would confirm it exists.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied

__all__ = ["CAPABILITIES", "URL_OBJECTS", "can", "operations_of", "patients_of", "require", "staff_view"]

#: capability -> the roles that have it
CAPABILITIES: dict[str, frozenset[str]] = {
    "view_records": frozenset({"admin", "surgeon", "reviewer", "data_manager", "analyst", "auditor"}),
    # patients (register by CPR, death), operations with their levels, complications
    "write_clinical": frozenset({"admin", "surgeon", "data_manager"}),
    # post-operative imaging review (leaks per level)
    "write_imaging": frozenset({"admin", "reviewer", "data_manager"}),
    # lock and e-sign a completed record
    "lock": frozenset({"admin", "surgeon", "reviewer", "data_manager"}),
    # change or unlock a locked record (a reason is required)
    "change_locked": frozenset({"admin", "data_manager"}),
    # worklists: missing forms, data-quality problems
    "view_worklists": frozenset({"admin", "data_manager", "surgeon", "reviewer"}),
    # follow-up: a questionnaire answered on paper or by telephone, consent and withdrawal, e-mail address
    "write_followup": frozenset({"admin", "surgeon", "data_manager"}),
    "view_audit": frozenset({"admin", "auditor"}),
    "run_studies": frozenset({"admin", "analyst"}),
    "manage_users": frozenset({"admin"}),
}


def can(user: Any, capability: str) -> bool:
    """Whether the logged-in staff user has ``capability``."""
    staff = getattr(user, "staff", None)
    return staff is not None and staff.role in CAPABILITIES[capability]


def require(request: Any, capability: str) -> None:
    """403 unless the user has ``capability``."""
    if not can(request.user, capability):
        raise PermissionDenied(capability)


def operations_of(profile: Any) -> Any:
    """The operations the user's site may see (all of them for a national role)."""
    from spinereg.registry.models import Operation

    ops = Operation.objects.all()
    if profile.national:
        return ops
    if profile.site is None:
        return ops.none()
    ops = ops.filter(hospital=profile.site.hospital)
    if profile.site.department:
        ops = ops.filter(department=profile.site.department)
    return ops


def patients_of(profile: Any) -> Any:
    """The patients the user's site may see (all for a national role): those operated at the site,
    and those the site reached by CPR number (registered or found: knowing the number is the
    credential; :class:`spinereg.web.models.PatientAccess`)."""
    from spinereg.registry.models import Patient
    from spinereg.web.models import PatientAccess

    if profile.national:
        return Patient.objects.all()
    # EXISTS, correlated on the patient: one seek in the (hospital, patient_id, department) index
    # per patient looked at.  (``patient_id IN (the site's operations)`` made SQLite materialise
    # every patient of the site, ~160,000 at a large hospital of a national registry, per query.)
    from django.db.models import Exists, OuterRef

    operated = Exists(operations_of(profile).filter(patient_id=OuterRef("patient_id")))
    if profile.site is None:
        return Patient.objects.filter(operated)
    reached = Exists(PatientAccess.objects.filter(site=profile.site, patient_id=OuterRef("patient_id")))
    return Patient.objects.filter(operated | reached)


#: URL parameter name -> the record it names.  Every staff URL that names a record uses one of these
#: parameter names, and its view looks the record up through :func:`patients_of` / :func:`operations_of`
#: (another site's record is a 404).  The permission-matrix test fills them from these names.
URL_OBJECTS: dict[str, str] = {
    "pseudonym": "patients",
    "operation_id": "operations",
    "complication_id": "complications",
    "finding_id": "imaging_findings",
    "username": "users",
}

_View = TypeVar("_View", bound=Callable[..., Any])


def staff_view(capability: str) -> Callable[[_View], _View]:
    """Mark a view as needing ``capability`` (403 without it) and record that on the view
    (``view.capability``) for the permission-matrix test.  The login itself is required for
    every staff page by :class:`spinereg.web.middleware.StaffAccessMiddleware`."""
    if capability not in CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r}")

    def decorate(view: _View) -> _View:
        @wraps(view)
        def wrapped(request: Any, *args: Any, **kwargs: Any) -> Any:
            require(request, capability)
            return view(request, *args, **kwargs)

        wrapped.capability = capability  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorate

"""Staff users' sites (data access groups) and roles."""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.db import models

ROLES = ("admin", "surgeon", "reviewer", "data_manager", "analyst", "auditor")
#: Roles that see every site's records; the others see their own site's only.
NATIONAL_ROLES = frozenset({"admin", "analyst", "auditor"})


class Site(models.Model):
    """A hospital department: a data access group.

    Its records are the operations whose ``hospital`` (and ``department``, when
    given) match; a patient belongs to every site where they were operated.
    """

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=200)
    hospital = models.CharField(max_length=255, help_text="The operations' hospital value.")
    department = models.CharField(max_length=255, blank=True, default="",
                                  help_text="The operations' department value; blank: the whole hospital.")

    class Meta:
        ordering = ("code",)

    def __str__(self) -> str:
        return str(self.code)


class StaffProfile(models.Model):
    """A staff user's role and site."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff")
    role = models.CharField(max_length=16, choices=[(r, r) for r in ROLES])
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.PROTECT, related_name="staff")

    def __str__(self) -> str:
        return f"{self.user_id} {self.role}"

    @property
    def national(self) -> bool:
        return self.role in NATIONAL_ROLES

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}")
        super().save(*args, **kwargs)


class PatientAccess(models.Model):
    """A site's access to a patient through the patient's CPR number.

    Which patients a site sees is decided by its operations (a patient belongs to every
    site where they were operated).  A patient registered or found by CPR number at a
    site has no operation there yet; knowing the number is the credential, so the
    register and find pages record it here, and the site may then see the patient
    (sex, birth date, death) and enter an operation.  Operations stay visible by their
    own site only: another site's operations of the same patient remain hidden.  Only
    the keyed pseudonym is kept (never the number).  National roles see every patient
    and need no row.
    """

    HOW: ClassVar[tuple[tuple[str, str], ...]] = (("registered", "registered"), ("found", "found"))

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="patient_access")
    patient_id = models.CharField(max_length=64, help_text="The patient's keyed pseudonym.")
    how = models.CharField(max_length=10, choices=HOW)
    at = models.DateTimeField()

    class Meta:
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["site", "patient_id"], name="patient_access_key")]

    def __str__(self) -> str:
        return f"{self.site_id} {self.patient_id}"

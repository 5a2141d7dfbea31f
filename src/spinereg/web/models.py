"""Staff users' sites (data access groups) and roles."""

from __future__ import annotations

from typing import Any

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

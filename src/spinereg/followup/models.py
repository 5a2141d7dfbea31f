# mypy: disallow-subclassing-any=False
"""Follow-up models: invitations, their delivery log, contact and consent per patient.

Every write goes through :mod:`spinereg.followup.service`, which appends one entry
to the registry's audit trail (``spinereg_audit``) per change, in the same
transaction, without personal data in the entry (no e-mail address, no token).
Patients are named only by their pseudonym (``patient_id``); the clear token of an
invitation exists only in the message or letter sent: the database keeps its
SHA-256 hash.
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models

__all__ = ["CHANNELS", "INVITATION_STATUSES", "Consent", "Contact", "DeliveryAttempt", "Invitation"]

#: pending: created, not (yet) delivered; sent: delivered once; reminded: a reminder delivered;
#: answered: the time point was answered; expired: the window closed unanswered;
#: stopped: the patient died or withdrew.
INVITATION_STATUSES = ("pending", "sent", "reminded", "answered", "expired", "stopped")
CHANNELS = ("email", "letter")
OUTCOMES = ("sent", "failed", "bounced")


def _choices(values: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(v, v) for v in values]


class Invitation(models.Model):
    """One questionnaire invitation per (operation, time point)."""

    operation_id = models.CharField(max_length=64)
    patient_id = models.CharField(max_length=64, db_index=True, help_text="The patient's pseudonym.")
    timepoint = models.CharField(max_length=16)
    due_date = models.DateField(help_text="Operation date + the time point's target day.")
    status = models.CharField(max_length=10, choices=_choices(INVITATION_STATUSES), default="pending")
    channel = models.CharField(max_length=8, choices=_choices(CHANNELS))
    reference = models.CharField(max_length=16, unique=True,
                                 help_text="Short code printed on the letter: names the invitation, grants nothing.")
    token_hash = models.CharField(max_length=64, unique=True, help_text="SHA-256 (hex) of the link's token.")
    expires_at = models.DateTimeField(help_text="End of the time point's window (UTC).")
    sent_on = models.DateField(null=True, blank=True, help_text="Day of the first delivery (the run's --today).")
    reminded_on = models.DateField(null=True, blank=True, help_text="Day of the reminder (one at most).")
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    draft = models.TextField(blank=True, default="",
                             help_text="JSON: the answers saved so far on the patient's page (cleared on submission).")

    class Meta:
        db_table = "spinereg_followup_invitation"
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["operation_id", "timepoint"], name="followup_invitation_once")]


class DeliveryAttempt(models.Model):
    """One attempt to deliver an invitation or its reminder (the delivery log)."""

    invitation = models.ForeignKey(Invitation, on_delete=models.PROTECT, related_name="attempts")
    at = models.DateTimeField()
    kind = models.CharField(max_length=10, default="invitation", help_text="invitation or reminder")
    channel = models.CharField(max_length=8, choices=_choices(CHANNELS))
    outcome = models.CharField(max_length=8, choices=_choices(OUTCOMES))
    error = models.CharField(max_length=255, blank=True, default="",
                             help_text="Why it failed: the error's class and code, never an address.")

    class Meta:
        db_table = "spinereg_followup_delivery"


class Contact(models.Model):
    """How to reach a patient: an e-mail address, or none (a letter). Personal data: set by staff."""

    patient_id = models.CharField(max_length=64, unique=True, help_text="The patient's pseudonym.")
    email = models.EmailField(blank=True, default="")
    updated_at = models.DateTimeField()

    class Meta:
        db_table = "spinereg_followup_contact"


class Consent(models.Model):
    """A consent event per patient; the latest one is the patient's status."""

    STATUSES = ("consented", "withdrawn")
    patient_id = models.CharField(max_length=64, db_index=True, help_text="The patient's pseudonym.")
    status = models.CharField(max_length=10, choices=_choices(STATUSES))
    on = models.DateField(help_text="The day consent was given or withdrawn.")
    at = models.DateTimeField()
    by = models.CharField(max_length=150)

    class Meta:
        db_table = "spinereg_followup_consent"

"""Follow-up invitations: contact and consent per patient, the daily send, the invitation list.

:func:`send_invitations` is idempotent: run it any number of times a day (cron, a
systemd timer).  For each (operation, time point) of the schedule
(:func:`spinereg.data.follow_up_schedule`) on ``today``:

* ``due`` and no invitation yet: one invitation is created (the unique constraint on
  (operation, time point) makes a second impossible) and delivered, by e-mail when
  staff have recorded an address for the patient (:func:`set_contact`), else as a
  printable PDF letter in the outbox;
* ``due``, invitation ``pending`` (its delivery failed): delivered again;
* ``due``, invitation ``sent`` at least ``reminder_days`` days ago and never reminded:
  one reminder (at most one per invitation);
* ``answered``: the invitation becomes ``answered``; ``died`` or ``withdrawn``: ``stopped``;
  ``closed``: ``expired``.  Nothing more is sent for these.

Links: each delivery carries a fresh link ``<base_url>/q/<token>/`` whose token has
256 random bits (:func:`secrets.token_urlsafe`); only its SHA-256 is stored, replacing
the previous one once the delivery succeeded (a reminder's link replaces the
invitation's).  The clear token exists only in the message or letter, so
:func:`list_invitations` can show a link only for deliveries made by the same process;
other rows say ``(sent; token not stored)``.

Delivery: e-mail through a Django e-mail backend (:func:`email_connection`): the outbox
folder by default, SMTP when ``SPINEREG_SMTP_HOST`` is set.  A backend that raises, or
that reports no message sent, is a failed :class:`~spinereg.followup.models.DeliveryAttempt`
(the error's class and SMTP code, never an address) and the invitation is not marked sent.
A crash after a message left but before it was recorded leaves the invitation
``pending``: the next run sends it again (a duplicate, never a false "sent").

Privacy: messages, letters, file names and the log hold the link, a neutral text and
the invitation's short reference: no CPR number, no name, no pseudonym.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from spinereg._errors import SpineregError
from spinereg.data import check_no_cpr, follow_up_schedule
from spinereg.followup._audit import audit, audited

__all__ = ["COMPLETENESS_COLUMNS", "LIST_COLUMNS", "SendResult", "completeness", "current_withdrawals",
           "email_connection", "hash_token", "list_invitations", "non_responders", "record_consent", "schedule",
           "send_invitations", "set_contact"]

#: The columns of :func:`list_invitations`.
LIST_COLUMNS = ["patient_id", "operation_id", "timepoint", "due_date", "status", "channel", "reference", "sent_on",
                "reminded_on", "link"]
NOT_STORED = "(sent; token not stored)"
_REF_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L
_OPEN = ("pending", "sent", "reminded")
_LINKS: dict[int, str] = {}  # invitation id -> link of a delivery made by this process


def hash_token(token: str) -> str:
    """The stored form of a link's token: SHA-256, hex."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


# -- contact and consent (set by staff) -------------------------------------------------------
def set_contact(alias: str, patient_id: str, email: str | None, *, who: str | None = None) -> None:
    """Record the e-mail address of a patient (``None`` or empty: none, a letter is sent)."""
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    from spinereg.followup.models import Contact

    address = (email or "").strip()
    if address:
        try:
            validate_email(address)
        except ValidationError:
            raise SpineregError(f"patient {patient_id}: not a valid e-mail address (value hidden)") from None
    with audited(alias):
        found = Contact.objects.using(alias).filter(patient_id=patient_id).first()
        if found is None:
            Contact.objects.using(alias).create(patient_id=patient_id, email=address, updated_at=_now())
            audit(alias, "create", "contacts", patient_id, None, {"has_email": bool(address)}, who=who)
        elif found.email != address:
            old = bool(found.email)
            found.email, found.updated_at = address, _now()
            found.save(using=alias)
            audit(alias, "update", "contacts", patient_id, {"has_email": old, "email": "changed"},
                  {"has_email": bool(address), "email": "changed"}, who=who)


def record_consent(alias: str, patient_id: str, status: str, on: date, *, who: str | None = None) -> None:
    """Record that a patient consented or withdrew on ``on`` (the latest record counts)."""
    from spinereg.followup.models import Consent
    from spinereg.registry import actor

    if status not in Consent.STATUSES:
        raise SpineregError(f"consent status {status!r}: use consented or withdrawn")
    by = who or actor()
    check_no_cpr(by, "consent, by")
    with audited(alias):
        row = Consent.objects.using(alias).create(patient_id=patient_id, status=status, on=on, at=_now(), by=by)
        audit(alias, "create", "consents", row.pk, None, {"patient_id": patient_id, "status": status,
                                                          "on": on.isoformat()}, who=by)


def current_withdrawals(alias: str) -> dict[str, date]:
    """Patient -> day of withdrawal, for patients whose latest consent record is a withdrawal."""
    from spinereg.followup.models import Consent

    latest: dict[str, tuple[Any, str, date]] = {}
    for pid, status, on, at, pk in Consent.objects.using(alias).values_list("patient_id", "status", "on", "at",
                                                                             "pk"):
        k = (at, pk)
        if pid not in latest or k > latest[pid][0]:
            latest[pid] = (k, status, on)
    return {pid: on for pid, (_, status, on) in latest.items() if status == "withdrawn"}


# -- e-mail --------------------------------------------------------------------------------
def email_connection(outbox: Path) -> Any:
    """The Django e-mail backend for invitations.

    * ``SPINEREG_EMAIL_BACKEND`` (a dotted class path): that backend;
    * ``SPINEREG_SMTP_HOST`` set: SMTP (``SPINEREG_SMTP_PORT`` default 587, ``SPINEREG_SMTP_USER``,
      ``SPINEREG_SMTP_PASSWORD``, ``SPINEREG_SMTP_SECURITY`` = ``starttls`` (default), ``ssl`` or ``none``);
    * otherwise the outbox: one ``.eml`` file per message in ``OUTBOX/mail``.
    """
    from django.core.mail import get_connection

    path = os.environ.get("SPINEREG_EMAIL_BACKEND")
    if path:
        return get_connection(path, fail_silently=False)
    host = os.environ.get("SPINEREG_SMTP_HOST")
    if host:
        security = os.environ.get("SPINEREG_SMTP_SECURITY", "starttls")
        if security not in ("starttls", "ssl", "none"):
            raise SpineregError(f"SPINEREG_SMTP_SECURITY={security!r}: use starttls, ssl or none")
        try:
            port = int(os.environ.get("SPINEREG_SMTP_PORT", "465" if security == "ssl" else "587"))
        except ValueError:
            raise SpineregError("SPINEREG_SMTP_PORT: not a port number") from None
        return get_connection("django.core.mail.backends.smtp.EmailBackend", fail_silently=False, host=host,
                              port=port, username=os.environ.get("SPINEREG_SMTP_USER", ""),
                              password=os.environ.get("SPINEREG_SMTP_PASSWORD", ""),
                              use_tls=security == "starttls", use_ssl=security == "ssl", timeout=30)
    return get_connection("spinereg.followup.outbox.OutboxBackend", fail_silently=False, folder=outbox / "mail")


def _sender() -> str:
    return os.environ.get("SPINEREG_MAIL_FROM", "spinereg@localhost")


# -- sending ------------------------------------------------------------------------------
@dataclass
class SendResult:
    """What one run of :func:`send_invitations` did (counts) and the links it issued."""

    today: date
    invited: int = 0
    reminded: int = 0
    letters: int = 0
    failed: int = 0
    answered: int = 0
    stopped: int = 0
    expired: int = 0
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line, no personal data."""
        return (f"followup send {self.today.isoformat()}: {self.invited} invited, {self.reminded} reminded "
                f"({self.letters} by letter), {self.failed} failed; {self.answered} answered, "
                f"{self.stopped} stopped, {self.expired} expired")


def _registry_frames(alias: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    from django.db import connections

    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT operation_id, patient_id, CAST(date AS TEXT), hospital FROM spinereg_operations")
        ops = pd.DataFrame.from_records(cursor.fetchall(), columns=["operation_id", "patient_id", "date", "hospital"])
        cursor.execute("SELECT patient_id, CAST(death_date AS TEXT) FROM spinereg_patients "
                       "WHERE death_date IS NOT NULL")
        pats = pd.DataFrame.from_records(cursor.fetchall(), columns=["patient_id", "death_date"])
        cursor.execute("SELECT operation_id, CAST(answer_date AS TEXT) FROM spinereg_proms "
                       "WHERE answer_date IS NOT NULL")
        proms = pd.DataFrame.from_records(cursor.fetchall(), columns=["operation_id", "answer_date"])
    return ops, pats, proms


def schedule(alias: str, today: date, *, with_hospital: bool = False) -> pd.DataFrame:
    """The registry's follow-up schedule on ``today`` (:func:`spinereg.data.follow_up_schedule`),
    with the consent withdrawals recorded here (and the operation's ``hospital``: ``with_hospital``)."""
    ops, pats, proms = _registry_frames(alias)
    out = follow_up_schedule(ops, pats, proms, today, withdrawn=current_withdrawals(alias))
    if with_hospital:
        sites = ops[["operation_id", "hospital"]].drop_duplicates("operation_id")
        out = out.merge(sites, on="operation_id", how="left")
    return out


#: The columns of :func:`completeness`.
COMPLETENESS_COLUMNS = ["hospital", "timepoint", "n", "answered", "died_before_answering", "alive_not_answered",
                        "not_yet_due", "response_rate"]


def completeness(alias: str, today: date, *, by_month: bool = False) -> pd.DataFrame:
    """Follow-up completeness per site (``hospital``) and time point on ``today``: the study engine's
    categories (``study_category`` of :func:`spinereg.data.follow_up_schedule`, the same rule as its
    follow-up table with ``today`` as the extract date) and ``response_rate`` = answered / (answered +
    alive_not_answered), NaN when nobody is in the denominator.

    ``by_month``: one row per site, time point and ``month`` (``YYYY-MM``) in which the window
    closed, for windows closed by ``today`` (the monthly trend)."""
    plan = schedule(alias, today, with_hospital=True)
    plan["hospital"] = plan["hospital"].fillna("").astype(str)
    keys = ["hospital", "timepoint"]
    if by_month:
        plan = plan[plan["closes"] <= pd.Timestamp(today)]
        plan = plan.assign(month=plan["closes"].dt.strftime("%Y-%m"))
        keys.append("month")
    cats = ["answered", "died_before_answering", "alive_not_answered", "not_yet_due"]
    counts = pd.crosstab([plan[k] for k in keys], plan["study_category"]).reindex(columns=cats, fill_value=0)
    counts.columns.name = None
    out = counts.reset_index()
    out.insert(len(keys), "n", out[cats].sum(axis=1))
    denominator = out["answered"] + out["alive_not_answered"]
    out["response_rate"] = (out["answered"] / denominator.where(denominator > 0)).astype(float)
    order = {tp: i for i, tp in enumerate(pd.unique(plan["timepoint"]))}
    out = out.sort_values(["hospital", *(["month"] if by_month else []), "timepoint"],
                          key=lambda c: c.map(order) if c.name == "timepoint" else c, ignore_index=True)
    cols = [*COMPLETENESS_COLUMNS[:2], *(["month"] if by_month else []), *COMPLETENESS_COLUMNS[2:]]
    return out[cols]


def non_responders(alias: str, today: date) -> pd.DataFrame:
    """The worklist for phone or paper follow-up: time points still ``due`` whose invitation was
    reminded (or sent without a reminder for the window's last 14 days), and time points whose window
    closed unanswered with an invitation.  Columns: ``hospital, patient_id, operation_id, timepoint,
    due_date, closes, status, invitation, channel, reference, sent_on, reminded_on``; no contact data."""
    from spinereg.followup.models import Invitation

    plan = schedule(alias, today, with_hospital=True)
    plan = plan[plan["status"].isin(["due", "closed"])]
    inv = pd.DataFrame.from_records(
        Invitation.objects.using(alias).values_list("operation_id", "timepoint", "status", "channel", "reference",
                                                    "sent_on", "reminded_on"),
        columns=["operation_id", "timepoint", "invitation", "channel", "reference", "sent_on", "reminded_on"])
    out = plan.merge(inv, on=["operation_id", "timepoint"], how="inner")
    late = (out["closes"] - pd.Timestamp(today)).dt.days < 14  # the window's last 13 days, or closed
    chase = out["reminded_on"].notna() | late
    out = out[chase.to_numpy() & out["invitation"].isin(["sent", "reminded", "expired", "pending"]).to_numpy()]
    cols = ["hospital", "patient_id", "operation_id", "timepoint", "due_date", "closes", "status", "invitation",
            "channel", "reference", "sent_on", "reminded_on"]
    return out.sort_values(["hospital", "closes", "operation_id"], ignore_index=True)[cols]


def _reference(alias: str) -> str:
    from spinereg.followup.models import Invitation

    while True:
        ref = "".join(secrets.choice(_REF_ALPHABET) for _ in range(8))
        if not Invitation.objects.using(alias).filter(reference=ref).exists():
            return ref


def _change(alias: str, inv: Any, **values: Any) -> None:
    """Change an invitation's fields, audited (token hashes are never written to the trail)."""
    old = {k: getattr(inv, k) for k in values}
    for k, v in values.items():
        setattr(inv, k, v)
    inv.save(using=alias, update_fields=list(values))
    shown = [k for k in values if k != "token_hash" and old[k] != values[k]]
    audit(alias, "update", "invitations", inv.pk, {k: old[k] for k in shown}, {k: values[k] for k in shown})


def send_invitations(alias: str, *, today: date, outbox: Path, base_url: str, reminder_days: int = 14,
                     connection: Any = None, progress: Callable[[str], None] | None = None) -> SendResult:
    """Invite, remind, and stop, for ``today`` (see the module docstring); returns the counts.

    ``connection`` is the e-mail backend (default :func:`email_connection` of ``outbox``).
    """
    from spinereg.followup.models import Contact, Invitation

    if reminder_days < 1:
        raise SpineregError(f"--reminder-days {reminder_days}: give 1 or more days")
    result = SendResult(today=today)
    plan = schedule(alias, today)
    # the open invitations as objects; of the others only their keys (a registry has millions)
    existing = {(i.operation_id, i.timepoint): i for i in Invitation.objects.using(alias).filter(status__in=_OPEN)}
    closed_keys = set(Invitation.objects.using(alias).exclude(status__in=_OPEN).values_list("operation_id",
                                                                                           "timepoint"))
    keys = pd.MultiIndex.from_arrays([plan["operation_id"], plan["timepoint"]])
    # 1. open invitations whose time point is settled: answered, stopped, expired
    final = {"answered": "answered", "died": "stopped", "withdrawn": "stopped", "closed": "expired"}
    settled = plan[plan["status"].isin(list(final)).to_numpy() & keys.isin(list(existing))]
    for op, tp, status in zip(settled["operation_id"], settled["timepoint"], settled["status"], strict=True):
        with audited(alias):
            _change(alias, existing[(op, tp)], status=final[status])
        setattr(result, final[status], getattr(result, final[status]) + 1)
    # 2. due time points: invite, deliver again, remind (an invitation answered, stopped or expired stays so)
    due = plan[(plan["status"] == "due").to_numpy() & ~keys.isin(list(closed_keys))]
    emails = dict(Contact.objects.using(alias).exclude(email="").values_list("patient_id", "email"))
    conn = connection
    for row in due.itertuples(index=False):
        inv = existing.get((row.operation_id, row.timepoint))
        kind = "invitation"
        if inv is None:
            inv = _create(alias, row, "email" if row.patient_id in emails else "letter")
        elif inv.status == "pending":
            pass
        elif inv.status == "sent" and inv.reminded_on is None and inv.sent_on is not None and \
                (today - inv.sent_on).days >= reminder_days:
            kind = "reminder"
        else:
            continue
        if inv.channel == "email" and conn is None:
            conn = email_connection(outbox)
        ok = _deliver(alias, inv, kind, today, outbox, base_url, conn, emails.get(row.patient_id, ""), result)
        if ok:
            if kind == "reminder":
                result.reminded += 1
            else:
                result.invited += 1
            if inv.channel == "letter":
                result.letters += 1
        if progress is not None:
            progress(inv.reference)
    return result


def _create(alias: str, row: Any, channel: str) -> Any:
    from spinereg.followup.models import Invitation

    closes = pd.Timestamp(row.closes).date()
    with audited(alias):
        inv = Invitation.objects.using(alias).create(
            operation_id=row.operation_id, patient_id=row.patient_id, timepoint=row.timepoint,
            due_date=pd.Timestamp(row.due_date).date(), status="pending", channel=channel,
            reference=_reference(alias), token_hash=hash_token(secrets.token_urlsafe(32)),
            expires_at=datetime.combine(closes + timedelta(days=1), time(0, 0), tzinfo=UTC), created_at=_now())
        audit(alias, "create", "invitations", inv.pk, None, {
            "operation_id": inv.operation_id, "patient_id": inv.patient_id, "timepoint": inv.timepoint,
            "due_date": inv.due_date.isoformat(), "status": "pending", "channel": channel,
            "reference": inv.reference})
    return inv


def _deliver(alias: str, inv: Any, kind: str, today: date, outbox: Path, base_url: str, conn: Any, email: str,
             result: SendResult) -> bool:
    """Deliver a fresh link for ``inv``; record the attempt; True when it was delivered."""
    from spinereg.followup.letters import invitation_text, write_letter
    from spinereg.followup.models import DeliveryAttempt

    token = secrets.token_urlsafe(32)
    link = f"{base_url.rstrip('/')}/q/{token}/"
    channel = inv.channel
    if channel == "email" and not email:  # the address was removed since: a letter
        channel = "letter"
    error = ""
    try:
        if channel == "email":
            from django.core.mail import EmailMessage

            subject, body = invitation_text(link, inv.reference, inv.expires_at.date(), reminder=kind == "reminder")
            msg = EmailMessage(subject, body, _sender(), [email],
                               headers={"X-Spinereg-Reference": f"{inv.reference}-{kind}"})
            if conn.send_messages([msg]) != 1:
                error = "the e-mail backend sent no message"
        else:
            write_letter(outbox / "letters" / f"{inv.reference}-{kind}.pdf", link, inv.reference,
                         inv.expires_at.date(), reminder=kind == "reminder")
    except Exception as exc:  # a backend's or file system's failure: recorded, never reported as sent
        code = getattr(exc, "smtp_code", None) or getattr(exc, "errno", None)
        error = type(exc).__name__ + (f" {code}" if code is not None else "")
    at = _now()
    with audited(alias):
        attempt = DeliveryAttempt.objects.using(alias).create(invitation=inv, at=at, kind=kind, channel=channel,
                                                              outcome="failed" if error else "sent", error=error)
        audit(alias, "create", "delivery_attempts", attempt.pk, None, {
            "invitation": inv.pk, "kind": kind, "channel": channel, "outcome": attempt.outcome, "error": error})
        if error:
            result.failed += 1
            result.failures.append(f"{inv.reference} ({kind}, {channel}): {error}")
            return False
        if kind == "reminder":
            _change(alias, inv, token_hash=hash_token(token), status="reminded", reminded_on=today, channel=channel)
        else:
            _change(alias, inv, token_hash=hash_token(token), status="sent", sent_on=today, channel=channel)
    _LINKS[inv.pk] = link
    return True


def list_invitations(alias: str, links: Mapping[int, str] | None = None) -> pd.DataFrame:
    """One row per invitation: :data:`LIST_COLUMNS`, ordered by due date and reference.

    ``link`` is the link of a delivery made by this process (or given in ``links``, invitation
    id -> link); otherwise ``(sent; token not stored)``, or empty for an invitation never delivered."""
    from spinereg.followup.models import Invitation

    known = {**_LINKS, **(links or {})}
    rows = []
    for inv in Invitation.objects.using(alias).order_by("due_date", "reference"):
        link = known.get(inv.pk) or (NOT_STORED if inv.sent_on is not None else "")
        rows.append({"patient_id": inv.patient_id, "operation_id": inv.operation_id, "timepoint": inv.timepoint,
                     "due_date": inv.due_date.isoformat(), "status": inv.status, "channel": inv.channel,
                     "reference": inv.reference, "sent_on": inv.sent_on.isoformat() if inv.sent_on else "",
                     "reminded_on": inv.reminded_on.isoformat() if inv.reminded_on else "", "link": link})
    return pd.DataFrame(rows, columns=LIST_COLUMNS)

"""Follow-up invitations: contact and consent per patient, the daily send, the invitation list.

:func:`send_invitations` is idempotent: run it any number of times a day (cron, a
systemd timer).  For each (operation, time point) of the schedule
(:func:`spinereg.data.follow_up_schedule`) on ``today``:

* ``due`` and no invitation yet: one invitation is created (the unique constraint on
  (operation, time point) makes a second impossible) and delivered, by e-mail when
  staff have recorded an address for the patient (:func:`set_contact`), else as a
  page of the run's printable PDF of letters in the outbox (one file per run and kind);
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

import contextlib
import hashlib
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from django.db import connections

from spinereg._errors import SpineregError
from spinereg.data import check_no_cpr, follow_up_schedule
from spinereg.followup._audit import audit, audit_many, audited, entry, insert_rows

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


def _registry_frames(alias: str, span: tuple[date, date] | None = None,
                     ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Operations, deaths and dated questionnaires: all of them, or (``span``) only of the operations
    dated in ``span`` and of those with an open invitation (their rows of the schedule are the same:
    each operation's status depends only on its own answers and its patient)."""
    ops_sql = ("SELECT o.operation_id, o.patient_id, CAST(o.date AS TEXT), o.hospital FROM spinereg_operations o")
    proms_sql = ("SELECT q.operation_id, CAST(q.answer_date AS TEXT) FROM spinereg_operations o JOIN spinereg_proms q "
                 "ON q.operation_id = o.operation_id WHERE q.answer_date IS NOT NULL")
    params: list[Any] = []
    if span is not None:
        inside = "o.date BETWEEN %s AND %s"
        invited = (f"NOT ({inside}) AND o.operation_id IN (SELECT operation_id FROM {_INVITATION} "
                   "WHERE status IN ('pending', 'sent', 'reminded'))")
        ops_sql = f"{ops_sql} WHERE {inside} UNION ALL {ops_sql} WHERE {invited}"
        proms_sql = f"{proms_sql} AND {inside} UNION ALL {proms_sql} AND {invited}"
        params = [*span, *span]
    with connections[alias].cursor() as cursor:
        cursor.execute(ops_sql, params)
        ops = pd.DataFrame.from_records(cursor.fetchall(), columns=["operation_id", "patient_id", "date", "hospital"])
        cursor.execute("SELECT patient_id, CAST(death_date AS TEXT) FROM spinereg_patients "
                       "WHERE death_date IS NOT NULL")
        pats = pd.DataFrame.from_records(cursor.fetchall(), columns=["patient_id", "death_date"])
        cursor.execute(proms_sql, params)
        proms = pd.DataFrame.from_records(cursor.fetchall(), columns=["operation_id", "answer_date"])
    return ops, pats, proms


def schedule(alias: str, today: date, *, with_hospital: bool = False) -> pd.DataFrame:
    """The registry's follow-up schedule on ``today`` (:func:`spinereg.data.follow_up_schedule`),
    with the consent withdrawals recorded here (and the operation's ``hospital``: ``with_hospital``)."""
    ops, pats, proms = _registry_frames(alias)
    out = follow_up_schedule(ops, pats, proms, today, withdrawn=current_withdrawals(alias))
    if with_hospital:
        k = len(_windows())
        if len(out) == len(ops) * k and ops["operation_id"].is_unique:  # every operation's rows, in its order
            out["hospital"] = np.repeat(ops["hospital"].to_numpy(dtype=object), k)
        else:
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
    closed, for windows closed by ``today`` (the monthly trend).

    The result is kept (per process, the last 8) until the registry changes: every change appends to
    the audit trail, whose last entry is part of the key (a dashboard reloaded without a change costs
    one query instead of reading the whole registry: ~20 s at 1,000,000 patients)."""
    with connections[alias].cursor() as cursor:  # every change of the registry appends to its audit trail
        cursor.execute("SELECT MAX(id) FROM spinereg_audit")
        last = cursor.fetchone()[0]
    key = (alias, str(connections[alias].settings_dict["NAME"]), today, by_month, last)
    if key in _COMPLETENESS:
        return _COMPLETENESS[key].copy()
    out = _completeness(alias, today, by_month)
    while len(_COMPLETENESS) >= 8:
        del _COMPLETENESS[next(iter(_COMPLETENESS))]
    _COMPLETENESS[key] = out
    return out.copy()


_COMPLETENESS: dict[tuple[Any, ...], pd.DataFrame] = {}


def _completeness(alias: str, today: date, by_month: bool) -> pd.DataFrame:
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


_BATCH = 1000  # due time points per batch: one transaction creates their invitations, one records their deliveries
_INVITATION = "spinereg_followup_invitation"


def _windows() -> dict[str, tuple[int, int, int]]:
    from spinereg.data import timepoints

    return {k: (tp.window[0], tp.window[1], tp.target) for k, tp in timepoints().items()}


def _references(alias: str, n: int) -> list[str]:
    """``n`` new invitation references (8 characters of :data:`_REF_ALPHABET`, unused in the registry)."""
    from spinereg.followup.models import Invitation

    size = len(_REF_ALPHABET)
    limit = 256 - 256 % size  # rejection sampling: every character equally likely
    out: set[str] = set()
    while len(out) < n:
        fresh: set[str] = set()
        while len(fresh) < n - len(out):
            picks = [b % size for b in secrets.token_bytes(16) if b < limit][:8]
            if len(picks) == 8:
                fresh.add("".join(_REF_ALPHABET[i] for i in picks))
        fresh -= out
        for i in range(0, len(fresh), 500):
            part = list(fresh)[i:i + 500]
            fresh -= set(Invitation.objects.using(alias).filter(reference__in=part).values_list("reference",
                                                                                                flat=True))
        out |= fresh
    return list(out)


_FIELDS = ("pk", "operation_id", "patient_id", "timepoint", "status", "channel", "reference", "sent_on",
           "reminded_on", "expires_at")


@dataclass
class _Delivery:
    """One delivery of a link, to be recorded (attempt, and the invitation's new state when it succeeded)."""

    inv: dict[str, Any]
    kind: str
    channel: str
    token: str
    link: str
    at: datetime
    error: str = ""


def send_invitations(alias: str, *, today: date, outbox: Path, base_url: str, reminder_days: int = 14,
                     connection: Any = None, progress: Callable[[str], None] | None = None) -> SendResult:
    """Invite, remind, and stop, for ``today`` (see the module docstring); returns the counts.

    ``connection`` is the e-mail backend (default :func:`email_connection` of ``outbox``), opened once
    for the run.  Reads only the operations whose windows can be open on ``today`` (and those of open
    invitations); writes in batches of :data:`_BATCH` time points, one transaction for their invitations
    and one for their deliveries, each change with its audit entry.  Letters go into one PDF per kind
    (``letters/<today>-invitations-<reference>.pdf``, one page each), recorded once the file is written.
    """
    from spinereg.followup.models import Invitation
    from spinereg.registry import actor

    if reminder_days < 1:
        raise SpineregError(f"--reminder-days {reminder_days}: give 1 or more days")
    result = SendResult(today=today)
    who = actor()
    windows = _windows()
    span = (today - timedelta(days=max(w[1] for w in windows.values())),
            today - timedelta(days=min(w[0] for w in windows.values())))
    ops, pats, proms = _registry_frames(alias, span)
    plan = follow_up_schedule(ops, pats, proms, today, windows=windows, withdrawn=current_withdrawals(alias))
    existing = {(r["operation_id"], r["timepoint"]): r
                for r in Invitation.objects.using(alias).filter(status__in=_OPEN).values(*_FIELDS)}
    # invitations answered, stopped or expired stay so: the keys of those whose operation can be due today
    with connections[alias].cursor() as cursor:
        cursor.execute(f"SELECT i.operation_id, i.timepoint FROM {_INVITATION} i JOIN spinereg_operations o "
                       "ON o.operation_id = i.operation_id WHERE o.date BETWEEN %s AND %s "
                       "AND i.status NOT IN ('pending', 'sent', 'reminded')", list(span))
        closed_keys = set(map(tuple, cursor.fetchall()))
    # 1. open invitations whose time point is settled: answered, stopped, expired
    final = {"answered": "answered", "died": "stopped", "withdrawn": "stopped", "closed": "expired"}
    settled = plan[plan["status"].isin(list(final)).to_numpy()]
    changes = [(existing[key], final[status]) for key, status in
               zip(zip(settled["operation_id"], settled["timepoint"], strict=True), settled["status"], strict=True)
               if key in existing]
    for i in range(0, len(changes), _BATCH):
        with audited(alias), connections[alias].cursor() as cursor:
            part = changes[i:i + _BATCH]
            cursor.executemany(f"UPDATE {_INVITATION} SET status = %s WHERE id = %s", [(s, r["pk"]) for r, s in part])
            at = _now()
            audit_many(alias, [entry("update", "invitations", r["pk"], {"status": r["status"]}, {"status": s},
                                     who=who, at=at) for r, s in part])
        for r, s in part:
            r["status"] = s
            setattr(result, s, getattr(result, s) + 1)
    # 2. due time points: invite, deliver again, remind (an invitation answered, stopped or expired stays so)
    due = plan[(plan["status"] == "due").to_numpy()]
    # the addresses of the patients whose operations can be due (every due operation is dated in ``span``)
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT c.patient_id, c.email FROM spinereg_followup_contact c WHERE c.email <> '' AND "
                       "c.patient_id IN (SELECT o.patient_id FROM spinereg_operations o "
                       "WHERE o.date BETWEEN %s AND %s)", list(span))
        emails = dict(cursor.fetchall())
    base = base_url.rstrip("/")
    letters: dict[str, list[_Delivery]] = {"invitation": [], "reminder": []}
    mail = _Mail(connection, outbox)
    try:
        rows = list(zip(due["operation_id"], due["patient_id"], due["timepoint"], due["due_date"], due["closes"],
                        strict=True))
        for start in range(0, len(rows), _BATCH):
            todo: list[tuple[dict[str, Any], str]] = []
            new = []
            for op, pid, tp, due_date, closes in rows[start:start + _BATCH]:
                key = (op, tp)
                if key in closed_keys:
                    continue
                found = existing.get(key)
                if found is None:
                    new.append((op, pid, tp, due_date, closes))
                elif found["status"] == "pending":
                    todo.append((found, "invitation"))
                elif found["status"] == "sent" and found["reminded_on"] is None and found["sent_on"] is not None \
                        and (today - found["sent_on"]).days >= reminder_days:
                    todo.append((found, "reminder"))
            todo[:0] = [(inv, "invitation") for inv in _create(alias, new, emails, who)]
            sent: list[_Delivery] = []
            for inv, kind in todo:
                token = secrets.token_urlsafe(32)
                d = _Delivery(inv, kind, inv["channel"], token, f"{base}/q/{token}/", _now())
                email = emails.get(inv["patient_id"], "")
                if d.channel == "email" and not email:  # the address was removed since: a letter
                    d.channel = "letter"
                if d.channel == "letter":
                    letters[kind].append(d)
                    continue
                d.error = mail.send(d, email)
                sent.append(d)
                if progress is not None:
                    progress(inv["reference"])
            _record(alias, sent, today, who, result)
        for kind, batch in letters.items():
            if batch:
                _letters(alias, batch, kind, today, outbox, who, result, progress)
    finally:
        mail.close()
    return result


def _create(alias: str, new: list[tuple[str, str, str, Any, Any]], emails: Mapping[str, str],
            who: str) -> list[dict[str, Any]]:
    """Create the invitations of ``new`` (operation, patient, time point, due date, window's end), audited."""
    if not new:
        return []
    ops = connections[alias].ops
    refs = _references(alias, len(new))
    at = _now()
    created = ops.adapt_datetimefield_value(at)
    ends: dict[Any, tuple[datetime, Any]] = {}
    invs: list[dict[str, Any]] = []
    rows, days = [], []
    for (op, pid, tp, due_date, closes), ref in zip(new, refs, strict=True):
        if closes not in ends:
            expires = datetime.combine(pd.Timestamp(closes).date() + timedelta(days=1), time(0, 0), tzinfo=UTC)
            ends[closes] = (expires, ops.adapt_datetimefield_value(expires))
        day = pd.Timestamp(due_date).date()
        inv = {"pk": 0, "operation_id": op, "patient_id": pid, "timepoint": tp, "status": "pending",
               "channel": "email" if pid in emails else "letter", "reference": ref, "sent_on": None,
               "reminded_on": None, "expires_at": ends[closes][0]}
        invs.append(inv)
        days.append(day.isoformat())
        rows.append((op, pid, tp, ops.adapt_datefield_value(day), "pending", inv["channel"], ref,
                     hash_token(secrets.token_urlsafe(32)), ends[closes][1], created, ""))
    with audited(alias):
        ids = insert_rows(alias, _INVITATION, ("operation_id", "patient_id", "timepoint", "due_date", "status",
                                               "channel", "reference", "token_hash", "expires_at", "created_at",
                                               "draft"), rows, returning=True)
        for inv, pk in zip(invs, ids, strict=True):
            inv["pk"] = pk
        audit_many(alias, [entry("create", "invitations", inv["pk"], None, {
            "operation_id": inv["operation_id"], "patient_id": inv["patient_id"], "timepoint": inv["timepoint"],
            "due_date": due, "status": "pending", "channel": inv["channel"],
            "reference": inv["reference"]}, who=who, at=at) for inv, due in zip(invs, days, strict=True)])
    return invs


class _Mail:
    """The e-mail backend of a run: opened at the first message, kept open, reopened after a failure."""

    def __init__(self, connection: Any, outbox: Path) -> None:
        self.conn, self.outbox, self.opened = connection, outbox, False

    def send(self, d: _Delivery, address: str) -> str:
        """Send ``d``'s message to ``address``; the error ('' when sent): class and SMTP code, no address."""
        from django.core.mail import EmailMessage

        from spinereg.followup.letters import invitation_text

        try:
            if self.conn is None:
                self.conn = email_connection(self.outbox)
            if not self.opened:
                self.conn.open()
                self.opened = True
            subject, body = invitation_text(d.link, d.inv["reference"], d.inv["expires_at"].date(),
                                            reminder=d.kind == "reminder")
            msg = EmailMessage(subject, body, _sender(), [address],
                               headers={"X-Spinereg-Reference": f"{d.inv['reference']}-{d.kind}"})
            if self.conn.send_messages([msg]) != 1:
                return "the e-mail backend sent no message"
            return ""
        except Exception as exc:  # a backend's failure: recorded, never reported as sent
            self.close()  # a fresh connection for the next message
            return _error(exc)

    def close(self) -> None:
        if self.opened:
            self.opened = False
            with contextlib.suppress(Exception):
                self.conn.close()


def _error(exc: BaseException) -> str:
    code = getattr(exc, "smtp_code", None) or getattr(exc, "errno", None)
    return type(exc).__name__ + (f" {code}" if code is not None else "")


def _letters(alias: str, batch: list[_Delivery], kind: str, today: date, outbox: Path, who: str,
             result: SendResult, progress: Callable[[str], None] | None) -> None:
    """Write the run's letters of one kind into one PDF (a page each), then record them."""
    from spinereg.followup.letters import Letter, write_letters

    name = f"{today.isoformat()}-{kind}s-{batch[0].inv['reference']}.pdf"
    try:
        write_letters(outbox / "letters" / name, [
            Letter(d.link, d.inv["reference"], d.inv["expires_at"].date(), kind == "reminder") for d in batch],
            title="Reminder: your health questionnaire" if kind == "reminder" else "Your health questionnaire")
    except Exception as exc:  # the file system's failure: every letter of the file failed
        for d in batch:
            d.error = _error(exc)
    for i in range(0, len(batch), _BATCH):
        _record(alias, batch[i:i + _BATCH], today, who, result)
        if progress is not None:
            for d in batch[i:i + _BATCH]:
                progress(d.inv["reference"])


def _record(alias: str, done: list[_Delivery], today: date, who: str, result: SendResult) -> None:
    """Record deliveries: an attempt each and, when delivered, the invitation's new link and state (audited)."""
    if not done:
        return
    ops = connections[alias].ops
    entries: list[Any] = []
    updates: dict[str, list[tuple[str, Any, str, int]]] = {"invitation": [], "reminder": []}
    day = ops.adapt_datefield_value(today)
    with audited(alias):
        ids = insert_rows(alias, "spinereg_followup_delivery", ("at", "kind", "channel", "outcome", "error",
                                                                "invitation_id"),
                          [(ops.adapt_datetimefield_value(d.at), d.kind, d.channel, "failed" if d.error else "sent",
                            d.error, d.inv["pk"]) for d in done], returning=True)
        for d, pk in zip(done, ids, strict=True):
            entries.append(entry("create", "delivery_attempts", pk, None, {
                "invitation": d.inv["pk"], "kind": d.kind, "channel": d.channel,
                "outcome": "failed" if d.error else "sent", "error": d.error}, who=who, at=d.at))
            if d.error:
                continue
            values: dict[str, Any] = {"token_hash": hash_token(d.token)}
            if d.kind == "reminder":
                values.update(status="reminded", reminded_on=today, channel=d.channel)
            else:
                values.update(status="sent", sent_on=today, channel=d.channel)
            shown = [k for k in values if k != "token_hash" and d.inv[k] != values[k]]
            entries.append(entry("update", "invitations", d.inv["pk"], {k: d.inv[k] for k in shown},
                                 {k: values[k] for k in shown}, who=who, at=d.at))
            updates[d.kind].append((values["token_hash"], day, d.channel, d.inv["pk"]))
        with connections[alias].cursor() as cursor:
            for kind, (status, column) in {"invitation": ("sent", "sent_on"),
                                           "reminder": ("reminded", "reminded_on")}.items():
                if updates[kind]:
                    cursor.executemany(f"UPDATE {_INVITATION} SET token_hash = %s, status = '{status}', "
                                       f"{column} = %s, channel = %s WHERE id = %s", updates[kind])
        audit_many(alias, entries)
    for d in done:
        if d.error:
            result.failed += 1
            result.failures.append(f"{d.inv['reference']} ({d.kind}, {d.channel}): {d.error}")
            continue
        d.inv.update(status="reminded" if d.kind == "reminder" else "sent", channel=d.channel,
                     **({"reminded_on": today} if d.kind == "reminder" else {"sent_on": today}))
        _LINKS[d.inv["pk"]] = d.link
        if d.kind == "reminder":
            result.reminded += 1
        else:
            result.invited += 1
        if d.channel == "letter":
            result.letters += 1


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

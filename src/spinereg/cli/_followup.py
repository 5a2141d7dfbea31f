"""Follow-up commands: ``followup send`` (invite, remind, stop; idempotent), ``followup list``,
``followup contact`` and ``followup consent`` (staff: a patient's e-mail address, consent or withdrawal)."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from spinereg._errors import DatabaseError, SpineregError

__all__ = ["register"]

DbOption = Annotated[str | None, typer.Option(
    "--db", help="Database URL (sqlite:///PATH or postgresql://...). Default: SPINEREG_DATABASE_URL, "
                 "else the embedded SQLite file.")]


class ListFormat(StrEnum):
    csv = "csv"


class ConsentStatus(StrEnum):
    consented = "consented"
    withdrawn = "withdrawn"


def _patient(alias: str, pseudonym: str) -> None:
    from spinereg.registry.models import Patient

    if not Patient.objects.using(alias).filter(patient_id=pseudonym).exists():
        raise SpineregError(f"no patient {pseudonym!r} in the registry (give the patient's pseudonym)")


def _today(value: str | None, option: str = "--today") -> date:
    if value is None:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SpineregError(f"{option} {value!r}: give a date as YYYY-MM-DD") from None


def _registry(db: str | None, *, write: bool) -> str:
    """Open an existing registry; for ``send``, bring its schema up to date (the follow-up tables)."""
    from spinereg.registry import migrate, open_registry, resolve_database_url, safe_url, schema_state

    alias = open_registry(db, create=False)
    state = schema_state(alias)
    where = safe_url(resolve_database_url(db))
    if state == "missing":
        raise DatabaseError(f"no registry in {where}: check --db (create one with `spinereg db init`)")
    if state == "outdated":
        if not write:
            raise DatabaseError(f"the registry {where} has an out-of-date schema: run `spinereg db migrate --db ...`")
        migrate(alias)
    return alias


def register(app: typer.Typer) -> None:
    """Add the ``followup`` commands to ``app``."""
    from spinereg.cli._app import FailureError, err, out

    followup_app = typer.Typer(help="Follow-up questionnaires: invitations, reminders, the invitation list.",
                               no_args_is_help=True)
    app.add_typer(followup_app, name="followup")

    @followup_app.command("send")
    def send(
        db: DbOption = None,
        today: Annotated[str | None, typer.Option(
            "--today", help="The day to act for (YYYY-MM-DD); default today (UTC).")] = None,
        outbox: Annotated[Path | None, typer.Option(
            "--outbox", help="Folder for letters (letters/*.pdf) and, without SMTP, e-mails (mail/*.eml). "
                             "Default: $SPINEREG_HOME/outbox.")] = None,
        reminder_days: Annotated[int, typer.Option(
            "--reminder-days", help="Remind once, this many days after an unanswered invitation.")] = 14,
        base_url: Annotated[str | None, typer.Option(
            "--base-url", help="The web registry's address for the links (default SPINEREG_BASE_URL, "
                               "else http://localhost:8000).")] = None,
    ) -> None:
        """Invite every patient whose time point is due, remind once, stop when answered, died or withdrawn.

        Safe to run any number of times (cron, a systemd timer): a second run on the same day sends nothing
        new.  E-mail goes through SMTP when SPINEREG_SMTP_HOST is set, else into the outbox; patients
        without an e-mail address get a PDF letter in the outbox.  Exits with status 1 when a delivery failed.
        """
        from spinereg.followup.service import send_invitations

        day = _today(today)
        if reminder_days < 1:
            raise SpineregError(f"--reminder-days {reminder_days}: give 1 or more days")
        home = os.environ.get("SPINEREG_HOME")
        folder = outbox or (Path(home) if home else Path.home() / ".local" / "share" / "spinereg") / "outbox"
        url = base_url or os.environ.get("SPINEREG_BASE_URL") or "http://localhost:8000"
        if not url.startswith(("http://", "https://")):
            raise SpineregError(f"--base-url {url!r}: give an http:// or https:// address")
        alias = _registry(db, write=True)
        result = send_invitations(alias, today=day, outbox=folder, base_url=url, reminder_days=reminder_days)
        for line in result.failures:
            err.print(f"  failed: {line}", markup=False)
        if result.failed:
            err.print(f"error: {result.summary()}", markup=False)
            raise FailureError()
        err.print(result.summary(), markup=False)

    @followup_app.command("list")
    def list_(
        db: DbOption = None,
        fmt: Annotated[ListFormat, typer.Option("--format", help="Output format.")] = ListFormat.csv,
        output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file (default: "
                                                                           "standard output).")] = None,
    ) -> None:
        """One row per invitation: patient pseudonym, operation, time point, due date, status, channel, link.

        The database keeps only a hash of each link's token, so ``link`` reads "(sent; token not stored)":
        the link is in the message or letter sent.
        """
        from spinereg.followup.service import list_invitations

        alias = _registry(db, write=False)
        frame = list_invitations(alias)
        text = frame.to_csv(index=False, lineterminator="\n")
        if output is None:
            out.file.write(text)
        else:
            output.write_text(text, encoding="utf-8")
            err.print(f"{len(frame)} invitations written to {output}", markup=False)

    @followup_app.command("contact")
    def contact(
        pseudonym: Annotated[str, typer.Argument(help="The patient's pseudonym (patient_id).")],
        email: Annotated[str | None, typer.Option("--email", help="The patient's e-mail address; leave out (or give "
                                                                  "an empty one) for letters.")] = None,
        db: DbOption = None,
    ) -> None:
        """Record how to reach a patient: an e-mail address, or none (invitations by letter)."""
        from spinereg.followup.service import set_contact

        alias = _registry(db, write=True)
        _patient(alias, pseudonym)
        set_contact(alias, pseudonym, email)
        err.print(f"patient {pseudonym}: " + ("invitations by e-mail" if email else "invitations by letter"),
                  markup=False)

    @followup_app.command("consent")
    def consent(
        pseudonym: Annotated[str, typer.Argument(help="The patient's pseudonym (patient_id).")],
        status: Annotated[ConsentStatus, typer.Option("--status", help="consented or withdrawn.")],
        on: Annotated[str | None, typer.Option("--on", help="The day (YYYY-MM-DD); default today (UTC).")] = None,
        db: DbOption = None,
    ) -> None:
        """Record a patient's consent or withdrawal (the latest record counts; a withdrawal stops invitations)."""
        from spinereg.followup.service import record_consent

        day = _today(on, "--on")
        alias = _registry(db, write=True)
        _patient(alias, pseudonym)
        record_consent(alias, pseudonym, status.value, day)
        err.print(f"patient {pseudonym}: {status.value}", markup=False)

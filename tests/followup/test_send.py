"""`followup send` / `followup list` on a hand-built registry (written through RegistryWriter).

Every operation is on 2026-01-01; its 3-month window is days 60-150: 2026-03-02 to 2026-05-31 (counted by hand
in test_schedule.py).  Patients: P1 has an e-mail address, P2 none (a letter), P3 died on 2026-02-15 (before the
window opens), P4 withdrew consent on 2026-02-20, P5 is registered by a (synthetic) CPR number and has e-mail.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from spinereg.cli import app
from spinereg.data import contains_cpr
from spinereg.followup.service import (
    SendResult,
    hash_token,
    list_invitations,
    record_consent,
    send_invitations,
    set_contact,
)
from spinereg.registry import RegistryWriter, register_patient

CPR = "0202554322"
KEY = b"followup-test-site-key-0123456789abcdef"
BASE = "https://registry.example.org"


def build(alias: str) -> dict[str, str]:
    w = RegistryWriter(alias, "Hospital A")
    p5 = register_patient(alias, CPR, dataset="Hospital A", key=KEY)
    ids = {"P1": "P1", "P2": "P2", "P3": "P3", "P4": "P4", "P5": p5}
    for name in ("P1", "P2", "P3", "P4"):
        w.create("patients", {"patient_id": name, "sex": "female", "birth_date": "1950-01-01",
                              "death_date": "2026-02-15" if name == "P3" else None})
    for name, pid in ids.items():
        w.create("operations", {"operation_id": f"O{name}", "patient_id": pid, "date": "2026-01-01",
                                "procedure_category": "vertebroplasty"})
        w.create("proms", {"prom_id": f"B{name}", "patient_id": pid, "operation_id": f"O{name}",
                           "timepoint": "baseline", "answer_date": "2025-12-28", "nrs_back": 7})
    set_contact(alias, "P1", "p1@example.org")
    set_contact(alias, p5, "p5@example.org")
    set_contact(alias, "P2", None)
    record_consent(alias, "P4", "consented", date(2025, 12, 1))
    record_consent(alias, "P4", "withdrawn", date(2026, 2, 20))
    return ids


def run(alias: str, today: str, outbox: Path, **kw: Any) -> SendResult:
    return send_invitations(alias, today=date.fromisoformat(today), outbox=outbox, base_url=BASE, **kw)


def files(outbox: Path) -> list[str]:
    return sorted(str(p.relative_to(outbox)) for p in outbox.rglob("*") if p.is_file())


def invitations(alias: str) -> dict[str, Any]:
    from spinereg.followup.models import Invitation

    return {i.operation_id: i for i in Invitation.objects.using(alias).all()}


def test_due_not_yet_due_death_withdrawal_and_a_second_run(registry: str, tmp_path: Path) -> None:
    ids = build(registry)
    out = tmp_path / "outbox"
    r = run(registry, "2026-03-01", out)  # day 59: nothing due (baseline answered, 3m not yet open)
    assert (r.invited, r.failed) == (0, 0)
    assert files(out) == []
    r = run(registry, "2026-03-02", out)  # day 60: the 3m window opens
    assert (r.invited, r.letters, r.failed) == (3, 1, 0)
    inv = invitations(registry)
    assert sorted(inv) == ["OP1", "OP2", "OP5"]  # P3 died before the window, P4 withdrew: no invitation
    assert {k: (i.timepoint, i.status, i.channel) for k, i in inv.items()} == {
        "OP1": ("3m", "sent", "email"), "OP2": ("3m", "sent", "letter"), "OP5": ("3m", "sent", "email")}
    assert inv["OP1"].due_date == date(2026, 4, 1)
    first = files(out)
    assert len(first) == 3
    assert sum(f.startswith("mail/") for f in first) == 2 and sum(f.startswith("letters/") for f in first) == 1
    # a second run the same day sends nothing new
    r = run(registry, "2026-03-02", out)
    assert (r.invited, r.reminded, r.failed) == (0, 0, 0)
    assert files(out) == first
    assert len(invitations(registry)) == 3
    # the list: one row per invitation; the links of this process's deliveries
    rows = list_invitations(registry)
    assert list(rows["reference"]) == sorted(rows["reference"])  # same due date: ordered by reference
    assert set(rows["patient_id"]) == {"P1", "P2", ids["P5"]}
    assert all(link.startswith(BASE + "/q/") for link in rows["link"])


def test_reminder_once_and_an_answer_after_the_reminder(registry: str, tmp_path: Path) -> None:
    build(registry)
    out = tmp_path / "outbox"
    run(registry, "2026-03-02", out)
    assert run(registry, "2026-03-15", out).reminded == 0  # 13 days
    r = run(registry, "2026-03-16", out)  # 14 days after the invitation
    assert r.reminded == 3
    assert sum("reminder" in f for f in files(out)) == 3
    assert run(registry, "2026-03-17", out).reminded == 0  # one reminder at most
    # P1 answers after the reminder; P2 dies
    w = RegistryWriter(registry, "Hospital A")
    w.create("proms", {"prom_id": "Q1", "patient_id": "P1", "operation_id": "OP1", "timepoint": "3m",
                       "answer_date": "2026-03-20", "nrs_back": 3})
    w.update("patients", "P2", {"death_date": "2026-03-25"})
    before = files(out)
    r = run(registry, "2026-04-20", out)
    assert (r.answered, r.stopped, r.reminded, r.invited) == (1, 1, 0, 0)
    assert files(out) == before
    inv = invitations(registry)
    assert (inv["OP1"].status, inv["OP2"].status, inv["OP5"].status) == ("answered", "stopped", "reminded")
    # the window closes unanswered: expired; nothing more is ever sent
    r = run(registry, "2026-06-01", out)
    assert (r.expired, r.invited, r.reminded) == (1, 0, 0)
    assert invitations(registry)["OP5"].status == "expired"
    assert run(registry, "2026-06-30", out).expired == 0
    assert files(out) == before


def test_withdrawal_after_the_invitation_stops_it(registry: str, tmp_path: Path) -> None:
    build(registry)
    out = tmp_path / "outbox"
    run(registry, "2026-03-02", out)
    record_consent(registry, "P1", "withdrawn", date(2026, 3, 5))
    r = run(registry, "2026-03-20", out)
    assert (r.stopped, r.reminded) == (1, 2)  # P1 stopped; P2 and P5 reminded
    assert invitations(registry)["OP1"].status == "stopped"
    assert not any(f.startswith("mail/") and "reminder" in f and _to(out / f) == "p1@example.org"
                   for f in files(out))


def _to(path: Path) -> str:
    m = re.search(r"^To: (.+)$", path.read_text(encoding="utf-8"), re.MULTILINE)
    return m.group(1).strip() if m else ""


def test_a_refused_message_is_failed_never_sent(registry: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from spinereg.followup.models import DeliveryAttempt

    build(registry)
    out = tmp_path / "outbox"
    monkeypatch.setenv("SPINEREG_EMAIL_BACKEND", "tests.followup.backends.RefusingBackend")
    r = run(registry, "2026-03-02", out)
    assert (r.invited, r.letters, r.failed) == (1, 1, 2)  # the letter went out
    inv = invitations(registry)
    for op in ("OP1", "OP5"):
        assert (inv[op].status, inv[op].sent_on) == ("pending", None)
    attempts = DeliveryAttempt.objects.using(registry).filter(channel="email")
    assert sorted((a.outcome, a.error) for a in attempts) == [("failed", "SMTPRecipientsRefused")] * 2
    # a backend that reports no message sent is a failure too
    monkeypatch.setenv("SPINEREG_EMAIL_BACKEND", "tests.followup.backends.SilentBackend")
    assert run(registry, "2026-03-03", out).failed == 2
    assert invitations(registry)["OP1"].status == "pending"
    # the next run with a working backend delivers them
    monkeypatch.delenv("SPINEREG_EMAIL_BACKEND")
    r = run(registry, "2026-03-04", out)
    assert (r.invited, r.failed) == (2, 0)
    assert invitations(registry)["OP1"].status == "sent"


def test_cli_send_fails_with_a_summary_and_list_writes_csv(registry: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from django.db import connections

    build(registry)
    url = connections[registry].settings_dict["NAME"]
    db = f"sqlite:///{url}" if connections[registry].vendor == "sqlite" else _pg_url(registry)
    out = tmp_path / "outbox"
    runner = CliRunner()
    monkeypatch.setenv("SPINEREG_EMAIL_BACKEND", "tests.followup.backends.RefusingBackend")
    res = runner.invoke(app, ["followup", "send", "--db", db, "--today", "2026-03-02", "--outbox", str(out)])
    assert res.exit_code == 1
    assert "2 failed" in res.output and "p1@example.org" not in res.output
    monkeypatch.delenv("SPINEREG_EMAIL_BACKEND")
    res = runner.invoke(app, ["followup", "send", "--db", db, "--today", "2026-03-02", "--outbox", str(out)])
    assert res.exit_code == 0, res.output
    assert "2 invited" in res.output
    res = runner.invoke(app, ["followup", "list", "--db", db, "--format", "csv"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert len(rows) == 3
    assert {"patient_id", "operation_id", "timepoint", "due_date", "status", "channel", "link"} <= set(rows[0])
    assert {r["status"] for r in rows} == {"sent"}
    res = runner.invoke(app, ["followup", "send", "--db", db, "--today", "2026-13-02"])
    assert res.exit_code != 0 and "YYYY-MM-DD" in str(res.exception)  # main() prints it as one line


def test_cli_contact_and_consent(registry: str, tmp_path: Path) -> None:
    from django.db import connections

    from spinereg.followup.models import Consent, Contact

    build(registry)
    db = (f"sqlite:///{connections[registry].settings_dict['NAME']}" if connections[registry].vendor == "sqlite"
          else _pg_url(registry))
    runner = CliRunner()
    res = runner.invoke(app, ["followup", "contact", "P2", "--email", "p2@example.org", "--db", db])
    assert res.exit_code == 0, res.output
    assert "p2@example.org" not in res.output
    res = runner.invoke(app, ["followup", "consent", "P2", "--status", "withdrawn", "--on", "2026-03-01", "--db", db])
    assert res.exit_code == 0, res.output
    assert Contact.objects.using(registry).get(patient_id="P2").email == "p2@example.org"
    assert Consent.objects.using(registry).filter(patient_id="P2").latest("at").status == "withdrawn"
    r = run(registry, "2026-03-02", tmp_path / "outbox")
    assert "OP2" not in invitations(registry) and r.invited == 2  # P2 withdrew; P1 and P5 invited
    res = runner.invoke(app, ["followup", "contact", "nobody", "--email", "x@example.org", "--db", db])
    assert res.exit_code == 1 and "no patient 'nobody'" in str(res.exception)
    res = runner.invoke(app, ["followup", "contact", "P1", "--email", "not-an-address", "--db", db])
    assert res.exit_code == 1 and "not-an-address" not in str(res.exception)


def _pg_url(alias: str) -> str:
    from spinereg.registry._settings import _URLS

    return _URLS[alias]


def test_outbox_holds_no_cpr_no_name_no_pseudonym_and_no_token_hash(registry: str, tmp_path: Path) -> None:
    from pypdf import PdfReader

    from spinereg.followup.models import Invitation
    from spinereg.registry.models import AuditEntry

    ids = build(registry)
    out = tmp_path / "outbox"
    run(registry, "2026-03-02", out)
    run(registry, "2026-03-16", out)
    hashes = set(Invitation.objects.using(registry).values_list("token_hash", flat=True))
    texts = {}
    for f in files(out):
        path = out / f
        texts[f] = (" ".join(p.extract_text() for p in PdfReader(path).pages) if f.endswith(".pdf")
                    else path.read_text(encoding="utf-8"))
    assert len(texts) == 6
    tokens = set()
    for f, text in texts.items():
        assert not contains_cpr(text), f
        assert CPR not in text and "020255" not in text
        assert not any(pid in text for pid in ids.values() if len(pid) > 2), f
        assert not any(h in text for h in hashes), f
        found = re.findall(re.escape(BASE) + r"/q/([A-Za-z0-9_-]{43})/", text.replace("\n", ""))
        assert len(found) == 1, f
        tokens.add(found[0])
    # the links of the latest deliveries (the reminders) are the ones stored, hashed
    reminder_tokens = {t for f, t in zip(texts, _tokens(texts), strict=True) if "reminder" in f}
    assert {hash_token(t) for t in reminder_tokens} == hashes
    assert len(tokens) == 6
    # the audit trail names the invitations but holds no address and no token hash
    entries = AuditEntry.objects.using(registry).filter(entity__in=["invitations", "contacts", "delivery_attempts"])
    assert entries.count() > 0
    for e in entries:
        assert "@" not in e.changes and not any(h in e.changes for h in hashes)


def _tokens(texts: dict[str, str]) -> list[str]:
    return [re.findall(re.escape(BASE) + r"/q/([A-Za-z0-9_-]{43})/", t.replace("\n", ""))[0] for t in texts.values()]


class _RefusingSMTP:
    """A minimal SMTP server on localhost that greets, then refuses every recipient (550)."""

    def __init__(self) -> None:
        import socketserver
        import threading

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.wfile.write(b"220 refusing.test ESMTP\r\n")
                for raw in self.rfile:
                    verb = raw.decode("ascii", "replace").strip().split(" ")[0].upper()
                    if verb == "QUIT":
                        self.wfile.write(b"221 bye\r\n")
                        return
                    reply = {"EHLO": b"250 refusing.test\r\n", "HELO": b"250 refusing.test\r\n",
                             "RCPT": b"550 5.1.1 mailbox unavailable\r\n"}.get(verb, b"250 ok\r\n")
                    self.wfile.write(reply)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_an_smtp_server_that_refuses_mail_gives_failed(registry: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from spinereg.followup.models import DeliveryAttempt

    build(registry)
    smtp = _RefusingSMTP()
    try:
        monkeypatch.setenv("SPINEREG_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("SPINEREG_SMTP_PORT", str(smtp.port))
        monkeypatch.setenv("SPINEREG_SMTP_SECURITY", "none")
        r = run(registry, "2026-03-02", tmp_path / "outbox")
    finally:
        smtp.close()
    assert (r.failed, r.invited) == (2, 1)  # two e-mails refused; the letter went out
    assert sorted(i.status for i in invitations(registry).values()) == ["pending", "pending", "sent"]
    errors = sorted(DeliveryAttempt.objects.using(registry).filter(outcome="failed").values_list("error", flat=True))
    assert errors == ["SMTPRecipientsRefused", "SMTPRecipientsRefused"]
    assert not (tmp_path / "outbox" / "mail").exists()


def test_completeness_and_the_non_responder_worklist(registry: str, tmp_path: Path) -> None:
    from spinereg.followup.service import completeness, non_responders

    ids = build(registry)  # every operation has no hospital: one site ""
    w = RegistryWriter(registry, "Hospital A")
    w.update("operations", "OP5", {"hospital": "H2"})
    run(registry, "2026-03-02", tmp_path / "outbox")
    w.create("proms", {"prom_id": "Q1", "patient_id": "P1", "operation_id": "OP1", "timepoint": "3m",
                       "answer_date": "2026-03-20", "nrs_back": 3})
    # on 2026-06-01 (3m window closed the day before), by hand:
    # site "": P1 answered, P2 alive without an answer (no death), P3 died 2026-02-15, P4 (withdrawn: the study
    # engine has no withdrawal category) alive without an answer -> answered 1, died 1, alive 2; rate 1/3
    # site H2: P5 alive without an answer -> rate 0/1.  baseline: everyone answered on day -4.
    c = completeness(registry, date(2026, 6, 1)).set_index(["hospital", "timepoint"])
    assert c.loc[("", "3m")].to_dict() == {"n": 4, "answered": 1, "died_before_answering": 1,
                                          "alive_not_answered": 2, "not_yet_due": 0, "response_rate": 1 / 3}
    assert c.loc[("H2", "3m"), "response_rate"] == 0.0
    assert c.loc[("", "baseline"), "answered"] == 4 and c.loc[("", "1y"), "not_yet_due"] == 3
    assert c.loc[("", "1y"), "died_before_answering"] == 1
    assert completeness(registry, date(2026, 6, 1)).equals(c.reset_index())  # kept: the same frame
    trend = completeness(registry, date(2026, 6, 1), by_month=True)
    assert set(trend["month"]) == {"2026-01", "2026-05"}  # baseline closed 2026-01-01, 3m on 2026-05-31
    work = non_responders(registry, date(2026, 6, 1))
    assert sorted(work["operation_id"]) == ["OP2", "OP5"]  # invited, window closed unanswered, alive
    assert not any("mail" in c for c in work.columns)  # no contact data on the worklist
    assert list(work.loc[work["operation_id"] == "OP2", ["channel", "invitation"]].iloc[0]) == ["letter", "sent"]
    assert non_responders(registry, date(2026, 3, 10)).empty  # nothing reminded or late yet
    # the 3m window closes 2026-05-31: 14 days before (2026-05-17) not yet on the list, 13 days before it is
    assert non_responders(registry, date(2026, 5, 17)).empty
    assert sorted(non_responders(registry, date(2026, 5, 18))["operation_id"]) == ["OP2", "OP5"]
    w.create("proms", {"prom_id": "Q5", "patient_id": ids["P5"], "operation_id": "OP5", "timepoint": "3m",
                       "answer_date": "2026-05-30", "nrs_back": 3})
    again = completeness(registry, date(2026, 6, 1)).set_index(["hospital", "timepoint"])
    assert again.loc[("H2", "3m"), "response_rate"] == 1.0  # a change of the registry is seen at once


E2E_BUILD = """
import json, sys
from datetime import UTC, datetime, timedelta
from spinereg.followup.service import set_contact
from spinereg.registry import RegistryWriter, open_registry, register_patient
alias = open_registry(sys.argv[1])
day = (datetime.now(UTC).date() - timedelta(days=70)).isoformat()  # the 3-month window is open today
w = RegistryWriter(alias, "Hospital A")
ids = [register_patient(alias, cpr, dataset="Hospital A", key=sys.argv[2].encode()) for cpr in sys.argv[3:]]
for n, pid in enumerate(ids):
    w.create("operations", {"operation_id": f"O{n}", "patient_id": pid, "date": day,
                            "procedure_category": "vertebroplasty"})
set_contact(alias, ids[0], "first.patient@example.org")  # the other patient gets a letter
print(json.dumps(ids))
"""
E2E_CPRS = ("0202554322", "1212801234")  # synthetic (valid dates; nobody is meant)


def test_no_cpr_name_or_pseudonym_in_messages_letters_links_output_or_the_server_log(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """The whole path in real processes: the CLI sends (once refused by the mail server, then delivered), the
    patient opens both links on `spinereg serve`, saves a draft, makes a mistake and submits.  Everything a
    patient or an operator sees is scanned: e-mails, letters' PDF text, file names, links, the commands'
    output and the server's log."""
    import json
    import subprocess
    import sys

    from pypdf import PdfReader

    from spinereg.data import entity
    from tests.followup.test_questionnaire_page import ANSWERS
    from tests.web.conftest import cli_env, ok, run_cli, start_server, stop_server

    # the registry has no name to leak: no column of any kind of name for a patient
    assert not [c for c in entity("patients").columns if "name" in c.name.lower()]
    home = tmp_path_factory.mktemp("privacy")
    db, out = f"sqlite:///{home / 'registry.sqlite3'}", home / "outbox"
    ok(run_cli(home, "db", "init", "--db", db))
    made = ok(subprocess.run([sys.executable, "-c", E2E_BUILD, db, KEY.decode(), *E2E_CPRS], env=cli_env(home),
                             capture_output=True, text=True, timeout=120, check=False))
    pseudonyms = json.loads(made.stdout)
    outputs = [run_cli(home, "followup", "send", "--db", db, "--outbox", str(out),
                       SPINEREG_EMAIL_BACKEND="tests.followup.backends.RefusingBackend")]
    assert outputs[0].returncode == 1 and "1 failed" in outputs[0].stderr
    outputs.append(ok(run_cli(home, "followup", "send", "--db", db, "--outbox", str(out))))
    assert "1 invited" in outputs[1].stderr  # the e-mail; the letter went out in the first run
    outputs.append(ok(run_cli(home, "followup", "send", "--db", db, "--outbox", str(out))))  # nothing new
    texts = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        texts[str(path.relative_to(out))] = (
            "\n".join(page.extract_text() for page in PdfReader(path).pages) if path.suffix == ".pdf"
            else path.read_text(encoding="utf-8"))
    assert sorted(f.split("/")[0] for f in texts) == ["letters", "mail"]
    links = [m for t in texts.values() for m in re.findall(r"/q/[A-Za-z0-9_-]{43}/", t.replace("\n", ""))]
    assert len(links) == 2
    server = start_server(home, db)
    try:
        for link in links:
            b = server.browser()
            assert b.get(link).status == 200
            assert b.post_form(link, {"action": "save", "eq5d3l_mo": "2"}).status == 200
            assert b.post_form(link, {**ANSWERS, "odi_3": "9", "action": "submit"}).status == 400
            assert b.post_form(link, {**ANSWERS, "action": "submit"}).status == 200
            assert server.browser().get(link).status == 410
        assert server.browser().get("/q/" + "A" * 43 + "/").status == 404
    finally:
        stop_server(server)
    texts["serve.log"] = server.log.read_text(encoding="utf-8", errors="replace")
    for n, done in enumerate(outputs):
        texts[f"output {n}"] = done.stdout + done.stderr
    texts["links"] = "\n".join(links)
    texts["file names"] = "\n".join(texts)
    assert "/q/" in texts["serve.log"] or "Booting worker" in texts["serve.log"]  # the log was read
    for where, text in texts.items():
        assert not contains_cpr(text), where
        assert not any(cpr in text or cpr[:6] in text for cpr in E2E_CPRS), where
        assert not any(pid in text for pid in pseudonyms), where
        assert "first.patient" not in text or where.startswith("mail/"), where  # the address: only in its e-mail
        assert "Hospital A" not in text and "O0" not in text.split() and "vertebroplasty" not in text, where


def test_the_outbox_writes_an_invitation_as_django_renders_it(registry: str, tmp_path: Path) -> None:
    """The outbox's direct form of a plain ASCII message is Django's own rendering (Date and Message-ID aside);
    other messages go through Django's rendering."""
    from django.core.mail import EmailMessage
    from django.db import connections

    if connections[registry].vendor != "sqlite":
        pytest.skip("no database involved: once is enough")

    from spinereg.followup.letters import invitation_text
    from spinereg.followup.outbox import OutboxBackend

    subject, body = invitation_text(BASE + "/q/" + "x" * 43 + "/", "ABCD2345", date(2026, 5, 31))
    backend = OutboxBackend(folder=tmp_path)

    def sent(msg: EmailMessage, name: str) -> list[str]:
        assert backend.send_messages([msg]) == 1
        return [line for line in (tmp_path / name).read_text(encoding="ascii").split("\n")
                if not line.startswith(("Date:", "Message-ID:"))]

    plain = EmailMessage(subject, body, "registry@example.org", ["p1@example.org"],
                         headers={"X-Spinereg-Reference": "ABCD2345-invitation"})
    django_form = [line for line in plain.message().as_bytes(linesep="\n").decode("ascii").split("\n")
                   if not line.startswith(("Date:", "Message-ID:"))]
    assert sent(plain, "ABCD2345-invitation.eml") == django_form
    other = EmailMessage("Svar på spørgeskemaet", body, "registry@example.org", ["p1@example.org"],
                         headers={"X-Spinereg-Reference": "ABCD2345-reminder"})
    text = (tmp_path / "ABCD2345-reminder.eml")
    backend.send_messages([other])
    assert "Subject: =?utf-8?" in text.read_text(encoding="ascii")  # Django's encoded header

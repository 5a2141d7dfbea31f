"""The patient's page /q/<token>/ on a real `spinereg serve` (its own process, the web settings).

The registry is built and the invitations sent in a subprocess with the registry's standalone settings
(RegistryWriter, send_invitations); the links are read back from `followup list` of that same process.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.web.conftest import Server, cli_env, ok, run_cli, start_server, stop_server

SETUP = """
import json, sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from spinereg.registry import RegistryWriter, open_registry
from spinereg.followup.service import list_invitations, send_invitations
alias = open_registry(sys.argv[1])
today = datetime.now(UTC).date()
w = RegistryWriter(alias, "Hospital A")
for n in ("P1", "P2"):
    w.create("patients", {"patient_id": "pseudo-" + n, "sex": "female", "birth_date": "1950-01-01"})
    w.create("operations", {"operation_id": "op-" + n, "patient_id": "pseudo-" + n,
                            "date": (today - timedelta(days=70)).isoformat(), "procedure_category": "vertebroplasty"})
send_invitations(alias, today=today, outbox=Path(sys.argv[2]), base_url="http://patient.test")
rows = list_invitations(alias)
links = zip(rows["operation_id"], rows["link"])
print(json.dumps({op: link.removeprefix("http://patient.test") for op, link in links}))
"""
ANSWERS = {"eq5d3l_mo": "2", "eq5d3l_sc": "1", "eq5d3l_ua": "2", "eq5d3l_pd": "3", "eq5d3l_ad": "1", "eqvas": "65",
           **{f"odi_{k}": "1" for k in range(1, 11)}, "nrs_back": "4", "nrs_leg": "2"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    home = tmp_path_factory.mktemp("q")
    db = f"sqlite:///{home / 'registry.sqlite3'}"
    ok(run_cli(home, "db", "init", "--db", db))
    done = ok(subprocess.run([sys.executable, "-c", SETUP, db, str(home / "outbox")], env=cli_env(home),
                             capture_output=True, text=True, timeout=120, check=False))
    links = json.loads(done.stdout)
    assert set(links) == {"op-P1", "op-P2"} and all(v.startswith("/q/") for v in links.values())
    server = start_server(home, db)
    try:
        yield server, links
    finally:
        stop_server(server)


def test_the_page_answers_once_and_stores_a_questionnaire(site: tuple[Server, dict[str, str]]) -> None:
    server, links = site
    b = server.browser()
    page = b.get(links["op-P1"])
    assert page.status == 200
    assert 'name="eq5d3l_mo"' in page.body and 'name="odi_10"' in page.body and 'name="eqvas"' in page.body
    assert "pseudo-P1" not in page.body and "op-P1" not in page.body
    bad = b.post_form(links["op-P1"], {**ANSWERS, "odi_3": "9"})
    assert bad.status == 400 and "from 0 to 5" in bad.body
    assert server.sql("SELECT COUNT(*) FROM spinereg_proms") == [(0,)]
    done = b.post_form(links["op-P1"], {**ANSWERS, "action": "submit"})
    assert done.status == 200 and "answers were received" in done.body
    rows = server.sql("SELECT operation_id, patient_id, timepoint, eq5d3l_mo, eq5d3l_pd, eqvas, odi_1, nrs_back "
                      "FROM spinereg_proms")
    assert rows == [("op-P1", "pseudo-P1", "3m", 2, 3, 65, 1, 4)]
    assert server.sql("SELECT status FROM spinereg_followup_invitation WHERE operation_id = 'op-P1'") == [
        ("answered",)]
    actors = {a for (a,) in server.sql("SELECT actor FROM spinereg_audit WHERE entity IN ('proms', 'invitations') "
                                       "AND actor LIKE 'patient:%'")}
    assert len(actors) == 1
    again = server.browser().get(links["op-P1"])
    assert again.status == 410 and "received already" in again.body
    other = server.browser()  # a CSRF token from a page that still has a form, then the used link
    token = other.csrf(other.get(links["op-P2"]))
    assert other.request(links["op-P1"], {"csrfmiddlewaretoken": token, **ANSWERS}).status == 410
    assert server.sql("SELECT COUNT(*) FROM spinereg_proms") == [(1,)]


def test_a_draft_is_kept_for_the_next_visit(site: tuple[Server, dict[str, str]]) -> None:
    server, links = site
    b = server.browser()
    saved = b.post_form(links["op-P2"], {"action": "save", "eq5d3l_mo": "3", "nrs_back": "5"})
    assert saved.status == 200 and "answers so far are saved" in saved.body
    assert b.post_form(links["op-P2"], {"action": "save", "odi_1": "7"}).status == 400  # out of range: refused
    later = server.browser().get(links["op-P2"])  # another visit (no cookies)
    assert later.status == 200
    assert 'name="eq5d3l_mo" value="3" checked' in later.body and 'name="nrs_back" value="5" checked' in later.body
    assert 'name="eq5d3l_mo" value="2" checked' not in later.body
    assert server.sql("SELECT COUNT(*) FROM spinereg_proms WHERE operation_id = 'op-P2'") == [(0,)]
    assert server.sql("SELECT status FROM spinereg_followup_invitation WHERE operation_id = 'op-P2'") == [("sent",)]


def test_unknown_and_expired_links(site: tuple[Server, dict[str, str]]) -> None:
    server, links = site
    assert server.browser().get("/q/" + "A" * 43 + "/").status == 404
    assert server.browser().get("/q/x/").status == 404
    con = sqlite3.connect(server.db_url.removeprefix("sqlite:///"))
    try:
        con.execute("UPDATE spinereg_followup_invitation SET expires_at = '2000-01-01 00:00:00' "
                    "WHERE operation_id = 'op-P2'")
        con.commit()
    finally:
        con.close()
    page = server.browser().get(links["op-P2"])
    assert page.status == 410 and "expired" in page.body


PREPARE = """
import sys
from datetime import UTC, datetime, timedelta
from spinereg.registry import RegistryWriter, open_registry
alias = open_registry(sys.argv[1])
today = datetime.now(UTC).date()
w = RegistryWriter(alias, "Hospital A")
w.create("patients", {"patient_id": "pseudo-M", "sex": "male", "birth_date": "1950-01-01"})
w.create("operations", {"operation_id": "op-M", "patient_id": "pseudo-M",
                        "date": (today - timedelta(days=70)).isoformat(), "procedure_category": "vertebroplasty"})
"""


def test_cli_in_its_own_process_fails_in_one_line_and_lists_csv(tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path_factory.mktemp("cli")
    db = f"sqlite:///{home / 'registry.sqlite3'}"
    ok(run_cli(home, "db", "init", "--db", db))
    ok(subprocess.run([sys.executable, "-c", PREPARE, db], env=cli_env(home), capture_output=True, text=True,
                      timeout=120, check=False))
    ok(run_cli(home, "followup", "contact", "pseudo-M", "--email", "m@example.org", "--db", db))
    failed = run_cli(home, "followup", "send", "--db", db, "--outbox", str(home / "outbox"),
                     SPINEREG_EMAIL_BACKEND="tests.followup.backends.RefusingBackend")
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr and "m@example.org" not in failed.stderr + failed.stdout
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("error: followup send ") and "0 invited" in last and "1 failed" in last
    listed = ok(run_cli(home, "followup", "list", "--db", db, "--format", "csv"))
    rows = listed.stdout.strip().splitlines()
    assert rows[0] == "patient_id,operation_id,timepoint,due_date,status,channel,reference,sent_on,reminded_on,link"
    assert len(rows) == 2 and ",pending,email," in rows[1] and rows[1].startswith("pseudo-M,op-M,3m,")
    sent = ok(run_cli(home, "followup", "send", "--db", db, "--outbox", str(home / "outbox")))
    assert "1 invited" in sent.stderr
    rows = ok(run_cli(home, "followup", "list", "--db", db)).stdout.strip().splitlines()
    assert ",sent,email," in rows[1] and rows[1].endswith(",(sent; token not stored)")
    assert len(list((home / "outbox" / "mail").glob("*.eml"))) == 1

"""The staff follow-up pages over HTTP on a live server (the permission matrix, tests/web/test_permission_matrix.py,
covers who may open them): the worklist per site, paper or telephone entry with the import's messages, consent
and withdrawal, the e-mail address, each audited and written under the user's name.

The seeded registry (tests/web/_support.py) has one operation per site: wt-op-1 on 2025-03-11 at WT-H01 (site s1)
and wt-op-2 on 2025-03-12 at WT-H02 (s2).  ``followup send --today 2026-06-01`` invites both to their 1-year
questionnaire (window days 270-545: 2025-12-06 to 2026-09-07 for wt-op-1).  The pages use the real date, after
2026-09-07: both 1-year windows have closed unanswered, so both are on the worklist.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.web._support import Seeded, csrf_token, login_staff, seeded_sqlite, web_env
from tests.web.conftest import Server, ok, run_cli, start_server, stop_server


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Seeded]]:
    home = tmp_path_factory.mktemp("followup-staff")
    seeded = seeded_sqlite(home, tmp_path_factory.mktemp("seed-template"))
    ok(run_cli(home, "followup", "send", "--db", seeded.db_url, "--today", "2026-06-01", "--outbox",
               str(home / "outbox")))
    server = start_server(home, seeded.db_url, env=web_env(home, seeded.db_url))
    try:
        yield server, seeded
    finally:
        stop_server(server)


def test_worklist_is_per_site_and_national_for_an_admin(live: tuple[Server, Seeded]) -> None:
    server, _seeded = live
    assert datetime.now(UTC).date().isoformat() > "2026-09-07"  # the module docstring's premise
    own = login_staff(server, "surgeon-s1", "surgeon").get("/followup/worklist/")
    assert own.status == 200
    assert 'data-operation="wt-op-1" data-timepoint="1y"' in own.body
    assert "wt-op-2" not in own.body  # another site's
    everyone = login_staff(server, "admin-s1", "admin").get("/followup/worklist/")
    assert 'data-operation="wt-op-1"' in everyone.body and 'data-operation="wt-op-2"' in everyone.body


def test_paper_entry_checked_by_the_import_s_rules_then_written_as_phone(live: tuple[Server, Seeded]) -> None:
    server, seeded = live
    b = login_staff(server, "surgeon-s1", "surgeon")
    path = "/followup/operations/wt-op-1/paper/"
    page = b.get(path + "?timepoint=1y")
    assert page.status == 200 and '<option value="1y" selected>' in page.body
    form = {"csrfmiddlewaretoken": b.csrf(page), "mode": "phone", "timepoint": "1y", "answer_date": "2026-06-10",
            "eq5d3l_mo": "7", "eqvas": "65", "nrs_back": "4"}
    refused = b.request(path, form)
    text = html.unescape(refused.body)
    errors = re.findall(r'<ul class="errorlist"[^>]*>(.*?)</ul>', text, re.S)
    assert refused.status == 200
    assert errors == ["<li>eq5d3l_mo (eq5d3l MO) must be within 1..3 (value '7')</li>"]  # the writer's
    assert server.sql("SELECT COUNT(*) FROM spinereg_proms WHERE operation_id = 'wt-op-1'") == [(0,)]
    done = b.request(path, {**form, "eq5d3l_mo": "2"})
    assert done.status == 302 and done.location() == f"/followup/patients/{seeded.records['s1']['pseudonym']}/"
    rows = server.sql("SELECT prom_id, timepoint, answer_date, mode, eq5d3l_mo, eqvas, nrs_back, odi_1 "
                      "FROM spinereg_proms WHERE operation_id = 'wt-op-1'")
    assert [r[1:] for r in rows] == [("1y", "2026-06-10", "phone", 2, 65, 4, None)]
    audit = server.sql("SELECT actor, action FROM spinereg_audit WHERE entity = 'proms' AND record_key = ?", rows[0][0])
    assert audit == [("surgeon-s1", "create")]
    # the open invitation is closed: its link no longer works, and the worklist drops the time point
    assert server.sql("SELECT status FROM spinereg_followup_invitation WHERE operation_id = 'wt-op-1' "
                      "AND timepoint = '1y'") == [("answered",)]
    assert "wt-op-1" not in b.get("/followup/worklist/").body


def test_consent_withdrawal_and_contact(live: tuple[Server, Seeded]) -> None:
    server, seeded = live
    pid = seeded.records["s1"]["pseudonym"]
    b = login_staff(server, "data_manager-s1", "data_manager")
    base = f"/followup/patients/{pid}/"
    assert "Not recorded" in b.get(base).body
    page = b.get(base + "consent/")
    future = b.request(base + "consent/", {"csrfmiddlewaretoken": b.csrf(page), "status": "withdrawn",
                                           "on": "2999-01-01"})
    assert future.status == 200 and "The date is in the future." in future.body
    assert b.request(base + "consent/", {"csrfmiddlewaretoken": csrf_token(b), "status": "withdrawn",
                                         "on": "2026-11-30"}).status == 302
    assert '<dd id="consent-status">Withdrawn</dd>' in b.get(base).body
    assert server.sql("SELECT status, \"on\", by FROM spinereg_followup_consent WHERE patient_id = ?", pid) == [
        ("withdrawn", "2026-11-30", "data_manager-s1")]
    entry = server.sql("SELECT actor, changes FROM spinereg_audit WHERE entity = 'consents'")
    assert [(a, json.loads(c)["new"]["status"]) for a, c in entry] == [("data_manager-s1", "withdrawn")]
    # the e-mail address: refused when malformed, never shown, audited without the address
    bad = b.request(base + "contact/", {"csrfmiddlewaretoken": csrf_token(b), "email": "not-an-address"})
    assert bad.status == 200 and "This is not a valid e-mail address." in html.unescape(bad.body)
    assert b.request(base + "contact/", {"csrfmiddlewaretoken": csrf_token(b),
                                         "email": "someone@example.org"}).status == 302
    shown = b.get(base).body
    assert "e-mail (an address is recorded)" in shown and "someone@example.org" not in shown
    assert "someone@example.org" not in b.get(base + "contact/").body
    trail = server.sql("SELECT actor, changes FROM spinereg_audit WHERE entity = 'contacts'")
    assert [(a, json.loads(c)["new"]["has_email"]) for a, c in trail] == [("data_manager-s1", True)]
    assert "example.org" not in repr(trail)

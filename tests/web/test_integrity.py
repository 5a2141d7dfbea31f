"""Imaging review and record integrity pages (review queue and form, lock/e-sign, unlock, audit view,
worklists), driven over HTTP against a real ``spinereg serve`` on a synthetic registry plus records
written by hand through the registry's write service (so every expected value is counted by hand or
read from the database independently of the pages)."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.web.conftest import PASSWORD, Browser, Server, cli_env, ok, run_cli, run_parallel, start_server, stop_server

#: Operations written by hand: id, hospital, date, treated levels.  Findings exist for OPW4/L4 and OPW5/T9.
HAND_OPERATIONS = [("OPW1", "SYN-H01", "2024-01-10", ["T12", "L1"]), ("OPW2", "SYN-H01", "2024-02-01", ["L2"]),
                   ("OPW3", "SYN-H02", "2024-01-05", ["L3"]), ("OPW4", "SYN-H01", "2024-03-01", ["L4"]),
                   ("OPW5", "SYN-H01", "2023-12-01", ["T8", "T9"])]

SETUP = textwrap.dedent("""
    import json, sys
    from spinereg.registry import RegistryWriter, open_registry
    alias = open_registry(sys.argv[1])
    from spinereg.registry.models import Patient
    pid = (Patient.objects.using(alias).filter(death_date__isnull=True).order_by("patient_id")
           .values_list("patient_id", flat=True)[0])
    w = RegistryWriter(alias, "clinic setup", who="setup")
    for op, hosp, d, levels in json.loads(sys.argv[2]):
        w.create("operations", {"operation_id": op, "patient_id": pid, "date": d, "hospital": hosp,
                                "procedure_category": "vertebroplasty"})
        for lv in levels:
            w.create("treated_levels", {"operation_id": op, "level": lv, "cement_volume_ml": 3.5})
    for fid, op, lv, d in (("IFW4", "OPW4", "L4", "2024-03-02"), ("IFW5", "OPW5", "T9", "2023-12-02")):
        w.create("imaging_findings", {"finding_id": fid, "operation_id": op, "level": lv, "modality": "xray",
                                      "date": d, "leak": False})
""")


def registry_python(server: Server, code: str, *args: str) -> str:
    """Run ``code`` against the test's registry in a process of its own (standalone registry settings)."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code), server.db_url, *args],
                          env=cli_env(server.home), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("integrity")
    db = f"sqlite:///{home / 'registry.sqlite3'}"
    ok(run_cli(home, "db", "init", "--db", db))
    ok(run_cli(home, "synth", "--patients", "120", "--seed", "11", "--db", db))
    done = subprocess.run([sys.executable, "-c", SETUP, db, json.dumps(HAND_OPERATIONS)], env=cli_env(home),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    run_parallel(home, ["site", "add", "h01", "--name", "Hospital 1", "--hospital", "SYN-H01", "--db", db],
                 ["site", "add", "h02", "--name", "Hospital 2", "--hospital", "SYN-H02", "--db", db])
    users = [("reviewer1", "reviewer", "h01"), ("reviewer2", "reviewer", "h02"), ("dm1", "data_manager", "h01"),
             ("surgeon1", "surgeon", "h01"), ("auditor1", "auditor", None), ("admin1", "admin", None)]
    run_parallel(home, *[["user", "add", name, "--role", role, *(["--site", site] if site else []), "--db", db]
                         for name, role, site in users], SPINEREG_PASSWORD=PASSWORD)
    srv = start_server(home, db)
    try:
        yield srv
    finally:
        stop_server(srv)


def open_levels_sql(server: Server, hospital: str) -> list[str]:
    """Operations at ``hospital`` with a treated level lacking a finding, oldest first (read directly)."""
    rows = server.sql(
        "SELECT DISTINCT o.operation_id, o.date FROM spinereg_operations o JOIN spinereg_treated_levels t "
        "ON t.operation_id = o.operation_id WHERE o.hospital = ? AND NOT EXISTS (SELECT 1 FROM "
        "spinereg_imaging_findings i WHERE i.operation_id = t.operation_id AND i.level = t.level) "
        "ORDER BY o.date, o.operation_id", hospital)
    return [r[0] for r in rows]


def queue_ids(page: str) -> list[str]:
    return re.findall(r'<a href="/review/operations/([^/]+)/">', page)


def field_errors(page: str, name: str) -> str:
    """The error list Django renders for field ``name`` (empty when it has none)."""
    m = re.search(rf'<ul class="errorlist" id="id_{re.escape(name)}_error">(.*?)</ul>', page, re.S)
    return m.group(1) if m else ""


def findings(server: Server, op: str) -> dict[str, tuple[object, ...]]:
    rows = server.sql("SELECT level, modality, date, leak, leak_type, leak_location, symptomatic, finding_id "
                      "FROM spinereg_imaging_findings WHERE operation_id = ?", op)
    return {r[0]: r[1:] for r in rows}


# -- imaging review ------------------------------------------------------------------------------

def test_queue_lists_exactly_the_operations_awaiting_review(server: Server) -> None:
    synthetic = [op for op in open_levels_sql(server, "SYN-H01") if not op.startswith("OPW")]
    # by hand: OPW1 (no finding), OPW2 (no finding), OPW5 (T8 has none); OPW4 is reviewed, OPW3 elsewhere
    expected = sorted([*synthetic, "OPW5", "OPW1", "OPW2"],
                      key=lambda op: (dict(server.sql("SELECT operation_id, date FROM spinereg_operations"))[op], op))
    assert expected == open_levels_sql(server, "SYN-H01")
    page = server.login("reviewer1").get("/review/")
    assert page.status == 200
    assert queue_ids(page.body) == expected
    assert queue_ids(page.body).index("OPW5") < queue_ids(page.body).index("OPW1") < queue_ids(page.body).index("OPW2")
    other = server.login("reviewer2").get("/review/")
    assert "OPW3" in queue_ids(other.body) and not set(queue_ids(other.body)) & {"OPW1", "OPW2", "OPW5"}


def test_review_pages_need_the_capability_and_the_site(server: Server) -> None:
    surgeon = server.login("surgeon1")
    assert surgeon.get("/review/").status == 403
    assert surgeon.get("/review/operations/OPW1/").status == 403
    reviewer = server.login("reviewer1")
    assert reviewer.get("/review/operations/OPW3/").status == 404  # another site's operation
    assert reviewer.get("/review/operations/NO-SUCH/").status == 404


def test_review_form_is_generated_from_the_schema_with_the_criteria(server: Server) -> None:
    page = server.login("reviewer1").get("/review/operations/OPW1/")
    assert page.status == 200
    for level in ("T12", "L1"):
        for column in ("leak", "leak_type", "leak_location", "symptomatic"):
            assert f'name="{level}-{column}"' in page.body
    for code in ("yeom_b", "yeom_s", "yeom_c"):
        assert f'value="{code}"' in page.body
    assert 'name="modality"' in page.body and 'name="date"' in page.body
    assert "new clinical signs attributable to it" in page.body
    css = re.search(r'<link rel="stylesheet" href="(/static/web/integrity\.css)">', page.body)
    assert css and server.browser().get(css.group(1)).status == 200
    # every visible input has a label
    ids = set(re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', page.body))
    labelled = set(re.findall(r'<label[^>]*\bfor="([^"]+)"', page.body))
    assert ids and ids <= labelled | {i for i in ids if i.endswith(("_0", "_1", "_2"))}


def test_review_saves_two_levels_with_mechanism_and_location_apart(server: Server) -> None:
    b = server.login("reviewer1")
    resp = b.post_form("/review/operations/OPW1/", {
        "modality": "ct", "date": "2024-01-12",
        "T12-leak": "true", "T12-leak_type": "yeom_b", "T12-leak_location": "epidural_foraminal",
        "T12-symptomatic": "false", "L1-leak": "false", "L1-leak_type": "", "L1-leak_location": "",
        "L1-symptomatic": ""})
    assert resp.status == 302, field_errors(resp.body, "T12-leak_location") or resp.body[-3000:]
    got = findings(server, "OPW1")
    assert set(got) == {"T12", "L1"}
    assert got["T12"][:6] == ("ct", "2024-01-12", 1, "yeom_b", "epidural_foraminal", 0)
    assert got["L1"][:6] == ("ct", "2024-01-12", 0, None, None, None)
    dataset = server.sql("SELECT d.name FROM spinereg_imaging_findings i JOIN spinereg_dataset d "
                         "ON d.id = i.dataset_id WHERE i.operation_id = 'OPW1'")
    assert {r[0] for r in dataset} == {"web registry"}
    actors = server.sql("SELECT actor, action FROM spinereg_audit WHERE entity = 'imaging_findings' "
                        "AND record_key IN (?, ?)", got["T12"][6], got["L1"][6])
    assert sorted(actors) == [("reviewer1", "create"), ("reviewer1", "create")]
    assert "OPW1" not in queue_ids(b.get("/review/").body)


def test_leak_type_without_a_leak_is_reported_on_its_field(server: Server) -> None:
    b = server.login("reviewer1")
    data = {"modality": "xray", "date": "2024-02-03", "L2-leak": "false", "L2-leak_type": "yeom_c",
            "L2-leak_location": "", "L2-symptomatic": ""}
    resp = b.post_form("/review/operations/OPW2/", data)
    assert resp.status == 200
    assert "leak mechanism given but no leak recorded" in field_errors(resp.body, "L2-leak_type")
    assert field_errors(resp.body, "L2-leak") == ""
    assert findings(server, "OPW2") == {}
    # a missing leak (required by the schema) is the import's error, on its field
    resp = b.post_form("/review/operations/OPW2/", {**data, "L2-leak": "", "L2-leak_type": ""})
    assert "required" in field_errors(resp.body, "L2-leak").lower()
    assert findings(server, "OPW2") == {}
    # the warning confirmed: written (and the quality worklist reports it)
    resp = b.post_form("/review/operations/OPW2/", {**data, "confirm_warnings": "on"})
    assert resp.status == 302
    assert findings(server, "OPW2")["L2"][2:4] == (0, "yeom_c")


def test_review_form_never_shows_a_cpr_number_back(server: Server) -> None:
    b = server.login("reviewer1")
    cpr = "010101-1234"
    resp = b.post_form("/review/operations/OPW2/", {"modality": "xray", "date": cpr, "L2-leak": "false",
                                                    "reason": f"patient {cpr}"})
    assert resp.status == 200
    assert "CPR number" in field_errors(resp.body, "date") and "CPR number" in field_errors(resp.body, "reason")
    assert cpr not in resp.body and cpr.replace("-", "") not in resp.body
    assert findings(server, "OPW2")["L2"][1] == "2024-02-03"  # unchanged


def test_review_levels_are_written_all_or_nothing(server: Server) -> None:
    # OPW5: T8 has no finding, T9 has one, locked.  T8's new finding is written first, then T9's change
    # is refused (no reason): T8's must be rolled back with it.
    registry_python(server, """
        import sys
        from spinereg.registry import RegistryWriter, open_registry
        alias = open_registry(sys.argv[1])
        RegistryWriter(alias, "clinic setup").lock("imaging_findings", "IFW5", who="setup",
                                                   signature_meaning="reviewed")
    """)
    b = server.login("reviewer1")
    data = {"modality": "xray", "date": "2023-12-02", "T8-leak": "false", "T9-leak": "true",
            "T9-leak_type": "yeom_s", "T9-leak_location": "", "T9-symptomatic": "false"}
    resp = b.post_form("/review/operations/OPW5/", data)
    assert resp.status == 200
    assert "locked" in field_errors(resp.body, "reason")
    assert set(findings(server, "OPW5")) == {"T9"} and findings(server, "OPW5")["T9"][2] == 0
    n_audit = server.sql("SELECT COUNT(*) FROM spinereg_audit WHERE record_key LIKE 'OPW5-%'")[0][0]
    assert n_audit == 0
    resp = b.post_form("/review/operations/OPW5/", {**data, "reason": "leak seen on second reading"})
    assert resp.status == 302
    got = findings(server, "OPW5")
    assert set(got) == {"T8", "T9"} and got["T9"][2:4] == (1, "yeom_s") and got["T8"][2] == 0
    # the existing finding was changed within its own dataset, the new one went to the web dataset
    names = dict(server.sql("SELECT i.level, d.name FROM spinereg_imaging_findings i JOIN spinereg_dataset d "
                            "ON d.id = i.dataset_id WHERE i.operation_id = 'OPW5'"))
    assert names == {"T8": "web registry", "T9": "clinic setup"}


# -- lock, e-sign, unlock ------------------------------------------------------------------------

def lock_entries(server: Server, op: str) -> list[tuple[object, ...]]:
    return server.sql("SELECT action, actor, changes, reason FROM spinereg_audit WHERE entity = 'operations' "
                      "AND record_key = ? AND action IN ('lock', 'unlock') ORDER BY id", op)


def test_lock_needs_the_password_again(server: Server) -> None:
    b = server.login("dm1")
    status = b.get("/records/operations/OPW1/")
    assert status.status == 200 and "Not locked" in status.body
    resp = b.post_form("/records/operations/OPW1/lock/", {"signature_meaning": "reviewed",
                                                          "password": "not-the-password-at-all"})
    assert resp.status == 200
    assert "password is not correct" in field_errors(resp.body, "password")
    assert lock_entries(server, "OPW1") == []
    assert b.get("/records/operations/OPW1/").status == 200  # still logged in: a wrong signature is no lockout
    resp = b.post_form("/records/operations/OPW1/lock/", {"signature_meaning": "reviewed", "password": PASSWORD})
    assert resp.status == 302 and resp.location() == "/records/operations/OPW1/"
    [(action, actor, changes, _reason)] = lock_entries(server, "OPW1")
    assert (action, actor) == ("lock", "dm1")
    assert json.loads(str(changes))["new"]["signature_meaning"] == "reviewed"
    page = b.get("/records/operations/OPW1/")
    signed = re.search(r"Signed by</dt><dd>([^<]*)</dd>.*?Meaning</dt><dd>([^<]*)</dd>", page.body, re.S)
    assert signed and signed.groups() == ("dm1", "reviewed")
    # the imaging review is signed apart: every finding of the operation at once
    reviewer = server.login("reviewer1")
    resp = reviewer.post_form("/records/operations/OPW1/lock/?part=imaging", {"signature_meaning": "reviewed",
                                                                              "password": PASSWORD})
    assert resp.status == 302
    locks = server.sql("SELECT record_key, actor FROM spinereg_audit WHERE entity = 'imaging_findings' "
                       "AND action = 'lock' AND record_key LIKE 'OPW1-%' ORDER BY record_key")
    assert locks == [("OPW1-L1", "reviewer1"), ("OPW1-T12", "reviewer1")]
    assert len(lock_entries(server, "OPW1")) == 1  # the operation's own lock is apart
    # another site's operation: 404; a surgeon (lock) may not unlock
    assert b.get("/records/operations/OPW3/lock/").status == 404
    assert server.login("surgeon1").get("/records/operations/OPW1/unlock/").status == 403


def test_unlock_needs_a_reason(server: Server) -> None:
    b = server.login("dm1")
    resp = b.post_form("/records/operations/OPW1/unlock/", {"reason": "   "})
    assert resp.status == 200
    assert field_errors(resp.body, "reason")
    assert [e[0] for e in lock_entries(server, "OPW1")] == ["lock"]
    resp = b.post_form("/records/operations/OPW1/unlock/", {"reason": "volume to be corrected"})
    assert resp.status == 302
    assert [(e[0], e[1], e[3]) for e in lock_entries(server, "OPW1")] == [
        ("lock", "dm1", ""), ("unlock", "dm1", "volume to be corrected")]
    assert "Not locked" in b.get("/records/operations/OPW1/").body


def test_reason_with_a_cpr_number_is_refused_and_not_shown(server: Server) -> None:
    b = server.login("dm1")
    assert b.post_form("/records/operations/OPW1/lock/", {"signature_meaning": "authored",
                                                          "password": PASSWORD}).status == 302
    cpr = "010101-1234"
    resp = b.post_form("/records/operations/OPW1/unlock/", {"reason": f"asked by patient {cpr}"})
    assert resp.status == 200 and "CPR number" in resp.body
    assert cpr not in resp.body and "0101011234" not in resp.body
    assert [e[0] for e in lock_entries(server, "OPW1")] == ["lock", "unlock", "lock"]


# -- audit --------------------------------------------------------------------------------------

def test_audit_per_record_shows_each_change_with_its_reason(server: Server) -> None:
    # a change to a locked operation's treated level, with a reason (as the clinical form makes it)
    registry_python(server, """
        import sys
        from spinereg.registry import RegistryWriter, open_registry
        alias = open_registry(sys.argv[1])
        RegistryWriter(alias, "clinic setup", who="dm1").update(
            "treated_levels", "OPW1/T12", {"cement_volume_ml": 4.25}, reason="volume corrected from the chart")
    """)
    b = server.login("auditor1")
    page = b.get("/audit/operations/OPW1/")
    assert page.status == 200
    rows = re.findall(r'<tr class="entry">(.*?)</tr>', page.body, re.S)
    expected = server.sql("SELECT id, action FROM spinereg_audit WHERE (entity = 'operations' AND record_key = "
                          "'OPW1') OR (entity = 'treated_levels' AND record_key LIKE 'OPW1/%') ORDER BY id")
    assert [re.search(r'class="action">(\w+)<', r).group(1) for r in rows] == [a for _i, a in expected]  # type: ignore[union-attr]
    update = next(r for r in rows if 'class="action">update<' in r)
    assert "cement_volume_ml</span>: 3.5 → 4.25" in update
    assert "volume corrected from the chart" in update and "dm1" in update
    unlock = next(r for r in rows if 'class="action">unlock<' in r)
    assert "volume to be corrected" in unlock
    finding = b.get("/audit/findings/IFW5/")
    assert "leak</span>: no → yes" in finding.body and "leak_type</span>: — → yeom_s" in finding.body
    assert "leak seen on second reading" in finding.body
    # a patient created by an import: the values come from the import's snapshot
    [(patient,)] = server.sql("SELECT patient_id FROM spinereg_operations WHERE operation_id = 'OPW1'")
    created = b.get(f"/audit/patients/{patient}/")
    assert created.status == 200 and 'class="action">create<' in created.body
    assert f"patient_id</span>: {patient}</li>" in created.body
    # the CSV holds the same entries
    dl = b.get("/audit/operations/OPW1/?format=csv")
    assert dl.status == 200 and dl.headers["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(dl.body)))
    assert [(int(r["id"]), r["action"]) for r in table] == [(int(i), str(a)) for i, a in expected]
    assert any(r["reason"] == "volume corrected from the chart" and json.loads(r["old"]) == {"cement_volume_ml": 3.5}
               for r in table)


def test_audit_per_user_with_date_filter(server: Server) -> None:
    b = server.login("auditor1")
    n = server.sql("SELECT COUNT(*) FROM spinereg_audit WHERE actor = 'reviewer1'")[0][0]
    assert n == 7  # creates: OPW1 T12 + L1, OPW2 L2, OPW5 T8; the update of OPW5 T9; locks: OPW1 T12 + L1
    page = b.get("/audit/users/reviewer1/")
    assert page.status == 200
    assert len(re.findall(r'<tr class="entry">', page.body)) == n
    today = datetime.now(UTC).date()
    for query, count in ((f"since={today}", n), (f"until={today}", n), (f"since={today + timedelta(days=1)}", 0),
                         (f"until={today - timedelta(days=1)}", 0)):
        got = b.get(f"/audit/users/reviewer1/?{query}")
        assert len(re.findall(r'<tr class="entry">', got.body)) == count, query
    dl = b.get(f"/audit/users/reviewer1/?since={today}&format=csv")
    assert len(list(csv.DictReader(io.StringIO(dl.body)))) == n
    # the search form leads to the user's page
    found = b.post_form("/audit/", {"actor": "reviewer1", "since": str(today), "until": ""})
    assert found.status == 302 and found.location() == f"/audit/users/reviewer1/?since={today}"


def test_audit_search_does_not_echo_a_cpr_number(server: Server) -> None:
    b = server.login("auditor1")
    page = b.post_form("/audit/", {"actor": "0101011234", "since": "", "until": ""})
    assert page.status == 200 and "CPR number" in page.body and "0101011234" not in page.body


@pytest.mark.parametrize(("user", "status"), [("auditor1", 200), ("surgeon1", 403), ("reviewer1", 403), ("dm1", 403)])
def test_audit_is_for_auditors(server: Server, user: str, status: int) -> None:
    b = server.login(user)
    for path in ("/audit/", "/audit/users/reviewer1/", "/audit/operations/OPW1/", "/audit/findings/IFW5/"):
        assert b.get(path).status == status, path


# -- worklists ----------------------------------------------------------------------------------

DIRECT = """
    import json, sys
    from spinereg.registry import missing_forms, open_registry, quality_problems
    alias = open_registry(sys.argv[1])
    m = missing_forms(alias)
    every = m["form"].value_counts().to_dict()
    m = m[m["hospital"] == "SYN-H01"]
    q = quality_problems(alias)
    q = q[q["hospital"] == "SYN-H01"]
    print(json.dumps({"missing": sorted([r.operation_id, r.form] for r in m.itertuples()),
                      "problems": sorted([r.table, r.key, r.column, r.rule] for r in q.itertuples()),
                      "severity": q["severity"].value_counts().to_dict(), "every": every}))
"""


def all_pages(b: Browser, path: str, row: str) -> tuple[list[str], int]:
    """Every row of a paginated list (10 a page, following the Next links), and the number of pages."""
    rows: list[str] = []
    url = f"{path}?per_page=10&page=1"
    pages = 0
    while True:
        page = b.get(url)
        assert page.status == 200
        pages += 1
        found = re.findall(rf'<tr class="{row}">(.*?)</tr>', page.body, re.S)
        assert len(found) <= 10
        rows += found
        nxt = re.search(r'<a href="(\?[^"]+)">Next</a>', page.body)
        if nxt is None:
            return rows, pages
        url = path + nxt.group(1).replace("&amp;", "&")


def test_worklists_equal_the_registry_functions_at_the_site(server: Server) -> None:
    direct = json.loads(registry_python(server, DIRECT))
    assert ["OPW2", "imaging_review"] not in direct["missing"]  # reviewed above
    assert ["OPW3", "imaging_review"] not in direct["missing"]  # another site
    b = server.login("dm1")
    rows, pages = all_pages(b, "/worklists/missing-forms/", "missing")
    got = sorted([re.search(r">([^<]+)</a></td>", r).group(1),  # type: ignore[union-attr]
                  re.findall(r"<td>(?:<a [^>]*>)?([a-z_]+)(?:</a>)?</td>", r)[0]] for r in rows)
    assert got == direct["missing"] and pages == -(-len(got) // 10) > 1
    first = b.get("/worklists/missing-forms/")
    for form in ("treated_levels", "imaging_review", "baseline_questionnaire"):
        n = sum(1 for _op, f in direct["missing"] if f == form)
        assert f'data-form="{form}">{n}<' in first.body
    problems, _pages = all_pages(b, "/worklists/quality/", "problem")
    cells = [re.findall(r"<td>([^<]*)</td>", r) for r in problems]
    assert sorted([c[0], c[1], c[2], c[4]] for c in cells) == direct["problems"]
    assert ["imaging_findings", "OPW2-L2", "leak_type", "leak-type"] in direct["problems"]
    quality = b.get("/worklists/quality/")
    assert f'data-severity="warning">{direct["severity"].get("warning", 0)}<' in quality.body
    assert f'data-severity="error">{direct["severity"].get("error", 0)}<' in quality.body
    assert server.login("auditor1").get("/worklists/missing-forms/").status == 403
    # a write since: the worklist is computed again (not an old result)
    n = sum(1 for _op, f in direct["missing"] if f == "treated_levels")
    registry_python(server, """
        import sys
        from spinereg.registry import RegistryWriter, open_registry
        alias = open_registry(sys.argv[1])
        from spinereg.registry.models import Operation
        patient = Operation.objects.using(alias).get(operation_id="OPW1").patient_id
        RegistryWriter(alias, "clinic setup", who="setup").create("operations", {
            "operation_id": "OPW6", "patient_id": patient, "date": "2024-04-01", "hospital": "SYN-H01",
            "procedure_category": "kyphoplasty"})
    """)
    assert f'data-form="treated_levels">{n + 1}<' in b.get("/worklists/missing-forms/").body


def test_no_page_shows_a_cpr_number(server: Server) -> None:
    b = server.login("auditor1")
    for path in ("/audit/operations/OPW1/", "/audit/users/reviewer1/", "/audit/users/setup/"):
        body = b.get(path).body
        assert not re.search(r"\b\d{6}-?\d{4}\b", body), path



def test_national_role_sees_every_site_and_filters_by_site(server: Server) -> None:
    import base64

    from django_otp.oath import totp

    direct = json.loads(registry_python(server, DIRECT))
    b = server.login("admin1")  # an admin needs a second factor first
    setup = b.get("/accounts/totp/")
    secret = re.search(r'<code id="totp-secret">([A-Z2-7=]+)</code>', setup.body)
    assert secret
    key = base64.b32decode(secret.group(1))
    assert b.request("/accounts/totp/", {"csrfmiddlewaretoken": b.csrf(setup),
                                         "otp_token": f"{totp(key):06d}"}).status == 302
    every = b.get("/worklists/missing-forms/")
    assert every.status == 200 and '<select id="site" name="site">' in every.body
    for form, n in direct["every"].items():
        assert f'data-form="{form}">{n}<' in every.body
    assert sum(direct["every"].values()) > len(direct["missing"])  # other sites' rows are there too
    one = b.get("/worklists/missing-forms/?site=h01")
    for form in ("treated_levels", "imaging_review", "baseline_questionnaire"):
        n = sum(1 for _op, f in direct["missing"] if f == form)
        assert f'data-form="{form}">{n}<' in one.body

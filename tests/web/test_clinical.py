"""Clinical pages of the web registry (register and find by CPR number, death, operation form with
treated levels, complications), driven over HTTP against one ``spinereg serve`` per module.

Expected values come from outside the code under test: a CPR number's sex and birth date by hand
(CPR-kontoret's century rule), its pseudonym as HMAC-SHA256 of the ten digits with the key file the
server created, the import's messages as ``spinereg validate`` reports them, and the database read
directly.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import (
    PASSWORD,
    Browser,
    Response,
    Server,
    cli_env,
    ok,
    run_cli,
    run_parallel,
    start_server,
    stop_server,
)

# Hand-checked CPR numbers (not real people's as far as we know; none is stored anywhere):
# 010190-1235: SSSS starts with 1 -> 1900s: 1990-01-01; last digit 5 odd -> male.
# 150262-4322: SSSS starts with 4, YY 62 >= 37 -> 1900s: 1962-02-15; last digit 2 even -> female.
# 010105-4002: SSSS starts with 4, YY 05 <= 36 -> 2000s: 2005-01-01; female.
MALE_1990 = "010190-1235"
FEMALE_1962 = "150262-4322"
FEMALE_2005 = "010105-4002"
CPRS = (MALE_1990, FEMALE_1962, FEMALE_2005, "320190-1235", "020202-1234")
SEEN: list[str] = []  # every response body of this module, scanned for CPR numbers at the end


class RecordingBrowser(Browser):
    def request(self, path: str, data: dict[str, str] | None = None, headers: dict[str, str] | None = None,
                ) -> Response:
        resp = super().request(path, data, headers)
        SEEN.append(resp.body + "\n" + "\n".join(f"{k}: {v}" for k, v in resp.headers.items()))
        return resp


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A synthetic registry with sites h01 (SYN-H01) and h02 (SYN-H02): surgeons at each, a data manager
    and a reviewer at h01."""
    home = tmp_path_factory.mktemp("clinical")
    db = f"sqlite:///{home / 'registry.sqlite3'}"
    ok(run_cli(home, "db", "init", "--db", db))
    ok(run_cli(home, "synth", "--patients", "60", "--seed", "11", "--db", db))
    run_parallel(home, ["site", "add", "h01", "--name", "Hospital 1", "--hospital", "SYN-H01", "--db", db],
                 ["site", "add", "h02", "--name", "Hospital 2", "--hospital", "SYN-H02", "--db", db])
    users = [("surg1", "surgeon", "h01"), ("surg2", "surgeon", "h02"), ("dm1", "data_manager", "h01"),
             ("rev1", "reviewer", "h01")]
    run_parallel(home, *[["user", "add", name, "--role", role, "--site", site, "--db", db]
                         for name, role, site in users], SPINEREG_PASSWORD=PASSWORD)
    srv = start_server(home, db)
    try:
        yield srv
    finally:
        stop_server(srv)


def login(server: Server, name: str) -> Browser:
    b = RecordingBrowser(server.base)
    assert b.login(name, PASSWORD).status == 302
    return b


def pseudonym(server: Server, cpr: str) -> str:
    key = bytes.fromhex((server.home / "site.key").read_text().strip())
    return hmac.new(key, cpr.replace("-", "").encode(), hashlib.sha256).hexdigest()[:32]


def registered(server: Server, cpr: str) -> str:
    """The patient's pseudonym, registered by surg1 (site h01) if not yet (registering is idempotent)."""
    b = login(server, "surg1")
    resp = post(b, "/clinical/register/", {"cpr": cpr})
    assert resp.status == 302, resp.body[:2000]
    return pseudonym(server, cpr)


def field_group(body: str, name: str) -> str:
    """The HTML of one form field's group (label, help, errors, input) on the page."""
    m = re.search(rf'<div class="field">((?:(?!<div class="field">).)*?name="{re.escape(name)}".*?)</div>\s*'
                  rf'(?=<div class="field|</fieldset>|<button|<details|$)', body, re.S)
    assert m, f"no field {name} in the page"
    return m.group(1)


def errors_of(body: str, name: str) -> list[str]:
    group = field_group(body, name)
    lists = re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', group, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", e).strip()) for ul in lists for e in re.findall(r"<li>(.*?)</li>",
                                                                                                   ul, re.S)]


def post(b: Browser, path: str, data: dict[str, str]) -> Response:
    page = b.get(path)
    assert page.status == 200, (path, page.status)
    return b.request(path, {"csrfmiddlewaretoken": b.csrf(page), **data})


def levels(*rows: dict[str, str], total: int = 3, initial: int = 0) -> dict[str, str]:
    out = {"levels-TOTAL_FORMS": str(max(total, len(rows))), "levels-INITIAL_FORMS": str(initial),
           "levels-MIN_NUM_FORMS": "0", "levels-MAX_NUM_FORMS": "1000"}
    for i, row in enumerate(rows):
        out.update({f"levels-{i}-{k}": v for k, v in row.items()})
    return out


OPERATION = {"date": "2024-03-05", "procedure_category": "vertebroplasty", "indication": "osteoporotic_vcf",
             "diagnosis_codes": "M800", "asa_class": "2", "anaesthesia": "local", "procedure_codes": "KNAG40"}


def count(server: Server, sql: str, *params: Any) -> int:
    return int(server.sql(sql, *params)[0][0])


# -- register and find by CPR number ----------------------------------------------------------------------
def test_register_by_cpr_gives_the_pseudonym_sex_and_birth_date(server: Server) -> None:
    b = login(server, "surg1")
    for cpr, sex, born in ((MALE_1990, "male", "1990-01-01"), (FEMALE_1962, "female", "1962-02-15"),
                           (FEMALE_2005, "female", "2005-01-01")):
        resp = post(b, "/clinical/register/", {"cpr": cpr})
        assert resp.status == 302, resp.body[:2000]
        pid = pseudonym(server, cpr)
        assert resp.location() == f"/clinical/patients/{pid}/"
        page = b.get(resp.location())
        assert page.status == 200
        assert pid in page.body and f"<dd>{sex}</dd>" in page.body and f"<dd>{born}</dd>" in page.body
        assert server.sql("SELECT sex, birth_date FROM spinereg_patients WHERE patient_id = ?", pid) == [(sex, born)]
    # audited, in the user's name, in the web dataset
    pid = pseudonym(server, MALE_1990)
    assert server.sql("SELECT actor, action FROM spinereg_audit WHERE entity = 'patients' AND record_key = ?",
                      pid) == [("surg1", "create")]
    assert server.sql("SELECT d.name FROM spinereg_patients p JOIN spinereg_dataset d ON d.id = p.dataset_id "
                      "WHERE p.patient_id = ?", pid) == [("web registry",)]
    # registering again is idempotent
    again = post(b, "/clinical/register/", {"cpr": MALE_1990})
    assert again.location() == f"/clinical/patients/{pid}/"
    assert "registered already" in b.get(again.location()).body
    assert count(server, "SELECT COUNT(*) FROM spinereg_audit WHERE record_key = ?", pid) == 1


def test_invalid_cpr_is_an_error_on_the_field_and_not_echoed(server: Server) -> None:
    b = login(server, "surg1")
    n = count(server, "SELECT COUNT(*) FROM spinereg_patients")
    resp = post(b, "/clinical/register/", {"cpr": "320190-1235"})  # no 32nd of January
    assert resp.status == 200
    errs = errors_of(resp.body, "cpr")
    assert len(errs) == 1 and errs[0].startswith("invalid CPR number ([CPR number hidden])")
    assert "CPR number" in field_group(resp.body, "cpr").split("</label>")[0]  # the field's label
    assert re.search(r'<input[^>]*name="cpr"[^>]*>', resp.body) and "value=" not in re.search(
        r'<input[^>]*name="cpr"[^>]*>', resp.body).group(0)  # type: ignore[union-attr]
    assert count(server, "SELECT COUNT(*) FROM spinereg_patients") == n
    empty = post(b, "/clinical/register/", {"cpr": ""})
    assert errors_of(empty.body, "cpr") == ["no CPR number given"]


def test_find_by_cpr_and_site_visibility(server: Server) -> None:
    pid = registered(server, MALE_1990)
    other = login(server, "surg2")
    # another site's newly registered patient: invisible by URL
    assert other.get(f"/clinical/patients/{pid}/").status == 404
    assert other.get(f"/clinical/patients/{pid}/operations/new/").status == 404
    assert other.get(f"/patients/{pid}/").status == 404
    # knowing the CPR number is the credential
    missing = post(other, "/clinical/find/", {"cpr": "020202-1234"})
    assert missing.status == 200
    assert errors_of(missing.body, "cpr") == ["No patient with this CPR number is registered."]
    found = post(other, "/clinical/find/", {"cpr": MALE_1990})
    assert found.status == 302 and found.location() == f"/clinical/patients/{pid}/"
    assert other.get(found.location()).status == 200
    assert server.sql("SELECT how FROM spinereg_web_patientaccess a JOIN spinereg_web_site s ON s.id = a.site_id "
                      "WHERE s.code = 'h02' AND a.patient_id = ?", pid) == [("found",)]
    # a patient operated only at h01 stays hidden from h02
    only_h01 = server.sql("SELECT patient_id FROM spinereg_operations GROUP BY patient_id "
                          "HAVING SUM(hospital = 'SYN-H02') = 0 AND SUM(hospital = 'SYN-H01') > 0")[0][0]
    assert other.get(f"/clinical/patients/{only_h01}/").status == 404
    assert other.get(f"/clinical/patients/{only_h01}/death/").status == 404


# -- the operation form ---------------------------------------------------------------------------------------
def test_operation_with_two_levels_is_saved_and_audited(server: Server) -> None:
    b = login(server, "surg1")
    pid = registered(server, MALE_1990)
    n_audit = count(server, "SELECT COUNT(*) FROM spinereg_audit")
    resp = post(b, f"/clinical/patients/{pid}/operations/new/",
                {**OPERATION, "sins": "7",
                 **levels({"level": "L1", "cement_volume_ml": "3.5", "approach": "bipedicular"},
                          {"level": "T12", "cement_volume_ml": "4"})})
    assert resp.status == 302, resp.body[:3000]
    m = re.fullmatch(r"/operations/([^/]+)/", resp.location())
    assert m
    op_id = m.group(1)
    assert re.fullmatch(r"web-registry:[0-9a-f]{32}", op_id)
    rows = server.sql("SELECT patient_id, date, hospital, procedure_category, asa_class, sins, diagnosis_codes "
                      "FROM spinereg_operations WHERE operation_id = ?", op_id)
    assert rows == [(pid, "2024-03-05", "SYN-H01", "vertebroplasty", 2, 7, "M800")]
    assert server.sql("SELECT level, cement_volume_ml, approach FROM spinereg_treated_levels WHERE operation_id = ? "
                      "ORDER BY level", op_id) == [("L1", 3.5, "bipedicular"), ("T12", 4.0, None)]
    audit = server.sql("SELECT actor, action, entity, record_key FROM spinereg_audit WHERE id > ? ORDER BY id",
                       n_audit)
    assert audit == [("surg1", "create", "operations", op_id), ("surg1", "create", "treated_levels", f"{op_id}/L1"),
                     ("surg1", "create", "treated_levels", f"{op_id}/T12")]
    # the audit command shows them too
    done = ok(run_cli(server.home, "audit", "operations", op_id, "--csv", "-", "--db", server.db_url))
    assert "surg1" in done.stdout and "create" in done.stdout
    page = b.get(f"/operations/{op_id}/")
    assert page.status == 200
    assert "<td>L1</td><td>3.5</td><td>bipedicular</td>" in page.body and "<td>T12</td><td>4</td><td></td>" in page.body
    patient = b.get(f"/clinical/patients/{pid}/")
    assert f'href="/operations/{op_id}/"' in patient.body
    # the patient is now the site's by operation: the main patient page shows it
    assert b.get(f"/patients/{pid}/").status == 200


def test_invalid_values_get_the_imports_messages_and_write_nothing(server: Server) -> None:
    b = login(server, "surg1")
    pid = registered(server, FEMALE_1962)
    before = [count(server, f"SELECT COUNT(*) FROM {t}") for t in
              ("spinereg_operations", "spinereg_treated_levels", "spinereg_audit")]
    path = f"/clinical/patients/{pid}/operations/new/"
    resp = post(b, path, {**OPERATION, "asa_class": "7", "sins": "19", **levels({"level": "L2"})})
    assert resp.status == 200
    # the messages of an import report for the same values (spinereg.data.validate)
    assert errors_of(resp.body, "asa_class") == ["asa_class must be within 1..5 (value '7')"]
    assert errors_of(resp.body, "sins") == ["sins must be within 0..18 (value '19')"]
    assert errors_of(resp.body, "tomita") == []
    # a valid operation with an invalid level: neither is written (all or nothing)
    resp = post(b, path, {**OPERATION, **levels({"level": "L2", "cement_volume_ml": "3"},
                                                 {"level": "L3", "cement_volume_ml": "30"})})
    assert resp.status == 200
    assert errors_of(resp.body, "levels-1-cement_volume_ml") == ["cement_volume_ml must be within 0..20 (value '30')"]
    assert errors_of(resp.body, "levels-0-cement_volume_ml") == []
    # a level refused by the database itself (the same level twice) rolls the operation back too
    resp = post(b, path, {**OPERATION, **levels({"level": "L2"}, {"level": "L2"})})
    assert resp.status == 200 and "exists already" in resp.body
    after = [count(server, f"SELECT COUNT(*) FROM {t}") for t in
             ("spinereg_operations", "spinereg_treated_levels", "spinereg_audit")]
    assert after == before


def _new_operation(server: Server, b: Browser, cpr: str, *lvls: dict[str, str]) -> str:
    resp = post(b, f"/clinical/patients/{registered(server, cpr)}/operations/new/", {**OPERATION, **levels(*lvls)})
    assert resp.status == 302, resp.body[:3000]
    return resp.location().split("/")[2]


def _lock(server: Server, entity: str, key: str) -> None:
    code = ("import sys; from spinereg.registry import open_registry, RegistryWriter, lock_state; "
            "a = open_registry(sys.argv[1], create=False); "
            "RegistryWriter(a, sys.argv[4]).lock(sys.argv[2], sys.argv[3], who='surg1', signature_meaning='authored')")
    dataset = "web registry"
    done = subprocess.run([sys.executable, "-c", code, server.db_url, entity, key, dataset], capture_output=True,
                          text=True, env=cli_env(server.home), timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def test_locked_operation_needs_a_reason_and_the_right_role(server: Server) -> None:
    surgeon = login(server, "surg1")
    op_id = _new_operation(server, surgeon, FEMALE_2005, {"level": "L4", "cement_volume_ml": "2.5"})
    edit = f"/operations/{op_id}/edit/"
    page = surgeon.get(edit)
    assert page.status == 200 and 'name="reason"' in page.body  # a level can be removed: the reason is offered
    _lock(server, "operations", op_id)
    assert surgeon.get(edit).status == 403  # a surgeon may not change a locked record
    dm = login(server, "dm1")
    page = dm.get(edit)
    assert page.status == 200 and "is locked" in page.body
    assert 'name="levels-0-original" value="L4"' in page.body
    form = {**OPERATION, "asa_class": "3", **levels({"level": "L4", "cement_volume_ml": "2.5", "original": "L4"},
                                                    initial=1)}
    refused = dm.request(edit, {"csrfmiddlewaretoken": dm.csrf(page), **form, "reason": ""})
    assert refused.status == 200
    (err,) = errors_of(refused.body, "reason")
    assert "is locked (signed by surg1" in err and "requires a reason" in err
    assert count(server, "SELECT asa_class FROM spinereg_operations WHERE operation_id = ?", op_id) == 2
    # a locked operation's level is covered by the lock too
    form_lvl = {**OPERATION, **levels({"level": "L4", "cement_volume_ml": "3", "original": "L4"}, initial=1)}
    refused = dm.request(edit, {"csrfmiddlewaretoken": dm.csrf(page), **form_lvl, "reason": " "})
    assert refused.status == 200 and "requires a reason" in refused.body
    assert server.sql("SELECT cement_volume_ml FROM spinereg_treated_levels WHERE operation_id = ?", op_id) == [(2.5,)]
    accepted = dm.request(edit, {"csrfmiddlewaretoken": dm.csrf(page), **form,
                                 "reason": "ASA class corrected from the anaesthesia chart"})
    assert accepted.status == 302, accepted.body[:3000]
    assert count(server, "SELECT asa_class FROM spinereg_operations WHERE operation_id = ?", op_id) == 3
    (entry,) = server.sql("SELECT actor, changes, reason FROM spinereg_audit WHERE entity = 'operations' AND "
                          "record_key = ? AND action = 'update'", op_id)
    assert entry[0] == "dm1" and entry[2] == "ASA class corrected from the anaesthesia chart"
    assert json.loads(entry[1]) == {"old": {"asa_class": 2}, "new": {"asa_class": 3}}


def test_edit_levels_and_remove_one_with_a_reason(server: Server) -> None:
    b = login(server, "surg1")
    op_id = _new_operation(server, b, FEMALE_1962, {"level": "L1", "cement_volume_ml": "2"},
                           {"level": "L2", "cement_volume_ml": "3"})
    edit = f"/operations/{op_id}/edit/"
    keep = levels({"level": "L1", "cement_volume_ml": "2.5", "original": "L1"},
                  {"level": "L2", "cement_volume_ml": "3", "original": "L2", "DELETE": "on"},
                  {"level": "L5", "cement_volume_ml": "1"}, total=5, initial=2)
    refused = post(b, edit, {**OPERATION, **keep})
    assert refused.status == 200
    assert errors_of(refused.body, "reason") == [f"treated_levels '{op_id}/L2': deleting a record requires a reason"]
    assert server.sql("SELECT level, cement_volume_ml FROM spinereg_treated_levels WHERE operation_id = ? "
                      "ORDER BY level", op_id) == [("L1", 2.0), ("L2", 3.0)]
    done = post(b, edit, {**OPERATION, **keep, "reason": "L2 was not treated (typing error)"})
    assert done.status == 302, done.body[:3000]
    assert server.sql("SELECT level, cement_volume_ml FROM spinereg_treated_levels WHERE operation_id = ? "
                      "ORDER BY level", op_id) == [("L1", 2.5), ("L5", 1.0)]


def test_other_sites_operation_is_404(server: Server) -> None:
    own = login(server, "surg1")
    op_id = _new_operation(server, own, MALE_1990, {"level": "L3"})
    other = login(server, "surg2")
    for path in (f"/operations/{op_id}/", f"/operations/{op_id}/edit/", f"/operations/{op_id}/complications/new/",
                 "/operations/no-such-operation/"):
        assert other.get(path).status == 404, path
    synthetic_h02 = server.sql("SELECT operation_id FROM spinereg_operations WHERE hospital = 'SYN-H02'")[0][0]
    assert own.get(f"/operations/{synthetic_h02}/").status == 404
    assert other.get(f"/operations/{synthetic_h02}/").status == 200
    # a patient known at both sites: each sees its own operations only
    pid = registered(server, MALE_1990)
    assert op_id not in other.get(f"/clinical/patients/{pid}/").body
    # an edit of an imported (synthetic) operation writes in the operation's own dataset
    cols = ["date", "procedure_codes", "procedure_category", "indication", "diagnosis_codes", "cancer_primary_site",
            "asa_class", "anaesthesia", "sins", "tokuhashi", "tomita"]
    row = dict(zip(cols, server.sql(f"SELECT {', '.join(cols)} FROM spinereg_operations WHERE operation_id = ?",
                                    synthetic_h02)[0], strict=True))
    data = {k: "" if v is None else str(v) for k, v in row.items()}
    data["asa_class"] = "4" if data["asa_class"] != "4" else "3"
    edited = post(other, f"/operations/{synthetic_h02}/edit/", {**data, **levels(total=0)})
    assert edited.status == 302, edited.body[:3000]
    assert server.sql("SELECT d.synthetic, a.actor FROM spinereg_audit a JOIN spinereg_import_batch b ON "
                      "b.id = a.batch_id JOIN spinereg_dataset d ON d.id = b.dataset_id WHERE a.record_key = ? AND "
                      "a.action = 'update'", synthetic_h02) == [(1, "surg2")]
    assert count(server, "SELECT asa_class FROM spinereg_operations WHERE operation_id = ?",
                 synthetic_h02) == int(data["asa_class"])
    # the operations list: the site's own only
    n_h01 = count(server, "SELECT COUNT(*) FROM spinereg_operations WHERE hospital = 'SYN-H01'")
    listing = own.get("/operations/")
    assert f"{n_h01} operations" in listing.body
    shown = re.findall(r'<a href="/operations/([^/"]+)/">', listing.body)
    assert op_id in shown and synthetic_h02 not in shown and len(shown) == min(50, n_h01)
    # a reviewer may look, not write
    rev = login(server, "rev1")
    assert rev.get(f"/operations/{op_id}/").status == 200
    assert rev.get(f"/operations/{op_id}/edit/").status == 403
    assert rev.get("/clinical/register/").status == 403


# -- complications and death -----------------------------------------------------------------------------------
def test_complication_from_chart_review(server: Server) -> None:
    b = login(server, "surg1")
    op_id = _new_operation(server, b, FEMALE_1962, {"level": "T8"})
    new = f"/operations/{op_id}/complications/new/"
    refused = post(b, new, {"type": "", "clavien_dindo": "IIIa", "date": "2024-03-20", "symptomatic": "true"})
    assert refused.status == 200
    assert errors_of(refused.body, "type") == ["required type is missing"]
    assert count(server, "SELECT COUNT(*) FROM spinereg_complications WHERE operation_id = ?", op_id) == 0
    done = post(b, new, {"type": "new_fracture", "clavien_dindo": "IIIa", "date": "2024-03-20",
                         "symptomatic": "true"})
    assert done.status == 302 and done.location() == f"/operations/{op_id}/"
    ((cid, ctype, grade, day, sympt),) = server.sql(
        "SELECT complication_id, type, clavien_dindo, date, symptomatic FROM spinereg_complications "
        "WHERE operation_id = ?", op_id)
    assert (ctype, grade, day, sympt) == ("new_fracture", "IIIa", "2024-03-20", 1)
    page = b.get(f"/operations/{op_id}/")
    assert "new_fracture" in page.body and f'href="/complications/{cid}/edit/"' in page.body
    # an intra-operative complication, from the link on the operation page
    assert f'href="/operations/{op_id}/complications/new/?intraoperative=1"' in page.body
    form = b.get(f"/operations/{op_id}/complications/new/?intraoperative=1")
    assert '<option value="true" selected>' in field_group(form.body, "intraoperative")
    intra = b.request(f"/operations/{op_id}/complications/new/?intraoperative=1", {
        "csrfmiddlewaretoken": b.csrf(form), "type": "cement_embolism", "clavien_dindo": "I", "date": "2024-03-05",
        "symptomatic": "false", "intraoperative": "true"})
    assert intra.status == 302
    assert server.sql("SELECT type, intraoperative FROM spinereg_complications WHERE operation_id = ? AND "
                      "complication_id <> ?", op_id, cid) == [("cement_embolism", 1)]
    changed = post(b, f"/complications/{cid}/edit/", {"type": "new_fracture", "clavien_dindo": "II",
                                                      "date": "2024-03-20", "symptomatic": "false"})
    assert changed.status == 302
    assert server.sql("SELECT clavien_dindo, symptomatic FROM spinereg_complications WHERE complication_id = ?",
                      cid) == [("II", 0)]
    assert login(server, "surg2").get(f"/complications/{cid}/edit/").status == 404


def test_death_date_and_source(server: Server) -> None:
    b = login(server, "surg1")
    pid = registered(server, FEMALE_2005)
    _new_operation(server, b, FEMALE_2005, {"level": "L1"})  # dated 2024-03-05
    path = f"/clinical/patients/{pid}/death/"
    bad = post(b, path, {"death_date": "2025-02-30", "death_source": "neighbour"})
    assert bad.status == 200
    assert errors_of(bad.body, "death_source") == [
        "death_source must be one of cpr_registry, medical_record, registry, other (value 'neighbour')"]
    assert errors_of(bad.body, "death_date") == ["death_date is not a date (YYYY-MM-DD) (value '2025-02-30')"]
    # a death before the patient's operation (2024-03-05) breaks the operation's date rule
    early = post(b, path, {"death_date": "2024-01-01", "death_source": "cpr_registry"})
    assert early.status == 200 and "after the patient&#x27;s death" in early.body
    assert server.sql("SELECT death_date FROM spinereg_patients WHERE patient_id = ?", pid) == [(None,)]
    ok_ = post(b, path, {"death_date": "2025-02-10", "death_source": "cpr_registry"})
    assert ok_.status == 302
    assert server.sql("SELECT death_date, death_source FROM spinereg_patients WHERE patient_id = ?",
                      pid) == [("2025-02-10", "cpr_registry")]
    assert "2025-02-10" in b.get(f"/clinical/patients/{pid}/").body


# -- every form has a CSRF token; no CPR number anywhere ---------------------------------------------------
def test_every_form_has_a_csrf_token_and_labels(server: Server) -> None:
    b = login(server, "dm1")
    pid = registered(server, MALE_1990)
    op_id = server.sql("SELECT operation_id FROM spinereg_operations WHERE hospital = 'SYN-H01'")[0][0]
    cid = server.sql("SELECT complication_id FROM spinereg_complications c JOIN spinereg_operations o "
                     "ON o.operation_id = c.operation_id WHERE o.hospital = 'SYN-H01'")[0][0]
    pages = ["/clinical/register/", "/clinical/find/", f"/clinical/patients/{pid}/death/",
             f"/clinical/patients/{pid}/operations/new/", f"/operations/{op_id}/edit/",
             f"/operations/{op_id}/complications/new/", f"/complications/{cid}/edit/"]
    for path in pages:
        page = b.get(path)
        assert page.status == 200, path
        forms = re.findall(r'<form method="post"[^>]*>(.*?)</form>', page.body, re.S)
        assert forms, path
        for form in forms:
            assert 'name="csrfmiddlewaretoken"' in form, path
            for tag in re.findall(r"<(?:input|select|textarea)[^>]*>", form):
                if 'type="hidden"' in tag:
                    continue
                m = re.search(r'\bid="([^"]+)"', tag)
                assert m and f'<label for="{m.group(1)}"' in form, (path, tag)
    # a POST without the token is refused
    assert b.request("/clinical/register/", {"cpr": MALE_1990}).status == 403


def test_a_missing_site_key_is_refused_not_replaced(server: Server) -> None:
    """The registry has rows written with the key: without the key file the web refuses (a new key would give
    every patient a second pseudonym), and creates no key file."""
    key = server.home / "site.key"
    kept = server.home / "site.key.kept"
    key.rename(kept)
    try:
        b = login(server, "surg1")
        n = count(server, "SELECT COUNT(*) FROM spinereg_patients")
        resp = post(b, "/clinical/register/", {"cpr": "020202-1234"})
        assert resp.status == 200
        assert errors_of(resp.body, "cpr") == []
        assert f"no site key at {key}, and this registry was written with the key whose fingerprint" in \
            html.unescape(resp.body)
        assert not key.exists()
        assert count(server, "SELECT COUNT(*) FROM spinereg_patients") == n
        found = post(b, "/clinical/find/", {"cpr": MALE_1990})
        assert found.status == 200 and f"no site key at {key}" in html.unescape(found.body)
    finally:
        kept.rename(key)


def test_no_cpr_number_in_any_page_or_log(server: Server) -> None:
    assert len(SEEN) > 50
    digits = [c.replace("-", "") for c in CPRS]
    text = "\n".join(SEEN)
    log = Path(server.log).read_text()
    for cpr, ten in zip(CPRS, digits, strict=True):
        for where, body in (("pages", text), ("log", log)):
            assert cpr not in body and ten not in body, (cpr, where)
    # nor in the database
    dump = "\n".join(str(r) for t in ("spinereg_audit", "spinereg_patients", "spinereg_web_patientaccess")
                     for r in server.sql(f"SELECT * FROM {t}"))
    assert not any(ten in dump for ten in digits)

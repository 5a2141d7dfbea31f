"""The /fhir/ API on a real server (gunicorn in a subprocess, as in tests/web): tokens, Questionnaire,
QuestionnaireResponse create/read/search, the catalogue of bad input (nothing written), site scoping,
and a maintained FHIR client library (fhirclient) talking to it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from spinereg.fhir import questionnaire
from tests.web.conftest import PASSWORD, Server, cli_env, ok, run_cli, run_parallel, start_server, stop_server

CPR = "0202554322"


@dataclass
class Api:
    server: Server
    token: str          # data_manager at site h01
    reader: str         # analyst (national, read only)
    patient: str        # a living patient operated at h01 only
    op_id: str
    op_date: date
    other: str          # a patient operated at h02 only
    spare: str          # a data_manager token for the revocation test

    def call(self, method: str, path: str, body: bytes | None = None, token: str | None = "default",
             ctype: str = "application/fhir+json") -> tuple[int, dict[str, Any], Any]:
        headers = {"Content-Type": ctype, "Accept": "application/fhir+json"}
        tok = self.token if token == "default" else token
        if tok:
            headers["Authorization"] = f"Bearer {tok}"
        req = urllib.request.Request(self.server.base + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), json.loads(exc.read() or b"null")

    def proms(self) -> int:
        return int(self.server.sql("SELECT COUNT(*) FROM spinereg_proms")[0][0])


def _outputs(home: Any, *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Run independent commands at once; their completed processes (stdout, stderr, return code)."""
    procs = [(args, subprocess.Popen([sys.executable, "-m", "spinereg", *args], env=cli_env(home), text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL))
             for args in commands]
    done = []
    for args, proc in procs:
        out, err = proc.communicate(timeout=180)
        done.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
    return done


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    home = tmp_path_factory.mktemp("fhir")
    db = f"sqlite:///{home / 'registry.sqlite3'}"
    ok(run_cli(home, "db", "init", "--db", db))
    ok(run_cli(home, "synth", "--patients", "120", "--seed", "7", "--db", db))
    run_parallel(home, ["site", "add", "h01", "--name", "Hospital 1", "--hospital", "SYN-H01", "--db", db],
                 ["site", "add", "h02", "--name", "Hospital 2", "--hospital", "SYN-H02", "--db", db])
    run_parallel(home, ["user", "add", "dm1", "--role", "data_manager", "--site", "h01", "--db", db],
                 ["user", "add", "an1", "--role", "analyst", "--db", db], SPINEREG_PASSWORD=PASSWORD)
    token, reader, spare = (ok(d).stdout.split()[-1] for d in _outputs(
        home, ["token", "create", "dm1", "--db", db], ["token", "create", "an1", "--db", db],
        ["token", "create", "dm1", "--label", "to revoke", "--db", db]))
    server = start_server(home, db)
    try:
        rows = server.sql(
            "SELECT o.patient_id, o.operation_id, o.date FROM spinereg_operations o JOIN spinereg_patients p "
            "ON p.patient_id = o.patient_id WHERE o.hospital = 'SYN-H01' AND o.date IS NOT NULL AND "
            "p.death_date IS NULL AND (SELECT COUNT(*) FROM spinereg_operations x WHERE x.patient_id = o.patient_id)"
            " = 1 ORDER BY o.operation_id")
        other = server.sql("SELECT patient_id FROM spinereg_operations GROUP BY patient_id HAVING "
                           "MIN(hospital) = 'SYN-H02' AND MAX(hospital) = 'SYN-H02' ORDER BY patient_id")
        assert rows and other
        pid, op_id, op_date = rows[0]
        yield Api(server, token, reader, str(pid), str(op_id), date.fromisoformat(str(op_date)[:10]),
                  str(other[0][0]), spare)
    finally:
        stop_server(server)


def qr(api: Api, patient: str | None = None, days: int = 91, qid: str = "nrs-back", value: int = 4,
       **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse", "status": "completed", "questionnaire": f"Questionnaire/{qid}",
        "subject": {"reference": f"Patient/{patient or api.patient}"},
        "authored": (api.op_date + timedelta(days=days)).isoformat() + "T10:00:00+01:00",
        "item": [{"linkId": qid.replace("-", "_"), "answer": [{"valueCoding": {"code": str(value)}}]}]}
    doc.update(extra)
    return doc


def _outcome(body: Any) -> dict[str, Any]:
    OperationOutcome.model_validate(body)
    return dict(body["issue"][0])


# -- metadata and tokens ----------------------------------------------------------------------------------
def test_metadata_without_token(api: Api) -> None:
    status, headers, body = api.call("GET", "/fhir/metadata", token=None)
    assert status == 200 and headers["Content-Type"].startswith("application/fhir+json")
    CapabilityStatement.model_validate(body)
    assert body["fhirVersion"] == "4.0.1"
    kinds = {r["type"]: {i["code"] for i in r["interaction"]} for r in body["rest"][0]["resource"]}
    assert kinds["QuestionnaireResponse"] == {"create", "read", "search-type"}


@pytest.mark.parametrize("token", [None, "srg_not-a-token"])
def test_no_or_bad_token_is_401(api: Api, token: str | None) -> None:
    count = api.proms()
    for method, path, body in [("GET", "/fhir/Questionnaire/odi", None), ("GET", "/fhir/QuestionnaireResponse", None),
                               ("POST", "/fhir/QuestionnaireResponse", json.dumps(qr(api)).encode())]:
        status, headers, out = api.call(method, path, body, token=token)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer"), (method, path)
        assert _outcome(out)["code"] == "login"
    assert api.proms() == count


def test_token_stored_hashed_and_revoked(api: Api) -> None:
    home, db = api.server.home, api.server.db_url
    token = api.spare
    assert api.call("GET", "/fhir/Questionnaire/odi", token=token)[0] == 200
    stored = api.server.sql("SELECT id, token_hash FROM spinereg_fhir_apitoken")
    assert all(token not in str(h) for _, h in stored)
    import hashlib
    (tid,) = [i for i, h in stored if h == hashlib.sha256(token.encode()).hexdigest()]
    listed, revoked, done = _outputs(home, ["token", "list", "--db", db], ["token", "revoke", str(tid), "--db", db],
                                     ["token", "create", "nobody", "--db", db])
    assert token[:10] in ok(listed).stdout and token not in listed.stdout and "to revoke" in listed.stdout
    assert f"token {tid} revoked" in ok(revoked).stdout
    assert api.call("GET", "/fhir/Questionnaire/odi", token=token)[0] == 401
    assert done.returncode != 0 and "no user 'nobody'" in done.stderr and "Traceback" not in done.stderr


# -- Questionnaire ------------------------------------------------------------------------------------------
def test_questionnaire_read_and_search(api: Api) -> None:
    status, _, body = api.call("GET", "/fhir/Questionnaire/odi")
    assert status == 200 and body == questionnaire("odi")
    status, _, bundle = api.call("GET", "/fhir/Questionnaire")
    Bundle.model_validate(bundle)
    assert bundle["total"] == 6
    assert sorted(e["resource"]["id"] for e in bundle["entry"]) == ["eq5d3l", "eq5d5l", "eqvas", "nrs-back",
                                                                    "nrs-leg", "odi"]
    status, _, body = api.call("GET", "/fhir/Questionnaire/sf36")
    assert status == 404 and _outcome(body)["code"] == "not-found"


# -- QuestionnaireResponse ----------------------------------------------------------------------------------
def test_post_read_back_registry_row_and_audit(api: Api) -> None:
    before = api.proms()
    status, headers, body = api.call("POST", "/fhir/QuestionnaireResponse", json.dumps(qr(api, value=7)).encode())
    assert status == 201, body
    QuestionnaireResponse.model_validate(body)
    location = headers["Location"]
    assert location.endswith(f"/fhir/QuestionnaireResponse/{body['id']}")
    status, _, read = api.call("GET", location.removeprefix(api.server.base))
    assert status == 200 and read == body
    assert read["item"] == [{"linkId": "nrs_back", "answer": [{"valueCoding": {
        "system": "urn:spinereg:fhir:answers:nrs_back", "code": "7", "display": "7"}}]}]
    assert api.proms() == before + 1
    prom_id = body["id"].rsplit(".", 1)[0].replace("..", ":")
    row = api.server.sql("SELECT patient_id, operation_id, timepoint, answer_date, nrs_back, nrs_leg, odi_1, mode "
                         "FROM spinereg_proms WHERE prom_id = ?", prom_id)
    authored = (api.op_date + timedelta(days=91)).isoformat()  # day 91: the 3-month window 60..150
    assert [tuple(str(v)[:10] if v is not None else None for v in row[0])] == [
        (api.patient, api.op_id, "3m", authored, "7", None, None, "fhir")]
    audit = api.server.sql("SELECT actor, action FROM spinereg_audit WHERE entity = 'proms' AND record_key = ?",
                           prom_id)
    assert audit == [("dm1 (FHIR API)", "create")]


def test_post_odi_baseline(api: Api) -> None:
    doc = qr(api, qid="odi", days=-10)
    doc["item"] = [{"linkId": f"odi_{i}", "answer": [{"valueInteger": i % 6}]} for i in range(1, 11)]
    status, _, body = api.call("POST", "/fhir/QuestionnaireResponse", json.dumps(doc).encode())
    assert status == 201, body
    prom_id = body["id"].rsplit(".", 1)[0].replace("..", ":")
    row = api.server.sql("SELECT timepoint, odi_1, odi_5, odi_6, odi_10 FROM spinereg_proms WHERE prom_id = ?",
                         prom_id)
    assert row == [("baseline", 1, 5, 0, 4)]


BIG = "x" * (1024 * 1024 + 10)

#: name -> (body, content type, token attr, expected status, issue code, linkId, text in diagnostics)
BAD: dict[str, tuple[Any, str, str, int, str, str | None, str]] = {
    "wrong resource type": (lambda a: {**qr(a), "resourceType": "Observation"}, "application/fhir+json", "token",
                            400, "invalid", None, "'Observation'"),
    "unknown questionnaire": (lambda a: {**qr(a), "questionnaire": "Questionnaire/sf36"}, "application/fhir+json",
                              "token", 422, "not-found", None, "'Questionnaire/sf36'"),
    "out-of-range answer": (lambda a: qr(a, value=11), "application/fhir+json", "token", 422, "value", "nrs_back",
                            "answer '11' is outside the item's range 0..10"),
    "missing subject": (lambda a: {k: v for k, v in qr(a).items() if k != "subject"}, "application/fhir+json",
                        "token", 422, "required", None, "subject is missing"),
    "CPR in free text": (lambda a: {**qr(a), "text": {"status": "generated",
                                                      "div": f"<div xmlns=\"http://www.w3.org/1999/xhtml\">"
                                                             f"CPR {CPR}</div>"}},
                         "application/fhir+json", "token", 422, "security", None, "CPR number"),
    "another site's patient": (lambda a: qr(a, patient=a.other), "application/fhir+json", "token", 404,
                               "not-found", None, "not found"),
    "unknown patient": (lambda a: qr(a, patient="NOPE"), "application/fhir+json", "token", 404, "not-found", None,
                        "Patient/NOPE not found"),
    "outside every window": (lambda a: qr(a, days=30), "application/fhir+json", "token", 422, "business-rule",
                             None, "outside every time point window"),
    "oversized body": (lambda a: {**qr(a), "id": BIG}, "application/fhir+json", "token", 413, "too-long", None,
                       "larger than 1048576 bytes"),
    "malformed JSON": (lambda a: '{"resourceType": "QuestionnaireResponse", ', "application/fhir+json", "token",
                       400, "structure", None, "malformed JSON"),
    "not FHIR JSON": (lambda a: qr(a), "text/plain", "token", 415, "not-supported", None, "text/plain"),
    "read-only role": (lambda a: qr(a), "application/fhir+json", "reader", 403, "forbidden", None, "analyst"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_nothing_written(api: Api, name: str) -> None:
    make, ctype, who, status, code, link_id, text = BAD[name]
    doc = make(api)
    body = (doc if isinstance(doc, str) else json.dumps(doc)).encode()
    before = api.proms()
    audit = api.server.sql("SELECT COUNT(*) FROM spinereg_audit")
    got, headers, out = api.call("POST", "/fhir/QuestionnaireResponse", body, token=getattr(api, who), ctype=ctype)
    assert got == status, out
    assert headers["Content-Type"].startswith("application/fhir+json")
    issue = _outcome(out)
    assert issue["code"] == code and text in issue["diagnostics"], issue
    if link_id:
        assert f"linkId='{link_id}'" in issue["expression"][0] and repr(link_id) in issue["diagnostics"]
    assert CPR not in json.dumps(out)
    assert api.proms() == before and api.server.sql("SELECT COUNT(*) FROM spinereg_audit") == audit


def test_search_paging_and_count(api: Api) -> None:
    api.call("POST", "/fhir/QuestionnaireResponse", json.dumps(qr(api, qid="nrs-leg", value=2)).encode())
    # independent count from the database: per instrument, the patient's rows that hold its answers
    cols = {"eq5d3l": "eq5d3l_mo", "eq5d5l": "eq5d5l_mo", "eqvas": "eqvas", "odi": "odi_1", "nrs_back": "nrs_back",
            "nrs_leg": "nrs_leg"}
    expected = 0
    for col in cols.values():
        others = "odi_2 IS NOT NULL OR odi_3 IS NOT NULL" if col == "odi_1" else "0"
        mates = {"eq5d3l_mo": "eq5d3l_sc", "eq5d5l_mo": "eq5d5l_sc"}.get(col, col)
        expected += api.server.sql(f"SELECT COUNT(*) FROM spinereg_proms WHERE patient_id = ? AND ({col} IS NOT NULL "
                                   f"OR {mates} IS NOT NULL OR {others})", api.patient)[0][0]
    status, _, counted = api.call("GET", f"/fhir/QuestionnaireResponse?patient=Patient/{api.patient}&_summary=count")
    assert status == 200 and counted["total"] == expected and "entry" not in counted and expected >= 3
    seen: list[str] = []
    path: str | None = f"/fhir/QuestionnaireResponse?patient={api.patient}&_count=2"
    while path:
        status, _, page = api.call("GET", path)
        Bundle.model_validate(page)
        assert status == 200 and page["total"] == expected and len(page.get("entry", [])) <= 2
        assert {e["resource"]["subject"]["reference"] for e in page.get("entry", [])} <= {f"Patient/{api.patient}"}
        seen += [e["resource"]["id"] for e in page.get("entry", [])]
        nxt = [ln["url"] for ln in page["link"] if ln["relation"] == "next"]
        path = nxt[0].removeprefix(api.server.base) if nxt else None
    assert len(seen) == len(set(seen)) == expected
    status, _, only = api.call("GET", f"/fhir/QuestionnaireResponse?patient={api.patient}&questionnaire=nrs-leg")
    assert only["total"] >= 1 and all(e["resource"]["questionnaire"].endswith("nrs-leg") for e in only["entry"])


def test_other_site_not_visible(api: Api) -> None:
    rows = api.server.sql("SELECT prom_id FROM spinereg_proms WHERE patient_id = ? AND nrs_back IS NOT NULL",
                          api.other)
    status, _, body = api.call("GET", f"/fhir/QuestionnaireResponse?patient={api.other}&_summary=count")
    assert status == 200 and body["total"] == 0
    status, _, body = api.call("GET", f"/fhir/QuestionnaireResponse?patient={api.other}&_summary=count",
                               token=api.reader)
    assert body["total"] > 0  # a national role sees them
    assert rows
    rid = f"{str(rows[0][0]).replace(':', '..')}.nrs-back"
    assert api.call("GET", f"/fhir/QuestionnaireResponse/{rid}", token=api.reader)[0] == 200
    status, _, body = api.call("GET", f"/fhir/QuestionnaireResponse/{rid}")
    assert status == 404 and _outcome(body)["code"] == "not-found"


# -- Patient ----------------------------------------------------------------------------------------------
NEW_CPR = "0101701234"  # 1 January 1970, serial 1234: century 1900s (first digit 1), female (even last digit)


def _patient(cpr: str = NEW_CPR, **extra: Any) -> bytes:
    return json.dumps({"resourceType": "Patient", "identifier": [
        {"system": "urn:oid:1.2.208.176.1.2", "value": cpr}], **extra}).encode()


def test_patient_post_pseudonymised_and_read(api: Api) -> None:
    before = api.server.sql("SELECT COUNT(*) FROM spinereg_patients")[0][0]
    status, headers, body = api.call("POST", "/fhir/Patient", _patient())
    assert status == 201, body
    pid = body["id"]
    assert re.fullmatch(r"[0-9a-f]{32}", pid) and headers["Location"].endswith(f"/fhir/Patient/{pid}")
    assert body == {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1970-01-01"}
    assert NEW_CPR not in json.dumps(body) + json.dumps(headers) and "010170" not in json.dumps(body)
    assert api.server.sql("SELECT COUNT(*) FROM spinereg_patients")[0][0] == before + 1
    assert api.server.sql("SELECT actor FROM spinereg_audit WHERE entity = 'patients' AND record_key = ?", pid) == [
        ("dm1 (FHIR API)",)]
    # the same CPR number (with a dash) again: the same pseudonym, nothing new
    status, _, again = api.call("POST", "/fhir/Patient", _patient("010170-1234"))
    assert (status, again["id"]) == (200, pid)
    assert api.server.sql("SELECT COUNT(*) FROM spinereg_patients")[0][0] == before + 1
    # read: a national role sees every patient; a site-bound one those operated at its site or reached there by
    # CPR number (as the web's register page grants)
    assert api.call("GET", f"/fhir/Patient/{pid}", token=api.reader)[2] == body
    assert api.call("GET", f"/fhir/Patient/{pid}")[2] == body
    assert api.server.sql("SELECT how FROM spinereg_web_patientaccess WHERE patient_id = ?", pid) == [("registered",)]
    assert api.call("GET", f"/fhir/Patient/{api.patient}")[2]["id"] == api.patient
    assert api.call("GET", f"/fhir/Patient/{api.other}")[0] == 404
    assert NEW_CPR not in (api.server.home / "serve.log").read_text()


@pytest.mark.parametrize(("body", "status", "code", "text"), [
    (_patient("3202701234"), 422, "invalid", "not registered"),            # no 32 February: not a CPR number
    (_patient(name=[{"family": "X"}]), 422, "business-rule", "Patient.name is not accepted"),
    (_patient(text={"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">0202554322</div>'}),
     422, "security", "CPR number"),
    (json.dumps({"resourceType": "Patient", "gender": "male"}).encode(), 422, "required", "urn:oid:1.2.208.176.1.2"),
    (json.dumps({"resourceType": "Group"}).encode(), 400, "invalid", "'Group'"),
    (_patient(birthDate="1970-13-45"), 400, "structure", "birthDate"),
])
def test_patient_bad_input(api: Api, body: bytes, status: int, code: str, text: str) -> None:
    before = api.server.sql("SELECT COUNT(*) FROM spinereg_patients")[0][0]
    got, _, out = api.call("POST", "/fhir/Patient", body)
    issue = _outcome(out)
    assert (got, issue["code"]) == (status, code) and text in issue["diagnostics"], issue
    assert "3202701234" not in json.dumps(out) and "0202554322" not in json.dumps(out)
    assert api.server.sql("SELECT COUNT(*) FROM spinereg_patients")[0][0] == before
    assert api.call("POST", "/fhir/Patient", _patient(), token=api.reader)[0] == 403


# -- a maintained FHIR client library -----------------------------------------------------------------------
def test_fhirclient(api: Api) -> None:
    from fhirclient import server as fserver
    from fhirclient.models.bundle import Bundle as FBundle
    from fhirclient.models.questionnaire import Questionnaire as FQuestionnaire
    from fhirclient.models.questionnaireresponse import QuestionnaireResponse as FResponse

    srv = fserver.FHIRServer(None, base_uri=api.server.base + "/fhir/")
    srv.session.headers["Authorization"] = f"Bearer {api.token}"
    q = FQuestionnaire.read("odi", srv)
    assert q.id == "odi" and [i.linkId for i in q.item][:2] == ["odi_1", "odi_2"]
    assert q.code[0].code == "97908-8"
    assert q.item[0].answerOption[5].extension[0].valueDecimal == 5
    created = FResponse(qr(api, qid="nrs-back", value=3, days=365))  # day 365: the 1-year time point
    FResponse(qr(api, qid="nrs-back", value=7, days=730)).create(srv)  # day 730: 2 years (this test's own second)
    before = api.proms()
    result = created.create(srv)
    assert result is not None and api.proms() == before + 1
    (bundle,) = FResponse.where(struct={"patient": api.patient, "questionnaire": "nrs-back", "_count": "50"}
                          ).perform_iter(srv)
    assert isinstance(bundle, FBundle) and bundle.total >= 2
    values = sorted(e.resource.item[0].answer[0].valueCoding.code for e in bundle.entry)
    assert "3" in values and "7" in values
    found = list(FQuestionnaire.where(struct={"_id": "eq5d5l"}).perform_resources_iter(srv))
    assert [r.id for r in found] == ["eq5d5l"]

"""Procedure and Observation on a running server, the bulk round trip (POST -> read -> `spinereg fhir export`
-> `spinereg import --mapping fhir` into a fresh registry -> the same registry data), the Procedure bad-input
catalogue (OperationOutcome, nothing written: operation and levels all or nothing), and bad bulk files
(errors name file, line or entry, element and value; nothing imported)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.procedure import Procedure

from tests.web.conftest import PASSWORD, Server, ok, run_cli, run_parallel, start_server, stop_server

CPR_NEW = "1502801235"      # 15 Feb 1980, serial 1235 (odd: male); synthetic
CPR_BUNDLE = "2003651122"   # 20 Mar 1965, serial 1122 (even: female); synthetic
CPR_TEXT = "0202554322"


@dataclass
class Ctx:
    server: Server
    token: str      # data_manager at h01
    reader: str     # analyst, national, read-only
    other: str      # a patient operated at h02 only
    db: str

    def call(self, method: str, path: str, body: Any = None, token: str | None = "default",
             ctype: str = "application/fhir+json") -> tuple[int, dict[str, str], Any]:
        data = body if isinstance(body, bytes) or body is None else (
            body.encode() if isinstance(body, str) else json.dumps(body).encode())
        headers = {"Content-Type": ctype}
        tok = self.token if token == "default" else token
        if tok:
            headers["Authorization"] = f"Bearer {tok}"
        req = urllib.request.Request(self.server.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), json.loads(exc.read() or b"null")

    def count(self, table: str) -> int:
        return int(self.server.sql(f"SELECT COUNT(*) FROM spinereg_{table}")[0][0])


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctx]:
    home = tmp_path_factory.mktemp("fhirbulk")
    db = f"sqlite:///{home / 'registry.sqlite3'}"
    ok(run_cli(home, "db", "init", "--db", db))
    ok(run_cli(home, "synth", "--patients", "60", "--seed", "11", "--db", db))
    run_parallel(home, ["site", "add", "h01", "--name", "Hospital 1", "--hospital", "SYN-H01", "--db", db],
                 ["site", "add", "h02", "--name", "Hospital 2", "--hospital", "SYN-H02", "--db", db])
    run_parallel(home, ["user", "add", "dm1", "--role", "data_manager", "--site", "h01", "--db", db],
                 ["user", "add", "an1", "--role", "analyst", "--db", db], SPINEREG_PASSWORD=PASSWORD)
    token = ok(run_cli(home, "token", "create", "dm1", "--db", db)).stdout.split()[-1]
    reader = ok(run_cli(home, "token", "create", "an1", "--db", db)).stdout.split()[-1]
    server = start_server(home, db)
    try:
        other = server.sql("SELECT patient_id FROM spinereg_operations GROUP BY patient_id HAVING "
                           "MIN(hospital) = 'SYN-H02' AND MAX(hospital) = 'SYN-H02' ORDER BY patient_id")
        assert other
        yield Ctx(server, token, reader, str(other[0][0]), db)
    finally:
        stop_server(server)


OP_DATE = date(2024, 3, 1)


def procedure(pid: str, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "resourceType": "Procedure", "status": "completed",
        "category": {"coding": [{"system": "urn:spinereg:fhir:procedure-category", "code": "vertebroplasty"}]},
        "code": {"coding": [{"system": "urn:oid:1.2.208.176.2.4", "code": "KNAG40"}]},
        "subject": {"reference": f"Patient/{pid}"}, "performedDateTime": OP_DATE.isoformat(),
        "reasonCode": [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "M80.0"}]},
                       {"coding": [{"system": "urn:spinereg:fhir:indication", "code": "osteoporotic_vcf"}]}],
        "bodySite": [
            {"coding": [{"system": "urn:spinereg:fhir:vertebra", "code": "T12"}],
             "extension": [{"url": "urn:spinereg:fhir:column:treated_levels.cement_volume_ml", "valueDecimal": 4.5},
                           {"url": "urn:spinereg:fhir:column:treated_levels.approach", "valueCode": "bipedicular"}]},
            {"coding": [{"system": "urn:spinereg:fhir:vertebra", "code": "L1"}]}],
        "extension": [{"url": "urn:spinereg:fhir:column:operations.asa_class", "valueInteger": 3}],
    }
    doc.update(extra)
    return doc


def response(pid: str, qid: str, items: dict[str, int], day: int) -> dict[str, Any]:
    return {"resourceType": "QuestionnaireResponse", "status": "completed", "questionnaire": f"Questionnaire/{qid}",
            "subject": {"reference": f"Patient/{pid}"},
            "authored": (OP_DATE + timedelta(days=day)).isoformat() + "T09:00:00+01:00",
            "item": [{"linkId": k, "answer": [{"valueInteger": v}]} for k, v in items.items()]}


def _issue(body: Any) -> dict[str, Any]:
    OperationOutcome.model_validate(body)
    return dict(body["issue"][0])


@pytest.fixture(scope="module")
def posted(ctx: Ctx) -> dict[str, Any]:
    """A new patient (POST Patient), its operation (POST Procedure) and three questionnaires."""
    status, _, pat = ctx.call("POST", "/fhir/Patient", {"resourceType": "Patient", "identifier": [
        {"system": "urn:oid:1.2.208.176.1.2", "value": CPR_NEW}]})
    assert status == 201, pat
    pid = pat["id"]
    status, headers, proc = ctx.call("POST", "/fhir/Procedure", procedure(pid))
    assert status == 201, proc
    assert headers["Location"].endswith(f"/fhir/Procedure/{proc['id']}")
    out: dict[str, Any] = {"patient": pid, "procedure": proc, "responses": []}
    for qid, items, day in [("eq5d5l", dict.fromkeys(["MO", "SC", "UA", "PD", "AD"], 5), -3),
                            ("odi", {f"odi_{i}": i % 6 for i in range(1, 11)}, -3),
                            ("eq5d5l", dict.fromkeys(["MO", "SC", "UA", "PD", "AD"], 1), 92)]:
        status, _, qr = ctx.call("POST", "/fhir/QuestionnaireResponse", response(pid, qid, items, day))
        assert status == 201, qr
        out["responses"].append(qr)
    return out


# -- Procedure ----------------------------------------------------------------------------------------------
def test_procedure_post_read_registry_rows(ctx: Ctx, posted: dict[str, Any]) -> None:
    proc = posted["procedure"]
    Procedure.model_validate(proc)
    status, _, read = ctx.call("GET", f"/fhir/Procedure/{proc['id']}")
    assert status == 200 and read == proc
    op_id = proc["identifier"][0]["value"]
    assert proc["id"] == op_id.replace(":", "..")
    row = ctx.server.sql("SELECT patient_id, date, hospital, procedure_codes, procedure_category, indication, "
                         "diagnosis_codes, asa_class FROM spinereg_operations WHERE operation_id = ?", op_id)
    assert [tuple(str(v) if v is not None else None for v in row[0])] == [
        (posted["patient"], "2024-03-01", "SYN-H01", "KNAG40", "vertebroplasty", "osteoporotic_vcf", "M800", "3")]
    levels = ctx.server.sql("SELECT level, cement_volume_ml, approach FROM spinereg_treated_levels WHERE "
                            "operation_id = ? ORDER BY level", op_id)
    assert levels == [("L1", None, None), ("T12", 4.5, "bipedicular")]
    assert [s["coding"][0]["code"] for s in proc["bodySite"]] == ["T12", "L1"]  # spine order
    audit = ctx.server.sql("SELECT entity, actor FROM spinereg_audit WHERE record_key LIKE ? ORDER BY id",
                           f"{op_id}%")
    assert audit == [("operations", "dm1 (FHIR API)"), ("treated_levels", "dm1 (FHIR API)"),
                     ("treated_levels", "dm1 (FHIR API)")]
    # the questionnaires went to this operation: baseline (day -3) and 3 months (day 92)
    tps = ctx.server.sql("SELECT timepoint FROM spinereg_proms WHERE operation_id = ? ORDER BY timepoint", op_id)
    assert tps == [("3m",), ("baseline",), ("baseline",)]
    # another site does not see it; a national reader does
    assert ctx.call("GET", f"/fhir/Procedure/{proc['id']}", token=ctx.reader)[0] == 200
    assert ctx.call("GET", "/fhir/Procedure/no-such-op")[0] == 404


LEVEL_25ML = {"url": "urn:spinereg:fhir:column:treated_levels.cement_volume_ml", "valueDecimal": 25.0}

#: name -> (make body from (ctx, patient), status, issue code, text in diagnostics, expression start)
BAD_PROCEDURE: dict[str, tuple[Any, int, str, str, str | None]] = {
    "wrong resource type": (lambda c, p: {**procedure(p), "resourceType": "Observation"}, 400, "invalid",
                            "'Observation'", "resourceType"),
    "missing subject": (lambda c, p: {k: v for k, v in procedure(p).items() if k != "subject"}, 422, "required",
                        "subject is missing", "Procedure.subject"),
    "CPR in free text": (lambda c, p: {**procedure(p), "text": {"status": "generated", "div":
                         f'<div xmlns="http://www.w3.org/1999/xhtml">pt {CPR_TEXT}</div>'}}, 422, "security",
                         "CPR number", "Procedure.text"),
    "another site's patient": (lambda c, p: procedure(c.other), 404, "not-found", "not found", "Procedure.subject"),
    "unknown level": (lambda c, p: {**procedure(p), "bodySite": [
        {"coding": [{"system": "urn:spinereg:fhir:vertebra", "code": "T13"}]}]}, 422, "business-rule", "'T13'",
        "Procedure.bodySite[0]"),
    # the operation is valid, its second level is not: nothing at all is written
    "second level out of range": (lambda c, p: {**procedure(p), "bodySite": [
        procedure(p)["bodySite"][1], {"coding": [{"system": "urn:spinereg:fhir:vertebra", "code": "L2"}],
                                      "extension": [LEVEL_25ML]}]}, 422, "business-rule", "cement_volume_ml",
        "Procedure.bodySite[1]"),
    "level twice": (lambda c, p: {**procedure(p), "bodySite": [procedure(p)["bodySite"][1]] * 2}, 422, "invalid",
                    "level 'L1' is given twice", "Procedure.bodySite[1]"),
    "unknown code system": (lambda c, p: {**procedure(p), "code": {"coding": [
        {"system": "http://www.ama-assn.org/go/cpt", "code": "22510"}]}}, 422, "code-invalid",
        "'http://www.ama-assn.org/go/cpt'", "Procedure.code.coding[0].system"),
    "unknown category": (lambda c, p: {**procedure(p), "category": {"coding": [
        {"system": "urn:spinereg:fhir:procedure-category", "code": "laminectomy"}]}}, 422, "business-rule",
        "'laminectomy'", "Procedure.category"),
    "not completed": (lambda c, p: {**procedure(p), "status": "in-progress"}, 422, "business-rule",
                      "'in-progress'", "Procedure.status"),
    "no date": (lambda c, p: {k: v for k, v in procedure(p).items() if k != "performedDateTime"}, 422,
                "required", "performedDateTime is missing", "Procedure.performedDateTime"),
    "element not kept": (lambda c, p: {**procedure(p), "note": [{"text": "fine"}]}, 422, "not-supported",
                         "Procedure.note is not accepted", "Procedure.note"),
    "unknown extension": (lambda c, p: {**procedure(p), "extension": [{"url": "http://x.org/e", "valueString": "1"}]},
                          422, "not-supported", "'http://x.org/e'", "Procedure.extension[0]"),
    "oversized body": (lambda c, p: {**procedure(p), "id": "x" * (1024 * 1024)}, 413, "too-long",
                       "larger than 1048576 bytes", None),
    "malformed JSON": (lambda c, p: '{"resourceType": "Procedure", "status": ', 400, "structure", "malformed JSON",
                       None),
    "not a valid R4 resource": (lambda c, p: {**procedure(p), "performedDateTime": "yesterday"}, 400, "structure",
                                "performedDateTime", "Procedure.performedDateTime"),
}


@pytest.mark.parametrize("name", sorted(BAD_PROCEDURE))
def test_procedure_bad_input_nothing_written(ctx: Ctx, posted: dict[str, Any], name: str) -> None:
    make, status, code, text, expression = BAD_PROCEDURE[name]
    before = [ctx.count(t) for t in ("operations", "treated_levels", "audit")]
    got, headers, out = ctx.call("POST", "/fhir/Procedure", make(ctx, posted["patient"]))
    assert got == status, out
    assert headers["Content-Type"].startswith("application/fhir+json")
    issue = _issue(out)
    assert issue["code"] == code and text in issue["diagnostics"], issue
    if expression:
        assert issue["expression"][0].startswith(expression), issue
    assert CPR_TEXT not in json.dumps(out)
    assert [ctx.count(t) for t in ("operations", "treated_levels", "audit")] == before


def test_procedure_needs_write_role(ctx: Ctx, posted: dict[str, Any]) -> None:
    status, _, out = ctx.call("POST", "/fhir/Procedure", procedure(posted["patient"]), token=ctx.reader)
    assert status == 403 and _issue(out)["code"] == "forbidden"


# -- Observation --------------------------------------------------------------------------------------------
def test_observations_derived_scores(ctx: Ctx, posted: dict[str, Any]) -> None:
    pid = posted["patient"]
    status, _, bundle = ctx.call("GET", f"/fhir/Observation?patient={pid}")
    assert status == 200
    Bundle.model_validate(bundle)
    found = {e["resource"]["id"]: e["resource"] for e in bundle["entry"]}
    assert bundle["total"] == len(found) == 3
    for o in found.values():
        Observation.model_validate(o)
    baseline_5l, odi_row, month3 = (r["id"].rsplit(".", 1)[0] for r in posted["responses"])
    eq = found[f"{baseline_5l}.eq5d5l-index"]
    # 55555 on the Danish 5L value set: 1 - 1.758 = -0.758 (Jensen et al. 2021, the sum of the published weights)
    assert eq["valueQuantity"]["value"] == pytest.approx(-0.758, abs=1e-9)
    assert eq["code"]["coding"][0] == {"system": "http://snomed.info/sct", "code": "736534008",
                                       "display": "EuroQol five dimension five level index value (observable entity)"}
    assert eq["method"]["coding"][0] == {"system": "urn:spinereg:fhir:eq5d-valueset", "code": "5L-VT-Denmark"}
    assert "Jensen" in eq["method"]["text"] and eq["derivedFrom"] == [
        {"reference": f"QuestionnaireResponse/{baseline_5l}.eq5d5l"}]
    assert found[f"{month3}.eq5d5l-index"]["valueQuantity"]["value"] == 1.0  # 11111: full health
    odi = found[f"{odi_row}.odi-score"]
    # items 1,2,3,4,5,0,1,2,3,4: sum 25 of 50 -> 50.0 (hand calculation)
    assert odi["valueQuantity"]["value"] == 50.0 and odi["code"]["coding"][0]["code"] == "97909-6"
    assert odi["effectiveDateTime"] == (OP_DATE - timedelta(days=3)).isoformat()
    # read: the same resource, the same id every time
    for oid, doc in found.items():
        assert ctx.call("GET", f"/fhir/Observation/{oid}")[2] == doc
    status, _, only = ctx.call("GET", f"/fhir/Observation?patient=Patient/{pid}&code=http://loinc.org|97909-6")
    assert [e["resource"]["id"] for e in only["entry"]] == [f"{odi_row}.odi-score"]
    assert ctx.call("GET", f"/fhir/Observation?patient={pid}&_summary=count")[2]["total"] == 3
    status, _, out = ctx.call("GET", "/fhir/Observation")
    assert status == 400 and "patient" in _issue(out)["diagnostics"]
    assert ctx.call("GET", f"/fhir/Observation/{baseline_5l}.sf36-score")[0] == 404
    assert ctx.call("POST", "/fhir/Observation", found[f"{odi_row}.odi-score"])[0] == 405  # read-only


def test_observations_other_site(ctx: Ctx) -> None:
    rows = ctx.server.sql("SELECT prom_id FROM spinereg_proms WHERE patient_id = ? AND odi_1 IS NOT NULL AND "
                          "odi_2 IS NOT NULL AND odi_3 IS NOT NULL", ctx.other)
    assert rows
    oid = f"{rows[0][0]}.odi-score"
    assert ctx.call("GET", f"/fhir/Observation/{oid}", token=ctx.reader)[0] == 200
    assert ctx.call("GET", f"/fhir/Observation/{oid}")[0] == 404
    assert ctx.call("GET", f"/fhir/Observation?patient={ctx.other}")[2]["total"] == 0


# -- bulk: export, import into a fresh registry -------------------------------------------------------------
ENTITIES = ("patients", "operations", "treated_levels", "proms")


def _ndjson(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_round_trip_export_import(ctx: Ctx, posted: dict[str, Any], tmp_path: Path) -> None:
    home = ctx.server.home
    out = tmp_path / "bulk"
    done = ok(run_cli(home, "fhir", "export", str(out), "--db", ctx.db))
    files = sorted(p.name for p in out.iterdir())
    assert files == ["Observation.ndjson", "Patient.ndjson", "Procedure.ndjson", "QuestionnaireResponse.ndjson"]
    patients = _ndjson(out / "Patient.ndjson")
    assert len(patients) == ctx.count("patients") and f"{len(patients)} Patient" in done.stdout
    assert CPR_NEW not in (out / "Patient.ndjson").read_text() and all(set(p) <= {
        "resourceType", "id", "gender", "birthDate", "deceasedDateTime", "extension"} for p in patients)
    procs = {p["id"]: p for p in _ndjson(out / "Procedure.ndjson")}
    assert procs[posted["procedure"]["id"]] == posted["procedure"]  # the resource the API served
    qrs = {q["id"]: q for q in _ndjson(out / "QuestionnaireResponse.ndjson")}
    for posted_qr in posted["responses"]:
        assert {k: v for k, v in qrs[posted_qr["id"]].items()} == posted_qr
    # a fresh registry, the export imported through the registry's import
    fresh = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    ok(run_cli(home, "db", "init", "--db", fresh))
    done = ok(run_cli(home, "import", "--mapping", "fhir", *map(str, sorted(out.iterdir())), "--db", fresh))
    assert "created" in done.stdout and "Traceback" not in done.stderr
    # the same data: the registry's own tidy export of both, table by table (complications and imaging
    # findings are not FHIR resources here)
    a, b = tmp_path / "a", tmp_path / "b"
    ok(run_cli(home, "export", str(a), "--db", ctx.db))
    ok(run_cli(home, "export", str(b), "--db", fresh))
    for name in (*ENTITIES, "scores"):
        assert (a / f"{name}.csv").read_text() == (b / f"{name}.csv").read_text(), name
    assert len((b / "proms.csv").read_text().splitlines()) == ctx.count("proms") + 1
    # the derived scores: the fresh registry's export gives the same Observations
    again = tmp_path / "again"
    ok(run_cli(home, "fhir", "export", str(again), "--db", fresh))
    for t in ("Patient", "Procedure", "QuestionnaireResponse", "Observation"):
        assert (again / f"{t}.ndjson").read_text() == (out / f"{t}.ndjson").read_text(), t
    # audited: one import batch in the fresh registry's audit trail
    import sqlite3
    con = sqlite3.connect(str(tmp_path / "fresh.sqlite3"))
    try:
        kinds = con.execute("SELECT DISTINCT action FROM spinereg_audit").fetchall()
        n = con.execute("SELECT COUNT(*) FROM spinereg_proms").fetchone()[0]
    finally:
        con.close()
    assert kinds and n == ctx.count("proms")


def _bundle_doc(pid_ref: str = "urn:uuid:p1", value: int = 3) -> dict[str, Any]:
    pat = {"resourceType": "Patient", "identifier": [{"system": "urn:oid:1.2.208.176.1.2", "value": CPR_BUNDLE}]}
    proc = procedure("X", subject={"reference": pid_ref})
    qr = response("X", "nrs-back", {"nrs_back": value}, 95)
    qr["subject"] = {"reference": pid_ref}
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:p1", "resource": pat, "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": "urn:uuid:o1", "resource": proc, "request": {"method": "POST", "url": "Procedure"}},
        {"fullUrl": "urn:uuid:q1", "resource": qr, "request": {"method": "POST", "url": "QuestionnaireResponse"}}]}


def test_import_transaction_bundle(ctx: Ctx, tmp_path: Path) -> None:
    """A hospital's transaction Bundle: the CPR identifier pseudonymised at once, references by fullUrl, the
    time point assigned from authored (day 95: 3 months)."""
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(_bundle_doc()))
    fresh = f"sqlite:///{tmp_path / 'b.sqlite3'}"
    home = ctx.server.home
    ok(run_cli(home, "db", "init", "--db", fresh))
    done = ok(run_cli(home, "import", "--mapping", "fhir", str(path), "--db", fresh))
    assert CPR_BUNDLE not in done.stdout + done.stderr
    import sqlite3
    con = sqlite3.connect(str(tmp_path / "b.sqlite3"))
    try:
        pats = con.execute("SELECT patient_id, sex, birth_date FROM spinereg_patients").fetchall()
        ops = con.execute("SELECT operation_id, patient_id FROM spinereg_operations").fetchall()
        proms = con.execute("SELECT patient_id, operation_id, timepoint, nrs_back FROM spinereg_proms").fetchall()
        levels = con.execute("SELECT COUNT(*) FROM spinereg_treated_levels").fetchone()[0]
        dump = "\n".join(str(r) for r in con.execute("SELECT * FROM spinereg_audit").fetchall())
    finally:
        con.close()
    assert len(pats) == 1 and pats[0][1:] == ("female", "1965-03-20")
    pid = pats[0][0]
    assert len(pid) == 32 and CPR_BUNDLE not in pid and CPR_BUNDLE not in dump
    assert ops[0][1] == pid and ops[0][0].startswith("fhir-import:") and levels == 2
    assert proms == [(pid, ops[0][0], "3m", 3)]
    # the same file again: the same ids (a digest of each resource), nothing new
    done = ok(run_cli(home, "import", "--mapping", "fhir", str(path), "--db", fresh))
    assert "0 created" in done.stdout


def test_import_errors_name_file_line_element_value(ctx: Ctx, tmp_path: Path) -> None:
    home = ctx.server.home
    fresh = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    ok(run_cli(home, "db", "init", "--db", fresh))
    good = _bundle_doc()["entry"][2]["resource"]
    bad = json.loads(json.dumps(good))
    bad["item"][0]["answer"][0]["valueInteger"] = 12
    nd = tmp_path / "QuestionnaireResponse.ndjson"
    nd.write_text("\n".join([json.dumps(good), json.dumps(bad), '{"resourceType": "Questionn']) + "\n")
    bundle = tmp_path / "b.json"
    doc = _bundle_doc()
    doc["entry"][1]["resource"]["bodySite"][0]["coding"][0]["system"] = "http://snomed.info/sct"
    bundle.write_text(json.dumps(doc))
    done = run_cli(home, "import", "--mapping", "fhir", str(bundle), str(nd), "--db", fresh)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    err = done.stderr
    assert "QuestionnaireResponse.ndjson line 2: QuestionnaireResponse [QuestionnaireResponse.item.where(" \
           "linkId='nrs_back').answer]: item 'nrs_back': answer 12 is outside the item's range 0..10" in err, err
    assert "QuestionnaireResponse.ndjson line 3: malformed JSON" in err
    assert "b.json entry 1: Procedure [Procedure.bodySite[0].coding[0].system]: " in err
    assert "'http://snomed.info/sct'" in err and "nothing was imported" in err
    assert CPR_BUNDLE not in done.stdout + err
    dry = run_cli(home, "validate", "--mapping", "fhir", str(bundle), str(nd))  # the dry run: the same checks
    assert dry.returncode != 0 and "QuestionnaireResponse.ndjson line 2: " in dry.stderr and "Traceback" not in \
        dry.stderr
    import sqlite3
    con = sqlite3.connect(str(tmp_path / "c.sqlite3"))
    try:
        assert [con.execute(f"SELECT COUNT(*) FROM spinereg_{t}").fetchone()[0] for t in ENTITIES] == [0, 0, 0, 0]
    finally:
        con.close()


def test_capability_statement_lists_procedure_and_observation(ctx: Ctx) -> None:
    status, _, body = ctx.call("GET", "/fhir/metadata", token=None)
    assert status == 200
    kinds = {r["type"]: {i["code"] for i in r["interaction"]} for r in body["rest"][0]["resource"]}
    assert kinds["Procedure"] == {"create", "read"} and kinds["Observation"] == {"read", "search-type"}

"""Studies from the web: an analyst runs the seed study spec on the served registry and downloads its outputs.

One server (module scope) on a synthetic registry of 8,000 patients (seed 7), on which the seed
study's cohort is not empty.  The cohort size a web run reports is checked against an independent
``spinereg study run --db`` on the same database, in a process of its own.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import os
import re
import secrets
import signal
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import (
    PASSWORD,
    ROOT,
    Browser,
    Response,
    Server,
    ok,
    run_cli,
    run_parallel,
    start_server,
    stop_server,
)

SEED_SPEC = ROOT / "examples" / "pvp-cancer-vcf" / "study.toml"
RUN_TIMEOUT = 240  # seconds: a run takes about ten on this registry


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("studies")
    db = f"sqlite:///{home / 'registry.sqlite3'}"
    ok(run_cli(home, "db", "init", "--db", db))
    ok(run_cli(home, "synth", "--patients", "8000", "--seed", "7", "--db", db))
    ok(run_cli(home, "site", "add", "h01", "--name", "Hospital 1", "--hospital", "SYN-H01", "--db", db))
    run_parallel(home, ["user", "add", "analyst1", "--role", "analyst", "--db", db],
                 ["user", "add", "surgeon1", "--role", "surgeon", "--site", "h01", "--db", db],
                 SPINEREG_PASSWORD=PASSWORD)
    srv = start_server(home, db)
    try:
        yield srv
    finally:
        stop_server(srv)


def fetch_bytes(b: Browser, path: str) -> tuple[int, Any, bytes]:
    req = urllib.request.Request(b.base + path, headers={"Accept-Language": b.language})
    try:
        with b.opener.open(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def upload(b: Browser, filename: str, content: bytes) -> Response:
    """POST a spec file to /studies/ as the form does (multipart, with the page's CSRF token)."""
    token = b.csrf(b.get("/studies/"))
    boundary = "----spinereg-" + secrets.token_hex(8)
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="csrfmiddlewaretoken"\r\n\r\n{token}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="spec_file"; filename="{filename}"\r\n'
            "Content-Type: application/toml\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(b.base + "/studies/", data=body, headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}", "Referer": b.base + "/studies/",
        "Accept-Language": b.language})
    try:
        with b.opener.open(req, timeout=60) as resp:
            return Response(resp.status, resp.headers, resp.read().decode())
    except urllib.error.HTTPError as exc:
        return Response(exc.code, exc.headers, exc.read().decode())


def run_id_of(resp: Response) -> str:
    assert resp.status == 302, html.unescape(resp.body)[:3000]
    m = re.fullmatch(r"/studies/runs/([^/]+)/", resp.location())
    assert m, resp.location()
    return m.group(1)


def wait_for(b: Browser, run_id: str) -> tuple[Response, float]:
    """The run page once the run has finished, and how long it took from the first poll (bounded)."""
    t0 = time.monotonic()
    while True:
        page = b.get(f"/studies/runs/{run_id}/")
        assert page.status == 200, page.body[:2000]
        if '<meta http-equiv="refresh"' not in page.body:
            return page, time.monotonic() - t0
        assert "Running: this page reloads every 3 seconds." in page.body
        assert time.monotonic() - t0 < RUN_TIMEOUT, f"the run did not finish within {RUN_TIMEOUT} s"
        time.sleep(1)


def finished_run(server: Server, b: Browser, resp: Response) -> tuple[str, str]:
    run_id = run_id_of(resp)
    page, _ = wait_for(b, run_id)
    text = html.unescape(page.body)
    assert "Done." in text, text[-3000:] + (server.home / "web-studies" / run_id / "run.log").read_text()
    return run_id, text


def results_of(b: Browser, run_id: str) -> dict[str, Any]:
    status, headers, body = fetch_bytes(b, f"/studies/runs/{run_id}/results.json")
    assert status == 200
    assert headers.get("Content-Disposition", "").startswith("attachment")
    return dict(json.loads(body))


def cohort_size(results: dict[str, Any]) -> int:
    return int(results["tables"]["flow"][-1]["n_patients"])


@pytest.fixture(scope="module")
def seed_run(server: Server) -> tuple[str, float]:
    analyst = server.login("analyst1")
    index = analyst.get("/studies/")
    assert index.status == 200 and "pvp-cancer-vcf" in index.body
    started = time.monotonic()
    resp = analyst.post_form("/studies/", {"bundled": "pvp-cancer-vcf"})
    run_id = run_id_of(resp)
    first = analyst.get(f"/studies/runs/{run_id}/")  # the runner needs seconds: it is still running
    assert '<meta http-equiv="refresh" content="3">' in first.body and "Running" in first.body
    assert "/results.json" not in first.body
    page, _ = wait_for(analyst, run_id)
    assert '<meta http-equiv="refresh"' not in page.body
    seconds = time.monotonic() - started
    assert "Done." in page.body, html.unescape(page.body)
    print(f"web study run of the seed spec: {seconds:.1f} s")  # the figure for the report (-s shows it)
    return run_id, seconds


def test_seed_study_from_the_web(server: Server, seed_run: tuple[str, float], tmp_path: Path) -> None:
    run_id, _seconds = seed_run
    analyst = server.login("analyst1")
    results = results_of(analyst, run_id)
    # an independent run: the command line on the same database, in a process of its own
    done = ok(run_cli(server.home, "study", "run", str(SEED_SPEC), "--out", str(tmp_path / "cli"), "--db",
                      server.db_url, "--format", "none"))
    m = re.search(r"cohort: (\d+) patients?", done.stdout)
    assert m, done.stdout
    assert cohort_size(results) == int(m.group(1)) > 0
    cli_results = json.loads((tmp_path / "cli" / "results.json").read_text(encoding="utf-8"))
    assert results["tables"]["flow"] == cli_results["tables"]["flow"]
    assert results["data"]["sha256"] == cli_results["data"]["sha256"]  # the same registry content
    page = html.unescape(analyst.get(f"/studies/runs/{run_id}/").body)
    assert f"{m.group(1)} patients, each with one index operation" in page
    assert "analyst1 (analyst)" in page and "bundled: pvp-cancer-vcf" in page
    # the spec that ran: results.json records its hash; its [data] is this registry
    status, _h, spec = fetch_bytes(analyst, f"/studies/runs/{run_id}/spec.toml")
    assert status == 200
    assert results["study"]["spec_sha256"] == hashlib.sha256(spec).hexdigest()
    assert tomllib.loads(spec.decode())["data"] == {"database": server.db_url}
    assert hashlib.sha256(SEED_SPEC.read_bytes()).hexdigest() in page  # the spec as shipped
    assert "data.database = &#x27;sqlite:///spinereg-demo/registry.sqlite3&#x27; is ignored" in \
        analyst.get(f"/studies/runs/{run_id}/").body
    # the report, three formats
    status, headers, report = fetch_bytes(analyst, f"/studies/runs/{run_id}/report.html")
    assert status == 200 and headers.get_content_type() == "text/html"
    assert results["study"]["title"] in report.decode()
    status, headers, docx = fetch_bytes(analyst, f"/studies/runs/{run_id}/report.docx")
    assert status == 200 and "wordprocessingml" in headers.get_content_type()
    with zipfile.ZipFile(io.BytesIO(docx)) as z:
        assert "Percutaneous vertebroplasty" in z.read("word/document.xml").decode()
    # the PDF is typeset by reportlab: no browser is needed, so it is always there
    status, headers, pdf = fetch_bytes(analyst, f"/studies/runs/{run_id}/report.pdf")
    assert status == 200 and headers.get_content_type() == "application/pdf" and pdf.startswith(b"%PDF-")
    assert f"{run_id}-report.pdf" in headers.get("Content-Disposition", "")
    # aggregate and pseudonymised: no patient's or operation's identifier of the cohort's candidates
    candidates = server.sql("SELECT patient_id, operation_id FROM spinereg_operations WHERE indication = "
                            "'cancer_vcf' AND procedure_category = 'vertebroplasty'")
    assert len(candidates) >= cohort_size(results)
    with zipfile.ZipFile(io.BytesIO(docx)) as z:
        docx_text = z.read("word/document.xml").decode()
    outputs = json.dumps(results) + report.decode() + docx_text
    assert not [key for row in candidates for key in row if re.search(rf"\b{key}\b", outputs)]


def test_only_run_studies_roles(server: Server, seed_run: tuple[str, float]) -> None:
    run_id, _seconds = seed_run
    surgeon = server.login("surgeon1")
    assert 'href="/studies/"' not in surgeon.get("/").body
    assert 'href="/studies/"' in server.login("analyst1").get("/").body  # the navigation
    for path in ("/studies/", f"/studies/runs/{run_id}/", f"/studies/runs/{run_id}/results.json",
                 f"/studies/runs/{run_id}/report.pdf"):
        assert surgeon.get(path).status == 403, path
    token = surgeon.csrf(surgeon.get("/"))
    before = sorted(p.name for p in (server.home / "web-studies").iterdir())
    assert surgeon.request("/studies/", {"csrfmiddlewaretoken": token, "bundled": "pvp-cancer-vcf"}).status == 403
    assert sorted(p.name for p in (server.home / "web-studies").iterdir()) == before
    anonymous = server.browser()
    assert anonymous.get(f"/studies/runs/{run_id}/results.json").location().startswith("/accounts/login/")


def test_download_names_outside_the_allow_list(server: Server, seed_run: tuple[str, float]) -> None:
    run_id, _seconds = seed_run
    analyst = server.login("analyst1")
    assert (server.home / "web-studies" / run_id / "run.log").is_file()
    assert (server.home / "web-studies" / run_id / "out" / "tables").is_dir()
    for name in ("run.log", "status.json", "out%2Fresults.json", "..%2Fstatus.json", "%2E%2E", "tables",
                 "results.csv", "report.HTML"):
        assert fetch_bytes(analyst, f"/studies/runs/{run_id}/{name}")[0] == 404, name
    for bad_run in ("20990101-000000-abcdef", "..", "%2E%2E%2Fweb-studies", run_id + "x"):
        assert fetch_bytes(analyst, f"/studies/runs/{bad_run}/results.json")[0] == 404, bad_run
        assert fetch_bytes(analyst, f"/studies/runs/{bad_run}/")[0] == 404, bad_run
    assert fetch_bytes(analyst, f"/studies/runs/{run_id}/results.json")[0] == 200


def test_upload_with_a_bad_key_shows_the_engines_messages(server: Server) -> None:
    analyst = server.login("analyst1")
    runs = sorted((server.home / "web-studies").iterdir()) if (server.home / "web-studies").exists() else []
    text = SEED_SPEC.read_text(encoding="utf-8")
    bad = text.replace("age_min = 18", "age_minimum = 18").replace('valueset = "Denmark"', 'valueset = "Danmark"')
    assert bad != text
    page = upload(analyst, "my-study.toml", bad.encode())
    assert page.status == 200
    body = html.unescape(page.body)
    # the engine's messages (spinereg study check), naming the file, the key and the value
    assert "my-study.toml: cohort.age_minimum: unknown key; did you mean 'age_min'?" in body
    assert "my-study.toml: outcomes.eq5d: no EQ-5D-3L TTO value set for country 'Danmark'" in body
    assert "Traceback" not in body
    page = upload(analyst, "broken.toml", b"title = \n")
    assert "broken.toml: not valid TOML" in html.unescape(page.body)
    page = upload(analyst, "huge.toml", b"#" * (70 * 1024))
    assert "huge.toml is 71680 bytes: a study spec may have at most 65536 bytes" in html.unescape(page.body)
    page = upload(analyst, "huger.toml", b"#" * (1024 * 1024))  # refused before the body is read
    assert "The upload is too large: a study spec may have at most 65536 bytes" in html.unescape(page.body)
    after = sorted((server.home / "web-studies").iterdir()) if (server.home / "web-studies").exists() else []
    assert after == runs  # nothing was started


def test_upload_pointing_elsewhere_runs_on_this_registry(server: Server, tmp_path: Path) -> None:
    """data.database / data.extract in an uploaded spec are overridden (and the page says so)."""
    analyst = server.login("analyst1")
    other = tmp_path / "other"
    ok(run_cli(tmp_path, "synth", "--patients", "60", "--seed", "8", "--out", str(other)))
    assert (other / "dataset.json").is_file()
    text = SEED_SPEC.read_text(encoding="utf-8")
    spec = text.replace('database = "sqlite:///spinereg-demo/registry.sqlite3"', f'extract = "{other}"')
    assert spec != text
    run_id, page = finished_run(server, analyst, upload(analyst, "elsewhere.toml", spec.encode()))
    assert f"The spec's data.extract = '{other}' is ignored" in page
    results = results_of(analyst, run_id)
    (n_patients,) = server.sql("SELECT COUNT(*) FROM spinereg_patients")[0]
    assert results["data"]["n_patients"] == n_patients == 8000
    assert results["data"]["name"] == "synthetic registry (seed 7, 8000 patients)"  # not the extract
    assert results["study"]["spec"]["data"] == {"database": server.db_url, "extract": None}
    assert "upload: elsewhere.toml" in page


def test_a_failed_run_shows_the_engines_message(server: Server) -> None:
    """A valid spec whose cohort is empty on this registry: the run fails with the engine's message."""
    analyst = server.login("analyst1")
    text = SEED_SPEC.read_text(encoding="utf-8")
    spec = text.replace("age_min = 18", "age_min = 18\nage_max = 19")
    assert spec != text
    run_id = run_id_of(upload(analyst, "young.toml", spec.encode()))
    page, _seconds = wait_for(analyst, run_id)
    body = html.unescape(page.body)
    assert "The study failed:" in body
    assert "the cohort is empty: no operation passes the criteria" in body and "age 0" in body
    assert "Traceback" not in body
    assert f"{run_id}/spec.toml" in body and f"{run_id}/report.pdf" not in body and f"{run_id}/results.json" not in body
    assert fetch_bytes(analyst, f"/studies/runs/{run_id}/results.json")[0] == 404
    assert fetch_bytes(analyst, f"/studies/runs/{run_id}/spec.toml")[0] == 200
    assert f'<a href="/studies/runs/{run_id}/">{run_id}</a>' in analyst.get("/studies/").body


def test_run_limit_and_a_runner_that_dies(server: Server) -> None:
    """At most MAX_RUNNING (2) runs at once; a runner killed mid-run is shown as stopped, not as running."""
    analyst = server.login("analyst1")
    ids = [run_id_of(analyst.post_form("/studies/", {"bundled": "pvp-cancer-vcf"})) for _ in range(2)]
    third = analyst.post_form("/studies/", {"bundled": "pvp-cancer-vcf"})
    assert third.status == 200
    assert "2 studies are running already" in html.unescape(third.body)
    for run_id in ids:
        status = json.loads((server.home / "web-studies" / run_id / "status.json").read_text(encoding="utf-8"))
        assert status["status"] == "running" and isinstance(status["pid"], int)
        os.kill(status["pid"], signal.SIGKILL)  # the runner this test started (through the server)
    for run_id in ids:
        page, _seconds = wait_for(analyst, run_id)
        body = html.unescape(page.body)
        assert "The study failed:" in body and "The run stopped unexpectedly" in body, body[-2000:]

"""``spinereg serve --demo``: the demo's synthetic registry with one demo user per role."""

from __future__ import annotations

import re
import time
from pathlib import Path

from tests.web.conftest import ok, run_cli, start_server, stop_server


def test_serve_demo_users_per_role(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    url = f"sqlite:///{demo / 'registry.sqlite3'}"
    ok(run_cli(tmp_path, "synth", "--patients", "80", "--seed", "3", "--db", url))  # as `spinereg demo` leaves it
    server = start_server(tmp_path, url, "--demo", "--dir", str(demo), env={"SPINEREG_SESSION_MAX_AGE": "8"})
    try:
        log = server.log.read_text()
        m = re.search(r"password for this run: (\S+)", log)
        assert m, log
        password = m.group(1)
        analyst = server.browser()
        assert analyst.login("demo-analyst", password).status == 302
        page = analyst.get("/")
        assert "80 patients" in page.body and "SYNTHETIC DATA" in page.body  # national role: every site
        surgeon = server.browser()
        assert surgeon.login("demo-surgeon", password).status == 302
        (largest, _n), *_ = server.sql("SELECT hospital, COUNT(*) AS n FROM spinereg_operations GROUP BY hospital "
                                       "ORDER BY n DESC, hospital")
        (n_site,) = server.sql("SELECT COUNT(DISTINCT patient_id) FROM spinereg_operations WHERE hospital = ?",
                               largest)[0]
        assert f"{n_site} patients" in surgeon.get("/").body and n_site < 80
        # what a demo user enters joins the demo's synthetic dataset: the demo stays synthetic
        assert surgeon.post_form("/clinical/register/", {"cpr": "010203-1234"}).status == 302
        assert server.sql("SELECT d.synthetic FROM spinereg_patients p JOIN spinereg_dataset d ON "
                          "d.id = p.dataset_id WHERE p.patient_id NOT IN (SELECT patient_id FROM "
                          "spinereg_operations)") == [(1,)]
        admin = server.browser()
        assert admin.login("demo-admin", password).status == 302
        assert admin.get("/").location() == "/accounts/totp/"
        assert server.browser().login("demo-surgeon", "not-the-password-1").status == 200
        # the absolute session timeout (8 s here, 12 h by default): active or not, log in again
        late = server.browser()
        assert late.login("demo-auditor", password).status == 302
        t0 = time.monotonic()
        assert late.get("/").status == 200
        time.sleep(max(0.0, 8.5 - (time.monotonic() - t0)))
        assert late.get("/").location().startswith("/accounts/login/")
    finally:
        stop_server(server)
    # ... so that --demo serves it again (it refuses a registry holding real data)
    again = start_server(tmp_path, url, "--demo", "--dir", str(demo))
    try:
        assert "password for this run" in again.log.read_text()
    finally:
        stop_server(again)

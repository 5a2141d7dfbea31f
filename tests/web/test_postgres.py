"""``spinereg serve`` on PostgreSQL, behind an HTTPS proxy (--behind-https): a smoke test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CI
from tests.registry.conftest import PgCluster
from tests.web.conftest import PASSWORD, health, ok, run_cli, start_server, stop_server


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    try:
        cluster = PgCluster()
    except Exception as exc:  # no PostgreSQL binaries, or they would not start
        msg = f"cannot start a throwaway PostgreSQL cluster: {exc}"
        if CI:
            pytest.fail(msg + " (CI=true: PostgreSQL is required)")
        pytest.skip(msg)
    try:
        yield cluster.create_database()
    finally:
        cluster.stop()


def test_serve_on_postgresql_behind_https(pg_url: str, tmp_path: Path) -> None:
    line = run_cli(tmp_path, "serve", "--db", pg_url, "--port", "1")
    assert line.returncode == 1 and "spinereg db init" in line.stderr and "Traceback" not in line.stderr
    ok(run_cli(tmp_path, "db", "init", "--db", pg_url))
    ok(run_cli(tmp_path, "user", "add", "pgadmin", "--role", "admin", "--db", pg_url, SPINEREG_PASSWORD=PASSWORD))
    server = start_server(tmp_path, pg_url, "--behind-https")
    try:
        assert health(server) == {"status": "ok", "schema": "current"}
        b = server.browser()
        assert b.get("/accounts/login/").location().startswith("https://")  # plain HTTP is sent to HTTPS
        page = b.get("/accounts/login/", headers={"X-Forwarded-Proto": "https"})
        assert page.status == 200
        assert page.headers["Strict-Transport-Security"].startswith("max-age=31536000")
        csrf = next(v for k, v in page.headers.items() if k.lower() == "set-cookie" and v.startswith("csrftoken="))
        assert "Secure" in csrf and "SameSite=Lax" in csrf
        assert "SYNTHETIC" not in page.body  # an empty, real registry carries no banner
        anonymous = b.get("/", headers={"X-Forwarded-Proto": "https"})
        assert anonymous.status == 302 and anonymous.location().startswith("/accounts/login/")
    finally:
        stop_server(server)

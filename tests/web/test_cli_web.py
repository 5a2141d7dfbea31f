"""``spinereg user``, ``site``, ``serve`` refusals and ``check --deploy``, each in a process of its own."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.web.conftest import PASSWORD, cli_env, ok, run_cli


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_serve_refuses_a_missing_registry(tmp_path: Path) -> None:
    db = tmp_path / "none" / "registry.sqlite3"
    line = _one_error_line(run_cli(tmp_path, "serve", "--db", f"sqlite:///{db}", "--port", "1"))
    assert "spinereg db init" in line and str(db) in line
    assert not db.exists()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    home = tmp_path_factory.mktemp("cli")
    db = f"sqlite:///{home / 'registry.sqlite3'}"
    ok(run_cli(home, "db", "init", "--db", db))
    ok(run_cli(home, "site", "add", "h01", "--name", "Hospital 1", "--hospital", "SYN-H01", "--db", db))
    return home, db


def test_serve_refuses_an_outdated_schema(registry: tuple[Path, str], tmp_path: Path) -> None:
    db = tmp_path / "registry.sqlite3"
    shutil.copyfile(registry[1].removeprefix("sqlite:///"), db)
    with sqlite3.connect(db) as con:  # as if the web app's migration were new since the last `db init`
        assert con.execute("DELETE FROM django_migrations WHERE app = 'spinereg_web'").rowcount >= 1
    line = _one_error_line(run_cli(tmp_path, "serve", "--db", f"sqlite:///{db}", "--port", "1"))
    assert "out-of-date schema" in line and "spinereg db init" in line


def test_db_init_creates_the_web_tables(registry: tuple[Path, str]) -> None:
    _home, db = registry
    with sqlite3.connect(db.removeprefix("sqlite:///")) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"auth_user", "django_session", "axes_accessattempt", "otp_totp_totpdevice", "spinereg_web_site",
            "spinereg_web_staffprofile", "spinereg_patients"} <= tables


def test_user_add_refuses_a_short_or_common_password(registry: tuple[Path, str]) -> None:
    home, db = registry
    line = _one_error_line(run_cli(home, "user", "add", "shorty", "--role", "surgeon", "--site", "h01", "--db", db,
                                   SPINEREG_PASSWORD="short-pw"))
    assert "at least 12 characters" in line
    line = _one_error_line(run_cli(home, "user", "add", "common", "--role", "surgeon", "--site", "h01", "--db", db,
                                   SPINEREG_PASSWORD="qwerty123456"))
    assert "too common" in line
    with sqlite3.connect(db.removeprefix("sqlite:///")) as con:
        assert con.execute("SELECT COUNT(*) FROM auth_user WHERE username IN ('shorty', 'common')").fetchone() == (0,)


def test_user_add_list_set_role_disable(registry: tuple[Path, str]) -> None:
    home, db = registry
    line = _one_error_line(run_cli(home, "user", "add", "ann", "--role", "boss", "--site", "h01", "--db", db,
                                   SPINEREG_PASSWORD=PASSWORD))
    assert "unknown role 'boss'" in line
    line = _one_error_line(run_cli(home, "user", "add", "ann", "--role", "surgeon", "--site", "h9", "--db", db,
                                   SPINEREG_PASSWORD=PASSWORD))
    assert "no site 'h9'" in line
    ok(run_cli(home, "user", "add", "ann", "--role", "surgeon", "--site", "h01", "--db", db,
               SPINEREG_PASSWORD=PASSWORD))
    ok(run_cli(home, "user", "set-role", "ann", "auditor", "--db", db))
    ok(run_cli(home, "user", "disable", "ann", "--db", db))
    with sqlite3.connect(db.removeprefix("sqlite:///")) as con:
        row = con.execute("SELECT u.is_active, p.role, s.code FROM auth_user u JOIN spinereg_web_staffprofile p "
                          "ON p.user_id = u.id LEFT JOIN spinereg_web_site s ON s.id = p.site_id "
                          "WHERE u.username = 'ann'").fetchone()
    assert row == (0, "auditor", "h01")
    listing = ok(run_cli(home, "user", "list", "--db", db)).stdout
    assert "ann" in listing and "auditor" in listing


def test_check_deploy_is_clean_behind_https(tmp_path: Path) -> None:
    env = cli_env(tmp_path, SPINEREG_BEHIND_HTTPS="1", SPINEREG_DATABASE_URL=f"sqlite:///{tmp_path / 'r.sqlite3'}")
    done = subprocess.run([sys.executable, "-m", "spinereg.web", "check", "--deploy", "--fail-level", "WARNING"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "no issues" in done.stdout
    key = tmp_path / "web-secret.key"
    assert key.stat().st_mode & 0o777 == 0o600
    # without HTTPS, the same check names what is missing
    env.pop("SPINEREG_BEHIND_HTTPS")
    done = subprocess.run([sys.executable, "-m", "spinereg.web", "check", "--deploy", "--fail-level", "WARNING"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0 and "SESSION_COOKIE_SECURE" in done.stderr + done.stdout


def test_migrations_match_the_models(tmp_path: Path) -> None:
    env = cli_env(tmp_path, SPINEREG_DATABASE_URL=f"sqlite:///{tmp_path / 'r.sqlite3'}",
                  SPINEREG_SECRET_KEY="k" * 64)
    done = subprocess.run([sys.executable, "-m", "spinereg.web", "makemigrations", "spinereg_web", "--check",
                           "--dry-run"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr

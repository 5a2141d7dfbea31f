"""Web registry fixtures: the web app always runs in processes of its own.

The registry tests configure Django in the pytest process with the registry's
standalone settings; the web settings cannot share that process.  So every
web test drives the command line (``python -m spinereg ...``) and a real
``spinereg serve`` (gunicorn on 127.0.0.1, a free port) over HTTP.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

PASSWORD = "a-long-test-passphrase-7"
ROOT = Path(__file__).resolve().parents[2]


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPINEREG_", "DJANGO_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["SPINEREG_HOME"] = str(home)
    env.update(extra)
    return env


def run_cli(home: Path, *args: str, timeout: float = 120, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spinereg", *args], env=cli_env(home, **extra), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def run_parallel(home: Path, *commands: list[str], **extra: str) -> None:
    """Run independent commands at once (each a process of its own; SQLite serialises their writes)."""
    procs = [subprocess.Popen([sys.executable, "-m", "spinereg", *args], env=cli_env(home, **extra), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
             for args in commands]
    for args, proc in zip(commands, procs, strict=True):
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, f"{args}: {err}{out}"


def ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, done.stderr + done.stdout
    return done


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class Response:
    status: int
    headers: Any
    body: str

    def location(self) -> str:
        return str(self.headers.get("Location", ""))


@dataclass
class Browser:
    """A cookie-keeping HTTP client that does not follow redirects."""

    base: str
    language: str = "en"
    jar: http.cookiejar.CookieJar = field(default_factory=http.cookiejar.CookieJar)

    def __post_init__(self) -> None:
        self.opener = urllib.request.build_opener(_NoRedirect(), urllib.request.HTTPCookieProcessor(self.jar))

    def request(self, path: str, data: dict[str, str] | None = None, headers: dict[str, str] | None = None,
                ) -> Response:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(self.base + path, data=body, headers={
            "Accept-Language": self.language, "Referer": self.base + path, **(headers or {})})
        try:
            with self.opener.open(req, timeout=30) as resp:
                return Response(resp.status, resp.headers, resp.read().decode())
        except urllib.error.HTTPError as exc:
            return Response(exc.code, exc.headers, exc.read().decode())

    def get(self, path: str, **kw: Any) -> Response:
        return self.request(path, **kw)

    def csrf(self, page: Response) -> str:
        m = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.body)
        assert m, page.body[:500]
        return m.group(1)

    def post_form(self, path: str, data: dict[str, str]) -> Response:
        """POST ``data`` to ``path`` with the CSRF token of the form page at ``path``."""
        page = self.get(path)
        return self.request(path, {"csrfmiddlewaretoken": self.csrf(page), **data})

    def login(self, username: str, password: str = PASSWORD, otp_token: str = "") -> Response:
        return self.post_form("/accounts/login/", {"username": username, "password": password,
                                                   "otp_token": otp_token})

    def cookie(self, name: str) -> http.cookiejar.Cookie | None:
        return next((c for c in self.jar if c.name == name), None)


@dataclass
class Server:
    base: str
    home: Path
    db_url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def browser(self, language: str = "en") -> Browser:
        return Browser(self.base, language)

    def login(self, username: str, password: str = PASSWORD) -> Browser:
        """A browser logged in as ``username`` (the login must succeed)."""
        b = self.browser()
        assert b.login(username, password).status == 302
        return b

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the SQLite registry directly (an independent view of what the pages show)."""
        path = self.db_url.removeprefix("sqlite:///")
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return con.execute(query, params).fetchall()
        finally:
            con.close()


def start_server(home: Path, db_url: str, *extra: str, env: dict[str, str] | None = None) -> Server:
    port = free_port()
    log = home / "serve.log"
    with log.open("wb") as fh:
        db = ["--db", db_url] if "--demo" not in extra else []
        proc = subprocess.Popen([sys.executable, "-m", "spinereg", "serve", *db, "--port", str(port),
                                 "--workers", "1", *extra], env=cli_env(home, **(env or {})), stdout=fh,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", home, db_url, proc, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"spinereg serve exited: {log.read_text()}")
        try:
            with urllib.request.urlopen(server.base + "/healthz", timeout=5) as resp:
                if resp.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    stop_server(server)
    raise AssertionError(f"spinereg serve did not answer within 60 s: {log.read_text()}")


def stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)  # gunicorn's master (serve execs it): it stops its workers
        try:
            server.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def synthetic_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A synthetic SQLite registry (200 patients) with two sites and four users, served by gunicorn."""
    home = tmp_path_factory.mktemp("web")
    db = f"sqlite:///{home / 'registry.sqlite3'}"
    ok(run_cli(home, "db", "init", "--db", db))
    ok(run_cli(home, "synth", "--patients", "200", "--seed", "7", "--db", db))
    run_parallel(home, ["site", "add", "h01", "--name", "Hospital 1", "--hospital", "SYN-H01", "--db", db],
                 ["site", "add", "h02", "--name", "Hospital 2", "--hospital", "SYN-H02", "--db", db])
    users = [("surgeon1", "surgeon", "h01"), ("surgeon2", "surgeon", "h02"), ("lockme", "reviewer", "h01"),
             ("admin1", "admin", None)]
    run_parallel(home, *[["user", "add", name, "--role", role, *(["--site", site] if site else []), "--db", db]
                         for name, role, site in users], SPINEREG_PASSWORD=PASSWORD)
    server = start_server(home, db)
    try:
        yield server
    finally:
        stop_server(server)


def health(server: Server) -> dict[str, Any]:
    with urllib.request.urlopen(server.base + "/healthz", timeout=10) as resp:
        return dict(json.loads(resp.read()))

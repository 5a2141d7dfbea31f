"""Registry fixtures: every registry test runs on SQLite and on a real PostgreSQL.

The PostgreSQL server is a throwaway cluster started from the Debian
``postgresql`` package's binaries (initdb + pg_ctl) on a Unix socket in a
temporary directory.  Outside CI a missing server makes those tests skip,
saying why; under ``CI=true`` it is a failure (``.ci/run`` installs it).
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CI

_counter = itertools.count()


def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


class PgCluster:
    def __init__(self) -> None:
        bindir = _pg_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql")
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="spinereg-pg-"))
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.sock.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.sock, "postgres")
        self.port = 54000 + os.getpid() % 1000
        subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U",
                                     "spinereg", "-E", "UTF8", "--no-locale"]),
                       check=True, capture_output=True, timeout=120)
        opts = f"-k {self.sock} -p {self.port} -c listen_addresses='' -c fsync=off"
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(self.data), "-o", opts, "-w",
                                     "-l", str(self.root / "log"), "start"]),
                       check=True, capture_output=True, timeout=120)

    def url(self, dbname: str) -> str:
        host = urllib.parse.quote(str(self.sock), safe="")
        return f"postgresql://spinereg@{host}:{self.port}/{dbname}"

    def create_database(self) -> str:
        import psycopg

        name = f"spinereg_test_{os.getpid()}_{next(_counter)}"
        with psycopg.connect(host=str(self.sock), port=self.port, user="spinereg", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(_as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                                     "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster | str]:
    try:
        cluster = PgCluster()
    except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
        detail = exc.stderr.decode(errors="replace") if isinstance(exc, subprocess.CalledProcessError) else ""
        yield f"cannot start a throwaway PostgreSQL cluster: {exc} {detail}".strip()
        return
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty registry database URL (SQLite file or PostgreSQL database)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    cluster = request.getfixturevalue("pg_cluster")
    if isinstance(cluster, str):
        if CI:
            pytest.fail(cluster + " (CI=true: PostgreSQL is required)")
        pytest.skip(cluster)
    return cluster.create_database()


@pytest.fixture
def registry(db_url: str) -> Iterator[str]:
    """An opened, migrated registry; yields its connection alias."""
    from spinereg.registry import migrate, open_registry

    alias = open_registry(db_url)
    migrate(alias)
    yield alias
    from django.db import connections

    connections[alias].close()

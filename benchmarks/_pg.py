"""A PostgreSQL server for benchmarks: Debian's binaries, a data folder kept under a cache
directory (a national synthetic registry takes a while to load), a Unix socket only (no TCP
port: loopback is not even needed), stopped at the end of the run."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise SystemExit("PostgreSQL server binaries not found: apt-get install postgresql")
    return Path(initdb).resolve().parent


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def postgres(root: Path, dbname: str = "spinereg") -> Iterator[str]:
    """Start (creating when new) the cluster in ``root``; yield the URL of database ``dbname``."""
    bindir = _bindir()
    data, sock = root / "data", root / "sock"
    sock.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    if not (data / "PG_VERSION").exists():
        subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "spinereg",
                                     "-E", "UTF8", "--no-locale"]), check=True, capture_output=True)
    opts = f"-k {sock} -c listen_addresses='' -c shared_buffers=512MB -c work_mem=64MB"
    subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-w", "-l",
                                 str(root / "log"), "start"]), check=True, capture_output=True)
    try:
        import psycopg

        with psycopg.connect(host=str(sock), port=5432, user="spinereg", dbname="postgres", autocommit=True) as c:
            if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone():
                c.execute(f'CREATE DATABASE "{dbname}"')
        yield f"postgresql://spinereg@{urllib.parse.quote(str(sock), safe='')}:5432/{dbname}"
    finally:
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
                       capture_output=True)

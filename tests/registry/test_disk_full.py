"""A full disk under an SQLite registry (issue 15, point 3): writers get a clean error, nothing
is half-written, and ``PRAGMA integrity_check`` stays ok.

The disk is a 3 MB tmpfs mounted for the test (needs root, as in CI; elsewhere the test skips,
saying why; under ``CI=true`` it fails).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CI

ROOT = Path(__file__).resolve().parents[2]

FILL = """
import json, sys
from spinereg import SpineregError
from spinereg.registry import RegistryWriter, open_registry
alias = open_registry(sys.argv[1])
w = RegistryWriter(alias, "load", who="loadtest")
written, error = 0, None
while written < 20000:
    try:
        w.create("patients", {"patient_id": f"P{written:06d}", "sex": "female"})
    except SpineregError as exc:
        error = [type(exc).__name__, str(exc)]
        break
    written += 1
print(json.dumps({"written": written, "error": error}))
"""


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPINEREG_", "DJANGO_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    env["SPINEREG_HOME"] = str(home)
    return env


@pytest.fixture
def small_disk() -> Iterator[Path]:
    mnt = Path(tempfile.mkdtemp(prefix="spinereg-full-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        msg = f"cannot mount a small tmpfs for the disk-full test (needs root): {done.stderr.strip()}"
        mnt.rmdir()
        if CI:
            pytest.fail(msg + " (CI=true)")
        pytest.skip(msg)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True, check=False)
        mnt.rmdir()


def test_a_full_disk_gives_a_clean_error_and_an_intact_registry(small_disk: Path) -> None:
    db = small_disk / "registry.sqlite3"
    url = f"sqlite:///{db}"
    env = _env(small_disk)
    subprocess.run([sys.executable, "-m", "spinereg", "db", "migrate", "--db", url], env=env, check=True,
                   capture_output=True, timeout=300)
    done = subprocess.run([sys.executable, "-c", FILL, url], env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["error"] is not None, "the disk never filled"
    assert got["error"][0] == "DatabaseError" and "full" in got["error"][1]
    # the command line says so in one line, no traceback, and writes nothing
    other = f"sqlite:///{small_disk / 'other.sqlite3'}"
    cli = subprocess.run([sys.executable, "-m", "spinereg", "synth", "--patients", "50", "--db", other], env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert cli.returncode != 0 and "Traceback" not in cli.stderr
    assert "full" in cli.stderr, cli.stderr
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        n = con.execute("SELECT COUNT(*) FROM spinereg_patients").fetchone()[0]
        creates = con.execute("SELECT COUNT(*) FROM spinereg_audit WHERE action = 'create' "
                              "AND entity = 'patients'").fetchone()[0]
        batches = con.execute("SELECT COUNT(*) FROM spinereg_import_batch WHERE kind = 'edit'").fetchone()[0]
    finally:
        con.close()
    # every acknowledged write is there, the refused one is not, half of nothing
    assert n == got["written"] == creates == batches

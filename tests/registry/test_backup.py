"""`spinereg db backup` / `db restore` (issue 15, point 4), on SQLite and PostgreSQL.

A backup taken while another process writes is one consistent snapshot: restored,
every row has its audit entry and every audit entry its row, and the restored audit
trail is exactly the live trail's first entries.  Both commands run as a user would
(subprocesses), the writer too.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_WRITES = 3000  # the writer stops when told (a stop file), at the latest after this many

WRITER = """
import os, sys
from spinereg.registry import RegistryWriter, open_registry
alias = open_registry(sys.argv[1])
w = RegistryWriter(alias, "load", who="loadtest")
for i in range(int(sys.argv[2])):
    w.create("patients", {"patient_id": f"L{i:05d}", "sex": "female"})
    if i == 20:
        print("started", flush=True)
    if os.path.exists(sys.argv[3]):
        break
"""

DUMP = """
import json, sys
from spinereg.registry import open_registry
alias = open_registry(sys.argv[1], create=False)
from spinereg.registry.models import AuditEntry, Patient
print(json.dumps({
    "patients": sorted(Patient.objects.using(alias).values_list("patient_id", flat=True)),
    "audit": [[a.id, a.action, a.entity, a.record_key, a.changes]
              for a in AuditEntry.objects.using(alias).order_by("id")],
}))
"""


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPINEREG_", "DJANGO_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    env["SPINEREG_HOME"] = str(home)
    return env


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spinereg", *args], env=_env(home), capture_output=True, text=True,
                          timeout=300, check=False)


def _dump(home: Path, url: str) -> dict[str, list]:  # type: ignore[type-arg]
    done = subprocess.run([sys.executable, "-c", DUMP, url], env=_env(home), capture_output=True, text=True,
                          timeout=120, check=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _second_url(url: str, tmp_path: Path, pg_cluster: object) -> str:
    if url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'restored.sqlite3'}"
    return pg_cluster.create_database()  # type: ignore[attr-defined,no-any-return]


def test_a_backup_under_load_restores_a_consistent_registry(db_url: str, tmp_path: Path,
                                                             request: pytest.FixtureRequest) -> None:
    home = tmp_path / "home"
    home.mkdir()
    assert _cli(home, "db", "migrate", "--db", db_url).returncode == 0
    stop = tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, db_url, str(MAX_WRITES), str(stop)], env=_env(home),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "started"
        backup = tmp_path / "backup.bin"
        done = _cli(home, "db", "backup", str(backup), "--db", db_url)
        assert done.returncode == 0, done.stderr
        assert writer.poll() is None, "the writer finished before the backup: no load during it"
    finally:
        stop.touch()
        _out, err = writer.communicate(timeout=300)
    assert writer.returncode == 0, err
    live = _dump(home, db_url)

    # a backup never overwrites a file
    again = _cli(home, "db", "backup", str(backup), "--db", db_url)
    assert again.returncode != 0 and "exists" in again.stderr and "Traceback" not in again.stderr

    pg = request.getfixturevalue("pg_cluster") if db_url.startswith("postgresql") else None
    target = _second_url(db_url, tmp_path, pg)
    done = _cli(home, "db", "restore", str(backup), "--db", target)
    assert done.returncode == 0, done.stderr
    restored = _dump(home, target)
    n = len(restored["patients"])
    assert 20 < n < len(live["patients"]), n  # taken mid-load
    # consistent: the rows are exactly the first n written, each with its one create entry
    assert restored["patients"] == [f"L{i:05d}" for i in range(n)]
    creates = [a for a in restored["audit"] if a[1] == "create" and a[2] == "patients"]
    assert sorted(a[3] for a in creates) == restored["patients"]
    # the restored trail is the live trail's beginning, entry for entry
    assert restored["audit"] == live["audit"][:len(restored["audit"])]

    # restoring over a registry needs --replace
    refused = _cli(home, "db", "restore", str(backup), "--db", target)
    assert refused.returncode != 0 and "--replace" in refused.stderr and "Traceback" not in refused.stderr


def test_a_sqlite_backup_is_checked_before_restore(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    junk = tmp_path / "junk.sqlite3"
    con = sqlite3.connect(junk)
    con.execute("CREATE TABLE t (x)")
    con.close()
    target = tmp_path / "target.sqlite3"
    done = _cli(home, "db", "restore", str(junk), "--db", f"sqlite:///{target}")
    assert done.returncode != 0 and "not a spinereg registry" in done.stderr
    assert not target.exists()
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"x" * 5000)
    done = _cli(home, "db", "restore", str(garbage), "--db", f"sqlite:///{target}")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert not target.exists()

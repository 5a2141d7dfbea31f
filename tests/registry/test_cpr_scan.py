"""No clear CPR number anywhere after importing data full of them.

The DaneSpine-style fixture holds synthetic (date-valid) CPR numbers.  It is
imported through the command line into a fresh SQLite registry, exported as
CSV and Parquet, and validated once more with invalid CPR numbers and other
errors added.  Then the database files (including WAL), the exports, the
problem report and everything the commands printed are scanned for every CPR
number of the input (with and without the dash) and, in all text, for
anything shaped like a CPR number.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from spinereg.data._cpr import CPR_PATTERN

FIXTURE = Path(__file__).resolve().parent.parent / "data" / "fixtures" / "import" / "danespine_wide.csv"


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spinereg", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_no_cpr_in_database_exports_reports_or_output(tmp_path: Path) -> None:
    text = FIXTURE.read_text(encoding="utf-8")
    cprs = sorted(set(re.findall(r"\b[0-9]{6}-?[0-9]{4}\b", text)))
    assert len(cprs) >= 4
    env = {**os.environ, "SPINEREG_HOME": str(tmp_path / "home"), "SPINEREG_SITE_KEY": "ab" * 32}
    env.pop("SPINEREG_DATABASE_URL", None)
    db = tmp_path / "registry.sqlite3"
    url = f"sqlite:///{db}"
    outputs = []
    res = run(["import", "--mapping", "danespine-wide", str(FIXTURE), "--db", url], env)
    outputs.append(res.stdout + res.stderr)
    assert res.returncode == 0, res.stderr
    for fmt in ("csv", "parquet"):
        res = run(["export", "--format", fmt, str(tmp_path / f"export-{fmt}"), "--db", url], env)
        outputs.append(res.stdout + res.stderr)
        assert res.returncode == 0, res.stderr
    # a bad file: an invalid CPR number (31 February) and a valid one in a row with another error
    lines = text.splitlines()
    bad_rows = [lines[0], lines[1].replace(lines[1].split(";")[0], "310299-4001", 1)]
    second = lines[2].split(";")
    header = lines[0].split(";")
    second[header.index("asa")] = "9"
    bad_rows.append(";".join(second))
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(bad_rows) + "\n", encoding="utf-8")
    report = tmp_path / "report.csv"
    res = run(["validate", "--mapping", "danespine-wide", str(bad), "--report", str(report)], env)
    outputs.append(res.stdout + res.stderr)
    assert res.returncode == 1
    assert "invalid CPR number (value hidden)" in res.stderr
    assert "asa" in res.stderr
    res = run(["import", "--mapping", "danespine-wide", str(bad), "--db", url], env)
    outputs.append(res.stdout + res.stderr)
    assert res.returncode == 1

    needles = set()
    for c in [*cprs, "310299-4001"]:
        needles.add(c)
        needles.add(c.replace("-", ""))
    blobs: dict[str, bytes] = {}
    for path in tmp_path.rglob("*"):
        if path.is_file() and path != bad and path.name != "site.key":
            blobs[str(path)] = path.read_bytes()
    assert any(name.endswith("registry.sqlite3") for name in blobs)
    for i, out in enumerate(outputs):
        blobs[f"command output {i}"] = out.encode()
    for name, blob in blobs.items():
        for needle in needles:
            assert needle.encode() not in blob, f"a CPR number appears in {name}"
    for name, blob in blobs.items():
        if name.endswith((".csv", ".json")) or name.startswith("command output"):
            found = CPR_PATTERN.findall(blob.decode("utf-8", errors="replace"))
            assert not found, f"CPR-like text in {name}: {len(found)} match(es)"

"""The registry commands end to end: db init, synth, export, validate, import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spinereg", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_commands(db_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "SPINEREG_HOME": str(tmp_path / "home"), "SPINEREG_SITE_KEY": "cd" * 32,
           "SPINEREG_DATABASE_URL": db_url}
    assert run(["db", "init"], env).returncode == 0
    assert run(["db", "migrate"], env).returncode == 0
    res = run(["synth", "--patients", "500", "--seed", "3"], env)
    assert res.returncode == 0, res.stderr
    assert "500 patients" in res.stdout
    res = run(["export", "--format", "csv", str(tmp_path / "out")], env)
    assert res.returncode == 0, res.stderr
    assert "SYNTHETIC" in res.stdout
    meta = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert meta["synthetic"] is True
    assert len(pd.read_csv(tmp_path / "out" / "patients.csv")) == 500
    scores = pd.read_csv(tmp_path / "out" / "scores.csv")
    assert {"prom_id", "eq5d3l_index", "odi", "odi_band"} <= set(scores.columns)
    # the same synthetic registry as an extract directory, without a database
    res = run(["synth", "--patients", "500", "--seed", "3", "--out", str(tmp_path / "ex"), "--format", "csv"], env)
    assert res.returncode == 0, res.stderr
    a = pd.read_csv(tmp_path / "ex" / "proms.csv")
    b = pd.read_csv(tmp_path / "out" / "proms.csv")
    pd.testing.assert_frame_equal(a.sort_values("prom_id").reset_index(drop=True),
                                  b.sort_values("prom_id").reset_index(drop=True))
    # validate is a dry run; import of an already present file changes nothing
    files = [str(tmp_path / "out" / f"{n}.csv") for n in ("patients", "operations", "treated_levels", "proms",
                                                          "complications", "imaging_findings")]
    res = run(["validate", "--mapping", "tidy", *files], env)
    assert res.returncode == 0, res.stderr
    res = run(["import", "--mapping", "tidy", *files], env)
    assert res.returncode == 0, res.stderr
    assert "0 created, 0 updated" in res.stdout
    bad = run(["import", "--mapping", "tidy", str(tmp_path / "missing.csv")], env)
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr

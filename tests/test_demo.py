"""``spinereg demo`` from an empty directory: every file, the terminal summary, and reuse
of the embedded registry on a second run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from spinereg.report._format import MINUS


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPINEREG_HOME": str(cwd / "home"), "COLUMNS": "200"}
    env.pop("SPINEREG_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "spinereg", "demo", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_demo_from_an_empty_directory(tmp_path: Path) -> None:
    res = run(tmp_path)
    assert res.returncode == 0, res.stderr
    demo = tmp_path / "spinereg-demo"
    for name in ("report.html", "report.pdf", "report.docx", "results.json", "registry.sqlite3"):
        assert (demo / name).stat().st_size > 1000, name
    figures = sorted(p.name for p in (demo / "figures").glob("*.svg"))
    assert {"flow.svg", "survival.svg", "leak_types.svg", "trajectory_eq5d.svg", "trajectory_odi.svg"} <= set(figures)
    results = json.loads((demo / "results.json").read_text())
    assert results["data"]["synthetic"] is True
    # the summary: cohort n, EQ-5D and ODI change with CI and p, the leak rate, then the report's path
    out = res.stdout
    n = results["tables"]["flow"][-1]["n_patients"]
    assert f"{n} patients" in out
    eq = next(r for r in results["tables"]["paired_change"] if r["outcome"] == "eq5d" and r["timepoint"] == "3m")
    assert f"+{eq['mean_diff']:.2f}" in out
    odi = next(r for r in results["tables"]["paired_change"] if r["outcome"] == "odi" and r["timepoint"] == "3m")
    assert f"{MINUS}{abs(odi['mean_diff']):.1f}" in out
    leak = next(r for r in results["tables"]["leaks"] if r["unit"] == "level" and r["category"] == "any"
                and r["measure"] == "cement leak")
    assert f"{leak['x']}/{leak['n']} = {100 * leak['proportion']:.1f}%" in out
    assert "SYNTHETIC DATA" in out
    assert out.strip().splitlines()[-1] == f"report: {(demo / 'report.html').resolve()}"

    again = run(tmp_path)
    assert again.returncode == 0, again.stderr
    assert "reusing the synthetic registry" in again.stderr
    second = json.loads((demo / "results.json").read_text())
    second.pop("generated_at")
    results.pop("generated_at")
    assert second == results

"""``spinereg demo`` from an empty directory: every file, the terminal summary, and reuse
of the embedded registry on a second run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from spinereg import SpineregError
from spinereg.cli._demo import check_reuse
from spinereg.report import summary_rows
from spinereg.report._format import MINUS

ROOT = Path(__file__).resolve().parent.parent


def run(cwd: Path, *args: str, main_sh: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPINEREG_HOME": str(cwd / "home"), "COLUMNS": "200"}
    env.pop("SPINEREG_DATABASE_URL", None)
    cmd = ["bash", str(ROOT / "scripts" / "main.sh"), *args] if main_sh else \
        [sys.executable, "-m", "spinereg", "demo", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_demo_from_an_empty_directory(tmp_path: Path) -> None:
    # the README's main command (setup, then spinereg demo), into an empty directory
    res = run(tmp_path, "--dir", str(tmp_path / "spinereg-demo"), main_sh=True)
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
    whole = Decimal(repr(100 * leak["proportion"])).quantize(Decimal(1), rounding=ROUND_HALF_UP)  # n < 100: whole %
    assert f"{leak['x']}/{leak['n']} = {whole}%" in out
    assert f"n = {eq['n_pairs']} of {eq['n_alive']} alive" in out
    assert "SYNTHETIC DATA" in out
    assert out.strip().splitlines()[-1] == f"report: {(demo / 'report.html').resolve()}"

    again = run(tmp_path)           # spinereg demo in that working directory: reuses the registry
    assert again.returncode == 0, again.stderr
    assert "reusing the synthetic registry" in again.stderr
    second = json.loads((demo / "results.json").read_text())
    second.pop("generated_at")
    results.pop("generated_at")
    assert second == results


def _summary_results(*, suppress: bool, n_pairs: int, conf_level: float = 0.95) -> dict[str, Any]:
    return {
        "settings": {"conf_level": conf_level, "small_cell_threshold": 5, "suppress_small_cells": suppress},
        "outcomes": [{"name": "odi", "instrument": "odi", "label": "Oswestry Disability Index (0-100)"}],
        "tables": {
            "flow": [{"n_operations": 21404, "n_patients": 20000}, {"n_operations": 26, "n_patients": 26}],
            "paired_change": [{"outcome": "odi", "timepoint": "1y", "n_pairs": n_pairs, "mean_before": 43.44,
                               "mean_after": 21.06, "mean_diff": -22.38, "ci_low": -31.27, "ci_high": -13.49,
                               "p_value": 0.00123, "n_alive": 13}],
            "leaks": [{"measure": "cement leak", "unit": "level", "category": "any", "x": 12, "n": 55,
                       "proportion": 12 / 55, "ci_low": 0.118, "ci_high": 0.351}],
        },
    }


def test_summary_hides_the_change_of_fewer_than_threshold_pairs() -> None:
    rows = dict(summary_rows(_summary_results(suppress=True, n_pairs=4)))
    odi = rows["Oswestry Disability Index, 1 year"]
    assert odi.startswith("\u2013") and "n = <5" in odi
    for number in ("43.4", "21.1", "22.4", "31.3", "13.5", "0.001"):
        assert number not in odi
    shown = dict(summary_rows(_summary_results(suppress=False, n_pairs=4)))["Oswestry Disability Index, 1 year"]
    assert f"change {MINUS}22.4 (95% CI {MINUS}31.3 to {MINUS}13.5), p = 0.001; n = 4 of 13 alive" in shown
    big = dict(summary_rows(_summary_results(suppress=True, n_pairs=5)))["Oswestry Disability Index, 1 year"]
    assert "n = 5" in big and f"{MINUS}22.4" in big


def test_summary_uses_the_study_confidence_level() -> None:
    rows = summary_rows(_summary_results(suppress=False, n_pairs=9, conf_level=0.9))
    text = " ".join(v for _, v in rows)
    assert "90% CI" in text and "95% CI" not in text
    assert "12/55 = 22% (90% CI 12% to 35%)" in text  # whole percentages of 55 levels
    assert "n = 9 of 13 alive" in text


# --- --patients/--seed with an existing registry: refused unless they agree, or with --fresh --------


def _small_registry(tmp_path: Path) -> Path:
    demo = tmp_path / "spinereg-demo"
    demo.mkdir()
    db = demo / "registry.sqlite3"
    env = {**os.environ, "SPINEREG_HOME": str(tmp_path / "home")}
    env.pop("SPINEREG_DATABASE_URL", None)
    made = subprocess.run([sys.executable, "-m", "spinereg", "synth", "--patients", "300", "--seed", "7",
                           "--db", f"sqlite:///{db}"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert made.returncode == 0, made.stderr
    return db


def test_demo_refuses_patients_or_seed_an_existing_registry_would_ignore(tmp_path: Path) -> None:
    db = _small_registry(tmp_path)
    before = db.read_bytes()
    # options that agree with the registry's recorded size and seed are not ignored: nothing to refuse
    check_reuse(db, 300, 7)
    check_reuse(db, None, 7)
    check_reuse(db, 300, None)
    check_reuse(db, None, None)
    with pytest.raises(SpineregError, match=r"\(300 patients, seed 7\); --patients 500 would be ignored"):
        check_reuse(db, 500, None)
    res = run(tmp_path, "--dir", str(db.parent), "--seed", "8")
    assert res.returncode == 1
    assert res.stderr.strip() == (f"error: {db} already holds a synthetic registry (300 patients, seed 7); "
                                  "--seed 8 would be ignored. Add --fresh to rebuild it with these settings, "
                                  "or leave them out to reuse it.")
    assert "Traceback" not in res.stderr
    assert db.read_bytes() == before
    assert not (db.parent / "results.json").exists()


def test_demo_refuses_when_the_registry_does_not_record_its_settings(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "registry.sqlite3"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE spinereg_patients (id INTEGER)")
        con.execute("INSERT INTO spinereg_patients VALUES (1)")
    with pytest.raises(SpineregError, match=r"\(size and seed not recorded\); --patients 10, --seed 3"):
        check_reuse(db, 10, 3)
    check_reuse(db, None, None)  # reusing without options is fine
    check_reuse(tmp_path / "absent.sqlite3", 10, 3)  # nothing to reuse: the options build it

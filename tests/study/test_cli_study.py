"""``spinereg study run`` end to end on the synthetic registry: every table of the example
study, CSVs, and one clear error for each bad invocation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pandas as pd
import pytest

from spinereg.data import write_extract
from spinereg.data._synth import synthesize
from spinereg.study import results_schema

ROOT = Path(__file__).resolve().parent.parent.parent
SPEC = ROOT / "examples" / "pvp-cancer-vcf" / "study.toml"


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPINEREG_HOME": str(cwd / "home")}
    env.pop("SPINEREG_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "spinereg", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def extract_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("synth") / "x"
    write_extract(synthesize(20000, seed=2018), d, "parquet")
    return d


def test_example_study_produces_every_table(extract_dir: Path, tmp_path: Path) -> None:
    res = run(["study", "run", str(SPEC), "--data", str(extract_dir), "--out", str(tmp_path / "out"),
               "--format", "none"], tmp_path)
    assert res.returncode == 0, res.stderr
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    jsonschema.validate(doc, results_schema())
    tables = doc["tables"]
    expected = {"flow", "follow_up", "table1", "outcome_summary", "paired_change", "responders", "pchc",
                "complications", "leaks", "survival", "survival_median", "survival_curve", "survival_at_risk",
                "mixed_model", "scores"}
    assert expected <= set(tables)
    for name in expected:
        assert tables[name], name
        csv = pd.read_csv(tmp_path / "out" / "tables" / f"{name}.csv", keep_default_na=False)
        assert len(csv) == len(tables[name]), name
    assert doc["data"]["synthetic"] is True
    assert doc["settings"]["suppress_small_cells"] is False
    n = tables["flow"][-1]["n_patients"]
    assert n > 10
    assert {r["timepoint"] for r in tables["paired_change"]} == {"3m", "1y"}
    assert {(r["outcome"], r["timepoint"]) for r in tables["responders"]} == {
        ("eq5d", "3m"), ("eq5d", "1y"), ("odi", "3m"), ("odi", "1y")}
    fu = {r["timepoint"]: r for r in tables["follow_up"]}
    for r in fu.values():
        assert r["answered"] + r["died_before_answering"] + r["not_yet_due"] + r["alive_not_answered"] == n
    assert fu["1y"]["died_before_answering"] > 0
    units = {(r["measure"], r["unit"]) for r in tables["leaks"]}
    assert ("cement leak", "patient") in units and ("cement leak", "level") in units


def test_missing_database_is_one_clear_error(tmp_path: Path) -> None:
    res = run(["study", "run", str(SPEC), "--out", str(tmp_path / "out")], tmp_path)
    assert res.returncode == 1
    assert res.stderr.startswith("error: no registry database at spinereg-demo/registry.sqlite3")
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--db", "sqlite:///x.sqlite3", "--data", "d"], "error: give --db or --data, not both"),
    (["--format", "html,rtf"], "error: --format: unknown format(s) rtf"),
    (["--data", "nowhere"], "error: nowhere: not a spinereg extract (no dataset.json)"),
])
def test_bad_invocation(tmp_path: Path, args: list[str], message: str) -> None:
    res = run(["study", "run", str(SPEC), "--out", str(tmp_path / "out"), *args], tmp_path)
    assert res.returncode == 1
    assert res.stderr.splitlines()[0] == message or res.stderr.startswith(message), res.stderr


def test_empty_cohort_from_cli(extract_dir: Path, tmp_path: Path) -> None:
    spec = tmp_path / "study.toml"
    spec.write_text(SPEC.read_text().replace("start = 2013-01-01, end = 2017-12-31",
                                             "start = 1990-01-01, end = 1990-12-31"))
    res = run(["study", "run", str(spec), "--data", str(extract_dir), "--out", str(tmp_path / "out")], tmp_path)
    assert res.returncode == 1
    assert "error: the cohort is empty" in res.stderr
    assert "period 0" in res.stderr


def test_study_run_writes_the_chosen_report_formats(extract_dir: Path, tmp_path: Path) -> None:
    res = run(["study", "run", str(SPEC), "--data", str(extract_dir), "--out", str(tmp_path / "out"),
               "--format", "html"], tmp_path)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "out"
    assert (out / "report.html").stat().st_size > 10_000
    assert not (out / "report.pdf").exists() and not (out / "report.docx").exists()
    assert (out / "figures" / "flow.svg").exists()
    assert (out / "results.json").exists()

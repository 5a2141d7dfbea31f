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
    # the cohort size, from the flow's last step and first step (the whole registry)
    assert res.stdout.splitlines()[0] == (f"cohort: {n} patients, each with one index operation "
                                          f"(of {tables['flow'][0]['n_operations']} operations in the data)")
    assert "warning:" not in res.stderr  # the example has no inestimable quantity
    assert {r["timepoint"] for r in tables["paired_change"]} == {"3m", "1y"}
    assert {(r["outcome"], r["criterion"], r["timepoint"]) for r in tables["responders"]} == {
        (o, c, t) for o, c in (("eq5d", "mcid"), ("odi", "mcid"), ("odi", "relative"), ("nrs_back", "mcid"))
        for t in ("3m", "1y")}
    fu = {r["timepoint"]: r for r in tables["follow_up"]}
    for r in fu.values():
        assert r["answered"] + r["died_before_answering"] + r["not_yet_due"] + r["alive_not_answered"] == n
    assert fu["1y"]["died_before_answering"] > 0
    units = {(r["measure"], r["unit"]) for r in tables["leaks"]}
    assert ("cement leak", "patient") in units and ("cement leak", "level") in units


def test_missing_database_is_one_clear_error(tmp_path: Path) -> None:
    # the spec's relative sqlite:///spinereg-demo/registry.sqlite3 is relative to the spec file
    res = run(["study", "run", str(SPEC), "--out", str(tmp_path / "out")], tmp_path)
    assert res.returncode == 1
    expected = SPEC.parent / "spinereg-demo" / "registry.sqlite3"
    assert res.stderr.startswith(f"error: no registry database at {expected} (from data.database of {SPEC}: ")
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()
    # --db on the command line is relative to the working directory
    res = run(["study", "run", str(SPEC), "--db", "sqlite:///here.sqlite3", "--out", str(tmp_path / "out")],
              tmp_path)
    assert res.returncode == 1
    assert res.stderr.startswith("error: no registry database at here.sqlite3 (from --db: sqlite:///here.sqlite3)")


def test_study_run_prints_warnings(extract_dir: Path, tmp_path: Path) -> None:
    """A cohort of one patient (operations in the first week of 2013): every quantity that
    cannot be estimated is named on stderr, under the cohort size on stdout."""
    spec = tmp_path / "study.toml"
    spec.write_text(SPEC.read_text().replace("start = 2013-01-01, end = 2017-12-31",
                                             "start = 2013-01-01, end = 2013-04-30"))
    res = run(["study", "run", str(spec), "--data", str(extract_dir), "--out", str(tmp_path / "out"),
               "--format", "none"], tmp_path)
    assert res.returncode == 0, res.stderr
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    n = doc["tables"]["flow"][-1]["n_patients"]
    assert n == 1  # the synthetic registry (seed 2018) has one such patient
    assert res.stdout.splitlines()[0].startswith("cohort: 1 patient, each with one index operation")
    warnings = [line for line in res.stderr.splitlines() if line.startswith("warning: ")]
    notes = [(name, r["note"]) for name, rows in doc["tables"].items() for r in rows if r.get("note")]
    assert len(warnings) == len(notes) > 0
    assert "warning: paired_change (eq5d, 3m): not estimable: fewer than 2 complete pairs" in warnings
    assert any(w.startswith("warning: mixed_model (odi, 1y): not estimable") for w in warnings)


def test_relative_data_paths_are_relative_to_the_spec(extract_dir: Path, tmp_path: Path) -> None:
    """data.extract and data.database (SQLite) in a spec in studies/, run from elsewhere."""
    studies = tmp_path / "studies"
    studies.mkdir()
    elsewhere = tmp_path / "elsewhere" / "deeper"  # from here ../data is not tmp_path/data
    elsewhere.mkdir(parents=True)
    rel_extract = os.path.relpath(extract_dir, studies)
    by_extract = studies / "extract.toml"
    by_extract.write_text(SPEC.read_text().replace('database = "sqlite:///spinereg-demo/registry.sqlite3"',
                                                   f'extract = "{rel_extract}"'))
    res = run(["study", "run", str(by_extract), "--out", str(tmp_path / "a"), "--format", "none"], elsewhere)
    assert res.returncode == 0, res.stderr
    # a small registry in data/, named from the spec as ../data/registry.sqlite3
    (tmp_path / "data").mkdir()
    made = run(["synth", "--patients", "3000", "--seed", "5", "--db",
                f"sqlite:///{tmp_path / 'data' / 'registry.sqlite3'}"], tmp_path)
    assert made.returncode == 0, made.stderr
    by_db = studies / "db.toml"
    by_db.write_text(SPEC.read_text().replace('sqlite:///spinereg-demo/registry.sqlite3',
                                              "sqlite:///../data/registry.sqlite3"))
    res = run(["study", "run", str(by_db), "--out", str(tmp_path / "b"), "--format", "none"], elsewhere)
    assert res.returncode == 0, res.stderr
    doc = json.loads((tmp_path / "b" / "results.json").read_text())
    assert doc["data"]["n_patients"] == 3000
    assert not list(elsewhere.iterdir())  # nothing created where the command ran


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

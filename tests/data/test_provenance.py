"""Provenance survives the round trip through the registry (issue 10, Deliver 6):

    spinereg synth --out DIR  ->  spinereg import --mapping tidy ...  ->  spinereg export OUT
    ->  spinereg study run

The synthetic flag and the extract date that ``synth`` writes into ``DIR/dataset.json`` must
reach the export's ``dataset.json``, the study's ``results.json`` and the report's SYNTHETIC
banner, however the extract is handed to ``import``: as its files (``DIR/*``), as the
directory itself, or through the shipped ``tidy`` mapping given by its file path.  A control
with a hand-edited ``dataset.json`` (not synthetic, another extract date) shows that the values
are carried, not defaulted.  Every step is the command line, in a subprocess, on a small
synthetic registry (200 patients) in a temporary SQLite file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from spinereg.data import entities

EXTRACT_DATE = "2021-06-30"  # what synthesize() records by default

SPEC = """\
title = "Provenance check"
question = "Do the synthetic flag and the extract date reach the study?"

[data]
extract = "export"

[cohort]
procedure_categories = ["discectomy", "decompression", "fusion"]
period = { start = 2010-01-01, end = 2020-12-31 }

[outcomes.odi]
instrument = "odi"
higher_is_better = false
"""


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPINEREG_HOME": str(cwd / "home")}
    env.pop("SPINEREG_DATABASE_URL", None)
    res = subprocess.run([sys.executable, "-m", "spinereg", *args], capture_output=True, text=True, env=env,
                         cwd=cwd, timeout=300)
    assert res.returncode == 0, f"spinereg {' '.join(args)}\n{res.stdout}\n{res.stderr}"
    assert "Traceback" not in res.stderr
    return res


def _synth(root: Path, fmt: str) -> Path:
    """``spinereg synth --out`` of 200 patients."""
    run(["synth", "--patients", "200", "--seed", "3", "--format", fmt, "--out", "x"], root)
    meta = json.loads((root / "x" / "dataset.json").read_text())
    assert meta["synthetic"] is True and meta["extract_date"] == EXTRACT_DATE
    return root / "x"


@pytest.fixture(scope="module", params=["parquet", "csv"])
def synth_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _synth(tmp_path_factory.mktemp("synth"), str(request.param))


def _tidy_mapping_file() -> str:
    return str(resources.files("spinereg.data").joinpath("mappings", "tidy.toml"))


def _import_export_study(files: list[str], mapping: str, work: Path, fmt: str = "none") -> tuple[dict, dict]:
    """Import ``files`` into a new SQLite registry, export it, run the study on the export:
    the export's dataset.json and the study's results.json ``data``."""
    db = f"sqlite:///{work / 'registry.sqlite3'}"
    run(["import", "--mapping", mapping, "--db", db, *files], work)
    run(["export", "export", "--db", db], work)
    exported = json.loads((work / "export" / "dataset.json").read_text())
    (work / "study.toml").write_text(SPEC)
    run(["study", "run", "study.toml", "--out", "study", "--format", fmt], work)
    results = json.loads((work / "study" / "results.json").read_text())
    return exported, results["data"]


def _entity_files(d: Path) -> list[str]:
    return sorted(str(p) for p in d.iterdir() if p.stem in {e.name for e in entities()})


@pytest.mark.parametrize("how", ["files", "directory", "mapping-file"])
def test_the_synthetic_flag_and_extract_date_survive(synth_dir: Path, tmp_path: Path, how: str) -> None:
    if how == "files":  # spinereg import --mapping tidy DIR/*   (dataset.json among the files)
        files, mapping = sorted(str(p) for p in synth_dir.iterdir()), "tidy"
    elif how == "directory":  # spinereg import --mapping tidy DIR
        files, mapping = [str(synth_dir)], "tidy"
    else:  # spinereg import --mapping .../mappings/tidy.toml DIR/patients.csv ...
        files, mapping = _entity_files(synth_dir), _tidy_mapping_file()
    exported, data = _import_export_study(files, mapping, tmp_path)
    assert (exported["synthetic"], exported.get("extract_date")) == (True, EXTRACT_DATE)
    assert (data["synthetic"], data["extract_date"], data["extract_date_source"]) == (
        True, EXTRACT_DATE, "recorded with the dataset")


def test_the_report_of_a_synthetic_registry_carries_the_banner(tmp_path: Path) -> None:
    """The HTML report (once: it takes about 10 s) of the directory import."""
    _, data = _import_export_study([str(_synth(tmp_path, "parquet"))], "tidy", tmp_path, "html")
    assert data["synthetic"] is True
    html = (tmp_path / "study" / "report.html").read_text(encoding="utf-8")
    assert "SYNTHETIC DATA \u2013 simulated patients, not real people." in html
    assert f"extract date {EXTRACT_DATE}" in html


@pytest.mark.parametrize("how", ["files", "directory"])
def test_the_values_are_carried_not_defaulted(tmp_path: Path, how: str) -> None:
    """Control: a (CSV) extract whose dataset.json says "not synthetic", with another extract date,
    name and source, comes out so."""
    synth_dir = _synth(tmp_path, "csv")
    src = tmp_path / "extract"
    src.mkdir()
    for p in synth_dir.iterdir():
        (src / p.name).write_bytes(p.read_bytes())
    meta = json.loads((src / "dataset.json").read_text())
    meta.update(synthetic=False, extract_date="2021-09-30", name="Hospital A extract", source="hospital")
    (src / "dataset.json").write_text(json.dumps(meta))
    files = sorted(str(p) for p in src.iterdir()) if how == "files" else [str(src)]
    work = tmp_path / "work"
    work.mkdir()
    exported, data = _import_export_study(files, "tidy", work)
    assert {k: exported.get(k) for k in ("synthetic", "extract_date", "name", "source")} == {
        "synthetic": False, "extract_date": "2021-09-30", "name": "Hospital A extract", "source": "hospital"}
    assert (data["synthetic"], data["extract_date"], data["extract_date_source"], data["name"]) == (
        False, "2021-09-30", "recorded with the dataset", "Hospital A extract")


# --- read_dataset_meta: where the dataset.json of an imported extract is found ------------------
def _extract_dir(root: Path, **meta: object) -> Path:
    """An extract directory as write_extract leaves it: two entity files and dataset.json."""
    root.mkdir(parents=True)
    (root / "patients.csv").write_text("patient_id\nP1\n")
    (root / "operations.csv").write_text("operation_id,patient_id,date,procedure_category\n")
    doc = {"name": "n", "synthetic": True, "source": "s", "extract_date": "2021-06-30", "format": "csv",
           "spinereg_version": "0", "tables": ["operations", "patients"], **meta}
    (root / "dataset.json").write_text(json.dumps(doc))
    return root


@pytest.mark.parametrize("given", ["directory", "a file", "the files", "dataset.json", "relative"])
def test_the_dataset_json_is_found_however_the_extract_is_given(tmp_path: Path, given: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from spinereg.data import read_dataset_meta

    d = _extract_dir(tmp_path / "x", name="Hospital A", extract_date="2020-02-29")
    paths: list[str | Path] = {
        "directory": [d], "a file": [d / "operations.csv"], "the files": sorted(d.iterdir()),
        "dataset.json": [d / "dataset.json", d / "patients.csv"], "relative": ["x/patients.csv"]}[given]
    monkeypatch.chdir(tmp_path)
    assert read_dataset_meta(paths) == {"name": "Hospital A", "synthetic": True, "source": "s",
                                        "extract_date": "2020-02-29"}


def test_files_without_a_dataset_json_have_no_metadata(tmp_path: Path) -> None:
    from spinereg.data import read_dataset_meta

    d = _extract_dir(tmp_path / "x")
    (d / "dataset.json").unlink()
    assert read_dataset_meta([d, d / "patients.csv"]) == {}


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "cannot read the extract's dataset metadata"),
    ("[1, 2]", "not an extract's dataset metadata (a JSON object)"),
    ('{"synthetic": "yes"}', "\"synthetic\" must be true or false, not 'yes'"),
    ('{"synthetic": 1}', "\"synthetic\" must be true or false, not 1"),
    ('{"extract_date": "03-04-2017"}', "\"extract_date\" must be a date (YYYY-MM-DD), not '03-04-2017'"),
    ('{"extract_date": "2017-13-45"}', "\"extract_date\" must be a date (YYYY-MM-DD), not '2017-13-45'"),
])
def test_a_bad_dataset_json_is_refused_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    from spinereg import SourceFileError
    from spinereg.data import read_dataset_meta

    d = _extract_dir(tmp_path / "x")
    (d / "dataset.json").write_text(text)
    with pytest.raises(SourceFileError) as info:
        read_dataset_meta([d / "patients.csv"])
    assert str(info.value).startswith(f"{d / 'dataset.json'}: {message}")


def test_two_extracts_that_disagree_are_refused_naming_both(tmp_path: Path) -> None:
    from spinereg import IntegrityConflictError
    from spinereg.data import read_dataset_meta

    a = _extract_dir(tmp_path / "a")
    b = _extract_dir(tmp_path / "b", synthetic=False)
    with pytest.raises(IntegrityConflictError) as info:
        read_dataset_meta([a / "patients.csv", b / "operations.csv"])
    assert str(info.value) == (f"the files come from two extracts: {(a / 'dataset.json').resolve()} has synthetic "
                               f"True, {(b / 'dataset.json').resolve()} has False; import one extract at a time")
    c = _extract_dir(tmp_path / "c")  # same metadata as a: one dataset in two directories
    assert read_dataset_meta([a / "patients.csv", c / "operations.csv"])["synthetic"] is True

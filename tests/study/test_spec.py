"""Study specs: the example is valid; each bad spec gets one clear error naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import spinereg
from spinereg import SpineregError, StudySpecError
from spinereg.study import SpecError, load_spec, resolve_data_source

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLE = ROOT / "examples" / "pvp-cancer-vcf" / "study.toml"


def test_example_is_valid() -> None:
    spec, digest = load_spec(EXAMPLE)
    assert spec.cohort.procedure_categories == ["vertebroplasty"]
    assert spec.outcomes["eq5d"].valueset == "Denmark"
    assert list(spec.timepoints) == ["baseline", "3m", "1y"]
    assert spec.timepoints["1y"].window == (270, 545)
    assert len(digest) == 64


def variant(tmp_path: Path, old: str, new: str) -> Path:
    text = EXAMPLE.read_text()
    assert old in text
    p = tmp_path / "study.toml"
    p.write_text(text.replace(old, new, 1))
    return p


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('instrument = "eq5d3l"', 'instrument = "sf36"', "outcomes.eq5d.instrument: Input should be"),
        ('valueset = "Denmark"', 'valueset = "Atlantis"', "outcomes.eq5d: no EQ-5D-3L TTO value set for country "
                                                          "'Atlantis'; choose from"),
        ("3m = { window = [60, 150], target = 90 }", "3m = { window = [-10, 150], target = 90 }",
         "time-point windows overlap: baseline [-90, 0] and 3m [-10, 150]"),
        ("1y = { window = [270, 545], target = 365 }", "1y = { window = [270, 545], target = 600 }",
         "timepoints.1y: target day 600 lies outside the window [270, 545]"),
        ('database = "sqlite:///spinereg-demo/registry.sqlite3"', "",
         "data: give exactly one of 'database' (a URL) or 'extract' (a directory)"),
        ('database = "sqlite:///spinereg-demo/registry.sqlite3"', 'extract = "no-such-dir"',
         "data.extract:"),
        ('procedure_categories = ["vertebroplasty"]', 'procedure_categories = ["cementoplasty"]',
         "cohort.procedure_categories: unknown procedure categories ['cementoplasty']"),
        ("period = { start = 2013-01-01, end = 2017-12-31 }", "period = { start = 2018-01-01, end = 2017-12-31 }",
         "cohort.period: end 2017-12-31 is before start 2018-01-01"),
        ('mcid_source = "Ostelo RW, et al. Spine 2008;33(1):90-4 (ODI MCID 10 points)"', "",
         "outcomes.odi: give 'mcid_source'"),
        ('require_baseline = ["eq5d"]', 'require_baseline = ["vas"]',
         "cohort.require_baseline names unknown outcomes ['vas']"),
        ("conf_level = 0.95", "conf_level = 95", "analyses.conf_level: Input should be less than 1"),
        ("small_cell_threshold = 5", "small_cell_treshold = 5",
         "analyses.small_cell_treshold: unknown key; did you mean 'small_cell_threshold'?"),
        # contradictions
        ("age_min = 18", "age_min = 80\nage_max = 65", "cohort: age_min 80 is above age_max 65: no age qualifies"),
        ("3m = { window = [60, 150], target = 90 }", "3m = { window = [150, 60], target = 90 }",
         "timepoints.3m: window [150, 60] is empty (start after end)"),
        ("3m = { window = [60, 150], target = 90 }", "3m = { window = [-200, -100], target = -150 }",
         "follow-up time point 3m [-200, -100] lies before the baseline window [-90, 0]"),
        ('indications = ["cancer_vcf"]', 'indications = ["cancer_vcf"]\ndiagnosis_codes = ["C79.5"]\n'
                                         'exclude_diagnosis_codes = ["C79"]',
         "cohort: exclude_diagnosis_codes 'C79' excludes every operation that diagnosis_codes 'C79.5' includes"),
        ('indications = ["cancer_vcf"]', 'indications = ["cancer_vcf"]\nprocedure_codes = ["KNAG", " "]',
         "cohort.procedure_codes: an empty code prefix would match every code"),
        ("mcid = 10\n", "", "outcomes.odi: 'mcid_source' is given without 'mcid'"),
        ("small_cell_threshold = 5", "small_cell_threshold = 0\nsuppress_small_cells = true",
         "analyses: suppress_small_cells = true with small_cell_threshold = 0 suppresses nothing"),
        # did you mean
        ("[cohort]", "[cohrt]", "cohrt: unknown key; did you mean 'cohort'?"),
        ("age_min = 18", "agemin = 18", "cohort.agemin: unknown key; did you mean 'age_min'?"),
        ("3m = { window = [60, 150], target = 90 }", "3m = { windows = [60, 150], target = 90 }",
         "timepoints.3m.windows: unknown key; did you mean 'window'?"),
        ("period = { start = 2013-01-01, end = 2017-12-31 }", "period = { start = 2013-01-01, ends = 2017-12-31 }",
         "cohort.period.ends: unknown key; did you mean 'end'?"),
        ('instrument = "eq5d3l"', 'instrument = "eq5d-3l"', "did you mean 'eq5d3l'?"),
        ('procedure_categories = ["vertebroplasty"]', 'procedure_categories = ["vertebroplastie"]',
         "did you mean 'vertebroplasty' for 'vertebroplastie'?"),
    ],
)
def test_bad_specs(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = variant(tmp_path, old, new)
    with pytest.raises(StudySpecError) as info:
        load_spec(path)
    text = str(info.value)
    assert message in text, text
    assert text.startswith(str(path))
    assert len(text.splitlines()) == 1


def test_not_toml_and_missing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("title = ")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(bad)
    with pytest.raises(SpecError, match="cannot read the study spec"):
        load_spec(tmp_path / "missing.toml")


def test_study_check_command(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "spinereg", "study", "check", str(EXAMPLE)], capture_output=True,
                        text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "valid study spec" in ok.stdout
    bad = variant(tmp_path, 'valueset = "Denmark"', 'valueset = "Atlantis"')
    res = subprocess.run([sys.executable, "-m", "spinereg", "study", "check", str(bad)], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 1
    assert res.stderr.startswith(f"error: {bad}: outcomes.eq5d:")
    assert "Traceback" not in res.stderr


def test_outcome_defaults_are_cited(tmp_path: Path) -> None:
    p = tmp_path / "study.toml"
    p.write_text(EXAMPLE.read_text() + '\n[outcomes.back]\ninstrument = "nrs_back"\n\n'
                 '[outcomes.vas]\ninstrument = "eqvas"\n')
    spec, _ = load_spec(p)
    back = spec.outcomes["back"]
    assert back.higher_is_better is False
    assert back.mcid == 2
    assert "Ostelo" in back.mcid_source and "Spine 2008" in back.mcid_source
    vas = spec.outcomes["vas"]
    assert vas.higher_is_better is True
    assert vas.mcid is None            # no accepted single MCID: responders only when the spec sets one
    # an explicit MCID still needs its own source
    p.write_text(EXAMPLE.read_text() + '\n[outcomes.back]\ninstrument = "nrs_back"\nmcid = 3\n')
    with pytest.raises(SpecError, match=r"outcomes\.back: give 'mcid_source'"):
        load_spec(p)


def test_first_per_patient_false_is_refused(tmp_path: Path) -> None:
    p = variant(tmp_path, "first_per_patient = true", "first_per_patient = false")
    with pytest.raises(SpecError, match=r"cohort\.first_per_patient: false is not supported"):
        load_spec(p)


def test_direction_must_match_the_instrument(tmp_path: Path) -> None:
    p = variant(tmp_path, "higher_is_better = false", "higher_is_better = true")
    with pytest.raises(SpecError, match=r"outcomes\.odi: higher_is_better = true contradicts odi, whose higher "
                                        r"scores are worse"):
        load_spec(p)


def test_spec_error_is_the_public_study_spec_error(tmp_path: Path) -> None:
    assert SpecError is spinereg.StudySpecError
    p = variant(tmp_path, "age_min = 18", "age_min = 90\nage_max = 20")
    with pytest.raises(SpineregError) as info:
        load_spec(p)
    assert type(info.value) is StudySpecError


def test_unknown_key_lists_the_allowed_keys_when_nothing_is_near(tmp_path: Path) -> None:
    p = variant(tmp_path, "age_min = 18", "age_min = 18\nzzz = 1")
    with pytest.raises(StudySpecError) as info:
        load_spec(p)
    text = str(info.value)
    assert "cohort.zzz: unknown key (allowed here: procedure_categories, " in text
    assert "did you mean" not in text


def test_study_check_refuses_a_contradiction(tmp_path: Path) -> None:
    bad = variant(tmp_path, "age_min = 18", "age_min = 80\nage_max = 65")
    res = subprocess.run([sys.executable, "-m", "spinereg", "study", "check", str(bad)], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 1
    assert res.stderr.strip() == f"error: {bad}: cohort: age_min 80 is above age_max 65: no age qualifies"


# --- relative data paths: relative to the spec file, for extract and database alike -----


def _spec_with_data(tmp_path: Path, data_line: str) -> Path:
    d = tmp_path / "studies" / "mine"
    d.mkdir(parents=True)
    p = d / "study.toml"
    p.write_text(EXAMPLE.read_text().replace('database = "sqlite:///spinereg-demo/registry.sqlite3"', data_line))
    return p


def test_relative_extract_is_relative_to_the_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _spec_with_data(tmp_path, 'extract = "../data/x"')
    (tmp_path / "studies" / "data" / "x").mkdir(parents=True)
    (tmp_path / "studies" / "data" / "x" / "dataset.json").write_text("{}")
    monkeypatch.chdir(tmp_path)  # the working directory is not the spec's
    spec, _ = load_spec(p)
    kind, where = resolve_data_source(spec, p)
    assert kind == "extract"
    assert Path(where).resolve() == (tmp_path / "studies" / "data" / "x").resolve()
    # an extract path relative to the working directory is not found
    q = _spec_with_data(tmp_path / "other", 'extract = "studies/data/x"')
    with pytest.raises(StudySpecError, match=r"data\.extract: .*not a spinereg extract directory"):
        load_spec(q)


def test_relative_sqlite_database_is_relative_to_the_spec(tmp_path: Path) -> None:
    p = _spec_with_data(tmp_path, 'database = "sqlite:///../data/registry.sqlite3"')
    spec, _ = load_spec(p)
    kind, url = resolve_data_source(spec, p)
    assert kind == "database"
    assert url == f"sqlite:///{p.parent / '../data/registry.sqlite3'}"
    for absolute in ("sqlite:////srv/registry.sqlite3", "postgresql://u@host/db", "sqlite://"):
        q = _spec_with_data(tmp_path / absolute.replace("/", "_").replace(":", ""), f'database = "{absolute}"')
        assert resolve_data_source(load_spec(q)[0], q) == ("database", absolute)


# --- docs/study-spec.md -----------------------------------------------------------------


def test_study_spec_doc_is_current() -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import gen_study_spec_docs
    finally:
        sys.path.pop(0)
    assert (ROOT / "docs" / "study-spec.md").read_text(encoding="utf-8") == gen_study_spec_docs.render(), (
        "docs/study-spec.md is stale: run .venv/bin/python tools/gen_study_spec_docs.py")


def test_study_spec_doc_names_every_key() -> None:
    """Every key of the model, in every table, has a row in the doc."""
    from pydantic import BaseModel

    from spinereg.study import StudySpec

    text = (ROOT / "docs" / "study-spec.md").read_text(encoding="utf-8")
    seen: set[type[BaseModel]] = set()

    def walk(model: type[BaseModel]) -> None:
        seen.add(model)
        for name, field in model.model_fields.items():
            assert f"| `{name}` |" in text, (model.__name__, name)
            assert field.description, (model.__name__, name)
            ann = field.annotation
            for inner in (*getattr(ann, "__args__", ()), ann):
                if isinstance(inner, type) and issubclass(inner, BaseModel) and inner not in seen:
                    walk(inner)

    walk(StudySpec)
    assert len(seen) == 8  # StudySpec, DataSource, Cohort, Period, TimePointSpec, Outcome, Analyses, ReportOptions

"""Study specs: the example is valid; each bad spec gets one clear error naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from spinereg.study import SpecError, load_spec

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
        ("small_cell_threshold = 5", "small_cell_treshold = 5", "analyses.small_cell_treshold: Extra inputs"),
    ],
)
def test_bad_specs(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = variant(tmp_path, old, new)
    with pytest.raises(SpecError) as info:
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

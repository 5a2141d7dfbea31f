"""CPR numbers inside free text: found in every form, never stored, never shown.

The defect of issue 10: a department ``pt 020255-4322 called`` was imported
and written by ``export``.  The CPR numbers below are synthetic; 020255-4322
is 2 February 1955 (digit 7 = 4, YY 55 >= 37: the 1900s).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spinereg import PrivacyError
from spinereg.data import check_no_cpr, contains_cpr, find_cpr, redact_cpr
from spinereg.data._cpr import CPR_PATTERN
from spinereg.data._mapped import MappedTable, Provenance
from spinereg.data._mapping import apply_mapping, load_mapping
from spinereg.data._validate import validate

FIXTURE = Path(__file__).parent / "fixtures" / "import" / "danespine_wide.csv"
KEY = bytes(range(32))
DIGITS = re.compile(r"0202[ -]*55[ -]*4322|020255")

# every written form of one CPR number, alone and inside text
HITS = [
    "020255-4322", "0202554322", "020255 4322", "020255   4322", "020255 - 4322", "020255\t4322",
    "020255\u00a04322", "020255\u20134322",  # no-break space, en dash
    "pt 020255-4322 called", "pt 0202554322 called", "pt 020255 4322 called",
    "cpr:0202554322", "pt0202554322x", "(020255-4322)", "first line\n020255-4322",
    "290200-4322",  # 29 February 2000 (digit 7 = 4, YY <= 36: the 2000s)
    "a 010101-1234 b 020255-4322",
]
MISSES = [
    "", "ORT", "NHS1819-hip-ccg-2", "2015-01-01", "KNAG40;KNAG45", "tel 12345678",
    "10202554322", "020255-43221", "12020255-4322",  # inside a longer run of digits
    "310299-4322", "300255-4322", "320155-4322", "021355-4322",  # not a calendar date
    "290200-1322",  # 29 February 1900 is no date
    "020255-432", "02025-54322",  # too few digits
    "0202.55.4322",  # other separators
    "3f1c0202554322ab9e01d4c2b7a8e6f05",  # inside a 32-hex-digit pseudonym (a digest)
    "op-a10202554322bc9d",  # a hash id (16 hex digits after the prefix)
]


@pytest.mark.parametrize("text", HITS)
def test_each_form_is_found_and_hidden(text: str) -> None:
    assert contains_cpr(text)
    hidden = redact_cpr(text)
    assert "[CPR number hidden]" in hidden
    assert not DIGITS.search(hidden)
    assert find_cpr(pd.Series([text, "x", None])).tolist() == [True, False, False]


@pytest.mark.parametrize("text", MISSES)
def test_what_is_not_a_cpr_number(text: str) -> None:
    assert not contains_cpr(text)
    assert redact_cpr(text) == text
    assert find_cpr([text]).tolist() == [False]


def test_redaction_keeps_the_rest_of_the_text() -> None:
    assert redact_cpr("pt 020255-4322 called") == "pt [CPR number hidden] called"
    assert redact_cpr("a 010101-1234 b 0202554322.") == "a [CPR number hidden] b [CPR number hidden]."


def test_find_cpr_column_forms() -> None:
    vals = ["x", "pt 020255-4322 called", None, "0202554322", float("nan"), 1202554322]
    want = [False, True, False, True, False, True]
    assert find_cpr(vals).tolist() == want
    assert find_cpr(pd.Series(vals, dtype=object)).tolist() == want
    s = pd.Series(["ok", "pt 020255 4322", None] * 1000, dtype="string[pyarrow]")
    assert find_cpr(s).sum() == 1000
    assert not find_cpr(pd.Series(["short", None], dtype="string[pyarrow]")).any()
    assert find_cpr(pd.Series([], dtype=object)).tolist() == []


def test_missing_values_hold_no_cpr() -> None:
    assert not contains_cpr(None)
    assert not contains_cpr(float("nan"))
    assert not contains_cpr(pd.NA)


def test_check_no_cpr_names_the_field_never_the_value() -> None:
    check_no_cpr("Hospital B", "dataset name")
    with pytest.raises(PrivacyError, match="dataset name") as e:
        check_no_cpr("pt 020255-4322 called", "dataset name")
    assert not DIGITS.search(str(e.value))


def test_the_pattern_for_leak_scans_covers_the_spaced_forms() -> None:
    for text in HITS:
        assert CPR_PATTERN.search(text)


# =========================================================================== validation


def _wide(tmp_path: Path, department: str, row: int = 2) -> Path:
    lines = FIXTURE.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(";")
    cells = lines[row - 1].split(";")
    cells[header.index("afdeling")] = department
    lines[row - 1] = ";".join(cells)
    p = tmp_path / "ops.csv"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_issue_defect_cpr_in_a_department_refuses_the_import(tmp_path: Path) -> None:
    src = _wide(tmp_path, "pt 020255-4322 called", row=3)
    x, report = validate(apply_mapping("danespine-wide", [src], key=KEY), extract_date="2023-01-01")
    assert not report.ok
    hit = report.errors[report.errors["rule"] == "cpr-in-text"]
    assert len(hit) == 1
    p = hit.iloc[0]
    assert (p["file"], p["row"], p["column"], p["entity"]) == (str(src), 3, "afdeling", "operations")
    assert p["value"] == "[CPR number hidden]"
    text = report.to_text()
    assert f"{src}:3: column 'afdeling': value [CPR number hidden]:" in text
    assert not DIGITS.search(text)
    assert not DIGITS.search(report.problems.to_csv(index=False))
    # the row is not in the extract either
    assert not DIGITS.search(x["operations"].to_csv(index=False))


def test_every_text_column_of_every_entity_is_scanned() -> None:
    cpr = "0202554322"
    chunks = [
        MappedTable("patients", pd.DataFrame({"patient_id": ["p1", f"x{cpr}"], "sex": ["male", cpr],
                                              "birth_date": [f"{cpr}", "1950-01-01"], "_row": [2, 3]}),
                    Provenance("pat.csv", "line")),
        MappedTable("operations", pd.DataFrame({
            "operation_id": ["o1"], "patient_id": ["p1"], "date": ["2015-01-10"], "hospital": [f"H {cpr}"],
            "procedure_codes": [f"KNAG40;{cpr}"], "procedure_category": ["vertebroplasty"], "_row": [2]}),
            Provenance("ops.csv", "line", {"hospital": "sygehus"})),
        MappedTable("complications", pd.DataFrame({
            "complication_id": [f"c-{cpr}"], "operation_id": ["o1"], "type": ["infection"], "_row": [7]}),
            Provenance("compl.csv", "line")),
    ]
    _, report = validate(chunks, extract_date="2023-01-01")
    hits = report.errors[report.errors["rule"] == "cpr-in-text"]
    got = sorted(zip(hits["file"], hits["row"], hits["column"], strict=True))
    assert got == [("compl.csv", 7, "complication_id"), ("ops.csv", 2, "procedure_codes"),
                   ("ops.csv", 2, "sygehus"), ("pat.csv", 3, "patient_id"), ("pat.csv", 3, "sex")]
    # a date column cannot keep it (not a date): refused as such, the value hidden all the same
    bad_date = report.errors[(report.errors["column"] == "birth_date")]
    assert list(zip(bad_date["row"], bad_date["rule"], bad_date["value"], strict=True)) == [
        (2, "type", "'[CPR number hidden]'")]
    assert not DIGITS.search(report.problems.to_csv(index=False))
    assert not DIGITS.search(report.to_text())


def test_pseudonyms_and_hash_ids_pass(tmp_path: Path) -> None:
    # the keyed pseudonyms and hash ids of the real fixture are digests, never CPR numbers
    _, report = validate(apply_mapping("danespine-wide", [FIXTURE], key=KEY), extract_date="2023-01-01")
    assert not (report.problems["rule"] == "cpr-in-text").any()
    # and so are many random ones (about 1 in 1,000 holds ten digits shaped like a CPR number)
    rng = np.random.default_rng(7)
    digests = ["".join(rng.choice(list("0123456789abcdef"), 32)) for _ in range(20_000)]
    shaped = [d for d in digests if CPR_PATTERN.search(d)]
    assert shaped  # the exception is needed
    assert not find_cpr(digests).any()


REDACT_MAPPING = """
mapping_format = 1
{top}
[sources.ops]
files = ["*.csv"]
[sources.ops.derive]
pid = {{ column = "cpr", transform = "cpr" }}
opid = {{ hash = ["pid", "opdato"], prefix = "op-" }}
[[target]]
entity = "patients"
source = "ops"
distinct = true
[target.columns]
patient_id = "pid"
[[target]]
entity = "operations"
source = "ops"
[target.columns]
operation_id = "opid"
patient_id = "pid"
date = {{ column = "opdato", date_format = "%d-%m-%Y" }}
hospital = {{ column = "sygehus" {hospital} }}
department = {{ column = "afdeling" {department} }}
procedure_category = {{ constant = "other" }}
"""


@pytest.mark.parametrize(("top", "department"), [('cpr_in_text = "redact"', ""),
                                                 ("", ', cpr_in_text = "redact"')])
def test_redaction_opt_in(tmp_path: Path, top: str, department: str) -> None:
    src = _wide(tmp_path, "pt 020255-4322 called", row=2)
    m = tmp_path / "m.toml"
    m.write_text(REDACT_MAPPING.format(top=top, department=department, hospital=""), encoding="utf-8")
    x, report = validate(apply_mapping(m, [src], key=KEY), extract_date="2023-01-01")
    assert report.ok, report.to_text()
    warn = report.warnings[report.warnings["rule"] == "cpr-in-text"]
    assert list(zip(warn["row"], warn["column"], warn["value"], strict=True)) == [
        (2, "afdeling", "[CPR number hidden]")]
    ops = x["operations"]
    assert "pt [CPR number hidden] called" in set(ops["department"].dropna())
    assert not DIGITS.search(ops.to_csv(index=False) + report.to_text())


def test_redaction_is_per_column(tmp_path: Path) -> None:
    # the department may be redacted; the hospital may not
    src = _wide(tmp_path, "pt 020255-4322 called", row=2)
    lines = src.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace(";1301;", ";H 0202554322;", 1)
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    m = tmp_path / "m.toml"
    m.write_text(REDACT_MAPPING.format(top="", department=', cpr_in_text = "redact"', hospital=""),
                 encoding="utf-8")
    _, report = validate(apply_mapping(m, [src], key=KEY), extract_date="2023-01-01")
    got = report.problems[report.problems["rule"] == "cpr-in-text"]
    assert sorted(zip(got["row"], got["column"], got["severity"], strict=True)) == [
        (2, "afdeling", "warning"), (3, "sygehus", "error")]
    # a mapping-level redact may be turned back to an error for one column
    m.write_text(REDACT_MAPPING.format(top='cpr_in_text = "redact"', department="",
                                       hospital=', cpr_in_text = "error"'), encoding="utf-8")
    _, report = validate(apply_mapping(m, [src], key=KEY), extract_date="2023-01-01")
    got = report.problems[report.problems["rule"] == "cpr-in-text"]
    assert sorted(zip(got["row"], got["column"], got["severity"], strict=True)) == [
        (2, "afdeling", "warning"), (3, "sygehus", "error")]


def test_bad_cpr_in_text_setting(tmp_path: Path) -> None:
    from spinereg import MappingError

    m = tmp_path / "m.toml"
    m.write_text(REDACT_MAPPING.format(top='cpr_in_text = "hide"', department="", hospital=""), encoding="utf-8")
    with pytest.raises(MappingError, match="cpr_in_text"):
        load_mapping(m)
    m.write_text(REDACT_MAPPING.format(top="", department="", hospital="").replace(
        'transform = "cpr" }', 'transform = "cpr", cpr_in_text = "redact" }'), encoding="utf-8")
    with pytest.raises(MappingError, match=r"derive\.pid\.cpr_in_text: belongs to the tidy column"):
        load_mapping(m)


# =========================================================================== end to end


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spinereg", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_issue_defect_import_and_export_hold_no_cpr(tmp_path: Path) -> None:
    """The defect as the issue found it: import, then export, then look everywhere."""
    src = _wide(tmp_path, "pt 020255-4322 called", row=2)
    env = {**os.environ, "SPINEREG_HOME": str(tmp_path / "home"), "SPINEREG_SITE_KEY": "ab" * 32}
    env.pop("SPINEREG_DATABASE_URL", None)
    url = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    res = _run(["import", "--mapping", "danespine-wide", str(src), "--db", url], env)
    assert res.returncode != 0
    assert "afdeling" in res.stdout + res.stderr
    assert not DIGITS.search(res.stdout + res.stderr)
    # a clean file makes the registry; then the bad one is refused again
    assert _run(["import", "--mapping", "danespine-wide", str(FIXTURE), "--db", url], env).returncode == 0
    res = _run(["import", "--mapping", "danespine-wide", str(src), "--db", url], env)
    assert res.returncode != 0
    assert _run(["export", "--format", "csv", str(tmp_path / "out"), "--db", url], env).returncode == 0
    for path in tmp_path.rglob("*"):
        if path.is_file() and path != src:
            assert not DIGITS.search(path.read_bytes().decode("utf-8", errors="replace")), path

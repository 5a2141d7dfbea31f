"""Import mappings: the TOML format, the shipped mappings, CPR handling, round trips."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import shutil
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spinereg._errors import SpineregError
from spinereg.data import write_extract
from spinereg.data._cpr import HIDDEN, parse_cpr
from spinereg.data._mapped import MappedTable
from spinereg.data._mapping import (
    INVALID_CPR,
    SHIPPED,
    apply_mapping,
    load_mapping,
    shipped_mappings,
)
from spinereg.data._validate import validate
from tests.conftest import shared_path

FIXTURES = Path(__file__).parent / "fixtures" / "import"
WIDE = FIXTURES / "danespine_wide.csv"
REDCAP = FIXTURES / "redcap"
KEY = bytes(range(32))
CPRS = ["070345-1233", "150552-2468", "011260-4321", "290200-5008"]  # synthetic, in the fixture
EXTRACT_DATE = "2023-01-01"


def frames(chunks: Sequence[MappedTable], entity: str) -> list[pd.DataFrame]:
    return [c.frame for c in chunks if c.entity == entity]


def table(chunks: Sequence[MappedTable], entity: str) -> pd.DataFrame:
    fs = frames(chunks, entity)
    return pd.concat([f.astype(object) for f in fs], ignore_index=True) if fs else pd.DataFrame()


def mapping_file(tmp_path: Path, text: str, name: str = "m.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def csv_file(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def no_clear_cpr(chunks: Sequence[MappedTable], cprs: Sequence[str]) -> None:
    needles = set(cprs) | {c.replace("-", "") for c in cprs}
    for ch in chunks:
        blob = "\n".join(ch.frame.astype(str).to_csv(index=False).splitlines())
        blob += repr(ch.provenance)
        for n in needles:
            assert n not in blob, f"a clear CPR number leaked into a {ch.entity} chunk"


# =========================================================================== loading


def test_shipped_mappings_load() -> None:
    assert set(shipped_mappings()) == set(SHIPPED) == {"tidy", "danespine-wide", "nhs-proms"}
    for name in SHIPPED:
        m = load_mapping(name)
        assert m.name == name
        assert m.path == f"{name}.toml"
        assert m.targets
    wide = load_mapping("danespine-wide")
    proms = next(t for t in wide.targets if t.entity == "proms")
    assert [e.values["timepoint"] for e in proms.expansions] == ["baseline", "3m", "1y"]
    assert proms.expansions[0].columns["eq5d3l_mo"].column == "eq5d_mob_pre"
    assert "eq5d3l_mo" in proms.expansions[0].skip_empty and "timepoint" not in proms.expansions[0].skip_empty


BASE = """mapping_format = 1
[sources.s]
files = "*.csv"
[[target]]
entity = "patients"
source = "s"
[target.columns]
patient_id = "id"
"""


@pytest.mark.parametrize(("text", "message"), [
    ("mapping_format = 1\n[sources\n", r"m\.toml: not valid TOML"),
    (BASE.replace("mapping_format = 1\n", ""), r"m\.toml: mapping_format: missing"),
    (BASE.replace("mapping_format = 1", "mapping_format = 2"), r"mapping_format: this spinereg reads format 1"),
    (BASE + "[extra]\n", r"m\.toml: top level: unknown key 'extra'"),
    (BASE.replace("[[target]]", "[[targets]]"), r"unknown key 'targets' \(did you mean 'target'\?\)"),
    (BASE.replace('entity = "patients"', 'entity = "patient"'),
     r"m\.toml: target 1\.entity: unknown entity 'patient'"),
    (BASE + 'sexx = "k"\n', r"target 1 \(patients\)\.columns\.sexx: patients has no column 'sexx'; did you "
                           r"mean 'sex'\?"),
    (BASE.replace('patient_id = "id"', 'sex = "k"'), r"required column 'patient_id' of patients is not mapped"),
    (BASE.replace('source = "s"', 'source = "x"'), r"target 1 \(patients\)\.source: unknown source 'x'"),
    (BASE + 'sex = { column = "k", code = { "1" = "male" } }\n',
     r"columns\.sex: unknown key 'code' \(did you mean 'codes'\?\)"),
    (BASE + 'sex = { column = "k", constant = "male" }\n', r"columns\.sex: give exactly one of"),
    (BASE + 'sex = { column = "k", transform = "pseudo" }\n', r"columns\.sex\.transform: unknown transform 'pseudo'"),
    (BASE + 'sex = { column = "k", date_format = "%d-%m-%Y" }\n', r"columns\.sex\.date_format: sex is not a date"),
    (BASE + 'birth_date = { column = "b", date_format = "dd-mm-yyyy" }\n', r"a strptime format"),
    (BASE + 'sex = "k_{sfx}"\n', r"columns\.sex: placeholder \{sfx\} is not a repeat variable"),
    (BASE.replace('source = "s"', 'source = "s"\nrepeat = [{ a = "1" }, { b = "2" }]'),
     r"target 1 \(patients\)\.repeat: every repetition must set the same variables"),
    (BASE + 'sex = { column = "k", replace = ["(", "x"] }\n', r"columns\.sex\.replace: bad regular expression"),
    (BASE.replace('entity = "patients"', 'entity = "operations"').replace(
        'patient_id = "id"', 'operation_id = "o"\npatient_id = "p"\ndate = "d"\nprocedure_category = "c"\n'
                             'hospital = { columns = ["h1", "h2"] }'),
     r"columns\.hospital: columns = \[\.\.\.\] joins"),
    (BASE.replace('source = "s"', 'source = "s"\nskip_empty = ["sex"]'), r"skip_empty: 'sex' is not a mapped column"),
    (BASE.replace('files = "*.csv"', 'files = []'), r"sources\.s\.files: must be a string or a non-empty list"),
    (BASE.replace('files = "*.csv"', 'files = "*.csv"\nform = "x"'), r"needs both form and redcap_dictionary"),
])
def test_mapping_file_errors_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    p = mapping_file(tmp_path, text)
    with pytest.raises(SpineregError, match=message) as e:
        load_mapping(p)
    assert str(e.value).startswith(str(p)) and "\n" not in str(e.value)


def test_unknown_mapping_names() -> None:
    with pytest.raises(SpineregError, match="unknown mapping 'danespine'; shipped mappings: tidy, danespine-wide"):
        load_mapping("danespine")
    with pytest.raises(SpineregError, match="no such mapping file"):
        load_mapping("nowhere/x.toml")


# =========================================================================== applying: errors


def test_missing_source_column_names_mapping_key_file_and_column(tmp_path: Path) -> None:
    m = mapping_file(tmp_path, BASE.replace('patient_id = "id"', 'patient_id = "idd"'))
    data = csv_file(tmp_path, "p.csv", "id,k\n1,2\n")
    with pytest.raises(SpineregError) as e:
        apply_mapping(m, [data])
    msg = str(e.value)
    assert msg == (f"{m}: target 1 (patients).columns.patient_id: column 'idd' is not in {data} "
                   "(did you mean 'id'?)")


def test_file_assignment_errors(tmp_path: Path) -> None:
    m = mapping_file(tmp_path, BASE)
    data = csv_file(tmp_path, "p.csv", "id\n1\n")
    other = csv_file(tmp_path, "notes.txt", "x\n")
    with pytest.raises(SpineregError, match=r"file .*notes\.txt matches no source of this mapping"):
        apply_mapping(m, [data, other])
    with pytest.raises(SpineregError, match=r"sources\.s\.files: \['\*\.csv'\] matches none of the files given"):
        apply_mapping(m, [other])
    with pytest.raises(SpineregError, match="no input files"):
        apply_mapping(m, [])
    with pytest.raises(SpineregError, match="no such file"):
        apply_mapping(m, [tmp_path / "gone.csv"])
    ignoring = mapping_file(tmp_path, 'ignore = ["*.txt"]\n' + BASE, "ign.toml")
    assert len(apply_mapping(ignoring, [data, other])) == 1


def test_cpr_transform_needs_the_key(tmp_path: Path) -> None:
    with pytest.raises(SpineregError, match=r"danespine-wide\.toml: sources\.ops\.derive\.pid: transform = \"cpr\" "
                                            r"needs the site key"):
        apply_mapping("danespine-wide", [WIDE], key=None)


# =========================================================================== danespine-wide


@pytest.fixture(scope="module")
def wide_chunks() -> list[MappedTable]:
    return apply_mapping("danespine-wide", [WIDE], key=KEY)


def pseudonym(cpr: str) -> str:
    return str(parse_cpr([cpr], KEY).pseudonym[0])


def test_danespine_wide_patients(wide_chunks: list[MappedTable]) -> None:
    p = table(wide_chunks, "patients")
    assert p["patient_id"].tolist() == [pseudonym(c) for c in CPRS]  # one row per person
    assert p["_row"].tolist() == [2, 3, 5, 6]  # line 4 is patient 1's second operation
    assert p["sex"].tolist() == ["male", "female", "male", "female"]
    assert p["birth_date"].tolist() == ["1945-03-07", "1952-05-15", "1960-12-01", "2000-02-29"]
    assert p["death_date"].tolist()[1] == "01-10-2021"
    assert pd.isna(p["death_date"].tolist()[0])
    assert p["death_source"].tolist()[1] == "cpr_registry" and pd.isna(p["death_source"].tolist()[0])
    assert (p["_cpr_error"] == "").all()
    ch = next(c for c in wide_chunks if c.entity == "patients")
    assert ch.frame.attrs["date_formats"] == {"death_date": "%d-%m-%Y"}
    assert ch.provenance.file == str(WIDE) and ch.provenance.row_label == "line"
    assert ch.provenance.columns["patient_id"] == "cpr"
    assert ch.provenance.columns["death_date"] == "doedsdato"
    assert "death_source" not in ch.provenance.columns  # a constant


def test_danespine_wide_operations(wide_chunks: list[MappedTable]) -> None:
    o = table(wide_chunks, "operations")
    assert len(o) == 5 and o["_row"].tolist() == [2, 3, 4, 5, 6]
    first = o.iloc[0]
    pid = pseudonym("070345-1233")
    assert first["patient_id"] == pid
    # a stable id: prefix + SHA-256 over the pseudonym and the date as written
    assert first["operation_id"] == "op-" + hashlib.sha256(f"{pid}\x1f12-01-2021".encode()).hexdigest()[:16]
    assert first["date"] == "12-01-2021"
    assert first["procedure_category"] == "vertebroplasty" and first["indication"] == "osteoporotic_vcf"
    assert first["diagnosis_codes"] == "M800;M8008"  # SKS D prefix removed
    assert first["procedure_codes"] == "KNAG40"
    assert first["asa_class"] == "3" and first["anaesthesia"] == "local"
    assert first["hospital"] == "1301" and first["department"] == "ORT"
    assert pd.isna(first["cancer_primary_site"])
    second = o.iloc[1]
    assert second["procedure_codes"] == "KNAG41;KNAG45" and second["diagnosis_codes"] == "C795;C509"
    assert second["cancer_primary_site"] == "breast" and second["indication"] == "cancer_vcf"
    assert o["operation_id"].nunique() == 5
    ch = next(c for c in wide_chunks if c.entity == "operations")
    assert ch.provenance.columns["operation_id"] == "cpr+opdato"
    assert ch.provenance.columns["procedure_codes"] == "procedurekode1+procedurekode2+procedurekode3"


def test_danespine_wide_levels_leaks_complications(wide_chunks: list[MappedTable]) -> None:
    lv = table(wide_chunks, "treated_levels")
    got = sorted(zip(lv["_row"], lv["level"], lv["cement_volume_ml"].fillna("-"), strict=True))
    assert got == [(2, "L1", "2.5"), (2, "T12", "3.0"), (3, "T8", "4"), (4, "L4", "-"), (4, "L5", "-")]
    assert len(frames(wide_chunks, "treated_levels")) == 2  # niveau3/4 are empty everywhere: no chunk
    img = table(wide_chunks, "imaging_findings")
    got = sorted(zip(img["_row"], img["level"], img["leak"], img["leak_type"].fillna("-"), img["modality"],
                     strict=True))
    assert got == [(2, "L1", "true", "yeom_b", "ct"), (2, "T12", "false", "-", "ct"), (3, "T8", "false", "-", "xray")]
    comp = table(wide_chunks, "complications")
    assert comp[["type", "clavien_dindo", "symptomatic", "date", "_row"]].values.tolist() == [
        ["dural_tear", "I", "false", "15-06-2022", 5]]
    assert comp["complication_id"].iloc[0].endswith("-k1")


def test_danespine_wide_questionnaires(wide_chunks: list[MappedTable]) -> None:
    chunks = [c for c in wide_chunks if c.entity == "proms"]
    assert [len(c.frame) for c in chunks] == [5, 3, 1]  # baseline, 3m, 1y: unanswered ones give no row
    base, three, year = (c.frame for c in chunks)
    assert set(base["timepoint"]) == {"baseline"} and set(year["timepoint"]) == {"1y"}
    assert "satisfaction" not in base.columns and "satisfaction" in three.columns  # optional, absent at baseline
    row4 = base[base["_row"] == 4].iloc[0]  # 99 = not answered ...
    assert pd.isna(row4["eq5d3l_ad"]) and pd.isna(row4["odi_8"]) and pd.isna(row4["nrs_leg"])
    assert row4["eqvas"] == "99"  # ... but a valid EQ-VAS
    assert row4["answer_date"] == "01-09-2022"
    first = base.iloc[0]
    assert [first[f"eq5d3l_{d}"] for d in ("mo", "sc", "ua", "pd", "ad")] == ["2", "2", "3", "3", "2"]
    assert first["prom_id"].endswith("-baseline") and first["operation_id"] in first["prom_id"]
    assert year["_row"].tolist() == [2]
    assert three["_row"].tolist() == [2, 3, 5]
    assert chunks[1].provenance.columns["eq5d3l_mo"] == "eq5d_mob_3m"
    assert chunks[1].frame.attrs["date_formats"] == {"answer_date": "%d-%m-%Y"}


def test_danespine_wide_validates_without_problems(wide_chunks: list[MappedTable]) -> None:
    no_clear_cpr(wide_chunks, CPRS)
    extract, report = validate(wide_chunks, extract_date=EXTRACT_DATE)
    assert report.ok, report.to_text()
    assert len(report.problems) == 0, report.to_text()
    counts = {k: len(v) for k, v in extract.tables.items()}
    assert counts == {"patients": 4, "operations": 5, "treated_levels": 5, "proms": 9, "complications": 1,
                      "imaging_findings": 3}
    ops = extract["operations"]
    assert ops["date"].iloc[0] == pd.Timestamp("2021-01-12")
    lv = extract["treated_levels"]
    assert lv["cement_volume_ml"].dropna().sort_values().tolist() == [2.5, 3.0, 4.0]


def test_invalid_cpr_is_reported_hidden(tmp_path: Path) -> None:
    text = WIDE.read_text(encoding="utf-8")
    bad = {"150552-2468": "310252-2468",   # 31 February
           "011260-4321": "01126O-4321"}   # a letter O
    for old, new in bad.items():
        text = text.replace(old, new)
    src = csv_file(tmp_path, "extract.csv", text)
    chunks = apply_mapping("danespine-wide", [src], key=KEY)
    pats = table(chunks, "patients")
    assert pats.loc[pats["_row"] == 3, "patient_id"].item() == INVALID_CPR
    assert pats.loc[pats["_row"] == 5, "patient_id"].item() == INVALID_CPR
    assert pats.loc[pats["_row"] == 3, "_cpr_error"].item() == "CPR number's date part is not a valid date"
    assert pats.loc[pats["_row"] == 5, "_cpr_error"].item() == "not a CPR number (DDMMYY-SSSS)"
    assert pats.loc[pats["_row"] == 2, "_cpr_error"].item() == ""
    assert pd.isna(pats.loc[pats["_row"] == 3, "sex"].item())
    # every chunk whose ids come from the CPR number carries the error
    for ch in chunks:
        assert "_cpr_error" in ch.frame.columns, ch.entity
        assert ch.provenance.columns["_cpr_error"] == "cpr"
    no_clear_cpr(chunks, [*CPRS, *bad.values()])
    _, report = validate(chunks, extract_date=EXTRACT_DATE)
    assert not report.ok
    cpr = report.errors[report.errors["rule"] == "cpr"]
    assert sorted(cpr["row"].tolist()) == [3, 5]  # once per source row
    assert set(cpr["file"]) == {str(src)} and set(cpr["column"]) == {"cpr"}
    assert set(cpr["value"]) == {HIDDEN}
    assert "invalid CPR number" in cpr["message"].iloc[0]
    text_report = report.to_text(limit=None) + report.problems.to_csv()
    for n in [*CPRS, *bad.values()]:
        assert n not in text_report and n.replace("-", "") not in text_report


def test_cpr_like_values_read_as_is_stop_the_import(tmp_path: Path) -> None:
    m = mapping_file(tmp_path, BASE.replace('patient_id = "id"', 'patient_id = "id"\ndeath_source = "note"'))
    data = csv_file(tmp_path, "p.csv", "id,note\n1,other\n2,0703451233\n")
    with pytest.raises(SpineregError) as e:
        apply_mapping(m, [data])
    msg = str(e.value)
    assert "column 'note'" in msg and "1 value(s) that look like CPR numbers (values hidden)" in msg
    assert "0703451233" not in msg
    # ... and in templates/hashes (an id made from the clear number)
    m2 = mapping_file(tmp_path, BASE.replace('patient_id = "id"', 'patient_id = { template = "P{note}" }'),
                      "m2.toml")
    with pytest.raises(SpineregError, match="look like CPR numbers"):
        apply_mapping(m2, [data])
    # an explicit opt-out for columns of other 10-digit numbers
    m3 = mapping_file(tmp_path, BASE.replace('patient_id = "id"', 'patient_id = { column = "note", '
                                                                  'cpr_check = false }'), "m3.toml")
    assert table(apply_mapping(m3, [data]), "patients")["patient_id"].tolist() == ["other", "0703451233"]


def _typed_wide() -> pd.DataFrame:
    """The fixture with numbers as numbers and (most) dates as dates, as SAS/Stata/Excel hold them."""
    raw = pd.read_csv(WIDE, sep=";", dtype=str, keep_default_na=False)
    out: dict[str, pd.Series] = {}
    text_cols = {"cpr", "opdato", "afdeling", "kompl_cd1", "kompl_cd2"} | {
        c for c in raw.columns if re.match(r"(procedurekode|diagnosekode|niveau|cement)", c)}
    for c in raw.columns:
        s = raw[c]
        if c in text_cols:
            out[c] = s
        elif c.startswith(("besvaret_", "doedsdato", "billeddato", "kompl_dato")):
            out[c] = pd.to_datetime(s.replace("", None), format="%d-%m-%Y")
        else:
            out[c] = pd.to_numeric(s.replace("", None)).astype(float)
    return pd.DataFrame(out)


def _assert_same_extract(a: list[MappedTable], b: list[MappedTable]) -> None:
    ea, ra = validate(a, extract_date=EXTRACT_DATE)
    eb, rb = validate(b, extract_date=EXTRACT_DATE)
    assert ra.ok and rb.ok, rb.to_text()
    for name, frame in ea.tables.items():
        pd.testing.assert_frame_equal(frame, eb[name], obj=name)


def test_danespine_wide_from_stata(tmp_path: Path, wide_chunks: list[MappedTable]) -> None:
    pyreadstat = pytest.importorskip("pyreadstat")
    p = tmp_path / "extract.dta"
    pyreadstat.write_dta(_typed_wide(), str(p))
    chunks = apply_mapping("danespine-wide", [p], key=KEY)
    assert {c.provenance.row_label for c in chunks} == {"row"}
    base = next(c.frame for c in chunks if c.entity == "proms")
    assert base["answer_date"].iloc[0] == "05-01-2021"  # a Stata date, written in the column's format
    _assert_same_extract(wide_chunks, chunks)


def test_danespine_wide_from_excel(tmp_path: Path, wide_chunks: list[MappedTable]) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    typed = _typed_wide()
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(list(typed.columns))
    for row in typed.itertuples(index=False):
        cells = []
        for v in row:
            if isinstance(v, pd.Timestamp):
                cells.append(v.to_pydatetime() if not pd.isna(v) else None)
            elif isinstance(v, float):
                cells.append(None if np.isnan(v) else (int(v) if v.is_integer() else v))
            else:
                cells.append(v if v != "" else None)
        ws.append(cells)
    p = tmp_path / "extract.xlsx"
    wb.save(p)
    chunks = apply_mapping("danespine-wide", [p], key=KEY)
    assert {c.provenance.row_label for c in chunks} == {"sheet row"}
    assert table(chunks, "patients")["_row"].tolist() == [2, 3, 5, 6]
    _assert_same_extract(wide_chunks, chunks)


# =========================================================================== tidy round trip


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_tidy_export_import_export_round_trips(tmp_path: Path, wide_chunks: list[MappedTable], fmt: str) -> None:
    extract, report = validate(wide_chunks, extract_date=EXTRACT_DATE)
    assert report.ok
    first = tmp_path / "first"
    write_extract(extract, first, fmt=fmt)
    chunks = apply_mapping("tidy", [first])
    assert {c.entity for c in chunks} == set(extract.tables) - {""}
    again, report2 = validate(chunks, extract_date=EXTRACT_DATE)
    assert report2.ok, report2.to_text()
    second = tmp_path / "second"
    write_extract(again, second, fmt=fmt)
    for name in extract.tables:
        a, b = first / f"{name}.{fmt}", second / f"{name}.{fmt}"
        if fmt == "csv":
            assert a.read_bytes() == b.read_bytes(), name
        else:
            pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b), obj=name)


def test_tidy_reads_single_files_and_needs_one(tmp_path: Path) -> None:
    p = csv_file(tmp_path, "patients.csv", "patient_id,sex\nabc,female\n")
    chunks = apply_mapping("tidy", [p])
    assert [c.entity for c in chunks] == ["patients"]
    assert chunks[0].frame["sex"].tolist() == ["female"]
    assert "birth_date" not in chunks[0].frame.columns  # optional and absent: left out
    with pytest.raises(SpineregError, match="none of the files given"):
        apply_mapping("tidy", [csv_file(tmp_path, "other.csv", "a\n1\n")])
    (tmp_path / "x").mkdir()
    bad = csv_file(tmp_path / "x", "operations.csv", "operation_id,date\n1,2020-01-01\n")
    with pytest.raises(SpineregError, match=r"tidy\.toml: target 2 \(operations\)\.columns\.patient_id "
                                            r"\(identity\): column 'patient_id' is not in"):
        apply_mapping("tidy", [bad])


# =========================================================================== nhs-proms (real data)


@pytest.fixture(scope="module")
def nhs() -> tuple[Path, list[MappedTable]]:
    path = shared_path("data", "nhs-proms", "hip-replacement-ccg-2018-19.csv.zip")
    return path, apply_mapping("nhs-proms", [path])


def test_nhs_proms_counts_and_missing_codes(nhs: tuple[Path, list[MappedTable]]) -> None:
    path, chunks = nhs
    pats, ops = table(chunks, "patients"), table(chunks, "operations")
    assert len(pats) == len(ops) == 40_432
    assert pats["patient_id"].iloc[0] == "NHS1819-hip-ccg-2" and pats["patient_id"].iloc[-1] == "NHS1819-hip-ccg-40433"
    assert ops["patient_id"].equals(ops["operation_id"])
    assert set(ops["date"]) == {"2018-10-01"}
    assert set(ops["procedure_category"]) == {"other"} and set(ops["indication"]) == {"other"}
    assert pats["sex"].isna().sum() == 2_076  # "*" (suppressed)
    assert pats["sex"].value_counts().to_dict() == {"female": 23_236, "male": 15_120}
    base, post = (c.frame for c in chunks if c.entity == "proms")
    # a questionnaire with every item 9 and VAS 999 gives no row
    assert len(base) == 39_030 and len(post) == 40_292
    for f in (base, post):
        for col in ("eq5d3l_mo", "eq5d3l_sc", "eq5d3l_ua", "eq5d3l_pd", "eq5d3l_ad"):
            assert not f[col].isin(["9"]).any(), col
        assert not f["eqvas"].isin(["999"]).any()
        assert f["eqvas"].isin(["9"]).any()  # VAS 9 is an answer, not a missing code
    assert base["eq5d3l_mo"].isna().sum() == 1_541 - (40_432 - 39_030)
    assert base["eqvas"].isna().sum() == 3_850 - (40_432 - 39_030)
    assert 30 not in set(post["_row"]) and 99 not in set(base["_row"])
    assert {c.provenance.file for c in chunks} == {f"{path}/Hip Replacement CCG 1819.csv"}


def test_nhs_proms_hand_checked_rows(nhs: tuple[Path, list[MappedTable]]) -> None:
    _, chunks = nhs
    base, post = (c.frame.set_index("_row") for c in chunks if c.entity == "proms")
    items = ["eq5d3l_mo", "eq5d3l_sc", "eq5d3l_ua", "eq5d3l_pd", "eq5d3l_ad", "eqvas"]

    def values(f: pd.DataFrame, line: int) -> list[str | None]:
        return [None if pd.isna(v) else str(v) for v in f.loc[line, items]]

    # line 2: "2,1,9,9,9" before with VAS 999; "2,2,2,2,2" after with VAS 70, much better
    assert values(base, 2) == ["2", "1", None, None, None, None]
    assert values(post, 2) == ["2", "2", "2", "2", "2", "70"]
    assert post.loc[2, "global_assessment"] == "1"
    assert base.loc[2, "prom_id"] == "NHS1819-hip-ccg-2-baseline" and post.loc[2, "prom_id"] == "NHS1819-hip-ccg-2-3m"
    assert post.loc[2, "timepoint"] == "3m"
    # line 3 and the last line
    assert values(base, 3) == ["2", "2", "3", "3", "2", "20"]
    assert values(post, 3) == ["2", "1", "2", "2", "2", "40"]
    assert values(base, 40_432) == ["2", "1", "2", "2", "1", "73"]
    pats = next(c.frame for c in chunks if c.entity == "patients").set_index("_row")
    assert pats.loc[2078, "sex"] == "male" and pd.isna(pats.loc[2, "sex"])
    ops = next(c.frame for c in chunks if c.entity == "operations").set_index("_row")
    assert ops.loc[40_432, "hospital"] == "99N"


def test_nhs_proms_imports_without_errors(nhs: tuple[Path, list[MappedTable]]) -> None:
    _, chunks = nhs
    extract, report = validate(chunks, extract_date="2020-02-13")
    assert report.ok and len(report.problems) == 0, report.to_text(20)
    assert len(extract["proms"]) == 39_030 + 40_292
    assert extract["proms"]["eqvas"].isna().sum() == (3_850 - 1_402) + (1_706 - (40_432 - 40_292))


def test_nhs_proms_unzipped_gives_the_same_rows(tmp_path: Path, nhs: tuple[Path, list[MappedTable]]) -> None:
    path, chunks = nhs
    with zipfile.ZipFile(path) as z:
        z.extract("Hip Replacement CCG 1819.csv", tmp_path)
    again = apply_mapping("nhs-proms", [tmp_path / "Hip Replacement CCG 1819.csv"])
    for a, b in zip(chunks, again, strict=True):
        pd.testing.assert_frame_equal(a.frame, b.frame)


# =========================================================================== features, on small files


def test_code_lists_split_prefix_and_codes(tmp_path: Path) -> None:
    m = mapping_file(tmp_path, """mapping_format = 1
[sources.s]
files = "*.csv"
[[target]]
entity = "operations"
source = "s"
[target.columns]
operation_id = "id"
patient_id = "id"
date = "d"
procedure_category = { constant = "other" }
diagnosis_codes = { column = "diag", split = ",", remove_prefix = "D", missing = ["DXXX"] }
procedure_codes = { columns = ["p1", "p2"], codes = { "VP" = "KNAG40" }, transform = "upper" }
""")
    data = csv_file(tmp_path, "o.csv", 'id,d,diag,p1,p2\n1,2020-01-01,"DM800, DC795 ,,DXXX",vp,\n'
                                       "2,2020-01-02,,,kabc\n")
    f = apply_mapping(m, [data])[0].frame
    assert f["diagnosis_codes"].tolist()[0] == "M800;C795"
    assert pd.isna(f["diagnosis_codes"].tolist()[1])
    assert f["procedure_codes"].tolist() == ["KNAG40", "KABC"]


def test_templates_builtins_hash_when_fallback(tmp_path: Path) -> None:
    m = mapping_file(tmp_path, """mapping_format = 1
[sources.s]
files = "*.csv"
[sources.s.derive]
pid = { template = "X{_file}-{_row}" }
[[target]]
entity = "patients"
source = "s"
[target.columns]
patient_id = "pid"
sex = { column = "KOEN", codes = { 1 = "male", 2 = "female" }, fallback = { column = "k2", codes = { m = "male" } } }
death_date = { template = "{y}-{m}-{d?}" }
death_source = { constant = "registry", when = "y" }
[[target]]
entity = "operations"
source = "s"
[target.columns]
operation_id = { hash = ["pid", "y"], prefix = "op", length = 8 }
patient_id = "pid"
date = { column = "missing_col", optional = true, fallback = { constant = "2020-01-01" } }
procedure_category = { constant = "other" }
""")
    data = csv_file(tmp_path, "f.csv", "koen,k2,y,m,d\n1,,2001,02,03\n,m,2001,02,\n9,,,,\n")
    chunks = apply_mapping(m, [data])
    p, o = chunks[0].frame, chunks[1].frame
    assert p["patient_id"].tolist() == ["Xf.csv-2", "Xf.csv-3", "Xf.csv-4"]
    assert p["sex"].tolist()[:2] == ["male", "male"] and p["sex"].tolist()[2] == "9"  # unknown code kept
    assert p["death_date"].tolist()[:2] == ["2001-02-03", "2001-02-"] and pd.isna(p["death_date"].iloc[2])
    assert p["death_source"].tolist()[:2] == ["registry", "registry"] and pd.isna(p["death_source"].iloc[2])
    assert chunks[0].provenance.columns["sex"] == "koen+k2"  # KOEN matched koen (case-insensitively)
    expect = "op" + hashlib.sha256(b"Xf.csv-2\x1f2001").hexdigest()[:8]
    assert o["operation_id"].iloc[0] == expect
    assert o["date"].tolist() == ["2020-01-01"] * 3
    # stable across re-imports
    assert apply_mapping(m, [data])[1].frame["operation_id"].equals(o["operation_id"])


def test_repeat_forms_and_skip_empty(tmp_path: Path) -> None:
    text = """mapping_format = 1
[sources.s]
files = "*.csv"
[[target]]
entity = "treated_levels"
source = "s"
repeat = { n = [1, 2], extra = ["a", "b"] }
SKIP
[target.columns]
operation_id = "op"
level = "lvl{n}"
cement_volume_ml = { column = "cem{n}", decimal = "," }
"""
    data = csv_file(tmp_path, "l.csv", "op,lvl1,cem1,lvl2,cem2\nA,L1,\"1,5\",,\nB,,,T12,2\n")
    chunks = apply_mapping(mapping_file(tmp_path, text.replace("SKIP", "")), [data])
    assert [(c.frame["_row"].tolist(), c.frame["level"].tolist()) for c in chunks] == [([2], ["L1"]), ([3], ["T12"])]
    assert chunks[0].frame["cement_volume_ml"].tolist() == ["1.5"]
    keep = apply_mapping(mapping_file(tmp_path, text.replace("SKIP", "skip_empty = false"), "k.toml"), [data])
    assert [len(c.frame) for c in keep] == [2, 2]
    by_cement = apply_mapping(mapping_file(tmp_path, text.replace("SKIP", 'skip_empty = ["cement_volume_ml"]'),
                                           "c.toml"), [data])
    assert [c.frame["_row"].tolist() for c in by_cement] == [[2], [3]]


def test_missing_code_precedence(tmp_path: Path) -> None:
    m = mapping_file(tmp_path, """mapping_format = 1
[sources.s]
files = "*.csv"
missing = ["-1"]
[[target]]
entity = "proms"
source = "s"
missing = ["9"]
[target.columns]
prom_id = "id"
patient_id = "id"
operation_id = "id"
timepoint = { constant = "baseline" }
eq5d3l_mo = "a"
eq5d3l_sc = { column = "b", missing = ["8"] }
""")
    data = csv_file(tmp_path, "q.csv", "id,a,b\n9,9,9\n-1,-1,8\n")
    f = apply_mapping(m, [data])[0].frame
    assert f["prom_id"].tolist() == ["9", "-1"]  # default missing codes do not touch ids
    assert pd.isna(f["eq5d3l_mo"].iloc[0]) and f["eq5d3l_mo"].iloc[1] == "-1"
    assert f["eq5d3l_sc"].iloc[0] == "9" and pd.isna(f["eq5d3l_sc"].iloc[1])


def test_date_formats_are_harmonised_across_sources(tmp_path: Path) -> None:
    m = mapping_file(tmp_path, """mapping_format = 1
[sources.dk]
files = "dk*.csv"
[sources.iso]
files = "iso*.csv"
optional = true
[[target]]
entity = "patients"
source = "dk"
[target.columns]
patient_id = "id"
birth_date = { column = "born", date_format = "%d-%m-%Y" }
[[target]]
entity = "patients"
source = "iso"
[target.columns]
patient_id = "id"
birth_date = "born"
""")
    dk = csv_file(tmp_path, "dk.csv", "id,born\na,07-03-1945\nb,31-02-1950\n")
    iso = csv_file(tmp_path, "iso.csv", "id,born\nc,1950-01-02\n")
    chunks = apply_mapping(m, [dk, iso])
    assert chunks[0].frame["birth_date"].tolist() == ["1945-03-07", "31-02-1950"]
    assert chunks[0].frame.attrs["date_formats"] == {}
    assert chunks[1].frame["birth_date"].tolist() == ["1950-01-02"]
    # one format everywhere: passed through with the format
    only = apply_mapping(m, [dk, csv_file(tmp_path, "dk2.csv", "id,born\nd,01-01-1960\n")])
    assert [c.frame.attrs["date_formats"] for c in only] == [{"birth_date": "%d-%m-%Y"}] * 2
    assert only[0].frame["birth_date"].tolist() == ["07-03-1945", "31-02-1950"]


def test_derived_column_errors(tmp_path: Path) -> None:
    cyc = mapping_file(tmp_path, BASE.replace('[[target]]', '[sources.s.derive]\na = { template = "{b}" }\n'
                                                              'b = { template = "{a}" }\n[[target]]')
                       .replace('patient_id = "id"', 'patient_id = "a"'))
    data = csv_file(tmp_path, "p.csv", "id\n1\n")
    with pytest.raises(SpineregError, match=r"sources\.s\.derive\.\w: refers to itself"):
        apply_mapping(cyc, [data])
    clash = mapping_file(tmp_path, BASE.replace('[[target]]', '[sources.s.derive]\nid = "x"\n[[target]]'),
                         "clash.toml")
    with pytest.raises(SpineregError, match="has a column of the same name"):
        apply_mapping(clash, [data])


def test_directory_input(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(WIDE, d / "a.csv")
    shutil.copy(WIDE, d / "b.csv")
    chunks = apply_mapping("danespine-wide", [d], key=KEY)
    assert {c.provenance.file for c in chunks} == {str(d / "a.csv"), str(d / "b.csv")}


def test_redcap_mapping(tmp_path: Path) -> None:
    m = mapping_file(tmp_path, """mapping_format = 1
[sources.demo]
files = "*_DATA_*.csv"
redcap_dictionary = "*_DataDictionary_*.csv"
form = "demographics"
[sources.op]
files = "*_DATA_*.csv"
redcap_dictionary = "*_DataDictionary_*.csv"
form = "operation"
[sources.eq]
files = "*_DATA_*.csv"
redcap_dictionary = "*_DataDictionary_*.csv"
form = "eq5d"
[sources.comp]
files = "*_DATA_*.csv"
redcap_dictionary = "*_DataDictionary_*.csv"
form = "complication"

[[target]]
entity = "patients"
source = "demo"
[target.columns]
patient_id = { template = "RC-{record_id}" }
sex = { column = "sex", codes = { "1" = "male", "2" = "female" } }
birth_date = "dob"

[[target]]
entity = "operations"
source = "op"
[target.columns]
operation_id = { template = "RC-{record_id}-op" }
patient_id = { template = "RC-{record_id}" }
date = "op_date"
procedure_category = { column = "op_type", codes = { "1" = "vertebroplasty", "2" = "kyphoplasty" } }

[[target]]
entity = "treated_levels"
source = "op"
repeat = [{ c = "1", level = "T12" }, { c = "2", level = "L1" }, { c = "3", level = "L2" }]
skip_empty = ["level"]
[target.columns]
operation_id = { template = "RC-{record_id}-op" }
level = { constant = "{level}", when = "levels___{c}", missing = ["0"] }

[[target]]
entity = "proms"
source = "eq"
[target.columns]
prom_id = { template = "RC-{record_id}-{redcap_event_name}" }
patient_id = { template = "RC-{record_id}" }
operation_id = { template = "RC-{record_id}-op" }
timepoint = { column = "redcap_event_name", codes = { baseline_arm_1 = "baseline", followup_3m_arm_1 = "3m" } }
answer_date = "eq_date"
eq5d3l_mo = "eq_mo"
eqvas = "eq_vas"

[[target]]
entity = "complications"
source = "comp"
[target.columns]
complication_id = { template = "RC-{record_id}-c{redcap_repeat_instance}" }
operation_id = { template = "RC-{record_id}-op" }
type = { column = "comp_type", codes = { "1" = "cement_embolism", "2" = "infection" } }
date = "comp_date"
""")
    files = sorted(REDCAP.iterdir())
    chunks = apply_mapping(m, files)
    lv = table(chunks, "treated_levels")
    assert sorted(zip(lv["operation_id"], lv["level"], strict=True)) == [
        ("RC-1-op", "L1"), ("RC-1-op", "T12"), ("RC-2-op", "L2")]
    proms = table(chunks, "proms")
    assert proms["_row"].tolist() == [2, 4, 5]
    assert proms["timepoint"].tolist() == ["baseline", "3m", "baseline"]
    comp = table(chunks, "complications")
    assert comp[["complication_id", "type", "_row"]].values.tolist() == [["RC-1-c1", "cement_embolism", 3]]
    # (treated_levels left out: conform() cannot yet add an absent float column)
    extract, report = validate([c for c in chunks if c.entity != "treated_levels"], extract_date=EXTRACT_DATE)
    assert report.ok and len(report.problems) == 0, report.to_text()
    assert {k: len(v) for k, v in extract.tables.items()} == {
        "patients": 2, "operations": 2, "treated_levels": 0, "proms": 3, "complications": 1, "imaging_findings": 0}


def test_mapping_many_rows_is_vectorised(tmp_path: Path) -> None:
    """100,000 operations (CPR numbers, 3 time points, 4 levels) map in seconds, not minutes."""
    n = 100_000
    raw = pd.read_csv(WIDE, sep=";", dtype=str, keep_default_na=False)
    rng = np.random.default_rng(1)
    big = raw.iloc[rng.integers(0, len(raw), n)].reset_index(drop=True)
    dd, mm, yy, seq = (rng.integers(1, 29, n), rng.integers(1, 13, n), rng.integers(30, 100, n),
                       rng.integers(0, 4000, n))
    big["cpr"] = (pd.Series(dd).astype(str).str.zfill(2) + pd.Series(mm).astype(str).str.zfill(2)
                  + pd.Series(yy).astype(str) + "-" + pd.Series(seq).astype(str).str.zfill(4))
    p = tmp_path / "big.csv"
    big.to_csv(p, sep=";", index=False)
    t0 = time.perf_counter()
    chunks = apply_mapping("danespine-wide", [p], key=KEY)
    took = time.perf_counter() - t0
    assert sum(len(c.frame) for c in chunks if c.entity == "operations") == n
    assert took < 60, f"mapping {n} rows took {took:.1f} s"


def test_dates_from_excel_cells_follow_the_column_format(tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["id", "born"])
    ws.append(["a", dt.datetime(1945, 3, 7)])
    ws.append(["b", "07-03-1946"])
    p = tmp_path / "p.xlsx"
    wb.save(p)
    m = mapping_file(tmp_path, BASE.replace('files = "*.csv"', 'files = "*.xlsx"')
                     + 'birth_date = { column = "born", date_format = "%d-%m-%Y" }\n')
    f = apply_mapping(m, [p])[0].frame
    assert f["birth_date"].tolist() == ["07-03-1945", "07-03-1946"]
    assert f["_row"].tolist() == [2, 3]


# =========================================================================== lazily, entity by entity


@pytest.fixture
def files_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files the mapping module reads, in order."""
    import spinereg.data._mapping as mapping_module

    read: list[str] = []
    real = mapping_module.read_source

    def spy(path: Path, **kw: object) -> object:
        read.append(Path(path).name)
        return real(path, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(mapping_module, "read_source", spy)
    return read


def test_iter_mapping_reads_each_file_when_its_entity_is_asked_for(tmp_path: Path, files_read: list[str]) -> None:
    """``iter_mapping`` matches files at once, then reads and maps them entity by entity (in
    the order of ``entities()``), so validation can check the first entities while later
    files are still unread; its chunks are those of ``apply_mapping``."""
    from spinereg.data import entities
    from spinereg.data._mapping import iter_mapping
    from spinereg.data._synth import synthesize

    write_extract(synthesize(40, 7), tmp_path / "x", "csv")
    files = sorted((tmp_path / "x").glob("*.csv"))
    read = files_read
    chunks = iter_mapping("tidy", files, key=KEY)
    assert read == []
    first = next(chunks)
    assert first.entity == "patients"
    assert read == ["patients.csv"]
    rest = list(chunks)
    assert read == [f"{e}.csv" for e in ("patients", "operations", "treated_levels", "proms", "complications",
                                         "imaging_findings")]
    order = [e.name for e in entities()]
    got = [first, *rest]
    assert [order.index(c.entity) for c in got] == sorted(order.index(c.entity) for c in got)
    eager = apply_mapping("tidy", files, key=KEY)
    assert [c.entity for c in eager] == [c.entity for c in got]
    for a, b in zip(eager, got, strict=True):
        pd.testing.assert_frame_equal(a.frame, b.frame)


def test_iter_mapping_reads_a_wide_file_once(tmp_path: Path, files_read: list[str]) -> None:
    from spinereg.data import entities
    from spinereg.data._mapping import iter_mapping

    read = files_read
    stray = csv_file(tmp_path, "notes.md", "a,b\n1,2\n")
    with pytest.raises(SpineregError, match=r"notes\.md matches no source"):  # at once, before reading a file
        iter_mapping("danespine-wide", [WIDE, stray], key=KEY)
    assert read == []
    chunks = list(iter_mapping("danespine-wide", [WIDE], key=KEY))
    assert read == [WIDE.name]
    order = [e.name for e in entities()]
    assert [order.index(c.entity) for c in chunks] == sorted(order.index(c.entity) for c in chunks)
    assert {c.entity for c in chunks} >= {"patients", "operations", "treated_levels", "proms"}


def test_validate_refuses_chunks_out_of_entity_order_when_lazy() -> None:
    """A lazy iterable must come entity by entity (a list may come in any order)."""
    from spinereg.data._mapped import Provenance

    pats = MappedTable("patients", pd.DataFrame({"patient_id": ["P1"], "_row": [2]}), Provenance("p.csv", "line"))
    ops = MappedTable("operations", pd.DataFrame({"operation_id": ["O1"], "patient_id": ["P1"], "date": ["2015-01-01"],
                                                  "procedure_category": ["fusion"], "_row": [2]}),
                      Provenance("o.csv", "line"))
    _, report = validate([ops, pats], extract_date=EXTRACT_DATE)
    assert report.ok, report.to_text()
    with pytest.raises(ValueError, match="chunks out of entity order: patients after operations"):
        validate(iter([ops, pats]), extract_date=EXTRACT_DATE)

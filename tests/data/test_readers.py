"""Source-file readers: values as read, row numbers as a person sees them, clean errors."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spinereg._errors import SpineregError
from spinereg.data._readers import format_of, parse_choices, read_redcap, read_source

FIXTURES = Path(__file__).parent / "fixtures" / "import"
REDCAP = FIXTURES / "redcap"
REDCAP_DATA = REDCAP / "SpineStudy_DATA_2024-03-01_1200.csv"
REDCAP_DICT = REDCAP / "SpineStudy_DataDictionary_2024-03-01.csv"
CPR = "070345-1233"  # synthetic


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


# --------------------------------------------------------------------------- CSV


def test_csv_keeps_text_as_written(tmp_path: Path) -> None:
    p = write(tmp_path / "a.csv", "id,asa,note\n007,3,\n008, 2 ,x y\n")
    t = read_source(p)
    assert t.row_label == "line"
    assert t.file == str(p)
    assert list(t.frame.columns) == ["id", "asa", "note"]
    assert t.frame["id"].tolist() == ["007", "008"]
    assert t.frame["asa"].tolist() == ["3", " 2 "]
    assert t.frame["note"].tolist() == ["", "x y"]
    assert all(isinstance(d, pd.StringDtype) for d in t.frame.dtypes)
    np.testing.assert_array_equal(t.rows, [2, 3])
    assert t.labels == {} and t.value_labels == {}


def test_csv_delimiter_bom_and_encoding(tmp_path: Path) -> None:
    p = tmp_path / "semi.csv"
    p.write_bytes(b"\xef\xbb\xbfafdeling;cement\nR\xc3\xb8ntgen;2,5\n")
    t = read_source(p)
    assert list(t.frame.columns) == ["afdeling", "cement"]
    assert t.frame.iloc[0].tolist() == ["Røntgen", "2,5"]
    # Windows-1252 (Danish Excel) is detected when the bytes are not UTF-8
    q = write(tmp_path / "cp.csv", "sygehus;by\n1301;Århus\n", encoding="cp1252")
    assert read_source(q).frame["by"].tolist() == ["Århus"]
    # explicit delimiter and encoding
    r = write(tmp_path / "pipe.txt", "a|b\n1|ø\n", encoding="latin-1")
    assert read_source(r, delimiter="|", encoding="latin-1").frame["b"].tolist() == ["ø"]
    tsv = write(tmp_path / "t.tsv", "a\tb\n1\t2\n")
    assert read_source(tsv).frame["b"].tolist() == ["2"]


def test_csv_line_numbers_with_blank_lines_and_multiline_values(tmp_path: Path) -> None:
    p = write(tmp_path / "odd.csv", 'id,note\n1,a\n\n2,"two\nlines"\n3,c\n\n')
    t = read_source(p)
    assert t.frame["id"].tolist() == ["1", "2", "3"]
    assert t.frame["note"].tolist() == ["a", "two\nlines", "c"]
    np.testing.assert_array_equal(t.rows, [2, 4, 6])
    # no trailing newline, CRLF line ends
    q = tmp_path / "crlf.csv"
    q.write_bytes(b"id\r\n1\r\n2")
    t = read_source(q)
    assert t.frame["id"].tolist() == ["1", "2"]
    np.testing.assert_array_equal(t.rows, [2, 3])


def test_csv_short_rows_are_padded_long_rows_fail(tmp_path: Path) -> None:
    p = write(tmp_path / "short.csv", "a,b,c\n1,2\n4,5,6\n")
    t = read_source(p)
    assert t.frame["c"].tolist() == ["", "6"]
    np.testing.assert_array_equal(t.rows, [2, 3])
    q = write(tmp_path / "long.csv", f"a,b\n1,2\n3,4,{CPR}\n")
    with pytest.raises(SpineregError) as e:
        read_source(q)
    msg = str(e.value)
    assert msg.startswith(str(q)) and "\n" not in msg
    assert CPR not in msg and "0703451233" not in msg


def test_csv_header_problems(tmp_path: Path) -> None:
    with pytest.raises(SpineregError, match="names column 'a' twice"):
        read_source(write(tmp_path / "dup.csv", "a,b,a\n1,2,3\n"))
    with pytest.raises(SpineregError, match="empty file"):
        read_source(write(tmp_path / "empty.csv", ""))
    t = read_source(write(tmp_path / "head.csv", "a,,c\n"))
    assert list(t.frame.columns) == ["a", "column2", "c"] and len(t.frame) == 0


def test_zip_with_one_csv_is_read_in_place(tmp_path: Path) -> None:
    z = tmp_path / "extract.csv.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("Data 2019.csv", "a,b\n1,2\n3,4\n")
        f.writestr("__MACOSX/._Data 2019.csv", "junk")
    t = read_source(z)
    assert t.file == f"{z}/Data 2019.csv"
    assert t.row_label == "line"
    assert t.frame["b"].tolist() == ["2", "4"]
    np.testing.assert_array_equal(t.rows, [2, 3])
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as f:
        f.writestr("a.csv", "a\n1\n")
        f.writestr("b.csv", "a\n1\n")
    with pytest.raises(SpineregError, match="exactly one data file"):
        read_source(two)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as f:
        f.writestr("a.dta", "x")
    with pytest.raises(SpineregError, match="only a CSV file"):
        read_source(other)
    bad = write(tmp_path / "bad.zip", "not a zip")
    with pytest.raises(SpineregError, match="cannot read as a zip archive"):
        read_source(bad)


# --------------------------------------------------------------------------- Excel


def test_xlsx_sheet_rows_and_cell_values(tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Notes"
    ws["A1"] = "not the data"
    data = wb.create_sheet("Data")
    data["B3"], data["C3"], data["D3"] = "id", "opdato", "asa"
    data["B4"], data["C4"], data["D4"] = "007", dt.datetime(2021, 1, 12), 3
    # row 5 empty
    data["B6"], data["C6"], data["D6"] = "8", "12-01-2021", None
    p = tmp_path / "ops.xlsx"
    wb.save(p)
    t = read_source(p, sheet="Data")
    assert t.row_label == "sheet row"
    assert list(t.frame.columns) == ["id", "opdato", "asa"]
    np.testing.assert_array_equal(t.rows, [4, 6])
    assert t.frame["id"].tolist() == ["007", "8"]
    assert t.frame["opdato"].iloc[0] == dt.datetime(2021, 1, 12)
    assert t.frame["asa"].iloc[0] == 3 and t.frame["asa"].iloc[1] is None
    assert read_source(p, sheet=1).frame.shape == (2, 3)
    assert list(read_source(p).frame.columns) == ["not the data"]
    with pytest.raises(SpineregError, match="no sheet 'Nope'; sheets: Notes, Data"):
        read_source(p, sheet="Nope")
    with pytest.raises(SpineregError, match="no sheet number 5"):
        read_source(p, sheet=5)
    bad = write(tmp_path / "bad.xlsx", "PK not really")
    with pytest.raises(SpineregError, match=r"bad\.xlsx: cannot read as an Excel workbook"):
        read_source(bad)


# --------------------------------------------------------------------------- SAS, Stata, SPSS, Parquet


@pytest.fixture
def stat_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "id": ["a1", "a2", "a3"],
        "koen": [1.0, 2.0, np.nan],
        "asa": [3.0, np.nan, 1.0],
        "opdato": [dt.datetime(2021, 1, 12), dt.datetime(2021, 2, 3), pd.NaT],
    })


def test_stata_keeps_codes_and_labels(tmp_path: Path, stat_frame: pd.DataFrame) -> None:
    pyreadstat = pytest.importorskip("pyreadstat")
    p = tmp_path / "ops.dta"
    pyreadstat.write_dta(stat_frame, str(p), column_labels={"koen": "Sex", "asa": "ASA class"},
                         variable_value_labels={"koen": {1: "Mand", 2: "Kvinde"}})
    t = read_source(p)
    assert t.row_label == "row"
    np.testing.assert_array_equal(t.rows, [1, 2, 3])
    assert t.frame["id"].tolist() == ["a1", "a2", "a3"]
    assert t.frame["koen"].iloc[0] == 1  # the code, not "Mand"
    assert np.isnan(t.frame["koen"].iloc[2])
    assert pd.api.types.is_datetime64_any_dtype(t.frame["opdato"])
    assert t.labels["koen"] == "Sex" and t.labels["asa"] == "ASA class"
    assert t.value_labels == {"koen": {"1": "Mand", "2": "Kvinde"}}


def test_spss_keeps_codes_and_labels(tmp_path: Path, stat_frame: pd.DataFrame) -> None:
    pyreadstat = pytest.importorskip("pyreadstat")
    p = tmp_path / "ops.sav"
    pyreadstat.write_sav(stat_frame, str(p), column_labels={"koen": "Sex"},
                         variable_value_labels={"koen": {1: "Mand", 2: "Kvinde"}})
    t = read_source(p)
    assert t.row_label == "row"
    assert t.frame["koen"].tolist()[:2] == [1.0, 2.0]
    assert t.labels["koen"] == "Sex"
    assert t.value_labels["koen"] == {"1": "Mand", "2": "Kvinde"}
    assert t.frame["opdato"].iloc[1] == pd.Timestamp("2021-02-03")


def test_sas_transport(tmp_path: Path, stat_frame: pd.DataFrame) -> None:
    pyreadstat = pytest.importorskip("pyreadstat")
    p = tmp_path / "ops.xpt"
    frame = stat_frame.rename(columns=str.upper)
    frame["OPDATO"] = [dt.date(2021, 1, 12), dt.date(2021, 2, 3), None]  # SAS dates are days
    pyreadstat.write_xport(frame, str(p), column_labels={"ASA": "ASA class"}, table_name="OPS",
                           variable_format={"OPDATO": "DATE9."})
    t = read_source(p)
    assert list(t.frame.columns) == ["ID", "KOEN", "ASA", "OPDATO"]
    assert t.frame["ASA"].iloc[0] == 3.0
    assert t.frame["OPDATO"].iloc[0] == pd.Timestamp("2021-01-12")
    assert t.labels["ASA"] == "ASA class"
    np.testing.assert_array_equal(t.rows, [1, 2, 3])


def test_sas7bdat_fixture() -> None:
    # pyreadstat cannot write .sas7bdat; the fixture was made with the ReadStat
    # command-line tool (see fixtures/import/README.md).
    pytest.importorskip("pyreadstat")
    t = read_source(FIXTURES / "small.sas7bdat")
    assert t.row_label == "row"
    assert t.frame["ID"].tolist() == ["a1", "a2", "a3"]
    assert t.frame["AFD"].tolist() == ["ORT", "", "RYG"]
    assert t.frame["ASA"].iloc[0] == 3.0 and np.isnan(t.frame["ASA"].iloc[1])
    # no SAS date format on OPDATO: days since 1960-01-01, as stored
    assert t.frame["OPDATO"].iloc[0] == (dt.date(2021, 1, 12) - dt.date(1960, 1, 1)).days
    assert t.labels["ASA"] == "ASA class"
    np.testing.assert_array_equal(t.rows, [1, 2, 3])


@pytest.mark.parametrize("suffix", [".sas7bdat", ".xpt", ".dta", ".sav"])
def test_damaged_statistics_files_give_one_line(tmp_path: Path, suffix: str) -> None:
    pytest.importorskip("pyreadstat")
    p = write(tmp_path / f"broken{suffix}", "this is not a data file at all " * 20)
    with pytest.raises(SpineregError) as e:
        read_source(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: cannot read as") and "\n" not in msg


def test_truncated_sas7bdat(tmp_path: Path) -> None:
    pytest.importorskip("pyreadstat")
    p = tmp_path / "cut.sas7bdat"
    p.write_bytes((FIXTURES / "small.sas7bdat").read_bytes()[:3000])
    with pytest.raises(SpineregError, match=r"cut\.sas7bdat: cannot read as SAS"):
        read_source(p)


def test_parquet(tmp_path: Path) -> None:
    p = tmp_path / "t.parquet"
    pd.DataFrame({"a": [1, 2], "d": pd.to_datetime(["2020-01-01", None])}).to_parquet(p)
    t = read_source(p)
    assert t.row_label == "row" and t.frame["a"].tolist() == [1, 2]
    with pytest.raises(SpineregError, match="cannot read as Parquet"):
        read_source(write(tmp_path / "x.parquet", "nope"))


def test_unknown_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(SpineregError, match=r"unknown file type '\.json'"):
        read_source(write(tmp_path / "a.json", "{}"))
    with pytest.raises(SpineregError, match=r"old Excel \.xls"):
        read_source(write(tmp_path / "a.xls", ""))
    with pytest.raises(SpineregError, match="no such file"):
        read_source(tmp_path / "gone.csv")
    with pytest.raises(SpineregError, match="is a directory"):
        read_source(tmp_path, format="csv")
    with pytest.raises(SpineregError, match="unknown format 'json'"):
        read_source(write(tmp_path / "b.csv", "a\n"), format="json")
    assert format_of("X.SAS7BDAT") == "sas7bdat"
    assert read_source(write(tmp_path / "c.dat", "a\n1\n"), format="csv").frame["a"].tolist() == ["1"]


# --------------------------------------------------------------------------- REDCap


def test_parse_choices() -> None:
    assert parse_choices("1, Male | 2, Female") == {"1": "Male", "2": "Female"}
    assert parse_choices("0, No|1, Yes, definitely | 9") == {"0": "No", "1": "Yes, definitely", "9": "9"}


def test_redcap_dictionary_and_forms() -> None:
    r = read_redcap(REDCAP_DATA, REDCAP_DICT)
    assert r.record_id == "record_id"
    assert r.forms == ("demographics", "operation", "eq5d", "complication")
    assert r.events == ("baseline_arm_1", "followup_3m_arm_1")
    assert r.repeating == frozenset({"complication"})
    assert "intro" not in r.fields  # descriptive fields hold no data
    assert r.fields["sex"].choices == {"1": "Male", "2": "Female"}
    assert r.fields["levels"].type == "checkbox"
    assert r.fields["levels"].columns == ("levels___1", "levels___2", "levels___3")
    assert r.fields["dob"].validation == "date_ymd"

    demo = r.form("demographics")
    assert demo.file == str(REDCAP_DATA) and demo.row_label == "line"
    np.testing.assert_array_equal(demo.rows, [2, 5])
    assert demo.frame["sex"].tolist() == ["1", "2"]
    assert demo.value_labels["sex"] == {"1": "Male", "2": "Female"}
    assert demo.labels["dob"] == "Date of birth"

    op = r.form("operation")
    np.testing.assert_array_equal(op.rows, [2, 5])
    assert op.frame["levels"].tolist() == ["1;2", "3"]
    assert op.frame["levels___3"].tolist() == ["0", "1"]
    assert "eq_mo" not in op.frame.columns

    eq = r.form("eq5d")  # line 6: the form is marked incomplete and empty
    np.testing.assert_array_equal(eq.rows, [2, 4, 5])
    assert eq.frame["redcap_event_name"].tolist() == ["baseline_arm_1", "followup_3m_arm_1", "baseline_arm_1"]
    np.testing.assert_array_equal(r.form("eq5d", events=["followup_3m_arm_1"]).rows, [4])

    comp = r.form("complication")  # a repeating instrument: its instances
    np.testing.assert_array_equal(comp.rows, [3])
    assert comp.frame["redcap_repeat_instance"].tolist() == ["1"]


def test_redcap_errors(tmp_path: Path) -> None:
    r = read_redcap(REDCAP_DATA, REDCAP_DICT)
    with pytest.raises(SpineregError, match="form 'nope' is not in the data dictionary"):
        r.form("nope")
    with pytest.raises(SpineregError, match="event 'month_6_arm_1' is not in the export"):
        r.form("eq5d", events=["month_6_arm_1"])
    with pytest.raises(SpineregError, match="not a REDCap data dictionary"):
        read_redcap(REDCAP_DATA, REDCAP_DATA)
    partial = write(tmp_path / "partial_DATA.csv", "record_id,sex,dob,demographics_complete\n1,1,1950-01-01,2\n")
    with pytest.raises(SpineregError, match="holds no field of REDCap form 'eq5d'"):
        read_redcap(partial, REDCAP_DICT).form("eq5d")
    other = write(tmp_path / "other_DATA.csv", "study_id,x\n1,2\n")
    with pytest.raises(SpineregError, match="no column 'record_id'"):
        read_redcap(other, REDCAP_DICT)

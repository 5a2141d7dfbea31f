"""The command line on CSV, XLSX and Parquet, and its error behaviour."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import spinereg


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spinereg", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def dims5() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame({"id": range(30), **{d: rng.integers(1, 6, 30)
                                             for d in ["MO", "SC", "UA", "PD", "AD"]}})


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".parquet"])
def test_score_eq5d_each_format(tmp_path: Path, dims5: pd.DataFrame, suffix: str) -> None:
    src = tmp_path / f"in{suffix}"
    dst = tmp_path / f"out{suffix}"
    {".csv": dims5.to_csv, ".xlsx": dims5.to_excel, ".parquet": dims5.to_parquet}[suffix](src, index=False)
    res = run("score", "eq5d", "--version", "5L", "--type", "VT", "--country", "Denmark", src, "-o", dst)
    assert res.returncode == 0, res.stderr
    out = {".csv": pd.read_csv, ".xlsx": pd.read_excel, ".parquet": pd.read_parquet}[suffix](dst)
    assert list(out.columns) == [*dims5.columns, "index"]
    expected = spinereg.eq5d(dims5, "5L", "VT", "Denmark")
    np.testing.assert_allclose(out["index"], expected, rtol=0, atol=1e-12)


def test_score_eq5d_state_column_3l(tmp_path: Path) -> None:
    src = tmp_path / "states.csv"
    src.write_text("id,state\na,33333\nb,11111\nc,21232\n")
    dst = tmp_path / "out.csv"
    res = run("score", "eq5d", "--version", "3L", "--type", "TTO", "--country", "DK", "--digits", "3",
              src, "-o", dst)
    assert res.returncode == 0, res.stderr
    assert pd.read_csv(dst)["index"].tolist() == [-0.624, 1.0, 0.321]


def test_bad_rows_one_line_each_then_count(tmp_path: Path) -> None:
    src = tmp_path / "bad.csv"
    src.write_text("MO,SC,UA,PD,AD\n1,1,1,1,1\n1,7,1,1,1\n1,1,1,1,1\n1,1,,1,1\n")
    dst = tmp_path / "out.csv"
    res = run("score", "eq5d", "--version", "3L", "--type", "TTO", "--country", "Denmark", src, "-o", dst)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert lines[0] == (f"{src}:line 3: column 'SC': value 7: not a level of EQ-5D-3L (integers 1..3)")
    assert lines[1].startswith(f"{src}:line 5: column 'UA': value (empty): missing")
    assert lines[2] == f"2 invalid row(s) in {src}; nothing written."
    assert "Traceback" not in res.stderr
    assert not dst.exists()


def test_nan_mode_writes_and_warns(tmp_path: Path) -> None:
    src = tmp_path / "bad.csv"
    src.write_text("state\n11111\n11119\n")
    dst = tmp_path / "out.csv"
    res = run("score", "eq5d", "--version", "5L", "--country", "DK", "--invalid", "nan", src, "-o", dst)
    assert res.returncode == 0, res.stderr
    assert "1 invalid row(s) scored as NaN" in res.stderr
    assert pd.read_csv(dst)["index"].isna().tolist() == [False, True]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--country", "Atlantis"], "error: no EQ-5D-5L VT value set for country 'Atlantis'; choose from"),
        (["--type", "TTO"], "error: no value-set type 'TTO' for EQ-5D-5L; choose from"),
    ],
)
def test_bad_choices(tmp_path: Path, args: list[str], message: str) -> None:
    src = tmp_path / "in.csv"
    src.write_text("state\n11111\n")
    res = run("score", "eq5d", "--version", "5L", *args, src, "-o", tmp_path / "o.csv")
    assert res.returncode == 1
    assert res.stderr.startswith(message)
    assert "Traceback" not in res.stderr


def test_bad_files(tmp_path: Path) -> None:
    doc = tmp_path / "in.doc"
    doc.write_text("x")
    res = run("score", "eq5d", doc, "-o", tmp_path / "o.csv")
    assert res.returncode == 1 and "unknown file type '.doc'" in res.stderr
    res = run("score", "eq5d", tmp_path / "missing.csv", "-o", tmp_path / "o.csv")
    assert res.returncode == 1 and "no such file" in res.stderr
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"not a zip file")
    res = run("score", "eq5d", broken, "-o", tmp_path / "o.csv")
    assert res.returncode == 1 and "cannot read as an Excel workbook" in res.stderr
    nocols = tmp_path / "nocols.csv"
    nocols.write_text("a,b\n1,2\n")
    res = run("score", "eq5d", nocols, "-o", tmp_path / "o.csv")
    assert res.returncode == 1 and "needs columns MO SC UA PD AD or 'state'" in res.stderr
    for r in (res,):
        assert "Traceback" not in r.stderr


def test_score_odi(tmp_path: Path) -> None:
    src = tmp_path / "odi.csv"
    cols = ",".join(f"odi_{k}" for k in range(1, 11))
    src.write_text(f"id,{cols}\n1,5,4,,3,3,0,0,3,5,3\n2,1,1,1,1,1,1,1,1,1,1\n3,,,2,2,2,2,2,2,2,2\n")
    dst = tmp_path / "out.parquet"
    res = run("score", "odi", src, "-o", dst)
    assert res.returncode == 0, res.stderr
    out = pd.read_parquet(dst)
    assert out["odi"].iloc[0] == pytest.approx(100 * 26 / 45)
    assert out["odi"].iloc[1] == 20.0
    assert np.isnan(out["odi"].iloc[2])
    assert out["odi_band"].tolist()[:2] == ["severe", "minimal"]
    assert out["odi_missing"].tolist() == [1, 0, 2]


def test_score_odi_bad_value(tmp_path: Path) -> None:
    src = tmp_path / "odi.xlsx"
    df = pd.DataFrame([[0] * 10, [0] * 9 + [9]], columns=[f"odi_{k}" for k in range(1, 11)])
    df.to_excel(src, index=False)
    res = run("score", "odi", src, "-o", tmp_path / "o.csv")
    assert res.returncode == 1
    assert res.stderr.splitlines()[0] == (
        f"{src}:sheet row 3: column 'odi_10': value 9: Oswestry Disability Index odi_10 must be an "
        "integer 0..5")


def test_valuesets_command() -> None:
    res = run("valuesets", "--version", "3L", "--csv")
    assert res.returncode == 0
    lines = res.stdout.strip().splitlines()
    assert lines[0].startswith("key,version,type,method,country")
    assert any(line.startswith("3L/TTO/Denmark,3L,TTO,,Denmark,DK") for line in lines)
    assert any("10.1177/1403494809105287" in line for line in lines)
    table = run("valuesets", "--version", "5L")
    assert table.returncode == 0 and "Denmark" in table.stdout and "NOT AVAILABLE" in table.stdout


def test_version_flag() -> None:
    res = run("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"spinereg {spinereg.__version__}"


# --- issue 11: a score command that cannot mislead ------------------------------------------------------------
# Expected indices are hand calculations from the published value sets:
#   Danish EQ-5D-3L TTO (Wittrup-Jensen et al., Scand J Public Health 2009;37:459-66): 33333 = -0.624, 11111 = 1.
#   Danish EQ-5D-5L (Jensen et al., Appl Health Econ Health Policy 2021; the weights table of the valuation team at
#   klinisk.aau.dk): 55555 = 1 - 0.220 - 0.209 - 0.174 - 0.537 - 0.618 = -0.758; 33333 = 1 - 0.054 - 0.050 - 0.040
#   - 0.094 - 0.191 = 0.571; 11114 = 1 - 0.430 = 0.570; 11113 = 1 - 0.191 = 0.809.
#   UK EQ-5D-3L TTO (Dolan, Med Care 1997;35:1095-108): 11112 = 1 - 0.081 - 0.071 = 0.848;
#   11113 = 1 - 0.081 - 0.236 - 0.269 = 0.414; 33333 = -0.594.


def test_3l_file_is_never_silently_scored_as_5l(tmp_path: Path) -> None:
    src = tmp_path / "threes.csv"
    src.write_text("id,state\na,33333\nb,11111\nc,21232\n")
    before = src.read_bytes()
    dst = tmp_path / "out.csv"
    res = run("score", "eq5d", src, "-o", dst)  # used to give 33333 = 0.571 (Danish 5L) without a word
    assert res.returncode == 1
    assert res.stderr.startswith(f"error: {src}: give --version 3L, 5L or Y3L: no response is at level 4 or 5")
    assert "Traceback" not in res.stderr and not dst.exists() and src.read_bytes() == before
    res = run("score", "eq5d", "--version", "3L", src, "-o", dst)
    assert res.returncode == 0, res.stderr
    assert pd.read_csv(dst)["index"].tolist() == [-0.624, 1.0, 0.321]
    assert "3 rows scored with EQ-5D-3L 3L/TTO/Denmark" in res.stderr
    # --type TTO exists only for 3L: the version is implied, and said so
    res = run("score", "eq5d", "--type", "TTO", src, "-o", dst)
    assert res.returncode == 0, res.stderr
    assert "EQ-5D-3L: implied by --type TTO" in res.stderr
    assert pd.read_csv(dst)["index"].tolist() == [-0.624, 1.0, 0.321]
    # 5L asked for on data that fit 3L: scored as asked (0.571), with a note
    res = run("score", "eq5d", "--version", "5L", src, "-o", dst)
    assert res.returncode == 0, res.stderr
    assert pd.read_csv(dst)["index"].tolist()[0] == 0.571
    assert "every response is at level 1, 2 or 3; if these are EQ-5D-3L answers" in res.stderr


def test_5l_inferred_only_from_levels_4_or_5(tmp_path: Path) -> None:
    src = tmp_path / "dims.csv"
    src.write_text("MO,SC,UA,PD,AD\n1,1,1,1,1\n3,3,3,3,3\n5,5,5,5,5\n1,1,1,1,4\n")
    dst = tmp_path / "out.csv"
    res = run("score", "eq5d", src, "-o", dst)
    assert res.returncode == 0, res.stderr
    assert ("EQ-5D-5L inferred from the data: 6 response(s) at level 4 or 5 (first: line 4, column 'MO'); "
            "give --version to choose") in res.stderr
    assert pd.read_csv(dst)["index"].tolist() == [1.0, 0.571, -0.758, 0.57]
    # a stray 7 is an error, not a sign of 5L
    src.write_text("MO,SC,UA,PD,AD\n1,1,1,1,1\n7,1,1,1,1\n")
    res = run("score", "eq5d", src, "-o", dst)
    assert res.returncode == 1 and "give --version 3L, 5L or Y3L" in res.stderr


def test_semicolons_decimal_commas_latin1_and_lower_case_names(tmp_path: Path) -> None:
    src = tmp_path / "danish.csv"
    text = ("afdeling;mo;Sc;uA;pd;AD;vægt\r\nÅrhus;3;3,0;3;3;3;72,5\r\nOdense;1;1;1;1;1;80\r\n"
            "Aalborg;5;5;5;5;5;64,25\r\n")
    src.write_bytes(text.encode("cp1252"))
    dst = tmp_path / "out.csv"
    res = run("score", "eq5d", "--version", "5L", src, "-o", dst)
    assert res.returncode == 0, res.stderr
    out = pd.read_csv(dst, dtype=str, keep_default_na=False)
    assert list(out.columns) == ["afdeling", "mo", "Sc", "uA", "pd", "AD", "vægt", "index"]
    assert out["afdeling"].tolist() == ["Århus", "Odense", "Aalborg"]  # written as UTF-8
    assert out["Sc"].tolist() == ["3,0", "1", "5"]  # passed through exactly as in the file
    assert out["vægt"].tolist() == ["72,5", "80", "64,25"]
    assert out["index"].tolist() == ["0.571", "1.0", "-0.758"]
    # the same file as 3L: the 5s are errors named by line, column and the value as written
    res = run("score", "eq5d", "--version", "3L", src, "-o", dst)
    assert res.returncode == 1
    assert res.stderr.splitlines()[0] == (f"{src}:line 4: column 'mo': value 5: not a level of EQ-5D-3L "
                                          "(integers 1..3)")


def test_sep_and_encoding_override_detection(tmp_path: Path) -> None:
    src = tmp_path / "pipes.csv"
    src.write_text("state|x,y,z\n33333|a\n")  # more commas than pipes in the header line
    dst = tmp_path / "out.csv"
    res = run("score", "eq5d", "--version", "3L", src, "-o", dst)
    assert res.returncode == 1 and "needs columns MO SC UA PD AD or 'state'" in res.stderr
    res = run("score", "eq5d", "--version", "3L", "--sep", "|", src, "-o", dst)
    assert res.returncode == 0, res.stderr
    assert pd.read_csv(dst)["index"].tolist() == [-0.624]
    wide = tmp_path / "utf16.csv"
    wide.write_bytes("State\n33333\n".encode("utf-16"))
    res = run("score", "eq5d", "--version", "3L", wide, "-o", dst)
    assert res.returncode == 1
    res = run("score", "eq5d", "--version", "3L", "--encoding", "utf-16", wide, "-o", dst)
    assert res.returncode == 0, res.stderr
    assert pd.read_csv(dst)["index"].tolist() == [-0.624]
    res = run("score", "eq5d", "--version", "3L", "--sep", ";", tmp_path / "x.parquet", "-o", dst)
    assert res.returncode == 1 and "a delimiter applies only to CSV files" in res.stderr


def test_header_row_and_sheet(tmp_path: Path) -> None:
    src = tmp_path / "titled.csv"
    src.write_text("EQ-5D export 2018\nstate\n33333\n11121\n33334\n")
    dst = tmp_path / "out.csv"
    res = run("score", "eq5d", "--version", "3L", "--header-row", "2", src, "-o", dst)
    assert res.returncode == 1
    assert res.stderr.splitlines()[0] == (f"{src}:line 5: column 'state': value 33334: not an EQ-5D-3L "
                                          "profile (5 digits, each 1..3)")
    src.write_text("EQ-5D export 2018\nstate\n33333\n11111\n")
    res = run("score", "eq5d", "--version", "3L", "--header-row", "2", src, "-o", dst)
    assert res.returncode == 0, res.stderr
    assert pd.read_csv(dst)["index"].tolist() == [-0.624, 1.0]
    book = tmp_path / "book.xlsx"
    with pd.ExcelWriter(book) as xl:
        pd.DataFrame({"x": [1]}).to_excel(xl, sheet_name="notes", index=False)
        pd.DataFrame([["Scores, 2018", None], [None, None], ["id", "STATE"], ["a", 33333], ["b", 11111],
                      ["c", 11114]]).to_excel(xl, sheet_name="scores", index=False, header=False)
    res = run("score", "eq5d", "--version", "3L", "--sheet", "scores", "--header-row", "3", book, "-o", dst)
    assert res.returncode == 1
    assert res.stderr.splitlines()[0] == (f"{book}:sheet row 6: column 'STATE': value 11114: not an EQ-5D-3L "
                                          "profile (5 digits, each 1..3)")
    res = run("score", "eq5d", "--version", "5L", "--sheet", "scores", "--header-row", "3", book,
              "-o", tmp_path / "out.xlsx")
    assert res.returncode == 0, res.stderr
    out = pd.read_excel(tmp_path / "out.xlsx")
    assert out[["id", "STATE"]].to_dict("list") == {"id": ["a", "b", "c"], "STATE": [33333, 11111, 11114]}
    np.testing.assert_allclose(out["index"], [0.571, 1.0, 0.57], rtol=0, atol=1e-15)  # XLSX keeps the doubles
    res = run("score", "eq5d", "--version", "3L", "--sheet", "missing", book, "-o", dst)
    assert res.returncode == 1 and "no sheet 'missing'; sheets: notes, scores" in res.stderr


def test_never_overwrites_a_column_or_the_input(tmp_path: Path) -> None:
    src = tmp_path / "scored.csv"
    src.write_text("state,Index\n33333,0.5\n")
    before = src.read_bytes()
    dst = tmp_path / "out.csv"
    res = run("score", "eq5d", "--version", "3L", src, "-o", dst)
    assert res.returncode == 1
    assert res.stderr.startswith(f"error: {src} already has column 'Index'; the scores are never written over it: "
                                 "name the new column with --column NAME")
    assert not dst.exists()
    res = run("score", "eq5d", "--version", "3L", "--column", "eq5d_dk", src, "-o", dst)
    assert res.returncode == 0, res.stderr
    assert pd.read_csv(dst).to_dict("list") == {"state": [33333], "Index": [0.5], "eq5d_dk": [-0.624]}
    for same in (src, tmp_path / "sub" / ".." / "scored.csv"):
        res = run("score", "eq5d", "--version", "3L", "--column", "x", src, "-o", same)
        assert res.returncode == 1 and "is the input file; write the scores to another file" in res.stderr
    assert src.read_bytes() == before


def test_score_output_has_no_binary_noise(tmp_path: Path) -> None:
    src = tmp_path / "uk.csv"
    src.write_text("state\n11112\n11113\n33333\n")
    dst = tmp_path / "out.csv"
    assert [repr(float(x)) for x in spinereg.eq5d(["11112", "11113"], "3L", "TTO", "UK")] == [
        "0.8480000000000001", "0.41400000000000003"]  # the doubles carry noise ...
    res = run("score", "eq5d", "--version", "3L", "--country", "UK", src, "-o", dst)
    assert res.returncode == 0, res.stderr
    assert dst.read_text().splitlines() == ["state,index", "11112,0.848", "11113,0.414", "33333,-0.594"]
    src.write_text("MO,SC,UA,PD,AD\n1,1,1,1,3\n1,1,1,1,4\n")
    res = run("score", "eq5d", "--version", "5L", src, "-o", dst)
    assert res.returncode == 0, res.stderr
    assert dst.read_text().splitlines()[1:] == ["1,1,1,1,3,0.809", "1,1,1,1,4,0.57"]


def test_score_odi_cannot_mislead(tmp_path: Path) -> None:
    items = ";".join(f"ODI_{k}" for k in range(1, 11))
    src = tmp_path / "odi.csv"
    # ODI 2.1a by hand: 100 * sum / (5 * answered); row 1: 26 of 45 (one section blank), row 2: 10 of 50
    src.write_bytes(f"Hospital;{items}\nÅrhus;5;4;;3;3;0;0;3;5;3\nVejle;1;1;1;1;1;1;1;1;1;1,0\n".encode("cp1252"))
    dst = tmp_path / "out.csv"
    res = run("score", "odi", src, "-o", dst)
    assert res.returncode == 0, res.stderr
    lines = dst.read_text(encoding="utf-8").splitlines()
    assert lines[0] == f"Hospital,{items.replace(';', ',')},odi,odi_band,odi_missing"
    assert lines[1].endswith(",57.7777777777778,severe,1")  # 100 * 26 / 45 to 15 significant digits
    assert lines[2] == "Vejle,1,1,1,1,1,1,1,1,1,\"1,0\",20.0,minimal,0"
    res = run("score", "odi", dst, "-o", tmp_path / "again.csv")
    assert res.returncode == 1 and "already has column 'odi'" in res.stderr
    res = run("score", "odi", "--column", "odi_followup", dst, "-o", tmp_path / "again.csv")
    assert res.returncode == 0, res.stderr
    assert pd.read_csv(tmp_path / "again.csv").columns[-3:].tolist() == [
        "odi_followup", "odi_followup_band", "odi_followup_missing"]
    res = run("score", "odi", "--column", "x", dst, "-o", dst)
    assert res.returncode == 1 and "is the input file" in res.stderr


def test_pass_through_columns_between_formats(tmp_path: Path) -> None:
    book = tmp_path / "in.xlsx"
    pd.DataFrame({"id": ["007", "008"], "weight": [0.1 + 0.2, 80.0], "state": [33333, 11111]}).to_excel(
        book, index=False)
    dst = tmp_path / "out.csv"
    res = run("score", "eq5d", "--version", "3L", book, "-o", dst)
    assert res.returncode == 0, res.stderr
    assert dst.read_text().splitlines() == ["id,weight,state,index", "007,0.3,33333,-0.624", "008,80,11111,1.0"]
    src = tmp_path / "in.csv"
    src.write_text("id;weight;state;code\n007;72,5;33333;1234567890123456\n008;80;11111;12\n")
    res = run("score", "eq5d", "--version", "3L", src, "-o", tmp_path / "out.parquet")
    assert res.returncode == 0, res.stderr
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out["id"].tolist() == ["007", "008"]  # a leading zero keeps a column text
    assert out["weight"].tolist() == [72.5, 80.0]  # decimal comma read as a number
    assert out["state"].tolist() == [33333, 11111]
    assert out["code"].tolist() == ["1234567890123456", "12"]  # more than 15 digits: an identifier, kept as text
    assert out["index"].tolist() == [-0.624, 1.0]


def test_columns_that_differ_only_in_case_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "twice.csv"
    src.write_text("state,STATE\n33333,11111\n")
    res = run("score", "eq5d", "--version", "3L", src, "-o", tmp_path / "o.csv")
    assert res.returncode == 1
    assert res.stderr.startswith(f"error: {src}: columns 'state' and 'STATE' differ only in case")
    assert "Traceback" not in res.stderr and not (tmp_path / "o.csv").exists()

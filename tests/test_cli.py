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

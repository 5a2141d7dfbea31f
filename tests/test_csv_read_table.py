"""spinereg.data.read_table: a data file read as import reads it, from a later header row."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from spinereg import SpineregError
from spinereg.data import read_table


def test_csv_detection_and_header_row(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes("Udtræk 2018;;\n\nafdeling;MO;vægt\nÅrhus;3;72,5\n\nOdense;1;80\n".encode("cp1252"))
    table = read_table(path, header_row=3)
    assert list(table.frame.columns) == ["afdeling", "MO", "vægt"]
    assert table.frame.to_dict("list") == {"afdeling": ["Århus", "Odense"], "MO": ["3", "1"], "vægt": ["72,5", "80"]}
    assert table.row_label == "line" and table.rows.tolist() == [4, 6]  # lines of the file, blank line skipped
    with pytest.raises(SpineregError, match="no header line 9"):
        read_table(path, header_row=9)
    plain = tmp_path / "plain.csv"
    plain.write_text("a|b,c\n1|2\n")
    assert list(read_table(plain).frame.columns) == ["a|b", "c"]
    assert list(read_table(plain, delimiter="|").frame.columns) == ["a", "b,c"]


def test_sheet_header_row(tmp_path: Path) -> None:
    book = tmp_path / "book.xlsx"
    with pd.ExcelWriter(book) as xl:
        pd.DataFrame([["Title", None, None], [None, None, None], ["id", "state", None], ["a", 33333, None],
                      [None, None, None], ["b", 11111, "x"]]).to_excel(xl, sheet_name="s", index=False, header=False)
    first = read_table(book, sheet="s")
    assert first.frame.columns[0] == "Title"
    table = read_table(book, sheet="s", header_row=3)
    assert list(table.frame.columns) == ["id", "state", "column3"]  # a column with values but no name
    assert table.frame["state"].tolist() == [33333, 11111]
    assert table.row_label == "sheet row" and table.rows.tolist() == [4, 6]
    assert read_table(book, sheet="s", header_row=1).frame.columns.tolist() == first.frame.columns.tolist()
    with pytest.raises(SpineregError, match="no header at or below sheet row 20"):
        read_table(book, sheet="s", header_row=20)


@pytest.mark.parametrize(
    ("suffix", "options", "message"),
    [
        (".parquet", {"delimiter": ";"}, "a delimiter applies only to CSV files"),
        (".parquet", {"encoding": "latin-1"}, "an encoding applies only to CSV, SAS, Stata and SPSS files"),
        (".parquet", {"header_row": 2}, "a header row applies only to CSV and Excel"),
        (".csv", {"sheet": "x"}, "a sheet applies only to Excel"),
        (".csv", {"header_row": 0}, "the header row is counted from 1"),
    ],
)
def test_options_that_do_not_apply(tmp_path: Path, suffix: str, options: dict[str, object], message: str) -> None:
    path = tmp_path / f"t{suffix}"
    frame = pd.DataFrame({"a": [1]})
    frame.to_parquet(path) if suffix == ".parquet" else frame.to_csv(path, index=False)
    with pytest.raises(SpineregError, match=message):
        read_table(path, **options)  # type: ignore[arg-type]

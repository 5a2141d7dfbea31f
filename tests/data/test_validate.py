"""Validation details: number and date parsing (fast paths and the general rules alike),
and problems naming the file and source column of each chunk."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from spinereg.data import Extract, conform
from spinereg.data._mapped import MappedTable, Provenance
from spinereg.data._validate import validate


def _registry() -> Extract:
    x = Extract.empty()
    x.tables["patients"] = conform(pd.DataFrame({"patient_id": ["p1"], "sex": ["male"],
                                                 "birth_date": ["1950-01-01"]}), "patients")
    x.tables["operations"] = conform(pd.DataFrame({
        "operation_id": ["o1"], "patient_id": ["p1"], "date": ["2015-01-10"],
        "procedure_category": ["vertebroplasty"]}), "operations")
    return x


def _proms(column: str, values: list[str], file: str = "proms.csv", source: str = "") -> MappedTable:
    n = len(values)
    frame = pd.DataFrame({
        "prom_id": [f"{file}-q{i}" for i in range(n)], "patient_id": ["p1"] * n, "operation_id": ["o1"] * n,
        "timepoint": ["baseline"] * n, column: values, "_row": np.arange(2, n + 2)}, dtype="string[pyarrow]")
    frame["_row"] = np.arange(2, n + 2)
    return MappedTable("proms", frame, Provenance(file, "line", {column: source or column}))


def _problems(chunks: list[MappedTable]) -> tuple[Extract, list[tuple[object, ...]]]:
    x, report = validate(chunks, existing=_registry(), extract_date="2021-06-30")
    rows = report.problems[["file", "row", "column", "value", "rule"]].itertuples(index=False, name=None)
    return x, list(rows)


def test_numbers_plain_digits_and_the_general_pattern() -> None:
    values = ["45", "+45", "4.5e1", "45.0", " 7 ", "", "45.5", "\u0663", "1e400", "0x10", "101", "-0"]
    x, problems = _problems([_proms("eqvas", values)])
    assert problems == [
        ("proms.csv", 8, "eqvas", "'45.5'", "type"),
        ("proms.csv", 9, "eqvas", "'\u0663'", "type"),
        ("proms.csv", 10, "eqvas", "'1e400'", "type"),
        ("proms.csv", 11, "eqvas", "'0x10'", "type"),
        ("proms.csv", 12, "eqvas", "'101'", "range"),
    ]
    got = x["proms"].set_index("prom_id")["eqvas"]
    assert str(got.dtype) == "Int64"
    assert got.fillna(-1).tolist() == [45, 45, 45, 45, 7, -1, 0]


def test_dates_iso_and_not() -> None:
    good = ["2015-01-05", "2016-02-29", "", "2015-01-06 "]
    x, problems = _problems([_proms("answer_date", good)])
    assert problems == [("proms.csv", 3, "answer_date", "'2016-02-29'", "window")]  # a warning: the row stays
    dates = x["proms"]["answer_date"]
    assert str(dates.dtype) == "datetime64[s]"
    assert dates.dt.strftime("%Y-%m-%d").tolist()[:2] == ["2015-01-05", "2016-02-29"]
    bad = ["2015-01-05", "2015-02-29", "1500-01-01", "2015-1-5", "05-01-2015", "2015-01-05T00:00"]
    x, problems = _problems([_proms("answer_date", bad)])
    assert [(p[1], p[3], p[4]) for p in problems if p[4] != "window"] == [
        (3, "'2015-02-29'", "type"), (4, "'1500-01-01'", "type"), (5, "'2015-1-5'", "type"),
        (6, "'05-01-2015'", "type"), (7, "'2015-01-05T00:00'", "type")]
    assert x["proms"]["answer_date"].dt.strftime("%Y-%m-%d").tolist() == ["2015-01-05"]


def test_problems_name_each_chunks_file_and_source_column() -> None:
    chunks = [_proms("eqvas", ["50", "x"], "a.csv", "VAS"), _proms("eqvas", ["y", "60"], "b.csv", "eq_vas")]
    x, problems = _problems(chunks)
    assert problems == [("a.csv", 3, "VAS", "'x'", "type"), ("b.csv", 2, "eq_vas", "'y'", "type")]
    assert sorted(x["proms"]["eqvas"].tolist()) == [50, 60]


def test_categories_and_booleans_keep_their_tidy_dtypes() -> None:
    x, problems = _problems([_proms("timepoint", ["baseline", "3m", "13m"])])
    assert problems == [("proms.csv", 4, "timepoint", "'13m'", "code")]
    tp = x["proms"]["timepoint"]
    assert isinstance(tp.dtype, pd.CategoricalDtype)
    assert tp.tolist() == ["baseline", "3m"]


# =========================================================================== keys given twice


def _chunk(entity: str, data: dict[str, Any], file: str, label: str = "line") -> MappedTable:
    return MappedTable(entity, pd.DataFrame(data), Provenance(file, label))


def _parents(file: str = "a.xlsx") -> list[MappedTable]:
    return [_chunk("patients", {"patient_id": ["p1"], "_row": [2]}, file, "sheet row"),
            _chunk("operations", {"operation_id": ["o1"], "patient_id": ["p1"], "date": ["2015-01-01"],
                                  "procedure_category": ["fusion"], "_row": [2]}, file, "sheet row")]


def test_a_key_in_two_files_names_both_files_lines_and_columns() -> None:
    levels_a = _chunk("treated_levels", {"operation_id": ["o1", "o1"], "level": ["L1", "L2"],
                                         "cement_volume_ml": ["2", "3"], "_row": [5, 6]}, "a.xlsx", "sheet row")
    levels_b = _chunk("treated_levels", {"operation_id": ["o1", "o1"], "level": ["L1", "L2"],
                                         "cement_volume_ml": ["2.5", "3"], "_row": [7, 9]}, "b.xlsx", "sheet row")
    x, report = validate([*_parents(), levels_a, levels_b], extract_date="2020-01-01")
    got = report.problems[["file", "row", "column", "value", "rule", "severity", "message"]].values.tolist()
    assert got == [
        ["b.xlsx", 7, "operation_id", "'o1'", "conflict", "error",
         "conflicting re-entry of operation_id/level 'o1/L1': b.xlsx sheet row 7 differs from a.xlsx sheet row 5 "
         "in cement_volume_ml"],
        ["b.xlsx", 9, "operation_id", "'o1'", "duplicate", "warning",
         "duplicate of the identical row at a.xlsx sheet row 6 (kept once)"],
    ]
    assert len(x["treated_levels"]) == 2  # o1/L1 (a.xlsx) and o1/L2 once


def test_a_key_twice_in_one_file_names_the_other_line() -> None:
    pats = _chunk("patients", {"patient_id": ["p1", "p2", "p1"], "sex": ["male", "female", "female"],
                               "birth_date": ["1950-01-01"] * 3, "_row": [2, 3, 4]}, "pat.csv")
    _, report = validate([pats], extract_date="2020-01-01")
    assert report.problems["message"].tolist() == [
        "conflicting re-entry of patient_id 'p1': pat.csv line 4 differs from line 2 in sex"]
    # the tidy key column is named, whatever source column the key was built from
    pats = MappedTable("patients", pats.frame, Provenance("pat.csv", "line", {"patient_id": "Year+_row"}))
    _, report = validate([pats], extract_date="2020-01-01")
    assert report.problems["column"].tolist() == ["patient_id"]


def test_many_conflicts_cost_time_in_proportion() -> None:
    """Two files with the same 30,000 keys and other values: one vectorised pass (the
    old per-row report took about 1 ms a row, 30 s here; this takes well under 1 s)."""
    import time

    n = 30_000
    ids = [f"P{i}" for i in range(n)]
    a = _chunk("patients", {"patient_id": ids, "sex": ["male"] * n, "_row": np.arange(2, n + 2)}, "a.csv")
    b = _chunk("patients", {"patient_id": ids, "sex": ["female"] * n, "_row": np.arange(2, n + 2)}, "b.csv")
    started = time.perf_counter()
    _, report = validate([a, b], extract_date="2020-01-01")
    spent = time.perf_counter() - started
    assert len(report.errors) == n
    assert report.errors["message"].iloc[-1] == (f"conflicting re-entry of patient_id 'P{n - 1}': b.csv line {n + 1} "
                                                 f"differs from a.csv line {n + 1} in sex")
    assert spent < 10, f"{spent:.1f} s"


class _Stream:
    """A hand-made ChunkStream that records which chunks were pulled."""

    def __init__(self, chunks: list[MappedTable], pulled: list[str]) -> None:
        self._chunks = iter(chunks)
        self._pulled = pulled
        self._out: list[str] = []
        self._all = [c.entity for c in chunks]

    def __iter__(self) -> _Stream:
        return self

    def __next__(self) -> MappedTable:
        ch = next(self._chunks)
        self._pulled.append(ch.entity)
        self._out.append(ch.entity)
        return ch

    def complete(self, entity: str) -> bool:
        return self._out.count(entity) == self._all.count(entity)


def test_a_chunk_stream_is_read_one_entity_at_a_time() -> None:
    from spinereg.data import ChunkStream

    pulled: list[str] = []
    seen: list[tuple[str, list[str]]] = []
    stream = _Stream(_parents("a.csv"), pulled)
    assert isinstance(stream, ChunkStream)
    validate(stream, extract_date="2020-01-01", on_table=lambda name, rows: seen.append((name, list(pulled))))
    # patients were handed over before the operations chunk was asked for (mapped)
    assert seen[0] == ("patients", ["patients"])
    assert seen[1] == ("operations", ["patients", "operations"])
    # a plain iterator is read up to the first chunk of the next entity instead
    pulled2: list[str] = []

    def plain() -> Iterator[MappedTable]:
        for ch in _parents("a.csv"):
            pulled2.append(ch.entity)
            yield ch

    seen.clear()
    validate(plain(), extract_date="2020-01-01", on_table=lambda name, rows: seen.append((name, list(pulled2))))
    assert seen[0] == ("patients", ["patients", "operations"])

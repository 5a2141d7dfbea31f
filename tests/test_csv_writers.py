"""Every CSV the project writes is free of binary noise: the extract and its scores.csv
(``spinereg export``), a study's tables/*.csv (the report's tables), and ``spinereg score``
(tests/test_cli.py)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pandas as pd

from spinereg.data import write_extract
from spinereg.data._scores import derive_scores
from spinereg.data._synth import synthesize
from spinereg.study import load_spec, run_study

from .study.test_cohort import SPEC, build

#: A decimal with more than 15 significant digits: what repr() writes for a double with noise.
LONG = re.compile(r"-?(?:0\.0*)?[1-9][0-9.]{15,}(?:e[+-]?[0-9]+)?")


def significant(text: str) -> int:
    mantissa = text.lstrip("-").split("e")[0].replace(".", "").lstrip("0")
    return len(mantissa.rstrip("0")) if "." in text else len(mantissa)


def long_numbers(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as f:
        return [cell for row in csv.reader(f) for cell in row if LONG.fullmatch(cell) and significant(cell) > 15]


def noisy_doubles(df: pd.DataFrame) -> int:
    """Float cells whose shortest repr needs more than 15 significant digits (what pandas would write)."""
    n = 0
    for c in df.columns:
        if pd.api.types.is_float_dtype(df[c].dtype):
            n += sum(significant(repr(float(v))) > 15 for v in df[c].dropna())
    return n


def test_long_numbers_are_recognised(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b,c\n0.7270000000000001,-0.2849999999999999,0.727\n1e-07,57.7777777777778,x\n")
    assert long_numbers(path) == ["0.7270000000000001", "-0.2849999999999999"]


def test_export_scores_csv_has_no_noise(tmp_path: Path) -> None:
    x = synthesize(400, seed=3)
    scores = derive_scores(x["proms"])
    assert noisy_doubles(scores) > 0  # pandas' own to_csv would write noise for these
    write_extract(x, tmp_path, "csv", extra={"scores": scores})
    for path in sorted(tmp_path.glob("*.csv")):
        assert long_numbers(path) == [], path.name
    back = pd.read_csv(tmp_path / "scores.csv")
    merged = scores.merge(back, on="prom_id", suffixes=("", "_csv"))
    for col in ("eq5d3l_index", "eq5d5l_index", "odi"):
        assert (merged[col].isna() == merged[f"{col}_csv"].isna()).all(), col
        given = merged[merged[col].notna()]
        change = (given[col] - given[f"{col}_csv"]).abs()
        assert (change <= 5.2e-15 * given[col].abs()).all(), col  # below half a unit in the 15th digit
        assert (change > 0).any(), col  # and the noise did go


def test_study_tables_have_no_noise(tmp_path: Path) -> None:
    spec, digest = load_spec(SPEC)
    result = run_study(spec, build(), spec_sha256=digest)  # type: ignore[arg-type]
    assert sum(noisy_doubles(df) for df in result.tables.values()) > 0
    result.write(tmp_path)
    tables = sorted((tmp_path / "tables").glob("*.csv"))
    assert tables
    for path in tables:
        assert long_numbers(path) == [], path.name

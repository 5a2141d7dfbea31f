"""Floats in CSV files: at most 15 significant digits, no binary noise (issue 11, item 6)."""

from __future__ import annotations

import io
import math
import random
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from spinereg.data import csv_float, to_csv


@pytest.mark.parametrize(
    ("value", "noisy", "written"),
    [
        (0.1 + 0.2, "0.30000000000000004", "0.3"),
        (1 - 0.081 - 0.192, "0.7270000000000001", "0.727"),  # the 0.727, as a sum of value-set decrements
        (1 - 0.287 - 0.998, "-0.2849999999999999", "-0.285"),
        (1 - 0.081 - 0.071, "0.8480000000000001", "0.848"),  # UK 3L TTO 11112 (Dolan 1997)
        (1 - 0.081 - 0.236 - 0.269, "0.41400000000000003", "0.414"),  # UK 3L TTO 11113
        (1.1 * 3, "3.3000000000000003", "3.3"),
    ],
)
def test_noise_is_not_written(value: float, noisy: str, written: str) -> None:
    assert repr(value) == noisy  # the double really carries the noise ...
    assert csv_float(value) == written  # ... and the file does not
    # the change is the arithmetic's error: 1 or 2 units in the last place
    assert abs(float(written) - value) <= 2 * math.ulp(value)


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (1.0, "1.0"), (-0.0, "-0.0"), (0.1, "0.1"), (-0.624, "-0.624"), (100.0, "100.0"), (1e15, "1000000000000000.0"),
        (1e16, "1e+16"), (1.5e-7, "1.5e-07"), (123456789012345.0, "123456789012345.0"),
        (1 / 3, "0.333333333333333"), (2 / 3, "0.666666666666667"), (100 * 26 / 45, "57.7777777777778"),
        (math.pi, "3.14159265358979"), (float("nan"), ""), (float("inf"), "inf"), (float("-inf"), "-inf"),
        (5e-324, "5e-324"), (1.7976931348623157e308, "1.7976931348623157e+308"),  # not inf
        (1.79769313486231e308, "1.79769313486231e+308"),
    ],
)
def test_written_text(value: float, written: str) -> None:
    assert csv_float(value) == written


def test_fifteen_digit_decimals_read_back_bit_for_bit() -> None:
    """Any decimal of at most 15 significant digits, typed or read from a file, is written as itself (DBL_DIG)."""
    rng = random.Random(11)
    for _ in range(20_000):
        digits = rng.randint(1, 15)
        mantissa = rng.randrange(10 ** (digits - 1), 10**digits)
        text = f"{'-' if rng.random() < 0.5 else ''}{mantissa}e{rng.randint(-20, 20) - digits + 1}"
        x = float(text)
        out = csv_float(x)
        assert float(out) == x, text  # the same double
        assert Decimal(out) == Decimal(text), text  # and the same decimal


def test_any_double_moves_less_than_half_a_unit_in_the_15th_digit() -> None:
    rng = np.random.default_rng(5)
    xs = np.concatenate([rng.standard_normal(20_000), rng.uniform(-1, 1, 20_000) * 10.0 ** rng.integers(-30, 30,
                                                                                                       20_000)])
    for x in xs:
        back = float(csv_float(float(x)))
        # half a unit in the 15th significant digit, plus half an ulp for reading the decimal back (exact arithmetic)
        change = abs(Decimal(back) - Decimal(float(x)))
        assert change <= Decimal("5e-15") * abs(Decimal(float(x))) + Decimal(math.ulp(x)) / 2, repr(x)
        assert change <= Decimal("5.2e-15") * abs(Decimal(float(x)))
        assert float(csv_float(back)) == back  # writing what was read back changes nothing


def test_to_csv_formats_every_float_column_and_nothing_else() -> None:
    df = pd.DataFrame({
        "id": ["007", "008", "009"],
        "n": [1, 2, 3],
        "index": [1 - 0.081 - 0.192, np.nan, 1.0],
        "share": pd.array([0.1 + 0.2, None, 0.5], dtype="Float64"),
        "flag": [True, False, True],
        "label": ["0.30000000000000004", "x", "y"],  # text is never touched
    })
    text = to_csv(df, index=False, lineterminator="\n")
    assert text.splitlines() == [
        "id,n,index,share,flag,label",
        "007,1,0.727,0.3,True,0.30000000000000004",
        "008,2,,,False,x",
        "009,3,1.0,0.5,True,y",
    ]
    assert to_csv(df[["index"]], index=False, na_rep="NA", lineterminator="\n").splitlines()[2] == "NA"
    assert df["index"].iloc[0] == 1 - 0.081 - 0.192  # the caller's frame is not changed
    buf = io.StringIO()
    assert to_csv(pd.DataFrame([[0.1 + 0.2, 0.1 + 0.2]], columns=["a", "a"]), buf, index=False) is None
    assert buf.getvalue().splitlines() == ["a,a", "0.3,0.3"]
    with pytest.raises(TypeError, match="float_format"):
        to_csv(df, index=False, float_format="%.3f")


def test_floats_among_other_values_are_written_alike() -> None:
    """Cells read from a spreadsheet: Python floats in an object column (Excel itself shows 15 digits)."""
    cells = pd.DataFrame({"row": range(6),
                          "value": pd.Series([0.1 + 0.2, 7, "n/a", None, float("nan"), True], dtype=object)})
    assert to_csv(cells, index=False, lineterminator="\n").splitlines() == [
        "row,value", "0,0.3", "1,7", "2,n/a", "3,", "4,", "5,True"]

"""EQ-5D input forms, validation and rounding.

Expected index values are hand calculations from Wittrup-Jensen et al. 2009
(Danish 3L TTO): constant 0.114 for any problem; MO .053/.411, SC .063/.192,
UA .048/.144, PD .062/.396, AD .068/.367.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import spinereg
from spinereg import InvalidInputError, InvalidInputWarning, SpineregError, UnknownValueSetError
from spinereg.instruments import round_half_away

# 21232: 1 - 0.114 - 0.053 - 0.048 - 0.396 - 0.068 = 0.321
DK_21232 = 1 - 0.114 - 0.053 - 0.048 - 0.396 - 0.068
# 12111: 1 - 0.114 - 0.063
DK_12111 = 1 - 0.114 - 0.063


def frame(rows: list[list[int]], index: list[int] | None = None) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["MO", "SC", "UA", "PD", "AD"], index=index)


def test_dataframe_returns_aligned_series() -> None:
    df = frame([[2, 1, 2, 3, 2], [1, 2, 1, 1, 1]], index=[7, 3])
    got = spinereg.eq5d(df, "3L", "TTO", "Denmark")
    assert isinstance(got, pd.Series)
    assert list(got.index) == [7, 3]
    assert got[7] == pytest.approx(DK_21232, abs=1e-12)
    assert got[3] == pytest.approx(DK_12111, abs=1e-12)


def test_every_input_form_agrees() -> None:
    expected = np.array([DK_21232, DK_12111])
    forms = [
        np.array([[2, 1, 2, 3, 2], [1, 2, 1, 1, 1]]),
        np.array([21232, 12111]),
        np.array(["21232", "12111"]),
        [21232, 12111],
        {"MO": [2, 1], "SC": [1, 2], "UA": [2, 1], "PD": [3, 1], "AD": [2, 1]},
        pd.DataFrame({"state": ["21232", "12111"]}),
        frame([[2, 1, 2, 3, 2], [1, 2, 1, 1, 1]]).astype(float),
    ]
    for f in forms:
        got = np.asarray(spinereg.eq5d(f, "3L", "TTO", "DK"))
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12, err_msg=repr(f))
    assert spinereg.eq5d(pd.Series([21232, 12111]), "3L", "TTO", "DK").tolist() == pytest.approx(expected)
    assert spinereg.eq5d("21232", "3L", "TTO", "DK") == pytest.approx(DK_21232)
    assert spinereg.eq5d({"MO": 2, "SC": 1, "UA": 2, "PD": 3, "AD": 2}, "3L", "TTO", "DK") == pytest.approx(
        DK_21232)


def test_renamed_dimension_columns() -> None:
    df = pd.DataFrame({"mob": [2], "care": [1], "act": [2], "pain": [3], "anx": [2]})
    got = spinereg.eq5d(df, "3L", "TTO", "Denmark", dimensions=["mob", "care", "act", "pain", "anx"])
    assert got.iloc[0] == pytest.approx(DK_21232)


@pytest.mark.parametrize(
    ("bad", "row", "column", "value"),
    [
        ([[1, 1, 1, 1, 4]], 0, "AD", 4),
        ([[0, 1, 1, 1, 1]], 0, "MO", 0),
        ([[1, 1, 1.5, 1, 1]], 0, "UA", 1.5),
        ([[1, 1, 1, np.nan, 1]], 0, "PD", None),
    ],
)
def test_strict_mode_names_row_column_value(bad: list[list[float]], row: int, column: str,
                                            value: object) -> None:
    df = pd.DataFrame(
        [[1, 1, 1, 1, 1], *bad], columns=["MO", "SC", "UA", "PD", "AD"])
    with pytest.raises(InvalidInputError) as info:
        spinereg.eq5d(df, "3L", "TTO", "Denmark")
    err = info.value
    assert err.n_invalid == 1
    (p,) = err.problems
    assert p.row == row + 1
    assert p.column == column
    if value is None:
        assert np.isnan(p.value)  # type: ignore[arg-type]
    else:
        assert p.value == value
    assert f"row {row + 1}" in str(err)


def test_malformed_profiles() -> None:
    for bad in ["1111", "111111", "1a111", "", "41111", 11114, 99999, -11111]:
        with pytest.raises(InvalidInputError):
            spinereg.eq5d(np.array([bad], dtype=object), "3L", "TTO", "Denmark")


def test_5l_profile_rejected_as_3l() -> None:
    """5L data declared as 3L is never silently scored."""
    with pytest.raises(InvalidInputError, match="not an EQ-5D-3L profile"):
        spinereg.eq5d("11145", "3L", "TTO", "Denmark")
    with pytest.raises(UnknownValueSetError, match="choose from"):
        spinereg.eq5d("11111", "3L", "VT", "Denmark")


def test_nan_mode_reports_count() -> None:
    s = pd.Series(["21232", "9", None, "12111"])
    with pytest.warns(InvalidInputWarning, match="2 invalid row"):
        got = spinereg.eq5d(s, "3L", "TTO", "Denmark", invalid="nan")
    assert got.attrs["n_invalid"] == 2
    assert got.isna().tolist() == [False, True, True, False]
    assert got[0] == pytest.approx(DK_21232)


def test_unknown_country_lists_choices() -> None:
    with pytest.raises(UnknownValueSetError, match="Denmark") as info:
        spinereg.eq5d("11111", "3L", "TTO", "Atlantis")
    assert "choose from" in str(info.value)
    with pytest.raises(UnknownValueSetError, match="3L, 5L, Y3L"):
        spinereg.eq5d("11111", "4L", "TTO", "Denmark")
    with pytest.raises(UnknownValueSetError, match="not available"):
        spinereg.eq5d("11111", "5L", "DSU", "UK")
    with pytest.raises(SpineregError):
        spinereg.eq5d("11111", "3L", "TTO", "Denmark", invalid="ignore")  # type: ignore[arg-type]


def test_iso_codes_and_r_spellings() -> None:
    assert spinereg.eq5d("33333", "3L", "TTO", "dk") == spinereg.eq5d("33333", "3L", "TTO", "Denmark")
    assert spinereg.eq5d("33333", "3L", "TTO", "uk") == pytest.approx(-0.594)


def test_crosswalk_types_need_matching_version() -> None:
    with pytest.raises(SpineregError, match="version must be '5L'"):
        spinereg.eq5d("11111", "3L", "CW", "UK")
    with pytest.raises(SpineregError, match="version must be '3L'"):
        spinereg.eq5d("11111", "5L", "RCW", "England")


def test_rounding_half_away_from_zero_on_decimal_value() -> None:
    # Hand examples: binary 0.4045 is 0.40449999999999997 and 1.0045 is 1.00449999999999995.
    got = round_half_away([0.4045, -0.4045, 1.0045, 0.2345, 0.0005, -0.0005, 0.12349, np.nan], 3)
    np.testing.assert_array_equal(got[:7], [0.405, -0.405, 1.005, 0.235, 0.001, -0.001, 0.123])
    assert np.isnan(got[7])
    # numpy alone decides these ties by binary noise / to even:
    assert np.round(0.4045, 3) == 0.404


def test_digits_applies_to_index() -> None:
    # Denmark 3L 21232 = 0.321 exactly in decimal; computed in binary it is 0.32099999999999995.
    assert spinereg.eq5d("21232", "3L", "TTO", "Denmark", digits=3) == 0.321
    assert spinereg.eq5d("21232", "3L", "TTO", "Denmark", digits=2) == 0.32


def test_large_input_is_vectorised_and_exact() -> None:
    rng = np.random.default_rng(1)
    lv = rng.integers(1, 6, size=(100_000, 5))
    got = spinereg.eq5d({d: lv[:, j] for j, d in enumerate(["MO", "SC", "UA", "PD", "AD"])},
                        "5L", "VT", "Denmark")
    table = spinereg.instruments.find_valueset("5L", "VT", "Denmark").table()
    idx = ((lv - 1) * np.array([625, 125, 25, 5, 1])).sum(axis=1)
    np.testing.assert_array_equal(got, table[idx])

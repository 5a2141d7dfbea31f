"""ODI 2.1a, pain NRS and EQ-VAS against hand calculations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import spinereg
from spinereg import InvalidInputError, InvalidInputWarning

COLS = [f"odi_{k}" for k in range(1, 11)]


def odi_frame(rows: list[list[float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLS)


def test_odi_scores_and_bands() -> None:
    df = odi_frame([
        [5, 4, np.nan, 3, 3, 0, 0, 3, 5, 3],   # 26 / 45 * 100 = 57.78, one missing
        [0] * 10,                              # 0
        [1] * 10,                              # 10 / 50 = 20 -> minimal (upper bound inclusive)
        [1] * 9 + [2],                         # 11 / 50 = 22 -> moderate
        [4] * 10,                              # 80 -> crippled
        [5] * 10,                              # 100 -> bed-bound
        [np.nan, np.nan] + [2] * 8,            # two missing -> NaN
    ])
    got = spinereg.odi(df)
    assert got["odi"].iloc[0] == pytest.approx(100 * 26 / 45)
    assert got["odi"].iloc[1:6].tolist() == [0.0, 20.0, 22.0, 80.0, 100.0]
    assert got["odi_band"].tolist()[:6] == ["severe", "minimal", "minimal", "moderate", "crippled",
                                            "bed-bound"]
    assert got["odi_missing"].tolist() == [1, 0, 0, 0, 0, 0, 2]
    assert np.isnan(got["odi"].iloc[6])
    assert pd.isna(got["odi_band"].iloc[6])
    assert "2 of 10 sections missing" in got["odi_note"].iloc[6]
    relaxed = spinereg.odi(df, max_missing=2)
    assert relaxed["odi"].iloc[6] == pytest.approx(100 * 16 / 40)


def test_odi_invalid_values() -> None:
    df = odi_frame([[0] * 10, [0, 0, 6, 0, 0, 0, 0, 0, 0, 0], [0] * 9 + [1.5]])
    with pytest.raises(InvalidInputError) as info:
        spinereg.odi(df)
    probs = {(p.row, p.column, p.value) for p in info.value.problems}
    assert probs == {(1, "odi_3", 6.0), (2, "odi_10", 1.5)}
    with pytest.warns(InvalidInputWarning):
        got = spinereg.odi(df, invalid="nan")
    assert got["odi"].tolist()[0] == 0.0
    assert got["odi"].isna().tolist() == [False, True, True]
    assert got["odi_note"].iloc[1] == "invalid section value"


def test_odi_array_input_and_digits() -> None:
    a = np.array([[5, 4, np.nan, 3, 3, 0, 0, 3, 5, 3]])
    assert spinereg.odi(a, digits=1)["odi"].iloc[0] == 57.8


def test_nrs_and_vas() -> None:
    assert spinereg.nrs(7) == 7.0
    s = spinereg.nrs(pd.Series([0, 10, None]), site="leg")
    assert s.iloc[:2].tolist() == [0.0, 10.0] and np.isnan(s.iloc[2])
    with pytest.raises(InvalidInputError, match="row 1"):
        spinereg.nrs(pd.Series([3, 11]))
    with pytest.raises(InvalidInputError):
        spinereg.eqvas([50, 100.5])
    assert spinereg.eqvas([0, 100]).tolist() == [0.0, 100.0]
    with pytest.warns(InvalidInputWarning):
        assert np.isnan(spinereg.eqvas([101], invalid="nan")[0])


def test_definitions_and_wording(tmp_path: pytest.TempPathFactory) -> None:
    odi = spinereg.get_instrument("odi")
    assert odi.version == "2.1a"
    assert odi.item_ids == tuple(COLS)
    assert all((i.min, i.max) == (0, 5) for i in odi.items)
    assert spinereg.get_instrument("eq5d5l").items[0].max == 5
    ids = [i.id for i in spinereg.list_instruments()]
    assert ids == sorted(ids)
    assert {"eq5d3l", "eq5d5l", "eq5dy3l", "eqvas", "nrs_back", "nrs_leg", "odi"} <= set(ids)
    path = tmp_path / "odi_wording.toml"  # type: ignore[operator]
    path.write_text('odi_1 = "Site-licensed text for section 1"\n')
    wording = spinereg.load_wording("odi", path)
    assert wording["odi_1"] == "Site-licensed text for section 1"
    assert wording["odi_2"] == "Personal care"
    path.write_text('odi_11 = "x"\n')
    with pytest.raises(spinereg.SpineregError, match="unknown item id"):
        spinereg.load_wording("odi", path)
    with pytest.raises(spinereg.SpineregError, match="choose from"):
        spinereg.get_instrument("sf36")

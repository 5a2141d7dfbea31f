"""Descriptive EQ-5D tools against hand calculations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import spinereg
from spinereg import InvalidInputError


def test_pchc_categories() -> None:
    before = ["21232", "11111", "12111", "11111", "22222", "33333"]
    after = ["11121", "11111", "21111", "11112", "22222", "33332"]
    got = spinereg.pchc(before, after, version="3L")
    assert list(got) == ["better", "no_problems", "mixed", "worse", "no_change", "better"]
    got2 = spinereg.pchc(before, after, version="3L", no_problems=False)
    assert got2[1] == "no_change"


def test_pchc_summary_and_alignment() -> None:
    before = pd.DataFrame({"MO": [2, 1, 1], "SC": [1, 1, 2], "UA": [2, 1, 1], "PD": [3, 1, 1],
                           "AD": [2, 1, 1]}, index=[10, 11, 12])
    after = pd.DataFrame({"MO": [1, 1, 2], "SC": [1, 1, 1], "UA": [1, 1, 1], "PD": [2, 1, 1],
                          "AD": [1, 1, 1]}, index=[10, 11, 12])
    s = spinereg.pchc(before, after, version="3L")
    assert s.to_dict() == {10: "better", 11: "no_problems", 12: "mixed"}
    summ = spinereg.pchc(before, after, version="3L", summary=True)
    assert summ.set_index("category")["n"].to_dict() == {
        "no_change": 0, "better": 1, "worse": 0, "mixed": 1, "no_problems": 1}
    assert summ["percent"].sum() == pytest.approx(100.0)


def test_pchc_invalid_pairs() -> None:
    with pytest.raises(InvalidInputError):
        spinereg.pchc(["11111"], ["11116"], version="5L")
    with pytest.warns(spinereg.InvalidInputWarning):
        got = spinereg.pchc(["11111", "12345"], ["11116", "12344"], version="5L", invalid="nan")
    assert got[0] is None and got[1] == "better"
    with pytest.raises(spinereg.SpineregError, match="differ in length"):
        spinereg.pchc(["11111"], ["11111", "11111"])


def test_lss_and_lfs() -> None:
    assert spinereg.lss("21232", "3L") == 10.0
    assert spinereg.lss("55555", "5L") == 25.0
    assert spinereg.lfs("21232", "3L") == "131"
    assert spinereg.lfs("12345", "5L") == "11111"
    assert spinereg.lfs("11112", "5L") == "41000"
    assert list(spinereg.lfs(["11111", "33333"], "3L")) == ["500", "005"]


def test_shannon_by_dimension() -> None:
    # MO levels 1,1,2,2 -> H = 1 bit; H'max = log2(3); J = 1 / log2(3)
    df = pd.DataFrame({"MO": [1, 1, 2, 2], "SC": [1, 1, 1, 1], "UA": [1, 2, 3, 3],
                       "PD": [1, 1, 1, 2], "AD": [1, 1, 1, 1]})
    res = spinereg.shannon(df, "3L").set_index("dimension")
    assert res.loc["MO", "h"] == pytest.approx(1.0)
    assert res.loc["MO", "h_max"] == pytest.approx(math.log2(3))
    assert res.loc["MO", "j"] == pytest.approx(1 / math.log2(3))
    assert res.loc["SC", "h"] == 0.0
    # UA: p = 1/4, 1/4, 1/2 -> H = 1.5 bits
    assert res.loc["UA", "h"] == pytest.approx(1.5)
    whole = spinereg.shannon(df, "3L", by_dimension=False).iloc[0]
    # four distinct profiles, each 1/4 -> H = 2 bits; H'max = log2(243)
    assert whole["h"] == pytest.approx(2.0)
    assert whole["h_max"] == pytest.approx(math.log2(243))
    obs = spinereg.shannon(df, "3L", by_dimension=False, permutations=False).iloc[0]
    assert obs["j"] == pytest.approx(1.0)


def test_hsdi() -> None:
    # profiles A,A,A,B: c = (.75, 1), s = (.5, 1) -> .75 * .5 + .25 * 1.5 = 0.75
    assert spinereg.hsdi(["11111", "11111", "11111", "21111"], "3L") == pytest.approx(0.75)
    # equally frequent profiles -> 1
    assert spinereg.hsdi(["11111", "21111", "12111"], "3L") == pytest.approx(1.0)
    assert np.isnan(spinereg.hsdi(np.array([], dtype=object), "3L"))

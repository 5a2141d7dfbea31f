"""The van Hout & Shaw (2021) reverse crosswalk (type="RCW", method="VH").

Every VH set is also checked state by state against the R package eq5d's
RCWVH table in tests/data/valueset_checks/3L_RCW_VH.toml (test_valuesets.py).
Here: the published examples of the two R packages, and the model's own laws.
"""

from __future__ import annotations

import numpy as np
import pytest

import spinereg
from spinereg.instruments import find_valueset
from spinereg.instruments._valuesets import rcw_vh_index, rcw_vh_probabilities, state_grid

# EuroQol's R package eq5dsuite 2.0.0, vignette "Crosswalk methods" (inst/doc/crosswalk-methods.html),
# output of eqxwr(eq5d3l_data, country = "ES"), printed to 8 decimals.
EQ5DSUITE_VIGNETTE_SPAIN = [
    ("11121", 0.90095476),
    ("21221", 0.73260937),
    ("12112", 0.81044151),
    ("32332", -0.04655332),
    ("21231", 0.54478451),
]

# R package eq5d (fragla/eq5d), tests/testthat/test-eq5drcw.R, "van Hout (2021)" block, 3 decimals.
EQ5D_TESTTHAT = [
    ("Germany", "33333", -0.495),
    ("Netherlands", "32123", 0.184),
    ("India", "12321", 0.525),
]


@pytest.mark.parametrize(("state", "expected"), EQ5DSUITE_VIGNETTE_SPAIN)
def test_eq5dsuite_vignette_spain(state: str, expected: float) -> None:
    got = spinereg.eq5d(state, "3L", "RCW", "Spain", method="VH")
    assert got == pytest.approx(expected, abs=5e-9)


@pytest.mark.parametrize(("country", "state", "expected"), EQ5D_TESTTHAT)
def test_eq5d_package_examples(country: str, state: str, expected: float) -> None:
    got = spinereg.eq5d(state, "3L", "RCW", country, method="VH", digits=3)
    assert got == expected


def test_probabilities_are_a_distribution_over_5l_states() -> None:
    p = rcw_vh_probabilities()
    assert p.shape == (243, 3125)
    assert (p >= 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    # 3L 11111 most likely maps to 5L 11111; 3L 33333 most likely to a state with every dimension at 4 or 5
    assert int(np.argmax(p[0])) == 0
    assert (state_grid(5)[int(np.argmax(p[-1]))] >= 4).all()


def test_site_own_5l_value_set() -> None:
    # A 5L "value set" that values every state 0.5: the expectation is 0.5 for every 3L state (hand calculation).
    np.testing.assert_allclose(rcw_vh_index(np.full(3125, 0.5)), 0.5, atol=1e-12)
    # Level sum: E[sum of 5L levels] is the sum over dimensions of E[level]; for 3L 11111 every E[level] is
    # near 1 and for 33333 near 5.
    level_sum = state_grid(5).sum(axis=1).astype(float)
    out = rcw_vh_index(level_sum)
    assert 5.0 < out[0] < 5.5
    assert 23.0 < out[-1] < 25.0
    # A bundled set through the public function equals the bundled RCW set.
    dk5 = find_valueset("5L", "VT", "Denmark").table()
    np.testing.assert_array_equal(rcw_vh_index(dk5), find_valueset("3L", "RCW", "Denmark", method="VH").table())


def test_bad_5l_table_is_refused() -> None:
    with pytest.raises(spinereg.SpineregError, match="3125 values"):
        rcw_vh_index(np.zeros(243))
    bad = np.zeros(3125)
    bad[7] = np.nan
    with pytest.raises(spinereg.SpineregError, match=r"position 7 \(state 11123\)"):
        rcw_vh_index(bad)


def test_every_5l_value_set_has_its_reverse_crosswalk() -> None:
    vt = {vs.country for vs in spinereg.instruments.all_valuesets() if vs.version == "5L" and vs.type == "VT"}
    vh = {vs.country for vs in spinereg.instruments.all_valuesets() if vs.type == "RCW" and vs.method == "VH"}
    assert vt == vh
    vs = find_valueset("3L", "RCW", "Singapore")
    assert vs.method == "VH"
    assert "10.1016/j.jval.2021.03.009" in vs.citation
    assert "5L/VT/Singapore" in vs.source["note"]

"""proportion against R (binom.test, prop.test) and by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from spinereg._errors import SpineregError
from spinereg.stats import proportion
from tests.conftest import SHARED, shared_path

REL = 1e-6
COLUMNS = ["x", "n", "proportion", "ci_low", "ci_high", "method", "note"]
PREFIX = {"clopper-pearson": "clopper_pearson", "wilson": "wilson", "wilson-cc": "wilson_cc"}


def _reference_cases() -> list[tuple[int, str]]:
    path = SHARED / "reference" / "stats" / "proportions_expected.csv"
    if not path.exists():  # one case that skips (or fails under CI) with the reason
        return [(0, "absent")]
    exp = pd.read_csv(path)
    return [(int(d), m) for d in exp["dataset"] for m in PREFIX]


def _close(actual: float, expected: float) -> bool:
    return math.isclose(actual, expected, rel_tol=REL, abs_tol=1e-300)


@pytest.mark.parametrize(("dataset", "method"), _reference_cases())
def test_matches_r(dataset: int, method: str) -> None:
    exp = pd.read_csv(shared_path("reference", "stats", "proportions_expected.csv"))
    want = exp[exp["dataset"] == dataset].iloc[0]
    got = proportion(int(want["x"]), int(want["n"]), method=method)  # type: ignore[arg-type]
    assert list(got.columns) == COLUMNS
    row = got.iloc[0]
    assert (row["x"], row["n"]) == (want["x"], want["n"])
    assert row["method"] == method
    assert row["note"] == ""
    assert _close(float(row["proportion"]), float(want["proportion"]))
    assert _close(float(row["ci_low"]), float(want[f"{PREFIX[method]}_low"]))
    assert _close(float(row["ci_high"]), float(want[f"{PREFIX[method]}_high"]))


# --- by hand -------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 5, 30, 200])
def test_clopper_pearson_edges_closed_form(n: int) -> None:
    # x = 0: [0, 1 - (alpha/2)^(1/n)];  x = n: [(alpha/2)^(1/n), 1]
    zero = proportion(0, n).iloc[0]
    assert (zero["ci_low"], zero["proportion"]) == (0.0, 0.0)
    assert zero["ci_high"] == pytest.approx(1 - 0.025 ** (1 / n), rel=1e-10)
    full = proportion(n, n).iloc[0]
    assert (full["ci_high"], full["proportion"]) == (1.0, 1.0)
    assert full["ci_low"] == pytest.approx(0.025 ** (1 / n), rel=1e-10)


def _wilson(x: int, n: int, cc: float, level: float = 0.95) -> tuple[float, float]:
    """R's prop.test interval written out (Newcombe 1998, methods 3 and 4)."""
    z = stats.norm.ppf((1 + level) / 2)
    p = x / n
    z22n = z**2 / (2 * n)
    pc = p + cc / n
    up = 1.0 if pc >= 1 else (pc + z22n + z * math.sqrt(pc * (1 - pc) / n + z22n / (2 * n))) / (1 + 2 * z22n)
    pc = p - cc / n
    lo = 0.0 if pc <= 0 else (pc + z22n - z * math.sqrt(pc * (1 - pc) / n + z22n / (2 * n))) / (1 + 2 * z22n)
    return max(lo, 0.0), min(up, 1.0)


@pytest.mark.parametrize(("x", "n"), [(0, 1), (1, 1), (0, 7), (3, 7), (7, 7), (12, 40), (39, 40)])
@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_wilson_formulas(x: int, n: int, level: float) -> None:
    plain = proportion(x, n, "wilson", level).iloc[0]
    assert (plain["ci_low"], plain["ci_high"]) == pytest.approx(_wilson(x, n, 0.0, level), rel=1e-10)
    cc = proportion(x, n, "wilson-cc", level).iloc[0]
    assert (cc["ci_low"], cc["ci_high"]) == pytest.approx(_wilson(x, n, 0.5, level), rel=1e-10)


@pytest.mark.parametrize("n", [2, 4, 30, 100])
def test_wilson_cc_has_no_correction_at_half_as_r(n: int) -> None:
    # prop.test uses YATES = min(0.5, abs(x - n/2)): 0 for x = n/2
    cc = proportion(n // 2, n, "wilson-cc").iloc[0]
    plain = proportion(n // 2, n, "wilson").iloc[0]
    assert (cc["ci_low"], cc["ci_high"]) == (plain["ci_low"], plain["ci_high"])
    assert (cc["ci_low"], cc["ci_high"]) == pytest.approx(_wilson(n // 2, n, 0.0), rel=1e-10)


def test_accepts_numpy_and_integral_floats() -> None:
    a = proportion(np.int64(4), 27.0)  # type: ignore[arg-type]
    b = proportion(4, 27)
    pd.testing.assert_frame_equal(a, b)
    assert a["x"].dtype == np.int64


def test_n_zero_is_not_estimable() -> None:
    for method in PREFIX:
        got = proportion(0, 0, method=method).iloc[0]  # type: ignore[arg-type]
        assert got["note"] == "not estimable: n = 0"
        assert np.isnan([got["proportion"], got["ci_low"], got["ci_high"]]).all()


# --- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((5, 3), {}, "exceed"),
        ((-1, 3), {}, "negative"),
        ((1, -3), {}, "negative"),
        ((1.5, 3), {}, "whole number"),
        ((1, float("nan")), {}, "whole number"),
        ((True, 3), {}, "whole number"),
        (("1", 3), {}, "whole number"),
        ((1, 3), {"method": "agresti-coull"}, "method"),
        ((1, 3), {"conf_level": 95}, "conf_level"),
        ((1, 3), {"conf_level": -0.1}, "conf_level"),
    ],
)
def test_bad_input_raises(args: tuple[object, object], kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(SpineregError, match=message):
        proportion(*args, **kwargs)  # type: ignore[arg-type]

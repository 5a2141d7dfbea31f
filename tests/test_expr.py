"""The value-set expression language."""

from __future__ import annotations

import numpy as np
import pytest

from spinereg import DataFileError
from spinereg.instruments._expr import evaluate


def test_arithmetic_comparisons_and_functions() -> None:
    v = {"n1": np.array([5.0, 3.0, 0.0]), "n3": np.array([0.0, 1.0, 5.0])}
    np.testing.assert_array_equal(evaluate("n1 < 5", v), [0, 1, 1])
    np.testing.assert_array_equal(evaluate("max(5 - n1 - 1, 0)", v), [0, 1, 4])
    np.testing.assert_array_equal(evaluate("max(n3 - 1, 0) ** 2", v), [0, 0, 16])
    np.testing.assert_array_equal(evaluate("n3 >= 1 and n1 >= 1", v), [0, 1, 0])
    np.testing.assert_array_equal(evaluate("where(n3 >= 1, n1, -1)", v), [-1, 3, 0])
    np.testing.assert_array_equal(evaluate("not n3", v), [1, 0, 0])
    np.testing.assert_array_equal(evaluate("1 <= n1 < 5", v), [0, 1, 0])


@pytest.mark.parametrize("expr", ["__import__('os')", "n1.real", "[n1]", "lambda: 1", "n1 if n1 else 0",
                                  "max(n1)", "unknown + 1", "1 +"])
def test_rejects_anything_else(expr: str) -> None:
    with pytest.raises(DataFileError):
        evaluate(expr, {"n1": np.array([1.0])}, where="test")

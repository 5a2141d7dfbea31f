"""Rounding half away from zero on the decimal value."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["round_half_away"]


def round_half_away(x: npt.ArrayLike, digits: int) -> npt.NDArray[np.float64]:
    """Round to ``digits`` decimals, ties away from zero, on the decimal value.

    A value such as ``0.4045`` is stored in binary as 0.40449999999999997;
    ``numpy.round`` (ties to even, on the binary value) and a naive
    ``floor(x * 1000 + 0.5)`` both give 0.404.  Value-set indices are sums of
    coefficients with at most seven decimals, so their decimal value never lies
    within 1e-9 of a rounding unit from a tie without being one.  We therefore
    first snap ``x * 10**digits`` to the nearest 1e-9 (removing binary noise)
    and then round half away from zero: 0.4045 -> 0.405, -0.4045 -> -0.405.

    Parameters
    ----------
    x : array_like
        Values; NaN stays NaN.
    digits : int
        Number of decimals (0 to 12).

    Returns
    -------
    numpy.ndarray
    """
    if not 0 <= digits <= 12:
        raise ValueError(f"digits must be between 0 and 12, got {digits}")
    a = np.asarray(x, dtype=np.float64)
    scale = 10.0**digits
    scaled = np.round(a * scale, 9)
    return np.sign(scaled) * np.floor(np.abs(scaled) + 0.5) / scale

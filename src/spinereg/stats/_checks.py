"""Input checks shared by the statistics functions."""

from __future__ import annotations

from typing import Any

from spinereg._errors import SpineregError

__all__ = ["check_conf_level"]


def check_conf_level(conf_level: Any) -> float:
    """``conf_level`` as a float strictly between 0 and 1, else SpineregError."""
    try:
        level = float(conf_level)
    except (TypeError, ValueError):
        raise SpineregError(f"conf_level must be a number in (0, 1), not {conf_level!r}") from None
    if not 0.0 < level < 1.0:
        raise SpineregError(f"conf_level must be strictly between 0 and 1, not {conf_level!r}")
    return level

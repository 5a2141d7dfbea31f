"""Single-item scales: pain NRS (back, leg) and EQ-VAS."""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
import pandas as pd

from spinereg._errors import InvalidInputError, SpineregError
from spinereg.instruments._definitions import get_instrument
from spinereg.instruments._eq5d import InvalidInputWarning
from spinereg.instruments._items import item_matrix

__all__ = ["eqvas", "nrs", "single_item"]


def single_item(values: Any, instrument_id: str, invalid: Literal["raise", "nan"] = "raise") -> Any:
    """Validate a single-item scale against its definition.

    Missing values (NaN, None, empty) stay missing: they are not errors.
    Values outside the range or not integers raise
    :class:`~spinereg.InvalidInputError` naming row and value, or become NaN
    with ``invalid="nan"``.  Returns float values shaped like the input.
    """
    if invalid not in ("raise", "nan"):
        raise SpineregError(f"invalid must be 'raise' or 'nan', not {invalid!r}")
    inst = get_instrument(instrument_id)
    block = item_matrix(values, inst)
    if block.problems and invalid == "raise":
        raise InvalidInputError(inst.name, block.problems)
    if block.invalid.any():
        warnings.warn(f"{inst.name}: {int(block.invalid.sum())} invalid value(s) set to NaN",
                      InvalidInputWarning, stacklevel=3)
    out = block.values[:, 0]
    if block.kind == "pandas":
        name = values.name if isinstance(values, pd.Series) else inst.items[0].id
        return pd.Series(out, index=block.index, name=name)
    if block.kind == "scalar":
        return float(out[0])
    return np.asarray(out)


def nrs(values: Any, site: Literal["back", "leg"] = "back",
        invalid: Literal["raise", "nan"] = "raise") -> Any:
    """Pain numeric rating scale 0-10 (back or leg), validated.

    See :func:`single_item` for the missing-data and invalid-value policy.
    """
    if site not in ("back", "leg"):
        raise SpineregError(f"site must be 'back' or 'leg', not {site!r}")
    return single_item(values, f"nrs_{site}", invalid)


def eqvas(values: Any, invalid: Literal["raise", "nan"] = "raise") -> Any:
    """EQ-VAS 0-100, validated.

    See :func:`single_item` for the missing-data and invalid-value policy.
    """
    return single_item(values, "eqvas", invalid)

"""Scores derived from the PROM items of an extract (never typed in)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from spinereg.instruments import InvalidInputWarning, eq5d, odi

__all__ = ["derive_scores"]

_DIMS = ["mo", "sc", "ua", "pd", "ad"]


def derive_scores(proms: pd.DataFrame, *, country_3l: str = "Denmark", country_5l: str = "Denmark",
                  odi_max_missing: int = 1) -> pd.DataFrame:
    """Instrument scores of every questionnaire.

    Returns
    -------
    pandas.DataFrame
        ``prom_id``, ``eq5d3l_index`` (3L TTO value set of ``country_3l``),
        ``eq5d5l_index`` (5L VT value set of ``country_5l``), ``odi``,
        ``odi_band``, ``odi_missing``, ``eqvas``, ``nrs_back``, ``nrs_leg``.
        An index is missing when any of its five items is missing; the ODI
        follows :func:`spinereg.odi` (at most ``odi_max_missing`` sections
        missing).  Items were validated on import.
    """
    out = pd.DataFrame({"prom_id": proms["prom_id"].astype("string")})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InvalidInputWarning)
        for version, type_, country in (("3l", "TTO", country_3l), ("5l", "VT", country_5l)):
            cols = {d.upper(): proms[f"eq5d{version}_{d}"].astype("Float64").to_numpy(
                dtype=np.float64, na_value=np.nan) for d in _DIMS}
            out[f"eq5d{version}_index"] = eq5d(cols, version.upper(), type_, country, invalid="nan") \
                if len(proms) else np.array([], dtype=np.float64)
        items = proms[[f"odi_{k}" for k in range(1, 11)]].astype("Float64").to_numpy(
            dtype=np.float64, na_value=np.nan)
        scored = odi(items, max_missing=odi_max_missing, invalid="nan")
    out["odi"] = scored["odi"].to_numpy()
    out["odi_band"] = scored["odi_band"].to_numpy()
    out["odi_missing"] = scored["odi_missing"].to_numpy()
    for c in ("eqvas", "nrs_back", "nrs_leg"):
        out[c] = proms[c].astype("Int64")
    return out

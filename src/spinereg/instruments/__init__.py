"""Instruments: definitions and validated scoring of EQ-5D, EQ-VAS, ODI and pain NRS.

This is the innermost layer of spinereg: it imports nothing from the rest of
the package.
"""

from spinereg.instruments._definitions import (
    Instrument,
    Item,
    get_instrument,
    list_instruments,
    load_wording,
)
from spinereg.instruments._descriptive import hsdi, lfs, lss, pchc, shannon
from spinereg.instruments._eq5d import InvalidInputWarning, eq5d
from spinereg.instruments._odi import odi, odi_band
from spinereg.instruments._rounding import round_half_away
from spinereg.instruments._scales import eqvas, nrs
from spinereg.instruments._valuesets import (
    DIMENSIONS,
    ValueSet,
    all_valuesets,
    find_valueset,
    rcw_vh_index,
    rcw_vh_probabilities,
    valueset_catalogue,
)

__all__ = [
    "DIMENSIONS",
    "Instrument",
    "InvalidInputWarning",
    "Item",
    "ValueSet",
    "all_valuesets",
    "eq5d",
    "eqvas",
    "find_valueset",
    "get_instrument",
    "hsdi",
    "lfs",
    "list_instruments",
    "load_wording",
    "lss",
    "nrs",
    "odi",
    "odi_band",
    "pchc",
    "rcw_vh_index",
    "rcw_vh_probabilities",
    "round_half_away",
    "shannon",
    "valueset_catalogue",
]

"""The interface between import mappings and validation.

A mapping (``_mapping.py``) turns source files into :class:`MappedTable`
chunks: tidy column names with the *raw* source values (not yet validated or
converted), plus where each value came from, so that every problem can name
the source file, row and column.  Validation (``_validate.py``) checks the
chunks and converts them into a tidy :class:`~spinereg.data.Extract`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

__all__ = ["MappedTable", "Provenance"]


@dataclass(frozen=True)
class Provenance:
    """Where the rows of a chunk come from.

    Attributes
    ----------
    file : str
        The source file as the user named it (never a personal id).
    row_label : str
        How rows are counted in messages for this file: ``"line"`` (CSV: the
        line number in the file, header = line 1), ``"sheet row"`` (XLSX) or
        ``"row"`` (1-based record number: SAS, Stata, SPSS, Parquet).
    columns : dict of str to str
        Tidy column -> source column it was read from (for messages).
        Columns computed from several source columns name them joined by
        ``+``; constants are absent.
    redact_cpr : frozenset of str
        Tidy columns whose CPR-shaped numbers inside text the validator
        replaces by ``[CPR number hidden]`` with a warning (the mapping says
        ``cpr_in_text = "redact"``); in every other column such a number is
        an error that refuses the import.
    """

    file: str
    row_label: str
    columns: dict[str, str] = field(default_factory=dict)
    redact_cpr: frozenset[str] = frozenset()


@dataclass(frozen=True)
class MappedTable:
    """One chunk of rows mapped onto a tidy entity.

    Attributes
    ----------
    entity : str
        Tidy entity name (``patients``, ``operations``, ``proms``...).
    frame : pandas.DataFrame
        Tidy column names with raw values (object/str; codes already
        translated by the mapping's code lists), plus the column ``_row``
        (int: the row number in the source, counted as ``row_label`` says).
        Columns the source does not provide are simply absent.
    provenance : Provenance
        File and source column names for messages.
    """

    entity: str
    frame: pd.DataFrame
    provenance: Provenance

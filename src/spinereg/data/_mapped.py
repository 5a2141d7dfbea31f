"""The interface between import mappings and validation.

A mapping (``_mapping.py``) turns source files into :class:`MappedTable`
chunks: tidy column names with the *raw* source values (not yet validated or
converted), plus where each value came from, so that every problem can name
the source file, row and column.  Validation (``_validate.py``) checks the
chunks and converts them into a tidy :class:`~spinereg.data.Extract`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import pandas as pd

__all__ = ["ChunkStream", "MappedTable", "Provenance"]


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


@runtime_checkable
class ChunkStream(Protocol):
    """A lazy stream of mapped chunks that knows when an entity is done.

    What :func:`~spinereg.data.iter_mapping` returns and
    :func:`~spinereg.data.validate` reads.  The chunks come entity by entity,
    in the order of :func:`~spinereg.data.entities`.  ``complete(entity)`` is
    true once every chunk of ``entity`` has been yielded (also when it has
    none), so that a reader can check and hand over an entity without asking
    for, and so mapping, the first chunk of the next one.  A wrapper (e.g. one
    that times the mapping) implements this protocol by passing
    ``complete`` through; :func:`~spinereg.data.validate` recognises it with
    ``isinstance(chunks, ChunkStream)``.  A plain iterable of chunks is read
    up to the first chunk of a later entity instead.
    """

    def __iter__(self) -> Iterator[MappedTable]: ...

    def __next__(self) -> MappedTable: ...

    def complete(self, entity: str) -> bool:
        """Whether every chunk of ``entity`` has been yielded."""
        ...

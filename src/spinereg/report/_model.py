"""The format-neutral document model of a study report.

:func:`spinereg.report.build_document` turns ``results.json`` into one
:class:`Document`; the HTML, PDF and DOCX renderers only lay it out.  Every
number in the model is already a formatted string (see
:mod:`spinereg.report._format`), so the three formats show the same text by
construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "Block",
    "BulletList",
    "Document",
    "Figure",
    "Footnote",
    "Heading",
    "Paragraph",
    "Row",
    "Section",
    "Table",
]

Align = Literal["left", "right", "center"]


@dataclass(frozen=True)
class Paragraph:
    """Running text.

    Attributes
    ----------
    text : str
        Plain text (renderers escape it).
    lead : str
        An optional run-in heading shown in bold before the text.
    """

    text: str
    lead: str = ""


@dataclass(frozen=True)
class Heading:
    """A sub-heading inside a section (the section title is level 1)."""

    text: str


@dataclass(frozen=True)
class BulletList:
    """An unordered list of plain-text items."""

    items: tuple[str, ...]


@dataclass(frozen=True)
class Row:
    """One table row of formatted strings.

    Attributes
    ----------
    cells : tuple of str
        One string per column (a group row uses ``cells[0]`` only).
    kind : {"data", "group"}
        A ``group`` row is a heading spanning the table.
    indent : int
        Indentation level of the first cell.
    marks : tuple of str
        Footnote marks per cell (superscript after the cell text); empty
        strings where none; may be shorter than ``cells``.
    """

    cells: tuple[str, ...]
    kind: Literal["data", "group"] = "data"
    indent: int = 0
    marks: tuple[str, ...] = ()

    def mark(self, i: int) -> str:
        """The footnote mark of cell ``i`` (``""`` when none)."""
        return self.marks[i] if i < len(self.marks) else ""


@dataclass(frozen=True)
class Footnote:
    """A table footnote; ``mark`` is ``""`` for a general note."""

    mark: str
    text: str


@dataclass(frozen=True)
class Table:
    """A numbered table.

    Attributes
    ----------
    id : str
        Stable identifier (an HTML anchor), e.g. ``"table-outcomes"``.
    label : str
        ``"Table 1"``, ``"Table S1"``.
    caption : str
        The caption after the label.
    header : tuple of str
        Column headings.
    rows : tuple of Row
    footnotes : tuple of Footnote
    align : tuple of {"left", "right", "center"}
        Per column.
    widths : tuple of float
        Relative column widths (they need not add up to 1).
    """

    id: str
    label: str
    caption: str
    header: tuple[str, ...]
    rows: tuple[Row, ...]
    footnotes: tuple[Footnote, ...] = ()
    align: tuple[Align, ...] = ()
    widths: tuple[float, ...] = ()

    def column_align(self, i: int) -> Align:
        """Alignment of column ``i`` (first column left, others right unless given)."""
        if i < len(self.align):
            return self.align[i]
        return "left" if i == 0 else "right"

    def column_widths(self) -> tuple[float, ...]:
        """Relative widths, normalised to add up to 1."""
        w = self.widths if len(self.widths) == len(self.header) else (2.0,) + (1.0,) * (len(self.header) - 1)
        total = sum(w)
        return tuple(x / total for x in w)


@dataclass(frozen=True)
class Figure:
    """A numbered figure: the files written by :func:`make_figures` and the caption.

    Attributes
    ----------
    id : str
        The figure's id from ``make_figures`` (``"flow"``, ``"survival"``...).
    label : str
        ``"Figure 1"``.
    title, caption : str
    svg, png : Path
        The vector drawing (HTML, PDF) and the raster (DOCX, fallback).
    """

    id: str
    label: str
    title: str
    caption: str
    svg: Path
    png: Path


Block = Paragraph | Heading | BulletList | Table | Figure


@dataclass(frozen=True)
class Section:
    """A top-level section: a title and its blocks in reading order."""

    id: str
    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Document:
    """A whole report.

    Attributes
    ----------
    title : str
    subtitle : str
        The study question.
    byline : str
        What the report is and where its numbers come from.
    banner : str
        The synthetic-data warning, shown on every page; ``""`` for real data.
    sections : tuple of Section
    provenance : tuple of (str, str)
        Label and value: spinereg version, spec and data SHA-256, date.
    footer : tuple of str
        The provenance lines of every page's footer.
    """

    title: str
    subtitle: str
    byline: str
    banner: str
    sections: tuple[Section, ...]
    provenance: tuple[tuple[str, str], ...] = field(default=())
    footer: tuple[str, ...] = ()

    def tables(self) -> list[Table]:
        """Every table, in reading order."""
        return [b for s in self.sections for b in s.blocks if isinstance(b, Table)]

    def figures(self) -> list[Figure]:
        """Every figure, in reading order."""
        return [b for s in self.sections for b in s.blocks if isinstance(b, Figure)]

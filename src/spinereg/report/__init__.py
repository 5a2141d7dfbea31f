"""The report layer: publication-ready HTML, PDF and Word reports from ``results.json``.

Reads only ``results.json`` (never recomputes) and is the only layer that
formats numbers as text (:mod:`spinereg.report._format`).

>>> from spinereg.report import render_report
>>> render_report("out/results.json", "out/report")          # doctest: +SKIP
[PosixPath('out/report/report.html'), PosixPath('out/report/report.pdf'), PosixPath('out/report/report.docx')]

The content is built once, as a format-neutral :class:`Document`
(:func:`build_document`), and rendered three ways (:func:`render_html`,
:func:`render_pdf`, :func:`render_docx`), so the same formatted strings
appear in every format.  See ``docs/report.md``.
"""

from spinereg.report._build import build_document, load_results
from spinereg.report._docx import render_docx
from spinereg.report._html import render_html
from spinereg.report._model import (
    BulletList,
    Document,
    Figure,
    Footnote,
    Heading,
    Paragraph,
    Row,
    Section,
    Table,
)
from spinereg.report._pdf import render_pdf
from spinereg.report._render import render_report
from spinereg.report._summary import summary_rows

__all__ = [
    "BulletList",
    "Document",
    "Figure",
    "Footnote",
    "Heading",
    "Paragraph",
    "Row",
    "Section",
    "Table",
    "build_document",
    "load_results",
    "render_docx",
    "render_html",
    "render_pdf",
    "render_report",
    "summary_rows",
]

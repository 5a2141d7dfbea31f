"""The report as a journal-style PDF: A4, numbered tables and figures, running banner and footer.

Typeset with reportlab's platypus; the SVG figures are drawn as vectors
through svglib (the PNG is the fallback).  The text font is DejaVu (shipped
with matplotlib, a spinereg dependency) for its full coverage of the minus
sign, en dash and superscripts; reportlab's bundled Bitstream Vera stands in
when DejaVu cannot be found.  Output is byte-for-byte reproducible
(reportlab's invariant mode).

Pagination (issue 16):

* Every font is embedded (subset TrueType), including the canvas's initial
  font, which reportlab would otherwise declare as the non-embedded
  Helvetica on every page.
* A heading is never the last thing on a page: a conditional page break
  before it asks for room for the heading and the start of what follows
  (a whole small table, or the caption and first rows of a long one).
* A table shorter than a third of the page is kept whole with its caption;
  a longer one may break across pages (its header row repeats), with its
  caption and first rows kept together.
* A figure that does not fit in the rest of the page is drawn smaller, down
  to 65% of its size, before it is moved to the next page, so a page is
  rarely left half empty.
* Tagged PDF: reportlab (open-source) writes no structure tree, so the file
  is not tagged; the document outline, title and language are set.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_LEFT, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    CondPageBreak,
    Flowable,
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    TableStyle,
)
from reportlab.platypus import Table as RLTable

from spinereg._version import __version__
from spinereg.report import _model as m
from spinereg.report._layout import column_widths

__all__ = ["render_pdf", "sans_font"]

PAGE_W, PAGE_H = A4
MARGIN_X = 18 * mm
MARGIN_TOP = 16 * mm
MARGIN_BOTTOM = 22 * mm
BANNER_H = 9 * mm
WARN = colors.HexColor("#a3001b")
GREY = colors.HexColor("#555555")

_ALIGN = {"left": TA_LEFT, "right": TA_RIGHT, "center": TA_CENTER}


@dataclass(frozen=True)
class _Fonts:
    serif: str
    serif_bold: str
    serif_italic: str
    sans: str
    sans_bold: str


def _font_dir() -> Path | None:
    try:
        import matplotlib

        d = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        return None
    return d if (d / "DejaVuSans.ttf").is_file() else None


@lru_cache(maxsize=1)
def _fonts() -> _Fonts:
    """Register the report fonts once per process.

    Only the five faces the report uses are loaded (loading a TrueType font
    costs tens of milliseconds).  The sans-serif faces are registered through
    svglib's font map, so that the figures' SVG text (DejaVu Sans, weights
    ``normal`` and ``700``) is drawn with them and svglib never searches the
    system for fonts.
    """
    from svglib.fonts import register_font

    d = _font_dir()
    if d is not None:
        serif = {"SrSerif": "DejaVuSerif.ttf", "SrSerif-Bold": "DejaVuSerif-Bold.ttf",
                 "SrSerif-Italic": "DejaVuSerif-Italic.ttf"}
        sans = {"SrSans": "DejaVuSans.ttf", "SrSans-Bold": "DejaVuSans-Bold.ttf"}
    else:
        import reportlab

        d = Path(reportlab.__file__).parent / "fonts"
        serif = {"SrSerif": "Vera.ttf", "SrSerif-Bold": "VeraBd.ttf", "SrSerif-Italic": "VeraIt.ttf"}
        sans = {"SrSans": "Vera.ttf", "SrSans-Bold": "VeraBd.ttf"}
    for name, file in serif.items():
        pdfmetrics.registerFont(TTFont(name, str(d / file)))
    for (name, file), weight in zip(sans.items(), ("normal", "700"), strict=True):
        register_font("DejaVu Sans", str(d / file), weight=weight, rlgFontName=name)
    pdfmetrics.registerFontFamily("SrSerif", normal="SrSerif", bold="SrSerif-Bold", italic="SrSerif-Italic",
                                  boldItalic="SrSerif-Bold")
    pdfmetrics.registerFontFamily("SrSans", normal="SrSans", bold="SrSans-Bold", italic="SrSans",
                                  boldItalic="SrSans-Bold")
    return _Fonts("SrSerif", "SrSerif-Bold", "SrSerif-Italic", "SrSans", "SrSans-Bold")


def sans_font() -> str:
    """The report's sans-serif font name in reportlab, registered (with svglib's font map) on first use."""
    return _fonts().sans


class _Styles:
    """Paragraph styles of the report (journal-like: serif text, sans-serif tables and captions)."""

    def __init__(self, f: _Fonts) -> None:
        self.f = f
        self.title = ParagraphStyle("title", fontName=f.sans_bold, fontSize=17, leading=21, spaceAfter=6)
        self.subtitle = ParagraphStyle("subtitle", fontName=f.serif_italic, fontSize=11, leading=14, spaceAfter=4,
                                       textColor=GREY)
        self.byline = ParagraphStyle("byline", fontName=f.sans, fontSize=8, leading=10.5, spaceAfter=10,
                                     textColor=GREY)
        self.h1 = ParagraphStyle("h1", fontName=f.sans_bold, fontSize=13, leading=16, spaceBefore=12, spaceAfter=5)
        self.h2 = ParagraphStyle("h2", fontName=f.sans_bold, fontSize=10, leading=13, spaceBefore=8, spaceAfter=3)
        self.body = ParagraphStyle("body", fontName=f.serif, fontSize=9.5, leading=13, spaceAfter=5)
        self.bullet = ParagraphStyle("bullet", parent=self.body, leftIndent=11, bulletIndent=2, spaceAfter=2.5,
                                     bulletFontName=f.serif)
        self.caption = ParagraphStyle("caption", fontName=f.sans, fontSize=8.5, leading=11, spaceBefore=6,
                                      spaceAfter=3)
        self.note = ParagraphStyle("note", fontName=f.sans, fontSize=6.8, leading=8.6, spaceAfter=0.5,
                                   textColor=colors.HexColor("#333333"))
        self._cells: dict[tuple[str, int, bool], ParagraphStyle] = {}

    def cell(self, align: str, indent: int = 0, bold: bool = False) -> ParagraphStyle:
        key = (align, indent, bold)
        if key not in self._cells:
            self._cells[key] = ParagraphStyle(
                f"cell-{align}-{indent}-{bold}", fontName=self.f.sans_bold if bold else self.f.sans, fontSize=7.4,
                leading=9.2, alignment=_ALIGN.get(align, TA_LEFT), leftIndent=7 * indent)
        return self._cells[key]


def _text(text: str, mark: str = "") -> str:
    return escape(text) + (f"<super>{escape(mark)}</super>" if mark else "")


def _table(t: m.Table, width: float, st: _Styles) -> list[Any]:
    ncol = len(t.header)
    size = st.cell("left").fontSize

    def measure(text: str, bold: bool) -> float:
        return float(pdfmetrics.stringWidth(text, st.f.sans_bold if bold else st.f.sans, size))

    widths = column_widths(t, width, measure, padding=7)
    data: list[list[Any]] = [[Paragraph(_text(h), st.cell(t.column_align(i), bold=True))
                              for i, h in enumerate(t.header)]]
    cmds: list[tuple[Any, ...]] = [
        ("LINEABOVE", (0, 0), (-1, 0), 0.9, colors.black),
        ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
        ("LINEBELOW", (0, -1), (-1, -1), 0.9, colors.black),
        ("VALIGN", (0, 0), (-1, 0), "BOTTOM"),
        ("VALIGN", (0, 1), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
        ("TOPPADDING", (0, 0), (-1, -1), 1.6),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.6),
    ]
    for i, r in enumerate(t.rows, start=1):
        if r.kind == "group":
            data.append([Paragraph(_text(r.cells[0], r.mark(0)), st.cell("left", bold=True))] + [""] * (ncol - 1))
            cmds += [("SPAN", (0, i), (-1, i)), ("TOPPADDING", (0, i), (-1, i), 4)]
        else:
            cells = list(r.cells) + [""] * (ncol - len(r.cells))
            row: list[Any] = []
            for j, c in enumerate(cells[:ncol]):
                if j and not r.mark(j) and measure(c, False) + 7 <= widths[j]:
                    row.append(c)  # a plain string is drawn on one line, much faster than a Paragraph
                else:
                    row.append(Paragraph(_text(c, r.mark(j)), st.cell(t.column_align(j), r.indent if j == 0 else 0)))
            data.append(row)
    # plain-string cells: the cell font, aligned like their column, on the first line of a Paragraph cell
    cmds += [("FONT", (0, 0), (-1, 0), st.f.sans_bold, size, st.cell("left").leading),  # else Helvetica is set
             ("FONT", (0, 1), (-1, -1), st.f.sans, size, st.cell("left").leading),
             ("BOTTOMPADDING", (1, 1), (-1, -1), 1.6 + st.cell("left").leading - size)]
    cmds += [("ALIGN", (j, 1), (j, -1), t.column_align(j).upper()) for j in range(ncol)]
    table = RLTable(data, colWidths=widths, repeatRows=1, hAlign="LEFT")
    table.setStyle(TableStyle(cmds))
    caption = Paragraph(f"<b>{escape(t.label)}.</b> {escape(t.caption)}", st.caption)
    notes = [Paragraph((f"<super>{escape(f.mark)}</super> " if f.mark else "") + escape(f.text), st.note)
             for f in t.footnotes]
    cap_h = caption.wrap(width, PAGE_H)[1] + st.caption.spaceBefore + st.caption.spaceAfter
    table_h = table.wrap(width, PAGE_H)[1]
    if cap_h + table_h <= _FRAME_H / 3:  # small: kept whole with its caption
        return [KeepTogether([caption, table]), Spacer(1, 2), *notes, Spacer(1, 8)]
    first_rows = sum(table._rowHeights[:4])
    return [CondPageBreak(cap_h + first_rows), caption, table, Spacer(1, 2), *notes, Spacer(1, 8)]


#: Height of the text frame (the page minus margins and the banner), points.
_FRAME_H = PAGE_H - MARGIN_TOP - 9 * mm - MARGIN_BOTTOM
#: A figure may be drawn down to this fraction of its size to fit the rest of a page.
_MIN_FIGURE_SCALE = 0.65


class _FigureBlock(Flowable):  # type: ignore[misc]  # reportlab ships no type information
    """A drawing with its caption under it, drawn smaller (down to :data:`_MIN_FIGURE_SCALE`) to fit the page.

    When even the smallest size does not fit, :meth:`split` returns nothing and
    the frame moves the whole block to the next page.
    """

    def __init__(self, drawing: Any, caption: Paragraph) -> None:
        super().__init__()
        self.drawing = drawing
        self.caption = caption
        self.scale = 1.0
        self._cap_h = 0.0
        self._gap = 6.0

    def wrap(self, avail_w: float, avail_h: float) -> tuple[float, float]:
        self._cap_h = float(self.caption.wrap(avail_w, avail_h)[1])
        _dw, dh = self.drawing.wrap(avail_w, avail_h)
        room = avail_h - self._cap_h - self._gap
        self.scale = 1.0 if dh <= room else (room / dh if room >= _MIN_FIGURE_SCALE * dh else 1.0)
        self.width = avail_w
        self.height = dh * self.scale + self._cap_h + self._gap
        return self.width, self.height

    def split(self, avail_w: float, avail_h: float) -> list[Any]:
        return []

    def draw(self) -> None:
        dw, _dh = self.drawing.wrap(self.width, PAGE_H)
        self.caption.drawOn(self.canv, 0, 0)
        self.canv.saveState()
        self.canv.translate((self.width - dw * self.scale) / 2, self._cap_h + self._gap)
        self.canv.scale(self.scale, self.scale)
        self.drawing.drawOn(self.canv, 0, 0)
        self.canv.restoreState()


@contextmanager
def _quiet_svglib() -> Iterator[None]:
    """svglib logs every SVG feature it ignores (e.g. unused clip paths); keep the console clean."""
    log = logging.getLogger("svglib")
    old = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(old)


def _drawing(f: m.Figure, width: float, max_h: float) -> Any:
    drawing = None
    if f.svg.is_file():
        from svglib.svglib import svg2rlg

        with _quiet_svglib():
            try:
                drawing = svg2rlg(str(f.svg))
            except Exception:  # a drawing svglib cannot read falls back to the PNG below
                drawing = None
    if drawing is not None and drawing.width > 0 and drawing.height > 0:
        drawing.initialFontName = _fonts().sans  # else the renderer sets (and the PDF lists) unembedded Helvetica
        s = min(width / drawing.width, max_h / drawing.height)
        drawing.scale(s, s)
        drawing.width, drawing.height = drawing.width * s, drawing.height * s
        drawing.hAlign = "CENTER"
        return drawing
    img = Image(str(f.png))
    iw, ih = img.imageWidth, img.imageHeight
    s = min(width / iw, max_h / ih)
    img.drawWidth, img.drawHeight = iw * s, ih * s
    img.hAlign = "CENTER"
    return img


def _figure(f: m.Figure, width: float, max_h: float, st: _Styles) -> list[Any]:
    caption = f"<b>{escape(f.label)}.</b> " + (f"<b>{escape(f.title)}.</b> " if f.title else "") + escape(f.caption)
    return [Spacer(1, 4), _FigureBlock(_drawing(f, width, max_h), Paragraph(caption, st.caption)), Spacer(1, 6)]


def _heading(text: str, style: ParagraphStyle, following: m.Block | None, width: float) -> list[Any]:
    """The heading after a conditional page break: room for it and the start of what follows.

    What follows needs five lines of text, or a whole small table, or a
    table's caption and first rows, or a figure at its smallest size (a
    subheading: its own line and five lines of text).
    """
    head = Paragraph(escape(text), style)
    need = head.wrap(width, PAGE_H)[1] + style.spaceBefore + style.spaceAfter + 5 * 13.0
    if isinstance(following, m.Table):
        need += 60.0
    elif isinstance(following, m.Figure):
        need += 0.3 * _FRAME_H
    elif isinstance(following, m.Heading):  # a section opening with a subheading: room for that one too
        need += 2 * style.fontSize + style.spaceBefore + style.spaceAfter
    return [CondPageBreak(need), head]


def _story(doc: m.Document, width: float, max_fig_h: float, st: _Styles) -> list[Any]:
    story: list[Any] = [Paragraph(escape(doc.title), st.title)]
    if doc.subtitle:
        story.append(Paragraph(escape(doc.subtitle), st.subtitle))
    story.append(Paragraph(escape(doc.byline), st.byline))
    for sec in doc.sections:
        story += _heading(sec.title, st.h1, sec.blocks[0] if sec.blocks else None, width)
        for i, b in enumerate(sec.blocks):
            if isinstance(b, m.Paragraph):
                lead = f"<b>{escape(b.lead)}</b> " if b.lead else ""
                story.append(Paragraph(lead + escape(b.text), st.body))
            elif isinstance(b, m.Heading):
                story += _heading(b.text, st.h2, sec.blocks[i + 1] if i + 1 < len(sec.blocks) else None, width)
            elif isinstance(b, m.BulletList):
                story += [Paragraph(escape(i), st.bullet, bulletText="\u2022") for i in b.items]
                story.append(Spacer(1, 3))
            elif isinstance(b, m.Table):
                story += _table(b, width, st)
            else:
                story += _figure(b, width, max_fig_h, st)
    return story


def _page_decorations(doc: m.Document, f: _Fonts) -> Any:
    """The onPage callback: synthetic-data banner (when set) and the provenance footer, on every page."""

    def draw(canvas: Any, _template: Any) -> None:
        canvas.saveState()
        if doc.banner:
            size = 7.6
            lines = simpleSplit(doc.banner, f.sans_bold, size, PAGE_W - 2 * MARGIN_X - 8)
            h = max(BANNER_H, len(lines) * (size + 2) + 5)
            y0 = PAGE_H - 8 * mm - h
            canvas.setFillColor(WARN)
            canvas.rect(MARGIN_X, y0, PAGE_W - 2 * MARGIN_X, h, stroke=0, fill=1)
            canvas.setFillColor(colors.white)
            canvas.setFont(f.sans_bold, size)
            y = y0 + h - 4 - size
            for line in lines:
                canvas.drawCentredString(PAGE_W / 2, y, line)
                y -= size + 2
        canvas.setFillColor(GREY)
        canvas.setFont(f.sans, 6.3)
        y = 14 * mm
        for line in doc.footer:
            canvas.drawString(MARGIN_X, y, line)
            y -= 7.6
        canvas.setStrokeColor(colors.HexColor("#bbbbbb"))
        canvas.setLineWidth(0.4)
        canvas.line(MARGIN_X, 14 * mm + 9, PAGE_W - MARGIN_X, 14 * mm + 9)
        canvas.restoreState()

    return draw


def _numbered_canvas(font: str) -> type[Any]:
    """A canvas that writes "Page n of N" once the page count is known."""

    class NumberedCanvas(Canvas):  # type: ignore[misc]  # reportlab ships no type information
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # the initial font is written into every page; Helvetica would be the one font not embedded
            super().__init__(*args, **{**kwargs, "initialFontName": font})
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self.saveState()
                self.setFont(font, 7)
                self.setFillColor(GREY)
                self.drawRightString(PAGE_W - MARGIN_X, 14 * mm, f"Page {self._pageNumber} of {total}")
                self.restoreState()
                super().showPage()
            super().save()

    return NumberedCanvas


def render_pdf(doc: m.Document) -> bytes:
    """The document as PDF bytes."""
    f = _fonts()
    st = _Styles(f)
    top = MARGIN_TOP + (BANNER_H if doc.banner else 0)
    buf = io.BytesIO()
    template = SimpleDocTemplate(
        buf, pagesize=A4, leftMargin=MARGIN_X, rightMargin=MARGIN_X, topMargin=top, bottomMargin=MARGIN_BOTTOM,
        title=doc.title, author="spinereg", subject=doc.subtitle, creator=f"spinereg {__version__}",
        producer=f"spinereg {__version__} (reportlab)", invariant=1, lang="en")
    width = PAGE_W - 2 * MARGIN_X
    max_fig_h = (PAGE_H - top - MARGIN_BOTTOM) * 0.62
    deco = _page_decorations(doc, f)
    template.build(_story(doc, width, max_fig_h, st), onFirstPage=deco, onLaterPages=deco,
                   canvasmaker=_numbered_canvas(f.sans))
    return buf.getvalue()

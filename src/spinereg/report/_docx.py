"""The report as a Word document: real, editable tables and numbered captions.

Built with python-docx.  Tables are Word tables (header row repeated on each
page, three horizontal rules as journals print them); captions are Word
captions (``Caption`` style with a ``SEQ`` field, so Word can list and
cross-reference them); figures are the 300 dpi PNGs.  The synthetic-data
banner sits in the page header and the provenance with "Page n of N" in the
page footer, so both appear on every page.
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from typing import Any

import docx
from docx.enum.section import WD_ORIENT
from docx.enum.style import WD_STYLE_TYPE
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.image.image import Image as DocxImage
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt, RGBColor

from spinereg._version import __version__
from spinereg.report import _model as m
from spinereg.report._layout import column_widths

__all__ = ["render_docx"]

_ALIGN = {"left": WD_ALIGN_PARAGRAPH.LEFT, "right": WD_ALIGN_PARAGRAPH.RIGHT, "center": WD_ALIGN_PARAGRAPH.CENTER}
WARN = RGBColor(0xA3, 0x00, 0x1B)
GREY = RGBColor(0x55, 0x55, 0x55)
TEXT_WIDTH_MM = 174.0
CELL_PT = 8
NOTE_PT = 7.5
CELL_STYLE = "SpineregTableCell"
NOTE_STYLE = "SpineregTableNote"
CAPTION_STYLE = "Caption"  # style ids of python-docx's default template
BULLET_STYLE = "ListBullet"


def _field(paragraph: Any, instr: str, shown: str, *, bold: bool = False, size: float | None = None) -> None:
    """A Word field (``SEQ``, ``PAGE``...) with its current result, as a complex field.

    The result is an ordinary run, so text extraction (and Word before it
    updates the fields) sees the number.
    """

    def run() -> Any:
        r = paragraph.add_run()
        if bold:
            r.bold = True
        if size is not None:
            r.font.size = Pt(size)
        return r

    def char(kind: str) -> None:
        el = OxmlElement("w:fldChar")
        el.set(qn("w:fldCharType"), kind)
        run()._r.append(el)

    char("begin")
    code = OxmlElement("w:instrText")
    code.set(qn("xml:space"), "preserve")
    code.text = instr
    run()._r.append(code)
    char("separate")
    run().text = shown
    char("end")


def _caption(doc: Any, label: str, rest: str, *, keep_with_next: bool) -> None:
    p = doc.add_paragraph()
    _para_style(p, CAPTION_STYLE)
    if keep_with_next:
        p.paragraph_format.keep_with_next = True
    match = re.fullmatch(r"(Table|Figure) (\d+)", label)
    if match:
        p.add_run(f"{match.group(1)} ").bold = True
        _field(p, f" SEQ {match.group(1)} \\* ARABIC ", match.group(2), bold=True)
        p.add_run(".").bold = True
    else:
        p.add_run(f"{label}.").bold = True
    p.add_run(f" {rest}")


def _borders(table: Any) -> None:
    """Journal rules: a line above and below the table, none inside (the header rule is per cell)."""
    tbl_pr = table._tbl.tblPr
    borders = OxmlElement("w:tblBorders")
    for edge in ("top", "left", "bottom", "right", "insideH", "insideV"):
        el = OxmlElement(f"w:{edge}")
        if edge in ("top", "bottom"):
            el.set(qn("w:val"), "single")
            el.set(qn("w:sz"), "8")
            el.set(qn("w:color"), "000000")
        else:
            el.set(qn("w:val"), "nil")
        borders.append(el)
    # schema order (CT_TblPr): tblBorders comes before these; Word rejects out-of-order elements
    later = [tbl_pr.find(qn(f"w:{t}")) for t in ("shd", "tblLayout", "tblCellMar", "tblLook", "tblCaption",
                                                   "tblDescription")]
    nxt = next((e for e in later if e is not None), None)
    if nxt is None:
        tbl_pr.append(borders)
    else:
        nxt.addprevious(borders)


def _cell_bottom_rule(cell: Any) -> None:
    tc_pr = cell._tc.get_or_add_tcPr()
    borders = OxmlElement("w:tcBorders")
    bottom = OxmlElement("w:bottom")
    bottom.set(qn("w:val"), "single")
    bottom.set(qn("w:sz"), "4")
    bottom.set(qn("w:color"), "000000")
    borders.append(bottom)
    tc_pr.append(borders)


def _repeat_header(row: Any) -> None:
    tr_pr = row._tr.get_or_add_trPr()
    el = OxmlElement("w:tblHeader")
    el.set(qn("w:val"), "true")
    tr_pr.append(el)


def _para_style(paragraph: Any, style_id: str) -> None:
    """Set a paragraph style by id (python-docx's lookup by name scans every style on each call)."""
    paragraph._p.style = style_id


def _write_cell(cell: Any, text: str, mark: str, align: str, *, bold: bool = False, indent: int = 0) -> None:
    p = cell.paragraphs[0]
    _para_style(p, CELL_STYLE)
    if align != "left":
        p.alignment = _ALIGN[align]
    if indent:
        p.paragraph_format.left_indent = Mm(3.5 * indent)
    run = p.add_run(text)
    if bold:
        run.bold = True
    if mark:
        p.add_run(mark).font.superscript = True


def _measure(text: str, bold: bool) -> float:
    """Approximate width in points of ``text`` at the cell font size (no font metrics in Word files)."""
    return len(text) * CELL_PT * (0.62 if bold else 0.56)


def _table(doc: Any, t: m.Table) -> None:
    _caption(doc, t.label, t.caption, keep_with_next=True)
    ncol = len(t.header)
    table = doc.add_table(rows=1 + len(t.rows), cols=ncol)
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    table.autofit = False
    _borders(table)
    widths = [Pt(w) for w in column_widths(t, TEXT_WIDTH_MM / 25.4 * 72, _measure, padding=12)]
    for col, w in zip(table.columns, widths, strict=True):
        col.width = w
    rows = table.rows
    header = rows[0]
    _repeat_header(header)
    for i, (cell, text) in enumerate(zip(header.cells, t.header, strict=True)):
        _write_cell(cell, text, "", t.column_align(i), bold=True)
        _cell_bottom_rule(cell)
    for r, row in zip(t.rows, list(rows)[1:], strict=True):
        cells = row.cells
        for cell, w in zip(cells, widths, strict=True):
            cell.width = w
        if r.kind == "group":
            merged = cells[0].merge(cells[-1]) if ncol > 1 else cells[0]
            _write_cell(merged, r.cells[0], r.mark(0), "left", bold=True)
            continue
        for j, cell in enumerate(cells):
            text = r.cells[j] if j < len(r.cells) else ""
            _write_cell(cell, text, r.mark(j), t.column_align(j), indent=r.indent if j == 0 else 0)
    for cell, w in zip(header.cells, widths, strict=True):
        cell.width = w
    for f in t.footnotes:
        p = doc.add_paragraph()
        _para_style(p, NOTE_STYLE)
        if f.mark:
            p.add_run(f.mark).font.superscript = True
            p.add_run(" ")
        p.add_run(f.text)
    doc.add_paragraph()


def _figure(doc: Any, f: m.Figure) -> None:
    img = DocxImage.from_file(str(f.png))
    width_mm = 160.0
    height_mm = width_mm * img.px_height / max(img.px_width, 1)
    if height_mm > 150.0:
        width_mm *= 150.0 / height_mm
    doc.add_picture(str(f.png), width=Mm(width_mm))
    pic = doc.paragraphs[-1]
    pic.alignment = WD_ALIGN_PARAGRAPH.CENTER
    pic.paragraph_format.keep_with_next = True
    rest = (f"{f.title}. " if f.title else "") + f.caption
    _caption(doc, f.label, rest.strip(), keep_with_next=False)


def _header_footer(doc: Any, d: m.Document) -> None:
    section = doc.sections[0]
    if d.banner:
        p = section.header.paragraphs[0]
        p.alignment = WD_ALIGN_PARAGRAPH.CENTER
        run = p.add_run(d.banner)
        run.bold = True
        run.font.size = Pt(8)
        run.font.color.rgb = WARN
    footer = section.footer
    first = footer.paragraphs[0]
    for i, line in enumerate(d.footer):
        p = first if i == 0 else footer.add_paragraph()
        p.paragraph_format.space_after = Pt(0)
        run = p.add_run(line)
        run.font.size = Pt(6.5)
        run.font.color.rgb = GREY
    p = footer.add_paragraph()
    p.alignment = WD_ALIGN_PARAGRAPH.RIGHT
    p.add_run("Page ").font.size = Pt(7)
    _field(p, " PAGE ", "1", size=7)
    p.add_run(" of ").font.size = Pt(7)
    _field(p, " NUMPAGES ", "1", size=7)


def _setup(doc: Any, d: m.Document) -> None:
    section = doc.sections[0]
    section.orientation = WD_ORIENT.PORTRAIT
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.left_margin = section.right_margin = Mm(18)
    section.top_margin, section.bottom_margin = Mm(20), Mm(22)
    styles = doc.styles
    normal = styles["Normal"]
    normal.font.size = Pt(10)
    for style_id, name, size in ((CELL_STYLE, "Spinereg Table Cell", CELL_PT),
                                 (NOTE_STYLE, "Spinereg Table Note", NOTE_PT)):
        st = styles.add_style(name, WD_STYLE_TYPE.PARAGRAPH)
        st.element.styleId = style_id
        st.base_style = normal
        st.font.size = Pt(size)
        st.paragraph_format.space_before = Pt(0)
        st.paragraph_format.space_after = Pt(0)
        st.paragraph_format.line_spacing = 1.0
    props = doc.core_properties
    props.title = d.title
    props.subject = d.subtitle
    props.author = "spinereg"
    props.comments = f"Generated by spinereg {__version__} from results.json"
    props.keywords = "STROBE; RECORD; spinereg"
    props.last_modified_by = "spinereg"
    stamp = dict(d.provenance).get("Results generated", "")
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        when = None
    if when is not None:
        props.created = props.modified = when
    props.revision = 1


def render_docx(doc: m.Document) -> bytes:
    """The document as DOCX bytes."""
    d = docx.Document()
    _setup(d, doc)
    _header_footer(d, doc)
    d.add_heading(doc.title, level=0)
    if doc.subtitle:
        d.add_paragraph(doc.subtitle, style="Subtitle")
    byline = d.add_paragraph()
    run = byline.add_run(doc.byline)
    run.italic = True
    run.font.size = Pt(8.5)
    for sec in doc.sections:
        d.add_heading(sec.title, level=1)
        for b in sec.blocks:
            if isinstance(b, m.Paragraph):
                p = d.add_paragraph()
                if b.lead:
                    p.add_run(b.lead + " ").bold = True
                p.add_run(b.text)
            elif isinstance(b, m.Heading):
                d.add_heading(b.text, level=2)
            elif isinstance(b, m.BulletList):
                for item in b.items:
                    _para_style(d.add_paragraph(item), BULLET_STYLE)
            elif isinstance(b, m.Table):
                _table(d, b)
            else:
                _figure(d, b)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()

"""The report as one self-contained HTML file.

Figures are embedded as ``data:`` URIs (the SVG drawing, else the PNG), the
style sheet is inline, and there is no script and no external resource (no
Content-Security-Policy is needed to show it, and none is broken).

Layout rules (checked in a browser by ``tests/report/test_layout_browser.py``):

* Tables never overflow the page: on a wide screen (72rem and more) a table
  may use up to 72rem, wider than the text column (at least the column's
  width, centred); a cell wraps only between the parts of a value (before an
  interval's parenthesis, after ``;``), never inside a number or an interval,
  and a table still too wide at that scrolls sideways inside its own box
  (``.scroll``), never the page.
* Figures fill the text column.  Tapping a figure enlarges it in place (a
  link to the figure's own ``:target`` box, pure CSS, so the page stays one
  self-contained file); the enlarged figure scrolls sideways inside its box.
* The flow diagram has a phone version (``figures/narrow/flow.svg``, 8.4 cm wide),
  chosen by a ``<picture>`` source at widths up to 40rem, so that its text
  stays about 12 px high on a 390 px screen.
* Print (``@media print``) is A4: running synthetic-data banner, page
  numbers and provenance in the page margins.
"""

from __future__ import annotations

import base64
import re
from html import escape
from pathlib import Path

from spinereg.report._model import Block, BulletList, Document, Figure, Heading, Paragraph, Row, Section, Table

__all__ = ["render_html"]

_SANS = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'

_CSS = """
:root { --ink: #1b1b1b; --muted: #555; --rule: #222; --warn: #a3001b; }
*, *::before, *::after { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body { margin: 0; color: var(--ink); background: #fff; overflow-wrap: break-word;
       font: 17px/1.55 Georgia, "Times New Roman", Times, serif; }
main { max-width: 54rem; margin: 0 auto; padding: 0.5rem 1rem 3rem; }
h1, h2, h3, nav, .byline, .caption, table, .notes, figcaption, .banner, footer, .subtitle,
.shrink { font-family: SANS; }
h1 { font-size: 1.7rem; line-height: 1.2; margin: 1.5rem 0 0.5rem; }
.subtitle { font-size: 1.05rem; color: var(--muted); margin: 0 0 0.5rem; font-style: italic; }
.byline { font-size: 0.85rem; color: var(--muted); margin: 0 0 1rem; }
h2 { font-size: 1.3rem; margin: 2.2rem 0 0.6rem; padding-bottom: 0.2rem; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.05rem; margin: 1.6rem 0 0.4rem; }
p, ul { margin: 0 0 0.8rem; }
.lead { font-weight: 700; }
.banner { position: sticky; top: 0; z-index: 10; margin: 0; padding: 0.45rem 1rem; background: var(--warn);
          color: #fff; font-size: 0.85rem; font-weight: 700; text-align: center; }
nav { font-size: 0.85rem; margin: 0 0 1rem; }
nav ul { list-style: none; padding: 0; margin: 0; display: flex; flex-wrap: wrap; gap: 0.3rem 1rem; }
nav a { color: #0645ad; }
.tbl { margin: 1.4rem 0; }
.caption { font-size: 0.9rem; margin: 0 0 0.35rem; }
.label { font-weight: 700; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; max-width: 100%; }
.scroll:focus { outline: 2px solid #0645ad; }
table { border-collapse: collapse; font-size: 0.82rem; line-height: 1.35; width: 100%; }
thead th { border-top: 2px solid var(--rule); border-bottom: 1px solid var(--rule); vertical-align: bottom;
           font-weight: 700; }
tbody tr:last-child > * { border-bottom: 2px solid var(--rule); }
th, td { padding: 0.28rem 0.5rem; text-align: right; vertical-align: top; }
tbody th { font-weight: 400; }
th.l, td.l { text-align: left; }
.nw { white-space: nowrap; }
th.c, td.c { text-align: center; }
thead th { white-space: normal; min-width: 3.2rem; }
tbody th:first-child { white-space: normal; min-width: 11rem; }
tr.group > th { font-weight: 700; padding-top: 0.55rem; text-align: left; white-space: normal; }
.i1 { padding-left: 1.4rem; }
.i2 { padding-left: 2.3rem; }
sup { font-size: 0.72em; line-height: 0; }
.notes { font-size: 0.78rem; color: #333; margin: 0.35rem 0 0; padding: 0; list-style: none; }
.notes li { margin: 0.1rem 0; }
figure { margin: 1.6rem 0; }
figure img { display: block; width: 100%; max-width: 46rem; height: auto; margin: 0 auto; }
.zoom { overflow-x: auto; -webkit-overflow-scrolling: touch; }
.zoom > a.enlarge { display: block; cursor: zoom-in; }
.zoom .shrink { display: none; font-size: 0.85rem; }
.zoom:target { outline: 1px solid #ccc; }
.zoom:target img { width: max(100%, 60rem); max-width: none; }
.zoom:target > a.enlarge { cursor: auto; }
.zoom:target .shrink { display: inline-block; position: sticky; left: 0; margin: 0.3rem 0; }
figcaption { font-size: 0.88rem; margin-top: 0.4rem; }
footer { font-size: 0.75rem; color: var(--muted); border-top: 1px solid #ccc; margin-top: 2.5rem; padding-top: 0.6rem;
         overflow-wrap: anywhere; }
footer p { margin: 0.1rem 0; }
@media screen and (min-width: 72rem) {
  .tbl { width: min(100vw - 4rem, 72rem); margin-left: calc(50% - min(100vw - 4rem, 72rem) / 2); }
  .tbl > .caption, .tbl > .notes { max-width: 52rem; margin-left: auto; margin-right: auto; }
  .tbl table { width: auto; min-width: min(100%, 52rem); margin: 0 auto; }
}
@media (max-width: 40rem) {
  body { font-size: 16px; }
  main { padding: 0.25rem 0.75rem 2rem; }
  h1 { font-size: 1.4rem; }
  table { font-size: 0.78rem; }
  tbody th:first-child { min-width: 8.5rem; }
}
@media print {
  @page { size: A4; margin: 20mm 16mm 22mm;
          @top-center { content: BANNER; color: #a3001b; font: 700 8pt SANS; }
          @bottom-left { content: FOOTER; font: 6.5pt SANS; color: #555; }
          @bottom-right { content: "Page " counter(page) " of " counter(pages); font: 7pt SANS; } }
  body { font-size: 10pt; line-height: 1.4; }
  main { max-width: none; padding: 0; }
  .banner { position: static; border: 1.5pt solid #a3001b; background: #fff; color: #a3001b; }
  nav { display: none; }
  .scroll, .zoom { overflow: visible; }
  .zoom .shrink { display: none !important; }
  .zoom:target img { width: 100%; max-width: 46rem; }
  th, td { white-space: normal; }
  table { font-size: 7.5pt; }
  tr, figure, .caption { break-inside: avoid; }
  h2, h3, .caption { break-after: avoid; }
  thead { display: table-header-group; }
  a { color: inherit; text-decoration: none; }
  h2 { border: 0; }
}
"""


def _css_string(text: str) -> str:
    """``text`` as a CSS string literal that cannot end the string or the ``<style>`` element."""
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ").replace("<", "\\3c ")
    return f'"{body}"'


_BREAK = re.compile(r"(?<=[;,]) | (?=\()")


def _keep_together(text: str) -> str:
    """``text`` as HTML whose parts are kept on one line (``<span class="nw">``), so that a value cell wraps
    only before ``(`` or after ``;`` / ``,``: "0.45" / "(0.24 to 0.67)", never inside a number or interval."""
    return " ".join(f'<span class="nw">{escape(p)}</span>' if " " in p else escape(p) for p in _BREAK.split(text))


def _cell(tag: str, text: str, mark: str, cls: str, extra: str = "", *, value: bool = False) -> str:
    sup = f"<sup>{escape(mark)}</sup>" if mark else ""
    c = f' class="{cls}"' if cls else ""
    return f"<{tag}{c}{extra}>{_keep_together(text) if value else escape(text)}{sup}</{tag}>"


def _align_class(table: Table, i: int) -> str:
    return {"left": "l", "center": "c", "right": ""}[table.column_align(i)]


def _row(table: Table, row: Row) -> str:
    if row.kind == "group":
        span = f' colspan="{len(table.header)}" scope="rowgroup"'
        return f'<tr class="group">{_cell("th", row.cells[0], row.mark(0), "", span)}</tr>'
    out = []
    for i, text in enumerate(row.cells):
        cls = " ".join(x for x in (_align_class(table, i), f"i{min(row.indent, 2)}" if i == 0 and row.indent
                                   else "") if x)
        tag = "th" if i == 0 else "td"
        out.append(_cell(tag, text, row.mark(i), cls, ' scope="row"' if i == 0 else "", value=i > 0))
    return "<tr>" + "".join(out) + "</tr>"


def _table(t: Table) -> str:
    cap_id = f"{t.id}-caption"
    head = "".join(_cell("th", h, "", _align_class(t, i), ' scope="col"') for i, h in enumerate(t.header))
    body = "\n".join(_row(t, r) for r in t.rows)
    notes = ""
    if t.footnotes:
        items = "".join(f"<li>{f'<sup>{escape(f.mark)}</sup> ' if f.mark else ''}{escape(f.text)}</li>"
                        for f in t.footnotes)
        notes = f'<ul class="notes">{items}</ul>'
    return (f'<div class="tbl" id="{escape(t.id)}">\n'
            f'<p class="caption" id="{escape(cap_id)}"><span class="label">{escape(t.label)}.</span> '
            f'{escape(t.caption)}</p>\n'
            f'<div class="scroll" role="region" tabindex="0" aria-labelledby="{escape(cap_id)}">\n'
            f'<table aria-labelledby="{escape(cap_id)}">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n'
            f"</table>\n</div>\n{notes}</div>")


def _data_uri(path: Path) -> str:
    kind = "svg+xml" if path.suffix == ".svg" else "png"
    return f"data:image/{kind};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _figure(f: Figure) -> str:
    uri = _data_uri(f.svg if f.svg.is_file() else f.png)
    narrow = f.svg.parent / "narrow" / f.svg.name
    source = (f'<source media="(max-width: 40rem)" srcset="{_data_uri(narrow)}" type="image/svg+xml">'
              if narrow.is_file() else "")
    caption = f"{f.title}." if f.title else ""
    if f.caption:
        caption += f" {f.caption}"
    zoom = f"figure-{f.id}-full"
    return (f'<figure id="figure-{escape(f.id)}">\n<div class="zoom" id="{escape(zoom)}">'
            f'<a class="enlarge" href="#{escape(zoom)}" aria-label="{escape(f.label)}: enlarge">'
            f'<picture>{source}<img src="{uri}" alt="{escape(f.label)}: {escape(f.title)}"></picture></a>'
            f'<a class="shrink" href="#figure-{escape(f.id)}">Back to normal size</a></div>\n'
            f'<figcaption><span class="label">{escape(f.label)}.</span> {escape(caption.strip())}'
            f"</figcaption>\n</figure>")


def _block(b: Block) -> str:
    if isinstance(b, Paragraph):
        lead = f'<span class="lead">{escape(b.lead)}</span> ' if b.lead else ""
        return f"<p>{lead}{escape(b.text)}</p>"
    if isinstance(b, Heading):
        return f"<h3>{escape(b.text)}</h3>"
    if isinstance(b, BulletList):
        return "<ul>" + "".join(f"<li>{escape(i)}</li>" for i in b.items) + "</ul>"
    if isinstance(b, Table):
        return _table(b)
    return _figure(b)


def _section(s: Section) -> str:
    body = "\n".join(_block(b) for b in s.blocks)
    return f'<section id="{escape(s.id)}">\n<h2>{escape(s.title)}</h2>\n{body}\n</section>'


def render_html(doc: Document) -> str:
    """The document as one self-contained HTML page (UTF-8 text)."""
    banner_css = _css_string(doc.banner) if doc.banner else "none"
    css = (_CSS.replace("SANS", _SANS).replace("BANNER", banner_css)
           .replace("FOOTER", _css_string(" \u00b7 ".join(doc.footer[:1])) if doc.footer else "none"))
    banner = f'<p class="banner" role="note">{escape(doc.banner)}</p>\n' if doc.banner else ""
    nav = "".join(f'<li><a href="#{escape(s.id)}">{escape(s.title)}</a></li>' for s in doc.sections)
    footer = "".join(f"<p>{escape(line)}</p>" for line in doc.footer)
    sections = "\n".join(_section(s) for s in doc.sections)
    subtitle = f'<p class="subtitle">{escape(doc.subtitle)}</p>\n' if doc.subtitle else ""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<meta name="generator" content="spinereg">\n'
            f"<title>{escape(doc.title)}</title>\n<style>{css}</style>\n</head>\n<body>\n{banner}<main>\n"
            f"<header>\n<h1>{escape(doc.title)}</h1>\n{subtitle}"
            f'<p class="byline">{escape(doc.byline)}</p>\n</header>\n'
            f'<nav aria-label="Contents"><ul>{nav}</ul></nav>\n{sections}\n'
            f'<footer class="provenance">{footer}</footer>\n</main>\n</body>\n</html>\n')

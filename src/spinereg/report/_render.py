"""``render_report``: results.json -> figures, document model, report files."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from spinereg._errors import SpineregError
from spinereg.report._build import build_document, load_results
from spinereg.report._context import suppression_of
from spinereg.report._docx import render_docx
from spinereg.report._format import style_of, use_style
from spinereg.report._html import render_html
from spinereg.report._model import Document
from spinereg.report._pdf import render_pdf
from spinereg.report._strobe import checklist_csv

__all__ = ["FORMATS", "render_report", "write_atomic"]

#: The report formats, in the order they are written.
FORMATS: tuple[str, ...] = ("html", "pdf", "docx")

_RENDERERS: dict[str, Callable[[Document], str | bytes]] = {
    "html": render_html,
    "pdf": render_pdf,
    "docx": render_docx,
}


def write_atomic(path: Path, content: str | bytes) -> Path:
    """Write ``content`` to ``path`` under a temporary name, then rename it into place.

    A reader never sees a half-written file, and a failed write leaves any
    earlier file untouched.
    """
    tmp = path.with_name(f".{path.name}.partial")
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _formats(formats: Sequence[str]) -> list[str]:
    requested = [formats] if isinstance(formats, str) else list(formats)
    unknown = [f for f in requested if f not in _RENDERERS]
    if unknown:
        raise SpineregError(f"unknown report format(s) {', '.join(map(repr, unknown))}; choose from "
                            f"{', '.join(FORMATS)}")
    if not requested:
        raise SpineregError(f"no report format requested; choose from {', '.join(FORMATS)}")
    return list(dict.fromkeys(requested))


def render_report(results: Mapping[str, Any] | str | Path, out_dir: str | Path,
                  formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write the study report from ``results.json``.

    Parameters
    ----------
    results : Mapping or str or Path
        The content of ``results.json``, or the path of the file.
    out_dir : str or Path
        Created if needed.  Receives ``report.html``, ``report.pdf``,
        ``report.docx`` (those requested) and ``figures/``.
    formats : sequence of str
        Any of ``"html"``, ``"pdf"``, ``"docx"``.

    Returns
    -------
    list of Path
        The report files written, in the order of ``formats``.

    Raises
    ------
    SpineregError
        An unknown or empty ``formats`` (checked before anything is written),
        ``results`` is not a readable spinereg results file, or ``out_dir``
        cannot be created or written.

    Notes
    -----
    Every number comes from ``results`` (nothing is recomputed) and is
    formatted once, in the format-neutral document (:func:`build_document`),
    so the three formats show the same text.  Figures are drawn by
    ``make_figures`` into ``out_dir/figures``.  Each report file is written
    atomically (temporary name, then rename).
    """
    fmts = _formats(formats)
    data = load_results(results)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpineregError(f"{out}: cannot create the report directory: {exc.strerror or exc}") from None
    from spinereg.report._figures import make_figures  # matplotlib: imported only when a report is drawn

    spec = (data.get("study") or {}).get("spec") or {}
    with use_style(style_of((spec.get("report") or {}).get("style") if isinstance(spec, Mapping) else None)):
        figures = make_figures(data, out / "figures", suppression=suppression_of(data))
    doc = build_document(data, figures)
    written = []
    for f in fmts:
        path = out / f"report.{f}"
        try:
            written.append(write_atomic(path, _RENDERERS[f](doc)))
        except OSError as exc:
            raise SpineregError(f"{path}: cannot write the report: {exc.strerror or exc}") from None
    try:  # the STROBE/RECORD checklist, with the sections of this report that answer each item
        write_atomic(out / "strobe_record_checklist.csv", checklist_csv(doc))
    except OSError as exc:
        raise SpineregError(f"{out}: cannot write the checklist: {exc.strerror or exc}") from None
    return written

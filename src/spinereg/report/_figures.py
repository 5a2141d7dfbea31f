"""Figures of the study report, drawn from ``results.json`` alone.

:func:`make_figures` writes, in report order,

1. ``flow``: the cohort flow diagram (always drawn);
2. ``trajectory_<outcome>``: the mean of each outcome over the patients who
   answered both baseline and a follow-up time point (one line per pair of
   time points: the same patients at both ends), beside the unjoined mean of
   everyone who answered at each time point with its confidence interval;
3. ``individual_<outcome>``: each patient's own scores across the time
   points, with a cross at the death of each patient who died during
   follow-up (when ``results.json`` holds the ``deaths`` table);
4. ``leak_types``: cement leaks per treated level and per patient, in two
   panels: by mechanism (Yeom et al. 2003) and by location;
5. ``survival``: the Kaplan-Meier curve with its confidence band, censoring
   marks and the numbers at risk, cut where fewer than 10% of the patients
   remain at risk (:func:`km_cut`).

Every time axis labels each time point with its n (and the deaths before
answering); outcome axes span the instrument's whole scale (the EQ-5D index
from the value set's worst state to 1, ODI and EQ VAS 0-100, NRS 0-10).

A figure whose data are absent or empty is left out (the flow diagram is
always drawn).  Each figure is saved as SVG (text kept as text, so it can be
searched and restyled), as a :data:`DPI` (300) dpi PNG and as a vector PDF.
The flow diagram is also drawn 8.4 cm wide (``narrow/flow.svg``) for the
HTML report on a phone.  When the data are synthetic, every figure carries a
"SYNTHETIC DATA" band above the drawing (and in the PNG's and PDF's
metadata).

Rules
-----
* Nothing is estimated here: every number drawn as text is a value of
  ``results.json`` formatted by :mod:`spinereg.report._format` (with
  small-cell suppression); only plot positions are computed.
* One style for every figure: the Okabe-Ito colour-blind-safe palette, no top
  or right spines, DejaVu Sans at 8-9 pt, 16 cm wide.  The style is applied
  with :func:`matplotlib.rc_context` on :class:`~matplotlib.figure.Figure`
  objects (no pyplot, no global rcParams change, no backend switch).
* Layout is computed here, in centimetres, from measured text widths (no
  constrained layout: it costs a full extra draw per file).
* Reproducible: the same results give byte-identical SVG and PDF files (no
  dates, fixed SVG hash salt).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import matplotlib
import numpy as np
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import FancyBboxPatch, Patch
from matplotlib.textpath import TextToPath
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator
from matplotlib.transforms import blended_transform_factory
from matplotlib.typing import RcKeyType

from spinereg.report._format import (
    Suppression,
    fmt_count,
    fmt_median_ci,
    fmt_num,
    fmt_proportion,
    is_missing,
    reader_note,
)
from spinereg.report._suppress import flow_steps, individual_withheld, require_baseline_of, survival_withheld

__all__ = ["DPI", "KM_MIN_AT_RISK", "OKABE_ITO", "SYNTHETIC_MARK", "FigureFile", "km_cut", "make_figures"]

#: Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
#: Resolution of the PNG files (used in the Word report): journals ask for at least 300 dpi.
DPI = 300
#: The Kaplan-Meier curve is drawn while at least this fraction of the patients is at risk.
KM_MIN_AT_RISK = 0.10
#: Text of the band above every figure drawn from synthetic data.
SYNTHETIC_MARK = "SYNTHETIC DATA \u2013 simulated patients, not real people"
_WARN = "#A3001B"
_BAND = 0.5  # cm: height of the synthetic-data band
_NARROW = 8.4  # cm: width of the phone version of the flow diagram

_INK = "#222222"
_GREY = "#8C8C8C"
_MAIN = OKABE_ITO["blue"]
_SECOND = OKABE_ITO["orange"]
_BOX_FACE = "#E6F0F7"
_SIDE_FACE = "#F4F4F4"
_DEATH = OKABE_ITO["vermillion"]
_BAND_FACE = "#D1E6F1"  # _MAIN at 18% on white, opaque: every SVG reader draws it alike

_CM_PER_INCH = 2.54
_PT = _CM_PER_INCH / 72  # cm per point
_WIDTH = 16.0  # cm, full text width
_FONT = 9.0  # labels
_SMALL = 8.0  # tick labels, legends, annotations, box text
_LINE = 1.2  # line height as a multiple of the font size
_TICK = 3.0  # tick length, points
_TICK_PAD = 3.5  # tick to label, points
_LABEL_PAD = 4.0  # tick labels to axis label, points
_EDGE = 0.15  # free margin at the figure's edge, cm
_LEGEND = 0.75  # room for a one-row legend above the axes, cm

_RC: dict[RcKeyType, Any] = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": _FONT,
    "axes.labelsize": _FONT,
    "axes.titlesize": _FONT,
    "xtick.labelsize": _SMALL,
    "ytick.labelsize": _SMALL,
    "legend.fontsize": _SMALL,
    "text.color": _INK,
    "axes.edgecolor": _INK,
    "axes.labelcolor": _INK,
    "xtick.color": _INK,
    "ytick.color": _INK,
    "axes.linewidth": 0.8,
    "xtick.major.width": 0.8,
    "ytick.major.width": 0.8,
    "xtick.major.size": _TICK,
    "ytick.major.size": _TICK,
    "xtick.major.pad": _TICK_PAD,
    "ytick.major.pad": _TICK_PAD,
    "axes.labelpad": _LABEL_PAD,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "axes.unicode_minus": True,
    "text.parse_math": False,  # labels and reasons are plain text, "$" included
    "axes.prop_cycle": cycler(color=[OKABE_ITO[k] for k in ("blue", "orange", "bluish_green", "vermillion",
                                                             "reddish_purple", "sky_blue", "yellow", "black")]),
    "lines.linewidth": 1.2,
    "legend.frameon": False,
    "figure.dpi": 100.0,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.dpi": DPI,
    "svg.fonttype": "none",
    "svg.hashsalt": "spinereg-report-figures",
    "pdf.fonttype": 42,
}


@dataclass(frozen=True)
class FigureFile:
    """One figure of the report, written to disk.

    Attributes
    ----------
    id : str
        ``"flow"``, ``"trajectory_<outcome>"``, ``"individual_<outcome>"``,
        ``"leak_types"`` or ``"survival"``; also the files' stem.
    title : str
        A short title, e.g. ``"Mean EQ-5D-3L index over time"``.
    caption : str
        A short caption (at most about two printed lines): what is shown,
        the confidence level, the numbers of patients; the methods section
        says how missing answers are handled.
    svg : Path
        The vector figure (text kept as text).
    png : Path
        The raster figure at :data:`DPI` dots per inch (for Word).
    pdf : Path or None
        The vector figure as PDF (``None`` only when ``pdf=False`` was asked).
    """

    id: str
    title: str
    caption: str
    svg: Path
    png: Path
    pdf: Path | None = None


class _Drawn(NamedTuple):
    fig: Figure
    id: str
    title: str
    caption: str
    narrow: Figure | None = None  # the phone version (flow diagram), saved as narrow/<id>.svg


def make_figures(results: Mapping[str, Any], out_dir: Path, *, suppression: Suppression,
                 pdf: bool = True) -> list[FigureFile]:
    """Draw the report's figures from a study's results and write them to ``out_dir``.

    Parameters
    ----------
    results : Mapping
        The content of ``results.json`` (``StudyResult.to_dict()``).
    out_dir : Path
        Where to write ``<id>.svg``, ``<id>.png`` and ``<id>.pdf``; created
        when absent.  Existing files of the same names are replaced.
    suppression : Suppression
        Small-cell suppression of the counts drawn as text.
    pdf : bool
        Write each figure as PDF too (the default; ``False`` saves time in tests).

    Returns
    -------
    list of FigureFile
        The figures in report order: the flow diagram, per outcome the mean
        trajectory and the individual trajectories, the leak types and the
        survival curve.  Figures without data are left out.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    study = _Study(results, suppression)
    files: list[FigureFile] = []
    with matplotlib.rc_context(_RC):
        for drawn in _draw_all(study):
            if drawn is not None:
                files.append(_save(drawn, out, pdf=pdf, synthetic=study.synthetic))
    return files


def _draw_all(study: _Study) -> Iterator[_Drawn | None]:
    """The figures in report order, one at a time (``None`` for a figure without data)."""
    yield _flow(study)
    for oc in study.outcomes:
        yield _trajectory(study, oc)
        yield _individual(study, oc)
    yield _leak_types(study)
    yield _survival(study)


def _mark_synthetic(fig: Figure) -> None:
    """Add a band of :data:`_BAND` cm above the drawing with :data:`SYNTHETIC_MARK` in it.

    The figure grows by the band; every axes keeps its size and place
    relative to the figure's bottom, so nothing drawn moves or is covered.
    """
    w, h = (float(v) * _CM_PER_INCH for v in fig.get_size_inches())
    k = h / (h + _BAND)
    boxes = [(ax, ax.get_position()) for ax in fig.axes]
    fig.set_size_inches(w / _CM_PER_INCH, (h + _BAND) / _CM_PER_INCH)
    for ax, b in boxes:
        ax.set_position((b.x0, b.y0 * k, b.width, b.height * k))
    size = min(_SMALL, _SMALL * (w - 2 * _EDGE) / _text_cm(SYNTHETIC_MARK, _SMALL, bold=True))  # fits a narrow figure
    fig.text(1.0 - _EDGE / w, 1.0 - 0.5 * _BAND / (h + _BAND), SYNTHETIC_MARK, ha="right", va="center_baseline",
             fontsize=size, fontweight="bold", color=_WARN, gid="synthetic-mark")


def _save(drawn: _Drawn, out: Path, *, pdf: bool, synthetic: bool) -> FigureFile:
    stem = out / drawn.id
    svg, png = stem.with_suffix(".svg"), stem.with_suffix(".png")
    note = {"Description": SYNTHETIC_MARK} if synthetic else {}
    for fig in (drawn.fig, drawn.narrow):
        if synthetic and fig is not None:
            _mark_synthetic(fig)
    drawn.fig.savefig(svg, format="svg", metadata={"Date": None, "Title": drawn.title, **note})
    if drawn.narrow is not None:
        (out / "narrow").mkdir(exist_ok=True)
        drawn.narrow.savefig(out / "narrow" / f"{drawn.id}.svg", format="svg",
                             metadata={"Date": None, "Title": drawn.title, **note})
    _write_png(drawn.fig, png, drawn.title, SYNTHETIC_MARK if synthetic else "")
    pdf_path = None
    if pdf:
        pdf_path = _svg_to_pdf(svg, stem.with_suffix(".pdf"), drawn.title, SYNTHETIC_MARK if synthetic else "")
    return FigureFile(drawn.id, drawn.title, drawn.caption, svg, png, pdf_path)


def _svg_to_pdf(svg: Path, path: Path, title: str, mark: str) -> Path:
    """The SVG drawn as a one-page vector PDF with reportlab (svglib), fonts embedded as TrueType subsets.

    The same drawing the report's PDF shows; about six times faster than
    matplotlib's own PDF backend, whose font subsetting re-reads the font
    file for every figure.  Reproducible (reportlab's invariant mode).
    """
    import logging

    from reportlab.graphics import renderPDF
    from reportlab.pdfgen.canvas import Canvas
    from svglib.svglib import svg2rlg

    from spinereg.report._pdf import sans_font

    font = sans_font()  # registers DejaVu Sans with svglib: the SVG's text is drawn with it
    log = logging.getLogger("svglib")
    level = log.level
    log.setLevel(logging.ERROR)  # svglib logs each SVG feature it ignores (unused clip paths)
    try:
        drawing = svg2rlg(str(svg))
    finally:
        log.setLevel(level)
    if drawing is None:
        raise RuntimeError(f"{svg}: svglib could not read the figure")
    drawing.initialFontName = font
    canvas = Canvas(str(path), pagesize=(drawing.width, drawing.height), invariant=1, initialFontName=font)
    canvas.setTitle(title)
    canvas.setAuthor("spinereg")
    if mark:
        canvas.setSubject(mark)
    renderPDF.draw(drawing, canvas, 0, 0)
    canvas.showPage()
    canvas.save()
    return path


def _write_png(fig: Figure, path: Path, title: str, mark: str) -> None:
    """Rasterise ``fig`` at :data:`DPI` with Agg and write it as an opaque RGB PNG with Pillow.

    RGB rather than RGBA keeps the files small; the physical resolution is
    recorded (``pHYs``) so that Word places the image at its true width; the
    title and the synthetic-data mark go into ``tEXt`` chunks.
    """
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    dpi = fig.dpi
    fig.set_dpi(DPI)
    try:
        canvas: Any = FigureCanvasAgg(fig)  # Any: backend_agg's methods carry no annotations
        canvas.draw()
        rgba = np.asarray(canvas.buffer_rgba())
    finally:
        fig.set_dpi(dpi)
    info = PngInfo()
    info.add_text("Title", title)
    if mark:
        info.add_text("Description", mark)
    Image.fromarray(np.ascontiguousarray(rgba[:, :, :3])).save(path, format="PNG", dpi=(DPI, DPI),
                                                                compress_level=6, pnginfo=info)


# --------------------------------------------------------------------------- values


def _num(x: Any) -> float | None:
    """``x`` as a finite float, ``None`` when missing or not a number."""
    if is_missing(x):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _nan(x: Any) -> float:
    v = _num(x)
    return math.nan if v is None else v


def _safe_id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name)


def _counted(n: Any, noun: str, sup: Suppression) -> str:
    """``"26 patients"``, ``"1 patient"``, ``"<5 patients"``."""
    text = fmt_count(n, sup)
    return f"{text} {noun}" if text == "1" else f"{text} {noun}s"


def _level_text(conf_level: Any) -> str:
    """``0.95`` -> ``"95%"``."""
    v = _num(conf_level)
    if v is None:
        return "95%"
    s = fmt_num(100.0 * v, 1)
    return (s[:-2] if s.endswith(".0") else s) + "%"


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _suppression_note(sup: Suppression) -> str:
    return f" Counts from 1 to {sup.threshold - 1} are shown as <{sup.threshold}." if sup.on else ""


# --------------------------------------------------------------------------- layout

_TEXT = TextToPath()


def _text_cm(text: str, size: float, *, bold: bool = False) -> float:
    """Width in cm of ``text`` (its widest line) in the report font, without a renderer."""
    prop = FontProperties(family="sans-serif", size=size, weight="bold" if bold else "normal")
    return max(_TEXT.get_text_width_height_descent(line, prop, ismath=False)[0] for line in text.split("\n")) * _PT


def _lines_cm(n_lines: int, size: float) -> float:
    return n_lines * size * _LINE * _PT


def _wrap(text: str, width_cm: float, size: float, *, bold: bool = False) -> list[str]:
    """Greedy word wrap to ``width_cm`` by measured width."""
    lines: list[str] = []
    for word in text.split():
        if lines and _text_cm(f"{lines[-1]} {word}", size, bold=bold) <= width_cm:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def _new_figure(height_cm: float, width_cm: float = _WIDTH) -> Figure:
    fig = Figure(figsize=(width_cm / _CM_PER_INCH, height_cm / _CM_PER_INCH))
    FigureCanvasAgg(fig)
    return fig


def _place(fig: Figure, ax: Axes, *, left: float, bottom: float, right: float, top: float) -> None:
    """Put ``ax`` in ``fig`` with these margins (cm)."""
    w, h = (float(v) * _CM_PER_INCH for v in fig.get_size_inches())
    ax.set_position((left / w, bottom / h, max(w - left - right, 1.0) / w, max(h - bottom - top, 1.0) / h))


def _tick_texts(ax: Axes, axis: str) -> list[str]:
    """The tick labels ``ax`` will draw on ``axis`` for its current limits."""
    a = ax.yaxis if axis == "y" else ax.xaxis
    lo, hi = sorted(ax.get_ylim() if axis == "y" else ax.get_xlim())
    tol = 1e-9 * (hi - lo)
    locs = list(a.get_majorticklocs())
    labels = a.get_major_formatter().format_ticks(locs)
    return [str(text) for loc, text in zip(locs, labels, strict=True) if lo - tol <= loc <= hi + tol]


def _left_margin(ax: Axes) -> float:
    """cm needed left of ``ax`` for its y tick labels and y label."""
    ticks = _tick_texts(ax, "y")
    tick_w = max((_text_cm(t, _SMALL) for t in ticks), default=0.0)
    label = ax.get_ylabel()
    label_w = _lines_cm(label.count("\n") + 1, _FONT) + _LABEL_PAD * _PT if label else 0.0
    return _EDGE + label_w + tick_w + (_TICK + _TICK_PAD) * _PT


def _bottom_margin(ax: Axes) -> float:
    """cm needed under ``ax`` for its x tick labels and x label."""
    ticks = _tick_texts(ax, "x")
    lines = max((t.count("\n") + 1 for t in ticks), default=0)
    label = ax.get_xlabel()
    label_h = _lines_cm(label.count("\n") + 1, _FONT) + _LABEL_PAD * _PT if label else 0.0
    return _EDGE + label_h + _lines_cm(lines, _SMALL) + (_TICK + _TICK_PAD) * _PT


def _percent_axis(ax: Axes, axis: str, ticks: Sequence[float]) -> None:
    """Fixed ticks on a 0..1 proportion axis, shown as percentages (formatted by :func:`fmt_num`)."""
    step = min((b - a for a, b in itertools.pairwise(ticks)), default=1.0)
    digits = max(0, min(3, math.ceil(-math.log10(100.0 * step) - 1e-9))) if step > 0 else 0
    a = ax.xaxis if axis == "x" else ax.yaxis
    a.set_major_locator(FixedLocator(list(ticks)))
    a.set_major_formatter(FuncFormatter(lambda v, _pos: fmt_num(100.0 * v, digits) + "%"))


# --------------------------------------------------------------------------- the results


def _scale(value: Any) -> tuple[float, float] | None:
    """An outcome's ``scale`` from results.json ([lowest, highest]); ``None`` when absent or malformed."""
    if isinstance(value, list | tuple) and len(value) == 2:
        lo, hi = _num(value[0]), _num(value[1])
        if lo is not None and hi is not None and lo < hi:
            return (lo, hi)
    return None


@dataclass(frozen=True)
class _Outcome:
    name: str
    label: str
    higher_is_better: bool | None
    instrument: str = ""
    valueset: str = ""
    #: The score's whole scale from ``results.json`` (outcome ``scale``), or ``None`` when not known.
    scale: tuple[float, float] | None = None

    @property
    def axis_label(self) -> str:
        if self.higher_is_better is None:
            return self.label
        return f"{self.label}\n({'higher' if self.higher_is_better else 'lower'} is better)"

    @property
    def better(self) -> str:
        if self.higher_is_better is None:
            return ""
        return f" {'Higher' if self.higher_is_better else 'Lower'} scores are better."


class _Study:
    """The parts of ``results.json`` the figures read, with tolerant access."""

    def __init__(self, results: Mapping[str, Any], sup: Suppression) -> None:
        self.results = results
        self.sup = sup
        tables = results.get("tables") or {}
        self.tables: Mapping[str, Any] = tables if isinstance(tables, Mapping) else {}
        settings = results.get("settings") or {}
        self.level = _level_text(settings.get("conf_level"))
        self.outcomes = [
            _Outcome(str(o["name"]), str(o.get("label") or o["name"]),
                     o.get("higher_is_better") if isinstance(o.get("higher_is_better"), bool) else None,
                     str(o.get("instrument") or ""), str(o.get("valueset") or ""), _scale(o.get("scale")))
            for o in results.get("outcomes") or [] if o.get("name") is not None]
        self.timepoints: list[Mapping[str, Any]] = list(results.get("timepoints") or [])
        data = results.get("data") or {}
        self.synthetic = bool(data.get("synthetic")) if isinstance(data, Mapping) else False

    def died_before(self) -> dict[str, Any]:
        """Deaths before answering, by time point (``follow_up`` table)."""
        return {str(r.get("timepoint")): r.get("died_before_answering") for r in self.table("follow_up")}

    def tick_labels(self, positions: Mapping[str, float], rows: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
        """``"3m\nn = 12\n7 died"``: the time point, its n and the deaths before answering."""
        died = self.died_before()
        out = {}
        for name in positions:
            lines = [name]
            if name in rows:
                lines.append(f"n = {fmt_count(rows[name].get('n'), self.sup)}")
            d = _num(died.get(name))
            if d is not None and d > 0:
                lines.append(f"{fmt_count(died.get(name), self.sup)} died")
            out[name] = "\n".join(lines)
        return out

    def table(self, name: str) -> list[Mapping[str, Any]]:
        rows = self.tables.get(name)
        return [r for r in rows if isinstance(r, Mapping)] if isinstance(rows, list) else []

    def summary(self, oc: _Outcome) -> dict[str, Mapping[str, Any]]:
        """``outcome_summary`` rows of ``oc`` by time point."""
        return {str(r.get("timepoint")): r for r in self.table("outcome_summary") if r.get("outcome") == oc.name}

    def positions(self, extra: Sequence[str]) -> tuple[dict[str, float], bool]:
        """x position of each time point: its target day when every target is known and distinct.

        Returns the positions (in report order; time points named only in the
        tables come last) and whether they are target days (otherwise 0, 1, 2...).
        """
        names = [str(t.get("name")) for t in self.timepoints]
        names += [n for n in dict.fromkeys(extra) if n not in names]
        targets = {str(t.get("name")): _num(t.get("target")) for t in self.timepoints}
        days = [targets.get(n) for n in names]
        if names and all(d is not None for d in days) and len(set(days)) == len(days):
            return {n: float(d) for n, d in zip(names, days, strict=True) if d is not None}, True
        return {n: float(i) for i, n in enumerate(names)}, False


def _time_axis(ax: Axes, positions: Mapping[str, float], labels: Mapping[str, str], by_day: bool) -> None:
    xs = list(positions.values())
    ax.xaxis.set_major_locator(FixedLocator(xs))
    ax.set_xticklabels([labels.get(n, n) for n in positions])
    lo, hi = min(xs), max(xs)
    pad = 0.08 * (hi - lo) if hi > lo else 1.0
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_xlabel("Time point, placed at its target day after the operation" if by_day else "Time point")


# --------------------------------------------------------------------------- 1. flow diagram

_STEP_LABELS = {
    "registry": "Registry extract",
    "procedure": "Study procedure",
    "indication": "Study indication or diagnosis",
    "period": "Operated in the study period",
    "age": "Age in the study's range",
    "first per patient": "First operation per patient",
    "baseline": "Baseline questionnaire answered",
}

_Line = tuple[str, bool, str | None]  # text, bold, SVG id


def _step_label(step: Any) -> str:
    s = str(step or "").strip()
    return _STEP_LABELS.get(s, s[:1].upper() + s[1:] if s else "Selection step")


def _steps_label(steps: Sequence[str]) -> str:
    """One label for selection steps shown together: ``"First operation per patient and baseline ..."``."""
    labels = [_step_label(x) for x in steps]
    return _join([labels[0], *(t[:1].lower() + t[1:] for t in labels[1:])])


def _flow(study: _Study) -> _Drawn:
    """The flow diagram, 16 cm wide for print and 8.4 cm wide (``narrow``) for a phone screen."""
    wide = _flow_figure(study, narrow=False)
    sup = study.sup
    rows = flow_steps(study.table("flow"), sup, require_baseline=require_baseline_of(study.results))
    caption = ("Operations and patients from the registry extract to the study cohort; side boxes: the operations "
               "excluded at each step, and why." + _suppression_note(sup))
    if any(r.merged for r in rows):
        caption += f" Steps excluding fewer than {sup.threshold} are shown together with the next step."
    if any(r.excluded_hidden for r in rows):
        caption += f" An exclusion is withheld where fewer than {sup.threshold} operations remain."
    return _Drawn(wide, "flow", "Cohort flow", caption, _flow_figure(study, narrow=True))


def _flow_figure(study: _Study, *, narrow: bool) -> Figure:
    """A vertical chain of boxes (what remains after each step) with side boxes (what each step excluded).

    Wide: the chain on the left half, the side boxes on the right half.
    Narrow: the chain across the whole width, its arrows near the left edge,
    the side boxes in the gaps between the chain's boxes.
    """
    sup = study.sup
    rows = flow_steps(study.table("flow"), sup, require_baseline=require_baseline_of(study.results))
    line = _lines_cm(1, _SMALL)
    pad, gap_pad, min_gap = 0.14, 0.16, 0.7
    width = _NARROW if narrow else _WIDTH
    if narrow:
        main_x0, main_w = 0.2, width - 0.4
        cx = main_x0 + 0.5
        side_x0 = cx + 0.6
        side_w = width - side_x0 - 0.2
    else:
        main_x0, main_w = 0.2, 7.4
        side_x0, side_w = 8.7, width - 8.7 - 0.2
        cx = main_x0 + main_w / 2
    inner_main, inner_side = main_w - 2 * pad, side_w - 2 * pad

    def wrapped(text: str, width: float, bold: bool, gid: str | None = None) -> list[_Line]:
        parts = _wrap(text, width, _SMALL, bold=bold)
        return [(t, bold, gid if k == 0 else None) for k, t in enumerate(parts)]

    data = study.results.get("data") or {}
    main: list[list[_Line]] = []
    side: list[list[_Line]] = []
    for i, r in enumerate(rows):
        last = i == len(rows) - 1 and i > 0
        lines = wrapped("Study cohort", inner_main, True) if last else []
        lines += wrapped(_steps_label(r.steps), inner_main, not last)
        counts = (f"{_counted(r.n_operations, 'operation', sup)} in "
                  f"{_counted(r.n_patients, 'patient', sup)}")
        lines += wrapped(counts, inner_main, False, f"flow-count-{i}")
        if i == 0 and data.get("name"):
            src = str(data["name"]) + (f", extract {data['extract_date']}" if data.get("extract_date") else "")
            lines += wrapped(src, inner_main, False)
        main.append(lines)
        excluded: list[_Line] = []
        if i > 0:
            what = "number withheld" if r.excluded_hidden else _counted(r.excluded, "operation", sup)
            excluded = wrapped(f"Excluded: {what}", inner_side, True, f"flow-excluded-{i}")
            for reason in r.reasons:
                excluded += wrapped(reason, inner_side, False)
        side.append(excluded)
    if not rows:
        main, side = [wrapped("Cohort flow not recorded in the results", inner_main, True)], [[]]

    def height(lines: Sequence[_Line]) -> float:
        return len(lines) * line + 2 * pad

    gaps = [0.0] + [max(height(s) + 2 * gap_pad, min_gap) for s in side[1:]]
    total = 2 * _EDGE + sum(height(m) for m in main) + sum(gaps)
    fig = _new_figure(total, width)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0, width)
    ax.set_ylim(total, 0)
    ax.axis("off")

    def box(x0: float, y0: float, w: float, lines: Sequence[_Line], *, centred: bool, face: str, edge: str,
            lw: float) -> float:
        h = height(lines)
        ax.add_patch(FancyBboxPatch((x0, y0), w, h, boxstyle="round,pad=0,rounding_size=0.12", facecolor=face,
                                    edgecolor=edge, linewidth=lw, clip_on=False))
        for k, (text, bold, gid) in enumerate(lines):
            ax.text(x0 + w / 2 if centred else x0 + pad, y0 + pad + (k + 0.5) * line, text, fontsize=_SMALL,
                    fontweight="bold" if bold else "normal", ha="center" if centred else "left",
                    va="center_baseline", gid=gid)
        return h

    arrow = {"arrowstyle": "-|>", "color": _INK, "lw": 0.8, "shrinkA": 0, "shrinkB": 0, "mutation_scale": 8}
    y = _EDGE
    for i, lines in enumerate(main):
        if i > 0:
            mid = y + gaps[i] / 2
            ax.annotate("", xy=(cx, y + gaps[i]), xytext=(cx, y), arrowprops=arrow)
            ax.annotate("", xy=(side_x0, mid), xytext=(cx, mid), arrowprops=arrow)
            box(side_x0, mid - height(side[i]) / 2, side_w, side[i], centred=False, face=_SIDE_FACE, edge=_GREY,
                lw=0.7)
            y += gaps[i]
        last = i == len(main) - 1 and i > 0
        y += box(main_x0, y, main_w, lines, centred=True, face=_BOX_FACE, edge=_MAIN, lw=1.6 if last else 0.8)

    return fig


# --------------------------------------------------------------------------- 2. mean trajectories


def _outcome_axis(ax: Axes, oc: _Outcome, values: Sequence[float]) -> bool:
    """y axis over the instrument's whole scale (widened to any drawn value outside it); False when unknown."""
    scale = oc.scale
    if scale is None:
        ax.autoscale_view()
        return False
    lo, hi = scale
    if values:
        lo, hi = min(lo, min(values)), max(hi, max(values))
    pad = 0.03 * (hi - lo) if hi > lo else 1.0
    ax.set_ylim(lo - pad, hi + pad)
    ticks = MaxNLocator(nbins=7, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
    ax.yaxis.set_major_locator(FixedLocator([float(t) for t in ticks if lo - 1e-9 <= t <= hi + 1e-9]))
    return True


def _scale_text(oc: _Outcome, full: bool) -> str:
    if not full:
        return " The y axis spans the scores drawn (the instrument's scale is not known)."
    if oc.instrument.startswith("eq5d"):
        return " The y axis spans the value set's whole range."
    return ""


def _legend_above(fig: Figure, ax: Axes, handles: Sequence[Any], ncols: int) -> float:
    """A legend above ``ax`` in rows of ``ncols``; returns the room it needs (cm)."""
    ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=ncols, borderaxespad=0.2)
    rows = math.ceil(len(handles) / ncols)
    return _LEGEND + (rows - 1) * _lines_cm(1, _SMALL) * 1.45


def _trajectory(study: _Study, oc: _Outcome) -> _Drawn | None:
    """Means of the same patients joined (baseline and one follow-up), beside every answer's mean, unjoined."""
    sup = study.sup
    rows = study.summary(oc)
    if not any(_num(r.get("mean")) is not None for r in rows.values()):
        return None
    pairs = [r for r in study.table("paired_change") if r.get("outcome") == oc.name]
    pos, by_day = study.positions(list(rows) + [str(r.get("timepoint")) for r in pairs])
    base = next(iter(pos))
    span = (max(pos.values()) - min(pos.values())) or 1.0
    dodge = 0.012 * span
    fig = _new_figure(8.0)
    ax = fig.add_axes((0.1, 0.1, 0.8, 0.8))
    drawn: list[float] = []
    empty: list[str] = []
    small: list[str] = []
    no_ci: list[str] = []
    for name, x in pos.items():
        r = rows.get(name)
        if r is None:
            continue
        if sup.hides(r.get("n")):  # the table hides the mean and CI of so few patients: so does the figure
            small.append(name)
            continue
        m = _num(r.get("mean"))
        if m is None:
            empty.append(name)
            continue
        lo, hi = _num(r.get("ci_low")), _num(r.get("ci_high"))
        err = None if lo is None or hi is None else np.array([[m - lo], [hi - m]])
        if err is None:
            no_ci.append(name)
        ax.errorbar([x - dodge], [m], yerr=err, fmt="o", color=_GREY, mfc="white", mew=1.2, markersize=5,
                    elinewidth=1.0, capsize=3, capthick=1.0, zorder=2, gid=f"all-{name}")
        drawn += [m] + ([lo, hi] if err is not None else [])  # type: ignore[list-item]
    colours = [_MAIN, _SECOND, OKABE_ITO["bluish_green"], OKABE_ITO["reddish_purple"], OKABE_ITO["sky_blue"]]
    handles: list[Any] = [Line2D([], [], ls="none", marker="o", color=_GREY, mfc="white", mew=1.2, markersize=5,
                                 label=f"All who answered: mean ({study.level} CI)")]
    hidden_pairs: list[str] = []
    k = 0
    for r in pairs:
        tp = str(r.get("timepoint"))
        b, a = _num(r.get("mean_before")), _num(r.get("mean_after"))
        if tp not in pos or tp == base or b is None or a is None:
            continue
        if sup.hides(r.get("n_pairs")):
            hidden_pairs.append(tp)
            continue
        colour = colours[k % len(colours)]
        k += 1
        label = f"Answered {base} and {tp} (n = {fmt_count(r.get('n_pairs'), sup)})"
        ax.plot([pos[base] + k * dodge, pos[tp] + dodge], [b, a], color=colour, marker="o", markersize=5, lw=1.6,
                zorder=3, gid=f"pair-{tp}")
        handles.append(Line2D([], [], color=colour, marker="o", markersize=5, lw=1.6, label=label))
        drawn += [a, b]
    to_axes = blended_transform_factory(ax.transData, ax.transAxes)
    for name, text in [*((e, "no answers" if not _num(rows[e].get("n")) else "not estimable") for e in empty),
                       *((e, f"n <{sup.threshold}: not shown") for e in small)]:
        ax.text(pos[name], 0.5, text, color=_GREY, fontsize=_SMALL, ha="center", va="center", rotation=90,
                transform=to_axes)
    full = _outcome_axis(ax, oc, drawn)
    _time_axis(ax, pos, study.tick_labels(pos, rows), by_day)
    ax.set_ylabel(oc.axis_label)
    top = _legend_above(fig, ax, handles, 2)
    _place(fig, ax, left=_left_margin(ax), bottom=_bottom_margin(ax), right=0.3, top=top)

    caption = (f"Lines join the means of the same patients (those who answered {base} and a follow-up); grey "
               f"circles, not joined, are the means ({study.level} CI) of all who answered.")
    caption += _scale_text(oc, full) if not full else ""
    if empty:
        caption += f" Not estimable at {_join(empty)} (no scores)."
    if no_ci:
        caption += f" CI not estimable at {_join(no_ci)}."
    if small:
        caption += (f" Not shown at {_join(small)}: fewer than {sup.threshold} patients answered (small-cell "
                    "suppression).")
    if hidden_pairs:
        caption += f" Paired means of fewer than {sup.threshold} patients are not shown."
    caption += _suppression_note(sup)
    return _Drawn(fig, f"trajectory_{_safe_id(oc.name)}", f"Mean {oc.label} over time", caption)


# --------------------------------------------------------------------------- 3. individual trajectories


def _individual(study: _Study, oc: _Outcome) -> _Drawn | None:
    """One thin line per patient across the time points answered; a cross at each death during follow-up."""
    sup = study.sup
    scores = [r for r in study.table("scores")
              if r.get("outcome") == oc.name and _num(r.get("value")) is not None and r.get("timepoint") is not None]
    if not scores or individual_withheld(study.results, oc.name, sup):
        return None  # with suppression on, individual values of fewer than `threshold` patients are never drawn
    rows = study.summary(oc)
    pos, by_day = study.positions([str(r["timepoint"]) for r in scores] + list(rows))
    by_case: dict[str, list[tuple[float, float]]] = {}
    for r in scores:
        by_case.setdefault(str(r.get("case")), []).append((pos[str(r["timepoint"])], _nan(r.get("value"))))
    paths: list[np.ndarray[Any, np.dtype[np.float64]]] = []
    singles: list[tuple[float, float]] = []
    for pts in by_case.values():
        pts.sort()
        if len(pts) > 1:
            paths.append(np.array(pts, dtype=np.float64))
        else:
            singles.append(pts[0])
    n_patients = len(by_case)
    alpha = min(0.7, max(0.15, 3.0 / math.sqrt(n_patients)))
    # deaths during follow-up (by the last time point's window end), at the patient's last score
    ends = [_num(t.get("window_end")) for t in study.timepoints]
    horizon = max([e for e in ends if e is not None] + [max(pos.values())])
    death_day = {str(r.get("case")): _num(r.get("day")) for r in study.table("deaths")}
    deaths: list[tuple[float, float, float]] = []  # last x, last y, death day
    if by_day:
        for case, pts in by_case.items():
            d = death_day.get(case)
            if d is not None and pts[-1][0] <= d <= horizon:
                deaths.append((pts[-1][0], pts[-1][1], d))

    fig = _new_figure(8.0)
    ax = fig.add_axes((0.1, 0.1, 0.8, 0.8))
    ax.add_collection(LineCollection(paths, colors=_INK, linewidths=0.7, alpha=alpha, zorder=1))
    if singles:
        ax.scatter([p[0] for p in singles], [p[1] for p in singles], s=9, color=_INK, alpha=min(1.0, 1.2 * alpha),
                   linewidths=0, zorder=1)
    if deaths:
        ax.add_collection(LineCollection([np.array([[x, y], [d, y]]) for x, y, d in deaths], colors=_DEATH,
                                         linewidths=0.7, linestyles=(0, (1.5, 1.5)), alpha=0.8, zorder=2))
        ax.plot([d for _x, _y, d in deaths], [y for _x, y, _d in deaths], ls="none", marker="x", markersize=5,
                mew=1.3, color=_DEATH, zorder=3, gid="deaths")
    full = _outcome_axis(ax, oc, [p[1] for pts in by_case.values() for p in pts])
    _time_axis(ax, pos, study.tick_labels(pos, rows), by_day)
    if deaths:
        lo, hi = ax.get_xlim()
        ax.set_xlim(lo, max(hi, max(d for _x, _y, d in deaths) + 0.03 * (hi - lo)))
    ax.set_ylabel(oc.axis_label)
    handles = [Line2D([], [], color=_INK, alpha=max(alpha, 0.5), lw=0.8, label="Each patient's scores")]
    if deaths:
        handles.append(Line2D([], [], color=_DEATH, ls="none", marker="x", markersize=5, mew=1.3,
                              label="Death (at the last score)"))
    top = _legend_above(fig, ax, handles, 2)
    _place(fig, ax, left=_left_margin(ax), bottom=_bottom_margin(ax), right=0.3, top=top)

    who = _counted(n_patients, "patient", sup)
    caption = f"{oc.label} of each of the {who} with a score, joining the time points answered (a dot: one only)"
    if deaths:
        caption += f"; \u00d7: death during follow-up ({_counted(len(deaths), 'patient', sup)})."
    else:
        caption += "."
    caption += _scale_text(oc, full) if not full else ""
    if sup.on:
        caption += f" Drawn because every time point has at least {sup.threshold} patients."
    return _Drawn(fig, f"individual_{_safe_id(oc.name)}", f"Individual {oc.label} trajectories", caption)



# --------------------------------------------------------------------------- 4. leak types

_LEAK_LABELS = {
    "any": "Any leak",
    "yeom_b": "Type B (basivertebral vein)",
    "yeom_s": "Type S (segmental vein)",
    "yeom_c": "Type C (cortical defect)",
    "intradiscal": "Intradiscal",
    "paravertebral": "Paravertebral",
    "epidural_foraminal": "Epidural or foraminal",
    "venous": "Venous",
    "type not recorded": "Mechanism not recorded",
    "location not recorded": "Location not recorded",
}
_MEASURES = ("cement leak", "symptomatic cement leak")
_UNIT_NAMES = {"level": "treated level", "patient": "patient"}


def _leak_label(measure: str, category: str) -> str:
    text = _LEAK_LABELS.get(category, category.replace("_", " "))
    if measure == "symptomatic cement leak":
        return "Symptomatic leak" if category == "any" else f"Symptomatic: {text.lower()}"
    return text[:1].upper() + text[1:]


#: Leak categories that classify the mechanism (Yeom et al. 2003); the others (but "any") the location.
_MECHANISMS = ("yeom_b", "yeom_s", "yeom_c", "type not recorded")


def _leak_panels(cats: Sequence[tuple[str, str]]) -> list[tuple[str, list[tuple[str, str]]]]:
    """The rows of each panel: any and symptomatic leaks; by mechanism; by location (empty panels left out)."""
    overall = [c for c in cats if c[1] == "any"]
    mechanism = [c for c in cats if c[1] != "any" and c[1] in _MECHANISMS]
    location = [c for c in cats if c[1] != "any" and c[1] not in _MECHANISMS]
    panels = [("All leaks", overall), ("By mechanism (Yeom et al. 2003)", mechanism), ("By location", location)]
    return [(title, rows) for title, rows in panels if rows]


def _leak_types(study: _Study) -> _Drawn | None:
    """Horizontal bars of the leak proportions per level and per patient, with CI whiskers, in three panels:
    all and symptomatic leaks, by mechanism, and by location."""
    sup = study.sup
    rows = [r for r in study.table("leaks") if r.get("measure") in _MEASURES]
    if not any(_num(r.get("proportion")) is not None for r in rows):
        return None
    cats = list(dict.fromkeys((str(r.get("measure")), str(r.get("category"))) for r in rows))
    cats.sort(key=lambda c: _MEASURES.index(c[0]))  # stable: leak types in table order, symptomatic last
    units = [u for u in ("level", "patient") if any(r.get("unit") == u for r in rows)]
    units += [u for u in dict.fromkeys(str(r.get("unit")) for r in rows) if u not in units]
    cell = {(str(r.get("measure")), str(r.get("category")), str(r.get("unit"))): r for r in rows}
    colours = [_MAIN, _SECOND, OKABE_ITO["bluish_green"], OKABE_ITO["reddish_purple"]]
    bar_h = 0.8 / len(units)
    panels = _leak_panels(cats)
    row_cm = 0.3 * len(units) + 0.25
    title_cm = _lines_cm(1, _FONT) + 0.15
    gap_cm = 0.25
    x_block = _EDGE + _lines_cm(1, _FONT) + _lines_cm(1, _SMALL) + (_TICK + _TICK_PAD + _LABEL_PAD) * _PT
    height = _LEGEND + sum(title_cm + len(p) * row_cm for _t, p in panels) + gap_cm * (len(panels) - 1) + x_block
    fig = _new_figure(height)
    axes = [fig.add_axes((0.1, 0.1, 0.8, 0.8)) for _ in panels]
    ends: list[tuple[Axes, float, float, str]] = []  # axes, bar or whisker end, y, label
    hidden = False
    handles: list[Patch] = []
    denominators: list[str] = []
    for j, unit in enumerate(units):
        unit_rows = [r for (m, _c, u), r in cell.items() if u == unit and m == "cement leak"]
        noun = "assessed " + _UNIT_NAMES.get(unit, unit)
        denominators.append(_counted(unit_rows[0].get("n"), noun, sup) if unit_rows else f"{noun}s")
        colour = colours[j % len(colours)]
        handles.append(Patch(facecolor=colour, label=f"Per {_UNIT_NAMES.get(unit, unit)}"))
        for ax, (_title, pcats) in zip(axes, panels, strict=True):
            ys: list[float] = []
            ps: list[float] = []
            whiskers: list[tuple[float, float, float, float]] = []  # y, p, below, above
            for i, (measure, category) in enumerate(pcats):
                r = cell.get((measure, category, unit))
                if r is None:
                    continue
                y = i - 0.4 + bar_h * (j + 0.5)
                p, lo, hi = _num(r.get("proportion")), _num(r.get("ci_low")), _num(r.get("ci_high"))
                counts = f"{fmt_count(r.get('x'), sup)}/{fmt_count(r.get('n'), sup)}"
                if p is None:
                    ends.append((ax, 0.0, y, "not estimable"))
                    continue
                if sup.hides(r.get("x")) or sup.hides(r.get("n")):  # a bar or CI would give the count away
                    ends.append((ax, 0.0, y, f"{counts} (suppressed)"))
                    hidden = True
                    continue
                pct = fmt_proportion(p, 1, counts=(r.get("x"), r.get("n")), sup=sup)
                ends.append((ax, max(p, hi or 0.0), y, f"{pct} ({counts})"))
                ys.append(y)
                ps.append(p)
                if lo is not None and hi is not None:
                    whiskers.append((y, p, max(p - lo, 0.0), max(hi - p, 0.0)))
            ax.barh(ys, ps, height=bar_h * 0.92, color=colour, zorder=2)
            if whiskers:
                ax.errorbar([w[1] for w in whiskers], [w[0] for w in whiskers],
                            xerr=np.array([[w[2] for w in whiskers], [w[3] for w in whiskers]]), fmt="none",
                            ecolor=_INK, elinewidth=0.8, capsize=2, capthick=0.8, zorder=3)
    for ax, end, y, text in ends:
        ax.annotate(text, xy=(end, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=_SMALL)
    left = _EDGE + max(_text_cm(_leak_label(m, c), _SMALL) for m, c in cats) + _TICK_PAD * _PT
    right = 0.45  # room for the last tick label
    axis_w = _WIDTH - left - right
    # room right of each bar for its label: end + (3 pt + width) * xmax / axis_w <= xmax
    xmax = max([0.05] + [end / max(1.0 - (3 * _PT + _text_cm(text, _SMALL) + 0.1) / axis_w, 0.2)
                         for _ax, end, _y, text in ends])
    ticks = [float(t) for t in MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]).tick_values(0.0, xmax)
             if 0 <= t <= min(1.0, xmax) + 1e-9]
    top = height - _LEGEND
    for k, (ax, (title, pcats)) in enumerate(zip(axes, panels, strict=True)):
        ax.set_yticks(range(len(pcats)), [_leak_label(m, c) for m, c in pcats])
        ax.set_ylim(len(pcats) - 0.5, -0.5)
        ax.tick_params(axis="y", length=0)
        _percent_axis(ax, "x", ticks)
        ax.set_xlim(0, xmax)
        last = k == len(panels) - 1
        if last:
            ax.set_xlabel("Proportion with a cement leak")
        else:
            ax.tick_params(axis="x", labelbottom=False)
        h = len(pcats) * row_cm
        ax.text(-left / axis_w + _EDGE / axis_w, 1.0, title, transform=ax.transAxes, ha="left", va="bottom",
                fontsize=_FONT, fontweight="bold", gid=f"leak-panel-{k}")
        top -= title_cm
        _place(fig, ax, left=left, bottom=top - h, right=right, top=height - top)
        top -= h + gap_cm
    axes[0].legend(handles=handles, loc="lower right", bbox_to_anchor=(1.0, 1.0 + title_cm / (len(panels[0][1])
                   * row_cm)), ncols=len(units), borderaxespad=0.2)

    caption = (f"Cement leaks per {_join(denominators)}, overall, by mechanism and by location, with exact "
               f"{study.level} CIs; a leak of two types counts under both.")
    if hidden:
        caption += (f" Counts from 1 to {sup.threshold - 1} are shown as <{sup.threshold}, without their bar, "
                    "percentage or confidence interval.")
    else:
        caption += _suppression_note(sup)
    return _Drawn(fig, "leak_types", "Cement leaks by mechanism and location", caption)



# --------------------------------------------------------------------------- 5. survival


def _at_risk_columns(rows: Sequence[Mapping[str, Any]], most: int) -> list[Mapping[str, Any]]:
    """Every k-th number at risk (from the first), k the smallest of 1, 2, 3, 4, 6, 8, 12, ... giving <= ``most``."""
    most = max(most, 2)
    for k in (1, 2, 3, 4, 6, 8, 12, 16, 20, 24, 40):
        if math.ceil(len(rows) / k) <= most:
            return list(rows[::k])
    return list(rows[:: math.ceil(len(rows) / most)])


def km_cut(curve: Sequence[tuple[float, float]], n: float, fraction: float = KM_MIN_AT_RISK) -> float | None:
    """Where the Kaplan-Meier curve is cut: the last time at which at least ``fraction`` of ``n`` are at risk.

    Parameters
    ----------
    curve : sequence of (months, n_risk)
        The curve's times in increasing order with the number at risk at each
        (those followed at least that long, R's ``n.risk``).
    n : float
        The number of patients (at risk at time 0).
    fraction : float
        The least fraction at risk that is drawn (:data:`KM_MIN_AT_RISK`).

    Returns
    -------
    float or None
        The last time ``t`` with ``n_risk(t) >= fraction * n``: just after it
        fewer remain at risk, so the curve is drawn over ``[0, t]``.  ``None``
        when no time is cut (the last time still qualifies, or there is no
        curve); ``0.0`` when even the first time has too few at risk.
    """
    need = fraction * n
    times = [m for m, _r in curve]
    kept = [m for m, r in curve if r >= need]
    if not times or len(kept) == len(times):
        return None
    return max(kept) if kept else 0.0


def _survival(study: _Study) -> _Drawn | None:
    """Kaplan-Meier step curve with the CI band, censoring marks and a number-at-risk row, cut by :func:`km_cut`."""
    sup = study.sup
    curve = sorted((r for r in study.table("survival_curve")
                    if _num(r.get("months")) is not None and _num(r.get("survival")) is not None),
                   key=lambda r: _nan(r.get("months")))
    if not curve or survival_withheld(study.results, sup):
        return None  # a curve of fewer than `threshold` patients shows each one's death: the table hides it too
    median = (study.table("survival_median") or [{}])[0]
    risk_rows = [r for r in study.table("survival_at_risk") if _num(r.get("months")) is not None]
    n_total = _num(median.get("n"))
    if n_total is None:
        n_total = max([_nan(r.get("n_risk")) for r in risk_rows if _num(r.get("n_risk")) is not None]
                      + [_nan(r.get("n_risk")) for r in curve if _num(r.get("n_risk")) is not None] + [0.0])
    cut = km_cut([(_nan(r.get("months")), _num(r.get("n_risk")) or 0.0) for r in curve], n_total)
    if cut is not None:
        curve = [r for r in curve if _nan(r.get("months")) <= cut]
        risk_rows = [r for r in risk_rows if _nan(r.get("months")) <= cut]
    left, right = 1.7, 0.35
    axis_w = _WIDTH - left - right
    widest = max((_text_cm(fmt_count(r.get("n_risk"), sup), _SMALL) for r in risk_rows), default=0.0)
    at_risk = _at_risk_columns(risk_rows, int(axis_w // (widest + 0.3))) if risk_rows else []

    t = np.array([0.0] + [_nan(r.get("months")) for r in curve])
    s = np.array([1.0] + [_nan(r.get("survival")) for r in curve])
    lo = np.array([1.0] + [_nan(r.get("ci_low")) for r in curve])
    hi = np.array([1.0] + [_nan(r.get("ci_high")) for r in curve])

    risk_block = _lines_cm(2, _SMALL) + 0.35 if at_risk else 0.0
    x_block = _EDGE + _lines_cm(1, _FONT) + _lines_cm(1, _SMALL) + (_TICK + _TICK_PAD + _LABEL_PAD) * _PT
    fig = _new_figure(_LEGEND + 6.0 + x_block + risk_block)
    ax = fig.add_axes((0.1, 0.1, 0.8, 0.8))
    ax.fill_between(t, lo, hi, step="post", color=_BAND_FACE, linewidth=0, zorder=1)
    ax.step(t, s, where="post", color=_MAIN, lw=1.5, zorder=3)
    cens = [(_nan(r.get("months")), _nan(r.get("survival"))) for r in curve if (_num(r.get("n_censor")) or 0) > 0]
    if cens:
        ax.plot([c[0] for c in cens], [c[1] for c in cens], ls="none", marker="|", markersize=6, mew=1.0,
                color=_MAIN, zorder=4)
    med, med_lo, med_hi = (_num(median.get(k)) for k in ("median_months", "ci_low", "ci_high"))
    if sup.hides(median.get("n")):  # as the survival table and the key results
        med = med_lo = med_hi = None
    if med is not None:
        ax.plot([0, med, med], [0.5, 0.5, 0.0], color=_GREY, lw=0.8, ls=(0, (2, 2)), zorder=2)
        med_text = f"Median survival {fmt_num(med, 1)} months\n({study.level} CI {fmt_median_ci(med_lo, med_hi)})"
    else:
        med_text = "Median survival not estimable"
    ax.text(0.99, 0.98, med_text, transform=ax.transAxes, ha="right", va="top", fontsize=_SMALL)

    horizon = max([float(t[-1])] + [_nan(r.get("months")) for r in at_risk] + ([cut] if cut else []))
    ax.set_xlim(0, horizon * 1.02 if horizon > 0 else 1.0)
    ax.set_ylim(0, 1.02)
    _percent_axis(ax, "y", [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylabel("Survival")
    ax.set_xlabel("Months after the operation")
    if at_risk:
        ax.xaxis.set_major_locator(FixedLocator([_nan(r.get("months")) for r in at_risk]))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=10, steps=[1, 2, 3, 6, 10]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt_num(v, 0)))
    legend: list[Line2D | Patch] = [Line2D([], [], color=_MAIN, lw=1.5, label="Kaplan-Meier estimate"),
                                    Patch(facecolor=_BAND_FACE, label=f"{study.level} confidence band")]
    if cens:
        legend.append(Line2D([], [], ls="none", marker="|", markersize=6, mew=1.0, color=_MAIN, label="Censored"))
    ax.legend(handles=legend, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=len(legend), borderaxespad=0.2)
    _place(fig, ax, left=left, bottom=x_block + risk_block, right=right, top=_LEGEND)
    if at_risk:
        ax_risk = fig.add_axes((0.1, 0.1, 0.8, 0.8))
        height = float(fig.get_size_inches()[1]) * _CM_PER_INCH
        _place(fig, ax_risk, left=left, bottom=_EDGE, right=right, top=height - _EDGE - _lines_cm(2, _SMALL))
        ax_risk.set_xlim(ax.get_xlim())
        ax_risk.set_ylim(0, 2)
        ax_risk.axis("off")
        ax_risk.text(0.0, 1.5, "Number at risk", ha="left", va="center_baseline", fontsize=_SMALL, fontweight="bold",
                     transform=blended_transform_factory(ax_risk.transAxes, ax_risk.transData))
        for r in at_risk:
            m = _nan(r.get("months"))
            ax_risk.text(m, 0.5, fmt_count(r.get("n_risk"), sup), ha="center", va="center_baseline",
                         fontsize=_SMALL, gid=f"atrisk-{fmt_num(m, 0)}")

    n_text, ev_text = _counted(median.get("n"), "patient", sup), _counted(median.get("events"), "death", sup)
    caption = f"Overall survival ({n_text}, {ev_text}) with the {study.level} confidence band"
    caption += "; |: censored at the extract date." if cens else "."
    if cut is not None:
        caption += (f" Cut at {fmt_num(cut, 0)} months: beyond it fewer than {fmt_num(100 * KM_MIN_AT_RISK, 0)}% "
                    "of the patients remained at risk.")
    if med is None and reader_note(median.get("note")):
        caption += f" Median survival not estimable: {reader_note(median.get('note')).rstrip('.')}."
    caption += _suppression_note(sup)
    return _Drawn(fig, "survival", "Kaplan-Meier survival", caption)

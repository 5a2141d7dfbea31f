"""What every part of the report builder shares: the results, suppression, numbering, footnotes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from spinereg.report._format import (
    NA_TEXT,
    Suppression,
    digits_for,
    fmt_count,
    fmt_level,
    fmt_p_text,
    hidden,
    is_missing,
    reader_note,
)
from spinereg.report._model import Align, Figure, Footnote, Row, Table
from spinereg.report._suppress import FlowStep, flow_steps, require_baseline_of
from spinereg.report._text import timepoint_label

__all__ = ["Ctx", "FigureLike", "Marks", "number", "p_text", "suppression_of"]


class FigureLike(Protocol):
    """What the builder needs of a figure (``spinereg.report._figures.FigureFile``)."""

    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def caption(self) -> str: ...
    @property
    def svg(self) -> Path: ...
    @property
    def png(self) -> Path: ...


def number(x: Any) -> float | None:
    """``x`` as a float, or None when missing (null or NaN)."""
    return None if x is None or is_missing(x) else float(x)


def suppression_of(results: Mapping[str, Any]) -> Suppression:
    """The small-cell suppression that ``results.json``'s settings ask for (threshold 5 when unset)."""
    settings = results.get("settings") or {}
    threshold = number(settings.get("small_cell_threshold"))
    return Suppression(bool(settings.get("suppress_small_cells")), 5 if threshold is None else int(threshold))


def p_text(p: Any) -> str:
    """``p < 0.001`` or ``p = 0.030`` for running text (:func:`fmt_p_text`)."""
    return fmt_p_text(p)


def _letters(i: int) -> str:
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(ord("a") + r) + s
    return s


@dataclass
class Marks:
    """Footnote marks of one table: one letter per distinct note, in order of first use."""

    notes: dict[str, str] = field(default_factory=dict)

    def mark(self, note: Any) -> str:
        """The mark for ``note`` (``""`` for an empty note)."""
        text = reader_note(note)
        if not text:
            return ""
        if text not in self.notes:
            self.notes[text] = _letters(len(self.notes))
        return self.notes[text]

    def footnotes(self) -> list[Footnote]:
        return [Footnote(m, t[:1].upper() + t[1:]) for t, m in self.notes.items()]


class Ctx:
    """The results being reported and the running table and figure numbers.

    Parameters
    ----------
    results : Mapping
        The content of ``results.json``.
    figures : sequence of FigureLike
        The figures :func:`make_figures` drew, in any order.
    """

    def __init__(self, results: Mapping[str, Any], figures: Sequence[FigureLike]) -> None:
        self.r = results
        settings = results.get("settings") or {}
        self.sup = suppression_of(results)
        conf = number(settings.get("conf_level"))
        self.conf_level = 0.95 if conf is None else conf
        self.level = fmt_level(self.conf_level)
        self.outcomes: dict[str, Mapping[str, Any]] = {str(o.get("name")): o for o in results.get("outcomes") or []}
        self.timepoints: list[Mapping[str, Any]] = list(results.get("timepoints") or [])
        self.data: Mapping[str, Any] = results.get("data") or {}
        self.study: Mapping[str, Any] = results.get("study") or {}
        spec = self.study.get("spec") or {}
        self.spec: Mapping[str, Any] = spec if isinstance(spec, Mapping) else {}
        self._figures = {f.id: f for f in figures}
        self._used: list[str] = []
        self._n_tables = 0
        self._n_supp = 0
        self._n_figures = 0

    # -- results -------------------------------------------------------------------------------------------------

    def table_rows(self, name: str) -> list[Mapping[str, Any]] | None:
        """The records of table ``name``, or None when the study did not compute it."""
        tables = self.r.get("tables") or {}
        if name not in tables or tables[name] is None:
            return None
        return list(tables[name])

    def has(self, name: str) -> bool:
        return self.table_rows(name) is not None

    def outcome_label(self, name: str) -> str:
        oc = self.outcomes.get(name) or {}
        label = str(oc.get("label") or name)
        return f"{label}, {oc['valueset']} value set" if oc.get("valueset") else label

    def digits(self, outcome: str) -> int:
        oc = self.outcomes.get(outcome) or {}
        return digits_for(str(oc.get("instrument") or ""))

    def tp(self, name: Any) -> str:
        return timepoint_label(str(name))

    def cohort_n(self) -> Any:
        """Patients in the cohort (last flow step, else the follow-up table)."""
        flow = self.table_rows("flow") or []
        if flow:
            return flow[-1].get("n_patients")
        fu = self.table_rows("follow_up") or []
        return fu[0].get("n") if fu else None

    def require_baseline(self) -> bool | None:
        """Whether the spec required baseline questionnaires (None when ``results.json`` holds no spec)."""
        return require_baseline_of(self.r)

    def flow_steps(self) -> list[FlowStep]:
        """The cohort flow as shown: small exclusions merged under suppression (:func:`flow_steps`)."""
        return flow_steps(self.table_rows("flow") or [], self.sup, require_baseline=self.require_baseline())

    def count(self, n: Any) -> str:
        return fmt_count(n, self.sup)

    def hidden(self, *counts: Any) -> bool:
        return hidden(counts, self.sup)

    def note(self, note: Any, *counts: Any) -> str:
        """An engine note, or ``""`` when any of ``counts`` is suppressed.

        The notes of a small group give its size away ("CI not estimable: one
        value", "fewer than 2 complete pairs" beside a ``<5``); the statistics
        they explain are hidden anyway, and the ``<5`` legend says why.
        """
        return "" if hidden(counts, self.sup) else str(note or "")

    # -- numbering -----------------------------------------------------------------------------------------------

    def table(self, id: str, caption: str, header: Sequence[str], rows: Sequence[Row], *,
              marks: Marks | None = None, notes: Sequence[str] = (), align: Sequence[Align] = (),
              widths: Sequence[float] = (), supplementary: bool = False) -> Table:
        """A numbered table with its footnotes (row notes, general notes, dash and suppression legends)."""
        if supplementary:
            self._n_supp += 1
            label = f"Table S{self._n_supp}"
        else:
            self._n_tables += 1
            label = f"Table {self._n_tables}"
        foot = marks.footnotes() if marks else []
        cells = [c for r in rows for c in r.cells]
        general = list(notes)
        if any(NA_TEXT in c for c in cells):  # the en dash appears in cells only as "not estimable"
            general.append(f"{NA_TEXT} not estimable or not available.")
        lt = f"<{self.sup.threshold}"
        if self.sup.on and any(lt in c for c in cells):
            general.append(f"{lt}: fewer than {self.sup.threshold} (small-cell suppression); percentages and "
                           f"statistics computed from such counts are not shown.")
        foot += [Footnote("", t) for t in general]
        return Table(id, label, caption, tuple(header), tuple(rows), tuple(foot), tuple(align), tuple(widths))

    def figure(self, fig_id: str) -> Figure | None:
        """The next numbered figure for ``fig_id``, or None when make_figures drew none."""
        f = self._figures.get(fig_id)
        if f is None or fig_id in self._used:
            return None
        self._used.append(fig_id)
        self._n_figures += 1
        return Figure(f.id, f"Figure {self._n_figures}", f.title, f.caption, Path(f.svg), Path(f.png))

    def unused_figures(self) -> list[str]:
        return [k for k in self._figures if k not in self._used]


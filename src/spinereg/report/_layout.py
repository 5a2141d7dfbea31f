"""Column widths for the paged formats (PDF, DOCX): never break a word, keep numbers on one line if possible."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from spinereg.report._model import Table

__all__ = ["column_widths"]

#: ``measure(text, bold)``: the width of ``text`` in points.
Measure = Callable[[str, bool], float]


def _widest(texts: Sequence[str], measure: Measure, bold: bool, *, whole: bool) -> float:
    best = 0.0
    for t in texts:
        parts = [t] if whole else t.split()
        for p in parts:
            best = max(best, measure(p, bold))
    return best


def _fit(want: list[float], mins: list[float], total: float) -> list[float]:
    w = [max(a, m) for a, m in zip(want, mins, strict=True)]
    excess = sum(w) - total
    if excess <= 0:
        return w
    slack = [a - m for a, m in zip(w, mins, strict=True)]
    room = sum(slack)
    if room >= excess:
        return [a - excess * s / room for a, s in zip(w, slack, strict=True)]
    return [m * total / sum(mins) for m in mins]


def column_widths(table: Table, total: float, measure: Measure, padding: float) -> list[float]:
    """Widths in points that add up to ``total``.

    The table's relative widths are the starting point.  Every column is
    widened to its longest header word and cell word; columns after the first
    (the numbers) are widened further to their longest whole cell, so that a
    number with its interval stays on one line, when the page is wide enough.
    """
    n = len(table.header)
    want = [w * total for w in table.column_widths()]
    cols: list[list[str]] = [[] for _ in range(n)]
    for r in table.rows:
        if r.kind == "group":
            continue
        for i, c in enumerate(r.cells[:n]):
            cols[i].append(c + r.mark(i))
    words = [max(_widest([h], measure, True, whole=False), _widest(cols[i], measure, False, whole=False)) + padding
             for i, h in enumerate(table.header)]
    whole = [words[0]] + [max(words[i], _widest(cols[i], measure, False, whole=True) + padding) for i in range(1, n)]
    if sum(whole) <= total:
        return _fit(want, whole, total)
    return _fit(want, words, total)

"""Numbers as text: the only place spinereg formats numbers for people.

Every report format (HTML, PDF, DOCX, terminal summary, figures) formats
through these functions, so the same number reads the same everywhere, and
small-cell suppression is applied in one place.

Rules
-----
* Rounding is half away from zero on the decimal value (as a reader rounds by
  hand, and as SPSS and SAS print), not Python's round-half-even.
* Outcome values use the instrument's display precision
  (:data:`DIGITS`): EQ-5D index 2 decimals, ODI, VAS and NRS 1 decimal.
* p-values: ``< 0.001`` below 0.001, otherwise 3 decimals; in running text
  ``p < 0.001`` and ``p = 0.079`` (:func:`fmt_p_text`).  The journal style
  preset (:class:`Style`, the spec's ``[report] style``) may change the
  letter, the decimals and the CI separator.
* Counts have a thousands separator (``21,404``); negative numbers a true
  minus sign (U+2212).
* Percentages: 1 decimal; whole percentages when the denominator is below
  100 (:func:`pct_digits`, used by the tables that know their denominator).
  Proportions are shown as percentages.
* Missing or not estimable: an en dash (``NA_TEXT``).
* Small-cell suppression: with ``Suppression.on``, a count from 1 to
  ``threshold - 1`` shows as ``<threshold`` (e.g. ``<5``); zero is shown (it
  identifies nobody, and "no symptomatic leak" is a result); every percentage or
  proportion computed from such a count (numerator or denominator) shows as
  ``NA_TEXT`` so that it cannot be back-calculated.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

__all__ = [
    "DIGITS",
    "MINUS",
    "NA_TEXT",
    "STYLES",
    "Style",
    "Suppression",
    "digits_for",
    "fmt_ci",
    "fmt_count",
    "fmt_count_pct",
    "fmt_est_ci",
    "fmt_fraction",
    "fmt_level",
    "fmt_mean_sd",
    "fmt_median_ci",
    "fmt_num",
    "fmt_p",
    "fmt_p_text",
    "fmt_pct",
    "fmt_proportion",
    "hidden",
    "is_missing",
    "pct_digits",
    "reader_note",
    "style_of",
    "use_style",
]

NA_TEXT = "\u2013"
MINUS = "\u2212"

DIGITS: dict[str, int] = {
    "eq5d3l": 2,
    "eq5d5l": 2,
    "odi": 1,
    "eqvas": 1,
    "nrs_back": 1,
    "nrs_leg": 1,
}


@dataclass(frozen=True)
class Style:
    """A journal style preset: how p-values, confidence intervals and large counts are written.

    Attributes
    ----------
    name : str
        The preset's name in the spec (``[report] style``).
    p_letter : str
        ``p`` or ``P``.
    p_digits : int
        Decimals of a p-value of 0.01 or more.
    p_digits_small : int
        Decimals of a p-value from 0.001 to 0.01.
    ci_dash : bool
        Write an interval ``low\u2013high`` (en dash) when neither limit is negative; otherwise, and with a
        negative limit, ``low to high`` (a dash beside a minus sign misreads).
    thousands : str
        The thousands separator of counts.
    """

    name: str
    p_letter: str = "p"
    p_digits: int = 3
    p_digits_small: int = 3
    ci_dash: bool = False
    thousands: str = ","


#: The presets (documented in docs/report.md, "Journal style presets").
STYLES: dict[str, Style] = {
    "default": Style("default"),
    "spine": Style("spine", p_letter="P", ci_dash=True),
    "esj": Style("esj", p_digits=2),
}

_STYLE: ContextVar[Style] = ContextVar("spinereg_report_style", default=STYLES["default"])


def style_of(name: Any) -> Style:
    """The preset called ``name`` (the default preset for None or an unknown name)."""
    return STYLES.get(str(name or "default"), STYLES["default"])


@contextmanager
def use_style(style: Style) -> Iterator[Style]:
    """Format with ``style`` inside the ``with`` block (the document builder sets the spec's preset)."""
    token = _STYLE.set(style)
    try:
        yield style
    finally:
        _STYLE.reset(token)


def digits_for(instrument: str) -> int:
    """Display decimals of an instrument's scores (2 when unknown)."""
    return DIGITS.get(instrument, 2)


@dataclass(frozen=True)
class Suppression:
    """Small-cell suppression: counts from 1 to ``threshold - 1`` are hidden when ``on`` (zero is shown)."""

    on: bool = False
    threshold: int = 5

    def hides(self, count: Any) -> bool:
        return self.on and not is_missing(count) and 0 < int(count) < self.threshold


NO_SUPPRESSION = Suppression(False, 5)


def is_missing(x: Any) -> bool:
    if x is None:
        return True
    try:
        return math.isnan(float(x))
    except (TypeError, ValueError):
        return False


def _round(x: float, digits: int) -> str:
    q = Decimal(1).scaleb(-digits)
    d = Decimal(repr(float(x))).quantize(q, rounding=ROUND_HALF_UP)
    if d == 0:
        d = abs(d)  # no "-0.0"
    return f"{d:.{digits}f}"


def fmt_num(x: Any, digits: int = 2, *, signed: bool = False) -> str:
    """``x`` rounded to ``digits`` decimals (half away from zero), with a true minus sign."""
    if is_missing(x):
        return NA_TEXT
    s = _round(float(x), digits)
    if s.startswith("-"):
        return MINUS + s[1:]
    return ("+" + s) if signed and float(s) != 0 else s


def fmt_count(n: Any, sup: Suppression = NO_SUPPRESSION) -> str:
    """A count, or ``<threshold`` when suppressed."""
    if is_missing(n):
        return NA_TEXT
    if sup.hides(n):
        return f"<{sup.threshold}"
    text = f"{int(n):,d}".replace(",", _STYLE.get().thousands)
    return MINUS + text[1:] if text.startswith("-") else text


def pct_digits(total: Any) -> int:
    """Decimals of a percentage of ``total``: 0 below 100 (a decimal would claim a precision 1/n lacks), else 1."""
    return 0 if not is_missing(total) and float(total) < 100 else 1


def fmt_pct(percent: Any, digits: int = 1, *, counts: tuple[Any, ...] = (),
            sup: Suppression = NO_SUPPRESSION) -> str:
    """A percentage with ``%``; hidden when any of ``counts`` is suppressed."""
    if any(sup.hides(c) for c in counts) or is_missing(percent):
        return NA_TEXT
    return fmt_num(percent, digits) + "%"


def fmt_proportion(p: Any, digits: int = 1, *, counts: tuple[Any, ...] = (),
                   sup: Suppression = NO_SUPPRESSION) -> str:
    """A proportion (0..1) shown as a percentage."""
    if is_missing(p):
        return NA_TEXT
    return fmt_pct(100.0 * float(p), digits, counts=counts, sup=sup)


def fmt_ci(low: Any, high: Any, digits: int = 2, *, percent: bool = False,
           counts: tuple[Any, ...] = (), sup: Suppression = NO_SUPPRESSION) -> str:
    """``low to high`` (the word avoids a hyphen that could read as a minus sign)."""
    if is_missing(low) or is_missing(high) or any(sup.hides(c) for c in counts):
        return NA_TEXT
    sep = " to "
    if _STYLE.get().ci_dash and float(low) >= 0 and float(high) >= 0:
        sep = "\u2013"
    if percent:
        return f"{fmt_num(100.0 * float(low), digits)}%{sep}{fmt_num(100.0 * float(high), digits)}%"
    return f"{fmt_num(low, digits)}{sep}{fmt_num(high, digits)}"


def fmt_p(p: Any) -> str:
    """A p-value for a table cell: ``< 0.001``, or the style's decimals (3 by default)."""
    if is_missing(p):
        return NA_TEXT
    x = float(p)
    if x < 0.001:
        return "< 0.001"
    st = _STYLE.get()
    return _round(x, st.p_digits if x >= 0.01 else st.p_digits_small)


def fmt_p_text(p: Any) -> str:
    """A p-value in running text: ``p < 0.001`` or ``p = 0.079`` (the style's letter)."""
    s = fmt_p(p)
    letter = _STYLE.get().p_letter
    if s == NA_TEXT:
        return f"{letter} {NA_TEXT}"
    return f"{letter} {s}" if s.startswith("<") else f"{letter} = {s}"


# Composite formats used by the report tables.  Each is built from the
# functions above, so the rounding and suppression rules stay in one place.


def hidden(counts: tuple[Any, ...], sup: Suppression = NO_SUPPRESSION) -> bool:
    """Whether any of ``counts`` is suppressed (then statistics computed from them are not shown)."""
    return any(sup.hides(c) for c in counts)


def fmt_level(conf_level: Any) -> str:
    """A confidence level as a percentage with no trailing zeros: 0.95 -> ``95%``, 0.975 -> ``97.5%``."""
    if is_missing(conf_level):
        return NA_TEXT
    s = fmt_num(100.0 * float(conf_level), 4)
    return (s.rstrip("0").rstrip(".") if "." in s else s) + "%"


def fmt_mean_sd(mean: Any, sd: Any, digits: int = 2, *, counts: tuple[Any, ...] = (),
                sup: Suppression = NO_SUPPRESSION) -> str:
    """``mean (SD)``; ``NA_TEXT`` when the mean is missing or any of ``counts`` is suppressed."""
    if is_missing(mean) or hidden(counts, sup):
        return NA_TEXT
    return f"{fmt_num(mean, digits)} ({fmt_num(sd, digits)})"


def fmt_est_ci(est: Any, low: Any, high: Any, digits: int = 2, *, percent: bool = False,
               counts: tuple[Any, ...] = (), sup: Suppression = NO_SUPPRESSION) -> str:
    """``estimate (low to high)``; with ``percent`` the proportions show as percentages.

    ``NA_TEXT`` when the estimate is missing or any of ``counts`` is
    suppressed; an estimate without interval shows its interval as ``NA_TEXT``.
    """
    if is_missing(est) or hidden(counts, sup):
        return NA_TEXT
    point = fmt_proportion(est, digits) if percent else fmt_num(est, digits)
    return f"{point} ({fmt_ci(low, high, digits, percent=percent)})"


def fmt_count_pct(count: Any, percent: Any, *, total: Any = None, digits: int | None = None,
                  sup: Suppression = NO_SUPPRESSION) -> str:
    """``count (percent%)``; the percentage is hidden when the count or the total is suppressed.
    ``digits`` None: whole percentages of a total below 100, else one decimal (:func:`pct_digits`)."""
    if is_missing(count):
        return NA_TEXT
    c = fmt_count(count, sup)
    pct = fmt_pct(percent, pct_digits(total) if digits is None else digits, counts=(count, total), sup=sup)
    return c if pct == NA_TEXT else f"{c} ({pct})"


def fmt_fraction(x: Any, n: Any, sup: Suppression = NO_SUPPRESSION) -> str:
    """``x/n`` with each count suppressed on its own."""
    if is_missing(x) and is_missing(n):
        return NA_TEXT
    return f"{fmt_count(x, sup)}/{fmt_count(n, sup)}"


def fmt_median_ci(low: Any, high: Any, digits: int = 1) -> str:
    """The CI of a median survival: ``low to high``, ``low to not reached`` when only the upper limit is missing."""
    if not is_missing(low) and is_missing(high):
        return f"{fmt_num(low, digits)} to not reached"
    return fmt_ci(low, high, digits)


_NAN_WORD = re.compile(r"(?<![\w.])[-+]?(?:nan|inf(?:inity)?)(?![\w.])", re.IGNORECASE)
_LONG_NUMBER = re.compile(r"(?<![\w.])(-?\d+\.\d{4,})(?:[eE][-+]?\d+)?(?![\w.])")


def reader_note(note: Any) -> str:
    """An engine note as readers see it: ``NaN`` or ``inf`` read "not estimable", long decimals 3 significant digits.

    Notes in ``results.json`` are written for analysts and may carry raw
    floating-point values; the report never shows ``NaN`` to readers.
    """
    text = str(note or "").strip()
    text = _NAN_WORD.sub("not estimable", text)
    return _LONG_NUMBER.sub(lambda m: _significant(float(m.group(0))), text)


def _significant(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits (no fewer than 0 decimals)."""
    if x == 0 or not math.isfinite(x):
        return fmt_num(x, digits)
    return fmt_num(x, max(0, digits - 1 - math.floor(math.log10(abs(x)))))

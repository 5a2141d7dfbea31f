"""The import's validation rules on one record, row-wise: what :func:`spinereg.data.validate`
reports for a single mapped row, without building data frames.

:func:`validate` is vectorised for imports of millions of rows; run on one record (a web
form, a FHIR POST) almost all of its time is the fixed cost of pandas and Arrow
operations (~40 ms).  :func:`check_record` applies the same rules to one new record in
plain Python (~0.1 ms) and returns the same problems, in the same order, with the same
rule names and messages, so that a form, the API and an import still refuse the same
value with the same message.  The rules themselves are documented in
:mod:`spinereg.data._validate`; ``tests/data/test_record_check.py`` runs both on
thousands of generated records (valid, and invalid in every rule) and requires equal
output, so a rule changed in one place and not in the other fails the suite.

Scope: one new record of one entity, with the registry rows it refers to
(:class:`RecordReferences`); the rows that refer to a changed record (an update) are
checked by :func:`validate` itself.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from spinereg._errors import show_value
from spinereg.data._cpr import HIDDEN, contains_cpr, redact_cpr
from spinereg.data._schema import Column, Entity, entity, timepoints
from spinereg.data._validate import _FALSE, _NUMBER, _TRUE

__all__ = ["RecordReferences", "check_record"]

_NUMBER_RE = re.compile(_NUMBER)
_ISO_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CODES_SEP = re.compile(r"[\t\n\f\r ]*[;,][\t\n\f\r ]*")  # Arrow's (RE2's) \s is ASCII white space
# the dates pandas represents in nanoseconds (what validate() parses dates into)
_FIRST_DATE = date(1677, 9, 22)
_LAST_DATE = date(2262, 4, 11)
_TEXT_TYPES = ("str", "codes", "category")
_DATE_CHECKS = {"patients": ("birth_date", "death_date"), "operations": ("date",), "proms": ("answer_date",),
                "complications": ("date",), "imaging_findings": ("date",)}
_PARENTS = {"operations": (("patient_id", "patients"),),
            "treated_levels": (("operation_id", "operations"),),
            "complications": (("operation_id", "operations"),),
            "imaging_findings": (("operation_id", "operations"),),
            "proms": (("operation_id", "operations"), ("patient_id", "patients"))}


@dataclass(frozen=True)
class RecordReferences:
    """The registry rows a record may refer to (what :data:`spinereg.data.REFERENCE_COLUMNS`
    lists): patients by id (birth and death date), operations by id (patient and date), and
    the treated levels as (operation id, level) pairs.  Missing dates are None."""

    patients: Mapping[str, tuple[date | None, date | None]] = field(default_factory=dict)
    operations: Mapping[str, tuple[str | None, date | None]] = field(default_factory=dict)
    treated_levels: frozenset[tuple[str, str]] = frozenset()


def _show(v: Any) -> str:
    if v is None or (isinstance(v, str) and not v.strip()):
        return "(empty)"
    if isinstance(v, date):
        return repr(v.isoformat())
    return show_value(v)


def _trim(v: str | None) -> str | None:
    if v is None:
        return None
    t = v.strip()
    return t or None


class _Problems:
    def __init__(self, ent: Entity, row: str) -> None:
        self.ent, self.row = ent, row
        self.items: list[tuple[str, str, str, str, str, str, str]] = []

    def add(self, column: str, value: str, rule: str, message: str, severity: str = "error") -> None:
        self.items.append((self.ent.name, self.row, column, value, rule, severity, message))

    def done(self) -> list[tuple[str, str, str, str, str, str, str]]:
        # no CPR number in clear in any shown value or message (as the import's report)
        return [(e, r, c, redact_cpr(v) if contains_cpr(v) else v, rule, sev,
                 redact_cpr(m) if contains_cpr(m) else m) for e, r, c, v, rule, sev, m in self.items]


def _number(col: Column, raw: str | None, txt: str, out: _Problems) -> tuple[float | None, bool]:
    """(the number or None, bad)."""
    ok = (txt.isascii() and txt.isdigit()) or _NUMBER_RE.match(txt) is not None
    v = float(txt) if ok else math.nan
    if not math.isfinite(v):
        out.add(col.name, _show(raw), "type", f"{col.name} must be a number")
        return None, True
    if col.type == "int" and math.floor(v) != v:
        out.add(col.name, _show(raw), "type", f"{col.name} must be an integer")
        return None, True
    lo = -math.inf if col.min is None else col.min
    hi = math.inf if col.max is None else col.max
    if v < lo or v > hi:
        rng = f"{col.min:g}..{col.max:g}" if col.min is not None and col.max is not None else "its range"
        src = f" ({col.instrument} {col.item})" if col.instrument else ""
        out.add(col.name, _show(raw), "range", f"{col.name}{src} must be within {rng}")
        return None, True
    return v, False


def _date(txt: str) -> date | None:
    if _ISO_RE.fullmatch(txt) is None:
        return None
    try:
        d = date.fromisoformat(txt)
    except ValueError:
        return None
    return d if _FIRST_DATE <= d <= _LAST_DATE else None


def _column(col: Column, raw: str | None, out: _Problems) -> tuple[Any, bool]:
    """One column's parsed value (None where missing or bad) and whether it is bad."""
    txt = _trim(raw)
    if txt is None:
        if col.required:
            out.add(col.name, _show(raw), "required", f"required {col.name} is missing")
            return None, True
        return None, False
    if col.type in ("int", "float"):
        return _number(col, raw, txt, out)
    if col.type == "date":
        d = _date(txt)
        if d is None:
            out.add(col.name, _show(raw), "type", f"{col.name} is not a date (YYYY-MM-DD)")
            return None, True
        return d, False
    if col.type == "bool":
        low = txt.lower()
        if low in _TRUE:
            return True, False
        if low in _FALSE:
            return False, False
        out.add(col.name, _show(raw), "type", f"{col.name} must be true or false")
        return None, True
    if col.type == "category":
        if txt in col.values:
            return txt, False
        shown = ", ".join(col.values) if len(col.values) <= 12 else f"{col.values[0]} ... {col.values[-1]}"
        what = "vertebra" if col.name == "level" else col.name
        out.add(col.name, _show(raw), "code", f"{what} must be one of {shown}")
        return None, True
    if col.type == "codes":
        joined = _CODES_SEP.sub(";", txt)
        if not all(part == "" or re.search(col.pattern, part) for part in joined.split(";")):
            out.add(col.name, _show(raw), "pattern", f"{col.name}: each code must match {col.pattern}")
            return None, True
        return joined, False
    return txt, False


def check_record(entity_name: str, row: str, values: Mapping[str, str | None], references: RecordReferences,
                 *, today: date) -> list[tuple[str, str, str, str, str, str, str]]:
    """The problems :func:`spinereg.data.validate` reports for one new record.

    Parameters
    ----------
    entity_name : str
        The record's entity.
    row : str
        Its row label in the problems (the record's key).
    values : mapping of column -> text or None
        The record as an import reads it from a file: every value as text (None or
        absent when missing); see :func:`spinereg.registry.raw_value`.
    references : RecordReferences
        The registry rows the record refers to.
    today : date
        No date may lie after it (``validate``'s ``extract_date``).

    Returns
    -------
    list of tuples
        ``(entity, row, column, value, rule, severity, message)`` per problem, in the
        order of ``validate``'s report; empty when the record is fine.
    """
    ent = entity(entity_name)
    out = _Problems(ent, row)
    raw = {c: values.get(c) for c in ent.column_names}
    bad = False
    for col in ent.columns:  # CPR numbers in text first, as the import
        v = raw[col.name]
        if col.type in _TEXT_TYPES and v is not None and contains_cpr(v):
            out.add(col.name, HIDDEN, "cpr-in-text",
                    f"{col.name} holds a CPR number (value hidden); a CPR number is never stored in clear: remove "
                    'it from the source, or let the mapping hide it (cpr_in_text = "redact")')
            bad = True
    parsed: dict[str, Any] = {}
    for col in ent.columns:
        parsed[col.name], col_bad = _column(col, raw[col.name], out)
        bad |= col_bad
    _cross(ent.name, parsed, bad, references, today, out)
    return out.done()


def _cross(name: str, p: dict[str, Any], bad: bool, refs: RecordReferences, today: date, out: _Problems) -> None:
    """The checks across entities (``_cross_checks`` of :mod:`._validate`) for one record."""

    for col, parent in _PARENTS.get(name, ()):
        v = p[col]
        if v is not None and not bad and v not in (refs.patients if parent == "patients" else refs.operations):
            out.add(col, _show(v), "reference", f"{col} matches no row of {parent}")
            bad = True
    for c in _DATE_CHECKS.get(name, ()):
        if p[c] is not None and p[c] > today and not bad:
            out.add(c, _show(p[c]), "date-order", f"{c} lies after the extract date {today.isoformat()}")
            bad = True
    if name == "patients" and p["death_date"] is not None and p["birth_date"] is not None \
            and p["death_date"] < p["birth_date"]:
        out.add("death_date", _show(p["death_date"]), "date-order", "death_date is before birth_date")
        bad = True
    if name == "operations":
        birth, death = refs.patients.get(p["patient_id"], (None, None)) if p["patient_id"] is not None \
            else (None, None)
        d = p["date"]
        if d is not None and birth is not None and d < birth:
            out.add("date", _show(d), "date-order", "operation date is before the patient's birth")
            bad = True
        if d is not None and death is not None and d > death:
            out.add("date", _show(d), "date-order", "operation date is after the patient's death")
            bad = True
    op_patient, op_date = refs.operations.get(p["operation_id"], (None, None)) \
        if p.get("operation_id") is not None else (None, None)
    if name in ("complications", "imaging_findings") and p["date"] is not None and op_date is not None \
            and p["date"] < op_date and not bad:
        what = "complication" if name == "complications" else "imaging"
        out.add("date", _show(p["date"]), "date-order", f"{what} is dated before the operation")
        bad = True
    if name == "proms":
        if op_patient is not None and p["patient_id"] is not None and op_patient != p["patient_id"] and not bad:
            out.add("operation_id", _show(p["operation_id"]), "reference",
                    "the questionnaire's operation belongs to another patient")
            bad = True
        answered = p["answer_date"]
        days = (answered - op_date).days if answered is not None and op_date is not None else None
        tp = p["timepoint"] or ""
        if tp not in ("baseline", "") and days is not None and days < 0 and not bad:
            out.add("answer_date", _show(answered), "date-order",
                    "follow-up questionnaire answered before the operation")
            bad = True
        death = refs.patients.get(p["patient_id"], (None, None))[1] if p["patient_id"] is not None else None
        if answered is not None and death is not None and answered > death and not bad:
            out.add("answer_date", _show(answered), "date-order", "questionnaire answered after the patient's death")
            bad = True
        for tp_name, tpd in timepoints().items():
            lo, hi = tpd.window
            if tp == tp_name and days is not None and (days < lo or days > hi) and not bad:
                out.add("answer_date", _show(answered), "window",
                        f"answered outside the {tp_name} window ({lo}..{hi} days from the operation)",
                        severity="warning")
    if name == "imaging_findings":
        level = p["level"]
        if level is not None and not bad and (str(p["operation_id"]), level) not in refs.treated_levels:
            out.add("level", _show(level), "level", "imaging finding at a level that was not treated in this operation")
            bad = True
        if p["leak"] is False:
            for col, rule, what in (("leak_type", "leak-type", "leak mechanism"),
                                    ("leak_location", "leak-location", "leak location")):
                if p[col] is not None:
                    out.add(col, _show(p[col]), rule, f"{what} given but no leak recorded", severity="warning")

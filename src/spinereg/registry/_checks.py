"""One source of validation rules: the import's validator, run on single records and on the registry.

A record written through :class:`~spinereg.registry.RegistryWriter` (a web form,
the API) is checked by :func:`spinereg.data.validate`, the same function an
import runs, with the registry's rows as references: so a form and an import
refuse the same value with the same rule and the same message.  A new record is
checked row-wise by :func:`spinereg.data.check_record`, which applies the same rules to
one record without pandas (~0.1 ms instead of ~40 ms) and is tested to give exactly what
``validate`` gives on thousands of generated records (``tests/data/test_record_check.py``);
an update, which can break rules of the rows that refer to it, goes through ``validate``.  The record
goes in as one mapped "source row" whose file is the entity name and whose row
label is its key; the problems come back as :class:`RecordProblem` (entity,
key, column, value, rule, severity, message: the columns of an import report).

Which registry rows are read (only these, never the whole registry):

* references: the patients and operations the record names, the operations'
  patients, and the treated levels of those operations (for the imaging level
  rule): what :data:`spinereg.data.REFERENCE_COLUMNS` lists;
* dependants, on an update of a patient or an operation: the rows whose
  cross-entity rules the change can break (a patient's operations and their
  questionnaires: *operation after death*, *questionnaire answered after death*;
  an operation's treated levels, complications, imaging findings and
  questionnaires: *dated before the operation*, *another patient*).  Only the
  rules across entities (``reference``, ``date-order``, ``level``) are reported
  for dependants: a problem a dependant has on its own is its own record's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd

from spinereg._errors import SpineregError
from spinereg.data import (
    REFERENCE_COLUMNS,
    Extract,
    MappedTable,
    Provenance,
    RecordReferences,
    check_record,
    conform,
    entity,
    validate,
)

__all__ = ["RecordProblem", "RecordValidationError", "problems_of", "raw_value"]

#: Rules across entities: the ones reported for dependants of a changed record.
CROSS_RULES = frozenset({"reference", "date-order", "level"})


@dataclass(frozen=True)
class RecordProblem:
    """One problem of a record, as an import report lists it.

    Attributes
    ----------
    entity, key : str
        The record (composite keys joined by ``/``); a dependant's own entity and key
        when the change would break a rule of a row that refers to the record.
    column : str
        The field (tidy column).
    value : str
        The value as shown in an import report (quoted text, ``(empty)``; a CPR
        number shown as ``[CPR number hidden]``).
    rule : str
        The import validator's rule (``required``, ``type``, ``range``, ``code``,
        ``pattern``, ``cpr-in-text``, ``reference``, ``date-order``, ``level``,
        ``window``, ``leak-type``).
    severity : str
        ``error`` (the write is refused) or ``warning`` (it is not).
    message : str
        The import validator's message.
    """

    entity: str
    key: str
    column: str
    value: str
    rule: str
    severity: str
    message: str

    def __str__(self) -> str:
        val = f" value {self.value}:" if self.value else ""
        return f"{self.entity} {self.key!r}, field {self.column!r}:{val} {self.message} [{self.rule}, {self.severity}]"


class RecordValidationError(SpineregError):
    """A record breaks the import's validation rules; :attr:`problems` lists each
    (:class:`RecordProblem`), the message names field, value and rule."""

    def __init__(self, entity_name: str, key: str, problems: Iterable[RecordProblem]) -> None:
        self.problems: tuple[RecordProblem, ...] = tuple(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{entity_name} {key!r} refused, nothing was written:\n{lines}")


def raw_value(v: Any) -> str | None:
    """A form value as an import reads it from a file: text (None when missing)."""
    if v is None or v is pd.NA:
        return None
    if hasattr(v, "item") and not isinstance(v, str | bytes):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, datetime):
        return v.date().isoformat()
    if isinstance(v, date):
        return v.isoformat()
    if v is pd.NaT:
        return None
    return str(v)


def _chunk(entity_name: str, rows: Sequence[Mapping[str, Any]]) -> MappedTable:
    ent = entity(entity_name)
    # every column: a field left out of a form is an empty cell (as in a file with the column)
    frame = pd.DataFrame({c: pd.Series([raw_value(r.get(c)) for r in rows], dtype=object) for c in ent.column_names})
    frame["_row"] = pd.Series(["/".join(str(r.get(k)) for k in ent.key) for r in rows], dtype=object)
    return MappedTable(entity_name, frame, Provenance(entity_name, "record"))


def _rows(alias: str, entity_name: str, **filters: Any) -> list[dict[str, Any]]:
    from spinereg.registry._audit import model_row
    from spinereg.registry.models import ENTITY_MODELS

    return [model_row(o) for o in ENTITY_MODELS[entity_name].objects.using(alias).filter(**filters)]


def _references(alias: str, patient_ids: set[str], operation_ids: set[str]) -> Extract:
    """The reference rows (:data:`REFERENCE_COLUMNS`) of these patients and operations."""
    from spinereg.registry.models import Operation, Patient, TreatedLevel

    ops = list(Operation.objects.using(alias).filter(operation_id__in=sorted(operation_ids))
               .values_list(*REFERENCE_COLUMNS["operations"]))
    patient_ids = patient_ids | {str(o[1]) for o in ops}
    pats = list(Patient.objects.using(alias).filter(patient_id__in=sorted(patient_ids))
                .values_list(*REFERENCE_COLUMNS["patients"]))
    lvls = list(TreatedLevel.objects.using(alias).filter(operation_id__in=sorted(operation_ids))
                .values_list(*REFERENCE_COLUMNS["treated_levels"]))
    tables = {}
    for name, rows in (("patients", pats), ("operations", ops), ("treated_levels", lvls)):
        frame = pd.DataFrame.from_records(rows, columns=list(REFERENCE_COLUMNS[name]))
        tables[name] = conform(frame, name)
    return Extract(tables)


def _dependants(alias: str, entity_name: str, key: str) -> dict[str, list[dict[str, Any]]]:
    if entity_name == "patients":
        ops = _rows(alias, "operations", patient_id=key)
        ids = [o["operation_id"] for o in ops]
        return {"operations": ops, "proms": _rows(alias, "proms", operation_id__in=ids) if ids else []}
    if entity_name == "operations":
        return {name: _rows(alias, name, operation_id=key)
                for name in ("treated_levels", "proms", "complications", "imaging_findings")}
    return {}


def _record_references(alias: str, entity_name: str, patient_ids: set[str],
                       operation_ids: set[str]) -> RecordReferences:
    """The reference rows of :func:`_references`, as plain values for :func:`spinereg.data.check_record`
    (plain SQL: this runs on every single-record write; the treated levels only for an imaging finding,
    the one rule that reads them)."""
    from django.db import connections

    from spinereg.registry.models import Operation, Patient, TreatedLevel

    conn = connections[alias]

    def select(model: Any, cols: Sequence[str], key: str, ids: set[str]) -> list[tuple[Any, ...]]:
        if not ids:
            return []
        q = conn.ops.quote_name
        marks = ", ".join(["%s"] * len(ids))
        with conn.cursor() as cur:
            cur.execute(f"SELECT {', '.join(q(c) for c in cols)} FROM {q(model._meta.db_table)} "
                        f"WHERE {q(key)} IN ({marks})", sorted(ids))
            return list(cur.fetchall())

    ops = {str(i): (None if p is None else str(p), _day(d))
           for i, p, d in select(Operation, REFERENCE_COLUMNS["operations"], "operation_id", operation_ids)}
    patient_ids = patient_ids | {p for p, _ in ops.values() if p is not None}
    pats = {str(i): (_day(b), _day(d))
            for i, b, d in select(Patient, REFERENCE_COLUMNS["patients"], "patient_id", patient_ids)}
    lvls = frozenset((str(o), str(lv)) for o, lv in select(
        TreatedLevel, REFERENCE_COLUMNS["treated_levels"], "operation_id",
        operation_ids if entity_name == "imaging_findings" else set()))
    return RecordReferences(pats, ops, lvls)


def _day(v: Any) -> date | None:
    if v is None:
        return None
    return v.date() if isinstance(v, datetime) else v if isinstance(v, date) else date.fromisoformat(str(v)[:10])


def problems_of(alias: str, entity_name: str, key: str, row: Mapping[str, Any], *,
                update: bool) -> list[RecordProblem]:
    """Every problem of ``row`` (the whole record as it would be stored) by the import's
    rules, with the registry's rows as references (see the module docstring).

    A new record (``update`` false) is checked row-wise by :func:`spinereg.data.check_record`
    (the same rules and messages as :func:`spinereg.data.validate`, tested equal); an update,
    whose change can break rules of the rows that refer to it, by ``validate`` itself."""
    if not update:
        ent = entity(entity_name)
        label = "/".join(str(row.get(k)) for k in ent.key)
        pid, oid = row.get("patient_id"), row.get("operation_id")
        refs = _record_references(alias, entity_name, {str(pid)} if pid is not None else set(),
                                  {str(oid)} if oid is not None else set())
        found = check_record(entity_name, label, {c: raw_value(row.get(c)) for c in ent.column_names}, refs,
                             today=date.today())
        return [RecordProblem(*p) for p in found
                if p[1] == key or (p[4] in CROSS_RULES and p[5] == "error")]
    deps = _dependants(alias, entity_name, key)
    chunks = [_chunk(entity_name, [row])]
    patient_ids = {str(row["patient_id"])} if row.get("patient_id") is not None else set()
    operation_ids = {str(row["operation_id"])} if row.get("operation_id") is not None else set()
    for name, rows in deps.items():
        if rows:
            chunks.append(_chunk(name, rows))
            operation_ids |= {str(r["operation_id"]) for r in rows}
    existing = _references(alias, patient_ids, operation_ids)
    report = validate(chunks, existing=existing)[1]
    out = []
    for p in report.problems.itertuples(index=False):
        own = p.entity == entity_name and str(p.row) == key
        if not own and (p.rule not in CROSS_RULES or p.severity != "error"):
            continue
        out.append(RecordProblem(str(p.entity), str(p.row), str(p.column), str(p.value), str(p.rule),
                                 str(p.severity), str(p.message)))
    return out

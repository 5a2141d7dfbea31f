"""The row-wise checker of one record (``check_record``) against the import's validator.

The oracle is :func:`spinereg.data.validate` itself (the rules an import applies, tested
against hand-made files in ``test_validate.py``): for thousands of generated records of
every entity, valid and invalid in every rule (required, type, integer, range, code,
pattern, CPR in text, reference, date order, window, level, leak type), both must give the
same problems, in the same order, with the same values and messages.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

import pandas as pd
import pytest

from spinereg.data import (
    Extract,
    MappedTable,
    Provenance,
    RecordReferences,
    check_record,
    conform,
    entities,
    entity,
    validate,
)

TODAY = date(2024, 1, 1)
PATIENTS = {"P1": (date(1950, 1, 1), None), "P2": (date(1940, 5, 5), date(2016, 1, 1)), "P3": (None, None)}
OPERATIONS = {"O1": ("P1", date(2015, 3, 1)), "O2": ("P2", date(2015, 6, 1)), "O3": ("P1", None)}
LEVELS = frozenset({("O1", "L1"), ("O1", "L2"), ("O2", "T12")})
CPR_SHAPED = "020255-4322"  # a CPR-shaped number (made up), as in the CPR tests

NUMBERS = ["5", " 7 ", "5.0", "5.5", "abc", "", "  ", None, "1e1", "-3", "+2", "999999", ".5", "5.", "1e999",
           "0x10", "\u0663", "3 4", "0", "1", "2", "4", "15", "18", "20", "21", "-0", "1E0", "nan", "inf"]
DATES = ["2015-03-01", " 2015-03-01 ", "2015-3-1", "2015-02-30", "20150301", "1677-09-21", "1677-09-22",
         "2262-04-11", "2262-04-12", "9999-01-01", "2099-01-01", "2023-12-31", "2024-01-02", "", None,
         "2015-03-01T10:00", "1930-01-01", "1960-06-06", "2016-02-02", "2015-01-01", "yesterday"]
BOOLS = ["true", "FALSE", " yes ", "nej", "maybe", "", None, "1", "2", "Ja", "t", "F"]
TEXTS = ["some text", "", "  ", None, f"pt {CPR_SHAPED} called", "0202554322", "x" * 40, " padded "]
CODES = ["KNAG40", "KNAG40, KNAG41", "KNAG40 ;KNAG41", "DC795", "bad code", ";", "KNAG40;;", "", None, "knag40",
         "C795", "C79;C795A", f"KNAG40,{CPR_SHAPED}"]


def _category(col: Any, rng: random.Random) -> str | None:
    pick = rng.random()
    good = rng.choice(col.values)
    if pick < 0.55:
        return good
    return rng.choice([f" {good} ", good.upper() if good.upper() != good else good.lower(), "X", "", None,
                       CPR_SHAPED, "  "])


def _key(name: str, i: int, rng: random.Random) -> str | None:
    pick = rng.random()
    if pick < 0.85:
        return f"{name[0].upper()}{i}"
    return rng.choice([f" {name[0].upper()}{i} ", "", None, CPR_SHAPED])


def _ref(pool: list[str], rng: random.Random) -> str | None:
    if rng.random() < 0.8:
        return rng.choice(pool)
    return rng.choice(["PX", "OX", "", None, f" {pool[0]} "])


def _answer_date(rng: random.Random, op: str | None) -> str | None:
    if rng.random() < 0.25:
        return rng.choice(DATES)
    base = OPERATIONS.get(op or "", (None, date(2015, 3, 1)))[1] or date(2015, 3, 1)
    return (base + timedelta(days=rng.choice([-100, -91, -90, -10, -1, 0, 1, 59, 60, 90, 150, 151, 269, 270, 365,
                                               545, 546, 629, 630, 900, 901, 2000]))).isoformat()


def _fine(col: Any, rng: random.Random) -> str | None:
    """A valid value (the record may still break a rule across entities)."""
    if col.type in ("int", "float"):
        return str(rng.randint(int(col.min), int(col.max)))
    if col.type == "date":
        return "2015-04-01"
    if col.type == "bool":
        return rng.choice(["true", "false"])
    if col.type == "category":
        return rng.choice(col.values)
    if col.type == "codes":
        return "KNAG40" if col.name == "procedure_codes" else "C795"
    return "some text"


def _record(ent: Any, i: int, rng: random.Random) -> dict[str, str | None]:
    row: dict[str, str | None] = {}
    fine = rng.random() < 0.3
    for col in ent.columns:
        name = col.name
        if fine and name not in ent.key and name not in ("patient_id", "operation_id", "answer_date"):
            row[name] = _fine(col, rng)
            continue
        if name in ent.key and name not in ("operation_id", "level"):
            row[name] = _key(ent.name, i, rng)
        elif name == "patient_id":
            row[name] = _ref([*PATIENTS], rng)
        elif name == "operation_id":
            row[name] = _ref([*OPERATIONS], rng)
        elif name == "answer_date":
            row[name] = _answer_date(rng, row.get("operation_id"))
        elif rng.random() < 0.35 and not col.required:
            row[name] = None  # most optional fields are left out, as in real records
        elif col.type in ("int", "float"):
            if col.min is not None and col.max is not None and rng.random() < 0.5:
                row[name] = str(rng.randint(int(col.min) - 1, int(col.max) + 1))
            else:
                row[name] = rng.choice(NUMBERS)
        elif col.type == "date":
            row[name] = rng.choice(DATES)
        elif col.type == "bool":
            row[name] = rng.choice(BOOLS)
        elif col.type == "category":
            row[name] = _category(col, rng)
        elif col.type == "codes":
            row[name] = rng.choice(CODES)
        else:
            row[name] = rng.choice(TEXTS)
    if fine and ent.name == "imaging_findings":  # a treated level, and leak details only with a leak
        row["operation_id"], row["level"] = rng.choice(sorted(LEVELS))
        if row["leak"] == "false":
            row["leak_type"] = row["leak_location"] = None
    return row


def _existing() -> Extract:
    pats = pd.DataFrame([(k, b, d) for k, (b, d) in PATIENTS.items()],
                        columns=["patient_id", "birth_date", "death_date"])
    ops = pd.DataFrame([(k, p, d) for k, (p, d) in OPERATIONS.items()], columns=["operation_id", "patient_id", "date"])
    lvls = pd.DataFrame(sorted(LEVELS), columns=["operation_id", "level"])
    for frame, cols in ((pats, ["birth_date", "death_date"]), (ops, ["date"])):
        for c in cols:
            frame[c] = pd.to_datetime(frame[c])
    return Extract({"patients": conform(pats, "patients"), "operations": conform(ops, "operations"),
                    "treated_levels": conform(lvls, "treated_levels")})


def _batches(ent: Any, rows: list[dict[str, str | None]]) -> list[list[int]]:
    """Rows split so that no batch holds a (trimmed) key twice: check_record sees one record, so
    repeated keys (duplicates, conflicts: the import's rules across rows) are left out."""
    batches: list[tuple[set[tuple[str, ...]], list[int]]] = []
    for i, r in enumerate(rows):
        k = tuple((r.get(c) or "").strip() for c in ent.key)
        for keys, members in batches:
            if k not in keys:
                keys.add(k)
                members.append(i)
                break
        else:
            batches.append(({k}, [i]))
    return [m for _, m in batches]


def _by_validate(ent: Any, rows: list[dict[str, str | None]], labels: list[str]) -> dict[str, list[tuple[str, ...]]]:
    out: dict[str, list[tuple[str, ...]]] = {label: [] for label in labels}
    existing = _existing()
    for members in _batches(ent, rows):
        frame = pd.DataFrame({c: pd.Series([rows[i].get(c) for i in members], dtype=object) for c in ent.column_names})
        frame["_row"] = pd.Series([labels[i] for i in members], dtype=object)
        report = validate([MappedTable(ent.name, frame, Provenance(ent.name, "record"))], existing=existing,
                          extract_date=TODAY)[1]
        for p in report.problems.itertuples(index=False):
            out[str(p.row)].append((str(p.entity), str(p.row), str(p.column), str(p.value), str(p.rule),
                                    str(p.severity), str(p.message)))
    return out


@pytest.mark.parametrize("name", [e.name for e in entities()])
def test_check_record_gives_what_validate_gives(name: str) -> None:
    ent = entity(name)
    rng = random.Random(f"record-check-{name}")
    n = 800 if name == "proms" else 400
    rows = [_record(ent, i, rng) for i in range(n)]
    labels = [f"r{i}" for i in range(n)]
    expected = _by_validate(ent, rows, labels)
    refs = RecordReferences(PATIENTS, OPERATIONS, LEVELS)
    rules: set[str] = set()
    for row, label in zip(rows, labels, strict=True):
        got = [tuple(p) for p in check_record(name, label, row, refs, today=TODAY)]
        assert got == expected[label], (row, got, expected[label])
        rules |= {p[4] for p in got}
    # the generated records reach every rule the entity has (so the comparison covers it)
    must = {"required", "type", "cpr-in-text"} | {
        "patients": {"code", "date-order"},
        "operations": {"range", "code", "pattern", "reference", "date-order"},
        "treated_levels": {"range", "code", "reference"},
        "proms": {"range", "code", "reference", "date-order", "window"},
        "complications": {"code", "reference", "date-order"},
        "imaging_findings": {"code", "reference", "date-order", "level", "leak-type", "leak-location"},
    }[name]
    assert must <= rules, must - rules
    assert sum(1 for label in labels if not expected[label]) > n // 100  # and fine records too


def test_a_fine_record_has_no_problem_and_a_bad_one_is_named() -> None:
    refs = RecordReferences(PATIENTS, OPERATIONS, LEVELS)
    fine = {"prom_id": "Q1", "patient_id": "P1", "operation_id": "O1", "timepoint": "3m", "answer_date": "2015-06-01",
            "nrs_back": "4"}
    assert check_record("proms", "Q1", fine, refs, today=TODAY) == []
    late = {**fine, "answer_date": "2015-09-01"}  # 184 days: outside 60..150
    assert check_record("proms", "Q1", late, refs, today=TODAY) == [
        ("proms", "Q1", "answer_date", "'2015-09-01'", "window",
         "warning", "answered outside the 3m window (60..150 days from the operation)")]
    other = {**fine, "patient_id": "P2"}
    assert [p[4] for p in check_record("proms", "Q1", other, refs, today=TODAY)] == ["reference"]

"""One source of validation rules (issue 12, item 5): a record written through the
write service is checked by the import's validator, with the same rules and messages.

Each case puts the same bad value once through an import of tidy CSV files (the
shipped ``tidy`` mapping) and once through ``RegistryWriter``; both must refuse it
with the same column, value, rule and message, and the writer must write nothing.
On SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from spinereg.registry import (
    RecordProblem,
    RecordValidationError,
    RegistryWriter,
    audit_entries,
    import_files,
    load_extract,
    registry_counts,
)
from tests.registry.test_bad_input import KEY, write_files

DATASET = "base"


def _base(registry: str, tmp_path: Path) -> RegistryWriter:
    result = import_files(registry, "tidy", write_files(tmp_path / "base"), key=KEY, dataset={"name": DATASET})
    assert result.written, result.report.to_text()
    return RegistryWriter(registry, DATASET, who="surgeon:anna")


# (entity, row of the base files, key, column, bad value, expected rule)
CASES = [
    ("proms", 0, "Q1", "eq5d3l_mo", "7", "range"),                 # an out-of-range PROM item
    ("proms", 0, "Q1", "odi_3", "2.5", "type"),                    # not an integer
    ("operations", 0, "O1", "patient_id", "P9", "reference"),      # an operation of an unknown patient
    ("operations", 0, "O1", "date", "2015-02-30", "type"),         # no such date
    ("operations", 0, "O1", "department", "ward 020255-4322", "cpr-in-text"),  # a CPR number inside text
    ("operations", 0, "O1", "asa_class", "9", "range"),
    ("operations", 0, "O1", "procedure_category", "laminectomy", "code"),
    ("operations", 0, "O1", "diagnosis_codes", "C79.5", "pattern"),
    ("operations", 1, "O2", "date", "2017-01-01", "date-order"),   # after the patient's death (2016-05-01)
    ("proms", 2, "Q3", "answer_date", "2016-06-01", "date-order"),  # answered after the patient's death
    ("imaging_findings", 0, "F1", "date", "2015-01-01", "date-order"),  # imaging before the operation
    ("complications", 0, "C1", "clavien_dindo", "VI", "code"),
]


@pytest.mark.parametrize(("ent", "row", "key", "column", "value", "rule"), CASES,
                         ids=[f"{c[0]}.{c[3]}-{c[5]}" for c in CASES])
def test_import_and_writer_give_the_same_problem(registry: str, tmp_path: Path, ent: str, row: int, key: str,
                                                 column: str, value: str, rule: str) -> None:
    writer = _base(registry, tmp_path)
    # the import of the same files with the one bad value
    files = write_files(tmp_path / "bad", {(ent, row): {column: value}})
    result = import_files(registry, "tidy", files, key=KEY, dataset={"name": DATASET}, update=True)
    assert not result.written
    errors = result.report.errors
    got = errors[(errors["entity"] == ent) & (errors["column"] == column)]
    assert len(got) == 1, result.report.to_text()
    imported = got.iloc[0]
    assert imported["rule"] == rule
    before, stored = registry_counts(registry), load_extract(registry)[ent].astype(str).to_dict()
    # the writer: the same rule, message, column and shown value; nothing written
    with pytest.raises(RecordValidationError) as exc:
        writer.update(ent, key, {column: value}, reason="test")
    problems = [p for p in exc.value.problems if p.column == column]
    assert [(p.entity, p.key, p.column, p.value, p.rule, p.message) for p in problems] == [
        (ent, key, imported["column"], imported["value"], imported["rule"], imported["message"])]
    assert imported["message"] in str(exc.value) and f"[{rule}, error]" in str(exc.value)
    assert "4322" not in str(exc.value)
    assert registry_counts(registry) == before
    assert load_extract(registry)[ent].astype(str).to_dict() == stored
    # check() shows the same problem before saving, and writes nothing either
    assert [p for p in writer.check(ent, {column: value}, key=key) if p.severity == "error"] == list(exc.value.problems)
    assert registry_counts(registry) == before


def test_create_is_checked_like_an_import_row(registry: str, tmp_path: Path) -> None:
    writer = _base(registry, tmp_path)
    op = {"operation_id": "O3", "patient_id": "P9", "date": "2016-01-10", "procedure_category": "vertebroplasty",
          "indication": "cancer_vcf", "asa_class": 9, "diagnosis_codes": "C79.5"}
    files = write_files(tmp_path / "bad", extra={"operations": [{k: str(v) for k, v in op.items()}]})
    report = import_files(registry, "tidy", files, key=KEY, dataset={"name": DATASET}).report
    imported = report.errors[report.errors["entity"] == "operations"]
    expected = sorted(zip(imported["column"], imported["value"], imported["rule"], imported["message"], strict=True))
    assert {r for _, _, r, _ in expected} == {"range", "pattern"}
    before = registry_counts(registry)
    with pytest.raises(RecordValidationError) as exc:
        writer.create("operations", op)
    assert sorted((p.column, p.value, p.rule, p.message) for p in exc.value.problems) == expected
    assert registry_counts(registry) == before
    # a record without errors is created; a missing required field is the import's "required"
    # with those fixed, the unknown patient: the import's "reference" (checked once a row has no error of its own)
    fixed = {**op, "asa_class": 2, "diagnosis_codes": "C795"}
    assert [(p.column, p.rule, p.message) for p in writer.check("operations", fixed)] == [
        ("patient_id", "reference", "patient_id matches no row of patients")]
    assert writer.check("operations", {**fixed, "patient_id": "P1"}) == []
    assert writer.create("operations", {**fixed, "patient_id": "P1"}) == "O3"
    missing = writer.check("operations", {"operation_id": "O4", "patient_id": "P1", "date": "2016-02-01"})
    assert {(p.column, p.rule) for p in missing} == {("procedure_category", "required")}
    assert all(p.message == f"required {p.column} is missing" for p in missing)


def test_a_change_that_breaks_the_rows_referring_to_it(registry: str, tmp_path: Path) -> None:
    """A death date before the patient's operation and questionnaires: refused, naming those rows."""
    writer = _base(registry, tmp_path)
    # P1: operation O1 on 2015-02-10, questionnaires Q1 (2015-02-01) and Q2 (2015-05-12)
    probs = writer.check("patients", {"death_date": "2015-03-01", "death_source": "cpr_registry"}, key="P1")
    assert sorted((p.entity, p.key, p.column, p.rule, p.message) for p in probs) == [
        ("proms", "Q2", "answer_date", "date-order", "questionnaire answered after the patient's death")]
    with pytest.raises(RecordValidationError, match="Q2"):
        writer.update("patients", "P1", {"death_date": "2015-03-01", "death_source": "cpr_registry"})
    probs = writer.check("patients", {"death_date": "2015-02-05"}, key="P1")
    assert sorted((p.entity, p.key, p.rule) for p in probs) == [
        ("operations", "O1", "date-order"), ("proms", "Q2", "date-order")]
    # moving the operation after its imaging and complication dates
    probs = writer.check("operations", {"date": "2015-02-12"}, key="O1")
    assert sorted((p.entity, p.key, p.message) for p in probs) == [
        ("imaging_findings", "F1", "imaging is dated before the operation"),
        ("imaging_findings", "F2", "imaging is dated before the operation")]
    # a death after every dated row is recorded, with its source, audited
    writer.update("patients", "P1", {"death_date": "2015-06-01", "death_source": "cpr_registry"})
    p1 = load_extract(registry)["patients"].set_index("patient_id").loc["P1"]
    assert str(p1["death_date"].date()) == "2015-06-01" and p1["death_source"] == "cpr_registry"
    last = audit_entries(registry).iloc[-1]
    assert (last["action"], last["key"], last["actor"]) == ("update", "P1", "surgeon:anna")


def test_warnings_are_shown_but_do_not_refuse(registry: str, tmp_path: Path) -> None:
    writer = _base(registry, tmp_path)
    # a 3-month questionnaire answered 30 days after the operation: outside its window (60..150)
    q = {"prom_id": "Q9", "patient_id": "P1", "operation_id": "O1", "timepoint": "3m", "answer_date": "2015-03-12",
         "nrs_back": 4}
    probs = writer.check("proms", q)
    assert probs == [RecordProblem("proms", "Q9", "answer_date", "'2015-03-12'", "window", "warning",
                                   "answered outside the 3m window (60..150 days from the operation)")]
    assert writer.create("proms", q) == "Q9"
    assert "Q9" in set(load_extract(registry)["proms"]["prom_id"])

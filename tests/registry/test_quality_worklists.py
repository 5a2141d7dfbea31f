"""Worklists (issue 12, item 8): operations with missing forms, and the data-quality
problems the import validator finds in the registry's own rows, per dataset and site.
On SQLite and PostgreSQL; the expected rows are worked out by hand from the small
registry of ``test_store.small_extract``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from spinereg.registry import (
    MISSING_FORMS,
    RegistryWriter,
    import_extract,
    import_files,
    missing_forms,
    quality_problems,
)
from tests.registry.test_bad_input import KEY, write_files
from tests.registry.test_store import small_extract


def _load(registry: str) -> RegistryWriter:
    x = small_extract()
    x.tables["operations"]["hospital"] = pd.Series(["Odense", "Aarhus"], dtype="string")
    import_extract(registry, x, dataset={"name": "A"})
    return RegistryWriter(registry, "A", who="dm:bo")


def _rows(frame: pd.DataFrame, cols: list[str]) -> list[tuple[object, ...]]:
    return [tuple(r) for r in frame[cols].astype(object).itertuples(index=False)]


def test_missing_forms(registry: str) -> None:
    w = _load(registry)
    # o1: levels L1, L2, each with an imaging finding, a baseline questionnaire: complete;
    # o2: level T12 with a finding, no questionnaire at all
    got = missing_forms(registry)
    assert _rows(got, ["dataset", "hospital", "operation_id", "patient_id", "form", "levels"]) == [
        ("A", "Aarhus", "o2", "p2", "baseline_questionnaire", "")]
    assert str(got["date"].iloc[0].date()) == "2015-03-01"
    # a new operation without levels; a third level for o1, not yet reviewed; o2's baseline arrives
    w.create("operations", {"operation_id": "o3", "patient_id": "p1", "date": "2016-05-01", "hospital": "Odense",
                            "procedure_category": "kyphoplasty"})
    w.create("treated_levels", {"operation_id": "o1", "level": "T11"})
    w.create("treated_levels", {"operation_id": "o1", "level": "L3"})
    w.create("proms", {"prom_id": "q9", "patient_id": "p2", "operation_id": "o2", "timepoint": "baseline",
                       "answer_date": "2015-02-20"})
    # another dataset's operation, not a cement augmentation: no treated levels expected
    RegistryWriter(registry, "B").create("operations", {"operation_id": "b1", "patient_id": "p1",
                                                        "date": "2017-01-01", "procedure_category": "other"})
    got = missing_forms(registry)
    assert _rows(got, ["dataset", "hospital", "operation_id", "form", "levels"]) == [
        ("A", "Odense", "o1", "imaging_review", "L3;T11"),
        ("A", "Odense", "o3", "treated_levels", ""),
        ("A", "Odense", "o3", "baseline_questionnaire", ""),
        ("B", pd.NA, "b1", "baseline_questionnaire", ""),
    ]
    assert set(got["form"]) <= set(MISSING_FORMS)
    only_b = missing_forms(registry, dataset="B")
    assert list(only_b["operation_id"]) == ["b1"]
    assert missing_forms(registry, dataset="nobody").empty


def test_quality_problems_are_the_import_validators(registry: str, tmp_path: Path) -> None:
    """Rows that break a rule today: the same rule and message as an import of them would give."""
    from spinereg.registry._guard import writes_allowed
    from spinereg.registry.models import Operation, Patient, PromResponse

    _load(registry)
    assert quality_problems(registry).empty
    # rows written before a rule, or by hand: planted past the write service's checks
    with writes_allowed(registry):
        q = PromResponse.objects.using(registry).get(prom_id="q1")
        q.eq5d3l_mo = 7
        q.save(using=registry)
        p = Patient.objects.using(registry).get(patient_id="p1")
        p.death_date = pd.Timestamp("2015-02-01").date()  # after operation o1 (2015-01-01), before q2 (2015-04-01)
        p.save(using=registry)
        o = Operation.objects.using(registry).get(operation_id="o2")
        o.asa_class = 6
        o.save(using=registry)
    got = quality_problems(registry)
    cols = ["dataset", "hospital", "table", "key", "column", "value", "rule", "severity", "message"]
    assert _rows(got, cols) == [
        ("A", "Aarhus", "operations", "o2", "asa_class", "6", "range", "error", "asa_class must be within 1..5"),
        ("A", "Odense", "proms", "q1", "eq5d3l_mo", "7", "range", "error",
         "eq5d3l_mo (eq5d3l MO) must be within 1..3"),
        ("A", "Odense", "proms", "q2", "answer_date", "'2015-04-01'", "date-order", "error",
         "questionnaire answered after the patient's death"),
    ]
    # the messages are the import's: the same values in files give the same rule and message
    files = write_files(tmp_path / "f", {("proms", 0): {"eq5d3l_mo": "7"}, ("operations", 1): {"asa_class": "6"}})
    report = import_files(registry, "tidy", files, key=KEY).report
    for table, column in (("proms", "eq5d3l_mo"), ("operations", "asa_class")):
        imported = report.errors[(report.errors["entity"] == table) & (report.errors["column"] == column)]
        ours = got[(got["table"] == table) & (got["column"] == column)]
        assert list(imported["message"]) == list(ours["message"]) and list(imported["rule"]) == list(ours["rule"])
    assert quality_problems(registry, dataset="B").empty


def test_quality_warnings_and_sites(registry: str) -> None:
    w = _load(registry)
    # a 1-year questionnaire answered 100 days after the operation: outside its window (a warning)
    w.create("proms", {"prom_id": "q7", "patient_id": "p1", "operation_id": "o1", "timepoint": "1y",
                       "answer_date": "2015-04-11"})
    w.update("imaging_findings", "f3", {"leak_type": "yeom_b"})  # a leak type without a leak: a warning
    got = quality_problems(registry)
    assert _rows(got, ["hospital", "table", "key", "rule", "severity"]) == [
        ("Aarhus", "imaging_findings", "f3", "leak-type", "warning"),
        ("Odense", "proms", "q7", "window", "warning"),
    ]

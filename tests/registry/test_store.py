"""The registry store on SQLite and PostgreSQL: all-or-nothing, idempotent, audited."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from spinereg import IntegrityConflictError
from spinereg.data import Extract, conform
from spinereg.registry import ImportConflictError, acting_as, import_extract, load_extract, registry_counts, row_history


def small_extract() -> Extract:
    x = Extract.empty()
    x.tables["patients"] = conform(pd.DataFrame({
        "patient_id": ["p1", "p2"], "sex": ["male", "female"], "birth_date": ["1950-01-01", "1960-06-30"],
        "death_date": [None, "2016-02-01"], "death_source": [None, "cpr_registry"]}), "patients")
    x.tables["operations"] = conform(pd.DataFrame({
        "operation_id": ["o1", "o2"], "patient_id": ["p1", "p2"], "date": ["2015-01-01", "2015-03-01"],
        "procedure_category": ["vertebroplasty", "vertebroplasty"], "indication": ["cancer_vcf", "cancer_vcf"],
        "diagnosis_codes": ["C795;M4850", "C795"], "asa_class": [2, 3], "sins": [7, None]}), "operations")
    x.tables["treated_levels"] = conform(pd.DataFrame({
        "operation_id": ["o1", "o1", "o2"], "level": ["L1", "L2", "T12"],
        "cement_volume_ml": [3.5, None, 4.25]}), "treated_levels")
    x.tables["proms"] = conform(pd.DataFrame({
        "prom_id": ["q1", "q2"], "patient_id": ["p1", "p1"], "operation_id": ["o1", "o1"],
        "timepoint": ["baseline", "3m"], "answer_date": ["2014-12-20", "2015-04-01"],
        "eq5d3l_mo": [3, 2], "odi_1": [4, 2], "eqvas": [30, 65]}), "proms")
    x.tables["complications"] = conform(pd.DataFrame({
        "complication_id": ["c1"], "operation_id": ["o2"], "date": ["2015-03-02"],
        "type": ["cement_embolism"], "clavien_dindo": ["I"], "symptomatic": [False]}), "complications")
    x.tables["imaging_findings"] = conform(pd.DataFrame({
        "finding_id": ["f1", "f2", "f3"], "operation_id": ["o1", "o1", "o2"], "level": ["L1", "L2", "T12"],
        "modality": ["xray"] * 3, "date": ["2015-01-02"] * 2 + ["2015-03-02"], "leak": [True, False, False],
        "leak_type": ["yeom_b", None, None], "symptomatic": [False, None, None]}), "imaging_findings")
    return x


def test_round_trip_through_database(registry: str) -> None:
    x = small_extract()
    summary = import_extract(registry, x, mapping="test", files=["/secret/dir/a.csv"],
                             dataset={"name": "test set", "synthetic": True})
    assert summary.total_created == 2 + 2 + 3 + 2 + 1 + 3
    y = load_extract(registry)
    for name, df in x.tables.items():
        pd.testing.assert_frame_equal(df, y.tables[name], check_dtype=True)
    assert y.synthetic is True


def test_reimport_is_idempotent_and_updates_are_audited(registry: str) -> None:
    x = small_extract()
    import_extract(registry, x)
    before = registry_counts(registry)
    again = import_extract(registry, x)
    assert again.total_created == 0
    assert again.total_updated == 0
    assert registry_counts(registry) == before
    x.tables["operations"].loc[1, "asa_class"] = 4
    with pytest.raises(ImportConflictError, match=r"operations o2: asa_class 3 -> 4") as refused:
        import_extract(registry, x)
    assert [(c.entity, c.key, c.column, c.old, c.new) for c in refused.value.changes] == [
        ("operations", "o2", "asa_class", 3, 4)]
    assert registry_counts(registry) == before
    with acting_as("surgeon:anna"):
        changed = import_extract(registry, x, update=True)
    assert changed.updated["operations"] == 1
    assert [(c.key, c.column, c.old, c.new) for c in changed.changes] == [("o2", "asa_class", 3, 4)]
    from spinereg.registry.models import AuditEntry

    entry = AuditEntry.objects.using(registry).get(action="update")
    assert entry.actor == "surgeon:anna"
    assert entry.entity == "operations"
    assert entry.record_key == "o2"
    assert json.loads(entry.changes) == {"old": {"asa_class": 3}, "new": {"asa_class": 4}}
    assert load_extract(registry)["operations"]["asa_class"].tolist() == [2, 4]


def test_every_imported_row_has_audit_history(registry: str) -> None:
    x = small_extract()
    import_extract(registry, x)
    from spinereg.registry.models import AuditEntry

    creates = AuditEntry.objects.using(registry).filter(action="create")
    keys = {(a.entity, a.record_key) for a in creates}
    expected = set()
    for name, df in x.tables.items():
        ent_key = {"treated_levels": ["operation_id", "level"]}.get(name, [df.columns[0]])
        for row in df[ent_key].astype(str).itertuples(index=False):
            expected.add((name, "/".join(row)))
    assert keys == expected
    one = creates.get(entity="treated_levels", record_key="o2/T12")
    assert json.loads(one.changes) == {"snapshot": one.batch_id}  # the values: in the import's snapshot
    (h,) = row_history(registry, "treated_levels", "o2/T12")
    assert h.new == {"operation_id": "o2", "level": "T12", "cement_volume_ml": 4.25, "approach": None}


def test_writer_edits_and_deletes_are_audited(registry: str) -> None:
    import_extract(registry, small_extract())
    from spinereg.registry import RegistryWriter
    from spinereg.registry.models import AuditEntry

    writer = RegistryWriter(registry, "registry", who="nurse:bo")
    assert writer.update("complications", "c1", {"clavien_dindo": "II"}, reason="chart review") == {
        "old": {"clavien_dindo": "I"}, "new": {"clavien_dindo": "II"}}
    writer.delete("complications", "c1", reason="entered twice")
    upd = AuditEntry.objects.using(registry).get(action="update")
    assert (upd.actor, upd.reason) == ("nurse:bo", "chart review")
    assert json.loads(upd.changes) == {"old": {"clavien_dindo": "I"}, "new": {"clavien_dindo": "II"}}
    dele = AuditEntry.objects.using(registry).get(action="delete")
    assert (dele.record_key, dele.reason) == ("c1", "entered twice")
    assert json.loads(dele.changes)["old"]["type"] == "cement_embolism"
    assert "new" not in json.loads(dele.changes)


def test_failed_import_writes_nothing(registry: str) -> None:
    import_extract(registry, small_extract())
    before = registry_counts(registry)
    x = small_extract()
    x.tables["patients"] = pd.concat([x.tables["patients"], conform(pd.DataFrame({
        "patient_id": ["p3"], "sex": ["male"]}), "patients")], ignore_index=True)
    # an operation of an unknown patient violates the database's foreign key mid-transaction
    x.tables["operations"] = pd.concat([x.tables["operations"], conform(pd.DataFrame({
        "operation_id": ["o9"], "patient_id": ["nobody"], "date": ["2016-01-01"],
        "procedure_category": ["fusion"]}), "operations")], ignore_index=True)
    from django.db import IntegrityError

    with pytest.raises(IntegrityConflictError, match=r"(?i)foreign key") as refused:
        import_extract(registry, x)
    assert isinstance(refused.value.__cause__, IntegrityError)  # the database's own error, translated
    assert registry_counts(registry) == before


def _foreign_keys_enforced(alias: str) -> bool | None:
    from django.db import connections

    conn = connections[alias]
    if conn.vendor != "sqlite":
        return None
    with conn.cursor() as cursor:
        cursor.execute("PRAGMA foreign_keys")
        return bool(cursor.fetchone()[0])


def test_dangling_reference_is_refused_and_enforcement_restored(registry: str) -> None:
    """SQLite checks the rows an import wrote in bulk before the commit (not row by row):
    an inserted row, or an updated one, whose reference dangles rolls everything back, and
    the connection enforces foreign keys again afterwards."""
    import_extract(registry, small_extract())
    before = registry_counts(registry)
    inserted = small_extract()
    inserted.tables["proms"] = pd.concat([inserted.tables["proms"], conform(pd.DataFrame({
        "prom_id": ["q9"], "patient_id": ["p1"], "operation_id": ["o404"], "timepoint": ["1y"]}), "proms")],
        ignore_index=True)
    with pytest.raises(IntegrityConflictError, match=r"operation"):
        import_extract(registry, inserted)
    assert registry_counts(registry) == before
    assert _foreign_keys_enforced(registry) in (True, None)
    moved = small_extract()  # o2 re-imported with a patient that does not exist: an update
    moved.tables["operations"].loc[moved.tables["operations"]["operation_id"] == "o2", "patient_id"] = "p404"
    with pytest.raises(IntegrityConflictError, match=r"patient"):
        import_extract(registry, moved, update=True)
    assert registry_counts(registry) == before
    assert load_extract(registry)["operations"].set_index("operation_id").loc["o2", "patient_id"] == "p2"
    assert _foreign_keys_enforced(registry) in (True, None)


def test_load_references_is_what_validation_reads_of_the_registry(registry: str) -> None:
    """The rows validation checks an import against: the columns of REFERENCE_COLUMNS,
    equal (values and dtypes) to the same columns of the whole registry read back."""
    from spinereg.data._validate import REFERENCE_COLUMNS
    from spinereg.registry import load_references

    import_extract(registry, small_extract())
    refs, whole = load_references(registry), load_extract(registry)
    assert set(REFERENCE_COLUMNS) == {"patients", "operations", "treated_levels"}
    for name, cols in REFERENCE_COLUMNS.items():
        got = refs[name][list(cols)].sort_values(list(cols)).reset_index(drop=True)
        want = whole[name][list(cols)].sort_values(list(cols)).reset_index(drop=True)
        assert len(got) == len(small_extract()[name])
        pd.testing.assert_frame_equal(got, want)
    assert refs["proms"].empty and refs["complications"].empty and refs["imaging_findings"].empty

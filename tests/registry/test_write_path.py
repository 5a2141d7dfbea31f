"""The registry's one safe write path (issue 10), on SQLite and PostgreSQL.

Each test is one defect found by trying the registry as a new user would: a
silent overwrite, a CPR number in free text, another key, an audit bypass.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from spinereg import IntegrityConflictError, SiteKeyError
from spinereg.registry import (
    ImportConflictError,
    RegistryWriter,
    UnauditedWriteError,
    audit_entries,
    import_extract,
    import_files,
    load_extract,
    registry_counts,
    registry_info,
)
from tests.registry.test_bad_input import KEY, write_files
from tests.registry.test_store import small_extract


def source_mapping(tmp_path: Path) -> Path:
    """The shipped tidy mapping, but for a hospital's own files: local ids (namespaced)."""
    import spinereg.data

    text = (Path(spinereg.data.__file__).parent / "mappings" / "tidy.toml").read_text(encoding="utf-8")
    assert 'ids = "registry"' in text
    path = tmp_path / "hospital.toml"
    path.write_text(text.replace('ids = "registry"', 'ids = "source"').replace('name = "tidy"', 'name = "hospital"'),
                    encoding="utf-8")
    return path


def test_two_hospitals_same_source_ids_are_two_patients(registry: str, tmp_path: Path) -> None:
    """A second hospital's HOSP-001 is its own patient; the first hospital's is unchanged."""
    mapping = source_mapping(tmp_path)
    a = import_files(registry, mapping, write_files(tmp_path / "a"), key=KEY, dataset={"name": "Hospital A"})
    assert a.written, a.report.to_text()
    before = load_extract(registry)["patients"].set_index("patient_id")
    assert list(before.index) == ["hospital-a:P1", "hospital-a:P2"]
    # hospital B: the same ids, other people (another sex and birth date for P1)
    b = import_files(registry, mapping, write_files(tmp_path / "b", {("patients", 0): {
        "sex": "female", "birth_date": "1971-01-01"}}), key=KEY, dataset={"name": "Hospital B"})
    assert b.written, b.report.to_text()
    assert b.summary is not None and b.summary.total_updated == 0
    after = load_extract(registry)["patients"].set_index("patient_id")
    assert sorted(after.index) == ["hospital-a:P1", "hospital-a:P2", "hospital-b:P1", "hospital-b:P2"]
    assert after.loc["hospital-a:P1", "sex"] == "male"
    assert str(after.loc["hospital-a:P1", "birth_date"].date()) == "1945-03-10"
    assert after.loc["hospital-b:P1", "sex"] == "female"
    ops = load_extract(registry)["operations"].set_index("operation_id")
    assert ops.loc["hospital-b:O1", "patient_id"] == "hospital-b:P1"  # references namespaced alike
    info = registry_info(registry).datasets.set_index("name")
    assert info.loc["Hospital A", "patients"] == 2 and info.loc["Hospital B", "patients"] == 2


def test_changed_rows_need_update_and_are_listed(registry: str, tmp_path: Path) -> None:
    mapping = source_mapping(tmp_path)
    import_files(registry, mapping, write_files(tmp_path / "a"), key=KEY, dataset={"name": "H"})
    counts = registry_counts(registry)
    changed = write_files(tmp_path / "b", {("operations", 1): {"asa_class": "4"},
                                            ("patients", 0): {"death_date": "2017-01-02",
                                                              "death_source": "cpr_registry"}})
    # the dry run lists every changed key and column, old -> new, and writes nothing
    dry = import_files(registry, mapping, changed, key=KEY, dataset={"name": "H"}, dry_run=True)
    assert dry.preview is not None
    got = {(c.entity, c.key, c.column, c.old, c.new) for c in dry.preview.changes}
    assert got == {("operations", "h:O2", "asa_class", 3, 4),
                   ("patients", "h:P1", "death_date", None, "2017-01-02"),
                   ("patients", "h:P1", "death_source", None, "cpr_registry")}
    assert registry_counts(registry) == counts
    # without --update: refused, naming each change; nothing written
    with pytest.raises(ImportConflictError, match=r"h:O2: asa_class 3 -> 4"):
        import_files(registry, mapping, changed, key=KEY, dataset={"name": "H"})
    assert registry_counts(registry) == counts
    # with --update: applied, each change in the summary and in the audit trail
    done = import_files(registry, mapping, changed, key=KEY, dataset={"name": "H"}, update=True)
    assert done.summary is not None
    assert {(c.entity, c.key, c.column, c.old, c.new) for c in done.summary.changes} == got
    upd = audit_entries(registry, entity="operations", key="h:O2")
    assert list(upd["action"]) == ["create", "update"]
    assert json.loads(upd["old"].iloc[1]) == {"asa_class": 3} and json.loads(upd["new"].iloc[1]) == {"asa_class": 4}


def test_import_never_changes_another_datasets_rows(registry: str) -> None:
    """Registry ids (the tidy mapping) of rows that belong to another dataset: identical
    rows are left alone, a differing one is refused even with update."""
    import_extract(registry, small_extract(), dataset={"name": "A"})
    counts = registry_counts(registry)
    same = import_extract(registry, small_extract(), dataset={"name": "B"})
    assert (same.total_created, same.total_updated) == (0, 0)
    x = small_extract()
    x.tables["operations"].loc[0, "asa_class"] = 4
    with pytest.raises(ImportConflictError, match=r"another dataset \(A\)") as refused:
        import_extract(registry, x, dataset={"name": "B"}, update=True)
    assert [(c.key, c.column, c.dataset) for c in refused.value.changes] == [("o1", "asa_class", "A")]
    assert registry_counts(registry) == {**counts, "audit": counts["audit"]}
    assert load_extract(registry)["operations"]["asa_class"].tolist() == [2, 3]


def test_every_row_knows_its_dataset_and_batch(registry: str) -> None:
    from django.db import connections

    s = import_extract(registry, small_extract(), dataset={"name": "A"})
    with connections[registry].cursor() as cursor:
        for table in ("patients", "operations", "treated_levels", "proms", "complications", "imaging_findings"):
            cursor.execute(f"SELECT DISTINCT d.name, r.batch_id FROM spinereg_{table} AS r "
                           "JOIN spinereg_dataset AS d ON d.id = r.dataset_id")
            assert cursor.fetchall() == [("A", s.batch_id)], table
            cursor.execute(f"SELECT COUNT(*) FROM spinereg_{table} WHERE dataset_id IS NULL OR batch_id IS NULL")
            assert cursor.fetchone()[0] == 0


def test_cpr_inside_free_text_is_refused_and_never_stored(registry: str, tmp_path: Path) -> None:
    files = write_files(tmp_path / "f", {("operations", 0): {"department": "pt 020255-4322 called"}})
    before = registry_counts(registry)
    result = import_files(registry, "tidy", files, key=KEY)
    assert not result.written
    lines = result.report.to_text()
    assert "operations.csv" in lines and "department" in lines
    assert "020255" not in lines and "4322" not in lines
    assert registry_counts(registry) == before
    for form in ("pt 0202554322 called", "pt 020255 4322 called"):
        files = write_files(tmp_path / "g", {("operations", 0): {"department": form}})
        assert not import_files(registry, "tidy", files, key=KEY).written, form
    # the write service refuses it too, naming the field, the value hidden
    import_extract(registry, small_extract())
    from spinereg.registry import RecordValidationError

    with pytest.raises(RecordValidationError, match=r"field 'department'") as exc:
        RegistryWriter(registry, "registry").update("operations", "o1", {"department": "ring 020255-4322"})
    assert "4322" not in str(exc.value)
    assert [(p.column, p.rule) for p in exc.value.problems] == [("department", "cpr-in-text")]
    assert "4322" not in json.dumps(load_extract(registry)["operations"].astype(str).to_dict())


def test_another_site_key_is_refused(registry: str, tmp_path: Path) -> None:
    files = write_files(tmp_path / "f")
    assert import_files(registry, "tidy", files, key=KEY).written
    fingerprint = registry_info(registry).key_fingerprint
    assert fingerprint is not None and len(fingerprint) == 16
    counts = registry_counts(registry)
    with pytest.raises(SiteKeyError, match=r"fingerprint"):
        import_files(registry, "tidy", files, key=bytes(range(1, 33)))
    assert registry_counts(registry) == counts
    # a mistyped key file is not created: refused before anything is written
    missing = tmp_path / "typo.key"
    with pytest.raises(SiteKeyError, match=r"no site key"):
        import_files(registry, "tidy", files, key_file=missing)
    assert not missing.exists()


def test_validate_writes_no_database_and_no_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("SPINEREG_HOME", str(home))
    monkeypatch.delenv("SPINEREG_SITE_KEY", raising=False)
    files = write_files(tmp_path / "f")
    result = import_files(None, "tidy", files, dry_run=True)
    assert result.report.ok
    assert not home.exists()


def test_synth_writes_no_second_registry_into_one(db_url: str, tmp_path: Path) -> None:
    from tests.registry.test_cli_registry import run

    env = {"SPINEREG_HOME": str(tmp_path / "home"), "SPINEREG_DATABASE_URL": db_url}
    import os

    env = {**os.environ, **env}
    assert run(["synth", "--patients", "50", "--seed", "1"], env).returncode == 0
    again = run(["synth", "--patients", "50", "--seed", "2"], env)
    assert again.returncode == 1
    assert "already holds data" in again.stderr and "Traceback" not in again.stderr


# ---------------------------------------------------------------- the guard


def test_orm_writes_outside_the_service_are_refused(registry: str) -> None:
    from spinereg.registry.models import AuditEntry, Dataset, Operation, Patient

    import_extract(registry, small_extract())
    counts = registry_counts(registry)
    ops = Operation.objects.using(registry)
    with pytest.raises(UnauditedWriteError, match=r"QuerySet.update"):
        ops.filter(operation_id="o1").update(asa_class=5)
    with pytest.raises(UnauditedWriteError, match=r"bulk_create"):
        Patient.objects.using(registry).bulk_create([Patient(patient_id="p9")])
    with pytest.raises(UnauditedWriteError, match=r"QuerySet.delete"):
        AuditEntry.objects.using(registry).all().delete()
    o = ops.get(operation_id="o1")
    o.asa_class = 5
    with pytest.raises(UnauditedWriteError, match=r"Model.save"):
        o.save(using=registry)
    with pytest.raises(UnauditedWriteError, match=r"Model.delete"):
        ops.get(operation_id="o2").delete()
    with pytest.raises(UnauditedWriteError):
        Dataset.objects.using(registry).create(name="sneaky")
    assert registry_counts(registry) == counts
    assert load_extract(registry)["operations"]["asa_class"].tolist() == [2, 3]


RAW_WRITES = [
    "UPDATE spinereg_operations SET asa_class = 5",
    "DELETE FROM spinereg_imaging_findings",
    "INSERT INTO spinereg_patients (patient_id) VALUES ('p9')",
    "UPDATE spinereg_audit SET actor = 'nobody'",
    "DELETE FROM spinereg_audit",
    "UPDATE spinereg_import_snapshot SET n_rows = 0",
]


@pytest.mark.parametrize("sql", RAW_WRITES)
def test_raw_writes_are_refused(registry: str, sql: str) -> None:
    from django.db import DatabaseError, connections, transaction

    import_extract(registry, small_extract())
    counts = registry_counts(registry)
    audit = audit_entries(registry)
    with pytest.raises(DatabaseError, match=r"not authorized|outside the audited write service|append-only"), \
            transaction.atomic(using=registry), connections[registry].cursor() as cursor:
        cursor.execute(sql)
    assert registry_counts(registry) == counts
    pd.testing.assert_frame_equal(audit_entries(registry), audit)


def test_audit_is_append_only_even_inside_the_service(registry: str) -> None:
    """The database itself refuses changing or deleting audit entries (triggers), also
    for a client that lifted the write guard."""
    from django.db import DatabaseError, connections

    from spinereg.registry._guard import writes_allowed

    import_extract(registry, small_extract())
    n = registry_counts(registry)["audit"]
    for sql in ("UPDATE spinereg_audit SET actor = 'nobody'", "DELETE FROM spinereg_audit"):
        with pytest.raises(DatabaseError, match=r"append-only|not authorized"), writes_allowed(registry), \
                connections[registry].cursor() as cursor:
            cursor.execute(sql)
    assert registry_counts(registry)["audit"] == n


def test_writer_create_update_delete_one_audit_entry_each(registry: str) -> None:
    import_extract(registry, small_extract(), dataset={"name": "A"})
    w = RegistryWriter(registry, "A", who="surgeon:kim")
    assert w.create("operations", {"operation_id": "o3", "patient_id": "p1", "date": "2016-01-05",
                                   "procedure_category": "kyphoplasty", "asa_class": 2}) == "o3"
    with pytest.raises(IntegrityConflictError, match=r"exists already"):
        w.create("operations", {"operation_id": "o3", "patient_id": "p1", "date": "2016-01-05"})
    with pytest.raises(IntegrityConflictError, match=r"refer"):
        w.delete("patients", "p1", reason="test")
    from spinereg.registry import RecordValidationError

    with pytest.raises(RecordValidationError, match=r"asa_class") as bad:
        w.update("operations", "o3", {"asa_class": "seven"})
    assert [(p.column, p.value) for p in bad.value.problems] == [("asa_class", "'seven'")]  # as the import shows it
    w.update("operations", "o3", {"asa_class": 3}, reason="anaesthetist's note")
    w.delete("operations", "o3", reason="wrong patient")
    got = audit_entries(registry, entity="operations", key="o3")
    assert list(got["action"]) == ["create", "update", "delete"]
    assert set(got["actor"]) == {"surgeon:kim"}
    assert list(got["reason"]) == ["", "anaesthetist's note", "wrong patient"]
    assert json.loads(got["new"].iloc[0])["procedure_category"] == "kyphoplasty"
    assert json.loads(got["old"].iloc[2])["asa_class"] == 3
    # another dataset's record cannot be changed through the writer either
    with pytest.raises(IntegrityConflictError, match=r"belongs to dataset 'A'"):
        RegistryWriter(registry, "B").update("operations", "o1", {"asa_class": 4})


def test_cpr_in_a_dataset_name_is_refused(registry: str) -> None:
    from spinereg import PrivacyError

    with pytest.raises(PrivacyError, match=r"dataset name") as refused:
        import_extract(registry, small_extract(), dataset={"name": "ward 020255 4322"})
    assert "4322" not in str(refused.value)
    assert registry_counts(registry) == dict.fromkeys(registry_counts(registry), 0)


def test_nhs_hip_then_knee_of_one_year_are_separate_episodes(registry: str, tmp_path: Path) -> None:
    """The issue's defect: the knee file after the hip file of the same year updated
    135,464 hip rows with knee answers.  Now each file's episodes have their own ids."""
    from tests.test_nhs_proms import _nhs_file

    hip = import_files(registry, "nhs-proms", [_nhs_file(tmp_path, "Hip Replacement CCG 1819.csv", "Hip", 3)],
                       key=KEY, extract_date="2020-02-13")
    assert hip.written, hip.report.to_text()
    before = load_extract(registry)
    knee = import_files(registry, "nhs-proms", [_nhs_file(tmp_path, "Knee Replacement CCG 1819.csv", "Knee", 3,
                                                          vas=40)], key=KEY, extract_date="2020-02-13")
    assert knee.summary is not None, knee.report.to_text()
    assert (knee.summary.total_created, knee.summary.total_updated) == (3 + 3 + 6, 0)
    after = load_extract(registry)
    hip_proms = after["proms"][after["proms"]["prom_id"].str.contains("-hip-")]
    pd.testing.assert_frame_equal(hip_proms.reset_index(drop=True), before["proms"].reset_index(drop=True))
    assert set(after["proms"]["eqvas"]) == {70, 40}

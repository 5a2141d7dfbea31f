"""Record locking with an e-signature (issue 12, item 8), on SQLite and PostgreSQL.

A locked record changes only with a reason; the refusal names the lock; lock and
unlock are audit entries (who, meaning, reason) in the append-only trail.
"""

from __future__ import annotations

import json

import pytest

from spinereg import IntegrityConflictError, PrivacyError, SpineregError
from spinereg.registry import (
    RecordLockedError,
    RegistryWriter,
    audit_entries,
    import_extract,
    load_extract,
    lock_state,
    record_locks,
)
from tests.registry.test_store import small_extract


@pytest.fixture
def writer(registry: str) -> RegistryWriter:
    import_extract(registry, small_extract(), dataset={"name": "registry"})
    return RegistryWriter(registry, "registry", who="dm:bo")


def _levels(alias: str) -> dict[str, float]:
    t = load_extract(alias)["treated_levels"]
    return {f"{o}/{lv}": float(v) for o, lv, v in zip(t["operation_id"], t["level"], t["cement_volume_ml"],
                                                        strict=True) if v == v}


def test_a_locked_operation_changes_only_with_a_reason(registry: str, writer: RegistryWriter) -> None:
    lock = writer.lock("operations", "o1", who="surgeon:anna", signature_meaning="authored")
    assert (lock.entity, lock.key, lock.signed_by, lock.signature_meaning) == ("operations", "o1", "surgeon:anna",
                                                                               "authored")
    assert lock_state(registry, "operations", "o1") == lock
    assert lock_state(registry, "operations", "o2") is None
    before = load_extract(registry)["operations"].astype(str).to_dict()
    # no reason: refused, naming the lock (signer and meaning); nothing written
    with pytest.raises(RecordLockedError, match=r"operations 'o1' is locked \(signed by surgeon:anna .*'authored'"
                       ) as exc:
        writer.update("operations", "o1", {"asa_class": 3})
    assert exc.value.lock == lock
    with pytest.raises(RecordLockedError):
        writer.update("operations", "o1", {"asa_class": 3}, reason="   ")
    assert load_extract(registry)["operations"].astype(str).to_dict() == before
    # the lock covers the operation form's treated levels: change, delete, add
    with pytest.raises(RecordLockedError, match=r"changing treated_levels 'o1/L1': operations 'o1' is locked"):
        writer.update("treated_levels", "o1/L1", {"cement_volume_ml": 2.5})
    with pytest.raises(RecordLockedError, match=r"deleting treated_levels 'o1/L2'"):
        writer.delete("treated_levels", "o1/L2", reason="")
    with pytest.raises(RecordLockedError, match=r"creating treated_levels 'o1/L3'"):
        writer.create("treated_levels", {"operation_id": "o1", "level": "L3", "cement_volume_ml": 2})
    assert _levels(registry) == {"o1/L1": 3.5, "o2/T12": 4.25}
    # ... but not the imaging review, a form of its own, nor another operation's levels
    writer.update("imaging_findings", "f2", {"leak": True, "leak_type": "yeom_c"})
    writer.update("treated_levels", "o2/T12", {"cement_volume_ml": 4.0})
    # a reason is stored in the audit trail: a CPR number in it is refused, the value hidden
    with pytest.raises(PrivacyError, match=r"operations 'o1', reason") as priv:
        writer.update("operations", "o1", {"asa_class": 3}, reason="asked pt 020255-4322")
    assert "4322" not in str(priv.value)
    with pytest.raises(PrivacyError):
        writer.unlock("operations", "o1", reason="asked pt 0202554322")
    # with a reason: changed, and the reason is in the audit trail
    writer.update("operations", "o1", {"asa_class": 3}, reason="ASA class mistyped (chart: 3)")
    writer.update("treated_levels", "o1/L1", {"cement_volume_ml": 2.5}, reason="volume from the op note")
    assert _levels(registry) == {"o1/L1": 2.5, "o2/T12": 4.0}
    entries = audit_entries(registry, key="o1")
    assert list(entries["action"]) == ["create", "lock", "update"]
    assert list(entries["actor"])[1:] == ["surgeon:anna", "dm:bo"]
    assert entries.iloc[2]["reason"] == "ASA class mistyped (chart: 3)"
    assert json.loads(entries.iloc[1]["new"]) == {"locked": True, "signed_by": "surgeon:anna",
                                                  "signature_meaning": "authored"}
    # still locked after the change
    assert lock_state(registry, "operations", "o1") == lock


def test_unlock_needs_a_reason_and_is_audited(registry: str, writer: RegistryWriter) -> None:
    writer.lock("proms", "q1", who="nurse:eva", signature_meaning="entered from paper")
    with pytest.raises(IntegrityConflictError, match="already"):
        writer.lock("proms", "q1", who="nurse:eva", signature_meaning="entered from paper")
    with pytest.raises(SpineregError, match="requires a reason"):
        writer.unlock("proms", "q1", reason=" ")
    assert lock_state(registry, "proms", "q1") is not None
    writer.unlock("proms", "q1", reason="patient sent a corrected form", who="dm:bo")
    assert lock_state(registry, "proms", "q1") is None
    with pytest.raises(IntegrityConflictError, match="not locked"):
        writer.unlock("proms", "q1", reason="again")
    writer.update("proms", "q1", {"eqvas": 35})  # no reason needed any more
    entries = audit_entries(registry, key="q1")
    assert list(entries["action"]) == ["create", "lock", "unlock", "update"]
    unlock = entries.iloc[2]
    assert (unlock["actor"], unlock["reason"]) == ("dm:bo", "patient sent a corrected form")
    assert json.loads(unlock["old"])["signed_by"] == "nurse:eva"
    # locked again, and listed
    writer.lock("proms", "q1", who="nurse:eva", signature_meaning="reviewed")
    writer.lock("patients", "p2", who="dm:bo", signature_meaning="death verified")
    locks = record_locks(registry)
    assert list(zip(locks["entity"], locks["key"], locks["signature_meaning"], strict=True)) == [
        ("patients", "p2", "death verified"), ("proms", "q1", "reviewed")]


def test_lock_refusals(registry: str, writer: RegistryWriter) -> None:
    with pytest.raises(IntegrityConflictError, match="does not exist"):
        writer.lock("operations", "o9", who="surgeon:anna", signature_meaning="authored")
    with pytest.raises(SpineregError, match="meaning of the signature"):
        writer.lock("operations", "o1", who="surgeon:anna", signature_meaning="")
    with pytest.raises(SpineregError, match="signature meaning") as exc:
        writer.lock("operations", "o1", who="surgeon:anna", signature_meaning="ok 020255-4322")
    assert "4322" not in str(exc.value)
    with pytest.raises(IntegrityConflictError, match="belongs to dataset 'registry'"):
        RegistryWriter(registry, "other").lock("operations", "o1", who="surgeon:anna", signature_meaning="authored")
    assert record_locks(registry).empty


def test_deleting_a_locked_record_needs_a_reason_and_ends_the_lock(registry: str, writer: RegistryWriter) -> None:
    writer.lock("imaging_findings", "f3", who="rad:ib", signature_meaning="reviewed")
    with pytest.raises(RecordLockedError, match="imaging_findings 'f3' is locked"):
        writer.delete("imaging_findings", "f3", reason="")
    writer.delete("imaging_findings", "f3", reason="entered for the wrong operation")
    assert lock_state(registry, "imaging_findings", "f3") is None
    assert list(audit_entries(registry, key="f3")["action"]) == ["create", "lock", "delete", "unlock"]
    # a new record with the same key is not locked
    writer.create("imaging_findings", {"finding_id": "f3", "operation_id": "o2", "level": "T12", "leak": False})
    writer.update("imaging_findings", "f3", {"modality": "ct"})


def test_the_lock_entries_are_append_only(registry: str, writer: RegistryWriter) -> None:
    """The lock state lives in the audit trail: the database refuses to change or drop a lock entry."""
    from django.db import connections, transaction
    from django.db.utils import DatabaseError

    lock = writer.lock("operations", "o2", who="surgeon:anna", signature_meaning="authored")
    for sql in ("UPDATE spinereg_audit SET action = 'unlock' WHERE id = %s",
                "DELETE FROM spinereg_audit WHERE id = %s"):
        with pytest.raises(DatabaseError), transaction.atomic(using=registry), \
                connections[registry].cursor() as cursor:
            cursor.execute(sql, [lock.audit_id])
    assert lock_state(registry, "operations", "o2") == lock

"""Patients by CPR number (issue 12, item 4), on SQLite and PostgreSQL.

The CPR numbers here are made up (synthetic); the expected pseudonyms are
recomputed with the standard library's HMAC, the expected sex and birth date
by hand from the CPR rules (docs/pseudonymisation.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re

import pytest

from spinereg import SiteKeyError, SpineregError
from spinereg.registry import (
    RecordValidationError,
    RegistryWriter,
    audit_entries,
    find_patient,
    key_fingerprint,
    load_extract,
    register_patient,
    registry_counts,
    registry_info,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def _expected(digits: str) -> str:
    return hmac.new(KEY, digits.encode("ascii"), hashlib.sha256).hexdigest()[:32]


def _dump(alias: str) -> str:
    """Every value the registry holds (rows and audit trail) as text."""
    from django.db import connections

    out = []
    with connections[alias].cursor() as cursor:
        for table in ("spinereg_patients", "spinereg_audit", "spinereg_import_batch", "spinereg_dataset",
                      "spinereg_registry_info"):
            cursor.execute(f"SELECT * FROM {table}")
            out.append(repr(cursor.fetchall()))
    return "\n".join(out)


# (CPR number, its ten digits, sex, birth date): century from the 7th digit
CASES = [
    ("020255-4322", "0202554322", "female", "1955-02-02"),  # 4, YY 55 > 36: 1900s; last digit even
    ("0101009011", "0101009011", "male", "2000-01-01"),     # 9, YY 00 <= 36: 2000s; last digit odd
    ("150560-5123", "1505605123", "male", "1860-05-15"),    # 5, YY 60 >= 58: 1800s
    (" 291100-3124 ", "2911003124", "female", "1900-11-29"),  # 3: 1900s; spaces trimmed
]


@pytest.mark.parametrize(("cpr", "digits", "sex", "birth"), CASES, ids=[c[1] for c in CASES])
def test_register_derives_the_pseudonym_sex_and_birth_date(registry: str, cpr: str, digits: str, sex: str,
                                                           birth: str) -> None:
    pid = register_patient(registry, cpr, dataset="Hospital A", key=KEY, who="surgeon:anna")
    assert pid == _expected(digits)
    row = load_extract(registry)["patients"].set_index("patient_id").loc[pid]
    assert row["sex"] == sex
    assert str(row["birth_date"].date()) == birth
    entries = audit_entries(registry, key=pid)
    assert list(zip(entries["action"], entries["actor"], strict=True)) == [("create", "surgeon:anna")]
    assert find_patient(registry, cpr, key=KEY) == pid
    # the clear number is nowhere: not in the rows, the audit trail, the batches
    dump = _dump(registry)
    assert digits not in dump and digits[:6] + "-" + digits[6:] not in dump
    assert registry_info(registry).key_fingerprint == key_fingerprint(KEY)


def test_register_is_idempotent_and_leaves_another_dataset_alone(registry: str) -> None:
    pid = register_patient(registry, "020255-4322", dataset="Hospital A", key=KEY)
    before = registry_counts(registry)
    # the same person again, written either way, from another dataset: the same pseudonym, nothing written
    assert register_patient(registry, "0202554322", dataset="Hospital B", key=KEY, who="surgeon:kim") == pid
    assert registry_counts(registry) == before
    from spinereg.registry.models import Dataset, Patient

    p = Patient.objects.using(registry).get(patient_id=pid)
    assert Dataset.objects.using(registry).get(pk=p.dataset_id).name == "Hospital A"
    assert find_patient(registry, "020256-4322", key=KEY) is None  # another (unregistered) number


@pytest.mark.parametrize(("cpr", "why"), [
    ("310299-4322", "date part is not a valid date"),   # no 31 February
    ("290200-1322", "date part is not a valid date"),   # 1900 was no leap year
    ("02025-54322", "not a CPR number"),
    ("0202554322x", "not a CPR number"),
])
def test_invalid_numbers_are_refused_without_showing_them(registry: str, cpr: str, why: str) -> None:
    for call in (lambda: register_patient(registry, cpr, dataset="A", key=KEY),
                 lambda: find_patient(registry, cpr, key=KEY)):
        with pytest.raises(SpineregError, match=r"invalid CPR number \(\[CPR number hidden\]\)") as exc:
            call()
        assert why in str(exc.value)
        assert not re.search(r"\d{4}", str(exc.value)), str(exc.value)
    assert registry_counts(registry)["patients"] == 0
    with pytest.raises(SpineregError, match="no CPR number given"):
        register_patient(registry, "  ", dataset="A", key=KEY)


def test_a_birth_date_in_the_future_is_the_import_rule(registry: str) -> None:
    """Born 2030 (7th digit 4, YY 30 <= 36): the import's date rule refuses it."""
    with pytest.raises(RecordValidationError) as exc:
        register_patient(registry, "010130-4001", dataset="A", key=KEY)
    assert [(p.column, p.rule) for p in exc.value.problems] == [("birth_date", "date-order")]
    assert "4001" not in str(exc.value) and "0101304001" not in str(exc.value)
    assert registry_counts(registry)["patients"] == 0
    # refused before anything was written: no fingerprint either
    assert registry_info(registry).key_fingerprint is None


def test_another_key_is_refused(registry: str) -> None:
    register_patient(registry, "020255-4322", dataset="A", key=KEY)
    before = registry_counts(registry)
    with pytest.raises(SiteKeyError, match=key_fingerprint(KEY)):
        register_patient(registry, "0101009011", dataset="A", key=OTHER_KEY)
    with pytest.raises(SiteKeyError):
        find_patient(registry, "020255-4322", key=OTHER_KEY)
    assert registry_counts(registry) == before


def test_death_date_and_source_through_the_writer(registry: str) -> None:
    pid = register_patient(registry, "020255-4322", dataset="A", key=KEY)
    w = RegistryWriter(registry, "A", who="dm:bo")
    w.create("operations", {"operation_id": "A-OP1", "patient_id": pid, "date": "2020-03-01",
                            "procedure_category": "vertebroplasty"})
    with pytest.raises(RecordValidationError, match="operation date is after the patient's death"):
        w.update("patients", pid, {"death_date": "2020-01-01", "death_source": "cpr_registry"})
    with pytest.raises(RecordValidationError, match=r"death_source must be one of"):
        w.update("patients", pid, {"death_date": "2020-06-01", "death_source": "rumour"})
    w.update("patients", pid, {"death_date": "2020-06-01", "death_source": "cpr_registry"})
    row = load_extract(registry)["patients"].set_index("patient_id").loc[pid]
    assert (str(row["death_date"].date()), row["death_source"]) == ("2020-06-01", "cpr_registry")
    last = audit_entries(registry, key=pid).iloc[-1]
    assert last["action"] == "update"
    assert json.loads(last["new"]) == {"death_date": "2020-06-01", "death_source": "cpr_registry"}

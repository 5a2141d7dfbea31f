"""Two first writers of one dataset at once (e.g. two FHIR API posts on a fresh registry): both get
the one dataset, neither an IntegrityError.  PostgreSQL only: there the second INSERT waits on the
unique index for the first transaction and then fails; SQLite's writers queue before reading."""

from __future__ import annotations

import threading
import time

import pytest


def test_second_creator_of_a_dataset_gets_the_first_ones(registry: str) -> None:
    from django.db import connections, transaction

    from spinereg.registry import RegistryWriter
    from spinereg.registry.models import Dataset

    if connections[registry].vendor != "postgresql":
        pytest.skip("the race needs concurrent writers (PostgreSQL)")
    created = threading.Event()
    got: dict[str, object] = {}

    def first() -> None:
        with transaction.atomic(using=registry):
            got["first"] = RegistryWriter(registry, "fhir api").create(
                "patients", {"patient_id": "p1", "sex": "female", "birth_date": "1950-01-01"})
            created.set()
            time.sleep(1.0)  # the second writer reads (no row yet) and blocks on the unique index meanwhile
        connections[registry].close()

    def second() -> None:
        created.wait(10)
        try:
            with transaction.atomic(using=registry):
                got["second"] = RegistryWriter(registry, "fhir api").create(
                    "patients", {"patient_id": "p2", "sex": "male", "birth_date": "1951-01-01"})
        except Exception as exc:  # the test reports what the second writer got
            got["second"] = repr(exc)
        connections[registry].close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert (got["first"], got["second"]) == ("p1", "p2")
    assert Dataset.objects.using(registry).filter(name="fhir api").count() == 1

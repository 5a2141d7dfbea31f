"""The audit entries of an import hold exactly the values stored (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from spinereg.data import Extract, conform, entity
from spinereg.registry import acting_as, import_extract, load_extract, row_history
from spinereg.registry._audit import json_value

ODD = 'Sankt "Hans" \\ Ø\ttab'


def tricky_extract() -> Extract:
    x = Extract.empty()
    x.tables["patients"] = conform(pd.DataFrame({
        "patient_id": ["p1", "p'2"], "sex": ["male", None], "birth_date": ["1950-01-01", None]}), "patients")
    x.tables["operations"] = conform(pd.DataFrame({
        "operation_id": ["o1", "o2"], "patient_id": ["p1", "p'2"], "date": ["2015-01-01", "2016-02-29"],
        "hospital": [ODD, None], "procedure_category": ["vertebroplasty", "kyphoplasty"],
        "asa_class": [2, None]}), "operations")
    x.tables["treated_levels"] = conform(pd.DataFrame({
        "operation_id": ["o1", "o1", "o2"], "level": ["L1", "L2", "T12"],
        "cement_volume_ml": [0.1 + 0.2, None, 4.25]}), "treated_levels")
    x.tables["imaging_findings"] = conform(pd.DataFrame({
        "finding_id": ["f1", "f2"], "operation_id": ["o1", "o1"], "level": ["L1", "L2"],
        "leak": [True, False], "symptomatic": [None, False]}), "imaging_findings")
    return x


def entries(alias: str, action: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The audit entries of one action, by (entity, key), with their values (an import's
    create entries resolved from its snapshot by :func:`row_history`)."""
    from spinereg.registry.models import AuditEntry

    out: dict[tuple[str, str], dict[str, Any]] = {}
    for a in AuditEntry.objects.using(alias).filter(action=action):
        changes = json.loads(a.changes)
        if "snapshot" in changes:
            assert changes == {"snapshot": a.batch_id}
            (h,) = [h for h in row_history(alias, a.entity, a.record_key) if h.id == a.pk]
            changes = {"new": h.new}
        out[(a.entity, a.record_key)] = {"actor": a.actor, "batch": a.batch_id, **changes}
    return out


def test_created_rows_are_audited_with_their_values(registry: str) -> None:
    x = tricky_extract()
    with acting_as("importer:eva"):
        summary = import_extract(registry, x, mapping="test")
    got = entries(registry, "create")
    assert len(got) == summary.total_created == sum(len(df) for df in x.tables.values())
    assert {e["actor"] for e in got.values()} == {"importer:eva"}
    assert {e["batch"] for e in got.values()} == {summary.batch_id}
    assert got[("operations", "o1")]["new"] == {
        "operation_id": "o1", "patient_id": "p1", "date": "2015-01-01", "hospital": ODD, "department": None,
        "procedure_codes": None, "procedure_category": "vertebroplasty", "indication": None,
        "diagnosis_codes": None, "cancer_primary_site": None, "asa_class": 2, "anaesthesia": None, "sins": None,
        "tokuhashi": None, "tomita": None}
    assert got[("patients", "p'2")]["new"] == {"patient_id": "p'2", "sex": None, "birth_date": None,
                                               "death_date": None, "death_source": None}
    volumes = {k[1]: e["new"]["cement_volume_ml"] for k, e in got.items() if k[0] == "treated_levels"}
    assert volumes == {"o1/L1": 0.1 + 0.2, "o1/L2": None, "o2/T12": 4.25}  # exact, not rounded
    leaks = {k[1]: (e["new"]["leak"], e["new"]["symptomatic"]) for k, e in got.items() if k[0] == "imaging_findings"}
    assert leaks == {"f1": (True, None), "f2": (False, False)}
    # the values stored are the values imported
    y = load_extract(registry)
    assert y["operations"]["hospital"].tolist()[0] == ODD
    assert math.isclose(y["treated_levels"]["cement_volume_ml"].iloc[0], 0.1 + 0.2, rel_tol=0, abs_tol=0)
    assert pd.isna(y["treated_levels"]["cement_volume_ml"].iloc[1])


def test_updates_are_audited_old_to_new(registry: str) -> None:
    x = tricky_extract()
    import_extract(registry, x)
    x.tables["operations"].loc[0, "hospital"] = "Aarhus"
    x.tables["operations"].loc[1, "hospital"] = ODD
    x.tables["treated_levels"].loc[1, "cement_volume_ml"] = 2.5
    with acting_as("surgeon:anna"):
        summary = import_extract(registry, x, update=True)
    assert summary.total_created == 0
    assert summary.total_updated == 3
    got = entries(registry, "update")
    assert got[("operations", "o1")] == {"actor": "surgeon:anna", "batch": summary.batch_id,
                                         "old": {"hospital": ODD}, "new": {"hospital": "Aarhus"}}
    assert got[("operations", "o2")]["old"] == {"hospital": None}
    assert got[("operations", "o2")]["new"] == {"hospital": ODD}
    assert got[("treated_levels", "o1/L2")]["old"] == {"cement_volume_ml": None}
    assert got[("treated_levels", "o1/L2")]["new"] == {"cement_volume_ml": 2.5}


def test_row_history_holds_every_value_imported_updated_and_deleted(registry: str) -> None:
    """A row's history: created by an import (values from the batch's snapshot, exactly
    as imported and stored), updated by a re-import (old -> new), deleted by the ORM."""
    from spinereg.registry import RegistryWriter
    from spinereg.registry.models import ImportSnapshot

    x = tricky_extract()
    with acting_as("importer:eva"):
        first = import_extract(registry, x, mapping="test")
    snaps = {s.entity: s.n_rows for s in ImportSnapshot.objects.using(registry).filter(batch_id=first.batch_id)}
    assert snaps == {name: len(df) for name, df in x.tables.items() if len(df)}
    stored = load_extract(registry)
    for name, df in stored.tables.items():
        for i in range(len(df)):
            row = df.iloc[[i]]
            key = "/".join(str(row[k].iloc[0]) for k in entity(name).key)
            (h,) = row_history(registry, name, key)
            assert (h.action, h.actor, h.batch_id, h.old) == ("create", "importer:eva", first.batch_id, None)
            assert h.new == {c: None if pd.isna(v) else json_value(v) for c in df.columns for v in [row[c].iloc[0]]}
    assert row_history(registry, "treated_levels", "o1/L1")[0].new["cement_volume_ml"] == 0.1 + 0.2
    assert row_history(registry, "imaging_findings", "f1")[0].new == {
        "finding_id": "f1", "operation_id": "o1", "level": "L1", "leak": True, "symptomatic": None,
        **{c: None for c in entity("imaging_findings").column_names
           if c not in ("finding_id", "operation_id", "level", "leak", "symptomatic")}}
    x.tables["treated_levels"].loc[1, "cement_volume_ml"] = 2.5
    with acting_as("surgeon:anna"):
        second = import_extract(registry, x, update=True)
    with acting_as("admin:bo"):
        RegistryWriter(registry, "registry").delete("imaging_findings", "f2", reason="duplicate finding")
    h = row_history(registry, "treated_levels", "o1/L2")
    assert [(e.action, e.actor, e.batch_id) for e in h] == [
        ("create", "importer:eva", first.batch_id), ("update", "surgeon:anna", second.batch_id)]
    assert h[0].new is not None and h[0].new["cement_volume_ml"] is None
    assert (h[1].old, h[1].new) == ({"cement_volume_ml": None}, {"cement_volume_ml": 2.5})
    h = row_history(registry, "imaging_findings", "f2")
    assert [e.action for e in h] == ["create", "delete"]
    assert h[1].old == h[0].new
    assert h[1].batch_id not in (None, first.batch_id, second.batch_id)  # the deletion's own write batch

"""Migration 0008: questionnaires get a ``mode`` (web, paper, phone, fhir, import).  Rows written
before it stay empty (not recorded), except the patient page's answers (``q-<reference>`` of an
answered follow-up invitation), which become ``web``.  The import's rules check the new column.
On SQLite and PostgreSQL."""

from __future__ import annotations

import pandas as pd

from spinereg.registry import RegistryWriter, load_extract, migrate


def _invitation(cur: object, ref: str, tp: str, status: str) -> None:
    cur.execute(  # type: ignore[attr-defined]
        "INSERT INTO spinereg_followup_invitation (operation_id, patient_id, timepoint, due_date, status, channel, "
        "reference, token_hash, expires_at, created_at, draft) VALUES ('o1', 'p1', %s, '2024-01-01', %s, 'letter', "
        "%s, %s, '2024-06-01 00:00:00+00:00', '2024-01-01 00:00:00+00:00', '')", [tp, status, ref, ref.lower()])


def test_mode_added_and_patient_page_answers_marked_web(registry: str) -> None:
    from django.db import connections
    from django.db.migrations.executor import MigrationExecutor

    from spinereg.registry._guard import writes_allowed

    conn = connections[registry]
    MigrationExecutor(conn).migrate([("spinereg", "0007_web_indexes")])  # back to the schema without mode
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM spinereg_proms WHERE 1 = 0")
        assert "mode" not in [d[0] for d in cur.description]
    with writes_allowed(registry), conn.cursor() as cur:
        cur.execute("INSERT INTO spinereg_patients (patient_id) VALUES ('p1')")
        cur.execute("INSERT INTO spinereg_operations (operation_id, patient_id, date, procedure_category) "
                    "VALUES ('o1', 'p1', '2024-01-01', 'vertebroplasty')")
        for pid, tp in (("q-ANSWERED", "baseline"), ("q-STILLOPEN", "3m"), ("imp-7", "1y")):
            cur.execute("INSERT INTO spinereg_proms (prom_id, patient_id, operation_id, timepoint, eqvas) "
                        "VALUES (%s, 'p1', 'o1', %s, 50)", [pid, tp])
        _invitation(cur, "ANSWERED", "baseline", "answered")
        _invitation(cur, "STILLOPEN", "3m", "sent")  # a questionnaire id like the page's, invitation not answered
    MigrationExecutor(conn).loader.build_graph()
    migrate(registry)
    proms = load_extract(registry)["proms"].set_index("prom_id")
    got = {str(p): (None if pd.isna(m) else str(m)) for p, m in proms["mode"].items()}
    assert got == {"q-ANSWERED": "web", "q-STILLOPEN": None, "imp-7": None}

    writer = RegistryWriter(registry, "paper", who="tester")
    row = {"prom_id": "paper-1", "patient_id": "p1", "operation_id": "o1", "timepoint": "2y", "eqvas": 70}
    problems = [p for p in writer.check("proms", {**row, "mode": "email"}) if p.severity == "error"]
    assert [(p.column, p.value) for p in problems] == [("mode", "'email'")]
    writer.create("proms", {**row, "mode": "paper"})
    assert load_extract(registry)["proms"].set_index("prom_id").loc["paper-1", "mode"] == "paper"

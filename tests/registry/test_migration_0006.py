"""Migration 0006: a leak location that older registries kept in ``leak_type`` moves to
``leak_location``; the Yeom mechanism stays.  On SQLite and PostgreSQL."""

from __future__ import annotations

from spinereg.registry import load_extract, migrate


def test_locations_move_out_of_leak_type(registry: str) -> None:
    from django.db import connections
    from django.db.migrations.executor import MigrationExecutor

    from spinereg.registry._guard import writes_allowed

    conn = connections[registry]
    executor = MigrationExecutor(conn)
    executor.migrate([("spinereg", "0005_lock_actions")])  # back to the schema before the split
    with writes_allowed(registry), conn.cursor() as cur:
        cur.execute("INSERT INTO spinereg_patients (patient_id) VALUES ('p1')")
        cur.execute("INSERT INTO spinereg_operations (operation_id, patient_id, date, procedure_category) "
                    "VALUES ('o1', 'p1', '2015-03-02', 'vertebroplasty')")
        for lv in ("T10", "T11", "T12", "L1", "L2", "L3"):
            cur.execute("INSERT INTO spinereg_treated_levels (operation_id, level) VALUES ('o1', %s)", [lv])
        rows = [("f1", "T10", "yeom_b"), ("f2", "T11", "intradiscal"), ("f3", "T12", "paravertebral"),
                ("f4", "L1", "epidural_foraminal"), ("f5", "L2", "venous_pulmonary_embolism"), ("f6", "L3", None)]
        for fid, lv, lt in rows:
            cur.execute("INSERT INTO spinereg_imaging_findings (finding_id, operation_id, level, leak, leak_type) "
                        "VALUES (%s, 'o1', %s, %s, %s)", [fid, lv, lt is not None, lt])
    executor = MigrationExecutor(conn)
    executor.loader.build_graph()
    migrate(registry)
    img = load_extract(registry)["imaging_findings"].set_index("finding_id")
    got = {f: (None if img.at[f, "leak_type"] != img.at[f, "leak_type"] else str(img.at[f, "leak_type"]),
               None if img.at[f, "leak_location"] != img.at[f, "leak_location"] else str(img.at[f, "leak_location"]))
           for f in img.index}
    assert got == {"f1": ("yeom_b", None), "f2": (None, "intradiscal"), "f3": (None, "paravertebral"),
                   "f4": (None, "epidural_foraminal"), "f5": (None, "venous"), "f6": (None, None)}

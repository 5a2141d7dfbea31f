"""A process killed (SIGKILL) in the middle of an import leaves the database as it was."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from spinereg.registry import import_extract, load_extract, registry_counts
from tests.registry.test_store import small_extract

SCRIPT = textwrap.dedent("""
    import sys
    import time
    import pandas as pd
    from spinereg.data import Extract, conform
    from spinereg.registry import import_extract, open_registry
    def pause(entity, done, total):  # a window in which the transaction is open
        print(f"importing {entity} {done}/{total}", file=sys.stderr, flush=True)
        time.sleep(30)
    n = 60_000
    x = Extract.empty()
    x.tables["patients"] = conform(pd.DataFrame({
        "patient_id": [f"K{i:06d}" for i in range(n)], "sex": ["female", "male"] * (n // 2),
        "birth_date": ["1950-01-01"] * n}), "patients")
    alias = open_registry(sys.argv[1])
    import_extract(alias, x, mapping="crash-test", progress=pause)
    print("FINISHED", flush=True)
""")


def test_kill_minus_nine_mid_import_leaves_database_unchanged(registry: str, db_url: str,
                                                              tmp_path: Path) -> None:
    import_extract(registry, small_extract())
    before_counts = registry_counts(registry)
    before = load_extract(registry)
    script = tmp_path / "slow_import.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), db_url], stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()  # printed after the first batch is written inside the transaction
    assert "importing patients 20000/60000" in line, line
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    from django.db import connections

    connections[registry].close()
    assert registry_counts(registry) == before_counts
    after = load_extract(registry)
    for name in before.tables:
        assert after.tables[name].equals(before.tables[name]), name

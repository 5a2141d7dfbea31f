"""spinereg.registry is a reusable Django app: it runs inside a host project's settings,
and every schema change comes with its migration."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

HOST = textwrap.dedent("""
    import django
    django.setup()
    from django.conf import settings
    from spinereg.registry import (RegistryWriter, UnauditedWriteError, import_extract, load_extract, migrate,
                                   open_registry, standalone)
    from spinereg.registry.models import Operation
    from tests.registry.test_store import small_extract
    assert not standalone.configured_here()
    alias = open_registry()
    assert alias == "default", alias
    migrate(alias)
    import_extract(alias, small_extract(), dataset={"name": "host"})
    RegistryWriter(alias, "host", who="web:anna").update("operations", "o1", {"asa_class": 3}, reason="typo")
    try:
        Operation.objects.filter(operation_id="o2").update(asa_class=1)
    except UnauditedWriteError:
        print("guarded")
    print(load_extract(alias)["operations"]["asa_class"].tolist(), settings.TIME_ZONE)
""")


def test_runs_inside_a_host_project(tmp_path: Path) -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.registry.hostproject.settings",
           "HOST_DB": str(tmp_path / "host.sqlite3"), "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    res = subprocess.run([sys.executable, "-c", HOST], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:2] == ["guarded", "[3, 3] Europe/Copenhagen"]


def test_no_model_change_without_its_migration(tmp_path: Path) -> None:
    """``makemigrations --check``: a schema change without a migration fails CI."""
    script = textwrap.dedent(f"""
        from spinereg.registry import open_registry
        open_registry("sqlite:///{tmp_path / 'check.sqlite3'}")
        from django.core.management import call_command
        call_command("makemigrations", "spinereg", "--check", "--dry-run", verbosity=1)
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "No changes detected" in res.stdout

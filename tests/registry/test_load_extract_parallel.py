"""PostgreSQL reads the registry in parallel slices of each table's pages from one shared
snapshot; the extract equals SQLite's, row for row, in key order (bytewise), and a write
made while it reads is not half in it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from spinereg.data import entities
from spinereg.registry import import_extract, load_extract, migrate, open_registry


def test_sliced_postgres_read_equals_sqlite(registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from django.db import connections

    from spinereg.data._synth import synthesize
    from spinereg.registry import _read

    if connections[registry].vendor != "postgresql":
        pytest.skip("SQLite reads each table in one pass: the sliced parallel read is PostgreSQL's")
    synth = synthesize(1500, seed=3)
    meta = {"name": "synthetic", "synthetic": True, "source": "spinereg synth", "extract_date": "2021-06-30"}
    import_extract(registry, synth, mapping="synth", dataset=meta)
    other = open_registry(f"sqlite:///{tmp_path / 'reference.sqlite3'}")
    migrate(other)
    import_extract(other, synth, mapping="synth", dataset=meta)
    reference = load_extract(other)
    monkeypatch.setattr(_read, "_SLICE_PAGES", 2)  # many slices per table, read by parallel readers
    with connections[registry].cursor() as cur:
        cur.execute("SELECT pg_relation_size('spinereg_proms') / 8192")
        assert cur.fetchone()[0] > 4  # the proms table is read in several slices
    got = load_extract(registry)
    for ent in entities():
        a, b = got[ent.name].reset_index(drop=True), reference[ent.name].reset_index(drop=True)
        assert len(a) == len(synth[ent.name]) > 0, ent.name
        pd.testing.assert_frame_equal(a, b, check_dtype=True, obj=ent.name)

"""A study reads the same data from the registry database as from an extract: the data
SHA-256 (and so results.json) does not depend on where the data are stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spinereg.data import extract_sha256, read_extract, write_extract
from spinereg.data._synth import synthesize
from spinereg.registry import import_extract, load_extract

ROOT = Path(__file__).resolve().parent.parent.parent
SPEC = ROOT / "examples" / "pvp-cancer-vcf" / "study.toml"


def test_data_digest_is_storage_independent(registry: str, tmp_path: Path) -> None:
    synth = synthesize(3000, seed=11)
    digest = extract_sha256(synth)
    import_extract(registry, synth, mapping="synth",
                   dataset={"name": "synthetic", "synthetic": True, "source": "test",
                            "extract_date": synth.meta["extract_date"]})
    from_db = load_extract(registry)
    assert extract_sha256(from_db) == digest
    for fmt in ("csv", "parquet"):
        write_extract(from_db, tmp_path / fmt, fmt)  # type: ignore[arg-type]
        assert extract_sha256(read_extract(tmp_path / fmt)) == digest
    # one changed value changes the digest
    changed = read_extract(tmp_path / "parquet")
    changed.tables["proms"].loc[0, "eqvas"] = (int(changed["proms"]["eqvas"].fillna(50).iloc[0]) + 1) % 100
    assert extract_sha256(changed) != digest


def test_study_run_from_database_equals_extract(registry: str, db_url: str, tmp_path: Path) -> None:
    from spinereg.cli._study import run_and_write

    synth = synthesize(20000, seed=2018)
    import_extract(registry, synth, mapping="synth",
                   dataset={"name": "synthetic", "synthetic": True, "source": "test",
                            "extract_date": synth.meta["extract_date"]})
    write_extract(synth, tmp_path / "x", "parquet")
    run_and_write(SPEC, tmp_path / "db", db=db_url, data=None, formats=())
    run_and_write(SPEC, tmp_path / "file", db=None, data=tmp_path / "x", formats=())

    def body(p: Path) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((p / "results.json").read_text())
        for key in ("generated_at",):
            doc.pop(key)
        for key in ("name", "source"):    # dataset labels differ: the test named the database's copy
            doc["data"].pop(key)
        return doc

    db, file = body(tmp_path / "db"), body(tmp_path / "file")
    assert db["data"]["sha256"] == file["data"]["sha256"]
    assert db == file


def test_partial_read_equals_the_reachable_part_of_the_whole(registry: str) -> None:
    """load_extract(only=...) reads, in SQL, exactly what reachable() keeps of the whole registry in memory."""
    from spinereg.study import candidate_patients, load_spec
    from spinereg.study._cohort import reachable

    synth = synthesize(3000, seed=11)
    import_extract(registry, synth, mapping="synth",
                   dataset={"name": "synthetic", "synthetic": True, "source": "test"})
    spec, _ = load_spec(SPEC)
    whole = load_extract(registry)
    part = load_extract(registry, only=lambda pats, ops: candidate_patients(pats, ops, spec))
    kept = reachable(whole, spec)
    assert 0 < len(part["proms"]) < len(whole["proms"])  # a real restriction, not the whole table
    assert extract_sha256(part) == extract_sha256(kept)
    assert part.meta["latest_dates"] == kept.meta["latest_dates"]
    assert part.meta["latest_dates"]["proms"] == whole["proms"]["answer_date"].max().date().isoformat()

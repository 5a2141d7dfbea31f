"""Source ids namespaced by dataset: two hospitals' ``HOSP-001`` are two patients.

Expected ids are written out by hand from the rule in docs/mapping-format.md:
every key and foreign key becomes ``<namespace>:<source id>``, except keyed CPR
pseudonyms (registry-wide person ids), which are the HMAC of the digits.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pandas as pd
import pytest

from spinereg import PrivacyError, SpineregError
from spinereg.data import (
    ChunkStream,
    MappedTable,
    apply_mapping,
    id_columns,
    iter_mapping,
    load_mapping,
    namespaced_id,
    validate,
    write_extract,
)

KEY = bytes(range(32))
WIDE = Path(__file__).parent / "fixtures" / "import" / "danespine_wide.csv"

LOCAL = """
mapping_format = 1
{top}
[sources.pat]
files = ["patients*.csv"]
[sources.ops]
files = ["operations*.csv"]
[[target]]
entity = "patients"
source = "pat"
[target.columns]
patient_id = "id"
sex = "sex"
[[target]]
entity = "operations"
source = "ops"
[target.columns]
operation_id = "op"
patient_id = "pid"
date = "date"
hospital = "hospital"
procedure_category = {{ constant = "fusion" }}
[[target]]
entity = "proms"
source = "ops"
[target.columns]
prom_id = {{ template = "{{op}}-pre" }}
patient_id = "pid"
operation_id = "op"
timepoint = {{ constant = "baseline" }}
eqvas = "vas"
"""


def _files(tmp_path: Path) -> list[Path]:
    a = tmp_path / "patients.csv"
    a.write_text("id,sex\nHOSP-001,female\n HOSP-002 ,male\n", encoding="utf-8")
    b = tmp_path / "operations.csv"
    b.write_text("op,pid,date,hospital,vas\nOP-1,HOSP-001,2020-01-02,HOSP-001,50\nOP-2,HOSP-002,2020-02-03,H,\n",
                 encoding="utf-8")
    return [a, b]


def _mapping(tmp_path: Path, top: str = "") -> Path:
    m = tmp_path / ("registry.toml" if top else "m.toml")
    m.write_text(LOCAL.format(top=top), encoding="utf-8")
    return m


def _col(chunks: list[MappedTable], entity: str, column: str) -> list[object]:
    f = pd.concat([c.frame for c in chunks if c.entity == entity], ignore_index=True)
    return [None if pd.isna(v) else v for v in f[column].astype(object)]


def test_id_columns_are_keys_and_foreign_keys() -> None:
    assert id_columns("patients") == ("patient_id",)
    assert id_columns("operations") == ("operation_id", "patient_id")
    assert id_columns("treated_levels") == ("operation_id",)
    assert id_columns("proms") == ("prom_id", "patient_id", "operation_id")
    assert id_columns("complications") == ("complication_id", "operation_id")
    assert id_columns("imaging_findings") == ("finding_id", "operation_id")
    assert namespaced_id("Hospital B", "HOSP-001") == "Hospital B:HOSP-001"


def test_every_key_and_reference_is_namespaced_consistently(tmp_path: Path) -> None:
    chunks = apply_mapping(_mapping(tmp_path), _files(tmp_path), namespace="Hospital B")
    assert _col(chunks, "patients", "patient_id") == ["Hospital B:HOSP-001", "Hospital B:HOSP-002"]
    assert _col(chunks, "operations", "operation_id") == ["Hospital B:OP-1", "Hospital B:OP-2"]
    assert _col(chunks, "operations", "patient_id") == ["Hospital B:HOSP-001", "Hospital B:HOSP-002"]
    # a free-text column that happens to hold an id is not an id column
    assert _col(chunks, "operations", "hospital") == ["HOSP-001", "H"]
    assert _col(chunks, "proms", "prom_id") == ["Hospital B:OP-1-pre", "Hospital B:OP-2-pre"]
    assert _col(chunks, "proms", "operation_id") == ["Hospital B:OP-1", "Hospital B:OP-2"]
    # references still match: the import validates without errors
    _, report = validate(chunks, extract_date="2021-01-01")
    assert report.ok, report.to_text()


def test_two_datasets_give_two_patients(tmp_path: Path) -> None:
    m = _mapping(tmp_path)
    a = apply_mapping(m, _files(tmp_path), namespace="Hospital A")
    b = apply_mapping(m, _files(tmp_path), namespace="Hospital B")
    ids_a = set(_col(a, "patients", "patient_id"))
    ids_b = set(_col(b, "patients", "patient_id"))
    assert not ids_a & ids_b
    # together they validate as four patients, not as conflicting re-entries
    x, report = validate([*a, *b], extract_date="2021-01-01")
    assert report.ok, report.to_text()
    assert len(x["patients"]) == 4


def test_without_namespace_ids_are_as_in_the_source(tmp_path: Path) -> None:
    chunks = apply_mapping(_mapping(tmp_path), _files(tmp_path))
    assert _col(chunks, "patients", "patient_id") == ["HOSP-001", " HOSP-002 "]


def test_registry_ids_are_not_namespaced(tmp_path: Path) -> None:
    m = _mapping(tmp_path, 'ids = "registry"')
    assert load_mapping(m).ids == "registry"
    assert load_mapping(_mapping(tmp_path)).ids == "source"
    chunks = apply_mapping(m, _files(tmp_path), namespace="Hospital B")
    assert _col(chunks, "patients", "patient_id") == ["HOSP-001", " HOSP-002 "]


def test_tidy_export_round_trips_with_its_namespaced_ids(tmp_path: Path) -> None:
    from spinereg.data._synth import synthesize

    assert load_mapping("tidy").ids == "registry"
    x = synthesize(20, 3)
    pid = x["patients"]["patient_id"].astype(str).tolist()
    x.tables["patients"]["patient_id"] = [f"Hospital B:{p}" for p in pid]
    write_extract(x, tmp_path / "x", "csv")
    files = sorted((tmp_path / "x").glob("patients.csv"))
    chunks = apply_mapping("tidy", files, namespace="Other")
    assert _col(chunks, "patients", "patient_id") == [f"Hospital B:{p}" for p in pid]


def _pseudonym(cpr: str) -> str:
    return hmac.new(KEY, cpr.replace("-", "").encode("ascii"), hashlib.sha256).hexdigest()[:32]


def test_cpr_pseudonyms_are_registry_wide_hash_ids_are_namespaced() -> None:
    chunks = apply_mapping("danespine-wide", [WIDE], key=KEY, namespace="DaneSpine 2021")
    pats = _col(chunks, "patients", "patient_id")
    first = "070345-1233"  # the fixture's first CPR number (synthetic)
    assert _pseudonym(first) in pats
    assert all(":" not in str(p) for p in pats)
    # operations: the id is a hash of the pseudonym and the date, a source id
    op_ids = _col(chunks, "operations", "operation_id")
    assert op_ids and all(str(o).startswith("DaneSpine 2021:op-") for o in op_ids)
    assert set(_col(chunks, "operations", "patient_id")) <= set(pats)
    img = _col(chunks, "imaging_findings", "finding_id")
    assert img and all(str(i).startswith("DaneSpine 2021:op-") for i in img)
    assert set(_col(chunks, "imaging_findings", "operation_id")) <= set(op_ids)
    proms = [c for c in chunks if c.entity == "proms"]
    assert proms and set(_col(proms, "proms", "patient_id")) <= set(pats)
    _, report = validate(chunks, extract_date="2023-01-01")
    assert report.ok, report.to_text()


def test_a_pseudonym_through_a_fallback_is_registry_wide(tmp_path: Path) -> None:
    m = tmp_path / "m.toml"
    m.write_text("""
mapping_format = 1
[sources.s]
files = ["*.csv"]
[[target]]
entity = "patients"
source = "s"
[target.columns]
patient_id = { column = "cpr", transform = "cpr", fallback = "local" }
""", encoding="utf-8")
    src = tmp_path / "p.csv"
    src.write_text("cpr,local\n070345-1233,L1\n,L2\n", encoding="utf-8")
    chunks = apply_mapping(m, [src], key=KEY, namespace="N")
    assert _col(chunks, "patients", "patient_id") == [_pseudonym("070345-1233"), "N:L2"]


@pytest.mark.parametrize("bad", ["", "  ", " x", "x "])
def test_bad_namespace(tmp_path: Path, bad: str) -> None:
    with pytest.raises(SpineregError, match="namespace"):
        iter_mapping(_mapping(tmp_path), _files(tmp_path), namespace=bad)


def test_namespace_with_a_cpr_number_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PrivacyError, match="namespace") as e:
        iter_mapping(_mapping(tmp_path), _files(tmp_path), namespace="pt 020255-4322")
    assert "4322" not in str(e.value)


def test_iter_mapping_is_a_chunk_stream(tmp_path: Path) -> None:
    chunks = iter_mapping(_mapping(tmp_path), _files(tmp_path))
    assert isinstance(chunks, ChunkStream)
    assert not chunks.complete("patients")
    first = next(chunks)
    assert first.entity == "patients"
    assert chunks.complete("patients")  # its only chunk is out
    assert not chunks.complete("operations")
    assert not isinstance([first], ChunkStream)

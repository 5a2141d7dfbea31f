"""Each failure of a mapping run raises the class a caller must tell apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from spinereg import MappingError, PrivacyError, SourceFileError
from spinereg.data import apply_mapping, load_mapping

MAPPING = """
mapping_format = 1
[sources.s]
files = ["*.csv"]
[[target]]
entity = "patients"
source = "s"
[target.columns]
patient_id = "id"
"""


def _mapping(tmp_path: Path, text: str = MAPPING) -> Path:
    p = tmp_path / "m.toml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize("text", [
    "mapping_format = 1\n[sources.s]\nfiles = ['*.csv']\nbogus = 1\n",  # unknown key
    "not toml = = 1",
    MAPPING.replace('patient_id = "id"', 'patient_idd = "id"'),
    MAPPING.replace("mapping_format = 1", 'mapping_format = 1\nids = "local"'),
])
def test_a_bad_mapping_raises_mapping_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(MappingError, match=r"m\.toml"):
        load_mapping(_mapping(tmp_path, text))


def test_an_unknown_mapping_raises_mapping_error() -> None:
    with pytest.raises(MappingError, match="unknown mapping"):
        load_mapping("no-such-mapping")


def test_a_source_column_the_file_lacks_is_a_mapping_error(tmp_path: Path) -> None:
    src = tmp_path / "p.csv"
    src.write_text("pid\nP1\n", encoding="utf-8")
    with pytest.raises(MappingError, match=r"column 'id' is not in .*p\.csv \(did you mean 'pid'\?\)"):
        apply_mapping(_mapping(tmp_path), [src])


def test_a_missing_file_raises_source_file_error(tmp_path: Path) -> None:
    with pytest.raises(SourceFileError, match=r"nothere\.csv: no such file"):
        apply_mapping(_mapping(tmp_path), [tmp_path / "nothere.csv"])


def test_an_undecodable_file_raises_source_file_error(tmp_path: Path) -> None:
    src = tmp_path / "p.csv"
    src.write_bytes(b"id\n\xff\xfe\x00\x81\n")
    m = _mapping(tmp_path, MAPPING.replace('files = ["*.csv"]', 'files = ["*.csv"]\nencoding = "utf-8"'))
    with pytest.raises(SourceFileError, match=r"p\.csv"):
        apply_mapping(m, [src])


def test_a_cpr_column_read_as_is_raises_privacy_error(tmp_path: Path) -> None:
    src = tmp_path / "p.csv"
    src.write_text("id\n070345-1233\n150552-2468\n", encoding="utf-8")
    with pytest.raises(PrivacyError, match="look like CPR numbers") as e:
        apply_mapping(_mapping(tmp_path), [src])
    assert "1233" not in str(e.value) and "2468" not in str(e.value)


"""The patient's page per site: EQ-5D-5L as a site's choice, and item labels from a site's wording files
(spinereg.followup.wording).  The wording here is made up for the test: spinereg ships no licensed wording."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from spinereg import SpineregError
from spinereg.followup.wording import EQ5D5L_SITES_ENV, item_labels, patient_instruments, wording_file


def test_eq5d_version_is_the_site_s_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EQ5D5L_SITES_ENV, raising=False)
    assert patient_instruments("H1") == ("eq5d3l", "eqvas", "odi", "nrs_back", "nrs_leg")
    monkeypatch.setenv(EQ5D5L_SITES_ENV, "H2, H3")
    assert patient_instruments("H2")[0] == "eq5d5l" and patient_instruments("H3")[0] == "eq5d5l"
    assert patient_instruments("H1")[0] == "eq5d3l" and patient_instruments(None)[0] == "eq5d3l"
    monkeypatch.setenv(EQ5D5L_SITES_ENV, "*")
    assert patient_instruments(None) == ("eq5d5l", "eqvas", "odi", "nrs_back", "nrs_leg")


def test_wording_file_per_language_else_neutral_labels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "odi.en.toml").write_text('odi_1 = "Made-up test wording, section one"\n', encoding="utf-8")
    (tmp_path / "odi.da.toml").write_text('odi_2 = "Opdigtet testtekst, afsnit to"\n', encoding="utf-8")
    en = item_labels("odi", "en", tmp_path)
    assert en["odi_1"] == "Made-up test wording, section one"
    assert en["odi_2"] == "Personal care"  # not in the file: the neutral label
    assert len(en) == 10
    assert item_labels("odi", "en-gb", tmp_path)["odi_1"] == "Made-up test wording, section one"  # en-gb -> en
    assert item_labels("odi", "da", tmp_path)["odi_2"] == "Opdigtet testtekst, afsnit to"
    assert item_labels("odi", "de", tmp_path)["odi_1"] == "Pain intensity"  # no file for the language
    assert item_labels("eq5d3l", "en", tmp_path)["MO"] == "Mobility"  # no file for the instrument
    monkeypatch.delenv("SPINEREG_WORDING_DIR", raising=False)
    assert wording_file("odi", "en") is None  # no folder: neutral labels
    monkeypatch.setenv("SPINEREG_WORDING_DIR", str(tmp_path))
    assert wording_file("odi", "en") == tmp_path / "odi.en.toml"
    # a changed file is read again
    path = tmp_path / "odi.en.toml"
    path.write_text('odi_1 = "Second made-up wording"\n', encoding="utf-8")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert item_labels("odi", "en", tmp_path)["odi_1"] == "Second made-up wording"
    # a wrong item id is an error naming the file and the item
    (tmp_path / "nrs_back.en.toml").write_text('odi_1 = "wrong instrument"\n', encoding="utf-8")
    with pytest.raises(SpineregError, match=r"nrs_back\.en\.toml: unknown item id\(s\) odi_1"):
        item_labels("nrs_back", "en", tmp_path)


class _Request:
    def __init__(self, post: dict[str, str]) -> None:
        self.POST = post


def test_page_fields_follow_the_site_s_instruments_and_wording(registry: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from spinereg.followup.views import _read, _sections

    (tmp_path / "eq5d5l.en.toml").write_text('MO = "Made-up mobility question"\n', encoding="utf-8")
    monkeypatch.setenv("SPINEREG_WORDING_DIR", str(tmp_path))
    five = ("eq5d5l", "eqvas", "odi", "nrs_back", "nrs_leg")
    sections = _sections({"eq5d5l_mo": "4"}, five, "en")
    first: Any = sections[0][1][0]
    assert sections[0][0] == "EQ-5D-5L" and [f.name for f in sections[0][1]] == [
        "eq5d5l_mo", "eq5d5l_sc", "eq5d5l_ua", "eq5d5l_pd", "eq5d5l_ad"]
    assert (first.label, first.choices, first.value) == ("Made-up mobility question", (1, 2, 3, 4, 5), "4")
    assert sections[0][1][1].label == "Self-care"
    answers, values, errors = _read(_Request({"eq5d5l_mo": "5", "odi_1": "2"}), instruments=five)
    assert errors == [] and answers["eq5d5l_mo"] == 5 and values == {"eq5d5l_mo": "5", "odi_1": "2"}
    assert "eq5d3l_mo" not in answers
    _, _, errors = _read(_Request({"eq5d5l_mo": "6"}), instruments=five)
    assert errors == ["Mobility: give a whole number from 1 to 5."]

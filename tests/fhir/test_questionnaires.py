"""The Questionnaire resources: R4 (R4B model) valid, SDC answer options with item scores, neutral text,
and the codes of codes.toml = the codes documented in docs/fhir.md (each with its source)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.questionnaire import Questionnaire

from spinereg.fhir import ORDINAL_VALUE, FhirInputError, fhir_instrument, questionnaire, questionnaires

ROOT = Path(__file__).resolve().parents[2]
CODES_TOML = ROOT / "src" / "spinereg" / "fhir" / "resources" / "codes.toml"

#: Levels of each instrument, typed from the instruments' publications (not read from our definitions):
#: EQ-5D-3L 1-3, EQ-5D-5L 1-5, ODI 2.1a sections 0-5, NRS 0-10, EQ-VAS 0-100.
LEVELS = {"eq5d3l": (1, 3), "eq5d5l": (1, 5), "odi": (0, 5), "nrs-back": (0, 10), "nrs-leg": (0, 10),
          "eqvas": (0, 100)}
ITEMS = {"eq5d3l": ["MO", "SC", "UA", "PD", "AD"], "eq5d5l": ["MO", "SC", "UA", "PD", "AD"],
         "odi": [f"odi_{i}" for i in range(1, 11)], "nrs-back": ["nrs_back"], "nrs-leg": ["nrs_leg"],
         "eqvas": ["eqvas"]}


def test_one_questionnaire_per_instrument() -> None:
    assert [q["id"] for q in questionnaires()] == sorted(LEVELS)


@pytest.mark.parametrize("qid", sorted(LEVELS))
def test_questionnaire_is_valid_r4_with_sdc_answer_options(qid: str) -> None:
    q = questionnaire(qid)
    Questionnaire.model_validate(q)  # raises on an invalid resource
    assert q["resourceType"] == "Questionnaire" and q["status"] == "active"
    assert q["url"].endswith(qid)
    assert [it["linkId"] for it in q["item"]] == ITEMS[qid]
    lo, hi = LEVELS[qid]
    for item in q["item"]:
        if qid == "eqvas":
            assert item["type"] == "integer" and "answerOption" not in item
            bounds = {e["url"].rsplit("/", 1)[1]: e["valueInteger"] for e in item["extension"]}
            assert bounds == {"minValue": lo, "maxValue": hi}
            continue
        assert item["type"] == "choice"
        codes = [o["valueCoding"]["code"] for o in item["answerOption"]]
        assert codes == [str(v) for v in range(lo, hi + 1)]
        for option in item["answerOption"]:
            (ext,) = option["extension"]
            assert ext["url"] == "http://hl7.org/fhir/StructureDefinition/ordinalValue" == ORDINAL_VALUE
            assert ext["valueDecimal"] == int(option["valueCoding"]["code"])


def test_required_items() -> None:
    """EQ-5D dimensions and single items are required; ODI sections are not (one may be left out)."""
    assert all(it["required"] for it in questionnaire("eq5d5l")["item"])
    assert all(it["required"] for it in questionnaire("nrs-leg")["item"])
    assert not any(it["required"] for it in questionnaire("odi")["item"])
    assert "At most 1 section" in questionnaire("odi")["description"]


def test_neutral_text_only() -> None:
    """Item texts are our short neutral labels: no sentence of a copyrighted questionnaire."""
    labels = {"MO": "Mobility", "SC": "Self-care", "UA": "Usual activities", "PD": "Pain/discomfort",
              "AD": "Anxiety/depression", "odi_1": "Pain intensity", "odi_8": "Sex life"}
    for q in questionnaires():
        for it in q["item"]:
            assert len(it["text"]) <= 30 and not re.search(r"\b(I|my|you|your)\b", it["text"], re.I), it["text"]
            if it["linkId"] in labels:
                assert it["text"] == labels[it["linkId"]]
            for option in it.get("answerOption", []):
                assert option["valueCoding"]["display"] == option["valueCoding"]["code"]


def test_unknown_questionnaire() -> None:
    with pytest.raises(FhirInputError) as err:
        questionnaire("sf36")
    assert err.value.status == 404 and err.value.outcome["issue"][0]["code"] == "not-found"
    assert "'sf36'" in err.value.outcome["issue"][0]["diagnostics"]


@pytest.mark.parametrize("ref", ["odi", "Questionnaire/odi", "http://x.org/fhir/Questionnaire/odi",
                                 "urn:spinereg:fhir:Questionnaire:odi|2.1a"])
def test_questionnaire_references(ref: str) -> None:
    assert fhir_instrument(ref).instrument.id == "odi"


def _doc_codes() -> set[tuple[str, str, str, str, str]]:
    """(instrument, use, system, code, source) rows of the codes table in docs/fhir.md."""
    text = (ROOT / "docs" / "fhir.md").read_text(encoding="utf-8")
    table = text.split("<!-- codes -->")[1].split("<!-- /codes -->")[0]
    rows = set()
    for line in table.strip().splitlines()[2:]:
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        rows.add((cells[0], cells[1], cells[2], cells[3], re.sub(r"^<|>$", "", cells[5])))
    return rows


def test_codes_match_docs_and_sources() -> None:
    doc = tomllib.loads(CODES_TOML.read_text(encoding="utf-8"))
    toml_rows = {(c["instrument"], c["use"], c["system"], c["code"], c["source"]) for c in doc["code"]}
    assert toml_rows == _doc_codes()
    # the values as listed on loinc.org and in the MII PRO guide (typed here from those pages)
    assert ("odi", "questionnaire", "http://loinc.org", "97908-8", "https://loinc.org/97908-8/panel") in toml_rows
    assert ("odi", "score", "http://loinc.org", "97909-6", "https://loinc.org/97909-6") in toml_rows
    assert any(r[3] == "736534008" and r[2] == "http://snomed.info/sct" for r in toml_rows)
    for row in toml_rows:
        if row[2] == "http://loinc.org":  # LOINC codes checked on LOINC's own listing
            assert row[4].startswith(f"https://loinc.org/{row[3]}")
    unverified = {u["code"] for u in doc.get("unverified", [])}
    used = {c["code"] for q in questionnaires() for c in q.get("code", [])}
    assert not used & unverified


def test_questionnaire_codes_are_the_documented_ones() -> None:
    documented = {(r[0], r[3]) for r in _doc_codes() if r[1] == "questionnaire"}
    served = {(fhir_instrument(q["id"]).instrument.id, c["code"]) for q in questionnaires() for c in q.get("code", [])}
    assert served == documented == {("odi", "97908-8")}
    odi: dict[str, Any] = questionnaire("odi")
    assert odi["code"] == [{"system": "http://loinc.org", "code": "97908-8", "display": "Oswestry Disability Index"}]

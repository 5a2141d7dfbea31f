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


def _doc_systems() -> set[tuple[str, str]]:
    """(system, source) rows of the code-system table in docs/fhir.md."""
    text = (ROOT / "docs" / "fhir.md").read_text(encoding="utf-8")
    table = text.split("<!-- systems -->")[1].split("<!-- /systems -->")[0]
    rows = set()
    for line in table.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.add((cells[1].strip("`"), re.sub(r"^<|>$", "", cells[3])))
    return rows


def test_code_systems_match_docs() -> None:
    import spinereg.fhir as f

    documented = {s for s, _ in _doc_systems()}
    constants = {f.SKS_SYSTEM, f.ICD10_SYSTEM, f.INDICATION_SYSTEM, f.CATEGORY_SYSTEM, f.VERTEBRA_SYSTEM,
                 f.OPERATION_SYSTEM, f.PROM_SYSTEM, f.SCORE_SYSTEM, f.VALUESET_SYSTEM, f.COLUMN_EXTENSION}
    assert documented == constants
    # the external systems, as the pages named list them (typed here from those pages)
    assert ("urn:oid:1.2.208.176.2.4", "https://build.fhir.org/ig/fut-infrastructure/implementation-guide/branches/"
            "FUT1-16225-add-is-copyright-to-questionnaire-item/comparison-v3.2.0/"
            "cs-urn-oid-1.2.208.176.2.4-urn-oid-1.2.208.176.2.4.html") in _doc_systems()
    assert ("http://hl7.org/fhir/sid/icd-10", "https://build.fhir.org/sid-icd-10.html") in _doc_systems()
    for system, source in _doc_systems():
        assert system.startswith("urn:spinereg:") == (source == "this document")


def test_served_resources_use_documented_systems() -> None:
    import json

    from spinereg.fhir import observations_from_row, procedure_resource

    proc = procedure_resource({"operation_id": "a:1", "patient_id": "P", "date": "2024-01-02",
                               "procedure_category": "kyphoplasty", "procedure_codes": "KNAG40",
                               "diagnosis_codes": "M800", "indication": "osteoporotic_vcf", "asa_class": 2},
                              [{"operation_id": "a:1", "level": "L1", "approach": "unipedicular"}], "a..1")
    row = {"prom_id": "p", "patient_id": "P", "answer_date": "2024-01-01",
           **{f"eq5d5l_{d}": 1 for d in ("mo", "sc", "ua", "pd", "ad")},
           **{f"eq5d3l_{d}": 1 for d in ("mo", "sc", "ua", "pd", "ad")}, **{f"odi_{i}": 0 for i in range(1, 11)}}
    obs = observations_from_row(row, "p")
    assert [o["id"] for o in obs] == ["p.eq5d3l-index", "p.eq5d5l-index", "p.odi-score"]
    documented = {s for s, _ in _doc_systems()} | {c[2] for c in _doc_codes()} | {
        "http://terminology.hl7.org/CodeSystem/observation-category", "http://unitsofmeasure.org"}
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "system":
                    found.add(v)
                elif k == "url":
                    found.add(v.rsplit(":", 1)[0] + ":" if v.startswith("urn:spinereg:fhir:column:") else v)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk([proc, *obs])
    assert found <= documented, found - documented
    assert proc["reasonCode"][0]["coding"][0]["code"] == "M80.0"
    assert json.dumps(proc).count("urn:oid:1.2.208.176.2.4") == 1

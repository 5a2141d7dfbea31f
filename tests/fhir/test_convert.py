"""QuestionnaireResponse -> proms row: the answers' columns, the time point, and a catalogue of bad input,
each refused with an OperationOutcome that names the place (linkId) and the value."""

from __future__ import annotations

import copy
import json
from datetime import date
from typing import Any

import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome

from spinereg.fhir import (
    FhirInputError,
    assign_timepoint,
    fhir_instrument,
    parse_response,
    prom_row,
    response_from_row,
)

ODI = {"resourceType": "QuestionnaireResponse", "status": "completed", "questionnaire": "Questionnaire/odi",
       "subject": {"reference": "Patient/SYN25"}, "authored": "2020-04-01T09:30:00+02:00",
       "item": [{"linkId": f"odi_{i}", "answer": [{"valueCoding": {"code": str(i % 6)}}]} for i in range(1, 11)]}
EQ3 = {"resourceType": "QuestionnaireResponse", "status": "completed",
       "questionnaire": "urn:spinereg:fhir:Questionnaire:eq5d3l", "subject": {"reference": "Patient/P1"},
       "authored": "2020-01-01",
       "item": [{"linkId": d, "answer": [{"valueInteger": v}]} for d, v in zip(["MO", "SC", "UA", "PD", "AD"],
                                                                                 [1, 2, 3, 2, 1], strict=True)]}


def test_odi_answers_to_columns() -> None:
    p = parse_response(json.dumps(ODI))
    assert p.patient_id == "SYN25" and p.authored == date(2020, 4, 1) and p.questionnaire.id == "odi"
    assert p.answers == {"odi_1": 1, "odi_2": 2, "odi_3": 3, "odi_4": 4, "odi_5": 5, "odi_6": 0, "odi_7": 1,
                         "odi_8": 2, "odi_9": 3, "odi_10": 4}
    row = prom_row(p, prom_id="fhir:1", operation_id="OP1", timepoint="3m")
    assert row["answer_date"] == "2020-04-01" and row["timepoint"] == "3m" and row["odi_5"] == 5


def test_eq5d3l_integer_answers_to_columns() -> None:
    assert parse_response(EQ3).answers == {"eq5d3l_mo": 1, "eq5d3l_sc": 2, "eq5d3l_ua": 3, "eq5d3l_pd": 2,
                                           "eq5d3l_ad": 1}


def test_round_trip_row_to_resource() -> None:
    p = parse_response(ODI)
    doc = response_from_row(prom_row(p, prom_id="x", operation_id="o", timepoint="3m"), p.questionnaire, "x.odi")
    assert doc is not None and doc["id"] == "x.odi"
    assert parse_response(doc).answers == p.answers
    assert response_from_row({"prom_id": "x", "patient_id": "P", "odi_1": None}, fhir_instrument("eqvas"), "x") is None


def test_odi_one_section_may_be_missing() -> None:
    doc = copy.deepcopy(ODI)
    del doc["item"][7]
    assert "odi_8" not in parse_response(doc).answers


# -- time points: windows baseline -90..0, 3m 60..150, 1y 270..545, 2y 630..900 days (schema.toml) --------
OP = [("OP1", date(2020, 1, 1))]


@pytest.mark.parametrize(("authored", "expected"), [
    (date(2019, 12, 1), "baseline"),   # -31 days
    (date(2020, 1, 1), "baseline"),    # day 0
    (date(2020, 3, 1), "3m"),          # day 60, the window's first day
    (date(2020, 4, 1), "3m"),          # day 91
    (date(2020, 12, 31), "1y"),        # day 365
    (date(2022, 1, 1), "2y"),          # day 731
])
def test_timepoint_from_authored(authored: date, expected: str) -> None:
    assert assign_timepoint(authored, OP) == ("OP1", expected)


def test_timepoint_nearest_operation() -> None:
    ops = [("OP1", date(2020, 1, 1)), ("OP2", date(2020, 6, 1))]
    # 2020-05-20: day 140 after OP1 (3m, 50 from target) and day -12 before OP2 (baseline, 12 from target)
    assert assign_timepoint(date(2020, 5, 20), ops) == ("OP2", "baseline")


@pytest.mark.parametrize("authored", [
    date(2020, 1, 2),    # day 1: after baseline (..0), before 3m (60..)
    date(2020, 2, 29),   # day 59
    date(2020, 5, 31),   # day 151: just after 3m (..150)
    date(2019, 10, 2),   # day -91: just before baseline (-90..)
    date(2022, 6, 20),   # day 901: just after 2y (..900)
])
def test_timepoint_outside_every_window(authored: date) -> None:
    with pytest.raises(FhirInputError) as err:
        assign_timepoint(authored, OP)
    issue = err.value.outcome["issue"][0]
    assert err.value.status == 422 and issue["expression"] == ["QuestionnaireResponse.authored"]
    assert authored.isoformat() in issue["diagnostics"] and err.value.value == authored.isoformat()


def test_no_operation() -> None:
    with pytest.raises(FhirInputError, match="no operation"):
        assign_timepoint(date(2020, 1, 1), [])


# -- the catalogue of bad input ----------------------------------------------------------------------------
def _with(base: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    node: Any = doc
    for p in path[:-1]:
        node = node[p]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


_DELETE = object()
CPR = "0202554322"  # CPR-shaped (a real calendar date, 10 digits): never echoed

#: name -> (body, HTTP status, issue code, linkId, value shown, text in the diagnostics)
CATALOGUE: dict[str, tuple[Any, int, str, str | None, str | None, str]] = {
    "malformed JSON": ('{"resourceType": "QuestionnaireResponse",', 400, "structure", None, None,
                       "malformed JSON"),
    "JSON array": ("[1, 2]", 400, "structure", None, None, "JSON object"),
    "wrong resourceType": (_with(ODI, ["resourceType"], "Patient"), 400, "invalid", None, "'Patient'",
                           "resourceType 'Patient'"),
    "unknown questionnaire": (_with(ODI, ["questionnaire"], "Questionnaire/sf36"), 422, "not-found", None,
                              "Questionnaire/sf36", "unknown questionnaire 'Questionnaire/sf36'"),
    "missing questionnaire": (_with(ODI, ["questionnaire"], _DELETE), 422, "required", None, None,
                              "questionnaire is missing"),
    "missing subject": (_with(ODI, ["subject"], _DELETE), 422, "required", None, None, "subject is missing"),
    "subject not a patient": (_with(ODI, ["subject"], {"reference": "Group/7"}), 422, "invalid", None, "Group/7",
                              "'Group/7'"),
    "missing authored": (_with(ODI, ["authored"], _DELETE), 422, "required", None, None, "authored is missing"),
    "status in-progress": (_with(ODI, ["status"], "in-progress"), 422, "business-rule", None, "in-progress",
                           "'in-progress'"),
    "out-of-range coding": (_with(ODI, ["item", 2, "answer", 0], {"valueCoding": {"code": "6"}}), 422, "value",
                            "odi_3", "6", "item 'odi_3': answer '6' is outside the item's range 0..5"),
    "out-of-range integer": (_with(EQ3, ["item", 3, "answer", 0], {"valueInteger": 4}), 422, "value", "PD", "4",
                             "item 'PD': answer 4 is outside the item's range 1..3"),
    "EQ-VAS 101": ({**EQ3, "questionnaire": "Questionnaire/eqvas",
                    "item": [{"linkId": "eqvas", "answer": [{"valueInteger": 101}]}]}, 422, "value", "eqvas", "101",
                   "answer 101 is outside the item's range 0..100"),
    "code not a level": (_with(ODI, ["item", 0, "answer", 0], {"valueCoding": {"code": "severe"}}), 422,
                         "code-invalid", "odi_1", "severe", "'severe'"),
    "foreign code system": (_with(ODI, ["item", 0, "answer", 0],
                                  {"valueCoding": {"system": "http://loinc.org", "code": "LA6111-4"}}), 422,
                            "code-invalid", "odi_1", "LA6111-4", "code system"),
    "wrong answer type": (_with(ODI, ["item", 1, "answer", 0], {"valueString": "2"}), 422, "value", "odi_2",
                          "valueString", "valueString is not accepted"),
    "two answers": (_with(ODI, ["item", 1, "answer"], [{"valueInteger": 1}, {"valueInteger": 2}]), 422, "invalid",
                    "odi_2", "2", "2 answers"),
    "unknown linkId": (_with(ODI, ["item", 0, "linkId"], "odi_11"), 422, "invalid", "odi_11", "odi_11",
                       "item 'odi_11' is not an item of Oswestry Disability Index"),
    "EQ-5D linkId in ODI": (_with(ODI, ["item", 0, "linkId"], "MO"), 422, "invalid", "MO", "MO", "'MO'"),
    "item twice": (_with(ODI, ["item", 1, "linkId"], "odi_1"), 422, "invalid", "odi_1", "odi_1", "twice"),
    "missing required item": (_with(EQ3, ["item"], EQ3["item"][:4]), 422, "required", "AD", "(missing)",
                              "required item 'AD' has no answer"),
    "two ODI sections missing": (_with(ODI, ["item"], ODI["item"][:8]), 422, "required", "odi_9", "(missing)",
                                 "2 items have no answer ('odi_9', 'odi_10')"),
    "CPR in free text": (_with(ODI, ["item", 0, "text"], f"pt {CPR} says"), 422, "security", None,
                         "[CPR number hidden]", "CPR number"),
    "CPR as subject": (_with(ODI, ["subject"], {"reference": f"Patient/{CPR}"}), 422, "security", None,
                       "[CPR number hidden]", "QuestionnaireResponse.subject.reference"),
    "not R4 (integer as text)": (_with(EQ3, ["item", 0, "answer", 0], {"valueInteger": "one"}), 400, "structure",
                                 None, None, "valueInteger"),
}


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_bad_input_catalogue(name: str) -> None:
    body, status, code, link_id, value, text = CATALOGUE[name]
    with pytest.raises(FhirInputError) as err:
        parse_response(body if isinstance(body, str) else json.dumps(body))
    exc = err.value
    OperationOutcome.model_validate(exc.outcome)
    (issue,) = exc.outcome["issue"]
    assert (exc.status, issue["code"], exc.link_id, exc.value) == (status, code, link_id, value), issue
    assert text in issue["diagnostics"], issue["diagnostics"]
    assert issue["severity"] == "error"
    if link_id is not None:
        assert issue["expression"] == [f"QuestionnaireResponse.item.where(linkId='{link_id}')" +
                                       (".answer" if code in ("value", "code-invalid") else "")]
        assert repr(link_id) in issue["diagnostics"]
    assert CPR not in json.dumps(exc.outcome) and CPR not in str(exc)

"""SDC Questionnaire resources of the registry's instruments, built from their definitions.

One Questionnaire per instrument (EQ-5D-3L, EQ-5D-5L, EQ-VAS, ODI, NRS back
and NRS leg), from :func:`spinereg.instruments.get_instrument`: the item ids
are the ``linkId`` s, the neutral labels are the ``text`` (the EQ-5D and ODI
wording is copyrighted and not shipped).  An item with at most eleven levels
is a ``choice`` item with one ``answerOption`` per level (a ``valueCoding``
whose code is the level, in the code system :data:`ANSWER_SYSTEM` + instrument
id) carrying the level as its item score in the ``ordinalValue`` extension;
a wider scale (EQ-VAS, 0-100) is an ``integer`` item bounded by the
``minValue``/``maxValue`` extensions.  ``Questionnaire.code`` holds the checked
codes of ``resources/codes.toml`` (use ``questionnaire``).  Every resource is
validated by the FHIR R4B model of ``fhir.resources``.

Required items: the five EQ-5D dimensions (the index needs all five) and the
single item of EQ-VAS and the NRS; the ODI's sections are optional one by one,
but at most ``max_missing`` (1) may be left out, the ODI's own scoring rule.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from spinereg.fhir._codes import instrument_codes
from spinereg.fhir._outcome import FhirInputError
from spinereg.instruments import Instrument, get_instrument

__all__ = ["ANSWER_SYSTEM", "CANONICAL_BASE", "ORDINAL_VALUE", "FhirInstrument", "fhir_instrument",
           "fhir_instruments", "questionnaire", "questionnaires"]

#: The instruments served, by Questionnaire id (FHIR ids allow no ``_``).
QUESTIONNAIRE_IDS: dict[str, str] = {
    "eq5d3l": "eq5d3l", "eq5d5l": "eq5d5l", "eqvas": "eqvas", "odi": "odi",
    "nrs-back": "nrs_back", "nrs-leg": "nrs_leg",
}
ORDINAL_VALUE = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"
SDC_PROFILE = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire"
#: Canonical URL of a Questionnaire: this + its id.
CANONICAL_BASE = "urn:spinereg:fhir:Questionnaire:"
#: Code system of the answer levels: this + the instrument id.
ANSWER_SYSTEM = "urn:spinereg:fhir:answers:"
#: Items with at most this many levels are choice items.
MAX_CHOICES = 11


@dataclass(frozen=True)
class FhirInstrument:
    """An instrument as served over FHIR: Questionnaire id, definition, required items."""

    id: str
    instrument: Instrument

    @property
    def url(self) -> str:
        return CANONICAL_BASE + self.id

    @property
    def answer_system(self) -> str:
        return ANSWER_SYSTEM + self.instrument.id

    def is_choice(self, link_id: str) -> bool:
        item = self.instrument.item(link_id)
        return item.max - item.min + 1 <= MAX_CHOICES

    def required(self, link_id: str) -> bool:
        return self.instrument.scoring != "odi"

    @property
    def max_missing(self) -> int:
        return int(self.instrument.params.get("max_missing", 0)) if self.instrument.scoring == "odi" else 0


def fhir_instruments() -> tuple[FhirInstrument, ...]:
    """The served instruments, in Questionnaire id order."""
    return tuple(FhirInstrument(q, get_instrument(i)) for q, i in sorted(QUESTIONNAIRE_IDS.items()))


def fhir_instrument(reference: str) -> FhirInstrument:
    """The instrument a Questionnaire id, ``Questionnaire/ID``, a URL ending in it, or a canonical URL
    (``|version`` allowed) names; :class:`FhirInputError` (404, ``not-found``) when none."""
    ref = reference.split("|", 1)[0].strip()
    qid = ref
    if ref.startswith(CANONICAL_BASE):
        qid = ref[len(CANONICAL_BASE):]
    elif "Questionnaire/" in ref:
        qid = ref.rsplit("Questionnaire/", 1)[1].strip("/")
    if qid not in QUESTIONNAIRE_IDS:
        raise FhirInputError(f"unknown questionnaire {reference!r}; known: "
                             f"{', '.join('Questionnaire/' + q for q in sorted(QUESTIONNAIRE_IDS))}",
                             status=404, code="not-found", expression="QuestionnaireResponse.questionnaire",
                             value=reference)
    return FhirInstrument(qid, get_instrument(QUESTIONNAIRE_IDS[qid]))


def _name(qid: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in qid.replace("-", " ").split())


def _build(fi: FhirInstrument) -> dict[str, Any]:
    inst = fi.instrument
    items: list[dict[str, Any]] = []
    for it in inst.items:
        item: dict[str, Any] = {"linkId": it.id, "text": it.label, "required": fi.required(it.id)}
        if fi.is_choice(it.id):
            item["type"] = "choice"
            item["answerOption"] = [{
                "extension": [{"url": ORDINAL_VALUE, "valueDecimal": level}],
                "valueCoding": {"system": fi.answer_system, "code": str(level), "display": str(level)},
            } for level in range(it.min, it.max + 1)]
        else:
            item["type"] = "integer"
            item["extension"] = [{"url": MIN_VALUE, "valueInteger": it.min},
                                 {"url": MAX_VALUE, "valueInteger": it.max}]
        items.append(item)
    codes = [{"system": c.system, "code": c.code, "display": c.display}
             for c in instrument_codes() if c.instrument == inst.id and c.use == "questionnaire"]
    rule = (f" At most {fi.max_missing} section(s) may be left unanswered." if fi.max_missing else "")
    doc: dict[str, Any] = {
        "resourceType": "Questionnaire",
        "id": fi.id,
        "meta": {"profile": [SDC_PROFILE]},
        "url": fi.url,
        "version": inst.version,
        "name": _name(fi.id),
        "title": inst.name,
        "status": "active",
        "subjectType": ["Patient"],
        "publisher": "spinereg",
        "description": (f"{inst.description} Item ids and neutral labels only: the licensed wording is not "
                        f"included.{rule}"),
        "item": items,
    }
    if inst.owner:
        doc["copyright"] = f"The instrument is the property of {inst.owner}; its wording needs their licence."
    if codes:
        doc["code"] = codes
    return _validated(doc)


def _validated(doc: dict[str, Any]) -> dict[str, Any]:
    from fhir.resources.R4B.questionnaire import Questionnaire

    return dict(Questionnaire.model_validate(doc).model_dump(mode="json", exclude_none=True))


@functools.cache
def _all() -> dict[str, dict[str, Any]]:
    return {fi.id: _build(fi) for fi in fhir_instruments()}


def questionnaires() -> list[dict[str, Any]]:
    """Every Questionnaire (JSON, validated by the R4B model), in id order."""
    return [dict(q) for _, q in sorted(_all().items())]


def questionnaire(qid: str) -> dict[str, Any]:
    """One Questionnaire by id (``odi``, ``nrs-back``, ...); :class:`FhirInputError` (404) when unknown."""
    fi = fhir_instrument(qid)
    return dict(_all()[fi.id])

"""FHIR R4 resources of the registry's instruments: SDC Questionnaires, QuestionnaireResponse
conversion to and from ``proms`` rows, and OperationOutcome errors.  No Django: the web API
(:mod:`spinereg.fhir_api`) uses this library.  Resources are validated by the R4B models of
``fhir.resources`` (R4B is wire-compatible with R4 for these resources)."""

from spinereg.fhir._codes import InstrumentCode, instrument_codes
from spinereg.fhir._convert import (
    ParsedResponse,
    assign_timepoint,
    check_resource,
    instrument_columns,
    load_json,
    parse_response,
    prom_row,
    response_from_row,
)
from spinereg.fhir._outcome import FhirInputError, operation_outcome
from spinereg.fhir._patient import CPR_SYSTEM, patient_cpr, patient_resource
from spinereg.fhir._questionnaires import (
    ANSWER_SYSTEM,
    CANONICAL_BASE,
    ORDINAL_VALUE,
    FhirInstrument,
    fhir_instrument,
    fhir_instruments,
    questionnaire,
    questionnaires,
)

__all__ = [
    "ANSWER_SYSTEM",
    "CANONICAL_BASE",
    "CPR_SYSTEM",
    "ORDINAL_VALUE",
    "FhirInputError",
    "FhirInstrument",
    "InstrumentCode",
    "ParsedResponse",
    "assign_timepoint",
    "check_resource",
    "fhir_instrument",
    "fhir_instruments",
    "instrument_codes",
    "instrument_columns",
    "load_json",
    "operation_outcome",
    "parse_response",
    "patient_cpr",
    "patient_resource",
    "prom_row",
    "questionnaire",
    "questionnaires",
    "response_from_row",
]

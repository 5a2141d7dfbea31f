"""Registry data: the tidy extract, validation, import mappings,
pseudonymisation and the synthetic registry.  Imports only instruments."""

from spinereg.data._cpr import HIDDEN, check_no_cpr, contains_cpr, find_cpr, redact_cpr
from spinereg.data._schema import Column, Entity, TimePoint, entities, entity, timepoints
from spinereg.data._tidy import Extract, conform, empty_table, extract_sha256, read_extract, write_extract

__all__ = [
    "HIDDEN",
    "Column",
    "Entity",
    "Extract",
    "TimePoint",
    "check_no_cpr",
    "conform",
    "contains_cpr",
    "empty_table",
    "entities",
    "entity",
    "extract_sha256",
    "find_cpr",
    "read_extract",
    "redact_cpr",
    "timepoints",
    "write_extract",
]

"""Registry data: the tidy extract, validation, import mappings,
pseudonymisation and the synthetic registry.  Imports only instruments."""

from spinereg.data._schema import Column, Entity, TimePoint, entities, entity, timepoints
from spinereg.data._tidy import Extract, conform, empty_table, extract_sha256, read_extract, write_extract

__all__ = [
    "Column",
    "Entity",
    "Extract",
    "TimePoint",
    "conform",
    "empty_table",
    "entities",
    "entity",
    "extract_sha256",
    "read_extract",
    "timepoints",
    "write_extract",
]

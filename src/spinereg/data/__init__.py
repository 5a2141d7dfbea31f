"""Registry data: the tidy extract, validation, import mappings,
pseudonymisation and the synthetic registry.  Imports only instruments."""

from spinereg.data._csv import SourceTable, csv_float, read_table, to_csv
from spinereg.data._schema import Column, Entity, TimePoint, entities, entity, timepoints
from spinereg.data._tidy import Extract, conform, empty_table, extract_sha256, read_extract, write_extract

__all__ = [
    "Column",
    "Entity",
    "Extract",
    "SourceTable",
    "TimePoint",
    "conform",
    "csv_float",
    "empty_table",
    "entities",
    "entity",
    "extract_sha256",
    "read_extract",
    "read_table",
    "timepoints",
    "to_csv",
    "write_extract",
]

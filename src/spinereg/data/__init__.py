"""Registry data: the tidy extract, validation, import mappings,
pseudonymisation and the synthetic registry.  Imports only instruments."""

from spinereg.data._schema import Column, Entity, TimePoint, entities, entity, timepoints
from spinereg.data._tidy import (
    DATASET_KEYS,
    Extract,
    conform,
    empty_table,
    extract_sha256,
    read_dataset_meta,
    read_extract,
    write_extract,
)

__all__ = [
    "DATASET_KEYS",
    "Column",
    "Entity",
    "Extract",
    "TimePoint",
    "conform",
    "empty_table",
    "entities",
    "entity",
    "extract_sha256",
    "read_dataset_meta",
    "read_extract",
    "timepoints",
    "write_extract",
]

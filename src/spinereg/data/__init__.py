"""Registry data: the tidy extract, validation, import mappings,
pseudonymisation and the synthetic registry.  Imports only instruments."""

from spinereg.data._cpr import (
    HIDDEN,
    check_no_cpr,
    contains_cpr,
    default_key_path,
    find_cpr,
    load_site_key,
    parse_cpr,
    redact_cpr,
)
from spinereg.data._csv import SourceTable, csv_float, read_table, to_csv
from spinereg.data._mapped import ChunkStream, MappedTable, Provenance
from spinereg.data._mapping import (
    NAMESPACE_SEP,
    ImportMapping,
    MappedChunks,
    apply_mapping,
    id_columns,
    iter_mapping,
    load_mapping,
    namespaced_id,
    shipped_mappings,
)
from spinereg.data._record import RecordReferences, check_record
from spinereg.data._schedule import SCHEDULE_COLUMNS, SCHEDULE_STATUSES, STUDY_CATEGORIES, follow_up_schedule
from spinereg.data._schema import Column, Entity, TimePoint, entities, entity, timepoints
from spinereg.data._scores import derive_scores
from spinereg.data._synth import synthesize
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
from spinereg.data._validate import REFERENCE_COLUMNS, ValidationReport, validate

__all__ = [
    "DATASET_KEYS",
    "HIDDEN",
    "NAMESPACE_SEP",
    "REFERENCE_COLUMNS",
    "SCHEDULE_COLUMNS",
    "SCHEDULE_STATUSES",
    "STUDY_CATEGORIES",
    "ChunkStream",
    "Column",
    "Entity",
    "Extract",
    "ImportMapping",
    "MappedChunks",
    "MappedTable",
    "Provenance",
    "RecordReferences",
    "SourceTable",
    "TimePoint",
    "ValidationReport",
    "apply_mapping",
    "check_no_cpr",
    "check_record",
    "conform",
    "contains_cpr",
    "csv_float",
    "default_key_path",
    "derive_scores",
    "empty_table",
    "entities",
    "entity",
    "extract_sha256",
    "find_cpr",
    "follow_up_schedule",
    "id_columns",
    "iter_mapping",
    "load_mapping",
    "load_site_key",
    "namespaced_id",
    "parse_cpr",
    "read_dataset_meta",
    "read_extract",
    "read_table",
    "redact_cpr",
    "shipped_mappings",
    "synthesize",
    "timepoints",
    "to_csv",
    "validate",
    "write_extract",
]

"""The registry: a reusable Django app (models, migrations) and its one audited write service.

Importing this package does not configure Django.  Inside a host Django
project (the web registry), add ``"spinereg.registry"`` to ``INSTALLED_APPS``;
standalone (the command line), :func:`open_registry` configures Django from
:mod:`spinereg.registry.standalone` on first use.  Every write to registry data
goes through :class:`RegistryWriter` (single records) or :func:`import_files` /
:func:`import_extract` (bulk), each audited; other writes are refused
(:class:`UnauditedWriteError`, or the database's own refusal).  A single record
is checked by the import's validator (:meth:`RegistryWriter.check`,
:class:`RecordValidationError`) and may be locked with an e-signature
(:meth:`RegistryWriter.lock`); patients are registered by CPR number through their
keyed pseudonym (:func:`register_patient`, :func:`find_patient`); the worklists are
:func:`missing_forms` and :func:`quality_problems`.  The study engine never imports
this package.
"""

from spinereg.registry._audit import acting_as, actor
from spinereg.registry._backup import BackupResult, backup_registry, restore_registry
from spinereg.registry._checks import RecordProblem, RecordValidationError
from spinereg.registry._guard import UnauditedWriteError
from spinereg.registry._history import HistoryEntry, RegistryInfo, audit_entries, registry_info, row_history
from spinereg.registry._locks import LockInfo, RecordLockedError, lock_state, record_locks
from spinereg.registry._patients import find_patient, register_patient
from spinereg.registry._pipeline import ImportResult, import_files, parse_extract_date
from spinereg.registry._read import load_extract, load_references, registry_counts
from spinereg.registry._service import RegistryWriter, dataset_code, key_fingerprint, migrate, schema_state
from spinereg.registry._settings import default_database_url, open_registry, resolve_database_url, safe_url
from spinereg.registry._store import (
    ImportConflictError,
    ImportPreview,
    ImportSummary,
    RowChange,
    StreamedTables,
    Tables,
    import_extract,
    preview_import,
)
from spinereg.registry._worklists import MISSING_FORMS, missing_forms, quality_problems

__all__ = [
    "MISSING_FORMS",
    "BackupResult",
    "HistoryEntry",
    "ImportConflictError",
    "ImportPreview",
    "ImportResult",
    "ImportSummary",
    "LockInfo",
    "RecordLockedError",
    "RecordProblem",
    "RecordValidationError",
    "RegistryInfo",
    "RegistryWriter",
    "RowChange",
    "StreamedTables",
    "Tables",
    "UnauditedWriteError",
    "acting_as",
    "actor",
    "audit_entries",
    "backup_registry",
    "dataset_code",
    "default_database_url",
    "find_patient",
    "import_extract",
    "import_files",
    "key_fingerprint",
    "load_extract",
    "load_references",
    "lock_state",
    "migrate",
    "missing_forms",
    "open_registry",
    "parse_extract_date",
    "preview_import",
    "quality_problems",
    "record_locks",
    "register_patient",
    "registry_counts",
    "registry_info",
    "resolve_database_url",
    "restore_registry",
    "row_history",
    "safe_url",
    "schema_state",
]

"""spinereg: a toolkit and registry for outcome studies in spine surgery.

The public API is small and stable; everything else lives in private modules.
"""

from spinereg._errors import (
    DatabaseError,
    DataFileError,
    IntegrityConflictError,
    InvalidInputError,
    MappingError,
    PrivacyError,
    Problem,
    SiteKeyError,
    SourceFileError,
    SpineregError,
    StudySpecError,
    UnknownValueSetError,
)
from spinereg._version import __version__
from spinereg.instruments import (
    InvalidInputWarning,
    eq5d,
    eqvas,
    get_instrument,
    hsdi,
    lfs,
    list_instruments,
    load_wording,
    lss,
    nrs,
    odi,
    pchc,
    shannon,
)
from spinereg.instruments import valueset_catalogue as valuesets

__all__ = [
    "DataFileError",
    "DatabaseError",
    "IntegrityConflictError",
    "InvalidInputError",
    "InvalidInputWarning",
    "MappingError",
    "PrivacyError",
    "Problem",
    "SiteKeyError",
    "SourceFileError",
    "SpineregError",
    "StudySpecError",
    "UnknownValueSetError",
    "__version__",
    "eq5d",
    "eqvas",
    "get_instrument",
    "hsdi",
    "lfs",
    "list_instruments",
    "load_wording",
    "lss",
    "nrs",
    "odi",
    "pchc",
    "shannon",
    "valuesets",
]


def __getattr__(name: str) -> object:
    """``spinereg.stats`` on first use (it imports scipy and statsmodels, so not eagerly)."""
    if name == "stats":
        import importlib

        return importlib.import_module("spinereg.stats")
    raise AttributeError(f"module 'spinereg' has no attribute {name!r}")

"""The one exception hierarchy of spinereg.

Every error raised on purpose by spinereg derives from :class:`SpineregError`,
so that callers (the CLI, the web registry) can catch one class and show the
message without a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "DataFileError",
    "DatabaseError",
    "IntegrityConflictError",
    "InvalidInputError",
    "MappingError",
    "PrivacyError",
    "Problem",
    "SiteKeyError",
    "SourceFileError",
    "SpineregError",
    "StudySpecError",
    "UnknownValueSetError",
    "show_value",
]


def show_value(value: object) -> str:
    """A value as a user wrote it: integral floats without ``.0`` (a CSV
    column with a gap is read as floats, but the file said ``7``)."""
    if isinstance(value, float) and value.is_integer():
        return repr(int(value))
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            return show_value(value.item())
        except (TypeError, ValueError):
            pass
    return repr(value)


class SpineregError(Exception):
    """Base class of every error spinereg raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One problem found in input data.

    Attributes
    ----------
    row : int or None
        0-based position of the row in the input (``None`` when not row-bound).
    column : str or None
        The column (or item) the value was read from.
    value : object
        The offending value, as given.
    rule : str
        Short description of the rule that was broken.
    """

    row: int | None
    column: str | None
    value: object
    rule: str

    def __str__(self) -> str:
        parts = []
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column is not None:
            parts.append(f"column {self.column!r}")
        where = ", ".join(parts)
        prefix = f"{where}: " if where else ""
        return f"{prefix}value {show_value(self.value)}: {self.rule}"


class InvalidInputError(SpineregError, ValueError):
    """Input values break a rule of the instrument (strict mode).

    The message lists the first problems; :attr:`problems` holds all of them
    and :attr:`n_invalid` the number of invalid rows.
    """

    def __init__(self, what: str, problems: Sequence[Problem], n_invalid: int | None = None,
                 max_shown: int = 10) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.n_invalid = len({p.row for p in self.problems}) if n_invalid is None else n_invalid
        shown = "\n".join(f"  {p}" for p in self.problems[:max_shown])
        more = len(self.problems) - max_shown
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(f"{what}: {self.n_invalid} invalid row(s)\n{shown}{tail}")


class UnknownValueSetError(SpineregError, KeyError):
    """The requested value set (version, type, country) does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataFileError(SpineregError):
    """A bundled reference data file is malformed (a packaging bug)."""


class MappingError(SpineregError):
    """A mapping file (TOML) is malformed or does not fit the tidy schema; the message
    names the mapping file and key."""


class SourceFileError(SpineregError):
    """A source file cannot be read (missing, unreadable, wrong format or encoding); the
    message names the file."""


class PrivacyError(SpineregError):
    """A write would store a CPR number in clear (a CPR-shaped number in a value); the
    message names where (file, row, column, or form field) with the value hidden."""


class IntegrityConflictError(SpineregError):
    """A write conflicts with data already in the registry or with another input: a row
    of another dataset, a changed row without ``--update``, the same key twice."""


class SiteKeyError(SpineregError):
    """The pseudonymisation key does not fit: unreadable, malformed, or another key
    than the one the registry was written with."""


class DatabaseError(SpineregError):
    """The registry database cannot be used: unreachable server, missing or unwritable
    file, out-of-date schema.  The message says what to do."""


class StudySpecError(SpineregError):
    """A study specification is invalid; the message names the file and key."""

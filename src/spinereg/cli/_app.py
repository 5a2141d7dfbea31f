"""Typer application: ``spinereg score``, ``spinereg valuesets``."""

from __future__ import annotations

import contextlib
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from spinereg._errors import InvalidInputError, SpineregError, show_value
from spinereg._version import __version__
from spinereg.cli._files import NUMBER, check_output, numbers, read_input, write_table
from spinereg.data import SourceTable
from spinereg.instruments import DIMENSIONS, InvalidInputWarning, eq5d, odi, valueset_catalogue

__all__ = ["app", "main"]

app = typer.Typer(
    name="spinereg",
    help="Outcome studies in spine surgery: PROM scoring, registry data, studies and reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
score_app = typer.Typer(help="Score PROM instruments in a data file.", no_args_is_help=True)
app.add_typer(score_app, name="score")

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False)

PROGRESS_MIN_BYTES = 2_000_000


class Version(StrEnum):
    L3 = "3L"
    L5 = "5L"
    Y3L = "Y3L"


class Invalid(StrEnum):
    RAISE = "raise"
    NAN = "nan"


class FailureError(Exception):
    """Problems already printed; exit non-zero."""


def _version_callback(value: bool) -> None:
    if value:
        out.print(f"spinereg {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[bool, typer.Option("--version", callback=_version_callback,
                                               is_eager=True, help="Print the version.")] = False,
) -> None:
    """spinereg command line."""


@contextlib.contextmanager
def _stages(path: Path) -> Iterator[Progress | None]:
    """A Rich progress display for large files (stderr, transient)."""
    big = path.exists() and path.stat().st_size >= PROGRESS_MIN_BYTES
    if not big:
        yield None
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=err, transient=True) as progress:
        yield progress


def _step(progress: Progress | None, text: str) -> None:
    if progress is not None:
        progress.add_task(text, total=None)


def _where(table: SourceTable, row: int) -> str:
    """Where data row ``row`` (0-based) stands in the file: ``line 7``, ``sheet row 7``, ``row 6``."""
    return f"{table.row_label} {int(table.rows[row])}"


def _as_in_file(value: Any) -> str:
    """A cell for a message: a number as written (``7``, ``1,5``), ``(empty)``, other text quoted."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return "(empty)"
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return "(empty)"
        return text if re.fullmatch(NUMBER, text) else repr(value)
    return show_value(value)


def _report(table: SourceTable, columns: dict[str, str], exc: InvalidInputError) -> None:
    """One line per problem (file, row, column, value as in the file, rule), then the count."""
    for p in exc.problems:
        where = _where(table, p.row) if p.row is not None else ""
        column = columns.get(p.column, p.column) if p.column else None
        shown = show_value(p.value)
        if p.row is not None and column in table.frame.columns:
            shown = _as_in_file(table.frame[column].iloc[p.row])
        col = f"column {column!r}: " if column else ""
        err.print(f"{table.file}:{where + ': ' if where else ' '}{col}value {shown}: {p.rule}", markup=False)
    err.print(f"{exc.n_invalid} invalid row(s) in {table.file}; nothing written.", markup=False)


def _find_columns(table: SourceTable, wanted: Sequence[str]) -> dict[str, str]:
    """``wanted`` name -> the file's column, matched ignoring case (only those present).

    Two columns whose names differ only in case (``MO`` and ``mo``) are refused for
    a wanted name: which one is meant cannot be told.
    """
    by_lower: dict[str, list[str]] = {}
    for c in map(str, table.frame.columns):
        by_lower.setdefault(c.strip().lower(), []).append(c)
    found: dict[str, str] = {}
    for name in wanted:
        hits = by_lower.get(name.lower(), [])
        if len(hits) > 1:
            raise SpineregError(f"{table.file}: columns {' and '.join(map(repr, hits))} differ only in case; "
                                f"rename one so that {name!r} is unambiguous")
        if hits:
            found[name] = hits[0]
    return found


def _new_columns(table: SourceTable, names: Sequence[str]) -> None:
    """Refuse to add a column the file already has (compared ignoring case)."""
    have = {str(c).strip().lower(): str(c) for c in table.frame.columns}
    taken = [have[n.lower()] for n in names if n.lower() in have]
    if taken:
        raise SpineregError(f"{table.file} already has column {taken[0]!r}; the scores are never written over "
                            "it: name the new column with --column NAME")


def _type_versions() -> dict[str, set[str]]:
    """Value-set type (upper case) -> the descriptive systems it scores."""
    cat = valueset_catalogue()
    versions: dict[str, set[str]] = {}
    for t, v in zip(cat["type"].astype(str), cat["version"].astype(str), strict=True):
        versions.setdefault(t.upper(), set()).add(v)
    return versions


def _high_levels(frame: pd.DataFrame) -> tuple[int, int | None, str]:
    """Responses at level 4 or 5: how many, the first row, and its column.

    ``frame`` holds either the five dimension columns (numbers) or ``state``
    (profiles).  Only values that are valid 5L levels count: a stray ``7`` is an
    error, not a sign of 5L.
    """
    if "state" in frame.columns and not set(DIMENSIONS) <= set(frame.columns):
        txt = frame["state"].astype("string[pyarrow]").str.strip().fillna("")
        ok = txt.str.fullmatch("[1-5]{5}").to_numpy(dtype=bool, na_value=False)
        high = ok & txt.str.contains("[45]").to_numpy(dtype=bool, na_value=False)
        rows = np.flatnonzero(high)
        return len(rows), (int(rows[0]) if len(rows) else None), "state"
    count, first, first_col = 0, None, ""
    for d in DIMENSIONS:
        v = pd.to_numeric(pd.Series(frame[d].to_numpy(dtype=object)), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan)
        rows = np.flatnonzero((v == 4) | (v == 5))
        count += len(rows)
        if len(rows) and (first is None or rows[0] < first):
            first, first_col = int(rows[0]), d
    return count, first, first_col


def _choose_version(version: Version | None, type: str | None, table: SourceTable, frame: pd.DataFrame,
                    columns: dict[str, str]) -> tuple[str, list[str]]:
    """The descriptive system to score with: given, implied by ``--type``, or read from the data.

    Rule: ``--version`` if given; else the one system ``--type`` belongs to (TTO,
    VAS, RCW: 3L; VT, CW: 5L; cTTO: Y3L); else 5L when some response is level 4
    or 5, which no 3-level system has.  Otherwise (every response 1-3) the data
    fit EQ-5D-3L, -Y-3L and -5L alike and the command refuses.  Returns the
    version and the notes to print: how it was inferred, and a warning when 5L
    data are all levels 1-3.
    """
    notes: list[str] = []
    n_high, first, col = _high_levels(frame)
    if version is not None:
        chosen = version.value
    elif type is not None and len(versions := _type_versions().get(type.strip().upper(), set())) == 1:
        chosen = next(iter(versions))
        notes.append(f"EQ-5D-{chosen}: implied by --type {type}")
    elif n_high:
        chosen = "5L"
        assert first is not None
        notes.append(f"EQ-5D-5L inferred from the data: {n_high:,} response(s) at level 4 or 5 (first: "
                     f"{_where(table, first)}, column {columns.get(col, col)!r}); give --version to choose")
    else:
        raise SpineregError(
            f"{table.file}: give --version 3L, 5L or Y3L: no response is at level 4 or 5, so the data fit "
            "EQ-5D-3L, EQ-5D-Y-3L and EQ-5D-5L alike, and their value sets give different indices")
    if chosen == "5L" and not n_high and len(frame):
        notes.append("note: every response is at level 1, 2 or 3; if these are EQ-5D-3L answers, "
                     "score them with --version 3L")
    return chosen, notes


def _score_frame(table: SourceTable, columns: dict[str, str]) -> pd.DataFrame:
    """The scored columns under their canonical names, as numbers (``state`` as text)."""
    data: dict[str, Any] = {}
    for name, col in columns.items():
        s = table.frame[col]
        if name == "state":
            data[name] = s.to_numpy(dtype=object)
        else:
            data[name] = numbers(s)
    return pd.DataFrame(data, index=pd.RangeIndex(len(table.frame)))


def _read(input: Path, output: Path, progress: Progress | None, sep: str | None, encoding: str | None,
          sheet: str | None, header_row: int | None) -> SourceTable:
    check_output(input, output)
    _step(progress, f"reading {input}")
    return read_input(input, sep=sep, encoding=encoding, sheet=sheet, header_row=header_row)


_SEP = typer.Option("--sep", help="CSV delimiter (default: detected from the header line; 'tab' for tab).")
_ENCODING = typer.Option("--encoding", help="CSV text encoding (default: UTF-8, else Windows-1252).")
_SHEET = typer.Option("--sheet", help="Excel sheet name (default: the first sheet).")
_HEADER_ROW = typer.Option("--header-row", min=1,
                           help="Line (CSV) or sheet row (Excel) with the column names, from 1 (default: 1).")


@score_app.command("eq5d")
def score_eq5d(
    input: Annotated[Path, typer.Argument(help="CSV, XLSX, Parquet, SAS, Stata or SPSS file with "
                                               "columns MO SC UA PD AD or state (any case).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output file (.csv/.xlsx/.parquet).")],
    version: Annotated[Version | None, typer.Option(
        "--version", help="Descriptive system. Default: implied by --type, else 5L when a response is "
                          "level 4 or 5; data with levels 1-3 only need --version.")] = None,
    type: Annotated[str | None, typer.Option("--type", help="TTO, VAS, VT, CW, RCW, cTTO...")] = None,
    country: Annotated[str, typer.Option("--country", help="R spelling or ISO code.")] = "Denmark",
    method: Annotated[str | None, typer.Option("--method", help="RCW method: VH or EQ.")] = None,
    invalid: Annotated[Invalid, typer.Option("--invalid", help="raise: stop; nan: NaN rows.")] =
        Invalid.RAISE,
    digits: Annotated[int | None, typer.Option("--digits", help="Round half away from zero.")] = None,
    column: Annotated[str, typer.Option("--column", help="Name of the new column.")] = "index",
    sep: Annotated[str | None, _SEP] = None,
    encoding: Annotated[str | None, _ENCODING] = None,
    sheet: Annotated[str | None, _SHEET] = None,
    header_row: Annotated[int | None, _HEADER_ROW] = None,
) -> None:
    """Add an EQ-5D index column computed with a published value set.

    The file is read as `spinereg import` reads it.  Column names are matched
    ignoring case; the input file and its columns are never written over.
    """
    with _stages(input) as progress:
        table = _read(input, output, progress, sep, encoding, sheet, header_row)
        _new_columns(table, [column])
        columns = _find_columns(table, [*DIMENSIONS, "state"])
        if all(d in columns for d in DIMENSIONS):
            columns = {d: columns[d] for d in DIMENSIONS}
        elif "state" in columns:
            columns = {"state": columns["state"]}
        else:
            missing = " ".join(d for d in DIMENSIONS if d not in columns)
            raise SpineregError(f"{table.file}: needs columns MO SC UA PD AD or 'state' (any case); "
                                f"missing {missing}; it has {', '.join(map(str, table.frame.columns))}")
        frame = _score_frame(table, columns)
        chosen, notes = _choose_version(version, type, table, frame, columns)
        if type is None:
            type = {"3L": "TTO", "5L": "VT", "Y3L": None}[chosen]
        _step(progress, f"scoring {len(frame):,} rows")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", InvalidInputWarning)
                index = eq5d(frame, chosen, type, country, invalid=invalid.value, digits=digits, method=method)
        except InvalidInputError as exc:
            _report(table, columns, exc)
            raise FailureError from None
        result = table.frame.copy()
        result[column] = index.to_numpy()
        _step(progress, f"writing {output}")
        write_table(result, output)
    for line in [*notes, *(f"warning: {w.message}" for w in caught)]:
        err.print(line, markup=False)
    err.print(f"{len(result):,} rows scored with EQ-5D-{chosen} {index.attrs['valueset']}; "
              f"wrote {output}", markup=False)


@score_app.command("odi")
def score_odi(
    input: Annotated[Path, typer.Argument(help="CSV, XLSX, Parquet, SAS, Stata or SPSS file with "
                                               "odi_1 ... odi_10 (any case).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output file (.csv/.xlsx/.parquet).")],
    max_missing: Annotated[int, typer.Option("--max-missing", help="Sections that may be missing.")] = 1,
    invalid: Annotated[Invalid, typer.Option("--invalid", help="raise: stop; nan: NaN rows.")] =
        Invalid.RAISE,
    column: Annotated[str, typer.Option("--column", help="Name of the score column; the band and the "
                                                         "count of missing sections get _band, _missing.")] = "odi",
    sep: Annotated[str | None, _SEP] = None,
    encoding: Annotated[str | None, _ENCODING] = None,
    sheet: Annotated[str | None, _SHEET] = None,
    header_row: Annotated[int | None, _HEADER_ROW] = None,
) -> None:
    """Add the ODI 2.1a score, its band and the count of missing sections.

    The new columns are `odi`, `odi_band` and `odi_missing` (or --column NAME:
    NAME, NAME_band, NAME_missing); the input file and its columns are never
    written over.
    """
    items = [f"odi_{k}" for k in range(1, 11)]
    new = [column, f"{column}_band", f"{column}_missing"]
    with _stages(input) as progress:
        table = _read(input, output, progress, sep, encoding, sheet, header_row)
        _new_columns(table, new)
        columns = _find_columns(table, items)
        if len(columns) < len(items):
            missing = " ".join(i for i in items if i not in columns)
            raise SpineregError(f"{table.file}: needs columns odi_1 ... odi_10 (any case); missing {missing}")
        frame = _score_frame(table, columns)
        _step(progress, f"scoring {len(frame):,} rows")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", InvalidInputWarning)
                scored = odi(frame, max_missing=max_missing, invalid=invalid.value)
        except InvalidInputError as exc:
            _report(table, columns, exc)
            raise FailureError from None
        result = table.frame.copy()
        for name, col in zip(new, ("odi", "odi_band", "odi_missing"), strict=True):
            result[name] = scored[col].to_numpy()
        _step(progress, f"writing {output}")
        write_table(result, output)
    for w in caught:
        err.print(f"warning: {w.message}", markup=False)
    n_nan = int(scored["odi"].isna().sum())
    err.print(f"{len(result):,} rows scored ({n_nan} without a score); wrote {output}", markup=False)


@app.command("valuesets")
def valuesets_cmd(
    version: Annotated[Version | None, typer.Option("--version", help="Only this version.")] = None,
    csv: Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table.")] = False,
) -> None:
    """List every EQ-5D value set with its citation."""
    cat = valueset_catalogue(None if version is None else version.value)
    if csv:
        sys.stdout.write(cat.to_csv(index=False))
        return
    table = Table(title=f"EQ-5D value sets ({int(cat['available'].sum())} available)",
                  show_lines=False)
    for col in ("version", "type", "country", "iso", "citation"):
        table.add_column(col, overflow="fold")
    for rec in cat.to_dict("records"):
        cite = rec["citation"] if rec["available"] else f"NOT AVAILABLE: {rec['note']}"
        kind = f"{rec['type']}/{rec['method']}" if rec["method"] else str(rec["type"])
        table.add_row(str(rec["version"]), kind, str(rec["country"]), str(rec["iso3166"]), str(cite))
    out.print(table)


def _register_commands() -> None:
    from spinereg.cli._registry import register

    register(app)
    from spinereg.cli._demo import register as register_demo
    from spinereg.cli._study import register as register_study

    register_study(app)
    register_demo(app)
    from spinereg.cli._web import register as register_web

    register_web(app)
    from spinereg.cli._fhir import register as register_fhir

    register_fhir(app)

_register_commands()


def main() -> None:
    """Entry point: run the app, turning spinereg errors into one-line messages.

    Typer (standalone mode) handles usage errors, ``--help`` and exit codes;
    a :class:`~spinereg.SpineregError` is printed as ``error: ...`` lines,
    never as a traceback.
    """
    try:
        app()
    except FailureError:
        sys.exit(1)
    except SpineregError as exc:
        for line in str(exc).splitlines():
            err.print(line if line.startswith(" ") else f"error: {line}", markup=False)
        sys.exit(1)
    except OSError as exc:  # a path the user gave: unwritable, missing, a directory ...
        where = f": {exc.filename}" if exc.filename else ""
        err.print(f"error: {exc.strerror or exc}{where}", markup=False)
        sys.exit(1)
    except Exception as exc:
        if not _is_database_error(exc):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        err.print(f"error: the registry database refused the operation: {first}", markup=False)
        sys.exit(1)


def _is_database_error(exc: BaseException) -> bool:
    """A database driver's or Django's database error (not a bug in spinereg)."""
    import sqlite3

    mod = type(exc).__module__
    return isinstance(exc, sqlite3.Error) or mod.startswith(("django.db", "psycopg"))


pd.options.mode.copy_on_write = True

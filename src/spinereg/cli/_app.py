"""Typer application: ``spinereg score``, ``spinereg valuesets``."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from spinereg._errors import InvalidInputError, SpineregError, show_value
from spinereg._version import __version__
from spinereg.cli._files import read_table, row_label, write_table
from spinereg.instruments import eq5d, odi, valueset_catalogue
from spinereg.instruments._eq5d import InvalidInputWarning

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


def _report(path: Path, exc: InvalidInputError) -> None:
    for p in exc.problems:
        where = row_label(path, p.row) if p.row is not None else ""
        col = f"column {p.column!r}: " if p.column else ""
        err.print(f"{path}:{where + ': ' if where else ' '}{col}value {show_value(p.value)}: {p.rule}",
                  markup=False)
    err.print(f"{exc.n_invalid} invalid row(s) in {path}; nothing written.", markup=False)


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


@score_app.command("eq5d")
def score_eq5d(
    input: Annotated[Path, typer.Argument(help="CSV, XLSX or Parquet with MO SC UA PD AD or state.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output file (.csv/.xlsx/.parquet).")],
    version: Annotated[Version, typer.Option("--version", help="Descriptive system.")] = Version.L5,
    type: Annotated[str | None, typer.Option("--type", help="TTO, VAS, VT, CW, RCW, cTTO...")] = None,
    country: Annotated[str, typer.Option("--country", help="R spelling or ISO code.")] = "Denmark",
    method: Annotated[str | None, typer.Option("--method", help="RCW method: VH or EQ.")] = None,
    invalid: Annotated[Invalid, typer.Option("--invalid", help="raise: stop; nan: NaN rows.")] =
        Invalid.RAISE,
    digits: Annotated[int | None, typer.Option("--digits", help="Round half away from zero.")] = None,
) -> None:
    """Add an EQ-5D `index` column computed with a published value set."""
    if type is None:
        type = {"3L": "TTO", "5L": "VT", "Y3L": None}[version.value]
    with _stages(input) as progress:
        _step(progress, f"reading {input}")
        df = read_table(input, text_columns=("state",))
        _step(progress, f"scoring {len(df):,} rows")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", InvalidInputWarning)
                index = eq5d(df, version.value, type, country, invalid=invalid.value,
                             digits=digits, method=method)
        except InvalidInputError as exc:
            _report(input, exc)
            raise FailureError from None
        result = df.copy()
        result["index"] = index.to_numpy()
        _step(progress, f"writing {output}")
        write_table(result, output)
    for w in caught:
        err.print(f"warning: {w.message}", markup=False)
    err.print(f"{len(result):,} rows scored with EQ-5D-{version.value} {index.attrs['valueset']}; "
              f"wrote {output}", markup=False)


@score_app.command("odi")
def score_odi(
    input: Annotated[Path, typer.Argument(help="CSV, XLSX or Parquet with odi_1 ... odi_10.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output file.")],
    max_missing: Annotated[int, typer.Option("--max-missing", help="Sections that may be missing.")] = 1,
    invalid: Annotated[Invalid, typer.Option("--invalid", help="raise: stop; nan: NaN rows.")] =
        Invalid.RAISE,
) -> None:
    """Add `odi`, `odi_band` and `odi_missing` (ODI 2.1a)."""
    with _stages(input) as progress:
        _step(progress, f"reading {input}")
        df = read_table(input)
        _step(progress, f"scoring {len(df):,} rows")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", InvalidInputWarning)
                scored = odi(df, max_missing=max_missing, invalid=invalid.value)
        except InvalidInputError as exc:
            _report(input, exc)
            raise FailureError from None
        result = df.copy()
        for col in ("odi", "odi_band", "odi_missing"):
            result[col] = scored[col].to_numpy()
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

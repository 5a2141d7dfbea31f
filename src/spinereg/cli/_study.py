"""Study commands: ``spinereg study check`` and ``spinereg study run``."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from spinereg._errors import SpineregError

if TYPE_CHECKING:
    import pandas as pd

    from spinereg.data import Extract
    from spinereg.study import StudySpec

__all__ = ["StudyRun", "load_study_data", "register", "run_and_write"]

FORMATS = ("html", "pdf", "docx")


def _sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite://"):
        return None
    rest = url[len("sqlite://"):]
    return Path(rest[1:]) if rest.startswith("/") else Path(rest)


def load_study_data(spec: StudySpec, spec_path: Path, *, db: str | None = None,
                    data: Path | None = None) -> tuple[Extract, str]:
    """The tidy extract a study runs on, and a description of where it came from.

    Precedence: ``data`` (an extract directory), then ``db`` (a database URL),
    then the spec's ``data.database`` or ``data.extract``.  Paths given on the
    command line (``--data``, the file of a ``--db sqlite:///`` URL) are
    relative to the working directory; relative paths in the spec, in
    ``data.extract`` and in a ``data.database`` SQLite URL alike, are relative
    to the spec file (:func:`spinereg.study.resolve_data_source`).
    """
    from spinereg.data import read_extract
    from spinereg.study import resolve_data_source

    if data is not None:
        return read_extract(data), str(data)
    if db is not None:
        url = db
    else:
        kind, where = resolve_data_source(spec, spec_path)
        if kind == "extract":
            return read_extract(Path(where)), where
        url = where
    path = _sqlite_path(url)
    if path is not None and not path.exists():
        source = "--db" if db is not None else f"data.database of {spec_path}"
        raise SpineregError(f"no registry database at {path} (from {source}: {url}); create one with "
                            "`spinereg demo` or `spinereg synth`, or give --db URL or --data DIR")
    from django.db import connections

    from spinereg._errors import DatabaseError
    from spinereg.registry import load_extract, open_registry, safe_url, schema_state

    alias = open_registry(url)
    shown = safe_url(url)
    if "spinereg_patients" not in connections[alias].introspection.table_names():
        raise SpineregError(f"{shown}: not a spinereg registry (no tables); run `spinereg db init --db {shown}`")
    if schema_state(alias) == "outdated":  # reading old tables would fail on a column they lack
        raise DatabaseError(f"the registry {shown} has an out-of-date schema: run `spinereg db migrate --db ...`")
    from spinereg.study import candidate_patients

    # a national registry is not read whole: the questionnaires, levels, complications and imaging of
    # the patients the cohort can reach (all patients and operations are read, for the flow and counts)
    return load_extract(alias, only=lambda pats, ops: candidate_patients(pats, ops, spec)), url


def register(app: typer.Typer) -> None:
    """Add ``spinereg study`` to ``app``."""
    from spinereg.cli._app import err, out

    study_app = typer.Typer(help="Studies defined as files.", no_args_is_help=True)
    app.add_typer(study_app, name="study")

    @study_app.command("check")
    def study_check(spec: Annotated[Path, typer.Argument(help="The study spec (TOML).")]) -> None:
        """Validate a study spec without running it."""
        from spinereg.study import load_spec

        s, digest = load_spec(spec)
        out.print(f"{spec}: valid study spec \"{s.title}\" ({len(s.outcomes)} outcome(s), "
                  f"time points {', '.join(s.timepoints)}); sha256 {digest[:16]}", markup=False)

    @study_app.command("run")
    def study_run(
        spec: Annotated[Path, typer.Argument(help="The study spec (TOML).")],
        out_dir: Annotated[Path, typer.Option("--out", help="Output directory.")],
        db: Annotated[str | None, typer.Option("--db", help="Registry database URL (overrides the spec).")]
            = None,
        data: Annotated[Path | None, typer.Option("--data", help="Extract directory (overrides the spec).")]
            = None,
        fmt: Annotated[str, typer.Option("--format", help="Report formats, comma-separated: html,pdf,docx; "
                                                           "'none' writes results only.")] = "html,pdf,docx",
    ) -> None:
        """Run a study: results.json, a CSV per table and the report."""
        formats = _formats(fmt)
        if db is not None and data is not None:
            raise SpineregError("give --db or --data, not both")
        run = run_and_write(spec, out_dir, db=db, data=data, formats=formats)
        out.print(run.cohort_line(), markup=False, soft_wrap=True)
        for message in run.warnings:
            err.print(f"warning: {message}", markup=False, soft_wrap=True)
        for p in run.written:
            out.print(str(p), markup=False)


def _formats(fmt: str) -> tuple[str, ...]:
    if fmt.strip().lower() == "none":
        return ()
    chosen = tuple(dict.fromkeys(f.strip().lower() for f in fmt.split(",") if f.strip()))
    bad = [f for f in chosen if f not in FORMATS]
    if bad:
        raise SpineregError(f"--format: unknown format(s) {', '.join(bad)}; choose from {', '.join(FORMATS)} "
                            "or 'none'")
    return chosen


@dataclass(frozen=True)
class StudyRun:
    """What ``run_and_write`` did: the files written, timings in seconds, the cohort size,
    and the warnings a reader of the results must see."""

    written: list[Path]
    timings: dict[str, float]
    n_patients: int
    n_operations: int
    warnings: list[str] = field(default_factory=list)
    #: small-cell threshold when the results suppress small counts, else None
    suppress_below: int | None = None

    def _count(self, n: int) -> str:
        t = self.suppress_below
        return f"<{t}" if t is not None and 0 < n < t else str(n)

    def cohort_line(self) -> str:
        """``cohort: N patients ...``, with a count below the threshold hidden as the report hides it."""
        return (f"cohort: {self._count(self.n_patients)} patient{'' if self.n_patients == 1 else 's'}, "
                f"each with one index operation (of {self._count(self.n_operations)} operations in the data)")


def _table_notes(tables: dict[str, pd.DataFrame]) -> list[str]:
    """The non-empty ``note`` cells of the result tables, as ``table (row keys): note``."""
    keys = ("variable", "outcome", "timepoint", "measure", "unit", "category", "term")
    found: list[str] = []
    for name, df in tables.items():
        if "note" not in df.columns:
            continue
        for _, row in df.iterrows():
            note = row["note"]
            if not isinstance(note, str) or not note.strip():
                continue
            where = ", ".join(str(row[k]) for k in keys if k in df.columns and isinstance(row[k], str))
            found.append(f"{name}{f' ({where})' if where else ''}: {note}")
    return found


def run_and_write(spec_path: Path, out_dir: Path, *, db: str | None, data: Path | None,
                  formats: tuple[str, ...]) -> StudyRun:
    """Load the spec and data, run the study, write results and the report.

    Warnings raised while the study runs are caught (not printed by Python) and
    returned, with the notes of the result tables, in :attr:`StudyRun.warnings`.
    """
    from spinereg.study import load_spec, run_study

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    spec, digest = load_spec(spec_path)
    extract, _ = load_study_data(spec, spec_path, db=db, data=data)
    timings["load"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_study(spec, extract, spec_sha256=digest)
    timings["analyse"] = time.perf_counter() - t0
    messages = list(dict.fromkeys(str(w.message) for w in caught))
    messages += _table_notes(result.tables)
    written = result.write(out_dir)
    if formats:
        from spinereg.report import render_report

        t0 = time.perf_counter()
        written += render_report(out_dir / "results.json", out_dir, formats=formats)
        timings["report"] = time.perf_counter() - t0
    n_ops = len(extract["operations"])
    threshold = spec.analyses.small_cell_threshold if result.suppress_small_cells else None
    return StudyRun(written, timings, n_patients=len(result.cohort.operations), n_operations=n_ops,
                    warnings=messages, suppress_below=threshold)

"""Study commands: ``spinereg study check`` and ``spinereg study run``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from spinereg._errors import SpineregError

if TYPE_CHECKING:
    from spinereg.data import Extract
    from spinereg.study import StudySpec

__all__ = ["load_study_data", "register"]

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
    then the spec's ``data.database`` or ``data.extract``.  A relative
    extract path in the spec is relative to the spec file; a relative SQLite
    path in a URL is relative to the working directory.
    """
    from spinereg.data import read_extract

    if data is not None:
        return read_extract(data), str(data)
    url = db or spec.data.database
    if url is None:
        if spec.data.extract is None:
            raise SpineregError(f"{spec_path}: data: give 'database' or 'extract', or --db/--data")
        p = Path(spec.data.extract)
        p = p if p.is_absolute() else spec_path.parent / p
        return read_extract(p), str(p)
    path = _sqlite_path(url)
    if path is not None and not path.exists():
        raise SpineregError(f"no registry database at {path} (from {url}); create one with "
                            "`spinereg demo` or `spinereg synth`, or give --db URL or --data DIR")
    from django.db import connections

    from spinereg.registry import load_extract, open_registry

    alias = open_registry(url)
    if "spinereg_patients" not in connections[alias].introspection.table_names():
        raise SpineregError(f"{url}: not a spinereg registry (no tables); run `spinereg db init --db {url}`")
    return load_extract(alias), url


def register(app: typer.Typer) -> None:
    """Add ``spinereg study`` to ``app``."""
    from spinereg.cli._app import out

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
        written, _ = run_and_write(spec, out_dir, db=db, data=data, formats=formats)
        for p in written:
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


def run_and_write(spec_path: Path, out_dir: Path, *, db: str | None, data: Path | None,
                  formats: tuple[str, ...]) -> tuple[list[Path], dict[str, float]]:
    """Load the spec and data, run the study, write results and the report; return paths and timings."""
    from spinereg.study import load_spec, run_study

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    spec, digest = load_spec(spec_path)
    extract, _ = load_study_data(spec, spec_path, db=db, data=data)
    timings["load"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = run_study(spec, extract, spec_sha256=digest)
    timings["analyse"] = time.perf_counter() - t0
    written = result.write(out_dir)
    if formats:
        from spinereg.report import render_report

        t0 = time.perf_counter()
        written += render_report(out_dir / "results.json", out_dir, formats=formats)
        timings["report"] = time.perf_counter() - t0
    return written, timings

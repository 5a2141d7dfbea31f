"""Registry commands: ``db init|migrate``, ``import``, ``validate``, ``export``, ``synth``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from spinereg._errors import SpineregError

__all__ = ["register"]

DbOption = Annotated[str | None, typer.Option(
    "--db", help="Database URL (sqlite:///PATH or postgresql://...). Default: SPINEREG_DATABASE_URL, "
                 "else the embedded SQLite file.")]


def _open(db: str | None, *, migrate: bool = True) -> str:
    from spinereg.registry import migrate as do_migrate
    from spinereg.registry import open_registry

    alias = open_registry(db)
    if migrate:
        do_migrate(alias)
    return alias


def _progress() -> Progress:
    from spinereg.cli._app import err

    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
                    TimeElapsedColumn(), console=err, transient=True)


def _entity_steps(prog: Progress, verb: str) -> Callable[[str, int, int], None]:
    """A progress callback ``step(entity, done, total)`` with one bar per entity."""
    tasks: dict[str, TaskID] = {}

    def step(entity: str, done: int, total: int) -> None:
        if entity not in tasks:
            tasks[entity] = prog.add_task(f"{verb} {entity}", total=total)
        prog.update(tasks[entity], completed=done)

    return step


def _spinner() -> Progress:
    from rich.progress import SpinnerColumn

    from spinereg.cli._app import err

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err,
                    transient=True)


def register(app: typer.Typer) -> None:
    """Add the registry commands to ``app``."""
    from spinereg.cli._app import FailureError, err, out

    db_app = typer.Typer(help="Create or upgrade the registry database.", no_args_is_help=True)
    app.add_typer(db_app, name="db")

    @db_app.command("init")
    def db_init(db: DbOption = None) -> None:
        """Create the registry database (SQLite file or PostgreSQL schema)."""
        from spinereg.registry import resolve_database_url

        _open(db)
        err.print(f"registry ready: {_safe_url(resolve_database_url(db))}", markup=False)

    @db_app.command("migrate")
    def db_migrate(db: DbOption = None) -> None:
        """Apply pending migrations to the registry database."""
        from spinereg.registry import resolve_database_url

        _open(db)
        err.print(f"registry migrated: {_safe_url(resolve_database_url(db))}", markup=False)

    def _print_report(report: Any, report_csv: Path | None) -> None:
        if len(report.problems):
            for line in report.to_text(limit=200).splitlines():
                err.print(line, markup=False)
        if report_csv is not None:
            report.to_csv(report_csv)
            err.print(f"report written to {report_csv}", markup=False)

    @app.command("validate")
    def validate_cmd(
        files: Annotated[list[Path], typer.Argument(help="Source files.")],
        mapping: Annotated[str, typer.Option("--mapping", help="Mapping name or TOML file.")],
        report: Annotated[Path | None, typer.Option("--report", help="Write the report as CSV.")] = None,
        key_file: Annotated[Path | None, typer.Option("--key-file", help="Site key file.")] = None,
        extract_date: Annotated[str | None, typer.Option("--extract-date", help="YYYY-MM-DD.")] = None,
        db: DbOption = None,
    ) -> None:
        """Dry run of an import: map and validate, print the report, write nothing."""
        from spinereg.registry import import_files

        alias = _open(db) if db else None
        result = import_files(alias, mapping, files, key_file=key_file, extract_date=extract_date, dry_run=True)
        rep, extract = result.report, result.extract
        _print_report(rep, report)
        if rep.problems.empty:
            err.print("0 error(s), 0 warning(s)", markup=False)
        counts = ", ".join(f"{k} {len(v):,}" for k, v in extract.tables.items() if len(v))
        err.print(f"would import: {counts or 'nothing'}", markup=False)
        if not rep.ok:
            raise FailureError

    @app.command("import")
    def import_cmd(
        files: Annotated[list[Path], typer.Argument(help="Source files.")],
        mapping: Annotated[str, typer.Option("--mapping", help="Mapping name or TOML file.")],
        report: Annotated[Path | None, typer.Option("--report", help="Write the report as CSV.")] = None,
        key_file: Annotated[Path | None, typer.Option("--key-file", help="Site key file.")] = None,
        extract_date: Annotated[str | None, typer.Option("--extract-date", help="YYYY-MM-DD.")] = None,
        dataset: Annotated[str | None, typer.Option("--dataset", help="Dataset name.")] = None,
        db: DbOption = None,
    ) -> None:
        """Import source files through a mapping: validated, all or nothing, audited."""
        from spinereg.registry import import_files

        alias = _open(db)
        with _progress() as prog:
            step = _entity_steps(prog, "importing")

            result = import_files(alias, mapping, files, key_file=key_file, extract_date=extract_date,
                                  dataset={"name": dataset} if dataset else None, progress=step)
        _print_report(result.report, report)
        if result.summary is None:
            err.print("import refused: fix the errors above; nothing was written.", markup=False)
            raise FailureError
        summary = result.summary
        out.print(f"imported: {summary.total_created:,} created, {summary.total_updated:,} updated, "
                  f"{sum(summary.unchanged.values()):,} unchanged (batch {summary.batch_id})", markup=False)

    @app.command("export")
    def export_cmd(
        directory: Annotated[Path, typer.Argument(help="Output directory.")],
        fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
        country_3l: Annotated[str, typer.Option("--country-3l", help="3L TTO value set.")] = "Denmark",
        country_5l: Annotated[str, typer.Option("--country-5l", help="5L VT value set.")] = "Denmark",
        db: DbOption = None,
    ) -> None:
        """Write the tidy extract: one file per entity plus derived scores."""
        from spinereg.data import write_extract
        from spinereg.data._scores import derive_scores
        from spinereg.registry import load_extract

        if fmt not in ("csv", "parquet"):
            raise SpineregError(f"--format must be csv or parquet, not {fmt!r}")
        alias = _open(db)
        extract = load_extract(alias)
        scores = derive_scores(extract["proms"], country_3l=country_3l, country_5l=country_5l)
        write_extract(extract, directory, fmt, extra={"scores": scores})  # type: ignore[arg-type]
        n = sum(len(v) for v in extract.tables.values())
        flag = " (SYNTHETIC data)" if extract.synthetic else ""
        out.print(f"exported {n:,} rows{flag} to {directory}", markup=False)

    @app.command("synth")
    def synth_cmd(
        patients: Annotated[int, typer.Option("--patients", help="Number of patients.")] = 20_000,
        seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 2018,
        out_dir: Annotated[Path | None, typer.Option("--out", help="Write an extract directory instead.")]
            = None,
        fmt: Annotated[str, typer.Option("--format", help="Extract format: csv or parquet.")] = "parquet",
        db: DbOption = None,
    ) -> None:
        """Generate a synthetic DaneSpine-like registry (clearly flagged synthetic)."""
        from spinereg.data import write_extract
        from spinereg.data._synth import synthesize

        if patients < 1:
            raise SpineregError("--patients must be at least 1")
        with _spinner() as prog:
            prog.add_task(f"generating {patients:,} synthetic patients", total=None)
            extract = synthesize(patients, seed)
        if out_dir is not None:
            write_extract(extract, out_dir, fmt)  # type: ignore[arg-type]
            out.print(f"synthetic registry ({patients:,} patients, seed {seed}) written to {out_dir}",
                      markup=False)
            return
        from spinereg.registry import import_extract

        alias = _open(db)
        with _progress() as prog:
            step = _entity_steps(prog, "writing")

            name = f"synthetic registry (seed {seed}, {patients} patients)"
            summary = import_extract(alias, extract, mapping="synth", files=[],
                                     dataset={"name": name, "synthetic": True, "source": "spinereg synth",
                                              "extract_date": extract.meta.get("extract_date")},
                                     progress=step)
        out.print(f"synthetic registry written: {summary.total_created:,} rows "
                  f"({patients:,} patients, seed {seed})", markup=False)


def _safe_url(url: str) -> str:
    """A database URL without its password."""
    import re

    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)

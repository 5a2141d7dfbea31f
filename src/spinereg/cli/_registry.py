"""Registry commands: ``db init|migrate|info``, ``import``, ``validate``, ``export``, ``synth``, ``audit``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from spinereg._errors import DatabaseError, IntegrityConflictError, SpineregError

__all__ = ["register"]

ChangesOption = Annotated[Path | None, typer.Option(
    "--changes", help="Write every change (entity, key, column, old, new) as CSV.")]
DbOption = Annotated[str | None, typer.Option(
    "--db", help="Database URL (sqlite:///PATH or postgresql://...). Default: SPINEREG_DATABASE_URL, "
                 "else the embedded SQLite file.")]


def _open(db: str | None, *, migrate: bool = True) -> str:
    """Open (creating when new) and migrate the registry: for commands that write."""
    from spinereg.registry import migrate as do_migrate
    from spinereg.registry import open_registry

    alias = open_registry(db)
    if migrate:
        do_migrate(alias)
    return alias


def _open_existing(db: str | None) -> str:
    """Open a registry that must exist, with an up-to-date schema: for commands that only
    read.  Nothing is created (no file, no table)."""
    from spinereg.registry import open_registry, resolve_database_url, safe_url, schema_state

    alias = open_registry(db, create=False)
    state = schema_state(alias)
    where = safe_url(resolve_database_url(db))
    if state == "missing":
        raise DatabaseError(f"no registry in {where}: check --db (create one with `spinereg db init`)")
    if state == "outdated":
        raise DatabaseError(f"the registry {where} has an out-of-date schema: run `spinereg db migrate --db ...`")
    return alias


def _extract_date(value: str | None) -> str | None:
    from spinereg.registry import parse_extract_date

    try:
        return parse_extract_date(value)
    except SpineregError as exc:
        raise SpineregError(f"--extract-date: {exc}") from None


def _print_changes(changes: Any, verb: str, limit: int = 50) -> None:
    from spinereg.cli._app import err

    for c in changes[:limit]:
        err.print(f"  {verb} {c.entity} {c.key}: {c.column} {c.old!r} -> {c.new!r}"
                  + (f" (dataset {c.dataset})" if verb == "refused" else ""), markup=False)
    if len(changes) > limit:
        err.print(f"  ... and {len(changes) - limit:,} more (--changes FILE.csv writes them all)", markup=False)


def _write_changes(changes: Any, path: Path | None) -> None:
    if path is None:
        return
    import csv

    from spinereg.cli._app import err

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["entity", "key", "column", "old", "new", "dataset"])
        for c in changes:
            w.writerow([c.entity, c.key, c.column, "" if c.old is None else c.old,
                        "" if c.new is None else c.new, c.dataset])
    err.print(f"changes written to {path}", markup=False)


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
        from spinereg.cli._web import migrate_web
        from spinereg.registry import resolve_database_url, safe_url

        _open(db)
        migrate_web(db)  # the web registry's tables (auth, sessions, sites...) in a process of its own
        err.print(f"registry ready: {safe_url(resolve_database_url(db))}", markup=False)

    @db_app.command("migrate")
    def db_migrate(db: DbOption = None) -> None:
        """Apply pending migrations to the registry database."""
        from spinereg.registry import resolve_database_url, safe_url

        _open(db)
        err.print(f"registry migrated: {safe_url(resolve_database_url(db))}", markup=False)

    @db_app.command("backup")
    def db_backup(
        dest: Annotated[Path, typer.Argument(help="The backup file to write (must not exist).")],
        db: DbOption = None,
    ) -> None:
        """Back the whole registry up into a new file, safely while it is in use (SQLite's online
        backup; pg_dump for PostgreSQL).  The site key and the web secret key are not in it."""
        from spinereg.registry import backup_registry

        result = backup_registry(dest, db)
        rows = ", ".join(f"{k} {v:,}" for k, v in result.counts.items())
        out.print(f"backup of {result.database} written to {result.path} ({result.size:,} bytes): {rows}",
                  markup=False)
        err.print("the site key and the web secret key are not in a backup: keep copies of them apart",
                  markup=False)

    @db_app.command("restore")
    def db_restore(
        src: Annotated[Path, typer.Argument(help="A backup file written by `spinereg db backup`.")],
        db: DbOption = None,
        replace: Annotated[bool, typer.Option("--replace", help="Replace an existing registry (stop the "
                                                                 "server first).")] = False,
    ) -> None:
        """Put a backup back: into a new SQLite file or an empty PostgreSQL database, or over an
        existing registry with --replace.  All or nothing."""
        from spinereg.registry import restore_registry

        result = restore_registry(src, db, replace=replace)
        rows = ", ".join(f"{k} {v:,}" for k, v in result.counts.items())
        out.print(f"restored {result.path} into {result.database}: {rows}", markup=False)

    @db_app.command("info")
    def db_info(db: DbOption = None) -> None:
        """Show the registry's datasets, write batches, rows per entity and site key fingerprint."""
        from rich.table import Table

        from spinereg.registry import registry_info, resolve_database_url, safe_url

        info = registry_info(_open_existing(db))
        out.print(f"registry: {safe_url(resolve_database_url(db))}", markup=False)
        out.print(f"site key fingerprint: {info.key_fingerprint or '(none yet)'}", markup=False)
        counts = Table(title="rows per entity")
        for name in info.counts:
            counts.add_column(name, justify="right")
        counts.add_row(*(f"{n:,}" for n in info.counts.values()))
        out.print(counts)
        for title, frame in (("datasets", info.datasets), ("write batches", info.batches)):
            table = Table(title=f"{title} ({len(frame):,})")
            for col in frame.columns:
                table.add_column(str(col), overflow="fold")
            for rec in frame.tail(50).itertuples(index=False):
                table.add_row(*("" if v is None else f"{v:,}" if isinstance(v, int) and not isinstance(v, bool)
                                else str(v) for v in rec))
            out.print(table)

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
        dataset: Annotated[str | None, typer.Option("--dataset", help="Dataset name (namespaces source ids).")]
            = None,
        changes: ChangesOption = None,
        db: DbOption = None,
    ) -> None:
        """Dry run of an import: map and validate, compare with the registry (--db), write nothing.

        Lists every existing row the import would change (key and column, old -> new).
        Writes no database file and no key file."""
        from spinereg.registry import import_files

        day = _extract_date(extract_date)
        alias = _open_existing(db) if db else None
        if mapping == "fhir":  # FHIR Bundles / NDJSON: read by spinereg.fhir, then the same validation
            from spinereg.cli._fhir import import_fhir_files as import_files
        result = import_files(alias, mapping, files, key_file=key_file, extract_date=day,
                              dataset={"name": dataset} if dataset else None, dry_run=True)
        rep, extract = result.report, result.extract
        _print_report(rep, report)
        if rep.problems.empty:
            err.print("0 error(s), 0 warning(s)", markup=False)
        counts = ", ".join(f"{k} {len(v):,}" for k, v in extract.tables.items() if len(v))
        err.print(f"would import: {counts or 'nothing'}", markup=False)
        pre = result.preview
        if pre is not None:
            err.print(f"against the registry: {sum(pre.created.values()):,} new, "
                      f"{sum(pre.unchanged.values()):,} unchanged, "
                      f"{len({(c.entity, c.key) for c in pre.changes}):,} changed (applied only with --update), "
                      f"{len({(c.entity, c.key) for c in pre.foreign}):,} of another dataset (refused)",
                      markup=False)
            _print_changes(pre.changes, "would change")
            _print_changes(pre.foreign, "refused")
            _write_changes([*pre.foreign, *pre.changes], changes)
        if not rep.ok or (pre is not None and pre.foreign):
            raise FailureError

    @app.command("import")
    def import_cmd(
        files: Annotated[list[Path], typer.Argument(help="Source files.")],
        mapping: Annotated[str, typer.Option("--mapping", help="Mapping name or TOML file.")],
        report: Annotated[Path | None, typer.Option("--report", help="Write the report as CSV.")] = None,
        key_file: Annotated[Path | None, typer.Option("--key-file", help="Site key file.")] = None,
        extract_date: Annotated[str | None, typer.Option("--extract-date", help="YYYY-MM-DD.")] = None,
        dataset: Annotated[str | None, typer.Option("--dataset", help="Dataset name (namespaces source ids).")]
            = None,
        update: Annotated[bool, typer.Option("--update", help="Change existing rows of this dataset that "
                                                              "differ (each change is listed).")] = False,
        changes: ChangesOption = None,
        db: DbOption = None,
    ) -> None:
        """Import source files through a mapping: validated, all or nothing, audited.

        New rows are created and identical rows left unchanged; existing rows that differ
        are changed only with --update; rows of another dataset never."""
        from spinereg.registry import ImportConflictError, import_files

        day = _extract_date(extract_date)
        alias = _open(db)
        try:
            with _progress() as prog:
                step = _entity_steps(prog, "importing")

                if mapping == "fhir":  # FHIR Bundles / NDJSON: read by spinereg.fhir, then the same pipeline
                    from spinereg.cli._fhir import import_fhir_files as import_files
                result = import_files(alias, mapping, files, key_file=key_file, extract_date=day,
                                      dataset={"name": dataset} if dataset else None, progress=step, update=update)
        except ImportConflictError as exc:
            _write_changes(exc.changes, changes)
            raise  # its message lists the changes (main prints it)
        _print_report(result.report, report)
        if result.summary is None:
            err.print("import refused: fix the errors above; nothing was written.", markup=False)
            raise FailureError
        summary = result.summary
        out.print(f"imported: {summary.total_created:,} created, {summary.total_updated:,} updated, "
                  f"{sum(summary.unchanged.values()):,} unchanged (batch {summary.batch_id})", markup=False)
        if summary.changes:
            _print_changes(summary.changes, "changed")
            _write_changes(summary.changes, changes)

    @app.command("export")
    def export_cmd(
        directory: Annotated[Path, typer.Argument(help="Output directory.")],
        fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
        country_3l: Annotated[str, typer.Option("--country-3l", help="3L TTO value set.")] = "Denmark",
        country_5l: Annotated[str, typer.Option("--country-5l", help="5L VT value set.")] = "Denmark",
        db: DbOption = None,
    ) -> None:
        """Write the tidy extract: one file per entity plus derived scores."""
        from spinereg.data import derive_scores, write_extract
        from spinereg.registry import load_extract

        if fmt not in ("csv", "parquet"):
            raise SpineregError(f"--format must be csv or parquet, not {fmt!r}")
        alias = _open_existing(db)
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
        from spinereg.data import synthesize, write_extract

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
        from spinereg.registry import import_extract, registry_counts, registry_info

        alias = _open(db)
        if any(n for k, n in registry_counts(alias).items() if k != "audit"):
            names = ", ".join(repr(n) for n in registry_info(alias).datasets["name"])
            raise IntegrityConflictError(f"the registry already holds data (dataset(s) {names}); synth writes only "
                                         "into an empty registry: give another --db")
        with _progress() as prog:
            step = _entity_steps(prog, "writing")

            name = f"synthetic registry (seed {seed}, {patients} patients)"
            summary = import_extract(alias, extract, mapping="synth", files=[], kind="synth",
                                     dataset={"name": name, "synthetic": True, "source": "spinereg synth",
                                              "extract_date": extract.meta.get("extract_date")},
                                     progress=step)
        out.print(f"synthetic registry written: {summary.total_created:,} rows "
                  f"({patients:,} patients, seed {seed})", markup=False)

    @app.command("audit")
    def audit_cmd(
        entity: Annotated[str | None, typer.Argument(help="Entity of one record (patients, operations, ...).")]
            = None,
        key: Annotated[str | None, typer.Argument(help="The record's key (composite keys joined by /).")] = None,
        user: Annotated[str | None, typer.Option("--user", help="Only changes by this actor.")] = None,
        since: Annotated[str | None, typer.Option("--since", help="From this date (YYYY-MM-DD, UTC).")] = None,
        until: Annotated[str | None, typer.Option("--until", help="To this date, inclusive.")] = None,
        batch: Annotated[int | None, typer.Option("--batch", help="Only this write batch.")] = None,
        csv: Annotated[Path | None, typer.Option("--csv", help="Write the entries as CSV to this file "
                                                               "(- for standard output).")] = None,
        limit: Annotated[int, typer.Option("--limit", help="At most this many entries on screen.")] = 200,
        db: DbOption = None,
    ) -> None:
        """Show the audit trail: one record's history (ENTITY KEY), or entries by user, date and batch."""
        import sys

        from rich.table import Table

        from spinereg.data import entities
        from spinereg.registry import audit_entries, parse_extract_date

        if entity is not None and entity not in {e.name for e in entities()}:
            raise SpineregError(f"unknown entity {entity!r}; one of {', '.join(e.name for e in entities())}")
        days = {}
        for opt, v in (("--since", since), ("--until", until)):
            try:
                days[opt] = parse_extract_date(v)
            except SpineregError:
                raise SpineregError(f"{opt} {v!r}: write the date as YYYY-MM-DD") from None
        import datetime as dt

        frame = audit_entries(_open_existing(db), entity=entity, key=key, actor=user,
                              since=dt.date.fromisoformat(days["--since"]) if days["--since"] else None,
                              until=dt.date.fromisoformat(days["--until"]) if days["--until"] else None,
                              batch=batch)
        if csv is not None:
            if str(csv) == "-":
                sys.stdout.write(frame.to_csv(index=False))
            else:
                frame.to_csv(csv, index=False)
                err.print(f"{len(frame):,} audit entries written to {csv}", markup=False)
            return
        table = Table(title=f"audit trail ({len(frame):,} entries)")
        for col in frame.columns:
            table.add_column(str(col), overflow="fold")
        for rec in frame.head(limit).itertuples(index=False):
            table.add_row(*("" if v is None or v != v else str(v) for v in rec))
        out.print(table)
        if len(frame) > limit:
            err.print(f"{len(frame) - limit:,} more entries: --limit N, or --csv FILE for all", markup=False)

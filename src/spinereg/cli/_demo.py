"""``spinereg demo``: the seed study, end to end, on the embedded synthetic registry."""

from __future__ import annotations

import json
import re
import time
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from spinereg._errors import SpineregError

__all__ = ["PATIENTS", "SEED", "check_reuse", "example_spec", "register"]

EXAMPLE = "pvp-cancer-vcf"
#: The demo registry's default size and seed.
PATIENTS = 20_000
SEED = 2018


def example_spec(name: str = EXAMPLE) -> Path:
    """The shipped example study spec: the repository's ``examples/`` or the wheel's copy."""
    repo = Path(__file__).resolve().parents[3] / "examples" / name / "study.toml"
    if repo.exists():
        return repo
    packaged = resources.files("spinereg").joinpath(f"examples/{name}/study.toml")
    if packaged.is_file():
        return Path(str(packaged))
    raise SpineregError(f"the example study {name!r} is not installed")


def register(app: typer.Typer) -> None:
    """Add ``spinereg demo`` to ``app``."""
    from spinereg.cli._app import err, out
    from spinereg.report import summary_rows

    @app.command("demo")
    def demo(
        directory: Annotated[Path, typer.Option("--dir", help="Output directory.")] = Path("spinereg-demo"),
        patients: Annotated[int | None, typer.Option(
            "--patients", help=f"Synthetic registry size [default: {PATIENTS:,}]; applies when the registry is "
                               "built (first run, or with --fresh).")] = None,
        seed: Annotated[int | None, typer.Option(
            "--seed", help=f"Random seed of the synthetic registry [default: {SEED}]; applies when the registry "
                           "is built (first run, or with --fresh).")] = None,
        fresh: Annotated[bool, typer.Option("--fresh", help="Rebuild the synthetic registry.")] = False,
    ) -> None:
        """Run the seed study (PVP for cancer-related fractures) on a synthetic registry; write the report.

        The registry in DIR/registry.sqlite3 is built on the first run and reused
        afterwards.  --patients/--seed that differ from the existing registry's
        are refused (never silently ignored): add --fresh to rebuild it.
        """
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.table import Table

        from spinereg.cli._study import run_and_write

        db_file = directory / "registry.sqlite3"
        if not fresh:
            check_reuse(db_file, patients, seed)
        n_patients = PATIENTS if patients is None else patients
        n_seed = SEED if seed is None else seed
        if n_patients < 1:
            raise SpineregError("--patients must be at least 1")
        directory.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{db_file}"
        started = time.perf_counter()
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err,
                      transient=True) as prog:
            if fresh and db_file.exists():
                for p in directory.glob("registry.sqlite3*"):
                    p.unlink()
            if _registry_has_data(db_file):
                err.print(f"reusing the synthetic registry {db_file}", markup=False)
                from spinereg.registry import migrate, open_registry

                migrate(open_registry(url))  # one made by an earlier version gets this version's schema
            else:
                task = prog.add_task(f"creating a synthetic registry of {n_patients:,} patients (seed {n_seed})")
                _create_registry(url, n_patients, n_seed)
                prog.update(task, completed=1, total=1, description=f"synthetic registry: {db_file}")
            task = prog.add_task("running the study and writing the report (html, pdf, docx)")
            run = run_and_write(example_spec(), directory, db=url, data=None, formats=("html", "pdf", "docx"))
            prog.update(task, completed=1, total=1)
        timings = run.timings
        for message in run.warnings:
            err.print(f"warning: {message}", markup=False)
        results = json.loads((directory / "results.json").read_text(encoding="utf-8"))
        table = Table(title=results["study"]["title"], show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        for label, value in summary_rows(results):
            table.add_row(label, value)
        out.print(table)
        if results["data"]["synthetic"]:
            out.print("SYNTHETIC DATA: for demonstration only, not patient data.", style="bold yellow")
        out.print(f"done in {time.perf_counter() - started:.1f} s "
                  f"(study {timings.get('analyse', 0):.1f} s, report {timings.get('report', 0):.1f} s)")
        out.print(f"report: {(directory / 'report.html').resolve()}", markup=False, soft_wrap=True)


def _built_with(db_file: Path) -> tuple[int, int] | None:
    """(patients, seed) of the demo registry in ``db_file``, from its dataset name; None if unknown."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True) as con:
            names = [r[0] for r in con.execute("SELECT name FROM spinereg_dataset")]
    except sqlite3.Error:
        return None
    for name in names:
        m = re.fullmatch(r"synthetic registry \(seed (\d+), (\d+) patients\)", str(name))
        if m:
            return int(m.group(2)), int(m.group(1))
    return None


def check_reuse(db_file: Path, patients: int | None, seed: int | None) -> None:
    """Refuse ``--patients``/``--seed`` that an existing registry in ``db_file`` would ignore.

    Without ``--fresh`` the demo reuses its registry.  Options that agree with
    the registry's recorded size and seed are fine; any other value (or a
    registry whose size and seed are not recorded) is an error that says to
    add ``--fresh``.
    """
    if (patients is None and seed is None) or not _registry_has_data(db_file):
        return
    built = _built_with(db_file)
    asked = ", ".join(f"{opt} {v}" for opt, v in (("--patients", patients), ("--seed", seed)) if v is not None)
    if built is not None:
        b_patients, b_seed = built
        if (patients is None or patients == b_patients) and (seed is None or seed == b_seed):
            return
        what = f"{b_patients} patients, seed {b_seed}"
    else:
        what = "size and seed not recorded"
    raise SpineregError(f"{db_file} already holds a synthetic registry ({what}); {asked} would be ignored. "
                        "Add --fresh to rebuild it with these settings, or leave them out to reuse it.")


def _registry_has_data(db_file: Path) -> bool:
    if not db_file.exists():
        return False
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True) as con:
            return bool(con.execute("SELECT EXISTS (SELECT 1 FROM spinereg_patients)").fetchone()[0])
    except sqlite3.Error:
        return False


def _create_registry(url: str, patients: int, seed: int) -> None:
    from spinereg.data import synthesize
    from spinereg.registry import import_extract, migrate, open_registry

    extract = synthesize(patients, seed)
    alias = open_registry(url)
    migrate(alias)
    import_extract(alias, extract, mapping="synth", files=[],
                   dataset={"name": f"synthetic registry (seed {seed}, {patients} patients)", "synthetic": True,
                            "source": "spinereg demo", "extract_date": extract.meta.get("extract_date")})

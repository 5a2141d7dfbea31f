"""Study speed: the example study on a 1,000,000-patient synthetic registry.

Prints the wall time and peak memory (max RSS) of

    spinereg study run examples/pvp-cancer-vcf/study.toml --data EXTRACT --out OUT --format none

run as its own process (so the figure includes start-up and imports, as a user
sees it), with the registry as a Parquet extract directory; then the split of
the time (load, analyse) reported by the command's own timings.  Targets:
<= 20 s and <= 4 GB.  The synthetic extract is generated first (not timed) and
cached under the temp directory for later runs.

With ``--db URL`` the study reads an existing registry database instead (SQLite
or PostgreSQL: ``spinereg study run ... --db URL``), as a national registry would;
``--patients`` is then only the label (the registry holds what it holds).

With ``--pg DIR`` the benchmark runs its own PostgreSQL server (Debian's binaries, a
Unix socket only, its data kept in ``DIR`` for later runs), loads the synthetic registry
into it with ``spinereg synth --db`` when the database is empty (timed, reported, not part
of the study's figure), and reads it from there: issue 15's national registry.
The study reads every patient and operation, and the other tables only for the
patients its cohort can reach (``load_extract(only=...)``).  Measured on the development
machine (2 vCPUs, load average ~1.5): 16.0 s wall, 1.94 GB peak RSS (load 9.3 s, analyse
3.6 s) at 1,000,000 patients, 1,069,556 operations, cohort 1,024; before the partial read
27.4 s and 3.93 GB.

Run: .venv/bin/python benchmarks/bench_study.py [--patients N] [--report] [--db URL | --pg DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "pvp-cancer-vcf" / "study.toml"


def _extract(n: int) -> Path:
    d = Path(tempfile.gettempdir()) / f"spinereg-bench-extract-{n}"
    if not (d / "dataset.json").exists():
        print(f"generating a {n:,}-patient synthetic registry in {d} (not timed) ...", flush=True)
        subprocess.run([sys.executable, "-m", "spinereg", "synth", "--patients", str(n), "--seed", "2018",
                        "--out", str(d), "--format", "parquet"], check=True)
    return d


def _timed_child(extract: str, out: Path, fmt: str) -> None:
    from spinereg.cli._study import run_and_write

    formats = () if fmt == "none" else tuple(fmt.split(","))
    db, data = (extract, None) if "://" in extract else (None, Path(extract))
    print(json.dumps(run_and_write(SPEC, out, db=db, data=data, formats=formats).timings))


def main() -> None:
    ap = argparse.ArgumentParser(description="Benchmark the example study on a synthetic registry.")
    ap.add_argument("--patients", type=int, default=1_000_000)
    ap.add_argument("--report", action="store_true", help="also render the report (html,pdf,docx)")
    ap.add_argument("--db", help="read this registry database (sqlite:///... or postgresql://...)")
    ap.add_argument("--pg", type=Path, help="run a PostgreSQL server with its data in this folder, load the "
                                            "synthetic registry into it when empty, and read it from there")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _timed_child(args.child[0], Path(args.child[1]), args.child[2])
        return
    if args.pg:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from _pg import postgres

        args.pg.mkdir(parents=True, exist_ok=True)
        with postgres(args.pg.resolve(), f"spinereg_{args.patients}") as url:
            stamp = args.pg / f"loaded-{args.patients}"
            if not stamp.exists():
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "spinereg", "synth", "--patients", str(args.patients),
                                "--seed", "2018", "--db", url], check=True)
                stamp.touch()
                print(f"loaded {args.patients:,} synthetic patients into PostgreSQL in "
                      f"{time.perf_counter() - t0:.0f} s (not part of the study's figure)", flush=True)
            # measured in a process of its own: its children's peak memory is the study's alone
            subprocess.run([sys.executable, __file__, "--patients", str(args.patients), "--db", url,
                            *(["--report"] if args.report else [])], check=True)
        return
    _measure(args)


def _measure(args: argparse.Namespace) -> None:
    source = ["--db", args.db] if args.db else ["--data", str(_extract(args.patients))]
    extract = args.db or str(_extract(args.patients))
    fmt = "html,pdf,docx" if args.report else "none"
    if args.db:  # a registry loaded by an earlier version: bring its schema up to date first (not timed)
        subprocess.run([sys.executable, "-m", "spinereg", "db", "migrate", "--db", args.db], check=True,
                       stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "spinereg", "study", "run", str(SPEC), *source,
                        "--out", str(out), "--format", fmt], check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2
        doc = json.loads((out / "results.json").read_text())
        split = subprocess.run([sys.executable, __file__, "--child", extract, str(Path(tmp) / "out2"), fmt],
                               check=True, capture_output=True, text=True)
    timings = json.loads(split.stdout.strip().splitlines()[-1])
    cohort = doc["tables"]["flow"][-1]["n_patients"]
    where = f"registry database {args.db.split('?')[0].rsplit('@', 1)[-1]}" if args.db else "a Parquet extract"
    print(f"example study on {args.patients:,} synthetic patients ({doc['data']['n_operations']:,} operations; "
          f"cohort {cohort:,} patients), from {where}")
    print(f"  wall time  {wall:6.1f} s   (target <= 20 s: {'met' if wall <= 20 else 'MISSED'})")
    print(f"  peak RSS   {peak_gb:6.2f} GB  (target <= 4 GB: {'met' if peak_gb <= 4 else 'MISSED'})")
    print("  in-process split: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))


if __name__ == "__main__":
    main()

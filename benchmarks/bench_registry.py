"""Registry speed: synthetic registry generation and validated import into SQLite.

Prints
* ``synth`` of 1,000,000 patients (generation; then writing it as a Parquet extract)
  -- target <= 60 s;
* import throughput of PROM rows into SQLite, through the ``tidy`` mapping with full
  validation and audit, from CSV files -- target >= 50,000 PROM rows/s; end to end
  (reading, mapping and validation in a helper thread, entity by entity, beside the
  store transaction: each entity is written as soon as it is validated while the
  next files are read, and the commit waits for the whole validation), with the time
  of each part and, within the store, of inserting the rows, writing their audit
  entries (and import snapshots), checking their references and committing; PROM
  rows/s and rows/s of all entities;
* the same for the questionnaire file alone, imported into a registry that
  already holds its patients and operations (how PROM exports usually arrive);
* peak memory (max RSS) of each part, each run in its own process.

The import runs ``--repeat`` times (default 3), each into a new database; the
fastest run is reported, with every run's time (the machine may be shared: on
the 2 shared vCPUs of the development machine the same import took from 4.3 to
8.9 s within one hour).

Run: .venv/bin/python benchmarks/bench_registry.py [--patients N] [--prom-patients M] [--repeat R]
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


def _child_synth(n: int, out: str) -> dict[str, float]:
    from spinereg.data import write_extract
    from spinereg.data._synth import synthesize

    t0 = time.perf_counter()
    x = synthesize(n, 2018)
    t1 = time.perf_counter()
    write_extract(x, out, "parquet")
    t2 = time.perf_counter()
    return {"generate_s": t1 - t0, "write_s": t2 - t1, "rows": float(sum(len(v) for v in x.tables.values())),
            "proms": float(len(x["proms"]))}


def _child_import(extract_dir: str, db: str) -> dict[str, float]:
    from spinereg.data import read_extract, write_extract
    from spinereg.registry import import_files, migrate, open_registry

    x = read_extract(extract_dir)
    csv_dir = Path(extract_dir).parent / "tidy-csv"
    if not csv_dir.exists():
        write_extract(x, csv_dir, "csv")
    files = sorted(str(p) for p in csv_dir.glob("*.csv"))
    alias = open_registry(f"sqlite:///{db}")
    migrate(alias)
    timings: dict[str, float] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    res = import_files(alias, "tidy", files, key=bytes(32), extract_date=x.meta.get("extract_date"), timings=timings)
    t1, c1 = time.perf_counter(), time.process_time()
    if not res.report.ok:
        raise SystemExit(res.report.to_text(limit=20))
    if res.summary is None or res.summary.total_created != sum(len(v) for v in x.tables.values()):
        raise SystemExit("the import did not create every row")
    return {"import_s": t1 - t0, "cpu_s": c1 - c0, "proms": float(len(x["proms"])),
            "rows": float(sum(len(v) for v in x.tables.values())), **{f"{k}_s": v for k, v in timings.items()}}


def _child_import_proms(extract_dir: str, db: str) -> dict[str, float]:
    """The questionnaire file alone, into a registry that already holds the patients and operations."""
    from spinereg.data import read_extract, write_extract
    from spinereg.registry import import_files, migrate, open_registry

    x = read_extract(extract_dir)
    csv_dir = Path(extract_dir).parent / "tidy-csv"
    if not csv_dir.exists():
        write_extract(x, csv_dir, "csv")
    alias = open_registry(f"sqlite:///{db}")
    migrate(alias)
    first = [str(csv_dir / f"{n}.csv") for n in ("patients", "operations")]
    res = import_files(alias, "tidy", first, key=bytes(32), extract_date=x.meta.get("extract_date"))
    if not res.report.ok:
        raise SystemExit(res.report.to_text(limit=20))
    timings: dict[str, float] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    res = import_files(alias, "tidy", [str(csv_dir / "proms.csv")], key=bytes(32),
                       extract_date=x.meta.get("extract_date"), timings=timings)
    t1, c1 = time.perf_counter(), time.process_time()
    if not res.report.ok:
        raise SystemExit(res.report.to_text(limit=20))
    if res.summary is None or res.summary.total_created != len(x["proms"]):
        raise SystemExit("the import did not create every questionnaire")
    return {"import_s": t1 - t0, "cpu_s": c1 - c0, "proms": float(len(x["proms"])),
            **{f"{k}_s": v for k, v in timings.items()}}


def _run_child(args: list[str]) -> dict[str, float]:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=1_000_000)
    ap.add_argument("--prom-patients", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3, help="import runs (each into a new database); the fastest counts")
    ap.add_argument("--child", nargs="*")
    a = ap.parse_args()
    if a.child:
        kind, *rest = a.child
        child = {"synth": lambda: _child_synth(int(rest[0]), rest[1]),
                 "import": lambda: _child_import(rest[0], rest[1]),
                 "import-proms": lambda: _child_import_proms(rest[0], rest[1])}[kind]
        res = child()
        res["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(res))
        return
    with tempfile.TemporaryDirectory() as tmp:
        s = _run_child(["--child", "synth", str(a.patients), f"{tmp}/big"])
        print(f"synth {a.patients:,} patients: generate {s['generate_s']:.1f} s, write Parquet "
              f"{s['write_s']:.1f} s ({s['rows']:,.0f} rows, {s['proms']:,.0f} PROM rows); "
              f"peak memory {s['max_rss_mb']:,.0f} MB   [target <= 60 s]")
        _run_child(["--child", "synth", str(a.prom_patients), f"{tmp}/small"])
        runs = [_run_child(["--child", "import", f"{tmp}/small", f"{tmp}/registry-{k}.sqlite3"])
                for k in range(max(1, a.repeat))]
        i = min(runs, key=lambda r: r["import_s"])
        rate = i["proms"] / i["import_s"]
        print(f"import {i['rows']:,.0f} rows ({i['proms']:,.0f} PROM rows) from tidy CSV into SQLite, "
              f"validated and audited: {i['import_s']:.2f} s = {rate:,.0f} PROM rows/s "
              f"({i['rows'] / i['import_s']:,.0f} rows/s); peak memory {i['max_rss_mb']:,.0f} MB   "
              "[target >= 50,000 PROM rows/s]")
        print(f"  read+map+validate {i['validate_s']:.2f} s (read+map {i['map_s']:.2f} s of it) beside store "
              f"{i['store_s']:.2f} s (insert rows {i['insert_s']:.2f} s, audit entries {i['audit_s']:.2f} s, "
              f"check references {i['references_s']:.2f} s, commit {i['commit_s']:.2f} s); "
              f"CPU time {i['cpu_s']:.2f} s"
              + (f"; {len(runs)} runs: " + ", ".join(f"{r['import_s']:.2f}" for r in runs) + " s"
                 if len(runs) > 1 else ""))
        pr = [_run_child(["--child", "import-proms", f"{tmp}/small", f"{tmp}/proms-{k}.sqlite3"])
              for k in range(max(1, a.repeat))]
        q = min(pr, key=lambda r: r["import_s"])
        print(f"import the questionnaire file alone ({q['proms']:,.0f} PROM rows) into a registry holding its "
              f"patients and operations, validated (incl. references) and audited: {q['import_s']:.2f} s = "
              f"{q['proms'] / q['import_s']:,.0f} PROM rows/s; read+map+validate {q['validate_s']:.2f} s "
              f"(read+map {q['map_s']:.2f} s of it) beside store {q['store_s']:.2f} s"
              + (f"; {len(pr)} runs: " + ", ".join(f"{r['import_s']:.2f}" for r in pr) + " s" if len(pr) > 1 else "")
              + "   [target >= 50,000 PROM rows/s]")


if __name__ == "__main__":
    main()

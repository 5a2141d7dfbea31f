"""Demo speed: ``spinereg demo`` cold, from an empty directory, and the report alone.

Prints
* the cold end-to-end wall time of ``spinereg demo`` in a new, empty working
  directory (its own process: start-up, synthetic registry of 20,000 patients
  into SQLite, study, report in HTML, PDF and DOCX) -- target <= 20 s on 2 cores;
* the time to render the report alone from that results.json (html, pdf, docx,
  figures; in a fresh process, imports excluded) -- target <= 5 s;
* the peak memory of the demo process.

Run: .venv/bin/python benchmarks/bench_demo.py
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_RENDER = """
import sys, time
from spinereg.report import render_report
t0 = time.perf_counter()
render_report(sys.argv[1], sys.argv[2])
print(time.perf_counter() - t0)
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        env = {**os.environ, "SPINEREG_HOME": str(cwd / "home")}
        env.pop("SPINEREG_DATABASE_URL", None)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "spinereg", "demo"], cwd=cwd, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cold = time.perf_counter() - t0
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2
        demo = cwd / "spinereg-demo"
        made = sorted(p.name for p in demo.iterdir())
        render = subprocess.run([sys.executable, "-c", _RENDER, str(demo / "results.json"), str(cwd / "again")],
                                check=True, capture_output=True, text=True, env=env)
        report_s = float(render.stdout.strip().splitlines()[-1])
    print(f"spinereg demo, cold, empty directory: {cold:5.1f} s  (target <= 20 s: {'met' if cold <= 20 else 'MISSED'})")
    print(f"report alone (html, pdf, docx, figures): {report_s:5.2f} s  "
          f"(target <= 5 s: {'met' if report_s <= 5 else 'MISSED'})")
    print(f"peak RSS of the demo: {peak_gb:.2f} GB; wrote {', '.join(made)}")


if __name__ == "__main__":
    main()

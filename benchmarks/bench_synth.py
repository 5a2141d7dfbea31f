"""Synthetic registry speed and memory: 1,000,000 patients.

Prints the wall time and peak memory of ``synthesize(1_000_000, seed)`` and of writing
the result with ``write_extract(..., fmt="parquet")`` to a temporary directory.  Each
measurement runs in a fresh Python process, so the peaks do not mix: peak memory is the
process's peak resident set size (``resource.getrusage``; for the write, the peak since
just before the write where Linux lets a process reset it, else the process peak, which
then includes the generation).

Targets: generation well under 40 s on 2 cores and at most 4 GB peak.

Run: .venv/bin/python benchmarks/bench_synth.py [--patients N] [--seed S]
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

N = 1_000_000
SEED = 2018


def _rss_mb(field: str) -> float | None:
    """A memory field of /proc/self/status in MB (Linux), else None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _maxrss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / 1024 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _reset_peak() -> bool:
    """Reset the peak RSS counter (Linux >= 4.0); True when it worked."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def child(step: str, n: int, seed: int) -> dict[str, object]:
    from spinereg.data import write_extract
    from spinereg.data._synth import synthesize

    base = _rss_mb("VmRSS")
    t0 = time.perf_counter()
    x = synthesize(n, seed)
    gen = time.perf_counter() - t0
    out: dict[str, object] = {"base_mb": base, "rows": {k: len(v) for k, v in x.tables.items()}}
    if step == "generate":
        out.update(seconds=gen, peak_mb=_maxrss_mb())
        return out
    before = _rss_mb("VmRSS")
    reset = _reset_peak()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_extract(x, tmp, fmt="parquet")
        secs = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
    peak = _rss_mb("VmHWM") if reset else None
    out.update(seconds=secs, peak_mb=peak if peak is not None else _maxrss_mb(), peak_since_write=peak is not None,
               rss_before_mb=before, bytes=size)
    return out


def run(step: str, n: int, seed: int) -> dict[str, object]:
    proc = subprocess.run([sys.executable, __file__, "--child", step, "--patients", str(n), "--seed", str(seed)],
                          check=True, capture_output=True, text=True)
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=N)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--child", choices=["generate", "write"])
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.patients, args.seed)))
        return
    gen = run("generate", args.patients, args.seed)
    rows = gen["rows"]
    assert isinstance(rows, dict)
    print(f"synthesize({args.patients:,}, {args.seed}): {sum(rows.values()):,} rows "
          f"({', '.join(f'{k} {v:,}' for k, v in rows.items())})")
    print(f"  generate: {gen['seconds']:6.1f} s wall, peak RSS {gen['peak_mb']:7.0f} MB "
          f"(interpreter + imports {gen['base_mb']:.0f} MB)")
    wr = run("write", args.patients, args.seed)
    what = "peak RSS during the write" if wr["peak_since_write"] else "process peak RSS (incl. generation)"
    print(f"  write_extract(fmt='parquet'): {wr['seconds']:6.1f} s wall, {what} {wr['peak_mb']:7.0f} MB "
          f"(RSS before the write {wr['rss_before_mb']:.0f} MB), {int(str(wr['bytes'])) / 1e6:.0f} MB on disk")


if __name__ == "__main__":
    main()

"""Scoring speed: EQ-5D-5L (Danish value set) and ODI on 1,000,000 rows.

Prints rows/s for spinereg.eq5d from five integer arrays and from a
DataFrame of five columns, next to a plain numpy lookup-table gather (the
floor: index arithmetic plus one gather, no validation) measured in the same
run; and the time to score 1,000,000 ODI forms.

Targets (issue 2): >= 20 M rows/s from arrays and within 3x of the floor;
ODI <= 100 ms for 1,000,000 forms.

Run: .venv/bin/python benchmarks/bench_scoring.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd

import spinereg
from spinereg.instruments import find_valueset

N = 1_000_000
REPEATS = 7


def best_of(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    fn()  # warm up (table build, imports)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    rng = np.random.default_rng(20181)
    dims = ["MO", "SC", "UA", "PD", "AD"]
    arrays = {d: rng.integers(1, 6, N, dtype=np.int64) for d in dims}
    frame = pd.DataFrame(arrays)
    table = find_valueset("5L", "VT", "Denmark").table()

    def floor() -> np.ndarray:
        a = arrays
        code = ((a["MO"] - 1) * 625 + (a["SC"] - 1) * 125 + (a["UA"] - 1) * 25
                + (a["PD"] - 1) * 5 + a["AD"] - 1)
        return table[code]

    t_floor = best_of(floor)
    t_arrays = best_of(lambda: spinereg.eq5d(arrays, "5L", "VT", "Denmark"))
    t_frame = best_of(lambda: spinereg.eq5d(frame, "5L", "VT", "Denmark"))
    assert np.array_equal(spinereg.eq5d(arrays, "5L", "VT", "Denmark"), floor())

    odi_items = pd.DataFrame({f"odi_{k}": rng.integers(0, 6, N).astype(np.float64) for k in range(1, 11)})
    odi_items.iloc[::7, 3] = np.nan
    t_odi = best_of(lambda: spinereg.odi(odi_items), repeats=3)

    print(f"EQ-5D-5L Denmark, {N:,} random states (best of {REPEATS})")
    print(f"  numpy lookup-table gather (floor): {t_floor * 1e3:7.1f} ms  {N / t_floor / 1e6:6.1f} M rows/s")
    print(f"  spinereg.eq5d, five int arrays:    {t_arrays * 1e3:7.1f} ms  {N / t_arrays / 1e6:6.1f} M rows/s"
          f"  ({t_arrays / t_floor:.2f}x floor)")
    print(f"  spinereg.eq5d, DataFrame:          {t_frame * 1e3:7.1f} ms  {N / t_frame / 1e6:6.1f} M rows/s"
          f"  ({t_frame / t_floor:.2f}x floor)")
    print(f"ODI 2.1a, {N:,} forms (best of 3):  {t_odi * 1e3:7.1f} ms  {N / t_odi / 1e6:6.1f} M rows/s")
    print("targets: >= 20 M rows/s from arrays, <= 3x floor; ODI <= 100 ms")


if __name__ == "__main__":
    main()

"""Coverage of the paired-change 95% CI over 2,000 synthetic cohorts with a known true mean change.

Each cohort imitates the seed study: 30 patients with an EQ-5D-like baseline
(mean 0.40, SD 0.30) and an individual change with true mean ``TRUE_CHANGE``
= 0.30 and SD 0.35, so that the population mean change is known exactly.  For
each cohort :func:`spinereg.stats.paired_change` gives the 95% t interval for
the mean change; the script prints the share of intervals that contain the
true value and its Monte-Carlo standard error.  With 2,000 cohorts the share
should lie between 94% and 96% (about two standard errors around 95%).

A second block repeats this with skewed changes (a shifted gamma
distribution with the same mean and SD), where the t interval is only
approximately valid, to show how far it drifts at n = 30.

Run: ``python validation/coverage_paired_ci.py [--cohorts 2000] [--seed 2018]``.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from spinereg.stats import paired_change

TRUE_CHANGE = 0.30
SD_CHANGE = 0.35
N_PATIENTS = 30


def coverage(cohorts: int, seed: int, skewed: bool = False) -> tuple[float, float]:
    """Share of 95% CIs covering the true mean change, and its Monte-Carlo SE."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(cohorts):
        before = rng.normal(0.40, 0.30, N_PATIENTS)
        if skewed:  # gamma(k=2) has skewness sqrt(2); rescaled to mean TRUE_CHANGE, SD SD_CHANGE
            g = rng.gamma(2.0, 1.0, N_PATIENTS)
            change = TRUE_CHANGE + SD_CHANGE * (g - 2.0) / math.sqrt(2.0)
        else:
            change = rng.normal(TRUE_CHANGE, SD_CHANGE, N_PATIENTS)
        r = paired_change(before, before + change, method="t", conf_level=0.95).iloc[0]
        hits += int(r["ci_low"] <= TRUE_CHANGE <= r["ci_high"])
    share = hits / cohorts
    return share, math.sqrt(share * (1 - share) / cohorts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cohorts", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=2018)
    args = ap.parse_args()
    share, se = coverage(args.cohorts, args.seed)
    print(f"paired t 95% CI, normal changes, n = {N_PATIENTS}, {args.cohorts:,} cohorts, "
          f"true mean change {TRUE_CHANGE}: coverage {100 * share:.1f}% (MC SE {100 * se:.1f}%)")
    ok = 0.94 <= share <= 0.96
    print(f"  within 94-96%: {'yes' if ok else 'NO'}")
    share_s, se_s = coverage(args.cohorts, args.seed + 1, skewed=True)
    print(f"paired t 95% CI, skewed (gamma) changes: coverage {100 * share_s:.1f}% (MC SE {100 * se_s:.1f}%)")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()

"""The coverage simulation of validation/coverage_paired_ci.py: 2,000 synthetic cohorts with a
known true mean change; the paired-change 95% CI must cover it in 94-96% of them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent.parent / "validation" / "coverage_paired_ci.py"


def test_paired_ci_coverage_within_94_to_96_percent() -> None:
    spec = importlib.util.spec_from_file_location("coverage_paired_ci", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    share, se = module.coverage(2000, 2018)
    assert 0.94 <= share <= 0.96, (share, se)

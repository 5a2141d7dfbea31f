from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def chromium() -> str:
    """Debian's Chromium for the browser tests (Playwright drives it; no browser download); under
    CI=true its absence fails the test, elsewhere it skips, saying why."""
    import shutil

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        msg = "Debian chromium is not installed (apt-get install chromium; .ci/run installs it)"
        if CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def shared_path(*parts: str) -> Path:
    """A file in ../shared, or skip (fail under CI=true) when it is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        msg = f"{p} is absent: the shared reference data sit beside the checkout (../shared)"
        if CI:
            pytest.fail(msg + "; CI must have it")
        pytest.skip(msg)
    return p

#!/usr/bin/env bash
# Set up and run every test: lint (ruff), types (mypy --strict), pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff"; .venv/bin/ruff check src tests benchmarks tools validation
echo "== mypy"; .venv/bin/mypy
# two test processes (pytest-xdist; a test file stays in one process, so its module-scoped servers are
# started once); SPINEREG_TEST_WORKERS=0 runs everything in this process
echo "== pytest"; .venv/bin/pytest -n "${SPINEREG_TEST_WORKERS:-2}" --dist loadfile "$@"

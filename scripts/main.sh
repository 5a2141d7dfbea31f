#!/usr/bin/env bash
# Set up and run the main job: `spinereg demo`, the seed study (percutaneous
# vertebroplasty for cancer-related vertebral compression fractures) on an
# embedded synthetic registry, written to ./spinereg-demo/ (report.html,
# report.pdf, report.docx, results.json, figures/). Extra arguments go to
# `spinereg demo` (e.g. --fresh, --patients N, --dir DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/spinereg demo "$@"

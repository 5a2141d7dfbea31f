#!/usr/bin/env bash
# Set up and run the main job: score the bundled example files.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=${1:-out}
mkdir -p "$out"
.venv/bin/spinereg score eq5d --version 5L --type VT --country Denmark \
  examples/scoring/eq5d5l_example.csv -o "$out/eq5d5l_scored.csv"
.venv/bin/spinereg score eq5d --version 3L --type TTO --country Denmark \
  examples/scoring/eq5d3l_example.csv -o "$out/eq5d3l_scored.csv"
.venv/bin/spinereg score odi examples/scoring/odi_example.csv -o "$out/odi_scored.csv"
echo "Scored files are in $out/"

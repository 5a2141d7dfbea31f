"""Compare every state of every bundled value set with the tables of MathsinHealth/eq5dsuite-value-sets.

Usage (from the repository root, with spinereg importable)::

    python tests/data/valueset_checks/eq5dsuite/compare.py PATH [--write]

PATH is a copy of https://github.com/MathsInHealth/eq5dsuite-value-sets (folders ``EQ-5D-3L``,
``EQ-5D-5L``, ``EQ-5D-Y-3L``, one ``state,value`` CSV per value set).  For each ``[[set]]`` of
``differences.toml`` (the set's key and its file there) the script computes, over all 243 or 3125
states, the largest absolute difference, the state where it occurs and the number of states that
differ by more than 5e-4, and prints them.  It exits 1 when a measured maximum exceeds the recorded
one, or when a set differing by more than 2.5e-7 has no recorded ``reason``.  ``--write`` records
the measured figures in ``differences.toml`` (reasons are kept).

The figures in ``differences.toml`` and ``docs/valuesets.md`` were produced this way on 2026-12-04;
the tables came from the data of the EuroQol group's R package eq5dsuite 2.0.0 (``.vsets3L``,
``.vsets5L``, ``.vsetsY3L`` in ``R/sysdata.rda``), which are the repository's tables: the files checked
byte for byte (``EQ-5D-5L/UK.csv``, 40,472 characters; ``EQ-5D-5L/PH.csv``, 75,141) were identical.
"""

from __future__ import annotations

import csv
import re
import sys
import tomllib
from pathlib import Path

import numpy as np

from spinereg.instruments import find_valueset
from spinereg.instruments._valuesets import state_grid

HERE = Path(__file__).parent
AGREE = 2.5e-7


def compare(repo: Path) -> tuple[list[dict[str, object]], list[str]]:
    recorded = tomllib.loads((HERE / "differences.toml").read_text(encoding="utf-8"))["set"]
    rows: list[dict[str, object]] = []
    problems: list[str] = []
    for rec in recorded:
        version, type_, country = str(rec["key"]).split("/")
        vs = find_valueset(version, type_, country)
        with open(repo / str(rec["file"]), newline="", encoding="utf-8") as fh:
            ref = {row["state"]: float(row["value"]) for row in csv.DictReader(fh)}
        states = ["".join(map(str, s)) for s in state_grid(vs.levels)]
        diff = vs.table() - np.array([ref[s] for s in states])
        i = int(np.argmax(np.abs(diff)))
        row = {"key": rec["key"], "file": rec["file"], "max_abs_diff": float(abs(diff[i])), "at": states[i],
               "n_over_5e-4": int((np.abs(diff) > 5e-4).sum())}
        rows.append(row)
        if float(abs(diff[i])) > float(rec["max_abs_diff"]) * (1 + 1e-3) + 1e-12:
            problems.append(f"{rec['key']}: max difference {abs(diff[i]):.4g} exceeds the recorded "
                            f"{rec['max_abs_diff']}")
        if float(abs(diff[i])) > AGREE and not rec.get("reason"):
            problems.append(f"{rec['key']}: differs by {abs(diff[i]):.3g} and no reason is recorded")
    return rows, problems


def write(rows: list[dict[str, object]]) -> None:
    path = HERE / "differences.toml"
    text = path.read_text(encoding="utf-8")
    for row in rows:
        block = re.compile(r'(key = "' + re.escape(str(row["key"])) + r'"\nfile = "[^"]*"\n)'
                           r'max_abs_diff = [^\n]*\nat = "[^"]*"\nn_over_5e-4 = \d+\n')
        text = block.sub(lambda m, r=row: m.group(1) + f'max_abs_diff = {r["max_abs_diff"]:.4g}\nat = "{r["at"]}"\n'
                         f'n_over_5e-4 = {r["n_over_5e-4"]}\n', text)
    path.write_text(text, encoding="utf-8")


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__)
        return 2
    rows, problems = compare(Path(argv[0]))
    for row in rows:
        print(f"{row['key']:28s} {row['file']:26s} max |diff| {row['max_abs_diff']:.3g} at {row['at']}, "
              f"{row['n_over_5e-4']} states > 5e-4")
    if "--write" in argv[1:]:
        write(rows)
    for p in problems:
        print("PROBLEM:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Real data: the UK (MVH) 3L index of NHS England PROMs 2018-19.

NHS Digital publishes, for every hip-replacement episode, the EQ-5D-3L
dimensions before and after surgery and the official UK index.  spinereg's
UK TTO index must equal the published one for every complete response.
Missing dimensions are coded 9 in this file.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import spinereg
from spinereg.data import MappedTable
from tests.conftest import shared_path

DIMS = ["Mobility", "Self-Care", "Activity", "Discomfort", "Anxiety"]


@pytest.fixture(scope="module")
def proms() -> pd.DataFrame:
    path = shared_path("data", "nhs-proms", "hip-replacement-ccg-2018-19.csv.zip")
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith(".csv") and not n.startswith("__MACOSX"))
        with z.open(name) as f:
            return pd.read_csv(f, low_memory=False)


def test_uk_index_equals_nhs_published_index(proms: pd.DataFrame) -> None:
    assert len(proms) == 40_432
    n_complete = 0
    n_equal = 0
    for when in ("Pre-Op Q", "Post-Op Q"):
        dims = proms[[f"{when} {d}" for d in DIMS]].set_axis(["MO", "SC", "UA", "PD", "AD"], axis=1)
        complete = dims.isin([1, 2, 3]).all(axis=1)
        published = pd.to_numeric(proms.loc[complete, f"{when} EQ5D Index"], errors="coerce")
        ours = spinereg.eq5d(dims[complete], "3L", "TTO", "UK", digits=3)
        n_complete += int(complete.sum())
        n_equal += int(np.isclose(ours.to_numpy(), published.to_numpy(), rtol=0, atol=1e-9).sum())
        # the published profile column agrees with the dimensions
        profile = proms.loc[complete, f"{when} EQ5D Index Profile"].astype(str)
        ours_profile = spinereg.eq5d(profile, "3L", "TTO", "UK", digits=3)
        np.testing.assert_allclose(ours_profile.to_numpy(), published.to_numpy(), rtol=0, atol=1e-9)
    assert n_complete == 76_782
    assert n_equal == 76_782


def test_missing_code_9_is_invalid_not_a_level(proms: pd.DataFrame) -> None:
    dims = proms[[f"Pre-Op Q {d}" for d in DIMS]].set_axis(["MO", "SC", "UA", "PD", "AD"], axis=1)
    incomplete = ~dims.isin([1, 2, 3]).all(axis=1)
    assert incomplete.sum() == 40_432 - 37_940
    with pytest.raises(spinereg.InvalidInputError):
        spinereg.eq5d(dims, "3L", "TTO", "UK")
    with pytest.warns(spinereg.InvalidInputWarning):
        got = spinereg.eq5d(dims, "3L", "TTO", "UK", invalid="nan")
    assert got.isna().sum() == incomplete.sum()


# =========================================================================== ids of the shipped mapping
#
# NHS Digital publishes hip and knee files, each as a CCG and a provider file, with one
# header layout (the real hip CCG file's header, below).  The knee and provider files
# here are small synthetic ones with that header; only their names and the Procedure
# column tell them apart, as in the published files.

HEADER = (
    "Provider Code,Procedure,Revision Flag,Year,Age Band,Gender,Pre-Op Q Assisted,Pre-Op Q Assisted By,"
    "Pre-Op Q Symptom Period,Pre-Op Q Previous Surgery,Pre-Op Q Living Arrangements,Pre-Op Q Disability,"
    "Heart Disease,High Bp,Stroke,Circulation,Lung Disease,Diabetes,Kidney Disease,Nervous System,Liver Disease,"
    "Cancer,Depression,Arthritis,Pre-Op Q Mobility,Pre-Op Q Self-Care,Pre-Op Q Activity,Pre-Op Q Discomfort,"
    "Pre-Op Q Anxiety,Pre-Op Q EQ5D Index Profile,Pre-Op Q EQ5D Index,Post-Op Q Assisted,Post-Op Q Assisted By,"
    "Post-Op Q Living Arrangements,Post-Op Q Disability,Post-Op Q Mobility,Post-Op Q Self-Care,Post-Op Q Activity,"
    "Post-Op Q Discomfort,Post-Op Q Anxiety,Post-Op Q Satisfaction,Post-Op Q Sucess,Post-Op Q Allergy,"
    "Post-Op Q Bleeding,Post-Op Q Wound,Post-Op Q Urine,Post-Op Q Further Surgery,Post-Op Q Readmitted,"
    "Post-Op Q EQ5D Index Profile,Post-Op Q EQ5D Index,{proc} Replacement EQ5D Index Post-Op Q Predicted,"
    "Pre-Op Q EQ VAS,Post-Op Q EQ VAS,{proc} Replacement EQ VAS Post-Op Q Predicted"
)


def _nhs_file(directory: Path, name: str, proc: str, rows: int, vas: int = 70) -> Path:
    """A synthetic NHS PROMs file: ``rows`` episodes, every answer 1 (11111), VAS ``vas``."""
    cols = HEADER.format(proc=proc).split(",")
    values = {c: "9" for c in cols}
    values.update({"Provider Code": "RXX", "Procedure": f"{proc} Replacement", "Revision Flag": "0",
                   "Year": "2018/19", "Age Band": "*", "Gender": "2", "Pre-Op Q EQ VAS": str(vas),
                   "Post-Op Q EQ VAS": str(vas), "Post-Op Q Sucess": "1"})
    for when in ("Pre-Op Q", "Post-Op Q"):
        for d in DIMS:
            values[f"{when} {d}"] = "1"
    line = ",".join(values[c] for c in cols)
    directory.mkdir(parents=True, exist_ok=True)
    p = directory / name
    p.write_text(",".join(cols) + "\n" + "\n".join([line] * rows) + "\n", encoding="utf-8")
    return p


def _ids(chunks: Sequence[MappedTable], entity: str) -> list[str]:
    key = {"patients": "patient_id", "operations": "operation_id", "proms": "prom_id"}[entity]
    return [str(v) for c in chunks if c.entity == entity for v in c.frame[key]]


def test_nhs_ids_tell_procedure_and_file_variant_apart(tmp_path: Path) -> None:
    from spinereg.data import apply_mapping, validate

    files = [_nhs_file(tmp_path, "Hip Replacement CCG 1819.csv", "Hip", 2),
             _nhs_file(tmp_path, "Knee Replacement CCG 1819.csv", "Knee", 2),
             _nhs_file(tmp_path, "Hip Replacement Provider 1819.csv", "Hip", 1),
             _nhs_file(tmp_path / "zipped", "knee-replacement-provider-2018-19.csv", "Knee", 1)]
    zipped = tmp_path / "knee-replacement-provider-2018-19.csv.zip"
    with zipfile.ZipFile(zipped, "w") as z:
        z.write(files[3], "Knee Replacement Provider 1819.csv")
    files[3] = zipped
    chunks = apply_mapping("nhs-proms", files)
    assert _ids(chunks, "patients") == [
        "NHS1819-hip-ccg-2", "NHS1819-hip-ccg-3", "NHS1819-knee-ccg-2", "NHS1819-knee-ccg-3",
        "NHS1819-hip-provider-2", "NHS1819-knee-provider-2"]
    assert sorted(_ids(chunks, "proms"))[:2] == ["NHS1819-hip-ccg-2-3m", "NHS1819-hip-ccg-2-baseline"]
    # all four files in one command: no key twice, no error, no warning
    x, report = validate(chunks, extract_date="2020-02-13")
    assert len(report.problems) == 0, report.to_text()
    assert len(x["patients"]) == len(x["operations"]) == 6
    assert len(x["proms"]) == 12


def test_nhs_file_named_otherwise_keeps_its_name_as_variant(tmp_path: Path) -> None:
    from spinereg.data import apply_mapping

    chunks = apply_mapping("nhs-proms", [_nhs_file(tmp_path, "My Export (2).csv", "Knee", 1)])
    assert _ids(chunks, "patients") == ["NHS1819-knee-my-export-2-2"]


def test_nhs_the_old_collision_is_refused_naming_both_files(tmp_path: Path) -> None:
    """The same file name in two folders (e.g. two downloads of one year) gives the same
    ids: rows that differ are refused, each message naming both files and both lines."""
    from spinereg.data import apply_mapping, validate

    a = _nhs_file(tmp_path / "a", "Hip Replacement CCG 1819.csv", "Hip", 3, vas=70)
    b = _nhs_file(tmp_path / "b", "Hip Replacement CCG 1819.csv", "Hip", 3, vas=71)
    _, report = validate(apply_mapping("nhs-proms", [a, b]), extract_date="2020-02-13")
    assert not report.ok
    conflicts = report.errors[report.errors["rule"] == "conflict"]
    assert set(conflicts["column"]) == {"prom_id"}  # the key, not the source column Year
    assert list(conflicts["file"].unique()) == [str(b)]
    assert sorted(conflicts["row"]) == [2, 2, 3, 3, 4, 4]
    first = conflicts.sort_values("row").iloc[0]["message"]
    assert first in (f"conflicting re-entry of prom_id 'NHS1819-hip-ccg-2-{tp}': {b} line 2 differs from {a} line 2 "
                     "in eqvas" for tp in ("baseline", "3m"))
    # patients and operations are identical in both files: kept once, the other file named
    dups = report.warnings[report.warnings["entity"] == "patients"]
    assert list(dups["message"]) == [f"duplicate of the identical row at {a} line {n} (kept once)" for n in (2, 3, 4)]

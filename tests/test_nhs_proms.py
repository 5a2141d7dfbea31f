"""Real data: the UK (MVH) 3L index of NHS England PROMs 2018-19.

NHS Digital publishes, for every hip-replacement episode, the EQ-5D-3L
dimensions before and after surgery and the official UK index.  spinereg's
UK TTO index must equal the published one for every complete response.
Missing dimensions are coded 9 in this file.
"""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest

import spinereg
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

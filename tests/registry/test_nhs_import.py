"""The real NHS England PROMs file imports through its shipped mapping with 0 errors."""

from __future__ import annotations

import numpy as np

from spinereg.registry import import_files, load_extract
from tests.conftest import shared_path


def test_nhs_proms_imports_with_zero_errors(registry: str) -> None:
    path = shared_path("data", "nhs-proms", "hip-replacement-ccg-2018-19.csv.zip")
    result = import_files(registry, "nhs-proms", [path], key=bytes(32))
    assert len(result.report.errors) == 0, result.report.to_text(limit=20)
    assert result.written
    x = load_extract(registry)
    assert len(x["operations"]) == 40_432
    proms = x["proms"]
    assert set(proms["timepoint"].astype(str)) <= {"baseline", "3m"}
    # missing codes 9 (items) and 999 (VAS) became missing values, never numbers
    for col in ("eq5d3l_mo", "eq5d3l_sc", "eq5d3l_ua", "eq5d3l_pd", "eq5d3l_ad"):
        vals = proms[col].dropna().astype(int)
        assert set(vals.unique()) <= {1, 2, 3}
        assert proms[col].isna().any()
    vas = proms["eqvas"].dropna().astype(int)
    assert vas.between(0, 100).all()
    assert proms["eqvas"].isna().any()
    assert not np.isin(vas.to_numpy(), [999]).any()

"""The write service's quick conversion of plain values against :func:`spinereg.data.conform`.

``RegistryWriter`` stores a record's values as ``conform`` (then ``json_value``) makes them;
for values already of their column's plain Python type (what forms and the API give) it
does this without pandas.  Oracle: ``conform`` itself, for every column of every entity and
a grid of values; a value the quick path does not take must go the pandas way.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pandas as pd
import pytest

from spinereg.data import conform, entities
from spinereg.registry._audit import json_value
from spinereg.registry._service import _plain_value

VALUES: list[Any] = [None, "", "text", " L1 ", "L1", "T12", "male", "3m", "vertebroplasty", "KNAG40;KNAG41", 0, 1, 5,
                     -3, 2 ** 40, 2 ** 60, 4.0, 4.5, float("nan"), float("inf"), True, False, "2015-03-01",
                     "2015-3-1", " 2015-03-01", "2015-02-30", date(2015, 3, 1), datetime(2015, 3, 1, 10, 0), "5",
                     "true", "yes", "false", "-3", "+2", "4.5", "0.25", "3.", " 7", "007", "1e3", "True"]


def _by_conform(col: Any, ent: Any, v: Any) -> Any:
    return json_value(conform(pd.DataFrame({col.name: [v]}), ent)[col.name].iloc[0])


@pytest.mark.parametrize("ent", list(entities()), ids=lambda e: e.name)
def test_plain_values_convert_as_conform_does(ent: Any) -> None:
    taken = 0
    for col in ent.columns:
        for v in VALUES:
            ok, got = _plain_value(col, v)
            if not ok:
                continue
            taken += 1
            want = _by_conform(col, ent, v)
            assert got == want and type(got) is type(want), (col.name, col.type, v, got, want)
    assert taken > len(ent.columns)


def test_the_quick_path_takes_what_forms_and_the_api_give_and_nothing_doubtful() -> None:
    cols = {c.name: c for e in entities() for c in e.columns}
    assert _plain_value(cols["answer_date"], "2015-06-01") == (True, "2015-06-01")
    assert _plain_value(cols["answer_date"], date(2015, 6, 1)) == (True, "2015-06-01")
    assert _plain_value(cols["nrs_back"], 4) == (True, 4)
    assert _plain_value(cols["cement_volume_ml"], 3) == (True, 3.0)
    assert _plain_value(cols["timepoint"], "3m") == (True, "3m")
    assert _plain_value(cols["nrs_back"], "4") == (True, 4)  # a form's text
    assert _plain_value(cols["cement_volume_ml"], "2.5") == (True, 2.5)
    assert _plain_value(cols["leak"], "false") == (True, False)
    # left to conform: padded or decimal text for an int, other words for a bool, a padded or unknown code, a
    # datetime, a non-ISO date, NaN, a bool for an int
    for name, v in (("nrs_back", " 4"), ("nrs_back", "4.0"), ("leak", "yes"),
                    ("timepoint", " 3m"), ("timepoint", "3M"), ("answer_date", "2015-6-1"),
                    ("answer_date", datetime(2015, 6, 1, 9, 0)), ("cement_volume_ml", float("nan")),
                    ("nrs_back", True), ("answer_date", "2015-02-30")):
        assert _plain_value(cols[name], v) == (False, None), (name, v)

"""Strict reads of the registry database (issue 10, Deliver 5): a value that the schema's
vocabulary no longer holds is an error naming table, row, column and value when the registry
is read (``load_extract``), not a missing value that a study would count as missing.

The scenario of the issue: the registry was written under one vocabulary and the schema then
changed (here ``fusion`` leaves ``operations.procedure_category``; ``yeom_c`` leaves
``imaging_findings.leak_type``).  Registry on a temporary SQLite file.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from spinereg import InvalidInputError
from spinereg.data import Extract, entities
from spinereg.data._synth import synthesize


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Extract]:
    from spinereg.registry import import_extract, migrate, open_registry

    alias = open_registry(f"sqlite:///{tmp_path_factory.mktemp('strict') / 'registry.sqlite3'}")
    migrate(alias)
    x = synthesize(400, 12)
    import_extract(alias, x, mapping="synth", dataset={"name": "strict-read test", "synthetic": True,
                                                       "extract_date": x.meta["extract_date"]})
    return alias, x


def _drop_from_schema(monkeypatch: pytest.MonkeyPatch, name: str, column: str, value: str) -> None:
    from spinereg.data import _schema

    ents, tps = _schema._load()
    ent = ents[name]
    cols = tuple(dataclasses.replace(c, values=tuple(v for v in c.values if v != value)) if c.name == column else c
                 for c in ent.columns)
    patched = {**ents, name: dataclasses.replace(ent, columns=cols)}
    monkeypatch.setattr(_schema, "_load", lambda: (patched, tps))


def test_the_registry_reads_back_whole_under_its_own_schema(written: tuple[str, Extract]) -> None:
    """No false alarm: every value as the database returns it passes the strict read."""
    from spinereg.registry import load_extract

    alias, x = written
    y = load_extract(alias)
    for e in entities():
        a = x[e.name].sort_values(list(e.key)).reset_index(drop=True)
        b = y[e.name].sort_values(list(e.key)).reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, check_dtype=False)


@pytest.mark.parametrize(("name", "key", "column", "value"), [
    ("operations", "operation_id", "procedure_category", "fusion"),
    ("imaging_findings", "finding_id", "leak_type", "yeom_c"),
])
def test_a_value_the_schema_no_longer_has_is_an_error(monkeypatch: pytest.MonkeyPatch, written: tuple[str, Extract],
                                                      name: str, key: str, column: str, value: str) -> None:
    from spinereg.registry import load_extract

    alias, x = written
    rows = x[name][x[name][column] == value].sort_values(key)
    assert len(rows) > 0
    first = rows[key].iloc[0]
    _drop_from_schema(monkeypatch, name, column, value)
    with pytest.raises(InvalidInputError) as info:
        load_extract(alias)
    lines = str(info.value).splitlines()
    assert lines[0] == f"table spinereg_{name}: {len(rows)} invalid row(s)"
    assert lines[1].startswith(f"  column '{column}': value '{value}': row {key} '{first}': not in the vocabulary "
                               f"of {column}: ")
    assert info.value.n_invalid == len(rows)

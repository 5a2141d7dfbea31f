"""Strict reads: ``conform(..., strict=True)`` and ``read_extract`` refuse a value that does not
fit the schema (a category outside its vocabulary, a date or number that does not parse, a
number outside its range, a boolean that is not one) and name where it is, instead of reading
it as missing.  The expected messages are written out by hand from the schema
(``src/spinereg/data/resources/schema.toml``)."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spinereg import InvalidInputError, SpineregError
from spinereg.data import conform, entities, entity, read_extract, write_extract
from spinereg.data._synth import synthesize

INDICATIONS = ("cancer_vcf, osteoporotic_vcf, traumatic_fracture, degenerative, disc_herniation, stenosis, "
               "deformity, tumour, infection, other")


def _operations(**changes: object) -> pd.DataFrame:
    """Three valid operations as text (as a CSV or a database driver gives them), with ``changes``
    applied as ``column=(row, value)``."""
    df = pd.DataFrame({
        "operation_id": ["OP1", "OP2", "OP3"],
        "patient_id": ["P1", "P1", "P2"],
        "date": ["2015-03-01", "2016-01-31", None],
        "procedure_category": ["vertebroplasty", "fusion", "other"],
        "indication": ["cancer_vcf", None, "stenosis"],
        "asa_class": ["1", None, "5"],
        "anaesthesia": ["local", "general", None],
    }, dtype=object)
    for col, (row, value) in changes.items():
        df.loc[row, col] = value  # type: ignore[misc]
    return df


def test_a_category_outside_the_vocabulary_names_table_row_column_and_value() -> None:
    df = _operations(indication=(1, "cancer"))
    with pytest.raises(InvalidInputError) as info:
        conform(df, "operations", strict=True, source="table spinereg_operations")
    assert str(info.value) == (
        "table spinereg_operations: 1 invalid row(s)\n"
        f"  column 'indication': value 'cancer': row operation_id 'OP2': not in the vocabulary of indication: "
        f"{INDICATIONS}")
    assert isinstance(info.value, SpineregError)
    (p,) = info.value.problems
    assert (p.column, p.value) == ("indication", "cancer")
    assert info.value.n_invalid == 1


def test_without_strict_the_same_value_is_read_as_missing() -> None:
    """What strict mode is for: the default conform (validated input only) makes it NaN."""
    out = conform(_operations(indication=(1, "cancer")), "operations")
    assert out["indication"].isna().tolist() == [False, True, False]


def test_valid_text_values_pass_and_give_the_canonical_types() -> None:
    out = conform(_operations(), "operations", strict=True)
    assert out["date"].tolist()[:2] == [pd.Timestamp("2015-03-01"), pd.Timestamp("2016-01-31")]
    assert pd.isna(out["date"].iloc[2])
    assert out["asa_class"].tolist()[0] == 1 and out["asa_class"].tolist()[2] == 5
    assert out["asa_class"].dtype == "Int64"
    assert out["procedure_category"].tolist() == ["vertebroplasty", "fusion", "other"]
    pd.testing.assert_frame_equal(out, conform(_operations(), "operations"))


@pytest.mark.parametrize(("column", "value", "rule"), [
    ("date", "2017-13-45", "not a date (YYYY-MM-DD)"),
    ("date", "yesterday", "not a date (YYYY-MM-DD)"),
    ("date", "03-04-2017", "not a date (YYYY-MM-DD)"),
    ("asa_class", "two", "not a number"),
    ("asa_class", "2.5", "not a whole number"),
    ("asa_class", "1e20", "too large a whole number"),
    ("asa_class", "7", "outside the range 1..5 of asa_class"),
    ("asa_class", 0, "outside the range 1..5 of asa_class"),
    ("procedure_category", "Vertebroplasty", "not in the vocabulary of procedure_category: vertebroplasty, "
                                             "kyphoplasty, decompression, fusion, discectomy, other"),
    ("anaesthesia", "", "not in the vocabulary of anaesthesia: local, general"),
])
def test_each_kind_of_bad_value_is_named(column: str, value: object, rule: str) -> None:
    df = _operations(**{column: (0, value)})
    with pytest.raises(InvalidInputError) as info:
        conform(df, "operations", strict=True, source="operations.csv")
    shown = repr(value)
    assert str(info.value) == (f"operations.csv: 1 invalid row(s)\n"
                               f"  column '{column}': value {shown}: row operation_id 'OP1': {rule}")


def test_prom_items_use_the_instrument_range() -> None:
    """eq5d3l_mo has no min/max in the schema: its range 1..3 comes from the EQ-5D-3L definition."""
    df = pd.DataFrame({"prom_id": ["Q1", "Q2"], "patient_id": ["P1", "P1"], "operation_id": ["OP1", "OP1"],
                       "timepoint": ["baseline", "3m"], "eq5d3l_mo": [3.0, 4.0], "odi_1": [5.0, np.nan]})
    with pytest.raises(InvalidInputError) as info:
        conform(df, "proms", strict=True, source="table spinereg_proms")
    assert str(info.value) == ("table spinereg_proms: 1 invalid row(s)\n"
                               "  column 'eq5d3l_mo': value 4: row prom_id 'Q2': outside the range 1..3 of "
                               "eq5d3l_mo (eq5d3l MO)")


@pytest.mark.parametrize("value", ["maybe", "ja", 2, "", 0.5])
def test_booleans_must_be_booleans(value: object) -> None:
    """Without strict, any text other than true/1/yes is read as False; strict refuses it."""
    df = pd.DataFrame({"finding_id": ["F1", "F2"], "operation_id": ["OP1", "OP1"], "level": ["L1", "L2"],
                       "leak": [True, value]}, dtype=object)
    with pytest.raises(InvalidInputError) as info:
        conform(df, "imaging_findings", strict=True)
    assert str(info.value) == ("entity imaging_findings: 1 invalid row(s)\n"
                               f"  column 'leak': value {value!r}: row finding_id 'F2': "
                               "not a boolean (true/false, yes/no, 1/0)")


@pytest.mark.parametrize("stored", [[1, 0, None], ["true", "FALSE", None], [True, False, None],
                                    ["yes", " no", None], [1.0, 0.0, np.nan]])
def test_every_stored_form_of_a_boolean_passes(stored: list[object]) -> None:
    df = pd.DataFrame({"finding_id": ["F1", "F2", "F3"], "operation_id": ["OP1"] * 3, "level": ["L1", "L2", "L3"],
                       "leak": stored}, dtype=object)
    out = conform(df, "imaging_findings", strict=True)
    assert out["leak"].tolist()[:2] == [True, False]
    assert pd.isna(out["leak"].iloc[2])


def test_a_composite_key_names_every_key_column() -> None:
    df = pd.DataFrame({"operation_id": ["OP1", "OP1"], "level": ["L1", "L6"], "cement_volume_ml": [3.5, 2.0]})
    with pytest.raises(InvalidInputError) as info:
        conform(df, "treated_levels", strict=True, source="table spinereg_treated_levels")
    assert "column 'level': value 'L6': row operation_id 'OP1', level 'L6': not in the vocabulary of level" \
        in str(info.value)


def test_the_row_is_named_by_the_given_keys_or_by_position() -> None:
    df = _operations(indication=(2, "cancer"))
    with pytest.raises(InvalidInputError, match="row patient_id 'P2': not in the vocabulary"):
        conform(df, "operations", strict=True, keys=["patient_id"])
    with pytest.raises(InvalidInputError, match="row at position 2: not in the vocabulary"):
        conform(df.drop(columns=["operation_id"]), "operations", strict=True)


def test_a_categorical_column_with_a_stray_category() -> None:
    """A Categorical (e.g. from Parquet) whose categories are not the schema's: only a value
    in use that the schema does not know is an error."""
    sex = pd.Categorical(["female", "unknown", None], categories=["female", "male", "unknown", "other"])
    df = pd.DataFrame({"patient_id": ["A", "B", "C"], "sex": sex})
    with pytest.raises(InvalidInputError) as info:
        conform(df, "patients", strict=True)
    assert str(info.value) == ("entity patients: 1 invalid row(s)\n"
                               "  column 'sex': value 'unknown': row patient_id 'B': "
                               "not in the vocabulary of sex: female, male")
    ok = pd.DataFrame({"patient_id": ["A", "C"], "sex": sex[[0, 2]]})
    assert conform(ok, "patients", strict=True)["sex"].tolist()[0] == "female"


def test_many_bad_rows_are_counted_and_the_first_ones_shown() -> None:
    n = 1000
    df = pd.DataFrame({"patient_id": [f"P{i}" for i in range(n)], "sex": ["f"] * n,
                       "death_source": ["cpr"] * 10 + [None] * (n - 10)})
    with pytest.raises(InvalidInputError) as info:
        conform(df, "patients", strict=True)
    err = info.value
    assert err.n_invalid == n
    # the first 10 bad values of each column (and rule) are kept for callers, in row order
    assert [(p.column, p.value) for p in err.problems] == [("sex", "f"), ("death_source", "cpr")] * 10
    lines = str(err).splitlines()
    assert lines[0] == "entity patients: 1000 invalid row(s)"
    assert lines[1] == ("  column 'sex': value 'f': row patient_id 'P0': not in the vocabulary of sex: female, male")
    assert lines[2] == ("  column 'death_source': value 'cpr': row patient_id 'P0': not in the vocabulary of "
                        "death_source: cpr_registry, medical_record, registry, other")
    assert lines[3].startswith("  column 'sex': value 'f': row patient_id 'P1': ")
    assert lines[-1] == "  ... and 10 more"


def test_without_strict_an_unparsable_date_is_still_a_spinereg_error() -> None:
    """The default conform raised pandas' own error (a traceback in the CLI); now it names the value."""
    with pytest.raises(InvalidInputError, match=r"column 'date': value '2017-13-45': row operation_id 'OP1': "
                                                r"not a date \(YYYY-MM-DD\)"):
        conform(_operations(date=(0, "2017-13-45")), "operations")


def _as_stored(df: pd.DataFrame) -> pd.DataFrame:
    """The table as a database driver returns it: Python objects, None for missing, dates as
    ``datetime.date``, booleans as 1/0 (SQLite)."""
    out = {}
    for name in df.columns:
        s = df[name]
        if pd.api.types.is_datetime64_any_dtype(s):
            out[name] = [None if pd.isna(v) else v.date() for v in s]
        elif isinstance(s.dtype, pd.BooleanDtype):
            out[name] = [None if pd.isna(v) else int(v) for v in s]
        else:
            out[name] = [None if pd.isna(v) else v for v in s.astype(object)]
    return pd.DataFrame.from_records(list(zip(*out.values(), strict=True)), columns=list(df.columns))


def test_a_whole_synthetic_registry_passes_strict_from_any_storage_form(tmp_path: Path) -> None:
    """No false alarm: every valid value, in every form it is stored in, passes."""
    x = synthesize(2000, 4)
    stored_ops = _as_stored(x["operations"])
    assert stored_ops["date"].dtype == object and isinstance(stored_ops["date"].iloc[0], datetime.date)
    for e in entities():
        pd.testing.assert_frame_equal(conform(x[e.name], e, strict=True), x[e.name])
        stored = _as_stored(x[e.name])
        pd.testing.assert_frame_equal(conform(stored, e, strict=True), x[e.name], check_dtype=False)
    for fmt in ("csv", "parquet"):
        write_extract(x, tmp_path / fmt, fmt)  # type: ignore[arg-type]
        y = read_extract(tmp_path / fmt)
        for e in entities():
            pd.testing.assert_frame_equal(y[e.name], x[e.name], check_dtype=fmt == "csv")


def test_read_extract_refuses_a_value_outside_the_vocabulary(tmp_path: Path) -> None:
    x = synthesize(300, 2)
    write_extract(x, tmp_path, "csv")
    path = tmp_path / "operations.csv"
    ops = pd.read_csv(path, dtype=str, keep_default_na=False)
    first = ops["operation_id"].iloc[0]
    old = ops["procedure_category"].iloc[0]
    ops.loc[0, "procedure_category"] = "vertebroplasti"
    ops.to_csv(path, index=False)
    with pytest.raises(InvalidInputError) as info:
        read_extract(tmp_path)
    assert str(info.value).splitlines() == [
        f"{path}: 1 invalid row(s)",
        f"  column 'procedure_category': value 'vertebroplasti': row operation_id {first!r}: not in the "
        "vocabulary of procedure_category: vertebroplasty, kyphoplasty, decompression, fusion, discectomy, other"]
    ops.loc[0, "procedure_category"] = old
    ops.to_csv(path, index=False)
    assert read_extract(tmp_path)["operations"]["procedure_category"].notna().all()


def test_the_schema_vocabulary_is_what_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check reads Column.values of the schema: drop one value and data using it are refused."""
    import dataclasses

    ent = entity("complications")
    col = ent.column("clavien_dindo")
    narrowed = dataclasses.replace(col, values=tuple(v for v in col.values if v != "V"))
    changed = dataclasses.replace(ent, columns=tuple(narrowed if c.name == col.name else c for c in ent.columns))
    df = pd.DataFrame({"complication_id": ["C1", "C2"], "operation_id": ["OP1", "OP1"], "type": ["other", "other"],
                       "clavien_dindo": ["I", "V"]})
    conform(df, ent, strict=True)
    with pytest.raises(InvalidInputError, match=r"value 'V': row complication_id 'C2': not in the vocabulary of "
                                                r"clavien_dindo: I, II, IIIa, IIIb, IVa, IVb$"):
        conform(df, changed, strict=True)

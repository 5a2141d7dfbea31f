"""The synthetic registry generator: determinism, schema conformity, date and key rules,
and its documented model targets."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pytest

import spinereg
from spinereg import SpineregError
from spinereg.data import Extract, conform, entities, entity, read_extract, timepoints, write_extract
from spinereg.data._synth import DEFAULT_PATIENTS, synthesize

SEED = 2018
EXTRACT_DATE = pd.Timestamp("2021-06-30")


@pytest.fixture(scope="module")
def default_extract() -> Extract:
    """One extract at the default size (20,000 patients)."""
    return synthesize(DEFAULT_PATIENTS, SEED)


def _dims(df: pd.DataFrame, prefix: str) -> dict[str, np.ndarray]:
    return {d.upper(): df[f"{prefix}_{d}"].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
            for d in ("mo", "sc", "ua", "pd", "ad")}


def _eq5d_3l_dk(proms: pd.DataFrame) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", spinereg.InvalidInputWarning)
        return np.asarray(spinereg.eq5d(_dims(proms, "eq5d3l"), "3L", "TTO", "Denmark", invalid="nan"))


def _odi(proms: pd.DataFrame) -> np.ndarray:
    items = proms[[f"odi_{k}" for k in range(1, 11)]].astype("Float64").to_numpy(dtype=np.float64,
                                                                                 na_value=np.nan)
    return spinereg.odi(items)["odi"].to_numpy()


def _pvp_cancer_ops(x: Extract) -> pd.DataFrame:
    ops = x["operations"]
    return ops[(ops["indication"] == "cancer_vcf") & (ops["procedure_category"] == "vertebroplasty")]


# --- determinism and metadata ---------------------------------------------------------------
def test_same_seed_same_extract_other_seed_other_extract() -> None:
    a = synthesize(3000, 7)
    b = synthesize(3000, 7)
    c = synthesize(3000, 8)
    assert a.meta == b.meta
    for name in a.tables:
        pd.testing.assert_frame_equal(a[name], b[name])
    assert not a["patients"]["birth_date"].equals(c["patients"]["birth_date"])
    assert not a["proms"]["answer_date"].equals(c["proms"]["answer_date"])


def test_metadata_flags_the_data_synthetic() -> None:
    x = synthesize(500, 3, extract_date="2021-06-30")
    assert x.synthetic
    assert x.meta == {"name": "spinereg synthetic registry", "synthetic": True, "seed": 3, "n_patients": 500,
                      "extract_date": "2021-06-30", "source": "spinereg.data.synthesize", "generator_version": 1}


@pytest.mark.parametrize(("n", "start", "end", "extract"), [
    (0, "2010-01-01", "2020-12-31", "2021-06-30"),
    (10, "2020-01-01", "2019-12-31", "2021-06-30"),
    (10, "2010-01-01", "2022-12-31", "2021-06-30"),
    (10, "2010-01-01", "not a date", "2021-06-30"),
])
def test_bad_arguments_raise(n: int, start: str, end: str, extract: str) -> None:
    with pytest.raises(SpineregError):
        synthesize(n, 1, start=start, end=end, extract_date=extract)


def test_tiny_extract_is_well_formed() -> None:
    x = synthesize(1, 0)
    assert len(x["patients"]) == 1
    assert x["patients"]["patient_id"].tolist() == ["SYN1"]
    assert len(x["operations"]) >= 1


# --- schema conformity ------------------------------------------------------------------------
def test_tables_are_conformed(default_extract: Extract) -> None:
    x = default_extract
    assert list(x.tables) == [e.name for e in entities()]
    for e in entities():
        df = x[e.name]
        assert tuple(df.columns) == e.column_names, e.name
        assert len(df) > 0, e.name
        pd.testing.assert_frame_equal(conform(df, e), df, check_dtype=True)


def test_values_are_allowed(default_extract: Extract) -> None:
    x = default_extract
    for e in entities():
        df = x[e.name]
        for col in e.columns:
            s = df[col.name]
            if col.required:
                assert s.notna().all(), f"{e.name}.{col.name} has missing values"
            # categories: see test_no_drawn_category_is_lost and the vocabulary drift tests below
            if col.type in ("int", "float"):
                v = s.dropna().astype(float)
                lo = -np.inf if col.min is None else col.min
                hi = np.inf if col.max is None else col.max
                assert v.between(lo, hi).all(), f"{e.name}.{col.name} out of range"
            if col.type == "codes":
                codes = s.dropna().str.split(";").explode()
                assert codes.str.fullmatch(col.pattern).all(), f"{e.name}.{col.name}"


def test_no_drawn_category_is_lost(default_extract: Extract) -> None:
    """A categorical value is missing only where the model leaves it missing (a value outside the
    schema's vocabulary would have become missing in a lax conform: this is what would show it)."""
    x = default_extract
    pats, ops, img, cx = x["patients"], x["operations"], x["imaging_findings"], x["complications"]
    present = {name: x[name].notna() for name in x.tables}
    assert present["patients"]["sex"].all()
    assert (present["patients"]["death_source"] == pats["death_date"].notna()).all()
    assert present["operations"][["procedure_category", "indication", "anaesthesia"]].all().all()
    cancer = ops["indication"].isin(["cancer_vcf", "tumour"])
    assert (present["operations"]["cancer_primary_site"] == cancer).all()
    assert present["treated_levels"]["level"].all()
    assert present["proms"]["timepoint"].all()
    assert present["complications"][["type", "clavien_dindo"]].all().all()
    assert present["imaging_findings"][["level", "modality"]].all().all()
    assert (present["imaging_findings"]["leak_type"] == img["leak"]).all()
    assert len(pats) and len(cx)


def _vocabulary_drift(x: Extract) -> list[str]:
    """Where the categorical values of a synthetic extract, the model's values and the schema's
    vocabularies part.  For each categorical column of the schema: the model declares it
    (DRAWN); the model's values and its NOT_MODELLED values together are the schema's
    vocabulary; and the values seen in ``x`` are exactly the model's values less the
    NOT_MODELLED ones (every one drawn, nothing else)."""
    from spinereg.data._synth import DRAWN, NOT_MODELLED

    drift = []
    for e in entities():
        for col in e.columns:
            if col.type != "category":
                continue
            where = f"{e.name}.{col.name}"
            if (e.name, col.name) not in DRAWN:
                drift.append(f"{where}: not in the model's DRAWN")
                continue
            model = set(DRAWN[e.name, col.name])
            skipped = set(NOT_MODELLED.get((e.name, col.name), {}))
            if model | skipped != set(col.values):
                drift.append(f"{where}: model {sorted(model | skipped)} != schema {sorted(col.values)}")
            seen = set(x[e.name][col.name].dropna().astype(str))
            never = [v for v in col.values if v in model - skipped and v not in seen]
            if never:
                drift.append(f"{where}: never drawn: {', '.join(never)}")
            if seen - (model - skipped):
                drift.append(f"{where}: drawn, though not modelled: {sorted(seen - (model - skipped))}")
    return drift


@pytest.fixture(scope="module")
def large_extract() -> Extract:
    """300,000 patients (seed 20181): every value the model draws is drawn, the rarest (a
    symptomatic venous leak that becomes a cement embolism) a few times."""
    return synthesize(300_000, 20181)


def test_every_schema_value_is_drawn_or_declared_not_modelled(large_extract: Extract) -> None:
    assert _vocabulary_drift(large_extract) == []


def _schema_with(monkeypatch: pytest.MonkeyPatch, name: str, column: str, values: tuple[str, ...]) -> None:
    """Patch the loaded schema: ``name.column`` gets the vocabulary ``values``."""
    import dataclasses

    from spinereg.data import _schema

    ents, tps = _schema._load()
    ent = ents[name]
    cols = tuple(dataclasses.replace(c, values=values) if c.name == column else c for c in ent.columns)
    patched = {**ents, name: dataclasses.replace(ent, columns=cols)}
    monkeypatch.setattr(_schema, "_load", lambda: (patched, tps))


def test_a_schema_value_the_model_does_not_draw_is_caught(monkeypatch: pytest.MonkeyPatch,
                                                          large_extract: Extract) -> None:
    """The drift check fails when the schema gains a value (here a procedure category): the
    generator must give it a probability or declare it NOT_MODELLED."""
    values = entity("operations").column("procedure_category").values
    _schema_with(monkeypatch, "operations", "procedure_category", (*values, "vesselplasty"))
    x = synthesize(3000, 1)
    assert list(x["operations"]["procedure_category"].cat.categories) == [*values, "vesselplasty"]
    drift = _vocabulary_drift(Extract({**large_extract.tables, "operations": x["operations"]}))
    assert drift == ["operations.procedure_category: model ['decompression', 'discectomy', 'fusion', 'kyphoplasty', "
                     "'other', 'vertebroplasty'] != schema ['decompression', 'discectomy', 'fusion', 'kyphoplasty', "
                     "'other', 'vertebroplasty', 'vesselplasty']"]


@pytest.mark.parametrize(("name", "column", "old", "new"), [
    ("operations", "procedure_category", "discectomy", "microdiscectomy"),
    ("complications", "clavien_dindo", "IIIa", "III"),
    ("imaging_findings", "leak_type", "yeom_c", "cortical"),
    ("proms", "timepoint", "2y", "24m"),
])
def test_a_schema_that_drops_a_value_the_model_draws_is_an_error(monkeypatch: pytest.MonkeyPatch, name: str,
                                                                  column: str, old: str, new: str) -> None:
    values = entity(name).column(column).values
    _schema_with(monkeypatch, name, column, tuple(new if v == old else v for v in values))
    with pytest.raises(SpineregError, match=f"the synthetic model draws '{old}' for {name}.{column}, which the "
                                            f"schema does not have"):
        synthesize(3000, 1)


def test_the_schema_order_of_a_vocabulary_does_not_change_the_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Values are found by name: a schema listing the indications in another order gives the
    same indications (and the schema's order of categories)."""
    before = synthesize(3000, 9)["operations"]["indication"]
    values = entity("operations").column("indication").values
    _schema_with(monkeypatch, "operations", "indication", tuple(reversed(values)))
    after = synthesize(3000, 9)["operations"]["indication"]
    assert list(after.cat.categories) == list(reversed(values))
    assert after.astype(str).tolist() == before.astype(str).tolist()


def test_prom_items_use_the_instrument_ranges(default_extract: Extract) -> None:
    p = default_extract["proms"]
    ranges = {"eq5d3l": (1, 3), "eq5d5l": (1, 5), "odi": (0, 5)}
    for prefix, (lo, hi) in ranges.items():
        cols = [c for c in p.columns if c.startswith(prefix + "_")]
        block = p[cols]
        assert block.min().min() == lo and block.max().max() == hi, prefix
    assert p["eqvas"].min() >= 0 and p["eqvas"].max() <= 100
    assert p["nrs_back"].max() <= 10 and p["nrs_leg"].min() >= 0


def test_ids_and_keys(default_extract: Extract) -> None:
    x = default_extract
    width = len(str(DEFAULT_PATIENTS))
    assert x["patients"]["patient_id"].str.fullmatch(rf"SYN\d{{{width}}}").all()
    for name, col, prefix in (("operations", "operation_id", "OP"), ("proms", "prom_id", "PR"),
                              ("complications", "complication_id", "CX"),
                              ("imaging_findings", "finding_id", "IF")):
        ids = x[name][col]
        n = len(ids)
        assert ids.tolist()[:2] == [f"{prefix}{1:0{len(str(n))}d}", f"{prefix}{2:0{len(str(n))}d}"]
        assert ids.str.fullmatch(rf"{prefix}\d{{{len(str(n))}}}").all()
    for e in entities():
        assert not x[e.name].duplicated(subset=list(e.key)).any(), f"{e.name} key not unique"
    assert not x["patients"]["patient_id"].str.contains(r"\d{6}-?\d{4}").any()  # nothing CPR-like


# --- dates, foreign keys, levels ----------------------------------------------------------------
def test_foreign_keys_resolve(default_extract: Extract) -> None:
    x = default_extract
    pats = set(x["patients"]["patient_id"])
    ops = x["operations"].set_index("operation_id")
    assert x["operations"]["patient_id"].isin(pats).all()
    for child in ("treated_levels", "proms", "complications", "imaging_findings"):
        assert x[child]["operation_id"].isin(ops.index).all(), child
    p = x["proms"]
    assert p["patient_id"].isin(pats).all()
    owner = ops["patient_id"].reindex(p["operation_id"]).to_numpy()
    assert (owner == p["patient_id"].to_numpy()).all(), "a questionnaire follows another patient's operation"


def test_date_order(default_extract: Extract) -> None:
    x = default_extract
    pats = x["patients"].set_index("patient_id")
    ops = x["operations"]
    birth = pats["birth_date"].reindex(ops["patient_id"]).to_numpy()
    death = pats["death_date"].reindex(ops["patient_id"]).to_numpy()
    d = ops["date"].to_numpy()
    assert (birth < d).all()
    dead = ~pd.isna(death)
    assert (d[dead] <= death[dead]).all()
    assert (ops["date"] <= EXTRACT_DATE).all()
    assert (ops["date"] >= pd.Timestamp("2010-01-01")).all() and (ops["date"] <= pd.Timestamp("2020-12-31")).all()
    assert (pats["death_date"].dropna() <= EXTRACT_DATE).all()
    assert (pats["death_date"].notna() == pats["death_source"].notna()).all()
    opdate = ops.set_index("operation_id")["date"]
    for name in ("complications", "imaging_findings"):
        t = x[name]
        od = opdate.reindex(t["operation_id"]).to_numpy()
        assert (t["date"].to_numpy() >= od).all(), name
        assert (t["date"] <= EXTRACT_DATE).all(), name


def test_questionnaires_inside_their_windows_alive_and_before_the_extract(default_extract: Extract) -> None:
    x = default_extract
    p = x["proms"]
    opdate = x["operations"].set_index("operation_id")["date"].reindex(p["operation_id"]).to_numpy()
    days = (p["answer_date"].to_numpy() - opdate) / np.timedelta64(1, "D")
    for name, tp in timepoints().items():
        m = (p["timepoint"] == name).to_numpy()
        assert m.any(), name
        lo, hi = tp.window
        assert (days[m] >= lo).all() and (days[m] <= hi).all(), name
        # mostly near the target day
        assert np.median(np.abs(days[m] - tp.target)) <= 21, name
    death = x["patients"].set_index("patient_id")["death_date"].reindex(p["patient_id"]).to_numpy()
    dead = ~pd.isna(death)
    assert (p["answer_date"].to_numpy()[dead] <= death[dead]).all()
    assert (p["answer_date"] <= EXTRACT_DATE).all()
    assert not p.duplicated(subset=["operation_id", "timepoint"]).any()


def test_levels_and_imaging(default_extract: Extract) -> None:
    x = default_extract
    ops = x["operations"].set_index("operation_id")
    lv = x["treated_levels"]
    img = x["imaging_findings"]
    augment = ops.index[ops["procedure_category"].isin(["vertebroplasty", "kyphoplasty"])]
    assert set(lv["operation_id"]) == set(augment)  # 1+ level per PVP/kyphoplasty, none elsewhere
    assert lv["cement_volume_ml"].between(0.5, 12).all()
    assert 2.0 <= lv["cement_volume_ml"].median() <= 6.0
    thoracolumbar = lv["level"].isin(["T10", "T11", "T12", "L1", "L2", "L3"]).mean()
    assert thoracolumbar > 0.5
    # one post-operative X-ray finding per treated level, at a treated level
    pairs_lv = set(zip(lv["operation_id"], lv["level"].astype(str), strict=True))
    pairs_img = list(zip(img["operation_id"], img["level"].astype(str), strict=True))
    assert len(pairs_img) == len(set(pairs_img)) == len(pairs_lv)
    assert set(pairs_img) == pairs_lv
    assert (img["modality"] == "xray").all()
    assert (img["leak_type"].notna() == img["leak"]).all()
    assert not (img["symptomatic"] & ~img["leak"]).any()
    assert img.loc[img["leak"], "symptomatic"].mean() < 0.2  # most leaks asymptomatic


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_round_trips_through_an_extract_directory(tmp_path: Path, fmt: Literal["csv", "parquet"]) -> None:
    x = synthesize(1500, 5)
    write_extract(x, tmp_path, fmt)
    y = read_extract(tmp_path)
    assert y.meta == x.meta
    for name in x.tables:
        # strings come back as the same StringDtype, Arrow-backed from Parquet (zero-copy)
        for col in x[name].columns:
            assert isinstance(x[name][col].dtype, pd.StringDtype) == isinstance(y[name][col].dtype, pd.StringDtype)
        pd.testing.assert_frame_equal(x[name], y[name], check_dtype=fmt == "csv")


def test_passes_the_import_validator() -> None:
    from spinereg.data._validate import validate_extract

    report = validate_extract(synthesize(4000, 11))
    assert report.problems.empty, report.to_text(20)


# --- contents -----------------------------------------------------------------------------------
def test_registry_contents(default_extract: Extract) -> None:
    x = default_extract
    ops = x["operations"]
    assert set(ops["procedure_category"].unique()) == set(entity("operations").column("procedure_category").values)
    assert ops["patient_id"].duplicated().any()  # some patients have several operations
    assert ops.groupby("patient_id").size().max() <= 3
    cancer = ops["indication"].isin(["cancer_vcf", "tumour"])
    assert ops.loc[cancer, "cancer_primary_site"].notna().all()
    assert ops.loc[~cancer, ["cancer_primary_site", "sins", "tokuhashi", "tomita"]].isna().all().all()
    cvcf = ops[ops["indication"] == "cancer_vcf"]
    assert cvcf["diagnosis_codes"].str.contains(r"(?:C795|C900);M485[0-9]").all()
    assert x["complications"]["clavien_dindo"].value_counts().index[0] in ("I", "II")
    rate = x["complications"]["operation_id"].nunique() / len(ops)
    assert 0.02 < rate < 0.15
    p = x["proms"]
    opdate = ops.set_index("operation_id")["date"].reindex(p["operation_id"]).to_numpy()
    has5l = p["eq5d5l_mo"].notna().to_numpy()
    assert (opdate[has5l] >= np.datetime64("2017-01-01")).all()
    assert has5l[opdate >= np.datetime64("2017-01-01")].mean() > 0.95
    assert p["eq5d3l_mo"].notna().mean() > 0.95
    assert p.loc[p["timepoint"] == "baseline", ["satisfaction", "global_assessment"]].isna().all().all()
    odi_missing = p[[f"odi_{k}" for k in range(1, 11)]].isna().sum(axis=1)
    assert 0.02 < (odi_missing == 1).mean() < 0.12
    # non-response: baseline about 76 % answered; fewer follow-up questionnaires than operations
    assert 0.70 < (p["timepoint"] == "baseline").sum() / len(ops) < 0.82
    assert (p["timepoint"] == "3m").sum() < (p["timepoint"] == "baseline").sum()


@pytest.mark.parametrize("seed", [1, 2, 3, 2018])
def test_pvp_cancer_subgroup_size_at_the_default_size(seed: int) -> None:
    """About 30 patients in expectation (Poisson): 15..50 for any one seed."""
    x = synthesize(DEFAULT_PATIENTS, seed)
    sub = _pvp_cancer_ops(x)
    sub = sub[(sub["date"] >= "2013-01-01") & (sub["date"] <= "2017-12-31")]
    assert 15 <= sub["patient_id"].nunique() <= 50


def test_model_targets_on_a_large_run(large_extract: Extract) -> None:
    """Checks of the generator against its own documented model targets (module docstring of
    spinereg.data._synth), not against real data: on 300,000 synthetic patients the cancer-VCF
    vertebroplasty subgroup has a mean paired Danish EQ-5D-3L gain of 0.30 +- 0.08 at 3 months,
    mean ODI near 44 before surgery and near 23 at 3 months, a per-level cement leak rate of
    0.15 +- 0.04 and a median survival between 0.7 and 1.5 years; many of its 1-year
    questionnaires are missing because the patient died.
    """
    x = large_extract
    sub = _pvp_cancer_ops(x)
    p = x["proms"]
    p = p[p["operation_id"].isin(sub["operation_id"])].assign(eq=lambda d: _eq5d_3l_dk(d), odi=lambda d: _odi(d))
    wide = p.pivot_table(index="operation_id", columns="timepoint", values=["eq", "odi"], observed=False)
    gain3 = (wide[("eq", "3m")] - wide[("eq", "baseline")]).dropna()
    assert len(gain3) > 200
    assert abs(gain3.mean() - 0.30) <= 0.08
    gain1 = (wide[("eq", "1y")] - wide[("eq", "baseline")]).dropna()
    assert abs(gain1.mean() - 0.25) <= 0.10
    odi = p.groupby("timepoint", observed=False)["odi"].mean()
    assert abs(odi["baseline"] - 44.1) <= 4
    assert abs(odi["3m"] - 23.3) <= 4
    assert 20 <= odi["1y"] <= 32
    img = x["imaging_findings"]
    leak = img.loc[img["operation_id"].isin(sub["operation_id"]), "leak"]
    assert len(leak) > 500
    assert abs(leak.mean() - 0.15) <= 0.04
    # survival from the first PVP; operations before mid-2018 are followed >= 3 years, longer
    # than the median, so the median of min(death, extract) - operation is the median survival
    first = sub.sort_values("date").drop_duplicates("patient_id")
    first = first[first["date"] < "2018-07-01"]
    death = x["patients"].set_index("patient_id")["death_date"].reindex(first["patient_id"])
    end = death.fillna(EXTRACT_DATE).to_numpy()
    years = (end - first["date"].to_numpy()) / np.timedelta64(1, "D") / 365.25
    assert 0.7 <= np.median(years) <= 1.5
    # 1-year questionnaires: most of the missing ones are missing because the patient died
    due = sub[sub["date"] + pd.Timedelta(days=545) <= EXTRACT_DATE]
    d1 = x["patients"].set_index("patient_id")["death_date"].reindex(due["patient_id"]).to_numpy()
    died = ~pd.isna(d1) & (d1 < (due["date"] + pd.Timedelta(days=270)).to_numpy())
    answered = due["operation_id"].isin(p.loc[p["timepoint"] == "1y", "operation_id"]).to_numpy()
    assert not (answered & died).any()
    assert died.sum() > 0.5 * (~answered).sum()


def test_conform_keeps_rows_when_the_index_has_gaps() -> None:
    from spinereg.data import conform

    # rows 0 and 2 of a frame after a filter, without the optional columns: still 2 rows, no phantom rows
    df = pd.DataFrame({"patient_id": ["A", "B", "C"]}).iloc[[0, 2]]
    out = conform(df, "patients")
    assert out["patient_id"].tolist() == ["A", "C"]
    assert len(out) == 2

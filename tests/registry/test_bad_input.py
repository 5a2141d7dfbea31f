"""The bad-input catalogue: each kind of problem, its exact report line, and nothing written.

A valid base registry (tidy CSV files, imported through the shipped ``tidy``
mapping) is loaded once per database backend.  Each case changes one cell (or
adds one row) of the base files and imports them again: the import must be
refused with exactly the expected error (file, line, column, value, rule) and
the database must be unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from spinereg.registry import import_files, load_extract, registry_counts

KEY = bytes(range(32))
EXTRACT_DATE = "2021-06-30"

BASE: dict[str, list[dict[str, str]]] = {
    "patients": [
        {"patient_id": "P1", "sex": "male", "birth_date": "1945-03-10", "death_date": "", "death_source": ""},
        {"patient_id": "P2", "sex": "female", "birth_date": "1950-07-01", "death_date": "2016-05-01",
         "death_source": "cpr_registry"},
    ],
    "operations": [
        {"operation_id": "O1", "patient_id": "P1", "date": "2015-02-10", "hospital": "H1", "department": "D1",
         "procedure_codes": "KNAG40", "procedure_category": "vertebroplasty", "indication": "cancer_vcf",
         "diagnosis_codes": "C795;M4850", "cancer_primary_site": "prostate", "asa_class": "2",
         "anaesthesia": "local", "sins": "8", "tokuhashi": "9", "tomita": "6"},
        {"operation_id": "O2", "patient_id": "P2", "date": "2015-06-01", "hospital": "H1", "department": "D1",
         "procedure_codes": "KNAG40", "procedure_category": "vertebroplasty", "indication": "cancer_vcf",
         "diagnosis_codes": "C795", "cancer_primary_site": "breast", "asa_class": "3", "anaesthesia": "general",
         "sins": "", "tokuhashi": "", "tomita": ""},
    ],
    "treated_levels": [
        {"operation_id": "O1", "level": "L1", "cement_volume_ml": "3.5"},
        {"operation_id": "O1", "level": "L2", "cement_volume_ml": "4"},
        {"operation_id": "O2", "level": "T12", "cement_volume_ml": ""},
    ],
    "proms": [
        {"prom_id": "Q1", "patient_id": "P1", "operation_id": "O1", "timepoint": "baseline",
         "answer_date": "2015-02-01", "eq5d3l_mo": "2", "eq5d3l_sc": "2", "eq5d3l_ua": "3", "eq5d3l_pd": "3",
         "eq5d3l_ad": "2", "eqvas": "30", "odi_1": "4", "odi_2": "3", "odi_3": "5", "odi_4": "3", "odi_5": "4",
         "odi_6": "3", "odi_7": "2", "odi_8": "", "odi_9": "3", "odi_10": "4", "nrs_back": "8", "nrs_leg": "3",
         "satisfaction": "", "global_assessment": ""},
        {"prom_id": "Q2", "patient_id": "P1", "operation_id": "O1", "timepoint": "3m", "answer_date": "2015-05-12",
         "eq5d3l_mo": "1", "eq5d3l_sc": "1", "eq5d3l_ua": "2", "eq5d3l_pd": "2", "eq5d3l_ad": "1", "eqvas": "70",
         "odi_1": "2", "odi_2": "1", "odi_3": "2", "odi_4": "1", "odi_5": "1", "odi_6": "1", "odi_7": "1",
         "odi_8": "", "odi_9": "1", "odi_10": "2", "nrs_back": "3", "nrs_leg": "1", "satisfaction": "1",
         "global_assessment": "2"},
        {"prom_id": "Q3", "patient_id": "P2", "operation_id": "O2", "timepoint": "baseline",
         "answer_date": "2015-05-20", "eq5d5l_mo": "3", "eq5d5l_sc": "2", "eq5d5l_ua": "4", "eq5d5l_pd": "4",
         "eq5d5l_ad": "3", "eqvas": "40"},
    ],
    "complications": [
        {"complication_id": "C1", "operation_id": "O2", "date": "2015-06-03", "type": "new_fracture",
         "clavien_dindo": "II", "symptomatic": "true"},
    ],
    "imaging_findings": [
        {"finding_id": "F1", "operation_id": "O1", "level": "L1", "modality": "xray", "date": "2015-02-11",
         "leak": "true", "leak_type": "yeom_c", "symptomatic": "false"},
        {"finding_id": "F2", "operation_id": "O1", "level": "L2", "modality": "xray", "date": "2015-02-11",
         "leak": "false", "leak_type": "", "symptomatic": ""},
        {"finding_id": "F3", "operation_id": "O2", "level": "T12", "modality": "ct", "date": "2015-06-02",
         "leak": "false", "leak_type": "", "symptomatic": ""},
    ],
}


def write_files(directory: Path, changes: dict[tuple[str, int], dict[str, str]] | None = None,
                extra: dict[str, list[dict[str, str]]] | None = None) -> list[Path]:
    from spinereg.data import entity

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, rows in BASE.items():
        data = [dict(r) for r in rows]
        for (ent, i), upd in (changes or {}).items():
            if ent == name:
                data[i].update(upd)
        data += (extra or {}).get(name, [])
        df = pd.DataFrame(data, columns=list(entity(name).column_names)).fillna("")
        path = directory / f"{name}.csv"
        df.to_csv(path, index=False)
        paths.append(path)
    return paths


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    from spinereg.registry import migrate, open_registry

    tmp = tmp_path_factory.mktemp("bad-input")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'registry.sqlite3'}"
    else:
        cluster = request.getfixturevalue("pg_cluster")
        if isinstance(cluster, str):
            from tests.conftest import CI

            if CI:
                pytest.fail(cluster)
            pytest.skip(cluster)
        url = cluster.create_database()
    alias = open_registry(url)
    migrate(alias)
    result = import_files(alias, "tidy", write_files(tmp / "base"), key=KEY, extract_date=EXTRACT_DATE)
    assert result.report.ok, result.report.to_text()
    assert result.written
    return alias


# (case id, changes, extra rows, expected (file, line, column, value, rule))
P, OP, T, Q, C, IMG = "patients", "operations", "treated_levels", "proms", "complications", "imaging_findings"
CASES: list[tuple[str, dict[tuple[str, int], dict[str, str]], dict[str, list[dict[str, str]]],
                  tuple[str, int, str, str, str]]] = [
    ("sex-code", {(P, 0): {"sex": "X"}}, {}, (P, 2, "sex", "'X'", "code")),
    ("birth-month", {(P, 0): {"birth_date": "1945-13-10"}}, {}, (P, 2, "birth_date", "'1945-13-10'", "type")),
    ("birth-format", {(P, 0): {"birth_date": "10-03-1945"}}, {}, (P, 2, "birth_date", "'10-03-1945'", "type")),
    ("death-before-birth", {(P, 1): {"death_date": "1949-01-01"}}, {},
     (P, 3, "death_date", "'1949-01-01'", "date-order")),
    ("patient-id-missing", {(P, 0): {"patient_id": ""}}, {}, (P, 2, "patient_id", "(empty)", "required")),
    ("death-source-code", {(P, 1): {"death_source": "neighbour"}}, {}, (P, 3, "death_source", "'neighbour'", "code")),
    ("birth-in-future", {(P, 0): {"birth_date": "2030-01-01"}}, {}, (P, 2, "birth_date", "'2030-01-01'", "date-order")),
    ("op-date-missing", {(OP, 0): {"date": ""}}, {}, (OP, 2, "date", "(empty)", "required")),
    ("op-date-invalid", {(OP, 0): {"date": "2015-02-30"}}, {}, (OP, 2, "date", "'2015-02-30'", "type")),
    ("category-code", {(OP, 0): {"procedure_category": "laminectomy"}}, {},
     (OP, 2, "procedure_category", "'laminectomy'", "code")),
    ("asa-range", {(OP, 0): {"asa_class": "6"}}, {}, (OP, 2, "asa_class", "'6'", "range")),
    ("asa-decimal", {(OP, 0): {"asa_class": "2.5"}}, {}, (OP, 2, "asa_class", "'2.5'", "type")),
    ("asa-text", {(OP, 0): {"asa_class": "two"}}, {}, (OP, 2, "asa_class", "'two'", "type")),
    ("sins-range", {(OP, 0): {"sins": "19"}}, {}, (OP, 2, "sins", "'19'", "range")),
    ("tomita-range", {(OP, 0): {"tomita": "1"}}, {}, (OP, 2, "tomita", "'1'", "range")),
    ("anaesthesia-code", {(OP, 0): {"anaesthesia": "spinal"}}, {}, (OP, 2, "anaesthesia", "'spinal'", "code")),
    ("indication-code", {(OP, 0): {"indication": "cancer"}}, {}, (OP, 2, "indication", "'cancer'", "code")),
    ("icd10-pattern", {(OP, 0): {"diagnosis_codes": "C79.5"}}, {}, (OP, 2, "diagnosis_codes", "'C79.5'", "pattern")),
    ("procedure-pattern", {(OP, 0): {"procedure_codes": "knag40"}}, {},
     (OP, 2, "procedure_codes", "'knag40'", "pattern")),
    ("unknown-patient", {(OP, 0): {"patient_id": "NOBODY"}}, {}, (OP, 2, "patient_id", "'NOBODY'", "reference")),
    ("op-before-birth", {(OP, 0): {"date": "1944-01-01"}}, {}, (OP, 2, "date", "'1944-01-01'", "date-order")),
    ("op-after-death", {(OP, 1): {"date": "2016-06-01"}}, {}, (OP, 3, "date", "'2016-06-01'", "date-order")),
    ("conflicting-reentry", {}, {OP: [{**BASE[OP][0], "asa_class": "4"}]},
     (OP, 4, "operation_id", "'O1'", "conflict")),
    ("vertebra-L6", {}, {T: [{"operation_id": "O2", "level": "L6", "cement_volume_ml": "2"}]},
     (T, 5, "level", "'L6'", "code")),
    ("vertebra-T13", {}, {T: [{"operation_id": "O2", "level": "T13", "cement_volume_ml": ""}]},
     (T, 5, "level", "'T13'", "code")),
    ("cement-negative", {(T, 0): {"cement_volume_ml": "-1"}}, {}, (T, 2, "cement_volume_ml", "'-1'", "range")),
    ("cement-too-much", {(T, 0): {"cement_volume_ml": "25"}}, {}, (T, 2, "cement_volume_ml", "'25'", "range")),
    ("cement-comma", {(T, 0): {"cement_volume_ml": "3,5"}}, {}, (T, 2, "cement_volume_ml", "'3,5'", "type")),
    ("level-unknown-op", {(T, 2): {"operation_id": "OX"}}, {}, (T, 4, "operation_id", "'OX'", "reference")),
    ("eq5d3l-range", {(Q, 0): {"eq5d3l_mo": "4"}}, {}, (Q, 2, "eq5d3l_mo", "'4'", "range")),
    ("eq5d5l-range", {(Q, 2): {"eq5d5l_ad": "0"}}, {}, (Q, 4, "eq5d5l_ad", "'0'", "range")),
    ("odi-range", {(Q, 0): {"odi_3": "6"}}, {}, (Q, 2, "odi_3", "'6'", "range")),
    ("vas-range", {(Q, 0): {"eqvas": "101"}}, {}, (Q, 2, "eqvas", "'101'", "range")),
    ("nrs-back-range", {(Q, 0): {"nrs_back": "11"}}, {}, (Q, 2, "nrs_back", "'11'", "range")),
    ("nrs-leg-negative", {(Q, 1): {"nrs_leg": "-1"}}, {}, (Q, 3, "nrs_leg", "'-1'", "range")),
    ("timepoint-code", {(Q, 1): {"timepoint": "6m"}}, {}, (Q, 3, "timepoint", "'6m'", "code")),
    ("followup-before-op", {(Q, 1): {"answer_date": "2015-01-20"}}, {},
     (Q, 3, "answer_date", "'2015-01-20'", "date-order")),
    ("prom-other-patient", {(Q, 2): {"operation_id": "O1"}}, {}, (Q, 4, "operation_id", "'O1'", "reference")),
    ("answer-after-death", {}, {Q: [{**BASE[Q][2], "prom_id": "Q4", "timepoint": "1y",
                                     "answer_date": "2016-06-01"}]},
     (Q, 5, "answer_date", "'2016-06-01'", "date-order")),
    ("satisfaction-range", {(Q, 1): {"satisfaction": "0"}}, {}, (Q, 3, "satisfaction", "'0'", "range")),
    ("clavien-dindo-code", {(C, 0): {"clavien_dindo": "III"}}, {}, (C, 2, "clavien_dindo", "'III'", "code")),
    ("complication-type", {(C, 0): {"type": "bleeding"}}, {}, (C, 2, "type", "'bleeding'", "code")),
    ("complication-before-op", {(C, 0): {"date": "2015-05-01"}}, {}, (C, 2, "date", "'2015-05-01'", "date-order")),
    ("symptomatic-bool", {(C, 0): {"symptomatic": "maybe"}}, {}, (C, 2, "symptomatic", "'maybe'", "type")),
    ("leak-missing", {(IMG, 1): {"leak": ""}}, {}, (IMG, 3, "leak", "(empty)", "required")),
    ("level-not-treated", {(IMG, 1): {"level": "L3"}}, {}, (IMG, 3, "level", "'L3'", "level")),
    ("leak-type-code", {(IMG, 0): {"leak_type": "yeom_d"}}, {}, (IMG, 2, "leak_type", "'yeom_d'", "code")),
    ("modality-code", {(IMG, 0): {"modality": "pet"}}, {}, (IMG, 2, "modality", "'pet'", "code")),
    ("imaging-before-op", {(IMG, 2): {"date": "2015-05-01"}}, {}, (IMG, 4, "date", "'2015-05-01'", "date-order")),
]


def test_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)
    assert {c[3][4] for c in CASES} >= {"required", "type", "range", "code", "pattern", "reference",
                                        "date-order", "conflict", "level"}


@pytest.mark.parametrize(("case", "changes", "extra", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(loaded: str, tmp_path: Path, case: str, changes: dict[tuple[str, int], dict[str, str]],
                   extra: dict[str, list[dict[str, str]]], expected: tuple[str, int, str, str, str]) -> None:
    before = registry_counts(loaded)
    before_data = load_extract(loaded)
    files = write_files(tmp_path / case, changes, extra)
    result = import_files(loaded, "tidy", files, key=KEY, extract_date=EXTRACT_DATE)
    errors = result.report.errors
    got = [(Path(str(r.file)).stem, int(r.row), str(r.column), str(r.value), str(r.rule))
           for r in errors.itertuples(index=False)]
    assert got == [expected], result.report.to_text()
    assert not result.written
    assert registry_counts(loaded) == before
    after = load_extract(loaded)
    for name in before_data.tables:
        assert after.tables[name].equals(before_data.tables[name])


def test_duplicates_and_window_are_warnings(loaded: str, tmp_path: Path) -> None:
    files = write_files(tmp_path / "warn", {(Q, 1): {"answer_date": "2015-03-01"}}, {P: [BASE[P][0]]})
    result = import_files(loaded, "tidy", files, key=KEY, extract_date=EXTRACT_DATE, dry_run=True)
    assert result.report.ok
    warnings = {(Path(str(r.file)).stem, int(r.row), str(r.rule)) for r in result.report.warnings.itertuples()}
    assert warnings == {(P, 4, "duplicate"), (Q, 3, "window")}


def test_error_found_after_earlier_entities_were_written_rolls_everything_back(loaded: str, tmp_path: Path) -> None:
    """The import writes each entity while the next ones are validated: new patients and
    operations are already in the transaction when a later check (a questionnaire of an
    unknown operation) fails.  Nothing stays: no row, no audit entry, no import batch,
    no snapshot."""
    from spinereg.registry.models import ImportBatch, ImportSnapshot

    new_patient = {**BASE["patients"][0], "patient_id": "P9"}
    new_operation = {**BASE["operations"][0], "operation_id": "O9", "patient_id": "P9"}
    orphan = {**BASE["proms"][0], "prom_id": "Q9", "patient_id": "P9", "operation_id": "O404"}
    batches = ImportBatch.objects.using(loaded).count()
    snapshots = ImportSnapshot.objects.using(loaded).count()
    before = registry_counts(loaded)
    files = write_files(tmp_path / "late", None, {"patients": [new_patient], "operations": [new_operation],
                                                  "proms": [orphan]})
    result = import_files(loaded, "tidy", files, key=KEY, extract_date=EXTRACT_DATE)
    assert [str(r) for r in result.report.errors["rule"]] == ["reference"], result.report.to_text()
    assert not result.written
    assert registry_counts(loaded) == before
    assert ImportBatch.objects.using(loaded).count() == batches
    assert ImportSnapshot.objects.using(loaded).count() == snapshots


def test_file_failing_to_map_after_earlier_entities_were_written_rolls_everything_back(
        loaded: str, tmp_path: Path) -> None:
    """Files are read and mapped entity by entity while earlier entities are written:
    the questionnaire file is only read after the new patient and operation are in the
    transaction.  Its prom_id column, read as-is, holds a CPR-like value: the mapping
    stops with an error that hides the value, and nothing stays."""
    from spinereg._errors import SpineregError
    from spinereg.registry.models import ImportBatch

    new_patient = {**BASE["patients"][0], "patient_id": "P9"}
    new_operation = {**BASE["operations"][0], "operation_id": "O9", "patient_id": "P9"}
    cpr_like = {**BASE["proms"][0], "prom_id": "0101901234", "patient_id": "P9", "operation_id": "O9"}
    batches = ImportBatch.objects.using(loaded).count()
    before = registry_counts(loaded)
    files = write_files(tmp_path / "late-map", None, {"patients": [new_patient], "operations": [new_operation],
                                                      "proms": [cpr_like]})
    stored: list[str] = []
    with pytest.raises(SpineregError, match=r"'prom_id' of .*proms\.csv holds 1 value\(s\) that look like CPR") as err:
        import_files(loaded, "tidy", files, key=KEY, extract_date=EXTRACT_DATE,
                     progress=lambda entity, done, total: stored.append(entity))
    assert "0101901234" not in str(err.value)
    assert stored[:2] == ["patients", "operations"]  # written before the file failed to map
    assert registry_counts(loaded) == before
    assert ImportBatch.objects.using(loaded).count() == batches

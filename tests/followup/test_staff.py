"""The staff side of follow-up as data (spinereg.followup.staff): the dashboard equals the study engine's
follow-up table, per site with hand-counted totals and monthly trend; the worklist keeps a site's own
operations; a paper entry's row carries its mode.  On SQLite and PostgreSQL."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import pytest

from spinereg.data import Extract
from spinereg.followup.service import send_invitations
from spinereg.followup.staff import ALL_SITES, dashboard, prom_row, worklist
from spinereg.registry import RegistryWriter, import_extract, load_extract

#: the study tests' 11 patients A..K split over two sites
SITE = {**dict.fromkeys("ABCDEF", "H1"), **dict.fromkeys("GHIJK", "H2")}


def _hand_built(alias: str) -> Extract:
    from tests.study.test_followup import EXTRACT_DATE, build

    x = build()
    ops = x.tables["operations"]
    ops["hospital"] = ops["patient_id"].map(SITE).astype(ops["hospital"].dtype)
    import_extract(alias, x, dataset={"name": "hand-built", "extract_date": EXTRACT_DATE})
    return x


def _counts(table: object, keys: tuple[str, ...]) -> tuple[int, ...]:
    row = table.loc[keys]  # type: ignore[attr-defined]
    return tuple(int(row[c]) for c in ("n", "answered", "died_before_answering", "alive_not_answered",
                                        "not_yet_due"))


def test_dashboard_equals_the_study_engine_s_follow_up_table(registry: str) -> None:
    """On the study tests' hand-built extract (tests/study/test_followup.py, counted by hand there), read back
    from the registry: the dashboard's all-sites rows equal the study engine's follow-up table and HAND."""
    from spinereg.study import load_spec
    from spinereg.study._cohort import follow_up, select_cohort
    from tests.study.test_followup import EXTRACT_DATE, HAND, SPEC

    _hand_built(registry)
    spec, _ = load_spec(SPEC)
    x = load_extract(registry)
    study = follow_up(select_cohort(x, spec), x, spec).set_index("timepoint")
    board = dashboard(registry, date.fromisoformat(EXTRACT_DATE)).by_timepoint
    total = board[board["hospital"] == ALL_SITES].set_index("timepoint")
    for tp, want in HAND.items():
        for cat in ("n", "answered", "died_before_answering", "alive_not_answered", "not_yet_due"):
            assert int(str(total.loc[tp, cat])) == want[cat] == int(str(study.loc[tp, cat])), (tp, cat)
        assert total.loc[tp, "response_rate"] == pytest.approx(want["response_rate"])
        assert float(str(study.loc[tp, "response_rate"])) == pytest.approx(want["response_rate"])


def test_dashboard_per_site_totals_and_monthly_trend(registry: str) -> None:
    _hand_built(registry)
    board = dashboard(registry, date(2018, 12, 31))
    t = board.by_timepoint.set_index(["hospital", "timepoint"])
    # 3m by hand (tests/study/test_followup.py's comments, split by site):
    # H1 (A-F): answered A, B; died before answering C (day 150), E (day 30); alive D, F -> rate 2/4
    # H2 (G-K): answered G, J; alive H, I, K -> rate 2/5; all sites: 4, 2, 5 -> 4/9
    assert _counts(t, ("H1", "3m")) == (6, 2, 2, 2, 0) and t.loc[("H1", "3m"), "response_rate"] == 0.5
    assert _counts(t, ("H2", "3m")) == (5, 2, 0, 3, 0) and t.loc[("H2", "3m"), "response_rate"] == 0.4
    assert _counts(t, (ALL_SITES, "3m")) == (11, 4, 2, 5, 0)
    assert t.loc[(ALL_SITES, "3m"), "response_rate"] == pytest.approx(4 / 9)  # from the sums, not (0.5+0.4)/2
    # 1y: H1 answered A, F; died B, C, D, E.  H2: died H, J; not yet due G, I, K; nobody alive was due: no rate
    assert _counts(t, ("H1", "1y")) == (6, 2, 4, 0, 0) and t.loc[("H1", "1y"), "response_rate"] == 1.0
    assert _counts(t, ("H2", "1y")) == (5, 0, 2, 0, 3) and math.isnan(float(str(t.loc[("H2", "1y"), "response_rate"])))
    assert _counts(t, (ALL_SITES, "1y")) == (11, 2, 6, 0, 3) and t.loc[(ALL_SITES, "1y"), "response_rate"] == 1.0
    # the trend: A-F's 3m windows (operated 2015-01-01) close on day 150 = 2015-05-31; J's (2015-06-01) on
    # 2015-10-29 (30 + 31 + 31 + 30 days to 2015-10-01, then 28 more), answered on day 100
    m = board.by_month.set_index(["month", "hospital", "timepoint"])
    assert _counts(m, ("2015-05", "H1", "3m")) == (6, 2, 2, 2, 0)
    assert _counts(m, ("2015-10", "H2", "3m")) == (1, 1, 0, 0, 0)
    assert list(board.by_month["month"]) == sorted(board.by_month["month"])
    # a site's user: that site only, no totals
    h2 = dashboard(registry, date(2018, 12, 31), ["H2"])
    assert set(h2.by_timepoint["hospital"]) == {"H2"} and set(h2.by_month["hospital"]) == {"H2"}
    assert _counts(h2.by_timepoint.set_index(["hospital", "timepoint"]), ("H2", "3m")) == (5, 2, 0, 3, 0)


def test_worklist_keeps_the_site_s_own_operations(registry: str, tmp_path: Path) -> None:
    from spinereg.registry.models import Operation

    w = RegistryWriter(registry, "sites")
    for n, hospital in ((1, "H1"), (2, "H2"), (3, "H1")):
        w.create("patients", {"patient_id": f"P{n}", "sex": "male", "birth_date": "1950-01-01"})
        w.create("operations", {"operation_id": f"O{n}", "patient_id": f"P{n}", "date": "2026-01-01",
                                "hospital": hospital, "procedure_category": "vertebroplasty"})
    send_invitations(registry, today=date(2026, 3, 10), outbox=tmp_path, base_url="https://r.example")  # 3m due
    # the 3m window closes 2026-05-31: on 2026-05-20 (11 days left) every invitation is on the list
    everyone = worklist(registry, date(2026, 5, 20))
    assert sorted(everyone["operation_id"]) == ["O1", "O2", "O3"]
    h1 = worklist(registry, date(2026, 5, 20), Operation.objects.using(registry).filter(hospital="H1"))
    assert sorted(h1["operation_id"]) == ["O1", "O3"] and set(h1["hospital"]) == {"H1"}
    assert worklist(registry, date(2026, 5, 20), Operation.objects.using(registry).none()).empty


def test_prom_row_takes_the_operation_s_patient_and_a_staff_mode() -> None:
    class Op:
        operation_id, patient_id = "O1", "P1"

    row = prom_row("x:1", Op(), {"timepoint": "3m", "answer_date": "2026-04-01", "eqvas": "70", "odi_1": None,
                                 "mode": "web"}, "phone")
    assert row == {"prom_id": "x:1", "patient_id": "P1", "operation_id": "O1", "timepoint": "3m",
                   "answer_date": "2026-04-01", "eqvas": "70", "mode": "phone"}
    with pytest.raises(ValueError, match="mode 'web'"):
        prom_row("x:2", Op(), {}, "web")

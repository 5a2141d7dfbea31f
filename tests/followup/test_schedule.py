"""The follow-up schedule rule (spinereg.data.follow_up_schedule) on hand-built frames.

Dates counted by hand from an operation on 2026-01-01 (day 0):
baseline [-90, 0]: opens 2025-10-03 (Dec has 31 days, Nov 30, Oct 31: 2025-10-03 is day -90), closes 2026-01-01;
3m [60, 150]: day 59 = 2026-03-01 (Jan 31 + Feb 28 days), day 60 = 2026-03-02, day 150 = 2026-05-31
(120 days to 2026-05-01, then 30 more), day 151 = 2026-06-01; target day 90 = 2026-04-01.
"""

from __future__ import annotations

import pandas as pd
import pytest

from spinereg.data import SCHEDULE_STATUSES, follow_up_schedule

OP = pd.DataFrame({"operation_id": ["O1"], "patient_id": ["P1"], "date": ["2026-01-01"]})
ALIVE = pd.DataFrame({"patient_id": ["P1"], "death_date": [None]})
NO_ANSWERS = pd.DataFrame({"operation_id": [], "answer_date": []})


def status(today: str, *, patients: pd.DataFrame = ALIVE, proms: pd.DataFrame = NO_ANSWERS,
           withdrawn: dict[str, str] | None = None) -> dict[str, str]:
    s = follow_up_schedule(OP, patients, proms, today, withdrawn=withdrawn)
    return dict(zip(s["timepoint"], s["status"], strict=True))


def category(today: str, **kw: pd.DataFrame) -> dict[str, str]:
    s = follow_up_schedule(OP, kw.get("patients", ALIVE), kw.get("proms", NO_ANSWERS), today)
    return dict(zip(s["timepoint"], s["study_category"], strict=True))


def test_windows_and_due_dates_by_hand() -> None:
    s = follow_up_schedule(OP, ALIVE, NO_ANSWERS, "2026-03-10").set_index("timepoint")
    assert list(s.index) == ["baseline", "3m", "1y", "2y"]
    assert s.loc["baseline", "opens"] == pd.Timestamp("2025-10-03")
    assert s.loc["baseline", "closes"] == pd.Timestamp("2026-01-01")
    assert s.loc["3m", "opens"] == pd.Timestamp("2026-03-02")
    assert s.loc["3m", "closes"] == pd.Timestamp("2026-05-31")
    assert s.loc["3m", "due_date"] == pd.Timestamp("2026-04-01")
    assert s.loc["1y", "due_date"] == pd.Timestamp("2027-01-01")


@pytest.mark.parametrize(("today", "want"), [
    ("2025-10-02", "not_yet_due"),  # day -91: before the baseline window
    ("2025-10-03", "due"),          # day -90: opens
    ("2026-01-01", "due"),          # day 0: the last day
    ("2026-01-02", "closed"),       # day 1: closed unanswered
])
def test_baseline_window_edges(today: str, want: str) -> None:
    assert status(today)["baseline"] == want


@pytest.mark.parametrize(("today", "want"), [
    ("2026-03-01", "not_yet_due"),  # day 59
    ("2026-03-02", "due"),          # day 60: opens
    ("2026-05-31", "due"),          # day 150: still open on its last day
    ("2026-06-01", "closed"),       # day 151
])
def test_3m_window_edges(today: str, want: str) -> None:
    got = status(today)
    assert got["3m"] == want
    assert got["1y"] == "not_yet_due"


def test_answer_in_the_window_answers_only_that_time_point() -> None:
    proms = pd.DataFrame({"operation_id": ["O1", "O1"], "answer_date": ["2025-12-20", "2026-03-02"]})  # -12, 60
    got = status("2026-03-10", proms=proms)
    assert got == {"baseline": "answered", "3m": "answered", "1y": "not_yet_due", "2y": "not_yet_due"}
    early = pd.DataFrame({"operation_id": ["O1"], "answer_date": ["2026-03-01"]})  # day 59: no window's
    assert status("2026-03-10", proms=early)["3m"] == "due"
    other = pd.DataFrame({"operation_id": ["O2"], "answer_date": ["2026-03-02"]})  # another operation's answer
    assert status("2026-03-10", proms=other)["3m"] == "due"


def test_death_before_the_window_stops_every_later_time_point() -> None:
    dead = pd.DataFrame({"patient_id": ["P1"], "death_date": ["2026-02-15"]})  # day 45
    got = status("2026-03-10", patients=dead)
    assert got == {"baseline": "closed", "3m": "died", "1y": "died", "2y": "died"}
    # the study engine's categories: alive at the baseline window's end, died before answering the rest
    assert category("2026-03-10", patients=dead) == {
        "baseline": "alive_not_answered", "3m": "died_before_answering", "1y": "died_before_answering",
        "2y": "died_before_answering"}


def test_death_not_known_by_today_is_not_counted_and_answers_after_death_are_disregarded() -> None:
    later = pd.DataFrame({"patient_id": ["P1"], "death_date": ["2026-04-10"]})
    assert status("2026-03-10", patients=later)["3m"] == "due"
    assert status("2026-04-10", patients=later)["3m"] == "died"
    proms = pd.DataFrame({"operation_id": ["O1"], "answer_date": ["2026-04-11"]})  # dated after the death
    assert status("2026-04-20", patients=later, proms=proms)["3m"] == "died"
    proms = pd.DataFrame({"operation_id": ["O1"], "answer_date": ["2026-04-10"]})  # on the day of death
    assert status("2026-04-20", patients=later, proms=proms)["3m"] == "answered"


def test_withdrawal() -> None:
    got = status("2026-03-10", withdrawn={"P1": "2026-03-05"})
    assert got == {"baseline": "closed", "3m": "withdrawn", "1y": "withdrawn", "2y": "withdrawn"}
    assert status("2026-03-04", withdrawn={"P1": "2026-03-05"})["3m"] == "due"  # not yet withdrawn
    assert status("2026-03-10", withdrawn={"P2": "2026-03-05"})["3m"] == "due"  # another patient
    answered = pd.DataFrame({"operation_id": ["O1"], "answer_date": ["2026-03-03"]})
    assert status("2026-03-10", proms=answered, withdrawn={"P1": "2026-03-05"})["3m"] == "answered"


def test_no_patient_rows_means_nobody_died() -> None:
    # the registry passes only the patients with a death date: none at all is the common case
    nobody = pd.DataFrame({"patient_id": [], "death_date": []})
    assert status("2026-03-10", patients=nobody) == {"baseline": "closed", "3m": "due", "1y": "not_yet_due",
                                                     "2y": "not_yet_due"}


def test_every_row_gets_one_known_status() -> None:
    s = follow_up_schedule(OP, ALIVE, NO_ANSWERS, "2026-03-10")
    assert set(s["status"]) <= set(SCHEDULE_STATUSES)
    assert len(s) == 4


def test_study_engine_agrees_on_its_hand_built_cohort() -> None:
    """The study engine's follow-up table and the schedule's study_category count the same patients, on the
    study tests' hand-built 11-patient extract (counted by hand there) with the extract date as today."""
    from spinereg.study import load_spec
    from spinereg.study._cohort import follow_up, select_cohort
    from tests.study.test_followup import EXTRACT_DATE, HAND, SPEC, build

    spec, _ = load_spec(SPEC)
    x = build()
    table = follow_up(select_cohort(x, spec), x, spec).set_index("timepoint")
    windows = {k: (tp.window[0], tp.window[1], tp.target) for k, tp in spec.timepoints.items()}
    s = follow_up_schedule(x["operations"], x["patients"], x["proms"], EXTRACT_DATE, windows=windows)
    for tp, want in HAND.items():
        counts = s.loc[s["timepoint"] == tp, "study_category"].value_counts()
        for cat in ("answered", "died_before_answering", "alive_not_answered", "not_yet_due"):
            study = int(str(table.loc[tp, cat]))
            assert int(counts.get(cat, 0)) == want[cat] == study, (tp, cat)


def test_study_category_on_the_window_s_last_day() -> None:
    # the study engine counts a window ending on the extract date as ended; the schedule still invites that day
    assert category("2026-05-30")["3m"] == "not_yet_due"
    assert category("2026-05-31")["3m"] == "alive_not_answered"
    assert status("2026-05-31")["3m"] == "due"

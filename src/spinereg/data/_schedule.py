"""Follow-up schedule: the state of every (index operation, time point) on a given day.

Pure pandas, no Django: the registry's follow-up invitations
(:mod:`spinereg.followup`) and the study engine's follow-up table follow one rule.

Windows
-------
A time point's window is given in days from the operation (both ends included),
from ``[timepoints]`` of the tidy schema (:func:`spinereg.data.timepoints`)::

    baseline  [-90,   0]  target   0   (before surgery)
    3m        [ 60, 150]  target  90
    1y        [270, 545]  target 365
    2y        [630, 900]  target 730

``opens`` = operation date + first day, ``closes`` = operation date + last day,
``due_date`` = operation date + target day.

Answers
-------
A questionnaire answers a time point when it follows the operation (same
``operation_id``) and its ``answer_date`` falls in the window; an answer dated
after the patient's death is a data error and is disregarded (the study engine's
time-point matching, :func:`spinereg.study` ``match_timepoints``).

Status on day ``today`` (tested in this order; every row gets exactly one)
--------------------------------------------------------------------------
* ``answered``: an answer in the window;
* ``died``: not answered, and the patient died on or before the window's last
  day and on or before ``today`` (a death not yet known by ``today`` is not
  counted) — "died before answering";
* ``withdrawn``: not answered, not died, and consent was withdrawn on or before
  ``today`` and on or before the window's last day;
* ``not_yet_due``: ``today`` is before the window opens;
* ``due``: the window is open (``opens <= today <= closes``): invite, remind;
* ``closed``: the window has ended unanswered, patient alive and not withdrawn.

Only ``due`` rows are invited; ``answered``, ``died`` and ``withdrawn`` stop
invitations and reminders.

The study engine's follow-up table (``study_category``)
-------------------------------------------------------
Each row also gets the category of the study engine's follow-up table with
``today`` as the extract date (the same death and answer rule; withdrawal is
not a study category):

* ``answered`` = ``answered``;
* ``died_before_answering`` = not answered, died on or before the window's last
  day and on or before ``today``;
* ``not_yet_due`` = otherwise, when the window's last day is after ``today``;
* ``alive_not_answered`` = otherwise (the window ended on or before ``today``).

The one difference: on the window's last day an unanswered time point is
still ``due`` (the patient may answer that day), while the study engine,
reading an extract made that day, already counts it as ``alive_not_answered``.

Missing data: an operation without a date gets no rows; a questionnaire
without an answer date answers nothing; an unknown death date means alive.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from spinereg.data._schema import timepoints as schema_timepoints

__all__ = ["SCHEDULE_COLUMNS", "SCHEDULE_STATUSES", "STUDY_CATEGORIES", "follow_up_schedule"]

SCHEDULE_STATUSES = ("answered", "died", "withdrawn", "not_yet_due", "due", "closed")
STUDY_CATEGORIES = ("answered", "died_before_answering", "alive_not_answered", "not_yet_due")
SCHEDULE_COLUMNS = ["operation_id", "patient_id", "timepoint", "operation_date", "opens", "due_date", "closes",
                    "status", "study_category"]


def _dates(values: Any) -> npt.NDArray[np.datetime64]:
    """Dates as datetime64[ns] (ISO text parsed fast; anything unparsable is NaT)."""
    series = pd.Series(values)
    if not pd.api.types.is_datetime64_any_dtype(series):
        series = pd.to_datetime(series.astype("string"), errors="coerce", format="ISO8601")
    return np.asarray(series.to_numpy(dtype="datetime64[ns]"))


def follow_up_schedule(operations: pd.DataFrame, patients: pd.DataFrame, proms: pd.DataFrame,
                       today: date | pd.Timestamp | str, *,
                       windows: Mapping[str, tuple[int, int, int]] | None = None,
                       withdrawn: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The status of every (operation, time point) on ``today`` (see the module docstring).

    Parameters
    ----------
    operations : DataFrame
        ``operation_id, patient_id, date`` (each operation is an index operation).
    patients : DataFrame
        ``patient_id, death_date``.
    proms : DataFrame
        ``operation_id, answer_date``.
    today : date
        The day the schedule is evaluated (the extract date for the study engine).
    windows : mapping, optional
        Time point -> ``(first day, last day, target day)`` from the operation;
        default the schema's ``[timepoints]``.
    withdrawn : mapping, optional
        Patient id -> date consent was withdrawn (patients not listed have not withdrawn).

    Returns
    -------
    DataFrame
        :data:`SCHEDULE_COLUMNS`, one row per operation and time point: the operations in
        the order given, each with its time points in the order of ``windows``.  ``status`` is
        one of :data:`SCHEDULE_STATUSES`, ``study_category`` one of :data:`STUDY_CATEGORIES`.
    """
    if windows is None:
        windows = {k: (tp.window[0], tp.window[1], tp.target) for k, tp in schema_timepoints().items()}
    day = pd.Timestamp(today).normalize().to_datetime64().astype("datetime64[ns]")
    op_date_all = _dates(operations["date"].to_numpy())
    keep = ~np.isnat(op_date_all)
    op_id = operations["operation_id"].astype(str).to_numpy()[keep]
    pat_id = operations["patient_id"].astype(str).to_numpy()[keep]
    op_date = op_date_all[keep]
    n = len(op_id)
    # each operation's patient's death (first row per patient) and withdrawal, by position
    pats = pd.Index(patients["patient_id"].astype(str).to_numpy())
    first = ~pats.duplicated()
    pat_index = pats[first]
    death_of = _dates(patients["death_date"].to_numpy())[first]
    where = pat_index.get_indexer(pd.Index(pat_id))
    nat = np.full(n, np.datetime64("NaT", "ns"))
    death = np.where(where >= 0, death_of[np.maximum(where, 0)], nat) if len(death_of) else nat
    withdrawal = nat
    if withdrawn:
        w_index = pd.Index([str(k) for k in withdrawn])
        w_dates = _dates(list(withdrawn.values()))
        at = w_index.get_indexer(pd.Index(pat_id))
        withdrawal = np.where(at >= 0, w_dates[np.maximum(at, 0)], withdrawal)
    # answers: same operation (by position), dated, not after the patient's death; day from the operation
    ops_index = pd.Index(op_id)
    q_ops = pd.Index(proms["operation_id"].astype(str).to_numpy())
    pos = ops_index.get_indexer(q_ops) if len(proms) else np.zeros(0, dtype=np.int64)
    answer = _dates(proms["answer_date"].to_numpy()) if len(proms) else np.zeros(0, "datetime64[ns]")
    ok = (pos >= 0) & ~np.isnat(answer)
    pos, answer = pos[ok], answer[ok]
    a_death = death[pos]
    ok = ~(answer > a_death)  # NaT compares False: alive, or death unknown
    pos, answer = pos[ok], answer[ok]
    q_day = (answer - op_date[pos]).astype("timedelta64[D]").astype(np.int64)

    one_day = np.timedelta64(1, "D")
    known_dead = ~np.isnat(death) & (death <= day)
    names = list(windows)
    k = len(names)
    status = np.empty((n, k), dtype=np.int8)  # codes into SCHEDULE_STATUSES / STUDY_CATEGORIES
    category = np.empty((n, k), dtype=np.int8)
    opens_all = np.empty((n, k), dtype="datetime64[ns]")
    due_all = np.empty((n, k), dtype="datetime64[ns]")
    closes_all = np.empty((n, k), dtype="datetime64[ns]")
    for j, name in enumerate(names):
        lo, hi, target = windows[name]
        opens = op_date + lo * one_day
        closes = op_date + hi * one_day
        answered = np.zeros(n, dtype=bool)
        answered[pos[(q_day >= lo) & (q_day <= hi)]] = True
        died = ~answered & known_dead & (death <= closes)
        left = ~answered & ~died & ~np.isnat(withdrawal) & (withdrawal <= day) & (withdrawal <= closes)
        rest = ~answered & ~died & ~left
        early = rest & (day < opens)
        late = rest & (day > closes)
        open_now = rest & ~early & ~late
        status[:, j] = np.select([answered, died, left, early, open_now], [0, 1, 2, 3, 4], default=5)
        # the study engine's follow-up table (withdrawal is not one of its categories)
        study_not_due = ~answered & ~died & (closes > day)
        category[:, j] = np.select([answered, died, study_not_due], [0, 1, 3], default=2)
        opens_all[:, j], due_all[:, j], closes_all[:, j] = opens, op_date + target * one_day, closes
    # one row per operation and time point: operations in input order, time points in window order
    columns = {
        "operation_id": np.repeat(op_id, k), "patient_id": np.repeat(pat_id, k),
        "timepoint": np.tile(np.array(names, dtype=object), n), "operation_date": np.repeat(op_date, k),
        "opens": opens_all.ravel(), "due_date": due_all.ravel(), "closes": closes_all.ravel(),
        "status": np.asarray(SCHEDULE_STATUSES, dtype=object)[status.ravel()],
        "study_category": np.asarray(STUDY_CATEGORIES, dtype=object)[category.ravel()]}
    out = pd.DataFrame(index=pd.RangeIndex(n * k))
    for name in SCHEDULE_COLUMNS:  # a block per column: no copy into one block of all text columns
        out[name] = columns[name]
    return out

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
import pandas as pd

from spinereg.data._schema import timepoints as schema_timepoints

__all__ = ["SCHEDULE_COLUMNS", "SCHEDULE_STATUSES", "STUDY_CATEGORIES", "follow_up_schedule"]

SCHEDULE_STATUSES = ("answered", "died", "withdrawn", "not_yet_due", "due", "closed")
STUDY_CATEGORIES = ("answered", "died_before_answering", "alive_not_answered", "not_yet_due")
SCHEDULE_COLUMNS = ["operation_id", "patient_id", "timepoint", "operation_date", "opens", "due_date", "closes",
                    "status", "study_category"]


def _dates(values: Any) -> pd.Series:
    return pd.to_datetime(pd.Series(values), errors="coerce").astype("datetime64[ns]")


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
        :data:`SCHEDULE_COLUMNS`, one row per operation and time point, ordered by
        operation and window.  ``status`` is one of :data:`SCHEDULE_STATUSES`,
        ``study_category`` one of :data:`STUDY_CATEGORIES`.
    """
    if windows is None:
        windows = {k: (tp.window[0], tp.window[1], tp.target) for k, tp in schema_timepoints().items()}
    day = pd.Timestamp(today).normalize()
    ops = pd.DataFrame({"operation_id": operations["operation_id"].astype(str).to_numpy(),
                        "patient_id": operations["patient_id"].astype(str).to_numpy(),
                        "operation_date": _dates(operations["date"].to_numpy()).to_numpy()})
    ops = ops[ops["operation_date"].notna()].reset_index(drop=True)
    deaths = pd.Series(_dates(patients["death_date"].to_numpy()).to_numpy(),
                       index=patients["patient_id"].astype(str).to_numpy())
    deaths = deaths[~deaths.index.duplicated()]
    death = pd.Series(ops["patient_id"].map(deaths).to_numpy(), dtype="datetime64[ns]")
    gone = pd.Series(dtype="datetime64[ns]")
    if withdrawn:
        gone = pd.Series(_dates(list(withdrawn.values())).to_numpy(), index=[str(k) for k in withdrawn])
    withdrawal = pd.Series(ops["patient_id"].map(gone).to_numpy() if len(gone) else pd.NaT,
                           index=ops.index, dtype="datetime64[ns]")

    # answers: same operation, dated, not after the patient's death; day from the operation
    q = pd.DataFrame({"operation_id": proms["operation_id"].astype(str).to_numpy(),
                      "answer_date": _dates(proms["answer_date"].to_numpy()).to_numpy()})
    q = q[q["answer_date"].notna()].merge(ops[["operation_id", "operation_date"]].drop_duplicates("operation_id"),
                                          on="operation_id", how="inner")
    q_death = pd.Series(q["operation_id"].map(ops.drop_duplicates("operation_id").set_index("operation_id")[
        "patient_id"]).map(deaths).to_numpy(), dtype="datetime64[ns]")
    q = q[~(q["answer_date"].to_numpy() > q_death.to_numpy())]
    q_day = (q["answer_date"] - q["operation_date"]).dt.days.to_numpy()

    known_dead = (death.notna() & (death <= day)).to_numpy(dtype=bool)
    parts = []
    for order, (name, (lo, hi, target)) in enumerate(windows.items()):
        opens = ops["operation_date"] + pd.to_timedelta(lo, unit="D")
        closes = ops["operation_date"] + pd.to_timedelta(hi, unit="D")
        answered_ops = q.loc[(q_day >= lo) & (q_day <= hi), "operation_id"].unique()
        answered = ops["operation_id"].isin(answered_ops).to_numpy(dtype=bool)
        died = ~answered & known_dead & (death <= closes).fillna(False).to_numpy(dtype=bool)
        left = ~answered & ~died & (withdrawal.notna() & (withdrawal <= day) & (withdrawal <= closes)).to_numpy(
            dtype=bool)
        rest = ~answered & ~died & ~left
        early = rest & (day < opens).to_numpy(dtype=bool)
        late = rest & (day > closes).to_numpy(dtype=bool)
        open_now = rest & ~early & ~late
        status = np.select([answered, died, left, early, open_now], list(SCHEDULE_STATUSES[:5]), default="closed")
        # the study engine's follow-up table (withdrawal is not one of its categories)
        study_not_due = ~answered & ~died & (closes > day).to_numpy(dtype=bool)
        category = np.select([answered, died, study_not_due],
                             ["answered", "died_before_answering", "not_yet_due"], default="alive_not_answered")
        parts.append(pd.DataFrame({
            "operation_id": ops["operation_id"], "patient_id": ops["patient_id"], "timepoint": name,
            "operation_date": ops["operation_date"], "opens": opens,
            "due_date": ops["operation_date"] + pd.to_timedelta(target, unit="D"), "closes": closes,
            "status": status, "study_category": category, "_order": order}))
    if not parts:
        return pd.DataFrame(columns=SCHEDULE_COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    out = out.sort_values(["operation_id", "_order"], kind="stable", ignore_index=True)
    return out[SCHEDULE_COLUMNS]

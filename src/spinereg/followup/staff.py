"""The staff side of follow-up, as data: the non-responder worklist and the completeness dashboard of
a set of sites, a patient's follow-up status, and a paper (or phone) questionnaire's row.

The web pages (:mod:`spinereg.followup.staff_views`) render these; the rules are
:mod:`spinereg.followup.service`'s (:func:`~spinereg.followup.service.non_responders`,
:func:`~spinereg.followup.service.completeness`): this module only restricts them to what a user
may see and adds totals.

Completeness (the dashboard) per site (``hospital``) and time point, with ``today`` as the extract
date, in the study engine's four categories: ``answered``, ``died_before_answering``,
``alive_not_answered``, ``not_yet_due``; ``n`` their sum; ``response_rate`` = answered /
(answered + alive_not_answered), NaN when that is 0 (nobody alive was due).  The ``All sites``
rows of :func:`dashboard` add the sites' counts and compute the rate from the sums (not the mean of
the sites' rates).  The monthly trend has the same columns per ``month`` in which windows closed.

Speed: both run :func:`spinereg.followup.service.schedule` over the whole registry (every
operation, every time point) at each page view; a national registry of 1,000,000 operations takes
seconds (see docs/followup.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from spinereg.followup.service import COMPLETENESS_COLUMNS, completeness, non_responders

__all__ = [
    "ALL_SITES",
    "COUNTS",
    "PAPER_MODES",
    "Dashboard",
    "dashboard",
    "patient_followup",
    "prom_row",
    "visible_operations",
    "worklist",
]

#: The hospital value of the rows that add up every site shown.
ALL_SITES = "*"
#: The count columns of the dashboard, in order.
COUNTS = ["n", "answered", "died_before_answering", "alive_not_answered", "not_yet_due"]
#: Modes a staff member may give a questionnaire they enter (``proms.mode``).
PAPER_MODES = ("paper", "phone")
_CHUNK = 500


def visible_operations(operation_ids: Iterable[str], visible: Any) -> set[str]:
    """Those of ``operation_ids`` in the queryset of operations ``visible`` (e.g. the user's site's:
    :func:`spinereg.web.permissions.operations_of`); ``None``: all of them (a national role)."""
    ids = sorted({str(i) for i in operation_ids})
    if visible is None:
        return set(ids)
    out: set[str] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        out.update(str(i) for i in visible.filter(operation_id__in=chunk).values_list("operation_id", flat=True))
    return out


def worklist(alias: str, today: date, visible: Any = None) -> pd.DataFrame:
    """:func:`~spinereg.followup.service.non_responders` on ``today``, restricted to the operations in
    ``visible`` (a queryset of operations; ``None``: every operation)."""
    out = non_responders(alias, today)
    if visible is not None and len(out):
        keep = visible_operations(out["operation_id"], visible)
        out = out[out["operation_id"].isin(keep)].reset_index(drop=True)
    return out


def _with_totals(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """``table`` plus, when it holds more than one site, one ``ALL_SITES`` row per ``keys`` value with
    the sites' counts summed and the rate computed from the sums."""
    if table.empty or table["hospital"].nunique() < 2:
        return table
    total = table.groupby(keys, sort=False, as_index=False)[COUNTS].sum()
    denominator = total["answered"] + total["alive_not_answered"]
    total["response_rate"] = (total["answered"] / denominator.where(denominator > 0)).astype(float)
    total.insert(0, "hospital", ALL_SITES)
    return pd.concat([table, total[table.columns]], ignore_index=True)


@dataclass(frozen=True)
class Dashboard:
    """The completeness of the sites shown (``by_timepoint``: :data:`COMPLETENESS_COLUMNS`) and its
    monthly trend (``by_month``: the same with ``month`` after ``timepoint``), each with
    :data:`ALL_SITES` rows when there are several sites."""

    today: date
    by_timepoint: pd.DataFrame
    by_month: pd.DataFrame


def dashboard(alias: str, today: date, hospitals: Iterable[str] | None = None) -> Dashboard:
    """The completeness dashboard on ``today`` for the sites ``hospitals`` (``None``: every site)."""
    now = completeness(alias, today)
    trend = completeness(alias, today, by_month=True)
    if hospitals is not None:
        wanted = {str(h) for h in hospitals}
        now = now[now["hospital"].isin(wanted)].reset_index(drop=True)
        trend = trend[trend["hospital"].isin(wanted)].reset_index(drop=True)
    return Dashboard(today, _with_totals(now, ["timepoint"]),
                     _with_totals(trend, ["month", "timepoint"]).sort_values(
                         ["month"], kind="stable", ignore_index=True))


def patient_followup(alias: str, patient_id: str, operation_ids: Iterable[str], today: date) -> dict[str, Any]:
    """A patient's follow-up on ``today``: consent events (newest first), whether an e-mail address is
    recorded (never the address), and the schedule of the given operations with their invitations."""
    from spinereg.followup.models import Consent, Contact, Invitation
    from spinereg.followup.service import schedule

    ops = {str(o) for o in operation_ids}
    consents = list(Consent.objects.using(alias).filter(patient_id=patient_id).order_by("-at", "-pk")
                    .values("status", "on", "at", "by"))
    contact = Contact.objects.using(alias).filter(patient_id=patient_id).first()
    plan = schedule(alias, today)
    plan = plan[plan["operation_id"].isin(ops)]
    invs = {(i.operation_id, i.timepoint): i for i in Invitation.objects.using(alias).filter(operation_id__in=ops)}
    rows = []
    for r in plan.sort_values(["operation_id", "due_date"]).to_dict("records"):
        inv = invs.get((r["operation_id"], r["timepoint"]))
        rows.append({"operation_id": r["operation_id"], "timepoint": r["timepoint"],
                     "due_date": r["due_date"].date(), "closes": r["closes"].date(), "status": r["status"],
                     "invitation": inv.status if inv else "", "channel": inv.channel if inv else "",
                     "reference": inv.reference if inv else ""})
    return {"consents": consents, "consent": consents[0]["status"] if consents else "",
            "has_email": bool(contact and contact.email), "schedule": rows}


def prom_row(prom_id: str, operation: Any, values: Mapping[str, Any], mode: str) -> dict[str, Any]:
    """The questionnaire row of a staff entry: the operation's patient, ``mode`` (:data:`PAPER_MODES`)
    and the non-empty ``values`` (time point, answer date, item answers as given)."""
    if mode not in PAPER_MODES:
        raise ValueError(f"mode {mode!r}: use {' or '.join(PAPER_MODES)}")
    return {"prom_id": prom_id, "patient_id": str(operation.patient_id), "operation_id": str(operation.operation_id),
            **{k: v for k, v in values.items() if v not in (None, "")}, "mode": mode}


assert COMPLETENESS_COLUMNS[2:] == [*COUNTS, "response_rate"]

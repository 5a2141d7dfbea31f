"""Complementary (secondary) small-cell suppression, and the figures withheld to protect small groups.

Primary suppression (:class:`~spinereg.report._format.Suppression`) hides a
count from 1 to ``threshold - 1``.  Where the report also shows a total that
the hidden count is part of, the count could be calculated back by
subtraction; the rules here stop that.  They look only at the numbers shown
(never at the hidden value itself), so which cells are hidden gives nothing
away, and they are deterministic.

* Rows adding up to a shown total (the follow-up counts of a time point add
  up to its patients; the levels of a Table 1 variable add up to its n): when
  exactly one cell of the row is hidden, the smallest other non-zero cell
  (the first in column order on a tie) is hidden too (:func:`complementary`).
* The cohort flow: a selection step that excluded 1 to ``threshold - 1``
  operations, or lost 1 to ``threshold - 1`` patients, is merged with the
  next step (the previous one for the last step), as often as needed, so
  the flow shows one combined exclusion instead of a small one
  (:func:`flow_steps`).  A step whose remaining count is hidden while the
  count before it is shown also hides its excluded count.
* Individual-patient figures: drawn only when every time point drawn has at
  least ``threshold`` patients (:func:`individual_withheld`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spinereg.report._format import Suppression, is_missing

__all__ = [
    "SECONDARY_NOTE",
    "FlowStep",
    "complementary",
    "flow_steps",
    "individual_withheld",
    "require_baseline_of",
    "survival_withheld",
]

#: Footnote of a cell hidden by complementary suppression.
SECONDARY_NOTE = "hidden so that a count below the suppression threshold cannot be calculated back from the total"


def _int(x: Any) -> int | None:
    return None if is_missing(x) else int(x)


def complementary(cells: Sequence[Any], sup: Suppression) -> set[int]:
    """Positions of ``cells`` (counts adding up to a shown total) to hide as well as the suppressed ones.

    When exactly one cell is suppressed, the smallest other non-zero cell
    (the first on a tie); otherwise none.
    """
    if not sup.on:
        return set()
    hidden = [i for i, c in enumerate(cells) if sup.hides(c)]
    if len(hidden) != 1:
        return set()
    others = [(v, i) for i, c in enumerate(cells) if i != hidden[0] and (v := _int(c)) is not None and v > 0]
    return {min(others)[1]} if others else set()


@dataclass(frozen=True)
class FlowStep:
    """One shown step of the cohort flow: one selection step, or several merged.

    Attributes
    ----------
    steps : tuple of str
        The ``flow`` table's step names shown in this step.
    n_operations, n_patients : Any
        Remaining after the (last) step.
    excluded : Any
        Operations excluded by the steps together (None for the first row).
    reasons : tuple of str
        The reasons of the steps, in order.
    excluded_hidden : bool
        The excluded count is hidden as well (the remaining count is
        suppressed and the count before it is not).
    """

    steps: tuple[str, ...]
    n_operations: Any
    n_patients: Any
    excluded: Any
    reasons: tuple[str, ...]
    excluded_hidden: bool = False

    @property
    def merged(self) -> bool:
        return len(self.steps) > 1


def _lost(before: FlowStep, after: FlowStep) -> int | None:
    a, b = _int(before.n_patients), _int(after.n_patients)
    return None if a is None or b is None else a - b


def _small(before: FlowStep, after: FlowStep, sup: Suppression) -> bool:
    return sup.hides(after.excluded) or sup.hides(_lost(before, after))


def _merge(a: FlowStep, b: FlowStep) -> FlowStep:
    ea, eb = _int(a.excluded), _int(b.excluded)
    return FlowStep(a.steps + b.steps, b.n_operations, b.n_patients, None if ea is None or eb is None else ea + eb,
                    a.reasons + b.reasons)


def flow_steps(rows: Sequence[Mapping[str, Any]], sup: Suppression, *,
               require_baseline: bool | None = None) -> list[FlowStep]:
    """The steps of the ``flow`` table as the report shows them.

    Parameters
    ----------
    rows : sequence of mapping
        The ``flow`` table of ``results.json``.
    sup : Suppression
        Small-cell suppression; when on, small exclusions are merged with a
        neighbouring step (see the module docstring).
    require_baseline : bool or None
        Whether the spec required baseline questionnaires; when False, the
        ``baseline`` step (which then excludes nobody) is left out.
    """
    steps = [FlowStep((str(r.get("step") or ""),), r.get("n_operations"), r.get("n_patients"),
                      None if i == 0 else r.get("excluded"), () if i == 0 else (str(r.get("reason") or ""),))
             for i, r in enumerate(rows)]
    if require_baseline is False and len(steps) > 1 and steps[-1].steps == ("baseline",) and \
            not _int(steps[-1].excluded):
        steps.pop()
    if not sup.on:
        return steps
    while True:
        small = next((i for i in range(1, len(steps)) if _small(steps[i - 1], steps[i], sup)), None)
        if small is None or len(steps) <= 2:
            break
        if small + 1 < len(steps):
            steps[small:small + 2] = [_merge(steps[small], steps[small + 1])]
        else:
            steps[small - 1:small + 1] = [_merge(steps[small - 1], steps[small])]
    out = [steps[0]] if steps else []
    for before, after in itertools.pairwise(steps):
        withheld = sup.hides(after.n_operations) and not sup.hides(before.n_operations) and \
            not sup.hides(after.excluded)
        out.append(FlowStep(after.steps, after.n_operations, after.n_patients, after.excluded, after.reasons,
                            withheld))
    return out


def require_baseline_of(results: Mapping[str, Any]) -> bool | None:
    """Whether the study spec required baseline questionnaires (None when ``results.json`` holds no spec)."""
    spec = (results.get("study") or {}).get("spec")
    cohort = spec.get("cohort") if isinstance(spec, Mapping) else None
    if not isinstance(cohort, Mapping) or "require_baseline" not in cohort:
        return None
    return bool(cohort.get("require_baseline"))


def individual_withheld(results: Mapping[str, Any], outcome: str, sup: Suppression) -> list[str]:
    """Time points at which fewer than ``threshold`` patients have a score of ``outcome`` (none when off).

    The individual-trajectory figure of the outcome is drawn only when this
    is empty: it would show each of those patients' values.
    """
    if not sup.on:
        return []
    tables = results.get("tables") or {}
    cases: dict[str, set[str]] = {}
    for r in tables.get("scores") or []:
        if r.get("outcome") == outcome and r.get("timepoint") is not None and not is_missing(r.get("value")):
            cases.setdefault(str(r["timepoint"]), set()).add(str(r.get("case")))
    order = [str(t.get("name")) for t in results.get("timepoints") or []]
    small = [tp for tp, cs in cases.items() if len(cs) < sup.threshold]
    return sorted(small, key=lambda tp: (order.index(tp) if tp in order else len(order), tp))


def survival_withheld(results: Mapping[str, Any], sup: Suppression) -> bool:
    """Whether the survival curve describes fewer than ``threshold`` patients (then it is not drawn)."""
    tables = results.get("tables") or {}
    median = (tables.get("survival_median") or [{}])[0]
    n = median.get("n")
    if is_missing(n):
        at_risk = tables.get("survival_at_risk") or []
        n = at_risk[0].get("n_risk") if at_risk else None
    return sup.hides(n)

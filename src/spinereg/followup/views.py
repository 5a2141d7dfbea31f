"""The patient's questionnaire page ``/q/<token>/``: no login, single use, expiring, rate-limited.

The token is looked up by its SHA-256 (the database has no clear token).  Unknown
token: 404; used (answered) or expired or stopped: 410, with a neutral page saying
whom to contact.  The form is generated from the instrument definitions
(:mod:`spinereg.instruments`) with their neutral labels, or a site's licensed wording and its EQ-5D
version (:mod:`spinereg.followup.wording`); a submission becomes one
questionnaire row through :class:`spinereg.registry.RegistryWriter` (the import's
validation, audited, actor ``patient:<reference>``) and the invitation is marked
answered and used, audited, in the same request.  The page shows nothing that
identifies the patient: no name, no CPR number, no pseudonym, no operation.

Draft: "Save and continue later" keeps the answers given so far on the invitation (checked
against the items' ranges; the audit entry says how many, never which); the link shows them
again until the answers are sent.

Rate limit: at most :data:`RATE_LIMIT` requests per client address per
:data:`RATE_WINDOW` seconds to ``/q/`` (Django's cache: per server process with the
default local-memory cache), then 429.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import render
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from spinereg._errors import SpineregError
from spinereg.followup._audit import audit, audited
from spinereg.followup.service import hash_token
from spinereg.instruments import get_instrument

__all__ = ["INSTRUMENTS", "RATE_LIMIT", "RATE_WINDOW", "item_column", "questionnaire"]

#: The instruments of the patient's form, in order.
INSTRUMENTS = ("eq5d3l", "eqvas", "odi", "nrs_back", "nrs_leg")
RATE_LIMIT = 60
RATE_WINDOW = 600
_PROM_COLUMNS_WITH_PREFIX = ("eq5d3l", "eq5d5l")


@dataclass(frozen=True)
class Field:
    name: str  # the questionnaire column
    label: str
    min: int
    max: int
    choices: tuple[int, ...]  # radio buttons; empty: a number field
    value: str = ""


def item_column(instrument: str, item_id: str) -> str:
    """The proms column of an instrument's item (the patient page's and the paper form's field name)."""
    return f"{instrument}_{item_id.lower()}" if instrument in _PROM_COLUMNS_WITH_PREFIX else item_id


def _sections(values: dict[str, str], instruments: tuple[str, ...] = INSTRUMENTS,
              language: str | None = None) -> list[tuple[str, list[Field]]]:
    """The page's sections: one per instrument, its items labelled in ``language`` from the site's
    wording files, else with their neutral labels (:func:`spinereg.followup.wording.item_labels`)."""
    from spinereg.followup.wording import item_labels

    out = []
    for inst_id in instruments:
        inst = get_instrument(inst_id)
        labels = item_labels(inst_id, language)
        fields = []
        for item in inst.items:
            col = item_column(inst_id, item.id)
            radios = tuple(range(item.min, item.max + 1)) if item.max - item.min <= 10 else ()
            fields.append(Field(col, labels[item.id], item.min, item.max, radios, values.get(col, "")))
        out.append((inst.name, fields))
    return out


def _client(request: HttpRequest) -> str:
    return str(request.META.get("REMOTE_ADDR", "unknown"))


def _limited(request: HttpRequest) -> bool:
    key = "spinereg-q:" + hashlib.sha256(_client(request).encode()).hexdigest()[:32]
    if cache.add(key, 1, RATE_WINDOW):
        return False
    try:
        n = cache.incr(key)
    except ValueError:  # expired in between
        cache.add(key, 1, RATE_WINDOW)
        return False
    return int(n) > RATE_LIMIT


def _gone(request: HttpRequest, kind: str, status: int) -> HttpResponse:
    return render(request, "followup/gone.html", {"kind": kind}, status=status)


def questionnaire(request: HttpRequest, token: str) -> HttpResponse:
    """The questionnaire of one invitation (see the module docstring)."""
    from spinereg.followup.models import Invitation

    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    if _limited(request):
        return render(request, "followup/gone.html", {"kind": "busy"}, status=429)
    inv = Invitation.objects.filter(token_hash=hash_token(token)).first() if token.isascii() else None
    if inv is None:
        return _gone(request, "unknown", 404)
    if inv.used_at is not None or inv.status == "answered":
        return _gone(request, "used", 410)
    if inv.status in ("expired", "stopped") or inv.expires_at <= datetime.now(UTC):
        return _gone(request, "expired", 410)
    values: dict[str, str] = _draft(inv)
    instruments, language = _instruments_of(inv), get_language()
    errors: list[str] = []
    saved = False
    if request.method == "POST":
        answers, values, errors = _read(request, partial=request.POST.get("action") == "save",
                                        instruments=instruments)
        if not errors and request.POST.get("action") == "save":
            _save_draft(inv, values)
            saved = True
        elif not errors:
            from django.db import transaction

            from spinereg._errors import DatabaseError

            try:
                # one transaction claims the invitation and writes the answers: a second submission of the same
                # link (two tabs, a double click) waits for the first (PostgreSQL: the row lock; SQLite: the
                # write lock its immediate transaction takes), then finds the invitation used and stores nothing
                with transaction.atomic():
                    if not Invitation.objects.select_for_update().filter(pk=inv.pk, used_at__isnull=True).exists():
                        return _gone(request, "used", 410)
                    _save(inv, answers)
            except DatabaseError:  # the database is unreachable (restarting): nothing stored, the link stays valid
                return _gone(request, "busy", 503)
            except SpineregError as exc:
                errors = [_("The answers could not be saved: %(reason)s") % {"reason": _reason(exc)}]
            else:
                return render(request, "followup/thanks.html", {})
    return render(request, "followup/questionnaire.html",
                  {"sections": _sections(values, instruments, language), "errors": errors, "saved": saved},
                  status=400 if errors else 200)


def _draft(inv: Any) -> dict[str, str]:
    import json

    try:
        doc = json.loads(inv.draft) if inv.draft else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in doc.items()} if isinstance(doc, dict) else {}


def _save_draft(inv: Any, values: dict[str, str]) -> None:
    """Keep the answers given so far (audited: how many, never which)."""
    import json

    with audited("default"):
        inv.draft = json.dumps(values, sort_keys=True)
        inv.save(update_fields=["draft"])
        audit("default", "update", "invitations", inv.pk, None, {"draft_answers": len(values)},
              who=f"patient:{inv.reference}")


def _reason(exc: SpineregError) -> str:
    # the writer's messages name fields and values of this form only (integers); never a CPR number
    from spinereg.data import redact_cpr

    return redact_cpr(str(exc).splitlines()[0])


def _instruments_of(inv: Any) -> tuple[str, ...]:
    """The instruments of the invitation's site (:func:`spinereg.followup.wording.patient_instruments`)."""
    from spinereg.followup.wording import patient_instruments
    from spinereg.registry.models import Operation

    hospital = Operation.objects.filter(operation_id=inv.operation_id).values_list("hospital", flat=True).first()
    return patient_instruments(hospital)


def _read(request: HttpRequest, *, partial: bool = False, instruments: tuple[str, ...] = INSTRUMENTS,
          ) -> tuple[dict[str, int | None], dict[str, str], list[str]]:
    """The answers of the form, checked against each item's range (``partial``: a draft, may be empty)."""
    answers: dict[str, int | None] = {}
    values: dict[str, str] = {}
    errors: list[str] = []
    given = 0
    for _name, fields in _sections({}, instruments):
        for f in fields:
            raw = str(request.POST.get(f.name, "")).strip()[:8]
            if raw == "":
                answers[f.name] = None
                continue
            try:
                v = int(raw)
            except ValueError:
                errors.append(_("%(label)s: give a whole number from %(min)d to %(max)d.")
                              % {"label": f.label, "min": f.min, "max": f.max})
                continue
            if not f.min <= v <= f.max:
                errors.append(_("%(label)s: give a whole number from %(min)d to %(max)d.")
                              % {"label": f.label, "min": f.min, "max": f.max})
                continue
            answers[f.name], values[f.name] = v, str(v)
            given += 1
    if not errors and given == 0 and not partial:
        errors.append(_("Please answer at least one question."))
    return answers, values, errors


def _save(inv: Any, answers: dict[str, int | None]) -> None:
    from django.db import transaction

    from spinereg.registry import RegistryWriter
    from spinereg.registry.models import Dataset, Operation

    op = Operation.objects.filter(operation_id=inv.operation_id).first()
    if op is None:
        raise SpineregError("the operation of this invitation is no longer in the registry")
    dataset = Dataset.objects.get(pk=op.dataset_id).name if op.dataset_id is not None else "questionnaires"
    now = datetime.now(UTC)
    row: dict[str, Any] = {"prom_id": f"q-{inv.reference}", "patient_id": inv.patient_id,
                           "operation_id": inv.operation_id, "timepoint": inv.timepoint,
                           "answer_date": now.date().isoformat(), "mode": "web",
                           **{k: v for k, v in answers.items() if v is not None}}
    with transaction.atomic():
        RegistryWriter("default", dataset, who=f"patient:{inv.reference}").create("proms", row)
        with audited("default"):
            old = {"status": inv.status, "used_at": None}
            inv.status, inv.used_at, inv.draft = "answered", now, ""
            inv.save(update_fields=["status", "used_at", "draft"])
            audit("default", "update", "invitations", inv.pk, old, {"status": "answered", "used_at": now.isoformat()},
                  who=f"patient:{inv.reference}")

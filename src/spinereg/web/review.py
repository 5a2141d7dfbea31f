"""Imaging review: the queue of operations whose post-operative images await review, and the
review form per operation (image modality and date, then per treated level: leak, its Yeom
mechanism type, its location, and whether it was symptomatic).

The form's fields are generated from the tidy schema (``spinereg.data.entity("imaging_findings")``:
columns, code lists, descriptions), so the form and an import cannot drift apart: a column added
to the schema appears on the form.  Validation is the import's own (``RegistryWriter.check``), its
problems placed on the fields; the levels are written all together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from spinereg.web.permissions import operations_of, staff_view

__all__ = ["FINDING_ENTITY", "PAGE_SIZE", "PAGE_SIZES", "awaiting_review", "level_order", "page_size", "review_form",
           "review_queue", "web_dataset"]

FINDING_ENTITY = "imaging_findings"
PAGE_SIZE = 50
#: Columns that identify a finding: set by the page, not the reviewer.
FIXED_COLUMNS = ("finding_id", "operation_id", "level")
#: Columns of the examination, shared by every level on one form.
SHARED_COLUMNS = ("modality", "date")
ALIAS = "default"

#: Readable names of the schema's codes (the code itself is shown for any other).
CODE_LABELS: dict[str, Any] = {
    "xray": gettext_lazy("Plain radiograph (X-ray)"),
    "ct": gettext_lazy("Computed tomography (CT)"),
    "mri": gettext_lazy("Magnetic resonance imaging (MRI)"),
    "yeom_b": gettext_lazy("Yeom type B (via the basivertebral vein)"),
    "yeom_s": gettext_lazy("Yeom type S (via a segmental vein)"),
    "yeom_c": gettext_lazy("Yeom type C (through a cortical defect)"),
    "intradiscal": gettext_lazy("Intradiscal"),
    "paravertebral": gettext_lazy("Paravertebral soft tissue"),
    "epidural_foraminal": gettext_lazy("Epidural or foraminal"),
    "venous": gettext_lazy("Venous"),
}

#: The stated criteria of a symptomatic leak (help text of ``symptomatic``).
SYMPTOMATIC_CRITERIA = gettext_lazy(
    "Symptomatic: the leak causes new clinical signs attributable to it (for example radicular pain, a "
    "neurological deficit, or symptoms of pulmonary embolism), documented in the chart within the follow-up. "
    "Not symptomatic: no such signs documented. Leave empty when the chart does not tell.")

#: Help texts for columns whose meaning needs more than the schema's description.
HELP_TEXTS: dict[str, Any] = {
    "symptomatic": SYMPTOMATIC_CRITERIA,
    "leak_type": gettext_lazy("The mechanism, after Yeom et al. (2003). Only when a leak was seen."),
    "leak_location": gettext_lazy("Only when a leak was seen."),
    "leak": gettext_lazy("Cement (PMMA) outside the vertebral body on the post-operative images."),
}

_BOOL_CHOICES = (("true", gettext_lazy("Yes")), ("false", gettext_lazy("No")))


#: Page sizes a list page offers (``?per_page=``); the first is the default.
PAGE_SIZES = (PAGE_SIZE, 10, 25, 100, 200)


def page_size(request: HttpRequest) -> int:
    """The page size asked for with ``?per_page=`` when it is one of :data:`PAGE_SIZES`, else the default."""
    asked = request.GET.get("per_page", "")
    return int(asked) if asked.isdigit() and int(asked) in PAGE_SIZES else PAGE_SIZE


def awaiting_review(profile: Any) -> Any:
    """The user's site's operations with at least one treated level that has no imaging finding at that
    level (post-operative images await review), oldest first (date, then operation id).

    The same rule as the ``imaging_review`` form of :func:`spinereg.registry.missing_forms`: two nested
    ``EXISTS`` through the indexes on ``treated_levels (operation_id, level)`` and
    ``imaging_findings.operation_id``."""
    from spinereg.registry.models import ImagingFinding, TreatedLevel

    finding = ImagingFinding.objects.filter(operation_id=OuterRef("operation_id"), level=OuterRef("level"))
    open_level = TreatedLevel.objects.filter(operation_id=OuterRef("operation_id")).filter(~Exists(finding))
    return operations_of(profile).filter(Exists(open_level)).order_by("date", "operation_id")


@staff_view("write_imaging")
def review_queue(request: HttpRequest) -> HttpResponse:
    ops = awaiting_review(request.user.staff).only("operation_id", "patient_id", "date", "hospital",
                                                   "procedure_category")
    size = page_size(request)
    page = Paginator(ops, size).get_page(request.GET.get("page"))
    from spinereg.registry.models import TreatedLevel

    ids = [o.operation_id for o in page]
    levels: dict[str, list[str]] = {}
    for op_id, level in TreatedLevel.objects.filter(operation_id__in=ids).values_list("operation_id", "level"):
        levels.setdefault(op_id, []).append(level)
    rows = [{"op": o, "levels": ", ".join(level_order(levels.get(o.operation_id, [])))} for o in page]
    query = urlencode({"per_page": size}) if size != PAGE_SIZE else ""
    return render(request, "web/review/queue.html", {"page": page, "rows": rows, "query": query})


# -- the form ---------------------------------------------------------------------------------------

def _schema() -> Any:
    from spinereg.data import entity

    return entity(FINDING_ENTITY)


def level_columns() -> list[Any]:
    """The schema's per-level columns (every column but the identifying and the shared ones)."""
    return [c for c in _schema().columns if c.name not in FIXED_COLUMNS + SHARED_COLUMNS]


def level_order(levels: list[str]) -> list[str]:
    """Levels in the schema's order (cranial to caudal), not alphabetical."""
    order = {v: i for i, v in enumerate(_schema().column("level").values)}
    return sorted(levels, key=lambda v: order.get(v, len(order)))


def _label(column: Any) -> str:
    return str(_(column.description)) if column.description else str(column.name)


def _form_field(column: Any, level: str | None) -> forms.Field:
    """A form field for a schema column.  Never required here: what is required, and every other
    rule, is the import's (``RegistryWriter.check``); the field only offers the schema's codes."""
    label = _label(column) if level is None else f"{level}: {_label(column)}"
    help_text = HELP_TEXTS.get(column.name, "")
    choices: list[tuple[str, Any]]
    if column.type == "bool":
        choices = list(_BOOL_CHOICES) if column.required else [("", _("Not known")), *_BOOL_CHOICES]
        return forms.ChoiceField(label=label, choices=choices, required=False, help_text=help_text,
                                 widget=forms.RadioSelect)
    if column.type == "category":
        choices = [("", "—"), *((str(v), CODE_LABELS.get(v, v)) for v in column.values)]
        return forms.ChoiceField(label=label, choices=choices, required=False, help_text=help_text)
    if column.type == "date":
        return forms.CharField(label=label, required=False, help_text=help_text, max_length=10,
                               widget=forms.DateInput(attrs={"type": "date"}))
    return forms.CharField(label=label, required=False, help_text=help_text, max_length=255)


def field_name(level: str, column: str) -> str:
    return f"{level}-{column}"


class ReviewForm(forms.Form):
    """Shared examination fields, one group of fields per treated level, an optional reason (for a
    locked finding) and, when the import reports warnings, their confirmation."""

    reason = forms.CharField(label=gettext_lazy("Reason for the change"), required=False, max_length=500,
                             widget=forms.Textarea(attrs={"rows": 2}),
                             help_text=gettext_lazy("Required only to change a locked finding."))
    confirm_warnings = forms.BooleanField(
        label=gettext_lazy("Save despite the warnings shown"), required=False,
        help_text=gettext_lazy("The registry's validator reports warnings for these values; tick to save them "
                               "anyway."))

    data: Any

    def __init__(self, *args: Any, levels: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.levels = levels
        self.warned = bool(self.data.get("confirm_warnings")) if self.is_bound else False
        self.cpr_fields = self._drop_cpr()
        schema = _schema()
        shared = {c: _form_field(schema.column(c), None) for c in SHARED_COLUMNS if c in schema.column_names}
        per_level = {field_name(lv, c.name): _form_field(c, lv) for lv in levels for c in level_columns()}
        own: dict[str, forms.Field] = dict(self.fields)
        self.fields.clear()
        self.fields.update({**shared, **per_level, "reason": own["reason"],
                            "confirm_warnings": own["confirm_warnings"]})

    def _drop_cpr(self) -> list[str]:
        """Blank every submitted value that holds a CPR number, so that it is never shown again; the
        fields are reported by :meth:`clean`."""
        from spinereg.data import contains_cpr

        if not self.is_bound:
            return []
        found = [k for k, v in self.data.items() if k != "csrfmiddlewaretoken" and contains_cpr(str(v))]
        if found:
            self.data = self.data.copy()
            for k in found:
                self.data[k] = ""
        return found

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        for name in self.cpr_fields:
            self.add_error(name if name in self.fields else None,
                           _("This held a CPR number: it was removed and not saved or shown."))
        return cleaned

    def shared_fields(self) -> list[Any]:
        return [self[c] for c in SHARED_COLUMNS if c in self.fields]

    def level_groups(self) -> list[tuple[str, list[Any]]]:
        return [(lv, [self[field_name(lv, c.name)] for c in level_columns()]) for lv in self.levels]

    def values_of(self, level: str) -> dict[str, Any]:
        """The finding's values at ``level`` as the writer takes them (empty -> None)."""
        data = self.cleaned_data
        out: dict[str, Any] = {c: data.get(c) or None for c in SHARED_COLUMNS if c in self.fields}
        for c in level_columns():
            out[c.name] = data.get(field_name(level, c.name)) or None
        return out


@dataclass
class _Write:
    """One planned write: a new finding (``key`` None) or the stored finding ``key``, by ``writer``."""

    level: str
    writer: Any
    key: str | None
    values: dict[str, Any]


def _stored(op_id: str, levels: list[str]) -> dict[str, Any]:
    """The stored finding per level (the newest by date, then id, when there are several)."""
    from spinereg.registry.models import ImagingFinding

    out: dict[str, Any] = {}
    for f in ImagingFinding.objects.filter(operation_id=op_id, level__in=levels).order_by("date", "finding_id"):
        out[f.level] = f
    return out


def _initial(stored: dict[str, Any]) -> dict[str, Any]:
    initial: dict[str, Any] = {}
    for level, f in stored.items():
        for c in SHARED_COLUMNS:
            v = getattr(f, c, None)
            if v is not None and c not in initial:
                initial[c] = v.isoformat() if hasattr(v, "isoformat") else v
        for c in level_columns():
            v = getattr(f, c.name, None)
            if isinstance(v, bool):
                v = "true" if v else "false"
            initial[field_name(level, c.name)] = "" if v is None else v
    return initial


def web_dataset() -> str:
    """The dataset new web records go into (setting ``SPINEREG_WEB_DATASET``)."""
    return str(getattr(settings, "SPINEREG_WEB_DATASET", "web registry"))


def _new_finding_id(operation_id: str, level: str) -> str:
    from spinereg.registry.models import ImagingFinding

    base = f"{operation_id}-{level}"
    taken = set(ImagingFinding.objects.filter(finding_id__startswith=base).values_list("finding_id", flat=True))
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _place(form: ReviewForm, level: str, problem: Any, *, as_warning: bool) -> None:
    """Put one problem of the import's validator on its field (shared fields once)."""
    msg = problem.message
    text = _("Warning: %(message)s") % {"message": msg} if as_warning else msg
    if problem.column in SHARED_COLUMNS and problem.column in form.fields:
        name: str | None = problem.column
    elif field_name(level, problem.column) in form.fields:
        name = field_name(level, problem.column)
    else:
        name, text = None, f"{level}, {problem.column}: {text}"
    if name is not None and text in form.errors.get(name, []):
        return
    form.add_error(name, text)


def _dataset_names() -> dict[int, str]:
    from spinereg.registry.models import Dataset

    return {int(pk): str(name) for pk, name in Dataset.objects.values_list("pk", "name")}


def _plan(form: ReviewForm, op: Any, stored: dict[str, Any], who: str) -> list[_Write] | None:
    """Check every level's finding with the import's rules; the writes to make, or None after placing
    the problems on the form (errors always; warnings until they are confirmed)."""
    from spinereg.registry import RegistryWriter

    names = _dataset_names()
    confirmed = bool(form.cleaned_data.get("confirm_warnings"))
    plans, blocked, warned = [], False, False
    for level in form.levels:
        values = form.values_of(level)
        found = stored.get(level)
        if found is None:
            values = {"finding_id": _new_finding_id(op.operation_id, level), "operation_id": op.operation_id,
                      "level": level, **values}
            writer = RegistryWriter(ALIAS, web_dataset(), who=who)
            problems = writer.check(FINDING_ENTITY, values)
            key = None
        else:
            # an existing finding is changed within its own dataset
            dataset = names.get(int(found.dataset_id)) if found.dataset_id is not None else None
            writer = RegistryWriter(ALIAS, dataset or web_dataset(), who=who)
            key = str(found.finding_id)
            problems = writer.check(FINDING_ENTITY, values, key=key)
        for p in problems:
            if p.severity == "error":
                blocked = True
                _place(form, level, p, as_warning=False)
            elif not confirmed:
                warned = True
                _place(form, level, p, as_warning=True)
        plans.append(_Write(level, writer, key, values))
    form.warned = form.warned or warned
    if warned and not blocked:
        form.add_error("confirm_warnings", _("Check the warnings above, then tick this box to save anyway."))
    return None if blocked or warned else plans


def _save(form: ReviewForm, op: Any, stored: dict[str, Any], who: str) -> bool:
    """Write every level's finding, all or nothing; False with the problems on the form."""
    from spinereg import SpineregError
    from spinereg.data import contains_cpr
    from spinereg.registry import RecordLockedError, RecordValidationError

    reason = str(form.cleaned_data.get("reason") or "").strip()
    if contains_cpr(reason):
        form.data = form.data.copy()
        form.data["reason"] = ""
        form.add_error("reason", _("The reason holds a CPR number: remove it (it was not saved or shown)."))
        return False
    plans = _plan(form, op, stored, who)
    if plans is None:
        return False
    current = ""
    try:
        with transaction.atomic(using=ALIAS):  # the writer's own transactions nest as savepoints
            for w in plans:
                current = w.level
                if w.key is None:
                    w.writer.create(FINDING_ENTITY, w.values, reason=reason)
                else:
                    w.writer.update(FINDING_ENTITY, w.key, w.values, reason=reason)
    except RecordLockedError as exc:
        lock = exc.lock
        form.add_error("reason", _("The finding at %(level)s is locked (signed by %(who)s on %(at)s): give a "
                                   "reason for the change. Nothing was saved.")
                       % {"level": current, "who": lock.signed_by, "at": f"{lock.at:%Y-%m-%d %H:%M} UTC"})
        return False
    except RecordValidationError as exc:  # changed since the check (another user): nothing was written
        for p in exc.problems:
            _place(form, current, p, as_warning=False)
        return False
    except SpineregError as exc:
        form.add_error(None, _("Nothing was saved: %(error)s") % {"error": exc})
        return False
    return True


@staff_view("write_imaging")
def review_form(request: HttpRequest, operation_id: str) -> HttpResponse:
    from spinereg.registry.models import TreatedLevel

    op = operations_of(request.user.staff).filter(operation_id=operation_id).first()
    if op is None:
        raise Http404(_("No such operation at your site."))
    levels = level_order([str(v) for v in TreatedLevel.objects.filter(operation_id=op.operation_id)
                           .values_list("level", flat=True)])
    stored = _stored(op.operation_id, levels)
    form = ReviewForm(request.POST or None, levels=levels, initial=_initial(stored))
    if request.method == "POST" and levels and form.is_valid() and _save(form, op, stored,
                                                                         request.user.get_username()):
        messages.success(request, _("Imaging review of operation %(op)s saved (%(n)d levels).")
                         % {"op": op.operation_id, "n": len(levels)})
        return redirect("review-form", operation_id=op.operation_id)
    return render(request, "web/review/form.html", {"op": op, "form": form, "levels": levels,
                                                     "stored": stored})

"""Forms of the clinical pages, generated from the tidy schema.

Every registry field on these forms is made from its column in
``spinereg/data/resources/schema.toml`` (:func:`spinereg.data.entity`): its type picks
the widget, a category's values are the choices, its description and range are the
help text.  So a new column or value in the schema appears on the form without a
change here, and the form cannot drift from the import.

The forms do not validate registry values themselves: every field is text as a file
would hold it, and the rules and messages come from the import's validator through
:meth:`spinereg.registry.RegistryWriter.check` (and the writer's refusal,
:class:`spinereg.registry.RecordValidationError`), placed on the field they name by
:meth:`SchemaForm.add_problems`.  The one rule a form keeps is the shape of its own
page (a CPR number field that never shows its value back).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from django import forms
from django.forms import formset_factory
from django.utils.translation import gettext_lazy as _

from spinereg.data import Column, entity
from spinereg.registry import RecordProblem

__all__ = [
    "CprForm",
    "SchemaForm",
    "column_label",
    "level_formset",
    "schema_field",
    "schema_form",
]

#: Columns of an operation a site-bound user does not choose: they come from the user's site.
SITE_COLUMNS = ("hospital", "department")


class NoEchoInput(forms.TextInput):
    """A text input that never renders its value: a CPR number is not sent back to the browser,
    not even in the form shown again with an error."""

    def format_value(self, value: Any) -> str | None:
        return None


class CprForm(forms.Form):
    """One CPR number.  Whether it is valid is decided by the registry (``register_patient``,
    ``find_patient``), whose message goes on this field."""

    cpr = forms.CharField(
        label=_("CPR number"), required=False, max_length=32,
        help_text=_("DDMMYY-SSSS. The number is replaced by the patient's pseudonym at once; it is never stored, "
                    "logged or shown."),
        widget=NoEchoInput(attrs={"autocomplete": "off", "spellcheck": "false", "inputmode": "numeric"}))


#: Words of column names shown in capitals (abbreviations) or as written
_WORDS = {"asa": "ASA", "sins": "SINS", "ml": "(ml)", "id": "id"}
#: Column names whose label is not their words
_NAMES = {"clavien_dindo": "Clavien–Dindo grade", "intraoperative": "Intra-operative"}


def column_label(col: Column) -> str:
    """A column's label: its name in words (``asa_class`` -> ``ASA class``)."""
    if col.name in _NAMES:
        return _NAMES[col.name]
    words = [_WORDS.get(w, w) for w in col.name.split("_")]
    first = words[0] if words[0] in _WORDS.values() else words[0].capitalize()
    return " ".join([first, *words[1:]])


def _help(col: Column) -> str:
    parts = [col.description] if col.description.lower() != column_label(col).lower() else []
    if col.min is not None or col.max is not None:
        lo = "" if col.min is None else f"{col.min:g}"
        hi = "" if col.max is None else f"{col.max:g}"
        parts.append(f"({lo}–{hi})")
    if col.type == "codes":
        parts.append(str(_("Several codes: separate them with ;")))
    return " ".join(parts)


def schema_field(col: Column) -> forms.Field:
    """The form field of one schema column: text as a file holds it, the widget by the column's type."""
    widget: forms.Widget
    if col.type == "category":
        widget = forms.Select(choices=[("", "—"), *((v, v.replace("_", " ")) for v in col.values)])
    elif col.type == "bool":
        widget = forms.Select(choices=[("", "—"), ("true", _("yes")), ("false", _("no"))])
    elif col.type == "date":
        widget = forms.DateInput(attrs={"type": "date"})
    elif col.type in ("int", "float"):
        widget = forms.TextInput(attrs={"inputmode": "numeric" if col.type == "int" else "decimal"})
    else:
        widget = forms.TextInput(attrs={"autocomplete": "off"})
    field = forms.CharField(label=_(column_label(col)), help_text=_help(col), required=False, widget=widget)
    if col.required:  # shown on the label; the rule itself is the import's ("required ... is missing")
        field.widget.attrs["aria-required"] = "true"
        field.label = f"{field.label} ({_('required')})"
    return field


class SchemaForm(forms.Form):
    """A form over some columns of one entity (set by :func:`schema_form`), plus an optional
    ``reason`` (a change to a locked record needs one)."""

    entity_name: ClassVar[str] = ""
    columns: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *args: Any, reason: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if reason:
            self.fields["reason"] = forms.CharField(
                label=_("Reason for the change"), required=False, max_length=500,
                help_text=_("The record is locked (e-signed): say why it is changed. The reason goes to the "
                            "audit trail."),
                widget=forms.Textarea(attrs={"rows": 2}))

    def values(self) -> dict[str, str | None]:
        """The registry fields as text (None when empty), as an import reads a file's cells."""
        return {c: (self.cleaned_data.get(c) or None) for c in self.columns}

    @property
    def reason(self) -> str:
        return str(self.cleaned_data.get("reason") or "") if hasattr(self, "cleaned_data") else ""

    def add_problems(self, problems: Iterable[RecordProblem], *, entity_name: str | None = None) -> int:
        """Put the errors among ``problems`` on the fields they name (the record's own problems),
        the rest (another record's, another field's) on the form; returns how many errors."""
        own = entity_name or self.entity_name
        n = 0
        for p in problems:
            if p.severity != "error":
                continue
            n += 1
            shown = f" (value {p.value})" if p.value and p.value != "(empty)" else ""
            if p.entity == own and p.column in self.fields:
                self.add_error(p.column, f"{p.message}{shown}")
            else:
                self.add_error(None, f"{p.entity} {p.key}, {p.column}: {p.message}{shown}")
        return n


def schema_form(entity_name: str, exclude: Sequence[str] = ()) -> type[SchemaForm]:
    """A :class:`SchemaForm` class over the columns of ``entity_name`` except its id and reference
    columns and ``exclude``, in schema order."""
    ent = entity(entity_name)
    skip = set(exclude) | {c.name for c in ent.columns if c.references}
    if len(ent.key) == 1:
        skip.add(ent.key[0])
    cols = tuple(c.name for c in ent.columns if c.name not in skip)
    attrs: dict[str, Any] = {"entity_name": entity_name, "columns": cols, "__module__": __name__}
    attrs.update({c: schema_field(ent.column(c)) for c in cols})
    return type(f"{entity_name.title().replace('_', '')}Form", (SchemaForm,), attrs)


class LevelForm(SchemaForm):
    """Base of a treated level's row: the stored level it was (empty for a new row)."""

    original = forms.CharField(required=False, widget=forms.HiddenInput)


def level_formset(extra: int) -> type[forms.BaseFormSet[Any]]:
    """The treated levels of an operation: one row per level (``DELETE`` removes it), ``extra`` empty rows."""
    ent = entity("treated_levels")
    cols = tuple(c.name for c in ent.columns if not c.references)
    attrs: dict[str, Any] = {"entity_name": "treated_levels", "columns": cols, "__module__": __name__}
    attrs.update({c: schema_field(ent.column(c)) for c in cols})
    row = type("TreatedLevelForm", (LevelForm,), attrs)
    formset: type[forms.BaseFormSet[Any]] = formset_factory(
        row, extra=extra, can_delete=True, max_num=len(ent.column("level").values), validate_max=True)
    return formset

"""Import mappings: TOML files that turn registry source files into tidy chunks.

A mapping names its *sources* (which of the files the user passes feed which
table, and how to read them) and its *targets* (for each tidy entity, which
source and, per tidy column, where the value comes from).  Applying it gives
:class:`~spinereg.data._mapped.MappedTable` chunks: tidy column names holding
the raw source values (codes translated, missing codes blanked, wide rows
made long), with the source row numbers and column names for messages.  Types,
ranges and keys are checked afterwards by the validator.

The format is documented in ``docs/mapping-format.md``; shipped mappings live
in ``spinereg/data/mappings/`` (``tidy``, ``danespine-wide``, ``nhs-proms``).

Privacy: a CPR number is read only by the ``cpr`` transforms, which replace it
by the keyed pseudonym (or sex / birth date).  An invalid CPR number gives the
marker :data:`INVALID_CPR` in place of the pseudonym and its reason (never the
value) in the frame column ``_cpr_error``; the validator reports it as
"invalid CPR number (value hidden)".  A column read *without* a CPR transform
whose values look like CPR numbers stops the import (unless the column spec
says ``cpr_check = false``).
"""

from __future__ import annotations

import datetime as _dt
import difflib
import fnmatch
import hashlib
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from spinereg._errors import SpineregError
from spinereg.data._cpr import parse_cpr
from spinereg.data._mapped import MappedTable, Provenance
from spinereg.data._readers import (
    _READER_FORMATS,
    STRING,
    RedcapExport,
    SourceTable,
    read_redcap,
    read_source,
)
from spinereg.data._schema import Column, Entity, entities, entity

__all__ = [
    "INVALID_CPR",
    "MAPPING_FORMAT",
    "SHIPPED",
    "ImportMapping",
    "MappedChunks",
    "SourceSpec",
    "TargetSpec",
    "ValueSpec",
    "apply_mapping",
    "iter_mapping",
    "load_mapping",
    "shipped_mappings",
]

#: The mapping file format version this module reads.
MAPPING_FORMAT = 1
#: Mappings shipped with spinereg (``spinereg/data/mappings/<name>.toml``).
SHIPPED = ("tidy", "danespine-wide", "nhs-proms")
#: Value transforms a column spec may name.
TRANSFORMS = ("cpr", "cpr_sex", "cpr_birth_date", "upper", "lower")
_CPR_TRANSFORMS = ("cpr", "cpr_sex", "cpr_birth_date")
#: ``patient_id`` (pseudonym) of a row whose CPR number is invalid.
INVALID_CPR = "!invalid-cpr"
#: Placeholders every source has: the row number and the file name.
BUILTINS = ("_row", "_file")

_VALUE_KEYS = ("column", "columns", "constant", "template", "hash")
_SPEC_KEYS = frozenset((*_VALUE_KEYS, "missing", "codes", "transform", "remove_prefix", "replace", "split",
                        "join", "date_format", "decimal", "when", "fallback", "optional", "cpr_check",
                        "prefix", "length", "note"))
_SOURCE_KEYS = frozenset(("files", "format", "sheet", "delimiter", "encoding", "optional", "missing",
                          "derive", "redcap_dictionary", "form", "events", "note"))
_TARGET_KEYS = frozenset(("entity", "source", "columns", "identity", "repeat", "skip_empty", "distinct",
                          "missing", "note"))
_TOP_KEYS = frozenset(("mapping_format", "name", "description", "ignore", "sources", "target"))
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_CPR_LIKE = r"(?:0[1-9]|[12][0-9]|3[01])(?:0[1-9]|1[0-2])[0-9]{2}-?[0-9]{4}"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# =========================================================================== the parsed mapping


@dataclass(frozen=True, eq=False)
class ValueSpec:
    """How one tidy (or derived) column gets its value.

    Exactly one *value* key is set (``kind``): ``column``, ``columns``,
    ``constant``, ``template`` or ``hash``; the others modify it.  See
    ``docs/mapping-format.md`` for the meaning of every key.
    """

    where: str
    kind: str
    column: str = ""
    columns: tuple[str, ...] = ()
    constant: str = ""
    template: str = ""
    hash: tuple[str, ...] = ()
    prefix: str = ""
    length: int = 16
    missing: tuple[str, ...] | None = None
    codes: dict[str, str] = field(default_factory=dict)
    transform: str = ""
    remove_prefix: str = ""
    replace: tuple[tuple[re.Pattern[str], str], ...] = ()
    split: str = ""
    join: str = ";"
    date_format: str = ""
    decimal: str = ""
    when: str = ""
    fallback: ValueSpec | None = None
    optional: bool = False
    cpr_check: bool = True

    def refs(self) -> tuple[str, ...]:
        """The source (or derived) column names this spec reads its value from."""
        if self.kind == "column":
            return (self.column,)
        if self.kind == "columns":
            return self.columns
        if self.kind == "hash":
            return self.hash
        if self.kind == "template":
            return tuple(name.rstrip("?") for is_ref, name in _template_parts(self.template) if is_ref)
        return ()

    def substitute(self, values: dict[str, str], where: str) -> ValueSpec:
        """This spec with the repeat variables ``{name}`` replaced."""
        def sub(text: str) -> str:
            return _substitute(text, values)

        fb = self.fallback.substitute(values, where) if self.fallback is not None else None
        return ValueSpec(
            where=where, kind=self.kind, column=sub(self.column), columns=tuple(sub(c) for c in self.columns),
            constant=sub(self.constant), template=sub(self.template), hash=tuple(sub(c) for c in self.hash),
            prefix=sub(self.prefix), length=self.length, missing=self.missing, codes=self.codes,
            transform=self.transform, remove_prefix=self.remove_prefix, replace=self.replace, split=self.split,
            join=self.join, date_format=self.date_format, decimal=self.decimal, when=sub(self.when),
            fallback=fb, optional=self.optional, cpr_check=self.cpr_check,
        )


@dataclass(frozen=True)
class SourceSpec:
    """A named source table: which files feed it and how to read them."""

    name: str
    files: tuple[str, ...]
    format: str | None = None
    sheet: str | int | None = None
    delimiter: str | None = None
    encoding: str | None = None
    optional: bool = False
    missing: tuple[str, ...] | None = None
    derive: dict[str, ValueSpec] = field(default_factory=dict)
    redcap_dictionary: str = ""
    form: str = ""
    events: tuple[str, ...] | None = None
    note: str = ""


@dataclass(frozen=True)
class Expansion:
    """One repetition of a target: its variables and substituted column specs."""

    label: str
    values: dict[str, str]
    columns: dict[str, ValueSpec]
    skip_empty: tuple[str, ...]


@dataclass(frozen=True)
class TargetSpec:
    """One ``[[target]]``: a tidy entity filled from one source."""

    index: int
    entity: str
    source: str
    expansions: tuple[Expansion, ...]
    distinct: bool = False
    missing: tuple[str, ...] | None = None
    note: str = ""

    @property
    def label(self) -> str:
        return f"target {self.index} ({self.entity})"


@dataclass(frozen=True)
class ImportMapping:
    """A parsed mapping file (see :func:`load_mapping`)."""

    name: str
    path: str
    description: str
    sources: dict[str, SourceSpec]
    targets: tuple[TargetSpec, ...]
    ignore: tuple[str, ...] = ()

    def error(self, where: str, message: str) -> SpineregError:
        """A :class:`SpineregError` naming this mapping file and the key."""
        return SpineregError(f"{self.path}: {where}: {message}" if where else f"{self.path}: {message}")


# =========================================================================== loading


def shipped_mappings() -> dict[str, str]:
    """The mappings shipped with spinereg: name -> description."""
    return {name: load_mapping(name).description for name in SHIPPED}


def load_mapping(name_or_path: str | Path) -> ImportMapping:
    """Load and check a mapping: a shipped name or the path of a TOML file.

    Parameters
    ----------
    name_or_path : str or Path
        ``"tidy"``, ``"danespine-wide"``, ``"nhs-proms"``, or a path.

    Raises
    ------
    SpineregError
        The file is missing or not TOML, or a key is unknown or wrong (the
        message names the mapping file and the key).
    """
    text: str
    label: str
    if isinstance(name_or_path, str) and name_or_path in SHIPPED:
        label = f"{name_or_path}.toml"
        text = resources.files("spinereg.data").joinpath("mappings", label).read_text("utf-8")
    else:
        p = Path(name_or_path)
        label = str(name_or_path)
        if not p.is_file():
            if p.suffix == "" and "/" not in label:
                raise SpineregError(f"unknown mapping {label!r}; shipped mappings: {', '.join(SHIPPED)} "
                                    "(or give the path of a .toml file)")
            raise SpineregError(f"{label}: no such mapping file")
        try:
            text = p.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise SpineregError(f"{label}: cannot read the mapping file: {e}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpineregError(f"{label}: not valid TOML: {e}") from None
    return _Parser(label).mapping(doc)


def _text_of(value: Any) -> str:
    """A TOML scalar as the text a source cell would hold."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _template_parts(template: str) -> list[tuple[bool, str]]:
    """``"{a}-{b}"`` -> [(True, "a"), (False, "-"), (True, "b")]; ``{{``/``}}`` are braces."""
    out: list[tuple[bool, str]] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(template):
        if m.start() > pos:
            out.append((False, template[pos:m.start()]))
        tok = m.group(0)
        if tok in ("{{", "}}"):
            out.append((False, tok[0]))
        else:
            out.append((True, m.group(1)))
        pos = m.end()
    if pos < len(template):
        out.append((False, template[pos:]))
    return out


def _substitute(text: str, values: dict[str, str]) -> str:
    if not values or "{" not in text:
        return text
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1) or "", m.group(0)) if m.group(1) else m.group(0),
                            text)


def _placeholders(text: str) -> list[str]:
    return [m.group(1) for m in _PLACEHOLDER.finditer(text) if m.group(1) is not None]


class _Parser:
    def __init__(self, label: str) -> None:
        self.label = label

    def err(self, where: str, message: str) -> SpineregError:
        return SpineregError(f"{self.label}: {where}: {message}")

    def keys(self, raw: dict[str, Any], allowed: frozenset[str], where: str) -> None:
        for k in raw:
            if k not in allowed:
                close = difflib.get_close_matches(k, sorted(allowed), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f"; keys: {', '.join(sorted(allowed))}"
                raise self.err(where, f"unknown key {k!r}{hint}")

    def str_(self, raw: dict[str, Any], key: str, where: str, default: str = "") -> str:
        v = raw.get(key, default)
        if not isinstance(v, str):
            raise self.err(f"{where}.{key}", f"must be a string, not {type(v).__name__}")
        return v

    def bool_(self, raw: dict[str, Any], key: str, where: str, default: bool = False) -> bool:
        v = raw.get(key, default)
        if not isinstance(v, bool):
            raise self.err(f"{where}.{key}", "must be true or false")
        return v

    def strings(self, raw: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
        v = raw[key]
        if isinstance(v, str):
            return (v,)
        if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
            raise self.err(f"{where}.{key}", "must be a string or a non-empty list of strings")
        return tuple(v)

    def missing(self, raw: dict[str, Any], where: str) -> tuple[str, ...] | None:
        if "missing" not in raw:
            return None
        v = raw["missing"]
        if not isinstance(v, list) or not all(isinstance(x, (str, int, float)) and not isinstance(x, bool)
                                              for x in v):
            raise self.err(f"{where}.missing", 'must be a list of values, e.g. ["9", "999", ""]')
        return tuple(_text_of(x).strip() for x in v)

    # ------------------------------------------------------------------ top level

    def mapping(self, doc: dict[str, Any]) -> ImportMapping:
        self.keys(doc, _TOP_KEYS, "top level")
        fmt = doc.get("mapping_format")
        if fmt is None:
            raise self.err("mapping_format", f"missing: a mapping file starts with mapping_format = {MAPPING_FORMAT}")
        if fmt != MAPPING_FORMAT:
            raise self.err("mapping_format", f"this spinereg reads format {MAPPING_FORMAT}, not {fmt!r}")
        name = self.str_(doc, "name", "top level", Path(self.label).stem)
        description = self.str_(doc, "description", "top level")
        ignore = self.strings(doc, "ignore", "top level") if "ignore" in doc else ()
        raw_sources = doc.get("sources")
        if not isinstance(raw_sources, dict) or not raw_sources:
            raise self.err("sources", "missing: at least one [sources.<name>] table is needed")
        sources = {str(k): self.source(str(k), v) for k, v in raw_sources.items()}
        raw_targets = doc.get("target")
        if not isinstance(raw_targets, list) or not raw_targets:
            raise self.err("target", "missing: at least one [[target]] table is needed")
        targets = tuple(self.target(i + 1, t, sources) for i, t in enumerate(raw_targets))
        return ImportMapping(name, self.label, description, sources, targets, ignore)

    def source(self, name: str, raw: Any) -> SourceSpec:
        where = f"sources.{name}"
        if not isinstance(raw, dict):
            raise self.err(where, "must be a table")
        self.keys(raw, _SOURCE_KEYS, where)
        if "files" not in raw:
            raise self.err(where, 'missing key files (file name globs, e.g. files = ["*.csv"])')
        files = self.strings(raw, "files", where)
        fmt = raw.get("format")
        if fmt is not None and fmt not in _READER_FORMATS:
            raise self.err(f"{where}.format", f"unknown format {fmt!r}; formats: {', '.join(_READER_FORMATS)}")
        sheet = raw.get("sheet")
        if sheet is not None and (isinstance(sheet, bool) or not isinstance(sheet, (str, int))):
            raise self.err(f"{where}.sheet", "must be a sheet name or a 0-based sheet number")
        delimiter = raw.get("delimiter")
        if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1):
            raise self.err(f"{where}.delimiter", "must be one character")
        encoding = raw.get("encoding")
        if encoding is not None and not isinstance(encoding, str):
            raise self.err(f"{where}.encoding", "must be a string")
        derive: dict[str, ValueSpec] = {}
        raw_derive = raw.get("derive", {})
        if not isinstance(raw_derive, dict):
            raise self.err(f"{where}.derive", "must be a table of column specs")
        for dname, dspec in raw_derive.items():
            if dname in BUILTINS or not _IDENT.match(dname):
                raise self.err(f"{where}.derive.{dname}", "a derived column needs a plain name (letters, digits, "
                                                          "_; not _row or _file)")
            derive[dname] = self.spec(dspec, f"{where}.derive.{dname}", None, ())
        form = self.str_(raw, "form", where)
        dictionary = self.str_(raw, "redcap_dictionary", where)
        if bool(form) != bool(dictionary):
            raise self.err(where, "a REDCap source needs both form and redcap_dictionary")
        events = self.strings(raw, "events", where) if "events" in raw else None
        if events is not None and not form:
            raise self.err(f"{where}.events", "events select REDCap rows: give form and redcap_dictionary too")
        return SourceSpec(name, files, fmt, sheet, delimiter, encoding, self.bool_(raw, "optional", where),
                          self.missing(raw, where), derive, dictionary, form, events, self.str_(raw, "note", where))

    # ------------------------------------------------------------------ targets

    def target(self, index: int, raw: Any, sources: dict[str, SourceSpec]) -> TargetSpec:
        where = f"target {index}"
        if not isinstance(raw, dict):
            raise self.err(where, "must be a table")
        self.keys(raw, _TARGET_KEYS, where)
        ent_name = raw.get("entity")
        names = [e.name for e in entities()]
        if not isinstance(ent_name, str) or ent_name not in names:
            raise self.err(f"{where}.entity", f"unknown entity {ent_name!r}; entities: {', '.join(names)}")
        ent = entity(ent_name)
        where = f"target {index} ({ent_name})"
        src = raw.get("source")
        if not isinstance(src, str) or src not in sources:
            raise self.err(f"{where}.source", f"unknown source {src!r}; sources: {', '.join(sources)}")
        cols_raw = raw.get("columns", {})
        if not isinstance(cols_raw, dict):
            raise self.err(f"{where}.columns", "must be a table: tidy column = source column or spec")
        for c in cols_raw:
            if c not in ent.column_names:
                close = difflib.get_close_matches(c, ent.column_names, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"columns: {', '.join(ent.column_names)}"
                raise self.err(f"{where}.columns.{c}", f"{ent_name} has no column {c!r}; {hint}")
        identity = self.bool_(raw, "identity", where)
        repeat = self.repeat(raw.get("repeat"), where)
        var_names = tuple(repeat[0]) if repeat else ()
        specs: dict[str, ValueSpec] = {}
        for c in ent.column_names:
            if c in cols_raw:
                specs[c] = self.spec(cols_raw[c], f"{where}.columns.{c}", ent.column(c), var_names)
            elif identity:
                specs[c] = ValueSpec(f"{where}.columns.{c} (identity)", "column", column=c,
                                     optional=not ent.column(c).required)
        for c in ent.columns:
            if c.required and c.name not in specs:
                raise self.err(where, f"required column {c.name!r} of {ent_name} is not mapped")
        repeated = tuple(c for c, s in specs.items() if any("{" in r for r in s.refs()))
        skip = raw.get("skip_empty")
        if skip is None or skip is True:
            skip_cols = repeated
        elif skip is False:
            skip_cols = ()
        elif isinstance(skip, list) and all(isinstance(x, str) for x in skip):
            for c in skip:
                if c not in specs:
                    raise self.err(f"{where}.skip_empty", f"{c!r} is not a mapped column of this target")
            skip_cols = tuple(skip)
        else:
            raise self.err(f"{where}.skip_empty", "must be true, false or a list of tidy columns")
        expansions: list[Expansion] = []
        for values in repeat or [{}]:
            label = ", ".join(f"{k}={v}" for k, v in values.items())
            sub_where = f"{where} [{label}]" if label else where
            cols: dict[str, ValueSpec] = {}
            for c, s in specs.items():
                cw = f"{sub_where}.columns.{c}"
                ss = s.substitute(values, cw) if values else s
                self.check_placeholders(ss, cw, var_names)
                cols[c] = ss
            expansions.append(Expansion(label, dict(values), cols, skip_cols))
        return TargetSpec(index, ent_name, src, tuple(expansions), self.bool_(raw, "distinct", where),
                          self.missing(raw, where), self.str_(raw, "note", where))

    def repeat(self, raw: Any, where: str) -> list[dict[str, str]]:
        if raw is None:
            return []
        w = f"{where}.repeat"
        rows: list[dict[str, Any]]
        if isinstance(raw, dict):
            lists = list(raw.values())
            if not lists or not all(isinstance(v, list) and v for v in lists) or len({len(v) for v in lists}) != 1:
                raise self.err(w, "a table of lists of equal length, e.g. { n = [1, 2, 3, 4] }")
            rows = [dict(zip(raw, vals, strict=True)) for vals in zip(*lists, strict=True)]
        elif isinstance(raw, list) and raw and all(isinstance(r, dict) for r in raw):
            rows = raw
        else:
            raise self.err(w, 'a list of tables, e.g. [{ timepoint = "baseline", sfx = "pre" }, ...]')
        keys = list(rows[0])
        out: list[dict[str, str]] = []
        for r in rows:
            if list(r) != keys:
                raise self.err(w, f"every repetition must set the same variables ({', '.join(keys)})")
            for k, v in r.items():
                if not _IDENT.match(k) or k in BUILTINS:
                    raise self.err(w, f"variable name {k!r}: use letters, digits and _")
                if isinstance(v, (dict, list)):
                    raise self.err(w, f"variable {k!r} must be a string or number")
            out.append({k: _text_of(v) for k, v in r.items()})
        return out

    def check_placeholders(self, s: ValueSpec, where: str, var_names: tuple[str, ...]) -> None:
        texts = [s.column, *s.columns, *s.hash, s.when, s.constant, s.prefix]
        for t in texts:
            for ph in _placeholders(t):
                hint = f"repeat variables: {', '.join(var_names)}" if var_names else "this target has no repeat"
                raise self.err(where, f"placeholder {{{ph}}} is not a repeat variable ({hint})")
        if s.fallback is not None:
            self.check_placeholders(s.fallback, where + ".fallback", var_names)

    # ------------------------------------------------------------------ column specs

    def spec(self, raw: Any, where: str, col: Column | None, var_names: tuple[str, ...],
             in_fallback: bool = False) -> ValueSpec:
        if isinstance(raw, str):
            return ValueSpec(where, "column", column=raw)
        if not isinstance(raw, dict):
            raise self.err(where, 'must be a source column name or a table like { column = "x", ... }')
        self.keys(raw, _SPEC_KEYS, where)
        kinds = [k for k in _VALUE_KEYS if k in raw]
        if len(kinds) != 1:
            raise self.err(where, "give exactly one of column, columns, constant, template, hash")
        kind = kinds[0]
        kw: dict[str, Any] = {}
        ctype = col.type if col is not None else "str"
        if kind == "column":
            kw["column"] = self.str_(raw, "column", where)
        elif kind == "columns":
            kw["columns"] = self.strings(raw, "columns", where)
            if ctype != "codes":
                raise self.err(where, "columns = [...] joins a code list; the tidy column is not of type codes "
                                      "(use template or fallback)")
        elif kind == "constant":
            v = raw["constant"]
            if isinstance(v, (dict, list)):
                raise self.err(f"{where}.constant", "must be a string, number or boolean")
            kw["constant"] = _text_of(v)
        elif kind == "template":
            kw["template"] = self.str_(raw, "template", where)
            if not any(is_ref for is_ref, _ in _template_parts(kw["template"])):
                raise self.err(f"{where}.template", "has no {column} placeholder (use constant)")
        else:
            kw["hash"] = self.strings(raw, "hash", where)
            kw["prefix"] = self.str_(raw, "prefix", where)
            length = raw.get("length", 16)
            if isinstance(length, bool) or not isinstance(length, int) or not 8 <= length <= 64:
                raise self.err(f"{where}.length", "must be a whole number of hex digits, 8..64")
            kw["length"] = length
        if kind != "hash" and ("prefix" in raw or "length" in raw):
            raise self.err(where, "prefix and length belong to hash")
        kw["missing"] = self.missing(raw, where)
        if "codes" in raw:
            codes = raw["codes"]
            if not isinstance(codes, dict) or not all(not isinstance(v, (dict, list)) for v in codes.values()):
                raise self.err(f"{where}.codes", 'must be a table like { "1" = "male", "2" = "female" }')
            kw["codes"] = {str(k).strip(): _text_of(v) for k, v in codes.items()}
        transform = self.str_(raw, "transform", where)
        if transform:
            if transform not in TRANSFORMS:
                raise self.err(f"{where}.transform", f"unknown transform {transform!r}; transforms: "
                                                     f"{', '.join(TRANSFORMS)}")
            if transform in _CPR_TRANSFORMS and kind != "column":
                raise self.err(f"{where}.transform", f"{transform} reads one column: use column = \"...\"")
            if transform == "cpr_birth_date" and col is not None and ctype != "date":
                raise self.err(f"{where}.transform", "cpr_birth_date fills a date column")
            if transform == "cpr_sex" and col is not None and col.name != "sex":
                raise self.err(f"{where}.transform", "cpr_sex fills the sex column")
            kw["transform"] = transform
        kw["remove_prefix"] = self.str_(raw, "remove_prefix", where)
        if "replace" in raw:
            kw["replace"] = self.replace(raw["replace"], f"{where}.replace")
        if "split" in raw:
            kw["split"] = self.str_(raw, "split", where)
            if kind != "column" or not kw["split"]:
                raise self.err(f"{where}.split", "splits one column's value: give column and a separator")
            if ctype != "codes":
                raise self.err(f"{where}.split", "split makes a code list: the tidy column is not of type codes")
        if "join" in raw:
            kw["join"] = self.str_(raw, "join", where)
            if kind not in ("columns", "column") or (kind == "column" and "split" not in raw) or not kw["join"]:
                raise self.err(f"{where}.join", "join goes with columns = [...] or split")
        if "date_format" in raw:
            if in_fallback:
                raise self.err(f"{where}.date_format", "a fallback uses the date_format of its column")
            fmt = self.str_(raw, "date_format", where)
            if col is not None and ctype != "date":
                raise self.err(f"{where}.date_format", f"{col.name} is not a date column")
            if "%" not in fmt:
                raise self.err(f"{where}.date_format", 'a strptime format, e.g. "%d-%m-%Y"')
            kw["date_format"] = fmt
        kw["decimal"] = self.str_(raw, "decimal", where)
        kw["when"] = self.str_(raw, "when", where)
        if "fallback" in raw:
            kw["fallback"] = self.spec(raw["fallback"], f"{where}.fallback", col, var_names, in_fallback=True)
        kw["optional"] = self.bool_(raw, "optional", where)
        kw["cpr_check"] = self.bool_(raw, "cpr_check", where, True)
        self.str_(raw, "note", where)
        return ValueSpec(where, kind, **kw)

    def replace(self, raw: Any, where: str) -> tuple[tuple[re.Pattern[str], str], ...]:
        pairs: list[Any]
        if isinstance(raw, list) and len(raw) == 2 and all(isinstance(x, str) for x in raw):
            pairs = [raw]
        elif isinstance(raw, list) and raw and all(isinstance(p, list) and len(p) == 2 for p in raw):
            pairs = raw
        else:
            raise self.err(where, 'must be [pattern, replacement] or a list of such pairs')
        out: list[tuple[re.Pattern[str], str]] = []
        for pat, repl in pairs:
            if not isinstance(pat, str) or not isinstance(repl, str):
                raise self.err(where, "pattern and replacement must be strings")
            try:
                out.append((re.compile(pat), repl))
            except re.error as e:
                raise self.err(where, f"bad regular expression {pat!r}: {e}") from None
        return tuple(out)


# =========================================================================== applying
#
# Internally every text column is a pandas ``string`` Series backed by
# pyarrow; the hot paths (strip, missing codes, masks, joins) run as pyarrow
# compute kernels on whole columns, and per-value Python functions (code
# tables, regular expressions) run once per *distinct* value.


@dataclass(frozen=True)
class _Reason:
    """Why each row's CPR number is invalid ("" = valid), and the CPR column(s)."""

    series: pd.Series
    columns: tuple[str, ...]


@dataclass
class _Value:
    series: pd.Series
    sources: tuple[str, ...] = ()
    cpr_reason: _Reason | None = None


@dataclass(frozen=True)
class _Cpr:
    pseudonym: pd.Series
    sex: pd.Series
    birth: pd.Series
    reason: pd.Series | None  # None when every value is valid or missing


def _arrow(s: pd.Series) -> Any:
    """The pyarrow ``large_string`` array of a text Series (zero-copy for pandas ``string[pyarrow]``)."""
    if not (isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "pyarrow"):
        s = s.astype(STRING)
    arr = pa.array(s.array)
    return arr if arr.type == pa.large_string() else arr.cast(pa.large_string())


def _series(arr: Any) -> pd.Series:
    """A pandas ``string[pyarrow]`` Series (index 0..n-1) from a pyarrow string array."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return pd.Series(pd.arrays.ArrowStringArray(arr))


def _null(arr: Any) -> Any:
    return pa.scalar(None, arr.type)


def _bools(arr: Any) -> npt.NDArray[np.bool_]:
    out: npt.NDArray[np.bool_] = np.array(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)
    return out


def _na(n: int) -> pd.Series:
    return _series(pa.nulls(n, pa.large_string()))


def _const(value: str, n: int) -> pd.Series:
    return _series(pa.array([value], pa.large_string()).take(pa.array(np.zeros(n, dtype=np.int64))))


def _mask(s: pd.Series, off: npt.NDArray[np.bool_]) -> pd.Series:
    """``s`` with missing values where ``off`` is true."""
    if not off.any():
        return s
    if isinstance(s.dtype, pd.StringDtype):
        a = _arrow(s)
        return _series(pc.if_else(pa.array(off), _null(a), a))
    return s.mask(off)


def _isin(s: pd.Series, values: Sequence[str]) -> npt.NDArray[np.bool_]:
    a = _arrow(s)
    return _bools(pc.is_in(a, value_set=pa.array(list(values), a.type)))


def _objects(s: pd.Series) -> npt.NDArray[np.object_]:
    """Values as an object array with None for every missing value."""
    arr: npt.NDArray[np.object_] = np.array(s.to_numpy(dtype=object), dtype=object)  # a writable copy
    arr[np.asarray(s.isna(), dtype=bool)] = None
    return arr


def _nulls(s: pd.Series) -> npt.NDArray[np.bool_]:
    """Missing mask (a writable copy: pandas 3 hands out read-only views)."""
    return np.array(s.isna(), dtype=bool)


def _is_string_like(s: pd.Series) -> bool:
    if isinstance(s.dtype, pd.StringDtype):
        return True
    return s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty")


def _float_text(s: pd.Series) -> pd.Series:
    v = s.to_numpy(dtype=np.float64, na_value=np.nan)
    fin = np.isfinite(v)
    safe = np.where(fin, v, 0.0)
    integral = fin & (np.floor(safe) == v) & (np.abs(safe) < 1e15)
    out = np.full(len(v), None, dtype=object)
    if integral.any():
        out[integral] = v[integral].astype(np.int64).astype(str)
    other = fin & ~integral
    if other.any():
        out[other] = [repr(float(x)) for x in v[other]]
    return _series(pa.array(out, pa.large_string()))


def _date_text(s: pd.Series, date_format: str) -> pd.Series:
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_localize(None)
    if date_format:
        return _series(pa.array(_objects(s.dt.strftime(date_format)), pa.large_string()))
    vals: npt.NDArray[np.datetime64] = s.to_numpy(dtype="datetime64[s]")
    nat = np.isnat(vals)
    midnight = (vals.astype(np.int64) % 86400 == 0) | nat
    if midnight.all():
        txt_arr = np.datetime_as_string(vals, unit="D").astype(object)
    else:
        txt_arr = np.asarray([t.replace("T", " ") for t in np.datetime_as_string(vals, unit="s")], dtype=object)
    txt_arr[nat] = None
    return _series(pa.array(txt_arr, pa.large_string()))


def _obj_text(v: Any, date_format: str) -> str | None:
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, float | np.floating):
        f = float(v)
        if f != f:
            return None
        return str(int(f)) if f.is_integer() and abs(f) < 1e15 else repr(f)
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, _dt.datetime | _dt.date):
        if date_format:
            return v.strftime(date_format)
        if isinstance(v, _dt.datetime) and (v.hour, v.minute, v.second, v.microsecond) != (0, 0, 0, 0):
            return v.strftime("%Y-%m-%d %H:%M:%S")
        return v.strftime("%Y-%m-%d")
    return str(v)


def _strip_blank(arr: Any) -> pd.Series:
    t = pc.utf8_trim_whitespace(arr)
    empty = pc.equal(t, "")
    return _series(pc.if_else(empty, _null(t), t) if pc.any(empty).as_py() else t)


def to_text(s: pd.Series, date_format: str = "") -> pd.Series:
    """Values as text the way a person reads them.

    Stripped, integral numbers without ``.0``, booleans ``true``/``false``,
    dates ISO (or in ``date_format``); blank and missing values are NA.

    Returns
    -------
    pandas.Series
        dtype ``string[pyarrow]``, index 0..n-1.
    """
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    dt = s.dtype
    if isinstance(dt, pd.StringDtype):
        return _strip_blank(_arrow(s))
    if pd.api.types.is_bool_dtype(dt):
        vals = _objects(s)
        t = pa.array([None if v is None else ("true" if v else "false") for v in vals], pa.large_string())
        return _series(t)
    if pd.api.types.is_integer_dtype(dt):
        return _series(pa.array(_objects(s.astype(object)), pa.int64()).cast(pa.large_string()))
    if pd.api.types.is_float_dtype(dt):
        return _float_text(s)
    if pd.api.types.is_datetime64_any_dtype(dt):
        return _date_text(s.reset_index(drop=True), date_format)
    if pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty"):
        return _strip_blank(pa.array(_objects(s), pa.large_string()))
    texts = [_obj_text(v, date_format) for v in s.to_numpy(dtype=object)]
    return _strip_blank(pa.array(texts, pa.large_string()))


def _per_unique(s: pd.Series, fn: Callable[[str], str | None]) -> pd.Series:
    """Apply a Python function once per distinct non-missing value."""
    a = _arrow(s)
    enc = pc.dictionary_encode(a)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks()
    new = pa.array([None if v is None else fn(v) for v in enc.dictionary.to_pylist()], a.type)
    return _series(new.take(enc.indices))


def _replacer(pat: re.Pattern[str], repl: str) -> Callable[[str], str]:
    def fn(v: str) -> str:
        return pat.sub(repl, v)

    return fn


def _first_reason(reasons: list[_Reason]) -> _Reason | None:
    """Per row, the first non-empty CPR error reason of several columns."""
    uniq: list[_Reason] = []
    for r in reasons:
        if not any(r.series is u.series for u in uniq):
            uniq.append(r)
    if not uniq:
        return None
    out = uniq[0].series
    cols = list(uniq[0].columns)
    for r in uniq[1:]:
        a, b = _arrow(out), _arrow(r.series)
        out = _series(pc.if_else(pc.equal(a, ""), b, a))
        cols.extend(c for c in r.columns if c not in cols)
    return _Reason(out, tuple(cols))


class _Source:
    """One source table read from one file, with cached derived values."""

    def __init__(self, mapping: ImportMapping, spec: SourceSpec, table: SourceTable, key: bytes | None) -> None:
        self.m = mapping
        self.spec = spec
        self.table = table
        self.key = key
        self.n = len(table.frame)
        self.columns = [str(c) for c in table.frame.columns]
        self._lower: dict[str, list[str]] = {}
        for c in self.columns:
            self._lower.setdefault(c.lower(), []).append(c)
        self._text: dict[tuple[str, str], pd.Series] = {}
        self._cpr: dict[tuple[str, tuple[str, ...]], _Cpr] = {}
        self._derived: dict[str, _Value] = {}
        self._busy: set[str] = set()
        self._checked: set[str] = set()
        for d in spec.derive:
            if d in self.columns:
                raise mapping.error(f"sources.{spec.name}.derive.{d}",
                                    f"{table.file} has a column of the same name; rename the derived column")

    # ------------------------------------------------------------------ columns

    def lookup(self, name: str, where: str, optional: bool = False) -> str | None:
        """The actual column for ``name`` (exact, else case-insensitive); derived and builtins pass."""
        if name in BUILTINS or name in self.spec.derive or name in self.columns:
            return name
        hits = self._lower.get(name.lower(), [])
        if len(hits) == 1:
            return hits[0]
        if optional:
            return None
        close = difflib.get_close_matches(name, self.columns, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise self.m.error(where, f"column {name!r} is not in {self.table.file}{hint}")

    def raw(self, name: str) -> pd.Series:
        return self.table.frame[name].reset_index(drop=True)

    def text(self, name: str, date_format: str = "") -> pd.Series:
        """A column (or derived column or builtin) as text, blank = NA; cached."""
        if name == "_row":
            return _series(pa.array(self.table.rows, pa.int64()).cast(pa.large_string()))
        if name == "_file":
            return _const(Path(self.table.file).name, self.n)
        if name in self.spec.derive:
            return self.derived(name).series
        k = (name, date_format)
        if k not in self._text:
            self._text[k] = to_text(self.table.frame[name], date_format)
        return self._text[k]

    def check_cpr(self, name: str, where: str) -> None:
        """Stop if a column read as-is holds values that look like CPR numbers."""
        if name in self._checked or name in BUILTINS or name in self.spec.derive:
            return
        self._checked.add(name)
        raw = self.table.frame[name]
        if pd.api.types.is_numeric_dtype(raw.dtype) or pd.api.types.is_datetime64_any_dtype(raw.dtype):
            return
        a = _arrow(self.text(name))
        lens = pc.utf8_length(a)
        span = pc.min_max(lens).as_py()
        if span["max"] is None or span["max"] < 10 or span["min"] > 11:
            return
        # a CPR-like value is 10 digits, or 6 digits, a dash and 4 digits: cheap kernels pick
        # those candidates (dates, codes and names drop out) before the pattern is tried
        ten = pc.and_(pc.equal(lens, 10), pc.ascii_is_decimal(a))
        eleven = pc.and_(pc.equal(lens, 11), pc.equal(pc.utf8_slice_codeunits(a, 6, 7), "-"))
        cand = pc.fill_null(pc.or_(ten, eleven), False)
        hits = 0
        if pc.any(cand).as_py():
            hits = pc.sum(pc.match_substring_regex(pc.filter(a, cand), f"^{_CPR_LIKE}$")).as_py() or 0
        if hits:
            raise self.m.error(where, f"column {name!r} of {self.table.file} holds {hits} value(s) that look like "
                                      "CPR numbers (values hidden): read it with transform = \"cpr\" (or "
                                      "cpr_sex / cpr_birth_date), or set cpr_check = false if they are not CPR "
                                      "numbers")

    def derived(self, name: str) -> _Value:
        if name in self._derived:
            return self._derived[name]
        if name in self._busy:
            raise self.m.error(f"sources.{self.spec.name}.derive.{name}", "refers to itself (a cycle)")
        self._busy.add(name)
        try:
            v = self.evaluate(self.spec.derive[name], None, ())
            if v is None:
                v = _Value(_na(self.n))
            v.series = _series(_arrow(v.series))
        finally:
            self._busy.discard(name)
        self._derived[name] = v
        return v

    def cpr(self, name: str, missing: tuple[str, ...], where: str) -> _Cpr:
        """Parse a CPR column once (per missing-code list): pseudonym, sex, birth date, reason."""
        if name in self.spec.derive or name in BUILTINS:
            raise self.m.error(where, "a CPR transform reads a column of the source file")
        k = (name, missing)
        if k not in self._cpr:
            t = self.text(name)
            if missing:
                t = _mask(t, _isin(t, missing))
            # parse each distinct number once
            a = _arrow(t)
            enc = pc.dictionary_encode(a)
            if isinstance(enc, pa.ChunkedArray):
                enc = enc.combine_chunks()
            uniq = np.asarray(enc.dictionary.to_pylist(), dtype=object)
            res = parse_cpr(uniq, self.key)
            idx = enc.indices
            pseud = np.full(len(uniq), None, dtype=object)
            pseud[res.valid] = res.pseudonym[res.valid]
            pseud[~res.valid] = INVALID_CPR
            sex = np.full(len(uniq), None, dtype=object)
            sex[res.valid] = res.sex[res.valid]
            codes = idx.to_numpy(zero_copy_only=False)
            gone = np.asarray(idx.is_null().to_numpy(zero_copy_only=False), dtype=bool)
            safe = np.where(gone, 0, np.nan_to_num(codes, nan=0)).astype(np.int64)
            birth = res.birth_date[safe] if len(uniq) else np.full(self.n, np.datetime64("NaT"), "datetime64[s]")
            birth = np.where(gone, np.datetime64("NaT"), birth).astype("datetime64[s]")
            reason: pd.Series | None = None
            if (res.reason != "").any():
                reason = _series(pc.fill_null(pa.array(res.reason.astype(object), pa.large_string()).take(idx), ""))
            self._cpr[k] = _Cpr(
                pseudonym=_series(pa.array(pseud, pa.large_string()).take(idx)),
                sex=_series(pa.array(sex, pa.large_string()).take(idx)),
                birth=pd.Series(birth),
                reason=reason,
            )
        return self._cpr[k]

    # ------------------------------------------------------------------ specs

    def _ops(self, t: pd.Series, spec: ValueSpec, missing: tuple[str, ...]) -> pd.Series:
        """Missing codes, transform, prefix, replace, decimal, codes on text values."""
        if missing:
            t = _mask(t, _isin(t, missing))
        if spec.transform == "upper":
            t = _series(pc.utf8_upper(_arrow(t)))
        elif spec.transform == "lower":
            t = _series(pc.utf8_lower(_arrow(t)))
        if spec.remove_prefix:
            p = spec.remove_prefix
            t = _per_unique(t, lambda v: v.removeprefix(p))
        for pat, repl in spec.replace:
            t = _per_unique(t, _replacer(pat, repl))
        if spec.decimal:
            t = _series(pc.replace_substring(_arrow(t), spec.decimal, "."))
        if spec.codes:
            codes = spec.codes
            t = _per_unique(t, lambda v: codes.get(v, v))
        if spec.remove_prefix or spec.replace or spec.codes:
            t = _strip_blank(_arrow(t))
        return t

    @staticmethod
    def _has_ops(spec: ValueSpec) -> bool:
        return bool(spec.transform or spec.remove_prefix or spec.replace or spec.decimal or spec.codes)

    def _ref_text(self, name: str, spec: ValueSpec, missing: tuple[str, ...],
                  reasons: list[_Reason]) -> tuple[str, pd.Series] | None:
        """A referenced column (template, hash, columns, split, when): its actual
        name and text, missing codes blanked; None when optional and absent."""
        actual = self.lookup(name, spec.where, spec.optional)
        if actual is None:
            return None
        if actual in self.spec.derive:
            d = self.derived(actual)
            if d.cpr_reason is not None:
                reasons.append(d.cpr_reason)
            return actual, d.series
        if actual in BUILTINS:
            return actual, self.text(actual)
        if spec.cpr_check:
            self.check_cpr(actual, spec.where)
        t = self.text(actual)
        if missing:
            t = _mask(t, _isin(t, missing))
        return actual, t

    def _sources_of(self, name: str) -> tuple[str, ...]:
        if name in BUILTINS:
            return ()
        if name in self.spec.derive:
            return self.derived(name).sources
        return (name,)

    def evaluate(self, spec: ValueSpec, col: Column | None, default_missing: tuple[str, ...],
                 date_format: str = "") -> _Value | None:
        """The value of a spec on every row (None: optional column absent)."""
        missing = spec.missing if spec.missing is not None else default_missing
        fmt = spec.date_format or date_format
        ctype = col.type if col is not None else "str"
        reasons: list[_Reason] = []
        sources: tuple[str, ...] = ()
        out: pd.Series
        if spec.kind == "constant":
            out = _const(spec.constant, self.n)
        elif spec.kind == "column":
            actual = self.lookup(spec.column, spec.where, spec.optional)
            if actual is None:
                if spec.fallback is not None:
                    return self.evaluate(spec.fallback, col, missing, fmt)
                return None
            sources = self._sources_of(actual)
            if spec.transform in _CPR_TRANSFORMS:
                out = self._cpr_value(actual, spec, missing, fmt, reasons)
            elif spec.split:
                ref = self._ref_text(actual, spec, missing, reasons)
                out = self._split(ref[1] if ref is not None else _na(self.n), spec, missing)
            else:
                out = self._column(actual, spec, ctype, missing, fmt, reasons)
        elif spec.kind == "columns":
            parts: list[pd.Series] = []
            for name in spec.columns:
                ref = self._ref_text(name, spec, missing, reasons)
                if ref is None:
                    continue
                parts.append(self._ops(ref[1], spec, ()))
                sources += tuple(x for x in self._sources_of(ref[0]) if x not in sources)
            out = self._join(parts, spec.join) if parts else _na(self.n)
        elif spec.kind == "template":
            out, sources = self._template(spec, missing, reasons)
        else:
            out, sources = self._hash(spec, missing, reasons)
        if spec.when:
            ref = self._ref_text(spec.when, spec, missing, reasons)
            if ref is not None:
                out = _mask(out, _nulls(ref[1]))
        if spec.fallback is not None:
            gap = _nulls(out)
            if gap.any():
                fb = self.evaluate(spec.fallback, col, missing, fmt)
                if fb is not None:
                    if isinstance(out.dtype, pd.StringDtype) and isinstance(fb.series.dtype, pd.StringDtype):
                        a, b = _arrow(out), _arrow(fb.series)
                        out = _series(pc.if_else(pa.array(gap), b, a))
                    else:
                        out = out.astype(object).where(~gap, fb.series.astype(object))
                    sources += tuple(x for x in fb.sources if x not in sources)
                    if fb.cpr_reason is not None:
                        reasons.append(fb.cpr_reason)
        return _Value(out, sources, _first_reason(reasons))

    def _cpr_value(self, actual: str, spec: ValueSpec, missing: tuple[str, ...], fmt: str,
                   reasons: list[_Reason]) -> pd.Series:
        if spec.transform == "cpr" and self.key is None:
            raise self.m.error(spec.where, 'transform = "cpr" needs the site key (SPINEREG_SITE_KEY or the key '
                                           "file); none was given")
        c = self.cpr(actual, missing, spec.where)
        if spec.transform == "cpr":
            reasons.append(_Reason(c.reason if c.reason is not None else _const("", self.n), (actual,)))
            return c.pseudonym
        if spec.transform == "cpr_sex":
            if spec.codes:
                codes = spec.codes
                return _per_unique(c.sex, lambda v: codes.get(v, v))
            return c.sex
        return _date_text(c.birth, fmt)

    def _column(self, actual: str, spec: ValueSpec, ctype: str, missing: tuple[str, ...], fmt: str,
                reasons: list[_Reason]) -> pd.Series:
        if actual in self.spec.derive:
            d = self.derived(actual)
            if d.cpr_reason is not None:
                reasons.append(d.cpr_reason)
            return self._ops(d.series, spec, ())
        if actual in BUILTINS:
            return self._ops(self.text(actual), spec, ())
        if spec.cpr_check:
            self.check_cpr(actual, spec.where)
        raw = self.raw(actual)
        t = self.text(actual, fmt if ctype == "date" else "")
        if self._has_ops(spec):
            return self._ops(t, spec, missing)
        bad = _nulls(t)
        if missing:
            bad |= _isin(t, missing)
        if _is_string_like(raw):
            return _mask(_series(_arrow(raw)), bad)  # the cell as written (unstripped)
        if ctype in ("int", "float") and pd.api.types.is_numeric_dtype(raw.dtype) \
                and not pd.api.types.is_bool_dtype(raw.dtype):
            num = raw.astype(np.float64) if bad.any() and pd.api.types.is_integer_dtype(raw.dtype) else raw
            return num.mask(bad) if bad.any() else num
        return _mask(t, bad)

    def _split(self, t: pd.Series, spec: ValueSpec, missing: tuple[str, ...]) -> pd.Series:
        a = _arrow(t)
        lists = pc.split_pattern(a, spec.split)
        flat = pc.list_flatten(lists)
        owner = pc.list_parent_indices(lists)
        parts = _strip_blank(flat)
        done = _arrow(self._ops(parts, spec, missing))
        keep = pc.is_valid(done)
        frame = pd.DataFrame({"row": pc.filter(owner, keep).to_numpy(zero_copy_only=False),
                              "code": _series(pc.filter(done, keep))})
        joined = frame.groupby("row", sort=True)["code"].agg(spec.join.join)
        res = np.full(self.n, None, dtype=object)
        res[joined.index.to_numpy(dtype=np.int64)] = joined.to_numpy(dtype=object)
        return _series(pa.array(res, pa.large_string()))

    @staticmethod
    def _join(parts: list[pd.Series], sep: str) -> pd.Series:
        arrs = [_arrow(p) for p in parts]
        typ = arrs[0].type
        joined = pc.binary_join_element_wise(*arrs, pa.scalar(sep, typ), null_handling="skip")
        allnull = np.logical_and.reduce([_nulls(p) for p in parts])
        return _mask(_series(joined), allnull)

    def _template(self, spec: ValueSpec, missing: tuple[str, ...],
                  reasons: list[_Reason]) -> tuple[pd.Series, tuple[str, ...]]:
        typ = pa.large_string()
        pieces: list[Any] = []
        bad = np.zeros(self.n, dtype=bool)
        sources: tuple[str, ...] = ()
        for is_ref, text in _template_parts(spec.template):
            if not is_ref:
                pieces.append(pa.scalar(text, typ))
                continue
            opt = text.endswith("?")
            ref = self._ref_text(text[:-1] if opt else text, spec, missing, reasons)
            if ref is None:
                continue
            if not opt:
                bad |= _nulls(ref[1])
            sources += tuple(x for x in self._sources_of(ref[0]) if x not in sources)
            pieces.append(_arrow(ref[1]).cast(typ))
        if not any(isinstance(p, pa.Array | pa.ChunkedArray) for p in pieces):
            text = "".join(p.as_py() for p in pieces)
            return _const(text, self.n), sources
        joined = pc.binary_join_element_wise(*pieces, pa.scalar("", typ), null_handling="replace",
                                             null_replacement="")
        return _mask(_series(joined), bad), sources

    def _hash(self, spec: ValueSpec, missing: tuple[str, ...],
              reasons: list[_Reason]) -> tuple[pd.Series, tuple[str, ...]]:
        texts: list[pd.Series] = []
        sources: tuple[str, ...] = ()
        for name in spec.hash:
            ref = self._ref_text(name, spec, missing, reasons)
            if ref is None:
                continue
            texts.append(ref[1])
            sources += tuple(x for x in self._sources_of(ref[0]) if x not in sources)
        if not texts:
            return _na(self.n), sources
        typ = pa.large_string()
        allmiss = np.logical_and.reduce([_nulls(t) for t in texts])
        joined = pc.binary_join_element_wise(*[_arrow(t).cast(typ) for t in texts], pa.scalar("\x1f", typ),
                                             null_handling="replace", null_replacement="")
        n, prefix = spec.length, spec.prefix
        digests = [prefix + hashlib.sha256(v.encode("utf-8")).hexdigest()[:n] for v in joined.to_pylist()]
        return _mask(_series(pa.array(digests, typ)), allmiss), sources


def _chunk(mapping: ImportMapping, target: TargetSpec, exp: Expansion, src: _Source) -> MappedTable | None:
    ent: Entity = entity(target.entity)
    # the target's (else the source's) missing codes; not for free text and ids
    coded_missing = target.missing if target.missing is not None else (src.spec.missing or ())
    data: dict[str, pd.Series] = {}
    prov: dict[str, str] = {}
    reasons: list[_Reason] = []
    date_formats: dict[str, str] = {}
    for cname, spec in exp.columns.items():
        col = ent.column(cname)
        v = src.evaluate(spec, col, coded_missing if col.type != "str" else ())
        if v is None:
            continue
        if len(v.series) != src.n:  # pragma: no cover - internal consistency
            raise mapping.error(spec.where, "internal error: wrong number of values")
        data[cname] = v.series
        if v.sources:
            prov[cname] = "+".join(v.sources)
        if v.cpr_reason is not None:
            reasons.append(v.cpr_reason)
        if col.type == "date" and spec.date_format:
            date_formats[cname] = spec.date_format
    keep = np.ones(src.n, dtype=bool)
    if exp.skip_empty:
        present = [c for c in exp.skip_empty if c in data]
        if present:
            keep &= ~np.logical_and.reduce([_nulls(data[c]) for c in present])
        else:
            keep[:] = False
    found = _first_reason(reasons)
    reason = found.series if found is not None else None
    cpr_bad = np.zeros(src.n, dtype=bool)
    if reason is not None:
        cpr_bad = _bools(pc.not_equal(_arrow(reason), ""))
    if target.distinct and data:
        dup = pd.DataFrame(data).duplicated(keep="first").to_numpy(dtype=bool)
        keep &= ~(dup & ~cpr_bad)
    rows = src.table.rows.astype(np.int64)
    if not keep.all():
        sel = pa.array(keep)
        idx = np.flatnonzero(keep)
        data = {c: (_series(pc.filter(_arrow(s), sel)) if isinstance(s.dtype, pd.StringDtype)
                    else s.iloc[idx].reset_index(drop=True)) for c, s in data.items()}
        rows = rows[idx]
        if reason is not None:
            reason = _series(pc.filter(_arrow(reason), sel))
    frame = pd.DataFrame(data, index=pd.RangeIndex(len(rows)))
    frame["_row"] = rows
    if found is not None and reason is not None:
        frame["_cpr_error"] = reason
        prov["_cpr_error"] = "+".join(found.columns)
    frame.attrs["date_formats"] = date_formats
    return MappedTable(target.entity, frame, Provenance(src.table.file, src.table.row_label, prov))


def _match(path: Path, globs: Iterable[str]) -> bool:
    name = path.name.lower()
    return any(fnmatch.fnmatchcase(name, g.lower()) for g in globs)


def _expand(files: Sequence[str | Path]) -> list[Path]:
    out: list[Path] = []
    for f in files:
        p = Path(f)
        if p.is_dir():
            out.extend(sorted(c for c in p.iterdir() if c.is_file() and not c.name.startswith(".")))
        elif not p.exists():
            raise SpineregError(f"{f}: no such file")
        else:
            out.append(p)
    return out


def _harmonise_dates(chunks: list[MappedTable]) -> None:
    """Give each date column of an entity one format across chunks.

    The validator reads one ``date_formats`` entry per entity and column; if
    chunks disagree (e.g. a ``%d-%m-%Y`` file and an ISO file), dates that
    parse with their own chunk's format are rewritten as ISO and the format
    entry dropped, so the validator reads ISO everywhere; values that do not
    parse stay as they were and are reported as not a date.
    """
    by_entity: dict[str, list[MappedTable]] = {}
    for ch in chunks:
        by_entity.setdefault(ch.entity, []).append(ch)
    for name, group in by_entity.items():
        for col in (c.name for c in entity(name).columns if c.type == "date"):
            users = [ch for ch in group if col in ch.frame.columns]
            fmts = {ch.frame.attrs.get("date_formats", {}).get(col, "") for ch in users}
            if len(fmts) <= 1:
                continue
            for ch in users:
                fmt = ch.frame.attrs.get("date_formats", {}).get(col, "") or "%Y-%m-%d"
                txt = to_text(ch.frame[col])
                parsed = pd.to_datetime(txt, format=fmt, errors="coerce")
                ok = np.asarray(parsed.notna(), dtype=bool)
                new = _objects(ch.frame[col])
                new[ok] = _objects(parsed.dt.strftime("%Y-%m-%d"))[ok]
                attrs = dict(ch.frame.attrs)
                ch.frame[col] = new
                ch.frame.attrs.update(attrs)
                ch.frame.attrs["date_formats"] = {k: v for k, v in attrs.get("date_formats", {}).items() if k != col}


def apply_mapping(mapping: ImportMapping | str | Path, files: Sequence[str | Path], *,
                  key: bytes | None = None) -> list[MappedTable]:
    """Read the files and map them onto the tidy entities.

    Parameters
    ----------
    mapping : ImportMapping, str or Path
        A loaded mapping, a shipped mapping name or a mapping file.
    files : sequence of str or Path
        The source files (a directory stands for the files in it).  Every
        file must match a source of the mapping (or its ``ignore`` globs).
    key : bytes, optional
        The site key for CPR pseudonyms (needed when the mapping uses
        ``transform = "cpr"``).

    Returns
    -------
    list of MappedTable
        One chunk per target, file and repetition that has rows, entity by
        entity in the order of :func:`spinereg.data.entities`; frames hold
        the raw values (missing = null) and ``_row``; ``_cpr_error`` where a
        CPR number is read; ``frame.attrs["date_formats"]`` maps date
        columns to their ``strptime`` format.

    Raises
    ------
    SpineregError
        A file matches no source, a required source has no file, a file
        cannot be read, a source column named by the mapping is absent, or a
        column read as-is looks like CPR numbers.
    """
    return list(iter_mapping(mapping, files, key=key))


def iter_mapping(mapping: ImportMapping | str | Path, files: Sequence[str | Path], *,
                 key: bytes | None = None) -> MappedChunks:
    """:func:`apply_mapping`, lazily: the chunks of one entity after the other.

    The files are matched to the mapping's sources at once (those errors are
    raised by this call); each file is read, and its columns mapped, only when
    the first chunk that needs it is asked for.  Chunks come entity by entity in
    the order of :func:`spinereg.data.entities` (within an entity, in the order
    of the targets, files and repetitions), so that :func:`validate` can check
    and hand over the first entities while later files are still being mapped.
    A file is let go once no later entity needs it.
    """
    m = mapping if isinstance(mapping, ImportMapping) else load_mapping(mapping)
    paths = _expand(list(files))
    if not paths:
        raise SpineregError("no input files given")
    used: set[Path] = set()
    dictionaries: dict[str, Path] = {}
    for name, spec in m.sources.items():
        if spec.redcap_dictionary:
            hits = [p for p in paths if _match(p, (spec.redcap_dictionary,))]
            if len(hits) != 1:
                if not hits and spec.optional:
                    continue
                found = ", ".join(str(p) for p in hits) or "none"
                raise m.error(f"sources.{name}.redcap_dictionary",
                              f"{spec.redcap_dictionary!r} must match exactly one of the files (matched: {found})")
            dictionaries[name] = hits[0]
            used.add(hits[0])
    assigned: dict[str, list[Path]] = {}
    dict_files = set(dictionaries.values())
    for name, spec in m.sources.items():
        hits = [p for p in paths if _match(p, spec.files) and p not in dict_files]
        if not hits and not spec.optional:
            raise m.error(f"sources.{name}.files", f"{list(spec.files)} matches none of the files given "
                                                   f"({', '.join(p.name for p in paths)})")
        assigned[name] = hits
        used.update(hits)
    unmatched = [p for p in paths if p not in used and not _match(p, m.ignore)]
    if unmatched:
        raise m.error("sources", f"file {unmatched[0]} matches no source of this mapping "
                                 f"(sources: {', '.join(f'{k} = {list(v.files)}' for k, v in m.sources.items())})")
    if not any(assigned.values()):
        raise m.error("sources", f"none of the files given ({', '.join(p.name for p in paths)}) matches a source")

    tables: dict[tuple[Any, ...], SourceTable] = {}
    redcaps: dict[tuple[Path, Path], RedcapExport] = {}
    prepared: dict[tuple[str, Path], _Source] = {}

    def source_for(name: str, path: Path) -> _Source:
        k = (name, path)
        if k in prepared:
            return prepared[k]
        spec = m.sources[name]
        table: SourceTable
        if spec.form:
            rk = (path, dictionaries[name])
            if rk not in redcaps:
                redcaps[rk] = read_redcap(path, dictionaries[name])
            table = redcaps[rk].form(spec.form, spec.events)
        else:
            tk = (path, spec.format, spec.sheet, spec.delimiter, spec.encoding)
            if tk not in tables:
                tables[tk] = read_source(path, format=spec.format, sheet=spec.sheet, delimiter=spec.delimiter,
                                         encoding=spec.encoding)
            table = tables[tk]
        prepared[k] = _Source(m, spec, table, key)
        return prepared[k]

    order = [e.name for e in entities()]
    targets = sorted(m.targets, key=lambda t: order.index(t.entity))  # stable: target order within an entity
    finished = set(order) - {t.entity for t in targets}  # entities whose every chunk was yielded

    def chunks() -> Iterator[MappedTable]:
        for i, target in enumerate(targets):
            if i and target.entity == targets[i - 1].entity:
                continue
            group: list[MappedTable] = []
            for same in (t for t in targets[i:] if t.entity == target.entity):
                for path in assigned[same.source]:
                    src = source_for(same.source, path)
                    for exp in same.expansions:
                        ch = _chunk(m, same, exp, src)
                        if ch is not None and len(ch.frame):
                            group.append(ch)
            _harmonise_dates(group)
            later = {(t.source, p) for t in targets if order.index(t.entity) > order.index(target.entity)
                     for p in assigned[t.source]}
            # let go of what no later entity reads
            later_paths = {p for _, p in later}
            for k in [k for k in prepared if k not in later]:
                del prepared[k]
            for tk in [tk for tk in tables if tk[0] not in later_paths]:
                del tables[tk]
            for rk in [rk for rk in redcaps if rk[0] not in later_paths]:
                del redcaps[rk]
            if not group:
                finished.add(target.entity)
            for j, ch in enumerate(group):
                if j == len(group) - 1:
                    finished.add(target.entity)  # known as soon as its last chunk is handed out
                yield ch

    return MappedChunks(chunks(), finished)


class MappedChunks(Iterator[MappedTable]):
    """The chunks :func:`iter_mapping` yields, one entity after the other;
    ``complete(entity)`` says whether every chunk of that entity has been yielded,
    so a reader can take an entity without mapping the next one first."""

    def __init__(self, chunks: Iterator[MappedTable], finished: set[str]) -> None:
        self._chunks = chunks
        self._finished = finished

    def __next__(self) -> MappedTable:
        return next(self._chunks)

    def complete(self, entity: str) -> bool:
        return entity in self._finished

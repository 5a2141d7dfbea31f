"""Import mappings, the specification: parsing and checking the TOML file.

:func:`load_mapping` reads a mapping file (``docs/mapping-format.md``) into an
:class:`ImportMapping`: its sources (:class:`SourceSpec`), targets
(:class:`TargetSpec`, one :class:`Expansion` per repetition) and column specs
(:class:`ValueSpec`).  Every mistake raises :class:`~spinereg.MappingError`
naming the mapping file and the key.  Nothing here reads a source file: the
values are computed by :mod:`spinereg.data._mapping_eval` and the files read
by :mod:`spinereg.data._mapping`.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from spinereg._errors import MappingError
from spinereg.data._readers import _READER_FORMATS
from spinereg.data._schema import Column, entities, entity

__all__ = [
    "BUILTINS",
    "CPR_IN_TEXT",
    "IDS",
    "INVALID_CPR",
    "MAPPING_FORMAT",
    "SHIPPED",
    "TRANSFORMS",
    "Expansion",
    "ImportMapping",
    "SourceSpec",
    "TargetSpec",
    "ValueSpec",
    "load_mapping",
    "shipped_mappings",
]

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
                        "prefix", "length", "cpr_in_text", "note"))
_SOURCE_KEYS = frozenset(("files", "format", "sheet", "delimiter", "encoding", "optional", "missing",
                          "derive", "redcap_dictionary", "form", "events", "note"))
_TARGET_KEYS = frozenset(("entity", "source", "columns", "identity", "repeat", "skip_empty", "distinct",
                          "missing", "note"))
_TOP_KEYS = frozenset(("mapping_format", "name", "description", "ignore", "ids", "cpr_in_text", "sources",
                       "target"))
#: ``cpr_in_text``: what a CPR-shaped number inside a text value does.
CPR_IN_TEXT = ("error", "redact")
#: ``ids``: whether the mapping's ids are local to the source (namespaced on import) or registry ids.
IDS = ("source", "registry")
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
    cpr_in_text: str = ""

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
            fallback=fb, optional=self.optional, cpr_check=self.cpr_check, cpr_in_text=self.cpr_in_text,
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
    #: ``"source"``: the ids are local to the source files, and an import namespaces them
    #: by dataset (``namespace`` of :func:`~spinereg.data.iter_mapping`); ``"registry"``:
    #: they are registry ids already (the ``tidy`` mapping: an export read back).
    ids: str = "source"
    #: What a CPR-shaped number inside a text value does where the column spec does not
    #: say: ``"error"`` (refuse the import) or ``"redact"`` (hide it, with a warning).
    cpr_in_text: str = "error"

    def redacts(self, spec: ValueSpec) -> bool:
        """Whether CPR-shaped numbers in the column filled by ``spec`` are hidden (else refused)."""
        return (spec.cpr_in_text or self.cpr_in_text) == "redact"

    def error(self, where: str, message: str) -> MappingError:
        """A :class:`~spinereg.MappingError` naming this mapping file and the key."""
        return MappingError(f"{self.path}: {where}: {message}" if where else f"{self.path}: {message}")


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
    MappingError
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
                raise MappingError(f"unknown mapping {label!r}; shipped mappings: {', '.join(SHIPPED)} "
                                    "(or give the path of a .toml file)")
            raise MappingError(f"{label}: no such mapping file")
        try:
            text = p.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise MappingError(f"{label}: cannot read the mapping file: {e}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise MappingError(f"{label}: not valid TOML: {e}") from None
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

    def err(self, where: str, message: str) -> MappingError:
        return MappingError(f"{self.label}: {where}: {message}")

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

    def choice(self, raw: dict[str, Any], key: str, where: str, allowed: tuple[str, ...]) -> str:
        """One of ``allowed``, or "" when the key is absent."""
        if key not in raw:
            return ""
        v = raw[key]
        if v not in allowed:
            raise self.err(f"{where}.{key}" if where != "top level" else key,
                           f"must be one of {', '.join(repr(a) for a in allowed)}, not {v!r}")
        return str(v)

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
        ids = self.choice(doc, "ids", "top level", IDS) or "source"
        cpr_in_text = self.choice(doc, "cpr_in_text", "top level", CPR_IN_TEXT) or "error"
        raw_sources = doc.get("sources")
        if not isinstance(raw_sources, dict) or not raw_sources:
            raise self.err("sources", "missing: at least one [sources.<name>] table is needed")
        sources = {str(k): self.source(str(k), v) for k, v in raw_sources.items()}
        raw_targets = doc.get("target")
        if not isinstance(raw_targets, list) or not raw_targets:
            raise self.err("target", "missing: at least one [[target]] table is needed")
        targets = tuple(self.target(i + 1, t, sources) for i, t in enumerate(raw_targets))
        return ImportMapping(name, self.label, description, sources, targets, ignore, ids, cpr_in_text)

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
            if derive[dname].cpr_in_text:
                raise self.err(f"{where}.derive.{dname}.cpr_in_text", "belongs to the tidy column that stores the "
                                                                      "text (a target column), or to the mapping")
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
        kw["cpr_in_text"] = self.choice(raw, "cpr_in_text", where, CPR_IN_TEXT)
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

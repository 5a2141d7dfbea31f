"""Import mappings: TOML files that turn registry source files into tidy chunks.

This module applies a mapping (reads the files, yields mapped chunks); the
specification lives in :mod:`spinereg.data._mapping_spec` and the evaluation of
column specs in :mod:`spinereg.data._mapping_eval`.  The public names of all
three are exported here.

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
whose values look like CPR numbers stops the import with
:class:`~spinereg.PrivacyError` (unless the column spec says
``cpr_check = false``).  CPR-shaped numbers *inside* text are found by the
validator (rule ``cpr-in-text``); a mapping's ``cpr_in_text = "redact"`` is
handed to it in :attr:`Provenance.redact_cpr <spinereg.data.Provenance>`.

Ids: with ``namespace`` (the dataset), every id column (:func:`id_columns`) of
a mapping with ``ids = "source"`` becomes ``namespace:id``, except keyed CPR
pseudonyms, which identify a person across the registry.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from spinereg._errors import SourceFileError, SpineregError
from spinereg.data._cpr import check_no_cpr
from spinereg.data._mapped import MappedTable, Provenance
from spinereg.data._mapping_eval import (
    _arrow,
    _bools,
    _first_reason,
    _nulls,
    _objects,
    _Reason,
    _series,
    _Source,
    _strip_blank,
    to_text,
)
from spinereg.data._mapping_spec import (
    IDS,
    INVALID_CPR,
    MAPPING_FORMAT,
    SHIPPED,
    Expansion,
    ImportMapping,
    SourceSpec,
    TargetSpec,
    ValueSpec,
    load_mapping,
    shipped_mappings,
)
from spinereg.data._readers import RedcapExport, SourceTable, read_redcap, read_source
from spinereg.data._schema import Entity, entities, entity

__all__ = [
    "IDS",
    "INVALID_CPR",
    "MAPPING_FORMAT",
    "NAMESPACE_SEP",
    "SHIPPED",
    "ImportMapping",
    "MappedChunks",
    "SourceSpec",
    "TargetSpec",
    "ValueSpec",
    "apply_mapping",
    "id_columns",
    "iter_mapping",
    "load_mapping",
    "namespaced_id",
    "shipped_mappings",
    "to_text",
]

#: Between a dataset's namespace and a source id: ``"Hospital B:HOSP-001"``.
NAMESPACE_SEP = ":"


def id_columns(entity_name: str) -> tuple[str, ...]:
    """The id columns of an entity that an import namespaces: its key columns of type
    ``str`` and every foreign key (a column with ``references`` in the schema).

    >>> id_columns("proms")
    ('prom_id', 'patient_id', 'operation_id')
    """
    ent = entity(entity_name)
    return tuple(c.name for c in ent.columns if c.type == "str" and (c.name in ent.key or c.references))


def namespaced_id(namespace: str, source_id: str) -> str:
    """The registry id of a source id of dataset ``namespace``: ``f"{namespace}:{source_id}"``."""
    return f"{namespace}{NAMESPACE_SEP}{source_id}"


def _check_namespace(namespace: str) -> None:
    if not isinstance(namespace, str) or not namespace.strip() or namespace != namespace.strip():
        raise SpineregError(f"the namespace of the ids must be a non-empty name without leading or trailing "
                            f"spaces, not {namespace!r}")
    check_no_cpr(namespace, "the namespace of the ids (the dataset name)")


def _namespace(values: pd.Series, namespace: str, pseudonym: npt.NDArray[np.bool_] | None) -> pd.Series:
    """``namespace:value`` for every present value that is no keyed pseudonym (stripped)."""
    a = _arrow(_strip_blank(_arrow(values)))
    prefixed = pc.binary_join_element_wise(pa.scalar(namespace + NAMESPACE_SEP, a.type), a, pa.scalar("", a.type))
    if pseudonym is not None:
        prefixed = pc.if_else(pa.array(pseudonym), a, prefixed)
    return _series(prefixed)


def _chunk(mapping: ImportMapping, target: TargetSpec, exp: Expansion, src: _Source,
           namespace: str | None = None) -> MappedTable | None:
    ent: Entity = entity(target.entity)
    ids = id_columns(ent.name) if namespace is not None else ()
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
        data[cname] = _namespace(v.series, namespace, v.pseudonym) if namespace and cname in ids else v.series
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
    redact = frozenset(c for c, spec in exp.columns.items() if c in frame.columns and mapping.redacts(spec))
    return MappedTable(target.entity, frame, Provenance(src.table.file, src.table.row_label, prov, redact))


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
            raise SourceFileError(f"{f}: no such file")
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
                  key: bytes | None = None, namespace: str | None = None) -> list[MappedTable]:
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
    namespace : str, optional
        The dataset the files belong to.  When given, and the mapping's ids are
        source ids (``ids = "source"``, the default), every value of an id
        column (:func:`id_columns`: entity keys and foreign keys) becomes
        ``f"{namespace}:{id}"`` (:func:`namespaced_id`), consistently across
        entities, so that two datasets' ``HOSP-001`` are two patients.  Keyed
        CPR pseudonyms (the ``cpr`` transform's output, directly or through a
        derived column) are left as they are: they identify a person across
        the registry.  Ids built from a pseudonym (a ``hash`` or ``template``)
        are source ids and namespaced.  With ``ids = "registry"`` (the
        ``tidy`` mapping) the namespace is not used.

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
    MappingError
        The mapping is malformed, a file matches no source, a required source
        has no file, or a source column named by the mapping is absent.
    SourceFileError
        A file is missing, unreadable or undecodable (the message names it).
    PrivacyError
        A column read as-is (without a CPR transform) holds whole values that
        look like CPR numbers.
    """
    return list(iter_mapping(mapping, files, key=key, namespace=namespace))


def iter_mapping(mapping: ImportMapping | str | Path, files: Sequence[str | Path], *,
                 key: bytes | None = None, namespace: str | None = None) -> MappedChunks:
    """:func:`apply_mapping`, lazily: the chunks of one entity after the other.

    The files are matched to the mapping's sources at once (those errors are
    raised by this call); each file is read, and its columns mapped, only when
    the first chunk that needs it is asked for.  Chunks come entity by entity in
    the order of :func:`spinereg.data.entities` (within an entity, in the order
    of the targets, files and repetitions), so that :func:`validate` can check
    and hand over the first entities while later files are still being mapped.
    A file is let go once no later entity needs it.  ``namespace``: see
    :func:`apply_mapping`.
    """
    m = mapping if isinstance(mapping, ImportMapping) else load_mapping(mapping)
    if namespace is not None:
        _check_namespace(namespace)
        if m.ids == "registry":
            namespace = None
    paths = _expand(list(files))
    if not paths:
        raise SourceFileError("no input files given")
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
                        ch = _chunk(m, same, exp, src, namespace)
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
    """The chunks :func:`iter_mapping` yields, one entity after the other: a
    :class:`~spinereg.data.ChunkStream` (``complete(entity)`` says whether every
    chunk of that entity has been yielded, so a reader can take an entity without
    mapping the next one first)."""

    def __init__(self, chunks: Iterator[MappedTable], finished: set[str]) -> None:
        self._chunks = chunks
        self._finished = finished

    def __next__(self) -> MappedTable:
        return next(self._chunks)

    def complete(self, entity: str) -> bool:
        return entity in self._finished

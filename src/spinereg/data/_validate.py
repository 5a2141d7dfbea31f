"""Validation of mapped registry data: types, ranges, codes, dates, keys.

Input is the list of :class:`~spinereg.data._mapped.MappedTable` chunks a
mapping produced; output is a tidy :class:`~spinereg.data.Extract` of the
valid data and a :class:`ValidationReport` listing every problem with the
source file, row, column, value, rule and severity.

Rules
-----
Errors (an import with any error writes nothing):

* ``required``: a required column is missing or empty;
* ``type``: not an integer / number / date (YYYY-MM-DD) / true-false;
* ``range``: a number outside its range (PROM items: the instrument definition);
* ``code``: a category value not in the code list (e.g. a vertebra not in C1-S1);
* ``pattern``: a procedure or diagnosis code of the wrong form;
* ``cpr``: an invalid CPR number (the value is never shown);
* ``cpr-in-text``: a CPR-shaped number anywhere in a text value (a column of
  type str, codes or category, of any entity: ``pt 020255-4322 called``; see
  :func:`spinereg.data.contains_cpr`); the value is never shown.  Number,
  date and boolean columns cannot keep one (it is no valid value there, and
  every numeric column has a small range); any value shown in a problem is
  redacted all the same.  A mapping may
  ask for the number to be hidden instead (``cpr_in_text = "redact"``): the
  CPR-shaped part is replaced by ``[CPR number hidden]`` and the problem is a
  warning;
* ``conflict``: the same key twice with different values (conflicting re-entry);
* ``reference``: a foreign key that matches no row (e.g. an operation of an
  unknown patient; a questionnaire whose operation belongs to another patient);
* ``date-order``: operation before birth or after death, death before birth,
  follow-up answer, complication or imaging before the operation, a
  questionnaire answered after death, a date after the extract date;
* ``level``: an imaging finding at a level that was not treated.

Warnings (reported, the data still land):

* ``duplicate``: an identical row repeated (kept once);
* ``window``: a questionnaire answered outside its time-point window;
* ``leak-type``: a leak type given where no leak was seen.

One new record (a web form, an API write) is checked by :func:`spinereg.data.check_record`
(:mod:`._record`), which applies these rules row-wise without pandas; a rule changed here
must change there too: ``tests/data/test_record_check.py`` compares the two on thousands of
generated records and fails on any difference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from spinereg._errors import show_value
from spinereg.data._cpr import HIDDEN, find_cpr, redact_cpr
from spinereg.data._mapped import ChunkStream, MappedTable, Provenance
from spinereg.data._schema import Column, Entity, entities, timepoints
from spinereg.data._tidy import Extract, conform, empty_table

__all__ = ["PROBLEM_COLUMNS", "ValidationReport", "validate"]

PROBLEM_COLUMNS = ["file", "row", "column", "value", "rule", "severity", "entity", "message"]
_TRUE = {"true", "1", "yes", "y", "ja", "t"}
_FALSE = {"false", "0", "no", "n", "nej", "f"}


@dataclass(frozen=True)
class ValidationReport:
    """Every problem found, one row each (columns :data:`PROBLEM_COLUMNS`)."""

    problems: pd.DataFrame

    @property
    def errors(self) -> pd.DataFrame:
        return self.problems[self.problems["severity"] == "error"]

    @property
    def warnings(self) -> pd.DataFrame:
        return self.problems[self.problems["severity"] == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return bool((self.problems["severity"] != "error").all())

    def to_text(self, limit: int | None = 200) -> str:
        """Readable text: one line per problem, then the counts."""
        lines = []
        rows = self.problems if limit is None else self.problems.head(limit)
        for p in rows.itertuples(index=False):
            where = f"{p.file}:{p.row}" if p.row != "" else str(p.file)
            col = f" column {p.column!r}:" if p.column else ""
            val = f" value {p.value}:" if p.value != "" else ""
            lines.append(f"{where}:{col}{val} {p.message} [{p.rule}, {p.severity}]")
        if limit is not None and len(self.problems) > limit:
            lines.append(f"... and {len(self.problems) - limit} more (write the report as CSV to see all)")
        n_err = int((self.problems["severity"] == "error").sum())
        n_warn = int((self.problems["severity"] == "warning").sum())
        lines.append(f"{n_err} error(s), {n_warn} warning(s)")
        return "\n".join(lines)

    def to_csv(self, path: str | Path) -> None:
        self.problems.to_csv(path, index=False)


class _Collector:
    """Problems found, one DataFrame part per check.

    Rows carry ``_chunk`` (which mapped chunk they come from: its file, entity and
    source column names, registered with :meth:`chunk`) and ``_row`` (the source row).
    """

    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []
        self._files: list[str] = []
        self._entities: list[str] = []
        self._sources: list[dict[str, str]] = []
        self._redact: list[frozenset[str]] = []
        self._labels: list[str] = []
        self._src_cache: dict[str, npt.NDArray[np.object_]] = {}

    def chunk(self, ch: MappedTable, ent: Entity) -> int:
        """Register a chunk; return its id (the ``_chunk`` value of its rows)."""
        self._files.append(ch.provenance.file)
        self._entities.append(ent.name)
        self._sources.append({c: ch.provenance.columns.get(c, c) for c in ent.column_names})
        self._redact.append(ch.provenance.redact_cpr)
        self._labels.append(ch.provenance.row_label)
        self._src_cache.clear()
        return len(self._files) - 1

    def redacting(self, column: str, chunk_ids: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Per row: does its chunk's mapping hide CPR numbers in ``column`` (else refuse them)?"""
        ids = [i for i, cols in enumerate(self._redact) if column in cols]
        return np.isin(chunk_ids, np.array(ids, dtype=np.int64))

    def _source_columns(self, column: str, chunk_ids: npt.NDArray[np.int64]) -> npt.NDArray[np.object_]:
        if column not in self._src_cache:
            self._src_cache[column] = np.array([src.get(column, column) for src in self._sources] + [column],
                                               dtype=object)
        out: npt.NDArray[np.object_] = self._src_cache[column][chunk_ids]
        return out

    def where(self, chunk_ids: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.object_]]:
        """The file and the row label (``line``, ``row``...) of each chunk id."""
        return np.array(self._files, dtype=object)[chunk_ids], np.array(self._labels, dtype=object)[chunk_ids]

    def add(self, rows: pd.DataFrame, mask: npt.NDArray[np.bool_] | pd.Series, column: str,
            rule: str, message: str | npt.NDArray[np.object_], severity: str = "error", values: Any = None,
            hide: bool = False, source_column: bool = True) -> None:
        """Report the rows of ``rows`` where ``mask`` is true.  ``message`` is one text, or
        one per row of ``rows``; ``column`` is shown as the source column it was read from
        unless ``source_column`` is false (then as the tidy column)."""
        m = np.asarray(mask, dtype=bool)
        if not m.any():
            return
        sub = rows.loc[m]
        if hide:
            shown: Any = HIDDEN
        elif values is not None:
            shown = [_show(v) for v in np.asarray(values, dtype=object)[m]]
        elif column in sub.columns:
            col = sub[column]
            if isinstance(col.dtype, pd.StringDtype):  # the common case of keys: text, quoted
                shown = [repr(v) if isinstance(v, str) and v.strip() else "(empty)"
                         for v in col.astype(object).to_numpy()]
            else:
                shown = [_show(v) for v in col.to_numpy(dtype=object)]
        else:
            shown = ""
        ids = sub["_chunk"].to_numpy(dtype=np.int64)
        self.parts.append(pd.DataFrame({
            "file": np.array(self._files, dtype=object)[ids], "row": sub["_row"].to_numpy(),
            "column": self._source_columns(column, ids) if source_column else column,
            "value": shown, "rule": rule, "severity": severity,
            "entity": np.array(self._entities, dtype=object)[ids],
            "message": message if isinstance(message, str) else np.asarray(message, dtype=object)[m],
        }))

    def frame(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame({c: pd.Series([], dtype=object) for c in PROBLEM_COLUMNS})
        out = pd.concat(self.parts, ignore_index=True)
        # no CPR number in clear in any shown value or message (a CPR-shaped code in a
        # category column is reported as a bad code, a key in a conflict message ...)
        for c in ("value", "message"):
            vals = out[c].to_numpy(dtype=object)
            hits = find_cpr(vals)
            if hits.any():
                vals = vals.copy()
                vals[hits] = [redact_cpr(str(v)) for v in vals[hits]]
                out[c] = vals
        order = np.lexsort((out["row"].astype(str).str.zfill(12).to_numpy(), out["file"].astype(str).to_numpy()))
        return out.iloc[order].reset_index(drop=True)


def _arrow_text(s: pd.Series) -> pa.ChunkedArray:
    """The column as trimmed Arrow strings (null = missing)."""
    if not isinstance(s.dtype, pd.StringDtype) or s.dtype.storage != "pyarrow":
        s = s.astype("string[pyarrow]")
    arr = pa.Array.from_pandas(s)
    if not isinstance(arr, pa.ChunkedArray):
        arr = pa.chunked_array([arr])
    return pc.utf8_trim_whitespace(arr)


def _show(v: Any) -> str:
    """A value for a report: missing and empty values show as ``(empty)``."""
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip()):
        return "(empty)"
    if isinstance(v, pd.Timestamp):
        return repr(v.strftime("%Y-%m-%d"))
    return show_value(v)


def _is_text(s: pd.Series) -> bool:
    return s.dtype == object or pd.api.types.is_string_dtype(s)


def _blank(s: pd.Series, txt: pa.ChunkedArray | None = None) -> npt.NDArray[np.bool_]:
    """Missing or empty (after trimming) values; ``txt`` is ``_arrow_text(s)`` when known."""
    if _is_text(s):
        empty = pc.fill_null(pc.equal(_arrow_text(s) if txt is None else txt, ""), True)
        return np.asarray(empty.to_numpy(zero_copy_only=False), dtype=bool)
    return np.asarray(s.isna(), dtype=bool)


def _text(s: pd.Series) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(_arrow_text(s)), index=s.index)


def _bool_array(arr: pa.ChunkedArray | pa.Array) -> npt.NDArray[np.bool_]:
    """A boolean Arrow array as numpy (null = False)."""
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


_NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"


def _numbers(s: pd.Series, blank: npt.NDArray[np.bool_],
             txt: pa.ChunkedArray | None = None) -> npt.NDArray[np.float64]:
    """Float values; NaN where blank or not a number."""
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        return np.asarray(s.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan))
    if txt is None:
        txt = _arrow_text(s)
    # plain digit strings are numbers (the usual case, and cheap to check); only the
    # other values go through the full number pattern
    ok = _bool_array(pc.ascii_is_decimal(txt))
    rest = np.flatnonzero(~ok & ~blank)
    if rest.size:
        ok[rest[_bool_array(pc.match_substring_regex(txt.take(pa.array(rest)), _NUMBER))]] = True
    num = pc.cast(pc.if_else(pa.array(ok), txt, pa.scalar(None, txt.type)), pa.float64())
    out = np.array(num.to_numpy(zero_copy_only=False), dtype=np.float64)
    out[blank] = np.nan
    return out


# the dates pandas represents (datetime64[ns]); outside, parsing makes NaT
_DATE_MIN = np.datetime64("1677-09-22", "D")
_DATE_MAX = np.datetime64("2262-04-10", "D")


def _iso_dates(txt: pa.ChunkedArray, blank: npt.NDArray[np.bool_]) -> pd.Series | None:
    """Dates of ISO ``YYYY-MM-DD`` text when every non-blank value is one (else None).

    Arrow parses strictly (valid calendar dates only); a round trip back to
    text proves that each value was written exactly as ``YYYY-MM-DD``.  The
    result equals what ``pd.to_datetime(..., format="%Y-%m-%d")`` gives.
    """
    vals = pc.if_else(pa.array(blank), pa.scalar(None, txt.type), txt)
    try:
        d = pc.cast(vals, pa.date32())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    same = pc.equal(pc.cast(pc.cast(d, pa.string()), txt.type), vals)
    if not pc.all(pc.fill_null(same, True)).as_py():
        return None
    days = np.asarray(d.to_numpy(zero_copy_only=False), dtype="datetime64[D]")
    ok = ~np.isnat(days)
    if ok.any() and (days[ok].min() < _DATE_MIN or days[ok].max() > _DATE_MAX):
        return None
    return pd.Series(days.astype("datetime64[s]"))


def _check_column(col: Column, s: pd.Series, rows: pd.DataFrame, out: _Collector,
                  date_format: str | None) -> tuple[Any, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Check one column; return parsed values (NA where missing/bad), the bad mask and
    the blank mask.  Values come in the column's tidy dtype (see :func:`conform`)."""
    txt = _arrow_text(s) if _is_text(s) else None
    blank = _blank(s, txt)
    bad = np.zeros(len(s), dtype=bool)
    if col.required:
        out.add(rows, blank, col.name, "required", f"required {col.name} is missing")
    if col.type in ("int", "float"):
        numv = _numbers(s, blank, txt)
        not_num = ~blank & ~np.isfinite(numv)
        out.add(rows, not_num, col.name, "type", f"{col.name} must be a number")
        if col.type == "int":
            frac = ~blank & np.isfinite(numv) & (np.floor(np.nan_to_num(numv)) != numv)
            out.add(rows, frac, col.name, "type", f"{col.name} must be an integer")
            not_num |= frac
        lo = -np.inf if col.min is None else col.min
        hi = np.inf if col.max is None else col.max
        with np.errstate(invalid="ignore"):
            out_rng = ~blank & ~not_num & ((numv < lo) | (numv > hi))
        rng = f"{col.min:g}..{col.max:g}" if col.min is not None and col.max is not None else "its range"
        src = f" ({col.instrument} {col.item})" if col.instrument else ""
        out.add(rows, out_rng, col.name, "range", f"{col.name}{src} must be within {rng}")
        bad = not_num | out_rng
        missing = bad | blank
        if col.type == "int":
            whole = np.where(missing, 0.0, numv)
            if np.all(np.abs(whole) <= 2.0 ** 53):  # exactly representable: build Int64 directly
                ints = pd.arrays.IntegerArray(whole.astype(np.int64), missing)
                return pd.Series(ints, index=s.index), bad, blank
            return pd.Series(np.where(missing, np.nan, numv), index=s.index).astype("Int64"), bad, blank
        return pd.Series(np.where(missing, np.nan, numv), index=s.index), bad, blank
    if col.type == "date":
        dates: Any = None
        if pd.api.types.is_datetime64_any_dtype(s):
            dates = s.astype("datetime64[s]")
        else:
            if txt is None:
                txt = _arrow_text(s)
            if not date_format:
                dates = _iso_dates(txt, blank)
                if dates is not None:
                    dates.index = s.index
            if dates is None:
                txt_s = pd.Series(pd.arrays.ArrowStringArray(txt), index=s.index).where(~blank, None)
                if date_format:
                    dates = pd.to_datetime(txt_s, format=date_format, errors="coerce")
                else:
                    iso = txt_s.str.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}").fillna(False).to_numpy(dtype=bool)
                    dates = pd.to_datetime(txt_s.where(iso, None), format="%Y-%m-%d", errors="coerce")
                dates = dates.astype("datetime64[s]")
        bad = ~blank & np.asarray(dates.isna(), dtype=bool)
        fmt = date_format or "YYYY-MM-DD"
        out.add(rows, bad, col.name, "type", f"{col.name} is not a date ({fmt})")
        return dates, bad, blank
    if col.type == "bool":
        if pd.api.types.is_bool_dtype(s):
            return s.astype("boolean"), bad, blank
        low = pc.utf8_lower(_arrow_text(s) if txt is None else txt)
        is_t = _bool_array(pc.is_in(low, pa.array(sorted(_TRUE))))
        is_f = _bool_array(pc.is_in(low, pa.array(sorted(_FALSE))))
        bad = ~blank & ~is_t & ~is_f
        out.add(rows, bad, col.name, "type", f"{col.name} must be true or false")
        flags = pd.arrays.BooleanArray(is_t, ~(is_t | is_f))
        return pd.Series(flags, index=s.index), bad, blank
    if txt is None:
        txt = _arrow_text(s)
    if col.type == "category":
        codes = np.asarray(pc.fill_null(pc.index_in(txt, value_set=pa.array(list(col.values), txt.type)), -1)
                           .to_numpy(zero_copy_only=False), dtype=np.int64)
        bad = ~blank & (codes < 0)
        shown_vals = ", ".join(col.values) if len(col.values) <= 12 else \
            f"{col.values[0]} ... {col.values[-1]}"
        what = "vertebra" if col.name == "level" else col.name
        out.add(rows, bad, col.name, "code", f"{what} must be one of {shown_vals}")
        codes[blank] = -1
        cats = pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(list(col.values)))
        return pd.Series(cats, index=s.index), bad, blank
    if col.type == "codes":
        txt = pc.replace_substring_regex(txt, r"\s*[;,]\s*", ";")
        parts = pc.split_pattern(txt, ";")
        flat = pc.list_flatten(parts)
        parent = pc.list_parent_indices(parts)
        good_part = pc.or_(pc.equal(flat, ""), pc.match_substring_regex(flat, col.pattern))
        bad_rows = np.zeros(len(s), dtype=bool)
        bad_idx = np.asarray(pc.filter(parent, pc.invert(good_part)).to_numpy(zero_copy_only=False), dtype=np.int64)
        bad_rows[bad_idx] = True
        bad = bad_rows & ~blank
        out.add(rows, bad, col.name, "pattern", f"{col.name}: each code must match {col.pattern}")
        keep = pc.if_else(pa.array(~blank & ~bad), txt, pa.scalar(None, txt.type))
        return pd.Series(pd.arrays.ArrowStringArray(keep), index=s.index), bad, blank
    keep = pc.if_else(pa.array(~blank), txt, pa.scalar(None, txt.type))
    return pd.Series(pd.arrays.ArrowStringArray(keep), index=s.index), bad, blank


def _concat(chunks: Sequence[MappedTable], ent: Entity, out: _Collector) -> pd.DataFrame:
    """The chunks' rows, with ``_chunk`` (see :class:`_Collector`) and ``_row``."""
    if not chunks:
        return pd.DataFrame()
    frames = [ch.frame for ch in chunks]
    rows = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
    ids = [out.chunk(ch, ent) for ch in chunks]
    extra = {"_chunk": np.repeat(np.array(ids, dtype=np.int64), [len(f) for f in frames])}
    if any("_row" not in f.columns for f in frames):
        extra["_row"] = np.concatenate([f["_row"].to_numpy(dtype=np.int64) if "_row" in f.columns
                                        else np.arange(1, len(f) + 1) for f in frames])
    return rows.assign(**extra)


_TEXT_TYPES = ("str", "codes", "category")


def _scan_cpr(rows: pd.DataFrame, ent: Entity, out: _Collector) -> npt.NDArray[np.bool_]:
    """Find CPR-shaped numbers in every text column of ``rows``: an error (the rows
    returned as bad), or, where the chunk's mapping asks for it, hidden in place
    (``rows`` is changed) with a warning.  Values are never shown."""
    bad = np.zeros(len(rows), dtype=bool)
    for col in ent.columns:
        # number, date and boolean columns cannot keep a CPR-shaped text: such a value is no
        # valid number (every numeric column has a small range), date or boolean, so it is
        # refused by its own check (and shown hidden, see _Collector.frame)
        if col.type not in _TEXT_TYPES or col.name not in rows.columns or not _is_text(rows[col.name]):
            continue
        s = rows[col.name]
        hits = find_cpr(s)
        if not hits.any():
            continue
        redact = hits & out.redacting(col.name, rows["_chunk"].to_numpy(dtype=np.int64))
        refuse = hits & ~redact
        out.add(rows, refuse, col.name, "cpr-in-text",
                f"{col.name} holds a CPR number (value hidden); a CPR number is never stored in clear: remove it "
                'from the source, or let the mapping hide it (cpr_in_text = "redact")', hide=True)
        bad |= refuse
        if redact.any():
            out.add(rows, redact, col.name, "cpr-in-text",
                    f"{col.name}: the CPR number in the text was replaced by {HIDDEN} (cpr_in_text = \"redact\")",
                    severity="warning", hide=True)
            vals = s.to_numpy(dtype=object).copy()
            vals[redact] = [redact_cpr(str(v)) for v in vals[redact]]
            rows[col.name] = pd.Series(vals, index=rows.index, dtype=s.dtype)
    return bad


def _check_keys(frame: pd.DataFrame, ent: Entity, out: _Collector) -> pd.DataFrame:
    """Rows that repeat a key: an identical repeat is a duplicate (warning, kept once), a
    repeat with other values a conflicting re-entry (error).  Each message names the key,
    the columns that differ, and where the key came first (file and line), which matters
    when two files of one import give the same key.  Returns ``frame`` without the
    duplicates; conflicting rows are marked bad.  Vectorised: the cost grows with the
    number of rows, not with the number of problems."""
    key = list(ent.key)
    if not all(k in frame.columns for k in key):
        return frame
    good = np.flatnonzero(~frame["_bad"].to_numpy(dtype=bool))
    keys = frame[key].iloc[good]
    dup_key = keys.duplicated(keep=False).to_numpy(dtype=bool)
    if not dup_key.any():
        return frame
    grp = frame.iloc[good[dup_key]]
    n = len(grp)
    # group of each row (rows sharing the key) and the position of the group's first row
    gid = grp.groupby([grp[k].astype("string") for k in key], sort=False, dropna=False).ngroup().to_numpy()
    first = pd.Series(np.arange(n)).groupby(gid).transform("first").to_numpy(dtype=np.int64)
    later = np.arange(n) != first
    data_cols = [c for c in ent.column_names if c in grp.columns and c not in key]
    differs = np.zeros((n, len(data_cols)), dtype=bool)
    for j, c in enumerate(data_cols):
        h = pd.util.hash_pandas_object(grp[c], index=False).to_numpy()  # parsed values; NA hashes alike
        differs[:, j] = h != h[first]
    in_conflict = np.bincount(gid, weights=differs.any(axis=1), minlength=gid.max() + 1)[gid] > 0
    conf = in_conflict & later
    dup_only = ~in_conflict & later
    report = np.flatnonzero(conf | dup_only)  # messages are built for these rows only
    chunk = grp["_chunk"].to_numpy(dtype=np.int64)[report]
    first_chunk = grp["_chunk"].to_numpy(dtype=np.int64)[first[report]]
    files, labels = out.where(chunk)
    rows = grp["_row"].to_numpy()
    lines, first_lines = rows[report], rows[first[report]]
    key_vals = [grp[k].astype("string").fillna("").to_numpy(dtype=object)[report] for k in key]
    what = "/".join(key)
    # where the key came first: "line 2" in the same file, "hip.csv line 2" in another
    prefixes: dict[tuple[int, int], str] = {}
    for c, fc in set(zip(chunk.tolist(), first_chunk.tolist(), strict=True)):
        f, ff = out.where(np.array([c, fc], dtype=np.int64))[0]
        lab = out.where(np.array([fc], dtype=np.int64))[1][0]
        prefixes[(c, fc)] = f"{lab} " if f == ff else f"{ff} {lab} "
    there = [prefixes[(c, fc)] + str(ln)
             for c, fc, ln in zip(chunk.tolist(), first_chunk.tolist(), first_lines.tolist(), strict=True)]
    msg = np.full(n, "", dtype=object)
    conf_r = conf[report]
    if conf_r.any():
        # the names of the differing columns, once per distinct pattern
        d = differs[report[conf_r]]
        if d.shape[1] <= 63:  # one integer per pattern: a fast 1-d unique
            bits = d.astype(np.uint64) @ (np.uint64(1) << np.arange(d.shape[1], dtype=np.uint64))
            codes, inverse = np.unique(bits, return_inverse=True)
            patterns = ((codes[:, None] >> np.arange(d.shape[1], dtype=np.uint64)) & np.uint64(1)).astype(bool)
        else:  # pragma: no cover - no entity has that many columns
            patterns, inverse = np.unique(d, axis=0, return_inverse=True)
        names = [", ".join(c for c, d in zip(data_cols, pat, strict=True) if d) for pat in patterns]
        inv = iter(inverse.ravel().tolist())
        for i in np.flatnonzero(conf_r).tolist():
            kv = "/".join(str(v[i]) for v in key_vals)
            msg[report[i]] = (f"conflicting re-entry of {what} {kv!r}: {files[i]} {labels[i]} {lines[i]} differs "
                              f"from {there[i]} in {names[next(inv)]}")
        out.add(grp, conf, key[0], "conflict", msg, source_column=False)
        frame.loc[grp.index[conf], "_bad"] = True
    if dup_only.any():
        for i in np.flatnonzero(~conf_r).tolist():
            msg[report[i]] = f"duplicate of the identical row at {there[i]} (kept once)"
        out.add(grp, dup_only, key[0], "duplicate", msg, severity="warning", source_column=False)
        frame = frame.drop(index=grp.index[dup_only])
    return frame


def _date_formats(chunks: Sequence[MappedTable]) -> dict[str, str]:
    fmts: dict[str, str] = {}
    for ch in chunks:
        fmts.update(ch.frame.attrs.get("date_formats", {}))
    return fmts


#: What :func:`validate` reads of ``existing``: these entities and columns only.
REFERENCE_COLUMNS: dict[str, tuple[str, ...]] = {
    "patients": ("patient_id", "birth_date", "death_date"),
    "operations": ("operation_id", "patient_id", "date"),
    "treated_levels": ("operation_id", "level"),
}


def validate(chunks: Iterable[MappedTable], *, existing: Extract | Callable[[], Extract | None] | None = None,
             extract_date: str | date | None = None,
             on_table: Callable[[str, pd.DataFrame], None] | None = None) -> tuple[Extract, ValidationReport]:
    """Validate mapped chunks and build the tidy extract of the valid data.

    Parameters
    ----------
    chunks : iterable of MappedTable
        What a mapping produced.  A list may hold the chunks in any order; any
        other iterable is consumed lazily, one entity at a time, and must yield
        them entity by entity in the order of :func:`entities` (as
        :func:`~spinereg.data.iter_mapping` does), so that an entity is
        checked, and handed to ``on_table``, while later ones are still mapped.
        A :class:`~spinereg.data.ChunkStream` is read up to an entity's last
        chunk only (its ``complete``), not up to the next entity's first.
    existing : Extract or callable, optional
        Data already in the registry: foreign keys may refer to it, and dates are
        checked against it.  Only the entities and columns of
        :data:`REFERENCE_COLUMNS` are read.  A callable (returning the extract, or
        None) is called once, when the checks across entities start, after every
        entity's own checks: an import loads it while the first entities are
        written.
    extract_date : str or date, optional
        No date may lie after it (default: today).

    on_table : callable, optional
        ``on_table(entity, rows)`` as soon as an entity's own checks are done, in the
        order of :func:`entities`, with its rows that passed them, conformed: what the
        extract will hold for that entity if the checks across entities (references,
        dates) find no error either.  Lets an import store one entity while the next
        ones are validated (it must not keep the rows unless ``report.ok``).

    Returns
    -------
    extract, report
        ``extract`` holds the rows without errors (deduplicated), conformed;
        ``report.ok`` is False when any error was found.
    """
    today = pd.Timestamp(extract_date or date.today())
    groups = _EntityGroups(chunks)
    out = _Collector()
    tables: dict[str, pd.DataFrame] = {}
    early: dict[str, tuple[int, pd.DataFrame]] = {}  # given to on_table: (rows then bad, clean rows)
    for ent in entities():
        chunks_e = groups.take(ent.name)
        rows = _concat(chunks_e, ent, out)
        if rows.empty:
            tables[ent.name] = empty_table(ent)
            if on_table is not None:
                on_table(ent.name, tables[ent.name])
            continue
        fmts = _date_formats(chunks_e)
        parsed: dict[str, Any] = {}
        row_bad = _scan_cpr(rows, ent, out)
        for col in ent.columns:
            if col.name not in rows.columns:
                if col.required:
                    out.add(rows, np.ones(len(rows), dtype=bool), col.name, "required",
                            f"required {col.name} is missing (no such column)")
                    row_bad[:] = True
                continue
            values, bad, blank = _check_column(col, rows[col.name], rows, out, fmts.get(col.name))
            if col.required:
                bad = bad | blank
            parsed[col.name] = values
            row_bad |= bad
        if "_cpr_error" in rows.columns:
            reason = rows["_cpr_error"].astype("string").fillna("")
            mask = (reason != "").to_numpy(dtype=bool)
            cpr_col = "patient_id"
            out.add(rows, mask, cpr_col, "cpr", "invalid CPR number (value hidden)", hide=True)
            row_bad |= mask
        parsed["_bad"] = row_bad
        parsed["_row"] = rows["_row"].to_numpy()
        parsed["_chunk"] = rows["_chunk"].to_numpy()
        frame = pd.DataFrame(parsed, index=rows.index)
        frame = _check_keys(frame, ent, out)
        tables[ent.name] = frame
        if on_table is not None:
            early[ent.name] = (int(frame["_bad"].sum()), _clean(frame, ent))
            on_table(ent.name, early[ent.name][1])
    unknown = groups.rest()
    _cross_checks(tables, existing() if callable(existing) else existing, today, out)
    problems = out.frame()
    if len(problems):
        # an invalid CPR number invalidates every row mapped from its source row: report it once
        is_cpr = problems["rule"] == "cpr"
        if is_cpr.any():
            cpr = problems[is_cpr].assign(_generic=problems.loc[is_cpr, "column"] == "patient_id")
            cpr = cpr.sort_values("_generic", kind="stable").drop_duplicates(["file", "row"]).drop(
                columns="_generic")
            problems = pd.concat([problems[~is_cpr], cpr]).sort_index().reset_index(drop=True)
    report = ValidationReport(problems)
    clean: dict[str, pd.DataFrame] = {}
    for ent in entities():
        f = tables[ent.name]
        if ent.name in early and early[ent.name][0] == int(f["_bad"].sum()):
            clean[ent.name] = early[ent.name][1]  # no row found bad since: the same rows
        else:
            clean[ent.name] = _clean(f, ent)
    for name in unknown:  # pragma: no cover - mappings name schema entities
        report = ValidationReport(pd.concat([report.problems, pd.DataFrame([{
            "file": "", "row": "", "column": "", "value": "", "rule": "entity", "severity": "error",
            "entity": name, "message": f"unknown entity {name!r}"}])], ignore_index=True))
    return Extract(clean, {}), report


class _EntityGroups:
    """The chunks of each entity, taken in the order of :func:`entities`.

    A list or tuple is grouped at once (any order); another iterable is read
    lazily, up to the first chunk of a later entity, or, when it is a
    :class:`~spinereg.data.ChunkStream` (what :func:`~spinereg.data.iter_mapping`
    returns), up to the entity's last chunk.
    """

    def __init__(self, chunks: Iterable[MappedTable]) -> None:
        self._order = {e.name: i for i, e in enumerate(entities())}
        # a stream that knows when an entity's chunks are all out
        self._complete: Callable[[str], bool] | None = chunks.complete if isinstance(chunks, ChunkStream) else None
        if isinstance(chunks, list | tuple):  # stable: chunk order kept within an entity
            chunks = sorted(chunks, key=lambda c: self._order.get(c.entity, len(self._order)))
        self._it = iter(chunks)
        self._ahead: MappedTable | None = None
        self._unknown: set[str] = set()

    def _peek(self) -> MappedTable | None:
        while self._ahead is None:
            ch = next(self._it, None)
            if ch is None:
                return None
            if ch.entity in self._order:
                self._ahead = ch
            else:
                self._unknown.add(ch.entity)
        return self._ahead

    def take(self, name: str) -> list[MappedTable]:
        """The chunks of entity ``name``; the ones of earlier entities were taken before."""
        got: list[MappedTable] = []
        while True:
            if self._ahead is None and self._complete is not None and self._complete(name):
                break  # every chunk of the entity is taken: do not map the next one yet
            ch = self._peek()
            if ch is None:
                break
            if ch.entity != name:
                if self._order[ch.entity] < self._order[name]:
                    raise ValueError(f"chunks out of entity order: {ch.entity} after {name}")
                break
            got.append(ch)
            self._ahead = None
        return got

    def rest(self) -> list[str]:
        """Entity names of chunks that are no schema entity (read to the end)."""
        while self._peek() is not None:  # pragma: no cover - every entity was taken
            self._ahead = None
        return sorted(self._unknown)


def _clean(f: pd.DataFrame, ent: Entity) -> pd.DataFrame:
    """The rows of a checked entity frame not marked bad, conformed."""
    if "_bad" in f.columns:
        # a fresh index: conform() adds absent columns on the frame's index and resets
        # the others, so a gap (a dropped row) would become a row of missing values
        f = f[~f["_bad"].to_numpy(dtype=bool)].reset_index(drop=True)
    return conform(f[[c for c in ent.column_names if c in f.columns]], ent) if len(f) else empty_table(ent)


def _key_array(s: pd.Series) -> pa.Array:
    """Key values as one Arrow ``large_string`` array (null = missing)."""
    if not (isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "pyarrow"):
        s = s.astype("string[pyarrow]")
    arr = pa.Array.from_pandas(s)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr if arr.type == pa.large_string() else arr.cast(pa.large_string())


def _keys(tables: dict[str, pd.DataFrame], existing: Extract | None, name: str, col: str) -> pa.Array:
    vals = []
    f = tables.get(name)
    if f is not None and col in f.columns:
        # existence counts every row of the import, also rows with errors of their own, so
        # that one bad parent row does not cascade into "no such parent" errors of its children
        vals.append(_key_array(f[col]))
    if existing is not None and col in existing[name].columns:
        vals.append(_key_array(existing[name][col]))
    if not vals:
        return pa.array([], pa.large_string())
    return pc.unique(pc.drop_null(pa.concat_arrays(vals)))


class _Lookup:
    """Rows of a parent table by key (the first row of each key), for joins by position."""

    def __init__(self, frame: pd.DataFrame, key: str) -> None:
        self.frame = frame.reset_index(drop=True)
        self.keys = _key_array(self.frame[key])

    def positions(self, child_keys: pd.Series) -> npt.NDArray[np.int64]:
        """Row of each child key in the lookup, -1 where absent."""
        pos = pc.fill_null(pc.index_in(_key_array(child_keys), value_set=self.keys), -1)
        return np.asarray(pos.to_numpy(zero_copy_only=False), dtype=np.int64)

    def dates(self, name: str, pos: npt.NDArray[np.int64]) -> npt.NDArray[np.datetime64]:
        """Values of a date column at ``pos`` (NaT where -1)."""
        vals = self.frame[name].to_numpy(dtype="datetime64[s]")
        out: npt.NDArray[np.datetime64] = np.append(vals, np.datetime64("NaT", "s"))[pos]
        return out


def _lookup(tables: dict[str, pd.DataFrame], existing: Extract | None, name: str, key: str,
            cols: list[str]) -> _Lookup:
    parts = []
    f = tables.get(name)
    if f is not None and key in f.columns and "_bad" in f.columns:
        parts.append(f.loc[~f["_bad"].to_numpy(dtype=bool), [c for c in [key, *cols] if c in f.columns]])
    if existing is not None:
        parts.append(existing[name][[key, *cols]])
    if not parts:
        return _Lookup(pd.DataFrame({c: pd.Series([], dtype="datetime64[s]" if c != key else "string")
                                     for c in [key, *cols]}), key)
    lk = pd.concat(parts, ignore_index=True)
    for c in cols:
        if c not in lk.columns:
            lk[c] = pd.NaT
    lk[key] = lk[key].astype("string")
    return _Lookup(lk.drop_duplicates(subset=[key], keep="first"), key)


def _fk(tables: dict[str, pd.DataFrame], existing: Extract | None, out: _Collector, child: str,
        col: str, parent: str, pcol: str) -> None:
    f = tables.get(child)
    if f is None or col not in f.columns or f.empty:
        return
    keys = _keys(tables, existing, parent, pcol)
    vals = _key_array(f[col])
    found = _bool_array(pc.is_in(vals, value_set=keys))
    miss = _bool_array(pc.is_valid(vals)) & ~found & ~f["_bad"].to_numpy(dtype=bool)
    out.add(f, miss, col, "reference", f"{col} matches no row of {parent}")
    f.loc[miss, "_bad"] = True


def _cross_checks(tables: dict[str, pd.DataFrame], existing: Extract | None, today: pd.Timestamp,
                  out: _Collector) -> None:
    _fk(tables, existing, out, "operations", "patient_id", "patients", "patient_id")
    for child in ("treated_levels", "complications", "imaging_findings", "proms"):
        _fk(tables, existing, out, child, "operation_id", "operations", "operation_id")
    _fk(tables, existing, out, "proms", "patient_id", "patients", "patient_id")


    def dates_after_today(name: str, cols: list[str]) -> None:
        f = tables.get(name)
        if f is None or f.empty:
            return
        for c in cols:
            if c in f.columns:
                m = (f[c] > today).fillna(False).to_numpy(dtype=bool) & ~f["_bad"].to_numpy(dtype=bool)
                out.add(f, m, c, "date-order", f"{c} lies after the extract date {today.date()}")
                f.loc[m, "_bad"] = True

    dates_after_today("patients", ["birth_date", "death_date"])
    dates_after_today("operations", ["date"])
    dates_after_today("proms", ["answer_date"])
    dates_after_today("complications", ["date"])
    dates_after_today("imaging_findings", ["date"])

    p = tables.get("patients")
    if p is not None and not p.empty and "death_date" in p.columns and "birth_date" in p.columns:
        m = (p["death_date"] < p["birth_date"]).fillna(False).to_numpy(dtype=bool)
        out.add(p, m, "death_date", "date-order", "death_date is before birth_date")
        p.loc[m, "_bad"] = True

    # value lookups use only rows without errors of their own, so one bad parent value
    # (e.g. a death date before birth) does not cascade into errors on its children
    pats = _lookup(tables, existing, "patients", "patient_id", ["birth_date", "death_date"])
    o = tables.get("operations")
    if o is not None and not o.empty and "date" in o.columns and "patient_id" in o.columns:
        at = pats.positions(o["patient_id"])
        d = o["date"].to_numpy()
        before_birth = (pd.Series(d) < pd.Series(pats.dates("birth_date", at))).fillna(False).to_numpy(dtype=bool)
        after_death = (pd.Series(d) > pd.Series(pats.dates("death_date", at))).fillna(False).to_numpy(dtype=bool)
        out.add(o, before_birth, "date", "date-order", "operation date is before the patient's birth")
        out.add(o, after_death, "date", "date-order", "operation date is after the patient's death")
        o.loc[before_birth | after_death, "_bad"] = True

    ops = _lookup(tables, existing, "operations", "operation_id", ["patient_id", "date"])

    def after_operation(name: str, col: str, what: str) -> None:
        f = tables.get(name)
        if f is None or f.empty or col not in f.columns:
            return
        opd = ops.dates("date", ops.positions(f["operation_id"]))
        m = (pd.Series(f[col].to_numpy()) < pd.Series(opd)).fillna(False).to_numpy(dtype=bool)
        m = m & ~f["_bad"].to_numpy(dtype=bool)
        out.add(f, m, col, "date-order", f"{what} is dated before the operation")
        f.loc[m, "_bad"] = True

    after_operation("complications", "date", "complication")
    after_operation("imaging_findings", "date", "imaging")

    q = tables.get("proms")
    if q is not None and not q.empty and "answer_date" in q.columns and "operation_id" in q.columns:
        at = ops.positions(q["operation_id"])
        if "patient_id" in q.columns:
            op_pat = _key_array(ops.frame["patient_id"]).take(pa.array(at, mask=at < 0))
            other = _bool_array(pc.not_equal(op_pat, _key_array(q["patient_id"])))  # null (missing): False
            other = other & ~q["_bad"].to_numpy(dtype=bool)
            out.add(q, other, "operation_id", "reference", "the questionnaire's operation belongs to another patient")
            q.loc[other, "_bad"] = True
        days = (pd.Series(q["answer_date"].to_numpy()) - pd.Series(ops.dates("date", at))).dt.days.to_numpy(
            dtype=np.float64, na_value=np.nan)
        tp = q["timepoint"].astype("string").fillna("").to_numpy(dtype=object) if "timepoint" in q.columns \
            else np.full(len(q), "", dtype=object)
        follow = (tp != "baseline") & (tp != "")
        with np.errstate(invalid="ignore"):
            before_op = follow & (days < 0)
        before_op = before_op & ~q["_bad"].to_numpy(dtype=bool)
        out.add(q, before_op, "answer_date", "date-order",
                "follow-up questionnaire answered before the operation")
        q.loc[before_op, "_bad"] = True
        if "patient_id" in q.columns:
            death = pats.dates("death_date", pats.positions(q["patient_id"]))
            dead = (pd.Series(q["answer_date"].to_numpy()) > pd.Series(death)).fillna(
                False).to_numpy(dtype=bool) & ~q["_bad"].to_numpy(dtype=bool)
            out.add(q, dead, "answer_date", "date-order", "questionnaire answered after the patient's death")
            q.loc[dead, "_bad"] = True
        for name, tpd in timepoints().items():
            lo, hi = tpd.window
            with np.errstate(invalid="ignore"):
                outside = (tp == name) & np.isfinite(days) & ((days < lo) | (days > hi))
            outside = outside & ~q["_bad"].to_numpy(dtype=bool)
            out.add(q, outside, "answer_date", "window",
                    f"answered outside the {name} window ({lo}..{hi} days from the operation)",
                    severity="warning")

    img = tables.get("imaging_findings")
    if img is not None and not img.empty and "level" in img.columns:
        lv = tables.get("treated_levels")
        treated = set()
        if lv is not None and not lv.empty:
            treated |= set(zip(lv["operation_id"].astype(str), lv["level"].astype(str), strict=True))
        if existing is not None and len(existing["treated_levels"]):
            e = existing["treated_levels"]
            treated |= set(zip(e["operation_id"].astype(str), e["level"].astype(str), strict=True))
        pairs = zip(img["operation_id"].astype(str), img["level"].astype(str), strict=True)
        m = np.array([pair not in treated for pair in pairs], dtype=bool) & ~img["_bad"].to_numpy(dtype=bool)
        m = m & img["level"].notna().to_numpy(dtype=bool)
        out.add(img, m, "level", "level", "imaging finding at a level that was not treated in this operation")
        img.loc[m, "_bad"] = True
        if "leak" in img.columns:
            no_leak = (img["leak"] == False).fillna(False).to_numpy(dtype=bool)  # noqa: E712
            for col, rule, what in (("leak_type", "leak-type", "leak mechanism"),
                                    ("leak_location", "leak-location", "leak location")):
                if col in img.columns:
                    given = img[col].notna().to_numpy(dtype=bool) & no_leak
                    out.add(img, given, col, rule, f"{what} given but no leak recorded", severity="warning")


def validate_extract(extract: Extract, *, file_prefix: str = "") -> ValidationReport:
    """Validate an already-tidy extract (e.g. a synthetic one) with the same rules."""
    chunks = []
    for e in entities():
        df = extract[e.name]
        if df.empty:
            continue
        frame = df.copy()
        frame["_row"] = np.arange(2, len(df) + 2)
        chunks.append(MappedTable(e.name, frame, Provenance(f"{file_prefix}{e.name}", "line")))
    return validate(chunks, extract_date=extract.meta.get("extract_date"))[1]


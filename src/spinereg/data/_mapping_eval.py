"""Import mappings, the evaluation: column expressions, transforms and derived columns.

:class:`_Source` holds one source table read from one file and computes the
value of a column spec (:class:`~spinereg.data._mapping_spec.ValueSpec`) on
every row: a source column, a code list, a template, a hash, a CPR transform,
a derived column, a fallback...  Values stay text (the raw source values);
types are checked by the validator.

Internally every text column is a pandas ``string`` Series backed by
pyarrow; the hot paths (strip, missing codes, masks, joins) run as pyarrow
compute kernels on whole columns, and per-value Python functions (code
tables, regular expressions) run once per *distinct* value.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from spinereg._errors import PrivacyError
from spinereg.data._cpr import parse_cpr
from spinereg.data._mapping_spec import (
    _CPR_LIKE,
    _CPR_TRANSFORMS,
    BUILTINS,
    INVALID_CPR,
    ImportMapping,
    SourceSpec,
    ValueSpec,
    _template_parts,
)
from spinereg.data._readers import STRING, SourceTable
from spinereg.data._schema import Column

__all__ = ["to_text"]



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
    #: rows whose value is a keyed CPR pseudonym (the ``cpr`` transform's output, as is):
    #: a registry-wide person id, never namespaced; None when no row is one
    pseudonym: npt.NDArray[np.bool_] | None = None


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
            raise PrivacyError(f"{self.m.path}: {where}: column {name!r} of {self.table.file} holds {hits} "
                               "value(s) that look like CPR numbers (values hidden): read it with transform = "
                               "\"cpr\" (or cpr_sex / cpr_birth_date), or set cpr_check = false if they are not "
                               "CPR numbers")

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
        pseud: npt.NDArray[np.bool_] | None = None
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
                if spec.transform == "cpr":
                    pseud = ~_nulls(out)
            elif spec.split:
                ref = self._ref_text(actual, spec, missing, reasons)
                out = self._split(ref[1] if ref is not None else _na(self.n), spec, missing)
            else:
                out = self._column(actual, spec, ctype, missing, fmt, reasons)
                if actual in self.spec.derive and not self._has_ops(spec):  # the derived value as is
                    pseud = self.derived(actual).pseudonym
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
                    if pseud is not None or fb.pseudonym is not None:
                        none = np.zeros(self.n, dtype=bool)
                        pseud = np.where(gap, none if fb.pseudonym is None else fb.pseudonym,
                                         none if pseud is None else pseud)
        if pseud is not None:
            pseud = pseud & ~_nulls(out)
        return _Value(out, sources, _first_reason(reasons), pseud if pseud is not None and pseud.any() else None)

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

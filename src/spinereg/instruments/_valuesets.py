"""EQ-5D value sets: discovery, loading and the state lookup table.

Every value set is one TOML data file under ``instruments/data/valuesets``
(format: ``docs/valueset-format.md``).  A set is turned once into a dense
lookup table over all ``L**5`` health states (243 for 3-level, 3125 for
5-level descriptive systems); scoring is then a single gather, whatever the
model form of the set.
"""

from __future__ import annotations

import functools
import itertools
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from spinereg._errors import DataFileError, SpineregError, UnknownValueSetError
from spinereg.instruments._expr import evaluate

__all__ = [
    "DIMENSIONS",
    "ValueSet",
    "all_valuesets",
    "find_valueset",
    "levels_of_version",
    "normalise_version",
    "rcw_vh_index",
    "rcw_vh_probabilities",
    "state_grid",
    "valueset_catalogue",
]

DIMENSIONS: tuple[str, ...] = ("MO", "SC", "UA", "PD", "AD")
VERSIONS: tuple[str, ...] = ("3L", "5L", "Y3L")
_LEVELS = {"3L": 3, "5L": 5, "Y3L": 3}
_VERSION_ALIASES = {
    "3L": "3L", "EQ-5D-3L": "3L", "5L": "5L", "EQ-5D-5L": "5L",
    "Y3L": "Y3L", "Y": "Y3L", "Y-3L": "Y3L", "EQ-5D-Y": "Y3L", "EQ-5D-Y-3L": "Y3L",
}
FORMS = ("additive", "formula", "table")  # forms a data file may declare; "rcw_vh" is built in
_VH_FILE = ("3L", "RCW", "VH", "_model.toml")

FloatArray = npt.NDArray[np.float64]


def normalise_version(version: str) -> str:
    """Return the canonical version string (``3L``, ``5L`` or ``Y3L``)."""
    key = str(version).strip().upper()
    if key not in _VERSION_ALIASES:
        raise UnknownValueSetError(
            f"unknown EQ-5D version {version!r}; choose from {', '.join(VERSIONS)}"
        )
    return _VERSION_ALIASES[key]


def levels_of_version(version: str) -> int:
    """Number of response levels per dimension of a descriptive system."""
    return _LEVELS[normalise_version(version)]


@functools.cache
def state_grid(levels: int) -> npt.NDArray[np.int64]:
    """All ``levels**5`` states as an array of shape (n, 5), lexicographic order.

    Row ``i`` is the state whose table index is ``i``: MO varies slowest.
    """
    grid = np.array(list(itertools.product(range(1, levels + 1), repeat=5)), dtype=np.int64)
    grid.setflags(write=False)
    return grid


@dataclass(frozen=True)
class ValueSet:
    """One EQ-5D value set, as described by its data file.

    Attributes
    ----------
    version : str
        Descriptive system the set scores: ``3L``, ``5L`` or ``Y3L``.
    type : str
        ``TTO``, ``VAS``, ``VT``, ``cTTO``, ``DCE``, ``CW``, ``RCW`` or ``DSU``.
    country : str
        Country name as the R package ``eq5d`` spells it.
    method : str
        ``VH`` or ``EQ`` for reverse crosswalks, else ``""``.
    iso3166 : str
        ISO 3166-1 alpha-2 code, or ``""``.
    source : dict
        The citation of the valuation study (authors, year, title, journal, DOI...).
    path : str
        The data file, relative to the value-set folder.
    """

    version: str
    type: str
    country: str
    method: str
    iso3166: str
    label: str
    form: str
    source: Mapping[str, Any]
    path: str
    model: Mapping[str, Any] = field(repr=False)
    aliases: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """``<version>/<type>[/<method>]/<country>``, the set's stable id."""
        parts = [self.version, self.type]
        if self.method:
            parts.append(self.method)
        parts.append(self.country)
        return "/".join(parts)

    @property
    def levels(self) -> int:
        """Response levels of the states this set scores (3 or 5)."""
        return _LEVELS[self.version]

    @property
    def citation(self) -> str:
        """A one-line reference in Vancouver style."""
        s = self.source
        bits = [f"{s.get('authors', '')}."]
        if s.get("title"):
            bits.append(f"{s['title']}.")
        journal = s.get("journal", "")
        if journal:
            vol = str(s.get("volume", ""))
            iss = str(s.get("issue", ""))
            pages = str(s.get("pages", ""))
            where = f"{journal} {s.get('year', '')}"
            if vol:
                where += f";{vol}"
                if iss:
                    where += f"({iss})"
            if pages:
                where += f":{pages}"
            bits.append(where + ".")
        elif s.get("year"):
            bits.append(f"{s['year']}.")
        if s.get("doi"):
            bits.append(f"doi:{s['doi']}")
        elif s.get("url"):
            bits.append(str(s["url"]))
        return " ".join(b for b in bits if b and b != ".")

    def table(self) -> FloatArray:
        """The index of every state, lexicographic order (read-only array)."""
        return _table(self)


def _table(vs: ValueSet) -> FloatArray:
    return _table_cached(vs.path)


@functools.cache
def _table_cached(path: str) -> FloatArray:
    vs = _by_path()[path]
    table = _build_table(vs)
    table.setflags(write=False)
    return table


def _build_table(vs: ValueSet) -> FloatArray:
    levels = vs.levels
    n_states = levels**5
    model = vs.model
    where = f"value set {vs.key} ({vs.path})"
    if vs.form == "rcw_vh":
        return rcw_vh_index(_by_path()[str(model["base"])].table())
    if vs.form == "table":
        values = np.asarray(model.get("values", []), dtype=np.float64)
        if values.shape != (n_states,):
            raise DataFileError(f"{where}: table has {values.size} values, expected {n_states}")
        return values
    grid = state_grid(levels)
    variables: dict[str, FloatArray | float] = {}
    for j, dim in enumerate(DIMENSIONS):
        variables[dim] = grid[:, j].astype(np.float64)
    for k in range(1, 6):
        variables[f"n{k}"] = (grid == k).sum(axis=1).astype(np.float64)
    variables["L"] = float(levels)
    dims_total = np.zeros(n_states)
    for j, dim in enumerate(DIMENSIONS):
        coefs = model.get(dim)
        if coefs is None:
            variables[f"dim_{dim}"] = np.zeros(n_states)
            continue
        arr = np.asarray(coefs, dtype=np.float64)
        if arr.shape != (levels,):
            raise DataFileError(f"{where}: {dim} has {arr.size} coefficients, expected {levels}")
        contribution = arr[grid[:, j] - 1]
        variables[f"dim_{dim}"] = contribution
        dims_total = dims_total + contribution
    variables["dims"] = dims_total
    params = model.get("params", {})
    for name, value in params.items():
        if name in variables:
            raise DataFileError(f"{where}: parameter {name!r} shadows a built-in name")
        variables[name] = float(value)
    if vs.form == "additive":
        total = float(model.get("constant", 1.0)) + dims_total
        for term in model.get("terms", []):
            feature = np.broadcast_to(evaluate(str(term["expr"]), variables, where=where), (n_states,))
            total = total + float(term["coef"]) * feature
        result = np.asarray(total, dtype=np.float64)
    elif vs.form == "formula":
        result = np.broadcast_to(
            evaluate(str(model["formula"]), variables, where=where), (n_states,)
        ).astype(np.float64)
    else:  # pragma: no cover - rejected at load time
        raise DataFileError(f"{where}: unknown model form {vs.form!r}")
    overrides = model.get("overrides", {})
    if overrides:
        result = result.copy()
        for state, value in overrides.items():
            digits = str(state)
            if len(digits) != 5 or any(ch not in "123456789"[:levels] for ch in digits):
                raise DataFileError(f"{where}: override state {state!r} is not a {levels}-level state")
            code = int(np.ravel_multi_index(tuple(int(ch) - 1 for ch in digits), (levels,) * 5))
            result[code] = float(value)
    if not np.all(np.isfinite(result)):
        raise DataFileError(f"{where}: model gives non-finite values")
    return result


def _root() -> Traversable:
    return resources.files("spinereg.instruments").joinpath("data", "valuesets")


def _walk(node: Traversable, prefix: str = "") -> Iterator[tuple[str, Traversable]]:
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        rel = f"{prefix}{child.name}"
        if child.is_dir():
            yield from _walk(child, rel + "/")
        elif child.name.endswith(".toml") and not child.name.startswith("_"):
            yield rel, child


def _parse(rel: str, node: Traversable) -> ValueSet:
    try:
        doc = tomllib.loads(node.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise DataFileError(f"value-set file {rel}: {exc}") from None
    try:
        version = normalise_version(str(doc["version"]))
        model = doc["model"]
        form = str(model["form"])
        vs = ValueSet(
            version=version,
            type=str(doc["type"]),
            country=str(doc["country"]),
            method=str(doc.get("method", "")),
            iso3166=str(doc.get("iso3166", "")).upper(),
            label=str(doc.get("label", doc["country"])),
            form=form,
            source=dict(doc.get("source", {})),
            path=rel,
            model=model,
            aliases=tuple(str(a) for a in doc.get("aliases", [])),
        )
    except (KeyError, UnknownValueSetError) as exc:
        raise DataFileError(f"value-set file {rel}: missing or bad key {exc}") from None
    if form not in FORMS:
        raise DataFileError(f"value-set file {rel}: unknown model form {form!r}")
    return vs


@functools.cache
def _by_path() -> dict[str, ValueSet]:
    sets = {rel: _parse(rel, node) for rel, node in _walk(_root())}
    vh = _vh_document()
    source = dict(vh.get("source", {}))
    for base in [s for s in sets.values() if s.version == "5L" and s.type == "VT"]:
        rel = f"{'/'.join(_VH_FILE)}#{base.country}"
        sets[rel] = ValueSet(
            version="3L", type="RCW", country=base.country, method="VH", iso3166=base.iso3166,
            label=f"{base.label} (reverse crosswalk, van Hout & Shaw 2021)", form="rcw_vh",
            source={**source, "note": f"{source.get('note', '')} 5L value set: {base.key} ({base.citation})"},
            path=rel, model={"base": base.path}, aliases=base.aliases,
        )
    return sets


@functools.cache
def _vh_document() -> dict[str, Any]:
    rel = "/".join(_VH_FILE)
    try:
        doc = tomllib.loads(_root().joinpath(*_VH_FILE).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise DataFileError(f"value-set file {rel}: {exc}") from None
    model = doc.get("model", {})
    for dim in DIMENSIONS:
        block = model.get(dim, {})
        if len(block.get("cut", [])) != 4 or len(block.get("beta", [])) != 10:
            raise DataFileError(f"value-set file {rel}: [model.{dim}] needs 4 'cut' and 10 'beta' values")
    return doc


@functools.cache
def _vh_probabilities_cached() -> FloatArray:
    model = _vh_document()["model"]
    grid3 = state_grid(3)
    # ten 3L dummies per state: MO2 MO3 SC2 SC3 ... AD2 AD3
    dummies = np.zeros((grid3.shape[0], 10))
    for j in range(5):
        dummies[:, 2 * j] = grid3[:, j] == 2
        dummies[:, 2 * j + 1] = grid3[:, j] == 3
    per_dim = []
    for dim in DIMENSIONS:
        cut = np.asarray(model[dim]["cut"], dtype=np.float64)
        beta = np.asarray(model[dim]["beta"], dtype=np.float64)
        eta = cut[None, :] - (dummies @ beta)[:, None]          # (243, 4)
        cdf = 1.0 / (1.0 + np.exp(-eta))
        cdf = np.hstack([np.zeros((cdf.shape[0], 1)), cdf, np.ones((cdf.shape[0], 1))])
        per_dim.append(np.diff(cdf, axis=1))                   # (243, 5): P(5L level = 1..5)
    mo, sc, ua, pd_, ad = per_dim
    joint: FloatArray = np.asarray(
        np.einsum("sa,sb,sc,sd,se->sabcde", mo, sc, ua, pd_, ad).reshape(grid3.shape[0], 5**5), dtype=np.float64)
    joint.setflags(write=False)
    return joint


def rcw_vh_probabilities() -> FloatArray:
    """The van Hout & Shaw (2021) state-to-state probabilities, shape (243, 3125).

    Row ``i`` is the 3L state ``state_grid(3)[i]``, column ``k`` the 5L state
    ``state_grid(5)[k]``; each row sums to 1.  For each 5L dimension ``j`` an
    ordered logit on the ten 3L level dummies ``x`` gives
    ``P(level <= k) = 1 / (1 + exp(-(cut_jk - x . beta_j)))``; the joint
    probability of a 5L state is the product over the five dimensions.

    References
    ----------
    van Hout BA, Shaw JW. Mapping EQ-5D-3L to EQ-5D-5L. Value Health 2021.
    doi:10.1016/j.jval.2021.03.009 (parameters: ``valuesets/3L/RCW/VH/_model.toml``).
    """
    return _vh_probabilities_cached()


def rcw_vh_index(values_5l: npt.ArrayLike) -> FloatArray:
    """Value every EQ-5D-3L state on a 5L value set by the van Hout & Shaw (2021) model.

    ``index(3L state) = sum over 5L states t of P(t | 3L state) * values_5l[t]``,
    the expectation of the 5L index under the model's probabilities
    (:func:`rcw_vh_probabilities`).  This also scores 3L responses on a site's
    own 5L value set.

    Parameters
    ----------
    values_5l : array_like, shape (3125,)
        The index of every 5L state in lexicographic order (``state_grid(5)``),
        e.g. ``find_valueset("5L", "VT", "Denmark").table()``.

    Returns
    -------
    numpy.ndarray, shape (243,)
        The index of every 3L state in lexicographic order (``state_grid(3)``).
    """
    values = np.asarray(values_5l, dtype=np.float64)
    if values.shape != (5**5,):
        raise SpineregError(f"rcw_vh_index needs the 3125 values of a 5L value set, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise SpineregError(f"rcw_vh_index: the 5L values must be finite; value {values[bad]!r} at position {bad} "
                            f"(state {''.join(map(str, state_grid(5)[bad]))})")
    return np.asarray(rcw_vh_probabilities() @ values, dtype=np.float64)


@functools.cache
def unavailable_valuesets() -> tuple[dict[str, Any], ...]:
    """Value sets of the R package ``eq5d`` that spinereg does not bundle.

    One dict per set (``version, type, method, country, reason`` and the
    citation fields), from ``valuesets/_unavailable.toml``.
    """
    node = _root().joinpath("_unavailable.toml")
    doc = tomllib.loads(node.read_text(encoding="utf-8"))
    out = []
    for entry in doc.get("unavailable", []):
        base = {k: v for k, v in entry.items() if k != "countries"}
        base.setdefault("method", "")
        base["reason"] = " ".join(str(base["reason"]).split())
        for country in entry["countries"]:
            out.append({**base, "country": str(country)})
    return tuple(out)


def _unavailable_for(v: str, type: str | None, country: str, method: str | None) -> dict[str, Any] | None:
    c = _norm(country)
    for gone in unavailable_valuesets():
        if gone["version"] != v:
            continue
        if type is not None and str(type).strip().upper() != str(gone["type"]).upper():
            continue
        if method is not None and gone["method"] and method.strip().upper() != gone["method"]:
            continue
        if gone["country"] == "*" or _norm(gone["country"]) == c:
            return gone
    return None


def all_valuesets() -> tuple[ValueSet, ...]:
    """Every bundled value set, sorted by version, type, method and country."""
    sets = sorted(
        _by_path().values(),
        key=lambda v: (VERSIONS.index(v.version), v.type.upper(), v.method, v.country.upper()),
    )
    return tuple(sets)


def _norm(s: str) -> str:
    return "".join(ch for ch in s.upper() if ch.isalnum())


def find_valueset(version: str, type: str | None, country: str, method: str | None = None) -> ValueSet:
    """Find one value set by version, type and country.

    Parameters
    ----------
    version : str
        ``3L``, ``5L`` or ``Y3L``.
    type : str or None
        Valuation type (``TTO``, ``VAS``, ``VT``, ``CW``, ``RCW``, ``cTTO``...).
        May be ``None`` when the country has one set for the version (Y3L).
    country : str
        The R package's spelling (case-insensitive; older R names listed as
        aliases in a set's file are accepted too) or an unambiguous ISO 3166
        alpha-2 code.
    method : str, optional
        For ``RCW``: ``EQ`` (EuroQol 2019) or ``VH`` (van Hout & Shaw 2021).
        Omitted: ``VH`` where a country has both (R ``eq5d``'s default),
        else the one method bundled for that country.

    Raises
    ------
    UnknownValueSetError
        With the list of valid choices, or the reason a set of the R package
        is not bundled.
    """
    v = normalise_version(version)
    sets = [s for s in all_valuesets() if s.version == v]
    types = sorted({s.type for s in sets} | {str(g["type"]) for g in unavailable_valuesets()
                                              if g["version"] == v})
    if type is not None:
        t_match = [t for t in types if t.upper() == str(type).strip().upper()]
        if not t_match:
            raise UnknownValueSetError(
                f"no value-set type {type!r} for EQ-5D-{v}; choose from {', '.join(types)}"
            )
        sets = [s for s in sets if s.type == t_match[0]]
    if method is not None:
        methods = sorted({s.method for s in sets if s.method} | {
            str(g["method"]) for g in unavailable_valuesets() if g["version"] == v and g["method"]})
        if not methods:
            raise UnknownValueSetError("`method` applies only to reverse crosswalks (type='RCW')")
        if method.strip().upper() not in methods:
            raise UnknownValueSetError(
                f"no method {method!r} for EQ-5D-{v} {type}; choose from {', '.join(methods)}")
        sets = [s for s in sets if s.method == method.strip().upper()]
    c = _norm(str(country))
    found = [s for s in sets if _norm(s.country) == c or c in {_norm(a) for a in s.aliases}]
    if not found and len(c) == 2:
        found = [s for s in sets if s.iso3166 == c]
        if len({s.country for s in found}) > 1 and type is not None:
            names = ", ".join(sorted({s.country for s in found}))
            raise UnknownValueSetError(
                f"ISO code {country!r} is ambiguous for EQ-5D-{v} {type}: it matches {names}; "
                "give the country name"
            )
    if not found:
        gone = _unavailable_for(v, type, str(country), method)
        if gone is not None:
            what = f"EQ-5D-{v} {gone['type']}" + (f" ({gone['method']})" if gone["method"] else "")
            raise UnknownValueSetError(f"the {what} value set for {country!r} is not available: "
                                       f"{gone['reason']}")
        what = f"EQ-5D-{v}" + (f" {sets[0].type}" if type is not None and sets else "")
        names = ", ".join(sorted({s.country for s in sets}, key=str.upper))
        raise UnknownValueSetError(f"no {what} value set for country {country!r}; choose from {names}")
    if len(found) > 1 and method is None and {s.type for s in found} == {"RCW"}:
        found = [s for s in found if s.method == "VH"] or found  # R eq5d's default method
    if len(found) > 1:
        options = ", ".join(f"{s.type}{'/' + s.method if s.method else ''} ({s.country})" for s in found)
        raise UnknownValueSetError(
            f"{country!r} has several EQ-5D-{v} value sets: {options}; give `type` (and `method`)"
        )
    return found[0]


def valueset_catalogue(version: str | None = None) -> pd.DataFrame:
    """The catalogue of bundled value sets, one row per set, with citations.

    Parameters
    ----------
    version : str, optional
        Keep only sets for this descriptive system.

    Returns
    -------
    pandas.DataFrame
        Columns ``key, version, type, method, country, iso3166, form, authors,
        year, title, journal, doi, url, citation, available, note``.  Sets of
        the R package that spinereg does not bundle are listed with
        ``available=False`` and the reason in ``note``.
    """
    sets = all_valuesets()
    if version is not None:
        v = normalise_version(version)
        sets = tuple(s for s in sets if s.version == v)
    rows = [
        {
            "key": s.key,
            "version": s.version,
            "type": s.type,
            "method": s.method,
            "country": s.country,
            "iso3166": s.iso3166,
            "form": s.form,
            "authors": s.source.get("authors", ""),
            "year": s.source.get("year"),
            "title": s.source.get("title", ""),
            "journal": s.source.get("journal", ""),
            "doi": s.source.get("doi", ""),
            "url": s.source.get("url", ""),
            "citation": s.citation,
            "available": True,
            "note": str(s.source.get("note", "")),
        }
        for s in sets
    ]
    for gone in unavailable_valuesets():
        if version is not None and gone["version"] != normalise_version(version):
            continue
        key = "/".join(x for x in (gone["version"], gone["type"], gone["method"], gone["country"]) if x)
        rows.append({
            "key": key,
            "version": gone["version"], "type": gone["type"], "method": gone["method"],
            "country": gone["country"], "iso3166": "", "form": "",
            "authors": gone.get("authors", ""), "year": gone.get("year"),
            "title": gone.get("title", ""), "journal": gone.get("journal", ""),
            "doi": gone.get("doi", ""), "url": "", "citation": "",
            "available": False, "note": gone["reason"],
        })
    columns = ["key", "version", "type", "method", "country", "iso3166", "form", "authors",
               "year", "title", "journal", "doi", "url", "citation", "available", "note"]
    return pd.DataFrame(rows, columns=columns)

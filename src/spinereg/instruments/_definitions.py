"""Instrument definitions: items, valid values, version, scoring and references.

Each instrument is one TOML data file in ``instruments/data/instruments``.  The
registry, import validation and web forms of later layers are built from the
same definitions.  No copyrighted questionnaire wording is shipped: items have
ids and short neutral labels; a licensed site supplies the wording with
:func:`load_wording`.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from spinereg._errors import DataFileError, SpineregError

__all__ = ["Instrument", "Item", "get_instrument", "list_instruments", "load_wording"]


@dataclass(frozen=True)
class Item:
    """One questionnaire item.

    Attributes
    ----------
    id : str
        Stable item id (column name in data files), e.g. ``MO`` or ``odi_3``.
    label : str
        Short neutral label (not the copyrighted wording).
    min, max : int
        The valid integer response range, inclusive.
    """

    id: str
    label: str
    min: int
    max: int


@dataclass(frozen=True)
class Instrument:
    """One instrument definition (see module docstring)."""

    id: str
    name: str
    version: str
    owner: str
    scoring: str
    description: str
    items: tuple[Item, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    references: tuple[Mapping[str, str], ...] = ()

    @property
    def item_ids(self) -> tuple[str, ...]:
        return tuple(i.id for i in self.items)

    def item(self, item_id: str) -> Item:
        for it in self.items:
            if it.id == item_id:
                return it
        raise SpineregError(f"instrument {self.id!r} has no item {item_id!r}; items: "
                            f"{', '.join(self.item_ids)}")


def _parse(name: str, text: str) -> Instrument:
    try:
        doc = tomllib.loads(text)
        items = tuple(
            Item(id=str(i["id"]), label=str(i["label"]), min=int(i["min"]), max=int(i["max"]))
            for i in doc["items"]
        )
        return Instrument(
            id=str(doc["id"]), name=str(doc["name"]), version=str(doc["version"]),
            owner=str(doc.get("owner", "")), scoring=str(doc["scoring"]),
            description=str(doc.get("description", "")), items=items,
            params=dict(doc.get("params", {})),
            references=tuple(dict(r) for r in doc.get("references", [])),
        )
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DataFileError(f"instrument file {name}: {exc}") from None


@functools.cache
def _all() -> dict[str, Instrument]:
    root = resources.files("spinereg.instruments").joinpath("data", "instruments")
    out: dict[str, Instrument] = {}
    for node in sorted(root.iterdir(), key=lambda n: n.name):
        if node.name.endswith(".toml"):
            inst = _parse(node.name, node.read_text(encoding="utf-8"))
            out[inst.id] = inst
    return out


def list_instruments() -> tuple[Instrument, ...]:
    """All bundled instrument definitions, sorted by id."""
    return tuple(_all()[k] for k in sorted(_all()))


def get_instrument(instrument_id: str) -> Instrument:
    """The definition of one instrument (``eq5d3l``, ``eq5d5l``, ``eq5dy3l``,
    ``eqvas``, ``odi``, ``nrs_back``, ``nrs_leg``)."""
    try:
        return _all()[instrument_id]
    except KeyError:
        raise SpineregError(
            f"unknown instrument {instrument_id!r}; choose from {', '.join(sorted(_all()))}"
        ) from None


def load_wording(instrument_id: str, path: str | Path) -> dict[str, str]:
    """Read a licensed site's wording file for an instrument.

    The file is TOML with one string per item id, e.g. ``odi_1 = "..."``.
    Every key must be an item of the instrument; items without wording keep
    their neutral label.

    Returns
    -------
    dict
        Item id -> wording text, for every item.
    """
    inst = get_instrument(instrument_id)
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SpineregError(f"wording file {p}: {exc}") from None
    unknown = sorted(set(doc) - set(inst.item_ids))
    if unknown:
        raise SpineregError(f"wording file {p}: unknown item id(s) {', '.join(unknown)} for "
                            f"{inst.name}; items: {', '.join(inst.item_ids)}")
    bad = sorted(k for k, v in doc.items() if not isinstance(v, str))
    if bad:
        raise SpineregError(f"wording file {p}: item(s) {', '.join(bad)} must be strings")
    return {i.id: str(doc.get(i.id, i.label)) for i in inst.items}

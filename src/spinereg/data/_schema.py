"""The tidy extract schema (``resources/schema.toml``), loaded once."""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from spinereg._errors import DataFileError
from spinereg.instruments import get_instrument

__all__ = ["Column", "Entity", "TimePoint", "entities", "entity", "timepoints"]

TYPES = ("str", "int", "float", "date", "bool", "category", "codes")


@dataclass(frozen=True)
class Column:
    """One column of a tidy entity.

    ``min``/``max`` hold the valid range of numeric columns; for PROM items
    they come from the instrument definition (``instrument``/``item``).
    """

    name: str
    type: str
    required: bool
    description: str
    values: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    pattern: str = ""
    references: str = ""
    instrument: str = ""
    item: str = ""
    standard: str = ""


@dataclass(frozen=True)
class Entity:
    """One tidy table: its key columns and columns."""

    name: str
    key: tuple[str, ...]
    description: str
    columns: tuple[Column, ...] = field(repr=False)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


@dataclass(frozen=True)
class TimePoint:
    """A follow-up time point: day window relative to the operation and target day."""

    name: str
    window: tuple[int, int]
    target: int


def _column(raw: dict[str, Any], where: str) -> Column:
    t = str(raw["type"])
    if t not in TYPES:
        raise DataFileError(f"{where}: column {raw['name']!r} has unknown type {t!r}")
    lo = raw.get("min")
    hi = raw.get("max")
    if raw.get("instrument"):
        item = get_instrument(str(raw["instrument"])).item(str(raw["item"]))
        lo, hi = item.min, item.max
    return Column(
        name=str(raw["name"]), type=t, required=bool(raw.get("required", False)),
        description=str(raw.get("description", "")), values=tuple(str(v) for v in raw.get("values", [])),
        min=None if lo is None else float(lo), max=None if hi is None else float(hi),
        pattern=str(raw.get("pattern", "")), references=str(raw.get("references", "")),
        instrument=str(raw.get("instrument", "")), item=str(raw.get("item", "")),
        standard=str(raw.get("standard", "")),
    )


@functools.cache
def _load() -> tuple[dict[str, Entity], dict[str, TimePoint]]:
    text = resources.files("spinereg.data").joinpath("resources", "schema.toml").read_text("utf-8")
    doc = tomllib.loads(text)
    ents: dict[str, Entity] = {}
    for e in doc["entity"]:
        cols = tuple(_column(c, f"schema.toml entity {e['name']}") for c in e["column"])
        ents[str(e["name"])] = Entity(str(e["name"]), tuple(e["key"]), str(e.get("description", "")), cols)
    tps = {str(k): TimePoint(str(k), (int(v["window"][0]), int(v["window"][1])), int(v["target"]))
           for k, v in doc["timepoints"].items()}
    return ents, tps


def entities() -> tuple[Entity, ...]:
    """All tidy entities, in dependency order (parents before children)."""
    return tuple(_load()[0].values())


def entity(name: str) -> Entity:
    """One tidy entity by name."""
    ents = _load()[0]
    if name not in ents:
        raise DataFileError(f"unknown entity {name!r}; entities: {', '.join(ents)}")
    return ents[name]


def timepoints() -> dict[str, TimePoint]:
    """The default follow-up time points (name -> window and target day)."""
    return dict(_load()[1])

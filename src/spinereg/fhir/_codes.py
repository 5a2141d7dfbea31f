"""The instruments' codes (``resources/codes.toml``), each with the page it was checked on."""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from importlib import resources

from spinereg._errors import DataFileError

__all__ = ["InstrumentCode", "instrument_codes"]


@dataclass(frozen=True)
class InstrumentCode:
    """One code of an instrument (``use`` ``"questionnaire"``) or of its score (``"score"``)."""

    instrument: str
    use: str
    system: str
    code: str
    display: str
    source: str


@functools.cache
def instrument_codes() -> tuple[InstrumentCode, ...]:
    """The checked codes of ``codes.toml`` (the unverified candidates listed there are not returned)."""
    text = resources.files("spinereg.fhir").joinpath("resources", "codes.toml").read_text("utf-8")
    try:
        doc = tomllib.loads(text)
        out = tuple(InstrumentCode(str(c["instrument"]), str(c["use"]), str(c["system"]), str(c["code"]),
                                   str(c["display"]), str(c["source"])) for c in doc["code"])
    except (tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise DataFileError(f"codes.toml: {exc}") from None
    for c in out:
        if c.use not in ("questionnaire", "score"):
            raise DataFileError(f"codes.toml: code {c.code}: use must be questionnaire or score, not {c.use!r}")
    return out

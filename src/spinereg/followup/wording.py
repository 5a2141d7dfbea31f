"""What the patient's questionnaire page asks: the EQ-5D version of the operation's site, and the item
labels in the page's language, from a site's licensed wording files or else the neutral labels.

EQ-5D-5L as a site choice
-------------------------
``SPINEREG_FOLLOWUP_EQ5D5L``: the operations' ``hospital`` values (comma-separated) whose patients
answer EQ-5D-5L instead of EQ-5D-3L on the page; ``*`` for every site.  Unset: EQ-5D-3L everywhere.
The page then writes ``eq5d5l_*`` columns, which the registry holds beside ``eq5d3l_*``.

Licensed wording files
----------------------
spinereg ships only neutral labels ("Mobility", "Pain intensity"): the instruments' wording is
copyrighted.  A site that holds a licence puts its wording files in the folder
``SPINEREG_WORDING_DIR``, one file per instrument and language, named ``<instrument>.<language>.toml``
(``eq5d3l.da.toml``, ``odi.en.toml``; instrument ids as in :func:`spinereg.instruments.list_instruments`,
language codes as the web registry's, ``da`` or ``en``).  The format is
:func:`spinereg.instruments.load_wording`'s: TOML with one string per item id, for example::

    # odi.en.toml: the site's licensed ODI 2.1a wording (not shipped with spinereg)
    odi_1 = "..."
    odi_2 = "..."

An item missing from the file keeps its neutral label; an unknown item id or a value that is not a
string is an error naming the file.  A language without a file (``da-dk`` tries ``da-dk`` then ``da``)
gets the neutral labels.  The answer options stay numbered: the files hold the items' text only.
Files are read again when they change (their modification time).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from spinereg.instruments import get_instrument, load_wording

__all__ = ["EQ5D5L_SITES_ENV", "WORDING_DIR_ENV", "item_labels", "patient_instruments", "wording_file"]

EQ5D5L_SITES_ENV = "SPINEREG_FOLLOWUP_EQ5D5L"
WORDING_DIR_ENV = "SPINEREG_WORDING_DIR"
#: The page's instruments after the EQ-5D descriptive system, in order.
_OTHERS = ("eqvas", "odi", "nrs_back", "nrs_leg")


def patient_instruments(hospital: str | None) -> tuple[str, ...]:
    """The instruments of the patient's page for an operation at ``hospital``: EQ-5D-5L when the site
    chose it (``SPINEREG_FOLLOWUP_EQ5D5L``), else EQ-5D-3L; then EQ-VAS, ODI, NRS back and NRS leg."""
    chosen = {s.strip() for s in os.environ.get(EQ5D5L_SITES_ENV, "").split(",") if s.strip()}
    five = "*" in chosen or (hospital is not None and hospital in chosen)
    return ("eq5d5l" if five else "eq5d3l", *_OTHERS)


def wording_file(instrument_id: str, language: str | None, folder: Path | None = None) -> Path | None:
    """The site's wording file of ``instrument_id`` for ``language`` (``da-dk``: ``da-dk`` then ``da``), or
    None (no folder, or no file for the language)."""
    base = folder if folder is not None else (Path(os.environ[WORDING_DIR_ENV]) if os.environ.get(WORDING_DIR_ENV)
                                              else None)
    if base is None or not language:
        return None
    lang = language.lower()
    for code in dict.fromkeys((lang, lang.split("-")[0])):
        path = base / f"{instrument_id}.{code}.toml"
        if path.is_file():
            return path
    return None


@lru_cache(maxsize=64)
def _read(instrument_id: str, path: str, mtime_ns: int) -> tuple[tuple[str, str], ...]:
    return tuple(load_wording(instrument_id, path).items())


def item_labels(instrument_id: str, language: str | None, folder: Path | None = None) -> dict[str, str]:
    """Item id -> the label the page shows: the site's wording for ``language``
    (:func:`wording_file`), else the instrument's neutral label.  A malformed file raises
    :class:`spinereg.SpineregError` naming it."""
    path = wording_file(instrument_id, language, folder)
    if path is None:
        return {i.id: i.label for i in get_instrument(instrument_id).items}
    return dict(_read(instrument_id, str(path), path.stat().st_mtime_ns))

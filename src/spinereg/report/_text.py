"""Words for codes: how the report names time points, categories and instruments.

Only vocabulary lives here (no numbers from a study).  Unknown codes fall back
to a readable form of the code itself, so a new category in ``results.json``
never breaks a report.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "INSTRUMENTS",
    "category_label",
    "human",
    "join_words",
    "timepoint_label",
]

#: Instrument descriptions for the methods (version, scoring, range).
INSTRUMENTS: dict[str, str] = {
    "eq5d3l": ("the EQ-5D-3L (EuroQol Research Foundation): five dimensions with three levels each, "
               "valued as a health-utility index (1 = full health, 0 = dead, negative values worse than dead)"),
    "eq5d5l": ("the EQ-5D-5L (EuroQol Research Foundation): five dimensions with five levels each, "
               "valued as a health-utility index (1 = full health, 0 = dead, negative values worse than dead)"),
    "odi": ("the Oswestry Disability Index version 2.1a: ten sections scored 0 to 5, expressed as a percentage "
            "of the maximum over the sections answered (0 = no disability, 100 = bed-bound); a score needs at "
            "least nine answered sections (Fairbank and Pynsent 2000)"),
    "eqvas": "the EQ VAS: self-rated health on a visual analogue scale from 0 (worst) to 100 (best imaginable)",
    "nrs_back": "a numeric rating scale of back pain from 0 (no pain) to 10 (worst imaginable pain)",
    "nrs_leg": "a numeric rating scale of leg pain from 0 (no pain) to 10 (worst imaginable pain)",
}

_CATEGORIES: dict[str, str] = {
    # cohort vocabulary
    "cancer_vcf": "cancer-related vertebral compression fracture",
    "osteoporotic_vcf": "osteoporotic vertebral compression fracture",
    "traumatic_fracture": "traumatic fracture",
    # cement leak types (Yeom et al. 2003, and the registry schema)
    "yeom_b": "Type B, via the basivertebral vein",
    "yeom_s": "Type S, via the segmental veins",
    "yeom_c": "Type C, through a cortical defect",
    "intradiscal": "Intradiscal",
    "paravertebral": "Paravertebral",
    "epidural_foraminal": "Epidural or foraminal",
    "venous": "Venous",
    "type not recorded": "Mechanism not recorded",
    "location not recorded": "Location not recorded",
    # Paretian classification of EQ-5D change (Devlin et al. 2010)
    "better": "Better",
    "worse": "Worse",
    "mixed": "Mixed",
    "no_change": "No change",
    "no_problems": "No problems at either time",
    # complications
    "any": "Any",
    "ungraded": "Not graded",
}


def human(code: str) -> str:
    """A code as words: underscores become spaces (``"first_per_patient"`` -> ``"first per patient"``)."""
    return code.replace("_", " ")


def category_label(code: str) -> str:
    """The display name of a category code (leak type, PCHC class, indication...)."""
    if code in _CATEGORIES:
        return _CATEGORIES[code]
    text = human(code)
    return text[:1].upper() + text[1:]


_UNITS = {"d": "day", "w": "week", "m": "month", "y": "year"}


def timepoint_label(name: str) -> str:
    """A time-point name as words: ``"3m"`` -> ``"3 months"``, ``"1y"`` -> ``"1 year"``, ``"baseline"`` ->
    ``"Baseline"``.

    Names that are not of the form number + unit are shown as written
    (first letter capitalised).
    """
    m = re.fullmatch(r"(\d+)\s*([dwmy])", name.strip().lower())
    if m:
        n, unit = m.group(1), _UNITS[m.group(2)]
        return f"{n} {unit}{'' if n == '1' else 's'}"
    text = human(name)
    return text[:1].upper() + text[1:]


def join_words(items: Iterable[str], conj: str = "and") -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    xs = [x for x in items if x]
    if len(xs) <= 1:
        return "".join(xs)
    return f"{', '.join(xs[:-1])} {conj} {xs[-1]}"

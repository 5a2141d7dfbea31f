"""The study specification: a TOML file, validated with pydantic.

A study is data, not code.  The spec names the data source, the cohort, the
follow-up time points, the outcomes (instrument, value set, direction, MCID)
and the analyses.  Every error names the key and says what was expected.
"""

from __future__ import annotations

import hashlib
import itertools
import tomllib
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from spinereg._errors import SpineregError, UnknownValueSetError
from spinereg.data import entity, timepoints
from spinereg.instruments import find_valueset

__all__ = ["SpecError", "StudySpec", "load_spec", "outcome_defaults"]

_CATEGORIES = entity("operations").column("procedure_category").values
_INDICATIONS = entity("operations").column("indication").values


class SpecError(SpineregError):
    """A study spec is invalid; the message names the file and key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSource(_Model):
    """Where the tidy data come from: a registry database URL or an extract directory."""

    database: str | None = None
    extract: str | None = None

    @model_validator(mode="after")
    def _one(self) -> DataSource:
        if (self.database is None) == (self.extract is None):
            raise ValueError("give exactly one of 'database' (a URL) or 'extract' (a directory)")
        return self


class Period(_Model):
    start: date
    end: date

    @model_validator(mode="after")
    def _order(self) -> Period:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class Cohort(_Model):
    """Which operations qualify (all given criteria must hold)."""

    procedure_categories: list[str] = Field(default_factory=list)
    procedure_codes: list[str] = Field(default_factory=list, description="prefix match")
    indications: list[str] = Field(default_factory=list)
    diagnosis_codes: list[str] = Field(default_factory=list, description="ICD-10 prefix match")
    period: Period | None = None
    age_min: float | None = Field(default=None, ge=0)
    age_max: float | None = Field(default=None, le=130)
    first_per_patient: bool = True
    exclude_diagnosis_codes: list[str] = Field(default_factory=list)
    require_baseline: list[str] = Field(default_factory=list,
                                        description="outcomes that must have a baseline answer")

    @field_validator("first_per_patient")
    @classmethod
    def _patient_unit(cls, v: bool) -> bool:
        if not v:
            raise ValueError("false is not supported: the analyses take the patient as the unit (survival, "
                             "per-patient rates, the mixed model), so each patient enters once with the first "
                             "qualifying operation")
        return v

    @field_validator("procedure_categories", "indications")
    @classmethod
    def _codes(cls, v: list[str], info: ValidationInfo) -> list[str]:
        allowed, what = ((_CATEGORIES, "procedure categories") if info.field_name == "procedure_categories"
                         else (_INDICATIONS, "indications"))
        bad = [c for c in v if c not in allowed]
        if bad:
            raise ValueError(f"unknown {what} {bad}; choose from {', '.join(allowed)}")
        return v


class TimePointSpec(_Model):
    """A follow-up time point: answer window in days from the operation and the target day."""

    window: tuple[int, int]
    target: int

    @model_validator(mode="after")
    def _inside(self) -> TimePointSpec:
        lo, hi = self.window
        if lo > hi:
            raise ValueError(f"window {list(self.window)} is empty (start after end)")
        if not lo <= self.target <= hi:
            raise ValueError(f"target day {self.target} lies outside the window {list(self.window)}")
        return self


def outcome_defaults() -> dict[str, dict[str, Any]]:
    """Each instrument's default direction and MCID with its source (``resources/outcome_defaults.toml``)."""
    text = resources.files("spinereg.study").joinpath("resources/outcome_defaults.toml").read_text(encoding="utf-8")
    doc = tomllib.loads(text)
    doc.pop("version", None)
    return doc


class Outcome(_Model):
    """An outcome: an instrument, its value set (EQ-5D), direction and MCID with its source.

    ``higher_is_better`` and ``mcid`` (with ``mcid_source``) default to the
    instrument's cited defaults (:func:`outcome_defaults`) when left out.
    """

    instrument: Literal["eq5d3l", "eq5d5l", "odi", "eqvas", "nrs_back", "nrs_leg"]
    valueset: str | None = Field(default=None, description="EQ-5D: country, e.g. Denmark")
    higher_is_better: bool
    mcid: float | None = Field(default=None, gt=0)
    mcid_source: str = ""

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("instrument"), str):
            return data
        d = outcome_defaults().get(data["instrument"], {})
        out = dict(data)
        if "higher_is_better" not in out and "higher_is_better" in d:
            out["higher_is_better"] = d["higher_is_better"]
        if "mcid" not in out and "mcid" in d:
            out["mcid"] = d["mcid"]
            out.setdefault("mcid_source", d["mcid_source"])
        return out

    @model_validator(mode="after")
    def _valueset(self) -> Outcome:
        if self.instrument in ("eq5d3l", "eq5d5l"):
            if not self.valueset:
                raise ValueError("EQ-5D outcomes need 'valueset' (a country, e.g. \"Denmark\")")
            version, type_ = ("3L", "TTO") if self.instrument == "eq5d3l" else ("5L", "VT")
            try:
                find_valueset(version, type_, self.valueset)
            except UnknownValueSetError as exc:
                raise ValueError(str(exc)) from None
        elif self.valueset is not None:
            raise ValueError(f"'valueset' applies only to EQ-5D, not {self.instrument}")
        default = outcome_defaults().get(self.instrument, {}).get("higher_is_better")
        if default is not None and self.higher_is_better != default:
            raise ValueError(f"higher_is_better = {str(self.higher_is_better).lower()} contradicts {self.instrument}, "
                             f"whose higher scores are {'better' if default else 'worse'}; leave it out")
        if self.mcid is not None and not self.mcid_source:
            raise ValueError("give 'mcid_source' (the citation the MCID comes from)")
        return self


class Analyses(_Model):
    descriptive: bool = True
    paired_change: bool = True
    responders: bool = True
    rates: bool = True
    survival: bool = True
    sensitivity_mixed_model: bool = True
    conf_level: float = Field(default=0.95, gt=0, lt=1)
    small_cell_threshold: int = Field(default=5, ge=0)
    suppress_small_cells: bool | None = Field(
        default=None, description="show counts below the threshold as '<threshold' in reports; "
                                  "default: on for real data, off for synthetic data")


class StudySpec(_Model):
    """A whole study (see ``examples/pvp-cancer-vcf/study.toml``)."""

    title: str = Field(min_length=1)
    question: str = Field(min_length=1)
    data: DataSource
    cohort: Cohort
    timepoints: dict[str, TimePointSpec] = Field(default_factory=lambda: {
        k: TimePointSpec(window=v.window, target=v.target) for k, v in timepoints().items()
        if k in ("baseline", "3m", "1y")})
    outcomes: dict[str, Outcome] = Field(min_length=1)
    analyses: Analyses = Field(default_factory=Analyses)

    @model_validator(mode="after")
    def _checks(self) -> StudySpec:
        if "baseline" not in self.timepoints:
            raise ValueError("timepoints must include 'baseline'")
        ordered = sorted(self.timepoints.items(), key=lambda kv: kv[1].window[0])
        for (a, ta), (b, tb) in itertools.pairwise(ordered):
            if tb.window[0] <= ta.window[1]:
                raise ValueError(f"time-point windows overlap: {a} {list(ta.window)} and {b} {list(tb.window)}")
        unknown = [o for o in self.cohort.require_baseline if o not in self.outcomes]
        if unknown:
            raise ValueError(f"cohort.require_baseline names unknown outcomes {unknown}; outcomes: "
                             f"{', '.join(self.outcomes)}")
        return self


def load_spec(path: str | Path) -> tuple[StudySpec, str]:
    """Read and validate a study spec; return it and the SHA-256 of the file.

    Raises
    ------
    SpecError
        One line per problem, naming the file and the key (e.g.
        ``outcomes.eq5d.valueset``).
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise SpecError(f"{p}: cannot read the study spec: {exc.strerror}") from None
    try:
        doc: dict[str, Any] = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"{p}: not valid TOML: {exc}") from None
    try:
        spec = StudySpec.model_validate(doc)
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            key = ".".join(str(x) for x in e["loc"]) or "(top level)"
            msg = str(e["msg"]).removeprefix("Value error, ")
            lines.append(f"{p}: {key}: {msg}")
        raise SpecError("\n".join(lines)) from None
    if spec.data.extract is not None:
        extract = (p.parent / spec.data.extract) if not Path(spec.data.extract).is_absolute() \
            else Path(spec.data.extract)
        if not (extract / "dataset.json").exists():
            raise SpecError(f"{p}: data.extract: {extract} is not a spinereg extract directory "
                            "(no dataset.json); write one with `spinereg export` or `spinereg synth --out`")
    return spec, hashlib.sha256(raw).hexdigest()

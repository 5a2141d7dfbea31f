"""The study specification: a TOML file, validated with pydantic.

A study is data, not code.  The spec names the data source, the cohort, the
follow-up time points, the outcomes (instrument, value set, direction, MCID)
and the analyses.  Every error names the file and the key, says what was
expected, and suggests the nearest known key for a misspelt one.  The field
descriptions below are the reference documentation: ``docs/study-spec.md`` is
generated from them (``tools/gen_study_spec_docs.py``).
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import tomllib
import types
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from spinereg._errors import StudySpecError, UnknownValueSetError
from spinereg.data import entity, timepoints
from spinereg.instruments import find_valueset

__all__ = ["SpecError", "StudySpec", "load_spec", "outcome_defaults", "resolve_data_source"]

_CATEGORIES = entity("operations").column("procedure_category").values
_INDICATIONS = entity("operations").column("indication").values


#: The error of an invalid study spec: :class:`spinereg.StudySpecError` (the name
#: ``SpecError`` is kept for existing callers).
SpecError = StudySpecError


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSource(_Model):
    """Where the data come from: a registry database or an extract directory (exactly one).

    A relative path in either is relative to the spec file, not to the working
    directory.  ``spinereg study run --db URL`` or ``--data DIR`` overrides this
    table; paths given on the command line are relative to the working directory.
    """

    database: str | None = Field(
        default=None,
        description="Registry database URL: `sqlite:///registry.sqlite3` (a relative SQLite path is relative to "
                    "the spec file; `sqlite:////abs/path` is absolute) or `postgresql://user@host/db`.")
    extract: str | None = Field(
        default=None,
        description="Extract directory written by `spinereg export` or `spinereg synth --out` (holds "
                    "`dataset.json`); a relative path is relative to the spec file.")

    @model_validator(mode="after")
    def _one(self) -> DataSource:
        if (self.database is None) == (self.extract is None):
            raise ValueError("give exactly one of 'database' (a URL) or 'extract' (a directory)")
        return self


class Period(_Model):
    """The operation dates that qualify, both ends inclusive."""

    start: date = Field(description="First operation date (TOML date, e.g. `2013-01-01`).")
    end: date = Field(description="Last operation date; not before `start`.")

    @model_validator(mode="after")
    def _order(self) -> Period:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class Cohort(_Model):
    """Which operations qualify (all given criteria must hold)."""

    procedure_categories: list[str] = Field(
        default_factory=list,
        description="Procedure categories that qualify (the registry's vocabulary, see "
                    "docs/data-dictionary.md). An operation qualifies by category or by `procedure_codes`; "
                    "neither given: every procedure.")
    procedure_codes: list[str] = Field(
        default_factory=list,
        description="Procedure code prefixes that qualify (an operation qualifies when one of its codes starts "
                    "with one of them).")
    indications: list[str] = Field(
        default_factory=list,
        description="Indications that qualify (the registry's vocabulary). An operation qualifies by indication "
                    "or by `diagnosis_codes`; neither given: every indication.")
    diagnosis_codes: list[str] = Field(
        default_factory=list, description="ICD-10 code prefixes that qualify (prefix match, e.g. `C79.5`).")
    period: Period | None = Field(default=None, description="Operation dates that qualify; absent: all dates.")
    age_min: float | None = Field(
        default=None, ge=0, le=130,
        description="Lowest age at operation in completed years (inclusive); unknown age is excluded when set.")
    age_max: float | None = Field(
        default=None, ge=0, le=130,
        description="Highest age at operation in completed years (inclusive); not below `age_min`.")
    first_per_patient: bool = Field(
        default=True,
        description="Each patient enters once, with the first qualifying operation (consecutive patients). "
                    "Only `true` is supported: the analyses take the patient as the unit.")
    exclude_diagnosis_codes: list[str] = Field(
        default_factory=list,
        description="ICD-10 code prefixes that exclude an operation (any of its diagnosis codes matching). "
                    "May not cover a prefix of `diagnosis_codes`, which it would void.")
    require_baseline: list[str] = Field(
        default_factory=list,
        description="Names of outcomes (keys of `[outcomes]`) whose baseline questionnaire must be complete "
                    "for a patient to enter the cohort.")

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
            hints = [f"did you mean {m[0]!r} for {b!r}?" for b in bad
                     if (m := difflib.get_close_matches(b, allowed, n=1))]
            hint = f" ({'; '.join(hints)})" if hints else ""
            raise ValueError(f"unknown {what} {bad}{hint}; choose from {', '.join(allowed)}")
        return v

    @field_validator("procedure_codes", "diagnosis_codes", "exclude_diagnosis_codes")
    @classmethod
    def _prefixes(cls, v: list[str]) -> list[str]:
        if any(not c.strip() for c in v):
            raise ValueError("an empty code prefix would match every code; remove it")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Cohort:
        if self.age_min is not None and self.age_max is not None and self.age_min > self.age_max:
            raise ValueError(f"age_min {self.age_min:g} is above age_max {self.age_max:g}: no age qualifies")
        voided = [(e, d) for d in self.diagnosis_codes for e in self.exclude_diagnosis_codes if d.startswith(e)]
        if voided:
            e, d = voided[0]
            raise ValueError(f"exclude_diagnosis_codes {e!r} excludes every operation that diagnosis_codes "
                             f"{d!r} includes")
        return self


class TimePointSpec(_Model):
    """A time point: the answer window in days from the operation, and the target day.

    A questionnaire belongs to the time point when its answer date falls in the
    window; of several, the one nearest the target day counts.  Windows may not
    overlap, and every follow-up window starts after the baseline window ends.
    """

    window: tuple[int, int] = Field(
        description="First and last day of the window, in days from the operation (inclusive; negative: "
                    "before the operation), e.g. `[60, 150]`.")
    target: int = Field(description="The target day, inside the window, e.g. `90`.")

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
    instrument's cited defaults (``src/spinereg/study/resources/outcome_defaults.toml``)
    when left out.
    """

    instrument: Literal["eq5d3l", "eq5d5l", "odi", "eqvas", "nrs_back", "nrs_leg"] = Field(
        description="The instrument scored: `eq5d3l`, `eq5d5l` (EQ-5D index), `odi` (Oswestry Disability "
                    "Index), `eqvas` (EQ VAS), `nrs_back`, `nrs_leg` (pain 0-10).")
    valueset: str | None = Field(
        default=None,
        description="EQ-5D only, and required there: the value set's country, e.g. `Denmark` (see "
                    "docs/valuesets.md).")
    higher_is_better: bool = Field(
        json_schema_extra={"doc_default": "the instrument's"},
        description="Direction of the scale. Default: the instrument's; a value that contradicts the "
                    "instrument is refused.")
    mcid: float | None = Field(
        default=None, gt=0, json_schema_extra={"doc_default": "the instrument's, if any"},
        description="Minimal clinically important difference (responder threshold), in score units. "
                    "Default: the instrument's cited default, if it has one.")
    mcid_source: str = Field(
        default="",
        description="The citation of `mcid`; required with an explicit `mcid`, and only allowed with one.")

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("instrument"), str):
            return data
        if "mcid_source" in data and "mcid" not in data:
            raise ValueError("'mcid_source' is given without 'mcid': give the MCID it is the source of, or "
                             "leave both out for the instrument's cited default")
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
    """Which analyses run, and the settings they share."""

    descriptive: bool = Field(default=True, description="Table 1 and the outcome summaries.")
    paired_change: bool = Field(
        default=True, description="Change from baseline per follow-up: paired t-test and Wilcoxon signed-rank "
                                  "(Hodges-Lehmann) with CIs.")
    responders: bool = Field(default=True, description="Responders (change of at least the MCID).")
    rates: bool = Field(default=True, description="Complication and cement-leak rates with CIs.")
    survival: bool = Field(default=True, description="Kaplan-Meier survival after the index operation.")
    sensitivity_mixed_model: bool = Field(
        default=True, description="Sensitivity analysis: change from baseline by a random-intercept mixed model.")
    conf_level: float = Field(default=0.95, gt=0, lt=1, description="Confidence level of every interval.")
    bootstrap_replicates: int = Field(
        default=2000, ge=0, le=100_000, description="Resamples of the patient (cluster) bootstrap of the per-level "
                                                   "cement-leak rate (0: no bootstrap interval).")
    seed: int = Field(default=20261204, ge=0, description="Seed of the random-number generator of the bootstrap "
                                                          "(recorded in results.json: the interval is reproducible).")
    small_cell_threshold: int = Field(
        default=5, ge=0, description="Counts below this are small cells (shown as `<threshold` when suppressed).")
    suppress_small_cells: bool | None = Field(
        default=None, description="Show counts below `small_cell_threshold` as `<threshold` in reports. "
                                  "Default: on for real data, off for synthetic data. `true` needs a "
                                  "threshold above 0.")

    @model_validator(mode="after")
    def _suppression(self) -> Analyses:
        if self.suppress_small_cells and self.small_cell_threshold == 0:
            raise ValueError("suppress_small_cells = true with small_cell_threshold = 0 suppresses nothing; "
                             "give a threshold (e.g. 5) or leave suppress_small_cells out")
        return self


#: Journal style presets of the report (docs/report.md, "Journal style presets").
REPORT_STYLES = ("default", "spine", "esj")


class ReportOptions(_Model):
    """How the report writes numbers: a journal style preset."""

    style: Literal["default", "spine", "esj"] = Field(
        default="default",
        description="Journal style preset: `default`, `spine` (Spine) or `esj` (European Spine Journal). It sets "
                    "the p-value notation and decimals, the CI format and the thousands separator; see "
                    "docs/report.md.")


class StudySpec(_Model):
    """A whole study (see ``examples/pvp-cancer-vcf/study.toml``)."""

    title: str = Field(min_length=1, description="The study's title (report heading).")
    question: str = Field(min_length=1, description="The research question, in one sentence.")
    data: DataSource = Field(description="Where the data come from.")
    cohort: Cohort = Field(description="Which operations qualify (all given criteria must hold).")
    timepoints: dict[str, TimePointSpec] = Field(
        default_factory=lambda: {k: TimePointSpec(window=v.window, target=v.target)
                                 for k, v in timepoints().items() if k in ("baseline", "3m", "1y")},
        json_schema_extra={"doc_default": "baseline, 3m, 1y"},
        description="Named time points (`baseline` required), each `{ window = [first, last], target = day }`. "
                    "Default: baseline [-90, 0], 3m [60, 150], 1y [270, 545] (the registry's).")
    outcomes: dict[str, Outcome] = Field(
        min_length=1, description="Named outcomes (at least one); the name is used in tables and in "
                                  "`cohort.require_baseline`.")
    analyses: Analyses = Field(default_factory=Analyses, json_schema_extra={"doc_default": "every analysis"},
                               description="Which analyses run, and their settings.")
    report: ReportOptions = Field(default_factory=ReportOptions, json_schema_extra={"doc_default": "style default"},
                                  description="How the report writes numbers (journal style preset).")

    @model_validator(mode="after")
    def _checks(self) -> StudySpec:
        if "baseline" not in self.timepoints:
            raise ValueError("timepoints must include 'baseline'")
        ordered = sorted(self.timepoints.items(), key=lambda kv: kv[1].window[0])
        for (a, ta), (b, tb) in itertools.pairwise(ordered):
            if tb.window[0] <= ta.window[1]:
                raise ValueError(f"time-point windows overlap: {a} {list(ta.window)} and {b} {list(tb.window)}")
        base = self.timepoints["baseline"]
        early = [k for k, t in self.timepoints.items() if k != "baseline" and t.window[0] <= base.window[1]]
        if early:
            k = early[0]
            raise ValueError(f"follow-up time point {k} {list(self.timepoints[k].window)} lies before the "
                             f"baseline window {list(base.window)}")
        unknown = [o for o in self.cohort.require_baseline if o not in self.outcomes]
        if unknown:
            raise ValueError(f"cohort.require_baseline names unknown outcomes {unknown}; outcomes: "
                             f"{', '.join(self.outcomes)}")
        return self


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside an annotation (``X | None``, ``dict[str, X]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) in (Union, types.UnionType, dict):
        return [m for a in get_args(annotation) for m in _models(a)]
    return []


def _keys_at(loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed in the table that holds the key at ``loc`` (for "did you mean")."""
    model: type[BaseModel] = StudySpec
    path = list(loc[:-1])
    while path:
        name = path.pop(0)
        field = model.model_fields.get(str(name))
        if field is None:
            return []
        inner = _models(field.annotation)
        if not inner:
            return []
        if get_origin(field.annotation) is dict:
            if not path:
                return []
            path.pop(0)  # the user's name of the time point or outcome
        model = inner[0]
    return list(model.model_fields)


def _suggestion(error: Any) -> str | None:
    """For an unknown key, the nearest allowed key in the same table (difflib), if any is near."""
    if error["type"] != "extra_forbidden":
        return None
    loc = tuple(error["loc"])
    near = difflib.get_close_matches(str(loc[-1]), _keys_at(loc), n=1, cutoff=0.6)
    return near[0] if near else None


def _messages(errors: list[Any]) -> list[str]:
    """One message per problem; a required key reported missing is left out when an unknown
    key in the same table is its misspelling (the "did you mean" line says it)."""
    meant = {(*tuple(e["loc"])[:-1], hint) for e in errors if (hint := _suggestion(e)) is not None}
    return [_message(e) for e in errors if not (e["type"] == "missing" and tuple(e["loc"]) in meant)]


def _message(error: Any) -> str:
    loc = tuple(error["loc"])
    key = ".".join(str(x) for x in loc) or "(top level)"
    msg = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        allowed = _keys_at(loc)
        near = _suggestion(error)
        msg = f"unknown key{f'; did you mean {near!r}?' if near else ''}"
        if allowed:
            msg += f" (allowed here: {', '.join(allowed)})"
    elif error["type"] == "literal_error" and isinstance(error.get("input"), str):
        expected = [str(v) for v in get_args(Outcome.model_fields["instrument"].annotation)] \
            if loc[-1] == "instrument" else []
        close = difflib.get_close_matches(error["input"], expected, n=1, cutoff=0.6)
        if close:
            msg += f"; did you mean {close[0]!r}?"
    return f"{key}: {msg}"


def _sqlite_file(url: str) -> str | None:
    """The file part of a ``sqlite:///`` URL (``None`` for another URL or an in-memory database)."""
    if not url.startswith("sqlite:///"):
        return None
    rest = url[len("sqlite:///"):]
    return rest if rest and rest != ":memory:" else None


def resolve_data_source(spec: StudySpec, spec_path: str | Path) -> tuple[Literal["database", "extract"], str]:
    """Where the spec's data are: ``("database", url)`` or ``("extract", directory)``.

    A relative path is relative to the directory of the spec file, for
    ``data.extract`` and for the file of a ``sqlite:///`` ``data.database``
    alike (``sqlite:////abs/file`` stays absolute; other URLs are unchanged).
    """
    base = Path(spec_path).parent
    if spec.data.extract is not None:
        p = Path(spec.data.extract)
        return "extract", str(p if p.is_absolute() else base / p)
    url = str(spec.data.database)
    file = _sqlite_file(url)
    if file is not None and not Path(file).is_absolute():
        url = f"sqlite:///{base / file}"
    return "database", url


def load_spec(path: str | Path) -> tuple[StudySpec, str]:
    """Read and validate a study spec; return it and the SHA-256 of the file.

    Raises
    ------
    spinereg.StudySpecError
        One line per problem, naming the file and the key (e.g.
        ``outcomes.eq5d.valueset``), with "did you mean" for a misspelt key
        or instrument.  The checks beyond types and ranges: ``data`` has
        exactly one source and an extract directory exists; the period's
        start is not after its end; ``age_min`` is not above ``age_max``;
        no empty code prefix; no excluded diagnosis prefix that voids an
        included one; a time point's window is not reversed and holds its
        target; windows do not overlap and follow-ups come after baseline;
        ``baseline`` exists; ``require_baseline`` names outcomes; EQ-5D
        outcomes name an existing value set and others none; the direction
        agrees with the instrument; an explicit MCID has a source and a
        source has an MCID; suppression has a threshold above 0.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise StudySpecError(f"{p}: cannot read the study spec: {exc.strerror}") from None
    try:
        doc: dict[str, Any] = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise StudySpecError(f"{p}: not valid TOML: {exc}") from None
    try:
        spec = StudySpec.model_validate(doc)
    except ValidationError as exc:
        raise StudySpecError("\n".join(f"{p}: {m}" for m in _messages(exc.errors()))) from None
    kind, where = resolve_data_source(spec, p)
    if kind == "extract" and not (Path(where) / "dataset.json").exists():
        raise StudySpecError(f"{p}: data.extract: {where} is not a spinereg extract directory "
                             "(no dataset.json); write one with `spinereg export` or `spinereg synth --out`")
    return spec, hashlib.sha256(raw).hexdigest()

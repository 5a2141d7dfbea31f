"""The study engine: a study is a file (cohort, time points, outcomes, analyses).

Works on the tidy extract; never imports Django.
"""

from spinereg.study._cohort import CohortResult, candidate_patients
from spinereg.study._run import EmptyCohortError, StudyResult, results_schema, run_study
from spinereg.study._spec import SpecError, StudySpec, load_spec, resolve_data_source

__all__ = [
    "CohortResult",
    "EmptyCohortError",
    "SpecError",
    "StudyResult",
    "StudySpec",
    "candidate_patients",
    "load_spec",
    "resolve_data_source",
    "results_schema",
    "run_study",
]

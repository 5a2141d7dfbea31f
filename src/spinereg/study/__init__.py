"""The study engine: a study is a file (cohort, time points, outcomes, analyses).

Works on the tidy extract; never imports Django.
"""

from spinereg.study._spec import SpecError, StudySpec, load_spec

__all__ = ["SpecError", "StudySpec", "load_spec"]

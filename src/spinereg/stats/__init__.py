"""Statistics for outcome studies, validated against R.

Every function reproduces a named R computation (see each docstring) and is
tested against R's results for the reference data in ``shared/reference/stats``:

* :func:`paired_change` - paired t-test and Wilcoxon signed-rank test
  (``t.test``, ``wilcox.test``);
* :func:`proportion` - Clopper-Pearson, Wilson and Wilson-with-continuity-
  correction intervals (``binom.test``, ``prop.test``);
* :func:`kaplan_meier` - Kaplan-Meier with Greenwood CIs and the median
  (``survival::survfit``);
* :func:`mixed_change` - random-intercept linear mixed model for change over
  time (``nlme::lme``).

Results are DataFrames with a ``note`` column (or attribute): ``""`` when the
quantity is estimable, otherwise a plain reason, with the numbers NaN; small
cohorts never raise.  Bad input raises :class:`spinereg.SpineregError`.

This package is the study layer's statistics: it imports nothing from
:mod:`spinereg.cli` or :mod:`spinereg.instruments`.
"""

from spinereg.stats._mixed import mixed_change
from spinereg.stats._paired import paired_change
from spinereg.stats._proportion import proportion
from spinereg.stats._survival import KaplanMeierResult, kaplan_meier

__all__ = [
    "KaplanMeierResult",
    "kaplan_meier",
    "mixed_change",
    "paired_change",
    "proportion",
]

"""REML fits refitted by ML before a likelihood comparison, as lme4's ``anova`` does.

REML log-likelihoods of models with different fixed effects are not comparable, so both
:func:`bayes_glmm.ml.inference.lrt.lrt` and :func:`bayes_glmm.ml.inference.anova.anova` refit REML fits by ML
(with a warning) before comparing them; this is that step, written once.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..spec.validate import user_stacklevel
from .fit import fit_raw
from .types import MLFit

__all__ = ["REFIT_MESSAGE", "check_ml_fit", "refit_ml"]

REFIT_MESSAGE = "refitting model(s) with ML (instead of REML)"


def refit_ml(fits: list) -> list:
    """``fits`` with every REML fit refitted by ML (started at its REML theta); warns once if any was.

    Parameters
    ----------
    fits : list of MLResults

    Returns
    -------
    list of MLResults
        The ML fits in the same order (ML fits are passed through unchanged).
    """
    if not any(m.reml for m in fits):
        return list(fits)
    warnings.warn(REFIT_MESSAGE, UserWarning, stacklevel=user_stacklevel())
    # type(m)(spec, raw fit) is what fit_ml builds; calling the class of the fit we were given
    # keeps this module below the results class (which imports the comparisons that call us)
    return [type(m)(m.spec, fit_raw(m.spec, reml=False, start=np.asarray(m.fit.theta, dtype=float)))
            if m.reml else m for m in fits]


def check_ml_fit(m, label: str) -> None:
    """ValueError unless ``m`` is an ML fit (an :class:`~bayes_glmm.ml.results.MLResults`).

    Tested by its raw estimates (an :class:`~bayes_glmm.ml.types.MLFit`, as
    ``MLResults.__init__`` requires) so that the comparisons need not import the results class,
    whose methods import them.

    Parameters
    ----------
    m : object
        An argument of :func:`~bayes_glmm.ml.inference.lrt.lrt` or :func:`~bayes_glmm.ml.inference.anova.anova`.
    label : str
        How the error names the argument (``"m0"``, ``"argument 2"``).
    """
    if not isinstance(getattr(m, "fit", None), MLFit) or not hasattr(m, "spec"):
        raise ValueError(f"{label} must be an ML fit (MLResults from fit_ml()), got {type(m).__name__}")

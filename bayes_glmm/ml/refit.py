"""REML fits refitted by ML before a likelihood comparison, as lme4's ``anova`` does.

REML log-likelihoods of models with different fixed effects are not comparable, so both
:func:`bayes_glmm.ml.lrt.lrt` and :func:`bayes_glmm.ml.anova.anova` refit REML fits by ML
(with a warning) before comparing them; this is that step, written once.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..validate import user_stacklevel

__all__ = ["REFIT_MESSAGE", "refit_ml"]

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
    from . import fit_ml  # the ML entry point (ml/__init__) imports this module's users
    return [fit_ml(m.spec, reml=False, start=np.asarray(m.fit.theta, dtype=float)) if m.reml else m for m in fits]

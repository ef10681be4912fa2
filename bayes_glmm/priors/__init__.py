"""Priors: the kinds of prior distribution and the priors of a model.

:mod:`~bayes_glmm.priors.kinds` holds one :class:`~bayes_glmm.priors.kinds.PriorKind` record
per distribution (support, parameters, the log-density written once, the SciPy
distribution) in the registry :data:`~bayes_glmm.priors.kinds.KINDS`;
:mod:`~bayes_glmm.priors.prior` holds :class:`Prior`, the auto-scaled defaults and
:func:`resolve_priors`, which resolves the complete set of priors of a model (the prior
keys are listed there).  Pure NumPy: nothing here imports PyMC.
"""
from .kinds import KINDS, KindParam, PriorKind, get_kind
from .prior import (DISTRIBUTIONS, LKJ_ETA, SCALE, Prior, as_prior, default_scales,
                    dispersion_default, resolve_centered, resolve_priors, slope_blocks, zi_key, zi_slope_blocks,
                    disp_key, disp_slope_blocks)

__all__ = ["Prior", "resolve_priors", "resolve_centered", "as_prior", "DISTRIBUTIONS",
           "default_scales", "slope_blocks", "dispersion_default", "zi_key", "zi_slope_blocks", "disp_key", "disp_slope_blocks",
           "SCALE", "LKJ_ETA", "PriorKind", "KindParam", "KINDS", "get_kind"]

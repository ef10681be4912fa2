"""Maximum-likelihood path (NumPy/SciPy only): profiled REML/ML for LMMs, Laplace and
adaptive Gauss-Hermite quadrature for GLMMs, with lme4's parametrization.

>>> from bayes_glmm.ml import fit_ml          # doctest: +SKIP
>>> res = fit_ml(spec, n_agq=25)              # doctest: +SKIP
"""
from __future__ import annotations

from .fit import _one_blas_thread, check_rank, fit_raw, unscale_fit  # noqa: F401  (re-exported)
from .types import MLFit

__all__ = ["fit_ml", "fit_raw", "MLFit", "unscale_fit"]


def fit_ml(spec, n_agq: int = 1, reml: bool | None = None, **kw):
    """Fit by maximum likelihood and wrap the result in :class:`bayes_glmm.ml.results.MLResults`.

    See :func:`fit_raw` for the parameters.
    """
    from .results import MLResults  # imported lazily: results imports heavier pieces

    fit = fit_raw(spec, n_agq=n_agq, reml=reml, **kw)
    return MLResults(spec, fit)

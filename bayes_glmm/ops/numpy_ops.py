"""The NumPy math namespace every single definition is written against (``ops``).

Families' log-densities, links, priors and covariance structures take an ``ops`` argument:
this NumPy/SciPy one (the maximum-likelihood path, the teaching tools), its dual-number
version :data:`bayes_glmm.ops.dual.ND_OPS` (derivatives for the NumPy sampler and for the ML
path's analytic gradients), the C emitter of :mod:`bayes_glmm.bayes.codegen` and PyTensor's
(the PyMC graph).  Each namespace has the same names; ``tests/test_bayes.py`` holds them equal.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from scipy import special

__all__ = ["NUMPY_OPS", "softplus_and_expit", "np_softplus", "np_log1mexp", "np_lgamma_shift"]


def np_softplus(x):
    # log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)): no overflow, and in place it is ~3x
    # faster than np.logaddexp(0, x) (the negative binomial's ML hot loop)
    x = np.asarray(x, dtype=float)
    e = np.abs(x, out=np.empty_like(x))  # (out= keeps a 0-d input an array)
    np.negative(e, out=e)
    np.exp(e, out=e)
    np.log1p(e, out=e)
    e += np.maximum(x, 0.0)
    return e


def np_log1mexp(x):
    """log(1 - exp(x)) for x < 0, accurate near 0 and -inf (Maechler 2012)."""
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore"):  # np.where evaluates the branch it does not take too
        return np.where(x > -np.log(2.0), np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


def np_lgamma_shift(a, y):
    """``lgamma(a + y) - lgamma(a)`` (the log of the rising factorial ``a (a + 1) ... (a + y - 1)``)
    for a parameter ``a > 0`` and a data count ``y >= 0``.

    One op rather than two ``gammaln`` calls so that the C emitter can evaluate it as a short
    product for small integer counts (:data:`bayes_glmm.bayes.codegen.C_HELPERS`); here it is
    the plain difference, as PyTensor's.
    """
    return special.gammaln(a + y) - special.gammaln(a)


def softplus_and_expit(eta):
    """``log(1 + e^eta)`` and ``expit(eta)`` sharing one ``exp(-|eta|)`` (no overflow).

    NumPy only. Written with ``out=`` and ``where=`` to avoid temporaries: it is the
    innermost operation of every ML deviance evaluation (n x nodes elements for AGQ).
    """
    e = np.abs(eta)
    np.negative(e, out=e)
    np.exp(e, out=e)  # e = exp(-|eta|) in (0, 1]
    t = e + 1.0
    sp = np.log(t)  # log(1 + e): absolute error ~1e-16, all a sum of log-densities needs
    sp += np.maximum(eta, 0.0)
    mu = np.reciprocal(t, out=t)  # expit(|eta|)
    np.multiply(mu, e, out=mu, where=eta < 0)  # expit(eta) = e / (1 + e) for eta < 0
    return sp, mu


#: NumPy/SciPy implementation of the math namespace used by links and families.
NUMPY_OPS = SimpleNamespace(
    exp=np.exp,
    log=np.log,
    log1p=np.log1p,
    expm1=np.expm1,
    sigmoid=special.expit,
    tanh=np.tanh,
    sqrt=np.sqrt,
    softplus=np_softplus,
    log1mexp=np_log1mexp,
    ndtr=special.ndtr,
    log_ndtr=special.log_ndtr,
    gammaln=special.gammaln,
    lgamma_shift=np_lgamma_shift,
    logaddexp=np.logaddexp,
    eq=np.equal,
    square=np.square,
    clip=np.clip,
)

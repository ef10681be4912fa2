"""Hurdle Poisson: P(y = 0) = pi, zero-truncated Poisson(mu) for y > 0; log link.

``mu = exp(eta)`` is the mean of the untruncated Poisson, ``pi = expit(eta_hu)`` (``hu=``):
glmmTMB's ``truncated_poisson`` with a ``ziformula``, brms's and bambi's ``hurdle_poisson``.
"""
from __future__ import annotations

import numpy as np

from .hurdle import HurdleFamily
from .poisson import Poisson

__all__ = ["HurdlePoisson"]


class HurdlePoisson(HurdleFamily):
    """Zeros from a logistic hurdle, positive counts from a zero-truncated Poisson."""

    name = "hurdle_poisson"
    aliases = ("truncated_poisson",)
    r_name = "truncated_poisson"
    variance_formula = "Var = mu (untruncated count part)"
    response_doc = "counts, P(0) = π (`hu=`)"
    variance_doc = "μ for the untruncated count"

    # the untruncated Poisson's pieces, borrowed from its module (one definition)
    _count_loglik = Poisson._loglik
    _count_eta_derivs = Poisson._eta_derivs
    _variance = Poisson._variance

    def _log_f0(self, eta, ops, **aux):
        return -ops.exp(eta)

    def _log_f0_derivs(self, eta, **aux):
        mu = np.exp(eta)
        return -mu, -mu

    def _count_isf(self, q, mu, **aux):
        from scipy import stats  # here, not at the top: scipy.stats takes ~1 s to import
        return stats.poisson.isf(q, mu)

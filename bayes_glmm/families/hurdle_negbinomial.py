"""Hurdle negative binomial (NB2): P(y = 0) = pi, zero-truncated NB2(mu, theta) for y > 0; log link.

``mu = exp(eta)`` is the mean of the untruncated NB2 (variance mu + mu^2/theta),
``pi = expit(eta_hu)`` (``hu=``): glmmTMB's ``truncated_nbinom2`` with a ``ziformula``, brms's
``hurdle_negbinomial``, bambi's ``hurdle_negativebinomial``.  At 1/theta = 0 it is the hurdle
Poisson (``nested_families``).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import special

from .hurdle import HurdleFamily
from .negbinomial import THETA, NegBinomial

__all__ = ["HurdleNegBinomial"]

#: NB2's theta (the same default prior, start and bounds) as glmmTMB names it for this family;
#: ``disp="~ x"`` models log theta of the truncated count part (glmmTMB's dispformula with
#: ``truncated_nbinom2``, checked in tests/test_dispformula.py)
THETA_HU = replace(THETA, r_note="glmmTMB's `sigma`; brms's `shape`")


class HurdleNegBinomial(HurdleFamily):
    """Zeros from a logistic hurdle, positive counts from a zero-truncated NB2."""

    name = "hurdle_negbinomial"
    aliases = ("hurdle_negativebinomial", "truncated_nbinom2", "hurdle_nbinom2")
    r_name = "truncated_nbinom2"
    aux_params = (THETA_HU,)
    variance_formula = "Var = mu + mu^2/theta (untruncated count part)"
    response_doc = "counts, P(0) = π (`hu=`)"
    variance_doc = "μ + μ²/θ for the untruncated count"
    nested_families = ("hurdle_poisson",)

    # the untruncated NB2's pieces, borrowed from its module (one definition)
    _count_loglik = NegBinomial._loglik
    _count_eta_derivs = NegBinomial._eta_derivs
    _variance = NegBinomial._variance
    moment_dispersion = NegBinomial.moment_dispersion

    def _log_f0(self, eta, ops, *, theta):
        # log (theta / (theta + mu))^theta = -theta log(1 + mu / theta)
        return -theta * ops.softplus(eta - ops.log(theta))

    def _log_f0_derivs(self, eta, *, theta):
        s = special.expit(eta - np.log(theta))  # mu / (theta + mu)
        return -theta * s, -theta * s * (1.0 - s)

    def _count_isf(self, q, mu, *, theta):
        from scipy import stats  # here, not at the top: scipy.stats takes ~1 s to import
        return stats.nbinom.isf(q, theta, theta / (theta + mu))

"""Negative binomial (NB2): counts with variance mu + mu^2/theta; log link."""
from __future__ import annotations

import numpy as np
from scipy import special

from ..ops.numpy_ops import np_softplus
from ._counts import CountFamily
from .base import AuxParam

__all__ = ["NegBinomial"]

THETA = AuxParam(
    "theta", "NB2 size: Var = mu + mu^2/theta (the Poisson as theta -> inf)",
    bambi_name="alpha",  # bambi's name, same parametrisation
    default_prior=lambda sc: ("InverseGamma", {"alpha": 0.5, "beta": 0.5}),
    start=lambda m, v: m * m / (v - m) if v > 1.05 * m else 10.0,
    prior_doc="InverseGamma(0.5, 0.5): 1/sqrt(theta) ~ HalfNormal(1), the CV of the gamma mixing "
              "distribution (Stan's prior-choice recommendation); mass towards the Poisson limit",
    r_note="glmer.nb's θ, glmmTMB's `sigma`",
    nested_at="1/theta = 0",
    allows_formula=True,
)


class NegBinomial(CountFamily):
    """Gamma-Poisson mixture with size ``theta`` (glmmTMB's ``nbinom2``)."""

    name = "negbinomial"
    aliases = ("nbinom2", "negativebinomial", "negative_binomial", "negative-binomial", "neg_binomial_2")
    r_name = "nbinom2"
    aux_params = (THETA,)
    variance_formula = "Var = mu + mu^2/theta"
    response_doc = "counts"
    variance_doc = "μ + μ²/θ"
    nested_families = ("poisson",)

    def _variance(self, mu, ops, *, theta):
        return mu + mu * mu / theta

    def moment_dispersion(self, r2, mu, w):
        mu, w = np.asarray(mu, dtype=float), np.asarray(w, dtype=float)
        extra = r2 - float(np.sum(w * mu))
        return 1e12 if extra <= 0 else float(np.sum(w * mu * mu)) / extra

    def _random(self, mu, rng, *, trials=None, theta):
        # gamma-Poisson mixture: numpy's negative_binomial needs a positive mean
        th = np.broadcast_to(np.asarray(theta, dtype=float), mu.shape)
        return rng.poisson(rng.gamma(th, mu / th))

    def _loglik(self, y, eta, ops, *, trials=None, theta):
        # log(theta + mu) = log theta + softplus(eta - log theta): no overflow for large eta
        lt = ops.log(theta)
        sp = ops.softplus(eta - lt)
        return (ops.lgamma_shift(theta, y) - ops.gammaln(y + 1.0)
                + y * (eta - lt) - (y + theta) * sp)

    def _loglik_constant(self, y, trials, theta=None):
        if theta is None:
            return np.zeros_like(y)
        return special.gammaln(y + theta) - special.gammaln(theta) - special.gammaln(y + 1.0) - y * np.log(theta)

    def _loglik_eta(self, y, eta, *, theta):
        return y * eta - (y + theta) * np_softplus(eta - np.log(theta))

    def _eta_derivs(self, y, eta, *, trials=None, theta):
        mu = np.exp(eta)
        tm = theta + mu
        return theta * (y - mu) / tm, theta * mu * (theta + y) / (tm * tm), theta * mu / tm

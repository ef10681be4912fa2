"""Gaussian: y ~ Normal(mu, sigma); identity (default) or log link."""
from __future__ import annotations

import numpy as np

from .base import LOG_2PI, AuxParam, Family

__all__ = ["Gaussian"]

SIGMA = AuxParam(
    "sigma", "residual standard deviation",
    default_prior=lambda sc: ("Exponential", {"lam": 1.0 / sc["y_sd"]}),
    start=lambda m, v: float(np.sqrt(max(v, 1e-300))),
    start_range=(1e-8, np.inf),
    prior_doc="Exponential(1 / sd(y)): mean sd(y), the spread of y itself",
    response_units=True,
    allows_formula=True,
)


class Gaussian(Family):
    """Normal response; the residual SD ``sigma`` is its auxiliary parameter."""

    name = "gaussian"
    links = ("identity", "log")
    aliases = ("normal",)
    continuous = True
    lme4_checks = True
    canonical_link = "identity"
    aux_params = (SIGMA,)
    variance_formula = "Var = sigma^2"
    response_doc = "real"
    variance_doc = "σ²"
    link_notes = {"log": "Bayesian path only"}
    ml_links = ("identity",)
    statsmodels_family = "Gaussian"

    @property
    def is_linear(self) -> bool:
        """True for the identity link: a linear mixed model (closed-form profiled ML/REML)."""
        return self.link.is_identity

    def latent_residual_variance(self, *, mu=None, sigma=None, disp=None):
        """sigma^2 (identity link only)."""
        if not self.link.is_identity:
            raise ValueError("ICC for a gaussian family with log link is not defined here; "
                             "use link='identity'")
        if sigma is None:
            raise ValueError("gaussian ICC needs sigma= (the residual SD)")
        return np.asarray(sigma, dtype=float) ** 2

    def _variance(self, mu, ops, **aux):
        return mu * 0.0 + 1.0

    def variance_mu_deriv(self, mu):
        return np.zeros_like(np.asarray(mu, dtype=float))

    def moment_dispersion(self, r2, mu, w):
        w = np.asarray(w, dtype=float)
        return max(r2 / max(float(np.sum(w)), 1e-300), 1e-300)

    def mustart(self, y, n_trials=1.0, weights=1.0):
        y = np.asarray(y, dtype=float)
        return y + 0.1 if self.link.is_log else y

    def _random(self, mu, rng, *, trials=None, sigma=None):
        return rng.normal(mu, sigma)

    def _loglik(self, y, eta, ops, *, trials=None, sigma):
        mu = self.link.inverse(eta, ops)
        r = (y - mu) / sigma
        return -0.5 * r * r - ops.log(sigma) - 0.5 * LOG_2PI

    def _mu_derivs(self, y, eta, *, trials=None, sigma):
        mu = self.link.inverse(eta)
        s2 = sigma * sigma
        return (y - mu) / s2, -1.0 / s2 + 0.0 * mu, 1.0 / s2 + 0.0 * mu

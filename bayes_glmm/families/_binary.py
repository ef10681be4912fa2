"""What the two binary families (bernoulli, binomial) share: a probability of success per trial."""
from __future__ import annotations

import numpy as np
from scipy import special

from ..ops.numpy_ops import softplus_and_expit
from .base import Family

__all__ = ["BinaryFamily"]


class BinaryFamily(Family):
    """Successes out of ``n`` trials (``n = 1`` for bernoulli) with success probability mu."""

    links = ("logit", "probit", "cloglog")
    is_binary = True
    lme4_checks = True
    canonical_link = "logit"
    constant_response_unbounded = True
    statsmodels_family = "Binomial"

    def _variance(self, mu, ops, **aux):
        return mu * (1.0 - mu)

    def variance_mu_deriv(self, mu):
        return 1.0 - 2.0 * np.asarray(mu, dtype=float)

    def clip_mean(self, mu, eps):
        """Means kept inside the support for IRLS weights (a probability: (eps, 1 - eps))."""
        return np.clip(mu, eps, 1.0 - eps)

    def mustart(self, y, n_trials=1.0, weights=1.0):
        # (w y + 1/2) / (w n + 1): glm's binomial initialize, strictly inside (0, 1)
        return (weights * np.asarray(y, dtype=float) + 0.5) / (weights * n_trials + 1.0)

    def loglik_canonical(self, y, eta, trials=1.0):
        if not self.is_canonical:
            return super().loglik_canonical(y, eta, trials)
        # y eta - n softplus(eta): one exp(-|eta|) gives both the log-density and mu
        sp, mu = softplus_and_expit(eta)
        sp *= trials
        return np.subtract(y * eta, sp, out=sp), mu

    def _eta_derivs(self, y, eta, *, trials=None, **aux):
        if self.is_canonical:
            n = 1.0 if trials is None else np.asarray(trials, dtype=float)
            mu = special.expit(eta)
            w = n * mu * (1.0 - mu)
            return y - n * mu, w, w
        return super()._eta_derivs(y, eta, trials=trials, **aux)

    def _mu_derivs(self, y, eta, *, trials=None):
        n = 1.0 if trials is None else np.asarray(trials, dtype=float)
        mu = np.clip(self.link.inverse(eta), 1e-15, 1.0 - 1e-15)
        lm = y / mu - (n - y) / (1.0 - mu)
        lmm = -y / (mu * mu) - (n - y) / ((1.0 - mu) ** 2)
        return lm, lmm, n / (mu * (1.0 - mu))

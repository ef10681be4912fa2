"""NB1 (glmmTMB's ``nbinom1``): counts with variance mu (1 + phi); log link."""
from __future__ import annotations

import numpy as np
from scipy import special

from ._counts import CountFamily
from .base import AuxParam

__all__ = ["NBinom1"]

PHI = AuxParam(
    "phi", "NB1 dispersion: Var = mu (1 + phi)",
    default_prior=lambda sc: ("Gamma", {"alpha": 0.5, "beta": 0.5 / max(sc["y_mean"], 0.1)}),
    start=lambda m, v: v / m - 1.0 if m > 0 else 1.0,
    prior_doc="Gamma(0.5, 0.5 / ybar): sqrt(phi / ybar) ~ HalfNormal(1), the NB2 prior's CV at the "
              "mean count ybar",
    r_note="glmmTMB's `sigma`",
)


class NBinom1(CountFamily):
    """Negative binomial with size mu/phi: the variance grows linearly in the mean."""

    name = "nbinom1"
    aux_params = (PHI,)
    variance_formula = "Var = mu (1 + phi)"
    response_doc = "counts"
    variance_doc = "μ(1 + φ)"
    nested_families = ("poisson",)

    def _variance(self, mu, ops, *, phi):
        return mu * (1.0 + phi)

    def moment_dispersion(self, r2, mu, w):
        mu, w = np.asarray(mu, dtype=float), np.asarray(w, dtype=float)
        return max(r2 / max(float(np.sum(w * mu)), 1e-300) - 1.0, 0.0)

    def _random(self, mu, rng, *, trials=None, phi):
        ph = np.broadcast_to(np.asarray(phi, dtype=float), mu.shape)
        return rng.poisson(rng.gamma(mu / ph, ph))  # mean mu, variance mu (1 + phi)

    def _loglik(self, y, eta, ops, *, trials=None, phi):
        # NB with size mu/phi: theta/(theta + mu) = 1/(1 + phi) for every row
        s = ops.exp(eta) / phi
        return (ops.gammaln(y + s) - ops.gammaln(s) - ops.gammaln(y + 1.0)
                - s * ops.log1p(phi) + y * (ops.log(phi) - ops.log1p(phi)))

    def _eta_derivs(self, y, eta, *, trials=None, phi):
        mu = np.exp(eta)
        s = mu / phi
        d1 = s * (special.digamma(y + s) - special.digamma(s) - np.log1p(phi))
        d2 = d1 + s * s * (special.polygamma(1, y + s) - special.polygamma(1, s))
        return d1, -d2, mu / (1.0 + phi)

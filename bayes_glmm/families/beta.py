"""Beta: 0 < y < 1 with mean mu and precision phi; logit (default), probit or cloglog link."""
from __future__ import annotations

import numpy as np
from scipy import special

from .base import AuxParam, Family

__all__ = ["Beta"]

PHI = AuxParam(
    "phi", "Beta precision: Var = mu (1 - mu)/(1 + phi)",
    bambi_name="kappa",  # bambi's name, same parametrisation
    default_prior=lambda sc: ("InverseGamma", {"alpha": 0.5, "beta": 2.0}),
    start=lambda m, v: m * (1.0 - m) / v - 1.0 if v > 0 else 10.0,
    prior_doc="InverseGamma(0.5, 2): 1/sqrt(phi) ~ HalfNormal(0.5), about the SD of y relative to "
              "a Bernoulli's with the same mean",
    r_note="glmmTMB's `sigma`",
    allows_formula=True,
)


class Beta(Family):
    """Proportions strictly inside (0, 1) (glmmTMB's ``beta_family``)."""

    name = "beta"
    links = ("logit", "probit", "cloglog")
    aliases = ("beta_family",)
    continuous = True
    aux_params = (PHI,)
    variance_formula = "Var = mu (1 - mu)/(1 + phi)"
    response_doc = "0 < y < 1"
    variance_doc = "μ(1−μ)/(1+φ)"

    def latent_residual_variance(self, *, mu=None, sigma=None, disp=None):
        raise ValueError("a latent-scale ICC is not defined for the beta family; report the random-effect "
                         "variances on the logit scale instead")

    def _variance(self, mu, ops, *, phi):
        return mu * (1.0 - mu) / (1.0 + phi)

    def moment_dispersion(self, r2, mu, w):
        mu, w = np.asarray(mu, dtype=float), np.asarray(w, dtype=float)
        return 1e12 if r2 <= 0 else max(float(np.sum(w * mu * (1 - mu))) / r2 - 1.0, 1e-6)

    def _random(self, mu, rng, *, trials=None, phi):
        ph = np.asarray(phi, dtype=float)
        return rng.beta(mu * ph, (1.0 - mu) * ph)

    def _loglik(self, y, eta, ops, *, trials=None, phi):
        # 1 - mu from -eta where the link allows (no cancellation)
        mu, one_m = self.link.mu_and_complement(eta, ops)
        a, b = mu * phi, one_m * phi
        return (ops.gammaln(phi) - ops.gammaln(a) - ops.gammaln(b)
                + (a - 1.0) * ops.log(y) + (b - 1.0) * ops.log1p(-y))

    def _mu_derivs(self, y, eta, *, trials=None, phi):
        mu, one_m = self.link.mu_and_complement(eta)
        a, b = mu * phi, one_m * phi
        lm = phi * (np.log(y) - np.log1p(-y) - special.digamma(a) + special.digamma(b))
        info = phi * phi * (special.polygamma(1, a) + special.polygamma(1, b))
        return lm, -info, info

    def _check_response(self, y, trials, name):
        n0, n1 = int(np.sum(y == 0)), int(np.sum(y == 1))
        out = int(np.sum((y < 0) | (y > 1)))
        if n0 or n1 or out:
            raise ValueError(
                f"beta response {name!r} must lie strictly between 0 and 1; {n0} row(s) are exactly 0, "
                f"{n1} exactly 1 and {out} outside [0, 1]. For proportions that include 0 or 1 the usual "
                f"squeeze is y' = (y (n - 1) + 0.5) / n with n the number of rows (Smithson & "
                f"Verkuilen 2006); for counts out of a total use family='binomial'.")

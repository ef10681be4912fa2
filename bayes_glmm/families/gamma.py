"""Gamma: y > 0 with variance mu^2/shape; log (default), inverse or identity link."""
from __future__ import annotations

import numpy as np
from scipy import special

from .base import AuxParam, Family

__all__ = ["Gamma"]

SHAPE = AuxParam(
    "shape", "Gamma shape: Var = mu^2/shape (the response's CV is 1/sqrt(shape))",
    bambi_name="alpha",  # bambi's name, same parametrisation
    default_prior=lambda sc: ("InverseGamma", {"alpha": 0.5, "beta": 0.5}),
    start=lambda m, v: m * m / v if v > 0 else 1.0,
    prior_doc="InverseGamma(0.5, 0.5): the response's CV 1/sqrt(shape) ~ HalfNormal(1)",
    r_note="glmmTMB's `sigma` = 1/√shape",
    allows_formula=True,
)


class Gamma(Family):
    """Positive continuous response with a constant coefficient of variation."""

    name = "gamma"
    links = ("log", "inverse", "identity")
    r_name = "Gamma"
    continuous = True
    aux_params = (SHAPE,)
    variance_formula = "Var = mu^2/shape"
    response_doc = "y > 0"
    variance_doc = "μ²/shape"

    def latent_residual_variance(self, *, mu=None, sigma=None, disp=None):
        """``log(1 + 1/shape)``, the log-normal approximation (Nakagawa 2017; log link only)."""
        if not self.link.is_log:
            raise ValueError("the latent-scale ICC of a gamma model is defined for the log link only")
        if disp is None:
            raise ValueError("gamma ICC needs disp= (the shape)")
        return np.log1p(1.0 / np.asarray(disp, dtype=float))

    def _variance(self, mu, ops, *, shape):
        return mu * mu / shape

    def moment_dispersion(self, r2, mu, w):
        mu, w = np.asarray(mu, dtype=float), np.asarray(w, dtype=float)
        return 1e12 if r2 <= 0 else float(np.sum(w * mu * mu)) / r2

    def _random(self, mu, rng, *, trials=None, shape):
        k = np.broadcast_to(np.asarray(shape, dtype=float), mu.shape)
        return rng.gamma(k, mu / k)

    def _log_mu_and_inverse(self, eta, ops):
        if self.link.is_log:
            return eta, ops.exp(-eta)
        mu = self.link.inverse(eta, ops)
        return ops.log(mu), 1.0 / mu

    def _loglik(self, y, eta, ops, *, trials=None, shape):
        log_mu, inv_mu = self._log_mu_and_inverse(eta, ops)
        k = shape
        return k * ops.log(k) - ops.gammaln(k) + (k - 1.0) * ops.log(y) - k * log_mu - k * y * inv_mu

    def _loglik_constant(self, y, trials, shape=None):
        if shape is None:
            return np.zeros_like(y)
        return shape * np.log(shape) - special.gammaln(shape) + (shape - 1.0) * np.log(y)

    def _loglik_eta(self, y, eta, *, shape):
        if self.link.is_log:
            return -shape * (eta + y * np.exp(-eta))
        mu = self.link.inverse(eta)
        return -shape * (np.log(mu) + y / mu)

    def _eta_derivs(self, y, eta, *, trials=None, shape):
        if self.link.is_log:
            r = y * np.exp(-eta)
            return shape * (r - 1.0), shape * r, np.broadcast_to(np.asarray(shape, dtype=float), eta.shape) * 1.0
        return super()._eta_derivs(y, eta, trials=trials, shape=shape)

    def _mu_derivs(self, y, eta, *, trials=None, shape):
        mu = self.link.inverse(eta)
        return shape * (y - mu) / (mu * mu), shape * (mu - 2.0 * y) / mu ** 3, shape / (mu * mu)

    def _check_response(self, y, trials, name):
        bad_mask = y <= 0
        if bad_mask.any():
            n0 = int(np.sum(y == 0))
            raise ValueError(
                f"gamma response {name!r} must be > 0; {int(bad_mask.sum())} row(s) are not "
                f"({n0} exactly 0, min {y.min():g}). Drop or shift them, or use a family for "
                f"counts (negbinomial) or a zero-inflated / hurdle model.")

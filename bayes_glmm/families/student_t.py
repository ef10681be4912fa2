"""Student-t: y = mu + sigma t_df, with scale sigma and degrees of freedom df both estimated.

Heavy-tailed continuous responses (glmmTMB's ``t_family``, brms's ``student``, bambi's ``t``).
The variance is sigma^2 df / (df - 2) for df > 2 and infinite otherwise; as df -> infinity the
family becomes gaussian (``nested_families``).
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .base import AuxParam, Family
from .gaussian import SIGMA as GAUSSIAN_SIGMA

__all__ = ["StudentT"]

#: gaussian's sigma (the same default prior, start and bounds: the t's scale is the residual SD as
#: df -> infinity), described as the t's scale
SIGMA = replace(GAUSSIAN_SIGMA, description="scale of the t distribution (the residual SD as df -> infinity)",
                prior_doc="Exponential(1 / sd(y)): mean sd(y), as gaussian's sigma",
                r_note="glmmTMB's `sigma`")
DF = AuxParam(
    "df", "degrees of freedom",
    bambi_name="nu",  # bambi's name, same parametrisation
    default_prior=lambda sc: ("Gamma", {"alpha": 2.0, "beta": 0.1}),
    # a moderate start: the likelihood in df is flat for large df, and df < 1 lies far out in the tails
    start=lambda m, v: 10.0,
    start_range=(1.0, 100.0),
    prior_doc="Gamma(2, 0.1): brms's default, mean 20, keeps df away from 0 without ruling out heavy tails",
    r_note="glmmTMB's `psi` = log(df)",
    nested_at="1/df = 0",
)


class StudentT(Family):
    """Student-t response with location mu, scale sigma and degrees of freedom df."""

    name = "student_t"
    links = ("identity", "log")
    aliases = ("t_family", "student", "t")  # "t": bambi's name
    r_name = "t"
    continuous = True
    aux_params = (SIGMA, DF)
    variance_formula = "Var = sigma^2 df / (df - 2) (df > 2)"
    response_doc = "real"
    variance_doc = "σ² ν/(ν−2), ν > 2"
    nested_families = ("gaussian",)

    def _variance(self, mu, ops, *, sigma=None, df=None):
        # times sigma^2, left out as gaussian's (callers multiply by it: ``has_sigma``); without
        # df (PIRLS's working weights, moment starts) the gaussian variance function
        if df is None:
            return mu * 0.0 + 1.0
        df = np.asarray(df, dtype=float)
        return mu * 0.0 + np.where(df > 2.0, df / np.maximum(df - 2.0, 1e-300), np.inf)

    def moment_dispersion(self, r2, mu, w):
        w = np.asarray(w, dtype=float)
        return max(r2 / max(float(np.sum(w)), 1e-300), 1e-300)

    def mustart(self, y, n_trials=1.0, weights=1.0):
        y = np.asarray(y, dtype=float)
        return np.maximum(y, 0.0) + 0.1 if self.link.is_log else y

    def _random(self, mu, rng, *, trials=None, sigma=None, df=None):
        mu = np.asarray(mu, dtype=float)
        return mu + np.asarray(sigma, dtype=float) * rng.standard_t(np.broadcast_to(df, mu.shape))

    def _loglik(self, y, eta, ops, *, trials=None, sigma, df):
        z = (y - self.link.inverse(eta, ops)) / sigma
        return (ops.gammaln(0.5 * (df + 1.0)) - ops.gammaln(0.5 * df) - 0.5 * ops.log(df * math.pi)
                - ops.log(sigma) - 0.5 * (df + 1.0) * ops.log1p(z * z / df))

    def _mu_derivs(self, y, eta, *, trials=None, sigma, df):
        # l = -(df + 1)/2 log(1 + r^2 / (df sigma^2)), r = y - mu; s = df sigma^2 + r^2
        r = y - self.link.inverse(eta)
        s = df * sigma * sigma + r * r
        info = (df + 1.0) / ((df + 3.0) * sigma * sigma) + 0.0 * r  # the t's Fisher information in mu
        return (df + 1.0) * r / s, (df + 1.0) * (r * r - df * sigma * sigma) / (s * s), info

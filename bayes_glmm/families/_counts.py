"""What the count families (poisson, negbinomial, nbinom1) share: integer counts, a log link,
zero inflation."""
from __future__ import annotations

import numpy as np

from .base import Family

__all__ = ["CountFamily"]


class CountFamily(Family):
    """Non-negative integer counts with a log link; zero inflation applies."""

    links = ("log",)
    is_count = True
    allows_zi = True
    constant_response_unbounded = True

    def latent_residual_variance(self, *, mu=None, sigma=None, disp=None):
        """The log-normal approximation ``log(1 + Var(y | mu) / mu^2)`` (Nakagawa, Johnson &
        Schielzeth 2017): ``log(1 + 1/mu)`` for poisson, ``log(1 + 1/mu + 1/theta)`` for NB2,
        ``log(1 + (1 + phi)/mu)`` for NB1; ``mu`` is the mean count lambda."""
        if mu is None:
            raise ValueError(f"{self.name} ICC needs mu= (the mean count lambda) for the log-normal "
                             "residual variance log(1 + Var(y | mu) / mu^2)")
        mu = np.asarray(mu, dtype=float)
        if np.any(mu <= 0):
            raise ValueError(f"mu must be positive for the {self.name} residual variance; got {mu.min():g}")
        if self.aux_params and disp is None:
            raise ValueError(f"{self.name} ICC needs disp= (the dispersion {self.dispersion_name})")
        return np.log1p(self.variance(mu, disp=None if disp is None else np.asarray(disp, dtype=float)) / (mu * mu))

    def mustart(self, y, n_trials=1.0, weights=1.0):
        return np.asarray(y, dtype=float) + 0.1  # log(0) is not a start

    def _check_response(self, y, trials, name):
        bad_mask = (y < 0) | (y != np.round(y))
        if bad_mask.any():
            bad = y[bad_mask][:5]
            raise ValueError(
                f"{self.name} response {name!r} must be non-negative integer counts; found "
                f"{int(bad_mask.sum())} row(s) that are not, e.g. {bad.tolist()}. For a positive "
                f"continuous response use family='gamma', otherwise family='gaussian'."
            )

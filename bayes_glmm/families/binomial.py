"""Binomial: successes out of ``trials``; logit (default), probit or cloglog link."""
from __future__ import annotations

import numpy as np
from scipy import special

from ._binary import BinaryFamily

__all__ = ["Binomial"]


class Binomial(BinaryFamily):
    """y successes out of n trials, each with probability mu."""

    name = "binomial"
    needs_trials = True
    response_doc = "successes of `trials` / `cbind(s, f)`"
    variance_doc = "nμ(1−μ)"

    def _random(self, mu, rng, *, trials=None):
        n = np.broadcast_to(np.asarray(trials, dtype=np.int64), mu.shape)
        return rng.binomial(n, np.clip(mu, 0.0, 1.0))

    def _loglik(self, y, eta, ops, *, trials=None):
        lp, lq = self.link.log_p_and_log_q(eta, ops)
        lchoose = ops.gammaln(trials + 1.0) - ops.gammaln(y + 1.0) - ops.gammaln(trials - y + 1.0)
        return lchoose + y * lp + (trials - y) * lq

    def _loglik_constant(self, y, trials, **aux):
        return special.gammaln(trials + 1.0) - special.gammaln(y + 1.0) - special.gammaln(trials - y + 1.0)

    def _check_response(self, y, trials, name):
        if trials is None:
            raise ValueError(
                f"{self.name} response {name!r} needs trials: write cbind(successes, failures) on the left "
                f"of the formula or pass trials='column'."
            )
        trials = np.asarray(trials, dtype=float)
        if np.any(y < 0) or np.any(y != np.round(y)):
            raise ValueError(f"{self.name} successes {name!r} must be non-negative integers")
        if np.any(trials != np.round(trials)) or np.any(trials < 0):
            raise ValueError(f"{self.name} trials for {name!r} must be non-negative integers")
        over = y > trials
        if over.any():
            i = int(np.flatnonzero(over)[0])
            raise ValueError(
                f"{self.name} successes exceed trials in {int(over.sum())} row(s) of {name!r} "
                f"(first: row {i}, {y[i]:g} successes of {trials[i]:g}); check the trials column"
            )

"""Bernoulli: a 0/1 response; logit (default), probit or cloglog link."""
from __future__ import annotations

import numpy as np

from ._binary import BinaryFamily

__all__ = ["Bernoulli"]


class Bernoulli(BinaryFamily):
    """y in {0, 1} with P(y = 1) = mu (glmer's ``binomial`` on 0/1 data)."""

    name = "bernoulli"
    r_name = "binomial"
    response_doc = "0/1, bool, two-level factor"
    variance_doc = "μ(1−μ)"

    def _random(self, mu, rng, *, trials=None):
        return (rng.random(mu.shape) < mu).astype(np.int64)

    def _loglik(self, y, eta, ops, *, trials=None):
        lp, lq = self.link.log_p_and_log_q(eta, ops)
        return y * lp + (1.0 - y) * lq

    def _check_response(self, y, trials, name):
        bad = ~np.isin(y, (0.0, 1.0))
        if bad.any():
            vals = np.unique(y[bad])[:5]
            raise ValueError(
                f"bernoulli response {name!r} must be 0/1, bool or a two-level factor; found values "
                f"{vals.tolist()}. For counts out of n use family='binomial' with cbind(successes, failures) "
                f"or trials=."
            )

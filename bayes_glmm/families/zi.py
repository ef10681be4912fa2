"""Zero inflation: any conditional log-density mixed with a structural zero.

A structural zero has probability ``pi = expit(eta_zi)``; :func:`zi_loglik` turns any
family's conditional log-density into the zero-inflated one (written against ``ops``, so
both estimation paths share it) and :func:`zi_eta_derivs` gives its eta derivatives from the
conditional ones (NumPy, for PIRLS and the Laplace Hessian).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from ..ops.numpy_ops import NUMPY_OPS

__all__ = ["zi_loglik", "zi_eta_derivs"]


def zi_loglik(ll, y, eta_zi, ops: Any = NUMPY_OPS):
    """Zero-inflated log-density from a conditional one.

    With a structural zero of probability ``pi = expit(eta_zi)``:
    ``log(pi + (1 - pi) f(0))`` where ``y == 0`` and ``log(1 - pi) + log f(y)`` elsewhere.
    ``ll`` is the conditional log-density at ``y`` itself (so it is ``log f(0)`` on the
    zero rows): one evaluation serves both cases.
    """
    log_pi = -ops.softplus(-eta_zi)
    log_1m = -ops.softplus(eta_zi)
    zero = ops.eq(y, 0.0) * 1.0  # ops.eq: ``==`` on a PyTensor variable is an identity test, not elementwise
    return zero * ops.logaddexp(log_pi, log_1m + ll) + (1.0 - zero) * (log_1m + ll)


def zi_eta_derivs(ll, d1, w_obs, w_fisher, y, eta_zi):
    """Derivatives of :func:`zi_loglik` in the conditional eta from the conditional ones (NumPy).

    On a zero row the log-density is ``log(pi + (1 - pi) e^ll)``; with
    ``w0 = (1 - pi) e^ll / (pi + (1 - pi) e^ll) = expit(ll - eta_zi)`` (the probability that the
    zero is not structural) its derivatives are ``w0 d1`` and
    ``w0 d2 + w0 (1 - w0) d1^2``.  The expected-information weight is ``w0 w_fisher``: positive
    always, so IRLS steps stay ascent directions although the observed one can be negative.
    """
    zero = np.asarray(y) == 0
    w0 = np.where(zero, special.expit(ll - eta_zi), 1.0)
    return w0 * d1, w0 * w_obs - w0 * (1.0 - w0) * d1 * d1, w0 * w_fisher

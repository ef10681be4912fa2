"""Poisson: counts with mean mu = exp(eta)."""
from __future__ import annotations

import numpy as np
from scipy import special

from ._counts import CountFamily

__all__ = ["Poisson", "POISSON_STABLE_Y", "poisson_centre", "poisson_centred", "poisson_centred_const"]

#: Poisson counts above this get the cancellation-free log-density of :func:`poisson_centred`:
#: ``y eta - exp(eta)`` adds two terms of size ~y log y that cancel to O(log y), losing
#: ``y log y * 1e-16`` per row (3e-3 at y = 1e12: a deviance noisy at 0.1 over 400 rows,
#: on which L-BFGS-B stalls far from the optimum); below it the loss is under 1e-11.
POISSON_STABLE_Y = 1e4


def poisson_centre(y) -> np.ndarray:
    """Per-row centre ``c = log y`` (0 where y = 0) for :func:`poisson_centred`."""
    y = np.asarray(y, dtype=float)
    return np.log(np.where(y > 0, y, 1.0))


def poisson_centred(y, eta, c):
    """``(y eta - e^eta - (y c - e^c), mu)`` without cancellation.

    With ``d = eta - c`` the eta-dependent part is ``y d - e^c expm1(d)``: for ``c = log y``
    it is ``y (d - expm1(d)) ~ -y d^2 / 2``, computed to full relative precision however
    large y is.  :func:`poisson_centred_const` is the matching constant.
    """
    d = eta - c
    # e^c is y itself where y > 0: exp(log y) would carry log y's rounding (3e-15 relative
    # at 1e12), an absolute error in mu and y - mu that makes theta's gradient noisy
    ec = np.where(y > 0, y, 1.0)
    with np.errstate(over="ignore", invalid="ignore"):  # a line search's wild trial point:
        em = np.expm1(d)                                # inf, rejected upstream
        return y * d - ec * em, ec + ec * em


def poisson_centred_const(y, c) -> np.ndarray:
    """``y c - e^c - lgamma(y + 1)`` per row, for ``c = log y`` (``-1`` at y = 0).

    For large y the three terms cancel to ``-log(2 pi y) / 2 - stirlerr(y)``; Stirling's
    series for the remainder (error < 1e-15 above y = 30) keeps the log-likelihood's
    constant exact where the direct sum would lose ``y log y * 1e-16``.
    """
    y = np.asarray(y, dtype=float)
    c = np.asarray(c, dtype=float)
    out = y * c - np.exp(c) - special.gammaln(y + 1.0)
    big = y > 30.0
    if np.any(big):
        yb = y[big]
        stirlerr = (1.0 / 12.0 - (1.0 / 360.0 - (1.0 / 1260.0 - 1.0 / (1680.0 * yb * yb)) / (yb * yb)) / (yb * yb)) / yb
        # c = log y exactly here (the centre poisson_centre gives)
        out[big] = -0.5 * np.log(2.0 * np.pi * yb) - stirlerr
    return out


class Poisson(CountFamily):
    """Counts with variance equal to the mean."""

    name = "poisson"
    lme4_checks = True
    canonical_link = "log"
    variance_formula = "Var = mu"
    response_doc = "counts"
    variance_doc = "μ"
    statsmodels_family = "Poisson"

    def _variance(self, mu, ops, **aux):
        return mu

    def variance_mu_deriv(self, mu):
        return 1.0  # V(mu) = mu (a scalar: AGQ's gradient multiplies n x nodes arrays by it)

    def _random(self, mu, rng, *, trials=None):
        return rng.poisson(mu)

    def _loglik(self, y, eta, ops, *, trials=None):
        # log link: y*eta - exp(eta) - log y!
        return y * eta - ops.exp(eta) - ops.gammaln(y + 1.0)

    def _loglik_constant(self, y, trials, **aux):
        return -special.gammaln(y + 1.0)

    def loglik_canonical(self, y, eta, trials=1.0):
        mu = np.exp(eta)
        return y * eta - mu, mu

    def _eta_derivs(self, y, eta, *, trials=None):
        mu = np.exp(eta)
        return y - mu, mu, mu

    def stable_centre(self, y, has_zi: bool = False):
        y = np.asarray(y, dtype=float)
        if has_zi or not y.size or np.max(y) <= POISSON_STABLE_Y:
            return None
        return poisson_centre(y)

    def loglik_centred(self, y, eta, c):
        return poisson_centred(y, eta, c)

    def loglik_centred_const(self, y, c):
        return poisson_centred_const(y, c)

"""Hurdle count models: a zero part and a zero-truncated count part.

y = 0 with probability ``pi = expit(eta_hu)``; otherwise y follows the count distribution
f(y; mu) truncated to y > 0, with ``mu = exp(eta)`` the mean of the *untruncated* count
distribution (glmmTMB's ``truncated_poisson`` / ``truncated_nbinom2`` with a ``ziformula``,
brms's ``hurdle_poisson`` / ``hurdle_negbinomial``):

    P(y = 0) = pi,    P(y) = (1 - pi) f(y; mu) / (1 - f(0; mu))   for y > 0.

A hurdle family's :meth:`~bayes_glmm.families.base.Family.loglik` is the zero-truncated count
log-density ``log f(y; mu) - log(1 - f(0; mu))``; :func:`hurdle_loglik` combines it with the
zero part, as :func:`~bayes_glmm.families.zi.zi_loglik` combines a count density with a
structural zero.  The second linear predictor is the zero-inflation machinery's (``X_zi``,
``beta_zi``, ...), labelled ``hu`` where users see it (:attr:`HurdleFamily.zero_label`).

The two parts share no parameter, so on a zero row the log-density does not depend on eta
(:func:`hurdle_eta_derivs` gives 0 there) and on a positive row it depends on eta_hu only
through ``log(1 - pi)``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from ..ops.numpy_ops import NUMPY_OPS
from ._counts import CountFamily

__all__ = ["hurdle_loglik", "hurdle_eta_derivs", "HurdleFamily"]


def hurdle_loglik(ll, y, eta_hu, ops: Any = NUMPY_OPS):
    """Hurdle log-density from the zero-truncated count one.

    ``log pi`` where ``y == 0`` and ``log(1 - pi) + ll`` elsewhere, ``pi = expit(eta_hu)``;
    ``ll`` is the truncated count log-density at ``y`` (its value on the zero rows is not used).
    """
    log_pi = -ops.softplus(-eta_hu)
    log_1m = -ops.softplus(eta_hu)
    zero = ops.eq(y, 0.0) * 1.0  # ops.eq: elementwise on a PyTensor variable too
    return zero * log_pi + (1.0 - zero) * (log_1m + ll)


def hurdle_eta_derivs(ll, d1, w_obs, w_fisher, y, eta_hu):
    """Derivatives of :func:`hurdle_loglik` in the count eta from the truncated ones (NumPy):
    unchanged on the positive rows, 0 on the zero rows (whose log-density is ``log pi``)."""
    pos = np.asarray(y) != 0
    return np.where(pos, d1, 0.0), np.where(pos, w_obs, 0.0), np.where(pos, w_fisher, 0.0)


class HurdleFamily(CountFamily):
    """A zero-truncated count family with a hurdle at zero (subclass per count distribution).

    A subclass gives the untruncated count log-density (:meth:`_count_loglik`, against ``ops``),
    its log-probability of zero and that one's first two eta derivatives
    (:meth:`_log_f0`, :meth:`_log_f0_derivs`), the untruncated count's eta derivatives
    (:meth:`_count_eta_derivs`) and variance (:meth:`_variance`), and draws of it
    (:meth:`_count_random`, used by inverse-CDF sampling of the truncated one through
    :meth:`_count_isf`).
    """

    #: the hurdle's zero part is ``hu=``, not zero inflation
    allows_zi = False
    zero_label = "hu"
    zero_default = "~1"
    zero_doc = "hurdle (logit of P(y = 0))"

    def latent_residual_variance(self, *, mu=None, sigma=None, disp=None):
        raise ValueError(f"a latent-scale ICC is not defined for the {self.name} family; report the "
                         "random-effect variances on the link scale instead")

    # --- what a count distribution provides ------------------------------------------------
    def _count_loglik(self, y, eta, ops, **aux):
        raise NotImplementedError

    def _log_f0(self, eta, ops, **aux):
        """log f(0; mu) of the untruncated count distribution."""
        raise NotImplementedError

    def _log_f0_derivs(self, eta, **aux):
        """(d, d^2) of :meth:`_log_f0` in eta (NumPy)."""
        raise NotImplementedError

    def _count_eta_derivs(self, y, eta, **aux):
        raise NotImplementedError

    def _count_isf(self, q, mu, **aux):
        """Smallest y with P(Y > y) <= q for the untruncated count distribution."""
        raise NotImplementedError

    # --- the truncated count density --------------------------------------------------------
    def _loglik(self, y, eta, ops, *, trials=None, **aux):
        # log(1 - f(0)) = log1mexp(log f(0)): accurate for small mu, where 1 - f(0) ~ mu
        return self._count_loglik(y, eta, ops, **aux) - ops.log1mexp(self._log_f0(eta, ops, **aux))

    def _eta_derivs(self, y, eta, *, trials=None, **aux):
        # T = log(1 - e^L0): T' = -q L0', T'' = -(q (1 + q) L0'^2 + q L0''), q = 1 / expm1(-L0)
        d1, wo, wf = self._count_eta_derivs(y, eta, **aux)
        l0 = self._log_f0(eta, NUMPY_OPS, **aux)
        a, b = self._log_f0_derivs(eta, **aux)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            q = 1.0 / np.expm1(-l0)
        d1 = d1 + q * a
        wo = wo - q * (1.0 + q) * a * a - q * b
        # the score is linear in y for both count families (slope s, w_fisher = s^2 Var(y)):
        # the truncated Fisher weight is s^2 Var(y | y > 0) = w_fisher Var_trunc / Var
        mu = np.exp(eta)
        var = self._variance(mu, NUMPY_OPS, **aux)
        p1 = -np.expm1(l0)  # P(y > 0)
        m = mu / p1
        vt = (var + mu * mu) / p1 - m * m
        wf = wf * np.maximum(vt, 1e-300 + 1e-12 * m) / var
        return d1, wo, wf

    # --- the zero part ----------------------------------------------------------------------
    def zero_part_loglik(self, ll, y, eta_zero, ops: Any = NUMPY_OPS):
        return hurdle_loglik(ll, y, eta_zero, ops)

    def zero_part_eta_derivs(self, ll, d1, w_obs, w_fisher, y, eta_zero):
        return hurdle_eta_derivs(ll, d1, w_obs, w_fisher, y, eta_zero)

    def zero_part_start(self, p_zero: float, m: float, aux: dict) -> float:
        # the hurdle's zero part is a logistic regression on y == 0: the share of zeros
        return float(np.clip(p_zero, 1e-3, 1.0 - 1e-3))

    def positive_prob(self, mu, **aux):
        """P(y > 0) of the untruncated count distribution at mean ``mu`` (NumPy)."""
        with np.errstate(divide="ignore"):
            eta = np.log(np.asarray(mu, dtype=float))
        return -np.expm1(self._log_f0(eta, NUMPY_OPS, **self.aux_values(aux)))

    def zero_part_moments(self, mu, var, pi, **aux):
        """E[y] = (1 - pi) mu / (1 - f(0)) and Var(y) of the hurdle model."""
        p1 = self.positive_prob(mu, **aux)
        m = (1.0 - pi) * mu / p1
        if var is None:
            return m, None
        return m, (1.0 - pi) * (var + mu * mu) / p1 - m * m

    def random(self, eta, rng, *, trials=None, zi_eta=None, **aux):
        """Draws of y: 0 with probability ``expit(zi_eta)`` (the hurdle's zero part), else the
        zero-truncated count (only the truncated count without ``zi_eta``)."""
        eta = np.asarray(eta, dtype=float)
        av = self.aux_values(aux)
        mu = np.exp(eta)
        p1 = -np.expm1(self._log_f0(eta, NUMPY_OPS, **av))
        # inverse CDF of the truncated count through the survival function: P(Y > y) <= v P(Y > 0)
        # keeps its precision where P(Y > 0) is tiny (an upper-tail probability, not 1 - u)
        v = rng.random(np.shape(eta))
        with np.errstate(invalid="ignore"):
            y = np.maximum(self._count_isf(v * p1, mu, **av), 1.0)
        # SciPy's isf gives NaN for upper-tail probabilities below ~1e-300 (means so small that
        # a truncated count is 1 but with probability ~mu/2)
        y = np.where((p1 > 0) & np.isfinite(y), y, 1.0)
        if zi_eta is not None:
            y = np.where(rng.random(np.shape(y)) < special.expit(np.asarray(zi_eta, dtype=float)), 0.0, y)
        return y

    def _random(self, mu, rng, *, trials=None, **aux):
        eta = np.log(np.asarray(mu, dtype=float))
        return self.random(eta, rng, **aux)

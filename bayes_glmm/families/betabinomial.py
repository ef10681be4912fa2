"""Beta-binomial: successes out of ``trials`` with overdispersion; logit (default), probit or cloglog.

y ~ BetaBinomial(n, mu phi, (1 - mu) phi), glmmTMB's ``betabinomial`` parametrization: the success
probability of a row is Beta(mu phi, (1 - mu) phi), so E y = n mu and
Var y = n mu (1 - mu) (1 + (n - 1)/(phi + 1)); phi -> inf is the binomial.
"""
from __future__ import annotations

import numpy as np
from scipy import special

from .base import AuxParam
from .binomial import Binomial

__all__ = ["BetaBinomial"]

PHI = AuxParam(
    "phi", "Beta-binomial precision: Var = n mu (1 - mu) (1 + (n - 1)/(phi + 1))",
    default_prior=lambda sc: ("InverseGamma", {"alpha": 0.5, "beta": 2.0}),
    # the response's moments do not separate the trials' overdispersion from the mean's
    # spread, so the ML start is a moderate precision (intra-row correlation 1/11)
    start=lambda m, v: 10.0,
    start_range=(0.05, 1e6),
    prior_doc="InverseGamma(0.5, 2) as beta's phi: 1/sqrt(phi) ~ HalfNormal(0.5), the SD of a "
              "row's success probability relative to a Bernoulli's",
    r_note="glmmTMB's `sigma`",
    nested_at="1/phi = 0",
    bambi_name="kappa",  # bambi's beta_binomial: Beta(mu kappa, (1 - mu) kappa), same parametrisation
)


class BetaBinomial(Binomial):
    """Binomial counts whose success probability varies by row as Beta(mu phi, (1 - mu) phi)."""

    name = "betabinomial"
    aliases = ("beta_binomial",)
    aux_params = (PHI,)
    # no closed canonical form with phi: PIRLS and AGQ take the general log-density
    canonical_link = None
    # lme4 does not fit it: glmmTMB's checks (warnings)
    lme4_checks = False
    nested_families = ("binomial",)
    variance_formula = "Var = n mu (1 - mu) (1 + (n - 1)/(phi + 1))"
    variance_doc = "nμ(1−μ)(1+(n−1)/(φ+1))"

    def latent_residual_variance(self, *, mu=None, sigma=None, disp=None):
        raise ValueError("a latent-scale ICC is not defined for the betabinomial family; report the "
                         "random-effect variances on the link scale instead")

    def _variance(self, mu, ops, *, phi=None):
        # per trial (n = 1, where the beta-binomial is a Bernoulli): the IRLS working variance
        # when phi is not yet set; the n-trial variance is the module's formula
        return mu * (1.0 - mu)

    def response_variance(self, mu, n_trials=1.0, **aux):
        """``n mu (1 - mu) (1 + (n - 1) / (phi + 1))``: overdispersion grows with the trials."""
        phi = float(self.aux_values(aux)["phi"])
        n = np.asarray(n_trials, dtype=float)
        return n * mu * (1.0 - mu) * (1.0 + (n - 1.0) / (phi + 1.0))

    def _random(self, mu, rng, *, trials=None, phi):
        n = np.broadcast_to(np.asarray(trials, dtype=np.int64), np.shape(mu))
        ph = np.asarray(phi, dtype=float)
        mu = np.clip(mu, 1e-300, 1.0 - 1e-16)
        return rng.binomial(n, rng.beta(mu * ph, (1.0 - mu) * ph))

    def _loglik(self, y, eta, ops, *, trials=None, phi):
        lchoose = ops.gammaln(trials + 1.0) - ops.gammaln(y + 1.0) - ops.gammaln(trials - y + 1.0)
        return lchoose + self._beta_ratio(y, eta, ops, trials, phi)

    def _beta_ratio(self, y, eta, ops, trials, phi):
        """log B(y + a, n - y + b) - log B(a, b): the log-density less log C(n, y)."""
        if not self.link.complement_underflows:
            # logit, probit: mu and 1 - mu (from -eta, no cancellation) underflow only far out
            mu, one_m = self.link.mu_and_complement(eta, ops)
            a, b = mu * phi, one_m * phi
            # lgamma(y + a) - lgamma(a) etc. as one op each: the compiled density takes a short
            # product for small counts instead of two lgamma and two digamma per pair
            return (ops.lgamma_shift(a, y) + ops.lgamma_shift(b, trials - y)
                    - ops.lgamma_shift(phi, trials))
        # cloglog's 1 - mu = exp(-e^eta) is 0 beyond eta ~ 6.6: then b = 0 and
        # lgamma(n - y + b) - lgamma(b) is inf - inf.  Each difference is taken from log a, log b
        # (the link's stable log mu, log(1 - mu)), which stay finite.
        log_p, log_q = self.link.log_p_and_log_q(eta, ops)
        log_phi = ops.log(phi)
        return (_lgamma_rise(y, log_phi + log_p, ops) + _lgamma_rise(trials - y, log_phi + log_q, ops)
                - ops.lgamma_shift(phi, trials))

    def _mu_derivs(self, y, eta, *, trials=None, phi):
        n = np.asarray(trials, dtype=float)
        mu, one_m = self.link.mu_and_complement(eta)
        a, b = mu * phi, one_m * phi
        with np.errstate(invalid="ignore"):
            # a count of 0 contributes no difference (inf - inf where a or b underflowed to 0)
            lm = phi * (_diff0(y, special.digamma(y + a) - special.digamma(a))
                        - _diff0(n - y, special.digamma(n - y + b) - special.digamma(b)))
            lmm = phi * phi * (_diff0(y, _trigamma(y + a) - _trigamma(a))
                               + _diff0(n - y, _trigamma(n - y + b) - _trigamma(b)))
        # the expected information has no closed form: the quasi-likelihood n / Var(y) per trial
        # squared (mu_eta^2 / Var y after the chain rule), positive as IRLS needs
        info = n / (mu * one_m * (1.0 + (n - 1.0) / (phi + 1.0)))
        return lm, lmm, info


def _lgamma_rise(k, log_c, ops):
    """``log Gamma(k + c) - log Gamma(c)`` (the log of the rising factorial ``c (c + 1) ... (c + k - 1)``)
    for data counts ``k >= 0``, from ``log c``: finite where ``c = e^log_c`` underflows to 0.

    ``log Gamma(c) = log Gamma(c + 1) - log c``, so for ``k >= 1`` the difference is
    ``log c + log Gamma(k + c) - log Gamma(c + 1)``; for ``k = 0`` it is 0, which the indicator
    gives exactly (``lgamma(1 + c) - lgamma(c + 1)`` times 0, never ``lgamma(0)``).
    """
    c = ops.exp(log_c)
    pos = 1.0 - ops.eq(k, 0.0) * 1.0  # ops.eq: k is data
    return pos * (log_c + ops.gammaln(k + c + (1.0 - pos)) - ops.gammaln(c + 1.0))


def _diff0(k, d):
    """``d`` where the count ``k`` is positive, 0 where it is 0 (NumPy)."""
    return np.where(np.asarray(k) == 0, 0.0, d)


def _trigamma(x):
    """psi'(x) for x > 0 (NumPy), relative error < 1e-14: the recurrence psi'(x) = psi'(x + 1) + 1/x^2
    up to x + 10, then the asymptotic series 1/z + 1/(2 z^2) + sum_k B_2k / z^(2k + 1).

    SciPy's ``polygamma(1, x)`` is a Hurwitz zeta (~200 ns an element): it was 55% of a warm
    beta-binomial ``fit_ml`` (PIRLS's second derivatives); this is ~5x faster.
    """
    x = np.asarray(x, dtype=float)
    s = np.zeros_like(x)
    z = x.copy()
    for _ in range(10):
        s += 1.0 / (z * z)
        z += 1.0
    r = 1.0 / (z * z)
    tail = 1.0 / 6.0 + r * (-1.0 / 30.0 + r * (1.0 / 42.0 + r * (-1.0 / 30.0 + r * (5.0 / 66.0))))
    return s + (1.0 + (0.5 + tail / z) / z) / z

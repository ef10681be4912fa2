"""Link functions g with inverse h = g^{-1}, written once against ``ops``.

Each method takes an optional ``ops`` math namespace (default NumPy) so the PyMC builder,
the dual numbers and the C emitter evaluate the very same expressions.  Code outside
``bayes_glmm/families`` asks a link what it can do (:attr:`Link.is_identity`,
:meth:`Link.zla_eta`, ...) rather than testing its name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from ..ops.numpy_ops import NUMPY_OPS

__all__ = ["Link", "LINKS", "PROBABILITY_LINKS", "ZLA_C2"]

_SQRT_2PI = float(np.sqrt(2.0 * np.pi))

#: every link name a family may allow
LINKS = ("identity", "log", "logit", "probit", "cloglog", "inverse")
#: links mapping eta to (0, 1), with a stable (log mu, log(1 - mu)) pair
PROBABILITY_LINKS = ("logit", "probit", "cloglog")
#: Zeger, Liang & Albert (1988): the logistic approximated by a probit, c^2 = (16 sqrt(3) / (15 pi))^2
ZLA_C2 = (16.0 * np.sqrt(3.0) / (15.0 * np.pi)) ** 2


@dataclass(frozen=True)
class Link:
    """A link function g with inverse h = g^{-1}.

    Attributes
    ----------
    name : str
        One of :data:`LINKS`.
    """

    name: str

    def __post_init__(self):
        if self.name not in LINKS:
            raise ValueError(f"unknown link {self.name!r}; choose one of {list(LINKS)}")

    # --- what the link is ------------------------------------------------------------
    @property
    def is_identity(self) -> bool:
        """True for the identity link (eta is the mean itself)."""
        return self.name == "identity"

    @property
    def is_log(self) -> bool:
        """True for the log link (an offset is a log exposure; exp(beta) is a rate ratio)."""
        return self.name == "log"

    @property
    def contrast_ratio(self) -> str | None:
        """What exp of a difference on this link's scale is, as emmeans labels it with
        ``type = "response"``: ``"ratio"`` (log), ``"odds.ratio"`` (logit); None for links
        whose differences have no back-transformed reading."""
        return {"log": "ratio", "logit": "odds.ratio"}.get(self.name)

    @property
    def complement_underflows(self) -> bool:
        """True when 1 - mu underflows to 0 at a moderate eta (cloglog: exp(-e^eta) = 0 beyond
        eta ~ 6.6), so a density should work from :meth:`log_p_and_log_q` rather than from
        :meth:`mu_and_complement`.  Probit's underflow only beyond |eta| ~ 38 and logit's beyond
        ~745; their log pair costs more (probit's log_ndtr has no JAX implementation)."""
        return self.name == "cloglog"

    @property
    def is_probability(self) -> bool:
        """True when h maps onto (0, 1) (logit, probit, cloglog)."""
        return self.name in PROBABILITY_LINKS

    @property
    def latent_variance(self) -> float | None:
        """Variance of the standard latent error whose CDF is h (binary threshold models):
        pi^2/3 (logit), 1 (probit), pi^2/6 (cloglog); None for the other links."""
        return {"logit": np.pi ** 2 / 3.0, "probit": 1.0, "cloglog": np.pi ** 2 / 6.0}.get(self.name)

    @property
    def statsmodels_name(self) -> str | None:
        """The statsmodels ``families.links`` class name (GEE), or None."""
        return {"identity": "Identity", "log": "Log", "logit": "Logit", "probit": "Probit",
                "cloglog": "CLogLog"}.get(self.name)

    def zla_eta(self, eta, s):
        """Zeger-Liang-Albert approximation of the marginal linear predictor with random-effect SD ``s``.

        ``eta`` (identity), ``eta + s^2/2`` (log, exact), ``eta / sqrt(1 + c^2 s^2)`` (logit),
        ``eta / sqrt(1 + s^2)`` (probit, exact).  Raises ValueError for the other links.
        """
        if self.name == "identity":
            return eta
        if self.name == "log":
            return eta + s ** 2 / 2.0
        if self.name == "logit":
            return eta / np.sqrt(1.0 + ZLA_C2 * s ** 2)
        if self.name == "probit":
            return eta / np.sqrt(1.0 + s ** 2)
        raise ValueError(f"method='zla' has no approximation for the {self.name!r} link; use method='projection'")

    def prior_centre(self, y, w, offset, y_sd):
        """(location, scale) of the default intercept prior on this link's scale.

        Identity: (weighted mean of y, sd(y)); log: (log of the mean rate per unit offset,
        floored at 1e-2, as brms centres its intercept prior), 1; inverse (gamma): 1/mean(y)
        for both; the probability links: (0, 1).  Fixed-effect prior scales are the scale
        divided by each predictor's SD.
        """
        if self.name == "identity":
            return float(np.average(y, weights=w)), y_sd
        if self.name == "log":
            rate = np.average(y / np.exp(offset), weights=w)
            return float(np.log(max(rate, 1e-2))), 1.0
        if self.name == "inverse":
            ybar = max(float(np.average(y, weights=w)), 1e-8)
            return 1.0 / ybar, 1.0 / ybar
        return 0.0, 1.0

    # --- the functions ---------------------------------------------------------------
    def inverse(self, eta, ops: Any = NUMPY_OPS):
        """Mean from the linear predictor, mu = h(eta)."""
        if self.name == "identity":
            return eta
        if self.name == "log":
            return ops.exp(eta)
        if self.name == "logit":
            return ops.sigmoid(eta)
        if self.name == "probit":
            return ops.ndtr(eta)
        if self.name == "cloglog":
            return -ops.expm1(-ops.exp(eta))
        return 1.0 / eta  # inverse

    def link(self, mu, ops: Any = NUMPY_OPS):
        """Linear predictor from the mean, eta = g(mu)."""
        if self.name == "identity":
            return mu
        if self.name == "log":
            return ops.log(mu)
        if self.name == "logit":
            return ops.log(mu) - ops.log1p(-mu)
        if self.name == "probit":
            return special.ndtri(mu)  # only needed on the NumPy side (starting values)
        if self.name == "cloglog":
            return ops.log(-ops.log1p(-mu))
        return 1.0 / mu  # inverse

    def mu_eta(self, eta, ops: Any = NUMPY_OPS):
        """Derivative d mu / d eta (the IRLS weight numerator)."""
        if self.name == "identity":
            return eta * 0.0 + 1.0
        if self.name == "log":
            return ops.exp(eta)
        if self.name == "logit":
            p = ops.sigmoid(eta)
            return p * (1.0 - p)
        if self.name == "probit":
            return ops.exp(-0.5 * eta * eta) / _SQRT_2PI
        if self.name == "cloglog":
            return ops.exp(eta - ops.exp(eta))
        return -1.0 / (eta * eta)  # inverse

    def mu_eta2(self, eta):
        """Second derivative d^2 mu / d eta^2 (NumPy; the observed-information term of
        non-canonical links)."""
        eta = np.asarray(eta, dtype=float)
        if self.name == "identity":
            return np.zeros_like(eta)
        if self.name == "log":
            return np.exp(eta)
        if self.name == "logit":
            p = special.expit(eta)
            return p * (1.0 - p) * (1.0 - 2.0 * p)
        if self.name == "probit":
            return -eta * np.exp(-0.5 * eta * eta) / _SQRT_2PI
        if self.name == "cloglog":
            e = np.exp(eta)
            return np.exp(eta - e) * (1.0 - e)
        return 2.0 / (eta * eta * eta)  # inverse

    def log_p_and_log_q(self, eta, ops: Any = NUMPY_OPS):
        """(log mu, log(1 - mu)) for a probability link, computed stably from eta.

        Binary log-densities near 0 or 1 lose all precision if formed from mu, so each
        link supplies its own stable pair.
        """
        if self.name == "logit":
            # log(1 - p) = -softplus(eta) and log p = eta + log(1 - p): one softplus, not two
            # (this is the hot loop of both PIRLS/AGQ and the NUTS gradient)
            log_q = -ops.softplus(eta)
            return eta + log_q, log_q
        if self.name == "probit":
            return ops.log_ndtr(eta), ops.log_ndtr(-eta)
        if self.name == "cloglog":
            e = ops.exp(eta)
            return ops.log1mexp(-e), -e
        raise ValueError(f"link {self.name!r} is not a probability link")

    def mu_and_complement(self, eta, ops: Any = NUMPY_OPS):
        """(mu, 1 - mu) for a probability link, each computed without cancellation."""
        if self.name == "logit":
            return ops.sigmoid(eta), ops.sigmoid(-eta)
        if self.name == "probit":
            return ops.ndtr(eta), ops.ndtr(-eta)
        if self.name == "cloglog":
            e = ops.exp(eta)  # 1 - mu = exp(-e^eta)
            return -ops.expm1(-e), ops.exp(-e)
        raise ValueError(f"link {self.name!r} is not a probability link")

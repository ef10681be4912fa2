"""Response families and link functions, defined once for both estimation paths.

Every formula here is written against a small math namespace (``ops``) so that the
same code evaluates on NumPy arrays (the maximum-likelihood path) and on PyTensor
tensors (the PyMC graph, which passes its own namespace from :mod:`bayes_glmm.bayes`).
That is how the package keeps a single copy of each inverse link and log-density.

Families
--------
``gaussian``  identity (default) or log link; needs ``sigma``.
``bernoulli`` 0/1 response; logit (default), probit or cloglog.
``binomial``  successes out of ``trials``; logit (default), probit or cloglog.
``poisson``   counts; log link.
``negbinomial`` counts, variance mu + mu^2/theta (NB2; aliases ``nbinom2``, ``negativebinomial``); log link.
``nbinom1``   counts, variance mu (1 + phi) (glmmTMB's NB1); log link.
``gamma``     y > 0, variance mu^2 / shape; log (default), inverse or identity link.
``beta``      0 < y < 1, variance mu (1 - mu) / (1 + phi); logit (default), probit or cloglog.

The last four carry a dispersion parameter (``theta``, ``phi``, ``shape``, ``phi``), which
both paths estimate on the log scale.  Zero inflation (poisson and the negative binomials)
is a mixture with a structural zero of probability ``expit(eta_zi)``: :func:`zi_loglik`
turns any conditional log-density into the zero-inflated one.

Derivatives of the log-density in eta (:meth:`Family.eta_derivs`, for PIRLS and the Laplace
Hessian) are derived by hand from :meth:`Family.loglik`; ``tests/test_families.py`` holds
them equal to finite differences of it point by point.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from .ops.numpy_ops import NUMPY_OPS, softplus_and_expit
from .ops.numpy_ops import np_softplus as _np_softplus

__all__ = ["Link", "Family", "get_family", "softplus_and_expit", "NUMPY_OPS", "FAMILIES", "LINKS",
           "DISPERSION", "ZI_FAMILIES", "zi_loglik", "zi_eta_derivs"]

_LOG_2PI = float(np.log(2.0 * np.pi))


_SQRT_2PI = float(np.sqrt(2.0 * np.pi))


@dataclass(frozen=True)
class Link:
    """A link function g with inverse h = g^{-1}.

    Methods take an optional ``ops`` math namespace (default NumPy) so the PyMC
    builder can evaluate the very same expressions symbolically.
    """

    name: str

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
        if self.name == "inverse":
            return 1.0 / eta
        raise AssertionError(self.name)  # unreachable: names are validated in get_family

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
        if self.name == "inverse":
            return 1.0 / mu
        raise AssertionError(self.name)

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
        if self.name == "inverse":
            return -1.0 / (eta * eta)
        raise AssertionError(self.name)

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
        if self.name == "inverse":
            return 2.0 / (eta * eta * eta)
        raise AssertionError(self.name)

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


#: links allowed per family; the first is the default (canonical where it exists)
FAMILIES: dict[str, tuple[str, ...]] = {
    "gaussian": ("identity", "log"),
    "bernoulli": ("logit", "probit", "cloglog"),
    "binomial": ("logit", "probit", "cloglog"),
    "poisson": ("log",),
    "negbinomial": ("log",),
    "nbinom1": ("log",),
    "gamma": ("log", "inverse", "identity"),
    "beta": ("logit", "probit", "cloglog"),
}
LINKS = ("identity", "log", "logit", "probit", "cloglog", "inverse")

#: other names users write for a family (R's and glmmTMB's among them)
ALIASES = {"normal": "gaussian", "nbinom2": "negbinomial", "negativebinomial": "negbinomial",
           "negative_binomial": "negbinomial", "negative-binomial": "negbinomial",
           "neg_binomial_2": "negbinomial", "beta_family": "beta"}

#: name of each family's dispersion parameter (gaussian's residual SD is ``sigma``)
DISPERSION = {"gaussian": "sigma", "negbinomial": "theta", "nbinom1": "phi", "gamma": "shape", "beta": "phi"}

#: families that admit zero inflation (``zi=``)
ZI_FAMILIES = ("poisson", "negbinomial", "nbinom1")


_COUNT_FAMILIES = ("poisson", "negbinomial", "nbinom1")


@dataclass(frozen=True)
class Family:
    """A conditional response distribution with its link.

    Attributes
    ----------
    name : str
        ``"gaussian"``, ``"bernoulli"``, ``"binomial"``, ``"poisson"``, ``"negbinomial"``,
        ``"nbinom1"``, ``"gamma"`` or ``"beta"``.
    link : Link
    """

    name: str
    link: Link

    # --- what the family needs -------------------------------------------------------
    @property
    def has_sigma(self) -> bool:
        """True when the family has a residual scale parameter (gaussian)."""
        return self.name == "gaussian"

    @property
    def has_dispersion(self) -> bool:
        """True for the families with a non-gaussian dispersion parameter (NB, Gamma, Beta)."""
        return self.name in DISPERSION and self.name != "gaussian"

    @property
    def dispersion_name(self) -> str | None:
        """``"theta"`` (NB2), ``"phi"`` (NB1, Beta), ``"shape"`` (Gamma), ``"sigma"`` (gaussian) or None."""
        return DISPERSION.get(self.name)

    @property
    def allows_zi(self) -> bool:
        """True when zero inflation (``zi=``) applies (count families)."""
        return self.name in ZI_FAMILIES

    @property
    def is_count(self) -> bool:
        return self.name in _COUNT_FAMILIES

    @property
    def needs_trials(self) -> bool:
        """True when observations carry a number of trials (binomial)."""
        return self.name == "binomial"

    @property
    def is_canonical(self) -> bool:
        return (self.name, self.link.name) in {
            ("gaussian", "identity"), ("bernoulli", "logit"), ("binomial", "logit"), ("poisson", "log"),
        }

    @property
    def latent_variance(self) -> float | None:
        """Variance of the latent residual on the link scale (for ICCs), or None.

        logit: pi^2/3 (standard logistic); probit: 1; cloglog: pi^2/6 -- for the binary
        families only (a Beta response has no latent binary threshold model).
        """
        if self.name not in ("bernoulli", "binomial"):
            return None
        return {"logit": np.pi ** 2 / 3.0, "probit": 1.0, "cloglog": np.pi ** 2 / 6.0}.get(self.link.name)

    # --- moments ---------------------------------------------------------------------
    def mean(self, eta, ops: Any = NUMPY_OPS):
        """Conditional mean per trial (probability for binomial) from eta."""
        return self.link.inverse(eta, ops)

    def variance(self, mu, ops: Any = NUMPY_OPS, disp=None):
        """Variance function V(mu) (per trial for binomial; times sigma^2 for gaussian).

        For the dispersion families the full conditional variance at dispersion ``disp``:
        ``mu + mu^2/theta`` (NB2), ``mu (1 + phi)`` (NB1), ``mu^2/shape`` (Gamma),
        ``mu (1 - mu)/(1 + phi)`` (Beta).
        """
        if self.name == "gaussian":
            return mu * 0.0 + 1.0
        if self.name in ("bernoulli", "binomial"):
            return mu * (1.0 - mu)
        if self.name == "poisson":
            return mu
        if disp is None:
            raise ValueError(f"the {self.name} variance needs its dispersion {self.dispersion_name!r}")
        if self.name == "negbinomial":
            return mu + mu * mu / disp
        if self.name == "nbinom1":
            return mu * (1.0 + disp)
        if self.name == "gamma":
            return mu * mu / disp
        return mu * (1.0 - mu) / (1.0 + disp)  # beta

    def moment_dispersion(self, r2: float, mu, w) -> float | None:
        """The dispersion at which the family's variance accounts for the squared residuals:
        solves ``sum(w * Var(mu; disp)) = r2`` (the method of moments), with ``r2`` the
        (weighted, df-corrected) sum of squared residuals about the means ``mu``.

        sigma^2 for gaussian, theta (NB2), phi (NB1, Beta), shape (Gamma); 1e12 where the
        residuals show no more spread than the family's floor (no overdispersion); None for
        the families without one.  A crude start (``centered="auto"``), not an estimate.
        """
        mu, w = np.asarray(mu, dtype=float), np.asarray(w, dtype=float)
        big = 1e12
        if self.name == "gaussian":
            return max(r2 / max(float(np.sum(w)), 1e-300), 1e-300)
        if self.name == "negbinomial":  # Var = mu + mu^2 / theta
            extra = r2 - float(np.sum(w * mu))
            return big if extra <= 0 else float(np.sum(w * mu * mu)) / extra
        if self.name == "nbinom1":  # Var = mu (1 + phi)
            return max(r2 / max(float(np.sum(w * mu)), 1e-300) - 1.0, 0.0)
        if self.name == "gamma":  # Var = mu^2 / shape
            return big if r2 <= 0 else float(np.sum(w * mu * mu)) / r2
        if self.name == "beta":  # Var = mu (1 - mu) / (1 + phi)
            return big if r2 <= 0 else max(float(np.sum(w * mu * (1 - mu))) / r2 - 1.0, 1e-6)
        return None

    def random(self, eta, rng, *, trials=None, sigma=None, disp=None, zi_eta=None):
        """Draws of y given eta (NumPy): the distribution whose density is :meth:`loglik`.

        Parameters
        ----------
        eta : ndarray
            Linear predictor (offset included), any shape.
        rng : numpy.random.Generator
        trials : array, optional
            Binomial trials (broadcast against eta).
        sigma : float or array, optional
            Gaussian residual SD (broadcast against eta).
        disp : float or array, optional
            Dispersion (``theta``, ``phi`` or ``shape``) for the dispersion families.
        zi_eta : array, optional
            Zero-inflation linear predictor: a structural zero with probability ``expit(zi_eta)``.
        """
        eta = np.asarray(eta, dtype=float)
        mu = self.mean(eta)
        if self.name == "gaussian":
            y = rng.normal(mu, sigma)
        elif self.name == "bernoulli":
            y = (rng.random(mu.shape) < mu).astype(np.int64)
        elif self.name == "binomial":
            n = np.broadcast_to(np.asarray(trials, dtype=np.int64), mu.shape)
            y = rng.binomial(n, np.clip(mu, 0.0, 1.0))
        elif self.name == "poisson":
            y = rng.poisson(mu)
        elif self.name == "negbinomial":
            # gamma-Poisson mixture: numpy's negative_binomial needs a positive mean
            th = np.broadcast_to(np.asarray(disp, dtype=float), mu.shape)
            y = rng.poisson(rng.gamma(th, mu / th))
        elif self.name == "nbinom1":
            ph = np.broadcast_to(np.asarray(disp, dtype=float), mu.shape)
            size = mu / ph
            y = rng.poisson(rng.gamma(size, ph))  # mean size * phi = mu, variance mu (1 + phi)
        elif self.name == "gamma":
            k = np.broadcast_to(np.asarray(disp, dtype=float), mu.shape)
            y = rng.gamma(k, mu / k)
        else:  # beta
            ph = np.asarray(disp, dtype=float)
            y = rng.beta(mu * ph, (1.0 - mu) * ph)
        if zi_eta is not None:
            structural = rng.random(np.shape(y)) < special.expit(np.asarray(zi_eta, dtype=float))
            y = np.where(structural, 0, y)
        return y

    # --- log-density -------------------------------------------------------------------
    def loglik(self, y, eta, *, trials=None, sigma=None, disp=None, ops: Any = NUMPY_OPS):
        """Pointwise conditional log-density log f(y | eta), every constant included.

        Parameters
        ----------
        y : array
            Response (successes for binomial).
        eta : array
            Linear predictor (offset included).
        trials : array, optional
            Binomial number of trials.
        sigma : float or array, optional
            Gaussian residual SD.
        disp : float or array, optional
            Dispersion of the NB (``theta`` / ``phi``), Gamma (``shape``) and Beta (``phi``)
            families.
        """
        if self.name == "gaussian":
            mu = self.link.inverse(eta, ops)
            r = (y - mu) / sigma
            return -0.5 * r * r - ops.log(sigma) - 0.5 * _LOG_2PI
        if self.name == "bernoulli":
            lp, lq = self.link.log_p_and_log_q(eta, ops)
            return y * lp + (1.0 - y) * lq
        if self.name == "binomial":
            lp, lq = self.link.log_p_and_log_q(eta, ops)
            lchoose = ops.gammaln(trials + 1.0) - ops.gammaln(y + 1.0) - ops.gammaln(trials - y + 1.0)
            return lchoose + y * lp + (trials - y) * lq
        if self.name == "poisson":
            # log link: y*eta - exp(eta) - log y!
            return y * eta - ops.exp(eta) - ops.gammaln(y + 1.0)
        if self.name == "negbinomial":
            # log(theta + mu) = log theta + softplus(eta - log theta): no overflow for large eta
            lt = ops.log(disp)
            sp = ops.softplus(eta - lt)
            return (ops.gammaln(y + disp) - ops.gammaln(disp) - ops.gammaln(y + 1.0)
                    + y * (eta - lt) - (y + disp) * sp)
        if self.name == "nbinom1":
            # NB with size mu/phi: theta/(theta + mu) = 1/(1 + phi) for every row
            s = ops.exp(eta) / disp
            return (ops.gammaln(y + s) - ops.gammaln(s) - ops.gammaln(y + 1.0)
                    - s * ops.log1p(disp) + y * (ops.log(disp) - ops.log1p(disp)))
        if self.name == "gamma":
            if self.link.name == "log":
                log_mu, inv_mu = eta, ops.exp(-eta)
            else:
                mu = self.link.inverse(eta, ops)
                log_mu, inv_mu = ops.log(mu), 1.0 / mu
            k = disp
            return k * ops.log(k) - ops.gammaln(k) + (k - 1.0) * ops.log(y) - k * log_mu - k * y * inv_mu
        # beta: mean mu, precision phi; 1 - mu from -eta where the link allows (no cancellation)
        mu, one_m = self._mu_and_complement(eta, ops)
        a, b = mu * disp, one_m * disp
        return (ops.gammaln(disp) - ops.gammaln(a) - ops.gammaln(b)
                + (a - 1.0) * ops.log(y) + (b - 1.0) * ops.log1p(-y))

    def _mu_and_complement(self, eta, ops):
        """(mu, 1 - mu) for a probability link, each computed without cancellation."""
        lk = self.link.name
        if lk == "logit":
            return ops.sigmoid(eta), ops.sigmoid(-eta)
        if lk == "probit":
            return ops.ndtr(eta), ops.ndtr(-eta)
        e = ops.exp(eta)  # cloglog: 1 - mu = exp(-e^eta)
        return -ops.expm1(-e), ops.exp(-e)

    def loglik_constant(self, y, trials=None, disp=None):
        """The eta-free part of :meth:`loglik` per row (NumPy): ``log C(n, y)`` for binomial,
        ``-log y!`` for poisson, 0 for the other classic families (fitters compute it once
        per fit).  For the dispersion families it depends on ``disp`` and is what
        :meth:`loglik_eta` leaves out (``lgamma(y + theta) - lgamma(theta) - lgamma(y + 1)
        - y log theta`` for NB2; ``shape log shape - lgamma(shape) + (shape - 1) log y`` for
        Gamma; 0 for NB1 and Beta, whose every term moves with eta); with ``disp=None`` they
        give 0 (no split)."""
        y = np.asarray(y, dtype=float)
        if self.name == "binomial":
            return special.gammaln(trials + 1.0) - special.gammaln(y + 1.0) - special.gammaln(trials - y + 1.0)
        if self.name == "poisson":
            return -special.gammaln(y + 1.0)
        if disp is not None and self.name == "negbinomial":
            return special.gammaln(y + disp) - special.gammaln(disp) - special.gammaln(y + 1.0) - y * np.log(disp)
        if disp is not None and self.name == "gamma":
            return disp * np.log(disp) - special.gammaln(disp) + (disp - 1.0) * np.log(y)
        return np.zeros_like(y)

    def loglik_eta(self, y, eta, disp):
        """:meth:`loglik` minus :meth:`loglik_constant` for a dispersion family (NumPy): the part
        that moves with eta, which is all PIRLS re-evaluates at fixed dispersion
        (``tests/test_families.py`` holds the sum equal to :meth:`loglik`)."""
        if self.name == "negbinomial":
            return y * eta - (y + disp) * _np_softplus(eta - np.log(disp))
        if self.name == "gamma" and self.link.name == "log":
            return -disp * (eta + y * np.exp(-eta))
        if self.name == "gamma":
            mu = self.link.inverse(eta)
            return -disp * (np.log(mu) + y / mu)
        return self.loglik(y, eta, disp=disp)

    def loglik_canonical(self, y, eta, trials=1.0):
        """Fast NumPy form of :meth:`loglik` minus :meth:`loglik_constant`, with mu, for the
        canonical binomial/bernoulli and poisson links.

        ``y eta - n softplus(eta)`` and ``y eta - e^eta`` are :meth:`loglik` rearranged so
        that one ``exp`` serves both the log-density and the mean (the ML hot loop).

        Returns
        -------
        (ll, mu) : arrays; ``mu`` is the per-trial mean.
        """
        if not self.is_canonical or self.name == "gaussian":
            raise ValueError(f"loglik_canonical applies to canonical bernoulli/binomial/poisson links, "
                             f"not {self.name}/{self.link.name}")
        if self.name == "poisson":
            mu = np.exp(eta)
            return y * eta - mu, mu
        sp, mu = softplus_and_expit(eta)
        sp *= trials
        return np.subtract(y * eta, sp, out=sp), mu

    def eta_derivs(self, y, eta, *, trials=None, sigma=None, disp=None):
        """First derivative and (observed, expected) information of :meth:`loglik` in eta (NumPy).

        Returns
        -------
        d1 : ndarray
            ``d log f / d eta``.
        w_obs : ndarray
            ``-d^2 log f / d eta^2`` (the exact Hessian the Laplace approximation uses for the
            dispersion families, as glmmTMB's automatic differentiation does).
        w_fisher : ndarray
            Its expectation ``mu_eta^2 / Var(y)`` (IRLS weights; always positive).  For NB1,
            whose expectation has no closed form, the quasi-likelihood ``mu / (1 + phi)``.
        """
        y = np.asarray(y, dtype=float)
        eta = np.asarray(eta, dtype=float)
        nm = self.name
        if nm == "poisson":
            mu = np.exp(eta)
            return y - mu, mu, mu
        if nm == "negbinomial":
            mu = np.exp(eta)
            tm = disp + mu
            return disp * (y - mu) / tm, disp * mu * (disp + y) / (tm * tm), disp * mu / tm
        if nm == "nbinom1":
            mu = np.exp(eta)
            s = mu / disp
            d1 = s * (special.digamma(y + s) - special.digamma(s) - np.log1p(disp))
            d2 = d1 + s * s * (special.polygamma(1, y + s) - special.polygamma(1, s))
            return d1, -d2, mu / (1.0 + disp)
        if nm == "gamma" and self.link.name == "log":
            r = y * np.exp(-eta)
            return disp * (r - 1.0), disp * r, np.broadcast_to(np.asarray(disp, dtype=float), eta.shape) * 1.0
        if nm in ("bernoulli", "binomial") and self.link.name == "logit":
            n = 1.0 if trials is None else np.asarray(trials, dtype=float)
            mu = special.expit(eta)
            w = n * mu * (1.0 - mu)
            return y - n * mu, w, w
        # generic chain rule through mu = h(eta): l_eta = l_mu h', l_eta,eta = l_mu,mu h'^2 + l_mu h''
        mu = self.link.inverse(eta)
        me, me2 = self.link.mu_eta(eta), self.link.mu_eta2(eta)
        if nm == "gaussian":
            s2 = sigma * sigma
            lm, lmm, info = (y - mu) / s2, -1.0 / s2 + 0.0 * mu, 1.0 / s2 + 0.0 * mu
        elif nm in ("bernoulli", "binomial"):
            n = 1.0 if trials is None else np.asarray(trials, dtype=float)
            mu = np.clip(mu, 1e-15, 1.0 - 1e-15)
            lm = y / mu - (n - y) / (1.0 - mu)
            lmm = -y / (mu * mu) - (n - y) / ((1.0 - mu) ** 2)
            info = n / (mu * (1.0 - mu))
        elif nm == "gamma":
            lm = disp * (y - mu) / (mu * mu)
            lmm = disp * (mu - 2.0 * y) / mu ** 3
            info = disp / (mu * mu)
        elif nm == "beta":
            mu, one_m = self._mu_and_complement(eta, NUMPY_OPS)
            a, b = mu * disp, one_m * disp
            lm = disp * (np.log(y) - np.log1p(-y) - special.digamma(a) + special.digamma(b))
            info = disp * disp * (special.polygamma(1, a) + special.polygamma(1, b))
            lmm = -info
        else:
            raise AssertionError(nm)
        return lm * me, -(lmm * me * me + lm * me2), info * me * me

    # --- validation ---------------------------------------------------------------------
    def check_response(self, y: np.ndarray, trials: np.ndarray | None, name: str) -> None:
        """Raise ValueError naming the response column when y does not suit the family."""
        y = np.asarray(y, dtype=float)
        if not np.all(np.isfinite(y)):
            raise ValueError(f"response {name!r} has non-finite values; remove or impute them")
        if self.name == "bernoulli":
            bad = ~np.isin(y, (0.0, 1.0))
            if bad.any():
                vals = np.unique(y[bad])[:5]
                raise ValueError(
                    f"bernoulli response {name!r} must be 0/1, bool or a two-level factor; found values "
                    f"{vals.tolist()}. For counts out of n use family='binomial' with cbind(successes, failures) "
                    f"or trials=."
                )
        elif self.name == "binomial":
            if trials is None:
                raise ValueError(
                    f"binomial response {name!r} needs trials: write cbind(successes, failures) on the left "
                    f"of the formula or pass trials='column'."
                )
            trials = np.asarray(trials, dtype=float)
            if np.any(y < 0) or np.any(y != np.round(y)):
                raise ValueError(f"binomial successes {name!r} must be non-negative integers")
            if np.any(trials != np.round(trials)) or np.any(trials < 0):
                raise ValueError(f"binomial trials for {name!r} must be non-negative integers")
            over = y > trials
            if over.any():
                i = int(np.flatnonzero(over)[0])
                raise ValueError(
                    f"binomial successes exceed trials in {int(over.sum())} row(s) of {name!r} "
                    f"(first: row {i}, {y[i]:g} successes of {trials[i]:g}); check the trials column"
                )
        elif self.is_count:
            bad_mask = (y < 0) | (y != np.round(y))
            if bad_mask.any():
                bad = y[bad_mask][:5]
                raise ValueError(
                    f"{self.name} response {name!r} must be non-negative integer counts; found "
                    f"{int(bad_mask.sum())} row(s) that are not, e.g. {bad.tolist()}. For a positive "
                    f"continuous response use family='gamma', otherwise family='gaussian'."
                )
        elif self.name == "gamma":
            bad_mask = y <= 0
            if bad_mask.any():
                n0 = int(np.sum(y == 0))
                raise ValueError(
                    f"gamma response {name!r} must be > 0; {int(bad_mask.sum())} row(s) are not "
                    f"({n0} exactly 0, min {y.min():g}). Drop or shift them, or use a family for "
                    f"counts (negbinomial) or a zero-inflated / hurdle model.")
        elif self.name == "beta":
            n0, n1 = int(np.sum(y == 0)), int(np.sum(y == 1))
            out = int(np.sum((y < 0) | (y > 1)))
            if n0 or n1 or out:
                raise ValueError(
                    f"beta response {name!r} must lie strictly between 0 and 1; {n0} row(s) are exactly 0, "
                    f"{n1} exactly 1 and {out} outside [0, 1]. For proportions that include 0 or 1 the usual "
                    f"squeeze is y' = (y (n - 1) + 0.5) / n with n the number of rows (Smithson & "
                    f"Verkuilen 2006); for counts out of a total use family='binomial'.")


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


def get_family(family: str | Family = "gaussian", link: str | None = None) -> Family:
    """Return a :class:`Family`, validating family and link names.

    Parameters
    ----------
    family : str or Family
        One of :data:`FAMILIES` or an alias in :data:`ALIASES` (``"nbinom2"``, ``"normal"``).
    link : str, optional
        Defaults to the family's canonical link.

    Raises
    ------
    ValueError
        Unknown family or a link the family does not support, naming the choices.
    """
    if isinstance(family, Family):
        if link is None or link == family.link.name:
            return family
        family = family.name
    if not isinstance(family, str):
        raise ValueError(f"family must be a string such as 'bernoulli'; got {family!r}")
    fam = family.lower().strip()
    fam = ALIASES.get(fam, fam)
    if fam not in FAMILIES:
        import difflib
        close = difflib.get_close_matches(fam, list(FAMILIES) + list(ALIASES), n=1)
        hint = f" (did you mean {ALIASES.get(close[0], close[0])!r}?)" if close else ""
        raise ValueError(f"unknown family {family!r}{hint}; choose one of {sorted(FAMILIES)}")
    allowed = FAMILIES[fam]
    lk = allowed[0] if link is None else str(link).lower()
    if lk not in allowed:
        raise ValueError(f"link {link!r} is not available for family {fam!r}; choose one of {list(allowed)}")
    return Family(fam, Link(lk))

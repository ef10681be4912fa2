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
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
from scipy import special

__all__ = ["Link", "Family", "get_family", "softplus_and_expit", "NUMPY_OPS", "FAMILIES", "LINKS"]

_LOG_2PI = float(np.log(2.0 * np.pi))


def _np_softplus(x):
    # log(1 + exp(x)) without overflow for large x
    return np.logaddexp(0.0, x)


def _np_log1mexp(x):
    """log(1 - exp(x)) for x < 0, accurate near 0 and -inf (Maechler 2012)."""
    x = np.asarray(x, dtype=float)
    return np.where(x > -np.log(2.0), np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


def softplus_and_expit(eta):
    """``log(1 + e^eta)`` and ``expit(eta)`` sharing one ``exp(-|eta|)`` (no overflow).

    NumPy only. Written with ``out=`` and ``where=`` to avoid temporaries: it is the
    innermost operation of every ML deviance evaluation (n x nodes elements for AGQ).
    """
    e = np.abs(eta)
    np.negative(e, out=e)
    np.exp(e, out=e)  # e = exp(-|eta|) in (0, 1]
    t = e + 1.0
    sp = np.log(t)  # log(1 + e): absolute error ~1e-16, all a sum of log-densities needs
    sp += np.maximum(eta, 0.0)
    mu = np.reciprocal(t, out=t)  # expit(|eta|)
    np.multiply(mu, e, out=mu, where=eta < 0)  # expit(eta) = e / (1 + e) for eta < 0
    return sp, mu


#: NumPy/SciPy implementation of the math namespace used by links and families.
NUMPY_OPS = SimpleNamespace(
    exp=np.exp,
    log=np.log,
    log1p=np.log1p,
    expm1=np.expm1,
    sigmoid=special.expit,
    softplus=_np_softplus,
    log1mexp=_np_log1mexp,
    ndtr=special.ndtr,
    log_ndtr=special.log_ndtr,
    gammaln=special.gammaln,
    square=np.square,
    clip=np.clip,
)

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
}
LINKS = ("identity", "log", "logit", "probit", "cloglog")


@dataclass(frozen=True)
class Family:
    """A conditional response distribution with its link.

    Attributes
    ----------
    name : str
        ``"gaussian"``, ``"bernoulli"``, ``"binomial"`` or ``"poisson"``.
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

        logit: pi^2/3 (standard logistic); probit: 1; cloglog: pi^2/6.
        """
        return {"logit": np.pi ** 2 / 3.0, "probit": 1.0, "cloglog": np.pi ** 2 / 6.0}.get(self.link.name)

    # --- moments ---------------------------------------------------------------------
    def mean(self, eta, ops: Any = NUMPY_OPS):
        """Conditional mean per trial (probability for binomial) from eta."""
        return self.link.inverse(eta, ops)

    def variance(self, mu, ops: Any = NUMPY_OPS):
        """Variance function V(mu) (per trial for binomial; times sigma^2 for gaussian)."""
        if self.name == "gaussian":
            return mu * 0.0 + 1.0
        if self.name in ("bernoulli", "binomial"):
            return mu * (1.0 - mu)
        return mu  # poisson

    def random(self, eta, rng, *, trials=None, sigma=None):
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
        """
        mu = self.mean(np.asarray(eta, dtype=float))
        if self.name == "gaussian":
            return rng.normal(mu, sigma)
        if self.name == "bernoulli":
            return (rng.random(mu.shape) < mu).astype(np.int64)
        if self.name == "binomial":
            n = np.broadcast_to(np.asarray(trials, dtype=np.int64), mu.shape)
            return rng.binomial(n, np.clip(mu, 0.0, 1.0))
        return rng.poisson(mu)

    # --- log-density -------------------------------------------------------------------
    def loglik(self, y, eta, *, trials=None, sigma=None, ops: Any = NUMPY_OPS):
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
        # poisson, log link: y*eta - exp(eta) - log y!
        return y * eta - ops.exp(eta) - ops.gammaln(y + 1.0)

    def loglik_constant(self, y, trials=None):
        """The eta-free part of :meth:`loglik` per row (NumPy): ``log C(n, y)`` for binomial,
        ``-log y!`` for poisson, 0 otherwise. Fitters compute it once per fit."""
        y = np.asarray(y, dtype=float)
        if self.name == "binomial":
            return special.gammaln(trials + 1.0) - special.gammaln(y + 1.0) - special.gammaln(trials - y + 1.0)
        if self.name == "poisson":
            return -special.gammaln(y + 1.0)
        return np.zeros_like(y)

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
        elif self.name == "poisson":
            if np.any(y < 0) or np.any(y != np.round(y)):
                bad = y[(y < 0) | (y != np.round(y))][:5]
                raise ValueError(
                    f"poisson response {name!r} must be non-negative integer counts; found {bad.tolist()}. "
                    f"For continuous data use family='gaussian'."
                )


def get_family(family: str | Family = "gaussian", link: str | None = None) -> Family:
    """Return a :class:`Family`, validating family and link names.

    Parameters
    ----------
    family : str or Family
        ``"gaussian"``, ``"bernoulli"``, ``"binomial"`` or ``"poisson"``.
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
    fam = family.lower()
    if fam == "normal":
        fam = "gaussian"
    if fam not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {sorted(FAMILIES)}")
    allowed = FAMILIES[fam]
    lk = allowed[0] if link is None else str(link).lower()
    if lk not in allowed:
        raise ValueError(f"link {link!r} is not available for family {fam!r}; choose one of {list(allowed)}")
    return Family(fam, Link(lk))

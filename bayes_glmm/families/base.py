"""The :class:`Family` base class and :class:`AuxParam`, the record of an auxiliary parameter.

A family is one module in this folder: a subclass of :class:`Family` that says what it is
(class attributes: name, links, aliases, R's name, flags, auxiliary parameters) and implements
its log-density once against a math namespace ``ops`` (so the same code evaluates on NumPy
arrays, dual numbers, the C emitter and PyTensor tensors), its eta derivatives, mean/variance,
simulation and response checks.  :mod:`bayes_glmm.families` registers it under its name.

The public methods (:meth:`Family.loglik`, :meth:`Family.random`, :meth:`Family.eta_derivs`, ...)
take the auxiliary parameters by their :class:`AuxParam` names (``sigma=``, ``theta=``,
``phi=``, ``shape=``) or by the legacy keywords ``sigma=`` (the residual SD) and ``disp=``
(the first auxiliary parameter); they normalise them and call the hooks a family implements
(``_loglik``, ``_random``, ``_mu_derivs``, ...) with the names the family declares.

Derivatives of the log-density in eta (:meth:`Family.eta_derivs`, for PIRLS and the Laplace
Hessian) are derived by hand from :meth:`Family.loglik`; ``tests/test_families.py`` holds
them equal to finite differences of it point by point.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping

import numpy as np
from scipy import special

from ..ops.numpy_ops import NUMPY_OPS
from .links import Link
from .zi import zi_eta_derivs, zi_loglik

__all__ = ["Family", "AuxParam", "LOG_2PI"]

LOG_2PI = float(np.log(2.0 * np.pi))

#: keywords every public method accepts for the auxiliary parameters besides their own names
_LEGACY = ("sigma", "disp")


@dataclass(frozen=True)
class AuxParam:
    """One auxiliary (non-mean) parameter of a family: a dispersion, a residual SD, a shape.

    Attributes
    ----------
    name : str
        The parameter's name everywhere: prior key, ``idata`` variable, ML dispersion table,
        keyword of :meth:`Family.loglik` (``"sigma"``, ``"theta"``, ``"phi"``, ``"shape"``).
    description : str
        One line for the docs table and summaries.
    default_prior : callable
        ``default_prior(scales) -> (kind, params)``: the default prior as a prior kind name and
        its parameters (``("InverseGamma", {"alpha": 0.5, "beta": 0.5})``), from the data
        scales ``{"y_sd": sd(y), "y_mean": weighted mean of y}``.  :mod:`bayes_glmm.priors`
        turns it into a :class:`~bayes_glmm.priors.Prior` (data, not a Prior, so that this
        folder does not import the prior machinery that imports the model spec).
    start : callable
        ``start(m, v) -> float``: the ML starting value (natural scale) from the weighted mean
        ``m`` and variance ``v`` of the response (method of moments), clipped to ``start_range``.
    support : str
        ``"positive"``: estimated on the log scale by both paths; ``"real"``: as it is;
        ``"ordered"``: real and above the previous auxiliary parameter (an ordinal model's
        thresholds), estimated as ``log(value - previous)``.
    bounds : (float, float)
        Natural-scale bounds of the parameter.
    start_range : (float, float)
        The ML start is clipped to this range (random effects inflate the marginal variance,
        so the moment start errs towards overdispersion).
    prior_doc : str
        The default prior and why, for ``docs/priors.md`` and error messages.
    r_note : str
        How lme4/glmmTMB name or parametrise it, for the families table in ``docs/families.md``.
    nested_at : str
        The boundary value at which the family becomes one of its ``nested_families``, as
        ``bg.lrt`` prints it (``"1/theta = 0"``); empty: ``"<name> = 0"``.
    response_units : bool
        True for a scale in the response's units (a residual SD): the samplers start it at
        ``sd(y)`` when that lies far from 1 (:data:`bayes_glmm.spec.scaling.SCALE_RANGE`), so
        that the start does not depend on the units of y.
    allows_formula : bool
        True when a dispersion formula (``disp="~ x"``, glmmTMB's ``dispformula``) may model
        the parameter's log as linear in covariates (first auxiliary parameter only).
    bambi_name : str
        bambi's name for the same parameter in the same parametrisation, when it differs
        (NB2's ``theta`` is bambi's ``alpha``): :meth:`bayes_glmm.GLMM.from_bambi` reads it.
    """

    name: str
    description: str
    default_prior: Callable[[Mapping[str, float]], tuple]
    start: Callable[[float, float], float]
    support: str = "positive"
    bounds: tuple = (0.0, float("inf"))
    start_range: tuple = (0.05, 1e3)
    prior_doc: str = ""
    r_note: str = ""
    nested_at: str = ""
    response_units: bool = False
    allows_formula: bool = False
    bambi_name: str = ""

    def ml_start(self, m: float, v: float) -> float:
        """The clipped ML starting value from the response's weighted mean and variance."""
        return float(np.clip(self.start(m, v), *self.start_range))


class Family:
    """A conditional response distribution with its link (subclass per family; see the module).

    Instances compare equal and hash by ``(name, link)``, are immutable and pickle by
    reference to their class.

    Parameters
    ----------
    link : Link or str, optional
        One of the family's :attr:`links`; the first (the default) when omitted.
    """

    # --- what a family declares (class attributes) ----------------------------------------
    #: registry name
    name: ClassVar[str] = ""
    #: links allowed; the first is the default
    links: ClassVar[tuple] = ()
    #: other names users write for it (R's and glmmTMB's among them)
    aliases: ClassVar[tuple] = ()
    #: the family's name as lme4/glmmTMB print it in a summary (None: :attr:`name`)
    r_name: ClassVar[str | None] = None
    #: the response is continuous (a density, not a probability mass)
    continuous: ClassVar[bool] = False
    #: the response is a non-negative integer count
    is_count: ClassVar[bool] = False
    #: the mean is a probability of success per trial (bernoulli, binomial)
    is_binary: ClassVar[bool] = False
    #: observations carry a number of trials
    needs_trials: ClassVar[bool] = False
    #: zero inflation (``zi=``) applies
    allows_zi: ClassVar[bool] = False
    #: the label of the second (zero-part) linear predictor where users see it: the keyword of
    #: ``GLMM`` (``zi=`` / ``hu=``), prior keys (``zi_Intercept``), summary rows, ``idata`` names
    zero_label: ClassVar[str] = "zi"
    #: the zero part's formula when the user gives none (``"~1"`` for a hurdle; None: no zero part)
    zero_default: ClassVar[str | None] = None
    #: what the zero part is, as summaries print it
    zero_doc: ClassVar[str] = "zero inflation (logit of P(structural zero))"
    #: the link whose log-density has the fast form :meth:`loglik_canonical` (or the identity for
    #: gaussian): PIRLS's weights are then ``V(mu)`` and its score ``y - n mu``; None if none
    canonical_link: ClassVar[str | None] = None
    #: auxiliary parameters, in the order both paths carry them
    aux_params: ClassVar[tuple] = ()
    #: a constant response sends the intercept to +-inf (the scale families' sends the scale to 0)
    constant_response_unbounded: ClassVar[bool] = False
    #: lme4 (lmer/glmer) fits the family and stops on too few observations per level; the
    #: others are checked as glmmTMB does, with warnings (:mod:`bayes_glmm.postfit.diagnostics`)
    lme4_checks: ClassVar[bool] = False
    #: the conditional variance, as a summary prints it
    variance_formula: ClassVar[str] = ""
    #: the response and the conditional variance as the docs table shows them
    response_doc: ClassVar[str] = ""
    variance_doc: ClassVar[str] = ""
    #: a note per link for the docs table (``{"log": "Bayesian path only"}``)
    link_notes: ClassVar[dict] = {}
    #: the row functions of the ML path (:meth:`loglik_eta_score_weight`, :meth:`aux_eta_derivs`)
    #: broadcast over a leading axis of points: eta (P, n) with each auxiliary value a (P, 1)
    #: array, the derivatives in the parameters (P, n, A); the central-difference Hessian's
    #: points are then evaluated as one batch (:mod:`bayes_glmm.ml.batch_scalar`)
    aux_rows_broadcast: ClassVar[bool] = False
    #: the links the maximum-likelihood path fits (None: all of :attr:`links`); the others are
    #: refused by ``fit_ml`` with a pointer to the Bayesian path
    ml_links: ClassVar[tuple | None] = None
    #: statsmodels family class for ``fit_gee`` (None: a Gaussian working model, quasi-likelihood)
    statsmodels_family: ClassVar[str | None] = None
    #: registry names of the families this one reduces to at a boundary of its auxiliary
    #: parameter (poisson is NB2 at 1/theta = 0): nested models for a likelihood-ratio test
    nested_families: ClassVar[tuple] = ()
    #: the response is a set of ordered categories: the model spec codes it 0 .. K-1 and takes
    #: the family fitted to its categories from :meth:`for_response` (ordinal)
    categorical_response: ClassVar[bool] = False
    #: the auxiliary parameters take the intercept's place (an ordinal model's thresholds): the
    #: model spec drops the intercept column of X
    drops_intercept: ClassVar[bool] = False
    #: title of the auxiliary parameters' table in a summary (clmm's "Threshold coefficients:");
    #: None: one "Dispersion parameter" line each, as glmmTMB
    aux_table_title: ClassVar[str | None] = None
    #: the name of the vector variable an ordered chain of auxiliary parameters forms in the
    #: PyMC graph (``"thresholds"``; its value variable ``<name>_ordered__``)
    aux_vector_name: ClassVar[str] = "ordered_aux"

    __slots__ = ("link",)

    def __init__(self, link: Link | str | None = None):
        if link is None:
            link = self.links[0]
        if isinstance(link, str):
            link = Link(link)
        if link.name not in self.links:
            raise ValueError(f"link {link.name!r} is not available for family {self.name!r}; "
                             f"choose one of {list(self.links)}")
        object.__setattr__(self, "link", link)

    def __setattr__(self, key, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other):
        return isinstance(other, Family) and (self.name, self.link) == (other.name, other.link)

    def __hash__(self):
        return hash((self.name, self.link))

    def __repr__(self):
        return f"{type(self).__name__}(link={self.link.name!r})"

    def __reduce__(self):
        return (type(self), (self.link,))

    # --- derived properties -----------------------------------------------------------
    @property
    def display_name(self) -> str:
        """The family's name as R prints it in a summary."""
        return self.r_name or self.name

    @property
    def aux_names(self) -> tuple:
        """Names of the auxiliary parameters."""
        return tuple(a.name for a in self.aux_params)

    @property
    def has_sigma(self) -> bool:
        """True when the family has a residual SD ``sigma`` (gaussian)."""
        return "sigma" in self.aux_names

    @property
    def has_dispersion(self) -> bool:
        """True for a family whose auxiliary parameter is a dispersion other than a residual SD
        (NB, Gamma, Beta)."""
        return bool(self.aux_params) and self.aux_params[0].name != "sigma"

    @property
    def dispersion_name(self) -> str | None:
        """Name of the first auxiliary parameter (``"sigma"``, ``"theta"``, ``"phi"``,
        ``"shape"``) or None."""
        return self.aux_params[0].name if self.aux_params else None

    @property
    def allows_disp(self) -> bool:
        """True when ``disp="~ x"`` (a log-linear model of the first auxiliary parameter)
        applies: that :class:`AuxParam` declares ``allows_formula``."""
        return bool(self.aux_params) and bool(self.aux_params[0].allows_formula)

    @property
    def ml_fits(self) -> bool:
        """True when the maximum-likelihood path fits this family with this link (:attr:`ml_links`)."""
        return self.ml_links is None or self.link.name in self.ml_links

    @property
    def is_linear(self) -> bool:
        """True for a linear mixed model (gaussian, identity link): closed-form profiled ML/REML,
        t and F reference distributions."""
        return False

    def nests(self, other: "Family") -> bool:
        """True when ``other`` is this family at a boundary value of its auxiliary parameter
        (same link): a likelihood-ratio test between them is a boundary test."""
        return other.link == self.link and other.name in self.nested_families

    @property
    def is_canonical(self) -> bool:
        """True when the link is the family's :attr:`canonical_link`."""
        return self.canonical_link is not None and self.link.name == self.canonical_link

    @property
    def has_fast_canonical(self) -> bool:
        """True when :meth:`loglik_canonical` applies (canonical link, no auxiliary parameter)."""
        return self.is_canonical and not self.aux_params

    @property
    def latent_variance(self) -> float | None:
        """Variance of the latent residual on the link scale (for ICCs), or None.

        logit: pi^2/3 (standard logistic); probit: 1; cloglog: pi^2/6 -- for the binary
        families only (a Beta response has no latent binary threshold model).
        """
        return self.link.latent_variance if self.is_binary else None

    def latent_residual_variance(self, *, mu=None, sigma=None, disp=None):
        """Distribution-specific residual variance on the link scale, for latent-scale ICCs
        (Nakagawa, Johnson & Schielzeth 2017): the link's latent variance for the binary
        families; families without one raise ValueError."""
        if self.is_binary:
            return self.link.latent_variance
        raise ValueError(f"a latent-scale ICC is not defined for the {self.name} family; report the "
                         f"random-effect variances on the link scale instead")

    # --- auxiliary parameters by name ---------------------------------------------------
    def aux_values(self, kw: Mapping[str, Any]) -> dict:
        """``{aux name: value}`` from keyword arguments: the aux names themselves, ``sigma=``
        and ``disp=`` (the first auxiliary parameter).  None values and legacy keywords a
        family does not use are dropped (callers pass ``disp=None`` to every family); an
        unknown name raises TypeError."""
        names = self.aux_names
        out = {}
        for k, v in kw.items():
            if v is None:
                continue
            if k in names:
                out[k] = v
            elif k not in _LEGACY:
                raise TypeError(f"family {self.name!r} has no auxiliary parameter {k!r}; "
                                f"its parameters are {list(names)}")
        if "disp" in kw and kw["disp"] is not None and names and names[0] not in out:
            out[names[0]] = kw["disp"]
        return out

    # --- moments ------------------------------------------------------------------------
    def mean(self, eta, ops: Any = NUMPY_OPS):
        """Conditional mean per trial (probability for binomial) from eta."""
        return self.link.inverse(eta, ops)

    def variance(self, mu, ops: Any = NUMPY_OPS, **aux):
        """Variance function V(mu) (per trial for binomial; times sigma^2 for gaussian); for
        the dispersion families the full conditional variance at the given dispersion."""
        return self._variance(mu, ops, **self.aux_values(aux))

    def _variance(self, mu, ops, **aux):
        raise NotImplementedError

    def response_variance(self, mu, n_trials=1.0, **aux):
        """Var(y | b) of a row's response (NumPy): ``n V(mu)`` (successes out of ``n`` trials),
        times ``sigma^2`` for a family with a residual scale.  A family whose variance does not
        scale with the trials (the beta-binomial's overdispersion grows with n) overrides it."""
        v = np.asarray(self.variance(mu, **aux), dtype=float)
        if self.has_sigma:  # a family's variance function leaves its residual scale sigma^2 out
            v = v * np.asarray(self.aux_values(aux)["sigma"], dtype=float) ** 2  # per row with disp=
        return n_trials * v

    def variance_mu_deriv(self, mu):
        """dV/dmu (NumPy): with a canonical link the IRLS weight is ``n V(mu)`` and its eta
        derivative ``n V(mu) dV/dmu`` (AGQ's analytic gradient)."""
        raise NotImplementedError(f"family {self.name!r} has no variance derivative")

    def moment_dispersion(self, r2: float, mu, w) -> float | None:
        """The dispersion at which the family's variance accounts for the squared residuals:
        solves ``sum(w * Var(mu; disp)) = r2`` (the method of moments), with ``r2`` the
        (weighted, df-corrected) sum of squared residuals about the means ``mu``.

        sigma^2 for gaussian, theta (NB2), phi (NB1, Beta), shape (Gamma); 1e12 where the
        residuals show no more spread than the family's floor (no overdispersion); None for
        the families without one.  A crude start (``centered="auto"``), not an estimate.
        """
        return None

    def for_response(self, raw, label: str):
        """``(y, family)`` for a :attr:`categorical_response` family: the response column
        ``raw`` (a pandas Series) coded as floats and this family fitted to its categories."""
        raise NotImplementedError(f"family {self.name!r} does not take a categorical response")

    def response_mean(self, eta, **aux):
        """E[y | eta] as ``predict(kind="mean")`` reports it (NumPy), given the auxiliary
        parameters by name: :meth:`mean` unless a family says otherwise (ordinal)."""
        return self.mean(np.asarray(eta, dtype=float))

    def category_probs(self, eta, **aux):
        """P(y = category | eta) per row and category, (n, K) (NumPy), for a
        :attr:`categorical_response` family; ValueError for the others."""
        raise ValueError(f"category probabilities (kind='probs') are for ordered categorical responses "
                         f"(family 'ordinal'), not the {self.name} family; use kind='mean'")

    def clip_mean(self, mu, eps):
        """Means kept inside the support for IRLS weights (positive by default)."""
        return np.maximum(mu, eps)

    def mustart(self, y, n_trials=1.0, weights=1.0):
        """Starting means per trial for a GLM fit (R's ``family$initialize``): inside the
        support so that ``link(mustart)`` is finite."""
        return np.asarray(y, dtype=float)

    def fixed_start(self, y, X, offset, weights):
        """``(beta, {auxiliary name: value})``: the maximum-likelihood fit of the model without
        random effects, a start for the mixed model's (lme4 starts ``glmer`` from the ``glm``
        fit), or None where the family has none (the maximum-likelihood path then starts from
        the least-squares fit of the linked :meth:`mustart` and the auxiliary parameters'
        moment starts).  NumPy; ``weights`` are prior weights."""
        return None

    def conditional_start(self, beta, aux: dict, re_var: float):
        """``(beta, aux)`` of :meth:`fixed_start` moved to the scale of a mixed model whose random
        intercepts have variance ``re_var`` (a latent-variable model's fixed-effects fit is
        attenuated towards 0 by the random effects it leaves out); unchanged by default."""
        return beta, aux

    def random(self, eta, rng, *, trials=None, zi_eta=None, **aux):
        """Draws of y given eta (NumPy): the distribution whose density is :meth:`loglik`.

        Parameters
        ----------
        eta : ndarray
            Linear predictor (offset included), any shape.
        rng : numpy.random.Generator
        trials : array, optional
            Binomial trials (broadcast against eta).
        zi_eta : array, optional
            Zero-inflation linear predictor: a structural zero with probability ``expit(zi_eta)``.
        **aux
            The auxiliary parameters by name (or ``sigma=`` / ``disp=``), broadcast against eta.
        """
        eta = np.asarray(eta, dtype=float)
        y = self._random(self.mean(eta), rng, trials=trials, **self.aux_values(aux))
        if zi_eta is not None:
            structural = rng.random(np.shape(y)) < special.expit(np.asarray(zi_eta, dtype=float))
            y = np.where(structural, 0, y)
        return y

    def _random(self, mu, rng, *, trials=None, **aux):
        raise NotImplementedError

    # --- the zero part (``zi=``, or a hurdle's ``hu=``) --------------------------------------
    def zero_part_loglik(self, ll, y, eta_zero, ops: Any = NUMPY_OPS):
        """The log-density with the zero part from :meth:`loglik`'s ``ll`` and the zero part's
        linear predictor (any ``ops``): zero inflation (:func:`~bayes_glmm.families.zi_loglik`)
        unless a family says otherwise (a hurdle)."""
        return zi_loglik(ll, y, eta_zero, ops)

    def zero_part_eta_derivs(self, ll, d1, w_obs, w_fisher, y, eta_zero):
        """Eta derivatives of :meth:`zero_part_loglik` from :meth:`eta_derivs`' (NumPy)."""
        return zi_eta_derivs(ll, d1, w_obs, w_fisher, y, eta_zero)

    def zero_part_start(self, p_zero: float, m: float, aux: dict) -> float:
        """The ML start of the zero part's probability (intercept) from the share of zeros
        ``p_zero`` and the mean ``m`` of y: the excess of zeros over the count model's own
        share at the mean count (zero inflation)."""
        e_zero = float(np.exp(self.loglik(0.0, self.link.link(max(m, 1e-12)), **aux)))
        return float(np.clip((p_zero - e_zero) / max(1.0 - e_zero, 1e-12), 0.02, 0.9))

    def zero_part_moments(self, mu, var, pi, **aux):
        """(E y, Var y) with the zero part's probability ``pi`` from the conditional mean ``mu``
        and variance ``var`` (None: the mean only): zero inflation's ``(1 - pi) mu``."""
        m = (1.0 - pi) * mu
        if var is None:
            return m, None
        return m, (1.0 - pi) * (var + mu * mu) - m * m

    # --- log-density ----------------------------------------------------------------------
    def loglik(self, y, eta, *, trials=None, ops: Any = NUMPY_OPS, **aux):
        """Pointwise conditional log-density log f(y | eta), every constant included.

        Parameters
        ----------
        y : array
            Response (successes for binomial).
        eta : array
            Linear predictor (offset included).
        trials : array, optional
            Binomial number of trials.
        ops : namespace
            The math namespace (NumPy by default; dual numbers, C, PyTensor).
        **aux
            The auxiliary parameters by name (``sigma=``, ``theta=``, ...) or ``disp=``.
        """
        return self._loglik(y, eta, ops, trials=trials, **self.aux_values(aux))

    def _loglik(self, y, eta, ops, *, trials=None, **aux):
        raise NotImplementedError

    def loglik_constant(self, y, trials=None, disp=None, **aux):
        """The eta-free part of :meth:`loglik` per row (NumPy), computed once per fit:
        ``log C(n, y)`` for binomial, ``-log y!`` for poisson, 0 for the others.  For a
        dispersion family it depends on the dispersion and is what :meth:`loglik_eta` leaves
        out; without it (``disp=None``) it is 0 (no split)."""
        return self._loglik_constant(np.asarray(y, dtype=float), trials, **self.aux_values(dict(aux, disp=disp)))

    def _loglik_constant(self, y, trials, **aux):
        return np.zeros_like(y)

    def loglik_eta(self, y, eta, disp=None, **aux):
        """:meth:`loglik` minus :meth:`loglik_constant` (NumPy): the part that moves with eta,
        which is all PIRLS re-evaluates at fixed dispersion (``tests/test_families.py`` holds
        the sum equal to :meth:`loglik`)."""
        return self._loglik_eta(y, eta, **self.aux_values(dict(aux, disp=disp)))

    def _loglik_eta(self, y, eta, **aux):
        return self._loglik(y, eta, NUMPY_OPS, **aux)

    def loglik_canonical(self, y, eta, trials=1.0):
        """Fast NumPy form of :meth:`loglik` minus :meth:`loglik_constant`, with mu, for the
        families with :attr:`has_fast_canonical` (the ML hot loop: one ``exp`` serves both
        the log-density and the mean).

        Returns
        -------
        (ll, mu) : arrays; ``mu`` is the per-trial mean.
        """
        raise ValueError(f"loglik_canonical applies to canonical bernoulli/binomial/poisson links, "
                         f"not {self.name}/{self.link.name}")

    def stable_centre(self, y, has_zi: bool = False):
        """Per-row centre for a cancellation-free log-density (:meth:`loglik_centred`), or None
        where the plain form is accurate enough (every family but Poisson with huge counts)."""
        return None

    def loglik_centred(self, y, eta, c):
        """``(loglik_eta(y, eta) - loglik_eta(y, c), mu)`` without cancellation, for the
        centre ``c`` of :meth:`stable_centre`."""
        raise NotImplementedError

    def loglik_centred_const(self, y, c):
        """The constant that :meth:`loglik_centred` leaves out."""
        raise NotImplementedError

    # --- derivatives in eta --------------------------------------------------------------
    def eta_derivs(self, y, eta, *, trials=None, **aux):
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
        return self._eta_derivs(y, eta, trials=trials, **self.aux_values(aux))

    def eta_score_weight(self, y, eta, *, trials=None, **aux):
        """``(d1, w_obs)`` of :meth:`eta_derivs` without the expected information, which the
        Newton steps of PIRLS do not use (a family whose ``w_fisher`` costs extra, such as the
        ordinal family's sum over categories, overrides :meth:`_eta_score_weight`)."""
        y = np.asarray(y, dtype=float)
        eta = np.asarray(eta, dtype=float)
        return self._eta_score_weight(y, eta, trials=trials, **self.aux_values(aux))

    def _eta_score_weight(self, y, eta, *, trials=None, **aux):
        return self._eta_derivs(y, eta, trials=trials, **aux)[:2]

    def loglik_eta_score_weight(self, y, eta, **aux):
        """``(loglik_eta, d1, w_obs)`` at once: :meth:`loglik_eta` and :meth:`eta_score_weight`
        of a family without trials, each the same values as the separate calls.  PIRLS of one
        small scalar term (:mod:`bayes_glmm.ml.pirls_scalar`) needs both at every point it
        visits; a family whose derivatives already compute the log-density (the ordinal
        family's) overrides :meth:`_loglik_eta_score_weight` and pays for them once."""
        y = np.asarray(y, dtype=float)
        eta = np.asarray(eta, dtype=float)
        return self._loglik_eta_score_weight(y, eta, **self.aux_values(aux))

    def _loglik_eta_score_weight(self, y, eta, **aux):
        return (self._loglik_eta(y, eta, **aux),) + tuple(self._eta_score_weight(y, eta, **aux))

    def _eta_derivs(self, y, eta, *, trials=None, **aux):
        # generic chain rule through mu = h(eta): l_eta = l_mu h', l_eta,eta = l_mu,mu h'^2 + l_mu h''
        lm, lmm, info = self._mu_derivs(y, eta, trials=trials, **aux)
        me, me2 = self.link.mu_eta(eta), self.link.mu_eta2(eta)
        return lm * me, -(lmm * me * me + lm * me2), info * me * me

    def _mu_derivs(self, y, eta, *, trials=None, **aux):
        """(d l / d mu, d^2 l / d mu^2, expected information in mu) at mu = h(eta)."""
        raise NotImplementedError

    def aux_eta_derivs(self, y, eta, *, trials=None, **aux):
        """Exact per-row derivatives in the auxiliary parameters for the ML Laplace gradient, or None.

        Returns None (the default: the ML path then takes central differences of
        :meth:`eta_derivs` in each parameter) or ``(dW/deta, dl/dv, dr/dv, dW/dv)``: with
        ``l`` the row log-density, ``r = dl/deta`` and ``W = -d^2 l / d eta^2``, the eta
        derivative of W (n,) and the derivatives of l, r, W in each auxiliary parameter on
        its natural scale, in the order of :attr:`aux_params` (n, A); unweighted, without
        zero inflation or a dispersion formula.  A family overrides it where the finite
        differences are a fixed per-fit cost worth saving (many parameters, small data).
        """
        return None

    def aux_loglik_derivs(self, y, eta, **aux):
        """Exact ``d log f / d v`` in each auxiliary parameter ``v`` (natural scale, order of
        :attr:`aux_params`) at any shape of ``eta`` broadcast against ``y``, or None.

        Returns None (the default: the AGQ gradient then takes central differences of the
        log-density in each coordinate) or a list of arrays of the broadcast shape, unweighted,
        without zero inflation or a dispersion formula.  The AGQ gradient evaluates it at every
        node (rows x nodes), where the central differences cost two log-densities per parameter.
        """
        return None

    # --- validation ----------------------------------------------------------------------
    def check_response(self, y: np.ndarray, trials: np.ndarray | None, name: str) -> None:
        """Raise ValueError naming the response column when y does not suit the family."""
        y = np.asarray(y, dtype=float)
        if not np.all(np.isfinite(y)):
            raise ValueError(f"response {name!r} has non-finite values; remove or impute them")
        self._check_response(y, trials, name)

    def _check_response(self, y, trials, name):
        pass

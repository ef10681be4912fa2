"""One record per prior kind: the single definition every path reads.

A :class:`PriorKind` holds everything the package knows about one distribution that
``bg.Prior(name, ...)`` accepts: its support, its parameters (PyMC's names and defaults,
and which must be positive -- what :class:`~bayes_glmm.priors.Prior` validates), the
alternative spellings and how they map to the canonical parameters, the log-density
written once against an ``ops`` math namespace, whether it is a location-scale family, and
the frozen SciPy distribution the teaching tools plot.  From the one log-density the
generated C (:func:`bayes_glmm.bayes.codegen.prior_program`) and the NumPy sampler's
dual numbers (:func:`bayes_glmm.bayes.density.prior_logp_of`) are evaluated; the PyMC graph
uses PyMC's own distribution of the same name (a kind PyMC lacks, ``pymc=False``: the
log-density on PyTensor), and ``tests/test_prior_kinds.py`` holds the
four (ops on NumPy, SciPy, PyMC, dual numbers) equal for every registered kind.

Adding a kind is one record and one line in :data:`KINDS` (see ``docs/priors.md``,
"Adding a prior kind").  NumPy only at import time: ``scipy.stats`` (1.5 s to import) is
imported inside :meth:`PriorKind.scipy`, and this module never imports PyMC.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

__all__ = ["PriorKind", "KindParam", "Spelling", "KINDS", "get_kind", "SUPPORTS", "N_CANONICAL"]

#: what a prior can be put on: a real coefficient, a positive scale, a correlation
SUPPORTS = ("real", "positive", "corr")
#: canonical parameters a log-density takes (``a0, a1, a2``: the generated C's three
#: per-element parameter arrays); unused ones are zeros
N_CANONICAL = 3

_LOG_2PI = math.log(2.0 * math.pi)
_LOG_PI = math.log(math.pi)
_LOG2 = math.log(2.0)


@dataclass(frozen=True)
class KindParam:
    """One parameter of a prior kind, by PyMC's name.

    ``default`` is PyMC's default (``None``: none, the parameter belongs to a spelling that
    must be given in full); ``positive``: it must be > 0; ``role`` names what it is, for the
    error that says how to fix a bad value and for the docs table.
    """

    name: str
    default: float | None = None
    positive: bool = False
    role: str = ""


@dataclass(frozen=True)
class Spelling:
    """An alternative parametrization: ``given`` parameters from which the canonical ones
    follow by ``formulas``, ``(canonical name, formula as text, f(args) -> array)``."""

    given: tuple[str, ...]
    formulas: tuple[tuple[str, str, Callable[[Mapping[str, np.ndarray]], np.ndarray]], ...]


@dataclass(frozen=True)
class PriorKind:
    """A prior distribution kind.

    Attributes
    ----------
    name : str
        PyMC's distribution name (the graph builds ``pm.<name>``).
    support : {"real", "positive", "corr"}
        What it can be a prior for: coefficients, positive scales (``sd_``, ``var_``,
        ``sigma``, the dispersion), correlations (``corr_``).
    params : tuple of KindParam
        The accepted parameters with PyMC's defaults and constraints.
    canonical : tuple of str
        The parameters :attr:`logdens` takes, in order (at most :data:`N_CANONICAL`).
    logdens : callable
        ``f(x, a0, a1, a2, ops)``: the log-density at ``x`` with the canonical parameters,
        written once against ``ops`` (NumPy arrays, dual numbers or C); for ``"corr"``
        kinds the density of one correlation parameter in (-1, 1).
    required : tuple of tuple of str
        The complete parameter sets one of which must be given (empty: everything has a
        default); more than one set means alternative spellings, and only one may be given.
    spellings : tuple of Spelling
        How an alternative spelling maps to the canonical parameters.
    loc_scale : (str, str) or None
        The location and scale parameters of a location-scale family (a coefficient's
        prior carried to a rescaled coordinate multiplies both), None otherwise; a scale
        family without a location has ``(None, scale)``.
    scipy_dist : callable or None
        ``f(stats, a0, a1, a2)`` -> the frozen ``scipy.stats`` distribution; None for an
        improper prior (``Flat``, ``HalfFlat``).
    pymc : bool
        Whether PyMC has a distribution of this name (the graph builds ``pm.<name>``); a kind
        it lacks (``LogitBeta``) is a ``pm.CustomDist`` of :attr:`logdens` on PyTensor there.
    """

    name: str
    support: str
    params: tuple[KindParam, ...]
    canonical: tuple[str, ...]
    logdens: Callable
    required: tuple[tuple[str, ...], ...] = ()
    spellings: tuple[Spelling, ...] = ()
    loc_scale: tuple[str, str] | None = None
    scipy_dist: Callable | None = None
    pymc: bool = True

    def __post_init__(self):
        if self.support not in SUPPORTS:
            raise ValueError(f"prior kind {self.name}: support {self.support!r} is not one of {SUPPORTS}")
        if len(self.canonical) > N_CANONICAL:
            raise ValueError(f"prior kind {self.name}: at most {N_CANONICAL} canonical parameters")
        names = self.param_names
        for st in self.required:
            if not set(st) <= set(names):
                raise ValueError(f"prior kind {self.name}: required set {st} names unknown parameters")

    # ------------------------------------------------------------------ parameters
    @property
    def param_names(self) -> tuple[str, ...]:
        """The accepted parameter names."""
        return tuple(p.name for p in self.params)

    def param(self, name: str) -> KindParam:
        """The :class:`KindParam` called ``name``."""
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def proper(self) -> bool:
        """Whether the prior is a probability distribution (``Flat`` and ``HalfFlat`` are not)."""
        return self.scipy_dist is not None

    def check(self, args: Mapping[str, Any]) -> None:
        """Validate PyMC-style arguments: known names, finite numbers, positive where the
        kind needs it, one complete parameter set.  Raises ValueError naming the parameter
        and the fix (what :class:`~bayes_glmm.priors.Prior` runs at construction)."""
        bad = [k for k in args if k not in self.param_names]
        if bad:
            raise ValueError(f"Prior({self.name!r}) got unknown parameter(s) {bad}; "
                             f"it accepts {list(self.param_names)}")
        for k, v in args.items():
            try:
                a = np.asarray(v, dtype=float)
            except (TypeError, ValueError):
                raise ValueError(f"Prior({self.name!r}) parameter {k}={v!r} must be a number "
                                 f"(or a list of numbers)") from None
            if a.size == 0:
                raise ValueError(f"Prior({self.name!r}) parameter {k}={v!r} is empty; give a number")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"Prior({self.name!r}) parameter {k}={v!r} must be finite")
            p = self.param(k)
            if p.positive and not np.all(a > 0):
                raise ValueError(f"Prior({self.name!r}) parameter {k}={v!r} must be positive "
                                 f"({k} is {p.role or 'a scale, rate or shape'}); e.g. {self._fixed(args, k, a)}")
        if self.required:
            complete = [st for st in self.required if all(k in args for k in st)]
            want = " or ".join("(" + ", ".join(st) + ")" for st in self.required)
            if not complete:
                raise ValueError(f"Prior({self.name!r}) needs the parameter(s) {want}; got {sorted(args) or 'none'}")
            touched = [st for st in self.required if any(k in args for k in st)]
            if len(touched) > 1:
                raise ValueError(f"Prior({self.name!r}) got two parametrizations {sorted(args)}; "
                                 f"give only one of {want}")

    def _fixed(self, args: Mapping[str, Any], k: str, a: np.ndarray) -> str:
        """The prior as given with parameter ``k`` made positive (its absolute value, 1 where
        it is 0): the fix a positivity error suggests."""
        good = np.where(a != 0, np.abs(a), 1.0)
        shown = repr(float(good)) if good.ndim == 0 else repr([float(z) for z in good.ravel()])
        parts = [f"{n}={shown if n == k else repr(v)}" for n, v in args.items()]
        return f"Prior({self.name!r}, {', '.join(parts)})"

    def derived(self, args: Mapping[str, Any]) -> dict:
        """The canonical parameters computed from an alternative spelling, as
        ``name -> (formula, values)``; empty for the canonical spelling."""
        a = {k: np.asarray(v, dtype=float) for k, v in args.items()}
        for sp in self.spellings:
            if all(k in a for k in sp.given):
                with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
                    return {n: (text, np.asarray(f(a), dtype=float)) for n, text, f in sp.formulas}
        return {}

    def check_derived(self, args: Mapping[str, Any]) -> None:
        """Derived canonical parameters finite and positive: ``Gamma(mu=1e200, sigma=1e-200)``
        has alpha = 1e800, beyond double precision, and would otherwise fail deep in PyMC
        with a bare OverflowError."""
        for k, (formula, v) in self.derived(args).items():
            if not (np.all(np.isfinite(v)) and np.all(v > 0)):
                given = ", ".join(f"{n}={args[n]!r}" for n in args)
                bad = v.ravel()[~(np.isfinite(v.ravel()) & (v.ravel() > 0))][0]
                direct = " and ".join(self.canonical)
                raise ValueError(
                    f"{self.name}({given}) gives {k} = {formula} = {bad:g}, outside double precision (it must be "
                    f"a finite number > 0); give less extreme values, or the {self.name} "
                    f"{'parameter' if len(self.canonical) == 1 else 'parameters'} {direct} directly")

    def canonical_args(self, args: Mapping[str, Any]) -> tuple:
        """``(a0, a1, a2)``: the canonical parameters (defaults filled in, an alternative
        spelling converted), zeros in the unused slots."""
        der = self.derived(args)
        out = []
        for n in self.canonical:
            if n in der:
                out.append(der[n][1])
            elif n in args:
                out.append(np.asarray(args[n], dtype=float))
            else:
                d = self.param(n).default
                if d is None:
                    raise ValueError(f"Prior({self.name!r}) needs the parameter {n!r}")
                out.append(np.asarray(d, dtype=float))
        return tuple(out) + (np.asarray(0.0),) * (N_CANONICAL - len(out))

    def location_scale(self) -> tuple:
        """``((location, default), (scale, default))`` of a location-scale kind, else ``()``."""
        if self.loc_scale is None:
            return ()
        return tuple((n, self.param(n).default) for n in self.loc_scale if n is not None)

    # ------------------------------------------------------------------ densities
    def logp(self, x, args: Mapping[str, Any], ops=None):
        """The log-density at ``x`` under PyMC-style ``args`` (NumPy by default)."""
        if ops is None:
            from ..ops.numpy_ops import NUMPY_OPS as ops
        return self.logdens(x, *self.canonical_args(args), ops)

    def scipy(self, args: Mapping[str, Any]):
        """The frozen ``scipy.stats`` distribution (array parameters broadcast), e.g. for
        :func:`bayes_glmm.teaching.prior_pdf`; a ``"corr"`` kind's is that of one
        correlation parameter on (-1, 1).

        Raises
        ------
        ValueError
            For an improper prior (``Flat``, ``HalfFlat``): it has no distribution.
        """
        if self.scipy_dist is None:
            raise ValueError(f"{self.name} is an improper prior (a constant density); it has no SciPy distribution")
        from scipy import stats

        return self.scipy_dist(stats, *self.canonical_args(args))


# ----------------------------------------------------------------------------- log-densities
# PyMC's parametrizations, canonical parameters (a0, a1, a2); unused slots are ignored.
def _lp_normal(x, mu, s, _, ops):
    z = (x - mu) / s
    return -0.5 * z * z - ops.log(s) - 0.5 * _LOG_2PI


def _lp_studentt(x, nu, mu, s, ops):
    z = (x - mu) / s
    return (ops.gammaln((nu + 1.0) / 2.0) - ops.gammaln(nu / 2.0) - 0.5 * ops.log(nu * math.pi) - ops.log(s)
            - (nu + 1.0) / 2.0 * ops.log1p(z * z / nu))


def _lp_cauchy(x, m, b, _, ops):
    z = (x - m) / b
    return -_LOG_PI - ops.log(b) - ops.log1p(z * z)


def _lp_laplace(x, mu, b, _, ops):
    return -ops.log(2.0 * b) - abs(x - mu) / b


def _lp_logistic(x, mu, s, _, ops):
    z = (x - mu) / s
    return -z - ops.log(s) - 2.0 * ops.softplus(-z)


def _lp_logitbeta(x, al, be, s, ops):
    # logit(p) / s for p ~ Beta(al, be): p = expit(z), z = x / s, dp/dx = expit(z) expit(-z) / s, so
    # p^(al-1) (1-p)^(be-1) / B(al, be) * p (1-p) / s; log expit(z) = -softplus(-z)
    z = x / s
    return (-al * ops.softplus(-z) - be * ops.softplus(z) - ops.log(s)
            - (ops.gammaln(al) + ops.gammaln(be) - ops.gammaln(al + be)))


def _lp_flat(x, a0, a1, a2, ops):
    return x * 0.0


def _lp_halfnormal(x, s, _1, _2, ops):
    return 0.5 * math.log(2.0 / math.pi) - ops.log(s) - 0.5 * (x / s) * (x / s)


def _lp_halfstudentt(x, nu, s, _, ops):
    return (_LOG2 + ops.gammaln((nu + 1.0) / 2.0) - ops.gammaln(nu / 2.0) - 0.5 * ops.log(nu * math.pi)
            - ops.log(s) - (nu + 1.0) / 2.0 * ops.log1p(x * x / (nu * s * s)))


def _lp_halfcauchy(x, b, _1, _2, ops):
    return _LOG2 - _LOG_PI - ops.log(b) - ops.log1p((x / b) * (x / b))


def _lp_exponential(x, lam, _1, _2, ops):
    return ops.log(lam) - lam * x


def _lp_gamma(x, al, be, _, ops):
    return al * ops.log(be) - ops.gammaln(al) + (al - 1.0) * ops.log(x) - be * x


def _lp_invgamma(x, al, be, _, ops):
    return al * ops.log(be) - ops.gammaln(al) - (al + 1.0) * ops.log(x) - be / x


def _lp_lognormal(x, mu, s, _, ops):
    z = (ops.log(x) - mu) / s
    return -ops.log(x) - ops.log(s) - 0.5 * _LOG_2PI - 0.5 * z * z


def _lp_weibull(x, al, be, _, ops):
    t = x / be
    return ops.log(al) - ops.log(be) + (al - 1.0) * ops.log(t) - ops.exp(al * ops.log(t))


def _lp_lkj_pair(r, eta, _1, _2, ops):
    # LKJ(eta) of a 2 x 2 correlation matrix, i.e. (r + 1) / 2 ~ Beta(eta, eta): the density
    # of one correlation parameter (an us term with q = 2; each parameter of cs, ar1, toep)
    return ((eta - 1.0) * ops.log1p(-r * r) - (eta - 1.0) * (2.0 * _LOG2) - _LOG2
            - (2.0 * ops.gammaln(eta) - ops.gammaln(2.0 * eta)))


# ----------------------------------------------------------------------------- SciPy
@functools.cache
def _halft():
    """|T| for T ~ Student-t(df): SciPy has no half-t (``rv_continuous`` is its public way to
    add one); built on first use so that importing this module does not import scipy.stats."""
    from scipy import stats

    class halft_gen(stats.rv_continuous):
        def _pdf(self, x, df):
            return 2.0 * stats.t.pdf(x, df)

        def _logpdf(self, x, df):
            return _LOG2 + stats.t.logpdf(x, df)

        def _cdf(self, x, df):
            return 2.0 * stats.t.cdf(x, df) - 1.0

        def _ppf(self, q, df):
            return stats.t.ppf(0.5 + 0.5 * q, df)

        def _rvs(self, df, size=None, random_state=None):
            return np.abs(stats.t.rvs(df, size=size, random_state=random_state))

    return halft_gen(a=0.0, name="halft")


@functools.cache
def _logitbeta():
    """logit(P) for P ~ Beta(a, b) (SciPy has none; built on first use, as :func:`_halft`)."""
    from scipy import special, stats

    class logitbeta_gen(stats.rv_continuous):
        def _logpdf(self, x, a, b):
            return _lp_logitbeta(x, a, b, 1.0, _numpy_ops())

        def _pdf(self, x, a, b):
            return np.exp(self._logpdf(x, a, b))

        def _cdf(self, x, a, b):
            return special.betainc(a, b, special.expit(x))

        def _ppf(self, q, a, b):
            return special.logit(special.betaincinv(a, b, q))

        def _rvs(self, a, b, size=None, random_state=None):
            return special.logit(stats.beta.rvs(a, b, size=size, random_state=random_state))

    return logitbeta_gen(name="logitbeta")


def _numpy_ops():
    from ..ops.numpy_ops import NUMPY_OPS
    return NUMPY_OPS


# ----------------------------------------------------------------------------- the records
def _p(name, default=None, positive=False, role=""):
    return KindParam(name, default, positive, role)


_LOC, _SCALE = "a location", "a scale"


def _gamma_from_mu_sigma(a):
    return (a["mu"] / a["sigma"]) ** 2  # squared after the division: no overflow where the ratio fits


_MU_SIGMA = ("mu", "sigma")

KINDS: dict[str, PriorKind] = {k.name: k for k in (
    # ------------------------------------------------------------------ real support
    PriorKind("Normal", "real", (_p("mu", 0.0, role=_LOC), _p("sigma", 1.0, True, _SCALE)), ("mu", "sigma"),
              _lp_normal, loc_scale=("mu", "sigma"),
              scipy_dist=lambda st, mu, s, _: st.norm(loc=mu, scale=s)),
    PriorKind("StudentT", "real", (_p("nu", None, True, "the degrees of freedom"), _p("mu", 0.0, role=_LOC),
                                   _p("sigma", 1.0, True, _SCALE)), ("nu", "mu", "sigma"),
              _lp_studentt, required=(("nu",),), loc_scale=("mu", "sigma"),
              scipy_dist=lambda st, nu, mu, s: st.t(df=nu, loc=mu, scale=s)),
    PriorKind("Cauchy", "real", (_p("alpha", None, role=_LOC), _p("beta", None, True, _SCALE)), ("alpha", "beta"),
              _lp_cauchy, required=(("alpha", "beta"),), loc_scale=("alpha", "beta"),
              scipy_dist=lambda st, m, b, _: st.cauchy(loc=m, scale=b)),
    PriorKind("Laplace", "real", (_p("mu", None, role=_LOC), _p("b", None, True, _SCALE)), ("mu", "b"),
              _lp_laplace, required=(("mu", "b"),), loc_scale=("mu", "b"),
              scipy_dist=lambda st, mu, b, _: st.laplace(loc=mu, scale=b)),
    PriorKind("Logistic", "real", (_p("mu", 0.0, role=_LOC), _p("s", 1.0, True, _SCALE)), ("mu", "s"),
              _lp_logistic, loc_scale=("mu", "s"),
              scipy_dist=lambda st, mu, s, _: st.logistic(loc=mu, scale=s)),
    PriorKind("LogitBeta", "real", (_p("alpha", None, True, "a shape (the probability's Beta)"),
                                    _p("beta", None, True, "a shape (the probability's Beta)"),
                                    _p("sigma", 1.0, True, _SCALE)), ("alpha", "beta", "sigma"),
              _lp_logitbeta, required=(("alpha", "beta"),), loc_scale=(None, "sigma"), pymc=False,
              scipy_dist=lambda st, al, be, s: _logitbeta()(al, be, scale=s)),
    PriorKind("Flat", "real", (), (), _lp_flat, loc_scale=()),
    # ------------------------------------------------------------------ positive support
    PriorKind("HalfNormal", "positive", (_p("sigma", 1.0, True, _SCALE),), ("sigma",), _lp_halfnormal,
              scipy_dist=lambda st, s, _1, _2: st.halfnorm(scale=s)),
    PriorKind("HalfStudentT", "positive", (_p("nu", None, True, "the degrees of freedom"),
                                           _p("sigma", 1.0, True, _SCALE)), ("nu", "sigma"),
              _lp_halfstudentt, required=(("nu",),),
              scipy_dist=lambda st, nu, s, _: _halft()(nu, scale=s)),
    PriorKind("HalfCauchy", "positive", (_p("beta", None, True, _SCALE),), ("beta",), _lp_halfcauchy,
              required=(("beta",),), scipy_dist=lambda st, b, _1, _2: st.halfcauchy(scale=b)),
    PriorKind("Exponential", "positive", (_p("lam", None, True, "a rate"), _p("scale", None, True, _SCALE)),
              ("lam",), _lp_exponential, required=(("lam",), ("scale",)),
              spellings=(Spelling(("scale",), (("lam", "1 / scale", lambda a: 1.0 / a["scale"]),)),),
              scipy_dist=lambda st, lam, _1, _2: st.expon(scale=1.0 / lam)),
    PriorKind("Gamma", "positive", (_p("alpha", None, True, "a shape"), _p("beta", None, True, "a rate"),
                                    _p("mu", None, True, "the mean"), _p("sigma", None, True, "the SD")),
              ("alpha", "beta"), _lp_gamma, required=(("alpha", "beta"), _MU_SIGMA),
              spellings=(Spelling(_MU_SIGMA, (("alpha", "mu^2 / sigma^2", _gamma_from_mu_sigma),
                                              ("beta", "mu / sigma^2",
                                               lambda a: (a["mu"] / a["sigma"]) / a["sigma"]))),),
              scipy_dist=lambda st, al, be, _: st.gamma(al, scale=1.0 / be)),
    PriorKind("InverseGamma", "positive", (_p("alpha", None, True, "a shape"), _p("beta", 1.0, True, _SCALE),
                                           _p("mu", None, True, "the mean"), _p("sigma", None, True, "the SD")),
              ("alpha", "beta"), _lp_invgamma, required=(("alpha",), _MU_SIGMA),
              spellings=(Spelling(_MU_SIGMA, (
                  ("alpha", "2 + mu^2 / sigma^2", lambda a: 2.0 + _gamma_from_mu_sigma(a)),
                  ("beta", "mu (mu^2 + sigma^2) / sigma^2", lambda a: a["mu"] * (_gamma_from_mu_sigma(a) + 1.0)))),),
              scipy_dist=lambda st, al, be, _: st.invgamma(al, scale=be)),
    PriorKind("LogNormal", "positive", (_p("mu", 0.0, role="the log-scale location"),
                                        _p("sigma", 1.0, True, "the log-scale SD")), ("mu", "sigma"),
              _lp_lognormal, scipy_dist=lambda st, mu, s, _: st.lognorm(s=s, scale=np.exp(mu))),
    PriorKind("Weibull", "positive", (_p("alpha", None, True, "a shape"), _p("beta", None, True, _SCALE)),
              ("alpha", "beta"), _lp_weibull, required=(("alpha", "beta"),),
              scipy_dist=lambda st, al, be, _: st.weibull_min(al, scale=be)),
    PriorKind("HalfFlat", "positive", (), (), _lp_flat),
    # ------------------------------------------------------------------ correlations
    PriorKind("LKJ", "corr", (_p("eta", 1.0, True, "a shape"),), ("eta",), _lp_lkj_pair,
              scipy_dist=lambda st, eta, _1, _2: st.beta(eta, eta, loc=-1.0, scale=2.0)),
)}


_SUPPORT_TEXT = {"real": "real (coefficients, `zi_*`)", "positive": "positive (`sd_*`, `var_*`, `sigma`, dispersion)",
                 "corr": "correlation (`corr_*`)"}


def markdown_table() -> str:
    """The table of prior kinds in ``docs/priors.md``, generated from :data:`KINDS`
    (``tests/test_prior_kinds.py`` holds the page to it)."""
    rows = ["| kind | support | parameters (PyMC's names; default; > 0) | give | location-scale |",
            "|---|---|---|---|---|"]
    for k in KINDS.values():
        ps = ", ".join(f"`{p.name}`" + (f" = {p.default:g}" if p.default is not None else "")
                       + (" (> 0)" if p.positive else "") for p in k.params) or "none"
        give = " or ".join("(" + ", ".join(st) + ")" for st in k.required) or "any subset"
        ls = "no" if k.loc_scale is None else "scale only" if k.loc_scale[:1] == (None,) else "yes"
        note = "" if k.proper else " (improper)"
        rows.append(f"| `{k.name}`{note} | {_SUPPORT_TEXT[k.support]} | {ps} | {give} | {ls} |")
    return "\n".join(rows)


def get_kind(name: str) -> PriorKind:
    """The registered :class:`PriorKind` called ``name`` (PyMC's distribution name).

    Raises
    ------
    ValueError
        For an unknown name, listing the registered kinds.
    """
    try:
        return KINDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown prior distribution {name!r}; choose one of {sorted(KINDS)}") from None

"""The model: a PyMC graph from a :class:`~bayes_glmm.spec.ModelSpec`.

This graph *is* the Bayesian model.  The fast samplers evaluate the same log-density on the
same unconstrained coordinates (:mod:`bayes_glmm.bayes.density` in NumPy,
:mod:`bayes_glmm.bayes.kernels` in numba, :mod:`bayes_glmm.bayes.jax_backend` generated from
this graph by PyTensor's JAX backend); ``tests/test_bayes_contract.py`` holds them equal to
this graph, value and gradient, at random points.

Fixed effects: the non-intercept columns of X are centered inside the graph; the free
variables are ``Intercept`` (the linear predictor at the predictor means, which is what
its prior describes) and the slopes; ``beta`` (dim ``coef``) is the Deterministic vector
of all coefficients on the original scale, intercept included.

Random term k (``ident`` = :attr:`RandomTerm.ident`) uses the shared parametrization
``b_k = u_k @ Lambda_k.T``, ``u_k ~ N(0, I)`` (non-centered, the default), with
``Lambda_k = diag(sd_k) L_k`` and ``L_k`` the Cholesky factor of the correlation matrix:

``sd_<ident>``    (``<ident>_coef``) standard deviations (a Deterministic ``sqrt(var_<ident>)``
                  when the prior is on the variances, key ``var_<ident>``)
``cpc_<ident>``   unconstrained canonical partial correlations of a correlated term
                  (:mod:`bayes_glmm.bayes.corr`; their LKJ density and Jacobians are the
                  Potential ``lkj_<ident>``); ``corr_<ident>`` (``<ident>_corr``) is the
                  Deterministic vector of the q(q-1)/2 correlations, lme4's order
``u_<ident>``     (``<ident>_level``, ``<ident>_coef``) standard-normal innovations
``b_<ident>``     (``<ident>_level``, ``<ident>_coef``) random effects (a free variable
                  when the term is centered)

Dispersion families: one positive variable named :attr:`Family.dispersion_name` (``theta``
for negbinomial, ``phi`` for nbinom1 and beta, ``shape`` for gamma; prior key the same).
Zero inflation (``zi=``): ``zi_Intercept`` and ``zi_slopes`` (dim ``zi_slope``) on the centred
X_zi, the Deterministic ``beta_zi`` (dim ``zi_coef``, coords ``spec.zi_names``), and
``eta_zi = X_zi @ beta_zi`` entering the density through :func:`~bayes_glmm.families.zi_loglik`.

The linear predictor gathers ``b_k[codes_k]`` row by row (``(Xr * b[codes]).sum(1)``);
Z is never formed.  The observed node ``y`` (dim ``obs``) is a :class:`pymc.CustomDist`
whose log-density is :meth:`Family.loglik` evaluated with :data:`PT_OPS` -- the same code
as the ML path -- multiplied by the prior weights.  With non-unit weights the pointwise
``log_likelihood`` group therefore holds *weighted* contributions (LOO then refers to the
weighted pseudo-likelihood).  Random draws (prior predictive checks) come from the matching
PyMC distribution with mean ``family.mean(eta, PT_OPS)`` (NegativeBinomial, Gamma, Beta and the
ZeroInflated* ones for the new families); weights do not affect them.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..families import zi_loglik
from ..priors import slope_blocks, zi_key, zi_slope_blocks
from ..spec import ModelSpec
from ..covariance import corr_pairs
from .corr import cpc_logp, cpc_random, cpc_rows, lkj_shape, log_cosh

__all__ = ["PT_OPS", "build_pymc_model", "prior_predictive", "pm_model_of"]

_SQRT1_2 = float(np.sqrt(0.5))


def _pt_log_ndtr(x):
    """log Phi(x), stable in both tails (erfcx in the lower tail, as PyMC's normal_lcdf)."""
    z = x * _SQRT1_2
    lower = pt.log(pt.erfcx(-z) / 2.0) - z * z
    upper = pt.log1p(-pt.erfc(z) / 2.0)
    return pt.switch(pt.lt(z, -1.0), lower, upper)


#: PyTensor implementation of the math namespace of :data:`bayes_glmm.families.NUMPY_OPS`.
PT_OPS = SimpleNamespace(
    exp=pt.exp,
    log=pt.log,
    log1p=pt.log1p,
    expm1=pt.expm1,
    sigmoid=pt.sigmoid,
    softplus=pt.softplus,
    log1mexp=pt.log1mexp,
    ndtr=lambda x: 0.5 * pt.erfc(-x * _SQRT1_2),
    log_ndtr=_pt_log_ndtr,
    gammaln=pt.gammaln,
    logaddexp=pt.logaddexp,
    eq=pt.eq,
    square=pt.square,
    clip=pt.clip,
)


# ----------------------------------------------------------------------------- build
def _rv(name, prior, **kw):
    """A PyMC random variable from a resolved :class:`~bayes_glmm.priors.Prior`."""
    args = {k: np.asarray(v, dtype=float) if isinstance(v, (list, tuple)) else v
            for k, v in prior.args.items()}
    return getattr(pm, prior.name)(name, **args, **kw)


def _cpc_logp(value, a, const):
    return cpc_logp(log_cosh(value, PT_OPS), a, const)


def _cpc_random(a, const, rng=None, size=None):
    return cpc_random(a, rng, size)


def _fixed_part(spec: ModelSpec, priors: dict):
    """Free fixed-effect variables, the Deterministic ``beta`` and X @ beta."""
    names = list(spec.fixed_names)
    X = np.asarray(spec.X, dtype=float)
    icol = names.index("(Intercept)") if "(Intercept)" in names else None
    slopes = [j for j in range(spec.p) if j != icol]
    xm = np.zeros(spec.p)
    if icol is not None:
        xm[slopes] = X[:, slopes].mean(axis=0)
    parts = [None] * spec.p
    for name, cols in slope_blocks(spec, priors):
        if name == "slopes":
            sp = [priors[names[j]] for j in cols]
            args = {k: np.array([np.asarray(p.args[k], dtype=float) for p in sp]) for k in sp[0].args}
            vec = getattr(pm, sp[0].name)("slopes", **args, dims="slope")
            for i, j in enumerate(cols):
                parts[j] = vec[i]
        else:
            parts[cols[0]] = _rv(name, priors[names[cols[0]]])
    pc = list(parts)  # coefficients acting on the centered X (intercept = centered intercept)
    if icol is not None:
        a = _rv("Intercept", priors["Intercept"])
        pc[icol] = a
        shift = sum(parts[j] * xm[j] for j in slopes) if slopes else 0.0
        parts[icol] = a - shift
    beta = pm.Deterministic("beta", pt.stack(parts), dims="coef")
    Xc = X - xm[None, :]
    return beta, pt.as_tensor_variable(Xc) @ pt.stack(pc)


def _random_part(term, priors: dict, centered: bool):
    """Variables of one random term; returns its contribution to eta."""
    k, q = term.ident, term.q
    lev, cf = f"{k}_level", f"{k}_coef"
    sd_prior = priors.get(f"sd_{k}")
    if f"var_{k}" in priors:  # prior on the variances; the SDs are derived
        sd = pm.Deterministic(f"sd_{k}", pt.sqrt(_rv(f"var_{k}", priors[f"var_{k}"], dims=cf)), dims=cf)
    else:
        sd = _rv(f"sd_{k}", sd_prior, dims=cf)
    if term.correlated and q > 1:
        a, const = lkj_shape(q, float(priors[f"corr_{k}"].args.get("eta", 1.0)), per_cpc=True)
        # unconstrained CPCs with their LKJ law (density + Jacobians), elementwise, so that
        # the graph's coordinates are the fast paths' ones and prior draws work
        y = pm.CustomDist(f"cpc_{k}", a, const, logp=_cpc_logp, random=_cpc_random, shape=a.size)
        L = pt.stack([pt.stack([pt.as_tensor_variable(v) for v in row])
                      for row in cpc_rows(pt.tanh(y), 1.0 / pt.cosh(y), q)[0]])
        corr = L @ L.T
        pm.Deterministic(f"corr_{k}", pt.stack([corr[i, j] for j, i in corr_pairs(q)]), dims=f"{k}_corr")
        chol = sd[:, None] * L
        if centered:
            b = pm.MvNormal(f"b_{k}", mu=np.zeros(q), chol=chol, dims=(lev, cf))
        else:
            u = pm.Normal(f"u_{k}", 0.0, 1.0, dims=(lev, cf))
            b = pm.Deterministic(f"b_{k}", u @ chol.T, dims=(lev, cf))
    else:
        if centered:
            b = pm.Normal(f"b_{k}", 0.0, sd[None, :], dims=(lev, cf))
        else:
            u = pm.Normal(f"u_{k}", 0.0, 1.0, dims=(lev, cf))
            b = pm.Deterministic(f"b_{k}", u * sd[None, :], dims=(lev, cf))
    codes = term.codes
    Xr = np.asarray(term.Xr)
    if q == 1 and np.all(Xr == 1.0):
        return b[codes, 0]
    return (pt.as_tensor_variable(Xr) * b[codes]).sum(axis=1)


def _zi_part(spec: ModelSpec, priors: dict):
    """Zero-inflation coefficients and their linear predictor (None without ``zi=``).

    As the conditional model: the non-intercept columns of X_zi are centred inside the graph,
    the free variables are ``zi_Intercept`` (logit of the structural-zero probability at the
    zi predictors' means) and ``zi_slopes`` (dim ``zi_slope``; one ``zi_slope_<name>`` each
    when their priors differ); ``beta_zi`` (dim ``zi_coef``) is the Deterministic vector on
    the original scale.
    """
    if not spec.has_zi:
        return None
    names = list(spec.zi_names)
    X = np.asarray(spec.X_zi, dtype=float)
    icol = names.index("(Intercept)") if "(Intercept)" in names else None
    slopes = [j for j in range(len(names)) if j != icol]
    xm = np.zeros(len(names))
    if icol is not None:
        xm[slopes] = X[:, slopes].mean(axis=0)
    parts = [None] * len(names)
    for name, cols in zi_slope_blocks(spec, priors):
        if name == "zi_slopes":
            sp = [priors[zi_key(names[j])] for j in cols]
            args = {k: np.array([np.asarray(p.args[k], dtype=float) for p in sp]) for k in sp[0].args}
            vec = getattr(pm, sp[0].name)("zi_slopes", **args, dims="zi_slope")
            for i, j in enumerate(cols):
                parts[j] = vec[i]
        else:
            parts[cols[0]] = _rv(name, priors[zi_key(names[cols[0]])])
    pc = list(parts)
    if icol is not None:
        a = _rv("zi_Intercept", priors["zi_Intercept"])
        pc[icol] = a
        parts[icol] = a - (sum(parts[j] * xm[j] for j in slopes) if slopes else 0.0)
    pm.Deterministic("beta_zi", pt.stack(parts), dims="zi_coef")
    return pt.as_tensor_variable(X - xm[None, :]) @ pt.stack(pc)


#: families whose response is continuous (observed as float, not int64)
CONTINUOUS = ("gaussian", "gamma", "beta")


def _observed(spec: ModelSpec, eta, sigma, disp=None, eta_zi=None):
    """The observed node ``y``: :meth:`Family.loglik` (and :func:`zi_loglik`) with PT_OPS."""
    fam = spec.family
    w = np.asarray(spec.weights, dtype=float)
    unit = bool(np.all(w == 1.0))
    trials = None if spec.trials is None else np.asarray(spec.trials, dtype=float)
    # the parameters after eta, in this order, each present or not
    extra = [("sigma", sigma), ("disp", disp), ("zi", eta_zi)]
    names = [k for k, v in extra if v is not None]

    def unpack(rest):
        d = dict(zip(names, rest))
        return d.get("sigma"), d.get("disp"), d.get("zi")

    def logp(value, eta_, *rest):
        sig, dsp, ez = unpack(rest)
        ll = fam.loglik(value, eta_, trials=trials, sigma=sig, disp=dsp, ops=PT_OPS)
        if ez is not None:
            ll = zi_loglik(ll, value, ez, PT_OPS)
        return ll if unit else ll * w

    def dist(eta_, *rest, size=None):
        sig, dsp, ez = unpack(rest)
        mu = fam.mean(eta_, PT_OPS)
        nm = fam.name
        if nm == "gaussian":
            return pm.Normal.dist(mu=mu, sigma=sig, size=size)
        if nm == "bernoulli":
            return pm.Bernoulli.dist(p=mu, size=size)
        if nm == "binomial":
            return pm.Binomial.dist(n=trials.astype("int64"), p=mu, size=size)
        if nm == "gamma":
            return pm.Gamma.dist(alpha=dsp, beta=dsp / mu, size=size)
        if nm == "beta":
            return pm.Beta.dist(alpha=mu * dsp, beta=(1.0 - mu) * dsp, size=size)
        alpha = dsp if nm == "negbinomial" else (mu / dsp if nm == "nbinom1" else None)
        if ez is not None:  # psi: probability of the count component
            psi = pt.sigmoid(-ez)
            if alpha is None:
                return pm.ZeroInflatedPoisson.dist(psi=psi, mu=mu, size=size)
            return pm.ZeroInflatedNegativeBinomial.dist(psi=psi, mu=mu, alpha=alpha, size=size)
        if alpha is None:
            return pm.Poisson.dist(mu=mu, size=size)
        return pm.NegativeBinomial.dist(mu=mu, alpha=alpha, size=size)

    params = (eta,) + tuple(v for _, v in extra if v is not None)
    cont = fam.name in CONTINUOUS
    y = np.asarray(spec.y, dtype=float)
    obs = y if cont else y.astype("int64")
    return pm.CustomDist("y", *params, dist=dist, logp=logp, observed=obs, dims="obs",
                         dtype="floatX" if cont else "int64")


def build_pymc_model(spec: ModelSpec, priors: dict, centered: dict | bool = False) -> pm.Model:
    """The PyMC model of a GLMM (see the module docstring for names and dims).

    Parameters
    ----------
    spec : ModelSpec
    priors : dict
        Output of :func:`bayes_glmm.priors.resolve_priors`.
    centered : dict or bool
        Output of :func:`bayes_glmm.priors.resolve_centered` (term name -> bool), or one
        bool for all terms.

    Returns
    -------
    pymc.Model
    """
    if isinstance(centered, (bool, np.bool_)):
        centered = {t.name: bool(centered) for t in spec.terms}
    names = list(spec.fixed_names)
    coords = {"coef": names, "slope": [n for n in names if n != "(Intercept)"],
              "obs": np.asarray(spec.row_index) if spec.row_index is not None and len(spec.row_index) == spec.n
              else np.arange(spec.n)}
    for t in spec.terms:
        coords[f"{t.ident}_level"] = [str(v) for v in t.levels]
        coords[f"{t.ident}_coef"] = list(t.coef_names)
        if t.correlated and t.q > 1:
            cn = list(t.coef_names)
            coords[f"{t.ident}_corr"] = [f"{cn[j]}, {cn[i]}" for j, i in corr_pairs(t.q)]
    if spec.has_zi:
        coords["zi_coef"] = list(spec.zi_names)
        coords["zi_slope"] = [n for n in spec.zi_names if n != "(Intercept)"]
    with pm.Model(coords=coords) as model:
        _, eta = _fixed_part(spec, priors)
        for t in spec.terms:
            eta = eta + _random_part(t, priors, centered.get(t.name, False))
        off = np.asarray(spec.offset, dtype=float)
        if np.any(off != 0.0):
            eta = eta + off
        fam = spec.family
        sigma = _rv("sigma", priors["sigma"]) if fam.has_sigma else None
        disp = _rv(fam.dispersion_name, priors[fam.dispersion_name]) if fam.has_dispersion else None
        _observed(spec, eta, sigma, disp, _zi_part(spec, priors))
    return model


def prior_predictive(model, draws: int = 500, *, random_seed=None):
    """Draws from the prior and the prior predictive distribution.

    Parameters
    ----------
    model : GLMM or pymc.Model
    draws : int
    random_seed : int, optional

    Returns
    -------
    arviz.InferenceData
        Groups ``prior``, ``prior_predictive`` and ``observed_data``.
    """
    pm_model, _ = pm_model_of(model)
    return pm.sample_prior_predictive(draws=draws, model=pm_model, random_seed=random_seed)


def pm_model_of(model):
    """(pymc.Model, GLMM or None) from a GLMM (anything with ``.build()``) or a pymc.Model."""
    if isinstance(model, pm.Model):
        return model, None
    if hasattr(model, "build") and hasattr(model, "spec"):
        return model.build(), model
    raise ValueError(f"model must be a bayes_glmm.GLMM or a pymc.Model, got {type(model).__name__}")

"""The Bayesian path: a PyMC model from a :class:`~bayes_glmm.spec.ModelSpec`, and NUTS.

This is the only module of the package that imports PyMC.

Model
-----
Fixed effects: the non-intercept columns of X are centered inside the graph; the free
variables are ``Intercept`` (the linear predictor at the predictor means, which is what
its prior describes) and the slopes; ``beta`` (dim ``coef``) is the Deterministic vector
of all coefficients on the original scale, intercept included.

Random term k (``ident`` = :attr:`RandomTerm.ident`) uses the shared parametrization
``b_k = u_k @ Lambda_k.T``, ``u_k ~ N(0, I)`` (non-centered, the default):

``sd_<ident>``   (``<ident>_coef``) standard deviations (a Deterministic ``sqrt(var_<ident>)``
                 when the prior is on the variances, key ``var_<ident>``)
``corr_<ident>`` (``<ident>_coef``, ``<ident>_coef2``) correlations, correlated terms only,
                 from :func:`pymc.LKJCholeskyCov` (its free variable is ``chol_<ident>``)
``u_<ident>``    (``<ident>_level``, ``<ident>_coef``) standard-normal innovations
``b_<ident>``    (``<ident>_level``, ``<ident>_coef``) random effects (a free variable
                 when the term is centered)

The linear predictor gathers ``b_k[codes_k]`` row by row (``(Xr * b[codes]).sum(1)``);
Z is never formed.  (``sampler="numpy"`` evaluates the same density without this graph,
see :mod:`bayes_glmm.nuts_numpy`; the graph is still built for predictive draws.)  The observed node ``y`` (dim ``obs``) is a :class:`pymc.CustomDist`
whose log-density is :meth:`Family.loglik` evaluated with :data:`PT_OPS` -- the same code
as the ML path -- multiplied by the prior weights.  With non-unit weights the pointwise
``log_likelihood`` group therefore holds *weighted* contributions (LOO then refers to the
weighted pseudo-likelihood).  Random draws (predictive checks) come from the matching
PyMC distribution with mean ``family.mean(eta, PT_OPS)``; weights do not affect them.
"""
from __future__ import annotations

import os
import time
import warnings
import weakref
from types import SimpleNamespace

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .nuts_numpy import GlmmDensity, add_log_likelihood, compile_numpy, supported
from .priors import slope_blocks
from .spec import ModelSpec

__all__ = ["PT_OPS", "build_pymc_model", "sample", "prior_predictive", "posterior_predictive",
           "diagnose", "SAMPLERS", "AUTO_SAMPLER"]

SAMPLERS = ("auto", "numba", "numpy", "pymc", "nutpie", "numpyro")
#: what ``sampler="auto"`` uses when :func:`bayes_glmm.nuts_numpy.supported` says the closed-form
#: gradient covers the model (``"numba"`` when numba imports, else ``"numpy"``), else the
#: fallback (measured on toenail, see benchmarks/bench_nuts.py)
AUTO_SAMPLER = ("numba", "numpy", "nutpie")

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
    square=pt.square,
    clip=pt.clip,
)


# ----------------------------------------------------------------------------- build
def _rv(name, prior, **kw):
    """A PyMC random variable from a resolved :class:`~bayes_glmm.priors.Prior`."""
    args = {k: np.asarray(v, dtype=float) if isinstance(v, (list, tuple)) else v
            for k, v in prior.args.items()}
    return getattr(pm, prior.name)(name, **args, **kw)


def _dist(prior, shape):
    args = {k: np.asarray(v, dtype=float) if isinstance(v, (list, tuple)) else v
            for k, v in prior.args.items()}
    return getattr(pm, prior.name).dist(**args, shape=shape)


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
    if term.correlated and q > 1:
        eta_lkj = float(priors[f"corr_{k}"].args.get("eta", 1.0))
        chol, corr, sds = pm.LKJCholeskyCov(f"chol_{k}", n=q, eta=eta_lkj, sd_dist=_dist(sd_prior, q),
                                            compute_corr=True, store_in_trace=False)
        pm.Deterministic(f"sd_{k}", sds, dims=cf)
        pm.Deterministic(f"corr_{k}", corr, dims=(cf, f"{k}_coef2"))
        if centered:
            b = pm.MvNormal(f"b_{k}", mu=np.zeros(q), chol=chol, dims=(lev, cf))
        else:
            u = pm.Normal(f"u_{k}", 0.0, 1.0, dims=(lev, cf))
            b = pm.Deterministic(f"b_{k}", u @ chol.T, dims=(lev, cf))
    else:
        if f"var_{k}" in priors:  # prior on the variances; the SDs are derived
            sd = pm.Deterministic(f"sd_{k}", pt.sqrt(_rv(f"var_{k}", priors[f"var_{k}"], dims=cf)), dims=cf)
        else:
            sd = _rv(f"sd_{k}", sd_prior, dims=cf)
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


def _observed(spec: ModelSpec, eta, sigma):
    fam = spec.family
    w = np.asarray(spec.weights, dtype=float)
    unit = bool(np.all(w == 1.0))
    trials = None if spec.trials is None else np.asarray(spec.trials, dtype=float)

    def logp(value, eta_, *rest):
        sig = rest[0] if rest else None
        ll = fam.loglik(value, eta_, trials=trials, sigma=sig, ops=PT_OPS)
        return ll if unit else ll * w

    def dist(eta_, *rest, size=None):
        mu = fam.mean(eta_, PT_OPS)
        if fam.name == "gaussian":
            return pm.Normal.dist(mu=mu, sigma=rest[0], size=size)
        if fam.name == "bernoulli":
            return pm.Bernoulli.dist(p=mu, size=size)
        if fam.name == "binomial":
            return pm.Binomial.dist(n=trials.astype("int64"), p=mu, size=size)
        return pm.Poisson.dist(mu=mu, size=size)

    params = (eta,) if sigma is None else (eta, sigma)
    dtype = "floatX" if fam.name == "gaussian" else "int64"
    y = np.asarray(spec.y, dtype=float)
    obs = y if fam.name == "gaussian" else y.astype("int64")
    return pm.CustomDist("y", *params, dist=dist, logp=logp, observed=obs, dims="obs", dtype=dtype)


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
            coords[f"{t.ident}_coef2"] = list(t.coef_names)
    with pm.Model(coords=coords) as model:
        _, eta = _fixed_part(spec, priors)
        for t in spec.terms:
            eta = eta + _random_part(t, priors, centered.get(t.name, False))
        off = np.asarray(spec.offset, dtype=float)
        if np.any(off != 0.0):
            eta = eta + off
        sigma = _rv("sigma", priors["sigma"]) if spec.family.has_sigma else None
        _observed(spec, eta, sigma)
    return model


# ----------------------------------------------------------------------------- sample
def _pm_model(model):
    """(pymc.Model, GLMM or None) from a GLMM (anything with ``.build()``) or a pymc.Model."""
    if isinstance(model, pm.Model):
        return model, None
    if hasattr(model, "build") and hasattr(model, "spec"):
        return model.build(), model
    raise ValueError(f"model must be a bayes_glmm.GLMM or a pymc.Model, got {type(model).__name__}")


#: GLMM -> (prior/centered key, pymc model, compiled nutpie model): sampling the same GLMM again
#: (e.g. with another seed) skips the numba compilation
_NUTPIE_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _compiled_nutpie(model, pm_model):
    import nutpie

    if isinstance(model, pm.Model):
        return pm_model, nutpie.compile_pymc_model(pm_model)
    key = (repr(sorted((k, repr(v)) for k, v in getattr(model, "_priors", {}).items())),
           repr(getattr(model, "_centered", None)), id(model.spec))
    try:
        hit = _NUTPIE_CACHE.get(model)
    except TypeError:  # not weak-referenceable
        return pm_model, nutpie.compile_pymc_model(pm_model)
    if hit is not None and hit[0] == key:
        return hit[1], hit[2]
    compiled = nutpie.compile_pymc_model(pm_model)
    _NUTPIE_CACHE[model] = (key, pm_model, compiled)
    return pm_model, compiled


def _seed_int(random_seed) -> int:
    if random_seed is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(random_seed, (int, np.integer)):
        return int(random_seed)
    raise ValueError(f"random_seed must be an int or None, got {random_seed!r}")


def summary_var_names(pm_model: pm.Model) -> list:
    """The parameters reported by ``summary()`` and checked after sampling."""
    names = ["beta"] + [v for v in pm_model.named_vars if v.startswith(("sd_", "corr_"))]
    if "sigma" in pm_model.named_vars:
        names.append("sigma")
    return names


def diagnose(idata, var_names, *, rhat_max: float = 1.01, ess_min: float = 400.0) -> list:
    """Convergence problems as readable strings (empty when none).

    Checks divergent transitions, split R-hat > ``rhat_max`` (2+ chains) and bulk ESS
    < ``ess_min`` for ``var_names``; parameters are named with their coordinates.
    """
    import arviz as az

    msgs = []
    ss = idata.sample_stats
    div_name = "diverging" if "diverging" in ss else ("divergences" if "divergences" in ss else None)
    if div_name is not None:
        n_div = int(np.asarray(ss[div_name]).sum())
        if n_div:
            n_tot = int(np.asarray(ss[div_name]).size)
            msgs.append(f"{n_div} divergent transition(s) of {n_tot} draws; increase target_accept "
                        f"(e.g. target_accept=0.95) or change centered= for the random terms")
    post = idata.posterior
    n_chains = post.sizes.get("chain", 1)
    stats = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if n_chains > 1:
            stats["rhat"] = az.rhat(idata, var_names=var_names)
        stats["ess"] = az.ess(idata, var_names=var_names, method="bulk")
    def flagged(ds, bad):
        out = []
        for v in ds.data_vars:
            da = ds[v]
            for idx in zip(*np.nonzero(bad(np.asarray(da)))) if da.ndim else ([()] if bad(np.asarray(da)) else []):
                if v.startswith("corr_") and len(idx) == 2 and idx[0] <= idx[1]:
                    continue  # report each correlation once (lower triangle)
                lab = ", ".join(str(da[d].values[i]) for d, i in zip(da.dims, idx))
                out.append((f"{v}[{lab}]" if lab else v, float(np.asarray(da)[idx])))
        return out
    if "rhat" in stats:
        bad = flagged(stats["rhat"], lambda a: np.isfinite(a) & (a > rhat_max))
        if bad:
            msgs.append(f"R-hat > {rhat_max} for " + ", ".join(f"{n} ({v:.3f})" for n, v in bad)
                        + "; run more tune/draws or chains")
    bad = flagged(stats["ess"], lambda a: np.isfinite(a) & (a < ess_min))
    if bad:
        msgs.append(f"bulk ESS < {ess_min:g} for " + ", ".join(f"{n} ({v:.0f})" for n, v in bad)
                    + "; increase draws")
    return msgs


def _have_numba() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _resolve_sampler(sampler: str, glmm=None) -> str:
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler={sampler!r} is not one of {SAMPLERS}")
    ok = glmm is not None and supported(glmm.spec, glmm._priors, glmm._centered)
    if sampler == "auto":
        if not ok:
            return AUTO_SAMPLER[-1]
        return AUTO_SAMPLER[0] if _have_numba() else AUTO_SAMPLER[1]
    if sampler in ("numpy", "numba") and not ok:
        raise ValueError(f"sampler={sampler!r} needs a bayes_glmm.GLMM without centered correlated random "
                         "terms and priors among bayes_glmm.nuts_numpy.PRIOR_LOGP; use 'nutpie' or 'pymc'")
    if sampler == "numpyro":
        try:
            import numpyro  # noqa: F401
        except ImportError:
            raise ValueError("sampler='numpyro' needs numpyro and jax: pip install numpyro jax "
                             "(or use sampler='nutpie' / 'pymc')") from None
    return sampler


def _tidy_nutpie(idata, pm_model: pm.Model) -> None:
    """Drop nutpie's unconstrained copies and add the ``observed_data`` group (in place)."""
    import xarray as xr

    drop = [v for v in idata.posterior.data_vars if v.endswith("__") and v not in pm_model.named_vars]
    idata.posterior = idata.posterior.drop_vars(drop)
    if "observed_data" not in idata.groups():
        obs = {rv.name: (pm_model.named_vars_to_dims.get(rv.name, ()), np.asarray(pm_model.rvs_to_values[rv].data))
               for rv in pm_model.observed_RVs}
        coords = {d: np.asarray(pm_model.coords[d]) for _, (dims, _) in obs.items() for d in dims}
        idata.add_groups(observed_data=xr.Dataset(obs, coords=coords))


def sample(model, draws: int = 1000, tune: int = 1000, chains: int = 4, *, random_seed=None,
           sampler: str = "auto", progressbar: bool = True, target_accept: float = 0.8,
           cores: int | None = None, prior_predictive: bool = False,
           posterior_predictive: bool = False, check: bool = True, **kwargs):
    """Sample the posterior with NUTS.

    Parameters
    ----------
    model : GLMM or pymc.Model
        A :class:`bayes_glmm.GLMM` (returns :class:`BayesResults`) or a model from
        :func:`build_pymc_model` (returns the ``InferenceData``).
    draws, tune, chains : int
        Kept draws, warm-up iterations and chains.
    random_seed : int, optional
        Same seed, same sampler and settings -> identical draws.
    sampler : {"auto", "numba", "numpy", "pymc", "nutpie", "numpyro"}
        ``"numba"``: nutpie's NUTS with the package's closed-form log-density gradient as
        one numba kernel (:mod:`bayes_glmm.nuts_kernels`; compiled once per installation,
        ~4 s, then cached; chains run in parallel; correlated terms non-centered only).
        ``"numpy"``: the same gradient in NumPy (:mod:`bayes_glmm.nuts_numpy`; no
        compilation, but each gradient call holds the GIL, so chains take turns).
        ``"nutpie"``: nutpie with the PyMC graph compiled by numba (~10-30 s compile).
        ``"auto"`` is ``"numba"`` (``"numpy"`` without numba) when it covers the model, else ``"nutpie"``
        (:data:`AUTO_SAMPLER`; fastest on toenail, see ``benchmarks/bench_nuts.py``).
        ``"numpyro"`` needs numpyro and jax installed.
    progressbar : bool
        Show progress (default True).
    target_accept : float
        NUTS target acceptance; raise towards 0.95-0.99 if there are divergences.
    cores : int, optional
        Parallel chains (default: min(chains, CPU count)).
    prior_predictive, posterior_predictive : bool
        Add the ``prior``/``prior_predictive`` or ``posterior_predictive`` groups.
    check : bool
        Warn (UserWarning) on divergences, R-hat > 1.01 or bulk ESS < 400, naming the
        parameters.
    **kwargs
        Passed to ``nutpie.sample`` or ``pymc.sample``.

    Returns
    -------
    BayesResults or arviz.InferenceData
        The InferenceData has ``posterior``, ``sample_stats``, ``observed_data`` and
        ``log_likelihood`` (so ``arviz.loo`` works).
    """
    for nm, v in (("draws", draws), ("tune", tune), ("chains", chains)):
        if not isinstance(v, (int, np.integer)) or v < (0 if nm == "tune" else 1):
            raise ValueError(f"{nm} must be a {'non-negative' if nm == 'tune' else 'positive'} integer, got {v!r}")
    pm_model, glmm = _pm_model(model)
    name = _resolve_sampler(sampler, glmm)
    seed = _seed_int(random_seed)
    cores = cores or min(chains, os.cpu_count() or 1)
    t0 = time.perf_counter()
    if name in ("nutpie", "numpy", "numba"):
        import nutpie

        if name == "numba":  # the numba kernel of nuts_kernels, called by nutpie without the GIL
            from .nuts_kernels import compile_numba

            compiled = compile_numba(GlmmDensity(glmm.spec, glmm._priors, glmm._centered),
                                     pm_model.coords, pm_model.named_vars_to_dims)
        elif name == "numpy":
            compiled = compile_numpy(GlmmDensity(glmm.spec, glmm._priors, glmm._centered),
                                     pm_model.coords, pm_model.named_vars_to_dims)
        else:
            pm_model, compiled = _compiled_nutpie(model, pm_model)
        idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, cores=cores, seed=seed,
                              progress_bar=progressbar, target_accept=target_accept,
                              save_warmup=False, **kwargs)
        _tidy_nutpie(idata, pm_model)
    else:
        extra = {"nuts_sampler": "numpyro"} if name == "numpyro" else {}
        idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=cores, random_seed=seed,
                          progressbar=progressbar, target_accept=target_accept, model=pm_model,
                          compute_convergence_checks=False, **extra, **kwargs)
    if "log_likelihood" not in idata.groups():
        if glmm is not None:
            add_log_likelihood(idata, glmm.spec, pm_model)
        else:
            pm.compute_log_likelihood(idata, model=pm_model, progressbar=False, extend_inferencedata=True)
    elapsed = time.perf_counter() - t0
    idata.posterior.attrs["sampling_wall_time"] = elapsed
    idata.posterior.attrs["sampler"] = name
    rng = np.random.default_rng(seed)
    if prior_predictive:
        pri = pm.sample_prior_predictive(draws=draws, model=pm_model, random_seed=rng)
        idata.extend(pri)
    if posterior_predictive:
        pm.sample_posterior_predictive(idata, model=pm_model, random_seed=rng, extend_inferencedata=True,
                                       progressbar=False)
    if check:
        msgs = diagnose(idata, summary_var_names(pm_model))
        if msgs:
            warnings.warn("NUTS diagnostics: " + "; ".join(msgs), UserWarning, stacklevel=2)
    if glmm is None:
        return idata
    from .bayes_results import BayesResults

    return BayesResults(glmm, idata, pm_model)


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
    pm_model, _ = _pm_model(model)
    return pm.sample_prior_predictive(draws=draws, model=pm_model, random_seed=random_seed)


def posterior_predictive(idata, pm_model: pm.Model, *, random_seed=None, extend: bool = True):
    """Posterior predictive draws of ``y`` (group ``posterior_predictive``).

    Parameters
    ----------
    idata : arviz.InferenceData
        With a ``posterior`` group from :func:`sample`.
    pm_model : pymc.Model
    random_seed : int, optional
    extend : bool
        Add the group to ``idata`` (default) rather than returning a new object only.
    """
    return pm.sample_posterior_predictive(idata, model=pm_model, random_seed=random_seed,
                                          extend_inferencedata=extend, progressbar=False)

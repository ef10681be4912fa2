"""NUTS for a GLMM: sampler choice, defaults, diagnostics and the InferenceData.

Every sampler evaluates the one model of :mod:`bayes_glmm.bayes.graph` on its unconstrained
coordinates (``tests/test_bayes_contract.py`` checks the fast ones against the graph point
by point); their output goes through :mod:`bayes_glmm.bayes.pointwise`, so the
``posterior`` group looks the same whichever ran.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
import weakref

import numpy as np

from ..families import REGISTRY
from .density import GlmmDensity, compile_numpy, supported
from .laplace_init import chain_starts, laplace_start, resolve_init
from .params import param_layout
from .pointwise import add_log_likelihood, add_observed_data, posterior_names, tidy_posterior
from .pointwise import posterior_predictive as _posterior_predictive

__all__ = ["sample", "diagnose", "summary_var_names", "default_target_accept", "SAMPLERS",
           "AUTO_SAMPLER", "graph_pays", "GRAPH_COST"]

SAMPLERS = ("auto", "native", "numpy", "pymc", "nutpie", "numpyro")
#: what ``sampler="auto"`` uses when :func:`bayes_glmm.bayes.density.supported` says the
#: layout covers the model: ``"native"`` (C generated from the model, :mod:`bayes_glmm.bayes.native`)
#: when a C compiler is found, else ``"numpy"`` (or ``"nutpie"`` on large data, :func:`graph_pays`);
#: the last is the fallback for models outside that layout (centered correlated terms, other
#: priors).  Measured in benchmarks/bench_nuts.py.
AUTO_SAMPLER = ("native", "numpy", "nutpie")
#: the native sampler's start and initial metric (``sample(init=...)``, :data:`~bayes_glmm.bayes.laplace_init.INITS`)
DEFAULT_INIT = "auto"
#: above this many values (draws x chains x rows) the log_likelihood group is skipped by default
LOGLIK_MAX_VALUES = 50_000_000


#: target_accept values tried in turn, when target_accept=None, while a fit has divergences
RERUN_TARGETS = (0.95, 0.99)


def _n_divergent(idata) -> int:
    ss = idata.sample_stats
    name = "diverging" if "diverging" in ss else ("divergences" if "divergences" in ss else None)
    return int(np.asarray(ss[name]).sum()) if name else 0


def default_target_accept(spec) -> float:
    """The default NUTS target acceptance for a model: 0.95 with a correlated term, else 0.8.

    Correlated random slopes give the posterior a funnel in the SDs and correlations that a
    step size tuned for 0.8 does not resolve: on 30 simulated correlated-slope Poisson data
    sets (``benchmarks/divergences.py``) 0.8 left divergences in 11 (another batch: 18) fits and
    0.95 in 0 (1), at about 0.6x the min-ESS per second.
    Scalar and ``||`` terms keep 0.8.  With ``target_accept=None``, :func:`sample`
    then reruns a fit that still diverges with the next of :data:`RERUN_TARGETS`.
    """
    return 0.95 if any(t.correlated and t.q > 1 for t in spec.terms) else 0.8


#: GLMM -> (prior/centered key, (pymc model, compiled nutpie model)): sampling the same GLMM
#: again (e.g. with another seed) skips the numba compilation
_NUTPIE_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _per_glmm(cache, glmm, build):
    """``build()`` once per GLMM and priors/centering: a second fit of the same GLMM (another
    seed) reuses the compiled model.  ``cache`` is a WeakKeyDictionary keyed by the GLMM."""
    key = (repr(sorted((k, repr(v)) for k, v in glmm.resolved_priors.items())),
           repr(glmm.centered_terms), id(glmm.spec))
    try:
        hit = cache.get(glmm)
    except TypeError:  # not weak-referenceable
        return build()
    if hit is not None and hit[0] == key:
        return hit[1]
    out = build()
    cache[glmm] = (key, out)
    return out


def _is_pm_model(model) -> bool:
    """``model`` is a ``pymc.Model``, asked without importing PyMC (1-5 s in a fresh process:
    the native and NumPy samplers never need it); a pymc.Model exists only once PyMC is imported."""
    pm = sys.modules.get("pymc")
    return pm is not None and isinstance(model, pm.Model)


def _compiled_nutpie(model, pm_model):
    import nutpie

    if _is_pm_model(model):
        return pm_model, nutpie.compile_pymc_model(pm_model)

    def build():  # the graph too is built once per GLMM and priors/centering
        graph = pm_model if pm_model is not None else model.build()
        return graph, nutpie.compile_pymc_model(graph)
    return _per_glmm(_NUTPIE_CACHE, model, build)


#: GLMM -> (prior/centered key, NativeModel): a second fit of the same GLMM reuses the loaded
#: library and the packed data
_NATIVE_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _native_model(glmm):
    """The compiled native model of a GLMM (:class:`bayes_glmm.bayes.native.NativeModel`)."""
    from .native import NativeModel

    return _per_glmm(_NATIVE_CACHE, glmm, lambda: NativeModel(
        GlmmDensity(glmm.spec, glmm.resolved_priors, glmm.centered_terms)))


#: values of ``sample(store_effects=...)``
STORE_EFFECTS = (True, "float32", False)


def _lean_effects(post: dict, store_effects) -> dict:
    """``post`` with the ``b_<g>`` draws as ``store_effects`` asks: float64 (True), float32
    (half the memory: 50,000 levels x 2 x 1000 draws are 0.4 GB instead of 0.8) or, for
    False, float32 until the log-likelihood and predictions are computed, then dropped."""
    if store_effects is True:
        return post
    return {k: (np.asarray(v, dtype=np.float32) if k.startswith("b_") else v) for k, v in post.items()}


def _native_idata(density, x, stats, layout, max_depth: int = 10, store_effects=True):
    """InferenceData from the native sampler's unconstrained draws (chain, draw, ndim), named
    by ``layout`` (:func:`~bayes_glmm.bayes.params.param_layout`); ``b_<g>`` stored as
    :func:`_lean_effects`."""
    depth = stats["tree_depth"].astype(np.int64)
    st = {"lp": stats["lp"], "acceptance_rate": stats["acceptance_rate"], "step_size": stats["step_size"],
          "tree_depth": depth, "n_steps": stats["n_steps"].astype(np.int64),
          "diverging": stats["diverging"] > 0.5, "energy": stats["energy"], "energy_error": stats["energy_error"],
          # PyMC's name; Stan counts a transition at the limit (treedepth__ >= max_depth)
          "reached_max_treedepth": depth >= max_depth}
    idata = _idata_from_arrays(_lean_effects(density.expand_draws(x), store_effects), st, layout.dims,
                               layout.coords)
    idata.sample_stats.attrs["max_depth"] = int(max_depth)
    # per chain, the CPU seconds of its thread (as Stan's elapsed time): warm-up, then draws
    for k in ("warmup_seconds", "sampling_seconds"):
        if k in stats:
            idata.sample_stats.attrs[k] = [float(v) for v in stats[k]]
    return idata


def _seed_int(random_seed) -> int:
    if random_seed is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(random_seed, (int, np.integer)):
        return int(random_seed)
    raise ValueError(f"random_seed must be an int or None, got {random_seed!r}")


def summary_var_names(posterior, aux_names=None) -> list:
    """The parameters reported by ``summary()`` and checked after sampling (from a posterior
    group or anything with the variable names as keys).

    ``aux_names``: the family's auxiliary parameters (``family.aux_names``); default, those of
    every registered family (a raw PyMC model's ``sigma``, say).  A structured term is checked
    on its own parameters: ``sdpar_<g>`` for SDs shared by its coefficients (ar1: one, not q
    equal copies) and ``rho_<g>`` for its correlation parameters (not every pair they imply).
    """
    names = []
    for v in posterior:
        s = str(v)
        if s == "beta":
            names.append(v)
        elif s.startswith("sd_"):
            names.append("sdpar_" + s[3:] if "sdpar_" + s[3:] in posterior else v)
        elif s.startswith("corr_"):
            names.append("rho_" + s[5:] if "rho_" + s[5:] in posterior else v)
    if aux_names is None:
        aux_names = dict.fromkeys(a.name for cls in REGISTRY.values() for a in cls.aux_params)
    names += [v for v in aux_names if v in posterior]
    zero_parts = dict.fromkeys(f"beta_{cls.zero_label}" for cls in REGISTRY.values())  # beta_zi, beta_hu
    return names + [v for v in zero_parts if v in posterior] + (["beta_disp"] if "beta_disp" in posterior else [])


@contextlib.contextmanager
def _arviz_without_numba():
    """ArviZ with its numba paths off for the block (restored after).

    On a new machine ArviZ's numba-jitted variance compiles at first use (0.34 s, against
    0.014 s for the whole check in NumPy on 4 x 1000 draws): the post-sampling check of a
    small model would pay more for the compilation than for the sampling's last second.
    """
    import arviz as az

    flag = getattr(az, "Numba", None)
    on = bool(flag is not None and flag.numba_flag)
    if on:
        flag.disable_numba()
    try:
        yield az
    finally:
        if on:
            flag.enable_numba()


#: Stan's threshold: a chain whose E-BFMI is below it explored the energy levels poorly
EBFMI_MIN = 0.3


def ebfmi(energy) -> np.ndarray:
    """Energy Bayesian fraction of missing information of each chain (Betancourt 2016).

    ``mean((E_n - E_{n-1})^2) / var(E)`` over the draws of a chain, as Stan and ArviZ compute
    it; below :data:`EBFMI_MIN` the momentum resampling moves the energy too little for the
    spread of energies the posterior needs (heavy tails, a funnel).

    Parameters
    ----------
    energy : array-like (chain, draw)
        The Hamiltonian at each draw (``sample_stats.energy``).

    Returns
    -------
    ndarray (chain,)
        NaN for a chain of fewer than 2 draws or constant energy.
    """
    e = np.atleast_2d(np.asarray(energy, dtype=float))
    if e.shape[1] < 2:
        return np.full(e.shape[0], np.nan)
    num = np.mean(np.diff(e, axis=1) ** 2, axis=1)
    den = np.var(e, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _max_treedepth(idata):
    """(transitions at the maximum tree depth, total, max depth or None); None when the
    sampler does not record it (numpyro)."""
    ss = idata.sample_stats
    name = next((n for n in ("reached_max_treedepth", "maxdepth_reached") if n in ss), None)
    if name is None:
        return None
    hit = np.asarray(ss[name]).astype(bool)
    return int(hit.sum()), int(hit.size), ss.attrs.get("max_depth")


def _sampler_messages(idata) -> list:
    """Stan's sampler checks after a fit: divergences, E-BFMI < 0.3 per chain, transitions that
    hit the maximum tree depth."""
    msgs = []
    n_div = _n_divergent(idata)
    if n_div:
        ta = idata.posterior.attrs.get("target_accept")
        at = f" at target_accept={ta:g}" if ta is not None else ""
        msgs.append(f"{n_div} divergent transition(s) of {int(idata.posterior.sizes['chain'] * idata.posterior.sizes['draw'])} "
                    f"draws{at}; increase target_accept (e.g. 0.99) or change centered= for the random terms")
    ss = idata.sample_stats
    if "energy" in ss:
        low = [(c, v) for c, v in enumerate(ebfmi(ss["energy"])) if np.isfinite(v) and v < EBFMI_MIN]
        if low:
            msgs.append("E-BFMI below " + f"{EBFMI_MIN:g} in chain(s) " + ", ".join(f"{c} ({v:.2f})" for c, v in low)
                        + ": the sampler explored the posterior's energy levels poorly (heavy tails or a funnel); "
                        "reparametrize (centered= for the random terms), give the SDs tighter priors, or run longer")
    hit = _max_treedepth(idata)
    if hit is not None and hit[0]:
        n, total, depth = hit
        lim = f" of {depth} (2^{depth} leapfrog steps)" if depth is not None else ""
        msgs.append(f"{n} of {total} transitions ({100.0 * n / total:.1f}%) hit the maximum tree depth{lim}: "
                    "trajectories cut short explore slowly; pass a larger max_depth= or reparametrize")
    return msgs


def diagnose(idata, var_names, *, rhat_max: float = 1.01, ess_min: float = 400.0) -> list:
    """Convergence problems as readable strings (empty when none).

    Checks, as Stan does after sampling, divergent transitions, E-BFMI < :data:`EBFMI_MIN` per
    chain and transitions that hit the maximum tree depth (where the sampler records them),
    then split R-hat > ``rhat_max`` (2+ chains) and bulk ESS < ``ess_min`` for
    ``var_names``; parameters are named with their coordinates.
    """
    msgs = _sampler_messages(idata)
    post = idata.posterior
    n_chains = post.sizes.get("chain", 1)
    stats = {}
    with warnings.catch_warnings(), _arviz_without_numba() as az:
        warnings.simplefilter("ignore")
        if n_chains > 1:
            stats["rhat"] = az.rhat(idata, var_names=var_names)
        stats["ess"] = az.ess(idata, var_names=var_names, method="bulk")
    def flagged(ds, bad):
        out = []
        for v in ds.data_vars:
            da = ds[v]
            for idx in zip(*np.nonzero(bad(np.asarray(da)))) if da.ndim else ([()] if bad(np.asarray(da)) else []):
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


#: the cost model behind ``sampler="auto"`` without a C compiler: per-gradient time a + b * rows
#: (µs) of the NumPy density (GIL: chains in turn) and of nutpie's numba-compiled graph (chains
#: in parallel), plus the graph's compile time (s) and gradients per draw.  The NumPy figures
#: are the dual-number density on NB2 random-intercept models (377, 803 and 8,524 µs at 400,
#: 4,000 and 40,000 rows, 2026-12-03); the graph's were measured on 400 and 4,000 rows and
#: epilepsy (docs/posterior.md of 2026-12-02); 2 CPUs
GRAPH_COST = {"numpy_us": (300.0, 0.2), "graph_us": (41.0, 0.054), "compile_s": 30.0, "grads_per_draw": 20.0}


def graph_pays(n_rows: int, draws: int, tune: int, chains: int, cores: int) -> bool:
    """True when nutpie on the compiled graph is expected to finish before the NumPy density.

    ``(draws + tune) x chains x grads_per_draw`` gradients at :data:`GRAPH_COST`'s per-gradient
    times, the NumPy ones in turn (they hold the GIL), the graph's ``min(chains, cores)`` at a
    time after its compilation.  At 4 chains of 1000 + 1000 on 2 cores the graph pays at any size;
    for short runs (2 chains of 300 + 300) the NumPy density wins.
    """
    c = GRAPH_COST
    grads = (draws + tune) * chains * c["grads_per_draw"]
    t_np = grads * (c["numpy_us"][0] + c["numpy_us"][1] * n_rows) * 1e-6
    par = max(1, min(chains, cores))
    t_graph = c["compile_s"] + grads * (c["graph_us"][0] + c["graph_us"][1] * n_rows) * 1e-6 / par
    return t_graph < t_np


def _resolve_sampler(sampler: str, glmm=None, size=None) -> str:
    """The sampler to run; ``size`` = (draws, tune, chains, cores) for the auto rule."""
    if sampler == "numba":
        # the hand-written numba kernel of earlier versions was replaced by the generated C
        warnings.warn("sampler='numba' is now sampler='native' (C generated from the model, no numba "
                      "compilation); use 'native' or 'auto'", FutureWarning, stacklevel=4)
        sampler = "native"
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler={sampler!r} is not one of {SAMPLERS}")
    ok = glmm is not None and supported(glmm.spec, glmm.resolved_priors, glmm.centered_terms)
    from .native import available as native_available

    if sampler == "auto":
        if not ok:
            return AUTO_SAMPLER[-1]
        if native_available():
            return AUTO_SAMPLER[0]
        # no C compiler: the NumPy density (closed-form gradient, no compile) unless the data
        # are large enough for nutpie's numba-compiled graph to pay for its compilation
        draws, tune, chains, cores = size or (1000, 1000, 4, os.cpu_count() or 1)
        return "nutpie" if graph_pays(glmm.spec.n, draws, tune, chains, cores) else "numpy"
    if sampler == "native" and not native_available():
        raise ValueError("sampler='native' needs a C compiler (none found: set CC or install gcc/clang); "
                         "use sampler='auto', 'numpy' or 'nutpie'")
    if sampler in ("numpy", "native") and not ok:
        raise ValueError(f"sampler={sampler!r} needs a bayes_glmm.GLMM without centered correlated random "
                         "terms and priors among bayes_glmm.bayes.codegen.PRIOR_LOGDENS; use 'nutpie' or 'pymc'")
    if sampler == "numpyro":
        from .jax_backend import available

        if not available():
            raise ValueError("sampler='numpyro' needs numpyro and jax: pip install 'bayes_glmm[jax]' "
                             "(or use sampler='nutpie' / 'pymc')")
    return sampler


def _drop_unconstrained(idata, pm_model) -> None:
    """Drop nutpie's unconstrained copies (``*_log__``) from a raw-model posterior (in place)."""
    drop = [v for v in idata.posterior.data_vars if v.endswith("__") and v not in pm_model.named_vars]
    idata.posterior = idata.posterior.drop_vars(drop)


def _model_of(model):
    """(pymc.Model or None, GLMM or None) as :func:`pm_model_of`, but a GLMM's graph is left
    unbuilt: only the samplers that run the graph (nutpie, numpyro, pymc) build it; the native
    and NumPy ones label their draws from :func:`~bayes_glmm.bayes.params.param_layout`."""
    if not _is_pm_model(model) and hasattr(model, "build") and hasattr(model, "spec"):
        return None, model
    from .graph import pm_model_of

    return pm_model_of(model)


def _idata_from_arrays(post: dict, stats: dict, all_dims: dict, all_coords: dict):
    """InferenceData from (chain, draw, ...) arrays named as in the PyMC model, with its dims
    (variable -> dim names) and coords (the graph's, or :func:`~bayes_glmm.bayes.params.param_layout`'s).

    A variable takes the model's dims where their number fits its shape (the q x q
    correlation matrix of the native sampler gets ArviZ's default dims until
    :func:`~bayes_glmm.bayes.pointwise.tidy_posterior` turns it into the graph's pairs).
    """
    import arviz as az

    dims = {n: list(all_dims.get(n, ())) for n, v in post.items() if len(all_dims.get(n, ())) == np.ndim(v) - 2}
    coords = {d: np.asarray(all_coords[d]) for ds in dims.values() for d in ds}
    return az.from_dict(posterior=post, sample_stats=stats, coords=coords, dims=dims)


def sample(model, draws: int = 1000, tune: int = 1000, chains: int = 4, *, random_seed=None,
           sampler: str = "auto", progressbar: bool = True, target_accept: float | None = None,
           cores: int | None = None, prior_predictive: bool = False,
           posterior_predictive: bool = False, log_likelihood: bool | None = None, check: bool = True,
           store_effects: bool | str = True, **kwargs):
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
    sampler : {"auto", "native", "numpy", "pymc", "nutpie", "numpyro"}
        ``"native"``: bayes_glmm's NUTS in C (:mod:`bayes_glmm.bayes.native`) on a C
        log-density generated from the model's definitions (every family, link, prior and
        term structure; correlated terms non-centered), compiled by the system C compiler
        once per model structure (about 0.5 s; cached) and run one thread per chain; extra
        keyword ``max_depth`` (default 10).
        ``"numpy"``: the same density in NumPy (:mod:`bayes_glmm.bayes.density`) under
        nutpie; no compilation, but each gradient call holds the GIL, so chains take turns.
        ``"nutpie"``: nutpie with the PyMC graph compiled by numba (~10-30 s compile).
        ``"numpyro"``: numpyro's NUTS on JAX code generated from the graph
        (:mod:`bayes_glmm.bayes.jax_backend`; the ``[jax]`` extra; a GPU when JAX sees one).
        ``"pymc"``: PyMC's own NUTS.
        Extra keyword ``init`` (:data:`~bayes_glmm.bayes.laplace_init.INITS`, default
        :data:`DEFAULT_INIT`, which is ``"laplace"`` from
        :data:`~bayes_glmm.bayes.laplace_init.AUTO_ROWS` rows on, else ``"random"``):
        ``"laplace"`` starts each chain from a draw of the Laplace
        approximation (ML scales -- a Laplace-EM on the compiled density with several random
        terms --, conditional modes; :mod:`bayes_glmm.bayes.laplace_init`,
        seeded by ``random_seed``) with its variances as the warm-up's initial metric;
        ``"random"`` is the start of earlier versions (typical values + U(-1, 1), unit metric).
        ``"auto"`` (:data:`AUTO_SAMPLER`) is ``"native"`` when a C compiler is found; without
        one ``"numpy"``, or ``"nutpie"`` when :func:`graph_pays` (about 1,000+ rows at the
        defaults); ``"nutpie"`` for models outside the generated layout (centered correlated
        terms).  ``idata.posterior.attrs["sampler"]`` records which ran.  (``"numba"``, the
        hand-written kernel of earlier versions, now means ``"native"``, with a FutureWarning.)
    progressbar : bool
        Show progress (default True).
    target_accept : float, optional
        NUTS target acceptance.  Default (None): :func:`default_target_accept` (0.95 when the
        model has a correlated random term, else 0.8), and a fit with divergent transitions is
        rerun with 0.95, then 0.99 (:data:`RERUN_TARGETS`); the values tried are in
        ``idata.posterior.attrs["target_accept_tried"]``.  A number is used as given.
    cores : int, optional
        Parallel chains (default: min(chains, CPU count)).
    prior_predictive, posterior_predictive : bool
        Add the ``prior``/``prior_predictive`` or ``posterior_predictive`` groups.
    log_likelihood : bool, optional
        Add the pointwise ``log_likelihood`` group (for ``arviz.loo``).  Default: yes unless
        it would hold more than :data:`LOGLIK_MAX_VALUES` numbers (draws x chains x rows; 8
        bytes each), in which case it is skipped with a warning -- on a million rows it would
        take more memory than the fit itself.
    check : bool
        Warn (UserWarning) on divergences, E-BFMI < 0.3 in a chain, transitions at the maximum
        tree depth (as Stan), R-hat > 1.01 or bulk ESS < 400, naming the parameters.
    store_effects : {True, "float32", False}
        How the ``b_<g>`` draws (one per level and draw: 50,000 levels x 4 x 1000 draws are
        1.6 GB in float64) are kept: True, float64; ``"float32"``, half the memory (7 digits,
        far below Monte Carlo error); False, not at all (the log-likelihood and the posterior
        predictive are computed from float32 copies first; ``ranef`` and predictions with the
        random effects are then unavailable).  Bounded memory for many levels: ``"float32"``
        or False, which also store the pointwise ``log_likelihood`` as float32.
    **kwargs
        Passed to ``nutpie.sample``, ``pymc.sample`` or ``numpyro.infer.NUTS``.

    Returns
    -------
    BayesResults or arviz.InferenceData
        The InferenceData has ``posterior`` (for a GLMM: the variables of
        :mod:`bayes_glmm.bayes.pointwise`), ``sample_stats``, ``observed_data`` and
        ``log_likelihood`` (so ``arviz.loo`` works).
    """
    for nm, v in (("draws", draws), ("tune", tune), ("chains", chains)):
        if not isinstance(v, (int, np.integer)) or v < (0 if nm == "tune" else 1):
            raise ValueError(f"{nm} must be a {'non-negative' if nm == 'tune' else 'positive'} integer, got {v!r}")
    if not any(store_effects is v for v in STORE_EFFECTS) and store_effects != "float32":
        raise ValueError(f"store_effects must be True, 'float32' or False, got {store_effects!r}")
    pm_model, glmm = _model_of(model)
    cores = cores or min(chains, os.cpu_count() or 1)
    name = _resolve_sampler(sampler, glmm, (draws, tune, chains, cores))
    layout = None if glmm is None else param_layout(glmm.spec, glmm.resolved_priors, glmm.centered_terms)
    if pm_model is None and name in ("numpyro", "pymc"):  # these sample the graph itself
        pm_model = glmm.build()
    seed = _seed_int(random_seed)
    auto_target = target_accept is None
    if auto_target:
        target_accept = default_target_accept(glmm.spec) if glmm is not None else 0.8
    t0 = time.perf_counter()
    compiled = native = None
    if name == "native":
        native = _native_model(glmm)
        bad = sorted(set(kwargs) - {"max_depth", "init_step", "init"})
        if bad:
            raise ValueError(f"sampler='native' takes max_depth=, init= (and init_step=), not {bad}")
        init_kind = resolve_init(kwargs.get("init", DEFAULT_INIT), glmm.spec)
    elif name == "numpy":
        density = GlmmDensity(glmm.spec, glmm.resolved_priors, glmm.centered_terms)
        compiled = compile_numpy(density, layout.coords, layout.dims)
    elif name == "nutpie":
        pm_model, compiled = _compiled_nutpie(model, pm_model)

    starts = {}

    def run(ta):
        if native is not None:
            depth = int(kwargs.get("max_depth", 10))
            init = inv_mass = None
            if init_kind == "laplace":  # computed once, shared by the reruns
                if "lap" not in starts:
                    starts["lap"] = laplace_start(glmm, native.density, native.logp_grad)
                lap = starts["lap"]
                init, inv_mass = chain_starts(lap, chains, seed, native.logp_grad), lap.inv_mass
            xs = [None]
            xs[0], stats = native.sample(draws, tune, chains, seed=seed, target_accept=ta, cores=cores,
                                     max_depth=depth, init_step=float(kwargs.get("init_step", -1.0)),
                                     progressbar=progressbar, init=init, inv_mass=inv_mass)
            # the unconstrained draws are released as soon as they are expanded
            return _native_idata(native.density, xs.pop(), stats, layout, depth, store_effects)
        if compiled is not None:
            import nutpie

            return nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, cores=cores, seed=seed,
                                 progress_bar=progressbar, target_accept=ta, save_warmup=False, **kwargs)
        if name == "numpyro":
            from .jax_backend import sample_numpyro

            keep = posterior_names(glmm.spec) if glmm is not None else [
                v.name for v in pm_model.free_RVs + pm_model.deterministics]
            post, stats = sample_numpyro(pm_model, keep, draws=draws, tune=tune, chains=chains, seed=seed,
                                         target_accept=ta, progressbar=progressbar, **kwargs)
            return _idata_from_arrays(post, stats, pm_model.named_vars_to_dims, pm_model.coords)
        import pymc as pm

        return pm.sample(draws=draws, tune=tune, chains=chains, cores=cores, random_seed=seed,
                         progressbar=progressbar, target_accept=ta, model=pm_model,
                         compute_convergence_checks=False, **kwargs)

    idata = run(target_accept)
    tried = [float(target_accept)]
    # the automatic rule's second half: a divergent fit is rerun with a smaller step size
    while auto_target and _n_divergent(idata) and target_accept < RERUN_TARGETS[-1]:
        target_accept = next(t for t in RERUN_TARGETS if t > target_accept)
        idata = run(target_accept)
        tried.append(float(target_accept))
    if glmm is not None:
        tidy_posterior(idata, glmm.spec)
        add_observed_data(idata, glmm.spec)
        size = draws * chains * glmm.spec.n
        if log_likelihood is None and size > LOGLIK_MAX_VALUES:
            log_likelihood = False
            warnings.warn(f"log_likelihood group skipped: {size:.3g} values ({size * 8 / 2**30:.1f} GiB); "
                          "pass log_likelihood=True to compute it anyway", UserWarning,
                          stacklevel=3)
        if log_likelihood is not False and "log_likelihood" not in idata.groups():
            add_log_likelihood(idata, glmm.spec, native.rows_loglik if native is not None else None,
                               dtype=np.float64 if store_effects is True else np.float32)
    else:
        if name in ("nutpie", "numpy"):
            _drop_unconstrained(idata, pm_model)
        if "log_likelihood" not in idata.groups():
            import pymc as pm

            pm.compute_log_likelihood(idata, model=pm_model, progressbar=False, extend_inferencedata=True)
    elapsed = time.perf_counter() - t0
    idata.posterior.attrs["sampling_wall_time"] = elapsed
    idata.posterior.attrs["sampler"] = name
    if native is not None:
        idata.posterior.attrs["init"] = init_kind
    idata.posterior.attrs["target_accept"] = float(target_accept)
    idata.posterior.attrs["target_accept_tried"] = tried
    rng = np.random.default_rng(seed)
    if prior_predictive:
        import pymc as pm

        pm_model = pm_model if pm_model is not None else glmm.build()
        pri = pm.sample_prior_predictive(draws=draws, model=pm_model, random_seed=rng)
        idata.extend(pri)
    if posterior_predictive:
        if glmm is not None:
            _posterior_predictive(idata, glmm.spec, random_seed=rng)
        else:
            import pymc as pm

            pm.sample_posterior_predictive(idata, model=pm_model, random_seed=rng,
                                           extend_inferencedata=True, progressbar=False)
    if glmm is not None and store_effects is not True:
        effects = [v for v in idata.posterior.data_vars if str(v).startswith("b_")]
        if store_effects is False:
            idata.posterior = idata.posterior.drop_vars(effects)
        else:
            for v in effects:
                idata.posterior[v] = idata.posterior[v].astype(np.float32)
        idata.posterior.attrs["store_effects"] = str(store_effects)
    if check:
        msgs = diagnose(idata, summary_var_names(idata.posterior,
                                                 glmm.spec.family.aux_names if glmm is not None else None))
        if msgs:
            warnings.warn("NUTS diagnostics: " + "; ".join(msgs), UserWarning, stacklevel=3 if glmm is not None else 2)
    if glmm is None:
        return idata
    from .results import BayesResults

    return BayesResults(glmm, idata, pm_model)

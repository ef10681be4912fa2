"""NUTS benchmark: bayes_glmm vs bambi on Bernoulli/logit random-intercept models.

Cases (``--case``, one or several):

* ``toenail`` (default): ``Response ~ Month * Treatment + (1 | ID)``, 1,908 rows x 294
  patients, 1000 tune + 1000 draws, 2 and 4 chains;
* ``bern100k``: simulated, ``y ~ x + z + (1 | g)``, 100,000 rows x 2,000 groups
  (x, z ~ N(0, 1); intercept -0.5, slopes 0.8 and -0.4, group SD 0.7; fixed seed),
  500 tune + 500 draws, 2 chains;
* ``bern1m``: the same model with 1,000,000 rows x 10,000 groups, 500 + 500, 2 chains;
* ``nb400``: simulated negative binomial (NB2), ``y ~ x + (1 | g)``, 400 rows x 40 groups
  (intercept 1, slope 0.5, group SD 0.5, theta 2), 1000 tune + 1000 draws, 4 chains, against
  bambi's ``negativebinomial`` family (ESS over beta, sd_g and theta / bambi's alpha);
* ``nb10k``: the nb400 model with 10,000 rows x 200 groups, 500 + 500, 2 chains;
* ``hnb400``: simulated hurdle NB2, ``y ~ x + (1 | g)`` with ``hu="~ x"``, 400 rows x 40 groups
  (the nb400 count part truncated to y > 0; P(y = 0) = expit(-0.5 + 0.8 x)), 1000 + 1000, 4
  chains, against bambi's ``hurdle_negativebinomial`` with ``psi ~ x`` (its psi is
  P(y > 0), our 1 - pi; ESS over beta, sd_g, theta and beta_hu / alpha and the psi terms).
  bambi's ``numpyro`` backend cannot sample it (PyMC's truncated NB needs ``betainc``'s gradient
  in its parameters, which JAX lacks): compare with ``--bambi nutpie pymc``;
* ``hp400``: the same with a hurdle Poisson count part (bambi's ``hurdle_poisson``);
* ``g50k``: the bern100k model with 100,000 rows in 50,000 groups of 2, 500 + 500, 2 chains,
  ``store_effects="float32"`` (issue 19).
* ``crossed200k``: simulated Bernoulli with two crossed intercepts, ``y ~ x + (1 | g) + (1 | h)``,
  200,000 rows x 5,000 x 5,000 levels (``bench_crossed.simulate_crossed``: intercept -0.3, slope
  0.6, SDs 1 and 0.7; the data of ``bench_crossed.py``'s ``crossed_200k``), ``sample()``'s
  defaults (1000 tune + 1000 draws, 4 chains), ``store_effects="float32"``; ESS over beta,
  sd_g and sd_h (issue 19);
* ``crossed20k``: the same with 20,000 rows x 500 x 500 levels (40 rows per level, as
  crossed200k): for quick iteration.

For every configuration it prints the whole-call wall time (model build + compile +
sampling + InferenceData; data loading/simulation is outside), the minimum bulk ESS over
the fixed effects and the random-intercept SD, min-ESS per second, divergences, max R-hat
and the peak RSS of the benchmark process (``rss``; ``wrk``: the largest process it
spawned and waited for, e.g. PyMC's per-chain workers or a compiler), then, per case and
chain count, the ratio of bayes_glmm's default (``sampler="auto"``) to bambi's fastest
backend measured in the same run (by min-ESS/s), naming that backend.

Configurations: ours (``--ours``, default ``auto numpyro``) are bayes_glmm's samplers
(``auto``, ``native``, ``numpy``, ``nutpie``, ``pymc``, ``numpyro``: numpyro's NUTS on JAX
code generated from the PyMC graph), each optionally ``-centered`` (every term centred) or
``-noncentred`` (none; without either, the model's default ``centered="auto"``) and/or ``-laplace`` /
``-random`` (the native sampler's ``init=``: ``auto-random`` is the sampler before the
Laplace-informed start, ``auto`` the default); bambi's (``--bambi``,
default ``nutpie pymc numpyro``) are its ``inference_method`` values (``numpyro`` goes
through ``pymc.sampling.jax``, chains in parallel over XLA host devices).

Run::

    python benchmarks/bench_nuts.py --repeat 3             # warm compile caches
    python benchmarks/bench_nuts.py --repeat 3 --cold      # empty PyTensor/numba/JAX cache per run
    python benchmarks/bench_nuts.py --chains 2 --ours auto --bambi nutpie
    python benchmarks/bench_nuts.py --case bern100k bern1m --bambi nutpie numpyro
    python benchmarks/bench_nuts.py --case toenail --draws 100 --tune 100   # smoke test
    python benchmarks/bench_nuts.py --grad                 # time of one log-density gradient
    python benchmarks/bench_nuts.py --case bern100k g50k --ours auto auto-random --bambi   # issue 19
    python benchmarks/bench_nuts.py --cold-start --repeat 5 [--before PATH ...] [--cold]   # whole processes

Each configuration runs in a fresh subprocess, and configurations are interleaved
within each repetition so that background load affects all alike (``--warm`` reuses
one process; its RSS is then that process's running peak).  PyTensor caches
numba-compiled ops on disk (``~/.pytensor``), which helps the graph-compiling samplers
(``nutpie``, bambi) from the second process on; ``--cold`` removes that advantage.
``sampler="native"`` (what ``auto`` picks here) compiles the C generated for the model's
structure with the system C compiler (about 0.5 s) into a cache folder: ``--cold`` points
every run (ours and bambi's) at an empty ``BAYES_GLMM_CACHE_DIR``, ``NUMBA_CACHE_DIR`` and
PyTensor compile directory, as on a freshly installed machine, and at an empty JAX persistent
compilation cache (``JAX_COMPILATION_CACHE_DIR``; JAX keeps none unless told to, so warm runs
of the JAX samplers compile anew in every process as well); without ``--cold`` our cache,
numba and PyTensor load from disk.  ``sampler="numpy"`` compiles nothing, so it is the same cold or warm,
but its chains share the GIL.

``--stan`` adds Stan as a peer (``nb400`` and ``toenail``; R with rstan): ``stan_peer.R`` runs
rstan on ``stan_peer.stan``, a Stan program of our model -- the same non-centred random
intercept, centred predictors and our resolved default priors, passed as data -- with the same
chains, warm-up, draws and seed.  Stan's compile time is reported apart (the compiled model is
cached in ``~/.cache/bayes_glmm_bench/stan``).  A second table compares sampling only: min bulk and
tail ESS over the same parameters (``beta`` with the intercept at x = 0, the SD, theta; ArviZ
for both), per CPU-second of the chains' sampling phase summed over chains (Stan 2.21 times each
chain's process with ``clock()``, ours each chain's thread: robust to background load), the
gradients per draw and the time per gradient.  Run::

    python benchmarks/bench_nuts.py --case nb400 toenail --ours auto --bambi --stan --chains 4 --repeat 3

``--cold-start`` times what a user waits for in a fresh process (a new kernel, a script run):
from the process's start to the returned result of ``import bayes_glmm`` + the first
``GLMM(...).sample()`` of toenail (``sampler="auto"``, 1000 + 1000 draws, ``--chains``, default 4,
the README's call), against ``import bambi`` + ``bambi.Model(...).fit(inference_method="numpyro")``
(imports of JAX and PyMC inside the timing: a user waits for them), interleaved, medians of
``--repeat`` rounds after one untimed round (which writes the byte-code cache, as an installed
package has it).  ``--before PATH [PATH ...]`` adds the same script run on other checkouts' bayes_glmm
(PATH on PYTHONPATH: the code before a change); ``--cold`` gives every process empty compile
caches (a new machine), otherwise our compiled model, numba's and PyTensor's caches are on disk
(a kernel restart).  Each child also reports its start-up, import and sampling times and
whether it imported PyMC.  Then the cost of ``import arviz`` in a fresh process (the results are an
ArviZ ``InferenceData``), with its largest parts, by ``python -X importtime``.

``--grad`` times one log-density + gradient evaluation (median over many calls, µs) on
``toenail`` and ``bern100k`` (or the ``--case`` list, if given): our NumPy density
(:class:`bayes_glmm.bayes.density.GlmmDensity`), our generated C
(:class:`bayes_glmm.bayes.native.NativeModel`), the jitted JAX ``value_and_grad`` of the
graph's log-density (what ``sampler="numpyro"`` and bambi's numpyro backend differentiate),
next to two floors no implementation can beat on this machine:

* memory bandwidth: the bytes one gradient must read (every runtime data array of the
  compiled model -- design, response, level codes, the per-row precomputed table -- once)
  over the read bandwidth measured here at that working-set size (the fastest ``np.max``
  over an array of as many bytes: cache bandwidth for toenail, memory bandwidth at 10^6 rows);
* transcendental: one ``exp`` and one ``log1p`` per row (what a logit Bernoulli row's
  log-density needs), timed as NumPy's vectorized ``np.exp`` + ``np.log1p`` over n values.

``x floor`` is the measured time over the larger of the two (>= 1 for an honest floor).
The earlier "arithmetic floor" (four unfused NumPy statements) was no floor: the fused C
ran at 0.11-0.57x of it.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FORMULA = "Response ~ Month * Treatment + (1 | ID)"
SIM_FORMULA = "y ~ x + z + (1 | g)"
SIM_SEED = 20261201
NB_FORMULA = "y ~ x + (1 | g)"

#: per case: formula, default tune/draws/chains, ESS variables for ours and for bambi
CASES = {
    "toenail": dict(formula=FORMULA, tune=1000, draws=1000, chains=[2, 4], n=1908, groups=294,
                    ours_vars=["beta", "sd_ID"],
                    bambi_vars=["Intercept", "Month", "Treatment", "Month:Treatment", "1|ID_sigma"]),
    "bern100k": dict(formula=SIM_FORMULA, tune=500, draws=500, chains=[2], n=100_000, groups=2_000,
                     ours_vars=["beta", "sd_g"], bambi_vars=["Intercept", "x", "z", "1|g_sigma"]),
    "bern1m": dict(formula=SIM_FORMULA, tune=500, draws=500, chains=[2], n=1_000_000, groups=10_000,
                   ours_vars=["beta", "sd_g"], bambi_vars=["Intercept", "x", "z", "1|g_sigma"]),
    # issue 19: 100k rows in 50,000 groups of 2 (fit_ml 2.8 s, sample() 811 s before the Laplace start)
    "g50k": dict(formula=SIM_FORMULA, tune=500, draws=500, chains=[2], n=100_000, groups=50_000,
                 ours_vars=["beta", "sd_g"], bambi_vars=["Intercept", "x", "z", "1|g_sigma"],
                 sample_kwargs={"store_effects": "float32"}),
    # issue 19: crossed 5,000 x 5,000 (bench_crossed's crossed_200k), sample()'s defaults; and a 10x smaller sibling
    "crossed200k": dict(formula="y ~ x + (1 | g) + (1 | h)", tune=1000, draws=1000, chains=[4], n=200_000,
                        groups=10_000, levels=5_000, ours_vars=["beta", "sd_g", "sd_h"],
                        bambi_vars=["Intercept", "x", "1|g_sigma", "1|h_sigma"],
                        sample_kwargs={"store_effects": "float32"}),
    "crossed20k": dict(formula="y ~ x + (1 | g) + (1 | h)", tune=1000, draws=1000, chains=[4], n=20_000,
                       groups=1_000, levels=500, ours_vars=["beta", "sd_g", "sd_h"],
                       bambi_vars=["Intercept", "x", "1|g_sigma", "1|h_sigma"],
                       sample_kwargs={"store_effects": "float32"}),
    # NB2 (issue 8): bambi's "negativebinomial" family (its alpha is our theta)
    "nb400": dict(formula=NB_FORMULA, tune=1000, draws=1000, chains=[4], n=400, groups=40,
                  family="negbinomial", bambi_family="negativebinomial",
                  ours_vars=["beta", "sd_g", "theta"], bambi_vars=["Intercept", "x", "1|g_sigma", "alpha"]),
    # the nb400 model at 10,000 rows x 200 groups (issue 19: the NB2 gradient per row)
    "nb10k": dict(formula=NB_FORMULA, tune=500, draws=500, chains=[2], n=10_000, groups=200,
                  family="negbinomial", bambi_family="negativebinomial",
                  ours_vars=["beta", "sd_g", "theta"], bambi_vars=["Intercept", "x", "1|g_sigma", "alpha"]),
    # hurdle NB2 (issue 18): bambi's "hurdle_negativebinomial" with a distributional psi formula
    "hnb400": dict(formula=NB_FORMULA, tune=1000, draws=1000, chains=[4], n=400, groups=40,
                   family="hurdle_negbinomial", ours_kwargs={"hu": "~ x"},
                   bambi_family="hurdle_negativebinomial", bambi_formula=(NB_FORMULA, "psi ~ x"),
                   ours_vars=["beta", "sd_g", "theta", "beta_hu"],
                   bambi_vars=["Intercept", "x", "1|g_sigma", "alpha", "psi_Intercept", "psi_x"]),
    "hp400": dict(formula=NB_FORMULA, tune=1000, draws=1000, chains=[4], n=400, groups=40,
                  family="hurdle_poisson", ours_kwargs={"hu": "~ x"},
                  bambi_family="hurdle_poisson", bambi_formula=(NB_FORMULA, "psi ~ x"),
                  ours_vars=["beta", "sd_g", "beta_hu"],
                  bambi_vars=["Intercept", "x", "1|g_sigma", "psi_Intercept", "psi_x"]),
}


def simulate(n: int, groups: int, seed: int = SIM_SEED):
    """Bernoulli/logit data for ``y ~ x + z + (1 | g)``: balanced groups, fixed seed."""
    import numpy as np
    import pandas as pd
    from scipy.special import expit

    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), -(-n // groups))[:n]
    x, z = rng.standard_normal(n), rng.standard_normal(n)
    b = 0.7 * rng.standard_normal(groups)
    eta = -0.5 + 0.8 * x - 0.4 * z + b[g]
    y = (rng.random(n) < expit(eta)).astype(np.int64)
    return pd.DataFrame({"y": y, "x": x, "z": z, "g": pd.Categorical(g)})


def simulate_nb(n: int, groups: int, seed: int = SIM_SEED):
    """NB2 data for ``y ~ x + (1 | g)``: intercept 1, slope 0.5, group SD 0.5, theta 2 (fixed seed)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), -(-n // groups))[:n]
    x = rng.standard_normal(n)
    mu = np.exp(1.0 + 0.5 * x + 0.5 * rng.standard_normal(groups)[g])
    y = rng.poisson(rng.gamma(2.0, mu / 2.0))
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})


def simulate_hurdle(n: int, groups: int, seed: int = SIM_SEED, theta: float | None = 2.0):
    """Hurdle data for ``y ~ x + (1 | g)``, ``hu = ~ x``: nb400's count part (Poisson where
    ``theta`` is None) truncated to y > 0 (SciPy's inverse CDF on the upper tail),
    P(y = 0) = expit(-0.5 + 0.8 x) (fixed seed)."""
    import numpy as np
    import pandas as pd
    from scipy import stats
    from scipy.special import expit

    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), -(-n // groups))[:n]
    x = rng.standard_normal(n)
    mu = np.exp(1.0 + 0.5 * x + 0.5 * rng.standard_normal(groups)[g])
    count = stats.poisson(mu) if theta is None else stats.nbinom(theta, theta / (theta + mu))
    y = np.maximum(count.isf(rng.random(n) * count.sf(0)), 1.0)
    y = np.where(rng.random(n) < expit(-0.5 + 0.8 * x), 0.0, y).astype(np.int64)
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})


def load_case(case: str):
    if case == "toenail":
        import bayes_glmm as bg
        return bg.datasets.load("toenail")
    c = CASES[case]
    if "levels" in c:  # crossed: bench_crossed's data (same seed)
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from bench_crossed import simulate_crossed
        return simulate_crossed(c["n"], c["levels"])
    if c.get("family") == "negbinomial":
        return simulate_nb(c["n"], c["groups"])
    if c.get("family") in ("hurdle_negbinomial", "hurdle_poisson"):
        return simulate_hurdle(c["n"], c["groups"], theta=2.0 if c["family"] == "hurdle_negbinomial" else None)
    return simulate(c["n"], c["groups"])


def _min_ess(idata, var_names):
    import arviz as az
    import numpy as np

    ess = az.ess(idata, var_names=var_names, method="bulk")
    rhat = az.rhat(idata, var_names=var_names) if idata.posterior.sizes["chain"] > 1 else None
    vals = np.concatenate([np.ravel(ess[v].values) for v in ess.data_vars])
    rh = (np.concatenate([np.ravel(rhat[v].values) for v in rhat.data_vars]) if rhat is not None
          else np.array([np.nan]))
    div = int(idata.sample_stats["diverging"].values.sum())
    return float(vals.min()), float(np.nanmax(rh)), div


def _rss():
    """Peak RSS (MiB) of this process and of the largest child it has waited for (Linux: KiB)."""
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0)


def run_ours(sampler: str, chains: int, seed: int, centered: bool | str = "auto", case: str = "toenail",
             draws: int | None = None, tune: int | None = None, init: str | None = None) -> dict:
    import bayes_glmm as bg
    # ArviZ outside the timing, as `import bambi` imports it: this row times the sample() call;
    # the native path no longer imports PyMC at all, and its fresh-process cost including every
    # import is the --cold-start measurement
    import arviz  # noqa: F401
    import bayes_glmm.bayes  # noqa: F401

    c = CASES[case]
    draws, tune = draws or c["draws"], tune or c["tune"]
    data = load_case(case)
    t0 = time.perf_counter()
    model = bg.GLMM(c["formula"], data, family=c.get("family", "bernoulli"), centered=centered,
                    **c.get("ours_kwargs", {}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = model.sample(draws=draws, tune=tune, chains=chains, random_seed=seed, sampler=sampler,
                           progressbar=False, **({} if init is None else {"init": init}),
                           **c.get("sample_kwargs", {}))
    wall = time.perf_counter() - t0
    ess, rhat, div = _min_ess(res.idata, c["ours_vars"])
    rss, wrk = _rss()
    out = {"wall": wall, "min_ess": ess, "max_rhat": rhat, "divergences": div,
           "sampler": res.idata.posterior.attrs.get("sampler"), "rss_mib": rss, "wrk_mib": wrk}
    st = res.idata.sample_stats
    if "sampling_seconds" in st.attrs:  # the native sampler times each chain (CPU seconds of its thread)
        out.update(warmup_s=float(sum(st.attrs["warmup_seconds"])), sample_s=float(sum(st.attrs["sampling_seconds"])),
                   min_tail_ess=_min_tail_ess(res.idata, c["ours_vars"]), n_leapfrog=int(st["n_steps"].values.sum()),
                   compile_s=0.0, steps=float(st["n_steps"].values.mean()), depth_mean=float(st["tree_depth"].values.mean()),
                   depth_max=float(st["tree_depth"].values.max()), init=str(res.idata.posterior.attrs.get("init")),
                   centered={k: (v if isinstance(v, str) else bool(v)) for k, v in model.centered_terms.items()},
                   load=os.getloadavg()[0])
    return out


def _min_tail_ess(idata, var_names):
    import arviz as az
    import numpy as np

    ess = az.ess(idata, var_names=var_names, method="tail")
    return float(np.concatenate([np.ravel(ess[v].values) for v in ess.data_vars]).min())


def run_bambi(backend: str, chains: int, seed: int, case: str = "toenail",
              draws: int | None = None, tune: int | None = None) -> dict:
    import bambi as bmb
    import nutpie  # noqa: F401
    if backend in ("numpyro", "blackjax"):  # import outside the timing, as nutpie above
        import jax  # noqa: F401
        import pymc.sampling.jax  # noqa: F401

    c = CASES[case]
    draws, tune = draws or c["draws"], tune or c["tune"]
    data = load_case(case)
    t0 = time.perf_counter()
    f = c.get("bambi_formula", c["formula"])
    model = bmb.Model(bmb.Formula(*f) if isinstance(f, tuple) else f, data, family=c.get("bambi_family", "bernoulli"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = model.fit(draws=draws, tune=tune, chains=chains, random_seed=seed,
                          inference_method=backend, progressbar=False)
    wall = time.perf_counter() - t0
    ess, rhat, div = _min_ess(idata, c["bambi_vars"])
    rss, wrk = _rss()
    return {"wall": wall, "min_ess": ess, "max_rhat": rhat, "divergences": div, "sampler": backend,
            "rss_mib": rss, "wrk_mib": wrk}


STAN_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stan_peer.R")
#: the compiled Stan model is kept here between runs (its compile time is reported apart)
STAN_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "bayes_glmm_bench", "stan")


def stan_data(case: str) -> dict:
    """The data of ``stan_peer.stan`` for ``case``: our design (the non-intercept columns
    centred at their means, as our density centres them), group codes and our resolved priors."""
    import numpy as np
    import bayes_glmm as bg

    c = CASES[case]
    fam = c.get("family", "bernoulli")
    if fam not in ("bernoulli", "negbinomial") or c.get("ours_kwargs"):
        raise ValueError(f"--stan: no Stan program for case {case!r} (bernoulli and negbinomial random intercepts)")
    m = bg.GLMM(c["formula"], load_case(case), family=fam)
    X = np.asarray(m.spec.X, dtype=float)
    names = list(m.spec.fixed_names)
    if names[0] not in ("Intercept", "(Intercept)") or len(m.spec.terms) != 1 or m.spec.terms[0].Xr.shape[1] != 1:
        raise ValueError(f"--stan: case {case!r} is not an intercept + (1 | g) model")
    pr = m.resolved_priors
    slopes = names[1:]
    for k in slopes:  # our prior keys are the column names
        if pr[k].name != "Normal" or pr[k].args["mu"] != 0:
            raise ValueError(f"--stan: prior of {k} is {pr[k]}, the Stan program has Normal(0, s)")
    term = m.spec.terms[0]
    sd_key, ip = f"sd_{term.name}", pr["Intercept"]
    if ip.name != "Normal" or pr[sd_key].name != "HalfNormal":
        raise ValueError("--stan: the Stan program has a Normal intercept and a HalfNormal SD prior")
    xm = X[:, 1:].mean(axis=0)
    d = dict(N=int(X.shape[0]), K=len(slopes), Xc=(X[:, 1:] - xm).tolist(), x_mean=xm.tolist(),
             J=int(term.n_levels), g=(np.asarray(term.codes) + 1).tolist(),
             y=np.asarray(m.spec.y).astype(int).tolist(), family=int(fam == "negbinomial"),
             int_mu=float(ip.args["mu"]), int_sigma=float(ip.args["sigma"]),
             slope_sigma=[float(pr[k].args["sigma"]) for k in slopes], sd_sigma=float(pr[sd_key].args["sigma"]),
             theta_alpha=0.5, theta_beta=0.5)
    if fam == "negbinomial":
        tp = pr["theta"]
        if tp.name != "InverseGamma":
            raise ValueError(f"--stan: theta prior {tp}, the Stan program has InverseGamma")
        d["theta_alpha"], d["theta_beta"] = float(tp.args["alpha"]), float(tp.args["beta"])
    return d


def run_stan(chains: int, seed: int, case: str = "toenail", draws: int | None = None,
             tune: int | None = None, cores: int | None = None) -> dict:
    """rstan on ``stan_peer.stan`` (``stan_peer.R``): our model and priors, Stan's NUTS."""
    import numpy as np
    import xarray as xr
    import arviz as az

    c = CASES[case]
    draws, tune = draws or c["draws"], tune or c["tune"]
    cores = min(chains, cores or os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="stan_peer_") as tmp:
        inp, out = os.path.join(tmp, "in.json"), os.path.join(tmp, "out.json")
        with open(inp, "w") as fh:
            json.dump(dict(data=stan_data(case), chains=chains, warmup=tune, draws=draws, seed=seed,
                           cores=cores, cache=STAN_CACHE), fh)
        t0 = time.perf_counter()
        p = subprocess.run(["Rscript", STAN_SCRIPT, inp, out], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise RuntimeError(f"stan_peer.R failed:\n{p.stderr[-3000:]}")
        with open(out) as fh:
            r = json.load(fh)
    post = {k: np.asarray(v, dtype=float).reshape(chains, draws) for k, v in r["draws"].items()}
    idata = az.InferenceData(posterior=xr.Dataset({k: (("chain", "draw"), v) for k, v in post.items()}),
                             sample_stats=xr.Dataset({"diverging": (("chain", "draw"), np.zeros((chains, draws)))}))
    ess, rhat, _ = _min_ess(idata, list(post))
    tail = _min_tail_ess(idata, list(post))
    return {"wall": r["wall_s"], "min_ess": ess, "min_tail_ess": tail, "max_rhat": rhat,
            "divergences": int(r["divergences"]), "sampler": f"rstan {r['versions']['rstan']}",
            "warmup_s": float(np.sum(r["warmup_s"])), "sample_s": float(np.sum(r["sample_s"])),
            "compile_s": float(r["compile_s"]), "n_leapfrog": int(r["n_leapfrog"]),
            "r_process_s": wall, "rss_mib": 0.0, "wrk_mib": 0.0}


def _run(job: dict) -> dict:
    kw = dict(case=job["case"], draws=job["draws"], tune=job["tune"])
    if job["kind"] == "ours":
        return run_ours(job["name"], job["chains"], job["seed"], centered=job.get("centered", "auto"), init=job.get("init"), **kw)
    if job["kind"] == "stan":
        return run_stan(job["chains"], job["seed"], **kw)
    return run_bambi(job["name"], job["chains"], job["seed"], **kw)


def _child(job: dict, cold: bool = False, script: str = __file__) -> dict:
    """Run ``job`` in a fresh ``script --child JSON`` process (bench_families.py passes itself)."""
    cmd = [sys.executable, script, "--child", json.dumps(job)]
    env = dict(os.environ)
    tmp = tempfile.mkdtemp(prefix="bench_nuts_") if cold else None
    if tmp:
        _empty_caches(env, tmp)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    for line in out.stdout.splitlines()[::-1]:
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{job['kind']} {job['name']} ({job['case']}) failed:\n{out.stderr[-3000:]}")


def _empty_caches(env: dict, tmp: str) -> None:
    """Point ``env`` at empty compile caches under ``tmp``, as on a freshly installed machine."""
    # an empty PyTensor compile cache (numba/C) for this process only
    flags = env.get("PYTENSOR_FLAGS", "")
    env["PYTENSOR_FLAGS"] = (flags + "," if flags else "") + f"base_compiledir={tmp}"
    # and an empty numba cache for BOTH packages, as on a fresh machine: every numba
    # function the libraries cache on disk (arviz, PyTensor) is compiled anew
    env["NUMBA_CACHE_DIR"] = os.path.join(tmp, "numba")
    # and an empty JAX persistent compilation cache (numpyro backends)
    env["JAX_COMPILATION_CACHE_DIR"] = os.path.join(tmp, "jax")
    # and an empty cache of our compiled native models (sampler="native")
    env["BAYES_GLMM_CACHE_DIR"] = os.path.join(tmp, "bayes_glmm")


_HDR = (f"{'case':9s} {'package':10s} {'config':22s} {'chains':>6s} {'wall s':>8s} {'minESS':>8s} "
        f"{'ESS/s':>8s} {'div':>4s} {'maxRhat':>8s} {'rss MiB':>8s} {'wrk MiB':>8s}")


def _row(case, pkg, cfg, chains, r, ess_s=None):
    ess_s = r["min_ess"] / r["wall"] if ess_s is None else ess_s
    return (f"{case:9s} {pkg:10s} {cfg:22s} {chains:6d} {r['wall']:8.1f} {r['min_ess']:8.0f} "
            f"{ess_s:8.1f} {r['divergences']:4.0f} {r['max_rhat']:8.4f} {r['rss_mib']:8.0f} {r['wrk_mib']:8.0f}")


# --------------------------------------------------------------------------- --grad
def _time_call(fn, min_calls=20, max_calls=5000, budget=1.0):
    """Median wall time of one call to fn, in µs (fn called once before, to compile/warm)."""
    fn()
    t0 = time.perf_counter()
    for _ in range(5):
        fn()
    one = max((time.perf_counter() - t0) / 5, 1e-7)
    calls = int(min(max_calls, max(min_calls, budget / one)))
    ts = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 1e6 * statistics.median(ts), calls


def read_bandwidth(nbytes: int, repeat: int = 50) -> float:
    """Read bandwidth (bytes/s) at a working set of ``nbytes``: the fastest of ``repeat``
    ``np.max`` over a float64 array of that size (NumPy's SIMD reduction, the fastest read
    NumPy offers: 1.6x ``np.sum``).  Repeated over the same array, a working set that fits
    in a cache is read at that cache's bandwidth, as the gradient's own data are."""
    import numpy as np

    a = np.ones(max(int(nbytes) // 8, 1024))
    a.max()
    best = min(_timed(a.max) for _ in range(repeat))
    return a.nbytes / best


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def grad_bench(cases) -> None:
    import numpy as np
    import jax
    jax.config.update("jax_enable_x64", True)
    from pymc.sampling.jax import get_jaxified_graph
    import bayes_glmm as bg
    from bayes_glmm.bayes.density import GlmmDensity
    from bayes_glmm.bayes.native import NativeModel

    print(f"per-gradient time (log-density + gradient, median over many calls), µs; "
          f"jax {jax.__version__} on {jax.default_backend()}, {os.cpu_count()} CPU(s) "
          f"(NumPy BLAS and XLA may use several threads, the native C one; 'native' is timed through "
          f"ctypes, a few µs more than inside the sampler)\n")
    print(f"{'case':9s} {'n':>9s} {'p':>3s} {'groups':>7s} {'ndim':>7s}  {'method':34s} {'µs':>10s} "
          f"{'x floor':>8s} {'calls':>6s}")
    for case in cases:
        c = CASES[case]
        m = bg.GLMM(c["formula"], load_case(case), family=c.get("family", "bernoulli"), **c.get("ours_kwargs", {}))
        d = GlmmDensity(m.spec, m.resolved_priors, m.centered_terms)
        x = d.initial_point(0)
        nat = NativeModel(d)
        # the JAX log-density of the graph, jitted value_and_grad at the graph's initial point
        pm_model = m.build()
        f = get_jaxified_graph(inputs=pm_model.value_vars, outputs=[pm_model.logp()])
        ip = pm_model.initial_point()
        vals = [jax.numpy.asarray(ip[v.name]) for v in pm_model.value_vars]
        vg = jax.jit(jax.value_and_grad(lambda *v: f(*v)[0], argnums=tuple(range(len(vals)))))
        G = m.spec.terms[0].n_levels
        res = {"numpy GlmmDensity.logp_grad": _time_call(lambda: d.logp_grad(x))}
        lp_np, g_np = d.logp_grad(x)
        lp_c, g_c = nat.logp_grad(x)
        assert np.isclose(lp_np, lp_c) and np.allclose(g_np, g_c), "native C != NumPy density"
        res["native C (generated)"] = _time_call(lambda: nat.logp_grad(x))
        res["jax jit(value_and_grad(graph))"] = _time_call(lambda: jax.block_until_ready(vg(*vals)))
        # the floors: bytes every gradient must read / read bandwidth; exp + log1p per row
        nbytes = sum(a.nbytes for a in nat._arrays.items) + nat._PC.nbytes
        bandwidth = read_bandwidth(nbytes)
        res["floor: memory bandwidth"] = (1e6 * nbytes / bandwidth, 0)
        v = np.random.default_rng(0).standard_normal(m.spec.n)
        res["floor: exp + log1p per row (numpy)"] = _time_call(lambda: np.log1p(np.exp(v)))
        fl = max(res["floor: memory bandwidth"][0], res["floor: exp + log1p per row (numpy)"][0])
        for k, (us, calls) in res.items():
            print(f"{case:9s} {m.spec.n:9d} {m.spec.p:3d} {G:7d} {d.ndim:7d}  {k:34s} {us:10.1f} "
                  f"{us / fl:8.2f} {calls:6d}", flush=True)
        print(f"{'':9s} bytes read per gradient {nbytes / 2**20:.2f} MiB; read bandwidth {bandwidth / 1e9:.1f} GB/s\n")


def _stan_table(med, cases, chains_of, ref, a) -> None:
    """Sampling-only comparison with Stan (medians): time is the CPU seconds of the chains (summed
    over chains; Stan 2.21 times each chain's process with clock(), ours each chain's thread), so
    background load moves both little; Stan's compile time apart."""
    print("\nsampling only (medians; s = CPU seconds summed over chains; ESS/s = min ESS per sampling second; "
          "compile s: Stan's stan_model() wall seconds when its cached model was compiled -- ours: "
          "C model cache warm, about 0.5 s cold, see --cold)")
    print(f"{'case':9s} {'config':16s} {'chains':>6s} {'warmup s':>9s} {'sample s':>9s} {'bulkESS':>8s} "
          f"{'tailESS':>8s} {'bulk/s':>8s} {'tail/s':>8s} {'grad/draw':>9s} {'us/grad':>8s} {'compile s':>9s}")
    for case in cases:
        for chains in chains_of[case]:
            draws = (a.draws or CASES[case]["draws"]) * chains
            rows = [(f"bayes_glmm {ref}", med.get((case, "bayes_glmm", ref, chains))),
                    ("Stan rstan", med.get((case, "Stan", "rstan", chains)))]
            for name, m in rows:
                if m and "sample_s" in m:
                    comp = f"{m['compile_s']:9.1f}" if name.startswith("Stan") else f"{'-':>9s}"
                    print(f"{case:9s} {name:16s} {chains:6d} {m['warmup_s']:9.2f} {m['sample_s']:9.2f} "
                          f"{m['min_ess']:8.0f} {m['min_tail_ess']:8.0f} {m['bulk_s']:8.0f} {m['tail_s']:8.0f} "
                          f"{m['n_leapfrog'] / draws:9.1f} {m['us_grad']:8.1f} {comp}")
            (_, o), (_, t) = rows
            if o and t and "sample_s" in o and "sample_s" in t:
                print(f"{case} {chains} chains: bayes_glmm {ref} / Stan, sampling-only bulk-ESS/s "
                      f"{o['bulk_s'] / t['bulk_s']:.2f}x, tail-ESS/s {o['tail_s'] / t['tail_s']:.2f}x, "
                      f"bulk ESS per draw {o['min_ess'] / t['min_ess']:.2f}x, gradient time "
                      f"{t['us_grad'] / o['us_grad']:.2f}x (Stan / ours), warm-up {t['warmup_s'] / o['warmup_s']:.2f}x")


# --------------------------------------------------------------------------- --cold-start
#: a fresh process: its first line stamps the clock, the result is stamped as soon as it is returned
#: (the ESS computed after that, untimed); argv[1] = JSON {chains, seed, draws, tune}
_COLD_OURS = """
import time; t0 = time.time()
import json, sys, warnings
a = json.loads(sys.argv[1])
import bayes_glmm as bg
t1 = time.time()
toenail = bg.datasets.load("toenail")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    post = bg.GLMM("Response ~ Month * Treatment + (1 | ID)", toenail, family="bernoulli").sample(
        draws=a["draws"], tune=a["tune"], chains=a["chains"], random_seed=a["seed"], progressbar=False)
t2 = time.time()
heavy = [m for m in ("pymc", "pytensor", "arviz", "numba", "jax") if m in sys.modules]
import arviz as az
ess = az.ess(post.idata, var_names=["beta", "sd_ID"], method="bulk")
print("RESULT " + json.dumps({"t_start": t0, "t_import": t1, "t_result": t2, "heavy": heavy,
      "sampler": post.idata.posterior.attrs["sampler"],
      "min_ess": float(min(float(ess[v].min()) for v in ess.data_vars))}))
"""
_COLD_BAMBI = """
import time; t0 = time.time()
import json, sys, warnings
a = json.loads(sys.argv[1])
import bambi as bmb
t1 = time.time()
import bayes_glmm as bg  # the data only (untimed: bambi users load theirs too; ~0.5 s)
toenail = bg.datasets.load("toenail")
tl = time.time()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    idata = bmb.Model("Response ~ Month * Treatment + (1 | ID)", toenail, family="bernoulli").fit(
        draws=a["draws"], tune=a["tune"], chains=a["chains"], random_seed=a["seed"],
        inference_method="numpyro", progressbar=False)
t2 = time.time() - (tl - t1)
import arviz as az
ess = az.ess(idata, var_names=["Intercept", "Month", "Treatment", "Month:Treatment", "1|ID_sigma"], method="bulk")
print("RESULT " + json.dumps({"t_start": t0, "t_import": t1, "t_result": t2, "heavy": [], "sampler": "numpyro",
      "min_ess": float(min(float(ess[v].min()) for v in ess.data_vars))}))
"""


def cold_start(chains_list, repeats: int, seed: int, draws: int, tune: int, before: list | None,
               cold: bool, bambi: bool = True) -> dict:
    """Whole-process times, spawn to returned result: ``import bayes_glmm`` + the first
    ``sample()`` of toenail, the same on each ``before`` checkout, ``import bambi`` + its numpyro
    fit; interleaved (the order rotates every round), medians over ``repeats`` rounds."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    pyc = tempfile.mkdtemp(prefix="bench_nuts_pyc_")  # byte code, written by the untimed round
    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    base["PYTHONPYCACHEPREFIX"] = pyc
    cmds = [("python: interpreter only", ["-c", "pass"], root),
            ("bayes_glmm: import only", ["-c", "import bayes_glmm"], root)]
    for chains in chains_list:
        cmds.append((f"bayes_glmm: import + sample(), {chains} chains", ["-c", _COLD_OURS], root, chains))
        for tree in before or ():
            cmds.append((f"bayes_glmm before ({os.path.basename(os.path.normpath(tree))}): import + sample(), "
                         f"{chains} chains", ["-c", _COLD_OURS], tree, chains))
        if bambi:
            cmds.append((f"bambi+numpyro: import + fit, {chains} chains", ["-c", _COLD_BAMBI], root, chains))
    times = {c[0]: [] for c in cmds}
    info = {c[0]: [] for c in cmds}
    print(f"\n== cold start: fresh processes, toenail {FORMULA} (bernoulli), {tune} tune + {draws} draws; "
          f"{'EMPTY compile caches (new machine)' if cold else 'compile caches on disk (kernel restart)'}; "
          f"spawn -> returned result, median of {repeats} interleaved rounds after one untimed round\n")
    try:
        for i in range(repeats + 1):
            k = i % len(cmds)
            for cmd in cmds[k:] + cmds[:k]:  # rotate the order: no command always runs first
                lab, argv, tree = cmd[:3]
                env = dict(base, PYTHONPATH=os.pathsep.join([tree, os.environ.get("PYTHONPATH", "")]))
                tmp = tempfile.mkdtemp(prefix="bench_nuts_cold_") if cold else None
                if tmp:
                    _empty_caches(env, tmp)
                if len(cmd) > 3:
                    argv = argv + [json.dumps(dict(chains=cmd[3], seed=seed + i, draws=draws, tune=tune))]
                try:
                    t_spawn = time.time()
                    run = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env,
                                         cwd=tempfile.gettempdir())
                    t_exit = time.time()
                finally:
                    if tmp:
                        shutil.rmtree(tmp, ignore_errors=True)
                if run.returncode != 0:
                    raise RuntimeError(f"{lab} failed:\n{run.stderr[-3000:]}")
                res = next((json.loads(ln[7:]) for ln in run.stdout.splitlines()[::-1] if ln.startswith("RESULT ")),
                           None)
                if not i:
                    continue
                if res is None:
                    times[lab].append(t_exit - t_spawn)
                    continue
                times[lab].append(res["t_result"] - t_spawn)
                info[lab].append(dict(res, startup=res["t_start"] - t_spawn, imp=res["t_import"] - res["t_start"],
                                      fit=res["t_result"] - res["t_import"]))
                print(f"  round {i} {lab:48s} {times[lab][-1]:6.2f} s", flush=True)
    finally:
        shutil.rmtree(pyc, ignore_errors=True)
    out = {}
    print(f"\n{'command':50s} {'median s':>8s}  {'start':>6s} {'import':>6s} {'fit':>6s} {'minESS':>7s}  "
          f"{'ESS/s':>6s}  runs / imported")
    for lab, ts in times.items():
        med = statistics.median(ts)
        row = {"median_s": med, "times_s": ts}
        extra = ""
        if info[lab]:
            mi = {k: statistics.median(r[k] for r in info[lab]) for k in ("startup", "imp", "fit", "min_ess")}
            row.update(mi, heavy=info[lab][-1]["heavy"], sampler=info[lab][-1]["sampler"],
                       ess_s=statistics.median(r["min_ess"] / t for r, t in zip(info[lab], ts)))
            extra = (f"  {mi['startup']:6.2f} {mi['imp']:6.2f} {mi['fit']:6.2f} {mi['min_ess']:7.0f}  "
                     f"{row['ess_s']:6.1f}")
        else:
            extra = " " * 37
        print(f"{lab:50s} {med:8.2f}{extra}  {', '.join(f'{t:.2f}' for t in ts)}"
              + (f" / {row['sampler']}: {','.join(row['heavy'])}" if info[lab] else ""))
        out[lab] = row
    print()
    for chains in chains_list:
        ours = out.get(f"bayes_glmm: import + sample(), {chains} chains")
        for lab in [k for k in out if k.startswith(("bayes_glmm before", "bambi+numpyro"))
                    and k.endswith(f", {chains} chains")]:
            other = lab.split(":")[0]
            if ours:
                o = out[lab]
                # the rounds interleave: the ratio within each round is the load-robust figure
                paired = statistics.median(a / b for a, b in zip(o["times_s"], ours["times_s"]))
                print(f"{chains} chains: {other} / bayes_glmm: wall {o['median_s'] / ours['median_s']:.2f}x "
                      f"({o['median_s']:.2f} s / {ours['median_s']:.2f} s; median of the rounds' ratios "
                      f"{paired:.2f}x); min-ESS/s ours / theirs {ours['ess_s'] / o['ess_s']:.2f}x")
                out[f"ratio {other} / bayes_glmm, {chains} chains"] = {"medians": o["median_s"] / ours["median_s"],
                                                                       "paired": paired}
    return out


def arviz_import_cost(repeats: int) -> dict:
    """``python -X importtime`` of ``import arviz`` in fresh processes, after what a native
    ``sample()`` imports before it: the total and its largest parts (medians, s)."""
    import re

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    pre = "import bayes_glmm, pandas, scipy.sparse, scipy.special; import bayes_glmm.bayes.native"
    parts = {"arviz": "import arviz (total)",
             "arviz.stats.ecdf_utils": "numba compile of a ufunc at import (arviz.stats.ecdf_utils, self)",
             "arviz.preview": "arviz.preview (arviz_base, arviz_stats)", "matplotlib": "matplotlib",
             "xarray": "xarray"}
    rows = []
    for _ in range(repeats):
        run = subprocess.run([sys.executable, "-X", "importtime", "-c", pre + "\nimport arviz"], capture_output=True,
                             text=True, env=dict(os.environ, PYTHONPATH=root), cwd=tempfile.gettempdir())
        tab = {}
        for ln in run.stderr.splitlines():
            m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)", ln)
            if m:
                tab[m.group(3)] = (int(m.group(1)) / 1e6, int(m.group(2)) / 1e6)
        rows.append({k: tab[k][0 if k == "arviz.stats.ecdf_utils" else 1] for k in parts if k in tab})
    print(f"\n== import arviz in a fresh process after {pre!r}: python -X importtime (inflates), "
          f"median of {repeats}; load average {os.getloadavg()[0]:.1f}")
    out = {}
    for k, lab in parts.items():
        v = [r[k] for r in rows if k in r]
        if v:
            out[lab] = statistics.median(v)
            print(f"  {lab:68s} {out[lab]:6.2f} s  ({', '.join(f'{x:.2f}' for x in v)})")
    return out


# --------------------------------------------------------------------------- main
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("--case", nargs="+", choices=list(CASES), default=None,
                    help="data sets (default: toenail; with --grad: toenail bern100k)")
    ap.add_argument("--chains", type=int, nargs="+", default=None,
                    help="chain counts (default per case: toenail 2 4, bern100k/bern1m 2)")
    ap.add_argument("--ours", nargs="*", default=["auto", "numpyro"],
                    help="bayes_glmm configurations: auto, native, numpy, nutpie, pymc, numpyro, "
                         "with optional '-centered' or '-noncentred' (default: centered='auto')")
    ap.add_argument("--bambi", nargs="*", default=["nutpie", "pymc", "numpyro"],
                    help="bambi backends (inference_method); none: bare --bambi")
    ap.add_argument("--draws", type=int, default=None, help="override the case's draws (smoke tests)")
    ap.add_argument("--tune", type=int, default=None, help="override the case's tuning steps (smoke tests)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1, help="repetitions (seeds seed, seed+1, ...); medians")
    ap.add_argument("--cold", action="store_true",
                    help="every run starts with an empty PyTensor/numba/JAX compile cache")
    ap.add_argument("--warm", action="store_true", help="run everything in this process")
    ap.add_argument("--grad", action="store_true", help="time one gradient evaluation per method instead")
    ap.add_argument("--stan", action="store_true",
                    help="add Stan (rstan, benchmarks/stan_peer.R) as a peer: our model and priors in Stan; "
                         "prints sampling-only ESS/s (per CPU-second of the chains) next to ours")
    ap.add_argument("--cold-start", action="store_true",
                    help="whole fresh processes: import bayes_glmm + first sample() vs import bambi + fit (numpyro)")
    ap.add_argument("--before", nargs="+", help="with --cold-start: other checkouts whose bayes_glmm is timed too")
    ap.add_argument("--json", help="with --cold-start: also write the results here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print("RESULT " + json.dumps(_run(json.loads(a.child))))
        return
    if a.cold_start:
        import platform
        print(f"python {sys.version.split()[0]}; {platform.machine()}, {os.cpu_count()} CPU(s); "
              f"load average {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
        res = cold_start(a.chains or [4], a.repeat, a.seed, a.draws or 1000, a.tune or 1000, a.before, a.cold,
                         bambi=bool(a.bambi))
        res["arviz_import"] = arviz_import_cost(a.repeat)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(res, f, indent=2)
        return
    if a.grad:
        grad_bench(a.case or ["toenail", "bern100k"])
        return
    cases = a.case or ["toenail"]
    if a.warm:
        runner = _run
    else:
        def runner(job):
            return _child(job, cold=a.cold)
    cfgs = [("bayes_glmm", c) for c in a.ours] + [("bambi", b) for b in a.bambi] + ([("Stan", "rstan")] if a.stan else [])
    chains_of = {case: a.chains or CASES[case]["chains"] for case in cases}
    for case in cases:
        c = CASES[case]
        print(f"{case}: {c['formula']} ({c.get('family', 'bernoulli')}), {c['n']:,} rows x {c['groups']:,} groups, "
              f"{a.tune or c['tune']} tune + {a.draws or c['draws']} draws, chains {chains_of[case]}")
    print(f"{'cold' if a.cold else 'warm'} compile cache, {a.repeat} repetition(s), runs interleaved\n")
    print(_HDR)
    rows, failed = {}, []
    for rep in range(a.repeat):
        for case in cases:
            for chains in chains_of[case]:
                for pkg, cfg in cfgs:
                    init = next((i for i in ("laplace", "random") if f"-{i}" in cfg), None)
                    name = cfg.replace("-centered", "").replace("-noncentred", "").replace(f"-{init}", "")
                    # the model's default unless asked: "auto" is what a user gets
                    centered = True if "-centered" in cfg else (False if "-noncentred" in cfg else "auto")
                    job = dict(kind={"bayes_glmm": "ours", "Stan": "stan"}.get(pkg, "bambi"), name=name, chains=chains,
                               seed=a.seed + rep, centered=centered, case=case, draws=a.draws, tune=a.tune,
                               init=init)
                    try:
                        r = runner(job)
                    except Exception as e:  # report and go on: one failing backend must not end the run
                        failed.append((case, pkg, cfg, chains, str(e)))
                        print(f"{case:9s} {pkg:10s} {cfg:22s} {chains:6d}   FAILED: "
                              f"{str(e).strip().splitlines()[-1][:120]}", flush=True)
                        continue
                    rows.setdefault((case, pkg, cfg, chains), []).append(r)
                    print(_row(case, pkg, f"{cfg} ({r['sampler']})", chains, r), flush=True)
                    if "depth_mean" in r:  # the native sampler: its chains' CPU seconds (robust to load), trees
                        print(f"{'':10s}native: CPU s warm-up {r['warmup_s']:.1f} + draws {r['sample_s']:.1f} (sum over "
                              f"chains), {r['steps']:.1f} gradients/iteration, tree depth mean {r['depth_mean']:.2f} "
                              f"max {r['depth_max']:.0f}; init {r['init']}, centred {r['centered']}; load average "
                              f"{r['load']:.1f}", flush=True)
    med = {}
    for key, rs in rows.items():
        med[key] = {k: float(statistics.median(r[k] for r in rs))
                    for k in ("wall", "min_ess", "divergences", "max_rhat", "rss_mib", "wrk_mib")}
        med[key]["ess_s"] = float(statistics.median(r["min_ess"] / r["wall"] for r in rs))
        if all("sample_s" in r for r in rs):  # sampling-only figures (native sampler, Stan)
            for k in ("warmup_s", "sample_s", "min_tail_ess", "n_leapfrog"):
                med[key][k] = float(statistics.median(r[k] for r in rs))
            med[key]["compile_s"] = max(r["compile_s"] for r in rs)
            med[key]["bulk_s"] = float(statistics.median(r["min_ess"] / r["sample_s"] for r in rs))
            med[key]["tail_s"] = float(statistics.median(r["min_tail_ess"] / r["sample_s"] for r in rs))
            med[key]["us_grad"] = float(statistics.median(1e6 * r["sample_s"] / r["n_leapfrog"] for r in rs))
    print("\nmedians")
    print(_HDR)
    order = {case: i for i, case in enumerate(cases)}
    for (case, pkg, cfg, chains), m in sorted(med.items(), key=lambda kv: (order[kv[0][0]], kv[0][3],
                                                                              kv[0][1] != "bayes_glmm")):
        print(_row(case, pkg, cfg, chains, m, ess_s=m["ess_s"]))
    print()
    ref = "auto" if "auto" in a.ours else (a.ours[0] if a.ours else None)
    for case in cases:
        for chains in chains_of[case]:
            ours = med.get((case, "bayes_glmm", ref, chains))
            theirs = [(cf, m) for (ca, p, cf, ch), m in med.items() if ca == case and p == "bambi" and ch == chains]
            if not ours or not theirs:
                continue
            best_c, best = max(theirs, key=lambda cm: cm[1]["ess_s"])
            print(f"{case} {chains} chains: bayes_glmm {ref} vs bambi {best_c} (fastest bambi backend, "
                  f"of {', '.join(cf for cf, _ in theirs)}): min-ESS/s ratio {ours['ess_s'] / best['ess_s']:.2f}x, "
                  f"wall-time ratio {best['wall'] / ours['wall']:.2f}x (bambi / ours)")
    if a.stan:
        _stan_table(med, cases, chains_of, ref, a)
    for case, pkg, cfg, chains, err in failed:
        print(f"\nFAILED {case} {pkg} {cfg} {chains} chains:\n{err[-1500:]}")


if __name__ == "__main__":
    main()

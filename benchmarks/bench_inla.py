"""fit_inla against NUTS: accuracy on eight models, and speed (issue 19, items 1-3).

Accuracy (``--accuracy``): simulated Bernoulli with many small groups, Poisson with a
correlated random slope, NB2 with a random intercept, a crossed Gaussian model, and ordinal
models (clmm's wine data and the simulated random-slope data of tests/reference, logit and
probit: ``--cases ordinal_wine_logit ordinal_wine_probit ordinal_slope_logit ordinal_slope_probit``); each
fitted by ``sample()`` (native NUTS, 4 x (1000 + 1000)) and ``fit_inla()`` with the same default
priors.  Per fixed effect and ordinal threshold: |mean difference| in NUTS posterior SDs (target
<= 0.2) and the SD ratio (target within 15%); per random-effect SD: the 10/50/90% quantiles'
differences in NUTS posterior SDs (target <= 0.25).  The dispersion parameters are shown too.

Speed (``--speed``): 1e5 rows (Bernoulli, 1,000 groups): fit_inla's wall time against
``sample()`` with 2 x (500 + 500), same process; 1e6 rows x 1e4 groups (Bernoulli and Poisson
random intercept): fit_inla's wall time on one core (BLAS threads 1) and peak memory.

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/bench_inla.py --accuracy
    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/bench_inla.py --speed
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import bayes_glmm as bg  # noqa: E402
from bayes_glmm.inla.coords import in_ordered_chain  # noqa: E402

QUANTS = (0.1, 0.5, 0.9)
TARGETS = {"mean": 0.2, "sd_ratio": 0.15, "quantile": 0.25}


# ----------------------------------------------------------------------------- the models
def bernoulli_small_groups(seed=1, n_groups=400, per=8):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    x = rng.normal(size=g.size)
    eta = -0.5 + 0.7 * x + rng.normal(0, 1.0, n_groups)[g]
    y = (rng.random(g.size) < 1 / (1 + np.exp(-eta))).astype(int)
    return bg.GLMM("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": g}), family="bernoulli")


def poisson_slope(seed=2, n_groups=60, per=10):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    x = rng.uniform(-1, 1, g.size)
    L = np.linalg.cholesky(np.array([[0.5 ** 2, 0.5 * 0.3 * 0.4], [0.5 * 0.3 * 0.4, 0.3 ** 2]]))
    b = rng.normal(size=(n_groups, 2)) @ L.T
    eta = 1.0 + 0.4 * x + b[g, 0] + b[g, 1] * x
    y = rng.poisson(np.exp(eta))
    return bg.GLMM("y ~ x + (1 + x | g)", pd.DataFrame({"y": y, "x": x, "g": g}), family="poisson")


def nb2(seed=3, n_groups=50, per=8):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    x = rng.normal(size=g.size)
    mu = np.exp(1.0 + 0.3 * x + rng.normal(0, 0.5, n_groups)[g])
    theta = 2.0
    y = rng.negative_binomial(theta, theta / (theta + mu))
    return bg.GLMM("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": g}), family="negbinomial")


def crossed_gaussian(seed=4, n_a=25, n_b=15, reps=2):
    rng = np.random.default_rng(seed)
    a = np.repeat(np.arange(n_a), n_b * reps)
    b = np.tile(np.repeat(np.arange(n_b), reps), n_a)
    x = rng.normal(size=a.size)
    y = 2.0 + 0.5 * x + rng.normal(0, 0.8, n_a)[a] + rng.normal(0, 0.5, n_b)[b] + rng.normal(0, 1.0, a.size)
    return bg.GLMM("y ~ x + (1 | a) + (1 | b)", pd.DataFrame({"y": y, "x": x, "a": a, "b": b}))


REF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference")


def _ordinal_csv(name, levels=None):
    """A clmm reference data set of tests/reference as the ordinal tests read it: the response an
    ordered Categorical, grouping columns text."""
    d = pd.read_csv(os.path.join(REF, name))
    resp = d.columns[0]
    d[resp] = pd.Categorical(d[resp], categories=levels or sorted(d[resp].unique()), ordered=True)
    for c in d.columns[1:]:
        if d[c].dtype == object or c in ("judge", "g"):
            d[c] = d[c].astype(str)
    return d


def ordinal_wine(link="logit"):
    """clmm's wine data (72 ratings by 9 judges): ``rating ~ temp + contact + (1 | judge)``."""
    return bg.GLMM("rating ~ temp + contact + (1 | judge)", _ordinal_csv("ordinal_wine.csv"),
                   family="ordinal", link=link)


def ordinal_slope(link="logit"):
    """The simulated random-slope ordinal data of make_reference_ordinal.R (600 rows, 40 groups,
    four categories low < mid < high < top): ``y ~ x + (1 + x | g)``."""
    import json

    with open(os.path.join(REF, "ordinal_reference.json")) as f:
        levels = json.load(f)["slope_levels"]
    return bg.GLMM("y ~ x + (1 + x | g)", _ordinal_csv("ordinal_slope.csv", levels), family="ordinal", link=link)


CASES = {"bernoulli_small_groups": bernoulli_small_groups, "poisson_corr_slope": poisson_slope,
         "nb2": nb2, "crossed_gaussian": crossed_gaussian,
         "ordinal_wine_logit": ordinal_wine, "ordinal_wine_probit": lambda: ordinal_wine("probit"),
         "ordinal_slope_logit": ordinal_slope, "ordinal_slope_probit": lambda: ordinal_slope("probit")}
#: the ordinal cases (thresholds compared as the fixed effects are)
ORDINAL_CASES = ["ordinal_wine_logit", "ordinal_wine_probit", "ordinal_slope_logit", "ordinal_slope_probit"]


# ----------------------------------------------------------------------------- accuracy
def _flat(idata, name):
    a = np.asarray(idata.posterior[name])
    return a.reshape(a.shape[0] * a.shape[1], -1)


def accuracy_rows(model, approx, nuts) -> list:
    """One row per parameter: the differences of ``approx`` from ``nuts`` in NUTS posterior SDs."""
    rows = []
    A, N = approx.idata, nuts.idata
    fa, fn = _flat(A, "beta"), _flat(N, "beta")
    for j, nm in enumerate(model.spec.fixed_names):
        s = fn[:, j].std(ddof=1)
        rows.append({"param": nm, "kind": "fixed", "nuts_mean": fn[:, j].mean(), "inla_mean": fa[:, j].mean(),
                     "mean_diff_sd": abs(fa[:, j].mean() - fn[:, j].mean()) / s,
                     "sd_ratio": fa[:, j].std(ddof=1) / s})
    extra = [(f"sd_{t.ident}", list(t.coef_names)) for t in model.spec.terms]
    params = model.spec.family.aux_params
    extra += [(a.name, [a.name]) for a in params]
    chained = {a.name for i, a in enumerate(params) if in_ordered_chain(params, i)}
    for var, labels in extra:
        if var not in N.posterior:
            continue
        xa, xn = _flat(A, var), _flat(N, var)
        for j, lab in enumerate(labels):
            s = xn[:, j].std(ddof=1)
            qa, qn = np.quantile(xa[:, j], QUANTS), np.quantile(xn[:, j], QUANTS)
            row = {"param": f"{var}[{lab}]" if var.startswith("sd_") else var,
                   "kind": "sd" if var.startswith("sd_") else "threshold" if var in chained else "aux",
                   "nuts_mean": xn[:, j].mean(), "inla_mean": xa[:, j].mean(),
                   "mean_diff_sd": abs(xa[:, j].mean() - xn[:, j].mean()) / s, "sd_ratio": xa[:, j].std(ddof=1) / s}
            for q, a_, n_ in zip(QUANTS, qa, qn):
                row[f"q{int(q * 100)}_diff_sd"] = abs(a_ - n_) / s
            rows.append(row)
    return rows


def check_targets(rows) -> list:
    """The rows that miss a target (fixed effects and ordinal thresholds: mean and SD; random-effect
    SDs: quantiles)."""
    bad = []
    for r in rows:
        if r["kind"] in ("fixed", "threshold") and (r["mean_diff_sd"] > TARGETS["mean"]
                                                    or abs(r["sd_ratio"] - 1) > TARGETS["sd_ratio"]):
            bad.append(r["param"])
        if r["kind"] == "sd" and max(r[f"q{int(q * 100)}_diff_sd"] for q in QUANTS) > TARGETS["quantile"]:
            bad.append(r["param"])
    return bad


def run_accuracy(names, draws=1000, tune=1000, chains=4, seed=11):
    out = []
    for name in names:
        model = CASES[name]()
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nuts = model.sample(draws=draws, tune=tune, chains=chains, random_seed=seed, progressbar=False)
        t_nuts = time.perf_counter() - t
        t = time.perf_counter()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            approx = model.fit_inla(random_seed=seed, n_draws=4000)
        t_inla = time.perf_counter() - t
        rows = accuracy_rows(model, approx, nuts)
        bad = check_targets(rows)
        print(f"\n== {name}: n={model.spec.n}, {approx.method}\n   NUTS {chains}x({tune}+{draws}) {t_nuts:.1f} s, "
              f"fit_inla {t_inla:.1f} s; warnings: {[str(x.message)[:80] for x in w]}")
        df = pd.DataFrame(rows).set_index("param")
        print(df.round(3).to_string())
        print(f"   targets {'MET' if not bad else 'MISSED for ' + ', '.join(bad)}")
        out.append((name, bad))
    return out


# ----------------------------------------------------------------------------- speed
def big_model(n, n_groups, family="bernoulli", seed=5):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, n)
    x = rng.normal(size=n)
    eta = -0.3 + 0.5 * x + rng.normal(0, 0.7, n_groups)[g]
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int) if family == "bernoulli" else rng.poisson(np.exp(eta))
    return bg.GLMM("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": g}), family=family)


def _peak_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_speed(seed=7):
    print(f"BLAS threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    # the one-time costs of a process (imports of the samplers' and ArviZ's modules, first
    # InferenceData) outside both timings: one small fit of each first
    small = bg.GLMM("Reaction ~ Days + (1 | Subject)", bg.datasets.load("sleepstudy"))
    t = time.perf_counter()
    small.fit_inla(random_seed=seed, n_draws=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small.sample(draws=100, tune=100, chains=1, random_seed=seed, progressbar=False)
    print(f"warm-up (imports, first InferenceData; a small fit_inla and sample()): {time.perf_counter() - t:.1f} s")
    m = big_model(100_000, 1000)
    t = time.perf_counter()
    r = m.fit_inla(random_seed=seed)
    t_inla = time.perf_counter() - t
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nuts = m.sample(draws=500, tune=500, chains=2, random_seed=seed, progressbar=False)
    t_nuts = time.perf_counter() - t
    print(f"1e5 rows x 1e3 groups bernoulli: fit_inla {t_inla:.1f} s ({r.idata.posterior.attrs['fit_wall_time']:.1f} s "
          f"before the draws/idata), sample() 2x(500+500) {t_nuts:.1f} s: ratio {t_nuts / t_inla:.1f}x")
    print(bg.compare(nuts, r, names=["NUTS", "INLA"]))
    for fam in ("bernoulli", "poisson"):
        m = big_model(1_000_000, 10_000, fam)
        t = time.perf_counter()
        r = m.fit_inla(random_seed=seed)
        t_inla = time.perf_counter() - t
        print(f"1e6 rows x 1e4 groups {fam}: fit_inla {t_inla:.1f} s ({r.idata.posterior.attrs['fit_wall_time']:.1f} s "
              f"before the draws/idata, {r.idata.posterior.attrs['n_deviance_evaluations']} deviance evaluations); "
              f"peak RSS so far {_peak_gb():.2f} GB")
        print(r.summary().round(3).to_string())


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--accuracy", action="store_true")
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    ap.add_argument("--chains", type=int, default=4)
    a = ap.parse_args()
    if a.accuracy:
        run_accuracy(a.cases, chains=a.chains)
    if a.speed:
        run_speed()

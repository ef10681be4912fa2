"""What a fresh process imports: ``import bayes_glmm`` and a first ``fit_ml`` of a small LMM stay
on NumPy/SciPy/pandas (no PyMC, ArviZ, PyTensor, and no ``scipy.stats``, whose import alone takes
~1 s), and the ``scipy.special`` functions used instead give scipy.stats' numbers exactly; a
first native ``sample()`` and its results' accessors import ArviZ but neither PyMC nor PyTensor.

The assertions are on ``sys.modules`` in a subprocess, not on timings (benchmarks/bench_ml.py
``--cold-start`` times the whole process against ``library(lme4); lmer(...)``, and
benchmarks/bench_nuts.py ``--cold-start`` a first ``sample()`` against bambi+numpyro)."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: never imported by the package import or by an ML fit and its summary tables
NEVER = ("pymc", "arviz", "pytensor", "nutpie", "jax", "numpyro", "numba", "bambi", "matplotlib", "dask", "distributed",
         "statsmodels", "scipy.stats")

_SCRIPT = """
import json, sys
def loaded(prefixes):
    return sorted(m for m in sys.modules if any(m == p or m.startswith(p + ".") for p in prefixes))
watch = json.loads(sys.argv[1]) + ["formulae", "scipy.interpolate"]
import bayes_glmm as bg
out = {"import": loaded(watch)}
d = bg.datasets.load("sleepstudy")
res = bg.GLMM("Reaction ~ Days + (Days | Subject)", d).fit_ml()
str(res); res.summary(); res.coef_table(); res.conf_int()
res.coef_table(ddf="satterthwaite")
out["fit"] = loaded(watch)
res.predict(d.head(3))
out["predict"] = loaded(watch)
ml = bg.GLMM("Reaction ~ Days + (Days | Subject)", d).fit_ml(reml=False)
ml0 = bg.GLMM("Reaction ~ Days + (1 | Subject)", d).fit_ml(reml=False)
bg.lrt(ml0, ml)
out["lrt"] = loaded(watch)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def fresh_process_modules():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", _SCRIPT, json.dumps(NEVER)], capture_output=True,
                         text=True, env=env, cwd=str(ROOT), timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_import_bayes_glmm_loads_no_sampler_no_scipy_stats_no_formulae(fresh_process_modules):
    # formulae (and the scipy.interpolate it imports) wait for the first formula with terms
    assert fresh_process_modules["import"] == []


def test_first_lmm_fit_and_its_tables_load_no_sampler_and_no_scipy_stats(fresh_process_modules):
    # a sum of plain variables is coded without formulae (spec.design._plain_design) ...
    assert fresh_process_modules["fit"] == []
    # ... which new data then import, to build the terms that code them (and the watch list
    # does see what is imported)
    assert "formulae" in fresh_process_modules["predict"]
    heavy = [m for m in fresh_process_modules["predict"] if m.split(".")[0] != "formulae"
             and not m.startswith("scipy.interpolate")]
    assert heavy == []


def test_likelihood_ratio_test_loads_no_scipy_stats(fresh_process_modules):
    assert [m for m in fresh_process_modules["lrt"] if m.split(".")[0] in NEVER or m == "scipy.stats"
            or m.startswith("scipy.stats.")] == []


def test_special_functions_equal_scipy_stats_bit_for_bit():
    from scipy import special, stats

    rng = np.random.default_rng(20261207)
    x = np.concatenate([np.abs(rng.normal(scale=5.0, size=500)), rng.exponential(30.0, size=500),
                        [0.0, 1e-300, 40.0, 1e3, np.inf, np.nan]])
    q = np.concatenate([rng.uniform(size=500), [0.5, 0.9, 0.95, 0.975, 0.995]])
    eq = np.testing.assert_array_equal
    eq(special.ndtr(-x), stats.norm.sf(x))  # results.coef_table, ddf (z)
    eq(special.ndtri(q), stats.norm.ppf(q))  # results.conf_int, profile (Wald)
    for df in (1, 2, 3.5, 12, 100):
        eq(special.chdtrc(df, x), stats.chi2.sf(x, df))  # lrt, anova, ddf
        eq(special.stdtr(df, -x), stats.t.sf(x, df))  # ddf (t)
        eq(2.0 * special.gammaincinv(df / 2.0, q), stats.chi2.ppf(q, df))  # profile cut-off
        for dfd in (1, 4.5, 30, 1e6):
            eq(special.fdtrc(df, dfd, x), stats.f.sf(x, df, dfd))  # ddf (F)


#: never imported by a native ``sample()`` and what a user reads from its result: the sampler
#: runs generated C, labels its draws from the parameter layout and computes the pointwise
#: log-likelihood in C (ArviZ, for the InferenceData, is expected)
NEVER_NATIVE = ("pymc", "pytensor", "nutpie", "jax", "numpyro", "bambi")

_SAMPLE_SCRIPT = """
import json, sys
def loaded(prefixes):
    return sorted(m for m in sys.modules if any(m == p or m.startswith(p + ".") for p in prefixes))
watch = json.loads(sys.argv[1]) + ["arviz"]
import bayes_glmm as bg
from bayes_glmm.bayes import native
d = bg.datasets.load("toenail")
m = bg.GLMM("Response ~ Month * Treatment + (1 | ID)", d, family="bernoulli")
res = m.sample(draws=60, tune=60, chains=2, random_seed=1, progressbar=False, check=False)
out = {"sample": loaded(watch), "sampler": res.idata.posterior.attrs["sampler"], "native": native.available()}
res.fixef; res.varcorr; res.ranef; res.summary(); str(res); res.predict(kind="mean")
res.posterior_predictive(random_seed=2)
out["results"] = loaded(watch)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def native_sample_modules():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", _SAMPLE_SCRIPT, json.dumps(NEVER_NATIVE)], capture_output=True,
                         text=True, env=env, cwd=str(ROOT), timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    if not out["native"]:  # pragma: no cover - CI has cc
        pytest.skip("no C compiler: sampler='auto' runs another sampler")
    return out


def test_native_sample_imports_no_pymc_or_pytensor(native_sample_modules):
    assert native_sample_modules["sampler"] == "native"
    assert [m for m in native_sample_modules["sample"] if m.split(".")[0] != "arviz"] == []
    assert "arviz" in native_sample_modules["sample"]  # the watch list does see what is imported


def test_native_results_accessors_import_no_pymc_or_pytensor(native_sample_modules):
    assert [m for m in native_sample_modules["results"] if m.split(".")[0] != "arviz"] == []


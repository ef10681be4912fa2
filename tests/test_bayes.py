"""The PyMC path: graph structure, log-density consistency, sampling, results.

Default tests use tiny data and few draws; ``slow`` tests check posterior recovery.
"""
import re
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm import bayes
from bayes_glmm.bayes import BayesResults, sampling
from bayes_glmm.families import NUMPY_OPS, get_family
from bayes_glmm.priors import Prior, resolve_centered, resolve_priors
from bayes_glmm.spec.model_spec import ModelSpec, RandomTerm


def simulate(n_groups=20, n_per=6, beta=(-0.5, 1.0), sds=(1.0, 0.5), rho=0.4, family="bernoulli", seed=0):
    rng = np.random.default_rng(seed)
    n = n_groups * n_per
    g = np.repeat(np.arange(n_groups), n_per)
    x = rng.normal(size=n)
    cov = np.diag(sds) @ np.array([[1, rho], [rho, 1]]) @ np.diag(sds)
    b = rng.multivariate_normal(np.zeros(2), cov, size=n_groups)
    eta = beta[0] + b[g, 0] + (beta[1] + b[g, 1]) * x
    if family == "bernoulli":
        y = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    else:
        y = eta + rng.normal(scale=0.5, size=n)
    return pd.DataFrame({"y": y, "x": x, "g": [f"G{i:02d}" for i in g]})


def hand_spec(family="binomial", weights=None, offset=None, seed=1):
    """A random-intercept spec built by hand (binomial with trials, offset, weights)."""
    rng = np.random.default_rng(seed)
    n, J = 40, 8
    codes = np.arange(n) % J
    x = rng.normal(size=n)
    trials = rng.integers(1, 6, size=n).astype(float)
    y = np.minimum(rng.binomial(trials.astype(int), 0.4), trials).astype(float)
    term = RandomTerm(name="grp", group="grp", coef_names=("(Intercept)",), correlated=False,
                      codes=codes, levels=pd.Index([f"L{j}" for j in range(J)]), Xr=np.ones((n, 1)))
    return ModelSpec(formula="cbind(y, t - y) ~ x + (1 | grp)", family=get_family(family), response_name="y",
                     y=y, trials=trials if family == "binomial" else None,
                     X=np.column_stack([np.ones(n), x]), fixed_names=("(Intercept)", "x"),
                     offset=np.zeros(n) if offset is None else offset,
                     weights=np.ones(n) if weights is None else weights, terms=(term,), row_index=pd.RangeIndex(n))


@pytest.fixture(scope="module")
def data():
    return simulate()


@pytest.fixture(scope="module")
def glmm(data):
    return bg.GLMM("y ~ x + (x | g)", data, family="bernoulli")


@pytest.fixture(scope="module")
def fit(glmm):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return glmm.sample(draws=150, tune=200, chains=2, random_seed=11, progressbar=False,
                           prior_predictive=True, posterior_predictive=True)


# ------------------------------------------------------------------ ops and graph
def test_pt_ops_match_numpy_ops():
    import pytensor.tensor as pt

    assert set(vars(bayes.PT_OPS)) == set(vars(NUMPY_OPS))
    xs = np.array([-40.0, -8.0, -1.5, -0.3, 0.0, 0.7, 3.0, 30.0])
    x = pt.dvector("x")
    for name in ("exp", "log1p", "sigmoid", "softplus", "ndtr", "log_ndtr", "gammaln", "square"):
        arg = np.abs(xs) if name == "gammaln" else (xs[xs < 20] if name == "exp" else xs)
        arg = arg[arg > -1] if name == "log1p" else arg
        got = getattr(bayes.PT_OPS, name)(x).eval({x: arg})
        np.testing.assert_allclose(got, getattr(NUMPY_OPS, name)(arg), rtol=1e-9, atol=1e-300, err_msg=name)
    y = pt.dvector("y")
    np.testing.assert_allclose(bayes.PT_OPS.logaddexp(x, y).eval({x: xs, y: xs[::-1]}),
                               NUMPY_OPS.logaddexp(xs, xs[::-1]), rtol=1e-12)
    neg = np.array([-30.0, -2.0, -0.5, -1e-8])
    np.testing.assert_allclose(bayes.PT_OPS.log1mexp(x).eval({x: neg}), NUMPY_OPS.log1mexp(neg), rtol=1e-9)


def test_graph_names_dims_coords(glmm):
    m = glmm.build()
    names = set(m.named_vars)
    assert {"beta", "Intercept", "slopes", "sd_g", "cpc_g", "corr_g", "u_g", "b_g", "y"} <= names
    assert "sigma" not in names
    dims = m.named_vars_to_dims
    assert dims["beta"] == ("coef",)
    assert dims["sd_g"] == ("g_coef",)
    assert dims["corr_g"] == ("g_corr",)
    assert dims["u_g"] == dims["b_g"] == ("g_level", "g_coef")
    assert list(m.coords["coef"]) == ["(Intercept)", "x"]
    assert list(m.coords["g_coef"]) == ["(Intercept)", "x"]
    assert len(m.coords["g_level"]) == 20 and m.coords["g_level"][0] == "G00"
    assert m["u_g"] in m.free_RVs and m["b_g"] in m.deterministics


def test_centered_and_gaussian_graph():
    df = simulate(family="gaussian")
    m = bg.GLMM("y ~ x + (x || g)", df, centered=True).build()
    assert m["b_g"] in m.free_RVs and "u_g" not in m.named_vars and "corr_g" not in m.named_vars
    assert "sigma" in m.named_vars


def test_observed_logp_is_family_loglik_with_trials_offset_weights():
    rng = np.random.default_rng(3)
    w = rng.uniform(0.5, 2.0, size=40)
    off = rng.normal(scale=0.3, size=40)
    spec = hand_spec(weights=w, offset=off)
    m = bayes.build_pymc_model(spec, resolve_priors(spec), resolve_centered(spec))
    pt0 = m.initial_point()
    pt0["Intercept"] = np.array(0.3)
    f = m.compile_fn(m.logp(vars=[m["y"]], sum=True), inputs=m.value_vars)
    eta = 0.3 + off  # slopes and u are 0 at the initial point
    want = np.sum(w * spec.family.loglik(spec.y, eta, trials=spec.trials))
    assert f(pt0) == pytest.approx(want, rel=1e-10)


def test_prior_override_reaches_graph(data):
    mod = bg.GLMM("y ~ x + (x | g)", data, family="bernoulli",
                  priors={"beta": Prior("Normal", mu=0, sigma=0.1), "sd_g": Prior("Exponential", lam=2.0)})
    prior = mod.prior_predictive(draws=400, random_seed=2)
    assert float(prior.prior["beta"].sel(coef="x").std()) == pytest.approx(0.1, rel=0.2)
    assert float(prior.prior["sd_g"].mean()) == pytest.approx(0.5, rel=0.25)


# ------------------------------------------------------------------ sampling
def test_bad_sampler_arguments(glmm):
    with pytest.raises(ValueError, match="sampler='bogus' is not one of"):
        glmm.sample(sampler="bogus")
    try:
        import numpyro  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="pip install numpyro"):
            glmm.sample(sampler="numpyro")
    with pytest.raises(ValueError, match="draws must be a positive integer"):
        glmm.sample(draws=0)


def test_inferencedata_groups(fit):
    assert isinstance(fit, BayesResults)
    groups = set(fit.idata.groups())
    assert {"posterior", "sample_stats", "observed_data", "log_likelihood",
            "prior", "prior_predictive", "posterior_predictive"} <= groups
    post = fit.idata.posterior
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 150
    assert list(post["beta"].coords["coef"].values) == ["(Intercept)", "x"]
    assert post["b_g"].dims == ("chain", "draw", "g_level", "g_coef")
    assert not [v for v in post.data_vars if v.endswith("__")]
    assert fit.idata.log_likelihood["y"].shape == (2, 150, 120)
    assert fit.idata.posterior_predictive["y"].shape == (2, 150, 120)
    import pymc as pm

    # reference: PyMC's own Bernoulli log-density at eta rebuilt from beta and b_g
    spec = fit.spec
    t = spec.terms[0]
    for c, d in ((0, 0), (1, 7)):
        beta = post["beta"].values[c, d]
        b = post["b_g"].values[c, d]
        eta = spec.X @ beta + (t.Xr * b[t.codes]).sum(1) + spec.offset
        ref = pm.logp(pm.Bernoulli.dist(logit_p=eta), np.asarray(spec.y, dtype=int)).eval()
        np.testing.assert_allclose(fit.idata.log_likelihood["y"].values[c, d], ref, rtol=1e-8)
    # the posterior predictive draws are 0/1 with the fitted mean frequency
    ppy = fit.idata.posterior_predictive["y"].values
    assert set(np.unique(ppy)) <= {0, 1} and abs(ppy.mean() - np.mean(spec.y)) < 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loo = az.loo(fit.idata)
    assert np.isfinite(loo.elpd_loo)


def test_same_seed_identical_draws(glmm, fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        again = glmm.sample(draws=150, tune=200, chains=2, random_seed=11, progressbar=False)
        other = glmm.sample(draws=150, tune=200, chains=2, random_seed=12, progressbar=False)
    np.testing.assert_array_equal(again.idata.posterior["beta"].values, fit.idata.posterior["beta"].values)
    np.testing.assert_array_equal(again.idata.posterior["b_g"].values, fit.idata.posterior["b_g"].values)
    assert not np.array_equal(other.idata.posterior["beta"].values, fit.idata.posterior["beta"].values)


def test_pymc_sampler_and_low_ess_warning(glmm):
    with pytest.warns(UserWarning, match=r"bulk ESS < 400 for .*beta\["):
        res = glmm.sample(draws=60, tune=60, chains=1, random_seed=5, sampler="pymc", progressbar=False)
    assert res.idata.posterior.attrs["sampler"] == "pymc"
    assert "log_likelihood" in res.idata.groups() and "observed_data" in res.idata.groups()


def test_diagnose_names_divergences_and_rhat():
    rng = np.random.default_rng(0)
    shifted = rng.normal(size=(2, 100)) + np.array([[0.0], [3.0]])
    idata = az.from_dict(posterior={"beta": rng.normal(size=(2, 100, 2)), "sd_g": shifted[..., None]},
                         sample_stats={"diverging": np.r_[np.zeros(197), np.ones(3)].reshape(2, 100).astype(bool)},
                         coords={"coef": ["(Intercept)", "x"], "g_coef": ["(Intercept)"]},
                         dims={"beta": ["coef"], "sd_g": ["g_coef"]})
    msgs = bayes.diagnose(idata, ["beta", "sd_g"])
    text = " ".join(msgs)
    assert "3 divergent transition(s)" in text
    assert re.search(r"R-hat > 1.01 for .*sd_g\[\(Intercept\)\] \(1\.\d+\)", text)
    assert "bulk ESS < 400" in text and "beta[x]" in text


# ------------------------------------------------------------------ results
def test_results_accessors(fit, data):
    assert list(fit.fixef.index) == ["(Intercept)", "x"]
    vc = fit.varcorr
    assert list(vc.columns) == ["grp", "var1", "var2", "vcov", "sdcor"]
    assert len(vc) == 3 and -1 < vc["sdcor"].iloc[2] < 1
    assert vc["vcov"].iloc[0] >= vc["sdcor"].iloc[0] ** 2 - 1e-12  # E[s^2] >= E[s]^2
    re = fit.ranef
    assert list(re) == ["g"] and re["g"].shape == (20, 2) and list(re["g"].columns) == ["(Intercept)", "x"]
    s = fit.summary()
    assert list(s.columns) == ["mean", "sd", "2.5%", "97.5%", "r_hat", "ess_bulk", "ess_tail"]
    assert list(s.index) == ["(Intercept)", "x", "sd_g[(Intercept)]", "sd_g[x]", "corr_g[(Intercept), x]"]
    assert (s["2.5%"] < s["mean"]).all() and (s["mean"] < s["97.5%"]).all()
    assert "BayesResults" in repr(fit) and "corr_g" in repr(fit)
    assert "<table" in fit._repr_html_()


def test_fast_recovery_smoke(fit):
    # truth: beta = (-0.5, 1.0), sd = (1.0, 0.5); tiny data and few draws -> loose checks
    s = fit.summary()
    assert s.loc["x", "2.5%"] > 0
    assert s.loc["(Intercept)", "2.5%"] < -0.5 < s.loc["(Intercept)", "97.5%"]
    assert 0.3 < s.loc["sd_g[(Intercept)]", "mean"] < 2.5


def test_predict(fit, data):
    p = fit.predict()
    assert p.shape == (120,) and np.all((p > 0) & (p < 1))
    draws = fit.predict(kind="link", return_draws=True, n_draws=50, random_seed=1)
    assert draws.shape == (50, 120)
    np.testing.assert_allclose(fit.predict(kind="link"), fit.predict(kind="link", return_draws=True).mean(0))
    new = pd.DataFrame({"x": [0.0, 1.0, 1.0], "g": ["G00", "NEW", "NEW"], "y": [0, 0, 0]})
    pop = fit.predict(new, kind="link", new_levels="population")
    assert pop[1] == pytest.approx(fit.fixef.sum())
    samp = fit.predict(new, kind="link", new_levels="sample", random_seed=3, return_draws=True)
    assert samp.shape[0] == 300 and np.std(samp[:, 1]) > np.std(
        fit.predict(new, kind="link", return_draws=True)[:, 1])
    with pytest.raises(ValueError, match="levels of 'g' not in the fitted data"):
        fit.predict(new, new_levels="error")
    with pytest.raises(ValueError, match="kind="):
        fit.predict(kind="probability")


def test_posterior_predictive_method(fit):
    idata = fit.posterior_predictive(random_seed=4)
    assert idata.posterior_predictive["y"].shape == (2, 150, 120)
    assert set(np.unique(idata.posterior_predictive["y"].values)) <= {0, 1}


def test_prior_predictive_seeded(glmm):
    a = glmm.prior_predictive(draws=30, random_seed=9)
    b = glmm.prior_predictive(draws=30, random_seed=9)
    assert {"prior", "prior_predictive"} <= set(a.groups())
    np.testing.assert_array_equal(a.prior_predictive["y"].values, b.prior_predictive["y"].values)


# ------------------------------------------------------------------ slow
@pytest.mark.slow
def test_posterior_recovery_random_slope():
    truth = {"(Intercept)": -0.5, "x": 1.0, "sd0": 1.0, "sd1": 0.6, "rho": 0.5}
    df = simulate(n_groups=150, n_per=20, beta=(-0.5, 1.0), sds=(1.0, 0.6), rho=0.5, seed=42)
    res = bg.GLMM("y ~ x + (x | g)", df, family="bernoulli").sample(
        draws=1000, tune=1000, chains=2, random_seed=1, progressbar=False)
    s = res.summary()
    for lab, val in [("(Intercept)", truth["(Intercept)"]), ("x", truth["x"]),
                     ("sd_g[(Intercept)]", truth["sd0"]), ("sd_g[x]", truth["sd1"]),
                     ("corr_g[(Intercept), x]", truth["rho"])]:
        assert s.loc[lab, "2.5%"] < val < s.loc[lab, "97.5%"], (lab, s.loc[lab].to_dict())
    assert s["r_hat"].max() < 1.02


# ------------------------------------------------------------------ samplers
def test_auto_sampler_choice(glmm, data):
    assert sampling._resolve_sampler("auto", glmm) in bayes.AUTO_SAMPLER[:2]  # correlated (x | g), non-centered
    simple = bg.GLMM("y ~ x + (x || g)", data, family="bernoulli")
    from bayes_glmm.bayes.native import available

    want = "native" if available() else "numpy"  # without a C compiler: the NumPy density
    assert sampling._resolve_sampler("auto", simple) == want
    if available():
        with pytest.warns(FutureWarning, match="sampler='numba' is now sampler='native'"):
            assert sampling._resolve_sampler("numba", simple) == "native"
    cen = bg.GLMM("y ~ x + (x | g)", data, family="bernoulli", centered=True)
    assert sampling._resolve_sampler("auto", cen) == "nutpie"  # centered MvNormal stays on the graph
    with pytest.raises(ValueError, match="sampler='numpy' needs"):
        sampling._resolve_sampler("numpy", cen)


def test_correlated_term_posterior_layout(glmm):
    """sampler='native' on (x | g): the graph's names, dims and coords; b = u (diag(sd) L)'."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = glmm.sample(draws=50, tune=60, chains=2, random_seed=5, sampler="native", progressbar=False,
                          check=False)
    post, pm_model = res.idata.posterior, res.pm_model
    assert list(post.data_vars) == ["beta", "sd_g", "corr_g", "b_g"]  # no sampler internals
    for v in ("sd_g", "corr_g", "b_g"):
        assert post[v].dims[2:] == tuple(pm_model.named_vars_to_dims[v])
    assert list(post["corr_g"].g_corr.values) == ["(Intercept), x"]
    r = post["corr_g"].values[..., 0]
    assert np.all(np.abs(r) < 1) and r.std() > 0
    vc = res.varcorr
    assert len(vc) == 3 and np.isfinite(vc["sdcor"].to_numpy(dtype=float)).all()  # 2 SDs, 1 correlation
    assert list(res.ranef["g"].columns) == ["(Intercept)", "x"]


@pytest.mark.slow
def test_correlated_native_matches_nutpie_graph_sleepstudy():
    """Posterior means of sd and corr of (Days | Subject): the native sampler vs the PyMC graph (nutpie)."""
    m = bg.GLMM("Reaction ~ Days + (Days | Subject)", bg.datasets.load("sleepstudy"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = [m.sample(draws=1000, tune=1000, chains=4, random_seed=7, sampler=s, progressbar=False,
                         check=False).idata for s in ("native", "nutpie")]
    for v in ("sd_Subject", "corr_Subject", "sigma"):
        a, b = (f.posterior[v] for f in fits)
        ma, mb = a.mean(("chain", "draw")).values, b.mean(("chain", "draw")).values
        mcse = np.sqrt(np.asarray(az.mcse(fits[0], var_names=[v])[v]) ** 2
                       + np.asarray(az.mcse(fits[1], var_names=[v])[v]) ** 2)
        ok = np.isfinite(mcse) & (mcse > 0)  # the corr diagonal is constant
        assert np.all(np.abs(ma - mb)[ok] < 4 * mcse[ok]), (v, ma, mb, mcse)


def test_numpy_sampler_and_variance_prior(data):
    mod = bg.GLMM("y ~ x + (1 | g)", data, family="bernoulli",
                  priors={"var_g": Prior("InverseGamma", alpha=2.0, beta=1.0)})
    pm_model = mod.build()
    assert pm_model["var_g"] in pm_model.free_RVs and pm_model["sd_g"] in pm_model.deterministics
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        res = mod.sample(draws=100, tune=150, chains=2, random_seed=3, progressbar=False)
        again = mod.sample(draws=100, tune=150, chains=2, random_seed=3, progressbar=False)
    post = res.idata.posterior
    assert post.attrs["sampler"] in bayes.AUTO_SAMPLER[:2]  # native, or numpy without a C compiler
    assert list(post.data_vars) == ["beta", "sd_g", "b_g"]
    assert post["b_g"].dims[2:] == ("g_level", "g_coef") and list(post["beta"].coef.values) == ["(Intercept)", "x"]
    np.testing.assert_array_equal(post["beta"].values, again.idata.posterior["beta"].values)
    assert {"log_likelihood", "observed_data", "sample_stats"} <= set(res.idata.groups())
    assert float(post["beta"].sel(coef="x").mean()) > 0


def test_numpyro_backend_from_the_graph(data):
    """sampler='numpyro' (JAX from the graph): same tidy posterior, same posterior as native."""
    pytest.importorskip("numpyro")
    mod = bg.GLMM("y ~ x + (x | g)", data, family="bernoulli")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = mod.sample(draws=300, tune=300, chains=2, random_seed=4, sampler="numpyro", progressbar=False)
        b = mod.sample(draws=300, tune=300, chains=2, random_seed=4, sampler="native", progressbar=False)
    pa, pb = a.idata.posterior, b.idata.posterior
    assert pa.attrs["sampler"] == "numpyro" and pa.attrs["target_accept"] == 0.95  # correlated term
    assert list(pa.data_vars) == list(pb.data_vars) == ["beta", "sd_g", "corr_g", "b_g"]
    for v in pa.data_vars:
        assert pa[v].dims == pb[v].dims and pa[v].shape == pb[v].shape
    assert {"log_likelihood", "observed_data", "sample_stats"} <= set(a.idata.groups())
    assert "diverging" in a.idata.sample_stats
    for v in ("beta", "sd_g"):
        ma, mb = pa[v].mean(("chain", "draw")).values, pb[v].mean(("chain", "draw")).values
        sd = pb[v].std(("chain", "draw")).values
        assert np.all(np.abs(ma - mb) < 0.5 * sd + 0.05), (v, ma, mb)
    again = mod.sample(draws=300, tune=300, chains=2, random_seed=4, sampler="numpyro", progressbar=False,
                       check=False)
    np.testing.assert_array_equal(pa["beta"].values, again.idata.posterior["beta"].values)


def test_log_likelihood_skipped_when_too_large(data, monkeypatch):
    mod = bg.GLMM("y ~ x + (1 | g)", data, family="bernoulli")
    monkeypatch.setattr(sampling, "LOGLIK_MAX_VALUES", 10)
    with pytest.warns(UserWarning, match="log_likelihood group skipped"):
        res = mod.sample(draws=20, tune=20, chains=1, random_seed=1, progressbar=False, check=False)
    assert "log_likelihood" not in res.idata.groups()
    res = mod.sample(draws=20, tune=20, chains=1, random_seed=1, progressbar=False, check=False,
                     log_likelihood=True)
    assert res.idata.log_likelihood["y"].shape == (1, 20, mod.spec.n)


def test_divergent_fit_is_rerun_with_higher_target_accept(data, monkeypatch):
    """target_accept=None: a fit with divergences is rerun at 0.95 (then 0.99); a given value is kept."""
    mod = bg.GLMM("y ~ x + (1 | g)", data, family="bernoulli")
    calls = []
    real = sampling._n_divergent

    def fake(idata):  # pretend the first fit diverged
        calls.append(idata.posterior.attrs.get("target_accept"))
        return 3 if len(calls) == 1 else real(idata)

    monkeypatch.setattr(sampling, "_n_divergent", fake)
    res = mod.sample(draws=30, tune=30, chains=1, random_seed=2, progressbar=False, check=False)
    assert res.idata.posterior.attrs["target_accept_tried"] == [0.8, 0.95]
    assert res.idata.posterior.attrs["target_accept"] == 0.95
    calls.clear()
    res = mod.sample(draws=30, tune=30, chains=1, random_seed=2, progressbar=False, check=False,
                     target_accept=0.9)
    assert res.idata.posterior.attrs["target_accept_tried"] == [0.9]


def test_toenail_inferencedata_reads_cleanly_in_arviz():
    """What an ArviZ user sees on toenail with the defaults' layout: az.summary has at most
    300 rows (4 coefficients, 1 SD, 294 b_ID), every r_hat finite, no RuntimeWarning, and
    az.plot_trace draws the posterior (its time is measured in benchmarks, not here)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = bg.GLMM("Response ~ Month * Treatment + (1 | ID)", bg.datasets.load("toenail"), family="bernoulli")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # short run: low-ESS notes
        res = m.sample(draws=200, tune=300, chains=2, random_seed=2, progressbar=False)
    assert res.idata.posterior.attrs["sampler"] in bayes.AUTO_SAMPLER[:2]
    assert list(res.idata.posterior.data_vars) == ["beta", "sd_ID", "b_ID"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        summ = az.summary(res.idata)
        axes = az.plot_trace(res.idata, var_names=["beta", "sd_ID"])
    plt.close("all")
    assert len(summ) == 299 <= 300 and np.isfinite(summ["r_hat"]).all()
    assert axes.shape[0] == 2
    st = res.idata.sample_stats
    assert {"lp", "acceptance_rate", "step_size", "tree_depth", "n_steps", "diverging", "energy"} <= set(st.data_vars)
    assert st["diverging"].dtype == bool and int(st["n_steps"].min()) >= 1

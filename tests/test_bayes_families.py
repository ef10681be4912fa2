"""The Bayesian path for the dispersion families and zero inflation (issue 8).

Fast tests (tiny draws, ``sampler="auto"``, which for these models is the NumPy density: no
compilation): the sampler ran and says so, the posterior / log_likelihood /
posterior_predictive groups hold the right variables and shapes, the pointwise
log-likelihood is the graph's ``y`` node, predict includes the zero-inflation factor, and
the dispersion / ``zi_`` prior keys are validated.  ``slow``: posterior recovery on
simulated data (NB2, Gamma, Beta, ZIP), true values inside the posterior intervals.
"""
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

import bayes_glmm as bg
from bayes_glmm.priors import Prior


def _sim(family, n_groups=12, n_per=8, seed=0, zi=False, disp=None, sd=0.5,
         b0=None, b1=0.5, zi_coef=(-1.0, 0.8)):
    rng = np.random.default_rng(seed)
    n = n_groups * n_per
    g = np.repeat(np.arange(n_groups), n_per)
    x = rng.normal(size=n)
    x -= x.mean()
    u = sd * rng.normal(size=n_groups)
    if family in ("negbinomial", "nbinom1", "poisson"):
        b0 = 1.0 if b0 is None else b0
        mu = np.exp(b0 + b1 * x + u[g])
        if family == "poisson":
            y = rng.poisson(mu)
        elif family == "negbinomial":
            y = rng.poisson(rng.gamma(disp, mu / disp))
        else:
            y = rng.poisson(rng.gamma(mu / disp, disp))
        if zi:
            y = np.where(rng.random(n) < expit(zi_coef[0] + zi_coef[1] * x), 0, y)
    elif family == "gamma":
        b0 = 0.5 if b0 is None else b0
        mu = np.exp(b0 + b1 * x + u[g])
        y = rng.gamma(disp, mu / disp)
    else:  # beta
        b0 = -0.3 if b0 is None else b0
        mu = expit(b0 + b1 * x + u[g])
        y = rng.beta(mu * disp, (1 - mu) * disp)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i:02d}" for i in g]})


FAMILIES = {
    "negbinomial": dict(family="negbinomial", disp=2.0),
    "nbinom1": dict(family="nbinom1", disp=1.5),
    "gamma": dict(family="gamma", disp=3.0),
    "beta": dict(family="beta", disp=10.0),
    "zip": dict(family="poisson", zi="~ x"),
    "zinb": dict(family="negbinomial", disp=2.0, zi="~1"),
}


def _model(key, **kw):
    c = FAMILIES[key]
    df = _sim(c["family"], zi=c.get("zi") is not None, disp=c.get("disp"), **kw)
    return bg.GLMM("y ~ x + (1 | g)", df, family=c["family"], zi=c.get("zi"))


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def fitted(request):
    m = _model(request.param)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = m.sample(draws=30, tune=30, chains=2, random_seed=1, progressbar=False,
                       posterior_predictive=True)
    return request.param, m, res


def test_sampler_ran_and_is_recorded(fitted):
    key, m, res = fitted
    # auto -> the native sampler: every family and zi has its generated C (no slow fallback)
    from bayes_glmm.bayes.native import available

    assert res.idata.posterior.attrs["sampler"] == ("native" if available() else "numpy")


def test_posterior_groups_and_shapes(fitted):
    key, m, res = fitted
    post = res.idata.posterior
    fam = m.spec.family
    want = {"beta", "sd_g", "b_g"}
    if fam.has_dispersion:
        want.add(fam.dispersion_name)
    if m.spec.has_zi:
        want.add("beta_zi")
    assert set(post.data_vars) == want
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 30
    if fam.has_dispersion:
        d = np.asarray(post[fam.dispersion_name])
        assert d.shape == (2, 30) and np.all(d > 0)
    if m.spec.has_zi:
        assert post["beta_zi"].dims == ("chain", "draw", "zi_coef")
        assert list(post["beta_zi"].coords["zi_coef"].values) == list(m.spec.zi_names)
    ll = res.idata.log_likelihood["y"]
    assert ll.shape == (2, 30, m.spec.n) and np.all(np.isfinite(ll))
    pp = np.asarray(res.idata.posterior_predictive["y"])
    assert pp.shape == (2, 30, m.spec.n)
    if fam.name == "beta":
        assert np.all((pp > 0) & (pp < 1))
    elif fam.name == "gamma":
        assert np.all(pp > 0)
    else:
        assert np.all(pp >= 0) and np.all(pp == np.round(pp))
        assert res.idata.observed_data["y"].dtype.kind == "i"
    if m.spec.has_zi:  # structural zeros: more zeros than the count part alone would give
        assert (pp == 0).mean() > 0.1


def test_log_likelihood_is_the_graph_node(fitted):
    """The NumPy pointwise log-likelihood equals the graph's ``y`` logp at a posterior draw."""
    key, m, res = fitted
    pm_model = m.build()
    post = res.idata.posterior
    # the graph's y node as a function of the posterior draw (through its value variables)
    from bayes_glmm.bayes.density import GlmmDensity
    d = GlmmDensity(m.spec, m.resolved_priors, m.centered_terms)
    x = d.initial_point(3) * 0.3
    ex = d.expand(x)
    sl = d.value_var_slices()
    ip = pm_model.initial_point()
    point = {v.name: np.asarray(x[sl[v.name]]).reshape(np.shape(ip[v.name])) for v in pm_model.value_vars}
    f = pm_model.compile_fn(pm_model.logp(vars=[pm_model["y"]], sum=False)[0], inputs=pm_model.value_vars,
                            point_fn=True, on_unused_input="ignore")
    graph_ll = np.asarray(f(point))
    import xarray as xr
    from bayes_glmm.bayes.pointwise import pointwise_loglik
    one = xr.Dataset({k: (("chain", "draw") + tuple(post[k].dims[2:]), np.asarray(ex[k])[None, None])
                      for k in post.data_vars})
    np.testing.assert_allclose(pointwise_loglik(m.spec, one)[0], graph_ll, rtol=1e-10, atol=1e-10)
    assert np.isfinite(res.idata.log_likelihood["y"]).all()


def test_accessors_match_ml_names(fitted):
    key, m, res = fitted
    fam = m.spec.family
    ml = m.fit_ml()
    assert list(res.dispersion.index) == list(ml.dispersion.index)
    if m.spec.has_zi:
        assert list(res.fixef_zi.index) == list(ml.fixef_zi.index) == list(m.spec.zi_names)
    else:
        with pytest.raises(AttributeError, match="zero-inflation"):
            res.fixef_zi
    s = res.summary()
    if fam.has_dispersion:
        assert fam.dispersion_name in s.index
    if m.spec.has_zi:
        assert "zi_Intercept" in s.index
    assert "Random effects" in repr(res)


def test_predict_includes_zero_inflation(fitted):
    key, m, res = fitted
    mean = res.predict(kind="mean")
    link = res.predict(kind="link", return_draws=True)
    assert mean.shape == (m.spec.n,)
    mu_draws = m.spec.family.mean(link)
    if m.spec.has_zi:
        pi = expit(np.asarray(res.idata.posterior["beta_zi"]).reshape(-1, m.spec.p_zi) @ m.spec.X_zi.T)
        np.testing.assert_allclose(mean, (mu_draws * (1 - pi)).mean(0), rtol=1e-10)
        assert np.all(mean < mu_draws.mean(0))
        new = pd.DataFrame({"x": [0.0, 1.0], "g": ["g00", "new"]})
        assert res.predict(new, kind="mean").shape == (2,)
    else:
        np.testing.assert_allclose(mean, mu_draws.mean(0), rtol=1e-10)


def test_graph_sampler_gives_the_same_names():
    """A sampler on the PyMC graph (PyMC's NUTS) gives the same tidy posterior as the NumPy density (ZINB)."""
    m = _model("zinb")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = m.sample(draws=10, tune=10, chains=1, random_seed=2, progressbar=False, sampler="pymc")
    assert set(res.idata.posterior.data_vars) == {"beta", "sd_g", "theta", "beta_zi", "b_g"}
    assert res.idata.posterior.attrs["sampler"] == "pymc"


# ----------------------------------------------------------------------------- priors
def test_dispersion_prior_defaults_and_keys():
    keys = {"negbinomial": "theta", "nbinom1": "phi", "gamma": "shape", "beta": "phi"}
    for k, name in keys.items():
        m = _model(k)
        assert name in m.resolved_priors
        assert m.resolved_priors[name].support == "positive"
    assert _model("negbinomial").resolved_priors["theta"] == Prior("InverseGamma", alpha=0.5, beta=0.5)
    m = _model("zip")
    assert m.resolved_priors["zi_Intercept"] == Prior("Logistic", mu=0.0, s=1.0)
    assert m.resolved_priors["zi_x"].name == "Normal"


def test_unknown_dispersion_key_names_the_right_one():
    df = _sim("gamma", disp=3.0)
    with pytest.raises(ValueError, match=r"'theta'.*dispersion prior key is 'shape'.*valid keys"):
        bg.GLMM("y ~ x + (1 | g)", df, family="gamma", priors={"theta": Prior("HalfNormal", sigma=1)})
    with pytest.raises(ValueError, match="'phi'.*no dispersion parameter"):
        bg.GLMM("y ~ x + (1 | g)", _sim("poisson"), family="poisson", priors={"phi": Prior("HalfNormal", sigma=1)})
    with pytest.raises(ValueError, match="positive support"):
        bg.GLMM("y ~ x + (1 | g)", df, family="gamma", priors={"shape": Prior("Normal", mu=0, sigma=1)})
    with pytest.raises(ValueError, match="unknown prior key"):
        bg.GLMM("y ~ x + (1 | g)", _sim("poisson"), family="poisson", priors={"zi_Intercept": Prior("Normal", sigma=1)})


def test_dispersion_and_zi_priors_reach_the_graph():
    m = _model("zinb").with_priors({"theta": Prior("Exponential", lam=0.1),
                                    "zi_Intercept": Prior("Normal", mu=-2, sigma=0.5)})
    pm_model = m.build()
    assert {v.name for v in pm_model.value_vars} >= {"theta_log__", "zi_Intercept"}
    assert pm_model["theta"].owner.op.__class__.__name__.startswith("Exponential")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pri = m.prior_predictive(draws=200, random_seed=1)
    assert np.asarray(pri.prior["beta_zi"]).shape == (1, 200, 1)
    # prior zi intercept Normal(-2, 0.5) -> about 12% structural zeros
    assert np.mean(np.asarray(pri.prior["beta_zi"])) == pytest.approx(-2.0, abs=0.15)
    assert pri.prior_predictive["y"].shape == (1, 200, m.spec.n)


def test_sampler_choice_for_the_new_families():
    from bayes_glmm.bayes.sampling import _resolve_sampler

    for key in FAMILIES:
        m = _model(key)
        assert _resolve_sampler("auto", m) in ("native", "numpy")
        assert _resolve_sampler("numpy", m) == "numpy"


# ----------------------------------------------------------------------------- recovery (slow)
RECOVERY = {
    "negbinomial": dict(family="negbinomial", disp=2.0, truth={"theta": 2.0}),
    "gamma": dict(family="gamma", disp=3.0, truth={"shape": 3.0}),
    "beta": dict(family="beta", disp=10.0, truth={"phi": 10.0}),
    "zip": dict(family="poisson", disp=None, zi="~ x", truth={}),
}


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(RECOVERY))
def test_posterior_recovery(key):
    c = RECOVERY[key]
    df = _sim(c["family"], n_groups=40, n_per=15, seed=11, zi="zi" in c, disp=c["disp"], sd=0.5)
    m = bg.GLMM("y ~ x + (1 | g)", df, family=c["family"], zi=c.get("zi"))
    res = m.sample(draws=1000, tune=1000, chains=4, random_seed=3, progressbar=False)
    s = res.summary()
    b0 = {"negbinomial": 1.0, "poisson": 1.0, "gamma": 0.5, "beta": -0.3}[c["family"]]
    truth = {"(Intercept)": b0, "x": 0.5, "sd_g[(Intercept)]": 0.5, **c["truth"]}
    if "zi" in c:
        truth.update({"zi_Intercept": -1.0, "zi_x": 0.8})
    for k, v in truth.items():
        lo, hi = s.loc[k, "2.5%"], s.loc[k, "97.5%"]
        # 99.7% interval from the summary's 95% one (a few parameters per model: no false alarms)
        half = (hi - lo) / 2 * 3.0 / 1.96
        mid = (hi + lo) / 2
        assert mid - half <= v <= mid + half, (k, v, lo, hi)
    assert s["r_hat"].max() < 1.02
    ml = m.fit_ml()
    for k in c["truth"]:  # posterior mean near the ML estimate for 600 rows
        assert res.dispersion[k] == pytest.approx(ml.dispersion[k], rel=0.25)

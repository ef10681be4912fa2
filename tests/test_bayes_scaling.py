"""Counts and predictors of any magnitude on the Bayesian path (issue 16).

Design columns whose SD lies outside ``SCALE_RANGE`` are divided by it in the coordinates the
samplers see (one layout, :func:`bayes_glmm.bayes.density.fixed_layout`, for the PyMC graph,
the NumPy density and the generated C); priors stay stated on the user's scale and the draws
are reported on it.  Chains start at typical values of the data, not of the units.
"""
import warnings

import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm.bayes.density import (PRIOR_LOGP, SCALE_RANGE, GlmmDensity, column_scales,
                                      fixed_layout, scaled_prior)
from bayes_glmm.priors import Prior


def _money_and_rate(seed=3, n=300, G=15, zi=False):
    """Poisson counts with a predictor in units of 1e12 (mean 5e12) and one of 1e-13."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), n // G)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    b = rng.normal(scale=0.3, size=G)
    y = rng.poisson(np.exp(1.0 + 0.3 * x1 - 0.4 * x2 + b[g]))
    if zi:
        y = np.where(rng.random(n) < 1 / (1 + np.exp(1.0 - 0.8 * x2)), 0, y)
    return pd.DataFrame({"y": y, "m": x1 * 1e12 + 5e12, "r": x2 * 1e-13, "g": g})


def test_column_scales_only_outside_the_range():
    rng = np.random.default_rng(0)
    n = 50
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.normal(size=n) * 1e12 + 5e12,
                         rng.normal(size=n) * 1e-13, np.full(n, 3.0), rng.normal(size=n) * 2e-3])
    d = column_scales(X, icol=0)
    sd = X.std(axis=0)
    np.testing.assert_array_equal(d[[0, 1, 4, 5]], 1.0)  # intercept, ordinary, constant, inside the range
    np.testing.assert_allclose(d[[2, 3]], sd[[2, 3]], rtol=1e-12)
    assert SCALE_RANGE[0] <= 2e-3 * 0.5


@pytest.mark.parametrize("prior", [Prior("Normal", mu=0.3, sigma=2.0), Prior("Normal", mu=1.0),
                                   Prior("StudentT", nu=4, mu=-0.2, sigma=0.7),
                                   Prior("Cauchy", alpha=0.1, beta=2.5), Prior("Laplace", mu=0.0, b=1.5),
                                   Prior("Logistic", mu=0.4)])
@pytest.mark.parametrize("d", [1e12, 1e-13, 7.0])
def test_scaled_prior_is_the_prior_of_the_scaled_coefficient(prior, d):
    """beta ~ prior  <=>  beta * d ~ scaled_prior(prior, d): density at beta * d is p(beta) / d."""
    beta = np.array([-3.0, -0.4, 0.0, 0.25, 2.0]) * (1.0 if prior.name != "Normal" else 2.0)
    sp = scaled_prior(prior, d)
    lp_user, _ = PRIOR_LOGP[prior.name](beta, prior.args)
    lp_scaled, _ = PRIOR_LOGP[sp.name](beta * d, sp.args)
    np.testing.assert_allclose(lp_scaled + np.log(d), lp_user, rtol=1e-12, atol=1e-10)


def test_scaled_prior_refuses_a_positive_prior():
    with pytest.raises(ValueError, match="real support"):
        scaled_prior(Prior("HalfNormal", sigma=1.0), 10.0)


def test_fixed_layout_maps_back_exactly():
    df = _money_and_rate()
    m = bg.GLMM("y ~ m + r + (1 | g)", df, family="poisson")
    icol, xm, d, Xs, cpri = fixed_layout(m.spec.X, m.spec.fixed_names, m.resolved_priors)
    assert icol == 0 and d[0] == 1.0 and d[1] == pytest.approx(df.m.std(ddof=0))
    np.testing.assert_allclose(Xs[:, 1:].std(axis=0), 1.0)
    # the default priors (2.5 / sd(x) on the user's scale) are Normal(0, 2.5) on the scaled design
    for j in (1, 2):
        assert cpri[j].args["sigma"] == pytest.approx(2.5)
    beta = np.array([-0.5, 3e-13, -4e12])
    coord = beta * d
    coord[0] = beta[0] + beta[1:] @ xm[1:]  # the intercept at the predictor means
    np.testing.assert_allclose(Xs @ coord, m.spec.X @ beta, rtol=1e-9, atol=1e-9)


def _graph_vs_fast(m, n_points=3, seed=1):
    from bayes_glmm.bayes import native

    pm_model = m.build()
    d = GlmmDensity(m.spec, m.resolved_priors, m.centered_terms)
    sl = d.value_var_slices()
    names = [v.name for v in pm_model.value_vars]
    assert set(sl) == set(names)
    ip = pm_model.initial_point()
    logp, dlogp = pm_model.compile_logp(), pm_model.compile_dlogp()
    outs = pm_model.replace_rvs_by_values([pm_model["beta"]] + ([pm_model["beta_zi"]] if m.spec.has_zi else []))
    det = pm_model.compile_fn(outs, inputs=pm_model.value_vars, on_unused_input="ignore")
    nm = native.NativeModel(d) if native.available() else None
    rng = np.random.default_rng(seed)
    lg, ld, ln = [], [], []
    for i in range(n_points):
        x = d.initial_point(i) + rng.normal(scale=0.5, size=d.ndim)
        pt = {k: np.asarray(x[sl[k]]).reshape(np.shape(ip[k])) for k in names}
        g_graph = np.empty(d.ndim)
        pos = 0
        flat = dlogp(pt)
        for v in pm_model.value_vars:
            size = sl[v.name].stop - sl[v.name].start
            g_graph[sl[v.name]] = flat[pos:pos + size]
            pos += size
        lg.append(float(logp(pt)))
        v, g = d.logp_grad(x)
        ld.append(v)
        np.testing.assert_allclose(g, g_graph, rtol=1e-8, atol=1e-8 * max(1.0, np.abs(g_graph).max()))
        if nm is not None:
            v2, g2 = nm.logp_grad(x)
            ln.append(v2)
            np.testing.assert_allclose(g2, g_graph, rtol=1e-8, atol=1e-8 * max(1.0, np.abs(g_graph).max()))
        # the reported coefficients: the graph's Deterministic = the expanded draws, the user's scale
        out = det(pt)
        ex = d.expand(x)
        np.testing.assert_allclose(ex["beta"], out[0], rtol=1e-10)
        if m.spec.has_zi:
            np.testing.assert_allclose(ex["beta_zi"], out[1], rtol=1e-10)
        np.testing.assert_allclose(d.expand_draws(x[None, None, :])["beta"][0, 0], ex["beta"], rtol=1e-12)
    for other in (ld, ln):
        if other:
            diff = np.asarray(lg) - np.asarray(other)
            np.testing.assert_allclose(diff - diff[0], 0.0, atol=1e-8 * max(1.0, np.abs(lg).max()))


def test_scaled_layout_graph_equals_numpy_and_native():
    """The contract of tests/test_bayes_contract.py on a design with columns of 1e12 and 1e-13,
    user priors on them (a StudentT, a Normal without sigma) and a zero-inflation column of 1e-13."""
    df = _money_and_rate(zi=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = bg.GLMM("y ~ m + r + (1 | g)", df, family="poisson", zi="~ r",
                    priors={"m": Prior("StudentT", nu=4, mu=1e-13, sigma=1e-12), "r": Prior("Normal", mu=0.0),
                            "zi_r": Prior("Normal", mu=0.0, sigma=5e13)})
    d = GlmmDensity(m.spec, m.resolved_priors, m.centered_terms)
    assert d.xd[1] > 1e11 and d.xd[2] < 1e-12 and d.zi_xd[1] < 1e-12
    _graph_vs_fast(m)


def test_initial_point_does_not_depend_on_the_units():
    rng = np.random.default_rng(0)
    n, G = 200, 10
    g = np.repeat(np.arange(G), n // G)
    x = rng.normal(size=n)
    df = pd.DataFrame({"x": x, "g": g, "y": rng.poisson(1e7 * np.exp(0.2 * x))})
    # a user's intercept prior far from the data does not move the start away from log(mean y)
    m = bg.GLMM("y ~ x + (1 | g)", df, family="poisson", priors={"Intercept": Prior("Normal", mu=0, sigma=100)})
    d = GlmmDensity(m.spec, m.resolved_priors, m.centered_terms)
    sl = d.value_var_slices()
    for s in range(5):
        assert abs(d.initial_point(s)[sl["Intercept"]][0] - np.log(df.y.mean())) <= 1.0
    # gaussian in units of 1e9: sigma and the SD start near sd(y), not near 1
    df["z"] = 1e9 * (3 + x + rng.normal(size=G)[g] + rng.normal(size=n))
    m = bg.GLMM("z ~ x + (1 | g)", df)
    d = GlmmDensity(m.spec, m.resolved_priors, m.centered_terms)
    sl = d.value_var_slices()
    x0 = d.initial_point(0)
    assert abs(x0[sl["sigma_log__"]][0] - np.log(df.z.std())) <= 1.0
    assert abs(x0[sl["sd_g_log__"]][0] - np.log(df.z.std())) <= 1.0
    assert abs(x0[sl["Intercept"]][0] - df.z.mean()) <= 1.0


def _check_against_ml(post, ml, names, n_sd=3.0):
    s = post.summary()
    assert (s["r_hat"] < 1.05).all(), s
    for nm in names:
        est = float(ml.fixef[nm])
        assert abs(s.loc[nm, "mean"] - est) <= n_sd * s.loc[nm, "sd"], (nm, s.loc[nm].to_dict(), est)


def _native_available():
    from bayes_glmm.bayes import native

    return native.available()


@pytest.mark.skipif(not _native_available(), reason="no C compiler")
def test_predictors_of_1e12_and_1e_13_sample_on_the_users_scale():
    """Before: R-hat 2.9 (or no finite start); now the posterior means match fit_ml."""
    df = _money_and_rate()
    m = bg.GLMM("y ~ m + r + (1 | g)", df, family="poisson")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ml = m.fit_ml()
        post = m.sample(draws=400, tune=400, chains=2, random_seed=1, progressbar=False, sampler="native")
    _check_against_ml(post, ml, ["(Intercept)", "m", "r"])
    shown = post.summary().rounded()  # the display keeps 3 significant digits of 3e-13
    assert shown.loc["m", "mean"] == pytest.approx(post.summary().loc["m", "mean"], rel=5e-3)
    # the truth (per unit of the columns): 0.3 per 1e12, -0.4 per 1e-13
    s = post.summary()
    assert s.loc["m", "mean"] * 1e12 == pytest.approx(0.3, abs=4 * s.loc["m", "sd"] * 1e12)
    assert s.loc["r", "mean"] * 1e-13 == pytest.approx(-0.4, abs=4 * s.loc["r", "sd"] * 1e-13)


@pytest.mark.skipif(not _native_available(), reason="no C compiler")
def test_predictor_with_sd_below_1e_12_is_not_shrunk_to_zero():
    """Before: the prior took the column for a constant, Normal(0, 2.5) on a coefficient of 5e12:
    posterior mean 0.018 +- 2.49 ("no effect", R-hat 1.00, no warning); now the effect is found."""
    rng = np.random.default_rng(1)
    n, G = 400, 20
    z, g = rng.normal(size=n), np.repeat(np.arange(G), n // G)
    df = pd.DataFrame({"x": z * 1e-13, "g": g, "y": rng.poisson(np.exp(0.3 + 0.5 * z + rng.normal(scale=0.5, size=G)[g]))})
    m = bg.GLMM("y ~ x + (1 | g)", df, family="poisson")
    assert m.resolved_priors["x"].args["sigma"] == pytest.approx(2.5 / df.x.std(ddof=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ml = m.fit_ml()
        post = m.sample(draws=400, tune=400, chains=2, random_seed=1, progressbar=False, sampler="native")
    _check_against_ml(post, ml, ["x"])
    s = post.summary()
    assert s.loc["x", "mean"] * df.x.std() > 0.3  # per SD of x: truth 0.5


@pytest.mark.skipif(not _native_available(), reason="no C compiler")
@pytest.mark.parametrize("level", [1e7, 1e12])
def test_poisson_counts_of_1e7_and_1e12(level):
    """Before: R-hat 2.3 (1e7) and 2.8 (1e12) -- each group's level is known to ~1e-4 while the
    groups spread by ~0.3, and the non-centred coordinates (Intercept, log sd, u) lie on a thin
    curved ridge a diagonal metric cannot follow.  Now ``centered="auto"`` (the default) samples
    the levels hierarchically centred (c = Intercept + b, in units of their crude posterior SD)
    and the slope, known to ~1e-5 / 5e-8, in units of its SD: the defaults converge."""
    rng = np.random.default_rng(3)
    n, G = 300, 15
    g = np.repeat(np.arange(G), n // G)
    x = rng.normal(size=n)  # varies within the groups
    df = pd.DataFrame({"x": x, "g": g, "y": rng.poisson(level * np.exp(0.2 * x + rng.normal(scale=0.3, size=G)[g]))})
    m = bg.GLMM("y ~ x + (1 | g)", df, family="poisson")
    assert m.centered_terms == {"g": "hierarchical"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ml = m.fit_ml()
        post = m.sample(random_seed=1, progressbar=False)  # the defaults: 4 chains x 1000
    s = post.summary()
    assert (s["r_hat"] < 1.01).all(), s
    assert s["ess_bulk"].min() > 1000, s
    _check_against_ml(post, ml, ["(Intercept)", "x"])
    assert s.loc["x", "mean"] == pytest.approx(0.2, abs=4 * s.loc["x", "sd"] + 1e-6)
    # the intercept's posterior SD is the spread of the group means over sqrt(15): about 0.1
    assert 0.05 < s.loc["(Intercept)", "sd"] < 0.2
    # the levels b_g are reported as usual: the ML conditional modes, to their posterior SD
    b = post.idata.posterior["b_g"].mean(("chain", "draw")).values.ravel()
    b_sd = post.idata.posterior["b_g"].std(("chain", "draw")).values.ravel()
    b_ml = ml.ranef["g"]["(Intercept)"].to_numpy()
    assert np.all(np.abs(b - b_ml) <= 4 * b_sd), (b - b_ml) / b_sd


@pytest.mark.skipif(not _native_available(), reason="no C compiler")
def test_random_slope_on_a_column_of_1e12():
    """Before: no starting point with a finite log-density (log-SDs started at 0 = SD 1 per unit
    of 1e12).  The SD of the slope now starts at the data's scale and is recovered."""
    rng = np.random.default_rng(4)
    n, G = 400, 20
    g = np.repeat(np.arange(G), n // G)
    x = rng.normal(size=n)
    b0, b1 = rng.normal(scale=0.4, size=G), rng.normal(scale=0.3, size=G)
    df = pd.DataFrame({"m": x * 1e12 + 5e12, "g": g, "y": rng.poisson(np.exp(1 + 0.3 * x + b0[g] + b1[g] * x))})
    m = bg.GLMM("y ~ m + (m || g)", df, family="poisson")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = m.sample(draws=500, tune=500, chains=2, random_seed=1, progressbar=False, sampler="native")
    s = post.summary()
    assert (s["r_hat"] < 1.05).all(), s
    sd_m = s.loc["sd_g[m]"]
    assert sd_m["mean"] * 1e12 == pytest.approx(np.std(b1), abs=3 * sd_m["sd"] * 1e12)
    assert s.loc["m", "mean"] * 1e12 == pytest.approx(0.3, abs=3 * s.loc["m", "sd"] * 1e12)

"""Covariance structures on the Bayesian path (issue 17): layout, priors, recovery.

Every structure (:mod:`bayes_glmm.covariance`) is sampled from its one definition: the free
``cpc_<g>`` block of ``n_corr(q)`` unconstrained parameters with the Beta law of
``corr_prior_shapes``, L from ``corr_rows``, ``n_sd(q)`` log-SDs mapped by ``sd_index``.
The value/gradient equality of graph, NumPy and C is ``tests/test_bayes_contract.py``;
here: the names and coordinates, the implied prior on the correlations (prior draws
through the graph), and a short native fit recovering an AR(1) correlation.
"""
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayes_glmm as bg
from bayes_glmm.bayes import native
from bayes_glmm.bayes.codegen import check_c_source, cpc_program
from bayes_glmm.bayes.corr import cpc_chol
from bayes_glmm.bayes.density import GlmmDensity
from bayes_glmm.covariance import get_structure
from bayes_glmm.priors import Prior


def _panel(seed=0, n_groups=12, n_times=4, rho=0.6, sd=0.7, family="poisson"):
    """Repeated measures: ``n_times`` equally spaced times per group, an AR(1) latent process."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), n_times * 2)
    t = np.tile(np.repeat(np.arange(n_times), 2), n_groups)
    x = rng.normal(size=g.size)
    R = rho ** np.abs(np.subtract.outer(np.arange(n_times), np.arange(n_times)))
    b = rng.multivariate_normal(np.zeros(n_times), sd ** 2 * R, size=n_groups)
    eta = 0.5 + 0.3 * x + b[g, t]
    y = rng.poisson(np.exp(eta)) if family == "poisson" else eta + rng.normal(scale=0.5, size=g.size)
    return pd.DataFrame({"y": y, "x": x, "g": [f"s{i:02d}" for i in g], "t": t})


def _prior_draws(model, draws=4000, seed=11):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.prior_predictive(draws=draws, random_seed=seed).prior


def test_ar1_layout_one_sd_and_its_names():
    """ar1: one free log-SD (sdpar_g, dim g_sd), one cpc; sd_g is the length-q vector."""
    m = bg.GLMM("y ~ x + ar1(0 + factor(t) | g)", _panel(), family="poisson")
    pm_model = m.build()
    names = {v.name for v in pm_model.value_vars}
    assert {"sdpar_g_log__", "cpc_g", "u_g"} <= names and "sd_g_log__" not in names
    assert pm_model.named_vars_to_dims["sd_g"] == ("g_coef",)
    assert pm_model.named_vars_to_dims["corr_g"] == ("g_corr",)
    assert len(pm_model.coords["g_corr"]) == 6 and len(pm_model.coords["g_sd"]) == 1
    d = GlmmDensity(m.spec, m.resolved_priors, m.centered_terms)
    sl = d.value_var_slices()
    assert sl["sdpar_g_log__"].stop - sl["sdpar_g_log__"].start == 1
    assert sl["cpc_g"].stop - sl["cpc_g"].start == 1
    from bayes_glmm.bayes.failures import coordinate_names

    assert coordinate_names(d)[sl["sdpar_g_log__"].start] == "log(sdpar_g[0])"
    x = d.initial_point(0)
    ex = d.expand(x)
    sd = ex["sd_g"]
    assert sd.shape == (4,) and np.all(sd == sd[0])
    rho = np.tanh(x[sl["cpc_g"]][0])
    np.testing.assert_allclose(ex["corr_g"], rho ** np.abs(np.subtract.outer(np.arange(4), np.arange(4))),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name, q", [("ar1", 4), ("cs", 3), ("toep", 4), ("us", 3)])
def test_cpc_chol_is_the_structures_factor_and_its_derivatives(name, q):
    """The NumPy duals: L = cov.corr_chol(y), and dL/dy matches central differences."""
    cov = get_structure(name)
    y = np.random.default_rng(q).normal(scale=0.7, size=cov.n_corr(q))
    a, const = cov.corr_prior_shapes(q, 1.5)
    L, lp, (J, dlp) = cpc_chol(y, q, a, const, cov)
    np.testing.assert_allclose(L, cov.corr_chol(y, q), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.diag(L @ L.T), 1.0, rtol=1e-12)
    h = 1e-6
    for k in range(y.size):
        e = np.zeros_like(y)
        e[k] = h
        num = (cov.corr_chol(y + e, q) - cov.corr_chol(y - e, q)) / (2 * h)
        np.testing.assert_allclose(J[..., k], num, atol=1e-7)
    # the prior: const - 2 a log cosh(y), a from the structure's shapes
    np.testing.assert_allclose(lp, const - 2.0 * float(np.sum(a * np.log(np.cosh(y)))), rtol=1e-12)


@pytest.mark.parametrize("name, q", [("ar1", 4), ("cs", 3), ("toep", 4)])
def test_c_of_each_structure_comes_from_its_corr_rows(name, q):
    """cpc_program evaluates the structure's corr_rows: no hand-written C per structure."""
    cov = get_structure(name)
    a, const = cov.corr_prior_shapes(q, 1.0)
    code, L, dL, lp, dlp = cpc_program(q, a, const, "xc0", "c0_", cov)
    check_c_source(code)
    assert len(dlp) == cov.n_corr(q) and len(L) == q
    assert all(L[i][m] == "0.0" for i in range(q) for m in range(i + 1, q))


def test_ar1_prior_rho_uniform_for_eta_1():
    """ar1 with the default LKJ(eta = 1): rho ~ Uniform(-1, 1), corr_g[t0, tk] = rho^k (prior draws)."""
    # gaussian: prior predictive Poisson draws of the default (wide) priors overflow NumPy's sampler
    m = bg.GLMM("y ~ x + ar1(0 + factor(t) | g)", _panel(family="gaussian"))
    assert m.resolved_priors["corr_g"].args.get("eta", 1.0) == 1
    pri = _prior_draws(m)
    c = np.asarray(pri["corr_g"]).reshape(-1, 6)  # pairs (t0,t1), (t0,t2), (t0,t3), (t1,t2), ...
    rho = c[:, 0]
    assert stats.kstest(rho, stats.uniform(-1, 2).cdf).pvalue > 1e-3
    np.testing.assert_allclose(c[:, 1], rho ** 2, rtol=1e-10)
    np.testing.assert_allclose(c[:, 3], rho, rtol=1e-10)
    sd = np.asarray(pri["sd_g"]).reshape(-1, 4)
    assert np.all(sd == sd[:, :1])


def test_cs_and_toep_prior_laws():
    """cs (q = 3): rho uniform on (-1/2, 1) for eta = 1; toep (eta = 2): the lag-1 correlation
    (its first partial autocorrelation) has (r + 1) / 2 ~ Beta(2, 2)."""
    df = _panel(family="gaussian")
    df["z"] = np.random.default_rng(5).normal(size=len(df))
    m = bg.GLMM("y ~ x + cs(1 + x + z | g)", df)
    r = np.asarray(_prior_draws(m)["corr_g"]).reshape(-1, 3)
    np.testing.assert_allclose(r, r[:, :1] * np.ones((1, 3)), rtol=1e-10)
    assert stats.kstest(r[:, 0], stats.uniform(-0.5, 1.5).cdf).pvalue > 1e-3
    m = bg.GLMM("y ~ x + toep(0 + factor(t) | g)", df, priors={"corr_g": Prior("LKJ", eta=2.0)})
    r1 = np.asarray(_prior_draws(m)["corr_g"]).reshape(-1, 6)[:, 0]
    assert stats.kstest((r1 + 1) / 2, stats.beta(2, 2).cdf).pvalue > 1e-3


def test_diag_has_no_correlation_block():
    m = bg.GLMM("y ~ x + diag(1 + x | g)", _panel(family="gaussian"))
    names = {v.name for v in m.build().value_vars}
    assert "cpc_g" not in names and "sd_g_log__" in names
    assert "corr_g" not in m.resolved_priors


@pytest.mark.skipif(not native.available(), reason="no C compiler")
def test_native_ar1_poisson_recovers_rho():
    """A short native fit of a Poisson GLMM with an AR(1) latent process: rho = 0.7 is
    recovered roughly, every posterior name is tidy (sd_g length q, rho_g, corr_g pairs)."""
    df = _panel(seed=1, n_groups=40, n_times=5, rho=0.7, sd=0.8)
    m = bg.GLMM("y ~ x + ar1(0 + factor(t) | g)", df, family="poisson")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = m.sample(draws=300, tune=300, chains=2, random_seed=3, progressbar=False, sampler="native")
    post = res.idata.posterior
    assert post.attrs.get("sampler") == "native"
    assert list(post.data_vars) == ["beta", "sd_g", "corr_g", "rho_g", "b_g"]
    assert post["rho_g"].dims[-1] == "g_rho" and list(post["g_rho"].values) == ["rho"]
    rho = np.asarray(post["rho_g"]).ravel()
    assert 0.45 < rho.mean() < 0.9
    np.testing.assert_allclose(np.asarray(post["corr_g"])[..., 0], np.asarray(post["rho_g"])[..., 0])
    assert 0.5 < float(post["sd_g"].mean()) < 1.2

"""Marginal (population-averaged) quantities and the GEE comparison."""
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import bayes_glmm as bg
from bayes_glmm.families import Link
from bayes_glmm.postfit.gee import fit_gee
from bayes_glmm.postfit.marginal import (ZLA_C2, gauss_hermite_normal, integrate_mean, marginal_coefficients,
                                 marginal_effects, marginal_means, random_effect_sd)
from bayes_glmm.ml.pql import fit_pql

from _fake_fits import FakePosterior


@pytest.fixture(scope="module")
def cbpp():
    return bg.GLMM("cbind(incidence, size - incidence) ~ period + (1 | herd)", bg.datasets.load("cbpp"),
                   family="binomial")


@pytest.fixture(scope="module")
def cbpp_ml(cbpp):
    return cbpp.fit_ml()


@pytest.fixture(scope="module")
def toenail():
    return bg.GLMM("Response ~ Month * Treatment + (1 | ID)", bg.datasets.load("toenail"), family="bernoulli")


# ------------------------------------------------------------------ pure numerics
def test_gauss_hermite_moments():
    x, w = gauss_hermite_normal(20)
    assert w.sum() == pytest.approx(1.0)
    assert (w * x ** 2).sum() == pytest.approx(1.0)
    assert (w * x ** 4).sum() == pytest.approx(3.0)
    with pytest.raises(ValueError, match="n_quad"):
        gauss_hermite_normal(0)


def test_quadrature_matches_monte_carlo_logit():
    eta, s = np.array([-2.0, 0.3, 1.5]), np.array([2.0, 1.0, 3.0])
    quad = integrate_mean(eta, s, Link("logit"), n_quad=40)
    mc = integrate_mean(eta, s, Link("logit"), method="montecarlo", n_draws=400_000, random_seed=1)
    np.testing.assert_allclose(quad, mc, atol=3e-3)
    # attenuation towards 1/2
    assert np.all(np.abs(quad - 0.5) < np.abs(special.expit(eta) - 0.5))


def test_closed_forms():
    eta, s = np.linspace(-2, 2, 5), np.linspace(0.1, 2.0, 5)
    np.testing.assert_allclose(integrate_mean(eta, s, Link("probit")), stats.norm.cdf(eta / np.sqrt(1 + s ** 2)),
                               atol=1e-10)
    np.testing.assert_allclose(integrate_mean(eta, s, Link("log")), np.exp(eta + s ** 2 / 2), rtol=1e-9)
    np.testing.assert_array_equal(integrate_mean(eta, s, Link("identity")), eta)


def test_random_effect_sd_sums_terms():
    Xr1 = np.array([[1.0, 2.0], [1.0, 0.0]])
    cov1 = np.array([[1.0, 0.3], [0.3, 0.5]])
    Xr2 = np.ones((2, 1))
    cov2 = np.array([[0.25]])
    s = random_effect_sd([Xr1, Xr2], [cov1, cov2])
    want = np.sqrt([1 + 4 * 0.3 + 4 * 0.5 + 0.25, 1 + 0.25])
    np.testing.assert_allclose(s, want)
    # a leading draws axis
    s2 = random_effect_sd([Xr1, Xr2], [np.stack([cov1, cov1]), np.stack([cov2, cov2])])
    assert s2.shape == (2, 2)


# ------------------------------------------------------------------ fits
def test_identity_link_marginal_equals_conditional():
    m = bg.GLMM("Reaction ~ Days + (Days | Subject)", bg.datasets.load("sleepstudy"))
    ml = m.fit_ml()
    mm = marginal_means(ml)
    np.testing.assert_allclose(mm["marginal"], mm["conditional"])
    # delta SE of a linear function of beta: sqrt(x V x')
    X = m.spec.X
    np.testing.assert_allclose(mm["se"], np.sqrt(np.einsum("ij,jk,ik->i", X, ml.vcov.to_numpy(), X)), rtol=1e-6)
    mc = marginal_coefficients(ml)
    np.testing.assert_allclose(mc["marginal"], ml.fixef, rtol=1e-10)


def test_marginal_means_by_quadrature_vs_monte_carlo(cbpp, cbpp_ml):
    mm = marginal_means(cbpp_ml, scale="mean")
    sd = float(cbpp_ml.varcorr["sdcor"].iloc[0])
    eta = cbpp.spec.X @ cbpp_ml.fixef.to_numpy()
    rng = np.random.default_rng(3)
    mc = special.expit(eta[:, None] + sd * rng.standard_normal((1, 200_000))).mean(1)
    np.testing.assert_allclose(mm["marginal"], mc, atol=2e-3)
    np.testing.assert_allclose(mm["conditional"], special.expit(eta))
    assert np.all(mm["lower"] < mm["marginal"]) and np.all(mm["marginal"] < mm["upper"])
    link = marginal_means(cbpp_ml, scale="link", se=None)
    np.testing.assert_allclose(link["marginal"], special.logit(mm["marginal"]))
    assert link["se"].isna().all()


def test_marginal_means_newdata_any_level(cbpp, cbpp_ml):
    nd = bg.datasets.load("cbpp").iloc[[0, 0]].reset_index(drop=True)
    nd["herd"] = nd["herd"].astype(object)
    nd.loc[1, "herd"] = "999"  # a herd not in the fit: integrated over all the same
    mm = marginal_means(cbpp_ml, nd, se=None)
    assert mm["marginal"].iloc[0] == pytest.approx(mm["marginal"].iloc[1])


def test_probit_zla_is_exact():
    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(40), 5)
    x = rng.normal(size=g.size)
    y = (0.2 + 0.7 * x + rng.normal(0, 0.8, 40)[g] + rng.normal(size=g.size) > 0).astype(float)
    m = bg.GLMM("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": g.astype(str)}), family="bernoulli",
                link="probit")
    ml = m.fit_ml()
    proj = marginal_coefficients(ml, se=None)
    zla = marginal_coefficients(ml, method="zla", se=None)
    np.testing.assert_allclose(proj["marginal"], zla["marginal"], atol=1e-8)
    s2 = float(ml.varcorr["vcov"].iloc[0])
    np.testing.assert_allclose(zla["marginal"], ml.fixef / np.sqrt(1 + s2), rtol=1e-10)


def test_logit_zla_attenuation(cbpp_ml):
    zla = marginal_coefficients(cbpp_ml, method="zla", se=None)
    s2 = float(cbpp_ml.varcorr["vcov"].iloc[0])
    np.testing.assert_allclose(zla["ratio"], 1 / np.sqrt(1 + ZLA_C2 * s2))
    proj = marginal_coefficients(cbpp_ml, se=None)
    # a period factor: the projection is exact; ZLA is within a few per cent of it
    np.testing.assert_allclose(proj["marginal"], zla["marginal"], rtol=0.03)


def test_marginal_coefficients_close_to_gee(toenail):
    # seed 002: GLMM coefficients are subject-specific; the marginal coefficients implied
    # by the AGQ fit agree with the GEE (population-averaged) estimates within ~1 GEE SE
    ml = toenail.fit_ml(n_agq=11)
    mc = marginal_coefficients(ml)
    gee = fit_gee(toenail)
    assert np.all(np.abs(mc["marginal"] - gee.fixef) < gee.se)
    assert abs(mc.loc["Month", "marginal"]) < abs(ml.fixef["Month"]) / 2  # strong attenuation


def test_marginal_effects(cbpp, cbpp_ml):
    d = bg.datasets.load("cbpp")
    cats = d["period"].cat.categories
    d1 = d.assign(period=pd.Categorical(np.full(len(d), cats[3]), categories=cats))
    d0 = d.assign(period=pd.Categorical(np.full(len(d), cats[0]), categories=cats))
    eff = marginal_effects(cbpp_ml, d1, d0, average=True)
    assert eff.shape[0] == 1
    assert eff["marginal"].iloc[0] < 0
    lor = marginal_effects(cbpp_ml, d1.iloc[:2], d0.iloc[:2], contrast="link", se=None)
    # the marginal log odds ratio is attenuated relative to the conditional one
    assert np.all(np.abs(lor["marginal"]) < np.abs(lor["conditional"]))
    np.testing.assert_allclose(lor["conditional"], cbpp_ml.fixef["period4"])
    with pytest.raises(ValueError, match="rows"):
        marginal_effects(cbpp_ml, d1.iloc[:2], d0.iloc[:3])
    with pytest.raises(ValueError, match="contrast"):
        marginal_effects(cbpp_ml, d1, d0, contrast="odds")


def test_bootstrap_reproducible(cbpp):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pql = fit_pql(cbpp.spec)
        a = marginal_coefficients(pql, se="bootstrap", n_boot=4, random_seed=7)
        b = marginal_coefficients(pql, se="bootstrap", n_boot=4, random_seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert a["uncertainty"].iloc[0].startswith("parametric bootstrap")
    assert np.all(a["se"] > 0)


def test_posterior_draws_give_intervals(cbpp, cbpp_ml):
    rng = np.random.default_rng(0)
    S = 12
    beta = cbpp_ml.fixef.to_numpy() + 0.05 * rng.standard_normal((S, 4))
    sd = np.abs(0.6 + 0.1 * rng.standard_normal((S, 1)))
    post = FakePosterior(cbpp.spec, beta, [sd])
    mc = marginal_coefficients(post)
    assert mc["uncertainty"].iloc[0] == "posterior"
    assert np.all(mc["lower"] <= mc["marginal"]) and np.all(mc["marginal"] <= mc["upper"])
    # one value per draw: the summary is over the per-draw marginal coefficients
    per_draw = np.array([marginal_coefficients(FakePosterior(cbpp.spec, beta[i:i + 1], [sd[i:i + 1]]))["marginal"]
                         for i in range(S)])
    np.testing.assert_allclose(mc["marginal"], per_draw.mean(0), rtol=1e-10)
    np.testing.assert_allclose(mc["se"], per_draw.std(0, ddof=1), rtol=1e-8)
    mm = marginal_means(post, bg.datasets.load("cbpp").iloc[:2])
    assert mm.shape == (2, 6) and np.all(mm["se"] > 0)


def test_errors(cbpp_ml):
    with pytest.raises(ValueError, match="scale"):
        marginal_means(cbpp_ml, scale="probability")
    with pytest.raises(ValueError, match="se="):
        marginal_means(cbpp_ml, se="jackknife")
    with pytest.raises(ValueError, match="method"):
        marginal_coefficients(cbpp_ml, method="gee")
    with pytest.raises(ValueError, match="rank-deficient"):
        marginal_coefficients(cbpp_ml, newdata=bg.datasets.load("cbpp").iloc[:2])
    with pytest.raises(ValueError, match="spec"):
        marginal_means(object())


# ------------------------------------------------------------------ GEE
def test_gee_matches_geepack(toenail):
    # R 4.2.2, geepack 1.3.9 (data sorted by ID, Visit):
    #   geeglm(Response ~ Month*Treatment, id = ID, family = binomial,
    #          corstr = "exchangeable", data = toenail)
    gee = fit_gee(toenail)
    np.testing.assert_allclose(gee.fixef, [-0.581922602, -0.171280029, 0.007180366, -0.077733152], atol=3e-4)
    np.testing.assert_allclose(gee.se, [0.172055004, 0.030000101, 0.259486603, 0.054113112], rtol=2e-3)
    assert float(np.ravel(gee.dep_params)[0]) == pytest.approx(0.421771934, abs=2e-3)
    assert gee.method == "GEE(exchangeable)" and np.isnan(gee.loglik) and gee.ranef == {}
    # a formula with groups= gives the same fit
    g2 = fit_gee("Response ~ Month * Treatment", bg.datasets.load("toenail"), family="bernoulli", groups="ID")
    np.testing.assert_allclose(g2.fixef, gee.fixef)


def test_gee_binomial_trials_expanded(cbpp):
    import statsmodels.api as sm

    gee = fit_gee(cbpp, cov_struct="independence")
    glm = sm.GLM(np.column_stack([cbpp.spec.y, cbpp.spec.trials - cbpp.spec.y]), cbpp.spec.X,
                 family=sm.families.Binomial()).fit()
    np.testing.assert_allclose(gee.fixef, glm.params, rtol=1e-6)


def test_gee_errors(cbpp):
    with pytest.raises(ValueError, match="cov_struct"):
        fit_gee(cbpp, cov_struct="ar7")
    with pytest.raises(ValueError, match="data="):
        fit_gee("y ~ x")
    m = bg.GLMM("cbind(incidence, size - incidence) ~ period", bg.datasets.load("cbpp"), family="binomial")
    with pytest.raises(ValueError, match="groups="):
        fit_gee(m)


def test_posterior_marginal_effects_per_draw_and_fast(toenail):
    # a posterior is evaluated in blocks of draws; the summary must be that of the per-draw
    # values, and 4,000 draws x 4 rows must take well under a second (it took 17 s per draw loop)
    import time

    ml = toenail.fit_ml()
    rng = np.random.default_rng(5)
    S = 4000
    beta = ml.fixef.to_numpy() + 0.05 * rng.standard_normal((S, 4))
    sd = np.abs(4.0 + 0.3 * rng.standard_normal((S, 1)))
    post = FakePosterior(toenail.spec, beta, [sd])
    d = bg.datasets.load("toenail").iloc[:4]
    cats = sorted(bg.datasets.load("toenail")["Treatment"].unique())
    d1, d0 = d.assign(Treatment=cats[1]), d.assign(Treatment=cats[0])
    t0 = time.perf_counter()
    eff = marginal_effects(post, d1, d0)
    elapsed = time.perf_counter() - t0
    assert elapsed < 3.0, elapsed  # generous: a shared CI machine; ~0.2 s unloaded
    idx = [0, 17, 4000 - 1]
    per_draw = np.array([marginal_effects(FakePosterior(toenail.spec, beta[i:i + 1], [sd[i:i + 1]]), d1, d0,
                                          se=None)["marginal"] for i in idx])
    sub = marginal_effects(FakePosterior(toenail.spec, beta[idx], [sd[idx]]), d1, d0)
    np.testing.assert_allclose(sub["marginal"], per_draw.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sub["se"], per_draw.std(0, ddof=1), rtol=1e-10)
    avg = marginal_effects(post, d1, d0, average=True)
    assert avg.shape[0] == 1 and avg["lower"].iloc[0] < avg["marginal"].iloc[0] < avg["upper"].iloc[0]
    assert np.all(eff["lower"] < eff["marginal"]) and np.all(eff["marginal"] < eff["upper"])

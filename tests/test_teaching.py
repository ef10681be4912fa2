"""Teaching tools: pooling, prior sensitivity, prior predictive summaries, funnel, ranking.

Fast tests use closed forms, hand-made posteriors (no MCMC) or tiny fits; the MCMC
tests use 1-2 chains and a few hundred draws.
"""
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import bayes_glmm as bg
from bayes_glmm.bayes import BayesResults
from bayes_glmm.priors import Prior
from bayes_glmm.teaching import (default_sd_priors, fit_glm, funnel_demo, pooling, prior_pdf,
                                 prior_predictive_summary, prior_sensitivity, rank_groups,
                                 response_statistics, simulate_asthma, simulate_funnel_data)
from bayes_glmm.teaching.sensitivity import _reweight


@pytest.fixture(scope="module")
def sleep():
    return bg.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def sleep_ri(sleep):
    return bg.GLMM("Reaction ~ Days + (1 | Subject)", sleep)


def fake_posterior(model, b, sd, beta=None, sigma=None, diverging=None):
    """BayesResults over hand-made draws (one chain): b (S, J, q), sd (S, q)."""
    spec = model.spec
    t = spec.terms[0]
    S = b.shape[0]
    post = {"beta": np.zeros((1, S, spec.p)) if beta is None else np.asarray(beta)[None],
            f"sd_{t.ident}": np.asarray(sd)[None], f"b_{t.ident}": np.asarray(b)[None]}
    if spec.family.has_sigma:
        post["sigma"] = np.ones((1, S)) if sigma is None else np.asarray(sigma)[None]
    ss = {"diverging": np.zeros((1, S), bool) if diverging is None else np.asarray(diverging)[None]}
    return BayesResults(model, az.from_dict(posterior=post, sample_stats=ss))


# --------------------------------------------------------------------------- fit_glm
def test_fit_glm_gaussian_is_least_squares():
    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(30), rng.normal(size=30)])
    y = X @ [1.0, 2.0] + rng.normal(size=30)
    beta, mu = fit_glm(X, y, bg.get_family("gaussian"), ridge=0.0)
    np.testing.assert_allclose(beta, np.linalg.lstsq(X, y, rcond=None)[0], rtol=1e-10)
    np.testing.assert_allclose(mu, X @ beta)


def test_fit_glm_poisson_and_binomial_match_statsmodels():
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(1)
    X = np.column_stack([np.ones(60), rng.normal(size=60)])
    y = rng.poisson(np.exp(X @ [0.5, 0.3]))
    off = rng.normal(scale=0.1, size=60)
    b, _ = fit_glm(X, y, bg.get_family("poisson"), offset=off)
    ref = sm.GLM(y, X, family=sm.families.Poisson(), offset=off).fit().params
    np.testing.assert_allclose(b, ref, rtol=1e-6)
    n = rng.integers(1, 10, 60)
    s = rng.binomial(n, 1 / (1 + np.exp(-(X @ [-0.2, 0.8]))))
    b, _ = fit_glm(X, s, bg.get_family("binomial"), trials=n)
    ref = sm.GLM(np.column_stack([s, n - s]), X, family=sm.families.Binomial()).fit().params
    np.testing.assert_allclose(b, ref, rtol=1e-6)


# --------------------------------------------------------------------------- pooling
def test_pooling_balanced_lmm_partial_between(sleep, sleep_ri):
    before = sleep.copy()
    tab = pooling(sleep_ri)
    pd.testing.assert_frame_equal(sleep, before)  # user data untouched
    assert list(tab.columns) == ["n", "complete", "no_pool", "partial_ml", "separated"]
    assert (tab["n"] == 10).all() and len(tab) == 18
    # complete pooling = OLS intercept; no pooling = subject dummies + common Days slope
    X = np.column_stack([np.ones(len(sleep)), sleep["Days"]])
    ols = np.linalg.lstsq(X, sleep["Reaction"], rcond=None)[0]
    np.testing.assert_allclose(tab["complete"], ols[0], rtol=1e-8)
    means = sleep.groupby("Subject", observed=True)["Reaction"].mean()
    no_pool = means - ols[1] * sleep["Days"].mean()  # balanced: same Days in every subject
    np.testing.assert_allclose(tab["no_pool"], no_pool.loc[tab.index], rtol=1e-8)
    # partial pooling lies strictly between (balanced LMM: BLUP = shrinkage of the group mean)
    lo = np.minimum(tab["no_pool"], tab["complete"])
    hi = np.maximum(tab["no_pool"], tab["complete"])
    assert ((tab["partial_ml"] > lo) & (tab["partial_ml"] < hi)).all()
    # one common shrinkage factor for all subjects
    lam = (tab["partial_ml"] - tab["complete"]) / (tab["no_pool"] - tab["complete"])
    assert lam.std() < 1e-6 and 0 < lam.mean() < 1
    assert not tab["separated"].any()


def test_pooling_random_slope_no_pool_is_per_group_ols(sleep):
    m = bg.GLMM("Reaction ~ Days + (Days | Subject)", sleep)
    tab = pooling(m, coef="Days", fit_ml=False)
    slopes = sleep.groupby("Subject", observed=True).apply(
        lambda d: np.polyfit(d["Days"], d["Reaction"], 1)[0])
    np.testing.assert_allclose(tab["no_pool"], slopes.loc[tab.index], rtol=1e-6)
    assert tab.attrs["coef"] == "Days" and "partial_ml" not in tab


def test_pooling_separation_and_group_constant_covariate():
    g = np.repeat(np.arange(6), 5)
    arm = (g % 2).astype(float)  # constant within group: absorbed by the group dummies
    y = np.tile([1.0, 0, 0, 1, 0], 6)
    y[g == 0] = 0.0  # all-zero group -> no-pooling estimate -inf
    y[g == 1] = 1.0  # all-one group -> +inf
    y[g == 2] = [0, 1, 0, 1, 1]
    df = pd.DataFrame({"y": y, "arm": arm, "g": pd.Categorical([f"G{j}" for j in g])})
    tab = pooling(bg.GLMM("y ~ arm + (1 | g)", df, family="bernoulli"), fit_ml=False)
    assert tab.loc["G0", "no_pool"] == -np.inf and tab.loc["G1", "no_pool"] == np.inf
    assert tab["separated"].tolist() == [True, True, False, False, False, False]
    np.testing.assert_allclose(tab.loc["G2", "no_pool"], np.log(3 / 2), rtol=1e-6)
    # complete pooling folds the arm effect into each group's value
    assert tab.loc["G0", "complete"] != pytest.approx(tab.loc["G1", "complete"])


def test_pooling_bad_term_names_choices(sleep_ri):
    with pytest.raises(ValueError, match="Subject"):
        pooling(sleep_ri, term="Nope", fit_ml=False)
    with pytest.raises(ValueError, match="Intercept"):
        pooling(sleep_ri, coef="Days", fit_ml=False)


# --------------------------------------------------------------------------- ranking
def test_rank_groups_probabilities(sleep_ri):
    J, S = 18, 400
    rng = np.random.default_rng(0)
    mean = np.linspace(-2, 2, J)
    b = (mean[None, :] + rng.normal(scale=0.8, size=(S, J)))[:, :, None]
    post = fake_posterior(sleep_ri, b, np.ones((S, 1)))
    r = rank_groups(post, "Subject", "(Intercept)", k=3)
    assert r["p_top_k"].sum() == pytest.approx(3.0)
    assert ((r["p_top_k"] >= 0) & (r["p_top_k"] <= 1)).all()
    assert r.index[0] == sleep_ri.spec.terms[0].levels[J - 1]  # largest mean is most likely top
    assert (r["rank_lo"] <= r["mean_rank"]).all() and (r["mean_rank"] <= r["rank_hi"]).all()
    low = rank_groups(post, k=3, largest=False)
    assert low.index[0] == sleep_ri.spec.terms[0].levels[0]
    with pytest.raises(ValueError, match="between 1"):
        rank_groups(post, k=0)


def test_rank_groups_with_blups(sleep):
    m = bg.GLMM("Reaction ~ Days + (Days | Subject)", sleep)
    ml = m.fit_ml()
    blup = ml.ranef["Subject"]["Days"].to_numpy()
    S, J = 200, 18
    rng = np.random.default_rng(1)
    b = np.stack([np.zeros((S, J)), blup[None, :] + rng.normal(scale=2.0, size=(S, J))], axis=2)
    post = fake_posterior(m, b, np.ones((S, 2)), beta=np.zeros((S, 2)))
    r = rank_groups(post, coef="Days", k=5, ml=ml)
    assert sorted(r["blup_rank"]) == list(range(1, J + 1))
    assert r["p_top_k"].sum() == pytest.approx(5.0)
    top_blup = r.sort_values("blup_rank").index[0]
    assert r.loc[top_blup, "p_top_k"] > 0.5


# --------------------------------------------------------------------------- priors
@pytest.mark.parametrize("prior,on", [
    (Prior("HalfNormal", sigma=2.0), "sd"), (Prior("HalfStudentT", nu=3, sigma=1.5), "sd"),
    (Prior("Exponential", lam=0.7), "sd"), (Prior("HalfCauchy", beta=1.0), "sd"),
    (Prior("InverseGamma", alpha=1.0, beta=2.0), "variance"),
    (Prior("Gamma", alpha=2.0, beta=1.0), "sd"), (Prior("LogNormal", mu=0.0, sigma=0.5), "sd"),
])
def test_prior_pdf_integrates_to_one(prior, on):
    val, _ = integrate.quad(lambda x: prior_pdf(prior, x, on=on), 0, np.inf, limit=200)
    assert val == pytest.approx(1.0, abs=1e-5)


def test_prior_pdf_values():
    x = np.array([0.5, 1.0, 3.0])
    np.testing.assert_allclose(prior_pdf(Prior("HalfStudentT", nu=3, sigma=2), x), 2 * stats.t(3, scale=2).pdf(x))
    ig = Prior("InverseGamma", alpha=2.0, beta=1.0)
    np.testing.assert_allclose(prior_pdf(ig, x, on="variance"), stats.invgamma(2, scale=1).pdf(x ** 2) * 2 * x)
    with pytest.raises(ValueError, match="on="):
        prior_pdf(ig, x, on="precision")


def test_default_sd_priors(sleep_ri):
    pri = default_sd_priors(sleep_ri)
    assert list(pri) == ["half-normal", "half-t(3)", "exponential", "inverse-gamma on variance"]
    assert pri["half-normal"] == sleep_ri.resolved_priors["sd_Subject"]
    assert pri["inverse-gamma on variance"][0] == "variance"


def test_importance_reweighting_recovers_target():
    rng = np.random.default_rng(0)
    draws = np.abs(rng.normal(size=(20000, 1)))  # "posterior" = HalfNormal(1) prior
    out, khat = _reweight(draws, Prior("HalfNormal", sigma=1.0), Prior("Exponential", lam=2.0), "sd", rng)
    # HalfNormal(1) x Exp(2)/HalfNormal(1) -> Exp(2): mean 0.5
    assert out.mean() == pytest.approx(0.5, abs=0.03)
    assert khat < 0.7


def test_prior_sensitivity_rejects_bad_entries(sleep_ri):
    with pytest.raises(ValueError, match="positive-support"):
        prior_sensitivity(sleep_ri, {"normal": Prior("Normal", mu=0, sigma=1)}, ml=False)
    with pytest.raises(ValueError, match=r"sd_priors\['ig'\] must be a positive-support"):
        prior_sensitivity(sleep_ri, {"ig": ("precision", Prior("InverseGamma", alpha=1, beta=1))},
                          ml=False)


def _check_sensitivity(sleep_ri, use, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = prior_sensitivity(sleep_ri, use, random_seed=2, sampler="pymc", progressbar=False, **kw)
    tab = res.table
    assert list(tab.index.get_level_values(0)) == list(use)
    assert (tab["mean"] > 0).all() and (tab["q05"] < tab["q95"]).all()
    ml_sd = np.sqrt(sleep_ri.fit_ml().varcorr["vcov"].iloc[0])
    assert tab["ml"].iloc[0] == pytest.approx(ml_sd, rel=1e-6)
    # the Subject SD is well identified (18 subjects): the posterior sits near the ML value
    assert tab.loc[("half-normal", "(Intercept)"), "median"] == pytest.approx(ml_sd, rel=0.35)
    ig = tab.loc[("inverse-gamma on variance", "(Intercept)")]
    assert ig["on"] == "variance"
    assert ig["method"] == "NUTS" or np.isfinite(ig["pareto_k"])
    assert res.fits["half-normal"] is not None and set(res.sd_draws) == set(use)
    return res


def test_prior_sensitivity_fits(sleep_ri):
    pri = default_sd_priors(sleep_ri)
    use = {k: pri[k] for k in ("half-normal", "inverse-gamma on variance")}
    res = _check_sensitivity(sleep_ri, use, draws=200, tune=300, chains=1)
    ig = res.table.loc[("inverse-gamma on variance", "(Intercept)")]
    # every prior has its own NUTS fit by default (reweight=False), the variance prior included
    assert ig["method"] == "NUTS" and res.fits["inverse-gamma on variance"] is not None


@pytest.mark.slow
def test_prior_sensitivity_all_default_priors(sleep_ri):
    res = _check_sensitivity(sleep_ri, default_sd_priors(sleep_ri), draws=1000, tune=1000, chains=2)
    med = res.table["median"]
    assert med.max() / med.min() < 1.3  # 18 subjects: the SD prior hardly matters


# --------------------------------------------------------------------------- prior predictive
def test_response_statistics_by_hand(sleep_ri):
    spec = sleep_ri.spec
    Y = np.vstack([np.zeros(spec.n), np.arange(spec.n, dtype=float)])
    st = response_statistics(Y, spec)
    assert st.shape[0] == 2
    assert st.loc[0, "mean"] == 0 and st.loc[0, "sd_group_means"] == 0
    assert st.loc[1, "mean"] == pytest.approx((spec.n - 1) / 2)


def test_prior_predictive_summary_bernoulli():
    df = simulate_funnel_data(8, 5, random_seed=4)
    m = bg.GLMM("y ~ 1 + (1 | g)", df, family="bernoulli")
    s = prior_predictive_summary(m, draws=200, random_seed=1)
    tab = s.table
    assert {"mean", "sd_group_means", "prop_groups_all_0", "prop_groups_all_1"} <= set(tab.index)
    q = tab[["q05", "q25", "q50", "q75", "q95"]].to_numpy()
    assert (np.diff(q, axis=1) >= 0).all()
    assert ((q >= 0) & (q <= 1)).all()  # proportions
    assert tab.loc["mean", "observed"] == pytest.approx(df["y"].mean())
    assert s.stats.shape == (200, len(tab))
    again = prior_predictive_summary(m, draws=200, random_seed=1)
    pd.testing.assert_frame_equal(tab, again.table)  # seeded


def test_prior_predictive_summary_counts():
    ep = bg.datasets.load("epilepsy")
    m = bg.GLMM("count ~ visit + (1 | id)", ep, family="poisson")
    s = prior_predictive_summary(m, draws=100, random_seed=0)
    assert {"prop_zero", "max"} <= set(s.table.index)
    assert s.table.loc["max", "observed"] == ep["count"].max()


# --------------------------------------------------------------------------- funnel
def test_simulate_funnel_data_seeded():
    a = simulate_funnel_data(random_seed=5)
    pd.testing.assert_frame_equal(a, simulate_funnel_data(random_seed=5))
    assert a.shape == (48, 2) and set(a["y"]) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="n_groups"):
        simulate_funnel_data(1)


def test_funnel_centered_worse_than_noncentered():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = funnel_demo(random_seed=1, draws=300, tune=300, chains=2, sampler="pymc",
                          progressbar=False)
    tab = res.table
    assert list(tab.index) == ["centered", "non-centered"]
    assert tab.loc["centered", "divergences"] > tab.loc["non-centered", "divergences"]
    # robust statistic: the funnel wrecks mixing of log sd in the centered form
    assert tab.loc["centered", "ess_bulk_log_sd"] < tab.loc["non-centered", "ess_bulk_log_sd"]
    assert res.data.shape == (48, 2)


# --------------------------------------------------------------------------- sensitive children
def test_simulate_asthma_seeded():
    a = simulate_asthma(10, 5, random_seed=1)
    pd.testing.assert_frame_equal(a, simulate_asthma(10, 5, random_seed=1))
    assert a.shape == (50, 6) and set(a["attack"]) <= {0, 1}
    assert a.groupby("child", observed=True)["true_slope"].nunique().eq(1).all()


@pytest.mark.slow
def test_rank_sensitive_children_asthma():
    df = simulate_asthma(60, 40, sd_tsp=0.8, random_seed=11)
    m = bg.GLMM("attack ~ TSP + SEX + HAYF + (1 + TSP || child)", df, family="bernoulli")
    ml = m.fit_ml()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = m.sample(draws=500, tune=500, chains=2, random_seed=3, sampler="pymc", progressbar=False)
    r = rank_groups(post, term="child", coef="TSP", k=5, ml=ml)
    assert r["p_top_k"].sum() == pytest.approx(5.0)
    true = df.groupby("child", observed=True)["true_slope"].first().loc[r.index]
    assert np.corrcoef(true, r["post_mean"])[0, 1] > 0.5
    assert np.corrcoef(r["blup"], r["post_mean"])[0, 1] > 0.9

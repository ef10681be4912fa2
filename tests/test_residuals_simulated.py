"""Simulated (DHARMa) residuals and their tests, on ML and Bayesian fits."""
from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm.bayes import BayesResults
from bayes_glmm.postfit.residuals import outside_frequency, residual_tests, scaled_residuals, simulation_test

N_SIM = 200


def _groups(rng, n_groups=30, per=10, sd=0.5):
    g = np.repeat(np.arange(n_groups), per)
    x = rng.normal(size=g.size)
    return g, x, rng.normal(0, sd, n_groups)[g]


def _counts(kind, seed=1):
    rng = np.random.default_rng(seed)
    g, x, b = _groups(rng)
    mu = np.exp(0.5 + 0.4 * x + b)
    if kind == "poisson":
        y = rng.poisson(mu)
    elif kind == "nb":  # theta = 1: variance mu + mu^2
        y = rng.negative_binomial(1.0, 1.0 / (1.0 + mu))
    else:  # zero inflated: 40% structural zeros
        y = np.where(rng.random(g.size) < 0.4, 0, rng.poisson(mu))
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{k}" for k in g]})


@pytest.fixture(scope="module")
def poisson_fit():
    return bg.GLMM("y ~ x + (1 | g)", _counts("poisson"), family="poisson").fit_ml()


# ------------------------------------------------------------------ the pure functions
def test_scaled_residuals_are_the_ecdf_with_randomized_ties():
    sims = np.array([[0, 1, 1, 2], [5, 6, 7, 8], [5, 6, 7, 8], [1, 1, 1, 1]], dtype=float)
    y = np.array([1.0, 4.0, 9.0, 1.0])
    u = scaled_residuals(y, sims, discrete=True, rng=0)
    U = np.random.default_rng(0).uniform(size=4)
    # F(y-) + U (F(y) - F(y-)): 1 below, 2 ties out of 4 for the first row
    np.testing.assert_allclose(u, [(1 + 2 * U[0]) / 4, 0.0, 1.0, U[3]])
    assert np.array_equal(scaled_residuals(y, sims, discrete=False), [0.25, 0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="shape"):
        scaled_residuals(y[:3], sims, discrete=True)


def test_simulation_test_is_two_sided():
    sim = np.arange(100.0)
    ratio, p = simulation_test(99.0, sim)
    assert ratio == pytest.approx(99 / 49.5) and p == pytest.approx(0.02)
    assert simulation_test(49.5, sim)[1] == 1.0


def test_residual_tests_on_exactly_uniform_input():
    rng = np.random.default_rng(3)
    sims = rng.normal(size=(500, 100))
    y = rng.normal(size=500)
    tab = residual_tests(y, sims, scaled_residuals(y, sims, discrete=False))
    assert list(tab.index) == ["uniformity", "dispersion", "zero_inflation", "outliers"]
    assert list(tab.columns) == ["statistic", "p"]
    assert (tab["p"] > 0.01).all() and tab.loc["dispersion", "statistic"] == pytest.approx(1, abs=0.15)


def test_outside_frequency_is_calibrated_for_continuous_and_counts():
    rng = np.random.default_rng(5)
    assert outside_frequency(rng.normal(size=(50, 99))) == pytest.approx(2 / 100)
    # Poisson rows: the frequency of an independent draw outside all simulations matches
    mu = np.repeat(np.linspace(0.3, 8, 40), 100)
    sims = rng.poisson(mu[:, None], size=(mu.size, 60)).astype(float)
    y = rng.poisson(mu).astype(float)
    observed = np.mean((y < sims.min(1)) | (y > sims.max(1)))
    expected = outside_frequency(sims)
    assert expected < 2 / 61 and observed == pytest.approx(expected, abs=4 * np.sqrt(expected / mu.size))


# ------------------------------------------------------------------ ML fits
def test_true_model_residuals_are_uniform(poisson_fit):
    u = poisson_fit.residuals("simulated", n_sim=N_SIM, random_seed=2)
    assert u.shape == (300,) and u.min() >= 0 and u.max() <= 1
    # roughly uniform: each quarter holds about a quarter of the residuals
    quarters = np.histogram(u, bins=4, range=(0, 1))[0] / u.size
    np.testing.assert_allclose(quarters, 0.25, atol=0.07)
    tab = poisson_fit.residual_tests(n_sim=N_SIM, random_seed=2)
    assert tab.loc["uniformity", "p"] > 0.05
    assert tab.loc["dispersion", "p"] > 0.05 and tab.loc["zero_inflation", "p"] > 0.05


def test_seeds_reproduce_and_old_kinds_still_work(poisson_fit):
    a = poisson_fit.residuals("simulated", n_sim=50, random_seed=7)
    assert np.array_equal(a, poisson_fit.residuals("simulated", n_sim=50, random_seed=7))
    assert not np.array_equal(a, poisson_fit.residuals("simulated", n_sim=50, random_seed=8))
    pd.testing.assert_frame_equal(poisson_fit.residual_tests(n_sim=50, random_seed=7),
                                  poisson_fit.residual_tests(n_sim=50, random_seed=7))
    assert poisson_fit.residuals().shape == (300,)  # pearson stays the ML default
    assert poisson_fit.residuals("response").shape == (300,)
    with pytest.raises(ValueError, match="n_sim"):
        poisson_fit.residuals("simulated", n_sim=1)
    with pytest.raises(ValueError, match="simulated"):
        poisson_fit.residuals("deviance")


def test_overdispersed_data_fail_the_dispersion_test():
    fit = bg.GLMM("y ~ x + (1 | g)", _counts("nb"), family="poisson").fit_ml()
    tab = fit.residual_tests(n_sim=N_SIM, random_seed=1)
    assert tab.loc["dispersion", "p"] < 0.01 and tab.loc["dispersion", "statistic"] > 1.5
    assert tab.loc["uniformity", "p"] < 0.01


def test_zero_inflated_data_fail_the_zero_inflation_test():
    fit = bg.GLMM("y ~ x + (1 | g)", _counts("zi"), family="poisson").fit_ml()
    tab = fit.residual_tests(n_sim=N_SIM, random_seed=1)
    assert tab.loc["zero_inflation", "p"] < 0.01 and tab.loc["zero_inflation", "statistic"] > 1.2


def _ordinal_data(seed=4):
    rng = np.random.default_rng(seed)
    g, x, b = _groups(rng, 20, 10)
    latent = 0.8 * x + b + rng.logistic(size=g.size)
    y = np.digitize(latent, [-1.0, 0.5, 1.5])
    levels = ["low", "mid", "high", "top"]
    return pd.DataFrame({"y": pd.Categorical(np.array(levels)[y], categories=levels, ordered=True),
                         "x": x, "g": [f"g{k}" for k in g]})


def _betabinomial_data(seed=5):
    rng = np.random.default_rng(seed)
    g, x, b = _groups(rng, 20, 8)
    p = 1 / (1 + np.exp(-(0.2 + 0.5 * x + b)))
    n = rng.integers(5, 15, g.size)
    y = rng.binomial(n, rng.beta(p * 10, (1 - p) * 10))
    return pd.DataFrame({"y": y, "n": n, "x": x, "g": [f"g{k}" for k in g]})


@pytest.mark.parametrize("family, formula, data", [
    ("hurdle_poisson", "y ~ x + (1 | g)", lambda: _counts("zi", seed=6)),
    ("ordinal", "y ~ x + (1 | g)", _ordinal_data),
    ("betabinomial", "cbind(y, n - y) ~ x + (1 | g)", _betabinomial_data),
])
def test_new_families_under_their_own_model(family, formula, data):
    d = data()
    fit = bg.GLMM(formula, d, family=family).fit_ml()
    u = fit.residuals("simulated", n_sim=N_SIM, random_seed=3)
    assert u.shape == (len(d),) and 0 <= u.min() and u.max() <= 1
    tab = fit.residual_tests(n_sim=N_SIM, random_seed=3)
    assert tab.loc["uniformity", "p"] > 0.01 and tab.loc["dispersion", "p"] > 0.01
    assert tab.loc["zero_inflation", "p"] > 0.01


# ------------------------------------------------------------------ Bayesian fits
def _posterior_near(fit, S=120, seed=0):
    """BayesResults over draws around the ML fit (no MCMC): beta ~ N(beta_hat, vcov), b at the
    conditional modes plus their conditional SD."""
    rng = np.random.default_rng(seed)
    t = fit.spec.terms[0]
    beta = rng.multivariate_normal(fit.fixef.to_numpy(), np.asarray(fit.vcov, dtype=float), size=S)
    mode = np.asarray(fit.fit.b[0], dtype=float).reshape(t.n_levels, t.q)
    sd_b = np.asarray(fit.fit.b_sd[0], dtype=float).reshape(t.n_levels, t.q)
    b = mode[None] + sd_b[None] * rng.normal(size=(S, t.n_levels, t.q))
    sd = np.full((S, t.q), float(np.sqrt(fit.covs[0][0, 0])))
    post = {"beta": beta[None], f"sd_{t.ident}": sd[None], f"b_{t.ident}": b[None]}
    model = bg.GLMM("y ~ x + (1 | g)", _counts("poisson"), family="poisson")
    return BayesResults(model, az.from_dict(posterior=post))


def test_bayesian_residuals_use_the_posterior_predictive(poisson_fit):
    post = _posterior_near(poisson_fit)
    u = post.residuals("simulated", n_sim=100, random_seed=1)
    assert u.shape == (300,) and np.array_equal(u, post.residuals(n_sim=100, random_seed=1))
    tab = post.residual_tests(n_sim=100, random_seed=1)
    assert tab.loc["uniformity", "p"] > 0.05 and tab.loc["dispersion", "p"] > 0.05
    # fewer draws than n_sim: draws are reused in turn with new response noise
    assert post.residuals(n_sim=300, random_seed=1).shape == (300,)
    with pytest.raises(ValueError, match="simulated"):
        post.residuals("pearson")


def test_residual_plot(poisson_fit):
    import matplotlib
    matplotlib.use("Agg")
    fig = bg.plots.residuals(poisson_fit, n_sim=50, random_seed=0)
    qq, rp = fig.axes[:2]
    assert qq.get_xlabel() == "expected (uniform)" and "rank" in rp.get_xlabel()
    assert len(qq.lines[0].get_xdata()) == 300
    with pytest.raises(ValueError, match="rows"):
        bg.plots.residuals(poisson_fit, residuals=np.zeros(3))


@pytest.mark.parametrize("kind, misfit", [("poisson", False), ("nb", True)])
def test_bayesian_fit_by_nuts(kind, misfit):
    """A short NUTS run (the native sampler, ~0.3 s once compiled): the posterior predictive
    residuals pass under the true model and flag the overdispersion of NB counts."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short chains: ESS warnings
        post = bg.GLMM("y ~ x + (1 | g)", _counts(kind), family="poisson").sample(
            draws=250, tune=300, chains=2, random_seed=1, progressbar=False)
    tab = post.residual_tests(n_sim=250, random_seed=1)
    if misfit:
        assert tab.loc["dispersion", "p"] < 0.01 and tab.loc["dispersion", "statistic"] > 1.5
    else:
        assert tab.loc["uniformity", "p"] > 0.05 and tab.loc["dispersion", "p"] > 0.05


@pytest.mark.parametrize("family, formula, data", [
    ("hurdle_poisson", "y ~ x + (1 | g)", lambda: _counts("zi", seed=6)),
    ("ordinal", "y ~ x + (1 | g)", _ordinal_data),
    ("betabinomial", "cbind(y, n - y) ~ x + (1 | g)", _betabinomial_data),
])
def test_new_families_by_nuts(family, formula, data):
    import warnings

    d = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = bg.GLMM(formula, d, family=family).sample(draws=200, tune=300, chains=2, random_seed=1,
                                                           progressbar=False)
    u = post.residuals("simulated", n_sim=200, random_seed=2)
    assert u.shape == (len(d),) and 0 <= u.min() and u.max() <= 1
    tab = post.residual_tests(n_sim=200, random_seed=2)
    assert tab.loc["uniformity", "p"] > 0.01 and tab.loc["dispersion", "p"] > 0.01


# ------------------------------------------------------------------ per-group recalculation
def test_group_sums_are_dharmas_recalculation(poisson_fit):
    from bayes_glmm.postfit.residuals import aggregate_by_group

    y, sims = np.array([1.0, 2.0, 3.0, 4.0]), np.arange(8.0).reshape(4, 2)
    yg, sg = aggregate_by_group(y, sims, [1, 0, 1, 1], 2)
    assert np.array_equal(yg, [2.0, 8.0]) and np.array_equal(sg, [[2.0, 3.0], [0 + 4 + 6, 1 + 5 + 7]])
    # the fit's per-group residuals: the same simulations (same seed), summed per level of g
    r = poisson_fit.residuals("simulated", n_sim=N_SIM, random_seed=5, group="g")
    term = poisson_fit.spec.terms[0]
    assert list(r.index) == list(term.levels) and r.index.name == "g"
    seed = np.random.SeedSequence(5)
    sim_seed, pit_seed = seed.spawn(2)
    sims = poisson_fit._residual_simulations(N_SIM, sim_seed)
    yg, sg = aggregate_by_group(poisson_fit.spec.y, sims, term.codes, len(term.levels))
    np.testing.assert_array_equal(r.to_numpy(), scaled_residuals(yg, sg, discrete=True,
                                                                 rng=np.random.default_rng(pit_seed)))
    # labels per row give the same thing
    labels = np.asarray(term.levels, dtype=object)[term.codes]
    np.testing.assert_array_equal(poisson_fit.residuals("simulated", n_sim=N_SIM, random_seed=5,
                                                        group=labels).to_numpy(), r.to_numpy())
    with pytest.raises(ValueError, match="grouping factor"):
        poisson_fit.residuals("simulated", group="herd")
    with pytest.raises(ValueError, match="one per fitted row"):
        poisson_fit.residuals("simulated", group=["a", "b"])


def test_group_level_misfit_shows_in_grouped_tests(poisson_fit):
    # 30 groups of 10 rows with a group effect (sd 0.5): a model that ignores it (a random
    # intercept on 3 super-groups instead) is overdispersed at the group level
    d = _counts("poisson")
    d["h"] = [f"h{int(g[1:]) % 3}" for g in d["g"]]
    wrong = bg.GLMM("y ~ x + (1 | h)", d, family="poisson").fit_ml()
    t_wrong = wrong.residual_tests(n_sim=N_SIM, random_seed=3, group=d["g"].to_numpy())
    t_right = poisson_fit.residual_tests(n_sim=N_SIM, random_seed=3, group="g")
    assert t_wrong.loc["dispersion", "p"] < 0.01 and t_wrong.loc["dispersion", "statistic"] > 1.5
    assert t_right.loc["dispersion", "p"] > 0.05 and t_right.loc["uniformity", "p"] > 0.01

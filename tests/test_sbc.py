"""Simulation-based calibration of the NUTS path (``benchmarks/sbc.py``).

The SBC runs are ``slow`` (30 replications of ten models -- the three core ones, the
gaussian, Gamma, Beta and zero-inflated Poisson, a Poisson GLMM with an AR(1) latent
process, ``ar1(0 + factor(t) | g)`` (27 s), and issue 18's Student-t and beta-binomial
(~1 min together under load) -- about 2.5 min in all on 2 cores); the checks
of the rank and uniformity helpers are pure NumPy and run by default, because an SBC
whose test cannot reject a skewed histogram would pass anything, and so are the checks that
every model fixes every prior and that the simulators draw each family as the package
defines it.
"""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SBC_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "sbc.py"


def _load_sbc():
    # benchmarks/ is not a package; load the script by path.  It goes into sys.modules
    # before exec so that its dataclass can resolve its own module.
    name = "bayes_glmm_benchmarks_sbc"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SBC_PATH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


sbc = _load_sbc()


# ------------------------------------------------------------------ helpers (fast)
def test_rank_and_thinning():
    draws = np.array([0.1, 0.5, 0.9])
    assert sbc.rank_of(-1.0, draws) == 0
    assert sbc.rank_of(0.6, draws) == 2
    assert sbc.rank_of(2.0, draws) == 3
    idx = sbc.thin_indices(1000, 99)
    assert idx.size == 99 and idx[0] == 0 and idx[-1] == 999 and np.all(np.diff(idx) >= 10)
    with pytest.raises(ValueError):
        sbc.thin_indices(50, 99)


def test_bins_are_equiprobable_divisors():
    assert sbc.choose_bins(99, 100) == 20  # 100 rank values, 5 expected per bin
    assert sbc.choose_bins(49, 30) == 5
    for L, reps in [(99, 100), (49, 30), (39, 10), (199, 1000)]:
        b = sbc.choose_bins(L, reps)
        assert (L + 1) % b == 0 and b >= 2


def test_uniformity_tests_accept_uniform_and_reject_skewed():
    rng = np.random.default_rng(0)
    L = 99
    uniform = rng.integers(0, L + 1, size=200)
    p_chi, p_ks, _ = sbc.uniformity_pvalues(uniform, L, rng)
    assert p_chi > 0.01 and p_ks > 0.01
    # an overconfident posterior: truths fall in the tails, ranks pile up at 0 and L
    u = rng.beta(0.5, 0.5, size=200)
    skewed = np.minimum((u * (L + 1)).astype(int), L)
    p_chi, p_ks, _ = sbc.uniformity_pvalues(skewed, L, rng)
    # the binned chi-square is what catches a U shape (KS, a test of the CDF, is weak on
    # symmetric departures), which is why the script reports both
    assert p_chi < 1e-4 and p_ks < 0.05
    # a biased posterior: ranks shifted upwards
    biased = np.minimum((rng.beta(2.0, 1.0, size=200) * (L + 1)).astype(int), L)
    assert max(sbc.uniformity_pvalues(biased, L, rng)[:2]) < 1e-4
    with pytest.raises(ValueError):
        sbc.uniformity_pvalues(np.array([0, L + 1]), L, rng)


def test_prior_draws_match_prior_moments():
    # the simulator's prior draws must be the model's prior: check against the exact
    # variances (HalfNormal's 1 - 2/pi factor, LKJ(2)'s 1/5 for a 2 x 2 correlation)
    rng = np.random.default_rng(1)
    pri = sbc.MODELS["poisson"].priors
    sd = sbc.draw_prior(pri["sd_g"], rng, size=200_000)
    assert sd.shape == (200_000, 2) and np.all(sd >= 0)
    for j in range(2):
        assert np.var(sd[:, j]) == pytest.approx(sbc.prior_variance(pri["sd_g"], j), rel=0.02)
    r = sbc.draw_prior(pri["corr_g"], rng, size=200_000)
    assert np.all(np.abs(r) < 1)
    assert np.var(r) == pytest.approx(sbc.prior_variance(pri["corr_g"]), rel=0.02)
    assert np.mean(r) == pytest.approx(0.0, abs=0.005)
    th = sbc.MODELS["negbinomial"].priors["theta"]  # Gamma(alpha, rate beta), as PyMC
    t = sbc.draw_prior(th, rng, size=200_000)
    assert np.mean(t) == pytest.approx(4.0, rel=0.02)
    assert np.var(t) == pytest.approx(sbc.prior_variance(th), rel=0.03)


def test_simulated_predictors_are_centred():
    # the Intercept prior is on the intercept at the predictor means, so the simulators
    # centre x exactly; then beta[(Intercept)] is that centred intercept
    for m in sbc.MODELS.values():
        df, truth = m.simulate(m.priors, np.random.default_rng(2))
        assert abs(df["x"].mean()) < 1e-12
        assert set(truth) == {p[0] for p in m.params}


def test_every_model_gives_every_prior():
    # SBC needs the model's prior to be the one the truths are drawn from: no prior key may
    # be left to the package's data-dependent defaults
    import bayes_glmm as bg

    for name, m in sbc.MODELS.items():
        df, truth = m.simulate(m.priors, np.random.default_rng(3))
        model = bg.GLMM(m.formula, df, family=m.family, priors=m.priors, **m.glmm_kwargs)
        assert set(model.resolved_priors) == set(m.priors), name
        assert model.resolved_priors == {k: m.priors[k] for k in model.resolved_priors}, name
        assert set(truth) == {p[0] for p in m.params}, name


@pytest.mark.parametrize("family, disp", [("negbinomial", 2.5), ("nbinom1", 1.5), ("gamma", 3.0),
                                          ("beta", 8.0), ("poisson", None), ("binomial", None)])
def test_simulated_responses_follow_the_family_definitions(family, disp):
    # the simulator's parametrization of each dispersion is the package's: the sample mean
    # and variance at a fixed mu match Family.mean / Family.variance
    from bayes_glmm.families import get_family

    fam = get_family(family)
    mu = 0.3 if family in ("beta", "binomial") else 2.0
    n = 400_000
    trials = np.full(n, 4) if family == "binomial" else None
    y = sbc._RESPONSE[family](np.random.default_rng(4), np.full(n, mu), disp, trials)
    scale = 4.0 if family == "binomial" else 1.0  # binomial: counts of 4 trials
    assert np.mean(y) == pytest.approx(scale * mu, rel=0.01)
    var = fam.variance(np.array(mu), disp=disp) * scale
    assert np.var(y) == pytest.approx(float(var), rel=0.03)


def test_issue18_simulators_follow_the_family_definitions():
    # beta-binomial (overdispersion growing with the trials) and Student-t (scale and df)
    from bayes_glmm.families import get_family

    n, rng = 400_000, np.random.default_rng(5)
    y = sbc._RESPONSE["betabinomial"](rng, np.full(n, 0.3), 5.0, np.full(n, 6))
    assert np.mean(y) == pytest.approx(6 * 0.3, rel=0.01)
    var = get_family("betabinomial").response_variance(np.array(0.3), n_trials=6.0, phi=5.0)
    assert np.var(y) == pytest.approx(float(var), rel=0.03)
    y = sbc._RESPONSE["student_t"](rng, np.full(n, 2.0), {"sigma": 0.7, "df": 6.0}, None)
    assert np.mean(y) == pytest.approx(2.0, abs=0.01)
    var = get_family("student_t").response_variance(np.array(2.0), sigma=0.7, df=6.0)
    assert np.var(y) == pytest.approx(float(var), rel=0.03)


@pytest.mark.parametrize("family, disp", [("hurdle_poisson", None), ("hurdle_negbinomial", 2.0)])
def test_hurdle_simulators_draw_the_truncated_counts(family, disp):
    # the count part of a hurdle model is zero-truncated: mean mu / (1 - f(0)) and the family's
    # truncated density's share of ones
    from bayes_glmm.families import get_family

    fam, n, mu = get_family(family), 400_000, 1.3
    y = sbc._RESPONSE[family](np.random.default_rng(6), np.full(n, mu), disp, None)
    aux = {} if disp is None else {"theta": disp}
    assert y.min() == 1
    assert np.mean(y) == pytest.approx(mu / float(fam.positive_prob(mu, **aux)), rel=0.01)
    assert np.mean(y == 1) == pytest.approx(float(np.exp(fam.loglik(1.0, np.log(mu), **aux))), abs=0.003)


# ------------------------------------------------------------------ SBC (slow)
@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["bernoulli", "poisson", "negbinomial", "gaussian", "gamma", "beta",
                                        "zip", "poisson_ar1", "student_t", "betabinomial"])
def test_sbc_ranks_uniform(model_name):
    reps, L = 30, 49
    r = sbc.run_sbc(model_name, reps=reps, seed=12345, L=L, chains=2, tune=300, draws=250)
    labels = [p[0] for p in sbc.MODELS[model_name].params]
    assert set(r["pvalues"]) == set(labels)
    for k in labels:
        ranks = r["ranks"][k]
        assert ranks.shape == (reps,)
        assert ranks.min() >= 0 and ranks.max() <= L
        # ranks that all sat at one end would mean the truths and the posterior
        # disagree wholesale (a sign flip, a wrong link), whatever the p-values say
        assert len(np.unique(ranks)) > 5
        assert min(r["pvalues"][k].values()) > 0.001, (k, r["pvalues"][k])
    # SBC alone passes a posterior that ignores the data (posterior = prior); the fixed
    # effects must be learned from 160-200 observations
    for k in ("Intercept", "x"):
        assert r["recovery_corr"][k] > 0.5, (k, r["recovery_corr"][k])
        assert r["contraction"][k] > 0.3, (k, r["contraction"][k])
    assert 0 <= r["divergent_reps"] <= reps

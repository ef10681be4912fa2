"""Families and links: the single definition both paths use."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayes_glmm.families import NUMPY_OPS, get_family

ETA = np.linspace(-6, 6, 25)


@pytest.mark.parametrize("family,link", [("gaussian", "identity"), ("gaussian", "log"), ("bernoulli", "logit"),
                                         ("bernoulli", "probit"), ("bernoulli", "cloglog"), ("poisson", "log")])
def test_link_inverse_roundtrip_and_derivative(family, link):
    lk = get_family(family, link).link
    eta = ETA / 2  # where mu is not rounded to 0 or 1, so the naive inverse is exact
    assert np.allclose(lk.link(lk.inverse(eta)), eta, atol=1e-8)
    h = 1e-6
    numeric = (lk.inverse(eta + h) - lk.inverse(eta - h)) / (2 * h)
    assert np.allclose(lk.mu_eta(eta), numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_log_p_and_log_q_are_stable_and_exact(link):
    lk = get_family("bernoulli", link).link
    eta = ETA / 2  # the naive reference below is exact only where mu is not rounded to 1
    lp, lq = lk.log_p_and_log_q(eta)
    mu = lk.inverse(eta)
    assert np.allclose(lp, np.log(mu), rtol=1e-10) and np.allclose(lq, np.log1p(-mu), rtol=1e-8)
    far_lp, far_lq = lk.log_p_and_log_q(np.array([-40.0, 40.0]))
    assert np.all(np.isfinite(far_lp)) and np.all(np.isfinite(far_lq))


def test_logliks_equal_scipy_densities():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 25).astype(float)
    n = y + rng.integers(0, 4, 25)
    fam = get_family("binomial", "probit")
    p = stats.norm.cdf(ETA / 3)
    assert np.allclose(fam.loglik(y, ETA / 3, trials=n), stats.binom.logpmf(y, n, p))
    fam = get_family("poisson")
    assert np.allclose(fam.loglik(y, ETA / 3), stats.poisson.logpmf(y, np.exp(ETA / 3)))
    fam = get_family("gaussian")
    assert np.allclose(fam.loglik(y, ETA, sigma=1.7), stats.norm.logpdf(y, ETA, 1.7))
    fam = get_family("bernoulli", "cloglog")
    yb = (y > 2).astype(float)
    assert np.allclose(fam.loglik(yb, ETA / 3), stats.bernoulli.logpmf(yb, 1 - np.exp(-np.exp(ETA / 3))))


@pytest.mark.parametrize("family", ["bernoulli", "binomial", "poisson"])
def test_fast_canonical_form_is_the_same_density(family):
    fam = get_family(family)
    rng = np.random.default_rng(1)
    trials = rng.integers(1, 9, ETA.size).astype(float) if family == "binomial" else np.ones(ETA.size)
    y = (rng.integers(0, 2, ETA.size) if family == "bernoulli" else
         np.minimum(rng.integers(0, 9, ETA.size), trials if family == "binomial" else 99)).astype(float)
    ll, mu = fam.loglik_canonical(y, ETA.copy(), trials)
    full = ll + fam.loglik_constant(y, trials)
    ref = fam.loglik(y, ETA, trials=trials) if family == "binomial" else fam.loglik(y, ETA)
    assert np.allclose(full, ref, rtol=1e-12, atol=1e-12)
    assert np.allclose(mu, fam.mean(ETA), rtol=1e-14)
    with pytest.raises(ValueError, match="canonical"):
        get_family(family if family != "poisson" else "bernoulli", "probit").loglik_canonical(y, ETA)


def test_family_and_link_errors_name_the_choices():
    with pytest.raises(ValueError, match="unknown family 'gama'.*did you mean 'gamma'.*bernoulli"):
        get_family("gama")
    with pytest.raises(ValueError, match="link 'logit' is not available for family 'poisson'"):
        get_family("poisson", "logit")


def test_check_response_messages():
    with pytest.raises(ValueError, match="'r' must be 0/1.*binomial"):
        get_family("bernoulli").check_response(np.array([0, 1, 2.0]), None, "r")
    with pytest.raises(ValueError, match="non-negative integer counts"):
        get_family("poisson").check_response(np.array([0, 1.5]), None, "n")
    with pytest.raises(ValueError, match="successes exceed trials in 1 row"):
        get_family("binomial").check_response(np.array([3.0, 1.0]), np.array([2.0, 4.0]), "s")
    with pytest.raises(ValueError, match="needs trials"):
        get_family("binomial").check_response(np.array([1.0]), None, "s")


def test_latent_variances():
    assert get_family("bernoulli").latent_variance == pytest.approx(np.pi ** 2 / 3)
    assert get_family("binomial", "probit").latent_variance == 1.0
    assert get_family("poisson").latent_variance is None
    assert NUMPY_OPS.log1mexp(np.array([-1e-20]))[0] == pytest.approx(np.log(1e-20))


# ----------------------------------------------------------------------------- dispersion families
from bayes_glmm.families import FAMILIES, zi_eta_derivs, zi_loglik  # noqa: E402


def _family_data(f, rng, n=60):
    if f.is_count:
        y = rng.poisson(3, n).astype(float)
        y[:5] = 0.0
        return y
    if f.name == "gamma":
        return rng.gamma(2.0, 1.5, n)
    if f.name == "beta":
        return rng.beta(2.0, 3.0, n)
    if f.name == "bernoulli":
        return rng.integers(0, 2, n).astype(float)
    if f.needs_trials:  # binomial, betabinomial: successes of 5 trials
        return rng.integers(0, 6, n).astype(float)
    return rng.normal(size=n)


def _eta(f, rng, n=60):
    if f.link.name == "inverse":
        return rng.uniform(0.2, 1.0, n)
    if f.name == "gamma" and f.link.name == "identity":
        return rng.uniform(1.0, 4.0, n)
    return rng.normal(0.3, 0.8, n)


ALL_FAMILY_LINKS = [(fam, lk) for fam, links in FAMILIES.items() for lk in links]


@pytest.mark.parametrize("fam,link", ALL_FAMILY_LINKS)
def test_eta_derivs_are_the_derivatives_of_loglik(fam, link):
    """d1 and w_obs equal finite differences of loglik row by row; w_fisher is positive."""
    rng = np.random.default_rng(7)
    f = get_family(fam, link)
    y, eta = _family_data(f, rng), _eta(f, rng)
    kw = dict(trials=np.full(y.size, 5.0) if f.needs_trials else None,
              sigma=1.3 if f.has_sigma else None, disp=2.7 if f.has_dispersion else None,
              df=4.5 if "df" in f.aux_names else None)
    if f.categorical_response:  # ordinal: 4 categories, the family fitted to them, its thresholds
        y, f = f.for_response(pd.Series(rng.integers(0, 4, y.size).astype(float)), "y")
        kw = dict(zip(f.aux_names, (-1.1, 0.4, 1.6)))
    h = 1e-5
    ll = lambda e: f.loglik(y, e, **kw)  # noqa: E731
    d1n = (ll(eta + h) - ll(eta - h)) / (2 * h)
    d2n = (ll(eta + h) - 2 * ll(eta) + ll(eta - h)) / h ** 2
    d1, wo, wf = f.eta_derivs(y, eta, **kw)
    np.testing.assert_allclose(d1, d1n, atol=1e-7)
    np.testing.assert_allclose(-wo, d2n, atol=5e-4)
    assert np.all(wf > 0)
    if f.allows_zi:
        ez = rng.normal(size=y.size)
        lz = lambda e: zi_loglik(f.loglik(y, e, **kw), y, ez)  # noqa: E731
        a, b, _ = zi_eta_derivs(ll(eta), d1, wo, wf, y, ez)
        np.testing.assert_allclose(a, (lz(eta + h) - lz(eta - h)) / (2 * h), atol=1e-7)
        np.testing.assert_allclose(-b, (lz(eta + h) - 2 * lz(eta) + lz(eta - h)) / h ** 2, atol=5e-4)


@pytest.mark.parametrize("fam,link", [(f, lk) for f, lk in ALL_FAMILY_LINKS
                                      if f in ("negbinomial", "nbinom1", "gamma", "beta")])
def test_constant_plus_eta_part_is_the_log_density(fam, link):
    rng = np.random.default_rng(8)
    f = get_family(fam, link)
    y, eta = _family_data(f, rng), _eta(f, rng)
    for disp in (1e-3, 0.7, 40.0):
        np.testing.assert_allclose(f.loglik_constant(y, None, disp) + f.loglik_eta(y, eta, disp),
                                   f.loglik(y, eta, disp=disp), rtol=1e-12, atol=1e-9)


def test_new_densities_are_normalized_and_match_scipy():
    from scipy import integrate, stats
    ys = np.arange(0, 600.0)
    nb = get_family("negbinomial")
    p = np.exp(nb.loglik(ys, np.log(3.0), disp=1.7))
    assert p.sum() == pytest.approx(1.0, abs=1e-10)
    np.testing.assert_allclose(nb.loglik(ys[:20], np.log(3.0), disp=1.7),
                               stats.nbinom.logpmf(ys[:20], 1.7, 1.7 / 4.7), rtol=1e-12)
    p1 = np.exp(get_family("nbinom1").loglik(ys, np.log(3.0), disp=0.8))
    assert p1.sum() == pytest.approx(1.0, abs=1e-10)
    assert (p1 * ys).sum() == pytest.approx(3.0) and (p1 * ys ** 2).sum() - 9.0 == pytest.approx(3.0 * 1.8)
    ga = get_family("gamma")
    np.testing.assert_allclose(ga.loglik(np.array([0.5, 2.0]), np.log(1.5), disp=2.5),
                               stats.gamma.logpdf([0.5, 2.0], 2.5, scale=1.5 / 2.5), rtol=1e-12)
    be = get_family("beta")
    np.testing.assert_allclose(be.loglik(np.array([0.2, 0.9]), 0.0, disp=6.0),
                               stats.beta.logpdf([0.2, 0.9], 3.0, 3.0), rtol=1e-12)
    assert integrate.quad(lambda v: np.exp(be.loglik(np.array(v), np.array(0.7), disp=2.5)), 0, 1)[0] == \
        pytest.approx(1.0, abs=1e-8)
    # zero inflation: still a distribution, with the structural zeros added
    pz = np.exp(zi_loglik(nb.loglik(ys, np.log(3.0), disp=1.7), ys, np.log(0.25 / 0.75)))
    assert pz.sum() == pytest.approx(1.0, abs=1e-10) and pz[0] == pytest.approx(0.25 + 0.75 * p[0])


@pytest.mark.parametrize("fam,disp", [("negbinomial", 2.0), ("nbinom1", 1.5), ("gamma", 3.0), ("beta", 8.0)])
def test_random_draws_have_the_family_mean_and_variance(fam, disp):
    f = get_family(fam)
    rng = np.random.default_rng(11)
    eta = np.full(200_000, 0.4 if fam != "beta" else -0.3)
    y = f.random(eta, rng, disp=disp)
    mu = float(f.mean(eta[0]))
    assert y.mean() == pytest.approx(mu, rel=0.01)
    assert y.var() == pytest.approx(float(f.variance(mu, disp=disp)), rel=0.03)
    yz = f.random(eta, rng, disp=disp, zi_eta=np.zeros_like(eta)) if f.allows_zi else None
    if yz is not None:
        assert yz.mean() == pytest.approx(0.5 * mu, rel=0.02)


def test_dispersion_family_response_checks():
    with pytest.raises(ValueError, match="negbinomial response 'y' must be non-negative integer counts; found 2"):
        get_family("negbinomial").check_response(np.array([0, 1.5, -1.0]), None, "y")
    with pytest.raises(ValueError, match=r"gamma response 'y' must be > 0; 2 row\(s\) are not \(1 exactly 0"):
        get_family("gamma").check_response(np.array([0.0, 1.0, -2.0]), None, "y")
    with pytest.raises(ValueError, match=r"strictly between 0 and 1; 1 row\(s\) are exactly 0, 2 exactly 1 .*"
                                         r"squeeze.*\(y \(n - 1\) \+ 0.5\) / n"):
        get_family("beta").check_response(np.array([0.0, 1.0, 1.0, 0.5]), None, "y")
    with pytest.raises(ValueError, match="did you mean 'negbinomial'"):
        get_family("negbinomal")
    with pytest.raises(ValueError, match="link 'log' is not available for family 'beta'"):
        get_family("beta", "log")
    assert get_family("nbinom2").name == "negbinomial" and get_family("gamma").link.name == "log"
    assert get_family("gamma", "inverse").link.inverse(np.array(2.0)) == 0.5

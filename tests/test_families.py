"""Families and links: the single definition both paths use."""
import numpy as np
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
    with pytest.raises(ValueError, match="unknown family 'gamma'.*bernoulli"):
        get_family("gamma")
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

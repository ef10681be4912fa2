"""The beta-binomial family (issue 18) against glmmTMB 1.1.5 and on both paths.

The reference fits come from ``tests/reference/make_reference_betabinomial.R`` (lme4's cbpp and
simulated overdispersed binomial data with a random slope); the tests only read its CSV and JSON.
"""
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayes_glmm as bg
from bayes_glmm.families import get_family

REF_DIR = Path(__file__).parent / "reference"
REF = json.loads((REF_DIR / "betabinomial_reference.json").read_text())
CASES = {
    "cbpp": ("betabinomial_cbpp.csv", "cbind(incidence, size - incidence) ~ period + (1 | herd)"),
    "slope": ("betabinomial_slope.csv", "cbind(y, n - y) ~ x + (1 + x | g)"),
}


def _data(case):
    return pd.read_csv(REF_DIR / CASES[case][0], dtype={"period": str, "herd": str, "g": str})


def _model(case):
    return bg.GLMM(CASES[case][1], _data(case), family="betabinomial")


@pytest.fixture(scope="module", params=sorted(CASES))
def fitted(request):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # cbpp's herd variance is ~0 (glmmTMB's too)
        return request.param, _model(request.param).fit_ml()


def test_density_is_scipys_betabinom():
    f = get_family("betabinomial")
    y, n, phi = np.arange(0, 8.0), np.full(8, 7.0), 3.2
    mu = float(f.mean(0.3))
    np.testing.assert_allclose(f.loglik(y, np.full(8, 0.3), trials=n, phi=phi),
                               stats.betabinom.logpmf(y, 7, mu * phi, (1 - mu) * phi), rtol=1e-12)


def test_draws_have_the_glmmtmb_mean_and_variance():
    f = get_family("betabinomial")
    eta, n, phi = np.full(200_000, 0.4), np.full(200_000, 9), 3.0
    y = f.random(eta, np.random.default_rng(11), trials=n, phi=phi)
    mu = float(f.mean(0.4))
    assert y.mean() == pytest.approx(9 * mu, rel=0.01)
    assert y.var() == pytest.approx(9 * mu * (1 - mu) * (1 + 8 / (phi + 1)), rel=0.03)


def test_ml_matches_glmmtmb(fitted):
    case, fit = fitted
    ref = REF[case]
    assert fit.loglik >= ref["loglik"] - 1e-5
    assert fit.loglik - ref["loglik"] < 1e-3  # the same optimum, not another model
    names = list(ref["fixef"])
    dz = (fit.fixef[names].to_numpy() - np.array([ref["fixef"][k] for k in names])) \
        / np.array([ref["fixef_se"][k] for k in names])
    assert np.max(np.abs(dz)) < 0.01, dz
    np.testing.assert_allclose(fit.se[names].to_numpy(), [ref["fixef_se"][k] for k in names], rtol=1e-2)
    assert float(fit.dispersion["phi"]) == pytest.approx(ref["phi"], rel=1e-3)
    tab = fit.dispersion_table()
    assert float(tab.loc["phi", "SE(log)"]) == pytest.approx(ref["log_phi_se"], rel=2e-2)


def test_agq_on_the_scalar_term():
    m = _model("cbpp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        lap, agq = m.fit_ml(), m.fit_ml(n_agq=9)
    # the herd variance is ~0 (glmmTMB's too), where AGQ and Laplace coincide
    assert np.isfinite(agq.loglik) and agq.loglik == pytest.approx(lap.loglik, abs=1e-3)
    assert float(agq.dispersion["phi"]) == pytest.approx(REF["cbpp"]["phi"], rel=1e-2)


def test_simulate_and_predict(fitted):
    case, fit = fitted
    d = _data(case)
    n = d["size"] if case == "cbpp" else d["n"]
    sims = fit.simulate(n=3, random_seed=1)
    assert sims.shape == (len(d), 3)
    assert np.all((sims.to_numpy() >= 0) & (sims.to_numpy() <= n.to_numpy()[:, None]))
    # the expected successes n mu, as binomial's
    p = np.asarray(fit.predict(kind="response"))
    mu = 1.0 / (1.0 + np.exp(-np.asarray(fit.predict(kind="link"))))
    np.testing.assert_allclose(p, n.to_numpy() * mu, rtol=1e-12)


def test_short_native_sample():
    m = _model("slope")
    r = m.sample(draws=100, tune=150, chains=2, sampler="native", random_seed=3, progressbar=False, check=False)
    post = r.idata.posterior
    assert {"phi", "sd_g"} <= set(post.data_vars)
    assert np.all(np.asarray(post["phi"]) > 0)
    assert float(post["phi"].mean()) == pytest.approx(REF["slope"]["phi"], rel=0.5)
    assert list(r.dispersion.index) == ["phi"]


def test_response_checks_name_the_fix():
    f = get_family("betabinomial")
    with pytest.raises(ValueError, match="needs trials.*cbind"):
        f.check_response(np.array([1.0]), None, "s")
    with pytest.raises(ValueError, match="exceed trials"):
        f.check_response(np.array([3.0, 1.0]), np.array([2.0, 4.0]), "s")


def test_lrt_against_the_binomial_is_a_boundary_test():
    """binomial is betabinomial at 1/phi = 0: bg.lrt tests it with the 50:50 chi-square mixture."""
    d = _data("cbpp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        small = bg.GLMM(CASES["cbpp"][1], d, family="binomial").fit_ml()
        big = bg.GLMM(CASES["cbpp"][1], d, family="betabinomial").fit_ml()
    res = bg.lrt(small, big)
    chisq = 2.0 * (big.loglik - small.loglik)
    assert res.df == 1 and res.chisq == pytest.approx(chisq, rel=1e-9)
    assert res.reference == "0.5 chi2_0 + 0.5 chi2_1"
    assert res.p_value == pytest.approx(0.5 * stats.chi2.sf(chisq, 1), rel=1e-6)


def test_pearson_residuals_use_the_beta_binomial_variance():
    """residuals(kind="pearson") divides by the n-trial beta-binomial SD, whose overdispersion
    grows with n (not n times the per-trial variance)."""
    import bayes_glmm as bg

    cbpp = bg.datasets.load("cbpp")
    fit = bg.GLMM("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                  family="betabinomial").fit_ml()
    n = np.asarray(fit.spec.trials, dtype=float)
    mu = np.asarray(fit.spec.family.mean(fit.predict(kind="link")), dtype=float)
    phi = float(fit.fit.aux["phi"])
    sd = np.sqrt(n * mu * (1 - mu) * (1 + (n - 1) / (phi + 1)))
    np.testing.assert_allclose(fit.residuals("pearson"), fit.residuals("response") / sd, rtol=1e-12)


@pytest.mark.parametrize("link", ["cloglog"])
def test_density_stays_finite_where_one_minus_mu_underflows(link):
    """cloglog's 1 - mu = exp(-e^eta) is 0 beyond eta ~ 6.6; the density is
    taken from log(1 - mu) there: y = n rows tend to log 1 = 0, y < n rows to
    log C(n, y) + log b + lgamma(n - y) + lgamma(y + a) - lgamma(a) - lgamma(n + phi) + lgamma(phi)
    (b = phi (1 - mu) -> 0, a -> phi), and where 1 - mu is still representable it is scipy's betabinom."""
    from scipy import special

    f = get_family("betabinomial", link=link)
    phi, n = 3.2, 7.0
    y = np.array([7.0, 6.0, 3.0, 0.0])
    e_mid = 5.0  # 1 - mu ~ 1e-65: scipy still has it
    mu = float(f.mean(e_mid))
    one_m = np.exp(-np.exp(e_mid))
    np.testing.assert_allclose(f.loglik(y, np.full(4, e_mid), trials=np.full(4, n), phi=phi),
                               stats.betabinom.logpmf(y, 7, mu * phi, one_m * phi), rtol=1e-10, atol=1e-12)
    for e in [6.7, 8.0, 20.0]:
        ll = f.loglik(y, np.full(4, e), trials=np.full(4, n), phi=phi)
        assert np.all(np.isfinite(ll)), (e, ll)
        log_b = np.log(phi) - np.exp(e)
        k = n - y[1:]
        expected = (special.gammaln(n + 1) - special.gammaln(y[1:] + 1) - special.gammaln(k + 1)
                    + log_b + special.gammaln(k) + special.gammaln(y[1:] + phi) - special.gammaln(phi)
                    - special.gammaln(n + phi) + special.gammaln(phi))
        np.testing.assert_allclose(ll[1:], expected, rtol=1e-12)
        assert abs(ll[0]) < 1e-12


def test_cloglog_sampler_density_and_gradient_are_finite_at_large_eta():
    """The NUTS density (NumPy duals and the generated C) at an intercept of 8 on the cloglog
    scale, where 1 - mu underflowed before: finite, and the two agree (value and gradient)."""
    from bayes_glmm.bayes.density import GlmmDensity
    from bayes_glmm.bayes.native import NativeModel

    d = _data("slope")
    m = bg.GLMM("cbind(y, n - y) ~ x + (1 | g)", d, family="betabinomial", link="cloglog")
    dens = GlmmDensity(m.spec, m.resolved_priors, m.centered_terms)
    x = dens.initial_point(0)
    x[dens.value_var_slices()["Intercept"]] = 8.0
    lp, g = dens.logp_grad(x)
    lp_c, g_c = NativeModel(dens).logp_grad(x)
    assert np.isfinite(lp) and np.all(np.isfinite(g))
    assert lp_c == pytest.approx(lp, rel=1e-10)
    np.testing.assert_allclose(g_c, g, rtol=1e-8, atol=1e-8)


def test_trigamma_is_scipys_polygamma():
    from scipy import special

    from bayes_glmm.families.betabinomial import _trigamma

    x = np.exp(np.random.default_rng(7).uniform(np.log(1e-8), np.log(1e6), 20_000))
    np.testing.assert_allclose(_trigamma(x), special.polygamma(1, x), rtol=1e-13)

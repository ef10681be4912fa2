"""The hurdle families ``hurdle_poisson`` and ``hurdle_negbinomial`` (issue 18): densities,
derivatives, draws, the ``hu=`` boundary, ML against glmmTMB and a Bayesian smoke test.

The reference fits come from ``tests/reference/make_reference_hurdle.R`` (glmmTMB 1.1.5,
``truncated_poisson`` / ``truncated_nbinom2`` with a ``ziformula``): Salamanders (real data) and
three simulated sets: one with a correlated random slope and a covariate in the hurdle, one with
an exposure offset and the default ``hu="~1"``.  Its
"tiny" fits check glmmTMB's parametrization by hand (P(y = 0) = plogis(eta_zi), mu the mean of
the untruncated count); here our density at glmmTMB's estimates gives glmmTMB's logLik.  The
densities on the three Bayesian backends are the hurdle cases of ``tests/test_bayes_contract.py``.
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import bayes_glmm as bg
from bayes_glmm.families import get_family, hurdle_eta_derivs, hurdle_loglik

REF_DIR = Path(__file__).parent / "reference"
REF = json.loads((REF_DIR / "hurdle_reference.json").read_text())
ROOT = REF_DIR.parents[1]
ML_KEYS = ["sal_poisson", "sal_negbinomial", "sim_poisson", "sim_nb_slope", "sim_nb_offset"]
FAMILIES = [("hurdle_poisson", {}), ("hurdle_negbinomial", {"theta": 1.7})]


def _data(key):
    return pd.read_csv(ROOT / REF["data"][key.split("_")[0] if key.startswith(("sal", "tiny")) else key])


def _truncated_reference(name, y, mu, theta=None):
    """log f(y) - log(1 - f(0)): scipy's Poisson; NB2 written out with log1p (scipy's nbinom
    takes p = theta / (theta + mu), whose 1 - p loses digits for tiny mu)."""
    if name == "hurdle_poisson":
        return stats.poisson.logpmf(y, mu) - stats.poisson.logsf(0, mu)
    l0 = -theta * np.log1p(mu / theta)
    lf = (special.gammaln(y + theta) - special.gammaln(theta) - special.gammaln(y + 1) + l0
          + y * (np.log(mu) - np.log(theta + mu)))
    return lf - np.log(-np.expm1(l0))


# ------------------------------------------------------------------------ densities
@pytest.mark.parametrize("name,aux", FAMILIES)
def test_truncated_density_is_scipys_and_sums_to_one(name, aux):
    f = get_family(name)
    ys = np.arange(0, 1500.0)
    for mu in (1e-12, 1e-6, 0.3, 3.0, 40.0):
        eta = np.log(mu)
        np.testing.assert_allclose(f.loglik(ys[1:30], eta, **aux),
                                   _truncated_reference(name, ys[1:30], mu, aux.get("theta")), rtol=1e-9, atol=1e-13)
        assert np.exp(f.loglik(ys[1:], eta, **aux)).sum() == pytest.approx(1.0, abs=1e-9)
        pi = 0.35
        full = np.exp(hurdle_loglik(f.loglik(ys, eta, **aux), ys, np.full(ys.size, special.logit(pi))))
        assert full.sum() == pytest.approx(1.0, abs=1e-9) and full[0] == pytest.approx(pi, rel=1e-12)


@pytest.mark.parametrize("name,aux", FAMILIES)
def test_truncation_term_is_stable_for_small_means(name, aux):
    """log(1 - f(0)) by log1mexp: at mu = 1e-200 a truncated count is 1 with probability ~1,
    log P(1) ~ -mu/2 (Poisson), not log(0/0)."""
    f = get_family(name)
    ll = f.loglik(np.array([1.0, 2.0]), np.log(1e-200), **aux)
    assert np.all(np.isfinite(ll)) and abs(ll[0]) < 1e-150 and ll[1] < -400


@pytest.mark.parametrize("name,aux", FAMILIES)
def test_eta_derivatives_equal_finite_differences(name, aux):
    """The truncated density's derivatives (by hand) and the hurdle's (0 on the zero rows)."""
    f = get_family(name)
    rng = np.random.default_rng(5)
    y = rng.poisson(2.0, 80).astype(float)
    y[:8] = 0.0
    eta = np.linspace(-6.0, 3.0, y.size)
    ez = rng.normal(size=y.size)
    h = 1e-5

    def lh(e):
        return hurdle_loglik(f.loglik(y, e, **aux), y, ez)

    d1, wo, wf = f.eta_derivs(y, eta, **aux)
    ll = lambda e: f.loglik(y, e, **aux)  # noqa: E731
    np.testing.assert_allclose(d1, (ll(eta + h) - ll(eta - h)) / (2 * h), atol=1e-7)
    np.testing.assert_allclose(-wo, (ll(eta + h) - 2 * ll(eta) + ll(eta - h)) / h ** 2, atol=5e-4)
    assert np.all(wf > 0)
    a, b, c = hurdle_eta_derivs(ll(eta), d1, wo, wf, y, ez)
    np.testing.assert_allclose(a, (lh(eta + h) - lh(eta - h)) / (2 * h), atol=1e-7)
    np.testing.assert_allclose(-b, (lh(eta + h) - 2 * lh(eta) + lh(eta - h)) / h ** 2, atol=5e-4)
    assert np.all(a[y == 0] == 0) and np.all(b[y == 0] == 0) and np.all(c[y == 0] == 0)
    assert np.all(c[y > 0] > 0)


@pytest.mark.parametrize("name,aux", FAMILIES)
def test_fisher_weight_is_the_truncated_variance_of_the_score(name, aux):
    f = get_family(name)
    ys = np.arange(1, 3000.0)
    eta = np.log(2.5)
    p = np.exp(f.loglik(ys, eta, **aux))
    d1, _, wf = f.eta_derivs(ys, np.full(ys.size, eta), **aux)
    assert float(np.sum(p * d1)) == pytest.approx(0.0, abs=1e-10)  # the score has mean 0
    assert wf[0] == pytest.approx(float(np.sum(p * d1 * d1)), rel=1e-9)


@pytest.mark.parametrize("name,aux", FAMILIES)
def test_draws_mean_and_zero_share(name, aux):
    f = get_family(name)
    rng = np.random.default_rng(11)
    eta, ez = np.full(200_000, np.log(1.5)), np.full(200_000, 0.4)
    y = f.random(eta, rng, zi_eta=ez, **aux)
    pi = special.expit(0.4)
    m, v = f.zero_part_moments(1.5, f.variance(1.5, **aux), pi, **aux)
    assert np.mean(y == 0) == pytest.approx(pi, abs=0.004)
    assert y.mean() == pytest.approx(m, rel=0.01) and y.var() == pytest.approx(v, rel=0.03)
    # tiny means: the truncated draws are 1 (the upper-tail inverse CDF keeps its precision)
    assert np.all(f.random(np.full(1000, -40.0), rng, **aux) == 1.0)


def test_names_and_nesting():
    hp, hn = get_family("truncated_poisson"), get_family("hurdle_negativebinomial")
    assert hp.name == "hurdle_poisson" and hn.name == "hurdle_negbinomial"
    assert get_family("truncated_nbinom2") == hn and hn.aux_names == ("theta",)
    assert hn.nests(hp) and not hp.nests(hn)
    assert hp.zero_label == "hu" and hp.zero_default == "~1" and not hp.allows_zi


# ------------------------------------------------------------------------ the boundary
def test_hu_and_zi_are_refused_where_they_do_not_apply():
    d = _data("sim_poisson")
    with pytest.raises(ValueError, match=r"hu='~ x': a hurdle applies to the hurdle families .*"
                                         r"'hurdle_poisson'.*not 'poisson'.*pass zi= instead of hu="):
        bg.GLMM("y ~ x + (1 | g)", d, family="poisson", hu="~ x")
    with pytest.raises(ValueError, match=r"zi='~ x': family 'hurdle_poisson' has a hu part, not zero "
                                         r"inflation; pass hu='~ x' instead of zi="):
        bg.GLMM("y ~ x + (1 | g)", d, family="hurdle_poisson", zi="~ x")
    with pytest.raises(ValueError, match=r"hu='~ x \+ \(1 \| g\)': random effects in the hurdle formula"):
        bg.GLMM("y ~ x + (1 | g)", d, family="hurdle_poisson", hu="~ x + (1 | g)")
    with pytest.raises(ValueError, match=r"unknown column|not a column|nope"):
        bg.GLMM("y ~ x + (1 | g)", d, family="hurdle_poisson", hu="~ nope")
    with pytest.raises(ValueError, match="non-negative integer counts"):
        bg.GLMM("y ~ x + (1 | g)", d.assign(y=d.y + 0.5), family="hurdle_negbinomial")


def test_default_hu_is_an_intercept():
    m = bg.GLMM("y ~ x + (1 | g)", _data("sim_poisson"), family="hurdle_poisson")
    assert m.spec.has_zi and m.spec.zi_names == ("(Intercept)",) and m.spec.zi_formula == "~1"
    assert m.spec.zi_label == "hu" and set(m.resolved_priors) >= {"hu_Intercept"}
    with pytest.raises(ValueError, match=r"fit_pql does not handle hurdle \(hu='~1'\)"):
        m.fit_pql()


# ------------------------------------------------------------------------ ML vs glmmTMB
@pytest.mark.parametrize("family", ["hurdle_poisson", "hurdle_negbinomial"])
def test_glmmtmb_parametrization_on_the_tiny_example(family):
    """Our hurdle density at glmmTMB's estimates is glmmTMB's logLik (no random effects)."""
    ref = REF[f"tiny_{family.split('_')[1]}"]
    d = _data("tiny")
    f = get_family(family)
    b, bz = ref["fixef"], ref["fixef_hu"]
    eta = b["(Intercept)"] + b["x"] * d.x.to_numpy()
    aux = {"theta": ref["theta"]} if ref["theta"] is not None else {}
    y = d.y.to_numpy(dtype=float)
    ll = hurdle_loglik(f.loglik(y, eta, **aux), y, np.full(y.size, bz["(Intercept)"]))
    assert float(ll.sum()) == pytest.approx(ref["loglik"], abs=1e-6)


@pytest.fixture(scope="module", params=ML_KEYS)
def ml_fit(request):
    key = request.param
    ref = REF[key]
    kw = {} if ref["hu"] == "~1" else {"hu": ref["hu"]}  # sim_nb_offset: the default hu = "~1"
    m = bg.GLMM(ref["formula"], _data(key), family=ref["family"], **kw)
    return key, m.fit_ml()


def test_ml_equals_glmmtmb(ml_fit):
    """logLik within 1e-5 (or higher), fixed and hurdle coefficients within 0.01 SE, SEs,
    theta and the random-effect SDs close; E[y] as glmmTMB's predict(type = "response")."""
    key, fit = ml_fit
    ref = REF[key]
    assert fit.loglik > ref["loglik"] - 1e-5
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-4)
    for est, se, ref_est, ref_se in ((fit.fixef, fit.se, ref["fixef"], ref["fixef_se"]),
                                     (fit.fixef_zi, fit.se_zi, ref["fixef_hu"], ref["fixef_hu_se"])):
        e, s = pd.Series(ref_est), pd.Series(ref_se)
        assert np.all(np.abs(est[e.index] - e) < 0.01 * s)
        np.testing.assert_allclose(se[s.index], s, rtol=2e-3)
    if ref["theta"] is not None:
        assert fit.dispersion["theta"] == pytest.approx(ref["theta"], rel=1e-3)
        assert fit.dispersion_table().loc["theta", "SE(log)"] == pytest.approx(ref["log_theta_se"], rel=2e-3)
    vc = fit.varcorr
    for grp, r in ref["ranef_sd"].items():
        for coef, sd in r["sd"].items():
            row = vc[(vc.grp == grp) & (vc.var1 == coef) & vc.var2.isna()]
            assert float(row.sdcor.iloc[0]) == pytest.approx(sd, rel=2e-3, abs=1e-4)
    np.testing.assert_allclose(fit.predict()[:5], ref["mean_response_head"], rtol=1e-3)
    assert fit.df == ref["npar"]


def test_simulate_and_lrt_nesting():
    d = _data("sim_nb_slope")  # NB2 counts, theta = 2
    f_nb = bg.GLMM("y ~ x + (1 | g)", d, family="hurdle_negbinomial", hu="~ z").fit_ml()
    f_p = bg.GLMM("y ~ x + (1 | g)", d, family="hurdle_poisson", hu="~ z").fit_ml()
    t = bg.lrt(f_p, f_nb)
    assert "1/theta = 0" in str(t) and "0.5 chi2_0 + 0.5 chi2_1" in str(t)
    stat = 2 * (f_nb.loglik - f_p.loglik)
    assert stat > 50 and t.chisq == pytest.approx(stat, abs=1e-6) and t.df == 1
    assert t.p_value == pytest.approx(0.5 * stats.chi2.sf(stat, 1), rel=1e-6, abs=1e-300)
    sims = f_p.simulate(n=3, random_seed=1)
    assert sims.shape == (len(d), 3)
    zero_share = float((sims.to_numpy() == 0).mean())
    assert zero_share == pytest.approx(float((d.y == 0).mean()), abs=0.06)
    r = f_p.residuals("pearson")
    assert np.all(np.isfinite(r)) and abs(float(np.mean(r))) < 0.1


# ------------------------------------------------------------------------ Bayesian smoke
def test_bayesian_hurdle_smoke():
    d = _data("sim_poisson").iloc[:240]
    m = bg.GLMM("y ~ x + (1 | g)", d, family="hurdle_negbinomial", hu="~ x")
    with pytest.warns(UserWarning):  # a few draws: the ESS/R-hat warning
        r = m.sample(draws=60, tune=60, chains=1, random_seed=3, progressbar=False)
    s = r.summary()
    assert "theta" in s.index and len(s) == 6
    p = r.predict()
    assert p.shape == (len(d),) and np.all(p > 0)
    # the pointwise log-likelihood (the sampler's generated C) is the NumPy hurdle density
    post = r.idata.posterior
    j = 7
    beta = np.asarray(post["beta"]).reshape(-1, 2)[j]
    bz = np.asarray(post["beta_hu"]).reshape(-1, 2)[j]
    bg_ = np.asarray(post["b_g"]).reshape(np.asarray(post["beta"]).reshape(-1, 2).shape[0], -1)[j]
    theta = np.asarray(post["theta"]).reshape(-1)[j]
    codes = np.asarray(m.spec.terms[0].codes)
    eta = m.spec.X @ beta + bg_[codes]
    y = np.asarray(m.spec.y, dtype=float)
    f = m.spec.family
    ll = hurdle_loglik(f.loglik(y, eta, theta=theta), y, m.spec.X_zi @ bz)
    np.testing.assert_allclose(np.asarray(r.idata.log_likelihood["y"]).reshape(-1, len(d))[j], ll, rtol=1e-9)


def test_teaching_tools_run_on_a_hurdle_model():
    """Smoke: prior predictive summary (P(y = 0) among its statistics), pooling, and the
    latent-scale ICC refused with the fix."""
    from bayes_glmm import teaching

    d = _data("sim_poisson").iloc[:180]
    m = bg.GLMM("y ~ x + (1 | g)", d, family="hurdle_poisson", hu="~ x")
    s = teaching.prior_predictive_summary(m, draws=40, random_seed=2)
    assert 0.0 < s.table.loc["prop_zero", "q50"] < 1.0
    assert s.table.loc["prop_zero", "observed"] == pytest.approx(float(np.mean(d.y == 0)))
    f = m.fit_ml()
    pool = teaching.pooling(m, ml=f)
    assert len(pool) == 12 and np.all(np.isfinite(pool["partial_ml"]))
    with pytest.raises(ValueError, match="latent-scale ICC is not defined for the hurdle_poisson family"):
        bg.icc(f)

"""The ``student_t`` family (issue 18): against glmmTMB's ``t_family`` (df estimated) and on
the Bayesian path.

The reference fits and their simulated data come from ``tests/reference/make_reference_student_t.R``
(glmmTMB 1.1.5; y = 1 + 0.5 x + b_g (+ c_g x) + 0.6 t_4): a random intercept and a correlated
random slope, identity link; and a log link, y = exp(1 + 0.3 x + b_g) + 0.5 t_5.  The family's derivatives, draws and registry round trips are checked by the
parametrised tests of ``tests/test_families.py`` and ``tests/test_family_registry.py``; its
densities on the three Bayesian backends by the student_t cases of ``tests/test_bayes_contract.py``.
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayes_glmm as bg
from bayes_glmm.families import get_family

REF_DIR = Path(__file__).parent / "reference"
REF = json.loads((REF_DIR / "student_t_reference.json").read_text())
FORMULAS = {"intercept": "y ~ x + (1 | g)", "slope": "y ~ x + (1 + x | g)", "log": "y ~ x + (1 | g)"}


def _data(key):
    return pd.read_csv(REF_DIR / f"student_t_{key}.csv")


@pytest.fixture(scope="module", params=sorted(FORMULAS))
def ml_fit(request):
    key = request.param
    return key, bg.GLMM(FORMULAS[key], _data(key), family="student_t", link=REF[key]["link"]).fit_ml()


def test_log_density_is_scipys_t():
    f = get_family("student_t")
    y, eta = np.array([-3.0, 0.2, 7.5]), np.array([0.1, -0.4, 1.0])
    np.testing.assert_allclose(f.loglik(y, eta, sigma=1.3, df=3.5),
                               stats.t.logpdf(y, 3.5, loc=eta, scale=1.3), rtol=1e-12)
    fl = get_family("student_t", "log")
    np.testing.assert_allclose(fl.loglik(y, eta, sigma=1.3, df=3.5),
                               stats.t.logpdf(y, 3.5, loc=np.exp(eta), scale=1.3), rtol=1e-12)


def test_draws_have_the_t_variance():
    f = get_family("student_t")
    y = f.random(np.full(400_000, 0.7), np.random.default_rng(4), sigma=0.6, df=6.0)
    assert y.mean() == pytest.approx(0.7, abs=0.005)
    assert y.var() == pytest.approx(0.36 * 6.0 / 4.0, rel=0.03)
    assert float(f.variance(0.7, sigma=0.6, df=6.0)) == pytest.approx(1.5)  # times sigma^2, as gaussian's
    assert np.isinf(f.variance(0.7, sigma=0.6, df=1.5))


def test_names_and_response_check():
    f = get_family("t_family")
    assert f.name == "student_t" and f.r_name == "t" and f.aux_names == ("sigma", "df")
    with pytest.raises(ValueError, match="response 'y' has non-finite values"):
        f.check_response(np.array([0.0, np.inf]), None, "y")


def test_ml_equals_glmmtmb(ml_fit):
    """logLik within 1e-5 of glmmTMB (or higher), fixed effects within 0.01 SE, sigma and df close."""
    key, fit = ml_fit
    ref = REF[key]
    assert fit.loglik > ref["loglik"] - 1e-5
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-4)  # the same optimum, not another one
    fe = pd.Series(ref["fixef"])
    se = pd.Series(ref["fixef_se"])
    assert np.all(np.abs(fit.fixef[fe.index] - fe) < 0.01 * se)
    np.testing.assert_allclose(fit.se[se.index], se, rtol=1e-3)
    disp = fit.dispersion
    assert disp["sigma"] == pytest.approx(ref["sigma"], rel=1e-4)
    assert disp["df"] == pytest.approx(ref["df"], rel=1e-3)
    tab = fit.dispersion_table()
    assert tab.loc["sigma", "SE(log)"] == pytest.approx(ref["log_sigma_se"], rel=1e-3)
    assert tab.loc["df", "SE(log)"] == pytest.approx(ref["log_df_se"], rel=1e-3)
    text = str(fit)
    assert f"Family: t  ( {REF[key]['link']} )" in text and "df = " in text  # glmmTMB's family line


def test_simulate_and_predict(ml_fit):
    key, fit = ml_fit
    n = len(_data(key))
    sims = fit.simulate(n=10, random_seed=5)
    assert sims.shape == (n, 10) and np.isfinite(sims.to_numpy()).all()
    resid = sims.to_numpy() - sims.to_numpy().mean(axis=1, keepdims=True)
    # df 4.5 to 7.6: heavier tails than a normal's (excess kurtosis 0, SE sqrt(24 / n) < 0.08 here)
    assert stats.kurtosis(resid.ravel()) > 0.5
    inv = np.exp if REF[key]["link"] == "log" else (lambda e: e)
    np.testing.assert_allclose(fit.predict(kind="mean"), inv(fit.predict(kind="link")))
    new = pd.DataFrame({"x": [0.0, 1.0], "g": ["zz_new", "zz_new"]})
    pop = fit.predict(new, kind="mean")  # a new level: the population prediction
    np.testing.assert_allclose(pop, inv(fit.fixef["(Intercept)"] + fit.fixef["x"] * new["x"].to_numpy()))


def test_native_sample_recovers_the_truth():
    """A short native NUTS run on the random-intercept data: sigma and df near the truth (0.6, 4)."""
    m = bg.GLMM(FORMULAS["intercept"], _data("intercept"), family="student_t")
    r = m.sample(draws=300, tune=300, chains=2, sampler="native", random_seed=3, progressbar=False,
                 check=False)
    post = r.idata.posterior
    truth = REF["truth"]
    assert float(post["sigma"].mean()) == pytest.approx(truth["sigma"], rel=0.2)
    assert 2.5 < float(post["df"].mean()) < 9.0
    assert r.fixef["x"] == pytest.approx(truth["x"], abs=0.1)
    assert r.fixef["(Intercept)"] == pytest.approx(truth["(Intercept)"], abs=0.3)
    assert list(r.dispersion.index) == ["sigma", "df"]
    yrep = np.asarray(r.posterior_predictive(random_seed=1).posterior_predictive["y"])
    assert np.isfinite(yrep).all()

"""PQL against R's MASS::glmmPQL.

Reference numbers come from R 4.2.2, MASS 7.3.58.2, nlme 3.1.162 on the bundled CSVs:

    library(MASS); library(nlme)
    toenail <- read.csv("bayes_glmm/datasets/data/toenail.csv"); toenail$ID <- factor(toenail$ID)
    f <- glmmPQL(Response ~ Month*Treatment, random = ~1|ID, family = binomial, data = toenail)
    fixef(f); sqrt(diag(vcov(f))); VarCorr(f); f$sigma; ranef(f)[1:3, 1]
    # fixed dispersion: the same call with control = lmeControl(sigma = 1)
    cbpp <- read.csv("bayes_glmm/datasets/data/cbpp.csv"); cbpp$herd <- factor(cbpp$herd)
    cbpp$period <- factor(cbpp$period)
    g <- glmmPQL(cbind(incidence, size - incidence) ~ period, random = ~1|herd,
                 family = binomial, data = cbpp)

Note: ``summary(f)$tTable`` standard errors are ``sqrt(diag(vcov(f)))`` times
``sqrt(N / (N - p))`` (nlme's small-sample adjustment for ML fits); we match ``vcov(f)``.
"""
import warnings

import numpy as np
import pytest

import bayes_glmm as bg
from bayes_glmm.ml.pql import PQLResults, fit_pql

R_TOENAIL = {
    "fixef": [-0.74324709115, -0.29469101912, -0.03480231062, -0.10017515153],
    "se": [0.24632896217, 0.03184357735, 0.34927220800, 0.05052566640],
    "sd": 2.3170716, "sigma": 0.9362731886, "ranef": [2.1204922669, 0.8276452516, -0.0384238800],
}
R_TOENAIL_PHI1 = {
    "fixef": [-0.71909077326, -0.27721007155, -0.02542858046, -0.09555959103],
    "se": [0.23547824839, 0.03211588440, 0.33390821989, 0.05088576929],
    "sd": 2.152506, "ranef": [1.93699449653, 0.73935778893, -0.08749921317],
}
R_CBPP = {
    "fixef": [-1.327363885, -1.016126429, -1.149984235, -1.605217031],
    "se": [0.2303248967, 0.3550066945, 0.3793816081, 0.4990019635],
    "sd": 0.5563535, "sigma": 1.18452749, "ranef": [0.4346037042, -0.2673586784, 0.3026870375],
}
R_CBPP_PHI1 = {
    "fixef": [-1.3575083531, -0.9793680388, -1.1141741129, -1.5633202945],
    "se": [0.2240915781, 0.3029700231, 0.3232245754, 0.4241734294],
    "sd": 0.6245503, "ranef": [0.5469576017, -0.3247240416, 0.3636243924],
}


@pytest.fixture(scope="module")
def toenail_model():
    return bg.GLMM("Response ~ Month * Treatment + (1 | ID)", bg.datasets.load("toenail"), family="bernoulli")


@pytest.fixture(scope="module")
def cbpp_model():
    return bg.GLMM("cbind(incidence, size - incidence) ~ period + (1 | herd)", bg.datasets.load("cbpp"),
                   family="binomial")


def _check(res, ref, *, tol_fe=2e-5, tol_sd=2e-5):
    np.testing.assert_allclose(res.fixef.to_numpy(), ref["fixef"], atol=tol_fe)
    np.testing.assert_allclose(res.se.to_numpy(), ref["se"], rtol=1e-4)
    assert res.varcorr["sdcor"].iloc[0] == pytest.approx(ref["sd"], abs=tol_sd)
    first = next(iter(res.ranef.values())).iloc[:3, 0].to_numpy()
    np.testing.assert_allclose(first, ref["ranef"], atol=1e-4)


def test_toenail_matches_glmmpql(toenail_model):
    # glmmPQL also stops at niter = 10 here without meeting its criterion; we warn
    with pytest.warns(UserWarning, match="did not converge"):
        res = fit_pql(toenail_model.spec)
    _check(res, R_TOENAIL)
    assert np.sqrt(res.dispersion) == pytest.approx(R_TOENAIL["sigma"], abs=1e-5)
    # the target (rounded glmmPQL output)
    np.testing.assert_allclose(res.fixef.round(3), [-0.743, -0.295, -0.035, -0.100], atol=1e-3)
    assert res.iterations == 10


def test_toenail_fixed_dispersion_matches_lmecontrol_sigma1(toenail_model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit_pql(toenail_model.spec, dispersion=False)
    _check(res, R_TOENAIL_PHI1)
    assert res.dispersion == 1.0 and not res.estimate_dispersion


def test_cbpp_binomial_with_trials(cbpp_model):
    res = fit_pql(cbpp_model.spec)
    _check(res, R_CBPP)
    assert np.sqrt(res.dispersion) == pytest.approx(R_CBPP["sigma"], abs=1e-5)
    res1 = fit_pql(cbpp_model.spec, dispersion=False)
    _check(res1, R_CBPP_PHI1)


def test_results_contract(cbpp_model):
    res = cbpp_model.fit_pql()
    assert isinstance(res, PQLResults)
    assert res.method == "PQL"
    assert np.isnan(res.loglik) and np.isnan(res.aic) and np.isnan(res.bic)
    assert list(res.fixef.index) == list(cbpp_model.spec.fixed_names)
    assert res.vcov.shape == (4, 4)
    assert set(res.varcorr.columns) == {"grp", "var1", "var2", "vcov", "sdcor"}
    assert "z value" in res.summary().columns
    text = repr(res)
    assert "penalized quasi-likelihood" in text and "biased" in text
    assert res.predict(kind="mean").shape == (cbpp_model.spec.n,)


def test_pql_agrees_with_laplace_for_binomial_with_many_trials(cbpp_model):
    # PQL's bias is small when the binomial denominators are not tiny: within 1 SE of ML
    ml = cbpp_model.fit_ml()
    res = fit_pql(cbpp_model.spec, dispersion=False)
    assert np.all(np.abs(res.fixef - ml.fixef) < ml.se)


def test_errors(cbpp_model):
    m = bg.GLMM("cbind(incidence, size - incidence) ~ period", bg.datasets.load("cbpp"), family="binomial")
    with pytest.raises(ValueError, match="random-effects term"):
        fit_pql(m.spec)
    with pytest.raises(ValueError, match="max_iter"):
        fit_pql(cbpp_model.spec, max_iter=0)


def test_gaussian_pql_is_ml_lmm():
    m = bg.GLMM("Reaction ~ Days + (1 | Subject)", bg.datasets.load("sleepstudy"))
    res = fit_pql(m.spec)
    ml = m.fit_ml(reml=False)
    np.testing.assert_allclose(res.fixef, ml.fixef, rtol=1e-6)
    np.testing.assert_allclose(res.varcorr["sdcor"], ml.varcorr["sdcor"], rtol=1e-4)


def test_epilepsy_random_slopes_offset_poisson():
    # R: ep <- read.csv("bayes_glmm/datasets/data/epilepsy.csv"); ep$id <- factor(ep$id)
    #    glmmPQL(count ~ offset(log(weeks)) + followup*group, random = ~1 + followup | id,
    #            family = poisson, data = ep)
    # R codes the interaction as followupFALSE:group / followupTRUE:group (group is numeric),
    # i.e. our group and group + followupTRUE:group.
    m = bg.GLMM("count ~ offset(log(weeks)) + followup * group + (1 + followup | id)",
                bg.datasets.load("epilepsy"), family="poisson")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = m.fit_pql()
    fx = res.fixef
    np.testing.assert_allclose([fx["(Intercept)"], fx["followupTRUE"], fx["group"],
                                fx["group"] + fx["followupTRUE:group"]],
                               [1.12581681261, -0.02186040976, 0.03114733156, -0.21949481784], atol=5e-5)
    np.testing.assert_allclose(res.varcorr["sdcor"], [0.6683403, 0.4047593, 0.313], atol=1e-3)
    assert np.sqrt(res.dispersion) == pytest.approx(1.4031619, abs=1e-4)

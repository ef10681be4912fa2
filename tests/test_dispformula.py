"""Dispersion formulas, ``disp="~ x"`` (glmmTMB's ``dispformula``; issue 18).

The reference fits come from ``tests/reference/make_reference_dispformula.R`` (glmmTMB 1.1.5, ML,
Laplace): gaussian on Orthodont (``disp = ~ Sex``, and ``~ 1``) and on sleepstudy (a correlated
random slope, ``disp = ~ Days``), NB2 on Salamanders (``disp = ~ mined``, and ``~ 1``), and simulated
Gamma (random slope), Beta and Student-t data (``disp = ~ z``).  glmmTMB's ``betad`` is the log of
sigma^2 for gaussian (twice our log-sigma coefficients) and the log of theta, shape, phi and the t's
sigma for the others: the script checks that mapping on fits without random effects.
"""
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm.families import get_family

REF_DIR = Path(__file__).parent / "reference"
REF = json.loads((REF_DIR / "dispformula_reference.json").read_text())
FAMILY = {"orthodont": "gaussian", "orthodont_1": "gaussian", "sleepstudy": "gaussian",
          "salamanders": "negbinomial", "salamanders_1": "negbinomial", "gamma": "gamma", "beta": "beta",
          "student_t": "student_t", "hurdle_negbinomial": "hurdle_negbinomial"}
#: glmmTMB's betad per our coefficient: log sigma^2 = 2 log sigma for gaussian, the same scale otherwise
BETAD_PER_COEF = {"gaussian": 2.0}


def _data(key):
    return pd.read_csv(Path(__file__).parent.parent / REF[key]["data_file"])


def _model(key, **kw):
    ref = REF[key]
    fam = FAMILY[key]
    link = ref["link"] if fam == "gamma" else None
    return bg.GLMM(ref["formula"], _data(key), family=fam, link=link, disp=ref["dispformula"],
                   hu=ref.get("hu"), **kw)


@pytest.fixture(scope="module", params=sorted(FAMILY))
def ml_fit(request):
    key = request.param
    return key, _model(key).fit_ml()


def test_mapping_check_in_reference():
    """The R script's parametrization check: logLik() equals the density summed by hand."""
    for fam, chk in REF["mapping_check"].items():
        assert chk["loglik"] == pytest.approx(chk["by_hand"], abs=1e-8), fam


def test_ml_equals_glmmtmb(ml_fit):
    """logLik within 1e-5 of glmmTMB (or higher); fixed effects and dispersion coefficients within
    0.01 SE; SEs and random-effect SDs close."""
    key, fit = ml_fit
    ref = REF[key]
    assert fit.loglik > ref["loglik"] - 1e-5
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-4)
    fe, se = pd.Series(ref["fixef"]), pd.Series(ref["fixef_se"])
    assert np.all(np.abs(fit.fixef[fe.index] - fe) < 0.01 * se)
    np.testing.assert_allclose(fit.se[se.index], se, rtol=2e-3)
    k = BETAD_PER_COEF.get(FAMILY[key], 1.0)
    bd, bd_se = pd.Series(ref["disp"]), pd.Series(ref["disp_se"])
    ours = k * fit.fixef_disp[bd.index]
    assert np.all(np.abs(ours - bd) < 0.01 * bd_se)
    np.testing.assert_allclose(k * fit.se_disp[bd.index], bd_se, rtol=2e-3)
    for g, sds in ref["varcorr_sd"].items():
        vc = fit.varcorr
        for coef, sd in sds.items():
            row = vc[(vc["grp"] == g) & (vc["var1"] == coef) & vc["var2"].isna()]
            assert float(row["sdcor"].iloc[0]) == pytest.approx(sd, rel=2e-3, abs=1e-4)
    if ref.get("fixef_hu") is not None:  # the hurdle's part, glmmTMB's zi coefficients
        hu, hu_se = pd.Series(ref["fixef_hu"]), pd.Series(ref["fixef_hu_se"])
        assert np.all(np.abs(fit.fixef_zi[hu.index] - hu) < 0.01 * hu_se)
        np.testing.assert_allclose(fit.se_zi[hu.index], hu_se, rtol=2e-3)
    if ref.get("df") is not None:
        assert fit.dispersion["df"] == pytest.approx(ref["df"], rel=1e-3)
    text = str(fit)
    assert "Dispersion model (log " in text and f"Dispersion: {ref['dispformula']}" in text


def test_lrt_between_dispersion_formulas():
    """disp = ~1 against disp = ~ mined (one interior coefficient: naive chi-square), as glmmTMB's anova."""
    f1 = _model("salamanders").fit_ml()
    f0 = _model("salamanders_1").fit_ml()
    out = bg.lrt(f0, f1)
    assert out.df == 1 and out.differs["disp"] == ["disp: minedyes"]
    assert out.chisq == pytest.approx(2 * (REF["salamanders"]["loglik"] - REF["salamanders_1"]["loglik"]), abs=1e-4)
    # a constant dispersion without disp= is the same model as disp="~1"
    plain = bg.GLMM(REF["salamanders"]["formula"], _data("salamanders"), family="negbinomial").fit_ml()
    assert plain.loglik == pytest.approx(f0.loglik, abs=1e-6)
    assert bg.lrt(plain, f1).chisq == pytest.approx(out.chisq, abs=1e-4)


def test_disp_none_is_the_plain_model():
    """disp=None (the default) leaves the spec, the fit and its tables exactly as without the argument."""
    d = _data("orthodont")
    a = bg.GLMM("distance ~ age + Sex + (1 | Subject)", d).fit_ml()
    b = bg.GLMM("distance ~ age + Sex + (1 | Subject)", d, disp=None).fit_ml()
    assert a.spec.X_disp is None and not a.spec.has_disp and a.spec.is_lmm and a.method == "REML"
    assert a.loglik == b.loglik and np.array_equal(a.fixef.to_numpy(), b.fixef.to_numpy())
    assert float(a.sigma) == float(b.sigma) and "Dispersion model" not in str(a)
    with pytest.raises(AttributeError, match="no dispersion formula"):
        a.fixef_disp


def test_gaussian_disp_is_ml_through_laplace():
    m = _model("orthodont")
    assert not m.spec.is_lmm and m.spec.family.is_linear
    with pytest.raises(ValueError, match="reml=True does not apply with a dispersion formula"):
        m.fit_ml(reml=True)
    fit = m.fit_ml()
    assert fit.method == "Laplace" and not fit.reml and fit.sigma is None
    # per-row sigma: the two sexes' residual SDs, exp(b0) and exp(b0 + b1)
    sig = np.exp(m.spec.X_disp @ fit.fixef_disp.to_numpy())
    assert set(np.round(sig, 10)) == set(np.round(np.exp([fit.fixef_disp.iloc[0], fit.fixef_disp.sum()]), 10))
    r = fit.residuals("pearson")
    assert np.isfinite(r).all()
    sims = fit.simulate(2, random_seed=3)
    assert sims.shape == (m.spec.n, 2)
    ci = fit.confint()
    assert {"disp_(Intercept)", "disp_SexMale"} <= set(ci.index) and np.isfinite(ci.loc["disp_SexMale"]).all()


def test_profile_interval_of_a_dispersion_coefficient():
    """The profile interval of disp_SexMale brackets the estimate and is close to the Wald one
    (the log-scale likelihood is nearly quadratic here); the deviance at its ends is the cut."""
    fit = _model("orthodont").fit_ml()
    prof = fit.confint(method="profile", parm=["disp_SexMale"]).loc["disp_SexMale"]
    wald = fit.confint().loc["disp_SexMale"]
    est = fit.fixef_disp["SexMale"]
    assert prof["lower"] < est < prof["upper"]
    np.testing.assert_allclose(prof.to_numpy(), wald.to_numpy(), atol=0.15 * fit.se_disp["SexMale"])


def test_simulate_uses_the_per_row_dispersion():
    """Draws from a fit with disp = ~ z spread as exp(b0 + b1 z) says, row by row."""
    m = _model("student_t")
    fit = m.fit_ml()
    sims = fit.simulate(400, random_seed=5).to_numpy()
    z = m.spec.X_disp[:, 1]
    lo, hi = z < 0.2, z > 0.8
    ratio = np.median(np.abs(sims[hi] - sims[hi].mean(axis=1, keepdims=True))) / \
        np.median(np.abs(sims[lo] - sims[lo].mean(axis=1, keepdims=True)))
    b1 = fit.fixef_disp["z"]
    expected = np.exp(b1 * (z[hi].mean() - z[lo].mean()))
    assert ratio == pytest.approx(expected, rel=0.15)


@pytest.mark.parametrize("kw, match", [
    (dict(family="poisson", formula="count ~ mined + (1 | site)", disp="~ mined"),
     "a dispersion formula applies to the families .*'gaussian'.*not 'poisson'"),
    (dict(family="negbinomial", formula="count ~ mined + (1 | site)", disp="~ (1 | spp)"),
     "random effects in the dispersion formula are not supported"),
    (dict(family="negbinomial", formula="count ~ mined + (1 | site)", disp="~ offset(cover)"),
     "offset\\(\\) in the dispersion formula is not supported"),
    (dict(family="negbinomial", formula="count ~ mined + (1 | site)", disp="mined"),
     "must be one-sided"),
    (dict(family="negbinomial", formula="count ~ mined + (1 | site)", disp="~ minde"),
     "unknown column 'minde' in dispersion formula"),
    (dict(family="negbinomial", formula="count ~ mined + (1 | site)", disp=3),
     "disp must be a one-sided formula string"),
])
def test_boundary_errors(kw, match):
    d = _data("salamanders")
    with pytest.raises(ValueError, match=match):
        bg.GLMM(kw.pop("formula"), d, **kw)


def test_which_families_take_disp_is_declared():
    takes = {n for n in ("gaussian", "negbinomial", "gamma", "beta", "student_t", "poisson", "bernoulli",
                         "binomial", "nbinom1", "betabinomial", "hurdle_poisson", "hurdle_negbinomial")
             if get_family(n).allows_disp}
    assert takes == {"gaussian", "negbinomial", "gamma", "beta", "student_t", "hurdle_negbinomial"}
    assert get_family("student_t").aux_params[0].allows_formula and not get_family("student_t").aux_params[1].allows_formula


def test_bayesian_smoke_matches_ml():
    """A short native NUTS run of the gaussian Orthodont model with disp = ~ Sex: beta_disp near the
    ML estimates (within a few posterior SDs), no sigma variable, the pointwise log-likelihood of the
    generated C equal to the NumPy family code's, posterior predictive draws per row."""
    m = _model("orthodont")
    ml = m.fit_ml()
    res = m.sample(draws=150, tune=150, chains=2, random_seed=3, sampler="native", progressbar=False)
    post = res.idata.posterior
    assert "sigma" not in post and post["beta_disp"].shape[-1] == 2
    bd = np.asarray(post["beta_disp"]).reshape(-1, 2)
    z = np.abs(bd.mean(0) - ml.fixef_disp.to_numpy()) / bd.std(0)
    assert np.all(z < 3.0)
    s = res.summary()
    assert {"disp_Intercept", "disp_SexMale"} <= set(s.index)
    from bayes_glmm.bayes.pointwise import pointwise_loglik
    np.testing.assert_allclose(pointwise_loglik(m.spec, post),
                               np.asarray(res.idata.log_likelihood["y"]).reshape(-1, m.spec.n), rtol=1e-10, atol=1e-10)
    pp = np.asarray(res.posterior_predictive(random_seed=1).posterior_predictive["y"]).reshape(-1, m.spec.n)
    boys = m.spec.X_disp[:, 1] == 1.0  # the boys' residual SD is larger: so is their predictive spread
    resid = pp - pp.mean(axis=0)
    assert resid[:, boys].std() > resid[:, ~boys].std()


def test_bayesian_hurdle_negbinomial_disp_matches_ml():
    """A short native NUTS run of the hurdle NB2 Salamanders model with disp = ~ mined (glmmTMB's
    truncated_nbinom2 with a dispformula): the dispersion and hurdle coefficients near the ML
    estimates (within a few posterior SDs), the C pointwise log-likelihood equal to NumPy's."""
    m = _model("hurdle_negbinomial")
    ml = m.fit_ml()
    with warnings.catch_warnings():  # short chains: the R-hat / ESS note is expected
        warnings.simplefilter("ignore", UserWarning)
        res = m.sample(draws=120, tune=120, chains=2, random_seed=5, sampler="native", progressbar=False)
    post = res.idata.posterior
    assert "theta" not in post and post["beta_disp"].shape[-1] == 2
    bd = np.asarray(post["beta_disp"]).reshape(-1, 2)
    assert np.all(np.abs(bd.mean(0) - ml.fixef_disp.to_numpy()) / bd.std(0) < 3.0)
    from bayes_glmm.bayes.pointwise import pointwise_loglik
    np.testing.assert_allclose(pointwise_loglik(m.spec, post),
                               np.asarray(res.idata.log_likelihood["y"]).reshape(-1, m.spec.n),
                               rtol=1e-10, atol=1e-10)

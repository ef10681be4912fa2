"""ML fits of the dispersion families (NB2, NB1, Gamma, Beta) and zero inflation.

The agreement with glmmTMB on real and simulated data is in test_families_reference.py
(reference JSON made by R); here: the pieces the fitter is built from and its behaviour.
"""
import functools

import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm.families import get_family
from bayes_glmm.ml import laplace, linalg
from bayes_glmm.ml import optimize as opt
from bayes_glmm.ml.pirls import make_response


@functools.lru_cache(maxsize=None)
def sim() -> pd.DataFrame:
    """40 groups x 10 rows of each family, random intercept SD 0.5, slope 0.4 (seeded)."""
    rng = np.random.default_rng(3)
    J, m = 40, 10
    g = np.repeat(np.arange(J), m)
    x = rng.normal(size=J * m)
    b = rng.normal(0, 0.5, J)
    bs = rng.normal(0, 0.2, J)
    eta = 0.5 + 0.4 * x + b[g]
    out = {"x": x, "g": [f"g{k}" for k in g]}
    for fam, disp in [("negbinomial", 2.0), ("nbinom1", 1.5), ("gamma", 3.0), ("beta", 8.0), ("poisson", None)]:
        e = eta + bs[g] * x if fam == "gamma" else (eta - 0.5 if fam == "beta" else eta)
        y = get_family(fam).random(e, rng, disp=disp)
        out[fam] = y
        if fam in ("poisson", "negbinomial"):
            out[fam + "_zi"] = np.where(rng.random(len(y)) < 0.3, 0, y)
    return pd.DataFrame(out)


CASES = [  # column, family, zi, random part
    ("negbinomial", "negbinomial", None, "(1 | g)"),
    ("negbinomial_zi", "negbinomial", "~ x", "(1 | g)"),
    ("nbinom1", "nbinom1", None, "(1 + x | g)"),
    ("gamma", "gamma", None, "(1 + x | g)"),
    ("beta", "beta", None, "(1 | g)"),
    ("poisson_zi", "poisson", "~ x", "(1 | g)"),
]


@pytest.mark.parametrize("col,fam,zi,re", CASES)
def test_laplace_gradient_matches_finite_differences(col, fam, zi, re):
    """The analytic Laplace gradient (implicit mode derivatives, row-wise aux derivatives)
    equals central differences of the deviance at an arbitrary point."""
    spec = bg.GLMM(f"{col} ~ x + {re}", sim(), family=fam, zi=zi).spec
    resp = make_response(spec)
    s = linalg.build_structure(spec.terms)
    sl, _, t0 = opt.theta_layout(spec.terms)
    x = np.concatenate([t0 * 0.7 + 0.05, laplace.start_beta(resp) + 0.05, laplace.start_aux(resp) + 0.1])
    dev = laplace.make_deviance(resp, s, spec.terms, sl, 1, {})
    f, g = laplace.make_devgrad(resp, s, spec.terms, sl, 1, {})(x)
    assert f == pytest.approx(dev(x), abs=1e-7)
    gn = opt.fd_gradient(dev, x)
    np.testing.assert_allclose(g, gn, atol=2e-6 * max(1.0, np.max(np.abs(gn))))


@functools.lru_cache(maxsize=None)
def fit(col, fam, zi=None, re="(1 | g)", n_agq=1):
    return bg.GLMM(f"{col} ~ x + {re}", sim(), family=fam, zi=zi).fit_ml(n_agq=n_agq)


@pytest.mark.parametrize("col,fam,zi,re", CASES)
def test_fits_converge_and_report_their_parameters(col, fam, zi, re):
    r = fit(col, fam, zi, re)
    assert r.converged and r.optimizer["hessian_pd"]
    f = get_family(fam)
    if f.has_dispersion:
        assert list(r.dispersion.index) == [f.dispersion_name] and r.dispersion.iloc[0] > 0
        tab = r.dispersion_table()
        assert tab["lower"].iloc[0] < r.dispersion.iloc[0] < tab["upper"].iloc[0]
    else:
        assert r.dispersion.empty
    n_zi = 2 if zi else 0
    assert r.df == 2 + sum(t.n_theta for t in r.spec.terms) + n_zi + int(f.has_dispersion)
    assert np.all(np.isfinite(r.se)) and np.all(r.se > 0)
    assert r.fixef["x"] == pytest.approx(0.4, abs=4 * r.se["x"])
    if zi:
        assert list(r.fixef_zi.index) == ["(Intercept)", "x"]
        assert np.all(r.se_zi > 0)
        # 30% structural zeros were simulated: logit(0.3) = -0.85
        assert r.fixef_zi["(Intercept)"] == pytest.approx(-0.85, abs=4 * r.se_zi["(Intercept)"])


def test_known_values_recovered_by_the_dispersion_families():
    assert fit("negbinomial", "negbinomial").dispersion["theta"] == pytest.approx(2.0, rel=0.35)
    assert fit("gamma", "gamma", None, "(1 + x | g)").dispersion["shape"] == pytest.approx(3.0, rel=0.2)
    assert fit("beta", "beta").dispersion["phi"] == pytest.approx(8.0, rel=0.2)
    assert fit("nbinom1", "nbinom1", None, "(1 + x | g)").dispersion["phi"] == pytest.approx(1.5, rel=0.35)


def test_zero_inflation_predict_and_accessors():
    r = fit("poisson_zi", "poisson", "~ x")
    pi = 1.0 / (1.0 + np.exp(-(r.fixef_zi["(Intercept)"] + r.fixef_zi["x"] * sim()["x"].to_numpy())))
    mu = r.predict(kind="link")
    np.testing.assert_allclose(r.predict(kind="mean"), (1.0 - pi) * np.exp(mu), rtol=1e-12)
    new = sim().iloc[:5]
    np.testing.assert_allclose(r.predict(new, kind="mean"), r.predict(kind="mean")[:5], rtol=1e-12)
    with pytest.raises(AttributeError, match="no zero-inflation part"):
        fit("negbinomial", "negbinomial").fixef_zi
    text = str(r)
    assert "Zero-inflation model:" in text and "Conditional model:" in text and "Zero inflation: ~ x" in text
    text = str(fit("negbinomial", "negbinomial"))
    assert "Dispersion parameter for negbinomial family" in text and "theta =" in text


def test_agq_is_on_the_laplace_scale_and_converges():
    lap = fit("negbinomial_zi", "negbinomial", "~ x")
    a9 = fit("negbinomial_zi", "negbinomial", "~ x", "(1 | g)", 9)
    a15 = fit("negbinomial_zi", "negbinomial", "~ x", "(1 | g)", 15)
    assert abs(a9.loglik - lap.loglik) < 0.5  # same scale, small Laplace error
    assert a15.loglik == pytest.approx(a9.loglik, abs=1e-3)
    assert a15.fixef["x"] == pytest.approx(a9.fixef["x"], abs=1e-3)


def test_lrt_names_the_boundary_of_poisson_within_negative_binomial():
    pois = fit("negbinomial", "poisson")
    nb = fit("negbinomial", "negbinomial")
    res = bg.lrt(pois, nb)
    assert res.df == 1 and res.reference == "0.5 chi2_0 + 0.5 chi2_1"
    assert "theta" in res.note and res.p_value == pytest.approx(0.5 * res.p_naive)
    assert "[poisson]" in res.table.index[0] and "[negbinomial]" in res.table.index[1]
    # one log-likelihood scale: AIC compares the families directly
    assert nb.aic < pois.aic
    zi1 = fit("negbinomial", "poisson", "~1")
    assert bg.lrt(pois, zi1).reference == "0.5 chi2_0 + 0.5 chi2_1"
    zix = fit("negbinomial", "poisson", "~ x")
    r2 = bg.lrt(pois, zix)
    assert r2.reference == "chi2_2 (conservative)" and "zero inflation" in r2.note
    with pytest.raises(ValueError, match="not nested"):
        bg.lrt(fit("negbinomial", "nbinom1"), fit("negbinomial", "negbinomial"))


def test_icc_of_count_and_gamma_models():
    nb = fit("negbinomial", "negbinomial")
    tab = bg.icc(nb) if hasattr(bg, "icc") else __import__("bayes_glmm.postfit.variance", fromlist=["icc"]).icc(nb)
    sd2 = float(nb.varcorr["vcov"].iloc[0])
    assert 0 < tab["icc"].iloc[0] < 1 and tab["variance"].iloc[0] == pytest.approx(sd2)
    from bayes_glmm.postfit.variance import latent_residual_variance
    assert latent_residual_variance("negbinomial", mu=2.0, disp=4.0) == pytest.approx(np.log1p(0.5 + 0.25))
    with pytest.raises(ValueError, match="beta family"):
        latent_residual_variance("beta")


@pytest.mark.parametrize("kw,msg", [
    (dict(family="gamma", zi="~ x"), "zero inflation applies to the count families"),
    (dict(family="poisson", zi="~ x + (1 | g)"), "random effects in the zero-inflation formula"),
    (dict(family="poisson", zi="x"), "must be one-sided"),
    (dict(family="poisson", zi=3), "one-sided formula string"),
    (dict(family="poisson", zi="~ nope"), "nope"),
])
def test_zi_argument_errors(kw, msg):
    with pytest.raises(ValueError, match=msg):
        bg.GLMM("poisson ~ x + (1 | g)", sim(), **kw)


def test_pql_refuses_dispersion_families_and_zero_inflation():
    with pytest.raises(ValueError, match="fit_pql does not handle the negbinomial family"):
        bg.GLMM("negbinomial ~ x + (1 | g)", sim(), family="negbinomial").fit_pql()
    with pytest.raises(ValueError, match="zero inflation"):
        bg.GLMM("poisson ~ x + (1 | g)", sim(), family="poisson", zi="~1").fit_pql()


def test_data_not_modified_and_aliases():
    d = sim().copy()
    before = d.copy()
    r = bg.GLMM("negbinomial ~ x + (1 | g)", d, family="nbinom2").fit_ml()
    pd.testing.assert_frame_equal(d, before)
    assert r.spec.family.name == "negbinomial"
    assert bg.GLMM("negbinomial ~ x + (1 | g)", d, family="NegativeBinomial").family.name == "negbinomial"


@pytest.mark.parametrize("col,fam,zi", [("negbinomial", "negbinomial", None), ("negbinomial_zi", "negbinomial", "~ x"),
                                        ("beta", "beta", None), ("poisson_zi", "poisson", "~ x"),
                                        ("poisson", "poisson", None)])
def test_scalar_term_gradient_fast_path_equals_general(col, fam, zi):
    from bayes_glmm.ml import agq
    from bayes_glmm.ml.laplace import _modes
    spec = bg.GLMM(f"{col} ~ x + (1 | g)", sim(), family=fam, zi=zi).spec
    resp = make_response(spec)
    s = linalg.build_structure(spec.terms)
    sl, _, t0 = opt.theta_layout(spec.terms)
    x = np.concatenate([t0 * 0.7 + 0.05, laplace.start_beta(resp) + 0.05, laplace.start_aux(resp) + 0.1])
    lam, pr, r = _modes(x, resp, s, spec.terms, sl, 1, {})
    E = agq.theta_directions(spec.terms[0], t0)
    g_fast = agq.devgrad(r, s, lam, E, pr, 1)[1]
    g_gen = agq.devgrad(r, s, lam, E, pr, 1, scalar_fast=False)[1]
    np.testing.assert_allclose(g_fast, g_gen, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("col,fam", [("negbinomial", "negbinomial"), ("poisson", "poisson"), ("beta", "beta")])
def test_scalar_term_agq_gradient_fast_path_equals_general(col, fam):
    # the AGQ gradient's mode derivatives for one scalar term (agq._mode_derivs_scalar) against
    # the general batched form, at a point off the optimum, with and without auxiliary parameters
    from bayes_glmm.ml import agq
    from bayes_glmm.ml.laplace import _modes
    spec = bg.GLMM(f"{col} ~ x + (1 | g)", sim(), family=fam).spec
    resp = make_response(spec)
    s = linalg.build_structure(spec.terms)
    sl, _, t0 = opt.theta_layout(spec.terms)
    x = np.concatenate([t0 * 0.7 + 0.05, laplace.start_beta(resp) + 0.05, laplace.start_aux(resp) + 0.1])
    lam, pr, r = _modes(x, resp, s, spec.terms, sl, 1, {})
    E = agq.theta_directions(spec.terms[0], t0)
    aux_rows = agq._row_aux_derivs(r, pr.eta) if r.general else None
    fast = agq._mode_derivs(r, s, lam, E, pr, True, aux_rows)
    gen = agq._mode_derivs(r, s, lam, E, pr, True, aux_rows, scalar_fast=False)
    for a, b in zip(fast, gen):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * np.max(np.abs(b)))
    if not r.general:  # (the AGQ gradient of the families with auxiliary parameters is the ordinal one's)
        f_fast, g_fast = agq.devgrad(r, s, lam, E, pr, 7)
        f_gen, g_gen = agq.devgrad(r, s, lam, E, pr, 7, scalar_fast=False)
        assert f_fast == f_gen
        np.testing.assert_allclose(g_fast, g_gen, rtol=1e-10, atol=1e-9)

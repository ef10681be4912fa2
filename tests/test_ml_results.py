"""MLResults on hand-made MLFit objects (fast; independent of the numerics)."""
import warnings

import numpy as np
import pandas as pd
import pytest

from bayes_glmm.families import get_family
from bayes_glmm.ml.results import MLResults
from bayes_glmm.ml.summary_text import format_pvalue, signif_stars
from bayes_glmm.ml.types import MLFit
from bayes_glmm.spec.model_spec import ModelSpec, RandomTerm


def make_spec(family="bernoulli", slope=False, two_terms=False, n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x])
    codes = np.arange(n) % 5
    Xr = np.column_stack([np.ones(n), x]) if slope else np.ones((n, 1))
    coefs = ("(Intercept)", "x") if slope else ("(Intercept)",)
    terms = [RandomTerm("g", "g", coefs, slope, codes, pd.Index(list("abcde")), Xr)]
    if two_terms:
        terms.append(RandomTerm("h", "h", ("(Intercept)",), False, np.arange(n) % 4,
                                pd.Index(["p", "q", "r", "s"]), np.ones((n, 1))))
    y = rng.integers(0, 2, n).astype(float) if family == "bernoulli" else rng.normal(size=n)
    return ModelSpec(formula="y ~ x + (1 | g)", family=get_family(family), response_name="y", y=y,
                     trials=None, X=X, fixed_names=("(Intercept)", "x"), offset=np.zeros(n),
                     weights=np.ones(n), terms=tuple(terms), row_index=pd.RangeIndex(n))


def make_fit(spec, lambdas, sigma=None, loglik=-20.0, method="Laplace", reml=False, n_agq=1,
             optimizer=None):
    from bayes_glmm.covariance import chol_to_theta
    theta = np.concatenate([chol_to_theta(L, t.correlated) for L, t in zip(lambdas, spec.terms)])
    n_params = spec.p + len(theta) + (sigma is not None)
    b = [np.arange(t.n_levels * t.q, dtype=float).reshape(t.n_levels, t.q) / 10 for t in spec.terms]
    b_sd = [np.full((t.n_levels, t.q), 0.5) for t in spec.terms]
    return MLFit(beta=np.array([-1.5, 0.25]), theta=theta, sigma=sigma, lambdas=lambdas, b=b, b_sd=b_sd,
                 vcov_beta=np.array([[0.04, 0.001], [0.001, 0.0025]]), loglik=loglik,
                 n_params=n_params, method=method, reml=reml, n_agq=n_agq,
                 optimizer=optimizer or {"converged": True, "messages": []})


@pytest.fixture
def glmm():
    spec = make_spec()
    return MLResults(spec, make_fit(spec, [np.array([[2.0]])]))


def test_accessors_and_shapes(glmm):
    assert list(glmm.fixef.index) == ["(Intercept)", "x"]
    assert glmm.fixef["x"] == 0.25
    np.testing.assert_allclose(glmm.se.values, [0.2, 0.05])
    assert glmm.vcov.shape == (2, 2) and list(glmm.vcov.columns) == ["(Intercept)", "x"]
    vc = glmm.varcorr
    assert list(vc.columns) == ["grp", "var1", "var2", "vcov", "sdcor"]
    assert vc.shape == (1, 5) and vc["vcov"].iloc[0] == pytest.approx(4.0)
    assert vc["sdcor"].iloc[0] == pytest.approx(2.0)
    assert list(glmm.ranef) == ["g"] and glmm.ranef["g"].shape == (5, 1)
    assert glmm.ranef_sd["g"].shape == (5, 1) and (glmm.ranef_sd["g"].values == 0.5).all()
    assert list(glmm.theta.index) == ["g.(Intercept)"] and glmm.theta.iloc[0] == 2.0
    assert glmm.sigma is None and glmm.method == "Laplace" and glmm.df == 3
    assert glmm.optimizer["converged"] is True
    assert not glmm.is_singular
    beta, b, covs, sigma = glmm._point_params()
    assert beta.shape == (2,) and b[0].shape == (5, 1) and covs[0].shape == (1, 1) and sigma is None


def test_aic_bic_arithmetic(glmm):
    assert glmm.loglik == -20.0
    assert glmm.deviance == pytest.approx(40.0)
    assert glmm.aic == pytest.approx(40.0 + 2 * 3)
    assert glmm.bic == pytest.approx(40.0 + np.log(40) * 3)
    assert glmm.df_resid == 37


def test_coef_table_z_and_pvalues(glmm):
    tab = glmm.coef_table()
    assert list(tab.columns) == ["Estimate", "Std. Error", "z value", "Pr(>|z|)"]
    assert tab.loc["(Intercept)", "z value"] == pytest.approx(-7.5)
    from scipy import stats
    assert tab.loc["x", "Pr(>|z|)"] == pytest.approx(2 * stats.norm.sf(5.0))
    pd.testing.assert_frame_equal(glmm.summary(), tab)


def test_gaussian_covs_scaled_by_sigma_and_t_values():
    spec = make_spec("gaussian", slope=True)
    L = np.array([[1.0, 0.0], [0.1, 0.5]])
    res = MLResults(spec, make_fit(spec, [L], sigma=3.0, method="REML", reml=True))
    np.testing.assert_allclose(res.covs[0], 9.0 * L @ L.T)
    vc = res.varcorr
    assert list(vc["grp"]) == ["g", "g", "g", "Residual"]
    assert vc["var2"].iloc[2] == "x"
    assert vc["sdcor"].iloc[3] == pytest.approx(3.0)
    assert vc["vcov"].iloc[3] == pytest.approx(9.0)
    assert vc["sdcor"].iloc[2] == pytest.approx(0.1 / np.sqrt(0.26))
    assert list(res.theta.index) == ["g.(Intercept)", "g.x.(Intercept)", "g.x"]
    tab = res.coef_table()
    assert list(tab.columns) == ["Estimate", "Std. Error", "t value"]
    text = str(res)
    assert "Linear mixed model fit by REML" in text and "REML criterion at convergence" in text
    assert "Residual" in text and "t value" in text and "Signif. codes" not in text


def test_singular_variance_warns_with_term_name():
    spec = make_spec(two_terms=True)
    with pytest.warns(UserWarning, match="singular.*'h'.*variance"):
        res = MLResults(spec, make_fit(spec, [np.array([[1.0]]), np.array([[0.0]])]))
    assert res.is_singular and "'h'" in res.singular_terms[0]
    assert "boundary (singular) fit" in str(res)


def test_singular_correlation_detected():
    spec = make_spec(slope=True)
    L = np.array([[1.0, 0.0], [0.8, 1e-7]])  # slope = 0.8 * intercept: corr = +1
    with pytest.warns(UserWarning, match="correlation of 'x'"):
        res = MLResults(spec, make_fit(spec, [L]))
    assert res.is_singular


def test_nonsingular_does_not_warn():
    spec = make_spec(slope=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = MLResults(spec, make_fit(spec, [np.array([[1.0, 0.0], [0.3, 0.4]])]))
    assert not res.is_singular


def test_text_summary_reads_like_glmer(glmm):
    text = repr(glmm)
    for piece in ["Generalized linear mixed model fit by maximum likelihood (Laplace Approximation)",
                  "Family: binomial  ( logit )", "Formula: y ~ x + (1 | g)", "AIC", "BIC", "logLik",
                  "df.resid", "Random effects:", "Groups", "Variance", "Std.Dev.", "Number of obs: 40",
                  "g, 5", "Fixed effects:", "z value", "Pr(>|z|)", "***", "Signif. codes"]:
        assert piece in text, piece
    assert "46.0" in text  # AIC


def test_agq_header_and_html():
    spec = make_spec()
    res = MLResults(spec, make_fit(spec, [np.array([[2.0]])], method="AGQ(25)", n_agq=25))
    assert "nAGQ = 25" in str(res)
    h = res._repr_html_()
    assert h.startswith("<div>") and "Random effects" in h and "Fixed effects" in h


def test_correlated_random_effects_table_has_corr():
    spec = make_spec(slope=True)
    res = MLResults(spec, make_fit(spec, [np.array([[1.0, 0.0], [0.3, 0.4]])]))
    text = str(res)
    assert "Corr" in text and "0.60" in text  # corr = 0.3 / sqrt(0.09 + 0.16)


def test_nonconvergence_note():
    spec = make_spec()
    res = MLResults(spec, make_fit(spec, [np.array([[1.0]])],
                                   optimizer={"converged": False, "messages": ["max evals reached"]}))
    assert "did not converge: max evals reached" in str(res)
    assert not res.converged


def test_mismatched_fit_is_valueerror():
    spec = make_spec()
    fit = make_fit(spec, [np.array([[1.0]])])
    bad = MLFit(**{**fit.__dict__, "beta": np.zeros(3)})
    with pytest.raises(ValueError, match="fixed effects"):
        MLResults(spec, bad)
    with pytest.raises(ValueError, match="MLFit"):
        MLResults(spec, {"beta": 1})


def test_conf_int(glmm):
    ci = glmm.conf_int(0.95)
    assert list(ci.columns) == ["2.5 %", "97.5 %"]
    assert ci.loc["x", "97.5 %"] == pytest.approx(0.25 + 1.959963984540054 * 0.05)
    with pytest.raises(ValueError, match="level"):
        glmm.conf_int(95)


def test_predict_uses_point_params(glmm):
    eta = glmm.predict(kind="link")
    spec = glmm.spec
    b = glmm.fit.b[0][spec.terms[0].codes, 0]
    np.testing.assert_allclose(eta, spec.X @ glmm.fit.beta + b)


def test_pvalue_formatting():
    assert format_pvalue(1e-20) == "<2e-16"
    assert format_pvalue(0.000188) == "0.000188"
    assert format_pvalue(2.21e-14) == "2.21e-14"
    assert signif_stars(0.0441) == "*" and signif_stars(0.2) == "" and signif_stars(1e-5) == "***"
    assert signif_stars(0.07) == "." and signif_stars(0.005) == "**"


def test_summary_has_lmer_scaled_residuals_and_fixef_correlation():
    """summary(lmer(Reaction ~ Days + (Days | Subject), sleepstudy)) in lme4 1.1.31 prints
    Scaled residuals -3.9536 -0.4634 0.0231 0.4634 5.1793 and Correlation of Fixed Effects
    Days -0.138."""
    import bayes_glmm as bg
    r = bg.GLMM("Reaction ~ Days + (Days | Subject)", bg.datasets.load("sleepstudy")).fit_ml()
    q = np.quantile(r.residuals(), [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(q, [-3.9536, -0.4634, 0.0231, 0.4634, 5.1793], atol=2e-4)
    text = str(r)
    assert "Scaled residuals:" in text and "-3.9536" in text and "5.1793" in text
    assert "Correlation of Fixed Effects:" in text and "-0.138" in text and "   Data: 180 rows" in text
    np.testing.assert_allclose(r.residuals(kind="response"),
                               r.spec.y - r.predict(kind="mean"), atol=1e-10)
    with pytest.raises(ValueError, match="pearson"):
        r.residuals(kind="deviance")

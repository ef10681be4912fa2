"""bayes_glmm.ml.inference.lrt on hand-made fits: nesting detection, mixture p-values, refusals."""
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayes_glmm.covariance import chol_to_theta
from bayes_glmm.families import get_family
from bayes_glmm.ml.inference.lrt import lrt, mixture_pvalue
from bayes_glmm.ml.results import MLResults
from bayes_glmm.ml.types import MLFit
from bayes_glmm.spec.model_spec import ModelSpec, RandomTerm

N = 60
RNG = np.random.default_rng(3)
X_COL = RNG.normal(size=N)
Z_COL = RNG.normal(size=N)
Y01 = RNG.integers(0, 2, N).astype(float)
G = np.arange(N) % 6
H = np.arange(N) % 5


def term(name, group, coefs, correlated=True):
    codes = G if group == "g" else H
    cols = {"(Intercept)": np.ones(N), "x": X_COL}
    levels = pd.Index([f"{group}{i}" for i in range(codes.max() + 1)])
    return RandomTerm(name, group, tuple(coefs), correlated and len(coefs) > 1, codes, levels,
                      np.column_stack([cols[c] for c in coefs]))


def fit(fixed=("(Intercept)", "x"), terms=(), loglik=-30.0, family="bernoulli", reml=False,
        method=None, y=Y01, lambdas=None):
    cols = {"(Intercept)": np.ones(N), "x": X_COL, "z": Z_COL}
    fam = get_family(family)
    spec = ModelSpec(formula=f"y ~ {' + '.join(fixed)} [{len(terms)} terms]", family=fam, response_name="y",
                     y=y, trials=None, X=np.column_stack([cols[f] for f in fixed]), fixed_names=fixed,
                     offset=np.zeros(N), weights=np.ones(N), terms=tuple(terms), row_index=pd.RangeIndex(N))
    lambdas = lambdas or [np.eye(t.q) for t in terms]
    theta = np.concatenate([chol_to_theta(L, t.correlated) for L, t in zip(lambdas, terms)]) if terms \
        else np.zeros(0)
    sigma = 1.0 if fam.has_sigma else None
    method = method or (("REML" if reml else "ML") if fam.has_sigma else "Laplace")
    f = MLFit(beta=np.zeros(len(fixed)), theta=theta, sigma=sigma, lambdas=lambdas,
              b=[np.zeros((t.n_levels, t.q)) for t in terms], b_sd=[np.ones((t.n_levels, t.q)) for t in terms],
              vcov_beta=np.eye(len(fixed)), loglik=loglik,
              n_params=len(fixed) + len(theta) + (sigma is not None), method=method, reml=reml)
    return MLResults(spec, f)


def test_mixture_pvalue_hand_computations():
    # 2.71 under 0.5 chi2_0 + 0.5 chi2_1: half the chi2_1 tail = 0.05
    assert mixture_pvalue(2.7055, (0, 1), (0.5, 0.5)) == pytest.approx(0.05, abs=1e-4)
    assert mixture_pvalue(5.0, (1, 2), (0.5, 0.5)) == pytest.approx(
        0.5 * stats.chi2.sf(5.0, 1) + 0.5 * stats.chi2.sf(5.0, 2))
    assert mixture_pvalue(0.0, (0, 1), (0.5, 0.5)) == 1.0
    with pytest.raises(ValueError, match="weights"):
        mixture_pvalue(1.0, (0, 1), (0.5, 0.6))


def test_dropping_random_intercept_uses_chi2_0_1_mixture():
    m0 = fit(terms=(), loglik=-31.355)
    m1 = fit(terms=(term("g", "g", ["(Intercept)"]),), loglik=-30.0)
    r = lrt(m0, m1)
    assert r.df == 1 and r.chisq == pytest.approx(2.71)
    assert r.reference == "0.5 chi2_0 + 0.5 chi2_1"
    assert r.p_value == pytest.approx(0.5 * stats.chi2.sf(2.71, 1))
    assert r.p_value == pytest.approx(0.05, abs=2e-4)
    assert r.p_naive == pytest.approx(2 * r.p_value)
    assert r.differs == {"fixed": [], "variances": ["g: (Intercept)"], "covariances": []}
    assert "Self & Liang" in r.note and "0.5 chi2_0" in repr(r)


def test_order_of_arguments_does_not_matter():
    m0 = fit(terms=(), loglik=-32.0)
    m1 = fit(terms=(term("g", "g", ["(Intercept)"]),), loglik=-30.0)
    assert lrt(m1, m0).p_value == pytest.approx(lrt(m0, m1).p_value)


def test_dropping_correlated_slope_uses_chi2_1_2_mixture():
    m0 = fit(terms=(term("g", "g", ["(Intercept)"]),), loglik=-30.0)
    m1 = fit(terms=(term("g", "g", ["(Intercept)", "x"]),), loglik=-27.0)
    r = lrt(m0, m1)
    assert r.df == 2 and r.chisq == pytest.approx(6.0)
    assert r.reference == "0.5 chi2_1 + 0.5 chi2_2"
    assert r.p_value == pytest.approx(0.5 * stats.chi2.sf(6.0, 1) + 0.5 * stats.chi2.sf(6.0, 2))
    assert r.differs["variances"] == ["g: x"] and len(r.differs["covariances"]) == 1


def test_dropping_uncorrelated_slope_uses_chi2_0_1_mixture():
    m0 = fit(terms=(term("g", "g", ["(Intercept)"]),), loglik=-30.0)
    m1 = fit(terms=(term("g", "g", ["(Intercept)"]), term("g.1", "g", ["x"])), loglik=-29.0)
    r = lrt(m0, m1)
    assert r.df == 1 and r.reference == "0.5 chi2_0 + 0.5 chi2_1"


def test_adding_only_a_covariance_is_naive():
    m0 = fit(terms=(term("g", "g", ["(Intercept)"]), term("g.1", "g", ["x"])), loglik=-30.0)
    m1 = fit(terms=(term("g", "g", ["(Intercept)", "x"]),), loglik=-29.0)
    r = lrt(m0, m1)
    assert r.df == 1 and r.reference == "chi2_1"
    assert r.p_value == pytest.approx(stats.chi2.sf(2.0, 1))


def test_fixed_effect_difference_is_naive_chi2():
    m0 = fit(fixed=("(Intercept)",), terms=(term("g", "g", ["(Intercept)"]),), loglik=-31.0)
    m1 = fit(terms=(term("g", "g", ["(Intercept)"]),), loglik=-29.0)
    r = lrt(m0, m1)
    assert r.reference == "chi2_1" and r.differs["fixed"] == ["x"]
    assert r.p_value == pytest.approx(stats.chi2.sf(4.0, 1))


def test_fixed_plus_variance_shifts_the_mixture():
    m0 = fit(fixed=("(Intercept)",), terms=(), loglik=-33.0)
    m1 = fit(terms=(term("g", "g", ["(Intercept)"]),), loglik=-29.0)
    r = lrt(m0, m1)
    assert r.df == 2 and r.reference == "0.5 chi2_1 + 0.5 chi2_2"


def test_two_variances_at_once_is_conservative_naive():
    m0 = fit(terms=(), loglik=-33.0)
    m1 = fit(terms=(term("g", "g", ["(Intercept)"]), term("h", "h", ["(Intercept)"])), loglik=-29.0)
    r = lrt(m0, m1)
    assert r.df == 2 and "conservative" in r.reference
    assert r.p_value == pytest.approx(stats.chi2.sf(8.0, 2))


def test_table_columns():
    r = lrt(fit(terms=(), loglik=-32.0), fit(terms=(term("g", "g", ["(Intercept)"]),), loglik=-30.0))
    assert list(r.table.columns) == ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)"]
    assert r.table["npar"].tolist() == [2, 3]


def test_reml_with_different_fixed_effects_refused():
    t = (term("g", "g", ["(Intercept)"]),)
    m0 = fit(fixed=("(Intercept)",), terms=t, family="gaussian", reml=True, y=X_COL)
    m1 = fit(terms=t, family="gaussian", reml=True, y=X_COL, loglik=-20)
    with pytest.raises(ValueError, match="reml=False"):
        lrt(m0, m1, refit=False)


def test_reml_with_same_fixed_effects_allowed():
    m0 = fit(terms=(term("g", "g", ["(Intercept)"]),), family="gaussian", reml=True, y=X_COL, loglik=-30)
    m1 = fit(terms=(term("g", "g", ["(Intercept)", "x"]),), family="gaussian", reml=True, y=X_COL,
             loglik=-28)
    r = lrt(m0, m1, refit=False)
    assert r.reference == "0.5 chi2_1 + 0.5 chi2_2"
    assert list(r.table.columns[3:5]) == ["REML logLik", "REML criterion"]
    np.testing.assert_allclose(r.table["REML logLik"], [-30, -28])
    np.testing.assert_allclose(r.table["REML criterion"], [60, 56])


def test_reml_vs_ml_refused():
    t = (term("g", "g", ["(Intercept)"]),)
    with pytest.raises(ValueError, match="REML and the other by ML"):
        lrt(fit(terms=t, family="gaussian", reml=True, y=X_COL),
            fit(terms=t + (term("h", "h", ["(Intercept)"]),), family="gaussian", y=X_COL), refit=False)


def test_different_response_refused():
    t = (term("g", "g", ["(Intercept)"]),)
    with pytest.raises(ValueError, match="different responses"):
        lrt(fit(terms=()), fit(terms=t, y=1.0 - Y01))


def test_non_nested_refused():
    with pytest.raises(ValueError, match="not nested"):
        lrt(fit(fixed=("(Intercept)", "z"), terms=(term("g", "g", ["(Intercept)"]),)),
            fit(fixed=("(Intercept)", "x"), terms=(term("g", "g", ["(Intercept)"]), term("h", "h", ["(Intercept)"]))))
    with pytest.raises(ValueError, match="not nested"):
        lrt(fit(terms=(term("h", "h", ["(Intercept)"]),)),
            fit(terms=(term("g", "g", ["(Intercept)", "x"]),)))


def test_different_methods_refused():
    with pytest.raises(ValueError, match="same n_agq"):
        lrt(fit(terms=(), method="Laplace"), fit(terms=(term("g", "g", ["(Intercept)"]),), method="AGQ(10)"))


def test_non_results_refused():
    with pytest.raises(ValueError, match="m0 must be an ML fit"):
        lrt("model", fit())


def test_lower_loglik_in_larger_model_warns_and_clips():
    m0 = fit(terms=(), loglik=-30.0)
    m1 = fit(terms=(term("g", "g", ["(Intercept)"]),), loglik=-30.5)
    with pytest.warns(UserWarning, match="lower log-likelihood"):
        r = lrt(m0, m1)
    assert r.chisq == 0.0 and r.p_value == 1.0


def test_tiny_negative_statistic_is_silent():
    m0 = fit(terms=(), loglik=-30.0)
    m1 = fit(terms=(term("g", "g", ["(Intercept)"]),), loglik=-30.0 - 1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lrt(m0, m1).p_value == 1.0


def test_top_level_lrt_export():
    import bayes_glmm as bg
    assert bg.lrt is lrt


def test_boundary_statistic_rounding_does_not_halve_the_p_value():
    # a variance estimated at 0 leaves both optima equal up to optimizer rounding: the
    # statistic is 0 and the chi2_0 point mass gives p = 1, not 0.5
    m0 = fit(terms=(), loglik=-1000.0)
    m1 = fit(terms=(term("g", "g", ["(Intercept)"]),), loglik=-1000.0 + 4.5e-13)
    r = lrt(m0, m1)
    assert r.chisq == 0.0 and r.p_value == 1.0

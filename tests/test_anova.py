"""Per-term F tests (lmerTest::anova) and model comparison (lme4::anova) against R.

Reference values: tests/reference/make_reference_lmertest.R (no R needed here).
"""
import warnings

import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm.ml.inference.anova import contrasts_type1, contrasts_type3, fixed_terms

from test_ddf import FITS, REF, assert_p_close, fit_id, fit_of, ref_data

ANOVA_CASES = [(e, key) for e in FITS for key in e["anova"]]


@pytest.mark.parametrize("entry,key", ANOVA_CASES, ids=[f"{fit_id(e)}-{k}" for e, k in ANOVA_CASES])
def test_anova_matches_lmertest(entry, key):
    type_, ddf = key.split("_")
    tab = fit_of(entry).anova(ddf=ddf, type=int(type_))
    ref = entry["anova"][key]
    assert list(tab.index) == ref["terms"]
    assert list(tab.columns) == ["sum_sq", "mean_sq", "num_df", "den_df", "F", "p"]
    np.testing.assert_array_equal(tab["num_df"], ref["num_df"])
    np.testing.assert_allclose(tab["den_df"], ref["den_df"], rtol=0.01)
    np.testing.assert_allclose(tab["F"], ref["F"], rtol=1e-4)
    np.testing.assert_allclose(tab["mean_sq"], ref["mean_sq"], rtol=1e-4)
    np.testing.assert_allclose(tab["sum_sq"], ref["sum_sq"], rtol=1e-4)
    assert_p_close(tab["p"], ref["p"])


def test_type3_differs_from_type1_when_unbalanced_and_is_marginal():
    entry = next(e for e in FITS if e["name"] == "chick_slope" and e["reml"])
    res = fit_of(entry)
    t1, t3 = res.anova(type=1), res.anova(type=3)
    assert not np.allclose(t1.loc["Time", "F"], t3.loc["Time", "F"])
    # the highest-order term is tested the same way by both
    assert t1.loc["Time:Diet", "F"] == pytest.approx(t3.loc["Time:Diet", "F"], rel=1e-8)


def test_type3_main_effect_is_averaged_over_the_interacting_factor():
    # y ~ x * F with F in 3 levels: type III for x tests the mean slope, b_x + (b_x:Fb + b_x:Fc)/3
    entry = next(e for e in FITS if e["name"] == "chick_slope" and e["reml"])
    spec = fit_of(entry).spec
    L = contrasts_type3(spec)["Time"]
    names = list(spec.fixed_names)
    assert L.shape == (1, len(names))
    row = dict(zip(names, L[0]))
    assert row["Time"] == pytest.approx(1.0)
    for lev in ("2", "3", "4"):
        assert row[f"Time:Diet{lev}"] == pytest.approx(0.25)
    assert row["(Intercept)"] == 0 and row["Diet2"] == 0


def test_type1_rows_are_the_doolittle_factor():
    # X'X = U' D U with U unit upper triangular; the term's rows of U are its hypotheses
    entry = next(e for e in FITS if e["name"] == "oats_unbal" and e["reml"])
    spec = fit_of(entry).spec
    terms = fixed_terms(spec)
    Ls = contrasts_type1(spec.X, terms)
    rows = np.vstack([Ls[t.label] for t in terms])
    cols = [c for t in terms for c in t.columns]
    assert cols == list(range(1, spec.p))  # every column but the intercept, in order
    U = np.vstack([np.eye(1, spec.p), rows])
    U[0] = np.linalg.cholesky(spec.X.T @ spec.X)[:, 0] / np.linalg.cholesky(spec.X.T @ spec.X)[0, 0]
    np.testing.assert_allclose(np.diag(U), 1.0)
    np.testing.assert_allclose(np.tril(U, -1), 0.0, atol=1e-12)
    Ui = np.linalg.inv(U)
    D = Ui.T @ (spec.X.T @ spec.X) @ Ui
    np.testing.assert_allclose(D - np.diag(np.diag(D)), 0.0, atol=1e-8 * np.abs(D).max())


def test_term_labels_follow_the_formula():
    toenail = bg.datasets.load("toenail")
    spec = bg.GLMM("Response ~ Month * Treatment + (1 | ID)", toenail, family="bernoulli").spec
    labels = [t.label for t in fixed_terms(spec)]
    assert labels == ["Month", "Treatment", "Month:Treatment"]
    spec2 = bg.GLMM("Response ~ Treatment * Month + (1 | ID)", toenail, family="bernoulli").spec
    assert [t.label for t in fixed_terms(spec2)] == ["Treatment", "Month", "Treatment:Month"]


def test_anova_argument_errors():
    entry = next(e for e in FITS if e["name"] == "sleep_slope" and e["reml"])
    res = fit_of(entry)
    with pytest.raises(ValueError, match="type=3"):
        res.anova(type=2)
    with pytest.raises(ValueError, match="ddf"):
        res.anova(ddf="containment")
    with pytest.raises(ValueError, match="REML"):
        fit_of(entry, reml=False).anova(ddf="kenward-roger")


def test_intercept_only_model_has_an_empty_table():
    entry = next(e for e in FITS if e["name"] == "penicillin" and e["reml"])
    tab = fit_of(entry).anova()
    assert tab.empty and list(tab.columns) == ["sum_sq", "mean_sq", "num_df", "den_df", "F", "p"]


def test_glmm_anova_is_a_wald_test():
    d = bg.datasets.load("cbpp")
    res = bg.GLMM("cbind(incidence, size - incidence) ~ period + (1 | herd)", d, family="binomial").fit_ml()
    tab = res.anova()
    b, V = res.fixef.to_numpy()[1:], res.vcov.to_numpy()[1:, 1:]
    wald = float(b @ np.linalg.solve(V, b))
    assert tab.loc["period", "num_df"] == 3 and np.isinf(tab.loc["period", "den_df"])
    assert tab.loc["period", "F"] == pytest.approx(wald / 3, rel=1e-10)


# ---------------------------------------------------------------------- bg.anova(m1, m2, ...)
@pytest.mark.parametrize("cmp", REF["comparisons"], ids=lambda c: f"{c['dataset']}-{len(c['formulas'])}")
def test_model_comparison_matches_lme4(cmp):
    entry = {"dataset": cmp["dataset"], "reml": cmp["reml"]}
    fits = [fit_of(entry, formula=f) for f in cmp["formulas"]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tab = bg.anova(*fits)
    msgs = [str(w.message) for w in caught]
    if cmp["message"]:
        assert any("refitting model(s) with ML (instead of REML)" in m for m in msgs)
    else:
        assert not any("refitting" in m for m in msgs)
    assert list(tab.index) == cmp["rownames"]  # sorted by npar, named in argument order
    assert list(tab.columns) == ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "p"]
    for col in tab.columns:
        ref = np.array([np.nan if v is None else v for v in cmp[col]], dtype=float)
        np.testing.assert_allclose(tab[col].to_numpy(dtype=float), ref, rtol=1e-6, atol=1e-6)
    for f in fits:  # the caller's REML fits are left alone
        assert f.reml == cmp["reml"]


def test_model_comparison_names_and_single_fit():
    entry = next(e for e in FITS if e["name"] == "sleep_slope" and not e["reml"])
    m1 = fit_of(entry)
    m0 = fit_of(entry, formula="Reaction ~ Days + (1 | Subject)")
    tab = bg.anova(m1, m0, names=["slope", "intercept"])
    assert list(tab.index) == ["intercept", "slope"]
    pd.testing.assert_frame_equal(bg.anova(m1), m1.anova())
    lrt = bg.lrt(m0, m1)
    assert tab["Chisq"].iloc[1] == pytest.approx(lrt.chisq, rel=1e-10)


def test_model_comparison_refuses_different_rows_and_responses():
    d = ref_data("sleepstudy")
    m1 = bg.GLMM("Reaction ~ Days + (Days | Subject)", d).fit_ml(reml=False)
    m_sub = bg.GLMM("Reaction ~ Days + (1 | Subject)", d.iloc[:-10]).fit_ml(reml=False)
    with pytest.raises(ValueError, match="different rows"):
        bg.anova(m1, m_sub)
    d2 = d.assign(logR=np.log(d["Reaction"]))
    m_log = bg.GLMM("logR ~ Days + (1 | Subject)", d2).fit_ml(reml=False)
    with pytest.raises(ValueError, match="different responses"):
        bg.anova(m1, m_log)
    with pytest.raises(ValueError, match="argument 2"):
        bg.anova(m1, "not a fit")
    with pytest.raises(ValueError, match="names"):
        bg.anova(m1, m1, names=["a"])


def test_model_comparison_accepts_glmm_fits():
    d = bg.datasets.load("cbpp")
    m1 = bg.GLMM("cbind(incidence, size - incidence) ~ period + (1 | herd)", d, family="binomial").fit_ml()
    m0 = bg.GLMM("cbind(incidence, size - incidence) ~ 1 + (1 | herd)", d, family="binomial").fit_ml()
    tab = bg.anova(m1, m0)
    assert list(tab.index) == ["m2", "m1"]
    assert tab["Df"].iloc[1] == 3
    assert tab["Chisq"].iloc[1] == pytest.approx(2 * (m1.loglik - m0.loglik))


def test_bg_anova_is_the_function_even_after_importing_the_module():
    import importlib
    importlib.import_module("bayes_glmm.ml.inference.anova")
    assert callable(bg.anova) and bg.anova.__module__ == "bayes_glmm.ml.inference.anova"
    assert "anova" in dir(bg)

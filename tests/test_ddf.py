"""Satterthwaite and Kenward-Roger t tests against lmerTest / pbkrtest.

The reference values come from tests/reference/make_reference_lmertest.R (lmerTest's
``summary(m)`` and ``summary(m, ddf = "Kenward-Roger")``); the data are read from the same
JSON, so no R is needed here.
"""
import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayes_glmm as bg
from bayes_glmm.ml.inference import ddf as D

REF = json.loads((pathlib.Path(__file__).parent / "reference" / "lmertest_reference.json").read_text())
FITS = REF["fits"]


def ref_data(name: str) -> pd.DataFrame:
    d = REF["datasets"][name]
    df = pd.DataFrame(d["columns"])
    for col, levels in d["levels"].items():
        df[col] = pd.Categorical(df[col], categories=levels)
    return df


_CACHE = {}


def fit_of(entry, formula=None, reml=None):
    formula = formula or entry["formula"]
    reml = entry["reml"] if reml is None else reml
    key = (entry["dataset"], formula, reml)
    if key not in _CACHE:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _CACHE[key] = bg.GLMM(formula, ref_data(entry["dataset"])).fit_ml(reml=reml)
    return _CACHE[key]


def fit_id(e):
    return f"{e['name']}-{'REML' if e['reml'] else 'ML'}"


def assert_p_close(p, ref):
    p, ref = np.asarray(p, float), np.asarray(ref, float)
    # p-values of huge statistics are ~1e-30: compare them on the log scale
    np.testing.assert_allclose(np.log(p), np.log(ref), atol=0.02)


def test_reference_versions_recorded():
    v = REF["versions"]
    assert {"R", "lme4", "lmerTest", "pbkrtest"} <= set(v)


@pytest.mark.parametrize("entry", FITS, ids=fit_id)
def test_satterthwaite_coef_table_matches_lmertest(entry):
    res = fit_of(entry)
    tab = res.coef_table(ddf="satterthwaite")
    ref = entry["coef"]
    assert list(tab.columns) == ["estimate", "se", "df", "t", "p"]
    assert list(tab.index) == ref["names"]
    np.testing.assert_allclose(tab["df"], ref["df"], rtol=0.01)
    np.testing.assert_allclose(tab["t"], ref["t"], rtol=1e-4)
    np.testing.assert_allclose(tab["se"], ref["se"], rtol=1e-4)
    assert_p_close(tab["p"], ref["p"])
    # p is the t distribution's with those df
    np.testing.assert_allclose(tab["p"], 2 * stats.t.sf(np.abs(tab["t"]), tab["df"]), rtol=1e-12)


@pytest.mark.parametrize("entry", [e for e in FITS if e["reml"]], ids=fit_id)
def test_kenward_roger_coef_table_matches_pbkrtest(entry):
    res = fit_of(entry)
    tab = res.coef_table(ddf="kenward-roger")
    ref = entry["coef_kr"]
    np.testing.assert_allclose(tab["df"], ref["df"], rtol=0.01)
    np.testing.assert_allclose(tab["se"], ref["se"], rtol=1e-4)  # KR-adjusted SE
    np.testing.assert_allclose(tab["t"], ref["t"], rtol=1e-4)
    assert_p_close(tab["p"], ref["p"])


def test_satterthwaite_df_tight_on_balanced_design():
    # a balanced random-intercept-and-slope design: lmerTest gives df ~ J - 1 = 17
    entry = next(e for e in FITS if e["name"] == "sleep_slope" and e["reml"])
    tab = fit_of(entry).coef_table(ddf="Satterthwaite")  # R's spelling works too
    np.testing.assert_allclose(tab["df"], entry["coef"]["df"], rtol=2e-4)


def test_kenward_roger_refused_for_ml_fits_like_lmertest():
    entry = next(e for e in FITS if e["name"] == "sleep_slope" and not e["reml"])
    with pytest.raises(ValueError, match="REML"):
        fit_of(entry).coef_table(ddf="kenward-roger")


def test_ddf_none_keeps_the_lme4_table():
    entry = next(e for e in FITS if e["name"] == "sleep_slope" and e["reml"])
    res = fit_of(entry)
    tab = res.coef_table(ddf=None)
    assert list(tab.columns) == ["Estimate", "Std. Error", "t value"]
    pd.testing.assert_frame_equal(tab, res.coef_table())


def test_unknown_ddf_names_the_argument():
    entry = next(e for e in FITS if e["name"] == "sleep_slope" and e["reml"])
    with pytest.raises(ValueError, match="ddf='satterthwaite'"):
        fit_of(entry).coef_table(ddf="bogus")


def test_glmm_gets_z_tests_with_infinite_df():
    d = bg.datasets.load("cbpp")
    res = bg.GLMM("cbind(incidence, size - incidence) ~ period + (1 | herd)", d, family="binomial").fit_ml()
    for method in ("satterthwaite", "kenward-roger"):
        tab = res.coef_table(ddf=method)
        assert list(tab.columns) == ["estimate", "se", "df", "t", "p"]
        assert np.all(np.isinf(tab["df"]))
        base = res.coef_table()
        np.testing.assert_allclose(tab["t"], base["z value"])
        np.testing.assert_allclose(tab["p"], base["Pr(>|z|)"])


def test_satterthwaite_df_does_not_depend_on_the_fd_step():
    # the df must be a property of the model, not of the differencing (rounding-noise guard)
    entry = next(e for e in FITS if e["name"] == "chick_slope" and e["reml"])
    res = fit_of(entry)
    spec, fit = res.spec, res.fit
    base = D.satterthwaite_info(spec, fit.theta, fit.sigma, True)
    orig = D._steps
    try:
        D._steps = lambda x, nt: orig(x, nt) * 10.0
        wide = D.satterthwaite_info(spec, fit.theta, fit.sigma, True)
    finally:
        D._steps = orig
    p = spec.p
    a = [D.satterthwaite_df(base, np.eye(p)[j]) for j in range(p)]
    b = [D.satterthwaite_df(wide, np.eye(p)[j]) for j in range(p)]
    np.testing.assert_allclose(a, b, rtol=1e-4)


def test_kr_vcov_is_larger_than_the_plain_one():
    entry = next(e for e in FITS if e["name"] == "oats_unbal" and e["reml"])
    res = fit_of(entry)
    info = D.kr_info(res.spec, res.fit.lambdas, res.fit.sigma, True)
    np.testing.assert_allclose(info.Phi, res.fit.vcov_beta, rtol=1e-6, atol=1e-10)
    assert np.all(np.linalg.eigvalsh(info.PhiA - info.Phi) > -1e-10)

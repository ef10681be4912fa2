"""ML answers that must be right or say why not (issue 16, item 5 and the Laplace warning).

* Zero-inflated NB2 on glmmTMB's Salamanders data: the optimizer must not stop on the
  plateau of a zero-inflation coefficient heading to -infinity when an interior optimum is
  better, and a coefficient that *is* at the boundary gets NA inference (SE, z, p), as in
  glmmTMB.  Reference: tests/reference/zi_reference.json from
  ``Rscript tests/reference/make_reference_zi.R`` (glmmTMB 1.1.5); data in
  tests/reference/salamanders.csv.  Each model is fitted with two codings of the factors
  (levels sorted, and R's order), which have the same maximum likelihood; glmmTMB itself
  stops on the plateau in one coding of two models, so the target is the better of its two
  optima.
* Counts and predictors of any magnitude fit (internal scaling, results on the user's scale).
* Laplace on binary data with tiny groups warns and names ``n_agq``.
"""
import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg

REF_DIR = pathlib.Path(__file__).parent / "reference"
ZI_REF = json.loads((REF_DIR / "zi_reference.json").read_text())
ZI_FITS = ZI_REF["fits"]
#: log-likelihood agreement with glmmTMB's best optimum (both codings)
LL_ATOL = 1e-5


def salamanders(coding: str) -> pd.DataFrame:
    d = pd.read_csv(REF_DIR / "salamanders.csv")
    if coding == "R":
        for col, levels in ZI_REF["r_levels"].items():
            d[col] = pd.Categorical(d[col], categories=levels)
    return d


def best_tmb_loglik(ref: dict) -> float:
    """glmmTMB's better optimum over the two codings of the same model."""
    same = [r for r in ZI_FITS.values() if r["formula"] == ref["formula"] and r["zi"] == ref["zi"]]
    return max(r["objective_loglik"] for r in same)


def fit_zi(key: str):
    ref = ZI_FITS[key]
    model = bg.GLMM(ref["formula"], salamanders(ref["levels"]), family="negbinomial", zi=ref["zi"])
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = model.fit_ml()
    return res, [str(w.message) for w in rec]


@pytest.mark.parametrize("key", sorted(ZI_FITS))
def test_zi_reaches_the_best_optimum(key):
    ref = ZI_FITS[key]
    res, msgs = fit_zi(key)
    target = best_tmb_loglik(ref)
    assert res.loglik == pytest.approx(target, abs=LL_ATOL), (key, res.loglik, target, msgs)
    assert not any("did not converge" in m for m in msgs), msgs
    assert res.dispersion.iloc[0] > 0
    interior = ref["loglik"] is not None and abs(ref["objective_loglik"] - target) < LL_ATOL and all(
        se is not None and se < 100 for se in ref["fixef_zi_se"])
    if interior:
        # an interior optimum: every estimate and SE agrees with glmmTMB's
        np.testing.assert_allclose(res.fixef.to_numpy(), ref["fixef"], atol=1e-3)
        np.testing.assert_allclose(res.fixef_zi.to_numpy(), ref["fixef_zi"], atol=2e-3)
        np.testing.assert_allclose(res.se_zi.to_numpy(), ref["fixef_zi_se"], rtol=2e-2)
        np.testing.assert_allclose(res.se.to_numpy(), ref["fixef_se"], rtol=2e-2)
        assert res.dispersion.iloc[0] == pytest.approx(ref["theta"], rel=1e-3)
        assert not np.any(np.isnan(res.se_zi.to_numpy()))


def test_zi_mined_r_order_was_the_reported_failure():
    # issue 16: zi coefficient minedno ran to -51 and logLik ended 0.047 below glmmTMB's
    res, msgs = fit_zi("zinb2_spp_mined__zi_mined__R")
    ref = ZI_FITS["zinb2_spp_mined__zi_mined__R"]
    assert res.fixef_zi["minedno"] == pytest.approx(ref["fixef_zi"][1], abs=2e-3)
    assert res.se_zi["minedno"] == pytest.approx(ref["fixef_zi_se"][1], rel=2e-2)
    assert not any("boundary" in m for m in msgs)


def test_zi_boundary_coefficient_has_na_inference():
    # zi = ~ spp, sorted levels: sppGP heads to -infinity (glmmTMB: -15 with SE 3054)
    res, msgs = fit_zi("zinb2_spp_mined__zi_spp__sorted")
    ref = ZI_FITS["zinb2_spp_mined__zi_spp__sorted"]
    tab = res.coef_table_zi()
    assert res.fixef_zi["sppGP"] < -10
    assert np.isnan(tab.loc["sppGP", "Std. Error"]) and np.isnan(tab.loc["sppGP", "z value"])
    assert np.isnan(tab.loc["sppGP", "Pr(>|z|)"])
    # the other coefficients are interior and keep glmmTMB's estimates and SEs
    others = [n for n in ref["fixef_zi_names"] if n != "sppGP"]
    est = dict(zip(ref["fixef_zi_names"], ref["fixef_zi"]))
    se = dict(zip(ref["fixef_zi_names"], ref["fixef_zi_se"]))
    for n in others:
        assert res.fixef_zi[n] == pytest.approx(est[n], abs=5e-3), n
        assert res.se_zi[n] == pytest.approx(se[n], rel=5e-2), n
    assert any("sppGP" in m and "boundary" in m for m in msgs)
    assert any("sppGP" in w and "boundary" in w for w in res.optinfo["warnings"])
    text = str(res)
    zi_block = text.split("Zero-inflation model:")[1].splitlines()
    line = next(ln for ln in zi_block if ln.startswith("sppGP"))
    assert "NA" in line and "***" not in line and "inf" not in line
    assert "boundary" in text


def test_compare_draws_no_zero_width_interval():
    res, _ = fit_zi("zinb2_spp_mined__zi_spp__sorted")
    tab = bg.compare(res, names=["Laplace"]).long().set_index("param")
    row = tab.loc["zi_sppGP"]
    assert np.isnan(row["se"]) and np.isnan(row["lower"]) and np.isnan(row["upper"])
    assert "boundary" in row["interval"]
    ok = tab.loc["zi_sppPR"]
    assert ok["lower"] < ok["estimate"] < ok["upper"]

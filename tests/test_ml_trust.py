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


# ---------------------------------------------------------------------------------------
# Counts and predictors of any magnitude

def _poisson_data(log_mu: float, xscale=(1.0, 1.0), n: int = 400, n_groups: int = 40, seed: int = 1):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), n // n_groups)
    x1, x2 = rng.standard_normal(n), rng.standard_normal(n)
    u = 0.5 * rng.standard_normal(n_groups)
    y = rng.poisson(np.exp(log_mu + 0.3 * x1 - 0.2 * x2 + u[g]))
    return pd.DataFrame({"y": y.astype(float), "x1": x1 * xscale[0], "x2": x2 * xscale[1],
                         "g": [f"g{k:02d}" for k in g]})


def _fit_quiet(formula, data, **kw):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = bg.GLMM(formula, data, family=kw.pop("family", "poisson")).fit_ml(**kw)
    return res, [str(w.message) for w in rec]


@pytest.mark.parametrize("log_mu", [np.log(1e7), np.log(1e12)])
def test_huge_poisson_counts_converge_to_the_optimum(log_mu):
    d = _poisson_data(log_mu)
    res, msgs = _fit_quiet("y ~ x1 + x2 + (1 | g)", d)
    assert res.converged and not msgs, msgs
    se = res.se.to_numpy()
    assert np.all(np.isfinite(se)) and np.all(se > 0)
    # the slopes are known to 6e-5 (1e7) and 2e-7 (1e12) relative: the truth within 5 SEs
    assert abs(res.fixef["x1"] - 0.3) < 5 * res.se["x1"] and abs(res.fixef["x2"] + 0.2) < 5 * res.se["x2"]
    if log_mu > 20:
        np.testing.assert_allclose(res.fixef[["x1", "x2"]].to_numpy(), [0.3, -0.2], rtol=1e-6)
    # at huge counts each group's effect is observed almost exactly, so the ML SD is the
    # realized effects' own ML SD (ddof 0; the intercept absorbs their mean)
    rng = np.random.default_rng(1)
    rng.standard_normal(400), rng.standard_normal(400)
    u = 0.5 * rng.standard_normal(40)
    # (to 0.01 of theta's SE: the convergence test's Newton decrement 1e-4 allows that)
    assert res.varcorr["sdcor"].iloc[0] == pytest.approx(np.std(u), rel=5e-3)
    # a true optimum: restarted from elsewhere, the same estimates within 0.02 SE
    start = {"theta": np.asarray(res.fit.theta) * 1.5, "beta": res.fixef.to_numpy() + [0.05, 1e-6, -1e-6]}
    again, _ = _fit_quiet("y ~ x1 + x2 + (1 | g)", d, start=start)
    assert again.converged
    assert np.all(np.abs(again.fixef.to_numpy() - res.fixef.to_numpy()) < 0.02 * se)
    assert again.loglik == pytest.approx(res.loglik, abs=1e-4)


def test_huge_poisson_counts_by_agq():
    # at 1e12 counts every group's posterior is a spike: AGQ(9) and Laplace agree closely
    d = _poisson_data(np.log(1e12))
    lap, _ = _fit_quiet("y ~ x1 + x2 + (1 | g)", d)
    agq, msgs = _fit_quiet("y ~ x1 + x2 + (1 | g)", d, n_agq=9)
    assert agq.converged and not msgs, msgs
    assert agq.loglik == pytest.approx(lap.loglik, abs=1e-3)
    assert np.all(np.abs(agq.fixef.to_numpy() - lap.fixef.to_numpy()) < 0.05 * lap.se.to_numpy())


@pytest.mark.parametrize("family", ["poisson", "bernoulli", "negbinomial"])
def test_predictors_of_extreme_scale_give_the_rescaled_fit(family):
    # one predictor in units of 1e12 (money), one in 1e-13 (a rate): the same model as
    # unit-scale predictors, so beta_user * scale and SE * scale must equal that fit's
    d1 = _poisson_data(np.log(5.0), n=600, n_groups=60, seed=5)
    if family == "bernoulli":
        d1["y"] = (d1["y"] > 5).astype(float)
    scale = np.array([1.0, 1e12, 1e-13])
    d2 = d1.assign(x1=d1["x1"] * scale[1], x2=d1["x2"] * scale[2])
    r1, m1 = _fit_quiet("y ~ x1 + x2 + (1 | g)", d1, family=family)
    r2, m2 = _fit_quiet("y ~ x1 + x2 + (1 | g)", d2, family=family)
    assert r2.converged and not m2, m2
    np.testing.assert_allclose(r2.fixef.to_numpy() * scale, r1.fixef.to_numpy(), rtol=1e-6)
    # SEs come from finite-difference Hessians taken in different coordinates (unit-scale
    # predictors vs the internally scaled ones): they agree to the stencil's O(delta^2) error
    np.testing.assert_allclose(r2.se.to_numpy() * scale, r1.se.to_numpy(), rtol=2e-5)
    V1, V2 = r1.vcov.to_numpy(), r2.vcov.to_numpy() * np.outer(scale, scale)
    np.testing.assert_allclose(V2, V1, rtol=5e-5, atol=2e-5 * np.max(np.abs(V1)))
    assert r2.loglik == pytest.approx(r1.loglik, abs=1e-6)
    assert r2.varcorr["sdcor"].iloc[0] == pytest.approx(r1.varcorr["sdcor"].iloc[0], rel=1e-6)


def test_scaling_map_is_exact():
    from bayes_glmm.spec.scaling import (design_scaling, scale_coef, scale_design, unscale_coef, unscale_cov,
                                    unscale_draws)

    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(50), 1e12 + 1e11 * rng.standard_normal(50), 1e-13 * rng.standard_normal(50),
                         rng.integers(0, 2, 50)])
    for center in (False, True):
        sc = design_scaling(X, center=center)
        Xs = scale_design(X, sc)
        assert np.allclose(Xs[:, 1:].std(0), 1.0)
        b = rng.standard_normal(4)
        np.testing.assert_allclose(X @ unscale_coef(b, sc), Xs @ b, rtol=1e-9)
        np.testing.assert_allclose(scale_coef(unscale_coef(b, sc), sc), b, rtol=1e-12, atol=1e-12)
        A = rng.standard_normal((4, 4))
        V = A @ A.T
        np.testing.assert_allclose(unscale_cov(V, sc), sc.M @ V @ sc.M.T)
        draws = rng.standard_normal((7, 4))
        np.testing.assert_allclose(unscale_draws(draws, sc), draws @ sc.M.T)
    # a tiny SD is a predictor to scale, not a constant: only a zero range is constant
    assert design_scaling(np.column_stack([np.ones(5), 1e-14 * np.arange(5)])).scale[1] < 1e-13


# ---------------------------------------------------------------------------------------
# Laplace on binary data with tiny groups

def _binary_pairs(n_groups: int, size: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), size)
    x = rng.standard_normal(g.size)
    eta = -0.5 + 0.5 * x + rng.standard_normal(n_groups)[g]
    return pd.DataFrame({"y": (rng.random(g.size) < 1 / (1 + np.exp(-eta))).astype(int), "x": x, "g": g})


def test_laplace_on_tiny_binary_groups_warns_and_names_n_agq():
    d = _binary_pairs(1500, 2)
    model = bg.GLMM("y ~ x + (1 | g)", d, family="bernoulli")
    with pytest.warns(UserWarning, match=r"n_agq=9.*scalar random effect") as rec:
        lap = model.fit_ml()
    msg = next(str(w.message) for w in rec if "n_agq=9" in str(w.message))
    assert "median 2 rows per group of 'g'" in msg
    assert any("n_agq=9" in w for w in lap.optinfo["warnings"])
    # the remedy it names fits without the warning and moves the SD up, as simulated
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        agq = model.fit_ml(n_agq=9)
    assert agq.varcorr["sdcor"].iloc[0] > lap.varcorr["sdcor"].iloc[0] * 1.1


def test_no_tiny_group_warning_above_the_threshold():
    from bayes_glmm.ml.laplace import TINY_GROUP_TRIALS

    def n_agq_warnings(formula, data, family):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            bg.GLMM(formula, data, family=family).fit_ml()
        return [str(w.message) for w in rec if "n_agq" in str(w.message)]

    assert not n_agq_warnings("y ~ x + (1 | g)", _binary_pairs(300, TINY_GROUP_TRIALS + 2), "bernoulli")
    # binomial rows: the trials per group count, not the rows (one row of 10 trials each)
    rng = np.random.default_rng(2)
    x = rng.standard_normal(300)
    p = 1 / (1 + np.exp(-(0.3 * x + rng.standard_normal(300))))
    agg = pd.DataFrame({"k": rng.binomial(10, p), "n": 10, "x": x, "g": np.arange(300)})
    assert not n_agq_warnings("cbind(k, n - k) ~ x + (1 | g)", agg, "binomial")
    assert n_agq_warnings("cbind(k, n - k) ~ x + (1 | g)", agg.assign(n=3, k=np.minimum(agg["k"], 3)), "binomial")

"""fit.emmeans / fit.contrasts against R's emmeans 1.8.4 (tests/reference/make_reference_emmeans.R).

The binomial GLMM is compared at lme4's own estimates and vcov (injected into the fitted
results) so that the comparison is of the emmeans computation, not of two optimizers; our own
fit is compared separately, within 0.01 SE.  The split-plot LMM uses our REML fit directly.
"""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm.bayes.results import BayesResults
from bayes_glmm.postfit.emmeans import contrasts, emmeans

from _fake_fits import FakePosterior

REF = json.loads((Path(__file__).parent / "reference" / "emmeans_reference.json").read_text())


def _frame(d):
    return pd.DataFrame({k: (pd.Categorical(v["values"], categories=v["levels"]) if isinstance(v, dict) else v)
                         for k, v in d.items()})


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


@pytest.fixture(scope="module")
def cbpp():
    r = REF["cbpp"]
    res = bg.GLMM(r["formula"], _frame(r["data"]), family="binomial").fit_ml()
    # lme4's estimates and vcov in place of ours (they differ by ~2e-4 relative: the optimizers)
    fit = dataclasses.replace(res.fit, beta=np.array(list(r["fixef"].values())),
                              vcov_beta=np.array(r["vcov"], dtype=float))
    return res, type(res)(res.spec, fit)


@pytest.fixture(scope="module")
def oats():
    r = REF["oats"]
    return bg.GLMM(r["formula"], _frame(r["data"])).fit_ml()


def test_binomial_means_link_and_response(cbpp):
    _, at_r = cbpp
    r = REF["cbpp"]
    link = at_r.emmeans("period")
    assert list(link.index) == r["emm_link"]["period"]
    assert _rel(link["estimate"], r["emm_link"]["emmean"]) < 1e-6
    assert _rel(link["se"], r["emm_link"]["SE"]) < 1e-3
    assert np.isinf(link["df"]).all()
    resp = at_r.emmeans("~ period", type="response")
    assert _rel(resp["estimate"], r["emm_response"]["prob"]) < 1e-6
    assert _rel(resp["se"], r["emm_response"]["SE"]) < 1e-3
    assert _rel(resp["lower"], r["emm_response"]["asymp.LCL"]) < 1e-3
    assert _rel(resp["upper"], r["emm_response"]["asymp.UCL"]) < 1e-3


def test_binomial_contrasts(cbpp):
    _, at_r = cbpp
    r = REF["cbpp"]
    pr = at_r.contrasts("period", type="response")  # Tukey, odds ratios
    assert list(pr.index) == r["pairs_response"]["contrast"]  # "period1 / period2", ...
    assert _rel(pr["estimate"], r["pairs_response"]["odds.ratio"]) < 1e-6
    assert _rel(pr["se"], r["pairs_response"]["SE"]) < 1e-3
    assert np.max(np.abs(pr["p"] - r["pairs_response"]["p.value"])) < 5e-3
    pl = at_r.contrasts("period")
    assert list(pl.index) == r["pairs_link"]["contrast"]
    assert _rel(pl["estimate"], r["pairs_link"]["estimate"]) < 1e-6
    assert _rel(pl["statistic"], r["pairs_link"]["z.ratio"]) < 1e-3
    none = at_r.contrasts("period", adjust="none")
    assert np.max(np.abs(none["p"] - r["pairs_none"]["p.value"]) / np.array(r["pairs_none"]["p.value"])) < 1e-3
    trt = at_r.contrasts("period", method="trt.vs.ctrl", adjust="holm")
    assert list(trt.index) == r["trt_holm"]["contrast"]
    assert _rel(trt["estimate"], r["trt_holm"]["estimate"]) < 1e-6
    assert np.max(np.abs(trt["p"] - r["trt_holm"]["p.value"])) < 5e-5
    custom = at_r.contrasts("period", method={"early_vs_late": [0.5, 0.5, -0.5, -0.5], "p1_vs_p4": [1, 0, 0, -1]},
                            adjust="bonferroni")
    assert list(custom.index) == r["custom_bonf"]["contrast"]
    assert _rel(custom["se"], r["custom_bonf"]["SE"]) < 1e-3
    assert np.max(np.abs(custom["p"] - r["custom_bonf"]["p.value"])) < 5e-5
    with pytest.raises(ValueError, match="pairwise"):
        at_r.contrasts("period", method="trt.vs.ctrl", adjust="tukey")


def test_binomial_own_fit_within_a_hundredth_of_a_se(cbpp):
    own, _ = cbpp
    r = REF["cbpp"]
    link = own.emmeans("period")
    assert np.max(np.abs(link["estimate"] - r["emm_link"]["emmean"]) / link["se"]) < 0.01


def test_covariate_held_at_its_mean():
    r = REF["cbpp_cov"]
    res = bg.GLMM(r["formula"], _frame(REF["cbpp"]["data"]), family="binomial").fit_ml()
    e = res.emmeans("period", type="response")
    # our optimum, not lme4's: estimates within 0.01 SE of emmeans's
    assert np.max(np.abs(e["estimate"] - r["emm_response"]["prob"]) / e["se"]) < 0.01
    # at lme4's estimates and vcov (its vcov differs from ours by ~1%: a fit-level matter)
    fit = dataclasses.replace(res.fit, beta=np.array(list(r["fixef"].values())),
                              vcov_beta=np.array(r["vcov"], dtype=float))
    e = type(res)(res.spec, fit).emmeans("period", type="response")
    assert _rel(e["estimate"], r["emm_response"]["prob"]) < 1e-6
    assert _rel(e["se"], r["emm_response"]["SE"]) < 1e-3
    pr = type(res)(res.spec, fit).contrasts("period", type="response")
    assert _rel(pr["estimate"], r["pairs_response"]["odds.ratio"]) < 1e-6
    assert np.max(np.abs(pr["p"] - r["pairs_response"]["p.value"])) < 5e-3
    assert res.spec.info["grid"]["size"] == ("numeric", pytest.approx(r["size_mean"], rel=1e-12))


@pytest.mark.parametrize("key,ddf", [("kr", "kenward-roger"), ("satt", "satterthwaite")])
def test_split_plot_lmm_means(oats, key, ddf):
    r = REF["oats"]
    for spec, ref in (("N", r[f"emm_N_{key}"]), ("V", r[f"emm_V_{key}"])):
        e = oats.emmeans(spec, ddf=ddf)
        assert list(e.index) == ref[spec]
        assert _rel(e["estimate"], ref["emmean"]) < 1e-6
        assert _rel(e["se"], ref["SE"]) < 1e-3
        assert _rel(e["df"], ref["df"]) < 0.01
        assert _rel(e["lower"], ref["lower.CL"]) < 1e-3
    by = oats.emmeans("N", by="V", ddf=ddf)
    ref = r[f"emm_N_by_V_{key}"]
    assert [tuple(i) for i in by.index] == list(zip(ref["V"], ref["N"]))
    assert _rel(by["estimate"], ref["emmean"]) < 1e-6
    assert _rel(by["df"], ref["df"]) < 0.01


@pytest.mark.parametrize("key,ddf", [("kr", "kenward-roger"), ("satt", "satterthwaite")])
def test_split_plot_lmm_contrasts(oats, key, ddf):
    r = REF["oats"]
    pn = oats.contrasts("N", ddf=ddf)
    ref = r[f"pairs_N_{key}"]
    assert list(pn.index) == ref["contrast"]
    assert _rel(pn["estimate"], ref["estimate"]) < 1e-6
    assert _rel(pn["se"], ref["SE"]) < 1e-3
    assert _rel(pn["df"], ref["df"]) < 0.01
    assert np.max(np.abs(pn["p"] - ref["p.value"])) < 5e-3
    ph = oats.contrasts("V", adjust="holm", ddf=ddf)
    ref = r[f"pairs_V_holm_{key}"]
    assert list(ph.index) == ref["contrast"]
    assert np.max(np.abs(ph["p"] - ref["p.value"])) < 5e-3
    pb = oats.contrasts("~ N | V", ddf=ddf)
    ref = r[f"pairs_N_by_V_{key}"]
    assert [tuple(i) for i in pb.index] == list(zip(ref["V"], ref["contrast"]))
    assert _rel(pb["se"], ref["SE"]) < 1e-3
    assert _rel(pb["df"], ref["df"]) < 0.01
    assert np.max(np.abs(pb["p"] - ref["p.value"])) < 5e-3


def test_posterior_tables_from_draws(cbpp):
    own, _ = cbpp
    assert hasattr(BayesResults, "emmeans") and hasattr(BayesResults, "contrasts")
    rng = np.random.default_rng(1)
    S = 4000
    beta = rng.multivariate_normal(own.fit.beta, own.fit.vcov_beta, size=S)
    fake = FakePosterior(own.spec, beta, [np.full((S, 1), 0.6)])
    e = emmeans(fake, "period", type="response", level=0.9)
    assert set(e.columns) == {"estimate", "se", "lower", "upper"}
    # exact: the linear functions of each draw, summarized
    eta = beta @ np.array([[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 1]], float).T
    p = 1.0 / (1.0 + np.exp(-eta))
    np.testing.assert_allclose(e["estimate"], p.mean(0), rtol=1e-12)
    np.testing.assert_allclose(e["upper"], np.quantile(p, 0.95, axis=0), rtol=1e-12)
    # and, with draws from the ML sampling distribution, close to the ML table
    ml = own.emmeans("period")
    np.testing.assert_allclose(emmeans(fake, "period")["se"], ml["se"], rtol=0.05)
    c = contrasts(fake, "period", type="response")
    assert list(c.index) == REF["cbpp"]["pairs_response"]["contrast"]
    np.testing.assert_allclose(c["estimate"].iloc[0], np.exp(eta[:, 0] - eta[:, 1]).mean(), rtol=1e-12)
    assert "p" not in c.columns


def test_errors_name_the_fix(oats):
    with pytest.raises(ValueError, match="not a predictor"):
        oats.emmeans("Nitrogen")
    with pytest.raises(ValueError, match="type="):
        oats.emmeans("N", type="mean")
    with pytest.raises(ValueError, match="weights"):
        oats.contrasts("N", method={"a": [1, -1]})


# ----------------------------------------------------------------------------- issue 20, second part
EX = REF["extras"]


def test_default_df_is_kenward_roger_on_lmms(oats):
    # emmeans's lmer default (no lmer.df): Kenward-Roger; "asymptotic" asks for z
    e = oats.emmeans("N")
    ref = EX["oats_default_df"]
    assert _rel(e["df"], ref["df"]) < 0.01
    assert _rel(e["se"], ref["SE"]) < 1e-3
    assert np.isinf(oats.emmeans("N", ddf="asymptotic")["df"]).all()


@pytest.mark.parametrize("w", ["proportional", "outer", "cells", "flat"])
def test_weights_as_emmeans(oats, w):
    e = oats.emmeans("V", weights=w)
    ref = EX[f"oats_w_{w}"]
    assert _rel(e["estimate"], ref["emmean"]) < 1e-6
    assert _rel(e["se"], ref["SE"]) < 1e-3
    assert _rel(e["df"], ref["df"]) < 0.01


def test_weights_cells_within_by_and_at_levels(oats):
    e = oats.emmeans("N", by="V", weights="cells")
    ref = EX["oats_w_cells_by"]
    assert [tuple(i) for i in e.index] == list(zip(ref["V"], ref["N"]))
    assert _rel(e["estimate"], ref["emmean"]) < 1e-6
    assert _rel(e["se"], ref["SE"]) < 1e-3
    e = oats.emmeans("N", at={"V": ["Victory", "Marvellous"]})
    ref = EX["oats_at_V"]
    assert _rel(e["estimate"], ref["emmean"]) < 1e-6
    assert _rel(e["se"], ref["SE"]) < 1e-3
    assert _rel(e["df"], ref["df"]) < 0.01
    with pytest.raises(ValueError, match="not levels of 'V'"):
        oats.emmeans("N", at={"V": ["Golden"]})
    with pytest.raises(ValueError, match="weights="):
        oats.emmeans("N", weights="balanced")


def test_covariate_values_with_at(cbpp):
    own, _ = cbpp
    r = REF["cbpp_cov"]
    res = bg.GLMM(r["formula"], _frame(REF["cbpp"]["data"]), family="binomial").fit_ml()
    fit = dataclasses.replace(res.fit, beta=np.array(list(r["fixef"].values())),
                              vcov_beta=np.array(r["vcov"], dtype=float))
    at_r = type(res)(res.spec, fit)
    e = at_r.emmeans("period", by="size", at={"size": [10, 20]}, type="response")
    ref = EX["cbpp_cov_at"]
    assert [tuple(i) for i in e.index] == [(float(s), p) for s, p in zip(ref["size"], ref["period"])]
    assert _rel(e["estimate"], ref["prob"]) < 1e-6
    assert _rel(e["se"], ref["SE"]) < 1e-3
    for at, key in (({"size": [10, 20]}, "cbpp_cov_at_avg"), ({"size": 15}, "cbpp_cov_at_one")):
        e = at_r.emmeans("period", at=at)
        assert _rel(e["estimate"], EX[key]["emmean"]) < 1e-6
        assert _rel(e["se"], EX[key]["SE"]) < 1e-3
    with pytest.raises(ValueError, match="numeric"):
        at_r.emmeans("size")


@pytest.fixture(scope="module")
def trend():
    r = EX["trend"]
    return bg.GLMM(r["formula"], _frame(r["data"])).fit_ml()


def test_emtrends(trend):
    r = EX["trend"]
    for kw, ref in (({}, r["emtrends"]), ({"at": {"x": 3}}, r["emtrends_at3"]),
                    ({"ddf": "satterthwaite"}, r["emtrends_satt"])):
        e = trend.emtrends("A", var="x", **kw)
        assert list(e.index) == ref["A"]
        assert _rel(e["estimate"], ref["x.trend"]) < 1e-6
        assert _rel(e["se"], ref["SE"]) < 1e-3
        assert _rel(e["df"], ref["df"]) < 0.01
        assert _rel(e["lower"], ref["lower.CL"]) < 1e-3
    c = trend.contrasts("A", trend="x")
    ref = r["pairs"]
    assert list(c.index) == ref["contrast"]
    assert _rel(c["estimate"], ref["estimate"]) < 1e-6
    assert _rel(c["se"], ref["SE"]) < 1e-3
    assert np.max(np.abs(c["p"] - ref["p.value"])) < 5e-3
    with pytest.raises(ValueError, match="numeric predictor"):
        trend.emtrends("A", var="A")


def test_dunnett_distribution_against_mvtnorm():
    from bayes_glmm.postfit.emmeans import dunnett_sf
    d = EX["dunnett_exact"]
    for t, k, df, p in zip(d["t"], d["k"], d["df"], d["p"]):
        assert dunnett_sf([t], k, np.inf if df < 0 else df)[0] == pytest.approx(p, abs=2e-6)


def test_trt_vs_ctrl_defaults_to_dunnett(oats, cbpp):
    # emmeans's default there is its "dunnettx" approximation of the same distribution; with 3
    # contrasts they agree to 1e-5, with 2 (where emmeans says its approximation is weakest) to 1e-2
    for fit, spec, key, tol in ((oats, "N", "oats_trt", 5e-5), (cbpp[1], "period", "cbpp_trt", 5e-5),
                                (oats, "V", "oats_trt_V", 1e-2)):
        c = fit.contrasts(spec, method="trt.vs.ctrl")
        ref = EX[key]
        assert list(c.index) == ref["contrast"]
        assert _rel(c["estimate"], ref["estimate"]) < 1e-6
        assert np.max(np.abs(c["p"] - ref["p.value"])) < tol


def _salamanders(order_from):
    d = pd.read_csv(Path(__file__).parent / "reference" / "salamanders.csv")
    d["mined"] = pd.Categorical(d["mined"], categories=order_from)
    return d


@pytest.mark.parametrize("key,kw", [("zi", {"family": "poisson", "zi": "~ mined"}),
                                    ("hurdle", {"family": "hurdle_poisson", "hu": "~ mined"})])
def test_response_means_include_the_zero_part(key, kw):
    r = EX[key]
    sal = _salamanders(r["emm"]["mined"])
    res = bg.GLMM("count ~ mined + spp + (1 | site)", sal, **kw).fit_ml()
    assert res.fit.loglik == pytest.approx(r["loglik"], abs=1e-5)
    own = res.emmeans("mined", type="response")
    assert np.max(np.abs(own["estimate"] - r["emm"]["estimate"]) / own["se"]) < 0.01
    # at glmmTMB's estimates and joint covariance: the computation itself
    p, pz = res.spec.p, res.spec.p_zi
    V = np.array(r["vcov"], dtype=float)
    fit = dataclasses.replace(res.fit, beta=np.array(list(r["fixef"].values())),
                              beta_zi=np.array(list(r["fixef_zi"].values())), vcov_beta=V[:p, :p],
                              vcov_beta_aux=V[:p, p:], vcov_aux=V[p:, p:])
    at_r = type(res)(res.spec, fit)
    e = at_r.emmeans("mined", type="response")
    assert list(e.index) == r["emm"]["mined"]
    assert _rel(e["estimate"], r["emm"]["estimate"]) < 1e-6
    assert _rel(e["se"], r["emm"]["SE"]) < 1e-3
    c = at_r.contrasts("mined", type="response")
    assert list(c.index) == ["yes - no"]
    assert c["estimate"].iloc[0] == pytest.approx(r["emm"]["diff"], rel=1e-6)
    assert c["se"].iloc[0] == pytest.approx(r["emm"]["diff_SE"], rel=1e-3)
    # the link scale is the conditional model's, as emmeans's component="cond"
    lk = at_r.emmeans("mined")
    assert _rel(lk["estimate"], r["emm_cond_link"]["emmean"]) < 1e-6


def test_posterior_hdi_and_trends(cbpp):
    import arviz as az
    own, _ = cbpp
    rng = np.random.default_rng(2)
    beta = rng.multivariate_normal(own.fit.beta, own.fit.vcov_beta, size=3000)
    fake = FakePosterior(own.spec, beta, [np.full((3000, 1), 0.6)])
    e = emmeans(fake, "period", type="response", interval="hdi", level=0.9)
    p = 1.0 / (1.0 + np.exp(-(beta @ np.array([[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 1]], float).T)))
    want = np.array([az.hdi(p[:, j], hdi_prob=0.9) for j in range(4)])
    np.testing.assert_allclose(e[["lower", "upper"]].to_numpy(), want, rtol=1e-12)
    with pytest.raises(ValueError, match="posterior"):
        own.emmeans("period", interval="hdi")
    c = contrasts(fake, "period", method="trt.vs.ctrl", interval="hdi")
    assert list(c.columns) == ["estimate", "se", "lower", "upper"]


def test_posterior_response_means_include_the_zero_part():
    # a posterior built around the ML zip fit (no MCMC): the table is each draw's grid-averaged
    # E[y] = (1 - pi) mu, summarized
    import arviz as az
    from scipy.special import expit

    r = EX["zi"]
    sal = _salamanders(r["emm"]["mined"])
    model = bg.GLMM("count ~ mined + spp + (1 | site)", sal, family="poisson", zi="~ mined")
    ml = model.fit_ml()
    rng = np.random.default_rng(3)
    S, p = 1000, ml.spec.p
    V = np.block([[ml.fit.vcov_beta, ml.fit.vcov_beta_aux], [ml.fit.vcov_beta_aux.T, ml.fit.vcov_aux]])
    d = rng.multivariate_normal(np.concatenate([ml.fit.beta, ml.fit.beta_zi]), V, size=S)
    t = ml.spec.terms[0]
    post = {"beta": d[None, :, :p], "beta_zi": d[None, :, p:], f"sd_{t.ident}": np.full((1, S, 1), 0.5),
            f"b_{t.ident}": np.zeros((1, S, t.n_levels, 1))}
    fit = BayesResults(model, az.from_dict(posterior=post))
    e = fit.emmeans("mined", type="response")
    # by hand: grid = mined x spp (7 species), equal weights
    spp = list(sal["spp"].astype("category").cat.categories)
    means = []
    for lev in r["emm"]["mined"]:
        g = pd.DataFrame({"mined": pd.Categorical([lev] * len(spp), categories=r["emm"]["mined"]), "spp": spp,
                          "site": sal["site"].iloc[0], "count": 0})
        nd = ml.spec.new_design(g)
        m = np.exp(d[:, :p] @ nd.X.T) * (1 - expit(d[:, p:] @ nd.X_zi.T))
        means.append(m.mean(1))
    means = np.column_stack(means)
    np.testing.assert_allclose(e["estimate"], means.mean(0), rtol=1e-10)
    np.testing.assert_allclose(e["se"], means.std(0, ddof=1), rtol=1e-10)
    # and near the ML delta method
    np.testing.assert_allclose(e["se"], ml.emmeans("mined", type="response")["se"], rtol=0.1)
    c = fit.contrasts("mined", type="response")
    np.testing.assert_allclose(c["estimate"].iloc[0], (means[:, 0] - means[:, 1]).mean(), rtol=1e-10)


def _cl_err(tab, ref, lo, hi):
    """Largest |our limit - emmeans's| in SE units, over both limits."""
    se = np.asarray(ref["SE"], float)
    return max(np.max(np.abs(tab["lower"].to_numpy() - np.asarray(ref[lo], float)) / se),
               np.max(np.abs(tab["upper"].to_numpy() - np.asarray(ref[hi], float)) / se))


def test_contrast_intervals_as_emmeans_confint(cbpp, oats):
    """Simultaneous limits of contrast tables = emmeans's confint (summary(infer = TRUE)):
    Tukey's studentized range, Bonferroni (also for holm, as emmeans), none; odds ratios get
    the back-transformed interval; KR / Satterthwaite df per contrast."""
    _, at_r = cbpp
    r, o = REF["cbpp"], REF["oats"]
    z = ("asymp.LCL", "asymp.UCL")
    cases = [(at_r.contrasts("period"), r["pairs_link"], z),
             (at_r.contrasts("period", type="response"), r["pairs_response"], z),
             (at_r.contrasts("period", adjust="none"), r["pairs_none"], z),
             (at_r.contrasts("period", method="trt.vs.ctrl", adjust="holm"), r["trt_holm"], z),
             (at_r.contrasts("period", method={"early_vs_late": [0.5, 0.5, -0.5, -0.5], "p1_vs_p4": [1, 0, 0, -1]},
                             adjust="bonferroni"), r["custom_bonf"], z)]
    t = ("lower.CL", "upper.CL")
    cases += [(oats.contrasts("N", ddf="kenward-roger"), o["pairs_N_kr"], t),
              (oats.contrasts("V", adjust="holm", ddf="satterthwaite"), o["pairs_V_holm_satt"], t),
              (oats.contrasts("~ N | V", ddf="kenward-roger"), o["pairs_N_by_V_kr"], t)]
    for tab, ref, (lo, hi) in cases:
        assert list(tab.columns) == ["estimate", "se", "df", "lower", "upper", "statistic", "p"]
        # at lme4's estimates (cbpp) to 1e-7 SE; oats at our REML optimum and KR/Satterthwaite df to 1e-5
        assert _cl_err(tab, ref, lo, hi) < 1e-5
        assert np.all(tab["lower"] < tab["estimate"]) and np.all(tab["estimate"] < tab["upper"])


def test_dunnett_intervals_invert_the_exact_distribution(cbpp, oats):
    from bayes_glmm.postfit.emm_grid import adjusted_crit
    from bayes_glmm.postfit.emmeans import dunnett_sf
    for k, df in ((2, np.inf), (3, np.inf), (3, 12.3)):
        q = adjusted_crit(np.full(k, df), "dunnettx", None, 0.95)
        assert dunnett_sf(q[:1], k, df)[0] == pytest.approx(0.05, abs=1e-9)
    # emmeans's "dunnettx" quantile is an approximation of the same one (k = 2, z: 2.2218 vs the
    # exact 2.2121, mvtnorm's qmvnorm 2.2122): its limits differ by up to 0.025 SE
    for fit, spec, key in ((cbpp[1], "period", "cbpp_trt"), (oats, "N", "oats_trt"), (oats, "V", "oats_trt_V")):
        ref = EX[key]
        lo, hi = ("asymp.LCL", "asymp.UCL") if "asymp.LCL" in ref else ("lower.CL", "upper.CL")
        assert _cl_err(fit.contrasts(spec, method="trt.vs.ctrl"), ref, lo, hi) < 0.025

"""predict(interval=...): ML delta method / bootstrap and posterior intervals.

Reference: tests/reference/predict_reference.json from make_reference_predict.R (lme4 1.1-31:
Wald SEs sqrt(x' vcov x) for re.form = NA, plus z' condVar z for conditional predictions).
"""
import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special

import bayes_glmm as bg

REF = json.loads((pathlib.Path(__file__).parent / "reference" / "predict_reference.json").read_text())
Z95 = special.ndtri(0.975)


@pytest.fixture(scope="module")
def lmm():
    ss = bg.datasets.load("sleepstudy")
    ss["Subject"] = "S" + ss["Subject"].astype(str)
    return bg.GLMM("Reaction ~ Days + (Days | Subject)", ss).fit_ml()


@pytest.fixture(scope="module")
def glmm():
    d = bg.datasets.load("cbpp")
    return bg.GLMM("cbind(incidence, size - incidence) ~ period + (1 | herd)", d, family="binomial").fit_ml()


def _glmm_newdata():
    nd = pd.DataFrame(REF["glmm"]["newdata"])
    return pd.DataFrame({"period": pd.Categorical(nd["period"].astype(int), categories=[1, 2, 3, 4]),
                         "herd": pd.Categorical(nd["herd"].astype(int))})


@pytest.mark.parametrize("re_form,eta_key,se_key", [(None, "eta_pop", "se_pop"), ("full", "eta_cond", "se_cond")])
def test_lmm_confidence_interval_matches_lme4_wald(lmm, re_form, eta_key, se_key):
    ref = REF["lmm"]
    nd = pd.DataFrame(ref["newdata"])
    out = lmm.predict(nd, kind="link", re_form=re_form, interval="confidence")
    se = (out["upper"] - out["lower"]).to_numpy() / (2 * Z95)
    se_ref = np.asarray(ref[se_key])
    # estimates within 0.01 SE of lme4's; SEs to 1e-4 relative (measured 6e-6, REML optimum)
    assert np.max(np.abs(out["estimate"].to_numpy() - ref[eta_key]) / se_ref) < 0.01
    np.testing.assert_allclose(se, se_ref, rtol=1e-4)
    # identity link: kind="mean" is the same interval
    pd.testing.assert_frame_equal(lmm.predict(nd, kind="mean", re_form=re_form, interval="confidence"), out,
                                  check_like=True, check_exact=False, rtol=1e-12)


@pytest.mark.parametrize("re_form,eta_key,se_key", [(None, "eta_pop", "se_pop"), ("full", "eta_cond", "se_cond")])
def test_glmm_link_se_and_back_transform(glmm, re_form, eta_key, se_key):
    ref = REF["glmm"]
    nd = _glmm_newdata()
    link = glmm.predict(nd, kind="link", re_form=re_form, interval="confidence")
    se = (link["upper"] - link["lower"]).to_numpy() / (2 * Z95)
    np.testing.assert_allclose(link["estimate"], ref[eta_key], atol=2e-3)
    # within 1.5% of lme4: our Laplace vcov(beta) differs from glmer's by that much here
    # (measured 1.2% population, 0.6% conditional); the delta method itself is exact:
    np.testing.assert_allclose(se, ref[se_key], rtol=1.5e-2)
    if re_form is None:
        X = np.column_stack([np.ones(5), pd.get_dummies(nd["period"], drop_first=True).to_numpy(float)])
        se_own = np.sqrt(np.einsum("np,pr,nr->n", X, glmm.vcov.to_numpy(), X))
        np.testing.assert_allclose(se, se_own, rtol=1e-10)
    mean = glmm.predict(nd, kind="mean", re_form=re_form, interval="confidence")
    np.testing.assert_allclose(mean.to_numpy(), special.expit(link.to_numpy()), rtol=1e-12)
    assert np.all((mean["lower"] < mean["estimate"]) & (mean["estimate"] < mean["upper"]))


def test_interval_none_is_todays_predict(lmm, glmm):
    nd = pd.DataFrame(REF["lmm"]["newdata"])
    a = lmm.predict(nd)
    assert isinstance(a, np.ndarray)
    np.testing.assert_array_equal(a, lmm.predict(nd, interval=None))
    np.testing.assert_allclose(lmm.predict(nd, interval="confidence")["estimate"], a, rtol=1e-12)
    np.testing.assert_allclose(glmm.predict(_glmm_newdata(), interval="confidence")["estimate"],
                               glmm.predict(_glmm_newdata()), rtol=1e-12)


def test_lmm_prediction_interval_closed_form(lmm):
    nd = pd.DataFrame(REF["lmm"]["newdata"])
    conf = lmm.predict(nd, interval="confidence")
    pred = lmm.predict(nd, interval="prediction")
    se = (conf["upper"] - conf["lower"]).to_numpy() / (2 * Z95)
    sd = (pred["upper"] - pred["lower"]).to_numpy() / (2 * Z95)
    # fitted subjects: sigma^2 added; the unseen subject (row 4) also gets z' Sigma z
    np.testing.assert_allclose(sd[:4] ** 2, se[:4] ** 2 + lmm.sigma ** 2, rtol=1e-10)
    z = np.array([1.0, 2.0])
    np.testing.assert_allclose(sd[4] ** 2, se[4] ** 2 + lmm.sigma ** 2 + z @ lmm.covs[0] @ z, rtol=1e-10)


def _sim_lmm(rng, n_groups=30, n_per=8, new_per=5):
    g = np.repeat(np.arange(n_groups), n_per + new_per)
    x = rng.uniform(0, 4, g.size)
    b0 = rng.normal(0, 1.0, n_groups)
    b1 = rng.normal(0, 0.4, n_groups)
    y = 2.0 + 0.5 * x + b0[g] + b1[g] * x + rng.normal(0, 0.8, g.size)
    df = pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})
    is_new = np.tile(np.r_[np.zeros(n_per, bool), np.ones(new_per, bool)], n_groups)
    return df[~is_new].reset_index(drop=True), df[is_new].reset_index(drop=True)


def test_lmm_prediction_interval_coverage():
    # 40 simulated data sets x 150 new observations of the fitted groups, and 150 of groups
    # not in the fit (re_form=None): 95% prediction intervals must cover ~95% of them
    rng = np.random.default_rng(20)
    hit_cond, hit_pop = [], []
    for _ in range(40):
        fit_df, new_df = _sim_lmm(rng)
        res = bg.GLMM("y ~ x + (x | g)", fit_df).fit_ml()
        pi = res.predict(new_df, interval="prediction")
        hit_cond.append((pi["lower"] <= new_df["y"]) & (new_df["y"] <= pi["upper"]))
        other, _ = _sim_lmm(rng, new_per=0, n_per=5)
        pp = res.predict(other, interval="prediction", re_form=None)
        hit_pop.append((pp["lower"] <= other["y"]) & (other["y"] <= pp["upper"]))
    cov_cond, cov_pop = np.mean(np.concatenate(hit_cond)), np.mean(np.concatenate(hit_pop))
    print(f"coverage conditional {cov_cond:.4f} population {cov_pop:.4f}")
    assert abs(cov_cond - 0.95) < 0.02, cov_cond
    assert abs(cov_pop - 0.95) < 0.02, cov_pop
    # the confidence interval of the mean is narrower and does not cover new observations as often
    conf = res.predict(new_df, interval="confidence")
    assert np.all(conf["upper"] - conf["lower"] < pi["upper"] - pi["lower"])


def test_glmm_prediction_interval_by_simulation(glmm):
    d = bg.datasets.load("cbpp").iloc[[0, 5, 20, 40]]
    a = glmm.predict(d, interval="prediction", random_seed=3)
    b = glmm.predict(d, interval="prediction", random_seed=3)
    pd.testing.assert_frame_equal(a, b)
    # proportions of the row's trials: a multiple of 1/size, inside [0, 1]
    assert np.all((a["lower"] >= 0) & (a["upper"] <= 1) & (a["lower"] <= a["estimate"]))
    np.testing.assert_allclose((a["upper"] * d["size"]).to_numpy(), np.rint(a["upper"] * d["size"]), atol=1e-9)
    conf = glmm.predict(d, interval="confidence")
    assert np.all(a["upper"] - a["lower"] >= conf["upper"] - conf["lower"])
    succ = glmm.predict(d, kind="response", interval="prediction", random_seed=3)
    np.testing.assert_allclose(succ[["lower", "upper"]].to_numpy(),
                               a[["lower", "upper"]].to_numpy() * d["size"].to_numpy()[:, None], atol=1e-9)


def test_bootstrap_population_interval_close_to_wald(lmm):
    nd = pd.DataFrame(REF["lmm"]["newdata"])
    wald = lmm.predict(nd, re_form=None, interval="confidence")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        boot = lmm.predict(nd, re_form=None, interval="confidence", method="bootstrap", n_boot=40, random_seed=1)
        again = lmm.predict(nd, re_form=None, interval="confidence", method="bootstrap", n_boot=40, random_seed=1)
    pd.testing.assert_frame_equal(boot, again)
    np.testing.assert_allclose(boot["estimate"], wald["estimate"], rtol=1e-12)
    w_wald, w_boot = (wald["upper"] - wald["lower"]).to_numpy(), (boot["upper"] - boot["lower"]).to_numpy()
    np.testing.assert_allclose(w_boot, w_wald, rtol=0.3)  # 40 refits: percentile noise


def test_bootstrap_conditional_intervals(lmm):
    # bootMer(use.u = TRUE): responses at the fitted random effects, each refit's own modes
    nd = pd.DataFrame(REF["lmm"]["newdata"]).iloc[:4]  # fitted subjects
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conf = lmm.predict(nd, interval="confidence", method="bootstrap", n_boot=40, random_seed=1)
        pred = lmm.predict(nd, interval="prediction", method="bootstrap", n_boot=40, random_seed=1)
    wald_c, wald_p = lmm.predict(nd, interval="confidence"), lmm.predict(nd, interval="prediction")
    np.testing.assert_allclose(conf["estimate"], wald_c["estimate"], rtol=1e-12)
    ratio = ((conf["upper"] - conf["lower"]) / (wald_c["upper"] - wald_c["lower"])).to_numpy()
    # the predictor's sampling spread given the effects: below condVar's, same order
    assert np.all((ratio > 0.4) & (ratio < 1.1)), ratio
    ratio = ((pred["upper"] - pred["lower"]) / (wald_p["upper"] - wald_p["lower"])).to_numpy()
    np.testing.assert_allclose(ratio, 1.0, atol=0.2)  # sigma dominates
    with pytest.raises(ValueError, match="levels not in the fit"):
        lmm.predict(pd.DataFrame(REF["lmm"]["newdata"]), interval="confidence", method="bootstrap", n_boot=20)


@pytest.mark.parametrize("kw,match", [
    ({"interval": "prediction", "kind": "link"}, "kind='link'"),
    ({"interval": "confidence", "kind": "response"}, "kind='response'"),
    ({"interval": "both"}, "interval='both'"),
    ({"interval": "confidence", "level": 1.5}, "level"),
    ({"interval": "confidence", "method": "exact"}, "method"),
])
def test_interval_argument_errors(lmm, kw, match):
    with pytest.raises(ValueError, match=match):
        lmm.predict(pd.DataFrame(REF["lmm"]["newdata"]), **kw)


def test_unseen_level_error_still_raises(lmm):
    with pytest.raises(ValueError, match="Subject"):
        lmm.predict(pd.DataFrame(REF["lmm"]["newdata"]), new_levels="error", interval="confidence")


@pytest.fixture(scope="module")
def bayes_fit():
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(8), 6)
    x = rng.normal(size=g.size)
    y = 1.0 + 0.5 * x + rng.normal(0, 0.7, 8)[g] + rng.normal(0, 0.5, g.size)
    df = pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bg.GLMM("y ~ x + (1 | g)", df).sample(draws=200, tune=200, chains=1, random_seed=3,
                                                      progressbar=False), df


def test_bayes_intervals_are_posterior_quantiles(bayes_fit):
    res, df = bayes_fit
    nd = df.iloc[:4]
    conf = res.predict(nd, interval="confidence", level=0.9)
    draws = res.predict(nd, return_draws=True)
    np.testing.assert_allclose(conf["lower"], np.quantile(draws, 0.05, axis=0), rtol=1e-12)
    np.testing.assert_allclose(conf["upper"], np.quantile(draws, 0.95, axis=0), rtol=1e-12)
    np.testing.assert_allclose(conf["estimate"], res.predict(nd), rtol=1e-12)
    pred = res.predict(nd, interval="prediction", random_seed=1)
    pd.testing.assert_frame_equal(pred, res.predict(nd, interval="prediction", random_seed=1))
    assert np.all(pred["upper"] - pred["lower"] > conf["upper"] - conf["lower"])
    # the predictive SD is about sqrt(Var(mu) + sigma^2): the interval's half-width too
    sigma2 = float(np.mean(res._draws["sigma"] ** 2))
    half = (pred["upper"] - pred["lower"]).to_numpy() / (2 * Z95)
    np.testing.assert_allclose(half, np.sqrt(draws.var(axis=0) + sigma2), rtol=0.2)
    pop = res.predict(nd, interval="prediction", re_form=None, random_seed=1)
    assert np.all(pop["upper"] - pop["lower"] > pred["upper"] - pred["lower"])


def test_ml_negbinomial_prediction_interval_coverage_and_counts():
    # 12 simulated NB GLMMs, 3 new rows per group of 30: discrete 95% limits cover >= ~95%
    hits = []
    for s in range(12):
        r = np.random.default_rng(s)
        g = np.repeat(np.arange(30), 10)
        x = r.uniform(0, 1, g.size)
        mu = np.exp(0.5 + 0.8 * x + r.normal(0, 0.5, 30)[g])
        df = pd.DataFrame({"y": r.poisson(r.gamma(3.0, mu / 3.0)), "x": x, "g": pd.Categorical(g)})
        new = np.arange(g.size) % 10 >= 7
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = bg.GLMM("y ~ x + (1 | g)", df[~new], family="negbinomial").fit_ml()
        pi = res.predict(df[new], interval="prediction", random_seed=s)
        np.testing.assert_array_equal(pi["upper"], np.rint(pi["upper"]))
        hits.append((pi["lower"] <= df["y"][new]) & (df["y"][new] <= pi["upper"]))
    cover = np.mean(np.concatenate(hits))
    print(f"negbinomial coverage {cover:.4f}")
    assert 0.93 < cover < 0.99, cover


def test_bayes_zero_inflated_prediction_limits_are_counts():
    r = np.random.default_rng(0)
    g = np.repeat(np.arange(10), 8)
    x = r.uniform(size=g.size)
    y = np.where(r.uniform(size=g.size) < 0.3, 0, r.poisson(np.exp(0.5 + x + r.normal(0, 0.4, 10)[g])))
    df = pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = bg.GLMM("y ~ x + (1 | g)", df, family="poisson", zi="~ 1").sample(
            draws=150, tune=150, chains=1, random_seed=1, progressbar=False)
    conf = res.predict(df.iloc[:3], interval="confidence")
    np.testing.assert_allclose(conf["estimate"], res.predict(df.iloc[:3]), rtol=1e-12)  # (1 - pi) mu
    pred = res.predict(df.iloc[:3], interval="prediction", re_form=None, random_seed=1)
    np.testing.assert_array_equal(pred[["lower", "upper"]], np.rint(pred[["lower", "upper"]]))
    assert np.all(pred["upper"] > conf["upper"])


def _zero_counts(seed, n_groups=25, per=12):
    r = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    x = r.uniform(0, 1, g.size)
    y = np.where(r.uniform(size=g.size) < 0.35, 0, r.poisson(np.exp(0.6 + 0.8 * x + r.normal(0, 0.4, n_groups)[g])))
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)}), np.arange(g.size) % per >= per - 3


@pytest.mark.parametrize("family,kw", [("poisson", {"zi": "~ x"}), ("hurdle_poisson", {"hu": "~ 1"})])
def test_ml_zero_part_prediction_interval_coverage(family, kw):
    # 6 simulated zero-inflated count GLMMs, 3 held-out rows per group: the discrete 95% limits
    # (zero part and conditional-mode uncertainty included) cover ~95% of new observations
    hits = []
    for s in range(6):
        df, new = _zero_counts(s)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = bg.GLMM("y ~ x + (1 | g)", df[~new], family=family, **kw).fit_ml()
        pi = res.predict(df[new], interval="prediction", random_seed=s, n_sim=2000)
        np.testing.assert_array_equal(pi["upper"], np.rint(pi["upper"]))
        # the estimate is E[y] with the zero part, as predict() without an interval gives it
        np.testing.assert_allclose(pi["estimate"], res.predict(df[new]), rtol=1e-10)
        hits.append((pi["lower"] <= df["y"][new]) & (df["y"][new] <= pi["upper"]))
    cover = np.mean(np.concatenate(hits))
    print(f"{family} {kw} coverage {cover:.4f}")
    assert 0.93 < cover <= 0.995, cover


def test_ml_zero_part_confidence_interval():
    df, _ = _zero_counts(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = bg.GLMM("y ~ x + (1 | g)", df, family="poisson", zi="~ x").fit_ml()
    assert res.fit.vcov_beta_aux is not None and res.fit.vcov_beta_aux.shape == (2, 2)
    nd = df.iloc[:4]
    conf = res.predict(nd, interval="confidence", re_form=None, random_seed=3, n_sim=4000)
    est = res.predict(nd, re_form=None)
    np.testing.assert_allclose(conf["estimate"], est, rtol=1e-10)
    assert np.all((conf["lower"] < est) & (est < conf["upper"]))
    # delta method check on E[y] = (1 - pi) mu over (beta, beta_zi) jointly (re_form=None)
    X = np.column_stack([np.ones(4), nd["x"]])
    mu, pz = np.exp(X @ res.fit.beta), special.expit(X @ res.fit.beta_zi)
    G = np.column_stack([((1 - pz) * mu)[:, None] * X, (-pz * (1 - pz) * mu)[:, None] * X])
    V = np.block([[res.fit.vcov_beta, res.fit.vcov_beta_aux], [res.fit.vcov_beta_aux.T, res.fit.vcov_aux]])
    se = np.sqrt(np.einsum("np,pr,nr->n", G, V, G))
    np.testing.assert_allclose((conf["upper"] - conf["lower"]) / (2 * Z95), se, rtol=0.15)
    again = res.predict(nd, interval="confidence", re_form=None, random_seed=3, n_sim=4000)
    pd.testing.assert_frame_equal(conf, again)  # seeded: reproducible
    link = res.predict(nd, interval="confidence", kind="link", re_form=None)
    np.testing.assert_allclose(link["estimate"], res.predict(nd, kind="link", re_form=None))
    # the bootstrap: each refit's (beta, beta_zi) give E[y]; close to the simulation's interval
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        boot = res.predict(nd, interval="confidence", method="bootstrap", re_form=None, n_boot=40, random_seed=3)
    np.testing.assert_allclose(boot["estimate"], est, rtol=1e-10)
    np.testing.assert_allclose((boot["upper"] - boot["lower"]) / (2 * Z95), se, rtol=0.35)


def test_ml_disp_prediction_interval_coverage_and_width():
    # gaussian LMM with log sigma = -1 + 1.5 x: 95% prediction intervals cover ~95% of new
    # observations, and are wider where the dispersion is larger
    hits, ratios = [], []
    for s in range(5):
        r = np.random.default_rng(100 + s)
        g = np.repeat(np.arange(25), 12)
        x = r.uniform(0, 1, g.size)
        y = 1 + x + r.normal(0, 0.5, 25)[g] + np.exp(-1 + 1.5 * x) * r.normal(size=g.size)
        df = pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})
        new = np.arange(g.size) % 12 >= 9
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = bg.GLMM("y ~ x + (1 | g)", df[~new], disp="~ x").fit_ml()
        pi = res.predict(df[new], interval="prediction", random_seed=s, n_sim=2000)
        hits.append((pi["lower"] <= df["y"][new]) & (df["y"][new] <= pi["upper"]))
        ends = res.predict(pd.DataFrame({"x": [0.0, 1.0], "g": pd.Categorical([0, 0])}),
                           interval="prediction", random_seed=s)
        w = (ends["upper"] - ends["lower"]).to_numpy()
        ratios.append(w[1] / w[0])
    cover = np.mean(np.concatenate(hits))
    print(f"disp coverage {cover:.4f}, width ratio x=1 / x=0 {np.round(ratios, 2)}")
    assert 0.93 < cover < 0.98, cover
    # sigma ratio exp(1.5) = 4.5, diluted by the group SD 0.5 in the total SD
    assert np.all(np.array(ratios) > 2.0), ratios


def test_ml_ordinal_probs_and_category_intervals():
    from bayes_glmm.ml.auxpar import aux_natural

    r = np.random.default_rng(0)
    g = np.repeat(np.arange(15), 12)
    x = r.normal(size=g.size)
    lat = x + r.normal(0, 0.5, 15)[g] + r.logistic(size=g.size)
    df = pd.DataFrame({"y": pd.Categorical(np.digitize(lat, [-1, 1]), ordered=True), "x": x, "g": pd.Categorical(g)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = bg.GLMM("y ~ x + (1 | g)", df, family="ordinal").fit_ml()
    fam, nd = res.spec.family, df.iloc[:4]
    conf = res.predict(nd, interval="confidence", kind="probs", re_form=None, random_seed=2, n_sim=4000)
    p_hat = res.predict(nd, kind="probs", re_form=None)
    pd.testing.assert_frame_equal(conf["estimate"], p_hat, check_names=False)
    assert np.all((conf["lower"].to_numpy() < p_hat.to_numpy()) & (p_hat.to_numpy() < conf["upper"].to_numpy()))
    # delta method over (beta, thresholds' coordinates) jointly, numerical gradient
    coords = np.array([res.fit.aux["0|1"], np.log(res.fit.aux["1|2"] - res.fit.aux["0|1"])])
    theta0 = np.concatenate([res.fit.beta, coords])
    xv = nd["x"].to_numpy()

    def probs(t):
        return fam.category_probs(xv * t[0], **aux_natural(fam, t[1:]))

    G = np.stack([(probs(theta0 + h) - probs(theta0 - h)) / 2e-6 for h in 1e-6 * np.eye(3)], axis=-1)
    V = np.block([[res.fit.vcov_beta, res.fit.vcov_beta_aux], [res.fit.vcov_beta_aux.T, res.fit.vcov_aux]])
    se = np.sqrt(np.einsum("nkp,pr,nkr->nk", G, V, G))
    np.testing.assert_allclose((conf["upper"] - conf["lower"]).to_numpy() / (2 * Z95), se, rtol=0.15)
    mean = res.predict(nd, interval="confidence", kind="mean", random_seed=2)
    np.testing.assert_allclose(mean["estimate"], res.predict(nd, kind="mean"))
    assert np.all((mean["lower"] >= 1) & (mean["upper"] <= 3) & (mean["lower"] < mean["upper"]))
    pred = res.predict(nd, interval="prediction", random_seed=2)
    assert set(np.unique(pred[["lower", "upper"]])) <= {1.0, 2.0, 3.0}  # category numbers
    pd.testing.assert_frame_equal(pred, res.predict(nd, interval="prediction", random_seed=2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        boot = res.predict(nd, interval="confidence", kind="probs", method="bootstrap", re_form=None, n_boot=30,
                           random_seed=2)
    pd.testing.assert_frame_equal(boot["estimate"], p_hat, check_names=False)
    np.testing.assert_allclose((boot["upper"] - boot["lower"]).to_numpy() / (2 * Z95), se, rtol=0.4)
    bpred = res.predict(nd, interval="prediction", method="bootstrap", re_form=None, n_boot=30, random_seed=2)
    assert set(np.unique(bpred[["lower", "upper"]])) <= {1.0, 2.0, 3.0}


def test_probs_interval_refused_for_non_ordinal(glmm):
    with pytest.raises(ValueError, match="categor|ordinal"):
        glmm.predict(interval="confidence", kind="probs")


def _ordinal_data(seed=0):
    r = np.random.default_rng(seed)
    g = np.repeat(np.arange(15), 12)
    x = r.normal(size=g.size)
    lat = x + r.normal(0, 0.5, 15)[g] + r.logistic(size=g.size)
    return pd.DataFrame({"y": pd.Categorical(np.digitize(lat, [-1, 1]), ordered=True), "x": x,
                         "g": pd.Categorical(g)})


def test_bayes_ordinal_category_probabilities_with_intervals():
    # a posterior built from the ML fit's normal approximation (no MCMC): the intervals must be
    # the quantiles of each draw's category probabilities, and close to the ML ones
    import arviz as az
    from bayes_glmm.bayes import BayesResults
    from bayes_glmm.ml.auxpar import aux_natural

    df = _ordinal_data()
    model = bg.GLMM("y ~ x + (1 | g)", df, family="ordinal")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ml = model.fit_ml()
    fam, t = ml.spec.family, ml.spec.terms[0]
    rng = np.random.default_rng(1)
    S = 2000
    coords = np.array([ml.fit.aux["0|1"], np.log(ml.fit.aux["1|2"] - ml.fit.aux["0|1"])])
    V = np.block([[ml.fit.vcov_beta, ml.fit.vcov_beta_aux], [ml.fit.vcov_beta_aux.T, ml.fit.vcov_aux]])
    d = rng.multivariate_normal(np.concatenate([ml.fit.beta, coords]), V, size=S)
    th = [aux_natural(fam, c) for c in d[:, 1:]]
    post = {"beta": d[None, :, :1], f"sd_{t.ident}": np.full((1, S, 1), float(np.sqrt(ml.covs[0][0, 0]))),
            f"b_{t.ident}": np.zeros((1, S, t.n_levels, 1))}
    for name in th[0]:
        post[name] = np.array([[v[name] for v in th]])
    res = BayesResults(model, az.from_dict(posterior=post))
    nd = df.iloc[:4]
    conf = res.predict(nd, interval="confidence", kind="probs", re_form=None, level=0.9)
    p = fam.category_probs(d[:, :1] @ nd[["x"]].to_numpy().T, **{k: post[k][0][:, None] for k in th[0]})
    np.testing.assert_allclose(conf["lower"].to_numpy(), np.quantile(p, 0.05, axis=0), rtol=1e-12)
    np.testing.assert_allclose(conf["upper"].to_numpy(), np.quantile(p, 0.95, axis=0), rtol=1e-12)
    np.testing.assert_allclose(conf["estimate"].to_numpy(), p.mean(0), rtol=1e-12)
    assert list(conf["estimate"].columns) == list(fam.categories)
    ml_conf = ml.predict(nd, interval="confidence", kind="probs", re_form=None, level=0.9, random_seed=2)
    np.testing.assert_allclose((conf["upper"] - conf["lower"]).to_numpy(),
                               (ml_conf["upper"] - ml_conf["lower"]).to_numpy(), rtol=0.15)
    mean = res.predict(nd, interval="confidence", kind="mean")
    assert np.all((mean["lower"] >= 1) & (mean["upper"] <= 3) & (mean["lower"] < mean["upper"]))
    pred = res.predict(nd, interval="prediction", random_seed=2)
    assert set(np.unique(pred[["lower", "upper"]])) <= {1.0, 2.0, 3.0}  # category numbers
    np.testing.assert_allclose(pred["estimate"], mean["estimate"], rtol=1e-12)


def _family_data(family, seed=7):
    r = np.random.default_rng(seed)
    g = np.repeat(np.arange(12), 10)
    x = r.normal(size=g.size)
    eta = 0.3 + 0.5 * x + r.normal(0, 0.4, 12)[g]
    if family == "student_t":
        y = eta + 0.5 * r.standard_t(5, size=g.size)
    elif family == "betabinomial":
        p = special.expit(eta)
        y = r.binomial(10, r.beta(p * 8, (1 - p) * 8))
    elif family == "gaussian_disp":
        y = eta + np.exp(-1 + 0.8 * x) * r.normal(size=g.size)
    else:  # hurdle negative binomial
        y = np.where(r.random(g.size) < 0.3, 0, r.negative_binomial(2, 2 / (2 + np.exp(eta))) + 1)
    return pd.DataFrame({"y": y, "n": 10, "x": x, "g": pd.Categorical(g)})


@pytest.mark.parametrize("family,kw", [
    pytest.param("student_t", {}, marks=pytest.mark.slow),  # 6-10 s each: 30 refits of 120 rows
    pytest.param("betabinomial", {"trials": "n"}, marks=pytest.mark.slow),
    ("gaussian_disp", {"disp": "~ x"}),
    pytest.param("hurdle_negbinomial", {"hu": "~ 1"}, marks=pytest.mark.slow)])
def test_bootstrap_intervals_for_the_newer_families(family, kw):
    df = _family_data(family)
    fam = "gaussian" if family == "gaussian_disp" else family
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = bg.GLMM("y ~ x + (1 | g)", df, family=fam, **kw).fit_ml()
        nd = df.iloc[:3]
        conf = res.predict(nd, interval="confidence", method="bootstrap", n_boot=15, random_seed=1)
        pred = res.predict(nd, interval="prediction", method="bootstrap", n_boot=15, random_seed=1, n_sim=600)
        wald = res.predict(nd, interval="confidence", random_seed=1)
    est = res.predict(nd)
    np.testing.assert_allclose(conf["estimate"], est, rtol=1e-10)
    assert np.all((conf["lower"] <= est) & (est <= conf["upper"]))
    assert np.all(pred["upper"] - pred["lower"] > conf["upper"] - conf["lower"])
    ratio = ((conf["upper"] - conf["lower"]) / (wald["upper"] - wald["lower"])).to_numpy()
    assert np.all((ratio > 0.2) & (ratio < 2.0)), ratio

"""The ordinal (cumulative-link) family: ML fits equal to ``ordinal::clmm`` (tests/reference/
make_reference_ordinal.R), its hand-written eta derivatives against finite differences of the
one log-density, category probabilities, predictions, simulation and the response boundary."""
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm.families import get_family

REF = Path(__file__).parent / "reference"
FITS = json.loads((REF / "ordinal_reference.json").read_text())
SLOPE_LEVELS = FITS["slope_levels"]
FITS = FITS["fits"]
#: the references the default suite checks (the others: the slow mark; soup has 1847 rows, 185 levels)
FAST = ["wine_logit_laplace", "wine_logit_agq10", "wine_probit_laplace", "wine_probit_agq10",
        "slope_logit_laplace"]


def _data(name: str) -> pd.DataFrame:
    d = pd.read_csv(REF / name)
    resp = d.columns[0]
    levels = SLOPE_LEVELS if name == "ordinal_slope.csv" else sorted(d[resp].unique())
    d[resp] = pd.Categorical(d[resp], categories=levels, ordered=True)
    for c in d.columns[1:]:
        if d[c].dtype == object or c in ("judge", "RESP", "g"):
            d[c] = d[c].astype(str)
    return d


def _fit(key):
    ref = FITS[key]
    m = bg.GLMM(ref["formula"], _data(ref["data"]), family="ordinal", link=ref["link"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return m.fit_ml(n_agq=int(ref["nAGQ"])), ref


def _check(key):
    r, ref = _fit(key)
    assert r.loglik > ref["logLik"] - 1e-5, (key, r.loglik, ref["logLik"])
    se = r.se
    for nm, est in ref["beta"].items():
        assert abs(r.fixef[nm] - est) < 0.01 * ref["beta_se"][nm], (key, nm, r.fixef[nm], est)
        # (logit Laplace SEs differ from clmm's by up to 1.2% on wine; every other fit within 0.3%)
        assert se[nm] == pytest.approx(ref["beta_se"][nm], rel=1.5e-2)
    dt = r.dispersion_table()
    for nm, est in ref["thresholds"].items():
        assert abs(dt.loc[nm, "Estimate"] - est) < 0.01 * ref["threshold_se"][nm], (key, nm)
        assert dt.loc[nm, "SE(log)"] == pytest.approx(ref["threshold_se"][nm], rel=1.5e-2)
    vc = r.varcorr
    for lab, sd in ref["re_sd"].items():
        grp, var = lab.split(":", 1)
        got = vc[(vc.grp == grp) & (vc.var1 == var) & vc.var2.isna()].sdcor.iloc[0]
        assert got == pytest.approx(sd, rel=2e-3, abs=1e-3), (key, lab, got, sd)
    for grp, rho in (ref["re_corr"] or {}).items():  # the random-slope model's correlation
        got = vc[(vc.grp == grp) & vc.var2.notna()].sdcor.iloc[0]
        assert got == pytest.approx(rho, abs=1e-3), (key, grp, got, rho)
    return r


@pytest.mark.parametrize("key", FAST)
def test_clmm_reference(key):
    _check(key)


@pytest.mark.slow
@pytest.mark.parametrize("key", [k for k in FITS if k not in FAST])
def test_clmm_reference_slow(key):
    _check(key)


def test_summary_predict_simulate_lrt():
    r, _ = _fit("wine_logit_laplace")
    text = str(r)
    assert "1|2" in text
    probs = r.predict(kind="probs")
    assert list(probs.columns) == ["1", "2", "3", "4", "5"]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    mean = r.predict(kind="mean")
    np.testing.assert_allclose(mean, probs.to_numpy() @ np.arange(1, 6), rtol=1e-12)
    new = pd.DataFrame({"temp": ["cold", "warm"], "contact": ["no", "yes"], "judge": ["1", "1"]})
    pn = r.predict(new, kind="probs")
    assert pn.shape == (2, 5) and pn.iloc[1, 4] > pn.iloc[0, 4]  # warm + contact: higher ratings
    sims = r.simulate(3, random_seed=1)
    assert sims.shape == (72, 3) and set(np.unique(sims.to_numpy())) <= {0.0, 1.0, 2.0, 3.0, 4.0}
    r0 = bg.GLMM("rating ~ temp + (1|judge)", _data("ordinal_wine.csv"), family="ordinal").fit_ml()
    tab = bg.lrt(r0, r)
    assert tab.df == 1 and tab.chisq == pytest.approx(2 * (r.loglik - r0.loglik), rel=1e-9)
    assert 0.0 < tab.p_value < 0.01


def _fam(link, K=4):
    return get_family("ordinal", link).for_response(pd.Series(np.arange(K, dtype=float)), "y")[1]


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_eta_derivs_finite_differences(link):
    fam = _fam(link)
    taus = {"0|1": -1.3, "1|2": 0.2, "2|3": 1.9}
    y = np.repeat(np.arange(4.0), 7)
    eta = np.tile(np.array([-8.0, -2.5, -0.4, 0.0, 0.7, 3.0, 9.0]), 4)
    d1, w, fisher = fam.eta_derivs(y, eta, **taus)
    h = 1e-5
    ll = lambda e: fam.loglik(y, e, **taus)
    np.testing.assert_allclose(d1, (ll(eta + h) - ll(eta - h)) / (2 * h), rtol=1e-6, atol=1e-8)
    # the second derivative against differences of the (just checked) first
    d1f = lambda e: fam.eta_derivs(y, e, **taus)[0]
    np.testing.assert_allclose(w, -(d1f(eta + h) - d1f(eta - h)) / (2 * h), rtol=1e-6, atol=1e-9)
    assert np.all(w >= 0) and np.all(fisher >= 0)  # log-concave F: the log-density is concave in eta
    # the expected information: E[w] over the categories at each eta
    e1 = eta[:7]
    p = fam.category_probs(e1, **taus)
    ew = sum(p[:, c] * fam.eta_derivs(np.full(7, float(c)), e1, **taus)[1] for c in range(4))
    np.testing.assert_allclose(fisher[:7], ew, rtol=1e-8, atol=1e-12)  # (P_c by difference: tails to 1e-15)


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_aux_eta_derivs_against_finite_differences(link):
    # the closed-form threshold derivatives the Laplace gradient takes (Family.aux_eta_derivs)
    # against central differences of eta_derivs and loglik, every category and both tails
    fam = _fam(link)
    names = ["0|1", "1|2", "2|3"]
    tau = np.array([-1.3, 0.2, 1.9])
    y = np.repeat(np.arange(4.0), 7)
    eta = np.tile(np.array([-6.0, -2.5, -0.4, 0.0, 0.7, 3.0, 6.0]), 4)
    W_eta, l_v, r_v, W_v = fam.aux_eta_derivs(y, eta, **dict(zip(names, tau)))
    h = 1e-5
    at = lambda t: dict(zip(names, t))
    wd = lambda e: fam.eta_derivs(y, e, **at(tau))[1]
    np.testing.assert_allclose(W_eta, (wd(eta + h) - wd(eta - h)) / (2 * h), rtol=1e-5, atol=1e-8)
    for k in range(3):
        e = np.zeros(3)
        e[k] = h
        lp, lm = fam.loglik(y, eta, **at(tau + e)), fam.loglik(y, eta, **at(tau - e))
        (dp, wp, _), (dm, wm, _) = fam.eta_derivs(y, eta, **at(tau + e)), fam.eta_derivs(y, eta, **at(tau - e))
        np.testing.assert_allclose(l_v[:, k], (lp - lm) / (2 * h), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(r_v[:, k], (dp - dm) / (2 * h), rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(W_v[:, k], (wp - wm) / (2 * h), rtol=1e-5, atol=1e-8)
    # a row moves with its two bounding thresholds only
    far = np.abs(np.arange(3)[None, :] - y[:, None] + 0.5) > 1.0
    assert np.all(l_v[far] == 0.0) and np.all(W_v[far] == 0.0)
    # PIRLS's Newton weights without the expected information: eta_derivs' first two
    d1, w, _ = fam.eta_derivs(y, eta, **at(tau))
    d1s, ws = fam.eta_score_weight(y, eta, **at(tau))
    np.testing.assert_array_equal(d1s, d1)
    np.testing.assert_array_equal(ws, w)


def test_laplace_gradient_matches_deviance_differences():
    # the analytic Laplace gradient (thresholds included) against 5-point differences of the
    # deviance at the wine fit: the closed form is exact, finite differences of the rows were
    # ~1e-8 off in the threshold coordinates
    from bayes_glmm.ml import laplace, linalg
    from bayes_glmm.ml.auxpar import aux_coords
    from bayes_glmm.ml.pirls import make_response

    res, ref = _fit("wine_logit_laplace")
    m = bg.GLMM(ref["formula"], _data(ref["data"]), family="ordinal", link=ref["link"])
    x = np.concatenate([res.fit.theta, res.fit.beta, aux_coords(m.spec.family, res.fit.aux)])
    resp, s = make_response(m.spec), linalg.build_structure(m.spec.terms)
    slices = laplace.theta_layout(m.spec.terms)[0]
    g = laplace.make_devgrad(resp, s, m.spec.terms, slices, 1, {})(x)[1]
    dev = laplace.make_deviance(resp, s, m.spec.terms, slices, 1, {})
    h, gf = 1e-3, np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        gf[i] = (-dev(x + 2 * e) + 8 * dev(x + e) - 8 * dev(x - e) + dev(x - 2 * e)) / (12 * h)
    np.testing.assert_allclose(g, gf, rtol=0, atol=1e-9)


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_probabilities_sum_to_one_and_tails(link):
    fam = _fam(link)
    taus = {"0|1": -1.3, "1|2": 0.2, "2|3": 1.9}
    eta = np.array([-40.0, -5.0, 0.0, 5.0, 40.0])
    p = fam.category_probs(eta, **taus)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    ll = fam.loglik(np.array([0.0, 3.0, 1.0]), np.array([-40.0, 40.0, 0.0]), **taus)
    assert np.all(np.isfinite(ll)) and ll[0] > -1e-6 and ll[1] > -1e-6


def test_response_boundary():
    d = _data("ordinal_wine.csv")
    before = d.copy()
    m = bg.GLMM("rating ~ temp + contact + (1|judge)", d, family="cumulative")
    pd.testing.assert_frame_equal(d, before)
    assert m.spec.fixed_names == ("tempwarm", "contactyes")
    assert [a.name for a in m.family.aux_params] == ["1|2", "2|3", "3|4", "4|5"]
    txt = d.assign(rating=d.rating.astype(str).map({"1": "a", "2": "b", "3": "c", "4": "d", "5": "e"}))
    with pytest.raises(ValueError, match="ordered Categorical"):
        bg.GLMM("rating ~ temp + (1|judge)", txt, family="ordinal")
    two = d.assign(rating=(d.rating.cat.codes > 2).astype(int))
    with pytest.raises(ValueError, match="bernoulli"):
        bg.GLMM("rating ~ temp + (1|judge)", two, family="ordinal")
    gap = d.assign(rating=pd.Categorical(d.rating.astype(int), categories=[1, 2, 3, 4, 5, 6], ordered=True))
    with pytest.raises(ValueError, match="never observed"):
        bg.GLMM("rating ~ temp + (1|judge)", gap, family="ordinal")
    with pytest.raises(ValueError, match="removes the intercept"):
        bg.GLMM("rating ~ 0 + temp + (1|judge)", d, family="ordinal")
    null = bg.GLMM("rating ~ 1 + (1|judge)", d, family="ordinal")  # no predictor: X has no column
    assert null.spec.p == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.all(np.diff(null.fit_ml().dispersion.to_numpy()) > 0)
    num = bg.GLMM("rating ~ temp + (1|judge)", d.assign(rating=d.rating.astype(int)), family="ordinal")
    assert [a.name for a in num.family.aux_params] == ["1|2", "2|3", "3|4", "4|5"]


def test_bayesian_smoke_native():
    """NUTS on the compiled density: the thresholds by name, ordered, predictions on both scales."""
    d = _data("ordinal_wine.csv")
    m = bg.GLMM("rating ~ temp + contact + (1|judge)", d, family="ordinal",
                priors={"1|2": bg.Prior("Normal", mu=-1.0, sigma=2.0)})
    assert m.resolved_priors["2|3"].name == "StudentT" and m.resolved_priors["1|2"].name == "Normal"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = m.sample(draws=150, tune=150, chains=1, random_seed=3, progressbar=False)
    post = r.idata.posterior
    taus = np.stack([np.asarray(post[n]).ravel() for n in ["1|2", "2|3", "3|4", "4|5"]], axis=-1)
    assert np.all(np.diff(taus, axis=-1) > 0)
    assert r.fixef["tempwarm"] > 1.0  # warm wine is rated higher (ML 3.06, SE 0.60)
    probs = r.predict(kind="probs")
    assert list(probs.columns) == ["1", "2", "3", "4", "5"]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-10)
    assert np.all((r.predict(kind="mean") > 1.0) & (r.predict(kind="mean") < 5.0))


def test_ordered_prior_graph_draws_are_sorted():
    m = bg.GLMM("rating ~ temp + (1|judge)", _data("ordinal_wine.csv"), family="ordinal")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pri = m.prior_predictive(draws=50, random_seed=2)
    thr = np.asarray(pri.prior["thresholds"]).reshape(-1, 4)
    assert np.all(np.diff(thr, axis=-1) > 0)
    assert set(np.unique(np.asarray(pri.prior_predictive["y"]))) <= {0, 1, 2, 3, 4}


def test_teaching_tools_run_or_refuse_clearly():
    from bayes_glmm import teaching as tg

    m = bg.GLMM("rating ~ temp + contact + (1|judge)", _data("ordinal_wine.csv"), family="ordinal")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ml = m.fit_ml()
        assert "half-normal" in tg.default_sd_priors(m)
        s = tg.prior_predictive_summary(m, draws=40, random_seed=1)
        assert s is not None
        assert tg.prior_sensitivity(m, ml=ml) is not None
        assert tg.pooling(m, ml=ml).attrs["scale"].startswith("latent")  # tests/test_ordinal_teaching.py


def test_auto_centering_has_no_mean_variance_view_of_categories():
    """centered='auto' measures a term by GLM group means; ordered categories have none (it used
    to call the family's variance function when the mean codes fell inside (0, 1))."""
    rng = np.random.default_rng(0)
    g = np.repeat([f"g{i}" for i in range(12)], 8)
    y = np.where(rng.random(g.size) < 0.1, 2, rng.integers(0, 2, g.size))
    d = pd.DataFrame({"y": y, "x": rng.normal(size=g.size), "g": g})
    m = bg.GLMM("y ~ x + (1 | g)", d, family="ordinal")
    assert m.centered_terms == {"g": False}


def test_profile_interval_of_the_first_threshold_only():
    r, ref = _fit("wine_probit_laplace")
    with pytest.warns(UserWarning, match="2|3: an ordered parameter"):
        ci = r.confint(method="profile", parm=["1|2", "2|3"])
    lo, hi = ci.loc["1|2"]
    est, se = ref["thresholds"]["1|2"], ref["threshold_se"]["1|2"]
    assert lo < est < hi and 2.5 * se < hi - lo < 6.0 * se  # about the Wald width 3.9 SE
    assert ci.loc["2|3"].isna().all()


def test_anova_takes_the_intercept_the_thresholds_hold():
    """Type I and III Wald tests are those of the formula with its intercept (ordinal drops its
    column): wine is balanced, so both equal the z^2 of the additive model's coefficients."""
    r, _ = _fit("wine_logit_laplace")
    z2 = (r.fixef / r.se) ** 2
    for kind in (1, 3):
        tab = r.anova(type=kind)
        np.testing.assert_allclose(tab.loc[["temp", "contact"], "F"].to_numpy(),
                                   z2[["tempwarm", "contactyes"]].to_numpy(), rtol=1e-10)


def test_marginal_coefficients_refuse_ordered_categories():
    """marginal_means / marginal_effects take ordinal fits (tests/test_ordinal_teaching.py);
    marginal coefficients (a least-squares fit to g(E[y])) have no ordinal form."""
    r, _ = _fit("wine_probit_laplace")
    with pytest.raises(ValueError, match="ordered categorical"):
        bg.marginal_coefficients(r)

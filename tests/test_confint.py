"""Confidence intervals (Wald, profile, parametric bootstrap) and simulate().

Profile limits are compared with lme4's ``confint(m, method = "profile")`` stored in
tests/reference/confint_reference.json (made by make_reference_confint.R, data included so
R is never needed): every limit within ``PROFILE_TOL`` (2e-3) of lme4's interval width.
lme4 inverts a spline through a grid of profile points, we solve for the crossings, so
the two agree to lme4's interpolation and optimizer accuracy (~1e-4 of the width).
"""
import functools
import json
import pathlib

import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm.ml.inference.profile import param_index, param_values

REF = json.loads((pathlib.Path(__file__).parent / "reference" / "confint_reference.json").read_text())
PROFILE_TOL = 2e-3

SLEEP = "Reaction ~ Days + (Days | Subject)"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"

_FACTORS = ("Subject", "herd", "period", "ID", "g")


def dataset(name: str) -> pd.DataFrame:
    df = pd.DataFrame(REF["data"][name])
    for col in _FACTORS:
        if col in df:
            # R's factor level order: numeric codes sorted numerically
            levels = sorted(df[col].unique(), key=lambda v: (len(str(v)), str(v)))
            df[col] = pd.Categorical(df[col], categories=levels)
    return df


@functools.lru_cache(maxsize=None)
def fitted(key: str):
    r = REF["fits"][key]
    model = bg.GLMM(r["formula"], dataset(r["data"]), family=r["family"])
    if r["family"] == "gaussian":
        return model.fit_ml(reml=bool(r["reml"]))
    return model.fit_ml(n_agq=int(r["n_agq"]))


@functools.lru_cache(maxsize=None)
def profiled(key: str):
    return fitted(key).confint(method="profile")


def check_against_lme4(key: str):
    r = REF["fits"][key]
    ci = profiled(key)
    ref = pd.DataFrame({"lower": r["lower"], "upper": r["upper"]}, index=r["names"])
    assert set(ci.index) == set(ref.index)
    ci = ci.loc[ref.index]
    width = (ref["upper"] - ref["lower"]).to_numpy()
    err = np.abs(ci.to_numpy() - ref.to_numpy()) / width[:, None]
    worst = pd.DataFrame(err, index=ref.index, columns=["lower", "upper"])
    assert np.all(err < PROFILE_TOL), f"{key}: |ours - lme4| / width:\n{worst}\nours:\n{ci}\nlme4:\n{ref}"
    return worst


def test_reference_data_match_bundled_datasets():
    # the bundled copies are the R data the reference used (so the docs' examples agree)
    for name in ("sleepstudy", "cbpp"):
        assert REF["same_as_bundled"][name] is True
        ours = bg.datasets.load(name)
        ref = dataset(name)
        for col in ref:
            np.testing.assert_array_equal(ours[col].astype(str).to_numpy(), ref[col].astype(str).to_numpy())


@pytest.mark.parametrize("key", ["sleepstudy_ml", "sleepstudy_reml"])
def test_profile_lmm_matches_lme4(key):
    check_against_lme4(key)


def test_profile_reml_uses_ml_deviance_like_lme4():
    # lme4 profiles REML fits on the ML deviance: the two sleepstudy intervals coincide
    a, b = profiled("sleepstudy_reml"), profiled("sleepstudy_ml")
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-6)


@pytest.mark.parametrize("key", ["cbpp_laplace", "cbpp_agq9"])
def test_profile_glmm_matches_lme4(key):
    check_against_lme4(key)


@pytest.mark.slow
def test_profile_glmm_agq_toenail_matches_lme4():
    check_against_lme4("toenail_agq9")


def test_profile_index_order_and_columns():
    ci = profiled("sleepstudy_ml")
    assert list(ci.columns) == ["lower", "upper"]
    assert list(ci.index) == ["(Intercept)", "Days", "sd_(Intercept)|Subject", "cor_(Intercept).Days|Subject",
                              "sd_Days|Subject", "sigma"]
    res = fitted("sleepstudy_ml")
    est = pd.Series(param_values(res.spec, res.fit), index=param_index(res.spec))
    vc = res.varcorr.set_index(["var1", "var2"], drop=False)["sdcor"]
    assert est["cor_(Intercept).Days|Subject"] == vc[("(Intercept)", "Days")]
    assert np.all(ci["lower"] < est) and np.all(est < ci["upper"])
    assert ci.attrs["method"] == "profile" and ci.attrs["level"] == 0.95


def test_profile_boundary_sd_at_zero_has_lower_limit_zero():
    res = fitted("singular_reml")
    assert res.is_singular
    r = REF["fits"]["singular_reml"]
    ci = profiled("singular_reml")
    assert ci.loc["sd_(Intercept)|g", "lower"] == 0.0
    assert r["lower"][r["names"].index("sd_(Intercept)|g")] == 0.0
    check_against_lme4("singular_reml")


def test_profile_level_changes_width_and_parm_subset():
    res = fitted("cbpp_laplace")
    ci90 = res.confint(level=0.90, method="profile", parm=["period2", "sd_(Intercept)|herd"])
    ci95 = profiled("cbpp_laplace").loc[ci90.index]
    assert list(ci90.index) == ["period2", "sd_(Intercept)|herd"]
    assert np.all(ci90["lower"] > ci95["lower"]) and np.all(ci90["upper"] < ci95["upper"])


def test_wald_fixed_effects_and_nan_variances():
    res = fitted("sleepstudy_reml")
    ci = res.confint()
    z = 1.959963984540054
    np.testing.assert_allclose(ci.loc[res.fixef.index, "lower"], res.fixef - z * res.se, rtol=1e-12)
    np.testing.assert_allclose(ci.loc[res.fixef.index, "upper"], res.fixef + z * res.se, rtol=1e-12)
    assert ci.loc[["sd_(Intercept)|Subject", "sigma"]].isna().all().all()
    # lme4 (broom): Wald interval of the intercept 238.029221 to 264.78099
    np.testing.assert_allclose(ci.loc["(Intercept)"], [238.029221, 264.78099], atol=1e-5)


@functools.lru_cache(maxsize=None)
def boot_cbpp(n_jobs: int):
    return fitted("cbpp_laplace").bootstrap(n=30, random_seed=2024, progressbar=False, n_jobs=n_jobs)


def test_bootstrap_replicates_columns_and_determinism():
    res = fitted("cbpp_laplace")
    b1 = boot_cbpp(1)
    assert list(b1.columns) == list(profiled("cbpp_laplace").index)
    assert b1.shape == (30, 5) and b1.attrs["n_failed"] == 0
    assert np.all(np.isfinite(b1.to_numpy()))
    # same seed, same replicates, whatever the number of worker processes
    pd.testing.assert_frame_equal(b1, boot_cbpp(2))
    # a different seed gives different replicates
    b3 = res.bootstrap(n=3, random_seed=7, progressbar=False)
    assert not np.allclose(b3.to_numpy(), b1.iloc[:3].to_numpy())
    # the replicates scatter around the estimates
    est = pd.Series(b1.attrs["estimate"])
    assert list(est.index) == list(b1.columns)
    assert np.all(np.abs(b1.mean() - est) < 3 * b1.std())


def test_bootstrap_percentile_interval_contains_estimate():
    res = fitted("cbpp_laplace")
    ci = res.confint(method="boot", n_boot=30, random_seed=2024)
    b = boot_cbpp(1)
    np.testing.assert_allclose(ci["lower"], b.quantile(0.025))
    est = pd.Series(b.attrs["estimate"])
    assert np.all(ci["lower"] <= est) and np.all(est <= ci["upper"])
    assert ci.attrs["method"] == "boot"


def test_simulate_matches_bootstrap_responses():
    res = fitted("cbpp_laplace")
    sim = res.simulate(n=3, random_seed=5)
    assert list(sim.columns) == ["sim_1", "sim_2", "sim_3"] and len(sim) == res.nobs
    y = sim.to_numpy()
    trials = res.spec.trials[:, None]
    assert np.all((y >= 0) & (y <= trials)) and np.all(y == np.round(y))
    pd.testing.assert_frame_equal(sim, res.simulate(n=3, random_seed=5))
    # an LMM: continuous, centred near the fitted mean
    lmm = fitted("sleepstudy_reml")
    s = lmm.simulate(n=200, random_seed=1)
    assert abs(s.to_numpy().mean() - lmm.spec.y.mean()) < 10


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "bogus"}, "method='bogus'"),
    ({"level": 1.5}, "level=1.5"),
    ({"level": 0.0}, "level=0.0"),
    ({"method": "boot", "n_boot": 5}, "n_boot=5"),
    ({"parm": ["nope"]}, "unknown parameter"),
])
def test_confint_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fitted("cbpp_laplace").confint(**kwargs)


def test_bootstrap_and_simulate_errors():
    res = fitted("cbpp_laplace")
    with pytest.raises(ValueError, match="n=0"):
        res.bootstrap(n=0)
    with pytest.raises(ValueError, match="n_jobs=0"):
        res.bootstrap(n=10, n_jobs=0)
    with pytest.raises(ValueError, match="n=-1"):
        res.simulate(n=-1)


@functools.lru_cache(maxsize=None)
def counts_data() -> pd.DataFrame:
    """30 groups x 8 rows: a Gamma response (shape 3) and zero-inflated NB2 counts (theta 2)."""
    from bayes_glmm.families import get_family
    rng = np.random.default_rng(11)
    g = np.repeat(np.arange(30), 8)
    x = rng.normal(size=g.size)
    eta = 0.5 + 0.4 * x + rng.normal(0, 0.5, 30)[g]
    nb = get_family("negbinomial").random(eta, rng, disp=2.0)
    return pd.DataFrame({"g": [f"g{k}" for k in g], "x": x,
                         "y_gamma": get_family("gamma").random(eta, rng, disp=3.0),
                         "y_nb": np.where(rng.random(g.size) < 0.25, 0, nb)})


def test_profile_dispersion_family():
    res = bg.GLMM("y_gamma ~ x + (1 | g)", counts_data(), family="gamma").fit_ml()
    ci = res.confint(method="profile")
    assert list(ci.index) == ["(Intercept)", "x", "sd_(Intercept)|g", "shape"]
    est = pd.Series(param_values(res.spec, res.fit), index=param_index(res.spec))
    assert est["shape"] == pytest.approx(res.dispersion["shape"])
    assert np.all(ci["lower"] < est) and np.all(est < ci["upper"])
    # the profile and Wald intervals of a well-determined fixed effect nearly coincide
    wald = res.confint()
    np.testing.assert_allclose(ci.loc["x"], wald.loc["x"], rtol=0.02)
    assert wald.loc["shape"].isna().all()


def test_zero_inflated_names_wald_and_bootstrap_columns():
    res = bg.GLMM("y_nb ~ x + (1 | g)", counts_data(), family="negbinomial", zi="~ 1").fit_ml()
    names = ["(Intercept)", "x", "sd_(Intercept)|g", "theta", "zi_(Intercept)"]
    wald = res.confint()
    assert list(wald.index) == names
    z = 1.959963984540054
    np.testing.assert_allclose(wald.loc["zi_(Intercept)", "lower"],
                               res.fixef_zi.iloc[0] - z * res.se_zi.iloc[0])
    ci = res.confint(method="profile", parm=["theta", "zi_(Intercept)"])
    assert ci.loc["theta", "lower"] < res.dispersion["theta"] < ci.loc["theta", "upper"]
    # 25% structural zeros in 240 NB counts: the profile towards no zero inflation levels
    # off below the cut (the NB absorbs the zeros), so the lower limit is reported as NaN
    # with a note rather than guessed
    lo, hi = ci.loc["zi_(Intercept)"]
    assert res.fixef_zi.iloc[0] < hi and (np.isnan(lo) or lo < res.fixef_zi.iloc[0])
    assert np.isnan(lo) == any(n.startswith("zi_(Intercept): the profile did not reach") for n in ci.attrs["notes"])
    boot = res.bootstrap(n=3, random_seed=1, progressbar=False)
    assert list(boot.columns) == names and boot.attrs["n_failed"] == 0

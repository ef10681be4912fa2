"""Priors that say what they do (issue 16): constant columns, extreme parameters, and
prior_sensitivity rows that are posteriors or say why not."""
import re
import warnings

import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm.priors import Prior, as_prior, resolve_priors
from bayes_glmm.teaching import prior_sensitivity
from bayes_glmm.teaching.sensitivity import K_MAX


def _counts(x_scale=1.0, n=120, G=12, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    g = np.repeat(np.arange(G), n // G)
    return pd.DataFrame({"x": z * x_scale, "c": 3.0, "g": g,
                         "y": rng.poisson(np.exp(0.3 + 0.5 * z + rng.normal(scale=0.4, size=G)[g]))})


# ------------------------------------------------------------------ constant only at range zero
@pytest.mark.parametrize("scale", [1e-13, 1e-200, 1e-6, 1.0, 1e12, 1e200])
def test_slope_prior_scales_with_any_sd(scale):
    """2.5 / sd(x) whatever the units; before, an SD below 1e-12 counted as a constant column
    and got Normal(0, 2.5)."""
    df = _counts(scale)
    m = bg.GLMM("y ~ x + (1 | g)", df, family="poisson")
    sd = scale * float(np.std(_counts(1.0).x))
    assert m.resolved_priors["x"].args["sigma"] == pytest.approx(2.5 / sd, rel=1e-9)
    from bayes_glmm.bayes.density import column_scales
    assert column_scales(m.spec.X, 0)[1] == pytest.approx(sd if not 1e-3 <= sd <= 1e3 else 1.0, rel=1e-9)


def test_zi_and_random_slope_priors_scale_with_tiny_sd():
    df = _counts(1e-13)
    df.loc[df.index[:30], "y"] = 0
    m = bg.GLMM("y ~ x + (x || g)", df, family="poisson", zi="~ x")
    sd = float(np.std(df.x))
    assert m.resolved_priors["zi_x"].args["sigma"] == pytest.approx(2.5 / sd, rel=1e-12)
    assert np.asarray(m.resolved_priors["sd_g"].args["sigma"])[1] == pytest.approx(2.5 / sd, rel=1e-12)


def test_only_a_zero_range_column_counts_as_constant():
    from bayes_glmm.priors import default_scales

    df = _counts()
    df["c2"] = df.c + np.r_[1e-14, np.zeros(len(df) - 1)]  # not constant: one value differs
    m = bg.GLMM("y ~ 0 + c + c2 + (1 | g)", df, family="poisson")
    sc = default_scales(m.spec)
    assert sc["x_sd"][0] == 1.0  # range 0: a constant column
    assert sc["x_sd"][1] == pytest.approx(np.std(df.c2.to_numpy()), rel=1e-6)


# ------------------------------------------------------------------ extreme and invalid parameters
@pytest.mark.parametrize("prior, where", [
    (Prior("Gamma", mu=1e200, sigma=1e-200), "alpha = mu^2 / sigma^2 = inf"),
    (Prior("InverseGamma", mu=1e200, sigma=1e-200), "alpha = 2 + mu^2 / sigma^2 = inf"),
    (Prior("Gamma", mu=1e-200, sigma=1e200), "alpha = mu^2 / sigma^2 = 0"),
    (Prior("Exponential", scale=1e-320), "lam = 1 / scale = inf"),
])
def test_overflowing_prior_names_key_and_parameter(prior, where):
    """Before: a bare OverflowError from PyMC, naming no prior."""
    df = _counts()
    with pytest.raises(ValueError, match=f"prior for 'sd_g': {prior.name}\\(.*gives {re.escape(where)}"):
        bg.GLMM("y ~ x + (1 | g)", df, family="poisson", priors={"sd_g": prior})


def test_invalid_scale_given_later_names_the_key():
    """A Prior changed after construction, or a duck-typed (bambi) prior, is checked with its key."""
    p = Prior("Normal", mu=0, sigma=1)
    p.args["sigma"] = -1
    with pytest.raises(ValueError, match=r"prior for 'x': Prior\('Normal'\) parameter sigma=-1 must be positive"):
        resolve_priors(bg.GLMM("y ~ x + (1 | g)", _counts(), family="poisson").spec, {"x": p})

    class BambiLike:
        name, args = "Normal", {"mu": 0, "sigma": -1}
    with pytest.raises(ValueError, match=r"prior for 'x'.*sigma=-1 must be positive"):
        as_prior(BambiLike(), "x")


def test_ordinary_gamma_mu_sigma_still_accepted():
    df = _counts()
    m = bg.GLMM("y ~ x + (1 | g)", df, family="poisson", priors={"sd_g": Prior("Gamma", mu=1.0, sigma=0.5)})
    assert m.resolved_priors["sd_g"] == Prior("Gamma", mu=1.0, sigma=0.5)


# ------------------------------------------------------------------ prior_sensitivity
def _correlated_lmm(seed=0, G=12, per=8):
    rng = np.random.default_rng(seed)
    n = G * per
    g = np.repeat(np.arange(G), per)
    x = rng.normal(size=n)
    b0, b1 = rng.normal(scale=1.0, size=G), rng.normal(scale=0.5, size=G)
    y = 1 + 0.5 * x + b0[g] + b1[g] * x + rng.normal(scale=0.5, size=n)
    return bg.GLMM("y ~ x + (1 + x | g)", pd.DataFrame({"x": x, "g": g, "y": y}))


@pytest.mark.slow
def test_variance_prior_on_correlated_term_same_density_in_every_backend():
    """The refit of prior_sensitivity samples a var_ prior on a correlated term: the graph, the
    NumPy density and the generated C agree on it (as tests/test_bayes_contract.py for the rest)."""
    from bayes_glmm.bayes import native
    from bayes_glmm.bayes.density import GlmmDensity
    from bayes_glmm.bayes.graph import build_pymc_model

    m = _correlated_lmm()
    pri = dict(m.resolved_priors)
    pri.pop("sd_g")
    pri["var_g"] = Prior("InverseGamma", alpha=3.0, beta=[2.0, 0.5])
    pm_model = build_pymc_model(m.spec, pri, m.centered_terms)
    d = GlmmDensity(m.spec, pri, m.centered_terms)
    sl = d.value_var_slices()
    assert set(sl) == {v.name for v in pm_model.value_vars}
    ip = pm_model.initial_point()
    logp, dlogp = pm_model.compile_logp(), pm_model.compile_dlogp()
    nm = native.NativeModel(d) if native.available() else None
    rng = np.random.default_rng(0)
    diffs = []
    for i in range(3):
        x = d.initial_point(i) + rng.normal(scale=0.5, size=d.ndim)
        pt = {k: np.asarray(x[sl[k]]).reshape(np.shape(ip[k])) for k in sl}
        flat, g_graph, pos = dlogp(pt), np.empty(d.ndim), 0
        for v in pm_model.value_vars:
            size = sl[v.name].stop - sl[v.name].start
            g_graph[sl[v.name]] = flat[pos:pos + size]
            pos += size
        lp, g = d.logp_grad(x)
        np.testing.assert_allclose(g, g_graph, rtol=1e-8, atol=1e-8 * np.abs(g_graph).max())
        row = [float(logp(pt)) - lp]
        if nm is not None:
            lpn, gn = nm.logp_grad(x)
            np.testing.assert_allclose(gn, g_graph, rtol=1e-8, atol=1e-8 * np.abs(g_graph).max())
            row.append(float(logp(pt)) - lpn)
        diffs.append(row)
    diffs = np.asarray(diffs)
    np.testing.assert_allclose(diffs - diffs[0], 0.0, atol=1e-8 * max(1.0, abs(float(logp(pt)))))


SENS_PRIORS = {
    "half-normal": Prior("HalfNormal", sigma=2.5),
    # close to the posterior: importance reweighting of the half-normal fit is reliable
    "ig-close": ("variance", Prior("InverseGamma", alpha=1.0, beta=0.3)),
    # SD ~ 3: far from the posterior (SDs about 1 and 0.5), Pareto k far above 0.7
    "ig-far": ("variance", Prior("InverseGamma", alpha=30.0, beta=300.0)),
}


def _sens(refit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prior_sensitivity(_correlated_lmm(), SENS_PRIORS, draws=300, tune=300, chains=2, random_seed=1,
                                 progressbar=False, reweight=True, refit=refit, ml=False)


def test_variance_prior_on_correlated_term_is_fitted_directly():
    """Before: resolve_priors refused var_ for a correlated term, so prior_sensitivity reweighted
    the SD fit and refitted through a private copy of the resolved priors.  Now the model takes
    the key, and each prior is its own NUTS fit."""
    m = _correlated_lmm()
    ig = Prior("InverseGamma", alpha=3.0, beta=[2.0, 0.5])
    assert "sd_g" not in m.with_priors({"var_g": ig}).resolved_priors
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = prior_sensitivity(m, {"ig": ("variance", ig)}, draws=100, tune=100, chains=1, random_seed=1,
                                progressbar=False, ml=False)
    assert (res.table["method"] == "NUTS").all() and res.fits["ig"] is not None
    assert res.sd_draws["ig"].shape == (100, 2) and np.all(res.sd_draws["ig"] > 0)
    with pytest.raises(ValueError, match="at least one SD prior"):
        prior_sensitivity(m, {"ig": ("variance", ig)}, reweight=True, ml=False)


def test_prior_sensitivity_refuses_unreliable_reweighting():
    """Before: the far prior's reweighted draws (Pareto k >> 0.7) were tabled and plotted as a
    posterior.  refit=False: NaN with the reason, no draws, not plotted."""
    res = _sens(refit=False)
    tab = res.table
    close, far = tab.loc["ig-close"], tab.loc["ig-far"]
    assert (close["pareto_k"] < K_MAX).all() and close["method"].str.startswith("PSIS").all()
    assert np.isfinite(close[["mean", "median", "q05", "q95"]].to_numpy()).all()
    assert (close["reason"] == "").all()
    assert (far["pareto_k"] > K_MAX).all()
    assert far[["mean", "median", "q05", "q95"]].isna().all().all()
    assert far["reason"].str.contains("Pareto k = .* > 0.7").all() and far["reason"].str.contains("refit=True").all()
    assert "ig-far" in res.unreliable and res.sd_draws["ig-far"].shape == (0, 2)
    pytest.importorskip("matplotlib")
    from bayes_glmm.postfit.plots import plot_prior_sensitivity

    fig = plot_prior_sensitivity(res)
    assert len(fig.axes) == 2 * 2  # two coefficients x the two priors with a posterior


def test_prior_sensitivity_refits_unreliable_reweighting_by_nuts():
    res = _sens(refit=True)
    tab = res.table
    far = tab.loc["ig-far"]
    assert far["method"].str.startswith("NUTS (refit").all() and (far["pareto_k"] > K_MAX).all()
    assert res.fits["ig-far"] is not None and not res.unreliable
    # a prior with SDs near 3 and 29 + 1 pseudo-observations dominates 12 groups: the posterior
    # SDs sit well above the half-normal fit's
    hn = tab.loc["half-normal"]
    assert (far["median"].to_numpy() > 1.5 * hn["median"].to_numpy()).all()
    assert tab.loc["ig-close", "method"].str.startswith("PSIS").all()

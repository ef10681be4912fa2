"""The Laplace-informed start of the native NUTS (``sample(init="laplace")``, issue 19 item 4).

The start only chooses where the chains begin and the metric the warm-up starts from; the
density is the same.  Checked here: the pieces (L-BFGS, the curvature, the starts) on small
models against closed forms and the ML fit, that both inits give the same posterior, and the
lean store of the random effects.  The calibration of the new default is the SBC
(``benchmarks/sbc.py --init laplace``, ``tests/test_sbc.py``), its agreement with an
independent NUTS ``tests/test_reference_posterior.py`` (both slow, both run the default).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm.bayes import native
from bayes_glmm.bayes.laplace_init import AUTO_ROWS, chain_starts, laplace_start, lbfgs, resolve_init

pytestmark = pytest.mark.skipif(not native.available(), reason="no C compiler")


def _bern(n_groups=60, per=8, seed=0, sd=0.8):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    x = rng.standard_normal(g.size)
    b = sd * rng.standard_normal(n_groups)
    y = (rng.random(g.size) < 1.0 / (1.0 + np.exp(-(-0.3 + 0.7 * x + b[g])))).astype(int)
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})


def _native(m):
    from bayes_glmm.bayes.sampling import _native_model

    return _native_model(m)


def test_lbfgs_minimizes_an_ill_conditioned_quadratic():
    rng = np.random.default_rng(1)
    d = np.exp(rng.uniform(-3, 3, 50))
    c = rng.standard_normal(50)

    def fg(x):
        r = x - c
        return 0.5 * float(np.sum(d * r * r)), d * r

    x = lbfgs(fg, np.zeros(50), 500)
    np.testing.assert_allclose(x, c, atol=1e-3)  # a start, not an estimate: stops at 1e-10 relative change


@pytest.mark.parametrize("centered", [False, True])
def test_effect_variances_are_the_ml_conditional_variances(centered):
    """At the ML scales, the random effects' initial metric is their conditional variance:
    lme4's condVar of the ML fit (b_sd^2), over sd^2 in the non-centred coordinates."""
    m = bg.GLMM("y ~ x + (1 | g)", _bern(), family="bernoulli", centered=centered)
    nat = _native(m)
    lap = laplace_start(m, nat.density, nat.logp_grad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = m.fit_ml()
    sd = float(np.sqrt(fit.covs[0][0, 0]))
    _t, scale, eff, _cen, _ = nat.density.terms[0]
    np.testing.assert_allclose(np.exp(lap.mode[scale.sl]), sd, rtol=1e-6)
    v = lap.inv_mass[eff.sl] * (1.0 if centered else sd ** 2)
    # the same conditional variances up to the fixed effects (ML's beta maximizes the
    # marginal likelihood, the start's the joint density at the ML scales)
    np.testing.assert_allclose(v, fit.fit.b_sd[0][:, 0] ** 2, rtol=0.05)
    # and the modes: b = sd * u (non-centred) or b (centred)
    b = lap.mode[eff.sl] * (1.0 if centered else sd)
    np.testing.assert_allclose(b, fit.fit.b[0][:, 0], atol=0.05 * np.max(np.abs(fit.fit.b[0])))
    assert np.all(lap.inv_mass > 0) and np.all(np.isfinite(lap.inv_mass))


def test_fixed_effect_variances_match_the_ml_standard_errors():
    """The Schur complement gives the fixed effects' marginal variances: close to the ML
    fit's vcov (on the sampler's centred design: the slope's coordinate is the slope)."""
    m = bg.GLMM("y ~ x + (1 | g)", _bern(n_groups=80, per=10, seed=3), family="bernoulli")
    nat = _native(m)
    lap = laplace_start(m, nat.density, nat.logp_grad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = m.fit_ml()
    blk = [b for b, cols in nat.density.fixed_blocks if b.name != "Intercept"][0]
    var_x = float(fit.vcov.values[1, 1]) * float(nat.density.xd[1]) ** 2
    np.testing.assert_allclose(lap.inv_mass[blk.sl][0], var_x, rtol=0.15)


def _crossed(n=6000, J=150, seed=4, sds=(1.0, 0.6)):
    rng = np.random.default_rng(seed)
    g, h, x = rng.integers(0, J, n), rng.integers(0, J, n), rng.standard_normal(n)
    eta = -0.3 + 0.6 * x + sds[0] * rng.standard_normal(J)[g] + sds[1] * rng.standard_normal(J)[h]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(int)
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g), "h": pd.Categorical(h)})


@pytest.mark.parametrize("centered", [False, {"g": "hierarchical", "h": True}])
def test_crossed_start_takes_em_scales_not_the_ml_fit(centered, monkeypatch):
    """With several random terms the start's SDs come from the Laplace-EM on the compiled
    density (the ML fit of a crossed design costs minutes at 10^5 rows): no ML fit is made,
    and the SDs land near the ML (Laplace) estimates (the EM's diagonal conditional variances
    and its Gaussian E-step leave them a few per cent low)."""
    m = bg.GLMM("y ~ x + (1 | g) + (1 | h)", _crossed(), family="bernoulli", centered=centered)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ml = [float(np.sqrt(c[0, 0])) for c in m.fit_ml().covs]
    nat = _native(m)

    def no_fit(*a, **k):
        raise AssertionError("fit_ml called")

    monkeypatch.setattr(bg.GLMM, "fit_ml", no_fit)
    lap = laplace_start(m, nat.density, nat.logp_grad)
    sds = [float(np.exp(lap.mode[scale.sl][0])) for _t, scale, *_ in nat.density.terms]
    np.testing.assert_allclose(sds, ml, rtol=0.12)
    assert np.all(lap.inv_mass > 0) and np.all(np.isfinite(lap.inv_mass))
    assert lap.n_grad < 3000  # hundreds of gradients, not an ML fit


def test_chain_starts_are_seeded_and_distinct():
    m = bg.GLMM("y ~ x + (1 | g)", _bern(), family="bernoulli")
    nat = _native(m)
    lap = laplace_start(m, nat.density, nat.logp_grad)
    a = chain_starts(lap, 3, 7, nat.logp_grad)
    b = chain_starts(lap, 3, 7, nat.logp_grad)
    c = chain_starts(lap, 3, 8, nat.logp_grad)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.allclose(a[0], a[1]) and not np.allclose(a[0], c[0])
    # a draw of the approximation: z-scores of the effects are standard normal
    _t, _scale, eff, _cen, _ = nat.density.terms[0]
    z = (a[0] - lap.mode)[eff.sl] / np.sqrt(lap.inv_mass[eff.sl])
    assert 0.6 < np.std(z) < 1.4


def test_both_inits_sample_the_same_posterior():
    """init="laplace" and init="random" on toenail-sized data: the posterior means of the
    fixed effects and the SD agree within Monte Carlo error (4 SE)."""
    m = bg.GLMM("y ~ x + (1 | g)", _bern(n_groups=40, per=10, seed=5), family="bernoulli")
    out = {}
    for init in ("laplace", "random"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = m.sample(draws=400, tune=300, chains=2, random_seed=11, progressbar=False, init=init,
                         log_likelihood=False)
        assert r.idata.posterior.attrs["init"] == init
        p = r.idata.posterior
        out[init] = {k: np.asarray(p[k]).reshape(-1, *p[k].shape[2:]) for k in ("beta", "sd_g")}
    for k in ("beta", "sd_g"):
        a, b = out["laplace"][k], out["random"][k]
        se = np.sqrt(a.var(0) / 150 + b.var(0) / 150)  # ~150 effective draws each, conservatively
        assert np.all(np.abs(a.mean(0) - b.mean(0)) < 4 * se), (k, a.mean(0), b.mean(0))


def test_auto_init_takes_laplace_on_large_data_only():
    small = bg.GLMM("y ~ x + (1 | g)", _bern(n_groups=10, per=5), family="bernoulli").spec
    large = bg.GLMM("y ~ x + (1 | g)", _bern(n_groups=AUTO_ROWS // 10, per=10), family="bernoulli").spec
    assert resolve_init("auto", small) == "random" and resolve_init("auto", large) == "laplace"
    assert resolve_init("laplace", small) == "laplace" and resolve_init("random", large) == "random"


def test_init_and_store_effects_are_checked():
    m = bg.GLMM("y ~ x + (1 | g)", _bern(n_groups=10, per=5), family="bernoulli")
    with pytest.raises(ValueError, match="init="):
        m.sample(draws=10, tune=10, chains=1, random_seed=1, init="mode", progressbar=False)
    with pytest.raises(ValueError, match="store_effects"):
        m.sample(draws=10, tune=10, chains=1, random_seed=1, store_effects="float16", progressbar=False)


@pytest.mark.parametrize("store", [True, "float32", False])
def test_store_effects(store):
    m = bg.GLMM("y ~ x + (1 | g)", _bern(n_groups=12, per=6), family="bernoulli")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = m.sample(draws=60, tune=60, chains=1, random_seed=2, progressbar=False, store_effects=store)
    p = r.idata.posterior
    if store is False:
        assert "b_g" not in p
    else:
        assert p["b_g"].dtype == (np.float64 if store is True else np.float32)
        assert p["b_g"].shape == (1, 60, 12, 1)
    # the log-likelihood is computed either way (from the effects before they are dropped)
    assert r.idata.log_likelihood["y"].shape == (1, 60, m.spec.n)
    assert np.all(np.isfinite(r.idata.log_likelihood["y"].values))

"""``centered="auto"`` and hierarchical centring of a data-rich ``(1 | g)`` term (issue 16).

The rule (:mod:`bayes_glmm.spec.centering`): a ``(1 | g)`` term is hierarchically centred when the
data pin each group's level down far more tightly than the groups spread (median
``I_j sd^2`` above :data:`~bayes_glmm.spec.centering.AUTO_THRESHOLD`, where the centred form starts
to win by measurement: ``benchmarks/bench_centering.py``); everything else keeps the non-centred form.
The layout itself (graph = NumPy density = C) is held by ``tests/test_bayes_contract.py``.
"""
import warnings

import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm.bayes.density import GlmmDensity, fixed_layout
from bayes_glmm.spec.centering import (AUTO_THRESHOLD, HIERARCHICAL, auto_parametrization, informativeness,
                                  level_scales, row_information)
from bayes_glmm.priors import resolve_centered
from bayes_glmm.spec.validate import InputTypeError


def _counts(level, seed=3, n=400, G=40, sd=0.4):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), n // G)
    x = rng.normal(size=n)
    h = rng.integers(0, 8, size=n)
    return pd.DataFrame({"x": x, "g": g, "h": h,
                         "y": rng.poisson(level * np.exp(0.2 * x + rng.normal(scale=sd, size=G)[g]))})


def _native_available():
    from bayes_glmm.bayes import native

    return native.available()


def test_informativeness_grows_with_the_counts_and_crosses_the_threshold():
    specs = [bg.GLMM("y ~ x + (1 | g)", _counts(lv), family="poisson").spec for lv in (0.3, 3.0, 1e3, 1e7)]
    med = [float(np.median(informativeness(sp, sp.terms[0]))) for sp in specs]
    assert med == sorted(med)
    # r_j = I_j sd^2 = (10 rows x mean count) x 0.4^2, roughly
    assert med[-1] == pytest.approx(10 * 1e7 * 0.16, rel=0.5)
    assert med[0] < AUTO_THRESHOLD < med[1]
    assert bg.GLMM("y ~ x + (1 | g)", _counts(0.3), family="poisson").centered_terms == {"g": False}
    assert bg.GLMM("y ~ x + (1 | g)", _counts(3.0), family="poisson").centered_terms == {"g": HIERARCHICAL}


def test_rows_without_trials_leave_the_measure_finite():
    """A binomial row of 0 out of 0 carries no weight: its group's informativeness stays finite
    (it was 0 / 0 = NaN, which made the group's sums NaN) and no RuntimeWarning leaks to the user."""
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(40), 10)
    trials = rng.integers(1, 12, 400)
    trials[::37] = 0
    y = rng.binomial(trials, 1.0 / (1.0 + np.exp(-2.0 * rng.normal(size=40)[g])))
    d = pd.DataFrame({"y": y, "n": trials, "g": g.astype(str)})
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        m = bg.GLMM("cbind(y, n - y) ~ 1 + (1 | g)", d, family="binomial")
        r = informativeness(m.spec, m.spec.terms[0])
    assert np.all(np.isfinite(r)) and np.median(r) > AUTO_THRESHOLD
    assert m.centered_terms == {"g": HIERARCHICAL}


@pytest.mark.parametrize("formula, data, family, choice", [
    ("Response ~ Month * Treatment + (1 | ID)", "toenail", "bernoulli", False),  # r = 0
    ("count ~ visit + (1 | id)", "epilepsy", "poisson", HIERARCHICAL),  # r = 22
    ("count ~ followup * group + offset(log(weeks)) + (1 | id)", "epilepsy", "poisson", HIERARCHICAL),  # 23
    ("count ~ followup * group + offset(log(weeks)) + (1 | id)", "epilepsy", "negbinomial", HIERARCHICAL),  # 10
    ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp", "binomial", HIERARCHICAL),  # 2.6
    ("Reaction ~ Days + (1 | Subject)", "sleepstudy", "gaussian", HIERARCHICAL),  # 6.5
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy", "gaussian", False),  # a vector term: never
])
def test_example_models_parametrization(formula, data, family, choice):
    """The default's choice for the models of the docs, with the fixed-effect layout they had
    (no coefficient is known to better than INFO_SD) and their random start (no term above
    MODE_START_THRESHOLD)."""
    df = bg.datasets.load(data)
    m = bg.GLMM(formula, df, family=family)
    assert all(v == choice for v in m.centered_terms.values()), m.centered_terms
    names = list(m.spec.fixed_names)
    plain = fixed_layout(m.spec.X, names, m.resolved_priors)
    scaled = fixed_layout(m.spec.X, names, m.resolved_priors, info=row_information(m.spec))
    np.testing.assert_array_equal(plain[2], scaled[2])
    assert not GlmmDensity(m.spec, m.resolved_priors, m.centered_terms).data_rich  # the same start


@pytest.mark.skipif(not _native_available(), reason="no C compiler")
def test_default_draws_are_those_of_the_chosen_parametrization():
    """``"auto"`` only picks coordinates: the default's draws are those of the explicit choice."""
    df = bg.datasets.load("epilepsy")
    f = "count ~ followup * group + offset(log(weeks)) + (1 | id)"
    kw = dict(draws=100, tune=100, chains=2, random_seed=5, progressbar=False, sampler="native")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = bg.GLMM(f, df, family="poisson").sample(**kw)
        b = bg.GLMM(f, df, family="poisson", centered={"id": HIERARCHICAL}).sample(**kw)
    for v in ("beta", "sd_id", "b_id"):
        np.testing.assert_array_equal(a.idata.posterior[v].values, b.idata.posterior[v].values)


def test_resolve_centered_choices_and_errors():
    df = _counts(1e6)
    m = bg.GLMM("y ~ x + (1 | g) + (1 | h)", df, family="poisson")
    # both terms are data-rich; the more informative one (g: 10 rows per level of a
    # spread-out term; h has no spread) is hierarchically centred
    r = {t.name: float(np.median(informativeness(m.spec, t))) for t in m.spec.terms}
    assert r["g"] > AUTO_THRESHOLD
    assert m.centered_terms["g"] == HIERARCHICAL
    assert m.centered_terms["h"] is (r["h"] > AUTO_THRESHOLD)
    assert resolve_centered(m.spec, False) == {"g": False, "h": False}
    assert resolve_centered(m.spec, {"h": True}) == {"g": HIERARCHICAL, "h": True}  # unnamed: auto
    assert resolve_centered(m.spec, {"g": False, "h": "auto"})["g"] is False
    assert resolve_centered(m.spec, {"h": "hierarchical"}) == {"g": True, "h": HIERARCHICAL}
    with pytest.raises(ValueError, match="only one term"):
        resolve_centered(m.spec, {"g": "hierarchical", "h": "hierarchical"})
    with pytest.raises(ValueError, match="must be True or False \\(or 'hierarchical', 'auto'\\)"):
        resolve_centered(m.spec, {"g": "centred"})
    with pytest.raises(InputTypeError, match="or 'auto' \\(the default\\)"):
        bg.GLMM("y ~ x + (1 | g)", df, family="poisson", centered="yes")
    for f in ("y ~ x + (x | g)", "y ~ 0 + x + (1 | g)", "y ~ x + (0 + x | g)"):
        with pytest.raises(ValueError, match="needs a \\(1 \\| group\\) term and a model with an intercept"):
            bg.GLMM(f, df, family="poisson", centered={"g": "hierarchical"})
    # without an intercept the richest term can only be centred
    assert auto_parametrization(bg.GLMM("y ~ 0 + x + (1 | g)", df, family="poisson", centered=False).spec) \
        == {"g": True}


def test_level_scales_are_the_crude_levels_and_their_posterior_sd():
    df = _counts(1e7)
    m = bg.GLMM("y ~ x + (1 | g)", df, family="poisson")
    a, s = level_scales(m.spec, m.spec.terms[0])
    lvl = np.log(df.groupby("g")["y"].mean().to_numpy())
    np.testing.assert_allclose(a, lvl, rtol=1e-12)
    np.testing.assert_allclose(s, 1 / np.sqrt(df.groupby("g")["y"].sum().to_numpy()), rtol=1e-3)


def test_hierarchical_draws_are_reported_as_b():
    """``b_g`` of the graph (``a + s z - Intercept``) = the fast paths' expand, value by value."""
    m = bg.GLMM("y ~ x + (1 | g)", _counts(1e7), family="poisson")
    pm_model = m.build()
    names = {v.name for v in pm_model.value_vars}
    assert "z_g" in names and "u_g" not in names
    d = GlmmDensity(m.spec, m.resolved_priors, m.centered_terms)
    x = d.initial_point(1) + np.random.default_rng(0).normal(scale=0.5, size=d.ndim)
    sl = d.value_var_slices()
    ip = pm_model.initial_point()
    p = {n: np.asarray(x[sl[n]]).reshape(np.shape(ip[n])) for n in names}
    outs = pm_model.replace_rvs_by_values([pm_model["b_g"], pm_model["beta"]])
    f = pm_model.compile_fn(outs, inputs=pm_model.value_vars, point_fn=True, on_unused_input="ignore")
    b, beta = f(p)
    ex = d.expand(x)
    np.testing.assert_allclose(b, ex["b_g"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(beta, ex["beta"], rtol=1e-12)
    drawn = d.expand_draws(np.stack([x, x]))
    np.testing.assert_allclose(drawn["b_g"][1], ex["b_g"], rtol=1e-12)


@pytest.mark.skipif(not _native_available(), reason="no C compiler")
def test_hierarchical_and_non_centred_agree_where_both_work():
    """Counts of 3 (r ~ 4): both parametrizations converge, to the same posterior."""
    df = _counts(3.0, seed=4)
    kw = dict(draws=600, tune=500, chains=2, random_seed=2, progressbar=False, sampler="native")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        h = bg.GLMM("y ~ x + (1 | g)", df, family="poisson", centered={"g": "hierarchical"}).sample(**kw).summary()
        u = bg.GLMM("y ~ x + (1 | g)", df, family="poisson", centered=False).sample(**kw).summary()
    assert (h["r_hat"] < 1.02).all() and (u["r_hat"] < 1.02).all()
    for nm in ("(Intercept)", "x", "sd_g[(Intercept)]"):
        mcse = np.hypot(*(f.loc[nm, "sd"] / np.sqrt(f.loc[nm, "ess_bulk"]) for f in (h, u)))
        tol = 4 * mcse + 0.05 * h.loc[nm, "sd"]
        assert abs(h.loc[nm, "mean"] - u.loc[nm, "mean"]) < tol, (nm, h.loc[nm], u.loc[nm])


@pytest.mark.skipif(not _native_available(), reason="no C compiler")
@pytest.mark.parametrize("level", [1e7, 1e12])
def test_defaults_sample_counts_of_1e7_and_1e12_in_40_groups(level):
    """The case of issue 16: 400 rows, 40 groups, log-mean ~16 / ~28.  Before (non-centred):
    R-hat 2.3 / 2.8, step size 1e-5, saturated trees."""
    df = _counts(level)
    m = bg.GLMM("y ~ x + (1 | g)", df, family="poisson")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ml = m.fit_ml()
        post = m.sample(random_seed=1, progressbar=False)  # the defaults: 4 chains x 1000
    s = post.summary()
    assert (s["r_hat"] < 1.01).all(), s
    for nm in ("(Intercept)", "x"):
        assert abs(s.loc[nm, "mean"] - float(ml.fixef[nm])) <= 3 * s.loc[nm, "sd"], (nm, s.loc[nm])
    assert s.loc["sd_g[(Intercept)]", "mean"] == pytest.approx(0.4, abs=0.15)
    assert float(post.idata.sample_stats["tree_depth"].mean()) < 6

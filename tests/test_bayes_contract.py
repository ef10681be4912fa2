"""The contract: every fast path evaluates the PyMC graph's log-density, point by point.

The graph (:func:`bayes_glmm.bayes.build_pymc_model`) is the model.  The NumPy density
(``sampler="numpy"``), the C generated from the same definitions (``"native"``) and the JAX
function generated from the graph (``"numpyro"``) are evaluated at random points of the graph's unconstrained
coordinates over a matrix of family (the dispersion families negbinomial, nbinom1, gamma and
beta with every link, zero inflation) x link x prior (dispersion and ``zi_`` priors among
them; dispersion formulas ``disp=``) x centred / non-centred / hierarchically centred x scalar / ``||`` / correlated (q = 2, 3) / crossed terms x
the covariance structures ``ar1``, ``cs`` (q = 3), ``toep`` (q = 4) and ``diag`` x
weights / offsets / trials; log-density
(up to one additive constant per model: PyMC keeps the normalizers of the standard-normal
effects, the fast paths drop them) and gradient must agree to 1e-8.
"""
import warnings

import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm.bayes.density import GlmmDensity
from bayes_glmm.priors import Prior

N_POINTS = 4


def _data(family, seed=0, n_groups=9, n_per=7):
    rng = np.random.default_rng(seed)
    n = n_groups * n_per
    g = np.repeat([f"G{i}" for i in range(n_groups)], n_per)
    h = rng.choice(["a", "b", "c", "d"], size=n)
    x, z = rng.normal(size=n), rng.normal(size=n)
    eta = 0.2 + 0.5 * x - 0.3 * z + rng.normal(scale=0.5, size=n_groups)[np.repeat(np.arange(n_groups), n_per)]
    t = rng.uniform(0.5, 2.0, size=n)
    trials = rng.integers(1, 6, size=n)
    if family == "gaussian":
        y = eta + rng.normal(scale=0.7, size=n)
    elif family == "gaussian-log":
        y = np.exp(0.3 * eta) + rng.normal(scale=0.2, size=n)
        y = np.abs(y) + 0.1
    elif family == "bernoulli":
        y = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    elif family == "binomial":
        y = rng.binomial(trials, 1 / (1 + np.exp(-eta)))
    elif family in ("negbinomial", "nbinom1", "zi-count"):
        mu = t * np.exp(0.5 * eta)
        y = rng.poisson(rng.gamma(2.0, mu / 2.0))
        if family == "zi-count":
            y = np.where(rng.random(n) < 0.3, 0, y)
    elif family == "gamma":
        y = rng.gamma(3.0, np.exp(0.3 * eta) / 3.0)
    elif family == "beta":
        mu = 1 / (1 + np.exp(-0.5 * eta))
        y = rng.beta(mu * 8.0, (1 - mu) * 8.0)
    elif family == "ordinal":  # four categories, coded 0 .. 3
        y = np.digitize(eta + rng.logistic(size=n), [-0.6, 0.3, 1.2])
    else:
        y = rng.poisson(t * np.exp(0.5 * eta))
    w = rng.uniform(0.5, 2.0, size=n)
    return pd.DataFrame({"y": y, "x": x, "z": z, "g": g, "h": h, "t": t, "n": trials, "w": w})


# (family, link, formula, extras) -- extras: priors, centered, weights, trials
CASES = {
    "gaussian-identity-scalar": ("gaussian", None, "y ~ x + z + (1 | g)", {}),
    "gaussian-log-uncorr": ("gaussian-log", "log", "y ~ x + (x || g)", {}),
    "gaussian-correlated-weights": ("gaussian", None, "y ~ x + (x | g)", {"weights": "w"}),
    "bernoulli-logit-correlated": ("bernoulli", None, "y ~ x + z + (x | g)", {}),
    "bernoulli-probit-uncorr": ("bernoulli", "probit", "y ~ x + (x || g)", {}),
    "bernoulli-cloglog-crossed": ("bernoulli", "cloglog", "y ~ x + (1 | g) + (1 | h)", {}),
    "binomial-trials-offset-q3": ("binomial", None, "y ~ x + z + offset(0.1 * x) + (1 + x + z | g)",
                                  {"trials": "n", "priors": {"corr_g": Prior("LKJ", eta=2.5)}}),
    "binomial-cbind-centered": ("binomial", None, "cbind(y, n - y) ~ x + (1 | g)",
                                {"centered": True}),
    "poisson-offset-correlated": ("poisson", None, "y ~ x + offset(log(t)) + (1 + x | g)", {}),
    "poisson-centered-var-prior": ("poisson", None, "y ~ x + offset(log(t)) + (x || g)",
                                   {"centered": True,
                                    "priors": {"var_g": Prior("InverseGamma", alpha=3.0, beta=2.0)}}),
    "poisson-heavy-priors": ("poisson", None, "y ~ x + z + (1 | g) + (1 | h)",
                             {"priors": {"x": Prior("StudentT", nu=4, mu=0.1, sigma=2),
                                         "z": Prior("Laplace", mu=0, b=1.5),
                                         "Intercept": Prior("Logistic", mu=0.3, s=1.2),
                                         "sd_g": Prior("HalfStudentT", nu=3, sigma=1.5),
                                         "sd_h": Prior("Exponential", lam=2.0)}}),
    "bernoulli-more-priors": ("bernoulli", None, "y ~ x + (x || g)",
                              {"priors": {"x": Prior("Cauchy", alpha=0, beta=2.5),
                                          "sd_g": Prior("Gamma", alpha=2.0, beta=2.0)}}),
    "gaussian-lognormal-weibull": ("gaussian", None, "y ~ x + (1 | g) + (1 | h)",
                                   {"priors": {"sd_g": Prior("LogNormal", mu=0, sigma=1),
                                               "sd_h": Prior("Weibull", alpha=2.0, beta=1.0),
                                               "sigma": Prior("HalfCauchy", beta=2.0)}}),
    # the dispersion families (every link) and zero inflation (issue 8)
    "negbinomial-offset-correlated": ("negbinomial", None, "y ~ x + offset(log(t)) + (1 + x | g)", {}),
    "negbinomial-weights-centered": ("negbinomial", None, "y ~ x + z + (1 | g)",
                                     {"weights": "w", "centered": True,
                                      "priors": {"theta": Prior("Gamma", alpha=2.0, beta=0.5)}}),
    "nbinom1-crossed": ("nbinom1", None, "y ~ x + (1 | g) + (1 | h)", {}),
    "nbinom1-exponential-prior": ("nbinom1", None, "y ~ x + (x || g)",
                                  {"priors": {"phi": Prior("Exponential", lam=0.5)}}),
    "gamma-log": ("gamma", None, "y ~ x + z + (1 | g)", {}),
    "gamma-log-lognormal-prior": ("gamma", None, "y ~ x + (x | g)",
                                  {"priors": {"shape": Prior("LogNormal", mu=1.0, sigma=1.0)}}),
    "beta-logit": ("beta", None, "y ~ x + (1 | g)", {"weights": "w"}),
    "beta-probit-uncorr": ("beta", "probit", "y ~ x + (x || g)", {}),
    "beta-cloglog-halfnormal-prior": ("beta", "cloglog", "y ~ x + (1 | g)",
                                      {"priors": {"phi": Prior("HalfNormal", sigma=20.0)}}),
    # beta-binomial (issue 18): binomial data, cbind and trials=, a phi prior
    "betabinomial-cbind-slope": ("binomial", None, "cbind(y, n - y) ~ x + (x | g)", {"family": "betabinomial"}),
    "betabinomial-probit-trials": ("binomial", "probit", "y ~ x + z + (1 | g)",
                                   {"family": "betabinomial", "trials": "n", "weights": "w",
                                    "priors": {"phi": Prior("Gamma", alpha=2.0, beta=0.2)}}),
    # the beta-binomial's cloglog takes its density from log(1 - mu) = -e^eta (1 - mu underflows)
    "betabinomial-cloglog-trials": ("binomial", "cloglog", "y ~ x + (1 | g)", {"family": "betabinomial", "trials": "n"}),
    # Student-t (issue 18): sigma and df, a correlated slope; weights and a df prior
    "student_t-slope": ("gaussian", None, "y ~ x + (x | g)", {"family": "student_t"}),
    "student_t-weights-df-prior": ("gaussian", None, "y ~ x + z + (1 | g)",
                                   {"family": "student_t", "weights": "w",
                                    "priors": {"df": Prior("Gamma", alpha=3.0, beta=0.2)}}),
    "zip-slope": ("zi-count", None, "y ~ x + (1 | g)", {"zi": "~ z", "family": "poisson",
                                                         "priors": {"zi_Intercept": Prior("LogitBeta", alpha=2, beta=3),
                                                                    "zi_z": Prior("LogitBeta", alpha=1.5, beta=2.5,
                                                                                  sigma=2.0)}}),
    "zinb-offset-weights": ("zi-count", None, "y ~ x + offset(log(t)) + (1 | g)",
                            {"zi": "~ x + z", "family": "negbinomial", "weights": "w",
                             "priors": {"zi_x": Prior("StudentT", nu=3, mu=0, sigma=1),
                                        "zi_Intercept": Prior("Normal", mu=-1, sigma=1)}}),
    "ordinal-logit": ("ordinal", None, "y ~ x + (1 | g)", {"family": "ordinal"}),
    "ordinal-probit-slope-weights": ("ordinal", "probit", "y ~ x + z + (x | g)", {"family": "ordinal", "weights": "w"}),
    "ordinal-cloglog-prior": ("ordinal", "cloglog", "y ~ x + (1 | g)",
                              {"family": "ordinal", "priors": {"1|2": Prior("Normal", mu=0.5, sigma=2.0)}}),
    "hurdle_poisson-slope": ("zi-count", None, "y ~ x + (x | g)", {"hu": "~ z", "family": "hurdle_poisson"}),
    "hurdle_nb-offset-weights": ("zi-count", None, "y ~ x + offset(log(t)) + (1 | g)",
                                 {"family": "hurdle_negbinomial", "weights": "w"}),
    "zinb1-intercept": ("zi-count", None, "y ~ x + (x | g)", {"zi": "~1", "family": "nbinom1"}),
    # hierarchical centring (issue 16): a (1 | g) term's levels c = Intercept + b ~ N(Intercept, sd)
    "poisson-hierarchical-offset": ("poisson", None, "y ~ x + offset(log(t)) + (1 | g)",
                                    {"centered": {"g": "hierarchical"},
                                     "priors": {"Intercept": Prior("StudentT", nu=5, mu=0.2, sigma=2.0)}}),
    "gaussian-hierarchical-crossed-var-prior": ("gaussian", None, "y ~ x + z + (1 | g) + (1 | h)",
                                                {"centered": {"g": "hierarchical", "h": True}, "weights": "w",
                                                 "priors": {"var_g": Prior("InverseGamma", alpha=3.0, beta=2.0)}}),
    "zinb-hierarchical-slope-term": ("zi-count", None, "y ~ x + (1 | g) + (0 + x | h)",
                                     {"zi": "~ z", "family": "negbinomial",
                                      "centered": {"g": "hierarchical"}}),
    # covariance structures (issue 17): each sampled from its one CovStructure definition
    # (h has 4 levels: a time factor of q = 4)
    "gaussian-ar1": ("gaussian", None, "y ~ x + ar1(0 + factor(h) | g)", {}),
    "poisson-ar1-offset-eta": ("poisson", None, "y ~ x + offset(log(t)) + ar1(0 + factor(h) | g)",
                               {"priors": {"corr_g": Prior("LKJ", eta=2.0),
                                           "sd_g": Prior("HalfStudentT", nu=3, sigma=1.5)}}),
    "gaussian-cs3-weights": ("gaussian", None, "y ~ x + cs(1 + x + z | g)", {"weights": "w"}),
    "poisson-cs3": ("poisson", None, "y ~ x + cs(1 + x + z | g)", {"priors": {"corr_g": Prior("LKJ", eta=0.7)}}),
    "gaussian-toep4": ("gaussian", None, "y ~ x + toep(0 + factor(h) | g)", {}),
    "poisson-toep4-crossed": ("poisson", None, "y ~ x + offset(log(t)) + toep(0 + factor(h) | g) + (1 | h)",
                              {"priors": {"corr_g": Prior("LKJ", eta=3.0)}}),
    "gaussian-diag": ("gaussian", None, "y ~ x + diag(x | g)", {}),
    "poisson-hetar1": ("poisson", None, "y ~ x + hetar1(0 + factor(h) | g)", {}),
    "poisson-diag-centered": ("poisson", None, "y ~ x + diag(1 + x | g)", {"centered": True}),
    # dispersion formulas (issue 18): the log of the first auxiliary parameter linear in covariates
    "gaussian-disp-slope": ("gaussian", None, "y ~ x + (1 | g)", {"disp": "~ z"}),
    "gaussian-log-disp-factor-weights": ("gaussian-log", "log", "y ~ x + (1 | g)",
                                         {"disp": "~ h", "weights": "w",
                                          "priors": {"disp_Intercept": Prior("StudentT", nu=4, mu=0, sigma=1)}}),
    "negbinomial-disp-offset": ("negbinomial", None, "y ~ x + offset(log(t)) + (1 + x | g)", {"disp": "~ x + z"}),
    "zinb-disp": ("zi-count", None, "y ~ x + (1 | g)", {"zi": "~ z", "disp": "~ z", "family": "negbinomial"}),
    "gamma-disp-nointercept": ("gamma", None, "y ~ x + (1 | g)", {"disp": "~ 0 + h"}),
    "beta-disp-probit": ("beta", "probit", "y ~ x + (1 | g)", {"disp": "~ x"}),
    "student_t-disp": ("gaussian", None, "y ~ x + (1 | g)", {"family": "student_t", "disp": "~ z"}),
    "hurdle_nb-disp": ("zi-count", None, "y ~ x + (1 | g)", {"family": "hurdle_negbinomial", "hu": "~ z",
                                                              "disp": "~ z"}),
}

#: inverse and identity gamma links need a positive linear predictor: evaluated at points near
#: the prior location instead of the generic random points (see _points)
CASES_POSITIVE_ETA = {
    "gamma-inverse": ("gamma", "inverse", "y ~ x + (1 | g)", {}),
    "gamma-identity": ("gamma", "identity", "y ~ x + (1 | g)", {}),
}
CASES.update(CASES_POSITIVE_ETA)


def _model(case):
    fam, link, formula, extra = CASES[case]
    df = _data(fam, seed=sorted(CASES).index(case))
    family = extra.get("family", "gaussian" if fam.startswith("gaussian") else fam)
    return bg.GLMM(formula, df, family=family, link=link, trials=extra.get("trials"),
                   weights=extra.get("weights"), priors=extra.get("priors"),
                   centered=extra.get("centered", False), zi=extra.get("zi"), hu=extra.get("hu"),
                   disp=extra.get("disp"))


def _points(density, seed):
    rng = np.random.default_rng(seed)
    pts = [density.initial_point(i) + rng.normal(scale=0.8, size=density.ndim) for i in range(N_POINTS)]
    if density.fam.name == "beta":
        # a Beta mean saturating at 0 or 1 (cloglog: 1 - mu = exp(-e^eta) ~ 1e-15) makes the
        # graph's own gradient overflow; stay where the posterior of such data lives
        pts = [0.4 * x for x in pts]
    if density.fam.name == "gamma" and density.fam.link.name != "log":
        # keep mu = h(eta) > 0: intercept near its prior location, small slopes and effects
        sl = density.value_var_slices()
        loc = float(density.spec.y.mean()) if density.fam.link.name == "identity" else 1.0 / float(density.spec.y.mean())
        for x in pts:
            x *= 0.05
            x[sl["Intercept"]] = loc * (1.0 + 0.1 * rng.normal())
            for k in ("sd_g_log__",):
                x[sl[k]] = rng.normal(scale=0.5) - 3.0
    return pts


def _graph_fns(pm_model):
    return pm_model.compile_logp(), pm_model.compile_dlogp()


def _as_point(density, x, pm_model):
    sl = density.value_var_slices()
    names = [v.name for v in pm_model.value_vars]
    assert set(sl) == set(names), (sorted(sl), sorted(names))
    ip = pm_model.initial_point()
    return {n: np.asarray(x[sl[n]]).reshape(np.shape(ip[n])) for n in names}


def _flat(density, point_grad, pm_model):
    """The graph's dlogp (concatenated in value_vars order) rearranged into density order."""
    sl = density.value_var_slices()
    out = np.empty(density.ndim)
    pos = 0
    for v in pm_model.value_vars:
        size = sl[v.name].stop - sl[v.name].start
        out[sl[v.name]] = point_grad[pos:pos + size]
        pos += size
    return out


def _assert_same(vals_a, vals_b, grads_a, grads_b):
    diff = np.asarray(vals_a) - np.asarray(vals_b)
    scale = max(1.0, float(np.max(np.abs(vals_a))))
    np.testing.assert_allclose(diff - diff[0], 0.0, atol=1e-8 * scale)
    for ga, gb in zip(grads_a, grads_b):
        np.testing.assert_allclose(ga, gb, rtol=1e-8, atol=1e-8 * max(1.0, float(np.max(np.abs(gb)))))


#: new-family cases run with ``-m slow`` only (the default suite keeps one case per family,
#: link and feature: NB2 weights/centred/prior, NB1 crossed, gamma inverse, beta probit and
#: cloglog, ZINB offset/weights/zi priors)
SLOW_CASES = {"negbinomial-offset-correlated", "nbinom1-exponential-prior", "gamma-log",
              "gamma-log-lognormal-prior", "beta-logit", "zip-slope", "zinb1-intercept", "gamma-identity",
              "gaussian-cs3-weights", "gaussian-toep4", "poisson-diag-centered", "gaussian-diag",
              "gamma-disp-nointercept", "zinb-disp", "gaussian-log-disp-factor-weights", "beta-disp-probit",
              "betabinomial-probit-trials", "ordinal-logit", "ordinal-cloglog-prior", "student_t-slope",
              "student_t-weights-df-prior", "negbinomial-disp-offset"}

#: the JAX comparison (~5 s a case: JAX compiles each graph) runs in the default suite for one
#: case per family and per kind of extra linear predictor (zi, hu, disp) and structure; every
#: case with ``-m slow`` (the NumPy and C comparisons keep every default case)
JAX_DEFAULT = {"bernoulli-logit-correlated", "binomial-trials-offset-q3", "poisson-offset-correlated",
               "negbinomial-weights-centered", "nbinom1-crossed", "gamma-inverse", "beta-cloglog-halfnormal-prior",
               "gaussian-correlated-weights", "zinb-offset-weights", "betabinomial-cbind-slope",
               "hurdle_poisson-slope", "hurdle_nb-offset-weights", "ordinal-probit-slope-weights", "student_t-disp",
               "gaussian-disp-slope", "poisson-toep4-crossed"}

_BUILT = {}


def _built(name: str):
    """(name, model, PyMC model) of a case, built once per session."""
    if name not in _BUILT:
        m = _model(name)
        _BUILT[name] = (name, m, m.build())
    return _BUILT[name]


@pytest.fixture(scope="module", params=[pytest.param(c, marks=pytest.mark.slow) if c in SLOW_CASES else c
                                        for c in sorted(CASES)])
def case(request):
    return _built(request.param)


@pytest.fixture(scope="module", params=[c if c in JAX_DEFAULT and c not in SLOW_CASES
                                        else pytest.param(c, marks=pytest.mark.slow) for c in sorted(CASES)])
def jax_case(request):
    return _built(request.param)


def test_numpy_density_equals_graph(case):
    name, m, pm_model = case
    d = GlmmDensity(m.spec, m.resolved_priors, m.centered_terms)
    logp, dlogp = _graph_fns(pm_model)
    lg, gg, ld, gd = [], [], [], []
    for x in _points(d, 1):
        p = _as_point(d, x, pm_model)
        lg.append(float(logp(p)))
        gg.append(_flat(d, dlogp(p), pm_model))
        v, g = d.logp_grad(x)
        ld.append(v)
        gd.append(g)
    _assert_same(lg, ld, gg, gd)


def test_native_density_equals_graph(case):
    """The C generated from the single definitions (bayes.codegen) = the graph, point by point."""
    from bayes_glmm.bayes import native

    if not native.available():  # pragma: no cover - CI has cc
        pytest.skip("no C compiler")
    name, m, pm_model = case
    d = GlmmDensity(m.spec, m.resolved_priors, m.centered_terms)
    nm = native.NativeModel(d)
    logp, dlogp = _graph_fns(pm_model)
    lg, gg, ln, gn = [], [], [], []
    for x in _points(d, 2):
        p = _as_point(d, x, pm_model)
        lg.append(float(logp(p)))
        gg.append(_flat(d, dlogp(p), pm_model))
        v, g = nm.logp_grad(x)
        ln.append(v)
        gn.append(g)
    _assert_same(lg, ln, gg, gn)


def test_jax_function_equals_graph(jax_case):
    pytest.importorskip("numpyro")
    import jax
    from pymc.sampling.jax import get_jaxified_graph

    jax.config.update("jax_enable_x64", True)
    name, m, pm_model = jax_case
    if m.spec.family.link.name == "probit" and m.spec.family.name in ("bernoulli", "binomial", "ordinal"):
        with pytest.raises(ValueError, match="numpyro' does not support this model.*erfcx"):
            m.sample(draws=5, tune=5, chains=1, sampler="numpyro", progressbar=False)
        return
    d = GlmmDensity(m.spec, m.resolved_priors, m.centered_terms)
    f = get_jaxified_graph(inputs=pm_model.value_vars, outputs=[pm_model.logp()])
    names = [v.name for v in pm_model.value_vars]

    def lp(*vals):
        return f(*vals)[0]

    vg = jax.value_and_grad(lp, argnums=tuple(range(len(names))))
    logp, dlogp = _graph_fns(pm_model)
    lg, gg, lj, gj = [], [], [], []
    for x in _points(d, 3):
        p = _as_point(d, x, pm_model)
        lg.append(float(logp(p)))
        gg.append(dlogp(p))
        v, g = vg(*[p[n] for n in names])
        lj.append(float(v))
        gj.append(np.concatenate([np.ravel(np.asarray(gi)) for gi in g]))
    _assert_same(lg, lj, gg, gj)
    np.testing.assert_allclose(np.asarray(lg), np.asarray(lj), rtol=1e-10)  # same graph: same constants


def test_correlated_graph_coordinates_are_the_cpcs():
    """The graph's correlated term: CPC value variable, pairs of correlations, b = u (diag(sd) L)'."""
    m = _model("bernoulli-logit-correlated")
    pm_model = m.build()
    names = {v.name for v in pm_model.value_vars}
    assert {"cpc_g", "sd_g_log__", "u_g"} <= names and not any(n.startswith("chol") for n in names)
    assert pm_model.named_vars_to_dims["corr_g"] == ("g_corr",)
    assert list(pm_model.coords["g_corr"]) == ["(Intercept), x"]
    d = GlmmDensity(m.spec, m.resolved_priors, m.centered_terms)
    x = _points(d, 4)[0]
    p = _as_point(d, x, pm_model)
    outs = pm_model.replace_rvs_by_values([pm_model["corr_g"], pm_model["b_g"]])
    f = pm_model.compile_fn(outs, inputs=pm_model.value_vars, point_fn=True, on_unused_input="ignore")
    corr, b = f(p)
    ex = d.expand(x)
    np.testing.assert_allclose(corr, [ex["corr_g"][1, 0]], rtol=1e-12)
    np.testing.assert_allclose(b, ex["b_g"], rtol=1e-10, atol=1e-12)


def test_prior_draws_of_cpcs_follow_lkj():
    """Prior predictive sampling works through the CPC node, and corr draws have LKJ(2)'s variance."""
    m = _model("bernoulli-logit-correlated").with_priors({"corr_g": Prior("LKJ", eta=2.0)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pri = m.prior_predictive(draws=4000, random_seed=3)
    r = np.asarray(pri.prior["corr_g"]).ravel()
    # LKJ(eta) in 2-D: (r + 1) / 2 ~ Beta(eta, eta) -> var(r) = 1 / (2 eta + 1)
    assert abs(r.mean()) < 0.05 and r.var() == pytest.approx(1 / 5, rel=0.08)

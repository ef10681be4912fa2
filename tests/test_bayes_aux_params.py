"""A family with two auxiliary parameters on the Bayesian path: the graph, the NumPy density and
the generated C read everything about the family from the family object.

The toy family is a Student-t response with location ``mu = eta``, scale ``sigma`` and degrees of
freedom ``df`` (both positive), written once against ``ops`` and registered only inside this
module: nothing in ``bayes_glmm/bayes`` knows it, so its graph, its NumPy density, its C, its
``idata`` names and its prior predictive draws all come from :class:`Family` and its
``aux_params``.
"""
import math

import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
import bayes_glmm.families as families
from bayes_glmm.bayes.density import GlmmDensity
from bayes_glmm.families import AuxParam, Family
from bayes_glmm.priors import Prior
from test_bayes_contract import _as_point, _assert_same, _flat, _graph_fns

SIGMA = AuxParam("sigma", "scale of the t distribution",
                 default_prior=lambda sc: ("Exponential", {"lam": 1.0 / sc["y_sd"]}),
                 start=lambda m, v: float(np.sqrt(max(v, 1e-300))))
DF = AuxParam("df", "degrees of freedom",
              default_prior=lambda sc: ("Gamma", {"alpha": 2.0, "beta": 0.1}),  # Juarez & Steel (2010)
              start=lambda m, v: 10.0, start_range=(1.0, 100.0))


class ToyStudentT(Family):
    """y = mu + sigma t_df: two positive auxiliary parameters."""

    name = "toy_student_t"
    links = ("identity",)
    continuous = True
    aux_params = (SIGMA, DF)

    def _variance(self, mu, ops, **aux):
        return mu * 0.0 + 1.0  # times sigma^2 (df / (df - 2) left out: a crude start is all it serves)

    def moment_dispersion(self, r2, mu, w):
        return max(r2 / max(float(np.sum(w)), 1e-300), 1e-300)  # sigma^2, as gaussian

    def _random(self, mu, rng, *, trials=None, sigma=None, df=None):
        mu = np.asarray(mu, dtype=float)
        return mu + np.asarray(sigma, dtype=float) * rng.standard_t(np.broadcast_to(df, mu.shape))

    def _loglik(self, y, eta, ops, *, trials=None, sigma, df):
        z = (y - self.link.inverse(eta, ops)) / sigma
        return (ops.gammaln(0.5 * (df + 1.0)) - ops.gammaln(0.5 * df) - 0.5 * ops.log(df * math.pi)
                - ops.log(sigma) - 0.5 * (df + 1.0) * ops.log1p(z * z / df))


LOG_SIGMA = AuxParam("log_sigma", "log of the residual SD", support="real",
                     default_prior=lambda sc: ("Normal", {"mu": float(np.log(sc["y_sd"])), "sigma": 2.0}),
                     start=lambda m, v: 0.5 * float(np.log(max(v, 1e-300))), bounds=(-np.inf, np.inf),
                     start_range=(-50.0, 50.0))


class ToyLogSigmaGaussian(Family):
    """A gaussian whose auxiliary parameter is the log-SD: a real-support one (no log transform)."""

    name = "toy_log_sigma_gaussian"
    links = ("identity",)
    continuous = True
    aux_params = (LOG_SIGMA,)

    def _variance(self, mu, ops, **aux):
        return mu * 0.0 + 1.0

    def _random(self, mu, rng, *, trials=None, log_sigma=None):
        return rng.normal(mu, np.exp(log_sigma))

    def _loglik(self, y, eta, ops, *, trials=None, log_sigma):
        r = (y - self.link.inverse(eta, ops)) * ops.exp(-log_sigma)
        return -0.5 * r * r - log_sigma - 0.5 * math.log(2.0 * math.pi)


@pytest.fixture(scope="module", autouse=True)
def toy_registered():
    """The toy family in the registry for this module only (the registry's tables restored after)."""
    with pytest.MonkeyPatch.context() as mp:
        for k in ("REGISTRY", "FAMILIES", "ALIASES", "DISPERSION"):
            mp.setattr(families, k, dict(getattr(families, k)))
        mp.setattr(families, "ZI_FAMILIES", families.ZI_FAMILIES)
        families.register_family(ToyStudentT)
        families.register_family(ToyLogSigmaGaussian)
        yield
    assert "toy_student_t" not in families.REGISTRY and "toy_log_sigma_gaussian" not in families.REGISTRY


def _data(seed=0, n_groups=8, n_per=8):
    rng = np.random.default_rng(seed)
    n = n_groups * n_per
    g = np.repeat(np.arange(n_groups), n_per)
    x = rng.normal(size=n)
    eta = 1.0 + 0.5 * x + rng.normal(scale=0.6, size=n_groups)[g]
    w = rng.uniform(0.5, 2.0, size=n)
    return pd.DataFrame({"y": eta + 0.7 * rng.standard_t(4.0, size=n), "x": x, "w": w,
                         "g": [f"G{i}" for i in g]})


CASES = {
    "default-priors": ("y ~ x + (1 | g)", {}),
    "real-support-aux": ("y ~ x + (1 | g)", {"family": "toy_log_sigma_gaussian"}),
    "weights-slope-priors": ("y ~ x + (x || g)", {"weights": "w",
                                                  "priors": {"df": Prior("Exponential", lam=1 / 30),
                                                             "sigma": Prior("HalfCauchy", beta=2.0)}}),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    formula, extra = CASES[request.param]
    extra = {"family": "toy_student_t", **extra}
    m = bg.GLMM(formula, _data(sorted(CASES).index(request.param)), **extra)
    return m, m.build()


def _points(d, seed, n=4):
    rng = np.random.default_rng(seed)
    return [d.initial_point(i) + rng.normal(scale=0.8, size=d.ndim) for i in range(n)]


def test_names_come_from_aux_params(case):
    m, pm_model = case
    names = m.spec.family.aux_names
    assert names in (("sigma", "df"), ("log_sigma",))
    assert set(names) <= set(m.resolved_priors)
    d = GlmmDensity(m.spec, m.resolved_priors, m.centered_terms)
    assert [b.name for b in d.aux] == list(names)
    # a positive parameter's value variable is its log (PyMC's transform), a real one itself
    vv = [f"{a}_log__" if a != "log_sigma" else a for a in names]
    assert set(vv) <= {v.name for v in pm_model.value_vars}
    sl = d.value_var_slices()
    assert [sl[v].start for v in vv] == list(range(sl[vv[0]].start, sl[vv[0]].start + len(vv)))  # aux_params order
    x = _points(d, 0)[0]
    ex = d.expand(x)
    for a, v in zip(names, vv):
        z = x[sl[v]][0]
        assert ex[a] == pytest.approx(np.exp(z) if v.endswith("_log__") else z)


def test_numpy_density_equals_graph(case):
    m, pm_model = case
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
    last = d.aux[-1].sl  # the last auxiliary parameter gets its own gradient
    assert all(np.all(g[last] != 0.0) for g in gd)


def test_native_density_equals_graph(case):
    """One derivative direction per auxiliary parameter in the generated C."""
    from bayes_glmm.bayes import native

    if not native.available():  # pragma: no cover - CI has cc
        pytest.skip("no C compiler")
    m, pm_model = case
    d = GlmmDensity(m.spec, m.resolved_priors, m.centered_terms)
    nm = native.NativeModel(d)
    na = len(m.spec.family.aux_params)
    assert f"gax{na - 1}" in nm.source and f"gax{na}" not in nm.source  # one direction per aux parameter
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


def test_rows_loglik_c_equals_family():
    from bayes_glmm.bayes import native

    if not native.available():  # pragma: no cover - CI has cc
        pytest.skip("no C compiler")
    m = bg.GLMM("y ~ x + (1 | g)", _data(3), family="toy_student_t")
    nm = native.NativeModel(GlmmDensity(m.spec, m.resolved_priors, m.centered_terms))
    rng = np.random.default_rng(4)
    eta = rng.normal(size=(3, m.spec.n))
    aux = np.column_stack([rng.uniform(0.3, 2.0, 3), rng.uniform(1.0, 40.0, 3)])
    got = nm.rows_loglik(eta, None, aux)
    want = m.spec.family.loglik(np.asarray(m.spec.y)[None, :], eta, sigma=aux[:, :1], df=aux[:, 1:])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="2 auxiliary parameter"):
        nm.rows_loglik(eta)


def test_native_sample_runs_and_reports_both_aux():
    m = bg.GLMM("y ~ x + (1 | g)", _data(5, n_groups=10, n_per=10), family="toy_student_t")
    r = m.sample(draws=150, tune=150, chains=2, sampler="native", random_seed=2, progressbar=False,
                 check=False)
    post = r.idata.posterior
    assert {"beta", "sd_g", "sigma", "df", "b_g"} <= set(post.data_vars)
    assert np.all(np.asarray(post["df"]) > 0) and np.all(np.asarray(post["sigma"]) > 0)
    assert float(post["sigma"].mean()) == pytest.approx(0.7, rel=0.5)  # the simulation's scale
    assert list(r.dispersion.index) == ["sigma", "df"]
    # the pointwise log-likelihood (from the generated C) is the family's own
    from bayes_glmm.bayes.pointwise import pointwise_loglik

    np.testing.assert_allclose(np.asarray(r.idata.log_likelihood["y"]).reshape(-1, m.spec.n),
                               pointwise_loglik(m.spec, post), rtol=1e-10, atol=1e-12)
    # posterior predictive draws: family.random with both auxiliary parameters per draw
    yrep = np.asarray(r.posterior_predictive(random_seed=1).posterior_predictive["y"])
    assert yrep.shape == (2, 150, m.spec.n) and np.isfinite(yrep).all()


def test_prior_predictive_draws_come_from_the_family():
    """The graph's ``y`` draws from ``family.random``: Student-t tails, float response."""
    m = bg.GLMM("y ~ 1 + (1 | g)", _data(6), family="toy_student_t",
                priors={"sigma": Prior("Gamma", alpha=400.0, beta=400.0), "df": Prior("Gamma", alpha=300.0, beta=100.0),
                        "Intercept": Prior("Normal", mu=0.0, sigma=1e-3), "sd_g": Prior("HalfNormal", sigma=1e-3)})
    pri = m.prior_predictive(draws=400, random_seed=3)
    y = np.asarray(pri.prior_predictive["y"]).ravel()
    assert y.dtype.kind == "f" and np.isfinite(y).all()
    # sigma ~ 1, df ~ 3: the variance of t_3 is 3, its excess kurtosis infinite (far above a normal's 0)
    assert np.var(y) == pytest.approx(3.0, rel=0.25)
    k = np.mean((y - y.mean()) ** 4) / np.var(y) ** 2
    assert k > 5.0

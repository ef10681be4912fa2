"""The numba kernel (bayes.kernels) equals the NumPy density (bayes.density, itself tested
against PyMC's graph in test_bayes.py) for every family, link and prior it covers."""
import ctypes
import warnings

import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm.bayes.density import PRIOR_LOGP, GlmmDensity
from bayes_glmm.priors import Prior

nk = pytest.importorskip("bayes_glmm.bayes.kernels")


def _data(seed=0, n_g=9, n_h=4, n_per=5):
    rng = np.random.default_rng(seed)
    n = n_g * n_per
    g = np.repeat(np.arange(n_g), n_per)
    h = rng.integers(0, n_h, size=n)
    x, z = rng.normal(size=n), rng.normal(size=n)
    t = rng.integers(1, 7, size=n)
    eta = 0.3 + 0.8 * x - 0.4 * z + rng.normal(size=n_g)[g] * 0.7
    p = 1 / (1 + np.exp(-eta))
    return pd.DataFrame({
        "x": x, "z": z, "g": [f"G{i}" for i in g], "h": [f"H{i}" for i in h],
        "yb": rng.binomial(1, p), "ys": rng.binomial(t, p), "yf": t - 0, "t": t,
        "yc": rng.poisson(np.exp(0.5 + 0.3 * x)), "yg": eta + rng.normal(scale=0.6, size=n) + 3.0,
        "w": rng.uniform(0.5, 2.0, size=n), "off": rng.normal(scale=0.3, size=n)})


FAMILIES = [("gaussian", "identity", "yg"), ("gaussian", "log", "yg"), ("bernoulli", "logit", "yb"),
            ("bernoulli", "probit", "yb"), ("bernoulli", "cloglog", "yb"), ("binomial", "logit", "ys"),
            ("binomial", "probit", "ys"), ("binomial", "cloglog", "ys"), ("poisson", "log", "yc")]

REAL = [Prior("Normal", mu=0.5, sigma=2.0), Prior("StudentT", nu=4, mu=0.1, sigma=2),
        Prior("Cauchy", alpha=0.2, beta=1.5), Prior("Laplace", mu=0.1, b=1.2), Prior("Logistic", mu=0.0, s=2),
        Prior("Flat")]
POSITIVE = [Prior("HalfNormal", sigma=2.0), Prior("HalfStudentT", nu=3, sigma=1.5), Prior("HalfCauchy", beta=1.0),
            Prior("Exponential", lam=1.5), Prior("Exponential", scale=2.0), Prior("Gamma", alpha=2.0, beta=1.5),
            Prior("Gamma", mu=1.0, sigma=0.8), Prior("InverseGamma", alpha=2.0, beta=1.0),
            Prior("InverseGamma", mu=1.0, sigma=0.7), Prior("LogNormal", mu=0.0, sigma=1.0),
            Prior("Weibull", alpha=1.5, beta=1.0), Prior("HalfFlat")]


def _model(family, link, y, *, priors=None, centered=False, offset=True, weights=True, formula_re="(x || g) + (1 | h)"):
    df = _data()
    off = " + offset(off)" if offset else ""
    lhs = "cbind(ys, t - ys)" if family == "binomial" else y
    m = bg.GLMM(f"{lhs} ~ x + z{off} + {formula_re}", df, family=family, link=link,
                weights="w" if weights else None, priors=priors or {}, centered=centered)
    return GlmmDensity(m.spec, m.resolved_priors, m.centered_terms)


def _check(d, seeds=(1, 2, 3), scale=1.0):
    F, I = nk.pack(d)
    for s in seeds:
        x = d.initial_point(s) * scale
        g = np.full(d.ndim, np.nan)
        lp = nk.logp_grad(x, g, F, I)
        lp0, g0 = d.logp_grad(x)
        assert lp == pytest.approx(lp0, rel=1e-12, abs=1e-10)
        np.testing.assert_allclose(g, g0, rtol=1e-10, atol=1e-10)
        out = np.full(int(I[nk._NEXP]), np.nan)
        assert nk.expand(x, out, F, I) == out.size
        ref = np.concatenate([np.ravel(v) for v in d.expand(x).values()])
        np.testing.assert_allclose(out, ref, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("family,link,y", FAMILIES)
@pytest.mark.parametrize("centered", [False, True])
def test_families_links(family, link, y, centered):
    try:
        d = _model(family, link, y, centered=centered)
    except ValueError as e:  # e.g. an offset the design does not support
        pytest.skip(str(e))
    _check(d)
    _check(d, seeds=(4,), scale=3.0)  # far from the mode: saturated probabilities


@pytest.mark.parametrize("prior", REAL, ids=lambda p: repr(p))
def test_real_priors(prior):
    _check(_model("bernoulli", "logit", "yb", priors={"Intercept": prior, "x": prior, "z": Prior("Normal", sigma=3)}))


@pytest.mark.parametrize("prior", POSITIVE, ids=lambda p: repr(p))
@pytest.mark.parametrize("key", ["sd_g", "var_g", "sigma"])
def test_positive_priors(prior, key):
    _check(_model("gaussian", "identity", "yg", priors={key: prior}))


def test_every_prior_family_covered():
    assert {p.name for p in REAL + POSITIVE} == set(PRIOR_LOGP) == set(nk.PRIOR_CODES)


def test_log_ndtr_tails():
    from scipy.special import log_ndtr

    xs = np.concatenate([np.linspace(-60, 40, 2001), [-36.99, -37.01, -1e3, 0.0, 1e-300]])
    got = np.array([nk._log_ndtr(v) for v in xs])
    np.testing.assert_allclose(got, log_ndtr(xs), rtol=1e-12, atol=1e-300)


def test_no_random_terms_no_intercept():
    df = _data()
    m = bg.GLMM("yb ~ 0 + x + z + (1 | g)", df, family="bernoulli")
    _check(GlmmDensity(m.spec, m.resolved_priors, m.centered_terms))


def test_c_entry_points():
    d = _model("bernoulli", "logit", "yb")
    compiled = nk.compile_numba(d, {}, {})
    x = d.initial_point(5)
    g, lp = np.empty(d.ndim), np.empty(1)
    ud = compiled.user_data
    dbl = ctypes.POINTER(ctypes.c_double)
    rc = nk._c_logp.ctypes(d.ndim, x.ctypes.data_as(dbl), g.ctypes.data_as(dbl), lp.ctypes.data_as(dbl),
                           ctypes.c_void_p(ud.ctypes.data))
    lp0, g0 = d.logp_grad(x)
    assert rc == 0 and lp[0] == pytest.approx(lp0, rel=1e-12)
    np.testing.assert_allclose(g, g0, rtol=1e-10, atol=1e-10)
    assert nk._c_logp.ctypes(d.ndim + 1, x.ctypes.data_as(dbl), g.ctypes.data_as(dbl), lp.ctypes.data_as(dbl),
                             ctypes.c_void_p(ud.ctypes.data)) == -1


def test_numba_sampler_matches_numpy_layout():
    df = _data()
    mod = bg.GLMM("yb ~ x + (x || g)", df, family="bernoulli", priors={"var_g": Prior("InverseGamma", alpha=2, beta=1)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = mod.sample(draws=60, tune=80, chains=2, random_seed=2, sampler="numba", progressbar=False, check=False)
        b = mod.sample(draws=60, tune=80, chains=2, random_seed=2, sampler="numpy", progressbar=False, check=False)
    pa, pb = a.idata.posterior, b.idata.posterior
    assert pa.attrs["sampler"] == "numba" and set(pa.data_vars) == set(pb.data_vars)
    for v in pa.data_vars:
        assert pa[v].dims == pb[v].dims and pa[v].shape == pb[v].shape
    assert list(pa.data_vars) == ["beta", "sd_g", "b_g"]  # the tidy posterior, no u_g / var_g copies
    np.testing.assert_allclose(pa["beta"].mean(("chain", "draw")), pb["beta"].mean(("chain", "draw")), atol=0.5)
    assert {"log_likelihood", "observed_data", "sample_stats"} <= set(a.idata.groups())


# ------------------------------------------------------------------ correlated terms (LKJ, CPCs)
CORR = [("gaussian", "identity", "yg"), ("bernoulli", "logit", "yb"), ("poisson", "log", "yc")]


@pytest.mark.parametrize("family,link,y", CORR)
@pytest.mark.parametrize("re_", ["(x | g) + (1 | h)", "(x + z | g) + (x || h)"], ids=["q2", "q3"])
def test_correlated_kernel_matches_numpy_and_fd(family, link, y, re_):
    d = _model(family, link, y, formula_re=re_, priors={"corr_g": Prior("LKJ", eta=1.5)})
    assert "g" in d.corr and d.corr["g"].eta == 1.5
    _check(d)
    _check(d, seeds=(4,), scale=3.0)
    x = d.initial_point(7)
    g = d.logp_grad(x)[1]
    h = 1e-6
    fd = np.array([(d.logp_grad(x + h * e)[0] - d.logp_grad(x - h * e)[0]) / (2 * h) for e in np.eye(d.ndim)])
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6)
    ex = d.expand(x)
    assert list(ex)[3:8] == ["chol_g", "sd_g", "corr_g", "u_g", "b_g"]  # the kernel's expand layout
    q = ex["sd_g"].size
    M = np.zeros((q, q))
    M[np.tril_indices(q)] = ex["chol_g"]
    np.testing.assert_allclose(M @ M.T, ex["corr_g"] * np.outer(ex["sd_g"], ex["sd_g"]), atol=1e-12)
    C = ex["corr_g"]
    np.testing.assert_allclose(np.diag(C), 1.0, atol=1e-14)
    assert np.all(np.linalg.eigvalsh(C) > 0)


def test_cpc_saturated_gradient_finite():
    """tanh saturates (|y| > 19): L stays valid and the gradient finite."""
    from bayes_glmm.bayes.corr import cpc_chol, cpc_chol_vjp, lkj_shape

    a, c = lkj_shape(3, 2.0)
    y = np.array([25.0, -30.0, 800.0])
    L, lp, aux = cpc_chol(y, 3, a, c)
    np.testing.assert_allclose((L * L).sum(axis=1), 1.0)
    assert np.isfinite(lp) and np.all(np.isfinite(cpc_chol_vjp(np.ones((3, 3)), a, aux)))


@pytest.mark.parametrize("eta", [1.0, 2.0, 0.7])
def test_lkj_density_normalized_and_marginals_q2(eta):
    """q = 2: p(y) integrates to 1 and r = tanh(y) has (r + 1) / 2 ~ Beta(eta, eta) (LKJ, as PyMC)."""
    from scipy import stats
    from bayes_glmm.bayes.corr import cpc_chol, lkj_shape

    a, c = lkj_shape(2, eta)
    ys = np.linspace(-25, 25, 20001)  # tails ~ exp(-2 eta |y|)
    lp = np.array([cpc_chol([y], 2, a, c)[1] for y in ys])
    assert np.trapezoid(np.exp(lp), ys) == pytest.approx(1.0, abs=1e-7)
    r = np.tanh(ys)  # density of r: p(y) / (dr/dy)
    ref = stats.beta(eta, eta).logpdf((r + 1) / 2) - np.log(2.0)
    ok = np.abs(r) < 0.999
    np.testing.assert_allclose(lp[ok] - np.log1p(-r[ok] ** 2), ref[ok], atol=1e-9)


def test_lkj_q3_matches_pymc_lkjcorr_density():
    """q = 3: log p(y) - log|d r / d y| is PyMC's LKJCorr log-density up to one constant.

    (The constant differs because ours integrates to one on y, checked by quadrature in
    test_lkj_q3_normalized_and_marginals; PyMC's LKJCorr normalizer is another one.
    Sampling only sees the shape.)
    """
    import pymc as pm
    from bayes_glmm.bayes.corr import cpc_chol, lkj_shape

    eta, q = 2.0, 3
    a, c = lkj_shape(q, eta)
    iu = np.triu_indices(q, 1)

    def corr_of(y):
        L = cpc_chol(y, q, a, c)[0]
        return (L @ L.T)[iu]

    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(4):
        y = rng.normal(size=3)
        J = np.array([(corr_of(y + 1e-6 * e) - corr_of(y - 1e-6 * e)) / 2e-6 for e in np.eye(3)])
        ref = float(pm.logp(pm.LKJCorr.dist(n=q, eta=eta), corr_of(y)).eval())
        diffs.append(cpc_chol(y, q, a, c)[1] - ref - np.log(abs(np.linalg.det(J))))
    assert np.ptp(diffs) < 1e-6


@pytest.mark.parametrize("eta", [1.0, 2.0])
def test_lkj_q3_normalized_and_marginals(eta):
    """q = 3 by quadrature on y: mass 1 and every correlation with E[r^2] = 1 / (2 eta + 2),
    the LKJ marginal (r + 1) / 2 ~ Beta(eta - 1 + q/2, same)."""
    from bayes_glmm.bayes.corr import cpc_chol, lkj_shape

    q = 3
    a, c = lkj_shape(q, eta)
    g = np.linspace(-14, 14, 141)
    Y = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    ay = np.abs(Y)
    w = np.exp(c - 2 * ((ay + np.log1p(np.exp(-2 * ay)) - np.log(2)) * a).sum(1)) * (g[1] - g[0]) ** 3
    assert w.sum() == pytest.approx(1.0, abs=1e-6)
    assert cpc_chol(Y[123], q, a, c)[1] == pytest.approx(np.log(w[123] / (g[1] - g[0]) ** 3), abs=1e-12)
    z = np.tanh(Y)  # L rows: (1, 0, 0), (z0, s0, 0), (z1, z2 sqrt(1 - z1^2), ...)
    r10, r20 = z[:, 0], z[:, 1]
    r21 = z[:, 0] * z[:, 1] + np.sqrt(1 - z[:, 0] ** 2) * z[:, 2] * np.sqrt(1 - z[:, 1] ** 2)
    for r in (r10, r20, r21):
        assert float(w @ r ** 2) == pytest.approx(1.0 / (2 * eta + 2), abs=1e-5)

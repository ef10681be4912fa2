"""Maximum-likelihood fits with covariance structures (us, diag, cs, ar1, toep).

The deviances are checked against dense-matrix computations of the same marginal
likelihood (a brute force that shares nothing with the sparse block factorization), the
analytic gradients against finite differences, and fits of simulated data against the
truth; the VarCorr table and the summary against glmmTMB's layout.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import optimize as sopt
from scipy.special import gammaln

import bayes_glmm as bg
from bayes_glmm.covariance import STRUCTURES
from bayes_glmm.ml import agq, laplace, linalg
from bayes_glmm.ml.lmm import lmm_criterion, lmm_data, lmm_solve
from bayes_glmm.ml.optimize import fd_gradient, fd_hessian_pd, lambdas_from_theta, theta_layout
from bayes_glmm.ml.pirls import make_response


def _sim(J=60, T=4, rho=0.6, sd=1.0, sigma=0.5, seed=1, cov=None, reps=1):
    """Repeated measures: T time points per subject (``reps`` rows each), AR(1) (or
    ``cov``) random effects."""
    rng = np.random.default_rng(seed)
    S = sd ** 2 * rho ** np.abs(np.subtract.outer(np.arange(T), np.arange(T))) if cov is None else cov
    b = rng.multivariate_normal(np.zeros(T), S, size=J)
    g = np.repeat(np.arange(J), T * reps)
    t = np.tile(np.arange(T), J * reps)
    x = rng.normal(size=J * T * reps)
    eta = 0.3 + 0.5 * x + b[g, t]
    return pd.DataFrame({"g": [f"s{i:03d}" for i in g], "t": t, "x": x,
                         "y": eta + sigma * rng.normal(size=J * T * reps),
                         "c": rng.poisson(np.exp(0.5 * eta))})


def _fit(formula, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bg.GLMM(formula, data, family=kw.pop("family", "gaussian")).fit_ml(**kw)


# ------------------------------------------------------------------ (1) us and diag are lme4's terms
@pytest.mark.parametrize("reml", [True, False])
def test_diag_and_us_are_lme4_terms_exactly(reml):
    d = bg.datasets.load("sleepstudy")
    pairs = [("Reaction ~ Days + (Days || Subject)", "Reaction ~ Days + diag(Days | Subject)"),
             ("Reaction ~ Days + (Days | Subject)", "Reaction ~ Days + us(Days | Subject)")]
    for a, b in pairs:
        ra, rb = _fit(a, d, reml=reml), _fit(b, d, reml=reml)
        assert ra.loglik == rb.loglik
        np.testing.assert_array_equal(ra.theta.values, rb.theta.values)
        np.testing.assert_array_equal(ra.fixef.values, rb.fixef.values)
        pd.testing.assert_frame_equal(ra.varcorr, rb.varcorr)


def test_diag_and_us_glmm_are_lme4_terms_exactly():
    d = _sim(J=40, T=3, seed=3)
    for a, b in [("c ~ x + (x || g)", "c ~ x + diag(x | g)"), ("c ~ x + (x | g)", "c ~ x + us(x | g)")]:
        ra, rb = _fit(a, d, family="poisson"), _fit(b, d, family="poisson")
        assert ra.loglik == rb.loglik
        np.testing.assert_array_equal(ra.theta.values, rb.theta.values)


# ------------------------------------------------------------------ (2) deviances by brute force
def _dense(spec):
    t = spec.terms[0]
    n, q, J = spec.n, t.q, t.n_levels
    Z = np.zeros((n, J * q))
    Z[np.arange(n)[:, None], t.codes[:, None] * q + np.arange(q)[None, :]] = t.Xr
    return np.asarray(spec.X, float), Z, np.asarray(spec.y, float)


def _brute_lmm(spec, theta, reml):
    """-2 (restricted) log-likelihood, beta and sigma profiled, from the dense V = Z Sigma Z' + I."""
    X, Z, y = _dense(spec)
    t = spec.terms[0]
    L = t.cov.lambda_(theta, t.q)
    V = Z @ np.kron(np.eye(t.n_levels), L @ L.T) @ Z.T + np.eye(len(y))
    Vi = np.linalg.inv(V)
    beta = np.linalg.solve(X.T @ Vi @ X, X.T @ Vi @ y)
    r = y - X @ beta
    rss = float(r @ Vi @ r)
    n, p = X.shape
    ld = np.linalg.slogdet(V)[1]
    if reml:
        m = n - p
        return ld + np.linalg.slogdet(X.T @ Vi @ X)[1] + m * (1 + np.log(2 * np.pi * rss / m))
    return ld + n * (1 + np.log(2 * np.pi * rss / n))


@pytest.mark.parametrize("structure", ["cs", "ar1", "hetar1", "toep", "us", "diag"])
@pytest.mark.parametrize("reml", [True, False])
def test_lmm_criterion_equals_dense_marginal_likelihood(structure, reml):
    d = _sim(J=12, T=4, seed=5)
    spec = bg.GLMM(f"y ~ x + {structure}(0 + factor(t) | g)", d).spec
    t = spec.terms[0]
    rng = np.random.default_rng(0)
    lo = t.cov.theta_lower(t.q)
    for _ in range(3):
        theta = np.where(np.isfinite(lo), rng.uniform(0.3, 1.5, lo.size), rng.uniform(-1.5, 1.5, lo.size))
        sl, _, _ = theta_layout(spec.terms)
        dd = lmm_data(spec)
        got = lmm_criterion(lmm_solve(dd, lambdas_from_theta(theta, spec.terms, sl)), dd, reml)
        assert got == pytest.approx(_brute_lmm(spec, theta, reml), rel=1e-10, abs=1e-8)


def _brute_poisson_laplace(spec, theta, beta):
    """Laplace deviance of a Poisson GLMM in b with Sigma = Lambda Lambda' (dense Newton)."""
    X, Z, y = _dense(spec)
    t = spec.terms[0]
    L = t.cov.lambda_(theta, t.q)
    Sig = np.kron(np.eye(t.n_levels), L @ L.T)
    Si = np.linalg.inv(Sig)
    b = np.zeros(Z.shape[1])
    for _ in range(100):
        mu = np.exp(X @ beta + Z @ b)
        g = Z.T @ (y - mu) - Si @ b
        H = Z.T @ (mu[:, None] * Z) + Si
        step = np.linalg.solve(H, g)
        b = b + step
        if np.max(np.abs(step)) < 1e-13:
            break
    eta = X @ beta + Z @ b
    ll = float(np.sum(y * eta - np.exp(eta) - gammaln(y + 1)))
    mu = np.exp(eta)
    # |Lambda' Z'WZ Lambda + I| = |I + Sigma Z'WZ|
    ld = np.linalg.slogdet(np.eye(Z.shape[1]) + Sig @ (Z.T @ (mu[:, None] * Z)))[1]
    return -2.0 * (ll - 0.5 * float(b @ Si @ b)) + ld


@pytest.mark.parametrize("structure", ["cs", "ar1", "toep"])
def test_poisson_laplace_deviance_equals_dense_computation(structure):
    d = _sim(J=15, T=3, seed=7)
    spec = bg.GLMM(f"c ~ x + {structure}(0 + factor(t) | g)", d, family="poisson").spec
    resp = make_response(spec)
    s = linalg.build_structure(spec.terms)
    sl, lo, _ = theta_layout(spec.terms)
    dev = laplace.make_deviance(resp, s, spec.terms, sl)
    rng = np.random.default_rng(1)
    for _ in range(3):
        theta = np.where(np.isfinite(lo), rng.uniform(0.3, 1.0, lo.size), rng.uniform(-1.0, 1.0, lo.size))
        beta = np.array([0.1, 0.3])
        assert dev(np.concatenate([theta, beta])) == pytest.approx(
            _brute_poisson_laplace(spec, theta, beta), rel=1e-9, abs=1e-7)


# ------------------------------------------------------------------ (3) dLambda/dtheta and gradients
@pytest.mark.parametrize("name", sorted(STRUCTURES))
@pytest.mark.parametrize("q", [1, 2, 3, 4])
def test_lambda_jacobian_equals_finite_differences(name, q):
    cov = STRUCTURES[name]
    rng = np.random.default_rng(q)
    lo = cov.theta_lower(q)
    theta = np.where(np.isfinite(lo), rng.uniform(0.3, 1.5, lo.size), rng.uniform(-1.2, 1.2, lo.size))
    J = cov.lambda_jacobian(theta, q)
    assert J.shape == (cov.n_theta(q), q, q)
    h = 1e-6
    for k in range(theta.size):
        e = np.zeros(theta.size)
        e[k] = h
        fd = (cov.lambda_(theta + e, q) - cov.lambda_(theta - e, q)) / (2 * h)
        np.testing.assert_allclose(J[k], fd, atol=1e-8)


@pytest.mark.parametrize("structure,n_agq", [("cs", 1), ("ar1", 1), ("toep", 1), ("ar1", 3), ("cs", 3)])
def test_analytic_gradient_of_structured_term_equals_finite_differences(structure, n_agq):
    d = _sim(J=25, T=3, seed=11)
    spec = bg.GLMM(f"c ~ x + {structure}(0 + factor(t) | g)", d, family="poisson").spec
    resp = make_response(spec)
    s = linalg.build_structure(spec.terms)
    assert agq.supports_gradient(resp, s, n_agq)
    sl, lo, _ = theta_layout(spec.terms)
    fg = laplace.make_devgrad(resp, s, spec.terms, sl, n_agq)
    dev = laplace.make_deviance(resp, s, spec.terms, sl, n_agq)
    theta = np.where(np.isfinite(lo), 0.7, 0.4)
    x = np.concatenate([theta, [0.1, 0.3]])
    f, g = fg(x)
    assert f == pytest.approx(dev(x), rel=1e-10)
    np.testing.assert_allclose(g, fd_gradient(dev, x, h=1e-5), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("structure,n_agq", [("toep", 1), ("ar1", 3)])
def test_predicted_modes_are_only_a_warm_start(structure, n_agq):
    # make_devgrad leaves u(x) and du/dx; a nearby point (a Hessian stencil) starts PIRLS at
    # u(x) + du dx: one Newton step, the same deviance and gradient as a cold start there
    d = _sim(J=25, T=3, seed=11)
    spec = bg.GLMM(f"c ~ x + {structure}(0 + factor(t) | g)", d, family="poisson").spec
    resp = make_response(spec)
    s = linalg.build_structure(spec.terms)
    sl, lo, _ = theta_layout(spec.terms)
    state = {}
    fg = laplace.make_devgrad(resp, s, spec.terms, sl, n_agq, state)
    x = np.concatenate([np.where(np.isfinite(lo), 0.7, 0.4), [0.1, 0.3]])
    fg(x)
    xp, up, du = state["pred"]
    assert du.shape == (up.size, x.size)
    h = 1e-5
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = h
        mp = laplace.make_devgrad(resp, s, spec.terms, sl, n_agq, st := {})
        mp(x + e)
        u_plus = st["last"].u
        mp(x - e)
        np.testing.assert_allclose((u_plus - st["last"].u) / (2 * h), du[:, i], rtol=1e-5, atol=1e-6)
    e = np.full(x.size, 1e-4)
    f1, g1 = fg(x + e)
    assert state["last"].iters == 1
    f0, g0 = laplace.make_devgrad(resp, s, spec.terms, sl, n_agq, {})(x + e)
    assert f1 == pytest.approx(f0, rel=1e-12)
    np.testing.assert_allclose(g1, g0, rtol=1e-8, atol=1e-8)


def test_forward_difference_hessian_is_close_to_central():
    # the stage-2 preconditioner's forward differences (d + 1 gradients): O(delta) from the
    # central-difference Hessian the standard errors use
    d = _sim(J=25, T=3, seed=11)
    spec = bg.GLMM("c ~ x + toep(0 + factor(t) | g)", d, family="poisson").spec
    resp = make_response(spec)
    s = linalg.build_structure(spec.terms)
    sl, lo, _ = theta_layout(spec.terms)
    fg = laplace.make_devgrad(resp, s, spec.terms, sl, 1)
    x = np.concatenate([np.where(np.isfinite(lo), 0.7, 0.4), [0.1, 0.3]])
    Hc, nc = fd_hessian_pd(fg, x)
    Hf, nf = fd_hessian_pd(fg, x, central=False)
    assert (nc, nf) == (2 * x.size, x.size + 1)
    np.testing.assert_allclose(Hf, Hc, rtol=0, atol=1e-3 * np.max(np.abs(Hc)))


# ------------------------------------------------------------------ (4) recovery of the truth
def test_ar1_lmm_recovers_truth():
    d = _sim(J=300, T=5, rho=0.6, sd=1.0, sigma=0.5, seed=2)
    r = _fit("y ~ x + ar1(0 + factor(t) | g)", d, reml=True)
    vc = r.varcorr
    sds = vc[(vc.grp == "g") & vc.var2.isna()].sdcor.values
    rho = vc[(vc.grp == "g") & (vc.var1 == "factor(t)0") & (vc.var2 == "factor(t)1")].sdcor.iloc[0]
    np.testing.assert_allclose(sds, 1.0, atol=0.1)
    assert np.ptp(sds) < 1e-10  # one SD
    assert rho == pytest.approx(0.6, abs=0.08)
    assert r.sigma == pytest.approx(0.5, abs=0.1)
    assert r.fixef["x"] == pytest.approx(0.5, abs=0.05)
    assert r.converged


@pytest.mark.parametrize("structure", ["cs", "toep"])
def test_cs_and_toep_lmm_recover_truth(structure):
    sd = np.array([1.0, 1.3, 0.8, 1.1])
    R = {"cs": np.full((4, 4), 0.4) + 0.6 * np.eye(4),
         "toep": np.array([[1, .5, .2, .1], [.5, 1, .5, .2], [.2, .5, 1, .5], [.1, .2, .5, 1]])}[structure]
    S, sigma = R * np.outer(sd, sd), 0.4
    d = _sim(J=400, T=4, cov=S, sigma=sigma, seed=4)
    r = _fit(f"y ~ x + {structure}(0 + factor(t) | g)", d, reml=True)
    assert r.converged
    # the structure's parameters trade off against sigma (a nugget on the diagonal), so
    # the marginal covariance of a subject's rows is what the data pin down
    np.testing.assert_allclose(r.covs[0] + r.sigma ** 2 * np.eye(4), S + sigma ** 2 * np.eye(4), atol=0.15)
    cov = r.covs[0]
    Rf = cov / np.outer(np.sqrt(np.diag(cov)), np.sqrt(np.diag(cov)))
    lags = [np.diag(Rf, -k) for k in range(1, 4)]
    if structure == "cs":
        assert np.ptp(Rf[np.tril_indices(4, -1)]) < 1e-10  # one common correlation
    else:
        assert all(np.ptp(v) < 1e-10 for v in lags)  # one correlation per lag
    # and the fit is at least as good as the truth
    spec = r.spec
    t = spec.terms[0]
    theta_true = t.cov.theta_from_lambda(np.linalg.cholesky(S) / sigma)
    dd = lmm_data(spec)
    sl, _, _ = theta_layout(spec.terms)
    dev_true = lmm_criterion(lmm_solve(dd, lambdas_from_theta(theta_true, spec.terms, sl)), dd, True)
    assert -2 * r.loglik <= dev_true + 1e-8


def test_poisson_ar1_recovers_truth():
    d = _sim(J=250, T=5, rho=0.7, sd=0.8, seed=8)
    r = _fit("c ~ x + ar1(0 + factor(t) | g)", d, family="poisson")
    vc = r.varcorr
    rho = vc[(vc.var1 == "factor(t)0") & (vc.var2 == "factor(t)1")].sdcor.iloc[0]
    sd = vc[vc.var2.isna()].sdcor.iloc[0]
    # the counts see 0.5 * eta
    assert sd == pytest.approx(0.4, abs=0.08)
    assert rho == pytest.approx(0.7, abs=0.12)
    assert r.converged


# ------------------------------------------------------------------ (5) output
def test_varcorr_and_summary_layout():
    d = _sim(J=60, T=4, seed=12)
    r = _fit("y ~ x + ar1(0 + factor(t) | g)", d)
    vc = r.varcorr
    assert list(vc.columns) == ["grp", "var1", "var2", "vcov", "sdcor"]
    assert len(vc) == 4 + 6 + 1  # four variances, every pair, the residual
    pairs = vc[vc.var2.notna()]
    rho = pairs.sdcor.iloc[0]
    lag = {("factor(t)0", "factor(t)1"): 1, ("factor(t)0", "factor(t)2"): 2, ("factor(t)0", "factor(t)3"): 3,
           ("factor(t)1", "factor(t)2"): 1, ("factor(t)1", "factor(t)3"): 2, ("factor(t)2", "factor(t)3"): 1}
    for _, row in pairs.iterrows():
        assert row.sdcor == pytest.approx(rho ** lag[(row.var1, row.var2)], rel=1e-10)
    text = str(r)
    assert f"{rho:.2f} (ar1)" in text
    assert "factor(t)1" not in text.split("Random effects:")[1].split("Residual")[0]  # one SD: one row
    assert list(r.theta.index) == ["g.sd", "g.rho"]
    r = _fit("y ~ x + cs(0 + factor(t) | g)", d)
    assert "(cs)" in str(r)
    assert len(r.varcorr) == 11
    r = _fit("y ~ x + toep(0 + factor(t) | g)", d)
    block = str(r).split("Random effects:")[1].split("Number of obs")[0]
    assert "(toep)" not in block and len(block.splitlines()) >= 6  # the full lower triangle


def test_compare_lrt_and_profile_with_structures():
    d = _sim(J=60, T=4, seed=13, reps=2)  # two rows per subject and time: diag is identified
    r_ar1 = _fit("y ~ x + ar1(0 + factor(t) | g)", d, reml=False)
    r_toep = _fit("y ~ x + toep(0 + factor(t) | g)", d, reml=False)
    r_cs = _fit("y ~ x + cs(0 + factor(t) | g)", d, reml=False)
    r_diag = _fit("y ~ x + diag(0 + factor(t) | g)", d, reml=False)
    t = bg.lrt(r_ar1, r_toep)
    assert t.df == r_toep.fit.theta.size - r_ar1.fit.theta.size == 5
    assert t.chisq == pytest.approx(2 * (r_toep.loglik - r_ar1.loglik))
    assert bg.lrt(r_diag, r_cs).df == 1
    assert bg.lrt(r_cs, r_toep).df == 2
    with pytest.raises(ValueError, match="not a special case"):
        bg.lrt(r_ar1, r_cs)
    tab = bg.compare(r_ar1, r_cs)
    assert tab is not None
    ci = r_ar1.confint(method="profile", parm=["cor_rho|g", "sd_factor(t)0|g"])
    vc = r_ar1.varcorr
    rho = vc[vc.var2.notna()].sdcor.iloc[0]
    assert ci.loc["cor_rho|g", "lower"] < rho < ci.loc["cor_rho|g", "upper"]
    assert not ci.attrs["notes"]


def test_post_fit_methods_with_structures():
    d = _sim(J=30, T=4, seed=14)
    r = _fit("y ~ x + ar1(0 + factor(t) | g)", d, reml=True)
    sat = r.coef_table(ddf="satterthwaite")
    assert np.all(np.isfinite(sat["df"]))
    with pytest.raises(ValueError, match="kenward-roger"):
        r.coef_table(ddf="kenward-roger")
    sims = r.simulate(2, random_seed=1)
    assert sims.shape[0] == len(d)
    re = r.ranef["g"]
    assert re.shape == (30, 4)
    assert np.all(np.isfinite(r.ranef_sd["g"].to_numpy()))
    assert np.all(np.isfinite(r.predict(d)))
    boot = r.bootstrap(n=3, random_seed=2, progressbar=False)
    assert boot.shape[0] == 3


def test_correlation_at_its_boundary():
    """A toep correlation running to -1 (its parameter to -inf): no NaN Lambda on the way
    (no RuntimeWarning), the fit counts as converged and the SEs are conditional on it."""
    from bayes_glmm.ml.optimize import CORR_SATURATED

    d = _sim(J=40, T=3, seed=21)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.filterwarnings("ignore", "boundary", UserWarning)
        r = bg.GLMM("c ~ x + toep(0 + factor(t) | g)", d, family="poisson").fit_ml()
    assert np.max(np.abs(r.theta.values[3:])) > CORR_SATURATED
    assert r.converged
    assert np.all(np.isfinite(r.se)) and np.all(r.se > 0)
    assert r.is_singular


def test_glmm_agq_and_profile_with_a_structured_term():
    d = _sim(J=60, T=2, rho=0.7, sd=1.0, seed=22)
    m = bg.GLMM("c ~ x + ar1(0 + factor(t) | g)", d, family="poisson")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lap, agq5, agq9 = m.fit_ml(), m.fit_ml(n_agq=5), m.fit_ml(n_agq=9)
    assert agq5.converged and agq9.converged
    assert agq5.loglik == pytest.approx(agq9.loglik, abs=2e-3)  # the quadrature has converged
    assert abs(agq9.loglik - lap.loglik) < 0.5
    ci = lap.confint(method="profile", parm=["cor_rho|g"])
    rho = lap.varcorr[lap.varcorr.var2.notna()].sdcor.iloc[0]
    assert -1.0 <= ci.loc["cor_rho|g", "lower"] < rho < ci.loc["cor_rho|g", "upper"] <= 1.0


@pytest.mark.parametrize("formula", ["y ~ x + ar1(0 + factor(t) | g)", "y ~ x + toep(0 + factor(t) | g)",
                                     "y ~ x + cs(0 + factor(t) | g)", "y ~ x + (1 + x | g)", "y ~ x + (x || g)"])
@pytest.mark.parametrize("reml", [True, False])
def test_lmm_gradient_equals_finite_differences(formula, reml):
    from bayes_glmm.ml.lmm import lmm_gradient

    d = _sim(J=20, T=4, seed=3, reps=2)
    d["w"] = np.random.default_rng(0).uniform(0.5, 2.0, len(d))
    spec = bg.GLMM(formula, d, weights="w").spec
    dd = lmm_data(spec)
    sl, lo, _ = theta_layout(spec.terms)
    theta = np.where(np.isfinite(lo), 0.8, 0.3)
    lam = lambdas_from_theta(theta, spec.terms, sl)
    g = lmm_gradient(dd, lmm_solve(dd, lam), lam, agq.theta_directions(spec.terms[0], theta), reml)

    def crit(t):
        return lmm_criterion(lmm_solve(dd, lambdas_from_theta(t, spec.terms, sl)), dd, reml)

    np.testing.assert_allclose(g, fd_gradient(crit, theta, h=1e-6), atol=5e-7)


def test_residual_sd_running_to_zero_is_followed_and_bounded():
    """ar1 on a Toeplitz truth with one row per subject and time: the residual SD's optimum
    is 0; the fit follows it until the criterion's digits run out and reports convergence."""
    rng = np.random.default_rng(5)
    R = np.array([[1, .6, .3, .2], [.6, 1, .6, .3], [.3, .6, 1, .6], [.2, .3, .6, 1]])
    d = _sim(J=100, T=4, cov=R, sigma=0.0, seed=5)
    d["y"] = d["y"] + 1e-3 * rng.normal(size=len(d))
    for reml in (False, True):
        r = _fit("y ~ x + ar1(0 + factor(t) | g)", d, reml=reml)
        assert r.converged
        assert r.sigma < 0.05 * r.varcorr.sdcor.iloc[0]
        assert np.isfinite(r.loglik)

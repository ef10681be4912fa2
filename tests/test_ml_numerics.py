"""Numerical checks of the ML path against dense / brute-force computations (fast)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize

from bayes_glmm.families import get_family
from bayes_glmm.ml import fit_raw, linalg
from bayes_glmm.ml.agq import agq_loglik
from bayes_glmm.ml.lmm import lmm_criterion, lmm_data, lmm_solve
from bayes_glmm.ml.pirls import loglik_rows, make_response, pirls
from bayes_glmm.spec.model_spec import ModelSpec, RandomTerm


# ---------------------------------------------------------------------------------------
# helpers: hand-built specs (independent of the formula layer)
# ---------------------------------------------------------------------------------------
def _term(name, g, Xr, correlated=True):
    codes, levels = pd.factorize(np.asarray(g), sort=True)
    Xr = np.asarray(Xr, float).reshape(len(codes), -1)
    coef = ("(Intercept)",) + tuple(f"x{i}" for i in range(1, Xr.shape[1]))
    return RandomTerm(name, name, coef, correlated and Xr.shape[1] > 1, codes, levels, Xr)


def _spec(y, X, terms, family="gaussian", trials=None, offset=None, weights=None, names=None):
    n = len(y)
    names = names or tuple(f"b{i}" for i in range(X.shape[1]))
    return ModelSpec("y ~ ...", get_family(family), "y", np.asarray(y, float), trials, np.asarray(X, float),
                     tuple(names), np.zeros(n) if offset is None else offset,
                     np.ones(n) if weights is None else weights, tuple(terms), pd.RangeIndex(n))


def _bernoulli_small(seed=1, J=4, m=6):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(J), m)
    x = rng.normal(size=J * m)
    eta = -0.3 + 0.8 * x + 1.2 * rng.normal(size=J)[g]
    y = (rng.random(J * m) < 1 / (1 + np.exp(-eta))).astype(float)
    X = np.column_stack([np.ones(J * m), x])
    return _spec(y, X, [_term("g", g, np.ones(J * m))], family="bernoulli")


def _poisson_slope(seed=2, J=5, m=8):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(J), m)
    x = np.tile(np.linspace(-1, 1, m), J)
    b = rng.normal(size=(J, 2)) * [0.6, 0.4]
    y = rng.poisson(np.exp(0.5 + 0.3 * x + b[g, 0] + b[g, 1] * x)).astype(float)
    X = np.column_stack([np.ones(J * m), x])
    return _spec(y, X, [_term("g", g, X)], family="poisson")


def _state(spec, theta, beta, slices=None):
    from bayes_glmm.ml.optimize import lambdas_from_theta, theta_layout
    sl, _, _ = theta_layout(spec.terms)
    resp = make_response(spec)
    s = linalg.build_structure(spec.terms)
    lam = lambdas_from_theta(np.asarray(theta, float), spec.terms, sl)
    pr = pirls(resp, s, lam, np.asarray(beta, float))
    return resp, s, lam, pr


def _group_h(resp, spec, lam, beta, j):
    """h_j(u) = sum_i log f(y_i | eta_i(u)) - ||u||^2 / 2 for one group, as a function of u."""
    t = spec.terms[0]
    rows = np.flatnonzero(t.codes == j)
    base = spec.offset[rows] + spec.X[rows] @ beta
    Xr = t.Xr[rows]

    def h(u):
        u = np.atleast_1d(u)
        eta = base + Xr @ (lam[0] @ u)
        sub = type(resp)(resp.family, resp.y[rows], resp.n_trials[rows], resp.pw[rows], resp.offset[rows], resp.X[rows])
        return float(np.sum(loglik_rows(sub, eta)) - 0.5 * u @ u)

    return h


# ---------------------------------------------------------------------------------------
# Laplace and AGQ against brute force
# ---------------------------------------------------------------------------------------
def test_laplace_and_agq_vs_quadrature_scalar():
    spec = _bernoulli_small()
    theta, beta = np.array([1.3]), np.array([-0.2, 0.7])
    resp, s, lam, pr = _state(spec, theta, beta)
    exact, lap = 0.0, 0.0
    for j in range(spec.terms[0].n_levels):
        h = _group_h(resp, spec, lam, beta, j)
        val, _ = integrate.quad(lambda u: np.exp(h(u)) / np.sqrt(2 * np.pi), -12, 12, epsabs=0, epsrel=1e-12, limit=200)
        exact += np.log(val)
        # independent Laplace: mode by scipy, curvature of the logistic log-density by hand
        uh = optimize.minimize_scalar(lambda u: -h(u), bracket=(-3, 3), tol=1e-12).x
        t = spec.terms[0]
        rows = t.codes == j
        p = 1 / (1 + np.exp(-(spec.X[rows] @ beta + lam[0][0, 0] * uh)))
        lap += h(uh) - 0.5 * np.log(1 + lam[0][0, 0] ** 2 * np.sum(p * (1 - p)))
    assert -0.5 * pr.laplace_deviance == pytest.approx(lap, abs=1e-8)
    assert agq_loglik(resp, s, lam, pr, 30) == pytest.approx(exact, abs=1e-8)
    assert 1e-4 < abs(lap - exact) < 0.2  # the Laplace approximation is close but not exact


def test_n_agq_1_is_laplace_exactly():
    spec = _poisson_slope()
    theta, beta = np.array([0.5, 0.1, 0.3]), np.array([0.4, 0.2])
    resp, s, lam, pr = _state(spec, theta, beta)
    assert agq_loglik(resp, s, lam, pr, 1) == pytest.approx(-0.5 * pr.laplace_deviance, rel=1e-14, abs=1e-11)
    fit1 = fit_raw(_bernoulli_small(), n_agq=1)
    assert fit1.method == "Laplace"


def test_vector_agq_converges_to_dense_grid():
    spec = _poisson_slope(J=3, m=6)
    theta, beta = np.array([0.7, 0.2, 0.5]), np.array([0.4, 0.2])
    resp, s, lam, pr = _state(spec, theta, beta)
    vals = [agq_loglik(resp, s, lam, pr, k) for k in (1, 3, 5, 9, 15)]
    # brute force: dense 2-D grid in the original u coordinates around each mode
    exact = 0.0
    u_hat = pr.u.reshape(-1, 2)
    from scipy.special import gammaln
    t = spec.terms[0]
    for j in range(3):
        rows = t.codes == j
        g1 = np.linspace(-7, 7, 281)
        du = g1[1] - g1[0]
        U1, U2 = np.meshgrid(g1 + u_hat[j, 0], g1 + u_hat[j, 1], indexing="ij")
        U = np.vstack([U1.ravel(), U2.ravel()])  # (2, G)
        eta = (spec.X[rows] @ beta)[:, None] + t.Xr[rows] @ lam[0] @ U
        yj = spec.y[rows][:, None]
        H = np.sum(yj * eta - np.exp(eta) - gammaln(yj + 1), axis=0) - 0.5 * np.sum(U * U, axis=0)
        m = H.max()
        exact += m + np.log(np.sum(np.exp(H - m)) * du * du / (2 * np.pi))
    errs = [abs(v - exact) for v in vals]
    assert errs[-1] < 1e-6
    assert errs[2] < errs[0] and errs[3] < 1e-4


def test_vector_agq_fit_moves_towards_exact():
    spec = _poisson_slope(J=6, m=5)
    f1 = fit_raw(spec, n_agq=1)
    f7 = fit_raw(spec, n_agq=7)
    f11 = fit_raw(spec, n_agq=11)
    assert f7.method == "AGQ(7)"
    assert np.allclose(f7.beta, f11.beta, atol=1e-3)
    assert abs(f7.loglik - f11.loglik) < 1e-4
    assert abs(f1.loglik - f11.loglik) < 1.0  # same scale


def test_agq_several_terms_raises():
    rng = np.random.default_rng(0)
    n = 40
    spec = _spec(rng.integers(0, 2, n).astype(float), np.ones((n, 1)),
                 [_term("a", np.arange(n) % 5, np.ones(n)), _term("b", np.arange(n) % 4, np.ones(n))],
                 family="bernoulli")
    with pytest.raises(ValueError, match="n_agq=1"):
        fit_raw(spec, n_agq=5)


# ---------------------------------------------------------------------------------------
# LMM against the dense marginal likelihood
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("reml", [True, False])
def test_lmm_criterion_matches_dense(reml):
    rng = np.random.default_rng(3)
    J, m = 6, 7
    n = J * m
    g = np.repeat(np.arange(J), m)
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x])
    y = 1 + 0.5 * x + rng.normal(size=J)[g] + 0.3 * rng.normal(size=J)[g] * x + rng.normal(size=n)
    w = rng.uniform(0.5, 2.0, n)
    spec = _spec(y, X, [_term("g", g, X), _term("h", np.arange(n) % 3, np.ones(n))], weights=w)
    theta = np.array([0.8, 0.2, 0.4, 0.6])
    from bayes_glmm.ml.optimize import lambdas_from_theta, theta_layout
    sl, _, _ = theta_layout(spec.terms)
    lam = lambdas_from_theta(theta, spec.terms, sl)
    d = lmm_data(spec)
    ours = lmm_criterion(lmm_solve(d, lam), d, reml)
    Z = spec.Z().toarray()
    Lam = np.zeros((Z.shape[1], Z.shape[1]))
    Lam[:12, :12] = np.kron(np.eye(J), lam[0])
    Lam[12:, 12:] = lam[1][0, 0] * np.eye(3)
    V0 = Z @ Lam @ Lam.T @ Z.T + np.diag(1 / w)
    Vi = np.linalg.inv(V0)
    bh = np.linalg.solve(X.T @ Vi @ X, X.T @ Vi @ y)
    r = y - X @ bh
    pw = r @ Vi @ r
    ld = np.linalg.slogdet(V0)[1]
    if reml:
        dense = ld + np.linalg.slogdet(X.T @ Vi @ X)[1] + (n - 2) * (1 + np.log(2 * np.pi * pw / (n - 2)))
    else:
        dense = ld + n * (1 + np.log(2 * np.pi * pw / n))
    assert ours == pytest.approx(dense, abs=1e-9)


def test_lmm_sleepstudy_matches_lmer():
    from bayes_glmm.datasets import load
    d = load("sleepstudy")
    n = len(d)
    X = np.column_stack([np.ones(n), d["Days"].to_numpy(float)])
    spec = _spec(d["Reaction"].to_numpy(float), X, [_term("Subject", d["Subject"].to_numpy(), X)])
    f = fit_raw(spec)
    # lmer(Reaction ~ Days + (Days | Subject), sleepstudy): lme4 1.1-31
    assert f.loglik == pytest.approx(-871.81413598, abs=1e-6)
    assert f.sigma == pytest.approx(25.59179572, rel=1e-5)
    assert np.sqrt(np.diag(f.vcov_beta)) == pytest.approx([6.824596695, 1.545789644], rel=1e-4)
    fm = fit_raw(spec, reml=False)
    assert fm.loglik == pytest.approx(-875.969672244, abs=1e-6)


# ---------------------------------------------------------------------------------------
# PIRLS, rank deficiency, crossed structure
# ---------------------------------------------------------------------------------------
def test_pirls_step_halving_reaches_mode():
    rng = np.random.default_rng(5)
    J, m = 3, 5
    g = np.repeat(np.arange(J), m)
    y = rng.poisson(np.exp(np.array([4.0, -1.0, 2.5])[g])).astype(float)
    spec = _spec(y, np.ones((J * m, 1)), [_term("g", g, np.ones(J * m))], family="poisson")
    resp, s, lam, pr = _state(spec, [3.0], [0.0])  # far from the modes: full Newton steps overshoot
    assert pr.converged and pr.halvings > 0
    for j in range(J):
        h = _group_h(resp, spec, lam, np.zeros(1), j)
        uj = optimize.minimize_scalar(lambda u: -h(u), bracket=(-2, 2), tol=1e-12).x
        assert pr.u[j] == pytest.approx(uj, abs=1e-6)


def test_rank_deficient_X_names_columns():
    rng = np.random.default_rng(0)
    n = 30
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x, 2 * x])
    spec = _spec(rng.normal(size=n), X, [_term("g", np.arange(n) % 5, np.ones(n))], names=("(Intercept)", "x", "x2"))
    with pytest.raises(ValueError, match="x2|x"):
        fit_raw(spec)


def test_crossed_structure_equals_dense():
    rng = np.random.default_rng(7)
    n = 120
    a, b, c = rng.integers(0, 9, n), rng.integers(0, 4, n), rng.integers(0, 3, n)
    xs = rng.normal(size=n)
    terms = [_term("b", b, np.ones(n)), _term("a", a, np.column_stack([np.ones(n), xs])),
             _term("c", c, np.column_stack([np.ones(n), xs]), correlated=False)]
    s = linalg.build_structure(terms)
    assert s.first == 1  # the term with most random effects is block-diagonal
    lams = [np.array([[0.7]]), np.array([[1.1, 0.0], [0.3, 0.5]]), np.diag([0.4, 0.9])]
    w = rng.uniform(0.1, 2.0, n)
    F = linalg.factorize(s, linalg.crossprods(s, w), lams)
    Z = np.hstack([t.Z().toarray() for t in terms])
    Lam = np.zeros((Z.shape[1], Z.shape[1]))
    pos = 0
    for t, L in zip(terms, lams):
        k = t.n_levels * t.q
        Lam[pos:pos + k, pos:pos + k] = np.kron(np.eye(t.n_levels), L)
        pos += k
    A = Lam.T @ Z.T @ (w[:, None] * Z) @ Lam + np.eye(Z.shape[1])
    assert F.logdet == pytest.approx(np.linalg.slogdet(A)[1], rel=1e-12)
    r = rng.normal(size=(Z.shape[1], 2))
    assert np.allclose(F.solve(r), np.linalg.solve(A, r), atol=1e-11)
    Ainv = np.linalg.inv(A)
    pos = 0
    for t, blk in zip(terms, F.inv_diag_blocks()):
        for j in range(t.n_levels):
            sl = slice(pos + j * t.q, pos + (j + 1) * t.q)
            assert np.allclose(blk[j], Ainv[sl, sl], atol=1e-12)
        pos += t.n_levels * t.q
    u = rng.normal(size=Z.shape[1])
    assert np.allclose(linalg.z_lam_u(s, lams, u), Z @ Lam @ u)
    assert np.allclose(linalg.lam_t(s, lams, linalg.zt_r(s, xs)), Lam.T @ Z.T @ xs)


def test_crossed_glmm_laplace_logdet_dense():
    rng = np.random.default_rng(11)
    n = 200
    a, b = rng.integers(0, 12, n), rng.integers(0, 5, n)
    eta = 0.2 + rng.normal(size=12)[a] * 0.8 + rng.normal(size=5)[b] * 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    spec = _spec(y, np.ones((n, 1)), [_term("a", a, np.ones(n)), _term("b", b, np.ones(n))], family="bernoulli")
    f = fit_raw(spec)
    assert f.method == "Laplace" and f.optimizer["converged"]
    resp, s, lam, pr = _state(spec, f.theta, f.beta)
    Z = spec.Z().toarray() @ np.diag(np.r_[np.full(12, f.theta[0]), np.full(5, f.theta[1])])
    A = Z.T @ (pr.W[:, None] * Z) + np.eye(17)
    dev = -2 * np.sum(loglik_rows(resp, pr.eta)) + pr.u @ pr.u + np.linalg.slogdet(A)[1]
    assert f.loglik == pytest.approx(-0.5 * dev, abs=1e-8)

"""Crossed scalar terms with sparse level co-occurrence: the Laplace gradient's inverse entries
from V's pairs (bayes_glmm.ml.multigrad._inverse_entries_crossed), the pair-built Schur
complement, and PIRLS steps by preconditioned conjugate gradients (bayes_glmm.ml.iterative)."""
from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm.ml import agq, laplace, linalg, multigrad
from bayes_glmm.ml import optimize as opt
from bayes_glmm.ml import pirls as P
from bayes_glmm.ml.iterative import pcg


@functools.lru_cache(maxsize=None)
def sim() -> pd.DataFrame:
    """500 rows, g (90 levels) x h (70 levels) x f (40 levels): few co-occurring pairs."""
    rng = np.random.default_rng(7)
    n = 500
    g, h, f = rng.integers(0, 90, n), rng.integers(0, 70, n), rng.integers(0, 40, n)
    x = rng.normal(size=n)
    eta = -0.2 + 0.5 * x + rng.normal(0, 0.9, 90)[g] + rng.normal(0, 0.6, 70)[h] + rng.normal(0, 0.4, 40)[f]
    return pd.DataFrame({"y": (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float), "x": x,
                         "g": [f"g{v}" for v in g], "h": [f"h{v}" for v in h], "f": [f"f{v}" for v in f]})


def _setup(re):
    spec = bg.GLMM(f"y ~ x + {re}", sim(), family="bernoulli").spec
    resp = P.make_response(spec)
    s = linalg.build_structure(spec.terms)
    sl, _, t0 = opt.theta_layout(spec.terms)
    return spec, resp, s, sl, t0


@pytest.mark.parametrize("re", ["(1 | g) + (1 | h)", "(1 | h) + (1 | g) + (1 | f)"])
def test_inverse_entries_match_the_dense_inverse(re):
    spec, resp, s, sl, t0 = _setup(re)
    assert multigrad.crossed_scalar(s)
    lam = opt.lambdas_from_theta(np.linspace(0.6, 1.3, t0.size), spec.terms, sl)
    pr = P.pirls(resp, s, lam, laplace.start_beta(resp))
    G = multigrad._inverse_entries_crossed(pr.factor, s)
    idx, _ = multigrad._rows(s, lam)
    Ainv = pr.factor.solve(np.eye(s.m))  # through the block factor, column by column
    A = np.linalg.inv(Ainv)
    np.testing.assert_allclose(G, Ainv[idx[:, :, None], idx[:, None, :]], rtol=1e-9, atol=1e-12)
    # the conditional variances' diagonal blocks (the same parts of A^{-1})
    for k, blk in enumerate(pr.factor.inv_diag_blocks()):
        np.testing.assert_allclose(blk[:, 0, 0], np.diag(Ainv)[s.starts[k]: s.starts[k] + s.J[k]], rtol=1e-10)
    # the Schur complement built from the pairs gives the same factor as the dense route
    Vd = pr.factor.dense_V().reshape(-1, s.m_rest)
    S_dense = pr.factor.L2 @ pr.factor.L2.T + Vd.T @ Vd  # = A22
    np.testing.assert_allclose(S_dense, A[np.ix_(_rest(s), _rest(s))], rtol=1e-10, atol=1e-10)


def _rest(s):
    return np.concatenate([np.arange(s.starts[k], s.starts[k] + s.J[k]) for k in s.rest])


def test_crossed_gradient_matches_finite_differences():
    spec, resp, s, sl, t0 = _setup("(1 | g) + (1 | h) + (1 | f)")
    assert agq.supports_gradient(resp, s, 1)
    x = np.concatenate([t0 * 0.8, laplace.start_beta(resp) + 0.05])
    dev = laplace.make_deviance(resp, s, spec.terms, sl, 1, {})
    f, g = laplace.make_devgrad(resp, s, spec.terms, sl, 1, {})(x)
    h = 1e-4
    gn = np.array([(dev(x + h * e) - dev(x - h * e)) / (2 * h) for e in np.eye(x.size)])
    np.testing.assert_allclose(g, gn, rtol=1e-5, atol=1e-5)


def test_pcg_steps_reach_the_same_mode(monkeypatch):
    spec, resp, s, sl, t0 = _setup("(1 | g) + (1 | h)")
    beta = laplace.start_beta(resp)
    pr0 = P.pirls(resp, s, opt.lambdas_from_theta(np.array([0.8, 0.5]), spec.terms, sl), beta)
    lam = opt.lambdas_from_theta(np.array([0.9, 0.6]), spec.terms, sl)
    exact = P.pirls(resp, s, lam, beta + 0.02, pr0.u)
    monkeypatch.setattr(P, "PCG_MIN_DENSE", 0)
    it = P.pirls(resp, s, lam, beta + 0.02, pr0.u, precond=pr0.factor)
    assert it.converged and exact.converged
    assert it.laplace_deviance == pytest.approx(exact.laplace_deviance, abs=1e-9)
    np.testing.assert_allclose(it.u, exact.u, atol=1e-9)


def test_pcg_solves_and_reports_failure():
    rng = np.random.default_rng(0)
    B = rng.normal(size=(40, 40))
    A = B @ B.T + 40 * np.eye(40)
    b = rng.normal(size=40)
    M = np.diag(np.diag(A))
    x = pcg(lambda v: A @ v, b, lambda r: np.linalg.solve(M, r))
    np.testing.assert_allclose(A @ x, b, rtol=1e-9, atol=1e-9)
    assert pcg(lambda v: A @ v, b, lambda r: r, maxiter=1) is None  # not converged: the caller factorizes

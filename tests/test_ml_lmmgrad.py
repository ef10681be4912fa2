"""The multi-term analytic gradient of the profiled LMM criterion (bayes_glmm/ml/lmmgrad.py)
against central differences, and the block-inverse sums it reads against the full blocks."""
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm.ml import linalg, lmm
from bayes_glmm.ml.lmmgrad import lmm_gradient_multi
from bayes_glmm.ml.optimize import lambdas_from_theta, theta_layout


def _data(n=700, J1=120, J2=90, J3=5, seed=3):
    rng = np.random.default_rng(seed)
    g, h, f = rng.integers(0, J1, n), rng.integers(0, J2, n), rng.integers(0, J3, n)
    x = rng.normal(size=n)
    y = (1 + 0.5 * x + rng.normal(size=J1)[g] + 0.4 * rng.normal(size=J1)[g] * x + 0.7 * rng.normal(size=J2)[h]
         + 0.3 * rng.normal(size=J3)[f] + rng.normal(size=n))
    return pd.DataFrame(dict(y=y, x=x, g=g.astype(str), h=h.astype(str), f=f.astype(str)))


def _setup(formula):
    spec = bg.GLMM(formula, _data()).spec
    slices, _, th0 = theta_layout(spec.terms)
    return spec.terms, slices, th0, lmm.lmm_data(spec)


def _fd(d, terms, slices, theta, reml, h=1e-6):
    def crit(t):
        return lmm.lmm_criterion(lmm.lmm_solve(d, lambdas_from_theta(t, terms, slices)), d, reml)
    return np.array([(crit(theta + h * e) - crit(theta - h * e)) / (2 * h) for e in np.eye(theta.size)])


@pytest.mark.parametrize("formula", ["y ~ x + (1|g) + (1|h) + (1|f)", "y ~ x + (x|g) + (1|h)",
                                     "y ~ x + (1|h) + (x||g)", "y ~ x + (1|g:f) + (1|g)"])
@pytest.mark.parametrize("reml", [True, False])
def test_gradient_matches_central_differences(formula, reml):
    terms, slices, th0, d = _setup(formula)
    theta = np.abs(np.random.default_rng(1).normal(size=th0.size)) * 0.7 + 0.1
    fg = lmm._criterion_and_gradient_multi(d, terms, slices, reml)
    f, g = fg(theta)
    assert f == pytest.approx(lmm.lmm_criterion(lmm.lmm_solve(d, lambdas_from_theta(theta, terms, slices)), d, reml))
    np.testing.assert_allclose(g, _fd(d, terms, slices, theta, reml), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("formula", ["y ~ x + (1|g) + (1|h)", "y ~ x + (1|g) + (x|f) + (1|h)"])
def test_crossed_sparse_layout_uses_the_fast_block_sums(formula):
    terms, slices, th0, d = _setup(formula)
    s = linalg.build_structure(terms, sparse=True)  # every cross block sparse: the Schur-complement path
    d = replace(d, s=s, raw=linalg.crossprods(s, np.ones(d.n)))
    assert s.sparse_v and not s.nested and s.q[s.first] == 1
    theta = np.linspace(0.3, 0.9, th0.size)
    F = lmm.lmm_solve(d, lambdas_from_theta(theta, terms, slices))["factor"]
    for fast, full in zip(F.inv_block_sums(), F.inv_diag_blocks()):
        np.testing.assert_allclose(fast, full.sum(axis=0), rtol=1e-10)
    fg = lmm._criterion_and_gradient_multi(d, terms, slices, True)
    np.testing.assert_allclose(fg(theta)[1], _fd(d, terms, slices, theta, True), rtol=1e-5, atol=1e-5)


def test_scalar_term_at_zero_has_zero_derivative_and_singular_vector_term_falls_back():
    terms, slices, th0, d = _setup("y ~ x + (x|g) + (1|h)")
    theta = np.array([0.6, 0.2, 0.0, 0.5])  # (x|g) with a zero slope SD: Lambda singular
    lambdas = lambdas_from_theta(theta, terms, slices)
    sol = lmm.lmm_solve(d, lambdas)
    from bayes_glmm.ml.agq import theta_directions
    Es = [theta_directions(t, theta[sl]) for t, sl in zip(terms, slices)]
    assert lmm_gradient_multi(d, sol, lambdas, Es, True) is None
    f, g = lmm._criterion_and_gradient_multi(d, terms, slices, True)(theta)
    np.testing.assert_allclose(g, _fd(d, terms, slices, theta, True), rtol=1e-4, atol=1e-4)
    theta = np.array([0.6, 0.2, 0.3, 0.0])  # (1|h) at 0: exactly 0 by symmetry
    lambdas = lambdas_from_theta(theta, terms, slices)
    sol = lmm.lmm_solve(d, lambdas)
    Es = [theta_directions(t, theta[sl]) for t, sl in zip(terms, slices)]
    g = lmm_gradient_multi(d, sol, lambdas, Es, False)
    assert g[3] == 0.0
    np.testing.assert_allclose(g[:3], _fd(d, terms, slices, theta, False)[:3], rtol=1e-5, atol=1e-5)

"""The lean PIRLS of one scalar term (bayes_glmm.ml.pirls_scalar) against the general PIRLS, and
the fused / exact family derivatives it and the AGQ gradient take (issue 18's small-data speed)."""
import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm.families import get_family
from bayes_glmm.ml import agq, linalg
from bayes_glmm.ml.optimize import lambdas_from_theta, theta_layout
from bayes_glmm.ml.pirls import make_response, pirls, with_aux
from bayes_glmm.ml.pirls_scalar import pirls_fast, pirls_scalar, scalar_applies

from test_ordinal import _data


def _setup(formula, data, family, aux, **kw):
    spec = bg.GLMM(formula, data, family=family, **kw).spec
    resp = with_aux(make_response(spec), aux)
    s = linalg.build_structure(spec.terms)
    slices, _, _ = theta_layout(spec.terms)
    return resp, s, lambda th: lambdas_from_theta(np.atleast_1d(th), spec.terms, slices)


def _nb_data(seed=3):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(12), 6)
    x = rng.normal(size=g.size)
    mu = np.exp(0.5 + 0.4 * x + rng.normal(0, 0.6, 12)[g])
    return pd.DataFrame({"y": rng.negative_binomial(3, 3 / (3 + mu)), "x": x, "g": g.astype(str)})


@pytest.mark.parametrize("case", ["ordinal", "nbinom2"])
@pytest.mark.parametrize("warm", [False, True])
def test_same_modes_as_pirls(case, warm):
    if case == "ordinal":
        # thresholds on their coordinates: tau_1, then logs of the gaps
        resp, s, lam = _setup("rating ~ temp + contact + (1|judge)", _data("ordinal_wine.csv"), "ordinal",
                              [-1.6, np.log(3.1), np.log(2.7), np.log(1.9)])
        beta = np.array([3.0, 1.8])
    else:  # a family without the fused override (log-density and derivatives called separately)
        resp, s, lam = _setup("y ~ x + (1|g)", _nb_data(), "negbinomial", [np.log(3.0)])
        beta = np.array([0.5, 0.4])
    assert scalar_applies(resp, s)
    for th in (0.05, 1.1, 4.0):
        u0 = np.linspace(-1.0, 1.0, s.m) if warm else None
        a, b = pirls(resp, s, lam(th), beta, u0), pirls_scalar(resp, s, lam(th), beta, u0)
        assert b.converged and a.iters == b.iters and a.halvings == b.halvings
        np.testing.assert_allclose(b.u, a.u, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(b.W, a.W, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(b.r, a.r, rtol=1e-12, atol=1e-14)
        assert b.laplace_deviance == pytest.approx(a.laplace_deviance, rel=1e-13, abs=1e-11)
        assert b.exact_hessian == a.exact_hessian


def test_dispatch():
    # joint PIRLS, several terms and the classic families stay on the general PIRLS
    resp, s, lam = _setup("rating ~ temp + contact + (1|judge)", _data("ordinal_wine.csv"), "ordinal",
                          [-1.6, 1.1, 1.0, 0.6])
    assert not scalar_applies(resp, s, joint=True)
    a = pirls_fast(resp, s, lam(1.0), np.array([3.0, 1.8]), joint=True)
    b = pirls(resp, s, lam(1.0), np.array([3.0, 1.8]), joint=True)
    np.testing.assert_array_equal(a.beta, b.beta)
    spec = bg.GLMM("y ~ x + (1|g)", _nb_data(), family="poisson").spec
    assert not scalar_applies(make_response(spec), linalg.build_structure(spec.terms))


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_fused_and_node_derivs(link):
    fam = get_family("ordinal", link).for_response(pd.Series(np.arange(4, dtype=float)), "y")[1]
    taus = {"0|1": -1.3, "1|2": 0.2, "2|3": 1.9}
    y = np.repeat(np.arange(4.0), 7)
    eta = np.tile(np.array([-6.0, -2.5, -0.4, 0.0, 0.7, 3.0, 6.0]), 4)
    ll, d1, w = fam.loglik_eta_score_weight(y, eta, **taus)
    np.testing.assert_array_equal(ll, fam.loglik_eta(y, eta, **taus))
    d1s, ws = fam.eta_score_weight(y, eta, **taus)
    np.testing.assert_array_equal(d1, d1s)
    np.testing.assert_array_equal(w, ws)
    # d l / d tau at AGQ-shaped (rows x nodes) eta against central differences of the log-density
    E = eta[:, None] + np.array([-1.0, 0.0, 2.0])[None, :]
    dl = fam.aux_loglik_derivs(y[:, None], E, **taus)
    h = 1e-6
    for k, name in enumerate(taus):
        up, dn = dict(taus), dict(taus)
        up[name] += h
        dn[name] -= h
        fd = (fam.loglik(y[:, None], E, **up) - fam.loglik(y[:, None], E, **dn)) / (2 * h)
        np.testing.assert_allclose(dl[k], fd, rtol=1e-6, atol=1e-8)


def test_agq_node_derivs_exact_equal_differences():
    # the AGQ gradient's threshold derivatives at the nodes: the family's closed form (through
    # the coordinates' Jacobian) equals the central differences it replaces
    resp, s, lam = _setup("rating ~ temp + contact + (1|judge)", _data("ordinal_wine.csv"), "ordinal",
                          [-1.6, np.log(3.1), np.log(2.7), np.log(1.9)])
    eta = np.random.default_rng(0).normal(0, 2, size=(resp.y.size, 5))
    exact = agq._node_aux_derivs(resp, eta)
    fam = resp.family
    a0 = np.asarray(resp.aux_coord, dtype=float)
    h = 1e-5
    for j in range(a0.size):
        lp = []
        for sgn in (1.0, -1.0):
            a = a0.copy()
            a[j] += sgn * h
            r = with_aux(resp, a)
            lp.append(fam.loglik(r.y[:, None], eta, **r.aux_vals))
        np.testing.assert_allclose(exact[j], resp.pw[:, None] * (lp[0] - lp[1]) / (2 * h), rtol=1e-6, atol=1e-8)


def test_ordinal_agq_gradient_scalar_mode_derivs_equal_general():
    # the AGQ gradient with thresholds through the scalar term's mode derivatives
    # (agq._mode_derivs_scalar) equals the general batched form's
    resp, s, lam = _setup("rating ~ temp + contact + (1|judge)", _data("ordinal_wine.csv"), "ordinal",
                          [-1.6, np.log(3.1), np.log(2.7), np.log(1.9)])
    pr = pirls_fast(resp, s, lam(1.1), np.array([3.0, 1.8]))
    E = np.ones((1, 1, 1))  # dLambda/dtheta of a scalar term (Lambda = theta)
    f_fast, g_fast = agq.devgrad(resp, s, lam(1.1), E, pr, 10)
    f_gen, g_gen = agq.devgrad(resp, s, lam(1.1), E, pr, 10, scalar_fast=False)
    assert f_fast == f_gen
    np.testing.assert_allclose(g_fast, g_gen, rtol=1e-10, atol=1e-9)
    assert np.all(np.abs(g_fast) > 0)  # every coordinate has a gradient away from the optimum

"""Fast paths of the ML fitter: analytic deviance gradients and the fits they produce.

The gradient of the Laplace / AGQ deviance in (theta, beta) (bayes_glmm.ml.agq.devgrad)
is checked against central finite differences of the deviance itself; the fits are
pinned to the numbers the finite-difference optimizer produced before the fast paths.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_glmm.families import get_family
from bayes_glmm.ml import fit_raw, linalg
from bayes_glmm.ml.agq import agq_loglik, devgrad, supports_gradient, theta_directions
from bayes_glmm.ml.optimize import lambdas_from_theta, theta_layout
from bayes_glmm.ml.pirls import loglik_rows, make_response, pirls
from bayes_glmm.spec.model_spec import ModelSpec, RandomTerm


def _term(g, Xr, correlated=True):
    codes, levels = pd.factorize(np.asarray(g), sort=True)
    Xr = np.asarray(Xr, float).reshape(len(codes), -1)
    coef = ("(Intercept)",) + tuple(f"x{i}" for i in range(1, Xr.shape[1]))
    return RandomTerm("g", "g", coef, correlated and Xr.shape[1] > 1, codes, levels, Xr)


def _spec(y, X, term, family, trials=None, offset=None, weights=None):
    n = len(y)
    return ModelSpec("y ~ ...", get_family(family), "y", np.asarray(y, float), trials, np.asarray(X, float),
                     tuple(f"b{i}" for i in range(X.shape[1])), np.zeros(n) if offset is None else offset,
                     np.ones(n) if weights is None else weights, (term,), pd.RangeIndex(n))


def _data(family, q, seed=3, J=12, m=9, correlated=True):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(J), m)
    n = J * m
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x, rng.normal(size=n)])
    Xr = np.column_stack([np.ones(n), x][:q])
    b = rng.normal(size=(J, 2)) * [0.9, 0.5]
    eta = 0.2 + 0.5 * x + b[g, 0] + (b[g, 1] * x if q > 1 else 0.0)
    trials, w = None, rng.uniform(0.5, 2.0, n)
    if family == "bernoulli":
        y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    elif family == "binomial":
        trials = rng.integers(1, 6, n).astype(float)
        y = rng.binomial(trials.astype(int), 1 / (1 + np.exp(-eta))).astype(float)
    else:
        y = rng.poisson(np.exp(eta)).astype(float)
    return _spec(y, X, _term(g, Xr, correlated), family, trials=trials, weights=w,
                 offset=0.1 * rng.normal(size=n))


def _dev_and_grad(spec, x, n_agq):
    resp = make_response(spec)
    s = linalg.build_structure(spec.terms)
    slices, _, _ = theta_layout(spec.terms)
    nt = slices[-1].stop
    t = spec.terms[0]
    E = theta_directions(t, t.cov.theta_start(t.q))

    def dev(xx, grad=False):
        lam = lambdas_from_theta(xx[:nt], spec.terms, slices)
        pr = pirls(resp, s, lam, xx[nt:], tol=1e-10)
        if grad:
            return devgrad(resp, s, lam, E, pr, n_agq)
        return pr.laplace_deviance if n_agq == 1 else -2.0 * agq_loglik(resp, s, lam, pr, n_agq)

    return dev, resp, s


CASES = [("bernoulli", 1, True), ("binomial", 1, True), ("poisson", 1, True),
         ("bernoulli", 2, True), ("binomial", 2, True), ("poisson", 2, True), ("poisson", 2, False)]


@pytest.mark.parametrize("n_agq", [1, 7])
@pytest.mark.parametrize("family,q,corr", CASES)
def test_gradient_matches_finite_differences(family, q, corr, n_agq):
    spec = _data(family, q, correlated=corr)
    dev, resp, s = _dev_and_grad(spec, None, n_agq)
    assert supports_gradient(resp, s)
    nt = spec.terms[0].n_theta
    theta = {1: [0.8], 2: ([0.7, 0.2, 0.4] if corr else [0.7, 0.4])}[q]
    x = np.concatenate([theta, [0.1, 0.4, -0.2]])
    assert len(x) == nt + 3
    f, g = dev(x, grad=True)
    assert f == pytest.approx(dev(x), rel=1e-13)
    h = 1e-5
    fd = np.array([(dev(x + h * e) - dev(x - h * e)) / (2 * h) for e in np.eye(x.size)])
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6 * max(1.0, np.max(np.abs(fd))))


def test_gradient_at_zero_variance():
    # theta on its bound: Lambda = 0, A = I; the gradient is still the one-sided limit
    spec = _data("bernoulli", 1)
    dev, _, _ = _dev_and_grad(spec, None, 5)
    x = np.array([0.0, 0.1, 0.4, -0.2])
    g = dev(x, grad=True)[1]
    h = 1e-6
    fd = np.array([(dev(x + h * e) - dev(x - h * e)) / (2 * h) for e in np.eye(x.size)])
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6)


def test_fast_loglik_equals_family_density():
    for family in ("bernoulli", "binomial", "poisson"):
        spec = _data(family, 1)
        resp = make_response(spec)
        eta = np.linspace(-40, 40, resp.y.size)
        kw = {"trials": resp.n_trials} if family == "binomial" else {}
        ref = resp.pw * spec.family.loglik(resp.y, eta, **kw)
        if family == "poisson":
            eta = np.linspace(-5, 5, resp.y.size)
            ref = resp.pw * spec.family.loglik(resp.y, eta)
        np.testing.assert_allclose(loglik_rows(resp, eta), ref, rtol=1e-13, atol=1e-13)


def test_probit_falls_back_to_finite_differences():
    spec = _data("bernoulli", 1)
    spec = ModelSpec("y ~ ...", get_family("bernoulli", "probit"), "y", spec.y, None, spec.X, spec.fixed_names,
                     spec.offset, spec.weights, spec.terms, spec.row_index)
    resp, s = make_response(spec), linalg.build_structure(spec.terms)
    assert not supports_gradient(resp, s)
    fit = fit_raw(spec)
    assert fit.optimizer["converged"] and np.isfinite(fit.loglik)


# Fits pinned to the numbers of the finite-difference optimizer (before the analytic
# gradients): the optimum must not move, and the log-likelihood must not drop.
PINNED = {
    "toenail": dict(
        formula="Response ~ Month * Treatment + (1 | ID)", family="bernoulli", n_agq=25,
        loglik=-625.4158936964905, theta=[4.000385222613927],
        beta=[-1.6145898332464412, -0.3908307697372645, -0.1600245407423183, -0.1367500156265365],
        se=[0.4327537950427708, 0.04435323467544215, 0.5827047660830618, 0.06797572883173712]),
    "epilepsy": dict(
        formula="count ~ offset(log(weeks)) + followup * group + (1 + followup | id)", family="poisson", n_agq=1,
        loglik=-924.6698139061991, theta=[0.7070371112685004, 0.08000085142289505, 0.4748529851178693],
        beta=[1.0712476129163173, -0.002374013303757925, 0.04949935316578034, -0.30722608081406455],
        se=[0.14040819855013745, 0.10947609173018732, 0.19288217810863517, 0.1509635535114849]),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_fits_unchanged(name):
    import bayes_glmm as bg
    ref = PINNED[name]
    fit = bg.GLMM(ref["formula"], bg.datasets.load(name), family=ref["family"]).fit_ml(n_agq=ref["n_agq"]).fit
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-8)
    assert fit.loglik >= ref["loglik"] - 1e-9
    np.testing.assert_allclose(fit.theta, ref["theta"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fit.beta, ref["beta"], rtol=0, atol=2e-6)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.vcov_beta)), ref["se"], rtol=1e-4)
    # the analytic-gradient path: a few dozen evaluations, not hundreds
    assert fit.optimizer["n_evals"] < 100

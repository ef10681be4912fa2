"""Newton's method with batched central-difference Hessians (bayes_glmm.ml.newton_batch) and
its use by fit_ml: where it ends the fit, where it gives up, and that a fit it gives up on is
the bounded optimizer's."""
import warnings

import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm.ml import laplace
from bayes_glmm.ml.newton_batch import newton_batched, stencil


def _devgrads(f, grad):
    """A devgrads of a plain function: no modes (zeros), mode derivatives zero."""
    calls = []

    def dg(points, u0=None):
        calls.append(len(points))
        dev = np.array([f(p) for p in points])
        G = np.array([grad(p) for p in points])
        return dev, G, np.zeros((len(points), 1)), np.zeros((len(points), 1, points.shape[1]))

    return dg, calls


def test_stencil():
    S = stencil(np.array([1.0, 2.0]), 0.1)
    np.testing.assert_allclose(S, [[1, 2], [1.1, 2], [1, 2.1], [0.9, 2], [1, 1.9]])


def test_converges_with_the_hessian_at_the_end():
    A = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]])
    c = np.array([1.0, -2.0, 0.5])

    def f(x):
        return 0.5 * x @ A @ x - c @ x + 0.1 * np.sum(x ** 4)

    def g(x):
        return A @ x - c + 0.4 * x ** 3

    dg, calls = _devgrads(f, g)
    r = newton_batched(dg, np.zeros(3), np.full(3, -np.inf))
    assert r["converged"] and r["decrement"] < 1e-6 and r["reason"] == ""
    assert np.max(np.abs(g(r["x"]))) < 1e-3
    H = A + np.diag(1.2 * r["x"] ** 2)
    np.testing.assert_allclose(r["H"], H, rtol=1e-7)
    assert all(n == 7 for n in calls) and r["n_evals"] == 7 * len(calls) and r["iters"] == len(calls)


def test_indefinite_start_and_step_halving():
    # f = x^4 / 4 - x^2 / 2 + y^2: at x = 0.1 the Hessian is indefinite; minima at x = +-1
    def f(x):
        return 0.25 * x[0] ** 4 - 0.5 * x[0] ** 2 + x[1] ** 2

    def g(x):
        return np.array([x[0] ** 3 - x[0], 2.0 * x[1]])

    dg, _ = _devgrads(f, g)
    r = newton_batched(dg, np.array([0.1, 1.0]), np.full(2, -np.inf))
    assert r["converged"]
    np.testing.assert_allclose(np.abs(r["x"]), [1.0, 0.0], atol=1e-3)


def test_gives_up_at_a_bound_and_where_the_batch_does_not_apply():
    dg, _ = _devgrads(lambda x: (x[0] + 1.0) ** 2, lambda x: np.array([2.0 * (x[0] + 1.0)]))
    r = newton_batched(dg, np.array([1.0]), np.array([0.0]))
    assert not r["converged"] and "bound" in r["reason"]
    assert r["x"][0] > 0.0  # (the lowest point reached, a start for the bounded optimizer)
    r = newton_batched(lambda pts, u0=None: None, np.array([1.0]), np.array([0.0]))
    assert not r["converged"] and "does not apply" in r["reason"] and r["n_evals"] == 3
    r = newton_batched(dg, np.array([0.001]), np.array([0.0]))
    assert not r["converged"] and "margin" in r["reason"]


def _ordinal(sd, seed=1, n_groups=12, per=8):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    x = rng.normal(size=g.size)
    eta = 0.8 * x + sd * rng.normal(size=n_groups)[g]
    lat = eta + rng.logistic(size=g.size)
    y = np.digitize(lat, [-1.0, 0.5, 2.0])
    return pd.DataFrame({"y": pd.Categorical(y + 1, ordered=True), "x": x, "g": [f"g{k}" for k in g]})


@pytest.mark.parametrize("n_agq", [1, 7])
def test_fit_gives_up_near_the_boundary_to_the_bounded_optimizer(n_agq, monkeypatch):
    """No group effect in the data: theta's optimum is 0, Newton does not run (or stops) and
    the bounded stages fit it -- the same fit as without the batch."""
    d = _ordinal(0.0, seed=4)
    seen = []
    orig = laplace._batched_newton

    def spy(*a, **k):
        out = orig(*a, **k)
        seen.append(out[0])
        return out

    monkeypatch.setattr(laplace, "_batched_newton", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = bg.GLMM("y ~ x + (1|g)", d, family="ordinal").fit_ml(n_agq=n_agq)
        monkeypatch.setattr(laplace, "_batch_gradients", lambda *args: (lambda pts: None))
        b = bg.GLMM("y ~ x + (1|g)", d, family="ordinal").fit_ml(n_agq=n_agq)
    # the moments put theta at its bound, so Newton does not even start (or gives up)
    assert not seen or seen[0] is None
    assert not any("batched" in m for m in a.fit.optimizer["messages"])
    assert a.fit.theta[0] < 1e-3
    assert a.loglik == pytest.approx(b.loglik, abs=1e-8)
    np.testing.assert_allclose(a.fit.beta, b.fit.beta, atol=1e-5)


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_fit_by_batched_newton_matches_the_bounded_optimizer(link, monkeypatch):
    d = _ordinal(1.0, seed=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = bg.GLMM("y ~ x + (1|g)", d, family="ordinal", link=link).fit_ml()
        monkeypatch.setattr(laplace, "_batch_gradients", lambda *args: (lambda pts: None))
        b = bg.GLMM("y ~ x + (1|g)", d, family="ordinal", link=link).fit_ml()
    assert any("batched" in m for m in a.fit.optimizer["messages"])
    assert a.fit.optimizer["converged"]
    # (the batched fit may end at a centre whose Newton decrement is below 1e-7: within 2.5e-8 in logLik)
    assert a.loglik == pytest.approx(b.loglik, abs=3e-8)
    se = np.sqrt(np.diag(b.fit.vcov_beta))
    assert np.max(np.abs(a.fit.beta - b.fit.beta) / se) < 1e-3
    np.testing.assert_allclose(np.sqrt(np.diag(a.fit.vcov_beta)), np.sqrt(np.diag(b.fit.vcov_beta)), rtol=1e-4)


def test_fixed_start_is_clm():
    """The ordinal family's start is the fit without random effects: R's clm on the wine data
    (ordinal 2023.12, ``clm(rating ~ temp + contact)``)."""
    d = pd.read_csv(__import__("pathlib").Path(__file__).parent / "reference" / "ordinal_wine.csv")
    d = d.assign(rating=pd.Categorical(d["rating"], ordered=True))
    spec = bg.GLMM("rating ~ temp + contact + (1|judge)", d, family="ordinal").spec
    resp = laplace.make_response(spec)
    beta, taus = spec.family.fixed_start(resp.y, resp.X, resp.offset, resp.pw, tol=1e-12)
    np.testing.assert_allclose(beta, [2.503102, 1.527798], atol=2e-6)
    np.testing.assert_allclose(list(taus.values()), [-1.344383, 1.250809, 3.466887, 5.006404], atol=2e-6)
    # a separated predictor: no finite fit, no start
    y = np.array([0.0, 0, 1, 1, 2, 2])
    X = np.array([[-3.0], [-2.0], [0.0], [0.5], [2.0], [3.0]])
    fam = spec.family.for_response(pd.Series(pd.Categorical(["a", "b", "c"] * 2, ordered=True)), "y")[1]
    assert fam.fixed_start(y, X, np.zeros(6), np.ones(6)) is None

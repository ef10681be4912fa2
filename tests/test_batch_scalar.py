"""The Laplace gradient at many points as one batch (bayes_glmm.ml.batch_scalar) equals the
gradient evaluated one point at a time (make_devgrad), and the fit's Hessian and standard
errors do not depend on which path took them."""
import warnings

import numpy as np
import pytest

import bayes_glmm as bg
from bayes_glmm.ml import laplace, linalg
from bayes_glmm.ml.auxpar import fit_coords
from bayes_glmm.ml.batch_scalar import batch_applies, batch_devgrad
from bayes_glmm.ml.optimize import fd_hessian_pd, lambdas_from_theta, theta_layout
from bayes_glmm.ml.pirls import make_response, with_aux

from test_ordinal import _data
from test_pirls_scalar import _nb_data

# a point near the wine optimum: theta, (temp, contact), thresholds' coordinates
X0 = np.array([1.1, 3.0, 1.8, -1.6, np.log(3.1), np.log(2.7), np.log(1.9)])


def _model(link):
    spec = bg.GLMM("rating ~ temp + contact + (1|judge)", _data("ordinal_wine.csv"), family="ordinal",
                   link=link).spec
    slices, _, _ = theta_layout(spec.terms)
    return make_response(spec), linalg.build_structure(spec.terms), spec.terms, slices


def _points(x0):
    d = x0.size
    steps = np.concatenate((1e-4 * np.eye(d), -1e-4 * np.eye(d), 0.05 * np.eye(d)[:3]))
    return x0 + steps


@pytest.mark.parametrize("link", ["logit", "probit"])
@pytest.mark.parametrize("n_agq", [1, 10])
def test_batch_equals_one_at_a_time(link, n_agq):
    resp, s, terms, slices = _model(link)
    assert batch_applies(with_aux(resp, X0[3:]), s)
    pts = _points(X0)
    u0 = np.linspace(-0.5, 0.5, s.J[0])
    lam = np.array([float(lambdas_from_theta(p[:1], terms, slices)[0][0, 0]) for p in pts])
    dev, grad = batch_devgrad(resp, s, lam, pts[:, 1:3], pts[:, 3:], np.tile(u0, (len(pts), 1)), n_agq)
    for k, x in enumerate(pts):
        # the same warm start, one point at a time through the sequential path
        f, g = laplace.make_devgrad(resp, s, terms, slices, n_agq, {"u": u0.copy()})(x)
        assert dev[k] == pytest.approx(f, rel=1e-12)
        np.testing.assert_allclose(grad[k], g, rtol=1e-10, atol=1e-10 * np.max(np.abs(g)))


@pytest.mark.parametrize("link", ["logit", "probit"])
@pytest.mark.parametrize("n_agq", [1, 10])
def test_hessian_batch_equals_one_at_a_time(link, n_agq):
    resp, s, terms, slices = _model(link)
    Hs = []
    for batched in (True, False):
        state = {}
        fg = laplace.make_devgrad(resp, s, terms, slices, n_agq, state)
        assert hasattr(fg, "batch")
        fg(X0)  # (the modes' prediction the stencil points start from, as in the fit)
        calls = []
        if batched:
            b = fg.batch
            fg.batch = lambda pts: calls.append(1) or b(pts)
        else:
            del fg.batch
        Hs.append(fd_hessian_pd(fg, X0))
        assert len(calls) == int(batched)
    (Hb, nb), (Hq, nq) = Hs
    assert nb == nq == 2 * X0.size
    np.testing.assert_allclose(Hb, Hq, rtol=1e-8, atol=1e-11 * np.max(np.abs(Hq)))


def test_batch_declines_what_it_does_not_cover():
    resp, s, terms, slices = _model("logit")
    # a cold start far from the modes: the sequential run halves its first step, so the batch
    # leaves these points to it
    pts = _points(X0)
    lam = np.full(len(pts), 1.1)
    assert batch_devgrad(resp, s, lam, pts[:, 1:3], pts[:, 3:], np.full((len(pts), s.J[0]), 40.0)) is None
    # a family whose row functions do not broadcast over points: no batch, one at a time
    spec = bg.GLMM("y ~ x + (1|g)", _nb_data(), family="negbinomial").spec
    resp2, s2 = make_response(spec), linalg.build_structure(spec.terms)
    assert not batch_applies(with_aux(resp2, [np.log(3.0)]), s2)
    slices2, _, _ = theta_layout(spec.terms)
    assert not hasattr(laplace.make_devgrad(resp2, s2, spec.terms, slices2, 1, {}), "batch")
    # and the stencil then goes one point at a time (the same Hessian as without the batch)
    fg = laplace.make_devgrad(resp, s, terms, slices, 1, {})
    fg.batch = lambda pts: None
    H, n = fd_hessian_pd(fg, X0)
    assert n == 2 * X0.size and np.all(np.isfinite(H))


@pytest.mark.parametrize("link", ["logit", "probit"])
@pytest.mark.parametrize("n_agq", [1, 10])
def test_fit_same_with_and_without_batch(n_agq, link, monkeypatch):
    d = _data("ordinal_wine.csv")
    model = bg.GLMM("rating ~ temp + contact + (1|judge)", d, family="ordinal", link=link)

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return model.fit_ml(n_agq=n_agq).fit

    a = fit()
    assert "Newton with batched Hessians" in " ".join(a.optimizer["messages"])
    with monkeypatch.context() as mp:
        mp.setattr(laplace, "_batch_gradients", lambda *args: (lambda pts: None))
        b = fit()
    assert not any("batched" in m for m in b.optimizer["messages"])
    # two routes to one optimum: batched Newton from the start (ending at a batch's centre whose
    # Newton decrement is below 1e-7, or one step further), against L-BFGS-B and one Newton step
    assert a.loglik == pytest.approx(b.loglik, abs=3e-8)
    se = np.sqrt(np.diag(b.vcov_beta))
    assert np.max(np.abs(a.beta - b.beta) / se) < 1e-3
    # the standard errors' Hessian: the batched route takes it where the Newton decrement is below
    # 1e-6 (within ~1e-3 SE of the optimum; on 72 rows the Hessian moves ~20% per SE, so up to ~1e-5
    # off in the variances), the other at L-BFGS-B's stopping point (up to ~4e-5 off); both against
    # the Hessian at the optimum polished by three more Newton steps
    resp, s, terms, slices = make_response(model.spec), linalg.build_structure(model.spec.terms), \
        model.spec.terms, theta_layout(model.spec.terms)[0]
    fg = laplace.make_devgrad(resp, s, terms, slices, n_agq, {"u": None})
    x = np.concatenate([a.theta, a.beta, fit_coords(resp.family, a.aux)])
    for _ in range(4):
        f, g = fg(x)
        x = x - np.linalg.solve(fd_hessian_pd(fg, x)[0], g)
    V = 2.0 * np.linalg.inv(fd_hessian_pd(fg, x)[0])
    np.testing.assert_allclose(np.diag(a.vcov_beta), np.diag(V)[1:3], rtol=3e-5)
    np.testing.assert_allclose(np.diag(a.vcov_aux), np.diag(V)[3:], rtol=3e-5)
    np.testing.assert_allclose(np.diag(b.vcov_beta), np.diag(V)[1:3], rtol=1e-4)

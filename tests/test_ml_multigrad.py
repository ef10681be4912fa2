"""The analytic Laplace gradient for several random-effects terms (bayes_glmm.ml.multigrad)
against central differences of the deviance, for crossed, nested and several scalar terms."""
from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm.families import get_family
from bayes_glmm.ml import agq, laplace, linalg
from bayes_glmm.ml import optimize as opt
from bayes_glmm.ml.pirls import make_response


@functools.lru_cache(maxsize=None)
def sim() -> pd.DataFrame:
    """300 rows: g (30 levels) crossed with h (8 levels), k nested in h (3 per h)."""
    rng = np.random.default_rng(11)
    n = 300
    g = rng.integers(0, 30, n)
    h = rng.integers(0, 8, n)
    k = h * 3 + rng.integers(0, 3, n)
    x = rng.normal(size=n)
    eta = 0.3 + 0.4 * x + rng.normal(0, 0.5, 30)[g] + rng.normal(0, 0.4, 8)[h] + rng.normal(0, 0.3, 24)[k]
    eta = eta + rng.normal(0, 0.2, 30)[g] * x
    out = {"x": x, "g": [f"g{v}" for v in g], "h": [f"h{v}" for v in h], "k": [f"k{v}" for v in k]}
    out["poisson"] = rng.poisson(np.exp(eta))
    out["bernoulli"] = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    out["negbinomial"] = get_family("negbinomial").random(eta, rng, disp=2.0)
    out["student_t"] = eta + 0.5 * rng.standard_t(4, n)
    out["gaussian"] = np.maximum(np.exp(eta) + rng.normal(0, 0.3, n), 0.05)  # positive: log link start
    return pd.DataFrame(out)


RE = {
    "crossed": "(1 | g) + (1 | h)",
    "nested": "(1 | h) + (1 | k)",
    "three": "(1 | g) + (1 | h) + (1 | k)",
    "slope": "(1 + x | g) + (1 | h)",
}
CASES = [
    ("poisson", {}, "crossed"), ("poisson", {}, "three"), ("poisson", {}, "slope"),
    ("bernoulli", {}, "crossed"), ("bernoulli", {}, "nested"),
    ("negbinomial", {}, "crossed"), ("negbinomial", {}, "nested"),
    ("student_t", {}, "crossed"), ("student_t", {}, "nested"),
    ("gaussian", {"link": "log"}, "crossed"), ("gaussian", {"link": "log"}, "slope"),
]


def _richardson(dev, x, h=1e-3):
    """Central differences extrapolated in the step (error O(h^4))."""
    g = np.empty(x.size)
    for i in range(x.size):
        def cd(st):
            e = np.zeros(x.size)
            e[i] = st
            return (dev(x + e) - dev(x - e)) / (2.0 * st)
        g[i] = (4.0 * cd(h / 2) - cd(h)) / 3.0
    return g


@pytest.mark.parametrize("fam,kw,re", CASES)
def test_multiterm_gradient_matches_finite_differences(fam, kw, re):
    spec = bg.GLMM(f"{fam} ~ x + {RE[re]}", sim(), family=fam, **kw).spec
    resp = make_response(spec)
    s = linalg.build_structure(spec.terms)
    assert agq.supports_gradient(resp, s, 1)
    sl, _, t0 = opt.theta_layout(spec.terms)
    for shift in (0.05, -0.2):
        x = np.concatenate([t0 * 0.7 + shift, laplace.start_beta(resp) + 0.05, laplace.start_aux(resp) + 0.1])
        dev = laplace.make_deviance(resp, s, spec.terms, sl, 1, {})
        f, g = laplace.make_devgrad(resp, s, spec.terms, sl, 1, {})(x)
        assert f == pytest.approx(dev(x), abs=1e-7)
        gn = _richardson(dev, x)
        np.testing.assert_allclose(g, gn, rtol=1e-6, atol=1e-6 * max(1.0, np.max(np.abs(gn))))

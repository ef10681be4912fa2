"""The pointwise log-likelihood and linear predictor computed in blocks of draws (issue 19 item 4):
the same values as the whole-array computation, whatever the block size."""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayes_glmm as bg
from bayes_glmm.bayes.pointwise import draw_blocks, eta_draws, pointwise_loglik


def _data(seed=0, n_groups=9, n_per=7):
    rng = np.random.default_rng(seed)
    n = n_groups * n_per
    g = np.repeat(np.arange(n_groups), n_per)
    h = rng.integers(0, 4, size=n)
    x = rng.normal(size=n)
    mu = np.exp(0.5 + 0.4 * x + rng.normal(scale=0.5, size=n_groups)[g])
    return pd.DataFrame({"y": rng.poisson(mu), "x": x, "w": rng.uniform(0.5, 2.0, size=n),
                         "g": [f"G{i}" for i in g], "h": [f"H{i}" for i in h]})


MODELS = {
    "two-terms-slope": dict(formula="y ~ x + (1 + x | g) + (1 | h)", family="poisson"),
    "zi-weights": dict(formula="y ~ x + (1 | g)", family="poisson", zi="~ x", weights="w"),
    "nb2-disp": dict(formula="y ~ x + (1 | g) + (1 | h)", family="negbinomial", disp="~ x"),
}


def _fake_posterior(spec, C=2, D=7, seed=1):
    """Random draws of every variable :func:`pointwise_loglik` reads, as a tidy posterior would hold them."""
    rng = np.random.default_rng(seed)
    v = {"beta": (("chain", "draw", "coef"), rng.normal(scale=0.3, size=(C, D, spec.X.shape[1])))}
    for t in spec.terms:
        v[f"b_{t.ident}"] = (("chain", "draw", f"{t.ident}_level", f"{t.ident}_coef"),
                             rng.normal(scale=0.5, size=(C, D, t.n_levels, t.q)))
    for aux in spec.family.aux_params[1 if spec.has_disp else 0:]:
        v[aux.name] = (("chain", "draw"), rng.uniform(0.5, 3.0, size=(C, D)))
    if spec.has_zi:
        v[f"beta_{spec.zi_label}"] = (("chain", "draw", "zi_coef"), rng.normal(scale=0.5, size=(C, D, spec.p_zi)))
    if spec.has_disp:
        v["beta_disp"] = (("chain", "draw", "disp_coef"), rng.normal(scale=0.3, size=(C, D, spec.p_disp)))
    return xr.Dataset(v)


def _whole_array(spec, post):
    """The whole-array computation the blocks replace (all draws at once)."""
    S = post.sizes["chain"] * post.sizes["draw"]
    eta = np.asarray(post["beta"]).reshape(S, -1) @ np.asarray(spec.X).T + np.asarray(spec.offset)[None, :]
    for t in spec.terms:
        b = np.asarray(post[f"b_{t.ident}"]).reshape(S, t.n_levels, t.q)
        eta += np.einsum("nq,snq->sn", t.Xr, b[:, t.codes])
    aux = {}
    for i, a in enumerate(spec.family.aux_params):
        if i == 0 and spec.has_disp:
            aux[a.name] = np.exp(np.asarray(post["beta_disp"]).reshape(S, -1) @ np.asarray(spec.X_disp).T)
        else:
            aux[a.name] = np.asarray(post[a.name]).reshape(-1, 1)
    y = np.asarray(spec.y)[None, :]
    ll = spec.family.loglik(y, eta, trials=spec.trials, **aux)
    if spec.has_zi:
        ez = np.asarray(post[f"beta_{spec.zi_label}"]).reshape(S, -1) @ np.asarray(spec.X_zi).T
        ll = spec.family.zero_part_loglik(ll, y, ez)
    return eta, ll * np.asarray(spec.weights)[None, :]


@pytest.mark.parametrize("case", sorted(MODELS))
def test_blocks_equal_the_whole_array(case):
    kw = dict(MODELS[case])
    m = bg.GLMM(kw.pop("formula"), _data(), **kw)
    post = _fake_posterior(m.spec)
    eta0, ll0 = _whole_array(m.spec, post)
    # one block (the default size) and blocks of two (the least), three and four draws (14 in all)
    row = 8 * m.spec.n * max(t.q for t in m.spec.terms)
    for bb in (None, row, 3 * row, 4 * row):
        np.testing.assert_array_equal(eta_draws(m.spec, post, block_bytes=bb), eta0)
        np.testing.assert_array_equal(pointwise_loglik(m.spec, post, block_bytes=bb), ll0)
    assert [b.stop - b.start for b in draw_blocks(m.spec, 14, 3 * row)] == [3, 3, 3, 3, 2]
    assert [b.stop - b.start for b in draw_blocks(m.spec, 13, 4 * row)] == [4, 4, 5]
    # a slice of the draws is those rows of the whole
    np.testing.assert_array_equal(eta_draws(m.spec, post, draws=slice(3, 11), block_bytes=row), eta0[3:11])
    # float32 output: the float64 values rounded once
    np.testing.assert_array_equal(pointwise_loglik(m.spec, post, dtype=np.float32, block_bytes=row),
                                  ll0.astype(np.float32))


def test_blocks_with_the_generated_c():
    from bayes_glmm.bayes import native
    from bayes_glmm.bayes.density import GlmmDensity

    if not native.available():  # pragma: no cover - CI has cc
        pytest.skip("no C compiler")
    kw = dict(MODELS["nb2-disp"])
    m = bg.GLMM(kw.pop("formula"), _data(), **kw)
    nm = native.NativeModel(GlmmDensity(m.spec, m.resolved_priors, m.centered_terms))
    post = _fake_posterior(m.spec)
    whole = pointwise_loglik(m.spec, post, nm.rows_loglik, block_bytes=2**40)
    assert len(draw_blocks(m.spec, 14, 2**40)) == 1
    np.testing.assert_array_equal(pointwise_loglik(m.spec, post, nm.rows_loglik, block_bytes=1), whole)
    np.testing.assert_allclose(whole, _whole_array(m.spec, post)[1], rtol=1e-10, atol=1e-12)

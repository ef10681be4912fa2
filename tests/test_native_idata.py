"""The native sampler's InferenceData is the one the PyMC graph describes, built without PyMC.

``sample()`` with the native sampler names, dims and coords its draws from the parameter layout
(bayes/params.py) and computes the pointwise log-likelihood with the generated C; it never
imports PyMC or PyTensor (tests/test_import_time.py checks that in a fresh process).  Here, for
models with every kind of extra part (covariance structures, crossed and hierarchically centred
terms, zero inflation, a hurdle, a dispersion formula, ordinal thresholds), the returned
``idata`` is compared with the graph that :func:`bayes_glmm.bayes.build_pymc_model` builds:
groups, names, dims and coords, the observed data, and the log-likelihood of every row at every
draw as PyMC computes it from the graph's ``y`` at the same draws.  PyMC is imported here only.
"""
import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm.bayes import native, sampling

pm = pytest.importorskip("pymc")

pytestmark = pytest.mark.skipif(not native.available(), reason="no C compiler")

DRAWS, TUNE, CHAINS, SEED, TARGET = 15, 40, 2, 20261207, 0.9


def _data(seed=0, n_groups=8, n_per=6):
    rng = np.random.default_rng(seed)
    n = n_groups * n_per
    g = np.repeat(np.arange(n_groups), n_per)
    x, z = rng.normal(size=n), rng.normal(size=n)
    eta = 0.2 + 0.5 * x + rng.normal(0.0, 0.6, n_groups)[g]
    mu, p = np.exp(eta), 1.0 / (1.0 + np.exp(-eta))
    count = rng.poisson(rng.gamma(2.0, mu / 2.0))
    return pd.DataFrame({
        "yg": eta + rng.normal(scale=0.7, size=n), "yb": rng.binomial(1, p), "yk": rng.binomial(4, p),
        "yc": np.where(rng.random(n) < 0.3, 0, count), "yo": np.digitize(eta + rng.logistic(size=n), [-0.6, 0.3, 1.2]),
        "x": x, "z": z, "g": [f"g{v}" for v in g], "h": [f"h{v}" for v in rng.integers(0, 4, n)],
        "t": np.tile(np.arange(n_per) % 3, n_groups), "n": 4}, index=pd.RangeIndex(50, 50 + n))


CASES = {
    "bernoulli scalar": dict(formula="yb ~ x + (1 | g)", family="bernoulli"),
    "binomial correlated slope": dict(formula="yk ~ x + (x | g)", family="binomial", trials="n"),
    "gaussian crossed, hierarchical + ||": dict(formula="yg ~ x + (1 | g) + (x || h)",
                                                centered={"g": "hierarchical", "h": False}),
    "gaussian cs structure": dict(formula="yg ~ x + cs(0 + factor(t) | g)"),
    "poisson ar1 structure": dict(formula="yc ~ x + ar1(0 + factor(t) | g)", family="poisson"),
    "zero-inflated negbinomial": dict(formula="yc ~ x + (1 | g)", family="negbinomial", zi="~ z"),
    "hurdle poisson": dict(formula="yc ~ x + (1 | g)", family="hurdle_poisson", hu="~ z"),
    "gaussian dispersion formula": dict(formula="yg ~ x + (1 | g) + (1 | h)", disp="~ z"),
    "ordinal": dict(formula="yo ~ x + (1 | g)", family="ordinal"),
}


def _fit(case):
    c = dict(case)
    m = bg.GLMM(c.pop("formula"), _data(sorted(CASES).index(next(k for k, v in CASES.items() if v == case))), **c)
    res = m.sample(draws=DRAWS, tune=TUNE, chains=CHAINS, random_seed=SEED, sampler="native",
                   target_accept=TARGET, progressbar=False, check=False)
    return m, res


@pytest.fixture(scope="module", params=sorted(CASES))
def fitted(request):
    m, res = _fit(CASES[request.param])
    return m, res, m.build()


def test_groups_and_attrs(fitted):
    _, res, _ = fitted
    idata = res.idata
    assert idata.groups() == ["posterior", "log_likelihood", "sample_stats", "observed_data"]
    attrs = idata.posterior.attrs
    assert attrs["sampler"] == "native" and attrs["target_accept"] == TARGET
    assert attrs["target_accept_tried"] == [TARGET]
    assert idata.sample_stats.attrs["max_depth"] == 10
    assert dict(idata.posterior.sizes)["chain"] == CHAINS and dict(idata.posterior.sizes)["draw"] == DRAWS
    assert set(idata.sample_stats.data_vars) == {
        "lp", "acceptance_rate", "step_size", "tree_depth", "n_steps", "diverging", "energy", "energy_error",
        "reached_max_treedepth"}


def test_posterior_names_dims_and_coords_are_the_graphs(fitted):
    m, res, graph = fitted
    post = res.idata.posterior
    gdims = graph.named_vars_to_dims
    structure = {f"rho_{t.ident}" for t in m.spec.terms if t.cov.n_corr(t.q) > 0}
    for name in post.data_vars:
        if name in structure and name not in graph.named_vars:  # a structure's own parameters
            continue
        assert name in graph.named_vars, name
        want = ("chain", "draw") + tuple(gdims.get(name, ()))
        assert post[name].dims == want, (name, post[name].dims, want)
        for d in want[2:]:
            np.testing.assert_array_equal(post[name][d].values, np.asarray(graph.coords[d]), err_msg=f"{name}: {d}")
            assert post[name][d].values.dtype.kind == np.asarray(graph.coords[d]).dtype.kind, (name, d)
    # every graph variable a user reads is there: the fixed effects, SDs, effects, aux, zero/disp parts
    wanted = [v for v in ("beta", "beta_zi", "beta_hu", "beta_disp", *m.spec.family.aux_names) if v in graph.named_vars]
    wanted += [f"{s}_{t.ident}" for t in m.spec.terms for s in ("sd", "b")]
    assert set(wanted) <= set(post.data_vars)


def test_observed_data_is_the_graphs(fitted):
    _, res, graph = fitted
    obs = res.idata.observed_data["y"]
    assert obs.dims == ("obs",)
    want = graph.rvs_to_values[graph["y"]].eval()
    np.testing.assert_array_equal(obs.values, want)
    assert obs.values.dtype == want.dtype
    np.testing.assert_array_equal(obs["obs"].values, np.asarray(graph.coords["obs"]))


def test_log_likelihood_is_pymcs_at_the_same_draws(fitted):
    """The C row log-density at the returned draws = PyMC's elementwise log-density of the
    graph's ``y`` at those draws (the native chains rerun with the same seed for their
    unconstrained coordinates, which label the graph's value variables)."""
    m, res, graph = fitted
    nm = sampling._native_model(m)
    x, _ = nm.sample(DRAWS, TUNE, CHAINS, seed=SEED, target_accept=TARGET, cores=min(CHAINS, 2), max_depth=10)
    # the rerun is the same chain: its draws give the returned posterior
    np.testing.assert_array_equal(nm.density.expand_draws(x)["beta"], res.idata.posterior["beta"].values)
    sl = nm.density.value_var_slices()
    ip = graph.initial_point()
    ll_y = graph.logp(vars=[graph["y"]], sum=False, jacobian=False)[0]
    fn = graph.compile_fn(ll_y, inputs=graph.value_vars, on_unused_input="ignore")
    got = res.idata.log_likelihood["y"].values
    assert got.shape == (CHAINS, DRAWS, m.spec.n)
    for c, d in [(0, 0), (0, DRAWS - 1), (CHAINS - 1, DRAWS // 2)]:
        point = {v.name: np.asarray(x[c, d, sl[v.name]]).reshape(np.shape(ip[v.name])) for v in graph.value_vars}
        np.testing.assert_allclose(got[c, d], fn(point), rtol=1e-9, atol=1e-10)

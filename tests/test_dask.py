"""fit_ml on a Dask DataFrame (bayes_glmm.ml.distributed) on a LocalCluster of 2 worker processes:
the same fit as on the pandas frame (logLik to 1e-6 relative, estimates to 1e-5), and the errors
for what does not split across partitions."""
import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import bayes_glmm as bg  # noqa: E402


def _data(n=1200, J=60, H=4, seed=3):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, J, n)
    h = rng.integers(0, H, n)
    x = rng.normal(size=n)
    # level "rare" only in the first groups: most partitions never see it, the fixed-effects
    # matrix must still have its column everywhere
    f = np.where(g < 6, "rare", rng.choice(["a", "b"], n))
    u, v = rng.normal(0, 0.7, J), rng.normal(0, 0.5, (J, H))
    eta = 0.2 + 0.4 * x + 0.5 * (f == "b") + u[g] + v[g, h]
    return pd.DataFrame({"y": np.where(rng.random(n) < 1 / (1 + np.exp(-eta)), "yes", "no"),
                         "cnt": rng.poisson(np.exp(eta)), "z": eta + rng.normal(0, 1, n), "x": x, "f": f,
                         "g": [f"G{k:02d}" for k in g], "h": h,
                         "gh": [f"G{a:02d}_{b}" for a, b in zip(g, h)]})


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=50) as cluster, distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def data():
    d = _data()
    return d, dd.from_pandas(d, npartitions=3)


def _same(r0, r1):
    assert abs(r1.loglik / r0.loglik - 1) < 1e-6
    assert np.max(np.abs(r0.fixef.to_numpy() - r1.fixef.to_numpy())) < 1e-5
    assert np.max(np.abs(r0.varcorr.sdcor.to_numpy() - r1.varcorr.sdcor.to_numpy())) < 1e-5
    for grp, b0 in r0.ranef.items():
        b1 = r1.ranef[grp]
        assert list(b1.index) == list(b0.index)
        assert np.max(np.abs(b0.to_numpy() - b1.to_numpy())) < 1e-5
    assert r1.nobs == r0.nobs and r1.ngrps.to_dict() == r0.ngrps.to_dict()


@pytest.mark.parametrize("family, formula, n_agq, kw", [
    ("bernoulli", "y ~ x + f + (1 | g)", 1, {}),
    ("bernoulli", "y ~ x + f + (1 | g)", 5, {}),
    # gh's labels are unique across g: (1 | g/h) written as nested in the data only
    ("poisson", "cnt ~ x + f + (1 | g) + (1 | gh)", 1, {"partition_by": "g"}),
])
def test_dask_fit_equals_the_in_memory_fit(client, data, family, formula, n_agq, kw):
    d, ddf = data
    r0 = bg.GLMM(formula, d, family=family).fit_ml(n_agq=n_agq)
    r1 = bg.GLMM(formula, ddf, family=family).fit_ml(n_agq=n_agq, **kw)
    _same(r0, r1)
    # the same curvature: the SEs of the in-memory fit
    assert np.max(np.abs(r0.se.to_numpy() / r1.se.to_numpy() - 1)) < 1e-5
    assert r1.n_partitions >= 2 and r1.partition_by == "g"


def test_dask_gaussian_is_the_ml_fit(client, data):
    d, ddf = data
    r0 = bg.GLMM("z ~ x + f + (1 | g/h)", d).fit_ml(reml=False)  # profiled ML, as lmer(REML = FALSE)
    r1 = bg.GLMM("z ~ x + f + (1 | g/h)", ddf).fit_ml()
    _same(r0, r1)
    assert abs(r1.sigma - r0.sigma) < 1e-5
    with pytest.raises(ValueError, match="reml=True is not available"):
        bg.GLMM("z ~ x + (1 | g)", ddf).fit_ml(reml=True)


def test_crossed_terms_are_refused_with_the_reason_and_the_fix(client, data):
    _, ddf = data
    m = bg.GLMM("cnt ~ x + (1 | g) + (1 | h)", ddf, family="poisson")
    with pytest.raises(ValueError, match="do not separate across partitions.*compute"):
        m.fit_ml()
    with pytest.raises(ValueError, match="occur in more than one partition"):
        m.fit_ml(partition_by="g")  # h's levels span every g


def test_what_a_partition_cannot_see_is_refused(data):
    _, ddf = data
    with pytest.raises(ValueError, match="scale"):
        bg.GLMM("cnt ~ scale(x) + (1 | g)", ddf, family="poisson")
    m = bg.GLMM("cnt ~ x + (1 | g)", ddf, family="poisson")
    for call in (lambda: m.sample(draws=10, tune=10), m.fit_inla, m.fit_pql, lambda: m.with_priors({})):
        with pytest.raises(ValueError, match="only fit_ml"):
            call()
    with pytest.raises(ValueError, match="zi= is not supported"):
        bg.GLMM("cnt ~ x + (1 | g)", ddf, family="poisson", zi="~1")

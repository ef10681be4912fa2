"""bg.loo_compare: PSIS-LOO comparison of posterior fits (arviz.compare), with Pareto-k notes."""
import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg


class _Post:
    """A posterior-like fit with a log_likelihood group (no MCMC)."""

    method = "posterior (fake)"

    def __init__(self, spec, loglik):
        import arviz as az
        self.spec = spec
        S = loglik.shape[0]
        self.idata = az.from_dict(posterior={"beta": np.zeros((1, S, spec.p))},
                                  log_likelihood={"y": loglik[None]})


def _spec(n=60, seed=0, y=None):
    rng = np.random.default_rng(seed)
    d = pd.DataFrame({"y": rng.normal(size=n) if y is None else y, "x": rng.normal(size=n),
                      "g": np.repeat(np.arange(n // 6), 6)})
    return bg.GLMM("y ~ x + (1 | g)", d).spec


def test_loo_compare_ranks_and_reports_pareto_k():
    spec = _spec()
    rng = np.random.default_rng(1)
    good = _Post(spec, -0.9 + 0.05 * rng.standard_normal((400, spec.n)))
    bad = _Post(spec, -1.4 + 0.05 * rng.standard_normal((400, spec.n)))
    tab = bg.loo_compare(good, bad, names=["good", "bad"])
    assert list(tab.index) == ["good", "bad"]
    assert {"elpd_loo", "p_loo", "elpd_diff", "weight", "dse", "n_bad_k", "max_k"} <= set(tab.columns)
    assert tab.loc["bad", "elpd_diff"] == pytest.approx(0.5 * spec.n, rel=0.05)
    assert (tab["n_bad_k"] == 0).all() and tab.attrs["notes"] == []


def test_loo_compare_warns_on_influential_observations():
    spec = _spec()
    rng = np.random.default_rng(2)
    ll = -1.0 + 0.05 * rng.standard_normal((400, spec.n))
    ll[:, 0] = -1.0 - np.abs(rng.standard_cauchy(400)) * 30  # one wildly influential row
    other = _Post(spec, -1.0 + 0.05 * rng.standard_normal((400, spec.n)))
    with pytest.warns(UserWarning, match="Pareto k > 0.7.*K-fold"):
        tab = bg.loo_compare(_Post(spec, ll), other, names=["a", "b"])
    assert tab.loc["a", "n_bad_k"] >= 1


def test_loo_compare_refuses_mismatched_or_ml_fits():
    spec = _spec()
    ll = -np.ones((50, spec.n))
    with pytest.raises(ValueError, match="at least two"):
        bg.loo_compare(_Post(spec, ll))
    other = _spec(y=np.arange(60.0))
    with pytest.raises(ValueError, match="different response or different rows"):
        bg.loo_compare(_Post(spec, ll), _Post(other, ll))
    d = pd.DataFrame({"y": np.random.default_rng(0).normal(size=60), "x": np.zeros(60) + np.arange(60),
                      "g": np.repeat(np.arange(10), 6)})
    ml = bg.GLMM("y ~ x + (1 | g)", d).fit_ml()
    with pytest.raises(ValueError, match="not a posterior fit"):
        bg.loo_compare(ml, _Post(spec, ll))


def test_loo_compare_warns_once_per_cause():
    # three models, each with influential rows: ArviZ alone warns once per model per loo() and
    # again inside compare(); the user gets one warning naming every affected model
    import warnings

    spec = _spec()
    rng = np.random.default_rng(3)

    def influential():
        ll = -1.0 + 0.05 * rng.standard_normal((400, spec.n))
        ll[:, [0, 5]] = -1.0 - np.abs(rng.standard_cauchy((400, 2))) * 30
        return _Post(spec, ll)

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        tab = bg.loo_compare(influential(), influential(), influential(), names=["a", "b", "c"])
    assert len(rec) == 1, [str(w.message)[:80] for w in rec]
    msg = str(rec[0].message)
    assert rec[0].category is UserWarning and "3 models" in msg
    assert all(f"{nm}: " in msg for nm in "abc") and len(tab.attrs["notes"]) == 3

"""bayes_glmm.postfit.diagnostics: separation (LP), constant response, levels vs observations.

R's ``detectseparation`` is not installed here, so the expected findings are reasoned from
the LP (Konis 2007) and cross-checked independently: a column flagged infinite must grow
without bound along a vanishing-ridge logistic-regression path (its estimate at ridge
1e-9 is far beyond the one at 1e-5), an unflagged one must stay put.  The level checks
follow lme4's checkNlevels / checkZdims (lmer stops, glmer allows n_levels == n).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from scipy.special import expit, gammaln

import bayes_glmm as bg
from bayes_glmm.postfit import diagnostics as D


def _spec(formula, df, family):
    return bg.GLMM(formula, df, family=family).spec


def _kinds(findings):
    return [f.kind for f in findings]


def _ridge_path(X, y, trials=None, lams=(1e-5, 1e-9)):
    """Logistic regression with ridge penalty lam * |b|^2 / 2 (intercept included)."""
    t = np.ones_like(y) if trials is None else trials
    out = []
    for lam in lams:
        def f(b):
            eta = X @ b
            ll = y * eta - t * np.logaddexp(0, eta)
            g = X.T @ (y - t * expit(eta))
            return -ll.sum() + 0.5 * lam * b @ b, -g + lam * b
        r = minimize(f, np.zeros(X.shape[1]), jac=True, method="BFGS",
                     options={"gtol": 1e-10, "maxiter": 20000})
        out.append(r.x)
    return out


def _check_against_ridge(X, y, res, names, trials=None):
    b_hi, b_lo = _ridge_path(X, y, trials)
    for j, name in enumerate(names):
        if name in res.directions and res.directions[name] != 0:
            assert np.sign(b_lo[j]) == res.directions[name], name
            assert abs(b_lo[j]) > abs(b_hi[j]) + 3, (name, b_hi[j], b_lo[j])
        elif name not in res.directions:
            assert abs(b_lo[j] - b_hi[j]) < 0.05 * (1 + abs(b_hi[j])), (name, b_hi[j], b_lo[j])


@pytest.fixture
def rng():
    return np.random.default_rng(20261202)


def test_complete_separation(rng):
    n = 80
    x = rng.normal(size=n)
    df = pd.DataFrame({"y": (x > 0.4).astype(int), "x": x, "g": np.repeat([f"g{i}" for i in range(10)], 8)})
    spec = _spec("y ~ x + (1 | g)", df, "bernoulli")
    res = D.separation(spec.X, spec.y, spec.fixed_names)
    assert res.separated and res.complete and res.kind == "complete"
    assert res.columns == ("(Intercept)", "x")
    assert res.directions == {"(Intercept)": -1, "x": 1}  # the cut x = 0.4 > 0: intercept -> -inf
    assert res.n_separated == n
    m = spec.X @ res.direction * (2 * spec.y - 1)
    assert np.all(m > 0)
    findings = D.check_spec(spec)
    assert _kinds(findings) == ["complete_separation"]
    assert findings[0].columns == ("(Intercept)", "x")
    assert "x -> +inf" in findings[0].message


def test_complete_separation_cut_at_zero_leaves_intercept_sign_open(rng):
    x = np.r_[-rng.uniform(0.5, 2, 20), rng.uniform(0.5, 2, 20)]
    X = np.c_[np.ones(40), x]
    res = D.separation(X, (x > 0).astype(float), ["(Intercept)", "x"])
    assert res.complete
    assert res.directions == {"(Intercept)": 0, "x": 1}


def test_quasi_complete_separation_dummy(rng):
    n = 120
    x = rng.normal(size=n)
    z = rng.integers(0, 2, size=n)
    y = np.where(z == 1, 1, (rng.uniform(size=n) < expit(-0.3 + 0.5 * x)).astype(int))
    df = pd.DataFrame({"y": y, "x": x, "z": z, "g": np.repeat([f"g{i}" for i in range(12)], 10)})
    spec = _spec("y ~ x + z + (1 | g)", df, "bernoulli")
    res = D.separation(spec.X, spec.y, spec.fixed_names)
    assert res.separated and not res.complete and res.kind == "quasi-complete"
    assert res.directions == {"z": 1}
    assert res.n_separated == int(z.sum())
    _check_against_ridge(spec.X, spec.y, res, spec.fixed_names)
    findings = D.check_spec(spec)
    assert _kinds(findings) == ["quasi_complete_separation"]
    assert findings[0].columns == ("z",)
    assert findings[0].details["directions"] == {"z": 1}


def test_quasi_complete_separation_factor_level(rng):
    n = 90
    f = np.array(list("abc"))[rng.integers(0, 3, size=n)]
    x = rng.normal(size=n)
    y = np.where(f == "c", 0, (rng.uniform(size=n) < 0.5).astype(int))
    df = pd.DataFrame({"y": y, "x": x, "f": f, "g": np.repeat([f"g{i}" for i in range(9)], 10)})
    spec = _spec("y ~ x + f + (1 | g)", df, "bernoulli")
    res = D.separation(spec.X, spec.y, spec.fixed_names)
    assert spec.fixed_names == ("(Intercept)", "x", "fb", "fc")
    assert not res.complete and res.directions == {"fc": -1}
    _check_against_ridge(spec.X, spec.y, res, spec.fixed_names)


def test_binomial_separation_and_mixed_rows(rng):
    n = 60
    size = rng.integers(2, 10, size=n)
    z = rng.integers(0, 2, size=n)
    x = rng.normal(size=n)
    s = np.where(z == 1, size, rng.binomial(size, 0.4))
    df = pd.DataFrame({"s": s, "size": size, "z": z, "x": x, "g": np.repeat([f"g{i}" for i in range(6)], 10)})
    spec = _spec("cbind(s, size - s) ~ x + z + (1 | g)", df, "binomial")
    res = D.separation(spec.X, spec.y, spec.fixed_names, trials=spec.trials)
    assert res.separated and not res.complete and res.directions == {"z": 1}
    _check_against_ridge(spec.X, spec.y, res, spec.fixed_names, trials=spec.trials)
    assert _kinds(D.check_spec(spec)) == ["quasi_complete_separation"]
    # the same rows with one failure each where z == 1: 0 < y < n cannot be separated
    s2 = np.where(z == 1, size - 1, s)
    spec2 = _spec("cbind(s, size - s) ~ x + z + (1 | g)", df.assign(s=s2), "binomial")
    assert not D.separation(spec2.X, spec2.y, spec2.fixed_names, trials=spec2.trials).separated
    assert D.check_spec(spec2) == []
    # a 0/1 binomial with one trial each is the bernoulli case: complete separation possible
    X = np.c_[np.ones(20), np.r_[np.zeros(10), np.ones(10)]]
    res1 = D.separation(X, np.r_[np.zeros(10), np.ones(10)], ["a", "b"], trials=np.ones(20))
    assert res1.complete and res1.directions == {"a": -1, "b": 1}


def test_no_separation(rng):
    n = 200
    x = rng.normal(size=n)
    z = rng.integers(0, 2, size=n)
    y = (rng.uniform(size=n) < expit(0.2 + 0.8 * x - 0.5 * z)).astype(int)
    df = pd.DataFrame({"y": y, "x": x, "z": z, "g": np.repeat([f"g{i}" for i in range(20)], 10)})
    spec = _spec("y ~ x * z + (1 | g)", df, "bernoulli")
    res = D.separation(spec.X, spec.y, spec.fixed_names)
    assert not res.separated and res.kind == "none" and res.columns == () and res.finding() is None
    assert D.check_spec(spec) == []
    # a poisson model is not checked for separation and has nothing to report
    dfp = df.assign(y=rng.poisson(np.exp(0.3 + 0.2 * x)))
    assert D.check_spec(_spec("y ~ x + (1 | g)", dfp, "poisson")) == []


def test_rank_deficient_X_is_not_separation(rng):
    n = 50
    x = rng.normal(size=n)
    X = np.c_[np.ones(n), x, 2 * x]  # a null direction (0, 2, -1) is not a separating one
    y = (rng.uniform(size=n) < 0.5).astype(float)
    assert not D.separation(X, y, ["a", "x", "x2"]).separated


def test_all_zero_bernoulli_response(rng):
    n = 40
    x = rng.normal(size=n)
    df = pd.DataFrame({"y": np.zeros(n, dtype=int), "x": x, "g": np.repeat([f"g{i}" for i in range(8)], 5)})
    spec = _spec("y ~ x + (1 | g)", df, "bernoulli")
    f = D.constant_response(spec.y, spec.family)
    assert f.kind == "constant_response" and f.columns == ("(Intercept)",) and "-inf" in f.message
    findings = D.check_spec(spec)
    assert _kinds(findings) == ["constant_response"]  # not also reported as separation
    # the LP itself calls it complete separation, the intercept going to -inf
    res = D.separation(spec.X, spec.y, spec.fixed_names)
    assert res.complete and res.directions["(Intercept)"] == -1
    assert D.constant_response(np.ones(5), "bernoulli").details["value"] == 1.0


def test_constant_response_other_families():
    assert D.constant_response(np.zeros(6), "poisson").kind == "constant_response"
    assert D.constant_response(np.r_[0, 1, 0], "poisson") is None
    f = D.constant_response(np.full(5, 2.5), "gaussian")
    assert f.kind == "constant_response" and f.severity == "error"
    assert D.constant_response(np.r_[1.0, 2.0], "gaussian") is None
    t = np.array([3.0, 4.0, 0.0])
    assert D.constant_response(np.array([3.0, 4.0, 0.0]), "binomial", trials=t).details["value"] == 1.0
    assert D.constant_response(np.array([0.0, 0.0, 0.0]), "binomial", trials=t).details["value"] == 0.0
    assert D.constant_response(np.array([1.0, 0.0, 0.0]), "binomial", trials=t) is None


def test_gaussian_one_observation_per_level(rng):
    n = 30
    x = rng.normal(size=n)
    df = pd.DataFrame({"y": x + rng.normal(size=n), "x": x, "g": [f"g{i}" for i in range(n)]})
    spec = _spec("y ~ x + (1 | g)", df, "gaussian")
    assert spec.terms[0].n_levels == spec.n == n
    findings = D.levels_vs_observations(spec)
    assert _kinds(findings) == ["levels_vs_observations"]
    assert findings[0].columns == ("g",) and findings[0].severity == "error"
    assert "must be < number of observations" in findings[0].message  # lmer's words
    assert _kinds(D.check_spec(spec)) == ["levels_vs_observations"]
    # glmer accepts n_levels == n (allow.n = TRUE): nothing for a bernoulli model
    dfb = df.assign(y=(rng.uniform(size=n) < 0.5).astype(int))
    assert D.levels_vs_observations(_spec("y ~ x + (1 | g)", dfb, "bernoulli")) == []


def test_gaussian_random_slopes_vs_observations(rng):
    n = 40
    x = rng.normal(size=n)
    df = pd.DataFrame({"y": x + rng.normal(size=n), "x": x, "g": np.repeat([f"g{i}" for i in range(20)], 2)})
    spec = _spec("y ~ x + (x | g)", df, "gaussian")  # 2 * 20 random effects = 40 = n
    findings = D.levels_vs_observations(spec)
    assert _kinds(findings) == ["random_effects_vs_observations"]
    assert findings[0].columns == (spec.terms[0].name,)
    assert "number of observations (=40) <= number of random effects (=40) for term (x | g)" in findings[0].message
    # three rows per group: identifiable
    df3 = pd.DataFrame({"y": np.r_[df.y, df.y[:20]], "x": np.r_[x, x[:20]],
                        "g": np.r_[df.g, df.g[:20]]})
    assert D.levels_vs_observations(_spec("y ~ x + (x | g)", df3, "gaussian")) == []


def test_finding_is_a_plain_dataclass():
    f = D.Finding("constant_response", "msg", ("(Intercept)",))
    assert f.severity == "warning" and f.details == {}
    with pytest.raises(ValueError):
        D.separation(np.ones((3, 1)), np.array([0.0, 2.0, 1.0]), ["a"])


def test_lp_verdict_matches_ridge_path_on_small_random_data():
    """Separated (LP) exactly when the vanishing-ridge logistic fit runs off to infinity."""
    n_sep = 0
    for seed in range(40):
        r = np.random.default_rng(seed)
        n = 10
        X = np.c_[np.ones(n), r.normal(size=n), r.integers(0, 2, size=n)]
        y = (r.uniform(size=n) < expit(1.5 * X[:, 1])).astype(float)
        res = D.separation(X, y, ["a", "x", "z"])
        b_hi, b_lo = _ridge_path(X, y)
        diverges = np.linalg.norm(b_lo) > np.linalg.norm(b_hi) + 3
        assert res.separated == diverges, (seed, res, b_hi, b_lo)
        n_sep += res.separated
        if res.separated:
            _check_against_ridge(X, y, res, ["a", "x", "z"])
    assert 5 <= n_sep <= 35  # both outcomes are exercised


def test_fit_paths_act_on_the_findings():
    """ML warns naming the separated columns; NUTS says the prior bounds them (no sampling here:
    the warning comes before the sampler starts, so a bad sampler name stops it right after)."""
    import warnings as _w

    import bayes_glmm as bg
    rng = np.random.default_rng(0)
    d = pd.DataFrame({"x": rng.normal(size=80), "g": np.repeat(np.arange(8), 10)})
    d["y"] = (d["x"] > 0).astype(int)
    m = bg.GLMM("y ~ x + (1 | g)", d, family="bernoulli")
    with pytest.warns(UserWarning, match=r"complete separation.*x -> \+inf.*Wald SEs are meaningless"):
        with _w.catch_warnings():
            _w.filterwarnings("ignore", message="boundary")
            _w.filterwarnings("ignore", message="likely")
            m.fit_ml()
    with pytest.warns(UserWarning, match="the prior, not the data, bounds those parameters"):
        with pytest.raises(ValueError):
            m.sample(draws=10, tune=10, chains=1, sampler="no-such-sampler")

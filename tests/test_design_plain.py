"""Sums of plain variables are coded without formulae (spec.design._plain_design): the same
matrices, names, new-data designs and ANOVA term map as formulae's coding, for every column
type the coding path accepts, and formulae's path for everything else."""
import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm.ml.inference.anova import fixed_terms
from bayes_glmm.spec import design


def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    d = pd.DataFrame({
        "y": rng.normal(size=n),
        "x": rng.normal(size=n),
        "i": rng.integers(0, 5, n),
        "ni": pd.array(rng.integers(0, 3, n), dtype="Int64"),
        "b": rng.random(n) < 0.4,
        "s": rng.choice(["lo", "mid", "hi"], n),
        "sa": pd.array(rng.choice(["p", "q"], n), dtype="string"),
        "c": pd.Categorical(rng.choice(["z", "a", "m"], n), categories=["z", "m", "a", "unused"]),
        "o": pd.Categorical(rng.choice(["low", "high"], n), categories=["low", "high"], ordered=True),
        "cn": pd.Categorical(rng.choice([1.0, 2.5, 4.0], n)),
        "ci": pd.Categorical(rng.choice([3, 1, 2], n)),
        "g": rng.choice(list("ABCDEFGH"), n),
    })
    return d


FORMULAS = [
    "y ~ x + (1 | g)",
    "y ~ x + i + ni + (1 | g)",
    "y ~ s + sa + (1 | g)",
    "y ~ b + c + o + (1 + x | g)",
    "y ~ cn + ci + x + (1 | g)",
    "y ~ 1 + s + x + (x || g)",
    "y ~ s + (1 + s | g)",
]


def _specs(formula, data, monkeypatch, **kw):
    fast = bg.GLMM(formula, data, **kw).spec
    with monkeypatch.context() as mp:
        mp.setattr(design, "_plain_design", lambda rhs, fx: None)
        slow = bg.GLMM(formula, data, **kw).spec
    return fast, slow


@pytest.mark.parametrize("formula", FORMULAS)
def test_plain_coding_equals_formulae(formula, monkeypatch):
    d = _data()
    fast, slow = _specs(formula, d, monkeypatch)
    assert fast.new_design.fixed.built is None and fast.new_design.fixed.source is not None
    assert slow.new_design.fixed.built is not None
    np.testing.assert_array_equal(fast.X, slow.X)
    assert tuple(fast.fixed_names) == tuple(slow.fixed_names)
    for tf, ts in zip(fast.terms, slow.terms):
        np.testing.assert_array_equal(tf.Xr, ts.Xr)
        assert tuple(tf.coef_names) == tuple(ts.coef_names)
    # new rows (a subset of the levels, other values): the same designs, through formulae's
    # terms built on first use for the plain coding
    new = _data(n=7, seed=5)
    a, b = fast.new_design(new), slow.new_design(new)
    np.testing.assert_array_equal(a.X, b.X)
    for xa, xb in zip(a.Xr, b.Xr):
        np.testing.assert_array_equal(xa, xb)
    assert fast.new_design.fixed.built is not None
    assert fixed_terms(fast) == fixed_terms(slow)


def test_ordinal_drops_the_intercept_the_same_way(monkeypatch):
    d = _data()
    d["r"] = pd.Categorical(np.random.default_rng(2).choice([1, 2, 3], len(d)), ordered=True)
    fast, slow = _specs("r ~ s + x + (1 | g)", d, monkeypatch, family="ordinal")
    np.testing.assert_array_equal(fast.X, slow.X)
    assert tuple(fast.fixed_names) == tuple(slow.fixed_names)
    assert "(Intercept)" not in fast.fixed_names
    new = _data(n=5, seed=9)
    np.testing.assert_array_equal(fast.new_design(new).X, slow.new_design(new).X)
    assert fixed_terms(fast) == fixed_terms(slow)


@pytest.mark.parametrize("formula", ["y ~ 0 + s + (1 | g)", "y ~ x * s + (1 | g)", "y ~ x:s + (1 | g)",
                                     "y ~ log(i + 1) + (1 | g)", "y ~ s - 1 + (1 | g)", "y ~ `x` + (1 | g)"])
def test_other_right_hand_sides_go_through_formulae(formula):
    spec = bg.GLMM(formula, _data()).spec
    assert spec.new_design.fixed.source is None


def test_plain_design_declines_what_it_does_not_code():
    d = _data()
    fx = d.assign(obj=[1, "a"] * 30, one=pd.Categorical(["k"] * 60, ordered=True),
                  un=pd.Categorical(d["s"], categories=["mid", "lo", "hi"]), z=d["x"].astype(complex),
                  part=pd.Categorical(["u"] * 60, categories=["u", "v"]))
    for rhs in ("1 + obj", "1 + one", "1 + un", "1 + part", "1 + z", "1 + x + x", "1 + nope", "x + s", "0 + s"):
        assert design._plain_design(rhs, fx) is None, rhs
    X, names = design._plain_design("1 + x + o", fx)
    assert names == ("(Intercept)", "x", "ohigh") and X.shape == (60, 3)


def test_fit_and_predict_unchanged(monkeypatch):
    d = _data()
    m1 = bg.GLMM("y ~ s + x + (1 | g)", d)
    with monkeypatch.context() as mp:
        mp.setattr(design, "_plain_design", lambda rhs, fx: None)
        m2 = bg.GLMM("y ~ s + x + (1 | g)", d)
    r1, r2 = m1.fit_ml(), m2.fit_ml()
    assert r1.loglik == pytest.approx(r2.loglik, rel=1e-14)
    new = _data(n=9, seed=3)
    np.testing.assert_allclose(np.asarray(r1.predict(new)), np.asarray(r2.predict(new)), rtol=1e-12, atol=1e-14)

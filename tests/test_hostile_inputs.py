"""Hostile inputs (issue 9): each bad argument fails at the boundary with a ValueError or
TypeError naming the argument or column and the fix, and the caller's data is never
modified -- neither by a refused call nor by an accepted one.

Every refusal case checks the exception type, a regex on its message and that the
DataFrame passed in equals a deep copy taken before the call (dtypes included).  The
cases that must *work* (polars, pyarrow-backed frames, Unicode names, duplicate index
labels, missing values in array weights) check the result and the data likewise.
Building the spec is enough for nearly all cases; a few fit_ml calls use tiny data.
"""
from __future__ import annotations

import copy
import datetime as dt
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import bayes_glmm as bg
from bayes_glmm.spec import validate
from bayes_glmm.spec.design import build_spec
from bayes_glmm.families import get_family

N, G = 48, 8


def base() -> pd.DataFrame:
    """A small data set with one column for each role (and some spare hostile columns)."""
    rng = np.random.default_rng(9)
    g = np.repeat([f"g{i}" for i in range(G)], N // G)
    x = rng.normal(size=N)
    return pd.DataFrame({
        "y": 1.0 + 0.5 * x + rng.normal(size=N),
        "x": x,
        "z": rng.normal(size=N),
        "g": g,
        "h": np.tile(["u", "v"], N // 2),
        "f": rng.choice(["a", "b", "c"], N),
        "k": rng.integers(0, 5, N),
        "n": np.full(N, 6),
        "b": rng.integers(0, 2, N),
        "w": rng.uniform(0.5, 2.0, N),
        "t": rng.uniform(1.0, 3.0, N),
    })


def snapshot(obj):
    return copy.deepcopy(obj)


def assert_unchanged(after, before):
    if isinstance(before, pd.DataFrame):
        pd.testing.assert_frame_equal(after, before, check_exact=True)
    elif isinstance(before, np.ndarray):
        np.testing.assert_array_equal(after, before)
        assert after.dtype == before.dtype
    elif isinstance(before, dict):
        assert after.keys() == before.keys()
        for k in before:
            np.testing.assert_array_equal(np.asarray(after[k]), np.asarray(before[k]))


@dataclass
class Case:
    id: str
    call: Callable[[Any], Any]  # called with the data
    exc: type
    match: str
    data: Callable[[], Any] = base


def glmm(formula, family="gaussian", **kw):
    return lambda d: bg.GLMM(formula, d, family=family, **kw)


def fit(formula, family="gaussian", fit_kw=None, **kw):
    return lambda d: bg.GLMM(formula, d, family=family, **kw).fit_ml(**(fit_kw or {}))


def mod(**cols):
    """Data: base() with columns replaced or added (a callable per column gets the frame)."""
    def make():
        d = base()
        for c, v in cols.items():
            d[c] = v(d) if callable(v) else v
        return d
    return make


F = "y ~ x + (1 | g)"
_mi = base()
_mi.columns = pd.MultiIndex.from_tuples([(c, "v") for c in _mi.columns])


def _dup(name):
    def make():
        d = base()
        return pd.concat([d, d[[name]]], axis=1)
    return make


def _nan_rows(col, rows):
    def make():
        d = base()
        d[col] = d[col].astype(object if d[col].dtype == object or d[col].dtype == "str" else float)
        d.loc[rows, col] = np.nan
        return d
    return make


def _mutated_prior():
    p = bg.Prior("HalfNormal", sigma=1.0)
    p.args["sigma"] = -2.0
    return p


REFUSED = [
    # ---------------------------------------------------------------- the data container
    Case("data-numpy", lambda d: bg.GLMM(F, base().to_numpy()), TypeError, r"data must be a pandas DataFrame.*NumPy array.*pd\.DataFrame"),
    Case("data-none", lambda d: bg.GLMM(F, None), TypeError, r"data must be a pandas DataFrame.*got NoneType"),
    Case("data-list", lambda d: bg.GLMM(F, d.to_dict("records")), TypeError, r"data must be a pandas DataFrame.*got list"),
    Case("data-series", lambda d: bg.GLMM(F, d["y"]), TypeError, r"data must be a DataFrame.*Series.*to_frame"),
    Case("data-path", lambda d: bg.GLMM(F, "data.csv"), TypeError, r"data must be a pandas DataFrame.*got str"),
    Case("data-empty", glmm(F), ValueError, r"data has no rows", lambda: base().iloc[:0]),
    Case("data-no-columns", glmm(F), ValueError, r"data has no columns", lambda: pd.DataFrame(index=range(5))),
    Case("data-multiindex-columns", glmm(F), ValueError, r"MultiIndex.*flatten", lambda: _mi.copy()),
    Case("data-dict-ragged", glmm(F), ValueError, r"data is a dict.*equal-length", lambda: {"y": [1.0, 2.0], "x": [1.0], "g": ["a"]}),
    Case("duplicate-predictor-column", glmm(F), ValueError, r"duplicate column name\(s\) \['x'\]", _dup("x")),
    Case("duplicate-group-column", glmm(F), ValueError, r"duplicate column name\(s\) \['g'\]", _dup("g")),
    Case("duplicate-weights-column", glmm(F, weights="w"), ValueError, r"duplicate column name\(s\) \['w'\]", _dup("w")),
    Case("duplicate-response-column", glmm(F), ValueError, r"duplicate column name\(s\) \['y'\]", _dup("y")),
    # ---------------------------------------------------------------- the formula
    Case("formula-int", lambda d: bg.GLMM(3, d), TypeError, r"formula must be a string.*got int"),
    Case("formula-none", lambda d: bg.GLMM(None, d), TypeError, r"formula must be a string.*got NoneType"),
    Case("formula-list", lambda d: bg.GLMM(["y", "x"], d), TypeError, r"formula must be a string.*got list"),
    Case("formula-empty", glmm(""), ValueError, r"formula is empty; write 'response ~ predictors'"),
    Case("formula-blank", glmm("   \n"), ValueError, r"formula is empty"),
    Case("formula-no-tilde", glmm("y x"), ValueError, r"has no '~'"),
    Case("formula-no-response", glmm("~ x + (1 | g)"), ValueError, r"no response left of '~'"),
    Case("formula-no-rhs", glmm("y ~ "), ValueError, r"nothing right of '~'.*'~ 1'"),
    Case("formula-two-tildes", glmm("y ~ x ~ z"), ValueError, r"more than one '~'"),
    Case("formula-trailing-plus", glmm("y ~ x +"), ValueError, r"ends with the operator '\+'"),
    Case("formula-trailing-star", glmm("y ~ x *"), ValueError, r"ends with the operator '\*'"),
    Case("formula-trailing-colon", glmm("y ~ x + (1 | g) + x:"), ValueError, r"ends with the operator ':'"),
    Case("formula-unclosed-paren", glmm("y ~ x + (1 | g"), ValueError, r"unbalanced parentheses.*never closed"),
    Case("formula-extra-paren", glmm("y ~ x) + (1 | g)"), ValueError, r"unbalanced parentheses.*no matching opening"),
    Case("formula-open-backtick", glmm("y ~ `x + (1 | g)"), ValueError, r"unterminated quote or backtick"),
    Case("formula-bar-outside-parens", glmm("y ~ x | g"), ValueError, r"'\|' .* outside parentheses"),
    Case("formula-percent-operator", glmm("y ~ x %in% g + (1 | g)"), ValueError, r"operator '%in%'.*not supported"),
    Case("formula-unknown-column", glmm("y ~ xx + (1 | g)"), ValueError, r"unknown column 'xx' in fixed part.*did you mean 'x'"),
    Case("formula-wrong-case-column", glmm("y ~ X + (1 | g)"), ValueError, r"unknown column 'X'.*did you mean 'x'"),
    Case("formula-unknown-response", glmm("yy ~ x + (1 | g)"), ValueError, r"unknown column 'yy' in response.*did you mean 'y'"),
    Case("formula-unknown-group", glmm("y ~ x + (1 | gg)"), ValueError, r"grouping factor 'gg'.*not a column.*did you mean 'g'"),
    Case("formula-unknown-random-slope", glmm("y ~ x + (xx | g)"), ValueError, r"unknown column 'xx' in random term"),
    Case("formula-unknown-offset-column", glmm("k ~ x + offset(log(tt)) + (1 | g)", "poisson"), ValueError, r"unknown column 'tt' in offset.*did you mean 't'"),
    Case("formula-unknown-cbind-column", glmm("cbind(k, nn - k) ~ x + (1 | g)", "binomial"), ValueError, r"unknown column 'nn' in response"),
    Case("formula-unknown-function", glmm("y ~ foo(x) + (1 | g)"), ValueError, r"unknown function 'foo'.*supported functions"),
    Case("formula-dot", glmm("y ~ . + (1 | g)"), ValueError, r"'\.' \(all other columns\).*not supported"),
    Case("formula-constant-response", glmm("1 ~ x + (1 | g)"), ValueError, r"response '1'.*uses no column of data"),
    Case("formula-response-as-predictor", glmm("y ~ x + y + (1 | g)"), ValueError, r"response 'y' also appears as a predictor"),
    Case("random-empty-group", glmm("y ~ x + (1 | )"), ValueError, r"empty group; write \(lhs \| group\)"),
    Case("random-empty-lhs", glmm("y ~ x + ( | g)"), ValueError, r"empty left-hand side.*\(1 \| group\)"),
    Case("random-no-coefficients", glmm("y ~ x + (0 | g)"), ValueError, r"no coefficients; use \(1 \| group\)"),
    Case("random-two-bars", glmm("y ~ x + (1 | g | h)"), ValueError, r"exactly one '\|'"),
    Case("random-removal", glmm("y ~ x + (1 + x - z | g)"), ValueError, r"term removal '- z' is not supported"),
    Case("random-expression-group", glmm("y ~ x + (1 | log(g))"), ValueError, r"grouping factor 'log\(g\)'.*must be a column name"),
    Case("random-number-group", glmm("y ~ x + (1 | 2)"), ValueError, r"grouping factor '2'.*must be a column name"),
    Case("offset-subtracted", glmm("k ~ x - offset(t) + (1 | g)", "poisson"), ValueError, r"'- offset\(\.\.\.\)'.*not supported"),
    Case("cbind-one-argument", glmm("cbind(k) ~ x + (1 | g)", "binomial"), ValueError, r"cbind.*exactly two arguments"),
    Case("cbind-gaussian", glmm("cbind(k, n - k) ~ x + (1 | g)"), ValueError, r"cbind.*needs family='binomial'"),
    Case("cbind-and-trials", glmm("cbind(k, n - k) ~ x + (1 | g)", "binomial", trials="n"), ValueError, r"either through .* or trials=, not both"),
    # ---------------------------------------------------------------- column types and values
    Case("datetime-predictor", glmm("y ~ d + (1 | g)"), ValueError, r"column 'd'.*dates/times.*days since a date.*astype\(str\)",
         mod(d=pd.date_range("2020-01-01", periods=N))),
    Case("datetime-tz-predictor", glmm("y ~ d + (1 | g)"), ValueError, r"column 'd'.*dates/times",
         mod(d=pd.date_range("2020-01-01", periods=N, tz="UTC"))),
    Case("timedelta-predictor", glmm("y ~ d + (1 | g)"), ValueError, r"column 'd'.*dates/times",
         mod(d=pd.to_timedelta(np.arange(N), unit="D"))),
    Case("period-predictor", glmm("y ~ d + (1 | g)"), ValueError, r"column 'd'.*dates/times",
         mod(d=pd.period_range("2020-01", periods=N, freq="M"))),
    Case("date-objects-predictor", glmm("y ~ d + (1 | g)"), ValueError, r"column 'd'.*dates/times",
         mod(d=[dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(N)])),
    Case("arrow-timestamp-predictor", glmm("y ~ d + (1 | g)"), ValueError, r"column 'd'.*dates/times",
         mod(d=lambda d: pd.array(pd.date_range("2020", periods=N), dtype=pd.ArrowDtype(pa.timestamp("ns"))))),
    Case("datetime-random-slope", glmm("y ~ x + (d | g)"), ValueError, r"column 'd'.*dates/times",
         mod(d=pd.date_range("2020-01-01", periods=N))),
    Case("datetime-response", glmm("d ~ x + (1 | g)"), ValueError, r"column 'd'.*dates/times",
         mod(d=pd.date_range("2020-01-01", periods=N))),
    Case("complex-predictor", glmm(F), ValueError, r"column 'x'.*complex numbers", mod(x=lambda d: d.x + 1j)),
    Case("complex-response", glmm(F), ValueError, r"column 'y'.*complex numbers", mod(y=lambda d: d.y + 1j)),
    Case("mixed-object-predictor", glmm(F), ValueError, r"column 'x' .*mixes value types.*to_numeric",
         mod(x=[1.5, "a"] * (N // 2))),
    Case("object-numbers-predictor", glmm(F), ValueError, r"column 'x' .*numbers stored as Python objects.*to_numeric",
         mod(x=lambda d: d.x.astype(object))),
    Case("infinite-predictor", glmm(F), ValueError, r"column 'x'.*1 infinite value.*first at row 3",
         mod(x=lambda d: d.x.where(d.index != 3, np.inf))),
    Case("minus-infinite-random-slope", glmm("y ~ 1 + (z | g)"), ValueError, r"column 'z'.*infinite",
         mod(z=lambda d: d.z.where(d.index != 0, -np.inf))),
    Case("infinite-offset-column", glmm("k ~ x + offset(t) + (1 | g)", "poisson"), ValueError, r"column 't'.*infinite",
         mod(t=lambda d: d.t.where(d.index != 5, np.inf))),
    Case("log-of-zero-predictor", glmm("y ~ log(z0) + (1 | g)"), ValueError, r"fixed part '1 \+ log\(z0\)'.*missing or infinite",
         mod(z0=0.0)),
    Case("offset-log-zero", glmm("k ~ x + offset(log(t0)) + (1 | g)", "poisson"), ValueError, r"offset\(log\(t0\)\) has non-finite",
         mod(t0=0.0)),
    Case("infinite-response", glmm(F), ValueError, r"response 'y' has non-finite", mod(y=lambda d: d.y.where(d.index != 2, np.inf))),
    Case("all-rows-missing", glmm(F), ValueError, r"no complete rows.*'x'", mod(x=np.nan)),
    # ---------------------------------------------------------------- response vs family
    Case("string-response-poisson", glmm("f ~ x + (1 | g)", "poisson"), ValueError, r"response 'f' must be numeric for family 'poisson'"),
    Case("negative-counts-poisson", glmm("y ~ x + (1 | g)", "poisson"), ValueError, r"poisson response 'y' must be non-negative integer"),
    Case("fractional-counts-poisson", glmm("t ~ x + (1 | g)", "poisson"), ValueError, r"poisson response 't' must be non-negative integer"),
    Case("bernoulli-three-levels", glmm("f ~ x + (1 | g)", "bernoulli"), ValueError, r"bernoulli response 'f' must have exactly two levels; found 3"),
    Case("bernoulli-counts", glmm("k ~ x + (1 | g)", "bernoulli"), ValueError, r"bernoulli response 'k' must be 0/1.*family='binomial'"),
    Case("binomial-without-trials", glmm("k ~ x + (1 | g)", "binomial"), ValueError, r"binomial response 'k' needs trials"),
    # ---------------------------------------------------------------- weights=
    Case("weights-negative-array", glmm(F, weights=np.r_[-1.0, np.ones(N - 1)]), ValueError, r"weights has 1 negative value.*non-negative"),
    Case("weights-negative-column", glmm(F, weights="w"), ValueError, r"weights column 'w' has 2 negative",
         mod(w=lambda d: d.w.where(d.index > 1, -1.0))),
    Case("weights-infinite", glmm(F, weights=np.r_[np.inf, np.ones(N - 1)]), ValueError, r"weights has 1 infinite value"),
    Case("weights-all-zero-gaussian", glmm(F, weights=np.zeros(N)), ValueError, r"weights are all zero.*no observation carries information"),
    Case("weights-all-zero-poisson", glmm("k ~ x + (1 | g)", "poisson", weights=np.zeros(N)), ValueError, r"weights are all zero"),
    Case("weights-all-zero-column", glmm("b ~ x + (1 | g)", "bernoulli", weights="w"), ValueError, r"weights column 'w' are all zero",
         mod(w=0.0)),
    Case("weights-wrong-length", glmm(F, weights=np.ones(3)), ValueError, r"weights= has 3 values but data has 48 rows"),
    Case("weights-scalar", glmm(F, weights=2.0), TypeError, r"weights= must be a column name or one number per row"),
    Case("weights-bool-scalar", glmm(F, weights=True), TypeError, r"weights= must be a column name"),
    Case("weights-strings", glmm(F, weights=["a"] * N), TypeError, r"weights= must be a column name or numeric array-like"),
    Case("weights-bool-array", glmm(F, weights=np.ones(N, dtype=bool)), TypeError, r"weights= holds booleans"),
    Case("weights-complex-array", glmm(F, weights=np.ones(N) + 1j), TypeError, r"weights= must be a column name or numeric"),
    Case("weights-unknown-column", glmm(F, weights="ww"), ValueError, r"weights='ww' is not a column of data; did you mean 'w'"),
    Case("weights-string-column", glmm(F, weights="f"), ValueError, r"weights column 'f' must be numeric.*to_numeric"),
    Case("weights-bool-column", glmm(F, weights="wb"), ValueError, r"weights column 'wb' must be numeric", mod(wb=True)),
    Case("weights-misaligned-series", glmm(F, weights=pd.Series(np.ones(N), index=np.arange(N) + 100)), ValueError,
         r"weights= is a pandas Series whose index does not match data's index.*to_numpy"),
    # ---------------------------------------------------------------- trials=
    Case("trials-wrong-length", glmm("k ~ x + (1 | g)", "binomial", trials=np.full(3, 6)), ValueError, r"trials= has 3 values but data has 48"),
    Case("trials-negative", glmm("k ~ x + (1 | g)", "binomial", trials=np.r_[-6, np.full(N - 1, 6)]), ValueError, r"binomial trials for 'k' must be non-negative integers"),
    Case("trials-fractional", glmm("k ~ x + (1 | g)", "binomial", trials=np.full(N, 6.5)), ValueError, r"binomial trials for 'k' must be non-negative integers"),
    Case("trials-below-successes", glmm("k ~ x + (1 | g)", "binomial", trials=np.full(N, 1)), ValueError, r"binomial successes exceed trials.*check the trials column"),
    Case("trials-poisson", glmm("k ~ x + (1 | g)", "poisson", trials="n"), ValueError, r"trials= applies to family='binomial' only \(got family='poisson'\)"),
    Case("trials-bernoulli", glmm("b ~ x + (1 | g)", "bernoulli", trials="n"), ValueError, r"trials= applies to family='binomial' only"),
    Case("trials-unknown-column", glmm("k ~ x + (1 | g)", "binomial", trials="nn"), ValueError, r"trials='nn' is not a column of data; did you mean 'n'"),
    Case("trials-string-column", glmm("k ~ x + (1 | g)", "binomial", trials="f"), ValueError, r"trials column 'f' must be numeric"),
    # ---------------------------------------------------------------- grouping factors
    Case("group-single-level", glmm(F), ValueError, r"grouping factor 'g' .*single level.*at least 2 groups", mod(g="only")),
    Case("group-single-level-after-na", glmm(F), ValueError, r"grouping factor 'g' .*single level",
         mod(g=lambda d: d.g.where(d.g == "g0", None))),
    Case("group-mixed-types", glmm(F), ValueError, r"grouping column 'g' .*mixes value types.*astype\(str\)",
         mod(g=lambda d: [1 if i % 2 else "a" for i in range(N)])),
    Case("gaussian-one-row-per-group", fit("y ~ x + (1 | id)"), ValueError, r"grouping factor 'id' has 48 levels for 48 observations",
         mod(id=np.arange(N))),
    # ---------------------------------------------------------------- too few observations (refused at fit)
    Case("three-rows-fitted", fit(F), ValueError, r"too few observations: 3 row\(s\) for 4 parameters",
         lambda: pd.DataFrame({"y": [1.0, 2.0, 3.0], "x": [1.0, 2.0, 4.0], "g": ["a", "a", "b"]})),
    Case("three-rows-pql", lambda d: bg.GLMM("b ~ x + z + (1 | g)", d, family="bernoulli").fit_pql(), ValueError,
         r"too few observations: 3 row\(s\) for 4 parameters",
         lambda: pd.DataFrame({"b": [1, 0, 1], "x": [1.0, 2.0, 4.0], "z": [0.0, 1.0, 0.0], "g": ["a", "a", "b"]})),
    Case("three-rows-sample", lambda d: bg.GLMM(F, d).sample(draws=10, tune=10, chains=1), ValueError, r"too few observations: 3 row",
         lambda: pd.DataFrame({"y": [1.0, 2.0, 3.0], "x": [1.0, 2.0, 4.0], "g": ["a", "a", "b"]})),
    Case("few-rows-after-na", fit("y ~ x + z + (x | g)"), ValueError, r"too few observations: \d row\(s\) for 7 parameters",
         lambda: base().assign(x=lambda d: d.x.where(d.index.isin([0, 1, 2, 6, 7, 8])))),
    Case("few-positive-weights", fit(F, weights=np.r_[np.ones(3), np.zeros(N - 3)]), ValueError, r"too few observations: 3 row\(s\)"),
    # ---------------------------------------------------------------- family and link
    Case("family-typo", glmm(F, "poison"), ValueError, r"unknown family 'poison' \(did you mean 'poisson'\?\)"),
    Case("family-wrong-case-typo", glmm(F, "Binomal"), ValueError, r"unknown family 'Binomal' \(did you mean 'binomial'\?\)"),
    Case("family-int", glmm(F, 1), TypeError, r"family must be a string such as 'bernoulli'"),
    Case("family-none", glmm(F, None), TypeError, r"family must be a string"),
    Case("link-not-for-family", glmm("k ~ x + (1 | g)", "poisson", link="logit"), ValueError, r"link 'logit' is not available for family 'poisson'.*\['log'\]"),
    Case("link-typo", glmm("b ~ x + (1 | g)", "bernoulli", link="logti"), ValueError, r"link 'logti' .*did you mean 'logit'"),
    Case("link-int", glmm("b ~ x + (1 | g)", "bernoulli", link=1), TypeError, r"link must be a string"),
    # ---------------------------------------------------------------- priors=
    Case("priors-list", glmm(F, priors=[bg.Prior("Normal", mu=0, sigma=1)]), TypeError, r"priors must be a dict.*got list"),
    Case("priors-string", glmm(F, priors="weak"), TypeError, r"priors must be a dict.*got str"),
    Case("priors-unknown-key", glmm(F, priors={"sd_G": bg.Prior("HalfNormal", sigma=1)}), ValueError,
         r"unknown prior key\(s\) \['sd_G'\] \(did you mean 'sd_g'\?\); valid keys"),
    Case("priors-misspelt-sigma", glmm(F, priors={"sgima": bg.Prior("HalfNormal", sigma=1)}), ValueError, r"'sgima'.*did you mean 'sigma'"),
    Case("priors-value-number", glmm(F, priors={"sigma": 3}), ValueError, r"prior for 'sigma' must be bayes_glmm\.Prior or bambi\.Prior, got int"),
    Case("priors-value-tuple", glmm(F, priors={"x": ("Normal", 0, 1)}), ValueError, r"prior for 'x' must be bayes_glmm\.Prior"),
    Case("priors-support", glmm(F, priors={"sd_g": bg.Prior("Normal", mu=0, sigma=1)}), ValueError, r"prior for 'sd_g' must have positive support"),
    Case("priors-mutated-negative", lambda d: bg.GLMM(F, d, priors={"sd_g": _mutated_prior()}), ValueError,
         r"prior for 'sd_g': Prior\('HalfNormal'\) parameter sigma=-2\.0 must be positive"),
    Case("priors-vector-wrong-length", glmm("y ~ x + (x | g)", priors={"sd_g": bg.Prior("HalfNormal", sigma=[1.0, 2.0, 3.0])}),
         ValueError, r"prior for 'sd_g': parameter sigma has 3 values; it takes 1 or 2 values"),
    Case("priors-vector-for-slope", glmm(F, priors={"x": bg.Prior("Normal", mu=0, sigma=[1.0, 2.0])}), ValueError,
         r"prior for 'x': parameter sigma has 2 values; it takes a single number"),
    Case("prior-negative-sigma", lambda d: bg.Prior("HalfNormal", sigma=-1), ValueError, r"Prior\('HalfNormal'\) parameter sigma=-1 must be positive"),
    Case("prior-zero-sigma", lambda d: bg.Prior("Normal", mu=0, sigma=0), ValueError, r"parameter sigma=0 must be positive"),
    Case("prior-negative-in-vector", lambda d: bg.Prior("HalfNormal", sigma=[1.0, -1.0]), ValueError, r"parameter sigma=\[1\.0, -1\.0\] must be positive"),
    Case("prior-negative-rate", lambda d: bg.Prior("Exponential", lam=-2), ValueError, r"Prior\('Exponential'\) parameter lam=-2 must be positive"),
    Case("prior-lkj-eta-zero", lambda d: bg.Prior("LKJ", eta=0), ValueError, r"Prior\('LKJ'\) parameter eta=0 must be positive"),
    Case("prior-nan", lambda d: bg.Prior("Normal", mu=np.nan, sigma=1), ValueError, r"parameter mu=nan must be finite"),
    Case("prior-studentt-no-nu", lambda d: bg.Prior("StudentT", mu=0, sigma=1), ValueError, r"Prior\('StudentT'\) needs the parameter\(s\) \(nu\)"),
    Case("prior-gamma-half", lambda d: bg.Prior("Gamma", mu=1.0), ValueError, r"Prior\('Gamma'\) needs the parameter\(s\) \(alpha, beta\) or \(mu, sigma\)"),
    Case("prior-two-parametrizations", lambda d: bg.Prior("Exponential", lam=1, scale=1), ValueError, r"two parametrizations"),
    Case("prior-unknown-distribution", lambda d: bg.Prior("Normall", mu=0), ValueError, r"unknown prior distribution 'Normall'"),
    Case("prior-unknown-parameter", lambda d: bg.Prior("Normal", mu=0, sd=1), ValueError, r"unknown parameter\(s\) \['sd'\]"),
    # ---------------------------------------------------------------- centered=
    Case("centered-unknown-term", glmm(F, centered={"G": True}), ValueError, r"centered: unknown term name\(s\) \['G'\] \(did you mean 'g'\?\)"),
    Case("centered-string", glmm(F, centered="yes"), TypeError, r"centered must be True/False or a dict"),
    Case("centered-value-not-bool", glmm(F, centered={"g": "yes"}), ValueError, r"centered\['g'\] must be True or False"),
    # ---------------------------------------------------------------- fit_ml / fit_pql / sample arguments
    Case("reml-string", fit(F, fit_kw={"reml": "no"}), TypeError, r"reml must be True or False \(or None for the default\), got 'no'"),
    Case("reml-int", fit(F, fit_kw={"reml": 0}), TypeError, r"reml must be True or False"),
    Case("n_agq-zero", fit("b ~ x + (1 | g)", "bernoulli", fit_kw={"n_agq": 0}), ValueError, r"n_agq must be a positive integer.*got 0"),
    Case("n_agq-negative", fit("b ~ x + (1 | g)", "bernoulli", fit_kw={"n_agq": -1}), ValueError, r"n_agq must be a positive integer.*got -1"),
    Case("n_agq-fraction", fit("b ~ x + (1 | g)", "bernoulli", fit_kw={"n_agq": 2.5}), ValueError, r"n_agq must be a positive integer.*got 2\.5"),
    Case("n_agq-string", fit("b ~ x + (1 | g)", "bernoulli", fit_kw={"n_agq": "5"}), TypeError, r"n_agq must be a positive integer.*got '5'"),
    Case("n_agq-bool", fit("b ~ x + (1 | g)", "bernoulli", fit_kw={"n_agq": True}), TypeError, r"n_agq must be a positive integer.*got True"),
    Case("n_agq-nan", fit("b ~ x + (1 | g)", "bernoulli", fit_kw={"n_agq": float("nan")}), ValueError, r"n_agq must be a positive integer.*got nan"),
    Case("pql-dispersion-string", lambda d: bg.GLMM("b ~ x + (1 | g)", d, family="bernoulli").fit_pql(dispersion="yes"), TypeError,
         r"dispersion must be True or False"),
    Case("sample-seed-negative", lambda d: bg.GLMM(F, d).sample(random_seed=-1), ValueError, r"random_seed must be a non-negative integer.*got -1"),
    Case("sample-seed-huge", lambda d: bg.GLMM(F, d).sample(random_seed=2 ** 64), ValueError, r"random_seed must be a non-negative integer below 2\*\*64"),
    Case("sample-seed-float", lambda d: bg.GLMM(F, d).sample(random_seed=1.5), TypeError, r"random_seed must be a non-negative integer or None, got 1\.5"),
    Case("sample-seed-string", lambda d: bg.GLMM(F, d).sample(random_seed="42"), TypeError, r"random_seed must be a non-negative integer or None"),
    Case("sample-draws-zero", lambda d: bg.GLMM(F, d).sample(draws=0), ValueError, r"draws must be a positive integer, got 0"),
    Case("sample-chains-zero", lambda d: bg.GLMM(F, d).sample(chains=0), ValueError, r"chains must be a positive integer"),
    Case("sample-tune-negative", lambda d: bg.GLMM(F, d).sample(tune=-5), ValueError, r"tune must be a non-negative integer, got -5"),
    Case("sample-draws-float", lambda d: bg.GLMM(F, d).sample(draws=10.5), TypeError, r"draws must be a positive integer, got 10\.5"),
    Case("check-random-seed", lambda d: validate.check_random_seed(-3, "seed"), ValueError, r"seed must be a non-negative integer"),
    # ---------------------------------------------------------------- newdata
    Case("newdata-numpy", lambda d: bg.GLMM(F, d).spec.new_design(d.to_numpy()), TypeError, r"newdata must be a pandas DataFrame.*NumPy array"),
    Case("newdata-missing-column", lambda d: bg.GLMM(F, d).spec.new_design(d.drop(columns="x")), ValueError, r"newdata is missing column\(s\) \['x'\]"),
    Case("newdata-multiindex", lambda d: bg.GLMM(F, d).spec.new_design(_mi.copy()), ValueError, r"newdata has MultiIndex"),
]


@pytest.mark.parametrize("case", REFUSED, ids=[c.id for c in REFUSED])
def test_refused_by_name_and_data_untouched(case):
    data = case.data()
    before = snapshot(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "dropped rows with missing values" on the way to the error
        with pytest.raises(case.exc, match=case.match):
            case.call(data)
    assert_unchanged(data, before)


def test_enough_cases():
    assert len(REFUSED) >= 100
    assert len({c.id for c in REFUSED}) == len(REFUSED)


def test_type_errors_are_also_value_errors():
    """Wrong types raise InputTypeError: a TypeError, and a ValueError as the package raised before."""
    with pytest.raises(ValueError, match="formula must be a string"):
        bg.GLMM(3, base())
    assert issubclass(validate.InputTypeError, TypeError) and issubclass(validate.InputTypeError, ValueError)


def test_array_arguments_untouched():
    d = base()
    w = np.r_[np.nan, np.ones(N - 1)]
    tr = np.r_[np.nan, np.full(N - 1, 6.0)]
    w0, tr0, d0 = w.copy(), tr.copy(), snapshot(d)
    with pytest.warns(UserWarning, match=r"dropped 1 of 48 rows.*'weights=' \(1\)"):
        s = bg.GLMM(F, d, weights=w).spec
    assert s.n == N - 1 and np.all(s.weights == 1.0)
    with pytest.warns(UserWarning, match=r"dropped 1 of 48 rows.*'trials=' \(1\)"):
        s = bg.GLMM("k ~ x + (1 | g)", d, family="binomial", trials=tr).spec
    assert s.n == N - 1 and np.all(s.trials == 6.0)
    assert not np.shares_memory(s.trials, tr)
    np.testing.assert_array_equal(w, w0)
    np.testing.assert_array_equal(tr, tr0)
    assert_unchanged(d, d0)


# ============================================================================ inputs that must work
def _same_design(a, b):
    np.testing.assert_allclose(a.X, b.X)
    np.testing.assert_allclose(a.y, b.y)
    np.testing.assert_allclose(a.weights, b.weights)
    assert a.fixed_names == b.fixed_names
    assert [t.codes.tolist() for t in a.terms] == [t.codes.tolist() for t in b.terms]


def test_pyarrow_backed_frame_gives_the_same_model():
    d = base().assign(yb=lambda d: d.b.astype(bool), fc=lambda d: pd.Categorical(d.f))
    pa_d = d.convert_dtypes(dtype_backend="pyarrow")
    before = snapshot(pa_d)
    for formula, family, kw in [("y ~ x + f + yb + (1 | g)", "gaussian", {"weights": "w"}),
                                ("b ~ x + fc + (x || g)", "bernoulli", {}),
                                ("k ~ x + (1 | g)", "binomial", {"trials": "n"}),
                                ("cbind(k, n - k) ~ x + (1 | g)", "binomial", {}),
                                ("cbind(k, 6) ~ x + (1 | g)", "binomial", {}),
                                ("k ~ x + offset(log(t)) + (1 | g) + (1 | h)", "poisson", {})]:
        _same_design(bg.GLMM(formula, pa_d, family=family, **kw).spec, bg.GLMM(formula, d, family=family, **kw).spec)
    assert_unchanged(pa_d, before)
    r, ref = bg.GLMM(F, pa_d).fit_ml(), bg.GLMM(F, d).fit_ml()
    assert r.loglik == pytest.approx(ref.loglik, rel=1e-8)
    assert_unchanged(pa_d, before)


def test_pyarrow_dictionary_and_missing_values():
    d = base()
    arrow = d.copy()
    enc = pa.array(d.g.to_numpy(dtype=object)).dictionary_encode()
    arrow["g"] = pd.array(enc, dtype=pd.ArrowDtype(enc.type))
    arrow["x"] = pd.array(d.x, dtype=pd.ArrowDtype(pa.float64()))
    arrow.loc[2, "x"] = None
    before = snapshot(arrow)
    ref = d.assign(x=d.x.where(d.index != 2))
    with pytest.warns(UserWarning, match=r"dropped 1 of 48 rows"):
        s = bg.GLMM("y ~ x + g + (1 | g)", arrow).spec
    with pytest.warns(UserWarning, match=r"dropped 1 of 48 rows"):
        _same_design(s, bg.GLMM("y ~ x + g + (1 | g)", ref).spec)
    assert list(s.terms[0].levels) == [f"g{i}" for i in range(G)]
    assert_unchanged(arrow, before)


def test_pyarrow_table_and_dict_of_columns():
    d = base()
    ref = bg.GLMM(F, d).spec
    _same_design(bg.GLMM(F, pa.Table.from_pandas(d)).spec, ref)
    cols = {c: d[c].to_numpy() for c in d.columns}
    cols0 = snapshot(cols)
    _same_design(bg.GLMM(F, cols).spec, ref)
    assert_unchanged(cols, cols0)


def test_polars_frame_accepted():
    pl = pytest.importorskip("polars", reason="polars is optional; converted with .to_pandas() when installed")
    d = base()
    p = pl.from_pandas(d)
    before = p.clone()
    _same_design(bg.GLMM("k ~ x + (1 | g)", p, family="poisson").spec, bg.GLMM("k ~ x + (1 | g)", d, family="poisson").spec)
    r = bg.GLMM(F, p, weights="w").fit_ml()
    assert r.loglik == pytest.approx(bg.GLMM(F, d, weights="w").fit_ml().loglik, rel=1e-8)
    assert p.equals(before)
    with pytest.raises(TypeError, match=r"polars LazyFrame; collect it first"):
        bg.GLMM(F, p.lazy())


@pytest.mark.parametrize("formula,ascii_formula", [
    ("y ~ χ + (1 | groupé)", "y ~ x + (1 | g)"),
    ("é ~ χ + (χ || groupé)", "y ~ x + (x || g)"),
    ("y ~ χ * café + (1 | groupé/h)", "y ~ x * f + (1 | g/h)"),
    ("k ~ χ + offset(log(τ)) + (1 | groupé)", "k ~ x + offset(log(t)) + (1 | g)"),
    ("y ~ `χ` + (1 | `groupé`)", "y ~ x + (1 | g)"),
])
def test_unicode_names_without_backticks(formula, ascii_formula):
    d = base()
    u = d.rename(columns={"x": "χ", "g": "groupé", "y": "é" if formula.startswith("é") else "y", "f": "café", "t": "τ"})
    before = snapshot(u)
    family = "poisson" if formula.startswith("k") else "gaussian"
    s = bg.GLMM(formula, u, family=family).spec
    ref = bg.GLMM(ascii_formula, d, family=family).spec
    np.testing.assert_allclose(s.X, ref.X)
    np.testing.assert_allclose(s.offset, ref.offset)
    assert [t.codes.tolist() for t in s.terms] == [t.codes.tolist() for t in ref.terms]
    assert "χ" in s.fixed_names
    assert_unchanged(u, before)


def test_unicode_names_fit_and_predict():
    u = base().rename(columns={"x": "χ", "g": "groupé"})
    before = snapshot(u)
    r = bg.GLMM("y ~ χ + (1 | groupé)", u).fit_ml()
    ref = bg.GLMM("y ~ x + (1 | g)", base()).fit_ml()
    assert r.loglik == pytest.approx(ref.loglik, rel=1e-8)
    assert r.spec.fixed_names == ("(Intercept)", "χ")
    np.testing.assert_allclose(r.predict(u.head(5)), ref.predict(base().head(5)))
    assert_unchanged(u, before)


def test_duplicate_index_labels():
    d = base().set_axis([0, 1] * (N // 2))
    d.iloc[3, d.columns.get_loc("x")] = np.nan
    before = snapshot(d)
    with pytest.warns(UserWarning, match=r"dropped 1 of 48 rows"):
        m = bg.GLMM(F, d, weights="w")
    assert m.spec.n == N - 1 and len(m.spec.row_index) == N - 1
    r = m.fit_ml()
    assert r.nobs == N - 1 and np.isfinite(r.loglik)
    assert_unchanged(d, before)


def test_unused_duplicate_columns_are_fine():
    d = pd.concat([base(), base()[["z"]]], axis=1)
    before = snapshot(d)
    assert bg.GLMM(F, d).spec.n == N
    assert_unchanged(d, before)


def test_weights_series_with_permuted_index_is_aligned():
    d = base()
    w = d.w.sample(frac=1.0, random_state=1)
    s = bg.GLMM(F, d, weights=w).spec
    np.testing.assert_allclose(s.weights, d.w.to_numpy())


@pytest.mark.parametrize("name,data,formula,family", [
    ("categorical-unused-levels", mod(g=lambda d: pd.Categorical(d.g, categories=[*sorted(set(d.g)), "empty"])), F, "gaussian"),
    ("string-group-with-nan", mod(g=lambda d: d.g.where(d.index != 0, None)), F, "gaussian"),
    ("bool-response-bernoulli", mod(yb=lambda d: d.b.astype(bool)), "yb ~ x + (1 | g)", "bernoulli"),
    ("nullable-int-with-na", mod(x=lambda d: pd.array([pd.NA] + list(range(N - 1)), dtype="Int64")), F, "gaussian"),
    ("offset-with-nan", mod(t=lambda d: d.t.where(d.index != 1)), "k ~ x + offset(log(t)) + (1 | g)", "poisson"),
    ("string-dtype-group", mod(g=lambda d: d.g.astype("string")), F, "gaussian"),
    ("integer-column-names-elsewhere", lambda: base().rename(columns={"z": 0}), F, "gaussian"),
])
def test_accepted_inputs_leave_data_untouched(name, data, formula, family):
    d = data()
    before = snapshot(d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        s = bg.GLMM(formula, d, family=family).spec
    assert s.n >= N - 1
    assert_unchanged(d, before)


# ============================================================================ warnings cite the caller
def test_construction_warnings_point_at_the_callers_line():
    d = base()
    d.loc[0, "x"] = np.nan
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        bg.GLMM(F, d)
        build_spec(F, d, get_family("gaussian"))
    msgs = [x for x in w if "dropped 1 of 48 rows" in str(x.message)]
    assert len(msgs) == 2
    assert all(x.filename == __file__ for x in msgs), [(x.filename, x.lineno) for x in msgs]


def test_fit_warnings_about_tiny_data_point_at_the_callers_line():
    d = base().head(7)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        with pytest.raises(Exception):  # the fit itself may fail on 7 rows; the warning comes first
            bg.GLMM("y ~ x + (1 | h)", d).fit_ml()
            raise RuntimeError("fitted")
    msgs = [x for x in w if "very few observations" in str(x.message)]
    assert msgs and all(x.filename == __file__ for x in msgs), [(x.filename, x.lineno, str(x.message)) for x in w]


def test_user_stacklevel_outside_package():
    assert validate.user_stacklevel() == 1  # called from here: this frame is already outside

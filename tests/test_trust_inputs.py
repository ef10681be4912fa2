"""Formulas run nothing but the allowlisted functions; models and fits pickle (issue 16).

Every attack below would run a shell command (``touch <marker>``) if the formula text
reached an evaluator with modules in reach; each must raise a ValueError before anything
runs, and the marker file must not exist afterwards.  The pickling tests send a GLMM and
its ML and Bayesian fits through pickle, joblib (when installed) and a spawn-based process
pool and compare fixef, summary text and predictions after the round trip.  The smaller
items of the issue (binomial on 0/1 data, lrt on REML fits, correlation labels, names with
spaces, backticked names with double spaces or tabs) close the file.
"""
from __future__ import annotations

import pickle
import warnings
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm.spec import design
from bayes_glmm.spec.formula import FORMULA_FUNCTIONS, NUMPY_FUNCTIONS, parse_formula
from bayes_glmm.ml.refit import REFIT_MESSAGE
from bayes_glmm.ml.summary_text import _abbrev_unique

N = 60


def data() -> pd.DataFrame:
    rng = np.random.default_rng(16)
    g = np.repeat([f"g{i}" for i in range(6)], N // 6)
    x = rng.normal(size=N)
    u = np.repeat(rng.normal(scale=0.8, size=6), N // 6)
    return pd.DataFrame({"y": 1.0 + 0.5 * x + u + rng.normal(size=N), "x": x, "g": g,
                         "k": rng.poisson(np.exp(0.3 + 0.4 * x + u)),
                         "b": (rng.random(N) < 0.5).astype(int), "n": np.full(N, 6)})


# ----------------------------------------------------------------------------- formulas run nothing
CHAIN = "np.lib._npyio_impl.os.system"


def attacks(marker: str) -> list:
    """(label, formula, keyword arguments of GLMM) for every place a formula can carry code."""
    cmd = f'"touch {marker}"'
    return [
        ("fixed np chain", f"y ~ x + {CHAIN}({cmd}) + (1 | g)", {}),
        ("fixed short chain", f"y ~ x + np.os.system({cmd}) + (1 | g)", {}),
        ("fixed inside allowed call", f"y ~ log({CHAIN}({cmd})) + (1 | g)", {}),
        ("fixed interaction", f"y ~ x:{CHAIN}({cmd}) + (1 | g)", {}),
        ("fixed braces", f"y ~ {{x + {CHAIN}({cmd})}} + (1 | g)", {}),
        ("__import__", f'y ~ x + __import__("os").system({cmd}) + (1 | g)', {}),
        ("getattr", f'y ~ x + getattr(np, "os") + (1 | g)', {}),
        ("eval", f'y ~ x + eval("1") + (1 | g)', {}),
        ("lambda", "y ~ x + (lambda: 1)() + (1 | g)", {}),
        ("dunder chain", f'y ~ x + log.__globals__.get("os") + (1 | g)', {}),
        ("builtins chain", 'y ~ x + C.__builtins__.get("eval") + (1 | g)', {}),
        ("call of a call", "y ~ x + log(x)(x) + (1 | g)", {}),
        ("backticked callee", f"y ~ x + `{CHAIN}`({cmd}) + (1 | g)", {}),
        ("number callee", "y ~ x + 1e5(x) + (1 | g)", {}),
        # formulae ends a string at either quote: this string hides a call from a tokenizer
        ("mixed quotes", f"y ~ log(x, \"a' + {CHAIN}('touch {marker}') + 'b\") + (1 | g)", {}),
        ("random lhs", f"y ~ x + ({CHAIN}({cmd}) | g)", {}),
        ("random lhs slope", f"y ~ x + (1 + {CHAIN}({cmd}) || g)", {}),
        ("zi", "k ~ x + (1 | g)", {"family": "poisson", "zi": f"~ {CHAIN}({cmd})"}),
        ("zi dunder", "k ~ x + (1 | g)", {"family": "poisson", "zi": "~ x + log.__globals__.clear()"}),
        ("response", f"{CHAIN}({cmd}) ~ x + (1 | g)", {}),
        ("offset", f"k ~ x + offset({CHAIN}({cmd})) + (1 | g)", {"family": "poisson"}),
        ("cbind", f"cbind(b, {CHAIN}({cmd})) ~ x + (1 | g)", {"family": "binomial"}),
        ("weights column", "y ~ x + (1 | g)", {"weights": f"{CHAIN}({cmd})"}),
        ("trials column", "b ~ x + (1 | g)", {"family": "binomial", "trials": f"{CHAIN}({cmd})"}),
    ]


@pytest.mark.parametrize("case", range(len(attacks("m"))), ids=[a[0] for a in attacks("m")])
def test_formula_code_is_refused_before_it_runs(case, tmp_path):
    marker = tmp_path / "pwned"
    label, formula, kwargs = attacks(str(marker))[case]
    d = data()
    before = d.copy(deep=True)
    with pytest.raises(ValueError):
        bg.GLMM(formula, d, **kwargs)
    assert not marker.exists(), f"{label}: the formula ran a command"
    pd.testing.assert_frame_equal(d, before)


@pytest.mark.parametrize("formula, where", [
    (f'y ~ x + {CHAIN}("echo") + (1 | g)', "fixed part"),
    (f'y ~ x + ({CHAIN}("echo") | g)', "random term"),
])
def test_refusal_names_the_function_the_term_and_the_allowed_list(formula, where):
    with pytest.raises(ValueError) as e:
        parse_formula(formula)
    msg = str(e.value)
    assert f"unknown function '{CHAIN}'" in msg and where in msg and CHAIN + '("echo")' in msg
    assert "supported functions: log, exp" in msg and "np.log" in msg and "poly" in msg


def test_zi_refusal_names_zi():
    with pytest.raises(ValueError, match=r"unknown function '__import__' in term .* of zi='~ __import__"):
        bg.GLMM("k ~ x + (1 | g)", data(), "poisson", zi='~ __import__("os")')


def test_formulae_environment_reaches_no_module(tmp_path):
    """Second layer: even a term that skipped the check finds no module to walk into."""
    marker = tmp_path / "pwned"
    fx = design._for_formulae(data()[["x"]])
    with pytest.raises(ValueError, match="cannot build"):
        design._model_matrix(f'1 + {CHAIN}("touch {marker}")', True, True, fx, "fixed part", "test")
    with pytest.raises(ValueError, match="cannot build"):
        design._model_matrix('1 + log.__globals__.get("os")', True, True, fx, "fixed part", "test")
    assert not marker.exists()


@pytest.mark.parametrize("formula", [
    "y ~ log(x + 5) + exp(x) + sqrt(x + 5) + abs(x) + (1 | g)",
    "y ~ log1p(x + 2) + expm1(x) + log2(x + 5) + log10(x + 5) + (1 | g)",
    "y ~ scale(x) + center(x) + (1 | g)",
    "y ~ standardize(x) + I(x^2) + (1 | g)",
    "y ~ poly(x, 2) + (1 | g)",
    "y ~ C(b) + factor(b):x + (1 | g)",
    "y ~ np.square(x) + np.tanh(x) + np.log(x + 5) + np.cbrt(x) + (1 | g)",
    "y ~ x + (np.tanh(x) || g)",
])
def test_allowed_functions_still_work(formula):
    m = bg.GLMM(formula, data())
    assert np.all(np.isfinite(m.spec.X)) and m.spec.X.shape[0] == N
    assert set(FORMULA_FUNCTIONS) >= {"log", "C", "I", "scale", "poly"} and "tanh" in NUMPY_FUNCTIONS


# ----------------------------------------------------------------------------- pickling
NEW = pd.DataFrame({"x": [-1.0, 0.0, 2.0], "g": ["g0", "g3", "new"], "n": [6, 6, 6]})


def _same_ml(a, b):
    pd.testing.assert_series_equal(a.fixef, b.fixef)
    assert str(a) == str(b)
    np.testing.assert_array_equal(a.predict(NEW), b.predict(NEW))
    for k in a.ranef:
        pd.testing.assert_frame_equal(a.ranef[k], b.ranef[k])


@pytest.mark.parametrize("formula, kwargs", [
    ("y ~ scale(x) + (x | g)", {}),
    ("cbind(b, n - b) ~ poly(x, 2) + (1 | g)", {"family": "binomial"}),
    ("k ~ np.tanh(x) + (1 | g)", {"family": "negbinomial", "zi": "~ x"}),
])
def test_glmm_and_ml_fit_round_trip_through_pickle(formula, kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = bg.GLMM(formula, data(), **kwargs)
        r = m.fit_ml()
        m2 = pickle.loads(pickle.dumps(m))
        r2 = pickle.loads(pickle.dumps(r))
        np.testing.assert_array_equal(m2.spec.X, m.spec.X)
        nd_a, nd_b = m.spec.new_design(NEW), m2.spec.new_design(NEW)
        np.testing.assert_array_equal(nd_a.X, nd_b.X)
        _same_ml(r, r2)
        _same_ml(r, m2.fit_ml())  # the unpickled model fits to the same optimum


@pytest.mark.parametrize("sampler", ["native", "numpy"])
def test_bayes_fit_round_trips_and_rebuilds_its_pymc_model(sampler):
    from bayes_glmm.bayes.native import available

    if sampler == "native" and not available():
        pytest.skip("no C compiler")
    m = bg.GLMM("y ~ x + (1 | g)", data())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = m.sample(draws=50, tune=50, chains=1, sampler=sampler, random_seed=3, progressbar=False)
    r2 = pickle.loads(pickle.dumps(r))
    pd.testing.assert_series_equal(r.fixef, r2.fixef)
    pd.testing.assert_frame_equal(r.summary(), r2.summary())
    np.testing.assert_array_equal(r.predict(NEW, random_seed=1), r2.predict(NEW, random_seed=1))
    assert r2.__dict__["_pm_model"] is None  # not pickled: rebuilt from the GLMM when asked for
    assert type(r2.pm_model).__name__ == "Model" and r2.__dict__["_pm_model"] is r2.pm_model
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        r2.nope


def test_joblib_round_trip(tmp_path):
    joblib = pytest.importorskip("joblib")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = bg.GLMM("y ~ x + (1 | g)", data()).fit_ml()
    joblib.dump(r, tmp_path / "fit.joblib")
    _same_ml(r, joblib.load(tmp_path / "fit.joblib"))


def test_glmm_goes_to_a_spawn_process_pool():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = bg.GLMM("k ~ scale(x) + (1 | g)", data(), "poisson")
        local = m.fit_ml()
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            remote = pool.submit(m.fit_ml).result(timeout=120)
    _same_ml(local, remote)


# ----------------------------------------------------------------------------- smaller items
@pytest.mark.parametrize("col", ["b", "flag", "word"])
def test_binomial_on_binary_data_suggests_bernoulli(col):
    d = data().assign(flag=lambda f: f["b"] == 1, word=lambda f: np.where(f["b"] == 1, "yes", "no"))
    with pytest.raises(ValueError, match=f"binomial response '{col}' needs trials, and it is binary: for one "
                                         f"trial per row use family='bernoulli'"):
        bg.GLMM(f"{col} ~ x + (1 | g)", d, "binomial")
    with pytest.raises(ValueError, match="needs trials: write cbind") as e:
        bg.GLMM("k ~ x + (1 | g)", d, "binomial")  # counts: no bernoulli hint
    assert "bernoulli" not in str(e.value)


def test_lrt_on_reml_fits_refits_by_ml_and_labels_the_columns():
    d = bg.datasets.load("sleepstudy")
    f0, f1 = "Reaction ~ Days + (1 | Subject)", "Reaction ~ Days + (Days | Subject)"
    reml = [bg.GLMM(f, d).fit_ml() for f in (f0, f1)]
    ml = [bg.GLMM(f, d).fit_ml(reml=False) for f in (f0, f1)]
    with pytest.warns(UserWarning, match=r"refitting model\(s\) with ML \(instead of REML\)"):
        r = bg.lrt(*reml)
    assert list(r.table.columns[3:5]) == ["logLik", "deviance"] and r.note.startswith(REFIT_MESSAGE)
    ref = bg.lrt(*ml)
    np.testing.assert_allclose(r.table["logLik"], ref.table["logLik"], atol=1e-5)
    assert r.chisq == pytest.approx(ref.chisq, abs=1e-4) and r.reference == ref.reference
    # refit=False compares the REML likelihoods, and says so over the columns
    r_reml = bg.lrt(*reml, refit=False)
    assert list(r_reml.table.columns[3:5]) == ["REML logLik", "REML criterion"]
    np.testing.assert_allclose(r_reml.table["REML logLik"], [m.loglik for m in reml])
    np.testing.assert_allclose(r_reml.table["REML criterion"], [-2 * m.loglik for m in reml])
    # different fixed effects: refitted by ML by default, refused under refit=False
    reml_fx = bg.GLMM("Reaction ~ 1 + (1 | Subject)", d).fit_ml()
    with pytest.warns(UserWarning, match="refitting"):
        assert bg.lrt(reml_fx, reml[0]).df == 1
    with pytest.raises(ValueError, match="use refit=True"):
        bg.lrt(reml_fx, reml[0], refit=False)


def test_fixed_effect_correlation_labels_stay_unique():
    assert _abbrev_unique(["(Intercept)", "C(prd)2", "C(prd)3", "C(prd)4"]) == \
        ["(Intr)", "C(prd)2", "C(prd)3", "C(prd)4"]
    assert _abbrev_unique(["(Intercept)", "Month", "TreatmentB"]) == ["(Intr)", "Month", "Trtmnt"]
    d = bg.datasets.load("cbpp").assign(prd=lambda f: f["period"].astype(int))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = str(bg.GLMM("cbind(incidence, size - incidence) ~ C(prd) + (1 | herd)", d, "binomial").fit_ml())
    block = text.split("Correlation of Fixed Effects:")[1].strip().splitlines()
    header, rows = block[0].split(), [ln.split()[0] for ln in block[1:4]]
    assert header == ["(Intr)", "C(prd)2", "C(prd)3"] and rows == ["C(prd)2", "C(prd)3", "C(prd)4"]


@pytest.mark.parametrize("formula, match", [
    ("y ~ my col + (1 | g)", r"unknown column 'my' .*did you mean `my col`\? \(names with spaces need backticks\)"),
    ("y ~ x + log(my col) + (1 | g)", r"did you mean `my col`\? \(names with spaces need backticks\)"),
    ("my resp ~ x + (1 | g)", r"unknown column 'my' in response.*did you mean `my resp`"),
    ("y ~ x + (1 | my grp)", r"grouping factor 'my grp' .*names with spaces need backticks; write `my grp`"),
])
def test_a_name_with_spaces_without_backticks_points_to_backticks(formula, match):
    d = data().assign(**{"my col": 1.0, "my resp": 2.0, "my grp": lambda f: f["g"]})
    with pytest.raises(ValueError, match=match):
        bg.GLMM(formula, d)


@pytest.mark.parametrize("name", ["a  b", "t\tx", " lead", "a \t  b"])
def test_backticked_names_are_kept_exactly(name):
    d = data().assign(**{name: lambda f: f["x"], "grp  2": lambda f: f["g"]})
    m = bg.GLMM(f"y ~ `{name}` + log(`{name}` + 5) + (`{name}` | `grp  2`)", d)
    assert m.spec.fixed_names[1] == name and m.spec.terms[0].coef_names == ("(Intercept)", name)
    assert m.spec.terms[0].group.strip("`") == "grp  2" and m.spec.terms[0].n_levels == 6
    nd = m.spec.new_design(d.iloc[:4])
    np.testing.assert_allclose(nd.X, m.spec.X[:4])

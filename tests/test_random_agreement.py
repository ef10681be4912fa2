"""Randomized agreement with lme4 and glmmTMB (tests/reference/random_agreement.json).

300 seeded problems (tests/reference/random_problems.py) over family x structure:
gaussian ML and REML, bernoulli, binomial ``cbind(s, size - s)``, poisson with and without
``offset(log(t))``; ``(1 | g)``, ``(x | g)``, ``(x || g)``, ``(1 | g) + (1 | h)``,
``(1 | g/h)``; 5 to 300 groups, random-effect SDs down to 0.  Every problem was fitted by
lme4 (lmer / glmer Laplace) and glmmTMB by tests/reference/make_random_agreement.R; the
JSON carries the data column-wise, so these tests never need R.

Criterion: our logLik (``fit_ml(n_agq=1, reml=...)``) is never below the better of the two
references by more than 1e-3 (glmmTMB's ``logLik()`` is NA at a non-positive-definite
Hessian; its ``-fit$objective``, recorded as ``objective_loglik``, is used there).  Where
ours is higher than a reference by more than 1e-3, the reference that agrees with ours
(within 1e-3), if any, is printed and recorded (``record_property``; module list
``HIGHER``) -- that is not a failure.

The default run fits a fixed subset (replicate 0 of every cell, the 300-level scalar
problems and replicate 1 of the correlated-slope cells); the rest is marked ``slow``
(``python -m pytest -m slow tests/test_random_agreement.py``).  Problems that fail the
criterion today are marked ``xfail(strict=False)`` with the failure pattern (see KNOWN).
"""
from __future__ import annotations

import functools
import importlib.util
import json
import math
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest

HERE = pathlib.Path(__file__).parent
REF_PATH = HERE / "reference" / "random_agreement.json"
REF = json.loads(REF_PATH.read_text())
FITS = REF["fits"]
LL_ATOL = 1e-3

#: problems failing the criterion at the time the JSON was made: key -> failure pattern
KNOWN: dict = {
    # problem name -> failure pattern, for problems that fail the criterion today (none: the
    # two "rank-1 boundary missed" cases, binomial-correlated-6 and poisson_offset-correlated-9,
    # are fixed by optimize.rank_one_faces)
}


#: notes collected where our logLik is higher than a reference (not failures)
HIGHER: list = []


def _rep(key: str) -> int:
    return int(key.rsplit("-", 1)[1])


def _fast(key: str) -> bool:
    r = FITS[key]
    rep = _rep(key)
    return (rep == 0 or (rep == REF["replicates"] - 1 and r["structure"] == "scalar")
            or (rep == 1 and r["structure"] == "correlated"))


def _params():
    out = []
    for key in FITS:
        marks = [] if _fast(key) else [pytest.mark.slow]
        if key in KNOWN:
            marks.append(pytest.mark.xfail(strict=False, reason=KNOWN[key]))
        out.append(pytest.param(key, marks=marks, id=key))
    return out


def dataset(key: str) -> pd.DataFrame:
    cols = REF["data"][key]
    df = pd.DataFrame({k: (v if isinstance(v, list) else [v]) for k, v in cols.items()})
    assert len(df) == FITS[key]["n_obs"]
    return df


@functools.lru_cache(maxsize=None)
def fitted(key: str):
    import bayes_glmm as bg
    r = FITS[key]
    model = bg.GLMM(r["formula"], dataset(key), family=r["family"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if r["family"] == "gaussian":
            return model.fit_ml(reml=bool(r["reml"]))
        return model.fit_ml(n_agq=1)


def _ref_ll(r: dict) -> dict:
    out = {}
    for name in ("lme4", "glmmTMB"):
        f = r[name]
        ll = f.get("loglik") if f.get("ok") else None
        if ll is None and f.get("ok"):
            ll = f.get("objective_loglik")  # glmmTMB: logLik() is NA at a non-PD Hessian
        if ll is not None and math.isfinite(ll):
            out[name] = float(ll)
    return out


@pytest.mark.parametrize("key", _params())
def test_loglik_not_below_references(key, record_property):
    r = FITS[key]
    refs = _ref_ll(r)
    if not refs:
        pytest.skip("neither lme4 nor glmmTMB fitted this problem")
    ours = fitted(key).loglik
    best_name = max(refs, key=refs.get)
    best = refs[best_name]
    record_property("ours", ours)
    record_property("refs", refs)
    gap = best - ours
    assert gap <= LL_ATOL, (
        f"{key}: logLik {ours:.6f} is {gap:.2e} below {best_name}'s {best:.6f} "
        f"(lme4 {refs.get('lme4')}, glmmTMB {refs.get('glmmTMB')}); formula {r['formula']!r}, "
        f"n = {r['n_obs']}, groups = {r['n_groups']}, true SDs {r['truth']['sd']}")
    # where ours is higher than a reference, record which reference (if any) agrees with us
    for name, v in refs.items():
        if ours > v + LL_ATOL:
            agree = [n for n, w in refs.items() if abs(w - ours) <= LL_ATOL] or ["none"]
            note = (f"{key}: ours {ours:.6f} > {name} {v:.6f} by {ours - v:.2e}; "
                    f"agrees with ours: {', '.join(agree)}")
            record_property(f"higher_than_{name}", note)
            HIGHER.append(note)
            print(note)


def test_json_records_versions_and_problem_grid():
    assert REF["n_problems"] == len(FITS) >= 200
    for k in ("r_version", "lme4_version", "glmmTMB_version"):
        assert REF[k]
    fams = {r["cell_family"] for r in FITS.values()}
    structs = {r["structure"] for r in FITS.values()}
    assert fams == {"gaussian_ml", "gaussian_reml", "bernoulli", "binomial", "poisson", "poisson_offset"}
    assert structs == {"scalar", "correlated", "uncorrelated", "crossed", "nested"}
    groups = [r["n_groups"] for r in FITS.values()]
    assert min(groups) <= 5 and max(groups) >= 300
    assert any(0.0 in np.atleast_1d(r["truth"]["sd"]) for r in FITS.values())
    assert sum(_fast(k) for k in FITS) <= 45


def test_reml_loglik_same_scale_in_both_references():
    """lme4's REML logLik (-REMLcrit/2) and glmmTMB's (REML = TRUE) are one function."""
    diffs = [abs(r["lme4"]["loglik"] - r["glmmTMB"]["objective_loglik"]) for r in FITS.values()
             if r["reml"] and r["lme4"].get("ok") and r["glmmTMB"].get("ok")]
    assert len(diffs) >= 30
    assert np.median(diffs) < 1e-4


def test_generator_reproduces_the_json_data():
    spec = importlib.util.spec_from_file_location("random_problems", HERE / "reference" / "random_problems.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    probs = mod.generate(REF["seed"], REF["replicates"])
    assert [p["key"] for p in probs] == list(FITS)
    for p in probs:
        r = FITS[p["key"]]
        assert p["formula"] == r["formula"] and p["family"] == r["family"] and p["reml"] == r["reml"]
        d = dataset(p["key"])
        for col, vals in p["data"].items():
            a = d[col].to_numpy()
            if a.dtype.kind in "if":
                np.testing.assert_array_equal(a.astype(float), np.asarray(vals, dtype=float))
            else:
                assert list(a) == vals

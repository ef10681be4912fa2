"""The contract of every registered prior kind (bayes_glmm.priors.kinds.KINDS).

For each kind, every spelling of its parameters, random valid parameters and points drawn
from the distribution itself: the one log-density written against ``ops`` evaluated on
NumPy == SciPy's logpdf of ``kind.scipy(args)`` == PyMC's ``pm.logp(pm.<Name>.dist(**args), x)``
== its value on the dual numbers the NumPy sampler uses, and the dual derivative == finite
differences; the C generated from it (when a compiler exists) gives the same value and
derivative.  A new kind is one record and one registry line: it is picked up here.
"""
import ctypes
import os
import subprocess
import tempfile

import numpy as np
import pytest

import bayes_glmm as bg
from bayes_glmm.ops.dual import ND_OPS, deriv, seed, value
from bayes_glmm.ops.numpy_ops import NUMPY_OPS
from bayes_glmm.priors import DISTRIBUTIONS, KINDS, Prior, get_kind
from bayes_glmm.priors.kinds import N_CANONICAL, SUPPORTS

SEEDS = (0, 1, 2)


def _spellings(kind):
    """Argument sets to test: each required set (plus the optional parameters that go with
    the canonical one), or all parameters and none for kinds whose parameters all have defaults."""
    optional = [p.name for p in kind.params if not any(p.name in st for st in kind.required)]
    if not kind.required:
        return [tuple(kind.param_names), ()]
    out = []
    for st in kind.required:
        canonical_set = all(n in kind.canonical for n in st)
        out.append(tuple(st) + (tuple(optional) if canonical_set else ()))
    return out


CASES = [(name, sp) for name, k in KINDS.items() for sp in _spellings(k)]


def _args(kind, names, rng):
    args = {}
    for n in names:
        p = kind.param(n)
        args[n] = float(rng.uniform(0.5, 3.0)) if p.positive else float(rng.normal(0.0, 1.0))
    return args


def _points(kind, args, rng, size=7):
    if kind.proper:
        x = np.asarray(kind.scipy(args).rvs(size=size, random_state=rng), dtype=float)
    elif kind.support == "positive":
        x = np.exp(rng.normal(size=size))
    else:
        x = rng.normal(scale=3.0, size=size)
    if kind.support == "corr":
        x = np.clip(x, -0.99, 0.99)
    if kind.support == "positive":
        x = np.maximum(x, 1e-3)  # finite differences stay inside the support
    return x


def _pymc_logp(kind, args, x):
    """PyMC's log-density of the same distribution at each point."""
    pm = pytest.importorskip("pymc")
    if kind.support == "corr":  # one correlation parameter: a 2 x 2 LKJ correlation matrix
        d = pm.LKJCorr.dist(n=2, eta=args.get("eta", 1.0))
        return np.array([float(pm.logp(d, np.array([v])).eval()) for v in x])
    if not kind.pymc:  # LogitBeta: PyMC's Beta of p = expit(x / sigma), times |dp/dx| (the Jacobian)
        from scipy.special import expit, log_expit
        canon = dict(zip(kind.canonical, kind.canonical_args(args)))
        z = x / canon["sigma"]
        d = pm.Beta.dist(alpha=canon["alpha"], beta=canon["beta"])
        return (np.asarray(pm.logp(d, expit(z)).eval(), dtype=float) + log_expit(z) + log_expit(-z)
                - np.log(canon["sigma"]))
    d = getattr(pm, kind.name).dist(**args)
    return np.asarray(pm.logp(d, x).eval(), dtype=float)


def _dual(kind, args, x):
    r = kind.logdens(seed(x, 0, 1), *kind.canonical_args(args), ND_OPS)
    return np.broadcast_to(value(r), x.shape), np.broadcast_to(deriv(r, 0, x), x.shape)


@pytest.mark.parametrize("name,spelling", CASES, ids=[f"{n}-{'-'.join(s) or 'defaults'}" for n, s in CASES])
@pytest.mark.parametrize("seed_", SEEDS)
def test_kind_logdensity_agrees_everywhere(name, spelling, seed_):
    kind = get_kind(name)
    rng = np.random.default_rng(seed_)
    args = _args(kind, spelling, rng)
    Prior(name, **args)  # a valid spelling
    x = _points(kind, args, rng)
    lp = np.broadcast_to(kind.logp(x, args), x.shape)
    assert np.all(np.isfinite(lp))
    np.testing.assert_allclose(np.asarray(kind.logdens(x, *kind.canonical_args(args), NUMPY_OPS)) + 0 * x, lp)
    # SciPy
    if kind.proper:
        np.testing.assert_allclose(lp, kind.scipy(args).logpdf(x), rtol=1e-10, atol=1e-10)
    else:
        np.testing.assert_allclose(lp, 0.0)
        with pytest.raises(ValueError, match="improper"):
            kind.scipy(args)
    # PyMC
    ref = _pymc_logp(kind, args, x)
    if kind.support == "corr":
        # PyMC's LKJCorr(n=2) logp has a normalizing constant of the wrong sign (its density
        # integrates to 4 at eta = 1; Stan fixed the same sign in stan-dev/math#628), so it
        # agrees up to a constant only; the samplers use bayes_glmm.covariance.lkj's
        # normalized form, held to this kind exactly below
        np.testing.assert_allclose(lp - ref, (lp - ref)[0], rtol=0, atol=1e-9)
    else:
        np.testing.assert_allclose(lp, ref, rtol=1e-8, atol=1e-8)  # PyMC's own constants: ~1e-9 apart
    # the dual numbers: value and derivative
    v, g = _dual(kind, args, x)
    np.testing.assert_allclose(v, lp, rtol=1e-12, atol=1e-12)
    h = 1e-6 * np.maximum(1.0, np.abs(x))
    fd = (np.asarray(kind.logp(x + h, args)) - np.asarray(kind.logp(x - h, args))) / (2 * h)
    np.testing.assert_allclose(g, fd + 0 * x, rtol=1e-6, atol=1e-6)


def test_lkj_kind_is_the_samplers_correlation_prior():
    """One correlation parameter's prior as the samplers evaluate it on y = atanh(r)
    (covariance.lkj: const - 2 a log cosh y with a = eta) is the LKJ kind's density of r times
    the Jacobian dr/dy = 1 - r^2."""
    from bayes_glmm.covariance.lkj import beta_shapes, log_cosh

    kind = get_kind("LKJ")
    rng = np.random.default_rng(3)
    for eta in (0.6, 1.0, 2.0, 7.5):
        y = rng.normal(scale=1.5, size=9)
        a, const = beta_shapes(np.full(y.size, eta), per_cpc=True)
        lp_y = const - 2.0 * a * log_cosh(y)
        r = np.tanh(y)
        np.testing.assert_allclose(lp_y, kind.logp(r, {"eta": eta}) + np.log1p(-r * r), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", [n for n, k in KINDS.items() if k.proper])
def test_proper_kinds_integrate_to_one(name):
    from scipy import integrate

    kind = get_kind(name)
    rng = np.random.default_rng(5)
    args = _args(kind, _spellings(kind)[0], rng)
    lo, hi = {"real": (-np.inf, np.inf), "positive": (0.0, np.inf), "corr": (-1.0, 1.0)}[kind.support]
    val, _ = integrate.quad(lambda t: float(np.exp(kind.logp(np.array(t), args))), lo, hi, limit=200)
    assert val == pytest.approx(1.0, abs=1e-6)


def test_registry_is_the_one_table():
    """Every table that used to list the kinds is now a view of the registry."""
    from bayes_glmm.bayes.codegen import PRIOR_LOGDENS, prior_params
    from bayes_glmm.bayes.density import PRIOR_LOGP

    scalar = {n for n, k in KINDS.items() if k.support != "corr"}
    assert set(PRIOR_LOGDENS) == set(PRIOR_LOGP) == scalar
    assert all(PRIOR_LOGDENS[n] is KINDS[n].logdens for n in scalar)
    assert DISTRIBUTIONS == {n: (k.support, k.param_names) for n, k in KINDS.items()}
    for name, k in KINDS.items():
        assert k.support in SUPPORTS and len(k.canonical) <= N_CANONICAL
        assert get_kind(name) is k
    a = prior_params("Gamma", {"mu": 2.0, "sigma": 0.5})
    np.testing.assert_allclose([float(a[0]), float(a[1])], [16.0, 8.0])
    with pytest.raises(ValueError, match="unknown prior distribution 'Normall'; choose one of"):
        get_kind("Normall")


def test_location_scale_kinds_are_the_real_ones():
    """scaled_prior carries a coefficient's prior to a rescaled coordinate through loc_scale:
    every real-support kind must be location-scale (density of d * beta is p(beta) / d)."""
    from bayes_glmm.bayes.density import scaled_prior

    rng = np.random.default_rng(7)
    for name, k in KINDS.items():
        if k.support != "real":
            assert k.loc_scale is None
            continue
        assert k.loc_scale is not None
        args = _args(k, _spellings(k)[0], rng)
        sp = scaled_prior(Prior(name, **args), 10.0)
        x = rng.normal(size=5)
        np.testing.assert_allclose(np.broadcast_to(k.logp(10.0 * x, sp.args), x.shape),
                                   np.broadcast_to(k.logp(x, args), x.shape) - np.log(10.0) * k.proper, atol=1e-10)


def test_positivity_error_names_the_parameter_and_the_fix():
    with pytest.raises(ValueError, match=r"Prior\('HalfNormal'\) parameter sigma=-1 must be positive \(sigma is a "
                                         r"scale\); e\.g\. Prior\('HalfNormal', sigma=1\.0\)"):
        bg.Prior("HalfNormal", sigma=-1)
    with pytest.raises(ValueError, match=r"e\.g\. Prior\('Normal', mu=0, sigma=1\.0\)"):
        bg.Prior("Normal", mu=0, sigma=0)
    with pytest.raises(ValueError, match=r"e\.g\. Prior\('Gamma', mu=2\.0, sigma=0\.5\)"):
        bg.Prior("Gamma", mu=2.0, sigma=-0.5)
    with pytest.raises(ValueError, match="two parametrizations"):
        bg.Prior("InverseGamma", alpha=1.0, mu=1.0, sigma=1.0)


def test_generated_c_evaluates_each_kind():
    """The C of each scalar kind, generated from its one log-density, compiled on its own:
    value and derivative equal the NumPy ones; the source passes check_c_source."""
    from bayes_glmm.bayes import native
    from bayes_glmm.bayes.codegen import C_HELPERS, check_c_source, prior_program

    names = [n for n, k in KINDS.items() if k.support != "corr"]
    fns = []
    for j, name in enumerate(names):
        code, val, der = prior_program(name, "x[i]", ["A0[i]", "A1[i]", "A2[i]"], False, f"f{j}_")
        fns.append(f"void t{j}(const double *x, const double *A0, const double *A1, const double *A2, "
                   f"double *OUT, double *g, int64_t n) {{\n  for (int64_t i = 0; i < n; i++) {{\n{code}\n"
                   f"    OUT[i] = {val}; g[i] = {der};\n  }}\n}}\n")
    src = "#include <math.h>\n#include <stdint.h>\n" + C_HELPERS + "\n".join(fns)
    check_c_source(src)
    if not native.available():
        pytest.skip("no C compiler")
    tmp = tempfile.mkdtemp()
    with open(os.path.join(tmp, "k.c"), "w") as f:
        f.write(src)
    lib = os.path.join(tmp, "k.so")
    subprocess.run([native.compiler(), "-O1", "-std=c99", "-fPIC", "-shared", os.path.join(tmp, "k.c"), "-o", lib,
                    "-lm"], check=True)
    so = ctypes.CDLL(lib)
    rng = np.random.default_rng(11)
    ptr = lambda a: ctypes.c_void_p(a.ctypes.data)  # noqa: E731
    for j, name in enumerate(names):
        kind = get_kind(name)
        args = _args(kind, _spellings(kind)[0], rng)
        x = np.ascontiguousarray(_points(kind, args, rng))
        A = [np.ascontiguousarray(np.broadcast_to(a, x.shape), dtype=float) for a in kind.canonical_args(args)]
        out, g = np.empty_like(x), np.empty_like(x)
        getattr(so, f"t{j}")(ptr(x), ptr(A[0]), ptr(A[1]), ptr(A[2]), ptr(out), ptr(g), ctypes.c_int64(x.size))
        v, d = _dual(kind, args, x)
        np.testing.assert_allclose(out, v, rtol=1e-12, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(g, d, rtol=1e-10, atol=1e-12, err_msg=name)


def test_docs_table_is_the_registry():
    """docs/priors.md shows the table generated from KINDS (regenerate it with
    ``bayes_glmm.priors.kinds.markdown_table()`` after adding a kind)."""
    from pathlib import Path

    from bayes_glmm.priors.kinds import markdown_table

    page = (Path(__file__).resolve().parents[1] / "docs" / "priors.md").read_text()
    assert markdown_table() in page

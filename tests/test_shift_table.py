"""The per-gradient table of ``lgamma(a + k) - lgamma(a)`` and its derivative for a row-invariant
``a`` and integer counts (``bayes.codegen`` ``bg_shift_table``, chosen by ``bayes.native`` from the
data): accurate against a 40-digit reference, chosen only where it pays, and equal to the
per-row code it replaces."""
from __future__ import annotations

import ctypes
import decimal
import os
import subprocess
import tempfile

import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm.bayes import build, native
from bayes_glmm.bayes.density import GlmmDensity

pytestmark = pytest.mark.skipif(not native.available(), reason="no C compiler")


def _table_lib():
    """bg_shift_table compiled with the model's flags (-ffast-math included: what the model runs),
    linked without them (no crtfastmath)."""
    from bayes_glmm.bayes.codegen import C_HELPERS

    src = ("#include <math.h>\n#include <stdint.h>\n" + C_HELPERS
           + "\nvoid v_tab(double a, int64_t K, double *T, double *D) { bg_shift_table(a, K, T, D); }\n")
    tmp = tempfile.mkdtemp()
    c, o, so = (os.path.join(tmp, f) for f in ("t.c", "t.o", "t.so"))
    with open(c, "w") as f:
        f.write(src)
    cc = build.compiler()
    subprocess.run([cc, *build.CFLAGS_MODEL, "-c", c, "-o", o], check=True)
    subprocess.run([cc, *build.LDFLAGS, o, "-o", so, "-lm"], check=True)
    return ctypes.CDLL(so)


@pytest.fixture(scope="module")
def table_lib():
    return _table_lib()


def _table(lib, a: float, K: int):
    T, D = np.empty(K), np.empty(K)
    lib.v_tab(ctypes.c_double(a), ctypes.c_int64(K), ctypes.c_void_p(T.ctypes.data), ctypes.c_void_p(D.ctypes.data))
    return T, D


def _reference(a: float, ks):
    """sum_{j<k} ln(a + j) and sum_{j<k} 1/(a + j) at the counts ``ks``, in 40-digit decimals."""
    ctx = decimal.Context(prec=40)
    A = decimal.Decimal(a)
    t = d = decimal.Decimal(0)
    want, out_t, out_d = set(ks), {}, {}
    for j in range(max(ks)):
        x = A + j
        t, d = ctx.add(t, x.ln(ctx)), ctx.add(d, ctx.divide(1, x))
        if j + 1 in want:
            out_t[j + 1], out_d[j + 1] = float(t), float(d)
    return np.array([out_t[k] for k in ks]), np.array([out_d[k] for k in ks])


@pytest.mark.parametrize("a, K", [(1e-300, 600), (1e-8, 4097), (1e-3, 600), (1.0, 4097), (2.5, 600),
                                  (1e3, 600), (1e6, 4097), (1e12, 600), (1e15, 600)])
def test_table_sums_within_1e13_of_decimal_reference(table_lib, a, K):
    """Relative error of the running sums below 1e-13 up to the cap (4096), theta from 1e-300 to 1e15,
    where the difference of two lgamma loses 1e-9 at 1e6 and all digits at 1e15."""
    T, D = _table(table_lib, a, K)
    assert T[0] == 0.0 and D[0] == 0.0
    ks = sorted({1, 2, 3, 10, 24, 25, 100, K - 1} & set(range(1, K)))
    rt, rd = _reference(a, ks)
    # T[1] = log(1) = 0 at a = 1: relative to the size of the terms summed
    scale = np.maximum(np.abs(rt), np.array(ks) * max(1.0, abs(np.log(a))) * 1e-2)
    assert np.max(np.abs(T[ks] - rt) / scale) < 1e-13
    assert np.max(np.abs(D[ks] - rd) / np.abs(rd)) < 1e-13


def test_table_length_decided_by_the_data():
    tl = native._table_length
    assert tl(np.array([0.0, 3.0, 7.0]), 400) == 8
    assert tl(np.array([0.0, 4096.0]), 10_000) == 4097
    assert tl(np.array([0.0, 4097.0]), 10_000) == 0          # beyond the cap: per-row code
    assert tl(np.array([0.0, 300.0]), 100) == 0              # longer than 2 n + 64: would not pay
    assert tl(np.array([0.0, 2.5]), 400) == 0                # not integers
    assert tl(np.array([-1.0, 2.0]), 400) == 0
    assert tl(np.array([1.0, np.nan]), 400) == 0
    assert tl(None, 400) == 0


def _nb_data(seed, big=False):
    rng = np.random.default_rng(seed)
    n = 160
    g = rng.integers(0, 12, n)
    x = rng.normal(size=n)
    mu = np.exp(1.0 + 0.4 * x + rng.normal(scale=0.5, size=12)[g])
    y = rng.poisson(rng.gamma(2.0, mu / 2.0)).astype(float)
    if big:
        y[0] = 5000.0
    return pd.DataFrame({"y": y, "x": x, "g": g.astype(str), "n": y + rng.integers(0, 30, n)})


def _native(m, monkeypatch=None, table=True):
    if not table:
        monkeypatch.setattr(native, "_TABLE_MAX", -1)
    d = GlmmDensity(m.spec, m.resolved_priors, m.centered_terms)
    nm = native.NativeModel(d)
    if not table:
        monkeypatch.undo()
    return d, nm


@pytest.mark.parametrize("family", ["negbinomial", "betabinomial"])
def test_table_equals_per_row_code(family, monkeypatch):
    """The same model with and without the table: log-density, gradient and pointwise
    log-likelihood agree to 1e-12 relative, theta (phi) from 1e-8 to 8000.  (Beyond, the per-row
    code's two digamma for counts over 24 lose 1e-9 at theta = 1e6 -- the table's sums are the
    accurate ones there, test_table_sums_within_1e13_of_decimal_reference.)"""
    df = _nb_data(1)
    if family == "negbinomial":
        m = bg.GLMM("y ~ x + (1 | g)", df, family="negbinomial")
    else:
        m = bg.GLMM("y ~ x + (1 | g)", df, family="betabinomial", trials="n")
    d, with_tab = _native(m)
    _, without = _native(m, monkeypatch, table=False)
    assert with_tab.source.count("bg_shift_table(ax0") == 2  # gradient and pointwise log-likelihood
    assert without.source.count("bg_shift_table(ax0") == 0
    at = d.aux[0].sl.start  # log theta (log phi)
    rng = np.random.default_rng(3)
    for log_theta in (-18.4, -3.0, 0.7, 5.0, 9.0):
        x = d.initial_point(0) + rng.normal(scale=0.3, size=d.ndim)
        x[at] = log_theta
        v1, g1 = with_tab.logp_grad(x)
        v0, g0 = without.logp_grad(x)
        assert abs(v1 - v0) <= 1e-12 * max(1.0, abs(v0))
        np.testing.assert_allclose(g1, g0, rtol=1e-10, atol=1e-12 * max(1.0, float(np.max(np.abs(g0)))))
    eta = rng.normal(size=(3, d.spec.n))
    aux = np.exp(np.array([[-18.4], [0.7], [9.0]]))
    # atol: the per-row code's lgamma(phi + n) - lgamma(phi) of counts over 24 at phi = 8000 is
    # exact to eps * lgamma(8000) ~ 1e-11
    np.testing.assert_allclose(with_tab.rows_loglik(eta, aux=aux), without.rows_loglik(eta, aux=aux),
                               rtol=1e-12, atol=1e-10)


def test_counts_beyond_the_cap_keep_the_per_row_code():
    m = bg.GLMM("y ~ x + (1 | g)", _nb_data(2, big=True), family="negbinomial")
    d = GlmmDensity(m.spec, m.resolved_priors, m.centered_terms)
    src, *_ = native.generate(d)
    assert "bg_shift_table(ax0" not in src and "bg_rise_log(ax0" in src

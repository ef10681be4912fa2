"""Correlation matrices from unconstrained parameters, and their LKJ-type priors (pure).

Every covariance structure with correlations samples them on the real line as Stan does:
an unconstrained ``y`` per correlation parameter, ``z = tanh(y)`` in (-1, 1) and
``s = sech(y) = sqrt(1 - z^2)``, both handed to the structure's
:meth:`~bayes_glmm.covariance.base.CovStructure.corr_rows`.  The default prior of each
parameter is ``(z + 1) / 2 ~ Beta(a, a)``, whose density on ``y`` (with the Jacobians) is
``const - 2 a log cosh(y)``: LKJ(eta) for the unstructured term through its canonical
partial correlations (CPCs; Lewandowski, Kurowicka & Joe 2009), ``a = eta`` per parameter
for the structured ones.

The unstructured term's CPC construction, ``w[i, 0] = 1``,
``L[i, m] = z[i, m] w[i, m]``, ``w[i, m+1] = w[i, m] s[i, m]``, ``L[i, i] = w[i, i]``,
fills the strict lower triangle of L row by row (y ordered (1,0), (2,0), (2,1), (3,0), ...)
so that every row has unit norm; the LKJ density then factorizes over the CPCs with
``a_m = eta + (q - 2 - m) / 2``.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln

__all__ = ["beta_shapes", "lkj_shape", "cpc_rows", "log_cosh", "tanh_sech", "cholesky_rows"]

_LOG2 = math.log(2.0)


def beta_shapes(a, *, per_cpc: bool = False):
    """(a, const) for parameters with ``(z + 1) / 2 ~ Beta(a, a)``: const is the log
    normalizer of the density of y, ``-[(2a - 1) log 2 + log B(a, a)]`` (per parameter, or summed)."""
    a = np.asarray(a, dtype=float).reshape(-1)
    const = -((2 * a - 1) * _LOG2 + 2 * gammaln(a) - gammaln(2 * a))
    return a, (const if per_cpc else float(np.sum(const)))


def lkj_shape(q: int, eta: float, *, per_cpc: bool = False):
    """(a, const): Beta shape per CPC of an LKJ(eta) q x q correlation matrix (order of y)
    and the log normalizing constant (summed, or per CPC with ``per_cpc``)."""
    a = np.array([eta + (q - 2 - m) / 2.0 for i in range(1, q) for m in range(i)])
    return beta_shapes(a, per_cpc=per_cpc)


def log_cosh(y, ops=np):
    """log cosh(y), stable for large |y|; ``ops`` is any math namespace."""
    ay = abs(y)
    return ay + ops.log1p(ops.exp(-2.0 * ay)) - _LOG2


def tanh_sech(y, ops):
    """``(tanh(y), sech(y))`` with sech from ``exp(-|y|)`` (no overflow, and exact where
    ``1 - tanh(y)^2`` would round to 0)."""
    e = ops.exp(-2.0 * abs(y))
    return ops.tanh(y), 2.0 * ops.exp(-abs(y)) / (1.0 + e)


def cpc_rows(z, s, q: int):
    """Rows of the unit-row Cholesky factor L from CPCs (see the module docstring).

    ``z[k]``, ``s[k]`` indexable (arrays, PyTensor vectors, dual numbers); returns the rows of
    L and of w as nested lists (zeros above the diagonal), for any array library.
    """
    L, W = [], []
    k = 0
    for i in range(q):
        w = [1.0]
        row = []
        for m in range(i):
            row.append(z[k] * w[m])
            w.append(w[m] * s[k])
            k += 1
        row.append(w[i])
        L.append(row + [0.0] * (q - i - 1))
        W.append(w + [0.0] * (q - i - 1))
    return L, W


def cholesky_rows(R, ops):
    """Lower Cholesky factor of a symmetric positive definite matrix given as nested lists,
    written with + - * / and ``ops.sqrt`` only, so that it runs on every math namespace
    (and its derivatives come from the dual numbers).  For the small q of a random term."""
    q = len(R)
    L = [[0.0] * q for _ in range(q)]
    for j in range(q):
        d = R[j][j]
        for k in range(j):
            d = d - L[j][k] * L[j][k]
        L[j][j] = ops.sqrt(d)
        for i in range(j + 1, q):
            v = R[i][j]
            for k in range(j):
                v = v - L[i][k] * L[j][k]
            L[i][j] = v / L[j][j]
    return L

"""LKJ correlation matrices through canonical partial correlations (CPCs), in NumPy.

A correlated random term with q coefficients has a q x q correlation matrix
``Omega = L @ L.T`` with LKJ(eta) prior.  :mod:`bayes_glmm.nuts_numpy` and
:mod:`bayes_glmm.nuts_kernels` sample it on the unconstrained scale as Stan does: the
q(q-1)/2 CPCs ``z = tanh(y)`` fill the strict lower triangle of L row by row (onion /
CPC construction, Lewandowski, Kurowicka & Joe 2009)::

    w[i, 0] = 1,   L[i, m] = z[i, m] w[i, m],   w[i, m+1] = w[i, m] sqrt(1 - z[i, m]^2),
    L[i, i] = w[i, i]

so every row of L has unit norm.  The LKJ log-density of L (w.r.t. its strict lower
triangle), ``sum_i (q - i + 2 eta - 2) log L_ii`` (i 1-based), the log-Jacobian of
z -> L (``sum log w[i, m]``) and of y -> z (``log(1 - z^2)``) are all sums of
``log(1 - z[i, m]^2)`` terms; collected, the density of y factorizes::

    log p(y) = sum_{i > m} -2 a_m log cosh(y[i, m]) + const,   a_m = eta + (q - 2 - m) / 2

i.e. ``(z[i, m] + 1) / 2 ~ Beta(a_m, a_m)`` independently (LKJ's known CPC law).  The
constant is the exact normalizer (so the density integrates to one on y; the test
suite checks this and the implied correlation marginals).  ``y`` is ordered row-major
over the strict lower triangle: (1,0), (2,0), (2,1), (3,0), ...

The module has no numba; :mod:`bayes_glmm.nuts_kernels_cov` re-expresses the same
formulas in compiled code.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln

__all__ = ["lkj_shape", "cpc_chol", "cpc_chol_vjp"]

_LOG2 = math.log(2.0)


def lkj_shape(q: int, eta: float):
    """(a, const): Beta shape per CPC (order of y) and the log normalizing constant.

    Parameters
    ----------
    q : int
        Size of the correlation matrix.
    eta : float
        LKJ shape (> 0).

    Returns
    -------
    a : ndarray (q(q-1)/2,)
    const : float
        ``-sum log int (1 - z^2)^(a-1) dz`` = ``-sum [(2a-1) log 2 + log B(a, a)]``.
    """
    a = np.array([eta + (q - 2 - m) / 2.0 for i in range(1, q) for m in range(i)])
    const = -float(np.sum((2 * a - 1) * _LOG2 + 2 * gammaln(a) - gammaln(2 * a)))
    return a, const


def _log_cosh(y):
    ay = np.abs(y)
    return ay + np.log1p(np.exp(-2.0 * ay)) - _LOG2


def cpc_chol(y, q: int, a, const: float):
    """Cholesky factor of the correlation matrix and log p(y) (LKJ + Jacobians).

    Parameters
    ----------
    y : ndarray (q(q-1)/2,)
        Unconstrained CPCs.
    q : int
    a, const
        From :func:`lkj_shape`.

    Returns
    -------
    L : ndarray (q, q)
    lp : float
    aux : tuple
        ``(w, z, s)`` for :func:`cpc_chol_vjp` (s = sech(y) = sqrt(1 - z^2), computed as
        1 / cosh(y) so that saturated z = +-1 keeps a finite gradient).
    """
    y = np.asarray(y, dtype=float)
    with np.errstate(over="ignore"):  # cosh -> inf past |y| ~ 710: s = 0, z = +-1, as intended
        z, s = np.tanh(y), 1.0 / np.cosh(y)
    L, w = np.zeros((q, q)), np.zeros((q, q))
    k = 0
    for i in range(q):
        w[i, 0] = 1.0
        for m in range(i):
            L[i, m] = z[k] * w[i, m]
            w[i, m + 1] = w[i, m] * s[k]
            k += 1
        L[i, i] = w[i, i]
    return L, const - 2.0 * float(np.sum(a * _log_cosh(y))), (w, z, s)


def cpc_chol_vjp(G, a, aux):
    """d/dy of ``sum(G * L) + log p(y)`` (only the lower triangle of G is used).

    Parameters
    ----------
    G : ndarray (q, q)
        Adjoint of L.
    a : ndarray
        From :func:`lkj_shape`.
    aux : tuple
        From :func:`cpc_chol`.
    """
    w, z, s = aux
    q = G.shape[0]
    dy = -2.0 * a * z  # d/dy of -2 a log cosh y
    k0 = 0
    for i in range(1, q):
        bw = G[i, i]  # adjoint of w[i, m + 1], walking m downwards
        for m in range(i - 1, -1, -1):
            k = k0 + m
            # L[i, m] = z w[i, m], w[i, m+1] = w[i, m] s; dz/dy = s^2, ds/dy = -z s
            dy[k] += G[i, m] * w[i, m] * s[k] * s[k] - bw * w[i, m] * z[k] * s[k]
            bw = G[i, m] * z[k] + bw * s[k]
        k0 += i
    return dy

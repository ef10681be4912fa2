"""LKJ correlation matrices through canonical partial correlations (CPCs), in NumPy.

A correlated random term with q coefficients has a q x q correlation matrix
``Omega = L @ L.T`` with LKJ(eta) prior.  :mod:`bayes_glmm.bayes.graph`, :mod:`bayes_glmm.bayes.density` and
:mod:`bayes_glmm.bayes.native` sample it on the unconstrained scale as Stan does: the
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

Every other covariance structure (:mod:`bayes_glmm.covariance`: ``cs``, ``ar1``, ``toep``)
is sampled the same way: its :meth:`~bayes_glmm.covariance.base.CovStructure.n_corr`
unconstrained parameters ``y`` (the free ``cpc_<ident>`` block whatever the structure),
``(tanh(y) + 1) / 2 ~ Beta(a, a)`` with ``(a, const)`` from its
:meth:`~bayes_glmm.covariance.base.CovStructure.corr_prior_shapes`, and L from its
:meth:`~bayes_glmm.covariance.base.CovStructure.corr_rows` -- here (:func:`cpc_chol`, the
``cov`` argument), on the PyMC graph and in the generated C alike.

The module has no numba or PyMC; :func:`cpc_rows` builds L for NumPy and PyTensor alike,
and :func:`bayes_glmm.bayes.codegen.cpc_program` generates the compiled code (value and
derivatives) from the same two functions (held equal by ``tests/test_bayes_contract.py``).
"""
from __future__ import annotations

import numpy as np

from ..covariance.lkj import cpc_rows, lkj_shape, log_cosh
from ..covariance.unstructured import UNSTRUCTURED

__all__ = ["lkj_shape", "cpc_rows", "cpc_logp", "cpc_random", "log_cosh", "cpc_chol", "cpc_chol_vjp"]



def cpc_random(a, rng, size=None):
    """Draws of the CPCs y from their LKJ law: ``(tanh(y) + 1) / 2 ~ Beta(a, a)`` (the
    prior of every structure's correlation parameters, ``a`` from its ``corr_prior_shapes``)."""
    a = np.asarray(a, dtype=float)
    shape = a.shape if size is None else tuple(np.atleast_1d(size))
    return np.arctanh(2.0 * rng.beta(a, a, size=shape) - 1.0)


def cpc_logp(log_cosh_y, a, const):
    """log p(y) per CPC: LKJ density of L with the Jacobians of y -> z -> L (elementwise;
    ``const`` per CPC from ``lkj_shape(..., per_cpc=True)``, or 0 and the total added)."""
    return const - 2.0 * a * log_cosh_y


def cpc_chol(y, q: int, a, const: float, cov=UNSTRUCTURED):
    """Cholesky factor of the correlation matrix and log p(y) (prior + Jacobians).

    The structure's :meth:`~bayes_glmm.covariance.base.CovStructure.corr_rows` (:func:`cpc_rows`
    for ``us``) and :func:`cpc_logp` evaluated on forward-mode dual numbers
    (:mod:`bayes_glmm.ops.dual`) in the ``n_corr(q)`` directions, so their derivatives come
    from the same two definitions.

    Parameters
    ----------
    y : ndarray (cov.n_corr(q),)
        Unconstrained correlation parameters (CPCs for ``us``).
    q : int
    a, const
        From ``cov.corr_prior_shapes(q, eta)`` (:func:`lkj_shape` for ``us``).
    cov : CovStructure
        The term's covariance structure (default ``us``).

    Returns
    -------
    L : ndarray (q, q)
    lp : float
    aux : tuple
        ``(J, dlp)`` for :func:`cpc_chol_vjp`: ``J[i, m, k] = dL[i, m] / dy[k]`` and
        ``d log p / dy``.
    """
    from ..ops.dual import ND, ND_OPS, deriv, value

    y = np.asarray(y, dtype=float)
    nc = y.size
    ys = [ND(float(y[k]), [1.0 if j == k else None for j in range(nc)]) for k in range(nc)]
    z = [ND_OPS.tanh(v) for v in ys]
    with np.errstate(over="ignore"):  # cosh -> inf past |y| ~ 710: s = 0, z = +-1, as intended
        # s = sech(y) = sqrt(1 - z^2), computed as 1 / cosh(y) so that saturated z = +-1 keeps
        # a finite gradient; ds/dy = -z s
        s = [v._chain(1.0 / np.cosh(v.v), -zk.v / np.cosh(v.v)) for v, zk in zip(ys, z)]
    rows = cov.corr_rows(z, s, q, ND_OPS)
    L = np.array([[value(e) for e in row] for row in rows], dtype=float)
    J = np.array([[[deriv(e, k, 0.0) if isinstance(e, ND) else 0.0 for k in range(nc)] for e in row]
                  for row in rows], dtype=float).reshape(q, q, nc)
    lp = sum((cpc_logp(log_cosh(v, ND_OPS), float(ak), 0.0) for v, ak in zip(ys, np.atleast_1d(a))), 0.0)
    dlp = np.array([deriv(lp, k, 0.0) if isinstance(lp, ND) else 0.0 for k in range(nc)], dtype=float)
    return L, const + float(value(lp)), (J, dlp)


def cpc_chol_vjp(G, a, aux):
    """d/dy of ``sum(G * L) + log p(y)`` (only the lower triangle of G matters).

    Parameters
    ----------
    G : ndarray (q, q)
        Adjoint of L.
    a : ndarray
        From :func:`lkj_shape` (unused: kept for the callers' signature).
    aux : tuple
        From :func:`cpc_chol`.
    """
    J, dlp = aux
    return np.einsum("im,imk->k", np.asarray(G, dtype=float), J) + dlp

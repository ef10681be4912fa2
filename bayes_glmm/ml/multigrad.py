"""Analytic gradient of the Laplace deviance for several random-effects terms.

The Laplace deviance is ``-2 [sum_i l_i(eta_i) - ||u||^2 / 2] + log det A`` at the
conditional mode ``u`` with ``A = Lambda' Z' W Z Lambda + I``.  Its total derivative in a
parameter (theta of any term, beta, an auxiliary coordinate):

* the penalized log-likelihood part: by the envelope theorem only the direct effect at
  fixed u remains, ``-2 r' D0`` (``D0``: d eta at fixed u, ``Z dLambda u`` for theta, ``X``
  for beta, 0 for aux) and ``-2 sum_i dl_i/da`` for an auxiliary coordinate;
* ``tr(A^{-1} dA)`` with ``dA = dLambda' C Lambda + Lambda' C dLambda + Lambda' Z' diag(dW) Z
  Lambda`` (``C = Z' W Z``), ``dW = W_eta * (D0 + Z Lambda du) (+ W_a)`` and the mode
  derivative ``du = A^{-1}[dLambda' Z' r - Lambda' Z' W D0 (+ Lambda' Z' r_a)]`` (implicit
  differentiation of the PIRLS stationarity condition).

Every trace needs ``A^{-1}`` only where a row of ``Z Lambda`` has its nonzeros: with the
rows of ``Z Lambda`` as (column index, value) pairs, ``h_i = (Z Lambda A^{-1} Lambda' Z')_ii``
and ``tr(A^{-1} Lambda' C dLambda_t)`` are per-row quadratic forms in the (Q, Q) submatrix of
``A^{-1}`` at the row's Q = sum_k q_k columns.  ``A^{-1}`` comes from the block factor PIRLS
already holds (:class:`bayes_glmm.ml.factor.ReFactor`), one dense solve of the identity, so
the gradient applies while ``m`` (the number of random effects) is at most
:data:`MAX_M_GRADIENT`; beyond it the optimizer keeps finite differences.
"""
from __future__ import annotations

import numpy as np

from . import linalg

__all__ = ["MAX_M_GRADIENT", "laplace_grad_multi"]

#: largest number of random effects for which the dense inverse of A (m x m doubles) is
#: formed; above it (large crossed designs) the deviance gradient stays finite differences
MAX_M_GRADIENT = 3000


def _rows(s: linalg.ReStructure, lambdas):
    """Columns (n, Q) and values (n, Q) of the rows of ``Z Lambda`` (term by term)."""
    idx, val = [], []
    for k in range(len(s.J)):
        q = s.q[k]
        idx.append(s.starts[k] + s.codes[k][:, None] * q + np.arange(q)[None, :])
        val.append(s.Xr[k] @ lambdas[k])
    return np.concatenate(idx, axis=1), np.concatenate(val, axis=1)


def laplace_grad_multi(resp, s: linalg.ReStructure, lambdas, Es, pr, dW, aux_rows=None, out=None) -> np.ndarray:
    """Gradient of the Laplace deviance in ``(theta, beta, aux)`` for any number of terms.

    Parameters
    ----------
    resp : pirls.Response
    s : linalg.ReStructure
    lambdas : list of (q_k, q_k) arrays, spec order
    Es : list of ndarray (n_theta_k, q_k, q_k)
        ``dLambda_k / dtheta_k`` per term (:func:`bayes_glmm.ml.agq.theta_directions`).
    pr : pirls.PirlsResult
        Converged PIRLS over u at the point, with ``W`` (the weights of its factor), ``r``.
    dW : ndarray (n,)
        ``dW / deta`` of those weights (prior-weighted).
    aux_rows : tuple, optional
        ``(W_eta, l_a, r_a, W_a)`` of :func:`bayes_glmm.ml.agq._row_aux_derivs` (general
        families); the auxiliary coordinates then follow beta in the gradient.
    out : dict, optional
        Receives ``"du"`` (m, d), the derivative of the modes.

    Returns
    -------
    ndarray (n_theta + p + n_aux,)
    """
    X, W, r, u = resp.X, pr.W, pr.r, pr.u
    n, p = X.shape
    nt = sum(E.shape[0] for E in Es)
    na = 0 if aux_rows is None else aux_rows[1].shape[1]
    d = nt + p + na
    idx, val = _rows(s, lambdas)
    # column offsets of each term inside the row representation
    qoff = np.concatenate([[0], np.cumsum(s.q)]).astype(int)
    D0 = np.zeros((n, d))
    D0[:, nt:nt + p] = X
    rhs = np.zeros((s.m, d))
    dval = []  # (term, column slice, (n, q) values of Z dLambda_t) per theta coordinate
    t = 0
    for k, E in enumerate(Es):
        cs = slice(qoff[k], qoff[k + 1])
        J, q = s.J[k], s.q[k]
        sl = slice(s.starts[k], s.starts[k] + J * q)
        Zr = linalg.zt_r(s, r)[sl].reshape(J, q)
        for e in E:
            dv = s.Xr[k] @ e
            D0[:, t] = np.sum(dv * u[idx[:, cs]], axis=1)
            rhs[sl, t] = (Zr @ e).ravel()  # dLambda_t' Z_k' r
            dval.append((cs, dv))
            t += 1
    rhs -= linalg.lam_t(s, lambdas, linalg.zt_r(s, W[:, None] * D0))
    if na:
        rhs[:, nt + p:] += linalg.lam_t(s, lambdas, linalg.zt_r(s, aux_rows[2]))
    Ainv = pr.factor.solve(np.eye(s.m))
    du = Ainv @ rhs
    if out is not None:
        out["du"] = du
    G = Ainv[idx[:, :, None], idx[:, None, :]]  # (n, Q, Q) entries of A^{-1} each row touches
    M = np.einsum("nab,nb->na", G, val)  # rows of A^{-1} Lambda' Z' restricted to the row's columns
    h = np.sum(val * M, axis=1)  # diag(Z Lambda A^{-1} Lambda' Z')
    Deta = D0 + np.einsum("nq,nqd->nd", val, du[idx])
    T = (h * dW) @ Deta
    for t, (cs, dv) in enumerate(dval):
        T[t] += 2.0 * np.sum(W * np.sum(dv * M[:, cs], axis=1))
    g = -2.0 * (r @ D0) + T
    if na:
        g[nt + p:] += h @ aux_rows[3] - 2.0 * np.sum(aux_rows[1], axis=0)
    return g

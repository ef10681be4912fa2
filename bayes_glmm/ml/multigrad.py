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
``A^{-1}`` at the row's Q = sum_k q_k columns.  ``A^{-1}`` there comes from the block factor PIRLS
already holds (:class:`bayes_glmm.ml.factor.ReFactor`, see :func:`_inverse_on_rows`), so
the gradient applies while ``m`` (the number of random effects) is at most
:data:`MAX_M_GRADIENT`, and at any size for scalar crossed terms with sparse co-occurrence
(:func:`crossed_scalar`), whose entries come from the Schur complement's inverse without any
(m, m) array (:meth:`bayes_glmm.ml.factor.ReFactor.crossed_inverse`); beyond that the optimizer
keeps finite differences.
"""
from __future__ import annotations

import numpy as np

from . import linalg
# the factor module's batched / triangular solves (same package; the factor is its data)
from .factor import _bsolve, _tri_solve

__all__ = ["MAX_M_GRADIENT", "crossed_scalar", "laplace_grad_multi"]

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


def _inverse_on_rows(F, s: linalg.ReStructure) -> np.ndarray:
    """``A^{-1}`` (m, m) wherever a row of ``Z Lambda`` can reach it, from the block factor.

    With ``A = [[A11, A12], [A21, A22]]`` (first term, then the others), ``A11 = L1 L1'``,
    ``A12 = L1 V`` and the Schur complement ``S = L2 L2'``: ``(A^{-1})_22 = S^{-1}``,
    ``(A^{-1})_12 = -L1^{-T} V S^{-1}`` and the diagonal level blocks of
    ``(A^{-1})_11 = A11^{-1} + L1^{-T} V S^{-1} V' L1^{-1}``.  A row meets one level of the
    first term, so the first term's off-diagonal level blocks (left 0 here) are never read;
    everything else costs products with the (m1, m2) ``V`` instead of m solves.
    """
    k1 = s.first
    J1, q1 = s.J[k1], s.q[k1]
    m1 = J1 * q1
    i1 = np.arange(s.starts[k1], s.starts[k1] + m1)
    i2 = np.concatenate([np.arange(s.starts[k], s.starts[k] + s.J[k] * s.q[k]) for k in s.rest])
    m2 = i2.size
    if F.L2.ndim == 3:  # nested: block-diagonal Schur complement
        L2inv = _bsolve(F.L2, np.broadcast_to(np.eye(F.L2.shape[1]), F.L2.shape).copy())
        blk = np.einsum("jba,jbc->jac", L2inv, L2inv)
        J2, q2 = blk.shape[0], blk.shape[1]
        Sinv = np.zeros((J2, q2, J2, q2))
        Sinv[np.arange(J2), :, np.arange(J2), :] = blk
        Sinv = Sinv.reshape(m2, m2)
    else:
        L2inv = _tri_solve(F.L2, np.eye(m2), lower=True)
        Sinv = L2inv.T @ L2inv
    Wd = _bsolve(F.L1, F.dense_V(), trans=True)  # L1^{-T} V (J1, q1, m2)
    WS = (Wd.reshape(m1, m2) @ Sinv).reshape(J1, q1, m2)
    L1inv = _bsolve(F.L1, np.broadcast_to(np.eye(q1), F.L1.shape).copy())
    B11 = np.einsum("jba,jbc->jac", L1inv, L1inv) + np.einsum("jam,jbm->jab", WS, Wd)
    out = np.zeros((s.m, s.m))
    out[np.ix_(i2, i2)] = Sinv
    out[np.ix_(i1, i2)] = -WS.reshape(m1, m2)
    out[np.ix_(i2, i1)] = -WS.reshape(m1, m2).T
    rows = (s.starts[k1] + np.arange(J1)[:, None, None] * q1 + np.arange(q1)[None, :, None])
    cols = (s.starts[k1] + np.arange(J1)[:, None, None] * q1 + np.arange(q1)[None, None, :])
    out[rows, cols] = B11
    return out


def crossed_scalar(s: linalg.ReStructure) -> bool:
    """True for the layout :func:`_inverse_entries_crossed` handles: scalar terms whose blocks
    with the first term are all sparse (crossed designs with few co-occurring level pairs)."""
    return bool(s.sparse_v and not s.nested and all(q == 1 for q in s.q))


def _inverse_entries_crossed(F, s: linalg.ReStructure) -> np.ndarray:
    """The (n, Q, Q) entries of ``A^{-1}`` at each row's columns, scalar crossed terms.

    The same blocks as :func:`_inverse_on_rows`, never forming an (m, m) array nor the dense
    (m1, m2) product ``W S^{-1}`` (``W = L1^{-1} V``): a row meets the first term's level
    ``g`` and a level ``c`` of each other term, and ``(g, c)`` is an entry of V's pattern, so
    ``(A^{-1})_{gc} = -(W S^{-1})_{gc}`` is needed only there, which sums over the entries of
    row ``g`` of ``W`` (:attr:`ReStructure.v_pairs`); ``(A^{-1})_{gg} = 1 / A11_g +
    w_g' S^{-1} w_g`` follows from the same sums.  Cost: one inverse of the Schur complement
    from its factor and O(sum over first-term levels of (entries per level)^2).
    """
    k1 = s.first
    m2 = s.m_rest
    Sl, X12, B11 = F.crossed_inverse()
    Sf = Sl.ravel(order="F")  # lower triangle of S^{-1} (see ReStructure.v_pairs)
    nrow = s.codes[0].shape[0]
    Q = len(s.J)
    G = np.empty((nrow, Q, Q))
    G[:, k1, k1] = B11[s.codes[k1]]
    off, cols = 0, {}
    offs = np.concatenate([[0], np.cumsum([s.J[k] for k in s.rest])])
    for i, k in enumerate(s.rest):
        inv, prow, _ = s.pairs[(k1, k)]
        G[:, k1, k] = G[:, k, k1] = X12[off + inv]
        off += prow.size
        cols[k] = offs[i] + s.codes[k]  # the row's column inside the Schur block
    for k in s.rest:
        for l in s.rest:
            lo, hi = np.minimum(cols[k], cols[l]), np.maximum(cols[k], cols[l])
            G[:, k, l] = Sf[lo * np.int64(m2) + hi]
    return G


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
    du = pr.factor.solve(rhs)
    if out is not None:
        out["du"] = du
    if crossed_scalar(s) and pr.factor.Vdata is not None:
        G = _inverse_entries_crossed(pr.factor, s)
    else:
        Ainv = _inverse_on_rows(pr.factor, s)
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

"""Analytic gradient of the profiled LMM criterion for any number of random-effects terms.

With ``A = Lambda' C Lambda + I`` (``C = Z' W Z``), ``E = dLambda/dtheta_t`` (one term's
block, any structure: :func:`bayes_glmm.ml.agq.theta_directions`) and ``G_k = Lambda_k^{-1} E``,
the penalized least-squares optimality conditions give ``Lambda' Z' W r = u`` and
``Lambda' (Z' W X - C Lambda H) = H`` (``H = A^{-1} Lambda' Z' W X``), so wherever each
``Lambda_k`` is invertible every term of the derivative needs only the *sums over levels* of
the diagonal blocks of ``A^{-1}``, ``T_k = sum_j (A^{-1})_jj`` (q_k x q_k):

* ``d log|A| = 2 tr(A^{-1} Lambda' C E) = 2 tr((J_k I - T_k) G_k)``
  (``Lambda' C E = (A - I) Lambda^{-1} E``);
* ``d pwrss = -2 sum_j u_j' G_k u_j`` (envelope theorem: u and beta are optimal);
* REML: ``d log|R_X|^2 = -2 sum_j tr(K H_j' G_k' H_j)`` with ``K = (R_X R_X')^{-1}``.

A scalar term at ``theta_k = 0`` contributes 0 to all three (the criterion is even in it,
and ``u_k = H_k = 0`` there).  A vector term with a singular ``Lambda_k`` (a correlation at
+-1, an SD at 0) has no such shortcut: :func:`lmm_gradient_multi` returns None and the caller
uses finite differences at that point.  The sums ``T_k`` come from
:meth:`bayes_glmm.ml.factor.ReFactor.inv_block_sums` (for crossed designs one inverse of the
Schur complement and one sparse product, no dense level x level products).
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular

__all__ = ["lmm_gradient_multi"]

#: a vector term's Lambda is treated as singular when its smallest diagonal entry is below
#: this fraction of its largest (or exactly 0): then Lambda^{-1} E is not accurate
SINGULAR_RATIO = 1e-8


def _inv_directions(Lam: np.ndarray, E: np.ndarray):
    """``Lambda^{-1} E_t`` (n_t, q, q), or None when Lambda is (numerically) singular."""
    dg = np.abs(np.diag(Lam))
    if Lam.shape[0] == 1:
        return None if dg[0] == 0.0 else E / Lam[0, 0]
    if dg.min() == 0.0 or dg.min() < SINGULAR_RATIO * dg.max():
        return None
    return np.stack([solve_triangular(Lam, e, lower=True) for e in E]) if E.shape[0] else E


def lmm_gradient_multi(d, sol: dict, lambdas, Es, reml: bool):
    """Gradient of :func:`bayes_glmm.ml.lmm.lmm_criterion` in theta, any number of terms.

    Parameters
    ----------
    d : lmm.LmmData
    sol : dict
        :func:`bayes_glmm.ml.lmm.lmm_solve` at the point (``factor``, ``u``, ``RZX``, ``RX``,
        ``pwrss``).
    lambdas : list of (q_k, q_k) arrays, spec order
    Es : list of ndarray (n_theta_k, q_k, q_k)
        ``dLambda_k / dtheta_k`` per term.
    reml : bool

    Returns
    -------
    ndarray (n_theta,) or None
        None when a vector term's Lambda is singular (see the module notes).
    """
    s, F = d.s, sol["factor"]
    Gs = []
    for k, E in enumerate(Es):
        Lam = np.asarray(lambdas[k], dtype=float)
        if s.q[k] == 1 and Lam[0, 0] == 0.0:
            Gs.append(None)  # a scalar term at 0: derivative 0
            continue
        G = _inv_directions(Lam, E)
        if G is None:
            return None
        Gs.append(G)
    T = F.inv_block_sums()
    u = sol["u"]
    if reml:
        H = F.backward(sol["RZX"])  # A^{-1} Lambda' Z' W X (m, p)
        RXinv = solve_triangular(sol["RX"], np.eye(d.p), lower=True)
        K = RXinv.T @ RXinv
    scale = (d.n - d.p if reml else d.n) / sol["pwrss"]
    out = []
    for k, E in enumerate(Es):
        G = Gs[k]
        if G is None:
            out.append(np.zeros(E.shape[0]))
            continue
        J, q = s.J[k], s.q[k]
        sl = slice(s.starts[k], s.starts[k] + J * q)
        uk = u[sl].reshape(J, q)
        g = 2.0 * np.einsum("ab,tba->t", J * np.eye(q) - T[k], G)
        g -= 2.0 * scale * np.einsum("ja,tab,jb->t", uk, G, uk)
        if reml:
            Hk = H[sl].reshape(J, q, d.p)
            HH = np.einsum("jac,jbd->abcd", Hk, Hk)  # sum_j H_j[a, c] H_j[b, d]
            g -= 2.0 * np.einsum("tba,abcd,dc->t", G, HH, K)
        out.append(g)
    return np.concatenate(out) if out else np.zeros(0)

"""Adaptive Gauss-Hermite quadrature (AGQ) for one grouping factor, scalar or vector terms.

With a single random-effects term the marginal likelihood factorizes over the J levels:

    L_j = integral exp(h_j(u)) (2 pi)^{-q/2} du,   h_j(u) = sum_{i in j} w_i log f(y_i | eta_i(u)) - ||u||^2/2.

Each integral is rescaled around the conditional mode u_j (from PIRLS) with the per-level
Cholesky factor L_j of the conditional precision (``L_j L_j' = Lambda' Z_j' W Z_j Lambda + I``,
the block the Laplace approximation uses), ``u = u_j + L_j^{-T} z``, and integrated with a
product Gauss-Hermite rule for the weight ``exp(-||z||^2/2)`` (nodes z_k, weights w_k):

    log L_j = -q/2 log(2 pi) - log|L_j| + logsumexp_k( log w_k + ||z_k||^2/2 + h_j(u_j + L_j^{-T} z_k) ).

With one node (z = 0, w = sqrt(2 pi)^q) this is *exactly* the Laplace approximation
``h_j(u_j) - log|L_j|``, so AGQ log-likelihoods are on the same scale as Laplace ones and
converge to the exact marginal log-likelihood as ``n_agq`` grows.

Scale note: lme4's ``glmer(nAGQ > 1)`` reports a log-likelihood on a different scale (its
AGQ deviance drops data-dependent constants that its Laplace deviance keeps, e.g. for the
epilepsy Poisson model it prints logLik -480.0 at nAGQ = 20 against -1010.7 for Laplace),
so ``logLik`` values of lme4 AGQ fits are not comparable with its Laplace fits.  Estimates
and standard errors are unaffected (constants do not move the optimum or the Hessian), and
this module does *not* reproduce lme4's scale: here the AGQ log-likelihood of any n_agq is
directly comparable with Laplace and with other n_agq.
"""
from __future__ import annotations

import itertools

import numpy as np
from scipy import sparse
from scipy.special import logsumexp

from . import linalg
from .pirls import loglik_rows

__all__ = ["gh_rule", "agq_loglik", "check_agq"]

_LOG_2PI = float(np.log(2.0 * np.pi))


def gh_rule(n: int, q: int):
    """Product Gauss-Hermite rule for the weight exp(-||z||^2/2) in q dimensions.

    Returns
    -------
    z : ndarray (n^q, q)
        Nodes.
    logw_adj : ndarray (n^q,)
        ``log w_k + ||z_k||^2 / 2`` (what the adaptive formula needs).
    """
    x, w = np.polynomial.hermite_e.hermegauss(n)
    z = np.array(list(itertools.product(x, repeat=q)), dtype=float).reshape(-1, q)
    lw = np.array([np.sum(c) for c in itertools.product(np.log(w), repeat=q)])
    return z, lw + 0.5 * np.sum(z * z, axis=1)


def check_agq(spec, n_agq: int) -> None:
    """ValueError unless AGQ with ``n_agq`` nodes applies to the model."""
    if int(n_agq) != n_agq or n_agq < 1:
        raise ValueError(f"n_agq must be a positive integer; got {n_agq!r}")
    if n_agq > 1 and len(spec.terms) != 1:
        raise ValueError(
            f"adaptive Gauss-Hermite quadrature (n_agq={n_agq}) needs a single random-effects term on one "
            f"grouping factor; this model has {len(spec.terms)} terms "
            f"({', '.join(t.name for t in spec.terms)}). Use the Laplace approximation (n_agq=1).")
    if n_agq > 1:
        q = spec.terms[0].q
        if n_agq ** q > 100_000:
            raise ValueError(f"n_agq={n_agq} with a {q}-dimensional term needs {n_agq ** q} nodes per level; "
                             f"choose n_agq <= {int(100_000 ** (1 / q))}")


def _group_matrix(codes: np.ndarray, J: int) -> sparse.csr_matrix:
    n = codes.shape[0]
    return sparse.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(J, n))


def agq_loglik(resp, s: linalg.ReStructure, lambdas, pr, n_agq: int, *, chunk_rows: int = 2_000_000) -> float:
    """AGQ marginal log-likelihood at (theta, beta) given the converged PIRLS state ``pr``.

    Parameters
    ----------
    resp : pirls.Response
    s : linalg.ReStructure
        Must have exactly one term.
    lambdas : list with one (q, q) array
    pr : pirls.PirlsResult
        Conditional modes (u only) at the same (theta, beta).
    n_agq : int
        Nodes per dimension; ``n_agq ** q`` nodes per level.
    chunk_rows : int
        Bound on rows x nodes evaluated at once (memory).
    """
    J, q, codes, Xr = s.J[0], s.q[0], s.codes[0], s.Xr[0]
    L1 = pr.factor.L1  # (J, q, q): L_j L_j' = conditional precision of u_j
    uj = pr.u.reshape(J, q)
    # D_j = Lambda L_j^{-T}: maps a standardized node z to the shift of b_j
    LinvT = linalg._bsolve(L1, np.broadcast_to(np.eye(q), L1.shape).copy(), trans=True)  # L_j^{-T}
    D = np.einsum("ab,jbc->jac", lambdas[0], LinvT)
    A = np.einsum("na,nac->nc", Xr, D[codes])  # (n, q): eta shift per unit z
    z, lw = gh_rule(n_agq, q)
    K = z.shape[0]
    G = _group_matrix(codes, J)
    hj = np.empty((J, K))
    step = max(1, chunk_rows // max(1, codes.shape[0]))
    for k0 in range(0, K, step):
        zk = z[k0:k0 + step]  # (k, q)
        eta = pr.eta[:, None] + A @ zk.T  # (n, k)
        ll = loglik_rows(_broadcast(resp), eta)
        uu = uj[:, None, :] + np.einsum("jab,kb->jka", LinvT, zk)  # (J, k, q)
        hj[:, k0:k0 + step] = np.asarray(G @ ll) - 0.5 * np.sum(uu * uu, axis=2)
    logdet_j = np.sum(np.log(np.einsum("jaa->ja", L1)), axis=1)
    logL = -0.5 * q * _LOG_2PI - logdet_j + logsumexp(hj + lw[None, :], axis=1)
    return float(np.sum(logL))


class _Cols:
    """Row vectors of a Response viewed as (n, 1) columns for broadcasting over nodes."""

    def __init__(self, resp):
        self.family = resp.family
        self.y = resp.y[:, None]
        self.n_trials = resp.n_trials[:, None]
        self.pw = resp.pw[:, None]


def _broadcast(resp):
    return _Cols(resp)

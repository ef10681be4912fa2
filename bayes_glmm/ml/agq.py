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

Gradients (single term, canonical link): :func:`devgrad` differentiates the Laplace or AGQ
deviance in (theta, beta) in forward mode.  The modes move with the parameters
(``du = A^{-1}[dLambda' Z' r - Lambda' Z' W deta_direct]``, implicit differentiation of
the PIRLS stationarity condition, where the Fisher weights equal the Newton ones), the
factor moves with ``dA = dLambda' C Lambda + Lambda' C dLambda + Lambda' dC Lambda``
(``C_j = Z_j' W Z_j``, ``dW/deta = V'(mu) mu_eta``) and so do the nodes
``u_jk = u_j + L_j^{-T} z_k``, with ``dL_j = L_j Phi(L_j^{-1} dA_j L_j^{-T})`` (Phi: lower
triangle, halved diagonal).  For Laplace the envelope theorem removes the mode terms
from the penalized log-likelihood part.
"""
from __future__ import annotations

import functools
import itertools
import weakref

import numpy as np
from scipy import sparse

from . import factor, linalg
from .multigrad import MAX_M_GRADIENT, crossed_scalar, laplace_grad_multi
from .pirls import loglik_and_mu

__all__ = ["gh_rule", "agq_loglik", "check_agq", "devgrad", "supports_gradient"]

_LOG_2PI = float(np.log(2.0 * np.pi))


#: below this log relative weight a node contributes nothing in double precision
_LOG_W_NEGLIGIBLE = -700.0


def _gh_log_1d(n: int):
    """Nodes and *log* weights of the n-point rule for exp(-z^2/2), stable for any n.

    NumPy's ``hermegauss`` overflows beyond ~400 nodes (NaN nodes and weights).  Here the
    nodes are the eigenvalues of the Jacobi matrix of the probabilists' Hermite polynomials
    (Golub-Welsch; off-diagonal sqrt(k)) and the log weights come from the Christoffel
    function ``w_k = sqrt(2 pi) / sum_j p_j(z_k)^2`` (p_j orthonormal under N(0, 1)),
    evaluated by the three-term recurrence with running rescaling, so weights far below
    the smallest double are represented by their logarithm.  Up to 150 nodes NumPy's rule
    is used unchanged.
    """
    if n <= 150:
        x, w = np.polynomial.hermite_e.hermegauss(n)
        return x, np.log(w)
    from scipy.linalg import eigh_tridiagonal

    x = eigh_tridiagonal(np.zeros(n), np.sqrt(np.arange(1.0, n)), eigvals_only=True)
    x = 0.5 * (x - x[::-1])  # exactly symmetric
    p_prev, p = np.zeros(n), np.ones(n)
    ssq, logscale = np.ones(n), np.zeros(n)
    for j in range(1, n):
        p_prev, p = p, (x * p - np.sqrt(j - 1.0) * p_prev) / np.sqrt(float(j))
        ssq += p * p
        big = ssq > 1e200
        if np.any(big):
            f = np.where(big, 1e-100, 1.0)
            p, p_prev, ssq = p * f, p_prev * f, ssq * f * f
            logscale += np.where(big, 200.0 * np.log(10.0), 0.0)
    return x, 0.5 * _LOG_2PI - np.log(ssq) - logscale


@functools.lru_cache(maxsize=32)
def _gh_cached(n: int, q: int):
    x, lw1 = _gh_log_1d(n)
    # nodes whose weight is negligible next to the largest contribute exactly nothing (and
    # their far-out eta overflow the log-density): drop them
    keep = lw1 - np.max(lw1) > _LOG_W_NEGLIGIBLE / q
    x, lw1 = x[keep], lw1[keep]
    z = np.array(list(itertools.product(x, repeat=q)), dtype=float).reshape(-1, q)
    lw = np.array([np.sum(c) for c in itertools.product(lw1, repeat=q)])
    lw = lw + 0.5 * np.sum(z * z, axis=1)
    z.setflags(write=False)
    lw.setflags(write=False)
    return z, lw


def gh_rule(n: int, q: int):
    """Product Gauss-Hermite rule for the weight exp(-||z||^2/2) in q dimensions.

    Cached: the optimizer asks for the same rule at every evaluation.

    Returns
    -------
    z : ndarray (<= n^q, q)
        Nodes (read-only); for large n the far nodes whose weight underflows relative to
        the central ones (below exp(-700)) are dropped.
    logw_adj : ndarray (n^q,)
        ``log w_k + ||z_k||^2 / 2`` (what the adaptive formula needs; read-only).
    """
    return _gh_cached(int(n), int(q))


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


# per-structure cache of the (J, n) level-sum matrix: built once per fit, not per evaluation
_GROUP_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


#: levels x rows up to which the level-sum matrix is a dense array: a SciPy sparse product
#: costs ~10 us of dispatch whatever its size, a dense one of 9 x 72 (clmm's wine) ~1 us, and an
#: AGQ gradient takes a dozen of them
DENSE_GROUP_MAX = 1 << 16


def _group_matrix(s: linalg.ReStructure):
    """The (J, n) 0/1 matrix summing rows by level of the first term: a CSR matrix, or a dense
    array for small data (:data:`DENSE_GROUP_MAX`); ``G @ v`` either way."""
    G = _GROUP_CACHE.get(s)
    if G is None:
        codes, J = s.codes[0], s.J[0]
        n = codes.shape[0]
        G = sparse.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(J, n))
        if J * n <= DENSE_GROUP_MAX:
            G = G.toarray()
        _GROUP_CACHE[s] = G
    return G


class _Cols:
    """Row vectors of a Response viewed as (n, 1) columns for broadcasting over nodes."""

    def __init__(self, resp):
        self.family = resp.family
        self.y = resp.y[:, None]
        self.n_trials = resp.n_trials[:, None]
        self.pw = resp.pw[:, None]
        self.ll_const = resp.ll_const[:, None]
        # auxiliary parameters: the family's are scalars; zi_eta stays (n,) and is
        # broadcast by the log-density (it does not move with the nodes)
        self.X_zi, self.aux_vals, self.zi_eta = resp.X_zi, resp.aux_vals, resp.zi_eta
        self.X_disp = resp.X_disp
        if resp.X_disp is not None and resp.aux_vals:
            # a dispersion formula's per-row values become (n, 1) columns like y
            self.aux_vals = {k: (v[:, None] if np.ndim(v) == 1 else v) for k, v in resp.aux_vals.items()}
        self.row_const = resp.row_const  # (n,), broadcast like zi_eta
        self.pois_c = None if getattr(resp, "pois_c", None) is None else resp.pois_c[:, None]


def supports_gradient(resp, s: linalg.ReStructure, n_agq: int = 1) -> bool:
    """True when :func:`devgrad` applies: one random-effects term and either a canonical
    classic family (Laplace or AGQ) or, for the Laplace approximation only, a family with
    auxiliary parameters (any number) and/or zero inflation.  Several terms: the Laplace
    approximation only, up to :data:`bayes_glmm.ml.multigrad.MAX_M_GRADIENT` random effects
    (any number for scalar crossed terms, :func:`bayes_glmm.ml.multigrad.crossed_scalar`)."""
    if resp.family.is_linear and resp.X_disp is None:  # the LMM's profiled scale
        return False
    if len(s.J) != 1 and (n_agq != 1 or (s.m > MAX_M_GRADIENT and not crossed_scalar(s))):
        return False
    if resp.general:
        # AGQ: a family's own auxiliary parameters (their node derivatives by central
        # differences of the log-density, :func:`_node_aux_derivs`); not zero inflation or a
        # dispersion formula
        return n_agq == 1 or (resp.X_zi is None and resp.X_disp is None)
    return bool(resp.family.is_canonical)


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
    return _agq(resp, s, lambdas, pr, n_agq, None, chunk_rows)[0]


def _chol_inverse(L1: np.ndarray) -> np.ndarray:
    q = L1.shape[1]
    return factor._bsolve(L1, np.broadcast_to(np.eye(q), L1.shape).copy())


def _agq(resp, s, lambdas, pr, n_agq, deriv, chunk_rows, scalar_fast=True):
    """Log-likelihood and (when ``deriv`` from :func:`_mode_derivs`) its gradient.

    The log-sum-exp over nodes is accumulated chunk by chunk (running maximum), so memory
    stays bounded by ``chunk_rows`` however many nodes there are.  One scalar term on small
    data (``scalar_fast``, a dense level-sum matrix, one chunk) goes to :func:`_agq_scalar`.
    """
    J, q, codes, Xr = s.J[0], s.q[0], s.codes[0], s.Xr[0]
    if scalar_fast and q == 1 and isinstance(_group_matrix(s), np.ndarray):
        K = gh_rule(n_agq, 1)[0].shape[0]
        width = 1 if deriv is None else 4 + 2 * (deriv[3].shape[-1] - deriv[2].shape[0] - deriv[0].shape[1])
        if chunk_rows // max(1, codes.shape[0] * width) >= K:
            return _agq_scalar(resp, s, lambdas, pr, n_agq, deriv)
    L1 = pr.factor.L1  # (J, q, q): L_j L_j' = conditional precision of u_j
    uj = pr.u.reshape(J, q)
    Linv = _chol_inverse(L1)
    LinvT = np.swapaxes(Linv, 1, 2)  # L_j^{-T}
    # D_j = Lambda L_j^{-T}: maps a standardized node z to the shift of b_j
    D = np.einsum("ab,jbc->jac", lambdas[0], LinvT)
    A = np.einsum("na,nac->nc", Xr, D[codes])  # (n, q): eta shift per unit z
    z, lw = gh_rule(n_agq, q)
    K = z.shape[0]
    G = _group_matrix(s)
    cols = _Cols(resp)
    n = codes.shape[0]
    m = np.full(J, -np.inf)
    tot = np.zeros(J)
    if deriv is not None:
        X, Lam, E, du, P, T = deriv
        p, nt = X.shape[1], E.shape[0]
        na = du.shape[-1] - nt - p  # a general family's auxiliary coordinates (after theta, beta)
        acc = np.zeros((J, nt + p + na))
        width = 3 + q + 2 * na
    else:
        width = 1
    step = max(1, chunk_rows // max(1, n * width))
    # a family with auxiliary parameters (no zero inflation, no trials): its log-density and
    # score at the nodes from one call (the same values as loglik_and_mu and eta_score_weight)
    fused = (deriv is not None and na and cols.X_zi is None and cols.row_const is not None
             and not cols.family.needs_trials)
    for k0 in range(0, K, step):
        zk = z[k0:k0 + step]  # (k, q)
        eta = pr.eta[:, None] + A @ zk.T  # (n, k)
        if fused:  # the log-density and the score at the nodes in one family call
            lle, rk, _ = cols.family.loglik_eta_score_weight(cols.y, eta, **cols.aux_vals)
            ll, mu, rk = cols.pw * (cols.row_const[:, None] + lle), None, cols.pw * rk
        else:
            ll, mu = loglik_and_mu(cols, eta)
        uu = uj[:, None, :] + np.einsum("jab,kb->jka", LinvT, zk)  # (J, k, q)
        a = np.asarray(G @ ll) - 0.5 * np.sum(uu * uu, axis=2) + lw[None, k0:k0 + step]
        m_new = np.maximum(m, np.max(a, axis=1))
        with np.errstate(invalid="ignore"):
            scale = np.where(np.isfinite(m), np.exp(m - m_new), 0.0)
        ea = np.exp(a - m_new[:, None])
        tot = tot * scale + np.sum(ea, axis=1)
        m = m_new
        if deriv is None:
            continue
        if fused:
            pass  # rk from the fused call above
        elif na:  # the family's own score at the nodes (prior-weighted)
            fam = cols.family
            rk = cols.pw * fam.eta_score_weight(cols.y, eta, trials=cols.n_trials if fam.needs_trials else None,
                                                **cols.aux_vals)[0]
        else:
            rk = cols.pw * (cols.y - cols.n_trials * mu)  # d loglik / d eta at the nodes
        # h_j(u_jk) changes by (Lambda' s_jk - u_jk)' du_jk, du_jk = du_j - P_j z_k, plus the
        # direct effects at fixed u_jk: s_jk' dLambda u_jk (theta) and sum_i r_ik x_i (beta).
        # Everything is linear in the node terms, so the weights ea are contracted first.
        sz = np.stack([np.asarray(G @ (rk * Xr[:, a:a + 1])) for a in range(q)], axis=2)  # (J, k, q)
        gk = np.einsum("ba,jkb->jka", Lam, sz) - uu
        g1 = np.einsum("jk,jka->ja", ea, gk)
        g2 = np.einsum("jk,jka,kb->jab", ea, gk, zk)
        su = np.einsum("jk,jka,jkb->jab", ea, sz, uu)
        rho = np.einsum("nk,nk->n", ea[codes], rk)
        acc *= scale[:, None]
        acc += np.einsum("ja,jad->jd", g1, du) - np.einsum("jab,jabd->jd", g2, P)
        acc[:, :nt] += np.einsum("jab,tab->jt", su, E)
        acc[:, nt:nt + p] += np.asarray(G @ (X * rho[:, None]))
        if na:  # the auxiliary parameters' direct effect at fixed nodes: sum_i dl_i/da per node
            for j, dl in enumerate(_node_aux_derivs(resp, eta)):
                acc[:, nt + p + j] += np.einsum("jk,jk->j", ea, np.asarray(G @ dl))
    logdet_j = np.sum(np.log(np.einsum("jaa->ja", L1)), axis=1)
    logL = -0.5 * q * _LOG_2PI - logdet_j + m + np.log(tot)
    if deriv is None:
        return float(np.sum(logL)), None
    dlogL = -0.5 * T + acc / tot[:, None]
    return float(np.sum(logL)), np.sum(dlogL, axis=0)


def _agq_scalar(resp, s, lambdas, pr, n_agq, deriv):
    """:func:`_agq` for one scalar term (q = 1) with every node in one chunk: the same
    quantities with each per-level q x q block a scalar, so the batched einsums over
    (J, nodes, q, q) become products of (J, nodes) arrays (the fixed cost of a small model's
    AGQ evaluation).  The log-likelihood is the same operations' value; the gradient agrees
    up to the order of its sums (``tests/test_pirls_scalar.py``, ``tests/test_ml_families.py``)."""
    codes, x = s.codes[0], s.Xr[0][:, 0]
    lam = float(lambdas[0][0, 0])
    L1 = pr.factor.L1[:, 0, 0]  # sqrt of the conditional precision of u_j
    Linv = 1.0 / L1
    A = x * (lam * Linv)[codes]  # eta shift per unit z
    z, lw = gh_rule(n_agq, 1)
    zk = z[:, 0]
    G = _group_matrix(s)
    cols = _Cols(resp)
    eta = pr.eta[:, None] + A[:, None] * zk[None, :]  # (n, K)
    na = 0 if deriv is None else deriv[3].shape[-1] - deriv[2].shape[0] - deriv[0].shape[1]
    fused = (deriv is not None and na and cols.X_zi is None and cols.row_const is not None
             and not cols.family.needs_trials)
    if fused:  # the log-density and the score at the nodes in one family call
        lle, rk, _ = cols.family.loglik_eta_score_weight(cols.y, eta, **cols.aux_vals)
        ll, mu, rk = cols.pw * (cols.row_const[:, None] + lle), None, cols.pw * rk
    else:
        ll, mu = loglik_and_mu(cols, eta)
    uu = pr.u[:, None] + Linv[:, None] * zk[None, :]  # (J, K)
    a = G @ ll - 0.5 * (uu * uu) + lw[None, :]
    m = np.max(a, axis=1)
    ea = np.exp(a - m[:, None])
    tot = np.sum(ea, axis=1)
    logL = -0.5 * _LOG_2PI - np.log(L1) + m + np.log(tot)
    if deriv is None:
        return float(np.sum(logL)), None
    X, _, E, du, P, T = deriv
    p, nt = X.shape[1], E.shape[0]
    du, P, e = du[:, 0, :], P[:, 0, 0, :], E[:, 0, 0]
    if not fused:
        if na:  # the family's own score at the nodes (prior-weighted)
            fam = cols.family
            rk = cols.pw * fam.eta_score_weight(cols.y, eta, trials=cols.n_trials if fam.needs_trials else None,
                                                **cols.aux_vals)[0]
        else:
            rk = cols.pw * (cols.y - cols.n_trials * mu)  # d loglik / d eta at the nodes
    # the terms of _agq with q = 1: h_j moves by (lam s_jk - u_jk) du_jk, du_jk = du_j - P_j z_k,
    # plus s_jk u_jk dlam (theta) and sum_i r_ik x_i (beta) at fixed u_jk
    sz = G @ (rk * x[:, None])  # (J, K)
    eg = ea * (lam * sz - uu)
    g1, g2 = np.sum(eg, axis=1), eg @ zk
    su = np.sum(ea * sz * uu, axis=1)
    rho = np.sum(ea[codes] * rk, axis=1)
    acc = g1[:, None] * du - g2[:, None] * P
    acc[:, :nt] += su[:, None] * e[None, :]
    acc[:, nt:nt + p] += G @ (X * rho[:, None])
    if na:  # the auxiliary parameters' direct effect at fixed nodes: sum_i dl_i/da per node
        dl = np.asarray(_node_aux_derivs(resp, eta))  # (na, n, K)
        acc[:, nt + p:] += np.sum((G @ dl) * ea[None], axis=2).T
    dlogL = -0.5 * T + acc / tot[:, None]
    return float(np.sum(logL)), np.sum(dlogL, axis=0)


def _node_aux_derivs(resp, eta, h: float = 1e-5):
    """``d loglik_i / d a_j`` (prior-weighted) at the AGQ nodes ``eta`` (n, k), one (n, k) array
    per auxiliary coordinate of the family: central differences of the family's own
    log-density (one definition; a step of 1e-5 on coordinates of order 1 leaves ~1e-10)."""
    from .pirls import _general_loglik, with_family_aux

    a0 = np.asarray(resp.aux_coord, dtype=float)
    fam = resp.family
    if resp.X_zi is None and resp.X_disp is None:
        exact = fam.aux_loglik_derivs(resp.y[:, None], eta, **resp.aux_vals)
        if exact is not None:
            # the family's closed form in the natural values, to the coordinates by the chain rule
            from .auxpar import aux_jacobian

            Jc = aux_jacobian(fam, a0)
            # sum_k dv_k Jc[k, j] for every coordinate j as one product over the stacked dv_k
            return list(resp.pw[:, None] * np.tensordot(Jc, np.asarray(exact), axes=([0], [0])))
    out = []
    for j in range(a0.size):
        lp = []
        for sgn in (1.0, -1.0):
            a = a0.copy()
            a[j] += sgn * h
            lp.append(_general_loglik(_Cols(with_family_aux(resp, a)), eta))
        out.append(resp.pw[:, None] * (lp[0] - lp[1]) / (2.0 * h))
    return out


def theta_directions(term, theta) -> np.ndarray:
    """``dLambda / dtheta_t`` (n_theta, q, q) of a term at ``theta`` (its slice of theta).

    From the structure's one definition of Lambda through the dual numbers
    (:meth:`~bayes_glmm.covariance.base.CovStructure.lambda_jacobian`); constant when the
    structure is linear (``us``, ``diag``), so the gradient below is exact for any structure.
    """
    from .optimize import clamp_theta

    theta = np.asarray(theta, dtype=float)
    E = term.cov.lambda_jacobian(clamp_theta(theta, term), term.q)
    # Lambda is flat in a correlation parameter beyond the clamp (as lambdas_from_theta reads it)
    E[clamp_theta(theta, term) != theta] = 0.0
    return E


def _row_aux_derivs(resp, eta, h: float = 1e-5):
    """Row-wise derivatives the general-family Laplace gradient needs (prior-weighted).

    Returns ``(W_eta, l_a, r_a, W_a)``: ``dW/deta`` (n,) of the Hessian weights, and the
    derivatives of the log-density ``l``, the score ``r = dl/deta`` and ``W`` in each
    auxiliary coordinate (n, n_aux): the zero-inflation coefficients, then one per auxiliary
    parameter of the family (its log for a positive one, :mod:`bayes_glmm.ml.auxpar`).
    They are central differences *per row* of the family's own exact ``eta_derivs`` (one
    definition; step ``h`` on scales of order 1 gives ~1e-10 relative error), costing a few
    row evaluations instead of the 2 d PIRLS runs of a finite-difference deviance gradient.
    """
    from dataclasses import replace

    from .auxpar import aux_coords, aux_jacobian
    from .pirls import _general_derivs, _general_loglik

    pw = resp.pw
    fam = resp.family
    if fam.aux_params and resp.X_zi is None and resp.X_disp is None:
        exact = fam.aux_eta_derivs(resp.y, eta, trials=resp.n_trials if fam.needs_trials else None,
                                   **resp.aux_vals)
        if exact is not None:
            # the family's closed form in the natural values, to the coordinates by the chain rule
            W_eta, l_v, r_v, W_v = exact
            Jc = aux_jacobian(fam, aux_coords(fam, resp.aux_vals) if resp.aux_coord is None else resp.aux_coord)
            # the three (n, A) arrays through the Jacobian as one stacked product
            l_c, r_c, W_c = pw[:, None] * (np.stack((l_v, r_v, W_v)) @ Jc)
            return pw * W_eta, l_c, r_c, W_c
    _, wp, _ = _general_derivs(resp, eta + h)
    _, wm, _ = _general_derivs(resp, eta - h)
    W_eta = pw * (wp - wm) / (2.0 * h)
    n, k = eta.shape[0], (0 if resp.X_zi is None else resp.X_zi.shape[1])
    na = resp.n_aux
    l_a, r_a, W_a = np.empty((n, na)), np.empty((n, na)), np.empty((n, na))
    if k:
        up = replace(resp, zi_eta=resp.zi_eta + h)
        dn = replace(resp, zi_eta=resp.zi_eta - h)
        dl = (_general_loglik(up, eta) - _general_loglik(dn, eta)) / (2.0 * h)
        d1p, wop, _ = _general_derivs(up, eta)
        d1m, wom, _ = _general_derivs(dn, eta)
        dr, dw = (d1p - d1m) / (2.0 * h), (wop - wom) / (2.0 * h)
        Xz = resp.X_zi
        l_a[:, :k], r_a[:, :k], W_a[:, :k] = (pw * dl)[:, None] * Xz, (pw * dr)[:, None] * Xz, (pw * dw)[:, None] * Xz
    if resp.family.aux_params and resp.X_disp is not None:
        _disp_row_derivs(resp, eta, h, k, l_a, r_a, W_a)
    elif resp.family.aux_params:
        # the coordinates from the natural values (log of the value: bit for bit the
        # perturbation the one-dispersion code made)
        a0 = aux_coords(resp.family, resp.aux_vals)
        _aux_coord_columns(resp, eta, h, a0, range(a0.size), k, l_a, r_a, W_a)
    return W_eta, l_a, r_a, W_a


def _central_rows(perturbed, eta, h):
    """Central differences per row (not yet prior-weighted) of the log-density, the score and
    the observed weight in one coordinate: ``perturbed(sgn)`` is the response moved by ``sgn * h``."""
    from .pirls import _general_derivs, _general_loglik

    outs = []
    for sgn in (1.0, -1.0):
        rr = perturbed(sgn)
        d1, wo, _ = _general_derivs(rr, eta)
        outs.append((_general_loglik(rr, eta), d1, wo))
    (lp_, d1p, wop), (lm_, d1m, wom) = outs
    return (lp_ - lm_) / (2.0 * h), (d1p - d1m) / (2.0 * h), (wop - wom) / (2.0 * h)


def _aux_coord_columns(resp, eta, h, a0, js, k, l_a, r_a, W_a) -> None:
    """Columns ``k + j`` (``j`` in ``js``) of :func:`_row_aux_derivs`' arrays, in place: the
    family's auxiliary coordinates ``a0[j]`` moved one at a time."""
    from .pirls import with_family_aux

    def moved(j):
        def perturbed(sgn):
            a = np.array(a0, dtype=float)
            a[j] += sgn * h
            return with_family_aux(resp, a)
        return perturbed

    for j in js:
        dl, dr, dw = _central_rows(moved(j), eta, h)
        l_a[:, k + j], r_a[:, k + j], W_a[:, k + j] = resp.pw * dl, resp.pw * dr, resp.pw * dw


def _disp_row_derivs(resp, eta, h, k, l_a, r_a, W_a) -> None:
    """:func:`_row_aux_derivs`' columns for a dispersion formula, filled in place from column
    ``k``: the coefficients ``beta_disp`` act through the log of the first auxiliary
    parameter per row (``d/d beta_disp = X_disp' d/d log aux``, a per-row central difference
    in that log), the family's other auxiliary parameters through their own coordinates."""
    from dataclasses import replace

    from .pirls import _row_const

    pw, Xd = resp.pw, resp.X_disp
    kd = Xd.shape[1]
    first = resp.family.aux_params[0].name

    def perturbed(sgn):
        vals = dict(resp.aux_vals)
        vals[first] = resp.aux_vals[first] * np.exp(sgn * h)
        return replace(resp, aux_vals=vals, row_const=_row_const(resp, vals))

    dl, dr, dw = _central_rows(perturbed, eta, h)
    l_a[:, k:k + kd] = (pw * dl)[:, None] * Xd
    r_a[:, k:k + kd] = (pw * dr)[:, None] * Xd
    W_a[:, k:k + kd] = (pw * dw)[:, None] * Xd
    a0 = np.asarray(resp.aux_coord, dtype=float)
    _aux_coord_columns(resp, eta, h, a0, range(kd, a0.size), k, l_a, r_a, W_a)


def _mode_derivs(resp, s, lambdas, E, pr, want_nodes, aux_rows=None, scalar_fast=True):
    """Forward-mode pieces shared by the Laplace and AGQ gradients (one term).

    Returns ``(D0, du, T, P)``: the direct derivative of eta at fixed u (n, d), the mode
    derivative (J, q, d), ``tr(A_j^{-1} dA_j)`` (J, d) and, when ``want_nodes``, the node
    scale derivative ``P_j = L_j^{-T} Phi(M_j)'`` (J, q, q, d), else None.

    ``aux_rows`` (from :func:`_row_aux_derivs`, general families) supplies ``dW/deta`` and
    the auxiliary parameters' direct effects on the score and on W; d then includes them
    (their D0 columns are 0: they do not move eta at fixed u).  ``scalar_fast``: one scalar
    term goes to :func:`_mode_derivs_scalar` (False: this general form, for the tests).
    """
    if scalar_fast and s.q[0] == 1:
        return _mode_derivs_scalar(resp, s, lambdas, E, pr, want_nodes, aux_rows)
    J, q, c, Xr = s.J[0], s.q[0], s.codes[0], s.Xr[0]
    X, Lam = resp.X, lambdas[0]
    n, p, nt = X.shape[0], X.shape[1], E.shape[0]
    na = 0 if aux_rows is None else aux_rows[1].shape[1]
    d = nt + p + na
    G = _group_matrix(s)
    U = pr.u.reshape(J, q)
    W, r = pr.W, pr.r
    if aux_rows is None:
        # dW/deta = V'(mu) mu_eta (canonical: mu_eta = V): poisson V' = 1, binomial 1 - 2 mu
        dW = W * resp.family.variance_mu_deriv(pr.mu)
    else:
        dW = aux_rows[0]
    D0 = np.zeros((n, d))
    for t in range(nt):
        D0[:, t] = np.einsum("nq,nq->n", Xr, (U @ E[t].T)[c]) if q > 1 else Xr[:, 0] * (U[:, 0] * E[t, 0, 0])[c]
    D0[:, nt:nt + p] = X
    L1 = pr.factor.L1
    Linv = _chol_inverse(L1)
    Ainv = np.einsum("jba,jbc->jac", Linv, Linv)  # L^{-T} L^{-1}
    Zr = np.asarray(G @ (Xr * r[:, None]))  # (J, q)
    WD = W[:, None] * D0
    S = np.asarray(G @ (Xr[:, :, None] * WD[:, None, :]).reshape(n, q * d)).reshape(J, q, d)
    rhs = -np.einsum("ba,jbd->jad", Lam, S)
    for t in range(nt):
        rhs[:, :, t] += Zr @ E[t]  # (E_t' Z_j' r)
    if na:
        # an auxiliary parameter moves the score at fixed eta: + Lambda' Z_j' dr/da
        Zra = np.asarray(G @ (Xr[:, :, None] * aux_rows[2][:, None, :]).reshape(n, q * na)).reshape(J, q, na)
        rhs[:, :, nt + p:] += np.einsum("ba,jbd->jad", Lam, Zra)
    du = np.einsum("jab,jbd->jad", Ainv, rhs)
    LamDu = np.einsum("ab,jbd->jad", Lam, du)
    Deta = D0 + np.einsum("nq,nqd->nd", Xr, LamDu[c]) if q > 1 else D0 + (Xr[:, 0:1] * LamDu[c, 0, :])
    C = np.empty((J, q, q))
    dC = np.empty((J, q, q, d))
    for a in range(q):
        for b in range(a, q):
            xab = Xr[:, a] * Xr[:, b]
            C[:, a, b] = C[:, b, a] = G @ (W * xab)
            dC[:, a, b, :] = dC[:, b, a, :] = np.asarray(G @ ((dW * xab)[:, None] * Deta))
            if na:  # ... and W directly
                dC[:, a, b, nt + p:] += np.asarray(G @ (xab[:, None] * aux_rows[3]))
                dC[:, b, a, nt + p:] = dC[:, a, b, nt + p:]
    # Lambda' dC_j Lambda as batched matmuls over (j, d) (a 3-operand einsum is ~50x slower)
    dA = np.moveaxis(Lam.T @ np.moveaxis(dC, 3, 1) @ Lam, 1, 3)
    CL = C @ Lam
    for t in range(nt):
        EtCL = E[t].T @ CL
        dA[:, :, :, t] += EtCL + np.swapaxes(EtCL, 1, 2)
    T = np.einsum("jab,jbad->jd", Ainv, dA)
    P = None
    if want_nodes:
        M = np.moveaxis(Linv[:, None] @ np.moveaxis(dA, 3, 1) @ np.swapaxes(Linv, 1, 2)[:, None], 1, 3)
        Phi = np.tril(np.moveaxis(M, 3, 1))  # (J, d, q, q)
        Phi = Phi - 0.5 * np.einsum("jdaa->jda", Phi)[..., None] * np.eye(q)
        P = np.einsum("jba,jdcb->jacd", Linv, Phi)  # L^{-T} Phi'
    return D0, du, T, P


def _mode_derivs_scalar(resp, s, lambdas, E, pr, want_nodes, aux_rows=None):
    """:func:`_mode_derivs` for one scalar term (q = 1): the same ``(D0, du, T, P)`` (shapes
    (n, d), (J, 1, d), (J, d), (J, 1, 1, d) or None) with every per-level block a scalar, so
    the batched q x q products, inverses and einsums become products of (J, d) arrays (the
    fixed cost of a small model's AGQ gradient; ``tests/test_ml_families.py`` holds the two
    equal)."""
    J, c = s.J[0], s.codes[0]
    x = s.Xr[0][:, 0]
    X = resp.X
    n, p, nt = X.shape[0], X.shape[1], E.shape[0]
    na = 0 if aux_rows is None else aux_rows[1].shape[1]
    d = nt + p + na
    lam = float(lambdas[0][0, 0])
    G = _group_matrix(s)
    u, W, r = pr.u, pr.W, pr.r
    dW = W * resp.family.variance_mu_deriv(pr.mu) if aux_rows is None else aux_rows[0]
    e = E[:, 0, 0]  # dLambda/dtheta_t
    D0 = np.zeros((n, d))
    for t in range(nt):
        D0[:, t] = x * (u * e[t])[c]
    D0[:, nt:nt + p] = X
    Linv = 1.0 / pr.factor.L1[:, 0, 0]
    Ainv = Linv * Linv
    xx = x * x
    S = np.asarray(G @ ((x * W)[:, None] * D0))  # (J, d): sum_{i in j} x W D0
    rhs = -lam * S
    if nt:
        rhs[:, :nt] += np.asarray(G @ (x * r))[:, None] * e[None, :]
    if na:  # an auxiliary parameter moves the score at fixed eta: + lam Z_j' dr/da
        rhs[:, nt + p:] += lam * np.asarray(G @ (x[:, None] * aux_rows[2]))
    du = Ainv[:, None] * rhs
    Deta = D0 + x[:, None] * (lam * du)[c]
    C = np.asarray(G @ (W * xx))
    dC = np.asarray(G @ ((dW * xx)[:, None] * Deta))
    if na:  # ... and W directly
        dC[:, nt + p:] += np.asarray(G @ (xx[:, None] * aux_rows[3]))
    dA = (lam * lam) * dC
    if nt:
        dA[:, :nt] += 2.0 * (C * lam)[:, None] * e[None, :]
    T = Ainv[:, None] * dA
    # the node scale's derivative: L^{-T} Phi(L^{-1} dA L^{-T})' with Phi halving the diagonal
    P = (0.5 * (Linv * Ainv)[:, None] * dA)[:, None, None, :] if want_nodes else None
    return D0, du[:, None, :], T, P


def _laplace_grad_scalar(resp, s, lam: float, pr, aux_rows=None, out=None) -> np.ndarray:
    """Laplace deviance gradient for one scalar term (q = 1) in O(n (p + n_aux)).

    The same quantities as :func:`_mode_derivs` specialised to q = 1, where every block is a
    scalar: ``A_j = 1 + lam^2 C_j``, ``du_j = rhs_j / A_j`` and ``sum_j tr(A_j^{-1} dA_j)``
    contracted without forming the (n, d) derivative of eta (group sums by ``bincount``).
    ``tests/test_ml_families.py`` holds it equal to the general form.  ``out`` (a dict), when
    given, receives the mode derivative ``du`` (J, d) as in :func:`devgrad`.
    """
    c, J = s.codes[0], s.J[0]
    x = s.Xr[0][:, 0]
    X = resp.X
    p = X.shape[1]
    na = 0 if aux_rows is None else aux_rows[1].shape[1]
    u = pr.u  # (J,)
    W, r = pr.W, pr.r
    if aux_rows is None:
        dW = W * resp.family.variance_mu_deriv(pr.mu)
    else:
        dW = aux_rows[0]

    def gsum(v):
        return np.bincount(c, weights=v, minlength=J)

    xx = x * x
    C = gsum(W * xx)
    A = 1.0 + lam * lam * C
    uc = u[c]
    xw = x * W
    # rhs_j = -lam S_j (+ Z_j'r for theta, + lam Z_j' dr/da for aux), S_j = sum x W D0
    rhs = np.empty((J, 1 + p + na))
    G = _group_matrix(s)
    if isinstance(G, np.ndarray):
        # small data (a dense level-sum matrix): the group sums of every column as one product
        # instead of 2 + p + n_aux bincounts (the same sums up to rounding)
        B = np.empty((x.shape[0], 2 + p + na))
        B[:, 0], B[:, 1], B[:, 2:2 + p] = xw * x * uc, x * r, xw[:, None] * X
        if na:
            B[:, 2 + p:] = x[:, None] * aux_rows[2]
        S = G @ B
        rhs[:, 0] = -lam * S[:, 0] + S[:, 1]
        rhs[:, 1:1 + p] = -lam * S[:, 2:2 + p]
        rhs[:, 1 + p:] = lam * S[:, 2 + p:]
    else:
        rhs[:, 0] = -lam * gsum(xw * x * uc) + gsum(x * r)
        for k in range(p):
            rhs[:, 1 + k] = -lam * gsum(xw * X[:, k])
        for k in range(na):
            rhs[:, 1 + p + k] = lam * gsum(x * aux_rows[2][:, k])
    du = rhs / A[:, None]
    if out is not None:
        out["du"] = du
    wt = lam * lam * xx * dW / A[c]  # contracts dC_j with 1/A_j
    T = np.empty(1 + p + na)
    m = gsum(wt * x)  # sum_{i in j} wt_i x_i, for the mode-movement part of d eta
    T[0] = wt @ (x * uc) + 2.0 * lam * np.sum(C / A)
    T[1:1 + p] = wt @ X
    if na:
        T[1 + p:] = (lam * lam * (xx / A[c])) @ aux_rows[3]
    T += lam * (m @ du)
    g = np.empty(1 + p + na)
    g[0] = r @ (x * uc)
    g[1:1 + p] = r @ X
    g[1 + p:] = np.sum(aux_rows[1], axis=0) if na else 0.0
    return -2.0 * g + T


def devgrad(resp, s: linalg.ReStructure, lambdas, E, pr, n_agq: int = 1, *, chunk_rows: int = 2_000_000,
            scalar_fast: bool = True, out: dict | None = None):
    """Deviance ``-2 loglik`` and its gradient in ``(theta, beta)`` at a converged PIRLS state.

    Parameters
    ----------
    resp : pirls.Response
    s : linalg.ReStructure
        See :func:`supports_gradient`.
    lambdas : list of (q_k, q_k) arrays
    E : ndarray (n_theta, q, q)
        ``dLambda / dtheta`` at theta from :func:`theta_directions`; with several terms a
        list of them, one per term (:func:`bayes_glmm.ml.multigrad.laplace_grad_multi`).
    pr : pirls.PirlsResult
        PIRLS over u only at (theta, beta), with ``r`` and ``mu`` at the mode.
    n_agq : int
        1 for Laplace, else nodes per dimension.
    out : dict, optional
        Receives ``"du"``: the derivative of the conditional modes ``pr.u`` in the same
        coordinates, (m, d) (a by-product; the caller's warm start for nearby points).

    Returns
    -------
    dev : float
    grad : ndarray (n_theta + p,)
    """
    if len(s.J) != 1:
        # several terms (Laplace only): E is the list of each term's dLambda/dtheta
        aux_rows = _row_aux_derivs(resp, pr.eta) if resp.general else None
        dW = aux_rows[0] if resp.general else pr.W * resp.family.variance_mu_deriv(pr.mu)
        return pr.laplace_deviance, laplace_grad_multi(resp, s, lambdas, E, pr, dW, aux_rows, out)
    if resp.general:
        if n_agq != 1 and not supports_gradient(resp, s, n_agq):
            raise ValueError("devgrad: the analytic AGQ gradient of a dispersion / zero-inflated model is "
                             "not available (the Laplace approximation's is)")
        aux_rows = _row_aux_derivs(resp, pr.eta)
        if n_agq != 1:  # AGQ with the family's auxiliary parameters
            _, du, T, P = _mode_derivs(resp, s, lambdas, E, pr, True, aux_rows, scalar_fast)
            if out is not None:
                out["du"] = du.reshape(-1, du.shape[-1])
            ll, g = _agq(resp, s, lambdas, pr, n_agq, (resp.X, lambdas[0], E, du, P, T), chunk_rows, scalar_fast)
            return -2.0 * ll, -2.0 * g
        if scalar_fast and s.q[0] == 1:
            return pr.laplace_deviance, _laplace_grad_scalar(resp, s, float(lambdas[0][0, 0]), pr, aux_rows, out)
        D0, du, T, _ = _mode_derivs(resp, s, lambdas, E, pr, False, aux_rows, scalar_fast)
        if out is not None:
            out["du"] = du.reshape(-1, du.shape[-1])
        g = -2.0 * (pr.r @ D0) + np.sum(T, axis=0)
        g[D0.shape[1] - resp.n_aux:] -= 2.0 * np.sum(aux_rows[1], axis=0)
        return pr.laplace_deviance, g
    if n_agq == 1 and scalar_fast and s.q[0] == 1:
        return pr.laplace_deviance, _laplace_grad_scalar(resp, s, float(lambdas[0][0, 0]), pr, None, out)
    D0, du, T, P = _mode_derivs(resp, s, lambdas, E, pr, n_agq > 1, None, scalar_fast)
    if out is not None:
        out["du"] = du.reshape(-1, du.shape[-1])
    if n_agq == 1:
        # envelope theorem: the mode terms of -2 ll + ||u||^2 cancel at the mode
        return pr.laplace_deviance, -2.0 * (pr.r @ D0) + np.sum(T, axis=0)
    ll, g = _agq(resp, s, lambdas, pr, n_agq, (resp.X, lambdas[0], E, du, P, T), chunk_rows, scalar_fast)
    return -2.0 * ll, -2.0 * g

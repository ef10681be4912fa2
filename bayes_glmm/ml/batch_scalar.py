"""The Laplace deviance gradient at many points as one batch, for one scalar term on small data.

A central-difference Hessian of the analytic gradient (the standard errors', and the Newton
step's that ends a small fit, :func:`bayes_glmm.ml.laplace._newton_from_stage1`) evaluates
the gradient at 2 d points.  On clmm's 72-row wine data each evaluation is ~0.45 ms of NumPy
call overhead, not arithmetic, so 14 of them cost ~14 times the overhead of one.  Here the
P points' parameters are stacked and the PIRLS of :func:`bayes_glmm.ml.pirls_scalar.pirls_scalar`
and the gradient of :func:`bayes_glmm.ml.agq._laplace_grad_scalar` run on (P, n) row and
(P, J) level arrays: the same operations per point (the same Newton steps, convergence test
and exact-Hessian factor), hence the same modes, deviances and gradients up to rounding
(``tests/test_batch_scalar.py``).

It applies where the family's row functions broadcast over a leading axis of points
(:attr:`~bayes_glmm.families.base.Family.aux_rows_broadcast`), to one scalar term without
zero inflation or a dispersion formula, on data small enough for the dense level-sum matrix.
Whatever the sequential path would treat specially -- a step halving, a PIRLS run that does
not converge, an indefinite system, non-finite rows -- makes :func:`batch_devgrad` return
None, and the caller evaluates the points one at a time.
"""
from __future__ import annotations

import numpy as np

from .agq import _LOG_2PI, _group_matrix, gh_rule
from .auxpar import aux_jacobian, aux_natural
from .pirls_scalar import scalar_applies


def batch_applies(resp, s, n_agq: int = 1) -> bool:
    """True where :func:`batch_devgrad` evaluates the Laplace or AGQ gradient of this model in one batch."""
    return (n_agq >= 1 and scalar_applies(resp, s) and resp.X_disp is None and resp.row_const is not None
            and not resp.family.needs_trials and bool(resp.family.aux_rows_broadcast)
            and isinstance(_group_matrix(s), np.ndarray))


def _stacked_aux(resp, aux):
    """``(aux values {name: (P, 1)}, row constants (P, n), coordinates (P, A))`` of the P points'
    auxiliary coordinates ``aux`` (P, A), each point's as :func:`~bayes_glmm.ml.pirls.with_aux`
    sets them (one call on the (P, A) array: a family that broadcasts its rows over points,
    :func:`batch_applies`, broadcasts its eta-free terms too)."""
    coords = np.asarray(aux, dtype=float)
    vals = {k: v[:, None] for k, v in aux_natural(resp.family, coords).items()}
    P, n = coords.shape[0], resp.y.size
    const = resp.family.loglik_constant(resp.y, resp.n_trials, **vals)
    return vals, np.broadcast_to(np.asarray(const, dtype=float), (P, n)), coords


def _rows(resp, eta, vals, row_const):
    """(prior-weighted log-density rows, W, r) at eta (P, n): one family call, as ``pirls_scalar``."""
    ll, d1, wo = resp.family.loglik_eta_score_weight(resp.y, eta, **vals)
    pw = resp.pw
    return pw * (row_const + ll), pw * wo, pw * d1


def batch_devgrad(resp, s, lam, beta, aux, u0, n_agq: int = 1, *, tol=1e-7, maxit=100, return_modes=False,
                  dev_only=False):
    """Laplace (``n_agq = 1``) or AGQ deviances (P,) and gradients (P, 1 + p + A) at P points, or None.

    Parameters
    ----------
    resp : pirls.Response
        The model's response (its auxiliary parameters at any value: each point sets its own).
    s : linalg.ReStructure
        One scalar term (:func:`batch_applies`).
    lam : ndarray (P,)
        The term's Lambda (its one entry) at each point.
    beta : ndarray (P, p)
    aux : ndarray (P, A)
        The family's auxiliary coordinates at each point.
    u0 : ndarray (P, J)
        Each point's warm start of the modes.
    n_agq : int
        1 for the Laplace approximation, else the nodes of adaptive Gauss-Hermite quadrature.
    return_modes : bool
        Also return the conditional modes (P, J) and their derivatives in the parameters
        (P, J, 1 + p + A) (the next batch's warm start, predicted to first order).
    dev_only : bool
        The Laplace deviances only (``n_agq`` 1): the gradients and mode derivatives are None.

    Returns
    -------
    (dev, grad) or (dev, grad, modes, mode derivatives) or None
        None wherever the sequential evaluation would leave the plain Newton iteration (see
        the module docstring): the caller then evaluates the points one at a time.
    """
    c, J = s.codes[0], s.J[0]
    x = s.Xr[0][:, 0]
    X = resp.X
    P, p = beta.shape
    lam = np.asarray(lam, dtype=float)
    lam2 = (lam * lam)[:, None]
    xx = x * x
    vals, row_const, coords = _stacked_aux(resp, aux)
    # the flat bin of (point, level): one bincount sums every point's levels in row order
    cc = (np.arange(P)[:, None] * J + c[None, :]).ravel()

    def gsum(v):
        return np.bincount(cc, weights=v.ravel(), minlength=P * J).reshape(P, J)

    u = np.array(u0, dtype=float)
    base = resp.offset + beta @ X.T
    eta = base + x * (u * lam[:, None])[:, c]
    lrows, W, r = _rows(resp, eta, vals, row_const)
    ll = lrows.sum(axis=1)
    pdev = -2.0 * ll + np.sum(u * u, axis=1)
    active = np.ones(P, dtype=bool)
    for _ in range(maxit):
        A = gsum(W * xx) * lam2 + 1.0
        if not (np.all(A[active] > 0.0) and np.all(np.isfinite(A[active]))):
            return None  # (the sequential run takes an IRLS step here)
        L = np.sqrt(A)
        gu = lam[:, None] * gsum(x * r) - u
        du = gu / L / L
        decrement = np.sum(gu * du, axis=1)
        step_size = np.abs(du).max(axis=1)
        small = (step_size < tol * np.maximum(1.0, np.abs(u).max(axis=1))) | (decrement < 1e-28)
        un = np.where(active[:, None], u + du, u)
        eta_n = base + x * (un * lam[:, None])[:, c]
        with np.errstate(over="ignore", invalid="ignore"):
            lrows_n, W_n, r_n = _rows(resp, eta_n, vals, row_const)
        ll_n = lrows_n.sum(axis=1)
        pdev_n = -2.0 * ll_n + np.sum(un * un, axis=1)
        full = active & ~small
        # a full step the sequential run would halve: leave it to that run
        if np.any(full & ~(np.isfinite(pdev_n) & (pdev_n <= pdev + 1e-10 * np.maximum(1.0, np.abs(pdev))))):
            return None
        if not (np.all(np.isfinite(W_n[active])) and np.all(np.isfinite(r_n[active]))):
            return None
        a2 = active[:, None]
        u, eta, lrows = un, np.where(a2, eta_n, eta), np.where(a2, lrows_n, lrows)
        W, r = np.where(a2, W_n, W), np.where(a2, r_n, r)
        ll, pdev = np.where(active, ll_n, ll), np.where(active, pdev_n, pdev)
        active = active & ~small
        if not np.any(active):
            break
    else:
        return None  # (not converged: the sequential run records the failure)
    # the Laplace log-determinant at the exact Hessian at the modes (as pirls_scalar's factor)
    C = gsum((W * x) * x)
    Af = C * lam2 + 1.0
    if not (np.all(Af > 0.0) and np.all(np.isfinite(Af))):
        return None  # (the sequential run falls back to IRLS weights and central differences)
    dev = -2.0 * ll + np.sum(u * u, axis=1) + 2.0 * np.sum(np.log(np.sqrt(Af)), axis=1)
    if dev_only and n_agq == 1:
        return (dev, None, u, None) if return_modes else (dev, None)
    # the row derivatives in the thresholds (or other parameters), to the coordinates per point
    fam = resp.family
    exact = fam.aux_eta_derivs(resp.y, eta, **vals)
    if exact is None:
        return None  # (no closed form: the sequential path's central differences)
    W_eta, l_v, r_v, W_v = exact
    Jc = aux_jacobian(fam, coords)  # (P, A, A)
    pw = resp.pw
    l_a, r_a, W_a = pw[:, None] * (np.stack((l_v, r_v, W_v)) @ Jc)  # each (P, n, A)
    dW = pw * W_eta
    if n_agq == 1:
        grad, du = _grad(resp, s, lam, u, W, r, dW, C, l_a, r_a, W_a)
        out = dev, grad
    else:
        du, T, Pn = _mode_derivs(resp, s, lam, u, W, r, dW, C, Af, r_a, W_a)
        out = _agq(resp, s, lam, u, eta, Af, vals, row_const, Jc, n_agq, du, T, Pn)
    if out is None or not return_modes:
        return out
    return out[0], out[1], u, du


def _grad(resp, s, lam, u, W, r, dW, C, l_a, r_a, W_a):
    """:func:`bayes_glmm.ml.agq._laplace_grad_scalar` on the (P, ...) arrays (dense level sums)."""
    c = s.codes[0]
    x = s.Xr[0][:, 0]
    X = resp.X
    p, na = X.shape[1], l_a.shape[2]
    P, n = W.shape
    G = _group_matrix(s)
    xx = x * x
    lamc = lam[:, None]
    A = 1.0 + lamc * lamc * C
    uc = u[:, c]
    xw = x * W
    B = np.empty((P, n, 2 + p + na))
    B[:, :, 0], B[:, :, 1], B[:, :, 2:2 + p] = xw * x * uc, x * r, xw[:, :, None] * X
    B[:, :, 2 + p:] = x[:, None] * r_a
    S = G @ B  # (P, J, 2 + p + na)
    rhs = np.empty(S.shape[:2] + (1 + p + na,))
    rhs[:, :, 0] = -lamc * S[:, :, 0] + S[:, :, 1]
    rhs[:, :, 1:1 + p] = -lamc[:, :, None] * S[:, :, 2:2 + p]
    rhs[:, :, 1 + p:] = lamc[:, :, None] * S[:, :, 2 + p:]
    du = rhs / A[:, :, None]
    Ac = A[:, c]
    wt = lamc * lamc * xx * dW / Ac
    m = G @ (wt * x)[:, :, None]  # (P, J, 1)
    T = np.empty((P, 1 + p + na))
    T[:, 0] = np.sum(wt * (x * uc), axis=1) + 2.0 * lam * np.sum(C / A, axis=1)
    T[:, 1:1 + p] = wt @ X
    T[:, 1 + p:] = ((lamc * lamc * (xx / Ac))[:, None, :] @ W_a)[:, 0, :]
    T += lamc * np.sum(m * du, axis=1)
    g = np.empty((P, 1 + p + na))
    g[:, 0] = np.sum(r * (x * uc), axis=1)
    g[:, 1:1 + p] = r @ X
    g[:, 1 + p:] = np.sum(l_a, axis=1)
    return -2.0 * g + T, du


def _mode_derivs(resp, s, lam, u, W, r, dW, C, Af, r_a, W_a):
    """:func:`bayes_glmm.ml.agq._mode_derivs_scalar`'s ``(du, T, P)`` on the (P, ...) arrays:
    (P, J, d) each (the node scale's derivative without its two unit axes)."""
    c = s.codes[0]
    x = s.Xr[0][:, 0]
    X = resp.X
    p, na = X.shape[1], r_a.shape[2]
    P, n = W.shape
    d = 1 + p + na
    G = _group_matrix(s)
    lamc = lam[:, None]
    D0 = np.zeros((P, n, d))
    D0[:, :, 0] = x * u[:, c]
    D0[:, :, 1:1 + p] = X
    Linv = 1.0 / np.sqrt(Af)
    Ainv = Linv * Linv
    xx = x * x
    S = G @ ((x * W)[:, :, None] * D0)  # (P, J, d)
    rhs = -lamc[:, :, None] * S
    rhs[:, :, 0] += (G @ (x * r).T).T  # (theta: Lambda is theta itself, batch_applies)
    rhs[:, :, 1 + p:] += lamc[:, :, None] * (G @ (x[:, None] * r_a))
    du = Ainv[:, :, None] * rhs
    Deta = D0 + x[:, None] * (lamc[:, :, None] * du)[:, c]
    dC = G @ ((dW * xx)[:, :, None] * Deta)
    dC[:, :, 1 + p:] += G @ (xx[:, None] * W_a)
    dA = (lamc * lamc)[:, :, None] * dC
    dA[:, :, 0] += 2.0 * C * lamc
    T = Ainv[:, :, None] * dA
    Pn = 0.5 * (Linv * Ainv)[:, :, None] * dA
    return du, T, Pn


def _agq(resp, s, lam, u, eta, Af, vals, row_const, Jc, n_agq, du, T, Pn):
    """:func:`bayes_glmm.ml.agq._agq_scalar` (its fused form) on the (P, ...) arrays:
    ``(deviances (P,), gradients (P, d))``."""
    c = s.codes[0]
    x = s.Xr[0][:, 0]
    X = resp.X
    p = X.shape[1]
    G = _group_matrix(s)
    fam = resp.family
    lamc = lam[:, None]
    L1 = np.sqrt(Af)
    Linv = 1.0 / L1
    Ash = x * (lamc * Linv)[:, c]  # (P, n): eta shift per unit z
    z, lw = gh_rule(n_agq, 1)
    zk = z[:, 0]
    eta_k = eta[:, :, None] + Ash[:, :, None] * zk  # (P, n, K)
    vals3 = {k: v[:, :, None] for k, v in vals.items()}  # (P, 1, 1): each point's over its rows and nodes
    y1, pw1 = resp.y[:, None], resp.pw[:, None]
    lle, rk, _ = fam.loglik_eta_score_weight(y1, eta_k, **vals3)
    ll, rk = pw1 * (row_const[:, :, None] + lle), pw1 * rk
    uu = u[:, :, None] + Linv[:, :, None] * zk  # (P, J, K)
    a = G @ ll - 0.5 * (uu * uu) + lw
    m = np.max(a, axis=2)
    ea = np.exp(a - m[:, :, None])
    tot = np.sum(ea, axis=2)
    logL = -0.5 * _LOG_2PI - np.log(L1) + m + np.log(tot)
    sz = G @ (rk * x[:, None])  # (P, J, K)
    eg = ea * (lamc[:, :, None] * sz - uu)
    g1, g2 = np.sum(eg, axis=2), eg @ zk
    su = np.sum(ea * sz * uu, axis=2)
    rho = np.sum(ea[:, c] * rk, axis=2)  # (P, n)
    acc = g1[:, :, None] * du - g2[:, :, None] * Pn
    acc[:, :, 0] += su
    acc[:, :, 1:1 + p] += G @ (X * rho[:, :, None])
    # the thresholds' (auxiliary coordinates') direct effect at fixed nodes, through each point's Jacobian
    exact = fam.aux_loglik_derivs(y1, eta_k, **vals3)
    if exact is None:
        return None
    exact = np.asarray(exact)  # (A, P, n, K); Jc (P, A, A): each point's coordinates' Jacobian
    # dl[j, p] = sum_k Jc[p, k, j] exact[k, p]: one batched matrix product (P, A, A) x (P, A, n K),
    # 2.5x faster than the einsum on wine's (15, 4, 72, 10)
    A_, P_, n_, K_ = exact.shape
    dl = pw1 * np.moveaxis(np.matmul(Jc.transpose(0, 2, 1), exact.transpose(1, 0, 2, 3).reshape(P_, A_, n_ * K_))
                           .reshape(P_, A_, n_, K_), 0, 1)
    acc[:, :, 1 + p:] += np.moveaxis(np.sum((G @ dl) * ea, axis=3), 0, 2)
    dlogL = -0.5 * T + acc / tot[:, :, None]
    return -2.0 * np.sum(logL, axis=1), -2.0 * np.sum(dlogL, axis=1)

"""Parameter layout (theta <-> Lambda), bounded minimization and finite-difference Hessians.

Where the deviance has an analytic gradient (single-term canonical GLMMs, see
:func:`bayes_glmm.ml.agq.devgrad`) L-BFGS-B uses it (``jac=True``) and Hessians are central
differences of the gradient (2 d gradient evaluations instead of 2 d^2 + 1 deviances).
Otherwise the optimizer uses *central* finite-difference gradients: one-sided differences
lose about half the digits, which shows up as ~1e-4 disagreements with lme4's estimates.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import optimize

from ..covariance import theta_lower, theta_start, theta_to_chol

__all__ = ["theta_layout", "lambdas_from_theta", "minimize_bounded", "precondition", "fd_hessian", "fd_gradient",
           "fd_hessian_from_grad", "restart_off_boundary"]


def theta_layout(terms):
    """Slices into theta per term, lower bounds and lme4's start (Lambda = I).

    Returns
    -------
    slices : list of slice
    lower : ndarray
    start : ndarray
    """
    slices, lower, start, pos = [], [], [], 0
    for t in terms:
        slices.append(slice(pos, pos + t.n_theta))
        lower.append(theta_lower(t.q, t.correlated))
        start.append(theta_start(t.q, t.correlated))
        pos += t.n_theta
    if not terms:
        return [], np.zeros(0), np.zeros(0)
    return slices, np.concatenate(lower), np.concatenate(start)


def lambdas_from_theta(theta, terms, slices) -> list:
    """Lambda_k (q_k, q_k) per term from the concatenated theta."""
    return [theta_to_chol(theta[sl], t.q, t.correlated) for t, sl in zip(terms, slices)]


def fd_gradient(fun, x, h=None):
    """Central-difference gradient; step relative to |x| (at least 1e-6 absolute)."""
    x = np.asarray(x, dtype=float)
    g = np.empty_like(x)
    for i in range(x.size):
        hi = h if h is not None else 1e-6 * max(1.0, abs(x[i]))
        e = np.zeros_like(x)
        e[i] = hi
        g[i] = (fun(x + e) - fun(x - e)) / (2.0 * hi)
    return g


def fd_hessian(fun, x, delta=1e-4):
    """Central-difference Hessian with a fixed step (lme4's ``deriv12`` uses delta = 1e-4).

    The deviance is evaluated off the parameter bounds too: a negative diagonal entry of
    Lambda still gives a positive-definite system, so no one-sided stencil is needed.
    """
    x = np.asarray(x, dtype=float)
    d = x.size
    f0 = fun(x)
    H = np.empty((d, d))
    fp = np.empty(d)
    fm = np.empty(d)
    for i in range(d):
        e = np.zeros(d)
        e[i] = delta
        fp[i], fm[i] = fun(x + e), fun(x - e)
        H[i, i] = (fp[i] - 2.0 * f0 + fm[i]) / delta ** 2
    for i in range(d):
        for j in range(i + 1, d):
            e = np.zeros(d)
            e[i] = delta
            e2 = np.zeros(d)
            e2[j] = delta
            v = (fun(x + e + e2) - fun(x + e - e2) - fun(x - e + e2) + fun(x - e - e2)) / (4.0 * delta ** 2)
            H[i, j] = H[j, i] = v
    return H


def fd_hessian_from_grad(fun_grad, x, delta=1e-4):
    """Hessian by central differences of an analytic gradient, symmetrized.

    ``fun_grad(x) -> (f, g)``.  The error is O(delta^2) from the third derivatives plus
    O(eps |g| / delta) rounding, far below what a vcov needs.
    """
    x = np.asarray(x, dtype=float)
    d = x.size
    H = np.empty((d, d))
    for i in range(d):
        e = np.zeros(d)
        e[i] = delta
        H[:, i] = (fun_grad(x + e)[1] - fun_grad(x - e)[1]) / (2.0 * delta)
    return 0.5 * (H + H.T)


class _CountedGrad:
    """Like :class:`_Counted` for ``fun(x) -> (f, g)``."""

    def __init__(self, fun):
        self.fun, self.n, self.best_x, self.best_f = fun, 0, None, np.inf

    def __call__(self, x):
        self.n += 1
        try:
            f, g = self.fun(np.asarray(x, dtype=float))
            f = float(f)
        except (FloatingPointError, np.linalg.LinAlgError):
            f, g = np.inf, None
        if not np.isfinite(f) or g is None or not np.all(np.isfinite(g)):
            # a huge value with a gradient pointing back towards x0 makes the line search back off
            return 1e300, np.zeros(np.size(x))
        if f < self.best_f:
            self.best_f, self.best_x = f, np.array(x, dtype=float)
        return f, np.asarray(g, dtype=float)


class _Counted:
    """Wraps an objective to count evaluations and keep the best point seen."""

    def __init__(self, fun):
        self.fun, self.n, self.best_x, self.best_f = fun, 0, None, np.inf

    def __call__(self, x):
        self.n += 1
        try:
            f = float(self.fun(np.asarray(x, dtype=float)))
        except (FloatingPointError, np.linalg.LinAlgError):
            f = np.inf
        if not np.isfinite(f):
            # L-BFGS-B's line search backs off from a huge finite value but not from inf/nan
            return 1e300
        if f < self.best_f:
            self.best_f, self.best_x = f, np.array(x, dtype=float)
        return f


def precondition(H, x0, lower):
    """Affine map ``x = x0 + T y`` making the quadratic model of ``H`` near-identity in y.

    Bounded coordinates (finite ``lower``; the diagonal of each Lambda) are only rescaled,
    so their bounds stay simple bounds in y; free coordinates (beta, off-diagonal theta)
    are whitened *conditionally* on them (``x_F = x0_F + R_F^{-1} y_F - H_FF^{-1} H_FB dx_B``).
    Returns None when H is not usable (not positive definite on the free block).
    """
    H = 0.5 * (np.asarray(H, dtype=float) + np.asarray(H, dtype=float).T)
    d = H.shape[0]
    B = np.flatnonzero(np.isfinite(lower))
    F = np.flatnonzero(~np.isfinite(lower))
    T = np.zeros((d, d))
    try:
        if F.size:
            HFF = H[np.ix_(F, F)]
            C = np.linalg.cholesky(HFF)  # HFF = C C'
            T[np.ix_(F, F)] = np.linalg.inv(C.T)
            G = np.linalg.solve(HFF, H[np.ix_(F, B)]) if B.size else np.zeros((F.size, 0))
            S = H[np.ix_(B, B)] - H[np.ix_(B, F)] @ G
        else:
            G = np.zeros((0, B.size))
            S = H[np.ix_(B, B)]
    except np.linalg.LinAlgError:
        return None
    sd = np.diag(S)
    if B.size and (np.any(~np.isfinite(sd)) or np.any(sd <= 1e-12 * max(1.0, np.max(np.abs(np.diag(H)))))):
        return None
    D = 1.0 / np.sqrt(sd) if B.size else np.zeros(0)
    T[B, B] = D
    if F.size and B.size:
        T[np.ix_(F, B)] = -G * D[None, :]
    return T


def minimize_bounded(fun, x0, lower, *, hess=None, maxiter=1000, ftol=1e-13, gtol=1e-6, label="deviance",
                     jac=False):
    """Minimize ``fun`` subject to ``x >= lower`` by L-BFGS-B with central-difference gradients.

    Parameters
    ----------
    fun : callable (x) -> float, or (x) -> (float, ndarray) when ``jac``
    x0, lower : ndarray
        Start and lower bounds (-inf for free parameters).
    hess : ndarray, optional
        A Hessian estimate near ``x0``; when given the problem is solved in the whitened
        coordinates of :func:`precondition`, which cuts L-BFGS-B iterations several-fold on
        the strongly correlated (theta, intercept) deviance surfaces of GLMMs.
    jac : bool
        ``fun`` returns the analytic gradient with the value (no finite differences).

    Returns
    -------
    dict
        ``x, fun, n_evals, grad_norm, converged, message``.
    """
    lower = np.asarray(lower, dtype=float)
    x0 = np.maximum(np.asarray(x0, dtype=float), lower)
    T = precondition(hess, x0, lower) if hess is not None else None
    if T is not None:
        lower_y = np.full(x0.size, -np.inf)
        Bi = np.isfinite(lower)
        lower_y[Bi] = (lower[Bi] - x0[Bi]) / np.diag(T)[Bi]
        if jac:
            def fy(y):
                f, g = fun(x0 + T @ y)
                return f, T.T @ g
        else:
            def fy(y):
                return fun(x0 + T @ y)
        res = minimize_bounded(fy, np.zeros(x0.size), lower_y, maxiter=maxiter, ftol=ftol, gtol=gtol,
                               label=label + " (preconditioned)", jac=jac)
        res["x"] = np.maximum(x0 + T @ res["x"], lower)
        return res
    bounds = [(None if not np.isfinite(lo) else lo, None) for lo in lower]
    if jac:
        return _minimize_with_grad(_CountedGrad(fun), x0, lower, bounds, maxiter, ftol, gtol, label)
    cf = _Counted(fun)

    def jac(x):
        # central differences, one-sided only where a bound is active
        g = np.empty_like(x)
        f0 = None
        for i in range(x.size):
            h = 1e-6 * max(1.0, abs(x[i]))
            e = np.zeros_like(x)
            e[i] = h
            if x[i] - h >= lower[i]:
                g[i] = (cf(x + e) - cf(x - e)) / (2 * h)
            else:
                if f0 is None:
                    f0 = cf(x)
                g[i] = (cf(x + e) - f0) / h
        return g

    res = optimize.minimize(cf, x0, jac=jac, method="L-BFGS-B", bounds=bounds,
                            options={"maxiter": maxiter, "ftol": ftol, "gtol": gtol, "maxcor": 20})
    x = res.x
    if cf.best_x is not None and cf.best_f < res.fun - 1e-9:
        x = cf.best_x  # the line search can end on a worse point than one it visited
    g = res.jac if res.jac is not None else jac(x)
    # projected gradient: components pushing into an active bound do not count
    pg = np.where((x <= lower + 1e-10) & (g > 0), 0.0, g)
    gnorm = float(np.max(np.abs(pg))) if pg.size else 0.0
    msg = str(res.message)
    converged = bool(res.success) or gnorm < 1e-3
    return {"x": np.asarray(x, dtype=float), "fun": float(cf(x)), "n_evals": cf.n,
            "grad_norm": gnorm, "converged": converged, "message": f"{label}: {msg}"}


def _minimize_with_grad(cf, x0, lower, bounds, maxiter, ftol, gtol, label):
    res = optimize.minimize(cf, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                            options={"maxiter": maxiter, "ftol": ftol, "gtol": gtol, "maxcor": 20})
    x = res.x
    if cf.best_x is not None and cf.best_f < res.fun - 1e-9:
        x = cf.best_x
    f, g = cf(x)
    pg = np.where((x <= lower + 1e-10) & (g > 0), 0.0, g)
    gnorm = float(np.max(np.abs(pg))) if pg.size else 0.0
    converged = bool(res.success) or gnorm < 1e-3
    return {"x": np.asarray(x, dtype=float), "fun": float(f), "n_evals": cf.n,
            "grad_norm": gnorm, "converged": converged, "message": f"{label}: {res.message}"}


def restart_off_boundary(fun, opt, lower, *, step=0.1, tol=1e-4, hess=None, maxiter=1000, jac=False,
                         label="deviance"):
    """Re-optimize from a point moved off the bounds where ``opt`` ended on them.

    At a variance parameter's bound (a diagonal element of Lambda equal to 0) the deviance
    is an even function of that parameter, so its gradient there is 0 and a gradient-based
    optimizer that reaches the bound never leaves it, even when the deviance decreases a
    little further in (lme4's derivative-free bobyqa probes off the bound).  Every bounded
    coordinate within ``tol`` of its bound is set to ``bound + step`` and the problem is
    solved again; the new optimum is kept only if its value is lower.

    Returns
    -------
    (dict, dict or None)
        The better optimum (``n_evals`` includes the restart) and a record
        ``{"at": indices, "start": x, "fun_before": ..., "fun_after": ..., "accepted": bool}``,
        or None when no coordinate was at its bound.
    """
    lower = np.asarray(lower, dtype=float)
    x = np.asarray(opt["x"], dtype=float)
    at = np.flatnonzero(np.isfinite(lower) & (x <= lower + tol))
    if not at.size:
        return opt, None
    x1 = x.copy()
    x1[at] = lower[at] + step
    opt2 = minimize_bounded(fun, x1, lower, hess=hess, maxiter=maxiter, jac=jac,
                            label=label + " (restart off the boundary)")
    f0 = float(opt["fun"])
    accepted = bool(np.isfinite(opt2["fun"]) and opt2["fun"] < f0 - 1e-9 * max(1.0, abs(f0)))
    rec = {"at": at, "start": x1, "fun_before": f0, "fun_after": float(opt2["fun"]), "accepted": accepted}
    best = dict(opt2 if accepted else opt)
    best["n_evals"] = opt["n_evals"] + opt2["n_evals"]
    if accepted:
        best["message"] = opt["message"] + "; " + opt2["message"]
    return best, rec


def warn_nonconvergence(opt: dict, what: str) -> None:
    """UserWarning with remedies when the optimizer did not converge."""
    if not opt.get("converged", True) or not opt.get("hessian_pd", True):
        reason = "did not converge" if not opt.get("converged", True) else "ended at a non-positive-definite Hessian"
        warnings.warn(
            f"{what} optimizer {reason} (max |gradient| = {opt.get('grad_norm', np.nan):.3g}; "
            f"{'; '.join(opt.get('messages', []))}). Try rescaling/centering continuous covariates, "
            f"simplifying the random-effects structure (e.g. (x || g) or dropping a slope), "
            f"or n_agq=1 if an AGQ fit.", UserWarning, stacklevel=3)

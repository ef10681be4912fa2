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

from ..spec.validate import user_stacklevel

__all__ = ["saturated_correlations", "CORR_SATURATED", "rank_one_faces", "solve_with_boundary", "resolve_n_starts", "theta_layout", "lambdas_from_theta", "minimize_bounded", "precondition", "fd_hessian", "fd_gradient",
           "fd_hessian_from_grad", "fd_hessian_pd", "restart_off_boundary", "check_convergence", "optimize_checked",
           "multistart_points", "report_starts", "newton_polish", "new_optinfo", "theta_scales", "multimodal_prone"]

#: max |projected gradient| below which a point counts as stationary when no Hessian is at hand
GRAD_TOL = 1e-3
#: Newton decrement g' H^{-1} g (deviance units; the predicted deviance decrease of a Newton
#: step is half of it) below which a point with a positive-definite Hessian is an optimum
DECREMENT_TOL = 1e-4
#: a bounded coordinate this close to its bound counts as on the boundary (lme4's
#: isSingular tolerance on Lambda's diagonal)
BOUND_TOL = 1e-4
#: starts or restarts whose log-likelihoods differ by more than this disagree
LOGLIK_DISAGREE = 1e-3


def theta_layout(terms):
    """Slices into theta per term, lower bounds and the start (Lambda = I), each from the
    term's covariance structure (:attr:`RandomTerm.cov <bayes_glmm.spec.model_spec.RandomTerm>`).

    Returns
    -------
    slices : list of slice
    lower : ndarray
    start : ndarray
    """
    slices, lower, start, pos = [], [], [], 0
    for t in terms:
        slices.append(slice(pos, pos + t.n_theta))
        lower.append(t.cov.theta_lower(t.q))
        start.append(t.cov.theta_start(t.q))
        pos += t.n_theta
    if not terms:
        return [], np.zeros(0), np.zeros(0)
    return slices, np.concatenate(lower), np.concatenate(start)


#: a structured term's correlation parameters are read at most this far out (|tanh y| = 1 - 7.6e-11):
#: beyond it the correlation matrix is singular to rounding and its Cholesky factor NaN
CORR_CLAMP = 12.0


def clamp_theta(theta, t) -> np.ndarray:
    """A term's theta with its structure's correlation parameters clipped to +-:data:`CORR_CLAMP`
    (unchanged for ``us``/``diag``, whose unbounded entries are not correlation parameters)."""
    theta = np.asarray(theta, dtype=float)
    if t.cov.linear:
        return theta
    free = ~np.isfinite(t.cov.theta_lower(t.q))
    return np.where(free, np.clip(theta, -CORR_CLAMP, CORR_CLAMP), theta)


def lambdas_from_theta(theta, terms, slices) -> list:
    """Lambda_k (q_k, q_k, lower triangular) per term from the concatenated theta, by the
    term's structure (:meth:`~bayes_glmm.covariance.base.CovStructure.lambda_`; correlation
    parameters clamped by :func:`clamp_theta`)."""
    return [t.cov.lambda_(clamp_theta(theta[sl], t), t.q) for t, sl in zip(terms, slices)]


#: |y| beyond which a structure's correlation parameter (rho = tanh(y), or a map of it) counts
#: as at its boundary: |tanh(y)| > 1 - 1.3e-5, where the deviance is flat in y
CORR_SATURATED = 6.0


def saturated_correlations(terms, slices, size: int):
    """``exclude(x, H)`` for :func:`optimize_checked`: the theta coordinates of a structured
    term's correlation parameters (``cs``, ``ar1``, ``toep``: unbounded, non-linear) that ran
    off to +-infinity, i.e. a correlation at its boundary (+-1, or cs's -1/(q-1)).

    There the deviance is flat in the parameter and its Hessian row is 0, like a variance at
    its bound of 0; the convergence check leaves them out as it leaves out active bounds.
    ``size`` is the length of the optimizer's x (theta first).  Returns None when the model
    has no such parameters.
    """
    idx = []
    for t, sl in zip(terms, slices):
        if t.cov.linear:
            continue
        lo = t.cov.theta_lower(t.q)
        idx.extend(sl.start + np.flatnonzero(~np.isfinite(lo)))
    if not idx:
        return None
    idx = np.asarray(idx, dtype=int)

    def exclude(x, H=None):
        out = np.zeros(size, dtype=bool)
        out[idx] = np.abs(np.asarray(x, dtype=float)[idx]) > CORR_SATURATED
        return out

    return exclude


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


def fd_hessian(fun, x, delta=1e-4, *, return_grad=False):
    """Central-difference Hessian with a fixed step (lme4's ``deriv12`` uses delta = 1e-4).

    The deviance is evaluated off the parameter bounds too: a negative diagonal entry of
    Lambda still gives a positive-definite system, so no one-sided stencil is needed.
    With ``return_grad`` also the central-difference gradient ``(f(x+d) - f(x-d)) / 2d``
    from the same evaluations (no extra cost): ``(H, g)``.
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
    if return_grad:
        return H, (fp - fm) / (2.0 * delta)
    return H


def fd_hessian_from_grad(fun_grad, x, delta=1e-4, *, central=True):
    """Hessian by central differences of an analytic gradient, symmetrized.

    ``fun_grad(x) -> (f, g)``.  The error is O(delta^2) from the third derivatives plus
    O(eps |g| / delta) rounding, far below what a vcov needs.  ``central=False`` takes
    forward differences from ``g(x)`` instead: d + 1 gradient evaluations instead of 2 d,
    at an O(delta) error (relative ~1e-4 at the default step): enough to whiten an
    optimizer, not for standard errors.
    """
    x = np.asarray(x, dtype=float)
    d = x.size
    H = np.empty((d, d))
    g0 = None if central else np.asarray(fun_grad(x)[1], dtype=float)
    batch = getattr(fun_grad, "batch", None)
    if batch is not None:
        # the stencil's points as one batch where the model allows (bayes_glmm.ml.batch_scalar;
        # the same points, x +- delta e_i, and the same gradients); None: one at a time below
        steps = delta * np.eye(d)
        G = batch(np.concatenate((x + steps, x - steps)) if central else x + steps)
        if G is not None:
            H[:] = ((G[:d] - G[d:]) / (2.0 * delta) if central else (G - g0) / delta).T
            return 0.5 * (H + H.T)
    for i in range(d):
        e = np.zeros(d)
        e[i] = delta
        if central:
            H[:, i] = (fun_grad(x + e)[1] - fun_grad(x - e)[1]) / (2.0 * delta)
        else:
            H[:, i] = (fun_grad(x + e)[1] - g0) / delta
    return 0.5 * (H + H.T)


def fd_hessian_pd(fun_grad, x, deltas=(1e-4, 1e-3, 1e-2), *, central=True):
    """:func:`fd_hessian_from_grad` at the first step in ``deltas`` that gives a positive-definite
    Hessian (the first one computed otherwise); ``central`` as there.

    The gradient of a Laplace deviance carries rounding noise that grows with the
    curvature of the conditional modes (Poisson counts of 1e12: ~0.1 in theta's gradient,
    whose own curvature is ~1e3), so 1e-4 central differences can be mostly noise and make
    a true optimum look indefinite; a larger step trades that for a truncation error of
    O(delta^2).  Returns ``(H, n_gradient_evaluations)``.
    """
    n = 0
    first = None
    for d in deltas:
        try:
            H = fd_hessian_from_grad(fun_grad, x, delta=d, central=central)
        except (FloatingPointError, np.linalg.LinAlgError):
            if first is None and d == deltas[0]:
                raise  # the standard step itself fails: as fd_hessian_from_grad would
            continue  # a wider stencil reached a point where the modes fail: keep the first
        n += 2 * np.size(x) if central else np.size(x) + 1
        first = H if first is None else first
        try:
            if np.all(np.isfinite(H)):
                np.linalg.cholesky(H)
                return H, n
        except np.linalg.LinAlgError:
            pass
    return first, n


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
                     jac=False, scale=None):
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
    scale : ndarray, optional
        Without ``hess``: solve in ``x = x0 + diag(scale) y`` (a diagonal rescaling, e.g. by
        the fixed effects' standard errors when their curvature dwarfs theta's).

    Returns
    -------
    dict
        ``x, fun, n_evals, grad_norm, converged, message``.
    """
    lower = np.asarray(lower, dtype=float)
    x0 = np.maximum(np.asarray(x0, dtype=float), lower)
    T = precondition(hess, x0, lower) if hess is not None else None
    if T is None and scale is not None:
        T = np.diag(np.asarray(scale, dtype=float))
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
    # L-BFGS-B's "success" includes its relative-reduction stop, which it also takes when it
    # stalls (noisy or badly scaled objective) far from a stationary point: not evidence of
    # convergence.  This is a first, gradient-only verdict; :func:`check_convergence`
    # gives the final one with the Hessian.
    converged = gnorm < GRAD_TOL
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
    converged = gnorm < GRAD_TOL
    return {"x": np.asarray(x, dtype=float), "fun": float(f), "n_evals": cf.n,
            "grad_norm": gnorm, "converged": converged, "message": f"{label}: {res.message}"}


def rank_one_faces(x, terms, slices, *, tol: float = 1e-4, corr: float = 0.95) -> list:
    """Starts on the *other* faces of a singular correlated term's boundary.

    A correlated term can be singular in two ways that the theta layout does not treat
    alike: a coefficient's variance at 0 (its diagonal of Lambda at 0), or a correlation of
    +-1 with another coefficient (a *later* diagonal at 0).  From an optimum with an early
    diagonal at 0, a gradient method never reaches the second kind, which can be far better
    (the randomized agreement test found 0.3-1.4 log-likelihood units).  For each such
    coefficient i this returns two starts: a small variance for i (0.1 on the linear
    predictor's scale) correlated +-``corr`` with the term's largest-variance coefficient.
    Only unstructured terms have such faces: a structured term's SDs and correlations are
    separate coordinates (an SD at 0 does not fix a correlation).
    """
    from ..covariance.unstructured import UNSTRUCTURED

    x = np.asarray(x, dtype=float)
    out = []
    for t, sl in zip(terms, slices):
        if t.cov is not UNSTRUCTURED or t.q < 2:
            continue
        L = t.cov.lambda_(x[sl], t.q)
        cov = L @ L.T
        rms = np.sqrt(np.mean(np.asarray(t.Xr) ** 2, axis=0))
        for i in range(t.q - 1):
            if abs(L[i, i]) >= tol:
                continue
            var = np.diag(cov).copy()
            var[i] = -np.inf
            j = int(np.argmax(var))
            if cov[j, j] <= tol ** 2:
                continue
            d = 0.1 / max(float(rms[i]), 1e-12)
            for sign in (1.0, -1.0):
                c = cov.copy()
                c[i, :] = c[:, i] = 0.0
                c[i, i] = d * d
                c[i, j] = c[j, i] = sign * corr * d * np.sqrt(cov[j, j])
                try:
                    Lc = np.linalg.cholesky(c + 1e-10 * np.eye(t.q))
                except np.linalg.LinAlgError:
                    continue
                y = x.copy()
                y[sl] = t.cov.theta_from_lambda(Lc)
                out.append(y)
    return out


def restart_off_boundary(fun, opt, lower, *, step=0.1, tol=1e-4, hess=None, maxiter=1000, jac=False,
                         label="deviance", faces=None):
    """Re-optimize from a point moved off the bounds where ``opt`` ended on them.

    At a variance parameter's bound (a diagonal element of Lambda equal to 0) the deviance
    is an even function of that parameter, so its gradient there is 0 and a gradient-based
    optimizer that reaches the bound never leaves it, even when the deviance decreases a
    little further in (lme4's derivative-free bobyqa probes off the bound).  Every bounded
    coordinate within ``tol`` of its bound is set to ``bound + step`` and the problem is
    solved again; the new optimum is kept only if its value is lower.  ``faces(x)`` (e.g.
    :func:`rank_one_faces`) may supply further starts on other faces of the boundary, each
    solved and kept when lower.

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
    f0 = float(opt["fun"])
    n_extra = 0
    # the full step first; where its restart comes back to the bound, shorter ones: a minimum
    # close to the bound behind a steep wall (a nested term's tiny SD with large counts: the
    # deviance rises ~100 per 0.05 of theta) is stepped over by the long probe, and an
    # analytic gradient is exactly 0 at the bound, so nothing else pulls the search inwards
    for shrink in (1.0, 0.1, 0.01):
        x1 = x.copy()
        x1[at] = lower[at] + shrink * (np.broadcast_to(np.asarray(step, dtype=float), x.shape)[at]
                                       if np.ndim(step) else step)
        opt2 = minimize_bounded(fun, x1, lower, hess=hess, maxiter=maxiter, jac=jac,
                                label=label + " (restart off the boundary)")
        n_extra += opt2["n_evals"]
        accepted = bool(np.isfinite(opt2["fun"]) and opt2["fun"] < f0 - 1e-9 * max(1.0, abs(f0)))
        if accepted:
            break
    rec = {"at": at, "start": x1, "fun_before": f0, "fun_after": float(opt2["fun"]), "accepted": accepted}
    best = dict(opt2 if accepted else opt)
    best["n_evals"] = opt["n_evals"] + n_extra
    if accepted:
        best["message"] = opt["message"] + "; " + opt2["message"]
    if faces is not None:
        for xs in faces(np.asarray(best["x"], dtype=float)):
            o3 = minimize_bounded(fun, np.maximum(xs, lower), lower, hess=hess, maxiter=maxiter, jac=jac,
                                  label=label + " (restart on another boundary face)")
            best["n_evals"] += o3["n_evals"]
            fb = float(best["fun"])
            if np.isfinite(o3["fun"]) and o3["fun"] < fb - 1e-6 * max(1.0, abs(fb)):
                n = best["n_evals"]
                best = dict(o3)
                best["n_evals"] = n
                rec["accepted"] = True
                rec["face"] = xs
                rec["fun_after"] = float(o3["fun"])
    return best, rec


def solve_with_boundary(fun, x0, lower, terms, slices, *, step, label, hess=None, maxiter=1000, jac=False):
    """One full minimization from ``x0``: L-BFGS-B, then the restart off the bounds and on the
    other faces of a singular correlated term (:func:`restart_off_boundary`,
    :func:`rank_one_faces`); the restart record is kept as ``"boundary_restart"``.

    The deviance is even in a diagonal theta at 0, so a boundary optimum found by a gradient
    method must be probed off the bound before it is believed (LMM and GLMM fitters alike).
    """
    o = minimize_bounded(fun, x0, lower, hess=hess, maxiter=maxiter, label=label, jac=jac)
    o, rec = restart_off_boundary(fun, o, lower, hess=hess, maxiter=maxiter, jac=jac, label=label, step=step,
                                  faces=lambda xb: rank_one_faces(xb, terms, slices))
    o["boundary_restart"] = rec
    return o


def resolve_n_starts(spec, n_starts):
    """``(k, reason)``: the number of starting points, and why it was raised automatically
    (:func:`multimodal_prone`'s reason, or None when ``n_starts`` was given or not needed)."""
    auto = multimodal_prone(spec) if n_starts is None else None
    k = int(n_starts) if n_starts is not None else (AUTO_N_STARTS if auto else 1)
    if k < 1:
        raise ValueError(f"n_starts must be a positive integer; got {n_starts!r}")
    return k, auto


def warn_nonconvergence(opt: dict, what: str) -> None:
    """UserWarning with remedies when the optimizer did not converge."""
    if not opt.get("converged", True) or not opt.get("hessian_pd", True):
        reason = "did not converge" if not opt.get("converged", True) else "ended at a non-positive-definite Hessian"
        info = opt.get("optinfo") or {}
        extra = ""
        if info:
            extra = (f"; scaled criterion {info.get('criterion', '')} = {info.get('scaled_criterion', np.nan):.3g}"
                     f" after {info.get('n_restarts', 0)} restart(s)")
            if info.get("restart_logliks"):
                extra += " (logLik " + ", ".join(f"{v:.4f}" for v in info["restart_logliks"]) + ")"
        warnings.warn(
            f"{what} optimizer {reason} (max |gradient| = {opt.get('grad_norm', np.nan):.3g}{extra}; "
            f"{'; '.join(opt.get('messages', []))}). Try rescaling/centering continuous covariates, "
            f"simplifying the random-effects structure (e.g. (x || g) or dropping a slope), "
            f"or n_agq=1 if an AGQ fit.", UserWarning, stacklevel=user_stacklevel())


# ---------------------------------------------------------------------------------------
# Honest convergence: the verdict comes from the gradient and Hessian at the end, and a
# failed verdict triggers restarts before the fit is reported as not converged.

def check_convergence(x, g, H, lower, *, dec_tol=DECREMENT_TOL, grad_tol=GRAD_TOL, exclude=None) -> dict:
    """Judge a candidate optimum of a deviance by its projected gradient and Hessian.

    Coordinates within :data:`BOUND_TOL` of their bound with a gradient pointing into the
    bound are *active* (the gradient is a Lagrange multiplier there); all others are
    *free*.  With a Hessian the point is an optimum when the Hessian on the free
    coordinates is positive definite and the Newton decrement ``g_F' H_FF^{-1} g_F``
    (twice the deviance decrease a Newton step predicts; invariant to the scaling of the
    parameters, unlike max |g|) is below ``dec_tol``.  Without one, ``max |projected g|``
    below ``grad_tol`` decides.  ``exclude`` (boolean mask) marks coordinates whose optimum
    is at infinity (a separated fixed effect): they are left out like active bounds.

    Returns
    -------
    dict
        ``max_abs_grad``, ``scaled_criterion`` (the decrement, NaN without H),
        ``scaled_step`` (max |H_FF^{-1} g_F|, lme4's "scaled gradient"), ``hessian_pd``
        (None without H), ``n_active``, ``converged``, ``reason`` ("" when converged).
    """
    x = np.asarray(x, dtype=float)
    lower = np.asarray(lower, dtype=float)
    g = np.asarray(g, dtype=float) if g is not None else np.full(x.size, np.nan)
    at = np.isfinite(lower) & (x <= lower + BOUND_TOL)
    free = ~(at & (g >= 0))
    if exclude is not None:
        free &= ~np.asarray(exclude, dtype=bool)
    pg = np.where(free, g, 0.0)
    mag = float(np.max(np.abs(pg))) if pg.size else 0.0
    out = {"max_abs_grad": mag, "scaled_criterion": float("nan"), "scaled_step": float("nan"),
           "hessian_pd": None, "n_active": int(np.sum(~free)), "converged": False, "reason": ""}
    if not np.isfinite(mag):
        out["reason"] = "non-finite gradient"
        return out
    if H is None:
        out["converged"] = bool(mag < grad_tol)
        if not out["converged"]:
            out["reason"] = f"max |gradient| {mag:.3g} >= {grad_tol:g}"
        return out
    H = 0.5 * (np.asarray(H, dtype=float) + np.asarray(H, dtype=float).T)
    idx = np.flatnonzero(free)
    if idx.size == 0:
        out.update(hessian_pd=True, scaled_criterion=0.0, scaled_step=0.0, converged=True)
        return out
    HF, gF = H[np.ix_(idx, idx)], g[idx]
    try:
        if not np.all(np.isfinite(HF)):
            raise np.linalg.LinAlgError("non-finite Hessian")
        C = np.linalg.cholesky(HF)
    except np.linalg.LinAlgError:
        out["hessian_pd"] = False
        out["reason"] = "the Hessian is not positive definite on the free parameters"
        return out
    from scipy.linalg import solve_triangular

    w = solve_triangular(C, gF, lower=True)
    step = solve_triangular(C.T, w, lower=False)
    dec = float(w @ w)
    out.update(hessian_pd=True, scaled_criterion=dec, scaled_step=float(np.max(np.abs(step))))
    out["converged"] = bool(dec < dec_tol)
    if not out["converged"]:
        out["reason"] = f"Newton decrement g'H^-1 g = {dec:.3g} >= {dec_tol:g} (max |gradient| {mag:.3g})"
    return out


def restart_candidates(x, lower, *, default=None, seed=0):
    """Starting points to retry from when a fit fails :func:`check_convergence`.

    In this order: ``"boundary"`` (the bounded coordinates below 0.2, i.e. small relative
    SDs, set to their bound; the boundary-restart of :func:`restart_off_boundary` inside
    every solve then probes just off it), ``"default"`` (lme4's start, when given and
    different), ``"perturbed"`` (the point moved by ~20% of each coordinate, seeded).
    """
    x = np.asarray(x, dtype=float)
    lower = np.asarray(lower, dtype=float)
    out = []
    bnd = np.isfinite(lower)
    small = bnd & (x - lower < 0.2) & (x > lower)
    if np.any(small):
        y = x.copy()
        y[small] = lower[small]
        out.append(("boundary", y))
    if default is not None and np.max(np.abs(np.asarray(default, dtype=float) - x)) > 1e-3:
        out.append(("default", np.asarray(default, dtype=float).copy()))
    rng = np.random.default_rng(seed)
    y = x + 0.2 * np.maximum(np.abs(x), 0.1) * rng.standard_normal(x.size)
    y[bnd] = np.maximum(np.abs(y[bnd]), lower[bnd])  # variance parameters stay admissible
    out.append(("perturbed", y))
    return out


def newton_polish(fun, curvature, x, g, H, lower, check, *, max_iter: int = 8):
    """Damped Newton steps (step halving on ``fun``) from a point :func:`check_convergence`
    rejected while its Hessian is positive definite.

    L-BFGS-B can stop on its relative-reduction test where the objective's rounding noise
    defeats its line search (Poisson counts of 1e12: a deviance of 1e4 whose gradient in
    theta is noisy at ~1); Newton steps with the finite-difference Hessian still converge
    there.  Coordinates at an active bound or excluded by ``check`` stay fixed.

    Returns
    -------
    (x, f, g, H, chk, n_evals)
    """
    x = np.asarray(x, dtype=float).copy()
    lower = np.asarray(lower, dtype=float)
    f = float(fun(x))
    n = 1
    chk = check(x, g, H)
    for _ in range(max_iter):
        if chk["converged"] or H is None or g is None:
            break
        at = np.isfinite(lower) & (x <= lower + BOUND_TOL) & (np.asarray(g) >= 0)
        F = np.flatnonzero(~at)
        try:
            step = -np.linalg.solve(0.5 * (H + H.T)[np.ix_(F, F)], np.asarray(g)[F])
        except np.linalg.LinAlgError:
            break
        t, moved = 1.0, False
        for _h in range(20):
            xn = x.copy()
            xn[F] += t * step
            xn = np.maximum(xn, lower)
            try:
                fn = float(fun(xn))
            except (FloatingPointError, np.linalg.LinAlgError):
                fn = np.inf
            n += 1
            if np.isfinite(fn) and fn < f:
                moved = True
                break
            t *= 0.5
        if not moved:
            break
        x, f = xn, fn
        g, H, ne = curvature(x)
        n += ne
        chk = check(x, g, H)
    return x, f, g, H, chk, n


def optimize_checked(solve, curvature, opt, lower, candidates, *, max_restarts=3, exclude=None, fun=None):
    """Check ``opt`` and restart until an optimum passes :func:`check_convergence`.

    Parameters
    ----------
    solve : callable (x_start) -> opt dict
        A full minimization (boundary restart included) from ``x_start``.
    curvature : callable (x) -> (g, H or None, n_evals)
    opt : dict
        The first optimum (``x``, ``fun``, ``n_evals``, ...).
    candidates : callable (x) -> list of (name, x_start)
        Restart points (see :func:`restart_candidates`), asked for once, at the first optimum.
    exclude : callable (x, H) -> boolean mask or None, optional
        Coordinates to leave out of the check (see :func:`check_convergence`).
    fun : callable (x) -> float, optional
        The objective; when given, a rejected optimum with a positive-definite Hessian is
        first polished by :func:`newton_polish` before any restart.

    Returns
    -------
    (opt, g, H, check, restarts)
        The best optimum (``n_evals`` includes curvature and restarts), its gradient,
        Hessian and check, and one record per restart: ``{"start", "fun", "accepted"}``.
    """
    g, H, ne = curvature(opt["x"])
    opt = dict(opt)
    n_evals = opt["n_evals"] + ne
    def check(xc, gc, Hc):
        return check_convergence(xc, gc, Hc, lower, exclude=exclude(xc, Hc) if exclude is not None else None)

    chk = check(opt["x"], g, H)
    restarts = []

    def polish():
        nonlocal g, H, chk, n_evals
        if chk["converged"] or fun is None or not chk["hessian_pd"]:
            return
        xp, fp, gp, Hp, chkp, ne = newton_polish(fun, curvature, opt["x"], g, H, lower, check)
        n_evals += ne
        if fp <= float(opt["fun"]):
            opt.update(x=xp, fun=fp)
            g, H, chk = gp, Hp, chkp
            opt["message"] = str(opt.get("message", "")) + "; Newton polish"

    polish()
    if not chk["converged"]:
        for name, xs in candidates(opt["x"])[:max_restarts]:
            o2 = solve(xs)
            n_evals += o2["n_evals"]
            f0, f2 = float(opt["fun"]), float(o2["fun"])
            rec = {"start": name, "fun": f2, "accepted": False}
            restarts.append(rec)
            tol = 1e-9 * max(1.0, abs(f0))
            if np.isfinite(f2) and f2 <= f0 + tol:
                try:
                    g2, H2, ne2 = curvature(o2["x"])
                except (FloatingPointError, np.linalg.LinAlgError):
                    continue  # the conditional modes fail next to this restart's end: reject it
                n_evals += ne2
                chk2 = check(o2["x"], g2, H2)
                if f2 < f0 - tol or chk2["converged"]:
                    opt, g, H, chk = dict(o2), g2, H2, chk2
                    rec["accepted"] = True
            if chk["converged"]:
                break
        polish()
    opt["n_evals"] = n_evals
    return opt, g, H, chk, restarts


def theta_scales(terms) -> np.ndarray:
    """Per theta coordinate, 1 / rms of its coefficient's column (1 for the unbounded ones:
    off-diagonal entries of Lambda, correlation parameters).

    Lambda is relative to the covariate's units: theta = 1 on a slope of a covariate of
    mean 50 means an SD of 50 on the linear predictor.  Dividing starting values by the
    column's root mean square puts every start on the scale of the linear predictor.  A
    bounded coordinate is an SD shared by the coefficients ``sd_index`` maps to it (one
    for ``ar1``): their root mean square.
    """
    out = []
    for t in terms:
        Xr = np.asarray(t.Xr, dtype=float)
        rms = np.sqrt(np.mean(Xr * Xr, axis=0)) if Xr.shape[0] else np.ones(t.q)
        rms = np.where(rms > 1e-12, rms, 1.0)
        lo = t.cov.theta_lower(t.q)
        sc = np.ones(t.n_theta)
        bounded = np.flatnonzero(np.isfinite(lo))
        if bounded.size == t.q:
            sc[bounded] = 1.0 / rms
        else:  # fewer SDs than coefficients: each SD's coefficients together
            idx = t.cov.sd_index(t.q)
            sc[bounded] = [1.0 / np.sqrt(np.mean(rms[idx == k] ** 2)) for k in range(bounded.size)]
        out.append(sc)
    return np.concatenate(out) if out else np.zeros(0)


def multistart_points(x0, lower, n_theta, k, seed=0, scales=None):
    """``k - 1`` extra starting points for a multi-start search (deterministic in ``seed``).

    The covariance parameters are drawn afresh (each diagonal element of Lambda
    log-uniform on [0.05, 3] times its ``scales`` entry, see :func:`theta_scales`;
    off-diagonals 0); fixed effects and auxiliary parameters stay at ``x0``.  With several
    variance parameters the first extra starts are the extremes that separate the usual
    modes of confounded variance components: one parameter large (1.5) and the others
    small (0.05), in turn, from the last (a slope's) to the first.
    """
    x0 = np.asarray(x0, dtype=float)
    lower = np.asarray(lower, dtype=float)
    sc = np.ones(n_theta) if scales is None else np.asarray(scales, dtype=float)
    diag = np.flatnonzero(np.isfinite(lower[:n_theta]))
    rng = np.random.default_rng(seed)
    pts = []
    for j in range(max(0, int(k) - 1)):
        x = x0.copy()
        x[:n_theta] = np.where(np.isfinite(lower[:n_theta]), x[:n_theta], 0.0)
        if j < diag.size and diag.size > 1:
            x[diag] = 0.05
            x[diag[diag.size - 1 - j]] = 1.5
        else:
            x[diag] = np.exp(rng.uniform(np.log(0.05), np.log(3.0), diag.size))
        x[diag] *= sc[diag]
        pts.append(x)
    return pts


def report_starts(funs, best: int, what: str) -> dict:
    """Summarize a multi-start search; UserWarning when the starts found different optima.

    ``funs`` are the deviances (-2 loglik) the starts ended at.  Returns
    ``{"n_starts", "start_logliks", "multimodal", "alternative_loglik"}``.
    """
    ll = [-0.5 * float(f) for f in funs]
    out = {"n_starts": len(ll), "start_logliks": ll, "multimodal": False, "alternative_loglik": None}
    finite = [v for v in ll if np.isfinite(v)]
    if len(finite) > 1:
        alt = [v for i, v in enumerate(ll) if i != best and np.isfinite(v) and ll[best] - v > LOGLIK_DISAGREE]
        if alt:
            a = max(alt)
            out.update(multimodal=True, alternative_loglik=a)
            warnings.warn(
                f"{what}: the {len(ll)} starting points reached different optima: logLik {ll[best]:.4f} "
                f"(kept) and {', '.join(f'{v:.4f}' for v in sorted(set(round(v, 4) for v in alt), reverse=True))};"
                f" the likelihood is multimodal. The best is kept; try more starts (n_starts) to search further.",
                UserWarning, stacklevel=user_stacklevel())
    return out


def new_optinfo(chk: dict, *, n_evals: int, restarts, starts=None, optimizer="L-BFGS-B",
                messages=(), extra_warnings=()) -> dict:
    """The ``optinfo`` record every ML fit carries (see :attr:`MLResults.optinfo`)."""
    starts = starts or {"n_starts": 1, "start_logliks": [], "multimodal": False, "alternative_loglik": None}
    warn = list(extra_warnings)
    if not chk["converged"]:
        warn.insert(0, f"not converged: {chk['reason']}")
    if starts.get("multimodal"):
        warn.append(f"multimodal likelihood: another start reached logLik {starts['alternative_loglik']:.4f}")
    return {
        "optimizer": optimizer,
        "converged": bool(chk["converged"]),
        "code": 0 if chk["converged"] else 1,
        "max_abs_grad": float(chk["max_abs_grad"]),
        "scaled_criterion": float(chk["scaled_criterion"]),
        "scaled_step": float(chk["scaled_step"]),
        "criterion": "Newton decrement g'H^-1 g" if chk["hessian_pd"] is not None else "max |gradient|",
        "hessian_pd": chk["hessian_pd"],
        "n_active_bounds": int(chk["n_active"]),
        "n_evals": int(n_evals),
        "n_restarts": len(restarts),
        "restart_starts": [r["start"] for r in restarts],
        "restart_logliks": [-0.5 * float(r["fun"]) for r in restarts],
        "n_starts": int(starts["n_starts"]),
        "start_logliks": list(starts["start_logliks"]),
        "multimodal": bool(starts["multimodal"]),
        "warnings": warn,
        "messages": list(messages),
    }


#: starts used automatically where the likelihood is known to be multimodal-prone
AUTO_N_STARTS = 3


def multimodal_prone(spec):
    """Why the model's likelihood is prone to several local optima, or None.

    Two situations where a single start is known to miss the best optimum: uncorrelated
    vector terms ``(1 + x || g)`` with an off-centre covariate (|mean(x)| > sd(x): the
    intercept and slope variances are then nearly confounded, and the likelihood often has
    one mode for each), and vector-valued terms on small groups (fewer than 3 rows per
    level on average).
    """
    for t in spec.terms:
        if t.q < 2:
            continue
        Xr = np.asarray(t.Xr, dtype=float)
        if not t.correlated:
            for j in range(t.q):
                col = Xr[:, j]
                sd = float(np.std(col))
                if sd > 0 and abs(float(np.mean(col))) > sd:
                    return (f"uncorrelated term {t.name!r} with off-centre covariate {t.coef_names[j]!r} "
                            f"(|mean| {abs(float(np.mean(col))):.3g} > sd {sd:.3g})")
        if Xr.shape[0] < 3 * t.n_levels:
            return (f"term {t.name!r} has {t.q} coefficients on small groups "
                    f"({Xr.shape[0] / t.n_levels:.2g} rows per level)")
    return None

"""Newton's method for a small one-term fit, each Hessian a central-difference stencil evaluated as one batch.

On small data a gradient evaluation of the Laplace (or AGQ) deviance is mostly NumPy call
overhead: ~0.6 ms on clmm's 72-row wine data, whatever the arithmetic.  The 2 d + 1 points of
a central-difference stencil evaluated together (:mod:`bayes_glmm.ml.batch_scalar`) cost
about 2.5 such evaluations, and give the gradient at the centre and the Hessian there.
L-BFGS-B needs ~18 sequential gradients from the default start to stage 1's tolerance and
then 2 d more for the standard errors' Hessian; Newton's method with that Hessian needs ~5
batches from the same start (quadratic convergence near the optimum), and its last Hessian is
the one the standard errors need.

The iteration stays inside the bounds (a step that would take a bounded coordinate, a
variance parameter, within a margin of its bound is shortened to halve the distance), halves
a step that raises the deviance or leaves the batch's domain, and gives up -- the caller then
runs its bounded quasi-Newton stages -- wherever Newton's method is the wrong tool: a
Hessian that is not positive definite, a coordinate at its bound, a batch that does not apply.
"""
from __future__ import annotations

import numpy as np

__all__ = ["newton_batched", "stencil"]


def stencil(x: np.ndarray, delta: float, central: bool = True) -> np.ndarray:
    """The points ``x, x + delta e_1, ..., x + delta e_d, x - delta e_1, ..., x - delta e_d``
    (2 d + 1, d); without ``central`` the first d + 1 of them."""
    x = np.asarray(x, dtype=float)
    steps = delta * np.eye(x.size)
    return np.concatenate((x[None, :], x + steps, x - steps) if central else (x[None, :], x + steps))


def _interior(x, lower, margin) -> bool:
    b = np.isfinite(lower)
    return bool(np.all(x[b] - lower[b] > margin))


def newton_batched(devgrads, x0, lower, *, dec_stop: float = 1e-6, delta: float = 1e-4, central: bool = True,
                   u0=None, max_iter: int = 30, max_halvings: int = 8, max_damped: int = 2,
                   margin: float = 1e-2) -> dict:
    """Minimize a deviance by Newton's method with batched central-difference Hessians.

    Parameters
    ----------
    devgrads : callable
        ``devgrads(points (P, d), u0 (P, J) or None) -> (deviances (P,), gradients (P, d),
        modes (P, J), mode derivatives (P, J, d))`` or None where the batch does not apply at
        these points.  Each trial point's modes start from the first-order prediction
        ``u + du step`` of the last accepted point's.
    x0 : ndarray (d,)
        Start, inside the bounds.
    lower : ndarray (d,)
        Lower bounds (``-inf`` where none).
    dec_stop : float
        Stop at the first point whose Newton decrement ``g' H^{-1} g`` (twice the deviance
        decrease a Newton step predicts) is below this.
    delta : float
        The stencil's step (the standard errors' Hessian uses 1e-4).
    central : bool
        Central differences (2 d + 1 points, O(delta^2) error); else forward ones from the
        centre (d + 1 points, O(delta): with delta 1e-5 about 1e-5 relative in the standard
        errors on clmm's wine data, for a batch of half the cost where each point is dear).
    u0 : ndarray (J,), optional
        Warm start of the modes at ``x0``.
    max_iter, max_halvings, max_damped : int
        Newton iterations; halvings of one step; consecutive steps shortened at a bound
        before giving up (an optimum at or near the bound is the bounded optimizer's).
    margin : float
        Distance from its bound below which a bounded coordinate ends the iteration.

    Returns
    -------
    dict
        ``converged`` (the decrement test passed), ``x`` (the last accepted point: where it
        passed, else the lowest deviance reached, a start for another method), ``fun``,
        ``g``, ``H`` (the Hessian at ``x``; None if not converged), ``u`` (modes at ``x``) and
        ``du`` (their derivatives in the parameters),
        ``decrement``, ``iters`` (batches accepted), ``n_evals`` (points evaluated), ``reason``.
    """
    x = np.asarray(x0, dtype=float).copy()
    lower = np.asarray(lower, dtype=float)
    d = x.size
    out = {"converged": False, "x": x, "fun": np.inf, "g": None, "H": None, "u": None,
           "decrement": np.inf, "iters": 0, "n_evals": 0, "reason": ""}
    if not _interior(x, lower, margin):
        out["reason"] = "start within the margin of a bound"
        return out
    u = None if u0 is None else np.asarray(u0, dtype=float)
    du = None
    f_cur = np.inf
    x_cur = None
    step = None
    damped = 0  # consecutive steps shortened at a bound
    for _ in range(max_iter):
        # evaluate the stencil at the trial point x; halve the step while it fails or rises
        for _h in range(max_halvings + 1):
            pts = stencil(x, delta, central)
            ut = u if du is None else u + du @ step  # (the modes at x predicted from x_cur)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                res = devgrads(pts, None if ut is None else np.tile(ut, (pts.shape[0], 1)))
            out["n_evals"] += pts.shape[0]
            ok = res is not None and np.all(np.isfinite(res[0])) and np.all(np.isfinite(res[1]))
            if ok and (x_cur is None or res[0][0] <= f_cur + 1e-9 * max(1.0, abs(f_cur))):
                break
            if x_cur is None:
                out["reason"] = "the batch does not apply at the start"
                return out
            step = 0.5 * step
            x = x_cur + step
        else:
            out["reason"] = "no decrease along the Newton step"
            return out
        dev, G, U, dU = res
        f, g = float(dev[0]), G[0]
        H = ((G[1:d + 1] - G[d + 1:]) / (2.0 * delta) if central else (G[1:d + 1] - G[0]) / delta).T
        H = 0.5 * (H + H.T)
        x_cur, f_cur, u, du = x.copy(), f, U[0], dU[0]
        out.update(x=x_cur, fun=f, g=g, u=u, du=du, iters=out["iters"] + 1)
        try:
            np.linalg.cholesky(H)
            step = -np.linalg.solve(H, g)
            pd = True
        except np.linalg.LinAlgError:
            # far from the optimum (a variance's curvature can be negative there): the step of
            # the Hessian with its eigenvalues' magnitudes, a descent direction that keeps
            # Newton's scaling (the line search below then guards it)
            pd = False
            lam, V = np.linalg.eigh(H)
            if not np.all(np.isfinite(lam)) or np.max(np.abs(lam)) == 0.0:
                out["reason"] = "Hessian not finite"
                return out
            lam = np.maximum(np.abs(lam), 1e-6 * np.max(np.abs(lam)))
            step = -(V @ ((V.T @ g) / lam))
        dec = float(-g @ step)
        out["decrement"] = dec
        if pd and dec < dec_stop:
            out.update(converged=True, H=H)
            return out
        # keep the bounded coordinates (variance parameters) off their bounds: at most halve
        # the distance in one step; a coordinate that ends within the margin stops Newton
        b = np.isfinite(lower) & (step < 0)
        room = float(np.min(0.5 * (x_cur[b] - lower[b]) / -step[b])) if np.any(b) else 1.0
        damped = damped + 1 if room < 1.0 else 0
        if damped > max_damped:
            out["reason"] = "a variance parameter heads to its bound"
            return out
        step = step * min(1.0, room)
        x = x_cur + step
        if not _interior(x, lower, margin):
            out["reason"] = "a variance parameter heads to its bound"
            return out
    out["reason"] = f"no convergence in {max_iter} iterations"
    return out

"""PIRLS over the modes of one scalar random-effects term, for the families with auxiliary parameters.

A model such as clmm's ``rating ~ temp + contact + (1 | judge)`` on 72 rows is fitted with
~45 Laplace evaluations, each a PIRLS run of two or three Newton steps whose cost is not the
arithmetic but the fixed overhead per step: the general :func:`bayes_glmm.ml.pirls.pirls`
builds the cross products and a factor object at every step and evaluates the family twice
per visited point (the log-density for the step control, then the derivatives for the next
step), though the ordinal family's derivatives compute the log-density anyway.

With one term with one coefficient per level (q = 1) the system ``Lambda'Z'WZLambda + I``
is diagonal, ``A_j = 1 + lam^2 sum_{i in j} W_i x_i^2``, and a Newton step is a division
per level.  :func:`pirls_scalar` runs the same iteration as ``pirls(joint=False)`` -- the
same steps, step halving, convergence test and final exact-Hessian factor, hence the same
modes -- with those vectors instead of the factor objects and one
:meth:`~bayes_glmm.families.base.Family.loglik_eta_score_weight` per visited point.
:func:`pirls_fast` dispatches to it where it applies and to ``pirls`` elsewhere.
"""
from __future__ import annotations

import math

import numpy as np

from .factor import ReFactor
from .pirls import PirlsResult, _has_aux, loglik_and_mu, pirls, safe_weights, working


def scalar_applies(resp, s, joint: bool = False) -> bool:
    """True where :func:`pirls_scalar` runs the iteration: modes only (not ``joint``), one
    random-effects term with one coefficient, a family with auxiliary parameters set and no
    zero inflation."""
    return (not joint and len(s.J) == 1 and s.q[0] == 1 and resp.general and resp.X_zi is None
            and _has_aux(resp))


def pirls_fast(resp, s, lambdas, beta, u0=None, *, joint=False, **kw) -> PirlsResult:
    """:func:`pirls_scalar` where :func:`scalar_applies`, else :func:`bayes_glmm.ml.pirls.pirls`
    (same arguments; ``precond`` is only used by the latter)."""
    if scalar_applies(resp, s, joint):
        kw.pop("precond", None)
        return pirls_scalar(resp, s, lambdas, beta, u0, **kw)
    return pirls(resp, s, lambdas, beta, u0, joint=joint, **kw)


def _rows_at(resp, eta, fused: bool):
    """(prior-weighted log-density rows, W, r) at eta: one family call where ``fused``."""
    if fused:
        fam = resp.family
        ll, d1, wo = fam.loglik_eta_score_weight(resp.y, eta, **resp.aux_vals)
        pw = resp.pw
        return pw * (resp.row_const + ll), pw * wo, pw * d1
    lrows = loglik_and_mu(resp, eta)[0]
    W, r = working(resp, eta)
    return lrows, W, r


def _positive(A) -> bool:
    """True when every entry of ``A`` is finite and > 0 (two reductions: a NaN fails both
    tests; ``np.all(np.isfinite(A))`` and ``np.any(A <= 0)`` cost four calls each step)."""
    return bool(A.min() > 0.0) and math.isfinite(A.max())


def _scalar_factor(s, W, x, c, J, lam) -> ReFactor:
    """:func:`bayes_glmm.ml.linalg.factorize` of one scalar term at the weights W, built from
    its diagonal directly (the same operations: ``sum_{i in j} (W_i x_i) x_i lam^2 + 1``)."""
    A = np.bincount(c, weights=(W * x) * x, minlength=J) * (lam ** 2) + 1.0
    if not _positive(A):
        raise FloatingPointError("random-effects system is not positive definite (non-finite weights?)")
    L1 = np.sqrt(A).reshape(J, 1, 1)
    return ReFactor(s, L1, np.zeros((J, 1, 0)), np.zeros((0, 0)), 2.0 * float(np.sum(np.log(L1[:, :, 0]))))


def pirls_scalar(resp, s, lambdas, beta, u0=None, *, tol=1e-7, maxit=100, max_halve=30) -> PirlsResult:
    """Conditional modes of u at fixed beta for one scalar term (see the module docstring).

    Parameters and result as :func:`bayes_glmm.ml.pirls.pirls` with ``joint=False``; only
    where :func:`scalar_applies`.
    """
    c, J = s.codes[0], s.J[0]
    x = s.Xr[0][:, 0]
    lam = float(lambdas[0][0, 0])
    lam2 = lam ** 2
    xx = x * x
    # the fused family call needs the eta-free constants of the rows (set by with_aux) and
    # no trials; otherwise the two separate calls (the same values)
    fused = resp.row_const is not None and not resp.family.needs_trials
    beta = np.array(beta, dtype=float)
    u = np.zeros(J) if u0 is None else np.array(u0, dtype=float)
    base = resp.offset + resp.X @ beta
    eta = base + x * (u * lam)[c]
    lrows, W, r = _rows_at(resp, eta, fused)
    ll = float(lrows.sum())
    pdev = -2.0 * ll + float(u @ u)
    halvings = 0
    converged = False
    # (scalar reductions as array methods and math.isfinite: the loop's cost at small n is the
    # number of NumPy calls, not their length; the same values as np.max / np.sum)
    for it in range(1, maxit + 1):
        A = np.bincount(c, weights=W * xx, minlength=J) * lam2 + 1.0
        if not _positive(A):
            # Newton system indefinite here: an IRLS step instead (as pirls)
            W = safe_weights(resp, eta)
            A = np.bincount(c, weights=W * xx, minlength=J) * lam2 + 1.0
            if not _positive(A):
                raise FloatingPointError("random-effects system is not positive definite (non-finite weights?)")
        L = np.sqrt(A)
        gu = lam * np.bincount(c, weights=x * r, minlength=J) - u
        du = gu / L / L
        decrement = float(gu @ du)
        step_size = float(np.abs(du).max()) if du.size else 0.0
        if step_size < tol * max(1.0, float(np.abs(u).max()) if u.size else 1.0) or decrement < 1e-28:
            # inside the quadratic region: the full step, as pirls
            u = u + du
            eta = base + x * (u * lam)[c]
            lrows, W, r = _rows_at(resp, eta, fused)
            ll = float(lrows.sum())
            converged = True
            break
        step = 1.0
        for _ in range(max_halve):
            un = u + step * du
            eta_n = base + x * (un * lam)[c]
            with np.errstate(over="ignore", invalid="ignore"):
                lrows, W_n, r_n = _rows_at(resp, eta_n, fused)
                ll_n = float(lrows.sum())
            pdev_n = -2.0 * ll_n + float(un @ un)
            if math.isfinite(pdev_n) and pdev_n <= pdev + 1e-10 * max(1.0, abs(pdev)):
                break
            step *= 0.5
            halvings += 1
        else:
            converged = decrement < 1e-6 * max(1.0, abs(pdev))
            W, r = working(resp, eta)
            break
        u, eta, ll, pdev = un, eta_n, ll_n, pdev_n
        if not (np.isfinite(W_n).all() and np.isfinite(r_n).all()):
            W_n, r_n = working(resp, eta)  # outside the errstate: as pirls evaluates them
        W, r = W_n, r_n
    # the Laplace log-determinant at the exact Hessian at the mode (W, r are at eta here)
    try:
        F = _scalar_factor(s, W, x, c, J, lam)
        exact = True
    except FloatingPointError:
        W = safe_weights(resp, eta)
        F = _scalar_factor(s, W, x, c, J, lam)
        exact = False
    return PirlsResult(u=u, beta=beta, eta=eta, ll=ll, factor=F, W=W, iters=it, halvings=halvings,
                       converged=converged, r=r, mu=None, exact_hessian=exact, ridged=0)

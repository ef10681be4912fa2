"""Preconditioned conjugate gradients for the PIRLS steps of large crossed designs.

Factorizing ``A = Lambda' Z' W Z Lambda + I`` costs O(m2^3) once the Schur complement of
crossed terms is dense (5,000 x 5,000 crossed levels: seconds), while a product with A is
O(n) and a solve with an *earlier* factor O(m2^2).  The PIRLS steps before the mode is reached
only need ``A^{-1} g`` to working precision, so they are solved by conjugate gradients
preconditioned with the factor of a nearby A (the previous deviance evaluation's); the one
factorization that must be exact, at the mode, stays (:func:`bayes_glmm.ml.pirls.pirls`).
"""
from __future__ import annotations

import numpy as np

__all__ = ["pcg"]


def pcg(matvec, b: np.ndarray, psolve, *, rtol: float = 1e-11, maxiter: int = 60):
    """Solve ``A x = b`` (A symmetric positive definite) by preconditioned conjugate gradients.

    Parameters
    ----------
    matvec : callable
        ``v -> A v``.
    b : ndarray (m,)
    psolve : callable
        ``r -> M^{-1} r`` for a preconditioner ``M`` close to A (an earlier factor's solve).
    rtol : float
        Stop when ``||b - A x|| <= rtol * ||b||``.
    maxiter : int

    Returns
    -------
    ndarray (m,) or None
        The solution, or None when it did not converge within ``maxiter`` iterations (the
        caller then factorizes).
    """
    x = np.zeros_like(b)
    r = b.copy()
    bn = float(np.linalg.norm(b))
    if bn == 0.0:
        return x
    z = psolve(r)
    p = z.copy()
    rz = float(r @ z)
    for _ in range(maxiter):
        Ap = matvec(p)
        pAp = float(p @ Ap)
        if not np.isfinite(pAp) or pAp <= 0.0:
            return None
        a = rz / pAp
        x += a * p
        r -= a * Ap
        if float(np.linalg.norm(r)) <= rtol * bn:
            return x
        z = psolve(r)
        rz_new = float(r @ z)
        p = z + (rz_new / rz) * p
        rz = rz_new
    return None

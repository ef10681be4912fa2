"""Internal scaling of a fixed-effects design, and the exact map back to the user's scale.

Counts or predictors of extreme magnitude (money in units of 1e12 next to a rate of 1e-13)
make the curvature of a likelihood or posterior differ by tens of orders of magnitude
between coordinates; gradient-based optimizers and NUTS's diagonal mass matrix then stall
long before an optimum.  Fitting on a design whose non-constant columns have unit standard
deviation removes that dependence on units, and because the map is linear it is undone
exactly afterwards.

With ``X_s = X M`` (the scaled design), ``X beta = X_s beta_s`` gives

    beta_user = M beta_s,        V_user = M V_s M'

for the coefficients and their covariance (a vcov or a posterior's draws alike).  Scaling
alone makes ``M`` diagonal (``1 / scale``).  Centering a column ``j`` additionally (only
when the design holds a constant column ``k`` to absorb the shift) gives
``X_s[:, j] = (x_j - c_j) / s_j`` and ``M[k, j] = -c_j / (s_j * v_k)`` where ``v_k`` is the
constant column's value.

All functions are pure: they take arrays and return new arrays.

>>> import numpy as np
>>> X = np.column_stack([np.ones(4), [1e12, 2e12, 3e12, 5e12]])
>>> sc = design_scaling(X)
>>> Xs = scale_design(X, sc)
>>> beta_s = np.array([1.0, 2.0])
>>> np.allclose(X @ unscale_coef(beta_s, sc), Xs @ beta_s)
True
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DesignScaling", "design_scaling", "scale_design", "unscale_coef", "unscale_cov",
           "unscale_draws", "scale_coef", "constant_columns", "column_sds", "needs_scaling", "SCALE_RANGE"]

#: column SDs inside this range are left alone (ML: :func:`needs_scaling`; NUTS:
#: ``bayes.density.column_scales``): within three orders of magnitude optimizers and a
#: diagonal mass matrix cope, and ordinary designs are fitted exactly as they are
SCALE_RANGE = (1e-3, 1e3)


@dataclass(frozen=True)
class DesignScaling:
    """The linear map between a design and its scaled version (``X_s = X @ M_inv``).

    Attributes
    ----------
    scale : ndarray (p,)
        Divisor of each column (1 for constant columns).
    center : ndarray (p,)
        Value subtracted from each column before dividing (0 where not centered).
    intercept : int or None
        Index of the constant column that absorbs the centering shift (None: no centering).
    M : ndarray (p, p)
        ``beta_user = M @ beta_s``.
    """

    scale: np.ndarray
    center: np.ndarray
    intercept: int | None
    M: np.ndarray

    @property
    def identity(self) -> bool:
        """True when the map changes nothing (all scales 1, no centering)."""
        return bool(np.all(self.scale == 1.0) and np.all(self.center == 0.0))


def constant_columns(X) -> np.ndarray:
    """Boolean mask of columns whose range is exactly zero.

    A column is constant only when all its values are equal: a tiny standard deviation
    (a quantity in the wrong units, SD 1e-13) is a real predictor that needs scaling, not
    an intercept.
    """
    X = np.asarray(X, dtype=float)
    if X.shape[0] == 0:
        return np.ones(X.shape[1], dtype=bool)
    return np.ptp(X, axis=0) == 0.0


def column_sds(X) -> np.ndarray:
    """Population SD of each column of ``X`` (n, p); 1 for a constant column.

    Each column is divided by its largest ``|value|`` first, so columns of 1e-200 do not
    underflow to SD 0 when squared, nor columns of 1e200 overflow.
    """
    X = np.asarray(X, dtype=float)
    X = X.reshape(len(X), -1)
    sd = np.ones(X.shape[1])
    var = ~constant_columns(X)
    if np.any(var):
        m = np.max(np.abs(X[:, var]), axis=0)
        sd[var] = m * np.std(X[:, var] / m, axis=0)
    return sd


def design_scaling(X, *, center: bool = False) -> DesignScaling:
    """The scaling of ``X``: each non-constant column divided by its standard deviation.

    Parameters
    ----------
    X : array (n, p)
        Fixed-effects design on the user's scale.
    center : bool
        Also subtract each non-constant column's mean, provided a constant (intercept)
        column exists to absorb the shift; without one centering would change the model's
        column space, so it is skipped.

    Returns
    -------
    DesignScaling
    """
    X = np.asarray(X, dtype=float)
    p = X.shape[1]
    const = constant_columns(X)
    scale = np.ones(p)
    cen = np.zeros(p)
    if X.shape[0]:
        sd = column_sds(X)
        ok = ~const & np.isfinite(sd) & (sd > 0)
        scale[ok] = sd[ok]
    intercept = None
    if center and X.shape[0]:
        nz_const = np.flatnonzero(const & (X[0] != 0.0)) if p else np.zeros(0, dtype=int)
        if nz_const.size:
            intercept = int(nz_const[0])
            cen[~const] = np.mean(X[:, ~const], axis=0)
    M = np.diag(1.0 / scale)
    if intercept is not None:
        v = float(X[0, intercept])
        M[intercept, :] -= cen / (scale * v)
        M[intercept, intercept] = 1.0 / scale[intercept]
    return DesignScaling(scale=scale, center=cen, intercept=intercept, M=M)


def scale_design(X, sc: DesignScaling) -> np.ndarray:
    """``X_s``: the design with each column centered and divided as ``sc`` says (a new array)."""
    X = np.asarray(X, dtype=float)
    return (X - sc.center[None, :]) / sc.scale[None, :]


def unscale_coef(beta_s, sc: DesignScaling) -> np.ndarray:
    """Coefficients on the user's scale: ``M @ beta_s``."""
    return sc.M @ np.asarray(beta_s, dtype=float)


def scale_coef(beta, sc: DesignScaling) -> np.ndarray:
    """Coefficients on the scaled design from the user's: the inverse of :func:`unscale_coef`."""
    return np.linalg.solve(sc.M, np.asarray(beta, dtype=float))


def unscale_cov(V_s, sc: DesignScaling) -> np.ndarray:
    """Covariance on the user's scale: ``M V_s M'`` (NaN entries stay NaN where they enter)."""
    V_s = np.asarray(V_s, dtype=float)
    return sc.M @ V_s @ sc.M.T


def unscale_draws(draws_s, sc: DesignScaling) -> np.ndarray:
    """Posterior draws ``(..., p)`` of the scaled coefficients mapped to the user's scale."""
    d = np.asarray(draws_s, dtype=float)
    return d @ sc.M.T


def needs_scaling(sc: DesignScaling, *, lo: float = SCALE_RANGE[0], hi: float = SCALE_RANGE[1]) -> bool:
    """True when some column's scale lies outside ``[lo, hi]``, or its mean is more than
    ``hi`` of its scales away from 0 (a predictor like a calendar year, 2015 +- 3).

    Callers that want results bit-identical to an unscaled fit for ordinary designs can
    skip the scaling when this is False: within three orders of magnitude the optimizers
    cope, and the map would only add rounding.
    """
    s = np.asarray(sc.scale, dtype=float)
    return bool(np.any((s < lo) | (s > hi)) or np.any(np.abs(sc.center) > hi * s))

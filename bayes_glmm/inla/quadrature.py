"""Adaptive quadrature over the hyperparameters, and draws from the resulting marginal.

The design is in standardized coordinates ``z`` (``psi = psi_hat + Lp z``, ``Lp`` the Cholesky
factor of the Gaussian approximation's covariance of psi at the joint mode): a product
Gauss-Hermite grid (probabilists' weight ``exp(-z^2 / 2)``) with ``n_points`` per dimension,
as the ``aghq`` package's adaptive quadrature; above :data:`MAX_GRID_DIM` dimensions, importance
sampling from a multivariate t proposal instead (a product grid grows as ``n_points^m``).
"""
from __future__ import annotations

import itertools

import numpy as np

__all__ = ["MAX_GRID_DIM", "DEFAULT_POINTS", "default_points", "design", "node_log_weights", "draw_z"]

#: largest number of hyperparameters integrated on a product grid
MAX_GRID_DIM = 4
#: default Gauss-Hermite points per hyperparameter, by their number (7 for one: the marginal's
#: skewness and tails; 4 for three (64 nodes: cubic interpolation), 3 for four (81))
DEFAULT_POINTS = {1: 7, 2: 5, 3: 4, 4: 3}
#: largest outward slope of the interpolated log density beyond the grid (in z units)
MAX_EDGE_SLOPE = 2.0
#: importance-sampling nodes per hyperparameter above MAX_GRID_DIM (at least IS_MIN)
IS_PER_DIM = 16
IS_MIN = 128
#: degrees of freedom of the importance-sampling proposal
IS_DF = 5.0


def default_points(m: int) -> int:
    """Default points per dimension for ``m`` hyperparameters."""
    return DEFAULT_POINTS.get(m, 3)


def design(m: int, n_points: int | None, rng):
    """Nodes ``z`` (K, m), their log quadrature weights (K,), and the kind.

    ``"grid"``: the product Gauss-Hermite rule, weights for ``int f(z) exp(-|z|^2/2) dz``
    (the factor ``exp(|z|^2 / 2)`` is put back in :func:`node_log_weights`); ``"is"``:
    ``n_points`` scrambled-Sobol points (default ``max(IS_MIN, IS_PER_DIM m)``; rounded up to a power of 2) of a t(IS_DF) proposal, with
    ``-log q(z)`` as weights.
    """
    if m == 0:
        return np.zeros((1, 0)), np.zeros(1), "grid"
    if m <= MAX_GRID_DIM:
        k = int(n_points or default_points(m))
        x, wts = np.polynomial.hermite_e.hermegauss(k)
        Z = np.array(list(itertools.product(x, repeat=m)))
        lw = np.array([float(np.sum(np.log(c))) for c in itertools.product(wts, repeat=m)])
        return Z, lw, "grid"
    n = int(n_points or max(IS_MIN, IS_PER_DIM * m))
    k = int(np.ceil(np.log2(max(n, 2))))  # Sobol points balance in powers of 2
    # scrambled Sobol points (uniform in m + 1 dimensions) mapped to the t proposal: normals
    # over the radial chi-square draw; balanced points give far smaller errors than iid draws
    from scipy.special import chdtri, ndtri
    from scipy.stats import qmc

    U = qmc.Sobol(d=m + 1, scramble=True, seed=rng).random_base2(k)
    U = np.clip(U, 1e-12, 1.0 - 1e-12)
    g = chdtri(IS_DF, U[:, m]) / IS_DF
    Z = ndtri(U[:, :m]) / np.sqrt(g)[:, None]
    Z[0] = 0.0  # the mode itself: the approximation is exact there for a Gaussian posterior
    logq = -0.5 * (IS_DF + m) * np.log1p(np.sum(Z * Z, axis=1) / IS_DF)  # up to a constant
    return Z, -logq, "is"


def node_log_weights(Z, lw, logpost, kind: str) -> np.ndarray:
    """Normalized log mixture weights of the nodes: ``log w_k + log p(psi_k | y) + |z_k|^2 / 2``
    (grid) or ``log p(psi_k | y) - log q(z_k)`` (importance sampling); NaN posts get -inf."""
    lp = np.where(np.isfinite(logpost), logpost, -np.inf)
    a = lp + lw + (0.5 * np.sum(Z * Z, axis=1) if kind == "grid" else 0.0)
    a = a - np.max(a)
    return a - np.log(np.sum(np.exp(a)))


def draw_z(Z, logpost, kind: str, n_points: int, n_draws: int, rng):
    """Draws of ``z`` from the approximate marginal and the node each one's conditionals come from.

    ``"grid"``: the log posterior relative to the Gaussian, ``r(z) = log p + |z|^2 / 2``, is
    interpolated on the grid (cubic splines from 4 points per dimension, else linear; held at
    linearly continued outside), and draws come from ``N(0, I) exp(r(z))`` by sampling-importance-
    resampling from a wider normal; each draw takes the node nearest to it.  ``"is"``: the
    nodes resampled by their weights (pass :func:`node_log_weights` as ``logpost``).
    """
    m = Z.shape[1]
    if m == 0:
        return np.zeros((n_draws, 0)), np.zeros(n_draws, dtype=np.intp)
    lp = np.where(np.isfinite(logpost), logpost, -np.inf)
    if kind != "grid":  # logpost: the nodes' importance log weights (node_log_weights)
        return _resample_nodes(Z, np.exp(lp - np.max(lp)), n_draws, rng)
    x = np.polynomial.hermite_e.hermegauss(n_points)[0]
    r = (lp + 0.5 * np.sum(Z * Z, axis=1)).reshape((n_points,) * m)
    finite = np.isfinite(r)
    r = np.where(finite, r - np.max(r[finite]), np.min(r[finite]) - 30.0)
    from scipy.interpolate import RegularGridInterpolator

    interp = RegularGridInterpolator((x,) * m, r, method="cubic" if n_points >= 4 else "linear")
    s = 1.3
    n_prop = max(20 * n_draws, 20000)
    P = rng.standard_normal((n_prop, m)) * s
    rz = _extrapolated(interp, P, x[0], x[-1]) if n_points >= 4 else interp(np.clip(P, x[0], x[-1]))
    logw = -0.5 * np.sum(P * P, axis=1) * (1.0 - 1.0 / (s * s)) + rz
    w = np.exp(logw - np.max(logw))
    pick = _systematic(w, n_draws, rng)
    zd = P[pick]
    nearest = np.argmin(np.abs(zd[:, :, None] - x[None, None, :]), axis=2)  # (S, m) index per dim
    node = np.ravel_multi_index(tuple(nearest.T), (n_points,) * m)
    return zd, node


def _extrapolated(interp, P, lo: float, hi: float) -> np.ndarray:
    """``interp`` inside the box ``[lo, hi]^m``, continued linearly outside along each coordinate
    (slope from the last 10% of the edge cell): a skewed marginal keeps its heavier tail beyond
    the outermost nodes, where holding the edge value would cut it to the Gaussian's."""
    C = np.clip(P, lo, hi)
    r = interp(C)
    h = 0.1 * (hi - lo) / 2.0
    for d in range(P.shape[1]):
        for edge, sgn in ((hi, 1.0), (lo, -1.0)):
            out = (P[:, d] - edge) * sgn > 0
            if not np.any(out):
                continue
            Ci = C[out].copy()
            Ci[:, d] = edge - sgn * h
            # outward derivative at the edge, bounded: a wild corner of the grid must not make
            # the tail heavier than a shifted Gaussian's
            slope = np.clip((r[out] - interp(Ci)) / h, -MAX_EDGE_SLOPE, MAX_EDGE_SLOPE)
            r[out] += slope * np.abs(P[out, d] - edge)
    return r


def _systematic(w, n, rng) -> np.ndarray:
    """Systematic resampling indices of ``n`` draws with weights ``w``."""
    c = np.cumsum(w / np.sum(w))
    c[-1] = 1.0
    idx = np.searchsorted(c, (rng.random() + np.arange(n)) / n)
    return rng.permutation(idx)


def _resample_nodes(Z, w, n_draws, rng):
    idx = _systematic(w, n_draws, rng)
    return Z[idx], idx

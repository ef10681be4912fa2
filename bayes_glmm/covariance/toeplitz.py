"""``toep(0 + factor(t) | g)``: heterogeneous SDs and one correlation per lag (glmmTMB's ``toep``).

The lag correlations ``r_1 .. r_{q-1}`` are parametrized by the partial autocorrelations
``phi_k = tanh(y_k)`` in (-1, 1) (the Durbin-Levinson recursion run backwards; Barndorff-Nielsen
& Schou 1973): every ``phi`` in (-1, 1)^(q-1) gives a positive definite Toeplitz matrix and
every such matrix has one, so the optimizer and the sampler work on an unconstrained space.
The maximum-likelihood fit is the same as with any other parametrization of the same set.
"""
from __future__ import annotations

import numpy as np

from .base import CovStructure
from .lkj import cholesky_rows

__all__ = ["Toeplitz", "TOEPLITZ", "pacf_to_acf", "acf_to_pacf"]


def pacf_to_acf(phi, s, ops=None):
    """Autocorrelations ``[1, r_1, ..., r_m]`` from partial autocorrelations ``phi`` (and
    ``s[k] = sqrt(1 - phi[k]^2)``), any math namespace (only + - *)."""
    r, a, v = [1.0], [], 1.0
    for k in range(len(phi)):
        p = phi[k]
        rk = p * v
        for j in range(k):
            rk = rk + a[j] * r[k - j]
        a = [a[j] - p * a[k - 1 - j] for j in range(k)] + [p]
        v = v * s[k] * s[k]
        r.append(rk)
    return r


def acf_to_pacf(r) -> np.ndarray:
    """Partial autocorrelations from ``[1, r_1, ..., r_m]`` (Durbin-Levinson; NumPy)."""
    r = np.asarray(r, dtype=float)
    m = r.size - 1
    phi, a, v = np.zeros(m), np.zeros(0), 1.0
    for k in range(m):
        p = (r[k + 1] - float(np.dot(a, r[k:0:-1]))) / v if v > 0 else 0.0
        p = float(np.clip(p, -1.0 + 1e-10, 1.0 - 1e-10))
        a = np.concatenate([a - p * a[::-1], [p]])
        v *= 1.0 - p * p
        phi[k] = p
    return phi


class Toeplitz(CovStructure):
    name = "toep"
    title = "toep"

    def n_corr(self, q: int) -> int:
        return q - 1

    def corr_rows(self, z, s, q: int, ops):
        if q == 1:
            return [[1.0]]
        r = pacf_to_acf([z[k] for k in range(q - 1)], [s[k] for k in range(q - 1)])
        R = [[r[abs(i - j)] for j in range(q)] for i in range(q)]
        return cholesky_rows(R, ops)

    def corr_values(self, R) -> np.ndarray:
        R = np.asarray(R, dtype=float)
        q = R.shape[0]
        return np.array([R[k, 0] for k in range(1, q)])

    def corr_names(self, coef_names) -> list:
        return [f"lag {k}" for k in range(1, len(coef_names))]

    def y_from_corr(self, R) -> np.ndarray:
        R = np.asarray(R, dtype=float)
        q = R.shape[0]
        r = [1.0] + [float(np.mean(np.diag(R, -k))) for k in range(1, q)]
        return np.arctanh(acf_to_pacf(r))

    def theta_names(self, coef_names) -> list:
        return [f"sd_{c}" for c in coef_names] + [f"pacf lag {k}" for k in range(1, len(coef_names))]


TOEPLITZ = Toeplitz()

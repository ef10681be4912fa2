"""``ar1(0 + factor(t) | g)``: one SD and correlation ``rho^|i - j|`` (glmmTMB's ``ar1``).

The q coefficients are the levels of an equally spaced time factor, in time order.  The
Cholesky factor of the AR(1) correlation matrix has a closed form (no square roots):
``C[i, 0] = rho^i`` and ``C[i, j] = rho^(i - j) sqrt(1 - rho^2)`` for ``1 <= j <= i``, with
``rho = tanh(y)`` and ``sqrt(1 - rho^2) = sech(y)``.
"""
from __future__ import annotations

import numpy as np

from .base import OneCorrelation

__all__ = ["AR1", "AR1_STRUCTURE"]


class AR1(OneCorrelation):
    name = "ar1"
    title = "ar1"

    def n_sd(self, q: int) -> int:
        return 1

    def sd_index(self, q: int) -> np.ndarray:
        return np.zeros(q, dtype=int)

    def corr_rows(self, z, s, q: int, ops):
        if q == 1:
            return [[1.0]]
        rho, sq = z[0], s[0]
        pw = [1.0]
        for _ in range(q - 1):
            pw.append(pw[-1] * rho)
        return [[pw[i] if j == 0 else (pw[i - j] * sq if j <= i else 0.0) for j in range(q)]
                for i in range(q)]

    def check(self, q: int, coef_names, term: str) -> None:
        if "(Intercept)" in coef_names:
            raise ValueError(f"random term {term!r}: ar1 needs one coefficient per time point and no "
                             f"intercept; write ar1(0 + factor(time) | group)")

    def y_from_corr(self, R) -> np.ndarray:
        R = np.asarray(R, dtype=float)
        q = R.shape[0]
        if q < 2:
            return np.zeros(0)
        rho = float(np.clip(np.mean(np.diag(R, -1)), -1.0 + 1e-10, 1.0 - 1e-10))
        return np.array([np.arctanh(rho)])

    def theta_names(self, coef_names) -> list:
        return ["sd"] + self.corr_names(coef_names)


AR1_STRUCTURE = AR1()

"""``cs(x | g)``: heterogeneous SDs and one common correlation (glmmTMB's ``cs``).

The correlation matrix has ``rho`` off the diagonal, positive definite for
``-1 / (q - 1) < rho < 1``; ``rho = lo + (1 - lo) (z + 1) / 2`` maps ``z = tanh(y)`` onto that
interval (``lo = -1 / (q - 1)``), and the default prior ``(z + 1) / 2 ~ Beta(eta, eta)``
(``Prior("LKJ", eta=...)`` on ``corr_<term>``) is uniform on it for eta = 1.
"""
from __future__ import annotations

import numpy as np

from .base import OneCorrelation
from .lkj import cholesky_rows

__all__ = ["CompoundSymmetry", "COMPOUND_SYMMETRY"]


class CompoundSymmetry(OneCorrelation):
    name = "cs"
    title = "cs"

    @staticmethod
    def _lo(q: int) -> float:
        return -1.0 / (q - 1)

    def rho(self, z, q: int):
        lo = self._lo(q)
        return lo + (1.0 - lo) * 0.5 * (z + 1.0)

    def corr_rows(self, z, s, q: int, ops):
        if q == 1:
            return [[1.0]]
        r = self.rho(z[0], q)
        R = [[1.0 if i == j else r for j in range(q)] for i in range(q)]
        return cholesky_rows(R, ops)

    def y_from_corr(self, R) -> np.ndarray:
        R = np.asarray(R, dtype=float)
        q = R.shape[0]
        if q < 2:
            return np.zeros(0)
        lo = self._lo(q)
        rho = float(np.mean(R[np.tril_indices(q, -1)]))
        u = np.clip((rho - lo) / (1.0 - lo), 1e-10, 1.0 - 1e-10)
        return np.array([np.arctanh(2.0 * u - 1.0)])

    def theta_names(self, coef_names) -> list:
        return [f"sd_{c}" for c in coef_names] + self.corr_names(coef_names)


COMPOUND_SYMMETRY = CompoundSymmetry()

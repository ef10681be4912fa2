"""``diag(x | g)`` = ``(x || g)``: independent effects, one SD each (glmmTMB's ``diag``)."""
from __future__ import annotations

import numpy as np

from .base import CovStructure

__all__ = ["Diagonal", "DIAGONAL"]


class Diagonal(CovStructure):
    name = "diag"
    title = ""
    linear = True

    def n_corr(self, q: int) -> int:
        return 0

    def corr_rows(self, z, s, q: int, ops):
        return [[1.0 if i == j else 0.0 for j in range(q)] for i in range(q)]

    def y_from_corr(self, R) -> np.ndarray:
        return np.zeros(0)

    def theta_names(self, coef_names) -> list:
        return [f"sd_{c}" for c in coef_names]


DIAGONAL = Diagonal()

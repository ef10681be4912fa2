"""``hetar1(0 + factor(t) | g)``: one SD per time point and correlation ``rho^|i - j|``
(SAS's ARH(1), glmmTMB >= 1.1.10's ``hetar1``).

The correlation is :mod:`~bayes_glmm.covariance.ar1`'s; only the SDs differ.
"""
from __future__ import annotations

import numpy as np

from .ar1 import AR1

__all__ = ["HetAR1", "HETAR1"]


class HetAR1(AR1):
    name = "hetar1"
    title = "ar1"

    def n_sd(self, q: int) -> int:
        return q

    def sd_index(self, q: int) -> np.ndarray:
        return np.arange(q)

    def theta_names(self, coef_names) -> list:
        return [f"sd_{c}" for c in coef_names] + self.corr_names(coef_names)


HETAR1 = HetAR1()

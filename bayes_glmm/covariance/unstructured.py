"""``us(x | g)`` = ``(x | g)``: an unrestricted covariance matrix (lme4's default).

ML: lme4's theta, the lower triangle of the relative Cholesky factor column by column
(linear in Lambda, diagonal bounded below by 0).  Bayesian: log-SDs and the canonical
partial correlations of an LKJ(eta) correlation matrix (:func:`~bayes_glmm.covariance.lkj.cpc_rows`).
"""
from __future__ import annotations

import numpy as np

from ..ops.numpy_ops import NUMPY_OPS
from .base import CovStructure
from .layout import chol_to_theta, theta_lower, theta_pairs, theta_start
from .lkj import cpc_rows, lkj_shape

__all__ = ["Unstructured", "UNSTRUCTURED"]


class Unstructured(CovStructure):
    name = "us"
    title = ""
    linear = True
    #: LKJ(2): mildly away from +-1 (the package's documented default for ``(x | g)``,
    #: ``bayes_glmm.priors.LKJ_ETA``)
    default_corr_eta = 2.0

    def n_corr(self, q: int) -> int:
        return q * (q - 1) // 2

    def corr_rows(self, z, s, q: int, ops):
        return cpc_rows(z, s, q)[0]

    def corr_prior_shapes(self, q: int, eta: float = 1.0, *, per_cpc: bool = False):
        """LKJ(eta): the CPCs' Beta shapes ``eta + (q - 2 - m) / 2``."""
        return lkj_shape(q, float(eta), per_cpc=per_cpc)

    def y_from_corr(self, R) -> np.ndarray:
        """The CPCs of R (inverse of :func:`cpc_rows`), clipped inside (-1, 1)."""
        R = np.asarray(R, dtype=float)
        q = R.shape[0]
        C = np.linalg.cholesky(R + 1e-12 * np.eye(q))
        C = C / np.linalg.norm(C, axis=1, keepdims=True)
        y = []
        for i in range(q):
            w = 1.0
            for m in range(i):
                z = float(np.clip(C[i, m] / w if w > 0 else 0.0, -1.0 + 1e-10, 1.0 - 1e-10))
                y.append(np.arctanh(z))
                w *= np.sqrt(1.0 - z * z)
        return np.array(y)

    # lme4's theta
    def n_theta(self, q: int) -> int:
        return q * (q + 1) // 2

    def theta_lower(self, q: int) -> np.ndarray:
        return theta_lower(q, True)

    def theta_start(self, q: int) -> np.ndarray:
        return theta_start(q, True)

    def theta_names(self, coef_names) -> list:
        return [f"L[{coef_names[i]}, {coef_names[j]}]" for i, j in theta_pairs(len(coef_names), True)]

    def lambda_rows(self, theta, q: int, ops=NUMPY_OPS):
        L = [[0.0] * q for _ in range(q)]
        for k, (i, j) in enumerate(theta_pairs(q, True)):
            L[i][j] = theta[k]
        return L

    def theta_from_lambda(self, L) -> np.ndarray:
        L = np.asarray(L, dtype=float)
        S = L @ L.T
        q = S.shape[0]
        try:
            C = np.linalg.cholesky(S)
        except np.linalg.LinAlgError:  # singular: keep L, with a non-negative diagonal
            C = L * np.where(np.diag(L) < 0, -1.0, 1.0)[None, :]
        return chol_to_theta(np.tril(C) if q else C, True)


UNSTRUCTURED = Unstructured()

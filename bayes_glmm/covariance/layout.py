"""lme4's theta layout of the unstructured and diagonal terms, and the VarCorr table (pure NumPy).

lme4's ``theta`` for a term with q coefficients is the lower triangle of its relative
Cholesky factor Lambda, column-major (diagonal entries bounded below by 0).  For an
uncorrelated term it is just the q diagonal entries.  The PyMC builder uses the same
factor (``b = u @ Lambda.T``); the results layer turns a Lambda (times sigma for the
gaussian family) into lme4's ``VarCorr`` table.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["theta_pairs", 
    "theta_to_chol", "chol_to_theta", "theta_lower", "theta_start",
    "cov_to_sd_corr", "varcorr_frame", "corr_pairs",
]


def corr_pairs(q: int) -> list:
    """(j, i) index pairs of a term's correlations, lme4's order (column by column, i > j).

    The order of ``corr_<g>`` in the posterior, of ``VarCorr`` rows and of the summaries.
    """
    return [(j, i) for j in range(q) for i in range(j + 1, q)]


def theta_pairs(q: int, correlated: bool) -> list:
    """(i, j) positions in Lambda of a term's theta entries, in lme4's order (lower triangle
    column by column; the diagonal only for an uncorrelated term).

    The one definition of the theta layout: ``theta_to_chol``, lme4's theta names and the
    profiled parameter names all walk it.
    """
    if not correlated:
        return [(i, i) for i in range(q)]
    return [(i, j) for j in range(q) for i in range(j, q)]


def _tril_colmajor(q: int):
    """Row/col indices of the lower triangle in column-major order (lme4's theta order)."""
    pairs = theta_pairs(q, True)
    return np.array([i for i, _ in pairs]), np.array([j for _, j in pairs])


def theta_to_chol(theta: np.ndarray, q: int, correlated: bool) -> np.ndarray:
    """Lower-triangular Lambda (q, q) from a term's theta vector."""
    theta = np.asarray(theta, dtype=float)
    L = np.zeros((q, q))
    if correlated:
        r, c = _tril_colmajor(q)
        L[r, c] = theta
    else:
        L[np.arange(q), np.arange(q)] = theta
    return L


def chol_to_theta(L: np.ndarray, correlated: bool) -> np.ndarray:
    """Inverse of :func:`theta_to_chol`."""
    L = np.asarray(L, dtype=float)
    q = L.shape[0]
    if correlated:
        r, c = _tril_colmajor(q)
        return L[r, c].copy()
    return np.diag(L).copy()


def theta_lower(q: int, correlated: bool) -> np.ndarray:
    """Lower bounds: 0 on the diagonal entries, -inf off the diagonal."""
    if correlated:
        r, c = _tril_colmajor(q)
        return np.where(r == c, 0.0, -np.inf)
    return np.zeros(q)


def theta_start(q: int, correlated: bool) -> np.ndarray:
    """lme4's starting value: Lambda = I."""
    return chol_to_theta(np.eye(q), correlated)


def cov_to_sd_corr(cov: np.ndarray):
    """(sd vector, correlation matrix) from a covariance matrix; corr is 0 where sd = 0."""
    cov = np.asarray(cov, dtype=float)
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(sd, sd)
    corr = np.where(np.outer(sd, sd) > 0, corr, 0.0)
    np.fill_diagonal(corr, 1.0)
    return sd, corr


def varcorr_frame(terms, covs, sigma: float | None = None) -> pd.DataFrame:
    """lme4's ``as.data.frame(VarCorr(fit))``: columns grp, var1, var2, vcov, sdcor.

    Parameters
    ----------
    terms : sequence of RandomTerm
    covs : sequence of (q, q) covariance matrices on the response/link scale, one per term
    sigma : float, optional
        Residual SD (gaussian family); adds a ``Residual`` row.
    """
    rows = []
    for term, cov in zip(terms, covs):
        sd, corr = cov_to_sd_corr(cov)
        names = term.coef_names
        for i, nm in enumerate(names):
            rows.append((term.name, nm, None, float(cov[i, i]), float(sd[i])))
        if term.cov.n_corr(term.q) > 0:  # every pair, as lme4's as.data.frame(VarCorr) lists them
            for j in range(len(names)):
                for i in range(j + 1, len(names)):
                    rows.append((term.name, names[j], names[i], float(cov[i, j]), float(corr[i, j])))
    if sigma is not None:
        rows.append(("Residual", None, None, float(sigma) ** 2, float(sigma)))
    return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])

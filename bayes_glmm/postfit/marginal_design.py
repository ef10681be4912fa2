"""Pieces of :mod:`bayes_glmm.postfit.marginal` shared with :mod:`bayes_glmm.postfit.marginal_ordinal`:
the Gauss-Hermite rule for a normal random effect, the per-row SD of the random part, and the
fixed- and random-effect design of the fitted rows or of new data, and the two ways both evaluate
a function of the parameters: blockwise over posterior draws and its central-difference Jacobian
for the delta method.

Both modules import these; the general one dispatches ordinal fits to the ordinal one, so
nothing here may import either of them.  All functions are pure.
"""
from __future__ import annotations

import functools

import numpy as np
import pandas as pd

__all__ = ["gauss_hermite_normal", "random_effect_sd", "prediction_design", "over_draws", "central_jacobian"]


def gauss_hermite_normal(n: int):
    """Nodes and weights with ``sum(w * f(x)) ~ E[f(Z)]``, ``Z ~ N(0, 1)`` (n points)."""
    if int(n) < 1:
        raise ValueError(f"n_quad must be a positive integer; got {n!r}")
    x, w = _hermegauss(int(n))
    return x.copy(), w.copy()


@functools.lru_cache(maxsize=16)
def _hermegauss(n: int):
    # the eigenvalue problem behind the nodes costs ~1 ms: once per n, not once per draw and row set
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return x, w / np.sqrt(2.0 * np.pi)


def random_effect_sd(Xr_list, covs) -> np.ndarray:
    """Per-row SD of the random part ``z'b``: ``sqrt(sum_k Xr_k[i] Sigma_k Xr_k[i]')``.

    Parameters
    ----------
    Xr_list : sequence of (n, q_k) arrays
    covs : sequence of (..., q_k, q_k) arrays (a leading draws axis is allowed)

    Returns
    -------
    ndarray (..., n)
    """
    if len(Xr_list) == 0:
        return np.asarray(0.0)
    total = 0.0
    for Xr, cov in zip(Xr_list, covs):
        Xr = np.asarray(Xr, dtype=float)
        total = total + np.einsum("nq,...qr,nr->...n", Xr, np.asarray(cov, dtype=float), Xr)
    return np.sqrt(np.clip(total, 0.0, None))


def prediction_design(fit, newdata):
    """(X, offset, [Xr_k], index) of the fitted rows (``newdata=None``) or of ``newdata``."""
    spec = fit.spec
    if newdata is None:
        return spec.X, spec.offset, [t.Xr for t in spec.terms], spec.row_index
    if not isinstance(newdata, pd.DataFrame):
        raise ValueError("newdata must be a pandas DataFrame (or None for the fitted rows)")
    if spec.new_design is None:
        raise ValueError("this fit's spec cannot build designs for new data (spec.new_design is None)")
    d = spec.new_design(newdata)
    return np.asarray(d.X), np.asarray(d.offset), [np.asarray(x) for x in d.Xr], \
        (d.index if d.index is not None else newdata.index)


def over_draws(fun, theta: np.ndarray, covs: list, step: int) -> np.ndarray:
    """``fun(theta[i:i + step], covs[i:i + step])`` for every block of ``step`` draws, stacked
    into (S, m): one call per draw would spend its time in per-call overhead."""
    S = theta.shape[0]
    return np.concatenate([np.asarray(fun(theta[i:i + step], [c[i:i + step] for c in covs]),
                                      dtype=float).reshape(min(step, S - i), -1) for i in range(0, S, step)])


def central_jacobian(fun, theta: np.ndarray, covs) -> np.ndarray:
    """(m, len(theta)) Jacobian of ``ravel(fun(theta, covs))`` in ``theta`` by central differences
    (step 1e-5 max(1, |theta_j|)), for the delta method."""
    cols = []
    for j in range(theta.size):
        h = 1e-5 * max(1.0, abs(theta[j]))
        e = np.zeros_like(theta)
        e[j] = h
        cols.append((np.ravel(fun(theta + e, covs)) - np.ravel(fun(theta - e, covs))) / (2.0 * h))
    return np.column_stack(cols)

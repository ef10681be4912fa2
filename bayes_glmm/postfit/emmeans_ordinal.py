"""Estimated marginal means of an ordinal response on its own scale, as R's emmeans has them for
``ordinal::clm`` / ``clmm`` fits.

``type="response"`` (emmeans's ``mode = "prob"``): the probability of each category,
``P(Y = k) = F(tau_k - eta) - F(tau_{k-1} - eta)`` at every point of the reference grid (random
effects at 0, the thresholds ``tau`` estimated), averaged with equal weights over the grid's other
factors.  ``type="mean.class"`` (emmeans's ``mode = "mean.class"``): the expected category number
``sum_k k P(Y = k)``, categories numbered 1 .. K, averaged the same way.  Averaging happens on the
probability scale, after the nonlinear map, as emmeans does for these modes (it is not the
probability at the averaged linear predictor).

ML fits: delta-method SEs from the joint covariance of (beta, thresholds) and symmetric Wald
intervals ``estimate -+ z SE`` (emmeans's ``asymp.LCL`` / ``asymp.UCL``, which may leave [0, 1]
for a small probability), df = inf.  Posterior fits: the same functions of every draw of (beta,
thresholds), summarized by mean, SD and quantile interval.  Checked against emmeans on clmm fits
by tests/test_emmeans_ordinal.py (tests/reference/make_reference_emmeans_ordinal.R).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from .emm_grid import (adjust_p, adjusted_crit, cell_labels, contrast_weights, emm_matrix, grid_counts,
                       ml_only_interval, posterior_summary, reference_grid)

__all__ = ["ORDINAL_TYPES", "is_ordinal_request", "ordinal_emmeans", "ordinal_contrasts"]

#: "prob" is emmeans's name for "response" here
ORDINAL_TYPES = ("response", "prob", "mean.class")


def is_ordinal_request(fit, type_: str) -> bool:
    """True when ``type_`` asks for the response scale of a categorical-response fit."""
    return type_ in ORDINAL_TYPES and fit.spec.family.categorical_response


def _grid_weights(fit, names: list, by_names: list, at=None, weights: str = "equal"):
    """(cells, W (cells, grid rows), X (grid rows, p), offset): the reference grid's rows (``at=``
    as for the link scale) and the weights that average them into each cell (``weights=``)."""
    spec = fit.spec
    grid = reference_grid(spec, by_names + names, at)
    counts = None if weights == "equal" else grid_counts(spec, grid)
    design = spec.new_design(grid)
    X, off = np.asarray(design.X, dtype=float), np.asarray(design.offset, dtype=float)
    cells, _, _, W = emm_matrix(grid, X, off, names, by_names, weights, counts)
    return cells, W, X, off


def cell_values(fam, W: np.ndarray, X: np.ndarray, off: np.ndarray, beta, aux: dict, mean_class: bool):
    """The cell averages of the category probabilities (cells, K) or of the expected class (cells,).

    ``beta`` may be (p,) or (S, p) draws, the thresholds in ``aux`` scalars or (S, 1); with draws
    the result gets a leading draws axis.
    """
    eta = np.asarray(beta, dtype=float) @ X.T + off  # (grid,) or (S, grid)
    P = fam.category_probs(eta, **aux)  # (..., grid, K)
    if mean_class:
        return (P @ np.arange(1.0, P.shape[-1] + 1.0)) @ W.T
    return np.einsum("cg,...gk->...ck", W, P)


def _joint(fit):
    """Point (beta, threshold coordinates) and their joint covariance (the optimizer's coordinates:
    the first threshold and the logs of the gaps)."""
    from ..ml.auxpar import fit_coords

    f, fam = fit.fit, fit.spec.family
    beta = np.asarray(f.beta, dtype=float)
    a = np.asarray(fit_coords(fam, f.aux), dtype=float)
    p, k = beta.size, a.size
    V = np.zeros((p + k, p + k))
    V[:p, :p] = np.asarray(f.vcov_beta, dtype=float)
    if f.vcov_aux is None:
        raise ValueError("this fit has no covariance of its thresholds (fit_ml(calc_vcov=False)?); "
                         "refit with the default calc_vcov=True for emmeans on the response scale")
    V[p:, p:] = np.asarray(f.vcov_aux, dtype=float)
    if f.vcov_beta_aux is not None:
        V[:p, p:] = np.asarray(f.vcov_beta_aux, dtype=float)
        V[p:, :p] = V[:p, p:].T
    return np.concatenate([beta, a]), V, p


def _ml_values_and_jacobian(fit, W, X, off, mean_class: bool):
    """Flattened cell values at the estimates and their Jacobian in (beta, coordinates), by
    central differences (a smooth map of a handful of parameters)."""
    from ..ml.auxpar import aux_natural

    fam = fit.spec.family
    x0, V, p = _joint(fit)

    def g(x):
        return np.ravel(cell_values(fam, W, X, off, x[:p], aux_natural(fam, x[p:]), mean_class))

    v0 = g(x0)
    J = np.empty((v0.size, x0.size))
    for j in range(x0.size):
        h = 1e-5 * max(1.0, abs(x0[j]))
        e = np.zeros_like(x0)
        e[j] = h
        J[:, j] = (g(x0 + e) - g(x0 - e)) / (2.0 * h)
    return v0, J, V


def _posterior_draws(fit, W, X, off, mean_class: bool) -> np.ndarray:
    d = fit._draws
    aux = {k: np.asarray(v, dtype=float)[:, None] for k, v in d["aux"].items()}
    vals = cell_values(fit.spec.family, W, X, off, d["beta"], aux, mean_class)
    return vals.reshape(vals.shape[0], -1)


def _index(fit, cells: pd.DataFrame, cols: list, mean_class: bool):
    fam = fit.spec.family
    if mean_class:
        if len(cols) == 1:
            return pd.Index(list(cells[cols[0]]), name=cols[0])
        return pd.MultiIndex.from_frame(cells[cols].astype(object))
    rows = [(*r, c) for r in cells[cols].itertuples(index=False, name=None) for c in fam.categories]
    return pd.MultiIndex.from_tuples(rows, names=cols + [fit.spec.response_name])


def ordinal_emmeans(fit, names: list, by_names: list, type_: str, level: float, *, at=None,
                    weights: str = "equal", interval: str = "quantile") -> pd.DataFrame:
    """Marginal category probabilities (``type_`` "response" / "prob") or expected class
    ("mean.class") of an ordinal fit (see the module docstring).

    The grid and summaries are :mod:`bayes_glmm.postfit.emm_grid`'s, as for the link scale;
    ``at``, ``weights`` and ``interval`` (posterior fits) as there.

    Returns
    -------
    DataFrame indexed by ``by + names`` (and the response's categories for probabilities, varying
    fastest), columns ``estimate, se, df, lower, upper`` (posterior: no ``df``).
    """
    mean_class = type_ == "mean.class"
    cells, W, X, off = _grid_weights(fit, names, by_names, at, weights)
    idx = _index(fit, cells, by_names + names, mean_class)
    if getattr(fit, "idata", None) is not None:
        return pd.DataFrame(posterior_summary(_posterior_draws(fit, W, X, off, mean_class), level, interval),
                            index=idx)
    ml_only_interval(interval)
    est, J, V = _ml_values_and_jacobian(fit, W, X, off, mean_class)
    se = np.sqrt(np.clip(np.einsum("ip,pq,iq->i", J, V, J), 0.0, None))
    z = special.ndtri(0.5 + level / 2.0)
    return pd.DataFrame({"estimate": est, "se": se, "df": np.full(est.size, np.inf),
                         "lower": est - z * se, "upper": est + z * se}, index=idx)


def ordinal_contrasts(fit, names: list, by_names: list, method, adjust: str, type_: str,
                      level: float, *, at=None, weights: str = "equal", interval: str = "quantile") -> pd.DataFrame:
    """Contrasts among the expected classes (``type_="mean.class"``), as emmeans's ``pairs`` /
    ``contrast`` of a ``mode = "mean.class"`` grid: differences, delta-method SEs, z tests."""

    if type_ != "mean.class":
        raise ValueError(f"contrasts of category probabilities (type={type_!r}) are not offered for an "
                         f"ordinal response; use type='mean.class' (the expected category) or "
                         f"type='link' (the latent scale)")
    cells, W, X, off = _grid_weights(fit, names, by_names, at, weights)
    groups = [cells.index.to_numpy()] if not by_names else \
        [g.index.to_numpy() for _, g in cells.groupby(by_names, sort=False, observed=True)]
    C_rows, labels, fam_ids, n_means, by_vals = [], [], [], [], []
    for gi, ix in enumerate(groups):
        C, labs, nm = contrast_weights(len(ix), cell_labels(cells.loc[ix], names), method, False)
        full = np.zeros((C.shape[0], len(cells)))
        full[:, ix] = C
        C_rows.append(full)
        labels += labs
        fam_ids += [gi] * len(labs)
        n_means.append(nm)
        by_vals += [tuple(cells.loc[ix[0], by_names])] * len(labs)
    Cm = np.vstack(C_rows)
    idx = (pd.Index(labels, name="contrast") if not by_names else
           pd.MultiIndex.from_tuples([(*b, lab) for b, lab in zip(by_vals, labels)],
                                     names=by_names + ["contrast"]))
    if getattr(fit, "idata", None) is not None:
        return pd.DataFrame(posterior_summary(_posterior_draws(fit, W, X, off, True) @ Cm.T, level, interval),
                            index=idx)
    ml_only_interval(interval)
    m, J, V = _ml_values_and_jacobian(fit, W, X, off, True)
    est, Jc = Cm @ m, Cm @ J
    se = np.sqrt(np.clip(np.einsum("ip,pq,iq->i", Jc, V, Jc), 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = est / se
    df = np.full(est.size, np.inf)
    p, q = np.empty(est.size), np.empty(est.size)
    ids = np.asarray(fam_ids)
    for gi in np.unique(ids):
        sel = ids == gi
        p[sel] = adjust_p(t[sel], df[sel], adjust, n_means[gi])
        q[sel] = adjusted_crit(df[sel], adjust, n_means[gi], level)
    return pd.DataFrame({"estimate": est, "se": se, "df": df, "lower": est - q * se, "upper": est + q * se,
                         "statistic": t, "p": p}, index=idx)

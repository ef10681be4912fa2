"""The pieces of estimated marginal means shared by :mod:`bayes_glmm.postfit.emmeans` and
:mod:`bayes_glmm.postfit.emmeans_ordinal`: the reference grid and its cell weights, contrast
weights and labels, multiplicity adjustments, and the posterior summary of linear functions.

Both modules import these; the general one dispatches ordinal requests to the ordinal one, so
nothing here may import either of them.  All functions are pure.
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import special

__all__ = ["parse_specs", "reference_grid", "grid_counts", "emm_matrix", "cell_labels", "contrast_weights",
           "adjust_p", "adjusted_crit", "dunnett_sf", "hdi", "posterior_summary", "ml_only_interval", "TYPES", "ADJUST",
           "METHODS", "WEIGHTS", "INTERVALS"]

TYPES = ("link", "response")
ADJUST = ("tukey", "dunnettx", "dunnett", "holm", "bonferroni", "none")
METHODS = ("pairwise", "trt.vs.ctrl")
WEIGHTS = ("equal", "proportional", "outer", "cells", "flat")
INTERVALS = ("quantile", "hdi")


# ------------------------------------------------------------------------ the grid
def parse_specs(specs, by=None) -> tuple[list, list]:
    """``specs`` (``"A"``, ``["A", "B"]``, ``"~ A"``, ``"~ A | B"``) and ``by`` -> two name lists."""
    if isinstance(specs, str):
        text = specs.strip().lstrip("~")
        if "|" in text:
            text, extra = text.split("|", 1)
            by = ([b.strip() for b in extra.replace("*", "+").replace(":", "+").split("+") if b.strip()]
                  + ([by] if isinstance(by, str) else list(by or [])))
        names = [s.strip() for s in text.replace("*", "+").replace(":", "+").split("+") if s.strip()]
    else:
        names = [str(s) for s in specs]
    by_names = [by] if isinstance(by, str) else [str(b) for b in (by or [])]
    if not names:
        raise ValueError(f"specs={specs!r} names no factor; pass a column, e.g. specs='treatment'")
    return names, by_names


def reference_grid(spec, names: list, at: dict | None = None) -> pd.DataFrame:
    """Every combination of the fixed part's factor levels, covariates at their means.

    Parameters
    ----------
    spec : ModelSpec
    names : list of str
        The factors asked for (``specs`` and ``by``): each must be a factor of the model, or a
        numeric column given values in ``at``.
    at : dict, optional
        emmeans's ``at``: a numeric column -> one value or a list of values (a list makes it a
        dimension of the grid, averaged over unless named in ``specs``/``by``); a factor -> the
        levels to keep.

    Returns
    -------
    DataFrame with one column per predictor the formula needs (grouping columns get their
    first level: the grid is for population-level means); ``attrs["dims"]`` lists the
    columns that vary over the grid.
    """
    summary = spec.info.get("grid")
    if summary is None:
        raise ValueError("this model's spec carries no reference-grid summary; rebuild the model")
    at = dict(at or {})
    factors = {c: v for c, (kind, v) in summary.items() if kind == "factor"}
    for c, v in at.items():
        if c not in summary:
            raise ValueError(f"at={{{c!r}: ...}}: {c!r} is not a predictor of formula {spec.formula!r}; "
                             f"choose among {sorted(summary)}")
        vals = list(np.atleast_1d(np.asarray(v, dtype=object)))
        if not vals:
            raise ValueError(f"at={{{c!r}: ...}} gives no value; give one or a list")
        if c in factors:
            bad = [x for x in vals if x not in factors[c]]
            if bad:
                raise ValueError(f"at={{{c!r}: ...}}: {bad} are not levels of {c!r} ({factors[c]})")
            factors[c] = [x for x in factors[c] if x in vals]
        else:
            try:
                at[c] = [float(x) for x in vals]
            except (TypeError, ValueError):
                raise ValueError(f"at={{{c!r}: ...}}: {c!r} is numeric; give numbers, not {vals}") from None
    for n in names:
        if n not in summary:
            raise ValueError(f"{n!r} is not a predictor of formula {spec.formula!r}; choose among "
                             f"{sorted(factors)}")
        if n not in factors and n not in at:
            raise ValueError(f"{n!r} is numeric: emmeans are over factor levels; give its values "
                             f"(at={{{n!r}: [..]}}), ask for its slope (fit.emtrends(..., var={n!r})) or "
                             f"convert it (data[{n!r}].astype(str))")
    gd = spec.info.get("grid_data")
    fixed_cols = spec.info.get("fixed_columns", tuple(summary))
    # grouping-only columns take one level: the grid is for population-level means
    model_factors = gd["factors"] if gd is not None else [c for c in factors if c in fixed_cols]
    fixed_factors = [c for c in factors if c in model_factors or c in names]
    num_dims = [c for c in at if c not in factors]
    dims = fixed_factors + num_dims
    combos = list(itertools.product(*[factors[c] if c in factors else at[c] for c in dims]))
    grid = pd.DataFrame(combos, columns=dims) if dims else pd.DataFrame(index=[0])
    for c, (kind, v) in summary.items():
        if c in grid.columns:
            continue
        grid[c] = v if kind == "numeric" else factors[c][0]
    for c in fixed_factors:  # keep each factor's level order for the encoding
        grid[c] = pd.Categorical(grid[c], categories=summary[c][1])
    grid = grid[list(summary)]
    grid.attrs["dims"] = dims
    return grid


def grid_counts(spec, grid: pd.DataFrame) -> np.ndarray:
    """Fitted rows per grid row's factor combination (emmeans's ``.wgt.``)."""
    gd = spec.info.get("grid_data")
    if gd is None:
        raise ValueError("this model's spec carries no cell counts; rebuild the model for weights= "
                         "other than 'equal'")
    cols = gd["factors"]
    if not cols:
        return np.ones(len(grid))
    keys = zip(*[grid[c].astype(object) for c in cols])
    return np.array([gd["counts"].get(tuple(k), 0) for k in keys], dtype=float)


def emm_matrix(grid: pd.DataFrame, X: np.ndarray, offset: np.ndarray, names: list, by: list,
               weights: str = "equal", counts: np.ndarray | None = None):
    """Weighted averages of the grid's rows per cell of ``by + names`` (emmeans's ``weights``).

    ``"equal"``: every grid row alike; ``"cells"``: each row by its count of fitted rows;
    ``"flat"``: equal over the non-empty rows; ``"proportional"``: by the count of the
    averaged-over factors' combination in the whole data; ``"outer"``: by the product of those
    factors' marginal counts.

    Returns
    -------
    cells : DataFrame
        One row per cell, columns ``by + names`` (levels in the factors' order).
    L : ndarray (cells, p)
    off : ndarray (cells,)
    W : ndarray (cells, grid rows)
        The weights (rows sum to 1): ``L = W X``.
    """
    if weights not in WEIGHTS:
        raise ValueError(f"weights={weights!r} is not one of {WEIGHTS}")
    keys = by + names
    cells = grid[keys].drop_duplicates()
    # emmeans orders cells with the first factor varying fastest, within by groups
    cells = cells.sort_values(by[::-1] + names[::-1] if by else names[::-1], kind="stable")
    cells = cells.reset_index(drop=True)
    w_row = _row_weights(grid, keys, weights, counts)
    W = np.zeros((len(cells), len(grid)))
    for i, row in cells.iterrows():
        mask = np.ones(len(grid), dtype=bool)
        for k in keys:
            mask &= np.asarray(grid[k] == row[k])
        w = np.where(mask, w_row, 0.0)
        if not w.sum() > 0:
            lab = ", ".join(f"{k}={row[k]}" for k in keys)
            raise ValueError(f"weights={weights!r}: the cell {lab} has no fitted rows to weight it by; "
                             f"use weights='equal'")
        W[i] = w / w.sum()
    return cells, W @ X, W @ offset, W


def _row_weights(grid, keys, weights, counts) -> np.ndarray:
    if weights == "equal":
        return np.ones(len(grid))
    counts = np.asarray(counts, dtype=float)
    if weights == "cells":
        return counts
    if weights == "flat":
        return (counts > 0).astype(float)
    avg = [c for c in grid.attrs.get("dims", []) if c not in keys and isinstance(grid[c].dtype, pd.CategoricalDtype)]
    if not avg:
        return np.ones(len(grid))
    if weights == "proportional":
        tot = pd.Series(counts).groupby([grid[c].astype(object) for c in avg]).transform("sum")
        return tot.to_numpy(dtype=float)
    # outer: product of the averaged-over factors' marginal counts
    w = np.ones(len(grid))
    for c in avg:
        w *= pd.Series(counts).groupby(grid[c].astype(object)).transform("sum").to_numpy(dtype=float)
    return w


def cell_labels(cells: pd.DataFrame, names: list) -> list:
    """emmeans's level labels; numeric-looking levels get the factor name in front
    (``period1``), as emmeans does in contrast labels."""
    def lab(col, v):
        s = str(v)
        try:
            float(s)
            return f"{col}{s}"
        except ValueError:
            return s
    return [" ".join(lab(c, r[c]) for c in names) for _, r in cells.iterrows()]


def contrast_weights(n: int, labels: list, method, ratio: bool):
    """(C (k, n), contrast labels, family size for Tukey) for ``method``."""
    sep = " / " if ratio else " - "
    if isinstance(method, dict):
        rows, labs = [], []
        for name, w in method.items():
            w = np.asarray(w, dtype=float)
            if w.shape != (n,):
                raise ValueError(f"contrast {name!r} has {w.size} weights but there are {n} means "
                                 f"({labels}); give one weight per mean")
            rows.append(w)
            labs.append(str(name))
        return np.array(rows), labs, None
    if method == "pairwise":
        pairs = list(itertools.combinations(range(n), 2))
        C = np.zeros((len(pairs), n))
        for r, (i, j) in enumerate(pairs):
            C[r, i], C[r, j] = 1.0, -1.0
        return C, [f"{labels[i]}{sep}{labels[j]}" for i, j in pairs], n
    if method == "trt.vs.ctrl":
        C = np.zeros((n - 1, n))
        for r in range(1, n):
            C[r - 1, r], C[r - 1, 0] = 1.0, -1.0
        return C, [f"{labels[r]}{sep}{labels[0]}" for r in range(1, n)], None
    raise ValueError(f"method={method!r} is not one of {METHODS} or a dict of weight vectors")


def adjust_p(t: np.ndarray, df: np.ndarray, adjust: str, n_means) -> np.ndarray:
    """Two-sided p-values of one family of contrasts, adjusted for multiplicity."""
    t, df = np.abs(np.asarray(t, float)), np.asarray(df, float)
    fin = np.isfinite(df)
    raw = 2.0 * np.where(fin, special.stdtr(np.where(fin, df, 1.0), -t), special.ndtr(-t))
    m = raw.size
    if adjust == "none":
        return raw
    if adjust == "bonferroni":
        return np.minimum(raw * m, 1.0)
    if adjust == "holm":
        order = np.argsort(raw)
        adj = np.maximum.accumulate(raw[order] * (m - np.arange(m)))
        out = np.empty(m)
        out[order] = np.minimum(adj, 1.0)
        return out
    if adjust in ("dunnettx", "dunnett"):
        return dunnett_sf(t, m, df)
    if adjust == "tukey":
        if n_means is None:
            raise ValueError("adjust='tukey' is for method='pairwise'; use 'holm', 'bonferroni' or 'none'")
        # here, not at the top: scipy.stats takes about a second to import (tests/test_import_time.py)
        from scipy.stats import studentized_range
        return np.array([studentized_range.sf(ti * np.sqrt(2.0), n_means, d if np.isfinite(d) else np.inf)
                         for ti, d in zip(t, df)])
    raise ValueError(f"adjust={adjust!r} is not one of {ADJUST}")


def adjusted_crit(df: np.ndarray, adjust: str, n_means, level: float) -> np.ndarray:
    """Critical values ``q`` of one family of contrasts for simultaneous intervals
    ``estimate -+ q SE`` at ``level``, as emmeans's ``confint`` of a contrast grid: Tukey's
    studentized range ``qtukey(level, n_means, df) / sqrt(2)``; the Dunnett max-|t| quantile
    (the inverse of :func:`dunnett_sf`); Bonferroni ``t_{df}(1 - (1 - level) / (2 m))``, also for
    ``"holm"`` (a step-down method has no interval: emmeans uses Bonferroni's); ``"none"``:
    the per-contrast t (or z) quantile."""
    df = np.asarray(df, float)
    m = df.size
    if adjust == "tukey":
        if n_means is None:
            raise ValueError("adjust='tukey' is for method='pairwise'; use 'holm', 'bonferroni' or 'none'")
        from scipy.stats import studentized_range  # here: scipy.stats is slow to import
        q = {d: studentized_range.ppf(level, n_means, d if np.isfinite(d) else np.inf) / np.sqrt(2.0)
             for d in np.unique(df)}
        return np.array([q[d] for d in df])
    if adjust in ("dunnettx", "dunnett"):
        from scipy.optimize import brentq
        q = {d: brentq(lambda c: dunnett_sf(c, m, d)[0] - (1.0 - level), 1e-6, 50.0, xtol=1e-10)
             for d in np.unique(df)}
        return np.array([q[d] for d in df])
    if adjust in ("bonferroni", "holm"):
        a = 1.0 - (1.0 - level) / (2.0 * m)
    elif adjust == "none":
        a = 0.5 + level / 2.0
    else:
        raise ValueError(f"adjust={adjust!r} is not one of {ADJUST}")
    fin = np.isfinite(df)
    return np.where(fin, special.stdtrit(np.where(fin, df, 1.0), a), special.ndtri(a))


def dunnett_sf(t, k: int, df) -> np.ndarray:
    """P(max_i |T_i| >= |t|) for ``k`` t statistics with pairwise correlations 0.5.

    The distribution emmeans's ``"dunnettx"`` adjustment approximates (treatments vs one
    control with equal group sizes): with Z_i = (W + U_i) / sqrt(2), W, U_i iid N(0, 1),
    P(max |Z_i| < z) = E_W [ (Phi(sqrt(2) z - W) - Phi(-sqrt(2) z - W))^k ]; a t statistic's
    scale s ~ sqrt(chi2_df / df) is integrated out numerically (Gauss-Laguerre in s^2 df / 2).
    """
    t = np.abs(np.atleast_1d(np.asarray(t, dtype=float)))
    df = np.broadcast_to(np.asarray(df, dtype=float), t.shape)
    w, ww = np.polynomial.hermite_e.hermegauss(80)
    ww = ww / ww.sum()

    def cdf_normal(z):  # z: any shape -> P(max |Z_i| < z)
        z = np.asarray(z, dtype=float)[..., None] * np.sqrt(2.0)
        band = special.ndtr(z - w) - special.ndtr(-z - w)
        return (band ** k) @ ww

    out = np.empty(t.shape)
    for i, (ti, d) in enumerate(zip(t, df)):
        if not np.isfinite(d):
            out[i] = 1.0 - cdf_normal(ti)
            continue
        # S^2 = chi2_d / d: integrate over x = chi2 / 2 ~ Gamma(d / 2) by generalized Gauss-Laguerre
        x, wx = special.roots_genlaguerre(80, d / 2.0 - 1.0)
        wx = wx / special.gamma(d / 2.0)
        s = np.sqrt(2.0 * x / d)
        out[i] = 1.0 - float(np.sum(wx * cdf_normal(ti * s)))
    return np.clip(out, 0.0, 1.0)


def hdi(draws: np.ndarray, level: float) -> tuple:
    """Highest-density interval of each column of ``draws`` (arviz.hdi's shortest-interval rule
    on the sorted draws)."""
    x = np.sort(np.asarray(draws, dtype=float), axis=0)
    n = x.shape[0]
    inc = int(np.floor(level * n))
    widths = x[inc:] - x[:n - inc]
    j = np.argmin(widths, axis=0)
    cols = np.arange(x.shape[1])
    return x[j, cols], x[j + inc, cols]


# ------------------------------------------------------------------------ summaries
def posterior_summary(draws: np.ndarray, level: float, interval: str = "quantile") -> dict:
    a = (1.0 - level) / 2.0
    if interval == "hdi":
        lo, hi = hdi(draws, level)
    else:
        lo, hi = np.quantile(draws, a, axis=0), np.quantile(draws, 1.0 - a, axis=0)
    return {"estimate": draws.mean(0), "se": draws.std(0, ddof=1), "lower": lo, "upper": hi}


def ml_only_interval(interval):
    if interval != "quantile":
        raise ValueError(f"interval={interval!r} is for posterior fits; ML intervals are Wald (t or z)")

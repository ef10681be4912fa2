"""Estimated marginal means and their contrasts, as R's emmeans computes them on lme4 fits.

The reference grid holds every combination of the levels of the factors of the fixed part,
numeric covariates at their (fitted-rows) means; its model matrix comes from the fitted
design encoding (``spec.new_design``), so factor coding and interactions are the model's.
A marginal mean of ``specs`` (within each level of ``by``) averages the grid's rows with
equal weights over the other factors: one row ``l`` of a matrix ``L``, estimate ``l' beta``.

ML fits: SE from ``vcov`` (Kenward-Roger: the adjusted ``Phi_A``), df from
:mod:`bayes_glmm.ml.inference.ddf` for LMMs (Satterthwaite or KR), ``inf`` otherwise (as
emmeans does for glmer).  ``type="response"`` back-transforms means (delta-method SE,
back-transformed link-scale interval) and shows contrasts of log / logit links as ratios /
odds ratios (tests stay on the link scale, as emmeans does).  Posterior fits: the same
linear functions of each draw of beta, summarized by mean, SD and quantile intervals.

All functions here are pure; the results classes' ``emmeans`` / ``contrasts`` call
:func:`emmeans` and :func:`contrasts`.
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import special

__all__ = ["parse_specs", "reference_grid", "emm_matrix", "contrast_weights", "adjust_p",
           "emmeans", "contrasts", "TYPES", "ADJUST", "METHODS"]

TYPES = ("link", "response")
ADJUST = ("tukey", "holm", "bonferroni", "none")
METHODS = ("pairwise", "trt.vs.ctrl")


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


def reference_grid(spec, names: list) -> pd.DataFrame:
    """Every combination of the fixed part's factor levels, covariates at their means.

    Parameters
    ----------
    spec : ModelSpec
    names : list of str
        The factors asked for (``specs`` and ``by``): each must be a factor of the model.

    Returns
    -------
    DataFrame with one column per predictor the formula needs (grouping columns get their
    first level: the grid is for population-level means).
    """
    summary = spec.info.get("grid")
    if summary is None:
        raise ValueError("this model's spec carries no reference-grid summary; rebuild the model")
    factors = {c: v for c, (kind, v) in summary.items() if kind == "factor"}
    for n in names:
        if n not in summary:
            raise ValueError(f"{n!r} is not a predictor of formula {spec.formula!r}; choose among "
                             f"{sorted(factors)}")
        if n not in factors:
            raise ValueError(f"{n!r} is numeric: emmeans are over factor levels; convert it "
                             f"(data[{n!r}].astype(str)) or use predict() at chosen values")
    fixed_cols = spec.info.get("fixed_columns", tuple(summary))
    # grouping-only columns take one level: the grid is for population-level means
    fixed_factors = [c for c in factors if c in fixed_cols or c in names]
    combos = list(itertools.product(*[factors[c] for c in fixed_factors]))
    grid = pd.DataFrame(combos, columns=fixed_factors) if fixed_factors else pd.DataFrame(index=[0])
    for c, (kind, v) in summary.items():
        if c in grid.columns:
            continue
        grid[c] = v if kind == "numeric" else v[0]
    for c in fixed_factors:  # keep each factor's level order for the encoding
        grid[c] = pd.Categorical(grid[c], categories=factors[c])
    return grid[list(summary)]


def emm_matrix(grid: pd.DataFrame, X: np.ndarray, offset: np.ndarray, names: list, by: list):
    """Equal-weight averages of the grid's rows per cell of ``by + names``.

    Returns
    -------
    cells : DataFrame
        One row per cell, columns ``by + names`` (levels in the factors' order).
    L : ndarray (cells, p)
    off : ndarray (cells,)
    """
    keys = by + names
    cells = grid[keys].drop_duplicates()
    # emmeans orders cells with the first factor varying fastest, within by groups
    cells = cells.sort_values(by[::-1] + names[::-1] if by else names[::-1], kind="stable")
    cells = cells.reset_index(drop=True)
    L = np.zeros((len(cells), X.shape[1]))
    off = np.zeros(len(cells))
    for i, row in cells.iterrows():
        mask = np.ones(len(grid), dtype=bool)
        for k in keys:
            mask &= np.asarray(grid[k] == row[k])
        L[i] = X[mask].mean(0)
        off[i] = offset[mask].mean()
    return cells, L, off


def _cell_labels(cells: pd.DataFrame, names: list) -> list:
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
    if adjust == "tukey":
        if n_means is None:
            raise ValueError("adjust='tukey' is for method='pairwise'; use 'holm', 'bonferroni' or 'none'")
        # here, not at the top: scipy.stats takes about a second to import (tests/test_import_time.py)
        from scipy.stats import studentized_range
        return np.array([studentized_range.sf(ti * np.sqrt(2.0), n_means, d if np.isfinite(d) else np.inf)
                         for ti, d in zip(t, df)])
    raise ValueError(f"adjust={adjust!r} is not one of {ADJUST}")


# ------------------------------------------------------------------------ inference
def _ml_inference(res, L: np.ndarray, ddf):
    """(estimate, se, df) of the rows of L for an MLResults."""
    beta = np.asarray(res.fit.beta, dtype=float)
    est = L @ beta
    from ..ml.inference.ddf import cached_info, is_lmm, kr_df, normalize_ddf, satterthwaite_df
    if ddf is None or not is_lmm(res.spec):
        V = np.asarray(res.fit.vcov_beta, dtype=float)
        df = np.full(len(L), np.inf)
    else:
        method = normalize_ddf(ddf)
        info = cached_info(res, method)
        if method == "satterthwaite":
            V = info.vcov
            df = np.array([satterthwaite_df(info, row) for row in L])
        else:
            V = info.PhiA
            df = np.array([kr_df(info, row) for row in L])
    se = np.sqrt(np.clip(np.einsum("ip,pq,iq->i", L, V, L), 0.0, None))
    return est, se, df


def _crit(df: np.ndarray, level: float) -> np.ndarray:
    a = 0.5 + level / 2.0
    fin = np.isfinite(df)
    return np.where(fin, special.stdtrit(np.where(fin, df, 1.0), a), special.ndtri(a))


def _check(type_, level, adjust=None):
    if type_ not in TYPES:
        raise ValueError(f"type={type_!r} is not one of {TYPES}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level={level!r} must be in (0, 1), e.g. 0.95")
    if adjust is not None and adjust not in ADJUST:
        raise ValueError(f"adjust={adjust!r} is not one of {ADJUST}")


def _beta_draws(fit) -> np.ndarray | None:
    idata = getattr(fit, "idata", None)
    if idata is None:
        return None
    return np.asarray(idata.posterior["beta"], dtype=float).reshape(-1, fit.spec.p)


def _setup(fit, specs, by, type_="link"):
    names, by_names = parse_specs(specs, by)
    spec = fit.spec
    if type_ == "response" and spec.family.categorical_response:
        raise ValueError(f"type='response' is not available for the {spec.family.name!r} family: its "
                         f"probabilities need the thresholds; use type='link' (eta, no intercept)")
    grid = reference_grid(spec, by_names + names)
    design = spec.new_design(grid)
    cells, L, off = emm_matrix(grid, np.asarray(design.X, float), np.asarray(design.offset, float),
                               names, by_names)
    return names, by_names, cells, L, off


def _index(cells: pd.DataFrame, cols: list):
    if len(cols) == 1:
        return pd.Index([v for v in cells[cols[0]]], name=cols[0])
    return pd.MultiIndex.from_frame(cells[cols].astype(object))


def _posterior_summary(draws: np.ndarray, level: float) -> dict:
    a = (1.0 - level) / 2.0
    return {"estimate": draws.mean(0), "se": draws.std(0, ddof=1),
            "lower": np.quantile(draws, a, axis=0), "upper": np.quantile(draws, 1.0 - a, axis=0)}


def emmeans(fit, specs, by=None, type: str = "link", ddf=None, level: float = 0.95) -> pd.DataFrame:
    """Estimated marginal means of ``specs`` (see the module docstring).

    Parameters
    ----------
    fit : MLResults or a posterior results object (has ``idata``)
    specs : str or list of str
        Factor(s): ``"A"``, ``["A", "B"]``, ``"~ A"`` or ``"~ A | B"``.
    by : str or list of str, optional
        Factor(s) within whose levels the means are taken.
    type : {"link", "response"}
    ddf : {None, "satterthwaite", "kenward-roger"}
        LMMs only (ML); None gives asymptotic (z) inference, df = inf.
    level : float

    Returns
    -------
    DataFrame indexed by the levels (``by`` first), columns ``estimate, se, df, lower, upper``
    (posterior: ``estimate`` is the posterior mean, ``se`` the SD, no ``df``).
    """
    _check(type, level)
    names, by_names, cells, L, off = _setup(fit, specs, by, type)
    link = fit.spec.family.link
    idx = _index(cells, by_names + names)
    draws = _beta_draws(fit)
    if draws is not None:
        eta = draws @ L.T + off
        out = _posterior_summary(link.inverse(eta) if type == "response" else eta, level)
        return pd.DataFrame(out, index=idx)
    est, se, df = _ml_inference(fit, L, ddf)
    est = est + off
    q = _crit(df, level)
    lo, hi = est - q * se, est + q * se
    if type == "response":
        se = se * np.abs(link.mu_eta(est))
        lo, hi = link.inverse(lo), link.inverse(hi)
        lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
        est = link.inverse(est)
    return pd.DataFrame({"estimate": est, "se": se, "df": df, "lower": lo, "upper": hi}, index=idx)


def contrasts(fit, specs, method="pairwise", by=None, adjust: str | None = None, type: str = "link",
              ddf=None, level: float = 0.95) -> pd.DataFrame:
    """Contrasts among the marginal means of ``specs``, within each level of ``by``.

    Parameters
    ----------
    method : {"pairwise", "trt.vs.ctrl"} or dict
        ``"pairwise"``: every ``A - B`` (emmeans's ``pairs``); ``"trt.vs.ctrl"``: each level
        minus the first; a dict maps a label to one weight per mean.
    adjust : {None, "tukey", "holm", "bonferroni", "none"}
        Multiplicity adjustment within each ``by`` group (Tukey: pairwise only).  None:
        Tukey for pairwise, none for a dict (as emmeans), Holm for trt.vs.ctrl (emmeans uses
        its Dunnett approximation, not implemented here).
    type : {"link", "response"}
        ``"response"`` shows differences on a log / logit scale as ratios / odds ratios
        (``A / B``), SE by the delta method; the statistic and p stay on the link scale.
    Other parameters as :func:`emmeans`.

    Returns
    -------
    DataFrame indexed by contrast label (``by`` first), columns ``estimate, se, df,
    statistic, p`` (posterior: ``estimate, se, lower, upper``).
    """
    if adjust is None:
        adjust = "tukey" if method == "pairwise" else "none" if isinstance(method, dict) else "holm"
    _check(type, level, adjust)
    names, by_names, cells, L, off = _setup(fit, specs, by, type)
    ratio_name = fit.spec.family.link.contrast_ratio if type == "response" else None
    groups = [cells.index.to_numpy()] if not by_names else \
        [g.index.to_numpy() for _, g in cells.groupby(by_names, sort=False, observed=True)]
    rows, labels, fam, by_vals = [], [], [], []
    for gi, ix in enumerate(groups):
        C, labs, n_means = contrast_weights(len(ix), _cell_labels(cells.loc[ix], names), method,
                                            ratio_name is not None)
        rows.append(C @ L[ix])
        labels += labs
        fam += [(gi, n_means)] * len(labs)
        by_vals += [tuple(cells.loc[ix[0], by_names])] * len(labs)
    Lc = np.vstack(rows)
    idx = (pd.Index(labels, name="contrast") if not by_names else
           pd.MultiIndex.from_tuples([(*b, lab) for b, lab in zip(by_vals, labels)],
                                     names=by_names + ["contrast"]))
    draws = _beta_draws(fit)
    if draws is not None:
        d = draws @ Lc.T
        return pd.DataFrame(_posterior_summary(np.exp(d) if ratio_name else d, level), index=idx)
    est, se, df = _ml_inference(fit, Lc, ddf)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = est / se
    p = np.empty(len(est))
    fam_arr = np.array([f[0] for f in fam])
    for gi in np.unique(fam_arr):
        sel = fam_arr == gi
        p[sel] = adjust_p(t[sel], df[sel], adjust, fam[int(np.flatnonzero(sel)[0])][1])
    if ratio_name:
        est = np.exp(est)
        se = se * est
    return pd.DataFrame({"estimate": est, "se": se, "df": df, "statistic": t, "p": p}, index=idx)

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
import sys

import numpy as np
import pandas as pd
from scipy import special

__all__ = ["parse_specs", "reference_grid", "emm_matrix", "contrast_weights", "adjust_p",
           "emmeans", "contrasts", "emtrends", "hdi", "dunnett_sf", "TYPES", "ADJUST", "METHODS",
           "WEIGHTS", "INTERVALS"]

TYPES = ("link", "response")
ADJUST = ("tukey", "dunnettx", "dunnett", "holm", "bonferroni", "none")
METHODS = ("pairwise", "trt.vs.ctrl")
WEIGHTS = ("equal", "proportional", "outer", "cells", "flat")
INTERVALS = ("quantile", "hdi")
#: emmeans's pbkrtest.limit / lmerTest.limit: above this many rows its lmer default is asymptotic
DDF_ROW_LIMIT = 3000


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


# ------------------------------------------------------------------------ inference
def _resolve_ddf(res, ddf):
    """emmeans's lmer default for ``ddf=None``: Kenward-Roger up to 3,000 rows (its
    pbkrtest.limit), asymptotic above; ``"asymptotic"``: z inference.  Non-LMMs: None."""
    from ..ml.inference.ddf import is_lmm
    if not is_lmm(res.spec):
        return None
    if ddf is None:
        return "kenward-roger" if len(res.spec.y) <= DDF_ROW_LIMIT else None
    if isinstance(ddf, str) and ddf.strip().lower() in ("asymptotic", "z", "none"):
        return None
    return ddf


def _ml_inference(res, L: np.ndarray, ddf):
    """(estimate, se, df) of the rows of L for an MLResults."""
    beta = np.asarray(res.fit.beta, dtype=float)
    est = L @ beta
    from ..ml.inference.ddf import cached_info, kr_df, normalize_ddf, satterthwaite_df
    ddf = _resolve_ddf(res, ddf)
    if ddf is None:
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


def _check(type_, level, adjust=None, interval="quantile"):
    if type_ not in TYPES:
        raise ValueError(f"type={type_!r} is not one of {TYPES}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level={level!r} must be in (0, 1), e.g. 0.95")
    if adjust is not None and adjust not in ADJUST:
        raise ValueError(f"adjust={adjust!r} is not one of {ADJUST}")
    if interval not in INTERVALS:
        raise ValueError(f"interval={interval!r} is not one of {INTERVALS} (posterior fits)")


def _beta_draws(fit) -> np.ndarray | None:
    idata = getattr(fit, "idata", None)
    if idata is None:
        return None
    return np.asarray(idata.posterior["beta"], dtype=float).reshape(-1, fit.spec.p)


def _setup(fit, specs, by, type_="link", at=None, weights="equal", trend=None):
    names, by_names = parse_specs(specs, by)
    spec = fit.spec
    if type_ == "response" and spec.family.categorical_response:
        raise ValueError(f"type={type_!r} is not available here for the {spec.family.name!r} family: use "
                         f"emmeans(type='response' or 'mean.class') or type='link' (eta, no intercept)")
    grid = reference_grid(spec, by_names + names, at)
    counts = None if weights == "equal" else grid_counts(spec, grid)
    design = spec.new_design(grid)
    cells, L, off, W = emm_matrix(grid, np.asarray(design.X, float), np.asarray(design.offset, float),
                                  names, by_names, weights, counts)
    if trend is not None:
        L, off = _trend_rows(spec, grid, design, W, trend)
    return names, by_names, cells, L, off, (grid, design, W)


def _trend_rows(spec, grid, design, W, var):
    """emtrends's linear functions: the forward difference of the grid's rows in ``var`` with
    step 0.001 x its range in the data (emmeans's ``delta.var``), averaged as the means are."""
    kind = spec.info["grid"].get(var, (None,))[0]
    if kind != "numeric":
        raise ValueError(f"var={var!r} must be a numeric predictor of formula {spec.formula!r}")
    rng = spec.info.get("grid_data", {}).get("ranges", {}).get(var, 0.0)
    h = 0.001 * rng if rng > 0 else 0.001
    g2 = grid.copy()
    g2[var] = np.asarray(g2[var], dtype=float) + h
    d2 = spec.new_design(g2)
    dX = (np.asarray(d2.X, float) - np.asarray(design.X, float)) / h
    doff = (np.asarray(d2.offset, float) - np.asarray(design.offset, float)) / h
    return W @ dX, W @ doff


def _zero_part_rows(fit, type_, trend):
    """True when ``type="response"`` means must include the zero part (zero-inflated and
    hurdle models: E[y] = (1 - pi) mu, or a hurdle's (1 - pi) mu / (1 - f(0)))."""
    if type_ != "response" or not fit.spec.has_zi:
        return False
    if trend is not None:
        raise ValueError("emtrends on a model with a zero part is on the link scale of the conditional "
                         "model only; use type='link'")
    return True


def _zero_part_mean(fam, eta, zi_eta, aux):
    from scipy.special import expit
    return fam.zero_part_moments(fam.mean(eta), None, expit(zi_eta), **aux)[0]


def _ml_zero_part(res, gridinfo, M):
    """(estimate, se) of ``M`` (k, cells) times the cells' response means E[y] of a model with a
    zero part: delta method through a central-difference Jacobian in (beta, beta_zi, a), the
    fit's joint normal approximation (vcov_beta, vcov_beta_aux, vcov_aux)."""
    from ..ml.auxpar import aux_coords, aux_natural
    _, design, W = gridinfo
    fit, spec = res.fit, res.spec
    fam = spec.family
    if spec.has_disp:
        raise ValueError("type='response' means of a zero-part model with a dispersion formula are not "
                         "available; use type='link'")
    if fit.vcov_beta_aux is None or fit.vcov_aux is None:
        raise ValueError("this fit has no joint covariance of beta and the zero part; refit with fit_ml()")
    X, Xz = np.asarray(design.X, float), np.asarray(design.X_zi, float)
    off = np.asarray(design.offset, float)
    p, pz = X.shape[1], Xz.shape[1]
    bz = np.asarray(fit.beta_zi, float)
    na = np.asarray(fit.vcov_aux).shape[0] - pz
    a0 = aux_coords(fam, fit.aux) if na else np.zeros(0)
    theta0 = np.concatenate([np.asarray(fit.beta, float), bz, a0])

    def f(th):
        aux = aux_natural(fam, th[p + pz:]) if na else {}
        return M @ (W @ _zero_part_mean(fam, X @ th[:p] + off, Xz @ th[p:p + pz], aux))

    est = f(theta0)
    J = np.empty((len(est), theta0.size))
    for j in range(theta0.size):
        h = 1e-5 * max(1.0, abs(theta0[j]))
        e = np.zeros(theta0.size)
        e[j] = h
        J[:, j] = (f(theta0 + e) - f(theta0 - e)) / (2.0 * h)
    Vb, Vba, Va = (np.asarray(x, float) for x in (fit.vcov_beta, fit.vcov_beta_aux, fit.vcov_aux))
    V = np.block([[Vb, Vba], [Vba.T, Va]])
    se = np.sqrt(np.clip(np.einsum("ip,pq,iq->i", J, V, J), 0.0, None))
    return est, se


def _posterior_zero_part(fit, gridinfo):
    """(draws, cells) response means E[y] of a model with a zero part, one per posterior draw."""
    _, design, W = gridinfo
    draws = getattr(fit, "_draws", None)
    if draws is None or "beta_zi" not in draws:
        raise ValueError("this posterior carries no zero-part draws; use type='link'")
    fam = fit.spec.family
    eta = _beta_draws(fit) @ np.asarray(design.X, float).T + np.asarray(design.offset, float)
    zeta = draws["beta_zi"] @ np.asarray(design.X_zi, float).T
    return _zero_part_mean(fam, eta, zeta, fit._zero_part_aux()) @ W.T


def _index(cells: pd.DataFrame, cols: list):
    if len(cols) == 1:
        return pd.Index([v for v in cells[cols[0]]], name=cols[0])
    return pd.MultiIndex.from_frame(cells[cols].astype(object))


def _posterior_summary(draws: np.ndarray, level: float, interval: str = "quantile") -> dict:
    a = (1.0 - level) / 2.0
    if interval == "hdi":
        lo, hi = hdi(draws, level)
    else:
        lo, hi = np.quantile(draws, a, axis=0), np.quantile(draws, 1.0 - a, axis=0)
    return {"estimate": draws.mean(0), "se": draws.std(0, ddof=1), "lower": lo, "upper": hi}


def _ml_only_interval(interval):
    if interval != "quantile":
        raise ValueError(f"interval={interval!r} is for posterior fits; ML intervals are Wald (t or z)")


def emmeans(fit, specs, by=None, type: str = "link", ddf=None, level: float = 0.95, *, at=None,
            weights: str = "equal", interval: str = "quantile", _trend=None) -> pd.DataFrame:
    """Estimated marginal means of ``specs`` (see the module docstring).

    Parameters
    ----------
    fit : MLResults or a posterior results object (has ``idata``)
    specs : str or list of str
        Factor(s): ``"A"``, ``["A", "B"]``, ``"~ A"`` or ``"~ A | B"``.
    by : str or list of str, optional
        Factor(s) within whose levels the means are taken.
    type : {"link", "response"}
        ``"response"`` on a zero-inflated or hurdle model: E[y] including the zero part
        (glmmTMB's ``predict(type="response")`` averaged over the grid).
    ddf : {None, "kenward-roger", "satterthwaite", "asymptotic"}
        LMMs only (ML).  None: emmeans's lmer default, Kenward-Roger up to 3,000 rows and
        asymptotic (df = inf) above.
    level : float
    at : dict, optional
        Covariate values (one or a list) and factor levels to keep, as emmeans's ``at``.
    weights : {"equal", "proportional", "outer", "cells", "flat"}
        How the other factors are averaged over, as emmeans's ``weights``.
    interval : {"quantile", "hdi"}
        Posterior fits: equal-tailed or highest-density interval.

    Returns
    -------
    DataFrame indexed by the levels (``by`` first), columns ``estimate, se, df, lower, upper``
    (posterior: ``estimate`` is the posterior mean, ``se`` the SD, no ``df``).
    Ordinal fits take ``type="response"`` (category probabilities, emmeans's ``mode = "prob"``)
    and ``"mean.class"``: :mod:`bayes_glmm.postfit.emmeans_ordinal`.
    """
    from .emmeans_ordinal import is_ordinal_request, ordinal_emmeans
    if is_ordinal_request(fit, type):
        _check("link", level, interval=interval)
        return ordinal_emmeans(sys.modules[__name__], fit, *parse_specs(specs, by), type, level, at=at,
                               weights=weights, interval=interval)
    _check(type, level, interval=interval)
    zero = _zero_part_rows(fit, type, _trend)
    names, by_names, cells, L, off, gridinfo = _setup(fit, specs, by, type, at, weights, _trend)
    link = fit.spec.family.link
    idx = _index(cells, by_names + names)
    draws = _beta_draws(fit)
    if draws is not None:
        if zero:
            out = _posterior_summary(_posterior_zero_part(fit, gridinfo), level, interval)
        else:
            eta = draws @ L.T + off
            out = _posterior_summary(link.inverse(eta) if type == "response" else eta, level, interval)
        return pd.DataFrame(out, index=idx)
    _ml_only_interval(interval)
    if zero:
        est, se = _ml_zero_part(fit, gridinfo, np.eye(len(cells)))
        q = _crit(np.full(len(est), np.inf), level)
        return pd.DataFrame({"estimate": est, "se": se, "df": np.inf, "lower": est - q * se,
                             "upper": est + q * se}, index=idx)
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


def emtrends(fit, specs, var: str, by=None, ddf=None, level: float = 0.95, *, at=None,
             weights: str = "equal", interval: str = "quantile") -> pd.DataFrame:
    """Slopes of the linear predictor in the numeric covariate ``var`` per level of ``specs``,
    as R's ``emtrends(fit, specs, var)``: the forward difference of the reference grid's rows
    with step 0.001 x the range of ``var`` (emmeans's ``delta.var``), ``var`` at its mean
    (or ``at``), link scale.  Columns as :func:`emmeans`."""
    return emmeans(fit, specs, by=by, type="link", ddf=ddf, level=level, at=at, weights=weights,
                   interval=interval, _trend=var)


def contrasts(fit, specs, method="pairwise", by=None, adjust: str | None = None, type: str = "link",
              ddf=None, level: float = 0.95, *, at=None, weights: str = "equal", interval: str = "quantile",
              trend: str | None = None) -> pd.DataFrame:
    """Contrasts among the marginal means of ``specs``, within each level of ``by``.

    Parameters
    ----------
    method : {"pairwise", "trt.vs.ctrl"} or dict
        ``"pairwise"``: every ``A - B`` (emmeans's ``pairs``); ``"trt.vs.ctrl"``: each level
        minus the first; a dict maps a label to one weight per mean.
    adjust : {None, "tukey", "dunnettx", "holm", "bonferroni", "none"}
        Multiplicity adjustment within each ``by`` group (Tukey: pairwise only).  None:
        Tukey for pairwise, none for a dict, Dunnett for trt.vs.ctrl (as emmeans).
        ``"dunnettx"`` (alias ``"dunnett"``): the max-|t| distribution of the family's
        statistics with pairwise correlations 0.5, the distribution emmeans's default
        ``"dunnettx"`` approximates.
    type : {"link", "response"}
        ``"response"`` shows differences on a log / logit scale as ratios / odds ratios
        (``A / B``), SE by the delta method; the statistic and p stay on the link scale.
        On a zero-inflated or hurdle model: differences of the response means E[y] (with
        the zero part), delta-method SE and z tests on that scale.
    trend : str, optional
        Contrast the slopes in this numeric covariate (``pairs(emtrends(...))``) instead of
        the means.
    Other parameters as :func:`emmeans`.

    Returns
    -------
    DataFrame indexed by contrast label (``by`` first), columns ``estimate, se, df,
    statistic, p`` (posterior: ``estimate, se, lower, upper``).
    """
    if adjust is None:
        adjust = "tukey" if method == "pairwise" else "none" if isinstance(method, dict) else "dunnettx"
    from .emmeans_ordinal import is_ordinal_request, ordinal_contrasts
    if is_ordinal_request(fit, type) and trend is None:  # ordinal: differences of expected classes
        _check("link", level, adjust, interval)
        return ordinal_contrasts(sys.modules[__name__], fit, *parse_specs(specs, by), method, adjust, type, level,
                                 at=at, weights=weights, interval=interval)
    _check(type, level, adjust, interval)
    if trend is not None and type != "link":
        raise ValueError("contrasts of trends are on the link scale; use type='link'")
    zero = _zero_part_rows(fit, type, trend)
    names, by_names, cells, L, off, gridinfo = _setup(fit, specs, by, type, at, weights, trend)
    ratio_name = fit.spec.family.link.contrast_ratio if type == "response" and not zero else None
    groups = [cells.index.to_numpy()] if not by_names else \
        [g.index.to_numpy() for _, g in cells.groupby(by_names, sort=False, observed=True)]
    rows, labels, fam, by_vals, crows = [], [], [], [], []
    for gi, ix in enumerate(groups):
        C, labs, n_means = contrast_weights(len(ix), _cell_labels(cells.loc[ix], names), method,
                                            ratio_name is not None)
        rows.append(C @ L[ix])
        Cfull = np.zeros((len(C), len(cells)))
        Cfull[:, ix] = C
        crows.append(Cfull)
        labels += labs
        fam += [(gi, n_means)] * len(labs)
        by_vals += [tuple(cells.loc[ix[0], by_names])] * len(labs)
    Lc = np.vstack(rows)
    idx = (pd.Index(labels, name="contrast") if not by_names else
           pd.MultiIndex.from_tuples([(*b, lab) for b, lab in zip(by_vals, labels)],
                                     names=by_names + ["contrast"]))
    draws = _beta_draws(fit)
    if draws is not None:
        d = _posterior_zero_part(fit, gridinfo) @ np.vstack(crows).T if zero else draws @ Lc.T
        return pd.DataFrame(_posterior_summary(np.exp(d) if ratio_name else d, level, interval), index=idx)
    _ml_only_interval(interval)
    if zero:
        est, se = _ml_zero_part(fit, gridinfo, np.vstack(crows))
        df = np.full(len(est), np.inf)
    else:
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

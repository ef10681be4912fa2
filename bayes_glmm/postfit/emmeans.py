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

import numpy as np
import pandas as pd
from scipy import special

from .emm_grid import (ADJUST, INTERVALS, METHODS, TYPES, WEIGHTS, adjust_p, adjusted_crit, cell_labels,
                       contrast_weights, dunnett_sf, emm_matrix, grid_counts, hdi, ml_only_interval, parse_specs,
                       posterior_summary, reference_grid)
from .emmeans_ordinal import is_ordinal_request, ordinal_contrasts, ordinal_emmeans

__all__ = ["parse_specs", "reference_grid", "emm_matrix", "contrast_weights", "adjust_p",
           "emmeans", "contrasts", "emtrends", "hdi", "dunnett_sf", "TYPES", "ADJUST", "METHODS",
           "WEIGHTS", "INTERVALS"]

#: emmeans's pbkrtest.limit / lmerTest.limit: above this many rows its lmer default is asymptotic
DDF_ROW_LIMIT = 3000


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
    if is_ordinal_request(fit, type):
        _check("link", level, interval=interval)
        return ordinal_emmeans(fit, *parse_specs(specs, by), type, level, at=at,
                               weights=weights, interval=interval)
    _check(type, level, interval=interval)
    zero = _zero_part_rows(fit, type, _trend)
    names, by_names, cells, L, off, gridinfo = _setup(fit, specs, by, type, at, weights, _trend)
    link = fit.spec.family.link
    idx = _index(cells, by_names + names)
    draws = _beta_draws(fit)
    if draws is not None:
        if zero:
            out = posterior_summary(_posterior_zero_part(fit, gridinfo), level, interval)
        else:
            eta = draws @ L.T + off
            out = posterior_summary(link.inverse(eta) if type == "response" else eta, level, interval)
        return pd.DataFrame(out, index=idx)
    ml_only_interval(interval)
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
    DataFrame indexed by contrast label (``by`` first), columns ``estimate, se, df, lower,
    upper, statistic, p`` (posterior: ``estimate, se, lower, upper``).  ML intervals are
    simultaneous within each ``by`` group under ``adjust``, as emmeans's
    ``confint(contrast(...))``: Tukey's studentized range, the Dunnett max-|t| quantile,
    Bonferroni (also for ``"holm"``, as emmeans), or per contrast for ``"none"``; ratios get
    the back-transformed link-scale interval.
    """
    if adjust is None:
        adjust = "tukey" if method == "pairwise" else "none" if isinstance(method, dict) else "dunnettx"
    if is_ordinal_request(fit, type) and trend is None:  # ordinal: differences of expected classes
        _check("link", level, adjust, interval)
        return ordinal_contrasts(fit, *parse_specs(specs, by), method, adjust, type, level,
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
        C, labs, n_means = contrast_weights(len(ix), cell_labels(cells.loc[ix], names), method,
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
        return pd.DataFrame(posterior_summary(np.exp(d) if ratio_name else d, level, interval), index=idx)
    ml_only_interval(interval)
    if zero:
        est, se = _ml_zero_part(fit, gridinfo, np.vstack(crows))
        df = np.full(len(est), np.inf)
    else:
        est, se, df = _ml_inference(fit, Lc, ddf)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = est / se
    p, q = np.empty(len(est)), np.empty(len(est))
    fam_arr = np.array([f[0] for f in fam])
    for gi in np.unique(fam_arr):
        sel = fam_arr == gi
        n_means = fam[int(np.flatnonzero(sel)[0])][1]
        p[sel] = adjust_p(t[sel], df[sel], adjust, n_means)
        q[sel] = adjusted_crit(df[sel], adjust, n_means, level)
    lo, hi = est - q * se, est + q * se
    if ratio_name:  # the link-scale interval back-transformed, as emmeans does for ratios
        est, lo, hi = np.exp(est), np.exp(lo), np.exp(hi)
        se = se * est
    return pd.DataFrame({"estimate": est, "se": se, "df": df, "lower": lo, "upper": hi, "statistic": t, "p": p},
                        index=idx)

"""Plots for mixed models (matplotlib / ArviZ); every function returns its Figure.

``plot_caterpillar``       posterior intervals of random effects, BLUPs overlaid
``plot_shrinkage``         no pooling -> partial pooling arrows (marker size = group size)
``plot_prior_posterior``   prior and posterior density of one SD, ML estimate marked
``plot_prior_sensitivity`` a grid of the above for each prior of :func:`prior_sensitivity`
``plot_prior_predictive``  prior predictive statistics against the observed values
``plot_ppc``               posterior predictive check (``arviz.plot_ppc``)
``plot_funnel``            log SD against one random effect, centered vs non-centered
``plot_rank_groups``       top-k probabilities and rank intervals next to BLUP ranks
``plot_residuals``         simulated (DHARMa) residuals: uniform QQ plot, residual vs predicted
                           rank (also as ``residuals``)

The comparison forest plot lives in :mod:`bayes_glmm.postfit.comparison`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..teaching._common import coef_index, find_term, posterior_draws, spec_of, term_draws
from ..teaching.sensitivity import prior_pdf

__all__ = ["plot_caterpillar", "plot_shrinkage", "plot_prior_posterior", "plot_prior_sensitivity",
           "plot_prior_predictive", "plot_ppc", "plot_funnel", "plot_rank_groups", "plot_residuals",
           "residuals"]


def _plt():
    import matplotlib.pyplot as plt
    return plt


def _new_axes(ax, nrows=1, ncols=1, **kw):
    if ax is not None:
        return ax.figure, np.atleast_1d(ax)
    fig, axes = _plt().subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes.ravel()


def _check_prob(prob):
    if not 0 < prob < 1:
        raise ValueError(f"prob={prob!r} must be in (0, 1), e.g. 0.9")


# ----------------------------------------------------------------------------- caterpillar
def plot_caterpillar(post, term: str | None = None, coef: str | None = None, *, ml=None,
                     prob: float = 0.9, sort: bool = True, ax=None):
    """Caterpillar plot: posterior intervals of each level's random effect.

    Parameters
    ----------
    post : BayesResults
    term : str, optional
        Random term (name, identifier or grouping factor); default the first.
    coef : str, optional
        One coefficient; default one panel per coefficient of the term.
    ml : MLResults, optional
        Overlays the conditional modes (BLUPs) as open circles.
    prob : float
        Central interval probability.
    sort : bool
        Order levels by posterior mean.
    ax : matplotlib Axes, optional
        Only with a single coefficient.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per coefficient: an errorbar per level (posterior mean and interval),
        BLUP markers when ``ml`` is given, and a reference line at 0.
    """
    _check_prob(prob)
    spec = spec_of(post)
    k, t = find_term(spec, term, coef)
    cols = [coef_index(t, coef)] if coef is not None else list(range(t.q))
    if ax is not None and len(cols) > 1:
        raise ValueError("ax= needs a single coefficient; pass coef=... or leave ax=None")
    b = term_draws(post, t)
    blup = None if ml is None else np.asarray(ml._point_params()[1][k], dtype=float)
    J = t.n_levels
    fig, axes = _new_axes(ax, 1, len(cols), figsize=(4 * len(cols), max(3.0, 0.18 * J + 1)),
                          sharey=False)
    a = (1 - prob) / 2
    for axi, c in zip(axes, cols):
        mean = b[:, :, c].mean(0)
        lo, hi = np.quantile(b[:, :, c], [a, 1 - a], axis=0)
        order = np.argsort(mean) if sort else np.arange(J)
        y = np.arange(J)
        axi.errorbar(mean[order], y, xerr=[mean[order] - lo[order], hi[order] - mean[order]], fmt="o",
                     ms=3, lw=1, color="C0", label=f"posterior mean, {prob:.0%} interval")
        if blup is not None:
            axi.scatter(blup[order, c], y, marker="o", facecolors="none", edgecolors="C3", zorder=3,
                        label="BLUP (ML conditional mode)")
        axi.axvline(0.0, color="0.5", lw=0.8, ls="--")
        if J <= 40:
            axi.set_yticks(y)
            axi.set_yticklabels([str(v) for v in t.levels[order]], fontsize=7)
        else:
            axi.set_yticks([])
        axi.set_ylabel(t.group)
        axi.set_xlabel(f"b[{t.coef_names[c]}]")
        axi.set_title(f"{t.name}: {t.coef_names[c]}")
        axi.legend(fontsize=7, loc="lower right")
    return fig


# ----------------------------------------------------------------------------- shrinkage
def plot_shrinkage(table: pd.DataFrame, *, partial: str = "auto", size_scale: float | None = None,
                   ax=None):
    """No-pooling estimates shrinking to partial pooling, one arrow per group.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`bayes_glmm.teaching.pooling`.
    partial : {"auto", "partial_ml", "partial_bayes"}
        Which partial-pooling column; "auto" prefers ``partial_bayes``.
    size_scale : float, optional
        Marker area (points^2) per observation, so marker size is proportional to group
        size; default ``200 / max(n)`` (the largest group gets area 200).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        No pooling on the upper row, partial pooling on the lower row, an arrow per group
        (``ax.patches``/annotations), and a vertical line per distinct complete-pooling
        value.  Groups with an infinite no-pooling estimate (separation) sit at the plot
        edge as triangles.
    """
    need = {"n", "complete", "no_pool"}
    if not isinstance(table, pd.DataFrame) or not need <= set(table.columns):
        raise ValueError("table must be the DataFrame returned by bayes_glmm.teaching.pooling()")
    if partial == "auto":
        partial = "partial_bayes" if "partial_bayes" in table else "partial_ml"
    if partial not in table:
        raise ValueError(f"table has no {partial!r} column; pass ml= or post= to pooling()")
    fig, (axi,) = _new_axes(ax, figsize=(8, 3.5))
    npool = table["no_pool"].to_numpy(float)
    pp = table[partial].to_numpy(float)
    n = table["n"].to_numpy(float)
    ok = ~np.isnan(npool)
    fin = np.isfinite(npool)
    vals = np.concatenate([npool[fin], pp, table["complete"].to_numpy(float)])
    lo, hi = np.min(vals), np.max(vals)
    pad = 0.08 * (hi - lo if hi > lo else 1.0)
    xl, xr = lo - pad, hi + pad
    x_top = np.where(fin, npool, np.where(npool > 0, xr, xl))
    s = (size_scale if size_scale is not None else 200.0 / max(n.max(), 1.0)) * n
    axi.scatter(x_top[fin], np.ones(fin.sum()), s=s[fin], alpha=0.5, color="C0", label="no pooling")
    inf = ok & ~fin
    if inf.any():
        axi.scatter(x_top[inf], np.ones(inf.sum()), s=s[inf], marker=">", alpha=0.5, color="C1",
                    label="no pooling = ±inf (separation)")
        lft = inf & (npool < 0)
        axi.scatter(x_top[lft], np.ones(lft.sum()), s=s[lft], marker="<", alpha=0.5, color="C1")
    axi.scatter(pp, np.zeros(len(pp)), s=s, alpha=0.5, color="C2", label=partial.replace("_", " "))
    for j in np.flatnonzero(ok):
        axi.annotate("", xy=(pp[j], 0.04), xytext=(x_top[j], 0.96),
                     arrowprops=dict(arrowstyle="->", color="0.4", lw=0.6, alpha=0.6))
    for v in np.unique(np.round(table["complete"].to_numpy(float), 10)):
        axi.axvline(v, color="C3", ls="--", lw=1)
    axi.plot([], [], color="C3", ls="--", label="complete pooling")
    axi.set_xlim(xl - pad, xr + pad)
    axi.set_ylim(-0.4, 1.4)
    axi.set_yticks([0, 1])
    axi.set_yticklabels([partial.replace("_", " "), "no pooling"])
    coef = table.attrs.get("coef", "coefficient")
    axi.set_xlabel(f"{coef} per {table.index.name or 'group'} ({table.attrs.get('scale', 'link scale')})")
    axi.set_title("Shrinkage: no pooling → partial pooling (marker size = group size)")
    axi.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=4, frameon=False)
    if ax is None:
        fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- priors
def _kde(x, grid):
    from scipy.stats import gaussian_kde
    x = np.asarray(x, dtype=float)
    if x.size < 2 or np.std(x) == 0:
        return np.zeros_like(grid)
    # reflect at 0: SDs are positive
    dens = gaussian_kde(np.concatenate([x, -x]))(grid) * 2.0
    return np.where(grid >= 0, dens, 0.0)


def plot_prior_posterior(prior, draws, *, on: str = "sd", ml: float | None = None, coef: int = 0,
                         xmax: float | None = None, title: str | None = None, ax=None):
    """Prior density (dashed) and posterior density (solid) of one SD; ML estimate marked.

    Parameters
    ----------
    prior : Prior
    draws : array-like
        Posterior draws of the SD.
    on : {"sd", "variance"}
        Whether ``prior`` is on the SD or on the variance.
    ml : float, optional
        ML estimate of the SD (vertical line).
    coef : int
        Entry of a vector-valued prior parameter.
    xmax : float, optional
        Upper end of the x axis (default 1.3 x the posterior 99th percentile).
    title : str, optional
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    draws = np.asarray(draws, dtype=float).ravel()
    fig, (axi,) = _new_axes(ax, figsize=(4, 3))
    top = xmax or 1.3 * max(np.quantile(draws, 0.99), ml or 0.0)
    grid = np.linspace(0.0, top, 300)
    axi.plot(grid, prior_pdf(prior, grid, on=on, coef=coef), ls="--", color="0.4", label="prior")
    axi.plot(grid, _kde(draws, grid), color="C0", label="posterior")
    if ml is not None and np.isfinite(ml):
        axi.axvline(ml, color="C3", lw=1, label="ML estimate")
    axi.set_xlim(0, top)
    axi.set_xlabel("SD")
    axi.set_yticks([])
    axi.set_title(title or repr(prior), fontsize=8)
    axi.legend(fontsize=7)
    return fig


def plot_prior_sensitivity(result):
    """One figure: prior vs posterior density of each SD under each prior, ML marked.

    Parameters
    ----------
    result : SensitivityResult
        From :func:`bayes_glmm.teaching.prior_sensitivity`.

    Returns
    -------
    matplotlib.figure.Figure
        A grid with one row per coefficient SD of the term and one column per prior.
    """
    # priors without a posterior (unreliable importance weights, refit=False) are not drawn
    labels = [lab for lab in result.priors if len(result.sd_draws[lab])]
    q = len(result.coef_names)
    fig, axes = _plt().subplots(q, len(labels), figsize=(3.2 * len(labels), 2.8 * q), squeeze=False)
    for i, cn in enumerate(result.coef_names):
        ml = None if result.ml_sd is None else float(result.ml_sd[i])
        top = 1.3 * max(max(np.quantile(result.sd_draws[lab][:, i], 0.99) for lab in labels), ml or 0.0)
        for j, lab in enumerate(labels):
            pr, on = result.priors[lab]
            plot_prior_posterior(pr, result.sd_draws[lab][:, i], on=on, ml=ml, coef=i, xmax=top,
                                 title=f"{lab}\n{pr.name}{' on variance' if on == 'variance' else ''}",
                                 ax=axes[i, j])
            axes[i, j].set_xlabel(f"sd[{cn}] ({result.term})")
    fig.tight_layout()
    return fig


def _hist_range(x: np.ndarray, observed: float, clip):
    """x-axis limits for one statistic's histogram and how many draws fall outside them.

    A long tail (a log link turns wide priors into counts in the millions) is cut at the
    central ``clip`` quantile interval; draws within half that interval's width of it stay,
    so a statistic without a long tail keeps its full range.  The observed value is always
    inside.
    """
    if not x.size:
        return observed, observed, 0
    lo, hi = float(np.min(x)), float(np.max(x))
    if clip is not None:
        qlo, qhi = (float(v) for v in np.quantile(x, [(1.0 - clip) / 2.0, (1.0 + clip) / 2.0]))
        width = qhi - qlo
        if width > 0:
            lo = qlo if lo < qlo - 0.5 * width else lo
            hi = qhi if hi > qhi + 0.5 * width else hi
    if np.isfinite(observed):
        lo, hi = min(lo, observed), max(hi, observed)
    return lo, hi, int(np.sum((x < lo) | (x > hi)))


def plot_prior_predictive(summary, *, bins: int = 40, clip: float | None = 0.99):
    """Histograms of prior-predictive statistics with the observed value marked.

    Parameters
    ----------
    summary : PriorPredictiveSummary
        From :func:`bayes_glmm.teaching.prior_predictive_summary`.
    bins : int
    clip : float or None
        Central quantile interval of the draws kept on the x axis when a statistic has a
        long tail (default 0.99: the axis ends at the 99.5% quantile); the panel then says
        how many draws lie beyond it and the largest.  ``None`` shows every draw.  A
        non-negative statistic spread over orders of magnitude (the median under 1/50 of the
        axis end) gets a symmetric-log axis.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per statistic (``summary.stats`` columns).
    """
    if clip is not None and not 0.0 < float(clip) <= 1.0:
        raise ValueError(f"clip={clip!r} must be in (0, 1] (a central quantile share) or None")
    st = summary.stats
    m = st.shape[1]
    ncol = min(3, m)
    nrow = int(np.ceil(m / ncol))
    fig, axes = _plt().subplots(nrow, ncol, figsize=(3.5 * ncol, 2.6 * nrow), squeeze=False)
    for axi, name in zip(axes.ravel(), st.columns):
        x = st[name].to_numpy(float)
        x = x[np.isfinite(x)]
        obs = float(summary.observed[name])
        lo, hi, n_out = _hist_range(x, obs, clip)
        shown = x[(x >= lo) & (x <= hi)]
        pos = shown[shown > 0]
        med = float(np.median(shown)) if shown.size else 0.0
        if lo >= 0 and med > 0 and hi > 50.0 * med and pos.size:
            # values over orders of magnitude (a log link): a symmetric-log axis, linear below
            # the smallest positive values, with bins equally wide on it
            lin = float(np.quantile(pos, 0.01))
            edges = 2.0 * lin * np.sinh(np.linspace(np.arcsinh(lo / (2.0 * lin)), np.arcsinh(hi / (2.0 * lin)),
                                                    bins + 1))
            axi.hist(shown, bins=edges, color="C0", alpha=0.6)
            axi.set_xscale("symlog", linthresh=lin)
            axi.set_xlim(lo, hi * 1.05)
        else:
            axi.hist(shown, bins=bins, range=(lo, hi) if hi > lo else None, color="C0", alpha=0.6)
            if hi > lo:
                pad = 0.02 * (hi - lo)
                axi.set_xlim(lo - pad, hi + pad)
        axi.axvline(obs, color="C3", lw=1.5, label="observed")
        if n_out:
            axi.text(0.98, 0.95, f"long tail cut: {n_out} of {x.size} draws\noff the axis "
                     f"(range {x.min():.3g} to {x.max():.3g})", transform=axi.transAxes, ha="right",
                     va="top", fontsize=6, color="0.3")
        axi.set_title(name, fontsize=9)
        axi.set_yticks([])
    for axi in axes.ravel()[m:]:
        axi.remove()
    axes.ravel()[0].legend(fontsize=7, loc="upper left")
    fig.suptitle("Prior predictive distribution of data summaries")
    fig.tight_layout()
    return fig


def plot_ppc(post, *, kind: str = "kde", num_pp_samples: int = 50, random_seed=None, ax=None):
    """Posterior predictive check with :func:`arviz.plot_ppc`.

    Uses ``post.idata.posterior_predictive`` when present; otherwise draws it into a new
    InferenceData (``post.idata`` is not modified).

    Parameters
    ----------
    post : BayesResults
    kind : {"kde", "cumulative", "scatter"}
    num_pp_samples : int
    random_seed : int, optional
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    import arviz as az
    idata = getattr(post, "idata", None)
    if idata is None:
        raise ValueError("post must be BayesResults from model.sample()")
    if "posterior_predictive" not in idata.groups():
        from ..bayes import posterior_predictive
        pp = posterior_predictive(idata, post.spec, random_seed=random_seed, extend=False)
        idata = az.InferenceData(posterior_predictive=pp.posterior_predictive,
                                 observed_data=idata.observed_data)
    axes = az.plot_ppc(idata, kind=kind, num_pp_samples=num_pp_samples, random_seed=random_seed, ax=ax)
    first = np.atleast_1d(axes).ravel()[0]
    return first.figure


# ----------------------------------------------------------------------------- funnel
def plot_funnel(result, level: int | str = 0):
    """Funnel: log SD against one level's random effect, centered vs non-centered.

    Parameters
    ----------
    result : FunnelResult
        From :func:`bayes_glmm.teaching.funnel_demo`.
    level : int or str
        Level (position or label) whose random effect is on the x axis.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes; divergent transitions in red.
    """
    labels = list(result.fits)
    fig, axes = _plt().subplots(1, len(labels), figsize=(4.5 * len(labels), 3.8), sharey=True,
                                squeeze=False)
    for axi, lab in zip(axes.ravel(), labels):
        fit = result.fits[lab]
        _, t = find_term(fit.spec, result.term)
        j = level if isinstance(level, (int, np.integer)) else list(map(str, t.levels)).index(str(level))
        b = term_draws(fit, t)[:, j, 0]
        logsd = np.log(posterior_draws(fit, f"sd_{t.ident}").reshape(len(b), -1)[:, 0])
        # an approximate posterior (fit_inla) has independent draws and no sampler statistics
        stats = getattr(fit.idata, "sample_stats", None)
        div = (np.asarray(stats["diverging"].values, dtype=bool).ravel()
               if stats is not None and "diverging" in stats else np.zeros(len(b), dtype=bool))
        axi.scatter(b[~div], logsd[~div], s=4, alpha=0.4, color="C0", label="draws")
        axi.scatter(b[div], logsd[div], s=10, color="C3", label=f"divergent ({div.sum()})")
        axi.set_xlabel(f"b[{t.levels[j]}]")
        axi.set_title(lab)
        axi.legend(fontsize=7)
    axes.ravel()[0].set_ylabel(f"log sd_{result.term}")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- ranking
def plot_rank_groups(ranking: pd.DataFrame, n: int | None = None):
    """Top-k probabilities and posterior rank intervals, with BLUP ranks.

    Parameters
    ----------
    ranking : pandas.DataFrame
        From :func:`bayes_glmm.teaching.rank_groups`.
    n : int, optional
        How many groups to show (default ``min(levels, 3 k)``).

    Returns
    -------
    matplotlib.figure.Figure
        Left: bar of P(top k) per group; right: posterior rank interval (line), mean rank
        (dot) and BLUP rank (cross, when available).
    """
    if not isinstance(ranking, pd.DataFrame) or "p_top_k" not in ranking:
        raise ValueError("ranking must be the DataFrame returned by bayes_glmm.teaching.rank_groups()")
    k = ranking.attrs.get("k", 1)
    n = n or min(len(ranking), 3 * k)
    top = ranking.iloc[:n]
    y = np.arange(n)[::-1]
    fig, (a1, a2) = _plt().subplots(1, 2, figsize=(9, max(3.0, 0.3 * n + 1)), sharey=True)
    a1.barh(y, top["p_top_k"], color="C0")
    a1.set_xlim(0, 1)
    a1.set_xlabel(f"P(in top {k})")
    a1.set_yticks(y)
    a1.set_yticklabels([str(v) for v in top.index], fontsize=7)
    a1.set_ylabel(ranking.index.name or "group")
    a2.hlines(y, top["rank_lo"], top["rank_hi"], color="C0", lw=2)
    a2.scatter(top["mean_rank"], y, color="C0", zorder=3, label="posterior mean rank")
    if "blup_rank" in top:
        a2.scatter(top["blup_rank"], y, marker="x", color="C3", zorder=4, label="BLUP rank")
    a2.axvline(k + 0.5, color="0.5", ls="--", lw=0.8)
    a2.set_xlabel("rank (1 = most extreme)")
    a2.legend(fontsize=7)
    fig.suptitle(f"Ranking by {ranking.attrs.get('coef', '')} ({ranking.attrs.get('term', '')})")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- residuals
def plot_residuals(fit, *, n_sim: int = 250, random_seed=None, residuals=None):
    """DHARMa's residual plot: the simulated residuals' uniform QQ plot, and the residuals
    against the rank-transformed predictions with the 0.25 / 0.5 / 0.75 lines.

    Parameters
    ----------
    fit : MLResults or BayesResults
    n_sim, random_seed
        Passed to ``fit.residuals("simulated", ...)``.
    residuals : array, optional
        Scaled residuals already computed (then ``n_sim`` and ``random_seed`` are unused).

    Returns
    -------
    matplotlib.figure.Figure
    """
    u = (np.asarray(fit.residuals("simulated", n_sim=n_sim, random_seed=random_seed), dtype=float)
         if residuals is None else np.asarray(residuals, dtype=float))
    pred = np.asarray(fit.predict(kind="mean"), dtype=float)
    if pred.shape != u.shape:
        raise ValueError(f"residuals has {u.size} values; the fit has {pred.size} rows")
    fig, (ax_qq, ax_rp) = _new_axes(None, 1, 2, figsize=(9, 4))
    n = u.size
    expected = (np.arange(1, n + 1) - 0.5) / n
    ax_qq.plot(expected, np.sort(u), ".", ms=3)
    ax_qq.plot([0, 1], [0, 1], color="red", lw=1)
    ax_qq.set(xlabel="expected (uniform)", ylabel="observed scaled residual", title="QQ plot of residuals",
              xlim=(0, 1), ylim=(0, 1))
    # predictions as ranks in [0, 1], so that the panel reads the same on any response scale
    rank = (pd.Series(pred).rank(method="average").to_numpy() - 0.5) / n
    outlier = (u == 0) | (u == 1)
    ax_rp.plot(rank[~outlier], u[~outlier], ".", ms=3, alpha=0.6)
    ax_rp.plot(rank[outlier], u[outlier], "*", color="red", ms=6, label="outside all simulations")
    for q in (0.25, 0.5, 0.75):
        ax_rp.axhline(q, color="grey", ls="--", lw=1)
    ax_rp.set(xlabel="model predictions (rank transformed)", ylabel="scaled residual",
              title="Residual vs predicted", xlim=(0, 1), ylim=(-0.02, 1.02))
    if outlier.any():
        ax_rp.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


#: ``bg.plots.residuals(fit)``, the name DHARMa users look for
residuals = plot_residuals

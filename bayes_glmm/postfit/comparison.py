"""Side-by-side comparison of any number of fits of the same GLMM.

:func:`compare` turns each fit into rows of one tidy table -- per parameter the point
estimate, its uncertainty and an interval -- and measures every fit against a reference
fit; :func:`plot_compare` draws the same table as a forest plot.

Any object with the fit accessors works (duck typing, see :mod:`bayes_glmm.postfit.protocol`):

=====================  =====================================  ==================================
fit                    estimate / uncertainty                 interval
=====================  =====================================  ==================================
posterior (``idata``)  posterior mean / posterior SD          equal-tailed posterior quantiles
ML (Laplace, AGQ(n))   MLE / Wald SE (fixed effects)          Wald ``est +- z se`` (fixed)
PQL, GEE               estimate / SE (fixed effects)          Wald (fixed)
=====================  =====================================  ==================================

For point fits the SDs, correlations and sigma are reported with ``se`` and interval NaN:
no profile-likelihood or delta-method interval is computed for variance components
(their sampling distributions are skewed and bounded; use a posterior fit or ``lrt``).
Random effects (``ranef=True``) use the conditional SDs (``ranef_sd``) when the fit has
them.

Parameter labels follow :meth:`bayes_glmm.bayes.BayesResults.summary`: the
coefficient name for fixed effects, ``sd_<term>[coef]``, ``corr_<term>[coef1, coef2]``,
``sigma``, ``zi_<coef>`` (zero inflation), the dispersion's name (``theta``, ``phi``,
``shape``) and ``b_<group>[level, coef]``.  The dispersion of a point fit gets a Wald
interval on the log scale, transformed back.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .protocol import is_posterior, method_name, posterior_draws, stack_draws
from ..spec.model_spec import py_name

__all__ = ["CompareTable", "compare", "fit_table", "plot_compare", "loo_compare", "KINDS"]

#: parameter kinds, in display order ("zi": zero-inflation coefficients, labelled
#: ``zi_<coef>``; "dispersion": ``theta`` / ``phi`` / ``shape`` of the NB, Gamma and Beta families)
KINDS = ("fixed", "zi", "sd", "corr", "sigma", "dispersion", "ranef")
_GROUPS = {"all": ("fixed", "zi", "sd", "corr", "sigma", "dispersion"), "varcorr": ("sd", "corr", "sigma")}
_COLUMNS = ["param", "kind", "group", "estimate", "se", "lower", "upper", "interval"]


def _summ(draws: np.ndarray, a: float):
    """(mean, sd, lower, upper) over axis 0."""
    return (draws.mean(0), draws.std(0, ddof=1) if draws.shape[0] > 1 else np.full(draws.shape[1:], np.nan),
            np.quantile(draws, a, axis=0), np.quantile(draws, 1 - a, axis=0))


def _posterior_rows(fit, a: float, with_ranef: bool) -> list:
    spec = fit.spec
    d = posterior_draws(fit, ranef=with_ranef)
    label = f"posterior {100 * (1 - 2 * a):g}%"
    rows = []
    m, s, lo, hi = _summ(d["beta"], a)
    for j, nm in enumerate(spec.fixed_names):
        rows.append((nm, "fixed", None, m[j], s[j], lo[j], hi[j], label))
    for k, term in enumerate(spec.terms):
        cov = d["covs"][k]
        sd = np.sqrt(np.clip(np.einsum("sii->si", cov), 0, None))
        m, s, lo, hi = _summ(sd, a)
        for j, nm in enumerate(term.coef_names):
            rows.append((f"sd_{term.ident}[{nm}]", "sd", term.group, m[j], s[j], lo[j], hi[j], label))
        if term.cov.n_corr(term.q) > 0:
            with np.errstate(invalid="ignore", divide="ignore"):
                corr = cov / (sd[:, :, None] * sd[:, None, :])
            for j in range(term.q):
                for i in range(j + 1, term.q):
                    m, s, lo, hi = _summ(corr[:, i, j], a)
                    rows.append((f"corr_{term.ident}[{term.coef_names[j]}, {term.coef_names[i]}]", "corr",
                                 term.group, m, s, lo, hi, label))
    if d["sigma"] is not None:
        m, s, lo, hi = _summ(d["sigma"], a)
        rows.append(("sigma", "sigma", None, m, s, lo, hi, label))
    post = fit.idata.posterior
    lab = getattr(spec, "zi_label", "zi")  # "zi", or a hurdle's "hu"
    if getattr(spec, "has_zi", False) and f"beta_{lab}" in post:
        m, s, lo, hi = _summ(stack_draws(fit.idata, f"beta_{lab}"), a)
        for j, nm in enumerate(spec.zi_names):
            rows.append((f"{lab}_{nm}", "zi", None, m[j], s[j], lo[j], hi[j], label))
    for dname in spec.family.aux_names:  # every auxiliary parameter (sigma: its row above)
        if dname in post and not (dname == "sigma" and d["sigma"] is not None):
            m, s, lo, hi = _summ(stack_draws(fit.idata, dname), a)
            rows.append((dname, "dispersion", None, m, s, lo, hi, label))
    if with_ranef:
        for term, b in zip(spec.terms, d["b"]):
            m, s, lo, hi = _summ(b, a)
            for li, lev in enumerate(term.levels):
                for j, nm in enumerate(term.coef_names):
                    rows.append((f"b_{py_name(term.group)}[{lev}, {nm}]", "ranef", term.group,
                                 m[li, j], s[li, j], lo[li, j], hi[li, j], label))
    return rows


def _varcorr_rows(vc: pd.DataFrame, spec) -> list:
    rows = []
    groups = {t.name: t.group for t in spec.terms} if spec is not None else {}
    for _, r in vc.iterrows():
        grp, v1, v2 = r["grp"], r["var1"], r["var2"]
        missing2 = v2 is None or (isinstance(v2, float) and np.isnan(v2))
        if grp == "Residual":
            rows.append(("sigma", "sigma", None, float(r["sdcor"])))
        elif missing2:
            rows.append((f"sd_{py_name(grp)}[{v1}]", "sd", groups.get(grp, grp), float(r["sdcor"])))
        else:
            rows.append((f"corr_{py_name(grp)}[{v1}, {v2}]", "corr", groups.get(grp, grp), float(r["sdcor"])))
    return rows


def _wald_row(param, kind, est, se, z, label):
    """A Wald row; without a positive SE (NaN: a coefficient at the boundary, whose SE the
    fit reports as NA) there is no interval -- never a zero-width one."""
    if np.isnan(se) or se <= 0:
        return (param, kind, None, est, se, np.nan, np.nan, "none (no SE: at a boundary)")
    return (param, kind, None, est, se, est - z * se, est + z * se, label)


def _point_rows(fit, a: float, with_ranef: bool) -> list:
    fx = pd.Series(getattr(fit, "fixef"), dtype=float)
    se = getattr(fit, "se", None)
    se = pd.Series(se, dtype=float).reindex(fx.index) if se is not None else pd.Series(np.nan, index=fx.index)
    z = stats.norm.ppf(1 - a)
    label = f"Wald {100 * (1 - 2 * a):g}%"
    rows = [_wald_row(nm, "fixed", fx[nm], se[nm], z, label) for nm in fx.index]
    spec = getattr(fit, "spec", None)
    if spec is not None and getattr(spec, "has_zi", False) and hasattr(fit, "se_zi"):
        fz, sz = fit.fixef_zi, fit.se_zi
        lab = getattr(spec, "zi_label", "zi")
        rows += [_wald_row(f"{lab}_{nm}", "zi", fz[nm], sz[nm], z, label) for nm in fz.index]
    vc = getattr(fit, "varcorr", None)
    if vc is not None and len(vc):
        for p, kind, grp, est in _varcorr_rows(vc, spec):
            rows.append((p, kind, grp, est, np.nan, np.nan, np.nan, "none"))
    if spec is not None and hasattr(fit, "dispersion_table"):
        # each auxiliary parameter of the family (none for an LMM, whose sigma is a varcorr row):
        # Wald on the log scale (where it is estimated), transformed back; se by the delta method
        t = fit.dispersion_table(level=1 - 2 * a)
        for name in t.index:
            est, sl = float(t.loc[name, "Estimate"]), float(t.loc[name, "SE(log)"])
            on_log = bool(np.isfinite(t.loc[name, "log"]))
            rows.append((name, "dispersion", None, est, est * sl if on_log else sl, float(t.loc[name, "lower"]),
                         float(t.loc[name, "upper"]),
                         f"Wald {100 * (1 - 2 * a):g}%" + (" (log scale)" if on_log else "")))
    if with_ranef:
        re = getattr(fit, "ranef", None) or {}
        re_sd = getattr(fit, "ranef_sd", None) or {}
        for grp, df in re.items():
            sd_df = re_sd.get(grp)
            for lev in df.index:
                for nm in df.columns:
                    est = float(df.loc[lev, nm])
                    s = float(sd_df.loc[lev, nm]) if sd_df is not None else np.nan
                    rows.append((f"b_{py_name(grp)}[{lev}, {nm}]", "ranef", grp, est, s, est - z * s,
                                 est + z * s, "conditional mode +- z cond. SD" if np.isfinite(s) else "none"))
    return rows


def fit_table(fit, *, ranef: bool = False, interval: float = 0.95) -> pd.DataFrame:
    """One fit as a tidy table: param, kind, group, estimate, se, lower, upper, interval.

    Parameters
    ----------
    fit : results object
        Posterior, ML, PQL or GEE fit (anything with ``fixef``; see the module docstring).
    ranef : bool
        Include the random effects.
    interval : float
        Interval probability.
    """
    if not 0 < interval < 1:
        raise ValueError(f"interval must be in (0, 1); got {interval}")
    if getattr(fit, "fixef", None) is None:
        raise ValueError(f"{type(fit).__name__} has no fixef; pass fits from GLMM.fit_ml, GLMM.sample, "
                         f"GLMM.fit_pql or fit_gee")
    a = (1 - interval) / 2
    rows = _posterior_rows(fit, a, ranef) if is_posterior(fit) else _point_rows(fit, a, ranef)
    out = pd.DataFrame(rows, columns=_COLUMNS)
    for c in ("estimate", "se", "lower", "upper"):
        out[c] = out[c].astype(float)
    return out


def _select(table: pd.DataFrame, params) -> pd.DataFrame:
    if isinstance(params, str):
        params = [params]
    kinds, names = set(), set()
    for p in params:
        if p in _GROUPS:
            kinds.update(_GROUPS[p])
        elif p in KINDS:
            kinds.add(p)
        else:
            names.add(p)
    unknown = names - set(table["param"])
    if unknown:
        raise ValueError(f"params {sorted(unknown)} are neither kinds ({list(_GROUPS) + list(KINDS)}) nor "
                         f"parameter labels of these fits (e.g. {table['param'].head(5).tolist()})")
    return table[table["kind"].isin(kinds) | table["param"].isin(names)]


def _names(fits, names) -> list:
    if names is None:
        names = [method_name(f) for f in fits]
    names = [str(n) for n in names]
    if len(names) != len(fits):
        raise ValueError(f"names has {len(names)} entries for {len(fits)} fits")
    seen: dict = {}
    out = []
    for n in names:  # de-duplicate: two posterior fits under different priors, etc.
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} ({seen[n]})")
    return out


def compare(*fits, names=None, reference=0, params="all", ranef: bool = False, interval: float = 0.95,
            threshold: float = 2.0) -> pd.DataFrame:
    """Compare fits parameter by parameter in one tidy DataFrame.

    Parameters
    ----------
    *fits : results objects
        Posterior fits (one or more priors), ML (Laplace / AGQ), PQL and GEE fits.
    names : list of str, optional
        Labels of the fits (default: their ``method``; repeats get " (2)", ...).
    reference : int or str
        The fit the others are measured against (position or name).
    params : str or list
        ``"all"`` (fixed, SDs, correlations, sigma), ``"fixed"``, ``"varcorr"``, ``"sd"``,
        ``"corr"``, ``"sigma"``, or a list of those and/or parameter labels.
    ranef : bool
        Also compare the random effects (their rows are added to any ``params``).
    interval : float
        Interval probability (posterior quantiles; Wald for point fits).
    threshold : float
        ``flag`` marks ``|z| > threshold``.

    Returns
    -------
    pandas.DataFrame
        One row per (fit, parameter): ``fit``, ``method``, ``param``, ``kind``, ``group``,
        ``estimate``, ``se``, ``lower``, ``upper``, ``interval``, ``diff`` (estimate minus
        the reference's), ``z`` (``diff`` in units of the reference's SD/SE; where that is
        NaN -- a point fit's variance components -- the compared fit's own SD/SE is used,
        and ``z_scale`` says which: ``"reference"``, ``"own"``, or ``"none"`` when neither
        fit has an SD/SE for it), ``flag`` (``|z| > threshold``).  A :class:`CompareTable`:
        printed (terminal or notebook) it shows one row per parameter and one column group
        per fit; ``.long()`` gives the plain long frame.

    Examples
    --------
    >>> bg.compare(post, ml_agq, pql, names=["Bayes", "AGQ(25)", "PQL"])   # doctest: +SKIP
    """
    if not fits:
        raise ValueError("compare needs at least one fit")
    labels = _names(fits, names)
    if isinstance(reference, str):
        if reference not in labels:
            raise ValueError(f"reference={reference!r} is not one of the fit names {labels}")
        ref = labels.index(reference)
    else:
        ref = int(reference)
        if not -len(fits) <= ref < len(fits):
            raise ValueError(f"reference={reference} is out of range for {len(fits)} fits")
        ref %= len(fits)
    tables = []
    for lab, f in zip(labels, fits):
        t = fit_table(f, ranef=ranef, interval=interval)
        sel = _select(t, params) if not ranef else pd.concat([_select(t[t.kind != "ranef"], params),
                                                              t[t.kind == "ranef"]])
        tables.append(sel.assign(fit=lab, method=method_name(f)))
    reft = tables[ref].set_index("param")
    out = pd.concat(tables, ignore_index=True)
    ref_est = out["param"].map(reft["estimate"])
    ref_se = out["param"].map(reft["se"])
    out["diff"] = out["estimate"] - ref_est
    use_ref = ref_se.notna() & (ref_se > 0)
    scale = np.where(use_ref, ref_se, out["se"])
    with np.errstate(invalid="ignore", divide="ignore"):
        out["z"] = out["diff"] / scale
    out["z_scale"] = np.where(use_ref, "reference", np.where(out["se"].notna(), "own", "none"))
    out.loc[out["fit"] == labels[ref], ["z_scale"]] = "reference"
    out["flag"] = out["z"].abs() > threshold
    order = {k: i for i, k in enumerate(KINDS)}
    out["_k"] = out["kind"].map(order)
    out["_p"] = out["param"].map({p: i for i, p in enumerate(dict.fromkeys(out["param"]))})
    out["_f"] = out["fit"].map({n: i for i, n in enumerate(labels)})
    out = out.sort_values(["_k", "_p", "_f"]).drop(columns=["_k", "_p", "_f"]).reset_index(drop=True)
    return CompareTable(out[["fit", "method", "param", "kind", "group", "estimate", "se", "lower", "upper",
                             "interval", "diff", "z", "z_scale", "flag"]].reset_index(drop=True))


class CompareTable(pd.DataFrame):
    """The long table :func:`compare` returns, *displayed* wide.

    It is an ordinary DataFrame (one row per fit and parameter; select, filter and plot it
    as such: derived frames are plain DataFrames).  Printed, or shown in a notebook, it is
    pivoted to one row per parameter with one column group per fit (estimate, interval
    and z against the reference), which is what one reads; :meth:`wide` returns that
    view and :meth:`long` the plain long frame.
    """

    @property
    def _constructor(self):
        return pd.DataFrame

    def long(self) -> pd.DataFrame:
        """The long form: one row per (fit, parameter)."""
        return pd.DataFrame(self)

    def wide(self, columns=("estimate", "lower", "upper", "z")) -> pd.DataFrame:
        """One row per parameter (in the fits' order), one column group per fit."""
        d = pd.DataFrame(self)
        params = list(dict.fromkeys(d["param"]))
        fits = list(dict.fromkeys(d["fit"]))
        w = d.pivot_table(index="param", columns="fit", values=list(columns), aggfunc="first", dropna=False)
        w = w.swaplevel(0, 1, axis=1)
        order = [(f, c) for f in fits for c in columns if (f, c) in w.columns]
        return w.reindex(index=params)[order]

    def __repr__(self) -> str:
        if not {"fit", "param", "estimate"} <= set(self.columns) or self.empty:
            return pd.DataFrame.__repr__(self)
        body = self.wide().to_string(float_format=lambda v: f"{v:.4g}", na_rep="")
        return body + "\n(wide view of the long table; .long() for one row per fit and parameter, " \
                      "z = difference from the reference in units of z_scale's SD/SE)"

    def _repr_html_(self) -> str:
        if not {"fit", "param", "estimate"} <= set(self.columns) or self.empty:
            return pd.DataFrame._repr_html_(self)
        return self.wide().to_html(float_format=lambda v: f"{v:.4g}", na_rep="")


def plot_compare(*fits, names=None, reference=0, params="fixed", ranef: bool = False,
                 interval: float = 0.95, threshold: float = 2.0, ax=None, table: pd.DataFrame | None = None):
    """Forest plot of :func:`compare`: one line per parameter, one marker per fit.

    Parameters
    ----------
    *fits, names, reference, params, ranef, interval, threshold
        As for :func:`compare`.
    ax : matplotlib Axes, optional
        Draw into this axes (default: a new figure).
    table : DataFrame, optional
        A table from :func:`compare` to draw instead of fitting one.

    Returns
    -------
    (matplotlib.figure.Figure, matplotlib.axes.Axes)
        Intervals are drawn where available (posterior quantiles, Wald for point fixed
        effects; none for a coefficient without a positive SE, e.g. a zero-inflation
        coefficient at its boundary); flagged estimates (``|z| > threshold``) are outlined in red.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    tab = table if table is not None else compare(*fits, names=names, reference=reference, params=params,
                                                  ranef=ranef, interval=interval, threshold=threshold)
    if tab.empty:
        raise ValueError("nothing to plot: the selected params gave no rows")
    params_order = list(dict.fromkeys(tab["param"]))
    fit_order = list(dict.fromkeys(tab["fit"]))
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(params_order) * max(1, len(fit_order) / 2) + 1.5))
    else:
        fig = ax.figure
    n_f = len(fit_order)
    offs = (np.arange(n_f) - (n_f - 1) / 2) * (0.7 / max(n_f, 1))
    colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    handles = []
    for fi, name in enumerate(fit_order):
        sub = tab[tab["fit"] == name]
        y = np.array([params_order.index(p) for p in sub["param"]]) + offs[fi]
        c = colors[fi % len(colors)]
        # only real intervals: a point fit's boundary coefficient has none (NaN SE), and a
        # zero-width segment would read as perfect certainty
        has = np.isfinite(sub["lower"].to_numpy(float)) & np.isfinite(sub["upper"].to_numpy(float)) & (
            sub["upper"].to_numpy(float) > sub["lower"].to_numpy(float))
        ax.hlines(y[has], sub["lower"][has], sub["upper"][has], color=c, lw=1.5)
        ax.scatter(sub["estimate"], y, color=c, zorder=3,
                   edgecolors=np.where(sub["flag"], "red", c), linewidths=np.where(sub["flag"], 2.0, 0.5))
        # legend entries from plain markers: a flagged first point must not colour the key
        handles.append(Line2D([], [], color=c, marker="o", lw=1.5, label=name))
    ax.set_yticks(np.arange(len(params_order)))
    ax.set_yticklabels(params_order)
    ax.invert_yaxis()
    ax.axvline(0.0, color="0.7", lw=0.8, zorder=0)
    ax.set_xlabel(f"estimate ({100 * interval:g}% interval; red outline: |z| > {threshold:g} vs reference)")
    ax.legend(handles=handles, loc="best", fontsize="small")
    fig.tight_layout()
    return fig, ax


# ----------------------------------------------------------------------------- LOO
def _collect_warnings(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` with its warnings recorded instead of shown: (value, records).

    Floating-point warnings are silenced: with a Pareto k of inf (an observation the draws
    cannot reweight) ArviZ's stacking divides by zero, a consequence of the cause reported.
    """
    import warnings

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        with np.errstate(all="ignore"):
            out = fn(*args, **kwargs)
    return out, list(rec)


def loo_compare(*posts, names=None, method: str = "stacking", random_seed=None):
    """PSIS-LOO model comparison of posterior fits (``arviz.compare``), with Pareto-k explained.

    Parameters
    ----------
    *posts : BayesResults
        Posterior fits of the *same response on the same rows* (checked), each with a
        ``log_likelihood`` group (added by ``sample()`` by default).
    names : list of str, optional
        Labels (default: the formula, with the family where formulas repeat).
    method : {"stacking", "BB-pseudo-BMA", "pseudo-BMA"}
        How ArviZ computes the model weights.
    random_seed : int, optional
        For the Bayesian-bootstrap weights (``method="BB-pseudo-BMA"``).

    Returns
    -------
    pandas.DataFrame
        ``arviz.compare``'s table (rank, elpd_loo, p_loo, elpd_diff, weight, se, dse, warning)
        plus ``n_bad_k`` (observations with Pareto k > 0.7) and ``max_k``; ``attrs["notes"]``
        explains any large k.

    Notes
    -----
    PSIS-LOO approximates leave-one-out by importance sampling from the full posterior. The
    Pareto shape k of each observation's importance weights says whether that works: k < 0.5
    fine, 0.5-0.7 acceptable, > 0.7 the estimate for that observation is unreliable (the
    observation is influential: the posterior changes a lot without it). In mixed models this
    happens when a group has few observations, so that leaving one out moves that group's
    random effect; remedies are K-fold cross-validation by group, or moment matching.
    ``elpd_diff`` within about 2 ``dse`` of 0 is not a meaningful difference.
    """
    import arviz as az

    if len(posts) < 2:
        raise ValueError("loo_compare needs at least two posterior fits")
    for i, p in enumerate(posts):
        if not is_posterior(p):
            raise ValueError(f"fit {i} is a {type(p).__name__}, not a posterior fit (GLMM.sample()); for ML fits "
                             f"use bg.lrt or compare AIC")
        if "log_likelihood" not in p.idata.groups():
            raise ValueError(f"fit {i} has no log_likelihood group; sample with log_likelihood=True")
    s0 = posts[0].spec
    for i, p in enumerate(posts[1:], 1):
        s = p.spec
        if s.n != s0.n or not s.row_index.equals(s0.row_index) or not np.array_equal(s.y, s0.y):
            raise ValueError(f"fit {i} was fitted to a different response or different rows than fit 0; "
                             f"LOO compares models of the same observations")
    if names is None:
        forms = [p.spec.formula for p in posts]
        names = [f"{p.spec.formula} [{p.spec.family.name}" + (f", zi {p.spec.zi_formula}" if p.spec.has_zi else "")
                 + "]" if forms.count(p.spec.formula) > 1 else p.spec.formula for p in posts]
    names = _names(posts, names)
    loos = {}
    notes = []
    caught = []
    for nm, p in zip(names, posts):
        # ArviZ warns once per model per call (and compare() recomputes loo): collected here
        # and reported once per cause below, so one call does not print a screenful
        res, rec = _collect_warnings(az.loo, p.idata, pointwise=True)
        caught += rec
        loos[nm] = res
        k = np.asarray(res.pareto_k).ravel()
        bad = int(np.sum(k > 0.7))
        good_k = float(getattr(res, "good_k", 0.7))
        if bad:
            worst = np.argsort(k)[::-1][:5]
            notes.append(f"{nm}: {bad} observation(s) with Pareto k > 0.7 (rows {worst.tolist()} worst, "
                         f"max k {k.max():.2f}): PSIS-LOO is unreliable for them -- influential observations, "
                         f"typically in small groups; use K-fold cross-validation by group")
        elif np.any(k > good_k):
            # ArviZ's threshold min(1 - 1/log10(S), 0.7) for S draws: more draws may suffice
            notes.append(f"{nm}: {int(np.sum(k > good_k))} observation(s) with Pareto k > {good_k:.2f} "
                         f"(ArviZ's threshold for {res.n_samples} draws; max k {k.max():.2f}): PSIS-LOO may "
                         f"be unreliable for them; draw more samples or use K-fold cross-validation by group")
    kw = {"seed": random_seed} if method == "BB-pseudo-BMA" else {}
    table, rec = _collect_warnings(az.compare, {nm: p.idata for nm, p in zip(names, posts)}, ic="loo",
                                   method=method, **kw)
    caught += rec
    table["n_bad_k"] = [int(np.sum(np.asarray(loos[nm].pareto_k) > 0.7)) for nm in table.index]
    table["max_k"] = [float(np.max(np.asarray(loos[nm].pareto_k))) for nm in table.index]
    table.attrs["notes"] = notes
    import warnings
    if notes:
        warnings.warn("large Pareto k in PSIS-LOO for " + ("one model" if len(notes) == 1 else
                      f"{len(notes)} models") + ":\n  " + "\n  ".join(notes), UserWarning, stacklevel=2)
    seen = set()
    for w in caught:
        msg = str(w.message)
        # the Pareto-k warnings are the notes above; deprecations inside ArviZ are not the user's
        if msg.startswith("Estimated shape parameter of Pareto") or issubclass(
                w.category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning)):
            continue
        if (w.category, msg) not in seen:
            seen.add((w.category, msg))
            warnings.warn(msg, w.category, stacklevel=2)
    return table

"""What the priors imply on the response scale: a prior predictive check.

:func:`prior_predictive_summary` draws data sets from the prior predictive distribution
and reduces each to a few interpretable statistics -- the overall mean response (a
proportion for binary/binomial data, a count or value otherwise), the spread and extremes
of the group means, and the share of zeros for counts -- then tabulates their prior
quantiles next to the observed values.  Priors that put most of their mass on absurd
data (every group at 0% or 100%, counts in the millions) show up at once.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._common import find_term, spec_of

__all__ = ["prior_predictive_summary", "PriorPredictiveSummary", "response_statistics", "QUANTILES"]

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def response_statistics(Y, spec, term=None) -> pd.DataFrame:
    """Per-data-set statistics of simulated (or observed) responses.

    Parameters
    ----------
    Y : ndarray (S, n) or (n,)
        Responses (successes for binomial) for the rows of ``spec``.
    spec : ModelSpec
    term : str, optional
        Grouping term for the group-mean statistics (default the first term).

    Returns
    -------
    pandas.DataFrame
        One row per data set; columns ``mean`` (mean response per row: proportion for
        bernoulli/binomial), ``sd_group_means``, ``min_group_mean``, ``max_group_mean``,
        and for counts also ``prop_zero`` and ``max``; for binary data ``prop_groups_all_0``
        and ``prop_groups_all_1``.
    """
    Y = np.atleast_2d(np.asarray(Y, dtype=float))
    fam = spec.family
    r = Y / np.asarray(spec.trials, dtype=float)[None, :] if fam.needs_trials else Y
    out = {"mean": r.mean(axis=1)}
    if spec.terms:
        _, t = find_term(spec, term)
        J = t.n_levels
        size = np.bincount(t.codes, minlength=J).astype(float)
        sums = np.stack([np.bincount(t.codes, weights=row, minlength=J) for row in r])
        ok = size > 0
        gm = sums[:, ok] / size[ok]
        out.update(sd_group_means=gm.std(axis=1), min_group_mean=gm.min(axis=1),
                   max_group_mean=gm.max(axis=1))
        if fam.is_binary:
            out.update(prop_groups_all_0=(gm == 0).mean(axis=1), prop_groups_all_1=(gm == 1).mean(axis=1))
    if fam.is_count:
        out.update(prop_zero=(Y == 0).mean(axis=1), max=Y.max(axis=1))
    return pd.DataFrame(out)


@dataclass
class PriorPredictiveSummary:
    """Output of :func:`prior_predictive_summary`.

    Attributes
    ----------
    table : pandas.DataFrame
        Statistic x prior quantiles (``q05`` ... ``q95``), plus ``observed`` and
        ``p_below_observed`` (share of prior data sets with a smaller value).
    stats : pandas.DataFrame
        Per-draw statistics (see :func:`response_statistics`).
    observed : pandas.Series
        The statistics of the observed data.
    idata : arviz.InferenceData
        The prior and prior-predictive draws.
    """

    table: pd.DataFrame
    stats: pd.DataFrame
    observed: pd.Series
    idata: object = None

    def __repr__(self) -> str:
        return "PriorPredictiveSummary\n" + self.table.to_string(float_format=lambda v: f"{v:.4g}")


def _pp_values(idata):
    pp = getattr(idata, "prior_predictive", None)
    if pp is None or not len(pp.data_vars):
        raise ValueError("the InferenceData has no prior_predictive group; "
                         "use model.prior_predictive(draws, random_seed=...)")
    name = "y" if "y" in pp else list(pp.data_vars)[0]
    a = np.asarray(pp[name].values, dtype=float)
    return a.reshape(-1, a.shape[-1])


def prior_predictive_summary(model, draws: int = 500, random_seed=None, *, term: str | None = None,
                             idata=None) -> PriorPredictiveSummary:
    """Quantiles of response-scale statistics implied by the priors.

    Parameters
    ----------
    model : GLMM
    draws : int
        Number of prior predictive data sets.
    random_seed : int, optional
    term : str, optional
        Grouping term for the group-mean statistics (default the first).
    idata : arviz.InferenceData, optional
        Existing ``model.prior_predictive(...)`` output (skips the sampling).

    Returns
    -------
    PriorPredictiveSummary
        ``.table`` (statistic x quantile, observed value), ``.stats`` per draw; plot with
        :func:`bayes_glmm.postfit.plots.plot_prior_predictive`.

    Examples
    --------
    >>> s = prior_predictive_summary(model, draws=200, random_seed=1)   # doctest: +SKIP
    >>> s.table.loc["mean"]                                             # doctest: +SKIP
    """
    spec = spec_of(model)
    if idata is None:
        if not hasattr(model, "prior_predictive"):
            raise ValueError("model must be a bayes_glmm.GLMM (or pass idata=model.prior_predictive(...))")
        idata = model.prior_predictive(draws=draws, random_seed=random_seed)
    Y = _pp_values(idata)
    if Y.shape[1] != spec.n:
        raise ValueError(f"prior predictive draws have {Y.shape[1]} rows but the model has {spec.n}")
    st = response_statistics(Y, spec, term)
    obs = response_statistics(spec.y, spec, term).iloc[0]
    qs = st.quantile(list(QUANTILES)).T
    qs.columns = [f"q{int(round(100 * q)):02d}" for q in QUANTILES]
    qs["observed"] = obs
    qs["p_below_observed"] = (st < obs).mean(axis=0)
    qs.index.name = "statistic"
    return PriorPredictiveSummary(table=qs, stats=st, observed=obs, idata=idata)

"""Generalized estimating equations (Liang & Zeger 1986) on a GLMM's fixed part.

The classical population-averaged comparison for a GLMM (seed 001, sec. 4.2): the same
response, fixed-effects design, family and link, with the within-group correlation
handled by a working correlation structure and sandwich ("robust") standard errors.
The coefficients estimate the *marginal* effects that
:func:`bayes_glmm.postfit.marginal.marginal_coefficients` derives from a GLMM.

Fitting is done by ``statsmodels.genmod.generalized_estimating_equations.GEE``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["fit_gee", "GEEResults", "COV_STRUCTS"]

COV_STRUCTS = ("exchangeable", "independence")


def _sm_family(family):
    """The statsmodels family of a :class:`~bayes_glmm.families.Family` (its
    ``statsmodels_family``; a quasi-likelihood Gaussian for the families without one, as before)."""
    import statsmodels.api as sm
    link = getattr(sm.families.links, family.link.statsmodels_name)()
    return getattr(sm.families, family.statsmodels_family or "Gaussian")(link=link)


def _sm_cov_struct(cov_struct):
    import statsmodels.api as sm
    if not isinstance(cov_struct, str):
        return cov_struct  # a statsmodels CovStruct instance
    key = cov_struct.lower()
    if key == "exchangeable":
        return sm.cov_struct.Exchangeable()
    if key == "independence":
        return sm.cov_struct.Independence()
    raise ValueError(f"cov_struct={cov_struct!r}; use one of {COV_STRUCTS} or a statsmodels CovStruct")


def _groups_from(spec, data, groups):
    """Cluster labels per row of the spec."""
    if groups is None:
        if not spec.terms:
            raise ValueError("fit_gee needs groups= (a column name) when the formula has no (1 | group) term")
        return np.asarray(spec.terms[0].codes)
    if isinstance(groups, str):
        for t in spec.terms:
            if t.group == groups:
                return np.asarray(t.codes)
        if data is None or groups not in data.columns:
            raise ValueError(f"groups={groups!r} is neither a grouping factor of the model nor a column of data")
        vals = data.loc[spec.row_index, groups]
        return pd.factorize(vals)[0]
    g = np.asarray(groups)
    if g.shape[0] != spec.n:
        raise ValueError(f"groups has {g.shape[0]} values but the model uses {spec.n} rows")
    return pd.factorize(g)[0]


def fit_gee(model_or_formula, data: pd.DataFrame | None = None, family: str = "bernoulli", groups=None,
            cov_struct="exchangeable", *, link: str | None = None, maxiter: int = 100) -> "GEEResults":
    """Fit a GEE with the fixed part of a GLMM.

    Parameters
    ----------
    model_or_formula : GLMM or str
        A :class:`~bayes_glmm.GLMM` (its response, fixed design, offset, family and first
        grouping factor are used), or a formula (random terms are ignored except to supply
        the default ``groups``).
    data : DataFrame, optional
        Needed with a formula, or with a model when ``groups`` names a column of data
        that is not a grouping factor of the model.
    family : str
        With a formula: ``"bernoulli"``, ``"binomial"``, ``"poisson"`` or ``"gaussian"``.
    groups : str or array-like, optional
        Clusters.  Default: the model's first grouping factor.
    cov_struct : {"exchangeable", "independence"} or statsmodels CovStruct
    link : str, optional
        With a formula; default canonical.

    Returns
    -------
    GEEResults
        ``fixef``, ``se`` (robust), ``vcov``, ``summary()``, ``method``.

    Notes
    -----
    Binomial responses with trials are expanded to one Bernoulli row per trial (so each
    trial is a cluster member); prior weights other than 1 are not supported.

    Examples
    --------
    >>> import bayes_glmm as bg                                       # doctest: +SKIP
    >>> m = bg.GLMM("Response ~ Month * Treatment + (1 | ID)",
    ...             bg.datasets.load("toenail"), family="bernoulli")   # doctest: +SKIP
    >>> bg.fit_gee(m).fixef                                            # doctest: +SKIP
    """
    import statsmodels.api as sm

    if isinstance(model_or_formula, str):
        if data is None:
            raise ValueError("fit_gee with a formula needs data=")
        from ..model import GLMM
        model = GLMM(model_or_formula, data, family=family, link=link)
    elif hasattr(model_or_formula, "spec"):
        model = model_or_formula
    else:
        raise ValueError("model_or_formula must be a GLMM or a formula string")
    spec = model.spec
    if np.any(np.asarray(spec.weights) != 1.0):
        raise ValueError("fit_gee does not support prior weights; refit the model without weights=")
    g = _groups_from(spec, data, groups)
    y, X, off = np.asarray(spec.y), np.asarray(spec.X), np.asarray(spec.offset)
    fam = spec.family
    if fam.needs_trials:  # successes out of n -> n binary rows (statsmodels' GEE takes 0/1)
        n = np.asarray(spec.trials).astype(int)
        rows = np.repeat(np.arange(spec.n), n)
        within = np.arange(rows.size) - np.repeat(np.cumsum(n) - n, n)
        y = (within < np.repeat(y.astype(int), n)).astype(float)
        X, off, g = X[rows], off[rows], g[rows]
    order = np.argsort(g, kind="stable")
    mod = sm.GEE(y[order], X[order], groups=g[order], family=_sm_family(fam),
                 cov_struct=_sm_cov_struct(cov_struct), offset=off[order])
    res = mod.fit(maxiter=maxiter)
    name = cov_struct if isinstance(cov_struct, str) else type(cov_struct).__name__
    return GEEResults(spec, res, cov_struct=str(name).lower())


class GEEResults:
    """Population-averaged fit of :func:`fit_gee` (duck-types the fit accessors).

    Attributes
    ----------
    spec : ModelSpec
    result : statsmodels GEEResults
    cov_struct : str
    dep_params : float or ndarray
        Working correlation parameter(s) (the exchangeable correlation).
    """

    def __init__(self, spec, result, cov_struct: str):
        self.spec = spec
        self.result = result
        self.cov_struct = cov_struct
        self.dep_params = result.model.cov_struct.dep_params

    @property
    def method(self) -> str:
        return f"GEE({self.cov_struct})"

    @property
    def fixef(self) -> pd.Series:
        """Marginal (population-averaged) coefficients."""
        return pd.Series(np.asarray(self.result.params), index=list(self.spec.fixed_names), name="Estimate")

    @property
    def vcov(self) -> pd.DataFrame:
        """Robust (sandwich) covariance of the coefficients."""
        names = list(self.spec.fixed_names)
        return pd.DataFrame(np.asarray(self.result.cov_params()), index=names, columns=names)

    @property
    def se(self) -> pd.Series:
        """Robust standard errors."""
        return pd.Series(np.sqrt(np.diag(self.vcov.to_numpy())), index=list(self.spec.fixed_names),
                         name="Std. Error")

    @property
    def varcorr(self) -> pd.DataFrame:
        """Empty: a GEE has no random effects (see ``dep_params`` for the working correlation)."""
        return pd.DataFrame(columns=["grp", "var1", "var2", "vcov", "sdcor"])

    @property
    def ranef(self) -> dict:
        return {}

    @property
    def loglik(self) -> float:
        """NaN: GEE is not likelihood based."""
        return float("nan")

    def summary(self) -> pd.DataFrame:
        """Estimate, robust SE, z value and p-value."""
        est, se = self.fixef, self.se
        z = est / se
        return pd.DataFrame({"Estimate": est, "Std. Error": se, "z value": z,
                             "Pr(>|z|)": 2 * stats.norm.sf(np.abs(z))})

    def __repr__(self) -> str:
        return (f"GEEResults ({self.method}; working correlation {np.round(self.dep_params, 4)})\n"
                + self.summary().to_string())

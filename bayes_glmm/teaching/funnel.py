"""Centered versus non-centered random effects on a small-groups example (Neal's funnel).

With few groups and few observations per group the posterior of a random-effect SD
reaches towards zero, and in the centered parametrization (``b_j ~ N(0, sd)`` sampled
directly) the joint posterior of ``(log sd, b_j)`` is a funnel that NUTS cannot traverse:
divergent transitions and small effective sample sizes.  The non-centered form
(``b_j = sd * u_j``, ``u_j ~ N(0, 1)``, the package default) removes it.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..families import get_family
from ..priors import resolve_centered
from ._common import find_term, posterior_draws, spec_of

__all__ = ["simulate_funnel_data", "funnel_demo", "FunnelResult"]


def simulate_funnel_data(n_groups: int = 8, n_per_group: int = 6, *, family: str = "bernoulli",
                         mu: float = 0.0, sd: float = 0.5, sigma: float = 3.0,
                         random_seed=None) -> pd.DataFrame:
    """Few groups, few observations each, weak group effects: a funnel-shaped posterior.

    Parameters
    ----------
    n_groups, n_per_group : int
    family : str
        ``"bernoulli"``: binary responses with ``logit P(y = 1) = mu + b_j`` (default; few binary
        observations carry little information about each ``b_j``); ``"gaussian"``:
        ``y = mu + b_j + N(0, sigma)``; any family without trials or a dispersion parameter
        (``"poisson"``), drawn by its :meth:`~bayes_glmm.families.Family.random` at ``eta = mu + b_j``.
    mu : float
        Population intercept.
    sd : float
        True SD of the group effects ``b_j``.
    sigma : float
        Residual SD (gaussian only).
    random_seed : int, optional

    Returns
    -------
    pandas.DataFrame
        Columns ``y`` and ``g`` (categorical group labels ``"g1"`` ...).
    """
    if n_groups < 2 or n_per_group < 1:
        raise ValueError(f"need n_groups >= 2 and n_per_group >= 1; got {n_groups}, {n_per_group}")
    fam = get_family(family)
    if fam.needs_trials or fam.has_dispersion:
        raise ValueError(f"family={family!r}: the funnel data need a family without trials or a dispersion "
                         f"parameter, such as 'bernoulli' (the default), 'gaussian' or 'poisson'")
    rng = np.random.default_rng(random_seed)
    b = rng.normal(0.0, sd, n_groups)
    g = np.repeat(np.arange(n_groups), n_per_group)
    eta = mu + b[g]
    y = np.asarray(fam.random(eta, rng, sigma=sigma), dtype=float)
    labels = [f"g{j + 1}" for j in range(n_groups)]
    return pd.DataFrame({"y": y, "g": pd.Categorical(np.array(labels)[g], categories=labels)})


def _with_centered(model, centered: bool):
    if hasattr(model, "with_centered"):
        return model.with_centered(centered)
    new = copy.copy(model)
    new.centered = centered
    new.centered_terms = resolve_centered(model.spec, centered)
    return new


@dataclass
class FunnelResult:
    """Output of :func:`funnel_demo`.

    Attributes
    ----------
    table : pandas.DataFrame
        Index ``"centered"``, ``"non-centered"``; columns ``divergences``,
        ``min_ess_bulk`` (over beta, the SDs and the random effects of the term),
        ``ess_bulk_log_sd`` and ``max_rhat``.
    fits : dict
        Parametrization -> BayesResults.
    term : str
        Identifier of the term shown in the funnel plot.
    data : pandas.DataFrame or None
        The simulated data (when ``funnel_demo`` simulated it).
    """

    table: pd.DataFrame
    fits: dict = field(repr=False)
    term: str = ""
    data: pd.DataFrame | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return "FunnelResult\n" + self.table.to_string()


def _diagnostics(fit, ident) -> dict:
    import arviz as az
    idata = fit.idata
    div = int(np.asarray(idata.sample_stats["diverging"].values).sum())
    names = [v for v in ("beta", f"sd_{ident}", f"b_{ident}") if v in idata.posterior]
    ess = az.ess(idata, var_names=names, method="bulk")
    rhat = az.rhat(idata, var_names=names)
    logsd = np.log(posterior_draws(fit, f"sd_{ident}")[:, 0])
    chains = idata.posterior.sizes["chain"]
    ess_log = float(az.ess(logsd.reshape(chains, -1), method="bulk"))
    return {"divergences": div,
            "min_ess_bulk": float(min(np.nanmin(ess[v].values) for v in names)),
            "ess_bulk_log_sd": ess_log,
            "max_rhat": float(max(np.nanmax(rhat[v].values) for v in names))}


def funnel_demo(model=None, *, term: str | None = None, n_groups: int = 8, n_per_group: int = 6,
                draws: int = 500, tune: int = 500, chains: int = 2, random_seed=None,
                **sample_kwargs) -> FunnelResult:
    """Fit one model centered and non-centered; compare divergences and ESS.

    Parameters
    ----------
    model : GLMM, optional
        Default: bernoulli ``y ~ 1 + (1 | g)`` on :func:`simulate_funnel_data` (8 groups
        of 6 binary observations).
    term : str, optional
        The term whose parametrization is switched and plotted (default the first);
        all terms are switched together.
    n_groups, n_per_group : int
        Size of the simulated data when ``model`` is None.
    draws, tune, chains : int
    random_seed : int, optional
        Seeds the simulation and both fits (the same seed for both).
    **sample_kwargs
        Passed to ``model.sample`` (e.g. ``target_accept``, default 0.8 for both fits).

    Returns
    -------
    FunnelResult
        Plot with :func:`bayes_glmm.postfit.plots.plot_funnel`.
    """
    data = None
    if model is None:
        from ..model import GLMM
        data = simulate_funnel_data(n_groups, n_per_group, random_seed=random_seed)
        model = GLMM("y ~ 1 + (1 | g)", data, family="bernoulli")
    spec = spec_of(model)
    _, t = find_term(spec, term)
    fits, rows = {}, {}
    # one fixed target_accept for both (the package default would rerun a divergent fit at a
    # higher one, hiding the very divergences this demo shows)
    sample_kwargs.setdefault("target_accept", 0.8)
    for label, flag in (("centered", True), ("non-centered", False)):
        fit = _with_centered(model, flag).sample(draws=draws, tune=tune, chains=chains,
                                                 random_seed=random_seed, **sample_kwargs)
        fits[label] = fit
        rows[label] = _diagnostics(fit, t.ident)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "parametrization"
    return FunnelResult(table=table, fits=fits, term=t.ident, data=data)

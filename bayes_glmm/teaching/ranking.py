"""Which groups are the most sensitive?  Posterior ranks of a random slope.

McCulloch's asthma example (seed 001) asks which children are most sensitive to air
pollution, i.e. have the largest random TSP slopes; the skin-cancer example (seed 000)
asks which subjects are most sensitive to the sun.  A BLUP ranking gives one ordering with
no measure of its uncertainty; the posterior gives, for every group, the probability
that it is among the ``k`` most extreme.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ._common import coef_index, find_term, spec_of, term_draws

__all__ = ["rank_groups", "simulate_asthma"]


def simulate_asthma(n_children: int = 60, n_days: int = 30, *, beta=(-2.0, 0.3, 0.2, 0.6),
                    sd_intercept: float = 1.0, sd_tsp: float = 0.4, random_seed=None) -> pd.DataFrame:
    """Simulated data patterned after McCulloch's asthma example (seed 001).

    ``logit P(attack) = b0 + u0_i + (b_tsp + u1_i) TSP + b_sex SEX + b_hayf HAYF`` with
    independent child effects ``u0_i ~ N(0, sd_intercept)`` and ``u1_i ~ N(0, sd_tsp)``.

    Parameters
    ----------
    n_children, n_days : int
    beta : sequence of 4 floats
        Intercept, TSP, SEX and HAYF coefficients.
    sd_intercept, sd_tsp : float
        SDs of the random intercepts and of the random TSP slopes (the "sensitivities").
    random_seed : int, optional

    Returns
    -------
    pandas.DataFrame
        Columns ``attack`` (0/1), ``TSP`` (standardized daily pollution, shared by all
        children on a day), ``SEX``, ``HAYF`` (0/1), ``child`` (categorical) and
        ``true_slope`` (the child's TSP effect ``b_tsp + u1_i``, for checking rankings).
    """
    if n_children < 2 or n_days < 2:
        raise ValueError(f"need n_children >= 2 and n_days >= 2; got {n_children}, {n_days}")
    rng = np.random.default_rng(random_seed)
    tsp_day = rng.normal(size=n_days)
    child = np.repeat(np.arange(n_children), n_days)
    tsp = np.tile(tsp_day, n_children)
    sex = rng.integers(0, 2, n_children)[child]
    hayf = rng.integers(0, 2, n_children)[child]
    u0 = rng.normal(0, sd_intercept, n_children)
    slope = beta[1] + rng.normal(0, sd_tsp, n_children)
    eta = beta[0] + u0[child] + slope[child] * tsp + beta[2] * sex + beta[3] * hayf
    labels = [f"c{j + 1:03d}" for j in range(n_children)]
    return pd.DataFrame({"attack": rng.binomial(1, 1 / (1 + np.exp(-eta))), "TSP": tsp, "SEX": sex,
                         "HAYF": hayf, "child": pd.Categorical(np.array(labels)[child], categories=labels),
                         "true_slope": slope[child]})


def rank_groups(post, term: str | None = None, coef: str | None = None, k: int = 5, ml=None, *,
                largest: bool = True, prob: float = 0.9) -> pd.DataFrame:
    """Rank groups by one random coefficient with posterior top-``k`` probabilities.

    Parameters
    ----------
    post : BayesResults
        Posterior from ``model.sample`` (its ``idata`` must hold ``b_<ident>``).
    term : str, optional
        Random term (name, identifier or grouping factor); default the first term with
        ``coef``.
    coef : str, optional
        The random coefficient to rank by (e.g. the slope ``"TSP"``); default the term's
        last coefficient (the slope in ``(1 + x | g)``).
    k : int
        Size of the "top" set.
    ml : MLResults, optional
        Adds the conditional modes (BLUPs) and their ranking.
    largest : bool
        Rank 1 is the largest coefficient (most sensitive) when True, the smallest when False.
    prob : float
        Probability of the central rank interval.

    Returns
    -------
    pandas.DataFrame
        One row per level, sorted by ``p_top_k`` (descending): ``post_mean`` (random
        effect), ``rank_of_mean`` (rank of the posterior mean), ``mean_rank``,
        ``rank_lo``/``rank_hi`` (central ``prob`` interval of the rank), ``p_top_k``
        (posterior probability of being among the top ``k``; the column sums to ``k``),
        and with ``ml``: ``blup`` and ``blup_rank``.

    Raises
    ------
    ValueError
        If ``k`` is not between 1 and the number of levels.
    """
    spec = spec_of(post)
    ti, t = find_term(spec, term, coef)
    c = coef_index(t, coef) if coef is not None else t.q - 1
    J = t.n_levels
    if not (isinstance(k, (int, np.integer)) and 1 <= k <= J):
        raise ValueError(f"k={k!r} must be an integer between 1 and the number of levels ({J}) of {t.group!r}")
    if not 0 < prob < 1:
        raise ValueError(f"prob={prob!r} must be in (0, 1)")
    b = term_draws(post, t)[:, :, c]  # (S, J)
    sign = -1.0 if largest else 1.0
    # rank 1 = most extreme; ties broken by level order (they have probability 0)
    ranks = np.argsort(np.argsort(sign * b, axis=1, kind="stable"), axis=1) + 1
    mean = b.mean(axis=0)
    alpha = (1 - prob) / 2
    out = pd.DataFrame({
        "post_mean": mean,
        "rank_of_mean": np.argsort(np.argsort(sign * mean, kind="stable")) + 1,
        "mean_rank": ranks.mean(axis=0),
        "rank_lo": np.quantile(ranks, alpha, axis=0),
        "rank_hi": np.quantile(ranks, 1 - alpha, axis=0),
        "p_top_k": (ranks <= k).mean(axis=0),
    }, index=pd.Index(t.levels, name=t.group))
    if ml is not None:
        blup = np.asarray(ml._point_params()[1][ti], dtype=float)[:, c]
        out["blup"] = blup
        out["blup_rank"] = np.argsort(np.argsort(sign * blup, kind="stable")) + 1
    out = out.sort_values(["p_top_k", "mean_rank"], ascending=[False, True])
    out.attrs.update(term=t.name, coef=t.coef_names[c], k=int(k), largest=largest)
    return out

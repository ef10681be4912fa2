"""Simulated (DHARMa-style) residuals and their tests, as pure functions of simulations.

A scaled residual is where the observed response falls in the distribution of responses
simulated from the fitted model: the empirical CDF of the ``n_sim`` simulations at ``y``
(Hartig's DHARMa; Dunn & Smyth 1996 for the randomized quantile residual).  For a discrete
response the CDF jumps at ``y``, so the residual is drawn uniformly inside the jump,
``u = F(y-) + U (F(y) - F(y-))`` (the randomized probability integral transform); then, under
the fitted model, ``u`` is uniform on [0, 1] whatever the family, link or random effects.

The results classes supply the simulations (ML: :meth:`MLResults.simulate`, new random
effects per replicate as DHARMa with lme4's ``simulate``; Bayesian: the posterior predictive,
one replicate per posterior draw) and call these functions; the tests read only ``y`` and the
simulations, so they are the same on both paths.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["scaled_residuals", "residual_tests", "simulation_test", "outside_frequency", "check_n_sim",
           "aggregate_by_group"]


def check_n_sim(n_sim) -> int:
    """``n_sim`` as an int, or an error naming the argument and a sensible value."""
    if isinstance(n_sim, bool) or not isinstance(n_sim, (int, np.integer)) or n_sim < 2:
        raise ValueError(f"n_sim={n_sim!r} must be an integer >= 2 number of simulations (DHARMa uses 250)")
    return int(n_sim)


def scaled_residuals(y, sims, *, discrete: bool, rng=None) -> np.ndarray:
    """Scaled residuals in [0, 1]: the simulations' empirical CDF at the observed values.

    Parameters
    ----------
    y : (n,) array
        Observed responses, on the scale the simulations are on (successes for binomial,
        category codes for ordinal).
    sims : (n, n_sim) array
        Simulated responses, one column per replicate.
    discrete : bool
        Randomize within the CDF's jump at ``y`` (counts, binary, categories).  For a
        continuous response ties have probability 0 and ``u = F(y-)``.
    rng : numpy.random.Generator or seed, optional
        Source of the uniform ``U`` for discrete responses.

    Returns
    -------
    (n,) array
        ``(#{sim < y} + U #{sim == y}) / n_sim``; exactly 0 or 1 when ``y`` lies outside
        every simulation (DHARMa's outliers).
    """
    y = np.asarray(y, dtype=float)
    sims = np.asarray(sims, dtype=float)
    if sims.ndim != 2 or sims.shape[0] != y.shape[0]:
        raise ValueError(f"sims has shape {sims.shape}; expected ({y.shape[0]}, n_sim)")
    n_sim = sims.shape[1]
    below = (sims < y[:, None]).sum(axis=1)
    if not discrete:
        return below / n_sim
    ties = (sims == y[:, None]).sum(axis=1)
    u = np.random.default_rng(rng).uniform(size=y.shape[0])
    return (below + u * ties) / n_sim


def aggregate_by_group(y, sims, codes, n_groups: int) -> tuple:
    """Observed and simulated responses summed within groups (DHARMa's
    ``recalculateResiduals(group=)`` with its default ``aggregateBy = sum``).

    Parameters
    ----------
    y : (n,) array
    sims : (n, n_sim) array
    codes : (n,) int array
        Group of each row, 0 .. n_groups - 1.
    n_groups : int

    Returns
    -------
    (y_g (n_groups,), sims_g (n_groups, n_sim)): residuals and tests computed on these are
    one per group, so a misfit shared by a group's rows (a missing group-level effect) shows
    where row-level residuals dilute it.
    """
    codes = np.asarray(codes, dtype=np.intp)
    y_g = np.bincount(codes, weights=np.asarray(y, dtype=float), minlength=n_groups)
    sims = np.asarray(sims, dtype=float)
    sims_g = np.zeros((n_groups, sims.shape[1]))
    np.add.at(sims_g, codes, sims)
    return y_g, sims_g


def simulation_test(observed: float, simulated) -> tuple:
    """DHARMa's generic two-sided simulation test of one summary statistic.

    Returns ``(ratio, p)``: ``observed / mean(simulated)`` and
    ``p = min(1, 2 min(P(sim >= obs), P(sim <= obs)))`` over the simulated statistics.
    """
    simulated = np.asarray(simulated, dtype=float)
    mean_sim = simulated.mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(observed / mean_sim) if mean_sim != 0 else (1.0 if observed == 0 else np.inf)
    p_greater = float(np.mean(simulated >= observed))
    p_less = float(np.mean(simulated <= observed))
    return ratio, min(1.0, 2.0 * min(p_greater, p_less))


def outside_frequency(sims) -> float:
    """Expected frequency of a response strictly outside all ``n_sim`` simulations.

    Each replicate in turn plays the observation against the other ``n_sim - 1``: a row
    contributes its number of unique extremes (0, 1 or 2), and the rate is scaled from
    ``n_sim - 1`` to ``n_sim`` companions by ``1 / (n_sim + 1)``; ties (discrete responses)
    lower it below the continuous ``2 / (n_sim + 1)``.
    """
    s = np.sort(np.asarray(sims, dtype=float), axis=1)
    extremes = (s[:, 0] < s[:, 1]).astype(float) + (s[:, -1] > s[:, -2])
    return float(np.clip(extremes.mean() / (s.shape[1] + 1), 1e-12, 1.0))


def residual_tests(y, sims, scaled) -> pd.DataFrame:
    """DHARMa's four residual checks.

    Parameters
    ----------
    y : (n,) array
        Observed responses.
    sims : (n, n_sim) array
        Simulated responses.
    scaled : (n,) array
        Scaled residuals of ``y`` against ``sims`` (:func:`scaled_residuals`).

    Returns
    -------
    pandas.DataFrame
        Index ``uniformity, dispersion, zero_inflation, outliers``; columns ``statistic, p``.

        - uniformity: Kolmogorov-Smirnov ``D`` of the scaled residuals against U(0, 1);
        - dispersion: variance of ``y - mean(sims)`` over the same variance of each
          simulated replicate (ratio to its mean; > 1 is overdispersion), two-sided p from
          the simulated distribution (DHARMa's default ``testDispersion``);
        - zero_inflation: observed zeros over the mean simulated number of zeros, two-sided
          simulation p (``testZeroInflation``);
        - outliers: the number of residuals exactly 0 or 1 (``y`` outside every
          simulation), binomial test against its expected frequency
          (``testOutliers(type = "binomial")``).  For a continuous response that is
          ``2 / (n_sim + 1)``; a discrete one is outside far less often (a count of 0 is
          never below every simulation), so the expectation is read off the simulations:
          per row, how often one replicate lies strictly outside all the others
          (:func:`outside_frequency`), which is ``2 / (n_sim + 1)`` again without ties.
    """
    from scipy import stats

    y = np.asarray(y, dtype=float)
    sims = np.asarray(sims, dtype=float)
    scaled = np.asarray(scaled, dtype=float)
    n, n_sim = sims.shape
    rows = {}
    ks = stats.kstest(scaled, "uniform")
    rows["uniformity"] = (float(ks.statistic), float(ks.pvalue))
    # the predicted response is the simulations' mean per row, so that the observed and the
    # simulated spread are measured around the same centre
    centre = sims.mean(axis=1)
    obs_spread = float(np.var(y - centre, ddof=1))
    sim_spread = np.var(sims - centre[:, None], axis=0, ddof=1)
    rows["dispersion"] = simulation_test(obs_spread, sim_spread)
    rows["zero_inflation"] = simulation_test(float(np.sum(y == 0)), np.sum(sims == 0, axis=0))
    n_out = int(np.sum((scaled == 0) | (scaled == 1)))
    rows["outliers"] = (float(n_out), float(stats.binomtest(n_out, n, outside_frequency(sims)).pvalue))
    return pd.DataFrame.from_dict(rows, orient="index", columns=["statistic", "p"])

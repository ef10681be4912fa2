"""Which parametrization of the random effects a sampler gets: ``centered="auto"``.

Non-centred effects (``b = sd * u``, ``u ~ N(0, 1)``) suit groups the data say little
about; when the data pin each group's level down far more tightly than the spread of the
groups, the non-centred coordinates (intercept, log sd, u) lie on a thin curved ridge
``intercept + sd * u_j = const`` that a diagonal mass matrix cannot follow (R-hat 2.3 for
Poisson counts of 1e7 in 40 groups).  Sampling the group's level ``c_j = intercept + b_j``
itself, ``c_j ~ N(intercept, sd)`` (hierarchical centring, Gelfand, Sahu & Carlin 1995),
removes that ridge; Papaspiliopoulos, Roberts & Skold (2007) show the centred form is the
better one exactly when the data are informative relative to the random-effect SD.

The measure of informativeness of group j is ``r_j = I_j * sd^2``: ``I_j`` the Fisher
information about the group's linear predictor (the sum over its rows of
``w mu_eta(eta)^2 / Var(y)`` at a crude estimate of the group's mean, discounted by the
variance the model's other random terms add to it: an outer level of a nested term is known
only as well as its inner levels average out), ``sd`` a
method-of-moments estimate of the between-group SD on the link scale.  ``1 / sqrt(I_j)`` is how
well the data know the group's level, ``sd`` how far the levels spread: ``r_j`` is the squared
ratio.  :func:`auto_parametrization` hierarchically centres the scalar ``(1 | g)`` term with
the largest median ``r_j`` when that median exceeds :data:`AUTO_THRESHOLD`, centres the other
scalar terms above it, and leaves every other term non-centred.

The threshold is where the centred form starts to win, measured (``benchmarks/bench_centering.py``;
``y ~ x + (1 | g)``, native NUTS 2 chains x (300 + 300), 2-3 data sets per cell, medians of the
effective draws per 1000 gradients -- min bulk ESS of ``beta`` and ``sd_g`` over the sampling
phase's leapfrog steps -- non-centred / hierarchically centred, at the median ``r`` this module
measures on the data; ``bench_centering_2026-12-07e_grid.txt``)::

    family      groups  r: nc / hier
    bernoulli     40    0.2: 20/2   2.7: 22/38  5.2: 21/71   8.2: 19/85   19: 5/120
    bernoulli    400    0.3: 28/8   2.1: 28/33  4.2: 16/55   7.5: 12/85   17: 5/130
    bernoulli   2000    0.4: 11/5   2.0: 10/13  4.8: 15/24   8.9: 10/39
    poisson       40    0.6: 28/30  1.9: 28/31  4.0: 26/77  10.9: 12/125  17: 3/105
    poisson      400    0.8: 28/18  2.1: 20/42  4.7: 13/68   9.8: 5/88    19: 3/116
    poisson     2000    0.7: 15/12  2.5: 14/23  4.8: 10/34   9.0: 6/41
    negbinomial   40    0.7: 31/19  1.1: 29/37  4.5: 13/106  7.1: 18/119  13: 5/170
    negbinomial  400    0.9: 28/13  1.8: 26/39  4.7: 15/62   7.1: 11/95   12: 4/122
    negbinomial 2000    0.8: 10/7   1.8: 15/20  3.5: 11/39
    gaussian      40    0.8: 28/21  1.4: 27/48  2.1: 24/88   6.1: 15/152
    gaussian     400    0.8: 21/25  1.3: 34/50  2.9: 20/77   6.5: 9/111
    gaussian    2000    0.6: 12/10  1.4: 14/18  2.9: 13/37   6.0: 7/45

At ``r`` ~ 0 the non-centred form wins 2-14x (the centred one's R-hat reaches 1.27); up to
``r`` ~ 0.9 it wins or ties; from ``r`` ~ 1.1 the centred form wins or ties in every family and
group count, and by 4-34x from ``r`` ~ 8 (the non-centred R-hat reaches 1.13 at ``r`` ~ 10; an
earlier run, Poisson counts of 1e7 in 40 groups, ``r`` = 1.6e7: R-hat 3.0 against 1.00).  The
number of groups moves neither the crossing nor its direction.  The crude ``r`` reads low where
groups have few rows (the noise it subtracts), which errs on the non-centred side, where the
two forms tie.  A crossed model (Bernoulli, 20,000 rows, 500 x 500 levels, median ``r``
4.8-5.9, 2 chains x (500 warm-up + 1000), 3 data sets; ``bench_centering_2026-12-07e_crossed.txt``)
samples best with a term hierarchically centred and the other centred (the rule's choice: a
median of 10.6 effective draws per 1000 gradients; the other term hierarchical: 9.1), worse with
the second term non-centred (6.9) or both (7.3).

Everything here is a crude, cheap, deterministic pass over the data (no fit): it only picks
coordinates, the model is the same either way.  Its biases go towards the status quo:
variation of y within a group that the fixed effects explain counts as noise (smaller
``I_j``).  This module does not import PyMC.
"""
from __future__ import annotations

import numpy as np

from .model_spec import ModelSpec

__all__ = ["HIERARCHICAL", "AUTO", "AUTO_THRESHOLD", "MODE_START_THRESHOLD", "informativeness", "auto_parametrization",
           "level_scales", "row_information"]

#: the value of ``centered`` (per term) that asks for hierarchical centring
HIERARCHICAL = "hierarchical"
#: the value of ``centered`` asking for the choice of :func:`auto_parametrization`
AUTO = "auto"
#: median ``r_j = I_j sd^2`` above which a scalar term is centred: where the centred form
#: starts to win, by measurement (the module docstring's table; ``benchmarks/bench_centering.py``).
AUTO_THRESHOLD = 1.5
#: median ``r_j`` of a hierarchically centred term above which the chains start at the
#: conditional mode of its levels (:meth:`bayes_glmm.bayes.density.GlmmDensity.initial_point`):
#: only where typical values would lie many posterior SDs from the posterior (counts of 1e7);
#: between the two thresholds the random start samples as well
MODE_START_THRESHOLD = 30.0


def _eligible(term) -> bool:
    """A scalar term whose column is the constant 1: ``(1 | g)``."""
    return term.q == 1 and bool(np.all(np.asarray(term.Xr) == 1.0))


def _dispersion(fam, y, mu, pw, df):
    """Crude moment estimate of the family's dispersion from residuals about the group
    means (``df`` residual degrees of freedom): :meth:`Family.moment_dispersion`."""
    r2 = float(np.sum(pw * (y - mu) ** 2)) * len(y) / max(df, 1.0)
    return fam.moment_dispersion(r2, mu, pw)


def _group_means(spec: ModelSpec, term):
    """Per group: the mean response per trial (shrunk by one pseudo-observation towards the
    overall mean where needed, so that a group of zeros has a finite link) and the rows'
    exposures."""
    fam = spec.family
    y = np.asarray(spec.y, dtype=float)
    w = np.asarray(spec.weights, dtype=float)
    n_tr = np.asarray(spec.trials, dtype=float) if (fam.needs_trials and spec.trials is not None) else np.ones(len(y))
    expo = np.exp(np.asarray(spec.offset, dtype=float)) if fam.link.is_log else np.ones(len(y))
    W = w * n_tr * expo
    # rows with no trials (binomial counts of 0 out of 0) carry no weight: their per-trial mean is
    # set to 0 rather than 0 / 0, whose NaN would poison their group's sums
    den = n_tr * expo
    yy = np.divide(y, den, out=np.zeros(len(y)), where=den > 0) if (fam.needs_trials or fam.link.is_log) else y
    codes = np.asarray(term.codes)
    J = term.n_levels
    tot = float(np.sum(W))
    m_all = float(np.sum(W * yy)) / tot if tot > 0 else 0.0
    sw = np.bincount(codes, W, J)
    sy = np.bincount(codes, W * yy, J)
    with np.errstate(all="ignore"):
        raw = sy / sw
        ok = (sw > 0) & np.isfinite(np.asarray(fam.link.link(raw), dtype=float))
    # the pseudo-observation only where the group's own mean has no finite link (all zeros,
    # all ones): elsewhere it would move a level known to 1e-4 by 1e-1
    m = np.where(ok, raw, (sy + m_all) / (sw + 1.0))
    return m, expo, n_tr, w, y


def _other_terms_variance(spec: ModelSpec, term) -> np.ndarray:
    """Per level of ``term``: the variance the model's other random terms add to its rows'
    mean, ``sum_t sd_t^2 / K_jt`` with ``K_jt`` the number of levels of term t among the
    rows of level j (an inner nested term's levels average out only over their number, not
    over the rows)."""
    codes = np.asarray(term.codes)
    out = np.zeros(term.n_levels)
    for t2 in spec.terms:
        if t2 is term:
            continue
        cr = _crude(spec, t2, others=False)
        if cr is None or cr[2] <= 0:
            continue
        pairs = np.unique(codes.astype(np.int64) * t2.n_levels + np.asarray(t2.codes, dtype=np.int64))
        k = np.bincount((pairs // t2.n_levels).astype(np.intp), minlength=term.n_levels)
        out += cr[2] / np.maximum(k, 1)
    return out


def _crude(spec: ModelSpec, term, others: bool = True):
    """(eta_j, I_j, sd^2, I_r): the crude group levels on the link scale, the information
    about them (the data's Fisher information, discounted by the variance the other random
    terms add when ``others``), the between-group variance beyond it and the rows' Fisher
    information; None when they cannot be had (a linear predictor that is not finite at the
    crude means)."""
    fam, link = spec.family, spec.family.link
    if fam.categorical_response:  # ordered categories have no mean-variance view to measure it by
        return None
    J = term.n_levels
    m, expo, n_tr, w, y = _group_means(spec, term)
    codes = np.asarray(term.codes)
    with np.errstate(all="ignore"):
        eta_j = np.asarray(link.link(m), dtype=float)
        mu_r = m[codes] * expo if link.is_log else m[codes]  # per trial
        if not (np.all(np.isfinite(eta_j)) and np.all(np.isfinite(mu_r))):
            return None
        disp = _dispersion(fam, y / n_tr if fam.needs_trials else y, mu_r, w, len(y) - J)
        var = np.asarray(fam.variance(mu_r, disp=disp), dtype=float)
        if fam.has_sigma:  # the gaussian variance function leaves sigma^2 out
            var = var * disp
        eta_r = eta_j[codes] + (np.log(expo) if link.is_log else 0.0)
        dmu = np.asarray(link.mu_eta(eta_r), dtype=float)
        info_r = w * n_tr * dmu * dmu / var
        info_r = np.where(np.isfinite(info_r), info_r, 0.0)
        info = np.bincount(codes, info_r, J)
        if others and len(spec.terms) > 1:
            info = 1.0 / (1.0 / np.maximum(info, 1e-300) + _other_terms_variance(spec, term))
        sd2 = 0.0
        if J >= 3:
            # between-group spread after the group means of the fixed predictors (least squares)
            counts = np.bincount(codes, minlength=J).astype(float)
            X = np.asarray(spec.X, dtype=float)
            Xg = np.column_stack([np.ones(J)] + [np.bincount(codes, X[:, j], J) / np.maximum(counts, 1.0)
                                                 for j in range(X.shape[1])])
            rank = np.linalg.matrix_rank(Xg)
            if J - rank < 2:
                Xg, rank = np.ones((J, 1)), 1
            res = eta_j - Xg @ np.linalg.lstsq(Xg, eta_j, rcond=None)[0]
            between = float(res @ res) / (J - rank)
            noise = float(np.mean(1.0 / np.maximum(info, 1e-300)))
            sd2 = max(between - noise, 0.0) if np.isfinite(between) else 0.0
    return eta_j, info, sd2, info_r


def informativeness(spec: ModelSpec, term) -> np.ndarray:
    """``r_j = I_j * sd^2`` for every level of a term (see the module docstring).

    Parameters
    ----------
    spec : ModelSpec
    term : RandomTerm
        A term of ``spec`` (its intercept column is what is measured).

    Returns
    -------
    ndarray (n_levels,)
        Zeros when it cannot be measured (a constant response, fewer than 3 levels, a
        linear predictor that is not finite at the crude means).
    """
    cr = _crude(spec, term)
    if cr is None:
        return np.zeros(term.n_levels)
    r = cr[1] * cr[2]
    return np.where(np.isfinite(r), r, 0.0)


def level_scales(spec: ModelSpec, term) -> tuple[np.ndarray, np.ndarray]:
    """Location ``a_j`` and scale ``s_j`` of a hierarchically centred term's coordinates.

    The sampler sees ``z_j = (c_j - a_j) / s_j``: ``a_j`` the crude level of group j on the
    link scale, ``s_j = 1 / sqrt(I_j + 1 / v)`` the crude posterior SD of its level (``v``
    the variance of the crude levels across groups, which takes over where the data say
    little).  With counts of 1e12 a level is known to ~3e-7: unscaled, the warm-up's
    regularized metric (shrunk towards 1e-3) would be 10^7 times too wide for it.  Data
    constants only: the model is the same for any ``a``, ``s``.
    """
    J = term.n_levels
    cr = _crude(spec, term)
    if cr is None:
        return np.zeros(J), np.ones(J)
    eta_j, info = cr[0], cr[1]
    v = float(np.var(eta_j)) if J > 1 else 0.0
    v = v if np.isfinite(v) and v > 0 else 1.0
    s = 1.0 / np.sqrt(info + 1.0 / v)
    ok = np.isfinite(s) & (s > 0)
    return np.where(ok, eta_j, 0.0), np.where(ok, s, 1.0)


def row_information(spec: ModelSpec) -> np.ndarray:
    """The rows' Fisher information about their linear predictor at the crude group means
    of the first random term (one group without terms): what scales the fixed effects whose
    posterior SD would otherwise be tiny (:func:`bayes_glmm.bayes.density.fixed_layout`)."""
    from types import SimpleNamespace

    term = spec.terms[0] if spec.terms else SimpleNamespace(n_levels=1, codes=np.zeros(spec.n, dtype=np.intp))
    cr = _crude(spec, term)
    return np.zeros(spec.n) if cr is None else cr[3]


def auto_parametrization(spec: ModelSpec, threshold: float = AUTO_THRESHOLD) -> dict:
    """``centered="auto"``: term name -> False, True or :data:`HIERARCHICAL`.

    The eligible ``(1 | g)`` term with the largest median ``r_j`` (:func:`informativeness`)
    above ``threshold`` is hierarchically centred when the model has an intercept (centred
    otherwise); the other ``(1 | g)`` terms above it are centred; every other term -- and
    every term of data that say little about each group -- stays non-centred.
    """
    out = {t.name: False for t in spec.terms}
    has_icpt = "(Intercept)" in list(spec.fixed_names)
    scores = {}
    for t in spec.terms:
        if _eligible(t):
            try:
                scores[t.name] = float(np.median(informativeness(spec, t)))
            except (ValueError, np.linalg.LinAlgError):  # a heuristic: unmeasurable means non-centred
                scores[t.name] = 0.0
    rich = sorted((s, n) for n, s in scores.items() if s > threshold)
    for s, n in rich:
        out[n] = True
    if rich and has_icpt:
        out[rich[-1][1]] = HIERARCHICAL
    return out

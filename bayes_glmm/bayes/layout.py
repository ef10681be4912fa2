"""The random effects from the sampler's coordinates: ``b = diag(sd) L u``, written once.

A term with ``q`` coefficients per level has, per level, ``q`` unconstrained coordinates
``u``.  Non-centred (the default, lme4's spherical random effects ``b = Lambda_theta u``):
``u ~ N(0, I)`` and ``b = diag(sd) L u`` with ``L`` the lower Cholesky factor of the
correlation matrix (the identity for scalar and ``||`` terms).  Centred (uncorrelated terms
only): ``b = u ~ N(0, diag(sd)^2)``.  Hierarchically centred (a scalar ``(1 | g)`` term of a
model with an intercept; Gelfand, Sahu & Carlin 1995): the group's level
``c = mu + b ~ N(mu, sd^2)`` with ``mu`` the model's intercept (at the predictor means), and
``b = c - mu``; the coordinate is that level in the data's units, ``u = (c - a) / s``, with
``a``, ``s`` the crude level and posterior SD of the group (data constants,
:func:`bayes_glmm.spec.centering.level_scales`).  The rows' linear predictor ``mu + ... + b`` then
depends on the group through ``c`` alone, so data that pin each group's level down leave no
ridge ``mu + b = const`` in the sampler's coordinates (the other two forms do:
Papaspiliopoulos, Roberts & Skold 2007).

:func:`level_effects` is that map and :func:`level_logp` the log prior density of ``u``.  Every fast path
evaluates it rather than restating it: the NumPy density on dual numbers over all levels at
once (:mod:`bayes_glmm.bayes.density`, which takes the chain rule back to ``u``, ``sd`` and
``L`` from the dual parts), the C generator on symbolic dual numbers inside its loop over the
levels (:mod:`bayes_glmm.bayes.native`), and the posterior draws on plain arrays
(:meth:`~bayes_glmm.bayes.density.GlmmDensity.expand_draws`).  The PyMC graph
(:mod:`bayes_glmm.bayes.graph`) states the same model with PyMC's distributions, and
``tests/test_bayes_contract.py`` holds the two equal.
"""
from __future__ import annotations

import numpy as np

from ..spec.centering import HIERARCHICAL

__all__ = ["level_effects", "level_logp", "directions", "HIERARCHICAL", "PARAMETRIZATIONS", "mode_of",
           "effects_name"]

#: the per-term parametrizations: non-centred, centred, hierarchically centred
PARAMETRIZATIONS = (False, True, HIERARCHICAL)


def mode_of(centered) -> bool | str:
    """A term's parametrization as one of :data:`PARAMETRIZATIONS` (``True``/``False`` may
    come as NumPy booleans)."""
    if isinstance(centered, str):
        if centered != HIERARCHICAL:
            raise ValueError(f"unknown parametrization {centered!r}; use True, False or {HIERARCHICAL!r}")
        return HIERARCHICAL
    return bool(centered)


def effects_name(centered, ident: str) -> str:
    """The sampler's (and the graph's) name of a term's effect coordinates: ``u_<g>``
    (non-centred), ``b_<g>`` (centred) or ``z_<g>`` (hierarchically centred)."""
    m = mode_of(centered)
    return f"{'z' if m == HIERARCHICAL else 'b' if m else 'u'}_{ident}"


def level_effects(u, sd, L=None, centered: bool | str = False, level=None):
    """One level's random effects ``b`` from its coordinates ``u``.

    Works elementwise, so each entry may be a number, an array over levels (and draws) or a
    dual number.

    Parameters
    ----------
    u : sequence of length q
        The level's coordinates (the graph's ``u_<g>``; ``b_<g>`` when centred).
    sd : sequence of length q
        The term's standard deviations.
    L : q x q nested sequence or None
        Lower Cholesky factor of the correlation matrix (only ``L[k][m]``, ``m <= k``, is
        read); None for the identity.
    centered : bool or ``"hierarchical"``
        True: ``b = u`` (uncorrelated terms only); :data:`HIERARCHICAL`: ``b = a + s u - mu``
        (q = 1).
    level : (mu, a, s), optional
        Hierarchical centring only: the model's intercept and the level's location and scale.

    Returns
    -------
    list
        ``b``, q entries.
    """
    q = len(u)
    mode = mode_of(centered)
    if mode == HIERARCHICAL:
        if q != 1 or L is not None or level is None:
            raise ValueError("hierarchical centring is for a scalar term and needs (mu, a, s)")
        mu, a, s = level
        return [(a + s * u[0]) - mu]
    if mode:
        if L is not None:
            raise ValueError("a centred term has no correlation factor (correlated terms are non-centred)")
        return list(u)
    b = []
    for k in range(q):
        if L is None:
            lu = u[k]
        else:
            lu = L[k][0] * u[0]
            for m in range(1, k + 1):
                lu = lu + L[k][m] * u[m]
        b.append(sd[k] * lu)
    return b


def level_logp(u, sd, centered: bool | str = False, ops=np, level=None):
    """log p(u) of one level: ``N(0, I)``, ``N(0, sd^2)`` when centred, ``c = a + s u ~
    N(mu, sd^2)`` when hierarchically centred (``level = (mu, a, s)``; without the constant
    Jacobian ``log s``).

    Without the constant ``-q/2 log(2 pi)`` (a sampler needs none; the contract test compares
    with the graph up to one constant per model).  ``ops`` provides ``log`` (NumPy, or the
    dual numbers' ops).
    """
    lp = None
    mode = mode_of(centered)
    for k in range(len(u)):
        if mode == HIERARCHICAL:
            mu, a, s = level
            z = ((a + s * u[k]) - mu) / sd[k]
            term = -0.5 * (z * z) - ops.log(sd[k])
        elif mode:
            z = u[k] / sd[k]
            term = -0.5 * (z * z) - ops.log(sd[k])
        else:
            term = -0.5 * (u[k] * u[k])
        lp = term if lp is None else lp + term
    return lp


def directions(q: int, correlated: bool, hierarchical: bool = False) -> tuple[int, dict]:
    """How the fast paths number the inputs of :func:`level_effects` for their chain rule.

    ``u_m`` is direction m (m < q), ``sd_k`` is q + k and, for a correlated term,
    ``L[k][m]`` (m <= k) is ``tri[(k, m)]``, counted from 2q on row by row; for a
    hierarchically centred term the intercept ``mu`` is the last direction, 2q.

    Returns
    -------
    (int, dict)
        The number of directions and ``tri``.
    """
    tri = {}
    if correlated:
        for k in range(q):
            for m in range(k + 1):
                tri[(k, m)] = 2 * q + len(tri)
    return 2 * q + len(tri) + (1 if hierarchical else 0), tri

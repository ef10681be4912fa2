"""The native sampler's failures as errors that name the cause and the parameters.

``csrc/nuts.c`` returns a code (``BG_*`` in ``nuts.h``) instead of carrying on as if nothing
happened; :func:`engine_error` turns a failed chain's code, the position it stopped at and its
metric into a :class:`SamplerError` worded as Stan's ("the posterior may be improper") with the
parameters involved named as the user wrote them (:func:`coordinate_names`).
"""
from __future__ import annotations

import numpy as np

from ..priors import zi_key

__all__ = ["SamplerError", "coordinate_names", "engine_error", "RC_OK", "RC_INIT", "RC_STOPPED", "RC_ARGS",
           "RC_STEP_HUGE", "RC_STEP_ZERO", "RC_METRIC"]

#: the return codes of ``bg_nuts_sample`` (``BG_*`` of ``csrc/nuts.h``)
RC_OK, RC_INIT, RC_STOPPED, RC_ARGS, RC_STEP_HUGE, RC_STEP_ZERO, RC_METRIC = range(7)
#: parameters named in a message, at most
_SHOW = 4


class SamplerError(RuntimeError):
    """NUTS could not sample this posterior: no draws are returned.

    Attributes
    ----------
    code : int
        The engine's return code (``RC_*``).
    chains : list of int
        The chains that failed.
    parameters : list of str
        The parameters involved (:func:`coordinate_names`), most suspect first.
    """

    def __init__(self, message: str, code: int, chains, parameters):
        super().__init__(message)
        self.code, self.chains, self.parameters = int(code), list(chains), list(parameters)


def coordinate_names(density) -> list:
    """A readable name for each unconstrained coordinate of a
    :class:`~bayes_glmm.bayes.density.GlmmDensity`, in the model's own terms.

    Fixed effects by their coefficient names (``"Intercept"`` on the centered-predictor
    scale, as the prior keys); ``log(sd_g[coef])`` for a term's SDs (``log(var_g[coef])`` with a
    variance prior); ``corr_g[k]`` for its k-th canonical partial correlation (unconstrained);
    ``u_g[level, coef]`` (``b_g`` when centered) for the effects; ``log(sigma)``, ``log(theta)``...
    for the family's positive auxiliary parameters; ``zi_<coef>`` for zero inflation.
    """
    spec = density.spec
    names = [""] * density.ndim
    fixed = list(spec.fixed_names)
    for blk, cols in density.fixed_blocks:
        for k, j in zip(range(blk.sl.start, blk.sl.stop), cols):
            names[k] = "Intercept" if fixed[j] == "(Intercept)" else fixed[j]
    for t, scale, eff, _, _ in density.terms:
        coefs = list(t.coef_names)
        what = "var" if scale.name.startswith("var_") else "sd"
        if t.ident in density.sd_index:  # SDs shared by coefficients (ar1: one)
            for k in range(scale.sl.stop - scale.sl.start):
                names[scale.sl.start + k] = f"log({scale.name}[{k}])"
        else:
            for k in range(t.q):
                names[scale.sl.start + k] = f"log({what}_{t.ident}[{coefs[k]}])" if t.q > 1 else f"log({what}_{t.ident})"
        ch = density.corr.get(t.ident)
        if ch is not None:
            for k in range(ch.sl.stop - ch.sl.start):
                names[ch.sl.start + k] = f"corr_{t.ident}[{k}] (unconstrained)"
        levels = list(t.levels)
        for k in range(eff.sl.stop - eff.sl.start):
            lev, c = divmod(k, t.q)
            lab = f"{levels[lev]}, {coefs[c]}" if t.q > 1 else f"{levels[lev]}"
            names[eff.sl.start + k] = f"{eff.name}[{lab}]"
    for blk in density.aux:
        names[blk.sl.start] = f"log({blk.name})" if blk.positive else blk.name
    if density.zi_blocks:
        znames = list(spec.zi_names)
        for blk, cols in density.zi_blocks:
            for k, j in zip(range(blk.sl.start, blk.sl.stop), cols):
                names[k] = zi_key(znames[j], spec.zi_label)
    for blk, cols in getattr(density, "disp_blocks", []):
        dnames = list(spec.disp_names)
        for k, j in zip(range(blk.sl.start, blk.sl.stop), cols):
            names[k] = "disp_Intercept" if dnames[j] == "(Intercept)" else f"disp_{dnames[j]}"
    return [nm or f"x[{i}]" for i, nm in enumerate(names)]


def _top(score, n=_SHOW) -> list:
    """Indices of the ``n`` largest scores (NaN counts as the largest: a broken coordinate first)."""
    s = np.where(np.isnan(score), np.inf, score)
    order = np.argsort(-s, kind="stable")
    return [int(i) for i in order[:n]]


def engine_error(code: int, chains, names, *, state=None, inv_mass=None, grad=None, tune=None) -> SamplerError:
    """The :class:`SamplerError` for a chain that returned ``code``.

    Parameters
    ----------
    code : int
        The engine's return code (not ``RC_OK`` / ``RC_STOPPED``).
    chains : list of int
        The chains that failed with this code.
    names : list of str
        :func:`coordinate_names`.
    state : ndarray (ndim,), optional
        Where the first failed chain stopped.
    inv_mass : ndarray (ndim,), optional
        Its inverse metric (for ``RC_METRIC``: the failed variance estimate).
    grad : ndarray (ndim,), optional
        The log-density's gradient at ``state`` (``RC_STEP_ZERO``).
    tune : int, optional
        Warm-up iterations (to say when a failure happened).
    """
    names = list(names)
    ch = ", ".join(map(str, chains))
    if code == RC_INIT:
        return SamplerError(f"NUTS found no starting point with a finite log-density and gradient for chain(s) "
                            f"{ch} (the initial point, then 100 random points in (-2, 2)); check the priors "
                            "and the data (a response outside the family's support, an offset of +-inf)",
                            code, chains, [])
    if code == RC_STEP_HUGE:
        # a flat direction: the coordinates that drifted furthest or that the warm-up found widest
        st = np.abs(np.asarray(state, dtype=float)) if state is not None else np.zeros(len(names))
        sd = np.sqrt(np.asarray(inv_mass, dtype=float)) if inv_mass is not None else np.ones(len(names))
        idx = _top(np.maximum(st, sd))
        show = ", ".join(f"{names[i]} (at {st[i]:.3g}, warm-up SD {sd[i]:.3g})" for i in idx)
        return SamplerError(
            f"the posterior may be improper: in chain(s) {ch} the step-size search found steps above 1e7 still "
            f"accepted, i.e. a log-density flat in every direction the sampler looked (Stan stops here with "
            f"'Posterior is improper'). The parameters that moved furthest: {show}. Usual causes: a Flat or "
            "HalfFlat prior on a parameter the data do not bound (separation in a binary response, a "
            "constant column, a grouping factor with one observation per level); give those parameters a "
            "proper prior, e.g. bg.Prior('Normal', mu=0, sigma=2.5) for a coefficient.",
            code, chains, [names[i] for i in idx])
    if code == RC_STEP_ZERO:
        g = np.asarray(grad, dtype=float) if grad is not None else np.zeros(len(names))
        bad = [i for i in range(len(names)) if not np.isfinite(g[i])]
        idx = bad[:_SHOW] if bad else _top(np.abs(g))
        show = ", ".join(f"{names[i]} (gradient {g[i]:.3g})" for i in idx)
        when = "" if tune is None else " during the warm-up"
        return SamplerError(
            f"no acceptably small step size could be found in chain(s) {ch}{when}: even a step of size 0 "
            f"was rejected (Stan: 'Perhaps the posterior is not continuous?'), so the log-density or its "
            f"gradient is not finite, or jumps, near the current point. Steepest parameters: {show}. Check "
            "the data for extreme values (a predictor of 1e200, weights of 0 on every row) and the priors "
            "for extreme parameters.", code, chains, [names[i] for i in idx])
    if code == RC_METRIC:
        v = np.asarray(inv_mass, dtype=float) if inv_mass is not None else np.full(len(names), np.nan)
        bad = [i for i in range(len(names)) if not (np.isfinite(v[i]) and v[i] > 0)]
        show = ", ".join(names[i] for i in bad[:_SHOW]) + (f" and {len(bad) - _SHOW} more" if len(bad) > _SHOW else "")
        return SamplerError(
            f"the posterior may be improper: in chain(s) {ch} the warm-up's variance estimate of {show} is not "
            "finite (the draws ran off towards infinity). Give those parameters a proper prior (e.g. "
            "bg.Prior('Normal', mu=0, sigma=2.5) for a coefficient, bg.Prior('HalfNormal', sigma=1) for an SD) "
            "or check the data for separation (bayes_glmm.postfit.diagnostics.separation).",
            code, chains, [names[i] for i in bad])
    return SamplerError(f"the NUTS engine rejected its arguments or could not allocate its workspace (code {code}) "
                        f"in chain(s) {ch}; this is a bug or an out-of-memory condition", code, chains, [])

"""Complete, no and partial pooling of group-level coefficients side by side.

For one random coefficient (by default the intercept of the first term) each group gets
three estimates on the link scale:

``complete``  a GLM without random effects: every group gets the population value.
``no_pool``   a GLM with the grouping factor as a fixed factor (one coefficient per
              level; the other random terms are left out): each group on its own.
``partial``   the mixed model: fixed effect plus the group's random effect -- the
              conditional mode (``partial_ml``) and/or the posterior mean
              (``partial_bayes``).

Fixed-effect columns that the per-group coefficients absorb (the intercept, or predictors
that are constant within groups such as a treatment arm) are folded into each group's
value in all three columns, so the three are directly comparable.

Ordinal responses: the complete- and no-pooling fits are cumulative-link models without
random effects (:func:`bayes_glmm.teaching.ordinal_glm.fit_clm`, R's ``clm``) and the scale
is the latent one.  A group's intercept there is its location relative to the thresholds:
each column gives it minus the mean of that fit's thresholds (emmeans's latent scale for
``clm`` / ``clmm``, ``x'beta - mean(tau)``), which the intercept-free models share; a random
slope needs no such shift.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..spec.model_spec import ModelSpec
from ._common import find_term, spec_of
from .ordinal_glm import fit_clm

__all__ = ["pooling", "fit_glm"]


def fit_glm(X, y, family, *, trials=None, offset=None, weights=None, ridge: float = 1e-8,
            maxit: int = 100, tol: float = 1e-10):
    """Fit a GLM by iteratively reweighted least squares (pure NumPy).

    Parameters
    ----------
    X : ndarray (n, p)
    y : ndarray (n,)
        Response (successes for binomial).
    family : Family
        From :func:`bayes_glmm.get_family`; its link and variance function are used.
    trials : ndarray (n,), optional
        Binomial trials.
    offset, weights : ndarray (n,), optional
    ridge : float
        Tiny ridge on the coefficients: keeps the solve defined for separated or
        rank-deficient columns (those estimates drift to large values instead of failing).
    maxit : int
    tol : float
        Convergence tolerance on the largest coefficient change.

    Returns
    -------
    beta : ndarray (p,)
    mu : ndarray (n,)
        Fitted mean per trial.
    """
    X = np.asarray(X, dtype=float)
    n, p = X.shape
    y = np.asarray(y, dtype=float)
    off = np.zeros(n) if offset is None else np.asarray(offset, dtype=float)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    if family.needs_trials:
        if trials is None:
            raise ValueError("fit_glm: the binomial family needs trials")
        t = np.asarray(trials, dtype=float)
        yy = np.divide(y, t, out=np.zeros(n), where=t > 0)
        w = w * t
    else:
        yy = y
    link = family.link
    mu = family.mustart(yy)  # R's family$initialize (yy is per trial here)
    eta = link.link(mu)
    beta = np.zeros(p)
    for _ in range(maxit):
        d = link.mu_eta(eta)
        var = np.maximum(family.variance(mu), 1e-12)
        z = eta - off + (yy - mu) / np.where(np.abs(d) > 1e-300, d, 1e-300)
        W = w * d * d / var
        A = X.T @ (W[:, None] * X) + ridge * np.eye(p)
        new = np.linalg.solve(A, X.T @ (W * z))
        step = np.max(np.abs(new - beta)) if p else 0.0
        beta = new
        eta = np.clip(X @ beta + off, -700, 700)
        mu = link.inverse(eta)
        if family.is_binary:
            mu = np.clip(mu, 1e-300, 1 - 1e-16)
        if step < tol * (1 + np.max(np.abs(beta), initial=0.0)):
            break
    return beta, mu


def _span_split(X: np.ndarray, Z: np.ndarray, tol: float = 1e-8):
    """Columns of X inside span(Z) (with their Z coordinates) and a full-rank remainder."""
    A, *_ = np.linalg.lstsq(Z, X, rcond=None)  # (Jq, p)
    R = X - Z @ A
    scale = np.maximum(np.linalg.norm(X, axis=0), 1.0)
    absorbed = np.linalg.norm(R, axis=0) <= tol * scale
    keep = []
    for j in np.flatnonzero(~absorbed):  # greedy: keep columns adding rank beyond span(Z)
        M = R[:, keep + [j]]
        if np.linalg.matrix_rank(M, tol=tol * np.linalg.norm(M)) == len(keep) + 1:
            keep.append(j)
    return np.flatnonzero(absorbed), np.array(keep, dtype=int), A


def _separated(X, y, fam, common, cols, gam) -> np.ndarray:
    """Levels whose no-pooling estimate diverges (separation: all-0/all-1 groups, all-zero
    counts, perfectly separated slopes): the estimate moves when the ridge is relaxed."""
    if not (fam.constant_response_unbounded or fam.categorical_response):  # none can run off to infinity
        return np.zeros(len(cols), dtype=bool)
    stiff, _ = (fit_clm if fam.categorical_response else fit_glm)(X, y, fam, ridge=1e-5, **common)
    return np.abs(gam[cols] - stiff[cols]) > 1.0


def pooling(model, *, term: str | None = None, coef: str | None = None, ml=None, post=None,
            fit_ml: bool = True) -> pd.DataFrame:
    """Complete-, no- and partial-pooling estimates of one random coefficient per group.

    Parameters
    ----------
    model : GLMM or ModelSpec
        The mixed model.  A bare ``ModelSpec`` needs ``ml`` or ``post`` (or no partial
        pooling column is produced).
    term : str, optional
        Random term (name, identifier or grouping factor); default the first term.
    coef : str, optional
        Coefficient of that term, e.g. ``"(Intercept)"`` or ``"Days"``; default its first.
    ml : MLResults, optional
        ML fit of ``model``; fitted with ``model.fit_ml()`` when omitted and ``fit_ml``.
    post : BayesResults, optional
        Posterior of ``model``; adds a ``partial_bayes`` column (posterior means).
    fit_ml : bool
        Whether to fit the ML model when ``ml`` is not given.

    Returns
    -------
    pandas.DataFrame
        Index: the term's levels.  Columns ``n`` (rows per group), ``complete``,
        ``no_pool``, ``partial_ml`` and/or ``partial_bayes`` (link scale) and
        ``separated`` (True where the no-pooling estimate is infinite: all-0/all-1 binary
        groups or all-zero counts; ``no_pool`` is then +-inf).  ``attrs`` records term,
        coefficient and scale.

    Examples
    --------
    >>> import bayes_glmm as bg
    >>> m = bg.GLMM("Reaction ~ Days + (1 | Subject)", bg.datasets.load("sleepstudy"))
    >>> tab = pooling(m)                                    # doctest: +SKIP
    >>> tab[["complete", "no_pool", "partial_ml"]].head()   # doctest: +SKIP
    """
    spec: ModelSpec = spec_of(model)
    k, t = find_term(spec, term, coef)
    c = 0 if coef is None else list(t.coef_names).index(coef)
    fam = spec.family
    # ordinal: cumulative-link fits, each group's intercept relative to the mean threshold
    glm = fit_clm if fam.categorical_response else fit_glm
    intercept = fam.categorical_response and np.all(t.Xr[:, c] == 1.0)

    def shift(taus):
        return float(np.mean(taus)) if intercept else 0.0

    q, J = t.q, t.n_levels
    Z = t.Z().toarray()
    absorbed, keep, A = _span_split(spec.X, Z)
    common = dict(trials=spec.trials, offset=spec.offset, weights=spec.weights)

    beta_cp, extra_cp = glm(spec.X, spec.y, fam, **common)
    Xn = np.hstack([spec.X[:, keep], Z])
    gam, extra_np = glm(Xn, spec.y, fam, **common)
    cols = np.arange(J) * q + c  # Z columns of coef c, one per level
    no_pool = gam[len(keep):][cols] - shift(extra_np)

    def fold(beta):  # population value of coef c per level, absorbed columns folded in
        return A[np.ix_(cols, absorbed)] @ np.asarray(beta, dtype=float)[absorbed]

    sizes = np.bincount(t.codes, minlength=J)
    sep = _separated(Xn, spec.y, fam, common, len(keep) + cols, gam)
    # levels whose rows cannot identify the coefficient (e.g. a slope with one x value)
    est = np.array([np.linalg.matrix_rank(t.Xr[t.codes == j]) == q if sizes[j] else False
                    for j in range(J)])
    complete = fold(beta_cp) - shift(extra_cp)
    no_pool = np.where(sep, np.sign(no_pool - complete) * np.inf, no_pool)
    no_pool = np.where(est, no_pool, np.nan)
    out = pd.DataFrame({"n": sizes, "complete": complete, "no_pool": no_pool},
                       index=pd.Index(t.levels, name=t.group))
    if ml is None and fit_ml and hasattr(model, "fit_ml"):
        ml = model.fit_ml()
    for label, fit in (("partial_ml", ml), ("partial_bayes", post)):
        if fit is not None:
            beta, b_terms, _, _ = fit._point_params()
            taus = [float(fit.dispersion[a.name]) for a in fam.aux_params] if intercept else []
            out[label] = fold(beta) + np.asarray(b_terms[k], dtype=float)[:, c] - shift(taus)
    out["separated"] = sep
    out.attrs.update(term=t.name, coef=t.coef_names[c],
                     scale=(f"latent ({fam.link.name}), relative to the mean threshold" if intercept else
                            f"latent ({fam.link.name})" if fam.categorical_response else f"link ({fam.link.name})"),
                     family=fam.name)
    return out

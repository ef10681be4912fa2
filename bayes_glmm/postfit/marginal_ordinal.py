"""Population-averaged means and effects of an ordinal (cumulative-link) GLMM.

For an ordered response the random effects shift the latent variable: the marginal probability
of category k at covariate row x integrates them out,

    P_M(Y = k | x) = E_Z[ F(tau_k - eta - s Z) - F(tau_{k-1} - eta - s Z) ],   Z ~ N(0, 1),

with ``s`` the row's SD of ``z'b`` (as for the other families, one scalar normal per row, by
Gauss-Hermite quadrature).  Three scales, as brms and emmeans offer them for ``cumulative`` /
``clmm`` fits:

``"mean"``   the expected category number ``sum_k k P(Y = k)``, categories numbered 1 .. K
             (brms's ``posterior_epred`` summary of an ordinal response, emmeans's
             ``mode = "mean.class"``, our ``predict(kind="mean")``): the default;
``"probs"``  every category's probability (brms's ``categorical = TRUE``, emmeans's
             ``mode = "prob"``): one row per (covariate row, category);
``"link"``   the latent mean ``eta`` (no intercept: the thresholds hold it).  The latent
             variable is linear in the random effects, so its marginal and conditional
             means coincide.

Uncertainty: posterior fits per draw of (beta, thresholds, covariances); ML fits by the delta
method in (beta, thresholds) jointly -- the thresholds play the intercept's part, so leaving
them out would understate every SE -- with the covariance parameters treated as known.  The
parametric bootstrap of :mod:`bayes_glmm.postfit.marginal` is not offered here.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from .marginal_design import (central_jacobian, gauss_hermite_normal, over_draws, prediction_design,
                              random_effect_sd)
from .protocol import is_posterior, point_params, posterior_draws, stack_draws

__all__ = ["ordinal_probs", "ordinal_marginal_means", "ordinal_marginal_effects", "ORDINAL_SCALES"]

ORDINAL_SCALES = ("mean", "probs", "link")
#: draws x rows x nodes x categories per block of a posterior
_BLOCK = 2_000_000


def ordinal_probs(fam, eta, s, taus, x, w) -> np.ndarray:
    """``E_Z[P(Y = k | eta + s Z)]`` for every category (last axis), quadrature nodes ``x`` and
    weights ``w`` (``s = 0``: the conditional probabilities).

    ``eta`` and ``s`` are (n,) or (S, n); ``taus`` a sequence of scalars or of (S,) arrays.
    """
    eta = np.asarray(eta, dtype=float)
    e = eta[..., None] + np.asarray(s, dtype=float)[..., None] * x  # (..., n, Q)
    aux = {a.name: (np.asarray(t, dtype=float).reshape(np.shape(t) + (1, 1)) if np.ndim(t) else float(t))
           for a, t in zip(fam.aux_params, taus)}
    return np.einsum("...qk,q->...k", fam.category_probs(e, **aux), w)


def _split(theta, p):
    theta = np.asarray(theta, dtype=float)
    return theta[..., :p], [theta[..., p + j] for j in range(theta.shape[-1] - p)]


def _point(fit):
    """(theta = (beta, thresholds), V joint on that scale, covs) of an ML fit."""
    from ..ml.auxpar import aux_coords, aux_jacobian

    fam, f = fit.spec.family, fit.fit
    beta, covs, _ = point_params(fit)
    taus = np.array([float(f.aux[a.name]) for a in fam.aux_params])
    p, A = beta.size, taus.size
    if f.vcov_aux is None:
        raise ValueError("this fit has no covariance of its thresholds (fit_ml(calc_vcov=False)?); refit "
                         "with calc_vcov=True or use se=None")
    Vc = np.zeros((p + A, p + A))
    Vc[:p, :p] = np.asarray(f.vcov_beta, dtype=float)
    Vc[p:, p:] = np.asarray(f.vcov_aux, dtype=float)
    if f.vcov_beta_aux is not None:
        Vc[:p, p:] = np.asarray(f.vcov_beta_aux, dtype=float)
        Vc[p:, :p] = Vc[:p, p:].T
    T = np.eye(p + A)  # optimizer coordinates (first threshold, log gaps) -> thresholds
    T[p:, p:] = aux_jacobian(fam, aux_coords(fam, taus))
    return np.concatenate([beta, taus]), T @ Vc @ T.T, covs


def _evaluate(fit, fun, se, interval, n_cells: int):
    """(estimate, sd, lower, upper, how) of ``fun(theta, covs)`` over the fit (see the module
    docstring); ``n_cells`` (rows x nodes x categories) sizes the posterior's blocks."""
    if not 0 < interval < 1:
        raise ValueError(f"interval must be in (0, 1); got {interval}")
    a = (1.0 - interval) / 2.0
    fam = fit.spec.family
    if is_posterior(fit):
        d = posterior_draws(fit)
        taus = np.column_stack([stack_draws(fit.idata, a.name).reshape(-1) for a in fam.aux_params])
        theta = np.concatenate([d["beta"], taus], axis=1)
        S = theta.shape[0]
        step = max(1, _BLOCK // max(int(n_cells), 1))
        vals = over_draws(fun, theta, d["covs"], step)
        sd = vals.std(0, ddof=1) if S > 1 else np.full(vals.shape[1:], np.nan)
        return vals.mean(0), sd, np.quantile(vals, a, axis=0), np.quantile(vals, 1 - a, axis=0), "posterior"
    theta, V, covs = _point(fit) if se == "delta" else (None, None, None)
    if theta is None:
        beta, covs, _ = point_params(fit)
        theta = np.concatenate([beta, [float(fit.fit.aux[x.name]) for x in fam.aux_params]])
    est = np.ravel(fun(theta, covs))
    nan = np.full(est.shape, np.nan)
    if se is None or se == "none":
        return est, nan, nan, nan, "none"
    if se != "delta":
        raise ValueError(f"se={se!r}: an ordinal fit takes se='delta' or None (the parametric bootstrap "
                         f"is not offered for ordinal responses; a posterior fit gives intervals per draw)")
    J = central_jacobian(fun, theta, covs)
    sd = np.sqrt(np.clip(np.einsum("ij,jk,ik->i", J, V, J), 0.0, None))
    z = special.ndtri(1.0 - a)
    return est, sd, est - z * sd, est + z * sd, "delta (beta, thresholds)"


def _frame(cond, est, sd, lo, hi, how, index):
    return pd.DataFrame({"conditional": np.ravel(cond), "marginal": est, "se": sd, "lower": lo, "upper": hi,
                         "uncertainty": how}, index=index)


def _latent_or_probs(fam, theta, covs, design, which: str, latent: bool, rule):
    """eta (``latent``) or the category probabilities (..., n, K), population-averaged over the
    random effects (``which="marginal"``, Gauss-Hermite ``rule``) or at zero random effects."""
    X, off, Xr = design
    beta, taus = _split(theta, X.shape[1])
    eta = (X @ beta if np.ndim(beta) == 1 else beta @ X.T) + off
    if latent:
        return eta
    s = 0.0 * eta if which == "conditional" else random_effect_sd(Xr, covs) + 0.0 * eta
    return ordinal_probs(fam, eta, s, taus, *rule)


def _conditional(fit, fun):
    if is_posterior(fit):
        return _evaluate(fit, fun, None, 0.95, 1)[0]
    beta, covs, _ = point_params(fit)
    fam = fit.spec.family
    return np.ravel(fun(np.concatenate([beta, [float(fit.fit.aux[x.name]) for x in fam.aux_params]]), covs))


def ordinal_marginal_means(fit, newdata, *, scale: str, n_quad: int, se, interval: float) -> pd.DataFrame:
    """:func:`bayes_glmm.postfit.marginal.marginal_means` of an ordinal fit."""
    if scale not in ORDINAL_SCALES:
        raise ValueError(f"scale={scale!r}; an ordinal fit takes one of {ORDINAL_SCALES}")
    fam = fit.spec.family
    X, off, Xr, index = prediction_design(fit, newdata)
    x, w = gauss_hermite_normal(n_quad)
    K = fam.n_categories
    cats = np.arange(1.0, K + 1.0)

    def make(which):
        def fun(theta, covs):
            P = _latent_or_probs(fam, theta, covs, (X, off, Xr), which, scale == "link", (x, w))
            return P if scale in ("link", "probs") else P @ cats
        return fun

    est, sd, lo, hi, how = _evaluate(fit, make("marginal"), se, interval, len(X) * x.size * K)
    cond = _conditional(fit, make("conditional"))
    if scale == "probs":
        index = pd.MultiIndex.from_product([index, list(fam.categories)],
                                           names=[index.name or "row", fit.spec.response_name])
    return _frame(cond, est, sd, lo, hi, how, index)


def ordinal_marginal_effects(fit, newdata1, newdata0, *, contrast: str, average: bool, n_quad: int, se,
                             interval: float, category=None) -> pd.DataFrame:
    """:func:`bayes_glmm.postfit.marginal.marginal_effects` of an ordinal fit: contrasts of the
    expected category number, or of ``P(Y = category)`` when ``category`` is given;
    ``contrast="link"`` is the latent-scale difference ``eta1 - eta0``."""
    fam = fit.spec.family
    labels = [str(c) for c in fam.categories]
    if category is not None and str(category) not in labels:
        raise ValueError(f"category={category!r} is not a category of {fit.spec.response_name!r}; "
                         f"choose among {list(fam.categories)}")
    d1, d0 = prediction_design(fit, newdata1), prediction_design(fit, newdata0)
    x, w = gauss_hermite_normal(n_quad)
    K = fam.n_categories
    col = None if category is None else labels.index(str(category))

    def one(theta, covs, d, which):
        P = _latent_or_probs(fam, theta, covs, d[:3], which, contrast == "link", (x, w))
        if contrast == "link":
            return P
        return P @ np.arange(1.0, K + 1.0) if col is None else P[..., col]

    def make(which):
        def fun(theta, covs):
            m1, m0 = one(theta, covs, d1, which), one(theta, covs, d0, which)
            if average:
                m1, m0 = m1.mean(axis=-1, keepdims=True), m0.mean(axis=-1, keepdims=True)
            return m1 / m0 if contrast == "ratio" else m1 - m0
        return fun

    est, sd, lo, hi, how = _evaluate(fit, make("marginal"), se, interval, 2 * len(d1[0]) * x.size * K)
    cond = _conditional(fit, make("conditional"))
    index = pd.Index(["average"]) if average else d1[3]
    return _frame(cond, est, sd, lo, hi, how, index)

"""Population-averaged (marginal) means, effects and coefficients of a GLMM.

A GLMM's fixed effects are *conditional* (subject-specific): ``g(E[y | b]) = x'beta + z'b``.
With a non-identity link the *marginal* (population-averaged) mean is not ``h(x'beta)``:

    E[y | x] = E_b[ h(x'beta + offset + z'b) ],    z'b ~ N(0, s^2),
    s^2 = sum_k z_k' Sigma_k z_k                   (terms independent),

so for every covariate row the random effects enter through one scalar normal and the
expectation is a one-dimensional integral, computed here by Gauss-Hermite quadrature
(exact for any number of terms and random slopes; ``method="montecarlo"`` is the check).
For the identity link the marginal and conditional means coincide; for the log link
``E[y] = exp(eta + s^2/2)``; for probit ``Phi(eta / sqrt(1 + s^2))``.

*Marginal coefficients* (``marginal_coefficients``) summarise the population-averaged
curve on the link scale by least squares: ``beta_M = argmin sum_i (g(m_i) - offset_i -
x_i'beta)^2`` over the rows (the fitted data by default), with ``m_i`` the marginal means
("projection", default).  ``method="zla"`` replaces ``g(m_i)`` by the Zeger-Liang-Albert
(1988) approximation ``eta_i / sqrt(1 + c^2 s_i^2)`` with ``c = 16 sqrt(3) / (15 pi)`` for
the logit (exact for probit with ``c = 1``; for the log link the exact shift
``eta + s^2/2``).  With a random intercept only ``s`` is constant and ZLA is the familiar
attenuation ``beta_M ~ beta / sqrt(1 + c^2 sigma^2)``.  These are the quantities a GEE
(:func:`bayes_glmm.postfit.gee.fit_gee`) estimates directly.

Uncertainty
-----------
* posterior fits: every quantity is computed per draw; the table gives the posterior
  mean, SD and equal-tailed interval;
* ML / PQL fits, ``se="delta"``: delta method in beta with ``fit.vcov``; the covariance
  parameters are treated as known (their sampling variance is ignored, so the SEs are
  too small when the variance components are poorly determined);
* ``se="bootstrap"``: parametric bootstrap: ``n_boot`` data sets simulated from the fitted
  model (new random effects from N(0, Sigma-hat)), each refitted by the same method
  (``fit_ml`` with the fit's ``n_agq``, or ``fit_pql``); percentile intervals.  Slow.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from scipy import stats

from .marginal_design import central_jacobian, gauss_hermite_normal, over_draws, prediction_design, random_effect_sd
from .marginal_ordinal import ordinal_marginal_effects, ordinal_marginal_means
from .protocol import is_posterior, point_params, posterior_draws
from ..families.links import ZLA_C2 as LINK_ZLA_C2

__all__ = ["gauss_hermite_normal", "random_effect_sd", "integrate_mean", "marginal_means",
           "marginal_effects", "marginal_coefficients", "fit_gee", "ZLA_C2"]

#: (16 sqrt(3) / (15 pi))^2, the logistic-to-normal scaling of Zeger, Liang & Albert (1988)
ZLA_C2 = LINK_ZLA_C2


def fit_gee(*args, **kwargs):
    """Population-averaged GEE fit; see :func:`bayes_glmm.postfit.gee.fit_gee`."""
    from .gee import fit_gee as _fit_gee
    return _fit_gee(*args, **kwargs)


# ----------------------------------------------------------------------------- pure numerics
def integrate_mean(eta, s, link, *, n_quad: int = 40, method: str = "quadrature",
                   n_draws: int = 200_000, random_seed=None) -> np.ndarray:
    """``E[h(eta + s Z)]``, ``Z ~ N(0, 1)``, elementwise.

    Parameters
    ----------
    eta, s : array-like, broadcastable
        Linear predictor without random effects (offset included) and SD of ``z'b``.
    link : Link
    method : {"quadrature", "montecarlo"}
        Gauss-Hermite with ``n_quad`` nodes, or plain Monte Carlo with ``n_draws`` draws
        (``random_seed``) -- the reference for tests.
    """
    eta, s = np.broadcast_arrays(np.asarray(eta, dtype=float), np.asarray(s, dtype=float))
    if link.is_identity:
        return eta.copy()
    if method == "quadrature":
        x, w = gauss_hermite_normal(n_quad)
    elif method == "montecarlo":
        x = np.random.default_rng(random_seed).standard_normal(int(n_draws))
        w = np.full(x.size, 1.0 / x.size)
    else:
        raise ValueError(f"method={method!r}; use 'quadrature' or 'montecarlo'")
    out = np.empty(eta.shape)
    flat_e, flat_s, flat_o = eta.reshape(-1), s.reshape(-1), out.reshape(-1)
    chunk = max(1, 2_000_000 // x.size)
    for i in range(0, flat_e.size, chunk):
        e = flat_e[i:i + chunk, None] + flat_s[i:i + chunk, None] * x[None, :]
        flat_o[i:i + chunk] = link.inverse(e) @ w
    return out


def _means(beta, covs, X, offset, Xr, link, n_quad):
    """(conditional eta, marginal mean) for one parameter set, or a block of draws: ``beta``
    (S, p) and ``covs`` (S, q_k, q_k) give (S, n) arrays."""
    eta = (X @ beta if np.ndim(beta) == 1 else beta @ X.T) + offset
    s = random_effect_sd(Xr, covs)
    return eta, integrate_mean(eta, s, link, n_quad=n_quad)


# ----------------------------------------------------------------------------- uncertainty engine
def _simulate_y(spec, beta, covs, sigma, rng, aux=None):
    eta = spec.X @ beta + spec.offset
    for term, cov in zip(spec.terms, covs):
        L = np.linalg.cholesky(np.asarray(cov) + 1e-12 * np.eye(term.q))
        b = rng.standard_normal((term.n_levels, term.q)) @ L.T
        eta = eta + term.contribution(b)
    fam = spec.family
    trials = spec.trials.astype(int) if fam.needs_trials else None
    # every auxiliary parameter by name (a family's own sigma among them overrides the LMM's)
    aux = {"sigma": 1.0 if sigma is None else sigma, **(aux or {})}
    return np.asarray(fam.random(eta, rng, trials=trials, **aux), dtype=float)


def _dispersion(fit) -> dict:
    """The point fit's auxiliary parameters by name (NB's ``theta``, Gamma's ``shape``, a
    Student-t's ``sigma`` and ``df``, ...); empty for an LMM, whose sigma is passed on its own."""
    d = getattr(fit, "dispersion", None)
    fam = fit.spec.family
    if d is None or fit.spec.is_lmm or not fam.aux_params:
        return {}
    out = {n: float(d[n]) for n in fam.aux_names if n in d}
    raw = getattr(fit, "fit", None)
    if fit.spec.has_disp and raw is not None and raw.aux:  # a dispersion formula: per fitted row
        out[fam.aux_params[0].name] = np.asarray(raw.aux[fam.aux_params[0].name], dtype=float)
    return out


def _refit(fit, spec):
    if getattr(fit, "method", "") == "PQL":
        from ..ml.pql import fit_pql
        return fit_pql(spec, dispersion=getattr(fit, "estimate_dispersion", True))
    from ..ml import fit_ml
    kw = {"n_agq": int(getattr(fit, "n_agq", 1))}
    if spec.family.has_sigma:
        kw["reml"] = bool(getattr(fit, "reml", False))
    return fit_ml(spec, **kw)


#: draws x rows per block when a posterior is evaluated a block of draws at a time
_BLOCK_ELEMENTS = 1_000_000


def _evaluate(fit, fun, *, se, n_boot, interval, random_seed, n_rows: int = 1):
    """Apply ``fun(beta, covs) -> (m,)`` to the fit; (estimate, sd, lower, upper, how).

    ``fun`` also takes a block of draws (``beta`` (S, p), ``covs`` (S, q_k, q_k)) and then
    returns (S, m): a posterior is evaluated in blocks of about ``_BLOCK_ELEMENTS / n_rows``
    draws (``n_rows``: the rows ``fun`` works on) -- one call per draw spent its time in
    per-call overhead.
    """
    if not 0 < interval < 1:
        raise ValueError(f"interval must be in (0, 1); got {interval}")
    a = (1.0 - interval) / 2.0
    if is_posterior(fit):
        d = posterior_draws(fit)
        step = max(1, _BLOCK_ELEMENTS // max(int(n_rows), 1))
        vals = over_draws(fun, d["beta"], d["covs"], step)
        sd = vals.std(0, ddof=1) if vals.shape[0] > 1 else np.full(vals.shape[1:], np.nan)
        return (vals.mean(0), sd, np.quantile(vals, a, axis=0),
                np.quantile(vals, 1 - a, axis=0), "posterior")
    beta, covs, sigma = point_params(fit)
    est = np.asarray(fun(beta, covs), dtype=float)
    nan = np.full(est.shape, np.nan)
    if se is None or se == "none":
        return est, nan, nan, nan, "none"
    if se == "delta":
        V = getattr(fit, "vcov", None)
        if V is None:
            raise ValueError(f"{type(fit).__name__} has no vcov for the delta method; use se='bootstrap'")
        V = np.asarray(V, dtype=float)
        J = central_jacobian(fun, beta, covs)
        sd = np.sqrt(np.clip(np.einsum("ij,jk,ik->i", J, V, J), 0, None))
        z = stats.norm.ppf(1 - a)
        return est, sd, est - z * sd, est + z * sd, "delta (beta only)"
    if se == "bootstrap":
        spec = getattr(fit, "spec", None)
        if spec is None:
            raise ValueError("se='bootstrap' needs a fit with a spec (GLMM.fit_ml or fit_pql)")
        rng = np.random.default_rng(random_seed)
        import warnings
        vals = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(int(n_boot)):
                y = _simulate_y(spec, beta, covs, sigma, rng, _dispersion(fit))
                bfit = _refit(fit, dataclasses.replace(spec, y=y))
                bb, bc, _ = point_params(bfit)
                vals.append(fun(bb, bc))
        vals = np.asarray(vals)
        return est, vals.std(0, ddof=1), np.quantile(vals, a, axis=0), np.quantile(vals, 1 - a, axis=0), \
            f"parametric bootstrap ({int(n_boot)})"
    raise ValueError(f"se={se!r}; use 'delta', 'bootstrap' or None")


def _check_fit(fit):
    spec = getattr(fit, "spec", None)
    if spec is None:
        raise ValueError(f"{type(fit).__name__} has no spec; pass a GLMM fit (fit_ml, sample, fit_pql)")
    if spec.family.categorical_response:
        # the integrals here take the inverse link of eta as the mean, which the thresholds of an
        # ordered response enter (marginal_means / marginal_effects have their own for it)
        raise ValueError(f"marginal coefficients of an ordered categorical response ({spec.family.name} "
                         f"family) are not implemented; use marginal_means / marginal_effects (category "
                         f"probabilities or the expected category, bayes_glmm.postfit.marginal_ordinal)")
    if getattr(spec, "has_zi", False):
        # the marginal mean of a zero-inflated model mixes the zero-inflation part in; the
        # integrals here cover the conditional model only, so refuse rather than mislead
        lab = getattr(spec, "zi_label", "zi")  # zero inflation, or a hurdle's hu
        what = "a zero-inflated model" if lab == "zi" else "a hurdle model"
        raise ValueError(f"marginal means/effects of {what} ({lab}={spec.zi_formula!r}) are not "
                         f"implemented; use fit.predict(newdata, kind='mean', re_form=None) for "
                         f"population-level expected counts" + (", or fit the model without zi" if lab == "zi" else ""))
    return spec


# ----------------------------------------------------------------------------- public API
def _marginal_and_conditional(fit, fun, se, n_boot, interval, random_seed, n_rows=1):
    """Marginal estimate with its uncertainty, and the conditional value beside it.

    ``fun(beta, covs, which="marginal")`` computes either quantity from one parameter set
    (or a block of draws, see :func:`_evaluate`).
    """
    est, sd, lo, hi, how = _evaluate(fit, fun, se=se, n_boot=n_boot, interval=interval,
                                     random_seed=random_seed, n_rows=n_rows)
    if is_posterior(fit):
        cond = _evaluate(fit, lambda b, c: fun(b, c, "conditional"), se=None, n_boot=0,
                         interval=interval, random_seed=None, n_rows=n_rows)[0]
    else:
        b, c, _ = point_params(fit)
        cond = fun(b, c, "conditional")
    return cond, est, sd, lo, hi, how


def marginal_means(fit, newdata: pd.DataFrame | None = None, *, scale: str = "mean", n_quad: int = 40,
                   se: str | None = "delta", n_boot: int = 200, interval: float = 0.95,
                   random_seed=None) -> pd.DataFrame:
    """Population-averaged means for covariate rows, next to the conditional ones.

    Parameters
    ----------
    fit : results object
        ML / PQL (point) or posterior fit of a GLMM.
    newdata : DataFrame, optional
        Covariate rows (grouping columns may hold any level: the random effects are
        integrated out).  Default: the fitted rows.
    scale : {"mean", "link"} (ordinal fits also "probs")
        Report ``E[y]`` (probability / rate per row) or its link ``g(E[y])``.  Ordinal fits:
        the expected category number, the latent mean, or every category's probability (one
        row per row and category); see :mod:`bayes_glmm.postfit.marginal_ordinal`.
    n_quad : int
        Gauss-Hermite nodes.
    se : {"delta", "bootstrap", None}
        Uncertainty for point fits (ignored for posterior fits); see the module docstring.
    n_boot : int
    interval : float
    random_seed : int, optional
        For the bootstrap.

    Returns
    -------
    DataFrame
        ``conditional`` (``h(x'beta + offset)``, random effects at 0), ``marginal``,
        ``se``, ``lower``, ``upper`` and ``uncertainty`` (how they were obtained).
    """
    if getattr(getattr(fit, "spec", None), "family", None) is not None and fit.spec.family.categorical_response:
        return ordinal_marginal_means(fit, newdata, scale=scale, n_quad=n_quad, se=se,
                                      interval=interval)
    spec = _check_fit(fit)
    if scale not in ("mean", "link"):
        raise ValueError(f"scale={scale!r}; use 'mean' or 'link'")
    X, off, Xr, index = prediction_design(fit, newdata)
    link = spec.family.link

    def fun(beta, covs, which="marginal"):
        eta, m = _means(beta, covs, X, off, Xr, link, n_quad)
        if which == "conditional":
            return eta if scale == "link" else link.inverse(eta)
        return link.link(m) if scale == "link" else m

    cond, est, sd, lo, hi, how = _marginal_and_conditional(fit, fun, se, n_boot, interval, random_seed,
                                                           n_rows=len(X))
    return pd.DataFrame({"conditional": cond, "marginal": est, "se": sd, "lower": lo, "upper": hi,
                         "uncertainty": how}, index=index)


def marginal_effects(fit, newdata1: pd.DataFrame, newdata0: pd.DataFrame, *, contrast: str = "difference",
                     average: bool = False, n_quad: int = 40, se: str | None = "delta", n_boot: int = 200,
                     interval: float = 0.95, random_seed=None, category=None) -> pd.DataFrame:
    """Population-averaged contrasts between paired covariate rows (``newdata1`` vs ``newdata0``).

    Parameters
    ----------
    newdata1, newdata0 : DataFrame
        Same number of rows; row i of each forms a pair (e.g. treated vs untreated).
    contrast : {"difference", "ratio", "link"}
        ``m1 - m0`` (risk difference), ``m1 / m0`` (risk / rate ratio) or
        ``g(m1) - g(m0)`` (marginal log odds ratio / log rate ratio).
    average : bool
        Average the marginal means over the rows before contrasting (one population-level
        effect, e.g. an average treatment effect over the observed covariates).
    category : optional
        Ordinal fits: contrast ``P(Y = category)`` instead of the expected category number;
        ``contrast="link"`` is then the latent difference (see
        :mod:`bayes_glmm.postfit.marginal_ordinal`).

    Returns
    -------
    DataFrame
        ``conditional`` (the same contrast with random effects at 0), ``marginal``,
        ``se``, ``lower``, ``upper``, ``uncertainty``.
    """
    if contrast not in ("difference", "ratio", "link"):
        raise ValueError(f"contrast={contrast!r}; use 'difference', 'ratio' or 'link'")
    if len(newdata1) != len(newdata0):
        raise ValueError(f"newdata1 has {len(newdata1)} rows but newdata0 has {len(newdata0)}; pair them row by row")
    if getattr(getattr(fit, "spec", None), "family", None) is not None and fit.spec.family.categorical_response:
        return ordinal_marginal_effects(fit, newdata1, newdata0, contrast=contrast,
                                        average=average, n_quad=n_quad, se=se, interval=interval, category=category)
    if category is not None:
        raise ValueError("category= is for ordinal fits (the probability of one category)")
    spec = _check_fit(fit)
    d1, d0 = prediction_design(fit, newdata1), prediction_design(fit, newdata0)
    link = spec.family.link

    def contrast_of(m1, m0):
        if contrast == "difference":
            return m1 - m0
        if contrast == "ratio":
            return m1 / m0
        return link.link(m1) - link.link(m0)

    def fun(beta, covs, which="marginal"):
        e1, m1 = _means(beta, covs, *d1[:3], link, n_quad)
        e0, m0 = _means(beta, covs, *d0[:3], link, n_quad)
        if which == "conditional":
            m1, m0 = link.inverse(e1), link.inverse(e0)
        if average:  # over the rows (the last axis; a block of draws comes first)
            m1, m0 = m1.mean(axis=-1, keepdims=True), m0.mean(axis=-1, keepdims=True)
        return contrast_of(m1, m0)

    cond, est, sd, lo, hi, how = _marginal_and_conditional(fit, fun, se, n_boot, interval, random_seed,
                                                           n_rows=2 * len(d1[0]))
    index = pd.Index(["average"]) if average else d1[3]
    return pd.DataFrame({"conditional": cond, "marginal": est, "se": sd, "lower": lo, "upper": hi,
                         "uncertainty": how}, index=index)


def _marginal_eta(eta, s, link, method, n_quad):
    """Marginal link-scale predictor per row: exact (projection) or ZLA approximation."""
    if method == "projection":
        return link.link(integrate_mean(eta, s, link, n_quad=n_quad))
    return link.zla_eta(eta, s)


def marginal_coefficients(fit, *, method: str = "projection", newdata: pd.DataFrame | None = None,
                          n_quad: int = 40, se: str | None = "delta", n_boot: int = 200,
                          interval: float = 0.95, random_seed=None) -> pd.DataFrame:
    """Population-averaged ("marginal") coefficients implied by a GLMM.

    Parameters
    ----------
    method : {"projection", "zla"}
        "projection": least-squares fit of the exact marginal link-scale means
        ``g(E[y_i]) - offset_i`` on ``X`` over the rows; "zla": the same fit to the
        Zeger-Liang-Albert attenuation approximation (see the module docstring).
    newdata : DataFrame, optional
        Rows defining the covariate distribution (default: the fitted rows).  Must give
        ``X`` full column rank.

    Returns
    -------
    DataFrame
        Indexed by coefficient: ``conditional`` (the GLMM's fixef), ``marginal``, ``se``,
        ``lower``, ``upper``, ``ratio`` (marginal / conditional), ``uncertainty``.

    Notes
    -----
    For a random-intercept logit model ZLA gives ``beta / sqrt(1 + 0.346 sigma^2)`` for
    every coefficient; the projection is exact for the population-averaged curve but the
    marginal link-scale curve is not exactly linear in ``x``, so it depends (mildly) on the
    rows chosen.  Compare with a GEE fit (:func:`fit_gee`), which estimates the marginal
    coefficients directly.
    """
    spec = _check_fit(fit)
    if method not in ("projection", "zla"):
        raise ValueError(f"method={method!r}; use 'projection' or 'zla'")
    X, off, Xr, _ = prediction_design(fit, newdata)
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise ValueError(f"the rows give a rank-deficient X ({np.linalg.matrix_rank(X)} < {X.shape[1]} "
                         f"columns); pass newdata covering every coefficient, or None for the fitted rows")
    P = np.linalg.pinv(X)
    link = spec.family.link

    def fun(beta, covs):
        eta = (X @ beta if np.ndim(beta) == 1 else beta @ X.T) + off
        s = random_effect_sd(Xr, covs)
        r = _marginal_eta(eta, s, link, method, n_quad) - off
        return P @ r if r.ndim == 1 else r @ P.T

    est, sd, lo, hi, how = _evaluate(fit, fun, se=se, n_boot=n_boot, interval=interval,
                                     random_seed=random_seed, n_rows=len(X))
    names = list(spec.fixed_names)
    if is_posterior(fit):
        cond = posterior_draws(fit)["beta"].mean(0)
    else:
        cond = point_params(fit)[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = est / cond
    return pd.DataFrame({"conditional": cond, "marginal": est, "se": sd, "lower": lo, "upper": hi,
                         "ratio": ratio, "uncertainty": how}, index=pd.Index(names, name="coef"))

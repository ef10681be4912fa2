"""Confidence and prediction intervals for ML predictions (``MLResults.predict(interval=...)``).

``method="wald"``: the delta method on the link scale.  Var(eta) = x' V x (V the covariance
of beta-hat) plus, for conditional predictions of a fitted level, z' C_j z with C_j the
conditional covariance of that level's random effects (lme4's ``condVar``); beta-hat and
the conditional modes are treated as independent, as merTools' ``predictInterval`` does.
The interval ``eta +- z_{(1+level)/2} se`` is mapped through the inverse link (monotone, so
the endpoints map to endpoints).  Prediction intervals add what a new observation adds:
the random effect of an unknown group (population predictions and unseen levels:
z' Sigma z) and the response distribution: gaussian LMMs in closed form (sigma^2 added),
other families by simulation (eta drawn from its normal approximation, then the family's
:meth:`~bayes_glmm.families.Family.random`).

Models with a zero part (``zi=``, a hurdle's ``hu=``) or a dispersion formula (``disp=``): the
mean depends on more than eta, so both intervals simulate.  ``n_sim`` draws of all fixed
parameters ``(beta, beta_zi, beta_disp, the other auxiliary coordinates)`` come from their joint
normal approximation (``vcov_beta``, ``vcov_aux`` and their cross block ``vcov_beta_aux``; a
parameter whose variance is not finite, a zi coefficient at its boundary, is held at its
estimate).  A confidence interval of the mean is the percentile interval of E[y] over the draws
(the family's ``zero_part_moments``); a prediction interval draws one response per parameter
draw with ``family.random(eta, rng, zi_eta=..., **aux)``, the dispersion per row
``exp(X_disp beta_disp)`` from the new data's dispersion covariates.  Ordinal models the
same way with the thresholds as the auxiliary parameters: ``kind="probs"`` confidence
intervals per category, ``kind="mean"`` for the expected category number 1 .. K, and
prediction intervals of the category number (quantiles of simulated categories).

``method="bootstrap"``: ``n_boot`` parametric bootstrap refits
(:func:`bayes_glmm.ml.inference.bootstrap.bootstrap_fits`), every family.  Population
predictions (``re_form=None``) use replicates with new random effects (lme4's ``bootMer``
default); conditional predictions use replicates simulated at the fitted random effects
(``bootMer(..., use.u = TRUE)``) and each refit's own conditional modes, as
``bootMer(m, function(f) predict(f, newdata), use.u = TRUE)`` does: the sampling variability
of the prediction given the groups' effects, narrower than the Wald interval's conditional
variance (which is the spread of b given y); rows of levels not in the fit are refused there
(no effect to condition on).  Per replicate: eta, the
mean with the replicate's zero part and auxiliary parameters (ordinal: its thresholds; per row
with ``disp=``), percentile intervals over the replicates; prediction intervals simulate
responses from each replicate (a new random effect from the replicate's covariance where the
group is unknown).
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import special

from ...results import linear_predictor

__all__ = ["ml_predict_interval"]


def _extended(res) -> bool:
    """True where the mean or the response law needs more than eta: a zero part, disp=, or
    an ordinal model's thresholds."""
    return res.spec.has_zi or res.spec.X_disp is not None or res.spec.family.categorical_response


def _re_variances(res, design, re_form):
    """(conditional variance of the known random effects, variance of unknown ones) per row."""
    n = np.asarray(design.X).shape[0]
    known, unknown = np.zeros(n), np.zeros(n)
    fit = res.fit
    for k, (term, cov) in enumerate(zip(res.spec.terms, res.covs)):
        codes = np.asarray(design.codes[k])
        Xr = np.asarray(design.Xr[k], dtype=float)
        new = codes < 0
        z_sig_z = np.einsum("nq,qr,nr->n", Xr, np.asarray(cov, dtype=float), Xr)
        if re_form is None:
            unknown += z_sig_z
            continue
        if fit.b_cov is not None:
            C = np.asarray(fit.b_cov[k], dtype=float)[np.where(new, 0, codes)]
        else:  # only the conditional SDs are known: their squares on the diagonal
            sd = np.asarray(fit.b_sd[k], dtype=float)[np.where(new, 0, codes)]
            C = np.einsum("nq,qr->nqr", sd ** 2, np.eye(term.q))
        known += np.where(new, 0.0, np.einsum("nq,nqr,nr->n", Xr, C, Xr))
        unknown += np.where(new, z_sig_z, 0.0)
    return known, unknown


def _simulate_y(res, design, eta_draws, kind, rng):
    """Responses for (draws, rows) linear predictors; proportions for kind='mean' with trials."""
    fam = res.spec.family
    if res.spec.is_lmm:  # the residual SD is the fit's sigma, not a family auxiliary parameter
        return eta_draws + float(res.fit.sigma) * rng.standard_normal(eta_draws.shape)
    trials = None
    if fam.needs_trials:
        trials = np.rint(np.asarray(design.trials if design.trials is not None else 1.0, dtype=float)).astype(np.int64)
    y = np.asarray(fam.random(eta_draws, rng, trials=trials, **(res.fit.aux or {})), dtype=float)
    if kind == "mean" and trials is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            y = y / trials
    return y


def ml_predict_interval(res, design, kind, interval, level, re_form, new_levels, rng, *,
                        method="wald", n_boot=200, n_sim=4000, random_seed=None):
    """(estimate, lower, upper) arrays for :meth:`MLResults.predict` with an interval."""
    if method not in ("wald", "bootstrap"):
        raise ValueError(f"method={method!r} is not one of 'wald', 'bootstrap'")
    if not isinstance(n_sim, (int, np.integer)) or n_sim < 100:
        raise ValueError(f"n_sim={n_sim!r} must be an integer >= 100")
    spec, fam = res.spec, res.spec.family
    a = (1.0 - level) / 2.0
    if method == "bootstrap":
        if not isinstance(n_boot, (int, np.integer)) or n_boot < 10:
            raise ValueError(f"n_boot={n_boot!r} must be an integer >= 10")
        return _bootstrap_interval(res, design, kind, interval, a, re_form, new_levels, rng, int(n_boot),
                                   int(n_sim), random_seed)
    if _extended(res):
        return _extended_interval(res, design, kind, interval, a, re_form, new_levels, rng, int(n_sim))
    # interval estimates use zero for unseen levels ('sample' draws would make them random)
    eta = np.asarray(_eta_hat(res, design, re_form, new_levels), dtype=float)
    known, unknown = _re_variances(res, design, re_form)
    V = np.asarray(res.fit.vcov_beta, dtype=float)
    X = np.asarray(design.X, dtype=float)
    var_fix = np.einsum("np,pr,nr->n", X, V, X)
    zq = special.ndtri(1.0 - a)
    if interval == "confidence":
        se = np.sqrt(np.clip(var_fix + known, 0.0, None))
        lo, hi = eta - zq * se, eta + zq * se
        if kind == "link":
            return eta, lo, hi
        m_lo, m_hi = fam.mean(lo), fam.mean(hi)  # monotone inverse link: endpoints map to endpoints
        return fam.mean(eta), np.minimum(m_lo, m_hi), np.maximum(m_lo, m_hi)
    if spec.is_lmm:  # gaussian identity: closed form
        sd = np.sqrt(var_fix + known + unknown + float(res.fit.sigma) ** 2)
        return eta, eta - zq * sd, eta + zq * sd
    sd_eta = np.sqrt(np.clip(var_fix + known + unknown, 0.0, None))
    eta_d = eta[None, :] + sd_eta[None, :] * rng.standard_normal((int(n_sim), eta.size))
    return _prediction_from_draws(res, design, eta, eta_d, kind, a, rng)


def _eta_hat(res, design, re_form, new_levels):
    beta, b_terms, covs, _ = res._point_params()
    # unseen levels at 0 ('sample' would make the interval's centre random); 'error' still raises
    return linear_predictor(res.spec, design, beta, b_terms, covs,
                            "error" if new_levels == "error" else "population", None,
                            include_random=re_form is not None)


def _prediction_from_draws(res, design, eta, eta_d, kind, a, rng):
    fam = res.spec.family
    y = _simulate_y(res, design, eta_d, kind, rng)
    est = fam.mean(eta)
    if kind == "response" and fam.needs_trials and design.trials is not None:
        est = est * np.asarray(design.trials, dtype=float)
    # quantiles that are simulated values (no interpolation): a count's limits are counts
    return (est, np.quantile(y, a, axis=0, method="inverted_cdf"),
            np.quantile(y, 1 - a, axis=0, method="inverted_cdf"))


# --- zero part / dispersion formula: simulation from the joint normal approximation -------------
def _point_coords(res) -> np.ndarray:
    """The estimates ``(beta_zi, a)`` in the order of ``vcov_aux`` (a: optimizer coordinates)."""
    from ..auxpar import fit_coords

    fit, fam = res.fit, res.spec.family
    zi = np.asarray(fit.beta_zi, dtype=float) if res.spec.has_zi else np.zeros(0)
    a = fit_coords(fam, fit.aux, fit.beta_disp) if fam.aux_params else np.zeros(0)
    return np.concatenate([zi, np.asarray(a, dtype=float)])


def _joint_draws(res, n_sim, rng):
    """(S, p) draws of beta and (S, n_aux) draws of ``(beta_zi, a)`` from the joint normal."""
    fit = res.fit
    beta = np.asarray(fit.beta, dtype=float)
    aux = _point_coords(res)
    p, k = beta.size, aux.size
    V = np.zeros((p + k, p + k))
    V[:p, :p] = np.asarray(fit.vcov_beta, dtype=float)
    if k:
        V[p:, p:] = np.asarray(fit.vcov_aux, dtype=float)
        if fit.vcov_beta_aux is not None:  # else independent blocks (a fit that did not keep it)
            V[:p, p:] = np.asarray(fit.vcov_beta_aux, dtype=float)
            V[p:, :p] = V[:p, p:].T
    bad = ~np.isfinite(np.diag(V))
    if np.any(bad[:p]):
        names = [n for n, b in zip(res.spec.fixed_names, bad[:p]) if b]
        raise ValueError(f"predict(interval=...): the variance of {names} is not finite (separation?); "
                         f"no normal approximation to simulate from; refit without that term or use a "
                         f"Bayesian fit")
    # a zi coefficient at its boundary (NA SE): held at its estimate
    V[bad, :] = 0.0
    V[:, bad] = 0.0
    V = np.where(np.isfinite(V), V, 0.0)
    d = rng.multivariate_normal(np.concatenate([beta, aux]), V, size=n_sim, method="eigh",
                                check_valid="ignore")
    return d[:, :p], d[:, p:]


def _aux_rows(res, design, coords):
    """``(zi_eta, aux)`` for parameter rows ``coords`` (S, n_aux) and the new rows: zi_eta (S, n)
    or None, aux ``{name: (S, n) or (S, 1)}`` (the dispersion per row with ``disp=``)."""
    from ..auxpar import aux_natural
    from ..pirls import disp_natural

    spec, fam = res.spec, res.spec.family
    k_zi = spec.p_zi if spec.has_zi else 0
    zi_eta = None
    if spec.has_zi:
        zi_eta = coords[:, :k_zi] @ np.asarray(design.X_zi, dtype=float).T
    rest = coords[:, k_zi:]
    if not fam.aux_params:
        return zi_eta, {}
    if spec.X_disp is not None:
        X_disp = np.asarray(design.X_disp, dtype=float)
        per = [disp_natural(fam, X_disp, c) for c in rest]
    else:
        per = [aux_natural(fam, c) for c in rest]
    aux = {}
    for name in per[0]:
        aux[name] = np.stack([np.atleast_1d(np.asarray(d[name], dtype=float)) for d in per])
    return zi_eta, aux


def _expected(res, eta, zi_eta, aux, kind="mean"):
    """E[y | eta] per trial with the zero part (the family's ``zero_part_moments``); ordinal:
    the expected category number, or (kind="probs") the category probabilities (last axis)."""
    fam = res.spec.family
    if fam.categorical_response:
        return fam.category_probs(eta, **aux) if kind == "probs" else fam.response_mean(eta, **aux)
    mu = fam.mean(eta)
    if zi_eta is None:
        return mu
    return fam.zero_part_moments(mu, None, special.expit(zi_eta), **aux)[0]


def _extended_interval(res, design, kind, interval, a, re_form, new_levels, rng, n_sim):
    spec, fam = res.spec, res.spec.family
    eta = np.asarray(_eta_hat(res, design, re_form, new_levels), dtype=float)
    known, unknown = _re_variances(res, design, re_form)
    X = np.asarray(design.X, dtype=float)
    # the random-effect part of eta (and the offset) as the point prediction has them
    rest_eta = eta - X @ np.asarray(res.fit.beta, dtype=float)
    z0, aux0 = _aux_rows(res, design, _point_coords(res)[None, :])
    if kind == "link":
        if interval == "confidence":  # the conditional model's eta: the delta method is exact here
            se = np.sqrt(np.clip(np.einsum("np,pr,nr->n", X, np.asarray(res.fit.vcov_beta, dtype=float), X)
                                 + known, 0.0, None))
            zq = special.ndtri(1.0 - a)
            return eta, eta - zq * se, eta + zq * se
    B, C = _joint_draws(res, n_sim, rng)
    zi_d, aux_d = _aux_rows(res, design, C)
    extra = known if interval == "confidence" else known + unknown
    eta_d = B @ X.T + rest_eta[None, :] + np.sqrt(np.clip(extra, 0.0, None))[None, :] * rng.standard_normal(
        (n_sim, eta.size))
    est = _expected(res, eta[None, :], z0, aux0, kind)[0]
    if interval == "confidence":
        draws = _expected(res, eta_d, zi_d, aux_d, kind)
        return est, np.quantile(draws, a, axis=0), np.quantile(draws, 1 - a, axis=0)
    trials = None
    if fam.needs_trials:
        trials = np.rint(np.asarray(design.trials if design.trials is not None else 1.0, dtype=float)).astype(np.int64)
    y = np.asarray(fam.random(eta_d, rng, trials=trials, zi_eta=zi_d, **aux_d), dtype=float)
    if fam.categorical_response:  # codes 0 .. K-1 to the category numbers of the mean, 1 .. K
        y = y + 1.0
    if trials is not None:
        if kind == "mean":
            with np.errstate(divide="ignore", invalid="ignore"):
                y = y / trials
        elif design.trials is not None:
            est = est * np.asarray(design.trials, dtype=float)
    return (est, np.quantile(y, a, axis=0, method="inverted_cdf"),
            np.quantile(y, 1 - a, axis=0, method="inverted_cdf"))


# --- parametric bootstrap ----------------------------------------------------------------------
def _unknown_variance(covs, design, re_form) -> np.ndarray:
    """z' Sigma z per row summed over the terms whose group is unknown (all terms for
    population predictions, unseen levels for conditional ones)."""
    n = np.asarray(design.X).shape[0]
    out = np.zeros(n)
    for k, cov in enumerate(covs):
        Xr = np.asarray(design.Xr[k], dtype=float)
        v = np.einsum("nq,qr,nr->n", Xr, np.asarray(cov, dtype=float), Xr)
        out += v if re_form is None else np.where(np.asarray(design.codes[k]) < 0, v, 0.0)
    return out


def _replicate_scale(res, design, eta, kind):
    """One fit's eta (n,) on the scale of ``kind`` with its own zero part and auxiliary
    parameters (mean per trial, x trials for kind='response'; ordinal probs (n, K))."""
    if kind == "link":
        return eta
    fam = res.spec.family
    if _extended(res):
        zi, aux = _aux_rows(res, design, _point_coords(res)[None, :])
        m = _expected(res, eta[None, :], zi, aux, kind)[0]
    else:  # the mean is the inverse link of eta whatever the auxiliary parameters
        m = fam.mean(eta)
    if kind == "response" and fam.needs_trials and design.trials is not None:
        m = m * np.asarray(design.trials, dtype=float)
    return m


def _bootstrap_interval(res, design, kind, interval, a, re_form, new_levels, rng, n_boot, n_sim, random_seed):
    from .bootstrap import bootstrap_fits

    spec, fam = res.spec, res.spec.family
    if re_form is not None and any(np.any(np.asarray(c) < 0) for c in design.codes):
        raise ValueError("method='bootstrap' with re_form='full' conditions on the fitted groups' effects "
                         "(bootMer's use.u=TRUE), and newdata has levels not in the fit, whose effect is "
                         "unknown; predict those rows with re_form=None (population) or method='wald'")
    fits = [f for f in bootstrap_fits(res, n_boot, random_seed, use_u=re_form is not None) if f is not None]
    if len(fits) < max(10, n_boot // 2):
        raise ValueError(f"method='bootstrap': only {len(fits)} of {n_boot} refits succeeded; use method='wald'")
    reps = type(res)
    est = _replicate_scale(res, design, np.asarray(_eta_hat(res, design, re_form, new_levels), dtype=float), kind)
    trials = None
    if fam.needs_trials:
        trials = np.rint(np.asarray(design.trials if design.trials is not None else 1.0, dtype=float)).astype(np.int64)
    per = max(1, int(np.ceil(n_sim / len(fits))))
    draws = []
    for f in fits:
        with warnings.catch_warnings():  # a replicate's boundary fit is not the user's fit
            warnings.simplefilter("ignore")
            r = reps(spec, f)
        eta_r = np.asarray(_eta_hat(r, design, re_form, new_levels), dtype=float)
        if interval == "confidence":
            draws.append(_replicate_scale(r, design, eta_r, kind)[None])
            continue
        sd_new = np.sqrt(np.clip(_unknown_variance(r.covs, design, re_form), 0.0, None))
        eta_d = eta_r[None, :] + sd_new[None, :] * rng.standard_normal((per, eta_r.size))
        if spec.is_lmm:
            y = eta_d + float(f.sigma) * rng.standard_normal(eta_d.shape)
        else:
            zi, aux = _aux_rows(r, design, _point_coords(r)[None, :]) if _extended(r) else (None, f.aux or {})
            y = np.asarray(fam.random(eta_d, rng, trials=trials, zi_eta=zi, **aux), dtype=float)
        if fam.categorical_response:  # codes 0 .. K-1 to the category numbers of the mean, 1 .. K
            y = y + 1.0
        if kind == "mean" and trials is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                y = y / trials
        draws.append(y)
    d = np.concatenate(draws, axis=0)
    if interval == "confidence":
        return est, np.quantile(d, a, axis=0), np.quantile(d, 1 - a, axis=0)
    # quantiles that are simulated values (no interpolation): a count's limits are counts
    return (est, np.quantile(d, a, axis=0, method="inverted_cdf"),
            np.quantile(d, 1 - a, axis=0, method="inverted_cdf"))

"""Duck-typed access to the parameters of any fit (internal).

:mod:`bayes_glmm.postfit.comparison`, :mod:`bayes_glmm.postfit.marginal` and :mod:`bayes_glmm.postfit.variance`
accept any object that looks like a fit:

* a *point* fit has ``fixef`` (Series) and, optionally, ``se`` (Series), ``vcov``
  (DataFrame), ``varcorr`` (lme4's ``as.data.frame(VarCorr())`` layout), ``ranef`` and
  ``spec`` (:class:`~bayes_glmm.spec.model_spec.ModelSpec`): ML (Laplace / AGQ), PQL and GEE results;
* a *posterior* fit additionally has ``idata`` (ArviZ InferenceData) whose posterior holds
  ``beta`` (dim ``coef``), ``sd_<ident>``, ``corr_<ident>``, ``b_<ident>`` and ``sigma``
  as written by :mod:`bayes_glmm.bayes`.

Everything here is a pure function of the fit's public attributes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..covariance import corr_pairs

__all__ = ["is_posterior", "method_name", "point_params", "posterior_draws", "stack_draws", "corr_matrices"]


def is_posterior(fit) -> bool:
    """True when ``fit`` carries posterior draws (``fit.idata.posterior``)."""
    idata = getattr(fit, "idata", None)
    return idata is not None and hasattr(idata, "posterior")


def method_name(fit) -> str:
    """A short label for the estimation method (``fit.method``, else the class name)."""
    m = getattr(fit, "method", None)
    if m:
        return str(m)
    return "posterior" if is_posterior(fit) else type(fit).__name__


def _require_fixef(fit) -> pd.Series:
    fx = getattr(fit, "fixef", None)
    if fx is None:
        raise ValueError(f"{type(fit).__name__} has no 'fixef'; pass a fit from GLMM.fit_ml, "
                         f"GLMM.sample, GLMM.fit_pql or fit_gee")
    return pd.Series(fx, dtype=float)


def covs_from_varcorr(spec, varcorr: pd.DataFrame) -> list:
    """Per-term covariance matrices rebuilt from a ``varcorr`` table (grp/var1/var2/vcov/sdcor)."""
    covs = []
    for term in spec.terms:
        q = term.q
        cov = np.zeros((q, q))
        rows = varcorr[varcorr["grp"] == term.name] if varcorr is not None else varcorr
        idx = {c: i for i, c in enumerate(term.coef_names)}
        for _, r in (rows.iterrows() if rows is not None else []):
            v1, v2 = r["var1"], r["var2"]
            if v1 not in idx:
                continue
            if v2 is None or (isinstance(v2, float) and np.isnan(v2)):
                cov[idx[v1], idx[v1]] = r["vcov"]
            elif v2 in idx:
                cov[idx[v1], idx[v2]] = cov[idx[v2], idx[v1]] = r["vcov"]
        covs.append(cov)
    return covs


def point_params(fit):
    """(beta (p,), covs [(q_k, q_k)], sigma or None) of a point fit.

    Uses ``fit._point_params()`` when the fit implements the
    :class:`~bayes_glmm.results.FitResults` contract, else ``fixef`` and ``varcorr``.
    """
    if hasattr(fit, "_point_params") and getattr(fit, "spec", None) is not None and not is_posterior(fit):
        beta, _, covs, sigma = fit._point_params()
        return np.asarray(beta, dtype=float), [np.asarray(c, dtype=float) for c in covs], sigma
    beta = _require_fixef(fit).to_numpy()
    spec = getattr(fit, "spec", None)
    vc = getattr(fit, "varcorr", None)
    covs = covs_from_varcorr(spec, vc) if spec is not None else []
    sigma = None
    if vc is not None and len(vc) and (vc["grp"] == "Residual").any():
        sigma = float(vc.loc[vc["grp"] == "Residual", "sdcor"].iloc[0])
    return beta, covs, sigma


def stack_draws(idata, name: str) -> np.ndarray:
    """Posterior draws of ``name`` with chains and draws stacked on axis 0."""
    da = idata.posterior[name]
    arr = np.asarray(da.values, dtype=float)
    return arr.reshape((-1,) + arr.shape[2:])


def posterior_draws(fit, *, ranef: bool = False) -> dict:
    """Per-draw parameters of a posterior fit.

    Returns
    -------
    dict with
        ``beta`` (S, p); ``covs`` list of (S, q_k, q_k); ``sigma`` (S,) or None;
        ``b`` list of (S, J_k, q_k) when ``ranef``.
    """
    if not is_posterior(fit):
        raise ValueError(f"{type(fit).__name__} has no posterior draws (fit.idata); use a fit from GLMM.sample")
    spec = fit.spec
    post = fit.idata.posterior
    beta = stack_draws(fit.idata, "beta")
    if beta.ndim == 1:
        beta = beta[:, None]
    covs, bs = [], []
    for term in spec.terms:
        k = term.ident
        sd = stack_draws(fit.idata, f"sd_{k}").reshape(beta.shape[0], term.q)
        if term.cov.n_corr(term.q) > 0 and f"corr_{k}" in post:
            corr = corr_matrices(stack_draws(fit.idata, f"corr_{k}"), term.q)
        else:
            corr = np.broadcast_to(np.eye(term.q), (beta.shape[0], term.q, term.q))
        covs.append(corr * sd[:, :, None] * sd[:, None, :])
        if ranef:
            bs.append(stack_draws(fit.idata, f"b_{k}").reshape(beta.shape[0], term.n_levels, term.q))
    sigma = stack_draws(fit.idata, "sigma").reshape(-1) if "sigma" in post else None
    out = {"beta": beta, "covs": covs, "sigma": sigma}
    if ranef:
        out["b"] = bs
    return out


def corr_matrices(draws, q: int) -> np.ndarray:
    """(S, q, q) correlation matrices from draws of the off-diagonal pairs (S, q(q-1)/2), the
    ``posterior`` layout, in lme4's order (column by column); (S, q, q) input passes through."""
    a = np.asarray(draws, dtype=float)
    S = a.shape[0]
    if a.size == S * q * q:
        return a.reshape(S, q, q)
    pairs = a.reshape(S, -1)
    out = np.broadcast_to(np.eye(q), (S, q, q)).copy()
    for m, (j, i) in enumerate(corr_pairs(q)):
        out[:, i, j] = out[:, j, i] = pairs[:, m]
    return out

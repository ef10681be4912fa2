"""Intraclass correlations (ICC) on the latent scale, per grouping factor.

For a GLMM with random intercepts the share of the latent (link-scale) variance due to
grouping factor g is

    ICC_g = sigma_g^2 / (sum_h sigma_h^2 + sigma_e^2),

with the *distribution-specific* residual variance sigma_e^2 (Nakagawa & Schielzeth 2010;
Nakagawa, Johnson & Schielzeth 2017):

================  ==============================================================
family / link     sigma_e^2
================  ==============================================================
gaussian          the residual variance sigma^2
bernoulli/binomial  logit: pi^2/3 (standard logistic); probit: 1; cloglog: pi^2/6
poisson, log      log(1 + 1/lambda) (log-normal approximation), lambda the mean count
================  ==============================================================

The logit value is the threshold-model ("latent variable") definition: a binary response
is 1 when a latent ``eta + e`` with ``e ~ Logistic(0, 1)`` exceeds 0, and
``var(e) = pi^2/3 = 3.29``.  ``ICC_g`` is then the correlation between the latent
responses of two observations that share level of g (and no other factor).  For nested
factors (social group within farm) the correlation within the inner unit is the *sum* of
the two shares.

Seed 001 (McCulloch 1997, horses within farms) reports sigma^2_farm = 1.26 and a
within-farm correlation "on the logit scale" of 0.32.  With 1.26 read as a variance the
definition above gives 1.26 / (1.26 + 3.29) = 0.277; 0.32 is reproduced (0.326) only when
1.26 is read as the farm *SD* (1.26^2 = 1.59).  The paper gives no formula; this module
implements the standard latent-scale definition and the tests check both readings.

Terms with random slopes contribute the variance of their ``(Intercept)`` coefficient
(the between-group variance at covariate values of zero); terms without an intercept are
left out of the sums.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .protocol import is_posterior, method_name, point_params, posterior_draws, stack_draws
from ..families import Family, get_family

__all__ = ["icc", "icc_from_variances", "latent_residual_variance"]


def latent_residual_variance(family, link: str | None = None, *, mu=None, sigma=None, disp=None):
    """Distribution-specific residual variance on the link scale.

    Parameters
    ----------
    family : str or Family
    link : str, optional
        Defaults to the family's canonical link.
    mu : float or array, optional
        Poisson only: the mean count lambda (required).
    sigma : float or array, optional
        Gaussian only: the residual SD (required).

    Returns
    -------
    float or ndarray

    Raises
    ------
    ValueError
        When ``mu`` (poisson) or ``sigma`` (gaussian) is missing, or the link has no
        latent-scale definition (gaussian with log link).
    """
    fam = family if isinstance(family, Family) else get_family(family, link)
    return fam.latent_residual_variance(mu=mu, sigma=sigma, disp=disp)


def icc_from_variances(variances, residual_variance) -> np.ndarray:
    """ICC per factor: ``variances / (sum(variances) + residual_variance)`` (pure).

    Parameters
    ----------
    variances : array (..., K)
        Between-group (intercept) variances of the K grouping factors; leading axes are
        e.g. posterior draws.
    residual_variance : float or array (...)

    Returns
    -------
    ndarray (..., K)

    Examples
    --------
    >>> float(icc_from_variances([1.26], np.pi ** 2 / 3)[0])  # doctest: +ELLIPSIS
    0.2769...
    """
    v = np.asarray(variances, dtype=float)
    if np.any(v < 0):
        raise ValueError("variances must be non-negative")
    r = np.asarray(residual_variance, dtype=float)
    total = v.sum(axis=-1) + r
    return v / total[..., None]


def _intercept_variances(spec, covs_per_term, groups):
    """(..., K) intercept variances per grouping factor from per-term covariances (..., q, q)."""
    out = []
    for g in groups:
        acc = 0.0
        for term, cov in zip(spec.terms, covs_per_term):
            if term.group == g and "(Intercept)" in term.coef_names:
                i = term.coef_names.index("(Intercept)")
                acc = acc + np.asarray(cov)[..., i, i]
        out.append(acc)
    return np.stack(np.broadcast_arrays(*out), axis=-1)


def _poisson_mu(spec, beta, total_var):
    """Mean expected count over the fitted rows: mean_i exp(x_i b + offset_i + total_var / 2)."""
    eta = np.asarray(beta) @ spec.X.T + spec.offset  # (..., n)
    return np.exp(eta + np.asarray(total_var)[..., None] / 2.0).mean(axis=-1)


def icc(fit, *, mu=None, interval: float = 0.95) -> pd.DataFrame:
    """Latent-scale intraclass correlation per grouping factor.

    Parameters
    ----------
    fit : results object
        An ML, PQL or posterior fit (anything with ``spec`` and ``fixef``/``varcorr`` or
        ``idata``).  Posterior fits give one ICC per draw, summarised by its mean, SD and
        equal-tailed interval; point fits give the plug-in estimate (SD and interval NaN).
    mu : float, optional
        Poisson only: the mean count lambda for ``log(1 + 1/lambda)``.  Default: the mean
        over the fitted rows of the marginal expected count
        ``exp(x_i beta + offset_i + sum_g sigma_g^2 / 2)`` (per draw for posterior fits).
    interval : float
        Probability of the posterior interval.

    Returns
    -------
    pandas.DataFrame
        One row per grouping factor with columns ``group``, ``variance``,
        ``residual_variance``, ``icc``, ``sd``, ``lower``, ``upper``, ``method``.

    Notes
    -----
    PQL fits with an estimated dispersion (``MASS::glmmPQL``) use the same latent residual
    variance; their dispersion is not part of the definition.
    """
    spec = getattr(fit, "spec", None)
    if spec is None or not spec.terms:
        raise ValueError("icc needs a mixed-model fit with random effects (fit.spec.terms is empty)")
    if not 0 < interval < 1:
        raise ValueError(f"interval must be in (0, 1); got {interval}")
    fam = spec.family
    if getattr(spec, "has_disp", False):
        raise ValueError(f"the ICC needs one residual variance, but the dispersion formula "
                         f"disp={spec.disp_formula!r} makes it vary by row; fit without disp= for an ICC, or "
                         f"report the random-effect variances with the dispersion model's coefficients")
    groups = [g for g in spec.groups
              if any(t.group == g and "(Intercept)" in t.coef_names for t in spec.terms)]
    if not groups:
        raise ValueError("no random-intercept terms: the ICC is defined for terms with an (Intercept)")
    if is_posterior(fit):
        d = posterior_draws(fit)
        var = _intercept_variances(spec, d["covs"], groups)  # (S, K)
        sigma, beta = d["sigma"], d["beta"]
    else:
        beta, covs, sigma = point_params(fit)
        var = _intercept_variances(spec, covs, groups)  # (K,)
    if fam.is_count and mu is None:
        mu = _poisson_mu(spec, beta, var.sum(axis=-1))
    disp = None
    if fam.has_dispersion:
        name = fam.dispersion_name
        disp = (stack_draws(fit.idata, name) if is_posterior(fit) else float(fit.dispersion[name]))
    resid = latent_residual_variance(fam, mu=mu, sigma=sigma, disp=disp)
    vals = icc_from_variances(var, resid)
    resid_b = np.broadcast_to(np.asarray(resid, dtype=float), var.shape[:-1])
    a = (1 - interval) / 2
    rows = []
    for k, g in enumerate(groups):
        if vals.ndim == 2:
            v = vals[:, k]
            rows.append((g, float(var[:, k].mean()), float(resid_b.mean()), float(v.mean()), float(v.std(ddof=1)),
                         float(np.quantile(v, a)), float(np.quantile(v, 1 - a)), method_name(fit)))
        else:
            rows.append((g, float(var[k]), float(resid_b), float(vals[k]), np.nan, np.nan, np.nan,
                         method_name(fit)))
    return pd.DataFrame(rows, columns=["group", "variance", "residual_variance", "icc", "sd", "lower",
                                       "upper", "method"])

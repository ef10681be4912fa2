"""Penalized quasi-likelihood (Breslow & Clayton 1993), as R's ``MASS::glmmPQL``.

PQL linearizes the link around the current conditional modes and fits a *weighted linear
mixed model* to the working response

    z_i = eta_i + (y_i - mu_i) / mu_eta(eta_i) - offset_i,
    w_i = pw_i n_i mu_eta(eta_i)^2 / V(mu_i),      Var(e_i) = phi / w_i,

then recomputes ``eta = offset + X beta + Z b`` from the LMM's fixed effects and
conditional modes, and repeats.  Like ``glmmPQL`` (MASS 7.3) this module

* starts from the GLM fit of the fixed part (IRLS, random effects zero);
* fits each LMM by maximum likelihood (``lme(..., method = "ML")`` there, the profiled
  ML criterion of :mod:`bayes_glmm.ml.lmm` here -- the same weighted LMM code the ML path
  uses, not a second copy);
* stops when ``sum((eta - eta_old)^2) < 1e-6 sum(eta^2)``, or after ``max_iter = 10``
  iterations, returning the last LMM fit;
* estimates a dispersion ``phi`` (the LMM's residual variance) when ``dispersion=True``.
  ``dispersion=False`` fixes ``phi = 1`` (the textbook Breslow-Clayton PQL, as
  ``glmmPQL(..., control = lmeControl(sigma = 1))``).

Caveats
-------
PQL is an approximation to the *data*, not to the likelihood: its estimates are biased
towards zero for binary responses (and binomial with small ``n_i``, Poisson with small
means), particularly the variance components, and more so with few observations per
group (Breslow & Lin 1995; Rodriguez & Goldman 1995).  For the toenail data PQL gives an
intercept SD of about 2.3 against about 4.0 by adaptive quadrature.  There is no
likelihood: ``loglik``, ``aic`` and ``bic`` are NaN, and likelihood-ratio tests between PQL
fits are not valid.  Standard errors are those of the final working LMM.
"""
from __future__ import annotations

import dataclasses
import html
import warnings

import numpy as np
from scipy.linalg import solve_triangular

from ..families import get_family
from .lmm import fit_lmm, lmm_data, lmm_solve, modes_and_sds
from .optimize import lambdas_from_theta, minimize_bounded, theta_layout
from .pirls import make_response, working
from .results import MLResults
from .summary_text import random_effects_table
from .types import MLFit
from ..spec.validate import user_stacklevel

__all__ = ["fit_pql", "PQLResults", "glm_irls"]

_LOG_2PI = float(np.log(2.0 * np.pi))


def glm_irls(spec, *, tol: float = 1e-10, max_iter: int = 50) -> np.ndarray:
    """Fixed-part GLM fit (random effects dropped) by IRLS; returns eta including the offset.

    Uses the IRLS weights and working scores of :func:`bayes_glmm.ml.pirls.working`, from
    R's starting means, so the start of the PQL iterations is ``glm``'s fit.
    """
    resp = make_response(spec)
    fam = spec.family
    # R's family$initialize starting means (Family.mustart)
    eta = np.asarray(fam.link.link(fam.mustart(resp.y, resp.n_trials)), dtype=float)
    X = resp.X
    dev_old = np.inf
    for _ in range(max_iter):
        W, r = working(resp, eta)
        z = eta - resp.offset + r / np.where(W > 0, W, 1.0)
        beta = np.linalg.solve(X.T @ (W[:, None] * X), X.T @ (W * z))
        eta = resp.offset + X @ beta
        ll = fam.loglik(resp.y, eta, trials=resp.n_trials) if fam.needs_trials else \
            fam.loglik(resp.y, eta, sigma=1.0) if fam.has_sigma else fam.loglik(resp.y, eta)
        dev = -2.0 * float(np.sum(resp.pw * ll))
        if abs(dev - dev_old) < tol * (abs(dev) + 0.1):
            break
        dev_old = dev
    return eta


def _working_spec(spec, eta):
    """Gaussian working spec: y = z + offset (lmm subtracts the offset), weights w."""
    fam = spec.family
    resp = make_response(spec)
    mu = fam.link.inverse(eta)
    me = fam.link.mu_eta(eta)
    y_prop = resp.y / np.where(resp.n_trials > 0, resp.n_trials, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = eta + (y_prop - mu) / me
        w = resp.pw * resp.n_trials * me * me / fam.variance(mu)
    bad = ~np.isfinite(z) | ~np.isfinite(w)
    z = np.where(bad, eta, z)
    w = np.where(bad, 0.0, w)
    return dataclasses.replace(spec, y=z, weights=w, family=get_family("gaussian"), trials=None)


def _fit_lmm_fixed_sigma(wspec, start):
    """Weighted LMM by ML with the residual variance fixed at 1 (phi = 1).

    -2 loglik = log|L|^2 + pwrss + n log(2 pi) - sum log w, with Lambda absolute.
    """
    terms = wspec.terms
    slices, lower, theta0 = theta_layout(terms)
    if start is not None:
        theta0 = np.asarray(start, dtype=float)
    d = lmm_data(wspec)

    def crit(theta):
        sol = lmm_solve(d, lambdas_from_theta(theta, terms, slices))
        return sol["ldL2"] + sol["pwrss"] + d.n * _LOG_2PI - d.sum_log_w

    opt = minimize_bounded(crit, theta0, lower, label="PQL working LMM (phi = 1)")
    lambdas = lambdas_from_theta(opt["x"], terms, slices)
    sol = lmm_solve(d, lambdas)
    RXinv = solve_triangular(sol["RX"], np.eye(d.p), lower=True)
    b, b_sd = modes_and_sds(d.s, sol["factor"], lambdas, sol["u"], scale=1.0)
    return MLFit(beta=sol["beta"], theta=opt["x"], sigma=1.0, lambdas=lambdas, b=b, b_sd=b_sd,
                 vcov_beta=RXinv.T @ RXinv, loglik=np.nan, n_params=d.p + opt["x"].size,
                 method="ML", optimizer={"theta": opt["x"], "converged": opt["converged"],
                                         "grad_norm": opt["grad_norm"], "messages": [opt["message"]]})


def _eta_from(spec, lmm: MLFit) -> np.ndarray:
    eta = spec.offset + spec.X @ np.asarray(lmm.beta)
    for term, b in zip(spec.terms, lmm.b):
        eta = eta + term.contribution(b)
    return eta


def fit_pql(spec, dispersion: bool = True, *, max_iter: int = 10, tol: float = 1e-6) -> "PQLResults":
    """Fit a GLMM by penalized quasi-likelihood (``MASS::glmmPQL``).

    Parameters
    ----------
    spec : ModelSpec
        From ``GLMM(...).spec``; the gaussian, bernoulli, binomial and poisson families (any
        link), without zero inflation.
    dispersion : bool
        Estimate a dispersion phi (the working LMM's residual variance), as ``glmmPQL``
        does (default); False fixes phi = 1, the classical PQL of Breslow & Clayton.
    max_iter : int
        Maximum number of LMM fits (``glmmPQL``'s ``niter = 10``).
    tol : float
        Stop when ``sum((eta - eta_old)^2) < tol * sum(eta^2)`` (glmmPQL's 1e-6).

    Returns
    -------
    PQLResults
        ``fixef``, ``se``, ``vcov``, ``varcorr``, ``ranef``, ``summary()``; ``method`` is
        ``"PQL"``; ``loglik`` is NaN because PQL maximizes no likelihood.

    Notes
    -----
    PQL is biased for binary data (fixed effects and especially variance components are
    shrunk towards zero) when groups have few observations; prefer ``fit_ml(n_agq=...)``
    or the Bayesian fit there.  See the module docstring.

    Examples
    --------
    >>> import bayes_glmm as bg                                      # doctest: +SKIP
    >>> m = bg.GLMM("Response ~ Month * Treatment + (1 | ID)",
    ...             bg.datasets.load("toenail"), family="bernoulli")  # doctest: +SKIP
    >>> m.fit_pql().fixef.round(3).tolist()                           # doctest: +SKIP
    [-0.743, -0.295, -0.035, -0.1]
    """
    if not spec.terms:
        raise ValueError("fit_pql needs at least one random-effects term such as (1 | group); "
                         "for a fixed-effects-only model use a GLM")
    # the working LMM carries one auxiliary parameter, a residual scale sigma: refuse the others
    if len(spec.family.aux_params) > int(spec.family.has_sigma) or getattr(spec, "has_zi", False):
        # "zero inflation (zi='~1')", "hurdle (hu='~ x')"
        what = (f"{spec.family.zero_doc.split(' (')[0]} ({spec.zi_label}={spec.zi_formula!r})"
                if getattr(spec, "has_zi", False) else f"the {spec.family.name} family")
        raise ValueError(f"fit_pql does not handle {what} (glmmPQL's quasi-likelihood has no dispersion "
                         f"family or mixture); use fit_ml() (Laplace) or sample()")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be a positive integer; got {max_iter!r}")
    from .fit import _one_blas_thread, check_rank  # the ML path's BLAS pinning and rank check

    check_rank(np.asarray(spec.X), spec.fixed_names)
    eta = glm_irls(spec)
    theta = None
    converged = False
    with warnings.catch_warnings(), _one_blas_thread():
        warnings.simplefilter("ignore")  # boundary/convergence of the inner LMMs: reported below
        for it in range(1, int(max_iter) + 1):
            wspec = _working_spec(spec, eta)
            lmm = (fit_lmm(wspec, reml=False, start=theta) if dispersion
                   else _fit_lmm_fixed_sigma(wspec, theta))
            theta = np.asarray(lmm.theta, dtype=float)
            eta_old, eta = eta, _eta_from(spec, lmm)
            if np.sum((eta - eta_old) ** 2) < tol * np.sum(eta ** 2):
                converged = True
                break
    if not converged:
        warnings.warn(f"PQL did not converge in {max_iter} iterations (as glmmPQL, the last working "
                      f"LMM fit is returned); increase max_iter=", UserWarning, stacklevel=user_stacklevel())
    phi = float(lmm.sigma) ** 2
    sigma = float(lmm.sigma)
    if spec.family.has_sigma:
        lambdas, fit_sigma = lmm.lambdas, sigma
    else:  # non-gaussian MLResults read Lambda as absolute: fold the dispersion in
        lambdas, fit_sigma = [sigma * np.asarray(L) for L in lmm.lambdas], None
    theta_abs = np.concatenate([t.cov.theta_from_lambda(L) for L, t in zip(lambdas, spec.terms)])
    fit = MLFit(beta=np.asarray(lmm.beta), theta=theta_abs, sigma=fit_sigma, lambdas=list(lambdas),
                b=list(lmm.b), b_sd=list(lmm.b_sd), vcov_beta=np.asarray(lmm.vcov_beta), loglik=np.nan,
                n_params=int(lmm.n_params), method="PQL", reml=False, n_agq=1,
                optimizer={"iterations": it, "converged": converged, "dispersion": phi,
                           "messages": list(lmm.optimizer.get("messages", []))})
    return PQLResults(spec, fit, dispersion=phi, estimate_dispersion=bool(dispersion), iterations=it)


class PQLResults(MLResults):
    """Results of :func:`fit_pql`: the accessors of :class:`MLResults`, method ``"PQL"``.

    Attributes
    ----------
    dispersion : float
        phi, the working LMM's residual variance (glmmPQL's ``sigma^2``); 1 when fixed.
    estimate_dispersion : bool
    iterations : int
        Number of working-LMM fits.

    Notes
    -----
    ``loglik``, ``aic``, ``bic`` and ``deviance`` are NaN: PQL maximizes a quasi-likelihood
    of pseudo-data, not the likelihood of the GLMM.  The Wald table uses z statistics
    (``glmmPQL`` prints t statistics with lme's denominator degrees of freedom).
    """

    def __init__(self, spec, fit: MLFit, *, dispersion: float, estimate_dispersion: bool, iterations: int):
        self._phi = float(dispersion)
        self.estimate_dispersion = bool(estimate_dispersion)
        self.iterations = int(iterations)
        super().__init__(spec, fit)

    @property
    def dispersion(self) -> float:
        """glmmPQL's quasi-likelihood dispersion phi (a float; 1 when fixed). Not a family
        parameter, unlike ``MLResults.dispersion`` (a Series for NB / Gamma / Beta fits)."""
        return self._phi

    @property
    def method(self) -> str:
        return "PQL"

    @property
    def loglik(self) -> float:
        """NaN: PQL has no likelihood (do not compare PQL fits by AIC or LRT)."""
        return float("nan")

    @property
    def _uses_t(self) -> bool:
        return False

    def _repr_text(self) -> str:
        fam = self.spec.family
        disp = (f"estimated dispersion phi = {self.dispersion:.4g}" if self.estimate_dispersion
                else "dispersion fixed at 1")
        from .summary_text import SIGNIF_LEGEND, _aligned, _fixed_table_text, fixef_correlation_lines
        lines = ["Generalized linear mixed model fit by penalized quasi-likelihood (PQL)  [bayes_glmm]",
                 f" Family: {fam.display_name}  ( {fam.link.name} )",
                 f"Formula: {self.spec.formula}", f"   Data: {self.nobs} rows", "",
                 f"{self.iterations} working-LMM iterations; {disp}; no log-likelihood (PQL)", "",
                 "Random effects:"]
        lines += [" " + ln for ln in _aligned(random_effects_table(self), ("Groups", "Name"))]
        groups = "; ".join(f"{t.name}, {t.n_levels}" for t in self.spec.terms)
        lines += [f"Number of obs: {self.nobs}, groups:  {groups}", "", "Fixed effects:"]
        fx, has_p = _fixed_table_text(self)
        lines += fx.to_string().splitlines()
        if has_p:
            lines += ["---", SIGNIF_LEGEND]
        lines += fixef_correlation_lines(self)
        lines += ["", "Note: PQL is biased towards zero for binary data with few observations per group."]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._repr_text()

    def _repr_html_(self) -> str:
        return "<pre>" + html.escape(self._repr_text()) + "</pre>"

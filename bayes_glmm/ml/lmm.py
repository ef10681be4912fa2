"""Linear mixed models (gaussian, identity link) by profiled REML / ML, as ``lmer``.

Following Bates et al. (2015, JSS, sec. 3.4-3.6), for a given theta the penalized least
squares problem in (u, beta) is solved through the block Cholesky factor

    [L     0  ] [L'  R_ZX]      L L'      = Lambda' Z' W Z Lambda + I
    [R_ZX' R_X] [0   R_X']      R_ZX      = L^{-1} Lambda' Z' W X
                                R_X R_X'  = X' W X - R_ZX' R_ZX

and beta and sigma are profiled out, leaving a criterion in theta only:

    ML:   d(theta)    = log|L|^2 + n (1 + log(2 pi r2 / n))            - sum log w
    REML: d_R(theta)  = log|L|^2 + log|R_X|^2 + (n-p)(1 + log(2 pi r2/(n-p))) - sum log w

with r2 the penalized weighted residual sum of squares (``pwrss``).  All cross products
with the data are formed once (O(n)); each criterion evaluation is O(size of the
random-effects system) and never touches the n rows again.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_triangular

from . import linalg
from .optimize import (lambdas_from_theta, minimize_bounded, restart_off_boundary, theta_layout,
                       warn_nonconvergence)
from .types import MLFit

__all__ = ["LmmData", "lmm_data", "lmm_solve", "lmm_criterion", "fit_lmm"]

_LOG_2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True, eq=False)
class LmmData:
    """Theta-free cross products of an LMM (weights applied)."""

    s: linalg.ReStructure
    raw: linalg.Raw
    ZtWX: np.ndarray
    ZtWy: np.ndarray
    XtWX: np.ndarray
    XtWy: np.ndarray
    ytWy: float
    n: int
    p: int
    sum_log_w: float


def lmm_data(spec) -> LmmData:
    """Cross products of y, X and Z with the prior weights (offset subtracted from y)."""
    w = np.asarray(spec.weights, dtype=float)
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("prior weights must be finite and non-negative")
    y = np.asarray(spec.y, dtype=float) - np.asarray(spec.offset, dtype=float)
    X = np.asarray(spec.X, dtype=float)
    s = linalg.build_structure(spec.terms)
    pos = w > 0
    return LmmData(
        s=s, raw=linalg.crossprods(s, w), ZtWX=linalg.zt_r(s, w[:, None] * X),
        ZtWy=linalg.zt_r(s, w * y), XtWX=X.T @ (w[:, None] * X), XtWy=X.T @ (w * y),
        ytWy=float(np.sum(w * y * y)), n=int(np.sum(pos)), p=X.shape[1],
        # zero-weight rows carry no information and no density term (as in lm/lmer)
        sum_log_w=float(np.sum(np.log(w[pos]))),
    )


def lmm_solve(d: LmmData, lambdas):
    """Solve the penalized least squares problem for fixed Lambda.

    Returns
    -------
    dict
        ``factor`` (ReFactor), ``RX`` (lower, R_X R_X' = X'WX - R_ZX'R_ZX), ``beta``,
        ``u``, ``pwrss``, ``ldL2``, ``ldRX2``.
    """
    F = linalg.factorize(d.s, d.raw, lambdas)
    RZX = F.forward(linalg.lam_t(d.s, lambdas, d.ZtWX))
    cu = F.forward(linalg.lam_t(d.s, lambdas, d.ZtWy))
    XtX = d.XtWX - RZX.T @ RZX
    RX = np.linalg.cholesky(XtX)
    cb = solve_triangular(RX, d.XtWy - RZX.T @ cu, lower=True)
    beta = solve_triangular(RX.T, cb, lower=False)
    u = F.backward(cu - RZX @ beta)
    pwrss = max(d.ytWy - float(cu @ cu) - float(cb @ cb), 1e-300)
    return {"factor": F, "RX": RX, "beta": beta, "u": u, "pwrss": pwrss, "ldL2": F.logdet,
            "ldRX2": 2.0 * float(np.sum(np.log(np.diag(RX))))}


def lmm_criterion(sol: dict, d: LmmData, reml: bool) -> float:
    """Profiled deviance (ML) or REML criterion, -2 x the (restricted) log-likelihood."""
    if reml:
        nmp = d.n - d.p
        return sol["ldL2"] + sol["ldRX2"] + nmp * (1.0 + _LOG_2PI + np.log(sol["pwrss"] / nmp)) - d.sum_log_w
    return sol["ldL2"] + d.n * (1.0 + _LOG_2PI + np.log(sol["pwrss"] / d.n)) - d.sum_log_w


def fit_lmm(spec, reml: bool = True, *, start=None, maxiter: int = 1000) -> MLFit:
    """Fit a gaussian identity-link LMM by profiled REML (default) or ML.

    Parameters
    ----------
    spec : ModelSpec
    reml : bool
    start : array-like, optional
        Starting theta (default lme4's: Lambda = I).

    Returns
    -------
    MLFit
        ``vcov_beta = sigma^2 (R_X R_X')^{-1}``; ``b_sd`` are sigma times the conditional
        SDs from ``Lambda (L L')^{-1} Lambda'`` (conditional on beta, as lme4's condVar).
    """
    terms = spec.terms
    slices, lower, theta0 = theta_layout(terms)
    if start is not None:
        theta0 = np.asarray(start, dtype=float)
    d = lmm_data(spec)

    def crit(theta):
        return lmm_criterion(lmm_solve(d, lambdas_from_theta(theta, terms, slices)), d, reml)

    opt = minimize_bounded(crit, theta0, lower, maxiter=maxiter, label="REML" if reml else "ML")
    # the criterion is even in a diagonal theta at 0: make sure a boundary optimum is one
    opt, restart = restart_off_boundary(crit, opt, lower, maxiter=maxiter, label="REML" if reml else "ML")
    theta = opt["x"]
    lambdas = lambdas_from_theta(theta, terms, slices)
    sol = lmm_solve(d, lambdas)
    dev = lmm_criterion(sol, d, reml)
    sigma = float(np.sqrt(sol["pwrss"] / (d.n - d.p if reml else d.n)))
    RXinv = solve_triangular(sol["RX"], np.eye(d.p), lower=True)
    vcov = sigma ** 2 * (RXinv.T @ RXinv)
    b, b_sd = modes_and_sds(d.s, sol["factor"], lambdas, sol["u"], scale=sigma)
    optimizer = {"start": np.asarray(theta0, dtype=float), "theta": theta, "n_evals": opt["n_evals"],
                 "grad_norm": opt["grad_norm"], "hessian_pd": True, "converged": opt["converged"],
                 "messages": [opt["message"]], "criterion": dev, "boundary_restart": restart}
    warn_nonconvergence(optimizer, "REML" if reml else "ML")
    return MLFit(beta=sol["beta"], theta=theta, sigma=sigma, lambdas=lambdas, b=b, b_sd=b_sd,
                 vcov_beta=vcov, loglik=-0.5 * dev, n_params=d.p + theta.size + 1,
                 method="REML" if reml else "ML", reml=reml, n_agq=1, optimizer=optimizer)


def modes_and_sds(s, F, lambdas, u, scale=1.0):
    """Per-term ``b = Lambda u`` (J, q) and conditional SDs ``scale * sqrt(diag(Lambda A^{-1} Lambda'))``."""
    blocks = F.inv_diag_blocks()
    b, sds = [], []
    for k in range(len(s.J)):
        uk = u[s.starts[k]: s.starts[k] + s.J[k] * s.q[k]].reshape(s.J[k], s.q[k])
        Lk = lambdas[k]
        b.append(uk @ Lk.T)
        cv = np.einsum("ab,jbc,dc->jad", Lk, blocks[k], Lk)
        sds.append(scale * np.sqrt(np.clip(np.einsum("jaa->ja", cv), 0.0, None)))
    return b, sds

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
from .optimize import (fd_hessian, fd_hessian_from_grad, lambdas_from_theta, multimodal_prone, multistart_points, new_optinfo,
                       optimize_checked, report_starts, resolve_n_starts, restart_candidates, saturated_correlations,
                       solve_with_boundary,
                       theta_layout, theta_scales, warn_nonconvergence)
from .types import MLFit

__all__ = ["LmmData", "lmm_data", "lmm_solve", "lmm_criterion", "lmm_gradient", "fit_lmm"]

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
    beta_shift: np.ndarray | None = None  # y was centred by X beta_shift (see lmm_data)
    # the rows (centred y, X, w), for pwrss from the residuals where the cross products cancel
    y: np.ndarray | None = None
    X: np.ndarray | None = None
    w: np.ndarray | None = None


def lmm_data(spec) -> LmmData:
    """Cross products of y, X and Z with the prior weights (offset subtracted from y)."""
    w = np.asarray(spec.weights, dtype=float)
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("prior weights must be finite and non-negative")
    y = np.asarray(spec.y, dtype=float) - np.asarray(spec.offset, dtype=float)
    X = np.asarray(spec.X, dtype=float)
    s = linalg.build_structure(spec.terms)
    pos = w > 0
    # pwrss = y'Wy - |c_u|^2 - |c_b|^2 cancels catastrophically when y has a large mean
    # (y ~ 1000: the criterion is noisy at 1e-7, its finite-difference gradient at ~1, and
    # L-BFGS-B stalls far from the optimum).  The penalized least-squares problem is
    # equivariant in y -> y - X b0 (beta shifts by b0, u and pwrss are unchanged), so y is
    # centred by its weighted least-squares fit first.
    sw = np.sqrt(w)
    b0 = np.linalg.lstsq(sw[:, None] * X, sw * y, rcond=None)[0] if X.shape[1] else np.zeros(0)
    if not np.all(np.isfinite(b0)):
        b0 = np.zeros(X.shape[1])
    y = y - X @ b0
    return LmmData(
        s=s, raw=linalg.crossprods(s, w), ZtWX=linalg.zt_r(s, w[:, None] * X),
        ZtWy=linalg.zt_r(s, w * y), XtWX=X.T @ (w[:, None] * X), XtWy=X.T @ (w * y),
        ytWy=float(np.sum(w * y * y)), n=int(np.sum(pos)), p=X.shape[1],
        # zero-weight rows carry no information and no density term (as in lm/lmer)
        sum_log_w=float(np.sum(np.log(w[pos]))), beta_shift=b0,
        # the rows only where a residual SD can run to 0: with a structured term
        **({"y": y, "X": X, "w": w} if any(not t.cov.linear for t in spec.terms) else {}),
    )


#: pwrss below this fraction of y'Wy is recomputed from the residuals (the subtraction
#: y'Wy - |c_u|^2 - |c_b|^2 loses log10 of the ratio in digits)
PWRSS_CANCEL = 1e-6
#: X'WX - R_ZX'R_ZX below this fraction of X'WX (diagonal) is beyond double precision
#: (only checked for models with a structured term: see lmm_data)
XTX_CANCEL = 1e-10


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
    if d.y is not None and d.p and np.min(np.diag(XtX) / np.maximum(np.diag(d.XtWX), 1e-300)) < XTX_CANCEL:
        # X'V^{-1}X has cancelled to below 1e-10 of X'WX: with a structured term this is a
        # residual SD running to 0 (V^{-1} ~ 1/sigma^2 on a space the random effects fill);
        # beta, R_X and the REML criterion have no correct digits left, so the point is
        # infeasible for the optimizer, which stays where they are accurate (1e-6 of the limit)
        raise np.linalg.LinAlgError("X'V^-1 X has cancelled numerically (residual SD -> 0)")
    try:
        RX = np.linalg.cholesky(XtX)
    except np.linalg.LinAlgError:
        # a LinAlgError (a ValueError) so that the optimizer treats it as an infeasible point
        raise np.linalg.LinAlgError("the weighted fixed-effects design is rank deficient given the random effects "
                         "(X'WX - R_ZX'R_ZX is not positive definite): a fixed effect is constant within, "
                         "or confounded with, the grouping levels that carry weight, or zero weights "
                         "remove the rows that identify it. Drop or recode that fixed effect.") from None
    cb = solve_triangular(RX, d.XtWy - RZX.T @ cu, lower=True)
    beta = solve_triangular(RX.T, cb, lower=False)
    u = F.backward(cu - RZX @ beta)
    if d.beta_shift is not None:
        beta = beta + d.beta_shift
    pwrss = max(d.ytWy - float(cu @ cu) - float(cb @ cb), 1e-300)
    if pwrss < PWRSS_CANCEL * d.ytWy and d.y is not None:
        # y'Wy - |c_u|^2 - |c_b|^2 has lost most of its digits (a residual SD running to 0
        # under a structured term): the residuals themselves (O(n), only here)
        r = d.y - d.X @ (beta - (d.beta_shift if d.beta_shift is not None else 0.0)) - linalg.z_lam_u(d.s, lambdas, u)
        pwrss = max(float(np.sum(d.w * r * r) + u @ u), 1e-300)
    return {"factor": F, "RX": RX, "RZX": RZX, "beta": beta, "u": u, "pwrss": pwrss, "ldL2": F.logdet,
            "ldRX2": 2.0 * float(np.sum(np.log(np.diag(RX))))}


def lmm_criterion(sol: dict, d: LmmData, reml: bool) -> float:
    """Profiled deviance (ML) or REML criterion, -2 x the (restricted) log-likelihood."""
    if reml:
        nmp = d.n - d.p
        return sol["ldL2"] + sol["ldRX2"] + nmp * (1.0 + _LOG_2PI + np.log(sol["pwrss"] / nmp)) - d.sum_log_w
    return sol["ldL2"] + d.n * (1.0 + _LOG_2PI + np.log(sol["pwrss"] / d.n)) - d.sum_log_w


def _criterion_and_gradient(d: LmmData, terms, slices, reml: bool):
    """``theta -> (criterion, gradient)`` for a one-term model (:func:`lmm_gradient`)."""
    from .agq import theta_directions

    t = terms[0]
    E0 = theta_directions(t, t.cov.theta_start(t.q)) if t.cov.linear else None

    def fg(theta):
        lambdas = lambdas_from_theta(theta, terms, slices)
        sol = lmm_solve(d, lambdas)
        E = E0 if E0 is not None else theta_directions(t, theta)
        return lmm_criterion(sol, d, reml), lmm_gradient(d, sol, lambdas, E, reml)

    return fg


def _criterion_and_gradient_multi(d: LmmData, terms, slices, reml: bool):
    """``theta -> (criterion, gradient)`` for several terms (:func:`~bayes_glmm.ml.lmmgrad.lmm_gradient_multi`;
    central differences of the criterion where it returns None)."""
    from .agq import theta_directions
    from .lmmgrad import lmm_gradient_multi

    E0 = [theta_directions(t, t.cov.theta_start(t.q)) if t.cov.linear else None for t in terms]

    def crit(theta):
        return lmm_criterion(lmm_solve(d, lambdas_from_theta(theta, terms, slices)), d, reml)

    def fg(theta):
        theta = np.asarray(theta, dtype=float)
        lambdas = lambdas_from_theta(theta, terms, slices)
        sol = lmm_solve(d, lambdas)
        Es = [e if e is not None else theta_directions(t, theta[sl]) for e, t, sl in zip(E0, terms, slices)]
        g = lmm_gradient_multi(d, sol, lambdas, Es, reml)
        if g is None:
            g = np.empty(theta.size)
            for i in range(theta.size):
                h = 1e-5 * max(1.0, abs(theta[i]))
                tp, tm = theta.copy(), theta.copy()
                tp[i] += h
                tm[i] -= h
                g[i] = (crit(tp) - crit(tm)) / (2.0 * h)
        return lmm_criterion(sol, d, reml), g

    return fg


def lmm_gradient(d: LmmData, sol: dict, lambdas, E, reml: bool) -> np.ndarray:
    """Gradient of :func:`lmm_criterion` in theta for a model with ONE random term.

    With ``A_j = Lambda' C_j Lambda + I`` (``C_j = Z_j' W Z_j``) and ``E_k = dLambda/dtheta_k``
    (any structure: :func:`bayes_glmm.ml.agq.theta_directions`):

    * ``d log|A| = 2 sum_j tr(A_j^{-1} Lambda' C_j E_k)``;
    * ``d pwrss = -2 sum_j (Z_j' W r)' E_k u_j`` (envelope theorem: u and beta are optimal),
      with ``Z_j' W r = Z_j' W y - Z_j' W X beta - C_j Lambda u_j`` from the cross products;
    * REML: ``d log|R_X|^2 = -2 sum_j tr(K H_j' E_k' (B_j - C_j Lambda H_j))``, where
      ``B_j = Z_j' W X``, ``H_j = A_j^{-1} Lambda' B_j`` and ``K = (R_X R_X')^{-1}``.

    Never touches the n rows (O(J q^2 (q + p))).
    """
    J, q = d.s.J[0], d.s.q[0]
    C = d.raw.diag[0]
    Lam = np.asarray(lambdas[0], dtype=float)
    A = Lam.T @ C @ Lam + np.eye(q)
    Ainv = np.linalg.inv(A)
    u = sol["u"].reshape(J, q)
    beta = sol["beta"] - (d.beta_shift if d.beta_shift is not None else 0.0)
    B = d.ZtWX.reshape(J, q, d.p)
    ztr = d.ZtWy.reshape(J, q) - B @ beta - np.einsum("jab,jb->ja", C, u @ Lam.T)
    dpwrss = -2.0 * np.einsum("ja,kab,jb->k", ztr, E, u)
    M = Ainv @ (Lam.T @ C)
    g = 2.0 * np.einsum("jac,kca->k", M, E)
    if reml:
        RXinv = solve_triangular(sol["RX"], np.eye(d.p), lower=True)
        K = RXinv.T @ RXinv
        H = Ainv @ (Lam.T @ B)
        Q = B - C @ Lam @ H
        g -= 2.0 * np.einsum("kab,jab->k", E, Q @ K @ np.swapaxes(H, 1, 2))
        return g + (d.n - d.p) / sol["pwrss"] * dpwrss
    return g + d.n / sol["pwrss"] * dpwrss


def fit_lmm(spec, reml: bool = True, *, start=None, maxiter: int = 1000, n_starts: int | None = None,
            random_seed: int = 0) -> MLFit:
    """Fit a gaussian identity-link LMM by profiled REML (default) or ML.

    Parameters
    ----------
    spec : ModelSpec
    reml : bool
    start : array-like, optional
        Starting theta (default lme4's: Lambda = I).
    n_starts : int, optional
        Number of starting points (the first is ``start``; the others are drawn, see
        :func:`bayes_glmm.ml.optimize.multistart_points`); the best optimum is kept.
        Default 1, or 3 where the likelihood is multimodal-prone
        (:func:`bayes_glmm.ml.optimize.multimodal_prone`).
    random_seed : int
        Seed of the extra starts and restarts (the fit is deterministic given it).

    Returns
    -------
    MLFit
        ``vcov_beta = sigma^2 (R_X R_X')^{-1}``; ``b_sd`` are sigma times the conditional
        SDs from ``Lambda (L L')^{-1} Lambda'`` (conditional on beta, as lme4's condVar).
        ``optimizer["optinfo"]`` holds the convergence record (see ``MLResults.optinfo``).
    """
    terms = spec.terms
    slices, lower, theta_default = theta_layout(terms)
    theta0 = theta_default if start is None else np.asarray(start, dtype=float)
    d = lmm_data(spec)
    label = "REML" if reml else "ML"

    def crit(theta):
        return lmm_criterion(lmm_solve(d, lambdas_from_theta(theta, terms, slices)), d, reml)

    try:
        crit(np.maximum(theta0, lower))
    except np.linalg.LinAlgError as e:  # not a numerical accident: the design is the cause
        raise ValueError(str(e)) from None

    # probe 0.1 off a bound on the linear predictor's scale (0.1 / rms(x) for a slope)
    bstep = 0.1 * np.minimum(theta_scales(terms), 1.0)
    # one random term: the analytic gradient (lmm_gradient), one solve per evaluation
    # instead of 2 n_theta + 1 for central differences
    # several terms: the multi-term analytic gradient (lmmgrad), finite differences only at
    # points where a vector term's Lambda is singular
    fg = _criterion_and_gradient(d, terms, slices, reml) if len(terms) == 1 else \
        _criterion_and_gradient_multi(d, terms, slices, reml)
    obj = fg if fg is not None else crit

    def solve1(x):
        return solve_with_boundary(obj, x, lower, terms, slices, step=bstep, label=label, maxiter=maxiter,
                                   jac=fg is not None)

    def solve(x):
        return _residual_to_zero(solve1(x), solve1, terms, slices)

    k, auto = resolve_n_starts(spec, n_starts)
    opts = [solve(x) for x in [theta0] + multistart_points(theta0, lower, theta0.size, k, random_seed,
                                                             theta_scales(terms))]
    best = int(np.argmin([o["fun"] for o in opts]))
    starts = report_starts([o["fun"] for o in opts], best, label) if k > 1 else None
    opt = dict(opts[best])
    opt["n_evals"] = sum(o["n_evals"] for o in opts)

    def curvature(x):
        if fg is not None:
            return fg(x)[1], fd_hessian_from_grad(fg, x), 2 * x.size + 1
        H, g = fd_hessian(crit, x, return_grad=True)
        return g, H, 2 * x.size ** 2 + 1

    opt, _, _, chk, restarts = optimize_checked(
        solve, curvature, opt, lower, lambda x: restart_candidates(x, lower, default=theta_default, seed=random_seed),
        exclude=_boundary_at_infinity(terms, slices, theta_default.size))
    theta = opt["x"]
    lambdas = lambdas_from_theta(theta, terms, slices)
    sol = lmm_solve(d, lambdas)
    dev = lmm_criterion(sol, d, reml)
    sigma = float(np.sqrt(sol["pwrss"] / (d.n - d.p if reml else d.n)))
    RXinv = solve_triangular(sol["RX"], np.eye(d.p), lower=True)
    vcov = sigma ** 2 * (RXinv.T @ RXinv)
    b, b_sd, b_cov = modes_sds_covs(d.s, sol["factor"], lambdas, sol["u"], scale=sigma)
    messages = [opt["message"]]
    if auto:
        messages.append(f"{k} starts ({auto})")
    info = new_optinfo(chk, n_evals=opt["n_evals"], restarts=restarts, starts=starts, messages=messages)
    optimizer = {"start": np.asarray(theta0, dtype=float), "theta": theta, "n_evals": opt["n_evals"],
                 "grad_norm": chk["max_abs_grad"], "hessian_pd": bool(chk["hessian_pd"]),
                 "converged": chk["converged"], "messages": messages, "criterion": dev,
                 "boundary_restart": opt.get("boundary_restart"), "optinfo": info}
    warn_nonconvergence(optimizer, label)
    return MLFit(beta=sol["beta"], theta=theta, sigma=sigma, lambdas=lambdas, b=b, b_sd=b_sd,
                 vcov_beta=vcov, loglik=-0.5 * dev, n_params=d.p + theta.size + 1,
                 method=label, reml=reml, n_agq=1, optimizer=optimizer, b_cov=b_cov)


#: relative SD of a structured term beyond which the residual SD is treated as running to 0
SIGMA_TO_ZERO_RATIO = 50.0


def _boundary_at_infinity(terms, slices, size: int):
    """``exclude(x, H)`` for the convergence check: correlations of structured terms at +-1
    (:func:`~bayes_glmm.ml.optimize.saturated_correlations`) and, for a residual SD run to
    0, the structured terms' relative SDs beyond ``20 *`` :data:`SIGMA_TO_ZERO_RATIO`
    (the criterion is flat there and numerically bounded, see :func:`lmm_solve`)."""
    corr = saturated_correlations(terms, slices, size)
    idx = np.concatenate([sl.start + np.flatnonzero(np.isfinite(t.cov.theta_lower(t.q)))
                          for t, sl in zip(terms, slices) if not t.cov.linear] or [np.zeros(0, dtype=int)])
    idx = idx.astype(int)
    if corr is None and not idx.size:
        return None

    def exclude(x, H=None):
        out = np.zeros(size, dtype=bool) if corr is None else corr(x, H)
        out[idx] |= np.asarray(x, dtype=float)[idx] > 20.0 * SIGMA_TO_ZERO_RATIO
        return out

    return exclude


def _residual_to_zero(opt, solve, terms, slices, factor: float = 10.0) -> dict:
    """Push an optimum whose residual SD runs to 0 further along that ray.

    With a structured term (``cs``, ``ar1``, ``toep``) and one row per level and
    coefficient, the residual variance can have its maximum likelihood at 0 (the structure
    absorbs it), which the profiled criterion reaches only as Lambda = Sigma^(1/2) / sigma
    goes to infinity: L-BFGS-B stops early there, e.g. 2.8e-4 log-likelihood units short
    of glmmTMB's log(sigma) parametrization.  When a structured term's relative SDs exceed
    :data:`SIGMA_TO_ZERO_RATIO`, every Lambda is scaled by ``factor`` (sigma / factor with
    the absolute covariances kept: the SDs of the structured terms and all of an lme4
    term's theta), the problem is solved again from there and the better optimum is kept.
    """
    x = np.asarray(opt["x"], dtype=float)
    big = False
    y = x.copy()
    for t, sl in zip(terms, slices):
        bounded = np.isfinite(t.cov.theta_lower(t.q))
        if t.cov.linear:
            y[sl] = x[sl] * factor
        else:
            y[sl] = np.where(bounded, x[sl] * factor, x[sl])
            big = big or bool(np.any(x[sl][bounded] > SIGMA_TO_ZERO_RATIO))
    if not big:
        return opt
    o2 = solve(y)
    n = opt["n_evals"] + o2["n_evals"]
    best = dict(o2) if np.isfinite(o2["fun"]) and o2["fun"] < opt["fun"] else dict(opt)
    best["n_evals"] = n
    return best


def modes_and_sds(s, F, lambdas, u, scale=1.0):
    """Per-term ``b = Lambda u`` (J, q) and conditional SDs ``scale * sqrt(diag(Lambda A^{-1} Lambda'))``."""
    return modes_sds_covs(s, F, lambdas, u, scale)[:2]


def modes_sds_covs(s, F, lambdas, u, scale=1.0):
    """:func:`modes_and_sds` plus the per-level conditional covariances (J, q, q),
    ``scale^2 Lambda A^{-1}_jj Lambda'`` (lme4's ``condVar``), which prediction intervals need."""
    blocks = F.inv_diag_blocks()
    b, sds, covs = [], [], []
    for k in range(len(s.J)):
        uk = u[s.starts[k]: s.starts[k] + s.J[k] * s.q[k]].reshape(s.J[k], s.q[k])
        Lk = lambdas[k]
        b.append(uk @ Lk.T)
        cv = Lk @ blocks[k] @ Lk.T
        sds.append(scale * np.sqrt(np.clip(np.einsum("jaa->ja", cv), 0.0, None)))
        covs.append(scale ** 2 * cv)
    return b, sds, covs

"""Denominator degrees of freedom for Wald t and F tests in linear mixed models.

Two approximations, as ``lmerTest`` (Kuznetsova, Brockhoff & Christensen 2017, JSS 82(13))
and ``pbkrtest`` (Halekoh & Hojsgaard 2014, JSS 59(9)) compute them:

Satterthwaite
    For a contrast ``l' beta`` with variance ``v = l' C l``, ``C = vcov(beta)`` seen as a
    function of the variance parameters ``tau = (theta, sigma)``,

        df = 2 v^2 / (g' A g),     g = d v / d tau,     A = 2 H^{-1},

    ``H`` the Hessian of the (REML or ML, as fitted) deviance in ``tau`` with beta profiled
    out, so ``A`` is the asymptotic covariance of ``tau``.  The result does not depend on
    how ``tau`` is parametrized (g and A transform covariantly at the optimum).  A q-row
    contrast is split into q independent 1-df contrasts by the eigen-decomposition of
    ``L C L'`` and their df combined as in the paper (sec. 3.3): with
    ``E = sum nu_m / (nu_m - 2)``, ``ddf = 2 E / (E - q)`` (2 if any ``nu_m <= 2``).

Kenward-Roger (1997)
    Defined for REML.  The marginal covariance is written linearly in the variance
    components, ``Sigma = sum_r phi_r G_r`` (every variance and covariance of every random
    term, then sigma^2 with ``G = W^{-1}``), the expected REML information
    ``I_rs = tr(P G_r P G_s) / 2`` gives ``W = I^{-1}``, and

        Phi_A = Phi + 2 Phi [sum_rs W_rs (Q_rs - P_r Phi P_s)] Phi,

    with ``Phi = (X' Sigma^{-1} X)^{-1}``, ``P_r = -X' Sigma^{-1} G_r Sigma^{-1} X`` and
    ``Q_rs = X' Sigma^{-1} G_r Sigma^{-1} G_s Sigma^{-1} X`` (the second-derivative term
    vanishes for a linear covariance structure).  The F statistic is scaled and its df
    computed by the paper's moment matching (``A1``, ``A2``, ``rho``, ``m``, ``lambda``).
    As ``lmerTest`` does, ML fits are refused rather than silently switched to REML.

The Satterthwaite derivatives are central finite differences with one Richardson step
(of the profiled-in-beta deviance and of ``(R_X R_X')^{-1}``, both O(size of the
random-effects system) per evaluation); ``dC/dsigma`` is analytic.  KR works through the
random-effects design and Woodbury's identity (n x Q and Q x Q matrices, never the n x n
ones pbkrtest forms), so it is meant for moderate numbers Q of random effects.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import sparse, special  # CDFs from special: scipy.stats takes ~1 s to import
from scipy.linalg import cho_factor, cho_solve, solve_triangular
from ...spec.validate import user_stacklevel

__all__ = ["DDF_METHODS", "normalize_ddf", "SatterthwaiteInfo", "satterthwaite_info", "satterthwaite_df",
           "KRInfo", "kr_info", "kr_df", "contrast_test", "coef_table_ddf"]

_LOG_2PI = float(np.log(2.0 * np.pi))

#: accepted spellings of ``ddf`` -> canonical name
DDF_METHODS = {"satterthwaite": "satterthwaite", "kenward-roger": "kenward-roger",
               "kenward_roger": "kenward-roger", "kenwardroger": "kenward-roger", "kr": "kenward-roger"}

#: largest dense work for Kenward-Roger, in array elements: it forms a few n x Q and
#: Q x Q matrices (Q random effects), never n x n
KR_MAX_DENSE = 60_000_000


def normalize_ddf(ddf) -> str:
    """Canonical ``"satterthwaite"`` / ``"kenward-roger"``; ValueError naming the choices."""
    key = str(ddf).strip().lower().replace(" ", "-") if isinstance(ddf, str) else None
    if key not in DDF_METHODS:
        raise ValueError(f"ddf={ddf!r} is not a denominator-df method; use ddf='satterthwaite' or "
                         f"ddf='kenward-roger' (or ddf=None for the plain Wald table)")
    return DDF_METHODS[key]


def is_lmm(spec) -> bool:
    """Gaussian identity-link model (the only case with t / F reference distributions here)."""
    return spec.is_lmm


# ---------------------------------------------------------------------- Satterthwaite
def _varpar_deviance(sol: dict, d, sigma: float, reml: bool) -> float:
    """-2 (restricted) log-likelihood at given theta (through ``sol``) and sigma, beta profiled.

    At ``sigma^2 = pwrss / (n - p)`` (REML) or ``pwrss / n`` (ML) this equals
    :func:`bayes_glmm.ml.lmm.lmm_criterion`; away from it sigma enters explicitly, which is
    what the Hessian in (theta, sigma) needs.
    """
    s2 = sigma * sigma
    m = d.n - d.p if reml else d.n
    dev = sol["ldL2"] + m * (_LOG_2PI + np.log(s2)) + sol["pwrss"] / s2 - d.sum_log_w
    return dev + sol["ldRX2"] if reml else dev


def _pwrss(spec, d, lambdas, sol, y, X, w) -> float:
    """Penalized weighted residual sum of squares from the residuals: sum w r^2 + |u|^2."""
    fit = X @ sol["beta"]
    u = sol["u"]
    for k, term in enumerate(spec.terms):
        uk = u[d.s.starts[k]: d.s.starts[k] + d.s.J[k] * d.s.q[k]].reshape(d.s.J[k], d.s.q[k])
        fit = fit + term.contribution(uk @ np.asarray(lambdas[k]).T)
    r = y - fit
    return float(np.sum(w * r * r) + u @ u)


def _steps(x: np.ndarray, n_theta: int) -> np.ndarray:
    # relative steps; theta near 0 (a variance near the boundary) still gets a usable step.
    # 1e-3 with a Richardson step: truncation O(h^4) is far below the 1e-5 level where
    # rounding noise of the deviance (~1e-12 relative) starts to show at smaller steps
    h = 1e-3 * np.maximum(np.abs(x), 0.1)
    h[n_theta:] = 1e-3 * np.maximum(np.abs(x[n_theta:]), 1e-8)
    return h


def _richardson(f, h):
    """(4 f(h/2) - f(h)) / 3: removes the O(h^2) term of a central difference."""
    return (4.0 * f(0.5 * h) - f(h)) / 3.0


def _hessian(fun, x, h):
    """Central-difference Hessian with per-coordinate steps ``h`` and one Richardson step."""
    k = x.size
    f0 = fun(x)

    def at(scale):
        H = np.empty((k, k))
        for i in range(k):
            ei = np.zeros(k)
            ei[i] = h[i] * scale
            H[i, i] = (fun(x + ei) - 2.0 * f0 + fun(x - ei)) / ei[i] ** 2
            for j in range(i):
                ej = np.zeros(k)
                ej[j] = h[j] * scale
                H[i, j] = H[j, i] = (fun(x + ei + ej) - fun(x + ei - ej) - fun(x - ei + ej)
                                     + fun(x - ei - ej)) / (4.0 * ei[i] * ej[j])
        return H

    return _richardson(at, 1.0)


def _jacobian(fun, x, h):
    """Central-difference derivatives of an array-valued ``fun``: list over coordinates."""
    out = []
    for i in range(x.size):
        def at(scale, i=i):
            e = np.zeros(x.size)
            e[i] = h[i] * scale
            return (fun(x + e) - fun(x - e)) / (2.0 * e[i])
        out.append(_richardson(at, 1.0))
    return out


@dataclass(frozen=True)
class SatterthwaiteInfo:
    """What Satterthwaite's df needs, computed once per fit.

    Attributes
    ----------
    vcov : ndarray (p, p)
        ``C`` at the estimates.
    jac : ndarray (k, p, p)
        ``dC / d tau_k``, ``tau = (theta, sigma)``.
    A : ndarray (k, k)
        Asymptotic covariance of ``tau``: 2 x inverse Hessian of the deviance.
    hessian_pd : bool
        Whether that Hessian was positive definite (else ``A`` used a pseudo-inverse).
    """

    vcov: np.ndarray
    jac: np.ndarray
    A: np.ndarray
    hessian_pd: bool


def satterthwaite_info(spec, theta, sigma: float, reml: bool) -> SatterthwaiteInfo:
    """Vcov of beta, its derivatives in (theta, sigma) and the covariance of (theta, sigma).

    Parameters
    ----------
    spec : ModelSpec
        A gaussian identity-link model.
    theta : array-like
        lme4's covariance parameters at the estimate.
    sigma : float
        Residual SD at the estimate.
    reml : bool
        Whether the fit (and so the deviance whose curvature is used) is REML.

    Returns
    -------
    SatterthwaiteInfo
    """
    from ..lmm import lmm_data, lmm_solve
    from ..optimize import lambdas_from_theta, theta_layout

    terms = spec.terms
    slices, _, _ = theta_layout(terms)
    d = lmm_data(spec)
    theta = np.asarray(theta, dtype=float)
    nt = theta.size
    tau = np.concatenate([theta, [float(sigma)]])

    y = np.asarray(spec.y, dtype=float) - np.asarray(spec.offset, dtype=float)
    X, w = np.asarray(spec.X, dtype=float), np.asarray(spec.weights, dtype=float)

    def solve(th):
        return lmm_solve(d, lambdas_from_theta(th, terms, slices))

    def dev(t):
        lambdas = lambdas_from_theta(t[:nt], terms, slices)
        sol = dict(lmm_solve(d, lambdas))
        # lmm_solve's pwrss is y'Wy minus two squared norms: its rounding error (relative to
        # y'Wy, not to pwrss) is amplified by second differences; the residuals are exact
        sol["pwrss"] = _pwrss(spec, d, lambdas, sol, y, X, w)
        return _varpar_deviance(sol, d, t[nt], reml)

    def unscaled(th):  # (R_X R_X')^{-1}: C = sigma^2 times this
        RXinv = solve_triangular(solve(th)["RX"], np.eye(d.p), lower=True)
        return RXinv.T @ RXinv

    h = _steps(tau, nt)
    H = _hessian(dev, tau, h)
    M = unscaled(theta)
    s2 = float(sigma) ** 2
    jac = [s2 * dM for dM in _jacobian(unscaled, theta, h[:nt])] + [2.0 * float(sigma) * M]
    H = 0.5 * (H + H.T)
    pd_ = bool(np.all(np.linalg.eigvalsh(H) > 0))
    if pd_:
        A = 2.0 * np.linalg.inv(H)
    else:
        warnings.warn("the deviance Hessian in (theta, sigma) is not positive definite (a variance "
                      "on the boundary?); Satterthwaite df use its pseudo-inverse and may be "
                      "unreliable", UserWarning, stacklevel=user_stacklevel())
        A = 2.0 * np.linalg.pinv(H)
    return SatterthwaiteInfo(vcov=s2 * M, jac=np.asarray(jac), A=A, hessian_pd=pd_)


def satterthwaite_df(info: SatterthwaiteInfo, l) -> float:
    """Satterthwaite df of the 1-df contrast ``l' beta``: 2 v^2 / (g' A g)."""
    l = np.asarray(l, dtype=float).ravel()
    v = float(l @ info.vcov @ l)
    g = np.einsum("i,kij,j->k", l, info.jac, l)
    den = float(g @ info.A @ g)
    return 2.0 * v * v / den if den > 0 else np.inf


def _combine_df(nu, tol: float = 1e-8) -> float:
    """One denominator df for q independent t statistics (lmerTest paper, sec. 3.3)."""
    nu = np.asarray(nu, dtype=float)
    if nu.size == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(np.mean(nu))
    if np.any(nu <= 2):
        return 2.0
    E = float(np.sum(nu / (nu - 2.0)))
    return 2.0 * E / (E - nu.size)


# ---------------------------------------------------------------------- Kenward-Roger
@dataclass(frozen=True)
class KRInfo:
    """Kenward-Roger ingredients.

    Attributes
    ----------
    Phi : ndarray (p, p)
        Unadjusted vcov of beta.
    PhiA : ndarray (p, p)
        Kenward-Roger adjusted vcov.
    P : ndarray (k, p, p)
        ``-X' Sigma^{-1} G_r Sigma^{-1} X`` per variance component.
    W : ndarray (k, k)
        Inverse expected REML information of the variance components.
    """

    Phi: np.ndarray
    PhiA: np.ndarray
    P: np.ndarray
    W: np.ndarray


def _re_components(spec, lambdas, sigma: float):
    """The random-effects part of ``Sigma = sum_r phi_r G_r`` through the RE design.

    Returns ``Zf`` (n x Q sparse, columns level-major within each term), ``Lam`` (Q x Q
    sparse, block-diagonal relative covariance factor: the RE covariance is
    ``sigma^2 Lam Lam'``), and per variance component its ``phi_r`` and a Q x Q sparse
    symmetric selector ``E_r`` with ``G_r = Zf E_r Zf'`` (every variance and covariance of
    every term, in the order the components' information matrix uses).
    """
    n = spec.n
    Q = sum(int(t.n_levels) * int(t.q) for t in spec.terms)
    Zb, Lb, phis, Es, start = [], [], [], [], 0
    for term, L in zip(spec.terms, lambdas):
        if not term.cov.linear:
            # Sigma = sum phi_r G_r needs a covariance linear in its parameters (every free
            # element, us; the variances, diag); a structured one (cs, ar1, toep) is not
            raise ValueError(f"ddf='kenward-roger' needs covariance structures that are linear in their "
                             f"parameters (us(...) or diag(...)); term {term.name!r} is "
                             f"{term.cov.name}(...). Use ddf='satterthwaite' for this model.")
        q, J = int(term.q), int(term.n_levels)
        L = np.asarray(L, dtype=float)
        codes = np.asarray(term.codes, dtype=np.int64)
        cols = (codes[:, None] * q + np.arange(q)[None, :]).ravel()
        Zb.append(sparse.csr_matrix((np.asarray(term.Xr, dtype=float).ravel(),
                                     (np.repeat(np.arange(n), q), cols)), shape=(n, J * q)))
        Lb.append(sparse.kron(sparse.identity(J), sparse.csr_matrix(L)))
        cov = sigma ** 2 * (L @ L.T)
        lev = start + np.arange(J) * q
        for j in range(q):
            for i in range(j, q):
                if i != j and term.cov.n_corr(q) == 0:
                    continue
                rr, cc = (lev + i, lev + j) if i == j else (np.r_[lev + i, lev + j], np.r_[lev + j, lev + i])
                Es.append(sparse.csr_matrix((np.ones(rr.size), (rr, cc)), shape=(Q, Q)))
                phis.append(cov[i, j])
        start += J * q
    Zf = sparse.hstack(Zb, format="csr") if Zb else sparse.csr_matrix((n, 0))
    Lam = sparse.block_diag(Lb, format="csr") if Lb else sparse.csr_matrix((0, 0))
    return Zf, Lam, np.asarray(phis), Es


def kr_info(spec, lambdas, sigma: float, reml: bool) -> KRInfo:
    """Kenward-Roger adjusted vcov of beta and what its df need (REML fits only).

    Nothing n x n is formed.  With ``R = sigma^2 W^{-1}`` and ``ZL = sigma Z Lambda``,
    Woodbury gives ``Sigma^{-1} = D - V M^{-1} V'`` (``D = W / sigma^2`` diagonal,
    ``V = R^{-1} ZL``, ``M = I + Lambda' Z' W Z Lambda``, lme4's system, defined also when
    Lambda is singular), so the REML projection is diagonal minus low rank,
    ``P = D - U K U'`` with ``U = [V, Sigma^{-1} X]``, ``K = diag(M^{-1}, Phi)``.  Every
    random-effects ``G_r = Z E_r Z'``, so ``tr(P G_r P G_s) = tr(E_r T E_s T)`` with the
    Q x Q ``T = Z' P Z``; the residual component (``W^{-1}``, diagonal) is handled through
    ``U`` too.  Cost O(n Q (Q + p) + k^2 Q^2) instead of O(n^2) memory and O(n^2 nnz) time.

    Raises
    ------
    ValueError
        For ML fits (as ``lmerTest``), zero weights, or dense n x Q work above
        :data:`KR_MAX_DENSE` elements.
    """
    if not reml:
        raise ValueError("the Kenward-Roger method is defined for REML fits only (lmerTest refuses it "
                         "for ML fits too); refit with fit_ml(reml=True) or use ddf='satterthwaite'")
    w = np.asarray(spec.weights, dtype=float)
    if np.any(w <= 0):
        raise ValueError("Kenward-Roger needs positive prior weights; drop the zero-weight rows first")
    n = spec.n
    X = np.asarray(spec.X, dtype=float)
    sigma = float(sigma)
    Zf, Lam, phi, Es = _re_components(spec, lambdas, sigma)
    Q = Zf.shape[1]
    k = len(Es) + 1
    size = n * (Q + X.shape[1]) + (k + 4) * Q * Q
    if size > KR_MAX_DENSE:
        raise ValueError(f"Kenward-Roger needs dense arrays of about {size:.3g} elements here (n = {n} rows, "
                         f"{Q} random effects) > {KR_MAX_DENSE:.3g}; use ddf='satterthwaite', which "
                         f"scales with the sparse random-effects system")
    s2 = sigma * sigma
    delta = w / s2                      # R^{-1}, diagonal
    dw = 1.0 / w                        # the residual component's G (phi = sigma^2)
    ZL = (Zf @ Lam).tocsc()
    M = (ZL.T @ sparse.diags(w) @ ZL).toarray() + np.eye(Q)
    Mc = cho_factor(M, lower=True)
    V = ((w / sigma)[:, None] * ZL.toarray()) if Q else np.zeros((n, 0))

    def sinv(A):  # Sigma^{-1} A by Woodbury
        return delta[:, None] * A - V @ cho_solve(Mc, V.T @ A)

    SX = sinv(X)
    Phi = np.linalg.inv(X.T @ SX)
    Phi = 0.5 * (Phi + Phi.T)
    Minv = cho_solve(Mc, np.eye(Q))
    U = np.hstack([V, SX])
    K = np.zeros((U.shape[1],) * 2)
    K[:Q, :Q] = 0.5 * (Minv + Minv.T)
    K[Q:, Q:] = Phi
    # P = diag(delta) - U K U'
    ZtU = np.asarray(Zf.T @ U)
    PZ = delta[:, None] * Zf.toarray() - U @ (K @ ZtU.T)      # P Z, (n, Q)
    T = np.asarray(Zf.T @ PZ)                                  # Z' P Z
    T = 0.5 * (T + T.T)
    T2 = PZ.T @ (dw[:, None] * PZ)                             # Z' P W^{-1} P Z
    ET = [E @ T for E in Es]
    IE = np.empty((k, k))
    for r in range(k - 1):
        for s in range(r, k - 1):
            IE[r, s] = IE[s, r] = float(np.sum(ET[r] * ET[s].T))
        IE[r, k - 1] = IE[k - 1, r] = float(Es[r].multiply(T2).sum())
    A = U.T @ (dw[:, None] * U)
    KA = K @ A
    IE[k - 1, k - 1] = (float(np.sum((delta * dw) ** 2)) - 2.0 * float(np.sum(K * (U.T @ ((delta * dw * dw)[:, None] * U))))
                        + float(np.sum(KA * KA.T)))
    ev = np.linalg.eigvalsh(IE)
    W = 2.0 * (np.linalg.inv(IE) if np.min(np.abs(ev)) > 1e-10 else np.linalg.pinv(IE))
    ZtSX = np.asarray(Zf.T @ SX)
    Y = [Zf @ (E @ ZtSX) for E in Es] + [dw[:, None] * SX]   # G_r Sigma^{-1} X (n, p)
    SY = [sinv(y) for y in Y]
    P = np.array([-(SX.T @ y) for y in Y])
    U2 = np.zeros_like(Phi)
    for r in range(k):
        for s in range(k):
            Qrs = Y[r].T @ SY[s]
            U2 += W[r, s] * (Qrs - P[r] @ Phi @ P[s])
    PhiA = Phi + 2.0 * Phi @ U2 @ Phi
    return KRInfo(Phi=Phi, PhiA=0.5 * (PhiA + PhiA.T), P=P, W=W)


def _kr_moments(info: KRInfo, L: np.ndarray):
    """(q, m, lambda) of Kenward & Roger (1997) for the rows of L (full row rank)."""
    Phi, q = info.Phi, L.shape[0]
    Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
    TP = Theta @ Phi
    u = [TP @ Pr @ Phi for Pr in info.P]
    tr = np.array([np.trace(x) for x in u])
    k = len(u)
    A1 = float(tr @ info.W @ tr)
    A2 = float(sum(info.W[r, s] * np.sum(u[r] * u[s].T) for r in range(k) for s in range(k)))
    B = (A1 + 6.0 * A2) / (2.0 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    den = 3 * q + 2 * (1 - g)
    c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
    Estar = 1.0 / (1.0 - A2 / q)
    Vstar = (2.0 / q) * (1 + c1 * B) / ((1 - c2 * B) ** 2 * (1 - c3 * B))
    rho = Vstar / (2.0 * Estar ** 2)
    m = 4.0 + (q + 2) / (q * rho - 1)
    # lambda -> 2 (1 - A2/q) as m -> 4 is unstable there; pbkrtest then leaves F unscaled
    lam = 1.0 if abs(m - 4.0) < 1e-2 else m / (Estar * (m - 2))
    return q, m, lam


def kr_df(info: KRInfo, L) -> float:
    """Kenward-Roger denominator df for the contrast rows ``L`` (1-D for one contrast)."""
    L = np.atleast_2d(np.asarray(L, dtype=float))
    return float(_kr_moments(info, L)[1])


# ---------------------------------------------------------------------- tests
def _row_basis(L: np.ndarray, vcov: np.ndarray, tol: float = 1e-8):
    """Eigen-decomposition of ``L C L'`` restricted to its positive part (lmerTest's rank)."""
    d, V = np.linalg.eigh(L @ vcov @ L.T)
    order = np.argsort(d)[::-1]
    d, V = d[order], V[:, order]
    keep = d > tol * max(d[0], 0.0) if d.size else np.zeros(0, dtype=bool)
    return d[keep], V[:, keep]


def contrast_test(L, beta, method: str, info) -> dict:
    """F test of ``L beta = 0``.

    Parameters
    ----------
    L : array-like (q, p)
    beta : array-like (p,)
    method : {"satterthwaite", "kenward-roger", "wald"}
        ``"wald"`` uses ``info`` as the vcov (p, p) and den_df = inf (GLMMs).
    info : SatterthwaiteInfo, KRInfo or ndarray

    Returns
    -------
    dict
        ``num_df``, ``den_df``, ``F``, ``p``.
    """
    L = np.atleast_2d(np.asarray(L, dtype=float))
    beta = np.asarray(beta, dtype=float)
    vc = info.vcov if method == "satterthwaite" else info.Phi if method == "kenward-roger" else np.asarray(info)
    d, V = _row_basis(L, vc)
    q = d.size
    if q == 0:
        return {"num_df": 0, "den_df": np.nan, "F": np.nan, "p": np.nan}
    PL = V.T @ L  # q independent contrasts with variances d
    if method == "kenward-roger":
        _, m, lam = _kr_moments(info, PL)
        est = PL @ beta
        F = lam * float(est @ np.linalg.solve(PL @ info.PhiA @ PL.T, est)) / q
        ddf = m
    else:
        F = float(np.sum((PL @ beta) ** 2 / d)) / q
        ddf = _combine_df([satterthwaite_df(info, row) for row in PL]) if method == "satterthwaite" else np.inf
    Fp = max(F, 0.0)  # the distributions' sf is 1 below their support; special's functions give NaN there
    p = float(special.fdtrc(q, ddf, Fp)) if np.isfinite(ddf) else float(special.chdtrc(q, Fp * q))
    return {"num_df": q, "den_df": float(ddf), "F": F, "p": p}


def coef_table_ddf(res, method: str):
    """``estimate, se, df, t, p`` for an :class:`~bayes_glmm.ml.results.MLResults`.

    LMMs get t tests with Satterthwaite or Kenward-Roger df (KR also adjusts the SE, as
    ``summary(m, ddf = "Kenward-Roger")``); GLMMs get z tests, reported with df = inf.
    """
    import pandas as pd

    names = list(res.spec.fixed_names)
    est = np.asarray(res.fit.beta, dtype=float)
    p = est.size
    if not is_lmm(res.spec):
        se = np.sqrt(np.clip(np.diag(np.asarray(res.fit.vcov_beta, dtype=float)), 0.0, None))
        df = np.full(p, np.inf)
    elif method == "satterthwaite":
        info = cached_info(res, method)
        se = np.sqrt(np.clip(np.diag(info.vcov), 0.0, None))
        df = np.array([satterthwaite_df(info, np.eye(p)[j]) for j in range(p)])
    else:
        info = cached_info(res, method)
        se = np.sqrt(np.clip(np.diag(info.PhiA), 0.0, None))
        df = np.array([kr_df(info, np.eye(p)[j]) for j in range(p)])
    with np.errstate(divide="ignore", invalid="ignore"):
        t = est / se
    pval = 2.0 * np.where(np.isfinite(df), special.stdtr(np.where(np.isfinite(df), df, 1.0), -np.abs(t)),
                          special.ndtr(-np.abs(t)))
    return pd.DataFrame({"estimate": est, "se": se, "df": df, "t": t, "p": pval}, index=names)


# ---------------------------------------------------------------------- cache
_CACHE: dict = {}


def cached_info(res, method: str):
    """Satterthwaite / KR info of a fit, computed once per results object.

    Keyed on ``id(res.fit)`` and guarded by identity so a recycled id never hits.
    """
    key = (id(res.fit), method)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is res.fit:
        return hit[1]
    fit = res.fit
    if method == "satterthwaite":
        info = satterthwaite_info(res.spec, fit.theta, float(fit.sigma), bool(fit.reml))
    else:
        info = kr_info(res.spec, fit.lambdas, float(fit.sigma), bool(fit.reml))
    if len(_CACHE) > 64:  # a small bounded cache; fits are cheap to recompute
        _CACHE.clear()
    _CACHE[key] = (fit, info)
    return info

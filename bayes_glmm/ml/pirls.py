"""Penalized iteratively re-weighted least squares (PIRLS) for GLMM conditional modes.

For fixed (theta, beta) the conditional mode of the spherical random effects u maximizes

    h(u) = sum_i w_i log f(y_i | eta_i) - ||u||^2 / 2,   eta = offset + X beta + Z Lambda u,

which PIRLS does by Fisher scoring: with IRLS weights ``W = w n mu_eta^2 / V(mu)`` and
working score ``r = w (y - n mu) mu_eta / V(mu)`` the step solves

    (Lambda' Z' W Z Lambda + I) delta = Lambda' Z' r - u

(Bates et al. 2015; lme4's "theory" notes).  For canonical links this is Newton's method.
Steps are halved until the penalized deviance ``-2 h(u)`` does not increase.  The
``joint`` variant also updates beta (lme4's nAGQ = 0 / first optimization stage).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_triangular

from . import linalg

__all__ = ["Response", "make_response", "loglik_rows", "loglik_and_mu", "working", "pirls", "PirlsResult"]


@dataclass(frozen=True, eq=False)
class Response:
    """Response side of a GLMM: everything that varies by row except the random effects.

    ``ll_const`` (filled in when not given) is the eta-free part of the prior-weighted
    log-density (``log choose(n, y)``, ``-lgamma(y + 1)``): computed once per fit instead of
    once per deviance evaluation.
    """

    family: object
    y: np.ndarray
    n_trials: np.ndarray  # binomial trials, ones otherwise
    pw: np.ndarray  # prior weights
    offset: np.ndarray
    X: np.ndarray
    ll_const: np.ndarray | None = None

    def __post_init__(self):
        if self.ll_const is None:
            object.__setattr__(self, "ll_const", _ll_const(self.family, self.y, self.n_trials, self.pw))


def _ll_const(fam, y, trials, pw):
    return pw * fam.loglik_constant(y, trials)


def make_response(spec) -> Response:
    """Collect y, trials, prior weights, offset and X from a ModelSpec."""
    n = spec.n
    fam = spec.family
    trials = np.asarray(spec.trials, dtype=float) if (fam.needs_trials and spec.trials is not None) else np.ones(n)
    pw = np.asarray(spec.weights, dtype=float)
    if np.any(pw < 0) or not np.all(np.isfinite(pw)):
        raise ValueError("prior weights must be finite and non-negative")
    return Response(fam, np.asarray(spec.y, dtype=float), trials, pw,
                    np.asarray(spec.offset, dtype=float), np.asarray(spec.X, dtype=float))


def loglik_and_mu(resp: Response, eta: np.ndarray, want_mu: bool = True):
    """Prior-weighted log-density per row (constants included) and, for canonical links, mu.

    The canonical families take :meth:`Family.loglik_canonical` (the family's log-density
    rearranged so one ``exp`` gives both it and mu; the eta-free constants are added from
    ``resp.ll_const``), which matters because this is the cost of an AGQ evaluation.  Arrays may be
    (n,) or (n, k) with the response columns broadcast as (n, 1).  ``mu`` is None for
    non-canonical links.
    """
    fam = resp.family
    if fam.is_canonical and fam.name != "gaussian":
        ll, mu = fam.loglik_canonical(resp.y, eta, resp.n_trials)
    else:
        if fam.name == "binomial":
            ll = fam.loglik(resp.y, eta, trials=resp.n_trials)
        else:
            ll = fam.loglik(resp.y, eta)
        return resp.pw * ll, None
    ll *= resp.pw
    ll += resp.ll_const
    return ll, mu


def loglik_rows(resp: Response, eta: np.ndarray) -> np.ndarray:
    """Prior-weighted conditional log-density per row, all constants included."""
    return loglik_and_mu(resp, eta)[0]


def working(resp: Response, eta: np.ndarray, mu=None):
    """IRLS weights W and working score r (d loglik / d eta for canonical links).

    ``mu`` (canonical links) may be passed when already computed with the log-density.
    """
    fam = resp.family
    nm = resp.n_trials * resp.pw
    if fam.is_canonical:
        if mu is None:
            mu = fam.link.inverse(eta)
        # mu_eta == V(mu): no 0/0 when mu saturates at 0 or 1
        v = fam.variance(mu)
        return nm * v, resp.pw * (resp.y - resp.n_trials * mu)
    mu = fam.link.inverse(eta)
    eps = 1e-12
    mu = np.clip(mu, eps, 1.0 - eps) if fam.name in ("bernoulli", "binomial") else np.maximum(mu, eps)
    me = fam.link.mu_eta(eta)
    v = fam.variance(mu)
    return nm * me * me / v, resp.pw * (resp.y - resp.n_trials * mu) * me / v


@dataclass(frozen=True, eq=False)
class PirlsResult:
    """Converged PIRLS state.

    Attributes
    ----------
    u : ndarray (m,)
    beta : ndarray (p,)
    eta : ndarray (n,)
    ll : float
        sum of prior-weighted log-densities at the mode
    factor : linalg.ReFactor
        factor of ``Lambda'Z'WZLambda + I`` with W at the mode
    W : ndarray (n,)
        IRLS weights at the mode
    r, mu : ndarray (n,)
        Working score and (canonical links) mean at the mode
    iters, halvings : int
    converged : bool
    """

    u: np.ndarray
    beta: np.ndarray
    eta: np.ndarray
    ll: float
    factor: object
    W: np.ndarray
    iters: int
    halvings: int
    converged: bool
    r: np.ndarray | None = None  # working score at the mode (for analytic gradients)
    mu: np.ndarray | None = None  # mean at the mode (canonical links)

    @property
    def laplace_deviance(self) -> float:
        """``-2 loglik`` of the Laplace approximation: ``-2 ll + ||u||^2 + log det(L L')``."""
        return -2.0 * self.ll + float(self.u @ self.u) + self.factor.logdet


def pirls(resp: Response, s: linalg.ReStructure, lambdas, beta, u0=None, *, joint=False,
          tol=1e-7, maxit=100, max_halve=30) -> PirlsResult:
    """Conditional modes of u (and of beta when ``joint``) by PIRLS with step-halving.

    Parameters
    ----------
    resp : Response
    s : linalg.ReStructure
    lambdas : list of (q_k, q_k) arrays
    beta : ndarray (p,)
        Fixed effects (the starting value when ``joint``).
    u0 : ndarray (m,), optional
        Warm start (zeros by default).
    joint : bool
        Also maximize over beta (no penalty on beta).
    tol : float
        Convergence when the largest Newton step component is below ``tol * max(1, max|u|)``;
        that last step is applied without line search (quadratic convergence leaves an
        error of order ``tol^2``).
    """
    X = resp.X
    beta = np.array(beta, dtype=float)
    u = np.zeros(s.m) if u0 is None else np.array(u0, dtype=float)
    base = resp.offset + X @ beta
    eta = base + linalg.z_lam_u(s, lambdas, u)
    lrows, mu = loglik_and_mu(resp, eta)
    ll = float(np.sum(lrows))
    pdev = -2.0 * ll + float(u @ u)
    halvings = 0
    converged = False
    for it in range(1, maxit + 1):
        W, r = working(resp, eta, mu)
        raw = linalg.crossprods(s, W)
        F = linalg.factorize(s, raw, lambdas)
        gu = linalg.lam_t(s, lambdas, linalg.zt_r(s, r)) - u
        if joint:
            RZX = F.forward(linalg.lam_t(s, lambdas, linalg.zt_r(s, W[:, None] * X)))
            RX = np.linalg.cholesky(X.T @ (W[:, None] * X) - RZX.T @ RZX)
            yu = F.forward(gu)
            yb = solve_triangular(RX, X.T @ r - RZX.T @ yu, lower=True)
            db = solve_triangular(RX.T, yb, lower=False)
            du = F.backward(yu - RZX @ db)
            decrement = float(yu @ yu + yb @ yb)
        else:
            du = F.solve(gu)
            db = None
            decrement = float(gu @ du)
        # Converge on the step size, not only on the decrement: pdev is stationary at the
        # mode but the log-determinant of the Laplace deviance is not, so an error e in u
        # moves the deviance by O(e * J).  Quadratic convergence makes the extra iteration
        # this costs cheap, and the finite-difference Hessian needs deviances to ~1e-11.
        step_size = float(np.max(np.abs(du))) if du.size else 0.0
        if joint:
            step_size = max(step_size, float(np.max(np.abs(db))))
        if step_size < tol * max(1.0, float(np.max(np.abs(u))) if u.size else 1.0) or decrement < 1e-28:
            # inside the quadratic region: take the full step and refactor at the new
            # point, leaving an error of O(step^2) in u (~1e-15) instead of O(step)
            u = u + du
            if joint:
                beta = beta + db
                base = resp.offset + X @ beta
            eta = base + linalg.z_lam_u(s, lambdas, u)
            lrows, mu = loglik_and_mu(resp, eta)
            ll = float(np.sum(lrows))
            W, r = working(resp, eta, mu)
            F = linalg.factorize(s, linalg.crossprods(s, W), lambdas)
            converged = True
            break
        step = 1.0
        for _ in range(max_halve):
            un = u + step * du
            bn = beta + step * db if joint else beta
            base_n = resp.offset + X @ bn if joint else base
            eta_n = base_n + linalg.z_lam_u(s, lambdas, un)
            with np.errstate(over="ignore", invalid="ignore"):
                lrows, mu_n = loglik_and_mu(resp, eta_n)
                ll_n = float(np.sum(lrows))
            pdev_n = -2.0 * ll_n + float(un @ un)
            if np.isfinite(pdev_n) and pdev_n <= pdev + 1e-10 * max(1.0, abs(pdev)):
                break
            step *= 0.5
            halvings += 1
        else:
            # no decrease even for tiny steps: we are at the mode to working precision
            converged = decrement < 1e-6 * max(1.0, abs(pdev))
            break
        u, beta, base, eta, ll, pdev, mu = un, bn, base_n, eta_n, ll_n, pdev_n, mu_n
    else:
        W, r = working(resp, eta, mu)
        F = linalg.factorize(s, linalg.crossprods(s, W), lambdas)
    return PirlsResult(u=u, beta=beta, eta=eta, ll=ll, factor=F, W=W, iters=it, halvings=halvings,
                       converged=converged, r=r, mu=mu)

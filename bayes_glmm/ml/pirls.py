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

from dataclasses import dataclass, replace

import numpy as np
from scipy.linalg import solve_triangular

from ..families.poisson import POISSON_STABLE_Y, poisson_centre, poisson_centred, poisson_centred_const  # noqa: F401 (re-exported)
from . import linalg
from .auxpar import aux_natural
from .iterative import pcg

__all__ = ["Response", "make_response", "poisson_centre", "poisson_centred", "poisson_centred_const",
           "POISSON_STABLE_Y", "with_aux", "with_family_aux", "disp_natural", "loglik_rows", "loglik_and_mu", "working",
           "hessian_weights", "pirls", "PirlsResult"]


@dataclass(frozen=True, eq=False)
class Response:
    """Response side of a GLMM: everything that varies by row except the random effects.

    ``ll_const`` (filled in when not given) is the eta-free part of the prior-weighted
    log-density (``log choose(n, y)``, ``-lgamma(y + 1)``): computed once per fit instead of
    once per deviance evaluation.

    ``X_zi`` (zero inflation), ``aux_vals`` (the family's auxiliary parameters by name:
    NB's ``theta``, Beta's ``phi``, ..., any number of them; ``aux_coord`` the optimizer's
    coordinates of them, :mod:`bayes_glmm.ml.auxpar`) and ``zi_eta = X_zi beta_zi`` are the
    "auxiliary" parameters' side: the ML fitter optimizes them jointly with theta and beta and
    sets them per evaluation with :func:`with_aux`; PIRLS treats them as fixed.
    """

    family: object
    y: np.ndarray
    n_trials: np.ndarray  # binomial trials, ones otherwise
    pw: np.ndarray  # prior weights
    offset: np.ndarray
    X: np.ndarray
    ll_const: np.ndarray | None = None
    X_zi: np.ndarray | None = None
    aux_vals: dict | None = None  # the family's auxiliary parameters by name (natural scale)
    zi_eta: np.ndarray | None = None
    row_const: np.ndarray | None = None  # families with aux parameters: loglik_constant at them (unweighted)
    y_levels: tuple | None = None  # count responses with few distinct values: (unique y, inverse)
    pois_c: np.ndarray | None = None  # per-row centre of the family's cancellation-free log-density (Family.stable_centre)

    def __post_init__(self):
        if self.ll_const is None:
            if self.pois_c is not None:
                const = self.pw * self.family.loglik_centred_const(self.y, self.pois_c)
            else:
                const = _ll_const(self.family, self.y, self.n_trials, self.pw)
            object.__setattr__(self, "ll_const", const)

    aux_coord: np.ndarray | None = None  # their optimizer coordinates (log scale for positive ones)
    #: dispersion formula (``disp=``): the first auxiliary parameter is ``exp(X_disp @ beta_disp)``
    #: per row, its coordinates ``beta_disp`` replacing its one log coordinate
    X_disp: np.ndarray | None = None

    @property
    def k_disp(self) -> int:
        """Number of dispersion-model coefficients (0 without ``disp=``)."""
        return 0 if self.X_disp is None else self.X_disp.shape[1]

    @property
    def n_aux(self) -> int:
        """Number of auxiliary coordinates: zero-inflation coefficients, then one per
        auxiliary parameter of the family (``family.aux_params``), the first replaced by the
        dispersion-model coefficients with ``disp=``."""
        n_fam = len(self.family.aux_params) + (self.k_disp - 1 if self.X_disp is not None else 0)
        return (0 if self.X_zi is None else self.X_zi.shape[1]) + n_fam

    @property
    def general(self) -> bool:
        """True when the log-density is not one of the four classic families' fast forms
        (a family with auxiliary parameters, or zero inflation): PIRLS then takes the
        family's exact derivatives and the Laplace approximation its observed Hessian."""
        return bool(self.family.aux_params) or self.X_zi is not None


def with_aux(resp: Response, aux) -> Response:
    """The response with its auxiliary parameters set from ``aux = (beta_zi, a)``, ``a`` one
    coordinate per auxiliary parameter of the family (:mod:`bayes_glmm.ml.auxpar`)."""
    aux = np.asarray(aux, dtype=float)
    k = 0 if resp.X_zi is None else resp.X_zi.shape[1]
    zi_eta = resp.X_zi @ aux[:k] if k else None
    return with_family_aux(resp, aux[k:], zi_eta=zi_eta)


def with_family_aux(resp: Response, coord, **fields) -> Response:
    """The response with the family's auxiliary parameters set from their coordinates (and
    any other ``fields`` replaced)."""
    fam = resp.family
    if not fam.aux_params:
        return replace(resp, ll_const=resp.ll_const, aux_vals=None, aux_coord=None, row_const=None, **fields)
    coord = np.asarray(coord, dtype=float)
    if resp.X_disp is not None:
        vals = disp_natural(fam, resp.X_disp, coord)
    else:
        vals = aux_natural(fam, coord)
    # the parameters are fixed within a PIRLS run: their lgamma terms are computed once here,
    # not at every iteration and step halving
    return replace(resp, ll_const=resp.ll_const, aux_vals=vals, aux_coord=coord, row_const=_row_const(resp, vals),
                   **fields)


def disp_natural(family, X_disp, coord) -> dict:
    """``{name: value}`` from the coordinates ``(beta_disp, a_rest)`` of a model with a
    dispersion formula: the first auxiliary parameter per row, ``exp(X_disp @ beta_disp)``,
    the others from their own coordinates (:func:`bayes_glmm.ml.auxpar.aux_natural`)."""
    k = X_disp.shape[1]
    first = family.aux_params[0].name
    rest = aux_natural(family, np.concatenate([[0.0], coord[k:]]))  # the first replaced below
    rest[first] = np.exp(X_disp @ coord[:k])
    return rest


def _row_const(resp: Response, vals):
    """The family's eta-free log-density terms at the auxiliary values ``vals`` (a dict by
    name), per row (None without them).

    For counts with few distinct values the lgamma terms are evaluated once per distinct y
    and gathered (1,000,000 rows of NB2 counts: ~50 lgamma calls instead of 3,000,000).
    """
    if not vals:
        return None
    fam = resp.family
    if resp.y_levels is not None and resp.X_disp is None:
        uy, inv = resp.y_levels
        return fam.loglik_constant(uy, None, **vals)[inv]
    return fam.loglik_constant(resp.y, resp.n_trials, **vals)


def _ll_const(fam, y, trials, pw):
    return pw * fam.loglik_constant(y, trials)


def make_response(spec) -> Response:
    """Collect y, trials, prior weights, offset, X (and X_zi) from a ModelSpec."""
    n = spec.n
    fam = spec.family
    trials = np.asarray(spec.trials, dtype=float) if (fam.needs_trials and spec.trials is not None) else np.ones(n)
    pw = np.asarray(spec.weights, dtype=float)
    if np.any(pw < 0) or not np.all(np.isfinite(pw)):
        raise ValueError("prior weights must be finite and non-negative")
    X_zi = getattr(spec, "X_zi", None)
    y = np.asarray(spec.y, dtype=float)
    levels = None
    if fam.aux_params and fam.is_count:
        uy, inv = np.unique(y, return_inverse=True)
        if uy.size * 4 < y.size:
            levels = (uy, inv.ravel())
    pois_c = fam.stable_centre(y, has_zi=X_zi is not None)
    X_disp = getattr(spec, "X_disp", None)
    return Response(fam, y, trials, pw,
                    np.asarray(spec.offset, dtype=float), np.asarray(spec.X, dtype=float),
                    X_zi=None if X_zi is None else np.asarray(X_zi, dtype=float), y_levels=levels,
                    pois_c=pois_c, X_disp=None if X_disp is None else np.asarray(X_disp, dtype=float))


def loglik_and_mu(resp: Response, eta: np.ndarray, want_mu: bool = True):
    """Prior-weighted log-density per row (constants included) and, for canonical links, mu.

    The canonical families take :meth:`Family.loglik_canonical` (the family's log-density
    rearranged so one ``exp`` gives both it and mu; the eta-free constants are added from
    ``resp.ll_const``), which matters because this is the cost of an AGQ evaluation.  Arrays may be
    (n,) or (n, k) with the response columns broadcast as (n, 1).  ``mu`` is None for
    non-canonical links.
    """
    fam = resp.family
    if _has_aux(resp):
        return resp.pw * _general_loglik(resp, eta), None
    if getattr(resp, "pois_c", None) is not None:
        ll, mu = fam.loglik_centred(resp.y, eta, resp.pois_c)
    elif fam.has_fast_canonical:
        ll, mu = fam.loglik_canonical(resp.y, eta, resp.n_trials)
    else:
        ll = fam.loglik(resp.y, eta, trials=resp.n_trials if fam.needs_trials else None)
        return resp.pw * ll, None
    ll *= resp.pw
    ll += resp.ll_const
    return ll, mu


def _has_aux(resp) -> bool:
    """Zero inflation, or the family's auxiliary parameters set (:func:`with_aux`): the
    general log-density and its exact derivatives.  A Response of a family with auxiliary
    parameters that were never set is read with the family's variance function alone (the
    working GLM of PQL, a gaussian's with sigma = 1)."""
    return getattr(resp, "X_zi", None) is not None or bool(getattr(resp, "aux_vals", None))


def _cond_loglik(resp, eta):
    """Conditional (not zero-inflated) log-density per row, unweighted, all constants."""
    fam = resp.family
    aux = resp.aux_vals or {}
    if fam.needs_trials:
        return fam.loglik(resp.y, eta, trials=resp.n_trials, **aux)
    if resp.row_const is not None:
        c = resp.row_const if np.ndim(eta) == 1 else resp.row_const[:, None]
        return c + fam.loglik_eta(resp.y, eta, **aux)
    return fam.loglik(resp.y, eta, **aux)


def _general_loglik(resp, eta):
    ll = _cond_loglik(resp, eta)
    if resp.X_zi is not None:
        zi_eta = resp.zi_eta if np.ndim(eta) == 1 else resp.zi_eta[:, None]
        ll = resp.family.zero_part_loglik(ll, resp.y, zi_eta)
    return ll


def _general_derivs(resp, eta):
    """(d1, w_obs, w_fisher) of the row log-densities in eta, unweighted."""
    fam = resp.family
    d1, wo, wf = fam.eta_derivs(resp.y, eta, trials=resp.n_trials if fam.needs_trials else None,
                                **(resp.aux_vals or {}))
    if resp.X_zi is not None:
        d1, wo, wf = fam.zero_part_eta_derivs(_cond_loglik(resp, eta), d1, wo, wf, resp.y, resp.zi_eta)
    return d1, wo, wf


def hessian_weights(resp: Response, eta: np.ndarray) -> np.ndarray:
    """Per-row ``-d^2 loglik / d eta^2`` the Laplace approximation uses (prior-weighted).

    The observed information for the dispersion families and zero inflation, as glmmTMB's
    exact (automatically differentiated) Hessian; the IRLS weights otherwise, as lme4.
    """
    if resp.general:
        return resp.pw * _general_derivs(resp, eta)[1]
    return working(resp, eta)[0]


def loglik_rows(resp: Response, eta: np.ndarray) -> np.ndarray:
    """Prior-weighted conditional log-density per row, all constants included."""
    return loglik_and_mu(resp, eta)[0]


def safe_weights(resp: Response, eta: np.ndarray) -> np.ndarray:
    """Positive IRLS weights for a general family: the observed information where positive,
    the expected information elsewhere (always an ascent direction)."""
    _, wo, wf = _general_derivs(resp, eta)
    return resp.pw * np.where(wo > 0, wo, wf)


def working(resp: Response, eta: np.ndarray, mu=None):
    """IRLS weights W and working score r (d loglik / d eta for canonical links).

    ``mu`` (canonical links) may be passed when already computed with the log-density.
    """
    fam = resp.family
    if _has_aux(resp):
        # Newton weights (the observed information): quadratic convergence, which the
        # envelope-theorem gradient of the Laplace deviance needs; they can be negative on
        # some rows (NB1, zero rows of a zero-inflated model), and where the whole system is
        # then not positive definite PIRLS falls back to :func:`safe_weights`
        if resp.X_zi is None:
            # (without the expected information, which only safe_weights and zi need)
            fam = resp.family
            d1, wo = fam.eta_score_weight(resp.y, eta, trials=resp.n_trials if fam.needs_trials else None,
                                          **(resp.aux_vals or {}))
        else:
            d1, wo, _ = _general_derivs(resp, eta)
        return resp.pw * wo, resp.pw * d1
    nm = resp.n_trials * resp.pw
    if fam.is_canonical:
        if mu is None:
            mu = fam.link.inverse(eta)
        # mu_eta == V(mu): no 0/0 when mu saturates at 0 or 1
        v = fam.variance(mu)
        return nm * v, resp.pw * (resp.y - resp.n_trials * mu)
    mu = fam.link.inverse(eta)
    eps = 1e-12
    mu = fam.clip_mean(mu, eps)
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
    exact_hessian: bool = True  # general families: factor built from the observed information
    ridged: int = 0  # joint steps whose fixed-effects system needed a ridge (separation)

    @property
    def laplace_deviance(self) -> float:
        """``-2 loglik`` of the Laplace approximation: ``-2 ll + ||u||^2 + log det(L L')``."""
        return -2.0 * self.ll + float(self.u @ self.u) + self.factor.logdet


#: smallest dense Schur block (random effects outside the first term) at which the PIRLS steps
#: before the mode are solved iteratively, preconditioned with an earlier factor
#: (:mod:`bayes_glmm.ml.iterative`): below it a factorization is as cheap as a few CG steps
PCG_MIN_DENSE = 2000


def pirls(resp: Response, s: linalg.ReStructure, lambdas, beta, u0=None, *, joint=False,
          tol=1e-7, maxit=100, max_halve=30, precond=None) -> PirlsResult:
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
    precond : linalg.ReFactor, optional
        A factor of a nearby system (the previous evaluation's).  With a large dense Schur
        block (:data:`PCG_MIN_DENSE`) the steps before the mode are then solved by conjugate
        gradients preconditioned with it, and A is factorized once, at the mode.
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
    n_ridge = 0
    converged = False
    use_pcg = (precond is not None and not joint and not resp.general and s.m_rest >= PCG_MIN_DENSE
               and not s.nested and getattr(precond, "s", None) is s)
    F = None
    for it in range(1, maxit + 1):
        W, r = working(resp, eta, mu)
        if use_pcg:
            gu = linalg.lam_t(s, lambdas, linalg.zt_r(s, r)) - u
            du = pcg(lambda v: linalg.lam_t(s, lambdas, linalg.zt_r(s, W * linalg.z_lam_u(s, lambdas, v))) + v,
                     gu, precond.solve)
            if du is not None:
                F, db, decrement = None, None, float(gu @ du)
            else:
                use_pcg = False
        if not use_pcg:
            try:
                F = linalg.factorize(s, linalg.crossprods(s, W), lambdas)
                if joint:
                    RZX = F.forward(linalg.lam_t(s, lambdas, linalg.zt_r(s, W[:, None] * X)))
                    RX, ridged = _chol_ridge(X.T @ (W[:, None] * X) - RZX.T @ RZX)
                    n_ridge += ridged
            except (FloatingPointError, np.linalg.LinAlgError):
                if not resp.general:
                    raise
                W = safe_weights(resp, eta)  # Newton system indefinite here: IRLS step instead
                F = linalg.factorize(s, linalg.crossprods(s, W), lambdas)
                if joint:
                    RZX = F.forward(linalg.lam_t(s, lambdas, linalg.zt_r(s, W[:, None] * X)))
                    RX, ridged = _chol_ridge(X.T @ (W[:, None] * X) - RZX.T @ RZX)
                    n_ridge += ridged
            gu = linalg.lam_t(s, lambdas, linalg.zt_r(s, r)) - u
            if joint:
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
            if not resp.general:  # (general families refactor below, at the exact Hessian)
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
        if not resp.general:
            W, r = working(resp, eta, mu)
            F = linalg.factorize(s, linalg.crossprods(s, W), lambdas)
    if F is None:  # stopped after an iterative step (no decrease): the factor at this point
        F = linalg.factorize(s, linalg.crossprods(s, W), lambdas)
    if resp.general:
        # the Laplace log-determinant takes the exact Hessian at the mode (glmmTMB's); it is
        # positive definite at a maximum, but rows of a mixture can make it fail numerically,
        # and then the IRLS factor already built stands in (noted by ``W is not W_hess``)
        W, r = working(resp, eta)
        try:
            F = linalg.factorize(s, linalg.crossprods(s, W), lambdas)
            exact = True
        except FloatingPointError:
            W = safe_weights(resp, eta)
            F = linalg.factorize(s, linalg.crossprods(s, W), lambdas)
            exact = False
    else:
        exact = True
    return PirlsResult(u=u, beta=beta, eta=eta, ll=ll, factor=F, W=W, iters=it, halvings=halvings,
                       converged=converged, r=r, mu=mu, exact_hessian=exact, ridged=n_ridge)


def _chol_ridge(S: np.ndarray):
    """Lower Cholesky factor of the fixed-effects Schur complement, ridged if need be.

    ``S = X'WX - R_ZX'R_ZX`` loses positive definiteness when the IRLS weights of the rows
    that identify a fixed effect vanish: (quasi-)separation in a binary model (the
    coefficient runs off to infinity and its fitted probabilities to 0 or 1) or a fixed
    effect carried only by rows with zero weight.  A Levenberg-Marquardt ridge keeps the
    joint step finite (still an ascent direction; step halving does the rest) instead of
    raising ``LinAlgError``.  Returns ``(R, ridged)``.
    """
    S = 0.5 * (S + S.T)
    try:
        return np.linalg.cholesky(S), False
    except np.linalg.LinAlgError:
        pass
    if not np.all(np.isfinite(S)):
        raise FloatingPointError("non-finite fixed-effects system in PIRLS")
    scale = max(float(np.max(np.abs(np.diag(S)))), 1e-300) if S.size else 1.0
    lam = 1e-10 * scale
    eye = np.eye(S.shape[0])
    for _ in range(12):
        try:
            return np.linalg.cholesky(S + lam * eye), True
        except np.linalg.LinAlgError:
            lam *= 10.0
    raise FloatingPointError("the fixed-effects system in PIRLS is not positive definite even when ridged")

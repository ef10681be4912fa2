"""GLMM maximum likelihood by the Laplace approximation (and AGQ for one grouping factor).

The Laplace log-likelihood at (theta, beta), with u the conditional mode from PIRLS,

    loglik = sum_i w_i log f(y_i | eta_i) - ||u||^2 / 2 - log det(L L') / 2,

includes every constant of the family density (binomial coefficients, ``-lgamma(y+1)``),
so it equals ``logLik(glmer(..., nAGQ = 1))``.

Optimization follows lme4's two stages: (1) theta only, with beta updated inside PIRLS
(the nAGQ = 0 criterion), which gives cheap, good starting values; (2) the full problem
in (theta, beta), with PIRLS over u only and warm-started modes.  The covariance of beta
is, as in lme4 >= 1.1, twice the beta block of the inverse finite-difference Hessian of the
deviance in (theta, beta).

With one random-effects term and a canonical link, stage 2 uses the analytic gradient of
:func:`bayes_glmm.ml.agq.devgrad` (Laplace or AGQ), and both the preconditioning Hessian and
the vcov Hessian are central differences of that gradient: about 2 d + 30 evaluations in
all instead of 4 d^2 plus 2 d per L-BFGS-B iteration.
"""
from __future__ import annotations

import warnings

import numpy as np

from . import agq as _agq
from . import linalg
from .lmm import modes_sds_covs
from .optimize import (check_convergence, fd_gradient, fd_hessian, fd_hessian_from_grad, fd_hessian_pd, lambdas_from_theta, minimize_bounded,
                       multimodal_prone, multistart_points, new_optinfo, optimize_checked, report_starts,
                       resolve_n_starts, restart_candidates, restart_off_boundary, solve_with_boundary,
                       saturated_correlations, theta_layout, theta_scales, warn_nonconvergence)
from .auxpar import aux_coords, aux_lower, aux_natural, aux_starts, check_aux_params
from .pirls import hessian_weights, make_response, pirls, with_aux
from .batch_scalar import batch_applies, batch_devgrad
from .moment_start import modes_start, theta_moment_start
from .newton_batch import newton_batched
from .pirls_scalar import pirls_fast
from .types import MLFit
from ..spec.validate import user_stacklevel

__all__ = ["fit_glmm", "start_beta", "start_aux", "make_deviance", "make_devgrad", "zi_flat_directions",
           "zi_boundary_mask", "zi_interior_starts", "escape_zi_plateau", "zi_boundary_note", "ZI_EXTREME",
           "laplace_tiny_groups_note", "TINY_GROUP_TRIALS"]


def start_beta(resp) -> np.ndarray:
    """Least-squares fit of the linked starting means (glm's ``mustart``) on X."""
    fam = resp.family
    mu0 = fam.mustart(resp.y, resp.n_trials, resp.pw)  # strictly inside the support
    eta0 = fam.link.link(mu0) - resp.offset
    return np.linalg.lstsq(resp.X, eta0, rcond=None)[0]


def start_aux(resp) -> np.ndarray:
    """Starting ``(beta_zi, a)`` from marginal moments of y, ``a`` one coordinate per auxiliary
    parameter of the family (:mod:`bayes_glmm.ml.auxpar`: the log of a positive one).

    Each auxiliary parameter from the method of moments (its :meth:`AuxParam.ml_start`, clipped
    to a sane range: random effects inflate the marginal variance, so this errs towards
    overdispersion, which the optimizer undoes); the zero-inflation intercept from the excess of
    zeros over the count model's expected share (its density at 0 at the mean count), other
    zero-inflation coefficients at 0.
    """
    fam, y, w = resp.family, resp.y, resp.pw
    wsum = max(float(np.sum(w)), 1e-300)
    m = float(np.sum(w * y) / wsum)
    v = float(np.sum(w * (y - m) ** 2) / wsum)
    out = []
    vals = aux_starts(fam, m, v)
    if resp.X_zi is not None:
        p_zero = float(np.sum(w * (y == 0)) / wsum)
        excess = fam.zero_part_start(p_zero, m, vals)  # the family's zero part: inflation or hurdle
        bz = np.zeros(resp.X_zi.shape[1])
        icpt = np.flatnonzero(np.all(resp.X_zi == 1.0, axis=0))
        if icpt.size:
            bz[icpt[0]] = np.log(excess / (1.0 - excess))
        out.append(bz)
    if vals and resp.X_disp is not None:
        # the dispersion model starts at the constant moment start: its intercept column (if
        # any) carries the log start, the other coefficients 0
        a = aux_coords(fam, vals)
        bd = np.zeros(resp.X_disp.shape[1])
        icpt = np.flatnonzero(np.all(resp.X_disp == 1.0, axis=0))
        if icpt.size:
            bd[icpt[0]] = a[0]
        out += [bd, a[1:]]
    elif vals:
        out.append(aux_coords(fam, vals))
    return np.concatenate(out) if out else np.zeros(0)


#: |zero-inflation linear predictor| beyond which a row's P(zero-inflation) counts as heading
#: to 0 or 1 (logit 10: P = 4.5e-5).  The likelihood is nearly flat out there, so a gradient
#: method that wanders out stops on the plateau even when an interior optimum is better
#: (Salamanders ZINB2 with zi = ~ mined in R's level order: 0.047 logLik units worse).
ZI_EXTREME = 10.0
#: interior starts tried from such a plateau: the whole zi linear predictor clipped to
#: +-8, +-4 and 0 (P = 1/2 everywhere), then each extreme row pattern (a factor level) on
#: its own clipped to +-4.  No single clip works everywhere: on Salamanders ZINB2 with
#: zi = ~ spp in R's level order (two levels on the plateau, one truly at the boundary, one
#: with a flat interior optimum at -4.4) clipping both to +-4 or 0 leads back onto the
#: plateau, +-8 or clipping the second alone finds the interior optimum (0.0059 better).
ZI_CLIPS = (8.0, 4.0, 0.0)
#: at most this many row patterns are restarted one at a time (continuous zi covariates
#: make every row a pattern; the whole-predictor clips cover them)
ZI_MAX_PATTERNS = 6
#: rounds of plateau restarts (a better optimum still on a plateau is probed again)
ZI_ROUNDS = 2


def zi_flat_directions(b_zi, X_zi, *, extreme: float = ZI_EXTREME) -> np.ndarray:
    """Directions in zero-inflation coefficient space along which the likelihood is flat.

    Rows whose zi linear predictor is beyond ``extreme`` contribute (almost) nothing to the
    likelihood's dependence on it; the coefficient directions that move *only* those rows
    (the null space of the other rows' design) are the boundary directions: the estimate
    is at infinity along them, as glmmTMB's NA standard errors say.

    Returns
    -------
    ndarray (k_zi, m)
        Orthonormal columns; ``m = 0`` when the zi part is interior.
    """
    X_zi = np.asarray(X_zi, dtype=float)
    eta = X_zi @ np.asarray(b_zi, dtype=float)
    ext = np.abs(eta) > extreme
    if not np.any(ext):
        return np.zeros((X_zi.shape[1], 0))
    Xn = X_zi[~ext]
    if Xn.shape[0] == 0:
        return np.eye(X_zi.shape[1])
    from scipy.linalg import null_space

    # unique rows: the null space of a factor design only needs one row per level
    N = null_space(np.unique(Xn, axis=0), rcond=1e-10)
    return N


def zi_boundary_mask(b_zi, X_zi, *, extreme: float = ZI_EXTREME) -> np.ndarray:
    """Boolean mask of the zero-inflation coefficients involved in a flat (boundary)
    direction (see :func:`zi_flat_directions`): their estimates are at +-infinity."""
    N = zi_flat_directions(b_zi, X_zi, extreme=extreme)
    if N.shape[1] == 0:
        return np.zeros(np.shape(b_zi)[0], dtype=bool)
    return np.max(np.abs(N), axis=1) > 1e-8


def zi_interior_starts(x, X_zi, at: int, clips=None) -> list:
    """Starts with the zi linear predictor pulled back inside ``+-clip``.

    First the whole predictor clipped to each of ``clips`` (default :data:`ZI_CLIPS`), then
    each distinct extreme row pattern of ``X_zi`` alone clipped to +-4 (at most
    :data:`ZI_MAX_PATTERNS`, most rows first).  The coefficients are the least-squares fit of
    the clipped linear predictor on ``X_zi`` (exact for factor designs); everything else in
    ``x`` is kept.  Returns a list of ``(name, x_start)``.
    """
    x = np.asarray(x, dtype=float)
    X_zi = np.asarray(X_zi, dtype=float)
    k = X_zi.shape[1]
    eta = X_zi @ x[at:at + k]

    def start(target):
        y = x.copy()
        y[at:at + k] = np.linalg.lstsq(X_zi, target, rcond=None)[0]
        return y

    out = [(f"zi clipped to +-{c:g}", start(np.clip(eta, -c, c)))
           for c in (ZI_CLIPS if clips is None else clips)]
    ext = np.abs(eta) > ZI_EXTREME
    if np.any(ext):
        pats, inv, counts = np.unique(X_zi[ext], axis=0, return_inverse=True, return_counts=True)
        inv = np.asarray(inv).reshape(-1)
        if 1 < pats.shape[0] <= ZI_MAX_PATTERNS:
            rows = np.flatnonzero(ext)
            for j in np.argsort(-counts, kind="stable"):
                target = eta.copy()
                sel = rows[inv == j]
                target[sel] = np.clip(eta[sel], -4.0, 4.0)
                out.append((f"zi pattern {int(j) + 1} of {pats.shape[0]} clipped to +-4", start(target)))
    return out


def escape_zi_plateau(solve, opt, X_zi, at: int) -> tuple:
    """Re-solve from interior zi starts when ``opt`` ended with an extreme zi linear predictor.

    ``solve(x_start, hess=None)`` runs a full minimization from ``x_start`` (unpreconditioned).
    Up to :data:`ZI_ROUNDS` rounds: a better optimum that is still on a plateau is probed
    again from its own interior starts.  Returns ``(opt, record)``: the lowest deviance among
    ``opt`` and the re-solves, and ``{"starts": [...], "logliks": [...], "kept": name}``
    (None when ``opt`` was interior).
    """
    k = X_zi.shape[1]

    def extreme(o):
        return np.max(np.abs(np.asarray(X_zi) @ o["x"][at:at + k])) > ZI_EXTREME

    if not extreme(opt):
        return opt, None
    best, n_evals = opt, opt["n_evals"]
    rec = {"starts": ["optimum"], "logliks": [-0.5 * float(opt["fun"])], "kept": "optimum"}
    for _ in range(ZI_ROUNDS):
        improved = False
        for name, xs in zi_interior_starts(best["x"], X_zi, at):
            # no preconditioner: one whitened at a plateau point (nearly singular along the
            # flat direction) turns a unit step into a leap back onto the plateau
            o = solve(xs, hess=None)
            n_evals += o["n_evals"]
            rec["starts"].append(name)
            rec["logliks"].append(-0.5 * float(o["fun"]))
            if np.isfinite(o["fun"]) and o["fun"] < best["fun"] - 1e-9 * max(1.0, abs(best["fun"])):
                best, rec["kept"], improved = o, name, True
        if not improved or not extreme(best):
            break
    best = dict(best)
    best["n_evals"] = n_evals
    return best, rec


#: largest GLM information of a fixed effect (deviance scale) that stage 1 accepts without
#: rescaling: above it (counts of 1e7-1e12, or millions of rows) the fixed effects' curvature
#: dwarfs theta's by many orders of magnitude, and unscaled L-BFGS-B stops on its
#: relative-reduction test with theta still at its start
INFO_SCALE_MAX = 1e8


def info_scaling(resp, beta0, nt: int, na: int, aux0=None):
    """Diagonal scales for stage 1 (``x = x0 + diag(scale) y``), or None when the problem
    is not badly scaled.

    The fixed effects' entries are ``1 / sqrt(2 diag(X' W X))`` (the deviance's GLM
    information at the start, W the Hessian weights), theta's and the auxiliary
    parameters' 1: a unit step in beta is then one standard error whatever the magnitude
    of y, so the optimizer's path no longer depends on it.
    """
    eta0 = resp.offset + resp.X @ np.asarray(beta0, dtype=float)
    r = with_aux(resp, aux0) if na and aux0 is not None else resp
    if r.general and r.family.aux_params and r.aux_vals is None:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        W = hessian_weights(r, eta0)
    hb = 2.0 * np.einsum("ij,i,ij->j", resp.X, W, resp.X)
    if not np.all(np.isfinite(hb)) or np.max(hb, initial=0.0) <= INFO_SCALE_MAX:
        return None
    return np.concatenate([np.ones(nt), 1.0 / np.sqrt(np.maximum(hb, 1.0)), np.ones(na)])


#: median binomial trials (rows, for bernoulli) per group at or below which the Laplace
#: approximation of a scalar random effect earns a warning.  Measured (bernoulli,
#: logit -0.5 + 0.5 x + u, 6,000 rows, 6-8 replicates, Laplace vs AGQ(9); AGQ(9) recovers the
#: true SD at every size): with SD(u) = 1 Laplace's SD is 25% low at 2 rows per group, 14%
#: at 3, 6% at 5, 4% at 7, 2% at 10, 1% at 15; with SD 2: 6%, 4%, 2.5% low at 5, 7, 10;
#: with SD 4: 10%, 8%, 6%.  At 5 and below the bias is a sizeable fraction of the SD and,
#: with thousands of groups, many standard errors whatever the SD.  Above it the error
#: depends on the SD more than on the group size (toenail, ~7 visits per patient and SD
#: ~4: Laplace 4.57 against AGQ(9) 3.90 -- too high there), which a rule on group size alone
#: cannot see; the docs already fit toenail by AGQ.
TINY_GROUP_TRIALS = 5


def laplace_tiny_groups_note(spec, resp):
    """The warning text when Laplace is used on binary/binomial data whose only random
    effect is scalar and whose groups are tiny (median trials per group <=
    :data:`TINY_GROUP_TRIALS`); None otherwise.  AGQ (``n_agq``) applies exactly there."""
    if not spec.family.is_binary or len(spec.terms) != 1 or spec.terms[0].q != 1:
        return None
    t = spec.terms[0]
    used = np.asarray(resp.pw, dtype=float) > 0
    per = np.bincount(np.asarray(t.codes)[used], weights=np.asarray(resp.n_trials, dtype=float)[used],
                      minlength=t.n_levels)
    per = per[per > 0]
    if per.size == 0:
        return None
    med = float(np.median(per))
    if med > TINY_GROUP_TRIALS:
        return None
    what = "binomial trials" if spec.family.needs_trials else "rows"
    return (f"Laplace is biased towards zero variance for binary data with few observations per group "
            f"(median {med:g} {what} per group of {t.group!r}; simulated with SD 1: about 25% low at 2 per "
            f"group, 14% at 3, 6% at 5); use n_agq=9 (adaptive Gauss-Hermite quadrature) for this scalar "
            f"random effect, e.g. fit_ml(n_agq=9)")


def _split(x, nt, p):
    """``x = (theta, beta, aux)`` into its three parts."""
    return x[:nt], x[nt:nt + p], x[nt + p:]


def _modes(x, resp, s, terms, slices, nt, state):
    """Lambda, the PIRLS conditional modes and the response at ``x = (theta, beta, aux)``.

    Warm-starts from, and records into, ``state`` (last modes, last result, failures).
    Within ``_PREDICT_STEP`` of the last gradient point (``state["pred"]``, left by
    :func:`make_devgrad`) the warm start is the first-order prediction of the modes there.
    """
    key = np.asarray(x, dtype=float).tobytes()
    seen = state.get("modes_at")
    if seen is not None and seen[0] == key:
        # the same point again (an optimizer's end point re-evaluated, the next stage's start,
        # the final deviance: 7 of a 72-row ordinal fit's 46 PIRLS runs): the same modes
        state["last"] = seen[2]
        state["u"] = seen[2].u
        return seen[1], seen[2], seen[3]
    theta, beta, aux = _split(x, nt, resp.X.shape[1])
    lambdas = lambdas_from_theta(theta, terms, slices)
    if resp.n_aux:
        resp = with_aux(resp, aux)
    u0 = state.get("u")
    pred = state.get("pred")
    if pred is not None and pred[0].shape == np.shape(x):
        dx = np.asarray(x, dtype=float) - pred[0]
        if np.max(np.abs(dx), initial=0.0) <= (_PREDICT_STEP_GENERAL if resp.general else _PREDICT_STEP):
            # finite-difference stencils: u(x0) + du dx is within O(dx^2) of the mode, so
            # PIRLS stops after one Newton step instead of two (same converged mode)
            u0 = pred[1] + pred[2] @ dx
    last = state.get("last")
    try:
        # the previous evaluation's factor preconditions the iterative steps of large crossed designs
        pr = pirls_fast(resp, s, lambdas, beta, u0, precond=None if last is None else last.factor)
    except (FloatingPointError, np.linalg.LinAlgError):
        if u0 is None:
            raise
        # a warm start left by a wild line-search point can overflow the weights (counts of
        # 1e12: a mode off by 1e-2 is e^(1e-2 * 1e6)); the cold start u = 0 does not
        pr = pirls_fast(resp, s, lambdas, beta, None)
    if not pr.converged:
        state["pirls_fail"] = state.get("pirls_fail", 0) + 1
    if np.all(np.isfinite(pr.u)):
        state["u"] = pr.u
        if pr.converged and resp.general:
            # only a converged, finite mode is reused, and only for the families with auxiliary
            # parameters: a classic family's PIRLS run again from its own mode polishes it, which
            # at Poisson counts of 1e12 (tests/test_ml_trust.py) the optimizer needs
            state["modes_at"] = (key, lambdas, pr, resp)
    state["last"] = pr
    return lambdas, pr, resp


# largest coordinate step from the last gradient point at which the modes are predicted
# linearly: the standard 1e-4 finite-difference stencils.  Not the optimizer's longer steps:
# at Poisson counts of 1e12 a prediction 1e-2 away let L-BFGS-B stall at theta's start
# (tests/test_ml_trust.py); the previous modes stay the warm start there
_PREDICT_STEP = 2e-4
#: the same for the families with auxiliary parameters (their modes are memoized, not
#: re-polished): the optimizer's steps too, where the prediction saves a Newton step of most
#: stage-1 PIRLS runs (72-row ordinal fit: 101 -> 90 row evaluations, the same modes); a
#: prediction that misses is only a warm start, which PIRLS's step halving corrects
_PREDICT_STEP_GENERAL = 1.0


def make_deviance(resp, s, terms, slices, n_agq=1, state=None):
    """Deviance ``-2 loglik`` in ``x = (theta, beta, aux)`` (Laplace or AGQ), warm-started modes.

    ``aux`` (zero-inflation coefficients, then one coordinate per auxiliary parameter of the
    family, :mod:`bayes_glmm.ml.auxpar`) is empty for the classic families.  ``state`` (a dict) carries the last modes between calls: warm starts make
    PIRLS take two or three Newton steps instead of ten; the converged mode does not depend
    on them.
    """
    nt = sum(t.n_theta for t in terms)
    state = {} if state is None else state

    def dev(x):
        lambdas, pr, r = _modes(x, resp, s, terms, slices, nt, state)
        if n_agq == 1:
            return pr.laplace_deviance
        return -2.0 * _agq.agq_loglik(r, s, lambdas, pr, n_agq)

    return dev


def make_devgrad(resp, s, terms, slices, n_agq=1, state=None):
    """Like :func:`make_deviance` but returning ``(deviance, gradient)``.

    Only for models where :func:`bayes_glmm.ml.agq.supports_gradient` holds.
    """
    nt = sum(t.n_theta for t in terms)
    state = {} if state is None else state
    # dLambda/dtheta per term: constant for linear structures, else re-evaluated at each new
    # theta (kept for the last one: Hessian columns in beta and the aux parameters share it)
    linear = all(t.cov.linear for t in terms)
    last = {"theta": None, "E": ([_agq.theta_directions(t, t.cov.theta_start(t.q)) for t in terms]
                                 if linear else None)}

    def directions(theta):
        if not linear and (last["theta"] is None or not np.array_equal(last["theta"], theta)):
            last["theta"] = theta.copy()
            last["E"] = [_agq.theta_directions(t, theta[sl]) for t, sl in zip(terms, slices)]
        # one term: its array; several: the list (bayes_glmm.ml.multigrad)
        return last["E"][0] if len(terms) == 1 else last["E"]

    def fg(x):
        lambdas, pr, r = _modes(x, resp, s, terms, slices, nt, state)
        E = directions(np.asarray(x[:nt], dtype=float))
        if r.general and not pr.exact_hessian:
            # the Laplace factor fell back to IRLS weights: the analytic gradient (of the
            # exact-Hessian deviance) does not apply here; central differences do
            state.pop("pred", None)
            return pr.laplace_deviance, fd_gradient(make_deviance(resp, s, terms, slices, 1, dict(state)), x)
        seen = state.get("devgrad_at")
        if seen is not None and seen[0] is pr and seen[1] == n_agq:
            # the same modes (_modes' "modes_at"): the same deviance, gradient and prediction
            if seen[3] is None:
                state.pop("pred", None)
            else:
                state["pred"] = seen[3]
            return seen[2][0], seen[2][1].copy()
        out = {}
        res = _agq.devgrad(r, s, lambdas, E, pr, n_agq, out=out)
        du = out.get("du")
        if du is not None and du.shape == (pr.u.size, np.size(x)) and np.all(np.isfinite(du)) \
                and np.all(np.isfinite(pr.u)):
            state["pred"] = (np.array(x, dtype=float), pr.u.copy(), du)
        else:
            state.pop("pred", None)
        state["devgrad_at"] = (pr, n_agq, (res[0], np.array(res[1], dtype=float)), state.get("pred"))
        return res

    if len(terms) == 1 and resp.n_aux and resp.family.aux_rows_broadcast:
        fg.batch = _batch_gradients(resp, s, terms, slices, nt, state, n_agq)
    return fg


def _batch_gradients(resp, s, terms, slices, nt, state, n_agq=1):
    """``batch(points) -> gradients (P, d) or None``: :func:`make_devgrad`'s gradients at many
    points at once (:mod:`bayes_glmm.ml.batch_scalar`), each point's modes warm-started as
    :func:`_modes` starts them; None where the batch does not apply (one at a time then).
    The state of the sequential evaluations (last modes, prediction) is left as it was.

    ``batch.devgrads(points, u0=None, dev_only=False) -> (deviances (P,), gradients (P, d),
    modes (P, J), mode derivatives (P, J, d)) or None`` is the same with explicit warm starts
    ``u0`` (P, J) of the modes where given (:func:`bayes_glmm.ml.newton_batch.newton_batched`
    passes the last batch's); ``dev_only``: the deviances and modes only (gradients None).
    """
    p = resp.X.shape[1]
    known = []

    def applies(aux):
        # once per model: one scalar term whose Lambda is theta (the batch's theta derivative is
        # Lambda's own; a linear structure, checked at two values) and batch_applies (which
        # does not depend on the auxiliary values, only on their presence)
        if not known:
            known.append(nt == 1 and terms[0].cov.linear and batch_applies(with_aux(resp, aux), s, n_agq)
                         and all(float(lambdas_from_theta(np.array([v]), terms, slices)[0][0, 0]) == v
                                 for v in (0.75, 1.5)))
        return known[0]

    def devgrads(points, u0=None, dev_only=False):
        pts = np.asarray(points, dtype=float)
        if not applies(pts[0, nt + p:]):
            return None
        lam = pts[:, 0]
        if u0 is None:
            u = state.get("u")
            u0 = np.zeros((pts.shape[0], s.J[0])) if u is None else np.tile(u, (pts.shape[0], 1))
            pred = state.get("pred")
            if pred is not None and pred[0].shape == pts.shape[1:]:
                dx = pts - pred[0]
                near = np.max(np.abs(dx), axis=1) <= _PREDICT_STEP_GENERAL
                u0 = np.where(near[:, None], pred[1] + dx @ pred[2].T, u0)
        try:
            out = batch_devgrad(resp, s, lam, pts[:, nt:nt + p], pts[:, nt + p:], u0, n_agq, return_modes=True,
                                dev_only=dev_only)
            if out is None:
                # a PIRLS step some point would halve (a warm start far from its mode, e.g. a
                # new Newton iterate): the first point's modes by the sequential PIRLS, which
                # halves, then every point from them (the stencil's within O(delta) of theirs)
                pr = pirls_fast(with_aux(resp, pts[0, nt + p:]), s, lambdas_from_theta(pts[0, :nt], terms, slices),
                                pts[0, nt:nt + p], u0[0])
                if pr.converged and np.all(np.isfinite(pr.u)):
                    out = batch_devgrad(resp, s, lam, pts[:, nt:nt + p], pts[:, nt + p:],
                                        np.tile(pr.u, (pts.shape[0], 1)), n_agq, return_modes=True,
                                        dev_only=dev_only)
            return out
        except (FloatingPointError, np.linalg.LinAlgError):
            return None

    def batch(points):
        out = devgrads(points)
        return None if out is None else out[1]

    batch.devgrads = devgrads
    return batch


def _aux_lower(resp) -> np.ndarray:
    """Lower bounds of ``aux = (beta_zi, a)``: none on the zero-inflation coefficients, the
    AuxParam's on the family's coordinates (:func:`bayes_glmm.ml.auxpar.aux_lower`)."""
    k_zi = 0 if resp.X_zi is None else resp.X_zi.shape[1]
    lo = aux_lower(resp.family)
    if resp.X_disp is not None:  # the dispersion coefficients are unbounded
        lo = np.concatenate([np.full(resp.X_disp.shape[1], -np.inf), lo[1:]])
    return np.concatenate([np.full(k_zi, -np.inf), lo])


def _stage1(resp, s, terms, slices, lower, theta0, beta0, aux0):
    """Optimize (theta, aux) with beta inside PIRLS (lme4's nAGQ = 0 criterion)."""
    state = {"u": None, "beta": beta0}
    nt = theta0.size

    def crit(v):
        lambdas = lambdas_from_theta(v[:nt], terms, slices)
        r = with_aux(resp, v[nt:]) if resp.n_aux else resp
        pr = pirls(r, s, lambdas, state["beta"], state["u"], joint=True)
        if pr.ridged:
            state["ridged"] = state.get("ridged", 0) + 1
        if np.all(np.isfinite(pr.u)) and np.all(np.isfinite(pr.beta)):
            state["u"], state["beta"] = pr.u, pr.beta
        return pr.laplace_deviance

    # a loose fit is enough: stage 2 polishes theta and beta together
    lower1 = np.concatenate([lower, _aux_lower(resp)])
    opt = minimize_bounded(crit, np.concatenate([theta0, aux0]), lower1, ftol=1e-8, gtol=1e-4,
                           label="stage 1 (theta, beta in PIRLS)")
    opt["ridged"] = state.get("ridged", 0)
    lambdas = lambdas_from_theta(opt["x"][:nt], terms, slices)
    r = with_aux(resp, opt["x"][nt:]) if resp.n_aux else resp
    pr = pirls(r, s, lambdas, state["beta"], state["u"], joint=True)
    return opt, pr


#: distance from its bound (0) beyond which every bounded coordinate must be for the fit to
#: end with a Newton step from stage 1 (:func:`_newton_from_stage1`): a variance near 0 goes
#: through stage 2 and its probe off the bound
_NEWTON_MARGIN = 1e-2


def _interior(x, lower) -> bool:
    """True when every bounded coordinate of ``x`` is beyond :data:`_NEWTON_MARGIN` of its bound."""
    b = np.isfinite(lower)
    return bool(np.all(np.asarray(x)[b] - lower[b] > _NEWTON_MARGIN))


def _newton_from_stage1(fg, x0, lower):
    """``(opt or None, H, n_evals)``: the central-difference Hessian ``H`` at the stage-1 point
    ``x0`` (of the same deviance) and :func:`_newton_finish` from there.

    Stage 1 stops within a few 1e-4 of the optimum in gradient, so the step is tiny: the Hessian
    at ``x0`` differs from the one at the step's point by O(step) relative, far below what the
    standard errors resolve, and costs 2 d gradients once instead of d for the whitening and
    2 d again after stage 2.
    """
    f0, g0 = fg(x0)  # (stage 1's last point: its modes and gradient are kept)
    H, n = fd_hessian_pd(fg, x0)
    opt, n1 = _newton_finish(fg, x0, f0, g0, H, lower)
    return opt, H, n + n1


def _newton_finish(fg, x0, f0, g0, H, lower, method="Laplace"):
    """``(opt or None, n_evals)``: one Newton step from ``x0`` (deviance ``f0``, gradient ``g0``)
    with the Hessian ``H`` there; the optimum at the step's point when it lands inside the
    bounds, lowers the deviance and passes :func:`~bayes_glmm.ml.optimize.check_convergence`
    with that Hessian (``opt`` as :func:`~bayes_glmm.ml.optimize.solve_with_boundary`'s, its
    gradient as ``opt["g"]``), else None."""
    lower = np.asarray(lower, dtype=float)
    try:
        np.linalg.cholesky(H)
        step = -np.linalg.solve(H, np.asarray(g0, dtype=float))
    except np.linalg.LinAlgError:
        return None, 0
    x1 = x0 + step
    if not (np.all(np.isfinite(x1)) and _interior(x1, lower)):
        return None, 0
    try:
        f1, g1 = fg(x1)
    except (FloatingPointError, np.linalg.LinAlgError):
        return None, 1
    g1 = np.asarray(g1, dtype=float)
    if not (np.isfinite(f1) and np.all(np.isfinite(g1)) and f1 <= f0 + 1e-9 * max(1.0, abs(f0))
            and check_convergence(x1, g1, H, lower)["converged"]):
        return None, 1
    return ({"x": x1, "fun": float(f1), "g": g1, "n_evals": 1, "grad_norm": float(np.max(np.abs(g1))),
             "converged": True, "boundary_restart": None,
             "message": f"stage 2 ({method}): one Newton step from stage 1 with its Hessian"}, 1)


#: Newton decrement at which the batched Newton iterations (:func:`_batched_newton`) stop: its
#: last Hessian is the standard errors' (within about 1e-3 SE of the optimum: 1e-7 to 1e-5 relative
#: in the SEs on clmm's wine data); the centre is the fit, or one more Newton step
#: (:data:`_BATCH_DEC_DONE`)
_BATCH_DEC_STOP = 1e-6
#: the same for the Laplace iterations that start an AGQ fit (the AGQ ones polish)
_BATCH_DEC_STOP_AGQ_START = 1e-2
#: Newton decrement below which the last batch's centre is the fit (no further step): its
#: deviance within 5e-8 of the optimum's (the log-likelihood within 2.5e-8), the estimates within
#: 3e-4 SE (the issue's targets: logLik within 1e-5, estimates within 0.01 SE); Newton's quadratic
#: convergence usually leaves it at 1e-8 - 1e-12
_BATCH_DEC_DONE = 1e-7


def _chord_steps(fg, state, res, lower, max_steps=6):
    """``(x, u, n_evals)``: Newton steps on ``fg``'s (the AGQ) deviance with the Laplace
    Hessian ``res["H"]`` of the point ``res["x"]`` (one sequential gradient each, not a batch
    of 2 d + 1 AGQ gradients), until the step's decrement is below :data:`_BATCH_DEC_STOP`, the
    deviance stops falling or a step would leave the interior: the last point whose deviance
    fell, and its modes (``state``: ``fg``'s).  The two Hessians differ by a few per cent on
    small groups, so each step gains about three digits (wine data: decrements 5e-3, 2e-6, 4e-9)."""
    x, H = res["x"], res["H"]
    kept, f_prev, n = (res["x"], res["u"]), np.inf, 0
    for _ in range(max_steps):
        try:
            f, g = fg(x)
        except (FloatingPointError, np.linalg.LinAlgError):
            break
        n += 1
        if not (np.isfinite(f) and np.all(np.isfinite(g)) and f <= f_prev + 1e-9 * max(1.0, abs(f))):
            break
        kept, f_prev = (x, state["u"]), f
        step = -np.linalg.solve(H, np.asarray(g, dtype=float))
        if float(-g @ step) < _BATCH_DEC_STOP or not _interior(x + step, lower):
            break
        x = x + step
    return kept[0], kept[1], n


#: multiples of the moment estimate of theta tried as the Newton start (one batch): one-step
#: level effects understate large effects of a bounded response (ordinal, binary), by a factor
#: of ~3 at an SD of 3 on the probit scale
_THETA_TRIALS = (0.7, 1.0, 1.5, 2.25, 3.4)


def _fixed_fit_start(resp, s, start, theta0, beta0, aux0):
    """``[(x, u0), ...]``: candidate starts of the batched Newton iterations (the one of lowest
    deviance is taken), or None where they should not run.

    Where the family has a fit without random effects (:meth:`~bayes_glmm.families.base.Family.fixed_start`;
    lme4 starts glmer from the glm fit) and the caller gave no start: that fit with theta at
    multiples (:data:`_THETA_TRIALS`) of the moment estimate from its one-step level effects
    (:func:`~bayes_glmm.ml.moment_start.theta_moment_start`), the fit moved to the conditional
    scale of a random intercept of that variance (:meth:`~bayes_glmm.families.base.Family.conditional_start`)
    and the modes one Newton step from 0.  On clmm's wine data (logit) 3 batches instead of 6
    from the defaults.  Otherwise the defaults (``u0`` None).  None where the moments put the
    variance at its bound (Newton's method would stop there: the bounded stages fit it).
    """
    x0 = np.concatenate([theta0, beta0, aux0])
    fam = resp.family
    if "beta" in start or "aux" in start or resp.X_disp is not None or resp.X_zi is not None:
        return [(x0, None)]
    fixed = fam.fixed_start(resp.y, resp.X, resp.offset, resp.pw)
    if fixed is None:
        return [(x0, None)]
    beta, aux = fixed
    mom = None
    if "theta" not in start:
        mom = theta_moment_start(with_aux(resp, aux_coords(fam, aux)), s, resp.offset + resp.X @ beta)
    if mom is None:
        return [(np.concatenate([theta0, beta, aux_coords(fam, aux)]), None)]
    theta, S, info = mom
    if theta == 0.0:
        return None
    out = []
    for t in theta * np.asarray(_THETA_TRIALS):
        b, a = fam.conditional_start(beta, aux, t * t) if np.all(s.Xr[0] == 1.0) else (beta, aux)
        out.append((np.concatenate([[t], b, aux_coords(fam, a)]), modes_start(t, S, info)))
    return out


def _batched_newton(resp, s, terms, slices, n_agq, starts, lower):
    """Newton's method on the deviance with each Hessian one batch of gradients
    (:func:`bayes_glmm.ml.newton_batch.newton_batched`), where :mod:`bayes_glmm.ml.batch_scalar`
    applies: Laplace from the start of lowest Laplace deviance among ``starts`` (``[(x, u0), ...]``,
    :func:`_fixed_fit_start`; evaluated in one batch), then for AGQ the AGQ deviance from the
    Laplace point.

    Returns ``(res, n_evals)``: ``res`` the last iteration's (``x``, ``fun``, ``g``, ``H``, ``u``
    at the point whose decrement passed) or None where Newton's method gave up or does not
    apply (the caller's bounded stages then run from the start as before).
    """
    def devgrads(k):
        return getattr(getattr(make_devgrad(resp, s, terms, slices, k, {"u": None}), "batch", None), "devgrads", None)

    batch = devgrads(1)
    if batch is None:
        return None, 0
    n = 0
    x0, u0 = starts[0]
    if len(starts) > 1:
        # the candidates' Laplace deviances in one batch: Newton starts from the lowest
        pts = np.array([x for x, _ in starts])
        ok = np.array([u is not None for _, u in starts])
        out = batch(pts, np.array([u for _, u in starts]), dev_only=True) if ok.all() else None
        n += len(starts)
        if out is not None and np.any(np.isfinite(out[0])):
            k = int(np.nanargmin(np.where(np.isfinite(out[0]), out[0], np.nan)))
            x0, u0 = starts[k][0], out[2][k]
    res = newton_batched(batch, x0, lower, margin=_NEWTON_MARGIN, u0=u0,
                         dec_stop=_BATCH_DEC_STOP if n_agq == 1 else _BATCH_DEC_STOP_AGQ_START)
    n += res["n_evals"]
    if res["converged"] and n_agq > 1:
        batch = devgrads(n_agq)
        if batch is None:
            return None, n
        state = {"u": res["u"], "pred": (res["x"], res["u"], res["du"])}
        x, u, k = _chord_steps(make_devgrad(resp, s, terms, slices, n_agq, state), state, res, lower)
        n += k
        # the AGQ gradient's points cost ~4x the Laplace one's (its nodes): forward differences
        # at a tenth of the step, half the points (about 1e-5 relative in the standard errors)
        res = newton_batched(batch, x, lower, margin=_NEWTON_MARGIN, dec_stop=_BATCH_DEC_STOP, u0=u,
                             central=False, delta=1e-5)
        n += res["n_evals"]
    return (res if res["converged"] else None), n


def fit_glmm(spec, n_agq: int = 1, *, start=None, stage1: bool = True, calc_vcov: bool = True,
             precondition: bool = True, maxiter: int = 1000, n_starts: int | None = None,
             random_seed: int = 0) -> MLFit:
    """Fit a GLMM by Laplace (``n_agq=1``) or adaptive Gauss-Hermite quadrature.

    Parameters
    ----------
    spec : ModelSpec
    n_agq : int
        1 for Laplace; > 1 for AGQ (single random-effects term only).
    start : dict, optional
        ``{"theta": ..., "beta": ..., "aux": ...}`` starting values (each key optional;
        ``aux`` is ``(beta_zi, a)`` for the families and models that have them, ``a`` one
        coordinate per auxiliary parameter of the family: the log of a positive one).
    stage1 : bool
        Run a first, loose stage (skipped when ``start`` gives both theta and beta): a
        Laplace fit in (theta, beta) where the analytic gradient applies, otherwise the
        theta-only fit with beta inside PIRLS.
    calc_vcov : bool
        Compute the finite-difference Hessian for ``vcov_beta`` (2 d gradient evaluations
        with the analytic gradient, else ~2 d^2 deviance evaluations; d = number of
        parameters).
    precondition : bool
        Whiten stage 2 with a finite-difference Hessian at its start (fewer iterations).  For
        a family with auxiliary parameters (Laplace, one start, no zero part) whose stage-1
        point lies inside the bounds, that Hessian is the central one the vcov needs and one
        Newton step from it ends the fit when its point passes the convergence check
        (:func:`_newton_from_stage1`); stage 2 runs otherwise.
    n_starts : int, optional
        Starting points of stage 2 (the stage-1 point, then drawn covariance parameters,
        see :func:`bayes_glmm.ml.optimize.multistart_points`); the best optimum is kept and
        a UserWarning names the others' log-likelihoods when they differ by > 1e-3.
        Default 1, or 3 where the likelihood is multimodal-prone
        (:func:`bayes_glmm.ml.optimize.multimodal_prone`).
    random_seed : int
        Seed of the extra starts and restarts (the fit is deterministic given it).

    Returns
    -------
    MLFit
        ``optimizer["optinfo"]`` holds the convergence record (see ``MLResults.optinfo``).
        Convergence is judged by the projected gradient and the Hessian at the end
        (:func:`bayes_glmm.ml.optimize.check_convergence`); a fit that fails it is restarted
        (from the boundary, lme4's start and a perturbed point) before being reported.
    """
    _agq.check_agq(spec, n_agq)
    check_aux_params(spec.family)
    terms = spec.terms
    resp = make_response(spec)
    s = linalg.build_structure(terms)
    slices, lower_t, theta0 = theta_layout(terms)
    theta_default = theta0.copy()
    extra_warnings = []
    tiny = laplace_tiny_groups_note(spec, resp) if n_agq == 1 else None
    if tiny is not None:
        extra_warnings.append(tiny)
        warnings.warn(tiny, UserWarning, stacklevel=user_stacklevel())
    start = dict(start or {})
    if "theta" in start:
        theta0 = np.asarray(start["theta"], dtype=float)
    beta0 = np.asarray(start["beta"], dtype=float) if "beta" in start else start_beta(resp)
    aux0 = np.asarray(start["aux"], dtype=float) if "aux" in start else start_aux(resp)
    nt, p, na = theta0.size, resp.X.shape[1], resp.n_aux
    ridged = 0
    messages = []
    n_evals = 0
    u0 = None
    seen = {}  # stage 1's last point (its modes, gradient), which the next stages start from
    use_grad = _agq.supports_gradient(resp, s, n_agq)
    grad1 = _agq.supports_gradient(resp, s, 1)  # Laplace stage 1 / preconditioner
    lower = np.concatenate([lower_t, np.full(p, -np.inf), _aux_lower(resp)])
    k, auto = resolve_n_starts(spec, n_starts)
    run_stage1 = stage1 and not ("theta" in start and "beta" in start and ("aux" in start or not resp.n_aux))
    batched = None
    if (run_stage1 and use_grad and precondition and calc_vcov and k == 1 and resp.general
            and resp.X_zi is None):
        # small one-term data where the gradient's points can be batched: Newton's method with
        # batched central-difference Hessians replaces both stages (3-4 batches on clmm's wine
        # data instead of ~18 sequential gradients and a Hessian); it gives up where the bounded
        # stages are needed
        starts = _fixed_fit_start(resp, s, start, theta0, beta0, aux0)
        batched, nh = (None, 0) if starts is None else _batched_newton(resp, s, terms, slices, n_agq, starts, lower)
        n_evals += nh
        if batched is not None:
            theta0, beta0, aux0 = _split(batched["x"], nt, p)
            u0 = batched["u"]
            messages.append(f"stage 1 ({'Laplace' if n_agq == 1 else f'Laplace, then AGQ({n_agq})'}): "
                            f"Newton with batched Hessians ({nh} points)")
            run_stage1 = False
    if run_stage1:
        if grad1:
            # with an analytic gradient a loose Laplace fit in (theta, beta, aux) is a cheaper
            # first stage than theta-only with finite differences (4-10x fewer PIRLS runs)
            st1 = {"u": None}
            Hs = info_scaling(resp, beta0, nt, na, aux0)
            if Hs is not None and not na:
                # badly scaled (huge counts): the least-squares start of beta can be many
                # standard errors off, a deviance of 1e10 whose first line search leaves
                # L-BFGS-B's memory useless for theta; start from the joint PIRLS modes at
                # theta0 instead (beta's conditional optimum, whatever the magnitude of y)
                pr0 = pirls(resp, s, lambdas_from_theta(theta0, terms, slices), beta0, joint=True)
                if pr0.converged and np.all(np.isfinite(pr0.beta)):
                    beta0, st1["u"] = pr0.beta, pr0.u
                    Hs = info_scaling(resp, beta0, nt, na, aux0)
            fg1 = make_devgrad(resp, s, terms, slices, 1, st1)
            opt1 = minimize_bounded(fg1, np.concatenate([theta0, beta0, aux0]),
                                    lower, ftol=1e-8, gtol=1e-4, jac=True, label="stage 1 (Laplace)",
                                    scale=Hs)
            # a first step can overshoot a variance to its bound, where the gradient in it
            # vanishes (the deviance is even there): look off the bound before stage 2
            opt1, _ = restart_off_boundary(fg1, opt1, lower, jac=True, label="stage 1 (Laplace)",
                                           step=np.concatenate([0.1 * np.minimum(theta_scales(terms), 1.0),
                                                                np.ones(p + na)]))
            if st1.get("last") is not None:
                fg1(opt1["x"])  # modes at the kept point
            theta0, beta0, aux0 = _split(opt1["x"], nt, p)
            u0 = st1["u"]
            seen = {k: st1[k] for k in ("modes_at", "devgrad_at") if k in st1}
        else:
            opt1, pr1 = _stage1(resp, s, terms, slices, lower_t, theta0, beta0, aux0)
            ridged = opt1.get("ridged", 0)
            theta0, aux0, beta0, u0 = opt1["x"][:nt], opt1["x"][nt:], pr1.beta, pr1.u
        n_evals += opt1["n_evals"]
        messages.append(opt1["message"])
    state = {"u": u0, "ridged": ridged, **seen}
    if batched is not None:
        # the modes' first-order prediction from the last batch's centre: the final Newton
        # step's PIRLS then starts within O(step^2) of its mode
        state["pred"] = (batched["x"], batched["u"], batched["du"])
    dev = make_deviance(resp, s, terms, slices, n_agq, state)
    fg = make_devgrad(resp, s, terms, slices, n_agq, state) if use_grad else None
    x0 = np.concatenate([theta0, beta0, aux0])
    method = "Laplace" if n_agq == 1 else f"AGQ({n_agq})"
    H0 = None
    newton = None
    if batched is not None:
        # the batched Newton iterations' last Hessian (of this deviance, at x0), and one step
        # unless x0 is already the optimum to well below the optimizer's tolerances
        H0 = batched["H"]
        if batched["decrement"] < _BATCH_DEC_DONE:
            newton = {"x": x0, "fun": float(batched["fun"]), "g": np.asarray(batched["g"], dtype=float),
                      "n_evals": 0, "grad_norm": float(np.max(np.abs(batched["g"]))), "converged": True,
                      "boundary_restart": None,
                      "message": f"stage 2 ({method}): the last batch's centre (Newton decrement "
                                 f"{batched['decrement']:.1e})"}
        else:
            newton, nh = _newton_finish(fg, x0, batched["fun"], batched["g"], H0, lower, method)
            n_evals += nh
    elif precondition:
        # whitening by the (cheaper, Laplace) Hessian at the stage-1 point; keep theta
        # off its bound so the central differences stay on the smooth side
        if (seen and n_agq == 1 and use_grad and calc_vcov and k == 1 and resp.general
                and resp.X_zi is None and _interior(x0, lower)):
            # stage 1 minimized this same deviance to a point inside the bounds: the central
            # Hessian taken there and one Newton step usually end the fit (2 d + 1 gradients
            # instead of d for the whitening, stage 2's and 2 d more at its end); if the step's
            # point fails the convergence check that Hessian whitens stage 2 as below
            newton, H0, nh = _newton_from_stage1(fg, x0, lower)
            n_evals += nh
        elif grad1:
            # forward differences (d + 1 gradients, not 2 d): whitening needs no more accuracy
            H0, nh = fd_hessian_pd(make_devgrad(resp, s, terms, slices, 1, {"u": u0, **seen}), x0, central=False)
            n_evals += nh
        else:
            lap = make_deviance(resp, s, terms, slices, 1, {"u": u0})
            H0 = fd_hessian(lap, x0, delta=1e-4)
            n_evals += 2 * x0.size ** 2 + 1
    obj = fg if use_grad else dev
    label2 = f"stage 2 ({method})"
    # probe 0.1 off a bound on the linear predictor's scale (a slope's theta of 0.1 is an SD
    # of 0.1 |x| there); plain 0.1 for intercepts
    bstep = np.concatenate([0.1 * np.minimum(theta_scales(terms), 1.0), np.ones(p + na)])

    def solve(xs, hess=H0):
        return solve_with_boundary(obj, xs, lower, terms, slices, step=bstep, label=label2, hess=hess,
                                   maxiter=maxiter, jac=use_grad)

    opts = ([newton] if newton is not None else
            [solve(xs) for xs in [x0] + multistart_points(x0, lower, nt, k, random_seed, theta_scales(terms))])
    best = int(np.argmin([o["fun"] for o in opts]))
    starts = report_starts([o["fun"] for o in opts], best, method) if k > 1 else None
    opt = dict(opts[best])
    opt["n_evals"] = sum(o["n_evals"] for o in opts)
    if auto:
        messages.append(f"{k} starts ({auto})")
    k_zi = 0 if resp.X_zi is None else resp.X_zi.shape[1]
    zi_plateau = None
    if k_zi:
        # a zi coefficient heading to -+infinity stops the search on a plateau: look for a
        # better interior optimum before believing the boundary
        opt, zi_plateau = escape_zi_plateau(solve, opt, resp.X_zi, nt + p)
        if zi_plateau is not None:
            messages.append("zero-inflation plateau: re-solved from interior starts (" + ", ".join(
                f"{nm}: logLik {ll:.4f}" for nm, ll in zip(zi_plateau["starts"], zi_plateau["logliks"]))
                + f"; kept {zi_plateau['kept']})")

    def curvature(xc):
        if newton is not None and np.array_equal(xc, newton["x"]):
            return newton["g"], H0, 0  # (_newton_from_stage1's gradient, its Hessian)
        # the Hessian the vcov needs anyway; its stencil gives the gradient for free
        if calc_vcov:
            if use_grad:
                Hc, nh = fd_hessian_pd(fg, xc)
                return fg(xc)[1], Hc, nh + 1
            if grad1:
                # AGQ without its own gradient: one Laplace gradient at xc leaves the modes'
                # derivative in ``state`` (make_devgrad's "pred"), so every stencil point's
                # PIRLS starts from the first-order prediction of its mode (one Newton step
                # fewer; the same converged modes).  Only a warm start: if it fails, none
                try:
                    make_devgrad(resp, s, terms, slices, 1, state)(xc)
                except (FloatingPointError, np.linalg.LinAlgError):
                    state.pop("pred", None)
            Hc, gc = fd_hessian(dev, xc, return_grad=True)
            return gc, Hc, 2 * xc.size ** 2 + 1 + int(grad1)
        if use_grad:
            return fg(xc)[1], None, 1
        return fd_gradient(dev, xc), None, 2 * xc.size

    default = np.concatenate([theta_default, start_beta(resp), start_aux(resp)])
    xmax = np.max(np.abs(resp.X), axis=0) if resp.X.shape[0] else np.zeros(p)

    def divergent(xc, Hc):
        # fixed effects running off to +-infinity: large on the link scale and the deviance
        # flat in them ((quasi-)separation); the optimum is at infinity in those coordinates.
        # Likewise zi coefficients along a flat direction of the zi part (zi_flat_directions).
        if Hc is None and not k_zi:
            return None
        out = separated_fixed(xc, Hc, nt, p, xmax) if Hc is not None else np.zeros(xc.size, dtype=bool)
        if k_zi:
            out[nt + p:nt + p + k_zi] = zi_boundary_mask(xc[nt + p:nt + p + k_zi], resp.X_zi)
        return out

    saturated = saturated_correlations(terms, slices, lower.size)

    opt, _, H, chk, restarts = optimize_checked(
        solve, curvature, opt, lower, lambda xc: restart_candidates(xc, lower, default=default, seed=random_seed),
        exclude=excluded_coordinates(divergent, saturated), fun=(lambda xc: fg(xc)[0]) if use_grad else dev)
    restart = opt.get("boundary_restart")
    n_evals += opt["n_evals"]
    messages.append(opt["message"])
    x = opt["x"]
    theta, beta, aux = _split(x, nt, p)
    lambdas = lambdas_from_theta(theta, terms, slices)
    if newton is not None and n_agq > 1 and np.array_equal(x, newton["x"]) and np.isfinite(newton["fun"]):
        # the AGQ deviance there is the Newton iterations' own (the same sum): only the modes
        # (their factor, for the conditional SDs) are evaluated again
        _modes(x, resp, s, terms, slices, nt, state)
        dev_hat = float(newton["fun"])
    else:
        dev_hat = dev(x)
    pr = state["last"]
    hessian_pd = True
    flags = divergent(x, H) if calc_vcov else None
    sep = None if flags is None else np.where(np.arange(x.size) < nt + p, flags, False)
    zi_at = np.zeros(k_zi, dtype=bool) if flags is None else flags[nt + p:nt + p + k_zi]
    if np.any(zi_at):
        zi_names = list(spec.zi_names)
        msg = zi_boundary_note([zi_names[j] for j in np.flatnonzero(zi_at)], aux[:k_zi][zi_at])
        extra_warnings.append(msg)
        warnings.warn(msg, UserWarning, stacklevel=user_stacklevel())
    if sep is not None and np.any(sep):
        names = [str(spec.fixed_names[j]) for j in np.flatnonzero(sep[nt:nt + p])]
        ests = ", ".join(f"{nm} = {beta[j]:.3g}" for nm, j in zip(names, np.flatnonzero(sep[nt:nt + p])))
        msg = (f"likely (quasi-)complete separation: the likelihood is flat in fixed effect(s) {ests} "
               f"(fitted values at the edge of the {resp.family.name} range; the estimates run off to "
               f"infinity and their SEs are reported as inf). Consider removing or recoding "
               f"{', '.join(repr(n) for n in names)}, or a Bayesian fit with proper priors (GLMM.sample)")
        extra_warnings.append(msg)
        warnings.warn(msg, UserWarning, stacklevel=user_stacklevel())
    elif state.get("ridged"):
        msg = (f"PIRLS needed a ridge on the fixed-effects system in {state['ridged']} evaluation(s): "
               f"some fixed effect is nearly unidentified at the weights (possible separation)")
        extra_warnings.append(msg)
    if calc_vcov and H is not None and saturated is not None and np.any(saturated(x)):
        H = pin_saturated(H, saturated(x))
    if calc_vcov and np.any(zi_at):
        vcov_all, hessian_pd = _vcov_flat(H, nt, sep, nt + p,
                                          zi_flat_directions(aux[:k_zi], resp.X_zi))
        vcov, vcov_aux = vcov_all[:p, :p], vcov_all[p:, p:]
        vcov_cross = vcov_all[:p, p:]
    elif calc_vcov:
        vcov_all, hessian_pd = vcov_without_separated(H, nt, sep)
        vcov, vcov_aux = vcov_all[:p, :p], vcov_all[p:, p:]
        vcov_cross = vcov_all[:p, p:]
    else:
        vcov, vcov_aux = np.full((p, p), np.nan), np.full((na, na), np.nan)
        vcov_cross = None
    if state.get("pirls_fail"):
        messages.append(f"PIRLS did not converge in {state['pirls_fail']} deviance evaluation(s)")
    b, b_sd, b_cov = modes_sds_covs(s, pr.factor, lambdas, pr.u)
    info = new_optinfo(chk, n_evals=n_evals, restarts=restarts, starts=starts, messages=messages,
                       extra_warnings=extra_warnings)
    optimizer = {"start": x0, "theta": theta, "n_evals": n_evals, "grad_norm": chk["max_abs_grad"],
                 "hessian_pd": bool(chk["hessian_pd"] if chk["hessian_pd"] is not None else hessian_pd),
                 "converged": chk["converged"], "messages": messages,
                 "deviance": dev_hat, "pirls_iters": pr.iters, "boundary_restart": restart, "optinfo": info}
    warn_nonconvergence(optimizer, method)
    return MLFit(beta=beta, theta=theta, sigma=None, lambdas=lambdas, b=b, b_sd=b_sd, vcov_beta=vcov, b_cov=b_cov,
                 loglik=-0.5 * dev_hat, n_params=p + nt + na, method=method, reml=False, n_agq=int(n_agq),
                 optimizer=optimizer, beta_zi=aux[:k_zi] if resp.X_zi is not None else None,
                 aux=_fitted_aux(resp, aux[k_zi:]) if resp.family.aux_params else None,
                 vcov_aux=vcov_aux if na else None, vcov_beta_aux=vcov_cross if na else None,
                 beta_disp=aux[k_zi:k_zi + resp.k_disp] if resp.X_disp is not None else None)


def _fitted_aux(resp, coord) -> dict:
    """The family's auxiliary parameters by name at the optimum: scalars, or with a
    dispersion formula the first one per row of the fitted data."""
    if resp.X_disp is not None:
        from .pirls import disp_natural

        return disp_natural(resp.family, resp.X_disp, coord)
    return aux_natural(resp.family, coord)


def zi_boundary_note(names, values) -> str:
    """The note (and warning) for zero-inflation coefficients at the boundary."""
    ests = ", ".join(f"{n} = {v:.3g}" for n, v in zip(names, values))
    return (f"zero-inflation coefficient(s) at the boundary: {ests} (P(zero-inflation) -> "
            f"{'0' if np.all(np.asarray(values) < 0) else '0 or 1'} for the rows they govern; the "
            f"likelihood is flat as they run off to infinity), so their SE, z and p are reported as NA "
            f"(as glmmTMB does); the other estimates and the logLik are those of the limit")


def _vcov_flat(H: np.ndarray, nt: int, sep, at: int, N_zi: np.ndarray):
    """``2 H^{-1}`` on the complement of the flat directions, mapped back.

    The flat directions are the separated fixed effects (``sep``, unit vectors; their
    variances are reported as inf, as :func:`fit_glmm` does without zi) and the zi boundary
    directions ``N_zi`` (columns in zi coefficient space starting at index ``at``; the
    coefficients they involve get NaN).  The inverse on the complement is the covariance
    with the estimate held at its limit along the flat directions, which keeps the other
    coefficients' SEs (including interior zi contrasts) finite and honest.
    """
    from scipy.linalg import null_space

    d = H.shape[0]
    cols = []
    if sep is not None:
        cols += [np.eye(d)[:, j] for j in np.flatnonzero(sep)]
    for j in range(N_zi.shape[1]):
        v = np.zeros(d)
        v[at:at + N_zi.shape[0]] = N_zi[:, j]
        cols.append(v)
    Q = null_space(np.column_stack(cols).T) if cols else np.eye(d)
    Hq = Q.T @ (0.5 * (H + H.T)) @ Q
    try:
        np.linalg.cholesky(Hq)
        V = Q @ np.linalg.inv(Hq) @ Q.T
        pd_ = True
    except np.linalg.LinAlgError:
        V = Q @ np.linalg.pinv(Hq) @ Q.T
        pd_ = False
    V = 2.0 * V[nt:, nt:]
    zi_bad = np.zeros(d, dtype=bool)
    zi_bad[at:at + N_zi.shape[0]] = np.max(np.abs(N_zi), axis=1) > 1e-8 if N_zi.shape[1] else False
    zi_bad = zi_bad[nt:]
    V[zi_bad, :] = np.nan
    V[:, zi_bad] = np.nan
    if sep is not None and np.any(sep):
        sb = np.flatnonzero(np.asarray(sep)[nt:])
        V[sb, :] = 0.0
        V[:, sb] = 0.0
        V[sb, sb] = np.inf
    return V, pd_


def separated_fixed(xc: np.ndarray, Hc: np.ndarray, nt: int, p: int, xmax: np.ndarray) -> np.ndarray:
    """Flags over ``x = (theta, beta, aux)`` of the fixed effects running off to +-infinity.

    Large on the link scale (``|beta_j| max|x_j| > 10``) and the deviance flat in them
    (``H_jj beta_j^2 < 1``): (quasi-)separation, whose optimum is at infinity in those coordinates.
    """
    out = np.zeros(xc.size, dtype=bool)
    bc, hd = xc[nt:nt + p], np.diag(Hc)[nt:nt + p]
    out[nt:nt + p] = (np.abs(bc) * xmax > 10.0) & (hd * bc * bc < 1.0)
    return out


def excluded_coordinates(divergent, saturated):
    """``exclude(xc, Hc)`` for :func:`~bayes_glmm.ml.optimize.optimize_checked`: the coordinates
    whose optimum is at infinity (``divergent(xc, Hc)``: separated fixed effects, flat zi
    directions; None when it has nothing to say) or correlations at +-1 (``saturated(xc)``, or
    None when no term has a correlation)."""
    def excluded(xc, Hc):
        out = divergent(xc, Hc)
        if saturated is None:
            return out
        sat = saturated(xc)
        return sat if out is None else (out | sat)
    return excluded


def pin_saturated(H: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A copy of ``H`` with the coordinates in ``mask`` decoupled (unit diagonal, zero elsewhere).

    A correlation at its boundary (parameter at +-inf, flat deviance) has a Hessian row that is
    ~0 or not finite; the vcov is then conditional on it, as on a variance at 0.
    """
    H = np.array(H, dtype=float)
    sat = np.flatnonzero(mask)
    H[sat, :] = 0.0
    H[:, sat] = 0.0
    H[sat, sat] = 1.0
    return H


def vcov_without_separated(H: np.ndarray, nt: int, sep) -> tuple[np.ndarray, bool]:
    """``(vcov of (beta, aux), hessian_pd)`` from the deviance Hessian, with separated fixed
    effects (flags ``sep`` over ``x``, or None) given infinite variance and left out of the rest."""
    if sep is None or not np.any(sep):
        return _vcov_from_hessian(H, nt)
    keep = np.flatnonzero(~sep)
    sub, hessian_pd = _vcov_from_hessian(H[np.ix_(keep, keep)], nt)
    vcov_all = np.zeros((H.shape[0] - nt, H.shape[0] - nt))
    kb = keep[keep >= nt] - nt
    vcov_all[np.ix_(kb, kb)] = sub
    d_ = np.flatnonzero(sep[nt:])
    vcov_all[d_, d_] = np.inf
    return vcov_all, hessian_pd


def _vcov_from_hessian(H: np.ndarray, nt: int):
    """``2 [H^{-1}]_beta`` (the deviance is -2 loglik); falls back to ``2 H_beta^{-1}``."""
    H = 0.5 * (H + H.T)
    try:
        np.linalg.cholesky(H)
        Hinv = np.linalg.inv(H)
        return 2.0 * Hinv[nt:, nt:], True
    except np.linalg.LinAlgError:
        Hb = H[nt:, nt:]
        warnings.warn("Hessian of the deviance in (theta, beta) is not positive definite (a variance "
                      "parameter at or near 0?); vcov of beta is conditional on theta", UserWarning, stacklevel=user_stacklevel())
        try:
            return 2.0 * np.linalg.inv(Hb), False
        except np.linalg.LinAlgError:
            return np.full(Hb.shape, np.nan), False

"""A Laplace-informed start for NUTS: the chains' starting points and initial diagonal metric.

The native sampler's default warm-up starts every chain at a random point (typical values of
the data + U(-1, 1) in every coordinate) with the unit metric, and Stan's windows learn the
scales from there.  With many random-effect levels that start is far from the typical set
in thousands of coordinates at once, and the first windows' trees are long (up to the maximum
depth), so the warm-up alone can cost more than the kept draws.  This module uses the Laplace
approximation of the posterior, on the sampler's own coordinates and with its own compiled
density, instead:

1. **scales** (the SDs of the random terms, scalar and ``||`` terms): the ML path's Laplace
   estimates (:func:`bayes_glmm.ml.fit_ml`, the marginal mode with the random effects
   integrated out; a joint mode would collapse centred terms' SDs to 0), floored at a tenth
   of the data's typical scale so a singular fit still starts inside the posterior.  From
   :data:`EM_TERMS` random terms on, a Laplace-EM on the compiled density instead
   (:func:`em_log_scales`): the ML path's sparse factorization of a crossed design costs
   minutes (155 s of a 173 s ``sample()`` call at 200,000 rows x 5,000 x 5,000 levels, 50 + 50
   iterations, under load) where the EM takes a few hundred gradients;
2. **conditional mode** of every other coordinate (fixed effects, random effects, the family's
   auxiliary parameters) at those scales, by L-BFGS on the compiled log-density;
3. **curvature** there, by central differences of the gradient: the exact diagonal of the
   Hessian for the random effects (the levels of one term never share a row, so perturbing one
   coefficient of *every* level of a term at once reads all their diagonal entries from one
   pair of gradients: ``2 x sum_t q_t`` gradients in all) and the full rows of the few other
   coordinates; the random effects' entries give their **per-level conditional variances**,
   the Schur complement ``H_ss - H_su diag(H_uu)^-1 H_us`` the marginal variances of the
   fixed effects and variance parameters;
4. **starts**: one draw per chain from the resulting normal approximation (mode + its SDs x
   N(0, 1), seeded from ``random_seed``), so a chain starts inside the typical set of the
   many random-effect coordinates, not at their mode.

The result only chooses where the chains start and the metric the warm-up begins from (each
window's variance estimate is shrunk towards it, ``csrc/nuts.c``); the density sampled is the
same, and so is the posterior (``tests/test_laplace_init.py``; the SBC of
``benchmarks/sbc.py --init laplace``).  Pure NumPy/SciPy around the compiled gradient.
"""
from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
from .layout import HIERARCHICAL, mode_of

__all__ = ["LaplaceStart", "laplace_start", "em_log_scales", "chain_starts", "resolve_init", "INITS", "AUTO_ROWS", "EM_TERMS"]

#: values of ``sample(init=...)`` (native sampler): ``"laplace"`` (this module), ``"random"``
#: (typical values + U(-1, 1), the unit metric: the sampler of earlier versions) or ``"auto"``
#: (:func:`resolve_init`)
INITS = ("auto", "laplace", "random")
#: ``init="auto"`` takes ``"laplace"`` from this many rows on.  Below it the ML fit and the
#: curvature (toenail, 1,908 rows: 0.8 s under load, against about 3 s for 4 x 2000 iterations)
#: cost more than the shorter warm-up saves; at 10^5 rows the Laplace start doubled the min
#: bulk ESS per second (benchmarks/results/bench_nuts_2026-12-07_laplace_init.txt)
AUTO_ROWS = 10_000


def resolve_init(init: str, spec) -> str:
    """``"laplace"`` or ``"random"`` for ``sample(init=init)``; ``"auto"`` is ``"laplace"``
    from :data:`AUTO_ROWS` rows on."""
    if init not in INITS:
        raise ValueError(f"init={init!r} is not one of {INITS}")
    if init == "auto":
        return "laplace" if spec.n >= AUTO_ROWS else "random"
    return init
#: L-BFGS iterations for the conditional mode (a start, not an estimate: a rough mode will do)
MAX_ITER = 200
#: from this many random terms on the start's scales come from :func:`em_log_scales`, not fit_ml
EM_TERMS = 2
#: EM rounds at most, and the change of every log-SD (in one round) below which they stop
EM_ROUNDS = 30
EM_TOL = 0.01
#: relative step of the central differences
FD_STEP = 1e-4


class LaplaceStart(NamedTuple):
    """The normal approximation NUTS starts from.

    Attributes
    ----------
    mode : ndarray (ndim,)
        The ML scales and the conditional mode of the other coordinates.
    inv_mass : ndarray (ndim,)
        Initial diagonal inverse metric: conditional variances of the random effects,
        Schur-complement (marginal) variances of the other coordinates.
    n_grad : int
        Gradients spent (optimization and curvature).
    """

    mode: np.ndarray
    inv_mass: np.ndarray
    n_grad: int


def _ml_log_scales(glmm, density, x0):
    """x0 with each scalar/``||`` term's scale coordinates at the ML (Laplace) estimate;
    ``None`` where the ML fit fails (the start then keeps the data's typical scales)."""
    x = x0.copy()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            covs = glmm.fit_ml().covs
    except Exception:  # noqa: BLE001 -- the ML fit is only a start: any failure keeps x0
        return x, False
    by_ident = {t.ident: c for t, c in zip(glmm.spec.terms, covs)}
    for t, scale, _eff, _cen, _ in density.terms:
        if t.ident in density.sd_index or scale.sl.stop - scale.sl.start != t.q:
            continue
        c = by_ident.get(t.ident)
        if c is None or np.shape(c) != (t.q, t.q):
            continue
        sd = np.sqrt(np.clip(np.diag(np.asarray(c, dtype=float)), 0.0, None))
        typical = np.exp(x0[scale.sl] / (2.0 if scale.name.startswith("var_") else 1.0))
        z = np.log(np.maximum(sd, 0.1 * typical))
        if np.all(np.isfinite(z)):
            x[scale.sl] = 2.0 * z if scale.name.startswith("var_") else z
    return x, True


def _fixed_coords(density) -> np.ndarray:
    """Indices held at their value during the conditional-mode search: the scale and
    correlation coordinates of the random terms (their joint mode is degenerate)."""
    idx = []
    for t, scale, _eff, _cen, _ in density.terms:
        idx.extend(range(scale.sl.start, scale.sl.stop))
        ch = density.corr.get(t.ident)
        if ch is not None:
            idx.extend(range(ch.sl.start, ch.sl.stop))
    return np.asarray(sorted(set(idx)), dtype=np.intp)


def _effect_groups(density):
    """Per term and coefficient k: the indices of that coefficient of every level."""
    out = []
    for t, _scale, eff, _cen, _ in density.terms:
        for k in range(t.q):
            out.append(np.arange(eff.sl.start + k, eff.sl.stop, t.q, dtype=np.intp))
    return out


def laplace_start(glmm, density, logp_grad, *, use_ml: bool = True) -> LaplaceStart:
    """The Laplace approximation NUTS starts from (module docstring).

    Parameters
    ----------
    glmm : GLMM
        The model (its ``fit_ml`` gives the scales).
    density : GlmmDensity
        The sampler's coordinates (:class:`bayes_glmm.bayes.density.GlmmDensity`).
    logp_grad : callable
        ``x -> (log-density, gradient)`` on those coordinates (the compiled one).
    use_ml : bool
        Take the scales from ``fit_ml`` (default); else keep the data's typical scales.

    Returns
    -------
    LaplaceStart
    """
    n = density.ndim
    x0 = density.initial_point(0, logp_grad)
    effects = _effect_groups(density)
    eff_idx = np.concatenate(effects) if effects else np.zeros(0, dtype=np.intp)
    x0[eff_idx] = 0.0  # the random effects' prior mean, not the jittered start
    held = _fixed_coords(density)
    free = np.setdiff1d(np.arange(n), held)
    calls = [0]
    if use_ml and len(density.terms) >= EM_TERMS:
        x0 = em_log_scales(density, x0, logp_grad, free, calls)
    elif use_ml:
        x0, _ = _ml_log_scales(glmm, density, x0)

    mode = _conditional_mode(x0, free, logp_grad, calls)
    inv_mass = _curvature(mode, logp_grad, effects, eff_idx, held, calls)
    _scale_variances(density, mode, inv_mass)
    return LaplaceStart(mode, inv_mass, calls[0])


def _scale_terms(density):
    """The terms whose scale coordinates the start sets: one SD (or variance) per coefficient."""
    return [(ti, t, scale, eff) for ti, (t, scale, eff, _cen, _) in enumerate(density.terms)
            if t.ident not in density.sd_index and scale.sl.stop - scale.sl.start == t.q]


def _conditional_mode(x, free, logp_grad, calls, max_iter=MAX_ITER) -> np.ndarray:
    """``x`` with the ``free`` coordinates at the mode of the log-density given the others
    (L-BFGS from ``x``)."""
    def negf(z):
        y = x.copy()
        y[free] = z
        lp, g = logp_grad(y)
        calls[0] += 1
        if not np.isfinite(lp):
            return np.inf, np.zeros_like(z)
        return -lp, -g[free]

    out = x.copy()
    if free.size:
        with np.errstate(all="ignore"):
            out[free] = lbfgs(negf, x[free], max_iter)
    return out


def _effect_curvature(x, logp_grad, effects, calls) -> np.ndarray:
    """The diagonal of the Hessian of -logp in the random effects' coordinates at ``x`` (NaN
    elsewhere): one pair of gradients per term and coefficient (the levels of a term never
    share a row, so one coefficient of every level moves at once)."""
    h = FD_STEP * np.maximum(1.0, np.abs(x))
    d = np.full(x.size, np.nan)
    for idx in effects:
        xp, xm = x.copy(), x.copy()
        xp[idx] += h[idx]
        xm[idx] -= h[idx]
        (lp1, g1), (lp2, g2) = logp_grad(xp), logp_grad(xm)
        calls[0] += 2
        if np.isfinite(lp1) and np.isfinite(lp2):
            d[idx] = -(g1[idx] - g2[idx]) / (2.0 * h[idx])
    return d


def em_log_scales(density, x0, logp_grad, free, calls) -> np.ndarray:
    """``x0`` with the scale coordinates of every scalar/``||`` term at a Laplace-EM estimate,
    and the ``free`` coordinates at their conditional mode there.

    Each round: the conditional mode of the effects and fixed effects at the current scales
    (L-BFGS on the compiled density, from the last round's mode), the effects' conditional
    variances from the diagonal of the Hessian there, and the EM update of each SD,
    ``sd_k^2 = mean_j (b_jk^2 + Var(b_jk))`` (``b`` the level's effects, linear in its
    coordinates at fixed scales: ``Var(b_jk) = sum_m (db_jk/du_jm)^2 v_jm``), until no log-SD
    moves by :data:`EM_TOL` (at most :data:`EM_ROUNDS` rounds).  The fixed point is that of the
    Laplace approximation of the marginal likelihood up to the cross-covariances of the
    levels, which the diagonal leaves out: a start, not an estimate.  Each SD is floored at a
    tenth of the data's typical scale (as the ML scales, :func:`_ml_log_scales`), so a term the
    data say little about starts inside the posterior, not at 0.
    """
    terms = _scale_terms(density)
    x = x0.copy()
    if not terms:
        return x
    effects = _effect_groups(density)
    floor = {ti: np.log(0.1) + x0[scale.sl] / (2.0 if scale.name.startswith("var_") else 1.0)
             for ti, t, scale, eff in terms}
    for _ in range(EM_ROUNDS):
        x = _conditional_mode(x, free, logp_grad, calls)
        d = _effect_curvature(x, logp_grad, effects, calls)
        v = np.where(np.isfinite(d) & (d > 0), 1.0 / np.where(d > 0, d, 1.0), 0.0)
        parts = density._effects(x)[1]
        moved = 0.0
        for ti, t, scale, eff in terms:
            q, base = t.q, parts[ti].bval
            var = np.zeros_like(base)
            for m in range(q):  # the effects are linear in the coordinates: exact differences
                xp = x.copy()
                xp[eff.sl.start + m:eff.sl.stop:q] += 1.0
                var += (density._effects(xp)[1][ti].bval - base) ** 2 * v[eff.sl.start + m:eff.sl.stop:q, None]
            with np.errstate(all="ignore"):
                z = np.maximum(0.5 * np.log(np.mean(base * base + var, axis=0)), floor[ti])
            if not np.all(np.isfinite(z)):
                continue
            new = 2.0 * z if scale.name.startswith("var_") else z
            moved = max(moved, float(np.max(np.abs(new - x[scale.sl]))))
            x[scale.sl] = new
        if moved < EM_TOL:
            break
    return x


def _dot(a, b) -> float:
    """``a @ b`` of two vectors without BLAS: OpenBLAS's threaded ddot spins on a loaded
    machine (measured 5 s for 30 iterations at 50,000 coordinates under load)."""
    return float(np.sum(a * b))


def lbfgs(fg, x, max_iter: int, m: int = 8, gtol: float = 1e-6) -> np.ndarray:
    """Minimize ``fg(x) -> (value, gradient)`` by L-BFGS with a backtracking (Armijo) line
    search; returns the best point found.

    SciPy's L-BFGS-B spends about 40 ms per iteration of its own on 50,000 coordinates (its
    bound handling), more than the model's gradient; this loop is a few vector operations.
    """
    f, g = fg(x)
    if not np.isfinite(f):
        return x
    S, Y = [], []
    for _ in range(max_iter):
        if np.max(np.abs(g)) <= gtol * max(1.0, abs(f)):
            break
        # two-loop recursion: d = -H g
        q, al = g.copy(), []
        for s_, y_ in zip(reversed(S), reversed(Y)):
            a = _dot(s_, q) / _dot(y_, s_)
            al.append(a)
            q -= a * y_
        q *= _dot(S[-1], Y[-1]) / _dot(Y[-1], Y[-1]) if S else 1.0 / max(1.0, np.max(np.abs(g)))
        for (s_, y_), a in zip(zip(S, Y), reversed(al)):
            q += (a - _dot(y_, q) / _dot(y_, s_)) * s_
        d = -q
        slope = _dot(g, d)
        if not slope < 0:  # not a descent direction: restart from the gradient
            S, Y = [], []
            d, slope = -g / max(1.0, np.max(np.abs(g))), -_dot(g, g) / max(1.0, np.max(np.abs(g)))
        t = 1.0
        for _ in range(30):
            f1, g1 = fg(x + t * d)
            if np.isfinite(f1) and f1 <= f + 1e-4 * t * slope:
                break
            t *= 0.5
        else:
            break
        s_, y_ = t * d, g1 - g
        if _dot(s_, y_) > 1e-12 * np.sqrt(_dot(s_, s_) * _dot(y_, y_)):
            S.append(s_)
            Y.append(y_)
            if len(S) > m:
                S.pop(0)
                Y.pop(0)
        done = abs(f - f1) <= 1e-10 * max(1.0, abs(f))
        x, f, g = x + s_, f1, g1
        if done:
            break
    return x


def _scale_variances(density, mode, inv) -> None:
    """Initial metric of the scale coordinates (in place): ``1 / (2 sum_j kappa_j^2)``, the
    Fisher information about a log-SD from its levels, ``kappa_j = 1 - v_j / v0_j`` the
    shrinkage of level j (``v_j`` its conditional variance, ``v0_j`` its prior one), doubled
    for a log-variance coordinate; at most 1.

    The curvature at the conditional mode is no guide here: along ``sd * u = const`` the joint
    density of the non-centred coordinates is nearly flat, so its Schur complement overstates
    the log-SD's variance by orders of magnitude (measured: 1 against 0.004 on 10^4 groups).
    """
    for t, scale, eff, cen, _ in density.terms:
        if t.ident in density.sd_index or scale.sl.stop - scale.sl.start != t.q:
            continue
        is_var = scale.name.startswith("var_")
        sd = np.exp(mode[scale.sl] / (2.0 if is_var else 1.0))
        v = inv[eff.sl].reshape(t.n_levels, t.q)
        if t.ident in density.corr or not mode_of(cen):
            v0 = np.ones_like(v)
        elif mode_of(cen) == HIERARCHICAL:  # hierarchical: z = (c - a) / s, prior SD sd / s
            s = np.asarray(density.level_scales[t.ident][1], dtype=float).reshape(-1, 1)
            v0 = (sd.reshape(1, -1) / s) ** 2 * np.ones_like(v)
        else:  # centred: b ~ N(0, sd^2)
            v0 = np.broadcast_to(sd.reshape(1, -1) ** 2, v.shape)
        kappa = np.clip(1.0 - v / v0, 0.0, 1.0)
        info = 2.0 * np.sum(kappa ** 2, axis=0)
        var = np.minimum(1.0, 1.0 / np.maximum(info, 1e-12)) * (4.0 if is_var else 1.0)
        inv[scale.sl] = np.where(np.isfinite(var), var, 1.0)


def _curvature(mode, logp_grad, effects, eff_idx, held, calls) -> np.ndarray:
    """Initial inverse metric at ``mode`` from central differences of the gradient (step 3
    of the module docstring); 1 where the curvature is not positive or not finite."""
    n = mode.size
    h = FD_STEP * np.maximum(1.0, np.abs(mode))

    def dgrad(idx):
        """(-grad(x + h e_idx) + grad(x - h e_idx)) / (2 h): the Hessian of -logp times e_idx."""
        xp, xm = mode.copy(), mode.copy()
        xp[idx] += h[idx]
        xm[idx] -= h[idx]
        (lp1, g1), (lp2, g2) = logp_grad(xp), logp_grad(xm)
        calls[0] += 2
        if not (np.isfinite(lp1) and np.isfinite(lp2)):
            return None
        return g1, g2

    inv = np.ones(n)
    d_uu = _effect_curvature(mode, logp_grad, effects, calls)
    # the fixed effects and the family's parameters; the scales are set apart (_scale_variances)
    small = np.setdiff1d(np.arange(n), np.concatenate([eff_idx, held]))
    H = np.full((small.size, n), np.nan)  # rows of the Hessian of -logp at the small coordinates
    for i, j in enumerate(small):
        r = dgrad(np.asarray([j]))
        if r is not None:
            H[i] = -(r[0] - r[1]) / (2.0 * h[j])
    ok_u = np.isfinite(d_uu[eff_idx]) & (d_uu[eff_idx] > 0)
    inv[eff_idx[ok_u]] = 1.0 / d_uu[eff_idx[ok_u]]
    if small.size:
        H_ss = 0.5 * (H[:, small] + H[:, small].T)
        H_su = H[:, eff_idx[ok_u]]
        P = H_ss - (H_su / d_uu[eff_idx[ok_u]]) @ H_su.T if ok_u.any() else H_ss
        var = None
        if np.all(np.isfinite(P)):
            try:
                C = np.linalg.inv(np.linalg.cholesky(P))
                var = np.sum(C * C, axis=0)  # diag(P^-1) = column sums of squares of L^-1
            except np.linalg.LinAlgError:
                var = None
        if var is None:  # not positive definite (far from a mode): the diagonal alone
            dg = np.diag(H_ss)
            var = np.where(np.isfinite(dg) & (dg > 0), 1.0 / np.where(dg > 0, dg, 1.0), 1.0)
        good = np.isfinite(var) & (var > 0)
        inv[small[good]] = var[good]
    return inv


def chain_starts(start: LaplaceStart, chains: int, seed: int, logp_grad, jitter: float = 1.0) -> list:
    """One starting point per chain: a draw from N(mode, diag(inv_mass)) (``jitter`` x its
    SDs), halved towards the mode until the log-density and gradient are finite.

    Chain ``c`` uses ``SeedSequence(seed).spawn(chains)[c]``'s sibling stream
    ``SeedSequence([seed, c, 1])``: the same seed gives the same starts.
    """
    sd = np.sqrt(start.inv_mass)
    out = []
    for c in range(chains):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed) % (2 ** 63), c, 1]))
        z = rng.standard_normal(start.mode.size)
        s = float(jitter)
        for _ in range(10):
            x = start.mode + s * sd * z
            lp, g = logp_grad(x)
            if np.isfinite(lp) and np.all(np.isfinite(g)):
                break
            s *= 0.5
        else:
            x = start.mode.copy()
        out.append(x)
    return out

"""Data diagnostics that the ML and the Bayesian paths share.

Pure functions of the model matrix, the response and the :class:`bayes_glmm.spec.model_spec.ModelSpec`
(NumPy and SciPy only); none of them fits anything.  Each problem found is a
:class:`Finding`; :func:`check_spec` runs every check and returns the list, for the caller
to act on (the ML path warns or refuses as lme4 would; NUTS can say that a prior bounds a
parameter the likelihood leaves unbounded).

Checks
------
:func:`separation`
    Complete and quasi-complete separation of a binary or binomial response by the fixed
    effects, found by linear programming (Konis 2007; the ``detectseparation`` R package):
    with margins ``m_i(b) = s_i x_i'b`` (``s_i = +1`` for a success, ``-1`` for a failure),
    the LP ``max sum_i m_i(b)  s.t.  m_i(b) >= 0`` is unbounded exactly when some direction
    ``b != 0`` never decreases the likelihood, i.e. when the maximum-likelihood estimate is
    infinite.  A binomial row with ``0 < y < n`` holds a success and a failure, so its
    margin must be 0 (such rows cannot be separated).  In a GLMM the same direction raises
    every conditional likelihood for every value of the random effects, so separation by
    the fixed effects alone already makes the marginal MLE infinite.
:func:`constant_response`
    All-zero / all-one binary data, all-zero (or all-``n``) binomial data, all-zero counts,
    a constant continuous response.
:func:`levels_vs_observations`
    lme4's ``checkNlevels`` / ``checkZdims``: a grouping factor with as many levels as
    observations (``lmer``: "number of levels of each grouping factor must be < number of
    observations"), a term with at least as many random effects as observations, a
    grouping factor with a single level.
:func:`improper_posterior`
    Given the priors: a separating direction (or a constant response) that moves only
    coefficients with improper priors (``Flat``) makes the posterior improper -- no prior
    bounds what the likelihood leaves unbounded.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy.optimize import linprog

from ..families import Family, get_family

__all__ = [
    "Finding",
    "SeparationResult",
    "separation",
    "constant_response",
    "levels_vs_observations",
    "check_spec",
    "improper_posterior",
    "IMPROPER_PRIORS",
]

@dataclass(frozen=True)
class Finding:
    """One problem found in the data.

    Attributes
    ----------
    kind : str
        ``"complete_separation"``, ``"quasi_complete_separation"``, ``"constant_response"``,
        ``"levels_vs_observations"``, ``"random_effects_vs_observations"`` or
        ``"single_level"``.
    message : str
        One sentence for a warning or an error.
    columns : tuple of str
        The model-matrix columns (separation, constant response) or grouping factors /
        term names (the level checks) concerned.
    severity : str
        ``"error"`` where lme4 refuses to fit (``lmer``/``glmer`` stop), ``"warning"`` otherwise.
    details : dict
        Check-specific extras, e.g. ``directions`` ({column: +1 or -1, 0 when either sign
        is possible}) and ``n_separated`` for separation; ``n_levels`` and ``n_obs`` for
        the level checks.
    """

    kind: str
    message: str
    columns: tuple = ()
    severity: str = "warning"
    details: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class SeparationResult:
    """What :func:`separation` found.

    Attributes
    ----------
    separated : bool
        True when the maximum-likelihood estimate of some coefficient is infinite.
    complete : bool
        True for complete separation (every observation perfectly predicted: some ``b`` has
        every margin > 0); False for quasi-complete separation or none.
    directions : dict
        ``{column: +1 | -1 | 0}`` for the columns whose estimate is infinite: the sign the
        estimate diverges to (0 when directions of both signs exist).  Empty when not separated.
    n_separated : int
        Number of observations (rows) perfectly predicted along the divergence direction.
    direction : ndarray (p,)
        A direction of divergence (in the columns' own units) with the largest set of
        perfectly predicted rows; zeros when not separated.
    """

    separated: bool
    complete: bool
    directions: dict
    n_separated: int
    direction: np.ndarray

    @property
    def columns(self) -> tuple:
        """Names of the columns whose estimates are infinite."""
        return tuple(self.directions)

    @property
    def kind(self) -> str:
        """``"complete"``, ``"quasi-complete"`` or ``"none"``."""
        return "complete" if self.complete else ("quasi-complete" if self.separated else "none")

    def finding(self) -> Finding | None:
        """The :class:`Finding` to report, or None when there is no separation."""
        if not self.separated:
            return None
        parts = []
        for name, d in self.directions.items():
            parts.append(f"{name} -> {'+inf' if d > 0 else '-inf' if d < 0 else '+-inf'}")
        what = "complete separation" if self.complete else "quasi-complete separation"
        msg = (f"{what} of the response by the fixed effects: the maximum-likelihood "
               f"estimates of {', '.join(parts)} are infinite "
               f"({self.n_separated} observation(s) perfectly predicted)")
        kind = "complete_separation" if self.complete else "quasi_complete_separation"
        return Finding(kind, msg, self.columns, "warning",
                       {"directions": dict(self.directions), "n_separated": self.n_separated})


def _margin_rows(y, trials, weights):
    """Signed rows for the LP: (row index, sign) of inequalities and indices of equalities."""
    y = np.asarray(y, dtype=float)
    n = len(y)
    use = np.ones(n, dtype=bool)
    if weights is not None:
        use &= np.asarray(weights, dtype=float) > 0
    if trials is None:
        if not np.all(np.isin(y[use], (0.0, 1.0))):
            raise ValueError("separation: a response without trials must be 0/1")
        succ, fail = (y == 1) & use, (y == 0) & use
        mixed = np.zeros(n, dtype=bool)
    else:
        t = np.asarray(trials, dtype=float)
        if t.shape != y.shape:
            raise ValueError("separation: trials must have the shape of y")
        if np.any((y < 0) | (y > t)):
            raise ValueError("separation: need 0 <= y <= trials")
        use &= t > 0
        succ = use & (y == t)
        fail = use & (y == 0)
        mixed = use & (y > 0) & (y < t)
    return succ, fail, mixed


#: seed of the random row order in which :func:`separation` screens nested subsets (fixed, so
#: the check is deterministic; it never touches NumPy's global generator)
_SCREEN_SEED = 20261207
#: sizes of the nested random subsets screened for overlap before any LP over every row; one
#: is enough: past it, constraint generation adds the rows that matter instead of random ones
#: (a 10,000-row screen cost more than it saved at 10^4 to 10^6 rows, separated or not)
_SCREEN_ROWS = (1_000,)
#: rows the LPs over every row start from (the first of the random order), and the least
#: they add per round of constraint generation
_WORK_ROWS = 500
#: seconds HiGHS may run before control returns to Python (where Ctrl-C is acted on); an LP
#: that needs longer is restarted with twice the limit
_LP_SLICE = 0.25
#: a row outside the working set violates the cone when its margin is below -_CUT
_CUT = 1e-9


def _highs(c, **kw):
    """``linprog(method="highs")`` in time slices.

    HiGHS runs in C++ and does not look at signals, so a single long solve would hold up
    Ctrl-C until it ends.  Each call gets ``_LP_SLICE`` seconds (doubling on every
    restart); Python acts on a pending KeyboardInterrupt between calls, and nothing keeps
    running after this returns or raises (HiGHS starts no threads here).
    """
    limit = _LP_SLICE
    while True:
        r = linprog(c, method="highs", options={"time_limit": limit}, **kw)
        if r.status != 1:  # 1: the time limit was reached (no iteration limit is set)
            return r
        limit *= 2.0


def _overlap(S, E) -> bool:
    """Stiemke's lemma on signed rows ``S`` (margins >= 0) and zero-margin rows ``E``: True
    when some ``w > 0`` (and free ``v``) has ``S'w + E'v = 0``, i.e. no direction ``b`` has
    ``S b >= 0``, ``S b != 0`` and ``E b = 0`` -- the rows overlap (no separation)."""
    if not len(S):
        return True
    r = _highs(np.zeros(len(S) + len(E)), A_eq=np.hstack([S.T, E.T]), b_eq=np.zeros(S.shape[1]),
               bounds=[(1.0, None)] * len(S) + [(None, None)] * len(E))
    return r.status == 0


def _row_space(A) -> np.ndarray:
    """Orthonormal basis (rows) of the row space of A, with :func:`_null_space`'s tolerance."""
    n, p = A.shape
    if n == 0:
        return np.zeros((0, p))
    _, s, vh = np.linalg.svd(A, full_matrices=False)
    tol = max(n, p) * np.finfo(float).eps * (s[0] if s.size else 0.0)
    return vh[:int(np.sum(s > tol))]


def separation(X, y, names: Sequence[str] | None = None, trials=None, *, weights=None,
               tol: float = 1e-7) -> SeparationResult:
    """Detect complete or quasi-complete separation of a binary / binomial response.

    Parameters
    ----------
    X : array-like (n, p)
        Fixed-effects model matrix.
    y : array-like (n,)
        0/1 response, or successes when ``trials`` is given.
    names : sequence of str, optional
        Column names (default ``"x0"``, ``"x1"``, ...).
    trials : array-like (n,), optional
        Binomial trials.  Rows with ``0 < y < trials`` have a success and a failure and
        therefore a zero margin; rows with ``trials == 0`` are ignored.
    weights : array-like (n,), optional
        Prior weights; rows with weight 0 are ignored.
    tol : float
        Tolerance on the LP solutions (columns are scaled to max |x| = 1 first).

    Returns
    -------
    SeparationResult

    Notes
    -----
    Whether there is separation at all is a feasibility LP (Stiemke's lemma: no direction
    ``b`` with every margin ``>= 0`` and some ``> 0`` exists iff ``S'w = 0`` for some
    ``w > 0``, S the signed rows).  It is first tried on a random subset of the rows
    (``_SCREEN_ROWS``: 1,000; a fixed seed, so the answer is deterministic): overlap in a subset
    whose design has the rank of the whole design proves overlap in all rows, since any
    direction that separates all rows has margins ``>= 0`` on the subset, hence all zero
    there (the subset overlaps), hence ``X_R b = 0``, so ``b`` is in the null space of the
    whole design and separates nothing.  The rank condition matters: a rare factor level
    missing from the subset leaves its column free there, and separation by that level
    would go unseen.  Mixed binomial rows only add ``x_i'b = 0`` constraints, which the
    subset keeps, so the argument holds for them too.  Only "no separation" is ever
    concluded from a subset.

    Otherwise the LP of Konis (2007), ``max sum_i s_i x_i'b`` subject to ``s_i x_i'b >= 0``,
    is solved with ``-1 <= b_j <= 1`` (columns scaled), so that "unbounded" reads as an
    optimum > 0.  A column's estimate is infinite when some direction in the cone
    ``{b : s_i x_i'b >= 0}`` (with the null space of X removed) has ``b_j != 0``; that is
    decided by maximizing and minimizing ``b_j`` over the cone, two LPs per column, and
    the direction reported averages those solutions (a point in the relative interior of
    the cone, so it perfectly predicts the largest set of rows).  Most of those LPs have
    known answers and are skipped: the rows with margin 0 on the whole cone are proved so
    by maximizing their summed margin (usually one LP); the cone then spans the subspace
    ``L`` where their margins vanish, so a column orthogonal to ``L`` has ``b_j = 0`` on
    the cone (both LPs skipped); a one-dimensional ``L`` makes the cone a ray, whose
    maxima and minima are read off; a side already reached by a solution needs no LP; and
    complete separation is impossible when some row is never predicted.  Complete separation:
    some ``b`` in the box has every margin ``>= t > 0``.  Each of these LPs is solved by
    constraint generation: on a working set of rows (500 of the random order), then again
    with the rows the solution violates added, until it violates none -- then it is optimal
    for all rows, and the LPs stay small however many rows there are.  HiGHS runs in
    time slices (:func:`_highs`), so Ctrl-C is acted on within a fraction of a second.

    References
    ----------
    Konis, K. (2007). Linear programming algorithms for detecting separated data in binary
    logistic regression models. DPhil thesis, University of Oxford.
    Kosmidis, I. & Schumacher, D. detectseparation: Detect and Check for Separation and
    Infinite Maximum Likelihood Estimates (R package).
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError("separation: X must be 2-D")
    n, p = X.shape
    names = tuple(names) if names is not None else tuple(f"x{j}" for j in range(p))
    if len(names) != p:
        raise ValueError(f"separation: {len(names)} names for {p} columns")
    succ, fail, mixed = _margin_rows(y, trials, weights)
    none = SeparationResult(False, False, {}, 0, np.zeros(p))
    if p == 0 or not (succ.any() or fail.any()):
        return none

    scale = np.max(np.abs(X), axis=0)
    scale[scale == 0] = 1.0
    used = np.flatnonzero(succ | fail | mixed)
    Xu = X if len(used) == n else X[used]  # no copy of X when every row counts
    sgn = (succ.astype(float) - fail)[used]  # +1 success, -1 failure, 0 mixed binomial row
    mix = mixed[used]
    n_signed = int(np.count_nonzero(sgn))

    def margins(b):  # s_i x_i'b (scaled columns) on every used row; 0 on the mixed rows
        return sgn * (Xu @ (b / scale))

    # 1. overlap in a nested random subset with the design's rank: no separation
    order = np.random.default_rng(_SCREEN_SEED).choice(len(used), size=min(len(used), _SCREEN_ROWS[-1]),
                                                       replace=False)
    null = None  # null space of the whole (scaled) design
    for m in _SCREEN_ROWS:
        R = np.sort(order[:m])
        XR = Xu[R] / scale
        null_R = _null_space(XR)
        if null is None:  # the first subset of full rank shows that the whole design has it
            null = null_R if not null_R.shape[1] else _null_space(Xu / scale)
        s = sgn[R] != 0
        if _overlap(XR[s] * sgn[R][s, None], XR[mix[R]]) and null_R.shape[1] == null.shape[1]:
            return none
        if m >= len(used):
            break

    # 2. the LPs over every row, by constraint generation from 500 random rows (one working
    # set, shared: the rows one LP needed often bind the next)
    eq = np.vstack([_row_space(Xu[mix] / scale), null.T])
    A_eq = eq if len(eq) else None
    in_work = np.zeros(len(used), dtype=bool)
    in_work[order[:_WORK_ROWS]] = True
    in_work &= sgn != 0

    def lp(c, with_t=False):
        """max -c'(b, t) over the cone (margins >= t) and the box; the working set grows
        by its own size (at least _WORK_ROWS) of the most violated rows at a time."""
        bounds = [(-1.0, 1.0)] * p + [(0.0, 1.0)] * int(with_t)
        Aeq = None if A_eq is None else np.hstack([A_eq, np.zeros((len(A_eq), int(with_t)))])
        while True:
            idx = np.flatnonzero(in_work)
            A = -(Xu[idx] / scale) * sgn[idx, None]  # -m_i (+ t) <= 0
            if with_t:
                A = np.hstack([A, np.ones((len(idx), 1))])
            r = _highs(c, A_ub=A if len(idx) else None, b_ub=np.zeros(len(idx)) if len(idx) else None,
                       A_eq=Aeq, b_eq=None if Aeq is None else np.zeros(len(Aeq)), bounds=bounds)
            if r.status != 0:  # the feasible set always contains b = 0 and is bounded
                raise RuntimeError(f"separation: linear program failed: {r.message}")
            slack = margins(r.x[:p]) - (r.x[p] if with_t else 0.0)
            bad = np.flatnonzero((slack < -_CUT) & ~in_work & (sgn != 0))
            if not bad.size:
                return r
            k = max(_WORK_ROWS, len(idx))
            if bad.size > k:
                bad = bad[np.argpartition(slack[bad], k)[:k]]
            in_work[bad] = True

    b0 = lp(-(sgn @ Xu) / scale).x
    if float(np.sum(margins(b0))) <= tol * max(1, n_signed):
        return none

    # the rows no direction in the cone predicts (margin 0 on all of it): until a solution
    # shows none of the rows still unaccounted for can be positive, maximize their summed
    # margin (usually one LP; each round adds positive rows or ends)
    sols = [b0]
    pos = margins(b0) > tol
    while True:
        rest = ~pos & (sgn != 0)
        if not rest.any():
            break
        br = lp(-((sgn * rest) @ Xu) / scale).x
        new_pos = (margins(br) > tol) & rest
        if not new_pos.any():
            break
        sols.append(br)
        pos |= new_pos
    zero = ~pos & (sgn != 0)
    # the cone spans L = {b : zero rows' margins = 0, the equalities}: its relative interior
    # (a point of sols' mean) is positive on every other row, so b_j is identically 0 on the
    # cone exactly when e_j is orthogonal to L -- both LPs of such a column would return
    # b_j = 0, and are skipped; a side some solution already reaches needs no LP either
    # L from the zero rows of the screened subset when every zero row is (by the SVD's
    # tolerance) orthogonal to it -- one product with all rows instead of a QR of them
    n_az = int(zero.sum()) + len(eq)
    sub = np.vstack([Xu[order[zero[order]]] / scale, eq])
    _, sv, vh = np.linalg.svd(sub, full_matrices=len(sub) < p)
    cut = max(n_az, p) * np.finfo(float).eps * (sv[0] if sv.size else 0.0)
    span = vh[int(np.sum(sv > cut)):].T
    if span.shape[1] and (not sv.size or np.linalg.norm(((Xu @ (span / scale[:, None])) * zero[:, None]), axis=0).max() > cut):
        Az = Xu[zero] / scale
        Az = np.vstack([Az, eq]) if len(eq) else Az
        # (the R of a QR has the singular values and right singular vectors of Az: a p x p SVD,
        # with _null_space's tolerance for Az's own shape)
        _, sv, vh = np.linalg.svd(np.linalg.qr(Az, mode="r") if len(Az) > p else Az, full_matrices=True)
        span = vh[int(np.sum(sv > max(len(Az), p) * np.finfo(float).eps * (sv[0] if sv.size else 0.0))):].T
    fixed = np.linalg.norm(span, axis=1) <= 1e-10 if span.shape[1] else np.ones(p, dtype=bool)
    ray = None
    if span.shape[1] == 1:
        # a one-dimensional span holding a positive margin: the cone is the ray through b0,
        # and max / min b_j over it in the box are u_j and 0 (or 0 and u_j), u the ray's
        # point with max |u_k| = 1 -- what the two LPs of each column would return
        v = span[:, 0] / scale
        ray = span[:, 0] / np.max(np.abs(span[:, 0])) * (1.0 if sgn @ (Xu @ v) > 0 else -1.0)
        sols.append(ray)
    directions = {}
    for j in range(p):
        if fixed[j]:
            continue
        c = np.zeros(p)
        up_j, down_j = max(b[j] for b in sols), min(b[j] for b in sols)
        if ray is not None:
            up_j, down_j = max(ray[j], 0.0), min(ray[j], 0.0)
        if up_j <= tol and ray is None:
            c[j] = -1.0
            up = lp(c).x
            sols.append(up)
            up_j = up[j]
        if down_j >= -tol and ray is None:
            c[j] = 1.0
            down = lp(c).x
            sols.append(down)
            down_j = down[j]
        can_up, can_down = up_j > tol, down_j < -tol
        if can_up or can_down:
            directions[names[j]] = 1 if can_up and not can_down else -1 if can_down and not can_up else 0
    d = np.mean(sols, axis=0)
    n_sep = int(np.sum(margins(d) > tol))

    # complete separation: every margin >= t > 0 (impossible with mixed binomial rows, or
    # with rows that no direction predicts)
    # (d lies in the box: when all its margins exceed tol, t = min(margins, 1) is feasible and
    # the LP's answer is known)
    complete = False
    if n_sep == n_signed and not mix.any():
        complete = True
    elif not mix.any() and not zero.any():
        r = lp(np.r_[np.zeros(p), -1.0], with_t=True)
        complete = -r.fun > tol
    # report divergence in the columns' own units
    return SeparationResult(True, bool(complete), directions, n_sep, d / scale)


def _family(family: Any) -> Family:
    """A Family from a Family or a family name."""
    return family if isinstance(family, Family) else get_family(family)


def constant_response(y, family, trials=None) -> Finding | None:
    """A response that carries no information on the fixed effects (or the scale).

    * bernoulli: all 0 or all 1 (the intercept's estimate is -inf / +inf);
    * binomial: no successes or no failures at all;
    * poisson, negative binomial: all counts 0 (log mean -> -inf);
    * gaussian, gamma, beta: one value only (residual scale -> 0).

    Returns None when the response varies.
    """
    fam = _family(family)
    y = np.asarray(y, dtype=float)
    if len(y) == 0:
        return None
    col = ("(Intercept)",)
    if fam.is_binary and (not fam.needs_trials or trials is None):
        if np.all(y == y[0]) and y[0] in (0.0, 1.0):
            side = "-inf" if y[0] == 0 else "+inf"
            return Finding("constant_response",
                           f"every response is {int(y[0])}: the fixed effects' maximum-likelihood "
                           f"estimates do not exist (the intercept -> {side})", col, "warning",
                           {"value": float(y[0])})
        return None
    if fam.is_binary:  # successes out of trials
        t = np.asarray(trials, dtype=float)
        use = t > 0
        if not use.any():
            return None
        if np.all(y[use] == 0) or np.all(y[use] == t[use]):
            none = np.all(y[use] == 0)
            return Finding("constant_response",
                           f"{'no successes' if none else 'no failures'} in any trial: the fixed "
                           f"effects' maximum-likelihood estimates do not exist (the intercept -> "
                           f"{'-inf' if none else '+inf'})", col, "warning",
                           {"value": 0.0 if none else 1.0})
        return None
    if fam.is_count:
        if np.all(y == 0):
            return Finding("constant_response",
                           "every count is 0: the fixed effects' maximum-likelihood estimates do "
                           "not exist (the intercept -> -inf)", col, "warning", {"value": 0.0})
        return None
    if np.all(y == y[0]):
        return Finding("constant_response",
                       f"every response equals {y[0]:g}: the residual scale's maximum-likelihood "
                       f"estimate is 0", col, "error" if fam.lme4_checks else "warning",
                       {"value": float(y[0])})
    return None


def _lhs(term) -> str:
    """The term's left-hand side as lme4 prints it: ``x`` for ``(Intercept), x``."""
    cn = list(term.coef_names)
    if "(Intercept)" in cn:
        cn.remove("(Intercept)")
        return " + ".join(cn) or "1"
    return " + ".join(["0"] + cn)


def levels_vs_observations(spec) -> list:
    """lme4's checks of grouping factors against the number of observations.

    For families with a residual scale or dispersion (gaussian: ``lmer``), a grouping factor
    with ``n_levels >= n`` or a term with ``q * n_levels >= n`` random effects leaves the
    split between the group variance and the residual variance unidentifiable; ``lmer``
    refuses to fit ("number of levels of each grouping factor must be < number of
    observations"; "number of observations (=n) <= number of random effects (=qJ)").
    For the other families ``glmer`` refuses only ``n_levels > n`` and ``q * n_levels > n``.
    A grouping factor with a single level is refused by both.

    Returns a list of :class:`Finding` (empty when all is well).  Severity is ``"error"``
    where lme4 stops for this family, ``"warning"`` for the dispersion families that lme4
    does not fit (glmmTMB does not check).
    """
    fam = _family(spec.family)
    n = int(spec.n)
    scale = bool(fam.aux_params)  # a residual scale or dispersion: the group / residual split
    severity = "error" if fam.lme4_checks else "warning"
    out = []
    seen_groups = {}
    for term in spec.terms:
        seen_groups.setdefault(term.group, term.n_levels)
    single = [g for g, nl in seen_groups.items() if nl < 2]
    if single:
        out.append(Finding("single_level",
                           f"grouping factor(s) {', '.join(single)} have a single sampled level: "
                           f"the variance is not identifiable (lme4: 'grouping factors must have "
                           f"> 1 sampled level')", tuple(single), "error" if severity == "error" else "warning",
                           {"n_levels": {g: seen_groups[g] for g in single}}))
    bad = [g for g, nl in seen_groups.items() if (nl >= n if scale else nl > n)]
    if bad:
        cmp = "<" if scale else "<="
        out.append(Finding("levels_vs_observations",
                           f"number of levels of each grouping factor must be {cmp} number of "
                           f"observations (problems: {', '.join(bad)}; n = {n})"
                           + (": the group and residual variances are not identifiable separately"
                              if scale else ""),
                           tuple(bad), severity,
                           {"n_levels": {g: seen_groups[g] for g in bad}, "n_obs": n}))
    for term in spec.terms:
        if term.q < 2:
            continue  # q = 1 is the level check above
        if term.cov.n_corr(term.q) > 0 and term.n_theta < term.q * (term.q + 1) // 2:
            # a structured covariance (cs, ar1, toep) has fewer parameters than the q(q+1)/2
            # moments of a level's effects: with one row per level and coefficient its
            # parameters and the residual variance are identified (glmmTMB fits such models)
            continue
        n_re = term.q * term.n_levels
        if (n <= n_re) if scale else (n < n_re):
            out.append(Finding("random_effects_vs_observations",
                               f"number of observations (={n}) {'<=' if scale else '<'} number of "
                               f"random effects (={n_re}) for term ({_lhs(term)} | {term.group}); "
                               f"the random-effects parameters"
                               f"{' and the residual variance (or scale parameter)' if scale else ''}"
                               f" are probably unidentifiable",
                               (term.name,), severity, {"n_re": n_re, "n_obs": n}))
    return out


def _null_space(A) -> np.ndarray:
    """Orthonormal basis of the null space of A (p columns), as ``scipy.linalg.null_space``
    with its default tolerance, but from the thin SVD: scipy's full SVD of an n x p design
    forms an n x n matrix (80 GB at 100,000 rows)."""
    n, p = A.shape
    _, s, vh = np.linalg.svd(A, full_matrices=n < p)
    tol = max(n, p) * np.finfo(float).eps * (s[0] if s.size else 0.0)
    return vh[int(np.sum(s > tol)):].T


def check_spec(spec, *, max_separation_cells: int | None = None) -> list:
    """Run every check on a :class:`bayes_glmm.spec.model_spec.ModelSpec`; a list of :class:`Finding`.

    The separation check runs for bernoulli and binomial models (skipped when the response
    is constant: then every direction separates and :func:`constant_response` says it), at
    any size by default: at 10^6 rows it costs about 0.03 s without separation and 0.06-0.15 s
    with it (a few columns; :func:`separation` screens subsets, keeps its LPs small and skips
    those the cone's geometry already answers; benchmarks/results/
    bench_ml_2026-12-07_datachecks_after.txt).
    ``max_separation_cells`` skips it when X has more entries than that (the ML fit still
    flags estimates running off to infinity).
    """
    fam = _family(spec.family)
    findings = []
    const = constant_response(spec.y, fam, spec.trials if fam.needs_trials else None)
    if const is not None:
        findings.append(const)
    elif fam.is_binary and (max_separation_cells is None or spec.X.size <= max_separation_cells):
        trials = spec.trials if fam.needs_trials else None
        weights = getattr(spec, "weights", None)
        res = separation(spec.X, spec.y, spec.fixed_names, trials, weights=weights)
        f = res.finding()
        if f is not None:
            findings.append(f)
    findings.extend(levels_vs_observations(spec))
    return findings


#: prior distributions that do not integrate to one (their density is constant)
IMPROPER_PRIORS = ("Flat", "HalfFlat")
def improper_posterior(spec, priors, findings=None) -> Finding | None:
    """A separated direction that no proper prior bounds: the posterior is improper.

    Separation (or a constant response) makes the likelihood rise towards a limit along a
    direction ``d`` of the fixed effects.  The posterior is improper exactly when such a
    direction moves only coefficients whose priors are improper (``Flat``): along it the
    density stays bounded away from zero over an infinite volume.  The priors are on the
    package's own coordinates, the intercept at the means of the predictors
    (:mod:`bayes_glmm.priors`), so a proper intercept prior fixes ``d0 + xbar'd = 0``: the test is
    separation of the design restricted to the improper-prior columns, slopes centered when
    the intercept's prior is proper.  A separated direction that needs a coefficient with a
    proper prior leaves the posterior proper (that prior bounds it).

    Parameters
    ----------
    spec : ModelSpec
    priors : dict
        Resolved priors (:func:`bayes_glmm.priors.resolve_priors`): key -> object with a
        ``name`` (the distribution).
    findings : list of Finding, optional
        :func:`check_spec`'s output, when already computed: without a separation or
        constant-response finding there is nothing to test.

    Returns
    -------
    Finding or None
        Kind ``"improper_posterior"``, severity ``"error"``, naming the coefficients (their
        prior keys) and the fix.
    """
    fam = _family(spec.family)
    names = list(spec.fixed_names)
    key = {nm: ("Intercept" if nm == "(Intercept)" else nm) for nm in names}
    flat = [nm for nm in names if getattr(priors.get(key[nm]), "name", None) in IMPROPER_PRIORS]
    if not flat:
        return None
    if findings is None:
        findings = check_spec(spec)
    kinds = {f.kind for f in findings}
    free = None
    # a constant response sends the intercept to +-inf (Family.constant_response_unbounded; the
    # scale families' sends the scale to 0)
    if "constant_response" in kinds and fam.constant_response_unbounded and "(Intercept)" in flat:
        free = ["(Intercept)"]  # every direction separates: the flat intercept alone runs off
    elif kinds & {"complete_separation", "quasi_complete_separation"}:
        X = np.asarray(spec.X, dtype=float)
        has_int = "(Intercept)" in names
        cols = []
        for nm in flat:
            j = names.index(nm)
            # a proper intercept prior holds the intercept at the predictors' means fixed: the
            # free directions are those of the centered slopes
            centre = has_int and nm != "(Intercept)" and "(Intercept)" not in flat
            cols.append(X[:, j] - X[:, j].mean() if centre else X[:, j])
        trials = spec.trials if fam.needs_trials else None
        res = separation(np.column_stack(cols), spec.y, flat, trials, weights=getattr(spec, "weights", None))
        if res.separated:
            free = list(res.columns)
    if not free:
        return None
    keys = [key[nm] for nm in free]
    fix = ", ".join(f"{k!r}: bg.Prior('Normal', mu=0, sigma=2.5)" for k in keys)
    return Finding("improper_posterior",
                   f"the posterior is improper: the data do not bound {', '.join(keys)} (separation or a constant "
                   f"response sends the likelihood's maximum to infinity along them) and their prior is "
                   f"Flat, so nothing bounds them and NUTS would return draws of a "
                   f"distribution that does not exist. Give them a proper prior, e.g. priors={{{fix}}} "
                   "(or drop the Flat override to get the default weakly-informative prior)",
                   tuple(keys), "error", {"free": free})

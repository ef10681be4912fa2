"""The GLMM log-posterior and its gradient in NumPy: the layout, and the fallback sampler.

This module defines the one layout of the unconstrained parameters that the PyMC graph
(:func:`bayes_glmm.bayes.graph.build_pymc_model`), the generated C
(:mod:`bayes_glmm.bayes.native`) and this NumPy density share (:meth:`GlmmDensity.value_var_slices`),
and evaluates the log-posterior on it in NumPy: ``sampler="numpy"``, what ``"auto"`` runs
when no C compiler is found.

* likelihood: ``eta = Xc @ coef + Z @ b + offset`` with a sparse Z built once, Xc the centred
  design with extreme columns divided by their SD (:func:`fixed_layout`; :meth:`GlmmDensity.expand`
  reports the coefficients on the user's scale);
  :meth:`Family.loglik` and :func:`~bayes_glmm.families.zi_loglik` themselves, evaluated on
  forward-mode dual numbers (:mod:`bayes_glmm.ops.dual`) for their derivatives in eta, each
  auxiliary parameter of the family (``family.aux_params``: sigma, a dispersion, ...) and the
  zero-inflation predictor -- nothing differentiated by hand;
* priors: :data:`PRIOR_LOGP`, each prior kind's one log-density (:mod:`bayes_glmm.priors.kinds`,
  PyMC's parametrizations) on dual numbers; positive parameters are sampled on the log scale
  with PyMC's Jacobian, so the density on the unconstrained space is PyMC's;
* random terms: uncorrelated ones centered or non-centered, a scalar ``(1 | g)`` one also
  hierarchically centred (``c_<ident>`` = intercept + b, :mod:`~bayes_glmm.bayes.layout`),
  with an SD or a variance (``var_<ident>``) prior; correlated ones non-centered, ``b = diag(sd) L u`` per level, with
  log-SDs and the LKJ(eta) correlation Cholesky factor L from canonical partial
  correlations (:mod:`bayes_glmm.bayes.corr`), the graph's own coordinates; centered
  correlated terms stay on the PyMC graph.  The map and the prior of ``u`` are
  :func:`~bayes_glmm.bayes.layout.level_effects` and :func:`~bayes_glmm.bayes.layout.level_logp`,
  evaluated here over all levels on dual numbers for the chain rule back to ``u``, the SDs
  and L.

``tests/test_bayes_contract.py`` evaluates this density and the graph at random points and
asserts equal log-density and gradient.  This module does not import PyMC.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import sparse

from ..spec.centering import MODE_START_THRESHOLD, informativeness, level_scales, row_information
from ..ml.pirls import make_response
from ..priors import default_scales, disp_key, disp_slope_blocks, get_kind, slope_blocks, zi_key, zi_slope_blocks
from ..spec.scaling import SCALE_RANGE, column_sds
from ..spec.model_spec import ModelSpec
from .codegen import PRIOR_LOGDENS, prior_params
from .corr import cpc_chol, cpc_chol_vjp
from ..ops.numpy_ops import NUMPY_OPS
from ..ops.dual import ND, ND_OPS, deriv, seed, value
from .layout import HIERARCHICAL, directions, effects_name, level_effects, level_logp, mode_of

__all__ = ["PRIOR_LOGP", "supported", "GlmmDensity", "compile_numpy", "expand_layout",
           "SCALE_RANGE", "column_scales", "scaled_prior", "fixed_layout"]

# SCALE_RANGE (from bayes_glmm.spec.scaling): a design column whose SD lies outside it is divided
# by its SD in the design the samplers see (and its coefficient multiplied by it): money in
# units of 1e12 next to a rate of 1e-13 otherwise gives the posterior curvatures 50 orders of
# magnitude apart, which no diagonal mass matrix adapts to in a warm-up (R-hat 2.9).  Columns
# inside it are left as they are, so ordinary models sample exactly as before.

#: a coefficient whose crude posterior SD (from the rows' Fisher information) lies below this
#: is sampled in units of that SD (:func:`fixed_layout`): the warm-up regularizes a diagonal
#: metric towards 1e-3 (Stan's rule), so coordinates known to much better than that force
#: a tiny step size on every other one.  Ordinary models have no such coefficient.
INFO_SD = 1e-3



def column_scales(X, icol=None) -> np.ndarray:
    """The divisor of each column of a fixed-effects design in the samplers' coordinates.

    A non-constant column's SD (constant: :func:`bayes_glmm.spec.scaling.constant_columns`, a range
    of exactly zero) when it lies outside :data:`SCALE_RANGE`, else 1; 1 for the intercept ``icol`` and constant columns.
    """
    X = np.asarray(X, dtype=float)
    d = column_sds(X) if X.size else np.ones(X.shape[1])
    d[(d >= SCALE_RANGE[0]) & (d <= SCALE_RANGE[1])] = 1.0
    d[~np.isfinite(d) | (d <= 0.0)] = 1.0
    if icol is not None:
        d[icol] = 1.0
    return d


def scaled_prior(prior, d: float):
    """The prior of ``beta * d`` when ``beta ~ prior`` (a real-support prior).

    Every real-support prior is a location-scale family, so this is the same distribution
    with its location and scale multiplied by ``d``: a prior stated on the user's scale
    becomes the same prior on the scaled coordinate (the log-density changes by the constant
    ``-log d`` only).  Location and scale are written out (defaults filled in), so that the
    priors of one vector block have the same arguments.
    """
    kind = get_kind(prior.name)
    if kind.loc_scale is None:
        raise ValueError(f"a prior on a coefficient must have real support (a location-scale family); "
                         f"{prior.name} has not")
    spec = kind.location_scale()
    args = dict(prior.args)
    for k, default in spec:
        v = args.get(k, default)
        args[k] = float(np.asarray(v, dtype=float) * d) if d != 1.0 else v
    return type(prior)(prior.name, **args)


def _fixed_key(name: str) -> str:
    return "Intercept" if name == "(Intercept)" else name


def fixed_layout(X, names, priors: dict, key=_fixed_key, info=None):
    """The coordinates of a block of coefficients as the samplers see them.

    The non-intercept columns of ``X`` are centred at their means (when the design has an
    intercept, which then is the linear predictor at the means, as its prior describes) and
    divided by :func:`column_scales`; a column whose coefficient the data know to better
    than :data:`INFO_SD` (crudely, ``1 / sqrt(sum_r info_r x_r^2)``: slopes of counts of
    1e7 are known to ~1e-5) is divided further by that, so its coordinate's posterior SD
    is about 1 (the warm-up's metric, regularized towards 1e-3, cannot adapt to an SD of
    1e-8); the coefficients of that design are ``beta_j * d_j``,
    with the prior :func:`scaled_prior` of the user's one.  The graph and the NumPy density
    (and through it the generated C) both build their fixed part from this one function.

    Parameters
    ----------
    X : ndarray (n, p)
        The design on the user's scale (``spec.X`` or ``spec.X_zi``).
    names : sequence of str
        Its column names.
    priors : dict
        Resolved priors; column ``j`` has ``priors[key(names[j])]`` (``"Intercept"`` for the
        intercept column of the main design).
    key : callable
        Column name -> prior key (``"(Intercept)"`` -> ``"Intercept"``; ``zi_key`` for the
        zero-inflation design).
    info : ndarray (n,), optional
        The rows' Fisher information about their linear predictor
        (:func:`bayes_glmm.spec.centering.row_information`); None: no such scaling.

    Returns
    -------
    (icol, xm, d, Xs, col_priors)
        Intercept column or None, column means subtracted (0 for the intercept), scales,
        the design the samplers see ``(X - xm) / d``, and the per-column priors of the scaled
        coefficients.
    """
    names = list(names)
    X = np.asarray(X, dtype=float)
    icol = names.index("(Intercept)") if "(Intercept)" in names else None
    slopes = [j for j in range(len(names)) if j != icol]
    xm = np.zeros(len(names))
    if icol is not None and slopes:
        xm[slopes] = X[:, slopes].mean(axis=0)
    d = column_scales(X, icol)
    Xs = (X - xm[None, :]) / d[None, :]
    if info is not None and slopes:
        with np.errstate(all="ignore"):
            e = np.sqrt(np.asarray(info, dtype=float) @ (Xs[:, slopes] ** 2))
        big = np.isfinite(e) & (e > 1.0 / INFO_SD)
        if np.any(big):
            d[np.asarray(slopes)[big]] *= e[big]
            Xs = (X - xm[None, :]) / d[None, :]
    col_priors = {}
    for j, nm in enumerate(names):
        pr = priors[key(nm)]
        col_priors[j] = pr if d[j] == 1.0 else scaled_prior(pr, float(d[j]))
    return icol, xm, d, Xs, col_priors


def _vector_prior(col_priors: dict, cols, vector: bool = False):
    """One prior with per-coefficient parameters for the columns ``cols`` of a block (the
    first column's prior itself for a single column, unless ``vector``)."""
    first = col_priors[cols[0]]
    if len(cols) == 1 and not vector:
        return first
    dflt = dict(get_kind(first.name).location_scale())
    keys = list(dict.fromkeys(k for j in cols for k in col_priors[j].args))
    return type(first)(first.name, **{k: [float(np.asarray(col_priors[j].args.get(k, dflt.get(k)), dtype=float))
                                          for j in cols] for k in keys})


def _shaped(v, shape) -> np.ndarray:
    """``v`` broadcast to ``shape`` (no new view when it has that shape already)."""
    v = np.asarray(v, dtype=float)
    return v if v.shape == shape else np.broadcast_to(v, shape)


def prior_logp_of(name: str, a0, a1, a2):
    """``f(x) -> (log-density per element, d/dx)`` of one prior with canonical parameters
    (:func:`~bayes_glmm.bayes.codegen.prior_params`): its kind's one log-density
    (:attr:`~bayes_glmm.priors.kinds.PriorKind.logdens`) on dual numbers (no derivative by hand)."""
    f = PRIOR_LOGDENS[name]

    def lp(x):
        x = np.asarray(x, dtype=float)
        r = f(seed(x, 0, 1), a0, a1, a2, ND_OPS)
        return _shaped(value(r), x.shape), _shaped(deriv(r, 0, x), x.shape)
    return lp


def _derived_prior(name: str):
    """``f(x, args)`` of :data:`PRIOR_LOGP`: :func:`prior_logp_of` with PyMC's arguments."""
    return lambda x, args: prior_logp_of(name, *prior_params(name, args))(x)


#: prior name -> f(x, args) = (pointwise log-density, derivative), PyMC parametrizations;
#: derived from the registry of prior kinds (:data:`~bayes_glmm.bayes.codegen.PRIOR_LOGDENS`)
PRIOR_LOGP = {name: _derived_prior(name) for name in PRIOR_LOGDENS}


def _layout_duals(e, sd, Lc, centered, level=None):
    """:func:`~bayes_glmm.bayes.layout.level_effects` over all levels on dual numbers.

    Directions: those of :func:`~bayes_glmm.bayes.layout.directions` (``u_m`` arrays over
    levels; ``L[k][m]`` only when ``Lc`` is given, returned as ``{(k, m): direction}``; the
    intercept ``mu`` last when hierarchically centred, ``level = (mu, a, s)``).
    """
    q = e.shape[1]
    hier = mode_of(centered) == HIERARCHICAL
    nd, tri = directions(q, Lc is not None, hier)
    u = [seed(e[:, m], m, nd) for m in range(q)]
    s = [seed(float(sd[k]), q + k, nd) for k in range(q)]
    L = None
    if Lc is not None:
        L = [[seed(float(Lc[k, m]), tri[(k, m)], nd) if m <= k else 0.0 for m in range(q)] for k in range(q)]
    lev = (seed(float(level[0]), 2 * q, nd), level[1], level[2]) if hier else None
    return level_effects(u, s, L, centered, lev), level_logp(u, s, centered, ND_OPS, lev), tri


def _layout_vjp(b, lpu, gb, direction: int):
    """Per level, d/d ``direction`` of ``sum_k gb[:, k] b_k + log p(u)``: the chain rule from
    the effects' gradient ``gb`` (levels, q) back through :func:`_layout_duals`."""
    acc = lpu.d[direction] if isinstance(lpu, ND) else None
    for k, bk in enumerate(b):
        d = bk.d[direction] if isinstance(bk, ND) else None
        if d is not None:
            t = gb[:, k] * d
            acc = t if acc is None else acc + t
    return _shaped(0.0 if acc is None else acc, gb.shape[:1])


class _TermState(NamedTuple):
    """One random term at the current point: what the gradient pass needs."""

    term: object
    scale: object  # the SD (or variance) block
    eff: object  # the effects block (u, or b when centred)
    sd: np.ndarray
    b: list  # dual numbers, one per coefficient
    lpu: object  # log p(u), dual
    tri: dict  # (k, m) -> direction of L[k][m]
    bval: np.ndarray  # (levels, q) values of b
    s_g: np.ndarray
    s_dv: np.ndarray
    zsl: slice
    cor: tuple | None  # (corr block, cpc_chol aux) of a correlated term
    cen: bool | str  # the parametrization (layout.PARAMETRIZATIONS)


def _effects_of(e, sd, Lc, centered, level=None):
    """``b`` (..., levels, q) from coordinates ``e`` (..., levels, q), ``sd`` (..., q),
    ``Lc`` (..., q, q) or None and, for a hierarchically centred term, ``level = (mu, a, s)``
    (the intercept (...), the levels' locations and scales (levels,)):
    :func:`~bayes_glmm.bayes.layout.level_effects` on arrays."""
    q = e.shape[-1]
    u = [e[..., m] for m in range(q)]
    s = [sd[..., k, None] for k in range(q)]  # the same for every level
    L = None if Lc is None else [[Lc[..., k, m, None] for m in range(q)] for k in range(q)]
    lev = None if level is None else (np.asarray(level[0], dtype=float)[..., None], level[1], level[2])
    b = level_effects(u, s, L, centered, lev)
    return np.stack([np.broadcast_to(bk, e.shape[:-1]) for bk in b], axis=-1)


def _is_corr(t) -> bool:
    """The term has correlation parameters (its structure's ``n_corr(q) > 0``)."""
    return t.cov.n_corr(t.q) > 0


def sd_layout(t):
    """``(name, index)`` of a term's free block of SDs: ``sd_<ident>`` with one SD per
    coefficient (``index`` None), or ``sdpar_<ident>`` with ``t.cov.n_sd(q) < q`` SDs mapped
    onto the q coefficients by ``index`` (:meth:`~bayes_glmm.covariance.base.CovStructure.sd_index`;
    ``ar1`` has one).  The posterior's ``sd_<ident>`` is the length-q vector either way."""
    idx = np.asarray(t.cov.sd_index(t.q), dtype=np.intp)
    if t.cov.n_sd(t.q) == t.q and np.array_equal(idx, np.arange(t.q)):
        return f"sd_{t.ident}", None
    return f"sdpar_{t.ident}", idx


def shared_sd_prior(prior, t, idx):
    """The prior of a term's free SDs when they are shared (:func:`sd_layout`): the
    ``sd_<ident>`` prior's per-coefficient parameters taken at the first coefficient of each SD."""
    first = [int(np.flatnonzero(idx == k)[0]) for k in range(t.cov.n_sd(t.q))]

    def pick(v):
        a = np.asarray(v, dtype=float)
        return v if a.size == 1 else [float(a.reshape(-1)[j]) for j in first]
    return type(prior)(prior.name, **{k: pick(v) for k, v in prior.args.items()})


def supported(spec: ModelSpec, priors: dict, centered: dict | None = None) -> bool:
    """True when :class:`GlmmDensity` covers the model.

    Every family (zero inflation included),
    known priors (:data:`PRIOR_LOGP`, LKJ for correlations) and no centered correlated term
    (its MvNormal density is not implemented here).  The native sampler
    (:mod:`bayes_glmm.bayes.native`) covers the same models, on the same layout.
    """
    centered = centered or {}
    if any(_is_corr(t) and centered.get(t.name, False) for t in spec.terms):
        return False
    return all(p.name in PRIOR_LOGP or (k.startswith("corr_") and p.name == "LKJ") for k, p in priors.items())


class _Corr:
    """The correlation block (``cpc_<ident>``) of a term: slice of x, its structure, and the
    Beta shapes and constant of its prior (``cov.corr_prior_shapes``: LKJ's CPC law for ``us``)."""

    def __init__(self, start, q, eta, cov):
        self.q, self.eta, self.cov = q, float(eta), cov
        self.a, self.const = cov.corr_prior_shapes(q, self.eta)
        self.sl = slice(start, start + self.a.size)


class _Block:
    """A contiguous slice of the unconstrained vector with its prior (log scale if positive)."""

    def __init__(self, name, start, size, prior, positive, ordered=False):
        self.name, self.sl, self.prior, self.positive = name, slice(start, start + size), prior, positive
        #: an ``"ordered"`` auxiliary parameter: ``previous + exp(x)`` (an ordinal threshold)
        self.ordered = ordered
        if prior is None:
            return
        # the canonical parameters once per block, not once per gradient
        f = prior_logp_of(prior.name, *prior_params(prior.name, prior.args))

        def lp(x):
            v, g = f(x)
            return float(np.sum(v)), g
        self._lp = lp

    def scalar_value_logp_grad(self, x, prev=0.0):
        """(value, log-density on the log scale, d/dz) as floats for a scalar positive block;
        for an ordered one (value ``prev + exp(z)``) the log-density with its Jacobian ``z`` and
        the prior's derivative in the *value* (the chain rule through the chain is the caller's)."""
        if self.ordered:
            z = float(x[self.sl][0])
            v = prev + float(np.exp(z))
            lp, g = self._lp(np.array([v]))
            return v, lp + z, float(g[0])
        v, lp, g, _ = self.value_logp_grad(x)
        return float(v[0]), lp, float(g[0])

    def value_logp_grad(self, x):
        """(value, log-density on the unconstrained scale, d/dx, dvalue/dx)."""
        z = x[self.sl]
        if not self.positive:
            lp, g = self._lp(z)
            return z, lp, g, 1.0
        v = np.exp(z)
        lp, g = self._lp(v)
        return v, lp + float(z.sum()), g * v + 1.0, v

    @property
    def value_var(self) -> str:
        """The graph's value variable of the block (``sigma_log__`` for a positive one)."""
        return self.name + "_log__" if self.positive else self.name


#: supports of a family's auxiliary parameters the samplers handle (positive: log scale;
#: ordered: ``previous + exp(x)``, PyMC's ordered transform of the chain they form)
AUX_SUPPORTS = ("positive", "real", "ordered")


def ordered_chains(family) -> list:
    """``[(first, stop), ...]``: index ranges of ``family.aux_params`` that form ordered chains
    (a parameter followed by ``"ordered"`` ones: an ordinal model's thresholds).  The graph
    holds each chain as one vector variable ``family.aux_vector_name`` with PyMC's ordered
    transform, the fast paths as these coordinates."""
    aux, out, i = family.aux_params, [], 0
    while i < len(aux):
        j = i + 1
        while j < len(aux) and aux[j].support == "ordered":
            j += 1
        if j > i + 1:
            out.append((i, j))
        elif aux[i].support == "ordered":
            raise ValueError(f"family {family.name!r}: the ordered parameter {aux[i].name!r} follows no parameter")
        i = j
    return out


def aux_blocks(family, priors: dict, start: int, skip: int = 0) -> list:
    """One scalar :class:`_Block` per auxiliary parameter of ``family`` (``family.aux_params``
    order, from ``start``), named and with the prior of its key ``aux.name``; a positive
    one is sampled on the log scale, as PyMC's log transform.  The first ``skip`` parameters are
    left out (1: the one a dispersion formula models).

    Raises
    ------
    ValueError
        An auxiliary parameter with a support outside :data:`AUX_SUPPORTS`, or no prior.
    """
    out = []
    for i, aux in enumerate(family.aux_params[skip:]):
        if aux.support not in AUX_SUPPORTS:
            raise ValueError(f"family {family.name!r}: the samplers handle auxiliary parameters with support "
                             f"{list(AUX_SUPPORTS)}, not {aux.name!r} ({aux.support!r}); use the ML fit")
        if aux.name not in priors:
            raise ValueError(f"no prior for the auxiliary parameter {aux.name!r} of family {family.name!r}; "
                             f"give one, e.g. priors={{{aux.name!r}: bg.Prior('Exponential', lam=1)}}")
        out.append(_Block(aux.name, start + i, 1, priors[aux.name], aux.support == "positive",
                          aux.support == "ordered"))
    return out


#: halvings of a chain's starting jitter tried before the sampler is left to report the point
START_TRIES = 20


def finite_start(x0: np.ndarray, jitter: np.ndarray, logp_grad) -> np.ndarray:
    """``x0 + jitter * 2**-k`` for the first k (0, 1, ..., :data:`START_TRIES` - 1) where
    ``logp_grad`` gives a finite value and gradient; the last one tried when none does.

    Pure: the same point for the same inputs; ``k = 0`` (the plain jittered start) whenever it
    is finite, so models whose starts were finite keep their draws.
    """
    for k in range(START_TRIES):
        x = x0 + jitter * 0.5 ** k
        with np.errstate(all="ignore"):
            lp, g = logp_grad(x)
        if np.isfinite(lp) and np.all(np.isfinite(g)):
            break
    return x


class GlmmDensity:
    """Log-posterior and gradient of a GLMM on the unconstrained scale (PyMC's).

    Parameters
    ----------
    spec : ModelSpec
    priors : dict
        From :func:`bayes_glmm.priors.resolve_priors`.
    centered : dict
        From :func:`bayes_glmm.priors.resolve_centered`.
    """

    def __init__(self, spec: ModelSpec, priors: dict, centered: dict):
        if not supported(spec, priors, centered):
            raise ValueError("the NumPy gradient covers the priors of PRIOR_LOGP (LKJ for correlations) "
                             "and non-centered correlated terms only; use sampler='nutpie' or 'pymc'")
        self.spec, self.fam = spec, spec.family
        names = list(spec.fixed_names)
        # the centred design with extreme columns divided by their SD (fixed_layout): the
        # coordinates are the coefficients of Xc, expand() maps them back to the user's scale
        self.icol, self.xm, self.xd, Xc, cpri = fixed_layout(spec.X, names, priors, info=row_information(spec))
        self.Xc = np.ascontiguousarray(Xc)
        self.resp = make_response(spec)
        self.blocks, pos = [], 0
        self.fixed_blocks = []  # (block, columns of X)
        if self.icol is not None:
            self.fixed_blocks.append((_Block("Intercept", pos, 1, cpri[self.icol], False), [self.icol]))
            pos += 1
        for name, cols in slope_blocks(spec, priors):
            pr = _vector_prior(cpri, cols)  # one vector prior with per-coefficient parameters
            self.fixed_blocks.append((_Block(name, pos, len(cols), pr, False), cols))
            pos += len(cols)
        self.terms, zoff, rows, cols, vals = [], 0, [], [], []
        self.corr = {}  # ident -> _Corr, correlated terms only (self.terms keeps 5-tuples)
        #: ident -> which free SD each coefficient has, for terms whose structure shares SDs
        #: (``ar1``: :func:`sd_layout`); absent: one SD per coefficient
        self.sd_index = {}
        for t in spec.terms:
            k, q, L = t.ident, t.q, t.n_levels
            vkey = f"var_{k}"
            sname, idx = sd_layout(t)
            if idx is None:
                scale = _Block(vkey if vkey in priors else sname, pos, q,
                               priors[vkey] if vkey in priors else priors[f"sd_{k}"], True)
                pos += q
            else:
                if vkey in priors:
                    raise ValueError(f"prior key {vkey!r}: term {t.name!r} ({t.cov.name}) shares its SDs; "
                                     f"put the prior on sd_{k}")
                self.sd_index[k] = idx
                nsd = t.cov.n_sd(q)
                scale = _Block(sname, pos, nsd, shared_sd_prior(priors[f"sd_{k}"], t, idx), True)
                pos += nsd
            if _is_corr(t):
                self.corr[k] = _Corr(pos, q, priors[f"corr_{k}"].args.get("eta", 1.0), t.cov)
                pos += self.corr[k].a.size
            cen = mode_of(centered.get(t.name, False))
            if cen == HIERARCHICAL and (q != 1 or self.icol is None):
                raise ValueError(f"term {t.name!r}: hierarchical centring needs a scalar term and a model "
                                 "with an intercept; use centered=True or False for it")
            eff = _Block(effects_name(cen, k), pos, L * q, None, False)
            pos += L * q
            self.terms.append((t, scale, eff, cen, slice(zoff, zoff + L * q)))
            rows.append(np.repeat(np.arange(spec.n), q))
            cols.append((np.asarray(t.codes)[:, None] * q + np.arange(q)[None, :]).ravel() + zoff)
            vals.append(np.asarray(t.Xr, dtype=float).ravel())
            zoff += L * q
        # the intercept's coordinate (the mean of a hierarchically centred term's levels) and
        # the locations and scales of those levels' coordinates (data constants)
        self.mu_idx = self.fixed_blocks[0][0].sl.start if self.icol is not None else None
        self.level_scales = {t.ident: level_scales(spec, t) for t, _, _, cen, _ in self.terms if cen == HIERARCHICAL}
        #: a hierarchically centred term of very data-rich groups (median r_j above
        #: MODE_START_THRESHOLD) or a coefficient scaled by its information: chains start near
        #: the posterior mode (:meth:`initial_point`)
        self.data_rich = (any(float(np.median(informativeness(spec, t))) > MODE_START_THRESHOLD
                              for t, _, _, cen, _ in self.terms if cen == HIERARCHICAL)
                          or bool(np.any(self.xd != column_scales(spec.X, self.icol))))
        self._start = None
        if self.terms:
            self.Z = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                                       shape=(spec.n, zoff))
            self.Zt = sparse.csr_matrix(self.Z.T)
        #: one block per auxiliary parameter of the family (``family.aux_params`` order:
        #: sigma, a dispersion, Student-t's df...), a positive one on the log scale
        self.aux = aux_blocks(self.fam, priors, pos, skip=1 if spec.has_disp else 0)
        pos += len(self.aux)
        # zero inflation: as the fixed effects, on the centred X_zi
        self.zi_blocks = []
        if spec.has_zi:
            znames = list(spec.zi_names)
            lab = spec.zi_label  # "zi", or a hurdle's "hu"
            self.zi_icol, self.zi_xm, self.zi_xd, Xzc, zpri = fixed_layout(spec.X_zi, znames, priors,
                                                                           lambda nm: zi_key(nm, lab))
            if self.zi_icol is not None:
                self.zi_blocks.append((_Block(f"{lab}_Intercept", pos, 1, zpri[self.zi_icol], False),
                                       [self.zi_icol]))
                pos += 1
            for name, cols in zi_slope_blocks(spec, priors):
                pr = _vector_prior(zpri, cols)
                self.zi_blocks.append((_Block(name, pos, len(cols), pr, False), cols))
                pos += len(cols)
            self.zi_idx = np.empty(len(znames), dtype=np.intp)
            for blk, cols in self.zi_blocks:
                self.zi_idx[cols] = np.arange(blk.sl.start, blk.sl.stop)
            self.Xzc = np.ascontiguousarray(Xzc)
            self.XzcT = np.ascontiguousarray(self.Xzc.T)
        # a dispersion formula: as the zero inflation, on the centred X_disp; the family's first
        # auxiliary parameter is exp(Xdc @ coefficients) per row
        self.disp_blocks = []
        if spec.has_disp:
            dnames = list(spec.disp_names)
            self.disp_icol, self.disp_xm, self.disp_xd, Xdc, dpri = fixed_layout(spec.X_disp, dnames, priors, disp_key)
            if self.disp_icol is not None:
                self.disp_blocks.append((_Block("disp_Intercept", pos, 1, dpri[self.disp_icol], False),
                                         [self.disp_icol]))
                pos += 1
            for name, cols in disp_slope_blocks(spec, priors):
                self.disp_blocks.append((_Block(name, pos, len(cols), _vector_prior(dpri, cols), False), cols))
                pos += len(cols)
            self.disp_idx = np.empty(len(dnames), dtype=np.intp)
            for blk, cols in self.disp_blocks:
                self.disp_idx[cols] = np.arange(blk.sl.start, blk.sl.stop)
            self.Xdc = np.ascontiguousarray(Xdc)
            self.XdcT = np.ascontiguousarray(self.Xdc.T)
        self.unit = bool(np.all(self.resp.pw == 1.0))
        self.ndim = pos
        off = np.asarray(spec.offset, dtype=float)
        self.offset = off if np.any(off != 0.0) else None
        # hot-path plan: X column j sits at x[coef_idx[j]]; all-Normal fixed priors merge into one
        self.coef_idx = np.empty(spec.p, dtype=np.intp)
        for blk, cols in self.fixed_blocks:
            self.coef_idx[cols] = np.arange(blk.sl.start, blk.sl.stop)
        fp = [cpri[j] for j in np.argsort(self.coef_idx)]
        if spec.p and all(p.name == "Normal" for p in fp):
            merged = type(fp[0])("Normal", mu=[float(p.args.get("mu", 0.0)) for p in fp],
                                 sigma=[float(p.args.get("sigma", 1.0)) for p in fp])
            self.fixed_priors = [_Block("fixed", 0, spec.p, merged, False)]
        else:
            self.fixed_priors = [b for b, _ in self.fixed_blocks]
        self.XcT = np.ascontiguousarray(self.Xc.T)

    # ------------------------------------------------------------------ density
    def _level(self, t, x):
        """``(mu, a, s)`` of a hierarchically centred term at ``x`` (..., ndim); else None."""
        ls = self.level_scales.get(t.ident)
        return None if ls is None else (x[..., self.mu_idx], ls[0], ls[1])

    def _effects(self, x):
        """Random effects, their prior log-density and the dual parts the gradient needs.

        :func:`~bayes_glmm.bayes.layout.level_effects` evaluated over all levels at once on
        dual numbers in the directions ``u_m`` (m < q), ``sd_k`` (q + k) and, for a
        correlated term, ``L[k][m]`` (m <= k, from 2q on).
        """
        lp, parts = 0.0, []
        for t, scale, eff, cen, zsl in self.terms:
            s_val, s_lp, s_g, s_dv = scale.value_logp_grad(x)
            sd = np.sqrt(s_val) if scale.name.startswith("var_") else s_val
            if t.ident in self.sd_index:  # shared SDs: one per coefficient
                sd = sd[self.sd_index[t.ident]]
            e = x[eff.sl].reshape(t.n_levels, t.q)
            ch = self.corr.get(t.ident)
            cor = None
            if ch is not None:
                Lc, lpc, aux = cpc_chol(x[ch.sl], t.q, ch.a, ch.const, ch.cov)
                lp += lpc
                cor = (ch, aux)
            b, lpu, tri = _layout_duals(e, sd, None if ch is None else Lc, cen, self._level(t, x))
            n = t.n_levels
            lp += s_lp + float(np.sum(_shaped(value(lpu), (n,))))
            bval = np.column_stack([_shaped(value(bk), (n,)) for bk in b])
            parts.append(_TermState(t, scale, eff, sd, b, lpu, tri, bval, s_g, s_dv, zsl, cor, cen))
        return lp, parts

    def logp_grad(self, x):
        """Log-density (up to PyMC's constants of the random-effect priors) and gradient.

        Parameters
        ----------
        x : ndarray (ndim,)
            Unconstrained parameters.

        Returns
        -------
        (float, ndarray)
        """
        grad = np.empty(self.ndim)
        lp = 0.0
        for blk in self.fixed_priors + [b for b, _ in self.zi_blocks] + [b for b, _ in self.disp_blocks]:
            l, g = blk._lp(x[blk.sl])
            grad[blk.sl] = g
            lp += l
        eta = self.Xc @ x[self.coef_idx]
        if self.offset is not None:
            eta += self.offset
        lpe, parts = self._effects(x)
        lp += lpe
        if len(parts) == 1:
            eta += self.Z @ parts[0].bval.ravel()
        elif parts:
            eta += self.Z @ np.concatenate([p.bval.ravel() for p in parts])
        score = self._score(x, eta, grad)
        lp += score[1]
        score = score[0]
        grad[self.coef_idx] += self.XcT @ score
        if parts:
            gb_all = self.Zt @ score
            for ts in parts:
                t, q = ts.term, ts.term.q
                gb = gb_all[ts.zsl].reshape(t.n_levels, q)
                grad[ts.eff.sl] = np.column_stack([_layout_vjp(ts.b, ts.lpu, gb, m) for m in range(q)]).ravel()
                d_sd = np.array([_layout_vjp(ts.b, ts.lpu, gb, q + k).sum() for k in range(q)])
                if ts.cen == HIERARCHICAL:  # b = c - mu: back to the intercept
                    grad[self.mu_idx] += _layout_vjp(ts.b, ts.lpu, gb, 2 * q).sum()
                if ts.cor is not None:
                    ch, aux = ts.cor
                    GL = np.zeros((q, q))
                    for (k, m), j in ts.tri.items():
                        GL[k, m] = _layout_vjp(ts.b, ts.lpu, gb, j).sum()
                    grad[ch.sl] = cpc_chol_vjp(GL, ch.a, aux)
                if ts.scale.name.startswith("var_"):
                    d_sd = d_sd / (2.0 * ts.sd)  # d sd / d var
                idx = self.sd_index.get(t.ident)
                if idx is not None:  # a shared SD collects its coefficients' derivatives
                    d_sd = np.bincount(idx, weights=d_sd, minlength=ts.scale.sl.stop - ts.scale.sl.start)
                grad[ts.scale.sl] = ts.s_g + ts.s_dv * d_sd
        return lp, grad

    def _score(self, x, eta, grad):
        """(d loglik / d eta per row, summed log-likelihood); fills the gradients of the
        auxiliary parameters and of the zero-inflation coefficients.

        :meth:`Family.loglik` (and :func:`~bayes_glmm.families.zi_loglik`) evaluated on dual
        numbers in eta (direction 0), each auxiliary parameter (1, 2, ...) and the
        zero-inflation predictor (the last): the derivatives come from the single definition.
        """
        resp, fam = self.resp, self.fam
        y, pw = resp.y, resp.pw
        # eta, the auxiliary parameters, the log-dispersion per row (disp=), the zi predictor
        ddir = 1 + len(self.aux) if self.disp_blocks else None
        nd = 2 + len(self.aux) + (1 if self.disp_blocks else 0)
        lp, kw, vals, prev = 0.0, {}, [], 0.0
        for i, blk in enumerate(self.aux):
            v, alp, ag = blk.scalar_value_logp_grad(x, prev)
            prev = v
            lp += alp
            vals.append((v, ag))
            kw[blk.name] = seed(v, 1 + i, nd)
        if self.disp_blocks:
            ed = self.Xdc @ x[self.disp_idx]
            kw[fam.aux_params[0].name] = ND_OPS.exp(seed(ed, ddir, nd))
        if fam.needs_trials:
            kw["trials"] = resp.n_trials
        ll = fam.loglik(y, seed(eta, 0, nd), ops=ND_OPS, **kw)
        if self.zi_blocks:
            ez = self.Xzc @ x[self.zi_idx]
            ll = fam.zero_part_loglik(ll, y, seed(ez, nd - 1, nd), ops=ND_OPS)
            grad[self.zi_idx] += self.XzcT @ (pw * deriv(ll, nd - 1, eta))
        if self.disp_blocks:
            grad[self.disp_idx] += self.XdcT @ (pw * deriv(ll, ddir, eta))
        acc = 0.0  # an ordered chain: d/d(value) summed over the values each coordinate moves
        for i in reversed(range(len(self.aux))):
            blk, (v, ag) = self.aux[i], vals[i]
            d = float(pw @ deriv(ll, 1 + i, eta))
            if blk.ordered or (i + 1 < len(self.aux) and self.aux[i + 1].ordered):
                acc += ag + d
                # value_k = value_0 + sum_{j <= k} exp(z_j): d/dz_j = exp(z_j) (sum over k >= j), + Jacobian 1
                grad[blk.sl.start] = acc * float(np.exp(x[blk.sl.start])) + 1.0 if blk.ordered else acc
                if not blk.ordered:
                    acc = 0.0
                continue
            grad[blk.sl.start] = ag + (v * d if blk.positive else d)  # positive: d/d log(v) = v d/dv
        return pw * deriv(ll, 0, eta), lp + float(pw @ value(ll))

    def value_var_slices(self) -> dict:
        """Graph value-variable name -> slice of x: the one layout shared with the PyMC graph.

        Positive parameters are the graph's log-transformed values (``sd_g_log__``), the
        CPCs of a correlated term ``cpc_g``, the effects ``u_g`` (``b_g`` when centered,
        the levels ``c_g`` when hierarchically centred).
        """
        out = {blk.name: blk.sl for blk, _ in self.fixed_blocks}
        for t, scale, eff, _, _ in self.terms:
            out[scale.name + "_log__"] = scale.sl
            if t.ident in self.corr:
                out[f"cpc_{t.ident}"] = self.corr[t.ident].sl
            out[eff.name] = eff.sl
        inside = set()
        for i, blk in enumerate(self.aux):  # the graph's one ordered vector per ordered chain
            if i + 1 < len(self.aux) and self.aux[i + 1].ordered and not blk.ordered:
                j = i + 1
                while j < len(self.aux) and self.aux[j].ordered:
                    j += 1
                out[f"{self.fam.aux_vector_name}_ordered__"] = slice(blk.sl.start, self.aux[j - 1].sl.stop)
                inside.update(range(i, j))
        for i, blk in enumerate(self.aux):
            if i not in inside:
                out[blk.value_var] = blk.sl
        for blk, _ in self.zi_blocks + self.disp_blocks:
            out[blk.name] = blk.sl
        return out

    # ------------------------------------------------------------------ expand
    def expand(self, x) -> dict:
        """The ``posterior`` variables (names of :func:`bayes_glmm.bayes.build_pymc_model`)."""
        x = np.asarray(x, dtype=float)
        out, cf = {}, np.empty(self.spec.p)
        for blk, cols in self.fixed_blocks:
            cf[cols] = x[blk.sl] / self.xd[cols]  # the user's scale
            out[blk.name] = x[blk.sl].copy() if len(cols) > 1 or blk.name == "slopes" else x[blk.sl][0]
        if self.icol is not None:
            slopes = [j for j in range(self.spec.p) if j != self.icol]
            cf[self.icol] = cf[self.icol] - float(cf[slopes] @ self.xm[slopes])
        out["beta"] = cf
        for t, scale, eff, cen, _ in self.terms:
            v = np.exp(x[scale.sl])
            sd = np.sqrt(v) if scale.name.startswith("var_") else v
            if t.ident in self.sd_index:
                out[scale.name] = sd
                sd = sd[self.sd_index[t.ident]]
            ch = self.corr.get(t.ident)
            if ch is not None:  # the graph's free variable: packed Cholesky factor of the covariance
                Lc = cpc_chol(x[ch.sl], t.q, ch.a, ch.const, ch.cov)[0]
                out[f"chol_{t.ident}"] = (sd[:, None] * Lc)[np.tril_indices(t.q)]
            if scale.name.startswith("var_"):
                out[scale.name] = v
            out[f"sd_{t.ident}"] = sd
            e = x[eff.sl].reshape(t.n_levels, t.q)
            if ch is not None:  # bayes.py's graph: chol (free; posterior predictive reads it), sd, corr, u, b
                out[f"corr_{t.ident}"] = Lc @ Lc.T
                out[eff.name] = e.copy()
                out[f"b_{t.ident}"] = _effects_of(e, sd, Lc, False)
                continue
            if cen is not True:  # the graph's free u_<g> or z_<g>
                out[eff.name] = e.copy()
            out[f"b_{t.ident}"] = _effects_of(e, sd, None, cen, self._level(t, x))
        prev = 0.0
        for blk in self.aux:
            z = float(x[blk.sl][0])
            out[blk.name] = prev = float(np.exp(z)) if blk.positive else prev + float(np.exp(z)) if blk.ordered else z
        if self.zi_blocks:
            bz = np.empty(self.spec.p_zi)
            for blk, cols in self.zi_blocks:
                bz[cols] = x[blk.sl] / self.zi_xd[cols]
                out[blk.name] = x[blk.sl].copy() if blk.name == f"{self.spec.zi_label}_slopes" else x[blk.sl][0]
            if self.zi_icol is not None:
                sl = [j for j in range(self.spec.p_zi) if j != self.zi_icol]
                bz[self.zi_icol] = bz[self.zi_icol] - float(bz[sl] @ self.zi_xm[sl])
            out[f"beta_{self.spec.zi_label}"] = bz
        if self.disp_blocks:
            bd = np.empty(self.spec.p_disp)
            for blk, cols in self.disp_blocks:
                bd[cols] = x[blk.sl] / self.disp_xd[cols]
                out[blk.name] = x[blk.sl].copy() if blk.name == "disp_slopes" else x[blk.sl][0]
            if self.disp_icol is not None:
                sl = [j for j in range(self.spec.p_disp) if j != self.disp_icol]
                bd[self.disp_icol] = bd[self.disp_icol] - float(bd[sl] @ self.disp_xm[sl])
            out["beta_disp"] = bd
        return out

    def expand_draws(self, X) -> dict:
        """The ``posterior`` variables of many draws at once (vectorized :meth:`expand`).

        Parameters
        ----------
        X : ndarray (..., ndim)
            Unconstrained draws, e.g. (chain, draw, ndim).

        Returns
        -------
        dict
            ``beta``, ``sd_<g>``, ``corr_<g>`` (the q x q matrix), the family's auxiliary
            parameters (``sigma``, ``theta``...), ``beta_zi``, ``b_<g>``, each with the leading shape of ``X``.
        """
        X = np.asarray(X, dtype=float)
        lead = X.shape[:-1]

        def coefs(blocks, p, icol, xm, xd):
            cf = np.empty(lead + (p,))
            for blk, cols in blocks:
                cf[..., cols] = X[..., blk.sl] / xd[cols]  # the user's scale
            if icol is not None:
                sl = [j for j in range(p) if j != icol]
                cf[..., icol] -= cf[..., sl] @ xm[sl]
            return cf

        out = {"beta": coefs(self.fixed_blocks, self.spec.p, self.icol, self.xm, self.xd)}
        bs = {}
        for t, scale, eff, cen, _ in self.terms:
            k = t.ident
            v = np.exp(X[..., scale.sl])
            sd = np.sqrt(v) if scale.name.startswith("var_") else v
            if k in self.sd_index:
                sd = sd[..., self.sd_index[k]]
            out[f"sd_{k}"] = sd
            e = X[..., eff.sl].reshape(lead + (t.n_levels, t.q))
            ch = self.corr.get(k)
            if ch is not None:
                y = X[..., ch.sl]
                with np.errstate(over="ignore"):
                    z, s = np.tanh(y), 1.0 / np.cosh(y)
                rows = ch.cov.corr_rows([z[..., i] for i in range(z.shape[-1])],
                                        [s[..., i] for i in range(s.shape[-1])], t.q, NUMPY_OPS)
                Lc = np.stack([np.stack([np.broadcast_to(np.asarray(a, dtype=float), lead) for a in row], axis=-1)
                               for row in rows], axis=-2)
                out[f"corr_{k}"] = Lc @ np.swapaxes(Lc, -1, -2)
                bs[f"b_{k}"] = _effects_of(e, sd, Lc, False)
            else:
                bs[f"b_{k}"] = _effects_of(e, sd, None, cen, self._level(t, X))
        prev = 0.0
        for blk in self.aux:
            z = X[..., blk.sl.start]
            out[blk.name] = prev = np.exp(z) if blk.positive else prev + np.exp(z) if blk.ordered else z.copy()
        if self.zi_blocks:
            out[f"beta_{self.spec.zi_label}"] = coefs(self.zi_blocks, self.spec.p_zi, self.zi_icol, self.zi_xm, self.zi_xd)
        if self.disp_blocks:
            out["beta_disp"] = coefs(self.disp_blocks, self.spec.p_disp, self.disp_icol, self.disp_xm, self.disp_xd)
        out.update(bs)
        return out

    def initial_point(self, seed, logp_grad=None) -> np.ndarray:
        """Start of a chain: typical values of the data + U(-1, 1) in every coordinate.

        Where the log-density or its gradient is not finite at that point (centred effects of
        an inverse-link Gamma model jittered past eta = 0), the jitter is halved until they
        are (at most :data:`START_TRIES` times; the last point is returned whatever it is and
        the sampler reports it), so the start stays random but inside the support.
        ``logp_grad`` evaluates the density (default :meth:`logp_grad`; the native sampler
        passes its compiled one).

        The intercept starts at the link of the mean response (``default_scales``' location:
        log of the mean rate, the mean, 1 / mean; 0 on the logit/probit scales), whatever its
        prior says, so that counts of 1e7 start at eta = 16 and not at 0; slopes, effects and
        the zero-inflation coefficients at 0.  Log-scales start at 0 unless the typical scale of
        the data (``s_y`` for an SD's intercept column, ``s_y / sd(x)`` for a slope's,
        ``sd(y)`` for sigma) lies outside :data:`SCALE_RANGE`: then at its log, so the start
        does not depend on the units of y or of the columns either.
        """
        x0 = np.zeros(self.ndim)
        sc = default_scales(self.spec)
        lo, hi = np.log(SCALE_RANGE[0]), np.log(SCALE_RANGE[1])

        def log_typical(v):
            z = np.log(np.asarray(v, dtype=float))
            return np.where((z < lo) | (z > hi), z, 0.0)

        for blk, _ in self.fixed_blocks:
            if blk.name == "Intercept":
                x0[blk.sl] = sc["loc"]
        for (t, scale, *_), xs in zip(self.terms, sc["xr_sd"]):
            z = log_typical(sc["s_y"] / np.asarray(xs, dtype=float))
            if t.ident in self.sd_index:  # shared SDs: the first coefficient's of each
                idx = self.sd_index[t.ident]
                z = np.asarray([z[int(np.flatnonzero(idx == k)[0])] for k in range(t.cov.n_sd(t.q))])
            x0[scale.sl] = 2.0 * z if scale.name.startswith("var_") else z
        units = {a.name for a in self.fam.aux_params if a.response_units}
        starts = [a.ml_start(0.0, 0.0) for a in self.fam.aux_params]
        for i, blk in enumerate(self.aux):  # an ordered chain at the family's starts (ordinal: the marginal)
            if blk.ordered:
                x0[blk.sl] = np.log(max(starts[i] - starts[i - 1], 1e-3))
            elif i + 1 < len(self.aux) and self.aux[i + 1].ordered:
                x0[blk.sl] = starts[i]
        for blk in self.aux:
            if blk.name in units:  # a residual SD: on the response's scale, whatever the link
                sy = float(np.std(np.asarray(self.spec.y, dtype=float)))
                x0[blk.sl] = log_typical(sy if sy > 0 else 1.0)
        if self.disp_blocks and self.fam.aux_params[0].response_units:
            for blk, _ in self.disp_blocks:  # a modelled residual SD: its intercept likewise
                if blk.name == "disp_Intercept":
                    sy = float(np.std(np.asarray(self.spec.y, dtype=float)))
                    x0[blk.sl] = log_typical(sy if sy > 0 else 1.0)
        if self.data_rich:
            x0 = self._mode_start(x0)
        jitter = np.random.default_rng(seed).uniform(-1.0, 1.0, self.ndim)
        return finite_start(x0, jitter, logp_grad or self.logp_grad)

    def _mode_start(self, x0) -> np.ndarray:
        """Where the chains of a data-rich model start (computed once, then kept): ``x0``
        with the data-rich coordinates at their conditional mode.

        With counts of 1e12 the data know the levels and slopes to ~1e-7: typical values are
        then ~1e5 posterior SDs from the posterior in the (SD-scaled) coordinates, and a
        warm-up that has to travel that far adapts its metric to the journey (one chain of
        two stuck at R-hat 1.9).  L-BFGS maximizes the density over those coordinates alone
        (the levels of a hierarchically centred term, the information-scaled slopes: a
        well-conditioned, nearly separable problem) from ``x0``; the intercept and the SD
        of a hierarchically centred term then start at the mean and SD of its levels (a joint
        mode would be the wrong target: towards SD 0 the density of centred levels grows
        without bound).  ``x0`` where the search finds no higher finite density.
        """
        if self._start is not None:
            return self._start.copy()
        from scipy.optimize import minimize

        rich = [np.arange(eff.sl.start, eff.sl.stop) for t, _, eff, cen, _ in self.terms if cen == HIERARCHICAL]
        scaled = self.xd != column_scales(self.spec.X, self.icol)
        rich = np.unique(np.concatenate(rich + [np.asarray(self.coef_idx[scaled], dtype=np.intp)]))

        def neg(v):
            z = x0.copy()
            z[rich] = v
            with np.errstate(all="ignore"):
                lp, g = self.logp_grad(z)
            if not (np.isfinite(lp) and np.all(np.isfinite(g))):
                return np.inf, np.zeros(len(rich))
            return -lp, -g[rich]

        x = x0.copy()
        try:
            res = minimize(neg, x0[rich], jac=True, method="L-BFGS-B",
                           options={"maxiter": 500, "ftol": 0.0, "gtol": 1e-6})
            if np.isfinite(res.fun) and res.fun <= neg(x0[rich])[0] and np.all(np.isfinite(res.x)):
                x[rich] = res.x
        except (ValueError, FloatingPointError, OverflowError):  # pragma: no cover - a start, not a result
            pass
        for t, scale, eff, cen, _ in self.terms:
            if cen == HIERARCHICAL:
                a, s = self.level_scales[t.ident]
                c = a + s * x[eff.sl]
                sd = float(np.std(c))
                if np.isfinite(sd) and sd > 0:
                    x[self.mu_idx] = float(np.mean(c))
                    x[scale.sl] = 2.0 * np.log(sd) if scale.name.startswith("var_") else np.log(sd)
        if np.isfinite(self.logp_grad(x)[0]):
            self._start = x
        else:  # pragma: no cover - a start, not a result
            self._start = x0.copy()
        return self._start.copy()


def expand_layout(density: GlmmDensity, dims: dict):
    """(names, shapes, dims) of :meth:`GlmmDensity.expand`'s output for nutpie.

    The graph's dims are kept where they fit the shape (the q x q correlation matrix that
    expand writes is turned into the graph's pairs afterwards, by ``pointwise.tidy_posterior``).
    """
    ex = density.expand(density.initial_point(0))
    names = list(ex)
    shapes = [tuple(np.shape(ex[n])) for n in names]
    kept = {n: tuple(dims[n]) for n, s in zip(names, shapes) if n in dims and len(dims[n]) == len(s)}
    return names, shapes, kept


def compile_numpy(density: GlmmDensity, coords: dict, dims: dict):
    """A nutpie model (``nutpie.compiled_pyfunc``) evaluating ``density`` in NumPy.

    Parameters
    ----------
    density : GlmmDensity
    coords, dims : dict
        Coordinates and dims of the posterior variables (from the PyMC model).
    """
    import pandas as pd
    from nutpie.compiled_pyfunc import from_pyfunc

    names, shapes, kept = expand_layout(density, dims)

    def make_logp_fn():
        return lambda x, **_: density.logp_grad(x)

    def make_expand_fn(seed1, seed2, chain):
        def expand(x, **_):
            e = density.expand(x)
            return {n: np.asarray(e[n], dtype="float64").reshape(s) for n, s in zip(names, shapes)}
        return expand

    return from_pyfunc(density.ndim, make_logp_fn, make_expand_fn, [np.dtype("float64")] * len(names),
                       shapes, names, coords={k: pd.Index(v) for k, v in coords.items()},
                       dims=kept, make_initial_point_fn=density.initial_point)

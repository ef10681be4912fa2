"""What every sampler's output gets: the tidy ``posterior``, ``log_likelihood``, ``posterior_predictive``.

Whatever sampler ran (numba, NumPy, nutpie on the graph, PyMC, numpyro), the
``posterior`` group holds what a user looks at, named as in lme4/brms terms:

``beta``        (``coef``) fixed effects on the original predictor scale
``sd_<g>``      (``<g>_coef``) random-effect standard deviations of term ``<g>``
``corr_<g>``    (``<g>_corr``) their correlations, off-diagonal pairs only (lme4's order)
``rho_<g>``     (``<g>_rho``) a structured term's own correlation parameters
                (:meth:`CovStructure.corr_values`: rho of ``ar1`` and ``cs``, the lag
                correlations of ``toep``; not for ``us``, whose are ``corr_<g>``)
``sigma``, ``theta``, ...  the family's auxiliary parameters (``family.aux_params``: the
                gaussian residual SD ``sigma``, the dispersion ``theta`` / ``phi`` / ``shape``...)
``beta_zi``     (``zi_coef``) zero-inflation coefficients (logit scale; models with ``zi=``)
``beta_disp``   (``disp_coef``) dispersion-model coefficients (models with ``disp=``, whose first
               auxiliary parameter is then ``exp(X_disp @ beta_disp)`` per row, not a variable)
``b_<g>``       (``<g>_level``, ``<g>_coef``) random effects (BLUP counterparts)

The sampler's coordinates (the centered intercept, ``slopes``, non-centered ``u_<g>``,
CPCs, log-scales) are not kept: they are functions of the above.  The pointwise
log-likelihood and posterior predictive draws are computed here from ``beta``, ``b_<g>``,
the auxiliary parameters and ``beta_zi`` with :class:`~bayes_glmm.families.Family` and
:func:`~bayes_glmm.families.zi_loglik` (NumPy), so no PyTensor function is compiled after
sampling.  This module does not import PyMC.
"""
from __future__ import annotations

import numpy as np

from ..covariance import corr_pairs
from ..spec.model_spec import ModelSpec

__all__ = ["posterior_names", "structure_terms", "tidy_posterior", "eta_draws", "zi_eta_draws", "add_log_likelihood",
           "draw_blocks", "posterior_predictive", "pointwise_loglik", "aux_draws", "disp_eta_draws"]


def posterior_names(spec: ModelSpec) -> list:
    """The variables of the ``posterior`` group, in order."""
    names = ["beta"]
    for t in spec.terms:
        names.append(f"sd_{t.ident}")
        if t.correlated and t.q > 1:
            names.append(f"corr_{t.ident}")
    names += [aux.name for aux in spec.family.aux_params[1 if spec.has_disp else 0:]]
    if spec.has_zi:
        names.append(f"beta_{spec.zi_label}")
    if spec.has_disp:
        names.append("beta_disp")
    return names + [f"b_{t.ident}" for t in spec.terms]


def structure_terms(spec: ModelSpec) -> list:
    """The terms whose structure reports its own correlation parameters (``rho_<g>``): those
    with correlation parameters whose labels are not the pairs (``ar1``, ``cs``, ``toep``)."""
    out = []
    for t in spec.terms:
        cn = list(t.coef_names)
        pairs = [f"{cn[j]}, {cn[i]}" for j, i in corr_pairs(t.q)]
        if t.cov.n_corr(t.q) > 0 and list(t.cov.corr_names(cn)) != pairs:
            out.append(t)
    return out


def _structure_params(da, t):
    """``rho_<g>`` (chain, draw, n) from the (chain, draw, pairs) correlations of term t."""
    import xarray as xr

    a = np.asarray(da, dtype=float)
    q = t.q
    R = np.broadcast_to(np.eye(q), a.shape[:-1] + (q, q)).copy()
    for m, (j, i) in enumerate(corr_pairs(q)):
        R[..., i, j] = R[..., j, i] = a[..., m]
    flat = R.reshape(-1, q, q)
    vals = np.stack([t.cov.corr_values(r) for r in flat]).reshape(a.shape[:-1] + (-1,))
    return xr.DataArray(vals, dims=("chain", "draw", f"{t.ident}_rho"),
                        coords={"chain": da["chain"].values, "draw": da["draw"].values,
                                f"{t.ident}_rho": list(t.cov.corr_names(list(t.coef_names)))})


def _pairs_from_matrix(da, t):
    """A (chain, draw, q, q) correlation matrix as the (chain, draw, pairs) vector."""
    import xarray as xr

    a = np.asarray(da)
    q = t.q
    pairs = corr_pairs(q)
    cn = list(t.coef_names)
    vals = np.stack([a[..., i, j] for j, i in pairs], axis=-1)
    return xr.DataArray(vals, dims=("chain", "draw", f"{t.ident}_corr"),
                        coords={"chain": da["chain"].values, "draw": da["draw"].values,
                                f"{t.ident}_corr": [f"{cn[j]}, {cn[i]}" for j, i in pairs]})


def tidy_posterior(idata, spec: ModelSpec) -> None:
    """Keep only :func:`posterior_names` in ``idata.posterior`` (in place).

    Correlations stored as a q x q matrix become the vector of off-diagonal pairs; a
    structured term gets its own parameters ``rho_<g>`` (:func:`structure_terms`).
    """
    post = idata.posterior
    keep = posterior_names(spec)
    missing = [n for n in keep if n not in post]
    if missing:
        raise RuntimeError(f"the sampler returned no {missing} (have {list(post.data_vars)})")
    ds = post[keep]
    for t in spec.terms:
        k = f"corr_{t.ident}"
        if k in ds and ds[k].ndim == 4:
            ds = ds.drop_vars(k).assign({k: _pairs_from_matrix(ds[k], t)})
    ds = ds[keep]
    rho = {f"rho_{t.ident}": _structure_params(ds[f"corr_{t.ident}"], t) for t in structure_terms(spec)}
    if rho:  # each after its term's corr_<g>
        order = [v for n in keep for v in ([n, "rho_" + n[5:]] if n.startswith("corr_") else [n])]
        ds = ds.assign(rho)[[v for v in order if v in keep or v in rho]]
    ds = ds.drop_vars([c for c in ds.coords if c not in ds.dims and c not in ("chain", "draw")])
    ds.attrs = dict(post.attrs)
    idata.posterior = ds


#: bytes of one (draws, n, q) temporary of a block of draws in :func:`eta_draws` and
#: :func:`pointwise_loglik` (the ``b_<g>[draws, codes]`` gather; the family's log-density makes a
#: few (draws, n) ones, so a block takes ~64 MB in all): with 2,000 draws x 100k rows the
#: whole-array way needed several 1.6 GB temporaries
BLOCK_BYTES = 16 * 2**20


def draw_blocks(spec: ModelSpec, n_draws: int, block_bytes: int | None = None) -> list:
    """Slices of consecutive draws whose (draws, n, q) temporaries stay within ``block_bytes``
    (default :data:`BLOCK_BYTES`).

    At least two draws per block (unless there is one draw in all): a one-row ``beta @ X.T`` is
    a matrix-vector product in BLAS, whose rounding differs from the matrix product's, and the
    blocks are to give the whole-array values exactly.
    """
    width = 8 * max(spec.n, 1) * max([1] + [t.q for t in spec.terms])
    step = max(2, int(BLOCK_BYTES if block_bytes is None else block_bytes) // width)
    starts = list(range(0, n_draws, step))
    if len(starts) > 1 and n_draws - starts[-1] < 2:  # no one-draw block at the end
        starts.pop()
    return [slice(a, e) for a, e in zip(starts, starts[1:] + [n_draws])]


def _draw_rows(post, name: str, tail: tuple, draws: slice | None) -> np.ndarray:
    """``post[name]`` as (chain * draw, *tail), only the draws in ``draws`` (a view where possible)."""
    a = np.asarray(post[name])
    a = a.reshape((a.shape[0] * a.shape[1],) + tail)
    return a if draws is None else a[draws]


def eta_draws(spec: ModelSpec, post, *, draws: slice | None = None, block_bytes: int | None = None) -> np.ndarray:
    """Linear predictor per draw, (chain * draw, n), from ``beta`` and ``b_<g>``.

    ``beta @ X.T`` is one matrix product into the result; the random effects are added in
    blocks of draws (:func:`draw_blocks`), so the temporaries stay bounded whatever the number
    of draws; the arithmetic is the whole-array one (same values).  ``draws``: a slice of the
    flattened draws only.
    """
    S = post.sizes["chain"] * post.sizes["draw"]
    idx = range(S)[draws] if draws is not None else range(S)
    out = np.empty((len(idx), spec.n))
    X = np.asarray(spec.X).T
    off = np.asarray(spec.offset)[None, :]
    beta = _draw_rows(post, "beta", (-1,), draws)
    effects = [(t, _draw_rows(post, f"b_{t.ident}", (t.n_levels, t.q), draws)) for t in spec.terms]
    np.matmul(beta, X, out=out)  # one BLAS call: blocks of few draws would pay its overhead per block
    for blk in draw_blocks(spec, len(idx), block_bytes):
        eta = out[blk]
        eta += off
        for t, b in effects:
            eta += np.einsum("nq,snq->sn", t.Xr, b[blk][:, t.codes])
    return out


def _obs_coords(spec: ModelSpec) -> np.ndarray:
    ri = spec.row_index
    return np.asarray(ri) if ri is not None and len(ri) == spec.n else np.arange(spec.n)


def aux_draws(spec: ModelSpec, post, X_disp=None, *, draws: slice | None = None) -> dict:
    """The family's auxiliary parameters, name -> (chain * draw, 1) column of draws
    (``family.aux_params`` order; empty for a family without any).  With a dispersion formula the
    first is ``exp(X_disp @ beta_disp)`` per draw and row, (chain * draw, n) (``X_disp``: new
    rows' design, default the fitted one's; ``draws``: a slice of the flattened draws only)."""
    out = {}
    for i, aux in enumerate(spec.family.aux_params):
        if i == 0 and spec.has_disp:
            out[aux.name] = np.exp(disp_eta_draws(spec, post, X_disp, draws=draws))
        else:
            out[aux.name] = _draw_rows(post, aux.name, (1,), draws)
    return out


def disp_eta_draws(spec: ModelSpec, post, X_disp=None, *, draws: slice | None = None) -> np.ndarray | None:
    """Log of the family's first auxiliary parameter per draw and row, (chain * draw, n), or
    None without ``disp=``."""
    if not spec.has_disp:
        return None
    bd = _draw_rows(post, "beta_disp", (spec.p_disp,), draws)
    return bd @ np.asarray(spec.X_disp if X_disp is None else X_disp, dtype=float).T


def zi_eta_draws(spec: ModelSpec, post, X_zi=None, *, draws: slice | None = None) -> np.ndarray | None:
    """Zero-inflation linear predictor per draw, (chain * draw, n), or None without ``zi=``."""
    if not spec.has_zi:
        return None
    bz = _draw_rows(post, f"beta_{spec.zi_label}", (spec.p_zi,), draws)
    return bz @ np.asarray(spec.X_zi if X_zi is None else X_zi, dtype=float).T


def pointwise_loglik(spec: ModelSpec, post, rows_loglik=None, *, dtype=np.float64,
                     block_bytes: int | None = None) -> np.ndarray:
    """(chain * draw, n) weighted log-likelihood: the graph's ``y`` node, row by row.

    ``rows_loglik(eta, eta_zi, aux)``, if given, evaluates the unweighted conditional
    log-density (the native sampler's generated C,
    :meth:`bayes_glmm.bayes.native.NativeModel.rows_loglik`); else NumPy.  Computed in blocks
    of draws (:func:`draw_blocks`, ``block_bytes``) written into the result, so the peak memory
    is the (chain * draw, n) result of ``dtype`` (float32 halves it) plus one block.
    """
    S = post.sizes["chain"] * post.sizes["draw"]
    # float64: the linear predictors are computed once and overwritten, block by block, by the
    # log-likelihood; float32: each block's linear predictors apart (no float64 array of all draws)
    wide = np.dtype(dtype) == np.float64
    out = eta_draws(spec, post, block_bytes=block_bytes) if wide else np.empty((S, spec.n), dtype=dtype)
    y = np.asarray(spec.y)[None, :]
    w = np.asarray(spec.weights)
    unit = bool(np.all(w == 1.0))
    for sl in draw_blocks(spec, S, block_bytes):
        eta = out[sl] if wide else eta_draws(spec, post, draws=sl, block_bytes=block_bytes)
        ez = zi_eta_draws(spec, post, draws=sl)
        aux = aux_draws(spec, post, draws=sl)
        if rows_loglik is not None and spec.has_disp:  # the modelled one as its log per row
            rest = list(aux.values())[1:]
            ll = rows_loglik(eta, ez, np.concatenate(rest, axis=1) if rest else None,
                             eta_disp=disp_eta_draws(spec, post, draws=sl))
        elif rows_loglik is not None:  # the auxiliary parameters as a (draws, A) matrix
            ll = rows_loglik(eta, ez, np.concatenate(list(aux.values()), axis=1) if aux else None)
        else:
            ll = spec.family.loglik(y, eta, trials=spec.trials, **aux)
            if ez is not None:
                ll = spec.family.zero_part_loglik(ll, y, ez)
        out[sl] = ll if unit else ll * w[None, :]
    return out


def add_log_likelihood(idata, spec: ModelSpec, rows_loglik=None, *, dtype=np.float64) -> None:
    """Pointwise (weighted) log-likelihood with :meth:`Family.loglik` (group ``log_likelihood``).

    Same formula as the graph's ``y`` node (prior weights multiply each row; zero inflation
    through :func:`~bayes_glmm.families.zi_loglik`).  ``dtype``: float64, or float32 for a lean
    store (half the memory; :func:`pointwise_loglik`).
    """
    import xarray as xr

    post = idata.posterior
    C, D = post.sizes["chain"], post.sizes["draw"]
    ll = pointwise_loglik(spec, post, rows_loglik, dtype=dtype)
    idata.add_groups(log_likelihood=xr.Dataset(
        {"y": (("chain", "draw", "obs"), ll.reshape(C, D, -1))},
        coords={"chain": post["chain"].values, "draw": post["draw"].values, "obs": _obs_coords(spec)}))


def add_observed_data(idata, spec: ModelSpec) -> None:
    """The ``observed_data`` group (``y``, dim ``obs``) if the sampler did not write one."""
    import xarray as xr

    if "observed_data" in idata.groups():
        return
    y = np.asarray(spec.y)
    y = y if spec.family.continuous else y.astype(np.int64)
    idata.add_groups(observed_data=xr.Dataset({"y": (("obs",), y)}, coords={"obs": _obs_coords(spec)}))


def posterior_predictive(idata, spec: ModelSpec, *, random_seed=None, extend: bool = True):
    """Posterior predictive draws of ``y`` (group ``posterior_predictive``), one per draw.

    Parameters
    ----------
    idata : arviz.InferenceData
        With a tidy ``posterior`` (:func:`tidy_posterior`).
    spec : ModelSpec
    random_seed : int, optional
    extend : bool
        Add the group to ``idata`` (default); otherwise return a new InferenceData with the
        group only.
    """
    import arviz as az
    import xarray as xr

    post = idata.posterior
    C, D = post.sizes["chain"], post.sizes["draw"]
    rng = np.random.default_rng(random_seed)
    trials = None if spec.trials is None else np.asarray(spec.trials)[None, :]
    y = spec.family.random(eta_draws(spec, post), rng, trials=trials, zi_eta=zi_eta_draws(spec, post),
                           **aux_draws(spec, post))
    ds = xr.Dataset({"y": (("chain", "draw", "obs"), y.reshape(C, D, -1))},
                    coords={"chain": post["chain"].values, "draw": post["draw"].values,
                            "obs": _obs_coords(spec)})
    if not extend:
        return az.InferenceData(posterior_predictive=ds)
    if "posterior_predictive" in idata.groups():
        idata.posterior_predictive = ds
    else:
        idata.add_groups(posterior_predictive=ds)
    return idata

""":func:`fit_inla`: an approximate posterior from the Laplace machinery, as ``BayesResults``.

Steps (each a pure function of the model and priors but for the random draws):

1. the joint posterior mode of ``(psi, w)`` and its Hessian (:class:`.laplace_marginal.Problem`);
2. a design over ``psi`` standardized by that Hessian (:mod:`.quadrature`), and at each node the
   nested Laplace step: the inner mode of the coefficients, their Hessian and the random
   effects' conditional Gaussian (:meth:`Problem.node`);
3. draws: ``psi`` from the interpolated marginal, then ``w`` and ``u`` from the nearest node's
   conditional Gaussians, their means moved to first order with ``psi`` (and ``u``'s with ``w``;
   an ordinal model's ``w`` also by the skewness correction at the mode, :meth:`Problem.mean_shift`);
4. an ``InferenceData`` with the same variables, dims and groups as ``sample()``'s
   (:mod:`bayes_glmm.bayes.pointwise` for the tidy posterior and the log-likelihood).
"""
from __future__ import annotations

import time
import warnings

import numpy as np

from ..ml.laplace import TINY_GROUP_TRIALS
from ..spec.validate import user_stacklevel
from .coords import Layout
from .laplace_marginal import Problem
from .quadrature import default_points, design, draw_z, node_log_weights

__all__ = ["fit_inla", "LOGLIK_MAX_VALUES", "tiny_binary_groups_note"]

#: above this many values (draws x rows) the log_likelihood group is skipped by default
#: (the threshold of ``sample()``, :data:`bayes_glmm.bayes.sampling.LOGLIK_MAX_VALUES`)
LOGLIK_MAX_VALUES = 50_000_000
#: draws of the random effects solved at once (bounds the memory of many levels)
DRAW_CHUNK = 200


def tiny_binary_groups_note(spec, n_agq: int = 1):
    """The warning for binary/binomial data with few trials per group (median at most
    :data:`~bayes_glmm.ml.laplace.TINY_GROUP_TRIALS` for some term), where the Laplace step
    underestimates the random-effect SD; None otherwise (or when ``n_agq > 1``)."""
    if not spec.family.is_binary or n_agq > 1:
        return None
    w = np.asarray(spec.weights, dtype=float) > 0
    trials = np.asarray(spec.trials, dtype=float) if spec.trials is not None else np.ones(spec.n)
    for t in spec.terms:
        per = np.bincount(np.asarray(t.codes)[w], weights=trials[w], minlength=t.n_levels)
        per = per[per > 0]
        if per.size and float(np.median(per)) <= TINY_GROUP_TRIALS:
            scalar = len(spec.terms) == 1 and t.q == 1
            fix = ("fit_inla(n_agq=9) (adaptive Gauss-Hermite quadrature in the inner step) or sample() (NUTS)"
                   if scalar else "sample() (NUTS)")
            return (f"fit_inla: binary data with few observations per group (median {float(np.median(per)):g} "
                    f"per level of {t.group!r}): the Laplace step is biased towards small random-effect SDs "
                    f"there, so the approximate posterior may be too narrow and shifted; use {fix}")
    return None


#: median binomial trials per group up to which ``n_agq="auto"`` integrates a binary model's one
#: scalar random effect by AGQ(:data:`AUTO_AGQ_NODES`) in the inner step: the Laplace step's bias
#: in the SD (2% at 10 trials per group, 1% at 15 with SD 1; :data:`~bayes_glmm.ml.laplace.TINY_GROUP_TRIALS`)
#: is a sizeable fraction of the posterior SD once there are hundreds of groups (bench_inla.py:
#: 400 groups of 8, Laplace's 10/50/90% quantiles of the SD 0.4-0.5 posterior SDs below NUTS's,
#: AGQ(9)'s within 0.1)
AUTO_AGQ_TRIALS = 20
AUTO_AGQ_NODES = 9


def resolve_n_agq(spec, n_agq) -> int:
    """``n_agq="auto"``: :data:`AUTO_AGQ_NODES` for a binary model with one scalar random term
    and at most :data:`AUTO_AGQ_TRIALS` median trials per group, else 1 (Laplace)."""
    if not (isinstance(n_agq, str) and n_agq == "auto"):
        return n_agq
    if not spec.family.is_binary or len(spec.terms) != 1 or spec.terms[0].q != 1:
        return 1
    t = spec.terms[0]
    w = np.asarray(spec.weights, dtype=float) > 0
    trials = np.asarray(spec.trials, dtype=float) if spec.trials is not None else np.ones(spec.n)
    per = np.bincount(np.asarray(t.codes)[w], weights=trials[w], minlength=t.n_levels)
    per = per[per > 0]
    return AUTO_AGQ_NODES if per.size and float(np.median(per)) <= AUTO_AGQ_TRIALS else 1


def _check_args(n_points, n_draws, n_agq):
    if n_points is not None and (not isinstance(n_points, (int, np.integer)) or n_points < 1):
        raise ValueError(f"n_points={n_points!r} must be a positive integer (Gauss-Hermite points per "
                         f"hyperparameter, e.g. 5), or None for the default")
    if not isinstance(n_draws, (int, np.integer)) or n_draws < 2:
        raise ValueError(f"n_draws={n_draws!r} must be an integer >= 2, e.g. 1000")
    if not isinstance(n_agq, (int, np.integer)) or n_agq < 1:
        raise ValueError(f"n_agq={n_agq!r} must be a positive integer (1: Laplace)")


def fit_inla(model, *, n_points: int | None = None, n_draws: int = 1000, n_agq: int | str = "auto", random_seed=None,
             log_likelihood: bool | None = None):
    """Approximate posterior by nested Laplace approximations and adaptive quadrature.

    See :meth:`bayes_glmm.GLMM.fit_inla` (the user-facing documentation).
    """
    t0 = time.perf_counter()
    spec = model.spec
    if isinstance(n_agq, str) and n_agq != "auto":
        raise ValueError(f"n_agq={n_agq!r} must be 'auto' or a positive integer (1: Laplace, e.g. 9)")
    n_agq = resolve_n_agq(spec, n_agq)
    _check_args(n_points, n_draws, n_agq)
    if not spec.terms:
        raise ValueError("fit_inla needs a random-effects term; for a fixed-effects model use sample()")
    if n_agq > 1 and (len(spec.terms) != 1 or spec.terms[0].q != 1):
        raise ValueError(f"n_agq={n_agq}: adaptive Gauss-Hermite quadrature applies to one scalar random "
                         f"term only (as fit_ml's); use n_agq=1")
    note = tiny_binary_groups_note(spec, n_agq)
    if note is not None:
        warnings.warn(note, UserWarning, stacklevel=user_stacklevel())
    rng = np.random.default_rng(random_seed)
    layout = Layout(spec, model.resolved_priors)
    prob = Problem(spec, layout, n_agq)
    m = layout.m
    v_hat, H, opt = prob.mode(prob.start())
    Hs = _pos_def(H)
    S = np.linalg.inv(Hs)
    Lp = np.linalg.cholesky(0.5 * (S[:m, :m] + S[:m, :m].T)) if m else np.zeros((0, 0))
    Hww, Hwp = Hs[m:, m:], Hs[m:, :m]
    Jwp = -np.linalg.solve(Hww, Hwp)  # d w* / d psi at the mode
    psi_hat, w_hat = v_hat[:m], v_hat[m:]
    shift = prob.mean_shift(v_hat, Hww)  # an ordinal model's thresholds: skewness-corrected means
    Z, lw, kind = design(m, n_points, rng)
    k = int(n_points or default_points(m)) if kind == "grid" else Z.shape[0]
    nodes = []
    for z in Z:
        psi = psi_hat + Lp @ z
        nodes.append(prob.node(psi, w_hat + Jwp @ (psi - psi_hat), Hww))
    logpost = np.array([nd.logpost for nd in nodes])
    lwn = node_log_weights(Z, lw, logpost, kind)
    zd, idx = draw_z(Z, logpost if kind == "grid" else lwn, kind, k, n_draws, rng)
    draws = _draws(layout, prob, nodes, psi_hat, Lp, Jwp, zd, idx, rng, shift)
    t_fit = time.perf_counter() - t0
    method = (f"approximate posterior: nested Laplace, {'n_agq=%d, ' % n_agq if n_agq > 1 else ''}"
              f"{'Gauss-Hermite grid %d^%d' % (k, m) if kind == 'grid' else 'importance sampling, %d nodes' % k}"
              f" over {m} variance/dispersion parameter(s)")
    info = {"method": "inla", "inference": method, "n_nodes": int(len(nodes)), "design": kind,
            "n_points": int(k), "n_agq": int(n_agq), "hyperparameters": layout.names(),
            "node_weights": np.exp(lwn).tolist(), "mode_converged": bool(opt.success),
            "n_deviance_evaluations": int(prob.n_evals), "fit_wall_time": float(t_fit)}
    idata = _inference_data(model, draws, info, log_likelihood, n_draws)
    from ..bayes.results import BayesResults

    res = BayesResults(model, idata)
    res.method = method
    return res


def _pos_def(H):
    H = 0.5 * (H + H.T)
    lam, V = np.linalg.eigh(H)
    if np.all(lam > 0):
        return H
    warnings.warn("fit_inla: the Hessian of the log posterior at its mode is not positive definite "
                  f"(smallest eigenvalue {lam.min():.3g}); the approximation is unreliable, use sample()",
                  UserWarning, stacklevel=user_stacklevel())
    return (V * np.maximum(np.abs(lam), 1e-6 * np.max(np.abs(lam)))) @ V.T


def _draws(layout, prob, nodes, psi_hat, Lp, Jwp, zd, idx, rng, shift=None) -> dict:
    """Posterior draws in the natural parameters: psi from ``zd``, w and u from the nodes'
    conditional Gaussians (``idx``: each draw's node; ``shift``: added to w's means)."""
    spec, s = layout.spec, prob.s
    n = zd.shape[0]
    psi = psi_hat[None, :] + zd @ Lp.T
    W = np.empty((n, layout.nw))
    X = []
    for j, nd in enumerate(nodes):
        sel = np.flatnonzero(idx == j)
        if sel.size == 0:
            continue
        mean = nd.w[None, :] + (psi[sel] - nd.psi[None, :]) @ Jwp.T
        if shift is not None:
            mean = mean + shift[None, :]
        C = np.linalg.cholesky(np.linalg.inv(nd.Hw))
        W[sel] = mean + rng.standard_normal((sel.size, layout.nw)) @ C.T
    X = np.array([layout.to_ml(psi[i], W[i]) for i in range(n)])
    U = np.empty((n, s.m))
    for j, nd in enumerate(nodes):
        sel = np.flatnonzero(idx == j)
        for c in range(0, sel.size, DRAW_CHUNK):
            part = sel[c:c + DRAW_CHUNK]
            mean = nd.u[None, :] + (X[part] - nd.x[None, :]) @ nd.du.T
            U[part] = mean + nd.factor.backward(rng.standard_normal((s.m, part.size))).T
    out = {"beta": W[:, :spec.p]}
    pos = spec.p
    if spec.has_zi:
        out[f"beta_{spec.zi_label}"] = W[:, pos:pos + spec.p_zi]
        pos += spec.p_zi
    if spec.has_disp:
        out["beta_disp"] = W[:, pos:pos + spec.p_disp]
    vals = [layout.term_values(p) for p in psi]
    for k, t in enumerate(spec.terms):
        q = t.q
        sd = np.array([v[k][0] for v in vals])
        Lam = np.array([v[k][1] for v in vals])  # (n, q, q) = diag(sd) C
        out[f"sd_{t.ident}"] = sd
        if t.correlated and q > 1:
            C = Lam / sd[:, :, None]
            out[f"corr_{t.ident}"] = np.einsum("sij,skj->sik", C, C)
        u = U[:, s.starts[k]:s.starts[k] + s.J[k] * q].reshape(n, s.J[k], q)
        out[f"b_{t.ident}"] = np.einsum("sjq,srq->sjr", u, Lam)
    for aux, i, _ in layout.aux:
        out[aux.name] = np.exp(psi[:, i]) if aux.support == "positive" else psi[:, i]
    out.update(layout.chain_values(W))  # an ordinal model's thresholds, by name
    return out


def _inference_data(model, draws: dict, info: dict, log_likelihood, n_draws: int):
    """``InferenceData`` as ``sample()`` builds it: the draws (two chains of independent draws), the graph's names,
    dims and coords, the tidy posterior, observed data and the pointwise log-likelihood."""
    import arviz as az

    from ..bayes.params import param_layout
    from ..bayes.pointwise import add_log_likelihood, add_observed_data, tidy_posterior

    spec = model.spec
    lay = param_layout(spec, model.resolved_priors, False)
    all_dims, all_coords = lay.dims, lay.coords
    # independent draws, laid out as two chains of half the draws when the number is even:
    # ArviZ's summaries and checks expect at least two chains (R-hat of independent draws is ~1)
    C = 2 if n_draws % 2 == 0 and n_draws >= 8 else 1
    post = {k: np.asarray(v).reshape((C, n_draws // C) + np.shape(v)[1:]) for k, v in draws.items()}
    dims = {nm: list(all_dims.get(nm, ())) for nm, v in post.items() if len(all_dims.get(nm, ())) == np.ndim(v) - 2}
    coords = {d: np.asarray(all_coords[d]) for ds in dims.values() for d in ds}
    idata = az.from_dict(posterior=post, coords=coords, dims=dims)
    tidy_posterior(idata, spec)
    add_observed_data(idata, spec)
    if log_likelihood is None and n_draws * spec.n > LOGLIK_MAX_VALUES:
        log_likelihood = False
        warnings.warn(f"log_likelihood group skipped: {n_draws * spec.n:.3g} values "
                      f"({n_draws * spec.n * 8 / 2**30:.1f} GiB); pass log_likelihood=True to compute it "
                      f"anyway", UserWarning, stacklevel=user_stacklevel())
    if log_likelihood is not False:
        add_log_likelihood(idata, spec)
    attrs = {k: v for k, v in info.items() if k != "node_weights"}
    idata.posterior.attrs.update(attrs)
    idata.posterior.attrs["sampler"] = "inla"
    idata.posterior.attrs["sampling_wall_time"] = info["fit_wall_time"]
    if hasattr(idata, "attrs"):
        idata.attrs.update({"method": "inla", "inference": info["inference"]})
    return idata

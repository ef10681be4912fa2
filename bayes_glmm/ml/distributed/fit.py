"""The optimizer of a Dask fit: :func:`bayes_glmm.ml.laplace.fit_glmm`'s steps on the sum of the
partitions' deviances and gradients.

Each evaluation sends ``x`` to every partition model (a future on its worker) and gathers one
float and one gradient vector per partition; their sums are exactly the whole data's deviance
and gradient because no random-effect level spans two partitions (checked from the level keys
the partitions report).  Everything else the in-memory fitter reads from the rows is rebuilt
from per-partition aggregates (:meth:`PartitionModel.summary
<bayes_glmm.ml.distributed.partition.PartitionModel.summary>`).
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd

from .partition import task_evaluate as _evaluate, task_info as _info, task_modes as _modes, task_reorder as _reorder, task_summary as _summary
from .plan import CROSSED_FIX

__all__ = ["fit_distributed", "GlobalDesign"]


@dataclasses.dataclass
class GlobalDesign:
    """What the driver knows of the whole data: sizes, the terms with their global levels (no
    rows), and the per-term conditional modes gathered at the optimum."""

    n: int
    n_dropped: int
    n_partitions: int
    terms: tuple
    fixed_names: tuple
    b: list
    b_sd: list


class _Evaluator:
    """The distributed criterion: ``x -> sum over partitions`` (deviance, gradient)."""

    def __init__(self, client, futs):
        self.client, self.futs, self.calls, self.seconds = client, futs, 0, 0.0

    def __call__(self, x, n_agq, grad):
        self.calls += 1
        x = np.asarray(x, dtype=float)
        t0 = time.perf_counter()
        out = self.client.gather(self.client.map(_evaluate, self.futs, x=x, n_agq=n_agq, grad=grad, pure=False))
        self.seconds += time.perf_counter() - t0
        dev = float(sum(d for d, _ in out))
        if not grad:
            return dev
        return dev, np.sum([g for _, g in out], axis=0)


def _global_terms(tpl, sums):
    """The template's terms with the data's levels (global order), column moments for the scale
    heuristics, and ``(order, per-partition term summaries)``; ValueError when a level lies in
    two partitions."""
    from ...spec.model_spec import RandomTerm

    out, info = [], []
    for k, t in enumerate(tpl.terms):
        parts = [s["terms"][k] for s in sums]
        keys = parts[0]["keys"].append([p["keys"] for p in parts[1:]]) if len(parts) > 1 else parts[0]["keys"]
        labels = pd.Index(np.concatenate([np.asarray(p["labels"], dtype=object) for p in parts]), dtype=object)
        if not keys.is_unique:
            dup = keys[keys.duplicated()][:3]
            raise ValueError(f"levels of {t.group!r} (e.g. {list(map(str, dup))}) occur in more than one partition: "
                             f"the term is not nested in the partitioning factor, so its random effects do not "
                             f"separate across partitions. " + CROSSED_FIX)
        order = keys.argsort()  # the in-memory level order: sorted values, categories in order
        rows = sum(p["rows"] for p in parts)
        s1 = np.sum([p["xr_sum"] for p in parts], axis=0)
        s2 = np.sum([p["xr_sq"] for p in parts], axis=0)
        mean = s1 / rows
        sd = np.sqrt(np.maximum(s2 / rows - mean ** 2, 0.0))
        # two rows with the data's column means, SDs and root mean squares: what the optimizer's
        # scale heuristics (theta_scales, the boundary checks) read from a term's columns
        Xr = np.vstack([mean + sd, mean - sd])
        out.append(RandomTerm(name=t.name, group=t.group, coef_names=t.coef_names, correlated=t.correlated,
                              codes=np.zeros(2, dtype=np.int64), levels=labels[order], Xr=Xr, cov=t.cov))
        info.append({"order": order, "rows": rows, "mean": mean, "sd": sd,
                     "trials": np.concatenate([p["trials"] for p in parts])[order]})
    return out, info


def _lme4_order(terms, info):
    idx = sorted(range(len(terms)), key=lambda i: -terms[i].n_levels)  # stable, as build_spec sorts
    return [terms[i] for i in idx], [info[i] for i in idx]


def _multimodal_prone(terms, info):
    """:func:`bayes_glmm.ml.optimize.multimodal_prone` from the terms' column moments."""
    for t, inf in zip(terms, info):
        if t.q < 2:
            continue
        if not t.correlated:
            for j in range(t.q):
                m, sd = abs(float(inf["mean"][j])), float(inf["sd"][j])
                if sd > 0 and m > sd:
                    return (f"uncorrelated term {t.name!r} with off-centre covariate {t.coef_names[j]!r} "
                            f"(|mean| {m:.3g} > sd {sd:.3g})")
        if inf["rows"] < 3 * t.n_levels:
            return (f"term {t.name!r} has {t.q} coefficients on small groups "
                    f"({inf['rows'] / t.n_levels:.2g} rows per level)")
    return None


def _supports_gradient(family, general, terms, n_agq):
    """:func:`bayes_glmm.ml.agq.supports_gradient` for the whole data: its rule, asked with the
    whole data's terms (levels per term, random effects in all, a nested layout: no level spans
    two groups of the partitioning factor) and the response's kind."""
    from types import SimpleNamespace

    from ..agq import supports_gradient

    s = SimpleNamespace(J=[t.n_levels for t in terms], q=[t.q for t in terms],
                        m=sum(t.n_levels * t.q for t in terms), nested=True, sparse_v=False)
    resp = SimpleNamespace(family=family, general=general, X_zi=None,
                           X_disp=np.ones((1, 1)) if family.is_linear else None)
    return bool(supports_gradient(resp, s, n_agq))


def fit_distributed(client, futs, tpl, *, n_agq=1, start=None, stage1=True, calc_vcov=True, precondition=True,
                    maxiter=1000, n_starts=None, random_seed=0):
    """``(MLFit, GlobalDesign)`` of the model whose partition models are the futures ``futs``."""
    import warnings

    from ..agq import check_agq
    from ..auxpar import aux_coords, aux_starts, check_aux_params
    from ..fit import check_rank
    from ..laplace import (INFO_SCALE_MAX, TINY_GROUP_TRIALS, _aux_lower, _fitted_aux, excluded_coordinates,
                           pin_saturated, separated_fixed, vcov_without_separated)
    from ..optimize import (fd_gradient, fd_hessian, fd_hessian_pd, lambdas_from_theta, minimize_bounded,
                            multistart_points, new_optinfo, optimize_checked, report_starts, restart_candidates,
                            restart_off_boundary, saturated_correlations, solve_with_boundary, theta_layout,
                            theta_scales, warn_nonconvergence, AUTO_N_STARTS)
    from ..types import MLFit
    from ...spec.validate import user_stacklevel

    fam = tpl.family
    check_aux_params(fam)
    # gaussian: sigma is the partitions' constant dispersion model (partition.build_partition)
    shape = _AuxShape(fam, X_disp=np.ones((1, 1)) if fam.is_linear else None)
    p = len(tpl.fixed_names)
    sums = client.gather(client.map(_summary, futs, p=p, pure=False))
    keep = [i for i, s in enumerate(sums) if s["n"] > 0]
    futs = [futs[i] for i in keep]
    n_dropped = sum(s["n_dropped"] for s in sums)
    sums = [sums[i] for i in keep]
    if not sums:
        raise ValueError("no complete rows in the data")
    n = sum(s["n"] for s in sums)
    if n_dropped:
        warnings.warn(f"dropped {n_dropped} rows with missing values", UserWarning, stacklevel=user_stacklevel())
    terms, tinfo = _lme4_order(*_global_terms(tpl, sums))
    for t in terms:
        if t.n_levels < 2:
            raise ValueError(f"grouping factor {t.group!r} has a single level; a random effect needs at least 2")
    names = [t.name for t in terms]
    futs = client.map(_reorder, futs, names=names, pure=False)
    gd_stub = dataclasses.replace(tpl, terms=tuple(terms))
    check_agq(gd_stub, n_agq)
    n_agq = int(n_agq)

    # --- rank and starting values from the stacked R factors of [X | eta0] (exactly lstsq's)
    Rs = np.vstack([s["R"] for s in sums])
    check_rank(Rs[:, :p], tpl.fixed_names)
    beta_start = np.linalg.lstsq(Rs[:, :p], Rs[:, p], rcond=None)[0]
    W, Sy, Syy = np.sum([s["y_moments"] for s in sums], axis=0)
    W = max(float(W), 1e-300)
    m = float(Sy / W)
    v = float(max(Syy / W - m * m, 0.0))
    vals = aux_starts(fam, m, v)
    aux_start = aux_coords(fam, vals) if vals else np.zeros(0)
    general = bool(sums[0]["general"])
    xmax = np.max([s["xmax"] for s in sums], axis=0)

    slices, lower_t, theta0 = theta_layout(terms)
    theta_default = theta0.copy()
    extra_warnings, messages = [], []
    if n_agq == 1 and fam.is_binary and len(terms) == 1 and terms[0].q == 1:
        per = tinfo[0]["trials"]
        per = per[per > 0]
        med = float(np.median(per)) if per.size else np.inf
        if med <= TINY_GROUP_TRIALS:
            msg = (f"Laplace is biased towards zero variance for binary data with few observations per group "
                   f"(median {med:g} per group of {terms[0].group!r}); use n_agq=9 (adaptive Gauss-Hermite "
                   f"quadrature) for this scalar random effect")
            extra_warnings.append(msg)
            warnings.warn(msg, UserWarning, stacklevel=user_stacklevel())
    start = dict(start or {})
    if "theta" in start:
        theta0 = np.asarray(start["theta"], dtype=float)
    beta0 = np.asarray(start["beta"], dtype=float) if "beta" in start else beta_start
    aux0 = np.asarray(start["aux"], dtype=float) if "aux" in start else aux_start
    nt, na = theta0.size, aux0.size
    ev = _Evaluator(client, futs)
    use_grad = _supports_gradient(fam, general, terms, n_agq)
    grad1 = _supports_gradient(fam, general, terms, 1)
    lower_aux = _aux_lower(shape)
    lower = np.concatenate([lower_t, np.full(p, -np.inf), lower_aux])

    def fg1(x):
        return ev(x, 1, True)

    def dev(x):
        return ev(x, n_agq, False)

    def fg(x):
        return ev(x, n_agq, True)

    n_evals = 0
    if stage1 and not ("theta" in start and "beta" in start and ("aux" in start or not na)):
        if grad1:
            Hs = None
            hbs = [h for h in client.gather(client.map(_info, futs, beta0=beta0, aux0=aux0, pure=False))
                   if h is not None]
            hb = np.sum(hbs, axis=0)
            if np.all(np.isfinite(hb)) and np.max(hb, initial=0.0) > INFO_SCALE_MAX:
                Hs = np.concatenate([np.ones(nt), 1.0 / np.sqrt(np.maximum(hb, 1.0)), np.ones(na)])
            opt1 = minimize_bounded(fg1, np.concatenate([theta0, beta0, aux0]), lower, ftol=1e-8, gtol=1e-4,
                                    jac=True, label="stage 1 (Laplace)", scale=Hs)
            opt1, _ = restart_off_boundary(fg1, opt1, lower, jac=True, label="stage 1 (Laplace)",
                                           step=np.concatenate([0.1 * np.minimum(theta_scales(terms), 1.0),
                                                                np.ones(p + na)]))
            n_evals += opt1["n_evals"]
            messages.append(opt1["message"])
            theta0, beta0, aux0 = opt1["x"][:nt], opt1["x"][nt:nt + p], opt1["x"][nt + p:]
        else:
            # the in-memory stage 1 updates beta inside PIRLS (a joint system over all rows);
            # on Dask data stage 2 starts from the least-squares start instead
            messages.append("stage 1 skipped (Dask: beta is not updated inside PIRLS across partitions)")
    x0 = np.concatenate([theta0, beta0, aux0])
    method = "Laplace" if n_agq == 1 else f"AGQ({n_agq})"
    H0 = None
    if precondition:
        if grad1:
            H0, nh = fd_hessian_pd(fg1, x0, central=False)
            n_evals += nh
        else:
            H0 = fd_hessian(lambda x: ev(x, 1, False), x0, delta=1e-4)
            n_evals += 2 * x0.size ** 2 + 1
    obj = fg if use_grad else dev
    label2 = f"stage 2 ({method})"
    bstep = np.concatenate([0.1 * np.minimum(theta_scales(terms), 1.0), np.ones(p + na)])

    def solve(xs, hess=H0):
        return solve_with_boundary(obj, xs, lower, terms, slices, step=bstep, label=label2, hess=hess,
                                   maxiter=maxiter, jac=use_grad)

    auto = _multimodal_prone(terms, tinfo) if n_starts is None else None
    k = int(n_starts) if n_starts is not None else (AUTO_N_STARTS if auto else 1)
    if k < 1:
        raise ValueError(f"n_starts must be a positive integer; got {n_starts!r}")
    opts = [solve(xs) for xs in [x0] + multistart_points(x0, lower, nt, k, random_seed, theta_scales(terms))]
    best = int(np.argmin([o["fun"] for o in opts]))
    starts = report_starts([o["fun"] for o in opts], best, method) if k > 1 else None
    opt = dict(opts[best])
    opt["n_evals"] = sum(o["n_evals"] for o in opts)
    if auto:
        messages.append(f"{k} starts ({auto})")

    def curvature(xc):
        if calc_vcov:
            if use_grad:
                Hc, nh = fd_hessian_pd(fg, xc)
                return fg(xc)[1], Hc, nh + 1
            Hc, gc = fd_hessian(dev, xc, return_grad=True)
            return gc, Hc, 2 * xc.size ** 2 + 1
        if use_grad:
            return fg(xc)[1], None, 1
        return fd_gradient(dev, xc), None, 2 * xc.size

    default = np.concatenate([theta_default, beta_start, aux_start])

    def divergent(xc, Hc):
        if Hc is None:
            return None
        return separated_fixed(xc, Hc, nt, p, xmax)

    saturated = saturated_correlations(terms, slices, lower.size)

    opt, _, H, chk, restarts = optimize_checked(
        solve, curvature, opt, lower, lambda xc: restart_candidates(xc, lower, default=default, seed=random_seed),
        exclude=excluded_coordinates(divergent, saturated), fun=(lambda xc: fg(xc)[0]) if use_grad else dev)
    n_evals += opt["n_evals"]
    messages.append(opt["message"])
    x = opt["x"]
    theta, beta, aux = x[:nt], x[nt:nt + p], x[nt + p:]
    lambdas = lambdas_from_theta(theta, terms, slices)
    dev_hat = dev(x)
    hessian_pd = True
    sep = divergent(x, H) if calc_vcov else None
    if sep is not None and np.any(sep):
        names_sep = [str(tpl.fixed_names[j]) for j in np.flatnonzero(sep[nt:nt + p])]
        msg = (f"likely (quasi-)complete separation: the likelihood is flat in fixed effect(s) {names_sep}; "
               f"their SEs are reported as inf")
        extra_warnings.append(msg)
        warnings.warn(msg, UserWarning, stacklevel=user_stacklevel())
    if calc_vcov and H is not None and saturated is not None and np.any(saturated(x)):
        H = pin_saturated(H, saturated(x))
    if calc_vcov:
        vcov_all, hessian_pd = vcov_without_separated(H, nt, sep)
        vcov, vcov_aux, vcov_cross = vcov_all[:p, :p], vcov_all[p:, p:], vcov_all[:p, p:]
    else:
        vcov, vcov_aux, vcov_cross = np.full((p, p), np.nan), np.full((na, na), np.nan), None

    # --- conditional modes: per partition, put in the global level order
    per = client.gather(client.map(_modes, futs, x=x, pure=False))
    b, b_sd = [], []
    for k_, (t, inf) in enumerate(zip(terms, tinfo)):
        bk = np.vstack([pp[k_][0] for pp in per])[inf["order"]]
        sk = np.vstack([pp[k_][1] for pp in per])[inf["order"]]
        b.append(bk)
        b_sd.append(sk)
    info = new_optinfo(chk, n_evals=n_evals, restarts=restarts, starts=starts, messages=messages,
                       extra_warnings=extra_warnings)
    optimizer = {"start": x0, "theta": theta, "n_evals": n_evals, "grad_norm": chk["max_abs_grad"],
                 "hessian_pd": bool(chk["hessian_pd"] if chk["hessian_pd"] is not None else hessian_pd),
                 "converged": chk["converged"], "messages": messages, "deviance": dev_hat,
                 "boundary_restart": opt.get("boundary_restart"), "optinfo": info,
                 "distributed_evaluations": ev.calls, "seconds_evaluations": ev.seconds,
                 "n_partitions": len(futs)}
    warn_nonconvergence(optimizer, method)
    sigma = float(np.exp(aux[0])) if fam.is_linear else None
    fit = MLFit(beta=beta, theta=theta, sigma=sigma, lambdas=lambdas, b=b, b_sd=b_sd, vcov_beta=vcov, b_cov=None,
                loglik=-0.5 * dev_hat, n_params=p + nt + na, method=method, reml=False, n_agq=n_agq,
                optimizer=optimizer, beta_zi=None, aux=_fitted_aux(_AuxShape(fam), aux) if fam.aux_params and not fam.is_linear else None,
                vcov_aux=vcov_aux if na else None, vcov_beta_aux=vcov_cross if na else None, beta_disp=None)
    glob = GlobalDesign(n=n, n_dropped=n_dropped, n_partitions=len(futs), terms=tuple(terms),
                        fixed_names=tuple(tpl.fixed_names), b=b, b_sd=b_sd)
    return fit, glob


@dataclasses.dataclass(frozen=True)
class _AuxShape:
    """The response fields :func:`bayes_glmm.ml.laplace._aux_lower` and ``_fitted_aux`` read
    (no zero inflation, no dispersion formula on Dask data)."""

    family: object
    X_zi: object = None
    X_disp: object = None

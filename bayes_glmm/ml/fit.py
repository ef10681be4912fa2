"""Fitting by maximum likelihood to a raw :class:`~bayes_glmm.ml.types.MLFit` (= lme4's ``lmer``/``glmer``
up to the merMod object): the checks at the boundary, then dispatch to the LMM or GLMM fitter.

This module sits below :mod:`bayes_glmm.ml.results`: inference that refits (profile, bootstrap,
the ML refit before a likelihood comparison) imports :func:`fit_raw` from here, so it never
imports the results class back (:func:`bayes_glmm.ml.fit_ml` wraps the raw fit in it).
"""
from __future__ import annotations

import contextlib
import warnings

import numpy as np

from .types import MLFit

__all__ = ["fit_raw", "check_rank", "unscale_fit"]


_BLAS_CONTROLLER = []  # the ThreadpoolController, found once per process


def _one_blas_thread():
    # The systems here are small dense blocks; OpenBLAS threads only spin and contend
    # (measured 3-4x slower fits on a shared 2-core machine), so pin BLAS to one thread.
    # The controller is kept: finding the loaded BLAS libraries costs ~1 ms per fit (2% of
    # a 72-row ordinal fit), limiting them through a found controller ~10 us.  NumPy's and
    # SciPy's BLAS (the only ones the ML path calls) are loaded by then.
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # optional dependency
        return contextlib.nullcontext()
    if not _BLAS_CONTROLLER:
        import scipy.linalg  # noqa: F401  (its BLAS loaded before the libraries are listed)

        _BLAS_CONTROLLER.append(ThreadpoolController())
    return _BLAS_CONTROLLER[0].limit(limits=1, user_api="blas")


def check_rank(X: np.ndarray, names) -> None:
    """ValueError naming the aliased columns when X is rank deficient.

    Uses a column-pivoted QR: columns pivoted past the numerical rank are linear
    combinations of the earlier ones (lme4 drops them with a message; we ask the user to).
    """
    from scipy.linalg import qr

    X = np.asarray(X, dtype=float)
    if X.shape[1] == 0:
        return
    if X.shape[0] < X.shape[1]:
        raise ValueError(f"{X.shape[1]} fixed effects but only {X.shape[0]} observations")
    # scale columns so the rank decision does not depend on units
    sc = np.sqrt(np.sum(X * X, axis=0))
    sc[sc == 0] = 1.0
    R, piv = qr(X / sc, mode="r", pivoting=True)
    d = np.abs(np.diag(R))
    tol = d[0] * max(X.shape) * np.finfo(float).eps * 1e3 if d.size else 0.0
    rank = int(np.sum(d > tol))
    if rank < X.shape[1]:
        bad = [str(names[i]) if names is not None and i < len(names) else f"column {i}" for i in sorted(piv[rank:])]
        raise ValueError(
            f"fixed-effects model matrix is rank deficient ({rank} < {X.shape[1]} columns); aliased "
            f"column(s): {', '.join(bad)}. Remove them (or the terms that create them) from the formula.")


def _act_on_diagnostics(spec) -> None:
    """Errors where lme4 stops (levels >= observations for a gaussian term, ...); warnings
    naming the columns for separation and a constant response (estimates at infinity)."""
    from ..postfit.diagnostics import check_spec
    from ..spec.validate import user_stacklevel

    for f in check_spec(spec):
        if f.severity == "error":
            raise ValueError(f.message)
        extra = ""
        if f.kind in ("separation", "quasi-separation", "complete separation") or "separat" in f.kind:
            extra = ("; their Wald SEs are meaningless. Drop or merge the columns, or use the Bayesian fit "
                     "(GLMM.sample), where the prior bounds them.")
        warnings.warn(f.message + extra, UserWarning, stacklevel=user_stacklevel())


def fit_raw(spec, n_agq: int = 1, reml: bool | None = None, **kw) -> MLFit:
    """Fit by maximum likelihood and return the raw :class:`MLFit`.

    Parameters
    ----------
    spec : ModelSpec
    n_agq : int
        1: Laplace (GLMM); > 1: adaptive Gauss-Hermite quadrature with that many nodes
        per dimension (a single random-effects term only).
    reml : bool, optional
        Gaussian identity-link models only; default True (as ``lmer``).
    **kw
        Passed to :func:`bayes_glmm.ml.lmm.fit_lmm` or :func:`bayes_glmm.ml.laplace.fit_glmm`
        (``start``, ``maxiter``, ``n_starts``, ``random_seed``; GLMM also ``stage1``,
        ``calc_vcov``).  ``n_starts=k`` searches k starting points and keeps the best optimum
        (a UserWarning names the others' log-likelihoods when they differ by more than 1e-3;
        see ``MLResults.optinfo``); the default is 1, or 3 where the likelihood is known to
        be multimodal-prone (uncorrelated ``(1 + x || g)`` with an off-centre x, vector terms
        on small groups).  ``random_seed`` (default 0) makes the extra starts and the
        restarts deterministic.

    Raises
    ------
    ValueError
        Rank-deficient X, no random-effects terms, ``reml`` for a GLMM, ``n_agq > 1`` with
        several terms or for a gaussian LMM.
    """
    fam = spec.family
    _act_on_diagnostics(spec)
    if not spec.terms:
        raise ValueError("the model has no random-effects terms; fit it as a GLM (e.g. statsmodels) instead")
    check_rank(spec.X, spec.fixed_names)
    w = np.asarray(spec.weights, dtype=float)
    pos = w > 0
    if 0 < np.sum(pos) < w.size:
        try:
            check_rank(spec.X[pos], spec.fixed_names)
        except ValueError as e:
            raise ValueError(f"with the {int(np.sum(~pos))} zero-weight rows left out, the {e}") from None
    if not fam.ml_fits:
        raise NotImplementedError(f"the ML path fits {fam.name} models with the {' or '.join(fam.ml_links)} "
                                  f"link only; use the Bayesian path (GLMM.sample) for a {fam.name} "
                                  f"{fam.link.name}-link model")
    if fam.is_linear and getattr(spec, "has_disp", False) and reml:
        raise ValueError(f"reml=True does not apply with a dispersion formula (disp={spec.disp_formula!r}): "
                         f"the residual SD varies by row, so the model is fitted by maximum likelihood "
                         f"through the general Laplace path (exact for a gaussian response); use "
                         f"reml=False (the default with disp=)")
    with _one_blas_thread():
        if fam.is_linear and not getattr(spec, "has_disp", False):
            # the residual SD profiled out in closed form; a family's auxiliary parameters
            # otherwise (a residual scale among them) are coordinates of the Laplace/AGQ fit
            if n_agq != 1:
                raise ValueError(f"n_agq={n_agq} does not apply to a linear mixed model: its likelihood is "
                                 f"exact (use n_agq=1, the default)")
            from .lmm import fit_lmm
            return fit_lmm(spec, True if reml is None else bool(reml), **kw)
        if reml and not fam.is_linear:
            raise ValueError(f"reml=True applies to gaussian identity-link models only, not "
                             f"{fam.name} ({fam.link.name} link)")
        from .laplace import fit_glmm

        if fam.is_linear and getattr(spec, "has_disp", False) and "start" not in kw:
            kw = dict(kw, **_lmm_start(spec))
        sc, spec_fit, kw = _internal_scaling(spec, kw)
        fit = fit_glmm(spec_fit, int(n_agq) if float(n_agq).is_integer() else n_agq, **kw)
        return fit if sc is None else unscale_fit(fit, sc, sum(t.n_theta for t in spec.terms))


def _lmm_start(spec) -> dict:
    """``{"start": ...}`` for a gaussian identity-link model with a dispersion formula: the
    closed-form ML fit of the same model with a constant sigma (one profiled LMM fit, a few
    hundredths of a second), its sigma carried by the dispersion model (the least-squares fit of
    the constant log sigma on X_disp) and its relative covariance factors scaled by sigma.  The
    Laplace fit then starts next to its optimum: a third of the evaluations on sleepstudy.  Empty
    (the general starts) where a term's theta is not linear in Lambda, or the LMM fit fails."""
    import dataclasses

    from .lmm import fit_lmm

    if not all(t.cov.linear for t in spec.terms):
        return {}
    plain = dataclasses.replace(spec, X_disp=None, disp_names=(), disp_formula=None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a singular or slow start is not the user's fit
            lmm = fit_lmm(plain, False)
    except (ValueError, ArithmeticError, np.linalg.LinAlgError):
        return {}
    sigma = float(lmm.sigma) if lmm.sigma is not None else float("nan")
    if not (np.isfinite(sigma) and sigma > 0):
        return {}
    X_disp = np.asarray(spec.X_disp, dtype=float)
    bd = np.linalg.lstsq(X_disp, np.full(X_disp.shape[0], np.log(sigma)), rcond=None)[0]
    rest = np.array([np.log(a.ml_start(float(np.mean(spec.y)), float(np.var(spec.y))))
                     for a in spec.family.aux_params[1:]])
    return {"start": {"theta": np.asarray(lmm.theta, dtype=float) * sigma, "beta": np.asarray(lmm.beta, dtype=float),
                      "aux": np.concatenate([bd, rest])}}


def _internal_scaling(spec, kw):
    """``(scaling or None, spec to fit, kw)``: the GLMM is fitted on a design whose columns
    have unit SD (and are centered) when some column's magnitude is extreme.

    Predictors of 1e12 next to 1e-13 give curvatures 50 orders of magnitude apart: PIRLS's
    fixed-effects system is then numerically singular and the optimizer stops with large
    gradients.  The map back (:func:`unscale_fit`) is exact, so results are on the user's
    scale; ordinary designs (:func:`bayes_glmm.spec.scaling.needs_scaling` False) are fitted as
    they are.  A user's ``start["beta"]`` is mapped onto the scaled design.
    """
    import dataclasses

    from ..spec.scaling import design_scaling, needs_scaling, scale_coef, scale_design

    sc = design_scaling(spec.X, center=True)
    if not needs_scaling(sc):
        return None, spec, kw
    spec_fit = dataclasses.replace(spec, X=scale_design(spec.X, sc))
    start = kw.get("start")
    if isinstance(start, dict) and "beta" in start:
        kw = dict(kw, start=dict(start, beta=scale_coef(start["beta"], sc)))
    return sc, spec_fit, kw


def unscale_fit(fit: MLFit, sc, nt: int) -> MLFit:
    """The fit on the user's scale: ``beta = M beta_s``, ``V = M V_s M'`` (exact).

    A coefficient whose scaled variance is inf (separation) or NaN stays so on the user's
    scale, as does every user coefficient that depends on it through ``M``.
    """
    import dataclasses

    from ..spec.scaling import unscale_coef, unscale_cov

    V = np.asarray(fit.vcov_beta, dtype=float)
    bad = ~np.isfinite(np.diag(V))
    Vf = np.where(np.isfinite(V), V, 0.0)
    Vu = unscale_cov(Vf, sc)
    if np.any(bad):
        dep = np.abs(sc.M[:, bad]) > 0  # user coefficient i uses scaled coefficient j
        for j_local, j in enumerate(np.flatnonzero(bad)):
            rows = dep[:, j_local]
            val = V[j, j]
            Vu[rows, :] = 0.0 if np.isinf(val) else np.nan
            Vu[:, rows] = 0.0 if np.isinf(val) else np.nan
            Vu[rows, rows] = val
    opt = dict(fit.optimizer)
    p = sc.M.shape[0]
    start = np.asarray(opt.get("start", np.zeros(0)), dtype=float)
    if start.size >= nt + p:
        start = start.copy()
        start[nt:nt + p] = unscale_coef(start[nt:nt + p], sc)
        opt["start"] = start
    opt["design_scaling"] = {"scale": sc.scale.tolist(), "center": sc.center.tolist()}
    return dataclasses.replace(fit, beta=unscale_coef(fit.beta, sc), vcov_beta=Vu, optimizer=opt)

"""Parametric bootstrap of ML fits, as lme4's ``simulate()`` and ``bootMer()``.

Each replicate draws new random effects ``b ~ N(0, Sigma_hat)`` (lme4's ``use.u = FALSE``)
and a new response from the family's conditional distribution at
``eta = offset + X beta_hat + Z b`` (:meth:`bayes_glmm.families.Family.random`; gaussian
noise has SD ``sigma / sqrt(weight)``), then refits the model warm-started from the
original estimates.

Determinism: replicate ``i`` uses the ``i``-th child of ``numpy.random.SeedSequence(random_seed)``
for both its random effects and its response, and each refit is deterministic, so the
replicates do not depend on ``n_jobs`` or on the order in which workers finish.
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd

from ..auxpar import fit_coords
from .profile import param_index, param_values

__all__ = ["simulate_responses", "bootstrap", "bootstrap_fits", "child_seeds"]


def child_seeds(random_seed, n: int) -> list:
    """``n`` independent :class:`numpy.random.SeedSequence` children of ``random_seed``."""
    ss = random_seed if isinstance(random_seed, np.random.SeedSequence) else np.random.SeedSequence(random_seed)
    return ss.spawn(int(n))


@dataclasses.dataclass(frozen=True)
class _SimModel:
    """What simulating and refitting needs, picklable for worker processes."""

    spec: object  # ModelSpec without its new_design closure
    beta: np.ndarray
    lambdas: list  # Lambda_k (relative to sigma for gaussian)
    sigma: float | None
    aux: dict | None  # the family's auxiliary parameters by name (GLMM path)
    beta_zi: np.ndarray | None
    theta: np.ndarray
    reml: bool
    n_agq: int
    beta_disp: np.ndarray | None = None  # dispersion-model coefficients (disp=)
    b: list | None = None  # random effects held at these (lme4's use.u = TRUE); None: new draws


def _sim_model(res) -> _SimModel:
    fit = res.fit
    # the spec's new_design is a closure over the formula machinery (not picklable) and is
    # not needed to refit the same rows
    spec = dataclasses.replace(res.spec, new_design=None)
    return _SimModel(spec=spec, beta=np.asarray(fit.beta, dtype=float),
                     lambdas=[np.asarray(L, dtype=float) for L in fit.lambdas],
                     sigma=None if fit.sigma is None else float(fit.sigma),
                     aux=None if not fit.aux else {k: (float(v) if np.ndim(v) == 0 else np.asarray(v, dtype=float))
                                                   for k, v in fit.aux.items()},
                     beta_zi=None if fit.beta_zi is None else np.asarray(fit.beta_zi, dtype=float),
                     theta=np.asarray(fit.theta, dtype=float), reml=bool(fit.reml), n_agq=int(fit.n_agq),
                     beta_disp=None if fit.beta_disp is None else np.asarray(fit.beta_disp, dtype=float))


def _simulate_one(m: _SimModel, seed) -> np.ndarray:
    """One response vector from the fitted model (new random effects, new noise)."""
    spec = m.spec
    rng = np.random.default_rng(seed)
    fam = spec.family
    eta = np.asarray(spec.offset, dtype=float) + np.asarray(spec.X, dtype=float) @ m.beta
    scale = m.sigma if spec.is_lmm else 1.0
    for k, (term, L) in enumerate(zip(spec.terms, m.lambdas)):
        if m.b is not None:  # conditional on the fitted random effects
            eta = eta + term.contribution(m.b[k])
            continue
        u = rng.standard_normal((term.n_levels, term.q))
        eta = eta + term.contribution(scale * (u @ L.T))
    if spec.is_lmm:
        w = np.asarray(spec.weights, dtype=float)
        with np.errstate(divide="ignore"):
            sd = np.where(w > 0, m.sigma / np.sqrt(np.where(w > 0, w, 1.0)), 0.0)
        return eta + sd * rng.standard_normal(eta.shape)
    zi_eta = None if m.beta_zi is None else np.asarray(spec.X_zi, dtype=float) @ m.beta_zi
    trials = None
    if fam.needs_trials:
        trials = np.rint(np.asarray(spec.trials, dtype=float)).astype(np.int64)
    y = fam.random(eta, rng, trials=trials, zi_eta=zi_eta, **(m.aux or {}))
    return np.asarray(y, dtype=float)


def simulate_responses(res, n: int = 1, random_seed=None) -> pd.DataFrame:
    """lme4's ``simulate(fit, nsim = n)``: responses drawn from the fitted model.

    Column ``sim_<i>`` is exactly the response bootstrap replicate ``i - 1`` refits for the
    same ``random_seed``.  Binomial responses are numbers of successes (trials as fitted).
    """
    m = _sim_model(res)
    seeds = child_seeds(random_seed, n)
    cols = {f"sim_{i + 1}": _simulate_one(m, s) for i, s in enumerate(seeds)}
    return pd.DataFrame(cols, index=res.spec.row_index)


def _refit_raw(m: _SimModel, seed):
    """Simulate and refit one replicate: (spec with the simulated y, raw fit); raises on failure."""
    from ..fit import fit_raw

    y = _simulate_one(m, seed)
    spec = dataclasses.replace(m.spec, y=y)
    with warnings.catch_warnings():
        # singular / non-convergence warnings are counted per replicate, not printed n times
        warnings.simplefilter("ignore")
        if spec.is_lmm:
            return spec, fit_raw(spec, reml=m.reml, start=m.theta)
        start = {"theta": m.theta, "beta": m.beta}
        aux = []
        if m.beta_zi is not None:
            aux.append(m.beta_zi)
        if m.aux:
            aux.append(fit_coords(spec.family, m.aux, m.beta_disp))
        if aux:
            start["aux"] = np.concatenate(aux)
        return spec, fit_raw(spec, n_agq=m.n_agq, start=start, calc_vcov=False)


def bootstrap_fits(res, n: int, random_seed=None, use_u: bool = False) -> list:
    """The raw refits of ``n`` parametric bootstrap replicates (None where a refit failed), the
    same replicates as :func:`bootstrap` for the same seed when ``use_u`` is False; with
    ``use_u`` the responses are simulated at the fitted random effects (lme4's ``bootMer(...,
    use.u = TRUE)``: the uncertainty of conditional predictions given the groups' effects)."""
    m = _sim_model(res)
    if use_u:
        m = dataclasses.replace(m, b=[np.asarray(bk, dtype=float).reshape(t.n_levels, t.q)
                                      for bk, t in zip(res.fit.b, res.spec.terms)])
    out = []
    for s in child_seeds(random_seed, n):
        try:
            out.append(_refit_raw(m, s)[1])
        except (ValueError, ArithmeticError, np.linalg.LinAlgError, RuntimeError):
            out.append(None)
    return out


def _refit_one(m: _SimModel, seed):
    """Simulate and refit one replicate: (values, converged, singular, error message)."""
    from ..types import SINGULAR_TOL

    try:
        spec, fit = _refit_raw(m, seed)
    except (ValueError, ArithmeticError, np.linalg.LinAlgError, RuntimeError) as e:
        return None, False, False, f"{type(e).__name__}: {e}"
    vals = param_values(spec, fit)
    singular = any(np.any(np.abs(np.diag(np.asarray(L))) < SINGULAR_TOL) for L in fit.lambdas)
    return vals, bool(fit.optimizer.get("converged", True)), singular, None


def _refit_chunk(m: _SimModel, items):
    from ..fit import _one_blas_thread
    with _one_blas_thread():
        return [(i, *_refit_one(m, s)) for i, s in items]


def bootstrap(res, n: int = 1000, random_seed=None, progressbar: bool = True, n_jobs: int = 1) -> pd.DataFrame:
    """Parametric bootstrap replicates of every parameter (see :meth:`MLResults.bootstrap`)."""
    m = _sim_model(res)
    names = param_index(res.spec)
    seeds = child_seeds(random_seed, n)
    items = list(enumerate(seeds))
    values = np.full((n, len(names)), np.nan)
    converged = np.zeros(n, dtype=bool)
    singular = np.zeros(n, dtype=bool)
    errors = {}
    bar = _progress(n, progressbar)

    def record(i, vals, conv, sing, err):
        if err is not None:
            errors[i] = err
        else:
            values[i] = vals
            converged[i], singular[i] = conv, sing
        if bar is not None:
            bar.update(1)

    try:
        if n_jobs == 1:
            for i, s in items:
                record(i, *_refit_chunk(m, [(i, s)])[0][1:])
        else:
            from concurrent.futures import ProcessPoolExecutor, as_completed
            # chunks amortize pickling the model; a few per worker keep the bar moving
            size = max(1, min(25, n // (4 * n_jobs)))
            chunks = [items[k:k + size] for k in range(0, n, size)]
            with ProcessPoolExecutor(max_workers=n_jobs) as ex:
                futs = [ex.submit(_refit_chunk, m, c) for c in chunks]
                for f in as_completed(futs):
                    for i, *rest in f.result():
                        record(i, *rest)
    finally:
        if bar is not None:
            bar.close()
    out = pd.DataFrame(values, columns=names)
    out.index.name = "replicate"
    n_failed = len(errors)
    ok = np.setdiff1d(np.arange(n), list(errors))
    out.attrs.update({
        "n": int(n), "random_seed": random_seed, "n_failed": n_failed,
        "failures": {int(k): v for k, v in sorted(errors.items())},
        "n_nonconverged": int(np.sum(~converged[ok])), "n_singular": int(np.sum(singular[ok])),
        "estimate": {k: float(v) for k, v in zip(names, param_values(res.spec, res.fit))},
    })
    if n_failed:
        first = next(iter(sorted(errors.items())))
        warnings.warn(f"bootstrap: {n_failed} of {n} refits failed (their rows are NaN; "
                      f"attrs['failures'] has the messages, e.g. replicate {first[0]}: {first[1]})",
                      UserWarning, stacklevel=3)
    return out


def _progress(n, progressbar):
    if not progressbar:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # optional: no bar without tqdm
        return None
    return tqdm(total=n, desc="bootstrap", unit="refit")

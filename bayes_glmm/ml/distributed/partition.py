"""What one Dask worker holds and computes: the model on one partition's rows.

A partition holds whole groups of the partitioning factor (the data were shuffled on it),
so given ``x = (theta, beta, aux)`` its random effects are independent of every other
partition's and the Laplace/AGQ deviance of the whole data is the sum of the partitions'
deviances (likewise its gradient).  :class:`PartitionModel` builds a
:class:`~bayes_glmm.spec.model_spec.ModelSpec` of the partition's rows with the *global*
coding (the fixed-effects columns come from a template spec's ``new_design``, so every
partition has the same columns whatever levels it happens to hold), keeps it with its PIRLS
warm-start state between evaluations, and answers with small arrays only: a deviance and
its gradient, the summaries the driver needs for starting values and checks, and at the end
the conditional modes of its groups.

No Dask here: these are plain functions of pandas frames and NumPy arrays (the driver,
:mod:`bayes_glmm.ml.distributed.driver`, maps them over the partitions).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["PartitionSetup", "PartitionModel", "build_partition", "task_summary", "task_evaluate", "task_info",
           "task_reorder", "task_modes"]


@dataclass(frozen=True)
class PartitionSetup:
    """Everything a worker needs to build its partition's spec (small; pickled to workers).

    Attributes
    ----------
    template : ModelSpec
        The model built on a few synthetic rows that hold every level of every factor of
        the fixed part (its ``new_design`` gives the global coding); its terms in the global
        (lme4) order.
    used : tuple of str
        Columns the model reads (rows with a missing value in any of them are dropped).
    group_vars : tuple of tuple of str
        Per template term, the columns of its grouping factor.
    categories : dict
        Column -> global categories, for the factor columns of the response (a bernoulli
        response given as strings or a categorical: its success level must be the global one).
    trials, weights : str or None
        Column names.
    """

    template: object
    used: tuple
    group_vars: tuple
    categories: dict
    trials: str | None = None
    weights: str | None = None


def _local_levels(frame: pd.DataFrame, group_vars: tuple):
    """``(codes, keys, labels)`` of a grouping factor on this partition's rows: codes in
    ``0..J-1``, ``keys`` the levels' values (an Index, or a MultiIndex for an interaction such as
    ``g:h``) whose global sort gives the in-memory level order, ``labels`` as lme4 prints them."""
    from ...spec.design import _factorize, level_label

    if len(group_vars) == 1:
        v = group_vars[0]
        codes, levels = _factorize(frame[v], v, "a random term")
        return codes, levels, pd.Index(levels, dtype=object)
    mi = pd.MultiIndex.from_frame(frame[list(group_vars)])
    codes, uniq = pd.factorize(mi, sort=True)
    labels = pd.Index([":".join(level_label(v) for v in tup) for tup in uniq], dtype=object)
    return codes.astype(np.int64), uniq, labels


class PartitionModel:
    """The model on one partition's rows, with its PIRLS state (lives on a worker).

    Build it with :func:`build_partition`.  ``n == 0`` for an empty partition (a hash shuffle
    can leave some empty): it then contributes 0 to every sum.
    """

    def __init__(self, spec, keys, labels, n_dropped: int):
        self.spec = spec
        self.keys = keys
        self.labels = labels
        self.n_dropped = n_dropped
        self.n = 0 if spec is None else spec.n
        self._state = {}
        self._funs = {}
        if spec is not None:
            from .. import linalg
            from ..optimize import theta_layout
            from ..pirls import make_response

            self.resp = make_response(spec)
            self.s = linalg.build_structure(spec.terms)
            self.slices = theta_layout(spec.terms)[0]

    # ------------------------------------------------------------------ set-up summaries
    def summary(self, p: int) -> dict:
        """Small aggregates the driver combines: rows, dropped rows, per term its levels and the
        moments of its columns, the R factor of ``[X | eta0]`` (rank check and the least-squares
        starting beta), moments of y (auxiliary starts), max |X| per column, and whether the
        family's response is "general" (auxiliary parameters in the Laplace path)."""
        out = {"n": self.n, "n_dropped": self.n_dropped}
        if self.n == 0:
            return out
        spec, resp = self.spec, self.resp
        fam = spec.family
        mu0 = fam.mustart(resp.y, resp.n_trials, resp.pw)
        eta0 = fam.link.link(mu0) - resp.offset
        R = np.linalg.qr(np.column_stack([resp.X, eta0]), mode="r")
        w, y = resp.pw, resp.y
        out.update(
            R=R, xmax=np.max(np.abs(resp.X), axis=0) if resp.X.shape[0] else np.zeros(p),
            y_moments=np.array([np.sum(w), np.sum(w * y), np.sum(w * y * y)]),
            general=bool(resp.general),
            terms=[{"name": t.name, "keys": k, "labels": lab, "rows": t.Xr.shape[0],
                    "xr_sum": np.sum(t.Xr, axis=0), "xr_sq": np.sum(t.Xr * t.Xr, axis=0),
                    "trials": np.bincount(t.codes, weights=np.where(resp.pw > 0, resp.n_trials, 0.0),
                                          minlength=t.n_levels)}
                   for t, k, lab in zip(spec.terms, self.keys, self.labels)])
        return out

    def info_hessian_diag(self, beta0, aux0) -> np.ndarray:
        """``2 sum_i W_i X_ij^2`` at the start (the fixed effects' GLM information, summed over
        partitions by :func:`bayes_glmm.ml.laplace.info_scaling`'s rule), or NaNs where the
        weights need auxiliary values the start does not give."""
        from ..pirls import hessian_weights, with_aux

        resp = self.resp
        eta0 = resp.offset + resp.X @ np.asarray(beta0, dtype=float)
        r = with_aux(resp, aux0) if resp.n_aux and aux0 is not None else resp
        if r.general and r.family.aux_params and r.aux_vals is None:
            return np.full(resp.X.shape[1], np.nan)
        with np.errstate(over="ignore", invalid="ignore"):
            W = hessian_weights(r, eta0)
        return 2.0 * np.einsum("ij,i,ij->j", resp.X, W, resp.X)

    # ------------------------------------------------------------------ evaluations
    def _fun(self, n_agq: int, grad: bool):
        key = (int(n_agq), bool(grad))
        if key not in self._funs:
            from ..laplace import make_devgrad, make_deviance

            make = make_devgrad if grad else make_deviance
            # one warm-start state for every criterion: the converged modes do not depend on it
            self._funs[key] = make(self.resp, self.s, self.spec.terms, self.slices, int(n_agq), self._state)
        return self._funs[key]

    def evaluate(self, x, n_agq: int = 1, grad: bool = False):
        """``(deviance, gradient or None)`` of this partition's groups at ``x = (theta, beta, aux)``."""
        x = np.asarray(x, dtype=float)
        if self.n == 0:
            return 0.0, (np.zeros(x.size) if grad else None)
        if grad:
            d, g = self._fun(n_agq, True)(x)
            return float(d), np.asarray(g, dtype=float)
        return float(self._fun(n_agq, False)(x)), None

    def modes(self, x) -> list:
        """Per term ``(b, b_sd)`` of this partition's levels at ``x`` (levels in :attr:`keys` order)."""
        if self.n == 0:
            return []
        from ..lmm import modes_sds_covs
        from ..optimize import lambdas_from_theta

        self.evaluate(x, 1, False)  # the conditional modes at x (u does not depend on n_agq)
        pr = self._state["last"]
        nt = sum(t.n_theta for t in self.spec.terms)
        lambdas = lambdas_from_theta(np.asarray(x, dtype=float)[:nt], self.spec.terms, self.slices)
        b, sd, _ = modes_sds_covs(self.s, pr.factor, lambdas, pr.u)
        return list(zip(b, sd))

    def reorder(self, names) -> "PartitionModel":
        """The terms in the global order ``names`` (lme4 orders terms by their global number of
        levels, which only the driver knows)."""
        if self.n == 0:
            return self
        import dataclasses

        pos = {t.name: i for i, t in enumerate(self.spec.terms)}
        idx = [pos[nm] for nm in names]
        spec = dataclasses.replace(self.spec, terms=tuple(self.spec.terms[i] for i in idx))
        return PartitionModel(spec, [self.keys[i] for i in idx], [self.labels[i] for i in idx], self.n_dropped)


def build_partition(frame: pd.DataFrame, setup: PartitionSetup) -> PartitionModel:
    """The :class:`PartitionModel` of one partition's rows (never modifies ``frame``).

    Rows with a missing value in a used column are dropped (and counted), as
    :func:`bayes_glmm.spec.design.build_spec` does; the fixed-effects matrix, offsets and the
    terms' columns come from the template's ``new_design`` (the global coding); the response
    from the same code as the in-memory spec; the grouping factors are coded locally (their
    levels live in this partition only).
    """
    from ...spec import validate
    from ...spec.design import _response
    from ...spec.model_spec import ModelSpec, RandomTerm

    tpl = setup.template
    frame = frame.reset_index(drop=True)
    used = list(setup.used)
    na = frame[used].isna().any(axis=1).to_numpy() if used and len(frame) else np.zeros(len(frame), bool)
    n_dropped = int(na.sum())
    if n_dropped:
        frame = frame.loc[~na].reset_index(drop=True)
    if len(frame) == 0:
        return PartitionModel(None, [], [], n_dropped)
    if setup.categories:
        frame = frame.copy()
        for col, cats in setup.categories.items():
            frame[col] = pd.Categorical(frame[col], categories=cats)
    nd = tpl.new_design(frame)
    norm = validate.normalize_columns(frame[used])
    parsed = tpl.info["parsed"]
    trials = None if setup.trials is None else frame[setup.trials].to_numpy(dtype=float)
    y, trials, success, *_ = _response(parsed, norm, tpl.family, trials)
    if success is not None and tpl.success_level is not None and success != tpl.success_level:
        raise ValueError(f"response {tpl.response_name!r}: this partition's success level {success!r} differs "
                         f"from the data's {tpl.success_level!r}; give the response as 0/1 or bool")
    tpl.family.check_response(y, trials, parsed.response_label)
    w = np.ones(len(frame)) if setup.weights is None else frame[setup.weights].to_numpy(dtype=float)
    validate.check_weights(w, f"weights column {setup.weights!r}")
    terms, keys, labels = [], [], []
    for t, gv, Xr in zip(tpl.terms, setup.group_vars, nd.Xr):
        codes, k, lab = _local_levels(frame, gv)
        terms.append(RandomTerm(name=t.name, group=t.group, coef_names=t.coef_names, correlated=t.correlated,
                                codes=codes, levels=lab, Xr=Xr, cov=t.cov))
        keys.append(k)
        labels.append(lab)
    # a gaussian identity-link model: its residual SD as a constant dispersion model (disp = ~1), so
    # it is fitted by the Laplace path (exact for a gaussian response) with the analytic gradient;
    # the in-memory profiled LMM needs sums over all rows inside every evaluation
    X_disp = np.ones((len(frame), 1)) if tpl.family.is_linear else None
    spec = ModelSpec(formula=tpl.formula, family=tpl.family, response_name=tpl.response_name, y=y,
                     trials=trials, X=nd.X, fixed_names=tpl.fixed_names, offset=nd.offset, weights=w,
                     terms=tuple(terms), row_index=frame.index, success_level=tpl.success_level,
                     X_disp=X_disp, disp_names=("(Intercept)",) if X_disp is not None else (),
                     disp_formula="~1" if X_disp is not None else None)
    return PartitionModel(spec, keys, labels, n_dropped)


# ---------------------------------------------------------------- the tasks the driver maps over partitions
def task_summary(pm: PartitionModel, p: int) -> dict:
    return pm.summary(p)


def task_evaluate(pm: PartitionModel, x, n_agq: int, grad: bool):
    return pm.evaluate(x, n_agq, grad)


def task_info(pm: PartitionModel, beta0, aux0):
    return None if pm.n == 0 else pm.info_hessian_diag(beta0, aux0)


def task_reorder(pm: PartitionModel, names) -> PartitionModel:
    return pm.reorder(names)


def task_modes(pm: PartitionModel, x) -> list:
    return pm.modes(x)

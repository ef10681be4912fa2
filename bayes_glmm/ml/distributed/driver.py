"""The driver of a Dask fit: shuffle once, build each partition's model on its worker, then run
the in-memory fitter's optimizer on sums of per-partition deviances and gradients.

The steps mirror :func:`bayes_glmm.ml.laplace.fit_glmm` (stage 1, the preconditioning Hessian,
stage 2 with boundary restarts, the convergence check, the Hessian for the standard errors), so
the fit follows the in-memory fit's path: every quantity it reads from the rows (the starting
beta, the moments behind the auxiliary starts, the information scaling, column scales, the
level counts) is a sum over partitions of small summaries, and rows never leave the workers.
"""
from __future__ import annotations

import re
import warnings

import pandas as pd

from .partition import PartitionSetup, build_partition
from .plan import check_formula, partition_factor, template_frame

__all__ = ["DaskModel"]


def _client(client):
    from distributed import default_client

    if client is not None:
        return client
    try:
        return default_client()
    except ValueError:
        raise ValueError("a Dask fit needs a dask.distributed Client: start one first, e.g. "
                         "`from dask.distributed import Client, LocalCluster; client = Client(LocalCluster())`, "
                         "or pass client= to fit_ml") from None


def _columns_named(text: str, columns) -> list:
    found = []
    for c in columns:
        if re.search(rf"(?<![\w.]){re.escape(str(c))}(?![\w.])", text) or f"`{c}`" in text:
            found.append(c)
    return found


class DaskModel:
    """A GLMM whose data are a ``dask.dataframe.DataFrame`` (built by :class:`bayes_glmm.GLMM`).

    Only the formula and the column dtypes are read here; the rows are read when
    :meth:`fit_ml` runs.
    """

    def __init__(self, formula, data, family, *, trials=None, weights=None, zi=None, hu=None, disp=None,
                 priors=None, centered="auto"):
        from ...spec.formula import parse_formula

        check_formula(formula, zi=zi, hu=hu, disp=disp, trials=trials, weights=weights, priors=priors)
        self.formula, self.data, self.family = formula, data, family
        self.trials, self.weights = trials, weights
        self.parsed = parse_formula(formula)
        cols = list(data.columns)
        text = " ".join([formula] + [c for c in (trials, weights) if c])
        self.used = _columns_named(text, cols)
        for r in self.parsed.random:
            for g in r.group_vars:
                if g not in cols:
                    raise ValueError(f"grouping factor {g!r} in random term {r.text!r} is not a column of data")

    # ------------------------------------------------------------------ set-up
    def _template(self):
        """The template spec (global coding) and the global level sets, from aggregates."""
        from ...spec.design import build_spec

        data, dtypes = self.data, self.data.dtypes
        group_cols = {g for r in self.parsed.random for g in r.group_vars}
        fixed_text = " ".join([self.parsed.fixed_rhs, self.parsed.response_label] + list(self.parsed.offsets)
                              + [r.lhs for r in self.parsed.random])
        factor_cols = [c for c in _columns_named(fixed_text, self.used) if _is_factor_dtype(dtypes[c])]
        import dask

        levels, lazy = {}, {}
        for c in factor_cols:
            if isinstance(dtypes[c], pd.CategoricalDtype) and data[c].cat.known:
                levels[c] = list(dtypes[c].categories)
            else:  # R's order: sorted unique values (one small aggregate per column)
                lazy[c] = data[c].dropna().unique()
        numeric = [c for c in self.used if c not in factor_cols and c not in group_cols]
        todo = list(lazy.values()) + ([data[numeric].dropna().head(2, npartitions=-1, compute=False)]
                                      if numeric else [])
        done = dask.compute(*todo)  # one pass over the data for every aggregate
        for c, u in zip(lazy, done):
            vals = pd.Series(u)
            levels[c] = list(vals.cat.categories) if isinstance(dtypes[c], pd.CategoricalDtype) \
                else sorted(vals.tolist())
        sample = done[-1] if numeric else pd.DataFrame()
        if numeric and len(sample) == 0:
            raise ValueError(f"no complete rows in columns {numeric}")
        tf = template_frame(dtypes, self.used, group_cols - set(factor_cols), levels, sample)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the template's rows are not the user's data
            tpl = build_spec(self.formula, tf, self.family, trials=self.trials, weights=self.weights)
        resp_cats = {c: levels[c] for c in _columns_named(self.parsed.response_label, list(levels))}
        return tpl, resp_cats

    def _build(self, client, partition_by, shuffle):
        import dask

        pcol = partition_factor(self.parsed, partition_by)
        if pcol not in self.data.columns:
            raise ValueError(f"partition_by={pcol!r} is not a column of data")
        tpl, cats = self._template()
        by_group = {r.group: tuple(r.group_vars) for r in self.parsed.random}
        setup = PartitionSetup(template=tpl, used=tuple(tpl.info["used_columns"]),
                               group_vars=tuple(by_group[t.group] for t in tpl.terms), categories=cats,
                               trials=self.trials, weights=self.weights)
        cols = list(dict.fromkeys(list(setup.used) + [pcol]))
        df = self.data[cols]
        if shuffle:
            df = df.shuffle(on=pcol)  # every group of pcol in one partition
        futs = client.compute([dask.delayed(build_partition)(part, setup) for part in df.to_delayed()])
        return tpl, setup, futs, pcol

    # ------------------------------------------------------------------ fit
    def fit_ml(self, n_agq: int = 1, *, reml=None, client=None, partition_by=None, shuffle: bool = True,
               **kw):
        """Fit by Laplace / AGQ on the workers; returns :class:`~bayes_glmm.ml.distributed.results.DaskMLResults`.

        Parameters
        ----------
        n_agq : int
            1 (Laplace) or the number of adaptive Gauss-Hermite nodes (one scalar term).
        reml : bool, optional
            Must be False or None: a gaussian model is fitted by ML through the Laplace path
            (exact for a gaussian response); REML is not available on Dask data.
        client : distributed.Client, optional
            Default: the current client.
        partition_by : str, optional
            The column to split the data by (default: the variable every grouping factor
            contains).  Each random term's levels must then lie in one partition each, which
            is checked after the shuffle.
        shuffle : bool
            False when the data are already partitioned by ``partition_by`` (checked).
        **kw
            ``start``, ``stage1``, ``calc_vcov``, ``precondition``, ``maxiter``, ``n_starts``,
            ``random_seed`` as for the in-memory fit.
        """
        from .fit import fit_distributed
        from .results import DaskMLResults

        if reml:
            raise ValueError("reml=True is not available on a Dask DataFrame: a gaussian model is fitted there by "
                             "maximum likelihood through the Laplace path (exact for a gaussian response); use "
                             "reml=False (the default on Dask data), or fit the pandas frame for REML")
        client = _client(client)
        import time

        from distributed import wait

        t0 = time.perf_counter()
        tpl, setup, futs, pcol = self._build(client, partition_by, shuffle)
        wait(futs)
        t_build = time.perf_counter() - t0
        try:
            fit, glob = fit_distributed(client, futs, tpl, n_agq=n_agq, **kw)
            fit.optimizer["seconds_build"] = t_build  # template, shuffle and partition models
        finally:
            client.cancel(futs)
        return DaskMLResults(fit, glob, formula=self.formula, family=tpl.family, partition_by=pcol)


def _is_factor_dtype(dtype) -> bool:
    if pd.api.types.is_bool_dtype(dtype):
        return True
    return isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(dtype) \
        or pd.api.types.is_string_dtype(dtype)


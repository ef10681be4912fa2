"""Maximum likelihood beyond one machine: a GLMM fitted on a ``dask.dataframe.DataFrame``.

When every random term's grouping factor nests within one factor (``(1 | g)``, ``(x | g)``,
``(1 | g/h)``), the data are shuffled once so that each of its groups lives in one partition;
given ``(theta, beta)`` the groups' random effects are then independent across partitions, the
Laplace / AGQ deviance and its gradient are sums of per-partition terms, and the driver runs the
in-memory fitter's optimizer on those sums (:mod:`.fit`).  Rows never leave the workers: only a
deviance, a gradient and, once, small aggregates and the conditional modes come back.
See docs/scaling.md.

Dask is imported only when a Dask fit runs (``pip install bayes_glmm[dask]``).
"""
from __future__ import annotations

__all__ = ["DaskModel", "is_dask_frame"]


def is_dask_frame(data) -> bool:
    """True for a ``dask.dataframe.DataFrame`` (checked by its type's module: Dask not imported)."""
    mod = type(data).__module__ or ""
    return mod.split(".")[0] == "dask" and hasattr(data, "npartitions") and hasattr(data, "to_delayed")


def __getattr__(name):
    if name == "DaskModel":  # the driver imports pandas/numpy helpers only; dask inside its methods
        from .driver import DaskModel

        return DaskModel
    raise AttributeError(name)

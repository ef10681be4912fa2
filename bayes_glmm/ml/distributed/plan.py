"""Driver-side checks and set-up for a Dask fit, before any row is touched: which factor
partitions the data, why a crossed design cannot be split, which formulas need the whole
data at once, and the template spec that fixes the global coding of the fixed part.

Pure functions of the formula, the frame's column dtypes and small aggregates; Dask itself is
only called through the ``data`` object passed in (never imported here).
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

__all__ = ["partition_factor", "check_formula", "template_frame", "CROSSED_FIX"]

#: formulae transforms whose result depends on the whole column (a mean, an SD, knots): on a
#: partition they would learn the partition's values, not the data's
_STATEFUL = ("scale", "center", "standardize", "poly", "bs", "ns", "cr", "cc", "C")

CROSSED_FIX = ("Either collect the data (data.compute()) and fit the pandas frame, or use a design "
               "whose random terms all nest within one factor (e.g. (1 | school/class)); if a factor "
               "is nested in another in the data without being written so (class labels unique across "
               "schools), pass partition_by='school'.")


def partition_factor(parsed, partition_by=None) -> str:
    """The column whose groups the data are split by: the one grouping variable every random
    term's grouping factor contains (``g`` for ``(1 | g) + (x | g:h)``), or ``partition_by``.

    Raises
    ------
    ValueError
        No random term, or crossed terms (no variable common to all grouping factors): their
        random effects couple rows in different partitions, so the deviance does not split
        into per-partition sums.
    """
    if not parsed.random:
        raise ValueError("the model has no random-effects terms; a Dask fit needs one whose grouping factor "
                         "partitions the data")
    if partition_by is not None:
        if not isinstance(partition_by, str):
            raise ValueError(f"partition_by must be a column name, got {partition_by!r}")
        return partition_by
    common = None
    for r in parsed.random:
        common = list(r.group_vars) if common is None else [v for v in common if v in r.group_vars]
    if common:
        return common[0]
    groups = ", ".join(repr(r.group) for r in parsed.random)
    raise ValueError(f"crossed random effects ({groups}) cannot be fitted on a Dask DataFrame: a level of one "
                     f"factor spans groups of the other, so the random effects do not separate across "
                     f"partitions and the Laplace deviance is not a sum of per-partition terms. " + CROSSED_FIX)


def check_formula(formula: str, zi=None, hu=None, disp=None, trials=None, weights=None, priors=None) -> None:
    """ValueError for what a partition-by-partition build cannot reproduce exactly."""
    rhs = formula.split("~", 1)[-1]
    for fn in _STATEFUL:
        if re.search(rf"(?<![\w.]){fn}\s*\(", rhs):
            raise ValueError(f"{fn}(...) in formula {formula!r} depends on the whole column (its mean, SD, "
                             f"knots or levels), which a partition does not see; on Dask data compute the "
                             f"transformed column beforehand (for a factor: make the column categorical, e.g. "
                             f"data.categorize()) and use it in the formula")
    for arg, val in (("zi", zi), ("hu", hu), ("disp", disp)):
        if val is not None:
            raise ValueError(f"{arg}= is not supported on a Dask DataFrame yet; fit the model on a pandas frame")
    for arg, val in (("trials", trials), ("weights", weights)):
        if val is not None and not isinstance(val, str):
            raise ValueError(f"{arg}= must be a column name on a Dask DataFrame (got {type(val).__name__}): "
                             f"add the values as a column")
    if priors:
        raise ValueError("priors= apply to the Bayesian path, which does not take a Dask DataFrame; "
                         "fit_ml is the Dask path (drop priors=)")


def _is_factor(dtype) -> bool:
    return (isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(dtype)
            or pd.api.types.is_string_dtype(dtype)) and not pd.api.types.is_bool_dtype(dtype)


def _two_values(dtype):
    """Two distinct values of a grouping column's dtype for the template rows."""
    if isinstance(dtype, pd.CategoricalDtype):
        return None  # its categories
    if pd.api.types.is_bool_dtype(dtype):
        return [False, True]
    if pd.api.types.is_integer_dtype(dtype):
        return np.array([0, 1], dtype=dtype)
    if pd.api.types.is_float_dtype(dtype):
        return np.array([0.0, 1.0], dtype=dtype)
    return ["a", "b"]


def template_frame(dtypes: pd.Series, used: list, group_cols: set, levels: dict, sample: pd.DataFrame) -> pd.DataFrame:
    """A few rows on which the in-memory builder gives the global coding.

    Parameters
    ----------
    dtypes : Series
        The Dask frame's column dtypes.
    used : list of str
        Columns the formula names.
    group_cols : set of str
        Columns used only as grouping factors: two distinct values each (their levels are coded
        per partition, never globally).
    levels : dict
        Column -> every level (sorted, or the categories in order) of the factor columns of the
        fixed part and the response: each appears in the template, so every partition's fixed-
        effects matrix has the columns of the whole data's.
    sample : DataFrame
        Two complete rows of the data, for the numeric columns (so the response and trials are
        valid for the family).
    """
    n_t = max([2] + [len(v) for v in levels.values()])
    cols = {}
    for c in used:
        dt = dtypes[c]
        if c in levels:
            vals = list(levels[c])
            data = [vals[i % len(vals)] for i in range(n_t)]
            cols[c] = pd.Categorical(data, categories=vals) if isinstance(dt, pd.CategoricalDtype) else data
        elif c in group_cols:
            two = _two_values(dt)
            if two is None:
                cats = list(dt.categories)
                cols[c] = pd.Categorical([cats[i % 2] for i in range(n_t)], categories=cats)
            else:
                cols[c] = [two[i % 2] for i in range(n_t)]
        else:
            vals = sample[c].to_numpy()
            cols[c] = np.array([vals[i % len(vals)] for i in range(n_t)], dtype=vals.dtype)
    return pd.DataFrame(cols)

"""Checks at the package boundary: every bad argument fails here, by name, with the fix.

Each function raises :class:`ValueError` (a bad value) or :class:`InputTypeError` (a bad
type; a subclass of both :class:`TypeError` and :class:`ValueError`, so code that caught
the package's earlier ``ValueError`` still works) naming the argument or column at fault
and what to do about it.  None of them modifies its input: data in another container
(a polars or pyarrow table, a dict of columns) is converted into a *new* pandas frame.

This module imports only NumPy and pandas at import time, so every other module of the
package may import it.
"""
from __future__ import annotations

import difflib
import os
import sys
import warnings
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

__all__ = ["InputTypeError", "user_stacklevel", "warn", "close_matches", "as_dataframe",
           "check_formula_text", "check_unique_columns", "check_columns", "normalize_columns",
           "side_values", "check_weights", "check_trials_family", "check_sample_size",
           "check_random_seed", "check_n_agq", "check_reml", "check_bool", "check_sample_args",
           "check_sample_call", "check_fit_ml_call", "check_fit_pql_call",
           "check_family", "check_mapping", "check_glmm_args"]

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # bayes_glmm/, above spec/


class InputTypeError(TypeError, ValueError):
    """An argument of the wrong type (also a ValueError, which the package raised before)."""


# ----------------------------------------------------------------------------- warnings
def user_stacklevel() -> int:
    """``stacklevel`` for :func:`warnings.warn` that points at the first frame outside the package.

    Call it from the function that calls ``warnings.warn`` (it counts that function as
    level 1), so a warning raised anywhere inside ``GLMM(...)`` or ``fit_ml()`` cites the
    user's line, however deep the call chain is.
    """
    frame = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PKG_DIR + os.sep):
        frame = frame.f_back
        level += 1
    return level


def warn(message: str, category: type = UserWarning) -> None:
    """``warnings.warn`` attributed to the user's line (see :func:`user_stacklevel`)."""
    frame, level = sys._getframe(0), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PKG_DIR + os.sep):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)


def close_matches(name: Any, choices: Iterable, n: int = 3) -> list:
    """Choices that differ from ``name`` only by case, else difflib's close matches."""
    choices = [str(c) for c in choices]
    name = str(name)
    same = [c for c in choices if c.lower() == name.lower()]
    return same[:n] or difflib.get_close_matches(name, choices, n=n, cutoff=0.6)


def _did_you_mean(name: Any, choices: Iterable) -> str:
    close = close_matches(name, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ----------------------------------------------------------------------------- data
def as_dataframe(data: Any, arg: str = "data", allow_empty: bool = False) -> pd.DataFrame:
    """A pandas DataFrame for ``data``: itself, or a new frame converted from a polars
    DataFrame, a pyarrow Table or a dict of equal-length columns.

    Raises
    ------
    InputTypeError
        For anything else (a NumPy array, a Series, ...), naming ``arg``.
    ValueError
        For MultiIndex columns, or no rows / no columns.
    """
    if isinstance(data, pd.DataFrame):
        df = data
    else:
        mod = type(data).__module__.split(".")[0]
        kind = type(data).__name__
        if mod == "polars":
            if kind == "LazyFrame":
                raise InputTypeError(f"{arg} is a polars LazyFrame; collect it first: {arg}.collect()")
            if kind != "DataFrame" or not hasattr(data, "to_pandas"):
                raise InputTypeError(f"{arg} must be a DataFrame, got a polars {kind}; pass a polars or "
                                     f"pandas DataFrame")
            try:
                df = data.to_pandas()
            except Exception as e:  # polars needs pyarrow for this
                raise ValueError(f"could not convert the polars DataFrame given as {arg} to pandas ({e}); "
                                 f"install pyarrow or pass {arg}.to_pandas()") from None
        elif mod == "pyarrow" and kind in ("Table", "RecordBatch"):
            df = data.to_pandas()
        elif isinstance(data, pd.Series):
            raise InputTypeError(f"{arg} must be a DataFrame with the formula's columns, got a pandas Series; "
                                 f"use {arg}.to_frame() or pass the whole DataFrame")
        elif isinstance(data, Mapping):
            try:
                df = pd.DataFrame(dict(data))
            except (ValueError, TypeError) as e:
                raise ValueError(f"{arg} is a dict but its values do not form a table ({e}); give one "
                                 f"equal-length array per column, or pass a pandas DataFrame") from None
        elif isinstance(data, np.ndarray):
            raise InputTypeError(f"{arg} must be a pandas DataFrame with named columns, got a NumPy array; "
                                 f"wrap it: pd.DataFrame(array, columns=[...names used in the formula...])")
        else:
            raise InputTypeError(f"{arg} must be a pandas DataFrame (a polars DataFrame or a dict of "
                                 f"columns is converted), got {kind}")
    if isinstance(df.columns, pd.MultiIndex):
        raise ValueError(f"{arg} has MultiIndex (hierarchical) column names, which a formula cannot "
                         f"refer to; flatten them first, e.g. "
                         f"{arg}.columns = ['_'.join(map(str, c)) for c in {arg}.columns]")
    if not allow_empty and len(df) == 0:
        raise ValueError(f"{arg} has no rows; a model needs observations")
    if not allow_empty and df.shape[1] == 0:
        raise ValueError(f"{arg} has no columns; it needs the columns named in the formula")
    return df


def check_formula_text(formula: Any, arg: str = "formula") -> None:
    """A formula must be a non-empty string."""
    if not isinstance(formula, str):
        raise InputTypeError(f"{arg} must be a string like 'y ~ x + (1 | g)', got {type(formula).__name__}")
    if not formula.strip():
        raise ValueError(f"{arg} is empty; write 'response ~ predictors', e.g. 'y ~ x + (1 | g)'")


def check_unique_columns(data: pd.DataFrame, names: Iterable) -> None:
    """ValueError naming the model's columns that appear more than once in ``data``."""
    cols = data.columns
    if cols.is_unique:
        return
    wanted = set()
    for n in names:
        if isinstance(n, (str, int, np.integer)):  # column names; arrays given as trials=/weights= skipped
            wanted.add(n)
    dup = list(dict.fromkeys(c for c in cols[cols.duplicated()] if c in wanted))
    if dup:
        raise ValueError(f"data has duplicate column name(s) {dup} used by the model, so it is ambiguous "
                         f"which copy to use; rename or drop the copies, e.g. "
                         f"data.loc[:, ~data.columns.duplicated()]")


def _is_temporal(s: pd.Series) -> bool:
    dt = s.dtype
    if pd.api.types.is_datetime64_any_dtype(dt) or pd.api.types.is_timedelta64_dtype(dt) \
            or isinstance(dt, pd.PeriodDtype):
        return True
    if isinstance(dt, pd.ArrowDtype):
        import pyarrow as pa
        return pa.types.is_temporal(dt.pyarrow_dtype)
    if dt == object:
        return pd.api.types.infer_dtype(s, skipna=True) in ("datetime", "datetime64", "date", "time",
                                                             "timedelta", "timedelta64", "period")
    return False


def check_columns(frame: pd.DataFrame, formula: str, predictors: Iterable = (), numeric: Iterable = (),
                  groups: Iterable = ()) -> None:
    """Refuse column types the model cannot use, naming the column and the conversion.

    ``predictors``: columns used as predictors (fixed part, random-term left-hand sides),
    checked for dates/times, complex numbers, mixed-type objects and infinite values.
    ``numeric``: further columns that must not be dates or complex (response, offsets).
    ``groups``: grouping factors, which must not mix value types (e.g. ``1`` and ``"1"``).
    """
    predictors = list(dict.fromkeys(predictors))
    for c in dict.fromkeys(groups):
        if c in frame.columns and frame[c].dtype == object:
            kind = pd.api.types.infer_dtype(frame[c], skipna=True)
            if kind in ("mixed", "mixed-integer"):
                raise ValueError(f"grouping column {c!r} in formula {formula!r} mixes value types ({kind}), so "
                                 f"its levels are ambiguous; convert it, e.g. data[{c!r}].astype(str)")
    for c in dict.fromkeys(list(predictors) + list(numeric)):
        if c not in frame.columns:
            continue
        s = frame[c]
        if _is_temporal(s):
            raise ValueError(
                f"column {c!r} in formula {formula!r} holds dates/times ({s.dtype}), which cannot enter a model "
                f"directly; convert it to a number, e.g. days since a date: "
                f"(data[{c!r}] - data[{c!r}].min()).dt.days, or to a factor: data[{c!r}].astype(str)")
        if pd.api.types.is_complex_dtype(s.dtype):
            raise ValueError(f"column {c!r} in formula {formula!r} holds complex numbers; use a real column "
                             f"(e.g. np.real or np.abs of it)")
        if c not in predictors:
            continue
        if s.dtype == object:
            kind = pd.api.types.infer_dtype(s, skipna=True)
            if kind in ("integer", "floating", "mixed-integer-float", "decimal"):
                raise ValueError(f"column {c!r} in formula {formula!r} holds numbers stored as Python objects "
                                 f"(dtype object); convert it: pd.to_numeric(data[{c!r}])")
            if kind not in ("string", "boolean", "empty", "categorical"):
                raise ValueError(f"column {c!r} in formula {formula!r} mixes value types ({kind}); make it "
                                 f"numeric with pd.to_numeric(data[{c!r}]) or a factor with "
                                 f"data[{c!r}].astype(str)")
        elif pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype) \
                and not isinstance(s.dtype, pd.CategoricalDtype):
            v = s.to_numpy(dtype=float, na_value=np.nan)
            bad = np.isinf(v)
            if bad.any():
                raise ValueError(f"column {c!r} in formula {formula!r} has {int(bad.sum())} infinite value(s) "
                                 f"(first at row {s.index[int(np.flatnonzero(bad)[0])]!r}); replace them, e.g. "
                                 f"with NaN to drop those rows")


def normalize_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """pyarrow dictionary columns become pandas categoricals (a new frame; others unchanged)."""
    conv = {}
    for c in frame.columns:
        dt = frame[c].dtype
        if isinstance(dt, pd.ArrowDtype):
            import pyarrow as pa
            if pa.types.is_dictionary(dt.pyarrow_dtype):
                arr = frame[c].array.__arrow_array__()
                arr = arr.combine_chunks() if hasattr(arr, "combine_chunks") else arr
                codes = arr.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
                conv[c] = pd.Categorical.from_codes(codes, categories=arr.dictionary.to_pylist(),
                                                    ordered=bool(dt.pyarrow_dtype.ordered))
    if not conv:
        return frame
    out = frame.copy()
    for c, v in conv.items():
        out[c] = pd.Series(v, index=frame.index)
    return out


def side_values(arg: Any, data: pd.DataFrame, what: str):
    """(column name or None, new float array over all rows or None) for ``trials=``/``weights=``."""
    if arg is None:
        return None, None
    if isinstance(arg, str):
        if arg not in data.columns:
            close = close_matches(arg, data.columns, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else \
                f"; available columns: {', '.join(map(str, list(data.columns)[:20]))}"
            raise ValueError(f"{what}={arg!r} is not a column of data" + hint)
        vals = data[arg]
        if not pd.api.types.is_numeric_dtype(vals) or pd.api.types.is_bool_dtype(vals) \
                or pd.api.types.is_complex_dtype(vals):
            raise ValueError(f"{what} column {arg!r} must be numeric, got dtype {vals.dtype}; convert it, e.g. "
                             f"pd.to_numeric(data[{arg!r}])")
        return arg, np.array(vals.to_numpy(dtype=float, na_value=np.nan), dtype=float)
    if isinstance(arg, (bool, np.bool_)) or np.isscalar(arg):
        raise InputTypeError(f"{what}= must be a column name or one number per row of data, got {arg!r}")
    if isinstance(arg, pd.Series) and not arg.index.equals(data.index):
        if arg.index.is_unique and data.index.is_unique and len(arg) == len(data) \
                and arg.index.isin(data.index).all():
            arg = arg.reindex(data.index)  # same labels, other order: align like pandas
        else:
            raise ValueError(f"{what}= is a pandas Series whose index does not match data's index; pass "
                             f"{what}=series.to_numpy() to match rows by position, or a column name")
    if hasattr(arg, "dtype") and pd.api.types.is_bool_dtype(arg.dtype):
        raise InputTypeError(f"{what}= holds booleans; give numbers (e.g. {what}=mask.astype(float))")
    try:
        if isinstance(arg, pd.Series):
            vals = arg.to_numpy(dtype=float, na_value=np.nan)
        else:
            vals = np.asarray(arg)
            if np.iscomplexobj(vals):
                raise TypeError
            vals = vals.astype(float)
        vals = np.array(vals, dtype=float).ravel()  # always a new array: the caller's stays untouched
    except (TypeError, ValueError):
        raise InputTypeError(f"{what}= must be a column name or numeric array-like (one number per row)") \
            from None
    if vals.shape[0] != len(data):
        raise ValueError(f"{what}= has {vals.shape[0]} values but data has {len(data)} rows; pass one "
                         f"value per row (or a column name)")
    return None, vals


def check_weights(w: np.ndarray, label: str = "weights") -> None:
    """Finite, non-negative, not all zero (rows with missing weights are dropped before)."""
    bad = ~np.isfinite(w)
    if bad.any():
        raise ValueError(f"{label} has {int(bad.sum())} infinite value(s); weights must be finite and "
                         f"non-negative: fix or drop those rows")
    neg = w < 0
    if neg.any():
        raise ValueError(f"{label} has {int(neg.sum())} negative value(s) (e.g. {w[neg][0]:g}); weights must be "
                         f"finite and non-negative: check the weights column")
    if not (w > 0).any():
        raise ValueError(f"{label} are all zero, so no observation carries information; give positive "
                         f"weights to the rows to fit")


def check_trials_family(trials: Any, family) -> None:
    """``trials=`` only where the family counts trials (binomial)."""
    if trials is not None and not family.needs_trials:
        raise ValueError(f"trials= applies to family='binomial' only (got family={family.name!r}); drop "
                         f"trials= or use family='binomial'")


def check_sample_size(spec) -> None:
    """Refuse fewer observations than parameters; warn when there are barely more.

    Run when a model is fitted (not when the design is built).  The observations are
    the rows with positive weight; the parameters are the fixed effects (and
    zero-inflation coefficients), the random-effect (co)variances and the residual
    scale or dispersion.  Gaussian models also need fewer levels than observations in
    every grouping factor (lme4's check).
    """
    family, terms = spec.family, spec.terms
    n = int(np.sum(np.asarray(spec.weights) > 0))
    X_zi = getattr(spec, "X_zi", None)
    p = int(spec.X.shape[1]) + (0 if X_zi is None else int(np.shape(X_zi)[1]))
    n_cov = sum(t.n_theta for t in terms)
    n_disp = len(family.aux_params)  # every auxiliary parameter (a residual scale, a dispersion, df, ...)
    k = p + n_cov + n_disp
    what = f"{p} fixed effect(s) + {n_cov} random-effect (co)variance(s)" + \
        (f" + {n_disp} dispersion/residual scale" if n_disp == 1 else
         f" + {n_disp} auxiliary parameters ({', '.join(family.aux_names)})" if n_disp else "")
    if n < k:
        raise ValueError(f"too few observations: {n} row(s) for {k} parameters ({what}); add data or "
                         f"simplify the model")
    if family.has_sigma:
        for t in terms:  # lme4: "number of levels of each grouping factor must be < number of observations"
            if t.n_levels >= n:
                raise ValueError(f"grouping factor {t.group!r} has {t.n_levels} levels for {n} observations, so "
                                 f"its random effects cannot be told apart from the residual; a "
                                 f"grouping factor needs fewer levels than observations")
    if n < 2 * k:
        warn(f"very few observations: {n} row(s) for {k} parameters ({what}); estimates will be "
             f"unreliable")


# ----------------------------------------------------------------------------- scalar arguments
def check_bool(value: Any, arg: str, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, (bool, np.bool_)):
        extra = " (or None for the default)" if allow_none else ""
        raise InputTypeError(f"{arg} must be True or False{extra}, got {value!r}")


def check_reml(reml: Any) -> None:
    """``reml`` is True, False or None."""
    check_bool(reml, "reml", allow_none=True)


def check_random_seed(random_seed: Any, arg: str = "random_seed") -> None:
    """None or an integer in [0, 2**64)."""
    if random_seed is None:
        return
    if isinstance(random_seed, (bool, np.bool_)) or not isinstance(random_seed, (int, np.integer)):
        raise InputTypeError(f"{arg} must be a non-negative integer or None, got {random_seed!r}")
    if not 0 <= int(random_seed) < 2 ** 64:
        raise ValueError(f"{arg} must be a non-negative integer below 2**64, got {random_seed!r}; e.g. "
                         f"{arg}={abs(int(random_seed)) % 2 ** 32}")


def check_n_agq(n_agq: Any) -> None:
    """A positive integer (an integral float is accepted)."""
    if isinstance(n_agq, (bool, np.bool_)) or not isinstance(n_agq, (int, np.integer, float, np.floating)):
        raise InputTypeError(f"n_agq must be a positive integer (1 = Laplace, e.g. 25 for adaptive "
                             f"Gauss-Hermite quadrature), got {n_agq!r}")
    if not np.isfinite(n_agq) or float(n_agq) != int(n_agq) or n_agq < 1:
        raise ValueError(f"n_agq must be a positive integer (1 = Laplace, e.g. 25 for adaptive "
                         f"Gauss-Hermite quadrature), got {n_agq!r}")


def check_sample_args(draws: Any = 1, tune: Any = 0, chains: Any = 1, random_seed: Any = None) -> None:
    """Integer draws >= 1, tune >= 0, chains >= 1 and a valid seed."""
    for nm, v, low in (("draws", draws, 1), ("tune", tune, 0), ("chains", chains, 1)):
        kind = "non-negative" if low == 0 else "positive"
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise InputTypeError(f"{nm} must be a {kind} integer, got {v!r}")
        if v < low:
            raise ValueError(f"{nm} must be a {kind} integer, got {v!r}")
    check_random_seed(random_seed)


def check_sample_call(spec, draws: Any = 1000, tune: Any = 1000, chains: Any = 4, random_seed: Any = None) -> None:
    """The checks of :meth:`GLMM.sample`: its arguments, then the model's size."""
    check_sample_args(draws, tune, chains, random_seed)
    check_sample_size(spec)


def check_fit_ml_call(spec, n_agq: Any = 1, reml: Any = None) -> None:
    """The checks of :meth:`GLMM.fit_ml`: ``n_agq``, ``reml``, then the model's size."""
    check_n_agq(n_agq)
    check_reml(reml)
    check_sample_size(spec)


def check_fit_pql_call(spec, dispersion: Any = True) -> None:
    """The checks of :meth:`GLMM.fit_pql`."""
    check_bool(dispersion, "dispersion")
    check_sample_size(spec)


def check_family(family: Any, link: Any = None) -> None:
    """Family and link names, with suggestions for misspellings."""
    from .. import families as fm

    if isinstance(family, fm.Family):
        return
    if not isinstance(family, str):
        raise InputTypeError(f"family must be a string such as 'bernoulli', got {family!r}")
    aliases = dict(getattr(fm, "ALIASES", {"normal": "gaussian"}))
    known = list(fm.FAMILIES) + list(aliases)
    name = family.lower()
    if name not in known:
        raise ValueError(f"unknown family {family!r}{_did_you_mean(name, known)}; choose one of "
                         f"{sorted(fm.FAMILIES)}")
    if link is None:
        return
    if not isinstance(link, str):
        raise InputTypeError(f"link must be a string such as 'logit' (or None for the default), got {link!r}")
    allowed = fm.FAMILIES[aliases.get(name, name)]
    if link.lower() not in allowed:
        raise ValueError(f"link {link!r} is not available for family {aliases.get(name, name)!r}"
                         f"{_did_you_mean(link.lower(), allowed)}; choose one of {list(allowed)}")


def check_mapping(value: Any, arg: str, example: str) -> None:
    """None or a dict."""
    if value is not None and not isinstance(value, Mapping):
        raise InputTypeError(f"{arg} must be a dict, e.g. {example}; got {type(value).__name__}")


def check_glmm_args(formula: Any, family: Any = "gaussian", link: Any = None, *,
                    priors: Any = None, centered: Any = False) -> None:
    """The argument checks of :class:`bayes_glmm.GLMM` that need no data (types, names).

    Data-dependent checks (columns, values, sizes) run while the design is built
    (:func:`bayes_glmm.spec.design.build_spec`).
    """
    check_formula_text(formula)
    check_family(family, link)
    check_mapping(priors, "priors", "{'sd_g': bg.Prior('HalfNormal', sigma=1)}")
    if not (isinstance(centered, (bool, np.bool_, Mapping)) or (isinstance(centered, str) and centered == "auto")):
        raise InputTypeError(f"centered must be True/False or a dict term name -> True/False/'hierarchical'/"
                             f"'auto', e.g. {{'g': True}}, or 'auto' (the default); got {centered!r}")

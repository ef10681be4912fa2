"""Turn a formula and a DataFrame into a :class:`~bayes_glmm.spec.model_spec.ModelSpec`.

The fixed part goes through ``formulae`` (treatment coding) and its columns are renamed
and reordered the way R's ``model.matrix`` names them.  Each random term is kept as the
pair (level codes, raw model matrix ``Xr``), so Z is never formed densely.  Rows with
missing values in any used column are dropped (lme4's ``na.omit``) with a warning.
"""
from __future__ import annotations

import difflib
import re
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from types import SimpleNamespace

from . import validate
from ..covariance import default_structure, get_structure
from ..families import REGISTRY as family_registry_dict, Family, zero_part_families, zi_families
from .formula import (EXPR_FUNCTIONS, FORMULA_FUNCTIONS, NUMPY_FUNCTIONS, ParsedFormula, allowed_function,
                      eval_expr, parse_formula, tokens)
from .model_spec import ModelSpec, NewDesign, RandomTerm

__all__ = ["build_spec", "level_label"]

_NAMESPACE: dict = {}  # filled by _namespace() on first use


def _namespace() -> dict:
    """Everything formulae can look up while evaluating the fixed part, random-term left-hand
    sides and zi= (formulae adds its own transforms C, I, scale, ...).  An explicit environment
    instead of the caller's frame: no module is reachable (``np`` is a holder of the allowed
    functions only), and the designs kept for new data stay picklable.  Built on first use:
    formulae (which imports scipy.interpolate) is imported only when a formula has terms."""
    if not _NAMESPACE:
        from formulae.transforms import TRANSFORMS
        _NAMESPACE.update({**{f: getattr(np, f) for f in FORMULA_FUNCTIONS if hasattr(np, f)},
                           "factor": TRANSFORMS["C"],
                           "np": SimpleNamespace(**{f: getattr(np, f) for f in NUMPY_FUNCTIONS})})
    return _NAMESPACE


_KNOWN_FUNCS = set(FORMULA_FUNCTIONS) | set(EXPR_FUNCTIONS) | {"cbind", "offset"}
_CONST_NAMES = {"TRUE", "FALSE", "True", "False", "None", "pi"}


def level_label(v: Any) -> str:
    """A factor level as R prints it: ``True -> "TRUE"``, ``2.0 -> "2"``, ``"B" -> "B"``."""
    if isinstance(v, (bool, np.bool_)):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (float, np.floating)):
        return str(int(v)) if float(v).is_integer() else repr(float(v))
    return str(v)


# ----------------------------------------------------------------------------- columns
def _suggest(name: str, columns, rest: str = "") -> str:
    """Hint for an unknown column ``name``; ``rest`` is the formula text from where it starts."""
    # "my col" written without backticks reaches here as the word "my": point to the column
    # whose words follow in the text, else to one that has the word
    spaced = [str(c) for c in columns if len(str(c).split()) > 1 and name in str(c).split()]
    spaced.sort(key=lambda c: re.match(r"\s+".join(map(re.escape, c.split())), rest) is None)
    if spaced:
        return f"; did you mean `{spaced[0]}`? (names with spaces need backticks)"
    same_case = [str(c) for c in columns if str(c).lower() == name.lower()]
    close = same_case or difflib.get_close_matches(name, [str(c) for c in columns], n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; available columns: {', '.join(map(str, list(columns)[:20]))}"


def _columns_in(text: str, columns, where: str, formula: str) -> list:
    """Data columns referenced by ``text``; unknown names raise with a suggestion."""
    out = []
    for tok in tokens(text):
        if tok.is_keyword or tok.name in _CONST_NAMES:
            continue
        if tok.is_call:
            if tok.name in _KNOWN_FUNCS or allowed_function(tok.name):
                continue
            raise ValueError(f"unknown function {tok.name!r} in {where} of formula {formula!r}; supported "
                             f"functions: {', '.join(sorted(_KNOWN_FUNCS))}, "
                             f"np.{{{','.join(NUMPY_FUNCTIONS)}}}; or add a computed column")
        if tok.name in columns:
            out.append(tok.name)
        elif tok.name == ".":
            raise ValueError(f"'.' (all other columns) in formula {formula!r} is not supported; list the "
                             f"columns explicitly")
        else:
            raise ValueError(f"unknown column {tok.name!r} in {where} of formula {formula!r}"
                             + _suggest(tok.name, columns, text[tok.pos:]))
    return list(dict.fromkeys(out))


def _side_values(arg, data: pd.DataFrame, what: str):
    """(column name or None, new float array over all rows or None) for ``trials=``/``weights=``."""
    return validate.side_values(arg, data, what)


def _for_formulae(frame: pd.DataFrame) -> pd.DataFrame:
    """New frame for formulae: bool columns become two-level factors (R treats logicals as
    factors) and categoricals keep their category order, unused categories dropped."""
    cols = {}
    for c in frame.columns:
        s = frame[c]
        if pd.api.types.is_bool_dtype(s) or (s.dtype == object and len(s) and
                                             s.map(lambda v: isinstance(v, (bool, np.bool_))).all()):
            cols[c] = pd.Series(pd.Categorical(s.astype(bool), categories=[False, True]), index=s.index)
        elif isinstance(s.dtype, pd.CategoricalDtype):  # formulae keeps the order only if "ordered"
            cols[c] = s.cat.remove_unused_categories().cat.as_ordered()
    # a shallow copy with the recoded columns replaced (building a frame from all the columns
    # costs ~0.3 ms, a tenth of a small model's construction; replacing one ~15 us)
    out = frame.copy(deep=False)
    for c, s in cols.items():
        out[c] = s
    return out


def _columns(frame: pd.DataFrame, cols) -> pd.DataFrame:
    """``frame[list(cols)]`` taken by position: the same frame at half the cost (a list of labels
    goes through pandas's strict indexer, ~0.2 ms on a small frame); falls back to labels
    where a name is not one unique column."""
    locs = [frame.columns.get_loc(c) for c in cols]
    if all(isinstance(i, (int, np.integer)) for i in locs):
        return frame.take(locs, axis=1)  # (iloc's positional path: 2.5x slower on a small frame)
    return frame[list(cols)]


def _string_factors(fx: pd.DataFrame, cols) -> pd.DataFrame:
    """``fx`` with its string columns among ``cols`` as ordered categoricals of their sorted
    values (a new frame; ``fx`` unchanged).

    This is the coding formulae gives a string column (levels ``sorted(np.unique(x))``,
    treatment contrasts), done once here with one ``np.unique``: formulae builds it with two
    categorical passes per term, ~0.4 ms of a small model's construction. Only for plain
    variables (the caller checks that no function of the formula receives the column).
    """
    conv = {}
    for c in cols:
        s = fx[c]
        if isinstance(s.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(s.dtype) \
                or not pd.api.types.is_string_dtype(s.dtype) or pd.api.types.infer_dtype(s) != "string":
            continue
        levels, codes = np.unique(s.to_numpy(dtype=object), return_inverse=True)
        levels = levels.tolist()
        if levels != sorted(levels):  # formulae's order; never differs for strings, but be exact
            continue
        # object categories: formulae reads them back as the same list (``categories.tolist()``),
        # and pandas validates a str-dtype Index of them ~3x slower
        dtype = pd.CategoricalDtype(pd.Index(levels, dtype=object), ordered=True)
        conv[c] = pd.Series(pd.Categorical.from_codes(codes.ravel(), dtype=dtype), index=s.index)
    if not conv:
        return fx
    out = fx.copy(deep=False)
    for c, v in conv.items():
        out[c] = v
    return out


# ----------------------------------------------------------------------------- model matrices
@dataclass(frozen=True)
class _Matrix:
    """A formulae design (or a pure intercept) with the lme4 column order and names.

    A design of plain main effects coded without formulae (:func:`_plain_design`) keeps its
    ``source`` (right-hand side, the coded frame, the full design's names) and builds
    formulae's terms on first use of :attr:`common` (new data, the ANOVA's term map): the
    same terms the eager path builds, checked to give the same columns and names."""

    built: Any  # formulae CommonTerms; None for "1" / "0" only, or until built from ``source``
    perm: np.ndarray
    names: tuple
    intercept_only: bool
    source: Any = None

    @property
    def common(self):
        """formulae's ``CommonTerms`` of the design (None for an intercept or nothing)."""
        if self.built is None and self.source is not None:
            rhs, fx, full_names = self.source
            dm = _formulae_design(rhs, fx, "design", rhs)
            perm, names = _lme4_order(dm.common, rhs)
            if names != full_names or not np.array_equal(perm, np.arange(len(names))):
                raise RuntimeError(f"internal: the plain coding of {rhs!r} differs from formulae's "
                                   f"({full_names} against {names}); please report it")
            object.__setattr__(self, "built", dm.common)
        return self.built

    def evaluate(self, fx: pd.DataFrame, where: str) -> np.ndarray:
        n = len(fx)
        if self.common is None:
            return np.ones((n, 1)) if self.intercept_only else np.zeros((n, 0))
        try:
            X = np.asarray(self.common.evaluate_new_data(fx)).astype(float)
        except Exception as e:  # formulae raises several types for unseen levels etc.
            raise ValueError(f"cannot evaluate the {where} on newdata: {e}; check levels and columns") from None
        return X[:, self.perm]


def _component_position(name: str, rhs: str) -> int:
    compact, key = re.sub(r"\s+", "", rhs), re.sub(r"\s+", "", name)
    m = re.search(rf"(?<![\w.`]){re.escape(key)}(?![\w.`(])", compact) or \
        re.search(rf"`{re.escape(key)}`", compact)
    return m.start() if m else len(compact)


def _lme4_order(common, rhs: str):
    """Column permutation and lme4 names for a formulae design."""
    blocks = []
    for k, (tname, term) in enumerate(common.terms.items()):
        sl = common.slices[tname]
        cols = np.arange(sl.start, sl.stop)
        if tname == "Intercept":
            blocks.append((0, k, cols, ["(Intercept)"]))
            continue
        info = []
        for c in term.components:
            name = c.name.replace(" ** ", "^")
            if c.kind == "categoric":
                mat, lv = np.asarray(c.contrast_matrix.matrix), list(c.levels)
                labs = [level_label(lv[int(np.argmax(mat[:, j]))])
                        if np.isin(mat[:, j], (0.0, 1.0)).all() and mat[:, j].sum() == 1
                        else str(c.contrast_matrix.labels[j]) for j in range(mat.shape[1])]
            else:
                val = np.asarray(c.value)
                width = val.shape[1] if val.ndim == 2 else 1
                labs = [""] if width == 1 else [str(j + 1) for j in range(width)]
            info.append((name, labs))
        shape = [len(labs) for _, labs in info]
        if int(np.prod(shape)) != len(cols):  # unexpected layout: fall back to formulae's labels
            names = [re.sub(r"\[(.*?)\]", r"\1", lab) for lab in term.labels]
            blocks.append((len(info), k, cols, names))
            continue
        order = sorted(range(len(info)), key=lambda i: (_component_position(info[i][0], rhs), i))
        flat = np.arange(len(cols)).reshape(shape).transpose(order).ravel(order="F")
        names = []
        for f in flat:
            idx = np.unravel_index(f, shape)
            names.append(":".join(info[i][0] + info[i][1][idx[i]] for i in order))
        blocks.append((len(info), k, cols[flat], names))
    blocks.sort(key=lambda b: (b[0], b[1]))  # R puts lower-order terms first
    perm = np.concatenate([b[2] for b in blocks]) if blocks else np.zeros(0, dtype=int)
    return perm.astype(int), tuple(n for b in blocks for n in b[3])


def _model_matrix(rhs: str, has_terms: bool, intercept: bool, fx: pd.DataFrame, where: str,
                  formula: str, plain: bool = False):
    """(matrix, _Matrix) for a right-hand side such as ``"1 + Month*Treatment"``.  ``plain``:
    the caller coded the frame's plain text columns (:func:`_string_factors`), so a sum of
    plain variables may be coded here without formulae (:func:`_plain_design`)."""
    n = len(fx)
    if not has_terms:
        enc = _Matrix(None, np.zeros(0, dtype=int), ("(Intercept)",) if intercept else (), intercept)
        return enc.evaluate(fx, where), enc
    fast = _plain_design(rhs, fx) if plain else None
    if fast is not None:
        X, names = fast
        _check_finite(X, n, where, rhs, formula)
        return X, _Matrix(None, np.arange(len(names)), names, False, source=(rhs, fx, names))
    dm = _formulae_design(rhs, fx, where, formula)
    X = np.asarray(dm.common.design_matrix).astype(float)
    _check_finite(X, n, where, rhs, formula)
    perm, names = _lme4_order(dm.common, rhs)
    return X[:, perm], _Matrix(dm.common, perm, names, False)


def _formulae_design(rhs: str, fx: pd.DataFrame, where: str, formula: str):
    """formulae's design matrices of ``rhs`` on ``fx`` (a ValueError naming the part on failure)."""
    # here, not at the top: formulae imports scipy.interpolate (~0.3 s), and "y ~ 1 + (1 | g)" needs none of it
    from formulae import design_matrices
    from formulae.environment import Environment

    try:
        with np.errstate(all="ignore"):  # bad values are reported by the caller, with the term
            return design_matrices(rhs, fx, na_action="error", env=Environment([_namespace()]))
    except Exception as e:
        raise ValueError(f"cannot build the {where} '{rhs}' of formula {formula!r}: {e}") from None


def _check_finite(X, n, where, rhs, formula):
    if X.shape[0] != n or not np.all(np.isfinite(X)):
        raise ValueError(f"the {where} '{rhs}' of formula {formula!r} produced missing or infinite values "
                         f"(e.g. log of a non-positive number); transform the column beforehand")


_PLAIN_NAME = re.compile(r"[A-Za-z_.][A-Za-z0-9_.]*\Z")


def _plain_design(rhs: str, fx: pd.DataFrame):
    """``(X, names)`` of ``"1 + a + b + ..."`` -- an intercept and plain variables, each once --
    coded as formulae codes it and named as lme4 names it, or None for any other right-hand
    side or column type (formulae then).

    A numeric column enters as itself; a factor (an ordered categorical, as the caller's
    recoding leaves every factor but bool's [False, True]) as treatment dummies of its levels
    after the first, named ``<variable><level>``.  formulae's design of such a formula costs
    ~2.5 ms, most of a small model's construction; its terms are built only if new data or the
    ANOVA's term map need them (:attr:`_Matrix.common`, which checks that they give these
    columns and names).
    """
    parts = [t.strip() for t in rhs.split("+")]
    if not parts or parts[0] != "1":
        return None
    names_in = parts[1:]
    if not names_in or len(set(names_in)) != len(names_in) or not all(_PLAIN_NAME.match(v) for v in names_in):
        return None
    cols = fx.columns
    if not cols.is_unique or any(v not in cols for v in names_in):
        return None
    n = len(fx)
    blocks, names = [np.ones((n, 1))], ["(Intercept)"]
    for v in names_in:
        s = fx[v]
        dt = s.dtype
        if isinstance(dt, pd.CategoricalDtype):
            levels = list(dt.categories)
            codes = s.cat.codes.to_numpy()
            if len(levels) < 2 or codes.size == 0 or codes.min() < 0:
                return None
            if not dt.ordered and (levels != sorted(levels) or np.unique(codes).size != len(levels)):
                return None  # (formulae orders an unordered factor's observed values: bool's [False, True])
            blocks.append((codes[:, None] == np.arange(1, len(levels))).astype(float))
            names += [v + level_label(lv) for lv in levels[1:]]
        elif getattr(dt, "kind", "") in "iuf" and not pd.api.types.is_bool_dtype(dt):
            blocks.append(s.to_numpy(dtype=float)[:, None])
            names.append(v)
        else:
            return None
    return np.concatenate(blocks, axis=1), tuple(names)


# ----------------------------------------------------------------------------- grouping factors
def _factorize(s: pd.Series, col: str, where: str):
    """(codes, levels) with R's level order: categorical order, else sorted unique values."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.cat.remove_unused_categories()
        return s.cat.codes.to_numpy(dtype=np.int64), pd.Index(s.cat.categories)
    # a text column through its object array: the same codes and (str) levels, 5x faster than
    # factorizing the pyarrow-backed Series of pandas 3
    vals = s.to_numpy(dtype=object) if pd.api.types.is_string_dtype(s.dtype) else s
    try:
        codes, uniques = pd.factorize(vals, sort=True)
    except TypeError:
        raise ValueError(f"grouping column {col!r} in {where} mixes value types; convert it, e.g. "
                         f"data[{col!r}].astype(str)") from None
    return codes.astype(np.int64), pd.Index(uniques)


def _level_codes(levels: pd.Index, values) -> np.ndarray:
    """Codes of ``values`` among fitted ``levels`` (-1 if unseen).

    Values that do not match exactly are matched on their printed label, as R's factor
    levels are, so ``"308"`` finds the level ``308`` of an integer-coded factor.
    """
    values = np.asarray(values, dtype=object)
    codes = levels.get_indexer(pd.Index(values)).astype(np.int64)
    miss = codes < 0
    if miss.any():
        by_label = pd.Index([level_label(v) for v in levels])
        if by_label.is_unique:
            codes[miss] = by_label.get_indexer(pd.Index([level_label(v) for v in values[miss]]))
    return codes


@dataclass(frozen=True)
class _Grouping:
    """How to map rows to the levels of a (possibly interaction) grouping factor."""

    group_vars: tuple
    var_levels: tuple  # per variable: pandas.Index of fitted levels
    keys: np.ndarray | None  # sorted combined keys of observed interaction levels

    def encode(self, frame: pd.DataFrame):
        """(codes with -1 for unseen levels, per-row label array) for a frame."""
        if len(self.group_vars) == 1:
            v = self.group_vars[0]
            vals = frame[v].to_numpy()
            return _level_codes(self.var_levels[0], vals), vals.astype(object)
        key = np.zeros(len(frame), dtype=np.int64)
        bad = np.zeros(len(frame), dtype=bool)
        for v, lev in zip(self.group_vars, self.var_levels):
            c = _level_codes(lev, frame[v].to_numpy())
            bad |= c < 0
            key = key * len(lev) + c
        pos = np.clip(np.searchsorted(self.keys, key), 0, len(self.keys) - 1)
        codes = np.where(~bad & (self.keys[pos] == key), pos, -1).astype(np.int64)
        cols = [frame[v].map(level_label).to_numpy(dtype=object) for v in self.group_vars]
        labels = np.array([":".join(t) for t in zip(*cols)], dtype=object)
        return codes, labels


def _grouping(group_vars: tuple, frame: pd.DataFrame, where: str):
    """(codes, levels, _Grouping) from the data rows."""
    parts = [_factorize(frame[v], v, where) for v in group_vars]
    if len(parts) == 1:
        codes, levels = parts[0]
        return codes, levels, _Grouping(group_vars, (levels,), None)
    key = np.zeros(len(frame), dtype=np.int64)
    for c, lev in parts:
        key = key * len(lev) + c
    codes, keys = pd.factorize(key, sort=True)
    labels = []
    for k in keys:
        pieces = []
        for _, lev in reversed(parts):
            k, r = divmod(int(k), len(lev))
            pieces.append(level_label(lev[r]))
        labels.append(":".join(reversed(pieces)))
    grp = _Grouping(group_vars, tuple(lev for _, lev in parts), np.asarray(keys, dtype=np.int64))
    return codes.astype(np.int64), pd.Index(labels, dtype=object), grp


# ----------------------------------------------------------------------------- response
def _numeric(raw, label: str, family: str) -> np.ndarray:
    s = pd.Series(np.asarray(raw)) if not isinstance(raw, pd.Series) else raw
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        return s.to_numpy(dtype=float)
    raise ValueError(f"response {label!r} must be numeric for family {family!r} (found dtype {s.dtype}); "
                     f"convert the column to numbers")


def _binary(raw: pd.Series, label: str):
    """(0/1 float array, success level) for a bernoulli response."""
    if pd.api.types.is_bool_dtype(raw) or (raw.dtype == object and
                                           raw.map(lambda v: isinstance(v, (bool, np.bool_))).all()):
        return raw.astype(bool).to_numpy(dtype=float), True
    if pd.api.types.is_numeric_dtype(raw) and not isinstance(raw.dtype, pd.CategoricalDtype):
        return raw.to_numpy(dtype=float), None
    if isinstance(raw.dtype, pd.CategoricalDtype):
        used = raw.cat.remove_unused_categories()
        levels = list(used.cat.categories if len(used.cat.categories) != 1 else raw.cat.categories)
        codes = pd.Categorical(raw, categories=levels).codes
    else:
        codes, levels = pd.factorize(raw, sort=True)
        levels = list(levels)
    if len(levels) != 2:
        raise ValueError(f"bernoulli response {label!r} must have exactly two levels; found {len(levels)} "
                         f"({levels[:5]}). Recode it as 0/1 or bool, or choose another family")
    return (np.asarray(codes) == 1).astype(float), levels[1]


def _response(parsed: ParsedFormula, frame: pd.DataFrame, family: Family, trials):
    """(y, trials, success_level), and the family fitted to the categories for a categorical
    response (a fourth element)."""
    label = parsed.response_label
    if parsed.cbind is not None:
        if not family.needs_trials:
            raise ValueError(f"response {label!r} uses cbind(successes, failures), which needs "
                             f"family='binomial' (got {family.name!r}); use family='binomial'")
        if trials is not None:
            raise ValueError(f"give binomial trials either through {label!r} or trials=, not both; "
                             f"drop trials=")
        s, f = (_numeric(np.broadcast_to(eval_expr(e, frame, "cbind argument"), (len(frame),)), label, family.name)
                for e in parsed.cbind)  # a constant such as cbind(k, 5) is recycled, as in R
        return s, s + f, None
    expr = parsed.response.strip()
    col = expr[1:-1] if expr.startswith("`") and expr.endswith("`") else expr
    raw = frame[col] if col in frame.columns else pd.Series(eval_expr(expr, frame, "response"))
    if family.categorical_response:  # ordered categories: codes 0 .. K-1, the family fitted to them
        y, fitted = family.for_response(raw, label)
        return y, None, None, fitted
    if family.is_binary and not family.needs_trials:  # one 0/1 trial per row
        y, success = _binary(raw, label)
        return y, None, success
    vals = pd.Series(raw).dropna()
    if family.needs_trials and trials is None and vals.nunique() <= 2 and (
            not pd.api.types.is_numeric_dtype(vals) or vals.isin((0, 1)).all()):
        # 0/1, bool or two-level data without trials is binary: the likely intent is bernoulli
        raise ValueError(f"binomial response {label!r} needs trials, and it is binary: for "
                         f"one trial per row use family='bernoulli'; for counts out of n write "
                         f"cbind(successes, failures) on the left of the formula or pass trials='column'")
    return _numeric(raw, label, family.name), trials, None


# ----------------------------------------------------------------------------- new data
@dataclass(frozen=True)
class _NewDesignBuilder:
    """Callable stored as ``ModelSpec.new_design``: the fitted coding applied to new rows."""

    formula: str
    required: tuple
    fixed: _Matrix
    offsets: tuple
    terms: tuple  # per term: (_Matrix for Xr, _Grouping, text)
    cbind: tuple | None
    trials_column: str | None
    zi: _Matrix | None = None
    disp: _Matrix | None = None

    def __call__(self, newdata: pd.DataFrame) -> NewDesign:
        newdata = validate.as_dataframe(newdata, "newdata", allow_empty=True)
        missing = [c for c in self.required if c not in newdata.columns]
        if missing:
            raise ValueError(f"newdata is missing column(s) {missing} needed by formula {self.formula!r}; "
                             f"add them")
        na = [c for c in self.required if newdata[c].isna().any()]
        if na:
            raise ValueError(f"newdata has missing values in column(s) {na}; drop or fill those rows")
        frame = validate.normalize_columns(newdata[list(self.required)])
        fx = _for_formulae(frame)
        X = self.fixed.evaluate(fx, "fixed part")
        offset = np.zeros(len(frame))
        for e in self.offsets:
            offset = offset + np.asarray(eval_expr(e, frame, "offset"), dtype=float)
        codes, Xr, labels = [], [], []
        for enc, grp, text in self.terms:
            Xr.append(enc.evaluate(fx, f"random term {text}"))
            c, lab = grp.encode(frame)
            codes.append(c)
            labels.append(lab)
        trials = None
        if self.cbind is not None:
            try:
                trials = sum(np.asarray(eval_expr(e, newdata, "cbind argument"), dtype=float)
                             for e in self.cbind)
            except ValueError:
                trials = None
        elif self.trials_column is not None and self.trials_column in newdata.columns:
            trials = newdata[self.trials_column].to_numpy(dtype=float)
        X_zi = self.zi.evaluate(fx, "zero-inflation formula") if self.zi is not None else None
        X_disp = self.disp.evaluate(fx, "dispersion formula") if self.disp is not None else None
        return NewDesign(X=X, offset=offset, codes=tuple(codes), Xr=tuple(Xr), trials=trials,
                         index=newdata.index, labels=tuple(labels), X_zi=X_zi, X_disp=X_disp)


def _drop_intercept(X: np.ndarray, enc: _Matrix):
    """X and its encoder without the ``(Intercept)`` column (new data evaluate the same way)."""
    keep = [j for j, nm in enumerate(enc.names) if nm != "(Intercept)"]
    if enc.built is None and enc.source is None:
        return X[:, keep], _Matrix(None, enc.perm, (), False)
    return X[:, keep], _Matrix(enc.built, enc.perm[keep], tuple(enc.names[j] for j in keep), False,
                               source=enc.source)


# ----------------------------------------------------------------------------- entry point
def _zero_part_formula(zi, hu, family: Family):
    """The zero part's formula and its keyword: ``zi=`` (zero inflation) or ``hu=`` (a hurdle),
    as the family's :attr:`~bayes_glmm.families.Family.zero_label` says; a hurdle family without
    one gets its :attr:`~bayes_glmm.families.Family.zero_default` (``"~1"``)."""
    label = family.zero_label
    if hu is not None and label != "hu":
        hurdles = ", ".join(repr(f) for f in zero_part_families("hu"))
        raise ValueError(f"hu={hu!r}: a hurdle applies to the hurdle families {hurdles}, not {family.name!r}; "
                         f"change family (e.g. family={zero_part_families('hu')[0]!r}) or, for zero "
                         f"inflation, pass zi= instead of hu=")
    if zi is not None and label != "zi":
        raise ValueError(f"zi={zi!r}: family {family.name!r} has a {label} part, not zero inflation; "
                         f"pass {label}={zi!r} instead of zi= (its default is {label}={family.zero_default!r})")
    if label != "zi":
        return (hu if hu is not None else family.zero_default), label
    return zi, label


def _zero_part_what(arg: str) -> str:
    """How messages name the zero part's formula."""
    return "zero-inflation formula" if arg == "zi" else f"{arg}= formula"


def _parse_one_sided(text0, arg: str, what: str, constant: str, re_note: str, offset_note: str = ""):
    """ParsedFormula of the one-sided formula ``arg=`` (``zi=``, ``hu=``, ``disp=``): a string
    starting with ``~``, fixed effects only, no offset, at least an intercept.  ``what`` names the
    formula in messages, ``constant`` the quantity ``'~1'`` holds constant."""
    if not isinstance(text0, str):
        raise ValueError(f"{arg} must be a one-sided formula string such as '~ x' or '~1'; got {text0!r}")
    text = text0.strip()
    if not text.startswith("~"):
        raise ValueError(f"{arg}={text0!r} must be one-sided, starting with '~' (e.g. {arg}='~ x'; {arg}='~1' for "
                         f"a constant {constant})")
    if "|" in text:
        raise ValueError(f"{arg}={text0!r}: random effects in the {what} formula are not supported{re_note}; "
                         f"use fixed effects only (e.g. {arg}='~ x')")
    stand_in = f"{arg}__ " + text
    try:
        parsed = parse_formula(stand_in)
    except ValueError as e:  # name arg= in the message, not the stand-in two-sided formula
        shown = repr(stand_in)
        raise ValueError(str(e).replace(f"of the fixed part of formula {shown}", f"of {arg}={text0!r}")
                         .replace(f"formula {shown}", f"{arg}={text0!r}")) from None
    if parsed.offsets:
        raise ValueError(f"{arg}={text0!r}: offset() in the {what} formula is not supported; remove it{offset_note}")
    if not parsed.fixed_terms and not parsed.intercept:
        raise ValueError(f"{arg}={text0!r} has no terms; use {arg}='~1' for a constant {constant}")
    return parsed


def _parse_zi(zi, family: Family, arg: str = "zi"):
    """ParsedFormula of a one-sided zero-part formula such as ``"~ mined"`` (``zi=``, or ``hu=``
    of a hurdle family: ``arg``), or None."""
    if zi is None:
        return None
    what = "zero-inflation" if arg == "zi" else family.zero_doc.split(" (")[0]
    if arg == "zi" and isinstance(zi, str) and not family.allows_zi:
        raise ValueError(f"zi={zi!r}: zero inflation applies to the count families "
                         f"{', '.join(repr(f) for f in zi_families())}, not {family.name!r}; "
                         f"drop zi= or change family")
    return _parse_one_sided(zi, arg, what, f"{what} probability", " yet")


def _parse_disp(disp, family: Family):
    """ParsedFormula of a one-sided dispersion formula such as ``"~ Sex"``, or None."""
    if disp is None:
        return None
    if isinstance(disp, str) and not family.allows_disp:
        takes = [n for n, c in family_registry_dict.items() if c.aux_params and c.aux_params[0].allows_formula]
        raise ValueError(f"disp={disp!r}: a dispersion formula applies to the families with a dispersion "
                         f"parameter that declares one ({', '.join(repr(f) for f in takes)}), not "
                         f"{family.name!r}; drop disp= or change family")
    return _parse_one_sided(disp, "disp", "dispersion", "dispersion", "",
                            " (or enter the variable as a covariate, disp='~ x')")


def _grid_summary(fx: pd.DataFrame, required: tuple) -> dict:
    """Per predictor column: its levels (a factor, in the coding's order) or its mean (numeric);
    what a reference grid (emmeans) is built from without keeping the data."""
    out = {}
    for c in required:
        s = fx[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            out[c] = ("factor", list(s.cat.categories))
        elif pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            out[c] = ("numeric", float(np.mean(np.asarray(s, dtype=float))))
        else:
            out[c] = ("factor", sorted(pd.unique(s), key=lambda v: (str(type(v)), v)))
    return out


def _grid_data(fx: pd.DataFrame, summary: dict, fixed_cols) -> dict:
    """What emmeans's ``weights=`` and ``emtrends`` need from the data besides ``_grid_summary``:
    the count of fitted rows in each combination of the fixed part's factors (``counts``, keyed
    by level tuples in ``factors`` order) and each numeric column's range (trend step)."""
    factors = [c for c, (kind, _) in summary.items() if kind == "factor" and c in fixed_cols]
    counts = {}
    if factors and len(fx) <= 20_000:
        # a Counter over the rows' level tuples: the same counts (looked up by level tuple,
        # never iterated in order) at ~50 us instead of the ~2.5 ms of a pandas groupby, a
        # fixed cost of every model built on small data; pandas is faster on large data
        # (tolist gives the same Python scalars as astype(object).tolist(), without the object copy)
        counts = dict(Counter(zip(*[fx[c].tolist() for c in factors])))
    elif factors:
        keys = pd.MultiIndex.from_frame(fx[factors].astype(object)) if len(factors) > 1 else fx[factors[0]]
        counts = {(k if isinstance(k, tuple) else (k,)): int(v)
                  for k, v in pd.Series(1, index=keys).groupby(level=list(range(len(factors)))).sum().items()}
    ranges = {c: float(np.ptp(np.asarray(fx[c], dtype=float))) for c, (kind, _) in summary.items()
              if kind == "numeric"}
    return {"factors": factors, "counts": counts, "ranges": ranges}


def build_spec(formula: str, data: pd.DataFrame, family: Family, trials=None, weights=None,
               zi=None, hu=None, disp=None) -> ModelSpec:
    """Evaluate an lme4 formula on data.

    Parameters
    ----------
    formula : str
        lme4 syntax, see ``docs/formula.md``.
    data : pandas.DataFrame
        Never modified.
    family : Family
    trials : str or array-like, optional
        Binomial trials (column name or one value per row of ``data``).
    weights : str or array-like, optional
        Non-negative prior weights (column name or one value per row).
    zi : str, optional
        One-sided formula of the zero-inflation logit (``"~ x"``), count families only.
    hu : str, optional
        One-sided formula of the logit of P(y = 0) of a hurdle family (default ``"~1"``);
        carried as the zero-inflation part is (``X_zi``, ``zi_names``, ``zi_formula``).
    disp : str, optional
        One-sided formula of the log of the family's dispersion parameter (``"~ x"``), for the
        families whose first auxiliary parameter declares ``allows_formula``.

    Returns
    -------
    ModelSpec

    Raises
    ------
    ValueError
        Naming the column or term at fault (unknown column, single-level grouping
        factor, unsuitable response, ...).
    """
    data = validate.as_dataframe(data)  # polars / pyarrow / dict -> a new pandas frame
    validate.check_trials_family(trials, family)
    parsed = parse_formula(formula)
    zi, zi_arg = _zero_part_formula(zi, hu, family)
    zi_parsed = _parse_zi(zi, family, zi_arg)
    disp_parsed = _parse_disp(disp, family)
    cols = data.columns
    resp_text = ", ".join(parsed.cbind) if parsed.cbind is not None else parsed.response
    used = _columns_in(resp_text, cols, "response", formula)
    fixed_cols = _columns_in(parsed.fixed_rhs, cols, "fixed part", formula)
    offset_cols = _columns_in(" ".join(parsed.offsets), cols, "offset()", formula)
    term_cols = []
    coded_cols = list(fixed_cols)  # the columns formulae codes (not grouping factors, not offsets)
    for r in parsed.random:
        lhs_cols = _columns_in(r.lhs, cols, f"random term {r.text!r}", formula)
        for g in r.group_vars:
            if g not in cols:
                raise ValueError(f"grouping factor {g!r} in random term {r.text!r} is not a column of data"
                                 + _suggest(g, cols))
        term_cols += lhs_cols + list(r.group_vars)
        coded_cols += lhs_cols
    part_cols = []  # the zero and dispersion formulas' columns: on emmeans's grid too
    if zi_parsed is not None:
        part_cols += _columns_in(zi_parsed.fixed_rhs, cols, _zero_part_what(zi_arg), str(zi))
    if disp_parsed is not None:
        part_cols += _columns_in(disp_parsed.fixed_rhs, cols, "dispersion formula", str(disp))
    term_cols += part_cols
    coded_cols += part_cols
    validate.check_unique_columns(data, used + fixed_cols + offset_cols + term_cols + [trials, weights])
    if not used:
        raise ValueError(f"the response {parsed.response_label!r} of formula {formula!r} uses no column of data; "
                         f"put the response column left of '~'")
    trials_col, trials_all = _side_values(trials, data, "trials")
    weights_col, weights_all = _side_values(weights, data, "weights")
    required = tuple(dict.fromkeys(fixed_cols + offset_cols + term_cols))
    used = list(dict.fromkeys(used + list(required) + [c for c in (trials_col, weights_col) if c]))

    # --- missing values: drop rows like na.omit ------------------------------------
    # column by column (a frame's isna/sum/any cost ~4x more on small data; the same counts)
    # (the column's array: the same mask as Series.isna without building a Series, ~4x faster)
    na = [np.asarray(data[c].array.isna(), dtype=bool) for c in used]
    na_counts = {c: int(m.sum()) for c, m in zip(used, na) if m.any()}
    drop = np.logical_or.reduce(na) if used else np.zeros(len(data), dtype=bool)
    for what, col, arr in (("trials", trials_col, trials_all), ("weights", weights_col, weights_all)):
        if arr is not None and col is None and np.isnan(arr).any():
            na_counts.setdefault(f"{what}=", int(np.isnan(arr).sum()))
            drop |= np.isnan(arr)
    n_dropped = int(drop.sum())
    if n_dropped == len(data):
        raise ValueError(f"no complete rows: every row has a missing value in {sorted(na_counts)}")
    if n_dropped:
        detail = ", ".join(f"{c!r} ({k})" for c, k in na_counts.items())
        warnings.warn(f"dropped {n_dropped} of {len(data)} rows with missing values in: {detail}",
                      UserWarning, stacklevel=validate.user_stacklevel())
    keep = ~drop
    frame = validate.normalize_columns(data.loc[keep, used] if n_dropped else _columns(data, used))
    groups = {g for r in parsed.random for g in r.group_vars}
    validate.check_columns(frame, formula, predictors=[c for c in required if c not in groups or c in fixed_cols],
                           numeric=_columns_in(resp_text, cols, "response", formula), groups=groups)
    fx = _for_formulae(_columns(frame, required))
    rhs_texts = [parsed.fixed_rhs] + [r.lhs for r in parsed.random] + \
        [p.fixed_rhs for p in (zi_parsed, disp_parsed) if p is not None]
    plain = not any("(" in t for t in rhs_texts)
    if plain:  # plain variables only: no function sees the column
        fx = _string_factors(fx, dict.fromkeys(coded_cols))
    n = len(frame)

    # --- response, fixed part, offsets, weights ---------------------------------------
    trials_v = trials_all[keep] if trials_all is not None else None
    y, trials_v, success, *fitted = _response(parsed, frame, family, trials_v)
    family = fitted[0] if fitted else family
    family.check_response(y, trials_v, parsed.response_label)
    X, fixed_enc = _model_matrix(parsed.fixed_rhs, bool(parsed.fixed_terms), parsed.intercept, fx,
                                 "fixed part", formula, plain)
    if family.drops_intercept and not parsed.intercept:
        raise ValueError(f"formula {formula!r} removes the intercept, which family {family.name!r} takes the "
                         f"place of with its thresholds: a factor would then be coded with all its levels, "
                         f"confounded with them; keep the intercept (it is dropped for you, as in clmm)")
    if family.drops_intercept and "(Intercept)" in fixed_enc.names:
        # the family's auxiliary parameters (an ordinal model's thresholds) take its place; the
        # factors keep the coding they get with an intercept (clmm's model matrix, less its column)
        X, fixed_enc = _drop_intercept(X, fixed_enc)
    offset = np.zeros(n)
    for e in parsed.offsets:
        offset = offset + np.broadcast_to(np.asarray(eval_expr(e, frame, "offset"), dtype=float), (n,))
        if not np.all(np.isfinite(offset)):
            raise ValueError(f"offset({e}) has non-finite values (e.g. log(0)); fix the column")
    w = np.ones(n) if weights_all is None else weights_all[keep]
    validate.check_weights(w, "weights" if weights_col is None else f"weights column {weights_col!r}")

    # --- random terms ----------------------------------------------------------------------
    built = []
    for r in parsed.random:
        where = f"random term {r.text!r}"
        Xr, enc = _model_matrix(r.lhs, bool(r.lhs_terms), r.intercept, fx, where, formula, plain)
        codes, levels, grp = _grouping(r.group_vars, frame, where)
        if len(levels) < 2:
            raise ValueError(f"grouping factor {r.group!r} in {where} has a single level "
                             f"({level_label(levels[0])!r}); a random effect needs at least 2 groups: drop the "
                             f"term or model it as a fixed effect")
        built.append((r, Xr, enc, codes, levels, grp))
    built.sort(key=lambda b: -len(b[4]))  # lme4 order: decreasing number of levels (stable)
    seen: dict = {}
    terms, encoders = [], []
    for r, Xr, enc, codes, levels, grp in built:
        k = seen.get(r.group, 0)
        seen[r.group] = k + 1
        name = r.group if k == 0 else f"{r.group}.{k}"
        cov = default_structure(r.correlated, Xr.shape[1])
        if Xr.shape[1] > 1 and getattr(r, "structure", None) not in (None, "us", "diag"):
            cov = get_structure(r.structure)  # a scalar term is diag whatever its keyword
            cov.check(Xr.shape[1], tuple(enc.names), r.text)
        terms.append(RandomTerm(name=name, group=r.group, coef_names=enc.names,
                                correlated=r.correlated and Xr.shape[1] > 1, codes=codes, levels=levels,
                                Xr=Xr, cov=cov))
        encoders.append((enc, grp, r.text))

    X_zi, zi_enc = None, None
    if zi_parsed is not None:
        X_zi, zi_enc = _model_matrix(zi_parsed.fixed_rhs, bool(zi_parsed.fixed_terms), zi_parsed.intercept, fx,
                                     _zero_part_what(zi_arg), str(zi), plain)
    X_disp, disp_enc = None, None
    if disp_parsed is not None:
        X_disp, disp_enc = _model_matrix(disp_parsed.fixed_rhs, bool(disp_parsed.fixed_terms),
                                         disp_parsed.intercept, fx, "dispersion formula", str(disp), plain)
    builder = _NewDesignBuilder(formula, required, fixed_enc, parsed.offsets, tuple(encoders),
                                parsed.cbind, trials_col, zi_enc, disp_enc)
    grid_summary = _grid_summary(fx, required)
    return ModelSpec(formula=formula, family=family, response_name=parsed.response_label, y=y,
                     trials=trials_v, X=X, fixed_names=fixed_enc.names, offset=offset, weights=w,
                     terms=tuple(terms), row_index=data.index[keep], n_dropped=n_dropped,
                     success_level=success, new_design=builder,
                     info={"parsed": parsed, "used_columns": tuple(used), "na_counts": na_counts,
                           "grid": grid_summary, "fixed_columns": tuple(fixed_cols + offset_cols),
                           "grid_data": _grid_data(fx, grid_summary, fixed_cols + part_cols)},
                     X_zi=X_zi, zi_names=zi_enc.names if zi_enc is not None else (),
                     zi_formula=None if zi is None else str(zi),
                     X_disp=X_disp, disp_names=disp_enc.names if disp_enc is not None else (),
                     disp_formula=None if disp is None else str(disp))

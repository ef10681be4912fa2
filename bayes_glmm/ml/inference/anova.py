"""F tests per fixed-effect term (``lmerTest::anova``) and model comparison (``lme4::anova``).

Hypothesis matrices
-------------------
Type I (sequential)
    The rows of the unit upper-triangular factor ``U`` of the Doolittle decomposition
    ``X'X = U' D U`` that belong to the term's columns: each term is tested adjusted for
    the terms before it, as sequential sums of squares.

Type III (marginal), as defined by Kuznetsova, Brockhoff & Christensen (2017, JSS 82(13),
sec. 3.4; also SAS's type III)
    Let ``X`` be the full-rank treatment-coded model matrix and ``X*`` the "complete"
    over-parametrized design in which every term is coded with *all* its level indicators
    (times its numeric variables).  ``M = X^+ X*`` (p x K) expresses each complete column in
    the model's coefficients; row ``c`` of ``M`` is a vector in the K-dimensional cell space
    for coefficient ``c``.  Terms are visited from the highest order down, and the rows of a
    term that is contained in other terms (its variables a subset of theirs) are replaced by
    their residuals after projection on the rows of the containing terms.  The contrast for
    coefficient ``c`` of term T then has, in the position of coefficient ``r``, the entry of
    the residualized row ``c`` at the complete column that *is* X's column ``r``; rows that
    vanish are dropped.  So under treatment coding a main effect is tested averaged over
    the levels of the factors it interacts with, not at their reference level.  ``M`` is
    found on a synthetic grid of all level combinations with random values of the numeric
    variables (it does not depend on the rows when X* lies in X's column space, which holds
    for the hierarchical formulas lme4 users write).
    With at most one term the type I matrices are used, as lmerTest does.

The F statistics and denominator df come from :mod:`bayes_glmm.ml.inference.ddf`.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special  # chdtrc(df, x) = chi2.sf(x, df) for x >= 0, without importing scipy.stats

from . import ddf as _ddf
from ..refit import check_ml_fit, refit_ml

__all__ = ["FixedTerm", "fixed_terms", "contrasts_type1", "contrasts_type3", "anova_table", "anova"]


# ---------------------------------------------------------------------- terms of X
@dataclass(frozen=True)
class FixedTerm:
    """One term of the fixed part.

    Attributes
    ----------
    label : str
        As R prints it (``"Days"``, ``"Month:Treatment"``).
    columns : tuple of int
        Its columns in X (lme4 order).
    variables : tuple of str
        The variables it is made of, in the label's order.
    """

    label: str
    columns: tuple
    variables: tuple


@dataclass(frozen=True)
class _Component:
    name: str
    categoric: bool
    levels: tuple  # categoric: level labels
    contrast: np.ndarray | None  # categoric: (n_levels, n_cols) coding used in this term
    width: int  # numeric: number of value columns


@dataclass(frozen=True)
class _TermLayout:
    term: FixedTerm
    components: tuple  # of _Component, formulae order
    column_index: dict  # X column -> per-component column index (formulae order)


def _layouts(spec):
    """(has_intercept, list of _TermLayout) from the formulae design kept by the spec.

    The fixed part's column-to-term map is not stored in the spec itself, so it is read
    from the formulae design that ``spec.new_design`` keeps for ``predict``.
    """
    nd = getattr(spec, "new_design", None)
    enc = getattr(nd, "fixed", None)
    if enc is None or not hasattr(enc, "perm"):
        raise ValueError("this fit's spec records no formula design (it was not built by "
                         "bayes_glmm.spec.design.build_spec), so its columns cannot be mapped to terms; "
                         "fit the model through bayes_glmm.GLMM")
    names = list(spec.fixed_names)
    common = enc.common
    if common is None:  # "~ 1" or "~ 0"
        return bool(enc.intercept_only), []
    perm = np.asarray(enc.perm, dtype=int)
    where = {int(f): j for j, f in enumerate(perm)}  # formulae column -> X column
    has_int, out = False, []
    for tname, term in common.terms.items():
        sl = common.slices[tname]
        if tname == "Intercept":
            has_int = True
            continue
        comps = []
        for c in term.components:
            if c.kind == "categoric":
                mat = np.asarray(c.contrast_matrix.matrix, dtype=float)
                comps.append(_Component(c.name, True, tuple(c.levels), mat, mat.shape[1]))
            else:
                val = np.asarray(c.value)
                comps.append(_Component(c.name.replace(" ** ", "^"), False, (), None,
                                        val.shape[1] if val.ndim == 2 else 1))
        shape = [c.width for c in comps]
        cols, index = [], {}
        for f in range(sl.start, sl.stop):
            j = where[f]
            cols.append(j)
            index[j] = tuple(int(i) for i in np.unravel_index(f - sl.start, shape))
        cols.sort()
        order = _label_order(names[cols[0]], [c.name for c in comps])
        label = ":".join(comps[i].name for i in order)
        out.append(_TermLayout(FixedTerm(label, tuple(cols), tuple(comps[i].name for i in order)),
                               tuple(comps), index))
    out.sort(key=lambda t: t.term.columns[0])  # R's term order: that of the columns
    return has_int, out


def _label_order(colname: str, comp_names: list) -> list:
    """Component order in R's label, read off the term's first column name ("Month:TreatmentB")."""
    pieces = colname.split(":")
    if len(pieces) == len(comp_names):
        order = []
        for piece in pieces:
            cand = [i for i, nm in enumerate(comp_names) if piece.startswith(nm) and i not in order]
            if not cand:
                break
            order.append(max(cand, key=lambda i: len(comp_names[i])))
        if len(order) == len(comp_names):
            return order
    return list(range(len(comp_names)))


def fixed_terms(spec) -> list:
    """The fixed-effect terms of a spec (intercept excluded), in R's order.

    Returns
    -------
    list of FixedTerm
    """
    return [t.term for t in _layouts(spec)[1]]


# ---------------------------------------------------------------------- type I
def contrasts_type1(X: np.ndarray, terms) -> dict:
    """Sequential (type I) hypothesis matrices: rows of the Doolittle factor of X'X.

    Parameters
    ----------
    X : ndarray (n, p)
    terms : list of FixedTerm

    Returns
    -------
    dict
        term label -> (q_T, p) matrix.
    """
    X = np.asarray(X, dtype=float)
    R = np.linalg.cholesky(X.T @ X).T  # X'X = R'R, R upper
    U = R / np.diag(R)[:, None]  # unit upper triangular: X'X = U' D U
    return {t.label: U[list(t.columns), :] for t in terms}


# ---------------------------------------------------------------------- type III
def _grid(layouts, rng):
    """Synthetic rows: every level combination, with random values of the numeric variables.

    Returns (categoric assignment: var -> level index array, numeric: var -> (rows, width)).
    """
    cats, nums = {}, {}
    monomials = set()
    for lay in layouts:
        for c in lay.components:
            if c.categoric:
                cats.setdefault(c.name, len(c.levels))
            else:
                nums.setdefault(c.name, c.width)
        monomials.add(frozenset(c.name for c in lay.components if not c.categoric))
    names = list(cats)
    sizes = [cats[v] for v in names]
    n_cells = int(np.prod(sizes)) if sizes else 1
    if n_cells <= 20000:
        cells = np.array(list(itertools.product(*[range(s) for s in sizes])), dtype=int).reshape(n_cells, len(sizes))
    else:  # too many combinations: random cells still make the grid generic
        cells = np.column_stack([rng.integers(0, s, 20000) for s in sizes])
    reps = len(monomials) + 2  # enough generic points per cell for every numeric product
    cells = np.repeat(cells, reps, axis=0)
    m = cells.shape[0]
    cat_vals = {v: cells[:, i] for i, v in enumerate(names)}
    num_vals = {v: rng.normal(size=(m, w)) for v, w in nums.items()}
    return m, cat_vals, num_vals


def _column_values(lay, idx, cat_vals, num_vals, m, complete: bool):
    """Values on the grid of one column of a term: X's (coded) or the complete design's."""
    v = np.ones(m)
    for c, i in zip(lay.components, idx):
        if c.categoric:
            lev = cat_vals[c.name]
            v = v * ((lev == i).astype(float) if complete else c.contrast[lev, i])
        else:
            v = v * num_vals[c.name][:, i]
    return v


def _indicator_level(col: np.ndarray):
    """Level index whose indicator a contrast column is, or None (non-treatment coding)."""
    if np.isin(col, (0.0, 1.0)).all() and col.sum() == 1:
        return int(np.argmax(col))
    return None


def contrasts_type3(spec, seed: int = 0) -> dict:
    """lmerTest's type III hypothesis matrices (see the module docstring).

    Parameters
    ----------
    spec : ModelSpec
        Built by :func:`bayes_glmm.spec.design.build_spec` (full-rank X, indicator coding).
    seed : int
        For the random numeric values of the synthetic grid (the result does not depend
        on it beyond rounding).

    Returns
    -------
    dict
        term label -> (q_T, p) matrix.

    Raises
    ------
    NotImplementedError
        When a factor is coded with non-indicator contrasts (e.g. sum-to-zero).
    """
    has_int, layouts = _layouts(spec)
    terms = [lay.term for lay in layouts]
    p = spec.p
    if p <= 1 or len(terms) <= 1:
        return contrasts_type1(spec.X, terms)
    rng = np.random.default_rng(seed)
    m, cat_vals, num_vals = _grid(layouts, rng)
    # X on the grid (lme4 column order) and the complete design, term by term
    names = list(spec.fixed_names)
    # the formula's intercept, dropped from X because the family's thresholds take its place
    # (ordinal): the grid keeps it as an extra last column, so the factors' treatment coding
    # spans the same space as in the formula
    absorbed = has_int and "(Intercept)" not in names
    Xg = np.zeros((m, p + int(absorbed)))
    if has_int:
        Xg[:, p if absorbed else names.index("(Intercept)")] = 1.0
    complete_cols, complete_of = [], {}  # complete column key -> position
    if has_int:
        complete_of[("(Intercept)",)] = 0
        complete_cols.append(np.ones(m))
    term_complete = {}
    for lay in layouts:
        for j, idx in lay.column_index.items():
            Xg[:, j] = _column_values(lay, idx, cat_vals, num_vals, m, complete=False)
        full = [range(len(c.levels)) if c.categoric else range(c.width) for c in lay.components]
        pos = []
        for idx in itertools.product(*full):
            complete_of[(lay.term.label, idx)] = len(complete_cols)
            pos.append(len(complete_cols))
            complete_cols.append(_column_values(lay, idx, cat_vals, num_vals, m, complete=True))
        term_complete[lay.term.label] = pos
    Xc = np.column_stack(complete_cols)
    if np.linalg.matrix_rank(Xg) < Xg.shape[1]:
        raise ValueError("the model matrix rebuilt on a grid of level combinations is rank deficient; "
                         "type III contrasts are not available for this formula (use type=1)")
    M = np.linalg.lstsq(Xg, Xc, rcond=None)[0]  # p x K: X^+ X*
    M[np.abs(M) < 1e-10] = 0.0
    # which complete column is X's column r (its own coding must be indicators)
    match = np.empty(p, dtype=int)
    if has_int and not absorbed:
        match[names.index("(Intercept)")] = complete_of[("(Intercept)",)]
    for lay in layouts:
        for j, idx in lay.column_index.items():
            key = []
            for c, i in zip(lay.components, idx):
                if c.categoric:
                    lev = _indicator_level(c.contrast[:, i])
                    if lev is None:
                        raise NotImplementedError(
                            f"type III tests need treatment (indicator) coding, but factor {c.name!r} in "
                            f"term {lay.term.label!r} uses other contrasts; recode it or use type=1")
                    key.append(lev)
                else:
                    key.append(i)
            match[j] = complete_of[(lay.term.label, tuple(key))]
    vars_of = {t.label: set(t.variables) for t in terms}
    contained_in = {a: [b for b in vars_of if b != a and vars_of[a] < vars_of[b]] for a in vars_of}
    order = sorted(terms, key=lambda t: -len(t.variables))  # stable: higher order first
    rows = {t.label: list(t.columns) for t in terms}
    for t in order:
        outer = [r for b in contained_in[t.label] for r in rows[b]]
        if not outer:
            continue
        B = M[outer, :].T  # K x |outer|
        Y = M[rows[t.label], :].T
        coef = np.linalg.lstsq(B, Y, rcond=None)[0]
        R = Y - B @ coef
        R[np.abs(R) < 1e-10 * max(1.0, np.abs(Y).max())] = 0.0
        M[rows[t.label], :] = R.T
    out = {}
    for t in terms:
        Lt = M[rows[t.label]][:, match]  # entry (c, r): row c at the complete column of X's r
        out[t.label] = Lt[np.sum(np.abs(Lt), axis=1) > 1e-8]
    return out


# ---------------------------------------------------------------------- the table
def anova_table(res, ddf: str = "satterthwaite", type=3) -> pd.DataFrame:
    """Per-term F tests of a fit (see :meth:`MLResults.anova`)."""
    t = _check_type(type)
    spec = res.spec
    terms = fixed_terms(spec)
    if not terms:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in ("sum_sq", "mean_sq", "num_df", "den_df", "F", "p")})
    if t == 1 and _layouts(spec)[0] and "(Intercept)" not in spec.fixed_names:
        # the formula's intercept is held by the family's thresholds (ordinal): the sequence starts
        # after it, as in the formula (the intercept's own column then dropped)
        X1 = np.column_stack([np.ones(spec.n), np.asarray(spec.X, dtype=float)])
        full = contrasts_type1(X1, [FixedTerm(tm.label, tuple(c + 1 for c in tm.columns), tm.variables)
                                    for tm in terms])
        Ls = {k: v[:, 1:] for k, v in full.items()}
    else:
        Ls = contrasts_type1(spec.X, terms) if t == 1 else contrasts_type3(spec)
    beta = np.asarray(res.fit.beta, dtype=float)
    if _ddf.is_lmm(spec):
        method = _ddf.normalize_ddf(ddf)
        info = _ddf.cached_info(res, method)
        s2 = float(res.fit.sigma) ** 2
    else:  # GLMM: Wald chi-square / q, den_df = inf
        _ddf.normalize_ddf(ddf)
        method, info, s2 = "wald", np.asarray(res.fit.vcov_beta, dtype=float), np.nan
    rows = {}
    for term in terms:
        r = _ddf.contrast_test(Ls[term.label], beta, method, info)
        ms = r["F"] * s2
        rows[term.label] = {"sum_sq": ms * r["num_df"], "mean_sq": ms, **r}
    out = pd.DataFrame.from_dict(rows, orient="index")[["sum_sq", "mean_sq", "num_df", "den_df", "F", "p"]]
    out["num_df"] = out["num_df"].astype(int)
    out.attrs["type"] = t
    out.attrs["ddf"] = method
    return out


def _check_type(type) -> int:
    key = {1: 1, 3: 3, "1": 1, "3": 3, "I": 1, "III": 3, "i": 1, "iii": 3}.get(type)
    if key is None:
        raise ValueError(f"type={type!r} is not supported; use type=3 (marginal, the default) or type=1 "
                         f"(sequential)")
    return key


# ---------------------------------------------------------------------- model comparison
def anova(*fits, names=None, **kwargs):
    """Compare nested ML fits like ``lme4::anova(m1, m2, ...)``; one fit: its F-test table.

    Parameters
    ----------
    *fits : MLResults
        Fits of the same response to the same rows.  REML fits are refitted by ML first
        (with a warning), as lme4 does; ML GLMM fits (Laplace / AGQ) are accepted.
    names : list of str, optional
        Row labels; default ``"m1", "m2", ...`` in the order given.
    **kwargs
        With a single fit only: ``ddf`` and ``type`` for :meth:`MLResults.anova`.

    Returns
    -------
    pandas.DataFrame
        Indexed by model name, sorted by the number of parameters (stable): ``npar, AIC,
        BIC, logLik, deviance, Chisq, Df, p``, where ``Chisq = 2 max(0, diff(logLik))``
        and ``Df = diff(npar)`` relative to the previous row (p is NaN when Df = 0).

    Raises
    ------
    ValueError
        Fewer than one fit, a fit that is not an ML fit, fits to different rows /
        responses / families, or different approximations (Laplace vs AGQ).

    Examples
    --------
    >>> bg.anova(m1, m2)                                             # doctest: +SKIP
    """
    from .lrt import check_same_data

    if not fits:
        raise ValueError("anova() needs at least one fit: anova(m) for F tests, anova(m1, m2, ...) to compare")
    for i, m in enumerate(fits):
        check_ml_fit(m, f"argument {i + 1}")
    if len(fits) == 1:
        return fits[0].anova(**kwargs)
    if kwargs:
        raise ValueError(f"{sorted(kwargs)} apply to a single fit's F tests, not to a model comparison")
    names = [f"m{i + 1}" for i in range(len(fits))] if names is None else [str(n) for n in names]
    if len(names) != len(fits) or len(set(names)) != len(names):
        raise ValueError(f"names= needs {len(fits)} distinct labels, got {names}")
    for m in fits[1:]:
        check_same_data(fits[0].spec, m.spec)
    fits = refit_ml(fits)
    methods = {m.method for m in fits}
    if len(methods) > 1:
        raise ValueError(f"the models were fitted with different approximations ({sorted(methods)}); "
                         "refit them with the same n_agq")
    npar = np.array([int(m.df) for m in fits])
    order = np.argsort(npar, kind="stable")
    fits = [fits[i] for i in order]
    names = [names[i] for i in order]
    npar = npar[order]
    ll = np.array([m.loglik for m in fits])
    chisq = np.concatenate([[np.nan], 2.0 * np.maximum(0.0, np.diff(ll))])
    dfc = np.concatenate([[np.nan], np.diff(npar).astype(float)])
    with np.errstate(invalid="ignore"):
        p = np.where(dfc > 0, special.chdtrc(np.where(dfc > 0, dfc, 1.0), chisq), np.nan)
    p[0] = np.nan
    return pd.DataFrame({"npar": npar, "AIC": [m.aic for m in fits], "BIC": [m.bic for m in fits],
                         "logLik": ll, "deviance": -2.0 * ll, "Chisq": chisq, "Df": dfc, "p": p},
                        index=pd.Index(names, name="model"))

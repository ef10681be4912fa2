"""Likelihood-ratio tests between nested ML fits, boundary-aware.

Testing whether a variance component is zero puts the null value on the boundary of the
parameter space, where the usual chi-square reference fails (Self & Liang 1987; Stram &
Lee 1994).  The large-sample null distribution of the LR statistic when one random
coefficient is dropped together with its k - 1 covariances with the coefficients it was
correlated with is the 50:50 mixture of chi2_{k-1} and chi2_k (chi2_0 being a point mass
at 0); any fixed effects or interior parameters dropped at the same time shift both
components by their number.  So dropping

* a random intercept (one variance):                 1/2 chi2_0 + 1/2 chi2_1
* a random slope with its covariance with the intercept: 1/2 chi2_1 + 1/2 chi2_2

When more than one variance is dropped at once the mixture weights depend on the
information matrix; :func:`lrt` then uses the naive chi2_df, which is conservative
(p-values too large), and says so.

Families nest too: a Poisson model is the negative binomial at ``1/theta = 0`` (NB2) or
``phi = 0`` (NB1), and a model without zero inflation is the zero-inflated one at
``pi = 0``.  Both nulls are again on the boundary, so Poisson vs NB is referred to
``1/2 chi2_0 + 1/2 chi2_1`` (counted like one variance), and adding a constant zero
inflation (``zi="~1"``) likewise.  A zero-inflation formula with covariates puts the
null at ``eta_zi = -inf``, where no chi-square mixture is exact; the test then uses the
naive chi2 (conservative) and says so.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special  # chdtrc(df, x) = chi2.sf(x, df) for x >= 0, without importing scipy.stats
from ...spec.validate import user_stacklevel
from ..refit import REFIT_MESSAGE, check_ml_fit, refit_ml

__all__ = ["lrt", "LRTResult", "mixture_pvalue", "check_same_data"]

#: the warning lme4's anova gives (and bg.anova) when it refits REML fits by ML
def mixture_pvalue(stat: float, dfs, weights) -> float:
    """Upper-tail probability of a chi-square mixture ``sum_i w_i chi2_{df_i}``.

    ``chi2_0`` is a point mass at zero, so it contributes only when ``stat <= 0``.
    """
    dfs = np.asarray(dfs, dtype=int)
    weights = np.asarray(weights, dtype=float)
    if dfs.shape != weights.shape or np.any(dfs < 0) or not np.isclose(weights.sum(), 1.0):
        raise ValueError("mixture_pvalue needs non-negative dfs and weights of the same length summing to 1")
    if stat <= 0:
        return 1.0
    tail = [0.0 if d == 0 else float(special.chdtrc(d, stat)) for d in dfs]
    return float(np.dot(weights, tail))


@dataclass
class LRTResult:
    """Outcome of :func:`lrt`.

    Attributes
    ----------
    chisq : float
        2 (logLik1 - logLik0), clipped at 0.
    df : int
        Difference in the number of parameters.
    p_value : float
        Upper-tail probability under :attr:`reference`.
    reference : str
        The reference distribution used, e.g. ``"0.5 chi2_0 + 0.5 chi2_1"``.
    p_naive : float
        p-value under the naive chi2_df (for comparison).
    differs : dict
        Parameters in the larger model only: ``fixed``, ``variances``, ``covariances``, and
        ``dispersion`` / ``zi`` where the families or zero-inflation parts differ.
    table : pandas.DataFrame
        anova-style table: npar, AIC, BIC, logLik, deviance, Chisq, Df, Pr(>Chisq); for
        REML fits compared with ``refit=False`` the likelihood columns are ``REML logLik``
        and ``REML criterion`` (-2 REML logLik, as lme4 names it).
    note : str
        Why this reference distribution was chosen.
    """

    chisq: float
    df: int
    p_value: float
    reference: str
    p_naive: float
    differs: dict
    table: pd.DataFrame
    note: str = ""
    dfs: tuple = field(default=())
    weights: tuple = field(default=())

    def __repr__(self) -> str:
        lines = [self.table.to_string(float_format=lambda v: f"{v:.4g}"), "",
                 f"Chisq = {self.chisq:.4f} on {self.df} df, p = {self.p_value:.4g} "
                 f"(reference: {self.reference}; naive chi2_{self.df}: p = {self.p_naive:.4g})"]
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return (self.table.to_html(float_format=lambda v: f"{v:.4g}")
                + f"<p>reference distribution: {self.reference}</p><p>{self.note}</p>")


# ---------------------------------------------------------------------- nesting checks
def _structure(spec) -> dict:
    """group -> (codes, {coef: Xr column}, set of correlated pairs) over all terms on it."""
    out: dict = {}
    for term in spec.terms:
        codes, cols, pairs = out.setdefault(term.group, (term.codes, {}, set()))
        if len(codes) != len(term.codes) or not np.array_equal(codes, term.codes):
            raise ValueError(f"terms on group {term.group!r} use different level codings")
        for j, c in enumerate(term.coef_names):
            if c in cols:
                raise ValueError(f"coefficient {c!r} appears twice for group {term.group!r}")
            cols[c] = term.Xr[:, j]
        if term.cov.n_corr(term.q) > 0:
            cn = term.coef_names
            pairs.update(frozenset((cn[i], cn[j])) for j in range(len(cn)) for i in range(j + 1, len(cn)))
    return out


def _single_term(spec, group):
    """The one term on ``group``, or None when it has several."""
    terms = [t for t in spec.terms if t.group == group]
    return terms[0] if len(terms) == 1 else None


def _cov_nested(a, b, n_points: int = 3) -> bool:
    """True when every covariance matrix of term ``a``'s structure is one of term ``b``'s
    (same coefficients): ``diag`` in ``cs``, ``cs``/``ar1`` in ``toep``, everything in ``us``.

    Checked on the structures' own definitions, without a table of names: a few points of
    ``a``'s parameter space (fixed draws) are projected onto ``b``
    (:meth:`~bayes_glmm.covariance.base.CovStructure.theta_from_lambda`) and must come back
    with the same covariance matrix.
    """
    q = a.q
    rng = np.random.default_rng(20240517)
    lo = a.cov.theta_lower(q)
    for _ in range(n_points):
        th = np.where(np.isfinite(lo), rng.uniform(0.5, 1.5, lo.size), rng.uniform(-1.0, 1.0, lo.size))
        La = a.cov.lambda_(th, q)
        Sa = La @ La.T
        Lb = b.cov.lambda_(b.cov.theta_from_lambda(La), q)
        if not np.allclose(Lb @ Lb.T, Sa, rtol=1e-8, atol=1e-10 * float(np.max(np.abs(Sa)))):
            return False
    return True


def _structured_pair(s0, s1, g):
    """(term0, term1) when group ``g`` has one term in each model with the same coefficients
    and covariance structures that are not both lme4's (``us``/``diag``, handled by pairs of
    correlated coefficients); else None."""
    a, b = _single_term(s0, g), _single_term(s1, g)
    if a is None or b is None or tuple(a.coef_names) != tuple(b.coef_names):
        return None
    if a.cov.linear and b.cov.linear:
        return None
    return a, b


def check_same_data(s0, s1) -> None:
    """ValueError unless two specs have the same rows, response, (nested) family, offsets and
    weights: the precondition of any likelihood comparison (``lrt``, ``bg.anova``)."""
    if s0.n != s1.n or not s0.row_index.equals(s1.row_index):
        raise ValueError(f"the models were fitted to different rows ({s0.n} vs {s1.n} observations); "
                         "fit both to the same data (drop missing values first)")
    same_y = np.array_equal(s0.y, s1.y) and (
        (s0.trials is None and s1.trials is None)
        or (s0.trials is not None and s1.trials is not None and np.array_equal(s0.trials, s1.trials)))
    if not same_y:
        raise ValueError(f"the models have different responses ({s0.response_name!r} vs "
                         f"{s1.response_name!r}); a likelihood-ratio test needs the same response")
    if s0.family != s1.family and not _family_nested(s0.family, s1.family):
        raise ValueError(f"the models have different families ({s0.family.name}/{s0.family.link.name} vs "
                         f"{s1.family.name}/{s1.family.link.name}) that are not nested; refit them with the "
                         f"same family (poisson is nested in negbinomial and nbinom1)")
    if not np.allclose(s0.offset, s1.offset) or not np.allclose(s0.weights, s1.weights):
        raise ValueError("the models have different offsets or weights; they are not nested")


def _family_nested(f0, f1) -> bool:
    """True when family f0 is f1 at a boundary value of f1's dispersion (poisson in NB)."""
    return f1.nests(f0)


def _aux_differences(s0, s1) -> tuple:
    """(auxiliary, zero-inflation) parameters of s1 absent from s0: each auxiliary parameter
    of s1's family (any number of them) that s0's family has not, named by its AuxParam."""
    disp = []
    own = set(s0.family.aux_names)
    for a in s1.family.aux_params:
        if a.name not in own:
            at = a.nested_at or f"{a.name} = 0"
            disp.append(f"{s1.family.name} {a.name} ({at}: the {s0.family.name} model)")
    z0, z1 = list(s0.zi_names), list(s1.zi_names)
    if s0.has_zi and not s1.has_zi:
        raise ValueError("the smaller model has zero inflation and the larger has none; they are not nested")
    missing = [z for z in z0 if z not in z1]
    if missing:
        raise ValueError(f"zero-inflation coefficients {missing} of the smaller model are not in the larger "
                         f"one; the models are not nested")
    for z in z0:
        if not np.allclose(s0.X_zi[:, z0.index(z)], s1.X_zi[:, z1.index(z)]):
            raise ValueError(f"zero-inflation column {z!r} differs between the models; they are not nested")
    return disp, [f"{s1.zi_label}: {z}" for z in z1 if z not in z0]


def _disp_columns(s):
    """``{name: column}`` of a model's dispersion model: its ``disp=`` design, or an intercept
    for a constant first auxiliary parameter (``disp=None``), empty without one."""
    if s.has_disp:
        return {c: s.X_disp[:, j] for j, c in enumerate(s.disp_names)}
    if s.family.allows_disp:
        return {"(Intercept)": np.ones(s.n)}
    return {}


def _disp_differences(s0, s1) -> list:
    """Dispersion-model coefficients of s1 absent from s0 (``disp=`` formulas, interior
    parameters); ValueError when s0's dispersion model is not nested in s1's."""
    if not (s0.has_disp or s1.has_disp):
        return []
    if not (s0.family.allows_disp and s1.family.allows_disp) or \
            s0.family.aux_params[0].name != s1.family.aux_params[0].name:
        raise ValueError("a dispersion formula (disp=) is compared with a model whose family has another (or "
                         "no) dispersion parameter; compare models of the same family, e.g. disp='~1' against "
                         "disp='~ x'")
    d0, d1 = _disp_columns(s0), _disp_columns(s1)
    X1 = np.column_stack(list(d1.values()))
    for c, col in d0.items():
        # nested when each column of the smaller dispersion model lies in the larger one's span
        coef = np.linalg.lstsq(X1, col, rcond=None)[0]
        if not np.allclose(X1 @ coef, col):
            raise ValueError(f"dispersion-model column {c!r} of the smaller model is not in the larger one's "
                             f"dispersion formula; the models are not nested")
    k = len(d1) - len(d0)
    if k < 0:
        raise ValueError("the smaller model's dispersion formula has more columns than the larger's; "
                         "they are not nested")
    extra = [c for c in d1 if c not in d0]
    return [f"disp: {c}" for c in (extra if len(extra) == k else list(d1)[len(d0):])]


def _differences(s0, s1) -> dict:
    """Parameters of s1 absent from s0; ValueError when s0 is not nested in s1."""
    f0, f1 = list(s0.fixed_names), list(s1.fixed_names)
    missing = [f for f in f0 if f not in f1]
    if missing:
        raise ValueError(f"fixed effects {missing} of the smaller model are not in the larger one; "
                         "the models are not nested")
    for f in f0:
        if not np.allclose(s0.X[:, f0.index(f)], s1.X[:, f1.index(f)]):
            raise ValueError(f"fixed-effect column {f!r} differs between the models (different coding?); "
                             "they are not nested")
    r0, r1 = _structure(s0), _structure(s1)
    variances, covariances, structured = [], [], set()
    for g, (codes0, cols0, pairs0) in r0.items():
        if g not in r1:
            raise ValueError(f"random effects for group {g!r} are in the smaller model only; "
                             "the models are not nested")
        codes1, cols1, pairs1 = r1[g]
        if not np.array_equal(codes0, codes1):
            raise ValueError(f"group {g!r} has different levels in the two models; they are not nested")
        extra = [c for c in cols0 if c not in cols1]
        if extra:
            raise ValueError(f"random coefficients {extra} for {g!r} are in the smaller model only; "
                             "the models are not nested")
        for c, col in cols0.items():
            if not np.allclose(col, cols1[c]):
                raise ValueError(f"random coefficient {c!r} for {g!r} differs between the models")
        pair = _structured_pair(s0, s1, g)
        if pair is not None:
            # same coefficients, structured covariances: nested when the smaller structure is
            # a special case of the larger; the difference in parameters is all interior
            a, b = pair
            k = b.n_theta - a.n_theta
            if (a.cov is not b.cov or k) and (k <= 0 or not _cov_nested(a, b)):
                raise ValueError(f"the covariance structure {a.cov.name}(...) of term {a.name!r} is not a "
                                 f"special case of {b.cov.name}(...) in the larger model; the models are "
                                 f"not nested")
            covariances += [f"{g}: {b.cov.name} vs {a.cov.name} ({i + 1}/{k})" for i in range(k)]
            structured.add(g)
            continue
        if not pairs0 <= pairs1:
            raise ValueError(f"the smaller model correlates random effects for {g!r} that the larger "
                             "keeps independent; the models are not nested")
    for g, (_, cols1, pairs1) in r1.items():
        if g in structured:
            continue
        cols0, pairs0 = (r0[g][1], r0[g][2]) if g in r0 else ({}, set())
        variances += [f"{g}: {c}" for c in cols1 if c not in cols0]
        covariances += [f"{g}: {'/'.join(sorted(p))}" for p in pairs1 - pairs0]
    disp, zi = _aux_differences(s0, s1)
    out = {"fixed": [f for f in f1 if f not in f0], "variances": variances, "covariances": covariances,
           "dispersion": disp, "zi": zi, "zi_added": not s0.has_zi and s1.has_zi}
    dm = _disp_differences(s0, s1)
    if dm:  # only where a dispersion formula differs: the record of other comparisons is unchanged
        out["disp"] = dm
    return out


def _reference(df: int, diff: dict):
    """(dfs, weights, label, note) of the null distribution."""
    # parameters whose null value is on the boundary: variances, a dispersion at its
    # Poisson limit, and a zero-inflation probability at 0 (only an intercept-only zi
    # puts it there as a single boundary parameter)
    zi = diff.get("zi", [])
    zi_boundary = diff.get("zi_added") and zi == ["zi: (Intercept)"]
    boundary = diff["variances"] + diff.get("dispersion", []) + (zi if zi_boundary else [])
    n_var = len(boundary)
    if diff.get("zi_added") and not zi_boundary:
        return (df,), (1.0,), f"chi2_{df} (conservative)", (
            "zero inflation with covariates is tested against no zero inflation: the null puts the "
            "zero-inflation linear predictor at -inf, where no chi-square mixture is exact; the naive "
            f"chi2_{df} is used and the p-value is conservative (too large). Compare AIC as well")
    if n_var == 0:
        return (df,), (1.0,), f"chi2_{df}", "no variance is tested on the boundary: naive chi-square"
    if n_var == 1:
        dfs = (df - 1, df)
        return dfs, (0.5, 0.5), f"0.5 chi2_{df - 1} + 0.5 chi2_{df}", (
            f"one parameter ({boundary[0]}) is tested on the boundary of the parameter space: "
            "50:50 chi-square mixture (Self & Liang 1987; Stram & Lee 1994)")
    return (df,), (1.0,), f"chi2_{df} (conservative)", (
        f"{n_var} variances are tested at once on the boundary; the mixture weights depend on the "
        f"information matrix, so the naive chi2_{df} is used and the p-value is conservative (too large)")


def _labels(s0, s1) -> list:
    """Row labels of the table: the formulas, with family and zero inflation where they differ."""
    def lab(s, full):
        out = s.formula
        if full:
            out += (f"  [{s.family.name}" + (f", {s.zi_label} {s.zi_formula}" if s.has_zi else "")
                    + (f", disp {s.disp_formula}" if s.has_disp else "") + "]")
        return out
    full = s0.formula == s1.formula or s0.family != s1.family or s0.zi_formula != s1.zi_formula
    return [lab(s0, full), lab(s1, full)]


def _npar(res) -> int:
    return int(res.df)


def lrt(m0, m1, *, refit: bool = True) -> LRTResult:
    """Likelihood-ratio test of nested ML fits, with a boundary-aware reference distribution.

    Parameters
    ----------
    m0, m1 : MLResults
        Fits of the same response to the same rows, one nested in the other (the order
        does not matter: the model with fewer parameters is the null).
    refit : bool, default True
        REML fits are refitted by ML first, with the warning "refitting model(s) with ML
        (instead of REML)", as ``lme4::anova`` and :func:`bayes_glmm.anova` do, so the test
        compares ML log-likelihoods.  ``False`` compares the REML log-likelihoods of two
        REML fits with the same fixed effects (a test of variance components only).

    Returns
    -------
    LRTResult
        Chisq, Df, p-value, the reference distribution used and an anova-style table.

    Raises
    ------
    ValueError
        When the fits use different data, response or (non-nested) family; are not nested; were fitted
        with different methods (e.g. Laplace vs AGQ); or, with ``refit=False``, one is a REML
        fit and the other is not, or both are REML fits with different fixed effects.

    Examples
    --------
    >>> m0 = bg.GLMM("Reaction ~ Days + (1 | Subject)", d).fit_ml(reml=False)   # doctest: +SKIP
    >>> m1 = bg.GLMM("Reaction ~ Days + (Days | Subject)", d).fit_ml(reml=False) # doctest: +SKIP
    >>> bg.lrt(m0, m1).reference                                                 # doctest: +SKIP
    '0.5 chi2_1 + 0.5 chi2_2'
    """
    for name, m in (("m0", m0), ("m1", m1)):
        check_ml_fit(m, name)
    if _npar(m0) > _npar(m1):
        m0, m1 = m1, m0
    s0, s1 = m0.spec, m1.spec
    check_same_data(s0, s1)
    refitted = refit and (m0.reml or m1.reml)
    if refitted:
        m0, m1 = refit_ml([m0, m1])
    if m0.reml != m1.reml:
        raise ValueError("one model was fitted by REML and the other by ML; use refit=True or refit both "
                         "with reml=False")
    if m0.method != m1.method:
        raise ValueError(f"the models were fitted with different approximations ({m0.method} vs {m1.method}); "
                         "refit both with the same n_agq (n_agq=1, Laplace, works for every model)")
    if m0.reml and list(s0.fixed_names) != list(s1.fixed_names):
        raise ValueError("REML likelihoods of models with different fixed effects are not comparable; "
                         "use refit=True or refit both with reml=False")
    diff = _differences(s0, s1)
    df = _npar(m1) - _npar(m0)
    n_diff = (len(diff["fixed"]) + len(diff["variances"]) + len(diff["covariances"])
              + len(diff["dispersion"]) + len(diff["zi"]) + len(diff.get("disp", [])))
    if df <= 0 or n_diff == 0:
        raise ValueError(f"the models have the same parameters (df difference {df}); they are not nested "
                         "in a testable way")
    if n_diff != df:
        raise ValueError(f"parameter counts disagree ({df} by n_params, {n_diff} by structure); "
                         "the models are not nested")
    chisq = 2.0 * (m1.loglik - m0.loglik)
    # a variance estimated at the boundary gives the same optimum in both models: the statistic
    # is then 0 up to optimizer rounding, and rounding must not move the chi2_0 mass (p 1 -> 0.5)
    if abs(chisq) < 1e-8 * max(1.0, abs(m1.loglik)):
        chisq = 0.0
    if chisq < 0:
        if chisq < -1e-3:
            warnings.warn(f"the larger model has a lower log-likelihood (Chisq = {chisq:.4g}); its fit "
                          "probably did not reach the optimum. Statistic set to 0.", UserWarning, stacklevel=user_stacklevel())
        chisq = 0.0
    dfs, weights, label, note = _reference(df, diff)
    p = mixture_pvalue(chisq, dfs, weights)
    p_naive = float(special.chdtrc(df, chisq)) if chisq > 0 else 1.0
    # the headers say what the columns hold: REML log-likelihoods and -2 times them (lme4's
    # "REML criterion") only when REML fits are compared as such
    ll_col, dev_col = ("REML logLik", "REML criterion") if m0.reml else ("logLik", "deviance")
    if refitted:
        note = f"{REFIT_MESSAGE}; {note}"
    table = pd.DataFrame(
        {"npar": [_npar(m0), _npar(m1)], "AIC": [m0.aic, m1.aic], "BIC": [m0.bic, m1.bic],
         ll_col: [m0.loglik, m1.loglik], dev_col: [m0.deviance, m1.deviance],
         "Chisq": [np.nan, chisq], "Df": [np.nan, df], "Pr(>Chisq)": [np.nan, p]},
        index=_labels(s0, s1))
    # the public record: dispersion / zero-inflation entries only where the models differ there
    differs = {k: v for k, v in diff.items()
               if k in ("fixed", "variances", "covariances") or (k in ("dispersion", "zi", "disp") and v)}
    return LRTResult(chisq=chisq, df=df, p_value=p, reference=label, p_naive=p_naive, differs=differs,
                     table=table, note=note, dfs=tuple(dfs), weights=tuple(weights))

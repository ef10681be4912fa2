"""The immutable model specification shared by the Bayesian and the ML paths.

Pipeline: ``formula`` (parse lme4 syntax) -> ``design`` (build X, per-term Z blocks and
group codes from data) -> :class:`ModelSpec` (this module) -> ``bayes`` (PyMC graph) or
``ml`` (Laplace / AGQ) -> ``results``.

Random effects follow lme4's spherical parametrization, which is also the non-centered
one: for term k with q_k coefficients and J_k levels,

    b_k[j] = Lambda_k @ u_k[j],      u_k[j] ~ N(0, I_q),

with Lambda_k lower triangular (the Cholesky factor of the term's covariance, relative
to sigma for the gaussian family).  Row i of the data contributes
``Xr_k[i] @ b_k[codes_k[i]]`` to the linear predictor, so Z is never formed densely:
the pair (codes, Xr) *is* the sparse Z block (one non-zero block of q_k columns per row).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
from scipy import sparse

from ..covariance import default_structure
from ..families import Family

__all__ = ["RandomTerm", "ModelSpec", "NewDesign", "py_name"]


def py_name(label: str) -> str:
    """A Python identifier made from a term or group label ("b:a" -> "b_a").

    Used for PyMC variable names such as ``sd_<group>`` and ``b_<group>``.
    """
    s = re.sub(r"\W+", "_", str(label)).strip("_")
    if not s or s[0].isdigit():
        s = "g_" + s
    return s


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class RandomTerm:
    """One random-effects term ``(lhs | group)`` after expansion.

    Attributes
    ----------
    name : str
        Unique label of the term as lme4 prints it in VarCorr (``"ID"``, ``"b:a"``;
        a second term on the same factor gets ``"g.1"``).
    group : str
        The grouping factor label (``"ID"``, ``"b:a"``); several terms may share it.
    coef_names : tuple of str
        Column names of the term's model matrix, e.g. ``("(Intercept)", "Month")``.
    correlated : bool
        True when the term has correlation parameters (``(x | g)`` with q > 1, ``cs``,
        ``ar1``, ``toep``); False for ``(x || g)``, ``diag(...)`` and q = 1.  Derived from
        :attr:`cov` when that is given.
    codes : ndarray of int, shape (n,)
        Level index of each row, in ``0 .. n_levels - 1``.
    levels : pandas.Index
        Level labels, in code order.
    Xr : ndarray, shape (n, q)
        The term's raw model matrix (the non-zero entries of its Z block).
    cov : CovStructure
        The covariance structure (:mod:`bayes_glmm.covariance`): how the term's theta and
        Lambda, its Bayesian parameters and its VarCorr rows are laid out.  Default: ``us``
        when ``correlated`` and q > 1, else ``diag``.
    """

    name: str
    group: str
    coef_names: tuple
    correlated: bool
    codes: np.ndarray
    levels: pd.Index
    Xr: np.ndarray
    cov: Any = None

    def __post_init__(self):
        object.__setattr__(self, "codes", _frozen(np.asarray(self.codes, dtype=np.int64)))
        object.__setattr__(self, "Xr", _frozen(np.asarray(self.Xr, dtype=float)))
        if not isinstance(self.levels, pd.Index):
            object.__setattr__(self, "levels", pd.Index(self.levels))
        q = self.Xr.shape[1]
        if self.cov is None:
            object.__setattr__(self, "cov", default_structure(bool(self.correlated), q))
        object.__setattr__(self, "correlated", self.cov.n_corr(q) > 0)

    @property
    def q(self) -> int:
        """Number of coefficients per level."""
        return self.Xr.shape[1]

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def n_theta(self) -> int:
        """Number of covariance parameters (ML theta) of the term's structure."""
        return self.cov.n_theta(self.q)

    @property
    def ident(self) -> str:
        """Python-identifier form of :attr:`name`, used in PyMC variable names."""
        return py_name(self.name)

    def Z(self) -> sparse.csr_matrix:
        """The term's Z block as a sparse (n, n_levels * q) matrix, level-major columns."""
        n, q = self.Xr.shape
        rows = np.repeat(np.arange(n), q)
        cols = (self.codes[:, None] * q + np.arange(q)[None, :]).ravel()
        return sparse.csr_matrix((self.Xr.ravel(), (rows, cols)), shape=(n, self.n_levels * q))

    def contribution(self, b: np.ndarray) -> np.ndarray:
        """Row-wise ``Xr[i] @ b[codes[i]]`` for ``b`` of shape (n_levels, q)."""
        return np.einsum("nq,nq->n", self.Xr, np.asarray(b)[self.codes])


@dataclass(frozen=True)
class NewDesign:
    """Design matrices for new data, aligned with a fitted :class:`ModelSpec`.

    ``codes`` per term are -1 for levels not seen in the fitted data.
    """

    X: np.ndarray
    offset: np.ndarray
    codes: tuple  # per term: ndarray of int (n_new,)
    Xr: tuple  # per term: ndarray (n_new, q)
    trials: np.ndarray | None = None
    index: pd.Index | None = None
    labels: tuple | None = None  # per term: level label of each new row (object array)
    X_zi: np.ndarray | None = None  # zero-inflation model matrix (models with zi only)
    X_disp: np.ndarray | None = None  # dispersion model matrix (models with disp only)


@dataclass(frozen=True, eq=False)
class ModelSpec:
    """Everything both estimation paths need; built by :func:`bayes_glmm.spec.design.build_spec`.

    Attributes
    ----------
    formula : str
        The formula as given.
    family : Family
    response_name : str
        Label of the response (``"Response"``, ``"cbind(incidence, size - incidence)"``).
    y : ndarray (n,)
        Response as float: 0/1, successes (binomial), counts or values.
    trials : ndarray (n,) or None
        Binomial trials (None for other families).
    X : ndarray (n, p)
        Fixed-effects model matrix (treatment coding).
    fixed_names : tuple of str
        Column names of X, lme4 style: ``"(Intercept)"``, ``"Month:Treatment"``.
    offset : ndarray (n,)
        Sum of all ``offset(...)`` terms (zeros if none).
    weights : ndarray (n,)
        Prior weights (ones if none).
    terms : tuple of RandomTerm
    row_index : pandas.Index
        Index labels of the data rows used (after dropping missing values).
    n_dropped : int
        Rows dropped for missing values in used columns.
    success_level : object or None
        For a two-level factor / string / bool bernoulli response: which value counts as 1.
    new_design : callable or None
        ``new_design(newdata) -> NewDesign`` rebuilding X, offset and Z blocks for new data
        with the fitted coding (used by ``predict``).
    X_zi : ndarray (n, p_zi) or None
        Model matrix of the zero-inflation formula (``zi=``), None without zero inflation.
    zi_names : tuple of str
        Its column names (``"(Intercept)"``, ``"minedno"``).
    zi_formula : str or None
        The one-sided zero-inflation formula as given.
    X_disp : ndarray (n, p_disp) or None
        Model matrix of the dispersion formula (``disp=``): the log of the family's first
        auxiliary parameter is ``X_disp @ beta_disp`` per row; None without one (a constant).
    disp_names : tuple of str
        Its column names.
    disp_formula : str or None
        The one-sided dispersion formula as given.
    """

    formula: str
    family: Family
    response_name: str
    y: np.ndarray
    trials: np.ndarray | None
    X: np.ndarray
    fixed_names: tuple
    offset: np.ndarray
    weights: np.ndarray
    terms: tuple
    row_index: pd.Index
    n_dropped: int = 0
    success_level: Any = None
    new_design: Callable[[pd.DataFrame], NewDesign] | None = field(default=None, repr=False)
    info: dict = field(default_factory=dict, repr=False)
    X_zi: np.ndarray | None = None
    zi_names: tuple = ()
    zi_formula: str | None = None
    X_disp: np.ndarray | None = None
    disp_names: tuple = ()
    disp_formula: str | None = None

    def __post_init__(self):
        for name in ("y", "X", "offset", "weights"):
            object.__setattr__(self, name, _frozen(np.asarray(getattr(self, name), dtype=float)))
        if self.X_zi is not None:
            object.__setattr__(self, "X_zi", _frozen(np.asarray(self.X_zi, dtype=float)))
        object.__setattr__(self, "zi_names", tuple(self.zi_names))
        if self.X_disp is not None:
            object.__setattr__(self, "X_disp", _frozen(np.asarray(self.X_disp, dtype=float)))
        object.__setattr__(self, "disp_names", tuple(self.disp_names))
        if self.trials is not None:
            object.__setattr__(self, "trials", _frozen(np.asarray(self.trials, dtype=float)))
        object.__setattr__(self, "terms", tuple(self.terms))
        object.__setattr__(self, "fixed_names", tuple(self.fixed_names))

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def p(self) -> int:
        return self.X.shape[1]

    @property
    def has_zi(self) -> bool:
        """True when the model has a zero-inflation part."""
        return self.X_zi is not None

    @property
    def zi_label(self) -> str:
        """How users see the zero part: ``"zi"`` (zero inflation) or a hurdle's ``"hu"`` (the
        family's :attr:`~bayes_glmm.families.Family.zero_label`): prior keys ``zi_Intercept`` /
        ``hu_Intercept``, ``idata``'s ``beta_zi`` / ``beta_hu``, summary rows."""
        return getattr(self.family, "zero_label", "zi")

    @property
    def p_zi(self) -> int:
        """Number of zero-inflation coefficients (0 without zero inflation)."""
        return 0 if self.X_zi is None else self.X_zi.shape[1]

    @property
    def has_disp(self) -> bool:
        """True when the model has a dispersion formula (``disp=``)."""
        return self.X_disp is not None

    @property
    def is_lmm(self) -> bool:
        """True for a linear mixed model fitted in closed form (profiled ML/REML): a gaussian
        identity-link family without a dispersion formula."""
        return self.family.is_linear and self.X_disp is None

    @property
    def p_disp(self) -> int:
        """Number of dispersion-model coefficients (0 without ``disp=``)."""
        return 0 if self.X_disp is None else self.X_disp.shape[1]

    @property
    def q_total(self) -> int:
        """Total number of random effects, sum over terms of n_levels * q."""
        return int(sum(t.n_levels * t.q for t in self.terms))

    @property
    def groups(self) -> tuple:
        """Distinct grouping-factor labels, in term order."""
        return tuple(dict.fromkeys(t.group for t in self.terms))

    def Z(self) -> sparse.csr_matrix:
        """Full sparse Z = [Z_1, ..., Z_K] (n, q_total)."""
        if not self.terms:
            return sparse.csr_matrix((self.n, 0))
        return sparse.hstack([t.Z() for t in self.terms], format="csr")

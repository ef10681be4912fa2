"""The covariance-structure extension point (as lme4 2.0's ``Covariance`` classes).

A random term ``(x | g)`` with q coefficients per level has ``b_j ~ N(0, Sigma)``.  A
:class:`CovStructure` says how Sigma is parametrized, once, for both estimation paths::

    Sigma = diag(sd) R(rho) diag(sd),    R = C C',   Lambda = diag(sd) C

* ``sd``: :meth:`~CovStructure.n_sd` standard deviations, mapped onto the q coefficients by
  :meth:`~CovStructure.sd_index` (q of them, or one shared SD for ``ar1``);
* ``rho``: :meth:`~CovStructure.n_corr` correlation parameters, each unconstrained as
  ``y`` with ``z = tanh(y)`` in (-1, 1) (:func:`~bayes_glmm.covariance.lkj.tanh_sech`);
  :meth:`~CovStructure.corr_rows` builds the rows of C (unit-norm rows: R has a unit
  diagonal) from ``z`` and ``s = sech(y)`` against a math namespace ``ops`` -- NumPy, the
  dual numbers of :mod:`bayes_glmm.ops.dual` (derivatives for the ML gradient and the NumPy
  sampler), the C emitter and PyTensor -- so every backend evaluates the one definition.

The ML path optimizes lme4's ``theta``: by default the relative SDs (bounded below by 0,
so a variance can sit on its boundary) followed by the unconstrained ``y``, with
``Lambda(theta) = diag(sd) C(y)`` (:meth:`~CovStructure.lambda_rows`).  The unstructured
term overrides this with lme4's lower-triangular theta (linear in Lambda).  The Bayesian
path samples log-SDs and ``y``, with the prior :meth:`~CovStructure.corr_prior_shapes`
(``(z + 1) / 2 ~ Beta(a, a)``, so ``log p(y) = const - 2 a log cosh y``).

A new structure is a subclass in its own module plus one line in
:data:`bayes_glmm.covariance.STRUCTURES` (see ``docs/formula.md``, "Adding a covariance
structure").
"""
from __future__ import annotations

import numpy as np

from ..ops.numpy_ops import NUMPY_OPS
from .lkj import beta_shapes, tanh_sech

__all__ = ["CovStructure", "OneCorrelation"]


class CovStructure:
    """Base class: one instance per structure, stateless (every method takes q).

    Subclasses set :attr:`name` (the formula keyword), :attr:`title` and
    :attr:`linear` (True when Lambda is linear in theta: the ML path's analytic gradient
    then uses constant directions) and define :meth:`n_corr` and :meth:`corr_rows`.
    """

    #: the formula keyword, ``ar1(0 + factor(t) | g)``
    name: str = ""
    #: how glmmTMB's summary labels the correlation ("ar1", "cs", "toep"; "" for none)
    title: str = ""
    #: Lambda linear in theta (constant derivative directions)
    linear: bool = False
    #: eta of the default ``corr_<term>`` prior: ``(z + 1) / 2 ~ Beta(eta, eta)`` per
    #: correlation parameter, uniform for 1
    default_corr_eta: float = 1.0

    # ------------------------------------------------------------------ layout
    def n_sd(self, q: int) -> int:
        """Number of standard deviations."""
        return q

    def sd_index(self, q: int) -> np.ndarray:
        """Which SD each of the q coefficients has (length q, values in ``range(n_sd)``)."""
        return np.arange(q)

    def n_corr(self, q: int) -> int:
        """Number of correlation parameters."""
        raise NotImplementedError

    def corr_rows(self, z, s, q: int, ops):
        """Rows (nested lists, q x q, zeros above the diagonal) of the Cholesky factor C of
        the correlation matrix, from ``z[k] = tanh(y[k])`` and ``s[k] = sech(y[k])``."""
        raise NotImplementedError

    def check(self, q: int, coef_names, term: str) -> None:
        """Raise ValueError (naming the term and the fix) when the structure does not apply."""

    # ------------------------------------------------------------------ priors
    def corr_prior_shapes(self, q: int, eta: float = 1.0, *, per_cpc: bool = False):
        """(a, const): ``(z + 1) / 2 ~ Beta(a_k, a_k)`` per correlation parameter (the
        meaning of the ``corr_<term>`` prior ``Prior("LKJ", eta=eta)``) and the log normalizer."""
        return beta_shapes(np.full(self.n_corr(q), float(eta)), per_cpc=per_cpc)

    # ------------------------------------------------------------------ values
    def corr_matrix_from_y(self, y, q: int) -> np.ndarray:
        """The correlation matrix R (NumPy) at unconstrained parameters ``y``."""
        C = self.corr_chol(y, q)
        return C @ C.T

    def corr_chol(self, y, q: int, ops=NUMPY_OPS) -> np.ndarray:
        """C (q x q, NumPy) at ``y``."""
        y = np.asarray(y, dtype=float).reshape(-1)
        z, s = tanh_sech(y, ops)
        return np.array([[float(v) for v in row] for row in self.corr_rows(z, s, q, ops)], dtype=float)

    def corr_values(self, R) -> np.ndarray:
        """The structure's correlation parameters as reported (rho for ``ar1``/``cs``, the lag
        correlations for ``toep``, the pairs below the diagonal for ``us``) from R."""
        R = np.asarray(R, dtype=float)
        q = R.shape[0]
        return np.array([R[i, j] for j in range(q) for i in range(j + 1, q)]) if self.n_corr(q) else np.zeros(0)

    def y_from_corr(self, R) -> np.ndarray:
        """Unconstrained ``y`` whose correlation matrix is (closest to) R: starting values."""
        raise NotImplementedError

    def corr_names(self, coef_names) -> list:
        """Labels of :meth:`corr_values`."""
        q = len(coef_names)
        return [f"{coef_names[j]}, {coef_names[i]}" for j in range(q) for i in range(j + 1, q)] \
            if self.n_corr(q) else []

    # ------------------------------------------------------------------ ML: theta
    def n_theta(self, q: int) -> int:
        """Length of the term's theta."""
        return self.n_sd(q) + self.n_corr(q)

    def theta_lower(self, q: int) -> np.ndarray:
        """Lower bounds of theta: 0 for the SDs, -inf for the correlation parameters."""
        return np.concatenate([np.zeros(self.n_sd(q)), np.full(self.n_corr(q), -np.inf)])

    def theta_upper(self, q: int) -> np.ndarray:
        return np.full(self.n_theta(q), np.inf)

    def theta_start(self, q: int) -> np.ndarray:
        """lme4's start, Lambda = I: unit SDs, no correlation."""
        return np.concatenate([np.ones(self.n_sd(q)), self.y_from_corr(np.eye(q)) if self.n_corr(q) else []])

    def theta_names(self, coef_names) -> list:
        """Names of the theta entries (for messages and profiles): ``sd_<coef>`` then the
        correlation parameters' labels."""
        q = len(coef_names)
        idx = self.sd_index(q)
        sds = [f"sd_{coef_names[int(np.flatnonzero(idx == k)[0])]}" for k in range(self.n_sd(q))]
        return sds + [f"y_{i}" for i in range(self.n_corr(q))]

    def lambda_rows(self, theta, q: int, ops=NUMPY_OPS):
        """Lambda(theta) as nested lists against ``ops``: ``diag(sd) C(y)``."""
        nsd = self.n_sd(q)
        idx = self.sd_index(q)
        sd = [theta[k] for k in range(nsd)]
        if self.n_corr(q) == 0:
            return [[sd[int(idx[i])] if i == j else 0.0 for j in range(q)] for i in range(q)]
        y = [theta[nsd + k] for k in range(self.n_corr(q))]
        zs = [tanh_sech(v, ops) for v in y]
        C = self.corr_rows([a for a, _ in zs], [b for _, b in zs], q, ops)
        return [[sd[int(idx[i])] * C[i][j] if j <= i else 0.0 for j in range(q)] for i in range(q)]

    def lambda_(self, theta, q: int) -> np.ndarray:
        """Lambda (q x q, NumPy) at theta."""
        theta = np.asarray(theta, dtype=float)
        with np.errstate(over="ignore"):
            rows = self.lambda_rows(theta, q)
        return np.array([[float(v) for v in row] for row in rows], dtype=float)

    def lambda_jacobian(self, theta, q: int) -> np.ndarray:
        """``dLambda / dtheta`` (n_theta, q, q) at theta, from the dual numbers of the one
        definition :meth:`lambda_rows` (constant for a linear structure)."""
        from ..ops.dual import ND, ND_OPS, deriv

        theta = np.asarray(theta, dtype=float)
        nt = theta.size
        th = [ND(float(theta[k]), [1.0 if j == k else None for j in range(nt)]) for k in range(nt)]
        with np.errstate(over="ignore"):
            rows = self.lambda_rows(th, q, ND_OPS)
        J = np.zeros((nt, q, q))
        for i in range(q):
            for j in range(q):
                e = rows[i][j]
                if isinstance(e, ND):
                    for k in range(nt):
                        J[k, i, j] = float(deriv(e, k, 0.0))
        return J

    def theta_from_lambda(self, L) -> np.ndarray:
        """theta whose Lambda has the covariance ``L @ L.T`` (the structure's projection of it:
        SDs from the diagonal, correlations by :meth:`y_from_corr`)."""
        L = np.asarray(L, dtype=float)
        q = L.shape[0]
        S = L @ L.T
        sd_all = np.sqrt(np.clip(np.diag(S), 0.0, None))
        idx = self.sd_index(q)
        sd = np.array([float(np.sqrt(np.mean(sd_all[idx == k] ** 2))) for k in range(self.n_sd(q))])
        if self.n_corr(q) == 0:
            return sd
        with np.errstate(invalid="ignore", divide="ignore"):
            R = S / np.outer(sd_all, sd_all)
        R = np.where(np.outer(sd_all, sd_all) > 0, R, 0.0)
        np.fill_diagonal(R, 1.0)
        return np.concatenate([sd, self.y_from_corr(R)])

    def __repr__(self) -> str:
        return f"<covariance structure {self.name}>"


class OneCorrelation(CovStructure):
    """Base of the structures with one correlation parameter rho (``cs``, ``ar1``, ``hetar1``):
    none for a scalar term, reported as ``rho`` (the correlation of the first two coefficients)."""

    def n_corr(self, q: int) -> int:
        return 1 if q > 1 else 0

    def corr_values(self, R) -> np.ndarray:
        R = np.asarray(R, dtype=float)
        return np.array([R[1, 0]]) if R.shape[0] > 1 else np.zeros(0)

    def corr_names(self, coef_names) -> list:
        return ["rho"] if len(coef_names) > 1 else []

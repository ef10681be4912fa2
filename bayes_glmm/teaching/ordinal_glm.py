"""Maximum likelihood of a cumulative-link model without random effects (R's ``ordinal::clm``).

:func:`bayes_glmm.teaching.pooling.pooling`'s complete- and no-pooling fits of an ordinal response:
an ordered categorical response has no IRLS form on a variance function, so the fixed-effects
model ``P(Y <= k) = F(tau_k - x'beta)`` is fitted directly: BFGS on the family's own
log-density (:meth:`Family.loglik_eta`) with its closed-form derivatives in eta
(:meth:`Family.eta_score_weight`) and in the thresholds (:meth:`Family.aux_eta_derivs`), the
thresholds parametrized as the ML path does (the first, then the logs of the gaps).
"""
from __future__ import annotations

import numpy as np
from scipy import optimize

__all__ = ["fit_clm"]


def _start_taus(fam, y, w) -> np.ndarray:
    """The link of the weighted cumulative proportions (the intercept-only model's optimum)."""
    K = fam.n_categories
    counts = np.bincount(np.asarray(y, dtype=np.intp), weights=w, minlength=K) + 0.5
    cum = np.cumsum(counts)[:-1] / counts.sum()
    return fam.link.link(cum)


def fit_clm(X, y, family, *, trials=None, offset=None, weights=None, ridge: float = 1e-8):
    """Fit ``P(Y <= k) = F(tau_k - X beta - offset)`` by maximum likelihood.

    Parameters
    ----------
    X : ndarray (n, p)
        Without an intercept column (the thresholds hold it).
    y : ndarray (n,)
        Category codes 0 .. K - 1.
    family : Family
        A fitted ordinal family (its categories and link).
    trials : ignored
        (:func:`bayes_glmm.teaching.pooling.fit_glm`'s call shape.)
    offset, weights : ndarray (n,), optional
    ridge : float
        Tiny ridge on beta: keeps the optimum defined along directions the thresholds also
        span (group indicators that sum to 1) or that separation makes flat; those estimates
        drift to large values instead of failing.

    Returns
    -------
    beta : ndarray (p,)
    taus : ndarray (K - 1,)
        The thresholds, increasing.
    """
    from ..ml.auxpar import aux_coords, aux_jacobian, aux_natural

    X = np.asarray(X, dtype=float)
    n, p = X.shape
    y = np.asarray(y, dtype=float)
    off = np.zeros(n) if offset is None else np.asarray(offset, dtype=float)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    fam = family

    def negll(v):
        beta, a = v[:p], v[p:]
        aux = aux_natural(fam, a)
        eta = X @ beta + off
        ll = float(w @ fam.loglik_eta(y, eta, **aux)) - 0.5 * ridge * float(beta @ beta)
        d1 = fam.eta_score_weight(y, eta, **aux)[0]
        l_tau = fam.aux_eta_derivs(y, eta, **aux)[1]  # (n, K - 1): d ll_i / d tau_k
        g_beta = X.T @ (w * d1) - ridge * beta
        g_a = aux_jacobian(fam, a).T @ (w @ l_tau)
        return -ll, -np.concatenate([g_beta, g_a])

    v0 = np.concatenate([np.zeros(p), aux_coords(fam, _start_taus(fam, y, w))])
    # BFGS (NumPy): a few dozen parameters at most, where L-BFGS-B's Fortran step costs more
    res = optimize.minimize(negll, v0, jac=True, method="BFGS", options={"maxiter": 2000, "gtol": 1e-8})
    beta, a = res.x[:p], res.x[p:]
    return beta, np.array(list(aux_natural(fam, a).values()))

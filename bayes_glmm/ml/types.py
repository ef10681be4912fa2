"""Raw output of the ML fitters, consumed by :class:`bayes_glmm.ml.results.MLResults`.

The numerics modules (``lmm``, ``pirls``, ``laplace``, ``agq``) return an :class:`MLFit`;
the results module turns it into the user-facing object.  Keeping this boundary a plain
dataclass lets the two sides be tested separately.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["MLFit", "SINGULAR_TOL"]

#: lme4's ``isSingular`` tolerance on the (relative) Cholesky factor's diagonal; here, beside
#: the raw fit, so that the results class and the bootstrap's refits read one value
SINGULAR_TOL = 1e-4


@dataclass(frozen=True)
class MLFit:
    """Estimates and diagnostics of one ML fit.

    Attributes
    ----------
    beta : ndarray (p,)
        Fixed effects.
    theta : ndarray
        lme4's covariance parameters, terms concatenated (see ``covariance.py``).
    sigma : float or None
        Residual SD (gaussian), else None.
    lambdas : list of ndarray (q_k, q_k)
        Lambda_k per term (relative to sigma for gaussian): cov_k = sigma^2 Lambda Lambda'.
    b : list of ndarray (J_k, q_k)
        Conditional modes of the random effects (BLUPs), per term.
    b_sd : list of ndarray (J_k, q_k)
        Conditional SDs of the conditional modes.
    vcov_beta : ndarray (p, p)
        Covariance of beta-hat.
    loglik : float
        Log-likelihood (REML criterion's log-likelihood when ``reml``), all constants
        included; for AGQ on the same scale as Laplace.
    n_params : int
        Number of estimated parameters (p + len(theta) + sigma) for AIC/BIC.
    method : str
        "REML", "ML", "Laplace" or "AGQ(n)".
    reml : bool
    n_agq : int
    optimizer : dict
        start, final theta, n_evals, grad_norm, hessian_pd, converged, messages, and
        ``optinfo`` (the convergence record of :attr:`MLResults.optinfo`: projected-gradient
        and Newton-decrement check, restarts, starts, warnings).  ``converged`` is that
        check's verdict, not the optimizer's own stopping rule.
    beta_zi : ndarray (p_zi,) or None
        Zero-inflation coefficients (logit scale), models with ``zi`` only.
    disp : float or None
        Dispersion (``theta``, ``phi`` or ``shape``) of the families that have one.
    vcov_aux : ndarray or None
        Covariance of ``(beta_zi, log disp)``, in that order.
    """

    beta: np.ndarray
    theta: np.ndarray
    sigma: float | None
    lambdas: list
    b: list
    b_sd: list
    vcov_beta: np.ndarray
    loglik: float
    n_params: int
    method: str
    reml: bool = False
    n_agq: int = 1
    optimizer: dict = field(default_factory=dict)
    beta_zi: np.ndarray | None = None
    disp: float | None = None
    vcov_aux: np.ndarray | None = None

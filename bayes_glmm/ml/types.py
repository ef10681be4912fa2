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
    aux : dict or None
        The family's auxiliary parameters by name, natural scale (``{"theta": 2.1}`` for NB2,
        ``{"sigma": 0.7, "df": 4.2}`` for a Student-t family), GLMM path only: the LMM's
        residual SD is ``sigma``.
    vcov_aux : ndarray or None
        Covariance of ``(beta_zi, a)``, in that order, ``a`` one optimizer coordinate per
        auxiliary parameter (the log of a positive one, :mod:`bayes_glmm.ml.auxpar`); with a
        dispersion formula ``a = (beta_disp, the others)``.
    beta_disp : ndarray (p_disp,) or None
        Dispersion-model coefficients (models with ``disp=``): the log of the first auxiliary
        parameter is ``X_disp @ beta_disp``; ``aux`` then holds that parameter per row.
    vcov_beta_aux : ndarray (p, n_aux) or None
        Covariance of beta with ``(beta_zi, a)`` (the off-diagonal block of the joint
        covariance whose diagonal blocks are ``vcov_beta`` and ``vcov_aux``).
    b_cov : list of ndarray (J_k, q_k, q_k) or None
        Conditional covariance of each level's random effects (lme4's ``condVar``); None
        where the fit did not compute it (then only ``b_sd ** 2``, its diagonal, is known).
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
    aux: dict | None = None
    vcov_aux: np.ndarray | None = None
    beta_disp: np.ndarray | None = None
    b_cov: list | None = None
    #: the (beta, aux) block of the joint covariance (None where not computed): with ``vcov_beta``
    #: and ``vcov_aux`` the normal approximation of all fixed parameters (prediction intervals)
    vcov_beta_aux: np.ndarray | None = None

    @property
    def disp(self) -> float | None:
        """The first auxiliary parameter (NB's ``theta``, ``phi``, ``shape``), None without one
        (or with a dispersion formula, where it varies by row: see ``aux``)."""
        if not self.aux or self.beta_disp is not None:
            return None
        return float(next(iter(self.aux.values())))

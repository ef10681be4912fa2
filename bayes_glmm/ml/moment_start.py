"""A start for one scalar random-effects term from the fit without random effects.

At the fixed-effects fit (``u = 0``) each level's one-step estimate of its effect is
``b_j = S_j / I_j`` with ``S_j`` the level's score in the linear predictor and ``I_j`` its
information (each row's ``x_i`` times, for a slope term).  Its variance is about
``sd^2 + 1 / I_j``, so ``mean(b_j^2) - mean(1 / I_j)`` estimates ``sd^2`` (a method of moments,
as in DerSimonian-Laird), and the conditional modes at that sd start about
``u_j = sd S_j / (1 + sd^2 I_j)`` (one Newton step from 0).  On clmm's wine data (logit) 1.127
against the ML 1.131 (lme4's default start is 1).  One-step effects understate large ones (a
bounded response's score saturates): the caller refines the start along theta
(:func:`bayes_glmm.ml.laplace._fixed_fit_start`).
"""
from __future__ import annotations

import numpy as np

__all__ = ["theta_moment_start", "modes_start"]


def theta_moment_start(resp, s, eta, *, lo: float = 0.05, hi: float = 10.0):
    """``(theta, S, I)`` for one scalar term at the fixed-effects fit, or None.

    Parameters
    ----------
    resp : pirls.Response
        With the fixed-effects fit's auxiliary parameters set (:func:`~bayes_glmm.ml.pirls.with_aux`).
    s : linalg.ReStructure
        One term with one coefficient.
    eta : ndarray (n,)
        The fixed-effects fit's linear predictor (offset included).
    lo, hi : float
        The estimate is clipped to ``[lo, hi]``; a moment estimate below ``lo`` gives theta 0
        (the data put the variance at its bound: the caller's bounded optimizer is the tool).

    Returns
    -------
    (float, ndarray (J,), ndarray (J,)) or None
        ``theta`` and each level's score ``S`` and information ``I`` at the fit (for
        :func:`modes_start`); None where the family has no score and weight at these values
        (non-finite).
    """
    if len(s.J) != 1 or s.q[0] != 1:
        return None
    c, J = s.codes[0], s.J[0]
    x = s.Xr[0][:, 0]
    vals = resp.aux_vals or {}
    with np.errstate(all="ignore"):
        _, d1, w = resp.family.loglik_eta_score_weight(resp.y, eta, **vals)
        S = np.bincount(c, weights=resp.pw * x * d1, minlength=J)
        info = np.bincount(c, weights=resp.pw * x * x * w, minlength=J)
    ok = info > 0.0
    if not (np.all(np.isfinite(S)) and np.all(np.isfinite(info)) and ok.sum() >= 2):
        return None
    var = float(np.mean((S[ok] / info[ok]) ** 2) - np.mean(1.0 / info[ok]))
    if var <= lo * lo:
        return 0.0, S, info
    return float(np.clip(np.sqrt(var), lo, hi)), S, info


def modes_start(theta: float, S, info) -> np.ndarray:
    """The modes one Newton step from 0 at ``theta``: ``u_j = theta S_j / (1 + theta^2 I_j)``."""
    return theta * S / (1.0 + theta * theta * np.maximum(info, 0.0))

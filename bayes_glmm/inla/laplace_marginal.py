"""The nested Laplace approximation of the hyperparameters' marginal posterior.

For the hyperparameters ``psi`` (variance and dispersion parameters, :mod:`.coords`) and the
coefficients ``w``, the ML path's Laplace (or AGQ) likelihood ``p_LA(y | psi, w)`` already has
the random effects integrated out (:func:`bayes_glmm.ml.laplace.make_devgrad`: PIRLS modes,
the sparse block factor, the analytic gradient).  With the priors,

    F(psi, w) = dev(psi, w) / 2 - log p(psi) - log p(w)

is the negative log joint posterior of ``(psi, w)``; the coefficients are integrated by a
second Laplace approximation (as the ``aghq`` package does), giving

    log p(psi | y) ~ -F(psi, w*(psi)) - log det H_w(psi) / 2 + const,

with ``w*`` the inner mode and ``H_w`` the Hessian of F in w there (central differences of
the analytic gradient).  Conditional on ``psi``, ``w ~ N(w*, H_w^-1)`` and the spherical random
effects ``u | w, psi ~ N(u*(w), (L L')^-1)`` (the PIRLS factor), ``u*`` moving with ``w`` and
``psi`` by the mode derivative the gradient leaves behind.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from ..ml import linalg
from ..ml.agq import supports_gradient
from ..ml.laplace import make_devgrad, make_deviance, start_aux, start_beta
from ..ml.multigrad import MAX_M_GRADIENT
from ..ml.optimize import fd_gradient, theta_layout
from ..ml.pirls import make_response

__all__ = ["Problem", "Node", "fd_hessian_of"]


@dataclass
class Node:
    """The conditional posterior at one hyperparameter point.

    Attributes
    ----------
    psi : ndarray (m,)
    w : ndarray (nw,)
        Inner mode of the coefficients.
    Hw : ndarray (nw, nw)
        Hessian of F in w at the mode (the conditional precision of w).
    logpost : float
        ``-F(psi, w*) - log det(Hw) / 2``: the Laplace log marginal posterior of psi (+ const).
    x : ndarray
        ML coordinates at the mode.
    u : ndarray
        Conditional modes of the spherical random effects at the mode.
    du : ndarray (len(u), len(x)) or None
        Their derivative in x.
    factor : ReFactor
        Factor of the conditional precision of u.
    """

    psi: np.ndarray
    w: np.ndarray
    Hw: np.ndarray
    logpost: float
    x: np.ndarray
    u: np.ndarray
    du: np.ndarray | None
    factor: object


def fd_hessian_of(grad, v, delta=1e-4, idx=None) -> np.ndarray:
    """Symmetrized central-difference Hessian of ``grad`` at ``v`` in the coordinates ``idx``
    (default all), relative steps ``delta * max(1, |v_j|)``."""
    v = np.asarray(v, dtype=float)
    idx = np.arange(v.size) if idx is None else np.asarray(idx)
    H = np.empty((idx.size, idx.size))
    for a, j in enumerate(idx):
        h = delta * max(1.0, abs(v[j]))
        e = np.zeros(v.size)
        e[j] = h
        H[:, a] = (grad(v + e)[idx] - grad(v - e)[idx]) / (2 * h)
    return 0.5 * (H + H.T)


def skew_mean_shift(grad, v, S, idx, h: float = 1.0) -> np.ndarray:
    """The mean minus the mode of the density ``exp(-F)`` in the coordinates ``idx`` of ``v`` (a
    mode of F in them), to first order in its skewness: ``-S (T : S) / 2``, ``S`` the inverse
    Hessian there and ``T`` the third derivatives of F (the Laplace expansion of the mean; for
    one coordinate ``-F3 S^2 / 2``).  ``T : S = sum_k T(., c_k, c_k)`` over the columns
    ``c_k`` of a square root of ``S``, each the second difference of the gradient along ``c_k``
    with a step of ``h`` posterior SDs (exact for a cubic F at any step; 2 len(idx) gradients).
    Zeros when a step leaves the support."""
    v = np.asarray(v, dtype=float)
    idx = np.asarray(idx)
    C = np.linalg.cholesky(0.5 * (S + S.T))
    g0 = grad(v)[idx]
    acc = np.zeros(idx.size)
    for k in range(idx.size):
        e = np.zeros(v.size)
        e[idx] = h * C[:, k]
        gp, gm = grad(v + e)[idx], grad(v - e)[idx]
        if not (np.all(np.isfinite(gp)) and np.all(np.isfinite(gm))):
            return np.zeros(idx.size)
        acc += (gp + gm - 2.0 * g0) / (h * h)
    return -0.5 * S @ acc


class Problem:
    """F, its gradient and the per-node Laplace steps for one model.

    Parameters
    ----------
    spec : ModelSpec
    layout : coords.Layout
    n_agq : int
        1: Laplace for the random effects; > 1 (one scalar term): adaptive Gauss-Hermite.
    """

    def __init__(self, spec, layout, n_agq: int = 1):
        self.spec, self.layout = spec, layout
        self.resp = make_response(spec)
        terms = spec.terms
        self.s = linalg.build_structure(terms)
        self.slices = theta_layout(terms)[0]
        self.state = {}
        self.n_agq = int(n_agq)
        # supports_gradient leaves out the gaussian LMM because the ML path profiles its residual
        # SD out; here sigma is a coordinate of the general (Laplace = exact) path, whose analytic
        # gradient applies (equal to central differences to 1e-7 on a crossed model)
        self.analytic = supports_gradient(self.resp, self.s, self.n_agq) or (
            self.resp.general and self.n_agq == 1 and (len(self.s.J) == 1 or self.s.m <= MAX_M_GRADIENT))
        self.dev = make_deviance(self.resp, self.s, terms, self.slices, self.n_agq, self.state)
        self.devgrad = make_devgrad(self.resp, self.s, terms, self.slices, self.n_agq, self.state) \
            if self.analytic else None
        self.m, self.nw, self.nt = layout.m, layout.nw, layout.nt
        self.n_evals = 0
        #: move the nodes' Gaussians of w to their first-order skewness-corrected mean
        #: (:meth:`mean_shift`) for an ordinal model's thresholds, whose posterior in the log-gap
        #: coordinates is skewed (clmm's wine data, bench_inla.py: the highest threshold's mean
        #: 0.13 (logit) and 0.21 (probit) NUTS posterior SDs above NUTS's without it, under 0.01
        #: and 0.04 with it; the thresholds themselves as coordinates were worse: 0.31 and 0.19 below)
        self.mean_correction = bool(layout.chains)

    # ------------------------------------------------------------------ F
    def _dev_grad(self, x):
        self.n_evals += 1
        if self.analytic:
            return self.devgrad(x)
        d = self.dev(x)
        u0 = self.state.get("u")
        g = fd_gradient(self.dev, x)
        self.n_evals += 2 * x.size
        self.state["u"] = u0
        self.dev(x)  # leave the modes of x itself in the state
        return d, g

    def f_grad(self, v):
        """``F(v)`` and its gradient, ``v = (psi, w)``."""
        L = self.layout
        psi, w = v[:self.m], v[self.m:]
        x = L.to_ml(psi, w)
        try:
            with np.errstate(all="ignore"):
                d, g = self._dev_grad(x)
        except (FloatingPointError, np.linalg.LinAlgError, ValueError):
            self.state.pop("pred", None)
            return np.inf, np.zeros(v.size)
        if not np.isfinite(d) or not np.all(np.isfinite(g)):
            return np.inf, np.zeros(v.size)
        lpp, gpp = L.psi_logp_grad(psi)
        lpw, gpw = L.w_logp_grad(w)
        nc = L.nw_coef
        gt, ga = g[:self.nt], g[self.nt + nc:]
        gw = np.concatenate([0.5 * g[self.nt:self.nt + nc], np.zeros(self.nw - nc)])
        gpsi = 0.5 * (L.theta_jacobian(psi).T @ gt) if self.nt else np.zeros(self.m)
        L.aux_gradient(0.5 * ga, gpsi, gw)  # hyper ones into psi, an ordered chain's into w
        return 0.5 * d - lpp - lpw, np.concatenate([gpsi - gpp, gw - gpw])

    def grad(self, v):
        return self.f_grad(v)[1]

    def start(self) -> np.ndarray:
        """Starting ``v``: lme4's start for theta (unit relative SDs), the GLM-like start of
        the coefficients and the moment start of the auxiliary parameters."""
        L = self.layout
        a0 = start_aux(self.resp)
        k_zi = self.spec.p_zi if self.spec.has_zi else 0
        k_d = self.spec.p_disp if self.spec.has_disp else 0
        theta0 = theta_layout(self.spec.terms)[2]
        hyper, chain = L.split_aux(a0[k_zi + k_d:])
        psi0 = L.start_psi(theta0, hyper)
        w0 = np.concatenate([start_beta(self.resp), a0[:k_zi + k_d], chain])
        return np.concatenate([psi0, w0])

    def mode(self, v0, *, maxiter: int = 500):
        """The joint posterior mode of ``(psi, w)`` and the Hessian of F there: L-BFGS-B with
        the analytic gradient, the central-difference Hessian at its end, then Newton steps
        with that Hessian until the Newton decrement is below 1e-10 (the Hessian of a point
        that close is the mode's to the differences' accuracy)."""
        res = optimize.minimize(self.f_grad, v0, jac=True, method="L-BFGS-B",
                                options={"maxiter": maxiter, "ftol": 1e-11, "gtol": 1e-6, "maxcor": 20})
        v = res.x
        H = fd_hessian_of(self.grad, v)
        Hp = _pd(H)
        f, g = self.f_grad(v)
        for _ in range(6):
            step = np.linalg.solve(Hp, g)
            if float(g @ step) < 1e-10:
                break
            t, ok = 1.0, False
            while t > 1e-3 and not ok:
                f1, g1 = self.f_grad(v - t * step)
                ok = f1 <= f
                t = t if ok else 0.5 * t
            if not ok:
                break
            v, f, g = v - t * step, f1, g1
        return v, H, res

    def mean_shift(self, v, Hw):
        """The conditional mean of w minus its mode at the joint mode ``v`` (``Hw`` the Hessian of F
        in w there), to first order in the skewness (:func:`skew_mean_shift`; 2 nw + 1 gradients),
        or None without :attr:`mean_correction`.  Computed once: at each node instead, the means
        of wine's and the random-slope model's thresholds moved by at most 0.004 NUTS posterior SDs."""
        if not (self.mean_correction and self.nw):
            return None
        return skew_mean_shift(self.grad, v, np.linalg.inv(Hw), np.arange(self.m, self.m + self.nw))

    # ------------------------------------------------------------------ nodes
    def node(self, psi, w0, Hw0, *, tol: float = 1e-9, max_iter: int = 30) -> Node:
        """The inner Laplace step at ``psi``: Newton iterations in w (with the mode's Hessian
        ``Hw0``, then the node's own), the node's Hessian, modes and their derivative."""
        m = self.m
        w = np.array(w0, dtype=float)
        H = _pd(Hw0)

        def fw(wv):
            f, g = self.f_grad(np.concatenate([psi, wv]))
            return f, g[m:]

        f, g = fw(w)
        for _ in range(max_iter):
            step = np.linalg.solve(H, g)
            if float(g @ step) < tol:
                break
            t, ok = 1.0, False
            while t > 1e-4 and not ok:
                f1, g1 = fw(w - t * step)
                ok = f1 <= f + 1e-12 * abs(f)
                t = t if ok else 0.5 * t
            if not ok:
                break
            w, f, g = w - t * step, f1, g1
        Hw = _pd(fd_hessian_of(lambda wv: fw(wv)[1], w))
        step = np.linalg.solve(Hw, g)
        w = w - step  # the last Newton step with the node's own Hessian
        f, g = fw(w)  # also leaves this point's modes (and their derivative) in the state
        x = self.layout.to_ml(psi, w)
        pr = self.state["last"]
        pred = self.state.get("pred")
        du = pred[2] if pred is not None and np.array_equal(pred[0], x) else self._fd_du(x)
        sign, logdet = np.linalg.slogdet(Hw)
        return Node(psi=np.asarray(psi, dtype=float), w=w, Hw=Hw, logpost=-f - 0.5 * logdet, x=x,
                    u=pr.u.copy(), du=du, factor=pr.factor)

    def _fd_du(self, x, h: float = 1e-5):
        """``d u* / d x`` by forward differences of the PIRLS modes (when the analytic gradient,
        which leaves it behind, does not apply)."""
        pr0 = self.state["last"]
        u0 = pr0.u.copy()
        cols = []
        for j in range(x.size):
            e = np.zeros(x.size)
            e[j] = h
            self.state["u"] = u0
            self.dev(x + e)
            self.n_evals += 1
            cols.append((self.state["last"].u - u0) / h)
        self.state["u"], self.state["last"] = u0, pr0
        return np.column_stack(cols) if cols else np.zeros((u0.size, 0))


def _pd(H, floor: float = 1e-8) -> np.ndarray:
    """``H`` symmetrized with its eigenvalues floored (a Newton matrix that is positive definite)."""
    H = 0.5 * (np.asarray(H, dtype=float) + np.asarray(H, dtype=float).T)
    try:
        np.linalg.cholesky(H)
        return H
    except np.linalg.LinAlgError:
        lam, V = np.linalg.eigh(H)
        lam = np.maximum(np.abs(lam), floor * max(1.0, float(np.max(np.abs(lam)))))
        return (V * lam) @ V.T

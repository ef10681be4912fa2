"""Profile-likelihood confidence intervals, as lme4's ``profile()`` + ``confint.merMod``.

For a parameter psi the profile zeta function is the signed square root of the deviance
increase with every other parameter re-optimized (Bates et al. 2015, JSS, sec. 5.1;
lme4's ``?profile.merMod``)::

    zeta(psi) = sign(psi - psi_hat) sqrt(min_{others} dev(psi, others) - dev_hat)

and the level-``L`` interval is ``{psi : |zeta(psi)| <= sqrt(qchisq(L, 1))}``.  lme4 tabulates
zeta on a grid and inverts an interpolating spline; here the two crossings are found
directly (a secant search outwards from the estimate until the cut is bracketed, then
Brent's method), each zeta evaluation warm-started from the nearest point already profiled.

Parametrization.  The variance parameters are profiled on lme4's "sdcor" scale: per term
the standard deviations and correlations (in theta's column-major order), then the residual
SD ``sigma`` for LMMs.  Fixing one SD is a nonlinear constraint on theta, so -- as lme4's
``devfun2`` -- the deviance is re-expressed in ``phi = (sd/cor..., sigma)`` (LMM, beta
profiled out exactly) or ``phi = (sd/cor..., beta, aux)`` (GLMM) and the other coordinates
of phi are optimized in a box (SDs >= 0, correlations in [-1, 1]).  Fixed effects (and the
zero-inflation coefficients and log-dispersion of the newer families) are plain coordinates
of ``x = (theta, beta, aux)`` and are profiled there.

* LMMs are profiled on the *ML* deviance, also for REML fits (the model is refitted by ML
  first), as lme4 does (lme4 issues #325, #838): the REML criterion is not a likelihood for
  beta.  For a fixed beta_j the other fixed effects and sigma are profiled out in closed
  form: ``pwrss(theta | beta_j) = pwrss(theta) + (beta_j - beta_j_hat(theta))^2 / [(X'V^-1X)^-1]_jj``.
* GLMMs use the fit's own deviance (Laplace or AGQ with the fit's ``n_agq``).

Boundaries.  When the profile of an SD has not reached the cut at SD = 0 the lower limit is
0 (also when the estimate itself is 0); correlations are limited to [-1, 1] the same way.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import optimize, special  # quantiles from special: scipy.stats takes ~1 s to import

from ...covariance import cov_to_sd_corr, theta_pairs
from scipy.optimize import least_squares
from ..auxpar import aux_coords, aux_lower, fit_coords
from .ddf import _pwrss
from ..optimize import fd_hessian, lambdas_from_theta, minimize_bounded, restart_off_boundary, theta_layout

__all__ = ["param_index", "param_values", "variance_names", "profile_confint", "wald_confint"]

_LOG_2PI = float(np.log(2.0 * np.pi))
#: max deviance evaluations (zeta values) per side of one interval
_MAX_ZETA = 40


# ---------------------------------------------------------------------- names and values
def variance_names(spec) -> list:
    """``sd_<coef>|<term>`` and ``cor_<coef1>.<coef2>|<term>`` in lme4's (theta) order.

    ``<term>`` is the term's VarCorr label (the grouping factor; ``"g.1"`` for a second term
    on ``g``), so names stay unique when several terms share a factor.
    """
    out = []
    for term in spec.terms:
        cn = term.coef_names
        if term.cov.linear:
            out += [f"sd_{cn[i]}|{term.name}" if i == j else f"cor_{cn[j]}.{cn[i]}|{term.name}"
                    for i, j in theta_pairs(term.q, _has_corr(term))]
        else:  # a structure's SDs (one per SD, named by its first coefficient), then its correlations
            idx = term.cov.sd_index(term.q)
            out += [f"sd_{cn[int(np.flatnonzero(idx == k)[0])]}|{term.name}" for k in range(term.cov.n_sd(term.q))]
            out += [f"cor_{nm.replace(' ', '')}|{term.name}" for nm in term.cov.corr_names(cn)]
    return out


def _has_corr(term) -> bool:
    return term.cov.n_corr(term.q) > 0


def param_index(spec) -> list:
    """Row labels of :meth:`MLResults.confint` and columns of :meth:`MLResults.bootstrap`.

    Fixed effects, the variance parameters (:func:`variance_names`), the family's auxiliary
    parameters under their names (``sigma`` for gaussian, ``theta``, ``phi``, ``shape``; any
    number of them), then the zero-inflation coefficients as ``zi_<coef>``.
    """
    fam = spec.family
    names = list(spec.fixed_names) + variance_names(spec)
    if spec.has_disp:  # the dispersion model's coefficients in place of its parameter
        names.extend(f"disp_{c}" for c in spec.disp_names)
        names.extend(fam.aux_names[1:])
    else:
        names.extend(fam.aux_names)
    names.extend(f"{spec.zi_label}_{c}" for c in spec.zi_names)  # zi_<coef>, a hurdle's hu_<coef>
    return names


def _term_sdcor(L, term, scale: float = 1.0) -> np.ndarray:
    """A term's SDs and correlations from its relative factor Lambda: in theta order for
    lme4's layouts (``us``, ``diag``); a structure's SDs then its reported correlations
    (:meth:`~bayes_glmm.covariance.base.CovStructure.corr_values`) otherwise."""
    L = np.asarray(L, dtype=float)
    sd, corr = cov_to_sd_corr(scale ** 2 * (L @ L.T))
    cov = term.cov
    if not cov.linear:
        idx = cov.sd_index(term.q)
        sds = [float(np.sqrt(np.mean(sd[idx == k] ** 2))) for k in range(cov.n_sd(term.q))]
        return np.concatenate([sds, cov.corr_values(corr) if _has_corr(term) else []])
    if not _has_corr(term):
        return sd
    q = L.shape[0]
    return np.array([sd[i] if i == j else corr[i, j] for j in range(q) for i in range(j, q)])


def _psd_chol(C: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a positive *semi*-definite matrix (zero columns where singular).

    Profiling visits SD = 0 and correlation = +-1, where ``numpy.linalg.cholesky`` fails; a
    correlation matrix that is not PSD (q >= 3) is clipped to its nearest factor-able one.
    """
    q = C.shape[0]
    L = np.zeros((q, q))
    for j in range(q):
        d = C[j, j] - L[j, :j] @ L[j, :j]
        L[j, j] = np.sqrt(max(d, 0.0))
        if L[j, j] > 1e-10 * np.sqrt(max(C[j, j], 1e-300)):
            L[j + 1:, j] = (C[j + 1:, j] - L[j + 1:, :j] @ L[j, :j]) / L[j, j]
    return L


def _structure_y(cov, c, q: int) -> np.ndarray:
    """Unconstrained correlation parameters ``y`` of a structure whose
    :meth:`~bayes_glmm.covariance.base.CovStructure.corr_values` are ``c`` (least squares: a
    point outside the structure's set maps to the nearest one it has)."""
    c = np.clip(np.asarray(c, dtype=float), -1.0 + 1e-12, 1.0 - 1e-12)

    def resid(y):
        return cov.corr_values(cov.corr_matrix_from_y(y, q)) - c

    r = least_squares(resid, np.arctanh(c), xtol=1e-15, ftol=1e-15, gtol=1e-15)
    return r.x


def _structure_theta(v, term, scale: float = 1.0) -> np.ndarray:
    """A structured term's theta (relative SDs, then ``y``) from its SDs/correlations."""
    v = np.asarray(v, dtype=float)
    nsd = term.cov.n_sd(term.q)
    y = _structure_y(term.cov, v[nsd:], term.q) if _has_corr(term) else np.zeros(0)
    return np.concatenate([v[:nsd] / scale, y])


def _term_lambda(v, term, scale: float = 1.0) -> np.ndarray:
    """Inverse of :func:`_term_sdcor`: Lambda (relative to ``scale``) from SDs/correlations."""
    v = np.asarray(v, dtype=float)
    q, cov = term.q, term.cov
    if not cov.linear:
        return cov.lambda_(_structure_theta(v, term, scale), q)
    if not _has_corr(term):
        return np.diag(v / scale)
    sd, corr, k = np.zeros(q), np.eye(q), 0
    for j in range(q):
        for i in range(j, q):
            if i == j:
                sd[i] = v[k]
            else:
                corr[i, j] = corr[j, i] = v[k]
            k += 1
    return _psd_chol(corr * np.outer(sd, sd) / scale ** 2)


def _sdcor_layout(terms):
    """Slices into the sd/cor vector per term and its box bounds (SD >= 0, |cor| <= 1)."""
    lo, hi, sl, pos = [], [], [], 0
    for t in terms:
        n = t.n_theta
        sl.append(slice(pos, pos + n))
        pos += n
        if not t.cov.linear:
            lo.extend([0.0] * t.cov.n_sd(t.q))
            hi.extend([np.inf] * t.cov.n_sd(t.q))
            lo_c, hi_c = _corr_bounds(t)
            lo.extend(lo_c)
            hi.extend(hi_c)
        elif _has_corr(t):
            for j in range(t.q):
                for i in range(j, t.q):
                    lo.append(0.0 if i == j else -1.0)
                    hi.append(np.inf if i == j else 1.0)
        else:
            lo.extend([0.0] * t.q)
            hi.extend([np.inf] * t.q)
    return sl, np.array(lo), np.array(hi)


def _corr_bounds(term):
    """Range of each reported correlation of a structure: its values with the parameter's
    ``y`` at +-20 and the others at 0 (``cs`` goes down to -1/(q - 1) only)."""
    cov, q = term.cov, term.q
    nc = cov.n_corr(q)
    lo, hi = [], []
    for k in range(nc):
        ends = []
        for sgn in (-20.0, 20.0):
            y = np.zeros(nc)
            y[k] = sgn
            ends.append(float(cov.corr_values(cov.corr_matrix_from_y(y, q))[k]))
        lo.append(max(-1.0, min(ends)))
        hi.append(min(1.0, max(ends)))
    return lo, hi


def _sdcor_to_lambdas(v, terms, sl, scale=1.0) -> list:
    return [_term_lambda(v[s], t, scale) for t, s in zip(terms, sl)]


def _sdcor_from_lambdas(lambdas, terms, scale=1.0) -> np.ndarray:
    parts = [_term_sdcor(L, t, scale) for L, t in zip(lambdas, terms)]
    return np.concatenate(parts) if parts else np.zeros(0)


def param_values(spec, fit) -> np.ndarray:
    """The parameters of :func:`param_index` from a raw :class:`~bayes_glmm.ml.types.MLFit`."""
    fam = spec.family
    scale = float(fit.sigma) if (spec.is_lmm and fit.sigma is not None) else 1.0
    parts = [np.asarray(fit.beta, dtype=float), _sdcor_from_lambdas(fit.lambdas, spec.terms, scale)]
    if spec.has_disp:
        parts.append(np.asarray(fit.beta_disp, dtype=float))
        parts.append(np.array([float(fit.aux[n]) for n in fam.aux_names[1:]]))
    elif fam.is_linear:
        parts.append(np.array([scale]))
    elif fam.aux_params:
        parts.append(np.array([float(fit.aux[n]) for n in fam.aux_names]))
    if spec.has_zi:
        parts.append(np.asarray(fit.beta_zi, dtype=float))
    return np.concatenate(parts)


# ---------------------------------------------------------------------- Wald
def wald_confint(res, level: float) -> pd.DataFrame:
    """lme4's ``confint(method = "Wald")``: normal intervals for the fixed effects (and the
    zero-inflation coefficients), NaN for the variance and dispersion parameters."""
    z = special.ndtri(0.5 + level / 2.0)  # norm.ppf
    idx = param_index(res.spec)
    out = pd.DataFrame({"lower": np.nan, "upper": np.nan}, index=idx, dtype=float)
    est, se = res.fixef, res.se
    out.loc[est.index, "lower"] = (est - z * se).to_numpy()
    out.loc[est.index, "upper"] = (est + z * se).to_numpy()
    if res.spec.has_zi:
        ez, sz = res.fixef_zi.to_numpy(), res.se_zi.to_numpy()
        zi = [f"{res.spec.zi_label}_{c}" for c in res.spec.zi_names]
        out.loc[zi, "lower"] = ez - z * sz
        out.loc[zi, "upper"] = ez + z * sz
    if res.spec.has_disp:
        ed, sd_ = res.fixef_disp.to_numpy(), res.se_disp.to_numpy()
        names = [f"disp_{c}" for c in res.spec.disp_names]
        out.loc[names, "lower"] = ed - z * sd_
        out.loc[names, "upper"] = ed + z * sd_
    return out


# ---------------------------------------------------------------------- inner optimizers
def _minimize_box(fun, z0, lo, hi, scale):
    """Minimize ``fun`` over a box by L-BFGS-B with central differences, in units ``z * scale``.

    ``scale`` (about sqrt of the deviance curvature per coordinate) makes the coordinates
    comparable: SDs of 25 next to correlations of 0.1 otherwise stall L-BFGS-B.
    """
    scale = np.asarray(scale, dtype=float)
    lo_y, hi_y = lo * scale, hi * scale
    best = {"f": np.inf, "y": None}

    def fy(y):
        try:
            f = float(fun(y / scale))
        except (FloatingPointError, np.linalg.LinAlgError, ValueError):
            f = np.inf
        if not np.isfinite(f):
            return 1e300  # the line search backs off from a huge value, not from inf/nan
        if f < best["f"]:
            best["f"], best["y"] = f, np.array(y)
        return f

    def grad(y):
        g = np.empty_like(y)
        f0 = None
        for i in range(y.size):
            h = 1e-6 * max(1.0, abs(y[i]))
            e = np.zeros_like(y)
            e[i] = h
            up_ok, dn_ok = y[i] + h <= hi_y[i], y[i] - h >= lo_y[i]
            if up_ok and dn_ok:
                g[i] = (fy(y + e) - fy(y - e)) / (2 * h)
            else:  # one-sided at an active bound
                f0 = fy(y) if f0 is None else f0
                g[i] = (fy(y + e) - f0) / h if up_ok else (f0 - fy(y - e)) / h
        return g

    y0 = np.clip(np.asarray(z0, dtype=float) * scale, lo_y, hi_y)
    if y0.size == 0:
        return y0, fy(y0)
    bounds = [(None if not np.isfinite(a) else a, None if not np.isfinite(b) else b) for a, b in zip(lo_y, hi_y)]
    def solve(y_start):
        r = optimize.minimize(fy, y_start, jac=grad, method="L-BFGS-B", bounds=bounds,
                              options={"maxiter": 500, "ftol": 1e-12, "gtol": 1e-6, "maxcor": 20})
        return r.x if not (best["y"] is not None and best["f"] < r.fun - 1e-10) else best["y"]

    y = solve(y0)
    f = float(fy(y))
    # the deviance is even in an SD at 0, so its gradient vanishes there and L-BFGS-B never
    # leaves the bound: look again from one curvature unit inside (kept only if lower)
    at = (lo == 0.0) & (y <= lo_y + 1e-8)
    if np.any(at):
        y1 = y.copy()
        y1[at] = lo_y[at] + 1.0
        y1 = solve(np.clip(y1, lo_y, hi_y))
        f1 = float(fy(y1))
        if f1 < f - 1e-9:
            y, f = y1, f1
    return y / scale, f


class _Profiler:
    """The profiled deviance of one parameter: ``value -> min over the others``.

    ``inner(value, start) -> (deviance, nuisance optimum)``; every solution is kept so the
    next evaluation starts from the nuisance optimum of the nearest value profiled so far.
    """

    def __init__(self, inner, est, nuis_hat):
        self.inner = inner
        self.points = [(float(est), np.asarray(nuis_hat, dtype=float))]
        self.cache = {}
        self.min_dev = np.inf

    def __call__(self, value: float) -> float:
        value = float(value)
        if value in self.cache:
            return self.cache[value]
        vals = np.array([p[0] for p in self.points])
        start = self.points[int(np.argmin(np.abs(vals - value)))][1]
        dev, nuis = self.inner(value, start)
        self.points.append((value, np.asarray(nuis, dtype=float)))
        self.cache[value] = dev
        self.min_dev = min(self.min_dev, dev)
        return dev


def _one_side(prof, est, dev0, step, bound, cut, direction, notes, name):
    """Where ``|zeta|`` reaches ``cut`` on one side of ``est`` (``direction`` +1 or -1).

    Returns ``bound`` when the profile has not reached the cut there (a boundary SD or
    correlation), NaN (with a note) when no crossing is found within the evaluation budget.
    """
    def zeta(v):
        d = prof(v) - dev0
        # an infeasible point (non-finite deviance) counts as beyond the cut; kept finite so
        # Brent's interpolation stays defined
        return float(np.sqrt(max(d, 0.0))) if np.isfinite(d) else 1e3

    if direction * (bound - est) <= 0:  # estimate on the bound (SD = 0, correlation +-1)
        return float(bound)
    x_prev, z_prev = float(est), 0.0
    step = abs(step) if np.isfinite(step) and step > 0 else max(0.1 * abs(est), 0.1)
    x = est + direction * step
    for _ in range(_MAX_ZETA):
        if direction * (x - bound) >= 0:
            x = float(bound)
        z = zeta(x)
        if z >= cut:
            tol = 1e-7 * max(abs(x - est), 1e-12)
            return float(optimize.brentq(lambda v: zeta(v) - cut, x_prev, x, xtol=tol, rtol=1e-12))
        if x == bound:
            return float(bound)
        dist = abs(x - x_prev)
        slope = (z - z_prev) / dist
        # secant towards the cut, aimed 5% past it so the next point brackets; never more
        # than 4x the distance covered so far (flat or non-monotone stretches)
        grow = 4.0 * abs(x - est)
        dx = min(1.05 * (cut - z) / slope, grow) if slope > 0 else grow
        x_prev, z_prev = x, z
        x = x + direction * max(dx, 1e-3 * abs(x - est))
    notes.append(f"{name}: the profile did not reach the cut on the {'upper' if direction > 0 else 'lower'} "
                 f"side within {_MAX_ZETA} evaluations")
    return np.nan


# ---------------------------------------------------------------------- the two model classes
class _LmmProblem:
    """ML deviance of an LMM in phi = (sd/cor..., sigma) with beta profiled out."""

    def __init__(self, res):
        from ..fit import fit_raw
        from ..lmm import lmm_criterion, lmm_data, lmm_solve

        spec = res.spec
        self.spec = spec
        self._solve, self._crit = lmm_solve, lmm_criterion
        self.terms = spec.terms
        self.slices, self.theta_lower, _ = theta_layout(self.terms)
        fit = res.fit
        if fit.reml:
            # lme4 profiles REML fits on the ML deviance: refit by ML from the REML theta
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = fit_raw(spec, reml=False, start=np.asarray(fit.theta, dtype=float))
        self.fit = fit
        self.d = d = lmm_data(spec)
        self.sdl, lo, hi = _sdcor_layout(self.terms)
        sigma = float(fit.sigma)
        self.phi_hat = np.concatenate([_sdcor_from_lambdas(fit.lambdas, self.terms, sigma), [sigma]])
        self.lo = np.concatenate([lo, [1e-12 * sigma]])
        self.hi = np.concatenate([hi, [np.inf]])
        self.theta_hat = np.asarray(fit.theta, dtype=float)
        self.beta_hat = np.asarray(fit.beta, dtype=float)
        self.dev0 = self.crit_theta(self.theta_hat)
        self.n_var = self.phi_hat.size

    def crit_theta(self, theta):
        sol = self._solve(self.d, lambdas_from_theta(theta, self.terms, self.slices))
        return self._crit(sol, self.d, False)

    def dev_phi(self, phi):
        sigma = phi[-1]
        if not sigma > 0:
            return np.inf
        lambdas = _sdcor_to_lambdas(phi[:-1], self.terms, self.sdl, sigma)
        sol = self._solve(self.d, lambdas)
        d = self.d
        # pwrss from the residuals: lmm_solve's y'Wy - |c_u|^2 - |c_b|^2 has a rounding error
        # relative to y'Wy, which pwrss / sigma^2 amplifies without bound as a profile takes
        # sigma towards 0 (possible when a structured term has one effect per row)
        spec = self.spec
        pwrss = _pwrss(spec, d, lambdas, sol, np.asarray(spec.y, dtype=float) - np.asarray(spec.offset, dtype=float),
                       np.asarray(spec.X, dtype=float), np.asarray(spec.weights, dtype=float))
        return sol["ldL2"] + pwrss / sigma ** 2 + d.n * (_LOG_2PI + 2.0 * np.log(sigma)) - d.sum_log_w

    def dev_beta_j(self, theta, j, b):
        """ML deviance at theta with beta_j = b, the other fixed effects and sigma profiled."""
        from scipy.linalg import solve_triangular
        d = self.d
        sol = self._solve(d, lambdas_from_theta(theta, self.terms, self.slices))
        Rinv = solve_triangular(sol["RX"], np.eye(d.p), lower=True)
        ajj = float(np.sum(Rinv[:, j] ** 2))  # [(R_X R_X')^-1]_jj
        r2 = sol["pwrss"] + (b - sol["beta"][j]) ** 2 / ajj
        return sol["ldL2"] + d.n * (1.0 + _LOG_2PI + np.log(r2 / d.n)) - d.sum_log_w

    def fixed_profiler(self, j):
        def inner(b, start):
            def f(th):
                return self.dev_beta_j(th, j, b)
            opt = minimize_bounded(f, start, self.theta_lower, label="profile")
            # a boundary theta has a zero gradient (the deviance is even there): look off it
            opt, _ = restart_off_boundary(f, opt, self.theta_lower, label="profile")
            return opt["fun"], opt["x"]
        return _Profiler(inner, self.beta_hat[j], self.theta_hat)

    def fixed_se(self):
        return np.sqrt(np.clip(np.diag(np.asarray(self.fit.vcov_beta, dtype=float)), 0.0, None))


class _GlmmProblem:
    """Laplace/AGQ deviance in x = (theta, beta, aux) and phi = (sd/cor..., beta, aux)."""

    def __init__(self, res):
        from .. import agq, linalg
        from ..laplace import make_devgrad, make_deviance
        from ..pirls import make_response

        spec, fit = res.spec, res.fit
        self.terms = spec.terms
        self.slices, lower_t, _ = theta_layout(self.terms)
        resp = make_response(spec)
        s = linalg.build_structure(self.terms)
        n_agq = int(fit.n_agq)
        self.state = {}
        self.dev_x = make_deviance(resp, s, self.terms, self.slices, n_agq, self.state)
        self.fg = (make_devgrad(resp, s, self.terms, self.slices, n_agq, self.state)
                   if agq.supports_gradient(resp, s, n_agq) else None)
        self.fit = fit
        aux = []
        if spec.has_zi:
            aux.append(np.asarray(fit.beta_zi, dtype=float))
        if spec.family.aux_params and spec.has_disp:  # (beta_disp, the other parameters' coordinates)
            aux.append(fit_coords(spec.family, fit.aux, fit.beta_disp))
        elif spec.family.aux_params:
            aux.append(aux_coords(spec.family, fit.aux))
        aux = np.concatenate(aux) if aux else np.zeros(0)
        self.theta_hat = np.asarray(fit.theta, dtype=float)
        self.nt, self.p = self.theta_hat.size, spec.p
        self.x_hat = np.concatenate([self.theta_hat, np.asarray(fit.beta, dtype=float), aux])
        if spec.has_disp:  # the dispersion coefficients are unbounded
            self.x_lower = np.concatenate([lower_t, np.full(self.p + spec.p_zi + spec.p_disp, -np.inf),
                                           aux_lower(spec.family)[1:]])
        else:
            self.x_lower = np.concatenate([lower_t, np.full(self.x_hat.size - self.nt - len(spec.family.aux_params),
                                                            -np.inf), aux_lower(spec.family)])
        self.sdl, lo, hi = _sdcor_layout(self.terms)
        rest = self.x_hat[self.nt:]
        self.phi_hat = np.concatenate([_sdcor_from_lambdas(fit.lambdas, self.terms), rest])
        self.lo = np.concatenate([lo, np.full(rest.size, -np.inf)])
        self.hi = np.concatenate([hi, np.full(rest.size, np.inf)])
        self.n_var = self.nt
        self.dev0 = self.dev_x(self.x_hat)

    def x_of_phi(self, phi):
        th = [_structure_theta(phi[sl], t) if not t.cov.linear else t.cov.theta_from_lambda(_term_lambda(phi[sl], t))
              for t, sl in zip(self.terms, self.sdl)]
        return np.concatenate(th + [phi[self.nt:]])

    def dev_phi(self, phi):
        return self.dev_x(self.x_of_phi(phi))

    def x_profiler(self, k):
        """Profile of coordinate k of x (a fixed effect, zero-inflation coef, log-dispersion)."""
        free = np.setdiff1d(np.arange(self.x_hat.size), [k])

        def full(z, value):
            x = np.empty(self.x_hat.size)
            x[free], x[k] = z, value
            return x

        def inner(value, start):
            if self.fg is not None:
                def f(z):
                    dv, g = self.fg(full(z, value))
                    return dv, np.asarray(g)[free]
            else:
                def f(z):
                    return self.dev_x(full(z, value))
            lower = self.x_lower[free]
            opt = minimize_bounded(f, start, lower, jac=self.fg is not None, label="profile")
            # a variance at its bound has a zero gradient (the deviance is even there): look off it
            opt, _ = restart_off_boundary(f, opt, lower, jac=self.fg is not None, label="profile")
            return opt["fun"], opt["x"]
        return _Profiler(inner, self.x_hat[k], self.x_hat[free])


def _phi_profiler(prob, k, scale):
    """Profile of phi coordinate k (an SD, a correlation, sigma) over the other phi coordinates."""
    free = np.setdiff1d(np.arange(prob.phi_hat.size), [k])

    def inner(value, start):
        def f(z):
            phi = np.empty(prob.phi_hat.size)
            phi[free], phi[k] = z, value
            return prob.dev_phi(phi)
        z, dev = _minimize_box(f, start, prob.lo[free], prob.hi[free], scale[free])
        return dev, z
    return _Profiler(inner, prob.phi_hat[k], prob.phi_hat[free])


def _phi_scales(prob):
    """Curvature scales and Wald SEs of phi from a finite-difference Hessian at the optimum."""
    phi = prob.phi_hat
    H = fd_hessian(prob.dev_phi, phi, delta=1e-4)
    H = 0.5 * (H + H.T)
    diag = np.diag(H)
    ref = np.maximum(np.abs(phi), 1.0)
    scale = np.where(np.isfinite(diag) & (diag > 0), np.sqrt(np.abs(diag)), 1.0 / ref)
    se = np.full(phi.size, np.nan)
    try:
        np.linalg.cholesky(H)
        se = np.sqrt(2.0 * np.clip(np.diag(np.linalg.inv(H)), 0.0, None))
    except np.linalg.LinAlgError:
        ok = np.isfinite(diag) & (diag > 0)
        se[ok] = np.sqrt(2.0 / diag[ok])
    return scale, se


# ---------------------------------------------------------------------- driver
def profile_confint(res, level: float = 0.95, parm=None) -> pd.DataFrame:
    """Profile-likelihood intervals of an :class:`~bayes_glmm.ml.results.MLResults`.

    Parameters
    ----------
    res : MLResults
    level : float
        Confidence level in (0, 1).
    parm : list of str, optional
        Parameters to profile (names of :func:`param_index`); default all.

    Returns
    -------
    pandas.DataFrame
        Columns ``lower``, ``upper``, indexed by :func:`param_index` (or ``parm``).
        ``attrs``: ``method``, ``level``, ``notes`` (profiles that found a lower deviance than
        the fit's or did not reach the cut), ``seconds``.
    """
    import time

    from ..fit import _one_blas_thread

    t0 = time.perf_counter()
    with _one_blas_thread():
        out, notes = _profile_all(res, level, parm)
    if notes:
        warnings.warn("profile confidence intervals: " + "; ".join(notes), UserWarning, stacklevel=3)
    out.attrs.update({"method": "profile", "level": float(level), "notes": notes,
                      "seconds": time.perf_counter() - t0})
    return out


def _profile_all(res, level, parm):
    spec = res.spec
    idx = param_index(spec)
    names = idx if parm is None else list(parm)
    cut = float(np.sqrt(2.0 * special.gammaincinv(0.5, level)))  # chi2.ppf(level, 1)
    lmm = spec.is_lmm
    prob = _LmmProblem(res) if lmm else _GlmmProblem(res)
    scale, se_phi = _phi_scales(prob)
    p = spec.p
    vnames = variance_names(spec) + (["sigma"] if lmm else [])
    k_zi = spec.p_zi
    notes = []
    rows = {}
    for name in names:
        transform = None
        if name in spec.fixed_names:
            j = list(spec.fixed_names).index(name)
            if lmm:
                prof = prob.fixed_profiler(j)
                est, se = prob.beta_hat[j], prob.fixed_se()[j]
            else:
                prof = prob.x_profiler(prob.nt + j)
                est, se = prob.x_hat[prob.nt + j], se_phi[prob.n_var + j]
            lo_b, hi_b = -np.inf, np.inf
        elif name in vnames:
            k = vnames.index(name)
            prof = _phi_profiler(prob, k, scale)
            est, se = prob.phi_hat[k], se_phi[k]
            lo_b, hi_b = prob.lo[k], prob.hi[k]
            if name == "sigma":
                lo_b = 0.0
        elif spec.has_disp and name.startswith("disp_") and name[5:] in spec.disp_names:
            c = list(spec.disp_names).index(name[5:])  # a dispersion-model coefficient, after zi
            k = prob.nt + p + k_zi + c
            prof = prob.x_profiler(k)
            est, se = prob.x_hat[k], se_phi[prob.n_var + p + k_zi + c]
            lo_b, hi_b = -np.inf, np.inf
        elif not lmm and name in spec.family.aux_names and \
                spec.family.aux_params[spec.family.aux_names.index(name)].support == "ordered":
            # estimated through its gap to the previous one (log(tau_k - tau_{k-1})): no coordinate
            # of the fit is the parameter itself, so its profile is not one coordinate's
            notes.append(f"{name}: an ordered parameter (a threshold after the first) is not profiled; "
                         f"its Wald interval is in dispersion_table()")
            rows[name] = (np.nan, np.nan)
            continue
        elif not lmm and name in spec.family.aux_names:
            j = spec.family.aux_names.index(name)
            if spec.has_disp:  # the first is modelled: the others follow the dispersion coefficients
                j = j - 1 + spec.p_disp
            k = prob.nt + p + k_zi + j  # the auxiliary parameter's coordinate (log scale if positive)
            prof = prob.x_profiler(k)
            est, se = prob.x_hat[k], se_phi[prob.n_var + p + k_zi + j]
            lo_b, hi_b = prob.x_lower[k], np.inf
            transform = np.exp if spec.family.aux_params[spec.family.aux_names.index(name)].support == "positive" \
                else None
        elif name.startswith(f"{spec.zi_label}_") and name[len(spec.zi_label) + 1:] in spec.zi_names:
            c = list(spec.zi_names).index(name[len(spec.zi_label) + 1:])
            k = prob.nt + p + c
            prof = prob.x_profiler(k)
            est, se = prob.x_hat[k], se_phi[prob.n_var + p + c]
            lo_b, hi_b = -np.inf, np.inf
        else:
            raise ValueError(f"parm: unknown parameter {name!r}; choose from {idx}")
        step = cut * se if np.isfinite(se) and se > 0 else np.nan
        if name.startswith("cor_") and np.isfinite(step):
            step = min(step, 0.5)
        lo = _one_side(prof, est, prob.dev0, step, lo_b, cut, -1, notes, name)
        hi = _one_side(prof, est, prob.dev0, step, hi_b, cut, +1, notes, name)
        if prof.min_dev < prob.dev0 - 1e-6 * max(1.0, abs(prob.dev0)):
            notes.append(f"{name}: profiling found a deviance {prob.dev0 - prof.min_dev:.3g} below the "
                         f"fit's; the fit is not at the optimum and this interval is approximate")
        if transform is not None:
            lo, hi = transform(lo), transform(hi)
        rows[name] = (lo, hi)
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["lower", "upper"]).astype(float)
    return out, notes

"""The GLMM log-posterior and its gradient in NumPy, for nutpie's NUTS without compilation.

``sampler="nutpie"`` hands the PyMC graph to nutpie, which compiles log-density and
gradient with numba: on a cold cache that takes ~30 s for a random-intercept logistic
model, several times the sampling itself.  The GLMM posterior has a simple closed-form
gradient, so this module evaluates it directly in NumPy (``sampler="numpy"``, what
``"auto"`` picks when :func:`supported` says so):

* likelihood: ``eta = Xc @ coef + Z @ b + offset`` with a sparse Z built once; the
  log-density and its derivative in eta come from the ML path
  (:func:`bayes_glmm.ml.pirls.loglik_and_mu` / :func:`~bayes_glmm.ml.pirls.working`,
  i.e. :class:`~bayes_glmm.families.Family`), so the family code is still defined once;
* dispersion families and zero inflation: :meth:`Family.loglik` and
  :func:`~bayes_glmm.families.zi_loglik` themselves, with the derivatives in eta and in the
  dispersion from :func:`cond_derivs`;
* priors: closed-form log-densities and derivatives with PyMC's parametrizations
  (:data:`PRIOR_LOGP`); positive parameters are sampled on the log scale with PyMC's
  Jacobian, so the density on the unconstrained space is PyMC's;
* random terms: uncorrelated ones centered or non-centered, with an SD or a variance
  (``var_<ident>``) prior; correlated ones non-centered, ``b = u @ (diag(sd) L).T``, with
  log-SDs and the LKJ(eta) correlation Cholesky factor L from canonical partial
  correlations (:mod:`bayes_glmm.bayes.corr`), the graph's own coordinates; centered
  correlated terms stay on the PyMC graph.

The unconstrained coordinates are the graph's value variables
(:func:`bayes_glmm.bayes.graph.build_pymc_model`), block by block: ``tests/test_bayes_contract.py``
evaluates both at random points and asserts equal log-density and gradient.  This module
does not import PyMC.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import sparse
from scipy.special import digamma, expit, gammaln

from ..families import zi_loglik
from ..ml.pirls import loglik_and_mu, make_response
from ..priors import slope_blocks, zi_key, zi_slope_blocks
from ..spec import ModelSpec
from .corr import cpc_chol, cpc_chol_vjp, cpc_rows, lkj_shape

__all__ = ["PRIOR_LOGP", "supported", "GlmmDensity",
           "compile_numpy", "expand_layout", "cond_derivs"]

_LOG_2PI = float(np.log(2.0 * np.pi))
_LOG_PI = float(np.log(np.pi))


def prior_arg(args, k, default=None):
    """One argument of a prior as a float array (``default`` when absent; None stays None)."""
    v = args.get(k, default)
    return None if v is None else np.asarray(v, dtype=float)


def _lp_normal(x, a):
    mu, s = prior_arg(a, "mu", 0.0), prior_arg(a, "sigma", 1.0)
    z = (x - mu) / s
    return -0.5 * z * z - np.log(s) - 0.5 * _LOG_2PI, -z / s


def _lp_studentt(x, a):
    nu, mu, s = prior_arg(a, "nu"), prior_arg(a, "mu", 0.0), prior_arg(a, "sigma", 1.0)
    z = (x - mu) / s
    c = gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * np.log(nu * np.pi) - np.log(s)
    return c - (nu + 1) / 2 * np.log1p(z * z / nu), -(nu + 1) * z / (s * (nu + z * z))


def _lp_cauchy(x, a):
    m, b = prior_arg(a, "alpha"), prior_arg(a, "beta")
    z = (x - m) / b
    return -_LOG_PI - np.log(b) - np.log1p(z * z), -2 * z / (b * (1 + z * z))


def _lp_laplace(x, a):
    mu, b = prior_arg(a, "mu"), prior_arg(a, "b")
    return -np.log(2 * b) - np.abs(x - mu) / b, -np.sign(x - mu) / b


def _lp_logistic(x, a):
    mu, s = prior_arg(a, "mu", 0.0), prior_arg(a, "s", 1.0)
    z = (x - mu) / s
    return -z - np.log(s) - 2 * np.logaddexp(0.0, -z), (2 * expit(-z) - 1) / s


def _lp_flat(x, a):
    return np.zeros_like(x), np.zeros_like(x)


def _lp_halfnormal(x, a):
    s = prior_arg(a, "sigma", 1.0)
    return 0.5 * np.log(2 / np.pi) - np.log(s) - 0.5 * (x / s) ** 2, -x / s ** 2


def _lp_halfstudentt(x, a):
    nu, s = prior_arg(a, "nu"), prior_arg(a, "sigma", 1.0)
    c = np.log(2.0) + gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * np.log(nu * np.pi) - np.log(s)
    return c - (nu + 1) / 2 * np.log1p(x * x / (nu * s * s)), -(nu + 1) * x / (nu * s * s + x * x)


def _lp_halfcauchy(x, a):
    b = prior_arg(a, "beta")
    return np.log(2.0) - _LOG_PI - np.log(b) - np.log1p((x / b) ** 2), -2 * x / (b * b + x * x)


def exponential_rate(a):
    """Exponential rate from ``lam`` or ``scale`` (PyMC's two spellings)."""
    return prior_arg(a, "lam") if "lam" in a else 1.0 / prior_arg(a, "scale")


def gamma_shape_rate(a):
    """Gamma (alpha, beta) from (alpha, beta) or (mu, sigma), as PyMC."""
    if "alpha" in a:
        return prior_arg(a, "alpha"), prior_arg(a, "beta")
    mu, s = prior_arg(a, "mu"), prior_arg(a, "sigma")
    return mu ** 2 / s ** 2, mu / s ** 2


def invgamma_shape_rate(a):
    """Inverse-gamma (alpha, beta) from (alpha, beta) or (mu, sigma), as PyMC."""
    if "alpha" in a:
        return prior_arg(a, "alpha"), prior_arg(a, "beta", 1.0)
    mu, s = prior_arg(a, "mu"), prior_arg(a, "sigma")
    return (2 * s ** 2 + mu ** 2) / s ** 2, mu * (mu ** 2 + s ** 2) / s ** 2


def _lp_exponential(x, a):
    lam = exponential_rate(a)
    return np.log(lam) - lam * x, -lam * np.ones_like(x)


def _lp_gamma(x, a):
    al, be = gamma_shape_rate(a)
    return al * np.log(be) - gammaln(al) + (al - 1) * np.log(x) - be * x, (al - 1) / x - be


def _lp_invgamma(x, a):
    al, be = invgamma_shape_rate(a)
    return al * np.log(be) - gammaln(al) - (al + 1) * np.log(x) - be / x, -(al + 1) / x + be / (x * x)


def _lp_lognormal(x, a):
    mu, s = prior_arg(a, "mu", 0.0), prior_arg(a, "sigma", 1.0)
    z = (np.log(x) - mu) / s
    return -np.log(x) - np.log(s) - 0.5 * _LOG_2PI - 0.5 * z * z, -(1 + z / s) / x


def _lp_weibull(x, a):
    al, be = prior_arg(a, "alpha"), prior_arg(a, "beta")
    t = x / be
    return (np.log(al) - np.log(be) + (al - 1) * np.log(t) - t ** al,
            (al - 1) / x - al / be * t ** (al - 1))


#: prior name -> f(x, args) = (pointwise log-density, derivative), PyMC parametrizations
PRIOR_LOGP = {
    "Normal": _lp_normal, "StudentT": _lp_studentt, "Cauchy": _lp_cauchy, "Laplace": _lp_laplace,
    "Logistic": _lp_logistic, "Flat": _lp_flat, "HalfNormal": _lp_halfnormal,
    "HalfStudentT": _lp_halfstudentt, "HalfCauchy": _lp_halfcauchy, "Exponential": _lp_exponential,
    "Gamma": _lp_gamma, "InverseGamma": _lp_invgamma, "LogNormal": _lp_lognormal,
    "Weibull": _lp_weibull, "HalfFlat": _lp_flat,
}


def _is_corr(t) -> bool:
    return bool(t.correlated and t.q > 1)


def supported(spec: ModelSpec, priors: dict, centered: dict | None = None) -> bool:
    """True when :class:`GlmmDensity` covers the model.

    Every family (the dispersion families and zero inflation through :func:`cond_derivs`),
    known priors (:data:`PRIOR_LOGP`, LKJ for correlations) and no centered correlated term
    (its MvNormal density is not implemented here).  The native sampler
    (:mod:`bayes_glmm.bayes.native`) covers the same models, on the same layout.
    """
    centered = centered or {}
    if any(_is_corr(t) and centered.get(t.name, False) for t in spec.terms):
        return False
    return all(p.name in PRIOR_LOGP or (k.startswith("corr_") and p.name == "LKJ") for k, p in priors.items())


def cond_derivs(fam, y, eta, disp=None, levels=None):
    """Conditional log-density per row and its derivatives in eta and in the dispersion (NumPy).

    Parameters
    ----------
    fam : Family
        poisson (log link) or a dispersion family (negbinomial, nbinom1: log link; gamma:
        log, inverse, identity; beta: logit, probit, cloglog).
    y, eta : ndarray (n,)
    disp : float, optional
        The dispersion (theta, phi or shape).
    levels : (values, index), optional
        ``np.unique(y, return_inverse=True)`` of a count response with few distinct values:
        ``digamma(y + theta)`` (negbinomial) is then evaluated once per value.

    Returns
    -------
    (ll, d_eta, d_disp)
        ``ll`` is :meth:`Family.loglik` itself (the single definition); ``d_eta`` =
        d ll / d eta and ``d_disp`` = d ll / d disp (None for poisson) are derived from it by
        hand here, and ``tests/test_bayes_contract.py`` holds them to the PyMC graph's
        automatic gradient.
    """
    nm = fam.name
    ll = fam.loglik(y, eta, disp=disp)
    if nm == "poisson":
        return ll, y - np.exp(eta), None
    if nm == "negbinomial":
        th = disp
        e = eta - math.log(th)
        r = expit(e)  # mu / (theta + mu)
        d_eta = y - (y + th) * r
        dg = digamma(levels[0] + th)[levels[1]] if levels is not None else digamma(y + th)
        d_disp = dg - float(digamma(th)) - np.logaddexp(0.0, e) + r - y * (1.0 - r) / th
        return ll, d_eta, d_disp
    if nm == "nbinom1":
        ph = disp
        mu = np.exp(eta)
        s = mu / ph
        d_eta = s * (digamma(y + s) - digamma(s) - np.log1p(ph))
        return ll, d_eta, (-d_eta + (y - mu) / (1.0 + ph)) / ph
    if nm == "gamma":
        k = disp
        lk = fam.link.name
        if lk == "log":
            inv_mu = np.exp(-eta)
            d_eta = k * (y * inv_mu - 1.0)
            log_mu = eta
        else:
            mu = fam.link.inverse(eta)
            inv_mu = 1.0 / mu
            log_mu = np.log(mu)
            d_eta = k * (y - mu) * inv_mu * inv_mu * fam.link.mu_eta(eta)
        d_disp = np.log(k) + 1.0 - digamma(k) + np.log(y) - log_mu - y * inv_mu
        return ll, d_eta, d_disp
    if nm == "beta":
        ph = disp
        mu = fam.link.inverse(eta)
        # 1 - mu without cancellation, as Family.loglik forms it (symmetric links: h(-eta))
        one_m = np.exp(-np.exp(eta)) if fam.link.name == "cloglog" else fam.link.inverse(-eta)
        lq = np.log1p(-y)
        ly = np.log(y)
        da, db = digamma(mu * ph), digamma(one_m * ph)
        d_eta = ph * (ly - lq - da + db) * fam.link.mu_eta(eta)
        d_disp = digamma(ph) - mu * da - one_m * db + mu * ly + one_m * lq
        return ll, d_eta, d_disp
    raise ValueError(f"cond_derivs covers poisson and the dispersion families, not {nm!r}")


class _Corr:
    """The CPC block of a correlated term: slice of x, LKJ shapes and constant."""

    def __init__(self, start, q, eta):
        self.q, self.eta = q, float(eta)
        self.a, self.const = lkj_shape(q, self.eta)
        self.sl = slice(start, start + self.a.size)


class _Block:
    """A contiguous slice of the unconstrained vector with its prior (log scale if positive)."""

    def __init__(self, name, start, size, prior, positive):
        self.name, self.sl, self.prior, self.positive = name, slice(start, start + size), prior, positive
        if prior is None:
            return
        args = {k: np.asarray(v, dtype=float) for k, v in prior.args.items()}
        if prior.name in ("Normal", "HalfNormal"):  # the defaults: precomputed constants
            mu, sig = args.get("mu", 0.0), args.get("sigma", np.asarray(1.0))
            c = float(np.sum(np.broadcast_to(-np.log(sig) - 0.5 * _LOG_2PI + (prior.name == "HalfNormal") * np.log(2.0), size)))
            ivar = np.broadcast_to(1.0 / sig ** 2, size).copy()
            self._lp = lambda x: (c - 0.5 * float(((x - mu) ** 2 * ivar).sum()), -(x - mu) * ivar)
        else:
            f = PRIOR_LOGP[prior.name]

            def lp(x):
                v, g = f(x, args)
                return float(np.sum(v)), g
            self._lp = lp

        self._scalar = None
        if size == 1 and positive and prior.name in ("Gamma", "InverseGamma") and all(
                np.size(v) == 1 for v in prior.args.values()):
            # a scalar (gamma) dispersion prior, the defaults: constants once, then plain floats
            al, be = (gamma_shape_rate if prior.name == "Gamma" else invgamma_shape_rate)(args)
            al, be = float(al), float(be)
            c = al * math.log(be) - math.lgamma(al)
            if prior.name == "Gamma":
                # on z = log x with the Jacobian: c + al z - be e^z, derivative al - be e^z
                self._scalar = lambda z: (math.exp(z), c + al * z - be * math.exp(z), al - be * math.exp(z))
            else:
                self._scalar = lambda z: (math.exp(z), c - al * z - be * math.exp(-z), -al + be * math.exp(-z))

    def scalar_value_logp_grad(self, x):
        """(value, log-density on the log scale, d/dz) as floats for a scalar positive block."""
        z = float(x[self.sl.start])
        if self._scalar is not None:
            return self._scalar(z)
        v, lp, g, _ = self.value_logp_grad(x)
        return float(v[0]), lp, float(g[0])

    def value_logp_grad(self, x):
        """(value, log-density on the unconstrained scale, d/dx, dvalue/dx)."""
        z = x[self.sl]
        if not self.positive:
            lp, g = self._lp(z)
            return z, lp, g, 1.0
        v = np.exp(z)
        lp, g = self._lp(v)
        return v, lp + float(z.sum()), g * v + 1.0, v


class GlmmDensity:
    """Log-posterior and gradient of a GLMM on the unconstrained scale (PyMC's).

    Parameters
    ----------
    spec : ModelSpec
    priors : dict
        From :func:`bayes_glmm.priors.resolve_priors`.
    centered : dict
        From :func:`bayes_glmm.priors.resolve_centered`.
    """

    def __init__(self, spec: ModelSpec, priors: dict, centered: dict):
        if not supported(spec, priors, centered):
            raise ValueError("the NumPy gradient covers the priors of PRIOR_LOGP (LKJ for correlations) "
                             "and non-centered correlated terms only; use sampler='nutpie' or 'pymc'")
        self.spec, self.fam = spec, spec.family
        names = list(spec.fixed_names)
        X = np.asarray(spec.X, dtype=float)
        self.icol = names.index("(Intercept)") if "(Intercept)" in names else None
        slopes = [j for j in range(spec.p) if j != self.icol]
        self.xm = np.zeros(spec.p)
        if self.icol is not None:
            self.xm[slopes] = X[:, slopes].mean(axis=0)
        self.Xc = np.ascontiguousarray(X - self.xm[None, :])
        self.resp = make_response(spec)
        self.blocks, pos = [], 0
        self.fixed_blocks = []  # (block, columns of X)
        if self.icol is not None:
            self.fixed_blocks.append((_Block("Intercept", pos, 1, priors["Intercept"], False), [self.icol]))
            pos += 1
        for name, cols in slope_blocks(spec, priors):
            pr = priors[names[cols[0]]]
            if len(cols) > 1:  # one vector prior with per-coefficient parameters
                pr = type(pr)(pr.name, **{k: [priors[names[j]].args[k] for j in cols] for k in pr.args})
            self.fixed_blocks.append((_Block(name, pos, len(cols), pr, False), cols))
            pos += len(cols)
        self.terms, zoff, rows, cols, vals = [], 0, [], [], []
        self.corr = {}  # ident -> _Corr, correlated terms only (self.terms keeps 5-tuples)
        for t in spec.terms:
            k, q, L = t.ident, t.q, t.n_levels
            vkey = f"var_{k}"
            scale = _Block(vkey if vkey in priors else f"sd_{k}", pos, q,
                           priors[vkey] if vkey in priors else priors[f"sd_{k}"], True)
            pos += q
            if _is_corr(t):
                self.corr[k] = _Corr(pos, q, priors[f"corr_{k}"].args.get("eta", 1.0))
                pos += self.corr[k].a.size
            cen = bool(centered.get(t.name, False))
            eff = _Block(f"{'b' if cen else 'u'}_{k}", pos, L * q, None, False)
            pos += L * q
            self.terms.append((t, scale, eff, cen, slice(zoff, zoff + L * q)))
            rows.append(np.repeat(np.arange(spec.n), q))
            cols.append((np.asarray(t.codes)[:, None] * q + np.arange(q)[None, :]).ravel() + zoff)
            vals.append(np.asarray(t.Xr, dtype=float).ravel())
            zoff += L * q
        if self.terms:
            self.Z = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                                       shape=(spec.n, zoff))
            self.Zt = sparse.csr_matrix(self.Z.T)
        self.sigma = _Block("sigma", pos, 1, priors["sigma"], True) if self.fam.has_sigma else None
        pos += 1 if self.sigma is not None else 0
        dn = self.fam.dispersion_name if self.fam.has_dispersion else None
        self.disp = _Block(dn, pos, 1, priors[dn], True) if dn is not None else None
        pos += 1 if self.disp is not None else 0
        # zero inflation: as the fixed effects, on the centred X_zi
        self.zi_blocks = []
        if spec.has_zi:
            znames = list(spec.zi_names)
            Xz = np.asarray(spec.X_zi, dtype=float)
            self.zi_icol = znames.index("(Intercept)") if "(Intercept)" in znames else None
            zsl = [j for j in range(len(znames)) if j != self.zi_icol]
            self.zi_xm = np.zeros(len(znames))
            if self.zi_icol is not None:
                self.zi_xm[zsl] = Xz[:, zsl].mean(axis=0)
                self.zi_blocks.append((_Block("zi_Intercept", pos, 1, priors["zi_Intercept"], False),
                                       [self.zi_icol]))
                pos += 1
            for name, cols in zi_slope_blocks(spec, priors):
                pr = priors[zi_key(znames[cols[0]])]
                if len(cols) > 1:
                    pr = type(pr)(pr.name, **{k: [priors[zi_key(znames[j])].args[k] for j in cols] for k in pr.args})
                self.zi_blocks.append((_Block(name, pos, len(cols), pr, False), cols))
                pos += len(cols)
            self.zi_idx = np.empty(len(znames), dtype=np.intp)
            for blk, cols in self.zi_blocks:
                self.zi_idx[cols] = np.arange(blk.sl.start, blk.sl.stop)
            self.Xzc = np.ascontiguousarray(Xz - self.zi_xm[None, :])
            self.XzcT = np.ascontiguousarray(self.Xzc.T)
            self.zero = np.asarray(spec.y, dtype=float) == 0.0
        self.general = self.disp is not None or spec.has_zi
        self.unit = bool(np.all(self.resp.pw == 1.0))
        self.y_levels = None  # count response with few distinct values: digamma(y + theta) per value
        if self.fam.name == "negbinomial":
            uy, inv = np.unique(np.asarray(spec.y, dtype=float), return_inverse=True)
            if uy.size * 4 < spec.n:
                self.y_levels = (uy, inv.ravel())
        self.ndim = pos
        off = np.asarray(spec.offset, dtype=float)
        self.offset = off if np.any(off != 0.0) else None
        # hot-path plan: X column j sits at x[coef_idx[j]]; all-Normal fixed priors merge into one
        self.coef_idx = np.empty(spec.p, dtype=np.intp)
        for blk, cols in self.fixed_blocks:
            self.coef_idx[cols] = np.arange(blk.sl.start, blk.sl.stop)
        fp = [priors["Intercept" if j == self.icol else names[j]] for j in np.argsort(self.coef_idx)]
        if spec.p and all(p.name == "Normal" for p in fp):
            merged = type(fp[0])("Normal", mu=[float(p.args.get("mu", 0.0)) for p in fp],
                                 sigma=[float(p.args.get("sigma", 1.0)) for p in fp])
            self.fixed_priors = [_Block("fixed", 0, spec.p, merged, False)]
        else:
            self.fixed_priors = [b for b, _ in self.fixed_blocks]
        self.XcT = np.ascontiguousarray(self.Xc.T)

    # ------------------------------------------------------------------ density
    def _effects(self, x):
        """Random effects, their prior log-density and pieces needed for the gradient."""
        lp, parts = 0.0, []
        for t, scale, eff, cen, zsl in self.terms:
            s_val, s_lp, s_g, s_dv = scale.value_logp_grad(x)
            sd = np.sqrt(s_val) if scale.name.startswith("var_") else s_val
            e = x[eff.sl].reshape(t.n_levels, t.q)
            ch = self.corr.get(t.ident)
            if ch is not None:  # b_l = diag(sd) L u_l
                Lc, lpc, aux = cpc_chol(x[ch.sl], t.q, ch.a, ch.const)
                lp += s_lp + lpc - 0.5 * float(np.sum(e * e))
                parts.append((t, scale, eff, cen, sd, e, e @ (sd[:, None] * Lc).T, s_g, s_dv, zsl, (ch, Lc, aux)))
                continue
            if cen:
                zb = e / sd
                lp += s_lp - 0.5 * float(np.sum(zb * zb)) - t.n_levels * float(np.sum(np.log(sd)))
                b = e
            else:
                lp += s_lp - 0.5 * float(np.sum(e * e))
                b = e * sd
            parts.append((t, scale, eff, cen, sd, e, b, s_g, s_dv, zsl, None))
        return lp, parts

    def logp_grad(self, x):
        """Log-density (up to PyMC's constants of the random-effect priors) and gradient.

        Parameters
        ----------
        x : ndarray (ndim,)
            Unconstrained parameters.

        Returns
        -------
        (float, ndarray)
        """
        grad = np.empty(self.ndim)
        lp = 0.0
        for blk in self.fixed_priors + [b for b, _ in self.zi_blocks]:
            l, g = blk._lp(x[blk.sl])
            grad[blk.sl] = g
            lp += l
        eta = self.Xc @ x[self.coef_idx]
        if self.offset is not None:
            eta += self.offset
        lpe, parts = self._effects(x)
        lp += lpe
        if len(parts) == 1:
            eta += self.Z @ parts[0][6].ravel()
        elif parts:
            eta += self.Z @ np.concatenate([p[6].ravel() for p in parts])
        score = self._score(x, eta, grad)
        lp += score[1]
        score = score[0]
        grad[self.coef_idx] += self.XcT @ score
        if parts:
            gb_all = self.Zt @ score
            for t, scale, eff, cen, sd, e, b, s_g, s_dv, zsl, cor in parts:
                gb = gb_all[zsl].reshape(t.n_levels, t.q)
                if cor is not None:
                    ch, Lc, aux = cor
                    grad[eff.sl] = (gb @ (sd[:, None] * Lc) - e).ravel()
                    d_sd = (gb * (e @ Lc.T)).sum(axis=0)
                    # d/dL[k, m] = sd_k sum_l gb[l, k] u[l, m]
                    grad[ch.sl] = cpc_chol_vjp(sd[:, None] * (gb.T @ e), ch.a, aux)
                elif cen:
                    grad[eff.sl] = (gb - e / sd ** 2).ravel()
                    d_sd = (e * e).sum(axis=0) / sd ** 3 - t.n_levels / sd
                else:
                    grad[eff.sl] = (gb * sd - e).ravel()
                    d_sd = (gb * e).sum(axis=0)
                if scale.name.startswith("var_"):
                    d_sd = d_sd / (2.0 * sd)  # d sd / d var
                grad[scale.sl] = s_g + s_dv * d_sd
        return lp, grad

    def _score_general(self, x, eta, grad):
        """:meth:`_score` for the dispersion families and zero inflation (:func:`cond_derivs`,
        :func:`~bayes_glmm.families.zi_loglik`); fills the dispersion's and zi gradients."""
        resp, fam = self.resp, self.fam
        y, pw = resp.y, resp.pw
        lp, disp = 0.0, None
        if self.disp is not None:
            disp, dlp, dg = self.disp.scalar_value_logp_grad(x)
            lp += dlp
        ll, d_eta, d_disp = cond_derivs(fam, y, eta, disp, levels=self.y_levels)
        if self.zi_blocks:
            ez = self.Xzc @ x[self.zi_idx]
            w0 = np.where(self.zero, expit(ll - ez), 1.0)  # P(not a structural zero | y)
            ll = zi_loglik(ll, y, ez)
            grad[self.zi_idx] += self.XzcT @ (pw * ((1.0 - w0) - expit(ez)))
            d_eta = w0 * d_eta
            if d_disp is not None:
                d_disp = w0 * d_disp
        if self.unit:
            if self.disp is not None:  # d/d log(disp) = disp * d/d disp
                grad[self.disp.sl.start] = dg + disp * float(d_disp.sum())
            return d_eta, lp + float(ll.sum())
        if self.disp is not None:
            grad[self.disp.sl.start] = dg + disp * float(pw @ d_disp)
        return pw * d_eta, lp + float(pw @ ll)

    def _score(self, x, eta, grad):
        """(d loglik / d eta per row, summed log-likelihood); fills sigma's gradient."""
        if self.general:
            return self._score_general(x, eta, grad)
        resp, fam = self.resp, self.fam
        if self.sigma is not None:
            sig, l, g, dv = self.sigma.value_logp_grad(x)
            r = (resp.y - fam.mean(eta)) / sig
            ll = l + float((resp.pw * fam.loglik(resp.y, eta, sigma=sig)).sum())
            grad[self.sigma.sl] = g + dv * float((resp.pw * (r * r - 1.0)).sum()) / sig
            return resp.pw * r / sig * fam.link.mu_eta(eta), ll
        rows, mu = loglik_and_mu(resp, eta)
        ll = float(rows.sum())
        if mu is not None:  # canonical: d/deta = w (y - n mu)
            return resp.pw * (resp.y - resp.n_trials * mu), ll
        # probability links: d/deta [y log p + (n - y) log q] with the family's stable log p, log q
        lp_, lq_ = fam.link.log_p_and_log_q(eta)
        # log(Link.mu_eta) written out: mu_eta underflows to 0 long before mu_eta / p or
        # mu_eta / q do (cloglog: eta > 6.6, probit: |eta| > 38), which zeroed the gradient there
        if fam.link.name == "cloglog":
            lme = eta - np.exp(eta)
        elif fam.link.name == "probit":
            lme = -0.5 * eta * eta - 0.5 * _LOG_2PI
        else:
            with np.errstate(divide="ignore"):
                lme = np.log(fam.link.mu_eta(eta))
        return resp.pw * (resp.y * np.exp(lme - lp_) - (resp.n_trials - resp.y) * np.exp(lme - lq_)), ll

    def value_var_slices(self) -> dict:
        """Graph value-variable name -> slice of x: the one layout shared with the PyMC graph.

        Positive parameters are the graph's log-transformed values (``sd_g_log__``), the
        CPCs of a correlated term ``cpc_g``, the effects ``u_g`` (``b_g`` when centered).
        """
        out = {blk.name: blk.sl for blk, _ in self.fixed_blocks}
        for t, scale, eff, _, _ in self.terms:
            out[scale.name + "_log__"] = scale.sl
            if t.ident in self.corr:
                out[f"cpc_{t.ident}"] = self.corr[t.ident].sl
            out[eff.name] = eff.sl
        if self.sigma is not None:
            out["sigma_log__"] = self.sigma.sl
        if self.disp is not None:
            out[self.disp.name + "_log__"] = self.disp.sl
        for blk, _ in self.zi_blocks:
            out[blk.name] = blk.sl
        return out

    # ------------------------------------------------------------------ expand
    def expand(self, x) -> dict:
        """The ``posterior`` variables (names of :func:`bayes_glmm.bayes.build_pymc_model`)."""
        x = np.asarray(x, dtype=float)
        out, cf = {}, np.empty(self.spec.p)
        for blk, cols in self.fixed_blocks:
            cf[cols] = x[blk.sl]
            out[blk.name] = x[blk.sl].copy() if len(cols) > 1 or blk.name == "slopes" else x[blk.sl][0]
        if self.icol is not None:
            slopes = [j for j in range(self.spec.p) if j != self.icol]
            cf[self.icol] = cf[self.icol] - float(cf[slopes] @ self.xm[slopes])
        out["beta"] = cf
        for t, scale, eff, cen, _ in self.terms:
            v = np.exp(x[scale.sl])
            sd = np.sqrt(v) if scale.name.startswith("var_") else v
            ch = self.corr.get(t.ident)
            if ch is not None:  # the graph's free variable: packed Cholesky factor of the covariance
                Lc = cpc_chol(x[ch.sl], t.q, ch.a, ch.const)[0]
                out[f"chol_{t.ident}"] = (sd[:, None] * Lc)[np.tril_indices(t.q)]
            if scale.name.startswith("var_"):
                out[scale.name] = v
            out[f"sd_{t.ident}"] = sd
            e = x[eff.sl].reshape(t.n_levels, t.q)
            if ch is not None:  # bayes.py's graph: chol (free; posterior predictive reads it), sd, corr, u, b
                out[f"corr_{t.ident}"] = Lc @ Lc.T
                out[eff.name] = e.copy()
                out[f"b_{t.ident}"] = e @ (sd[:, None] * Lc).T
                continue
            if not cen:
                out[eff.name] = e.copy()
            out[f"b_{t.ident}"] = e.copy() if cen else e * sd
        if self.sigma is not None:
            out["sigma"] = float(np.exp(x[self.sigma.sl][0]))
        if self.disp is not None:
            out[self.disp.name] = float(np.exp(x[self.disp.sl][0]))
        if self.zi_blocks:
            bz = np.empty(self.spec.p_zi)
            for blk, cols in self.zi_blocks:
                bz[cols] = x[blk.sl]
                out[blk.name] = x[blk.sl].copy() if blk.name == "zi_slopes" else x[blk.sl][0]
            if self.zi_icol is not None:
                sl = [j for j in range(self.spec.p_zi) if j != self.zi_icol]
                bz[self.zi_icol] = bz[self.zi_icol] - float(bz[sl] @ self.zi_xm[sl])
            out["beta_zi"] = bz
        return out

    def expand_draws(self, X) -> dict:
        """The ``posterior`` variables of many draws at once (vectorized :meth:`expand`).

        Parameters
        ----------
        X : ndarray (..., ndim)
            Unconstrained draws, e.g. (chain, draw, ndim).

        Returns
        -------
        dict
            ``beta``, ``sd_<g>``, ``corr_<g>`` (the q x q matrix), ``sigma`` or the
            dispersion, ``beta_zi``, ``b_<g>``, each with the leading shape of ``X``.
        """
        X = np.asarray(X, dtype=float)
        lead = X.shape[:-1]

        def coefs(blocks, p, icol, xm):
            cf = np.empty(lead + (p,))
            for blk, cols in blocks:
                cf[..., cols] = X[..., blk.sl]
            if icol is not None:
                sl = [j for j in range(p) if j != icol]
                cf[..., icol] -= cf[..., sl] @ xm[sl]
            return cf

        out = {"beta": coefs(self.fixed_blocks, self.spec.p, self.icol, self.xm)}
        bs = {}
        for t, scale, eff, cen, _ in self.terms:
            k = t.ident
            v = np.exp(X[..., scale.sl])
            sd = np.sqrt(v) if scale.name.startswith("var_") else v
            out[f"sd_{k}"] = sd
            e = X[..., eff.sl].reshape(lead + (t.n_levels, t.q))
            ch = self.corr.get(k)
            if ch is not None:
                y = X[..., ch.sl]
                with np.errstate(over="ignore"):
                    z, s = np.tanh(y), 1.0 / np.cosh(y)
                rows, _ = cpc_rows([z[..., i] for i in range(z.shape[-1])], [s[..., i] for i in range(s.shape[-1])], t.q)
                Lc = np.stack([np.stack([np.broadcast_to(np.asarray(a, dtype=float), lead) for a in row], axis=-1)
                               for row in rows], axis=-2)
                out[f"corr_{k}"] = Lc @ np.swapaxes(Lc, -1, -2)
                bs[f"b_{k}"] = e @ np.swapaxes(sd[..., :, None] * Lc, -1, -2)
            else:
                bs[f"b_{k}"] = e if cen else e * sd[..., None, :]
        if self.sigma is not None:
            out["sigma"] = np.exp(X[..., self.sigma.sl.start])
        if self.disp is not None:
            out[self.disp.name] = np.exp(X[..., self.disp.sl.start])
        if self.zi_blocks:
            out["beta_zi"] = coefs(self.zi_blocks, self.spec.p_zi, self.zi_icol, self.zi_xm)
        out.update(bs)
        return out

    def initial_point(self, seed) -> np.ndarray:
        """PyMC-like start: prior location (0 for slopes, effects and log-scales) + U(-1, 1)."""
        x0 = np.zeros(self.ndim)
        for blk, _ in self.fixed_blocks:
            if blk.name == "Intercept" and "mu" in blk.prior.args:
                x0[blk.sl] = float(np.mean(blk.prior.args["mu"]))
        return x0 + np.random.default_rng(seed).uniform(-1.0, 1.0, self.ndim)


def expand_layout(density: GlmmDensity, dims: dict):
    """(names, shapes, dims) of :meth:`GlmmDensity.expand`'s output for nutpie.

    The graph's dims are kept where they fit the shape (the q x q correlation matrix that
    expand writes is turned into the graph's pairs afterwards, by ``pointwise.tidy_posterior``).
    """
    ex = density.expand(density.initial_point(0))
    names = list(ex)
    shapes = [tuple(np.shape(ex[n])) for n in names]
    kept = {n: tuple(dims[n]) for n, s in zip(names, shapes) if n in dims and len(dims[n]) == len(s)}
    return names, shapes, kept


def compile_numpy(density: GlmmDensity, coords: dict, dims: dict):
    """A nutpie model (``nutpie.compiled_pyfunc``) evaluating ``density`` in NumPy.

    Parameters
    ----------
    density : GlmmDensity
    coords, dims : dict
        Coordinates and dims of the posterior variables (from the PyMC model).
    """
    import pandas as pd
    from nutpie.compiled_pyfunc import from_pyfunc

    names, shapes, kept = expand_layout(density, dims)

    def make_logp_fn():
        return lambda x, **_: density.logp_grad(x)

    def make_expand_fn(seed1, seed2, chain):
        def expand(x, **_):
            e = density.expand(x)
            return {n: np.asarray(e[n], dtype="float64").reshape(s) for n, s in zip(names, shapes)}
        return expand

    return from_pyfunc(density.ndim, make_logp_fn, make_expand_fn, [np.dtype("float64")] * len(names),
                       shapes, names, coords={k: pd.Index(v) for k, v in coords.items()},
                       dims=kept, make_initial_point_fn=density.initial_point)

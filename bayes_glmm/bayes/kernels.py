"""The GLMM log-posterior and gradient as one numba kernel, run by nutpie without the GIL.

``sampler="numba"`` (what ``"auto"`` picks when :func:`bayes_glmm.bayes.density.supported`
says the closed-form gradient covers the model and numba is installed).  The kernel
evaluates exactly the density of :class:`bayes_glmm.bayes.density.GlmmDensity` -- same
unconstrained parametrization, same log-Jacobians, same constants -- but as compiled
code: nutpie calls it through a C function pointer (its ``CompiledPyMCModel`` interface,
the one it uses for numba-compiled PyMC graphs), so every chain runs in its own thread
without the GIL and chains run in parallel.  The NumPy path (``sampler="numpy"``) holds
the GIL in every gradient call, so its chains take turns.

Random terms (uncorrelated, and non-centered correlated ones with the LKJ Cholesky factor
from canonical partial correlations) are in :mod:`bayes_glmm.bayes.kernels_cov`.

One kernel serves every model: the model is packed into a float64 array ``F`` and an int64
array ``I`` (data plus an offset table, :func:`pack`), and the two C functions read them
through nutpie's ``user_data`` pointer.  Nothing is compiled per model, and with
``cache=True`` numba compiles the kernel once per installation (the first use costs a few
seconds of numba compilation; later processes load it from numba's cache).

Single definition of the densities
----------------------------------
Links and conditional log-densities are defined in :mod:`bayes_glmm.families`
(:class:`~bayes_glmm.families.Link`, :meth:`~bayes_glmm.families.Family.loglik`) and the
priors in :data:`bayes_glmm.bayes.density.PRIOR_LOGP`.  Compiled code cannot call those, so
:func:`_prior` and :func:`_row` below re-express them; that is the only place, and
``tests/test_bayes_contract.py`` checks kernel logp and gradient against the NumPy path
(itself tested against PyMC) for every family, link and prior.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .density import GlmmDensity, prior_arg, exponential_rate, gamma_shape_rate, invgamma_shape_rate, expand_layout
from .kernels_cov import TW, term_expand, terms_eta, terms_grad

__all__ = ["pack", "logp_grad", "expand", "compile_numba", "PRIOR_CODES"]

_LOG_2PI = math.log(2.0 * math.pi)
_LOG_PI = math.log(math.pi)
_LOG2 = math.log(2.0)
_SQRT1_2 = math.sqrt(0.5)

FAMILY_CODES = {"gaussian": 0, "bernoulli": 1, "binomial": 2, "poisson": 3}
LINK_CODES = {"identity": 0, "log": 1, "logit": 2, "probit": 3, "cloglog": 4}


# --------------------------------------------------------------------------- priors
def _params(name, args):
    """Canonical (a0, a1, a2) per prior, broadcastable (same conventions as PRIOR_LOGP)."""
    g = lambda k, d=None: prior_arg(args, k, d)  # noqa: E731
    if name == "Normal" or name == "LogNormal":
        return g("mu", 0.0), g("sigma", 1.0), 0.0
    if name == "StudentT":
        return g("nu"), g("mu", 0.0), g("sigma", 1.0)
    if name == "Cauchy":
        return g("alpha"), g("beta"), 0.0
    if name == "Laplace":
        return g("mu"), g("b"), 0.0
    if name == "Logistic":
        return g("mu", 0.0), g("s", 1.0), 0.0
    if name in ("Flat", "HalfFlat"):
        return 0.0, 0.0, 0.0
    if name == "HalfNormal":
        return g("sigma", 1.0), 0.0, 0.0
    if name == "HalfStudentT":
        return g("nu"), g("sigma", 1.0), 0.0
    if name == "HalfCauchy":
        return g("beta"), 0.0, 0.0
    if name == "Exponential":
        return exponential_rate(args), 0.0, 0.0
    if name == "Gamma":
        return (*gamma_shape_rate(args), 0.0)
    if name == "InverseGamma":
        return (*invgamma_shape_rate(args), 0.0)
    if name == "Weibull":
        return g("alpha"), g("beta"), 0.0
    raise KeyError(name)


PRIOR_CODES = {n: i for i, n in enumerate(
    ["Normal", "StudentT", "Cauchy", "Laplace", "Logistic", "Flat", "HalfNormal", "HalfStudentT",
     "HalfCauchy", "Exponential", "Gamma", "InverseGamma", "LogNormal", "Weibull", "HalfFlat"])}


@numba.njit(nogil=True, cache=True)
def _prior(code, x, a0, a1, a2):
    """(log-density, d/dx) of one prior at x: PRIOR_LOGP of density.py, PyMC's parametrizations."""
    if code == 0:  # Normal(mu, sigma)
        z = (x - a0) / a1
        return -0.5 * z * z - math.log(a1) - 0.5 * _LOG_2PI, -z / a1
    if code == 1:  # StudentT(nu, mu, sigma)
        z = (x - a1) / a2
        c = math.lgamma((a0 + 1) / 2) - math.lgamma(a0 / 2) - 0.5 * math.log(a0 * math.pi) - math.log(a2)
        return c - (a0 + 1) / 2 * math.log1p(z * z / a0), -(a0 + 1) * z / (a2 * (a0 + z * z))
    if code == 2:  # Cauchy(alpha, beta)
        z = (x - a0) / a1
        return -_LOG_PI - math.log(a1) - math.log1p(z * z), -2 * z / (a1 * (1 + z * z))
    if code == 3:  # Laplace(mu, b)
        d = x - a0
        return -math.log(2 * a1) - abs(d) / a1, -(1.0 if d > 0 else (-1.0 if d < 0 else 0.0)) / a1
    if code == 4:  # Logistic(mu, s)
        z = (x - a0) / a1
        # 2 logaddexp(0, -z) and 2 expit(-z) - 1, overflow-free
        lae = max(-z, 0.0) + math.log1p(math.exp(-abs(z)))
        ex = 1.0 / (1.0 + math.exp(z)) if z >= 0 else math.exp(-z) / (1.0 + math.exp(-z))
        return -z - math.log(a1) - 2 * lae, (2 * ex - 1) / a1
    if code == 5 or code == 14:  # Flat, HalfFlat
        return 0.0, 0.0
    if code == 6:  # HalfNormal(sigma)
        return 0.5 * math.log(2 / math.pi) - math.log(a0) - 0.5 * (x / a0) ** 2, -x / a0 ** 2
    if code == 7:  # HalfStudentT(nu, sigma)
        c = _LOG2 + math.lgamma((a0 + 1) / 2) - math.lgamma(a0 / 2) - 0.5 * math.log(a0 * math.pi) - math.log(a1)
        return c - (a0 + 1) / 2 * math.log1p(x * x / (a0 * a1 * a1)), -(a0 + 1) * x / (a0 * a1 * a1 + x * x)
    if code == 8:  # HalfCauchy(beta)
        return _LOG2 - _LOG_PI - math.log(a0) - math.log1p((x / a0) ** 2), -2 * x / (a0 * a0 + x * x)
    if code == 9:  # Exponential(lam)
        return math.log(a0) - a0 * x, -a0
    if code == 10:  # Gamma(alpha, beta)
        return a0 * math.log(a1) - math.lgamma(a0) + (a0 - 1) * math.log(x) - a1 * x, (a0 - 1) / x - a1
    if code == 11:  # InverseGamma(alpha, beta)
        return (a0 * math.log(a1) - math.lgamma(a0) - (a0 + 1) * math.log(x) - a1 / x,
                -(a0 + 1) / x + a1 / (x * x))
    if code == 12:  # LogNormal(mu, sigma)
        z = (math.log(x) - a0) / a1
        return -math.log(x) - math.log(a1) - 0.5 * _LOG_2PI - 0.5 * z * z, -(1 + z / a1) / x
    # code == 13: Weibull(alpha, beta)
    t = x / a1
    return (math.log(a0) - math.log(a1) + (a0 - 1) * math.log(t) - t ** a0,
            (a0 - 1) / x - a0 / a1 * t ** (a0 - 1))


# --------------------------------------------------------------------------- likelihood
@numba.njit(nogil=True, cache=True)
def _log_ndtr(x):
    """log Phi(x) (scipy.special.log_ndtr) from erfc; asymptotic series far in the left tail."""
    if x > 0.0:
        return math.log1p(-0.5 * math.erfc(x * _SQRT1_2))
    if x > -37.0:
        return math.log(0.5 * math.erfc(-x * _SQRT1_2))
    r = 1.0 / (x * x)
    return (-0.5 * x * x - 0.5 * _LOG_2PI - math.log(-x)
            + math.log1p(r * (-1.0 + r * (3.0 + r * (-15.0 + r * 105.0)))))


@numba.njit(nogil=True, cache=True)
def _logit_row(eta, y, n):
    """logit: y eta - n softplus(eta) and d/deta = y - n expit(eta) (loglik_and_mu's fast path)."""
    e = math.exp(-abs(eta))
    t = 1.0 + e
    sp = max(eta, 0.0) + math.log(t)
    mu = 1.0 / t if eta >= 0 else e / t
    return y * eta - n * sp, y - n * mu


@numba.njit(nogil=True, cache=True)
def _row(link, eta, y, n):
    """Binary/binomial row: (y log p + (n - y) log q, its d/deta) for a probability link.

    Family.loglik with Link.log_p_and_log_q (families.py) and density.py's score
    y mu_eta / p - (n - y) mu_eta / q (as exp(log mu_eta - log p) etc.).
    """
    if link == 2:
        return _logit_row(eta, y, n)
    if link == 3:  # probit
        lp, lq = _log_ndtr(eta), _log_ndtr(-eta)
        lme = -0.5 * eta * eta - 0.5 * _LOG_2PI
    else:  # cloglog: log p = log1mexp(-e^eta), log q = -e^eta
        ee = math.exp(eta)
        lp = math.log(-math.expm1(-ee)) if -ee > -_LOG2 else math.log1p(-math.exp(-ee))
        lq = -ee
        lme = eta - ee
    return y * lp + (n - y) * lq, y * math.exp(lme - lp) - (n - y) * math.exp(lme - lq)


# --------------------------------------------------------------------------- packing
# int header slots
_N, _P, _NDIM, _FAM, _LINK, _NT, _NPR, _SIG, _HOFF, _ICOL, _NEXP, _OC, _OT, _OP, _FX, _FY, _FTR, _FPW, \
    _FLLC, _FOFF, _FPA, _FXM, _NQ, _NGB, _NM = range(25)
_HDR = 32
_TW = TW  # ints per term, slots in kernels_cov


def pack(d: GlmmDensity):
    """(F, I): the model of ``d`` as one float64 and one int64 array for the kernels."""
    if d.fam.name not in FAMILY_CODES or d.spec.has_zi:
        raise ValueError(f"the numba kernel covers the families {sorted(FAMILY_CODES)} without zero "
                         f"inflation, not {d.fam.name!r}{' with zi' if d.spec.has_zi else ''}; "
                         "use sampler='numpy' (what 'auto' picks for it)")
    spec, resp = d.spec, d.resp
    n, p = spec.n, spec.p
    fl, il = [], [np.zeros(_HDR, dtype=np.int64)]
    hdr = il[0]
    fpos = [0]
    ipos = [_HDR]

    def addf(a):
        a = np.ascontiguousarray(a, dtype=np.float64).ravel()
        fl.append(a)
        fpos[0] += a.size
        return fpos[0] - a.size

    def addi(a):
        a = np.ascontiguousarray(a, dtype=np.int64).ravel()
        il.append(a)
        ipos[0] += a.size
        return ipos[0] - a.size

    hdr[_N], hdr[_P], hdr[_NDIM] = n, p, d.ndim
    hdr[_FAM], hdr[_LINK] = FAMILY_CODES[d.fam.name], LINK_CODES[d.fam.link.name]
    hdr[_SIG] = d.sigma.sl.start if d.sigma is not None else -1
    hdr[_HOFF] = int(d.offset is not None)
    hdr[_ICOL] = -1 if d.icol is None else d.icol
    hdr[_NEXP] = sum(int(np.size(v)) for v in d.expand(np.zeros(d.ndim)).values())
    hdr[_OC] = addi(d.coef_idx)
    hdr[_FX] = addf(d.Xc)
    hdr[_FY], hdr[_FTR], hdr[_FPW], hdr[_FLLC] = (addf(resp.y), addf(resp.n_trials), addf(resp.pw),
                                                   addf(resp.ll_const))
    hdr[_FOFF] = addf(d.offset if d.offset is not None else np.zeros(0))
    hdr[_FXM] = addf(d.xm)
    # priors: one row per scalar parameter (fixed effects, scales, sigma)
    rows, pargs = [], []
    blocks = [b for b, _ in d.fixed_blocks] + [s for _, s, _, _, _ in d.terms]
    blocks += [d.sigma] if d.sigma is not None else []
    for blk in blocks:
        size = blk.sl.stop - blk.sl.start
        a = [np.broadcast_to(np.asarray(v, dtype=float), (size,)) for v in _params(blk.prior.name, blk.prior.args)]
        for k in range(size):
            rows.append((blk.sl.start + k, PRIOR_CODES[blk.prior.name], int(blk.positive)))
            pargs.append((a[0][k], a[1][k], a[2][k]))
    hdr[_NPR] = len(rows)
    hdr[_OP] = addi(np.array(rows, dtype=np.int64).reshape(-1, 3))
    hdr[_FPA] = addf(np.array(pargs, dtype=float).reshape(-1, 3))
    # random terms
    tt, gb0, sd0, m0 = [], 0, 0, 0
    for t, scale, eff, cen, _ in d.terms:
        oc = addi(np.asarray(t.codes, dtype=np.int64))
        fx = addf(np.asarray(t.Xr, dtype=float).reshape(n, t.q))
        ch = d.corr.get(t.ident)
        y0, fa, mq = -1, -1, 0
        if ch is not None:  # LKJ shapes then the log normalizer; q x q scratch for L, w, dL
            y0, fa, mq = ch.sl.start, addf(np.append(ch.a, ch.const)), t.q * t.q
        tt.append((scale.sl.start, t.q, t.n_levels, int(cen), int(scale.name.startswith("var_")),
                   eff.sl.start, oc, fx, gb0, sd0, y0, fa, m0))
        gb0 += t.n_levels * t.q
        sd0 += t.q
        m0 += mq
    hdr[_NT], hdr[_NGB], hdr[_NQ], hdr[_NM] = len(tt), gb0, sd0, m0
    hdr[_OT] = addi(np.array(tt, dtype=np.int64).reshape(-1, _TW))
    F = np.concatenate(fl) if fl else np.zeros(1)
    I = np.concatenate(il)
    return F, I


# --------------------------------------------------------------------------- kernels
@numba.njit(nogil=True, cache=True)
def logp_grad(x, grad, F, I):
    """Log-posterior at x (unconstrained); writes the gradient into grad.  = GlmmDensity.logp_grad."""
    n, p, ndim, fam, link = I[_N], I[_P], I[_NDIM], I[_FAM], I[_LINK]
    oc, ot, op, fX, fy, ftr, fpw, fllc, foff = I[_OC], I[_OT], I[_OP], I[_FX], I[_FY], I[_FTR], I[_FPW], \
        I[_FLLC], I[_FOFF]
    for j in range(ndim):
        grad[j] = 0.0
    lp = 0.0
    fpa = I[_FPA]
    for k in range(I[_NPR]):  # fixed-effect, scale and sigma priors (log scale for positive ones)
        idx, code, pos = I[op + 3 * k], I[op + 3 * k + 1], I[op + 3 * k + 2]
        z = x[idx]
        v = math.exp(z) if pos else z
        lk, gk = _prior(code, v, F[fpa + 3 * k], F[fpa + 3 * k + 1], F[fpa + 3 * k + 2])
        if pos:
            lk += z
            gk = gk * v + 1.0
        lp += lk
        grad[idx] = gk
    coef = np.empty(p)
    for j in range(p):
        coef[j] = x[I[oc + j]]
    X = F[fX:fX + n * p]
    eta = np.empty(n)
    if I[_HOFF]:
        eta[:] = F[foff:foff + n]
    else:
        eta[:] = 0.0
    for i in range(n):
        s = 0.0
        for j in range(p):
            s += X[i * p + j] * coef[j]
        eta[i] += s
    # random terms: Z b into eta, their prior terms (kernels_cov)
    sd, bv = np.empty(max(I[_NQ], 1)), np.empty(max(I[_NGB], 1))
    Lm, wb, G = np.empty(max(I[_NM], 1)), np.empty(max(I[_NM], 1)), np.empty(max(I[_NM], 1))
    lp += terms_eta(x, F, I, ot, I[_NT], n, eta, sd, bv, Lm, wb)
    # conditional log-density and its derivative in eta (Family.loglik, families.py)
    score = np.empty(n)
    ll = 0.0
    if fam == 0:  # gaussian, identity or log link
        sidx = I[_SIG]
        sig = math.exp(x[sidx])
        lsig = math.log(sig)
        acc = 0.0
        for i in range(n):
            mu = eta[i] if link == 0 else math.exp(eta[i])
            me = 1.0 if link == 0 else mu
            w = F[fpw + i]
            r = (F[fy + i] - mu) / sig
            ll += w * (-0.5 * r * r - lsig - 0.5 * _LOG_2PI)
            score[i] = w * r / sig * me
            acc += w * (r * r - 1.0)
        grad[sidx] += acc  # d/dlog(sigma): sigma * sum w (r^2 - 1) / sigma
    elif fam == 3:  # poisson, log link
        for i in range(n):
            mu = math.exp(eta[i])
            w, y = F[fpw + i], F[fy + i]
            ll += w * (y * eta[i] - mu) + F[fllc + i]
            score[i] = w * (y - mu)
    elif link == 2:  # bernoulli / binomial, logit: y eta - n softplus(eta), d = y - n expit(eta)
        pw, yy, tr, llc = F[fpw:fpw + n], F[fy:fy + n], F[ftr:ftr + n], F[fllc:fllc + n]
        for i in range(n):
            li, di = _logit_row(eta[i], yy[i], tr[i])
            ll += pw[i] * li + llc[i]
            score[i] = pw[i] * di
    else:  # bernoulli / binomial, probit / cloglog
        for i in range(n):
            w = F[fpw + i]
            li, di = _row(link, eta[i], F[fy + i], F[ftr + i])
            ll += w * li + F[fllc + i]
            score[i] = w * di
    lp += ll
    # gradient: X' score for the coefficients, Z' score for the effects
    cg = np.zeros(p)
    for i in range(n):
        s = score[i]
        for j in range(p):
            cg[j] += X[i * p + j] * s
    for j in range(p):
        grad[I[oc + j]] += cg[j]
    terms_grad(x, F, I, ot, I[_NT], n, score, sd, Lm, wb, G, grad)
    return lp


@numba.njit(nogil=True, cache=True)
def expand(x, out, F, I):
    """The posterior variables of GlmmDensity.expand, flattened in its order, into out."""
    p, oc, fxm, icol = I[_P], I[_OC], I[_FXM], I[_ICOL]
    for j in range(p):  # fixed blocks occupy x[:p] in order
        out[j] = x[j]
    k = p
    for j in range(p):
        out[k + j] = x[I[oc + j]]
    if icol >= 0:
        s = 0.0
        for j in range(p):
            if j != icol:
                s += out[k + j] * F[fxm + j]
        out[k + icol] -= s
    k += p
    ot = I[_OT]
    for t in range(I[_NT]):
        k = term_expand(x, out, k, F, I, ot + _TW * t)
    if I[_SIG] >= 0:
        out[k] = math.exp(x[I[_SIG]])
        k += 1
    return k


# --------------------------------------------------------------------------- C entry points
@intrinsic
def _void_ptr(typingctx, src):
    """A void pointer from an integer address (as nutpie's compile_pymc does)."""
    sig = types.voidptr(src)

    def codegen(cgctx, builder, sig, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return sig, codegen


_LOGP_SIG = types.int64(types.uint64, types.CPointer(types.double), types.CPointer(types.double),
                        types.CPointer(types.double), types.voidptr)
_EXPAND_SIG = types.int64(types.uint64, types.uint64, types.CPointer(types.double),
                          types.CPointer(types.double), types.voidptr)


@numba.cfunc(_LOGP_SIG, cache=True)
def _c_logp(dim, x_, out_, logp_, user_data_):
    ud = numba.carray(user_data_, (4,), np.int64)
    F = numba.carray(_void_ptr(ud[0]), (ud[1],), np.float64)
    I = numba.carray(_void_ptr(ud[2]), (ud[3],), np.int64)
    if dim != I[_NDIM]:
        return -1
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    lp = logp_grad(x, out, F, I)
    logp_[0] = lp
    for j in range(dim):
        if not np.isfinite(out[j]):
            return 3
    if not np.isfinite(lp):
        return 4
    return 0


@numba.cfunc(_EXPAND_SIG, cache=True)
def _c_expand(dim, expanded, x_, out_, user_data_):
    ud = numba.carray(user_data_, (4,), np.int64)
    F = numba.carray(_void_ptr(ud[0]), (ud[1],), np.float64)
    I = numba.carray(_void_ptr(ud[2]), (ud[3],), np.int64)
    if dim != I[_NDIM] or expanded != I[_NEXP]:
        return -1
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (expanded,))
    expand(x, out, F, I)
    return 0


def compile_numba(density: GlmmDensity, coords: dict, dims: dict):
    """A nutpie model running :func:`logp_grad` / :func:`expand` as C callbacks (no GIL).

    Parameters
    ----------
    density : GlmmDensity
    coords, dims : dict
        Coordinates and dims of the posterior variables (from the PyMC model).
    """
    import pandas as pd
    from nutpie.compile_pymc import CompiledPyMCModel

    F, I = pack(density)
    user_data = np.array([F.ctypes.data, F.size, I.ctypes.data, I.size], dtype=np.int64)
    names, shapes, kept = expand_layout(density, dims)
    shape_info = (names, [None] * len(names), shapes)
    return CompiledPyMCModel(
        _n_dim=density.ndim,
        dims=kept,
        _coords={k: pd.Index(v) for k, v in coords.items()},
        _shapes=dict(zip(names, shapes)),
        compiled_logp_func=_c_logp,
        compiled_expand_func=_c_expand,
        initial_point_func=density.initial_point,
        shared_data={"F": F, "I": I},  # keeps the buffers that user_data points to alive
        user_data=user_data,
        n_expanded=int(I[_NEXP]),
        shape_info=shape_info,
        logp_func=None,
        expand_func=None,
    )

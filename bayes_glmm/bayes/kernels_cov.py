"""Random terms of the numba kernel (:mod:`bayes_glmm.bayes.kernels`): SDs, LKJ Cholesky
factors, effects and their gradients.

Split from kernels.py to keep modules short.  The formulas are those of
:class:`bayes_glmm.bayes.density.GlmmDensity` and :mod:`bayes_glmm.bayes.corr` (CPC -> Cholesky
factor of the correlation matrix, LKJ density with Jacobians), written as scalar loops
for numba; ``tests/test_bayes_contract.py`` checks both agree.

numba's ``cache=True`` does not notice edits here in the cached kernels of kernels.py
that call these functions (it keys on each function's own file): after editing this
module, touch kernels.py (or clear ``__pycache__``).

Term table: one row of :data:`TW` int64 per random term (slots ``T_*`` below).  Flat
float buffers are indexed by per-term offsets: effects ``b`` and their adjoints (``T_G0``,
size levels x q), SDs (``T_SD0``), and for correlated terms the q x q scratch of L, of
the row weights w and of L's adjoint (``T_M0``).
"""
from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["TW", "cpc_chol", "cpc_vjp", "terms_eta", "terms_grad", "term_expand"]

_LOG2 = math.log(2.0)

TW = 13
# scale start, q, levels, centered, variance prior, effects start, codes (I), Xr (F), b/gb offset,
# sd offset, CPC start in x (-1: uncorrelated), LKJ shapes + constant (F), q x q scratch offset
T_S0, T_Q, T_L, T_CEN, T_VAR, T_E0, T_CODES, T_XR, T_G0, T_SD0, T_Y0, T_FA, T_M0 = range(TW)


@numba.njit(nogil=True, cache=True)
def cpc_chol(x, y0, q, F, fa, Lm, w, m0):
    """Fill L (``Lm[m0:m0+q*q]``, row-major) and w from the CPCs ``x[y0:]``; return log p(y).

    corr.cpc_chol: LKJ(eta) density of L, Jacobians of y -> z -> L and the normalizer,
    ``const - 2 sum a log cosh y`` (shapes a at ``F[fa:]``, constant after them).
    """
    nc = q * (q - 1) // 2
    lp = F[fa + nc]
    k = 0
    for i in range(q):
        base = m0 + i * q
        for j in range(q):
            Lm[base + j] = 0.0
            w[base + j] = 0.0
        w[base] = 1.0
        for m in range(i):
            yk = x[y0 + k]
            ay = abs(yk)
            Lm[base + m] = math.tanh(yk) * w[base + m]
            w[base + m + 1] = w[base + m] / math.cosh(yk)
            lp -= 2.0 * F[fa + k] * (ay + math.log1p(math.exp(-2.0 * ay)) - _LOG2)
            k += 1
        Lm[base + i] = w[base + i]
    return lp


@numba.njit(nogil=True, cache=True)
def cpc_vjp(x, y0, q, F, fa, G, w, m0, grad):
    """grad[y0:] = d/dy of sum(G * L) + log p(y) (corr.cpc_chol_vjp)."""
    k0 = 0
    for i in range(1, q):
        base = m0 + i * q
        bw = G[base + i]
        for m in range(i - 1, -1, -1):
            k = k0 + m
            yk = x[y0 + k]
            z, s = math.tanh(yk), 1.0 / math.cosh(yk)
            wm = w[base + m]
            grad[y0 + k] = -2.0 * F[fa + k] * z + (G[base + m] * wm * s * s - bw * wm * z * s)
            bw = G[base + m] * z + bw * s
        k0 += i


@numba.njit(nogil=True, cache=True)
def terms_eta(x, F, I, ot, nt, n, eta, sd, bv, Lm, w):
    """Add Z b to eta; fill sd, b (bv), L; return the random-effect log-prior terms.

    (The SD priors themselves are in the kernel's prior table.)
    """
    lp = 0.0
    for t in range(nt):
        r = ot + TW * t
        s0, q, L, cen, isvar, e0 = I[r + T_S0], I[r + T_Q], I[r + T_L], I[r + T_CEN], I[r + T_VAR], I[r + T_E0]
        ocd, fxr, g0, sd0, y0, m0 = I[r + T_CODES], I[r + T_XR], I[r + T_G0], I[r + T_SD0], I[r + T_Y0], \
            I[r + T_M0]
        for k in range(q):
            v = math.exp(x[s0 + k])
            sd[sd0 + k] = math.sqrt(v) if isvar else v
            acc = 0.0
            for lv in range(L):
                e = x[e0 + lv * q + k]
                acc += e * e
            sdk = sd[sd0 + k]
            if cen:
                lp += -0.5 * acc / (sdk * sdk) - L * math.log(sdk)
            else:
                lp += -0.5 * acc
        if y0 >= 0:  # b_l = diag(sd) L u_l
            lp += cpc_chol(x, y0, q, F, I[r + T_FA], Lm, w, m0)
            for lv in range(L):
                for k in range(q):
                    s = 0.0
                    for m in range(k + 1):
                        s += sd[sd0 + k] * Lm[m0 + k * q + m] * x[e0 + lv * q + m]
                    bv[g0 + lv * q + k] = s
        else:
            for j in range(L * q):
                bv[g0 + j] = x[e0 + j] if cen else x[e0 + j] * sd[sd0 + j % q]
        for i in range(n):
            c = I[ocd + i]
            s = 0.0
            for k in range(q):
                s += F[fxr + i * q + k] * bv[g0 + c * q + k]
            eta[i] += s
    return lp


@numba.njit(nogil=True, cache=True)
def terms_grad(x, F, I, ot, nt, n, score, sd, Lm, w, G, grad):
    """Gradient of the effects, SDs and CPCs given d loglik / d eta (score)."""
    ngb = 0
    for t in range(nt):
        r = ot + TW * t
        ngb += I[r + T_L] * I[r + T_Q]
    gb = np.zeros(max(ngb, 1))
    for t in range(nt):
        r = ot + TW * t
        s0, q, L, cen, isvar, e0 = I[r + T_S0], I[r + T_Q], I[r + T_L], I[r + T_CEN], I[r + T_VAR], I[r + T_E0]
        ocd, fxr, g0, sd0, y0, m0 = I[r + T_CODES], I[r + T_XR], I[r + T_G0], I[r + T_SD0], I[r + T_Y0], \
            I[r + T_M0]
        for i in range(n):
            c = I[ocd + i]
            s = score[i]
            for k in range(q):
                gb[g0 + c * q + k] += F[fxr + i * q + k] * s
        if y0 >= 0:
            for lv in range(L):
                for m in range(q):
                    s = 0.0
                    for k in range(m, q):
                        s += gb[g0 + lv * q + k] * sd[sd0 + k] * Lm[m0 + k * q + m]
                    grad[e0 + lv * q + m] = s - x[e0 + lv * q + m]
            for k in range(q):
                dsd = 0.0
                for lv in range(L):
                    v = 0.0
                    for m in range(k + 1):
                        v += Lm[m0 + k * q + m] * x[e0 + lv * q + m]
                    dsd += gb[g0 + lv * q + k] * v
                grad[s0 + k] += math.exp(x[s0 + k]) * dsd
                for m in range(q):  # adjoint of L[k, m] = sd_k sum_l gb[l, k] u[l, m]
                    a = 0.0
                    if m <= k:
                        for lv in range(L):
                            a += gb[g0 + lv * q + k] * x[e0 + lv * q + m]
                    G[m0 + k * q + m] = sd[sd0 + k] * a
            cpc_vjp(x, y0, q, F, I[r + T_FA], G, w, m0, grad)
            continue
        for k in range(q):
            sdk = sd[sd0 + k]
            dsd = 0.0
            for lv in range(L):
                j = lv * q + k
                e, g = x[e0 + j], gb[g0 + j]
                if cen:
                    grad[e0 + j] = g - e / (sdk * sdk)
                    dsd += e * e
                else:
                    grad[e0 + j] = g * sdk - e
                    dsd += g * e
            if cen:
                dsd = dsd / (sdk * sdk * sdk) - L / sdk
            if isvar:
                dsd /= 2.0 * sdk
            grad[s0 + k] += math.exp(x[s0 + k]) * dsd


@numba.njit(nogil=True, cache=True)
def term_expand(x, out, k, F, I, r):
    """Write one term's posterior variables (GlmmDensity.expand order) at out[k:]; new k."""
    s0, q, L, cen, isvar, e0, y0 = I[r + T_S0], I[r + T_Q], I[r + T_L], I[r + T_CEN], I[r + T_VAR], \
        I[r + T_E0], I[r + T_Y0]
    if y0 >= 0:  # chol = packed lower triangle of diag(sd) L (PyMC's free variable)
        Lm, w = np.empty(q * q), np.empty(q * q)
        cpc_chol(x, y0, q, F, I[r + T_FA], Lm, w, 0)
        for i in range(q):
            for m in range(i + 1):
                out[k] = math.exp(x[s0 + i]) * Lm[i * q + m]
                k += 1
    if isvar:
        for c in range(q):
            out[k + c] = math.exp(x[s0 + c])
        k += q
    for c in range(q):
        v = math.exp(x[s0 + c])
        out[k + c] = math.sqrt(v) if isvar else v
    sdo = k
    k += q
    if y0 >= 0:  # corr = L L', u, b = u (diag(sd) L)'
        for i in range(q):
            for j in range(q):
                s = 0.0
                for m in range(min(i, j) + 1):
                    s += Lm[i * q + m] * Lm[j * q + m]
                out[k + i * q + j] = s
        k += q * q
        for j in range(L * q):
            out[k + j] = x[e0 + j]
        k += L * q
        for lv in range(L):
            for i in range(q):
                s = 0.0
                for m in range(i + 1):
                    s += x[e0 + lv * q + m] * out[sdo + i] * Lm[i * q + m]
                out[k + lv * q + i] = s
        return k + L * q
    if not cen:
        for j in range(L * q):
            out[k + j] = x[e0 + j]
        k += L * q
    for j in range(L * q):
        out[k + j] = x[e0 + j] if cen else x[e0 + j] * out[sdo + j % q]
    return k + L * q

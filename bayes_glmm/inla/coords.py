"""The coordinates of the approximate posterior and their log prior.

The hyperparameters ``psi`` are the samplers' unconstrained coordinates of the variance and
dispersion parameters (PyMC's, :mod:`bayes_glmm.bayes.density`): per random term the log-SDs
(its structure's free SDs) and the unconstrained correlation parameters ``y``
(``(tanh y + 1) / 2 ~ Beta(a, a)``: LKJ's CPC law for ``us``), then the log of each positive
auxiliary parameter of the family (sigma, theta, phi, shape; a real one as it is).  The inner
block ``w`` is the coefficients: ``beta``, then the zero-inflation and dispersion-model ones,
then each ordered chain of auxiliary parameters (an ordinal model's thresholds) in the samplers'
(and the ML path's) coordinates ``(tau_1, log(tau_2 - tau_1), ...)``: they are coefficients of
the linear predictor's cut points, well determined by the data, so they are integrated by the
nested Laplace step with the fixed effects rather than by quadrature.

The ML path works in ``x = (theta, beta, beta_zi, beta_disp, a)`` (lme4's theta,
:mod:`bayes_glmm.ml.laplace`); :meth:`Layout.to_ml` maps ``(psi, w)`` there.

The log prior is each prior kind's one log-density (:meth:`PriorKind.logp
<bayes_glmm.priors.kinds.PriorKind.logp>`, on dual numbers for its derivative) with the
Jacobians of the log transforms (and of the ordered chains' ``exp`` gaps), so the target is the
density ``sample()`` explores, up to a constant.  Coefficient priors are on the centred-predictor
scale as there: the intercept's prior is that of the linear predictor at the predictors' means.
"""
from __future__ import annotations

import numpy as np

from ..covariance.lkj import log_cosh
from ..ml.auxpar import ordered_values
from ..ops.dual import ND_OPS, deriv, seed, value
from ..priors import disp_key, get_kind, zi_key

__all__ = ["Layout", "prior_logp_grad", "in_ordered_chain"]


def in_ordered_chain(params, i: int) -> bool:
    """True when ``params[i]`` (a family's ``aux_params``) belongs to an ordered chain: it is
    ``"ordered"`` or the next one is (the first threshold of an ordinal model is real)."""
    return params[i].support == "ordered" or (i + 1 < len(params) and params[i + 1].support == "ordered")


class _Chain:
    """An ordered chain of auxiliary parameters in ``w``: coordinates ``(z_0, z_1, ...)``, values
    ``tau = cumsum(z_0, exp(z_1), ...)``, each value's prior its name's (as the samplers'
    ordered vector), the log Jacobian ``sum z_k, k >= 1``."""

    def __init__(self, names, priors, start):
        self.names = list(names)
        self.sl = slice(start, start + len(self.names))
        self.priors = [priors[nm] for nm in self.names]

    values = staticmethod(ordered_values)

    def logp_grad(self, w):
        z = np.asarray(w[self.sl], dtype=float)
        tau = self.values(z)
        lp, gt = float(np.sum(z[1:])), np.empty(z.size)
        for k, pr in enumerate(self.priors):
            l, g = prior_logp_grad(pr, tau[k:k + 1])
            lp += l
            gt[k] = g[0]
        # d tau_k / d z_0 = 1, d tau_k / d z_j = exp(z_j) for k >= j >= 1
        tail = np.cumsum(gt[::-1])[::-1]
        g = np.empty(z.size)
        g[0] = tail[0]
        g[1:] = tail[1:] * np.exp(z[1:]) + 1.0
        return lp, g


def prior_logp_grad(prior, x):
    """``(sum of log-densities, d/dx)`` of ``prior`` at ``x`` (vector; array parameters broadcast):
    the kind's one log-density on dual numbers."""
    x = np.atleast_1d(np.asarray(x, dtype=float))
    r = get_kind(prior.name).logp(seed(x, 0, 1), prior.args, ND_OPS)
    v = np.broadcast_to(np.asarray(value(r), dtype=float), x.shape)
    g = np.broadcast_to(np.asarray(deriv(r, 0, x), dtype=float), x.shape)
    return float(np.sum(v)), np.array(g, dtype=float)


def _pick(prior, idx, nsd):
    """A term's SD prior for its free SDs when they are shared (``ar1``): the per-coefficient
    parameters at the first coefficient of each SD (as the samplers do)."""
    idx = np.asarray(idx)
    if nsd == idx.size and np.array_equal(idx, np.arange(nsd)):
        return prior
    first = [int(np.flatnonzero(idx == k)[0]) for k in range(nsd)]

    def pick(v):
        a = np.asarray(v, dtype=float)
        return v if a.size == 1 else [float(a.reshape(-1)[j]) for j in first]
    return type(prior)(prior.name, **{k: pick(v) for k, v in prior.args.items()})


class _Coefs:
    """One block of coefficients (a design) with its priors on the centred scale."""

    def __init__(self, X, names, priors, key, start):
        names = list(names)
        X = np.asarray(X, dtype=float)
        self.sl = slice(start, start + len(names))
        self.icol = names.index("(Intercept)") if "(Intercept)" in names else None
        self.xm = np.zeros(len(names))
        slopes = [j for j in range(len(names)) if j != self.icol]
        if self.icol is not None and slopes:
            self.xm[slopes] = X[:, slopes].mean(axis=0)
        self.priors = [priors[key(nm)] for nm in names]

    def logp_grad(self, w):
        c = np.array(w[self.sl], dtype=float)
        if self.icol is not None:
            c[self.icol] += self.xm @ c  # xm[icol] = 0: the intercept at the predictors' means
        lp, gc = 0.0, np.empty(c.size)
        for j, pr in enumerate(self.priors):
            l, g = prior_logp_grad(pr, c[j:j + 1])
            lp += l
            gc[j] = g[0]
        g = gc.copy()
        if self.icol is not None:
            g += gc[self.icol] * self.xm  # d c_icol / d w_j = xm_j
        return lp, g


class Layout:
    """``psi`` and ``w`` of a model, their map to the ML coordinates and their log prior.

    Parameters
    ----------
    spec : ModelSpec
    priors : dict
        Resolved priors (:func:`bayes_glmm.priors.resolve_priors`), as ``sample()`` uses.

    Raises
    ------
    ValueError
        An auxiliary parameter whose support is none of positive, real, ordered.
    """

    def __init__(self, spec, priors):
        self.spec = spec
        fam = spec.family
        self.terms, pos = [], 0
        for t in spec.terms:
            k, q = t.ident, t.q
            nsd, nc = t.cov.n_sd(q), t.cov.n_corr(q)
            idx = np.asarray(t.cov.sd_index(q), dtype=np.intp)
            var = f"var_{k}" in priors
            pr = _pick(priors[f"var_{k}"] if var else priors[f"sd_{k}"], idx, nsd)
            a = const = None
            if nc:
                eta = float(priors[f"corr_{k}"].args.get("eta", 1.0)) if f"corr_{k}" in priors else 1.0
                a, const = t.cov.corr_prior_shapes(q, eta)
            self.terms.append((t, slice(pos, pos + nsd), slice(pos + nsd, pos + nsd + nc), idx, pr, var, a, const))
            pos += nsd + nc
        skip = 1 if spec.has_disp else 0
        params = fam.aux_params
        self.aux = []
        #: per auxiliary parameter after ``skip`` (the ML coordinates' order): ("psi", index) or
        #: ("w", offset into the chains' part of w)
        self.aux_src, chain_names = [], []
        for i in range(skip, len(params)):
            aux = params[i]
            if aux.support not in ("positive", "real", "ordered"):
                raise ValueError(f"fit_inla: the {aux.support} parameter {aux.name!r} of family {fam.name!r} "
                                 f"is not one the approximation integrates over; use GLMM.sample()")
            if in_ordered_chain(params, i):  # thresholds: in w, with the coefficients
                if aux.support != "ordered":
                    chain_names.append([])
                chain_names[-1].append(aux.name)
                self.aux_src.append(("w", sum(len(c) for c in chain_names) - 1))
                continue
            self.aux.append((aux, pos, priors[aux.name]))
            self.aux_src.append(("psi", pos))
            pos += 1
        self.m = pos
        self.blocks, wpos = [_Coefs(spec.X, spec.fixed_names, priors,
                                    lambda nm: "Intercept" if nm == "(Intercept)" else nm, 0)], spec.p
        if spec.has_zi:
            lab = spec.zi_label
            self.blocks.append(_Coefs(spec.X_zi, spec.zi_names, priors, lambda nm: zi_key(nm, lab), wpos))
            wpos += spec.p_zi
        if spec.has_disp:
            self.blocks.append(_Coefs(spec.X_disp, spec.disp_names, priors, disp_key, wpos))
            wpos += spec.p_disp
        #: the coefficients' part of w (the ML coordinates' own block); the chains follow it
        self.nw_coef = wpos
        self.chains = []
        for names in chain_names:
            self.chains.append(_Chain(names, priors, wpos))
            wpos += len(names)
        self.nw = wpos
        self.nt = sum(t.n_theta for t in spec.terms)

    # ------------------------------------------------------------------ maps
    def term_values(self, psi):
        """Per term ``(sd per coefficient (q,), Lambda (q, q), theta)``."""
        out = []
        for t, ssl, csl, idx, *_ in self.terms:
            sd = np.exp(np.asarray(psi[ssl], dtype=float))[idx]
            y = np.asarray(psi[csl], dtype=float)
            if t.q == 1 and not y.size:  # a scalar term: theta is its SD (the common, hot case)
                out.append((sd, sd.reshape(1, 1), sd))
                continue
            C = t.cov.corr_chol(y, t.q) if y.size else np.eye(t.q)
            L = sd[:, None] * C
            theta = t.cov.theta_from_lambda(L) if t.cov.linear else np.concatenate([np.exp(psi[ssl]), y])
            out.append((sd, L, theta))
        return out

    def theta(self, psi) -> np.ndarray:
        """lme4's theta (all terms) at ``psi``."""
        vals = self.term_values(psi)
        return np.concatenate([v[2] for v in vals]) if vals else np.zeros(0)

    def aux_coords(self, psi, w=None) -> np.ndarray:
        """The ML path's coordinates ``a`` of the auxiliary parameters (log of a positive one;
        an ordered chain's from ``w``), in the family's order."""
        wc = np.asarray(w, dtype=float)[self.nw_coef:] if w is not None else None
        return np.array([psi[i] if src == "psi" else wc[i] for src, i in self.aux_src], dtype=float)

    def to_ml(self, psi, w) -> np.ndarray:
        """``x = (theta, beta, beta_zi, beta_disp, a)`` of the ML deviance."""
        w = np.asarray(w, dtype=float)
        return np.concatenate([self.theta(psi), w[:self.nw_coef], self.aux_coords(psi, w)])

    def split_aux(self, a):
        """The ML coordinates ``a`` (family order) -> ``(psi's auxiliary part, w's chains' part)``."""
        a = np.asarray(a, dtype=float)
        hyper = [a[k] for k, (src, _) in enumerate(self.aux_src) if src == "psi"]
        chain = [a[k] for k, (src, _) in enumerate(self.aux_src) if src == "w"]
        return np.array(hyper, dtype=float), np.array(chain, dtype=float)

    def aux_gradient(self, ga, gpsi, gw) -> None:
        """Add the ML gradient in ``a`` (family order) to the gradients in ``psi`` and ``w`` (in place)."""
        for (src, i), gi in zip(self.aux_src, ga):
            if src == "psi":
                gpsi[i] += gi
            else:
                gw[self.nw_coef + i] += gi

    def theta_jacobian(self, psi, h: float = 1e-6) -> np.ndarray:
        """``d theta / d psi`` (nt, m) by central differences of the (cheap, smooth) map."""
        J = np.zeros((self.nt, self.m))
        for j in range(self.m):
            e = np.zeros(self.m)
            e[j] = h
            J[:, j] = (self.theta(psi + e) - self.theta(psi - e)) / (2 * h)
        return J

    # ------------------------------------------------------------------ priors
    def psi_logp_grad(self, psi):
        """Log prior of ``psi`` (Jacobians of the transforms included) and its gradient."""
        psi = np.asarray(psi, dtype=float)
        lp, g = 0.0, np.zeros(self.m)
        for t, ssl, csl, idx, pr, var, a, const in self.terms:
            ls = psi[ssl]
            s = np.exp(ls)
            if var:  # the prior on the variance s^2: d s^2 / d log s = 2 s^2
                l, gv = prior_logp_grad(pr, s * s)
                lp += l + float(np.sum(2.0 * ls + np.log(2.0)))
                g[ssl] = gv * 2.0 * s * s + 2.0
            else:
                l, gs = prior_logp_grad(pr, s)
                lp += l + float(np.sum(ls))
                g[ssl] = gs * s + 1.0
            if a is not None:
                y = psi[csl]
                lp += const - 2.0 * float(np.sum(a * log_cosh(y)))
                g[csl] = -2.0 * a * np.tanh(y)
        for aux, i, pr in self.aux:
            if aux.support == "positive":
                l, gv = prior_logp_grad(pr, np.exp(psi[i:i + 1]))
                lp += l + float(psi[i])
                g[i] = gv[0] * np.exp(psi[i]) + 1.0
            else:
                l, gv = prior_logp_grad(pr, psi[i:i + 1])
                lp += l
                g[i] = gv[0]
        return lp, g

    def w_logp_grad(self, w):
        """Log prior of the coefficients ``w`` and its gradient."""
        lp, g = 0.0, np.zeros(self.nw)
        for blk in self.blocks + self.chains:
            l, gb = blk.logp_grad(w)
            lp += l
            g[blk.sl] = gb
        return lp, g

    def chain_values(self, W) -> dict:
        """``{name: draws}`` of the ordered chains' values from draws of ``w`` (S, nw)."""
        out = {}
        for ch in self.chains:
            tau = ch.values(np.asarray(W, dtype=float)[:, ch.sl])
            out.update({nm: tau[:, k] for k, nm in enumerate(ch.names)})
        return out

    def start_psi(self, theta, aux) -> np.ndarray:
        """``psi`` from an ML fit's theta and hyper auxiliary coordinates (SDs floored at 1e-3:
        the log scale has no boundary)."""
        out = np.zeros(self.m)
        pos = 0
        for (t, ssl, csl, idx, *_), in zip(self.terms):
            th = np.asarray(theta[pos:pos + t.n_theta], dtype=float)
            pos += t.n_theta
            L = t.cov.lambda_(th, t.q)
            S = L @ L.T
            sd_all = np.sqrt(np.clip(np.diag(S), 1e-6, None))
            nsd = ssl.stop - ssl.start
            out[ssl] = np.log([np.sqrt(np.mean(sd_all[idx == k] ** 2)) for k in range(nsd)])
            if csl.stop > csl.start:
                R = S / np.outer(sd_all, sd_all)
                np.fill_diagonal(R, 1.0)
                out[csl] = np.clip(t.cov.y_from_corr(R), -3.0, 3.0)
        for (aux, i, _), a in zip(self.aux, np.asarray(aux, dtype=float)):
            out[i] = a
        return out

    def names(self) -> list:
        """Labels of the ``psi`` coordinates (for messages)."""
        out = []
        for t, ssl, csl, *_ in self.terms:
            out += [f"log_sd_{t.ident}[{j}]" for j in range(ssl.stop - ssl.start)]
            out += [f"cpc_{t.ident}[{j}]" for j in range(csl.stop - csl.start)]
        return out + [f"log_{aux.name}" if aux.support == "positive" else aux.name for aux, _, _ in self.aux]

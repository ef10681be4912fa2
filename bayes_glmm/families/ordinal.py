"""Ordinal (cumulative-link) responses: ordered categories 1 < 2 < ... < K, as ``ordinal::clmm``.

The model is a latent variable cut at thresholds:

    P(Y <= k | eta) = F(tau_k - eta),   k = 1 .. K - 1,   tau_1 < tau_2 < ... < tau_{K-1},

F the inverse link (logistic: proportional odds; standard normal: probit; cloglog).  eta holds
no intercept (the thresholds take its place: the model spec drops X's intercept column, as clmm
and brms do), so a positive coefficient moves the response towards the higher categories.

The thresholds are the family's auxiliary parameters, one per cut point, named as clmm prints
them (``"1|2"``, ``"2|3"``, ... from the category labels): their number comes from the data, so
the family fitted to a response is made by :meth:`Ordinal.for_response` (the registry's
instance has none).  The first is real, each later one ``"ordered"`` (above the previous one):
both paths estimate ``tau_1`` and ``log(tau_k - tau_{k-1})``.

The response is coded 0 .. K-1 in the model spec.  Each row's log-density needs its two
bounding thresholds ``tau[y]`` and ``tau[y - 1]``: they are gathered with one-hot weights
``eq(y, k)`` (data), so the one definition :meth:`Ordinal._loglik` evaluates on every ``ops``
namespace (NumPy, dual numbers, C, PyTensor); the first and last categories (one bound at
-+infinity) are handled by masks, with a finite stand-in bound that the masks then drop.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..ops.numpy_ops import NUMPY_OPS
from .base import AuxParam, Family

__all__ = ["Ordinal", "THRESHOLD_PRIOR"]

#: default prior of each threshold: brms's student_t(3, 0, 2.5) for the cumulative family
THRESHOLD_PRIOR = ("StudentT", {"nu": 3.0, "mu": 0.0, "sigma": 2.5})
_PRIOR_DOC = ("StudentT(3, 0, 2.5) on each threshold, as brms's default for the cumulative family: "
              "weakly informative on the link scale (tau = 5 is P(Y <= k) = 0.993 on the logit scale), "
              "with the ordering constraint")
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)

#: the class-level (documentation) entry: a fitted model has one threshold per cut point
_THRESHOLDS_DOC = AuxParam(
    "thresholds", "thresholds tau_1 < ... < tau_{K-1}, one per cut point, named as clmm (1 and 2: \"1|2\")",
    default_prior=lambda sc: THRESHOLD_PRIOR, start=lambda m, v: 0.0, support="real",
    bounds=(-np.inf, np.inf), start_range=(-np.inf, np.inf), prior_doc=_PRIOR_DOC,
    r_note="clmm's threshold coefficients")


def _label(v) -> str:
    """A category as R prints a factor level (2.0 -> "2")."""
    if isinstance(v, (bool, np.bool_)):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


class _PerModel:
    """``aux_params``: the thresholds of the fitted categories on an instance; the
    documentation entry on the class and on the registry's instance (before the response is seen)."""

    def __get__(self, obj, owner):
        return (_THRESHOLDS_DOC,) if obj is None or obj.categories is None else obj._thresholds


def _all_scalar(taus) -> bool:
    """True when every threshold is a scalar (the ML path; Python floats tested first, as this
    runs at every PIRLS step)."""
    return all(isinstance(t, float) or np.ndim(t) == 0 for t in taus)


def _per_point(taus, y) -> tuple | None:
    """The common shape ``(P, 1, ...)`` of thresholds given per point of a batch against y's
    axes (:mod:`bayes_glmm.ml.batch_scalar`: each (P, 1) against y (n,), (P, 1, 1) against AGQ's
    (n, 1)), or None."""
    shape = np.shape(taus[0]) if len(taus) else None
    if shape is None or len(shape) != 1 + np.ndim(y) or any(k != 1 for k in shape[1:]) \
            or any(np.shape(t) != shape for t in taus):
        return None
    return shape


def _ratio_derivs(ra, rb, ga, gb):
    """``(d ra/da, d ra/db, d rb/da, d rb/db)`` of the density ratios ``ra = f(a) / P``,
    ``rb = f(b) / P`` (``P = F(a) - F(b)``, ``g = f'/f`` at each bound; 0 at a missing bound):
    ``ra (ga - ra)``, ``ra rb``, ``-ra rb``, ``rb (gb + rb)``.  The log-density's second
    derivatives in the bounds are ``l_aa = d ra/da``, ``l_ab = d ra/db``, ``l_bb = -d rb/db``."""
    return ra * (ga - ra), ra * rb, -ra * rb, rb * (gb + rb)


def _stack_key(taus, y):
    """The thresholds' key of the stacked row pieces (:meth:`Ordinal._bound_table`): a tuple of
    floats for scalar thresholds (the ML path), ``(shape, bytes)`` for thresholds per point of a
    batch (:func:`_per_point`), None for any other shape (the general one-hot form)."""
    if _all_scalar(taus):
        return tuple(float(t) for t in taus)
    shape = _per_point(taus, y)
    if shape is None:
        return None
    return shape, np.stack([np.reshape(np.asarray(t, dtype=float), shape[0]) for t in taus], axis=1).tobytes()


def _threshold(k: int, labels, start: float) -> AuxParam:
    return AuxParam(
        f"{labels[k]}|{labels[k + 1]}", f"threshold between categories {labels[k]} and {labels[k + 1]}",
        default_prior=lambda sc: THRESHOLD_PRIOR, start=lambda m, v: start,
        support="real" if k == 0 else "ordered", bounds=(-np.inf, np.inf), start_range=(-np.inf, np.inf),
        prior_doc=_PRIOR_DOC, r_note="clmm's threshold coefficient")


class Ordinal(Family):
    """Cumulative-link model for an ordered categorical response (clmm's ``threshold = "flexible"``).

    Parameters
    ----------
    link : str, optional
        ``"logit"`` (default, proportional odds), ``"probit"`` or ``"cloglog"``.
    categories : sequence of str, optional
        The category labels in order (set by :meth:`for_response`).
    starts : sequence of float, optional
        ML starting thresholds (the link of the cumulative proportions).
    """

    name = "ordinal"
    links = ("logit", "probit", "cloglog")
    aliases = ("cumulative", "clmm", "ordered", "ordered_logistic", "ordinal_logistic", "polr")
    r_name = "cumulative"
    categorical_response = True
    drops_intercept = True
    aux_table_title = "Threshold coefficients:"
    aux_params = _PerModel()
    aux_vector_name = "thresholds"
    # (the thresholds as (P, 1) arrays take the one-hot bounds of _bounds: every row function
    # broadcasts over the points)
    aux_rows_broadcast = True
    variance_formula = "P(Y <= k) = F(tau_k - eta)"
    response_doc = "ordered categories 1 < ... < K (K ≥ 3)"
    variance_doc = "—"

    __slots__ = ("categories", "_thresholds", "_memo", "_table")

    def __init__(self, link=None, categories=None, starts=None):
        super().__init__(link)
        cats = None if categories is None else tuple(str(c) for c in categories)
        object.__setattr__(self, "categories", cats)
        if cats is None:
            thr = ()
        else:
            st = np.arange(len(cats) - 1, dtype=float) - 0.5 * (len(cats) - 2) if starts is None else starts
            thr = tuple(_threshold(k, cats, float(st[k])) for k in range(len(cats) - 1))
        object.__setattr__(self, "_thresholds", thr)
        object.__setattr__(self, "_memo", None)
        object.__setattr__(self, "_table", None)

    def __eq__(self, other):
        return isinstance(other, Ordinal) and (self.link, self.categories) == (other.link, other.categories)

    def __hash__(self):
        return hash((self.name, self.link, self.categories))

    def __repr__(self):
        return f"Ordinal(link={self.link.name!r}, categories={self.categories!r})"

    def __reduce__(self):
        return (type(self), (self.link, self.categories, [a.start(0.0, 0.0) for a in self._thresholds]))

    @property
    def n_categories(self) -> int:
        """K, the number of categories (0 before :meth:`for_response`)."""
        return 0 if self.categories is None else len(self.categories)

    # --- the response ---------------------------------------------------------------------
    def for_response(self, raw, label: str):
        """``(codes 0 .. K-1 as floats, the family with the response's categories)``.

        An ordered pandas Categorical gives its categories in order; numbers (integer codes,
        any sorted numeric scale) their sorted distinct values.  Text, an unordered
        Categorical of text, fewer than three categories or a category never observed raise
        ValueError naming the column and the fix.  ``raw`` is read, never modified.
        """
        s = raw if isinstance(raw, pd.Series) else pd.Series(np.asarray(raw))
        fix = (f"make it an ordered Categorical with the categories from lowest to highest, e.g. "
               f"data[{label!r}] = pd.Categorical(data[{label!r}], categories=[...], ordered=True)")
        if pd.api.types.is_bool_dtype(s):
            raise ValueError(f"ordinal response {label!r} is boolean: two categories; use family='bernoulli'")
        if isinstance(s.dtype, pd.CategoricalDtype):
            cats = s.cat.categories
            if not s.cat.ordered and not pd.api.types.is_numeric_dtype(cats):
                raise ValueError(f"ordinal response {label!r} is an unordered Categorical, so the order of its "
                                 f"categories {list(cats)[:6]} is not given; {fix}")
            codes = s.cat.codes.to_numpy(dtype=np.int64)
            levels = [_label(c) for c in cats]
        elif pd.api.types.is_numeric_dtype(s):
            vals = s.to_numpy(dtype=float)
            if not np.all(np.isfinite(vals)):
                raise ValueError(f"ordinal response {label!r} has non-finite values; remove them")
            uniq = np.unique(vals)
            codes = np.searchsorted(uniq, vals).astype(np.int64)
            levels = [_label(v) for v in uniq]
        else:
            raise ValueError(f"ordinal response {label!r} holds text (dtype {s.dtype}), whose order is not "
                             f"known; {fix}")
        K = len(levels)
        if K < 3:
            hint = "use family='bernoulli'" if K == 2 else "a constant response has nothing to model"
            raise ValueError(f"ordinal response {label!r} has {K} categor{'y' if K == 1 else 'ies'} "
                             f"({levels}); an ordinal model needs at least 3: {hint}")
        counts = np.bincount(codes, minlength=K)
        empty = [levels[k] for k in range(K) if counts[k] == 0]
        if empty:
            raise ValueError(f"ordinal response {label!r}: categor{'y' if len(empty) == 1 else 'ies'} {empty} "
                             f"never observed, so their thresholds are not identified; drop them, e.g. "
                             f"data[{label!r}] = data[{label!r}].cat.remove_unused_categories(), or merge "
                             f"them with a neighbour")
        cum = np.clip(np.cumsum(counts)[:-1] / counts.sum(), 1e-6, 1.0 - 1e-6)
        starts = self.link.link(cum)
        return codes.astype(float), Ordinal(self.link, levels, starts)

    def _check_response(self, y, trials, name):
        K = self.n_categories
        if K and not (np.all(y == np.round(y)) and y.min() >= 0 and y.max() <= K - 1):
            raise ValueError(f"ordinal response {name!r} must be category codes 0 .. {K - 1}")

    # --- the log-density (written once against ops) ------------------------------------------
    def _bounds(self, y, ops, taus):
        """(first, last, hi, lo): masks of the first and last categories and each row's upper
        and lower thresholds tau[y], tau[y - 1], the missing one replaced by the other -+ 1."""
        K = len(taus) + 1
        first, last = ops.eq(y, 0.0) * 1.0, ops.eq(y, float(K - 1)) * 1.0
        hi0, lo0 = 0.0, 0.0
        for k, t in enumerate(taus):
            hi0 = hi0 + t * ops.eq(y, float(k))
            lo0 = lo0 + t * ops.eq(y, float(k + 1))
        return first, last, hi0 + last * (lo0 + 1.0), lo0 + first * (hi0 - 1.0)

    def _np_bounds(self, y, taus):
        """:meth:`_bounds` on NumPy by gathering from the table of thresholds (scalar ones: the ML
        path's hot loop), the same values as the one-hot form."""
        yi = np.asarray(y).astype(np.intp)
        if not _all_scalar(taus):
            shape = _per_point(taus, y)
            if shape is None:
                return self._bounds(y, NUMPY_OPS, taus)
            # thresholds per point of a batch, each (P, 1, ...) against y's rows: gather each
            # point's row of the table (P, K + 1), the same values as the one-hot form
            t = np.stack([np.reshape(np.asarray(v, dtype=float), (shape[0],)) for v in taus], axis=1)
            first, last = (yi == 0) * 1.0, (yi == t.shape[1]) * 1.0
            return (first, last, np.concatenate((t, t[:, -1:] + 1.0), axis=1)[:, yi],
                    np.concatenate((t[:, :1] - 1.0, t), axis=1)[:, yi])
        t = np.asarray(taus, dtype=float)
        first, last = (yi == 0) * 1.0, (yi == t.size) * 1.0
        # (np.concatenate, not np.append / np.insert: this runs a few times per PIRLS step)
        return (first, last, np.concatenate((t, t[-1:] + 1.0))[yi],
                np.concatenate((t[:1] - 1.0, t))[yi])

    def _taus(self, aux):
        return [aux[a.name] for a in self.aux_params]

    def _loglik(self, y, eta, ops, *, trials=None, **aux):
        taus = self._taus(aux)
        return self._loglik_at(*self._bounds(y, ops, taus), eta, ops)

    def _loglik_eta(self, y, eta, **aux):
        return self._loglik_at(*self._np_bounds(y, self._taus(aux)), eta, NUMPY_OPS)

    def _loglik_at(self, first, last, hi, lo, eta, ops):
        """The log-density from the row's masks and bounding thresholds (:meth:`_bounds`)."""
        lpa, lqa = self.link.log_p_and_log_q(hi - eta, ops)
        lpb, lqb = self.link.log_p_and_log_q(lo - eta, ops)
        return self._loglik_logs(first, last, lpa, lqa, lpb, lqb, ops)

    def _loglik_logs(self, first, last, lpa, lqa, lpb, lqb, ops):
        """:meth:`_loglik_at` from the link's log pairs at the two bounds."""
        # F(a) - F(b) = F(a) Q(b) - Q(a) F(b) = F(a) Q(b) (1 - Q(a) F(b) / (F(a) Q(b))): each factor
        # from the link's stable log pair, so neither tail cancels (logit: the ratio is e^(b - a))
        mid = 1.0 - first - last
        return (1.0 - last) * lpa + (1.0 - first) * lqb + mid * ops.log1mexp((lqa - lqb) + (lpb - lpa))

    # --- derivatives in eta (NumPy, by hand) -----------------------------------------------
    def _log_f_and_score(self, x):
        """(log f(x), f'(x) / f(x)) of the latent density f = F'."""
        if self.link.name == "logit":
            lp, lq = self.link.log_p_and_log_q(x)
            return lp + lq, -np.tanh(0.5 * x)
        if self.link.name == "probit":
            return -0.5 * x * x - _LOG_SQRT_2PI, -x
        xc = np.minimum(x, 700.0)  # cloglog: f = exp(x - e^x)
        return xc - np.exp(xc), 1.0 - np.exp(xc)

    def _np_rows(self, y, eta, taus):
        """NumPy pieces of each row shared by the derivatives: the end-category masks (bool),
        the bounds ``a = tau[y] - eta`` and ``b = tau[y - 1] - eta``, the log-density and
        ``(log f, f'/f)`` at a and b.  One ``log_p_and_log_q`` per bound serves both the
        log-density and the logistic ``log f = log F + log(1 - F)`` (the same values as
        :meth:`_log_f_and_score`, half the transcendental calls of the small-data hot loop)."""
        if _all_scalar(taus):
            first, last, x2, ll, lf, g, _ = self._stacked_rows(y, eta, taus)
            if np.shape(first) != np.shape(ll):  # (AGQ's nodes: rows x nodes)
                first, last = np.broadcast_to(first, np.shape(ll)), np.broadcast_to(last, np.shape(ll))
            return first, last, x2[0], x2[1], ll, lf[0], g[0], lf[1], g[1]
        first, last, hi, lo = self._np_bounds(y, taus)
        xa, xb = hi - eta, lo - eta
        lpa, lqa = self.link.log_p_and_log_q(xa)
        lpb, lqb = self.link.log_p_and_log_q(xb)
        ll = self._loglik_logs(first, last, lpa, lqa, lpb, lqb, NUMPY_OPS)
        if self.link.name == "logit":
            lfa, ga, lfb, gb = lpa + lqa, -np.tanh(0.5 * xa), lpb + lqb, -np.tanh(0.5 * xb)
        else:
            (lfa, ga), (lfb, gb) = self._log_f_and_score(xa), self._log_f_and_score(xb)
        if np.shape(first) != np.shape(ll):  # (AGQ's nodes: rows x nodes)
            first, last = np.broadcast_to(first, np.shape(ll)), np.broadcast_to(last, np.shape(ll))
        return first > 0, last > 0, xa, xb, ll, lfa, ga, lfb, gb

    def _bound_table(self, y, taus, key=None):
        """``(masks, bounds, wa, wb, mid, first, last, gap, up, dn)``: :meth:`_np_bounds` for
        scalar thresholds, kept for the last ``(y, taus)`` (one entry per shape of y).  ``masks``
        stacks (last, first) as bool, ``bounds`` (hi, lo) on a leading axis of 2; ``wa, wb, mid``
        are the weights ``1 - last``, ``1 - first`` and ``1 - first - last`` of
        :meth:`_loglik_logs`, ``first`` and ``last`` the masks as bool; ``gap`` the logistic's
        ``log(1 - e^(lo - hi))`` (None for the other links); ``up`` and ``dn`` (rows, K - 1) mark
        each row's upper (threshold y) and lower (threshold y - 1) bound.  ``key`` is the
        thresholds as a tuple of floats, when the caller has it.

        The thresholds are fixed during a PIRLS run (and its gradient), so the gathers and
        masks are computed once per run instead of at each of its 3-6 row evaluations (a
        fifth of a 72-row evaluation).  One tuple, replaced whole (thread-safe as ``_memo``).
        """
        key, shape = _stack_key(taus, y) if key is None else key, np.shape(y)
        tables = self._table or {}
        m = tables.get(shape)  # (one per shape of y: PIRLS's rows, AGQ's (n, 1) column)
        if m is not None and m[1] == key and (m[0] is y or np.array_equal(m[0], y)):
            return m[2]
        first, last, hi, lo = self._np_bounds(y, taus)
        wa, wb = 1.0 - last, 1.0 - first
        gap = None
        if self.link.name == "logit":
            # logistic: (log Q(a) - log Q(b)) + (log F(b) - log F(a)) = b - a = lo - hi whatever
            # eta, so the log1mexp term of the log-density is a constant of the thresholds
            with np.errstate(divide="ignore", invalid="ignore"):
                gap = NUMPY_OPS.log1mexp(lo - hi)
        # each row's upper bound is threshold y (column y), its lower one threshold y - 1
        k = np.arange(len(taus))
        yi = np.asarray(y).astype(np.intp)[..., None]
        masks = np.stack((last > 0, first > 0))
        # thresholds per point: the bounds have a leading axis of points that y's masks lack
        masks = masks.reshape((2,) + (1,) * (np.ndim(hi) - np.ndim(first)) + np.shape(first))
        value = (masks, np.stack((hi, lo)), wa, wb, wb - last, first > 0, last > 0, gap, yi == k, yi == k + 1)
        if np.size(y) <= self._MEMO_SIZE:
            object.__setattr__(self, "_table", {**tables, shape: (y, key, value)})
        return value

    def _stacked_rows(self, y, eta, taus, key=None):
        """:meth:`_np_rows` for scalar thresholds with the two bounds stacked on a leading axis
        of 2 (one ufunc call per operation for both bounds: the small-data hot loop is the
        number of calls, not their length): ``(first, last, x, ll, log f, f'/f, masks)``,
        ``x``, ``log f`` and ``f'/f`` of shape ``(2,) + ll.shape`` (a, then b), ``masks`` of
        :meth:`_bound_table`, ``first`` and ``last`` of y's shape (not broadcast to eta's).
        The same values as :meth:`_np_rows`' general form."""
        masks, bounds, wa, wb, mid, first, last, gap, _, _ = self._bound_table(y, taus, key)
        x2 = bounds - eta
        lp, lq = self.link.log_p_and_log_q(x2)
        # _loglik_logs with its mask weights precomputed (and the logistic's constant gap term)
        if gap is None:
            gap = NUMPY_OPS.log1mexp((lq[0] - lq[1]) + (lp[1] - lp[0]))
        ll = wa * lp[0] + wb * lq[1] + mid * gap
        if self.link.name == "logit":
            lf, g = lp + lq, -np.tanh(0.5 * x2)
        else:
            lf, g = self._log_f_and_score(x2)
        return first, last, x2, ll, lf, g, masks

    def _ratios(self, y, eta, taus, key=None):
        """``(rows, R)``: :meth:`_stacked_rows` and ``R = (f(a) / P, f(b) / P)`` stacked, 0 at
        the missing bound of the end categories (a = +inf, b = -inf)."""
        rows = self._stacked_rows(y, eta, taus, key)
        masks = rows[6]
        with np.errstate(over="ignore", invalid="ignore"):
            R = np.where(masks, 0.0, np.exp(np.where(masks, 0.0, rows[4] - rows[3])))
        return rows, R

    #: eta's size (rows, or rows x AGQ nodes) up to which :meth:`_row_derivs` keeps its last
    #: result for :meth:`aux_eta_derivs` and :meth:`aux_loglik_derivs` (a few MB at most)
    _MEMO_SIZE = 50_000

    def _remember(self, y, eta, taus, value, key=None) -> None:
        """Keep the row pieces of the last :meth:`_row_derivs` call (small data only).

        PIRLS's last call is at the conditional mode, where the Laplace gradient then asks
        :meth:`aux_eta_derivs` for the same rows (AGQ: the score at the nodes, then
        :meth:`aux_loglik_derivs` there): recomputing them was a fifth of a 72-row gradient
        evaluation.  The entry keeps a copy of eta and is only used for the same eta object
        with unchanged values, an equal y and the same thresholds; one tuple, replaced whole
        (a reader in another thread sees an old or a new entry, never a mix).
        """
        key = _stack_key(taus, y) if key is None else key
        if np.size(eta) <= self._MEMO_SIZE and key is not None:
            object.__setattr__(self, "_memo", (y, eta, eta.copy(), key, value))

    def _recall(self, y, eta, taus, key=None):
        """:meth:`_remember`'s value for these arguments (``key``: their :func:`_stack_key`), or None."""
        m = self._memo
        if (m is None or m[1] is not eta or m[3] != (_stack_key(taus, y) if key is None else key)
                or not np.array_equal(m[2], eta) or not (m[0] is y or np.array_equal(m[0], y))):
            return None
        return m[4]

    def _row_derivs(self, y, eta, taus):
        """(ll, d1, -d2) of each row's log-density in eta."""
        key = _stack_key(taus, y)
        if key is not None:
            rows, R = self._ratios(y, eta, taus, key)
            self._remember(y, eta, taus, (rows, R), key)
            d1 = R[1] - R[0]  # dP/deta = f(b) - f(a)
            RG = np.where(rows[6], 0.0, R * rows[5])
            return rows[3], d1, -(RG[0] - RG[1]) + d1 * d1
        rows = self._np_rows(y, eta, taus)
        first, last, _, _, ll, lfa, ga, lfb, gb = rows
        with np.errstate(over="ignore", invalid="ignore"):
            ra = np.where(last, 0.0, np.exp(np.where(last, 0.0, lfa - ll)))  # f(a) / P (0: a = +inf)
            rb = np.where(first, 0.0, np.exp(np.where(first, 0.0, lfb - ll)))  # f(b) / P (0: b = -inf)
        d1 = rb - ra  # dP/deta = f(b) - f(a)
        w = -(np.where(last, 0.0, ra * ga) - np.where(first, 0.0, rb * gb)) + d1 * d1
        return ll, d1, w

    def _eta_score_weight(self, y, eta, *, trials=None, **aux):
        return self._row_derivs(y, eta, self._taus(aux))[1:]

    def _loglik_eta_score_weight(self, y, eta, **aux):
        # _row_derivs computes the log-density on the way (the same values as _loglik_eta)
        return self._row_derivs(y, eta, self._taus(aux))

    def _eta_derivs(self, y, eta, *, trials=None, **aux):
        taus = self._taus(aux)
        _, d1, w = self._row_derivs(y, eta, taus)
        # the expected information sum_c P_c (d log P_c / d eta)^2 = sum_c (f_{c-1} - f_c)^2 / P_c,
        # f_c = f(tau_c - eta) (0 beyond the ends), P_c = F_c - F_{c-1}; a category of probability
        # below 1e-300 adds nothing
        eta = np.asarray(eta, dtype=float)
        if _all_scalar(taus):
            # all cut points at once (one ufunc call each on an (..., K - 1) array instead of a
            # Python loop over the categories: the same values, summed over the last axis)
            x = np.asarray(taus, dtype=float) - eta[..., None]
            f, F = np.exp(self._log_f_and_score(x)[0]), self.link.inverse(x)
            z = np.zeros(x.shape[:-1] + (1,))
            P = np.diff(np.concatenate((z, F, z + 1.0), axis=-1), axis=-1)
            df = -np.diff(np.concatenate((z, f, z), axis=-1), axis=-1)  # f_{c-1} - f_c
            with np.errstate(divide="ignore", invalid="ignore"):
                fisher = np.sum(np.where(P > 1e-300, df * df / np.maximum(P, 1e-300), 0.0), axis=-1)
            shape = np.broadcast(y, eta).shape
            return d1, w, (fisher if fisher.shape == shape else np.broadcast_to(fisher, shape).copy())
        f_prev, F_prev = 0.0, 0.0
        fisher = np.zeros(np.broadcast(y, eta).shape)
        for c in range(self.n_categories):
            if c < self.n_categories - 1:
                x = taus[c] - eta
                f_c, F_c = np.exp(self._log_f_and_score(x)[0]), self.link.inverse(x)
            else:
                f_c, F_c = 0.0, 1.0
            P = F_c - F_prev
            with np.errstate(divide="ignore", invalid="ignore"):
                fisher = fisher + np.where(P > 1e-300, (f_prev - f_c) ** 2 / np.maximum(P, 1e-300), 0.0)
            f_prev, F_prev = f_c, F_c
        return d1, w, fisher

    def _score_deriv(self, x):
        """g'(x) of the latent density's score g = f'/f (the third derivative the gradient of
        the Laplace weights in the thresholds needs)."""
        if self.link.name == "logit":
            t = np.tanh(0.5 * x)
            return -0.5 * (1.0 - t * t)
        if self.link.name == "probit":
            return np.full(np.shape(x), -1.0)
        return -np.exp(np.minimum(x, 700.0))

    def aux_eta_derivs(self, y, eta, *, trials=None, **aux):
        """The Laplace gradient's row derivatives in the thresholds, in closed form.

        Replaces 2 (K - 1) + 2 finite-difference evaluations of :meth:`eta_derivs` per
        gradient (the fixed cost that dominated small fits).  With ``a = tau[y] - eta``,
        ``b = tau[y - 1] - eta``, ``P = F(a) - F(b)``, ``ra = f(a) / P``, ``rb = f(b) / P`` and
        the score ``g = f'/f``: ``l_a = ra``, ``l_b = -rb``, ``r = rb - ra``,
        ``W = rb gb - ra ga + r^2``; their a- and b-derivatives follow from
        ``d ra/da = ra (ga - ra)``, ``d ra/db = ra rb``, ``d rb/da = -ra rb``,
        ``d rb/db = rb (gb + rb)``; eta moves a and b together (``d/deta = -(d/da + d/db)``).
        A row's upper bound is threshold ``y``, its lower one ``y - 1`` (none beyond the ends).
        """
        aux = self.aux_values(aux)
        taus = self._taus(aux)
        y = np.asarray(y, dtype=float)
        eta = np.asarray(eta, dtype=float)
        key = _stack_key(taus, y)
        if key is not None:
            # PIRLS's last rows, at this eta (else computed), the two bounds stacked
            rows, R = self._recall(y, eta, taus, key) or self._ratios(y, eta, taus, key)
            masks, x2 = rows[6], rows[2]
            # the missing bound of the end categories: every term it enters is 0
            (ga, gb), (ha, hb) = np.where(masks, 0.0, rows[5]), np.where(masks, 0.0, self._score_deriv(x2))
            ra, rb = R
        else:
            first, last, xa, xb, ll, lfa, ga, lfb, gb = self._np_rows(y, eta, taus)
            with np.errstate(over="ignore", invalid="ignore"):
                ra = np.where(last, 0.0, np.exp(np.where(last, 0.0, lfa - ll)))
                rb = np.where(first, 0.0, np.exp(np.where(first, 0.0, lfb - ll)))
            ga, ha = np.where(last, 0.0, ga), np.where(last, 0.0, self._score_deriv(xa))
            gb, hb = np.where(first, 0.0, gb), np.where(first, 0.0, self._score_deriv(xb))
        r = rb - ra
        ra_a, ra_b, rb_a, rb_b = _ratio_derivs(ra, rb, ga, gb)
        r_a, r_b = rb_a - ra_a, rb_b - ra_b
        W_a = -(ra_a * ga + ra * ha) + rb_a * gb + 2.0 * r * r_a
        W_b = -ra_b * ga + rb_b * gb + rb * hb + 2.0 * r * r_b
        # each row's upper bound is threshold y (column y), its lower one threshold y - 1; a
        # masked select, not a scatter (np.where keeps an overflowed entry out of the others),
        # the three arrays at once
        if key is not None:
            up, dn = self._bound_table(y, taus, key)[8:]
        else:
            k = np.arange(len(taus))
            yi = y.astype(np.intp)[:, None]
            up, dn = yi == k, yi == k + 1
        l_v, r_v, W_v = (np.where(up, np.stack((ra, r_a, W_a))[..., None], 0.0)
                         + np.where(dn, np.stack((-rb, r_b, W_b))[..., None], 0.0))
        return -(W_a + W_b), l_v, r_v, W_v

    def aux_loglik_derivs(self, y, eta, **aux):
        """``d l / d tau_k`` for each threshold at any shape of ``eta`` (AGQ's rows x nodes):
        ``f(a) / P`` where tau_k is the row's upper bound (k = y), ``-f(b) / P`` where it is the
        lower one (k = y - 1), 0 elsewhere (the ``l_a``, ``l_b`` of :meth:`aux_eta_derivs`)."""
        taus = self._taus(self.aux_values(aux))
        y = np.asarray(y, dtype=float)
        eta = np.asarray(eta, dtype=float)
        key = _stack_key(taus, y)
        if key is not None:
            # AGQ: the score's rows at these nodes (else computed)
            rows, (ra, rb) = self._recall(y, eta, taus, key) or self._ratios(y, eta, taus, key)
            ll = rows[3]
        else:  # (thresholds per point of a batch, bayes_glmm.ml.batch_scalar: the one-hot bounds)
            first, last, _, _, ll, lfa, _, lfb, _ = self._np_rows(y, eta, taus)
            with np.errstate(over="ignore", invalid="ignore"):
                ra = np.where(last, 0.0, np.exp(np.where(last, 0.0, lfa - ll)))
                rb = np.where(first, 0.0, np.exp(np.where(first, 0.0, lfb - ll)))
        yi = np.broadcast_to(y.astype(np.intp), ll.shape)
        # all thresholds at once on a leading axis (four ufunc calls, not four per threshold)
        k = np.arange(len(taus)).reshape((-1,) + (1,) * yi.ndim)
        return list(np.where(yi == k, ra, 0.0) - np.where(yi == k + 1, rb, 0.0))

    # --- predictions and simulation ------------------------------------------------------------
    def category_probs(self, eta, **aux):
        """P(Y = c | eta) for each category c (columns in order), shape ``eta.shape + (K,)``."""
        aux = self.aux_values(aux)
        eta = np.asarray(eta, dtype=float)
        return np.stack([np.exp(self._loglik(np.full(eta.shape, float(c)), eta, NUMPY_OPS, **aux))
                         for c in range(self.n_categories)], axis=-1)

    def response_mean(self, eta, **aux):
        """The expected category number ``sum_c c P(Y = c)``, categories numbered 1 .. K (brms's
        and bambi's mean of an ordinal response on the category scale)."""
        p = self.category_probs(eta, **aux)
        return p @ np.arange(1.0, p.shape[-1] + 1.0)

    def mean(self, eta, ops=None):
        raise ValueError("the mean of an ordinal response depends on the thresholds: use "
                         "predict(kind='mean') (the expected category number) or predict(kind='probs')")

    def _variance(self, mu, ops, **aux):
        raise ValueError("an ordinal response has no variance function V(mu): its distribution is "
                         "the category probabilities (predict(kind='probs'))")

    def mustart(self, y, n_trials=1.0, weights=1.0):
        # eta has no intercept: start the coefficients at 0 (the thresholds carry the marginal)
        return np.full(np.shape(y), 0.5)

    def conditional_start(self, beta, aux: dict, re_var: float):
        """The cumulative-link fit's coefficients and thresholds times ``sqrt(1 + re_var / v)``,
        ``v`` the latent variance: the marginal-to-conditional scale of a random intercept
        (exact for probit, the usual approximation for logit; Zeger, Liang & Albert 1988; for
        cloglog, whose skewed latent distribution also shifts the thresholds, a rougher start
        that still saves Newton iterations: 200-row simulations with SDs up to 3, 10% less time
        than without it)."""
        v = self.link.latent_variance
        if not v or not np.isfinite(re_var) or re_var <= 0.0:
            return beta, aux
        k = float(np.sqrt(1.0 + re_var / v))
        return np.asarray(beta, dtype=float) * k, {name: float(t) * k for name, t in aux.items()}

    def fixed_start(self, y, X, offset, weights, *, max_iter: int = 30, tol: float = 1e-4):
        """The cumulative-link model without random effects (R's ``clm``) by Newton's method
        with its exact Hessian in ``(beta, tau)``, from ``beta = 0`` and the marginal thresholds.

        With ``a = tau[y] - eta``, ``b = tau[y - 1] - eta``, ``ra = f(a) / P``, ``rb = f(b) / P``
        and the latent density's score ``g = f'/f``: ``l_a = ra``, ``l_b = -rb``,
        ``l_aa = ra (ga - ra)``, ``l_ab = ra rb``, ``l_bb = -rb (gb + rb)`` (the derivatives of
        :meth:`aux_eta_derivs`); eta moves a and b together with the sign -1.  A step that lowers
        the log-likelihood or unorders the thresholds is halved; it ends at a Newton decrement
        below ``tol`` (a start: the mixed model's optimum is elsewhere anyway).  None where it
        does not converge or a coefficient moves the linear predictor by more than 30 (the
        likelihood flat towards infinity: separation).
        """
        y = np.asarray(y, dtype=float)
        X = np.asarray(X, dtype=float)
        w = np.asarray(weights, dtype=float)
        off = np.asarray(offset, dtype=float)
        p, K1 = X.shape[1], len(self.aux_params)
        if K1 == 0:
            return None
        beta = np.zeros(p)
        tau = np.array([a.ml_start(0.0, 1.0) for a in self.aux_params], dtype=float)  # (the marginal's)
        yi = y.astype(np.intp)[:, None]
        k = np.arange(K1)
        up, dn = (yi == k) * 1.0, (yi == k + 1) * 1.0

        def parts(beta, tau):
            taus = [float(t) for t in tau]
            rows, (ra, rb) = self._ratios(y, off + X @ beta, taus)
            return float(np.sum(w * rows[3])), ra, rb, np.where(rows[6], 0.0, rows[5])

        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            ll, ra, rb, (ga, gb) = parts(beta, tau)
            for _ in range(max_iter):
                laa, lab, _, rb_b = _ratio_derivs(ra, rb, ga, gb)  # l_a = ra, l_b = -rb
                lbb = -rb_b
                g = np.concatenate((X.T @ (w * (rb - ra)), up.T @ (w * ra) - dn.T @ (w * rb)))
                H = np.empty((p + K1, p + K1))
                H[:p, :p] = (X.T * (w * (laa + 2.0 * lab + lbb))) @ X
                H[:p, p:] = -(X.T * w) @ (up * (laa + lab)[:, None] + dn * (lab + lbb)[:, None])
                H[p:, :p] = H[:p, p:].T
                H[p:, p:] = (up.T * (w * laa)) @ up + (up.T * (w * lab)) @ dn + (dn.T * (w * lab)) @ up \
                    + (dn.T * (w * lbb)) @ dn
                try:
                    step = np.linalg.solve(-H, g)
                except np.linalg.LinAlgError:
                    return None
                dec = float(g @ step)
                if not (np.isfinite(dec) and dec >= 0.0):
                    return None
                if dec < tol:
                    if p and np.any(np.abs(beta) * np.max(np.abs(X), axis=0) > 30.0):
                        return None  # (a coefficient on its way to infinity: separation)
                    return beta, {a.name: float(t) for a, t in zip(self.aux_params, tau)}
                t = 1.0
                for _h in range(30):
                    nb, nt = beta + t * step[:p], tau + t * step[p:]
                    if np.all(np.diff(nt) > 0.0):
                        new = parts(nb, nt)
                        if np.isfinite(new[0]) and new[0] >= ll - 1e-12 * abs(ll):
                            break
                    t *= 0.5
                else:
                    return None
                beta, tau = nb, nt
                ll, ra, rb, (ga, gb) = new
        return None

    def random(self, eta, rng, *, trials=None, zi_eta=None, **aux):
        """Category codes 0 .. K-1 drawn from :meth:`category_probs`."""
        p = self.category_probs(eta, **aux)
        u = rng.random(p.shape[:-1])[..., None]
        return np.minimum(np.sum(np.cumsum(p, axis=-1) < u, axis=-1), self.n_categories - 1).astype(float)

    def latent_residual_variance(self, *, mu=None, sigma=None, disp=None):
        """The latent logistic/normal/Gumbel variance, as for the binary families."""
        return self.link.latent_variance


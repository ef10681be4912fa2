"""Forward-mode dual numbers on NumPy arrays: derivatives of the single definitions.

The NumPy density (:mod:`bayes_glmm.bayes.density`, the sampler without a C compiler) needs
the derivatives of the families' log-densities in eta and in the dispersion, of the priors and
of the LKJ/CPC factor.  Rather than writing them out by hand, it evaluates the one Python
definition of each (:meth:`Family.loglik`, :data:`~bayes_glmm.bayes.codegen.PRIOR_LOGDENS`,
:func:`~bayes_glmm.bayes.corr.cpc_rows`) on :class:`ND` values through :data:`ND_OPS`, the
``ops`` namespace of :mod:`bayes_glmm.families` with each elementary function's derivative
rule from :data:`DERIVATIVES` -- the one table :mod:`bayes_glmm.bayes.codegen` also emits as C.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from scipy import special

from .numpy_ops import NUMPY_OPS

__all__ = ["ND", "ND_OPS", "DERIVATIVES", "NUMPY_MATH", "seed", "value", "deriv"]

_LOG_SQRT_2PI = 0.5 * float(np.log(2.0 * np.pi))


def _mul(a, b):
    return None if (a is None or b is None) else a * b


def _add(a, b):
    if a is None:
        return b
    return a if b is None else a + b


def _neg(a):
    return None if a is None else -a


class ND:
    """A value (array or float) with its partial derivatives in ``len(d)`` directions."""

    __slots__ = ("v", "d")
    __array_ufunc__ = None  # ndarray op ND: NumPy defers to ND's reflected operator

    def __init__(self, v, d):
        self.v, self.d = v, tuple(d)

    @staticmethod
    def _lift(o, n):
        return o if isinstance(o, ND) else ND(o, (None,) * n)

    # A plain operand (data, a constant) has no derivative: those cases skip the lift, which
    # keeps the Python overhead of the NumPy fallback's many small operations down.
    def __add__(self, o):
        if not isinstance(o, ND):
            return ND(self.v + o, self.d)
        return ND(self.v + o.v, [_add(a, b) for a, b in zip(self.d, o.d)])

    __radd__ = __add__

    def __neg__(self):
        return ND(-self.v, [_neg(a) for a in self.d])

    def __sub__(self, o):
        if not isinstance(o, ND):
            return ND(self.v - o, self.d)
        return ND(self.v - o.v, [_add(a, _neg(b)) for a, b in zip(self.d, o.d)])

    def __rsub__(self, o):
        return ND(o - self.v, [_neg(a) for a in self.d])

    def __mul__(self, o):
        if not isinstance(o, ND):
            return ND(self.v * o, [None if a is None else a * o for a in self.d])
        return ND(self.v * o.v, [_add(_mul(a, o.v), _mul(self.v, b)) for a, b in zip(self.d, o.d)])

    __rmul__ = __mul__

    def __truediv__(self, o):
        if not isinstance(o, ND):
            return ND(self.v / o, [None if a is None else a / o for a in self.d])
        r = self.v / o.v
        return ND(r, [None if (a is None and b is None) else (_add(a, _neg(_mul(r, b)))) / o.v
                      for a, b in zip(self.d, o.d)])

    def __rtruediv__(self, o):
        return self._lift(o, len(self.d)) / self

    def __pow__(self, k):
        if isinstance(k, ND):
            raise TypeError("symbolic exponents are not supported")
        if k == 2:
            return self * self
        return self._chain(self.v ** k, k * self.v ** (k - 1))

    def __abs__(self):
        return self._chain(np.abs(self.v), np.where(np.asarray(self.v) >= 0, 1.0, -1.0))

    def _chain(self, value, fprime):
        return ND(value, [_mul(fprime, a) for a in self.d])


def _unary(f, rule):
    """ops function: plain values pass through ``f``; ND values get the chain rule with
    ``f'(x) = rule(x, f(x), NUMPY_MATH)`` (a :data:`DERIVATIVES` entry)."""
    def op(x):
        if not isinstance(x, ND):
            return f(x)
        r = f(x.v)
        return x._chain(r, rule(x.v, r, NUMPY_MATH))
    return op


def _logaddexp(a, b):
    if not isinstance(a, ND) and not isinstance(b, ND):
        return np.logaddexp(a, b)
    n = len((a if isinstance(a, ND) else b).d)
    a, b = ND._lift(a, n), ND._lift(b, n)
    return b + ND_OPS.softplus(a - b)


def _lgamma_shift(a, y):
    """``lgamma(a + y) - lgamma(a)`` with ``d/da = digamma(a + y) - digamma(a)``; ``y`` is data."""
    if isinstance(y, ND):
        raise TypeError("lgamma_shift: the count y must be data (no derivative)")
    if not isinstance(a, ND):
        return NUMPY_OPS.lgamma_shift(a, y)
    return a._chain(NUMPY_OPS.lgamma_shift(a.v, y), special.digamma(a.v + y) - special.digamma(a.v))


def _eq(a, b):
    if isinstance(a, ND) or isinstance(b, ND):
        raise TypeError("eq: only data (no derivative) may be compared")
    return np.equal(a, b)


#: The derivative of every elementary function of the ``ops`` namespace, written once:
#: ``rule(x, r, m)`` is ``f'(x)`` given ``x``, ``r = f(x)`` and a math namespace ``m``
#: (``exp``, ``expm1``, ``sigmoid``, ``digamma``).  The NumPy duals here evaluate it on
#: arrays (:data:`NUMPY_MATH`); :mod:`bayes_glmm.bayes.codegen` evaluates it on C
#: expressions, so the compiled density and this fallback share each rule.
DERIVATIVES = {
    "exp": lambda x, r, m: r,
    "log": lambda x, r, m: 1.0 / x,
    "log1p": lambda x, r, m: 1.0 / (1.0 + x),
    "expm1": lambda x, r, m: r + 1.0,
    "sigmoid": lambda x, r, m: r * (1.0 - r),
    "softplus": lambda x, r, m: m.sigmoid(x),
    "log1mexp": lambda x, r, m: -1.0 / m.expm1(-x),  # d log(1 - e^x) = -e^x / (1 - e^x)
    "ndtr": lambda x, r, m: m.exp(-0.5 * x * x - _LOG_SQRT_2PI),  # the normal density
    "log_ndtr": lambda x, r, m: m.exp(-0.5 * x * x - _LOG_SQRT_2PI - r),  # density / ndtr
    "gammaln": lambda x, r, m: m.digamma(x),
    "tanh": lambda x, r, m: 1.0 - r * r,
    "sqrt": lambda x, r, m: 0.5 / r,
}

#: the math namespace :data:`DERIVATIVES` is evaluated with on arrays
NUMPY_MATH = SimpleNamespace(exp=np.exp, expm1=np.expm1, sigmoid=special.expit, digamma=special.digamma)

_NUMPY_VALUES = dict(vars(NUMPY_OPS))

#: :data:`bayes_glmm.families.NUMPY_OPS` on :class:`ND` values (plain arrays pass through)
ND_OPS = SimpleNamespace(
    **{name: _unary(_NUMPY_VALUES[name], rule) for name, rule in DERIVATIVES.items()},
    logaddexp=_logaddexp,
    lgamma_shift=_lgamma_shift,
    eq=_eq,
    square=lambda x: x * x,
)


def seed(value, direction: int, n: int) -> ND:
    """An input: ``value`` with derivative 1 in ``direction`` of ``n``."""
    d = [None] * n
    d[direction] = np.ones_like(np.asarray(value, dtype=float)) if np.ndim(value) else 1.0
    return ND(value, d)


def value(x):
    """The value of an ND (or the plain value)."""
    return x.v if isinstance(x, ND) else x


def deriv(x, direction: int, like=None):
    """The derivative of ``x`` in ``direction`` (zeros shaped as ``like`` when it is 0)."""
    d = x.d[direction] if isinstance(x, ND) else None
    if d is None:
        return np.zeros_like(np.asarray(like if like is not None else value(x), dtype=float))
    return d

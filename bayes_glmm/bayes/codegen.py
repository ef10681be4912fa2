"""C code generated from the single definitions of the model's mathematics.

The families' log-densities (:meth:`bayes_glmm.families.Family.loglik`,
:func:`~bayes_glmm.families.zi_loglik`), the prior densities (each
:class:`~bayes_glmm.priors.kinds.PriorKind`'s, :data:`PRIOR_LOGDENS`), the
LKJ/CPC construction (:func:`bayes_glmm.bayes.corr.cpc_rows`, :func:`~bayes_glmm.bayes.corr.cpc_logp`)
are written once against an ``ops`` math namespace.  Here they are evaluated on symbolic
*dual numbers* (:class:`Dual`): every operation appends a C statement for its value and
for its derivatives in a few input directions (forward-mode automatic differentiation), so
the C of a value and of its gradient are both generated from the Python formula -- nothing
is differentiated by hand.  Each elementary function's derivative rule comes from the one
table :data:`bayes_glmm.ops.dual.DERIVATIVES`, which the NumPy fallback evaluates on
arrays.  :mod:`bayes_glmm.bayes.native` assembles these pieces into the
compiled log-density that its NUTS (``csrc/nuts.c``) samples, and
``tests/test_bayes_contract.py`` holds that density equal to the PyMC graph point by point.

Values that depend on the data only (``lgamma(y + 1)`` of a Poisson row, the binomial
coefficient) are marked ``data`` and moved out of the sampler's loop: :class:`RowProgram`
evaluates them once per data set into a per-row table.
"""
from __future__ import annotations

import math
import re
from types import SimpleNamespace

from ..ops.dual import DERIVATIVES
from ..priors.kinds import KINDS, get_kind

__all__ = ["Dual", "Emitter", "C_OPS", "C_FUNCTIONS", "RowProgram", "prior_program", "PRIOR_LOGDENS",
           "prior_params", "PRIOR_CODES", "C_HELPERS", "check_c_source"]

def _lit(v: float) -> str:
    v = float(v)
    if math.isnan(v):
        return "NAN"
    if math.isinf(v):
        return "INFINITY" if v > 0 else "(-INFINITY)"
    return repr(v)


class Emitter:
    """Collects C statements; ``ndir`` derivative directions per value.

    Statements whose inputs are all row-invariant (the dispersion, constants) go to
    :attr:`pre` (evaluated once per gradient, before the loop over rows); the others to
    :attr:`lines`.  ``hoist`` (optional): a callable taking a C expression of data-only
    values and returning the C expression that reads its precomputed copy (see
    :class:`RowProgram`).
    """

    def __init__(self, ndir: int, prefix: str = "t", hoist=None, table=None):
        # names are built from the prefix: a C identifier of the package's, never user text
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix) is None or not _c_name_ok(prefix + "0"):
            raise ValueError(f"Emitter prefix {prefix[:40]!r} does not give the package's C names")
        self.ndir, self.prefix, self.lines, self.pre, self.k, self.hoist = ndir, prefix, [], [], 0, hoist
        #: optional callable ``table(a, y)`` of a row-invariant ``a`` and a count's C expression ``y``:
        #: the C names ``(T, D)`` of per-gradient tables of ``lgamma(a + k) - lgamma(a)`` and its
        #: derivative in ``a`` over the counts ``k`` of the data, or None (see :class:`RowProgram`)
        self.table = table

    def tmp(self, expr: str, inv: bool = False) -> str:
        name = f"{self.prefix}{self.k}"
        self.k += 1
        (self.pre if inv else self.lines).append(f"const double {name} = {expr};")
        return name

    def const(self, v) -> "Dual":
        return Dual(self, _lit(v), [None] * self.ndir, data=True, literal=True, inv=True)

    def data(self, cexpr: str, inv: bool = False) -> "Dual":
        """A data value (no derivative): a row's y, trials (``inv=False``), a prior's parameter."""
        _check_input(cexpr)
        return Dual(self, cexpr, [None] * self.ndir, data=True, inv=inv)

    def var(self, cexpr: str, direction: int, inv: bool = False) -> "Dual":
        """An input with derivative 1 in ``direction`` (``inv``: the same for every row)."""
        _check_input(cexpr)
        d = [None] * self.ndir
        d[direction] = "1.0"
        return Dual(self, cexpr, d, inv=inv)

    def lift(self, x) -> "Dual":
        return x if isinstance(x, Dual) else self.const(x)

    def code(self, indent: str = "    ") -> str:
        return "\n".join(indent + ln for ln in self.pre + self.lines)


def _mul(a, b):
    if a is None or b is None:
        return None
    if a == "1.0":
        return b
    if b == "1.0":
        return a
    return f"({a}) * ({b})"


def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return f"({a}) + ({b})"


class Dual:
    """A symbolic value with ``ndir`` symbolic partial derivatives (None = 0).

    ``data``: no derivative in any direction; ``inv``: the same for every row.
    """

    __slots__ = ("em", "v", "d", "data", "literal", "inv")

    def __init__(self, em: Emitter, v: str, d: list, data: bool = False, literal: bool = False,
                 inv: bool = False):
        self.em, self.v, self.d, self.data, self.literal, self.inv = em, v, d, data, literal, inv

    # -- construction helpers ------------------------------------------------------------
    def _new(self, expr: str, derivs: list, data: bool, inv: bool, expensive: bool = False) -> "Dual":
        em = self.em
        if data:  # data only: inline (cheap) or hoisted out of the sampler's loop (expensive)
            if expensive and not inv and em.hoist is not None:
                return Dual(em, em.hoist(expr), [None] * em.ndir, data=True)
            if not (expensive and inv):
                return Dual(em, f"({expr})", [None] * em.ndir, data=True, inv=inv)
        v = em.tmp(expr, inv)
        d = [None if x is None else em.tmp(x, inv) for x in derivs]
        return Dual(em, v, d, data=data, inv=inv)

    def _unary(self, expr: str, fprime, expensive: bool = True) -> "Dual":
        """f(self) given ``fprime(v, r)``: the C expression of f' from those of self and f(self)."""
        if self.data:
            return self._new(expr, [None] * self.em.ndir, True, self.inv, expensive)
        em, inv = self.em, self.inv
        v = em.tmp(expr, inv)
        fp = em.tmp(fprime(self.v, v), inv)
        d = [None if x is None else em.tmp(_mul(fp, x), inv) for x in self.d]
        return Dual(em, v, d, inv=inv)

    # -- arithmetic -------------------------------------------------------------------------
    def __add__(self, o):
        o = self.em.lift(o)
        if o.literal and o.v == "0.0":
            return self
        return self._new(f"{self.v} + {o.v}", [_add(a, b) for a, b in zip(self.d, o.d)], self.data and o.data,
                         self.inv and o.inv)

    __radd__ = __add__

    def __neg__(self):
        return self._new(f"-({self.v})", [None if a is None else f"-({a})" for a in self.d], self.data, self.inv)

    def __sub__(self, o):
        o = self.em.lift(o)
        return self._new(f"{self.v} - {o.v}",
                         [_add(a, None if b is None else f"-({b})") for a, b in zip(self.d, o.d)],
                         self.data and o.data, self.inv and o.inv)

    def __rsub__(self, o):
        return self.em.lift(o) - self

    def __mul__(self, o):
        o = self.em.lift(o)
        return self._new(f"({self.v}) * ({o.v})",
                         [_add(_mul(a, o.v), _mul(self.v, b)) for a, b in zip(self.d, o.d)],
                         self.data and o.data, self.inv and o.inv)

    __rmul__ = __mul__

    def __truediv__(self, o):
        o = self.em.lift(o)
        inv = self.inv and o.inv
        if o.data:
            return self._new(f"({self.v}) / ({o.v})", [None if a is None else f"({a}) / ({o.v})" for a in self.d],
                             self.data, inv)
        r = self._new(f"({self.v}) / ({o.v})", [None] * self.em.ndir, False, inv)
        # d(a/b) = (da - r db) / b
        r.d = [None if (a is None and b is None) else self.em.tmp(
            f"({_add(a, None if b is None else f'-({r.v}) * ({b})')}) / ({o.v})", inv) for a, b in zip(self.d, o.d)]
        return r

    def __rtruediv__(self, o):
        return self.em.lift(o) / self

    def __pow__(self, k):
        if isinstance(k, Dual):
            raise TypeError("symbolic exponents are not supported")
        k = float(k)
        if k == 2.0:
            return self * self
        return self._unary(f"pow({self.v}, {_lit(k)})", lambda v, r: f"{_lit(k)} * pow({v}, {_lit(k - 1.0)})")

    def __abs__(self):
        return self._unary(f"fabs({self.v})", lambda v, r: f"({v} >= 0.0 ? 1.0 : -1.0)", expensive=False)


def _binop(op: str, swap: bool = False):
    return lambda self, o: self._bin(o, op, swap)


class _CExpr:
    """A C expression as text, with Python arithmetic: what a :data:`~.dual.DERIVATIVES`
    rule is evaluated on to become C."""

    __slots__ = ("s",)

    def __init__(self, s: str):
        self.s = s

    @staticmethod
    def _c(o) -> str:
        return o.s if isinstance(o, _CExpr) else _lit(o)

    def _bin(self, o, op: str, swap: bool = False) -> "_CExpr":
        a, b = (self._c(o), self.s) if swap else (self.s, self._c(o))
        return _CExpr(f"({a}) {op} ({b})")

    __add__, __radd__ = _binop("+"), _binop("+", True)
    __sub__, __rsub__ = _binop("-"), _binop("-", True)
    __mul__, __rmul__ = _binop("*"), _binop("*", True)
    __truediv__, __rtruediv__ = _binop("/"), _binop("/", True)

    def __neg__(self):
        return _CExpr(f"-({self.s})")


#: C names of the ``ops`` functions (the stable forms are :data:`C_HELPERS`)
C_FUNCTIONS = {"exp": "exp", "log": "log", "log1p": "log1p", "expm1": "expm1", "sigmoid": "bg_sigmoid",
               "softplus": "bg_softplus", "log1mexp": "bg_log1mexp", "ndtr": "bg_ndtr",
               "log_ndtr": "bg_log_ndtr", "gammaln": "lgamma", "tanh": "tanh", "sqrt": "sqrt",
               "digamma": "bg_digamma"}

#: the math namespace :data:`~.dual.DERIVATIVES` is evaluated with to give C
_C_MATH = SimpleNamespace(**{k: (lambda c: lambda e: _CExpr(f"{c}({e.s})"))(C_FUNCTIONS[k])
                             for k in ("exp", "expm1", "sigmoid", "digamma")})


def _ops_fn(name: str):
    cfun, rule = C_FUNCTIONS[name], DERIVATIVES[name]

    def f(x):
        if not isinstance(x, Dual):
            raise TypeError(f"{name}: expected a symbolic value")
        return x._unary(f"{cfun}({x.v})", lambda v, r: rule(_CExpr(v), _CExpr(r), _C_MATH).s)
    return f


def _logaddexp(a, b):
    em = a.em if isinstance(a, Dual) else b.em
    a, b = em.lift(a), em.lift(b)
    m = a - b
    # logaddexp(a, b) = b + softplus(a - b); d/da = sigmoid(a - b), d/db = sigmoid(b - a)
    return b + C_OPS.softplus(m)


def _lgamma_shift(a, y):
    """``lgamma(a + y) - lgamma(a)`` for a data count ``y``: one C helper for the value and one for
    ``d/da = digamma(a + y) - digamma(a)`` (:data:`C_HELPERS`: a short product for small counts)."""
    if not isinstance(a, Dual) and not isinstance(y, Dual):
        raise TypeError("lgamma_shift: expected a symbolic value")
    em = a.em if isinstance(a, Dual) else y.em
    a, y = em.lift(a), em.lift(y)
    if not y.data:
        raise TypeError("lgamma_shift: the count y must be data (no derivative)")
    expr, inv = f"bg_lgamma_shift({a.v}, {y.v})", a.inv and y.inv
    if a.data:
        return a._new(expr, [None] * em.ndir, True, inv, expensive=True)
    tab = em.table(a.v, y.v) if (a.inv and not inv and em.table is not None) else None
    if tab is not None:
        # a row-invariant a and integer counts of the data up to a cap: the tables T[k], D[k] are
        # built once per gradient (bg_shift_table), a row looks its count up (issue 19: 1 ns
        # per row against 10-20 ns for the short products)
        v = em.tmp(f"{tab[0]}[(int64_t)({y.v})]")
        fp = em.tmp(f"{tab[1]}[(int64_t)({y.v})]")
    elif a.inv and not inv:
        # a row-invariant a (NB2's theta, the beta-binomial's phi): lgamma(a) and digamma(a) once
        # per gradient, so that a count beyond the short products costs what the two lgamma did
        short = f"bg_shift_short({a.v}, {y.v})"
        lga, dga = em.tmp(f"lgamma({a.v})", True), em.tmp(f"bg_digamma({a.v})", True)
        v = em.tmp(f"{short} ? bg_rise_log({a.v}, {y.v}) : lgamma({a.v} + {y.v}) - {lga}")
        fp = em.tmp(f"{short} ? bg_rise_dlog({a.v}, {y.v}) : bg_digamma({a.v} + {y.v}) - {dga}")
    else:
        v = em.tmp(expr, inv)
        fp = em.tmp(f"bg_digamma_shift({a.v}, {y.v})", inv)
    return Dual(em, v, [None if x is None else em.tmp(_mul(fp, x), inv) for x in a.d], inv=inv)


def _eq(a, b):
    em = a.em if isinstance(a, Dual) else b.em
    a, b = em.lift(a), em.lift(b)
    if not (a.data and b.data):
        raise TypeError("eq: only data (no derivative) may be compared")
    return Dual(em, f"(({a.v}) == ({b.v}) ? 1.0 : 0.0)", [None] * em.ndir, data=True, inv=a.inv and b.inv)


#: the ``ops`` namespace of :mod:`bayes_glmm.families` on dual numbers (C code)
C_OPS = SimpleNamespace(
    **{name: _ops_fn(name) for name in DERIVATIVES},
    logaddexp=_logaddexp,
    lgamma_shift=_lgamma_shift,
    eq=_eq,
    square=lambda x: x * x,
)

#: C helper functions the generated code calls (stable forms; shared by every model)
C_HELPERS = r"""
/* log(1 + e) rather than log1p(e): half the cost, absolute error below 1e-16 (all a sum of
   log-densities needs); the derivative is bg_sigmoid, exact */
static inline double bg_softplus(double x) { return (x > 0.0 ? x : 0.0) + log(1.0 + exp(-fabs(x))); }
static inline double bg_sigmoid(double x) {
    const double e = exp(-fabs(x));
    return x >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}
static inline double bg_log1mexp(double x) {  /* log(1 - exp(x)), x < 0 (Maechler 2012) */
    return x > -0.6931471805599453 ? log(-expm1(x)) : log1p(-exp(x));
}
static inline double bg_ndtr(double x) { return 0.5 * erfc(-x * 0.7071067811865476); }
static double bg_log_ndtr(double x) {
    if (x > 0.0) return log1p(-0.5 * erfc(x * 0.7071067811865476));
    if (x > -37.0) return log(0.5 * erfc(-x * 0.7071067811865476));
    {   /* asymptotic series of the Mills ratio */
        const double r = 1.0 / (x * x);
        return -0.5 * x * x - 0.9189385332046728 - log(-x)
               + log1p(r * (-1.0 + r * (3.0 + r * (-15.0 + r * 105.0))));
    }
}
static double bg_digamma(double x) {
    double r = 0.0;
    if (x <= 0.0 && floor(x) == x) return NAN;
    if (x < 0.0) {  /* reflection */
        return bg_digamma(1.0 - x) - 3.141592653589793 / tan(3.141592653589793 * x);
    }
    while (x < 10.0) { r -= 1.0 / x; x += 1.0; }  /* the series below is exact to ~1e-15 from 10 on */
    {
        const double f = 1.0 / (x * x);
        return r + log(x) - 0.5 / x
               - f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (1.0 / 240 - f * (1.0 / 132)))));
    }
}
/* lgamma(a + y) - lgamma(a) for a count y >= 0.  For an integer y <= 24 it is the log of the
   rising factorial a (a + 1) ... (a + y - 1): one log instead of two lgamma (the beta-binomial
   gradient of bb_trials: 137 -> 65 us);
   1e-250 < a < 1e12 keeps that product of at most 24 factors a normal double */
static inline int bg_shift_short(double a, double y) {
    return y >= 0.0 && y <= 24.0 && y == floor(y) && a > 1e-250 && a < 1e12;
}
static inline double bg_rise_log(double a, double y) {
    double p = 1.0;
    for (int k = 0; k < (int)y; k++) p *= a + k;
    return log(p);
}
/* its derivative in a, digamma(a + y) - digamma(a): for the same counts the sum of 1/(a + k),
   kept as one fraction q/p (one division) */
static inline double bg_rise_dlog(double a, double y) {
    double p = 1.0, q = 0.0;
    for (int k = 0; k < (int)y; k++) { const double f = a + k; q = q * f + p; p *= f; }
    return q / p;
}
/* the tables T[k] = lgamma(a + k) - lgamma(a) and D[k] = digamma(a + k) - digamma(a), k < K,
   of a row-invariant a, built once per gradient: running sums of log(a + j) and 1/(a + j)
   (relative error below 5e-14 up to K = 4097 for 1e-300 < a < 1e15, measured against mpmath;
   the difference of two lgamma loses 1e-9 at a = 1e6 and everything from a = 1e15 on, while
   these sums tend to k log(a) and k / a); outside (0, inf) as the per-row code */
static void bg_shift_table(double a, int64_t K, double *T, double *D) {
    T[0] = 0.0; D[0] = 0.0;
    if (a > 1e-300 && a < 1e300) {
        for (int64_t k = 1; k < K; k++) { T[k] = log(a + (double)(k - 1)); D[k] = 1.0 / (a + (double)(k - 1)); }
        for (int64_t k = 1; k < K; k++) { T[k] += T[k - 1]; D[k] += D[k - 1]; }
    } else {
        const double lga = lgamma(a), dga = bg_digamma(a);
        for (int64_t k = 1; k < K; k++) { T[k] = lgamma(a + (double)k) - lga; D[k] = bg_digamma(a + (double)k) - dga; }
    }
}
static inline double bg_lgamma_shift(double a, double y) {
    return bg_shift_short(a, y) ? bg_rise_log(a, y) : lgamma(a + y) - lgamma(a);
}
static inline double bg_digamma_shift(double a, double y) {
    return bg_shift_short(a, y) ? bg_rise_dlog(a, y) : bg_digamma(a + y) - bg_digamma(a);
}
"""


# ------------------------------------------------------------------------------- priors
#: prior name -> log-density f(x, a0, a1, a2, ops) in PyMC's parametrization with the
#: canonical parameters of :func:`prior_params`: a view of the registry
#: :data:`bayes_glmm.priors.kinds.KINDS` (each kind's one log-density, from which the
#: compiled density is generated; ``tests/test_prior_kinds.py`` holds it to SciPy and PyMC)
PRIOR_LOGDENS = {n: k.logdens for n, k in KINDS.items() if k.support != "corr"}
PRIOR_CODES = {n: i for i, n in enumerate(PRIOR_LOGDENS)}


def prior_params(name: str, args: dict):
    """Canonical (a0, a1, a2) of a prior from its PyMC arguments (defaults and the
    alternative spellings -- Exponential ``scale``, Gamma/InverseGamma ``mu``/``sigma`` -- resolved):
    :meth:`bayes_glmm.priors.kinds.PriorKind.canonical_args`."""
    if name not in PRIOR_LOGDENS:
        raise ValueError(f"no compiled density for the prior {name!r}")
    return get_kind(name).canonical_args(args)


def prior_program(name: str, xexpr: str, pexprs, positive: bool, prefix: str) -> tuple[str, str, str]:
    """C statements for one element of a prior block, with value and d/dx.

    ``xexpr`` is the unconstrained coordinate; positive parameters are ``exp(x)`` with the
    log-Jacobian ``x`` added, as PyMC's log transform.  Returns ``(code, value, deriv)``.
    """
    em = Emitter(1, prefix)
    z = em.var(xexpr, 0)
    x = C_OPS.exp(z) if positive else z
    a = [em.data(p, inv=True) for p in pexprs]
    v = PRIOR_LOGDENS[name](x, a[0], a[1], a[2], C_OPS)
    v = em.lift(v)
    if positive:
        v = v + z
    return em.code(), v.v, (v.d[0] or "0.0")


# ------------------------------------------------------------------------------- rows
class RowProgram:
    """The conditional log-density of one row and its derivatives, as C.

    Directions: 0 = eta, ``1 + i`` = the family's i-th auxiliary parameter
    (``family.aux_params``: sigma, a dispersion, ...; natural scale, the C variable ``ax<i>``),
    the last (``1 + len(aux_params)``) = the zero-inflation linear predictor ``ez``.  Row data:
    ``yr`` (response) and ``nr`` (binomial trials).  Data-only expensive values are hoisted
    into the per-row table ``PC[r * npc + j]`` (filled once by :attr:`pre_code`).

    With a dispersion formula (``disp``) the first auxiliary parameter is ``exp(ed)`` with ``ed``
    the row's log-dispersion (a per-row C variable): direction 1 is then ``ed`` itself, the C of
    its derivative :attr:`d_disp`, and :attr:`aux` / :attr:`d_aux` hold the other parameters only.
    """

    def __init__(self, family, zi: bool, disp: bool = False, counts=()):
        self.hoisted = []
        #: ``(a, count)`` of each lookup table (``tv<i>``, ``td<i>``: :data:`C_HELPERS`'
        #: ``bg_shift_table``); ``counts``: the row data (``"yr"``, ``"nr"``) whose values are
        #: integers 0 <= k < the table's length, which the caller checked on the data
        self.tables = []

        def hoist(expr):
            self.hoisted.append(expr)
            return f"PC[r * NPC + {len(self.hoisted) - 1}]"

        def table(a, y):
            if y not in counts:
                return None
            if (a, y) not in self.tables:
                self.tables.append((a, y))
            i = self.tables.index((a, y))
            return f"tv{i}", f"td{i}"

        #: the C variables of the auxiliary parameters, in ``family.aux_params`` order
        self.aux = [f"ax{i}" for i in range(len(family.aux_params))]
        na = len(self.aux)
        em = Emitter(2 + na, "r", hoist, table)
        y, n = em.data("yr"), em.data("nr")
        eta = em.var("eta", 0)
        kw = {aux.name: em.var(self.aux[i], 1 + i, inv=True) for i, aux in enumerate(family.aux_params)}
        if disp:  # per row: exp of the row's log-dispersion, in direction 1
            kw[family.aux_params[0].name] = C_OPS.exp(em.var("ed", 1))
        if family.needs_trials:
            kw["trials"] = n
        ll = em.lift(family.loglik(y, eta, ops=C_OPS, **kw))
        if zi:
            ll = em.lift(family.zero_part_loglik(ll, y, em.var("ez", 1 + na), ops=C_OPS))
        self.pre = "\n".join("    " + ln for ln in em.pre)  # once per gradient
        #: the names those statements define (the row code reads them)
        self.pre_names = [ln.split()[2] for ln in em.pre]
        self.code = "\n".join("        " + ln for ln in em.lines)  # per row
        self.ll = ll.v
        #: C of d ll / d eta, d ll / d aux_i (i = 0, 1, ...) and d ll / d ez
        self.d = [x or "0.0" for x in ll.d]
        self.d_eta, self.d_aux, self.d_zi = self.d[0], self.d[1:1 + na], self.d[1 + na]
        self.d_disp = None
        if disp:
            self.d_disp, self.d_aux, self.aux = self.d_aux[0], self.d_aux[1:], self.aux[1:]
        self.npc = len(self.hoisted)
        self.pre_code = "\n".join(f"        PC[r * NPC + {j}] = {e};" for j, e in enumerate(self.hoisted))


def cpc_program(q: int, a, const: float, xbase: str, prefix: str, cov=None):
    """C for a term's correlation Cholesky factor L (q x q) and the prior log-density of its
    unconstrained correlation parameters.

    Evaluates the covariance structure's
    :meth:`~bayes_glmm.covariance.base.CovStructure.corr_rows` (``cov``, default ``us``:
    :func:`~bayes_glmm.bayes.corr.cpc_rows`) and :func:`~bayes_glmm.bayes.corr.cpc_logp` on
    dual numbers in the ``cov.n_corr(q)`` directions: the C of every structure comes from its
    one Python definition.  ``a``, ``const``: from ``cov.corr_prior_shapes``.  Returns
    ``(code, L, dL, lp, dlp)``: C expressions for ``L[i][m]``, ``dL[i][m][k]`` (None = 0), the
    log-density and its derivatives.
    """
    from ..covariance.unstructured import UNSTRUCTURED
    from .corr import cpc_logp, log_cosh

    cov = UNSTRUCTURED if cov is None else cov
    nc = cov.n_corr(q)
    em = Emitter(nc, prefix)
    ys = [em.var(f"{xbase}[{k}]", k) for k in range(nc)]
    z = [C_OPS.tanh(y) for y in ys]
    # s = sech(y) = sqrt(1 - z^2): derivative -z s
    s = []
    for k, y in enumerate(ys):
        v = em.tmp(f"1.0 / cosh({y.v})")
        d = [None] * nc
        d[k] = em.tmp(f"-({z[k].v}) * ({v})")
        s.append(Dual(em, v, d))
    # the structure's constants (a Cholesky factor's sqrt(1.0), say) become C literals
    def lifted(f):
        return lambda x: f(em.lift(x))

    ops = SimpleNamespace(**{**vars(C_OPS), **{name: lifted(getattr(C_OPS, name)) for name in DERIVATIVES}})
    L = cov.corr_rows(z, s, q, ops)
    lp = em.const(const)
    for k, y in enumerate(ys):
        lp = lp + cpc_logp(log_cosh(y, C_OPS), float(a[k]), 0.0)
    Lv = [[em.lift(L[i][m]) for m in range(q)] for i in range(q)]
    return (em.code(), [[x.v for x in row] for row in Lv], [[x.d for x in row] for row in Lv], lp.v, lp.d)



# ------------------------------------------------------------------------------- checks
#: C's words the generated code uses (keywords, types, the C library's functions)
_C_WORDS = frozenset("""
    const double float int int32_t int64_t void static inline return if else for while typedef struct
    restrict sizeof volatile char NAN INFINITY memset exp log log1p expm1 fabs erfc floor tan cosh tanh
    lgamma pow sqrt""".split())
#: the fixed names of the templates of :mod:`bayes_glmm.bayes.native` and of :data:`C_HELPERS`
_C_NAMES = frozenset("""
    A0 A1 A2 D D0 D0c ETA EZ GL NPC NT OFF OUT P PC PW S SC W Y acc bg_ctx bg_logp bg_logp_grad
    bg_nuts_cfg bg_nuts_sample bg_precompute bg_rowpass bg_rows_ll bg_sample bl c cfg cidx cl cur d0 d2
    draws dmu dsd e el eta ez f g ge gl hi i init inv_mass j k l ll_sum lo lp lpu m n nr progress r
    s st stats stop vctx x yr zidx ed ED didx d3""".split()) | frozenset(C_FUNCTIONS.values())
#: numbered names: a stem and an index (``sd0``, ``GB1``, ``ax0`` an auxiliary parameter, ``gor0`` the
#: derivative in the value of an ordered one), or an
#: :class:`Emitter`'s prefix and its counter (``r17``, ``f0_3``, ``sd1_12``, ``y0_5``, ``c0_4``, ``ax1_2``)
_C_NUMBERED = re.compile(r"(?:B|CD|CDs|GB|HA|HS|L|X|XR|XRs|XZ|XD|a|ax|bt|bz|bd|gax|gbt|gbz|gbd|gor|sd|xc|r|t|dp|tv|td)\d+"
                         r"|(?:ax|c|f|z|sd|y|dp)\d+_\d+|s_\d+")
_C_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: characters of generated C: printable ASCII without backslash, backtick, quote, $ and @
_C_CHARS = frozenset("\n !\"#%&()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_"
                     "abcdefghijklmnopqrstuvwxyz{|}~")
#: the only preprocessor lines
_C_DIRECTIVES = frozenset(["#include <math.h>", "#include <stdint.h>", "#include <string.h>",
                           '#include "nuts.h"'])
_C_COMMENT = re.compile(r"/\*(.*?)\*/", re.S)
#: comments the generated code may hold: those of C_HELPERS, and fixed ones of the templates
_C_COMMENTS = frozenset(_C_COMMENT.findall(C_HELPERS)) | {
    " the conditional log-density of every row at D linear predictors (pointwise log-likelihood) "}
_C_NAMES = _C_NAMES | frozenset(re.findall(r"(?<![A-Za-z0-9_.])[A-Za-z_][A-Za-z0-9_]*", _C_COMMENT.sub(" ", C_HELPERS)))
#: an input expression of an :class:`Emitter` (``x[st + i]``, ``L0[1][0]``)
_C_INPUT = re.compile(r"[A-Za-z0-9_\[\]() +*.-]+")


def _check_input(cexpr: str) -> None:
    """An :class:`Emitter`'s input: an expression of the package's names, numbers and indexing."""
    if _C_INPUT.fullmatch(cexpr) is None or not all(_c_name_ok(t) for t in re.findall(
            r"(?<![A-Za-z0-9_.])[A-Za-z_][A-Za-z0-9_]*", cexpr)):
        raise ValueError(f"Emitter input {cexpr[:40]!r} is not an expression of the package's C names")


def _c_name_ok(name: str) -> bool:
    return name in _C_WORDS or name in _C_NAMES or _C_NUMBERED.fullmatch(name) is not None


def _c_reject(what: str, text: str) -> None:
    shown = text if len(text) <= 60 else text[:57] + "..."
    raise RuntimeError(f"internal error: the generated C holds {what} {shown!r}, outside the package's own "
                       "vocabulary; names of columns, terms and priors must never reach the C code -- please "
                       "report this")


def check_c_source(src: str) -> None:
    """Check that a generated C source holds only the package's own text.

    No user text (column, term, level or prior names) may reach the C: names select
    indices, never identifiers.  This makes that structural: every character is printable
    ASCII without backslash or backtick, the preprocessor lines and the comments are the
    package's fixed ones (or ``/* term <index> */``), double quotes appear only in
    ``#include "nuts.h"``, and every identifier is a C word, a fixed name of the templates
    or a numbered name (``sd0``, ``r17``, ``f0_3``).

    Raises
    ------
    RuntimeError
        The source breaks a rule (a bug of the generator; the offending text is shown cut).
    """
    bad = set(src) - _C_CHARS
    if bad:
        _c_reject("the character(s)", "".join(sorted(bad)))
    for body in _C_COMMENT.findall(src):
        if body not in _C_COMMENTS and re.fullmatch(r" term \d+ ", body) is None:
            _c_reject("the comment", body)
    code = _C_COMMENT.sub(" ", src)
    lines = []
    for ln in code.split("\n"):
        t = ln.strip()
        if t.startswith("#"):
            if t not in _C_DIRECTIVES and re.fullmatch(r"#define NPC \d+", t) is None:
                _c_reject("the directive", t)
            continue
        lines.append(ln)
    code = "\n".join(lines)
    for tok in ("/*", "*/", "//", "#", '"'):
        if tok in code:
            _c_reject("the text", tok)
    for name in set(re.findall(r"(?<![A-Za-z0-9_.])[A-Za-z_][A-Za-z0-9_]*", code)):
        if not _c_name_ok(name):
            _c_reject("the identifier", name)

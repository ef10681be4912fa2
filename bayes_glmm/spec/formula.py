"""Parse lme4 model formulas (pure string processing, no data).

A formula such as ``"cbind(incidence, size - incidence) ~ period + (1 | herd)"`` is
parsed once into an immutable :class:`ParsedFormula`; :mod:`bayes_glmm.spec.design` then
evaluates it against a DataFrame.  The supported syntax is documented in
``docs/formula.md``.  This module also holds the small, safe evaluator used for the
response, ``cbind`` parts and ``offset(...)`` expressions (:func:`eval_expr`).
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Mapping

import numpy as np

__all__ = ["ParsedFormula", "ParsedRandom", "parse_formula", "tokens", "eval_expr", "deparse",
           "EXPR_FUNCTIONS", "FORMULA_FUNCTIONS", "NUMPY_FUNCTIONS", "allowed_function",
           "check_functions"]

_TOKEN_RE = re.compile(
    r"""(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
      |(?P<bt>`[^`]*`)
      |(?P<str>'[^']*'|"[^"]*")
      |(?P<id>(?:[^\W\d]|\.(?!\d))[\w.]*)""",
    re.X,
)

#: a syntactic name (R and Python: letters of any script, digits, '_' and '.'; not starting with a digit)
_NAME = r"(?:[^\W\d]|\.(?!\d))[\w.]*"

#: functions allowed in response, ``cbind`` and ``offset`` expressions
EXPR_FUNCTIONS = {
    "log": np.log, "exp": np.exp, "sqrt": np.sqrt, "abs": np.abs, "log1p": np.log1p,
    "expm1": np.expm1, "log2": np.log2, "log10": np.log10, "I": lambda x: x,
    "as.numeric": lambda x: np.asarray(x, dtype=float),
}
_CONSTANTS = {"TRUE": True, "FALSE": False, "True": True, "False": False, "pi": np.pi}

#: functions the fixed part, random-term left-hand sides and ``zi=`` may call: formulae
#: evaluates these terms, so every other name (``np.lib...``, ``__import__``, ``getattr``)
#: is refused before it runs -- formulas come from CSV headers, config files and the CLI
FORMULA_FUNCTIONS = ("log", "exp", "sqrt", "abs", "log1p", "expm1", "log2", "log10",
                     "C", "factor", "I", "scale", "center", "standardize", "poly")
#: NumPy functions callable as ``np.<name>(x)``: elementwise, no I/O, no state
NUMPY_FUNCTIONS = ("log", "log1p", "log2", "log10", "exp", "expm1", "sqrt", "cbrt", "square",
                   "abs", "sign", "floor", "ceil", "sin", "cos", "tan", "arcsin", "arccos",
                   "arctan", "sinh", "cosh", "tanh", "arcsinh", "arctanh")


@dataclass(frozen=True)
class Token:
    """An identifier (or backticked name) found in a formula fragment."""

    name: str
    pos: int
    is_call: bool  # followed by "(": a function name
    is_keyword: bool  # followed by a single "=": a keyword argument name


def tokens(text: str) -> list:
    """Identifiers of ``text`` as :class:`Token` (numbers and string literals skipped)."""
    out = []
    for m in _TOKEN_RE.finditer(text):
        kind = m.lastgroup
        if kind in ("num", "str"):
            continue
        name = m.group()[1:-1] if kind == "bt" else m.group()
        rest = text[m.end():].lstrip()
        is_call = kind == "id" and rest.startswith("(")
        is_kw = kind == "id" and rest.startswith("=") and not rest.startswith("==")
        out.append(Token(name, m.start(), is_call, is_kw))
    return out


def _scan(text: str):
    """Yield (position, char, depth) for characters outside quotes/backticks."""
    depth, quote = 0, None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in "`'\"":
            quote = ch
            continue
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        yield i, ch, depth


def _check_balanced(text: str, formula: str, offset: int = 0) -> None:
    stack = []
    quote = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in "`'\"":
            quote = ch
            continue
        if ch in "([":
            stack.append((ch, i))
        elif ch in ")]":
            if not stack or stack[-1][0] != {")": "(", "]": "["}[ch]:
                raise ValueError(
                    f"unbalanced parentheses in formula {formula!r}: {ch!r} at position {i + offset} "
                    f"has no matching opening bracket; check the parentheses")
            stack.pop()
    if quote:
        raise ValueError(f"unterminated quote or backtick in formula {formula!r}; close it")
    if stack:
        ch, i = stack[-1]
        raise ValueError(
            f"unbalanced parentheses in formula {formula!r}: {ch!r} at position {i + offset} "
            f"is never closed; add the missing ')'")


def _split_top(text: str, seps: str) -> list:
    """Split at top-level characters in ``seps``: list of (sep_before, piece, start)."""
    parts, start, sep = [], 0, ""
    for i, ch, depth in _scan(text):
        if depth == 0 and ch in seps:
            parts.append((sep, text[start:i], start))
            sep, start = ch, i + 1
    parts.append((sep, text[start:], start))
    return parts


def _strip_parens(text: str) -> str:
    """Remove redundant enclosing parentheses: ``"((a))" -> "a"``."""
    text = text.strip()
    while text.startswith("(") and text.endswith(")"):
        closes_at = next((i for i, ch, d in _scan(text) if d == 0), None)
        if closes_at != len(text) - 1:
            break
        text = text[1:-1].strip()
    return text


def _norm(text: str) -> str:
    """Collapse runs of whitespace to one space outside backticks and quotes: a backticked
    name such as `` `a  b` `` (two spaces, or a tab) is a column name and is kept exactly."""
    out, quote, gap = [], None, False
    for ch in text.strip():
        if quote:
            out.append(ch)
            quote = None if ch == quote else quote
            continue
        if ch.isspace():
            gap = True
            continue
        if gap:
            out.append(" ")
            gap = False
        if ch in "`'\"":
            quote = ch
        out.append(ch)
    return "".join(out)


def _to_python(expr: str):
    """Python source for an R expression plus the placeholder -> name map."""
    names: dict = {}
    pieces, last = [], 0
    for m in _TOKEN_RE.finditer(expr):
        kind, tok = m.lastgroup, m.group()
        if kind in ("bt", "id") and not (kind == "id" and tok in _CONSTANTS):
            name = tok[1:-1] if kind == "bt" else tok
            key = names.setdefault(name, f"_v{len(names)}")
            pieces += [expr[last:m.start()], key]
            last = m.end()
    pieces.append(expr[last:])
    src = "".join(pieces)
    # R's power operator; quotes were tokenized, so '^' here is always an operator
    src = src.replace("^", "**")
    return src, {v: k for k, v in names.items()}


def deparse(expr: str) -> str:
    """Normalise spacing of an expression the way R prints it (``size-x`` -> ``size - x``)."""
    src, back = _to_python(expr)
    try:
        out = ast.unparse(ast.parse(src.strip(), mode="eval"))
    except SyntaxError:
        return _norm(expr)
    for key in sorted(back, key=len, reverse=True):
        name = back[key]
        shown = name if re.fullmatch(_NAME, name) else f"`{name}`"
        out = re.sub(rf"\b{key}\b", lambda _m, s=shown: s, out)
    return out.replace(" ** ", "^")


def allowed_function(name: str) -> bool:
    """Whether a formula term may call ``name`` (:data:`FORMULA_FUNCTIONS`, ``np.<NUMPY_FUNCTIONS>``)."""
    if name in FORMULA_FUNCTIONS:
        return True
    return name.startswith("np.") and name[3:] in NUMPY_FUNCTIONS


def _allowed_list() -> str:
    return ", ".join(FORMULA_FUNCTIONS) + ", np." + ", np.".join(NUMPY_FUNCTIONS)


def _masked(text: str, where: str, formula: str) -> str:
    """``text`` with the insides of strings and backticked names blanked (delimiters kept).

    formulae ends a string at either quote character, so a string holding the other one
    (``"a' + f(x) + 'b"``) would be read as code there while it looks like data here:
    such strings are refused.
    """
    out, quote = [], None
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
                out.append(ch)
            elif quote != "`" and ch in "'\"":
                raise ValueError(f"string with mixed quotes in {where} of formula {formula!r}; write strings "
                                 f"with one kind of quote and no quote inside")
            else:
                out.append(" ")
            continue
        if ch in "`'\"":
            quote = ch
        out.append(ch)
    return "".join(out)


def check_functions(text: str, where: str, formula: str) -> None:
    """Refuse any call in ``text`` that is not on the allowlist, before formulae evaluates it.

    Parameters
    ----------
    text : str
        A fixed-part term or a random-term left-hand side.
    where : str
        Its place in the formula, for the message.
    formula : str

    Raises
    ------
    ValueError
        Naming the function and listing the allowed ones.  Calls of anything but a plain
        allowed name (``f(x)(y)``, `` `name`(x) ``) are refused too, and so is every
        attribute chain (``np.lib...``, ``log.__globals__...``) not on the list.
    """
    masked = _masked(text, where, formula)
    # a name not called is only ever looked up whole (a column), so checking callees suffices
    for i, ch in enumerate(masked):
        if ch != "(":
            continue
        before = masked[:i].rstrip()
        m = re.search(r"[\w.]+$", before)
        if m:
            name = m.group()
            if allowed_function(name):
                continue
            what = f"unknown function {name!r}"
        elif before and before[-1] in ")]}`'\"":
            what = "a call of something other than a function name"
        else:
            continue  # a grouping parenthesis
        raise ValueError(f"{what} in {where} of formula {formula!r}; supported functions: {_allowed_list()}; "
                         f"otherwise add a computed column")


_BINOPS = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.true_divide,
           ast.Pow: np.power, ast.Mod: np.mod}
_CMPOPS = {ast.Lt: np.less, ast.Gt: np.greater, ast.LtE: np.less_equal, ast.GtE: np.greater_equal,
           ast.Eq: np.equal, ast.NotEq: np.not_equal}


def eval_expr(expr: str, data: Mapping, what: str = "expression") -> np.ndarray:
    """Evaluate an arithmetic R expression (``"size - incidence"``, ``"log(weeks)"``).

    Parameters
    ----------
    expr : str
        Names (backticks allowed), numbers, ``+ - * / ^ %``, comparisons and the
        functions in :data:`EXPR_FUNCTIONS`.
    data : mapping
        Column name -> array.
    what : str
        Where the expression comes from, for error messages.

    Returns
    -------
    ndarray
    """
    src, back = _to_python(expr)
    try:
        tree = ast.parse(src.strip(), mode="eval")
    except SyntaxError:
        raise ValueError(f"cannot parse {what} {expr!r}; write it as an arithmetic expression") from None

    def ev(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in back:
                name = back[node.id]
                if name not in data:
                    raise ValueError(f"unknown column {name!r} in {what} {expr!r}; check the spelling")
                return np.asarray(data[name])
            return _CONSTANTS[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMPOPS:
            return _CMPOPS[type(node.ops[0])](ev(node.left), ev(node.comparators[0]))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords
                and back.get(node.func.id) in EXPR_FUNCTIONS and len(node.args) == 1):
            return EXPR_FUNCTIONS[back[node.func.id]](ev(node.args[0]))
        raise ValueError(
            f"unsupported construct in {what} {expr!r}; allowed are column names, numbers, "
            f"+ - * / ^ %, comparisons and {sorted(EXPR_FUNCTIONS)}; otherwise add a computed column")

    with np.errstate(all="ignore"):
        return ev(tree.body)


@dataclass(frozen=True)
class ParsedRandom:
    """One random-effects term after expanding ``/`` nesting.

    Attributes
    ----------
    lhs_terms : tuple of str
        Model terms of the left-hand side, intercept markers removed (``("x",)``).
    intercept : bool
        Whether the term has a random intercept (``(1 + x | g)``, ``(x | g)``).
    group : str
        Grouping-factor label, lme4 style: ``"g"``, ``"a:b"``, ``"b:a"`` for ``a/b``.
    group_vars : tuple of str
        Columns whose interaction forms the grouping factor, slowest-varying first.
    correlated : bool
        False for ``||`` (and for ``diag(...)``).
    text : str
        The term as written, for messages.
    structure : str
        The covariance structure's keyword (:data:`bayes_glmm.covariance.STRUCTURES`):
        ``"us"`` for ``(x | g)``, ``"diag"`` for ``(x || g)``, or the keyword written,
        ``ar1(0 + factor(t) | g)``.
    """

    lhs_terms: tuple
    intercept: bool
    group: str
    group_vars: tuple
    correlated: bool
    text: str
    structure: str = "us"

    @property
    def lhs(self) -> str:
        """Left-hand side for formulae: ``"1 + x"`` or ``"0 + f"``."""
        return " + ".join((("1",) if self.intercept else ("0",)) + self.lhs_terms)


@dataclass(frozen=True)
class ParsedFormula:
    """An lme4 formula split into its parts (see :func:`parse_formula`).

    Attributes
    ----------
    formula : str
    response : str
        Response expression (``"Response"``) or ``""`` when ``cbind`` is used.
    cbind : tuple of str or None
        ``(successes, failures)`` expressions of ``cbind(s, f)``.
    fixed_terms : tuple of str
        Fixed-effect terms, e.g. ``("Month*Treatment",)``; removals keep a ``"-"`` prefix.
    intercept : bool
    offsets : tuple of str
        Expressions inside each ``offset(...)``; they are summed.
    random : tuple of ParsedRandom
    """

    formula: str
    response: str
    cbind: tuple | None
    fixed_terms: tuple
    intercept: bool
    offsets: tuple
    random: tuple

    @property
    def response_label(self) -> str:
        """``"Response"`` or ``"cbind(incidence, size - incidence)"``."""
        if self.cbind is not None:
            return f"cbind({deparse(self.cbind[0])}, {deparse(self.cbind[1])})"
        return deparse(self.response)

    @property
    def fixed_rhs(self) -> str:
        """Right-hand side for formulae, e.g. ``"1 + Month*Treatment"``."""
        out = "1" if self.intercept else "0"
        for t in self.fixed_terms:
            out += f" - {t[1:]}" if t.startswith("-") else f" + {t}"
        return out.replace("^", "**")


def _group_parts(gtext: str, term: str, formula: str) -> list:
    """``"a/b"`` -> [("a", ("a",)), ("b:a", ("b", "a"))]; ``"a:b"`` -> [("a:b", ("a", "b"))]."""
    out, prev_label, prev_vars = [], None, ()
    for _, part, _ in _split_top(gtext, "/"):
        part = _strip_parens(part)
        pieces = [_strip_parens(p) for _, p, _ in _split_top(part, ":")]
        names = []
        for p in pieces:
            if not p:
                raise ValueError(f"empty grouping factor in random term {term!r} of formula {formula!r}; "
                                 f"write (lhs | group)")
            m = re.fullmatch(rf"`([^`]+)`|({_NAME})", p)
            if not m:
                if re.fullmatch(rf"{_NAME}(\s+{_NAME})+", p):
                    raise ValueError(f"grouping factor {p!r} in random term {term!r}: names with spaces need "
                                     f"backticks; write `{p}`")
                raise ValueError(f"grouping factor {p!r} in random term {term!r} must be a column name "
                                 f"or an interaction a:b; compute it as a column first")
            names.append(m.group(1) or m.group(2))
        label = ":".join(pieces)
        if prev_label is not None:
            wrap = (lambda s: f"({s})" if ":" in s else s)
            label, names = f"{wrap(label)}:{wrap(prev_label)}", names + list(prev_vars)
        out.append((label, tuple(names)))
        prev_label, prev_vars = label, tuple(names)
    return out


def _parse_random(text: str, pos: int, formula: str, structure: str | None = None) -> list:
    inner = _strip_parens(text)
    bars = [i for i, ch, d in _scan(inner) if d == 0 and ch == "|"]
    correlated = True
    if len(bars) == 2 and bars[1] == bars[0] + 1:
        if structure is not None:
            raise ValueError(f"random term {structure}{text} at position {pos} of formula {formula!r}: "
                             f"a covariance structure takes a single '|'; write {structure}(lhs | group)")
        correlated, bars = False, bars[:1]
    if len(bars) != 1:
        raise ValueError(f"random term {text!r} at position {pos} of formula {formula!r} must contain "
                         f"exactly one '|' (or '||'); write (lhs | group)")
    lhs = inner[:bars[0]].strip()
    gtext = inner[bars[0] + (1 if correlated else 2):].strip()
    if not lhs:
        raise ValueError(f"random term {text!r} at position {pos} has an empty left-hand side; "
                         f"write (1 | group) for a random intercept")
    if not gtext:
        raise ValueError(f"random term {text!r} at position {pos} of formula {formula!r} has an empty "
                         f"group; write (lhs | group)")
    intercept, terms = True, []
    for sign, piece, _ in _split_top(lhs, "+-"):
        piece = _strip_parens(piece)
        if not piece:
            continue
        if piece in ("0", "1"):
            intercept = (piece == "1") == (sign != "-")
        elif sign == "-":
            raise ValueError(f"term removal '- {piece}' is not supported inside random term {text!r}; "
                             f"list the wanted terms instead")
        else:
            check_functions(piece, f"random term {_norm(text)!r}", formula)
            terms.append(piece.replace("^", "**"))
    if not intercept and not terms:
        raise ValueError(f"random term {text!r} has no coefficients; use (1 | group) or (0 + x | group)")
    label_text = f"{structure or ''}({_norm(lhs)} {'|' if correlated else '||'} {_norm(gtext)})"
    if structure is None:
        structure = "us" if correlated else "diag"
    correlated = correlated and structure != "diag"
    return [ParsedRandom(tuple(terms), intercept, label, gvars, correlated, label_text, structure)
            for label, gvars in _group_parts(gtext, label_text, formula)]


def _structure_call(piece: str):
    """``("ar1", "(0 + factor(t) | g)")`` when ``piece`` is a covariance structure's keyword
    applied to one parenthesized random term, else None."""
    from ..covariance import STRUCTURES

    m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\s*(\(.*\))", piece, re.S)
    if m is None or m.group(1) not in STRUCTURES:
        return None
    arg = m.group(2)
    if _strip_parens(arg) == arg or not any(d == 0 and ch == "|" for _, ch, d in _scan(_strip_parens(arg))):
        return None
    return m.group(1), arg


def parse_formula(formula: str) -> ParsedFormula:
    """Parse an lme4 formula string.

    Parameters
    ----------
    formula : str
        E.g. ``"Response ~ Month * Treatment + (1 | ID)"``.

    Returns
    -------
    ParsedFormula

    Raises
    ------
    ValueError
        Naming the offending position or term for syntax errors.

    Examples
    --------
    >>> p = parse_formula("y ~ x + (x || g) + (1 | a/b)")
    >>> [(r.group, r.correlated) for r in p.random]
    [('g', False), ('a', True), ('b:a', True)]
    """
    from .validate import check_formula_text

    check_formula_text(formula)
    _check_balanced(formula, formula)
    op = re.search(r"%[^%\s]*%", "".join(ch for _, ch, _ in _scan(formula)))
    if op:
        raise ValueError(f"operator {op.group()!r} in formula {formula!r} is not supported; write nesting "
                         f"as a:b or (1 | a/b), or compute the term as a column")
    tildes = [i for i, ch, d in _scan(formula) if ch == "~"]
    if not tildes:
        raise ValueError(f"formula {formula!r} has no '~'; write 'response ~ predictors'")
    if len(tildes) > 1:
        raise ValueError(f"formula {formula!r} has more than one '~' (second at position {tildes[1]})")
    t = tildes[0]
    lhs, rhs = formula[:t].strip(), formula[t + 1:]
    if not lhs:
        raise ValueError(f"formula {formula!r} has no response left of '~'; write 'response ~ ...'")
    response, cbind = lhs, None
    m = re.fullmatch(r"cbind\s*\((.*)\)", lhs, re.S)
    if m:
        args = [p.strip() for _, p, _ in _split_top(m.group(1), ",")]
        if len(args) != 2 or not all(args):
            raise ValueError(f"cbind in {formula!r} needs exactly two arguments: cbind(successes, failures)")
        response, cbind = "", tuple(args)
    if not rhs.strip():
        raise ValueError(f"formula {formula!r} has nothing right of '~'; use '~ 1' for intercept only")
    tail = rhs.rstrip()[-1]
    if tail in "+-*/:^":
        raise ValueError(f"formula {formula!r} ends with the operator {tail!r}; add the missing term or "
                         f"remove the {tail!r}")
    bar = next((i for i, ch, d in _scan(rhs) if d == 0 and ch == "|"), None)
    if bar is not None:
        raise ValueError(f"'|' at position {t + 1 + bar} of formula {formula!r} is outside parentheses; "
                         f"random terms must be written in parentheses, e.g. (1 | g)")
    intercept, fixed, offsets, random = True, [], [], []
    for sign, piece, start in _split_top(rhs, "+-"):
        pos = t + 1 + start + (len(piece) - len(piece.lstrip()))
        piece = piece.strip()
        if not piece:  # leading sign ("~ -1 + x") or "+ -1"
            continue
        bare = _strip_parens(piece)
        if bare in ("0", "1"):
            intercept = (bare == "1") == (sign != "-")
            continue
        om = re.fullmatch(r"offset\s*\((.*)\)", piece, re.S)
        if om and _strip_parens(piece[piece.index("("):]) == om.group(1).strip():
            if sign == "-":
                raise ValueError(f"'- offset(...)' at position {pos} is not supported; use offset(-(...))")
            offsets.append(om.group(1).strip())
            continue
        call = _structure_call(piece)
        if call is not None:
            if sign == "-":
                raise ValueError(f"random term {piece!r} at position {pos} of formula {formula!r} must be "
                                 f"added on its own as '+ {call[0]}(lhs | group)'")
            random.extend(_parse_random(call[1], pos, formula, call[0]))
            continue
        if any(ch == "|" for _, ch, _ in _scan(piece)):
            is_bar = bare != piece and any(d == 0 and ch == "|" for _, ch, d in _scan(bare))
            if not is_bar or sign == "-":
                raise ValueError(f"random term {piece!r} at position {pos} of formula {formula!r} must be "
                                 f"added on its own as '+ (lhs | group)'")
            random.extend(_parse_random(piece, pos, formula))
            continue
        check_functions(piece, f"term {_norm(piece)!r} of the fixed part", formula)
        fixed.append(("-" if sign == "-" else "") + _norm(piece))
    if response and _norm(response) in fixed:
        raise ValueError(f"the response {_norm(response)!r} also appears as a predictor in formula {formula!r}; "
                         f"remove it from the right of '~'")
    return ParsedFormula(formula, response, cbind, tuple(fixed), intercept, tuple(offsets), tuple(random))

"""Parsing of lme4 formula strings (no data involved)."""
import numpy as np
import pytest

from bayes_glmm.spec.formula import deparse, eval_expr, parse_formula, tokens


def test_plain_response_and_fixed():
    p = parse_formula("Response ~ Month * Treatment + (1 | ID)")
    assert p.response == "Response" and p.cbind is None
    assert p.fixed_terms == ("Month * Treatment",)
    assert p.intercept is True and p.offsets == ()
    assert p.fixed_rhs == "1 + Month * Treatment"
    (r,) = p.random
    assert (r.lhs_terms, r.intercept, r.group, r.group_vars, r.correlated) == ((), True, "ID", ("ID",), True)
    assert r.lhs == "1"


def test_cbind_response_with_expression():
    p = parse_formula("cbind(incidence, size-incidence) ~ period + (1|herd)")
    assert p.cbind == ("incidence", "size-incidence")
    assert p.response_label == "cbind(incidence, size - incidence)"


@pytest.mark.parametrize("f", ["y ~ 0 + x", "y ~ x - 1", "y ~ -1 + x", "y ~ x + -1"])
def test_no_intercept(f):
    p = parse_formula(f)
    assert p.intercept is False and p.fixed_terms == ("x",)
    assert p.fixed_rhs == "0 + x"


def test_offsets_are_collected():
    p = parse_formula("count ~ offset(log(weeks)) + followup * group + offset(z) + (1 + followup | id)")
    assert p.offsets == ("log(weeks)", "z")
    assert p.fixed_terms == ("followup * group",)
    assert p.random[0].lhs_terms == ("followup",) and p.random[0].intercept


@pytest.mark.parametrize("lhs,terms,icpt", [("x", ("x",), True), ("1 + x", ("x",), True),
                                            ("0 + x", ("x",), False), ("x - 1", ("x",), False),
                                            ("0 + f", ("f",), False), ("1", (), True)])
def test_random_lhs(lhs, terms, icpt):
    (r,) = parse_formula(f"y ~ 1 + ({lhs} | g)").random
    assert r.lhs_terms == terms and r.intercept is icpt and r.correlated


def test_double_bar_is_one_uncorrelated_term():
    (r,) = parse_formula("y ~ Days + (Days || Subject)").random
    assert r.correlated is False and r.lhs_terms == ("Days",) and r.intercept
    assert r.text == "(Days || Subject)"


def test_nested_groups_expand_lme4_style():
    p = parse_formula("y ~ 1 + (1 | a/b)")
    assert [(r.group, r.group_vars) for r in p.random] == [("a", ("a",)), ("b:a", ("b", "a"))]
    p = parse_formula("y ~ 1 + (1 | a/b/c)")
    assert [r.group for r in p.random] == ["a", "b:a", "c:(b:a)"]
    assert p.random[2].group_vars == ("c", "b", "a")


def test_interaction_group_and_crossed_terms():
    p = parse_formula("y ~ x + (1|a:b) + (1|site) + (0 + x|year)")
    assert [(r.group, r.group_vars) for r in p.random] == [
        ("a:b", ("a", "b")), ("site", ("site",)), ("year", ("year",))]


def test_redundant_parentheses_and_backticks():
    p = parse_formula("y ~ ((1 | g)) + `my col` + (1 | `the group`)")
    assert p.fixed_terms == ("`my col`",)
    assert [r.group_vars for r in p.random] == [("g",), ("the group",)]


def test_term_removal_passed_on():
    p = parse_formula("y ~ a*b - a:b")
    assert p.fixed_terms == ("a*b", "-a:b")
    assert p.fixed_rhs == "1 + a*b - a:b"


def test_power_becomes_python_power_for_formulae():
    assert parse_formula("y ~ I(x^2)").fixed_rhs == "1 + I(x**2)"


@pytest.mark.parametrize("f,msg", [
    ("y ~ (1 | g", "'(' at position 4 is never closed"),
    ("y ~ x)", "')' at position 5 has no matching"),
    ("y x + z", "has no '~'"),
    ("y ~ x ~ z", "more than one '~'"),
    ("~ x", "no response"),
    ("y ~ ", "nothing right of '~'"),
    ("y ~ x | g", "'|' at position 6"),
    ("y ~ x + (1 | )", "empty group"),
    ("y ~ (|g)", "empty left-hand side"),
    ("y ~ (1|g):x", "must be added on its own"),
    ("y ~ (1|g|h)", "exactly one '|'"),
    ("y ~ (1|a:)", "empty grouping factor"),
    ("y ~ (1|log(g))", "must be a column name"),
    ("cbind(a) ~ x", "exactly two arguments"),
    ("y ~ (0|g)", "no coefficients"),
])
def test_syntax_errors(f, msg):
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)").replace("|", r"\|")):
        parse_formula(f)


def test_non_string_formula():
    with pytest.raises(ValueError, match="formula must be a string"):
        parse_formula(None)


def test_tokens_skip_numbers_strings_and_mark_calls():
    toks = tokens("log(x1 + 1e-5) + C(f, levels='a') + `a b` + .5*z")
    assert [(t.name, t.is_call, t.is_keyword) for t in toks] == [
        ("log", True, False), ("x1", False, False), ("C", True, False), ("f", False, False),
        ("levels", False, True), ("a b", False, False), ("z", False, False)]


def test_eval_expr_and_deparse():
    data = {"size": np.array([10.0, 4.0]), "inc": np.array([3.0, 1.0]), "a.b": np.array([1.0, np.e])}
    assert eval_expr("size - inc", data).tolist() == [7.0, 3.0]
    assert eval_expr("log(a.b) + 2^2", data).tolist() == [4.0, 5.0]
    assert eval_expr("size > 5", data).tolist() == [True, False]
    assert deparse("size-inc") == "size - inc" and deparse("x^2") == "x^2"
    with pytest.raises(ValueError, match="unknown column 'nope'"):
        eval_expr("nope + 1", data)
    with pytest.raises(ValueError, match="unsupported construct"):
        eval_expr("size.sum()", {"size": [1.0]})

"""build_spec: model matrices, codes, responses, NA policy, names and new_design."""
import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest

from bayes_glmm.spec.design import build_spec, level_label
from bayes_glmm.families import get_family

REF = pathlib.Path(__file__).parent / "reference" / "lme4_reference.json"
BERN, BINOM, POIS, GAUSS = (get_family(f) for f in ("bernoulli", "binomial", "poisson", "gaussian"))


@pytest.fixture
def toe():
    """Toenail-like: integer ID and Treatment, numeric Month, 0/1 response."""
    return pd.DataFrame({"ID": [3, 3, 1, 1, 2, 2], "Response": [1, 0, 1, 1, 0, 0],
                         "Treatment": [1, 1, 0, 0, 1, 1], "Month": [0.0, 1.5, 0.0, 2.0, 0.0, 3.0]})


@pytest.fixture
def epi():
    """Epilepsy-like: bool followup, integer group, weeks for the offset."""
    return pd.DataFrame({"id": [1, 1, 1, 2, 2, 2, 3, 3], "count": [11, 5, 3, 7, 4, 6, 2, 1],
                         "weeks": [8, 2, 2, 8, 2, 2, 8, 2], "group": [0, 0, 0, 1, 1, 1, 0, 0],
                         "followup": [False, True, True, False, True, True, False, True]})


def test_toenail_like_matrices(toe):
    s = build_spec("Response ~ Month * Treatment + (1 | ID)", toe, BERN)
    assert s.fixed_names == ("(Intercept)", "Month", "Treatment", "Month:Treatment")
    m, t = toe["Month"].to_numpy(), toe["Treatment"].to_numpy()
    np.testing.assert_array_equal(s.X, np.column_stack([np.ones(6), m, t, m * t]))
    (term,) = s.terms
    assert (term.name, term.group, term.coef_names, term.correlated) == ("ID", "ID", ("(Intercept)",), False)
    assert term.levels.tolist() == [1, 2, 3]
    assert term.codes.tolist() == [2, 2, 0, 0, 1, 1]
    np.testing.assert_array_equal(term.Xr, np.ones((6, 1)))
    assert s.y.tolist() == [1, 0, 1, 1, 0, 0] and s.trials is None and s.success_level is None
    assert s.response_name == "Response" and s.n_dropped == 0
    np.testing.assert_array_equal(s.offset, 0.0)
    np.testing.assert_array_equal(s.weights, 1.0)
    dense = np.zeros((6, 3))
    dense[np.arange(6), term.codes] = 1.0
    np.testing.assert_array_equal(s.Z().toarray(), dense)


def test_epilepsy_like_names_offset_and_slope(epi):
    s = build_spec("count ~ offset(log(weeks)) + followup * group + (1 + followup | id)", epi, POIS)
    assert s.fixed_names == ("(Intercept)", "followupTRUE", "group", "followupTRUE:group")
    f, g = epi["followup"].to_numpy(float), epi["group"].to_numpy(float)
    np.testing.assert_array_equal(s.X, np.column_stack([np.ones(8), f, g, f * g]))
    np.testing.assert_allclose(s.offset, np.log(epi["weeks"]))
    (term,) = s.terms
    assert term.coef_names == ("(Intercept)", "followupTRUE") and term.correlated
    np.testing.assert_array_equal(term.Xr, np.column_stack([np.ones(8), f]))
    assert term.n_theta == 3


def test_names_match_lme4_reference_fits():
    ref = json.loads(REF.read_text())
    for key, fit in ref["fits"].items():
        data = pd.DataFrame(ref["data"][fit["data"]])
        s = build_spec(fit["formula"], data, get_family(fit["family"]))
        assert s.fixed_names == tuple(fit["fixef_names"]), key
        assert s.n == fit["n_obs"], key
        grp = [g for g in dict.fromkeys(fit["varcorr"]["grp"]) if g != "Residual"]
        if "||" in fit["formula"]:  # lme4 splits (x || g) into g and g.1; we keep one term
            assert [t.name for t in s.terms] == ["Subject"] and not s.terms[0].correlated
        else:
            assert [t.name for t in s.terms] == grp, key


def test_cbind_binomial():
    d = pd.DataFrame({"inc": [2, 3, 0, 1], "size": [10, 5, 4, 6], "herd": ["1", "1", "2", "2"],
                      "period": ["1", "2", "1", "2"]})
    s = build_spec("cbind(inc, size-inc) ~ period + (1|herd)", d, BINOM)
    assert s.response_name == "cbind(inc, size - inc)"
    assert s.y.tolist() == [2, 3, 0, 1] and s.trials.tolist() == [10, 5, 4, 6]
    assert s.fixed_names == ("(Intercept)", "period2")
    s2 = build_spec("inc ~ period + (1|herd)", d, BINOM, trials="size")
    assert s2.trials.tolist() == [10, 5, 4, 6] and s2.response_name == "inc"
    s3 = build_spec("inc ~ 1 + (1|herd)", d, BINOM, trials=np.array([10, 5, 4, 6]))
    assert s3.trials.tolist() == [10, 5, 4, 6] and s3.X.shape == (4, 1)
    with pytest.raises(ValueError, match="not both"):
        build_spec("cbind(inc, size-inc) ~ 1 + (1|herd)", d, BINOM, trials="size")
    with pytest.raises(ValueError, match="family='binomial'"):
        build_spec("cbind(inc, size-inc) ~ 1 + (1|herd)", d, BERN)
    with pytest.raises(ValueError, match="needs trials"):
        build_spec("inc ~ 1 + (1|herd)", d, BINOM)
    with pytest.raises(ValueError, match="4 values but data has 4|3 values but data has 4"):
        build_spec("inc ~ 1 + (1|herd)", d, BINOM, trials=[1, 2, 3])


@pytest.mark.parametrize("values,expected,success", [
    ([True, False, True, False], [1, 0, 1, 0], True),
    (["yes", "no", "yes", "no"], [1, 0, 1, 0], "yes"),
    (pd.Categorical(["yes", "no", "yes", "no"], categories=["yes", "no"]), [0, 1, 0, 1], "no"),
    ([1.0, 0.0, 1.0, 0.0], [1, 0, 1, 0], None),
])
def test_bernoulli_response_conventions(values, expected, success):
    d = pd.DataFrame({"y": values, "g": ["a", "a", "b", "b"]})
    s = build_spec("y ~ 1 + (1|g)", d, BERN)
    assert s.y.tolist() == expected and s.success_level == success


def test_bernoulli_response_errors():
    d = pd.DataFrame({"y": ["a", "b", "c", "a"], "g": ["a", "a", "b", "b"], "n": [0, 1, 2, 1]})
    with pytest.raises(ValueError, match="exactly two levels; found 3"):
        build_spec("y ~ 1 + (1|g)", d, BERN)
    with pytest.raises(ValueError, match="must be 0/1"):
        build_spec("n ~ 1 + (1|g)", d, BERN)
    with pytest.raises(ValueError, match="must be numeric for family 'poisson'"):
        build_spec("y ~ 1 + (1|g)", d, POIS)


def test_na_rows_dropped_with_warning_and_data_untouched(toe):
    d = toe.astype({"Month": float})
    d.loc[1, "Month"] = np.nan
    d.loc[4, "Treatment"] = np.nan
    d["unused"] = np.nan
    before = d.copy(deep=True)
    with pytest.warns(UserWarning, match=r"dropped 2 of 6 rows .*'Month' \(1\), 'Treatment' \(1\)"):
        s = build_spec("Response ~ Month * Treatment + (1 | ID)", d, BERN)
    pd.testing.assert_frame_equal(d, before)
    assert s.n_dropped == 2 and s.n == 4
    assert s.row_index.tolist() == [0, 2, 3, 5]
    assert s.terms[0].codes.tolist() == [2, 0, 0, 1]


def test_data_not_mutated_bool_and_categorical(epi):
    d = epi.assign(grp=pd.Categorical(["b", "b", "b", "a", "a", "a", "c", "c"]))
    before = d.copy(deep=True)
    build_spec("count ~ followup * group + (followup | grp)", d, POIS)
    pd.testing.assert_frame_equal(d, before)


def test_unknown_names_suggest_fix(toe):
    with pytest.raises(ValueError, match="unknown column 'Montth' in fixed part.*did you mean 'Month'"):
        build_spec("Response ~ Montth + (1 | ID)", toe, BERN)
    with pytest.raises(ValueError, match=r"unknown column 'Mnth' in random term '\(Mnth \| ID\)'"):
        build_spec("Response ~ Month + (Mnth | ID)", toe, BERN)
    with pytest.raises(ValueError, match="grouping factor 'Id'.*did you mean 'ID'"):
        build_spec("Response ~ Month + (1 | Id)", toe, BERN)
    with pytest.raises(ValueError, match="unknown column 'Respons' in response"):
        build_spec("Respons ~ Month + (1 | ID)", toe, BERN)
    with pytest.raises(ValueError, match="unknown function 'lg'"):
        build_spec("Response ~ lg(Month) + (1 | ID)", toe, BERN)
    with pytest.raises(ValueError, match="weights='w' is not a column"):
        build_spec("Response ~ Month + (1 | ID)", toe, BERN, weights="w")


def test_single_level_group_errors(toe):
    d = toe.assign(one="x")
    with pytest.raises(ValueError, match="grouping factor 'one'.*single level"):
        build_spec("Response ~ Month + (1 | one)", d, BERN)


def test_factor_slopes_and_uncorrelated():
    d = pd.DataFrame({"y": [1.0, 2, 3, 4, 5, 6], "f": ["B", "A", "B", "A", "C", "C"],
                      "x": [0.5, 1, 2, 3, 4, 5], "g": ["u", "u", "v", "v", "w", "w"]})
    s = build_spec("y ~ 1 + (0 + f | g)", d, GAUSS)
    t = s.terms[0]
    assert t.coef_names == ("fA", "fB", "fC")
    np.testing.assert_array_equal(t.Xr, np.eye(3)[[1, 0, 1, 0, 2, 2]])
    s = build_spec("y ~ 1 + (f | g)", d, GAUSS)
    assert s.terms[0].coef_names == ("(Intercept)", "fB", "fC")
    s = build_spec("y ~ x + (x || g)", d, GAUSS)
    t = s.terms[0]
    assert t.coef_names == ("(Intercept)", "x") and t.correlated is False and t.n_theta == 2
    np.testing.assert_array_equal(t.Xr, np.column_stack([np.ones(6), d["x"]]))


def test_duplicate_group_names_and_ordering():
    d = pd.DataFrame({"y": np.arange(8.0), "x": np.arange(8.0) / 2,
                      "a": list("ppqqppqq"), "b": list("xyxyxyxy")})
    s = build_spec("y ~ x + (1 | a) + (0 + x | a) + (1 | a:b)", d, GAUSS)
    # lme4 orders terms by decreasing number of levels (stable): a:b (4), a (2), a.1 (2)
    assert [(t.name, t.group, t.n_levels) for t in s.terms] == [("a:b", "a:b", 4), ("a", "a", 2),
                                                                ("a.1", "a", 2)]
    assert s.terms[0].levels.tolist() == ["p:x", "p:y", "q:x", "q:y"]
    assert s.terms[0].codes.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert s.terms[2].coef_names == ("x",)


def test_nested_groups_codes():
    d = pd.DataFrame({"y": np.arange(6.0), "batch": list("AABBCC"), "cask": list("ababab")})
    s = build_spec("y ~ 1 + (1 | batch/cask)", d, GAUSS)
    assert [t.name for t in s.terms] == ["cask:batch", "batch"]
    assert s.terms[0].levels.tolist() == ["a:A", "a:B", "a:C", "b:A", "b:B", "b:C"]
    assert s.terms[0].codes.tolist() == [0, 3, 1, 4, 2, 5]
    assert s.terms[1].codes.tolist() == [0, 0, 1, 1, 2, 2]


def test_predictor_types_and_naming():
    d = pd.DataFrame({"y": [1.0, 2, 3, 4, 5, 6], "s": ["b", "a", "c", "a", "b", "c"],
                      "c": pd.Categorical(["lo", "hi", "lo", "hi", "lo", "hi"], categories=["lo", "hi"]),
                      "k": [1, 2, 3, 1, 2, 3], "x": [1.0, 2, 3, 4, 5, 6], "g": list("uuvvww")})
    s = build_spec("y ~ s + c + factor(k) + log(x) + I(x^2) + (1|g)", d, GAUSS)
    assert s.fixed_names == ("(Intercept)", "sb", "sc", "chi", "factor(k)2", "factor(k)3",
                             "log(x)", "I(x^2)")
    np.testing.assert_array_equal(s.X[:, 1], [1, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(s.X[:, 3], [0, 1, 0, 1, 0, 1])
    np.testing.assert_allclose(s.X[:, 6:], np.column_stack([np.log(d.x), d.x ** 2]))
    s = build_spec("y ~ 0 + (1|g)", d, GAUSS)
    assert s.X.shape == (6, 0) and s.fixed_names == ()
    s = build_spec("y ~ x:s + (1|g)", d, GAUSS)
    assert s.fixed_names == ("(Intercept)", "x:sa", "x:sb", "x:sc")
    assert level_label(True) == "TRUE" and level_label(2.0) == "2" and level_label(2.5) == "2.5"


def test_weights(toe):
    s = build_spec("Response ~ Month + (1 | ID)", toe.assign(w=[1, 2, 1, 2, 1, 2]), BERN, weights="w")
    assert s.weights.tolist() == [1, 2, 1, 2, 1, 2]
    with pytest.raises(ValueError, match="non-negative"):
        build_spec("Response ~ Month + (1 | ID)", toe, BERN, weights=[1, -1, 1, 1, 1, 1])


def test_new_design_round_trip(epi):
    s = build_spec("count ~ offset(log(weeks)) + followup * group + (1 + followup | id)", epi, POIS)
    nd = s.new_design(epi)
    np.testing.assert_array_equal(nd.X, s.X)
    np.testing.assert_allclose(nd.offset, s.offset)
    np.testing.assert_array_equal(nd.codes[0], s.terms[0].codes)
    np.testing.assert_array_equal(nd.Xr[0], s.terms[0].Xr)
    assert nd.labels[0].tolist() == epi["id"].tolist() and nd.index.equals(epi.index)


def test_new_design_new_levels_and_missing_columns():
    d = pd.DataFrame({"inc": [2, 3, 0, 1], "size": [10, 5, 4, 6], "herd": ["1", "1", "2", "2"],
                      "b": ["x", "y", "x", "y"], "period": ["1", "2", "1", "2"]})
    s = build_spec("cbind(inc, size - inc) ~ period + (1|herd) + (1|herd:b)", d, BINOM)
    new = pd.DataFrame({"inc": [1, 1], "size": [3, 7], "herd": ["2", "9"], "b": ["y", "x"],
                        "period": ["2", "1"]})
    nd = s.new_design(new)
    assert [t.name for t in s.terms] == ["herd:b", "herd"]
    assert nd.codes[0].tolist() == [3, -1] and nd.codes[1].tolist() == [1, -1]
    assert nd.labels[0].tolist() == ["2:y", "9:x"] and nd.labels[1].tolist() == ["2", "9"]
    np.testing.assert_array_equal(nd.X, [[1, 1], [1, 0]])
    assert nd.trials.tolist() == [3, 7]
    nd = s.new_design(new.drop(columns=["inc", "size"]))
    assert nd.trials is None
    with pytest.raises(ValueError, match=r"missing column\(s\) \['period', 'b'\]"):
        s.new_design(new.drop(columns=["period", "b"]))
    with pytest.raises(ValueError, match="fixed part"):
        s.new_design(new.assign(period=["7", "1"]))


def test_scale_index_based_z_small():
    """A moderately large design builds quickly and keeps Z index-based (codes + Xr)."""
    rng = np.random.default_rng(1)
    n = 20000
    d = pd.DataFrame({"y": rng.normal(size=n), "x": rng.normal(size=n), "g": rng.integers(0, 500, n)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = build_spec("y ~ x + (1|g)", d, GAUSS)
    t = s.terms[0]
    assert t.Xr.shape == (n, 1) and t.codes.shape == (n,) and t.n_levels == 500
    assert s.Z().nnz == n


def test_new_levels_match_on_printed_label_like_r_factors():
    # an integer-coded grouping factor is found from string labels in newdata, as in R
    df = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "x": [0.0, 1, 2, 0, 1, 2],
                       "g": [308, 308, 309, 309, 310, 310]})
    spec = build_spec("y ~ x + (1 | g)", df, get_family("gaussian"))
    nd = pd.DataFrame({"x": [0.0, 1.0, 2.0], "g": ["309", 310, "999"]})
    assert spec.new_design(nd).codes[0].tolist() == [1, 2, -1]

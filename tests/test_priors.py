"""Prior defaults (auto-scaling), overrides and the centered option."""
import ast
import pathlib

import numpy as np
import pandas as pd
import pytest

from bayes_glmm.families import get_family
from bayes_glmm.priors import Prior, as_prior, default_scales, resolve_centered, resolve_priors
from bayes_glmm.spec.model_spec import ModelSpec, RandomTerm


def make_spec(family="bernoulli", n_groups=10, n_per=6, seed=0, correlated=True, offset=None):
    rng = np.random.default_rng(seed)
    n = n_groups * n_per
    codes = np.repeat(np.arange(n_groups), n_per)
    x = rng.normal(scale=3.0, size=n)
    z = rng.integers(0, 2, size=n).astype(float)
    X = np.column_stack([np.ones(n), x, z])
    if family == "gaussian":
        y = 10 + 2 * x + rng.normal(scale=4.0, size=n)
    elif family == "poisson":
        y = rng.poisson(5.0, size=n).astype(float)
    else:
        y = rng.integers(0, 2, size=n).astype(float)
    term = RandomTerm(name="g", group="g", coef_names=("(Intercept)", "x"), correlated=correlated,
                      codes=codes, levels=pd.Index([f"L{i}" for i in range(n_groups)]), Xr=X[:, :2])
    return ModelSpec(formula="y ~ x + z + (x | g)", family=get_family(family), response_name="y", y=y,
                     trials=None, X=X, fixed_names=("(Intercept)", "x", "z"),
                     offset=np.zeros(n) if offset is None else offset, weights=np.ones(n),
                     terms=(term,), row_index=pd.RangeIndex(n))


def test_defaults_bernoulli_scaled_to_predictors():
    spec = make_spec("bernoulli")
    pr = resolve_priors(spec)
    sx, sz = np.std(spec.X[:, 1]), np.std(spec.X[:, 2])
    assert pr["Intercept"] == Prior("Normal", mu=0.0, sigma=2.5)
    assert pr["x"].name == "Normal" and pr["x"].args["sigma"] == pytest.approx(2.5 / sx)
    assert pr["z"].args["sigma"] == pytest.approx(2.5 / sz)
    assert pr["sd_g"].name == "HalfNormal"
    np.testing.assert_allclose(pr["sd_g"].args["sigma"], [2.5, 2.5 / sx])
    assert pr["corr_g"] == Prior("LKJ", eta=2.0)
    assert "sigma" not in pr and "beta" not in pr


def test_defaults_gaussian_use_sd_y():
    spec = make_spec("gaussian")
    pr = resolve_priors(spec)
    sy = np.std(spec.y)
    assert pr["Intercept"].args["mu"] == pytest.approx(np.mean(spec.y))
    assert pr["Intercept"].args["sigma"] == pytest.approx(2.5 * sy)
    assert pr["x"].args["sigma"] == pytest.approx(2.5 * sy / np.std(spec.X[:, 1]))
    assert pr["sigma"].name == "Exponential"
    assert pr["sigma"].args["lam"] == pytest.approx(1 / sy)


def test_defaults_poisson_intercept_at_log_mean_rate():
    spec = make_spec("poisson")
    sc = default_scales(spec)
    assert sc["s_y"] == 1.0
    assert sc["loc"] == pytest.approx(np.log(np.mean(spec.y)))
    # with an exposure offset the location is the log rate per unit exposure
    off = np.full(spec.n, np.log(10.0))
    spec2 = make_spec("poisson", offset=off)
    assert default_scales(spec2)["loc"] == pytest.approx(np.log(np.mean(spec.y) / 10.0))


def test_uncorrelated_term_has_no_corr_prior():
    pr = resolve_priors(make_spec(correlated=False))
    assert "corr_g" not in pr and "sd_g" in pr


def test_overrides_beta_and_coefficient_precedence():
    spec = make_spec()
    pr = resolve_priors(spec, {"beta": Prior("Normal", mu=0, sigma=1), "z": Prior("StudentT", nu=3, mu=0, sigma=2)})
    assert pr["x"] == Prior("Normal", mu=0, sigma=1)
    assert pr["z"] == Prior("StudentT", nu=3, mu=0, sigma=2)
    assert pr["Intercept"] == Prior("Normal", mu=0.0, sigma=2.5)  # "beta" leaves the intercept alone


def test_bambi_prior_is_accepted():
    bmb = pytest.importorskip("bambi")
    pr = resolve_priors(make_spec(), {"sd_g": bmb.Prior("Exponential", lam=1.0), "corr_g": bmb.Prior("LKJ", eta=4)})
    assert pr["sd_g"] == Prior("Exponential", lam=1.0)
    assert pr["corr_g"].args["eta"] == 4


def test_duck_typed_prior():
    class P:
        name = "HalfNormal"
        args = {"sigma": 3.0}
    assert as_prior(P()) == Prior("HalfNormal", sigma=3.0)


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ValueError, match=r"unknown prior key.*sd_ID.*valid keys.*sd_g"):
        resolve_priors(make_spec(), {"sd_ID": Prior("HalfNormal", sigma=1)})


@pytest.mark.parametrize("key,prior,msg", [
    ("sd_g", Prior("Normal", mu=0, sigma=1), "positive support"),
    ("x", Prior("HalfNormal", sigma=1), "real support"),
    ("corr_g", Prior("HalfNormal", sigma=1), "corr support"),
])
def test_support_mismatch(key, prior, msg):
    with pytest.raises(ValueError, match=msg):
        resolve_priors(make_spec(), {key: prior})


def test_bad_prior_objects():
    with pytest.raises(ValueError, match="unknown prior distribution 'Normall'"):
        Prior("Normall", mu=0)
    with pytest.raises(ValueError, match="unknown parameter.*'sd'"):
        Prior("Normal", mu=0, sd=1)
    with pytest.raises(ValueError, match="must be bayes_glmm.Prior or bambi.Prior"):
        resolve_priors(make_spec(), {"x": ("Normal", 0, 1)})
    with pytest.raises(ValueError, match="finite"):
        Prior("Normal", mu=0, sigma=np.inf)
    with pytest.raises(ValueError, match="must be a number"):
        Prior("Normal", mu="zero")


def test_overrides_not_mutated():
    over = {"beta": Prior("Normal", mu=0, sigma=1)}
    resolve_priors(make_spec(), over)
    assert list(over) == ["beta"]


def test_resolve_centered():
    spec = make_spec()
    assert resolve_centered(spec, False) == {"g": False}
    assert resolve_centered(spec, True) == {"g": True}
    assert resolve_centered(spec, {"g": True}) == {"g": True}
    with pytest.raises(ValueError, match=r"unknown term name.*'ID'.*terms are \['g'\]"):
        resolve_centered(spec, {"ID": True})
    with pytest.raises(ValueError, match="must be True or False"):
        resolve_centered(spec, {"g": "yes"})
    with pytest.raises(ValueError, match="centered must be"):
        resolve_centered(spec, "yes")


def _imported(tree, module_level_only=False):
    nodes = tree.body if module_level_only else ast.walk(tree)
    mods = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            mods.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            mods.add(("." * node.level) + node.module)
    return mods


def test_priors_package_does_not_import_pymc():
    pkg = pathlib.Path(__file__).parents[1].joinpath("bayes_glmm", "priors")
    files = sorted(pkg.glob("*.py"))
    assert {f.name for f in files} >= {"__init__.py", "prior.py", "kinds.py"}
    for f in files:
        mods = {m.split(".")[0] for m in _imported(ast.parse(f.read_text()))}
        assert not mods & {"pymc", "pytensor", "bambi"}, f.name
    # the kinds load with NumPy alone: scipy.stats (1.5 s) only inside PriorKind.scipy()
    top = _imported(ast.parse((pkg / "kinds.py").read_text()), module_level_only=True)
    assert top <= {"__future__", "functools", "math", "dataclasses", "typing", "numpy"}, top


def test_variance_prior_replaces_sd_prior():
    spec = make_spec(correlated=False)
    ig = Prior("InverseGamma", alpha=1.0, beta=1.0)
    pri = resolve_priors(spec, {"var_g": ig})
    assert pri["var_g"] == ig and "sd_g" not in pri
    assert "sd_g" in resolve_priors(spec)  # default stays an SD prior
    with pytest.raises(ValueError, match="must have positive support"):
        resolve_priors(spec, {"var_g": Prior("Normal", mu=0, sigma=1)})
    with pytest.raises(ValueError, match="either sd_g or var_g"):
        resolve_priors(spec, {"var_g": ig, "sd_g": Prior("HalfNormal", sigma=1)})


def test_variance_prior_accepted_for_correlated_term():
    """Before: refused ("the SDs enter LKJCholeskyCov"), although every sampler's layout builds
    the covariance from the SDs sqrt(var) and the correlations separately (graph = NumPy = C
    for it: tests/test_priors_trust.py)."""
    spec = make_spec(correlated=True)
    ig = Prior("InverseGamma", alpha=1.0, beta=[1.0, 0.5])
    pri = resolve_priors(spec, {"var_g": ig})
    assert pri["var_g"] == ig and "sd_g" not in pri and pri["corr_g"] == Prior("LKJ", eta=2.0)
    with pytest.raises(ValueError, match="either sd_g or var_g"):
        resolve_priors(spec, {"var_g": ig, "sd_g": Prior("HalfNormal", sigma=1)})


def test_slope_blocks():
    from bayes_glmm.priors import slope_blocks

    spec = make_spec()
    assert slope_blocks(spec, resolve_priors(spec)) == [("slopes", [1, 2])]
    mixed = resolve_priors(spec, {"z": Prior("StudentT", nu=3, mu=0, sigma=1)})
    assert slope_blocks(spec, mixed) == [("slope_x", [1]), ("slope_z", [2])]


def test_structured_terms_get_a_corr_prior():
    """Every term with correlation parameters (its structure's n_corr(q) > 0) has corr_<ident>:
    LKJ(eta=2) for us (x | g), LKJ(eta=1) -- (rho + 1) / 2 ~ Beta(1, 1), uniform -- for cs, ar1,
    toep; none for diag.  var_ is refused where the structure shares one SD among coefficients."""
    import bayes_glmm as bg

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=60), "g": np.repeat(np.arange(10), 6), "t": np.tile(np.arange(6), 10),
                       "y": rng.normal(size=60)})
    forms = {"us": "y ~ x + (x | g)", "cs": "y ~ x + cs(x | g)", "diag": "y ~ x + diag(x | g)",
             "ar1": "y ~ 1 + ar1(0 + factor(t) | g)", "toep": "y ~ 1 + toep(0 + factor(t) | g)"}
    eta = {}
    for lab, f in forms.items():
        pri = bg.GLMM(f, df).resolved_priors
        eta[lab] = pri["corr_g"].args["eta"] if "corr_g" in pri else None
    assert eta == {"us": 2.0, "cs": 1.0, "diag": None, "ar1": 1.0, "toep": 1.0}
    ig = Prior("InverseGamma", alpha=2.0, beta=1.0)
    assert "var_g" in bg.GLMM("y ~ x + cs(x | g)", df, priors={"var_g": ig}).resolved_priors
    with pytest.raises(ValueError, match=r"'var_g'.*\(ar1\) has 1 SD\(s\) shared.*put the prior on the SD \(sd_g\)"):
        bg.GLMM("y ~ 1 + ar1(0 + factor(t) | g)", df, priors={"var_g": ig})

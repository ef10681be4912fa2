"""GLMM.from_bambi: the converted model has bambi's priors and data, and the same log posterior density."""
import numpy as np
import pandas as pd
import pytest

bmb = pytest.importorskip("bambi")

import bayes_glmm as bg  # noqa: E402
from bayes_glmm import Prior  # noqa: E402


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    n = 60
    df = pd.DataFrame({"x": rng.normal(size=n), "z": rng.uniform(0, 3, size=n),
                       "g": np.repeat(list("abcdef"), 10), "a": np.tile(list("pqr"), 20)})
    eta = 0.3 + 0.5 * df["x"] + np.repeat(rng.normal(0, 0.5, 6), 10)
    df["y"] = eta + rng.normal(0, 0.7, n)
    df["b"] = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    df["e"] = rng.uniform(1, 3, n)
    df["c"] = rng.poisson(np.exp(eta) * df["e"])
    df["t"] = 6
    df["k"] = rng.binomial(6, 1 / (1 + np.exp(-eta)))
    return df


def _point_map(bm, glmm):
    """A function: bambi's point (its value variables) -> ours, for the same parameter values."""
    spec = glmm.spec
    names = list(spec.fixed_names)
    from bayes_glmm.priors import slope_blocks
    blocks = slope_blocks(spec, glmm.resolved_priors)
    comp = bm.components[bm.family.likelihood.parent]
    aux = {(a.bambi_name or a.name): a.name for a in glmm.family.aux_params}

    def convert(pt):
        out = {}
        beta = np.zeros(len(names))
        for tn, t in comp.terms.items():
            kind = type(t).__name__
            if kind == "CommonTerm" and tn != "Intercept":
                cols = np.asarray(t.data, dtype=float).reshape(len(spec.y), -1)
                vals = np.atleast_1d(pt[tn])
                for i in range(cols.shape[1]):
                    j = [jj for jj in range(len(names)) if np.allclose(spec.X[:, jj], cols[:, i])][0]
                    beta[j] = vals[i]
            elif kind == "GroupSpecificTerm":
                expr, grp = (s.strip() for s in tn.split("|"))
                coef = "(Intercept)" if expr == "1" else expr
                term = [tt for tt in spec.terms if str(tt.group) == grp and coef in tt.coef_names][0]
                j = term.coef_names.index(coef)
                out.setdefault(f"sd_{term.ident}_log__", np.zeros(term.q))[j] = pt[f"{tn}_sigma_log__"]
                out.setdefault(f"u_{term.ident}", np.zeros((term.n_levels, term.q)))[:, j] = pt[f"{tn}_offset"]
        if "Intercept" in pt:
            out["Intercept"] = pt["Intercept"]
        if spec.has_zi:  # bambi's psi is P(count part): our zero part's logit is -logit(psi)
            lab = spec.zi_label
            if "psi_logodds__" in pt:
                out[f"{lab}_Intercept"] = -pt["psi_logodds__"]
            else:
                out[f"{lab}_Intercept"] = -pt["psi_Intercept"]
                slopes = [-np.atleast_1d(pt[f"psi_{nm}"]) for nm in spec.zi_names if nm != "(Intercept)"]
                if slopes:
                    out[f"{lab}_slopes"] = np.concatenate(slopes)
        for bname, name in aux.items():
            if f"{bname}_log__" in pt:
                out[f"{name}_log__"] = pt[f"{bname}_log__"]
        for bname, cols in blocks:
            out[bname] = beta[cols] if bname == "slopes" else beta[cols[0]]
        return out
    return convert


def _check_same_density(bm, glmm, seed=0, n_points=4):
    bm.build()
    pb = bm.backend.model
    po = glmm.build()
    lb, lo = pb.compile_logp(), po.compile_logp()
    conv = _point_map(bm, glmm)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_points):
        pt = {v.name: rng.normal(0, 0.5, size=pb.initial_point()[v.name].shape) for v in pb.value_vars}
        ours = conv(pt)
        assert set(ours) == {v.name for v in po.value_vars}
        diffs.append(float(lb(pt)) - float(lo(ours)))
    return np.array(diffs)


def _assert_same(d):
    """The same density: equal up to a constant (bambi's logit Bernoulli/binomial evaluate a
    constant 1e-8 apart), and that constant negligible."""
    assert np.ptp(d) < 1e-9 and np.max(np.abs(d)) < 1e-6, d


def test_gaussian_random_slope_same_priors_data_and_density(data):
    bm = bmb.Model("y ~ x + C(a) + (1 + x | g)", data)
    m = bg.GLMM.from_bambi(bm, centered=False)
    assert m.formula == "y ~ x + C(a) + (1 + x || g)"  # bambi's group terms are independent
    assert not m.spec.terms[0].correlated and "corr_g" not in m.resolved_priors
    comp = bm.components["mu"].terms
    assert m.resolved_priors["Intercept"] == Prior("Normal", mu=float(comp["Intercept"].prior.args["mu"]),
                                                   sigma=float(comp["Intercept"].prior.args["sigma"]))
    assert m.resolved_priors["x"].args["sigma"] == pytest.approx(float(comp["x"].prior.args["sigma"]))
    assert m.resolved_priors["sd_g"].name == "HalfNormal"
    assert m.resolved_priors["sd_g"].args["sigma"] == pytest.approx(
        [float(comp["1|g"].prior.args["sigma"].args["sigma"]), float(comp["x|g"].prior.args["sigma"].args["sigma"])])
    assert m.resolved_priors["sigma"].name == "HalfStudentT"
    np.testing.assert_array_equal(m.spec.y, data["y"].to_numpy())
    _assert_same(_check_same_density(bm, m))


def test_bernoulli(data):
    bm = bmb.Model("b ~ x + (1 | g)", data, family="bernoulli")
    m = bg.GLMM.from_bambi(bm, centered=False)
    assert m.family.link.name == bm.family.link["p"].name
    np.testing.assert_array_equal(m.spec.y, data["b"].to_numpy())
    _assert_same(_check_same_density(bm, m))


def test_poisson_with_offset(data):
    bm = bmb.Model("c ~ x + offset(np.log(e)) + (1 | g)", data, family="poisson")
    m = bg.GLMM.from_bambi(bm, centered=False)
    np.testing.assert_allclose(m.spec.offset, np.log(data["e"]), rtol=1e-14)
    assert "bambi_offset" not in data  # the user's frame is not modified
    _assert_same(_check_same_density(bm, m))


def test_binomial_trials_syntax(data):
    bm = bmb.Model("p(k, t) ~ x + (1 | g)", data, family="binomial")
    m = bg.GLMM.from_bambi(bm, centered=False)
    np.testing.assert_array_equal(m.spec.y, data["k"].to_numpy())
    _assert_same(_check_same_density(bm, m))


def test_negativebinomial_alpha_is_theta_with_custom_priors(data):
    priors = {"Intercept": bmb.Prior("StudentT", nu=3, mu=0.5, sigma=2), "x": bmb.Prior("Normal", mu=0, sigma=1),
              "1|g": bmb.Prior("Normal", mu=0, sigma=bmb.Prior("Exponential", lam=2)),
              "alpha": bmb.Prior("Gamma", alpha=2, beta=0.5)}
    bm = bmb.Model("c ~ x + (1 | g)", data, family="negativebinomial", priors=priors)
    m = bg.GLMM.from_bambi(bm, centered=False)
    rp = m.resolved_priors
    assert rp["Intercept"] == Prior("StudentT", nu=3.0, mu=0.5, sigma=2.0)
    assert rp["x"] == Prior("Normal", mu=0.0, sigma=1.0)
    assert rp["sd_g"] == Prior("Exponential", lam=2.0)
    assert rp["theta"] == Prior("Gamma", alpha=2.0, beta=0.5)
    _assert_same(_check_same_density(bm, m))


@pytest.mark.parametrize("formula, kw, ours", [
    ("y ~ x + (1 | g)", {"family": "t"}, "y ~ x + (1 || g)"),  # t: nu is df
    ("pr ~ x + (1 | g)", {"family": "beta"}, "pr ~ x + (1 || g)"),  # kappa is phi
    ("e ~ x + (1 | g)", {"family": "gamma", "link": "log"}, "e ~ x + (1 || g)"),  # alpha is shape
    ("y ~ 0 + x + (1 | g)", {}, "y ~ 0 + x + (1 || g)"),
    # different hyperprior kinds per coefficient: one term each (independent either way)
    ("y ~ x + (x | g)", {"priors": {"1|g": bmb.Prior("Normal", mu=0, sigma=bmb.Prior("HalfNormal", sigma=1)),
                                    "x|g": bmb.Prior("Normal", mu=0, sigma=bmb.Prior("Exponential", lam=1))}},
     "y ~ x + (1 || g) + (0 + x || g)"),
])
def test_more_families_and_terms(data, formula, kw, ours):
    d = data.assign(pr=np.clip(data["e"] / 3.1, 0.01, 0.99))
    bm = bmb.Model(formula, d, **kw)
    m = bg.GLMM.from_bambi(bm, centered=False)
    assert m.formula == ours
    _assert_same(_check_same_density(bm, m))


@pytest.mark.parametrize("kwargs, msg", [
    ({"formula": "y ~ x + (1 | g)", "center_predictors": False}, "center_predictors=False"),
    ({"formula": "y ~ x + (1 | g)", "priors": {"1|g": bmb.Prior(
        "Normal", mu=1, sigma=bmb.Prior("HalfNormal", sigma=1))}}, "'1|g': a non-zero mean"),
    ({"formula": "e ~ x + (1 | g)", "family": "wald"}, "bambi family 'wald'"),
    ({"formula": "censored(y, status) ~ x + (1 | g)"}, "a censored response"),
    ({"formula": "y ~ x + (1 | g)", "priors": {"x": bmb.Prior("Uniform", lower=-1, upper=1)}}, "'x'"),
    ({"formula": "y ~ x + (1 | g)", "priors": {"1|g": bmb.Prior(
        "Normal", mu=0, sigma=bmb.Prior("HalfNormal", sigma=1))}, "family": "gaussian"}, None),
])
def test_refusals_name_the_term_and_reason(data, kwargs, msg):
    kw = dict(kwargs)
    bm = bmb.Model(kw.pop("formula"), data.assign(status=np.where(data["x"] > 1, "right", "none")), **kw)
    if msg is None:  # the control: the same model with a convertible prior converts
        assert bg.GLMM.from_bambi(bm).resolved_priors["sd_g"] == Prior("HalfNormal", sigma=1.0)
        return
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        bg.GLMM.from_bambi(bm)


def test_distributional_model_is_refused(data):
    bm = bmb.Model(bmb.Formula("y ~ x + (1 | g)", "sigma ~ x"), data)
    with pytest.raises(ValueError, match=r"auxiliary parameter\(s\) \['sigma'\]"):
        bg.GLMM.from_bambi(bm)


UNIFORM_PSI = {"psi": bmb.Prior("Beta", alpha=1, beta=1)}


@pytest.mark.parametrize("formula, family, kw, ours, zero", [
    ("c ~ x + (1 | g)", "zero_inflated_poisson", {"priors": UNIFORM_PSI}, "poisson", ("zi", "~ 1")),
    # the rest of the family set in the slow run (two PyMC compilations each, ~4 s)
    pytest.param("c ~ x + (1 | g)", "zero_inflated_negativebinomial", {"priors": UNIFORM_PSI}, "negbinomial",
                 ("zi", "~ 1"), marks=pytest.mark.slow),
    pytest.param("c ~ x + (1 | g)", "hurdle_poisson", {"priors": UNIFORM_PSI}, "hurdle_poisson", ("hu", "~ 1"),
                 marks=pytest.mark.slow),
    pytest.param("c ~ x + (1 | g)", "hurdle_negativebinomial", {"priors": UNIFORM_PSI}, "hurdle_negbinomial",
                 ("hu", "~ 1"), marks=pytest.mark.slow),
    # psi with a formula: its coefficients' priors mirrored (location negated)
    (bmb.Formula("c ~ x + (1 | g)", "psi ~ z"), "zero_inflated_poisson",
     {"priors": {"psi": {"Intercept": bmb.Prior("Normal", mu=1.0, sigma=1.5),
                         "z": bmb.Prior("StudentT", nu=4, mu=0.3, sigma=0.8)}}}, "poisson", ("zi", "~ z")),
    (bmb.Formula("c ~ x + (1 | g)", "psi ~ z"), "hurdle_poisson", {}, "hurdle_poisson", ("hu", "~ z")),
    ("p(k, t) ~ x + (1 | g)", "beta_binomial", {}, "betabinomial", None),
])
def test_zero_part_and_beta_binomial_families(data, formula, family, kw, ours, zero):
    bm = bmb.Model(formula, data, family=family, **kw)
    m = bg.GLMM.from_bambi(bm, centered=False)
    assert m.family.name == ours
    if zero is not None:
        assert m.spec.zi_label == zero[0] and m.spec.zi_formula == zero[1]
        if zero[1] == "~ 1":
            assert m.resolved_priors[f"{zero[0]}_Intercept"] == Prior("Logistic", mu=0.0, s=1.0)
    _assert_same(_check_same_density(bm, m))
    if kw.get("priors", {}).get("psi") and isinstance(kw["priors"]["psi"], dict):
        assert m.resolved_priors["zi_Intercept"] == Prior("Normal", mu=-1.0, sigma=1.5)
        assert m.resolved_priors["zi_z"] == Prior("StudentT", nu=4.0, mu=-0.3, sigma=0.8)


@pytest.mark.parametrize("family, kw, ours", [
    ("zero_inflated_poisson", {}, (2.0, 2.0)),  # bambi's default psi ~ Beta(2, 2)
    # an asymmetric Beta: psi is P(count part), so the zero part's probability is Beta(b, a)
    ("hurdle_poisson", {"priors": {"psi": bmb.Prior("Beta", alpha=5.0, beta=1.5)}}, (1.5, 5.0)),
    # PyMC's (mu, sigma) spelling: kappa = mu (1 - mu) / sigma^2 - 1 = 20, (alpha, beta) = (6, 14)
    pytest.param("zero_inflated_poisson", {"priors": {"psi": bmb.Prior("Beta", mu=0.3, sigma=0.1)}}, (14.0, 6.0),
                 marks=pytest.mark.slow),
])
def test_constant_psi_beta_prior_is_logitbeta_on_the_zero_part(data, family, kw, ours):
    bm = bmb.Model("c ~ x + (1 | g)", data, family=family, **kw)
    m = bg.GLMM.from_bambi(bm, centered=False)
    lab = m.spec.zi_label
    pr = m.resolved_priors[f"{lab}_Intercept"]
    assert pr.name == "LogitBeta" and set(pr.args) == {"alpha", "beta"}
    np.testing.assert_allclose([pr.args["alpha"], pr.args["beta"]], ours, rtol=1e-12)
    _assert_same(_check_same_density(bm, m))


def test_zero_part_psi_prior_refusals_name_the_reason(data):
    bm = bmb.Model("c ~ x + (1 | g)", data, family="zero_inflated_poisson",
                   priors={"psi": bmb.Prior("Uniform", lower=0.2, upper=0.9)})
    with pytest.raises(ValueError, match=r"'psi'.*Uniform\(lower=0.2, upper=0.9\).*Beta\(alpha, beta\)"):
        bg.GLMM.from_bambi(bm)
    bm = bmb.Model(bmb.Formula("c ~ x", "psi ~ x + (1 | g)"), data, family="hurdle_poisson")
    with pytest.raises(ValueError, match="group-specific effects in the zero part"):
        bg.GLMM.from_bambi(bm)
    bm = bmb.Model("p(k, t) ~ x + (1 | g)", data, family="zero_inflated_binomial", priors=UNIFORM_PSI)
    with pytest.raises(ValueError, match="zero_inflated_binomial.*count families.*no equivalent"):
        bg.GLMM.from_bambi(bm)


def test_interaction_grouping_factor(data):
    bm = bmb.Model("y ~ x + (1 | g:a)", data)
    m = bg.GLMM.from_bambi(bm, centered=False)
    assert m.formula == "y ~ x + (1 || g:a)" and m.spec.terms[0].n_levels == 18
    _assert_same(_check_same_density(bm, m))

"""A family with two auxiliary parameters on the maximum-likelihood path (Laplace, AGQ, PIRLS).

The toy family is a Student-t response with location ``mu = eta``, scale ``sigma`` and degrees
of freedom ``df``, registered only inside this module: nothing in ``bayes_glmm/ml`` knows it.
Its log-density is written once against ``ops`` (``gammaln``, ``log1p``); its derivatives in mu
are written out by hand (:meth:`Family._mu_derivs`, what the base class's chain rule needs for
PIRLS and the Laplace Hessian).  The fit's outer vector is theta, beta and one log-scale
coordinate per auxiliary parameter; the checks are against an independent computation of the
marginal likelihood by one-dimensional quadrature per group (``scipy.integrate.quad``).
"""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, stats

import bayes_glmm as bg
import bayes_glmm.families as families
from bayes_glmm.families import AuxParam, Family
from bayes_glmm.ml.inference import lrt as lrt_mod

SIGMA = AuxParam("sigma", "scale of the t distribution",
                 default_prior=lambda sc: ("Exponential", {"lam": 1.0 / sc["y_sd"]}),
                 start=lambda m, v: float(np.sqrt(max(v, 1e-300))), start_range=(1e-8, np.inf))
DF = AuxParam("df", "degrees of freedom",
              default_prior=lambda sc: ("Gamma", {"alpha": 2.0, "beta": 0.1}),
              start=lambda m, v: 10.0, start_range=(1.0, 100.0), nested_at="1/df = 0")


class ToyStudentT(Family):
    """y = mu + sigma t_df, identity link: two positive auxiliary parameters."""

    name = "toy_ml_student_t"
    links = ("identity",)
    continuous = True
    aux_params = (SIGMA, DF)
    variance_formula = "Var = sigma^2 df / (df - 2)"
    nested_families = ("gaussian",)

    def _variance(self, mu, ops, **aux):
        return mu * 0.0 + 1.0  # times sigma^2, as gaussian's (df / (df - 2) left out)

    def _random(self, mu, rng, *, trials=None, sigma=None, df=None):
        mu = np.asarray(mu, dtype=float)
        return mu + np.asarray(sigma, dtype=float) * rng.standard_t(np.broadcast_to(df, mu.shape))

    def _loglik(self, y, eta, ops, *, trials=None, sigma, df):
        z = (y - self.link.inverse(eta, ops)) / sigma
        return (ops.gammaln(0.5 * (df + 1.0)) - ops.gammaln(0.5 * df) - 0.5 * ops.log(df * math.pi)
                - ops.log(sigma) - 0.5 * (df + 1.0) * ops.log1p(z * z / df))

    def _mu_derivs(self, y, eta, *, trials=None, sigma, df):
        # l = -(df + 1)/2 log(1 + r^2 / (df sigma^2)), r = y - mu; s = df sigma^2 + r^2
        r = y - self.link.inverse(eta)
        s = df * sigma * sigma + r * r
        info = (df + 1.0) / ((df + 3.0) * sigma * sigma) + 0.0 * r  # the t's Fisher information in mu
        return (df + 1.0) * r / s, (df + 1.0) * (r * r - df * sigma * sigma) / (s * s), info


@pytest.fixture(scope="module", autouse=True)
def toy_registered():
    """The toy family in the registry for this module only (the registry's tables restored after)."""
    with pytest.MonkeyPatch.context() as mp:
        for k in ("REGISTRY", "FAMILIES", "ALIASES", "DISPERSION"):
            mp.setattr(families, k, dict(getattr(families, k)))
        mp.setattr(families, "ZI_FAMILIES", families.ZI_FAMILIES)
        families.register_family(ToyStudentT)
        yield
    assert "toy_ml_student_t" not in families.REGISTRY


TRUTH = {"(Intercept)": 1.0, "x": 0.5, "sd": 0.8, "sigma": 0.6, "df": 4.0}


def _data(seed=11, n_groups=40, n_per=15) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_groups * n_per
    g = np.repeat(np.arange(n_groups), n_per)
    x = rng.normal(size=n)
    eta = TRUTH["(Intercept)"] + TRUTH["x"] * x + rng.normal(scale=TRUTH["sd"], size=n_groups)[g]
    y = eta + TRUTH["sigma"] * rng.standard_t(TRUTH["df"], size=n)
    return pd.DataFrame({"y": y, "x": x, "g": [f"G{i:02d}" for i in g]})


@pytest.fixture(scope="module")
def data():
    return _data()


@pytest.fixture(scope="module")
def laplace_fit(data):
    return bg.GLMM("y ~ x + (1 | g)", data, family="toy_ml_student_t").fit_ml()


@pytest.fixture(scope="module")
def agq_fit(data):
    return bg.GLMM("y ~ x + (1 | g)", data, family="toy_ml_student_t").fit_ml(n_agq=15)


def _group_terms(res, data):
    """Per group: (y, fixed part of eta) at the fit's beta."""
    beta = res.fixef.to_numpy()
    X = np.column_stack([np.ones(len(data)), data["x"].to_numpy()])
    eta0 = X @ beta
    y = data["y"].to_numpy()
    return [(y[idx], eta0[idx]) for idx in data.groupby("g").indices.values()]


def _h(b, y, e0, sd, sigma, df):
    """log f(y_j | b) + log N(b; 0, sd^2) for one group (scalar random intercept b)."""
    return (np.sum(stats.t.logpdf(y, df, loc=e0 + b, scale=sigma))
            + stats.norm.logpdf(b, scale=sd))


def _mode(y, e0, sd, sigma, df):
    return optimize.minimize_scalar(lambda b: -_h(b, y, e0, sd, sigma, df),
                                    bracket=(-1.0, 1.0), tol=1e-12).x


def _h2(b, y, e0, sd, sigma, df):
    """d^2 h / d b^2, by hand (independent of the family's derivatives)."""
    r = y - e0 - b
    s = df * sigma ** 2 + r * r
    return np.sum((df + 1.0) * (r * r - df * sigma ** 2) / (s * s)) - 1.0 / sd ** 2


def _params(res):
    d = res.dispersion
    return float(np.sqrt(res.covs[0][0, 0])), float(d["sigma"]), float(d["df"])


def brute_force_loglik(res, data) -> float:
    """The exact marginal log-likelihood at the fit's estimates: per group a 1-D integral over
    the random intercept by adaptive quadrature (``scipy.integrate.quad``), about the mode."""
    sd, sigma, df = _params(res)
    total = 0.0
    for y, e0 in _group_terms(res, data):
        bh = _mode(y, e0, sd, sigma, df)
        hmax = _h(bh, y, e0, sd, sigma, df)
        w = 1.0 / math.sqrt(-_h2(bh, y, e0, sd, sigma, df))
        val, err = integrate.quad(lambda b: math.exp(_h(b, y, e0, sd, sigma, df) - hmax),
                                  bh - 30 * w, bh + 30 * w, epsabs=0.0, epsrel=1e-12, limit=200)
        total += hmax + math.log(val)
    return total


def brute_force_laplace(res, data) -> float:
    """The Laplace approximation computed independently: mode by a scalar optimizer, curvature
    by hand, ``h(b*) + log(2 pi)/2 - log(-h''(b*))/2`` per group."""
    sd, sigma, df = _params(res)
    total = 0.0
    for y, e0 in _group_terms(res, data):
        bh = _mode(y, e0, sd, sigma, df)
        total += (_h(bh, y, e0, sd, sigma, df) + 0.5 * math.log(2 * math.pi)
                  - 0.5 * math.log(-_h2(bh, y, e0, sd, sigma, df)))
    return total


def test_family_derivatives_match_its_log_density():
    """The hand-written mu derivatives agree with finite differences of the one log-density."""
    fam = families.get_family("toy_ml_student_t")
    rng = np.random.default_rng(0)
    y, eta = rng.normal(size=50) * 3, rng.normal(size=50)
    aux = {"sigma": 0.7, "df": 3.5}
    d1, w_obs, _ = fam.eta_derivs(y, eta, **aux)
    h = 1e-5
    lp, lm, l0 = (fam.loglik(y, eta + h, **aux), fam.loglik(y, eta - h, **aux), fam.loglik(y, eta, **aux))
    np.testing.assert_allclose(d1, (lp - lm) / (2 * h), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(w_obs, -(lp - 2 * l0 + lm) / h ** 2, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(l0, stats.t.logpdf(y, 3.5, loc=eta, scale=0.7), rtol=1e-12)


def test_outer_vector_has_one_coordinate_per_aux_parameter(laplace_fit):
    r = laplace_fit
    assert r.method == "Laplace" and r.converged and r.optimizer["hessian_pd"]
    assert list(r.dispersion.index) == ["sigma", "df"]
    assert r.fit.aux == {"sigma": r.dispersion["sigma"], "df": r.dispersion["df"]}
    # theta (1), beta (2), log sigma, log df
    assert r.df == 5 and r.optimizer["start"].size == 5
    assert np.asarray(r.fit.vcov_aux).shape == (2, 2)
    assert r.sigma == pytest.approx(r.dispersion["sigma"])  # the accessor reads the family's sigma


def test_starts_and_bounds_come_from_the_aux_params(laplace_fit):
    """The optimizer starts each coordinate at the log of its AuxParam's ML start, unbounded
    below on the log scale for the usual bounds (0, inf)."""
    from bayes_glmm.ml.auxpar import aux_lower
    from bayes_glmm.ml.laplace import start_aux
    from bayes_glmm.ml.pirls import make_response

    spec = laplace_fit.spec
    y = np.asarray(spec.y, dtype=float)
    a0 = start_aux(make_response(spec))
    np.testing.assert_allclose(a0, np.log([SIGMA.ml_start(y.mean(), y.var()), DF.ml_start(y.mean(), y.var())]))
    assert np.all(aux_lower(spec.family) == -np.inf)


def test_recovers_the_truth(laplace_fit):
    r = laplace_fit
    se = r.se
    for k in ("(Intercept)", "x"):
        assert abs(r.fixef[k] - TRUTH[k]) < 3 * se[k]
    tab = r.dispersion_table()
    assert list(tab.index) == ["sigma", "df"]
    for k in ("sigma", "df"):
        assert tab.loc[k, "lower"] < TRUTH[k] < tab.loc[k, "upper"], tab
        assert tab.loc[k, "SE(log)"] > 0 and np.isfinite(tab.loc[k, "SE(log)"])
    assert abs(math.sqrt(r.covs[0][0, 0]) - TRUTH["sd"]) < 0.25


def test_laplace_loglik_is_the_laplace_approximation_of_the_exact_integral(laplace_fit, data):
    """At the MLE the reported logLik equals an independent Laplace computation to 1e-6, and the
    exact integral (quadrature) is within the Laplace error of it."""
    r = laplace_fit
    lap = brute_force_laplace(r, data)
    exact = brute_force_loglik(r, data)
    assert r.loglik == pytest.approx(lap, abs=1e-6)
    # the Laplace error itself: 0.29 here (40 groups of 15 t-distributed rows; a t likelihood is
    # not log-concave), which AGQ removes (next test)
    assert 0.0 < abs(r.loglik - exact) < 0.6


def test_agq_equals_the_exact_marginal_likelihood(agq_fit, laplace_fit, data):
    """AGQ(15) logLik at its MLE equals the quadrature integral there to 1e-6; its estimates are
    the Laplace ones to within a small fraction of their SEs."""
    r = agq_fit
    assert r.method == "AGQ(15)" and r.converged
    assert r.loglik == pytest.approx(brute_force_loglik(r, data), abs=1e-6)
    assert np.all(np.abs(r.fixef - laplace_fit.fixef) < 0.2 * laplace_fit.se)
    for k in ("sigma", "df"):
        assert r.dispersion[k] == pytest.approx(laplace_fit.dispersion[k], rel=0.1)


def test_summary_prints_each_aux_parameter(laplace_fit):
    text = str(laplace_fit)
    assert "Dispersion parameter for toy_ml_student_t family (Var = sigma^2 df / (df - 2)): sigma = " in text
    assert "Degrees of freedom (toy_ml_student_t family): df = " in text
    assert "SE of log df" in text
    assert "Residual" not in text  # a GLMM's sigma is reported as a family parameter
    assert "z value" in text


def test_profile_confint_of_each_aux_parameter(laplace_fit):
    ci = laplace_fit.confint(method="profile", parm=["sigma", "df"])
    wald = laplace_fit.dispersion_table()
    for k in ("sigma", "df"):
        lo, hi = ci.loc[k, "lower"], ci.loc[k, "upper"]
        assert lo < laplace_fit.dispersion[k] < hi
        # the profile interval is close to the Wald one on the log scale (a regular problem)
        assert math.log(lo) == pytest.approx(math.log(wald.loc[k, "lower"]), abs=0.3)
        assert math.log(hi) == pytest.approx(math.log(wald.loc[k, "upper"]), abs=0.3)


def test_simulate_draws_with_every_aux_value(laplace_fit, data):
    """simulate() passes sigma and df to family.random: heavy tails as fitted."""
    sims = laplace_fit.simulate(n=20, random_seed=3)
    assert sims.shape == (len(data), 20) and np.all(np.isfinite(sims.to_numpy()))
    resid = sims.to_numpy() - sims.to_numpy().mean(axis=1, keepdims=True)
    # a t with df ~ 4 has excess kurtosis; a normal with the same sigma would give ~0
    assert stats.kurtosis(resid.ravel()) > 1.0


def test_lrt_counts_every_aux_parameter(laplace_fit, data):
    """A nested family's missing auxiliary parameters are named by their AuxParam; between two
    fits of the family both aux parameters are counted on each side."""
    s1 = laplace_fit.spec
    g0 = bg.GLMM("y ~ x + (1 | g)", data).spec  # gaussian: has sigma, not df
    extra, zi = lrt_mod._aux_differences(g0, s1)
    assert extra == ["toy_ml_student_t df (1/df = 0: the gaussian model)"] and zi == []
    m0 = bg.GLMM("y ~ 1 + (1 | g)", data, family="toy_ml_student_t").fit_ml()
    assert m0.df == 4 and laplace_fit.df == 5
    res = bg.lrt(m0, laplace_fit)
    assert res.df == 1
    assert res.chisq == pytest.approx(2 * (laplace_fit.loglik - m0.loglik))


def test_pirls_at_fixed_aux_values_uses_them(data):
    """PIRLS at fixed (sigma, df): the conditional modes move with df (robust to outliers)."""
    from bayes_glmm.ml import linalg, optimize as mlopt
    from bayes_glmm.ml.pirls import make_response, pirls, with_aux

    spec = bg.GLMM("y ~ x + (1 | g)", data, family="toy_ml_student_t").spec
    resp = make_response(spec)
    assert resp.n_aux == 2 and resp.general
    s = linalg.build_structure(spec.terms)
    sl, _, t0 = mlopt.theta_layout(spec.terms)
    lam = mlopt.lambdas_from_theta(np.array([1.3]), spec.terms, sl)
    beta = np.array([1.0, 0.5])
    modes = []
    for df in (2.0, 200.0):
        r = with_aux(resp, np.log([0.6, df]))
        assert r.aux_vals == pytest.approx({"sigma": 0.6, "df": df})
        pr = pirls(r, s, lam, beta)
        assert pr.converged
        modes.append(pr.u)
        # the mode solves the penalized score equation with these aux values
        eta = pr.eta
        d1 = families.get_family("toy_ml_student_t").eta_derivs(r.y, eta, sigma=0.6, df=df)[0]
        score = 1.3 * np.bincount(spec.terms[0].codes, weights=d1) - pr.u
        np.testing.assert_allclose(score, 0.0, atol=1e-6)
    assert np.max(np.abs(modes[0] - modes[1])) > 1e-3


def test_pql_refuses_a_family_with_more_than_a_residual_scale(data):
    from bayes_glmm.ml.pql import fit_pql

    spec = bg.GLMM("y ~ x + (1 | g)", data, family="toy_ml_student_t").spec
    with pytest.raises(ValueError, match="fit_pql does not handle the toy_ml_student_t family"):
        fit_pql(spec)


def test_bootstrap_refits_with_every_aux_parameter(laplace_fit):
    """Each replicate is drawn with (sigma, df) and refitted from their coordinates."""
    boot = laplace_fit.bootstrap(n=3, random_seed=2)
    assert list(boot.columns[-2:]) == ["sigma", "df"] and boot.attrs["n_failed"] == 0
    assert np.all(np.isfinite(boot[["sigma", "df"]].to_numpy())) and np.all(boot["df"] > 1.0)


def test_compare_lists_each_aux_parameter(laplace_fit, agq_fit):
    tab = bg.compare(laplace_fit, agq_fit, params="all")
    disp = tab[tab["kind"] == "dispersion"]
    assert sorted(set(disp["param"])) == ["df", "sigma"] and len(disp) == 4
    assert np.all(disp["lower"] < disp["estimate"]) and np.all(disp["estimate"] < disp["upper"])


def test_a_family_link_outside_its_ml_links_is_refused(data):
    """Gaussian declares ``ml_links = ("identity",)``: a residual scale is no longer what routes a
    family to the LMM, so the log link is refused by the family's declaration, as before."""
    with pytest.raises(NotImplementedError, match="identity link only; use the Bayesian path"):
        bg.GLMM("y ~ x + (1 | g)", data.assign(y=np.exp(data["y"] / 5)), family="gaussian", link="log").fit_ml()


@pytest.mark.parametrize("re", ["(1 | g)", "(1 + x | g)"])
def test_laplace_gradient_in_both_aux_coordinates(data, re):
    """The analytic Laplace gradient (row-wise derivatives in log sigma and log df) equals central
    differences of the deviance, scalar and vector terms; so does the AGQ one (node derivatives
    in the auxiliary coordinates, agq._node_aux_derivs)."""
    from bayes_glmm.ml import agq, laplace, linalg, optimize as mlopt
    from bayes_glmm.ml.pirls import make_response

    spec = bg.GLMM(f"y ~ x + {re}", data, family="toy_ml_student_t").spec
    resp = make_response(spec)
    s = linalg.build_structure(spec.terms)
    assert agq.supports_gradient(resp, s, 1) and agq.supports_gradient(resp, s, 5)
    sl, _, t0 = mlopt.theta_layout(spec.terms)
    x = np.concatenate([t0 * 0.7 + 0.05, laplace.start_beta(resp) + 0.05, np.log([0.5, 6.0])])
    dev = laplace.make_deviance(resp, s, spec.terms, sl, 1, {})
    f, g = laplace.make_devgrad(resp, s, spec.terms, sl, 1, {})(x)
    assert f == pytest.approx(dev(x), abs=1e-7)
    gn = mlopt.fd_gradient(dev, x)
    np.testing.assert_allclose(g, gn, atol=2e-6 * max(1.0, np.max(np.abs(gn))))
    assert np.all(np.abs(g[-2:]) > 1e-3)  # both aux coordinates move the deviance here
    dev5 = laplace.make_deviance(resp, s, spec.terms, sl, 5, {})
    f5, g5 = laplace.make_devgrad(resp, s, spec.terms, sl, 5, {})(x)
    assert f5 == pytest.approx(dev5(x), abs=1e-7)
    gn5 = mlopt.fd_gradient(dev5, x)
    np.testing.assert_allclose(g5, gn5, atol=2e-6 * max(1.0, np.max(np.abs(gn5))))

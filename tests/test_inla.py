"""fit_inla: the approximate posterior against an exact one, its coordinates and priors, and
the InferenceData it returns (issue 19).  The comparison with NUTS on four models is the slow
test at the end (and benchmarks/bench_inla.py)."""
import warnings

import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm.inla.coords import Layout
from bayes_glmm.priors import get_kind


def _lmm(seed=0, n_groups=12, per=4):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    x = rng.normal(size=g.size)
    y = 1.0 + 0.5 * x + rng.normal(0, 1.0, n_groups)[g] + rng.normal(0, 1.0, g.size)
    return bg.GLMM("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": g}))


def _exact_lmm_posterior(model):
    """The exact posterior of a random-intercept LMM by brute force: beta integrated in closed form
    (its Normal prior on the centred scale), (log sd, log sigma) on a fine grid; the priors from
    scipy.stats (an implementation independent of the package's log-densities)."""
    spec, pri = model.spec, model.resolved_priors
    X, y = np.asarray(spec.X), np.asarray(spec.y)
    Z = np.zeros((spec.n, spec.terms[0].n_levels))
    Z[np.arange(spec.n), spec.terms[0].codes] = 1.0
    A = np.eye(spec.p)
    A[0, 1:] = X[:, 1:].mean(axis=0)  # c = A beta: the intercept at the predictors' means
    mu = np.array([pri["Intercept"].args.get("mu", 0.0), pri["x"].args.get("mu", 0.0)], dtype=float)
    s = np.array([pri["Intercept"].args["sigma"], pri["x"].args["sigma"]], dtype=float)
    Ai = np.linalg.inv(A)
    mb, Vb = Ai @ mu, Ai @ np.diag(s * s) @ Ai.T
    sd_prior = get_kind(pri["sd_g"].name).scipy(pri["sd_g"].args)
    sig_prior = get_kind(pri["sigma"].name).scipy(pri["sigma"].args)
    ls, lsig = np.linspace(-5.0, 2.0, 100), np.linspace(-1.2, 1.0, 60)
    logp, means, covs = [], [], []
    XV = X @ Vb @ X.T
    r0 = y - X @ mb
    for a in ls:
        for b in lsig:
            S = XV + np.exp(2 * a) * Z @ Z.T + np.exp(2 * b) * np.eye(spec.n)
            L = np.linalg.cholesky(S)
            alpha = np.linalg.solve(L, r0)
            ll = -np.sum(np.log(np.diag(L))) - 0.5 * alpha @ alpha
            logp.append(ll + sd_prior.logpdf(np.exp(a)) + a + sig_prior.logpdf(np.exp(b)) + b)
            K = np.linalg.solve(S, X @ Vb).T  # Vb X' S^-1
            means.append(mb + K @ r0)
            covs.append(Vb - K @ X @ Vb)
    logp = np.array(logp)
    w = np.exp(logp - logp.max())
    w /= w.sum()
    means, covs = np.array(means), np.array(covs)
    m = w @ means
    var = np.einsum("k,kii->i", w, covs) + w @ (means - m) ** 2
    wsd = w.reshape(ls.size, lsig.size).sum(axis=1)
    csd = np.cumsum(wsd)
    sd_q = np.exp(np.interp([0.1, 0.5, 0.9], csd, ls))
    sd_mean = wsd @ np.exp(ls)
    sd_sd = np.sqrt(wsd @ np.exp(2 * ls) - sd_mean ** 2)
    return m, np.sqrt(var), sd_q, sd_sd


@pytest.fixture(scope="module")
def exact_lmm():
    model = _lmm()
    return model, _exact_lmm_posterior(model)


def test_inla_matches_the_exact_posterior_of_a_random_intercept_lmm(exact_lmm):
    model, (m, sd, sd_q, sd_sd) = exact_lmm
    r = model.fit_inla(random_seed=1, n_draws=4000)
    beta = np.asarray(r.idata.posterior["beta"]).reshape(-1, 2)
    assert np.all(np.abs(beta.mean(0) - m) < 0.1 * sd), (beta.mean(0), m, sd)
    assert np.all(np.abs(beta.std(0) / sd - 1) < 0.1), (beta.std(0), sd)
    sdg = np.asarray(r.idata.posterior["sd_g"]).ravel()
    assert np.all(np.abs(np.quantile(sdg, [0.1, 0.5, 0.9]) - sd_q) < 0.15 * sd_sd), (np.quantile(sdg, [0.1, 0.5, 0.9]), sd_q)


def test_layout_maps_psi_to_lme4_theta_and_its_prior_gradient_is_exact():
    d = bg.datasets.load("sleepstudy")
    model = bg.GLMM("Reaction ~ Days + (Days | Subject)", d, priors={"corr_Subject": bg.Prior("LKJ", eta=3)})
    lay = Layout(model.spec, model.resolved_priors)
    t = model.spec.terms[0]
    psi = np.array([np.log(20.0), np.log(5.0), 0.3, np.log(25.0)])
    (sd, L, theta), = lay.term_values(psi)
    S = t.cov.lambda_(theta, t.q) @ t.cov.lambda_(theta, t.q).T
    np.testing.assert_allclose(np.sqrt(np.diag(S)), [20.0, 5.0])
    np.testing.assert_allclose(S[0, 1] / 100.0, np.tanh(0.3))  # q = 2: the one CPC is the correlation
    lp, g = lay.psi_logp_grad(psi)
    h = 1e-6
    fd = [(lay.psi_logp_grad(psi + h * e)[0] - lay.psi_logp_grad(psi - h * e)[0]) / (2 * h) for e in np.eye(4)]
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)
    w = np.array([250.0, 10.0])
    lw, gw = lay.w_logp_grad(w)
    fdw = [(lay.w_logp_grad(w + h * e)[0] - lay.w_logp_grad(w - h * e)[0]) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(gw, fdw, rtol=1e-6, atol=1e-8)
    # the sd prior enters on the SD with the log Jacobian; the LKJ(3) law of the CPC
    pri = model.resolved_priors
    sdp = get_kind(pri["sd_Subject"].name).scipy(pri["sd_Subject"].args)
    a, const = t.cov.corr_prior_shapes(2, 3.0)
    sg = get_kind(pri["sigma"].name).scipy(pri["sigma"].args)
    want = (np.sum(sdp.logpdf([20.0, 5.0])) + np.log(100.0) + const - 2 * a[0] * np.log(np.cosh(0.3))
            + sg.logpdf(25.0) + np.log(25.0))
    np.testing.assert_allclose(lp, want, rtol=1e-10)


def test_inla_idata_has_sample_names_dims_log_likelihood_and_the_method():
    import arviz as az
    from bayes_glmm.bayes.params import param_layout
    from bayes_glmm.bayes.pointwise import posterior_names

    d = bg.datasets.load("sleepstudy")
    model = bg.GLMM("Reaction ~ Days + (Days | Subject)", d)
    r = model.fit_inla(random_seed=2, n_draws=300, n_points=2)  # 16 nodes: the structure, not accuracy
    post = r.idata.posterior
    assert list(post.data_vars) == posterior_names(model.spec)
    dims = param_layout(model.spec, model.resolved_priors).dims
    for v in ("beta", "b_Subject", "corr_Subject"):
        assert post[v].dims[2:] == tuple(dims[v])
    assert post.attrs["method"] == "inla" and (post.sizes["chain"], post.sizes["draw"]) == (2, 150)
    assert r.idata.log_likelihood["y"].shape == (2, 150, model.spec.n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loo = az.loo(r.idata)
    assert np.isfinite(loo.elpd_loo)
    assert "nested Laplace" in repr(r) and "nested Laplace" in r.method
    assert set(r.fixef.index) == {"(Intercept)", "Days"} and r.ranef["Subject"].shape == (18, 2)
    # the sleepstudy posterior: fixed effects close to lmer's, the correlation inside (-1, 1)
    np.testing.assert_allclose(r.fixef.values, [251.4, 10.47], rtol=0.02)
    cmp = bg.compare(model.fit_ml(), r, names=["ML", "INLA"])
    assert "INLA" in str(cmp)


def test_inla_uses_the_priors_overrides():
    model = _lmm(seed=3)
    wide = model.fit_inla(random_seed=0, n_draws=1000)
    tight = model.with_priors({"sd_g": bg.Prior("HalfNormal", sigma=0.05)}).fit_inla(random_seed=0, n_draws=1000)
    assert float(tight.idata.posterior["sd_g"].mean()) < 0.1 < float(wide.idata.posterior["sd_g"].mean())
    var = model.with_priors({"var_g": bg.Prior("InverseGamma", alpha=1, beta=1)}).fit_inla(random_seed=0, n_draws=500)
    assert "sd_g" in var.idata.posterior


def test_inla_binary_small_groups_auto_agq_and_the_warning():
    from bayes_glmm.inla.fit import resolve_n_agq, tiny_binary_groups_note

    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(40), 3)
    h = np.tile(np.arange(3), 40)
    y = (rng.random(g.size) < 1 / (1 + np.exp(-rng.normal(0, 1, 40)[g]))).astype(int)
    df = pd.DataFrame({"y": y, "g": g, "h": h})
    one = bg.GLMM("y ~ 1 + (1 | g)", df, family="bernoulli")
    assert resolve_n_agq(one.spec, "auto") == 9 and resolve_n_agq(one.spec, 1) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # AGQ chosen by "auto": no warning
        r = one.fit_inla(random_seed=0, n_draws=200)
    assert r.idata.posterior.attrs["n_agq"] == 9 and "n_agq=9" in r.method
    assert "n_agq=9" in tiny_binary_groups_note(one.spec, 1) and tiny_binary_groups_note(one.spec, 9) is None
    two = bg.GLMM("y ~ 1 + (1 | g) + (1 | h)", df, family="bernoulli")
    assert resolve_n_agq(two.spec, "auto") == 1
    assert "sample()" in tiny_binary_groups_note(two.spec, 1) and "n_agq" not in tiny_binary_groups_note(two.spec, 1)
    with pytest.warns(UserWarning, match="n_agq=9"):
        one.fit_inla(n_agq=1, n_draws=50, random_seed=0)


def test_inla_argument_errors():
    model = _lmm()
    with pytest.raises(ValueError, match="n_points"):
        model.fit_inla(n_points=0)
    with pytest.raises(ValueError, match="n_agq"):
        model.fit_inla(n_agq="fast")
    with pytest.raises(ValueError, match="one scalar"):
        bg.GLMM("Reaction ~ Days + (Days | Subject)", bg.datasets.load("sleepstudy")).fit_inla(n_agq=5)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["bernoulli_small_groups", "poisson_corr_slope", "nb2", "crossed_gaussian"])
def test_inla_matches_nuts_on_the_issue_19_models(case):
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_inla import CASES, accuracy_rows, check_targets

    model = CASES[case]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nuts = model.sample(draws=1000, tune=1000, chains=4, random_seed=11)
    approx = model.fit_inla(random_seed=11, n_draws=4000)
    rows = accuracy_rows(model, approx, nuts)
    assert not check_targets(rows), pd.DataFrame(rows).round(3).to_string()


def test_fit_inla_in_a_fresh_process_imports_no_sampler():
    # the computation is the ML path's NumPy/SciPy; only arviz/xarray build the InferenceData
    import json
    import os
    import pathlib
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[1]
    script = ("import sys, json, numpy as np, pandas as pd, bayes_glmm as bg\n"
              "d = bg.datasets.load('sleepstudy')\n"
              "r = bg.GLMM('Reaction ~ Days + (1 | Subject)', d).fit_inla(random_seed=0, n_draws=100)\n"
              "r.summary()\n"
              "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
              "('pymc', 'pytensor', 'nutpie', 'jax', 'numpyro', 'bambi'))))\n")  # numba: arviz's own import
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=str(root),
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == []


def test_importance_sampling_design_matches_the_exact_posterior(monkeypatch, exact_lmm):
    # above MAX_GRID_DIM hyperparameters the nodes are scrambled-Sobol t points: forced here on the
    # LMM's two (log sd, log sigma), against the brute-force exact posterior
    from bayes_glmm.inla import quadrature

    monkeypatch.setattr(quadrature, "MAX_GRID_DIM", 1)
    model, (m, sd, sd_q, sd_sd) = exact_lmm
    r = model.fit_inla(random_seed=4, n_draws=4000)
    assert r.idata.posterior.attrs["design"] == "is" and r.idata.posterior.attrs["n_nodes"] == 128
    beta = np.asarray(r.idata.posterior["beta"]).reshape(-1, 2)
    assert np.all(np.abs(beta.mean(0) - m) < 0.1 * sd) and np.all(np.abs(beta.std(0) / sd - 1) < 0.1)
    sdg = np.asarray(r.idata.posterior["sd_g"]).ravel()
    assert np.all(np.abs(np.quantile(sdg, [0.1, 0.5, 0.9]) - sd_q) < 0.2 * sd_sd), (np.quantile(sdg, [0.1, 0.5, 0.9]), sd_q)

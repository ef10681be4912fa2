"""fit_inla: the approximate posterior against an exact one, its coordinates and priors, and
the InferenceData it returns (issue 19), ordinal models included.  The comparison with NUTS on
eight models (four ordinal: thresholds compared as the fixed effects) is the slow test
(and benchmarks/bench_inla.py)."""
import warnings
from pathlib import Path

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
@pytest.mark.parametrize("case", ["bernoulli_small_groups", "poisson_corr_slope", "nb2", "crossed_gaussian",
                                  "ordinal_wine_logit", "ordinal_wine_probit", "ordinal_slope_logit",
                                  "ordinal_slope_probit"])
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


# ----------------------------------------------------------------------------- ordinal models
def _tiny_ordinal(seed=0, n_groups=10, per=6):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    x = rng.normal(size=g.size)
    y = np.digitize(0.8 * x + rng.normal(0, 0.8, n_groups)[g] + rng.logistic(size=g.size), [-0.7, 0.9])
    cats = ["lo", "mid", "hi"]
    d = pd.DataFrame({"y": pd.Categorical(np.array(cats)[y], categories=cats, ordered=True), "x": x,
                      "g": g.astype(str)})
    return bg.GLMM("y ~ x + (1 | g)", d, family="ordinal")


def _exact_ordinal_posterior(model):
    """The posterior of a random-intercept cumulative-logit model by brute force, independent of the
    package's likelihood and Laplace machinery: each group's random effect integrated by 80-point
    Gauss-Hermite, (beta, tau_1, log(tau_2 - tau_1)) by an adaptive 5^3 Gauss-Hermite grid at each of
    45 values of log sd (a fine grid); the priors from scipy.stats, the gap's Jacobian included."""
    import itertools

    from scipy import optimize, special

    spec, pri = model.spec, model.resolved_priors
    x, y = np.asarray(spec.X)[:, 0], np.asarray(spec.y).astype(int)
    onehot = np.zeros((spec.terms[0].n_levels, spec.n))
    onehot[spec.terms[0].codes, np.arange(spec.n)] = 1.0
    names = [a.name for a in spec.family.aux_params]
    bp, sp = (get_kind(pri[k].name).scipy(pri[k].args) for k in ("x", "sd_g"))
    tp = [get_kind(pri[n].name).scipy(pri[n].args) for n in names]
    t, wq = np.polynomial.hermite_e.hermegauss(80)
    lwq = np.log(wq / wq.sum())

    def logpost(v, ls):  # v (S, 3): beta, tau_1, log gap
        b, t1, lg = np.atleast_2d(v).T
        t2 = t1 + np.exp(lg)
        eta = b[:, None, None] * x[None, :, None] + np.exp(ls) * t[None, None, :]
        lo = np.where(y == 0, -np.inf, np.where(y == 1, t1[:, None], t2[:, None]))[:, :, None]
        hi = np.where(y == 0, t1[:, None], np.where(y == 1, t2[:, None], np.inf))[:, :, None]
        lrow = np.log(np.maximum(special.expit(hi - eta) - special.expit(lo - eta), 1e-300))
        ll = special.logsumexp(np.einsum("gn,snq->sgq", onehot, lrow) + lwq, axis=2).sum(axis=1)
        return ll + bp.logpdf(b) + tp[0].logpdf(t1) + tp[1].logpdf(t2) + lg + sp.logpdf(np.exp(ls)) + ls

    z, wz = np.polynomial.hermite_e.hermegauss(5)
    Z = np.array(list(itertools.product(z, repeat=3)))
    LW = np.array([np.sum(np.log(c)) for c in itertools.product(wz, repeat=3)]) + 0.5 * np.sum(Z * Z, axis=1)
    pairs = [(i, j) for i in range(3) for j in range(i, 3)]
    E = 1e-3 * np.eye(3)
    D = np.array([a * E[i] + b * E[j] for i, j in pairs for a, b in ((1, 1), (1, -1), (-1, 1), (-1, -1))]
                 + list(E) + list(-E))

    def newton_terms(v, ls):  # gradient and Hessian of -logpost by central differences, one call
        f = logpost(v + D, ls)
        H = np.zeros((3, 3))
        for (i, j), hij in zip(pairs, f[:24].reshape(-1, 4) @ np.array([-1.0, 1.0, 1.0, -1.0]) / 4e-6):
            H[i, j] = H[j, i] = hij
        return -(f[24:27] - f[27:]) / 2e-3, H

    lss = np.linspace(-7.0, 1.8, 45)
    out = {}
    v_mid = optimize.minimize(lambda v: -logpost(v, 0.0)[0], np.zeros(3), method="BFGS").x
    for ls in np.concatenate([lss[lss >= 0], lss[lss < 0][::-1]]):  # from log sd = 0 outwards
        v0 = v_mid if ls == lss[lss >= 0][0] or ls == lss[lss < 0][-1] else v0  # each from its neighbour's mode
        for _ in range(20):  # Newton's method (a smooth, near-quadratic target)
            g, H = newton_terms(v0, ls)
            step = np.linalg.solve(H, g)
            v0 = v0 - step
            if np.max(np.abs(step)) < 1e-7:
                break
        L = np.linalg.cholesky(np.linalg.inv(newton_terms(v0, ls)[1]))
        V = v0 + Z @ L.T
        lw = logpost(V, ls) + LW
        w = np.exp(lw - lw.max())
        Q = np.column_stack([V[:, 0], V[:, 1], V[:, 1] + np.exp(V[:, 2])])
        out[ls] = (special.logsumexp(lw) + np.log(np.linalg.det(L)), w @ Q / w.sum(), w @ Q ** 2 / w.sum())
    logm = np.array([out[k][0] for k in lss])
    pw = np.exp(logm - logm.max())
    pw /= pw.sum()
    m = pw @ np.array([out[k][1] for k in lss])
    s = np.sqrt(pw @ np.array([out[k][2] for k in lss]) - m ** 2)
    sd_q = np.exp(np.interp([0.1, 0.5, 0.9], np.cumsum(pw) - 0.5 * pw, lss))
    sd_sd = np.sqrt(pw @ np.exp(2 * lss) - (pw @ np.exp(lss)) ** 2)
    return m, s, sd_q, sd_sd


def test_inla_ordinal_matches_a_brute_force_posterior():
    # thresholds in the nested Laplace step (the samplers' log-gap coordinates, skewness-corrected
    # means) against the exact posterior: 60 rows, 10 groups, 3 categories
    model = _tiny_ordinal()
    m, s, sd_q, sd_sd = _exact_ordinal_posterior(model)
    r = model.fit_inla(random_seed=1, n_draws=4000)
    post = r.idata.posterior
    Q = np.column_stack([np.asarray(post["beta"]).ravel(), np.asarray(post["lo|mid"]).ravel(),
                         np.asarray(post["mid|hi"]).ravel()])
    assert np.all(np.abs(Q.mean(0) - m) < 0.1 * s), (Q.mean(0), m, s)
    assert np.all(np.abs(Q.std(0) / s - 1) < 0.1), (Q.std(0), s)
    q = np.quantile(np.asarray(post["sd_g"]).ravel(), [0.1, 0.5, 0.9])
    assert np.all(np.abs(q - sd_q) < 0.25 * sd_sd), (q, sd_q, sd_sd)


def test_inla_ordinal_threshold_prior_and_coordinates():
    # the thresholds' coordinates in w are the samplers' (tau_1, log gaps): each value's prior (its
    # name's override included) plus the log Jacobian of the gaps, with an exact gradient
    from scipy import stats

    model = _tiny_ordinal().with_priors({"mid|hi": bg.Prior("Normal", mu=1.0, sigma=0.5)})
    lay = Layout(model.spec, model.resolved_priors)
    assert lay.m == 1 and lay.nw == 3 and [c.names for c in lay.chains] == [["lo|mid", "mid|hi"]]
    w = np.array([0.7, -0.4, np.log(1.3)])
    lp, g = lay.w_logp_grad(w)
    pri = model.resolved_priors
    want = (get_kind(pri["x"].name).scipy(pri["x"].args).logpdf(0.7)
            + get_kind(pri["lo|mid"].name).scipy(pri["lo|mid"].args).logpdf(-0.4)
            + stats.norm(1.0, 0.5).logpdf(0.9) + np.log(1.3))
    np.testing.assert_allclose(lp, want, rtol=1e-12)
    h = 1e-6
    fd = [(lay.w_logp_grad(w + h * e)[0] - lay.w_logp_grad(w - h * e)[0]) / (2 * h) for e in np.eye(3)]
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)
    # the ML deviance's coordinates: (theta, beta, tau_1, log gap), psi the log sd
    np.testing.assert_allclose(lay.to_ml(np.array([np.log(0.5)]), w), [0.5, 0.7, -0.4, np.log(1.3)])


def test_inla_ordinal_wine_has_sample_names_coords_and_works_through_results():
    import arviz as az

    from bayes_glmm.bayes.pointwise import posterior_names

    d = pd.read_csv(Path(__file__).parent / "reference" / "ordinal_wine.csv")
    d["rating"] = pd.Categorical(d["rating"], categories=sorted(d["rating"].unique()), ordered=True)
    d["judge"] = d["judge"].astype(str)
    model = bg.GLMM("rating ~ temp + contact + (1 | judge)", d, family="ordinal", link="probit")
    r = model.fit_inla(random_seed=3, n_draws=400)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nuts = model.sample(draws=20, tune=20, chains=1, random_seed=3, progressbar=False)
    post, ref = r.idata.posterior, nuts.idata.posterior
    assert list(post.data_vars) == list(ref.data_vars) == posterior_names(model.spec)
    for v in ref.data_vars:
        assert post[v].dims[2:] == ref[v].dims[2:], v
    for c in ref.coords:
        if c not in ("chain", "draw"):
            assert list(post.coords[c].values) == list(ref.coords[c].values), c
    taus = np.stack([np.asarray(post[n]).ravel() for n in ["1|2", "2|3", "3|4", "4|5"]], axis=-1)
    assert np.all(np.diff(taus, axis=-1) > 0)
    assert r.idata.log_likelihood["y"].shape == (2, 200, model.spec.n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isfinite(az.loo(r.idata).elpd_loo)
    # the posterior means near the ML estimates (clmm: tempwarm 1.80, contactyes 1.05)
    np.testing.assert_allclose(r.fixef.values, model.fit_ml().fixef.values, atol=0.15)
    assert {"1|2", "4|5"} <= set(r.summary().index)
    probs = r.predict(kind="probs")
    assert list(probs.columns) == ["1", "2", "3", "4", "5"]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-10)
    assert np.all((r.predict(kind="mean") > 1.0) & (r.predict(kind="mean") < 5.0))

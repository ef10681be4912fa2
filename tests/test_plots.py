"""Plot functions return figures with the expected axes and artists (Agg backend)."""
import warnings

import matplotlib

matplotlib.use("Agg")

import arviz as az  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import bayes_glmm as bg  # noqa: E402
from bayes_glmm.postfit import plots  # noqa: E402
from bayes_glmm.bayes import BayesResults  # noqa: E402
from bayes_glmm.priors import Prior  # noqa: E402
from bayes_glmm.teaching import (FunnelResult, PriorPredictiveSummary, SensitivityResult,  # noqa: E402
                                 pooling, rank_groups, response_statistics)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def sleep_model():
    return bg.GLMM("Reaction ~ Days + (Days | Subject)", bg.datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def sleep_ml(sleep_model):
    return sleep_model.fit_ml()


def fake_post(model, S=200, seed=0, diverging=None):
    """BayesResults over hand-made draws around the ML estimates (no MCMC)."""
    rng = np.random.default_rng(seed)
    spec = model.spec
    t = spec.terms[0]
    ml = model.fit_ml()
    b = np.asarray(ml._point_params()[1][0])[None] + rng.normal(scale=2.0, size=(S, t.n_levels, t.q))
    sd = np.abs(np.sqrt(np.diag(ml.covs[0]))[None] + rng.normal(scale=1.0, size=(S, t.q)))
    post = {"beta": np.asarray(ml.fixef)[None, None] + rng.normal(size=(1, S, spec.p)),
            f"sd_{t.ident}": sd[None], f"b_{t.ident}": b[None], "sigma": np.full((1, S), 25.0)}
    div = np.zeros((1, S), bool) if diverging is None else np.asarray(diverging)[None]
    return BayesResults(model, az.from_dict(posterior=post, sample_stats={"diverging": div}))


def test_caterpillar_axes_and_artists(sleep_model, sleep_ml):
    post = fake_post(sleep_model)
    fig = plots.plot_caterpillar(post, ml=sleep_ml)
    assert isinstance(fig, Figure) and len(fig.axes) == 2  # one panel per coefficient
    for ax in fig.axes:
        assert len(ax.containers) == 1  # one errorbar container: 18 intervals
        assert len(ax.containers[0].lines[2][0].get_segments()) == 18
        assert len(ax.collections) == 2  # interval bars + BLUP markers
    one = plots.plot_caterpillar(post, coef="Days")
    assert len(one.axes) == 1 and len(one.axes[0].collections) == 1  # no BLUPs without ml
    with pytest.raises(ValueError, match="prob"):
        plots.plot_caterpillar(post, prob=1.5)


def test_shrinkage_arrows(sleep_model, sleep_ml):
    tab = pooling(sleep_model, coef="Days", ml=sleep_ml, post=fake_post(sleep_model))
    fig = plots.plot_shrinkage(tab, partial="partial_ml")
    ax = fig.axes[0]
    arrows = [c for c in ax.texts if getattr(c, "arrow_patch", None) is not None]
    assert len(arrows) == len(tab) == 18
    sizes = ax.collections[0].get_sizes()
    np.testing.assert_allclose(sizes, 200.0 / 10 * tab["n"].to_numpy())  # area proportional to n
    sized = plots.plot_shrinkage(tab, size_scale=3.0).axes[0].collections[0].get_sizes()
    np.testing.assert_allclose(sized, 3.0 * tab["n"].to_numpy())
    fig2 = plots.plot_shrinkage(tab)  # auto -> partial_bayes
    assert "partial bayes" in [t.get_text() for t in fig2.axes[0].get_yticklabels()]
    with pytest.raises(ValueError, match="pooling"):
        plots.plot_shrinkage(pd.DataFrame({"a": [1]}))


def test_shrinkage_with_separated_groups():
    tab = pd.DataFrame({"n": [3, 4, 5], "complete": [0.0, 0.0, 0.0], "no_pool": [-np.inf, 1.0, np.inf],
                        "partial_ml": [-1.0, 0.5, 1.2], "separated": [True, False, True]})
    fig = plots.plot_shrinkage(tab)
    ax = fig.axes[0]
    assert len([c for c in ax.texts if getattr(c, "arrow_patch", None) is not None]) == 3
    lo, hi = ax.get_xlim()
    assert np.isfinite(lo) and np.isfinite(hi)


def test_prior_posterior_and_sensitivity_grid():
    rng = np.random.default_rng(0)
    fig = plots.plot_prior_posterior(Prior("HalfNormal", sigma=2.0), np.abs(rng.normal(1, 0.2, 500)), ml=1.1)
    ax = fig.axes[0]
    assert len(ax.lines) == 3  # prior, posterior, ML line
    pri = {"hn": (Prior("HalfNormal", sigma=[2.0, 1.0]), "sd"),
           "ig": (Prior("InverseGamma", alpha=1.0, beta=1.0), "variance"),
           "ex": (Prior("Exponential", lam=1.0), "sd")}
    res = SensitivityResult(term="g", ident="g", coef_names=("(Intercept)", "x"), priors=pri,
                            sd_draws={k: np.abs(rng.normal(1, 0.3, (300, 2))) for k in pri},
                            ml_sd=np.array([1.0, 0.9]))
    fig = plots.plot_prior_sensitivity(res)
    assert len(fig.axes) == 2 * 3  # SD x prior
    assert all(len(a.lines) == 3 for a in fig.axes)


def test_prior_predictive_plot(sleep_model):
    spec = sleep_model.spec
    rng = np.random.default_rng(1)
    Y = rng.normal(300, 50, (100, spec.n))
    st = response_statistics(Y, spec)
    obs = response_statistics(spec.y, spec).iloc[0]
    fig = plots.plot_prior_predictive(PriorPredictiveSummary(table=None, stats=st, observed=obs))
    assert len(fig.axes) == st.shape[1] == 4
    assert all(len(a.patches) > 0 and len(a.lines) == 1 for a in fig.axes)


def test_funnel_plot(sleep_model):
    S = 200
    div = np.zeros(S, bool)
    div[:7] = True
    fits = {"centered": fake_post(sleep_model, S, 1, div), "non-centered": fake_post(sleep_model, S, 2)}
    fig = plots.plot_funnel(FunnelResult(table=pd.DataFrame(), fits=fits, term="Subject"), level="309")
    assert len(fig.axes) == 2
    assert len(fig.axes[0].collections[1].get_offsets()) == 7  # divergent draws highlighted
    assert len(fig.axes[1].collections[1].get_offsets()) == 0


def test_funnel_plot_without_sampler_stats(sleep_model):
    # an approximate posterior (fit_inla) has independent draws and no sample_stats group
    fits = {"approx": fake_post(sleep_model, 100, 3)}
    del fits["approx"].idata.sample_stats
    fig = plots.plot_funnel(FunnelResult(table=pd.DataFrame(), fits=fits, term="Subject"), level=0)
    assert len(fig.axes[0].collections[0].get_offsets()) == 100  # every draw plotted, none divergent
    assert len(fig.axes[0].collections[1].get_offsets()) == 0


def test_rank_plot(sleep_model, sleep_ml):
    r = rank_groups(fake_post(sleep_model), coef="Days", k=3, ml=sleep_ml)
    fig = plots.plot_rank_groups(r)
    assert len(fig.axes) == 2
    assert len(fig.axes[0].patches) == 9  # 3 k bars
    assert len(fig.axes[1].collections) == 3  # intervals, mean ranks, BLUP ranks


def test_ppc_real_posterior():
    m = bg.GLMM("Reaction ~ Days + (1 | Subject)", bg.datasets.load("sleepstudy"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = m.sample(draws=100, tune=200, chains=1, random_seed=3, sampler="pymc", progressbar=False)
    groups = set(post.idata.groups())
    fig = plots.plot_ppc(post, num_pp_samples=20, random_seed=1)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert len(fig.axes[0].lines) >= 20  # predictive curves + observed + mean
    assert set(post.idata.groups()) == groups  # post.idata is not modified


def test_prior_predictive_plot_cuts_the_long_tail_of_a_log_link_model():
    # prior draws of a Poisson log-link model: a wide prior on the intercept makes a few
    # simulated data sets run to astronomical counts; the axis must show the bulk instead
    d = bg.datasets.load("epilepsy")
    spec = bg.GLMM("count ~ followup * group + (1 | id)", d, family="poisson").spec
    rng = np.random.default_rng(4)
    S = 400
    codes = spec.terms[0].codes
    eta = (rng.normal(np.log(8.0), 2.5, (S, 1)) + rng.normal(0, 1, (S, spec.terms[0].n_levels))[:, codes]
           * np.abs(rng.normal(0, 1.0, (S, 1))))
    Y = rng.poisson(np.exp(np.minimum(eta, 40.0))).astype(float)
    st = response_statistics(Y, spec)
    obs = response_statistics(spec.y, spec).iloc[0]
    summary = PriorPredictiveSummary(table=None, stats=st, observed=obs)
    fig = plots.plot_prior_predictive(summary)
    ax = fig.axes[list(st.columns).index("max")]
    x = st["max"].to_numpy()
    lo, hi = ax.get_xlim()
    q995 = np.quantile(x, 0.995)
    assert x.max() > 5 * q995 and np.median(x) < 1e-3 * x.max()  # the tail that made the old axis unreadable
    assert hi <= 1.05 * q995 and hi >= obs["max"] and ax.get_xscale() == "symlog"
    assert any("long tail cut" in t.get_text() for t in ax.texts)
    # a statistic without a long tail keeps every draw on its axis, with no note
    ax0 = fig.axes[list(st.columns).index("prop_zero")]
    assert not ax0.texts and ax0.get_xlim()[1] >= st["prop_zero"].max() and ax0.get_xscale() == "linear"
    # clip=None is the old behaviour: the axis runs to the largest draw
    full = plots.plot_prior_predictive(summary, clip=None).axes[list(st.columns).index("max")]
    assert full.get_xlim()[1] >= x.max()
    with pytest.raises(ValueError, match="clip"):
        plots.plot_prior_predictive(summary, clip=1.5)

"""bg.compare / bg.plot_compare across posterior, ML, PQL and GEE fits."""
import warnings

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import bayes_glmm as bg  # noqa: E402
from bayes_glmm.postfit.comparison import compare, fit_table, plot_compare  # noqa: E402
from bayes_glmm.postfit.gee import fit_gee  # noqa: E402
from bayes_glmm.ml.pql import fit_pql  # noqa: E402

from _fake_fits import FakePosterior  # noqa: E402


@pytest.fixture(scope="module")
def cbpp():
    return bg.GLMM("cbind(incidence, size - incidence) ~ period + (1 | herd)", bg.datasets.load("cbpp"),
                   family="binomial")


@pytest.fixture(scope="module")
def fits(cbpp):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {"ml": cbpp.fit_ml(), "pql": fit_pql(cbpp.spec), "pql1": fit_pql(cbpp.spec, dispersion=False),
                "gee": fit_gee(cbpp)}


@pytest.fixture(scope="module")
def post(cbpp, fits):
    rng = np.random.default_rng(5)
    S = 300
    beta = fits["ml"].fixef.to_numpy() + rng.normal(0, 0.2, (S, 4))
    sd = np.abs(rng.normal(0.6, 0.1, (S, 1)))
    b = rng.normal(0, 0.5, (S, 15, 1))
    return FakePosterior(cbpp.spec, beta, [sd], b=[b])


def test_table_layout_and_reference(fits):
    t = compare(fits["ml"], fits["pql"], fits["gee"], names=["Laplace", "PQL", "GEE"])
    assert list(t.columns) == ["fit", "method", "param", "kind", "group", "estimate", "se", "lower", "upper",
                               "interval", "diff", "z", "z_scale", "flag"]
    # every fixed effect of every fit, then the SD (not for the GEE)
    assert (t["kind"] == "fixed").sum() == 12
    assert t.loc[t.kind == "sd", "fit"].tolist() == ["Laplace", "PQL"]
    assert t.loc[t.kind == "sd", "param"].iloc[0] == "sd_herd[(Intercept)]"
    ref = t[t.fit == "Laplace"]
    assert np.all(ref["diff"] == 0)
    pq = t[(t.fit == "PQL") & (t.kind == "fixed")].set_index("param")
    ml = fits["ml"]
    np.testing.assert_allclose(pq["z"], (pq["estimate"] - ml.fixef) / ml.se)
    np.testing.assert_allclose(pq["lower"], pq["estimate"] - 1.959964 * pq["se"], rtol=1e-6)
    sd_row = t[(t.fit == "PQL") & (t.kind == "sd")].iloc[0]
    assert np.isnan(sd_row["se"]) and np.isnan(sd_row["z"]) and sd_row["z_scale"] == "none"
    assert sd_row["interval"] == "none"


def test_flags_and_threshold(fits):
    zmax = compare(fits["ml"], fits["gee"], params="fixed")["z"].abs().max()
    assert zmax > 0  # GEE coefficients are attenuated relative to the GLMM's
    t = compare(fits["ml"], fits["gee"], params="fixed", threshold=zmax / 2)
    g = t[t.fit == t.fit.unique()[1]]
    np.testing.assert_array_equal(g["flag"], g["z"].abs() > zmax / 2)
    assert g["flag"].any()
    t2 = compare(fits["ml"], fits["gee"], params="fixed", threshold=100)
    assert not t2["flag"].any()


def test_names_reference_and_params(fits):
    t = compare(fits["pql"], fits["pql1"])
    assert t["fit"].unique().tolist() == ["PQL", "PQL (2)"]
    t = compare(fits["pql"], fits["pql1"], names=["a", "b"], reference="b", params=["sd", "period2"])
    assert set(t["param"]) == {"sd_herd[(Intercept)]", "period2"}
    assert np.all(t.loc[t.fit == "b", "diff"] == 0)
    assert set(compare(fits["ml"], params="varcorr")["kind"]) == {"sd"}
    with pytest.raises(ValueError, match="reference"):
        compare(fits["pql"], reference="nope")
    with pytest.raises(ValueError, match="out of range"):
        compare(fits["pql"], reference=3)
    with pytest.raises(ValueError, match="names has"):
        compare(fits["pql"], fits["ml"], names=["x"])
    with pytest.raises(ValueError, match="parameter labels"):
        compare(fits["pql"], params="slopes")
    with pytest.raises(ValueError, match="at least one"):
        compare()
    with pytest.raises(ValueError, match="fixef"):
        compare(object())


def test_posterior_rows(post, fits):
    t = fit_table(post, interval=0.9)
    beta = np.asarray(post.idata.posterior["beta"]).reshape(-1, 4)
    fx = t[t.kind == "fixed"]
    np.testing.assert_allclose(fx["estimate"], beta.mean(0))
    np.testing.assert_allclose(fx["se"], beta.std(0, ddof=1))
    np.testing.assert_allclose(fx["lower"], np.quantile(beta, 0.05, axis=0))
    assert fx["interval"].iloc[0] == "posterior 90%"
    sd = np.asarray(post.idata.posterior["sd_herd"]).ravel()
    assert t.loc[t.kind == "sd", "estimate"].iloc[0] == pytest.approx(sd.mean())
    # posterior as reference: z in posterior SD units, also for the ML SD (which has none)
    c = compare(post, fits["ml"], names=["Bayes", "ML"])
    row = c[(c.fit == "ML") & (c.kind == "sd")].iloc[0]
    assert row["z"] == pytest.approx((row["estimate"] - sd.mean()) / sd.std(ddof=1))
    assert row["z_scale"] == "reference"


def test_ranef_rows(post, fits):
    t = compare(post, fits["ml"], params="fixed", ranef=True)
    re = t[t.kind == "ranef"]
    assert len(re) == 2 * 15
    assert re["param"].iloc[0].startswith("b_herd[")
    ml_re = re[re.method == "Laplace"]
    assert np.all(ml_re["se"] > 0)  # conditional SDs of the modes
    assert ml_re["estimate"].tolist() == fits["ml"].ranef["herd"].iloc[:, 0].tolist()


def test_correlation_and_sigma_rows():
    m = bg.GLMM("Reaction ~ Days + (Days | Subject)", bg.datasets.load("sleepstudy"))
    t = compare(m.fit_ml(), m.fit_ml(reml=False), names=["REML", "ML"])
    assert "corr_Subject[(Intercept), Days]" in set(t["param"])
    assert "sigma" in set(t["param"])
    assert list(dict.fromkeys(t["kind"])) == ["fixed", "sd", "corr", "sigma"]


def test_plot_compare(fits, post):
    fig, ax = plot_compare(post, fits["ml"], fits["pql"], fits["gee"], params="all")
    assert len(ax.get_yticklabels()) == 5
    assert len(ax.get_legend().get_texts()) == 4
    import matplotlib.pyplot as plt

    fig2, ax2 = plt.subplots()
    tab = compare(fits["ml"], fits["gee"])
    out = plot_compare(table=tab, ax=ax2)
    assert out == (fig2, ax2)
    plt.close("all")
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_compare(table=tab.iloc[:0])


@pytest.mark.slow
def test_real_posterior_against_ml_and_pql():
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(30), 6)
    x = rng.normal(size=g.size)
    y = rng.binomial(1, 1 / (1 + np.exp(-(-0.3 + 0.8 * x + rng.normal(0, 1.0, 30)[g]))))
    m = bg.GLMM("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": g.astype(str)}), family="bernoulli")
    post = m.sample(draws=300, tune=300, chains=1, random_seed=1)
    t = compare(post, m.fit_ml(), m.fit_pql(), names=["Bayes", "Laplace", "PQL"])
    assert set(t["fit"]) == {"Bayes", "Laplace", "PQL"}
    fx = t[(t.kind == "fixed") & (t.fit == "Laplace")]
    assert np.all(fx["z"].abs() < 2)
    fig, ax = plot_compare(table=t)
    assert ax is not None
    # the other posterior consumers on real InferenceData
    from bayes_glmm.postfit.marginal import marginal_coefficients
    from bayes_glmm.postfit.variance import icc

    out = icc(post)
    assert 0 < out["lower"].iloc[0] < out["icc"].iloc[0] < out["upper"].iloc[0] < 1
    mc = marginal_coefficients(post)
    assert abs(mc.loc["x", "marginal"]) < abs(mc.loc["x", "conditional"])

"""Teaching tools on ordinal fits (issue 18): ``pooling()`` on the latent scale (complete and no
pooling are R's ``clm`` fits, tests/reference/make_reference_emmeans_ordinal.R) and
``marginal_means`` / ``marginal_effects`` as category probabilities, the expected category and
the latent mean (population-averaged by quadrature, checked by Monte Carlo)."""
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm import teaching as tg
from bayes_glmm.teaching.ordinal_glm import fit_clm

REF_DIR = Path(__file__).parent / "reference"
CLM = json.loads((REF_DIR / "emmeans_ordinal_reference.json").read_text())["clm"]
FORMULA = "rating ~ temp + contact + (1 | judge)"


def _data():
    d = pd.read_csv(REF_DIR / "ordinal_wine.csv")
    d["judge"] = d["judge"].astype(str)
    return d


_CACHE = {}


def _model(link="logit"):
    if link not in _CACHE:
        m = bg.GLMM(FORMULA, _data(), family="ordinal", link=link)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _CACHE[link] = (m, m.fit_ml())
    return _CACHE[link]


def test_fit_clm_equals_r_clm():
    m, _ = _model()
    ref = CLM["complete_logit"]
    beta, taus = fit_clm(m.spec.X, m.spec.y, m.spec.family)
    np.testing.assert_allclose(beta, [ref["beta"][n] for n in m.spec.fixed_names], atol=1e-5)
    np.testing.assert_allclose(taus, list(ref["thresholds"].values()), atol=1e-5)


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_pooling_columns_are_clm_and_clmm_locations(link):
    """Each judge's latent location minus the mean threshold of its fit: complete pooling from
    clm without judge, no pooling from clm with judge as a factor (treatment coding: judge 1 at
    0), partial pooling from the mixed model's conditional modes."""
    m, ml = _model(link)
    tab = tg.pooling(m, ml=ml)
    ref = CLM[f"no_pool_{link}"]
    mean_tau = np.mean(list(ref["thresholds"].values()))
    want = np.array([0.0] + [ref["beta"][f"judge{j}"] for j in range(2, 10)]) - mean_tau
    np.testing.assert_allclose(tab["no_pool"].to_numpy(), want, atol=1e-4)
    if link == "logit":
        cp = CLM["complete_logit"]
        assert np.allclose(tab["complete"], -np.mean(list(cp["thresholds"].values())), atol=1e-5)
    taus = [float(ml.dispersion[k]) for k in m.spec.family.aux_names]
    np.testing.assert_allclose(tab["partial_ml"], ml.ranef["judge"]["(Intercept)"].to_numpy() - np.mean(taus),
                               atol=1e-10)
    assert not tab["separated"].any() and tab.attrs["scale"].startswith("latent")
    # shrinkage: the partial-pooling locations spread less than the no-pooling ones
    assert tab["partial_ml"].std() < tab["no_pool"].std()


def test_pooling_flags_a_group_in_one_end_category():
    d = _data()
    d.loc[d["judge"] == "3", "rating"] = 5  # judge 3 rates everything top: no finite location
    m = bg.GLMM(FORMULA, d, family="ordinal")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tab = tg.pooling(m)
    assert tab.loc["3", "separated"] and tab.loc["3", "no_pool"] == np.inf
    assert not tab.drop(index="3")["separated"].any()


def test_marginal_means_probabilities_mean_and_latent():
    m, ml = _model()
    nd = pd.DataFrame({"temp": ["cold", "warm"], "contact": ["no", "yes"], "judge": ["1", "1"]})
    pr = bg.marginal_means(ml, nd, scale="probs")
    assert pr.index.names == ["row", "rating"] and len(pr) == 10
    np.testing.assert_allclose(pr["marginal"].groupby(level=0).sum(), 1.0, atol=1e-12)
    np.testing.assert_allclose(pr["conditional"].to_numpy().reshape(2, 5),
                               ml.predict(nd, kind="probs", re_form=None).to_numpy(), atol=1e-12)
    # the quadrature against Monte Carlo over the judge effect
    fam, sd = m.spec.family, float(ml.varcorr["sdcor"].iloc[0])
    eta = ml.predict(nd, kind="link", re_form=None)
    z = np.random.default_rng(1).standard_normal(200_000)
    mc = np.stack([fam.category_probs(e + sd * z, **ml._scale_aux()).mean(0) for e in eta])
    np.testing.assert_allclose(pr["marginal"].to_numpy().reshape(2, 5), mc, atol=3e-3)
    assert np.all(pr["se"] > 0) and pr["uncertainty"].iloc[0] == "delta (beta, thresholds)"
    mean = bg.marginal_means(ml, nd)
    np.testing.assert_allclose(mean["marginal"], pr["marginal"].to_numpy().reshape(2, 5) @ np.arange(1, 6),
                               rtol=1e-12)
    np.testing.assert_allclose(mean["conditional"], ml.predict(nd, kind="mean", re_form=None), rtol=1e-10)
    lat = bg.marginal_means(ml, nd, scale="link")
    np.testing.assert_allclose(lat["marginal"], eta, atol=1e-12)
    np.testing.assert_allclose(lat["conditional"], eta, atol=1e-12)


def test_marginal_effects_of_expected_category_and_one_category():
    _, ml = _model()
    base = pd.DataFrame({"temp": ["cold"] * 2, "contact": ["no", "yes"], "judge": ["1", "1"]})
    warm = base.assign(temp="warm")
    eff = bg.marginal_effects(ml, warm, base, average=True)
    m1, m0 = bg.marginal_means(ml, warm), bg.marginal_means(ml, base)
    assert eff.loc["average", "marginal"] == pytest.approx(m1["marginal"].mean() - m0["marginal"].mean(),
                                                            rel=1e-10)
    assert eff.loc["average", "lower"] > 0  # warm wine is rated higher
    top = bg.marginal_effects(ml, warm, base, category=5)
    p1, p0 = bg.marginal_means(ml, warm, scale="probs"), bg.marginal_means(ml, base, scale="probs")
    np.testing.assert_allclose(top["marginal"], p1.xs("5", level="rating")["marginal"].to_numpy()
                               - p0.xs("5", level="rating")["marginal"].to_numpy(), rtol=1e-10)
    lat = bg.marginal_effects(ml, warm, base, contrast="link")
    np.testing.assert_allclose(lat["marginal"], ml.fixef["tempwarm"], rtol=1e-10)
    with pytest.raises(ValueError, match="not a category"):
        bg.marginal_effects(ml, warm, base, category="9")
    with pytest.raises(ValueError, match="se='delta' or None"):
        bg.marginal_means(ml, base, se="bootstrap")
    with pytest.raises(ValueError, match="marginal coefficients of an ordered"):
        bg.marginal_coefficients(ml)


def test_posterior_pooling_and_marginal_means():
    m, ml = _model()
    with warnings.catch_warnings():  # short chains: the R-hat / ESS note is expected
        warnings.simplefilter("ignore", UserWarning)
        post = m.sample(draws=100, tune=100, chains=2, random_seed=4, sampler="native", progressbar=False)
    tab = tg.pooling(m, ml=ml, post=post)
    assert np.corrcoef(tab["partial_bayes"], tab["partial_ml"])[0, 1] > 0.95
    nd = pd.DataFrame({"temp": ["warm"], "contact": ["yes"], "judge": ["1"]})
    pr = bg.marginal_means(post, nd, scale="probs")
    assert pr["uncertainty"].iloc[0] == "posterior"
    np.testing.assert_allclose(pr["marginal"].sum(), 1.0, atol=1e-12)
    assert np.all((pr["lower"] >= 0) & (pr["upper"] <= 1))

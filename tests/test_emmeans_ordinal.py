"""emmeans on the response scale of ordinal fits (issue 18): category probabilities (emmeans's
``mode = "prob"``) and the expected class (``mode = "mean.class"``), against R's emmeans on
``ordinal::clmm`` fits of the wine data (tests/reference/make_reference_emmeans_ordinal.R).

Two comparisons: at exactly clmm's estimates and covariance (the emmeans arithmetic, to 1e-6),
and on our own fit (estimates within 0.01 SE; SEs within 2%, the spread of clmm's and our
Laplace SEs on wine, tests/test_ordinal.py)."""
import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm.ml.auxpar import aux_coords, aux_jacobian
from bayes_glmm.ml.results import MLResults

REF_DIR = Path(__file__).parent / "reference"
REF = json.loads((REF_DIR / "emmeans_ordinal_reference.json").read_text())


def _data():
    d = pd.read_csv(REF_DIR / "ordinal_wine.csv")
    d["judge"] = d["judge"].astype(str)
    return d


_FITS = {}


def _fit(key):
    if key not in _FITS:
        ref = REF["fits"][key]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITS[key] = bg.GLMM(ref["formula"], _data(), family="ordinal", link=ref["link"]).fit_ml()
    return _FITS[key]


def _at_clmm(key):
    """Our fit with clmm's estimates and covariance put in (clmm's thresholds mapped to our
    coordinates: the first threshold and the logs of the gaps)."""
    res, ref = _fit(key), REF["fits"][key]
    fam = res.spec.family
    thr = {k: float(v) for k, v in ref["thresholds"].items()}
    beta = np.array([ref["beta"][n] for n in res.spec.fixed_names])
    names = ref["vcov_names"]
    order = list(res.spec.fixed_names) + [a.name for a in fam.aux_params]
    pos = [names.index(n) for n in order]
    V = np.asarray(ref["vcov"], dtype=float)[np.ix_(pos, pos)]
    p = beta.size
    Jinv = np.linalg.inv(aux_jacobian(fam, aux_coords(fam, thr)))
    T = np.eye(V.shape[0])
    T[p:, p:] = Jinv
    Vc = T @ V @ T.T
    fit = dataclasses.replace(res.fit, beta=beta, aux=thr, vcov_beta=Vc[:p, :p], vcov_aux=Vc[p:, p:],
                              vcov_beta_aux=Vc[:p, p:])
    return MLResults(res.spec, fit)


def _ref_frame(tab, keys, value):
    t = pd.DataFrame(tab)
    return t.set_index(keys)[[value, "SE", "asymp.LCL", "asymp.UCL"]]


CASES = [  # (reference table, our call, the reference's index columns, value column)
    ("prob_temp", dict(specs="temp", type="response"), ["temp", "rating"], "prob"),
    ("prob_temp_contact", dict(specs=["temp", "contact"], type="response"), ["temp", "contact", "rating"], "prob"),
    ("mean_class_temp", dict(specs="temp", type="mean.class"), ["temp"], "mean.class"),
    ("mean_class_contact_by_temp", dict(specs="contact", by="temp", type="mean.class"), ["temp", "contact"],
     "mean.class"),
]


def _compare(res, key, case, exact):
    name, kw, keys, value = case
    ref = _ref_frame(REF["fits"][key][name], keys, value)
    ours = res.emmeans(**kw)
    ours.index = ours.index.set_names(keys if len(keys) == ours.index.nlevels else ours.index.names)
    ours = ours.reorder_levels(keys) if ours.index.nlevels > 1 else ours
    ours.index = pd.MultiIndex.from_frame(ours.index.to_frame().astype(str)) if ours.index.nlevels > 1 \
        else ours.index.astype(str)
    ref.index = pd.MultiIndex.from_frame(ref.index.to_frame().astype(str)) if ref.index.nlevels > 1 \
        else ref.index.astype(str)
    ours = ours.loc[ref.index]
    assert len(ours) == len(ref)
    if exact:
        np.testing.assert_allclose(ours["estimate"], ref[value], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(ours["se"], ref["SE"], rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(ours["lower"], ref["asymp.LCL"], rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(ours["upper"], ref["asymp.UCL"], rtol=1e-5, atol=1e-8)
    else:
        assert np.all(np.abs(ours["estimate"] - ref[value]) < 0.01 * ref["SE"])
        np.testing.assert_allclose(ours["se"], ref["SE"], rtol=2e-2)
    assert np.all(np.isinf(ours["df"]))
    if value == "prob":  # each cell's probabilities sum to 1
        cells = ours["estimate"].groupby(level=keys[:-1]).sum()
        np.testing.assert_allclose(cells, 1.0, atol=1e-12)


@pytest.mark.parametrize("key", sorted(REF["fits"]))
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_emmeans_at_clmm_parameters_equal_r(key, case):
    _compare(_at_clmm(key), key, case, exact=True)


@pytest.mark.parametrize("key", sorted(REF["fits"]))
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_emmeans_on_our_fit_close_to_r(key, case):
    _compare(_fit(key), key, case, exact=False)


@pytest.mark.parametrize("key", sorted(REF["fits"]))
def test_pairs_of_expected_classes(key):
    ref = REF["fits"][key]["pairs_mean_class_contact"]
    out = _at_clmm(key).contrasts("contact", type="mean.class")
    assert list(out.index) == [ref["contrast"]]
    assert out["estimate"].iloc[0] == pytest.approx(ref["estimate"], rel=1e-6)
    assert out["se"].iloc[0] == pytest.approx(ref["SE"], rel=1e-5)
    assert out["statistic"].iloc[0] == pytest.approx(ref["z.ratio"], rel=1e-5)
    assert out["p"].iloc[0] == pytest.approx(ref["p.value"], rel=1e-4)
    # one contrast: Tukey's limits are the z interval, emmeans's confint
    assert out["lower"].iloc[0] == pytest.approx(ref["asymp.LCL"], rel=1e-5)
    assert out["upper"].iloc[0] == pytest.approx(ref["asymp.UCL"], rel=1e-5)


def test_contrasts_of_probabilities_are_refused_with_the_alternatives():
    with pytest.raises(ValueError, match="type='mean.class'"):
        _fit("wine_logit").contrasts("temp", type="response")


def test_link_scale_is_unchanged_and_prob_is_an_alias():
    r = _fit("wine_logit")
    link = r.emmeans("temp")
    assert list(link.columns) == ["estimate", "se", "df", "lower", "upper"] and len(link) == 2
    pd.testing.assert_frame_equal(r.emmeans("temp", type="prob"), r.emmeans("temp", type="response"))


def test_posterior_response_scale():
    """A short NUTS fit: per-draw probabilities that sum to 1 in each cell, expected classes near
    the ML ones (a few posterior SDs), contrasts of expected classes per draw."""
    m = bg.GLMM(REF["fits"]["wine_logit"]["formula"], _data(), family="ordinal")
    with warnings.catch_warnings():  # short chains: the R-hat / ESS note is expected
        warnings.simplefilter("ignore", UserWarning)
        post = m.sample(draws=100, tune=100, chains=2, random_seed=2, sampler="native", progressbar=False)
    pr = post.emmeans("temp", type="response", level=0.9)
    assert list(pr.columns) == ["estimate", "se", "lower", "upper"]
    np.testing.assert_allclose(pr["estimate"].groupby(level="temp").sum(), 1.0, atol=1e-12)
    assert np.all((pr["lower"] >= 0.0) & (pr["upper"] <= 1.0) & (pr["lower"] <= pr["estimate"]))
    mc, ml = post.emmeans("temp", type="mean.class"), _fit("wine_logit").emmeans("temp", type="mean.class")
    assert np.all(np.abs(mc["estimate"] - ml["estimate"]) < 3.0 * mc["se"])
    c = post.contrasts("contact", type="mean.class")
    assert list(c.index) == ["no - yes"] and c["upper"].iloc[0] < 0.0

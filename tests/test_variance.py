"""Latent-scale ICCs."""
import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm.postfit.variance import icc, icc_from_variances, latent_residual_variance

from _fake_fits import FakePosterior

LOGIT_VAR = np.pi ** 2 / 3


def test_seed_001_horse_farms():
    # Seed 001 (McCulloch 1997, sec. 3): sigma^2_farm = 1.26, sigma^2_group(farm) = 0, logit
    # link, "a significant correlation among horses within a farm on the logit scale (0.32)".
    # The standard latent-scale ICC with 1.26 as the *variance* gives 0.277:
    assert icc_from_variances([1.26, 0.0], LOGIT_VAR)[0] == pytest.approx(1.26 / (1.26 + 3.2899), abs=1e-4)
    assert icc_from_variances([1.26, 0.0], LOGIT_VAR)[0] == pytest.approx(0.277, abs=1e-3)
    # the seed's 0.32 is what the same formula gives when 1.26 is the farm *SD*
    # (1.26^2 / (1.26^2 + pi^2/3) = 0.3255); no standard formula gives 0.32 from variance 1.26
    assert icc_from_variances([1.26 ** 2, 0.0], LOGIT_VAR)[0] == pytest.approx(0.32, abs=0.01)
    # social groups add nothing: within-group correlation = farm share + group share
    assert icc_from_variances([1.26, 0.0], LOGIT_VAR)[1] == 0.0


def test_latent_residual_variances():
    assert latent_residual_variance("bernoulli") == pytest.approx(np.pi ** 2 / 3)
    assert latent_residual_variance("binomial", "probit") == 1.0
    assert latent_residual_variance("bernoulli", "cloglog") == pytest.approx(np.pi ** 2 / 6)
    assert latent_residual_variance("poisson", mu=2.0) == pytest.approx(np.log(1.5))
    assert latent_residual_variance("gaussian", sigma=3.0) == pytest.approx(9.0)
    with pytest.raises(ValueError, match="mu="):
        latent_residual_variance("poisson")
    with pytest.raises(ValueError, match="sigma="):
        latent_residual_variance("gaussian")
    with pytest.raises(ValueError, match="non-negative"):
        icc_from_variances([-1.0], 1.0)


def test_icc_ml_binomial():
    m = bg.GLMM("cbind(incidence, size - incidence) ~ period + (1 | herd)", bg.datasets.load("cbpp"),
                family="binomial")
    ml = m.fit_ml()
    out = icc(ml)
    v = float(ml.varcorr["vcov"].iloc[0])
    assert out["group"].tolist() == ["herd"]
    assert out["icc"].iloc[0] == pytest.approx(v / (v + LOGIT_VAR))
    assert np.isnan(out["sd"].iloc[0]) and out["method"].iloc[0] == "Laplace"


def test_icc_gaussian_random_slopes_uses_intercept_variance():
    m = bg.GLMM("Reaction ~ Days + (Days | Subject)", bg.datasets.load("sleepstudy"))
    ml = m.fit_ml()
    vc = ml.varcorr
    v0 = float(vc["vcov"].iloc[0])
    s2 = float(vc.loc[vc["grp"] == "Residual", "vcov"].iloc[0])
    assert icc(ml)["icc"].iloc[0] == pytest.approx(v0 / (v0 + s2))


def test_icc_poisson_default_mu():
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(25), 4)
    x = rng.normal(size=g.size)
    y = rng.poisson(np.exp(0.5 + 0.3 * x + rng.normal(0, 0.5, 25)[g]))
    m = bg.GLMM("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": g.astype(str)}), family="poisson")
    ml = m.fit_ml()
    out = icc(ml)
    v = float(ml.varcorr["vcov"].iloc[0])
    lam = np.exp(m.spec.X @ ml.fixef.to_numpy() + v / 2).mean()
    assert out["residual_variance"].iloc[0] == pytest.approx(np.log1p(1 / lam))
    assert icc(ml, mu=1.0)["icc"].iloc[0] == pytest.approx(v / (v + np.log(2.0)))


def test_icc_posterior_per_draw():
    m = bg.GLMM("cbind(incidence, size - incidence) ~ period + (1 | herd)", bg.datasets.load("cbpp"),
                family="binomial")
    rng = np.random.default_rng(1)
    S = 400
    sd = np.abs(rng.normal(0.6, 0.15, (S, 1)))
    post = FakePosterior(m.spec, rng.normal(size=(S, 4)), [sd])
    out = icc(post, interval=0.9)
    per_draw = sd[:, 0] ** 2 / (sd[:, 0] ** 2 + LOGIT_VAR)
    assert out["icc"].iloc[0] == pytest.approx(per_draw.mean())
    assert out["sd"].iloc[0] == pytest.approx(per_draw.std(ddof=1))
    assert out["lower"].iloc[0] == pytest.approx(np.quantile(per_draw, 0.05))
    assert out["upper"].iloc[0] == pytest.approx(np.quantile(per_draw, 0.95))


def test_icc_errors():
    m = bg.GLMM("Reaction ~ Days", bg.datasets.load("sleepstudy"))

    class NoRe:
        spec = m.spec

    with pytest.raises(ValueError, match="random effects"):
        icc(NoRe())

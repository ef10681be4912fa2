"""Simulation-based calibration (SBC) of bayes_glmm's NUTS path (Talts et al. 2018).

For each replication the script draws the parameters from the prior, simulates a data
set from the model, fits it with ``GLMM.sample`` (``sampler="auto"``) and records the
rank of each true scalar parameter among ``L`` thinned posterior draws.  If prior
draws, simulator and posterior are mutually consistent, every rank is uniform on
``{0, ..., L}``; a sampler bias, a wrong prior parametrization or a mismatch between
the model's likelihood and the simulator shows up as a non-uniform rank histogram.

Models
------
``bernoulli``
    ``y ~ x + (1 | g)``, logit link, 20 groups x 10 observations.
    Priors: ``Intercept ~ Normal(0, 1)``, ``x ~ Normal(0, 1)``, ``sd_g ~ HalfNormal(1)``.
``negbinomial``
    ``y ~ x + (1 | g)``, NB2 (Var = mu + mu^2/theta), log link, 20 groups x 10 observations.
    Priors: ``Intercept ~ Normal(1, 0.5)``, ``x ~ Normal(0, 0.5)``, ``sd_g ~ HalfNormal(0.5)``,
    ``theta ~ Gamma(2, 0.5)`` (mean 4; the simulator draws y as the gamma-Poisson mixture).
``poisson``
    ``y ~ x + offset(log(t)) + (1 + x | g)``, log link, 20 groups x 8 observations,
    exposure ``t ~ Uniform(0.5, 2)``.  Priors: ``Intercept ~ Normal(0, 0.5)`` (log rate
    per unit exposure near 0), ``x ~ Normal(0, 0.5)``, ``sd_g ~ HalfNormal([1, 0.5])``
    (intercept SD, slope SD), ``corr_g ~ LKJ(eta=2)``.

Every family (issue 16), on ``y ~ x + (1 | g)`` at the family's default link, 20 groups x 10
observations, ``x`` centred (:func:`_sim_glmm`; priors in :data:`MODELS`):
``gaussian`` (``sigma``), ``binomial`` (logit, 1-8 trials per row, ``trials="n"``),
``poisson_scalar``, ``nbinom1`` (Var = mu (1 + phi)), ``gamma`` (log, ``shape``), ``beta``
(logit, precision ``phi``); zero inflation ``zip`` (Poisson, ``zi="~ x"``), ``zinb`` (NB2,
``zi="~1"``), ``zinb1`` (NB1, ``zi="~1"``); crossed ``bernoulli_crossed``
(``+ (1 | h)``, 20 x 10 fully crossed); a covariance structure ``poisson_ar1``
(``y ~ x + ar1(0 + factor(t) | g)``, 15 groups x 4 times x 2 rows, an AR(1) latent process;
``sd_g ~ HalfNormal(0.7)``, ``corr_g ~ LKJ(eta=2)``, i.e. ``(rho + 1) / 2 ~ Beta(2, 2)``;
ranked: the fixed effects, the one SD and ``rho_g``); hurdle counts (issue 18)
``hurdle_poisson`` (``hu="~ x"``) and ``hurdle_negbinomial`` (``hu="~1"``), zero-truncated
counts drawn by SciPy's inverse CDF; ``student_t`` (identity, ``sigma ~ HalfNormal(1)``,
``df ~ Gamma(2, 0.1)``, brms's default; ``df`` mixes slowly: run it with ``--draws 1000``) and
``betabinomial`` (logit, 2-10 trials per row, ``trials="n"``, ``phi ~ Gamma(2, 0.2)``);
dispersion formulas ``gaussian_disp`` and ``negbinomial_disp`` (``disp="~ x"``: ``log sigma`` /
``log theta`` = ``disp_Intercept + disp_x * x``, ranked as those prior keys); ``ordinal``
(cumulative logit, four categories, ``y ~ x + (1 | g)`` without intercept, thresholds
``"1|2" < "2|3" < "3|4"`` each ``Normal(0, 2)`` under the ordering constraint; a data set
missing a category is drawn again, :func:`_sim_ordinal`; ranked: ``x``, ``sd_g`` and the three
thresholds; their contraction is against the unconstrained Normal(0, 2) variance).
Weights are not simulated: the package multiplies a
row's log-density by its weight (a pseudo-likelihood, not a generative model SBC can draw
from); ``tests/test_reference_posterior.py`` checks weighted models against numpyro instead.

The priors are passed explicitly with ``priors=`` so that the model does not auto-scale
them from the simulated ``y`` (the log-link default centres the intercept prior on the
observed log rate): SBC needs the prior the truths are drawn from to be the prior the
model uses, and the same ``bg.Prior`` objects serve both purposes here.

Checked parameters: every fixed effect (posterior ``beta``), every random-effect SD
(``sd_g``, ``sd_h``), the dispersion (``sigma``, ``theta``, ``phi``, ``shape``; Student-t's ``df``), the
zero-inflation coefficients (``beta_zi``) and, for ``poisson``, the correlation (``corr_g``; a ``q x q`` matrix with dims
``(g_coef, g_coef2)`` or the off-diagonal pairs only, both are handled).

Tests and threshold
-------------------
Per parameter, two tests of rank uniformity: Pearson's chi-square on the ranks binned
into ``B`` equal-width bins (``B`` divides ``L + 1`` so each bin holds the same number of
rank values; ``B`` is the largest such divisor <= 20 with >= 5 expected counts per bin),
and a Kolmogorov-Smirnov test of ``(rank + U) / (L + 1)``, ``U ~ Uniform(0, 1)``, which is
exactly Uniform(0, 1) under calibration (the jitter removes the discreteness).  The
script exits 1 if any p-value is below ``--alpha`` (default 0.001 per test).  With the
default models there are 12 parameters x 2 tests = 24 tests, so under perfect
calibration a false alarm happens with probability <= 24 x 0.001 = 2.4% (Bonferroni;
``--all``: 53 parameters, 106 tests, <= 11%, so one p-value between 1e-4 and 1e-3 is
not by itself a failure: rerun that model with another ``--seed``),
while a real miscalibration of the size SBC is meant to catch drives p far below 0.001
at 100 replications.

Also reported, because SBC alone passes a sampler that ignores the data (posterior =
prior): the *contraction* ``1 - mean(posterior var) / prior var`` and the correlation of
the posterior mean with the truth.  And per model: replications with divergent
transitions (and their total), replications where the package's own NUTS diagnostics
(R-hat / ESS / divergences) warned, and replications whose minimum bulk ESS over the
checked parameters is below ``L`` (then the thinned draws are autocorrelated and the
ranks would pile up at the ends even for a correct sampler).

Run from the repository root::

    python benchmarks/sbc.py                         # the three core models, 100 replications each
    python benchmarks/sbc.py --all                   # every model (every family, zi, crossed)
    python benchmarks/sbc.py --family gamma beta     # the models of some families
    python benchmarks/sbc.py --reps 200 --seed 7 --models poisson
    python benchmarks/sbc.py --quick                 # smoke test: 10 reps, short chains

Reference: Talts, Betancourt, Simpson, Vehtari, Gelman (2018), "Validating Bayesian
inference algorithms with simulation-based calibration", arXiv:1804.06788.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

try:  # the installed package (editable installs point at this checkout)
    import bayes_glmm as bg
except ImportError:  # run from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import bayes_glmm as bg

__all__ = ["MODELS", "SBCModel", "run_sbc", "rank_of", "thin_indices", "choose_bins",
           "uniformity_pvalues", "draw_prior", "prior_variance", "main"]


# ---------------------------------------------------------------------------- priors
def draw_prior(prior: "bg.Prior", rng: np.random.Generator, size: int | None = None) -> np.ndarray:
    """Draw from a :class:`bayes_glmm.Prior` with NumPy, by the same parametrization PyMC uses.

    Parameters
    ----------
    prior : bayes_glmm.Prior
        ``Normal(mu, sigma)``, ``HalfNormal(sigma)`` (``sigma`` may be a list: one SD per
        coefficient) or ``LKJ(eta)`` for a 2 x 2 correlation matrix.
    rng : numpy.random.Generator
    size : int, optional
        Number of draws (default one; with a list ``sigma`` one vector).

    Returns
    -------
    numpy.ndarray
        For ``LKJ`` the correlation itself (the single off-diagonal element).

    Raises
    ------
    NotImplementedError
        For any other distribution: the simulator must be written for what the model uses,
        not guessed.
    """
    a = {k: np.asarray(v, dtype=float) for k, v in prior.args.items()}
    if prior.name == "Normal":
        return rng.normal(a.get("mu", 0.0), a["sigma"], size=_shape(size, a["sigma"]))
    if prior.name == "HalfNormal":
        return np.abs(rng.normal(0.0, a["sigma"], size=_shape(size, a["sigma"])))
    if prior.name == "Gamma":  # PyMC's (alpha, beta = rate)
        return rng.gamma(a["alpha"], 1.0 / a["beta"], size=size)
    if prior.name == "LKJ":
        # For a 2 x 2 matrix LKJ(eta) has density prop. to (1 - r^2)^(eta - 1), i.e.
        # (r + 1) / 2 ~ Beta(eta, eta).
        eta = float(a.get("eta", 1.0))
        return 2.0 * rng.beta(eta, eta, size=size) - 1.0
    raise NotImplementedError(f"no simulator for prior {prior!r}")


def _shape(size, sigma):
    if size is None:
        return None if np.ndim(sigma) == 0 else np.shape(sigma)
    return (size,) + np.shape(sigma)


def prior_variance(prior: "bg.Prior", index: int = 0) -> float:
    """Variance of one scalar of a prior (element ``index`` of a vector ``sigma``).

    Used for the contraction diagnostic only, so it is exact (no Monte Carlo noise).
    """
    a = {k: np.ravel(np.asarray(v, dtype=float)) for k, v in prior.args.items()}
    if prior.name == "Normal":
        return float(a["sigma"][min(index, a["sigma"].size - 1)] ** 2)
    if prior.name == "HalfNormal":
        return float(a["sigma"][min(index, a["sigma"].size - 1)] ** 2 * (1.0 - 2.0 / math.pi))
    if prior.name == "Gamma":
        return float(a["alpha"][0] / a["beta"][0] ** 2)
    if prior.name == "LKJ":  # 2 * Beta(eta, eta) - 1 has variance 1 / (2 eta + 1)
        return 1.0 / (2.0 * float(a.get("eta", [1.0])[0]) + 1.0)
    raise NotImplementedError(f"no variance for prior {prior!r}")


# ---------------------------------------------------------------------------- models
@dataclass(frozen=True)
class SBCModel:
    """One SBC scenario: formula, family, priors and a simulator.

    Attributes
    ----------
    name : str
    formula, family : str
        Passed to :class:`bayes_glmm.GLMM`.
    priors : dict
        Every prior key of the model (so nothing is auto-scaled from the data).
    params : list of (label, prior key, element)
        The scalar parameters that are ranked; ``element`` indexes a vector prior.
    simulate : callable
        ``simulate(priors, rng) -> (DataFrame, dict label -> true value)``.
    glmm_kwargs : dict
        Further keyword arguments of :class:`bayes_glmm.GLMM` (``link``, ``trials``, ``zi``).
    """

    name: str
    formula: str
    family: str
    priors: dict
    params: list
    simulate: Callable
    glmm_kwargs: dict = field(default_factory=dict)


def _centred_normal(rng: np.random.Generator, n: int) -> np.ndarray:
    # Exactly mean zero: the model centres X inside its graph and puts the Intercept
    # prior on the intercept at the predictor means, so with mean(x) = 0 that centred
    # intercept *is* beta[(Intercept)] and the truths need no conversion.
    x = rng.normal(size=n)
    return x - x.mean()


def _groups(n_groups: int, n_per: int) -> tuple[np.ndarray, list[str]]:
    codes = np.repeat(np.arange(n_groups), n_per)
    # string labels: a grouping factor, never mistaken for a numeric covariate
    return codes, [f"g{c:02d}" for c in codes]


def _sim_bernoulli(priors: dict, rng: np.random.Generator, n_groups: int = 20, n_per: int = 10):
    codes, labels = _groups(n_groups, n_per)
    x = _centred_normal(rng, codes.size)
    a_c = float(draw_prior(priors["Intercept"], rng))  # intercept at mean(x)
    b = float(draw_prior(priors["x"], rng))
    sd = float(draw_prior(priors["sd_g"], rng))
    u = rng.normal(0.0, sd, size=n_groups)
    b0 = a_c - b * x.mean()  # the model's beta[(Intercept)] (x.mean() is 0 up to rounding)
    eta = b0 + b * x + u[codes]
    y = (rng.random(codes.size) < 1.0 / (1.0 + np.exp(-eta))).astype(int)
    df = pd.DataFrame({"y": y, "x": x, "g": labels})
    return df, {"Intercept": b0, "x": b, "sd_g[Intercept]": sd}


def _sim_poisson(priors: dict, rng: np.random.Generator, n_groups: int = 20, n_per: int = 8):
    codes, labels = _groups(n_groups, n_per)
    n = codes.size
    x = _centred_normal(rng, n)
    t = rng.uniform(0.5, 2.0, size=n)
    a_c = float(draw_prior(priors["Intercept"], rng))
    b = float(draw_prior(priors["x"], rng))
    sds = np.asarray(draw_prior(priors["sd_g"], rng), dtype=float)  # (intercept SD, slope SD)
    r = float(draw_prior(priors["corr_g"], rng))
    cov = np.array([[sds[0] ** 2, r * sds[0] * sds[1]], [r * sds[0] * sds[1], sds[1] ** 2]])
    # Cholesky by hand so a near-singular draw (|r| -> 1) cannot fail a factorization
    L = np.array([[sds[0], 0.0], [r * sds[1], sds[1] * math.sqrt(max(1.0 - r * r, 0.0))]])
    assert np.allclose(L @ L.T, cov)
    bg_ = rng.normal(size=(n_groups, 2)) @ L.T
    b0 = a_c - b * x.mean()
    eta = b0 + bg_[codes, 0] + (b + bg_[codes, 1]) * x + np.log(t)
    y = rng.poisson(np.exp(eta))
    df = pd.DataFrame({"y": y, "x": x, "t": t, "g": labels})
    return df, {"Intercept": b0, "x": b, "sd_g[Intercept]": float(sds[0]),
                "sd_g[x]": float(sds[1]), "corr_g": r}


def _sim_negbinomial(priors: dict, rng: np.random.Generator, n_groups: int = 20, n_per: int = 10):
    codes, labels = _groups(n_groups, n_per)
    x = _centred_normal(rng, codes.size)
    a_c = float(draw_prior(priors["Intercept"], rng))
    b = float(draw_prior(priors["x"], rng))
    sd = float(draw_prior(priors["sd_g"], rng))
    theta = float(draw_prior(priors["theta"], rng))
    u = rng.normal(0.0, sd, size=n_groups)
    b0 = a_c - b * x.mean()
    mu = np.exp(b0 + b * x + u[codes])
    # NB2 as the gamma-Poisson mixture (Var = mu + mu^2 / theta), as Family.random draws it
    y = rng.poisson(rng.gamma(theta, mu / theta))
    df = pd.DataFrame({"y": y, "x": x, "g": labels})
    return df, {"Intercept": b0, "x": b, "sd_g[Intercept]": sd, "theta": theta}


def _sim_poisson_ar1(priors: dict, rng: np.random.Generator, n_groups: int = 15, n_times: int = 4,
                     n_per: int = 2):
    """A Poisson GLMM with an AR(1) latent process per group (issue 17):
    ``y ~ x + ar1(0 + factor(t) | g)``, ``n_times`` equally spaced times, ``n_per`` rows per
    (group, time); ``b_g ~ N(0, sd^2 R)``, ``R[i, j] = rho^|i - j|``.  ``rho`` is drawn from the
    ``corr_g`` prior: ar1's ``(rho + 1) / 2 ~ Beta(eta, eta)`` is the 2 x 2 LKJ law."""
    codes = np.repeat(np.arange(n_groups), n_times * n_per)
    t = np.tile(np.repeat(np.arange(n_times), n_per), n_groups)
    n = codes.size
    x = _centred_normal(rng, n)
    b0 = float(draw_prior(priors["Intercept"], rng))
    b = float(draw_prior(priors["x"], rng))
    sd = float(draw_prior(priors["sd_g"], rng))
    rho = float(draw_prior(priors["corr_g"], rng))
    # the AR(1) recursion (no factorization: |rho| -> 1 cannot fail)
    e = np.empty((n_groups, n_times))
    e[:, 0] = rng.normal(size=n_groups)
    for k in range(1, n_times):
        e[:, k] = rho * e[:, k - 1] + math.sqrt(max(1.0 - rho * rho, 0.0)) * rng.normal(size=n_groups)
    y = rng.poisson(np.exp(b0 + b * x + sd * e[codes, t]))
    df = pd.DataFrame({"y": y, "x": x, "t": t, "g": [f"g{c:02d}" for c in codes]})
    return df, {"Intercept": b0, "x": b, "sd_g[factor(t)0]": sd, "rho_g": rho}


def _expit(v):
    return 1.0 / (1.0 + np.exp(-v))


#: draws y given the mean ``mu`` and the dispersion ``d`` (None where the family has none);
#: the parametrizations are :class:`bayes_glmm.families.Family`'s (variance in its docstring)
_RESPONSE = {
    "gaussian": lambda rng, mu, d, n: rng.normal(mu, d),
    "bernoulli": lambda rng, mu, d, n: (rng.random(mu.size) < mu).astype(int),
    "binomial": lambda rng, mu, d, n: rng.binomial(n, mu),
    "poisson": lambda rng, mu, d, n: rng.poisson(mu),
    # NB2 (Var = mu + mu^2 / theta) and NB1 (Var = mu (1 + phi)) as gamma-Poisson mixtures
    "negbinomial": lambda rng, mu, d, n: rng.poisson(rng.gamma(d, mu / d)),
    "nbinom1": lambda rng, mu, d, n: rng.poisson(rng.gamma(mu / d, d)),
    "gamma": lambda rng, mu, d, n: rng.gamma(d, mu / d),  # shape d, mean mu
    "beta": lambda rng, mu, d, n: rng.beta(mu * d, (1.0 - mu) * d),  # precision d
    # hurdle count parts: zero-truncated Poisson / NB2 by inverse CDF on the upper tail
    # (SciPy's, not the package's draws); the hurdle's zeros are the zero part below
    "hurdle_poisson": lambda rng, mu, d, n: _truncated(stats.poisson(mu), rng),
    "hurdle_negbinomial": lambda rng, mu, d, n: _truncated(stats.nbinom(d, d / (d + mu)), rng),
    # issue 18: the success probability of a row is Beta(mu phi, (1 - mu) phi); df as a dict entry
    "betabinomial": lambda rng, mu, d, n: rng.binomial(n, rng.beta(mu * d, (1.0 - mu) * d)),
    "student_t": lambda rng, mu, d, n: mu + d["sigma"] * rng.standard_t(d["df"], size=mu.size),
}
_INVERSE_LINK = {"gaussian": lambda e: e, "bernoulli": _expit, "binomial": _expit, "beta": _expit,
                 "poisson": np.exp, "negbinomial": np.exp, "nbinom1": np.exp, "gamma": np.exp,
                 "hurdle_poisson": np.exp, "hurdle_negbinomial": np.exp,
                 "betabinomial": _expit, "student_t": lambda e: e}


def _truncated(dist, rng):
    """Draws of a count distribution (frozen SciPy) truncated to y > 0: the smallest y with
    P(Y > y) <= u P(Y > 0), u uniform."""
    p1 = dist.sf(0)
    y = dist.isf(rng.random(np.shape(p1)) * p1)
    return np.where(np.isfinite(y), np.maximum(y, 1.0), 1.0)


def _sim_glmm(priors: dict, rng: np.random.Generator, *, family: str, n_groups: int = 20,
              n_per: int = 10, crossed: bool = False, zi_slope: bool | None = None, disp_slope: bool = False):
    """``y ~ x + (1 | g)`` (``+ (1 | h)`` when ``crossed``) for any family at its default link.

    With ``crossed`` every ``g`` level meets each of ``n_per`` ``h`` levels once.  The
    dispersion parameter is the family's (``sigma``, ``theta``, ``phi``, ``shape``) drawn
    from ``priors`` under that name; binomial trials are fixed, not drawn (1..8 per row, a
    column ``n``).  ``zi_slope`` None: no zero inflation; False: ``zi = "~1"``; True:
    ``zi = "~ x"`` -- a structural zero replaces y with probability
    ``expit(zi_Intercept + zi_x * x)``.  ``disp_slope``: a dispersion formula ``disp = "~ x"``,
    the family's dispersion ``exp(disp_Intercept + disp_x * x)`` per row (drawn from those priors).
    """
    codes, labels = _groups(n_groups, n_per)
    n = codes.size
    x = _centred_normal(rng, n)
    b0 = float(draw_prior(priors["Intercept"], rng))  # x is centred: the intercept at mean(x)
    b = float(draw_prior(priors["x"], rng))
    sd = float(draw_prior(priors["sd_g"], rng))
    eta = b0 + b * x + rng.normal(0.0, sd, size=n_groups)[codes]
    truth = {"Intercept": b0, "x": b, "sd_g[Intercept]": sd}
    data = {"x": x, "g": labels}
    if crossed:
        h = np.tile(np.arange(n_per), n_groups)
        sd_h = float(draw_prior(priors["sd_h"], rng))
        eta = eta + rng.normal(0.0, sd_h, size=n_per)[h]
        truth["sd_h[Intercept]"] = sd_h
        data["h"] = [f"h{c:02d}" for c in h]
    disp_name = {"gaussian": "sigma", "negbinomial": "theta", "nbinom1": "phi", "gamma": "shape",
                 "beta": "phi", "hurdle_negbinomial": "theta"}.get(family)
    d = None
    if disp_name and disp_slope:
        d0, d1 = float(draw_prior(priors["disp_Intercept"], rng)), float(draw_prior(priors["disp_x"], rng))
        truth["disp_Intercept"], truth["disp_x"] = d0, d1
        d = np.exp(d0 + d1 * x)
    elif disp_name:
        d = float(draw_prior(priors[disp_name], rng))
        truth[disp_name] = d
    if family == "student_t":  # two auxiliary parameters: the scale and the degrees of freedom
        d = {k: float(draw_prior(priors[k], rng)) for k in ("sigma", "df")}
        truth.update(d)
    if family == "betabinomial":
        d = float(draw_prior(priors["phi"], rng))
        truth["phi"] = d
    # the beta-binomial's phi is only identified by rows with >= 2 trials: 2..10 there
    trials = (rng.integers(1, 9, size=n) if family == "binomial"
              else rng.integers(2, 11, size=n) if family == "betabinomial" else None)
    y = _RESPONSE[family](rng, _INVERSE_LINK[family](eta), d, trials)
    if zi_slope is not None:
        # a structural zero (zi) or the hurdle's zero (hu: y above is a zero-truncated count)
        lab = bg.families.get_family(family).zero_label
        z0 = float(draw_prior(priors[f"{lab}_Intercept"], rng))
        truth[f"{lab}_Intercept"] = z0
        zeta = np.full(n, z0)
        if zi_slope:
            z1 = float(draw_prior(priors[f"{lab}_x"], rng))
            truth[f"{lab}_x"] = z1
            zeta = zeta + z1 * x
        y = np.where(rng.random(n) < _expit(zeta), 0, y)
    data["y"] = y
    if trials is not None:
        data["n"] = trials
    return pd.DataFrame(data), truth


def _glmm_model(name: str, family: str, priors: dict, *, crossed: bool = False,
                zi_slope: bool | None = None, n_per: int = 10, disp_slope: bool = False,
                **glmm_kwargs) -> SBCModel:
    """An :class:`SBCModel` on :func:`_sim_glmm`; every prior key is ranked."""
    formula = "y ~ x + (1 | g)" + (" + (1 | h)" if crossed else "")
    if zi_slope is not None:
        glmm_kwargs[bg.families.get_family(family).zero_label] = "~ x" if zi_slope else "~1"
    if disp_slope:
        glmm_kwargs["disp"] = "~ x"
    if family in ("binomial", "betabinomial"):
        glmm_kwargs["trials"] = "n"
    params = [("sd_g[Intercept]" if k == "sd_g" else "sd_h[Intercept]" if k == "sd_h" else k, k, 0)
              for k in priors]
    return SBCModel(name=name, formula=formula, family=family, priors=priors, params=params,
                    simulate=lambda pri, rng: _sim_glmm(pri, rng, family=family, n_per=n_per,
                                                        crossed=crossed, zi_slope=zi_slope,
                                                        disp_slope=disp_slope),
                    glmm_kwargs=glmm_kwargs)


def _N(mu, sigma):
    return bg.Prior("Normal", mu=mu, sigma=sigma)


def _HN(sigma):
    return bg.Prior("HalfNormal", sigma=sigma)


def _G(alpha, beta):
    return bg.Prior("Gamma", alpha=alpha, beta=beta)


#: the count models' fixed part and SD (log rate near e^1, as the NB2 model above)
_COUNT = {"Intercept": _N(1.0, 0.5), "x": _N(0.0, 0.5), "sd_g": _HN(0.5)}


MODELS: dict[str, SBCModel] = {
    "bernoulli": SBCModel(
        name="bernoulli",
        formula="y ~ x + (1 | g)",
        family="bernoulli",
        priors={"Intercept": bg.Prior("Normal", mu=0.0, sigma=1.0),
                "x": bg.Prior("Normal", mu=0.0, sigma=1.0),
                "sd_g": bg.Prior("HalfNormal", sigma=1.0)},
        params=[("Intercept", "Intercept", 0), ("x", "x", 0), ("sd_g[Intercept]", "sd_g", 0)],
        simulate=_sim_bernoulli,
    ),
    "poisson": SBCModel(
        name="poisson",
        formula="y ~ x + offset(log(t)) + (1 + x | g)",
        family="poisson",
        priors={"Intercept": bg.Prior("Normal", mu=0.0, sigma=0.5),
                "x": bg.Prior("Normal", mu=0.0, sigma=0.5),
                "sd_g": bg.Prior("HalfNormal", sigma=[1.0, 0.5]),
                "corr_g": bg.Prior("LKJ", eta=2.0)},
        params=[("Intercept", "Intercept", 0), ("x", "x", 0), ("sd_g[Intercept]", "sd_g", 0),
                ("sd_g[x]", "sd_g", 1), ("corr_g", "corr_g", 0)],
        simulate=_sim_poisson,
    ),
    "negbinomial": SBCModel(
        name="negbinomial",
        formula="y ~ x + (1 | g)",
        family="negbinomial",
        priors={"Intercept": bg.Prior("Normal", mu=1.0, sigma=0.5),
                "x": bg.Prior("Normal", mu=0.0, sigma=0.5),
                "sd_g": bg.Prior("HalfNormal", sigma=0.5),
                "theta": bg.Prior("Gamma", alpha=2.0, beta=0.5)},
        params=[("Intercept", "Intercept", 0), ("x", "x", 0), ("sd_g[Intercept]", "sd_g", 0),
                ("theta", "theta", 0)],
        simulate=_sim_negbinomial,
    ),
}

#: models added for every family (issue 16): each family at its default link, the zero-
#: inflated count families, and crossed random effects.  Their SeedSequence index is their
#: position in MODELS, so the three models above keep their replications.
MODELS.update({m.name: m for m in [
    _glmm_model("gaussian", "gaussian", {"Intercept": _N(0.0, 1.0), "x": _N(0.0, 1.0), "sd_g": _HN(1.0),
                                         "sigma": _HN(1.0)}),
    _glmm_model("binomial", "binomial", {"Intercept": _N(0.0, 1.0), "x": _N(0.0, 1.0), "sd_g": _HN(1.0)},
                n_per=8),
    _glmm_model("poisson_scalar", "poisson", dict(_COUNT)),
    _glmm_model("nbinom1", "nbinom1", {**_COUNT, "phi": _G(2.0, 1.0)}),
    # log link; shape mean 4, rarely below 0.5 (where y would underflow to 0)
    _glmm_model("gamma", "gamma", {"Intercept": _N(0.5, 0.5), "x": _N(0.0, 0.5), "sd_g": _HN(0.5),
                                   "shape": _G(4.0, 1.0)}),
    # logit link; precision phi mean 10
    _glmm_model("beta", "beta", {"Intercept": _N(0.0, 0.5), "x": _N(0.0, 0.5), "sd_g": _HN(0.5),
                                 "phi": _G(4.0, 0.4)}),
    _glmm_model("zip", "poisson", {**_COUNT, "zi_Intercept": _N(-1.0, 0.5), "zi_x": _N(0.0, 0.5)},
                zi_slope=True),
    _glmm_model("zinb", "negbinomial", {**_COUNT, "theta": _G(2.0, 0.5), "zi_Intercept": _N(-1.0, 0.5)},
                zi_slope=False),
    _glmm_model("zinb1", "nbinom1", {**_COUNT, "phi": _G(2.0, 1.0), "zi_Intercept": _N(-1.0, 0.5)},
                zi_slope=False),
    _glmm_model("bernoulli_crossed", "bernoulli", {"Intercept": _N(0.0, 1.0), "x": _N(0.0, 1.0),
                                                   "sd_g": _HN(1.0), "sd_h": _HN(1.0)}, crossed=True),
]})
#: covariance structures (issue 17): an AR(1) latent process (one SD, rho), sampled from the
#: structure's single definition; ``rho_g`` is the posterior's own ar1 parameter
MODELS["poisson_ar1"] = SBCModel(
    name="poisson_ar1",
    formula="y ~ x + ar1(0 + factor(t) | g)",
    family="poisson",
    priors={"Intercept": _N(1.0, 0.5), "x": _N(0.0, 0.5), "sd_g": _HN(0.7),
            "corr_g": bg.Prior("LKJ", eta=2.0)},
    params=[("Intercept", "Intercept", 0), ("x", "x", 0), ("sd_g[factor(t)0]", "sd_g", 0),
            ("rho_g", "corr_g", 0)],
    simulate=_sim_poisson_ar1,
)
#: hurdle families (issue 18): the zero part hu = "~ x" (Poisson) and "~1" (NB2); P(y = 0)
#: about expit(-0.5) = 0.38 at x = 0
MODELS.update({m.name: m for m in [
    _glmm_model("hurdle_poisson", "hurdle_poisson",
                {**_COUNT, "hu_Intercept": _N(-0.5, 0.5), "hu_x": _N(0.0, 0.5)}, zi_slope=True),
    _glmm_model("hurdle_negbinomial", "hurdle_negbinomial",
                {**_COUNT, "theta": _G(2.0, 0.5), "hu_Intercept": _N(-0.5, 0.5)}, zi_slope=False),
]})
#: issue 18's families: Student-t (identity; scale and df, brms's Gamma(2, 0.1) df prior) and the
#: beta-binomial (logit, 2-10 trials per row; phi mean 10)
MODELS.update({m.name: m for m in [
    _glmm_model("student_t", "student_t", {"Intercept": _N(0.0, 1.0), "x": _N(0.0, 1.0), "sd_g": _HN(1.0),
                                           "sigma": _HN(1.0), "df": _G(2.0, 0.1)}),
    _glmm_model("betabinomial", "betabinomial", {"Intercept": _N(0.0, 1.0), "x": _N(0.0, 1.0),
                                                 "sd_g": _HN(1.0), "phi": _G(2.0, 0.2)}),
]})
#: dispersion formulas (issue 18): ``disp = "~ x"``, the log of sigma / theta linear in x
MODELS.update({m.name: m for m in [
    _glmm_model("gaussian_disp", "gaussian", {"Intercept": _N(0.0, 1.0), "x": _N(0.0, 1.0), "sd_g": _HN(1.0),
                                              "disp_Intercept": _N(0.0, 0.5), "disp_x": _N(0.0, 0.3)},
                disp_slope=True),
    _glmm_model("negbinomial_disp", "negbinomial", {**_COUNT, "disp_Intercept": _N(1.0, 0.5),
                                                    "disp_x": _N(0.0, 0.3)}, disp_slope=True),
]})


def _sim_ordinal(priors: dict, rng: np.random.Generator, n_groups: int = 20, n_per: int = 10):
    """``y ~ x + (1 | g)``, cumulative logit with four categories 1 < 2 < 3 < 4: a latent
    ``eta + logistic`` cut at the thresholds ``"1|2" < "2|3" < "3|4"``.

    The thresholds are independent draws of their (identical) priors, sorted: the ordered prior
    the model puts on them (the density of the order statistics is the constrained one, up to its
    constant).  A data set in which a category is never observed is drawn again (parameters and
    data): the model would then have fewer categories; rejecting on the data alone leaves each
    kept data set's parameters a draw of its posterior, so the ranks stay uniform.
    """
    codes, labels = _groups(n_groups, n_per)
    n = codes.size
    names = ["1|2", "2|3", "3|4"]
    while True:
        x = _centred_normal(rng, n)
        b = float(draw_prior(priors["x"], rng))
        sd = float(draw_prior(priors["sd_g"], rng))
        taus = np.sort([float(draw_prior(priors[k], rng)) for k in names])
        latent = b * x + rng.normal(0.0, sd, size=n_groups)[codes] + rng.logistic(size=n)
        y = 1 + np.searchsorted(taus, latent)  # category k + 1 when tau_k < latent <= tau_{k+1}
        if np.unique(y).size == 4:
            break
    truth = {"x": b, "sd_g[Intercept]": sd, **dict(zip(names, taus))}
    return pd.DataFrame({"x": x, "g": labels, "y": y}), truth


#: the ordinal family (issue 18): cumulative logit, no intercept (the thresholds hold it)
MODELS["ordinal"] = SBCModel(
    name="ordinal",
    formula="y ~ x + (1 | g)",
    family="ordinal",
    priors={"x": _N(0.0, 1.0), "sd_g": _HN(1.0), "1|2": _N(0.0, 2.0), "2|3": _N(0.0, 2.0), "3|4": _N(0.0, 2.0)},
    params=[("x", "x", 0), ("sd_g[Intercept]", "sd_g", 0), ("1|2", "1|2", 0), ("2|3", "2|3", 0),
            ("3|4", "3|4", 0)],
    simulate=_sim_ordinal,
)
#: what a plain ``python benchmarks/sbc.py`` runs (about a minute); ``--all`` runs every model
CORE_MODELS = ("bernoulli", "poisson", "negbinomial")


# ---------------------------------------------------------------------------- posterior
def _flat(da) -> np.ndarray:
    """(chain, draw, ...) -> (chain * draw, ...), chain-major, as a float array."""
    v = np.asarray(da.values, dtype=float)
    return v.reshape((-1,) + v.shape[2:])


def posterior_draws(idata, fixed_names) -> dict:
    """Pooled posterior draws of the checked scalars, keyed like the simulators' truths.

    Fixed effects by name (``Intercept`` for ``(Intercept)``), ``sd_<group>[<coef>]`` for
    every random-effect SD, the dispersion (``sigma``, ``theta``, ``phi``, ``shape``), the
    zero-inflation coefficients as their prior keys (``zi_Intercept``, ``zi_x``).
    ``corr_g`` is read as element ``[1, 0]`` of a ``q x q`` matrix (dims ``g_coef``,
    ``g_coef2``) or as the single value of an off-diagonal-pairs vector, so the script
    works before and after the package stores only the pairs.
    """
    post = idata.posterior
    out = {}

    def short(nm):
        return "Intercept" if nm == "(Intercept)" else nm

    beta = _flat(post["beta"])
    for j, nm in enumerate(fixed_names):
        out[short(nm)] = beta[:, j]
    for var in [str(v) for v in post.data_vars if str(v).startswith("sd_")]:
        grp = var[3:]
        sd = _flat(post[var])
        sd = sd[:, None] if sd.ndim == 1 else sd
        coef_dim = f"{grp}_coef"
        coef_names = [str(c) for c in post[var].coords[coef_dim].values] if coef_dim in post[var].coords \
            else ["(Intercept)", "x"][: sd.shape[1]]
        for j, nm in enumerate(coef_names):
            out[f"{var}[{short(nm)}]"] = sd[:, j]
    for nm in ("sigma", "theta", "phi", "shape", "df"):
        if nm in post:
            out[nm] = _flat(post[nm])
    for lab in ("zi", "hu"):  # zero inflation, a hurdle's zero part
        if f"beta_{lab}" in post:
            z = _flat(post[f"beta_{lab}"])
            z = z[:, None] if z.ndim == 1 else z
            names = [str(c) for c in post[f"beta_{lab}"].coords[f"{lab}_coef"].values]
            for j, nm in enumerate(names):
                out[f"{lab}_{short(nm)}"] = z[:, j]
    if "beta_disp" in post:  # a dispersion formula's coefficients, as their prior keys
        z = _flat(post["beta_disp"])
        z = z[:, None] if z.ndim == 1 else z
        names = [str(c) for c in post["beta_disp"].coords["disp_coef"].values]
        for j, nm in enumerate(names):
            out[f"disp_{short(nm)}"] = z[:, j]
    for nm in [str(v) for v in post.data_vars if "|" in str(v)]:  # an ordinal model's thresholds ("1|2")
        out[nm] = _flat(post[nm])
    if "rho_g" in post:  # a structured term's own parameter (ar1: rho)
        out["rho_g"] = _flat(post["rho_g"]).reshape(-1, post["rho_g"].shape[-1])[:, 0]
    if "corr_g" in post:
        c = _flat(post["corr_g"])
        if c.ndim == 3:  # full matrix per draw
            out["corr_g"] = c[:, 1, 0]
        else:  # off-diagonal pairs only; q = 2 has exactly one
            c = c.reshape(c.shape[0], -1)
            if c.shape[1] != 1 and "rho_g" not in post:
                raise ValueError(f"corr_g has {c.shape[1]} pairs; this script handles q = 2 only")
            if c.shape[1] == 1:
                out["corr_g"] = c[:, 0]
    return out


def thin_indices(n_total: int, L: int) -> np.ndarray:
    """``L`` evenly spaced indices into ``n_total`` pooled draws.

    Even spacing is the thinning: with 2 x 500 draws and ``L = 99`` every ~10th draw is
    kept, far enough apart that NUTS's (small) autocorrelation does not make the ranks
    lumpy.  Raises ``ValueError`` when there are fewer draws than ``L``.
    """
    if L > n_total:
        raise ValueError(f"L = {L} thinned draws requested from only {n_total}")
    return np.round(np.linspace(0, n_total - 1, L)).astype(int)


def rank_of(truth: float, draws: np.ndarray) -> int:
    """Number of draws strictly below ``truth``: an integer in ``0..len(draws)``.

    Ties have probability zero for continuous parameters, so strict ``<`` is unbiased.
    """
    return int(np.sum(np.asarray(draws) < truth))


def choose_bins(L: int, reps: int, max_bins: int = 20, min_expected: float = 5.0) -> int:
    """Chi-square bin count: the largest divisor of ``L + 1`` that keeps expected counts >= 5.

    A divisor makes every bin cover the same number of rank values, so the bins are
    equiprobable under uniformity; at least 2 bins.
    """
    best = 1
    for b in range(1, max_bins + 1):
        if (L + 1) % b == 0 and reps / b >= min_expected:
            best = b
    return max(best, 2)


def uniformity_pvalues(ranks: np.ndarray, L: int, rng: np.random.Generator,
                       n_bins: int | None = None) -> tuple[float, float, int]:
    """Chi-square and KS p-values for ranks uniform on ``{0, ..., L}``.

    Parameters
    ----------
    ranks : array of int
        One rank per replication.
    L : int
        Number of posterior draws each rank was taken among.
    rng : numpy.random.Generator
        For the KS jitter (seeded, so p-values are reproducible).
    n_bins : int, optional
        Default :func:`choose_bins`.

    Returns
    -------
    (p_chisq, p_ks, n_bins)
    """
    ranks = np.asarray(ranks, dtype=int)
    if ranks.min() < 0 or ranks.max() > L:
        raise ValueError(f"ranks outside 0..{L}")
    B = n_bins or choose_bins(L, ranks.size)
    width = (L + 1) // B
    counts = np.bincount(ranks // width, minlength=B)[:B]
    p_chi = float(stats.chisquare(counts).pvalue)
    u = (ranks + rng.random(ranks.size)) / (L + 1)  # exactly Uniform(0, 1) under calibration
    p_ks = float(stats.kstest(u, "uniform").pvalue)
    return p_chi, p_ks, B


def _min_bulk_ess(idata, names: list[str]) -> float:
    import arviz as az

    ess = az.ess(idata, var_names=[n for n in names if n in idata.posterior], method="bulk")
    return float(min(np.nanmin(np.asarray(ess[v].values)) for v in ess.data_vars))


# ---------------------------------------------------------------------------- driver
def run_sbc(model_name: str, reps: int = 100, seed: int = 20261201, *, L: int = 99,
            chains: int = 2, tune: int = 500, draws: int = 500, alpha: float = 0.001,
            verbose: bool = False, init: str | None = None) -> dict:
    """Run SBC for one model.

    Parameters
    ----------
    model_name : str
        A key of :data:`MODELS`.
    reps : int
        Replications (prior draw -> data -> fit).
    seed : int
        Master seed.  Replication ``i`` of a model gets its own stream spawned from
        ``SeedSequence([seed, model index])``, so it is the same whatever ``reps`` or
        ``--models`` is, and each NUTS run gets a distinct ``random_seed`` from it.
    L : int
        Thinned posterior draws per rank (ranks lie in ``0..L``).
    chains, tune, draws : int
        NUTS settings; ``chains * draws`` must be >= ``L``.
    alpha : float
        Per-test threshold reported as ``ok``.
    verbose : bool
        Print one line per replication.
    init : {"laplace", "random"}, optional
        The native sampler's start and initial metric (``sample(init=...)``); default
        ``sample()``'s.

    Returns
    -------
    dict
        ``pvalues`` (label -> {"chisq", "ks"}), ``ranks`` (label -> int array),
        ``truths`` and ``post_mean`` (label -> float arrays), ``contraction`` and
        ``recovery_corr`` (label -> float), ``n_bins``, ``L``, ``reps``,
        ``divergent_reps``, ``divergences``, ``warned_reps`` (the package's diagnostics
        warned), ``low_ess_reps`` (min bulk ESS < L), ``samplers`` (set of sampler names
        used), ``seconds``, ``ok`` (all p >= alpha).
    """
    m = MODELS[model_name]
    model_index = list(MODELS).index(model_name)
    children = np.random.SeedSequence([seed, model_index]).spawn(reps)
    labels = [p[0] for p in m.params]
    ranks = {k: np.empty(reps, dtype=int) for k in labels}
    truths = {k: np.empty(reps) for k in labels}
    pmean = {k: np.empty(reps) for k in labels}
    pvar = {k: np.empty(reps) for k in labels}
    div_reps = div_total = warned = low_ess = 0
    samplers: set = set()
    t0 = time.perf_counter()
    for i, child in enumerate(children):
        rng = np.random.default_rng(child)
        df, truth = m.simulate(m.priors, rng)
        nuts_seed = int(rng.integers(2**31 - 1))
        model = bg.GLMM(m.formula, df, family=m.family, priors=m.priors, **m.glmm_kwargs)
        with warnings.catch_warnings(record=True) as caught:
            # record (and so silence) every warning: the package's per-fit NUTS
            # diagnostics would otherwise print 100s of lines; they are counted below
            warnings.simplefilter("always")
            res = model.sample(draws=draws, tune=tune, chains=chains, random_seed=nuts_seed,
                               progressbar=False, **({} if init is None else {"init": init}))
        idata = res.idata
        samplers.add(str(idata.posterior.attrs.get("sampler", "?")))
        if any("NUTS diagnostics" in str(w.message) for w in caught):
            warned += 1
        nd = int(np.asarray(idata.sample_stats["diverging"].values).sum()) \
            if "diverging" in idata.sample_stats else 0
        div_total += nd
        div_reps += nd > 0
        ess = _min_bulk_ess(idata, ["beta", "sd_g", "sd_h", "corr_g", "rho_g", "sigma", "theta", "phi", "shape",
                                    "df", "beta_zi"])
        low_ess += ess < L
        post = posterior_draws(idata, list(model.spec.fixed_names))
        n_total = next(iter(post.values())).shape[0]
        idx = thin_indices(n_total, L)
        for k in labels:
            d = post[k]
            ranks[k][i] = rank_of(truth[k], d[idx])
            truths[k][i] = truth[k]
            pmean[k][i] = d.mean()
            pvar[k][i] = d.var()
        if verbose:
            print(f"  {model_name} rep {i + 1:4d}/{reps}: ranks "
                  + " ".join(f"{k}={ranks[k][i]}" for k in labels)
                  + f"  div={nd} minESS={ess:.0f}", flush=True)
    seconds = time.perf_counter() - t0

    # the KS jitter gets its own stream so it does not depend on the fits
    jitter = np.random.default_rng(np.random.SeedSequence([seed, model_index, 99]))
    pvalues, n_bins = {}, None
    contraction, recovery = {}, {}
    for (k, key, el) in m.params:
        p_chi, p_ks, n_bins = uniformity_pvalues(ranks[k], L, jitter)
        pvalues[k] = {"chisq": p_chi, "ks": p_ks}
        contraction[k] = float(1.0 - pvar[k].mean() / prior_variance(m.priors[key], el))
        recovery[k] = float(np.corrcoef(truths[k], pmean[k])[0, 1]) if reps > 2 else float("nan")
    ok = all(min(v.values()) >= alpha for v in pvalues.values())
    return {"model": model_name, "pvalues": pvalues, "ranks": ranks, "truths": truths,
            "post_mean": pmean, "contraction": contraction, "recovery_corr": recovery,
            "n_bins": n_bins, "L": L, "reps": reps, "divergent_reps": int(div_reps),
            "divergences": int(div_total), "warned_reps": int(warned), "low_ess_reps": int(low_ess),
            "samplers": samplers, "seconds": seconds, "ok": ok,
            "settings": {"chains": chains, "tune": tune, "draws": draws, "seed": seed}}


def format_result(r: dict, alpha: float) -> str:
    """Table of one model's p-values and diagnostics."""
    s = r["settings"]
    lines = [f"model {r['model']}: {MODELS[r['model']].formula}  (family {MODELS[r['model']].family})",
             f"  reps {r['reps']}, L = {r['L']} thinned draws of {s['chains']} chains x {s['draws']} "
             f"(tune {s['tune']}), chi-square bins {r['n_bins']}, sampler {','.join(sorted(r['samplers']))}, "
             f"seed {s['seed']}, {r['seconds']:.0f} s",
             f"  {'parameter':<18}{'p_chisq':>10}{'p_ks':>10}{'contraction':>13}{'corr(mean,truth)':>18}  verdict"]
    for k, p in r["pvalues"].items():
        verdict = "ok" if min(p.values()) >= alpha else "FAIL"
        lines.append(f"  {k:<18}{p['chisq']:>10.4f}{p['ks']:>10.4f}{r['contraction'][k]:>13.3f}"
                     f"{r['recovery_corr'][k]:>18.3f}  {verdict}")
    lines.append(f"  divergent replications {r['divergent_reps']}/{r['reps']} "
                 f"({r['divergences']} divergent transitions in all); package diagnostics warned in "
                 f"{r['warned_reps']}; min bulk ESS < L in {r['low_ess_reps']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Command line entry; returns the exit status (1 if any p-value < alpha)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=100, help="replications per model (default 100)")
    ap.add_argument("--seed", type=int, default=20261201, help="master seed")
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=[],
                    help=f"models to run (default {' '.join(CORE_MODELS)})")
    families = sorted({m.family for m in MODELS.values()})
    ap.add_argument("--family", nargs="+", choices=families, default=[],
                    help="every model of these families (zero-inflated and crossed ones included)")
    ap.add_argument("--all", action="store_true", help="every model: each family, zero inflation, crossed")
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--L", type=int, default=99, help="thinned posterior draws per rank (default 99)")
    ap.add_argument("--alpha", type=float, default=0.001, help="per-test threshold (default 0.001)")
    ap.add_argument("--quick", action="store_true",
                    help="tiny settings for a smoke test (10 reps, 2 x 200 tune + 200 draws, L = 39)")
    ap.add_argument("--verbose", action="store_true", help="one line per replication")
    ap.add_argument("--init", choices=["laplace", "random"], default=None,
                    help="the native sampler's start and initial metric (default: sample()'s)")
    a = ap.parse_args(argv)
    if a.quick:
        a.reps, a.tune, a.draws, a.L = 10, 200, 200, 39
    names = list(MODELS) if a.all else [n for n in MODELS if n in a.models
                                         or MODELS[n].family in a.family]
    names = names or list(CORE_MODELS)
    t0 = time.perf_counter()
    ok = True
    n_tests = 0
    rows = []
    for name in names:
        r = run_sbc(name, reps=a.reps, seed=a.seed, L=a.L, chains=a.chains, tune=a.tune,
                    draws=a.draws, alpha=a.alpha, verbose=a.verbose, init=a.init)
        print(format_result(r, a.alpha), flush=True)
        print()
        ok &= r["ok"]
        n_tests += 2 * len(r["pvalues"])
        p_min = min(min(v.values()) for v in r["pvalues"].values())
        rows.append(f"  {name:<20}{MODELS[name].family:<13}{len(r['pvalues']):>7}{p_min:>10.4f}  "
                    f"{'ok' if r['ok'] else 'FAIL'}")
    print(f"  {'model':<20}{'family':<13}{'params':>7}{'min p':>10}  verdict")
    print("\n".join(rows))
    print(f"{n_tests} tests at alpha = {a.alpha} each (family-wise false-alarm rate under "
          f"calibration <= {min(1.0, n_tests * a.alpha):.3f}); total {time.perf_counter() - t0:.0f} s")
    print("SBC: PASS" if ok else "SBC: FAIL (some rank histogram is not uniform)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

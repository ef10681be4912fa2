"""The reference-posterior cases: seeded small GLMMs over every family, link and term structure.

Used by ``tests/reference/make_reference_posterior.py`` (samples each case with an
independent NUTS -- numpyro on the PyMC graph -- and writes
``tests/reference/reference_posterior.json``) and by ``tests/test_reference_posterior.py``
(samples each case with the native sampler and compares).  Both build the data, formula and
priors from :data:`CASES` through :func:`build_model`, so the two runs see the same model.

Every prior is given explicitly: the auto-scaled defaults may change between versions, and
the reference must stay the posterior of one fixed model.  The priors vary from case to case
so that the code generator's density of each distribution is exercised (Normal, StudentT,
Laplace, Logistic, Cauchy for coefficients; HalfNormal, HalfStudentT, HalfCauchy,
Exponential, Gamma, InverseGamma, LogNormal, Weibull for SDs and dispersions; LKJ with
several eta).

The module is pure NumPy/pandas/ArviZ; it imports no sampler.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special, stats

import bayes_glmm as bg

__all__ = ["Case", "CASES", "simulate", "build_model", "data_checksum", "prior_reprs", "summarize",
           "pack_summary", "unpack_summary", "SUMMARY_COLUMNS", "compare_summaries", "z_threshold",
           "posterior_var_names", "REFERENCE_SETTINGS", "NATIVE_SETTINGS", "ALPHA_FILE"]

P = bg.Prior

#: NUTS settings of the reference runs (numpyro; nutpie for the probit Bernoulli, which
#: numpyro cannot run): long, so that the reference's own Monte Carlo error is small next
#: to the native run's
REFERENCE_SETTINGS = {"chains": 4, "tune": 1000, "draws": 4000}
#: NUTS settings of the native runs in the slow test
NATIVE_SETTINGS = {"chains": 4, "tune": 1000, "draws": 2000}
#: family-wise false-alarm rate of the whole test file (all cases, all comparisons); see
#: :func:`z_threshold`
ALPHA_FILE = 0.001


@dataclass(frozen=True)
class Case:
    """One simulated model.

    Attributes
    ----------
    name : str
    family, link : str
    structure : str
        ``"scalar"`` ``(1 | g)``, ``"corr2"`` ``(1 + x | g)``, ``"corr3"`` ``(1 + x + z | g)``,
        ``"uncorr"`` ``(1 + x || g)``, ``"crossed"`` ``(1 | g) + (1 | h)`` or ``"nested"``
        ``(1 | g/s)``.
    coefs : tuple
        True fixed effects: intercept, ``x`` (and ``z`` for corr3).
    sds : tuple
        True random-effect SDs, in the order of the terms' coefficients (crossed: g, h;
        nested: g, s within g).
    disp : float or None
        True dispersion (``sigma``, ``theta``, ``phi`` or ``shape``).
    df : float or None
        True degrees of freedom of a Student-t response.
    priors : dict
        Every prior key of the model.
    n_groups, n_per : int
        Groups of ``g`` and rows per group.
    zi : str or None
        Zero-inflation formula (``"~1"`` or ``"~ x"``) and ``zi_coefs`` its true coefficients.
    hu : str or None
        Hurdle formula of the hurdle families (``"~1"`` or ``"~ x"``: the logit of P(y = 0))
        and ``hu_coefs`` its true coefficients.
    disp_formula : str or None
        Dispersion formula (``disp="~ x"``: the log of the family's dispersion linear in ``x``)
        and ``disp_coefs`` its true coefficients (``disp`` is then unused).
    weights, offset : bool
        A ``w`` weights column (0.5 to 2) and an ``offset(log(t))`` exposure (0.5 to 2).
    trials : {None, "column", "cbind"}
        Binomial trials as ``trials="n"`` or as ``cbind(y, f)``.
    seed : int
    reference : str
        The sampler of the reference run.
    reference_kwargs : dict
        Extra keyword arguments of the reference run's ``sample()``.
    """

    name: str
    family: str
    link: str
    structure: str
    coefs: tuple
    sds: tuple
    priors: dict
    disp: float | None = None
    df: float | None = None
    n_groups: int = 25
    n_per: int = 12
    zi: str | None = None
    zi_coefs: tuple = ()
    weights: bool = False
    offset: bool = False
    trials: str | None = None
    seed: int = 0
    reference: str = "numpyro"
    corr: float = 0.3
    reference_kwargs: dict = field(default_factory=dict)
    #: ordinal: the cut points of the latent ``eta + logistic`` (the categories 1 .. len(cuts) + 1)
    cuts: tuple = ()
    hu: str | None = None
    hu_coefs: tuple = ()
    disp_formula: str | None = None
    disp_coefs: tuple = ()

    @property
    def formula(self) -> str:
        lhs = "cbind(y, f)" if self.trials == "cbind" else "y"
        fixed = "x + z" if self.structure == "corr3" else "x"
        if self.offset:
            fixed += " + offset(log(t))"
        rand = {"scalar": "(1 | g)", "corr2": "(1 + x | g)", "corr3": "(1 + x + z | g)",
                "uncorr": "(1 + x || g)", "crossed": "(1 | g) + (1 | h)",
                "nested": "(1 | g/s)"}[self.structure]
        return f"{lhs} ~ {fixed} + {rand}"


def _N(mu, sigma):
    return P("Normal", mu=mu, sigma=sigma)


def _HN(sigma):
    return P("HalfNormal", sigma=sigma)


CASES: dict[str, Case] = {c.name: c for c in [
    # --- gaussian ------------------------------------------------------------------
    Case("gaussian_identity_scalar", "gaussian", "identity", "scalar", (1.0, 0.5), (0.8,), disp=1.0,
         priors={"Intercept": _N(0, 5), "x": _N(0, 2), "sd_g": _HN(2), "sigma": P("Exponential", lam=1.0)},
         seed=101),
    Case("gaussian_log_corr2", "gaussian", "log", "corr2", (1.5, 0.3), (0.3, 0.15), disp=0.5,
         priors={"Intercept": P("StudentT", nu=4, mu=0, sigma=3), "x": _N(0, 1),
                 "sd_g": P("HalfStudentT", nu=4, sigma=[1.0, 0.5]), "corr_g": P("LKJ", eta=2),
                 "sigma": P("HalfCauchy", beta=2.0)},
         seed=102),
    Case("gaussian_weights_nested", "gaussian", "identity", "nested", (0.0, -0.7), (0.7, 0.5), disp=0.6,
         priors={"Intercept": _N(0, 3), "x": P("Laplace", mu=0, b=1), "sd_g": P("Gamma", alpha=2, beta=2),
                 "sd_s_g": P("Exponential", lam=2.0), "sigma": P("LogNormal", mu=0, sigma=1)},
         n_groups=15, n_per=20, weights=True, seed=103),
    Case("gaussian_identity_uncorr", "gaussian", "identity", "uncorr", (2.0, 1.0), (1.0, 0.5), disp=1.0,
         priors={"Intercept": _N(0, 5), "x": _N(0, 2), "sd_g": _HN([2.0, 1.0]),
                 "sigma": P("InverseGamma", alpha=2, beta=2)},
         seed=104),
    # --- bernoulli -----------------------------------------------------------------
    Case("bernoulli_logit_crossed", "bernoulli", "logit", "crossed", (-0.3, 0.8), (1.0, 0.6),
         priors={"Intercept": P("Logistic", mu=0, s=1), "x": _N(0, 2.5), "sd_g": _HN(2), "sd_h": _HN(1)},
         n_groups=20, n_per=15, seed=201),
    Case("bernoulli_probit_scalar", "bernoulli", "probit", "scalar", (0.2, 0.6), (0.7,),
         priors={"Intercept": _N(0, 2), "x": _N(0, 1), "sd_g": P("Weibull", alpha=2, beta=1)},
         seed=202, reference="nutpie"),
    Case("bernoulli_cloglog_corr2", "bernoulli", "cloglog", "corr2", (-0.5, 0.7), (0.8, 0.4),
         priors={"Intercept": _N(0, 2), "x": _N(0, 2), "sd_g": _HN([1.5, 1.0]), "corr_g": P("LKJ", eta=1)},
         n_groups=30, n_per=12, seed=203),
    # --- binomial ------------------------------------------------------------------
    Case("binomial_logit_corr3_trials", "binomial", "logit", "corr3", (0.2, 0.5, -0.4), (0.8, 0.4, 0.3),
         priors={"Intercept": _N(0, 2.5), "x": _N(0, 1), "z": P("Cauchy", alpha=0, beta=1),
                 "sd_g": _HN([1.5, 1.0, 1.0]), "corr_g": P("LKJ", eta=4)},
         n_groups=30, n_per=10, trials="column", seed=301),
    Case("binomial_cloglog_cbind_weights", "binomial", "cloglog", "scalar", (-1.0, 0.5), (0.6,),
         priors={"Intercept": _N(0, 2), "x": _N(0, 1), "sd_g": P("HalfCauchy", beta=1.0)},
         trials="cbind", weights=True, seed=302),
    # --- poisson -------------------------------------------------------------------
    Case("poisson_log_corr2_offset", "poisson", "log", "corr2", (0.5, 0.4), (0.6, 0.3),
         priors={"Intercept": _N(0, 2), "x": _N(0, 1), "sd_g": _HN([1.0, 0.5]), "corr_g": P("LKJ", eta=2)},
         offset=True, seed=401),
    Case("poisson_log_nested", "poisson", "log", "nested", (1.0, 0.3), (0.5, 0.3),
         priors={"Intercept": _N(0, 2), "x": _N(0, 1), "sd_g": _HN(1), "sd_s_g": _HN(1)},
         n_groups=15, n_per=20, seed=402),
    Case("zip_log_corr2", "poisson", "log", "corr2", (1.2, 0.4), (0.5, 0.3),
         priors={"Intercept": _N(0, 2), "x": _N(0, 1), "sd_g": _HN([1.0, 0.5]), "corr_g": P("LKJ", eta=2),
                 "zi_Intercept": P("Logistic", mu=0, s=1), "zi_x": _N(0, 1)},
         zi="~ x", zi_coefs=(-1.0, 0.6), seed=403),
    # --- negative binomial (NB2) ---------------------------------------------------
    Case("negbinomial_scalar_weights", "negbinomial", "log", "scalar", (1.0, 0.5), (0.5,), disp=3.0,
         priors={"Intercept": _N(0, 2), "x": _N(0, 1), "sd_g": _HN(1), "theta": P("Gamma", alpha=2, beta=0.5)},
         weights=True, seed=501),
    Case("zinb_crossed", "negbinomial", "log", "crossed", (1.2, 0.3), (0.5, 0.4), disp=4.0,
         priors={"Intercept": _N(0, 2), "x": _N(0, 1), "sd_g": _HN(1), "sd_h": _HN(1),
                 "theta": P("InverseGamma", alpha=0.5, beta=0.5), "zi_Intercept": _N(0, 1.5),
                 "zi_x": _N(0, 1)},
         zi="~ x", zi_coefs=(-1.2, 0.5), n_groups=20, n_per=15, seed=502),
    # --- NB1 -----------------------------------------------------------------------
    Case("nbinom1_corr2", "nbinom1", "log", "corr2", (1.0, 0.4), (0.5, 0.25), disp=1.5,
         priors={"Intercept": _N(0, 2), "x": _N(0, 1), "sd_g": _HN([1.0, 0.5]), "corr_g": P("LKJ", eta=2),
                 "phi": P("Exponential", lam=0.5)},
         seed=601),
    Case("zinb1_scalar_offset", "nbinom1", "log", "scalar", (0.8, 0.4), (0.5,), disp=1.0,
         priors={"Intercept": _N(0, 2), "x": _N(0, 1), "sd_g": _HN(1), "phi": P("Gamma", alpha=2, beta=1),
                 "zi_Intercept": _N(-1, 1.5)},
         zi="~1", zi_coefs=(-1.0,), offset=True, seed=602),
    # --- gamma ---------------------------------------------------------------------
    Case("gamma_log_scalar", "gamma", "log", "scalar", (0.5, 0.4), (0.5,), disp=3.0,
         priors={"Intercept": _N(0, 2), "x": _N(0, 1), "sd_g": _HN(1), "shape": P("Gamma", alpha=2, beta=0.5)},
         seed=701),
    # sampler="numpyro" starts its chains at the graph's initial point jittered by U(-1, 1)
    # without checking the density there: with the inverse and identity links most such
    # starts have mu <= 0 (log density -inf) and numpyro never leaves them (every transition
    # divergent).  A jitter of 0.1 keeps the starts inside the support.
    Case("gamma_inverse_scalar", "gamma", "inverse", "scalar", (1.0, 0.1), (0.1,), disp=5.0,
         priors={"Intercept": _N(1, 1), "x": _N(0, 0.5), "sd_g": _HN(0.5),
                 "shape": P("LogNormal", mu=1, sigma=1)},
         seed=702, reference_kwargs={"init_jitter": 0.1}),
    Case("gamma_identity_crossed_weights", "gamma", "identity", "crossed", (5.0, 0.5), (0.6, 0.4), disp=4.0,
         priors={"Intercept": _N(5, 5), "x": _N(0, 2), "sd_g": _HN(2), "sd_h": P("Exponential", lam=1.0),
                 "shape": P("Gamma", alpha=2, beta=0.5)},
         n_groups=20, n_per=15, weights=True, seed=703, reference_kwargs={"init_jitter": 0.1}),
    # --- beta ----------------------------------------------------------------------
    Case("beta_logit_corr2", "beta", "logit", "corr2", (0.3, 0.5), (0.5, 0.3), disp=10.0,
         priors={"Intercept": _N(0, 2), "x": _N(0, 1), "sd_g": _HN([1.0, 0.5]), "corr_g": P("LKJ", eta=2),
                 "phi": P("Gamma", alpha=2, beta=0.1)},
         seed=801),
    Case("beta_probit_nested", "beta", "probit", "nested", (-0.2, 0.3), (0.3, 0.2), disp=15.0,
         priors={"Intercept": _N(0, 1), "x": _N(0, 1), "sd_g": _HN(1), "sd_s_g": _HN(0.5),
                 "phi": P("Exponential", lam=0.05)},
         n_groups=15, n_per=20, seed=802),
    Case("beta_cloglog_scalar_weights", "beta", "cloglog", "scalar", (-0.5, 0.4), (0.4,), disp=8.0,
         priors={"Intercept": _N(0, 2), "x": _N(0, 1), "sd_g": P("InverseGamma", alpha=3, beta=1),
                 "phi": P("Gamma", alpha=2, beta=0.1)},
         weights=True, seed=803),
    # --- student_t (sigma and df: two auxiliary parameters) ------------------------------
    Case("student_t_identity_corr2", "student_t", "identity", "corr2", (1.0, 0.5), (0.8, 0.4), disp=0.6,
         df=4.0, priors={"Intercept": _N(0, 5), "x": _N(0, 2), "sd_g": _HN(2), "corr_g": P("LKJ", eta=2),
                         "sigma": P("Exponential", lam=1.0), "df": P("Gamma", alpha=2, beta=0.1)},
         seed=901),
    Case("student_t_log_scalar_offset", "student_t", "log", "scalar", (1.0, 0.3), (0.8,), disp=0.5,
         df=6.0, priors={"Intercept": _N(0, 3), "x": _N(0, 1), "sd_g": _HN(1),
                         "sigma": P("Exponential", lam=1.0), "df": P("Gamma", alpha=2, beta=0.1)},
         offset=True, n_per=20, seed=902),
    # --- betabinomial ----------------------------------------------------------------------
    Case("betabinomial_logit_scalar_cbind", "betabinomial", "logit", "scalar", (-0.3, 0.6), (0.7,),
         disp=8.0, priors={"Intercept": _N(0, 2), "x": _N(0, 1), "sd_g": _HN(1),
                           "phi": P("Gamma", alpha=2, beta=0.1)},
         trials="cbind", seed=1001),
    # --- ordinal (cumulative logit; no intercept: the thresholds "1|2" < "2|3" < "3|4") ------
    Case("ordinal_logit_corr2_weights", "ordinal", "logit", "corr2", (0.0, 0.7), (0.8, 0.4),
         cuts=(-1.0, 0.3, 1.5), priors={"x": _N(0, 1), "sd_g": _HN(1), "corr_g": P("LKJ", eta=2),
                                        "1|2": P("StudentT", nu=3, mu=0, sigma=2.5),
                                        "2|3": P("StudentT", nu=3, mu=0, sigma=2.5),
                                        "3|4": _N(1, 2)},
         weights=True, seed=1101),
    Case("betabinomial_logit_uncorr_trials", "betabinomial", "logit", "uncorr", (-0.8, 0.4), (0.7, 0.5),
         disp=12.0, priors={"Intercept": _N(0, 2), "x": _N(0, 1), "sd_g": _HN(1),
                            "phi": P("Gamma", alpha=2, beta=0.1)},
         trials="column", weights=True, seed=1002),
    # --- hurdle (zero-truncated count part, logistic hurdle hu=) -----------------------------
    Case("hurdle_poisson_scalar_hu_x", "hurdle_poisson", "log", "scalar", (1.0, 0.4), (0.5,),
         priors={"Intercept": _N(0, 2), "x": _N(0, 1), "sd_g": _HN(1),
                 "hu_Intercept": P("Logistic", mu=0, s=1), "hu_x": _N(0, 1)},
         hu="~ x", hu_coefs=(-0.5, 0.8), seed=1201),
    Case("hurdle_negbinomial_corr2", "hurdle_negbinomial", "log", "corr2", (1.2, 0.3), (0.5, 0.3), disp=3.0,
         priors={"Intercept": _N(0, 2), "x": _N(0, 1), "sd_g": _HN([1.0, 0.5]), "corr_g": P("LKJ", eta=2),
                 "theta": P("Gamma", alpha=2, beta=0.5), "hu_Intercept": _N(0, 1.5)},
         hu="~1", hu_coefs=(-0.8,), seed=1202),
    # --- dispersion formula (disp=: log theta linear in x) -----------------------------------
    Case("negbinomial_scalar_disp_x", "negbinomial", "log", "scalar", (1.0, 0.4), (0.5,),
         priors={"Intercept": _N(0, 2), "x": _N(0, 1), "sd_g": _HN(1),
                 "disp_Intercept": _N(1, 1.5), "disp_x": _N(0, 1)},
         disp_formula="~ x", disp_coefs=(1.0, -0.6), seed=1301),
]}


# ---------------------------------------------------------------------------- data
def _inverse_link(link: str, eta: np.ndarray) -> np.ndarray:
    if link == "identity":
        return eta
    if link == "log":
        return np.exp(eta)
    if link == "logit":
        return special.expit(eta)
    if link == "probit":
        return stats.norm.cdf(eta)
    if link == "cloglog":
        return -np.expm1(-np.exp(eta))
    if link == "inverse":
        return 1.0 / eta
    raise ValueError(link)


def simulate(case: Case) -> pd.DataFrame:
    """The case's data set (seeded by ``case.seed``; values rounded to 6 decimals).

    Rounding makes the data, and so :func:`data_checksum`, the same on every platform
    (a last-bit difference in ``exp`` cannot change a 6-decimal value except on a tie).
    """
    rng = np.random.default_rng(case.seed)
    G, m = case.n_groups, case.n_per
    n = G * m
    g = np.repeat(np.arange(G), m)
    x = np.round(rng.normal(size=n), 6)
    z = np.round(rng.normal(size=n), 6)
    cols = {"x": x, "z": z, "g": [f"g{i:02d}" for i in g]}
    b = case.coefs
    eta = b[0] + b[1] * x + (b[2] * z if len(b) > 2 else 0.0)
    st = case.structure
    if st == "scalar":
        eta = eta + rng.normal(0.0, case.sds[0], G)[g]
    elif st in ("corr2", "corr3", "uncorr"):
        q = 3 if st == "corr3" else 2
        sd = np.asarray(case.sds[:q])
        R = np.full((q, q), 0.0 if st == "uncorr" else case.corr)
        np.fill_diagonal(R, 1.0)
        u = rng.normal(size=(G, q)) @ np.linalg.cholesky(np.outer(sd, sd) * R).T
        Z = np.column_stack([np.ones(n), x, z][:q])
        eta = eta + np.sum(Z * u[g], axis=1)
    elif st == "crossed":
        # every g level meets each of n_per h levels once
        h = np.tile(np.arange(m), G)
        eta = eta + rng.normal(0.0, case.sds[0], G)[g] + rng.normal(0.0, case.sds[1], m)[h]
        cols["h"] = [f"h{i:02d}" for i in h]
    elif st == "nested":
        # 4 levels of s within each g, labelled s0..s3 in every g (only g:s identifies them)
        s = np.tile(np.repeat(np.arange(4), m // 4), G)
        eta = eta + rng.normal(0.0, case.sds[0], G)[g] + rng.normal(0.0, case.sds[1], (G, 4))[g, s]
        cols["s"] = [f"s{i}" for i in s]
    else:
        raise ValueError(st)
    if case.offset:
        t = np.round(rng.uniform(0.5, 2.0, n), 6)
        eta = eta + np.log(t)
        cols["t"] = t
    mu = _inverse_link(case.link, eta)
    fam, d = case.family, case.disp
    if case.disp_formula:  # log dispersion = disp_coefs[0] + disp_coefs[1] x
        d = np.exp(case.disp_coefs[0] + case.disp_coefs[1] * x)
    if fam == "gaussian":
        y = np.round(rng.normal(mu, d), 6)
    elif fam == "bernoulli":
        y = (rng.random(n) < mu).astype(int)
    elif fam in ("binomial", "betabinomial"):
        trials = rng.integers(1, 11, n)
        p = mu if fam == "binomial" else rng.beta(mu * d, (1.0 - mu) * d)
        y = rng.binomial(trials, p)
        if case.trials == "cbind":
            cols["f"] = trials - y
        else:
            cols["n"] = trials
    elif fam == "poisson":
        y = rng.poisson(mu)
    elif fam == "negbinomial":
        y = rng.poisson(rng.gamma(d, mu / d))
    elif fam == "nbinom1":
        y = rng.poisson(rng.gamma(mu / d, d))
    elif fam == "gamma":
        y = np.round(rng.gamma(d, mu / d), 6)
        y = np.maximum(y, 1e-6)
    elif fam == "student_t":
        y = np.round(mu + d * rng.standard_t(case.df, n), 6)
    elif fam == "beta":
        y = np.clip(np.round(rng.beta(mu * d, (1.0 - mu) * d), 6), 1e-6, 1.0 - 1e-6)
    elif fam in ("hurdle_poisson", "hurdle_negbinomial"):
        # the zero-truncated count by rejection (redraw the zeros), the hurdle below
        def count(k):
            m = mu[k]
            return rng.poisson(m) if fam == "hurdle_poisson" else rng.poisson(rng.gamma(d, m / d))
        y = count(np.arange(n))
        while np.any(y == 0):
            k = np.flatnonzero(y == 0)
            y[k] = count(k)
    elif fam == "ordinal":  # P(Y <= k) = F(cut_k - eta): the latent eta + logistic, cut
        y = 1 + np.searchsorted(np.asarray(case.cuts), eta + rng.logistic(size=n))
    else:
        raise ValueError(fam)
    if case.zi:
        zeta = case.zi_coefs[0] + (case.zi_coefs[1] * x if len(case.zi_coefs) > 1 else 0.0)
        y = np.where(rng.random(n) < special.expit(zeta), 0, y)
    if case.hu:
        heta = case.hu_coefs[0] + (case.hu_coefs[1] * x if len(case.hu_coefs) > 1 else 0.0)
        y = np.where(rng.random(n) < special.expit(heta), 0, y)
    cols["y"] = y
    if case.weights:
        cols["w"] = np.round(rng.uniform(0.5, 2.0, n), 6)
    return pd.DataFrame(cols)


def build_model(case: Case, data: pd.DataFrame | None = None) -> "bg.GLMM":
    """The :class:`bayes_glmm.GLMM` of a case (on :func:`simulate`'s data unless given)."""
    df = simulate(case) if data is None else data
    kw = {}
    if case.trials == "column":
        kw["trials"] = "n"
    if case.weights:
        kw["weights"] = "w"
    if case.zi:
        kw["zi"] = case.zi
    if case.hu:
        kw["hu"] = case.hu
    if case.disp_formula:
        kw["disp"] = case.disp_formula
    return bg.GLMM(case.formula, df, family=case.family, link=case.link, priors=case.priors, **kw)


def data_checksum(data: pd.DataFrame) -> dict:
    """Per-column sum and sum of squares (numeric) or level count (labels) of a data set.

    Stored with the reference and compared (to 1e-9 relative) before sampling, so that a
    change of NumPy's random streams or of :func:`simulate` is reported as a stale reference
    rather than as a sampler disagreement.  Sums, unlike a hash of the bytes, do not depend
    on the last bit of a float.
    """
    out = {}
    for c in data.columns:
        v = data[c]
        if pd.api.types.is_numeric_dtype(v):
            a = np.asarray(v, dtype=float)
            out[c] = [float(a.sum()), float((a * a).sum())]
        else:
            out[c] = [int(v.nunique()), int(v.size)]
    return out


def prior_reprs(model: "bg.GLMM") -> dict:
    """``repr`` of every resolved prior (stored with the reference, compared by the test)."""
    return {k: repr(v) for k, v in sorted(model.resolved_priors.items())}


# ---------------------------------------------------------------------------- summaries
#: the columns of a stored summary row (:func:`pack_summary`)
SUMMARY_COLUMNS = ("mean", "sd", "mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat")


def posterior_var_names(posterior) -> list:
    """Every reported parameter: fixed effects, SDs, correlations, dispersion, zi, hurdle
    and dispersion-formula coefficients and the random effects ``b_*`` (which check the term layout row by row)."""
    names = [v for v in posterior.data_vars
             if v in ("beta", "beta_zi", "beta_hu", "beta_disp", "sigma", "theta", "phi", "shape")
             or str(v).startswith(("sd_", "corr_", "b_")) or "|" in str(v)]  # (ordinal thresholds "1|2")
    return sorted(str(v) for v in names)


def summarize(idata) -> dict:
    """Per scalar parameter: mean, SD, their Monte Carlo SEs, bulk/tail ESS and R-hat.

    Returns
    -------
    dict
        ``label -> {"mean", "sd", "mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat"}``
        with labels as ArviZ prints them (``beta[x]``, ``sd_g[(Intercept)]``,
        ``b_g[g03, x]``).  The MCSEs are ArviZ's (``az.mcse`` ``method="mean"`` and
        ``"sd"``): they account for the autocorrelation of the chains.
    """
    import arviz as az

    names = posterior_var_names(idata.posterior)
    tab = az.summary(idata, var_names=names, kind="all", round_to="none", hdi_prob=0.9)
    return {str(lab): {c: float(tab.loc[lab, c]) for c in SUMMARY_COLUMNS} for lab in tab.index}


def pack_summary(summ: dict) -> dict:
    """A :func:`summarize` output as one row per parameter (8 significant digits), for JSON."""
    return {lab: [float(f"{row[c]:.8g}") for c in SUMMARY_COLUMNS] for lab, row in summ.items()}


def unpack_summary(rows: dict) -> dict:
    """Inverse of :func:`pack_summary`."""
    return {lab: dict(zip(SUMMARY_COLUMNS, vals)) for lab, vals in rows.items()}


def z_threshold(n_comparisons: int, alpha: float) -> float:
    """Two-sided Bonferroni critical |z| for ``n_comparisons`` tests at family-wise ``alpha``."""
    if n_comparisons < 1:
        raise ValueError("no comparisons")
    return float(stats.norm.isf(alpha / (2.0 * n_comparisons)))


def compare_summaries(a: dict, b: dict) -> list:
    """z-scores of the difference of two posterior summaries, parameter by parameter.

    ``z = (m_a - m_b) / sqrt(mcse_a^2 + mcse_b^2)`` for the means (with the MCSEs of the
    means) and for the SDs (with the MCSEs of the SDs).  Under "both samplers draw from the
    same posterior" each z is approximately standard normal (independent runs, Monte Carlo
    CLT).

    Parameters
    ----------
    a, b : dict
        :func:`summarize` outputs.

    Returns
    -------
    list of (label, statistic, z, value_a, value_b)
        ``statistic`` is ``"mean"`` or ``"sd"``; one entry per parameter and statistic.

    Raises
    ------
    ValueError
        When the two summaries have different parameters (a renamed coordinate or a
        dropped variable must not pass as "nothing to compare").
    """
    if set(a) != set(b):
        raise ValueError(f"parameters differ: only in the first {sorted(set(a) - set(b))[:5]}, "
                         f"only in the second {sorted(set(b) - set(a))[:5]}")
    out = []
    for lab in sorted(a):
        for stat, err in (("mean", "mcse_mean"), ("sd", "mcse_sd")):
            se = math.hypot(a[lab][err], b[lab][err])
            diff = a[lab][stat] - b[lab][stat]
            z = diff / se if se > 0 else (0.0 if diff == 0 else math.inf)
            out.append((lab, stat, float(z), a[lab][stat], b[lab][stat]))
    return out

"""Speed of issue 18's families against glmmTMB / ordinal::clmm (ML) and bambi + numpyro (NUTS).

For every case (one family on a data set of a few hundred to a few thousand rows):

* **ML, warm**: ``GLMM(...).fit_ml()`` against the R peer on the same data and model
  (glmmTMB; ``ordinal::clmm`` for the ordinal family), each timed in ``--rounds`` interleaved
  rounds of ``--repeats`` fits (Python, then one ``Rscript`` that fits once to warm up and then
  ``--repeats`` times), medians over all rounds; both logLiks side by side (they must agree).
  The timing code is :mod:`bench_ml`'s (``time_python``, ``time_r``).
* **ML, cold**: one fresh process each, interpreter start, imports, reading the CSV and one fit
  (``python -c`` against ``Rscript -e``), wall time from outside.
* **NUTS**: ``model.sample()`` (``sampler="auto"``) against bambi's ``numpyro`` backend
  (``inference_method="numpyro"``) on the same model with the same priors, chains, tune and
  draws; each run in a fresh process (:func:`bench_nuts._child`), the two packages interleaved
  in each of ``--nuts-repeat`` repetitions; wall time (model build + compile + sampling), the
  minimum bulk ESS over the fixed effects, SDs and the family's parameters, and min-ESS/s.

Targets (issue 18): ML >= 2x glmmTMB (and clmm); NUTS >= 3x bambi + numpyro (min-ESS/s).

Cases (``--cases``)
-------------------
t_crossed     Student-t, identity, ``y ~ x + (1 | g) + (1 | h)``, 60 x 20 crossed = 1,200 rows
              (simulated: intercept 1, slope 0.5, SDs 0.8 and 0.5, scale 0.6, df 4);
              glmmTMB ``t_family()``, bambi ``"t"``.
t_slope       Student-t, identity, ``y ~ x + (x || g)`` (uncorrelated intercept and slope: one
              term), tests/reference/student_t_slope.csv (600 rows x 40 groups; glmmTMB
              ``diag(1 + x | g)``, bambi ``(1 + x | g)``, which is uncorrelated).
hp_salamanders  hurdle Poisson, ``count ~ spp + mined + (1 | site)``, ``hu="~ mined"``, glmmTMB's
              Salamanders (644 rows x 23 sites); glmmTMB ``truncated_poisson()`` with
              ``ziformula = ~ mined``, bambi ``"hurdle_poisson"`` with ``psi ~ mined``.
hnb_slope     hurdle NB2, ``y ~ x + (x || g)``, ``hu="~ z"``, tests/reference/hurdle_sim_nb_slope.csv
              (800 rows x 50 groups); glmmTMB ``truncated_nbinom2()``, bambi
              ``"hurdle_negativebinomial"`` with ``psi ~ z`` on its ``nutpie`` backend (its numpyro
              backend cannot sample the truncated NB: JAX lacks betainc's parameter gradient).
t_disp        Student-t with a dispersion formula, ``y ~ x + (1 | g)``, ``disp="~ z"`` (log scale linear
              in z), tests/reference/dispformula_student_t.csv (360 rows x 30 groups); glmmTMB
              ``dispformula = ~ z``, bambi ``"t"`` with ``sigma ~ z``.
ord_soup      ordinal (cumulative logit), ``SURENESS ~ PROD + (1 | RESP)``, ordinal's soup (1,847 rows x
              185 respondents, 6 categories); peer ``ordinal::clmm`` (default control), bambi
              ``"cumulative"``.
ord_wine      ordinal (cumulative logit), ``rating ~ temp + contact + (1 | judge)``, ordinal's wine (72
              rows x 9 judges, 5 categories): the fixed per-fit cost; peer ``clmm`` (Laplace).
ord_wine_agq  the same with nAGQ = 10 (``fit_ml(n_agq=10)``, clmm's ``nAGQ = 10``).
bb_trials     beta-binomial, logit, ``y ~ x + (1 | g)`` with ``trials="n"`` (glmmTMB: ``cbind(y, n - y)``),
              1,000 rows x 50 groups, 2-20 trials (simulated: intercept -0.5, slope 0.8, SD 0.7,
              phi 8); glmmTMB ``betabinomial()``, bambi ``"beta_binomial"`` with ``p(y, n)``.

Priors (NUTS), the same on both sides: fixed effects Normal(0, 2.5) (the intercept at the
predictor means: bambi centres its predictors too), group SDs HalfNormal(1), the t's scale
HalfNormal(1) and df Gamma(2, 0.1) (bambi's ``nu``), the beta-binomial's phi Gamma(2, 0.2)
(bambi's ``kappa``), NB2's theta Gamma(2, 0.5) (bambi's ``alpha``), the hurdle's zero part
Normal(0, 1) (bambi's default for ``psi``'s terms), the ordinal thresholds each side's default.
Random effects are uncorrelated (bambi has no LKJ): ``(x || g)`` for ours is bambi's ``(1 + x | g)``.

Run from the repository root (R with glmmTMB and ordinal, bambi and numpyro installed)::

    python benchmarks/bench_families.py                         # every case, ML and NUTS
    python benchmarks/bench_families.py --cases bb_trials --no-nuts
    python benchmarks/bench_families.py --no-ml --nuts-repeat 3
    python benchmarks/bench_families.py --profile t_crossed     # cProfile of fit_ml + gradient timings
    python benchmarks/bench_families.py --quick                 # smoke test: 1 round, short chains

On the shared 2-core machine the absolute times move with the load; the ratios are of runs
interleaved in the same process tree, so the load hits both sides alike.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))  # benchmarks/ is not a package: its scripts import each other by name

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import bench_ml  # noqa: E402  (bayes_glmm comes in with it)
import bench_nuts  # noqa: E402

import bayes_glmm as bg  # noqa: E402


# --------------------------------------------------------------------------- data
def sim_t_crossed(n_g: int = 60, n_h: int = 20, seed: int = 20261207) -> pd.DataFrame:
    """Student-t responses on a fully crossed ``g x h`` design (one row per cell)."""
    rng = np.random.default_rng(seed)
    g, h = np.repeat(np.arange(n_g), n_h), np.tile(np.arange(n_h), n_g)
    x = rng.normal(size=g.size)
    y = (1.0 + 0.5 * x + rng.normal(0, 0.8, n_g)[g] + rng.normal(0, 0.5, n_h)[h]
         + 0.6 * rng.standard_t(4.0, size=g.size))
    return pd.DataFrame({"y": y.round(8), "x": x.round(6), "g": [f"g{i:02d}" for i in g],
                         "h": [f"h{i:02d}" for i in h]})


def sim_betabinomial(n: int = 1000, groups: int = 50, seed: int = 20261207) -> pd.DataFrame:
    """Beta-binomial counts: ``mu = expit(-0.5 + 0.8 x + b_g)``, ``p ~ Beta(mu phi, (1 - mu) phi)``."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), -(-n // groups))[:n]
    x = rng.normal(size=n).round(6)
    trials = rng.integers(2, 21, size=n)
    mu = 1.0 / (1.0 + np.exp(-(-0.5 + 0.8 * x + rng.normal(0, 0.7, groups)[g])))
    y = rng.binomial(trials, rng.beta(mu * 8.0, (1.0 - mu) * 8.0))
    return pd.DataFrame({"y": y, "n": trials, "x": x, "g": [f"g{i:02d}" for i in g]})


# --------------------------------------------------------------------------- cases
_FIXED = ("Normal", {"mu": 0.0, "sigma": 2.5})
_SD = ("HalfNormal", {"sigma": 1.0})
_HU = ("Normal", {"mu": 0.0, "sigma": 1.0})  # bambi's default for psi's terms

#: per case: the model for both packages.  ``priors``: ours (prior key -> (distribution, args));
#: ``bambi_priors``: bambi's keys; ``"group"`` marks a group-specific term (Normal(0, SD), SD ~ _SD)
CASES = {
    "t_crossed": dict(
        data=sim_t_crossed, source="simulated 60 x 20 crossed, seed 20261207",
        formula="y ~ x + (1 | g) + (1 | h)", family="student_t", n_agq=1,
        r_calls={"glmmTMB": "glmmTMB(f, data = d, family = t_family())"},
        priors={"Intercept": _FIXED, "x": _FIXED, "sd_g": _SD, "sd_h": _SD, "sigma": _SD,
                "df": ("Gamma", {"alpha": 2.0, "beta": 0.1})},
        bambi_formula="y ~ x + (1 | g) + (1 | h)", bambi_family="t",
        bambi_priors={"Intercept": _FIXED, "x": _FIXED, "1|g": "group", "1|h": "group", "sigma": _SD,
                      "nu": ("Gamma", {"alpha": 2.0, "beta": 0.1})},
        ours_vars=["beta", "sd_g", "sd_h", "sigma", "df"],
        bambi_vars=["Intercept", "x", "1|g_sigma", "1|h_sigma", "sigma", "nu"],
    ),
    # one (diagonal) term: bambi's (1 + x | g) is uncorrelated, glmmTMB's diag(), ours (x || g)
    "t_slope": dict(
        data=lambda: pd.read_csv(ROOT / "tests" / "reference" / "student_t_slope.csv"),
        source="tests/reference/student_t_slope.csv: 40 groups x 15",
        formula="y ~ x + (x || g)", family="student_t", n_agq=1,
        r_calls={"glmmTMB": "glmmTMB(y ~ x + diag(1 + x | g), data = d, family = t_family())"},
        priors={"Intercept": _FIXED, "x": _FIXED, "sd_g": _SD, "sigma": _SD,
                "df": ("Gamma", {"alpha": 2.0, "beta": 0.1})},
        bambi_formula="y ~ x + (1 + x | g)", bambi_family="t",
        bambi_priors={"Intercept": _FIXED, "x": _FIXED, "1|g": "group", "x|g": "group", "sigma": _SD,
                      "nu": ("Gamma", {"alpha": 2.0, "beta": 0.1})},
        ours_vars=["beta", "sd_g", "sigma", "df"],
        bambi_vars=["Intercept", "x", "1|g_sigma", "x|g_sigma", "sigma", "nu"],
    ),
    "bb_trials": dict(
        data=sim_betabinomial, source="simulated 1,000 rows x 50 groups, seed 20261207",
        formula="y ~ x + (1 | g)", family="betabinomial", n_agq=1, glmm_kwargs={"trials": "n"},
        r_calls={"glmmTMB": "glmmTMB(cbind(y, n - y) ~ x + (1 | g), data = d, family = betabinomial())"},
        priors={"Intercept": _FIXED, "x": _FIXED, "sd_g": _SD, "phi": ("Gamma", {"alpha": 2.0, "beta": 0.2})},
        bambi_formula="p(y, n) ~ x + (1 | g)", bambi_family="beta_binomial",
        bambi_priors={"Intercept": _FIXED, "x": _FIXED, "1|g": "group",
                      "kappa": ("Gamma", {"alpha": 2.0, "beta": 0.2})},
        ours_vars=["beta", "sd_g", "phi"],
        bambi_vars=["Intercept", "x", "1|g_sigma", "kappa"],
    ),
    # hurdles (issue 18): glmmTMB's truncated_* with ziformula = the hu formula; bambi's psi is
    # P(y > 0), so its logit is minus our hu predictor (the Normal(0, 1) priors are symmetric)
    "hp_salamanders": dict(
        data=lambda: pd.read_csv(ROOT / "tests" / "reference" / "salamanders.csv"),
        source="glmmTMB's Salamanders (tests/reference/salamanders.csv), 23 sites",
        formula="count ~ spp + mined + (1 | site)", family="hurdle_poisson", n_agq=1,
        glmm_kwargs={"hu": "~ mined"},
        r_calls={"glmmTMB": "glmmTMB(f, ziformula = ~ mined, data = d, family = truncated_poisson())"},
        priors={**{k: _FIXED for k in ("Intercept", "sppDF", "sppDM", "sppEC-A", "sppEC-L", "sppGP", "sppPR",
                                       "minedyes")},
                "sd_site": _SD, "hu_Intercept": _HU, "hu_minedyes": _HU},
        bambi_formula="count ~ spp + mined + (1 | site)", bambi_extra="psi ~ mined",
        bambi_family="hurdle_poisson",
        bambi_priors={"Intercept": _FIXED, "spp": _FIXED, "mined": _FIXED, "1|site": "group"},
        ours_vars=["beta", "sd_site", "beta_hu"],
        bambi_vars=["Intercept", "spp", "mined", "1|site_sigma", "psi_Intercept", "psi_mined"],
    ),
    "hnb_slope": dict(
        data=lambda: pd.read_csv(ROOT / "tests" / "reference" / "hurdle_sim_nb_slope.csv"),
        source="tests/reference/hurdle_sim_nb_slope.csv: 50 groups x 16",
        formula="y ~ x + (x || g)", family="hurdle_negbinomial", n_agq=1, glmm_kwargs={"hu": "~ z"},
        r_calls={"glmmTMB": "glmmTMB(y ~ x + diag(1 + x | g), ziformula = ~ z, data = d, "
                            "family = truncated_nbinom2())"},
        priors={"Intercept": _FIXED, "x": _FIXED, "sd_g": _SD, "theta": ("Gamma", {"alpha": 2.0, "beta": 0.5}),
                "hu_Intercept": _HU, "hu_z": _HU},
        bambi_formula="y ~ x + (1 + x | g)", bambi_extra="psi ~ z", bambi_family="hurdle_negativebinomial",
        # bambi's numpyro backend cannot sample PyMC's truncated NB (JAX has no gradient of betainc
        # in its parameters; bench_nuts.py's hnb400 found the same): its nutpie backend instead
        bambi_backend="nutpie",
        bambi_priors={"Intercept": _FIXED, "x": _FIXED, "1|g": "group", "x|g": "group",
                      "alpha": ("Gamma", {"alpha": 2.0, "beta": 0.5})},
        ours_vars=["beta", "sd_g", "theta", "beta_hu"],
        bambi_vars=["Intercept", "x", "1|g_sigma", "x|g_sigma", "alpha", "psi_Intercept", "psi_z"],
    ),
    # a dispersion formula (issue 18): the t's log scale linear in z (glmmTMB's t_family dispformula is
    # log sigma, as ours; bambi's distributional sigma has a log link)
    "t_disp": dict(
        data=lambda: pd.read_csv(ROOT / "tests" / "reference" / "dispformula_student_t.csv"),
        source="tests/reference/dispformula_student_t.csv: 30 groups x 12",
        formula="y ~ x + (1 | g)", family="student_t", n_agq=1, glmm_kwargs={"disp": "~ z"},
        r_calls={"glmmTMB": "glmmTMB(f, dispformula = ~ z, data = d, family = t_family())"},
        priors={"Intercept": _FIXED, "x": _FIXED, "sd_g": _SD, "disp_Intercept": _HU, "disp_z": _HU,
                "df": ("Gamma", {"alpha": 2.0, "beta": 0.1})},
        bambi_formula="y ~ x + (1 | g)", bambi_extra="sigma ~ z", bambi_family="t",
        bambi_priors={"Intercept": _FIXED, "x": _FIXED, "1|g": "group",
                      "nu": ("Gamma", {"alpha": 2.0, "beta": 0.1})},
        ours_vars=["beta", "sd_g", "beta_disp", "df"],
        bambi_vars=["Intercept", "x", "1|g_sigma", "sigma_Intercept", "sigma_z", "nu"],
    ),
    # ordinal (issue 18): ordinal::clmm is the peer (glmmTMB 1.1.5 has no cumulative-link family)
    "ord_soup": dict(
        data=lambda: _soup(), source="ordinal's soup (tests/reference/ordinal_soup.csv), 185 respondents",
        formula="SURENESS ~ PROD + (1 | RESP)", family="ordinal", n_agq=1,
        r_calls={"clmm": "clmm(f, data = d, link = 'logit')"},
        r_extra="suppressMessages(library(ordinal)); d$SURENESS <- factor(d$SURENESS, ordered = TRUE); "
                "d$RESP <- factor(d$RESP)",
        priors={"PRODTest": _FIXED, "sd_RESP": _SD},
        bambi_formula="SURENESS ~ PROD + (1 | RESP)", bambi_family="cumulative",
        bambi_priors={"PROD": _FIXED, "1|RESP": "group"},
        ours_vars=["beta", "sd_RESP", "1|2", "2|3", "3|4", "4|5", "5|6"],
        bambi_vars=["PROD", "1|RESP_sigma", "threshold"],
    ),
    # small data (72 rows): the fixed per-fit cost, Laplace and nAGQ = 10, against clmm's
    **{name: dict(
        data=lambda: _wine(), source="ordinal's wine (tests/reference/ordinal_wine.csv), 9 judges",
        formula="rating ~ temp + contact + (1 | judge)", family="ordinal", n_agq=agq,
        r_calls={"clmm": f"clmm(f, data = d, link = 'logit', nAGQ = {agq})"},
        r_extra="suppressMessages(library(ordinal)); d$rating <- factor(d$rating, ordered = TRUE); "
                "d$judge <- factor(d$judge)",
        priors={"tempwarm": _FIXED, "contactyes": _FIXED, "sd_judge": _SD},
        bambi_formula="rating ~ temp + contact + (1 | judge)", bambi_family="cumulative",
        bambi_priors={"temp": _FIXED, "contact": _FIXED, "1|judge": "group"},
        ours_vars=["beta", "sd_judge"], bambi_vars=["temp", "contact", "1|judge_sigma"],
    ) for name, agq in (("ord_wine", 1), ("ord_wine_agq", 10))},
}


def _wine() -> pd.DataFrame:
    d = pd.read_csv(ROOT / "tests" / "reference" / "ordinal_wine.csv")
    return d.assign(rating=pd.Categorical(d["rating"], ordered=True), judge=d["judge"].astype(str))


def _soup() -> pd.DataFrame:
    d = pd.read_csv(ROOT / "tests" / "reference" / "ordinal_soup.csv")
    return d.assign(SURENESS=pd.Categorical(d["SURENESS"], ordered=True), RESP=d["RESP"].astype(str))


def _ours_priors(case: dict) -> dict:
    return {k: bg.Prior(dist, **args) for k, (dist, args) in case["priors"].items()}


def _bambi_priors(case: dict) -> dict:
    import bambi as bmb

    out = {}
    for k, v in case["bambi_priors"].items():
        out[k] = (bmb.Prior("Normal", mu=0.0, sigma=bmb.Prior(_SD[0], **_SD[1])) if v == "group"
                  else bmb.Prior(v[0], **v[1]))
    return out


# --------------------------------------------------------------------------- ML
def ml_warm(name: str, data: pd.DataFrame, rounds: int, repeats: int, tmp: Path) -> dict:
    """Interleaved rounds of bench_ml.time_python and bench_ml.time_r; medians over all fits."""
    case = CASES[name]
    peer = next(iter(case["r_calls"]))
    bench_ml.time_python(data, case, 1)  # warm-up: first-call costs (lazy imports, caches)
    py_t, r_t, py, rr = [], [], None, None
    for _ in range(rounds):
        py = bench_ml.time_python(data, case, repeats)
        py_t += py["times_s"]
        rr = bench_ml.time_r(data, case, repeats, tmp, name, peer)
        if rr is None:
            break
        r_t += list(np.atleast_1d(rr["times_s"]))
    return {"peer": peer, "py_median_s": statistics.median(py_t), "py_times_s": py_t, "py_loglik": py["loglik"],
            "r_median_s": statistics.median(r_t) if r_t else float("nan"), "r_times_s": r_t,
            "r_loglik": rr["loglik"] if rr else float("nan")}


_COLD_PY = """
import time, sys
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
import pandas as pd, bayes_glmm as bg
d = pd.read_csv({csv!r})
m = bg.GLMM({formula!r}, d, family={family!r}, **{kw!r})
r = m.fit_ml(n_agq={n_agq})
print("COLD", time.perf_counter() - t0, r.loglik)
"""


def ml_cold(name: str, data: pd.DataFrame, tmp: Path) -> dict:
    """Wall time of a fresh process (start, imports, CSV, one fit) for each side."""
    case = CASES[name]
    csv = tmp / f"{name}_cold.csv"
    data.to_csv(csv, index=False)
    code = _COLD_PY.format(root=str(ROOT), csv=str(csv), formula=case["formula"], family=case["family"],
                           kw=case.get("glmm_kwargs", {}), n_agq=case["n_agq"])
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    py = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    factors = [c for c in data.columns if pd.api.types.is_string_dtype(data[c]) or data[c].dtype == object]
    peer = next(iter(case["r_calls"]))
    r_code = "\n".join(["suppressMessages({library(glmmTMB)})", f"d <- read.csv('{csv}')"]
                        + [f"d${c} <- factor(d${c})" for c in factors] + [case.get("r_extra", "")]
                        + [f"f <- as.formula('{case['formula']}')", f"m <- {case['r_calls'][peer]}",
                           "cat(logLik(m))"])
    t0 = time.perf_counter()
    rout = subprocess.run(["Rscript", "-e", r_code], capture_output=True, text=True)
    r = time.perf_counter() - t0
    if rout.returncode != 0:
        print(f"  R cold run failed: {rout.stderr.strip()[-400:]}")
        r = float("nan")
    return {"py_s": py, "r_s": r}


# --------------------------------------------------------------------------- NUTS
def run_nuts(job: dict) -> dict:
    """One NUTS fit of a case (in a child process): ours (``kind="ours"``) or bambi's numpyro."""
    case = CASES[job["case"]]
    data = case["data"]()
    draws, tune, chains, seed = job["draws"], job["tune"], job["chains"], job["seed"]
    if job["kind"] == "ours":
        import bayes_glmm.bayes  # noqa: F401  (pymc/nutpie imported outside the timing, like bambi's)

        t0 = time.perf_counter()
        model = bg.GLMM(case["formula"], data, family=case["family"], priors=_ours_priors(case),
                        **case.get("glmm_kwargs", {}))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = model.sample(draws=draws, tune=tune, chains=chains, random_seed=seed, progressbar=False)
        idata, sampler, var_names = res.idata, res.idata.posterior.attrs.get("sampler"), case["ours_vars"]
    else:
        import bambi as bmb
        import jax  # noqa: F401
        import nutpie  # noqa: F401
        import pymc.sampling.jax  # noqa: F401

        backend = case.get("bambi_backend", "numpyro")

        t0 = time.perf_counter()
        formula = (bmb.Formula(case["bambi_formula"], case["bambi_extra"]) if case.get("bambi_extra")
                   else case["bambi_formula"])
        model = bmb.Model(formula, data, family=case["bambi_family"], priors=_bambi_priors(case))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idata = model.fit(draws=draws, tune=tune, chains=chains, random_seed=seed,
                              inference_method=backend, progressbar=False)
        sampler, var_names = backend, case["bambi_vars"]
    wall = time.perf_counter() - t0
    ess, rhat, div = bench_nuts._min_ess(idata, var_names)
    rss, wrk = bench_nuts._rss()
    return {"wall": wall, "min_ess": ess, "max_rhat": rhat, "divergences": div, "sampler": sampler,
            "rss_mib": rss, "wrk_mib": wrk}


def nuts_compare(name: str, repeat: int, chains: int, tune: int, draws: int, seed: int) -> dict:
    rows = {"ours": [], "bambi": []}
    for rep in range(repeat):
        for kind in ("ours", "bambi"):
            job = dict(kind=kind, name=kind, case=name, chains=chains, tune=tune, draws=draws, seed=seed + rep)
            try:
                r = bench_nuts._child(job, script=str(Path(__file__).resolve()))
            except RuntimeError as e:
                print(f"  {kind} FAILED: {str(e).strip().splitlines()[-1][:200]}", flush=True)
                if kind == "ours":  # no comparison to make (e.g. a family the samplers lack)
                    break
                continue
            rows[kind].append(r)
            pkg = "bayes_glmm" if kind == "ours" else "bambi"
            print("  " + bench_nuts._row(name[:9], pkg, f"{'auto' if kind == 'ours' else 'bambi'} "
                                         f"({r['sampler']})", chains, r), flush=True)
    med = {}
    for kind, rs in rows.items():
        if rs:
            med[kind] = {k: float(statistics.median(r[k] for r in rs))
                         for k in ("wall", "min_ess", "divergences", "max_rhat")}
            med[kind]["ess_s"] = float(statistics.median(r["min_ess"] / r["wall"] for r in rs))
    return med


# --------------------------------------------------------------------------- profile
def profile(name: str) -> None:
    """Where the time of fit_ml goes (cProfile) and one log-density gradient per NUTS method."""
    import cProfile
    import pstats

    case = CASES[name]
    data = case["data"]()
    kw = case.get("glmm_kwargs", {})
    bg.GLMM(case["formula"], data, family=case["family"], **kw).fit_ml()  # warm-up
    pr = cProfile.Profile()
    pr.enable()
    bg.GLMM(case["formula"], data, family=case["family"], **kw).fit_ml()
    pr.disable()
    print(f"== {name}: cProfile of one warm fit_ml (top 25 by cumulative time)")
    pstats.Stats(pr).sort_stats("cumulative").print_stats(25)
    print(f"== {name}: cProfile (top 15 by own time)")
    pstats.Stats(pr).sort_stats("tottime").print_stats(15)

    from bayes_glmm.bayes.density import GlmmDensity
    from bayes_glmm.bayes.native import NativeModel

    m = bg.GLMM(case["formula"], data, family=case["family"], priors=_ours_priors(case), **kw)
    d = GlmmDensity(m.spec, m.resolved_priors, m.centered_terms)
    x = d.initial_point(0)
    nat = NativeModel(d)
    print(f"== {name}: one log-density + gradient, µs (median; n = {m.spec.n}, ndim = {d.ndim})")
    for label, fn in (("numpy GlmmDensity.logp_grad", lambda: d.logp_grad(x)),
                      ("native C (generated)", lambda: nat.logp_grad(x))):
        us, calls = bench_nuts._time_call(fn)
        print(f"  {label:34s} {us:10.1f}  ({calls} calls)")
    try:  # the JAX gradient of our PyMC graph: what bambi's numpyro backend differentiates
        import jax
        jax.config.update("jax_enable_x64", True)
        from pymc.sampling.jax import get_jaxified_graph

        pm_model = m.build()
        f = get_jaxified_graph(inputs=pm_model.value_vars, outputs=[pm_model.logp()])
        ip = pm_model.initial_point()
        vals = [jax.numpy.asarray(ip[v.name]) for v in pm_model.value_vars]
        vg = jax.jit(jax.value_and_grad(lambda *v: f(*v)[0], argnums=tuple(range(len(vals)))))
        us, calls = bench_nuts._time_call(lambda: jax.block_until_ready(vg(*vals)))
        print(f"  {'jax jit(value_and_grad(graph))':34s} {us:10.1f}  ({calls} calls)")
    except Exception as e:  # report, do not fail the profile
        print(f"  jax gradient not timed: {e}")


# --------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    ap.add_argument("--rounds", type=int, default=3, help="interleaved ML rounds (default 3)")
    ap.add_argument("--repeats", type=int, default=3, help="ML fits per round and side (default 3)")
    ap.add_argument("--no-ml", action="store_true")
    ap.add_argument("--no-cold", action="store_true", help="skip the fresh-process ML runs")
    ap.add_argument("--no-nuts", action="store_true")
    ap.add_argument("--nuts-repeat", type=int, default=1, help="NUTS repetitions, seeds seed, seed+1, ...")
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="smoke test: 1 round x 1 fit, 200 + 200 draws")
    ap.add_argument("--profile", choices=list(CASES), help="cProfile fit_ml and time the gradients instead")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print("RESULT " + json.dumps(run_nuts(json.loads(a.child))))
        return 0
    if a.profile:
        profile(a.profile)
        return 0
    if a.quick:
        a.rounds, a.repeats, a.tune, a.draws = 1, 1, 200, 200
    r_ok = bench_ml.have_r()
    print(f"bayes_glmm {bg.__version__}; numpy {np.__version__}; R: {'yes' if r_ok else 'not found'}; "
          f"cpus {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}; ML: {a.rounds} rounds x {a.repeats} "
          f"fits per side; NUTS: {a.chains} chains x ({a.tune} tune + {a.draws} draws), "
          f"{a.nuts_repeat} repetition(s)")
    summary = []
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        for name in a.cases:
            case = CASES[name]
            data = case["data"]()
            print(f"\n== {name}: {case['formula']} [{case['family']}{', ' + str(case.get('glmm_kwargs')) if case.get('glmm_kwargs') else ''}] "
                  f"{len(data):,} rows ({case['source']})", flush=True)
            row = {"case": name}
            if not a.no_ml and r_ok:
                w = ml_warm(name, data, a.rounds, a.repeats, tmp)
                print(f"  ML warm: bayes_glmm median {w['py_median_s']:.3f} s, {w['peer']} median "
                      f"{w['r_median_s']:.3f} s ({len(w['py_times_s'])} + {len(w['r_times_s'])} fits); "
                      f"speed-up {w['r_median_s'] / w['py_median_s']:.2f}x", flush=True)
                print(f"  logLik: bayes_glmm {w['py_loglik']:.6f}  {w['peer']} {w['r_loglik']:.6f}  "
                      f"diff {w['py_loglik'] - w['r_loglik']:+.2e}", flush=True)
                row.update(peer=w["peer"], ml_py=w["py_median_s"], ml_r=w["r_median_s"],
                           dll=w["py_loglik"] - w["r_loglik"])
                if not a.no_cold:
                    c = ml_cold(name, data, tmp)
                    print(f"  ML cold (fresh process incl. imports): bayes_glmm {c['py_s']:.2f} s, "
                          f"{w['peer']} {c['r_s']:.2f} s; speed-up {c['r_s'] / c['py_s']:.2f}x", flush=True)
                    row.update(cold_py=c["py_s"], cold_r=c["r_s"])
            if not a.no_nuts:
                print("  " + bench_nuts._HDR)
                med = nuts_compare(name, a.nuts_repeat, a.chains, a.tune, a.draws, a.seed)
                if "ours" in med and "bambi" in med:
                    o, b = med["ours"], med["bambi"]
                    print(f"  NUTS medians: bayes_glmm {o['wall']:.1f} s, min ESS {o['min_ess']:.0f}, "
                          f"{o['ess_s']:.1f} ESS/s; bambi+{case.get('bambi_backend', 'numpyro')} {b['wall']:.1f} s, min ESS {b['min_ess']:.0f}, "
                          f"{b['ess_s']:.1f} ESS/s; ESS/s ratio {o['ess_s'] / b['ess_s']:.2f}x, "
                          f"wall ratio {b['wall'] / o['wall']:.2f}x", flush=True)
                    row.update(nuts_ours=o["ess_s"], nuts_bambi=b["ess_s"], wall_ours=o["wall"], wall_bambi=b["wall"],
                               backend=case.get("bambi_backend", "numpyro"))
            summary.append(row)
    print("\nSummary (speed-up = peer time / ours; NUTS: min-ESS/s ours / bambi+numpyro; targets ML >= 2, NUTS >= 3)")
    print(f"  {'case':14s} {'peer':8s} {'ML s':>7s} {'peer s':>7s} {'ML x':>6s} {'dlogLik':>9s} {'cold x':>7s} "
          f"{'ESS/s':>7s} {'bambi':>7s} {'NUTS x':>7s} {'wall x':>7s}  bambi backend")
    nan = float("nan")
    for r in summary:
        print(f"  {r['case']:14s} {r.get('peer', '-'):8s} {r.get('ml_py', nan):7.3f} {r.get('ml_r', nan):7.3f} "
              f"{r.get('ml_r', nan) / r.get('ml_py', nan):6.2f} {r.get('dll', nan):9.1e} "
              f"{r.get('cold_r', nan) / r.get('cold_py', nan):7.2f} {r.get('nuts_ours', nan):7.1f} "
              f"{r.get('nuts_bambi', nan):7.1f} {r.get('nuts_ours', nan) / r.get('nuts_bambi', nan):7.2f} "
              f"{r.get('wall_bambi', nan) / r.get('wall_ours', nan):7.2f}  {r.get('backend', '-')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

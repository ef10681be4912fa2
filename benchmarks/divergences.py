"""How often NUTS diverges on correlated-random-slope Poisson GLMMs, by ``target_accept``.

This benchmark backs the package's default rule
:func:`bayes_glmm.bayes.sampling.default_target_accept`: ``target_accept=0.95`` when the
model has a correlated random term (``(1 + x | g)``), else 0.8.  It measures, on simulated
data, how many fits diverge under each setting and what the higher target costs per
effective draw.

Simulation
----------
``K`` data sets (default 30), each with its own seed spawned from
``numpy.random.SeedSequence(--seed)``, of

    ``y ~ x + offset(log(t)) + (1 + x | g)``, Poisson, log link,

with 20 groups x 8 observations, ``x ~ N(0, 1)``, exposure ``t ~ U(0.5, 2)``, fixed
effects ``(Intercept, x) = (0.5, 0.3)``, and per data set random-effect SDs
``sd_int, sd_x ~ U(0.1, 0.8)`` and correlation ``rho ~ U(-0.6, 0.6)`` (centred on the
nominal ``(0.5, 0.3)``, ``0.3`` but wide, so the set holds small-variance, funnel-prone
cases); ``b_g ~ N(0, Sigma)`` and ``y ~ Poisson(t * exp(eta))``.

Settings
--------
Every correlated data set is fitted with ``GLMM(formula, df, family="poisson").sample(
draws=1000, tune=1000, chains=4, random_seed=s, progressbar=False, check=False,
target_accept=ta)`` for each ``ta`` in ``--targets`` (default 0.8 0.95) and for
``target_accept=None`` (the package default: :func:`default_target_accept`, then, while the
fit still diverges, reruns with the next of ``RERUN_TARGETS`` (0.95, 0.99); the value
finally used is read back from ``idata.posterior.attrs["target_accept"]`` and the values
tried from ``attrs["target_accept_tried"]``).  All settings of one data set use the same
NUTS seed, so the comparison is paired.  If the largest target still diverges in more than
``--max-div-sets`` data sets (default 1), the script also runs ``--escalate`` (default
0.99).  As a control, the scalar-intercept model ``y ~ x + offset(log(t)) + (1 | g)`` is
fitted at 0.8 and with ``target_accept=None`` to ``K`` data sets simulated from it (same
draws, slope SD 0): the rule's claim is that 0.8 suffices there.

Measured per fit
----------------
Divergent transitions (sum of ``sample_stats["diverging"]`` over the kept draws of the
returned fit), wall time of the whole ``sample`` call (``time.perf_counter``; with
``target_accept=None`` it includes any reruns), the minimum bulk ESS over
``beta``, ``sd_g`` and ``corr_g`` (``arviz.ess(..., method="bulk")``), max split R-hat
over the same, and the leapfrog steps (``sample_stats["n_steps"]``, of the returned fit
only).  Per setting the table reports: the target(s) finally used, fits rerun by the
default rule, data sets with >= 1 divergence (out of K), median and total divergences,
median wall time, median min-ESS, median min-ESS/s and median min-ESS per 1000 leapfrog
steps (a timing-noise-free cost measure, since one step = one gradient evaluation).
Wall times are noisy on a shared machine; use the medians and the per-step figure.

Run from the repository root::

    python benchmarks/divergences.py                      # K = 30, 1000/1000 draws
    python benchmarks/divergences.py --k 50 --seed 7 --targets 0.8 0.9 0.95
    python benchmarks/divergences.py --quick              # smoke test: K = 3, 300/300
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

try:  # the installed package (editable installs point at this checkout)
    import bayes_glmm as bg
except ImportError:  # run from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import bayes_glmm as bg
from bayes_glmm.bayes.sampling import default_target_accept

FORMULA_CORR = "y ~ x + offset(log(t)) + (1 + x | g)"
FORMULA_SCALAR = "y ~ x + offset(log(t)) + (1 | g)"
N_GROUPS, N_PER = 20, 8
BETA = (0.5, 0.3)


def simulate(ss: np.random.SeedSequence, slopes: bool = True):
    """One data set and its true random-effect parameters from seed sequence ``ss``.

    With ``slopes=False`` the same random numbers give a random-intercept data set
    (slope SD 0), so the scalar control differs from the correlated case only in the term.
    """
    rng = np.random.default_rng(ss)
    sd = rng.uniform(0.1, 0.8, size=2)
    rho = rng.uniform(-0.6, 0.6)
    if not slopes:
        sd[1], rho = 0.0, 0.0
    cov = np.array([[sd[0] ** 2, rho * sd[0] * sd[1]], [rho * sd[0] * sd[1], sd[1] ** 2]])
    z = rng.standard_normal((N_GROUPS, 2))
    b = z @ np.linalg.cholesky(cov).T if slopes else z * [sd[0], 0.0]
    g = np.repeat(np.arange(N_GROUPS), N_PER)
    x = rng.standard_normal(g.size)
    t = rng.uniform(0.5, 2.0, g.size)
    eta = BETA[0] + b[g, 0] + (BETA[1] + b[g, 1]) * x
    y = rng.poisson(t * np.exp(eta))
    df = pd.DataFrame({"y": y, "x": x, "t": t,
                       "g": pd.Categorical([f"g{i:02d}" for i in g])})
    return df, {"sd_int": sd[0], "sd_x": sd[1], "rho": rho}


def fit_one(formula: str, df: pd.DataFrame, ta, *, seed: int, draws: int, tune: int,
            chains: int) -> dict:
    """Fit once; divergences, wall time, min bulk ESS, max R-hat and leapfrog steps."""
    import arviz as az

    model = bg.GLMM(formula, df, family="poisson")
    t0 = time.perf_counter()
    res = model.sample(draws=draws, tune=tune, chains=chains, random_seed=seed,
                       progressbar=False, target_accept=ta, check=False)
    wall = time.perf_counter() - t0
    idata = res.idata
    names = [v for v in ("beta", "sd_g", "corr_g") if v in idata.posterior]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ess = az.ess(idata, var_names=names, method="bulk")
        rhat = az.rhat(idata, var_names=names)
    min_ess = min(float(np.nanmin(np.asarray(ess[v]))) for v in names)
    max_rhat = max(float(np.nanmax(np.asarray(rhat[v]))) for v in names)
    ss = idata.sample_stats
    n_steps = int(np.asarray(ss["n_steps"]).sum()) if "n_steps" in ss else np.nan
    ta_used = float(idata.posterior.attrs["target_accept"])
    tried = list(idata.posterior.attrs.get("target_accept_tried", [ta_used]))
    return {"ta_used": ta_used, "n_runs": len(tried),
            "tried": "/".join(f"{float(v):g}" for v in np.atleast_1d(tried)),
            "rule": default_target_accept(model.spec),
            "n_div": int(np.asarray(ss["diverging"]).sum()),
            "wall_s": wall, "min_ess": min_ess, "max_rhat": max_rhat, "n_steps": n_steps,
            "ess_per_s": min_ess / wall, "ess_per_ksteps": 1000.0 * min_ess / n_steps}


def summarize(rows: pd.DataFrame, k: int) -> pd.DataFrame:
    out = []
    for (model, setting), d in rows.groupby(["model", "setting"], sort=False):
        out.append({"model": model, "setting": setting,
                    "ta_used": "/".join(f"{v:g}" for v in sorted(d.ta_used.unique())),
                    "reruns": int((d.n_runs > 1).sum()),
                    "div_sets": f"{int((d.n_div > 0).sum())}/{len(d)}",
                    "med_div": float(d.n_div.median()), "tot_div": int(d.n_div.sum()),
                    "med_wall_s": float(d.wall_s.median()),
                    "med_min_ess": float(d.min_ess.median()),
                    "med_ess_per_s": float(d.ess_per_s.median()),
                    "med_ess_per_kstep": float(d.ess_per_ksteps.median()),
                    "rhat>1.01": int((d.max_rhat > 1.01).sum())})
    return pd.DataFrame(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--k", type=int, default=30, help="data sets (default 30)")
    p.add_argument("--seed", type=int, default=20261201, help="root SeedSequence entropy")
    p.add_argument("--targets", type=float, nargs="+", default=[0.8, 0.95],
                   help="explicit target_accept values (default 0.8 0.95)")
    p.add_argument("--escalate", type=float, default=0.99,
                   help="extra target when the largest one still diverges too often (0: never)")
    p.add_argument("--max-div-sets", type=int, default=1,
                   help="divergent data sets tolerated before --escalate runs (default 1)")
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--quick", action="store_true", help="K = 3, 300 draws / 300 tune")
    p.add_argument("--no-scalar", action="store_true", help="skip the (1 | g) control")
    p.add_argument("--csv", type=Path, default=None, help="also write the per-fit rows here")
    a = p.parse_args(argv)
    if a.quick:
        a.k, a.draws, a.tune = 3, 300, 300

    children = np.random.SeedSequence(a.seed).spawn(a.k)
    # per data set: the simulation seed and one NUTS seed shared by all its settings
    data_ss = [c.spawn(1)[0] for c in children]
    nuts_seeds = [int(c.generate_state(1)[0]) for c in children]
    fit_kw = dict(draws=a.draws, tune=a.tune, chains=a.chains)

    print(f"divergences benchmark: K={a.k} data sets, {N_GROUPS} groups x {N_PER} obs, "
          f"{a.chains} chains x {a.draws} draws (tune {a.tune}), seed {a.seed}, "
          f"bayes_glmm {getattr(bg, '__version__', '?')}", flush=True)
    # warm-up (numba kernel compilation / caches) so the first timed fit is not an outlier
    t0 = time.perf_counter()
    fit_one(FORMULA_CORR, simulate(np.random.SeedSequence(0))[0], 0.8, seed=0, draws=50, tune=50,
            chains=a.chains)
    fit_one(FORMULA_SCALAR, simulate(np.random.SeedSequence(0), slopes=False)[0], 0.8, seed=0,
            draws=50, tune=50, chains=a.chains)
    print(f"  warm-up fits: {time.perf_counter() - t0:.1f} s", flush=True)

    datasets = [simulate(s) for s in data_ss]
    rows = []

    def run_setting(model_name, formula, setting, ta, data):
        t0 = time.perf_counter()
        for i, (df, truth) in enumerate(data):
            r = fit_one(formula, df, ta, seed=nuts_seeds[i], **fit_kw)
            rows.append({"model": model_name, "setting": setting, "dataset": i, **truth, **r})
        d = pd.DataFrame([r for r in rows if r["model"] == model_name and r["setting"] == setting])
        print(f"  {model_name:<10} {setting:<14} {int((d.n_div > 0).sum())}/{len(d)} divergent "
              f"data sets, {time.perf_counter() - t0:.0f} s", flush=True)
        return d

    last = None
    for ta in a.targets:
        last = run_setting("corr", FORMULA_CORR, f"ta={ta:g}", ta, datasets)
    run_setting("corr", FORMULA_CORR, "default(None)", None, datasets)
    if (a.escalate and last is not None and a.escalate not in a.targets
            and int((last.n_div > 0).sum()) > a.max_div_sets):
        print(f"  largest target {max(a.targets):g} diverged in more than {a.max_div_sets} "
              f"data set(s): also running {a.escalate:g}", flush=True)
        run_setting("corr", FORMULA_CORR, f"ta={a.escalate:g}", a.escalate, datasets)
    if not a.no_scalar:
        scalar = [simulate(s, slopes=False) for s in data_ss]
        run_setting("scalar", FORMULA_SCALAR, "ta=0.8", 0.8, scalar)
        run_setting("scalar", FORMULA_SCALAR, "default(None)", None, scalar)

    rows = pd.DataFrame(rows)
    if a.csv:
        rows.to_csv(a.csv, index=False)
    table = summarize(rows, a.k)
    print()
    print(f"models: corr = {FORMULA_CORR}; scalar = {FORMULA_SCALAR}")
    print("min ESS = min bulk ESS over beta, sd_g (and corr_g); ESS/s uses the whole sample() "
          "call; ESS/kstep = min ESS per 1000 leapfrog steps (all chains)")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))

    div = rows[rows.n_div > 0]
    if len(div):
        print("\nfits with divergences (true parameters of the data set):")
        with pd.option_context("display.width", 200):
            print(div[["model", "setting", "dataset", "sd_int", "sd_x", "rho", "tried", "n_div",
                       "min_ess", "max_rhat"]].to_string(index=False,
                                                         float_format=lambda v: f"{v:.3f}"))
    else:
        print("\nno fit diverged")

    rer = rows[rows.n_runs > 1]
    if len(rer):
        print("\nfits rerun by the default rule (target_accept=None):")
        with pd.option_context("display.width", 200):
            print(rer[["model", "setting", "dataset", "sd_int", "sd_x", "rho", "tried", "n_div",
                       "min_ess", "wall_s"]].to_string(index=False, float_format=lambda v: f"{v:.3f}"))

    # paired cost of the rule on the correlated model: default vs 0.8 on the same data/seed
    c = rows[rows.model == "corr"].pivot(index="dataset", columns="setting",
                                         values=["ess_per_s", "ess_per_ksteps", "wall_s"])
    if "default(None)" in c["ess_per_s"] and "ta=0.8" in c["ess_per_s"]:
        print("\npaired ratio default / ta=0.8 on the correlated model (median over data sets): "
              f"ESS/s {np.median(c['ess_per_s']['default(None)'] / c['ess_per_s']['ta=0.8']):.2f}, "
              f"ESS/kstep {np.median(c['ess_per_ksteps']['default(None)'] / c['ess_per_ksteps']['ta=0.8']):.2f}, "
              f"wall {np.median(c['wall_s']['default(None)'] / c['wall_s']['ta=0.8']):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Non-centred vs hierarchically centred random intercepts: where does each win? (issue 19, item 4)

The rule of ``centered="auto"`` (:mod:`bayes_glmm.spec.centering`) centres a ``(1 | g)`` term
when the median ``r_j = I_j sd^2`` of its levels exceeds ``AUTO_THRESHOLD``.  This script
measures, for simulated ``y ~ x + (1 | g)`` data over a grid of ``r`` (set through the rows
per group), the native sampler's effective draws per 1000 gradients -- the minimum bulk ESS
over ``beta`` and ``sd_g`` divided by the sampling phase's leapfrog steps (``n_steps``) --
for both parametrizations.  That measure is a count, not a time: it holds under load.

Modes:

* ``--grid``: families x group counts x target ``r`` x seeds (short runs, 2 x (300 + 300)).
  Every row reports the ``r`` that :func:`~bayes_glmm.spec.centering.informativeness` measures
  on the data (what the rule sees), next to the target.
* ``--crossed``: ``y ~ x + (1 | a) + (1 | b)`` Bernoulli, 20,000 rows, 500 x 500 levels, with
  both terms non-centred, the first hierarchically centred and the second non-centred, and the
  first hierarchically centred and the second centred.
* ``--case bern100k bern1m``: :mod:`bench_nuts`'s cases with ``centered=False`` and with the
  hierarchical centring (the case's own draws unless ``--draws/--tune``).

Examples::

    python benchmarks/bench_centering.py --grid --families bernoulli poisson --groups 40 400
    python benchmarks/bench_centering.py --crossed --seeds 2
    python benchmarks/bench_centering.py --case bern100k --draws 500 --tune 500
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

#: per family: the rows' Fisher information about eta at the simulated centre (nominal, to
#: pick the rows per group for a target r), the group SD and a simulator of y given eta
FAMILIES = {
    # logit, eta ~ 0 +- 1: p(1 - p) averages ~0.2
    "bernoulli": dict(info=0.2, sd=1.0, icpt=0.0),
    # log, mean count ~1
    "poisson": dict(info=1.0, sd=0.5, icpt=0.0),
    # NB2 with theta 2: mu^2 / (mu + mu^2 / 2) at mu = 1
    "negbinomial": dict(info=2.0 / 3.0, sd=0.5, icpt=0.0),
    # sigma 1
    "gaussian": dict(info=1.0, sd=0.5, icpt=0.0),
}


def simulate(family: str, groups: int, per: int, seed: int) -> pd.DataFrame:
    """``y ~ x + (1 | g)``: ``groups`` balanced groups of ``per`` rows, slope 0.5."""
    rng = np.random.default_rng(seed)
    f = FAMILIES[family]
    g = np.repeat(np.arange(groups), per)
    x = rng.standard_normal(g.size)
    eta = f["icpt"] + 0.5 * x + f["sd"] * rng.standard_normal(groups)[g]
    if family == "bernoulli":
        y = (rng.random(g.size) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int64)
    elif family == "poisson":
        y = rng.poisson(np.exp(eta))
    elif family == "negbinomial":
        y = rng.poisson(rng.gamma(2.0, np.exp(eta) / 2.0))
    else:
        y = eta + rng.standard_normal(g.size)
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})


def rows_for(family: str, r: float) -> int:
    f = FAMILIES[family]
    return max(1, int(round(r / (f["info"] * f["sd"] ** 2))))


def measure(model, draws: int, tune: int, chains: int, seed: int, var_names) -> dict:
    """One run: min bulk ESS over ``var_names``, sampling-phase gradients, R-hat, CPU seconds."""
    import arviz as az

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = model.sample(draws=draws, tune=tune, chains=chains, random_seed=seed, progressbar=False)
    wall = time.perf_counter() - t0
    idata = res.idata
    ess = az.ess(idata, var_names=var_names, method="bulk")
    rhat = az.rhat(idata, var_names=var_names)
    e = float(min(np.min(ess[v].values) for v in ess.data_vars))
    rh = float(max(np.max(rhat[v].values) for v in rhat.data_vars))
    st = idata.sample_stats
    steps = int(st["n_steps"].values.sum())
    return dict(min_ess=e, max_rhat=rh, n_steps=steps, per_1000=1000.0 * e / steps, wall=wall,
                divergences=int(st["diverging"].values.sum()),
                warmup_s=float(sum(st.attrs.get("warmup_seconds", [np.nan]))),
                sample_s=float(sum(st.attrs.get("sampling_seconds", [np.nan]))))


def _median_r(model) -> list[float]:
    from bayes_glmm.spec.centering import informativeness

    return [float(np.median(informativeness(model.spec, t))) for t in model.spec.terms]


def _fmt(row: dict) -> str:
    return (f"{row['label']:34s} {row['param']:10s} {row['r_measured']:>14s} {row['min_ess']:7.0f} "
            f"{row['n_steps']:8d} {row['per_1000']:8.1f} {row['max_rhat']:7.3f} {row['divergences']:4d} "
            f"{row['sample_s'] + row['warmup_s']:7.1f}")


HDR = (f"{'data':34s} {'param':10s} {'median r':>14s} {'minESS':>7s} {'n_steps':>8s} {'/1000gr':>8s} "
       f"{'R-hat':>7s} {'div':>4s} {'cpu s':>7s}")


def grid(a, out) -> list[dict]:
    import bayes_glmm as bg

    rows = []
    for fam in a.families:
        for J in a.groups:
            for r in a.r:
                per = rows_for(fam, r)
                if J * per > a.max_rows:
                    continue
                for s in range(a.seeds):
                    df = simulate(fam, J, per, seed=1000 * s + J + int(10 * r))
                    for param, cen in (("nc", False), ("hier", {"g": "hierarchical"})):
                        m = bg.GLMM("y ~ x + (1 | g)", df, family=fam, centered=cen)
                        res = measure(m, a.draws, a.tune, a.chains, seed=s + 1, var_names=["beta", "sd_g"])
                        row = dict(family=fam, groups=J, per=per, r_target=r, seed=s, param=param,
                                   r_measured=f"{_median_r(m)[0]:.2f}",
                                   label=f"{fam} J={J} n/g={per} r~{r:g} s{s}", **res)
                        rows.append(row)
                        print(_fmt(row), flush=True)
                        out.write(json.dumps(row) + "\n")
                        out.flush()
    return rows


def crossed(a, out) -> list[dict]:
    import bayes_glmm as bg

    rows = []
    for s in range(a.seeds):
        rng = np.random.default_rng(77 + s)
        n, A, B = a.crossed_rows, a.crossed_levels, a.crossed_levels
        ia, ib = rng.integers(0, A, n), rng.integers(0, B, n)
        x = rng.standard_normal(n)
        eta = 0.5 * x + 1.0 * rng.standard_normal(A)[ia] + 1.0 * rng.standard_normal(B)[ib]
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int64)
        df = pd.DataFrame({"y": y, "x": x, "a": pd.Categorical(ia), "b": pd.Categorical(ib)})
        for param, cen in (("nc/nc", False), ("hier/nc", {"a": "hierarchical", "b": False}),
                           ("hier/cen", {"a": "hierarchical", "b": True}), ("auto", "auto")):
            m = bg.GLMM("y ~ x + (1 | a) + (1 | b)", df, family="bernoulli", centered=cen)
            res = measure(m, a.draws, a.tune, a.chains, seed=s + 1, var_names=["beta", "sd_a", "sd_b"])
            # the rule's choice (a/b: False, True or "hierarchical") in the label, not the column
            choice = "/".join({False: "nc", True: "cen", "hierarchical": "hier"}[v] for v in m.centered_terms.values())
            row = dict(family="bernoulli-crossed", groups=A, seed=s, param=param,
                       r_measured="/".join(f"{v:.1f}" for v in _median_r(m)),
                       label=f"crossed n={n} {A}x{B} s{s}" + (f" ({choice})" if param == "auto" else ""), **res)
            rows.append(row)
            print(_fmt(row), flush=True)
            out.write(json.dumps(row) + "\n")
            out.flush()
    return rows


def cases(a, out) -> list[dict]:
    import bayes_glmm as bg
    from bench_nuts import CASES, load_case

    rows = []
    for case in a.case:
        c = CASES[case]
        df = load_case(case)
        for param, cen in (("nc", False), ("hier", {"g": "hierarchical"})):
            m = bg.GLMM(c["formula"], df, family=c.get("family", "bernoulli"), centered=cen)
            res = measure(m, a.draws or c["draws"], a.tune or c["tune"], a.chains, seed=1, var_names=c["ours_vars"])
            row = dict(family=case, groups=c["groups"], seed=0, param=param,
                       r_measured=f"{_median_r(m)[0]:.2f}", label=f"{case} load {os.getloadavg()[0]:.1f}", **res)
            rows.append(row)
            print(_fmt(row) + f"  wall {res['wall']:.1f} s", flush=True)
            out.write(json.dumps(row) + "\n")
            out.flush()
    return rows


def summary(rows: list[dict]) -> None:
    """Medians over seeds of effective draws per 1000 gradients, nc vs hier, per data shape."""
    keys = sorted({(r["family"], r["groups"], r.get("r_target", 0.0)) for r in rows})
    print("\nmedians over seeds: effective draws per 1000 gradients (max R-hat)")
    print(f"{'family':18s} {'groups':>6s} {'r target':>8s} {'r meas.':>8s}   "
          + "   ".join(f"{p:>16s}" for p in sorted({r['param'] for r in rows})))
    for k in keys:
        sel = [r for r in rows if (r["family"], r["groups"], r.get("r_target", 0.0)) == k]
        cells = []
        for p in sorted({r["param"] for r in rows}):
            s = [r for r in sel if r["param"] == p]
            cells.append(f"{statistics.median(r['per_1000'] for r in s):7.1f} ({max(r['max_rhat'] for r in s):.3f})"
                         if s else " " * 16)
        rm = statistics.median(float(r["r_measured"].split("/")[0]) for r in sel)
        print(f"{k[0]:18s} {k[1]:6d} {k[2]:8g} {rm:8.2f}   " + "   ".join(f"{c:>16s}" for c in cells))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", action="store_true")
    ap.add_argument("--crossed", action="store_true")
    ap.add_argument("--case", nargs="*", default=[])
    ap.add_argument("--families", nargs="+", default=list(FAMILIES))
    ap.add_argument("--groups", type=int, nargs="+", default=[40, 400, 2000])
    ap.add_argument("--r", type=float, nargs="+", default=[0.5, 1, 2, 4, 8, 16])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--draws", type=int, default=None, help="default 300 (grid, crossed) or the case's")
    ap.add_argument("--tune", type=int, default=None)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--max-rows", type=int, default=100_000, help="grid: skip data sets larger than this")
    ap.add_argument("--crossed-rows", type=int, default=20_000)
    ap.add_argument("--crossed-levels", type=int, default=500)
    ap.add_argument("--jsonl", default=os.devnull, help="also append every row here as JSON")
    a = ap.parse_args(argv)
    print(f"load average {', '.join(f'{v:.1f}' for v in os.getloadavg())}; {os.cpu_count()} CPU(s); "
          f"chains {a.chains}", flush=True)
    print(HDR)
    rows = []
    with open(a.jsonl, "a") as out:
        if a.grid or a.crossed:
            a.draws, a.tune = a.draws or 300, a.tune or 300
        if a.grid:
            rows += grid(a, out)
        if a.crossed:
            rows += crossed(a, out)
        if a.case:
            rows += cases(a, out)
    summary(rows)
    print(f"load average at the end {', '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()

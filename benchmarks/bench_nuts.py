"""NUTS benchmark: bayes_glmm vs bambi on toenail, ``Response ~ Month * Treatment + (1 | ID)``.

Bernoulli/logit random-intercept model, 1000 tune + 1000 draws, 2 and 4 chains.  For
every configuration it prints the whole-call wall time (model build + compile +
sampling + InferenceData), the minimum bulk ESS over the fixed effects and the random
intercept SD, min-ESS per second, divergences and max R-hat, then the ratio of
bayes_glmm's default (``sampler="auto"``) to bambi's fastest backend.

Run::

    python benchmarks/bench_nuts.py                 # everything (takes a while)
    python benchmarks/bench_nuts.py --chains 2 --ours auto --bambi nutpie

Each configuration runs in a fresh subprocess so that compile caches of one do not
favour another unevenly (``--warm`` reuses one process).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FORMULA = "Response ~ Month * Treatment + (1 | ID)"


def _min_ess(idata, var_names):
    import arviz as az
    import numpy as np

    ess = az.ess(idata, var_names=var_names, method="bulk")
    rhat = az.rhat(idata, var_names=var_names) if idata.posterior.sizes["chain"] > 1 else None
    vals = np.concatenate([np.ravel(ess[v].values) for v in ess.data_vars])
    rh = (np.concatenate([np.ravel(rhat[v].values) for v in rhat.data_vars]) if rhat is not None
          else np.array([np.nan]))
    div = int(idata.sample_stats["diverging"].values.sum())
    return float(vals.min()), float(np.nanmax(rh)), div


def run_ours(sampler: str, chains: int, seed: int, centered: bool = False) -> dict:
    import bayes_glmm as bg
    import bayes_glmm.bayes  # noqa: F401  (imports pymc/nutpie, like `import bambi` does, outside the timing)

    data = bg.datasets.load("toenail")
    t0 = time.perf_counter()
    model = bg.GLMM(FORMULA, data, family="bernoulli", centered=centered)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = model.sample(draws=1000, tune=1000, chains=chains, random_seed=seed, sampler=sampler,
                           progressbar=False)
    wall = time.perf_counter() - t0
    ess, rhat, div = _min_ess(res.idata, ["beta", "sd_ID"])
    return {"wall": wall, "min_ess": ess, "max_rhat": rhat, "divergences": div,
            "sampler": res.idata.posterior.attrs.get("sampler")}


def run_bambi(backend: str, chains: int, seed: int) -> dict:
    import bambi as bmb
    import bayes_glmm as bg
    import nutpie  # noqa: F401

    data = bg.datasets.load("toenail")
    t0 = time.perf_counter()
    model = bmb.Model(FORMULA, data, family="bernoulli")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = model.fit(draws=1000, tune=1000, chains=chains, random_seed=seed,
                          inference_method=backend, progressbar=False)
    wall = time.perf_counter() - t0
    fixed = ["Intercept", "Month", "Treatment", "Month:Treatment", "1|ID_sigma"]
    ess, rhat, div = _min_ess(idata, fixed)
    return {"wall": wall, "min_ess": ess, "max_rhat": rhat, "divergences": div, "sampler": backend}


def _child(kind: str, name: str, chains: int, seed: int, centered: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, name, str(chains), str(seed), str(int(centered))]
    out = subprocess.run(cmd, capture_output=True, text=True)
    for line in out.stdout.splitlines()[::-1]:
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{kind} {name} failed:\n{out.stderr[-3000:]}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chains", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--ours", nargs="+", default=["auto", "pymc", "nutpie-centered"],
                    help="bayes_glmm configurations: auto, nutpie, pymc, with optional '-centered'")
    ap.add_argument("--bambi", nargs="+", default=["pymc", "nutpie"], help="bambi backends")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--warm", action="store_true", help="run everything in this process")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        kind, name, chains, seed, centered = a.child
        fn = run_ours if kind == "ours" else run_bambi
        kw = {"centered": bool(int(centered))} if kind == "ours" else {}
        print("RESULT " + json.dumps(fn(name, int(chains), int(seed), **kw)))
        return
    runner = ((lambda k, n, c, s, ce: run_ours(n, c, s, ce) if k == "ours" else run_bambi(n, c, s))
              if a.warm else _child)
    rows = []
    print(f"toenail: {FORMULA} (bernoulli), 1000 tune + 1000 draws\n")
    hdr = f"{'package':10s} {'config':18s} {'chains':>6s} {'wall s':>8s} {'minESS':>8s} {'ESS/s':>8s} {'div':>4s} {'maxRhat':>8s}"
    print(hdr)
    for chains in a.chains:
        for cfg in a.ours:
            name, centered = cfg.replace("-centered", ""), cfg.endswith("-centered")
            r = runner("ours", name, chains, a.seed, centered)
            rows.append(("bayes_glmm", cfg, chains, r))
            print(f"{'bayes_glmm':10s} {cfg + ' (' + str(r['sampler']) + ')':18s} {chains:6d} {r['wall']:8.1f} "
                  f"{r['min_ess']:8.0f} {r['min_ess'] / r['wall']:8.1f} {r['divergences']:4d} {r['max_rhat']:8.4f}",
                  flush=True)
        for be in a.bambi:
            r = runner("bambi", be, chains, a.seed, False)
            rows.append(("bambi", be, chains, r))
            print(f"{'bambi':10s} {be:18s} {chains:6d} {r['wall']:8.1f} {r['min_ess']:8.0f} "
                  f"{r['min_ess'] / r['wall']:8.1f} {r['divergences']:4d} {r['max_rhat']:8.4f}", flush=True)
    print()
    for chains in a.chains:
        ours = [r for p, c, ch, r in rows if p == "bayes_glmm" and ch == chains and c == a.ours[0]]
        theirs = [(c, r) for p, c, ch, r in rows if p == "bambi" and ch == chains]
        if not ours or not theirs:
            continue
        best_c, best = max(theirs, key=lambda cr: cr[1]["min_ess"] / cr[1]["wall"])
        o = ours[0]
        print(f"{chains} chains: bayes_glmm {a.ours[0]} vs bambi {best_c} (fastest bambi): "
              f"min-ESS/s ratio {o['min_ess'] / o['wall'] / (best['min_ess'] / best['wall']):.2f}x, "
              f"wall-time ratio {best['wall'] / o['wall']:.2f}x (bambi / ours)")


if __name__ == "__main__":
    main()

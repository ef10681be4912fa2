"""NUTS benchmark: bayes_glmm vs bambi on toenail, ``Response ~ Month * Treatment + (1 | ID)``.

Bernoulli/logit random-intercept model, 1000 tune + 1000 draws, 2 and 4 chains.  For
every configuration it prints the whole-call wall time (model build + compile +
sampling + InferenceData), the minimum bulk ESS over the fixed effects and the random
intercept SD, min-ESS per second, divergences and max R-hat, then the ratio of
bayes_glmm's default (``sampler="auto"``) to bambi's fastest backend.

Run::

    python benchmarks/bench_nuts.py --repeat 3             # warm compile caches
    python benchmarks/bench_nuts.py --repeat 3 --cold      # empty PyTensor/numba cache per run
    python benchmarks/bench_nuts.py --chains 2 --ours auto --bambi nutpie

Each configuration runs in a fresh subprocess, and configurations are interleaved
within each repetition so that background load affects all alike (``--warm`` reuses
one process).  PyTensor caches numba-compiled ops on disk (``~/.pytensor``), which
helps the graph-compiling samplers (``nutpie``, bambi) from the second process on;
``--cold`` removes that advantage.  ``sampler="numba"`` (what ``auto`` picks here)
compiles one model-independent kernel (:mod:`bayes_glmm.nuts_kernels`, ~4 s) that numba
caches on disk: ``--cold`` points every run (ours and bambi's) at an empty
``NUMBA_CACHE_DIR`` and PyTensor compile directory, as on a freshly installed machine;
without ``--cold`` both load from their caches.  ``sampler="numpy"`` compiles nothing, so it
is the same cold or warm, but its chains share the GIL.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
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


def _child(kind: str, name: str, chains: int, seed: int, centered: bool, cold: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, name, str(chains), str(seed), str(int(centered))]
    env = dict(os.environ)
    tmp = None
    if cold:  # an empty PyTensor compile cache (numba/C) for this process only
        tmp = tempfile.mkdtemp(prefix="bench_nuts_")
        flags = env.get("PYTENSOR_FLAGS", "")
        env["PYTENSOR_FLAGS"] = (flags + "," if flags else "") + f"base_compiledir={tmp}"
        # and an empty numba cache for BOTH packages, as on a fresh machine: our kernel is
        # compiled anew, and so is every numba function the libraries cache on disk
        env["NUMBA_CACHE_DIR"] = os.path.join(tmp, "numba")
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    for line in out.stdout.splitlines()[::-1]:
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{kind} {name} failed:\n{out.stderr[-3000:]}")


def _row(pkg, cfg, chains, r):
    return (f"{pkg:10s} {cfg:22s} {chains:6d} {r['wall']:8.1f} {r['min_ess']:8.0f} "
            f"{r['min_ess'] / r['wall']:8.1f} {r['divergences']:4d} {r['max_rhat']:8.4f}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chains", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--ours", nargs="+", default=["auto", "numpy", "nutpie"],
                    help="bayes_glmm configurations: auto, numba, numpy, nutpie, pymc, with optional '-centered'")
    ap.add_argument("--bambi", nargs="+", default=["nutpie", "pymc"], help="bambi backends")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1, help="repetitions (seeds seed, seed+1, ...); medians")
    ap.add_argument("--cold", action="store_true",
                    help="every run starts with an empty PyTensor/numba compile cache")
    ap.add_argument("--warm", action="store_true", help="run everything in this process")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        kind, name, chains, seed, centered = a.child
        fn = run_ours if kind == "ours" else run_bambi
        kw = {"centered": bool(int(centered))} if kind == "ours" else {}
        print("RESULT " + json.dumps(fn(name, int(chains), int(seed), **kw)))
        return
    if a.warm:
        def runner(k, n, c, s, ce):
            return run_ours(n, c, s, ce) if k == "ours" else run_bambi(n, c, s)
    else:
        def runner(k, n, c, s, ce):
            return _child(k, n, c, s, ce, cold=a.cold)
    cfgs = [("bayes_glmm", c) for c in a.ours] + [("bambi", b) for b in a.bambi]
    rows = {}
    print(f"toenail: {FORMULA} (bernoulli), 1000 tune + 1000 draws, "
          f"{'cold' if a.cold else 'warm'} compile cache, {a.repeat} repetition(s), runs interleaved\n")
    hdr = f"{'package':10s} {'config':22s} {'chains':>6s} {'wall s':>8s} {'minESS':>8s} {'ESS/s':>8s} {'div':>4s} {'maxRhat':>8s}"
    print(hdr)
    for rep in range(a.repeat):
        for chains in a.chains:
            for pkg, cfg in cfgs:
                name, centered = cfg.replace("-centered", ""), cfg.endswith("-centered")
                r = runner("ours" if pkg == "bayes_glmm" else "bambi", name, chains, a.seed + rep, centered)
                rows.setdefault((pkg, cfg, chains), []).append(r)
                print(_row(pkg, f"{cfg} ({r['sampler']})", chains, r), flush=True)
    med = {}
    for key, rs in rows.items():
        med[key] = {k: float(statistics.median(r[k] for r in rs))
                    for k in ("wall", "min_ess", "divergences", "max_rhat")}
        med[key]["ess_s"] = float(statistics.median(r["min_ess"] / r["wall"] for r in rs))
    print("\nmedians")
    print(hdr)
    for (pkg, cfg, chains), m in sorted(med.items(), key=lambda kv: (kv[0][2], kv[0][0] != "bayes_glmm")):
        print(f"{pkg:10s} {cfg:22s} {chains:6d} {m['wall']:8.1f} {m['min_ess']:8.0f} {m['ess_s']:8.1f} "
              f"{m['divergences']:4.0f} {m['max_rhat']:8.4f}")
    print()
    for chains in a.chains:
        ours = med.get(("bayes_glmm", a.ours[0], chains))
        theirs = [(c, m) for (p, c, ch), m in med.items() if p == "bambi" and ch == chains]
        if not ours or not theirs:
            continue
        best_c, best = max(theirs, key=lambda cm: cm[1]["ess_s"])
        print(f"{chains} chains: bayes_glmm {a.ours[0]} vs bambi {best_c} (fastest bambi): "
              f"min-ESS/s ratio {ours['ess_s'] / best['ess_s']:.2f}x, "
              f"wall-time ratio {best['wall'] / ours['wall']:.2f}x (bambi / ours)")


if __name__ == "__main__":
    main()

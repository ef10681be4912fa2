"""What an ArviZ user pays for our InferenceData: ``az.summary``, ``az.plot_trace``, ``az.plot_forest``.

Fits toenail, ``Response ~ Month * Treatment + (1 | ID)`` (1,908 rows, 294 patients), with
bayes_glmm's defaults (``GLMM.sample()``: 4 chains x (1000 tune + 1000 draws)) and, as the
peer, with bambi (``inference_method`` from ``--bambi``, default ``numpyro``, same chains and
draws), writes both ``InferenceData`` to netCDF, then times, in a fresh process per
repetition (ours and bambi's interleaved, so background load hits both alike; the file is read
outside the timing):

* ``summary``: ``az.summary(idata)`` and the number of rows it has;
* ``plot_trace``: ``az.plot_trace(idata)``, the call (ArviZ builds every artist; Agg backend),
  wall time and (``plot_trace_cpu``) the CPU time of the process, which shared machines disturb less;
* ``render``: drawing that figure once (``fig.canvas.draw()``), what a notebook adds to show it;
* ``plot_forest``: ``az.plot_forest(idata)``, every variable, the call.

Both layouts carry the same draws of the same quantities (fixed effects, the patient SD and the
294 patient effects), so the ratio ours / bambi's shows what our layout costs over the peer's.
Medians over ``--repeat`` repetitions; seconds.

Run::

    python benchmarks/bench_arviz.py --repeat 5
    python benchmarks/bench_arviz.py --repeat 5 --bambi none    # ours only
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

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FORMULA = "Response ~ Month * Treatment + (1 | ID)"
STEPS = ("summary", "plot_trace", "plot_trace_cpu", "render", "plot_forest")


def fit(path_ours: str, path_bambi: str | None, backend: str, seed: int) -> None:
    """Fit toenail with both packages' defaults (4 chains, 1000 + 1000) and save the idata."""
    import bayes_glmm as bg

    data = bg.datasets.load("toenail")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = bg.GLMM(FORMULA, data, family="bernoulli").sample(random_seed=seed, progressbar=False)
    res.idata.to_netcdf(path_ours)
    print(f"ours: sampler={res.idata.posterior.attrs.get('sampler')}, posterior "
          f"{dict(res.idata.posterior.sizes)}, variables {list(res.idata.posterior.data_vars)}")
    if path_bambi is None:
        return
    import bambi as bmb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = bmb.Model(FORMULA, data, family="bernoulli").fit(
            draws=1000, tune=1000, chains=4, random_seed=seed, inference_method=backend,
            progressbar=False)
    idata.to_netcdf(path_bambi)
    print(f"bambi ({backend}): posterior {dict(idata.posterior.sizes)}, "
          f"variables {list(idata.posterior.data_vars)}")


def child(path: str) -> dict:
    """Time the ArviZ calls on one saved InferenceData (run in a fresh process)."""
    import matplotlib

    matplotlib.use("Agg")
    import arviz as az
    import matplotlib.pyplot as plt

    idata = az.from_netcdf(path)
    idata.posterior.load()
    out = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        summ = az.summary(idata)
        out["summary"] = time.perf_counter() - t0
        out["summary_rows"] = len(summ)
        out["nan_rhat"] = int(summ["r_hat"].isna().sum())
        t0, c0 = time.perf_counter(), time.process_time()
        axes = az.plot_trace(idata)
        out["plot_trace"] = time.perf_counter() - t0
        out["plot_trace_cpu"] = time.process_time() - c0
        fig = axes.ravel()[0].figure
        t0 = time.perf_counter()
        fig.canvas.draw()
        out["render"] = time.perf_counter() - t0
        plt.close("all")
        t0 = time.perf_counter()
        az.plot_forest(idata)
        out["plot_forest"] = time.perf_counter() - t0
        plt.close("all")
    out["runtime_warnings"] = sum(issubclass(w.category, RuntimeWarning) for w in caught)
    return out


def _run_child(path: str) -> dict:
    res = subprocess.run([sys.executable, __file__, "--child", path], capture_output=True, text=True)
    for line in res.stdout.splitlines()[::-1]:
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"timing {path} failed:\n{res.stderr[-3000:]}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bambi", default="numpyro", help="bambi inference_method, or 'none'")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print("RESULT " + json.dumps(child(a.child)))
        return
    tmp = tempfile.mkdtemp(prefix="bench_arviz_")
    paths = {"bayes_glmm": os.path.join(tmp, "ours.nc")}
    if a.bambi != "none":
        paths[f"bambi-{a.bambi}"] = os.path.join(tmp, "bambi.nc")
    fit(paths["bayes_glmm"], paths.get(f"bambi-{a.bambi}"), a.bambi, a.seed)
    runs = {k: [] for k in paths}
    for rep in range(a.repeat):
        for k, p in paths.items():  # interleaved: background load hits both alike
            r = _run_child(p)
            runs[k].append(r)
            print(f"rep {rep}: {k:16s} " + " ".join(f"{s} {r[s]:5.2f}" for s in STEPS), flush=True)
    print(f"\nmedians over {a.repeat} repetitions (s); toenail, 4 chains x 1000 draws, Agg backend")
    print(f"{'layout':16s} {'rows':>5s} {'nan_rhat':>8s} {'rtwarn':>6s} " + " ".join(f"{s:>14s}" for s in STEPS))
    med = {}
    for k, rs in runs.items():
        med[k] = {s: statistics.median(r[s] for r in rs) for s in STEPS}
        print(f"{k:16s} {rs[0]['summary_rows']:5d} {rs[0]['nan_rhat']:8d} {max(r['runtime_warnings'] for r in rs):6d} "
              + " ".join(f"{med[k][s]:14.2f}" for s in STEPS))
        print(f"{'':16s} {'':5s} {'':8s} {'range':>6s} "
              + " ".join(f"{min(r[s] for r in rs):8.2f}-{max(r[s] for r in rs):5.2f}" for s in STEPS))
    peer = [k for k in med if k != "bayes_glmm"]
    for k in peer:
        print(f"ratio bayes_glmm / {k}: "
              + ", ".join(f"{s} {med['bayes_glmm'][s] / med[k][s]:.2f}" for s in STEPS))


if __name__ == "__main__":
    main()

"""Peak memory of the pointwise log-likelihood on a posterior with many levels (issue 19 item 4).

A 100k-row Bernoulli model with 50,000 groups of two rows and a posterior of 2 x 500 random draws
(no MCMC: the values do not matter, only the arrays' sizes), as ``sample()`` would hold it.  Each
measurement runs in a fresh process and reports the increase of the peak resident set size over
the resident size just before the call, next to the size of the output array itself.

Usage (compare two checkouts by pointing PYTHONPATH at each)::

    PYTHONPATH=/path/to/checkout python benchmarks/bench_pointwise_memory.py [--rows 100000] [--draws 500]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np, pandas as pd, xarray as xr
import bayes_glmm as bg
from bayes_glmm.bayes import pointwise

rows, draws, path, lean = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
rng = np.random.default_rng(1)
G = rows // 2
d = pd.DataFrame({"y": rng.integers(0, 2, rows), "x": rng.normal(size=rows), "g": np.repeat(np.arange(G), 2)})
m = bg.GLMM("y ~ x + (1 | g)", d, family="bernoulli")
spec = m.spec
C = 2
b = rng.normal(size=(C, draws, G, 1))
post = xr.Dataset({"beta": (("chain", "draw", "coef"), rng.normal(size=(C, draws, 2))),
                   "sd_g": (("chain", "draw"), np.abs(rng.normal(size=(C, draws)))),
                   "b_g": (("chain", "draw", "g_level", "g_coef"), b.astype(np.float32) if lean else b)})
del b
rows_ll = None
if path == "native":
    from bayes_glmm.bayes.density import GlmmDensity
    from bayes_glmm.bayes.native import NativeModel
    rows_ll = NativeModel(GlmmDensity(spec, m.resolved_priors, m.centered_terms)).rows_loglik


def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) * 1024


import gc; gc.collect()
before = rss()
peak0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t = time.perf_counter()
import inspect  # an older checkout has no dtype= (its output is float64 either way)
kw = {"dtype": np.float32} if lean and "dtype" in inspect.signature(pointwise.pointwise_loglik).parameters else {}
ll = pointwise.pointwise_loglik(spec, post, rows_ll, **kw)
wall = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"path": path, "lean": lean, "out_bytes": ll.nbytes, "dtype": str(ll.dtype),
                  "rss_before": before, "peak_increase": peak - before, "peak_before_call": peak0, "wall_s": wall,
                  "sum": float(ll.sum(dtype=np.float64))}))
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--draws", type=int, default=500, help="draws per chain (2 chains)")
    ap.add_argument("--lean", action="store_true", help="also the lean store (float32 b_g and output)")
    a = ap.parse_args(argv)
    cases = [("numpy", "0"), ("native", "0")] + ([("numpy", "1"), ("native", "1")] if a.lean else [])
    print(f"pointwise log-likelihood, {a.rows} rows, {a.rows // 2} groups, 2 x {a.draws} draws "
          f"(peak RSS increase over RSS before the call; fresh process each)")
    for path, lean in cases:
        r = subprocess.run([sys.executable, "-c", CHILD, str(a.rows), str(a.draws), path, lean],
                           capture_output=True, text=True)
        if r.returncode:
            print(f"{path} lean={lean}: failed\n{r.stderr[-2000:]}")
            continue
        j = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"{path:7s} lean={j['lean']!s:5s} out {j['dtype']} {j['out_bytes'] / 2**20:8.0f} MiB  "
              f"peak increase {j['peak_increase'] / 2**20:8.0f} MiB  ({j['peak_increase'] / j['out_bytes']:.2f}x "
              f"the output)  {j['wall_s']:.2f} s  sum {j['sum']:.6e}")


if __name__ == "__main__":
    main()

"""fit_ml on a Dask DataFrame (issue 21, item 4): a Bernoulli GLMM with per-user random intercepts,
``y ~ x + (1 | g)``, on a LocalCluster of worker processes.

The data are generated per partition inside Dask (never on the driver), with user ids spread
over every partition, so the fit's one shuffle by ``g`` does real work.  Reported: the fit's wall
time (shuffle + per-partition build + optimizer), the peak resident memory of each worker and of
the driver, and, on a smaller size where the pandas frame fits easily, the same model fitted in
memory in the same run (time ratio and the logLik / estimate differences).

    PYTHONPATH=. python benchmarks/bench_dask.py                       # 1e7 rows, 16 partitions, 2 workers
    PYTHONPATH=. python benchmarks/bench_dask.py --rows 1e6 --compare-rows 0
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import time
import warnings

import numpy as np
import pandas as pd

import bayes_glmm as bg


def make_partition(i: int, rows: int, groups: int, seed: int) -> pd.DataFrame:
    """Partition ``i``'s rows: users drawn over all ``groups`` (so every partition holds part of
    most users), their intercepts the same in every partition (drawn from ``seed`` alone)."""
    u = np.random.default_rng(seed).normal(0.0, 1.0, groups)
    rng = np.random.default_rng([seed, i])
    g = rng.integers(0, groups, rows)
    x = rng.normal(size=rows)
    eta = -1.0 + 0.5 * x + u[g]
    y = (rng.random(rows) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int8)
    return pd.DataFrame({"y": y, "x": x, "g": g.astype(np.int64)})


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux: the process's high-water mark since it started
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=float, default=1e7)
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--groups", type=float, default=1e5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--memory-limit", default="2.5GB", help="per worker (spills / pauses above it)")
    ap.add_argument("--compare-rows", type=float, default=1e6,
                    help="also fit this many rows in memory and on Dask in the same run (0: skip)")
    ap.add_argument("--seed", type=int, default=20261207)
    a = ap.parse_args()

    import dask
    import dask.dataframe as dd
    from dask.distributed import Client, LocalCluster

    print(f"bayes_glmm {bg.__version__ if hasattr(bg, '__version__') else '?'}; dask {dask.__version__}; "
          f"python {platform.python_version()}; cpus {os.cpu_count()}; load average {os.getloadavg()[0]:.1f} "
          f"(shared machine, under load)")
    with LocalCluster(n_workers=a.workers, threads_per_worker=1, processes=True, memory_limit=a.memory_limit,
                      dashboard_address=":0", silence_logs=40) as cluster, Client(cluster) as client:
        def one(rows, groups, parts, label):
            per = int(rows) // parts
            ddf = dd.from_map(make_partition, range(parts), rows=per, groups=int(groups), seed=a.seed)
            client.run(lambda: None)
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = bg.GLMM("y ~ x + (1 | g)", ddf, family="bernoulli").fit_ml()
            wall = time.perf_counter() - t0
            peaks = client.run(_peak_rss_mb)
            print(f"== {label}: {per * parts:,} rows, {int(groups):,} users, {parts} partitions, {a.workers} worker "
                  f"processes x 1 thread")
            o = res.optimizer
            print(f"  Dask fit: {wall:.1f} s wall (template + shuffle + partition models {o['seconds_build']:.1f} s, "
                  f"{o['distributed_evaluations']} distributed evaluations {o['seconds_evaluations']:.1f} s); "
                  f"logLik {res.loglik:.6f}; beta {np.round(res.fixef.to_numpy(), 6).tolist()}; "
                  f"SD(g) {res.varcorr.sdcor.iloc[0]:.6f}; converged {res.converged}")
            print("  peak RSS per worker (MB, since worker start): "
                  + ", ".join(f"{v:.0f}" for v in peaks.values()) + f"; driver {_peak_rss_mb():.0f} MB")
            return ddf, res, wall

        if a.compare_rows:
            ddf, rd, wd = one(a.compare_rows, a.groups / 10, a.partitions, "in-memory comparison size")
            d = ddf.compute()  # this size only: the pandas frame for the in-memory fit
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rm = bg.GLMM("y ~ x + (1 | g)", d, family="bernoulli").fit_ml()
            wm = time.perf_counter() - t0
            del d
            print(f"  in-memory fit of the same rows: {wm:.1f} s (Dask / in-memory time {wd / wm:.2f}); "
                  f"|dlogLik| rel {abs(rd.loglik / rm.loglik - 1):.2e}; max |dbeta| "
                  f"{np.max(np.abs(rd.fixef.to_numpy() - rm.fixef.to_numpy())):.2e}; max |dSE|/SE "
                  f"{np.max(np.abs(rd.se.to_numpy() / rm.se.to_numpy() - 1)):.2e}; max |dSD| "
                  f"{np.max(np.abs(rd.varcorr.sdcor.to_numpy() - rm.varcorr.sdcor.to_numpy())):.2e}")
        one(a.rows, a.groups, a.partitions, "scale")
        print(f"driver peak RSS {_peak_rss_mb():.0f} MB (includes the in-memory comparison fit)")


if __name__ == "__main__":
    main()

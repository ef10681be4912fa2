"""Large crossed designs and lme4's InstEval: bayes_glmm's ML fit against lme4 / glmmTMB in the same run.

Run from the repository root::

    python3 benchmarks/bench_crossed.py                       # insteval and crossed_50k, 3 rounds
    python3 benchmarks/bench_crossed.py --cases crossed_200k --rounds 1 --peers none
    python3 benchmarks/bench_crossed.py --cases insteval --rounds 5

Cases
-----
insteval      lme4's InstEval (73,421 rows), ``y ~ service + (1 | s) + (1 | d) + (1 | dept:service)``,
              REML (peer: lmer)
crossed_50k   simulated Bernoulli, 50,000 rows, ``y ~ x + (1 | g) + (1 | h)`` with 1,250 x 1,250
              crossed levels, Laplace (peers: glmer, glmmTMB)
crossed_200k  the same with 200,000 rows and 5,000 x 5,000 levels

The sides are interleaved: each round fits once in this process and then once per peer in one
``Rscript`` process each (R's start-up and package loading excluded from its timing, the
peer's own ``system.time``); medians over rounds.  Peak memory: this process's max RSS after
the case (the whole process, data included) and tracemalloc's peak of one fit (``--memory``);
R's from ``gc()``'s "max used" (R heap only).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import bayes_glmm as bg  # noqa: E402

CASES = {
    "insteval": dict(formula="y ~ service + (1 | s) + (1 | d) + (1 | dept:service)", family="gaussian",
                     peers=("lmer",)),
    "crossed_50k": dict(formula="y ~ x + (1 | g) + (1 | h)", family="bernoulli", n=50_000, J=1250,
                        peers=("glmer", "glmmTMB")),
    "crossed_200k": dict(formula="y ~ x + (1 | g) + (1 | h)", family="bernoulli", n=200_000, J=5000,
                         peers=("glmer", "glmmTMB")),
}

R_CALL = {"lmer": "lmer(f, data = d)",
          "glmer": "glmer(f, data = d, family = binomial)",
          "glmmTMB": "glmmTMB(f, data = d, family = binomial)"}

R_SCRIPT = r"""
suppressMessages({{library(lme4); library(glmmTMB)}}); library(jsonlite)
d <- read.csv("{csv}")
for (c in {factors}) d[[c]] <- factor(d[[c]])
f <- as.formula("{formula}")
invisible(gc(reset = TRUE))
st <- system.time(m <- {call})
g <- gc()
cat(toJSON(list(s = st[["elapsed"]], cpu = st[["user.self"]] + st[["sys.self"]], max_used_mb = sum(g[, ncol(g)]), loglik = as.numeric(logLik(m))),
           auto_unbox = TRUE, digits = NA), "\n")
"""


def simulate_crossed(n: int, J: int, seed: int = 20261207) -> pd.DataFrame:
    """Bernoulli with two crossed intercepts (SDs 1 and 0.7), each row's levels drawn at random."""
    rng = np.random.default_rng(seed)
    g, h, x = rng.integers(0, J, n), rng.integers(0, J, n), rng.normal(size=n)
    eta = -0.3 + 0.6 * x + rng.normal(scale=1.0, size=J)[g] + rng.normal(scale=0.7, size=J)[h]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(int)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{v}" for v in g], "h": [f"h{v}" for v in h]})


def load_insteval(tmp: Path) -> pd.DataFrame:
    csv = tmp / "insteval_src.csv"
    code = ("suppressMessages(library(lme4)); d <- InstEval; "
            f"write.csv(data.frame(y = d$y, service = d$service, s = d$s, d = d$d, dept = d$dept), '{csv}', "
            "row.names = FALSE)")
    subprocess.run(["Rscript", "-e", code], check=True, capture_output=True)
    d = pd.read_csv(csv)
    for c in ("service", "s", "d", "dept"):
        d[c] = d[c].astype(str)
    return d


def fit_python(data: pd.DataFrame, case: dict):
    """One fit: (elapsed s, CPU s of this process, result)."""
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = bg.GLMM(case["formula"], data, family=case["family"]).fit_ml()
    return time.perf_counter() - t0, time.process_time() - c0, res


def fit_r(csv: Path, data: pd.DataFrame, case: dict, peer: str, tmp: Path) -> dict | None:
    factors = [c for c in data.columns if data[c].dtype == object]
    script = R_SCRIPT.format(csv=csv, factors="c(" + ", ".join(f"'{c}'" for c in factors) + ")",
                             formula=case["formula"], call=R_CALL[peer])
    path = tmp / f"{peer}.R"
    path.write_text(script)
    out = subprocess.run(["Rscript", str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        print(f"  {peer} failed: {out.stderr.strip()[-300:]}")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", nargs="*", default=["insteval", "crossed_50k"], choices=list(CASES))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--peers", nargs="*", default=None,
                    help="peers to run (default: the case's; 'none' for bayes_glmm only)")
    ap.add_argument("--memory", action="store_true", help="also trace one fit's peak allocation (slower)")
    args = ap.parse_args(argv)
    r_ok = shutil.which("Rscript") is not None
    print(f"bayes_glmm {bg.__version__}; numpy {np.__version__}; cpus {os.cpu_count()}; "
          f"load average {os.getloadavg()[0]:.1f}; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '-')}; "
          f"{args.rounds} round(s)")
    summary = []
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        for name in args.cases:
            case = CASES[name]
            data = load_insteval(tmp) if name == "insteval" else simulate_crossed(case["n"], case["J"])
            peers = [p for p in (case["peers"] if args.peers is None else args.peers) if p != "none"]
            peers = peers if r_ok else []
            csv = tmp / f"{name}.csv"
            data.to_csv(csv, index=False)
            print(f"== {name}: {case['formula']} [{case['family']}] {len(data):,} rows")
            ours, ours_cpu, theirs, theirs_cpu, ll = [], [], {p: [] for p in peers}, {p: [] for p in peers}, {}
            mem = {}
            for r in range(args.rounds):
                t, c, res = fit_python(data, case)
                ours.append(t)
                ours_cpu.append(c)
                ll["bayes_glmm"] = res.loglik
                line = f"  round {r + 1}: bayes_glmm {t:.2f} s (CPU {c:.2f} s)"
                print(f"  round {r + 1}: bayes_glmm done, logLik {res.loglik:.4f}", flush=True)  # before the peers
                for p in peers:
                    o = fit_r(csv, data, case, p, tmp)
                    if o is not None:
                        theirs[p].append(o["s"])
                        theirs_cpu[p].append(o["cpu"])
                        ll[p], mem[p] = o["loglik"], o["max_used_mb"]
                        line += f", {p} {o['s']:.2f} s (CPU {o['cpu']:.2f} s)"
                print(line + f"; load average {os.getloadavg()[0]:.1f}", flush=True)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
            traced = ""
            if args.memory:
                tracemalloc.start()
                fit_python(data, case)
                traced = f", one fit's traced peak {tracemalloc.get_traced_memory()[1] / 2**20:.0f} MiB"
                tracemalloc.stop()
            med, medc = statistics.median(ours), statistics.median(ours_cpu)
            print(f"  bayes_glmm: median {med:.2f} s (CPU {medc:.2f} s), logLik {ll['bayes_glmm']:.4f}; process max RSS {rss:.0f} MiB{traced}")
            for p in peers:
                if theirs[p]:
                    pm, pc = statistics.median(theirs[p]), statistics.median(theirs_cpu[p])
                    print(f"  {p}: median {pm:.2f} s (CPU {pc:.2f} s), logLik {ll[p]:.4f} "
                          f"(diff {ll['bayes_glmm'] - ll[p]:+.2e}), R max used {mem[p]:.0f} MB; "
                          f"speed-up {pm / med:.2f}x (CPU {pc / medc:.2f}x)")
                    summary.append((name, p, med, pm, medc, pc, ll["bayes_glmm"] - ll[p]))
            if not peers:
                summary.append((name, "-", med, float("nan"), medc, float("nan"), float("nan")))
    print("Summary (medians; speed-up = peer time / ours, elapsed and CPU)")
    print(f"  {'case':14s} {'peer':8s} {'ours s':>8s} {'peer s':>8s} {'x':>6s} {'ours cpu':>9s} {'peer cpu':>9s} "
          f"{'cpu x':>6s} {'dlogLik':>9s}")
    for name, p, a, b, ac, bc, dl in summary:
        print(f"  {name:14s} {p:8s} {a:8.2f} {b:8.2f} {b / a:6.2f} {ac:9.2f} {bc:9.2f} {bc / ac:6.2f} {dl:9.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

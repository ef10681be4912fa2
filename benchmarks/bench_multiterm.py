"""Multi-term scalar and crossed GLMMs (issue 21 item 1): warm Laplace fits against glmer and glmmTMB,
interleaved in one run.

Run from the repository root::

    OPENBLAS_NUM_THREADS=1 python3 benchmarks/bench_multiterm.py
    python3 benchmarks/bench_multiterm.py --cases grouse3 --repeats 9 --out results.txt

Cases
-----
grouse3       lme4's grouseticks, ``TICKS ~ YEAR + sHEIGHT + (1 | INDEX) + (1 | BROOD) + (1 | LOCATION)``,
              Poisson, 403 rows (data from tests/reference/families_reference.json; INDEX = the row)
verbagg       lme4::VerbAgg, ``r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)``, Bernoulli,
              7,584 rows, 316 x 24 crossed levels
crossed_100k  simulated Bernoulli, 100,000 rows, ``y ~ x + (1 | g) + (1 | h)``, 1,000 x 100 crossed levels

"Warm": each side fits each model once untimed (R: byte compiler, lazy loading; Python: imports,
caches), then ``--repeats`` rounds each fit once in this process, once in a persistent ``Rscript``
with glmer (nAGQ = 1) and once with glmmTMB, alternating; R's time is its own ``system.time``
elapsed of the fitting call, ours ``perf_counter`` around ``GLMM(...).fit_ml()`` (model
construction included).  Medians; ratio = peer median / ours (target >= 2).
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

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bayes_glmm as bg  # noqa: E402
from _peer_timing import Report, RWorker, r_available, runs  # noqa: E402

CASES = {
    "grouse3": dict(formula="TICKS ~ YEAR + sHEIGHT + (1 | INDEX) + (1 | BROOD) + (1 | LOCATION)",
                    family="poisson", r_family="poisson", repeats=7),
    "verbagg": dict(formula="r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
                    family="bernoulli", r_family="binomial", repeats=5),
    "crossed_100k": dict(formula="y ~ x + (1 | g) + (1 | h)", family="bernoulli", r_family="binomial",
                         repeats=3),
}

# reads "fit <case>:<peer>" lines; the data sets are read once at start (argument 1: a JSON of
# {case: [csv, formula, family, [factor columns]]})
R_WORKER = r"""
suppressMessages({library(lme4); library(glmmTMB); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
spec <- fromJSON(args[1])
D <- list()
for (k in names(spec)) {
  d <- read.csv(spec[[k]][[1]])
  for (c in spec[[k]][[4]]) d[[c]] <- factor(d[[c]])
  D[[k]] <- d
}
con <- file("stdin", open = "r")
repeat {
  line <- readLines(con, n = 1)
  if (length(line) == 0 || line == "quit") break
  key <- sub("^fit ", "", line)
  parts <- strsplit(key, ":", fixed = TRUE)[[1]]
  k <- parts[1]; peer <- parts[2]
  d <- D[[k]]; f <- as.formula(spec[[k]][[2]]); fam <- get(spec[[k]][[3]])
  st <- system.time(m <- if (peer == "glmer") glmer(f, data = d, family = fam) else glmmTMB(f, data = d, family = fam))
  cat(key, st[["elapsed"]], format(as.numeric(logLik(m)), digits = 17), "\n")
  flush(stdout())
}
"""


def simulate_crossed(n: int, J: int, K: int, seed: int = 20261207) -> pd.DataFrame:
    """Bernoulli with two crossed intercepts (SDs 1 and 0.7), each row's levels drawn at random."""
    rng = np.random.default_rng(seed)
    g, h, x = rng.integers(0, J, n), rng.integers(0, K, n), rng.normal(size=n)
    eta = -0.3 + 0.6 * x + rng.normal(scale=1.0, size=J)[g] + rng.normal(scale=0.7, size=K)[h]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(int)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{v}" for v in g], "h": [f"h{v}" for v in h]})


def load(name: str, tmp: Path) -> tuple[pd.DataFrame, list]:
    """The case's data and its factor columns."""
    if name == "grouse3":
        ref = json.loads((ROOT / "tests" / "reference" / "families_reference.json").read_text())
        d = pd.DataFrame(ref["data"]["grouseticks"])
        d["INDEX"] = [f"i{k}" for k in range(len(d))]
        return d, ["INDEX", "BROOD", "LOCATION", "YEAR"]
    if name == "verbagg":
        csv = tmp / "verbagg_src.csv"
        code = (f"suppressMessages(library(lme4)); d <- VerbAgg; d$r2 <- as.integer(d$r2 == 'Y'); "
                f"write.csv(d[, c('r2','Anger','Gender','btype','situ','id','item')], '{csv}', row.names=FALSE)")
        subprocess.run(["Rscript", "-e", code], check=True, capture_output=True)
        d = pd.read_csv(csv)
        for c in ("Gender", "btype", "situ", "id", "item"):
            d[c] = d[c].astype(str)
        return d, ["Gender", "btype", "situ", "id", "item"]
    return simulate_crossed(100_000, 1000, 100), ["g", "h"]


def fit_ours(data: pd.DataFrame, case: dict) -> tuple[float, float]:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = bg.GLMM(case["formula"], data, family=case["family"]).fit_ml()
    return time.perf_counter() - t0, float(res.loglik)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--repeats", type=int, default=None, help="rounds per case (default: the case's)")
    ap.add_argument("--out", type=Path, help="also write the report here")
    args = ap.parse_args(argv)
    have_r = r_available("glmmTMB") and r_available("lme4")
    emit = Report()
    emit(f"bayes_glmm {bg.__version__}; numpy {np.__version__}; cpus {os.cpu_count()}; load average "
         f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; OPENBLAS_NUM_THREADS="
         f"{os.environ.get('OPENBLAS_NUM_THREADS', '-')}; R peers: {'yes' if have_r else 'no'}; "
         f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    if have_r:
        v = subprocess.run(["Rscript", "-e", "cat(R.version.string, '; lme4', format(packageVersion('lme4')), "
                            "'; glmmTMB', format(packageVersion('glmmTMB')))"], capture_output=True, text=True)
        emit(v.stdout.strip())
    peers = ("glmer", "glmmTMB") if have_r else ()
    rows = []
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        data, spec = {}, {}
        for name in args.cases:
            d, factors = load(name, tmp)
            csv = tmp / f"{name}.csv"
            d.to_csv(csv, index=False)
            data[name] = d
            spec[name] = [str(csv), CASES[name]["formula"], CASES[name]["r_family"], factors]
        spec_path = tmp / "spec.json"
        spec_path.write_text(json.dumps(spec))
        worker = RWorker(R_WORKER, "multiterm", tmp, spec_path, ROOT) if have_r else None
        try:
            for name in args.cases:
                case, d = CASES[name], data[name]
                n_rep = args.repeats or case["repeats"]
                emit(f"\n== {name}: {case['formula']} [{case['family']}, Laplace] {len(d):,} rows; "
                     f"{n_rep} rounds after one warm-up each")
                ts, ll = {"bayes_glmm": []}, {}
                ts.update({p: [] for p in peers})
                _, ll["bayes_glmm"] = fit_ours(d, case)          # warm-up
                for p in peers:
                    _, ll[p] = worker.fit(f"{name}:{p}")
                for _ in range(n_rep):
                    t, ll["bayes_glmm"] = fit_ours(d, case)
                    ts["bayes_glmm"].append(t)
                    for p in peers:
                        t, ll[p] = worker.fit(f"{name}:{p}")
                        ts[p].append(t)
                med = {k: statistics.median(v) for k, v in ts.items()}
                for k, v in ts.items():
                    emit(f"  {k:10s} median {med[k]:8.3f} s (runs {runs(v)}); logLik {ll[k]:.6f}")
                emit(f"  load average now {os.getloadavg()[0]:.2f}")
                for p in peers:
                    rows.append((name, p, med["bayes_glmm"], med[p], ll["bayes_glmm"] - ll[p]))
        finally:
            if worker is not None:
                worker.close()
    emit("\nSummary (medians, same run; speed-up = peer / bayes_glmm; target >= 2)")
    emit(f"  {'case':14s} {'peer':8s} {'ours s':>8s} {'peer s':>8s} {'speed-up':>9s} {'dlogLik':>10s}")
    for name, p, a, b, dl in rows:
        emit(f"  {name:14s} {p:8s} {a:8.3f} {b:8.3f} {b / a:8.2f}x {dl:10.2e}")
    emit(f"load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    emit.save(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

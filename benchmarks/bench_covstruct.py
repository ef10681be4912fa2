"""Warm ML fit times of the structured-covariance models (us, diag, cs, ar1, toep) against
glmmTMB, measured in the same run and interleaved.

Run from the repository root::

    python3 benchmarks/bench_covstruct.py                       # every reference model, 5 repeats
    python3 benchmarks/bench_covstruct.py --repeats 9 --keys epil_ar1 sleepstudy_ar1_ml
    python3 benchmarks/bench_covstruct.py --out benchmarks/results/bench_covstruct_<date>.txt

Models: those of tests/reference/covstruct_reference.json (made by
tests/reference/make_reference_covstruct.R; formulas, data files, families, ML/REML).

Timing.  One R process (``Rscript``, glmmTMB) stays open for the whole run and fits on
request, so R's start-up and package loading are never timed.  For each model both sides
first fit once untimed (warm-up: imports, glmmTMB's DLL, our caches), then alternate
``--repeats`` times: one timed bayes_glmm fit, one timed glmmTMB fit; the medians are compared.
A bayes_glmm fit is ``GLMM(formula, data, family).fit_ml(...)`` (model construction
included, as glmmTMB's call includes its model frame); a glmmTMB fit is the ``glmmTMB()``
call with the start the reference used (its own default, or the documented fallback start
where the default did not converge: "start" rows, favourable to glmmTMB since the failed
default attempt is not timed).  "polished" rows (glmmTMB 1.1.5's toep stopping outside its
positive-definite set; the reference value needed restarts) have no glmmTMB time: ours only.

Printed per model: both medians, the ratio ours / glmmTMB (the issue's target: <= 0.5, i.e.
ML at least 2x glmmTMB) and both log-likelihoods (a fast wrong fit is not a win); dlogLik is
ours minus glmmTMB's in this run (minus the reference's exact value for unpaired rows).
The machine's load average is printed too: on a shared machine timings move with it.
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
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import bayes_glmm as bg  # noqa: E402

REF_PATH = ROOT / "tests" / "reference" / "covstruct_reference.json"

# The R side: reads the reference JSON, then answers one line per request on stdin.
#   "fit <key>"  -> "<key> <elapsed seconds> <logLik>"
#   "quit"       -> exits
R_WORKER = r"""
suppressMessages({ library(glmmTMB); library(jsonlite) })
invisible(Sys.setlocale("LC_COLLATE", "C"))
args <- commandArgs(trailingOnly = TRUE)
ref <- fromJSON(args[1], simplifyVector = FALSE)
root <- args[2]
csort <- function(x) sort(unique(as.character(x)), method = "radix")
cache <- list()
data_of <- function(name) {
  if (is.null(cache[[name]])) {
    d <- read.csv(file.path(root, ref$data_files[[name]]), stringsAsFactors = FALSE)
    for (v in names(d)) if (is.character(d[[v]])) d[[v]] <- factor(d[[v]], levels = csort(d[[v]]))
    cache[[name]] <<- d
  }
  cache[[name]]
}
fit_key <- function(key) {
  r <- ref$fits[[key]]
  fam <- switch(r$family, gaussian = gaussian(), poisson = poisson(), binomial = binomial())
  a <- list(as.formula(r$formula), data = data_of(r$data), family = fam, REML = isTRUE(r$reml))
  if (r$strategy != "default") {
    st <- Filter(function(a) a$strategy == r$strategy, r$attempts)[[1]]
    a$start <- list(theta = unlist(st$theta))
    if (!is.null(st$betad)) a$start$betad <- unlist(st$betad)
  }
  suppressWarnings(do.call(glmmTMB, a))
}
con <- file("stdin", open = "r")
repeat {
  line <- readLines(con, n = 1)
  if (length(line) == 0 || line == "quit") break
  key <- sub("^fit ", "", line)
  t0 <- proc.time()[["elapsed"]]
  m <- fit_key(key)
  el <- proc.time()[["elapsed"]] - t0
  cat(sprintf("%s %.6f %.10f\n", key, el, -m$fit$objective))
  flush(stdout())
}
"""


class RWorker:
    """A persistent Rscript process fitting reference models on request."""

    def __init__(self, tmp: Path):
        path = tmp / "covstruct_worker.R"
        path.write_text(R_WORKER)
        self.proc = subprocess.Popen(["Rscript", str(path), str(REF_PATH), str(ROOT)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)

    def fit(self, key: str) -> tuple[float, float]:
        self.proc.stdin.write(f"fit {key}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"R worker died fitting {key}: {self.proc.stderr.read()[-2000:]}")
        k, el, ll = line.split()
        assert k == key, (k, key)
        return float(el), float(ll)

    def close(self) -> None:
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=30)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            self.proc.kill()


def fit_ours(r: dict, data: pd.DataFrame):
    # R's binomial() with a 0/1 response is our "bernoulli" (our "binomial" wants trials)
    family = "bernoulli" if r["family"] == "binomial" else r["family"]
    model = bg.GLMM(r["formula"], data, family=family, link=r["link"])
    if r["family"] == "gaussian":
        return model.fit_ml(reml=r["reml"])
    return model.fit_ml()


def time_ours(r: dict, data: pd.DataFrame) -> tuple[float, float]:
    t0 = time.perf_counter()
    res = fit_ours(r, data)
    return time.perf_counter() - t0, float(res.loglik)


def r_available() -> bool:
    if shutil.which("Rscript") is None:
        return False
    return subprocess.run(["Rscript", "-e", "suppressMessages(library(glmmTMB))"], capture_output=True).returncode == 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--keys", nargs="*", help="reference keys (default: all)")
    ap.add_argument("--out", type=Path, help="also write the report here")
    args = ap.parse_args(argv)

    ref = json.loads(REF_PATH.read_text())
    fits = ref["fits"]
    keys = args.keys or sorted(fits)
    unknown = [k for k in keys if k not in fits]
    if unknown:
        raise SystemExit(f"unknown keys {unknown}; choose from {sorted(fits)}")
    data = {name: pd.read_csv(ROOT / path) for name, path in ref["data_files"].items()}
    have_r = r_available()

    lines = []

    def emit(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    emit(f"bayes_glmm {bg.__version__}; numpy {np.__version__}; cpus {os.cpu_count()}; "
         f"load average {os.getloadavg()[0]:.1f}; repeats {args.repeats}; R/glmmTMB: {'yes' if have_r else 'no'} (reference made with glmmTMB "
         f"{ref['glmmTMB_version']}, TMB {ref['TMB_version']}); {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        worker = RWorker(Path(tmp)) if have_r else None
        try:
            for key in keys:
                r = fits[key]
                d = data[r["data"]]
                peer = worker is not None and r["strategy"] != "polished"
                _, ll_ours = time_ours(r, d)  # warm-up
                ll_r = float("nan")
                if peer:
                    _, ll_r = worker.fit(key)
                t_ours, t_r = [], []
                for _ in range(args.repeats):
                    t, ll_ours = time_ours(r, d)
                    t_ours.append(t)
                    if peer:
                        t, ll_r = worker.fit(key)
                        t_r.append(t)
                mo = statistics.median(t_ours)
                mr = statistics.median(t_r) if t_r else float("nan")
                ratio = mo / mr if t_r else float("nan")
                # unpaired rows: the exact log-likelihood at glmmTMB's best estimates where the
                # reference has it (TMB's own value is off at near-singular toep optima)
                ll_ref = r.get("loglik_exact", r["loglik"])
                rows.append((key, mo, mr, ratio, ll_ours, ll_r if peer else ll_ref))
                emit(f"{key:30s} {r['formula']}{' [REML]' if r['reml'] else ''}")
                emit(f"    bayes_glmm median {mo:7.3f} s (runs {', '.join(f'{t:.3f}' for t in t_ours)}); "
                     f"logLik {ll_ours:.6f}")
                if t_r:
                    emit(f"    glmmTMB    median {mr:7.3f} s (runs {', '.join(f'{t:.3f}' for t in t_r)}); "
                         f"logLik {ll_r:.6f}  [{r['strategy']}]")
                    emit(f"    ratio bayes_glmm / glmmTMB = {ratio:.3f}")
                else:
                    emit(f"    glmmTMB    not timed ({r['strategy']}); reference logLik {r['loglik']:.6f}"
                         f" (exact at its estimates {ll_ref:.6f})")
        finally:
            if worker is not None:
                worker.close()

    emit("")
    emit("Summary (median seconds; ratio = bayes_glmm / glmmTMB; target <= 0.5)")
    emit(f"  {'model':30s} {'ours':>8s} {'glmmTMB':>8s} {'ratio':>7s} {'dlogLik':>10s}")
    for key, mo, mr, ratio, llo, llr in rows:
        emit(f"  {key:30s} {mo:8.3f} {mr:8.3f} {ratio:7.3f} {llo - llr:10.2e}")
    finite = [x[3] for x in rows if np.isfinite(x[3])]
    if finite:
        emit(f"  models timed against glmmTMB: {len(finite)}; ratio <= 0.5 on {sum(x <= 0.5 for x in finite)}; "
             f"geometric mean ratio {float(np.exp(np.mean(np.log(finite)))):.3f}; worst {max(finite):.3f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

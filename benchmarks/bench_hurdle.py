"""Warm ML fit times of the hurdle models against glmmTMB, measured in the same run and interleaved.

Run from the repository root::

    python3 benchmarks/bench_hurdle.py                    # every reference model, 5 repeats
    python3 benchmarks/bench_hurdle.py --repeats 9 --keys sal_poisson
    python3 benchmarks/bench_hurdle.py --out benchmarks/results/bench_hurdle_<date>.txt

Models: the random-effects fits of tests/reference/hurdle_reference.json (made by
tests/reference/make_reference_hurdle.R): Salamanders (hurdle Poisson, hurdle NB2) and the
simulated random-intercept, correlated random-slope and offset models.

Timing as ``benchmarks/bench_covstruct.py``: one R process (``Rscript``, glmmTMB) stays open
for the whole run and fits on request, so R's start-up and package loading are never timed;
each model is fitted once untimed by both sides (warm-up), then ``--repeats`` times alternately.
A bayes_glmm fit is ``GLMM(formula, data, family, hu=...).fit_ml()`` (model construction
included, as glmmTMB's call includes its model frame); a glmmTMB fit is ``glmmTMB(formula,
ziformula, family = truncated_poisson() / truncated_nbinom2())``.  Printed per model: both
medians, the ratio ours / glmmTMB (the issue's target: <= 0.5) and both log-likelihoods.
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

REF_PATH = ROOT / "tests" / "reference" / "hurdle_reference.json"
KEYS = ("sal_poisson", "sal_negbinomial", "sim_poisson", "sim_nb_slope", "sim_nb_offset")

# The R side: reads the reference JSON, then answers one line per request on stdin.
#   "fit <key>"  -> "<key> <elapsed seconds> <logLik>"
R_WORKER = r"""
suppressMessages({ library(glmmTMB); library(jsonlite) })
args <- commandArgs(trailingOnly = TRUE)
ref <- fromJSON(args[1], simplifyVector = FALSE)
root <- args[2]
csort <- function(x) sort(unique(as.character(x)), method = "radix")
data_of <- function(key) {
  path <- if (startsWith(key, "sal")) ref$data$sal else ref$data[[key]]
  d <- read.csv(file.path(root, path), stringsAsFactors = FALSE)
  for (v in names(d)) if (is.character(d[[v]])) d[[v]] <- factor(d[[v]], levels = csort(d[[v]]))
  d
}
con <- file("stdin", open = "r")
repeat {
  line <- readLines(con, n = 1)
  if (length(line) == 0 || line == "quit") break
  key <- sub("^fit ", "", line)
  r <- ref[[key]]
  d <- data_of(key)
  fam <- if (r$family == "hurdle_poisson") truncated_poisson() else truncated_nbinom2()
  t0 <- proc.time()[["elapsed"]]
  m <- glmmTMB(as.formula(r$formula), ziformula = as.formula(r$hu), data = d, family = fam)
  el <- proc.time()[["elapsed"]] - t0
  cat(sprintf("%s %.6f %.10f\n", key, el, as.numeric(logLik(m))))
  flush(stdout())
}
"""


def _data(ref: dict, key: str) -> pd.DataFrame:
    path = ref["data"]["sal"] if key.startswith("sal") else ref["data"][key]
    return pd.read_csv(ROOT / path)


def time_ours(r: dict, data: pd.DataFrame) -> tuple[float, float]:
    t0 = time.perf_counter()
    res = bg.GLMM(r["formula"], data, family=r["family"], hu=r["hu"]).fit_ml()
    return time.perf_counter() - t0, float(res.loglik)


class RWorker:
    """A persistent Rscript process fitting the reference models on request."""

    def __init__(self, tmp: Path):
        path = tmp / "hurdle_worker.R"
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


def r_available() -> bool:
    if shutil.which("Rscript") is None:
        return False
    return subprocess.run(["Rscript", "-e", "suppressMessages(library(glmmTMB))"], capture_output=True).returncode == 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--keys", nargs="*", choices=KEYS, help="reference keys (default: all)")
    ap.add_argument("--out", type=Path, help="also write the report here")
    args = ap.parse_args(argv)
    ref = json.loads(REF_PATH.read_text())
    keys = args.keys or list(KEYS)
    have_r = r_available()
    lines = []

    def emit(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    emit(f"bayes_glmm {bg.__version__}; numpy {np.__version__}; cpus {os.cpu_count()}; "
         f"load average {os.getloadavg()[0]:.1f}; repeats {args.repeats}; R/glmmTMB: {'yes' if have_r else 'no'} "
         f"(reference made with glmmTMB {ref['glmmTMB_version']}); {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        worker = RWorker(Path(tmp)) if have_r else None
        try:
            for key in keys:
                r, d = ref[key], _data(ref, key)
                _, ll_ours = time_ours(r, d)  # warm-up
                ll_r = float("nan")
                if worker is not None:
                    _, ll_r = worker.fit(key)
                t_ours, t_r = [], []
                for _ in range(args.repeats):
                    t, ll_ours = time_ours(r, d)
                    t_ours.append(t)
                    if worker is not None:
                        t, ll_r = worker.fit(key)
                        t_r.append(t)
                mo = statistics.median(t_ours)
                mr = statistics.median(t_r) if t_r else float("nan")
                rows.append((key, mo, mr, mo / mr if t_r else float("nan"), ll_ours,
                             ll_r if t_r else r["loglik"]))
                emit(f"{key:18s} {r['family']}: {r['formula']}, hu = {r['hu']}")
                emit(f"    bayes_glmm median {mo:7.3f} s (runs {', '.join(f'{t:.3f}' for t in t_ours)}); "
                     f"logLik {ll_ours:.6f}")
                if t_r:
                    emit(f"    glmmTMB    median {mr:7.3f} s (runs {', '.join(f'{t:.3f}' for t in t_r)}); "
                         f"logLik {ll_r:.6f}")
        finally:
            if worker is not None:
                worker.close()
    emit("")
    emit("Summary (median seconds; ratio = bayes_glmm / glmmTMB; target <= 0.5)")
    emit(f"  {'model':18s} {'ours':>8s} {'glmmTMB':>8s} {'ratio':>7s} {'dlogLik':>10s}")
    for key, mo, mr, ratio, llo, llr in rows:
        emit(f"  {key:18s} {mo:8.3f} {mr:8.3f} {ratio:7.3f} {llo - llr:10.2e}")
    finite = [x[3] for x in rows if np.isfinite(x[3])]
    if finite:
        emit(f"  ratio <= 0.5 on {sum(x <= 0.5 for x in finite)} of {len(finite)}; geometric mean ratio "
             f"{float(np.exp(np.mean(np.log(finite)))):.3f}; worst {max(finite):.3f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

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

import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import bayes_glmm as bg  # noqa: E402
from _peer_timing import reference_main  # noqa: E402

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


def main(argv=None) -> int:
    return reference_main(argv, doc=__doc__, name="hurdle", ref_path=REF_PATH, root=ROOT, keys=KEYS, r_worker=R_WORKER,
                          data=_data, ours=time_ours, describe=lambda key, r: f"{key:18s} {r['family']}: {r['formula']}, hu = {r['hu']}",
                          version=bg.__version__)


if __name__ == "__main__":
    raise SystemExit(main())

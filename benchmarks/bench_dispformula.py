"""Warm ML fit times of the dispersion-formula models against glmmTMB, same run, interleaved.

Run from the repository root::

    python3 benchmarks/bench_dispformula.py                    # every reference model, 5 repeats
    python3 benchmarks/bench_dispformula.py --repeats 9 --keys salamanders
    python3 benchmarks/bench_dispformula.py --out benchmarks/results/bench_dispformula_<date>.txt

Models: the fits of tests/reference/dispformula_reference.json (made by
tests/reference/make_reference_dispformula.R): gaussian Orthodont (``disp = ~ Sex``) and sleepstudy
(correlated random slope, ``disp = ~ Days``), NB2 Salamanders (``disp = ~ mined``), simulated Gamma
(random slope), Beta and Student-t models (``disp = ~ z``).

Timing as ``benchmarks/bench_covstruct.py``: one R process (``Rscript``, glmmTMB) stays open
for the whole run and fits on request, so R's start-up and package loading are never timed;
each model is fitted once untimed by both sides (warm-up), then ``--repeats`` times alternately.
A bayes_glmm fit is ``GLMM(formula, data, family, disp=...).fit_ml()`` (model construction
included, as glmmTMB's call includes its model frame); a glmmTMB fit is ``glmmTMB(formula,
dispformula, family = ...)`` with the reference's family.  Printed per model: both
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

REF_PATH = ROOT / "tests" / "reference" / "dispformula_reference.json"
KEYS = ("orthodont", "sleepstudy", "salamanders", "gamma", "beta", "student_t")
#: the reference's glmmTMB family -> ours
FAMILY = {"gaussian": "gaussian", "nbinom2": "negbinomial", "Gamma": "gamma", "beta": "beta", "t": "student_t"}

# The R side: reads the reference JSON, then answers one line per request on stdin.
#   "fit <key>"  -> "<key> <elapsed seconds> <logLik>"
R_WORKER = r"""
suppressMessages({ library(glmmTMB); library(jsonlite) })
args <- commandArgs(trailingOnly = TRUE)
ref <- fromJSON(args[1], simplifyVector = FALSE)
root <- args[2]
csort <- function(x) sort(unique(as.character(x)), method = "radix")
data_of <- function(key) {
  d <- read.csv(file.path(root, ref[[key]]$data_file), stringsAsFactors = FALSE)
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
  fam <- switch(r$family, gaussian = gaussian(), nbinom2 = nbinom2(), Gamma = Gamma(link = r$link),
                beta = beta_family(), t = t_family())
  t0 <- proc.time()[["elapsed"]]
  m <- glmmTMB(as.formula(r$formula), dispformula = as.formula(r$dispformula), data = d, family = fam)
  el <- proc.time()[["elapsed"]] - t0
  cat(sprintf("%s %.6f %.10f\n", key, el, as.numeric(logLik(m))))
  flush(stdout())
}
"""


def _data(ref: dict, key: str) -> pd.DataFrame:
    return pd.read_csv(ROOT / ref[key]["data_file"])


def time_ours(r: dict, data: pd.DataFrame) -> tuple[float, float]:
    fam = FAMILY[r["family"]]
    t0 = time.perf_counter()
    res = bg.GLMM(r["formula"], data, family=fam, link=r["link"] if fam == "gamma" else None,
                  disp=r["dispformula"]).fit_ml()
    return time.perf_counter() - t0, float(res.loglik)


def main(argv=None) -> int:
    return reference_main(argv, doc=__doc__, name="dispformula", ref_path=REF_PATH, root=ROOT, keys=KEYS, r_worker=R_WORKER,
                          data=_data, ours=time_ours, describe=lambda key, r: f"{key:18s} {r['family']}: {r['formula']}, disp = {r['dispformula']}",
                          version=bg.__version__)


if __name__ == "__main__":
    raise SystemExit(main())

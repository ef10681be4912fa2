"""Timing of the denominator-df tables (Satterthwaite, Kenward-Roger) against lmerTest/pbkrtest.

Run from the repository root::

    python3 benchmarks/bench_ddf.py               # 3 repeats
    python3 benchmarks/bench_ddf.py --repeats 5

Case: mlmRev's ``Exam`` (4,059 pupils in 65 schools), ``normexam ~ standLRT + (standLRT | school)``,
REML, exported through ``Rscript`` (a simulated data set of the same shape when R or mlmRev is
missing).  Each table is timed from a fresh fit object (the per-fit cache excluded), median of
``--repeats``; R's ``summary(m, ddf = ...)`` the same way when lmerTest and pbkrtest are installed.
"""
from __future__ import annotations

import argparse
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

FORMULA = "normexam ~ standLRT + (standLRT | school)"


def exam_data(tmp: Path) -> tuple[pd.DataFrame, str]:
    """mlmRev's Exam through Rscript, else a simulated data set of the same shape."""
    path = tmp / "exam.csv"
    if shutil.which("Rscript"):
        r = subprocess.run(["Rscript", "-e", f"library(mlmRev); data(Exam); write.csv(Exam, '{path}', "
                            f"row.names = FALSE)"], capture_output=True, text=True)
        if r.returncode == 0 and path.exists():
            d = pd.read_csv(path)
            d["school"] = d["school"].astype(str)
            return d, "mlmRev::Exam"
    rng = np.random.default_rng(20261207)
    g = rng.integers(0, 65, 4059)
    x = rng.normal(size=4059)
    b = rng.normal(size=(65, 2)) * [0.3, 0.1]
    y = b[g, 0] + (0.55 + b[g, 1]) * x + rng.normal(scale=0.75, size=4059)
    return pd.DataFrame({"normexam": y, "standLRT": x, "school": g.astype(str)}), "simulated (Exam's shape)"


def time_python(data: pd.DataFrame, repeats: int) -> dict:
    out = {}
    for ddf in ("satterthwaite", "kenward-roger"):
        ts = []
        for _ in range(repeats):
            res = bg.GLMM(FORMULA, data).fit_ml(reml=True)
            t0 = time.perf_counter()
            res.coef_table(ddf=ddf)
            ts.append(time.perf_counter() - t0)
        out[ddf] = statistics.median(ts)
    return out


def time_r(path: Path, repeats: int) -> dict | None:
    if not shutil.which("Rscript"):
        return None
    script = f"""suppressMessages({{library(lmerTest); library(pbkrtest)}})
d <- read.csv("{path}"); d$school <- factor(d$school)
m <- lmer({FORMULA}, d, REML = TRUE)
for (ddf in c("Satterthwaite", "Kenward-Roger")) {{
  ts <- replicate({repeats}, {{m2 <- update(m); system.time(summary(m2, ddf = ddf))[["elapsed"]]}})
  cat(ddf, median(ts), "\\n")
}}"""
    r = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    return {ln.split()[0].lower(): float(ln.split()[1]) for ln in r.stdout.splitlines() if ln.strip()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data, source = exam_data(Path(tmp))
        path = Path(tmp) / "data.csv"
        data.to_csv(path, index=False)
        py = time_python(data, args.repeats)
        r = time_r(path, args.repeats)
    print(f"{source}: {len(data)} rows, {data['school'].nunique()} groups, {FORMULA}, REML")
    for ddf, t in py.items():
        peer = f"   R {r[ddf]:.2f} s" if r and ddf in r else ""
        print(f"  coef_table(ddf={ddf!r:17}) {t:8.2f} s{peer}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

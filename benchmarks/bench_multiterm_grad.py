"""Warm-fit timing of a Poisson GLMM with three scalar terms (issue 21): lme4's grouseticks,
``TICKS ~ YEAR + sHEIGHT + (1 | INDEX) + (1 | BROOD) + (1 | LOCATION)``, 403 rows (data from
tests/reference/families_reference.json; INDEX = the row, an observation-level term).

    PYTHONPATH=. python benchmarks/bench_multiterm_grad.py    # median of 7 warm fits (after one)
"""
import json, statistics, time, warnings
from pathlib import Path
import numpy as np, pandas as pd
import bayes_glmm as bg
ref = json.load(open(Path(__file__).resolve().parents[1] / "tests" / "reference" / "families_reference.json"))
df = pd.DataFrame(ref["data"]["grouseticks"])
df["INDEX"] = [f"i{k}" for k in range(len(df))]
m = bg.GLMM("TICKS ~ YEAR + sHEIGHT + (1 | INDEX) + (1 | BROOD) + (1 | LOCATION)", df, family="poisson")
ts = []
for k in range(8):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = m.fit_ml()
    ts.append(time.perf_counter() - t0)
print(f"grouse3 poisson (1|INDEX)+(1|BROOD)+(1|LOCATION): median of 7 warm fits {statistics.median(ts[1:]):.3f} s "
      f"(first {ts[0]:.3f} s); logLik {r.fit.loglik:.6f}; theta {np.round(r.fit.theta, 6).tolist()}; "
      f"beta {np.round(r.fit.beta, 6).tolist()}; evals {r.optimizer.get('n_evals')}")

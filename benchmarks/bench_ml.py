"""Timing of bayes_glmm's ML path against lme4::glmer in the same run.

Run from the repository root::

    python3 benchmarks/bench_ml.py              # all cases, 3 repeats
    python3 benchmarks/bench_ml.py --quick      # skip the 1,000,000-row case
    python3 benchmarks/bench_ml.py --repeats 5 --cases toenail_agq25 verbagg
    python3 benchmarks/bench_ml.py --separation-check   # the data checks' share of a fit
    python3 benchmarks/bench_ml.py --cold-start --repeats 7   # fresh process: import + first fit vs lme4

Cases
-----
toenail_agq25     toenail, ``Response ~ Month * Treatment + (1 | ID)``, nAGQ = 25
epilepsy_slope    epilepsy long form, ``count ~ offset(log(weeks)) + followup * group
                  + (1 + followup | id)``, Laplace
bernoulli_1m      simulated 1,000,000 rows, 10,000 groups, ``y ~ x + (1 | g)``, Laplace
verbagg           lme4::VerbAgg, ``r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)``,
                  Laplace (a simulated data set of the same shape when R is missing)
epilepsy_nb2      epilepsy, ``count ~ offset(log(weeks)) + followup * group + (1 | id)``, NB2
                  (peers: glmmTMB ``nbinom2`` and lme4 ``glmer.nb``)
salamanders_zinb  glmmTMB's Salamanders (from tests/reference/families_reference.json),
                  ``count ~ spp + mined + (1 | site)``, zi ``~ spp + mined``, ZINB (peer: glmmTMB)
nb2_1m            simulated 1,000,000 rows, 10,000 groups, ``y ~ x + (1 | g)``, NB2, theta 2
                  (peer: glmmTMB)

``--separation-check`` instead times :func:`bayes_glmm.postfit.diagnostics.check_spec` (the
separation LPs) on ``y ~ x + z + f + (1 | g)`` (f a 4-level factor, Bernoulli; 10^4, 10^5 and,
without ``--quick``, 10^6 rows; without separation and with one level all successes) and
one ``fit_ml`` of each, which runs the check, and prints the check's share of the fit.

``--cold-start`` instead times whole processes, what a user waits for in a fresh process or
notebook kernel: ``python -c "import bayes_glmm as bg; <load sleepstudy>; bg.GLMM('Reaction ~
Days + (Days | Subject)', d).fit_ml()"`` against ``Rscript -e "library(lme4); lmer(Reaction ~
Days + (Days | Subject), sleepstudy)"`` (both REML), and the bare imports (``import
bayes_glmm`` against ``library(lme4)``) and interpreters for the breakdown; the runs are
interleaved (one of each command per round, the order rotating) and each reported as the
median of ``--repeats`` rounds.

Each case is timed as the median of ``--repeats`` fits (data preparation excluded), once in
Python and once in R via ``Rscript`` (skipped gracefully when R or lme4 is not installed).
Peak memory: Python's from tracemalloc during one extra fit (NumPy allocations included)
plus the process's max RSS; R's from ``gc()``'s "max used" (R heap only).
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
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import bayes_glmm as bg  # noqa: E402

CASES = {
    "toenail_agq25": dict(formula="Response ~ Month * Treatment + (1 | ID)", family="bernoulli", n_agq=25),
    "epilepsy_slope": dict(formula="count ~ offset(log(weeks)) + followup * group + (1 + followup | id)",
                           family="poisson", n_agq=1),
    "bernoulli_1m": dict(formula="y ~ x + (1 | g)", family="bernoulli", n_agq=1),
    "verbagg": dict(formula="r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
                    family="bernoulli", n_agq=1),
    "epilepsy_nb2": dict(formula="count ~ offset(log(weeks)) + followup * group + (1 | id)",
                         family="negbinomial", n_agq=1, peers=("glmmTMB", "glmer.nb")),
    "salamanders_zinb": dict(formula="count ~ spp + mined + (1 | site)", zi="~ spp + mined",
                             family="negbinomial", n_agq=1, peers=("glmmTMB",)),
    "nb2_1m": dict(formula="y ~ x + (1 | g)", family="negbinomial", n_agq=1, peers=("glmmTMB",)),
}

R_FAMILY = {"bernoulli": "binomial", "poisson": "poisson", "binomial": "binomial"}
TMB_FAMILY = {"negbinomial": "nbinom2", "nbinom1": "nbinom1", "poisson": "poisson",
              "gamma": "Gamma(link = 'log')", "beta": "beta_family()"}
BIG = ("bernoulli_1m", "nb2_1m")


def have_r() -> bool:
    if shutil.which("Rscript") is None:
        return False
    r = subprocess.run(["Rscript", "-e", "suppressMessages(library(lme4))"], capture_output=True)
    return r.returncode == 0


def simulate_bernoulli(n_rows=1_000_000, n_groups=10_000, seed=20240521) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, n_rows)
    x = rng.normal(size=n_rows)
    u = rng.normal(scale=0.8, size=n_groups)
    eta = -0.5 + 0.7 * x + u[g]
    y = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int8)
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})


def simulate_verbagg_shape(seed=1) -> pd.DataFrame:
    """316 persons x 24 items crossed, VerbAgg's design, for machines without R."""
    rng = np.random.default_rng(seed)
    idx = pd.MultiIndex.from_product([range(316), range(24)], names=["id", "item"]).to_frame(index=False)
    anger = rng.integers(11, 40, 316)
    gender = rng.choice(["F", "M"], 316, p=[0.77, 0.23])
    btype = np.array(["curse", "scold", "shout"])[(idx["item"].to_numpy() % 12) // 4]
    situ = np.where(idx["item"].to_numpy() < 12, "other", "self")
    eta = (0.2 + 0.057 * (anger[idx["id"]] - 20) + 0.32 * (gender[idx["id"]] == "M")
           - 1.06 * (btype == "scold") - 2.1 * (btype == "shout") - 1.05 * (situ == "self")
           + rng.normal(0, 1.34, 316)[idx["id"]] + rng.normal(0, 0.49, 24)[idx["item"]])
    return pd.DataFrame({"r2": (rng.random(len(idx)) < 1 / (1 + np.exp(-eta))).astype(int),
                         "Anger": anger[idx["id"]], "Gender": gender[idx["id"]], "btype": btype,
                         "situ": situ, "id": pd.Categorical(idx["id"]), "item": pd.Categorical(idx["item"])})


def export_verbagg(path: Path) -> bool:
    code = (f"suppressMessages(library(lme4)); d <- VerbAgg; d$r2 <- as.integer(d$r2 == 'Y'); "
            f"write.csv(d[, c('r2','Anger','Gender','btype','situ','id','item')], '{path}', row.names=FALSE)")
    return subprocess.run(["Rscript", "-e", code], capture_output=True).returncode == 0


def simulate_nb2(n_rows=1_000_000, n_groups=10_000, seed=20261202) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, n_rows)
    x = rng.normal(size=n_rows)
    mu = np.exp(0.3 + 0.4 * x + rng.normal(scale=0.5, size=n_groups)[g])
    y = rng.poisson(rng.gamma(2.0, mu / 2.0))
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})


def load_case(name: str, r_ok: bool, tmp: Path) -> tuple[pd.DataFrame, str]:
    if name == "nb2_1m":
        return simulate_nb2(), "simulated, seed 20261202"
    if name == "epilepsy_nb2":
        return bg.datasets.load("epilepsy"), "HSAUR3 epilepsy (long form)"
    if name == "salamanders_zinb":
        ref = json.loads((ROOT / "tests" / "reference" / "families_reference.json").read_text())
        return pd.DataFrame(ref["data"]["salamanders"]), "glmmTMB Salamanders"
    if name == "toenail_agq25":
        return bg.datasets.load("toenail"), "HSAUR3 toenail"
    if name == "epilepsy_slope":
        return bg.datasets.load("epilepsy"), "HSAUR3 epilepsy (long form)"
    if name == "bernoulli_1m":
        return simulate_bernoulli(), "simulated, seed 20240521"
    csv = tmp / "verbagg_src.csv"
    if r_ok and export_verbagg(csv):
        d = pd.read_csv(csv)
        for c in ("Gender", "btype", "situ", "id", "item"):
            d[c] = d[c].astype(str)
        return d, "lme4::VerbAgg"
    return simulate_verbagg_shape(), "simulated with VerbAgg's shape (R unavailable)"


def time_python(data: pd.DataFrame, case: dict, repeats: int, warmup: int = 0) -> dict:
    """Wall time of ``GLMM(...).fit_ml()`` (construction included), ``repeats`` times after
    ``warmup`` untimed fits (as each R peer's script fits once before its timed fits: in
    interleaved rounds the first fit after the other side's process runs on cold caches)."""
    times, res = [], None
    kw = dict(case.get("glmm_kwargs", {}))  # link, trials, hu, disp (bench_families.py)
    if case.get("zi"):
        kw["zi"] = case["zi"]
    for _ in range(warmup):
        bg.GLMM(case["formula"], data, family=case["family"], **kw).fit_ml(n_agq=case["n_agq"])
    for _ in range(repeats):
        t0 = time.perf_counter()
        model = bg.GLMM(case["formula"], data, family=case["family"], **kw)
        res = model.fit_ml(n_agq=case["n_agq"])
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    bg.GLMM(case["formula"], data, family=case["family"], **kw).fit_ml(n_agq=case["n_agq"])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"median_s": statistics.median(times), "times_s": times, "peak_traced_mb": peak / 2**20,
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "loglik": res.loglik, "fixef": res.fixef.round(5).to_dict()}


R_TEMPLATE = r"""
suppressMessages({{library(lme4); library(glmmTMB)}}); library(jsonlite)
d <- read.csv("{csv}")
for (c in {factors}) d[[c]] <- factor(d[[c]])
{extra}
f <- as.formula("{formula}")
fit1 <- function() {call}
fixef_of <- function(m) {{ b <- tryCatch(fixef(m), error = function(e) coef(m)); if (is.list(b)) b$cond else b }}
if (nrow(d) < 1e5) m <- fit1()  # warm-up (byte compiler, lazy loading); pointless for the 1M case
times <- numeric(0)
for (i in seq_len({repeats})) times <- c(times, system.time(m <- fit1())[["elapsed"]])
invisible(gc(reset = TRUE)); m <- fit1(); g <- gc()
cat(toJSON(list(median_s = median(times), times_s = times, max_used_mb = sum(g[, ncol(g)]),
                loglik = as.numeric(logLik(m)), fixef = as.list(round(fixef_of(m), 5))),
           auto_unbox = TRUE, digits = NA))
"""


def r_call(case: dict, peer: str) -> str:
    """The R fitting call of a peer (glmer, glmer.nb or glmmTMB) for a case; a case's own
    ``r_calls[peer]`` (bench_families.py: glmmTMB's t_family, betabinomial, clmm) wins."""
    if peer in case.get("r_calls", {}):
        return case["r_calls"][peer]
    if peer == "glmer":
        return f"glmer(f, data = d, family = {R_FAMILY[case['family']]}, nAGQ = {case['n_agq']})"
    if peer == "glmer.nb":
        return "glmer.nb(f, data = d)"
    zi = f", ziformula = {case['zi']}" if case.get("zi") else ""
    return f"glmmTMB(f, data = d, family = {TMB_FAMILY[case['family']]}{zi})"


def time_r(data: pd.DataFrame, case: dict, repeats: int, tmp: Path, name: str, peer: str = "glmer") -> dict | None:
    csv = tmp / f"{name}.csv"
    data.to_csv(csv, index=False)
    factors = [c for c in data.columns if isinstance(data[c].dtype, pd.CategoricalDtype)
               or data[c].dtype == object]
    extra = "d$followup <- as.logical(d$followup)" if "followup" in data.columns else ""
    extra += "\n" + case.get("r_extra", "")  # e.g. library(ordinal), an ordered factor
    script = R_TEMPLATE.format(csv=csv, factors="c(" + ", ".join(f"'{c}'" for c in factors) + ")",
                               extra=extra, formula=case["formula"], call=r_call(case, peer), repeats=repeats)
    path = tmp / f"{name}_{peer}.R"
    path.write_text(script)
    out = subprocess.run(["Rscript", str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        print(f"  R failed for {name}: {out.stderr.strip()[-400:]}")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def simulate_check_case(n_rows: int, separated: bool, seed=20261207) -> pd.DataFrame:
    """Bernoulli ``y ~ x + z + f + (1 | g)``, 1,000 groups; ``separated``: level d of f all 1."""
    rng = np.random.default_rng(seed)
    g, f = rng.integers(0, 1000, n_rows), rng.integers(0, 4, n_rows)
    x, z = rng.normal(size=n_rows), rng.uniform(size=n_rows)
    eta = -0.3 + 0.7 * x + 0.5 * z + 0.4 * (f == 2) + rng.normal(scale=0.5, size=1000)[g]
    y = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int8)
    if separated:
        y[f == 3] = 1
    return pd.DataFrame({"y": y, "x": x, "z": z, "f": pd.Categorical(np.array(list("abcd"))[f]),
                         "g": pd.Categorical(g)})


def separation_check(quick: bool, repeats: int) -> dict:
    """Time of the data checks (check_spec: the separation LPs) against one fit_ml."""
    import warnings

    from bayes_glmm.postfit.diagnostics import check_spec

    out = {}
    print(f"\n== data checks: y ~ x + z + f + (1 | g), Bernoulli  [check: median of {repeats}]")
    print(f"  {'rows':>9s} {'separated':>9s} {'check s':>8s} {'fit_ml s':>9s} {'share':>6s}  finding")
    for n in (10_000, 100_000) + (() if quick else (1_000_000,)):
        for sep in (False, True):
            model = bg.GLMM("y ~ x + z + f + (1 | g)", simulate_check_case(n, sep), family="bernoulli")
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                found = check_spec(model.spec)
                times.append(time.perf_counter() - t0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                model.fit_ml()
                fit = time.perf_counter() - t0
            check = statistics.median(times)
            kinds = ",".join(f.kind for f in found) or "none"
            print(f"  {n:9,d} {str(sep):>9s} {check:8.3f} {fit:9.2f} {check / fit:6.1%}  {kinds}", flush=True)
            out[f"{n}_{'separated' if sep else 'overlap'}"] = {"check_s": check, "fit_s": fit, "findings": kinds}
    return out


#: (label, argv) of the --cold-start commands; "fit" pairs are the comparison, the others the breakdown
_PY_FIT = ("import bayes_glmm as bg; d = bg.datasets.load('sleepstudy'); "
           "r = bg.GLMM('Reaction ~ Days + (Days | Subject)', d).fit_ml(); print(repr(float(r.loglik)))")
_R_FIT = ("suppressMessages(library(lme4)); m <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy); "
          "cat(format(as.numeric(logLik(m)), digits = 17))")
COLD_COMMANDS = (
    ("python: interpreter only", [sys.executable, "-c", "pass"]),
    ("python: import bayes_glmm", [sys.executable, "-c", "import bayes_glmm"]),
    ("python: import + first fit_ml", [sys.executable, "-c", _PY_FIT]),
    ("R: interpreter only", ["Rscript", "-e", "invisible(NULL)"]),
    ("R: library(lme4)", ["Rscript", "-e", "suppressMessages(library(lme4))"]),
    ("R: library(lme4) + first lmer", ["Rscript", "-e", _R_FIT]),
)


def cold_start(repeats: int, r_ok: bool) -> dict:
    """Whole-process wall times (median of ``repeats`` interleaved rounds) of a fresh import +
    first fit of sleepstudy's LMM, bayes_glmm against lme4, and of the bare imports."""
    # Byte code as an installed package has it (pip compiles .pyc files): cached in a scratch
    # directory by an untimed first round, also where PYTHONDONTWRITEBYTECODE is set
    cache = tempfile.mkdtemp(prefix="bg_coldstart_pyc_")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               PYTHONPYCACHEPREFIX=cache)
    cmds = [(lab, argv) for lab, argv in COLD_COMMANDS if r_ok or not lab.startswith("R:")]
    times = {lab: [] for lab, _ in cmds}
    out = {}
    print(f"\n== cold start: fresh process, sleepstudy Reaction ~ Days + (Days | Subject), REML  "
          f"[median of {repeats} interleaved rounds after one untimed round]")
    try:
        for i in range(repeats + 1):
            k = i % len(cmds)
            for lab, argv in cmds[k:] + cmds[:k]:  # rotate the order: no command always runs first
                t0 = time.perf_counter()
                run = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
                if i:
                    times[lab].append(time.perf_counter() - t0)
                if run.returncode != 0:
                    raise RuntimeError(f"{lab} failed: {run.stderr.strip()[-400:]}")
                if run.stdout.strip():
                    out[lab] = float(run.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    res = {lab: {"median_s": statistics.median(t), "times_s": t} for lab, t in times.items()}
    for lab, r in res.items():
        ll = f"; logLik {out[lab]:.6f}" if lab in out else ""
        print(f"  {lab:32s} median {r['median_s']:6.3f} s  (runs {', '.join(f'{t:.2f}' for t in r['times_s'])}){ll}")
    if r_ok:
        py, rr = res["python: import + first fit_ml"]["median_s"], res["R: library(lme4) + first lmer"]["median_s"]
        pyi, ri = res["python: import bayes_glmm"]["median_s"], res["R: library(lme4)"]["median_s"]
        print(f"  ratio import + first fit, bayes_glmm / lme4 = {py / rr:.2f}  ({py:.3f} s / {rr:.3f} s)")
        print(f"  ratio import only,        bayes_glmm / lme4 = {pyi / ri:.2f}  ({pyi:.3f} s / {ri:.3f} s)")
        res["ratio_fit"], res["ratio_import"] = py / rr, pyi / ri
        res["loglik"] = {"bayes_glmm": out.get("python: import + first fit_ml"),
                         "lme4": out.get("R: library(lme4) + first lmer")}
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="skip the 1,000,000-row case")
    ap.add_argument("--no-r", action="store_true", help="time bayes_glmm only")
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--separation-check", action="store_true",
                    help="time the data checks (separation LPs) against fit_ml instead of the cases")
    ap.add_argument("--cold-start", action="store_true",
                    help="whole-process time of import + first fit_ml against library(lme4) + lmer")
    args = ap.parse_args(argv)
    if args.cold_start:
        r_ok = not args.no_r and have_r()
        print(f"bayes_glmm {bg.__version__}; python {sys.version.split()[0]}; numpy {np.__version__}; "
              f"R/lme4: {'yes' if r_ok else 'not used'}; cpus {os.cpu_count()}")
        res = cold_start(args.repeats, r_ok)
        if args.json:
            args.json.write_text(json.dumps(res, indent=2))
        return 0
    if args.separation_check:
        res = separation_check(args.quick, args.repeats)
        if args.json:
            args.json.write_text(json.dumps(res, indent=2))
        return 0
    r_ok = not args.no_r and have_r()
    print(f"bayes_glmm {bg.__version__}; numpy {np.__version__}; R/lme4: {'yes' if r_ok else 'not used'}; "
          f"cpus {os.cpu_count()}; repeats {args.repeats}")
    results = {}
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        for name in args.cases:
            if args.quick and name in BIG:
                continue
            case = CASES[name]
            data, source = load_case(name, r_ok, tmp)
            print(f"\n== {name}: {case['formula']}  [{case['family']}, nAGQ={case['n_agq']}] "
                  f"{len(data):,} rows ({source})")
            py = time_python(data, case, args.repeats)
            print(f"  bayes_glmm: median {py['median_s']:.3f} s  (runs {', '.join(f'{t:.3f}' for t in py['times_s'])}); "
                  f"peak traced {py['peak_traced_mb']:.0f} MiB, max RSS {py['maxrss_mb']:.0f} MiB; "
                  f"logLik {py['loglik']:.4f}")
            peers = {}
            for peer in case.get("peers", ("glmer",)):
                rr = time_r(data, case, args.repeats, tmp, name, peer) if r_ok else None
                if rr is not None:
                    print(f"  {peer + ':':11s} median {rr['median_s']:.3f} s; R heap max used "
                          f"{rr['max_used_mb']:.0f} MB; logLik {rr['loglik']:.4f}")
                    print(f"  ratio bayes_glmm / {peer} = {py['median_s'] / max(rr['median_s'], 1e-9):.2f}")
                peers[peer] = rr
            first = next(iter(peers.values()))
            results[name] = {"source": source, "n": len(data), "python": py, "r": first, "peers": peers}
    if results:
        print("\nSummary (median seconds):")
        print(f"  {'case':16s} {'bayes_glmm':>11s} {'peer':>9s} {'peer s':>9s} {'ratio':>7s}")
        for name, r in results.items():
            for peer, rr in r["peers"].items():
                rt = rr["median_s"] if rr else float("nan")
                print(f"  {name:16s} {r['python']['median_s']:11.3f} {peer:>9s} {rt:9.3f} "
                      f"{r['python']['median_s'] / rt:7.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

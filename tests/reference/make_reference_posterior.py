"""Write ``tests/reference/reference_posterior.json``: reference posteriors by an independent NUTS.

Each case of :mod:`posterior_cases` (every family and link, scalar / correlated q = 2 and
q = 3 / uncorrelated / crossed / nested terms, weights, offsets, binomial trials, zero
inflation) is sampled with numpyro's NUTS on the JAX translation of the PyMC graph
(``sampler="numpyro"``) -- or nutpie on the same graph for the probit Bernoulli, which
PyTensor cannot translate to JAX -- and the posterior mean, SD and their Monte Carlo SEs
of every parameter are stored, with the data checksum, the priors, the settings, the seeds
and the versions.  ``tests/test_reference_posterior.py`` samples the same models with the
native sampler (C generated from :mod:`bayes_glmm.bayes.density`, NUTS in ``csrc/nuts.c``)
and compares: two independent implementations of density and sampler.

A reference run must itself be converged: the script refuses to store a case with R-hat
> 1.01, bulk ESS < 1,000 for any parameter, or divergent transitions.

Two cases (Gamma with the inverse and identity links) run numpyro with ``init_jitter=0.1``:
the default U(-1, 1) jitter of the starting point puts most chains where mu <= 0, and
numpyro's chains never leave a start whose log density is -inf.

Run from the repository root (about 30 minutes on a shared 2-core machine: numpyro
compiles each model and runs the chains one after the other on a CPU)::

    python tests/reference/make_reference_posterior.py                 # every case
    python tests/reference/make_reference_posterior.py --cases zip_log_corr2 gamma_log_scalar

Cases run again replace their entries; the others are kept.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.metadata as md
import json
import platform
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import posterior_cases as pc  # noqa: E402

OUT = HERE / "reference_posterior.json"


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("bayes_glmm", "numpy", "scipy", "pandas", "arviz", "pymc", "pytensor", "jax", "jaxlib",
                "numpyro", "nutpie"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    # the commit of the checkout the imported package comes from (the graph the reference
    # sampler ran on), and whether its bayes_glmm/ had uncommitted changes
    import bayes_glmm

    pkg = Path(bayes_glmm.__file__).resolve().parent
    try:
        git = ["git", "-C", str(pkg)]
        out["git_commit"] = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True,
                                           check=True).stdout.strip()
        out["git_dirty"] = bool(subprocess.run(git + ["status", "--porcelain", "--", "."], capture_output=True,
                                               text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        out["git_commit"] = out["git_dirty"] = None  # not a git checkout (an installed package)
    return out


def run_case(case: pc.Case) -> dict:
    """Sample one case with its reference sampler; the JSON entry."""
    df = pc.simulate(case)
    model = pc.build_model(case, df)
    s = pc.REFERENCE_SETTINGS
    seed = case.seed + 10_000  # not the native run's seed (independent runs)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = model.sample(draws=s["draws"], tune=s["tune"], chains=s["chains"], random_seed=seed,
                           sampler=case.reference, progressbar=False, log_likelihood=False, check=False,
                           **case.reference_kwargs)
    seconds = time.perf_counter() - t0
    idata = res.idata
    summ = pc.summarize(idata)
    div = int(idata.sample_stats["diverging"].values.sum()) if "diverging" in idata.sample_stats else 0
    worst_rhat = max(v["r_hat"] for v in summ.values())
    min_ess = min(v["ess_bulk"] for v in summ.values())
    problems = []
    if worst_rhat > 1.01:
        problems.append(f"R-hat {worst_rhat:.3f}")
    if min_ess < 1000:
        problems.append(f"min bulk ESS {min_ess:.0f}")
    if div:
        problems.append(f"{div} divergent transitions")
    if problems:
        raise RuntimeError(f"reference run of {case.name} not converged: {', '.join(problems)}")
    return {"formula": case.formula, "family": case.family, "link": case.link,
            "sampler": str(idata.posterior.attrs.get("sampler")), "settings": {**s, **case.reference_kwargs},
            "random_seed": seed,
            "data_seed": case.seed, "target_accept": float(idata.posterior.attrs.get("target_accept")),
            "seconds": round(seconds, 1), "max_r_hat": worst_rhat, "min_ess_bulk": min_ess,
            "versions": _versions(), "data_checksum": pc.data_checksum(df), "priors": pc.prior_reprs(model),
            "summary_columns": list(pc.SUMMARY_COLUMNS), "summary": pc.pack_summary(summ)}


def _dumps(ref: dict) -> str:
    """JSON with one line per parameter row (readable diffs, a fifth of ``indent=1``'s size)."""
    text = json.dumps(ref, indent=1)
    # collapse the innermost lists (summary rows, checksums) onto one line
    return re.sub(r"\[\n\s+([^\[\]{}]*?)\n\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", choices=list(pc.CASES), default=list(pc.CASES))
    a = ap.parse_args(argv)
    ref = json.loads(OUT.read_text()) if OUT.exists() else {"cases": {}}
    failed = []
    for name in a.cases:
        try:
            entry = run_case(pc.CASES[name])
        except RuntimeError as e:  # not converged: report, keep going, store nothing
            print(f"{name:35s} FAILED: {e}", flush=True)
            failed.append(name)
            continue
        ref["cases"][name] = entry
        print(f"{name:35s} {entry['sampler']:8s} {entry['seconds']:6.1f} s  max R-hat {entry['max_r_hat']:.4f}  "
              f"min bulk ESS {entry['min_ess_bulk']:.0f}", flush=True)
        # written after every case, so an interrupted run keeps what it finished
        ref["about"] = ("Reference posteriors for tests/test_reference_posterior.py, written by "
                        "tests/reference/make_reference_posterior.py; cases in tests/reference/posterior_cases.py")
        ref["written"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        ref["cases"] = dict(sorted(ref["cases"].items()))
        OUT.write_text(_dumps(ref))
    if failed:
        print(f"not stored (not converged): {' '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

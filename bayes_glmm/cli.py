"""Command line: ``bayes-glmm demo`` and ``bayes-glmm fit``.

``demo`` fits the toenail model of seed 002 by Laplace, AGQ(25) and NUTS, prints the
three side by side, and writes a trace and a forest plot.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def _demo(args) -> int:
    import matplotlib
    matplotlib.use("Agg")  # no screen needed
    import arviz as az
    import matplotlib.pyplot as plt

    import bayes_glmm as bg

    toenail = bg.datasets.load("toenail")
    formula = "Response ~ Month * Treatment + (1 | ID)"
    print(f"toenail: {len(toenail)} visits of {toenail['ID'].nunique()} patients\n{formula}  (bernoulli, logit)\n")
    model = bg.GLMM(formula, toenail, family="bernoulli")
    laplace = model.fit_ml()
    agq = model.fit_ml(n_agq=25)
    print("Maximum likelihood, adaptive Gauss-Hermite quadrature (25 nodes):")
    print(agq)
    print(f"\nNUTS: {args.chains} chains x ({args.tune} tune + {args.draws} draws), seed {args.seed}")
    post = model.sample(draws=args.draws, tune=args.tune, chains=args.chains, random_seed=args.seed)
    print(post.summary().round(3).to_string())
    table = {"Laplace": laplace.fixef, "AGQ(25)": agq.fixef, "NUTS mean": post.fixef}
    import pandas as pd
    print("\nFixed effects side by side:")
    print(pd.DataFrame(table).round(3).to_string())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    az.plot_trace(post.idata, var_names=["beta", "sd_ID"])
    plt.tight_layout()
    plt.savefig(out / "toenail_trace.png", dpi=90)
    plt.close("all")
    az.plot_forest(post.idata, var_names=["beta"], combined=True, hdi_prob=0.95)
    plt.tight_layout()
    plt.savefig(out / "toenail_forest.png", dpi=90)
    plt.close("all")
    print(f"\nwrote {out / 'toenail_trace.png'} and {out / 'toenail_forest.png'}")
    return 0


def _fit(args) -> int:
    import pandas as pd

    import bayes_glmm as bg

    data = bg.datasets.load(args.data) if args.data in bg.datasets.available() else pd.read_csv(args.data)
    model = bg.GLMM(args.formula, data, family=args.family, link=args.link)
    if args.method == "nuts":
        res = model.sample(draws=args.draws, tune=args.tune, chains=args.chains, random_seed=args.seed)
    else:
        res = model.fit_ml(n_agq=args.n_agq)
    print(res)
    return 0


def main(argv=None) -> int:
    """Entry point of the ``bayes-glmm`` console script."""
    p = argparse.ArgumentParser(prog="bayes-glmm", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="toenail: Laplace, AGQ(25) and NUTS side by side, plots to --out")
    d.add_argument("--draws", type=int, default=1000)
    d.add_argument("--tune", type=int, default=1000)
    d.add_argument("--chains", type=int, default=4)
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--out", default="bayes_glmm_demo")
    d.set_defaults(func=_demo)
    f = sub.add_parser("fit", help="fit a formula to a CSV file or a bundled dataset")
    f.add_argument("formula")
    f.add_argument("data", help="CSV path or bundled dataset name")
    f.add_argument("--family", default="gaussian")
    f.add_argument("--link", default=None)
    f.add_argument("--method", choices=["ml", "nuts"], default="ml")
    f.add_argument("--n-agq", type=int, default=1)
    f.add_argument("--draws", type=int, default=1000)
    f.add_argument("--tune", type=int, default=1000)
    f.add_argument("--chains", type=int, default=4)
    f.add_argument("--seed", type=int, default=1)
    f.set_defaults(func=_fit)
    args = p.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as e:  # user errors: one clear line, no traceback
        print(f"bayes-glmm: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

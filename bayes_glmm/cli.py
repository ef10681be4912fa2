"""Command line: ``bayes-glmm fit`` and ``bayes-glmm demo``.

``fit`` fits one formula to a CSV file or a bundled dataset, by maximum likelihood or NUTS,
prints the result and optionally writes its tables to a CSV or JSON file.  ``demo`` fits the
toenail model of seed 002 by Laplace, AGQ(25) and NUTS, prints the three side by side with
95% equal-tailed intervals, and writes a trace plot and a forest plot.

Errors are one line on stderr, ``bayes-glmm: error: ...``.  Exit codes: 0 success, 2 a usage
or input error (an unknown option, a missing or unreadable data file, a formula or argument
the model rejects), 1 the fit itself failed.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

__all__ = ["main"]

PROG = "bayes-glmm"

EXIT_OK, EXIT_FIT_FAILED, EXIT_USAGE = 0, 1, 2

FIT_EPILOG = """\
data:
  A CSV file (read with pandas.read_csv) or the name of a bundled dataset
  (cbpp, epilepsy, sleepstudy, toenail).

factors in a CSV file:
  A CSV file carries no column types: a column of integer codes (herd 1, 2, 3,
  period 1..4) is read as a number.  In the fixed part of the formula wrap
  such a column in C() to use it as a factor, e.g.
    bayes-glmm fit "cbind(incidence, size - incidence) ~ C(period) + (1 | herd)" \\
        cbpp.csv --family binomial
  Grouping factors after "|" are always treated as factors.  Text columns are
  factors without C().

output:
  --output FILE.csv writes the result tables stacked into one CSV, the first
  column "table" naming each row's table; --output FILE.json writes
  {"model": ..., "fit": ..., "tables": {name: [rows]}}.  ML fits give the tables
  "fixef" (estimates, SEs, test statistics) and "varcorr" (lme4's
  as.data.frame(VarCorr(fit))); NUTS fits give "summary" (mean, sd, 2.5%, 97.5%,
  R-hat, ESS per parameter) and "varcorr" (posterior means).

exit codes:
  0 success, 2 usage or input error, 1 the fit failed.

examples:
  bayes-glmm fit "Reaction ~ Days + (Days | Subject)" sleepstudy
  bayes-glmm fit "Reaction ~ Days + (Days | Subject)" sleepstudy --no-reml -o fit.json
  bayes-glmm fit "Response ~ Month * Treatment + (1 | ID)" toenail \\
      --family bernoulli --method nuts --chains 2 -o post.csv
"""


MAIN_EPILOG = """\
Run 'bayes-glmm fit --help' or 'bayes-glmm demo --help' for the options.
A CSV column of integer codes is read as a number: use C(column) in the
formula to make it a factor (details in 'bayes-glmm fit --help').
Exit codes: 0 success, 2 usage or input error, 1 the fit failed.
"""


def _fill(text: str) -> str:
    import textwrap
    return textwrap.fill(text, width=78)


class CLIError(Exception):
    """An error reported as one line; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage + message; we print one line like the rest
        raise CLIError(f"{message} (see '{self.prog} --help')", EXIT_USAGE)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _families() -> str:
    try:
        from .families import FAMILIES
        return ", ".join(FAMILIES)
    except Exception:  # pragma: no cover - help text only
        return "gaussian, bernoulli, binomial, poisson"


# ------------------------------------------------------------------------------------- fit
def _load_data(src: str):
    import pandas as pd

    from . import datasets

    path = Path(src)
    if path.is_file():
        try:
            data = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as e:
            raise CLIError(f"cannot read {src!r} as CSV: {str(e).strip().splitlines()[0]}") from e
        if data.empty:
            raise CLIError(f"{src!r} has a header but no data rows")
        return data
    names = datasets.available()
    if src in names:
        return datasets.load(src)
    if path.exists():
        raise CLIError(f"{src!r} is not a file; give a CSV file or a bundled dataset ({', '.join(names)})")
    raise CLIError(f"data file {src!r} not found, and it is not a bundled dataset ({', '.join(names)})")


def _check_output(out: str | None) -> str | None:
    """The output format, checked before fitting so that a typo costs no fit."""
    if out is None:
        return None
    path = Path(out)
    kind = path.suffix.lower().lstrip(".")
    if kind not in ("csv", "json"):
        raise CLIError(f"--output {out!r}: the file name must end in .csv or .json")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CLIError(f"--output {out!r}: directory {str(parent)!r} does not exist")
    return kind


def _tables(res, method: str) -> dict:
    if method == "nuts":
        return {"summary": res.summary().rename_axis("parameter").reset_index(),
                "varcorr": res.varcorr}
    return {"fixef": res.coef_table().rename_axis("term").reset_index(), "varcorr": res.varcorr}


def _fit_info(res, args) -> dict:
    if args.method == "nuts":
        return {"method": "NUTS", "chains": args.chains, "draws": args.draws, "tune": args.tune,
                "seed": args.seed, "n_draws": int(res.n_draws)}
    return {"method": res.method, "n_agq": int(res.n_agq), "reml": bool(res.reml),
            "nobs": int(res.nobs), "df": int(res.df), "converged": bool(res.converged),
            **{k: _number(getattr(res, k)) for k in ("loglik", "aic", "bic", "deviance")}}


def _number(v):
    v = float(v)
    return v if v == v and abs(v) != float("inf") else None  # JSON has no NaN / inf


def _write_output(out: str, kind: str, res, model, args) -> None:
    import pandas as pd

    tables = _tables(res, args.method)
    try:
        if kind == "csv":
            stacked = pd.concat([t.assign(table=name) for name, t in tables.items()], ignore_index=True)
            stacked = stacked[["table"] + [c for c in stacked.columns if c != "table"]]
            stacked.to_csv(out, index=False)
        else:
            doc = {"model": {"formula": args.formula, "data": args.data,
                             "family": model.family.name, "link": model.family.link.name},
                   "fit": _fit_info(res, args),
                   # to_json turns NaN into null and NumPy scalars into JSON numbers
                   "tables": {name: json.loads(t.to_json(orient="records"))
                              for name, t in tables.items()}}
            Path(out).write_text(json.dumps(doc, indent=2) + "\n")
    except OSError as e:
        raise CLIError(f"cannot write --output {out!r}: {e.strerror or e}") from e


def _fit(args) -> int:
    from .model import GLMM

    kind = _check_output(args.output)
    if args.method == "nuts":
        if args.reml is not None:
            raise CLIError("--reml/--no-reml apply to --method ml only")
        if args.n_agq != 1:
            raise CLIError("--n-agq applies to --method ml only")
    data = _load_data(args.data)
    try:
        model = GLMM(args.formula, data, family=args.family, link=args.link)
    except (ValueError, KeyError, TypeError) as e:
        raise CLIError(_one_line(e)) from e
    try:
        if args.method == "nuts":
            res = model.sample(draws=args.draws, tune=args.tune, chains=args.chains,
                               random_seed=args.seed, progressbar=not args.quiet)
        else:
            res = model.fit_ml(n_agq=args.n_agq, reml=args.reml)
    except ValueError as e:  # an option the model rejects (e.g. --reml for a GLMM)
        raise CLIError(_one_line(e)) from e
    except Exception as e:  # numerical failure of the fit itself
        raise CLIError(f"fitting failed: {type(e).__name__}: {_one_line(e)}", EXIT_FIT_FAILED) from e
    print(res)
    if kind is not None:
        _write_output(args.output, kind, res, model, args)
        print(f"\nwrote {args.output}")
    return EXIT_OK


# ------------------------------------------------------------------------------------- demo
def _trace_figure(post):
    """Trace plot of the fixed effects and the random-intercept SD, one legend entry per
    coefficient (arviz draws the four coefficients in one panel)."""
    import arviz as az

    axes = az.plot_trace(post.idata, var_names=["beta", "sd_ID"], legend=True)
    fig = axes.ravel()[0].figure
    fig.tight_layout()
    return fig


def _forest_figure(table, fits, names):
    """Forest plot of the comparison table: the intervals are the table's own."""
    from .postfit.comparison import plot_compare

    fig, ax = plot_compare(*fits, names=names, params="fixed", table=table)
    ax.set_title("toenail fixed effects: estimate and 95% equal-tailed interval")
    fig.tight_layout()
    return fig


def _demo(args) -> int:
    import matplotlib
    matplotlib.use("Agg")  # no screen needed
    import matplotlib.pyplot as plt
    import pandas as pd

    from . import datasets
    from .postfit.comparison import compare
    from .model import GLMM

    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CLIError(f"cannot create --out {args.out!r}: {e.strerror or e}") from e
    toenail = datasets.load("toenail")
    formula = "Response ~ Month * Treatment + (1 | ID)"
    print(f"toenail: {len(toenail)} visits of {toenail['ID'].nunique()} patients\n{formula}  (bernoulli, logit)\n")
    model = GLMM(formula, toenail, family="bernoulli")
    try:
        laplace = model.fit_ml()
        agq = model.fit_ml(n_agq=25)
        print("Maximum likelihood, adaptive Gauss-Hermite quadrature (25 nodes):")
        print(agq)
        print(f"\nNUTS: {args.chains} chains x ({args.tune} tune + {args.draws} draws), seed {args.seed}")
        post = model.sample(draws=args.draws, tune=args.tune, chains=args.chains,
                            random_seed=args.seed, progressbar=not args.quiet)
    except Exception as e:
        raise CLIError(f"fitting failed: {type(e).__name__}: {_one_line(e)}", EXIT_FIT_FAILED) from e
    print("95% intervals: equal-tailed, the 2.5% and 97.5% posterior quantiles (NUTS) and Wald "
          "estimate +- 1.96 SE (ML)")
    print(post.summary().round(3).to_string())

    fits, names = (laplace, agq, post), ["Laplace", "AGQ(25)", "NUTS"]
    table = compare(*fits, names=names, params="fixed", interval=0.95)
    print("\nFixed effects side by side:")
    print(table.pivot(index="param", columns="fit", values="estimate")
          .loc[list(model.spec.fixed_names), names].rename(columns={"NUTS": "NUTS mean"})
          .round(3).to_string())
    print("\n95% equal-tailed intervals (lower, upper), as in the forest plot:")
    iv = table.assign(interval=[f"{lo:7.3f}, {hi:7.3f}" for lo, hi in zip(table["lower"], table["upper"])])
    print(iv.pivot(index="param", columns="fit", values="interval")
          .loc[list(model.spec.fixed_names), names].to_string())

    _trace_figure(post).savefig(out / "toenail_trace.png", dpi=90)
    plt.close("all")
    _forest_figure(table, fits, names).savefig(out / "toenail_forest.png", dpi=90)
    plt.close("all")
    print(f"\nwrote {out / 'toenail_trace.png'} and {out / 'toenail_forest.png'}")
    return EXIT_OK


# ------------------------------------------------------------------------------------- main
def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"{PROG}: warning: {_one_line(message)}", file=sys.stderr if file is None else file)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) if str(e) else type(e).__name__
    return text


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=_fill(
                    "Generalized linear mixed models from lme4 formulas, by maximum likelihood "
                    "(REML/ML, Laplace, adaptive Gauss-Hermite quadrature) or NUTS."),
                epilog=MAIN_EPILOG, formatter_class=_Formatter)
    p.add_argument("--traceback", action="store_true",
                   help="on an error, show the full Python traceback instead of one line")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="{fit,demo}", parser_class=_Parser)

    f = sub.add_parser("fit", help="fit a formula to a CSV file or a bundled dataset",
                       description=_fill("Fit an lme4-style formula by maximum likelihood "
                                         "(default) or NUTS and print the result."),
                       epilog=FIT_EPILOG, formatter_class=_Formatter)
    f.add_argument("formula", help='lme4 formula in quotes, e.g. "y ~ x + (1 | g)"; integer-coded '
                                   "factor columns of a CSV need C(), see below")
    f.add_argument("data", help="CSV file, or a bundled dataset name (cbpp, epilepsy, sleepstudy, toenail)")
    f.add_argument("--family", default="gaussian",
                   help=f"response family: {_families()} (default: %(default)s)")
    f.add_argument("--link", default=None,
                   help="link function, e.g. logit, probit, cloglog, log, identity "
                        "(default: the family's canonical link)")
    f.add_argument("--method", choices=["ml", "nuts"], default="ml",
                   help="ml: REML/ML for gaussian models, Laplace or AGQ for GLMMs; "
                        "nuts: the posterior by NUTS (default: %(default)s)")
    f.add_argument("--reml", action=argparse.BooleanOptionalAction, default=None,
                   help="--reml fits by REML, --no-reml by maximum likelihood, like lmer's REML = "
                        "TRUE/FALSE; gaussian identity-link models with --method ml only "
                        "(default: REML for those models, ML otherwise)")
    f.add_argument("--n-agq", type=_positive_int, default=1, metavar="Q",
                   help="quadrature nodes for a GLMM, like glmer's nAGQ; 1 is the Laplace "
                        "approximation (default: %(default)s)")
    f.add_argument("--draws", type=_positive_int, default=1000,
                   help="NUTS: kept draws per chain (default: %(default)s)")
    f.add_argument("--tune", type=_positive_int, default=1000,
                   help="NUTS: warm-up iterations per chain (default: %(default)s)")
    f.add_argument("--chains", type=_positive_int, default=4,
                   help="NUTS: number of chains (default: %(default)s)")
    f.add_argument("--seed", type=int, default=1, help="NUTS: random seed (default: %(default)s)")
    f.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="also write the result tables to FILE.csv or FILE.json, by the extension "
                        "(default: print only)")
    f.add_argument("-q", "--quiet", action="store_true", help="no sampler progress bar")
    f.set_defaults(func=_fit)

    d = sub.add_parser("demo", help="toenail: Laplace, AGQ(25) and NUTS side by side, plots to --out",
                       description=_fill(
                           "Fit seed 002's toenail model (Response ~ Month * Treatment + (1 | ID), "
                           "bernoulli) by Laplace, AGQ(25) and NUTS; print the three side by side "
                           "with 95% equal-tailed intervals (the 2.5% and 97.5% posterior "
                           "quantiles; Wald for ML) and write toenail_trace.png and "
                           "toenail_forest.png (the same intervals) to --out."),
                       formatter_class=_Formatter)
    d.add_argument("--draws", type=_positive_int, default=1000,
                   help="kept draws per chain (default: %(default)s)")
    d.add_argument("--tune", type=_positive_int, default=1000,
                   help="warm-up iterations per chain (default: %(default)s)")
    d.add_argument("--chains", type=_positive_int, default=4, help="number of chains (default: %(default)s)")
    d.add_argument("--seed", type=int, default=1, help="random seed (default: %(default)s)")
    d.add_argument("--out", default="bayes_glmm_demo", metavar="DIR",
                   help="directory for the plots (default: %(default)s)")
    d.add_argument("-q", "--quiet", action="store_true", help="no sampler progress bar")
    d.set_defaults(func=_demo)
    return p


def main(argv=None) -> int:
    """Entry point of the ``bayes-glmm`` console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    show_traceback = "--traceback" in argv[:1]
    try:
        args = _parser().parse_args(argv)
        show_traceback = args.traceback
        with warnings.catch_warnings():
            if not show_traceback:  # warnings as one line each, like the errors
                warnings.showwarning = _show_warning
            return args.func(args)
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    except CLIError as e:
        if show_traceback:
            raise
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

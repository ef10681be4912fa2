"""The console script: `bayes-glmm fit` and a short `bayes-glmm demo`.

Exit codes: 0 success, 2 usage or input errors, 1 fitting failures; every error is one line
``bayes-glmm: error: ...`` on stderr.
"""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm import cli
from bayes_glmm.cli import main

SLEEP = "Reaction ~ Days + (Days | Subject)"


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("bayes-glmm: error: ") and "Traceback" not in err
    return lines[0]


def test_fit_ml_prints_glmer_like_summary(capsys):
    assert main(["fit", SLEEP, "sleepstudy"]) == 0
    out = capsys.readouterr().out
    assert "REML" in out and "Subject" in out and "Days" in out
    assert "251.405" in out  # lmer's (Intercept) estimate for sleepstudy


def test_user_error_is_one_line_exit_2(capsys):
    assert main(["fit", "Reaction ~ Dayz + (1 | Subject)", "sleepstudy"]) == 2
    err = one_error_line(capsys.readouterr().err)
    assert "Dayz" in err and "Days" in err


# ------------------------------------------------------------------------------- help
def test_help_shows_every_option_with_its_default(capsys):
    assert main(["fit", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for opt in ("--family", "--link", "--method", "--reml", "--no-reml", "--n-agq", "--draws",
                "--tune", "--chains", "--seed", "--output"):
        assert opt in out, opt
    for default in ("(default: gaussian)", "(default: ml)", "(default: 1000)", "(default: 4)",
                    "(default: 1)"):
        assert default in out, default
    assert "canonical link" in out
    # integer-coded factor columns of a CSV file need C()
    assert "C(period)" in out and "integer codes" in out
    assert "exit codes" in out


def test_top_level_and_demo_help(capsys):
    assert main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "fit" in out and "demo" in out and "C(column)" in out and "Exit codes" in out
    assert main(["demo", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: bayes_glmm_demo)" in out and "equal-tailed" in out


# ------------------------------------------------------------------------------- errors
def test_missing_csv_is_one_line_exit_2_in_a_real_process(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bayes_glmm.cli", "fit", "y ~ x + (1 | g)",
                           str(tmp_path / "nope.csv")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert "nope.csv" in line and "not found" in line and "sleepstudy" in line
    assert proc.stdout == ""


@pytest.mark.parametrize("argv, needle", [
    (["fit", SLEEP, "sleepstudy", "--famly", "poisson"], "unrecognized arguments"),
    (["fit", SLEEP, "sleepstudy", "--method", "mcmc"], "invalid choice"),
    (["fit", SLEEP, "sleepstudy", "--chains", "0"], "positive integer"),
    (["fit", SLEEP], "required"),
    ([], "required"),
    (["fit", SLEEP, "sleepstudy", "--family", "gauss"], "did you mean 'gaussian'"),
    (["fit", SLEEP, "sleepstudy", "--link", "logit"], "link 'logit'"),
    (["fit", "Reaction ~ Days + (1 | Subject", "sleepstudy"], "unbalanced parentheses"),
    (["fit", SLEEP, "sleepstudy", "--output", "out.txt"], ".csv or .json"),
    (["fit", SLEEP, "sleepstudy", "--output", "no/such/dir/out.csv"], "does not exist"),
    (["fit", SLEEP, "sleepstudy", "--method", "nuts", "--reml"], "--method ml only"),
    (["fit", "Response ~ Month + (1 | ID)", "toenail", "--family", "bernoulli", "--reml"],
     "gaussian identity-link"),
])
def test_usage_and_input_errors_are_one_line_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert needle in one_error_line(captured.err)
    assert "Fixed effects" not in captured.out  # nothing was fitted


def test_unreadable_csv_and_directory_are_input_errors(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert main(["fit", "y ~ x", str(empty)]) == 2
    assert "cannot read" in one_error_line(capsys.readouterr().err)
    assert main(["fit", "y ~ x", str(tmp_path)]) == 2
    assert "not a file" in one_error_line(capsys.readouterr().err)


def test_fitting_failure_is_one_line_exit_1(monkeypatch, capsys):
    def broken(self, *a, **k):
        raise FloatingPointError("random-effects system is not positive definite")
    monkeypatch.setattr(bg.GLMM, "fit_ml", broken)
    assert main(["fit", SLEEP, "sleepstudy"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "fitting failed: FloatingPointError: random-effects system" in line


def test_traceback_option_shows_the_traceback(tmp_path):
    with pytest.raises(cli.CLIError):
        main(["--traceback", "fit", "y ~ x", str(tmp_path / "nope.csv")])


# ------------------------------------------------------------------------------- --reml
def test_reml_and_no_reml(tmp_path, capsys):
    assert main(["fit", SLEEP, "sleepstudy", "--reml", "-o", str(tmp_path / "reml.json")]) == 0
    assert main(["fit", SLEEP, "sleepstudy", "--no-reml", "-o", str(tmp_path / "ml.json")]) == 0
    out = capsys.readouterr().out
    assert "REML criterion" in out or "REML" in out
    reml = json.loads((tmp_path / "reml.json").read_text())["fit"]
    ml = json.loads((tmp_path / "ml.json").read_text())["fit"]
    assert reml["reml"] is True and ml["reml"] is False
    assert ml["method"] == "ML" and reml["method"] == "REML"
    # lmer(Reaction ~ Days + (Days | Subject), REML = FALSE): logLik -875.9697
    assert ml["loglik"] == pytest.approx(-875.9697, abs=1e-3)
    assert reml["loglik"] == pytest.approx(-871.8141, abs=1e-3)


# ------------------------------------------------------------------------------- --output
def test_output_csv_stacks_the_tables(tmp_path, capsys):
    path = tmp_path / "fit.csv"
    assert main(["fit", SLEEP, "sleepstudy", "--output", str(path)]) == 0
    assert f"wrote {path}" in capsys.readouterr().out
    tab = pd.read_csv(path)
    assert tab.columns[0] == "table" and set(tab["table"]) == {"fixef", "varcorr"}
    fixef = tab[tab["table"] == "fixef"].dropna(axis=1, how="all").set_index("term")
    assert fixef.loc["(Intercept)", "Estimate"] == pytest.approx(251.405, abs=1e-3)
    assert fixef.loc["Days", "Std. Error"] == pytest.approx(1.5458, abs=1e-3)
    vc = tab[tab["table"] == "varcorr"]
    assert list(vc["grp"]) == ["Subject", "Subject", "Subject", "Residual"]
    assert vc["sdcor"].iloc[-1] == pytest.approx(25.5918, abs=1e-3)


def test_output_json_is_strict_json(tmp_path):
    path = tmp_path / "fit.JSON"  # the extension is case-insensitive
    assert main(["fit", SLEEP, "sleepstudy", "-o", str(path)]) == 0
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    doc = json.loads(text)
    assert doc["model"] == {"formula": SLEEP, "data": "sleepstudy", "family": "gaussian",
                            "link": "identity"}
    assert doc["fit"]["nobs"] == 180 and doc["fit"]["converged"] is True
    fixef = {r["term"]: r for r in doc["tables"]["fixef"]}
    assert fixef["Days"]["Estimate"] == pytest.approx(10.4673, abs=1e-3)
    assert doc["tables"]["varcorr"][0]["var2"] is None


def test_nuts_output_csv(tmp_path, capsys):
    path = tmp_path / "post.csv"
    argv = ["fit", SLEEP, "sleepstudy", "--method", "nuts", "--draws", "60", "--tune", "60",
            "--chains", "1", "--seed", "2", "-q", "-o", str(path)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "BayesResults" in captured.out
    # the diagnostics warning of so short a run is one line too
    assert all(line.startswith("bayes-glmm: warning: ") for line in captured.err.strip().splitlines())
    tab = pd.read_csv(path)
    assert set(tab["table"]) == {"summary", "varcorr"}
    summ = tab[tab["table"] == "summary"].set_index("parameter")
    assert {"(Intercept)", "Days", "sigma"} <= set(summ.index)
    assert {"mean", "2.5%", "97.5%", "r_hat"} <= set(summ.columns)
    assert 230 < summ.loc["(Intercept)", "mean"] < 270


# ------------------------------------------------------------------------------- CSV factors
def test_integer_csv_column_needs_C_to_be_a_factor(tmp_path, capsys):
    path = tmp_path / "cbpp.csv"
    bg.datasets.load("cbpp").to_csv(path, index=False)
    lhs = "cbind(incidence, size - incidence)"
    assert main(["fit", f"{lhs} ~ period + (1 | herd)", str(path), "--family", "binomial"]) == 0
    numeric = capsys.readouterr().out
    assert main(["fit", f"{lhs} ~ C(period) + (1 | herd)", str(path), "--family", "binomial"]) == 0
    factor = capsys.readouterr().out
    assert "C(period)2" not in numeric and "herd" in numeric
    assert "C(period)2" in factor and "C(period)4" in factor
    # glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial): -0.9923
    assert "-0.992" in factor


# ------------------------------------------------------------------------------- demo
def test_demo_short_run_writes_plots(tmp_path, capsys, monkeypatch):
    seen = {}
    real_trace, real_forest = cli._trace_figure, cli._forest_figure

    def trace(post):
        seen["post"] = post
        seen["trace"] = fig = real_trace(post)
        return fig

    def forest(table, fits, names):
        seen["table"], seen["names"] = table, names
        return real_forest(table, fits, names)

    monkeypatch.setattr(cli, "_trace_figure", trace)
    monkeypatch.setattr(cli, "_forest_figure", forest)
    code = main(["demo", "--draws", "150", "--tune", "150", "--chains", "1", "--seed", "3",
                 "--out", str(tmp_path), "-q"])
    assert code == 0
    out = capsys.readouterr().out
    assert "AGQ(25)" in out and "NUTS mean" in out
    assert "-1.61" in out  # the AGQ(25) intercept of seed 002's toenail table
    assert "equal-tailed" in out
    assert (tmp_path / "toenail_trace.png").stat().st_size > 10_000
    assert (tmp_path / "toenail_forest.png").stat().st_size > 5_000

    # the trace plot has a legend naming the four coefficients
    labels = {t.get_text() for ax in seen["trace"].axes if ax.get_legend()
              for t in ax.get_legend().get_texts()}
    assert {"(Intercept)", "Month", "Treatment", "Month:Treatment"} <= labels

    # the forest plot draws the printed table's intervals, and for NUTS those are the
    # summary's 2.5% / 97.5% quantiles: one interval kind throughout
    summ = seen["post"].summary()
    nuts = seen["table"][seen["table"]["fit"] == "NUTS"].set_index("param")
    names = list(nuts.index)
    np.testing.assert_allclose(nuts["lower"], summ.loc[names, "2.5%"], rtol=1e-10)
    np.testing.assert_allclose(nuts["upper"], summ.loc[names, "97.5%"], rtol=1e-10)
    assert (nuts["interval"] == "posterior 95%").all()
    lo = f"{nuts.loc['Month', 'lower']:7.3f}".strip()
    assert lo in out  # printed in the interval table

"""The console script: `bayes-glmm fit` and a short `bayes-glmm demo`."""

from bayes_glmm.cli import main


def test_fit_ml_prints_glmer_like_summary(capsys):
    assert main(["fit", "Reaction ~ Days + (Days | Subject)", "sleepstudy"]) == 0
    out = capsys.readouterr().out
    assert "REML" in out and "Subject" in out and "Days" in out
    assert "251.405" in out  # lmer's (Intercept) estimate for sleepstudy


def test_user_error_is_one_line_exit_2(capsys):
    assert main(["fit", "Reaction ~ Dayz + (1 | Subject)", "sleepstudy"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bayes-glmm: error:") and "Dayz" in err and "Days" in err


def test_demo_short_run_writes_plots(tmp_path, capsys):
    code = main(["demo", "--draws", "150", "--tune", "150", "--chains", "1", "--seed", "3",
                 "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "AGQ(25)" in out and "NUTS mean" in out
    assert "-1.61" in out  # the AGQ(25) intercept of seed 002's toenail table
    assert (tmp_path / "toenail_trace.png").stat().st_size > 10_000
    assert (tmp_path / "toenail_forest.png").stat().st_size > 5_000

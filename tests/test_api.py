"""The public names of the package resolve to what the docs say, whatever was imported first."""
import importlib
import sys

import bayes_glmm as bg


def test_lazy_exports_resolve_and_are_not_shadowed_by_submodules():
    # importing every submodule first must not replace a function with a module of the same name
    for mod in ("postfit.comparison", "postfit.variance", "postfit.marginal", "postfit.gee", "teaching", "postfit.plots", "priors", "ml.inference.lrt"):
        importlib.import_module(f"bayes_glmm.{mod}")
    for name in ("compare", "plot_compare", "lrt", "icc", "marginal_means", "marginal_effects",
                 "marginal_coefficients", "fit_gee", "Prior"):
        assert callable(getattr(bg, name)), name
    assert bg.teaching.__name__ == "bayes_glmm.teaching" and bg.plots.__name__ == "bayes_glmm.postfit.plots"
    assert set(bg.__all__) <= set(dir(bg))


def test_ml_path_does_not_import_pymc():
    import subprocess
    code = ("import sys, bayes_glmm as bg; m = bg.GLMM('Reaction ~ Days + (Days | Subject)', "
            "bg.datasets.load('sleepstudy')); m.fit_ml(); "
            "print('pymc' in sys.modules, 'pytensor' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-2:] == ["False", "False"]

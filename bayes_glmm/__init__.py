"""bayes_glmm: generalized linear mixed models with lme4 formulas, Bayesian and ML.

>>> import bayes_glmm as bg
>>> toenail = bg.datasets.load("toenail")
>>> model = bg.GLMM("Response ~ Month * Treatment + (1 | ID)", toenail, family="bernoulli")
>>> ml = model.fit_ml(n_agq=25)                     # doctest: +SKIP
>>> post = model.sample(random_seed=1)              # doctest: +SKIP
>>> bg.compare(ml, post, names=["AGQ(25)", "NUTS"])  # doctest: +SKIP
"""
from importlib import import_module

from . import datasets
from .families import Family, Link, get_family
from .model import GLMM

__version__ = "0.1.0"

# Public names served lazily: importing the package must not pull in PyMC, matplotlib or
# statsmodels until they are needed (the ML path stays NumPy/SciPy only).
_LAZY = {
    "Prior": "bayes_glmm.priors",
    "lrt": "bayes_glmm.ml.inference.lrt",
    "anova": "bayes_glmm.ml.inference.anova",
    "compare": "bayes_glmm.postfit.comparison",
    "plot_compare": "bayes_glmm.postfit.comparison",
    "loo_compare": "bayes_glmm.postfit.comparison",
    "icc": "bayes_glmm.postfit.variance",
    "marginal_means": "bayes_glmm.postfit.marginal",
    "marginal_effects": "bayes_glmm.postfit.marginal",
    "marginal_coefficients": "bayes_glmm.postfit.marginal",
    "fit_gee": "bayes_glmm.postfit.gee",
    "teaching": "bayes_glmm.teaching",
    "plots": "bayes_glmm.postfit.plots",
}

_MODULES = {"teaching", "plots"}  # served as modules, the rest as functions/classes

__all__ = ["GLMM", "Family", "Link", "get_family", "datasets", "__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        module = import_module(_LAZY[name])
        return module if name in _MODULES else getattr(module, name)
    raise AttributeError(f"module 'bayes_glmm' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))

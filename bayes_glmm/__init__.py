"""bayes_glmm: generalized linear mixed models with lme4 formulas, Bayesian and ML.

>>> import bayes_glmm as bg
>>> toenail = bg.datasets.load("toenail")
>>> model = bg.GLMM("Response ~ Month * Treatment + (1 | ID)", toenail, family="bernoulli")
>>> ml = model.fit_ml(n_agq=25)                     # doctest: +SKIP
>>> post = model.sample(random_seed=1)              # doctest: +SKIP
"""
from . import datasets
from .families import Family, Link, get_family
from .model import GLMM

__version__ = "0.1.0"

__all__ = ["GLMM", "Prior", "Family", "Link", "get_family", "datasets", "lrt", "__version__"]


def __getattr__(name):
    # lrt lives in the ML path; imported lazily so `import bayes_glmm` stays light
    if name == "lrt":
        from .ml.lrt import lrt
        return lrt
    if name == "Prior":
        from .priors import Prior
        return Prior
    raise AttributeError(f"module 'bayes_glmm' has no attribute {name!r}")

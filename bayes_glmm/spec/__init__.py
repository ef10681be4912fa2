"""Text and data to the immutable model specification: ``formula`` (parse lme4 syntax) ->
``design`` (model matrices, checks in ``validate``, design ``scaling``) -> ``model_spec``
(:class:`ModelSpec`), shared by the Bayesian (:mod:`bayes_glmm.bayes`) and ML
(:mod:`bayes_glmm.ml`) paths.  No PyMC and no optimizer here."""
from .model_spec import ModelSpec, NewDesign, RandomTerm, py_name

__all__ = ["ModelSpec", "NewDesign", "RandomTerm", "py_name"]

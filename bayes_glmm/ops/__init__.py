"""The math namespaces every single definition is written against.

:data:`~bayes_glmm.ops.numpy_ops.NUMPY_OPS` evaluates a formula on arrays;
:data:`~bayes_glmm.ops.dual.ND_OPS` on forward-mode dual numbers (value and derivatives),
which is how the NumPy sampler and the ML path's analytic gradients differentiate the one
definition of a log-density, a prior or a covariance structure's Lambda(theta).  The C
emitter (:mod:`bayes_glmm.bayes.codegen`) and PyTensor's namespace
(:data:`bayes_glmm.bayes.graph.PT_OPS`) live with the Bayesian path, which alone may compile
code or import PyMC.
"""

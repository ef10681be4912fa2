"""An approximate posterior in seconds: nested Laplace approximations and adaptive quadrature.

The marginal posterior of the variance and dispersion parameters by the Laplace approximation
(random effects by the ML path's PIRLS and sparse factor, coefficients by a second Laplace
step, as R's ``aghq``), integrated by adaptive Gauss-Hermite quadrature (importance sampling
above four of them); the fixed and random effects' posteriors from the mixture of each node's
conditional Gaussians.  NumPy/SciPy only (:mod:`bayes_glmm.ml`); the result is the
:class:`~bayes_glmm.bayes.results.BayesResults` of ``sample()``.

``coords``            the hyperparameters, the coefficients, their log prior and the map to the ML path
``laplace_marginal``  the joint mode and the nested Laplace step per node
``quadrature``        the design over the hyperparameters and draws from their marginal
``fit``               :func:`fit_inla`: the steps, the draws, the InferenceData
"""
from .fit import fit_inla

__all__ = ["fit_inla"]

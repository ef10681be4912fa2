"""The Bayesian path: the PyMC graph, NUTS samplers and posterior results.

The only subpackage importing PyMC, nutpie, a C compiler's output or JAX; the pipeline reads

``graph``        the model: a PyMC graph from a :class:`~bayes_glmm.spec.model_spec.ModelSpec`
``layout``       a level's random effects ``b = diag(sd) L u`` and ``log p(u)``, written once
``dual``         forward-mode dual numbers on arrays and the one table of derivative rules
``density``      the same log-density in NumPy (``sampler="numpy"``), graph coordinates
``codegen``      C generated from the single definitions (families, priors, LKJ/CPC, layout)
                 by forward-mode differentiation on symbolic dual numbers
``native``       that C assembled per model, compiled and sampled by ``csrc/nuts.c`` (``"native"``)
``adaptation``   Stan's warm-up windows as a pure function, handed to ``csrc/nuts.c``
``failures``     the engine's return codes as :class:`SamplerError`, naming the parameters
``build``        its compilation: a private, verified, self-healing cache; no FP side effects
``jax_backend``  numpyro's NUTS on JAX code generated from the graph (``"numpyro"``)
``sampling``     :func:`sample`: sampler choice, defaults, diagnostics
``pointwise``    the tidy posterior, log-likelihood and posterior predictive draws
``results``      :class:`BayesResults` (same accessors as the ML results)
"""
from .failures import SamplerError
from .pointwise import posterior_predictive
from .results import BayesResults
from .sampling import AUTO_SAMPLER, SAMPLERS, default_target_accept, diagnose, sample, summary_var_names

__all__ = ["PT_OPS", "build_pymc_model", "sample", "prior_predictive", "posterior_predictive",
           "diagnose", "summary_var_names", "default_target_accept", "SAMPLERS", "AUTO_SAMPLER",
           "BayesResults", "SamplerError"]

#: served from :mod:`.graph` on first use: importing this package (and a native or NumPy
#: ``sample()``, which label their draws from :mod:`.params`) must not import PyMC and PyTensor,
#: 1-5 s in a fresh process
_GRAPH_NAMES = ("PT_OPS", "build_pymc_model", "prior_predictive")


def __getattr__(name):
    if name in _GRAPH_NAMES:
        from . import graph

        return getattr(graph, name)
    raise AttributeError(f"module 'bayes_glmm.bayes' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_GRAPH_NAMES))

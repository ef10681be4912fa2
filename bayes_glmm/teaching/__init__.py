"""Teaching tools: pooling and shrinkage, prior sensitivity, prior predictive checks,
centered versus non-centered parametrizations, and ranking "sensitive individuals".

Every function is pure (inputs are never modified) and every random one takes
``random_seed``; the matching plots live in :mod:`bayes_glmm.postfit.plots`.
"""
from .funnel import FunnelResult, funnel_demo, simulate_funnel_data
from .pooling import fit_glm, pooling
from .prior_predictive import PriorPredictiveSummary, prior_predictive_summary, response_statistics
from .ranking import rank_groups, simulate_asthma
from .sensitivity import SensitivityResult, default_sd_priors, prior_pdf, prior_sensitivity

__all__ = [
    "pooling", "fit_glm",
    "prior_sensitivity", "default_sd_priors", "prior_pdf", "SensitivityResult",
    "prior_predictive_summary", "response_statistics", "PriorPredictiveSummary",
    "funnel_demo", "simulate_funnel_data", "FunnelResult",
    "rank_groups", "simulate_asthma",
]

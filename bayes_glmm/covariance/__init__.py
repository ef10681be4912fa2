"""Random-effect covariance structures: one module per structure, and the registry.

============  ==============================================  ========================
keyword       covariance of a level's q effects                parameters (ML theta)
============  ==============================================  ========================
``us``        unrestricted (``(x | g)``, the default)          q(q+1)/2 (lme4's theta)
``diag``      independent, one SD each (``(x || g)``)          q SDs
``cs``        one SD each, one common correlation              q SDs + 1
``ar1``       one SD, correlation rho^|i-j| (time factors)      1 SD + 1
``hetar1``    one SD each, correlation rho^|i-j|                q SDs + 1
``toep``      one SD each, one correlation per lag             q SDs + (q - 1)
============  ==============================================  ========================

Each is a :class:`~bayes_glmm.covariance.base.CovStructure`; a new one is a module with a
subclass and one line in :data:`STRUCTURES` (or :func:`register_structure`).
"""
from __future__ import annotations

import copyreg

from .ar1 import AR1_STRUCTURE
from .base import CovStructure
from .compound import COMPOUND_SYMMETRY
from .diagonal import DIAGONAL
from .hetar1 import HETAR1
from .layout import (chol_to_theta, corr_pairs, cov_to_sd_corr, theta_lower, theta_pairs, theta_start,
                     theta_to_chol, varcorr_frame)
from .toeplitz import TOEPLITZ
from .unstructured import UNSTRUCTURED

__all__ = ["CovStructure", "STRUCTURES", "get_structure", "register_structure", "default_structure",
           "theta_pairs", "theta_to_chol", "chol_to_theta", "theta_lower", "theta_start",
           "cov_to_sd_corr", "varcorr_frame", "corr_pairs"]

#: formula keyword -> structure (the registry)
STRUCTURES: dict = {s.name: s for s in (UNSTRUCTURED, DIAGONAL, COMPOUND_SYMMETRY, AR1_STRUCTURE, HETAR1,
                                         TOEPLITZ)}


def get_structure(name: str) -> CovStructure:
    """The registered structure called ``name`` (``"us"``, ``"diag"``, ``"cs"``, ``"ar1"``, ``"toep"``)."""
    try:
        return STRUCTURES[name]
    except KeyError:
        raise ValueError(f"unknown covariance structure {name!r}; choose one of {sorted(STRUCTURES)}") from None


def register_structure(structure: CovStructure) -> CovStructure:
    """Add a structure to the registry (its :attr:`~CovStructure.name` becomes a formula keyword)."""
    if not isinstance(structure, CovStructure) or not structure.name.isidentifier():
        raise ValueError("a covariance structure must be a CovStructure instance with an identifier name")
    STRUCTURES[structure.name] = structure
    copyreg.pickle(type(structure), _by_name)
    return structure


def _by_name(structure: CovStructure):
    # one instance per structure: unpickling returns the registered one.  The registry, not
    # base.py, says so: base.py importing the registry would be an import cycle.
    return get_structure, (structure.name,)


for _s in STRUCTURES.values():
    copyreg.pickle(type(_s), _by_name)
del _s


def default_structure(correlated: bool, q: int) -> CovStructure:
    """``us`` for ``(x | g)`` with q > 1, ``diag`` for ``(x || g)`` and scalar terms."""
    return UNSTRUCTURED if (correlated and q > 1) else DIAGONAL

"""Small helpers shared by the teaching tools (pure functions, no PyMC)."""
from __future__ import annotations

import numpy as np

from ..spec.model_spec import ModelSpec

__all__ = ["spec_of", "find_term", "coef_index", "posterior_draws", "term_draws"]


def spec_of(model) -> ModelSpec:
    """The :class:`ModelSpec` of a GLMM, a fit result or a spec itself."""
    if isinstance(model, ModelSpec):
        return model
    spec = getattr(model, "spec", None)
    if isinstance(spec, ModelSpec):
        return spec
    raise ValueError(
        f"expected a bayes_glmm.GLMM, a fit result or a ModelSpec; got {type(model).__name__}"
    )


def find_term(spec: ModelSpec, term=None, coef=None):
    """(index, RandomTerm) for a term given by name, identifier or grouping factor.

    Parameters
    ----------
    spec : ModelSpec
    term : str, optional
        ``RandomTerm.name`` (``"ID"``, ``"g.1"``), ``.ident`` or ``.group``.  Default:
        the first term (that has ``coef``, when given).
    coef : str, optional
        Coefficient the term must contain; disambiguates several terms on one group.

    Raises
    ------
    ValueError
        When the model has no random terms or no term matches, listing the names.
    """
    if not spec.terms:
        raise ValueError("the model has no random-effects term; add one such as (1 | group)")
    cands = []
    for k, t in enumerate(spec.terms):
        if term is None or term in (t.name, t.ident, t.group):
            cands.append((k, t))
    if coef is not None:
        with_coef = [(k, t) for k, t in cands if coef in t.coef_names]
        if cands and not with_coef:
            have = {t.name: list(t.coef_names) for _, t in cands}
            raise ValueError(f"coef={coef!r} is not a random coefficient of term(s) {have}; "
                             f"choose one of those coefficient names")
        cands = with_coef
    if not cands:
        names = [t.name for t in spec.terms]
        raise ValueError(f"term={term!r} matches no random-effects term; the model's terms are {names}")
    return cands[0]


def coef_index(term, coef=None) -> int:
    """Position of ``coef`` in ``term.coef_names`` (default: the first coefficient)."""
    if coef is None:
        return 0
    names = list(term.coef_names)
    if coef not in names:
        raise ValueError(f"coef={coef!r} is not in term {term.name!r}; its coefficients are {names}")
    return names.index(coef)


def _idata(obj):
    idata = getattr(obj, "idata", obj)
    if not hasattr(idata, "posterior"):
        raise ValueError(
            f"expected BayesResults (from model.sample) or arviz.InferenceData with a posterior "
            f"group; got {type(obj).__name__}"
        )
    return idata


def posterior_draws(obj, var: str, group: str = "posterior") -> np.ndarray:
    """Draws of one variable with chains and draws flattened: shape (n_draws, ...)."""
    idata = _idata(obj) if group == "posterior" else getattr(obj, "idata", obj)
    if not hasattr(idata, group):
        raise ValueError(f"the InferenceData has no {group!r} group")
    ds = getattr(idata, group)
    if var not in ds:
        raise ValueError(f"variable {var!r} is not in the {group} group; it has {sorted(ds.data_vars)}")
    a = np.asarray(ds[var].values, dtype=float)
    return a.reshape((-1,) + a.shape[2:])


def term_draws(obj, term, group: str = "posterior") -> np.ndarray:
    """Random-effect draws ``b_<ident>`` of one term, shape (n_draws, n_levels, q)."""
    b = posterior_draws(obj, f"b_{term.ident}", group)
    if b.ndim == 2:  # a (level,) variable for q = 1
        b = b[:, :, None]
    return b

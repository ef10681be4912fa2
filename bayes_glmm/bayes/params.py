"""Names, dims and coords of the Bayesian model's variables, read from the parameter layout
without building the PyMC graph.

:func:`~bayes_glmm.bayes.graph.build_pymc_model` creates one PyMC variable per entry of
:func:`param_layout`, in the same order, with the same dims, on the coords of
:func:`model_coords` (``tests/test_bayes_params.py`` holds the two equal for every kind of
term, family and parametrization).  The native and NumPy samplers need only these names to
label their draws, so they no longer build the graph (a fifth of a second for a small model,
more with many terms) before sampling.

The variables, in the graph's order (``k`` = :attr:`RandomTerm.ident`):

* fixed effects: the free slope blocks of :func:`~bayes_glmm.priors.slope_blocks`
  (``slopes``, dim ``slope``, or one ``slope_<name>`` each), the free ``Intercept``, the
  Deterministic ``beta`` (dim ``coef``);
* per random term (:func:`term_params`, the one place a covariance structure's variables are
  named): the SDs, the structure's correlation parameters ``cpc_k`` and correlations
  ``corr_k`` (dim ``k_corr``), the effects;
* the family's auxiliary parameters (``family.aux_params``), one scalar each;
* zero inflation: ``zi_slopes`` (dim ``zi_slope``) or ``zi_slope_<name>``, ``zi_Intercept``,
  the Deterministic ``beta_zi`` (dim ``zi_coef``);
* a dispersion formula (``disp=``; the family's first auxiliary parameter then has no variable
  of its own): ``disp_slopes`` (dim ``disp_slope``) or ``disp_slope_<name>``, ``disp_Intercept``,
  the Deterministic ``beta_disp`` (dim ``disp_coef``);
* the observed ``y`` (dim ``obs``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..covariance import corr_pairs
from ..priors import disp_slope_blocks, slope_blocks, zi_slope_blocks
from ..spec.model_spec import ModelSpec
from .layout import HIERARCHICAL, effects_name, mode_of

__all__ = ["Param", "ParamLayout", "param_layout", "model_coords", "term_params", "term_coords"]

FREE, DETERMINISTIC, OBSERVED = "free", "deterministic", "observed"


@dataclass(frozen=True)
class Param:
    """One variable of the model.

    Attributes
    ----------
    name : str
        The PyMC name (and the ``idata`` name where it is kept).
    dims : tuple of str
        Its named dims (``()``: none; a correlated term's ``cpc_<ident>`` has a shape but no
        dims, as in the graph).
    role : {"free", "deterministic", "observed"}
    """

    name: str
    dims: tuple = ()
    role: str = FREE


@dataclass(frozen=True)
class ParamLayout:
    """The model's variables (:class:`Param`, in the graph's order) and its coords."""

    params: tuple
    coords: dict

    @property
    def names(self) -> list:
        """Every variable's name (as ``pymc.Model.named_vars``, without the value variables)."""
        return [p.name for p in self.params]

    @property
    def free(self) -> list:
        """Names of the free variables (as ``pymc.Model.free_RVs``), in order."""
        return [p.name for p in self.params if p.role == FREE]

    @property
    def deterministics(self) -> list:
        """Names of the Deterministic variables, in order."""
        return [p.name for p in self.params if p.role == DETERMINISTIC]

    @property
    def dims(self) -> dict:
        """Variable name -> dims, for the variables that have dims (as
        ``pymc.Model.named_vars_to_dims``)."""
        return {p.name: p.dims for p in self.params if p.dims}


def _shared_sds(term) -> bool:
    """The structure gives fewer SDs than coefficients (``ar1``: one), mapped by ``sd_index``."""
    cov, q = term.cov, term.q
    return cov.n_sd(q) != q or not np.array_equal(np.asarray(cov.sd_index(q)), np.arange(q))


def _n_corr(term) -> int:
    """The structure's number of correlation parameters (0: no ``cpc``/``corr`` variables)."""
    return int(term.cov.n_corr(term.q))


def term_coords(term) -> dict:
    """The coords one random term adds: its levels, coefficients, correlation pairs (when the
    structure has correlation parameters) and the labels of shared SDs."""
    k, cn = term.ident, list(term.coef_names)
    out = {f"{k}_level": [str(v) for v in term.levels], f"{k}_coef": cn}
    if _n_corr(term) > 0:
        out[f"{k}_corr"] = [f"{cn[j]}, {cn[i]}" for j, i in corr_pairs(term.q)]
    if _shared_sds(term):
        out[f"{k}_sd"] = term.cov.theta_names(cn)[:term.cov.n_sd(term.q)]
    return out


def term_params(term, priors: dict, centered) -> list:
    """The variables of one random term, in the graph's order.

    Parameters
    ----------
    term : RandomTerm
        Its covariance structure is read from ``term.cov``.
    priors : dict
        Resolved priors (a ``var_<ident>`` key puts the prior on the variances).
    centered : bool or str
        The term's parametrization (:data:`~bayes_glmm.bayes.layout.PARAMETRIZATIONS`).

    Returns
    -------
    list of Param
        The SDs (``sd_k``; free ``var_k`` with a Deterministic ``sd_k``, or free ``sdpar_k``
        (dim ``k_sd``) when the structure shares SDs), ``cpc_k`` and ``corr_k`` when the
        structure has correlation parameters, then the effects: free ``u_k`` / ``b_k`` /
        ``z_k`` (:func:`~bayes_glmm.bayes.layout.effects_name`) and the Deterministic
        ``b_k`` unless ``b_k`` itself is free.
    """
    mode = mode_of(centered)
    k = term.ident
    cf, eff = (f"{k}_coef",), (f"{k}_level", f"{k}_coef")
    out = []
    if f"var_{k}" in priors:
        out += [Param(f"var_{k}", cf), Param(f"sd_{k}", cf, DETERMINISTIC)]
    elif _shared_sds(term):
        out += [Param(f"sdpar_{k}", (f"{k}_sd",)), Param(f"sd_{k}", cf, DETERMINISTIC)]
    else:
        out.append(Param(f"sd_{k}", cf))
    if _n_corr(term) > 0:
        out += [Param(f"cpc_{k}"), Param(f"corr_{k}", (f"{k}_corr",), DETERMINISTIC)]
        # a correlated term is centred (free b) or not; it has no hierarchical centring
        mode = bool(mode)
    elif mode == HIERARCHICAL and (term.q != 1):
        raise ValueError(f"term {term.name!r}: hierarchical centring needs a scalar term and an intercept")
    free = effects_name(mode, k)
    out.append(Param(free, eff))
    if free != f"b_{k}":
        out.append(Param(f"b_{k}", eff, DETERMINISTIC))
    return out


def _coefficient_params(names, blocks, vec: str, vec_dim: str, intercept: str, user: str, user_dim: str) -> list:
    out = [Param(name, (vec_dim,) if name == vec else ()) for name, _ in blocks]
    if "(Intercept)" in list(names):
        out.append(Param(intercept))
    return out + [Param(user, (user_dim,), DETERMINISTIC)]


def model_coords(spec: ModelSpec) -> dict:
    """The model's coords (``pymc.Model(coords=...)`` of the graph): ``coef``, ``slope``,
    ``obs``, each term's (:func:`term_coords`), ``zi_coef`` and ``zi_slope``."""
    names = list(spec.fixed_names)
    ri = spec.row_index
    coords = {"coef": names, "slope": [n for n in names if n != "(Intercept)"],
              "obs": np.asarray(ri) if ri is not None and len(ri) == spec.n else np.arange(spec.n)}
    for t in spec.terms:
        coords.update(term_coords(t))
    if spec.has_zi:
        lab = spec.zi_label  # "zi", or a hurdle's "hu"
        coords[f"{lab}_coef"] = list(spec.zi_names)
        coords[f"{lab}_slope"] = [n for n in spec.zi_names if n != "(Intercept)"]
    if spec.has_disp:
        coords["disp_coef"] = list(spec.disp_names)
        coords["disp_slope"] = [n for n in spec.disp_names if n != "(Intercept)"]
    return coords


def param_layout(spec: ModelSpec, priors: dict, centered: dict | bool = False) -> ParamLayout:
    """The variables and coords of :func:`~bayes_glmm.bayes.graph.build_pymc_model` for the
    same arguments, without PyMC.

    Parameters
    ----------
    spec : ModelSpec
    priors : dict
        Output of :func:`bayes_glmm.priors.resolve_priors`.
    centered : dict or bool
        Term name -> parametrization (:func:`bayes_glmm.priors.resolve_centered`), or one
        bool for all terms.

    Returns
    -------
    ParamLayout
    """
    if isinstance(centered, (bool, np.bool_)):
        centered = {t.name: bool(centered) for t in spec.terms}
    params = _coefficient_params(spec.fixed_names, slope_blocks(spec, priors), "slopes", "slope",
                                 "Intercept", "beta", "coef")
    for t in spec.terms:
        mode = mode_of(centered.get(t.name, False))
        if mode == HIERARCHICAL and "(Intercept)" not in list(spec.fixed_names):
            raise ValueError(f"term {t.name!r}: hierarchical centring needs a scalar term and an intercept")
        params += term_params(t, priors, mode)
    params += [Param(a.name) for a in spec.family.aux_params[1 if spec.has_disp else 0:]]
    if spec.has_zi:
        lab = spec.zi_label
        params += _coefficient_params(spec.zi_names, zi_slope_blocks(spec, priors), f"{lab}_slopes",
                                      f"{lab}_slope", f"{lab}_Intercept", f"beta_{lab}", f"{lab}_coef")
    if spec.has_disp:
        params += _coefficient_params(spec.disp_names, disp_slope_blocks(spec, priors), "disp_slopes",
                                      "disp_slope", "disp_Intercept", "beta_disp", "disp_coef")
    params.append(Param("y", ("obs",), OBSERVED))
    return ParamLayout(tuple(params), model_coords(spec))

"""Prior specification and weakly-informative, auto-scaled defaults.

This module is pure Python/NumPy (it does not import PyMC).  It resolves the complete
set of priors for a :class:`~bayes_glmm.spec.model_spec.ModelSpec`: the package defaults (in the
spirit of rstanarm/brms, scaled to the link and to the predictors) with user overrides
applied.  :mod:`bayes_glmm.bayes` turns the result into PyMC distributions.

Prior keys
----------
``"Intercept"``
    Intercept on the *centered-predictor* scale (the expected linear predictor at the
    means of the predictors), as in rstanarm and brms.
``<coefficient name>``
    One fixed-effect slope, e.g. ``"Month:Treatment"``.
``"beta"``
    All non-intercept slopes at once (a coefficient-name key wins over it).
``"sd_<ident>"``
    Standard deviations of the random effects of one term (``ident`` is
    :attr:`RandomTerm.ident`, e.g. ``"sd_ID"``).
``"var_<ident>"``
    Prior on the random-effect *variances* of a term (e.g.
    ``Prior("InverseGamma", alpha=1, beta=1)``, the classic conjugate-style choice);
    it replaces the SD prior, and ``sd_<ident> = sqrt(var_<ident>)`` is still reported.
    For a correlated term the SDs ``sqrt(var)`` and the correlations build the covariance.
``"corr_<ident>"``
    LKJ prior on the correlation matrix of a correlated term (``Prior("LKJ", eta=2)``), or
    on each correlation parameter of a structured one (``cs``, ``ar1``, ``toep``:
    ``(rho + 1) / 2 ~ Beta(eta, eta)``, default eta = 1).
``"sigma"``
    Residual SD (gaussian family).
``"theta"``, ``"phi"``, ``"shape"``
    The dispersion parameter of the negbinomial (``theta``), nbinom1 and beta (``phi``) and
    gamma (``shape``) families, named as :attr:`Family.dispersion_name`.
``"zi_Intercept"``, ``"zi_<coef>"``
    Zero-inflation coefficients (models with ``zi=``); the intercept, as the main one, at the
    means of the zero-inflation predictors.
``"hu_Intercept"``, ``"hu_<coef>"``
    The hurdle families' zero part (``hu=``, logit of P(y = 0)), with the same defaults: the
    label is the family's :attr:`~bayes_glmm.families.Family.zero_label`.
``"disp_Intercept"``, ``"disp_<coef>"``
    Dispersion-model coefficients (models with ``disp=``: the log of the family's first
    auxiliary parameter, which then has no prior key of its own); the intercept at the means of
    the dispersion predictors.

See ``docs/priors.md`` for every default and what it implies on the response scale.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..spec.scaling import column_sds
from ..spec.model_spec import ModelSpec, py_name
from ..spec.validate import close_matches
from ..families import REGISTRY
from .kinds import KINDS, get_kind

__all__ = ["Prior", "resolve_priors", "resolve_centered", "as_prior", "DISTRIBUTIONS",
           "default_scales", "slope_blocks", "dispersion_default", "zi_key", "zi_slope_blocks",
           "disp_key", "disp_slope_blocks", "DISP_SLOPE_SCALE"]

#: distribution name -> (support, accepted parameter names), PyMC's names: a view of the
#: registry :data:`~bayes_glmm.priors.kinds.KINDS`, where each kind is defined
DISTRIBUTIONS: dict[str, tuple[str, tuple[str, ...]]] = {n: (k.support, k.param_names) for n, k in KINDS.items()}


#: slope / SD multiplier (rstanarm's 2.5)
SCALE = 2.5
#: default LKJ shape
LKJ_ETA = 2.0


class Prior:
    """A prior distribution: a PyMC distribution name and its parameters.

    Parameters
    ----------
    dist_name : str
        PyMC distribution name, a registered kind (:data:`~bayes_glmm.priors.kinds.KINDS`: ``"Normal"``,
        ``"HalfNormal"``, ``"Exponential"``, ``"StudentT"``, ``"LKJ"``, ...).
    **params : float
        The distribution's parameters by PyMC name (``mu``, ``sigma``, ``lam``, ``eta``...).

    Examples
    --------
    >>> Prior("Normal", mu=0, sigma=1)
    Prior('Normal', mu=0, sigma=1)
    """

    def __init__(self, dist_name: str, **params: Any):
        get_kind(dist_name).check(params)
        self.name = dist_name
        self.args = dict(params)

    @property
    def kind(self):
        """The :class:`~bayes_glmm.priors.kinds.PriorKind` record of this distribution."""
        return get_kind(self.name)

    @property
    def support(self) -> str:
        """``"real"``, ``"positive"`` or ``"corr"``."""
        return self.kind.support

    def __eq__(self, other) -> bool:
        return isinstance(other, Prior) and other.name == self.name and other.args == self.args

    def __hash__(self):
        return hash((self.name, tuple(sorted(self.args))))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={_fmt(v)}" for k, v in self.args.items())
        return f"Prior({self.name!r}{', ' if args else ''}{args})"


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else repr(v)


def as_prior(obj: Any, key: str = "prior") -> Prior:
    """Convert a :class:`Prior` or a ``bambi.Prior`` (duck-typed: ``.name``, ``.args``).

    Raises
    ------
    ValueError
        For anything else, naming the key.
    """
    if isinstance(obj, Prior):
        try:  # again: the args of a Prior object may have been changed since it was made
            obj.kind.check(obj.args)
            obj.kind.check_derived(obj.args)
        except ValueError as e:
            raise ValueError(f"prior for {key!r}: {e}") from None
        return obj
    if hasattr(obj, "name") and hasattr(obj, "args") and isinstance(obj.args, Mapping):
        args = dict(obj.args)
        if any(hasattr(v, "args") for v in args.values()):
            raise ValueError(
                f"prior for {key!r}: hierarchical bambi priors (a Prior as a parameter) are not "
                f"supported; give fixed numbers, e.g. Prior('Normal', mu=0, sigma=1)"
            )
        try:
            pr = Prior(str(obj.name), **args)
            pr.kind.check_derived(pr.args)
            return pr
        except ValueError as e:
            raise ValueError(f"prior for {key!r}: {e}") from None
    raise ValueError(
        f"prior for {key!r} must be bayes_glmm.Prior or bambi.Prior, got {type(obj).__name__}; "
        f"e.g. Prior('Normal', mu=0, sigma=1)"
    )


def _col_sd(x: np.ndarray) -> float:
    """SD of a column for the prior scales; 1 for a constant column (an intercept).

    A column is constant only when its range is exactly zero: a predictor in units that make
    its SD tiny (1e-13, a rate in the wrong units) still gets a prior scaled to it, 2.5 / sd,
    not the unit-scale Normal(0, 2.5) that would pull a real effect to zero.
    """
    x = np.asarray(x, dtype=float)
    return 1.0 if x.size == 0 else float(column_sds(x.reshape(-1, 1))[0])


def _intercept_col(spec: ModelSpec) -> int | None:
    names = list(spec.fixed_names)
    if "(Intercept)" in names:
        return names.index("(Intercept)")
    return None


def default_scales(spec: ModelSpec) -> dict:
    """The numbers behind the defaults: ``s_y``, intercept location, predictor SDs.

    Returns
    -------
    dict
        ``s_y`` (sd(y) for the identity link, 1/mean(y) for the inverse link, 1 otherwise),
        ``loc`` (intercept
        location), ``x_sd`` (per fixed-effect column), ``xr_sd`` (per term, per column;
        1 for constant columns such as intercepts).
    """
    y = np.asarray(spec.y, dtype=float)
    w = np.asarray(spec.weights, dtype=float)
    loc, s_y = spec.family.link.prior_centre(y, w, np.asarray(spec.offset, dtype=float), _col_sd(y))
    x_sd = [_col_sd(spec.X[:, j]) for j in range(spec.p)]
    xr_sd = [[_col_sd(t.Xr[:, j]) for j in range(t.q)] for t in spec.terms]
    return {"s_y": s_y, "loc": loc, "x_sd": x_sd, "xr_sd": xr_sd}


def _has_corr(term) -> bool:
    """Whether a term has correlation parameters (and so a ``corr_<ident>`` prior): its
    covariance structure's ``n_corr(q) > 0`` (``correlated and q > 1`` for a term built
    without one)."""
    cov = getattr(term, "cov", None)
    return cov.n_corr(term.q) > 0 if cov is not None else bool(term.correlated and term.q > 1)


def _corr_eta(term) -> float:
    """Default eta of a term's ``corr_`` prior: the structure's ``default_corr_eta``
    (:data:`LKJ_ETA` for the unstructured correlation matrix of ``(x | g)``; 1 for ``cs``,
    ``ar1``, ``toep``: ``(rho + 1) / 2 ~ Beta(1, 1)``, uniform on each parameter)."""
    cov = getattr(term, "cov", None)
    return LKJ_ETA if cov is None else float(cov.default_corr_eta)


def _defaults(spec: ModelSpec) -> dict:
    sc = default_scales(spec)
    s_y = sc["s_y"]
    out: dict[str, Prior] = {}
    icol = _intercept_col(spec)
    if icol is not None:
        out["Intercept"] = Prior("Normal", mu=sc["loc"], sigma=SCALE * s_y)
    for j, nm in enumerate(spec.fixed_names):
        if j == icol:
            continue
        out[nm] = Prior("Normal", mu=0.0, sigma=SCALE * s_y / sc["x_sd"][j])
    for t, xs in zip(spec.terms, sc["xr_sd"]):
        sig = [SCALE * s_y / s for s in xs]
        out[f"sd_{t.ident}"] = Prior("HalfNormal", sigma=sig[0] if t.q == 1 else sig)
        if _has_corr(t):
            out[f"corr_{t.ident}"] = Prior("LKJ", eta=_corr_eta(t))
    for i, aux in enumerate(spec.family.aux_params):  # sigma, theta, phi, shape, ...
        if i == 0 and getattr(spec, "has_disp", False):
            continue  # modelled by the dispersion formula: its coefficients' priors below
        out[aux.name] = aux_default(spec, aux)
    out.update(_zi_defaults(spec))
    out.update(_disp_defaults(spec))
    return out


# ----------------------------------------------------------------------- dispersion, zero inflation
#: dispersion prior keys of every family (the parameter's own name; ``sigma`` for gaussian)


def dispersion_default(spec: ModelSpec) -> Prior:
    """The default prior of the family's dispersion parameter (see ``docs/priors.md``).

    Every choice is a half-normal on a coefficient of variation, written as the distribution
    it implies for the parameter itself (``u ~ HalfNormal(s)`` <=> ``1/u^2 ~ InverseGamma(1/2, 1/(2 s^2))``
    <=> ``u^2 ~ Gamma(1/2, 1/(2 s^2))``):

    ``theta`` (NB2)  ``InverseGamma(0.5, 0.5)``: ``1/sqrt(theta) ~ HalfNormal(1)``, the CV of the
                     gamma mixing distribution (Stan's prior-choice recommendation); mass piles up
                     towards the Poisson limit theta -> inf, not towards extreme overdispersion.
    ``phi`` (NB1)    ``Gamma(0.5, 0.5 / ybar)``: the same CV at the mean count ybar,
                     ``sqrt(phi / ybar) ~ HalfNormal(1)``.
    ``shape`` (Gamma) ``InverseGamma(0.5, 0.5)``: the response's CV ``1/sqrt(shape) ~ HalfNormal(1)``.
    ``phi`` (Beta)   ``InverseGamma(0.5, 2)``: ``1/sqrt(phi) ~ HalfNormal(0.5)``, about the SD of y
                     relative to a Bernoulli's with the same mean, ``1/sqrt(1 + phi)``.
    """
    fam = spec.family
    if not fam.has_dispersion:
        raise ValueError(f"family {fam.name!r} has no dispersion parameter")
    return aux_default(spec, fam.aux_params[0])


def aux_scales(spec: ModelSpec) -> dict:
    """The data scales an auxiliary parameter's default prior may use: ``y_sd`` (sd(y), 1 for a
    constant response) and ``y_mean`` (the weighted mean of y)."""
    y = np.asarray(spec.y, dtype=float)
    return {"y_sd": _col_sd(y), "y_mean": float(np.average(y, weights=np.asarray(spec.weights, dtype=float)))}


def aux_default(spec: ModelSpec, aux) -> Prior:
    """The default prior of one of the family's auxiliary parameters: its
    :attr:`~bayes_glmm.families.AuxParam.default_prior` at the data's :func:`aux_scales`."""
    kind, params = aux.default_prior(aux_scales(spec))
    return Prior(kind, **params)


def zi_key(name: str, label: str = "zi") -> str:
    """Prior key of a zero-inflation coefficient: ``zi_Intercept``, ``zi_<coef>`` (``label``:
    the model's :attr:`~bayes_glmm.spec.ModelSpec.zi_label`, ``hu`` for a hurdle)."""
    return f"{label}_Intercept" if name == "(Intercept)" else f"{label}_{name}"


def _zi_defaults(spec: ModelSpec) -> dict:
    """``zi_Intercept ~ Logistic(0, 1)`` (uniform structural-zero probability at the zi predictors'
    means, as brms' ``Intercept_zi``), ``zi_<coef> ~ Normal(0, 2.5 / sd(x))`` (as the slopes)."""
    if not getattr(spec, "has_zi", False):
        return {}
    out = {}
    X = np.asarray(spec.X_zi, dtype=float)
    lab = spec.zi_label
    for j, nm in enumerate(spec.zi_names):
        if nm == "(Intercept)":
            out[zi_key(nm, lab)] = Prior("Logistic", mu=0.0, s=1.0)
        else:
            out[zi_key(nm, lab)] = Prior("Normal", mu=0.0, sigma=SCALE / _col_sd(X[:, j]))
    return out


def disp_key(name: str) -> str:
    """Prior key of a dispersion-model coefficient: ``disp_Intercept``, ``disp_<coef>``."""
    return "disp_Intercept" if name == "(Intercept)" else f"disp_{name}"


#: the default dispersion-model slope prior is Normal(0, DISP_SLOPE_SCALE / sd(x)) on the log of the
#: dispersion: a change of x by one SD multiplies it by more than e^2 (7.4) with 5% prior probability
DISP_SLOPE_SCALE = 1.0


def _disp_defaults(spec: ModelSpec) -> dict:
    """Defaults of the dispersion-model coefficients (``disp=``), on the log of the family's first
    auxiliary parameter.

    ``disp_Intercept ~ Normal(log m, s)``: centred where that parameter's own default prior
    (:func:`aux_default`) puts its mass, ``m`` its median and ``s`` half the log of the ratio of its
    84% and 16% quantiles (the SD of the log for a log-normal); ``disp_<coef> ~ Normal(0, 1 / sd(x))``
    (:data:`DISP_SLOPE_SCALE`).  The intercept is the log-dispersion at the dispersion predictors'
    means, as the conditional model's intercept.
    """
    if not getattr(spec, "has_disp", False):
        return {}
    aux = spec.family.aux_params[0]
    pr = aux_default(spec, aux)
    dist = get_kind(pr.name).scipy(pr.args)
    lo, med, hi = (float(np.log(dist.ppf(q))) for q in (0.15865525393145707, 0.5, 0.8413447460685429))
    out = {}
    X = np.asarray(spec.X_disp, dtype=float)
    for j, nm in enumerate(spec.disp_names):
        if nm == "(Intercept)":
            out[disp_key(nm)] = Prior("Normal", mu=med, sigma=0.5 * (hi - lo))
        else:
            out[disp_key(nm)] = Prior("Normal", mu=0.0, sigma=DISP_SLOPE_SCALE / _col_sd(X[:, j]))
    return out


def _predictor_slope_blocks(names, key, stem: str) -> list:
    """The slope blocks of an extra linear predictor (zero part, dispersion) with coefficient
    names ``names`` and prior ``key(name)``: one vector ``"<stem>_slopes"`` when every slope
    prior is the same distribution with the same parameter names, else one
    ``"<stem>_slope_<name>"`` each."""
    slopes = [j for j, nm in enumerate(names) if nm != "(Intercept)"]
    if not slopes:
        return []
    sp = [key(names[j]) for j in slopes]
    if all(p.name == sp[0].name and set(p.args) == set(sp[0].args) for p in sp):
        return [(f"{stem}_slopes", slopes)]
    return [(f"{stem}_slope_{py_name(names[j])}", [j]) for j in slopes]


def disp_slope_blocks(spec: ModelSpec, priors: dict) -> list:
    """:func:`slope_blocks` for the dispersion-model coefficients: ``[(name, columns of X_disp), ...]``.

    One vector ``"disp_slopes"`` (dim ``disp_slope``) when every such slope prior is the same
    distribution with the same parameter names, else one ``"disp_slope_<name>"`` each.
    """
    if not getattr(spec, "has_disp", False):
        return []
    return _predictor_slope_blocks(list(spec.disp_names), lambda nm: priors[disp_key(nm)], "disp")


def zi_slope_blocks(spec: ModelSpec, priors: dict) -> list:
    """:func:`slope_blocks` for the zero-inflation coefficients: ``[(name, columns of X_zi), ...]``.

    One vector ``"zi_slopes"`` (dim ``zi_slope``) when every zi slope prior is the same
    distribution with the same parameter names, else one ``"zi_slope_<name>"`` each (``hu_`` for
    a hurdle family's zero part).
    """
    if not getattr(spec, "has_zi", False):
        return []
    lab = spec.zi_label
    return _predictor_slope_blocks(list(spec.zi_names), lambda nm: priors[zi_key(nm, lab)], lab)


def _dispersion_hint(unknown, spec: ModelSpec) -> str:
    """A hint for a dispersion key of another family (``theta`` on a gamma model, ...)."""
    # a key that names some registered family's auxiliary parameter, given to a model whose
    # family has another (theta for a gaussian model)
    aux_keys = {a.name for cls in REGISTRY.values() for a in cls.aux_params}
    wrong = [k for k in unknown if k in aux_keys]
    if getattr(spec, "has_disp", False) and spec.family.aux_params[0].name in wrong:
        return (f" ({spec.family.aux_params[0].name!r} is modelled by the dispersion formula "
                f"disp={spec.disp_formula!r}: its coefficients take the keys "
                f"{', '.join(repr(disp_key(c)) for c in spec.disp_names)})")
    if not wrong:
        return ""
    own = spec.family.dispersion_name
    has = f"its dispersion prior key is {own!r}" if own else "it has no dispersion parameter"
    return f" ({', '.join(map(repr, wrong))}: family {spec.family.name!r} -- {has})"


_SUPPORT_FOR = {"Intercept": "real", "beta": "real"}


def _needed_support(key: str, spec: ModelSpec) -> str:
    aux = {a.name: a.support for a in spec.family.aux_params}
    if key in aux:  # the family's auxiliary parameters say their own (Student-t's df, ...)
        return "real" if aux[key] == "ordered" else aux[key]  # (a threshold's prior is on its value)
    if key in _SUPPORT_FOR:
        return _SUPPORT_FOR[key]
    if key.startswith(("sd_", "var_")):
        return "positive"
    if key.startswith("corr_"):
        return "corr"
    return "real"


def resolve_priors(spec: ModelSpec, overrides: Mapping[str, Any] | None = None) -> dict:
    """The complete set of priors: auto-scaled defaults with ``overrides`` applied.

    Parameters
    ----------
    spec : ModelSpec
    overrides : dict, optional
        Key -> :class:`Prior` or ``bambi.Prior``.  Keys: ``"Intercept"``, a coefficient
        name, ``"beta"`` (all slopes), ``"sd_<ident>"``, ``"var_<ident>"`` (a prior on
        the variances instead of the SDs), ``"corr_<ident>"``, ``"sigma"``, the family's
        dispersion (``"theta"``, ``"phi"`` or ``"shape"``), ``"zi_Intercept"`` and
        ``"zi_<coef>"`` (zero inflation).

    Returns
    -------
    dict
        Key -> :class:`Prior` for every parameter block of the model: ``"Intercept"``
        (when X has one), one entry per slope name, ``"sd_<ident>"`` per term,
        ``"corr_<ident>"`` per term with correlation parameters, ``"sigma"`` (gaussian), the dispersion
        (negbinomial, nbinom1, gamma, beta), one ``"zi_..."`` per zero-inflation coefficient.  ``"beta"`` is
        not a key of the result; it has been expanded into the slope names.  A
        ``HalfNormal`` SD prior may carry a list of per-coefficient ``sigma``.  A
        ``"var_<ident>"`` override replaces ``"sd_<ident>"`` in the result.

    Raises
    ------
    ValueError
        For an unknown key (listing the valid keys), a distribution whose support
        does not fit the parameter (e.g. a Normal on an SD), or both ``sd_`` and
        ``var_`` for one term.
    """
    out = _defaults(spec)
    overrides = dict(overrides or {})
    # every term takes a variance prior: the samplers build a correlated term's covariance
    # from its SDs (sqrt of the variances) and its correlation parameters separately
    var_keys = [f"var_{t.ident}" for t in spec.terms]
    valid = list(out) + var_keys + (["beta"] if any(k for k in spec.fixed_names if k != "(Intercept)") else [])
    for t in spec.terms:
        key = f"var_{t.ident}"
        cov = getattr(t, "cov", None)
        if key in overrides and cov is not None and cov.n_sd(t.q) != t.q:
            # the samplers' free SDs of such a term are fewer than its coefficients (ar1: one)
            raise ValueError(
                f"prior key {key!r}: term {t.name!r} ({cov.name}) has {cov.n_sd(t.q)} SD(s) shared by its "
                f"{t.q} coefficients, not one variance per coefficient; put the prior on the SD (sd_{t.ident})")
        if key in overrides and f"sd_{t.ident}" in overrides:
            raise ValueError(f"give either sd_{t.ident} or {key} (one prior per random-effect scale), not both")
    unknown = [k for k in overrides if k not in valid]
    if unknown:
        close = [c for k in unknown for c in close_matches(k, valid, n=1)]
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        hint += _dispersion_hint(unknown, spec)
        raise ValueError(f"unknown prior key(s) {unknown}{hint}; valid keys for this model are {valid}")
    conv = {}
    for key, val in overrides.items():
        pr = as_prior(val, key)
        need = _needed_support(key, spec)
        if pr.support != need:
            choices = sorted(n for n, k in KINDS.items() if k.support == need)
            raise ValueError(
                f"prior for {key!r} must have {need} support; {pr.name} does not. Use one of {choices}"
            )
        _check_size(key, pr, spec)
        conv[key] = pr
    if "beta" in conv:
        for nm in spec.fixed_names:
            if nm != "(Intercept)" and nm not in conv:
                out[nm] = conv["beta"]
    out.update({k: v for k, v in conv.items() if k != "beta"})
    for k in conv:
        if k.startswith("var_"):
            out.pop("sd_" + k[4:], None)
    return out


def _check_size(key: str, pr: Prior, spec: ModelSpec) -> None:
    """Vector parameters only for the SDs of a term, one value per coefficient."""
    q = 1
    if key.startswith(("sd_", "var_")):
        q = next((t.q for t in spec.terms if key[key.index("_") + 1:] == t.ident), 1)
    for k, v in pr.args.items():
        size = np.asarray(v, dtype=float).size
        if size != 1 and size != q:
            need = f"1 or {q} values (one per coefficient of the term)" if q > 1 else "a single number"
            raise ValueError(f"prior for {key!r}: parameter {k} has {size} values; it takes {need}")


def slope_blocks(spec: ModelSpec, priors: dict) -> list:
    """How the slopes are grouped into free variables: ``[(name, columns of X), ...]``.

    One vector ``"slopes"`` (dim ``slope``) when every slope prior is the same
    distribution with the same parameter names, else one ``"slope_<name>"`` each.
    """
    names = list(spec.fixed_names)
    slopes = [j for j, nm in enumerate(names) if nm != "(Intercept)"]
    if not slopes:
        return []
    sp = [priors[names[j]] for j in slopes]
    if all(p.name == sp[0].name and set(p.args) == set(sp[0].args) for p in sp):
        return [("slopes", slopes)]
    return [(f"slope_{py_name(names[j])}", [j]) for j in slopes]


def resolve_centered(spec: ModelSpec, centered: bool | str | Mapping[str, bool | str] = "auto") -> dict:
    """Per-term parametrization: non-centered (False), centered (True) or hierarchically
    centred (``"hierarchical"``).

    Parameters
    ----------
    spec : ModelSpec
    centered : bool, "auto" or dict
        One choice for all terms, ``"auto"`` (the default: :func:`~bayes_glmm.spec.centering.auto_parametrization`,
        centred only where the data pin each group's level down), or term name
        (``RandomTerm.name`` or ``.ident``) -> True, False, ``"hierarchical"`` or ``"auto"``;
        unnamed terms get ``"auto"``'s choice.

    Returns
    -------
    dict
        ``RandomTerm.name`` -> False, True or ``"hierarchical"`` for every term.

    Raises
    ------
    ValueError
        For names that are not terms of the model (listing the valid names), other values,
        or ``"hierarchical"`` for a term that cannot have it (one scalar ``(1 | g)`` term of a
        model with an intercept).
    """
    from ..spec.centering import AUTO, HIERARCHICAL, auto_parametrization

    names = [t.name for t in spec.terms]
    if isinstance(centered, (bool, np.bool_)):
        return {n: bool(centered) for n in names}
    if isinstance(centered, str) and centered == AUTO:
        return auto_parametrization(spec)
    if not isinstance(centered, Mapping):
        raise ValueError(f"centered must be True/False or a dict term name -> True/False/'hierarchical'/'auto', "
                         f"or 'auto'; got {centered!r}")
    alias = {t.ident: t.name for t in spec.terms}
    alias.update({n: n for n in names})
    unknown = [k for k in centered if k not in alias]
    if unknown:
        close = [c for k in unknown for c in close_matches(k, list(alias), n=1)]
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise ValueError(f"centered: unknown term name(s) {unknown}{hint}; the model's terms are {names}")
    out = {}
    for k, v in centered.items():
        if isinstance(v, str) and v == AUTO:
            continue
        if not (isinstance(v, (bool, np.bool_)) or (isinstance(v, str) and v == HIERARCHICAL)):
            raise ValueError(f"centered[{k!r}] must be True or False (or 'hierarchical', 'auto'), got {v!r}")
        out[alias[k]] = v if isinstance(v, str) else bool(v)
    if len(out) < len(names):
        auto = auto_parametrization(spec)
        # an automatic hierarchical choice yields to one the user made for another term
        mine = any(v == HIERARCHICAL for v in out.values())
        for n in names:
            if n not in out:
                out[n] = True if (mine and auto[n] == HIERARCHICAL) else auto[n]
    hier = [n for n in names if out[n] == HIERARCHICAL]
    if len(hier) > 1:
        raise ValueError(f"centered: only one term can be hierarchically centred at the intercept; got {hier}")
    has_icpt = "(Intercept)" in list(spec.fixed_names)
    for t in spec.terms:
        if out[t.name] == HIERARCHICAL and not (has_icpt and t.q == 1 and np.all(np.asarray(t.Xr) == 1.0)):
            raise ValueError(f"centered[{t.name!r}] = 'hierarchical' needs a (1 | group) term and a model with "
                             f"an intercept (its levels are centred at the intercept); use True or False")
    return {n: out[n] for n in names}

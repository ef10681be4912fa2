"""A bambi ``Model`` as a :class:`~bayes_glmm.GLMM`: the same formula, family, link, data and priors.

bambi (0.17) and this package write the same kind of model; the differences that matter here:

* bambi's group-specific terms ``(1 + x | g)`` have **independent** priors per term (no correlation
  between the intercept and the slope of a group), so they become the uncorrelated ``(1 + x || g)``:
  the same model, not lme4's correlated one.
* bambi's ``Intercept`` prior is, with ``center_predictors=True`` (its default), on the intercept of
  the *centred* common predictors, the expected linear predictor at their means -- exactly this
  package's ``"Intercept"`` key.  With ``center_predictors=False`` it is on the raw intercept, which
  no prior key here expresses: such a model is refused when it has slopes (without slopes the two
  are the same).
* Each group-specific term's ``Normal(mu=0, sigma=<hyperprior>)`` becomes the ``sd_<group>`` prior
  (one value per coefficient of the term); the family's auxiliary parameters take bambi's priors
  under this package's names (:attr:`~bayes_glmm.families.AuxParam.bambi_name`: NB's ``alpha`` is
  ``theta``, beta's ``kappa`` is ``phi``, gamma's ``alpha`` is ``shape``, t's ``nu`` is ``df``).

* bambi's zero-inflated and hurdle families (``zero_inflated_poisson``, ``_negativebinomial``,
  ``hurdle_poisson``, ``hurdle_negativebinomial``; not ``zero_inflated_binomial``: zero
  inflation here is for count families) have ``psi``, the probability of
  the *count* part (PyMC's parametrisation: P(structural zero) = 1 - psi, a hurdle's P(y = 0) =
  1 - psi); this package's zero part is ``pi`` = P(zero part) on the logit scale, so
  ``logit(pi) = -logit(psi)``.  A formula for psi (``bmb.Formula(..., "psi ~ x")``) becomes
  ``zi="~ x"`` (``hu=`` for a hurdle) with each coefficient's prior mirrored (the location
  negated; the intercept at the psi predictors' means on both sides).  A constant psi's
  ``Beta(a, b)`` prior (bambi's default ``Beta(2, 2)``) becomes ``zi_Intercept ~ LogitBeta(alpha=b,
  beta=a)`` exactly: pi = 1 - psi ~ Beta(b, a), and LogitBeta is the density of its logit; a uniform
  (``Beta(1, 1)``, ``Uniform(0, 1)``) is the same as ``Logistic(0, 1)``, which it becomes.
* bambi's ``beta_binomial`` is ``betabinomial`` (``kappa`` is ``phi``: Beta(mu phi, (1 - mu) phi)).

Whatever has no exact equivalent is refused with a ``ValueError`` naming the term and the reason:
distributional formulas for auxiliary parameters, hierarchical priors on common terms, a
group-specific prior that is not ``Normal(0, sigma ~ prior)`` (a fixed ``sigma``, a non-zero mean),
prior kinds this package does not have, families it does not have, terms it cannot match.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from ..families import get_family
from ..priors import Prior, as_prior

__all__ = ["from_bambi", "glmm_args_from_bambi"]

_RESPONSE_P = re.compile(r"^\s*p\s*\((?P<succ>.+),(?P<trials>[^,]+)\)\s*$", re.S)
_NAME = re.compile(r"^\s*[A-Za-z_][\w.]*\s*$")


def _split_top(text: str) -> list[str]:
    """``text`` split at the ``+`` signs outside parentheses (the formula's terms)."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "+" and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [p.strip() for p in out + [cur] if p.strip()]


def _fresh(name: str, data: pd.DataFrame) -> str:
    while name in data.columns:
        name = name + "_"
    return name


def _bambi_prior(p: Any, where: str) -> Prior:
    """One bambi prior (no Prior as a parameter) as a :class:`Prior`, or a ValueError naming ``where``."""
    if not (hasattr(p, "name") and hasattr(p, "args")):
        raise ValueError(f"bambi term {where!r}: prior {p!r} is not a distribution (a constant?); "
                         f"there is no equivalent here")
    pr = as_prior(p, where)
    # bambi keeps its numbers as NumPy scalars and arrays: plain floats and lists here
    args = {a: (float(np.asarray(v)) if np.asarray(v).size == 1 else [float(x) for x in np.ravel(v)])
            for a, v in pr.args.items()}
    return Prior(pr.name, **args)


def _column(p: Prior, i: int, k: int, where: str) -> Prior:
    """The prior of column ``i`` of a ``k``-column term (bambi gives one value per column or one for all)."""
    args = {}
    for a, v in p.args.items():
        v = np.asarray(v, dtype=float)
        if v.size == 1:
            args[a] = float(v.reshape(-1)[0])
        elif v.size == k:
            args[a] = float(v.reshape(-1)[i])
        else:
            raise ValueError(f"bambi term {where!r}: prior parameter {a} has {v.size} values for {k} columns")
    return Prior(p.name, **args)


def _match_columns(cols: np.ndarray, X: np.ndarray, names, where: str) -> list[str]:
    """Our coefficient name of each column of a bambi common term, by equal design columns."""
    cols = np.asarray(cols, dtype=float).reshape(X.shape[0], -1)
    out = []
    for c in cols.T:
        hits = [names[j] for j in range(X.shape[1]) if np.allclose(X[:, j], c, rtol=1e-12, atol=1e-12)]
        if len(hits) != 1:
            raise ValueError(f"bambi term {where!r}: its design column matches {len(hits)} columns of the "
                             f"converted model's fixed effects {list(names)}; cannot carry its prior over")
        out.append(hits[0])
    return out


def _hyper_kind(prior) -> tuple:
    """A group-specific prior's hyperprior distribution: its name and parameter names."""
    h = getattr(prior, "args", {}).get("sigma")
    return (getattr(h, "name", None), tuple(sorted(getattr(h, "args", {}) or {})))


def glmm_args_from_bambi(model) -> dict:
    """The :class:`~bayes_glmm.GLMM` arguments (formula, data, family, link, trials, priors,
    centered) equivalent to a bambi ``Model``; see the module docstring for the rules.

    Raises
    ------
    ValueError
        For anything without an exact equivalent, naming the term and the reason.
    """
    fam_b = model.family
    parent = fam_b.likelihood.parent
    # a zero part: bambi's psi, the probability of the count part (see the module docstring)
    zero_part = _PSI in tuple(fam_b.likelihood.params)
    extra = sorted(set(model.distributional_components) - {parent} - ({_PSI} if zero_part else set()))
    if extra:
        raise ValueError(f"bambi model: formulas for the auxiliary parameter(s) {extra} (distributional "
                         f"models) are not converted; give them as constants (priors)")
    link_b = fam_b.link[parent].name
    fam_name = fam_b.name
    if zero_part and fam_name.startswith(_ZI_PREFIX):  # zero_inflated_<count family>: that family, zi=
        fam_name = fam_name[len(_ZI_PREFIX):]
    try:
        family = get_family(fam_name, link_b)
    except ValueError as e:
        raise ValueError(f"bambi family {fam_b.name!r} with link {link_b!r}: {e}") from None
    zero = _zero_part(model, family) if zero_part else None

    data = model.data.copy()  # never the user's frame
    lhs, rhs = str(model.formula.main).split("~", 1)
    trials = None
    resp = model.response_component.term
    rdata = np.asarray(resp.data)
    for flag, what in (("is_censored", "censored"), ("is_truncated", "truncated"),
                       ("is_constrained", "constrained"), ("is_weighted", "weighted")):
        if getattr(resp, flag, False):
            raise ValueError(f"bambi response {resp.name!r}: a {what} response has no equivalent here")
    m = _RESPONSE_P.match(lhs)
    if m:  # binomial p(successes, trials): the evaluated columns, whatever the expressions were
        y_name = m.group("succ").strip() if _NAME.match(m.group("succ")) else _fresh("bambi_successes", data)
        data[y_name] = rdata[:, 0]
        trials = rdata[:, 1].astype(float)
    elif _NAME.match(lhs):
        y_name = lhs.strip()
        if rdata.ndim == 1 and np.issubdtype(rdata.dtype, np.number):
            data[y_name] = rdata  # bambi's 0/1 coding of a bernoulli response's success level
    else:
        y_name = _fresh("bambi_response", data)
        data[y_name] = rdata
    # terms: random ones uncorrelated (bambi's are independent), offsets as evaluated by bambi
    pieces, offs = [], []
    comp = model.components[parent]
    off_terms = [t for t in comp.terms.values() if type(t).__name__ == "OffsetTerm"]
    groups = {}
    for tn, t in comp.terms.items():
        if type(t).__name__ == "GroupSpecificTerm":
            groups.setdefault(tn.split("|", 1)[1].strip(), []).append((tn.split("|", 1)[0].strip(), t.prior))
    random_pieces = [p for p in _split_top(rhs) if p.startswith("(") and "|" in p]
    for piece in _split_top(rhs):
        if piece.startswith("(") and "|" in piece:
            group = piece[1:-1].split("|")[-1].strip()
            parts = groups.get(group, [])
            if len({_hyper_kind(pr) for _, pr in parts}) > 1 and \
                    sum(p[1:-1].split("|")[-1].strip() == group for p in random_pieces) == 1:
                # different hyperprior distributions per coefficient: one term each (bambi's terms are
                # independent either way, so this is the same model)
                pieces += [f"({'1' if e == '1' else '0 + ' + e} || {group})" for e, _ in parts]
            else:
                pieces.append(re.sub(r"(?<!\|)\|(?!\|)", "||", piece))
        elif re.match(r"^offset\s*\(", piece):
            offs.append(piece)
        else:
            pieces.append(piece)
    if len(offs) != len(off_terms):
        raise ValueError(f"bambi model: offsets {offs} could not be matched to its offset terms")
    for t in off_terms:
        col = _fresh("bambi_offset", data)
        data[col] = np.asarray(t.data, dtype=float).reshape(-1)
        pieces.append(f"offset({col})")
    formula = f"{y_name} ~ " + " + ".join(pieces or ["1"])
    out = {"formula": formula, "data": data, "family": family.name, "link": family.link.name,
           "trials": trials, "_bambi_terms": comp.terms, "_center": bool(getattr(model, "center_predictors", True)),
           "_constants": {k: v for k, v in model.constant_components.items() if k != _PSI}, "_zero": None}
    if zero is not None:
        out[zero[0]], out["_zero"] = zero[1], zero[2]
    return out


_PSI = "psi"
_ZI_PREFIX = "zero_inflated_"


def _mirrored(p: Prior, where: str) -> Prior:
    """The prior of ``-b`` for ``b ~ p`` (psi's logit to the zero part's): the location negated."""
    from ..priors.kinds import get_kind

    kind = get_kind(p.name)
    if kind.support != "real" or kind.loc_scale is None or kind.loc_scale[:1] == (None,):
        raise ValueError(f"bambi term {where!r}: prior {p.name} on the logit of psi; the zero part here is "
                         f"logit(1 - psi) = -logit(psi), and only a location-scale prior (Normal, StudentT, "
                         f"...) mirrors exactly")
    args = dict(p.args)
    if kind.loc_scale:
        loc = kind.loc_scale[0]
        v = args.get(loc, next((q.default for q in kind.params if q.name == loc), 0.0)) or 0.0
        args[loc] = -float(v) if np.ndim(v) == 0 else [-float(x) for x in np.ravel(v)]
    return Prior(p.name, **args)


def _beta_shapes(args: dict) -> tuple[float, float] | None:
    """(alpha, beta) of a Beta prior given in any of PyMC's spellings with fixed numbers
    ((alpha, beta), (mu, sigma), (mu, nu); PyMC's conversions), else None."""
    if any(v is None for v in args.values()):
        return None
    keys = set(args)
    if keys == {"alpha", "beta"}:
        return args["alpha"], args["beta"]
    if keys == {"mu", "sigma"}:
        mu, sd = args["mu"], args["sigma"]
        kappa = mu * (1.0 - mu) / sd ** 2 - 1.0
        return mu * kappa, (1.0 - mu) * kappa
    if keys == {"mu", "nu"}:
        return args["mu"] * args["nu"], (1.0 - args["mu"]) * args["nu"]
    return None


def _zero_part(model, family):
    """(GLMM keyword ``"zi"`` / ``"hu"``, its formula, {prior key: Prior}) for bambi's psi."""
    label = getattr(family, "zero_label", "zi")
    if label == "zi" and not family.allows_zi:
        from ..families import zi_families
        raise ValueError(f"bambi family {model.family.name!r}: zero inflation here applies to the count families "
                         f"{list(zi_families())}, not {family.name!r}; there is no equivalent model")
    if _PSI in model.distributional_components:
        comp = model.components[_PSI]
        rhs = str(model.formula.additionals[[str(f).split("~", 1)[0].strip() for f in
                                              model.formula.additionals].index(_PSI)]).split("~", 1)[1].strip()
        priors = {}
        for tn, t in comp.terms.items():
            kind = type(t).__name__
            if kind == "GroupSpecificTerm":
                raise ValueError(f"bambi term 'psi ~ {tn}': group-specific effects in the zero part have no "
                                 f"equivalent here (its formula takes fixed effects only)")
            if kind not in ("CommonTerm", "InterceptTerm") and tn != "Intercept":
                raise ValueError(f"bambi term 'psi ~ {tn}': {kind} terms are not converted")
            priors[tn] = (_mirrored(_bambi_prior(t.prior, f"psi ~ {tn}"), f"psi ~ {tn}"),
                          None if tn == "Intercept" else np.asarray(t.data, dtype=float))
        return label, f"~ {rhs}", priors
    prior = model.constant_components[_PSI].prior
    # a prior on a probability: not one of this package's kinds, so read bambi's directly
    name = str(getattr(prior, "name", prior))
    args = {k: (float(np.asarray(v)) if not hasattr(v, "args") and np.asarray(v).size == 1 else None)
            for k, v in (getattr(prior, "args", {}) or {}).items()}
    ab = _beta_shapes(args) if name == "Beta" else None
    uniform = ab == (1.0, 1.0) or (name == "Uniform" and set(args) <= {"lower", "upper"}
                                   and args.get("lower", 0.0) == 0.0 and args.get("upper", 1.0) == 1.0)
    if uniform:  # Beta(1, 1) on a probability is exactly Logistic(0, 1) on its logit
        return label, "~ 1", {"Intercept": (Prior("Logistic", mu=0.0, s=1.0), None)}
    if ab is not None:
        # psi ~ Beta(a, b) is the count part's probability: the zero part's pi = 1 - psi ~ Beta(b, a)
        return label, "~ 1", {"Intercept": (Prior("LogitBeta", alpha=ab[1], beta=ab[0]), None)}
    shown = ", ".join(f"{k}={v:g}" if v is not None else k for k, v in args.items())
    raise ValueError(f"bambi parameter 'psi' (the probability of the count part): prior {name}({shown}); "
                     f"the zero part here is on the logit scale, where only a Beta(alpha, beta) with fixed "
                     f"numbers (LogitBeta here) or a uniform has an exact equivalent; give psi a prior "
                     f"bmb.Prior('Beta', alpha=.., beta=..), or a formula psi ~ 1 with a Normal prior")


def _priors(spec, family, terms, center: bool, constants) -> dict:
    """Every prior of the converted model from bambi's terms (see the module docstring)."""
    names = list(spec.fixed_names)
    priors: dict[str, Prior] = {}
    slopes = [n for n in names if n != "(Intercept)"]
    sd_parts: dict[str, dict[int, Prior]] = {}
    for tn, t in terms.items():
        kind = type(t).__name__
        if kind == "OffsetTerm":
            continue
        if kind == "CommonTerm" or kind == "InterceptTerm" or tn == "Intercept":
            if tn == "Intercept" or kind == "InterceptTerm":
                if not center and slopes:
                    raise ValueError(
                        "bambi term 'Intercept': the model was built with center_predictors=False, so its prior "
                        "is on the raw intercept; bayes_glmm's 'Intercept' prior is at the predictors' means "
                        "(bambi's default, center_predictors=True): rebuild the bambi model with it")
                priors["Intercept"] = _bambi_prior(t.prior, tn)
                continue
            pr = _bambi_prior(t.prior, tn)
            cols = np.asarray(t.data, dtype=float).reshape(len(spec.y), -1)
            for i, nm in enumerate(_match_columns(cols, np.asarray(spec.X, dtype=float), names, tn)):
                priors[nm] = _column(pr, i, cols.shape[1], tn)
        elif kind == "GroupSpecificTerm":
            p = t.prior
            if getattr(p, "name", None) != "Normal" or set(p.args) != {"mu", "sigma"}:
                raise ValueError(f"bambi term {tn!r}: prior {p!r}; group-specific effects here are "
                                 f"Normal(0, sd) with a prior on sd")
            if np.any(np.asarray(p.args["mu"], dtype=float) != 0):
                raise ValueError(f"bambi term {tn!r}: a non-zero mean of the group-specific effects has no "
                                 f"equivalent (put it in the common terms)")
            hyper = p.args["sigma"]
            if not hasattr(hyper, "args"):
                raise ValueError(f"bambi term {tn!r}: a fixed sigma ({hyper}) has no equivalent here; "
                                 f"give it a prior, e.g. bmb.Prior('HalfNormal', sigma=1)")
            expr, group = (s.strip() for s in tn.split("|", 1))
            coef = "(Intercept)" if expr == "1" else expr
            found = [(term, term.coef_names.index(coef)) for term in spec.terms
                     if str(term.group) == group and coef in term.coef_names]
            if len(found) != 1:
                raise ValueError(f"bambi term {tn!r}: no single matching random-effect coefficient in the "
                                 f"converted model (terms {[x.name for x in spec.terms]}); categorical "
                                 f"group-specific slopes are not converted")
            term, j = found[0]
            sd_parts.setdefault(term.ident, {})[j] = _bambi_prior(hyper, f"{tn} sigma")
        else:
            raise ValueError(f"bambi term {tn!r}: {kind} terms are not converted")
    for term in spec.terms:
        parts = sd_parts.get(term.ident, {})
        if len(parts) != term.q:
            raise ValueError(f"random-effect term {term.name!r}: bambi gives priors for {len(parts)} of its "
                             f"{term.q} coefficients")
        ps = [parts[j] for j in range(term.q)]
        if any(p.name != ps[0].name or set(p.args) != set(ps[0].args) for p in ps):
            raise ValueError(f"random-effect term {term.name!r}: bambi's sigma priors of its coefficients are "
                             f"different distributions ({[p.name for p in ps]}); one term here takes one kind "
                             f"(with one parameter value per coefficient)")
        if term.q == 1:
            priors[f"sd_{term.ident}"] = ps[0]
        else:
            priors[f"sd_{term.ident}"] = Prior(ps[0].name, **{a: [float(p.args[a]) for p in ps] for a in ps[0].args})
    ours = {(a.bambi_name or a.name): a.name for a in family.aux_params}
    for nm, c in constants.items():
        if nm not in ours:
            raise ValueError(f"bambi auxiliary parameter {nm!r} of family {family.name!r} has no equivalent "
                             f"here (this family's are {sorted(ours.values())})")
        priors[ours[nm]] = _bambi_prior(c.prior, nm)
    return priors


def _zero_priors(spec, zero: dict) -> dict:
    """The zero part's prior keys (``zi_Intercept``, ``zi_<coef>`` or ``hu_...``) from the
    mirrored psi priors, columns matched by equal design columns."""
    from ..priors.prior import zi_key

    names = list(spec.zi_names)
    out = {}
    for tn, (pr, cols) in zero.items():
        if cols is None:
            out[zi_key("(Intercept)", spec.zi_label)] = pr
            continue
        cols = cols.reshape(len(spec.y), -1)
        for i, nm in enumerate(_match_columns(cols, np.asarray(spec.X_zi, dtype=float), names, f"psi ~ {tn}")):
            out[zi_key(nm, spec.zi_label)] = _column(pr, i, cols.shape[1], f"psi ~ {tn}")
    return out


def from_bambi(model, glmm_class, **glmm_kwargs):
    """The :class:`~bayes_glmm.GLMM` equivalent to a bambi ``Model``: same formula (random
    terms uncorrelated, as bambi's are), family, link, data, offsets and every prior.

    Parameters
    ----------
    model : bambi.Model
        Built or not; not modified.
    glmm_class : type
        :class:`~bayes_glmm.GLMM` (passed in: this module does not import the model module that
        imports it).
    **glmm_kwargs
        Passed to :class:`~bayes_glmm.GLMM` (``centered=``).

    Raises
    ------
    ValueError
        For a part of the model with no exact equivalent here, naming the term and the reason.
    """
    args = glmm_args_from_bambi(model)
    terms, center, constants = args.pop("_bambi_terms"), args.pop("_center"), args.pop("_constants")
    zero = args.pop("_zero")
    part = {k: args[k] for k in ("zi", "hu") if k in args}
    # first with the package defaults, to get the spec; then with every prior from bambi
    glmm = glmm_class(args["formula"], args["data"], args["family"], args["link"], trials=args["trials"],
                      **part, **glmm_kwargs)
    priors = _priors(glmm.spec, glmm.family, terms, center, constants)
    if zero is not None:
        priors.update(_zero_priors(glmm.spec, zero))
    new = glmm.with_priors(priors)
    left = sorted(set(new.resolved_priors) - set(priors))
    if left:
        raise ValueError(f"bambi model: no bambi prior for {left} of the converted model")
    return new

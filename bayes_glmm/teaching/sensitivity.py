"""Sensitivity of the posterior of a random-effect SD to its prior.

:func:`prior_sensitivity` refits a model under several priors for one term's standard
deviations (half-normal, half-t, exponential, inverse-gamma on the variance, ...) and
tabulates the posteriors next to the ML estimate; :func:`bayes_glmm.postfit.plots.plot_prior_sensitivity`
draws prior and posterior densities.  The prior densities are each kind's SciPy
distribution (:meth:`bayes_glmm.priors.kinds.PriorKind.scipy`).

A prior can be put on the *variance* instead of the SD by passing ``("variance", Prior)``
(the model's ``var_<ident>`` key, for any term).  Every prior is fitted by NUTS; with
``reweight=True`` only the first SD prior is, and the posterior under each other prior is
obtained by Pareto-smoothed importance reweighting of that fit (one fit instead of one per
prior); the table reports the method and the Pareto k diagnostic.  Above k = :data:`K_MAX`
(0.7) the reweighted draws are not a posterior (the importance weights have no finite
variance: a few draws carry all the weight), so the row is refitted by NUTS (``refit=True``,
the default) or, with ``refit=False``, reported as NaN with the reason.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from ..priors import KINDS, Prior, resolve_priors
from ._common import find_term, posterior_draws, spec_of

__all__ = ["prior_sensitivity", "default_sd_priors", "prior_pdf", "SensitivityResult", "K_MAX"]

ON = ("sd", "variance")
#: Pareto k above which importance-reweighted draws are not trusted (Vehtari et al., PSIS)
K_MAX = 0.7


def _param(v, i):
    a = np.asarray(v, dtype=float)
    return float(a.ravel()[i]) if a.ndim and a.size > 1 else float(a)


def _scipy_dist(prior: Prior, i: int = 0):
    """The frozen SciPy distribution of a positive prior (entry ``i`` of vector parameters):
    its kind's :meth:`~bayes_glmm.priors.kinds.PriorKind.scipy`."""
    kind = prior.kind
    if kind.support != "positive" or not kind.proper:
        raise ValueError(f"prior_pdf: no density for {prior!r}; use a proper positive-support prior such as "
                         + ", ".join(n for n, k in KINDS.items() if k.support == "positive" and k.proper))
    return kind.scipy({k: _param(v, i) for k, v in prior.args.items()})


def prior_pdf(prior: Prior, x, *, on: str = "sd", coef: int = 0) -> np.ndarray:
    """Density of a standard deviation ``x`` under ``prior``.

    Parameters
    ----------
    prior : Prior
        A positive-support prior.
    x : array-like
        SD values (>= 0).
    on : {"sd", "variance"}
        Whether ``prior`` is a prior on the SD or on the variance; for a variance prior
        the density is transformed to the SD scale, ``p(x) = p_var(x**2) * 2 x``.
    coef : int
        Which entry of a vector-valued parameter (per-coefficient SD priors) to use.
    """
    if on not in ON:
        raise ValueError(f"on={on!r} must be one of {ON}")
    x = np.asarray(x, dtype=float)
    dist = _scipy_dist(prior, coef)
    if on == "sd":
        return dist.pdf(x)
    return dist.pdf(x * x) * 2.0 * x


def _logpdf(prior, x, on, coef):
    with np.errstate(divide="ignore"):
        return np.log(prior_pdf(prior, x, on=on, coef=coef))


def _as_entry(label, val):
    if isinstance(val, tuple) and len(val) == 2 and val[0] in ON:
        on, pr = val
    else:
        on, pr = "sd", val
    if not isinstance(pr, Prior) or pr.support != "positive":
        raise ValueError(f"sd_priors[{label!r}] must be a positive-support bayes_glmm.Prior or "
                         f"('variance', Prior); got {val!r}")
    return pr, on


def default_sd_priors(model, term: str | None = None) -> dict:
    """Four SD priors on a common scale ``s`` (the package's default half-normal / 2.5).

    Returns
    -------
    dict
        ``"half-normal"``: HalfNormal(2.5 s) (the package default), ``"half-t(3)"``:
        HalfStudentT(3, s), ``"exponential"``: Exponential(1 / s), and
        ``"inverse-gamma on variance"``: ``("variance", InverseGamma(1, s**2))``.
    """
    spec = spec_of(model)
    _, t = find_term(spec, term)
    sig = np.asarray(resolve_priors(spec)[f"sd_{t.ident}"].args["sigma"], dtype=float)
    s = sig / 2.5
    v = (lambda a: float(a)) if s.ndim == 0 else (lambda a: [float(z) for z in a])
    return {
        "half-normal": Prior("HalfNormal", sigma=v(sig)),
        "half-t(3)": Prior("HalfStudentT", nu=3.0, sigma=v(s)),
        "exponential": Prior("Exponential", lam=v(1.0 / s)),
        "inverse-gamma on variance": ("variance", Prior("InverseGamma", alpha=1.0, beta=v(s ** 2))),
    }


def _with_prior(model, term, prior, on: str):
    """A copy of ``model`` with ``prior`` on the SDs (``on="sd"``) or the variances of
    ``term``; the model's own prior on the other of the two is dropped (one prior per
    scale).  The user's model is untouched."""
    key, other = (f"sd_{term.ident}", f"var_{term.ident}") if on == "sd" else (f"var_{term.ident}", f"sd_{term.ident}")
    base = copy.copy(model)
    base.priors = {k: v for k, v in getattr(model, "priors", {}).items() if k != other}
    if hasattr(base, "with_priors"):
        return base.with_priors({key: prior})
    base.priors[key] = prior
    base.resolved_priors = resolve_priors(model.spec, base.priors)
    return base


@dataclass
class SensitivityResult:
    """Output of :func:`prior_sensitivity`.

    Attributes
    ----------
    term : str
        Term name; ``ident`` its identifier.
    coef_names : tuple
    priors : dict
        label -> (Prior, "sd" | "variance").
    sd_draws : dict
        label -> ndarray (n_draws, q) of posterior SD draws.
    ml_sd : ndarray (q,) or None
    fits : dict
        label -> BayesResults (None for reweighted entries).
    table : pandas.DataFrame
        One row per prior and coefficient: prior, on, method, mean, median, q05, q95,
        ml, pareto_k, reason (why a row's summaries are NaN: unreliable importance weights
        with ``refit=False``; empty otherwise).
    unreliable : dict
        label -> reason, for the priors without a posterior (``sd_draws`` is empty for them
        and the plot leaves them out).
    """

    term: str
    ident: str
    coef_names: tuple
    priors: dict
    sd_draws: dict
    ml_sd: np.ndarray | None
    fits: dict = field(default_factory=dict, repr=False)
    table: pd.DataFrame | None = None
    unreliable: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"SensitivityResult(term={self.term!r})\n{self.table.to_string()}"


def _reweight(ref_draws, ref_prior, new_prior, on, rng):
    import arviz as az
    q = ref_draws.shape[1]
    lw = sum(_logpdf(new_prior, ref_draws[:, i], on, i) - _logpdf(ref_prior, ref_draws[:, i], "sd", i)
             for i in range(q))
    lw = np.where(np.isfinite(lw), lw, -np.inf)
    slw, khat = az.psislw(lw - np.max(lw))
    p = np.exp(slw - np.max(slw))
    idx = rng.choice(len(p), size=len(p), replace=True, p=p / p.sum())
    return ref_draws[idx], float(np.asarray(khat))


def prior_sensitivity(model, sd_priors: dict | None = None, *, term: str | None = None, ml=None,
                      draws: int = 500, tune: int = 500, chains: int = 2, random_seed=None,
                      reweight: bool = False, refit: bool = True, **sample_kwargs) -> SensitivityResult:
    """Refit ``model`` under several priors for one term's random-effect SDs.

    Parameters
    ----------
    model : GLMM
    sd_priors : dict, optional
        label -> :class:`Prior` on the SD, or ``("variance", Prior)`` for a prior on the
        variance.  Default :func:`default_sd_priors`.
    term : str, optional
        Random term (name, identifier or grouping factor); default the first.
    ml : MLResults or False, optional
        ML fit for the reference estimate; ``model.fit_ml()`` when omitted, none when False.
    draws, tune, chains : int
        NUTS settings per fit (keep small: one fit per prior).
    random_seed : int, optional
        Seed of every fit (the same for all, so differences come from the priors) and of
        the resampling of reweighted draws.
    reweight : bool
        False (default): every prior is fitted by NUTS.  True: only the first SD prior is;
        the others are obtained by PSIS importance reweighting of its draws.
    refit : bool
        With ``reweight=True``, a prior whose Pareto k exceeds :data:`K_MAX` is refitted by
        NUTS with the same settings (True, the default); with False its row is NaN with the
        reason, and it has no draws.
    **sample_kwargs
        Passed to ``model.sample``.

    Returns
    -------
    SensitivityResult
    """
    spec = spec_of(model)
    k, t = find_term(spec, term)
    entries = {lab: _as_entry(lab, v) for lab, v in (sd_priors or default_sd_priors(model, term)).items()}
    if not entries:
        raise ValueError("sd_priors is empty; give at least one label -> Prior")
    ref = next((lab for lab, (_, on) in entries.items() if on == "sd"), None)
    if reweight and ref is None:
        raise ValueError("prior_sensitivity(reweight=True) reweights the fit under an SD prior; give at least "
                         "one SD prior in sd_priors (label -> Prior), or reweight=False to fit each prior")
    key = f"sd_{t.ident}"
    if ml is None and hasattr(model, "fit_ml"):
        ml = model.fit_ml()
    ml = None if ml is False else ml
    ml_sd = None if ml is None else np.sqrt(np.diag(np.asarray(ml._point_params()[2][k], dtype=float)))
    rng = np.random.default_rng(random_seed)
    sd_draws, fits, meta, unreliable = {}, {}, {}, {}

    def nuts(pr, on):
        fit = _with_prior(model, t, pr, on).sample(draws=draws, tune=tune, chains=chains,
                                                    random_seed=random_seed, **sample_kwargs)
        return fit, posterior_draws(fit, key).reshape(-1, t.q)

    direct = [ref] if reweight else list(entries)
    for lab in direct:
        fits[lab], sd_draws[lab] = nuts(*entries[lab])
        meta[lab] = ("NUTS", np.nan)
    for lab, (pr, on) in entries.items():
        if lab in sd_draws:
            continue
        sd_draws[lab], kh = _reweight(sd_draws[ref], entries[ref][0], pr, on, rng)
        fits[lab] = None
        meta[lab] = (f"PSIS reweighting of {ref!r}", kh)
        if np.isfinite(kh) and kh <= K_MAX:
            continue
        why = (f"Pareto k = {kh:.2f} > {K_MAX} in the importance reweighting of {ref!r}: the prior "
               f"moves the posterior too far for reweighted draws to represent it")
        if not refit:  # never present unreliable reweighted draws as a posterior
            sd_draws[lab] = np.empty((0, t.q))
            unreliable[lab] = why + "; prior_sensitivity(..., refit=True) refits it by NUTS"
            continue
        fits[lab], sd_draws[lab] = nuts(pr, on)
        meta[lab] = (f"NUTS (refit: PSIS k = {kh:.2f} > {K_MAX})", kh)
    rows = []
    for lab, (pr, on) in entries.items():
        d = sd_draws[lab]
        for i, cn in enumerate(t.coef_names):
            if lab in unreliable:
                summ = dict.fromkeys(("mean", "median", "q05", "q95"), np.nan)
            else:
                summ = {"mean": d[:, i].mean(), "median": np.median(d[:, i]),
                        "q05": np.quantile(d[:, i], 0.05), "q95": np.quantile(d[:, i], 0.95)}
            rows.append({"prior_label": lab, "coef": cn, "prior": repr(pr), "on": on,
                         "method": meta[lab][0], **summ,
                         "ml": np.nan if ml_sd is None else ml_sd[i], "pareto_k": meta[lab][1],
                         "reason": unreliable.get(lab, "")})
    table = pd.DataFrame(rows).set_index(["prior_label", "coef"])
    return SensitivityResult(term=t.name, ident=t.ident, coef_names=tuple(t.coef_names), priors=entries,
                             sd_draws=sd_draws, ml_sd=ml_sd, fits=fits, table=table, unreliable=unreliable)

"""The user-facing :class:`GLMM`: one spec, two estimation paths."""
from __future__ import annotations

import copy
from typing import Any, Mapping

import pandas as pd

from .spec import validate
from .families import get_family

__all__ = ["GLMM"]


def _warn_prior_bounded(spec, priors=None) -> None:
    """Before NUTS: name the parameters the data do not bound (separation, a constant
    response, more levels than observations), which the prior alone then determines;
    refuse when that prior is improper (Flat): the posterior does not exist."""
    import warnings

    from .postfit.diagnostics import check_spec, improper_posterior
    findings = check_spec(spec)
    bad = improper_posterior(spec, priors, findings) if priors else None
    if bad is not None:
        raise ValueError(bad.message)
    for f in findings:
        warnings.warn(f"{f.message} For the posterior this means the prior, not the data, bounds those "
                      f"parameters: their posterior is close to the prior (check it, see docs/priors.md).",
                      UserWarning, stacklevel=validate.user_stacklevel())


def _is_auto(centered) -> bool:
    return isinstance(centered, str) and centered == "auto"


class GLMM:
    """A generalized linear mixed model from an lme4-style formula.

    Parameters
    ----------
    formula : str
        lme4 syntax, e.g. ``"Response ~ Month * Treatment + (1 | ID)"``; see
        ``docs/formula.md``.
    data : pandas.DataFrame or dask.dataframe.DataFrame
        Never modified.  A Dask DataFrame is fitted by :meth:`fit_ml` on the workers when every
        random term nests within one factor (docs/scaling.md); the other methods need a pandas frame.
    family : str
        ``"gaussian"``, ``"bernoulli"``, ``"binomial"``, ``"poisson"``, ``"negbinomial"``
        (aliases ``"nbinom2"``, ``"negativebinomial"``), ``"nbinom1"``, ``"gamma"`` or ``"beta"``.
    link : str, optional
        Defaults to the canonical link.
    trials : str or array-like, optional
        Binomial trials (a column name or values), as an alternative to ``cbind``.
    weights : str or array-like, optional
        Prior weights.
    priors : dict, optional
        Per-parameter prior overrides (``bayes_glmm.Prior`` or ``bambi.Prior``) keyed by
        ``"Intercept"``, a coefficient name, ``"beta"`` (all slopes), ``"sd_<group>"``,
        ``"corr_<group>"`` or ``"sigma"``.
    centered : bool, "auto" or dict, optional
        How the sampler sees the random effects: non-centred (False; ``b = sd * u``),
        centred (True; ``b ~ Normal(0, sd)``), for all terms or per term ``{"ID": True}``;
        per term also ``"hierarchical"`` (a ``(1 | g)`` term's levels ``Intercept + b`` are
        sampled, ``~ Normal(Intercept, sd)``).  The default ``"auto"`` keeps every term
        non-centred unless the data pin each group's level down far more tightly than the
        groups spread (median ``I_j sd^2`` over 30: Poisson means over ~20 in groups of 10
        rows spread by an SD of 0.4, counts of 1e7, say): then the
        most informative ``(1 | g)`` term is hierarchically centred and other such terms centred
        (:mod:`bayes_glmm.spec.centering`, docs/posterior.md).  The model is the same either way;
        the draws are reported as ``b_<g>`` in every case.
    zi : str, optional
        Zero inflation (count families): a one-sided fixed-effects formula for the logit of
        the structural-zero probability, as glmmTMB's ``ziformula`` (``"~ x"``; ``"~1"`` for a
        constant).
    hu : str, optional
        The hurdle families (``hurdle_poisson``, ``hurdle_negbinomial``): a one-sided
        fixed-effects formula for the logit of P(y = 0), as glmmTMB's ``ziformula`` with a
        truncated family and brms's ``hu ~``; default ``"~1"``.
    disp : str, optional
        Dispersion formula (gaussian, negbinomial, gamma, beta, student_t: the families whose
        dispersion parameter declares it): a one-sided fixed-effects formula for the log of
        the family's first auxiliary parameter (sigma, theta, shape, phi), as glmmTMB's
        ``dispformula`` (``"~ x"``); None (default) for a constant one.  See docs/families.md.

    Examples
    --------
    >>> import bayes_glmm as bg
    >>> m = bg.GLMM("Response ~ Month * Treatment + (1 | ID)",
    ...             bg.datasets.load("toenail"), family="bernoulli")
    >>> m.spec.X.shape
    (1908, 4)
    """

    def __init__(
        self,
        formula: str,
        data: pd.DataFrame,
        family: str = "gaussian",
        link: str | None = None,
        *,
        trials: Any = None,
        weights: Any = None,
        priors: Mapping[str, Any] | None = None,
        centered: bool | str | Mapping[str, bool | str] = "auto",
        zi: str | None = None,
        hu: str | None = None,
        disp: str | None = None,
    ):
        validate.check_glmm_args(formula, family, link, priors=priors, centered=centered)  # by name, early
        from .ml.distributed import is_dask_frame

        if is_dask_frame(data):  # rows stay on the Dask workers: fit_ml only (docs/scaling.md)
            from .ml.distributed.driver import DaskModel

            self.family = get_family(family, link)
            self._dask = DaskModel(formula, data, self.family, trials=trials, weights=weights, zi=zi, hu=hu,
                                   disp=disp, priors=priors)
            self.spec, self.formula, self.zi, self.hu, self.disp = None, formula, zi, hu, disp
            self.priors, self.centered, self.resolved_priors, self._centered_terms = {}, centered, None, None
            return
        self._dask = None
        from .spec.design import build_spec  # formula -> design -> spec

        self.family = get_family(family, link)
        self.spec = build_spec(formula, data, self.family, trials=trials, weights=weights, zi=zi, hu=hu,
                               disp=disp)
        self.family = self.spec.family  # an ordinal family knows the response's categories
        self.zi = zi
        self.hu = hu
        self.disp = disp
        self.formula = formula
        self.priors = dict(priors or {})
        self.centered = centered
        # validate prior keys and centered names now, at the boundary; the resolved tables
        # (every parameter's prior, every term's parametrization) are what the samplers read
        from .priors import resolve_centered, resolve_priors
        # without overrides there is nothing to check now: the defaults are worked out when a
        # sampler first asks (a model only fitted by ML never needs them)
        self._resolved_priors = resolve_priors(self.spec, self.priors) if self.priors else None
        # "auto" looks at the data (a pass over the rows per term): decided when a sampler first
        # asks, so a model only fitted by ML never pays for it; explicit choices are checked now
        self._centered_terms = None if _is_auto(centered) else resolve_centered(self.spec, centered)

    @property
    def resolved_priors(self) -> dict | None:
        """Every parameter's prior (:func:`bayes_glmm.priors.resolve_priors` of ``priors``);
        None for a model on a Dask frame."""
        if getattr(self, "_resolved_priors", None) is None and getattr(self, "spec", None) is not None:
            from .priors import resolve_priors

            self._resolved_priors = resolve_priors(self.spec, self.priors)
        return self._resolved_priors

    @resolved_priors.setter
    def resolved_priors(self, value) -> None:
        self._resolved_priors = value

    @property
    def centered_terms(self) -> dict:
        """Every term's parametrization for the samplers (:func:`bayes_glmm.priors.resolve_centered`
        of ``centered``): term name -> False, True or ``"hierarchical"``."""
        if self._centered_terms is None:
            from .priors import resolve_centered

            self._centered_terms = resolve_centered(self.spec, self.centered)
        return self._centered_terms

    @centered_terms.setter
    def centered_terms(self, value: dict) -> None:
        self._centered_terms = value

    @classmethod
    def from_bambi(cls, bmb_model, **kwargs) -> "GLMM":
        """The same model as a bambi ``Model``: formula (its random terms uncorrelated, as bambi's
        are), family, link, data, offsets and every prior, converted exactly or refused with a
        ``ValueError`` naming the term and the reason (see docs/bambi-users.md).

        ``kwargs`` go to :class:`GLMM` (``centered=``).
        """
        from .bayes.from_bambi import from_bambi  # bambi's model: the Bayesian subpackage's business
        return from_bambi(bmb_model, cls, **kwargs)

    # ---------------------------------------------------------------- variants
    def with_priors(self, priors: Mapping[str, Any]) -> "GLMM":
        """A copy of this model with some priors overridden (the spec is shared, not rebuilt).

        Parameters
        ----------
        priors : dict
            Overrides merged over this model's own, e.g. ``{"sd_ID": bg.Prior("HalfNormal", sigma=1)}``.
        """
        self._in_memory_only("with_priors")
        from .priors import resolve_priors

        validate.check_mapping(priors, "priors", "{'sd_ID': bg.Prior('HalfNormal', sigma=1)}")
        new = copy.copy(self)
        new.priors = {**self.priors, **dict(priors)}
        new.resolved_priors = resolve_priors(self.spec, new.priors)
        return new

    def with_centered(self, centered: bool | str | Mapping[str, bool | str]) -> "GLMM":
        """A copy of this model with another centered / non-centered choice per term."""
        from .priors import resolve_centered

        new = copy.copy(self)
        new.centered = centered
        new.centered_terms = resolve_centered(self.spec, centered)
        return new

    def _in_memory_only(self, what: str) -> None:
        if getattr(self, "_dask", None) is not None:
            raise ValueError(f"{what}() needs the data in memory; on a Dask DataFrame only fit_ml() runs (on the "
                             f"workers). Collect the data (data.compute()) for {what}(), see docs/scaling.md")

    # ---------------------------------------------------------------- Bayesian path
    def build(self):
        """The PyMC model (random effects parametrized as :attr:`centered_terms`)."""
        self._in_memory_only("build")
        from .bayes import build_pymc_model
        return build_pymc_model(self.spec, self.resolved_priors, self.centered_terms)

    def sample(self, draws: int = 1000, tune: int = 1000, chains: int = 4, *,
               random_seed=None, sampler: str = "auto", **kwargs):
        """Sample the posterior with NUTS; returns :class:`bayes_glmm.results.BayesResults`.

        See :func:`bayes_glmm.bayes.sample` for all options.
        """
        self._in_memory_only("sample")
        validate.check_sample_call(self.spec, draws, tune, chains, random_seed)
        _warn_prior_bounded(self.spec, self.resolved_priors)
        from .bayes import sample
        return sample(self, draws=draws, tune=tune, chains=chains, random_seed=random_seed,
                      sampler=sampler, **kwargs)

    def prior_predictive(self, draws: int = 500, *, random_seed=None):
        """Prior and prior-predictive draws as ``arviz.InferenceData``."""
        self._in_memory_only("prior_predictive")
        validate.check_sample_args(draws, 0, 1, random_seed)
        from .bayes import prior_predictive
        return prior_predictive(self, draws=draws, random_seed=random_seed)

    def fit_inla(self, *, n_points: int | None = None, n_draws: int = 1000, n_agq: int | str = "auto",
                 random_seed=None, log_likelihood: bool | None = None):
        """Approximate posterior in seconds: nested Laplace + adaptive quadrature (as R-INLA / aghq).

        The marginal posterior of the variance and dispersion parameters by the Laplace
        approximation (random effects and fixed effects, and an ordinal model's thresholds,
        integrated out), integrated by adaptive
        Gauss-Hermite quadrature over them (importance sampling above four); the fixed and random
        effects from the mixture of each node's conditional Gaussians.  Same priors as
        :meth:`sample`.  NumPy/SciPy only; see docs/inla.md.

        Parameters
        ----------
        n_points : int, optional
            Gauss-Hermite points per variance/dispersion parameter (default 7 for one, 5 for
            two, 4 for three, 3 for four); above four parameters, the number of
            importance-sampling nodes (default ``max(128, 16 m)``, rounded up to a power of 2).
        n_draws : int
            Independent draws from the approximation in ``idata`` (as two chains of half as many
            when even, which ArviZ's summaries expect).
        n_agq : int or "auto"
            Adaptive Gauss-Hermite nodes for the random effects in the inner step (one scalar
            term; 1 = Laplace).  ``"auto"``: 9 for binary data with one scalar term and at most
            20 trials per group (where Laplace's SD is biased low), else 1.
        random_seed : int, optional
        log_likelihood : bool, optional
            The ``log_likelihood`` group (default: unless draws x rows > 5e7).

        Returns
        -------
        BayesResults
            As :meth:`sample`'s; ``idata.posterior.attrs["method"] == "inla"``.
        """
        self._in_memory_only("fit_inla")
        from .inla import fit_inla
        return fit_inla(self, n_points=n_points, n_draws=n_draws, n_agq=n_agq, random_seed=random_seed,
                        log_likelihood=log_likelihood)

    # ---------------------------------------------------------------- ML path
    def fit_ml(self, n_agq: int = 1, *, reml: bool | None = None, **kwargs):
        """Maximum likelihood (Laplace for ``n_agq=1``, adaptive Gauss-Hermite otherwise).

        Gaussian identity-link models are fitted by profiled REML (default) or ML
        (``reml=False``) like ``lmer``.  Returns :class:`bayes_glmm.ml.results.MLResults`.
        """
        if getattr(self, "_dask", None) is not None:
            validate.check_n_agq(n_agq)
            return self._dask.fit_ml(n_agq, reml=reml, **kwargs)
        validate.check_fit_ml_call(self.spec, n_agq, reml)
        from .ml import fit_ml
        return fit_ml(self.spec, n_agq=n_agq, reml=reml, **kwargs)

    def fit_pql(self, *, dispersion: bool = True, **kwargs):
        """Penalized quasi-likelihood (Breslow & Clayton 1993), like R's ``MASS::glmmPQL``.

        ``dispersion=True`` estimates a dispersion as glmmPQL does; ``False`` fixes it at 1.
        Biased for binary data with few observations per group (see docs/methods.md).
        """
        self._in_memory_only("fit_pql")
        validate.check_fit_pql_call(self.spec, dispersion)
        from .ml.pql import fit_pql
        return fit_pql(self.spec, dispersion=dispersion, **kwargs)

    def __repr__(self) -> str:
        if getattr(self, "_dask", None) is not None:
            return f"GLMM({self.formula!r}, family={self.family.name}, link={self.family.link.name}) on Dask data"
        s = self.spec
        terms = ", ".join(f"{t.name}: {t.q} coef x {t.n_levels} levels" for t in s.terms) or "none"
        return (f"GLMM({self.formula!r}, family={self.family.name}, link={self.family.link.name})\n"
                f"  {s.n} observations, {s.p} fixed effects; random terms: {terms}")

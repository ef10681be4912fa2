"""User-facing results of a maximum-likelihood fit (Laplace, adaptive Gauss-Hermite, (RE)ML).

:class:`MLResults` wraps the raw :class:`bayes_glmm.ml.types.MLFit` produced by the numerics
and exposes lme4's vocabulary: ``fixef``, ``varcorr``, ``ranef``, ``se``, ``vcov``,
``loglik``, ``aic``, ``bic``, ``coef_table()`` and a printed summary that reads like
``summary(glmer(...))``.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import special

from ..covariance import cov_to_sd_corr, theta_pairs, varcorr_frame
from ..results import FitResults, ranef_by_group
from ..spec.model_spec import ModelSpec
from .summary_text import format_summary, summary_html
from .types import SINGULAR_TOL, MLFit
from ..spec.validate import user_stacklevel

__all__ = ["MLResults", "LikelihoodCriteria", "SINGULAR_TOL"]


def _theta_names(spec: ModelSpec) -> list:
    """lme4's ``names(getME(fit, "theta"))``: ``"g.coef"`` and ``"g.row.col"`` for the terms
    with lme4's theta (``us``, ``diag``); ``"g.<name>"`` with the structure's
    :meth:`~bayes_glmm.covariance.base.CovStructure.theta_names` for the others."""
    names = []
    for term in spec.terms:
        cn = term.coef_names
        if term.cov.linear:
            names += [f"{term.group}.{cn[i]}" if i == j else f"{term.group}.{cn[i]}.{cn[j]}"
                      for i, j in theta_pairs(term.q, term.cov.n_corr(term.q) > 0)]
        else:
            names += [f"{term.group}.{nm}" for nm in term.cov.theta_names(cn)]
    return names


def _singular_terms(spec: ModelSpec, lambdas, tol: float) -> list:
    """Messages for terms whose covariance is on the boundary of the parameter space.

    A diagonal entry of a term's relative Cholesky factor below ``tol`` means either the
    coefficient's variance is ~0 (the whole row of Lambda is ~0) or it is an exact linear
    combination of the earlier coefficients (correlation ~ +-1).
    """
    out = []
    for term, L in zip(spec.terms, lambdas):
        L = np.asarray(L, dtype=float)
        cov = L @ L.T
        sd, corr = cov_to_sd_corr(cov)
        if not term.cov.linear:
            # a structure: SDs at 0, or its correlation matrix singular (a correlation
            # parameter at its boundary), said in the structure's own terms
            out += [f"term {term.name!r}: variance of {coef!r} is ~0"
                    for coef, v in zip(term.coef_names, sd) if v < tol]
            if term.q > 1 and np.all(sd >= tol) and np.linalg.eigvalsh(corr)[0] < tol:
                vals = ", ".join(f"{nm} {v:+.3f}" for nm, v in
                                 zip(term.cov.corr_names(term.coef_names), term.cov.corr_values(corr)))
                out.append(f"term {term.name!r}: its {term.cov.name} correlation matrix is singular "
                           f"(a correlation at its boundary: {vals})")
            continue
        for i, coef in enumerate(term.coef_names):
            if abs(L[i, i]) >= tol:
                continue
            if np.sqrt(cov[i, i]) < tol:
                out.append(f"term {term.name!r}: variance of {coef!r} is ~0")
            else:
                j = int(np.argmax(np.abs(corr[i, :i]))) if i > 0 else 0
                out.append(f"term {term.name!r}: correlation of {coef!r} with "
                           f"{term.coef_names[j]!r} is ~{corr[i, j]:+.3f}")
    return out


class LikelihoodCriteria:
    """``deviance``, ``aic`` and ``bic`` from a result's ``loglik``, ``df`` and ``nobs``.

    Shared by :class:`MLResults` and the Dask fit's results
    (:class:`bayes_glmm.ml.distributed.results.DaskMLResults`), which hold the same three numbers.
    """

    @property
    def deviance(self) -> float:
        """-2 log-likelihood (the REML criterion for REML fits)."""
        return -2.0 * self.loglik

    @property
    def aic(self) -> float:
        """-2 logLik + 2 df."""
        return -2.0 * self.loglik + 2.0 * self.df

    @property
    def bic(self) -> float:
        """-2 logLik + log(n) df, n the number of observations."""
        return -2.0 * self.loglik + np.log(self.nobs) * self.df


class MLResults(FitResults, LikelihoodCriteria):
    """Results of :func:`bayes_glmm.ml.fit_ml`.

    Parameters
    ----------
    spec : ModelSpec
        The fitted model's specification.
    fit : MLFit
        Raw estimates from the numerics.

    Attributes
    ----------
    spec : ModelSpec
    fit : MLFit
    singular_terms : list of str
        One message per boundary (singular) covariance component; empty if none.

    Warns
    -----
    UserWarning
        At construction when the fit is singular, naming the term.

    Examples
    --------
    >>> import bayes_glmm as bg                                          # doctest: +SKIP
    >>> res = bg.GLMM("Reaction ~ Days + (Days | Subject)",
    ...               bg.datasets.load("sleepstudy")).fit_ml()           # doctest: +SKIP
    >>> res.fixef                                                        # doctest: +SKIP
    (Intercept)    251.405105
    Days            10.467286
    Name: Estimate, dtype: float64
    """

    def __init__(self, spec: ModelSpec, fit: MLFit):
        super().__init__(spec)
        if not isinstance(fit, MLFit):
            raise ValueError(f"fit must be an MLFit from bayes_glmm.ml, got {type(fit).__name__}")
        p = spec.p
        if np.shape(fit.beta) != (p,):
            raise ValueError(f"fit.beta has shape {np.shape(fit.beta)} but the spec has {p} fixed effects "
                             f"{spec.fixed_names}; the fit does not belong to this spec")
        if len(fit.lambdas) != len(spec.terms) or len(fit.b) != len(spec.terms):
            raise ValueError(f"fit has {len(fit.lambdas)} Lambda blocks and {len(fit.b)} random-effect "
                             f"blocks but the spec has {len(spec.terms)} random terms")
        self.fit = fit
        self.singular_terms = _singular_terms(spec, fit.lambdas, SINGULAR_TOL)
        if self.singular_terms:
            warnings.warn(
                "boundary (singular) fit: " + "; ".join(self.singular_terms)
                + ". Consider simplifying the random-effects structure (drop the term or use "
                "(x || g) for uncorrelated effects).", UserWarning, stacklevel=user_stacklevel())

    # ------------------------------------------------------------------ basics
    @property
    def method(self) -> str:
        """``"REML"``, ``"ML"``, ``"Laplace"`` or ``"AGQ(n)"``."""
        return self.fit.method

    @property
    def reml(self) -> bool:
        return bool(self.fit.reml)

    @property
    def n_agq(self) -> int:
        return int(self.fit.n_agq)

    @property
    def nobs(self) -> int:
        """Number of observations used."""
        return int(self.spec.n)

    @property
    def ngrps(self) -> pd.Series:
        """Number of levels per random term (lme4's ``ngrps``)."""
        return pd.Series({t.name: t.n_levels for t in self.spec.terms}, dtype=int)

    @property
    def sigma(self) -> float | None:
        """Residual SD (gaussian family; a GLMM family's auxiliary parameter ``sigma`` where it
        has one), else None."""
        if self.fit.sigma is not None:
            return float(self.fit.sigma)
        aux = self.fit.aux or {}
        if "sigma" in aux and np.ndim(aux["sigma"]) > 0:
            return None  # a dispersion formula's sigma varies by row: fixef_disp
        return float(aux["sigma"]) if "sigma" in aux else None

    @property
    def _scale(self) -> float:
        return float(self.fit.sigma) ** 2 if (self.spec.family.has_sigma and self.fit.sigma is not None) else 1.0

    @property
    def theta(self) -> pd.Series:
        """lme4's covariance parameters (relative Cholesky factors), with lme4's names."""
        return pd.Series(np.asarray(self.fit.theta, dtype=float), index=_theta_names(self.spec),
                         name="theta")

    @property
    def optimizer(self) -> dict:
        """Optimizer diagnostics: start, final theta, n_evals, grad_norm, converged, messages."""
        return dict(self.fit.optimizer)

    @property
    def optinfo(self) -> dict:
        """Convergence record of the fit (like lme4's ``fit@optinfo``).

        Keys: ``optimizer`` ("L-BFGS-B"), ``converged``, ``code`` (0 = OK, 1 = not
        converged), ``max_abs_grad`` (max |projected gradient| of the deviance at the
        end), ``scaled_criterion`` (the Newton decrement g'H^-1 g on the free parameters;
        the fit is converged when it is below 1e-4 and the Hessian there is positive
        definite), ``scaled_step`` (max |H^-1 g|, lme4's scaled gradient), ``criterion``,
        ``hessian_pd``, ``n_active_bounds``, ``n_evals``, ``n_restarts`` with
        ``restart_starts`` and ``restart_logliks`` (restarts after a failed check),
        ``n_starts`` and ``start_logliks`` (``fit_ml(n_starts=k)``), ``multimodal`` (the
        starts ended > 1e-3 apart in logLik), ``warnings`` and ``messages``.
        Fits built without one (e.g. by hand) get a record derived from ``optimizer``.
        """
        info = self.fit.optimizer.get("optinfo")
        if info:
            return dict(info)
        opt = self.fit.optimizer
        conv = bool(opt.get("converged", True))
        msgs = opt.get("messages") or []
        return {"optimizer": "L-BFGS-B", "converged": conv, "code": 0 if conv else 1,
                "max_abs_grad": float(opt.get("grad_norm", np.nan)), "scaled_criterion": float("nan"),
                "scaled_step": float("nan"), "criterion": "max |gradient|", "hessian_pd": opt.get("hessian_pd"),
                "n_active_bounds": 0, "n_evals": int(opt.get("n_evals", 0)), "n_restarts": 0,
                "restart_starts": [], "restart_logliks": [], "n_starts": 1, "start_logliks": [],
                "multimodal": False, "warnings": [] if conv else ["not converged"],
                "messages": [msgs] if isinstance(msgs, str) else list(msgs)}

    @property
    def converged(self) -> bool:
        return bool(self.fit.optimizer.get("converged", True))

    @property
    def is_singular(self) -> bool:
        """True when a variance is ~0 or a correlation ~ +-1 (see :attr:`singular_terms`)."""
        return bool(self.singular_terms)

    # ------------------------------------------------------------------ fixed effects
    @property
    def fixef(self) -> pd.Series:
        """Fixed-effect estimates indexed by coefficient name."""
        return pd.Series(np.asarray(self.fit.beta, dtype=float), index=list(self.spec.fixed_names),
                         name="Estimate")

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of the fixed-effect estimates."""
        names = list(self.spec.fixed_names)
        return pd.DataFrame(np.asarray(self.fit.vcov_beta, dtype=float), index=names, columns=names)

    @property
    def se(self) -> pd.Series:
        """Standard errors of the fixed effects."""
        v = np.diag(np.asarray(self.fit.vcov_beta, dtype=float))
        return pd.Series(np.sqrt(np.clip(v, 0.0, None)), index=list(self.spec.fixed_names),
                         name="Std. Error")

    @property
    def _uses_t(self) -> bool:
        # lmer reports t values without p-values (the residual SD profiled out); the Laplace
        # fits report z values, as glmer and glmmTMB do
        return self.spec.is_lmm

    def coef_table(self, ddf=None) -> pd.DataFrame:
        """Wald table: Estimate, Std. Error, z value, Pr(>|z|).

        For gaussian fits (REML / ML, like ``lmer``) the statistic is labelled
        ``t value`` and no p-value is given, since its reference distribution is not
        standard normal for small samples.

        Parameters
        ----------
        ddf : {None, "satterthwaite", "kenward-roger"}
            None: the table above.  Otherwise ``lmerTest``'s ``summary(m, ddf = ...)``:
            columns ``estimate, se, df, t, p`` with Satterthwaite or Kenward-Roger
            denominator df for LMMs (KR also adjusts ``se``; REML fits only); GLMMs get
            z tests in the same columns with ``df = inf``.  See :mod:`bayes_glmm.ml.inference.ddf`.
        """
        if ddf is not None:
            from .inference.ddf import coef_table_ddf, normalize_ddf
            return coef_table_ddf(self, normalize_ddf(ddf))
        est, se = self.fixef, self.se
        with np.errstate(divide="ignore", invalid="ignore"):
            stat = est / se
        if self._uses_t:
            return pd.DataFrame({"Estimate": est, "Std. Error": se, "t value": stat})
        p = 2.0 * special.ndtr(-np.abs(stat))
        return pd.DataFrame({"Estimate": est, "Std. Error": se, "z value": stat, "Pr(>|z|)": p})

    def conf_int(self, level: float = 0.95) -> pd.DataFrame:
        """Wald confidence intervals for the fixed effects."""
        if not 0.0 < level < 1.0:
            raise ValueError(f"level={level!r} must be strictly between 0 and 1, e.g. 0.95")
        z = special.ndtri(0.5 + level / 2.0)
        lo, hi = f"{100 * (1 - level) / 2:g} %", f"{100 * (1 + level) / 2:g} %"
        return pd.DataFrame({lo: self.fixef - z * self.se, hi: self.fixef + z * self.se})

    # ------------------------------------------------------------------ zero inflation, dispersion
    def _require_zi(self, what: str) -> None:
        if not self.spec.has_zi:
            raise AttributeError(f"{what}: this model has no zero-inflation part (fit with zi='~ ...' "
                                 f"and a count family)")

    @property
    def fixef_zi(self) -> pd.Series:
        """Zero-inflation coefficients (logit of the structural-zero probability), models with ``zi``."""
        self._require_zi("fixef_zi")
        return pd.Series(np.asarray(self.fit.beta_zi, dtype=float), index=list(self.spec.zi_names),
                         name="Estimate")

    @property
    def vcov_zi(self) -> pd.DataFrame:
        """Covariance of the zero-inflation coefficients."""
        self._require_zi("vcov_zi")
        k = self.spec.p_zi
        names = list(self.spec.zi_names)
        return pd.DataFrame(np.asarray(self.fit.vcov_aux, dtype=float)[:k, :k], index=names, columns=names)

    @property
    def se_zi(self) -> pd.Series:
        """Standard errors of :attr:`fixef_zi`."""
        v = np.diag(self.vcov_zi.to_numpy())
        return pd.Series(np.sqrt(np.clip(v, 0.0, None)), index=list(self.spec.zi_names), name="Std. Error")

    def coef_table_zi(self) -> pd.DataFrame:
        """Wald z table of the zero-inflation model (glmmTMB's "Zero-inflation model" block)."""
        est, se = self.fixef_zi, self.se_zi
        with np.errstate(divide="ignore", invalid="ignore"):
            stat = est / se
        return pd.DataFrame({"Estimate": est, "Std. Error": se, "z value": stat,
                             "Pr(>|z|)": 2.0 * special.ndtr(-np.abs(stat))})

    def _require_disp(self, what: str) -> None:
        if not self.spec.has_disp:
            raise AttributeError(f"{what}: this model has no dispersion formula (fit with disp='~ ...')")

    @property
    def fixef_disp(self) -> pd.Series:
        """Dispersion-model coefficients (models with ``disp=``): the log of the family's first
        auxiliary parameter (sigma, theta, shape, phi) is ``X_disp @ fixef_disp``."""
        self._require_disp("fixef_disp")
        return pd.Series(np.asarray(self.fit.beta_disp, dtype=float), index=list(self.spec.disp_names),
                         name="Estimate")

    @property
    def vcov_disp(self) -> pd.DataFrame:
        """Covariance of the dispersion-model coefficients."""
        self._require_disp("vcov_disp")
        k0, k = self.spec.p_zi, self.spec.p_disp
        names = list(self.spec.disp_names)
        return pd.DataFrame(np.asarray(self.fit.vcov_aux, dtype=float)[k0:k0 + k, k0:k0 + k], index=names,
                            columns=names)

    @property
    def se_disp(self) -> pd.Series:
        """Standard errors of :attr:`fixef_disp`."""
        v = np.diag(self.vcov_disp.to_numpy())
        return pd.Series(np.sqrt(np.clip(v, 0.0, None)), index=list(self.spec.disp_names), name="Std. Error")

    def coef_table_disp(self) -> pd.DataFrame:
        """Wald z table of the dispersion model (glmmTMB's "Dispersion model" block; the log of
        the family's first auxiliary parameter, see docs/families.md for glmmTMB's scale)."""
        est, se = self.fixef_disp, self.se_disp
        with np.errstate(divide="ignore", invalid="ignore"):
            stat = est / se
        return pd.DataFrame({"Estimate": est, "Std. Error": se, "z value": stat,
                             "Pr(>|z|)": 2.0 * special.ndtr(-np.abs(stat))})

    @property
    def dispersion(self) -> pd.Series:
        """The family's auxiliary parameters, each named as the family names it
        (``family.aux_params``, any number of them).

        ``theta`` (negbinomial: Var = mu + mu^2/theta, glmer.nb's theta and glmmTMB's sigma),
        ``phi`` (nbinom1: Var = mu (1 + phi); beta: Var = mu (1 - mu)/(1 + phi); glmmTMB's
        sigma), ``shape`` (gamma: Var = mu^2/shape; glmmTMB's sigma is 1/sqrt(shape)),
        ``sigma`` (gaussian residual SD), ``sigma`` and ``df`` for a Student-t family; empty
        for bernoulli, binomial and poisson.
        """
        if self.fit.aux:
            # with a dispersion formula its parameter varies by row (fixef_disp): left out
            return pd.Series({k: float(v) for k, v in self.fit.aux.items() if np.ndim(v) == 0}, name="dispersion",
                             dtype=float)
        if self.spec.is_lmm and self.fit.sigma is not None:
            return pd.Series({"sigma": float(self.fit.sigma)}, name="dispersion")
        return pd.Series(dtype=float, name="dispersion")

    def dispersion_table(self, level: float = 0.95) -> pd.DataFrame:
        """The auxiliary parameters (GLMM path) with Wald SEs and intervals on the scale they
        are estimated on (the log of a positive one), the interval transformed back: one row per
        parameter, columns Estimate, log, SE(log), lower, upper (for a real-valued parameter
        ``log`` is NaN and SE(log) its plain SE)."""
        fam = self.spec.family
        cols = ["Estimate", "log", "SE(log)", "lower", "upper"]
        if not self.fit.aux:
            return pd.DataFrame(columns=cols)
        v = np.asarray(self.fit.vcov_aux, dtype=float)
        k0 = self.spec.p_zi if self.spec.has_zi else 0
        z = special.ndtri(0.5 + level / 2.0)
        rows = {}
        na = len(fam.aux_params)
        if v.size and any(a.support == "ordered" for a in fam.aux_params):
            # ordered parameters (thresholds) are estimated as gaps: their own SEs by the delta method
            from .auxpar import aux_coords, aux_jacobian

            J = aux_jacobian(fam, aux_coords(fam, self.fit.aux))
            v = v.copy()
            v[k0:k0 + na, k0:k0 + na] = J @ v[k0:k0 + na, k0:k0 + na] @ J.T
        for j, a in enumerate(fam.aux_params):
            if self.spec.has_disp:  # the first is the dispersion model's (coef_table_disp)
                if j == 0:
                    continue
                j = j - 1 + self.spec.p_disp
            est = float(self.fit.aux[a.name])
            se = float(np.sqrt(max(v[k0 + j, k0 + j], 0.0))) if v.size else np.nan
            if a.support == "positive":
                rows[a.name] = [est, np.log(est), se, est * np.exp(-z * se), est * np.exp(z * se)]
            else:
                rows[a.name] = [est, np.nan, se, est - z * se, est + z * se]
        return pd.DataFrame.from_dict(rows, orient="index", columns=cols)

    def _zero_part_aux(self, idx=None) -> dict:
        return dict(self.fit.aux or {})

    def _zi_eta(self, design):
        if not self.spec.has_zi:
            return None
        return np.asarray(design.X_zi, dtype=float) @ np.asarray(self.fit.beta_zi, dtype=float)

    def residuals(self, kind: str = "pearson", *, n_sim: int = 250, random_seed=None, group=None):
        """Conditional residuals at the fitted random effects (lme4's ``residuals(m, type=)``).

        Parameters
        ----------
        kind : {"pearson", "response", "simulated"}
            ``"response"``: ``y - E[y | b]`` (successes for binomial); ``"pearson"``: divided
            by the conditional SD (sigma for an LMM, as lme4's "scaled residuals"; the
            family's variance at the fitted mean and dispersion otherwise, zero inflation
            included); ``"simulated"``: DHARMa's scaled residuals in [0, 1] from ``n_sim``
            responses simulated with new random effects (:meth:`simulate`), see
            :meth:`~bayes_glmm.results.FitResults.residuals`.
        n_sim, random_seed, group
            For ``"simulated"`` only (``group``: per-group residuals, DHARMa's
            ``recalculateResiduals(group=)``).
        """
        if kind == "simulated":
            return super().residuals(kind, n_sim=n_sim, random_seed=random_seed, group=group)
        if group is not None:
            raise ValueError("group= is for kind='simulated' (DHARMa's per-group residuals)")
        if kind not in ("pearson", "response"):
            raise ValueError(f"kind={kind!r}: choose 'pearson', 'response' or 'simulated'")
        spec, fam = self.spec, self.spec.family
        y = np.asarray(spec.y, dtype=float)
        n = np.asarray(spec.trials, dtype=float) if fam.needs_trials and spec.trials is not None else 1.0
        eta = self.predict(kind="link")
        mu = np.asarray(fam.mean(eta), dtype=float)
        if spec.is_lmm:
            m, var = mu, np.full_like(mu, float(self.fit.sigma) ** 2)
        else:
            aux = self.fit.aux or {}
            m, var = n * mu, np.asarray(fam.response_variance(mu, n, **aux), dtype=float)
            if spec.has_zi:
                from scipy.special import expit
                pi = expit(self._zi_eta(self._design(None)))
                m, var = fam.zero_part_moments(m, var, pi, **aux)
        r = y - m
        if kind == "response":
            return r
        with np.errstate(divide="ignore", invalid="ignore"):
            return r / np.sqrt(var)

    # ------------------------------------------------------------------ random effects
    @property
    def covs(self) -> list:
        """Per-term covariance matrices: sigma^2 Lambda Lambda' (gaussian) or Lambda Lambda'."""
        s2 = self._scale
        return [s2 * (np.asarray(L) @ np.asarray(L).T) for L in self.fit.lambdas]

    @property
    def varcorr(self) -> pd.DataFrame:
        """lme4's ``as.data.frame(VarCorr(fit))``: grp, var1, var2, vcov, sdcor."""
        sigma = self.sigma if self.spec.is_lmm else None
        return varcorr_frame(self.spec.terms, self.covs, sigma)

    @property
    def ranef(self) -> dict:
        """Conditional modes of the random effects: group -> DataFrame (levels x coefficients)."""
        return ranef_by_group(self.spec, self.fit.b)

    @property
    def ranef_sd(self) -> dict:
        """Conditional SDs of the random effects, shaped like :attr:`ranef`."""
        return ranef_by_group(self.spec, self.fit.b_sd)

    # ------------------------------------------------------------------ likelihood
    @property
    def loglik(self) -> float:
        """Log-likelihood at the optimum (the REML criterion's for REML fits)."""
        return float(self.fit.loglik)

    @property
    def df(self) -> int:
        """Number of estimated parameters (fixed effects, theta, sigma or the dispersion, and
        the zero-inflation coefficients)."""
        return int(self.fit.n_params)

    @property
    def df_resid(self) -> int:
        return self.nobs - self.df

    # ------------------------------------------------------------------ contract
    def summary(self) -> pd.DataFrame:
        """The fixed-effects table (:meth:`coef_table`); ``print(res)`` shows the full text."""
        return self.coef_table()

    def _point_params(self):
        beta = np.asarray(self.fit.beta, dtype=float)
        b = [np.asarray(bk, dtype=float) for bk in self.fit.b]
        return beta, b, self.covs, self.sigma

    def _predict_interval(self, design, kind, interval, level, re_form, new_levels, rng, **kw):
        """Delta-method or bootstrap intervals: :mod:`bayes_glmm.ml.inference.predict_interval`."""
        from .inference.predict_interval import ml_predict_interval
        return ml_predict_interval(self, design, kind, interval, level, re_form, new_levels, rng, **kw)

    def anova(self, ddf: str = "satterthwaite", type=3) -> pd.DataFrame:
        """F tests per fixed-effect term, as ``lmerTest::anova(m, type, ddf)``.

        Parameters
        ----------
        ddf : {"satterthwaite", "kenward-roger"}
            Denominator df method (KR: REML fits only, with the KR-scaled F).
        type : {3, 1}
            3: marginal hypotheses (lmerTest's type III, valid under treatment coding);
            1: sequential.

        Returns
        -------
        pandas.DataFrame
            Indexed by term label as R prints it (``"Days"``, ``"Month:Treatment"``):
            ``sum_sq, mean_sq, num_df, den_df, F, p``.  For GLMMs: Wald chi-square / num_df
            with ``den_df = inf`` and no sums of squares.  See :mod:`bayes_glmm.ml.inference.anova`.
        """
        from .inference.anova import anova_table
        return anova_table(self, ddf=ddf, type=type)

    def _repr_text(self) -> str:
        return format_summary(self)

    def __str__(self) -> str:
        return format_summary(self)

    def _repr_html_(self) -> str:
        return summary_html(self)

    # ------------------------------------------------------------------ intervals, bootstrap
    def confint(self, level: float = 0.95, method: str = "wald", n_boot: int = 1000, random_seed=None,
                *, parm=None) -> pd.DataFrame:
        """Confidence intervals for the fixed effects and the variance parameters.

        Parameters
        ----------
        level : float
            Confidence level, strictly between 0 and 1.
        method : {"wald", "profile", "boot"}
            ``"wald"``: normal intervals for the fixed effects (and zero-inflation
            coefficients); NaN for the variance parameters, as lme4's ``method = "Wald"``.
            ``"profile"``: profile-likelihood intervals as lme4's ``confint.merMod``
            (:mod:`bayes_glmm.ml.inference.profile`; LMMs, including REML fits, are profiled on the
            ML deviance as lme4 does).  ``"boot"``: percentile intervals of a parametric
            bootstrap (:meth:`bootstrap` with ``n_boot`` replicates, no progress bar, one
            process; failed refits dropped).  For a progress bar or several processes call
            :meth:`bootstrap` and take ``boot.quantile([0.025, 0.975]).T``.
        n_boot : int
            Bootstrap replicates for ``method="boot"`` (at least 10).
        random_seed : int or numpy.random.SeedSequence, optional
            Seed of the bootstrap.
        parm : list of str, optional
            Only these parameters (names as in the returned index); ``"profile"`` then
            profiles only these.

        Returns
        -------
        pandas.DataFrame
            Columns ``lower``, ``upper``, indexed by the fixed-effect names, then
            ``sd_<coef>|<group>``, ``cor_<coef1>.<coef2>|<group>``, ``sigma`` (gaussian), the
            dispersion (``theta``, ``phi``, ``shape``) and ``zi_<coef>`` (zero inflation).
            ``attrs`` records the method and level (``"profile"``: also notes and seconds).

        Raises
        ------
        ValueError
            Unknown ``method``, ``level`` outside (0, 1), ``n_boot < 10``, unknown ``parm``.

        Examples
        --------
        >>> res.confint(method="profile")                               # doctest: +SKIP
                                           lower       upper
        (Intercept)                   237.680690  265.129520
        Days                            7.358652   13.575920
        sd_(Intercept)|Subject         14.381384   37.716055
        ...
        """
        from .inference.profile import param_index, profile_confint, wald_confint

        meth = str(method).lower()
        if meth not in ("wald", "profile", "boot"):
            raise ValueError(f"method={method!r} is not one of 'wald', 'profile', 'boot'")
        if not (isinstance(level, (int, float, np.floating)) and 0.0 < float(level) < 1.0):
            raise ValueError(f"level={level!r} must be strictly between 0 and 1, e.g. 0.95")
        if meth == "boot" and (not isinstance(n_boot, (int, np.integer)) or n_boot < 10):
            raise ValueError(f"n_boot={n_boot!r} must be an integer >= 10 for percentile intervals "
                             f"(use 1000 or more for 95% limits)")
        idx = param_index(self.spec)
        if parm is not None:
            parm = [parm] if isinstance(parm, str) else list(parm)
            bad = [p for p in parm if p not in idx]
            if bad:
                raise ValueError(f"parm: unknown parameter(s) {bad}; choose from {idx}")
        level = float(level)
        if meth == "profile":
            return profile_confint(self, level, parm)
        if meth == "wald":
            out = wald_confint(self, level)
        else:
            boot = self.bootstrap(n=n_boot, random_seed=random_seed, progressbar=False)
            a = (1.0 - level) / 2.0
            out = pd.DataFrame({"lower": boot.quantile(a), "upper": boot.quantile(1.0 - a)})
            out.attrs.update({"n_boot": int(n_boot), "n_failed": boot.attrs.get("n_failed", 0)})
        out.attrs.update({"method": meth, "level": level})
        return out if parm is None else out.loc[parm]

    def bootstrap(self, n: int = 1000, random_seed=None, progressbar: bool = True, n_jobs: int = 1) -> pd.DataFrame:
        """Parametric bootstrap, as lme4's ``bootMer(fit, FUN, nsim = n)``.

        Each replicate simulates a response from the fitted model (random effects drawn
        anew, see :meth:`simulate`) and refits it by the same method (REML / ML / Laplace /
        AGQ), warm-started from this fit's estimates.

        Parameters
        ----------
        n : int
            Number of replicates (>= 1).
        random_seed : int or numpy.random.SeedSequence, optional
            Replicate ``i`` uses the ``i``-th ``SeedSequence`` child, so the result is the same
            for any ``n_jobs``.
        progressbar : bool
            Show a tqdm bar (when tqdm is installed).
        n_jobs : int
            Worker processes (``concurrent.futures.ProcessPoolExecutor``); 1 runs in-process.

        Returns
        -------
        pandas.DataFrame
            One row per replicate, columns as the index of :meth:`confint`; rows of failed
            refits are NaN.  ``attrs``: ``n``, ``random_seed``, ``n_failed``, ``failures``
            (replicate -> message), ``n_nonconverged``, ``n_singular``, ``estimate``.
        """
        from .inference.bootstrap import bootstrap

        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n={n!r} must be a positive integer number of bootstrap replicates")
        if not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1:
            raise ValueError(f"n_jobs={n_jobs!r} must be a positive integer number of worker processes")
        return bootstrap(self, n=int(n), random_seed=random_seed, progressbar=bool(progressbar), n_jobs=int(n_jobs))

    def _residual_simulations(self, n_sim: int, random_seed) -> np.ndarray:
        # unconditional: new random effects per replicate, as DHARMa with lme4's simulate()
        return self.simulate(n_sim, random_seed=random_seed).to_numpy(dtype=float)

    def simulate(self, n: int = 1, random_seed=None) -> pd.DataFrame:
        """Responses simulated from the fitted model, as lme4's ``simulate(fit, nsim = n)``.

        New random effects ``b ~ N(0, Sigma_hat)`` per replicate, then the response from the
        family's conditional distribution (gaussian: SD ``sigma / sqrt(weight)``; binomial:
        successes out of the fitted trials; zero-inflated: structural zeros included).

        Returns
        -------
        pandas.DataFrame
            Columns ``sim_1 .. sim_n``, indexed like the fitted rows.
        """
        from .inference.bootstrap import simulate_responses

        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n={n!r} must be a positive integer number of simulations")
        return simulate_responses(self, n=int(n), random_seed=random_seed)

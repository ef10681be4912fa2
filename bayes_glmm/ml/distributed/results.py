"""Results of a Dask fit: the in-memory :class:`~bayes_glmm.ml.results.MLResults` vocabulary for
everything that needs no rows (estimates, standard errors, variance components, conditional
modes, likelihood and information criteria).

What needs the rows (residuals, fitted values, ``predict``, ``simulate``, bootstrap, profile
intervals, Satterthwaite df) is not offered: those would pull the data to the driver.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from ..results import LikelihoodCriteria

__all__ = ["DaskMLResults"]


class DaskMLResults(LikelihoodCriteria):
    """Maximum-likelihood results of a GLMM fitted on a Dask DataFrame.

    Attributes
    ----------
    fit : MLFit
        The raw estimates (``b`` holds the conditional modes per term, in the data's level order).
    nobs : int
        Rows used (after dropping missing values), summed over partitions.
    n_partitions : int
        Partitions that held rows.
    partition_by : str
        The column the data were split by.
    """

    def __init__(self, fit, glob, *, formula: str, family, partition_by: str):
        self.fit = fit
        self.formula = formula
        self.family = family
        self.partition_by = partition_by
        self.nobs = int(glob.n)
        self.n_dropped = int(glob.n_dropped)
        self.n_partitions = int(glob.n_partitions)
        self.terms = glob.terms
        self.fixed_names = tuple(glob.fixed_names)

    # ------------------------------------------------------------------ fixed effects
    @property
    def fixef(self) -> pd.Series:
        return pd.Series(np.asarray(self.fit.beta, dtype=float), index=list(self.fixed_names), name="Estimate")

    @property
    def vcov(self) -> pd.DataFrame:
        names = list(self.fixed_names)
        return pd.DataFrame(np.asarray(self.fit.vcov_beta, dtype=float), index=names, columns=names)

    @property
    def se(self) -> pd.Series:
        v = np.diag(np.asarray(self.fit.vcov_beta, dtype=float))
        return pd.Series(np.sqrt(np.clip(v, 0.0, None)), index=list(self.fixed_names), name="Std. Error")

    def coef_table(self) -> pd.DataFrame:
        """Wald table: Estimate, Std. Error, z value, Pr(>|z|) (as ``MLResults.coef_table``)."""
        est, se = self.fixef, self.se
        with np.errstate(divide="ignore", invalid="ignore"):
            stat = est / se
        return pd.DataFrame({"Estimate": est, "Std. Error": se, "z value": stat,
                             "Pr(>|z|)": 2.0 * special.ndtr(-np.abs(stat))})

    def conf_int(self, level: float = 0.95) -> pd.DataFrame:
        """Wald confidence intervals for the fixed effects."""
        if not 0.0 < level < 1.0:
            raise ValueError(f"level must be in (0, 1); got {level!r}")
        z = float(special.ndtri(0.5 + level / 2.0))
        est, se = self.fixef, self.se
        lo, hi = f"{100 * (1 - level) / 2:g} %", f"{100 * (1 + level) / 2:g} %"
        return pd.DataFrame({lo: est - z * se, hi: est + z * se})

    def summary(self) -> pd.DataFrame:
        return self.coef_table()

    # ------------------------------------------------------------------ random effects
    @property
    def theta(self) -> pd.Series:
        return pd.Series(np.asarray(self.fit.theta, dtype=float))

    @property
    def covs(self) -> list:
        return [np.asarray(L) @ np.asarray(L).T for L in self.fit.lambdas]

    @property
    def varcorr(self) -> pd.DataFrame:
        """lme4's ``as.data.frame(VarCorr(fit))``: grp, var1, var2, vcov, sdcor."""
        from ...covariance import varcorr_frame

        return varcorr_frame(self.terms, self.covs, self.sigma)

    @property
    def sigma(self):
        """Residual SD (gaussian models), else None."""
        return None if self.fit.sigma is None else float(self.fit.sigma)

    @property
    def ngrps(self) -> pd.Series:
        return pd.Series({t.name: t.n_levels for t in self.terms}, dtype=int)

    def _by_group(self, arrays) -> dict:
        out: dict = {}
        for t, a in zip(self.terms, arrays):
            df = pd.DataFrame(np.asarray(a), index=t.levels, columns=list(t.coef_names))
            df.index.name = t.group
            out[t.group] = df if t.group not in out else out[t.group].join(
                df[[c for c in df.columns if c not in out[t.group].columns]], how="outer")
        return out

    @property
    def ranef(self) -> dict:
        """Conditional modes: group -> DataFrame (levels x coefficients), gathered from the workers
        (one row per level: small next to the data)."""
        return self._by_group(self.fit.b)

    @property
    def ranef_sd(self) -> dict:
        return self._by_group(self.fit.b_sd)

    # ------------------------------------------------------------------ likelihood
    @property
    def loglik(self) -> float:
        return float(self.fit.loglik)

    @property
    def df(self) -> int:
        return int(self.fit.n_params)

    @property
    def aux(self):
        """The family's auxiliary parameters (negative binomial theta, ...) by name, or None."""
        return self.fit.aux

    @property
    def converged(self) -> bool:
        return bool(self.fit.optimizer.get("converged", True))

    @property
    def optimizer(self) -> dict:
        return self.fit.optimizer

    def __str__(self) -> str:
        head = (f"Generalized linear mixed model fit by maximum likelihood ({self.fit.method}) on Dask data "
                f"[{self.family.name}, {self.family.link.name} link]\n Formula: {self.formula}\n"
                f"     AIC      BIC   logLik deviance\n"
                f"{self.aic:8.1f} {self.bic:8.1f} {self.loglik:8.1f} {self.deviance:8.1f}\n\n"
                f"Random effects:\n")
        vc = self.varcorr.to_string(index=False)
        grp = ", ".join(f"{t.name}, {t.n_levels}" for t in self.terms)
        return (head + vc + f"\nNumber of obs: {self.nobs}, groups: {grp}; {self.n_partitions} partitions by "
                f"{self.partition_by!r}\n\nFixed effects:\n" + self.coef_table().to_string())

    __repr__ = __str__

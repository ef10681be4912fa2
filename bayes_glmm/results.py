"""The results layer shared by posterior and ML fits.

Both :class:`bayes_glmm.bayes.BayesResults` and
:class:`bayes_glmm.ml.results.MLResults` derive from :class:`FitResults` and expose the
same accessors with the same shapes (lme4 vocabulary):

``fixef``    pandas.Series indexed by coefficient name
``varcorr``  DataFrame like lme4's ``as.data.frame(VarCorr(fit))``: grp, var1, var2, vcov, sdcor
``ranef``    dict: grouping factor -> DataFrame (levels x coefficients)
``summary()`` DataFrame; ``repr`` prints readable text, ``_repr_html_`` renders in notebooks
``predict(newdata, kind, new_levels, interval=None | "confidence" | "prediction", level)``
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .spec.model_spec import ModelSpec, NewDesign

__all__ = ["FitResults", "linear_predictor", "ranef_by_group", "KINDS", "NEW_LEVELS", "INTERVALS"]

KINDS = ("link", "mean", "response", "probs")
NEW_LEVELS = ("population", "sample", "error")


def check_predict_args(kind: str, new_levels: str) -> None:
    """Validate ``predict``'s ``kind`` and ``new_levels`` (shared by ML and posterior results)."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not one of {KINDS}")
    if new_levels not in NEW_LEVELS:
        raise ValueError(f"new_levels={new_levels!r} is not one of {NEW_LEVELS}")


INTERVALS = ("confidence", "prediction")


def check_interval_args(interval, kind: str, level, re_form) -> None:
    """Validate ``predict``'s interval arguments (shared by ML and posterior results)."""
    if interval not in INTERVALS:
        raise ValueError(f"interval={interval!r} is not one of None, {INTERVALS}")
    if re_form not in ("full", None):
        raise ValueError(f"re_form={re_form!r} must be 'full' or None")
    ok = ("link", "mean", "probs") if interval == "confidence" else ("mean", "response")
    if kind not in ok:
        raise ValueError(f"kind={kind!r} with interval={interval!r}: choose kind from {ok} (a prediction "
                         f"interval is for a new response; a confidence interval for eta or the mean)")
    if not (isinstance(level, (int, float, np.floating)) and 0.0 < float(level) < 1.0):
        raise ValueError(f"level={level!r} must be strictly between 0 and 1, e.g. 0.95")


def new_level_mask(design: NewDesign, k: int):
    """Rows of ``design`` whose level of term ``k`` was not in the fitted data."""
    return np.asarray(design.codes[k]) < 0


def linear_predictor(spec: ModelSpec, design: NewDesign, beta, b_terms, covs=None,
                     new_levels: str = "population", rng=None, include_random: bool = True):
    """eta for new data from one set of parameters (pure function).

    Parameters
    ----------
    spec : ModelSpec
    design : NewDesign
    beta : array (p,)
    b_terms : list of arrays (n_levels_k, q_k), one per term
    covs : list of (q_k, q_k) covariance matrices, needed for ``new_levels="sample"``
    new_levels : {"population", "sample", "error"}
        What a level unseen in the fit gets: zero (population-level prediction), a draw
        from N(0, cov), or a ValueError naming the term and the levels.
    rng : numpy.random.Generator, optional
    include_random : bool
        False gives the population-level (fixed effects only) predictor.
    """
    eta = design.X @ np.asarray(beta) + design.offset
    if not include_random:
        return eta
    for k, term in enumerate(spec.terms):
        codes = np.asarray(design.codes[k])
        Xr = np.asarray(design.Xr[k])
        b = np.asarray(b_terms[k])
        new = codes < 0
        contrib = np.einsum("nq,nq->n", Xr, b[np.where(new, 0, codes)])
        if new.any():
            if new_levels == "error":
                raise ValueError(
                    f"newdata has {int(new.sum())} row(s) with levels of {term.group!r} not in the fitted "
                    f"data; pass new_levels='population' (random effects set to 0) or 'sample'"
                )
            if new_levels == "population":
                contrib = np.where(new, 0.0, contrib)
            else:
                if rng is None:
                    rng = np.random.default_rng()
                # one draw per distinct new level, shared by its rows
                keys = (np.asarray(design.labels[k], dtype=str)[new] if design.labels is not None
                        else np.flatnonzero(new).astype(str))
                _, inv = np.unique(keys, return_inverse=True)
                L = np.linalg.cholesky(np.asarray(covs[k]) + 1e-12 * np.eye(term.q))
                draws = rng.standard_normal((inv.max() + 1, term.q)) @ L.T
                contrib = contrib.copy()
                contrib[new] = np.einsum("nq,nq->n", Xr[new], draws[inv])
        eta = eta + contrib
    return eta


def ranef_by_group(spec: ModelSpec, b_terms) -> dict:
    """Merge per-term (levels x coef) arrays into lme4's ``ranef``: group -> DataFrame."""
    out: dict[str, pd.DataFrame] = {}
    for term, b in zip(spec.terms, b_terms):
        df = pd.DataFrame(np.asarray(b), index=term.levels, columns=list(term.coef_names))
        df.index.name = term.group
        if term.group in out:
            prev = out[term.group]
            new_cols = [c for c in df.columns if c not in prev.columns]
            out[term.group] = prev.join(df[new_cols], how="outer")
        else:
            out[term.group] = df
    return out


class FitResults:
    """Common base: accessor names identical for posterior and ML fits.

    Subclasses implement ``fixef``, ``varcorr``, ``ranef``, ``summary`` and
    ``_point_params()`` (beta, per-term b, per-term covariances, sigma).
    """

    method: str = ""

    def __init__(self, spec: ModelSpec):
        self.spec = spec

    # -- contract ------------------------------------------------------------------
    @property
    def fixef(self) -> pd.Series:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def varcorr(self) -> pd.DataFrame:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def ranef(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def summary(self) -> pd.DataFrame:  # pragma: no cover - abstract
        raise NotImplementedError

    def _point_params(self):  # pragma: no cover - abstract
        """(beta (p,), [b_k (J_k, q_k)], [cov_k (q_k, q_k)], sigma or None)."""
        raise NotImplementedError

    def _predict_interval(self, design, kind, interval, level, re_form, new_levels, rng,
                          **kw):  # pragma: no cover - abstract
        """(estimate, lower, upper) arrays for ``predict(interval=...)``."""
        raise NotImplementedError

    # -- shared behaviour ------------------------------------------------------------
    def _design(self, newdata) -> NewDesign:
        spec = self.spec
        if newdata is None:
            return NewDesign(X=spec.X, offset=spec.offset, codes=tuple(t.codes for t in spec.terms),
                             Xr=tuple(t.Xr for t in spec.terms), trials=spec.trials, index=spec.row_index,
                             X_zi=spec.X_zi, X_disp=spec.X_disp)
        if not isinstance(newdata, pd.DataFrame):
            raise ValueError("newdata must be a pandas DataFrame (or None for the fitted data)")
        return spec.new_design(newdata)

    def _scale_aux(self) -> dict:
        """The family's auxiliary parameters by name for predictions (the point estimates)."""
        return {k: float(v) for k, v in self.dispersion.items()}

    def _zi_eta(self, design: NewDesign):
        """Zero-inflation linear predictor for ``design`` (None without zero inflation)."""
        return None

    def _zero_part_aux(self, idx=None) -> dict:
        """The auxiliary parameters E[y] of a model with a zero part needs (a hurdle's
        truncation), broadcastable against (draws, rows) or (rows,)."""
        return {}

    def _to_scale(self, eta, design: NewDesign, kind: str, zi_eta=None, aux=None):
        # kind="link" is the conditional model's eta; "mean" and "response" are E[y], which
        # for a zero-inflated model is (1 - pi) mu with pi = expit(zi_eta), for a hurdle model
        # (1 - pi) mu / (1 - f(0; mu)) (the family's zero_part_moments)
        if kind == "link":
            return eta
        fam = self.spec.family
        if fam.categorical_response:  # ordinal: the thresholds enter every probability
            aux = aux or self._scale_aux()  # per draw on the posterior path
            if kind == "probs":
                p = fam.category_probs(eta, **aux)
                if np.ndim(eta) == 1:
                    return pd.DataFrame(p, index=design.index, columns=list(fam.categories))
                return p
            return fam.response_mean(eta, **aux)
        if kind == "probs":
            fam.category_probs(eta)  # raises, naming the family
        mu = fam.mean(eta)
        if zi_eta is not None:
            from scipy.special import expit
            mu = self.spec.family.zero_part_moments(mu, None, expit(np.asarray(zi_eta, dtype=float)),
                                                    **(aux or {}))[0]
        if kind == "response" and self.spec.family.needs_trials and design.trials is not None:
            return mu * design.trials
        return mu

    def predict(self, newdata: pd.DataFrame | None = None, kind: str = "mean",
                new_levels: str = "population", *, re_form: str | None = "full",
                random_seed=None, interval: str | None = None, level: float = 0.95,
                method: str = "wald", n_boot: int = 200, n_sim: int = 4000):
        """Point predictions from the fitted parameters.

        Parameters
        ----------
        newdata : DataFrame, optional
            Defaults to the fitted rows.
        kind : {"link", "mean", "response", "probs"}
            Linear predictor (of the conditional model); conditional mean (probability for
            binomial; ``(1 - pi) mu`` for a zero-inflated model, pi the structural-zero
            probability); or expected response (successes = probability x trials for binomial).
            Ordinal models: ``"mean"`` (and ``"response"``) is the expected category number
            ``sum_k k P(Y = k)``, categories numbered 1 .. K; ``"probs"`` a DataFrame of
            P(Y = category), one column per category; ``"link"`` is eta (no intercept: the
            thresholds hold it).
        new_levels : {"population", "sample", "error"}
            See :func:`linear_predictor`.
        re_form : {"full", None}
            None gives population-level predictions (random effects at 0), as lme4's
            ``re.form = NA``.
        random_seed : int, optional
            For ``new_levels="sample"``, and for the simulations and bootstrap of intervals.
        interval : {None, "confidence", "prediction"}
            None returns the point predictions (an array) as always.  Otherwise a DataFrame
            indexed like ``newdata`` with ``estimate, lower, upper``: ``"confidence"`` for the
            mean (``kind="link"`` or ``"mean"``), ``"prediction"`` for a new observation
            (``kind="mean"``: binomial as a proportion; ``"response"``: successes).  Ordinal
            ML fits: ``kind="probs"`` confidence intervals give columns ``(statistic, category)``
            (``out["lower"]`` a frame of categories); a prediction interval is one of category
            numbers 1 .. K.  See
            :meth:`bayes_glmm.ml.results.MLResults._predict_interval` (delta method /
            parametric bootstrap) and the posterior version on Bayesian fits; docs/methods.md.
        level : float
            Interval level, strictly between 0 and 1.
        method : {"wald", "bootstrap"}
            ML fits only: delta-method (Wald) intervals, or a parametric bootstrap of the
            fixed effects (``n_boot`` refits, population predictions ``re_form=None``).
        n_boot, n_sim : int
            Bootstrap refits; simulated responses per row for non-gaussian prediction intervals.
        """
        check_predict_args(kind, new_levels)
        if interval is not None:
            check_interval_args(interval, kind, level, re_form)
            if kind == "probs" and not self.spec.family.categorical_response:
                self.spec.family.category_probs(np.zeros(1))  # raises, naming the family
            design = self._design(newdata)
            est, lo, hi = self._predict_interval(design, kind, interval, float(level), re_form, new_levels,
                                                 np.random.default_rng(random_seed), method=method,
                                                 n_boot=n_boot, n_sim=n_sim, random_seed=random_seed)
            if np.ndim(est) == 2:  # kind="probs": one column per category under each statistic
                cats = list(self.spec.family.categories)
                out = pd.concat({"estimate": pd.DataFrame(est, index=design.index, columns=cats),
                                 "lower": pd.DataFrame(lo, index=design.index, columns=cats),
                                 "upper": pd.DataFrame(hi, index=design.index, columns=cats)}, axis=1)
            else:
                out = pd.DataFrame({"estimate": est, "lower": lo, "upper": hi}, index=design.index)
            out.attrs.update({"interval": interval, "level": float(level), "kind": kind, "method": method})
            return out
        design = self._design(newdata)
        beta, b_terms, covs, _ = self._point_params()
        eta = linear_predictor(self.spec, design, beta, b_terms, covs, new_levels,
                               np.random.default_rng(random_seed), include_random=re_form is not None)
        return self._to_scale(eta, design, kind, self._zi_eta(design), aux=self._zero_part_aux())

    def emmeans(self, specs, by=None, type: str = "link", ddf=None, level: float = 0.95, *, at=None,
                weights: str = "equal", interval: str = "quantile") -> pd.DataFrame:
        """Estimated marginal means of ``specs``, as R's emmeans computes them.

        Reference grid: every combination of the fixed part's factor levels, numeric
        covariates at their means (or ``at``); a mean averages the other factors with
        ``weights`` ("equal", "proportional", "outer", "cells", "flat").  ML fits give
        ``estimate, se, df, lower, upper`` (LMMs: ``ddf`` None is emmeans's default,
        Kenward-Roger up to 3,000 rows; "satterthwaite"; "asymptotic"; other families df =
        inf); posterior fits the posterior mean, SD and a quantile or ``interval="hdi"``
        interval.  See :func:`bayes_glmm.postfit.emmeans.emmeans` and docs/emmeans.md.
        """
        from .postfit.emmeans import emmeans
        return emmeans(self, specs, by=by, type=type, ddf=ddf, level=level, at=at, weights=weights,
                       interval=interval)

    def emtrends(self, specs, var: str, by=None, ddf=None, level: float = 0.95, *, at=None,
                 weights: str = "equal", interval: str = "quantile") -> pd.DataFrame:
        """Slopes in the numeric covariate ``var`` per level of ``specs`` (link scale), as R's
        ``emtrends``.  See :func:`bayes_glmm.postfit.emmeans.emtrends` and docs/emmeans.md."""
        from .postfit.emmeans import emtrends
        return emtrends(self, specs, var, by=by, ddf=ddf, level=level, at=at, weights=weights,
                        interval=interval)

    def contrasts(self, specs, method="pairwise", by=None, adjust: str | None = None, type: str = "link",
                  ddf=None, level: float = 0.95, *, at=None, weights: str = "equal", interval: str = "quantile",
                  trend: str | None = None) -> pd.DataFrame:
        """Contrasts among the marginal means of ``specs`` (``"pairwise"``, ``"trt.vs.ctrl"`` or a
        dict of weight vectors), labelled as emmeans labels them; ``adjust`` None: Tukey for
        pairwise, none for a dict, Dunnett for trt.vs.ctrl; ``type="response"`` shows log /
        logit differences as ratios / odds ratios; ``trend="x"`` contrasts slopes.  See
        :func:`bayes_glmm.postfit.emmeans.contrasts` and docs/emmeans.md.
        """
        from .postfit.emmeans import contrasts
        return contrasts(self, specs, method=method, by=by, adjust=adjust, type=type, ddf=ddf, level=level,
                         at=at, weights=weights, interval=interval, trend=trend)

    # ------------------------------------------------------------------ simulated residuals
    def _residual_simulations(self, n_sim: int, random_seed) -> np.ndarray:  # pragma: no cover - abstract
        """(n, n_sim) responses simulated from the fitted model (each path says how)."""
        raise NotImplementedError

    def _residual_groups(self, group):
        """(codes (n,), levels) for ``residuals(group=)``: a random term's grouping factor by
        name, or one label per fitted row."""
        spec = self.spec
        if isinstance(group, str):
            for t in spec.terms:
                if t.group == group:
                    return np.asarray(t.codes, dtype=np.intp), list(t.levels)
            raise ValueError(f"group={group!r} is not a grouping factor of the model "
                             f"({sorted({t.group for t in spec.terms})}); or pass one label per fitted row")
        lab = np.asarray(group, dtype=object)
        if lab.shape != (len(spec.y),):
            raise ValueError(f"group has {lab.size} labels; give one per fitted row ({len(spec.y)}) or the "
                             f"name of a grouping factor")
        levels, codes = np.unique(lab.astype(str), return_inverse=True)
        return codes.astype(np.intp), list(levels)

    def _simulated_residuals(self, n_sim: int, random_seed, group=None):
        """(observed y, simulations, scaled residuals) for one seed (see :meth:`residuals`);
        with ``group``, all three per group (sums within groups) and the group levels last."""
        from .postfit.residuals import aggregate_by_group, check_n_sim, scaled_residuals

        n_sim = check_n_sim(n_sim)
        seed = random_seed if isinstance(random_seed, np.random.SeedSequence) else np.random.SeedSequence(random_seed)
        # one child seeds the simulations, the other the randomization inside discrete jumps
        sim_seed, pit_seed = seed.spawn(2)
        y = np.asarray(self.spec.y, dtype=float)
        sims = np.asarray(self._residual_simulations(n_sim, sim_seed), dtype=float)
        if group is not None:
            codes, levels = self._residual_groups(group)
            y, sims = aggregate_by_group(y, sims, codes, len(levels))
            scaled = scaled_residuals(y, sims, discrete=not self.spec.family.continuous,
                                      rng=np.random.default_rng(pit_seed))
            return y, sims, scaled, levels
        scaled = scaled_residuals(y, sims, discrete=not self.spec.family.continuous,
                                  rng=np.random.default_rng(pit_seed))
        return y, sims, scaled

    def residuals(self, kind: str = "simulated", *, n_sim: int = 250, random_seed=None, group=None):
        """Simulated (DHARMa) scaled residuals, one per fitted row, in [0, 1].

        Parameters
        ----------
        kind : {"simulated"}
            The empirical CDF of ``n_sim`` simulated responses at the observed one
            (randomized within the jump for discrete families); uniform under the fitted
            model (:mod:`bayes_glmm.postfit.residuals`).
        n_sim : int
            Number of simulated responses per row (DHARMa's default 250).
        random_seed : int, optional
            Same seed, same residuals.
        group : str or array-like, optional
            DHARMa's ``recalculateResiduals(group=)``: observed and simulated responses summed
            within each group (a grouping factor's name, or one label per fitted row), one
            residual per group, returned as a Series indexed by the group levels.
        """
        if kind != "simulated":
            raise ValueError(f"kind={kind!r}: choose 'simulated'")
        if group is not None:
            _, _, scaled, levels = self._simulated_residuals(n_sim, random_seed, group)
            return pd.Series(scaled, index=pd.Index(levels, name=group if isinstance(group, str) else "group"),
                             name="scaled_residual")
        return self._simulated_residuals(n_sim, random_seed)[2]

    def residual_tests(self, n_sim: int = 250, random_seed=None, group=None) -> pd.DataFrame:
        """DHARMa's residual tests on the simulated residuals.

        Returns
        -------
        pandas.DataFrame
            Index ``uniformity, dispersion, zero_inflation, outliers``, columns
            ``statistic, p`` (see :func:`bayes_glmm.postfit.residuals.residual_tests`); the
            residuals are those of ``residuals("simulated", n_sim=n_sim, random_seed=random_seed)``;
            with ``group``, of the per-group sums (``recalculateResiduals(group=)``).
        """
        from .postfit.residuals import residual_tests

        return residual_tests(*self._simulated_residuals(n_sim, random_seed, group)[:3])

    def _repr_text(self) -> str:
        return f"{type(self).__name__} ({self.method})\n" + self.summary().to_string()

    def __repr__(self) -> str:
        return self._repr_text()

    def _repr_html_(self) -> str:
        head = f"<p><b>{type(self).__name__}</b> ({self.method}) — {self.spec.formula}</p>"
        return head + self.summary().to_html(float_format=lambda v: f"{v:.4g}") + \
            "<p>Random effects</p>" + self.varcorr.to_html(float_format=lambda v: f"{v:.4g}")

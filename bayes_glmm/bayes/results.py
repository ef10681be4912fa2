"""Posterior results: :class:`BayesResults`, the Bayesian counterpart of ``MLResults``.

Point summaries are posterior means; :meth:`BayesResults.predict` averages predictions
over posterior draws (or returns the draws).  Accessor names and shapes follow
:class:`bayes_glmm.results.FitResults` (lme4 vocabulary).
"""
from __future__ import annotations

import warnings
from functools import cached_property

import numpy as np
import pandas as pd

from ..postfit.protocol import corr_matrices
from ..covariance import corr_pairs, varcorr_frame
from ..priors import disp_key, zi_key
from ..results import FitResults, check_predict_args, ranef_by_group
from .pointwise import aux_draws, eta_draws, zi_eta_draws
from .pointwise import posterior_predictive as _posterior_predictive

__all__ = ["BayesResults"]

_QUANTS = (0.025, 0.975)


def _stack(da) -> np.ndarray:
    """(chain, draw, ...) DataArray -> ndarray (chain * draw, ...)."""
    a = np.asarray(da)
    return a.reshape((a.shape[0] * a.shape[1],) + a.shape[2:])  # (explicit: an empty beta has size 0)


def _round_estimate(v: float) -> float:
    """``v`` to 3 decimals, or to 3 significant digits when that would show a non-zero as 0."""
    if not np.isfinite(v) or v == 0.0 or abs(v) >= 5e-4:
        return round(v, 3) if np.isfinite(v) else v
    return float(f"{v:.3g}")


class PosteriorSummary(pd.DataFrame):
    """The posterior summary table: full precision as data, displayed rounded as ``az.summary``
    prints it (estimates to 3 decimals, R-hat to 2, ESS as integers)."""

    @property
    def _constructor(self):
        return pd.DataFrame

    def rounded(self) -> pd.DataFrame:
        """The table rounded for display."""
        d = pd.DataFrame(self).copy()
        for c in d.columns:
            if c.startswith("ess"):
                d[c] = d[c].round().astype("Int64")
            elif c == "r_hat":
                d[c] = d[c].round(2)
            else:
                # three decimals, but never a non-zero estimate shown as 0: a coefficient of a
                # column in units of 1e12 (2.35e-13) keeps three significant digits
                d[c] = d[c].map(_round_estimate)
        return d

    def __repr__(self) -> str:
        return self.rounded().to_string() if not self.empty else pd.DataFrame.__repr__(self)

    def _repr_html_(self) -> str:
        return self.rounded().to_html() if not self.empty else pd.DataFrame._repr_html_(self)


class BayesResults(FitResults):
    """A posterior sample of a :class:`bayes_glmm.GLMM`.

    Parameters
    ----------
    model : GLMM
        The model that was sampled (``.spec`` is used).
    idata : arviz.InferenceData
        Output of :func:`bayes_glmm.bayes.sample` (posterior with ``beta``, ``sd_<ident>``,
        ``corr_<ident>`` (pairs), ``b_<ident>``, ``sigma``, the dispersion ``theta`` / ``phi`` /
        ``shape``, ``beta_zi``; :mod:`bayes_glmm.bayes.pointwise`).
    pm_model : pymc.Model, optional
        The PyMC model; when not given (the native and NumPy samplers never build it), built
        from ``model`` the first time :attr:`pm_model` is asked for.

    Attributes
    ----------
    idata : arviz.InferenceData
    model : GLMM
    pm_model : pymc.Model
    """

    method = "posterior (NUTS)"

    def __init__(self, model, idata, pm_model=None):
        super().__init__(model.spec)
        self.model = model
        self.idata = idata
        self._pm_model = pm_model
        self._rebuild_pm_model = pm_model is None

    @property
    def pm_model(self):
        """The PyMC model; built from the GLMM the first time it is asked for when the sampler
        did not need it, or after unpickling."""
        if self._rebuild_pm_model:
            self._pm_model = self.model.build()
            self._rebuild_pm_model = False
        return self._pm_model

    @pm_model.setter
    def pm_model(self, value) -> None:
        self._pm_model = value
        self._rebuild_pm_model = False

    # ---------------------------------------------------------------- pickling
    def __getstate__(self) -> dict:
        """State for pickle/joblib/process pools: everything but the PyMC model, whose
        compiled functions do not pickle; it is rebuilt from the GLMM when next asked for."""
        state = self.__dict__.copy()
        if state.get("_pm_model") is not None:
            state["_pm_model"], state["_rebuild_pm_model"] = None, True
        return state

    # ---------------------------------------------------------------- draws
    @property
    def n_draws(self) -> int:
        """Total posterior draws (chains x draws)."""
        p = self.idata.posterior
        return int(p.sizes["chain"] * p.sizes["draw"])

    @cached_property
    def _draws(self) -> dict:
        """Flattened draws: beta (S, p), b (list of (S, J, q)), cov (list of (S, q, q)),
        sd (list of (S, q)), corr (list of (S, q, q)), sigma (S,) or None."""
        post = self.idata.posterior
        out = {"beta": _stack(post["beta"]), "b": [], "cov": [], "sd": [], "corr": []}
        for t in self.spec.terms:
            k = t.ident
            sd = _stack(post[f"sd_{k}"]).reshape(-1, t.q)
            corr = (corr_matrices(_stack(post[f"corr_{k}"]), t.q) if f"corr_{k}" in post
                    else np.broadcast_to(np.eye(t.q), (sd.shape[0], t.q, t.q)))
            out["b"].append(_stack(post[f"b_{k}"]).reshape(-1, t.n_levels, t.q))
            out["sd"].append(sd)
            out["corr"].append(corr)
            out["cov"].append(sd[:, :, None] * corr * sd[:, None, :])
        # the family's auxiliary parameters by name; ``sigma`` (a residual SD) also feeds varcorr
        # (a dispersion formula's first parameter varies by row: beta_disp, not an entry here)
        out["aux"] = {a.name: _stack(post[a.name]) for a in self.spec.family.aux_params if a.name in post}
        out["sigma"] = out["aux"].get("sigma")
        out["beta_zi"] = (_stack(post[f"beta_{self.spec.zi_label}"]).reshape(-1, self.spec.p_zi)
                          if self.spec.has_zi else None)
        out["beta_disp"] = _stack(post["beta_disp"]).reshape(-1, self.spec.p_disp) if self.spec.has_disp else None
        return out

    def _point_params(self):
        d = self._draws
        sigma = None if d["sigma"] is None else float(d["sigma"].mean())
        return (d["beta"].mean(0), [b.mean(0) for b in d["b"]], [c.mean(0) for c in d["cov"]], sigma)

    # ---------------------------------------------------------------- accessors
    @property
    def fixef(self) -> pd.Series:
        """Posterior means of the fixed effects, indexed by coefficient name."""
        return pd.Series(self._draws["beta"].mean(0), index=list(self.spec.fixed_names), name="fixef")

    @property
    def fixef_zi(self) -> pd.Series:
        """Posterior means of the zero-inflation coefficients (logit of the structural-zero
        probability), models with ``zi=``; same index as ``MLResults.fixef_zi``."""
        if not self.spec.has_zi:
            raise AttributeError("fixef_zi: this model has no zero-inflation part (fit with zi='~ ...' "
                                 "and a count family)")
        return pd.Series(self._draws["beta_zi"].mean(0), index=list(self.spec.zi_names), name="fixef_zi")

    @property
    def fixef_disp(self) -> pd.Series:
        """Posterior means of the dispersion-model coefficients (the log of the family's first
        auxiliary parameter), models with ``disp=``; same index as ``MLResults.fixef_disp``."""
        if not self.spec.has_disp:
            raise AttributeError("fixef_disp: this model has no dispersion formula (fit with disp='~ ...')")
        return pd.Series(self._draws["beta_disp"].mean(0), index=list(self.spec.disp_names), name="fixef_disp")

    @property
    def dispersion(self) -> pd.Series:
        """Posterior means of the family's auxiliary parameters, named as ``MLResults.dispersion``:
        ``theta`` (negbinomial), ``phi`` (nbinom1, beta), ``shape`` (gamma), ``sigma``
        (gaussian), one entry each (``family.aux_params`` order); empty for bernoulli, binomial
        and poisson."""
        aux = self._draws["aux"]
        return pd.Series({k: float(v.mean()) for k, v in aux.items()}, name="dispersion", dtype=float)

    def _zero_part_aux(self, idx=None) -> dict:
        aux = self._draws["aux"]
        return {k: (v if idx is None else v[idx])[:, None] for k, v in aux.items()}

    def _zi_eta(self, design, idx=None):
        """Zero-inflation linear predictor per posterior draw, (draws, rows), or None."""
        if not self.spec.has_zi:
            return None
        bz = self._draws["beta_zi"]
        bz = bz if idx is None else bz[idx]
        return bz @ np.asarray(design.X_zi, dtype=float).T

    @property
    def varcorr(self) -> pd.DataFrame:
        """lme4's ``as.data.frame(VarCorr(fit))`` with posterior means.

        ``vcov`` is the posterior mean of each variance/covariance, ``sdcor`` the posterior
        mean of each SD/correlation (so ``sdcor**2 != vcov`` in general).
        """
        d = self._draws
        beta, _, covs, _ = self._point_params()
        sigma2 = None if d["sigma"] is None else float(np.mean(d["sigma"] ** 2))
        df = varcorr_frame(self.spec.terms, covs, None if sigma2 is None else np.sqrt(sigma2))
        sdcor = []
        for t, sd, corr in zip(self.spec.terms, d["sd"], d["corr"]):
            sdcor.extend(sd.mean(0).tolist())
            if t.correlated:
                cm = corr.mean(0)
                sdcor.extend(cm[i, j] for j, i in corr_pairs(t.q))
        if d["sigma"] is not None:
            sdcor.append(float(d["sigma"].mean()))
        df["sdcor"] = np.asarray(sdcor, dtype=float)
        return df

    @property
    def ranef(self) -> dict:
        """Posterior means of the random effects: grouping factor -> DataFrame (levels x coefs)."""
        return ranef_by_group(self.spec, [b.mean(0) for b in self._draws["b"]])

    def _param_draws(self) -> dict:
        """label -> (chain, draw) array for every summarized parameter."""
        post = self.idata.posterior
        out = {}
        beta = np.asarray(post["beta"])
        for j, nm in enumerate(self.spec.fixed_names):
            out[nm] = beta[:, :, j]
        for t in self.spec.terms:
            k = t.ident
            sd = np.asarray(post[f"sd_{k}"]).reshape(beta.shape[:2] + (t.q,))
            idx, n_sd = np.asarray(t.cov.sd_index(t.q)), t.cov.n_sd(t.q)
            if n_sd < t.q:  # SDs shared by coefficients (ar1): one row per SD, as glmmTMB prints
                labels = t.cov.theta_names(list(t.coef_names))[:n_sd]
                for m, nm in enumerate(labels):
                    out[f"sd_{k}[{nm}]"] = sd[:, :, int(np.flatnonzero(idx == m)[0])]
            else:
                for j, nm in enumerate(t.coef_names):
                    out[f"sd_{k}[{nm}]"] = sd[:, :, j]
            if f"rho_{k}" in post:  # a structured term's own parameters (ar1/cs: rho; toep: lags),
                r = post[f"rho_{k}"]  # not the pairs they imply
                for m, nm in enumerate(r[f"{k}_rho"].values):
                    out[f"rho_{k}[{nm}]"] = np.asarray(r)[:, :, m]
            elif f"corr_{k}" in post:
                c = np.asarray(post[f"corr_{k}"])
                for m, (j, i) in enumerate(corr_pairs(t.q)):
                    out[f"corr_{k}[{t.coef_names[j]}, {t.coef_names[i]}]"] = c[:, :, m]
        for a in self.spec.family.aux_params:
            if a.name in post:  # not the one a dispersion formula models
                out[a.name] = np.asarray(post[a.name])
        if self.spec.has_zi:
            bz = np.asarray(post[f"beta_{self.spec.zi_label}"]).reshape(beta.shape[:2] + (self.spec.p_zi,))
            for j, nm in enumerate(self.spec.zi_names):
                out[zi_key(nm, self.spec.zi_label)] = bz[:, :, j]
        if self.spec.has_disp:
            bd = np.asarray(post["beta_disp"]).reshape(beta.shape[:2] + (self.spec.p_disp,))
            for j, nm in enumerate(self.spec.disp_names):
                out[disp_key(nm)] = bd[:, :, j]
        return out

    def summary(self) -> pd.DataFrame:
        """Posterior summary of fixed effects, SDs, correlations, sigma or the dispersion
        (``theta`` / ``phi`` / ``shape``), the zero-inflation coefficients (rows
        ``zi_Intercept``, ``zi_<coef>``, as their prior keys) and the dispersion model's
        (``disp_Intercept``, ``disp_<coef>``).

        Returns
        -------
        DataFrame
            Columns mean, sd, 2.5%, 97.5%, r_hat, ess_bulk, ess_tail.  R-hat is NaN with
            a single chain.
        """
        import arviz as az

        draws = self._param_draws()
        keys = list(draws)
        ds = az.convert_to_dataset({f"v{i}": draws[k] for i, k in enumerate(keys)})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rhat = az.rhat(ds) if ds.sizes["chain"] > 1 else None
            eb = az.ess(ds, method="bulk")
            et = az.ess(ds, method="tail")
        rows = []
        for i, k in enumerate(keys):
            a = draws[k].ravel()
            lo, hi = np.quantile(a, _QUANTS)
            rows.append((a.mean(), a.std(ddof=1) if a.size > 1 else np.nan, lo, hi,
                         float(rhat[f"v{i}"]) if rhat is not None else np.nan,
                         float(eb[f"v{i}"]), float(et[f"v{i}"])))
        return PosteriorSummary(rows, index=keys,
                                columns=["mean", "sd", "2.5%", "97.5%", "r_hat", "ess_bulk", "ess_tail"])

    # ---------------------------------------------------------------- prediction
    def _eta_draws(self, design, new_levels, rng, include_random, idx):
        d = self._draws
        eta = d["beta"][idx] @ np.asarray(design.X).T + np.asarray(design.offset)[None, :]
        if not include_random:
            return eta
        for k, term in enumerate(self.spec.terms):
            codes = np.asarray(design.codes[k])
            Xr = np.asarray(design.Xr[k])
            new = codes < 0
            if new.any() and new_levels == "error":
                raise ValueError(
                    f"newdata has {int(new.sum())} row(s) with levels of {term.group!r} not in the fitted "
                    f"data; pass new_levels='population' (random effects set to 0) or 'sample'")
            b = d["b"][k][idx]
            contrib = np.einsum("nq,snq->sn", Xr, b[:, np.where(new, 0, codes)])
            if new.any():
                if new_levels == "population":
                    contrib[:, new] = 0.0
                else:
                    keys = (np.asarray(design.labels[k], dtype=str)[new] if design.labels is not None
                            else np.flatnonzero(new).astype(str))
                    _, inv = np.unique(keys, return_inverse=True)
                    L = np.linalg.cholesky(d["cov"][k][idx] + 1e-12 * np.eye(term.q))
                    z = rng.standard_normal((len(idx), inv.max() + 1, term.q))
                    bn = np.einsum("slq,srq->slr", z, L)  # (S, L, q): z @ L.T per draw
                    contrib[:, new] = np.einsum("nq,snq->sn", Xr[new], bn[:, inv])
            eta = eta + contrib
        return eta

    def predict(self, newdata: pd.DataFrame | None = None, kind: str = "mean",
                new_levels: str = "population", *, re_form: str | None = "full",
                random_seed=None, return_draws: bool = False, n_draws: int | None = None,
                interval: str | None = None, level: float = 0.95):
        """Predictions averaged over posterior draws.

        Parameters
        ----------
        newdata : DataFrame, optional
            Defaults to the fitted rows.
        kind : {"link", "mean", "response", "probs"}
            Linear predictor (of the conditional model), mean (``(1 - pi) mu`` with a
            zero-inflation part, pi per draw), or expected response (mean x trials for
            binomial), each computed per draw and then averaged.  Ordinal models: ``"mean"``
            the expected category number (1 .. K), ``"probs"`` a DataFrame of the category
            probabilities ((draws, rows, K) with ``return_draws``).
        new_levels : {"population", "sample", "error"}
            Unseen levels get zero random effects, a fresh draw from N(0, Sigma) per
            posterior draw, or a ValueError.
        re_form : {"full", None}
            None gives population-level predictions (random effects at 0).
        random_seed : int, optional
            For ``new_levels="sample"`` and for thinning with ``n_draws``.
        return_draws : bool
            Return the (draws, rows) array instead of its mean.
        n_draws : int, optional
            Use a random subset of this many posterior draws (default all; intervals use all).
        interval : {None, "confidence", "prediction"}
            None: the array above.  Otherwise a DataFrame ``estimate, lower, upper``: quantiles
            of the posterior of eta / mu per row, or of the posterior predictive (one response
            per draw, ``random_seed``); see :meth:`_predict_interval`.
        level : float
            Interval level, strictly between 0 and 1.

        Returns
        -------
        ndarray
            Shape (rows,), or (draws, rows) with ``return_draws=True``.
        """
        check_predict_args(kind, new_levels)
        if interval is not None:
            return FitResults.predict(self, newdata, kind, new_levels, re_form=re_form,
                                      random_seed=random_seed, interval=interval, level=level)
        if re_form not in ("full", None):
            raise ValueError(f"re_form={re_form!r} must be 'full' or None")
        rng = np.random.default_rng(random_seed)
        S = self.n_draws
        if n_draws is None:
            idx = np.arange(S)
        else:
            if not isinstance(n_draws, (int, np.integer)) or not 1 <= n_draws <= S:
                raise ValueError(f"n_draws must be an integer in 1..{S}, got {n_draws!r}")
            idx = np.sort(rng.choice(S, size=int(n_draws), replace=False))
        design = self._design(newdata)
        eta = self._eta_draws(design, new_levels, rng, re_form is not None, idx)
        out = self._to_scale(eta, design, kind, self._zi_eta(design, idx), aux=self._zero_part_aux(idx))
        if return_draws:
            return out
        if kind == "probs":  # (draws, rows, K) averaged: one column per category, as the ML fit's
            return pd.DataFrame(out.mean(axis=0), index=design.index, columns=list(self.spec.family.categories))
        return out.mean(axis=0)

    def _predict_interval(self, design, kind, interval, level, re_form, new_levels, rng, *,
                          method="wald", n_boot=200, n_sim=4000, random_seed=None):
        """Posterior intervals for :meth:`predict` with ``interval=``: (estimate, lower, upper).

        ``"confidence"``: equal-tailed quantiles of eta or mu per row over the posterior
        draws, estimate the posterior mean.  ``"prediction"``: quantiles of the posterior
        predictive, one response per draw (:meth:`~bayes_glmm.families.Family.random`), with
        a fresh random effect per draw where the group is unknown (``re_form=None`` or an
        unseen level), as the ML prediction interval.  ``method``, ``n_boot`` and ``n_sim``
        are the ML path's and are ignored here.  Ordinal models: ``kind="probs"`` gives each
        category's probability with its posterior interval ((rows, K) arrays), ``kind="mean"``
        the expected category number 1 .. K; prediction intervals are quantiles of the
        posterior predictive category number.
        """
        a = (1.0 - level) / 2.0
        idx = np.arange(self.n_draws)
        if interval == "confidence":
            eta = self._eta_draws(design, "error" if new_levels == "error" else "population", rng,
                                  re_form is not None, idx)
            draws = np.asarray(self._to_scale(eta, design, kind, self._zi_eta(design, idx),
                                              aux=self._zero_part_aux(idx)), dtype=float)
            return draws.mean(axis=0), np.quantile(draws, a, axis=0), np.quantile(draws, 1 - a, axis=0)
        # a new observation of an unknown group gets a new random effect per draw
        if re_form is not None:
            eta = self._eta_draws(design, "error" if new_levels == "error" else "sample", rng, True, idx)
        else:
            eta = self._eta_draws(design, "population", rng, False, idx)
            for k, term in enumerate(self.spec.terms):
                L = np.linalg.cholesky(self._draws["cov"][k][idx] + 1e-12 * np.eye(term.q))
                Xr = np.asarray(design.Xr[k], dtype=float)
                # one group per row: its own draw of b (the population's spread)
                z = rng.standard_normal((len(idx), Xr.shape[0], term.q))
                eta = eta + np.einsum("nq,snq->sn", Xr, np.einsum("snr,sqr->snq", z, L))
        fam = self.spec.family
        trials = None
        if fam.needs_trials:
            trials = np.rint(np.asarray(design.trials if design.trials is not None else 1.0,
                                        dtype=float)).astype(np.int64)
        y = np.asarray(fam.random(eta, rng, trials=trials, zi_eta=self._zi_eta(design, idx),
                                  **self._zero_part_aux(idx)), dtype=float)
        est = self._to_scale(eta, design, "response" if kind == "response" else "mean",
                             self._zi_eta(design, idx), aux=self._zero_part_aux(idx)).mean(axis=0)
        if fam.categorical_response:  # codes 0 .. K-1 to the category numbers of the mean, 1 .. K
            y = y + 1.0
        if kind == "mean" and trials is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                y = y / trials
        # quantiles that are simulated values (no interpolation): a count's limits are counts
        return (est, np.quantile(y, a, axis=0, method="inverted_cdf"),
                np.quantile(y, 1 - a, axis=0, method="inverted_cdf"))

    def posterior_predictive(self, random_seed=None):
        """Add (and return) posterior predictive draws of ``y`` to :attr:`idata`.

        Parameters
        ----------
        random_seed : int, optional

        Returns
        -------
        arviz.InferenceData
            :attr:`idata`, now with a ``posterior_predictive`` group.
        """
        _posterior_predictive(self.idata, self.spec, random_seed=random_seed, extend=True)
        return self.idata

    def _residual_simulations(self, n_sim: int, random_seed) -> np.ndarray:
        """(n, n_sim) posterior predictive responses, one per posterior draw: the draws thinned
        evenly to ``n_sim`` (reused in turn, each with new response noise, when fewer)."""
        import xarray as xr

        post = self.idata.posterior
        S = int(post.sizes["chain"] * post.sizes["draw"])
        idx = (np.linspace(0, S - 1, n_sim).round().astype(int) if S >= n_sim
               else np.resize(np.arange(S), n_sim))
        # a one-chain posterior of the chosen draws, laid out as the pointwise functions read it
        thin = xr.Dataset({k: (v.dims, np.asarray(v.values).reshape((S,) + v.shape[2:])[idx][None])
                           for k, v in post.data_vars.items()})
        trials = None if self.spec.trials is None else np.asarray(self.spec.trials)[None, :]
        y = self.spec.family.random(eta_draws(self.spec, thin), np.random.default_rng(random_seed),
                                    trials=trials, zi_eta=zi_eta_draws(self.spec, thin),
                                    **aux_draws(self.spec, thin))
        return np.asarray(y, dtype=float).reshape(n_sim, -1).T

    # ---------------------------------------------------------------- display
    def _header(self) -> str:
        post = self.idata.posterior
        fam = self.spec.family
        wall = post.attrs.get("sampling_wall_time")
        if "inference" in post.attrs:  # an approximate posterior (fit_inla): no sampler statistics
            return (f"{self.spec.formula}  [{fam.name}, {fam.link.name} link]\n{post.attrs['inference']}; "
                    f"{post.sizes['chain'] * post.sizes['draw']} independent draws" + (f" ({wall:.1f} s)" if wall is not None else "")
                    + f"; {self.spec.n} observations")
        ss = self.idata.sample_stats
        n_div = int(np.asarray(ss["diverging"]).sum()) if "diverging" in ss else 0
        return (f"{self.spec.formula}  [{fam.name}, {fam.link.name} link]\n"
                f"{post.sizes['chain']} chains x {post.sizes['draw']} draws "
                f"({post.attrs.get('sampler', 'NUTS')}"
                + (f", {wall:.1f} s" if wall is not None else "") + f"), {n_div} divergences; "
                f"{self.spec.n} observations")

    def _repr_text(self) -> str:
        vc = self.varcorr
        return (f"BayesResults: {self._header()}\n\n" + self.summary().round(3).to_string()
                + "\n\nRandom effects (posterior means)\n" + vc.to_string(index=False))

    def _repr_html_(self) -> str:
        fmt = lambda v: f"{v:.4g}"  # noqa: E731
        head = "<p><b>BayesResults</b>: " + self._header().replace("\n", "<br>") + "</p>"
        return (head + self.summary().to_html(float_format=fmt)
                + "<p>Random effects (posterior means)</p>" + self.varcorr.to_html(float_format=fmt, index=False))

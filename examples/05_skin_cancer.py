# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 — Skin cancer: induced marginal covariances of a Poisson GLMM
#
# Seed 000 (a GLMM chapter after Abu-Libdeh et al. 1990): $Y_{it}$, the number of new basal cell
# carcinomas of subject i in year t, with
#
# $$Y_{it} \mid \lambda_{it} \sim \text{Poisson}(\lambda_{it}),\quad
#   \log \lambda_{it} = \beta_{0i} + \beta_1 \mathrm{SEX}_i + \beta_2 \mathrm{SEL}_i + \beta_{3i} \mathrm{SUN}_{it},$$
#
# $\beta_{0i} \sim N(\beta_0, \sigma^2_{\beta_0})$, $\beta_{3i} \sim N(\beta_3, \sigma^2_{\beta_3})$, possibly
# correlated. The random effects *induce* correlation between a subject's yearly counts. For
# the random-intercept model the seed derives (eq. 4.3)
#
# $$\operatorname{Cov}(Y_{it}, Y_{it'}) = e^{2\beta_1 \mathrm{SEX}_i + 2\beta_2 \mathrm{SEL}_i
#   + \beta_3 \mathrm{SUN}_{it} + \beta_3 \mathrm{SUN}_{it'}}\; e^{\sigma^2_{\beta_0}}\bigl(e^{\sigma^2_{\beta_0}} - 1\bigr),$$
#
# which holds as printed when $\beta_0 = 0$; in general it carries a factor $e^{2\beta_0}$ (from
# $E[e^{2\beta_{0i}}] - E[e^{\beta_{0i}}]^2 = e^{2\beta_0} e^{\sigma^2}(e^{\sigma^2} - 1)$).
# With random intercepts *and* slopes, write $\eta_{it} = x_{it}'\beta + z_{it}'b_i$,
# $z_{it} = (1, \mathrm{SUN}_{it})$, $b_i \sim N(0, \Sigma)$ and $s_t^2 = z_t'\Sigma z_t$. The normal
# moment generating function gives
#
# $$\mu_t = E[Y_t] = e^{x_t'\beta + s_t^2/2},\qquad
#   \operatorname{Var}(Y_t) = \mu_t + \mu_t^2\bigl(e^{s_t^2} - 1\bigr),\qquad
#   \operatorname{Cov}(Y_t, Y_{t'}) = \mu_t\mu_{t'}\bigl(e^{z_t'\Sigma z_{t'}} - 1\bigr).$$
#
# We check these formulas against simulation (formula vs empirical, with relative errors and
# Monte Carlo standard errors), fit the model, test H₀: σ²_{β3} = 0 (is anyone more sensitive to the
# sun?) with the boundary-aware LRT, and predict the most sun-sensitive subjects.
#
# Run: `python examples/05_skin_cancer.py` (`BAYES_GLMM_FAST=1` for the quick version).

# %%
import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import bayes_glmm as bg
from bayes_glmm._examples import example_settings

FAST, RUN_NUTS, OUT = example_settings(globals().get("__file__"))
KEY: dict = {"fast": FAST}
pd.set_option("display.width", 140)

# %% [markdown]
# ## The formulas

# %%
BETA = np.array([-0.5, 0.3, -0.2, 0.4])  # beta0, SEX, SEL, SUN
SD0, SD3, RHO = 0.7, 0.35, 0.3
SIGMA = np.array([[SD0 ** 2, RHO * SD0 * SD3], [RHO * SD0 * SD3, SD3 ** 2]])


def induced_moments(X, Z, beta, Sigma):
    """Marginal mean vector and covariance matrix of one subject's counts (T years).

    X : (T, p) fixed-effect rows, Z : (T, q) random-effect rows, b ~ N(0, Sigma).
    """
    eta = X @ beta
    S = Z @ Sigma @ Z.T  # Cov(z_t'b, z_t''b)
    mu = np.exp(eta + np.diag(S) / 2)
    cov = np.outer(mu, mu) * np.expm1(S)
    cov[np.diag_indices_from(cov)] += mu
    return mu, cov


def seed_formula_intercept(sex, sel, sun, beta, sigma2, with_beta0=True):
    """Seed 000, eq. (4.3): covariance for the random-intercept model (off-diagonal)."""
    c = np.exp(2 * beta[1] * sex + 2 * beta[2] * sel + beta[3] * (sun[:, None] + sun[None, :]))
    c = c * np.exp(sigma2) * np.expm1(sigma2)
    return c * np.exp(2 * beta[0]) if with_beta0 else c


# %% [markdown]
# ## Check by simulation
#
# One subject profile (a man in the placebo group with a given 5-year sun-exposure history),
# many independent subjects with that profile; the empirical mean and covariance of the 5
# counts against the formulas. The Monte Carlo SE of each empirical covariance is the SD of
# the centred cross-products over √N.

# %%
N_SIM = 200_000 if FAST else 2_000_000
SEX, SEL = 1, 0
SUN = np.array([0.5, 1.2, -0.3, 0.8, 0.1])
T = SUN.size
X = np.column_stack([np.ones(T), np.full(T, SEX), np.full(T, SEL), SUN])
Z = np.column_stack([np.ones(T), SUN])


def simulate_profile(n, Sigma, rng):
    b = rng.multivariate_normal(np.zeros(2), Sigma, size=n)
    lam = np.exp(X @ BETA + b @ Z.T)
    return rng.poisson(lam)


def check(Sigma, label, seed):
    rng = np.random.default_rng(seed)
    Y = simulate_profile(N_SIM, Sigma, rng).astype(float)
    mu, cov = induced_moments(X, Z, BETA, Sigma)
    Yc = Y - Y.mean(0)
    emp = Yc.T @ Yc / (N_SIM - 1)
    cross = Yc[:, :, None] * Yc[:, None, :]
    mc_se = cross.std(0) / np.sqrt(N_SIM)
    iu = np.triu_indices(T)
    tab = pd.DataFrame({"t": iu[0] + 1, "t'": iu[1] + 1, "formula": cov[iu], "empirical": emp[iu],
                        "rel. error": (emp[iu] - cov[iu]) / cov[iu], "z (MC)": (emp[iu] - cov[iu]) / mc_se[iu]})
    print(f"--- {label}: {N_SIM} simulated subjects")
    print("mean: formula", mu.round(4), " empirical", Y.mean(0).round(4))
    print(tab.round(4).to_string(index=False))
    print(f"max |relative error| = {np.abs(tab['rel. error']).max():.4f}; max |z| = {np.abs(tab['z (MC)']).max():.2f}")
    return mu, cov, emp, tab


mu_s, cov_s, emp_s, tab_s = check(SIGMA, "random intercept and SUN slope (correlated)", seed=2000)
KEY["slope_max_rel_err"] = float(np.abs(tab_s["rel. error"]).max())
KEY["slope_max_abs_z"] = float(np.abs(tab_s["z (MC)"]).max())

# %% [markdown]
# ### The seed's random-intercept formula (4.3)
#
# Same profile, σ²_{β3} = 0. The seed's expression matches the simulation once the factor
# e^{2β₀} is included (here β₀ = −0.5, so without it the formula is off by a factor e^{−1} = 0.37).

# %%
SIGMA_INT = np.array([[SD0 ** 2, 0.0], [0.0, 0.0]])
mu_i, cov_i, emp_i, tab_i = check(SIGMA_INT, "random intercept only", seed=2001)
seed_cov = seed_formula_intercept(SEX, SEL, SUN, BETA, SD0 ** 2)
seed_cov_nob0 = seed_formula_intercept(SEX, SEL, SUN, BETA, SD0 ** 2, with_beta0=False)
off = ~np.eye(T, dtype=bool)
print("seed (4.3) x exp(2 beta0) vs general formula, max rel diff:",
      float(np.max(np.abs(seed_cov[off] / cov_i[off] - 1))))
print("seed (4.3) as printed / empirical, median ratio:", float(np.median(seed_cov_nob0[off] / emp_i[off])),
      f"(exp(2 beta0) = {np.exp(2 * BETA[0]):.4f})")
KEY["intercept_max_rel_err"] = float(np.abs(tab_i["rel. error"]).max())
KEY["intercept_max_abs_z"] = float(np.abs(tab_i["z (MC)"]).max())
KEY["seed_formula_vs_general"] = float(np.max(np.abs(seed_cov[off] / cov_i[off] - 1)))
KEY["seed_formula_as_printed_ratio"] = float(np.median(seed_cov_nob0[off] / emp_i[off]))

# %%
fig, ax = plt.subplots(figsize=(5, 4.5))
iu = np.triu_indices(T)
for (cv, em, lab, c) in ((cov_s, emp_s, "intercept + slope", "C0"), (cov_i, emp_i, "intercept only", "C1")):
    ax.scatter(cv[iu], em[iu], label=lab, color=c)
lim = [0, max(cov_s.max(), cov_i.max()) * 1.05]
ax.plot(lim, lim, color="0.5", lw=0.8)
ax.set_xlabel("formula")
ax.set_ylabel("empirical (simulation)")
ax.set_title("Induced Var/Cov of yearly counts")
ax.legend()
fig.savefig(OUT / "05_skin_cancer_covariance.png", dpi=120, bbox_inches="tight")

# %% [markdown]
# ## Fitting a simulated five-year study
#
# 400 subjects (half on selenium), 5 yearly exams, sun exposure varying by subject and year.

# %%
rng = np.random.default_rng(1990)
N_SUBJ = 400
sex = rng.binomial(1, 0.5, N_SUBJ)
sel = np.repeat([0, 1], N_SUBJ // 2)
b = rng.multivariate_normal(np.zeros(2), SIGMA, size=N_SUBJ)
sun = rng.normal(0, 1, (N_SUBJ, T))
eta = BETA[0] + b[:, [0]] + BETA[1] * sex[:, None] + BETA[2] * sel[:, None] + (BETA[3] + b[:, [1]]) * sun
y = rng.poisson(np.exp(eta))
skin = pd.DataFrame({"count": y.ravel(), "SEX": np.repeat(sex, T), "SEL": np.repeat(sel, T),
                     "SUN": sun.ravel(), "year": np.tile(np.arange(1, T + 1), N_SUBJ),
                     "id": np.repeat([f"s{i:03d}" for i in range(N_SUBJ)], T)})
print(skin.describe().round(3).to_string())

m_slope = bg.GLMM("count ~ SEX + SEL + SUN + (1 + SUN | id)", skin, family="poisson").fit_ml()
m_int = bg.GLMM("count ~ SEX + SEL + SUN + (1 | id)", skin, family="poisson").fit_ml()
print(m_slope)
vc = m_slope.varcorr
print(pd.DataFrame({"estimate": list(m_slope.fixef) + [float(v) for v in vc["sdcor"]],
                    "truth": list(BETA) + [SD0, SD3, RHO]},
                   index=list(m_slope.fixef.index) + ["sd (Intercept)", "sd SUN", "corr"]).round(3).to_string())
KEY["fit_fixef"] = m_slope.fixef.tolist()
KEY["fit_sdcor"] = [float(v) for v in vc["sdcor"]]

# %% [markdown]
# ### H₀: σ²_{β3} = 0 — is anyone more sensitive to the sun?
#
# Dropping the random slope removes one variance (on the boundary) and one covariance (interior):
# the null distribution is ½χ²₁ + ½χ²₂.

# %%
test = bg.lrt(m_int, m_slope)
print(test)
KEY["lrt"] = {"chisq": test.chisq, "df": test.df, "p": test.p_value, "p_naive": test.p_naive,
              "reference": test.reference}

# %% [markdown]
# ### Induced covariance at the estimates, and prediction of the most sun-sensitive subjects

# %%
S_hat = m_slope.covs[0]
_, cov_hat = induced_moments(X, Z, m_slope.fixef.values, S_hat)
print("induced covariance for the profile, fitted vs true (upper triangle):")
print(pd.DataFrame({"fitted": cov_hat[iu], "true": cov_s[iu]}).round(4).T.to_string())
sens = (m_slope.fixef["SUN"] + m_slope.ranef["id"]["SUN"]).sort_values(ascending=False)
true_sens = pd.Series(BETA[3] + b[:, 1], index=[f"s{i:03d}" for i in range(N_SUBJ)])
top = pd.DataFrame({"predicted SUN effect": sens.head(8), "true": true_sens.loc[sens.index[:8]],
                    "true rank": true_sens.rank(ascending=False).loc[sens.index[:8]].astype(int)})
print(top.round(3).to_string())
KEY["sens_corr"] = float(np.corrcoef(sens.loc[true_sens.index], true_sens)[0, 1])

# %%
(OUT / "05_skin_cancer.json").write_text(json.dumps(KEY, indent=2, default=float))
print("key numbers written to", OUT / "05_skin_cancer.json")

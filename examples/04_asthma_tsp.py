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
# # 04 — Asthma and air pollution: who is most sensitive to TSP?
#
# McCulloch's motivating example (seed 001, §2, patterned after Stiratelli, Laird & Ware
# 1984): 200 schoolchildren are followed for a number of days; each day we record an asthma
# attack (yes/no), total suspended particulates (TSP), sex and hay-fever history. The model
# with a child-specific pollution effect is
#
# $$\ln\frac{p_{ij}}{1 - p_{ij}} = \mu_i + \beta_1 \mathrm{SEX}_i + \beta_2 \mathrm{HAYF}_i
#   + \gamma_i \mathrm{TSP}_j,$$
#
# and the two questions are "does polluted air increase the risk?" (γ) and "are some children
# more sensitive than others and, if so, which ones?" (τ_γ > 0, and the largest γ_i). A BLUP
# ranking answers the second question with one ordering and no uncertainty; the posterior
# gives every child's probability of being among the k most sensitive (`rank_groups`).
#
# The data are simulated (fixed seed), so the true slopes are known.
#
# Run: `python examples/04_asthma_tsp.py` (`BAYES_GLMM_FAST=1` for the quick version).

# %%
import json
import warnings

import numpy as np
import pandas as pd
from scipy import stats

import bayes_glmm as bg
from bayes_glmm._examples import example_settings
from bayes_glmm.postfit.plots import plot_rank_groups
from bayes_glmm.teaching import rank_groups

FAST, RUN_NUTS, OUT = example_settings(globals().get("__file__"))
KEY: dict = {"fast": FAST, "nuts": RUN_NUTS}
pd.set_option("display.width", 140)

# %% [markdown]
# ## Simulated study
#
# 200 children, 30 school days. TSP is a city-wide daily measurement (the same for every child
# on a day), standardized to mean 0 and SD 1. True values: μ = −2, β_SEX = 0.2, β_HAYF = 0.7,
# γ = 0.4; child SDs τ_μ = 0.8 (intercept) and τ_γ = 0.5 (TSP slope), independent.

# %%
N_CHILD, N_DAYS = 200, 30
TRUE = {"(Intercept)": -2.0, "SEX": 0.2, "HAYF": 0.7, "TSP": 0.4, "sd_int": 0.8, "sd_tsp": 0.5}
rng = np.random.default_rng(1984)
tsp_day = rng.gamma(4.0, 20.0, N_DAYS)  # ug/m^3
tsp_z = (tsp_day - tsp_day.mean()) / tsp_day.std()
sex = rng.binomial(1, 0.5, N_CHILD)
hayf = rng.binomial(1, 0.3, N_CHILD)
b_int = rng.normal(0, TRUE["sd_int"], N_CHILD)
b_tsp = rng.normal(0, TRUE["sd_tsp"], N_CHILD)
child = np.repeat(np.arange(N_CHILD), N_DAYS)
day = np.tile(np.arange(N_DAYS), N_CHILD)
eta = (TRUE["(Intercept)"] + b_int[child] + TRUE["SEX"] * sex[child] + TRUE["HAYF"] * hayf[child]
       + (TRUE["TSP"] + b_tsp[child]) * tsp_z[day])
asthma = pd.DataFrame({"attack": rng.binomial(1, 1 / (1 + np.exp(-eta))), "SEX": sex[child],
                       "HAYF": hayf[child], "TSP": tsp_z[day], "day": day,
                       "child": [f"c{i:03d}" for i in child]})
true_slope = pd.Series(TRUE["TSP"] + b_tsp, index=[f"c{i:03d}" for i in range(N_CHILD)])
print(f"{len(asthma)} child-days, attack rate {asthma['attack'].mean():.3f}")

# %% [markdown]
# ## ML fit and the test for differential sensitivity (τ_γ > 0)

# %%
model = bg.GLMM("attack ~ SEX + HAYF + TSP + (1 + TSP || child)", asthma, family="bernoulli")
ml = model.fit_ml()
ml0 = bg.GLMM("attack ~ SEX + HAYF + TSP + (1 | child)", asthma, family="bernoulli").fit_ml()
print(ml)
test = bg.lrt(ml0, ml)
print(test)
print(pd.DataFrame({"estimate": ml.fixef, "truth": [TRUE[k] for k in ml.fixef.index]}).round(3))
KEY["ml_fixef"] = ml.fixef.tolist()
KEY["ml_sd"] = [float(x) for x in ml.varcorr["sdcor"]]
KEY["lrt_slope"] = {"chisq": test.chisq, "p": test.p_value, "reference": test.reference}

# %% [markdown]
# ## BLUP ranking of TSP sensitivity
#
# The child's TSP effect is γ + b_{i,TSP}; ranking by the random slope b_{i,TSP} is the same.

# %%
blup = ml.ranef["child"]["TSP"]
K = 10
true_top = set(true_slope.sort_values(ascending=False).index[:K])
blup_top = set(blup.sort_values(ascending=False).index[:K])
rho_blup = stats.spearmanr(blup.loc[true_slope.index], true_slope).statistic
print(f"Spearman(BLUP, true slope) = {rho_blup:.2f}; BLUP top {K} contains {len(blup_top & true_top)} "
      f"of the true top {K}")
KEY["spearman_blup_truth"] = float(rho_blup)
KEY["blup_top_overlap"] = len(blup_top & true_top)

# %% [markdown]
# ## Posterior top-k probabilities (`rank_groups`)
#
# For each child, P(child is among the 10 largest TSP slopes | data). The column sums to 10;
# with 30 binary days per child no child is *certainly* in the top 10, which is exactly what the
# BLUP ranking hides.

# %%
if RUN_NUTS:
    draws, tune, chains = (300, 300, 1) if FAST else (1000, 1000, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = model.sample(draws=draws, tune=tune, chains=chains, random_seed=1997, progressbar=False)
    print(post)
    ranking = rank_groups(post, term="child", coef="TSP", k=K, ml=ml)
    ranking["true_slope"] = true_slope.loc[ranking.index]
    ranking["true_rank"] = true_slope.rank(ascending=False).loc[ranking.index].astype(int)
    print(ranking.head(15).round(3).to_string())
    post_top = set(ranking.index[:K])
    rho_post = stats.spearmanr(ranking["post_mean"], ranking["true_slope"]).statistic
    print(f"sum of P(top {K}) = {ranking['p_top_k'].sum():.2f}; max P(top {K}) = {ranking['p_top_k'].max():.2f}")
    print(f"posterior top {K} contains {len(post_top & true_top)} of the true top {K}; "
          f"Spearman(posterior mean, truth) = {rho_post:.2f}; "
          f"Spearman(posterior mean, BLUP) = {stats.spearmanr(ranking['post_mean'], ranking['blup']).statistic:.3f}")
    fig = plot_rank_groups(ranking, n=20)
    fig.savefig(OUT / "04_asthma_rank_groups.png", dpi=120, bbox_inches="tight")
    KEY["nuts_fixef"] = post.fixef.tolist()
    KEY["p_top_k_sum"] = float(ranking["p_top_k"].sum())
    KEY["p_top_k_max"] = float(ranking["p_top_k"].max())
    KEY["post_top_overlap"] = len(post_top & true_top)
    KEY["spearman_post_truth"] = float(rho_post)
    KEY["spearman_post_blup"] = float(stats.spearmanr(ranking["post_mean"], ranking["blup"]).statistic)
    KEY["top_children"] = list(ranking.index[:K])

# %%
(OUT / "04_asthma_tsp.json").write_text(json.dumps(KEY, indent=2, default=float))
print("key numbers written to", OUT / "04_asthma_tsp.json")

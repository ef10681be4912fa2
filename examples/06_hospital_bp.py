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
# # 06 — Blood pressure over time: patients within hospitals (LMM)
#
# Seed 003 (a blog tutorial) simulates blood pressure for 100 patients in 10 hospitals,
# 5 visits each, and fits
#
# ```r
# model <- lmer(bp ~ time + (1 | hospital_id) + (1 | patient_id), data = data)
# fixef(model); ranef(model); data$predicted_bp <- predict(model)
# ```
#
# We simulate the **same design** with NumPy (R's `set.seed(123)` stream cannot be reproduced,
# so the numbers differ from any R run of the blog; the lme4 numbers below come from running
# `lmer` on *this* data set, exported to CSV), fit the same model by REML, and draw the
# observed-vs-predicted plot.
#
# Run: `python examples/06_hospital_bp.py` (`BAYES_GLMM_FAST=1` for the quick version).

# %%
import json
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import bayes_glmm as bg
from bayes_glmm._examples import example_settings
from bayes_glmm.postfit.comparison import compare

FAST, RUN_NUTS, OUT = example_settings(globals().get("__file__"))
KEY: dict = {"fast": FAST, "nuts": RUN_NUTS}
pd.set_option("display.width", 140)

# %% [markdown]
# ## Step 1: the blog's data-generating design, line by line

# %%
rng = np.random.default_rng(123)                                  # set.seed(123)
n_patients, n_hospitals = 100, 10
n_obs = n_patients * 5
hospital_id = np.repeat(np.arange(1, n_hospitals + 1), n_obs // n_hospitals)  # rep(1:10, each = 50)
patient_id = np.repeat(np.arange(1, n_patients + 1), 5)           # rep(1:100, each = 5)
hospital_effect = rng.normal(0, 2, n_hospitals)                   # rnorm(10, 0, 2)
patient_effect = rng.normal(0, 1, n_patients)                     # rnorm(100, 0, 1)
time = np.tile(np.arange(1, 6), n_patients)                       # rep(1:5, times = 100)
drug_effect = 0.5 * time
bp = (120 + hospital_effect[hospital_id - 1] + patient_effect[patient_id - 1] + drug_effect
      + rng.normal(0, 5, n_obs))
data = pd.DataFrame({"hospital_id": pd.Categorical(hospital_id), "patient_id": pd.Categorical(patient_id),
                     "time": time, "bp": bp})
print(data.head(7))
(OUT / "06_hospital_bp_data.csv").write_text(data.to_csv(index=False))

# %% [markdown]
# ## Step 2: fit by REML (as `lmer`)

# %%
model = bg.GLMM("bp ~ time + (1 | hospital_id) + (1 | patient_id)", data, family="gaussian")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    fit = model.fit_ml()
print(fit)
sing = [str(w.message) for w in caught if "singular" in str(w.message)]
if sing:
    print("note:", sing[0])

# lmer(bp ~ time + (1|hospital_id) + (1|patient_id)) on the CSV written above (lme4 1.1.31, R 4.2.2)
LME4 = {"fixef": [120.2883509432, 0.4846324694], "sd_patient": 1.062027008, "sd_hospital": 1.074278777,
        "sigma": 5.125528449, "reml_criterion": 3082.62751127,
        "pred_first5": [118.8376566, 119.3222890, 119.8069215, 120.2915540, 120.7761865]}
vc = fit.varcorr.set_index("grp")["sdcor"]
ours = {"fixef": fit.fixef.tolist(), "sd_patient": float(vc["patient_id"]), "sd_hospital": float(vc["hospital_id"]),
        "sigma": float(fit.sigma), "reml_criterion": fit.deviance}
print(pd.DataFrame({"bayes_glmm": [*ours["fixef"], ours["sd_hospital"], ours["sd_patient"], ours["sigma"],
                                   ours["reml_criterion"]],
                    "lme4 1.1.31": [*LME4["fixef"], LME4["sd_hospital"], LME4["sd_patient"], LME4["sigma"],
                                    LME4["reml_criterion"]],
                    "truth": [120, 0.5, 2, 1, 5, np.nan]},
                   index=["(Intercept)", "time", "sd hospital", "sd patient", "sigma", "REML criterion"])
      .round(5).to_string())
KEY["ours"], KEY["lme4"] = ours, LME4

# %% [markdown]
# ## Step 3: fixed effects, random effects, predictions
#
# `fixef`, `ranef` and `predict` have lme4's meaning: `predict()` includes both random intercepts
# (conditional predictions); `re_form=None` gives the population line.

# %%
print("fixef:\n", fit.fixef.round(4).to_string())
re = fit.ranef
print("\nranef hospital_id:\n", re["hospital_id"].round(4).T.to_string())
print("\nranef patient_id (first 5):\n", re["patient_id"].head().round(4).T.to_string())
data["predicted_bp"] = fit.predict()
data["population_bp"] = fit.predict(re_form=None)
rmse = float(np.sqrt(np.mean((data["bp"] - data["predicted_bp"]) ** 2)))
print(f"\nRMSE observed vs conditional prediction: {rmse:.3f}")
print("first 5 predictions:", data["predicted_bp"].head().round(5).tolist(), " lme4:", LME4["pred_first5"])
KEY["ranef_hospital"] = re["hospital_id"]["(Intercept)"].tolist()
KEY["true_hospital_effect"] = hospital_effect.tolist()
KEY["rmse"] = rmse
KEY["pred_first5"] = data["predicted_bp"].head().tolist()

# %% [markdown]
# ## Step 4: observed (coloured by hospital) vs predicted (orange dashed)

# %%
fig, ax = plt.subplots(figsize=(8, 5))
cmap = plt.get_cmap("tab10")
for pid, d in data.groupby("patient_id", observed=True):
    h = int(d["hospital_id"].iloc[0])
    ax.plot(d["time"], d["bp"], color=cmap((h - 1) % 10), alpha=0.5, lw=0.8)
    ax.plot(d["time"], d["predicted_bp"], color="orange", ls="--", lw=0.8)
ax.set_title("Observed vs Predicted Blood Pressure")
ax.set_xlabel("Time")
ax.set_ylabel("Blood Pressure")
fig.savefig(OUT / "06_hospital_bp_observed_predicted.png", dpi=120, bbox_inches="tight")

# %% [markdown]
# ## The same model by NUTS
#
# With 5 noisy visits per patient (σ = 5 against a patient SD of 1) and only 10 hospitals, both
# SDs are poorly determined (REML: 1.06 and 1.07 against true 1 and 2); the posterior shows how
# wide that uncertainty is, which the REML point estimates hide.

# %%
if RUN_NUTS:
    draws, tune, chains = (300, 300, 1) if FAST else (1000, 1000, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = model.sample(draws=draws, tune=tune, chains=chains, random_seed=123, progressbar=False)
    print(post)
    cmp = compare(fit, post, names=["REML", "NUTS"])
    print(cmp[["fit", "param", "estimate", "se", "lower", "upper"]].round(3).to_string(index=False))
    KEY["nuts_fixef"] = post.fixef.tolist()
    KEY["nuts_sdcor"] = [float(v) for v in post.varcorr["sdcor"]]

# %%
(OUT / "06_hospital_bp.json").write_text(json.dumps(KEY, indent=2, default=float))
print("key numbers written to", OUT / "06_hospital_bp.json")

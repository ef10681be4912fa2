"""Run every example in examples/ in fast mode and check the numbers it reproduces.

Each example is a jupytext percent script that writes its key numbers to
``$BAYES_GLMM_OUT/<name>.json``.  The examples run in a subprocess with
``BAYES_GLMM_FAST=1`` (few draws, one chain, fewer quadrature orders).  The quick tests also
set ``BAYES_GLMM_NUTS=0`` (ML parts only, each well under 30 s); the NUTS parts, and the
horse-farm example (a nested model with 927 + 511 random effects, ~1.5 min on two busy
cores), are marked ``slow``.

Reference numbers: lme4 1.1.31 / R 4.2.2 (tests/reference/lme4_reference.json and the
constants below, each with the R call that produced it) and the seeds in ../shared/seeds.
"""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
REF = json.loads((ROOT / "tests" / "reference" / "lme4_reference.json").read_text())["fits"]


def run_example(name: str, out: pathlib.Path, nuts: bool, timeout: int = 900) -> dict:
    env = dict(os.environ, BAYES_GLMM_FAST="1", BAYES_GLMM_OUT=str(out), BAYES_GLMM_NUTS="1" if nuts else "0",
               MPLBACKEND="Agg", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    res = json.loads((out / f"{name}.json").read_text())
    assert res["fast"] is True
    return res


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """Lazily run each example once (ML only) per test module."""
    cache = {}

    def get(name):
        if name not in cache:
            out = tmp_path_factory.mktemp(name)
            cache[name] = (run_example(name, out, nuts=False), out)
        return cache[name]
    return get


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    cache = {}

    def get(name):
        if name not in cache:
            out = tmp_path_factory.mktemp(name + "_nuts")
            cache[name] = (run_example(name, out, nuts=True), out)
        return cache[name]
    return get


def close(a, b, atol):
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=0, atol=atol)


# ----------------------------------------------------------------------------- 01 toenail
def test_toenail_quadrature_matches_lme4(quick):
    r, out = quick("01_toenail")
    for q in ("5", "25"):
        close(r["fixef"][q], REF[f"toenail_agq{int(q):02d}"]["fixef"], 1e-3)
        close(r["sd_ID"][q], REF[f"toenail_agq{int(q):02d}"]["varcorr"]["sdcor"][0], 2e-3)
    # Laplace: lme4's optimum with tolPwrss = 1e-12 (its default stops ~0.014 short)
    close(r["fixef"]["1"], [-2.52336393, -0.40009245, -0.30702057, -0.13726029], 1e-3)
    assert abs(r["fixef"]["1"][0] - REF["toenail_agq01"]["fixef"][0]) < 0.02
    assert r["loglik"]["1"] >= REF["toenail_agq01"]["loglik"] - 1e-3


def test_toenail_seed_q25_table(quick):
    r, _ = quick("01_toenail")
    seed_est = [-1.61833, -0.39084, -0.16081, -0.13672]
    seed_se = [0.43329, 0.04433, 0.58379, 0.06799]
    est, se = r["q25_table"]["estimate"], r["q25_table"]["se"]
    # the seed's "Q = 25" numbers are lme4 1.1.31's nAGQ = 20 fit; at Q = 25 the intercept
    # moves by 0.0037 (lme4 1.1.31 agrees with us there, see the test above)
    close(est, seed_est, 4e-3)
    close(est[1:], seed_est[1:], 1e-3)
    close(se, seed_se, 1.5e-3)
    assert r["q25_table"]["p"][3] == pytest.approx(0.0443, abs=1e-3)  # Month:Treatment, seed p = 0.044337


def test_toenail_pql_and_marginal(quick):
    r, out = quick("01_toenail")
    close(r["pql_fixef"], [-0.743247091, -0.294691019, -0.034802311, -0.100175152], 1e-5)  # MASS::glmmPQL
    close(r["pql_fixef"], [-0.7452137, -0.2960060, -0.0355670, -0.1005177], 3e-3)  # seed, mgcv::gamm
    assert 2.2 < r["pql_sd"] < 2.45 < 3.9 < r["sd_ID"]["25"]
    cond, marg = r["month_conditional"], r["month_marginal"]
    assert cond == pytest.approx(-0.3908, abs=1e-3)
    assert marg < 0 and abs(marg) < 0.5 * abs(cond)  # attenuation by a SD-4 random intercept
    assert marg == pytest.approx(r["month_gee"], abs=0.03)
    assert marg == pytest.approx(r["month_marginal_zla"], abs=0.03)
    assert (out / "01_toenail_compare.png").exists() and (out / "01_toenail_marginal.png").exists()


@pytest.mark.slow
def test_toenail_nuts(full):
    r, _ = full("01_toenail")
    close(r["nuts_fixef"][1], r["fixef"]["25"][1], 0.03)       # Month
    close(r["nuts_fixef"][0], r["fixef"]["25"][0], 0.35)       # intercept (posterior SD ~0.4)
    assert 3.3 < r["nuts_sd"] < 4.8


# ----------------------------------------------------------------------------- 02 epilepsy
def test_epilepsy_laplace_matches_seed(quick):
    r, _ = quick("02_epilepsy")
    close(r["laplace_fixef"], [1.071299, -0.002394, 0.049481, -0.307159], 1e-3)
    close(r["laplace_fixef"], REF["epilepsy_slope_laplace"]["fixef"], 1e-3)
    close(r["laplace_se"], [0.140267, 0.109092, 0.192716, 0.150452], 1e-3)
    var_int, var_slope, corr = r["laplace_varcorr"]
    assert var_int == pytest.approx(0.4999, abs=1e-3)
    assert var_slope == pytest.approx(0.2319, abs=1e-3)
    assert round(corr, 2) == 0.17


def test_epilepsy_vector_agq_and_intercept_model(quick):
    r, _ = quick("02_epilepsy")
    for q, fx in r["agq_fixef"].items():  # q = 2 term: quadrature on the product grid
        close(fx, r["laplace_fixef"], 0.01)
    assert r["max_laplace_agq_diff"] < 1e-3
    close(r["int_agq20_fixef"], [1.03259, 0.11080, -0.02387, -0.10368], 1e-4)   # seed, nAGQ = 20
    close(r["int_agq20_se"], [0.15269, 0.04689, 0.21067, 0.06505], 1e-4)
    close(r["int_laplace_fixef"], [1.03265, 0.11080, -0.02385, -0.10368], 1e-4)  # seed, Laplace
    assert r["lrt_slope"]["reference"] == "0.5 chi2_1 + 0.5 chi2_2"
    chisq = r["lrt_slope"]["chisq"]
    assert r["lrt_slope"]["p"] == pytest.approx(0.5 * stats.chi2.sf(chisq, 1) + 0.5 * stats.chi2.sf(chisq, 2),
                                                rel=1e-6)


@pytest.mark.slow
def test_epilepsy_nuts(full):
    r, _ = full("02_epilepsy")
    close(r["nuts_fixef"], r["laplace_fixef"], 0.12)
    sd_int, sd_slope, corr = r["nuts_sdcor"][:3]
    assert 0.55 < sd_int < 0.95 and 0.3 < sd_slope < 0.7 and -0.3 < corr < 0.6


# ----------------------------------------------------------------------------- 03 horse farms
@pytest.mark.slow
def test_horse_farms_boundary_lrt_and_icc(full):
    r, _ = full("03_horse_farms")
    assert (r["n_horses"], r["n_farms"]) == (2587, 511)
    lrt = r["lrt_group"]
    assert lrt["reference"] == "0.5 chi2_0 + 0.5 chi2_1"
    assert tuple(lrt["dfs"]) == (0, 1) and tuple(lrt["weights"]) == (0.5, 0.5)
    expected = 1.0 if lrt["chisq"] <= 0 else 0.5 * stats.chi2.sf(lrt["chisq"], 1)
    assert lrt["p"] == pytest.approx(expected, rel=1e-9)        # the mixture, not chi2_1
    # seed: the difference in loglik is (essentially) zero; here the group variance is 0.012
    # (truth 0), LR = 0.006, mixture p = 0.47 (glmer on the same data: the same optimum)
    assert lrt["chisq"] < 0.1 and lrt["p"] > 0.3
    assert lrt["p"] == pytest.approx(0.5 * lrt["p_naive"], rel=1e-9) or lrt["chisq"] == 0
    assert r["nested_varcorr"]["group:farm"] < 0.05
    assert 0.8 < r["farm_var"] < 1.8                             # truth 1.26
    assert r["lrt_farm"]["p"] < 1e-10
    v, vg = r["nested_varcorr"]["farm"], r["nested_varcorr"]["group:farm"]
    assert r["icc_farm"] == pytest.approx(v / (v + vg + np.pi ** 2 / 3), rel=1e-6)
    assert r["icc_true"] == pytest.approx(0.2770, abs=1e-3)
    assert r["icc_seed_sd_reading"] == pytest.approx(0.32, abs=0.01)


# ----------------------------------------------------------------------------- 04 asthma
def test_asthma_blup_ranking(quick):
    r, _ = quick("04_asthma_tsp")
    assert r["lrt_slope"]["reference"] == "0.5 chi2_0 + 0.5 chi2_1"
    assert r["lrt_slope"]["p"] < 1e-6
    close(r["ml_fixef"], [-2.0, 0.2, 0.7, 0.4], 0.35)
    assert 0.3 < r["ml_sd"][1] < 0.75                            # TSP slope SD, truth 0.5
    assert r["spearman_blup_truth"] > 0.5


@pytest.mark.slow
def test_asthma_rank_groups(full):
    r, out = full("04_asthma_tsp")
    assert r["p_top_k_sum"] == pytest.approx(10.0, abs=1e-9)
    assert 0 < r["p_top_k_max"] < 1
    assert r["spearman_post_blup"] > 0.95
    assert r["spearman_post_truth"] > 0.5
    assert (out / "04_asthma_rank_groups.png").exists()


# ----------------------------------------------------------------------------- 05 skin cancer
def test_skin_cancer_covariance_formula(quick):
    r, out = quick("05_skin_cancer")
    for k in ("slope", "intercept"):
        assert r[f"{k}_max_abs_z"] < 4.5, k                       # within Monte Carlo error
        assert r[f"{k}_max_rel_err"] < 0.05, k
    assert r["seed_formula_vs_general"] < 1e-12                  # seed (4.3) x exp(2 beta0)
    assert r["seed_formula_as_printed_ratio"] == pytest.approx(np.exp(1.0), rel=0.05)  # beta0 = -0.5
    assert r["lrt"]["reference"] == "0.5 chi2_1 + 0.5 chi2_2"
    assert r["lrt"]["p"] < r["lrt"]["p_naive"]
    close(r["fit_fixef"], [-0.5, 0.3, -0.2, 0.4], 0.2)
    assert r["sens_corr"] > 0.4
    assert (out / "05_skin_cancer_covariance.png").exists()


# ----------------------------------------------------------------------------- 06 hospital
def test_hospital_lmm_matches_lme4(quick):
    r, out = quick("06_hospital_bp")
    ours, lme4 = r["ours"], r["lme4"]
    close(ours["fixef"], [120.2883509432, 0.4846324694], 1e-3)
    close([ours["sd_hospital"], ours["sd_patient"], ours["sigma"]], [1.074278777, 1.062027008, 5.125528449], 1e-3)
    assert ours["reml_criterion"] == pytest.approx(3082.62751127, abs=1e-3)
    close(r["pred_first5"], [118.8376566, 119.3222890, 119.8069215, 120.2915540, 120.7761865], 1e-3)
    assert lme4["fixef"] == [120.2883509432, 0.4846324694]  # the example quotes the same lme4 run
    assert (out / "06_hospital_bp_observed_predicted.png").exists()


@pytest.mark.slow
def test_hospital_nuts(full):
    r, _ = full("06_hospital_bp")
    close(r["nuts_fixef"], r["ours"]["fixef"], 0.6)


# ----------------------------------------------------------------------------- 07 overdispersion
# glmmTMB 1.1.5 on the package's epilepsy data (R 4.2.2):
#   glmmTMB(count ~ offset(log(weeks)) + followup * group + (1 | id), d, family = nbinom2)
#       logLik -888.8779239, theta (sigma) 6.780073, fixef 1.099986 0.01611593 0.07427351 -0.3122396
#   ... ziformula = ~1: logLik -885.5496177, theta 8.192262, zi -3.634796
#   ... family = poisson, + (1 | obs): logLik -888.8213701
def test_overdispersion_families_match_glmmtmb(quick):
    r, _ = quick("07_overdispersion")
    assert r["loglik"]["NB2"] == pytest.approx(-888.8779239, abs=1e-3)
    assert r["loglik"]["ZINB"] == pytest.approx(-885.5496177, abs=1e-3)
    assert r["loglik"]["Poisson + OLRE"] == pytest.approx(-888.8213701, abs=1e-3)
    assert r["theta_nb2"] == pytest.approx(6.780073, rel=1e-3)
    assert r["theta_zinb"] == pytest.approx(8.192262, rel=1e-3)
    assert r["zi_zinb"] == pytest.approx(-3.634796, abs=2e-3)
    assert r["interaction"]["NB2"] == pytest.approx(-0.3122396, abs=1e-3)
    # one scale: the Poisson fit is far worse, and its LRT against NB2 uses the boundary mixture
    assert r["aic"]["Poisson"] - r["aic"]["NB2"] > 200
    lrt = r["lrt_Poisson_NB2"]
    assert lrt["reference"] == "0.5 chi2_0 + 0.5 chi2_1" and lrt["p"] < 1e-40
    assert r["lrt_NB2_ZINB"]["p"] == pytest.approx(0.5 * stats.chi2.sf(r["lrt_NB2_ZINB"]["chisq"], 1))
    # zero counts: Poisson under-predicts them badly, zero inflation closes most of the gap
    z = r["expected_zeros"]
    assert z["Poisson"] < z["NB2"] < z["ZINB"] <= r["n_zero"] + 1


@pytest.mark.slow
def test_overdispersion_nuts(full):
    r, _ = full("07_overdispersion")
    assert r["nuts_theta_nb2"] == pytest.approx(r["theta_nb2"], rel=0.3)
    assert r["nuts_interaction_nb2"] == pytest.approx(r["interaction"]["NB2"], abs=0.1)
    assert r["loo_rank"][-1] == "Poisson"
    lo, _, hi = r["ppc_zeros"]["Poisson"]
    assert hi < r["n_zero"]  # the Poisson posterior predictive cannot produce the observed zeros


# ----------------------------------------------------------------------------- 08 gamma / beta
# glmmTMB 1.1.5 on the example's simulated data (written out with the example's seed):
#   glmmTMB(days ~ severity + (1 + severity | ward), family = Gamma(link = "log"))
#       logLik -920.724633989, fixef 1.552254 0.3324981, SE 0.05646701 0.04176288,
#       shape 1/sigma^2 = 3.766155, SDs 0.31349 0.18853, corr -0.040
#   glmmTMB(damage ~ dose + (1 | plot), family = beta_family())
#       logLik 123.227905928, fixef -1.11616 0.6565956, SE 0.1103672 0.07379598, phi 11.18411, SD 0.36921
def test_gamma_beta_match_glmmtmb(quick):
    r, _ = quick("08_gamma_beta")
    assert r["gamma_loglik"] == pytest.approx(-920.724633989, abs=1e-3)
    close(r["gamma_fixef"], [1.552254, 0.3324981], 1e-4)
    close(r["gamma_se"], [0.05646701, 0.04176288], 5e-4)
    assert r["gamma_shape"] == pytest.approx(3.766155, rel=1e-3)
    close(r["gamma_sdcor"], [0.31349, 0.18853, -0.040], 2e-3)
    assert r["beta_loglik"] == pytest.approx(123.227905928, abs=1e-3)
    close(r["beta_fixef"], [-1.11616, 0.6565956], 1e-4)
    close(r["beta_se"], [0.1103672, 0.07379598], 5e-4)
    assert r["beta_phi"] == pytest.approx(11.18411, rel=1e-3)
    assert r["beta_sd"] == pytest.approx(0.36921, abs=1e-3)
    assert abs(r["beta_agq_loglik"] - r["beta_loglik"]) < 0.5
    # the truth is inside the Wald intervals
    for est, se, true in zip(r["gamma_fixef"], r["gamma_se"], (1.5, 0.3)):
        assert abs(est - true) < 3 * se


@pytest.mark.slow
def test_gamma_beta_nuts(full):
    r, _ = full("08_gamma_beta")
    assert r["nuts_gamma_shape"] == pytest.approx(r["gamma_shape"], rel=0.2)
    assert r["nuts_beta_phi"] == pytest.approx(r["beta_phi"], rel=0.3)
    close(r["nuts_gamma_fixef"], r["gamma_fixef"], 0.1)
    close(r["nuts_beta_fixef"], r["beta_fixef"], 0.15)

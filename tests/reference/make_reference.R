# Reference fits with lme4 for tests/test_ml_reference.py.
#
# Run from the repository root:
#     Rscript tests/reference/make_reference.R
# Writes tests/reference/lme4_reference.json.  The tests only read the JSON, so they never
# need R.  Every dataset is written into the JSON (column-wise) exactly as it was fitted, so
# the Python side fits the very same rows; the data definitions are those of
# bayes_glmm/datasets/make_datasets.R.
#
# Notes on scales:
#   * For glmer with nAGQ > 1, lme4 computes the deviance from the family's deviance
#     residuals, so logLik() omits the saturated log-likelihood constant (zero only for 0/1
#     data) and is not on the Laplace (nAGQ = 1) scale.  The JSON marks these entries
#     "loglik_scale": "lme4_agq"; compare estimates only.
#   * For REML fits logLik() is the REML criterion's log-likelihood.
suppressMessages({
  library(lme4)
  library(HSAUR3)
  library(jsonlite)
})

out_file <- "tests/reference/lme4_reference.json"

# ---------------------------------------------------------------- datasets
data(toenail, package = "HSAUR3")
toe <- data.frame(ID = as.integer(as.character(toenail$patientID)),
                  Response = as.integer(toenail$outcome == "moderate or severe"),
                  Treatment = as.integer(toenail$treatment == "terbinafine"),
                  Month = toenail$time)

data(epilepsy, package = "HSAUR3")
ep <- epilepsy
base <- ep[ep$period == "1", ]
epi <- rbind(
  data.frame(id = as.integer(as.character(base$subject)), count = base$base, weeks = 8L,
             visit = 0L, group = as.integer(base$treatment == "Progabide")),
  data.frame(id = as.integer(as.character(ep$subject)), count = ep$seizure.rate, weeks = 2L,
             visit = as.integer(as.character(ep$period)),
             group = as.integer(ep$treatment == "Progabide")))
epi <- epi[order(epi$id, epi$visit), ]
rownames(epi) <- NULL
epi$followup <- epi$visit > 0
stopifnot(nrow(epi) == 295)

data(cbpp, package = "lme4")
data(sleepstudy, package = "lme4")
data(Penicillin, package = "lme4")
data(Pastes, package = "lme4")

# crossed Poisson GLMM: 30 sites x 12 years, 2 replicates each, fixed seed
set.seed(20240521)
n_site <- 30; n_year <- 12
pois <- expand.grid(rep = 1:2, year = 1:n_year, site = 1:n_site)
pois$x <- round(rnorm(nrow(pois)), 4)
u_site <- rnorm(n_site, sd = 0.6); u_year <- rnorm(n_year, sd = 0.3)
eta <- 0.5 + 0.3 * pois$x + u_site[pois$site] + u_year[pois$year]
pois$y <- rpois(nrow(pois), exp(eta))
pois$site <- paste0("s", pois$site)
pois$year <- paste0("y", pois$year)
pois <- pois[, c("y", "x", "site", "year")]

datasets <- list(
  toenail = toe,
  epilepsy = epi,
  cbpp = data.frame(herd = as.character(cbpp$herd), incidence = cbpp$incidence,
                    size = cbpp$size, period = as.character(cbpp$period)),
  sleepstudy = data.frame(Reaction = sleepstudy$Reaction, Days = sleepstudy$Days,
                          Subject = as.character(sleepstudy$Subject)),
  penicillin = data.frame(diameter = Penicillin$diameter, plate = as.character(Penicillin$plate),
                          sample = as.character(Penicillin$sample)),
  pastes = data.frame(strength = Pastes$strength, batch = as.character(Pastes$batch),
                      cask = as.character(Pastes$cask)),
  crossed_poisson = pois
)

# ---------------------------------------------------------------- fitting helpers
ctrl_g <- glmerControl(optCtrl = list(maxfun = 1e5))
# lme4's default PIRLS tolerance (tolPwrss = 1e-7) leaves the conditional modes short of
# convergence where random-effect SDs are large (toenail: SD 4.6 on the logit scale), which
# shifts the Laplace deviance by ~0.01 and the estimates by ~1e-2.  Every glmer fit is
# therefore repeated with a tight tolerance and recorded under "tight"; the tests compare
# estimates with the tight fit and require our logLik to be no lower than either.
ctrl_tight <- glmerControl(optCtrl = list(maxfun = 1e5), tolPwrss = 1e-12)

summarise_fit <- function(m, key, data_name, formula, family, nagq, reml) {
  vc <- as.data.frame(VarCorr(m))
  vc$var1[is.na(vc$var1)] <- ""
  vc$var2[is.na(vc$var2)] <- ""
  ll <- logLik(m)
  scale <- if (isGLMM(m) && nagq > 1) "lme4_agq" else "laplace"
  list(
    key = key, data = data_name, formula = formula, family = family,
    n_agq = nagq, reml = reml, n_obs = nobs(m),
    method = if (isGLMM(m)) (if (nagq > 1) paste0("AGQ(", nagq, ")") else "Laplace")
             else if (reml) "REML" else "ML",
    fixef_names = I(names(fixef(m))),
    fixef = I(unname(fixef(m))),
    se = I(unname(sqrt(diag(as.matrix(vcov(m)))))),
    theta = I(unname(getME(m, "theta"))),
    theta_names = I(names(getME(m, "theta"))),
    sigma = if (isGLMM(m)) NULL else sigma(m),
    varcorr = list(grp = I(vc$grp), var1 = I(vc$var1), var2 = I(vc$var2), vcov = I(vc$vcov),
                   sdcor = I(vc$sdcor)),
    loglik = as.numeric(ll), df = attr(ll, "df"),
    loglik_scale = scale,
    aic = AIC(m), bic = BIC(m), deviance = if (reml) REMLcrit(m) else deviance(m),
    is_singular = isSingular(m),
    optimizer_messages = I(as.character(m@optinfo$conv$lme4$messages))
  )
}

fits <- list()
add_glmer <- function(key, data_name, formula, family, nagq) {
  d <- datasets[[data_name]]
  fam <- if (family == "poisson") poisson() else binomial()
  m <- glmer(as.formula(formula), data = d, family = fam, nAGQ = nagq, control = ctrl_g)
  py_family <- if (family == "binomial" && !grepl("^cbind", formula)) "bernoulli" else family
  res <- summarise_fit(m, key, data_name, formula, py_family, nagq, FALSE)
  mt <- glmer(as.formula(formula), data = d, family = fam, nAGQ = nagq, control = ctrl_tight)
  res$tight <- summarise_fit(mt, key, data_name, formula, py_family, nagq, FALSE)
  res$tight$control <- "glmerControl(tolPwrss = 1e-12)"
  fits[[key]] <<- res
  cat(sprintf("%-28s logLik %.4f  tight %.4f\n", key, as.numeric(logLik(m)), as.numeric(logLik(mt))))
}
add_lmer <- function(key, data_name, formula, reml) {
  d <- datasets[[data_name]]
  m <- lmer(as.formula(formula), data = d, REML = reml)
  fits[[key]] <<- summarise_fit(m, key, data_name, formula, "gaussian", 1L, reml)
  cat(sprintf("%-28s logLik %.4f\n", key, as.numeric(logLik(m))))
}

toe_f <- "Response ~ Month * Treatment + (1 | ID)"
for (q in c(1L, 2L, 3L, 5L, 10L, 20L, 25L)) {
  add_glmer(sprintf("toenail_agq%02d", q), "toenail", toe_f, "binomial", q)
}
add_glmer("epilepsy_slope_laplace", "epilepsy",
          "count ~ offset(log(weeks)) + followup * group + (1 + followup | id)", "poisson", 1L)
add_glmer("epilepsy_int_laplace", "epilepsy",
          "count ~ offset(log(weeks)) + followup * group + (1 | id)", "poisson", 1L)
add_glmer("epilepsy_int_agq20", "epilepsy",
          "count ~ offset(log(weeks)) + followup * group + (1 | id)", "poisson", 20L)
cb_f <- "cbind(incidence, size - incidence) ~ period + (1 | herd)"
add_glmer("cbpp_laplace", "cbpp", cb_f, "binomial", 1L)
add_glmer("cbpp_agq10", "cbpp", cb_f, "binomial", 10L)
add_glmer("crossed_poisson_laplace", "crossed_poisson",
          "y ~ x + (1 | site) + (1 | year)", "poisson", 1L)

add_lmer("sleepstudy_reml", "sleepstudy", "Reaction ~ Days + (Days | Subject)", TRUE)
add_lmer("sleepstudy_ml", "sleepstudy", "Reaction ~ Days + (Days | Subject)", FALSE)
add_lmer("sleepstudy_uncorr_reml", "sleepstudy", "Reaction ~ Days + (Days || Subject)", TRUE)
add_lmer("sleepstudy_int_ml", "sleepstudy", "Reaction ~ Days + (1 | Subject)", FALSE)
add_lmer("penicillin_reml", "penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", TRUE)
add_lmer("pastes_reml", "pastes", "strength ~ 1 + (1 | batch/cask)", TRUE)
add_lmer("pastes_ml", "pastes", "strength ~ 1 + (1 | batch/cask)", FALSE)

# likelihood-ratio reference: anova() on ML refits (naive chi-square p-values)
m0 <- lmer(Reaction ~ Days + (1 | Subject), sleepstudy, REML = FALSE)
m1 <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE)
a <- anova(m0, m1)
lrt_ref <- list(
  sleepstudy_int_vs_slope = list(m0 = "sleepstudy_int_ml", m1 = "sleepstudy_ml",
                                 chisq = a$Chisq[2], df = a$Df[2],
                                 p_naive = a$`Pr(>Chisq)`[2])
)

ref <- list(
  generated_by = "tests/reference/make_reference.R",
  r_version = R.version.string,
  lme4_version = as.character(packageVersion("lme4")),
  hsaur3_version = as.character(packageVersion("HSAUR3")),
  notes = paste("glmer nAGQ>1 logLik omits the saturated log-likelihood (scale 'lme4_agq');",
                "compare AGQ estimates only. REML logLik is the REML criterion's."),
  data_rows = lapply(datasets, nrow),
  data = lapply(datasets, function(d) as.list(d)),
  fits = fits,
  lrt = lrt_ref
)
writeLines(toJSON(ref, auto_unbox = TRUE, digits = NA, null = "null", pretty = FALSE), out_file)
cat("wrote", out_file, "\n")

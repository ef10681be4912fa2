# Reference values from emmeans (on lme4 / lmerTest fits) for tests/test_emmeans.py.
#
# Run from the repository root:
#     Rscript tests/reference/make_reference_emmeans.R
# Writes tests/reference/emmeans_reference.json (the data sets are stored in it column-wise,
# factors as strings with their level order, so the tests fit the same rows without R).
#
# Cases
#   cbpp:     glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), binomial)
#             emmeans(~ period) on the link and response scales, pairs (Tukey), odds ratios,
#             trt.vs.ctrl (adjust = "holm")
#   cbpp_cov: the same plus the numeric covariate size (held at its mean in the grid)
#   oats:     lmer(Y ~ N * V + (1 | B / V)), REML, MASS's oats less 6 rows (unbalanced, so the
#             df are not integers): emmeans(~ N), emmeans(~ V), emmeans(~ N | V) with
#             lmer.df = "kenward-roger" and "satterthwaite"; pairs with Tukey / Holm
suppressMessages({
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
  library(emmeans)
  library(jsonlite)
  library(MASS)
})
out_file <- "tests/reference/emmeans_reference.json"
options(contrasts = c("contr.treatment", "contr.poly"))
emm_options(lmerTest.limit = 1e6, pbkrtest.limit = 1e6)

as_plain <- function(d) {
  for (v in names(d)) if (is.factor(d[[v]])) d[[v]] <- factor(as.character(d[[v]]), levels = levels(d[[v]]))
  rownames(d) <- NULL
  d
}
data_json <- function(d) {
  out <- list()
  for (v in names(d)) out[[v]] <- if (is.factor(d[[v]])) list(values = as.character(d[[v]]), levels = levels(d[[v]])) else d[[v]]
  out
}
tab <- function(x) {
  # summary of an emmGrid as plain columns; the first columns are the grid labels
  s <- as.data.frame(summary(x, infer = c(TRUE, TRUE)))
  for (v in names(s)) if (is.factor(s[[v]])) s[[v]] <- as.character(s[[v]])
  as.list(s)
}

res <- list(versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                            emmeans = as.character(packageVersion("emmeans")),
                            lmerTest = as.character(packageVersion("lmerTest")),
                            pbkrtest = as.character(packageVersion("pbkrtest"))))

# ---------------------------------------------------------------- binomial GLMM
data(cbpp, package = "lme4")
cb <- as_plain(cbpp)
# converged tightly (bobyqa, rhoend 1e-10), so the comparison is of emmeans, not of optimizers
ctl <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
g <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), data = cb, family = binomial, control = ctl)
em_l <- emmeans(g, ~ period)
em_r <- emmeans(g, ~ period, type = "response")
res$cbpp <- list(
  data = data_json(cb), formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
  fixef = as.list(fixef(g)), vcov = as.matrix(vcov(g)), loglik = as.numeric(logLik(g)),
  emm_link = tab(em_l), emm_response = tab(em_r),
  pairs_link = tab(pairs(em_l)), pairs_response = tab(pairs(em_r)),
  pairs_none = tab(pairs(em_l, adjust = "none")),
  trt_holm = tab(contrast(em_l, "trt.vs.ctrl", adjust = "holm")),
  custom_bonf = tab(contrast(em_l, list(early_vs_late = c(0.5, 0.5, -0.5, -0.5), p1_vs_p4 = c(1, 0, 0, -1)),
                             adjust = "bonferroni")))
g2 <- glmer(cbind(incidence, size - incidence) ~ period + size + (1 | herd), data = cb, family = binomial,
            control = ctl)
em2 <- emmeans(g2, ~ period, type = "response")
res$cbpp_cov <- list(
  formula = "cbind(incidence, size - incidence) ~ period + size + (1 | herd)",
  fixef = as.list(fixef(g2)), vcov = as.matrix(vcov(g2)), loglik = as.numeric(logLik(g2)), size_mean = mean(cb$size),
  emm_response = tab(em2), pairs_response = tab(pairs(em2)))

# ---------------------------------------------------------------- split-plot LMM
data(oats, package = "MASS")
oats_d <- as_plain(oats[, c("Y", "N", "V", "B")])
oats_u <- oats_d[-c(2, 9, 23, 40, 41, 58), ]
rownames(oats_u) <- NULL
m <- lmer(Y ~ N * V + (1 | B / V), data = oats_u, REML = TRUE)
out <- list(data = data_json(oats_u), formula = "Y ~ N * V + (1 | B/V)", fixef = as.list(fixef(m)))
for (df in c("kenward-roger", "satterthwaite")) {
  key <- if (df == "kenward-roger") "kr" else "satt"
  eN <- emmeans(m, ~ N, lmer.df = df)
  eV <- emmeans(m, ~ V, lmer.df = df)
  eNV <- emmeans(m, ~ N | V, lmer.df = df)
  out[[paste0("emm_N_", key)]] <- tab(eN)
  out[[paste0("emm_V_", key)]] <- tab(eV)
  out[[paste0("emm_N_by_V_", key)]] <- tab(eNV)
  out[[paste0("pairs_N_", key)]] <- tab(pairs(eN))
  out[[paste0("pairs_V_holm_", key)]] <- tab(pairs(eV, adjust = "holm"))
  out[[paste0("pairs_N_by_V_", key)]] <- tab(pairs(eNV))
}
res$oats <- out
writeLines(toJSON(res, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null"), out_file)
cat("wrote", out_file, "\n")

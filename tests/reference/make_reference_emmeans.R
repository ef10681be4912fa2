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
#   every table is summary(infer = c(TRUE, TRUE)): contrasts carry emmeans's confint limits under
#   their adjustment (Tukey, Bonferroni for holm, dunnettx), which the tests compare too
#   extras (issue 20's second part):
#             oats: emmeans's default df (no lmer.df: Kenward-Roger), weights = "proportional",
#             "outer", "cells", "flat" on ~ N and ~ N | V; at = list(V = two levels); trt.vs.ctrl
#             with its default "dunnettx" adjustment (and on cbpp, asymptotic)
#             cbpp_cov: at = list(size = c(10, 20)) as a grid dimension, ~ period | size
#             trend: simulated LMM y ~ A * x + I(x^2) + (1 | g): emtrends(~ A, var = "x") at the
#             mean of x and at x = 3, pairs of trends (Tukey), emtrends on the response scale
#             of a Poisson GLMM not included (link scale only here)
#             zi / hurdle: glmmTMB Poisson models of Salamanders with a zero part; emmeans
#             1.8.4 on glmmTMB 1.1.5 refuses component = "response", so the response means
#             E[y] = (1 - pi) mu (zi) and (1 - pi) mu / (1 - exp(-mu)) (hurdle) are averaged over
#             the grid here and their delta-method SEs formed from glmmTMB's joint vcov (the
#             Jacobian written out below)
suppressMessages({
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
  library(emmeans)
  library(jsonlite)
  library(MASS)
  library(mvtnorm)
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

# ---------------------------------------------------------------- extras
ex <- list()
eN <- emmeans(m, ~ N)  # emmeans's default df for lmer: Kenward-Roger
ex$oats_default_df <- tab(eN)
ex$oats_trt <- tab(contrast(eN, "trt.vs.ctrl"))          # default adjust: dunnettx
ex$oats_trt_V <- tab(contrast(emmeans(m, ~ V), "trt.vs.ctrl"))
for (w in c("proportional", "outer", "cells", "flat")) {
  ex[[paste0("oats_w_", w)]] <- tab(emmeans(m, ~ V, weights = w))
}
ex$oats_w_cells_by <- tab(emmeans(m, ~ N | V, weights = "cells"))
ex$oats_at_V <- tab(emmeans(m, ~ N, at = list(V = c("Victory", "Marvellous"))))
ex$cbpp_trt <- tab(contrast(em_l, "trt.vs.ctrl"))
ex$cbpp_cov_at <- tab(emmeans(g2, ~ period | size, at = list(size = c(10, 20)), type = "response"))
ex$cbpp_cov_at_avg <- tab(emmeans(g2, ~ period, at = list(size = c(10, 20))))
ex$cbpp_cov_at_one <- tab(emmeans(g2, ~ period, at = list(size = 15)))
# trends
set.seed(1)
d <- data.frame(x = runif(60, 0, 10), A = factor(rep(c("a", "b", "c"), 20)), g = factor(rep(1:10, each = 6)))
d$y <- 1 + 0.3 * d$x + 0.05 * d$x^2 + rnorm(60) + rnorm(10)[d$g]
mt <- lmer(y ~ A * x + I(x^2) + (1 | g), data = d, REML = TRUE)
et <- emtrends(mt, ~ A, var = "x")
ex$trend <- list(data = data_json(d), formula = "y ~ A * x + I(x^2) + (1 | g)", fixef = as.list(fixef(mt)),
                 emtrends = tab(et), emtrends_at3 = tab(emtrends(mt, ~ A, var = "x", at = list(x = 3))),
                 pairs = tab(pairs(et)),
                 emtrends_satt = tab(emtrends(mt, ~ A, var = "x", lmer.df = "satterthwaite")))
# zero-inflated and hurdle Poisson (glmmTMB)
suppressMessages(library(glmmTMB))
data(Salamanders, package = "glmmTMB")
sal <- as_plain(Salamanders[, c("count", "mined", "spp", "site")])
zero_ref <- function(fit, hurdle) {
  b <- fixef(fit)$cond; bz <- fixef(fit)$zi
  V <- vcov(fit, full = TRUE)
  nb <- length(b); nz <- length(bz)
  V <- V[seq_len(nb + nz), seq_len(nb + nz)]
  lv <- list(mined = levels(sal$mined), spp = levels(sal$spp))
  grid <- expand.grid(mined = factor(lv$mined, levels = lv$mined), spp = factor(lv$spp, levels = lv$spp))
  X <- model.matrix(lme4::nobars(formula(fit))[-2], grid)
  Xz <- model.matrix(~ mined, grid)
  mu <- exp(drop(X %*% b)); pz <- plogis(drop(Xz %*% bz))
  if (hurdle) {
    p1 <- 1 - exp(-mu)
    m <- (1 - pz) * mu / p1
    dm_deta <- (1 - pz) * (mu / p1 - mu * mu * exp(-mu) / p1^2)
  } else {
    m <- (1 - pz) * mu
    dm_deta <- m
  }
  J <- cbind(dm_deta * X, -pz * m * Xz)  # d m / d(beta, beta_zi) per grid row
  out <- list()
  for (lev in lv$mined) {
    w <- as.numeric(grid$mined == lev); w <- w / sum(w)
    out$estimate <- c(out$estimate, sum(w * m))
    g <- drop(w %*% J)
    out$SE <- c(out$SE, sqrt(drop(t(g) %*% V %*% g)))
  }
  w <- rbind(as.numeric(grid$mined == "yes"), -as.numeric(grid$mined == "no")) / length(lv$spp)
  g <- colSums(w[1, ] * J) + colSums(w[2, ] * J)
  out$diff <- sum((w[1, ] + w[2, ]) * m)
  out$diff_SE <- sqrt(drop(t(g) %*% V %*% g))
  out$mined <- lv$mined
  list(formula = deparse(formula(fit)), fixef = as.list(b), fixef_zi = as.list(bz), vcov = unname(V),
       loglik = as.numeric(logLik(fit)), emm = out,
       emm_cond_link = tab(emmeans(fit, ~ mined, component = "cond")))
}
zi <- glmmTMB(count ~ mined + spp + (1 | site), ziformula = ~ mined, family = poisson, data = sal)
hu <- glmmTMB(count ~ mined + spp + (1 | site), ziformula = ~ mined, family = truncated_poisson, data = sal)
ex$zi <- zero_ref(zi, FALSE)
ex$hurdle <- zero_ref(hu, TRUE)
ex$glmmTMB <- as.character(packageVersion("glmmTMB"))
# the distribution emmeans's "dunnettx" approximates (k statistics, pairwise correlation 0.5):
# P(max |T_i| >= t) by mvtnorm, integer df (pmvt's) or normal
set.seed(20)
dn <- data.frame(t = c(1.2, 2.5, 1.9, 3.1, 2.2, 0.7), k = c(2, 3, 2, 4, 5, 3), df = c(20, 7, Inf, Inf, 12, Inf))
dn$p <- mapply(function(t, k, df) {
  S <- matrix(0.5, k, k); diag(S) <- 1
  alg <- GenzBretz(maxpts = 1e6, abseps = 1e-8)
  1 - if (is.finite(df)) pmvt(-rep(t, k), rep(t, k), df = df, corr = S, algorithm = alg)[1]
      else pmvnorm(-rep(t, k), rep(t, k), corr = S, algorithm = alg)[1]
}, dn$t, dn$k, dn$df)
dn$df[!is.finite(dn$df)] <- -1  # JSON has no Inf: -1 marks the normal case
ex$dunnett_exact <- as.list(dn)
ex$mvtnorm <- as.character(packageVersion("mvtnorm"))
res$extras <- ex
writeLines(toJSON(res, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null"), out_file)
cat("wrote", out_file, "\n")

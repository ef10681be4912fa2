# Reference predictions with Wald intervals for tests/test_predict_intervals.py.
# lme4 1.1-31's predict.merMod has no se.fit (it ignores the argument), so the population
# (re.form = NA) standard error is computed as the GLMM FAQ does: se = sqrt(diag(X V X')),
# X the fixed-effects model matrix of newdata and V = vcov(fit).  The conditional
# (re.form = NULL) SE adds z' condVar(b_level) z from ranef(fit, condVar = TRUE)
# (beta and b treated as independent, as merTools' predictInterval does).
# Run: Rscript tests/reference/make_reference_predict.R  (from the repository root)
suppressPackageStartupMessages({library(lme4); library(jsonlite)})

one <- function(fit, nd, grp, cols) {
  X <- model.matrix(delete.response(terms(fit)), nd)
  V <- as.matrix(vcov(fit))
  se_pop <- sqrt(rowSums((X %*% V) * X))
  re <- ranef(fit, condVar = TRUE)[[grp]]
  pv <- attr(re, "postVar")
  lev <- rownames(re)
  Z <- model.matrix(as.formula(paste("~", cols)), nd)
  cv <- sapply(seq_len(nrow(nd)), function(i) {
    j <- match(as.character(nd[[grp]][i]), lev)
    if (is.na(j)) return(0)
    z <- Z[i, , drop = TRUE]
    as.numeric(t(z) %*% pv[, , j] %*% z)
  })
  list(eta_pop = unname(predict(fit, nd, re.form = NA)),
       eta_cond = unname(predict(fit, nd, allow.new.levels = TRUE)),
       se_pop = unname(se_pop), se_cond = unname(sqrt(se_pop^2 + cv)))
}

ss <- sleepstudy
ss$Subject <- paste0("S", ss$Subject)
lmm <- lmer(Reaction ~ Days + (Days | Subject), ss)
nd_lmm <- data.frame(Days = c(0, 3, 5, 9, 2), Subject = c("S308", "S309", "S330", "S372", "S999"))
cb <- cbpp
glmm <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cb, binomial)
nd_glmm <- data.frame(period = factor(c(1, 2, 3, 4, 1), levels = 1:4), herd = factor(c(1, 3, 5, 15, 99)))

out <- list(
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4"))),
  note = "lme4 1.1-31 predict() ignores se.fit; se_pop = sqrt(diag(X vcov X')), se_cond adds z' condVar z",
  lmm = c(list(formula = "Reaction ~ Days + (Days | Subject)", REML = TRUE, sigma = sigma(lmm),
               newdata = nd_lmm), one(lmm, nd_lmm, "Subject", "Days")),
  glmm = c(list(formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
                newdata = transform(nd_glmm, period = as.character(period), herd = as.character(herd))),
           one(glmm, nd_glmm, "herd", "1")))
write_json(out, "tests/reference/predict_reference.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)

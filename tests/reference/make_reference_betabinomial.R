# Reference fits of the beta-binomial family with glmmTMB for tests/test_betabinomial.py.
#
# Run from the repository root:
#     Rscript tests/reference/make_reference_betabinomial.R
# Writes tests/reference/betabinomial_cbpp.csv (lme4's cbpp), tests/reference/betabinomial_slope.csv
# (simulated overdispersed binomial data with a random slope, exactly as fitted) and
# tests/reference/betabinomial_reference.json (the fits and the package versions).  The tests
# only read these files, so they never need R.
#
# Conventions (so that Python fits the identical model):
#   * glmmTMB(family = betabinomial()), ML, Laplace, default optimizer and control.
#   * glmmTMB 1.1.5's betabinomial: y ~ BetaBinomial(n, mu phi, (1 - mu) phi), so
#     Var y = n mu (1 - mu) (1 + (n - 1)/(phi + 1)); phi = sigma(fit) = exp(betad) (the
#     "Dispersion parameter for betabinomial family" it prints); log_phi_se is betad's Wald SE.
#   * loglik is logLik() (all normalising constants, log choose(n, y) included); npar = attr(logLik, "df").
#   * Grouping and factor columns are strings ("h01", "p1" ...) so that their levels sort the
#     same in Python; fixed-effect names are then e.g. "periodp2".
suppressMessages({
  library(glmmTMB)
  library(lme4)
  library(TMB)
  library(jsonlite)
})

out_file <- "tests/reference/betabinomial_reference.json"

data(cbpp, package = "lme4")
cb <- data.frame(incidence = cbpp$incidence, size = cbpp$size,
                 period = paste0("p", as.character(cbpp$period)),
                 herd = sprintf("h%02d", as.integer(as.character(cbpp$herd))))

simulate_bb <- function(seed, n_groups, n_per) {
  set.seed(seed)
  g <- rep(seq_len(n_groups), each = n_per)
  x <- round(rnorm(n_groups * n_per), 6)
  n <- sample(5:20, length(g), replace = TRUE)
  b0 <- rnorm(n_groups, 0, 0.7)
  b1 <- rnorm(n_groups, 0, 0.4)
  # truth: intercept -0.5, slope 0.8, phi 6
  mu <- plogis(-0.5 + 0.8 * x + b0[g] + b1[g] * x)
  p <- rbeta(length(g), mu * 6, (1 - mu) * 6)
  data.frame(y = rbinom(length(g), n, p), n = n, x = x, g = sprintf("g%02d", g))
}

fac <- function(x) factor(x, levels = sort(unique(x), method = "radix"))

fit_one <- function(formula, d, group) {
  for (k in intersect(c("period", "herd", "g"), names(d))) d[[k]] <- fac(d[[k]])
  m <- glmmTMB(formula, data = d, family = betabinomial())
  stopifnot(m$fit$convergence == 0)
  est <- summary(m$sdr, "fixed")
  ll <- logLik(m)
  vc <- VarCorr(m)$cond[[group]]
  list(
    formula = paste(deparse(formula), collapse = ""),
    loglik = as.numeric(ll),
    npar = attr(ll, "df"),
    fixef = as.list(fixef(m)$cond),
    fixef_se = as.list(sqrt(diag(vcov(m)$cond))),
    phi = sigma(m),
    log_phi_se = unname(est[rownames(est) == "betad", "Std. Error"]),
    varcorr_sd = as.list(attr(vc, "stddev")),
    varcorr_cor = if (ncol(vc) > 1) attr(vc, "correlation")[1, 2] else NULL,
    pdHess = m$sdr$pdHess
  )
}

d_slope <- simulate_bb(20261218, 30, 12)
write.csv(cb, "tests/reference/betabinomial_cbpp.csv", row.names = FALSE)
write.csv(d_slope, "tests/reference/betabinomial_slope.csv", row.names = FALSE)

ref <- list(
  cbpp = fit_one(cbind(incidence, size - incidence) ~ period + (1 | herd), cb, "herd"),
  slope = fit_one(cbind(y, n - y) ~ x + (1 + x | g), d_slope, "g"),
  truth_slope = list(`(Intercept)` = -0.5, x = 0.8, phi = 6),
  r_version = R.version.string,
  glmmTMB_version = as.character(packageVersion("glmmTMB")),
  TMB_version = as.character(packageVersion("TMB")),
  lme4_version = as.character(packageVersion("lme4"))
)
writeLines(toJSON(ref, auto_unbox = TRUE, digits = NA, null = "null", pretty = TRUE), out_file)

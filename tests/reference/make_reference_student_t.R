# Reference fits of the Student-t family with glmmTMB for tests/test_student_t.py.
#
# Run from the repository root:
#     Rscript tests/reference/make_reference_student_t.R
# Writes tests/reference/student_t_{intercept,slope,log}.csv (the simulated data, exactly as
# fitted) and tests/reference/student_t_reference.json (the fits and the package versions).  The tests only read these files, so they never need R.
#
# Conventions (so that Python fits the identical model):
#   * glmmTMB(family = t_family()), ML, Laplace, default optimizer and control.  In glmmTMB
#     1.1.5 the degrees of freedom are estimated by default: the parameter `psi` = log(df)
#     (fixing it would need map = list(psi = factor(NA)) with start = list(psi = log(df))).
#   * sigma = sigma(fit) is the t's scale (glmmTMB's betad = log(sigma)); df = exp(psi).
#   * log_sigma_se / log_df_se are the Wald SEs on the log scale from sdreport.
#   * loglik is logLik() (all normalising constants); npar = attr(logLik, "df").
#   * The grouping column g is a string ("g01" ...) so that its levels sort the same in Python.
suppressMessages({
  library(glmmTMB)
  library(TMB)
  library(jsonlite)
})

out_file <- "tests/reference/student_t_reference.json"

simulate_t <- function(seed, n_groups, n_per, slope) {
  set.seed(seed)
  g <- rep(seq_len(n_groups), each = n_per)
  x <- round(rnorm(n_groups * n_per), 6)
  b0 <- rnorm(n_groups, 0, 0.8)
  b1 <- if (slope) rnorm(n_groups, 0, 0.4) else rep(0, n_groups)
  # truth: intercept 1, slope 0.5, sigma 0.6, df 4
  y <- 1 + 0.5 * x + b0[g] + b1[g] * x + 0.6 * rt(length(g), df = 4)
  data.frame(y = round(y, 8), x = x, g = sprintf("g%02d", g))
}

fit_one <- function(formula, d, link = "identity") {
  d$g <- factor(d$g, levels = sort(unique(d$g), method = "radix"))
  m <- glmmTMB(formula, data = d, family = t_family(link = link))
  stopifnot(m$fit$convergence == 0)
  sdr <- m$sdr
  est <- summary(sdr, "fixed")
  ll <- logLik(m)
  list(
    formula = deparse(formula),
    link = link,
    loglik = as.numeric(ll),
    npar = attr(ll, "df"),
    fixef = as.list(fixef(m)$cond),
    fixef_se = as.list(sqrt(diag(vcov(m)$cond))),
    sigma = sigma(m),
    df = exp(unname(m$fit$par["psi"])),
    log_sigma_se = unname(est[rownames(est) == "betad", "Std. Error"]),
    log_df_se = unname(est[rownames(est) == "psi", "Std. Error"]),
    varcorr_sd = as.list(attr(VarCorr(m)$cond$g, "stddev")),
    varcorr_cor = if (ncol(VarCorr(m)$cond$g) > 1) attr(VarCorr(m)$cond$g, "correlation")[1, 2] else NULL,
    pdHess = m$sdr$pdHess
  )
}

d_int <- simulate_t(20261207, 40, 12, slope = FALSE)
d_slope <- simulate_t(20261208, 40, 15, slope = TRUE)
write.csv(d_int, "tests/reference/student_t_intercept.csv", row.names = FALSE)
write.csv(d_slope, "tests/reference/student_t_slope.csv", row.names = FALSE)
# log link: y = exp(1 + 0.3 x + b_g) + 0.5 t_5 (positive means, t errors)
set.seed(20261209)
g <- rep(1:30, each = 15)
x <- round(rnorm(450), 6)
d_log <- data.frame(y = round(exp(1 + 0.3 * x + rnorm(30, 0, 0.3)[g]) + 0.5 * rt(450, df = 5), 8),
                    x = x, g = sprintf("g%02d", g))
write.csv(d_log, "tests/reference/student_t_log.csv", row.names = FALSE)

ref <- list(
  intercept = fit_one(y ~ x + (1 | g), d_int),
  slope = fit_one(y ~ x + (1 + x | g), d_slope),
  log = fit_one(y ~ x + (1 | g), d_log, link = "log"),
  truth = list(`(Intercept)` = 1, x = 0.5, sigma = 0.6, df = 4),
  r_version = R.version.string,
  glmmTMB_version = as.character(packageVersion("glmmTMB")),
  TMB_version = as.character(packageVersion("TMB"))
)
writeLines(toJSON(ref, auto_unbox = TRUE, digits = NA, null = "null", pretty = TRUE), out_file)

# Reference fits of the hurdle families with glmmTMB for tests/test_hurdle.py.
#
# Run from the repository root:
#     Rscript tests/reference/make_reference_hurdle.R
# Writes tests/reference/hurdle_{tiny,sim_poisson,sim_nb_slope,sim_nb_offset}.csv (the simulated data, exactly
# as fitted) and tests/reference/hurdle_reference.json (the fits and the package versions); the
# Salamanders fits read tests/reference/salamanders.csv (written by make_reference_zi.R).  The
# tests only read these files, so they never need R.
#
# Conventions (so that Python fits the identical model):
#   * glmmTMB(family = truncated_poisson() / truncated_nbinom2(), ziformula = ~ ...), ML,
#     Laplace, default optimizer and control.  With a truncated family glmmTMB's zi part is the
#     hurdle: P(y = 0) = plogis(eta_zi) and, for y > 0, (1 - pi) f(y; mu) / (1 - f(0; mu)) with
#     mu = exp(eta) the mean of the untruncated count.  The "tiny" fit checks exactly that: its
#     logLik equals the hurdle log-density written out by hand here (own_loglik), and
#     predict(type = "response") equals (1 - pi) mu / (1 - f(0)) (own_mean_max_diff).
#   * bayes_glmm names the zi part "hu" (hu= formula); the coefficients are the same.
#   * theta = sigma(fit) (glmmTMB's nbinom2 `sigma` is the NB size); log_theta_se is the Wald SE
#     of betad = log(theta) from sdreport.
#   * loglik is logLik() (all normalising constants); npar = attr(logLik, "df").
#   * Factor levels in C-locale order (bayes_glmm's default for strings: Salamanders' reference
#     levels mined = "no", spp = "DES-L"); grouping columns are strings ("g01", ...).
#   * time_s: median elapsed seconds of 5 refits (glmmTMB, this machine), for the benchmarks.
suppressMessages({
  library(glmmTMB)
  library(TMB)
  library(jsonlite)
})

out_file <- "tests/reference/hurdle_reference.json"

fit_one <- function(formula, zi, d, family, factors = character(0)) {
  for (v in factors) d[[v]] <- factor(d[[v]], levels = sort(unique(d[[v]]), method = "radix"))
  fam <- switch(family, hurdle_poisson = truncated_poisson(), hurdle_negbinomial = truncated_nbinom2())
  m <- glmmTMB(formula, ziformula = zi, data = d, family = fam)
  stopifnot(m$fit$convergence == 0)
  times <- replicate(5, system.time(glmmTMB(formula, ziformula = zi, data = d, family = fam))[["elapsed"]])
  est <- summary(m$sdr, "fixed")
  ll <- logLik(m)
  vc <- VarCorr(m)$cond
  re <- if (length(vc)) {
    lapply(vc, function(v) list(sd = as.list(attr(v, "stddev")),
                                cor = if (ncol(v) > 1) attr(v, "correlation")[1, 2] else NULL))
  } else NULL
  list(
    formula = deparse(formula),
    hu = deparse(zi),
    family = family,
    loglik = as.numeric(ll),
    npar = attr(ll, "df"),
    fixef = as.list(fixef(m)$cond),
    fixef_se = as.list(sqrt(diag(vcov(m)$cond))),
    fixef_hu = as.list(fixef(m)$zi),
    fixef_hu_se = setNames(as.list(sqrt(diag(vcov(m)$zi))), names(fixef(m)$zi)),
    theta = if (family == "hurdle_negbinomial") sigma(m) else NULL,
    log_theta_se = if (family == "hurdle_negbinomial") unname(est[rownames(est) == "betad", "Std. Error"]) else NULL,
    ranef_sd = re,
    mean_response_head = unname(head(predict(m, type = "response"), 5)),
    pdHess = m$sdr$pdHess,
    time_s = median(times)
  )
}

# --- the parametrization, checked by hand on a tiny example ------------------------------
tiny <- data.frame(y = c(0, 0, 0, 1, 2, 5, 0, 3, 1, 0, 4, 2, 0, 7), x = round(seq(-1, 1, length.out = 14), 8))
write.csv(tiny, "tests/reference/hurdle_tiny.csv", row.names = FALSE)
own <- function(m, family) {
  b <- fixef(m)$cond; pi <- plogis(fixef(m)$zi[[1]]); mu <- exp(b[[1]] + b[[2]] * tiny$x)
  if (family == "hurdle_poisson") {
    lf <- dpois(tiny$y, mu, log = TRUE); f0 <- dpois(0, mu)
  } else {
    th <- sigma(m); lf <- dnbinom(tiny$y, size = th, mu = mu, log = TRUE); f0 <- dnbinom(0, size = th, mu = mu)
  }
  list(loglik = sum(ifelse(tiny$y == 0, log(pi), log(1 - pi) + lf - log(1 - f0))),
       mean_max_diff = max(abs(predict(m, type = "response") - (1 - pi) * mu / (1 - f0))))
}
tiny_fits <- list()
for (fam in c("hurdle_poisson", "hurdle_negbinomial")) {
  r <- fit_one(y ~ x, ~1, tiny, fam)
  m <- glmmTMB(y ~ x, ziformula = ~1, data = tiny,
               family = if (fam == "hurdle_poisson") truncated_poisson() else truncated_nbinom2())
  o <- own(m, fam)
  cat(fam, "own", sprintf("%.12f", o$loglik), "glmmTMB", sprintf("%.12f", r$loglik), "mean diff", o$mean_max_diff, "\n")
  stopifnot(abs(o$loglik - r$loglik) < 1e-6, o$mean_max_diff < 1e-6)
  r$own_loglik <- o$loglik
  r$own_mean_max_diff <- o$mean_max_diff
  tiny_fits[[fam]] <- r
}

# --- real data: Salamanders (glmmTMB's package data, as tests/reference/salamanders.csv) ----
sal <- read.csv("tests/reference/salamanders.csv", stringsAsFactors = FALSE)

# --- simulated: a random intercept with hu ~ x; a random slope with a covariate z in hu ----
sim_hurdle <- function(seed, n_groups, n_per, slope, theta) {
  set.seed(seed)
  g <- rep(seq_len(n_groups), each = n_per)
  n <- length(g)
  x <- round(rnorm(n), 6)
  z <- round(runif(n, -1, 1), 6)
  b0 <- rnorm(n_groups, 0, 0.6)
  b1 <- if (slope) rnorm(n_groups, 0, 0.3) else rep(0, n_groups)
  mu <- exp(0.8 + 0.4 * x + b0[g] + b1[g] * x)
  pi <- if (slope) plogis(-0.5 + 1.2 * z) else plogis(-0.3 + 0.7 * x)
  # zero-truncated draws by inverse CDF on the upper tail (accurate for small mu)
  u <- runif(n)
  if (is.null(theta)) {
    p1 <- ppois(0, mu, lower.tail = FALSE)
    yc <- qpois(u * p1, mu, lower.tail = FALSE)
  } else {
    p1 <- pnbinom(0, size = theta, mu = mu, lower.tail = FALSE)
    yc <- qnbinom(u * p1, size = theta, mu = mu, lower.tail = FALSE)
  }
  yc <- pmax(yc, 1)
  y <- ifelse(runif(n) < pi, 0, yc)
  data.frame(y = y, x = x, z = z, g = sprintf("g%02d", g))
}
d_pois <- sim_hurdle(20261207, 40, 15, slope = FALSE, theta = NULL)
# an exposure offset in the count part and a constant hurdle (bayes_glmm's default hu = "~1")
d_off <- sim_hurdle(20261209, 30, 12, slope = FALSE, theta = 3)
d_off$t <- round(runif(nrow(d_off), 0.5, 3), 4)
mu_off <- exp(0.5 + 0.4 * d_off$x + log(d_off$t) + rnorm(30, 0, 0.5)[as.integer(factor(d_off$g))])
p1 <- pnbinom(0, size = 3, mu = mu_off, lower.tail = FALSE)
d_off$y <- ifelse(runif(nrow(d_off)) < 0.3, 0, pmax(qnbinom(runif(nrow(d_off)) * p1, size = 3, mu = mu_off,
                                                             lower.tail = FALSE), 1))
d_nb <- sim_hurdle(20261208, 50, 16, slope = TRUE, theta = 2)
write.csv(d_pois, "tests/reference/hurdle_sim_poisson.csv", row.names = FALSE)
write.csv(d_nb, "tests/reference/hurdle_sim_nb_slope.csv", row.names = FALSE)
write.csv(d_off, "tests/reference/hurdle_sim_nb_offset.csv", row.names = FALSE)

ref <- list(
  tiny_poisson = tiny_fits[["hurdle_poisson"]],
  tiny_negbinomial = tiny_fits[["hurdle_negbinomial"]],
  sal_poisson = fit_one(count ~ mined + (1 | site), ~mined, sal, "hurdle_poisson", c("mined", "site")),
  sal_negbinomial = fit_one(count ~ spp + mined + (1 | site), ~spp, sal, "hurdle_negbinomial",
                            c("mined", "spp", "site")),
  sim_poisson = fit_one(y ~ x + (1 | g), ~x, d_pois, "hurdle_poisson", "g"),
  sim_nb_slope = fit_one(y ~ x + (1 + x | g), ~z, d_nb, "hurdle_negbinomial", "g"),
  sim_nb_offset = fit_one(y ~ x + offset(log(t)) + (1 | g), ~1, d_off, "hurdle_negbinomial", "g"),
  truth = list(sim_poisson = list(`(Intercept)` = 0.8, x = 0.4, sd = 0.6, hu = c(-0.3, 0.7)),
               sim_nb_slope = list(`(Intercept)` = 0.8, x = 0.4, sd = c(0.6, 0.3), hu = c(-0.5, 1.2), theta = 2)),
  data = list(tiny = "tests/reference/hurdle_tiny.csv", sal = "tests/reference/salamanders.csv",
              sim_poisson = "tests/reference/hurdle_sim_poisson.csv",
              sim_nb_slope = "tests/reference/hurdle_sim_nb_slope.csv",
              sim_nb_offset = "tests/reference/hurdle_sim_nb_offset.csv"),
  r_version = R.version.string,
  glmmTMB_version = as.character(packageVersion("glmmTMB")),
  TMB_version = as.character(packageVersion("TMB"))
)
writeLines(toJSON(ref, auto_unbox = TRUE, digits = NA, null = "null", pretty = TRUE), out_file)

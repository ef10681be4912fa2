# Reference fits of glmmTMB's random-effect covariance structures (us, diag, cs, ar1, toep)
# for tests/test_covstruct_reference.py and benchmarks/bench_covstruct.py (issue 17, item 3).
#
# Run from the repository root:
#     Rscript tests/reference/make_reference_covstruct.R
# Writes tests/reference/covstruct_reference.json and the data sets, exactly as fitted, as
# tests/reference/covstruct_<name>.csv.  The tests only read these files, so they never need R.
#
# Data:
#   sleepstudy  lme4::sleepstudy (Belenky et al. 2003, J. Sleep Res. 12:1-12): reaction
#               times of 18 subjects over 10 days of sleep deprivation.
#   orthodont   nlme::Orthodont (Potthoff & Roy 1964, Biometrika 51:313-326): distance of 27
#               children at ages 8, 10, 12, 14.
#   epil        MASS::epil (Thall & Vail 1990, Biometrics 46:657-671): seizure counts of 59
#               epileptics in four two-week periods; lbase, lage as MASS computes them.
#   sim_*       simulated here (seeds below); true values are stored with each data set.
# Only observations (facts) are copied from the packages, no code (lme4, nlme, MASS: GPL;
# glmmTMB: AGPL).  The structures' definitions follow glmmTMB's covstruct vignette.
#
# Conventions (so that Python fits the identical model):
#   * Factor columns are written as strings and fitted in R with levels in code-point order
#     (bayes_glmm's order for string columns), treatment contrasts: Orthodont's Sex gives
#     "SexMale" (reference "Female"), epil's trt "trtprogabide".
#   * Time factors are written as integers and enter the formulas as factor(t); their levels
#     sort numerically, are equally spaced (glmmTMB's ar1 needs unit-spaced levels: it uses
#     the level index as time) and named "factor(t)<value>".
#   * glmmTMB structures as fitted (glmmTMB 1.1.x):
#       us(x | g)    unstructured: heterogeneous SDs and all correlations (= lme4's (x | g));
#       diag(x | g)  heterogeneous SDs, no correlation (= lme4's (x || g) for numeric x);
#       cs(x | g)    heterogeneous SDs, one common correlation rho in (-1/(q-1), 1)
#                    (homcs would be the homogeneous one; not used here);
#       ar1(0 + factor(t) | g)  ONE SD for all levels, correlation rho^|i-j| (|rho| < 1);
#       toep(0 + factor(t) | g) heterogeneous SDs, one correlation per lag.  In glmmTMB
#                    1.1.5 each lag's correlation is a / sqrt(1 + a^2) of its own free
#                    parameter a (the matrix is not forced positive definite); the tests
#                    compare the correlations VarCorr reports ("toep_lag_corr").
#     For q = 2, cs is us (one correlation either way); those rows cross-check the two.
#   * Gaussian models keep the residual variance (glmmTMB's default dispformula = ~1).  With
#     heterogeneous SDs the residual variance and the structure's diagonal are separated only
#     by the off-diagonal pattern (toep, cs on 0 + factor(t)): such fits are weakly
#     identified; "weak" / pdHess record it.
#   * ML fits: REML = FALSE; REML fits: REML = TRUE (glmmTMB integrates the fixed effects out
#     with the Laplace approximation, exact for a Gaussian LMM, so its REML log-likelihood is
#     lme4's; the us rows store lme4's logLik too as a check).  Laplace for GLMMs, default
#     nlminb optimizer and control.
#   * Gaussian fits also store loglik_exact: the (restricted) log-likelihood at glmmTMB's
#     estimates computed densely here (see exact_gaussian_loglik), which checks glmmTMB's
#     value; for REML it is evaluated at glmmTMB's covariance parameters.
#   * Per fit: loglik = logLik() (all constants; REML criterion for REML fits), npar, fixed
#     effects and SEs (sqrt(diag(vcov)), null where NaN), sigma (Gaussian residual SD), per
#     random term: the SDs and correlation matrix of VarCorr, and the structure's own
#     parameters: "ar1_rho", "cs_rho", "toep_lag_corr" (correlations at lags 1..q-1), glmmTMB's
#     internal parameter vector (fit$fit$par, for evaluating the likelihood elsewhere),
#     convergence, optimizer message, pdHess, "boundary" (an SD below 1e-4 of the largest, a
#     correlation beyond +-0.999 or at cs's lower bound, a correlation matrix with an
#     eigenvalue below 1e-4, or a Gaussian residual SD below 1e-3 of the largest random-effect
#     SD: "sigma_boundary") and seconds_median: the median
#     elapsed time of N_TIME warm refits (the first fit, which loads the DLL, is not timed).
suppressMessages({
  library(glmmTMB)
  library(lme4)
  library(TMB)
  library(jsonlite)
})

out_file <- "tests/reference/covstruct_reference.json"
N_TIME <- 5
invisible(Sys.setlocale("LC_COLLATE", "C"))
csort <- function(x) sort(unique(as.character(x)), method = "radix")  # code-point order
as_fac <- function(x) factor(as.character(x), levels = csort(x))
csv_path <- function(name) sprintf("tests/reference/covstruct_%s.csv", name)

# ---------------------------------------------------------------- data sets
data_sets <- list()
truths <- list()

data(sleepstudy, package = "lme4")
data_sets$sleepstudy <- data.frame(Reaction = sleepstudy$Reaction, Days = as.integer(sleepstudy$Days),
                                   Subject = paste0("S", as.character(sleepstudy$Subject)),
                                   stringsAsFactors = FALSE)

orth <- as.data.frame(nlme::Orthodont)
data_sets$orthodont <- data.frame(distance = orth$distance, age = as.integer(orth$age),
                                  Sex = as.character(orth$Sex), Subject = as.character(orth$Subject),
                                  stringsAsFactors = FALSE)

data(epil, package = "MASS")
data_sets$epil <- data.frame(y = as.integer(epil$y), trt = as.character(epil$trt), lbase = epil$lbase,
                             lage = epil$lage, V4 = as.integer(epil$V4), period = as.integer(epil$period),
                             subject = sprintf("s%02d", as.integer(epil$subject)),
                             stringsAsFactors = FALSE)

ar1_corr <- function(n, rho) rho^abs(outer(seq_len(n), seq_len(n), "-"))
toep_corr <- function(lagcor) { n <- length(lagcor) + 1; d <- abs(outer(seq_len(n), seq_len(n), "-"))
  matrix(c(1, lagcor)[d + 1], n, n) }
rmvn <- function(k, S) matrix(rnorm(k * nrow(S)), k) %*% chol(S)  # rows ~ N(0, S)

# Poisson GLMM with an AR(1) latent process: 60 subjects x 6 equally spaced times.
set.seed(20261207)
n_id <- 60; n_t <- 6
tr <- list(beta = c(0.5, 0.1), sd = 0.6, rho = 0.7)
u <- rmvn(n_id, tr$sd^2 * ar1_corr(n_t, tr$rho))
d <- expand.grid(time = 0:(n_t - 1), i = seq_len(n_id))
eta <- tr$beta[1] + tr$beta[2] * d$time + u[cbind(d$i, d$time + 1)]
data_sets$sim_poisson_ar1 <- data.frame(y = rpois(nrow(d), exp(eta)), time = d$time,
                                        id = sprintf("id%02d", d$i), stringsAsFactors = FALSE)
truths$sim_poisson_ar1 <- tr

# Bernoulli GLMM with a correlated random intercept and slope: 120 groups x 20 rows.
set.seed(20261208)
n_g <- 120; n_per <- 20
tr <- list(beta = c(-0.3, 0.8), sd = c(1.0, 0.5), corr = 0.4)
S <- diag(tr$sd) %*% matrix(c(1, tr$corr, tr$corr, 1), 2) %*% diag(tr$sd)
b <- rmvn(n_g, S)
g <- rep(seq_len(n_g), each = n_per)
x <- round(rnorm(n_g * n_per), 4)
eta <- tr$beta[1] + b[g, 1] + (tr$beta[2] + b[g, 2]) * x
data_sets$sim_bernoulli_slope <- data.frame(y = rbinom(length(eta), 1, plogis(eta)), x = x,
                                            g = sprintf("g%03d", g), stringsAsFactors = FALSE)
truths$sim_bernoulli_slope <- tr

# Gaussian LMM, three correlated random coefficients with one common correlation: 80 x 12.
set.seed(20261209)
n_g <- 80; n_per <- 12
tr <- list(beta = c(2, 0.5, -0.3), sd = c(1.0, 0.6, 0.4), cs_rho = 0.3, sigma = 0.8)
R3 <- matrix(tr$cs_rho, 3, 3); diag(R3) <- 1
b <- rmvn(n_g, diag(tr$sd) %*% R3 %*% diag(tr$sd))
g <- rep(seq_len(n_g), each = n_per)
x1 <- round(rnorm(length(g)), 4); x2 <- round(rnorm(length(g)), 4)
y <- tr$beta[1] + b[g, 1] + (tr$beta[2] + b[g, 2]) * x1 + (tr$beta[3] + b[g, 3]) * x2 + rnorm(length(g), 0, tr$sigma)
data_sets$sim_gaussian_cs3 <- data.frame(y = y, x1 = x1, x2 = x2, g = sprintf("g%02d", g),
                                         stringsAsFactors = FALSE)
truths$sim_gaussian_cs3 <- tr

# Gaussian repeated measures with a heterogeneous Toeplitz process: 100 subjects x 5 times.
set.seed(20261210)
n_id <- 100; n_t <- 5
tr <- list(beta = c(10, 0.5), sd = c(1.0, 1.2, 1.4, 1.6, 1.8), lag_corr = c(0.7, 0.45, 0.3, 0.15), sigma = 0.5)
u <- rmvn(n_id, diag(tr$sd) %*% toep_corr(tr$lag_corr) %*% diag(tr$sd))
d <- expand.grid(t = seq_len(n_t), i = seq_len(n_id))
data_sets$sim_gaussian_toep <- data.frame(
  y = tr$beta[1] + tr$beta[2] * d$t + u[cbind(d$i, d$t)] + rnorm(nrow(d), 0, tr$sigma),
  t = d$t, id = sprintf("id%03d", d$i), stringsAsFactors = FALSE)
truths$sim_gaussian_toep <- tr

for (nm in names(data_sets)) write.csv(data_sets[[nm]], csv_path(nm), row.names = FALSE)

# R's view of a data set: strings become factors with code-point-ordered levels.
r_data <- function(nm) {
  d <- data_sets[[nm]]
  for (v in names(d)) if (is.character(d[[v]])) d[[v]] <- as_fac(d[[v]])
  d
}

# ---------------------------------------------------------------- models
# key, data, formula, family, REML, lme4 formula of the same model (cross-check) or NA
specs <- list()
add <- function(key, data, formula, family, reml, lme4_formula = NA)
  specs[[key]] <<- list(key = key, data = data, formula = formula, family = family, reml = reml,
                        lme4_formula = lme4_formula)
for (reml in c(FALSE, TRUE)) {
  sfx <- if (reml) "reml" else "ml"
  add(paste0("sleepstudy_us_", sfx), "sleepstudy", "Reaction ~ Days + us(Days | Subject)", "gaussian", reml,
      "Reaction ~ Days + (Days | Subject)")
  add(paste0("sleepstudy_diag_", sfx), "sleepstudy", "Reaction ~ Days + diag(Days | Subject)", "gaussian", reml,
      "Reaction ~ Days + (Days || Subject)")
  add(paste0("sleepstudy_cs_", sfx), "sleepstudy", "Reaction ~ Days + cs(Days | Subject)", "gaussian", reml)
  add(paste0("sleepstudy_ar1_", sfx), "sleepstudy", "Reaction ~ Days + ar1(0 + factor(Days) | Subject)",
      "gaussian", reml)
  for (s in c("toep", "ar1", "cs"))
    add(paste0("orthodont_", s, "_", sfx), "orthodont",
        sprintf("distance ~ age + Sex + %s(0 + factor(age) | Subject)", s), "gaussian", reml)
  for (s in c("cs", "diag", "us"))
    add(paste0("sim_gaussian_cs3_", s, "_", sfx), "sim_gaussian_cs3",
        sprintf("y ~ x1 + x2 + %s(x1 + x2 | g)", s), "gaussian", reml)
  for (s in c("toep", "ar1"))
    add(paste0("sim_gaussian_toep_", s, "_", sfx), "sim_gaussian_toep",
        sprintf("y ~ t + %s(0 + factor(t) | id)", s), "gaussian", reml)
}
add("sim_poisson_ar1_ar1", "sim_poisson_ar1", "y ~ time + ar1(0 + factor(time) | id)", "poisson", FALSE)
add("sim_poisson_ar1_toep", "sim_poisson_ar1", "y ~ time + toep(0 + factor(time) | id)", "poisson", FALSE)
for (s in c("ar1", "toep", "cs"))
  add(paste0("epil_", s), "epil", sprintf("y ~ lbase * trt + lage + V4 + %s(0 + factor(period) | subject)", s),
      "poisson", FALSE)
for (s in c("diag", "cs", "us"))
  add(paste0("sim_bernoulli_slope_", s), "sim_bernoulli_slope", sprintf("y ~ x + %s(x | g)", s), "binomial", FALSE,
      if (s == "us") "y ~ x + (x | g)" else if (s == "diag") "y ~ x + (x || g)" else NA)

# ---------------------------------------------------------------- fitting
na_null <- function(x) lapply(unname(x), function(v) if (is.finite(v)) v else NULL)
structure_of <- function(formula) regmatches(formula, regexpr("(us|diag|cs|ar1|toep)(?=\\()", formula, perl = TRUE))

fit_spec <- function(s, d, start = NULL, se = TRUE) {
  fam <- switch(s$family, gaussian = gaussian(), poisson = poisson(), binomial = binomial())
  args <- list(as.formula(s$formula), data = d, family = fam, REML = s$reml, se = se)
  if (!is.null(start)) args$start <- start
  suppressWarnings(do.call(glmmTMB, args))
}

fit_ok <- function(m) !inherits(m, "try-error") && m$fit$convergence == 0 && isTRUE(m$sdr$pdHess)
fit_loglik <- function(m) if (inherits(m, "try-error")) NULL else -m$fit$objective
fit_message <- function(m) if (inherits(m, "try-error")) trimws(as.character(m)) else m$fit$message

theta_layout <- function(s, d, structure) {
  q <- glmmTMB(as.formula(s$formula), data = d, doFit = FALSE)$condReStruc[[1]]$blockSize
  n_sd <- if (structure == "ar1") 1 else q
  n_cor <- switch(structure, ar1 = 1, toep = q - 1, cs = 1, diag = 0, us = q * (q - 1) / 2)
  list(q = q, n_sd = n_sd, n_cor = n_cor)
}

# Fitting strategy, recorded per fit as "strategy":
#   Every model is fitted from two starts, both recorded under "attempts":
#   "default"   glmmTMB's own start (log-SDs 0, correlation parameters 0);
#   "start"     log-SDs at log(SD of the OLS residuals) (0 for GLMMs), correlation
#               parameters at 1 (correlation 0.71; 0 for us).
#   "start_ar1" (toep only) from the ar1 fit of the same model (toep nests ar1): every SD at
#               ar1's, lag-k correlation rho^k, ar1's residual SD.
#   The best of those that converged (convergence 0, pdHess) is the reference, labelled by
#   its start.  Both are needed: on sleepstudy ar1 the default ends in "false convergence"
#   (ML) or converges, with a positive-definite Hessian, to a local optimum 2.5 below the
#   other (REML).
#   "polished"  neither converged (glmmTMB 1.1.5's toep does not constrain the lag
#               correlations to a positive-definite matrix: nlminb steps outside, the
#               objective is NaN there and it stops with "false convergence" or a non-finite
#               Hessian, even from the ar1 start).  Then glmmTMB's own objective (fit$obj$fn,
#               the Laplace/REML objective of the outer parameters) is maximised from the best
#               of the attempts above and N_MULTI seeded perturbations of the start: Nelder-Mead
#               with NaN treated as +Inf, then nlminb.  The maximum found is a value of
#               glmmTMB's likelihood, so ours must reach it; whether it is the global one is
#               not known, and the correlation matrix there is often (near) singular
#               ("corr_min_eigen").  The fixed effects come from a refit with the covariance
#               parameters held at that point (map); SEs, pdHess and timing are not given.
N_MULTI <- 3
fit_spec_at <- function(s, d, m, par) {
  # refit with the covariance (and dispersion) parameters held at par, so that VarCorr,
  # fixef and logLik describe that point
  nm <- names(par)
  start <- list(theta = unname(par[nm == "theta"]))
  map <- list(theta = factor(rep(NA, length(start$theta))))
  if (any(nm == "betad")) { start$betad <- unname(par[nm == "betad"]); map$betad <- factor(NA) }
  if (!s$reml) start$beta <- unname(par[nm == "beta"])
  fam <- switch(s$family, gaussian = gaussian(), poisson = poisson(), binomial = binomial())
  suppressWarnings(glmmTMB(as.formula(s$formula), data = d, family = fam, REML = s$reml, start = start,
                           map = map, se = FALSE))
}

polish <- function(s, d, cands, start_theta, lay) {
  base <- cands[[1]]
  obj <- function(p) { v <- base$obj$fn(p); if (is.finite(v)) v else Inf }
  pars <- lapply(cands, function(m) m$fit$par)
  set.seed(20261211)
  p0 <- pars[[1]]
  for (k in seq_len(N_MULTI)) {
    p <- p0
    p[names(p) == "theta"] <- start_theta + c(rnorm(lay$n_sd, 0, 0.3), rnorm(lay$n_cor, 0, 0.5))
    pars[[length(pars) + 1]] <- p
  }
  best <- NULL
  for (p in pars) {
    if (!is.finite(obj(p))) next  # a perturbed start outside the positive-definite set
    o <- suppressWarnings(optim(p, obj, method = "Nelder-Mead", control = list(maxit = 3000, reltol = 1e-12)))
    o2 <- suppressWarnings(nlminb(o$par, obj, base$obj$gr))
    if (is.finite(o2$objective) && o2$objective < o$value) o <- list(par = o2$par, value = o2$objective)
    if (is.finite(o$value) && (is.null(best) || o$value < best$value)) best <- o
  }
  best
}

fit_with_strategy <- function(s, d, structure) {
  m <- try(fit_spec(s, d), silent = TRUE)
  fits <- list(default = m)
  starts <- list(default = NULL)
  lay <- theta_layout(s, d, structure)
  lsd <- if (s$family == "gaussian")
    log(sd(resid(lm(nobars(as.formula(sub("(us|diag|cs|ar1|toep)\\(", "(", s$formula))), data = d)))) else 0
  cor0 <- if (structure == "us") 0 else 1
  starts$start <- list(theta = c(rep(lsd, lay$n_sd), rep(cor0, lay$n_cor)))
  if (structure == "toep") {
    # toep nests ar1 (equal SDs, lag-k correlation rho^k): also start from the ar1 fit
    s1 <- s
    s1$formula <- sub("toep(", "ar1(", s$formula, fixed = TRUE)
    m1 <- fit_with_strategy(s1, d, "ar1")$m
    th <- m1$fit$par[names(m1$fit$par) == "theta"]
    rho <- th[2] / sqrt(1 + th[2]^2)
    r <- rho^seq_len(lay$n_cor)
    starts$start_ar1 <- list(theta = unname(c(rep(th[1], lay$n_sd), r / sqrt(1 - r^2))))
    if (s$family == "gaussian") starts$start_ar1$betad <- unname(m1$fit$par[["betad"]])
  }
  for (nm in setdiff(names(starts), "default")) fits[[nm]] <- try(fit_spec(s, d, starts[[nm]]), silent = TRUE)
  attempts <- lapply(names(fits), function(nm) list(strategy = nm, ok = fit_ok(fits[[nm]]),
    loglik = fit_loglik(fits[[nm]]), message = fit_message(fits[[nm]]),
    theta = if (is.null(starts[[nm]])) NULL else I(starts[[nm]]$theta), betad = starts[[nm]]$betad))
  # the best of the converged attempts (sleepstudy ar1 REML: the default converges, with a
  # positive-definite Hessian, to a local optimum 2.5 below the other start's); ties go to
  # the earlier start
  ok <- names(fits)[vapply(fits, fit_ok, TRUE)]
  if (length(ok)) {
    obj <- vapply(fits[ok], function(x) x$fit$objective, 0)
    nm <- ok[which(obj <= min(obj) + 1e-9)[1]]
    return(list(m = fits[[nm]], start = starts[[nm]], strategy = nm, attempts = attempts))
  }
  # candidates for polishing: the attempts that returned a fit (se = FALSE where the
  # Hessian step failed), best first
  cands <- c(fits, lapply(starts, function(st) try(fit_spec(s, d, st, se = FALSE), silent = TRUE)))
  cands <- Filter(function(x) !inherits(x, "try-error") && is.finite(x$fit$objective), cands)
  cands <- cands[order(vapply(cands, function(x) x$fit$objective, 0))]
  best <- polish(s, d, cands, starts$start$theta, lay)
  mp <- fit_spec_at(s, d, cands[[1]], best$par)
  # the point described: the covariance parameters found, beta as the refit at them has it
  if (!s$reml) best$par[names(best$par) == "beta"] <- unname(fixef(mp)$cond)
  attempts[[length(attempts) + 1]] <- list(strategy = "polished", loglik = -best$value,
    n_starts = length(cands) + N_MULTI, par = I(unname(best$par)), par_names = I(names(best$par)),
    refit_loglik = -mp$fit$objective)
  list(m = mp, start = NULL, strategy = "polished", attempts = attempts, par = best$par)
}

# The exact Gaussian (restricted) log-likelihood at a fit's estimates, computed densely:
# y ~ N(X beta, Z (I (x) G) Z' + sigma^2 I), G the term's covariance from VarCorr, Z from
# lme4::mkReTrms of the same term without the structure keyword (columns grouped by level).
# An independent check of glmmTMB's value; it matters at near-singular correlation matrices,
# where TMB's Laplace objective loses digits (Orthodont toep: 0.008 too high, and the
# "polished" search, which maximises that objective, finds such points).
exact_gaussian_loglik <- function(s, d, m) {
  f <- as.formula(sub("(us|diag|cs|ar1|toep)\\(", "(", s$formula))
  rt <- lme4::mkReTrms(lme4::findbars(f), d)
  Z <- t(as.matrix(rt$Zt))
  G <- as.matrix(VarCorr(m)$cond[[1]])
  n_lev <- ncol(Z) / nrow(G)
  V <- Z %*% kronecker(diag(n_lev), G) %*% t(Z) + sigma(m)^2 * diag(nrow(Z))
  X <- model.matrix(lme4::nobars(f), d)
  y <- model.response(model.frame(lme4::nobars(f), d))
  cV <- chol(V)
  Vi_X <- backsolve(cV, forwardsolve(t(cV), X))
  Vi_y <- backsolve(cV, forwardsolve(t(cV), y))
  A <- crossprod(X, Vi_X)
  beta <- if (s$reml) solve(A, crossprod(X, Vi_y)) else fixef(m)$cond[colnames(X)]
  e <- y - X %*% beta
  ll <- -0.5 * (length(y) * log(2 * pi) + 2 * sum(log(diag(cV))) + sum(e * backsolve(cV, forwardsolve(t(cV), e))))
  # REML: integrate beta out with a flat prior (Harville), as glmmTMB and lme4 define it
  if (s$reml) ll <- ll - 0.5 * as.numeric(determinant(A)$modulus) + 0.5 * ncol(X) * log(2 * pi)
  as.numeric(ll)
}

term_info <- function(m, structure) {
  vc <- VarCorr(m)$cond
  lapply(names(vc), function(grp) {
    v <- vc[[grp]]
    sds <- unname(attr(v, "stddev"))
    cor <- attr(v, "correlation")
    q <- length(sds)
    cor <- if (is.null(cor)) diag(q) else unname(as.matrix(cor))
    out <- list(group = grp, structure = structure, names = I(colnames(v)), sd = I(sds),
                corr = lapply(seq_len(q), function(i) I(cor[i, ])))
    if (structure == "ar1") out$ar1_rho <- cor[1, 2]
    if (structure == "cs") out$cs_rho <- cor[1, 2]
    if (structure == "toep") out$toep_lag_corr <- I(cor[1, -1])
    out$corr_min_eigen <- min(eigen(cor, symmetric = TRUE, only.values = TRUE)$values)
    offd <- cor[upper.tri(cor)]
    out$boundary <- any(sds < 1e-4 * max(sds)) || any(abs(offd) > 0.999) || out$corr_min_eigen < 1e-4 ||
      (structure == "cs" && q > 2 && cor[1, 2] < -1 / (q - 1) + 1e-3)
    out
  })
}

fits <- list()
for (s in specs) {
  d <- r_data(s$data)
  structure <- structure_of(s$formula)
  fw <- fit_with_strategy(s, d, structure)  # the first fit also loads the model's DLL
  m <- fw$m
  secs <- if (fw$strategy == "polished") NULL else
    replicate(N_TIME, system.time(fit_spec(s, d, fw$start))[["elapsed"]])
  ll <- -m$fit$objective
  fe <- fixef(m)$cond
  se <- if (fw$strategy == "polished") rep(NA, length(fe)) else sqrt(diag(as.matrix(vcov(m)$cond)))
  terms <- term_info(m, structure)
  pd <- if (fw$strategy == "polished") NULL else isTRUE(m$sdr$pdHess)
  r <- list(key = s$key, data = s$data, data_file = csv_path(s$data), formula = s$formula,
            structure = structure, family = s$family, link = switch(s$family, gaussian = "identity",
            poisson = "log", binomial = "logit"), reml = s$reml,
            # (the polished refit holds the covariance parameters fixed, so count them here)
            loglik = ll, npar = if (fw$strategy == "polished") length(fw$par) + s$reml * length(fe) else
              attr(logLik(m), "df"), nobs = nobs(m),
            fixef_names = I(names(fe)), fixef = I(unname(fe)), fixef_se = I(na_null(se)),
            sigma = if (s$family == "gaussian") sigma(m) else NULL,
            terms = terms,
            tmb_par_names = I(names(if (is.null(fw$par)) m$fit$par else fw$par)),
            tmb_par = I(unname(if (is.null(fw$par)) m$fit$par else fw$par)),
            convergence = m$fit$convergence, optimizer_message = m$fit$message, pdHess = pd,
            strategy = fw$strategy, attempts = fw$attempts,
            # the residual SD at zero (the structure absorbs all the variance) is a boundary too
            sigma_boundary = s$family == "gaussian" && sigma(m) < 1e-3 * max(unlist(lapply(terms, `[[`, "sd"))),
            boundary = any(vapply(terms, function(t) t$boundary, TRUE)) ||
              (s$family == "gaussian" && sigma(m) < 1e-3 * max(unlist(lapply(terms, `[[`, "sd")))),
            seconds_median = if (is.null(secs)) NULL else median(secs), seconds = if (is.null(secs)) NULL else I(secs))
  if (s$family == "gaussian") r$loglik_exact <- exact_gaussian_loglik(s, d, m)
  if (!is.na(s$lme4_formula)) {
    lm4 <- if (s$family == "gaussian") lmer(as.formula(s$lme4_formula), data = d, REML = s$reml)
           else glmer(as.formula(s$lme4_formula), data = d, family = binomial())
    r$lme4_formula <- s$lme4_formula
    r$lme4_loglik <- as.numeric(logLik(lm4))
  }
  fits[[s$key]] <- r
  t1 <- terms[[1]]
  cat(sprintf("%-30s %-10s ll %12.5f conv %d pd %-5s bnd %-5s %6.3fs sd %s cor %s\n", s$key, fw$strategy, r$loglik,
              r$convergence, format(pd), r$boundary, if (is.null(secs)) NA else median(secs),
              paste(signif(unique(t1$sd), 4), collapse = ","),
              paste(signif(if (structure == "toep") t1$toep_lag_corr else t1$corr[[1]][-1], 4), collapse = ",")))
  if (!is.null(r$loglik_exact)) cat(sprintf("%-30s exact logLik at the estimates %12.5f (diff %.2e)\n", "",
                                            r$loglik_exact, r$loglik - r$loglik_exact))
  if (!is.null(r$lme4_loglik)) cat(sprintf("%-30s lme4 logLik %12.5f (diff %.2e)\n", "", r$lme4_loglik,
                                          r$loglik - r$lme4_loglik))
}

ref <- list(
  generated_by = "tests/reference/make_reference_covstruct.R",
  r_version = R.version.string,
  glmmTMB_version = as.character(packageVersion("glmmTMB")),
  TMB_version = as.character(packageVersion("TMB")),
  lme4_version = as.character(packageVersion("lme4")),
  data_files = lapply(data_sets, function(d) NULL),
  data_rows = lapply(data_sets, nrow),
  truths = truths,
  n_time = N_TIME,
  notes = paste("glmmTMB fits (ML: REML = FALSE, REML: REML = TRUE; Laplace; default nlminb).",
                "SDs/correlations as VarCorr reports them; toep_lag_corr = lag 1..q-1 correlations;",
                "seconds_median = median elapsed of n_time warm refits on the machine that ran the script."),
  fits = fits)
ref$data_files <- lapply(names(data_sets), csv_path); names(ref$data_files) <- names(data_sets)
writeLines(toJSON(ref, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"), out_file)
cat("wrote", out_file, "\n")

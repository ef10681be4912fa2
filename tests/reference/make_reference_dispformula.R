# Reference fits of dispersion formulas (glmmTMB's dispformula) for tests/test_dispformula.py.
#
# Run from the repository root:
#     Rscript tests/reference/make_reference_dispformula.R
# Reads tests/reference/{covstruct_orthodont,covstruct_sleepstudy,salamanders}.csv (real data),
# writes tests/reference/dispformula_{gamma,beta,student_t}.csv (simulated data, exactly as fitted)
# and tests/reference/dispformula_reference.json (the fits and the package versions).
#
# glmmTMB 1.1.5's dispersion model, checked by refitting (logLik(m) equals the sum of the
# density at exp(X_d betad) per row; see docs/families.md):
#   gaussian   exp(X_d betad) = sigma^2  (the residual VARIANCE: our log(sigma) coefficients are betad / 2)
#   nbinom2    exp(X_d betad) = theta    (the NB2 size)
#   Gamma      exp(X_d betad) = shape
#   beta       exp(X_d betad) = phi      (the precision)
#   t_family   exp(X_d betad) = sigma    (the t's scale; df = exp(psi) estimated)
#   truncated_nbinom2  exp(X_d betad) = theta of the zero-truncated count part (with ziformula:
#              the hurdle, our hu=; "fixef_hu" holds its coefficients)
# Each fit records betad and its Wald SEs as glmmTMB has them ("disp", "disp_se") and the check
# itself on fits without random effects ("mapping_check": logLik() = the density summed by hand).
#
# Conventions: ML, Laplace, default optimizer and control; loglik is logLik() (all constants);
# character columns become factors with code-point-ordered levels (as Python sorts them).
suppressMessages({
  library(glmmTMB)
  library(TMB)
  library(jsonlite)
})

out_file <- "tests/reference/dispformula_reference.json"
csort <- function(x) sort(unique(as.character(x)), method = "radix")
as_r <- function(d) {
  for (v in names(d)) if (is.character(d[[v]])) d[[v]] <- factor(d[[v]], levels = csort(d[[v]]))
  d
}

# ---- simulated data (random intercepts and one random slope) --------------------------------
set.seed(20261207)
G <- 30; n_per <- 12
g <- rep(seq_len(G), each = n_per); n <- G * n_per
x <- round(rnorm(n), 6); z <- round(runif(n), 6)
b0 <- rnorm(G, 0, 0.4); b1 <- rnorm(G, 0, 0.25)
# Gamma, log link: mean exp(0.5 + 0.4 x + b_g + c_g x), shape exp(1 + 0.8 z)
mu <- exp(0.5 + 0.4 * x + b0[g] + b1[g] * x); shape <- exp(1 + 0.8 * z)
d_gamma <- data.frame(y = signif(rgamma(n, shape = shape, scale = mu / shape), 10), x = x, z = z,
                      g = sprintf("g%02d", g))
# Beta, logit link: mean plogis(-0.3 + 0.6 x + b_g), precision exp(2.5 - 0.7 z)
mu <- plogis(-0.3 + 0.6 * x + b0[g]); phi <- exp(2.5 - 0.7 * z)
yb <- rbeta(n, mu * phi, (1 - mu) * phi)
d_beta <- data.frame(y = signif(pmin(pmax(yb, 1e-6), 1 - 1e-6), 10), x = x, z = z, g = sprintf("g%02d", g))
# Student t, identity link: 1 + 0.5 x + b_g, scale exp(-0.5 + 0.6 z), df 5
d_t <- data.frame(y = round(1 + 0.5 * x + b0[g] + exp(-0.5 + 0.6 * z) * rt(n, df = 5), 8), x = x, z = z,
                  g = sprintf("g%02d", g))
write.csv(d_gamma, "tests/reference/dispformula_gamma.csv", row.names = FALSE)
write.csv(d_beta, "tests/reference/dispformula_beta.csv", row.names = FALSE)
write.csv(d_t, "tests/reference/dispformula_student_t.csv", row.names = FALSE)

# density per row at the fitted means and dispersions (the parametrization check)
by_hand <- function(fam, y, mu, e, m) {
  switch(fam,
    gaussian = sum(dnorm(y, mu, sqrt(e), log = TRUE)),
    nbinom2 = sum(dnbinom(y, mu = mu, size = e, log = TRUE)),
    Gamma = sum(dgamma(y, shape = e, scale = mu / e, log = TRUE)),
    beta = sum(dbeta(y, mu * e, (1 - mu) * e, log = TRUE)),
    t = sum(dt((y - mu) / e, exp(unname(m$fit$par["psi"])), log = TRUE) - log(e)))
}

# The parametrization check: the same families without random effects, where logLik() is the
# sum of the density over rows at the fitted means and exp(X_d betad) -- it holds only with the
# mapping above.
check_mapping <- function(data_file, formula, dispformula, family) {
  d <- as_r(read.csv(data_file, stringsAsFactors = FALSE))
  m <- glmmTMB(formula, dispformula = dispformula, data = d, family = family)
  e <- exp(drop(model.matrix(dispformula, d) %*% fixef(m)$disp))
  y <- d[[all.vars(formula)[1]]]
  list(loglik = as.numeric(logLik(m)), by_hand = by_hand(family$family, y, predict(m, type = "response"), e, m))
}

fit_one <- function(data_file, formula, dispformula, family, data = NULL, zi = ~0) {
  d <- if (is.null(data)) read.csv(data_file, stringsAsFactors = FALSE) else data
  d <- as_r(d)
  m <- glmmTMB(formula, dispformula = dispformula, ziformula = zi, data = d, family = family)
  stopifnot(m$fit$convergence == 0)
  ll <- logLik(m)
  vc <- VarCorr(m)$cond
  bd <- fixef(m)$disp
  list(
    data_file = data_file,
    formula = deparse(formula), dispformula = deparse(dispformula),
    family = family$family, link = family$link,
    loglik = as.numeric(ll), npar = attr(ll, "df"),
    fixef = as.list(fixef(m)$cond),
    fixef_se = as.list(sqrt(diag(vcov(m)$cond))),
    disp = as.list(bd),
    disp_se = as.list(setNames(sqrt(diag(vcov(m, full = TRUE)))[grep("^d~", colnames(vcov(m, full = TRUE)))],
                               names(bd))),
    df = if (family$family == "t") exp(unname(m$fit$par["psi"])) else NULL,
    hu = if (length(fixef(m)$zi)) deparse(zi) else NULL,
    fixef_hu = if (length(fixef(m)$zi)) as.list(fixef(m)$zi) else NULL,
    fixef_hu_se = if (length(fixef(m)$zi)) setNames(as.list(sqrt(diag(vcov(m)$zi))), names(fixef(m)$zi)) else NULL,
    varcorr_sd = lapply(vc, function(v) as.list(attr(v, "stddev"))),
    varcorr_cor = lapply(vc, function(v) if (ncol(v) > 1) attr(v, "correlation")[1, 2] else NULL),
    pdHess = m$sdr$pdHess
  )
}

ref <- list(
  # Orthodont: the girls' distances scatter less than the boys' (nlme's varIdent example)
  orthodont = fit_one("tests/reference/covstruct_orthodont.csv", distance ~ age + Sex + (1 | Subject),
                      ~ Sex, gaussian()),
  orthodont_1 = fit_one("tests/reference/covstruct_orthodont.csv", distance ~ age + Sex + (1 | Subject),
                        ~ 1, gaussian()),
  # sleepstudy: reaction times spread more with sleep deprivation; a correlated random slope
  sleepstudy = fit_one("tests/reference/covstruct_sleepstudy.csv", Reaction ~ Days + (Days | Subject),
                       ~ Days, gaussian()),
  salamanders = fit_one("tests/reference/salamanders.csv", count ~ spp + mined + (1 | site),
                        ~ mined, nbinom2()),
  salamanders_1 = fit_one("tests/reference/salamanders.csv", count ~ spp + mined + (1 | site),
                          ~ 1, nbinom2()),
  gamma = fit_one("tests/reference/dispformula_gamma.csv", y ~ x + (1 + x | g), ~ z, Gamma(link = "log")),
  beta = fit_one("tests/reference/dispformula_beta.csv", y ~ x + (1 | g), ~ z, beta_family()),
  student_t = fit_one("tests/reference/dispformula_student_t.csv", y ~ x + (1 | g), ~ z, t_family()),
  # hurdle NB2 (truncated_nbinom2; its zi part is the hurdle, our hu=): log theta of the truncated
  # count part linear in mined
  hurdle_negbinomial = fit_one("tests/reference/salamanders.csv", count ~ spp + mined + (1 | site), ~ mined,
                               truncated_nbinom2(), zi = ~ mined),
  mapping_check = list(
    gaussian = check_mapping("tests/reference/covstruct_orthodont.csv", distance ~ age + Sex, ~ Sex, gaussian()),
    nbinom2 = check_mapping("tests/reference/salamanders.csv", count ~ spp + mined, ~ mined, nbinom2()),
    Gamma = check_mapping("tests/reference/dispformula_gamma.csv", y ~ x, ~ z, Gamma(link = "log")),
    beta = check_mapping("tests/reference/dispformula_beta.csv", y ~ x, ~ z, beta_family()),
    t = check_mapping("tests/reference/dispformula_student_t.csv", y ~ x, ~ z, t_family())),
  mapping = list(gaussian = "exp(betad) = sigma^2", nbinom2 = "exp(betad) = theta",
                 Gamma = "exp(betad) = shape", beta = "exp(betad) = phi", t = "exp(betad) = sigma"),
  r_version = R.version.string,
  glmmTMB_version = as.character(packageVersion("glmmTMB")),
  TMB_version = as.character(packageVersion("TMB"))
)
writeLines(toJSON(ref, auto_unbox = TRUE, digits = NA, null = "null", pretty = TRUE), out_file)

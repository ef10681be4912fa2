# Reference fits with glmmTMB (and lme4::glmer.nb) for tests/test_families_reference.py:
# negative binomial (NB2, NB1), Gamma, Beta and zero-inflated count models.
#
# Run from the repository root:
#     Rscript tests/reference/make_reference_families.R
# Writes tests/reference/families_reference.json.  The tests only read the JSON, so they
# never need R.  Every dataset is written into the JSON (column-wise) exactly as it was
# fitted, so the Python side fits the very same rows.
#
# Conventions (so that Python fits the identical model):
#   * Factor columns are stored as strings and fitted in R as factors whose levels are the
#     sorted (C-locale, i.e. code-point) unique values -- the order bayes_glmm gives string
#     columns -- with treatment contrasts.  Dummy names are therefore e.g. "minedyes"
#     (reference level "no"), "sppDF" (reference "DES-L"), "YEAR96".
#   * Derived predictors (log baseline, scaled height) are computed here and stored as
#     plain numeric columns; formulas use only column names.
#   * All fits: glmmTMB, ML, Laplace, default optimizer (nlminb) and control.  Each fit is
#     checked for fit$fit$convergence == 0 and pdHess is recorded.
#   * Dispersion in bayes_glmm's convention:
#       negbinomial (NB2, var = mu + mu^2/theta):  theta = sigma(fit)
#       nbinom1     (var = mu (1 + phi)):          phi   = sigma(fit)
#       gamma       (shape, var = mu^2 / shape):   shape = 1 / sigma(fit)^2
#       beta        (precision, var = mu(1-mu)/(1+phi)): phi = sigma(fit)
#     glmmTMB's internal dispersion parameter betad is the log of that dispersion for all
#     four families (glmmTMB 1.1.x: Gamma sigma = exp(-betad/2), so betad = log shape), so
#     "log_dispersion_se" = sqrt(vcov(fit, full = TRUE)["d~(Intercept)", ]) is the SE of
#     log(theta | phi | shape).
#   * loglik is logLik() (all normalising constants); npar = attr(logLik, "df") counts
#     fixed effects (cond + zi), dispersion and variance/correlation parameters.
#   * glmer.nb entries (key suffix "_glmernb") are lme4's NB2 fit of the same model.  It
#     alternates a theta profile step with glmer at fixed theta (PIRLS with Fisher weights),
#     so its optimum is often slightly below the joint Laplace optimum; compare loosely.
suppressMessages({
  library(glmmTMB)
  library(lme4)
  library(TMB)
  library(HSAUR3)
  library(jsonlite)
})

out_file <- "tests/reference/families_reference.json"

csort <- function(x) sort(unique(as.character(x)), method = "radix")  # code-point order
as_fac <- function(x) factor(as.character(x), levels = csort(x))

# ---------------------------------------------------------------- datasets
# HSAUR3 epilepsy (Thall & Vail): 59 subjects x 4 two-week periods.
data(epilepsy, package = "HSAUR3")
epi <- data.frame(
  seizures = as.integer(epilepsy$seizure.rate),
  treatment = ifelse(epilepsy$treatment == "Progabide", "progabide", "placebo"),
  lbase = log(epilepsy$base / 4),
  lage = log(epilepsy$age),
  visit4 = as.integer(as.character(epilepsy$period) == "4"),
  subject = paste0("s", sprintf("%02d", as.integer(as.character(epilepsy$subject)))),
  stringsAsFactors = FALSE)
stopifnot(nrow(epi) == 236)

# lme4 grouseticks: 403 chicks, 118 broods, 63 locations, 3 years; height standardised here.
data(grouseticks, package = "lme4")
grouse <- data.frame(
  TICKS = as.integer(grouseticks$TICKS),
  YEAR = as.character(grouseticks$YEAR),
  sHEIGHT = as.numeric(scale(grouseticks$HEIGHT)),
  BROOD = as.character(grouseticks$BROOD),
  LOCATION = as.character(grouseticks$LOCATION),
  stringsAsFactors = FALSE)
stopifnot(nrow(grouse) == 403)

# glmmTMB Salamanders (Price et al. 2016): 644 rows, 23 sites, 7 species.
data(Salamanders, package = "glmmTMB")
sal <- data.frame(
  count = as.integer(Salamanders$count),
  mined = as.character(Salamanders$mined),
  spp = as.character(Salamanders$spp),
  cover = Salamanders$cover,
  site = as.character(Salamanders$site),
  stringsAsFactors = FALSE)
stopifnot(nrow(sal) == 644)

# Gamma, log link, correlated random slope: 40 groups x 10, fixed seed.
set.seed(20240611)
ng <- 40; nper <- 10
gs <- data.frame(g = rep(sprintf("g%02d", 1:ng), each = nper))
gs$x <- round(runif(nrow(gs), -1, 1), 4)
L <- matrix(c(0.5, 0, 0.3 * 0.25, sqrt(1 - 0.3^2) * 0.25), 2, 2, byrow = TRUE)  # SDs 0.5, 0.25; corr 0.3
b <- matrix(rnorm(2 * ng), ng, 2) %*% t(L)
gi <- as.integer(factor(gs$g))
mu <- exp(1.0 + 0.4 * gs$x + b[gi, 1] + b[gi, 2] * gs$x)
shape <- 4
gs$y <- round(rgamma(nrow(gs), shape = shape, rate = shape / mu), 6)
gs$y[gs$y <= 0] <- 1e-6
gamma_slope <- gs[, c("y", "x", "g")]

# Gamma, identity link, random intercept: 30 groups x 8; mean well above 0.
set.seed(20240612)
ng <- 30; nper <- 8
gi_d <- data.frame(g = rep(sprintf("g%02d", 1:ng), each = nper))
gi_d$x <- round(runif(nrow(gi_d), 0, 1), 4)
u <- rnorm(ng, sd = 0.8)
mu <- 5 + 1.5 * gi_d$x + u[as.integer(factor(gi_d$g))]
stopifnot(all(mu > 1))
shape <- 10
gi_d$y <- round(rgamma(nrow(gi_d), shape = shape, rate = shape / mu), 6)
gamma_identity <- gi_d[, c("y", "x", "g")]

# Beta, logit link, random intercept: 30 groups x 8, phi = 10.
set.seed(20240613)
ng <- 30; nper <- 8
bd <- data.frame(g = rep(sprintf("g%02d", 1:ng), each = nper))
bd$x <- round(rnorm(nrow(bd)), 4)
u <- rnorm(ng, sd = 0.5)
mu <- plogis(-0.3 + 0.6 * bd$x + u[as.integer(factor(bd$g))])
phi <- 10
bd$y <- rbeta(nrow(bd), mu * phi, (1 - mu) * phi)
bd$y <- pmin(pmax(round(bd$y, 6), 1e-6), 1 - 1e-6)
beta_int <- bd[, c("y", "x", "g")]

datasets <- list(
  epilepsy_hsaur3 = epi,
  grouseticks = grouse,
  salamanders = sal,
  gamma_slope = gamma_slope,
  gamma_identity = gamma_identity,
  beta_int = beta_int
)

# R-side copies with factors in code-point level order
factorise <- function(d) {
  for (nm in names(d)) if (is.character(d[[nm]])) d[[nm]] <- as_fac(d[[nm]])
  d
}
rdata <- lapply(datasets, factorise)

# ---------------------------------------------------------------- fitting helpers
tmb_family <- function(family, link) {
  switch(family,
         poisson = poisson(link = link),
         negbinomial = nbinom2(link = link),
         nbinom1 = nbinom1(link = link),
         gamma = Gamma(link = link),
         beta = beta_family(link = link),
         stop("unknown family ", family))
}

dispersion_of <- function(family, s) {
  switch(family,
         poisson = NULL,
         negbinomial = list(theta = s),
         nbinom1 = list(phi = s),
         gamma = list(shape = 1 / s^2),
         beta = list(phi = s))
}

# lme4-style as.data.frame(VarCorr()) rows from glmmTMB's conditional VarCorr
varcorr_rows <- function(vc) {
  grp <- var1 <- var2 <- character(0); sdcor <- vcov <- numeric(0)
  for (g in names(vc)) {
    m <- vc[[g]]
    sd <- attr(m, "stddev"); cr <- attr(m, "correlation"); nm <- names(sd)
    for (i in seq_along(nm)) {
      grp <- c(grp, g); var1 <- c(var1, nm[i]); var2 <- c(var2, "")
      vcov <- c(vcov, m[i, i]); sdcor <- c(sdcor, sd[i])
    }
    if (length(nm) > 1) for (j in 1:(length(nm) - 1)) for (i in (j + 1):length(nm)) {
      grp <- c(grp, g); var1 <- c(var1, nm[j]); var2 <- c(var2, nm[i])
      vcov <- c(vcov, m[i, j]); sdcor <- c(sdcor, cr[i, j])
    }
  }
  list(grp = I(grp), var1 = I(var1), var2 = I(var2), vcov = I(unname(vcov)),
       sdcor = I(unname(sdcor)))
}

fits <- list()
tmb_models <- list()
problems <- character(0)

add_tmb <- function(key, data_name, formula, family, link, zi = NULL, notes = NULL) {
  d <- rdata[[data_name]]
  zif <- if (is.null(zi)) ~0 else as.formula(zi)
  m <- glmmTMB(as.formula(formula), ziformula = zif, data = d,
               family = tmb_family(family, link), REML = FALSE)
  conv <- m$fit$convergence
  pd <- isTRUE(m$sdr$pdHess)
  if (conv != 0 || !pd) {
    problems <<- c(problems, sprintf("%s: convergence %d pdHess %s (%s)", key, conv, pd, m$fit$message))
  }
  ll <- logLik(m)
  fe <- fixef(m)
  v <- vcov(m)
  vfull <- vcov(m, full = TRUE)
  s <- sigma(m)
  has_disp <- family != "poisson"
  dname <- grep("^d~", colnames(vfull), value = TRUE)
  res <- list(
    key = key, data = data_name, engine = "glmmTMB", formula = formula, zi = zi,
    family = family, link = link, method = "Laplace", nobs = nobs(m),
    loglik = as.numeric(ll), npar = attr(ll, "df"), aic = AIC(m), bic = BIC(m),
    fixef_names = I(names(fe$cond)), fixef = I(unname(fe$cond)),
    fixef_se = I(unname(sqrt(diag(as.matrix(v$cond))))),
    fixef_zi_names = if (is.null(zi)) NULL else I(names(fe$zi)),
    fixef_zi = if (is.null(zi)) NULL else I(unname(fe$zi)),
    fixef_zi_se = if (is.null(zi)) NULL else I(unname(sqrt(diag(as.matrix(v$zi))))),
    sigma = if (has_disp) s else NULL,
    dispersion = dispersion_of(family, s),
    betad = if (has_disp) unname(m$fit$par[names(m$fit$par) == "betad"]) else NULL,
    log_dispersion_se = if (has_disp && length(dname) == 1) unname(sqrt(vfull[dname, dname])) else NULL,
    varcorr = varcorr_rows(VarCorr(m)$cond),
    convergence = conv, pdHess = pd, optimizer_message = m$fit$message,
    notes = notes
  )
  fits[[key]] <<- res
  tmb_models[[key]] <<- m
  cat(sprintf("%-26s logLik %11.4f  npar %2d  conv %d  pdHess %s\n", key, as.numeric(ll),
              attr(ll, "df"), conv, pd))
  invisible(m)
}

add_glmernb <- function(key, data_name, formula, tmb_key) {
  d <- rdata[[data_name]]
  warns <- character(0)
  m <- withCallingHandlers(
    glmer.nb(as.formula(formula), data = d, control = glmerControl(optCtrl = list(maxfun = 1e5))),
    warning = function(w) {
      warns <<- c(warns, conditionMessage(w))
      invokeRestart("muffleWarning")
    })
  ll <- logLik(m)
  vc <- as.data.frame(VarCorr(m))
  vc$var1[is.na(vc$var1)] <- ""
  vc$var2[is.na(vc$var2)] <- ""
  th <- getME(m, "glmer.nb.theta")
  msgs <- as.character(m@optinfo$conv$lme4$messages)
  # glmmTMB's (exact-Hessian) Laplace log-likelihood at glmer.nb's estimates: glmer.nb's own
  # logLik uses the Fisher-weight (expected-information) Laplace approximation, which for
  # NB2 with the (non-canonical) log link is a different number for the same parameters.
  m_tmb <- tmb_models[[tmb_key]]
  tg <- names(VarCorr(m_tmb)$cond)
  sds <- vc$sdcor[vc$var2 == "" & vc$var1 == "(Intercept)"]
  grps <- vc$grp[vc$var2 == "" & vc$var1 == "(Intercept)"]
  stopifnot(all(vc$var1 == "(Intercept)"), setequal(tg, grps))
  m_at <- glmmTMB(as.formula(formula), data = d, family = nbinom2,
                  start = list(beta = unname(fixef(m)), betad = log(th),
                               theta = log(sds[match(tg, grps)])),
                  map = list(beta = factor(rep(NA, length(fixef(m)))), betad = factor(NA),
                             theta = factor(rep(NA, length(tg)))))
  ll_at <- as.numeric(logLik(m_at))
  fits[[key]] <<- list(
    key = key, data = data_name, engine = "lme4::glmer.nb", formula = formula, zi = NULL,
    family = "negbinomial", link = "log", method = "Laplace", nobs = nobs(m),
    loglik = as.numeric(ll), npar = attr(ll, "df"), aic = AIC(m), bic = BIC(m),
    fixef_names = I(names(fixef(m))), fixef = I(unname(fixef(m))),
    fixef_se = I(unname(sqrt(diag(as.matrix(vcov(m)))))),
    theta = th, dispersion = list(theta = th),
    varcorr = list(grp = I(vc$grp), var1 = I(vc$var1), var2 = I(vc$var2),
                   vcov = I(vc$vcov), sdcor = I(vc$sdcor)),
    optimizer_messages = I(msgs),
    warnings = I(warns),
    loglik_scale = "lme4_fisher_laplace",
    loglik_glmmTMB_laplace_at_estimates = ll_at,
    glmmTMB_key = tmb_key,
    notes = paste("glmer.nb alternates theta (profile) and glmer at fixed theta (PIRLS,",
                  "Fisher weights); its optimum may lie slightly below the joint Laplace one.",
                  "Its logLik counts theta among the parameters (df).")
  )
  cat(sprintf("%-26s logLik %11.4f  theta %.4f  (glmmTMB %s: %.4f; glmmTMB Laplace at these estimates %.4f)\n",
              key, as.numeric(ll), th, tmb_key, fits[[tmb_key]]$loglik, ll_at))
  if (length(c(msgs, warns))) cat("   glmer.nb messages/warnings:", paste(c(msgs, warns), collapse = "; "), "\n")
}

# ---------------------------------------------------------------- fits
epi_f <- "seizures ~ treatment + lbase + lage + visit4 + (1 | subject)"
add_tmb("epilepsy_nb2", "epilepsy_hsaur3", epi_f, "negbinomial", "log")
add_glmernb("epilepsy_nb2_glmernb", "epilepsy_hsaur3", epi_f, "epilepsy_nb2")
add_tmb("epilepsy_nb1", "epilepsy_hsaur3", epi_f, "nbinom1", "log")
add_tmb("epilepsy_poisson", "epilepsy_hsaur3", epi_f, "poisson", "log")

grouse_f <- "TICKS ~ YEAR + sHEIGHT + (1 | BROOD) + (1 | LOCATION)"
add_tmb("grouseticks_nb2", "grouseticks", grouse_f, "negbinomial", "log")
add_glmernb("grouseticks_nb2_glmernb", "grouseticks", grouse_f, "grouseticks_nb2")
add_tmb("grouseticks_poisson", "grouseticks", grouse_f, "poisson", "log")

add_tmb("gamma_log_slope", "gamma_slope", "y ~ x + (1 + x | g)", "gamma", "log",
        notes = "simulated: 40 groups x 10, SDs 0.5/0.25, corr 0.3, shape 4")
add_tmb("gamma_identity_int", "gamma_identity", "y ~ x + (1 | g)", "gamma", "identity",
        notes = "simulated: 30 groups x 8, mean 5 + 1.5 x + u, SD(u) 0.8, shape 10")
add_tmb("beta_logit_int", "beta_int", "y ~ x + (1 | g)", "beta", "logit",
        notes = "simulated: 30 groups x 8, SD 0.5, phi 10")

sal_f <- "count ~ mined + (1 | site)"
add_tmb("salamanders_poisson", "salamanders", sal_f, "poisson", "log")
add_tmb("salamanders_zip_const", "salamanders", sal_f, "poisson", "log", zi = "~ 1")
add_tmb("salamanders_zip_mined", "salamanders", sal_f, "poisson", "log", zi = "~ mined")
add_tmb("salamanders_zinb2_mined", "salamanders", sal_f, "negbinomial", "log", zi = "~ mined")
add_tmb("salamanders_zinb2", "salamanders", "count ~ spp + mined + (1 | site)",
        "negbinomial", "log", zi = "~ spp + mined")
add_tmb("salamanders_zinb1_const", "salamanders", sal_f, "nbinom1", "log", zi = "~ 1")

# pairs for likelihood-ratio / AIC checks: the Poisson fit is nested in the NB fit on the
# boundary theta = Inf (1/theta = 0), one parameter apart
pairs <- list(
  epilepsy_poisson_vs_nb2 = list(m0 = "epilepsy_poisson", m1 = "epilepsy_nb2"),
  grouseticks_poisson_vs_nb2 = list(m0 = "grouseticks_poisson", m1 = "grouseticks_nb2"),
  salamanders_zip_const_vs_mined = list(m0 = "salamanders_zip_const", m1 = "salamanders_zip_mined"),
  salamanders_poisson_vs_zip_const = list(m0 = "salamanders_poisson", m1 = "salamanders_zip_const")
)
for (nm in names(pairs)) {
  a <- fits[[pairs[[nm]]$m0]]; b <- fits[[pairs[[nm]]$m1]]
  pairs[[nm]]$chisq <- 2 * (b$loglik - a$loglik)
  pairs[[nm]]$df <- b$npar - a$npar
  pairs[[nm]]$aic_diff <- b$aic - a$aic
}

if (length(problems)) {
  cat("CONVERGENCE PROBLEMS:\n", paste(problems, collapse = "\n"), "\n")
}

ref <- list(
  generated_by = "tests/reference/make_reference_families.R",
  r_version = R.version.string,
  glmmTMB_version = as.character(packageVersion("glmmTMB")),
  lme4_version = as.character(packageVersion("lme4")),
  TMB_version = as.character(packageVersion("TMB")),
  HSAUR3_version = as.character(packageVersion("HSAUR3")),
  notes = paste("glmmTMB ML Laplace fits (default nlminb); factor levels in code-point order;",
                "dispersion: theta (NB2) = sigma, phi (NB1) = sigma, shape (Gamma) = 1/sigma^2,",
                "phi (Beta) = sigma; log_dispersion_se is the SE of the log of that dispersion.",
                "*_glmernb entries are lme4::glmer.nb fits of the same NB2 model."),
  problems = I(problems),
  data_rows = lapply(datasets, nrow),
  data = lapply(datasets, function(d) as.list(d)),
  fits = fits,
  pairs = pairs
)
writeLines(toJSON(ref, auto_unbox = TRUE, digits = NA, null = "null", pretty = FALSE), out_file)
cat("wrote", out_file, "\n")

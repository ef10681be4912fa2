# Profile-likelihood confidence intervals with lme4 for tests/test_confint.py.
#
# Run from the repository root:
#     Rscript tests/reference/make_reference_confint.R
# Writes tests/reference/confint_reference.json (about 4 minutes, mostly the toenail AGQ
# profile).  The tests only read the JSON, so they never need R: every dataset is written
# into it column-wise exactly as it was fitted, and the script records whether it equals
# the copy bundled in bayes_glmm/datasets/data.
#
# Parameter names: lme4's confint(..., oldNames = FALSE) calls them "sd_(Intercept)|herd",
# "cor_Days.(Intercept)|Subject", "sigma"; the JSON keeps those ("lme4_names") and adds the
# bayes_glmm names in the same (theta) order ("names"): sd_<var>|<group>,
# cor_<var1>.<var2>|<group> with var1 before var2 in the term, sigma, then the fixed effects.
#
# Notes:
#   * lme4 profiles a REML fit on the ML deviance (lme4 issues #325 and #838), so the REML
#     and ML sleepstudy intervals agree to the profile's accuracy.
#   * glmer fits use tolPwrss = 1e-12 (lme4's default PIRLS tolerance stops short of the
#     conditional modes when random-effect SDs are large).  Where profiling that fit stops
#     with "profiling detected new, lower deviance" (toenail AGQ: bobyqa ends slightly
#     short of the optimum under the tight tolerance) the default control is used instead;
#     the JSON records which ("control").  Those default-tolerance toenail limits are
#     themselves ~1.6e-3 of the width off for Treatment: refitting with tolPwrss = 1e-12
#     and Treatment fixed by an offset at lme4's limits gives deviance increases of 3.866 and
#     3.856 instead of qchisq(0.95, 1) = 3.841 (checked 2026-12, not part of this script).
suppressMessages({
  library(lme4)
  library(HSAUR3)
  library(jsonlite)
})

out_file <- "tests/reference/confint_reference.json"
bundled <- "bayes_glmm/datasets/data"

data(sleepstudy, package = "lme4")
data(cbpp, package = "lme4")
data(toenail, package = "HSAUR3")
toe <- data.frame(ID = as.integer(as.character(toenail$patientID)),
                  Response = as.integer(toenail$outcome == "moderate or severe"),
                  Treatment = as.integer(toenail$treatment == "terbinafine"),
                  Month = toenail$time)

# a singular LMM: no between-group variance in the simulation; take the first seed whose
# REML fit puts the group SD at exactly 0 (the boundary case of the profile)
singular_data <- NULL
for (seed in 1:200) {
  set.seed(seed)
  d <- data.frame(g = rep(1:8, each = 6), x = rep(seq(-1, 1, length.out = 6), 8))
  d$y <- 1 + 0.5 * d$x + rnorm(nrow(d))
  m <- lmer(y ~ x + (1 | g), d)
  if (getME(m, "theta")[[1]] == 0) {
    singular_data <- d
    singular_seed <- seed
    break
  }
}
stopifnot(!is.null(singular_data))

datasets <- list(sleepstudy = sleepstudy, cbpp = cbpp, toenail = toe, singular = singular_data)

same_as_bundled <- function(name, d) {
  path <- file.path(bundled, paste0(name, ".csv"))
  if (!file.exists(path)) return(NA)
  b <- read.csv(path)
  cols <- names(d)
  if (!all(cols %in% names(b)) || nrow(b) != nrow(d)) return(FALSE)
  all(vapply(cols, function(cl) isTRUE(all.equal(as.numeric(as.character(b[[cl]])),
                                                 as.numeric(as.character(d[[cl]])))), logical(1)))
}

# bayes_glmm's names of the variance parameters, in lme4's (theta) order
our_varnames <- function(m) {
  vc <- VarCorr(m)
  out <- character(0)
  for (grp in names(vc)) {
    cn <- colnames(vc[[grp]])
    q <- length(cn)
    for (j in seq_len(q)) for (i in j:q) {
      out <- c(out, if (i == j) sprintf("sd_%s|%s", cn[i], grp) else sprintf("cor_%s.%s|%s", cn[j], cn[i], grp))
    }
  }
  if (isLMM(m)) out <- c(out, "sigma")
  out
}

fits <- list()
add_fit <- function(key, data_name, formula, family, reml = NA, nagq = 1L) {
  d <- datasets[[data_name]]
  for (cl in c("Subject", "herd", "period", "ID", "g")) if (cl %in% names(d)) d[[cl]] <- factor(d[[cl]])
  if (family == "gaussian") {
    m <- lmer(as.formula(formula), data = d, REML = reml)
  }
  control <- if (family == "gaussian") "default" else "tolPwrss=1e-12"
  t0 <- proc.time()[["elapsed"]]
  ci <- NULL
  if (family != "gaussian") {
    m <- glmer(as.formula(formula), data = d, family = binomial, nAGQ = nagq,
               control = glmerControl(tolPwrss = 1e-12))
    ci <- tryCatch(suppressWarnings(confint(m, method = "profile", level = 0.95, oldNames = FALSE)),
                   error = function(e) NULL)
    if (is.null(ci)) {
      control <- "default"
      t0 <- proc.time()[["elapsed"]]
      m <- glmer(as.formula(formula), data = d, family = binomial, nAGQ = nagq)
    }
  }
  if (is.null(ci)) ci <- suppressWarnings(confint(m, method = "profile", level = 0.95, oldNames = FALSE))
  elapsed <- proc.time()[["elapsed"]] - t0
  vc <- as.data.frame(VarCorr(m))
  est_var <- vc$sdcor
  fits[[key]] <<- list(
    data = data_name, formula = formula, family = family, reml = reml, n_agq = nagq, control = control,
    names = c(our_varnames(m), names(fixef(m))),
    lme4_names = rownames(ci),
    estimate = c(est_var, unname(fixef(m))),
    lower = unname(ci[, 1]), upper = unname(ci[, 2]),
    loglik = as.numeric(logLik(m)), seconds = elapsed)
  cat(sprintf("%-22s %6.1f s\n", key, elapsed))
}

add_fit("sleepstudy_reml", "sleepstudy", "Reaction ~ Days + (Days | Subject)", "gaussian", reml = TRUE)
add_fit("sleepstudy_ml", "sleepstudy", "Reaction ~ Days + (Days | Subject)", "gaussian", reml = FALSE)
add_fit("singular_reml", "singular", "y ~ x + (1 | g)", "gaussian", reml = TRUE)
add_fit("cbpp_laplace", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial")
add_fit("cbpp_agq9", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", nagq = 9L)
add_fit("toenail_agq9", "toenail", "Response ~ Treatment * Month + (1 | ID)", "bernoulli", nagq = 9L)

col_data <- lapply(datasets, function(d) lapply(d, function(v) if (is.factor(v)) as.character(v) else v))

out <- list(
  r_version = R.version.string,
  lme4_version = as.character(packageVersion("lme4")),
  hsaur3_version = as.character(packageVersion("HSAUR3")),
  created = format(Sys.time(), "%Y-%m-%d"),
  level = 0.95,
  singular_seed = singular_seed,
  same_as_bundled = lapply(setNames(names(datasets), names(datasets)),
                           function(nm) same_as_bundled(nm, datasets[[nm]])),
  notes = paste("confint(m, method = 'profile', oldNames = FALSE); lme4 profiles REML fits on the",
                "ML deviance; glmer fits with tolPwrss = 1e-12"),
  data = col_data,
  fits = fits)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null"), out_file)
cat("wrote", out_file, "\n")

# Reference fits of the random problems for tests/test_random_agreement.py.
#
# Run from the repository root:
#     python tests/reference/random_problems.py /tmp/random_problems.json
#     Rscript tests/reference/make_random_agreement.R /tmp/random_problems.json
# (with no argument the script runs the generator itself, with `python` on the PATH).
# Writes tests/reference/random_agreement.json: every problem's formula, family, REML flag,
# its data column-wise exactly as fitted, and the lme4 and glmmTMB fits, so the tests never
# need R.
#
# Fits:
#   * lme4: lmer (REML or ML) for gaussian problems, glmer (Laplace, nAGQ = 1) otherwise,
#     default optimizers with a raised evaluation limit;
#   * glmmTMB: the same formula and family, REML = TRUE for REML problems.
# Both logLik()s include every constant (gaussian ML, binomial choose(n, k), poisson
# lgamma(y + 1)).  For REML problems lme4's logLik is -REMLcrit/2 and glmmTMB's is the
# Laplace-integrated (exact, for a LMM) likelihood with the fixed effects integrated out
# under a flat prior: the same function, so the two are compared directly (the JSON
# records the largest REML difference between the two packages at their own optima as
# "reml_scale_check").  glmmTMB's logLik() is NA where its Hessian is not positive definite
# (typically a singular fit); "objective_loglik" (-fit$objective) is recorded for every fit
# and is what the tests compare with.
suppressMessages({
  library(lme4)
  library(glmmTMB)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
in_file <- if (length(args) >= 1) args[1] else {
  f <- tempfile(fileext = ".json")
  stopifnot(system2("python", c("tests/reference/random_problems.py", f)) == 0)
  f
}
out_file <- if (length(args) >= 2) args[2] else "tests/reference/random_agreement.json"

inp <- fromJSON(in_file, simplifyVector = TRUE, simplifyDataFrame = FALSE)
problems <- inp$problems

ctrl_l <- lmerControl(optCtrl = list(maxfun = 1e5))
ctrl_g <- glmerControl(optCtrl = list(maxfun = 1e5))

# evaluate expr, collecting warnings and messages instead of printing them
capture <- function(expr) {
  warns <- character(0)
  msgs <- character(0)
  val <- tryCatch(
    withCallingHandlers(expr,
      warning = function(w) { warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning") },
      message = function(m) { msgs <<- c(msgs, conditionMessage(m)); invokeRestart("muffleMessage") }),
    error = function(e) structure(list(msg = conditionMessage(e)), class = "fit_error"))
  list(value = val, warnings = unique(c(warns, msgs)))
}

vc_list <- function(vc) {
  vc$var1[is.na(vc$var1)] <- ""
  vc$var2[is.na(vc$var2)] <- ""
  list(grp = I(vc$grp), var1 = I(vc$var1), var2 = I(vc$var2), sdcor = I(vc$sdcor))
}

summarise_lme4 <- function(m, warns, secs) {
  if (inherits(m, "fit_error")) return(list(ok = FALSE, error = m$msg, warnings = I(warns)))
  ll <- logLik(m)
  conv <- m@optinfo$conv
  list(
    ok = TRUE,
    loglik = as.numeric(ll), df = attr(ll, "df"),
    fixef_names = I(names(fixef(m))), fixef = I(unname(fixef(m))),
    theta = I(unname(getME(m, "theta"))),
    sigma = if (isGLMM(m)) NULL else sigma(m),
    varcorr = vc_list(as.data.frame(VarCorr(m))),
    is_singular = isSingular(m),
    opt_code = if (is.null(conv$opt)) 0L else as.integer(conv$opt),
    lme4_code = if (is.null(conv$lme4$code)) 0L else as.integer(conv$lme4$code),
    messages = I(as.character(conv$lme4$messages)),
    warnings = I(warns),
    seconds = secs
  )
}

summarise_tmb <- function(m, warns, secs) {
  if (inherits(m, "fit_error")) return(list(ok = FALSE, error = m$msg, warnings = I(warns)))
  ll <- logLik(m)
  vc <- VarCorr(m)$cond
  rows <- list()
  for (grp in names(vc)) {
    v <- vc[[grp]]
    sds <- attr(v, "stddev")
    cr <- attr(v, "correlation")
    for (i in seq_along(sds)) rows[[length(rows) + 1]] <- list(grp, names(sds)[i], "", sds[[i]])
    if (length(sds) > 1 && !is.null(cr)) {
      for (i in 1:(length(sds) - 1)) for (j in (i + 1):length(sds))
        rows[[length(rows) + 1]] <- list(grp, names(sds)[i], names(sds)[j], cr[j, i])
    }
  }
  fam <- family(m)$family
  sig <- if (fam == "gaussian") sigma(m) else NULL
  list(
    ok = TRUE,
    loglik = as.numeric(ll), df = attr(ll, "df"),
    # logLik() is NA where the Hessian is not positive definite; -objective is the (Laplace
    # or REML) log-likelihood at the point nlminb stopped, on the same scale
    objective_loglik = -as.numeric(m$fit$objective),
    fixef_names = I(names(fixef(m)$cond)), fixef = I(unname(fixef(m)$cond)),
    sigma = sig,
    varcorr = list(grp = I(vapply(rows, `[[`, "", 1)), var1 = I(vapply(rows, `[[`, "", 2)),
                   var2 = I(vapply(rows, `[[`, "", 3)), sdcor = I(vapply(rows, `[[`, 0, 4))),
    opt_code = as.integer(m$fit$convergence),
    opt_message = as.character(m$fit$message),
    pd_hess = isTRUE(m$sdr$pdHess),
    warnings = I(warns),
    seconds = secs
  )
}

fits <- list()
data_out <- list()
t_start <- Sys.time()
for (k in seq_along(problems)) {
  p <- problems[[k]]
  d <- as.data.frame(lapply(p$data, unlist), stringsAsFactors = FALSE)
  for (col in intersect(c("g", "h"), names(d))) d[[col]] <- factor(d[[col]])
  f <- as.formula(p$formula)
  fam_r <- switch(p$family, gaussian = gaussian(), bernoulli = binomial(),
                  binomial = binomial(), poisson = poisson())
  t0 <- proc.time()[["elapsed"]]
  fl <- capture(if (p$family == "gaussian") lmer(f, data = d, REML = isTRUE(p$reml), control = ctrl_l)
                else glmer(f, data = d, family = fam_r, nAGQ = 1, control = ctrl_g))
  t1 <- proc.time()[["elapsed"]]
  ft <- capture(glmmTMB(f, data = d, family = fam_r, REML = isTRUE(p$reml)))
  t2 <- proc.time()[["elapsed"]]
  lme4_res <- summarise_lme4(fl$value, fl$warnings, t1 - t0)
  tmb_res <- summarise_tmb(ft$value, ft$warnings, t2 - t1)
  fits[[p$key]] <- list(
    key = p$key, family = p$family, cell_family = p$cell_family, structure = p$structure,
    reml = isTRUE(p$reml), formula = p$formula, n_obs = p$n_obs, n_groups = p$n_groups,
    n_groups_h = p$n_groups_h, truth = p$truth,
    lme4 = lme4_res, glmmTMB = tmb_res
  )
  data_out[[p$key]] <- p$data
  cat(sprintf("%3d %-32s lme4 %s  glmmTMB %s\n", k, p$key,
              if (isTRUE(lme4_res$ok)) sprintf("%.4f", lme4_res$loglik) else "ERROR",
              if (isTRUE(tmb_res$ok)) sprintf("%.4f", tmb_res$loglik) else "ERROR"))
}

reml_diffs <- unlist(lapply(fits, function(r)
  if (r$reml && isTRUE(r$lme4$ok) && isTRUE(r$glmmTMB$ok)) abs(r$lme4$loglik - r$glmmTMB$objective_loglik) else NULL))

out <- list(
  generated_by = "tests/reference/make_random_agreement.R",
  generator = "tests/reference/random_problems.py",
  seed = inp$seed, replicates = inp$replicates,
  r_version = R.version.string,
  lme4_version = as.character(packageVersion("lme4")),
  glmmTMB_version = as.character(packageVersion("glmmTMB")),
  TMB_version = as.character(packageVersion("TMB")),
  date = as.character(Sys.Date()),
  seconds = as.numeric(difftime(Sys.time(), t_start, units = "secs")),
  reml_scale_check = list(n = length(reml_diffs),
                          median_abs_diff = if (length(reml_diffs)) median(reml_diffs, na.rm = TRUE) else NULL),
  n_problems = length(fits),
  fits = fits,
  data = data_out
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null"), out_file)
cat("wrote", out_file, "with", length(fits), "problems\n")

# Reference fits for tests/test_ml_trust.py: zero-inflated NB2 on glmmTMB's Salamanders data,
# where a zero-inflation coefficient can head to the boundary (P(zero-inflation) -> 0 for a
# level) while the best optimum of the others is interior.
#
# Run from the repository root:
#     Rscript tests/reference/make_reference_zi.R
# Writes tests/reference/salamanders.csv (the data exactly as fitted) and
# tests/reference/zi_reference.json.  The tests only read these files, so they never need R.
#
# Provenance of the data: Salamanders from the R package glmmTMB (data(Salamanders)), from
# Price, S. J., et al. (2016), "Effects of mountaintop removal mining and valley filling on
# the occupancy and abundance of stream salamanders", Journal of Applied Ecology 53:459-468
# (Dryad data package doi:10.5061/dryad.5m8f6, which Dryad publishes under CC0; glmmTMB's
# help page cites both).  The counts are observations (facts); this script copies the
# columns used here and no code of glmmTMB (AGPL-3).
#
# Conventions (so that Python fits the identical model):
#   * factor columns are written as strings.  Each model is fitted with two codings: "sorted"
#     (levels in C-locale order, bayes_glmm's default for strings: dummies "minedyes",
#     reference "no"; "sppDF", reference "DES-L") and "R" (the package's level order,
#     stored as r_levels: reference "yes" and "GP").  Treatment contrasts in both.
#   * glmmTMB, ML, Laplace, default nlminb optimizer; family nbinom2, theta = sigma(fit).
#   * SEs are sqrt(diag(vcov)); glmmTMB reports NaN (printed NA) for a coefficient at the
#     boundary, stored here as null; loglik is null where glmmTMB's logLik() is NA
#     (non-positive-definite Hessian), objective_loglik (-fit$objective) is always given.
suppressMessages({
  library(glmmTMB)
  library(jsonlite)
})

data(Salamanders, package = "glmmTMB")
sal <- data.frame(
  count = as.integer(Salamanders$count),
  mined = as.character(Salamanders$mined),
  spp = as.character(Salamanders$spp),
  cover = Salamanders$cover,
  site = as.character(Salamanders$site),
  stringsAsFactors = FALSE)
stopifnot(nrow(sal) == 644)
write.csv(sal, "tests/reference/salamanders.csv", row.names = FALSE)

# Two codings of the same factors: levels sorted by code point (bayes_glmm's default for
# string columns) and R's own level order of the package data (reference levels "yes" for
# mined and "GP" for spp), which Python reproduces with pandas Categoricals.  The maximum
# of the likelihood is the same; the coefficients, and which of them sit at a boundary,
# differ.  In R's order the plateau of a boundary zi coefficient is what stopped our
# optimizer (issue 16).
d_sorted <- sal
d_r <- sal
invisible(Sys.setlocale("LC_COLLATE", "C"))
r_levels <- list(mined = levels(Salamanders$mined), spp = levels(Salamanders$spp))
for (v in c("mined", "spp", "site")) d_sorted[[v]] <- factor(d_sorted[[v]], levels = sort(unique(d_sorted[[v]])))
for (v in c("mined", "spp")) d_r[[v]] <- factor(d_r[[v]], levels = r_levels[[v]])
d_r$site <- factor(d_r$site, levels = sort(unique(d_r$site)))

na_null <- function(x) { x <- unname(x); lapply(x, function(v) if (is.finite(v)) v else NULL) }

fit_one <- function(key, formula, zi, coding) {
  d <- if (coding == "sorted") d_sorted else d_r
  m <- glmmTMB(as.formula(formula), ziformula = as.formula(zi), data = d,
               family = nbinom2(link = "log"), REML = FALSE)
  ll <- logLik(m)
  fe <- fixef(m)
  v <- vcov(m)
  vc <- VarCorr(m)$cond$site
  list(key = key, formula = formula, zi = zi, levels = coding, family = "negbinomial", link = "log",
       loglik = if (is.finite(as.numeric(ll))) as.numeric(ll) else NULL, npar = attr(ll, "df"),
       # logLik() is NA when the Hessian is not positive definite; the optimum reached is
       # -fit$objective all the same
       objective_loglik = -m$fit$objective,
       convergence = m$fit$convergence, pdHess = isTRUE(m$sdr$pdHess),
       optimizer_message = m$fit$message,
       fixef_names = I(names(fe$cond)), fixef = I(unname(fe$cond)),
       fixef_se = I(na_null(sqrt(diag(as.matrix(v$cond))))),
       fixef_zi_names = I(names(fe$zi)), fixef_zi = I(unname(fe$zi)),
       fixef_zi_se = I(na_null(sqrt(diag(as.matrix(v$zi))))),
       theta = sigma(m), sd_site = unname(attr(vc, "stddev")))
}

specs <- list(
  c("count ~ spp + mined + (1 | site)", "~ mined", "spp_mined__zi_mined"),
  c("count ~ spp + mined + (1 | site)", "~ spp", "spp_mined__zi_spp"),
  c("count ~ spp + mined + (1 | site)", "~ spp + mined", "spp_mined__zi_spp_mined"),
  c("count ~ mined + (1 | site)", "~ spp", "mined__zi_spp"))
fits <- list()
for (sp in specs) for (coding in c("sorted", "R")) {
  key <- paste0("zinb2_", sp[3], "__", coding)
  fits[[key]] <- fit_one(key, sp[1], sp[2], coding)
}
for (f in fits) cat(sprintf("%-40s logLik %.6f conv %d pdHess %s\n", f$key, f$objective_loglik, f$convergence, f$pdHess))

ref <- list(
  generated_by = "tests/reference/make_reference_zi.R",
  data_file = "tests/reference/salamanders.csv",
  data_provenance = "glmmTMB::Salamanders (Price et al. 2016, J. Appl. Ecol. 53:459-468)",
  r_version = R.version.string,
  glmmTMB_version = as.character(packageVersion("glmmTMB")),
  TMB_version = as.character(packageVersion("TMB")),
  r_levels = r_levels,
  notes = "glmmTMB ML Laplace fits, nbinom2; theta = sigma(fit); SE null where glmmTMB reports NaN",
  fits = fits)
writeLines(toJSON(ref, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"),
           "tests/reference/zi_reference.json")

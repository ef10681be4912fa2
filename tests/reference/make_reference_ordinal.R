# Reference fits of cumulative-link mixed models with ordinal::clmm, for tests/test_ordinal.py.
#
#   cd tests/reference && Rscript make_reference_ordinal.R
#
# Writes ordinal_wine.csv, ordinal_soup.csv, ordinal_slope.csv (the data, so the tests need no R)
# and ordinal_reference.json: logLik, thresholds, fixed effects with SEs, random-effect SDs (and
# the correlation of the random-slope model) for
#   wine: rating ~ temp + contact + (1 | judge), logit and probit, Laplace and nAGQ = 10
#   soup: SURENESS ~ PROD + (1 | RESP), logit and probit, Laplace (and logit nAGQ = 10)
#   slope (simulated): y ~ x + (1 + x | g), logit and probit, Laplace (clmm fits random slopes
#         with the Laplace approximation only; nAGQ > 1 needs a single scalar term)
# Tight optimizer tolerances (gradTol 1e-8), so the reference is the optimum, not a stop near it.
suppressPackageStartupMessages({library(ordinal); library(jsonlite)})
data(wine); data(soup)

set.seed(20261207)
n <- 600; J <- 40
g <- factor(sample(seq_len(J), n, replace = TRUE), levels = seq_len(J))
x <- round(rnorm(n), 4)
u0 <- rnorm(J, 0, 0.8); u1 <- rnorm(J, 0, 0.5)
lat <- 0.7 * x + u0[g] + u1[g] * x + rlogis(n)
y <- cut(lat, c(-Inf, -1, 0.5, 2, Inf), labels = c("low", "mid", "high", "top"), ordered_result = TRUE)
slope <- data.frame(y = y, x = x, g = g)

write.csv(wine[, c("rating", "temp", "contact", "judge")], "ordinal_wine.csv", row.names = FALSE)
write.csv(soup[, c("SURENESS", "PROD", "RESP")], "ordinal_soup.csv", row.names = FALSE)
write.csv(slope, "ordinal_slope.csv", row.names = FALSE)

ctrl <- clmm.control(gradTol = 1e-8, maxIter = 1000, maxLineIter = 200)

one <- function(formula, data, dname, link, nAGQ) {
  f <- clmm(as.formula(formula), data = data, link = link, nAGQ = nAGQ, control = ctrl, Hess = TRUE)
  se <- sqrt(diag(vcov(f)))
  vc <- VarCorr(f)
  re_sd <- list(); re_corr <- list()
  for (gr in names(vc)) {
    m <- vc[[gr]]
    s <- sqrt(diag(as.matrix(m)))
    for (k in seq_along(s)) re_sd[[paste(gr, names(s)[k], sep = ":")]] <- unname(s[k])
    if (length(s) > 1) {
      cm <- cov2cor(as.matrix(m))
      re_corr[[gr]] <- cm[2, 1]
    }
  }
  list(formula = formula, data = dname, link = link, nAGQ = nAGQ,
       logLik = as.numeric(logLik(f)), max_grad = max(abs(f$gradient)),
       thresholds = as.list(f$alpha), threshold_se = as.list(se[names(f$alpha)]),
       beta = as.list(f$beta), beta_se = as.list(se[names(f$beta)]),
       re_sd = re_sd, re_corr = re_corr, nobs = nrow(data))
}

fits <- list(
  wine_logit_laplace = one("rating ~ temp + contact + (1|judge)", wine, "ordinal_wine.csv", "logit", 1),
  wine_logit_agq10 = one("rating ~ temp + contact + (1|judge)", wine, "ordinal_wine.csv", "logit", 10),
  wine_probit_laplace = one("rating ~ temp + contact + (1|judge)", wine, "ordinal_wine.csv", "probit", 1),
  wine_probit_agq10 = one("rating ~ temp + contact + (1|judge)", wine, "ordinal_wine.csv", "probit", 10),
  soup_logit_laplace = one("SURENESS ~ PROD + (1|RESP)", soup, "ordinal_soup.csv", "logit", 1),
  soup_logit_agq10 = one("SURENESS ~ PROD + (1|RESP)", soup, "ordinal_soup.csv", "logit", 10),
  soup_probit_laplace = one("SURENESS ~ PROD + (1|RESP)", soup, "ordinal_soup.csv", "probit", 1),
  slope_logit_laplace = one("y ~ x + (1 + x|g)", slope, "ordinal_slope.csv", "logit", 1),
  slope_probit_laplace = one("y ~ x + (1 + x|g)", slope, "ordinal_slope.csv", "probit", 1)
)
out <- list(generated_by = "tests/reference/make_reference_ordinal.R",
            versions = list(R = R.version.string, ordinal = as.character(packageVersion("ordinal")),
                            ucminf = as.character(packageVersion("ucminf"))),
            slope_levels = levels(slope$y), fits = fits)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "ordinal_reference.json")

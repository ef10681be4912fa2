# Reference values from emmeans on ordinal::clmm fits, for tests/test_emmeans_ordinal.py.
#
# Run from the repository root:
#     Rscript tests/reference/make_reference_emmeans_ordinal.R
# Reads tests/reference/ordinal_wine.csv (ordinal's wine, written by make_reference_ordinal.R) and
# writes tests/reference/emmeans_ordinal_reference.json.
#
# Cases: rating ~ temp + contact + (1 | judge), logit and probit links, Laplace, tight control:
#   emmeans(~ rating | temp, mode = "prob")            per-category probabilities (emmeans's
#   emmeans(~ rating | temp + contact, mode = "prob")  "prob" mode: P(Y = k) at each grid point,
#                                                      random effects at 0, averaged over the grid)
#   emmeans(~ temp, mode = "mean.class")              the expected class sum_k k P(Y = k)
#   emmeans(~ contact | temp, mode = "mean.class")
#   pairs(emmeans(~ contact, mode = "mean.class"))    (no multiplicity adjustment with 2 means)
# and, for pooling() (tests/test_ordinal_teaching.py), the fixed-effects cumulative-link fits of its
# complete- and no-pooling columns: clm(rating ~ temp + contact) and clm(rating ~ temp + contact + judge).
# Each fit also stores clmm's estimates and vcov (thresholds first, then beta, on clmm's scale),
# so the tests can check the emmeans arithmetic at exactly clmm's parameters as well as on our fit.
suppressMessages({library(ordinal); library(emmeans); library(jsonlite)})
out_file <- "tests/reference/emmeans_ordinal_reference.json"

d <- read.csv("tests/reference/ordinal_wine.csv", stringsAsFactors = FALSE)
d$rating <- factor(d$rating, ordered = TRUE)
d$temp <- factor(d$temp); d$contact <- factor(d$contact); d$judge <- factor(d$judge)
ctrl <- clmm.control(gradTol = 1e-8, maxIter = 1000, maxLineIter = 200)

tab <- function(x) {
  s <- as.data.frame(summary(x, infer = c(TRUE, TRUE)))
  for (v in names(s)) if (is.factor(s[[v]])) s[[v]] <- as.character(s[[v]])
  as.list(s)
}

one <- function(link) {
  f <- clmm(rating ~ temp + contact + (1 | judge), data = d, link = link, Hess = TRUE, control = ctrl)
  np <- length(f$alpha) + length(f$beta)
  list(
    formula = "rating ~ temp + contact + (1 | judge)", link = link, logLik = as.numeric(logLik(f)),
    thresholds = as.list(f$alpha), beta = as.list(f$beta),
    vcov = unname(as.matrix(vcov(f))[seq_len(np), seq_len(np)]),
    vcov_names = colnames(vcov(f))[seq_len(np)],
    prob_temp = tab(emmeans(f, ~ rating | temp, mode = "prob")),
    prob_temp_contact = tab(emmeans(f, ~ rating | temp + contact, mode = "prob")),
    mean_class_temp = tab(emmeans(f, ~ temp, mode = "mean.class")),
    mean_class_contact_by_temp = tab(emmeans(f, ~ contact | temp, mode = "mean.class")),
    pairs_mean_class_contact = tab(pairs(emmeans(f, ~ contact, mode = "mean.class"))))
}

res <- list(generated_by = "tests/reference/make_reference_emmeans_ordinal.R",
            versions = list(R = R.version.string, ordinal = as.character(packageVersion("ordinal")),
                            emmeans = as.character(packageVersion("emmeans"))),
            data = "tests/reference/ordinal_wine.csv",
            fits = list(wine_logit = suppressWarnings(one("logit")), wine_probit = suppressWarnings(one("probit"))))
clm_fit <- function(formula, link) {
  f <- clm(as.formula(formula), data = d, link = link, control = clm.control(gradTol = 1e-10))
  list(formula = formula, link = link, logLik = as.numeric(logLik(f)), thresholds = as.list(f$alpha),
       beta = as.list(f$beta))
}
res$clm <- list(complete_logit = clm_fit("rating ~ temp + contact", "logit"),
                no_pool_logit = clm_fit("rating ~ temp + contact + judge", "logit"),
                no_pool_probit = clm_fit("rating ~ temp + contact + judge", "probit"))
writeLines(toJSON(res, auto_unbox = TRUE, digits = NA, pretty = TRUE), out_file)

# Reference values from lmerTest / pbkrtest / lme4 for tests/test_ddf.py and tests/test_anova.py.
#
# Run from the repository root:
#     Rscript tests/reference/make_reference_lmertest.R
# Writes tests/reference/lmertest_reference.json.  The tests only read the JSON (no R at
# test time).  Every dataset is written column-wise exactly as it was fitted, factors as
# strings with their level order, so the Python side fits the very same rows and coding.
#
# Contents per fit (REML and ML):
#   * coef:      summary(m)$coefficients           (Satterthwaite df, t, p)
#   * coef_kr:   summary(m, ddf = "Kenward-Roger") (REML fits only: lmerTest refuses KR
#                for ML fits, "Kenward-Roger's method is only available for REML model fits")
#   * anova:     anova(m, type = 1 / 3, ddf = "Satterthwaite" / "Kenward-Roger")
# and lme4's anova(m1, m2, ...) model-comparison tables (a REML pair is refitted by ML).
suppressMessages({
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
  library(jsonlite)
  library(MASS)
})

out_file <- "tests/reference/lmertest_reference.json"
options(contrasts = c("contr.treatment", "contr.poly"))

# ---------------------------------------------------------------- datasets
as_plain <- function(d) {
  # factors become unordered factors (treatment coding), levels kept in their given order
  for (v in names(d)) if (is.factor(d[[v]])) d[[v]] <- factor(as.character(d[[v]]), levels = levels(d[[v]]))
  rownames(d) <- NULL
  d
}

data(sleepstudy, package = "lme4")
sleep <- as_plain(sleepstudy)

data(oats, package = "MASS")
oats_d <- as_plain(oats[, c("Y", "N", "V", "B")])
# an unbalanced version: balanced designs give near-integer df that hide errors
oats_u <- oats_d[-c(2, 9, 23, 40, 41, 58), ]
rownames(oats_u) <- NULL

data(ChickWeight, package = "datasets")
chick <- as.data.frame(ChickWeight)[, c("weight", "Time", "Chick", "Diet")]
chick$Chick <- factor(as.character(chick$Chick), levels = sort(unique(as.character(chick$Chick))))
chick$Diet <- factor(as.character(chick$Diet), levels = c("1", "2", "3", "4"))
chick$Time <- chick$Time / 7  # weeks: keeps the slope variance well scaled
chick$logw <- log(chick$weight)

data(Penicillin, package = "lme4")
penic <- as_plain(Penicillin)

datasets <- list(sleepstudy = sleep, oats = oats_d, oats_unbal = oats_u, chick = chick,
                 penicillin = penic)

# ---------------------------------------------------------------- helpers
col_json <- function(d) {
  cols <- list()
  levels <- list()
  for (v in names(d)) {
    if (is.factor(d[[v]])) {
      cols[[v]] <- as.character(d[[v]])
      levels[[v]] <- levels(d[[v]])
    } else cols[[v]] <- as.numeric(d[[v]])
  }
  list(columns = cols, levels = levels, n = nrow(d))
}

# I(): keep length-1 vectors as JSON arrays (auto_unbox would make them scalars)
coef_json <- function(tab) {
  list(names = I(rownames(tab)), estimate = I(unname(tab[, "Estimate"])),
       se = I(unname(tab[, "Std. Error"])), df = I(unname(tab[, "df"])), t = I(unname(tab[, "t value"])),
       p = I(unname(tab[, "Pr(>|t|)"])))
}

anova_json <- function(a) {
  list(terms = I(rownames(a)), sum_sq = I(unname(a[, "Sum Sq"])), mean_sq = I(unname(a[, "Mean Sq"])),
       num_df = I(unname(a[, "NumDF"])), den_df = I(unname(a[, "DenDF"])), F = I(unname(a[, "F value"])),
       p = I(unname(a[, "Pr(>F)"])))
}

fit_specs <- list(
  list(name = "sleep_slope", dataset = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)"),
  list(name = "sleep_diag", dataset = "sleepstudy", formula = "Reaction ~ Days + (Days || Subject)"),
  list(name = "oats_split", dataset = "oats", formula = "Y ~ N * V + (1 | B) + (1 | B:V)"),
  list(name = "oats_unbal", dataset = "oats_unbal", formula = "Y ~ N * V + (1 | B) + (1 | B:V)"),
  list(name = "chick_slope", dataset = "chick", formula = "logw ~ Time * Diet + (Time | Chick)"),
  # factor first: labels "V:N" / "Diet:Time" follow the formula's order
  list(name = "oats_vn", dataset = "oats_unbal", formula = "Y ~ V * N + (1 | B)"),
  list(name = "chick_diet_first", dataset = "chick", formula = "logw ~ Diet * Time + (1 | Chick)"),
  list(name = "penicillin", dataset = "penicillin", formula = "diameter ~ 1 + (1 | plate) + (1 | sample)")
)

fits <- list()
for (fs in fit_specs) {
  for (reml in c(TRUE, FALSE)) {
    d <- datasets[[fs$dataset]]
    m <- lmerTest::lmer(as.formula(fs$formula), data = d, REML = reml)
    entry <- list(name = fs$name, dataset = fs$dataset, formula = fs$formula, reml = reml,
                  theta = I(unname(getME(m, "theta"))), sigma = sigma(m),
                  loglik = as.numeric(logLik(m)),
                  coef = coef_json(summary(m)$coefficients))
    has_terms <- length(attr(terms(m), "term.labels")) > 0
    an <- setNames(list(), character(0))  # written as {} when empty
    if (has_terms) {
      an[["1_satterthwaite"]] <- anova_json(anova(m, type = 1, ddf = "Satterthwaite"))
      an[["3_satterthwaite"]] <- anova_json(anova(m, type = 3, ddf = "Satterthwaite"))
    }
    if (reml) {
      entry$coef_kr <- coef_json(summary(m, ddf = "Kenward-Roger")$coefficients)
      if (has_terms) {
        an[["1_kenward-roger"]] <- anova_json(anova(m, type = 1, ddf = "Kenward-Roger"))
        an[["3_kenward-roger"]] <- anova_json(anova(m, type = 3, ddf = "Kenward-Roger"))
      }
    }
    entry$anova <- an
    fits[[length(fits) + 1]] <- entry
  }
}

# ---------------------------------------------------------------- lme4 model comparisons
compare_json <- function(dataset, formulas, reml) {
  d <- datasets[[dataset]]
  mods <- lapply(formulas, function(f) lme4::lmer(as.formula(f), data = d, REML = reml))
  names(mods) <- paste0("m", seq_along(mods))
  msg <- character(0)
  a <- withCallingHandlers(
    do.call(anova, c(unname(mods[1]), mods[-1], list(model.names = names(mods)))),
    message = function(m) { msg <<- c(msg, conditionMessage(m)); invokeRestart("muffleMessage") })
  list(dataset = dataset, formulas = formulas, reml = reml, message = paste(msg, collapse = ""),
       rownames = rownames(a), npar = unname(a[, "npar"]), AIC = unname(a[, "AIC"]),
       BIC = unname(a[, "BIC"]), logLik = unname(a[, "logLik"]), deviance = unname(a[, "deviance"]),
       Chisq = unname(a[, "Chisq"]), Df = unname(a[, "Df"]), p = unname(a[, "Pr(>Chisq)"]))
}

comparisons <- list(
  # REML pair: lme4 refits both by ML and says so
  compare_json("sleepstudy", c("Reaction ~ Days + (Days | Subject)", "Reaction ~ Days + (1 | Subject)"), TRUE),
  # ML triple with different fixed effects, given out of npar order
  compare_json("chick", c("logw ~ Time * Diet + (Time | Chick)", "logw ~ Time + (Time | Chick)",
                          "logw ~ Time + Diet + (Time | Chick)"), FALSE),
  compare_json("oats", c("Y ~ N + V + (1 | B) + (1 | B:V)", "Y ~ N * V + (1 | B) + (1 | B:V)"), TRUE)
)

versions <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                 lmerTest = as.character(packageVersion("lmerTest")),
                 pbkrtest = as.character(packageVersion("pbkrtest")),
                 Matrix = as.character(packageVersion("Matrix")))

out <- list(versions = versions, datasets = lapply(datasets, col_json), fits = fits,
            comparisons = comparisons)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, na = "null", pretty = FALSE), out_file)
cat("wrote", out_file, "\n")

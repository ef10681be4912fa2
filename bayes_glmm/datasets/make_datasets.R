# Exports the bundled datasets from R packages (Debian r-cran-hsaur3, r-cran-lme4).
# Run from the repository root:  Rscript bayes_glmm/datasets/make_datasets.R
suppressMessages({library(lme4); library(HSAUR3)})
options(digits = 15)  # write.csv keeps full precision (Month is fractional)
out <- "bayes_glmm/datasets/data"

data(toenail, package = "HSAUR3")
toe <- data.frame(ID = as.integer(as.character(toenail$patientID)),
                  Response = as.integer(toenail$outcome == "moderate or severe"),
                  Treatment = as.integer(toenail$treatment == "terbinafine"),
                  Month = toenail$time, Visit = toenail$visit)
write.csv(toe, file.path(out, "toenail.csv"), row.names = FALSE)

data(epilepsy, package = "HSAUR3")
ep <- epilepsy
ids <- as.integer(as.character(ep$subject))
base <- ep[ep$period == "1", ]
long <- rbind(
  data.frame(id = as.integer(as.character(base$subject)), count = base$base, weeks = 8L, visit = 0L,
             group = as.integer(base$treatment == "Progabide")),
  data.frame(id = ids, count = ep$seizure.rate, weeks = 2L, visit = as.integer(as.character(ep$period)),
             group = as.integer(ep$treatment == "Progabide")))
long <- long[order(long$id, long$visit), ]
long$followup <- long$visit > 0
write.csv(long, file.path(out, "epilepsy.csv"), row.names = FALSE)

data(cbpp, package = "lme4")
write.csv(cbpp, file.path(out, "cbpp.csv"), row.names = FALSE)
data(sleepstudy, package = "lme4")
write.csv(sleepstudy, file.path(out, "sleepstudy.csv"), row.names = FALSE)

cat("R", R.version.string, "lme4", as.character(packageVersion("lme4")),
    "HSAUR3", as.character(packageVersion("HSAUR3")), "\n")
# check against seed 002's epilepsy Laplace fit
m <- glmer(count ~ offset(log(weeks)) + followup * group + (1 + followup | id), family = poisson, data = long)
print(fixef(m))

# Stan (rstan) as a peer of bayes_glmm's NUTS: benchmarks/bench_nuts.py --stan runs this script.
#   Rscript stan_peer.R <input.json> <output.json>
# input.json (written by bench_nuts.py): the Stan data of stan_peer.stan ("data"), and
# "chains", "warmup", "draws", "seed", "cores", "cache" (a folder for the compiled model).
# output.json: compile_s (the wall seconds of stan_model() when the cached model was compiled; compiled_now
# says whether this run compiled it),
# per-chain warmup_s / sample_s (rstan's get_elapsed_time: Stan 2.21 times each chain with
# clock(), the CPU seconds of that chain's process), wall_s of the sampling() call, and the draws
# of b_Intercept, b, sd_g, theta (chain x draw arrays) so that ESS is computed in Python by
# ArviZ for both packages alike, plus divergences and versions.
suppressMessages({library(rstan); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
inp <- fromJSON(args[1], simplifyVector = TRUE)
here <- dirname(normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))))
src <- file.path(here, "stan_peer.stan")
dir.create(inp$cache, showWarnings = FALSE, recursive = TRUE)
# rstan's own cache (auto_write: the compiled model as an .rds beside the .stan file, reloaded
# with its DLL); the file is named after its content, so an edited program compiles anew
key <- paste0("stan_peer_", tools::md5sum(src), "_", packageVersion("rstan"))
stan_file <- file.path(inp$cache, paste0(key, ".stan"))
side <- file.path(inp$cache, paste0(key, "_compile.json"))
if (!file.exists(stan_file)) file.copy(src, stan_file)
rstan_options(auto_write = TRUE)
compiled_now <- !file.exists(side)
t0 <- proc.time()[["elapsed"]]
sm <- stan_model(stan_file, model_name = "stan_peer")
if (compiled_now) writeLines(toJSON(list(compile_s = proc.time()[["elapsed"]] - t0), auto_unbox = TRUE), side)
# the wall seconds of stan_model() when it compiled, also when loaded from the cache
compile_s <- fromJSON(side)$compile_s
d <- inp$data
# jsonlite reads the rows of Xc as an N x K matrix already (as a list when K = 0)
d$Xc <- if (d$K > 0) matrix(as.numeric(d$Xc), nrow = d$N, ncol = d$K) else matrix(0, d$N, 0)
d$x_mean <- array(d$x_mean, dim = d$K)
d$slope_sigma <- array(d$slope_sigma, dim = d$K)
t0 <- proc.time()[["elapsed"]]
fit <- sampling(sm, data = d, chains = inp$chains, iter = inp$warmup + inp$draws, warmup = inp$warmup,
                seed = inp$seed, cores = inp$cores, refresh = 0, open_progress = FALSE)
wall_s <- proc.time()[["elapsed"]] - t0
el <- get_elapsed_time(fit)
pars <- c("b_Intercept", if (d$K > 0) "b", "sd_g", if (d$family == 1) "theta")
arr <- as.array(fit, pars = pars)  # iterations x chains x parameters
draws <- lapply(dimnames(arr)[[3]], function(p) t(arr[, , p]))
names(draws) <- dimnames(arr)[[3]]
sp <- get_sampler_params(fit, inc_warmup = FALSE)
out <- list(compile_s = compile_s, compiled_now = compiled_now,
            warmup_s = unname(el[, "warmup"]), sample_s = unname(el[, "sample"]), wall_s = wall_s,
            draws = draws,
            divergences = sum(sapply(sp, function(s) sum(s[, "divergent__"]))),
            n_leapfrog = sum(sapply(sp, function(s) sum(s[, "n_leapfrog__"]))),
            stepsize = sapply(sp, function(s) s[1, "stepsize__"]),
            accept_stat = mean(sapply(sp, function(s) mean(s[, "accept_stat__"]))),
            inv_metric = lapply(get_adaptation_info(fit), function(a)
              as.numeric(strsplit(trimws(sub("^#", "", strsplit(a, "\n")[[1]][4])), ",")[[1]])),
            treedepth = as.list(table(unlist(lapply(sp, function(s) s[, "treedepth__"])))),
            versions = list(R = R.version.string, rstan = as.character(packageVersion("rstan")),
                            StanHeaders = as.character(packageVersion("StanHeaders"))))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA), args[2])

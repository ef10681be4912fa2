/*
 * nuts.h -- dependency-free No-U-Turn Sampler (multinomial NUTS, diagonal
 * metric, Stan-style windowed warm-up).  C99.  Reentrant: no global mutable
 * state; every call owns its workspace, so chains may run in parallel threads.
 */
#ifndef BG_NUTS_H
#define BG_NUTS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Returns the log density at x and writes its gradient into grad[ndim].
   A non-finite return (NaN, -inf) means "outside the support / numerical
   failure". */
typedef double (*bg_logp_fn)(void *ctx, const double *x, double *grad);

#define BG_NSTATS 8
/* per-draw stats columns, in this order: */
enum { BG_LP = 0, BG_ACCEPT = 1, BG_STEP = 2, BG_DEPTH = 3, BG_NSTEPS = 4, BG_DIVERGING = 5,
       BG_ENERGY = 6, BG_ENERGY_ERROR = 7 };

typedef struct {
    int ndim;
    int tune;            /* warm-up iterations (not stored) */
    int draws;           /* kept iterations */
    int max_depth;       /* max tree depth, e.g. 10 */
    double target_accept;/* e.g. 0.8 */
    double init_step;    /* <= 0: Stan's heuristic from the initial point */
    uint64_t seed;       /* with chain, selects an independent RNG stream */
    int chain;
    /* The metric windows of the warm-up, from bayes_glmm.bayes.adaptation.windows (the one
       definition of Stan's schedule): window k covers the iterations window_ends[k-1] + 1 ..
       window_ends[k] (the first starts at adapt_start), strictly increasing, < tune.
       n_windows = 0: no metric adaptation (the step size only). */
    int adapt_start;
    int n_windows;
    const int *window_ends;
    /* if not NULL: ndim doubles, the position where the run ended (on an error, where it
       failed: the point a failed step-size search started from) */
    double *state_out;
    /* if not NULL: 2 doubles, the CPU seconds of this chain's thread in the warm-up (with the
       initial step-size search) and in the kept draws, as Stan reports a chain's elapsed time */
    double *seconds_out;
    /* if not NULL: ndim positive doubles, the initial diagonal inverse mass matrix (e.g. the
       conditional variances of a Laplace approximation), and each window's variance estimate
       is shrunk towards it (weight 5 / (count + 5)) instead of towards 1e-3 as Stan does;
       NULL: the unit metric and Stan's regularization */
    const double *init_inv_mass;
} bg_nuts_cfg;

/* return codes of bg_nuts_sample */
enum {
    BG_OK = 0,
    BG_ERR_INIT = 1,       /* no finite initial log density / gradient */
    BG_STOPPED = 2,        /* *stop became nonzero: the draws are incomplete */
    BG_ERR_ARGS = 3,       /* invalid arguments (or schedule) or allocation failure */
    BG_ERR_STEP_HUGE = 4,  /* step-size search doubled past 1e7: flat, improper posterior */
    BG_ERR_STEP_ZERO = 5,  /* step-size search halved to 0: non-finite density near the point */
    BG_ERR_METRIC = 6      /* a window's variance estimate is not finite and positive */
};

/* Runs tune + draws NUTS iterations from init (ndim values).
   draws_out: draws*ndim doubles (row-major, one row per kept draw)
   stats_out: draws*BG_NSTATS doubles (row-major)
   inv_mass_out: ndim doubles, the final diagonal inverse mass matrix (may be NULL); on
             BG_ERR_METRIC the failed variance estimate (its bad entries name the coordinates)
   progress: if not NULL, *progress is set to the number of iterations done so
             far (tune+draws total), updated every iteration
   stop: if not NULL and *stop becomes nonzero, return BG_STOPPED within one leapfrog step
   Returns one of the BG_* codes above: BG_OK only when every draw was written; the initial
   point is init, else up to 100 random points uniform(-2, 2) (BG_ERR_INIT if none is finite).
   The step-size search fails as Stan's does (BG_ERR_STEP_HUGE, BG_ERR_STEP_ZERO). */
int bg_nuts_sample(bg_logp_fn f, void *ctx, const bg_nuts_cfg *cfg, const double *init,
                   double *draws_out, double *stats_out, double *inv_mass_out,
                   volatile int *progress, volatile int *stop);

#ifdef __cplusplus
}
#endif

#endif /* BG_NUTS_H */

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
} bg_nuts_cfg;

/* Runs tune + draws NUTS iterations from init (ndim values).
   draws_out: draws*ndim doubles (row-major, one row per kept draw)
   stats_out: draws*BG_NSTATS doubles (row-major)
   inv_mass_out: ndim doubles, the final diagonal inverse mass matrix (may be NULL)
   progress: if not NULL, *progress is set to the number of iterations done so
             far (tune+draws total), updated every iteration
   stop: if not NULL and *stop becomes nonzero, return early with code 2
   Returns 0 on success, 1 if no finite initial log density could be found
   (after trying init, then up to 100 random points uniform(-2, 2)),
   2 if stopped, 3 on invalid arguments or allocation failure. */
int bg_nuts_sample(bg_logp_fn f, void *ctx, const bg_nuts_cfg *cfg, const double *init,
                   double *draws_out, double *stats_out, double *inv_mass_out,
                   volatile int *progress, volatile int *stop);

#ifdef __cplusplus
}
#endif

#endif /* BG_NUTS_H */

/*
 * nuts.c -- multinomial No-U-Turn Sampler with a diagonal metric and
 * Stan-style windowed warm-up adaptation.  C99, depends only on the C
 * standard library (<math.h>, <stdint.h>, <stdlib.h>, <string.h>).
 *
 * Algorithm (written from the published descriptions):
 *   - Hoffman & Gelman (2014): NUTS, dual averaging of the step size.
 *   - Betancourt (2017), "A Conceptual Introduction to Hamiltonian Monte
 *     Carlo": multinomial sampling of the trajectory, generalized no-U-turn
 *     criterion on rho (sum of momenta) with the inverse metric.
 *   - Additional U-turn checks across merged subtrees (left subtree + first
 *     point of the right subtree, right subtree + last point of the left
 *     subtree), as in Stan >= 2.22.
 *   - Biased progressive sampling at the top level, uniform progressive
 *     sampling inside subtrees.
 *   - Windowed adaptation of a diagonal inverse metric (regularized Welford
 *     variance), step-size heuristic after each metric update.
 *
 * Thread safety: no global mutable state; each call allocates and frees its
 * own workspace.
 *
 * Besides the C standard library: POSIX clock_gettime(CLOCK_THREAD_CPUTIME_ID), where the
 * system has it, for the per-chain timing of cfg->seconds_out (else clock()).
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 199309L /* clock_gettime under -std=c99 */
#endif
#include "nuts.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CPU seconds of the calling thread: a chain's own work, whatever else shares the CPUs */
static double bg_cpu_seconds(void)
{
#if defined(CLOCK_THREAD_CPUTIME_ID)
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0) return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#endif
    return (double)clock() / (double)CLOCKS_PER_SEC;
}

#define BG_MAX_DELTA_H 1000.0

/* ------------------------------------------------------------------------ */
/* RNG: xoshiro256** seeded by splitmix64, one jump (2^128 steps) per chain  */
/* ------------------------------------------------------------------------ */

typedef struct {
    uint64_t s[4];
    int has_spare;
    double spare;
} bg_rng;

static inline uint64_t bg_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t bg_rng_next(bg_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = bg_rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = bg_rotl(s[3], 45);
    return result;
}

static uint64_t bg_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* advance the state by 2^128 steps: non-overlapping subsequences */
static void bg_rng_jump(bg_rng *r)
{
    static const uint64_t JUMP[4] = {0x180ec6d33cfd0abaULL, 0xd5a61266f0c9392cULL,
                                     0xa9582618e03fc9aaULL, 0x39abdc4529b1661cULL};
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int i, b;
    for (i = 0; i < 4; i++) {
        for (b = 0; b < 64; b++) {
            if (JUMP[i] & ((uint64_t)1 << b)) {
                s0 ^= r->s[0];
                s1 ^= r->s[1];
                s2 ^= r->s[2];
                s3 ^= r->s[3];
            }
            bg_rng_next(r);
        }
    }
    r->s[0] = s0;
    r->s[1] = s1;
    r->s[2] = s2;
    r->s[3] = s3;
}

static void bg_rng_seed(bg_rng *r, uint64_t seed, int chain)
{
    uint64_t x = seed;
    uint64_t c = (uint64_t)(uint32_t)chain;
    uint64_t k;
    r->s[0] = bg_splitmix64(&x);
    r->s[1] = bg_splitmix64(&x);
    r->s[2] = bg_splitmix64(&x);
    r->s[3] = bg_splitmix64(&x);
    if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0) r->s[0] = 1;
    for (k = 0; k < c; k++) bg_rng_jump(r);
    r->has_spare = 0;
    r->spare = 0.0;
}

/* uniform in the open interval (0, 1) */
static inline double bg_unif(bg_rng *r)
{
    return ((double)(bg_rng_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* standard normal, Marsaglia polar method */
static double bg_normal(bg_rng *r)
{
    double u, v, s, m;
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    do {
        u = 2.0 * bg_unif(r) - 1.0;
        v = 2.0 * bg_unif(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    m = sqrt(-2.0 * log(s) / s);
    r->spare = v * m;
    r->has_spare = 1;
    return u * m;
}

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */
/* ------------------------------------------------------------------------ */

static inline double bg_logaddexp(double a, double b)
{
    double m, d;
    if (a == -INFINITY) return b;
    if (b == -INFINITY) return a;
    if (a > b) {
        m = a;
        d = b - a;
    } else {
        m = b;
        d = a - b;
    }
    return m + log1p(exp(d));
}

static int bg_all_finite(const double *x, int n)
{
    int i;
    for (i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

/* a state at an end of the trajectory */
typedef struct {
    double *q, *p, *g;
    double lp;
} bg_phase;

/* a (candidate) sample: position, gradient, log density, Hamiltonian */
typedef struct {
    double *q, *g;
    double lp, h;
} bg_prop;

static inline void bg_prop_swap(bg_prop *a, bg_prop *b)
{
    bg_prop t = *a;
    *a = *b;
    *b = t;
}

/* per-level scratch of build_tree */
typedef struct {
    double *p_init_end, *ps_init_end, *rho_init;
    double *p_final_beg, *ps_final_beg, *rho_final;
    bg_prop zfinal;
} bg_level;

typedef struct {
    int n;
    const double *invm;
    double eps; /* signed step of the current doubling */
    double H0;
    long n_leapfrog;
    double sum_metro;
    int divergent;
    bg_logp_fn f;
    void *ctx;
    bg_rng *rng;
    bg_level *lv;
    volatile int *stop; /* read before every leapfrog step: Ctrl-C within one gradient */
    int stopped;
} bg_tree;

/* One leapfrog step of z with step eps; writes invm*p into ps, returns the
   kinetic energy. */
static double bg_leapfrog(bg_logp_fn f, void *ctx, int n, const double *invm, double eps,
                          bg_phase *z, double *ps)
{
    const double half = 0.5 * eps;
    double *q = z->q, *p = z->p, *g = z->g;
    double k = 0.0;
    int i;
    for (i = 0; i < n; i++) {
        double pi = p[i] + half * g[i];
        p[i] = pi;
        q[i] += eps * invm[i] * pi;
    }
    z->lp = f(ctx, q, g);
    for (i = 0; i < n; i++) {
        double pi = p[i] + half * g[i];
        double si = invm[i] * pi;
        p[i] = pi;
        ps[i] = si;
        k += pi * si;
    }
    return 0.5 * k;
}

/* The generalized no-U-turn criterion on the merge of two adjacent trajectories, A then B in
   the direction of growth: over the whole merge (rho_a + rho_b, ends ps_a_beg / ps_b_end) and,
   as Stan does since 2.22, over A plus the first point of B and over the last point of A plus B.
   rho_out receives rho_a + rho_b (it may be rho_a itself).  Returns 1 when no check U-turns. */
static int bg_no_uturn_merged(int n, const double *rho_a, const double *rho_b, double *rho_out,
                              const double *ps_a_beg, const double *ps_a_end, const double *p_a_end,
                              const double *ps_b_beg, const double *p_b_beg, const double *ps_b_end)
{
    double a1 = 0, a2 = 0, b1 = 0, b2 = 0, c1 = 0, c2 = 0;
    int i;
    for (i = 0; i < n; i++) {
        const double ra = rho_a[i], rb = rho_b[i];
        const double rt = ra + rb;
        const double e1 = ra + p_b_beg[i];
        const double e2 = rb + p_a_end[i];
        rho_out[i] = rt;
        a1 += ps_a_beg[i] * rt;
        a2 += ps_b_end[i] * rt;
        b1 += ps_a_beg[i] * e1;
        b2 += ps_b_beg[i] * e1;
        c1 += ps_a_end[i] * e2;
        c2 += ps_b_end[i] * e2;
    }
    return a1 > 0.0 && a2 > 0.0 && b1 > 0.0 && b2 > 0.0 && c1 > 0.0 && c2 > 0.0;
}

/* Builds a subtree of 2^depth leapfrog steps from z in direction sign(t->eps).
   ps_beg/p_beg receive the (sharp) momentum at the first new state,
   ps_end/p_end at the last; rho is incremented by the sum of the momenta;
   *lsw is log-sum-exp-accumulated with the subtree's log weights; *zprop
   receives a state drawn uniformly-progressively from the subtree.
   Returns 1 if the subtree is valid (no divergence, no U-turn). */
static int bg_build_tree(bg_tree *t, int depth, bg_phase *z, bg_prop *zprop, double *ps_beg,
                         double *ps_end, double *rho, double *p_beg, double *p_end, double *lsw)
{
    const int n = t->n;
    size_t nb = (size_t)n * sizeof(double);
    int i;

    if (depth == 0) {
        double k, h, lw;
        const double *p = z->p;
        if (t->stop && *t->stop) {
            /* abandon the trajectory: an invalid subtree ends the transition at once */
            t->stopped = 1;
            return 0;
        }
        k = bg_leapfrog(t->f, t->ctx, n, t->invm, t->eps, z, ps_beg);
        h = k - z->lp;
        if (!isfinite(z->lp) || isnan(h)) h = INFINITY;
        t->n_leapfrog++;
        lw = t->H0 - h;
        if (-lw > BG_MAX_DELTA_H) t->divergent = 1;
        *lsw = bg_logaddexp(*lsw, lw);
        t->sum_metro += lw > 0.0 ? 1.0 : exp(lw);
        memcpy(zprop->q, z->q, nb);
        memcpy(zprop->g, z->g, nb);
        zprop->lp = z->lp;
        zprop->h = h;
        memcpy(ps_end, ps_beg, nb);
        memcpy(p_beg, p, nb);
        memcpy(p_end, p, nb);
        for (i = 0; i < n; i++) rho[i] += p[i];
        return !t->divergent;
    } else {
        bg_level *L = &t->lv[depth];
        double lsw_init = -INFINITY, lsw_final = -INFINITY, lsw_sub;

        memset(L->rho_init, 0, nb);
        if (!bg_build_tree(t, depth - 1, z, zprop, ps_beg, L->ps_init_end, L->rho_init, p_beg,
                           L->p_init_end, &lsw_init))
            return 0;

        memset(L->rho_final, 0, nb);
        if (!bg_build_tree(t, depth - 1, z, &L->zfinal, L->ps_final_beg, ps_end, L->rho_final,
                           L->p_final_beg, p_end, &lsw_final))
            return 0;

        lsw_sub = bg_logaddexp(lsw_init, lsw_final);
        *lsw = bg_logaddexp(*lsw, lsw_sub);

        /* uniform progressive sampling inside the subtree */
        if (lsw_final > lsw_sub || bg_unif(t->rng) < exp(lsw_final - lsw_sub))
            bg_prop_swap(zprop, &L->zfinal);

        /* U-turn checks over init + final (rho starts at zero: the callers clear it) */
        return bg_no_uturn_merged(n, L->rho_init, L->rho_final, rho, ps_beg, L->ps_init_end, L->p_init_end,
                                  L->ps_final_beg, L->p_final_beg, ps_end);
    }
}

/* ------------------------------------------------------------------------ */
/* workspace                                                                */
/* ------------------------------------------------------------------------ */

typedef struct {
    int n, max_depth;
    double *block;
    bg_level *lv;
    /* trajectory ends */
    bg_phase zf, zb;
    /* current sample and proposal */
    bg_prop cur, zprop;
    double *rho, *rho_new;
    double *p_fwd, *ps_fwd, *p_bck, *ps_bck;
    double *pA_end, *psA_end, *p_new_beg, *ps_new_beg;
    double *invm, *w_mean, *w_m2;
} bg_work;

#define BG_TOP_VECS 23
#define BG_LEVEL_VECS 8

static int bg_work_alloc(bg_work *w, int n, int max_depth)
{
    size_t nvec = BG_TOP_VECS + (size_t)BG_LEVEL_VECS * (size_t)(max_depth + 1);
    double *b;
    int d;
    w->n = n;
    w->max_depth = max_depth;
    w->block = (double *)malloc(nvec * (size_t)n * sizeof(double));
    w->lv = (bg_level *)malloc((size_t)(max_depth + 1) * sizeof(bg_level));
    if (!w->block || !w->lv) {
        free(w->block);
        free(w->lv);
        w->block = NULL;
        w->lv = NULL;
        return 0;
    }
    memset(w->block, 0, nvec * (size_t)n * sizeof(double));
    b = w->block;
#define BG_TAKE() (b += n, b - n)
    w->zf.q = BG_TAKE();
    w->zf.p = BG_TAKE();
    w->zf.g = BG_TAKE();
    w->zb.q = BG_TAKE();
    w->zb.p = BG_TAKE();
    w->zb.g = BG_TAKE();
    w->cur.q = BG_TAKE();
    w->cur.g = BG_TAKE();
    w->zprop.q = BG_TAKE();
    w->zprop.g = BG_TAKE();
    w->rho = BG_TAKE();
    w->rho_new = BG_TAKE();
    w->p_fwd = BG_TAKE();
    w->ps_fwd = BG_TAKE();
    w->p_bck = BG_TAKE();
    w->ps_bck = BG_TAKE();
    w->pA_end = BG_TAKE();
    w->psA_end = BG_TAKE();
    w->p_new_beg = BG_TAKE();
    w->ps_new_beg = BG_TAKE();
    w->invm = BG_TAKE();
    w->w_mean = BG_TAKE();
    w->w_m2 = BG_TAKE();
    for (d = 0; d <= max_depth; d++) {
        bg_level *L = &w->lv[d];
        L->p_init_end = BG_TAKE();
        L->ps_init_end = BG_TAKE();
        L->rho_init = BG_TAKE();
        L->p_final_beg = BG_TAKE();
        L->ps_final_beg = BG_TAKE();
        L->rho_final = BG_TAKE();
        L->zfinal.q = BG_TAKE();
        L->zfinal.g = BG_TAKE();
        L->zfinal.lp = 0.0;
        L->zfinal.h = 0.0;
    }
#undef BG_TAKE
    return 1;
}

static void bg_work_free(bg_work *w)
{
    free(w->block);
    free(w->lv);
    w->block = NULL;
    w->lv = NULL;
}

/* ------------------------------------------------------------------------ */
/* one NUTS transition from w->cur                                          */
/* ------------------------------------------------------------------------ */

typedef struct {
    double accept, energy, energy_error;
    long n_steps;
    int depth, divergent, stopped;
} bg_trans_info;

static void bg_transition(bg_work *w, bg_logp_fn f, void *ctx, bg_rng *rng, double eps,
                          int max_depth, volatile int *stop, bg_trans_info *info)
{
    const int n = w->n;
    const size_t nb = (size_t)n * sizeof(double);
    const double *invm = w->invm;
    bg_tree t;
    double k = 0.0, H0, lsw = 0.0;
    int i, depth = 0;

    /* momentum p ~ N(0, M), M = diag(1 / invm) */
    for (i = 0; i < n; i++) {
        double pi = bg_normal(rng) / sqrt(invm[i]);
        double si = invm[i] * pi;
        w->zf.p[i] = pi;
        w->ps_fwd[i] = si;
        k += pi * si;
    }
    H0 = 0.5 * k - w->cur.lp;
    w->cur.h = H0;

    memcpy(w->zf.q, w->cur.q, nb);
    memcpy(w->zf.g, w->cur.g, nb);
    w->zf.lp = w->cur.lp;
    memcpy(w->zb.q, w->cur.q, nb);
    memcpy(w->zb.g, w->cur.g, nb);
    memcpy(w->zb.p, w->zf.p, nb);
    w->zb.lp = w->cur.lp;
    memcpy(w->p_fwd, w->zf.p, nb);
    memcpy(w->p_bck, w->zf.p, nb);
    memcpy(w->rho, w->zf.p, nb);
    memcpy(w->ps_bck, w->ps_fwd, nb);

    t.n = n;
    t.invm = invm;
    t.H0 = H0;
    t.n_leapfrog = 0;
    t.sum_metro = 0.0;
    t.divergent = 0;
    t.f = f;
    t.ctx = ctx;
    t.rng = rng;
    t.lv = w->lv;
    t.stop = stop;
    t.stopped = 0;

    while (depth < max_depth) {
        double lsw_new = -INFINITY;
        const double *psA_beg, *psB_end;
        int valid;
        memset(w->rho_new, 0, nb);
        if (bg_unif(rng) > 0.5) {
            /* extend forward: old tree = A (left), new subtree = B (right) */
            memcpy(w->pA_end, w->p_fwd, nb);
            memcpy(w->psA_end, w->ps_fwd, nb);
            t.eps = eps;
            valid = bg_build_tree(&t, depth, &w->zf, &w->zprop, w->ps_new_beg, w->ps_fwd,
                                  w->rho_new, w->p_new_beg, w->p_fwd, &lsw_new);
            psA_beg = w->ps_bck;
            psB_end = w->ps_fwd;
        } else {
            /* extend backward: old tree = A (right), new subtree = B (left) */
            memcpy(w->pA_end, w->p_bck, nb);
            memcpy(w->psA_end, w->ps_bck, nb);
            t.eps = -eps;
            valid = bg_build_tree(&t, depth, &w->zb, &w->zprop, w->ps_new_beg, w->ps_bck,
                                  w->rho_new, w->p_new_beg, w->p_bck, &lsw_new);
            psA_beg = w->ps_fwd;
            psB_end = w->ps_bck;
        }
        if (!valid) break;
        ++depth;

        /* biased progressive sampling */
        if (lsw_new > lsw || bg_unif(rng) < exp(lsw_new - lsw)) bg_prop_swap(&w->cur, &w->zprop);
        lsw = bg_logaddexp(lsw, lsw_new);

        /* U-turn checks over the merged tree (old tree A, new subtree B) */
        if (!bg_no_uturn_merged(n, w->rho, w->rho_new, w->rho, psA_beg, w->psA_end, w->pA_end,
                                w->ps_new_beg, w->p_new_beg, psB_end))
            break;
    }

    info->n_steps = t.n_leapfrog;
    info->accept = t.n_leapfrog > 0 ? t.sum_metro / (double)t.n_leapfrog : 0.0;
    info->depth = depth;
    info->divergent = t.divergent;
    info->energy = w->cur.h;
    info->energy_error = w->cur.h - H0;
    info->stopped = t.stopped;
}

/* ------------------------------------------------------------------------ */
/* step-size heuristic (Stan's init_stepsize)                               */
/* ------------------------------------------------------------------------ */

/* Doubles or halves *eps until the acceptance of one leapfrog step from w->cur crosses 0.8.
   Fails as Stan's does, instead of clamping and carrying on: a step size above 1e7 still
   accepted means the density is flat in every direction of the metric (an improper
   posterior; BG_ERR_STEP_HUGE), one halved to 0 still rejected means a non-finite density or
   gradient at any distance from the point (BG_ERR_STEP_ZERO).  No cap on the iterations: eps
   moves monotonically, so about 1,100 halvings reach 0 and 24 doublings of 1 pass 1e7. */
static int bg_init_stepsize(bg_work *w, bg_logp_fn f, void *ctx, bg_rng *rng, double *eps_io,
                            volatile int *stop)
{
    const int n = w->n;
    const size_t nb = (size_t)n * sizeof(double);
    const double *invm = w->invm;
    const double lg08 = log(0.8);
    double eps = *eps_io;
    int direction = 0, iter, i;

    if (!(eps > 0.0) || !isfinite(eps)) eps = 1.0;
    for (iter = 0;; iter++) {
        double k0 = 0.0, k1, H0, h, dH;
        if (stop && *stop) return BG_STOPPED;
        for (i = 0; i < n; i++) {
            double pi = bg_normal(rng) / sqrt(invm[i]);
            w->zf.p[i] = pi;
            k0 += pi * pi * invm[i];
        }
        H0 = 0.5 * k0 - w->cur.lp;
        memcpy(w->zf.q, w->cur.q, nb);
        memcpy(w->zf.g, w->cur.g, nb);
        k1 = bg_leapfrog(f, ctx, n, invm, eps, &w->zf, w->ps_fwd);
        h = k1 - w->zf.lp;
        if (!isfinite(w->zf.lp) || isnan(h)) h = INFINITY;
        dH = H0 - h;
        if (iter == 0) {
            direction = dH > lg08 ? 1 : -1;
            continue;
        }
        if (direction == 1 && !(dH > lg08)) break;
        if (direction == -1 && !(dH < lg08)) break;
        eps = direction == 1 ? 2.0 * eps : 0.5 * eps;
        *eps_io = eps;
        if (eps > 1e7) return BG_ERR_STEP_HUGE;
        if (eps == 0.0) return BG_ERR_STEP_ZERO;
    }
    *eps_io = eps;
    return BG_OK;
}

/* ------------------------------------------------------------------------ */
/* dual averaging                                                           */
/* ------------------------------------------------------------------------ */

typedef struct {
    double mu, s_bar, x_bar, delta, gamma, t0, kappa;
    long counter;
} bg_dual;

static void bg_dual_restart(bg_dual *d, double eps)
{
    d->mu = log(10.0 * eps);
    d->s_bar = 0.0;
    d->x_bar = 0.0;
    d->counter = 0;
}

/* returns the new step size */
static double bg_dual_learn(bg_dual *d, double accept)
{
    double eta, x, x_eta, c;
    if (accept > 1.0) accept = 1.0;
    if (!(accept >= 0.0)) accept = 0.0; /* NaN guard */
    ++d->counter;
    c = (double)d->counter;
    eta = 1.0 / (c + d->t0);
    d->s_bar = (1.0 - eta) * d->s_bar + eta * (d->delta - accept);
    x = d->mu - d->s_bar * sqrt(c) / d->gamma;
    x_eta = pow(c, -d->kappa);
    d->x_bar = (1.0 - x_eta) * d->x_bar + x_eta * x;
    return exp(x);
}

/* ------------------------------------------------------------------------ */
/* driver                                                                   */
/* ------------------------------------------------------------------------ */

/* the schedule of cfg (bayes_glmm.bayes.adaptation): window ends strictly increasing, after
   adapt_start, before the end of the warm-up */
static int bg_schedule_ok(const bg_nuts_cfg *cfg)
{
    int k;
    if (cfg->n_windows < 0) return 0;
    if (cfg->n_windows == 0) return 1;
    if (!cfg->window_ends || cfg->adapt_start < 0) return 0;
    for (k = 0; k < cfg->n_windows; k++) {
        int lo = k == 0 ? cfg->adapt_start : cfg->window_ends[k - 1] + 1;
        if (cfg->window_ends[k] < lo || cfg->window_ends[k] >= cfg->tune) return 0;
    }
    return 1;
}

/* entry i of the initial inverse metric: cfg's where given, finite and positive, else 1 */
static double bg_init_invm(const bg_nuts_cfg *cfg, int i)
{
    double v = cfg->init_inv_mass ? cfg->init_inv_mass[i] : 1.0;
    return (isfinite(v) && v > 0.0) ? v : 1.0;
}

int bg_nuts_sample(bg_logp_fn f, void *ctx, const bg_nuts_cfg *cfg, const double *init,
                   double *draws_out, double *stats_out, double *inv_mass_out,
                   volatile int *progress, volatile int *stop)
{
    bg_work w;
    bg_rng rng;
    bg_dual da;
    int n, tune, ndraws, max_depth, i, it, total, found, attempt, rc = BG_OK;
    size_t nb;
    double eps;
    /* windowed adaptation: the schedule of cfg, window k ends after iteration window_ends[k] */
    int win = 0, last_end;
    long w_count = 0;
    double t_start, t_tune_end;

    if (!f || !cfg || cfg->ndim <= 0 || cfg->tune < 0 || cfg->draws < 0 || !bg_schedule_ok(cfg))
        return BG_ERR_ARGS;
    n = cfg->ndim;
    tune = cfg->tune;
    ndraws = cfg->draws;
    max_depth = cfg->max_depth > 0 ? cfg->max_depth : 10;
    if (max_depth > 30) max_depth = 30;
    nb = (size_t)n * sizeof(double);
    total = tune + ndraws;
    last_end = cfg->n_windows > 0 ? cfg->window_ends[cfg->n_windows - 1] : -1;
    if (progress) *progress = 0;

    if (!bg_work_alloc(&w, n, max_depth)) return BG_ERR_ARGS;
    t_start = t_tune_end = bg_cpu_seconds();
    it = 0;
    bg_rng_seed(&rng, cfg->seed, cfg->chain);
    for (i = 0; i < n; i++) w.invm[i] = bg_init_invm(cfg, i);

    /* ---- initial point ---- */
    found = 0;
    if (init) {
        memcpy(w.cur.q, init, nb);
        if (bg_all_finite(w.cur.q, n)) {
            w.cur.lp = f(ctx, w.cur.q, w.cur.g);
            found = isfinite(w.cur.lp) && bg_all_finite(w.cur.g, n);
        }
    }
    for (attempt = 0; !found && attempt < 100; attempt++) {
        for (i = 0; i < n; i++) w.cur.q[i] = 4.0 * bg_unif(&rng) - 2.0;
        w.cur.lp = f(ctx, w.cur.q, w.cur.g);
        found = isfinite(w.cur.lp) && bg_all_finite(w.cur.g, n);
    }
    if (!found) {
        rc = BG_ERR_INIT;
        goto done;
    }

    /* ---- step size ---- */
    eps = 1.0;
    if (cfg->init_step > 0.0 && isfinite(cfg->init_step))
        eps = cfg->init_step;
    else if ((rc = bg_init_stepsize(&w, f, ctx, &rng, &eps, stop)) != BG_OK)
        goto done;
    da.delta = (cfg->target_accept > 0.0 && cfg->target_accept < 1.0) ? cfg->target_accept : 0.8;
    da.gamma = 0.05;
    da.t0 = 10.0;
    da.kappa = 0.75;
    bg_dual_restart(&da, eps);
    memset(w.w_mean, 0, nb);
    memset(w.w_m2, 0, nb);

    for (it = 0; it < total; it++) {
        bg_trans_info info;
        if (stop && *stop) {
            rc = BG_STOPPED;
            break;
        }
        if (it == tune) t_tune_end = bg_cpu_seconds();
        if (it == tune && tune > 0) {
            /* end of warm-up: final step size */
            if (da.counter > 0) eps = exp(da.x_bar);
        }

        bg_transition(&w, f, ctx, &rng, eps, max_depth, stop, &info);
        if (info.stopped) {
            /* a trajectory cut short is no draw: keep nothing of it */
            rc = BG_STOPPED;
            break;
        }

        if (it >= tune) {
            size_t r = (size_t)(it - tune);
            double *s = stats_out ? stats_out + r * BG_NSTATS : NULL;
            if (draws_out) memcpy(draws_out + r * (size_t)n, w.cur.q, nb);
            if (s) {
                s[BG_LP] = w.cur.lp;
                s[BG_ACCEPT] = info.accept;
                s[BG_STEP] = eps;
                s[BG_DEPTH] = (double)info.depth;
                s[BG_NSTEPS] = (double)info.n_steps;
                s[BG_DIVERGING] = info.divergent ? 1.0 : 0.0;
                s[BG_ENERGY] = info.energy;
                s[BG_ENERGY_ERROR] = info.energy_error;
            }
        } else {
            /* ---- warm-up adaptation ---- */
            eps = bg_dual_learn(&da, info.accept);
            if (it >= cfg->adapt_start && it <= last_end) {
                double c;
                ++w_count;
                c = (double)w_count;
                for (i = 0; i < n; i++) {
                    double x = w.cur.q[i];
                    double d = x - w.w_mean[i];
                    w.w_mean[i] += d / c;
                    w.w_m2[i] += d * (x - w.w_mean[i]);
                }
            }
            if (win < cfg->n_windows && it == cfg->window_ends[win]) {
                ++win;
                /* a window of one draw has no variance: keep the metric (Stan would shrink the
                   old one towards 1e-3) */
                if (w_count >= 2) {
                    double c = (double)w_count;
                    double a = c / (c + 5.0), b = 1e-3 * (5.0 / (c + 5.0));
                    int bad = 0;
                    for (i = 0; i < n; i++) {
                        /* with an initial metric: shrink towards it, not towards 1e-3 */
                        double v = a * (w.w_m2[i] / (c - 1.0))
                                   + (cfg->init_inv_mass ? (1.0 - a) * bg_init_invm(cfg, i) : b);
                        w.w_mean[i] = v; /* staged: the metric changes only when all are valid */
                        if (!(isfinite(v) && v > 0.0)) bad = 1;
                    }
                    if (bad) {
                        /* positions so far out that their variance overflows: report the
                           estimate (its non-finite entries name the coordinates) */
                        if (inv_mass_out) memcpy(inv_mass_out, w.w_mean, nb);
                        rc = BG_ERR_METRIC;
                        if (cfg->state_out) memcpy(cfg->state_out, w.cur.q, nb);
                        bg_work_free(&w);
                        return rc;
                    }
                    memcpy(w.invm, w.w_mean, nb);
                }
                w_count = 0;
                memset(w.w_mean, 0, nb);
                memset(w.w_m2, 0, nb);
                if ((rc = bg_init_stepsize(&w, f, ctx, &rng, &eps, stop)) != BG_OK) break;
                bg_dual_restart(&da, eps);
            }
        }
        if (progress) *progress = it + 1;
    }

done:
    if (cfg->seconds_out) {
        double t_end = bg_cpu_seconds();
        if (it < tune || tune == total) t_tune_end = t_end; /* stopped in (or only) warm-up */
        cfg->seconds_out[0] = t_tune_end - t_start;
        cfg->seconds_out[1] = t_end - t_tune_end;
    }
    if (cfg->state_out) memcpy(cfg->state_out, w.cur.q, nb);
    if (inv_mass_out) memcpy(inv_mass_out, w.invm, nb);
    bg_work_free(&w);
    return rc;
}

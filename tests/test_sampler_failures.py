"""The native sampler's failure modes are loud, as Stan's.

* the warm-up schedule (bayes.adaptation.windows) equals Stan's rules for every tune 1..1000,
  and the C engine runs the schedule it is given;
* the engine's failure codes (step-size search up past 1e7 / down to 0, a non-finite metric,
  a stop) on purpose-built densities, and their errors naming the parameters;
* an improper posterior (separation under a Flat prior) is refused before sampling;
* E-BFMI and tree-depth saturation are warned after sampling;
* Ctrl-C stops a long run within a second with KeyboardInterrupt, never reported complete.
"""
import ctypes
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm.bayes import adaptation, failures, native
from bayes_glmm.bayes.density import GlmmDensity
from bayes_glmm.bayes.sampling import diagnose, ebfmi

needs_cc = pytest.mark.skipif(not native.available(), reason="no C compiler")
CSRC = os.path.join(os.path.dirname(native.__file__), "csrc")


# ---------------------------------------------------------------- the schedule
def _stan_reference(tune, init_buffer=75, term_buffer=50, base_window=25):
    """Stan's windowed_adaptation as an iteration-by-iteration state machine (the documented
    rules, written independently of bayes.adaptation): (init, [window sizes], term)."""
    if tune < 20:
        return None
    if init_buffer + base_window + term_buffer > tune:
        init_buffer, term_buffer = tune * 15 // 100, tune // 10
        base_window = tune - init_buffer - term_buffer
    size, next_end = base_window, init_buffer + base_window - 1
    last = tune - term_buffer - 1
    sizes, count = [], 0
    for it in range(tune):
        if init_buffer <= it <= last:
            count += 1
        if it == next_end:
            sizes.append(count)
            count = 0
            if next_end != last:
                size *= 2
                next_end = it + size
                if next_end != last and next_end + 2 * size >= last + 1:
                    next_end = last
    return init_buffer, sizes, term_buffer


def test_windows_equal_stan_rules_for_every_tune():
    for tune in range(1, 1001):
        s = adaptation.windows(tune)
        ref = _stan_reference(tune)
        if ref is None:
            assert s.windows == () and s.init_buffer == tune and s.term_buffer == 0, tune
            continue
        init, sizes, term = ref
        assert (s.init_buffer, [b - a for a, b in s.windows], s.term_buffer) == (init, sizes, term), tune
        # contiguous, from the end of the initial buffer to the start of the terminal one
        starts = [a for a, _ in s.windows]
        assert starts[0] == init and s.windows[-1][1] == tune - term
        assert all(b == a2 for (_, b), (a2, _) in zip(s.windows, s.windows[1:]))
        assert adaptation.window_ends(s) == [b - 1 for _, b in s.windows]


def test_windows_known_values():
    assert [b - a for a, b in adaptation.windows(1000).windows] == [25, 50, 100, 200, 500]
    assert adaptation.windows(1000)[::2] == (75, 50)
    assert adaptation.windows(100) == adaptation.Schedule(15, ((15, 90),), 10)
    assert [b - a for a, b in adaptation.windows(160).windows] == [25, 10]  # a short last window
    assert [b - a for a, b in adaptation.windows(151).windows] == [25, 1]
    assert adaptation.windows(19).windows == () and adaptation.windows(0).windows == ()
    with pytest.raises(ValueError, match="tune"):
        adaptation.windows(-1)


# ---------------------------------------------------------------- the engine on test densities
HARNESS = r"""
#include <math.h>
#include "nuts.h"
typedef struct { int n; long calls; long stop_after; volatile int *stop; } hctx;
/* 0: flat (improper); 1: finite at the origin only; 2: N(0, 1e155^2) (its variance overflows) */
static double dens(int which, hctx *c, const double *x, double *g) {
    double lp = 0.0; int i, at0 = 1;
    c->calls++;
    if (c->stop && c->calls == c->stop_after) *c->stop = 1;
    for (i = 0; i < c->n; i++) {
        g[i] = 0.0;
        if (x[i] != 0.0) at0 = 0;
        if (which == 2) { double s = x[i] * 1e-155; lp -= 0.5 * s * s; g[i] = -s * 1e-155; }
        if (which == 3) { lp -= 0.5 * x[i] * x[i]; g[i] = -x[i]; }
    }
    if (which == 1) return at0 ? 0.0 : NAN;
    return lp;
}
static double d0(void *c, const double *x, double *g) { return dens(0, (hctx *)c, x, g); }
static double d1(void *c, const double *x, double *g) { return dens(1, (hctx *)c, x, g); }
static double d2(void *c, const double *x, double *g) { return dens(2, (hctx *)c, x, g); }
static double d3(void *c, const double *x, double *g) { return dens(3, (hctx *)c, x, g); }
int run(int which, const bg_nuts_cfg *cfg, const double *init, double *draws, double *stats,
        double *invm, long stop_after, volatile int *stop, long *calls_after_stop) {
    bg_logp_fn f[4] = {d0, d1, d2, d3};
    hctx c = {cfg->ndim, 0, stop_after, stop};
    int rc = bg_nuts_sample(f[which], &c, cfg, init, draws, stats, invm, 0, stop);
    *calls_after_stop = stop_after > 0 ? c.calls - stop_after : 0;
    return rc;
}
"""


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    d = tmp_path_factory.mktemp("harness")
    (d / "h.c").write_text(HARNESS)
    out = str(d / "h.so")
    subprocess.run([native.compiler(), "-O2", "-std=c99", "-fPIC", "-shared", "-I", CSRC, str(d / "h.c"),
                    os.path.join(CSRC, "nuts.c"), "-o", out, "-lm"], check=True)
    lib = ctypes.CDLL(out)
    lib.run.restype = ctypes.c_int
    lib.run.argtypes = [ctypes.c_int] + [ctypes.c_void_p] * 5 + [ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]

    def call(which, n, tune, draws, init=None, init_step=-1.0, stop_after=0):
        sched = adaptation.windows(tune)
        ends = adaptation.window_ends(sched)
        ends_c = (ctypes.c_int * max(1, len(ends)))(*ends)
        state = np.zeros(n)
        cfg = native._Cfg(n, tune, draws, 10, 0.8, init_step, 5, 0, sched.init_buffer, len(ends),
                          ctypes.cast(ends_c, ctypes.POINTER(ctypes.c_int)), state.ctypes.data)
        x0 = np.zeros(n) if init is None else np.asarray(init, dtype=float)
        dr, st, im = np.zeros((draws, n)), np.zeros((draws, 8)), np.zeros(n)
        stop, after = ctypes.c_int(0), ctypes.c_long(0)
        rc = lib.run(which, ctypes.byref(cfg), x0.ctypes.data, dr.ctypes.data, st.ctypes.data, im.ctypes.data,
                     stop_after, ctypes.byref(stop), ctypes.byref(after))
        return rc, dict(draws=dr, inv_mass=im, state=state, calls_after_stop=after.value)

    return call


def test_return_codes_match_the_header():
    with open(os.path.join(CSRC, "nuts.h")) as f:
        h = dict((k, int(v)) for k, v in re.findall(r"\bBG_(\w+) = (\d+)", f.read()))
    assert (h["OK"], h["ERR_INIT"], h["STOPPED"], h["ERR_ARGS"], h["ERR_STEP_HUGE"], h["ERR_STEP_ZERO"],
            h["ERR_METRIC"]) == (failures.RC_OK, failures.RC_INIT, failures.RC_STOPPED, failures.RC_ARGS,
                                 failures.RC_STEP_HUGE, failures.RC_STEP_ZERO, failures.RC_METRIC)


@needs_cc
def test_engine_fails_as_stan(harness):
    # a flat density: steps above 1e7 still accepted -> "posterior is improper" (was: clamped at 1e7)
    rc, _ = harness(0, 3, 100, 10)
    assert rc == failures.RC_STEP_HUGE
    # finite only at the starting point: the step size halves to 0 (was: 1e-300 and carry on)
    rc, out = harness(1, 8, 100, 10)
    assert rc == failures.RC_STEP_ZERO and np.all(out["state"] == 0.0)
    # draws of SD 1e155: the first window's variance overflows (was: the entry skipped silently)
    rc, out = harness(2, 2, 100, 10, init_step=1e155)
    assert rc == failures.RC_METRIC and not np.all(np.isfinite(out["inv_mass"]))
    # a proper density samples
    rc, out = harness(3, 2, 100, 50)
    assert rc == failures.RC_OK and 0.3 < out["draws"].std() < 3


@needs_cc
def test_stop_is_read_before_every_leapfrog_step(harness):
    """A stop raised inside a trajectory ends the run after no further gradient."""
    for after in (7, 150, 1000):
        rc, out = harness(3, 50, 200, 1000, stop_after=after)
        assert rc == failures.RC_STOPPED and out["calls_after_stop"] == 0


def _sep_data(threshold_at_mean):
    rng = np.random.default_rng(3)
    x = rng.normal(size=60)
    cut = x.mean() if threshold_at_mean else 0.3
    return pd.DataFrame({"x": x, "y": (x > cut).astype(int), "g": np.repeat([f"g{i}" for i in range(6)], 10)})


def _density(df, formula="y ~ x + (1 | g)", family="bernoulli", **kw):
    m = bg.GLMM(formula, df, family=family, **kw)
    return GlmmDensity(m.spec, m.resolved_priors, m.centered_terms)


@needs_cc
def test_native_sample_runs_the_schedule_it_is_given(monkeypatch):
    d = _density(_sep_data(False).assign(y=lambda f: (f.x + np.random.default_rng(0).normal(size=60) > 0).astype(int)))
    nm = native.NativeModel(d)
    x_default = nm.sample(20, 120, 1, seed=3)[0]
    # no metric windows: other draws (the engine follows the schedule handed to it)
    monkeypatch.setattr(adaptation, "windows", lambda tune: adaptation.Schedule(tune, (), 0))
    x_none = nm.sample(20, 120, 1, seed=3)[0]
    assert not np.array_equal(x_default, x_none)
    # a schedule the engine rejects is an error, never unfilled arrays returned as draws
    monkeypatch.setattr(adaptation, "windows", lambda tune: adaptation.Schedule(10, ((10, tune + 5),), 0))
    with pytest.raises(failures.SamplerError) as e:
        nm.sample(20, 120, 2, seed=3)
    assert e.value.code == failures.RC_ARGS and e.value.chains == [0, 1]


def test_errors_name_the_parameters():
    d = _density(_sep_data(False))
    names = failures.coordinate_names(d)
    assert len(names) == d.ndim == len(set(names))
    assert names[:3] == ["Intercept", "x", "log(sd_g)"] and names[3] == "u_g[g0]"
    state = np.zeros(d.ndim)
    state[1] = 4e6
    e = failures.engine_error(failures.RC_STEP_HUGE, [1], names, state=state, inv_mass=np.ones(d.ndim))
    assert isinstance(e, RuntimeError) and "posterior may be improper" in str(e)
    assert e.parameters[0] == "x" and "proper prior" in str(e)
    v = np.ones(d.ndim)
    v[0] = np.inf
    e = failures.engine_error(failures.RC_METRIC, [0], names, inv_mass=v)
    assert e.parameters == ["Intercept"] and "Intercept" in str(e)
    g = np.zeros(d.ndim)
    g[2] = np.nan
    e = failures.engine_error(failures.RC_STEP_ZERO, [0], names, state=state, grad=g)
    assert e.parameters == ["log(sd_g)"] and "step size" in str(e)


# ---------------------------------------------------------------- improper posteriors
def test_improper_posterior_refused_before_sampling():
    df = _sep_data(True)  # x alone (centered) separates the response
    m = bg.GLMM("y ~ x + (1 | g)", df, family="bernoulli", priors={"x": bg.Prior("Flat")})
    with pytest.raises(ValueError, match=r"posterior is improper.*\bx\b.*Normal"):
        m.sample(draws=10, tune=10, chains=1, sampler="no-such-sampler")
    # the default (proper) prior bounds it: the warning, then the bad sampler name
    m = bg.GLMM("y ~ x + (1 | g)", df, family="bernoulli")
    with pytest.warns(UserWarning, match="the prior, not the data"), pytest.raises(ValueError, match="sampler"):
        m.sample(draws=10, tune=10, chains=1, sampler="no-such-sampler")


def test_separation_needing_a_proper_intercept_is_proper():
    """The separating direction also moves the (centered) intercept, whose Normal prior bounds
    it: a proper posterior, only the warning.  With a Flat intercept too: refused."""
    df = _sep_data(False)
    m = bg.GLMM("y ~ x + (1 | g)", df, family="bernoulli", priors={"x": bg.Prior("Flat")})
    with pytest.warns(UserWarning, match="complete separation"), pytest.raises(ValueError, match="sampler"):
        m.sample(draws=10, tune=10, chains=1, sampler="no-such-sampler")
    m = m.with_priors({"Intercept": bg.Prior("Flat")})
    with pytest.raises(ValueError, match="posterior is improper.*Intercept, x"):
        m.sample(draws=10, tune=10, chains=1, sampler="no-such-sampler")


def test_constant_counts_with_a_flat_intercept_refused():
    df = pd.DataFrame({"y": np.zeros(30, int), "g": np.repeat(["a", "b", "c"], 10)})
    m = bg.GLMM("y ~ 1 + (1 | g)", df, family="poisson", priors={"Intercept": bg.Prior("Flat")})
    with pytest.raises(ValueError, match="improper.*Intercept"):
        m.sample(draws=10, tune=10, chains=1, sampler="no-such-sampler")


# ---------------------------------------------------------------- E-BFMI and tree depth
def test_ebfmi_values():
    rng = np.random.default_rng(0)
    iid = rng.normal(size=(2, 4000))
    assert np.allclose(ebfmi(iid), 2.0, atol=0.1)  # independent energies: 2 var / var
    walk = np.cumsum(rng.normal(size=(1, 4000)), axis=1)  # energies that barely move
    assert ebfmi(walk)[0] < 0.01
    assert np.isnan(ebfmi(np.ones((1, 10))))[0]


def test_diagnose_warns_on_ebfmi_and_tree_depth():
    import arviz as az

    rng = np.random.default_rng(1)
    energy = np.stack([rng.normal(size=500), np.cumsum(rng.normal(size=500))])
    hit = np.zeros((2, 500), bool)
    hit[0, :40] = True
    idata = az.from_dict(posterior={"beta": rng.normal(size=(2, 500))},
                         sample_stats={"energy": energy, "reached_max_treedepth": hit})
    msgs = " ".join(diagnose(idata, ["beta"], ess_min=0))
    assert re.search(r"E-BFMI below 0.3 in chain\(s\) 1 \(0\.\d\d\)", msgs) and "chain(s) 0" not in msgs
    assert "40 of 1000 transitions (4.0%) hit the maximum tree depth" in msgs


@needs_cc
def test_native_fit_warns_at_the_tree_depth_limit():
    df = _sep_data(False).assign(y=lambda f: f.x * 0.5 + np.random.default_rng(2).normal(size=60))
    m = bg.GLMM("y ~ x + (1 | g)", df)
    with pytest.warns(UserWarning, match=r"hit the maximum tree depth of 1 \(2\^1"):
        fit = m.sample(draws=100, tune=100, chains=1, random_seed=1, sampler="native", max_depth=1,
                       progressbar=False, log_likelihood=False)
    assert bool(fit.idata.sample_stats["reached_max_treedepth"].any())


# ---------------------------------------------------------------- Ctrl-C
CHILD = textwrap.dedent("""
    import signal, time
    import numpy as np, pandas as pd
    import bayes_glmm as bg
    from bayes_glmm.bayes import native
    from bayes_glmm.bayes.density import GlmmDensity
    rng = np.random.default_rng(0)
    n = 20000
    g = rng.integers(0, 200, n)
    df = pd.DataFrame({"x": rng.normal(size=n), "g": g.astype(str)})
    df["y"] = 0.5 * df.x + rng.normal(size=200)[g] + rng.normal(size=n)
    m = bg.GLMM("y ~ x + (1 | g)", df)
    nm = native.NativeModel(GlmmDensity(m.spec, m.resolved_priors, m.centered_terms))
    seen = {}
    def on_sigint(sig, frame):  # Python's own handler, timed
        seen["t"] = time.perf_counter()
        signal.default_int_handler(sig, frame)
    signal.signal(signal.SIGINT, on_sigint)
    print("READY", flush=True)
    try:
        nm.sample(200000, 200, 2, seed=1, progressbar=True)
        print("RETURNED", flush=True)
    except KeyboardInterrupt:
        print("LATENCY", time.perf_counter() - seen["t"], flush=True)
        raise
""")


@needs_cc
def test_ctrl_c_stops_within_a_second():
    """SIGINT during 2 x 200,000 draws: sample() raises KeyboardInterrupt within a second (the
    chains stop within one gradient and nothing is copied; it took 5-9 s), and the progress
    line says the run was interrupted (it said 400400/400400).  The interpreter's own exit
    after the traceback (PyMC's teardown) is not timed."""
    p = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "READY"
        time.sleep(2.0)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode != 0 and "RETURNED" not in out
    assert "KeyboardInterrupt" in err
    assert "interrupted, no draws returned" in err and "400400/400400" not in err
    latency = float(re.search(r"LATENCY ([0-9.e-]+)", out).group(1))
    assert latency < 1.0, latency


# ------------------------------------------------------------ numpyro's starting points
def test_numpyro_starts_are_redrawn_until_finite():
    """numpyro stays at a start with an infinite potential (every transition divergent), so
    the jittered starts are redrawn until potential and gradient are finite, or it raises."""
    from bayes_glmm.bayes.failures import SamplerError
    from bayes_glmm.bayes.jax_backend import _finite_starts

    x0 = np.zeros(3)

    def finite_near_zero(x):  # finite only within 0.3 of the initial point, as 1/eta near eta = 0
        ok = np.all(np.abs(x) < 0.3)
        return (0.5 * x @ x if ok else np.inf), (x if ok else np.full(3, np.nan))

    starts = _finite_starts(finite_near_zero, x0, 4, 1.0, seed=1)
    assert starts.shape == (4, 3) and np.all(np.abs(starts) < 0.3)
    assert len({tuple(s) for s in starts}) == 4  # still jittered, one start per chain
    # the usual case keeps the old starting points: x0 + U(-jitter, jitter), row by row
    every = _finite_starts(lambda x: (0.0, x), x0, 2, 1.0, seed=5)
    np.testing.assert_array_equal(every, np.random.default_rng(5).uniform(-1.0, 1.0, size=(2, 3)))
    with pytest.raises(SamplerError, match="no starting point with a finite log-density"):
        _finite_starts(lambda x: (np.inf, x), x0, 2, 1.0, seed=1)


# ------------------------------------------------------------ the native/NumPy starting points
def test_finite_start_halves_the_jitter_only_when_needed():
    from bayes_glmm.bayes.density import START_TRIES, finite_start

    x0, jit = np.array([1.0, 0.0]), np.array([-0.9, 0.6])
    quad = lambda x: (-0.5 * x @ x, -x)  # noqa: E731
    np.testing.assert_array_equal(finite_start(x0, jit, quad), x0 + jit)  # finite: the plain start
    inv = lambda x: ((np.log(x[0]), np.array([1 / x[0], 0.0])) if x[0] > 0.5 else (-np.inf, np.zeros(2)))  # noqa: E731
    x = finite_start(x0, jit, inv)
    assert x[0] > 0.5 and np.allclose(x, x0 + jit / 2)  # halved once: 0.1 fails, 0.55 is inside
    never = lambda x: (np.nan, x)  # noqa: E731
    np.testing.assert_array_equal(finite_start(x0, jit, never), x0 + jit * 0.5 ** (START_TRIES - 1))


@pytest.mark.skipif(not native.available(), reason="no C compiler")
def test_centred_inverse_link_gamma_starts_inside_the_support():
    """Centred effects jittered by U(-1, 1) put most groups' eta = 1/mu below 0 (log-density
    -inf): every start failed with "no starting point".  The jitter is halved until finite."""
    rng = np.random.default_rng(702)
    g = np.repeat(np.arange(30), 10)
    x = rng.normal(size=300)
    mu = 1.0 / (1.0 + 0.1 * x + rng.normal(scale=0.1, size=30)[g])
    df = pd.DataFrame({"y": rng.gamma(5.0, mu / 5.0), "x": x, "g": g})
    m = bg.GLMM("y ~ x + (1 | g)", df, family="gamma", link="inverse", centered=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = m.sample(draws=100, tune=100, chains=2, sampler="native", random_seed=1, progressbar=False)
    assert np.isfinite(post.idata.sample_stats["lp"].values).all()
    assert post.fixef["(Intercept)"] == pytest.approx(1.0, abs=0.15)

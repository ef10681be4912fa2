"""The native sampler's build (issue 16): no user text in the generated C, no change to the
process's floating-point state, and a private cache that verifies, heals and never blocks.

* Names (columns, terms, factor levels, prior keys, weights/offset/trials columns) never
  reach the C: hostile names -- comment closers, newlines, ``#include``, quotes,
  backslashes, Unicode, 10,000 characters -- give the very source a plainly named model
  gives, and the same draws; :func:`~bayes_glmm.bayes.codegen.check_c_source` refuses
  anything outside the package's vocabulary.
* Loading and running a model leaves the FP control state (MXCSR's FTZ/DAZ and rounding,
  the x87 control word; FPCR on arm64) as it was: read exactly, in a fresh process.
* A truncated, garbage or foreign library under the expected name is rebuilt, never
  loaded (those loads run in a subprocess: before, they killed the process); a cache that
  cannot be written or trusted gives way to a private temporary folder with one warning.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest

import bayes_glmm as bg
from bayes_glmm.bayes import build, native
from bayes_glmm.bayes.codegen import Emitter, _lit, check_c_source
from bayes_glmm.bayes.density import GlmmDensity
from bayes_glmm.priors import Prior

if not native.available():  # pragma: no cover - CI and the developers' machines have cc
    pytest.skip("no C compiler", allow_module_level=True)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HOSTILE = {
    "comment": "g */ int injected = 1; /* ",
    "newline": "a\nint injected2 = 2;\n",
    "include": '#include <stdlib.h>\n#define exp system',
    "quotes": "q\"u'o\"te",
    "backslash": "b\\s\\\"\\n",
    "unicode": "ünï©ødé_σ_名",
    "long": "L" * 10_000,
}
#: the roles a name can play: response parts and trials (S, N), predictor X, factor F and its
#: levels, grouping factor G and its levels, weights W, offset O
ROLES = ("S", "N", "X", "F", "G", "W", "O")
PLAIN = {r: r.lower() for r in ROLES} | {"lev0": "a", "lev1": "b", "lev2": "c", "lev3": "d", "flev0": "p", "flev1": "q"}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh cache folder, and no library or warning remembered from earlier tests."""
    monkeypatch.setenv("BAYES_GLMM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(build, "_LOADED", {})
    monkeypatch.setattr(build, "_WARNED", set())
    return tmp_path / "cache" / "native"


def _frame(names: dict) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 48
    levels = [names[f"lev{i}"] for i in range(4)]
    flevels = [names["flev0"], names["flev1"]]
    trials = rng.integers(2, 6, n)
    return pd.DataFrame({
        names["S"]: rng.binomial(trials, 0.4), names["N"]: trials, names["X"]: rng.normal(size=n),
        names["F"]: pd.Categorical(np.tile(flevels, n // 2), categories=flevels),
        names["G"]: pd.Categorical(np.repeat(levels, n // 4), categories=levels),
        names["W"]: rng.uniform(0.5, 2.0, n), names["O"]: rng.normal(scale=0.2, size=n)})


def _glmm(names: dict) -> bg.GLMM:
    """Every place a name can come from: cbind's columns (successes, trials), a predictor (also
    in a random term), a factor and its levels, a grouping factor and its levels, a prior key,
    the weights and the offset."""
    S, N, X, F, G, O = (f"`{names[r]}`" for r in ("S", "N", "X", "F", "G", "O"))
    formula = f"cbind({S}, {N} - {S}) ~ {X} + {F} + offset({O}) + ({X} || {G})"
    return bg.GLMM(formula, _frame(names), family="binomial", weights=names["W"],
                   priors={names["X"]: Prior("Normal", mu=0.0, sigma=2.0)})


def _density(m) -> GlmmDensity:
    return GlmmDensity(m.spec, m.resolved_priors, m.centered_terms)


# ------------------------------------------------------------------ 1. no user text in the C
@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_names_never_reach_the_c(kind, cache):
    names = {k: HOSTILE[kind] + v for k, v in PLAIN.items()}
    m = _glmm(names)
    # the names did reach the model: the prior key applies, the levels are the hostile ones
    assert m.resolved_priors[names["X"]] == Prior("Normal", mu=0.0, sigma=2.0)
    plain = native.NativeModel(_density(_glmm(PLAIN)))
    nm = native.NativeModel(_density(m))
    for name in names.values():
        assert name not in nm.source
    for fragment in ("injected", "stdlib", "system", "\\", "'", "`", "ü", "LLLL"):
        assert fragment not in nm.source
    # names select indices only: the very same C (one library), and the very same draws
    assert nm.source == plain.source and nm.lib is plain.lib
    x, stats = nm.sample(100, 100, 1, seed=5)
    x0, _ = plain.sample(100, 100, 1, seed=5)
    assert np.all(np.isfinite(x)) and np.isfinite(stats["lp"]).all()
    np.testing.assert_array_equal(x, x0)
    lp, g = nm.logp_grad(x[0, -1])
    lp0, g0 = _density(m).logp_grad(x[0, -1])
    assert lp == pytest.approx(lp0, rel=1e-10) and np.allclose(g, g0, rtol=1e-8, atol=1e-8)


def test_hostile_names_through_the_public_api(cache):
    """GLMM.sample with the native sampler: the posterior is reported under the hostile names."""
    names = {k: HOSTILE["comment"] + v for k, v in PLAIN.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 100 draws: ESS / R-hat warnings
        res = _glmm(names).sample(draws=100, tune=100, chains=1, random_seed=2, sampler="native", progressbar=False)
    assert res.idata.posterior.attrs["sampler"] == "native"
    assert any(names["X"] in str(v) for v in res.idata.posterior["beta"].coords.to_index())


def test_check_c_source_refuses_foreign_text(cache):
    src = native.NativeModel(_density(_glmm(PLAIN))).source
    check_c_source(src)  # the real thing passes
    bad = {
        "comment": src.replace("{ /* term 0 */", "{ /* term g */ int injected = 1; /* */", 1),
        "identifier": src.replace("lp += acc[0];", "lp += acc[0]; int injected = 1;", 1),
        "directive": src.replace("#include <math.h>", "#include <stdlib.h>", 1),
        "quote": src.replace("lp += acc[0];", 'lp += acc[0]; (void)"x";', 1),
        "backtick": src + "\n/* ` */",
        "backslash": src.replace("lp += acc[0];", "lp += acc[0]; \\", 1),
        "unicode": src + "\nstatic double caf\u00e9;",
        "line comment": src.replace("lp += acc[0];", "lp += acc[0]; // x", 1),
    }
    for what, s in bad.items():
        assert s != src, what
        with pytest.raises(RuntimeError, match="vocabulary"):
            check_c_source(s)
    # the emitter itself takes only the package's names
    for prefix in ("g */ x", "name with space", "injected"):
        with pytest.raises(ValueError, match="prefix"):
            Emitter(1, prefix)
    em = Emitter(1, "t")
    for expr in ("x[i] /* */", "system(x)", 'x["a"]', "x\n[i]"):
        with pytest.raises(ValueError, match="input"):
            em.var(expr, 0)


def test_numbers_are_emitted_exactly(tmp_path):
    """Every literal the generator writes parses back, in C, to the very double (inf/nan too)."""
    vals = [0.1, -0.0, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -1.5e-300, 1 / 3,
            np.pi, 1e22, 123456789.123456789, float(np.float32(0.1)), float("inf"), float("-inf")]
    vals += list(np.random.default_rng(0).standard_normal(20) * 10.0 ** np.arange(-10, 10))
    src = "#include <math.h>\nconst double vals[] = {" + ", ".join(_lit(v) for v in vals) + "};\n" \
        + f"const double nanv = {_lit(float('nan'))};\n"
    (tmp_path / "lits.c").write_text(src)
    so = tmp_path / "lits.so"
    subprocess.run([native.compiler(), "-shared", "-fPIC", str(tmp_path / "lits.c"), "-o", str(so)], check=True)
    lib = ctypes.CDLL(str(so))
    got = np.ctypeslib.as_array((ctypes.c_double * len(vals)).in_dll(lib, "vals"))
    assert np.array_equal(got.view(np.uint64), np.array(vals, dtype=float).view(np.uint64))
    assert np.isnan(ctypes.c_double.in_dll(lib, "nanv").value)


# ------------------------------------------------------------------ 2. the process's FP state
_PROBE_C = r"""
#include <fenv.h>
/* the FP *control* state of the calling thread; the sticky exception flags are masked out */
unsigned long long fp_control(void) {
#if defined(__x86_64__) || defined(__i386__)
    unsigned int mxcsr; unsigned short cw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    return ((unsigned long long)cw << 32) | (mxcsr & ~0x3Fu);  /* FTZ, DAZ, rounding, masks */
#elif defined(__aarch64__)
    unsigned long long fpcr; __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    return fpcr;  /* FZ, rounding, ... */
#else
    return (unsigned long long)fegetround();
#endif
}
"""

_FP_SCRIPT = r"""
import ctypes, json, sys, threading
import numpy as np
probe = ctypes.CDLL(sys.argv[1]); probe.fp_control.restype = ctypes.c_ulonglong
def state():
    out = {}
    def read():  # a new thread starts with the creating thread's FP environment
        out["thread"] = probe.fp_control()
    t = threading.Thread(target=read); t.start(); t.join()
    return {"main": probe.fp_control(), "thread": out["thread"],
            "log_exp": float(np.log(np.exp(np.array([-740.0])))[0]),
            # subnormal in, subnormal out (DAZ zeroes the input, FTZ the output); compared as bits,
            # since a comparison under DAZ takes every subnormal for 0
            "subnormal": int((np.array([5e-324]) * np.array([2.0])).view(np.uint64)[0]) == 2}
states = {"start": state()}
import bayes_glmm as bg
from bayes_glmm.bayes.density import GlmmDensity
from bayes_glmm.bayes.native import NativeModel
states["imported"] = state()
rng = np.random.default_rng(1)
import pandas as pd
df = pd.DataFrame({"y": rng.poisson(2.0, 60), "x": rng.normal(size=60), "g": np.repeat(np.arange(6), 10)})
m = bg.GLMM("y ~ x + (1 | g)", df, family="poisson")
nm = NativeModel(GlmmDensity(m.spec, m.resolved_priors, m.centered_terms))
states["loaded"] = state()
nm.sample(100, 100, 2, seed=1, cores=2)
states["sampled"] = state()
print(json.dumps({"states": states, "lib": nm.lib._name}))
"""


def test_loading_and_sampling_leave_the_fp_state_alone(tmp_path):
    """In a fresh process (nothing loaded before): MXCSR / FPCR read exactly before and after
    building, loading and sampling a native model, in the main thread and a new one."""
    probe = tmp_path / "probe.so"
    (tmp_path / "probe.c").write_text(_PROBE_C)
    subprocess.run([native.compiler(), "-O0", "-shared", "-fPIC", str(tmp_path / "probe.c"), "-o", str(probe)],
                   check=True)
    env = dict(os.environ, BAYES_GLMM_CACHE_DIR=str(tmp_path / "cache"))
    res = subprocess.run([sys.executable, "-c", _FP_SCRIPT, str(probe)], capture_output=True, text=True, env=env,
                         cwd=REPO, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    states = out["states"]
    for when, st in states.items():
        assert st == states["start"], (when, st, states["start"])
    assert states["start"]["subnormal"] and states["start"]["log_exp"] == pytest.approx(-739.99742, abs=1e-5)
    if sys.platform.startswith("linux") and shutil.which("nm"):
        syms = subprocess.run(["nm", out["lib"]], capture_output=True, text=True).stdout
        assert "set_fast_math" not in syms  # crtfastmath.o's constructor is not linked in


# ------------------------------------------------------------------ 3. the cache
def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _small(family="bernoulli"):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"y": rng.binomial(1, 0.5, 60), "x": rng.normal(size=60), "g": np.repeat(np.arange(6), 10)})
    return bg.GLMM("y ~ x + (1 | g)", df, family=family)


def test_key_covers_what_changes_the_binary(monkeypatch):
    cc = native.compiler()
    c, h = build._read_csrc()
    k0 = build.library_key("src", cc, c, h)
    assert k0 == build.library_key("src", cc, c, h)
    changed = [build.library_key("src2", cc, c, h), build.library_key("src", cc, c + " ", h),
               build.library_key("src", cc, c, h + " ")]
    for attr, value in [("compiler_version", lambda cc: "cc 99.0"), ("_cpu_signature", lambda: "flags : none")]:
        with monkeypatch.context() as mp:
            mp.setattr(build, attr, value)
            changed.append(build.library_key("src", cc, c, h))
    with monkeypatch.context() as mp:
        mp.setattr(build.platform, "libc_ver", lambda: ("musl", "1.2"))
        changed.append(build.library_key("src", cc, c, h))
    with monkeypatch.context() as mp:
        mp.setattr(build, "CFLAGS_MODEL", build.CFLAGS_MODEL + ["-O2"])
        changed.append(build.library_key("src", cc, c, h))
    assert len(set(changed + [k0])) == len(changed) + 1
    assert "version" in build.compiler_version(cc).lower() or build.compiler_version(cc)


def test_private_folders_and_files_under_umask_000(cache):
    old = os.umask(0)
    try:
        nm = native.NativeModel(_density(_small()))
    finally:
        os.umask(old)
    root = cache.parent
    for folder in (root, cache):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700, folder
    files = sorted(os.listdir(cache))
    assert [f.rsplit(".", 1)[1] for f in files] == ["sha256", "so"]  # no temporary left behind
    for f in files:
        assert stat.S_IMODE(os.stat(cache / f).st_mode) & 0o077 == 0, f
    assert os.path.dirname(nm.lib._name) == str(cache)
    assert _sha(cache / files[1]) == (cache / files[0]).read_text().strip()


def test_leftovers_of_killed_compiles_are_swept(cache):
    cache.mkdir(parents=True, mode=0o700)
    old, recent = cache / ".build-killed", cache / ".build-running"
    for d in (old, recent):
        d.mkdir()
        (d / "model.c").write_text("")
    os.utime(old, (0, 0))
    native.NativeModel(_density(_small()))
    assert not old.exists() and recent.exists()  # another process may be compiling there


def test_world_writable_cache_is_not_trusted(cache):
    cache.mkdir(parents=True)
    os.chmod(cache, 0o777)
    with pytest.warns(RuntimeWarning, match="writable by others.*BAYES_GLMM_CACHE_DIR"):
        nm = native.NativeModel(_density(_small()))
    assert not str(nm.lib._name).startswith(str(cache))
    assert os.listdir(cache) == []  # nothing written there, nothing loaded from there
    assert np.isfinite(nm.logp_grad(nm.density.initial_point(0))[0])


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown needs root")
def test_folder_or_library_of_another_user_is_not_trusted(cache):
    # a library in the cache owned by another user is replaced, not loaded
    nm = native.NativeModel(_density(_small()))
    lib = nm.lib._name
    build._LOADED.clear()
    os.chown(lib, 12345, 12345)
    nm2 = native.NativeModel(_density(_small()))
    assert os.stat(lib).st_uid == os.getuid() and nm2.lib._name == lib
    # the folder itself owned by another user: not used at all
    build._LOADED.clear()
    os.chown(cache, 12345, 12345)
    with pytest.warns(RuntimeWarning, match="owned by another user"):
        nm3 = native.NativeModel(_density(_small()))
    assert not nm3.lib._name.startswith(str(cache))


def test_cache_folder_that_cannot_be_created(cache, tmp_path, monkeypatch):
    """A file where the cache folder should be (meaningful as root, unlike chmod)."""
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("BAYES_GLMM_CACHE_DIR", str(tmp_path / "afile" / "cache"))
    with pytest.warns(RuntimeWarning, match="cannot create the cache folder.*BAYES_GLMM_CACHE_DIR") as rec:
        nm = native.NativeModel(_density(_small()))
        native.NativeModel(_density(_small("poisson")))  # one note per process, not per model
    assert len([w for w in rec if "BAYES_GLMM_CACHE_DIR" in str(w.message)]) == 1
    assert nm.lib._name.startswith(build._process_dir())
    assert nm.sample(50, 50, 1, seed=1)[0].shape == (1, 50, nm.ndim)


def test_read_only_cache_folder(cache, monkeypatch):
    """A cache folder that exists but cannot be written (read-only HOME or mount): writing
    fails with EROFS (simulated: tests run as root, which chmod does not stop)."""
    cache.mkdir(parents=True, mode=0o700)
    real = build.tempfile.mkdtemp

    def mkdtemp(*args, dir=None, **kw):
        if dir is not None and os.path.abspath(dir) == str(cache):
            raise OSError(30, "Read-only file system", dir)
        return real(*args, dir=dir, **kw)

    monkeypatch.setattr(build.tempfile, "mkdtemp", mkdtemp)
    with pytest.warns(RuntimeWarning, match="cannot write to the cache folder.*Read-only.*BAYES_GLMM_CACHE_DIR"):
        nm = native.NativeModel(_density(_small()))
    assert nm.lib._name.startswith(build._process_dir()) and os.listdir(cache) == []


def test_no_writable_folder_at_all(cache, monkeypatch):
    """Neither the cache nor a temporary folder can be written: a clear error, no traceback
    from deep inside tempfile."""
    def mkdtemp(*args, **kw):
        raise OSError(30, "Read-only file system", kw.get("dir") or "/tmp")

    monkeypatch.setattr(build.tempfile, "mkdtemp", mkdtemp)
    monkeypatch.setattr(build, "_PROCESS_DIR", [])
    with pytest.warns(RuntimeWarning, match="BAYES_GLMM_CACHE_DIR"):
        with pytest.raises(RuntimeError, match="no writable folder.*BAYES_GLMM_CACHE_DIR.*sampler='numpy'"):
            native.NativeModel(_density(_small()))


def test_read_only_cache_folder_chmod(cache):
    cache.mkdir(parents=True, mode=0o700)
    os.chmod(cache, 0o500)
    try:
        if os.access(cache, os.W_OK):
            pytest.skip("this user (root) writes through chmod 0o500; see test_read_only_cache_folder")
        with pytest.warns(RuntimeWarning, match="BAYES_GLMM_CACHE_DIR"):
            nm = native.NativeModel(_density(_small()))
        assert nm.lib._name.startswith(build._process_dir())
    finally:
        os.chmod(cache, 0o700)


# planted files: loaded in a subprocess, so that a crash (SIGBUS, SIGSEGV) fails the tests
# instead of killing pytest.  One subprocess loads every planted cache in turn (one import of
# the package, not one per case); each case prints a line as it completes, so a crash is
# pinned on the case that was running.
_MODEL_SCRIPT = r"""
import json, os, sys, warnings
import numpy as np, pandas as pd
import bayes_glmm as bg
from bayes_glmm.bayes import build
from bayes_glmm.bayes.density import GlmmDensity
from bayes_glmm.bayes.native import NativeModel
rng = np.random.default_rng(0)
df = pd.DataFrame({"y": rng.binomial(1, 0.5, 60), "x": rng.normal(size=60), "g": np.repeat(np.arange(6), 10),
                   "x2": rng.normal(size=60), "h": np.tile(np.arange(5), 12)})
def density(formula="y ~ x + (1 | g)"):
    m = bg.GLMM(formula, df, family="bernoulli")
    return GlmmDensity(m.spec, m.resolved_priors, m.centered_terms)
#: another model, with more runtime arrays: its library run on the first model's data read
#: past them (before: a segmentation fault)
OTHER = "y ~ x + x2 + (1 + x | g) + (1 | h)"
"""

_LOAD_SCRIPT = _MODEL_SCRIPT + r"""
for kind, root in json.loads(sys.argv[1]):
    print(json.dumps({"kind": kind, "started": True}), flush=True)
    os.environ["BAYES_GLMM_CACHE_DIR"] = root
    build._LOADED.clear()
    d = density()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        nm = NativeModel(d)
        x, stats = nm.sample(100, 100, 1, seed=1)
    lp, g = nm.logp_grad(x[0, -1]); lp0, g0 = d.logp_grad(x[0, -1])
    print(json.dumps({"kind": kind, "lib": nm.lib._name, "finite": bool(np.isfinite(x).all()), "lp": lp, "lp0": lp0,
                      "grad_ok": bool(np.allclose(g, g0, rtol=1e-8, atol=1e-8)),
                      "warnings": [str(i.message) for i in w if "bayes_glmm:" in str(i.message)]}), flush=True)
"""

PLANTED = ["truncated", "garbage", "empty", "other_model", "other_model_and_manifest", "no_manifest",
           "manifest_garbage"]


def _plant(kind, lib, other):
    man, other_man = lib[:-3] + ".sha256", other[:-3] + ".sha256"
    if kind == "truncated":  # a killed compile, a full disk: before, SIGBUS
        with open(lib, "r+b") as f:
            f.truncate(4096)
    elif kind == "garbage":  # before, OSError: invalid ELF header
        with open(lib, "wb") as f:
            f.write(b"\x7fELF" + os.urandom(5000))
    elif kind == "empty":
        open(lib, "wb").close()
    elif kind == "other_model":  # another model's valid library under the name: before, SIGSEGV
        shutil.copyfile(other, lib)
    elif kind == "other_model_and_manifest":  # ... with its manifest too: caught by the compiled-in key
        shutil.copyfile(other, lib)
        shutil.copyfile(other_man, man)
    elif kind == "no_manifest":
        os.remove(man)
    elif kind == "manifest_garbage":
        with open(man, "w") as f:
            f.write("not a hash")


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Build the model and another one once (a subprocess), plant each corruption in a
    copy of that cache, and load them all in one subprocess: kind -> (its result, lib path, key)."""
    template = tmp_path_factory.mktemp("template")
    env = dict(os.environ, BAYES_GLMM_CACHE_DIR=str(template))
    script = _MODEL_SCRIPT + "print(json.dumps([NativeModel(density(*f)).lib._name for f in ((), (OTHER,))]))"
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    lib0, other0 = json.loads(res.stdout.strip().splitlines()[-1])
    cases, paths = [], {}
    for kind in PLANTED:
        root = tmp_path_factory.mktemp(kind)
        shutil.copytree(template, root, dirs_exist_ok=True)  # keeps the modes (0o700 folders)
        lib, other = (str(root / os.path.relpath(p, template)) for p in (lib0, other0))
        _plant(kind, lib, other)
        cases.append((kind, str(root)))
        paths[kind] = (str(root), lib, os.path.basename(lib)[3:-3])
    res = subprocess.run([sys.executable, "-c", _LOAD_SCRIPT, json.dumps(cases)], capture_output=True, text=True,
                         cwd=REPO, timeout=600)
    lines = [json.loads(ln) for ln in res.stdout.splitlines() if ln.startswith("{")]
    done = {ln["kind"]: ln for ln in lines if "lib" in ln}
    crash = f"loader exit {res.returncode} (negative: killed by that signal): {res.stderr[-2000:]}"
    return {k: (done.get(k), crash) + paths[k] for k in PLANTED}


@pytest.mark.parametrize("kind", PLANTED)
def test_corrupt_cached_library_is_rebuilt_not_loaded(kind, planted):
    out, crash, root, lib, key = planted[kind]
    assert out is not None, (kind, crash)
    assert out["finite"] and out["grad_ok"] and out["lp"] == pytest.approx(out["lp0"], rel=1e-10)
    assert out["warnings"] == []  # healed quietly
    # the cache is healed for the next process: the right library, its manifest, its key
    data = open(lib, "rb").read()
    assert hashlib.sha256(data).hexdigest() == open(lib[:-3] + ".sha256").read().strip()
    assert key.encode() in data
    if kind == "other_model_and_manifest":
        # the foreign library was loaded under the expected path (its key then refused): this
        # process loads its rebuild from its private temporary folder
        assert not out["lib"].startswith(root)
    else:
        assert out["lib"] == lib

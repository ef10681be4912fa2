"""Compiling and caching the native sampler's shared library: private, verified, self-healing.

:mod:`bayes_glmm.bayes.native` generates C per model structure; this module turns that
source into a loaded library, once per structure and machine, under three rules:

* **No side effect on the process.**  The model is compiled with ``-ffast-math`` (it lets
  the compiler vectorize the pass over the rows) but *linked* without it: gcc and clang
  link ``crtfastmath.o`` into a library linked with ``-ffast-math``, whose constructor sets
  flush-to-zero / denormals-are-zero for the whole process as the library loads.
* **Nothing is loaded unverified.**  A library is written next to a manifest holding its
  SHA-256; before ``dlopen`` the file is hashed and compared (a truncated file, garbage or
  another model's library never reaches the loader: ``ctypes`` maps the file, and a
  truncated one kills the process with SIGBUS), and after loading, the key compiled into
  it (:data:`KEY_SYMBOL`) must equal the expected key before anything else is called.  On
  a mismatch the library is rebuilt once, atomically (compiled in a temporary folder of the
  same folder, moved into place with :func:`os.replace`).
* **The cache is private and never blocks.**  Folders are created ``0o700`` whatever the
  umask; a folder or library owned by another user, or writable by group or others, is
  not trusted; a cache that cannot be written (read-only HOME, containers) or is not
  trusted gives way to a private per-process temporary folder, with one warning naming
  ``BAYES_GLMM_CACHE_DIR``.

The cache key (:func:`library_key`) covers everything that changes the binary: the
generated source, ``csrc/nuts.c`` and ``nuts.h``, the flags, the compiler's path and
version, the C library and the CPU's features (``-march=native``).
"""
from __future__ import annotations

import atexit
import ctypes
import errno
import functools
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time

from ..spec.validate import warn

__all__ = ["available", "compiler", "compiler_version", "cache_dir", "library_key", "load",
           "CFLAGS_NUTS", "CFLAGS_MODEL", "LDFLAGS", "KEY_SYMBOL"]

#: folder of nuts.c / nuts.h
CSRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc")
#: the NUTS engine tests for non-finite energies: IEEE semantics, plain -O2
CFLAGS_NUTS = ["-O2", "-std=c99", "-fPIC"]
#: the generated density: -ffast-math lets the compiler vectorize the pass over the rows with
#: glibc's vector exp/log (3x faster on toenail's rows) and reassociate its sums (results move
#: by ~1e-15 relative).  Its non-finite values (overflow far in the tails) come from libm at run
#: time all the same, and nuts.c, compiled without it, turns them into divergences.
#: -march=native: the cache is per machine (its key includes the CPU's flags).
CFLAGS_MODEL = ["-O3", "-std=c99", "-fPIC", "-ffast-math", "-march=native"]
#: linking: no -ffast-math here (it would add crtfastmath.o, which sets FTZ/DAZ on load)
LDFLAGS = ["-shared", "-fPIC"]
#: a function compiled into every library, returning its key: checked before any other call
KEY_SYMBOL = "bg_library_key"
#: the layout of the cache's files; a new value never reads an older layout's files
_LAYOUT = "bayes_glmm native library v2"

_LOCK = threading.Lock()
#: key -> loaded library, for this process
_LOADED: dict = {}
_WARNED: set = set()
_PROCESS_DIR: list = []


def compiler() -> str | None:
    """Path of the C compiler used (``$CC``, else cc, gcc, clang), or None."""
    cands = [os.environ["CC"]] if os.environ.get("CC") else ["cc", "gcc", "clang"]
    for c in cands:
        path = shutil.which(c)
        if path:
            return path
    return None


def available() -> bool:
    """True when a C compiler is found (the native sampler can be built)."""
    return compiler() is not None and os.path.exists(os.path.join(CSRC, "nuts.c"))


def cache_dir() -> str:
    """Folder of the compiled models: ``$BAYES_GLMM_CACHE_DIR/native``, else
    ``$XDG_CACHE_HOME/bayes_glmm/native`` or ``~/.cache/bayes_glmm/native``."""
    d = os.environ.get("BAYES_GLMM_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "bayes_glmm")
    return os.path.join(d, "native")


@functools.lru_cache(maxsize=None)
def compiler_version(cc: str) -> str:
    """``cc --version`` (its output, once per process and compiler): part of the cache key,
    so that an upgraded compiler at the same path builds afresh."""
    try:
        res = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60)
        return res.stdout + res.stderr
    except (OSError, subprocess.SubprocessError):
        return ""


@functools.lru_cache(maxsize=None)
def _cpu_signature() -> str:
    """The CPU's feature flags (Linux) or name: part of the cache key, for -march=native."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line
    except OSError:
        pass
    return platform.machine() + platform.processor()


def _read_csrc() -> tuple[str, str]:
    with open(os.path.join(CSRC, "nuts.c")) as f:
        nuts_c = f.read()
    with open(os.path.join(CSRC, "nuts.h")) as f:
        nuts_h = f.read()
    return nuts_c, nuts_h


def library_key(src: str, cc: str, nuts_c: str, nuts_h: str) -> str:
    """Hex key of the library built from ``src``: a hash of everything that changes the binary."""
    parts = [_LAYOUT, src, nuts_c, nuts_h, " ".join(CFLAGS_NUTS), " ".join(CFLAGS_MODEL), " ".join(LDFLAGS),
             cc, os.path.realpath(cc), compiler_version(cc), " ".join(platform.libc_ver()),
             sys.platform, platform.machine(), _cpu_signature()]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


# ------------------------------------------------------------------ folders and trust
def _warn_once(msg: str) -> None:
    """One warning per process and message, attributed to the user's line."""
    if msg not in _WARNED:
        _WARNED.add(msg)
        warn(msg, RuntimeWarning)


def _make_private_dir(path: str) -> None:
    """Create ``path`` and its missing parents as ``0o700`` folders, whatever the umask
    (``os.makedirs`` applies the umask to the parents it creates); existing folders are left
    as they are (:func:`_distrust` judges them)."""
    path = os.path.abspath(path)
    missing = []
    while not os.path.isdir(path):
        if os.path.lexists(path):  # a file where a folder should be
            raise NotADirectoryError(errno.ENOTDIR, "a file is in the way", path)
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for p in reversed(missing):
        try:
            os.mkdir(p, 0o700)
        except FileExistsError:
            if not os.path.isdir(p):  # a file in the way: not a usable folder
                raise
            continue  # created concurrently: judged by _distrust
        os.chmod(p, 0o700)


def _distrust(path: str) -> str | None:
    """Why a folder or library at ``path`` must not be trusted (None: it may be).

    Trusted: owned by this user (or root) and not writable by group or others.  A file
    anybody else can replace is code anybody else can run in this process."""
    try:
        st = os.stat(path)
    except OSError as e:
        return f"not readable ({e.strerror})"
    uid = os.getuid() if hasattr(os, "getuid") else None
    if uid is not None and st.st_uid not in (uid, 0):
        return f"owned by another user (uid {st.st_uid})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"writable by {'others' if st.st_mode & stat.S_IWOTH else 'its group'} (mode {oct(st.st_mode & 0o777)})"
    return None


def _process_dir() -> str:
    """A private temporary folder for this process (removed at exit)."""
    if not _PROCESS_DIR:
        d = tempfile.mkdtemp(prefix="bayes_glmm-native-")  # 0o700
        atexit.register(shutil.rmtree, d, True)
        _PROCESS_DIR.append(d)
    return _PROCESS_DIR[0]


def _why(e: OSError) -> str:
    return f"{e.strerror or e}: {e.filename}" if e.filename else str(e.strerror or e)


def _cache_folder() -> str | None:
    """The cache folder when it can be created and trusted, else None (with a warning)."""
    d = cache_dir()
    try:
        _make_private_dir(d)
    except OSError as e:
        _warn_once(f"bayes_glmm: cannot create the cache folder {d} ({_why(e)}); compiling the native "
                   "model in a temporary folder for this process -- set BAYES_GLMM_CACHE_DIR to a writable folder "
                   "to keep compiled models")
        return None
    why = _distrust(d)
    if why:
        _warn_once(f"bayes_glmm: not loading compiled models from {d}: it is {why}; compiling in a private "
                   "temporary folder instead -- make it private (chmod 700) or set BAYES_GLMM_CACHE_DIR")
        return None
    return d


# ------------------------------------------------------------------ compile, verify, load
def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _paths(folder: str, key: str) -> tuple[str, str]:
    return os.path.join(folder, f"bg_{key}.so"), os.path.join(folder, f"bg_{key}.sha256")


def _compile(cc: str, src: str, nuts_c: str, nuts_h: str, tmp: str, out: str) -> None:
    """nuts.c (IEEE, -O2) and the model (fast math, native CPU) compiled to objects, then
    linked into the shared library ``out`` *without* fast math (see :data:`LDFLAGS`).

    The sources written are the ones the key was computed from (a nuts.c edited meanwhile is
    not compiled under an old key), and relative names make the output the same bytes from
    any temporary folder."""
    for name, text in (("model.c", src), ("nuts.c", nuts_c), ("nuts.h", nuts_h)):
        with open(os.path.join(tmp, name), "w") as f:
            f.write(text)
    nuts = [cc, *CFLAGS_NUTS, "-c", "nuts.c", "-o", "nuts.o"]
    model = [cc, *CFLAGS_MODEL, "-I", ".", "-c", "model.c", "-o", "model.o"]
    link = [cc, *LDFLAGS, "model.o", "nuts.o", "-o", out, "-lm"]
    for cmd in (nuts, model, link):
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
        if res.returncode != 0 and cmd is model:  # e.g. a compiler without -march=native
            cmd = [a for a in cmd if a != "-march=native"]
            res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
        if res.returncode != 0:
            raise RuntimeError(f"compiling the native model failed ({' '.join(cmd)}):\n{res.stderr[-4000:]}")


def _sweep(folder: str, keep: str, age_s: float = 3600.0) -> None:
    """Remove the temporary folders of compiles killed over an hour ago (a build takes ~1 s)."""
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        try:
            if name.startswith(".build-") and path != keep and time.time() - os.lstat(path).st_mtime > age_s:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


def _build_into(folder: str, key: str, src: str, cc: str, nuts_c: str, nuts_h: str) -> None:
    """Compile into ``folder`` atomically: in a temporary folder there, then the library and
    its manifest (its SHA-256) moved into place.  OSError: the folder cannot be written."""
    tmp = tempfile.mkdtemp(prefix=".build-", dir=folder)
    _sweep(folder, keep=tmp)
    try:
        lib = os.path.join(tmp, "model.so")
        _compile(cc, src, nuts_c, nuts_h, tmp, lib)
        os.chmod(lib, 0o700)
        man = os.path.join(tmp, "model.sha256")
        with open(man, "w") as f:
            f.write(_sha256_file(lib) + "\n")
        os.chmod(man, 0o600)
        lib_path, man_path = _paths(folder, key)
        os.replace(lib, lib_path)
        os.replace(man, man_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _load_verified(folder: str, key: str):
    """The library of ``key`` in ``folder`` when it is trusted and verified, else None.

    Order: the files' owner and mode, the library's SHA-256 against its manifest (before the
    loader maps anything), then, after loading, the key compiled into it."""
    lib_path, man_path = _paths(folder, key)
    if not (os.path.exists(lib_path) and os.path.exists(man_path)):
        return None
    if _distrust(lib_path) or _distrust(man_path):
        return None
    try:
        with open(man_path) as f:
            expected = f.read().strip()
        if _sha256_file(lib_path) != expected:
            return None
        lib = ctypes.CDLL(lib_path)
        fn = getattr(lib, KEY_SYMBOL)
    except (OSError, AttributeError):
        return None
    fn.restype, fn.argtypes = ctypes.c_char_p, []
    return lib if fn() == key.encode() else None


def load(src: str) -> ctypes.CDLL:
    """Compile ``src`` with nuts.c into the cache (once per source and machine), verify and load it.

    A cached library that fails verification is rebuilt once in the cache; a cache that
    cannot be written or trusted, or a rebuild that still does not verify, gives way to a
    private temporary folder of this process.

    Raises
    ------
    RuntimeError
        No C compiler, or the compiler failed (its message included).
    """
    cc = compiler()
    if cc is None:
        raise RuntimeError("sampler='native' needs a C compiler (set CC, or install gcc/clang); "
                           "use sampler='numpy' or 'nutpie'")
    nuts_c, nuts_h = _read_csrc()
    key = library_key(src, cc, nuts_c, nuts_h)
    # the key is compiled in: the loaded library answers which model it is before any other call
    full = f"{src}\nconst char *{KEY_SYMBOL}(void) {{ return \"{key}\"; }}\n"
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        lib = None
        folder = _cache_folder()
        if folder is not None:
            lib = _load_verified(folder, key)
            if lib is None:  # missing, truncated, corrupt, another model's: rebuild once
                try:
                    _build_into(folder, key, full, cc, nuts_c, nuts_h)
                except OSError as e:
                    _warn_once(f"bayes_glmm: cannot write to the cache folder {folder} ({_why(e)}); "
                               "compiling the native model in a temporary folder for this process -- set "
                               "BAYES_GLMM_CACHE_DIR to a writable folder to keep compiled models")
                else:
                    lib = _load_verified(folder, key)
        if lib is None:
            try:
                tmp = _process_dir()
                _build_into(tmp, key, full, cc, nuts_c, nuts_h)
            except OSError as e:
                raise RuntimeError(f"sampler='native' found no writable folder to compile in ({_why(e)}); set "
                                   "BAYES_GLMM_CACHE_DIR to a private writable folder, or use sampler='numpy'") from e
            lib = _load_verified(tmp, key)
            if lib is None:
                raise RuntimeError(f"the native model compiled in {tmp} could not be loaded (a folder mounted "
                                   "noexec?); set BAYES_GLMM_CACHE_DIR to a private folder on another disk, or "
                                   "use sampler='numpy'")
        _LOADED[key] = lib
        return lib

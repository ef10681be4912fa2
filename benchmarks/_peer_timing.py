"""Shared machinery of the scripts that time our ML fits against glmmTMB reference fits.

``bench_covstruct.py``, ``bench_hurdle.py`` and ``bench_dispformula.py`` time the random-effects
fits of a reference JSON (written by ``tests/reference/make_reference_*.R``) the same way: one
R process (``Rscript``) stays open for the whole run and fits on request, so R's start-up and
package loading are never timed; each model is fitted once untimed by both sides (warm-up), then
``repeats`` times alternately.  Each script supplies its R worker (which reads the JSON and answers
``"fit <key>"`` with ``"<key> <elapsed seconds> <logLik>"``) and how it fits a model itself.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["RWorker", "r_available", "Report", "time_interleaved", "header"]


class RWorker:
    """A persistent Rscript process fitting reference models on request.

    Parameters
    ----------
    script : str
        The R program (reads ``commandArgs()``: the reference JSON's path and the repository root).
    name : str
        File name stem of the script in ``tmp``.
    tmp : Path
        A scratch directory that outlives the worker.
    ref_path, root : Path
        Passed to the R program.
    """

    def __init__(self, script: str, name: str, tmp: Path, ref_path: Path, root: Path):
        path = Path(tmp) / f"{name}_worker.R"
        path.write_text(script)
        self.proc = subprocess.Popen(["Rscript", str(path), str(ref_path), str(root)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)

    def fit(self, key: str) -> tuple[float, float]:
        """(elapsed seconds, logLik) of one R fit of ``key``."""
        self.proc.stdin.write(f"fit {key}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"R worker died fitting {key}: {self.proc.stderr.read()[-2000:]}")
        k, el, ll = line.split()
        assert k == key, (k, key)
        return float(el), float(ll)

    def close(self) -> None:
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=30)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            self.proc.kill()


def r_available(package: str = "glmmTMB") -> bool:
    """True when ``Rscript`` exists and loads ``package``."""
    if shutil.which("Rscript") is None:
        return False
    return subprocess.run(["Rscript", "-e", f"suppressMessages(library({package}))"],
                          capture_output=True).returncode == 0


class Report:
    """Lines printed as they come and optionally written to a file at the end."""

    def __init__(self):
        self.lines = []

    def __call__(self, s: str = "") -> None:
        print(s, flush=True)
        self.lines.append(s)

    def save(self, out: Path | None) -> None:
        if out:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("\n".join(self.lines) + "\n")


def header(version: str, repeats: int, have_r: bool, ref_note: str) -> str:
    """The first line of a report: versions, machine load, settings, time."""
    return (f"bayes_glmm {version}; numpy {np.__version__}; cpus {os.cpu_count()}; "
            f"load average {os.getloadavg()[0]:.1f}; repeats {repeats}; R/glmmTMB: {'yes' if have_r else 'no'} "
            f"({ref_note}); {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


def time_interleaved(key: str, ours: Callable[[], tuple], worker: RWorker | None, repeats: int) -> dict:
    """Warm-up once each, then ``repeats`` alternating fits of ``ours()`` (-> (seconds, logLik))
    and of the R worker (None: ours only).

    Returns
    -------
    dict with ``t_ours``, ``t_r`` (lists of seconds), ``ll_ours``, ``ll_r`` (nan without R) and
    the medians ``mo``, ``mr`` and ``ratio`` = mo / mr (nan without R).
    """
    _, ll_ours = ours()
    ll_r = float("nan")
    if worker is not None:
        _, ll_r = worker.fit(key)
    t_ours, t_r = [], []
    for _ in range(repeats):
        t, ll_ours = ours()
        t_ours.append(t)
        if worker is not None:
            t, ll_r = worker.fit(key)
            t_r.append(t)
    mo = statistics.median(t_ours)
    mr = statistics.median(t_r) if t_r else float("nan")
    return dict(t_ours=t_ours, t_r=t_r, ll_ours=ll_ours, ll_r=ll_r, mo=mo, mr=mr,
                ratio=mo / mr if t_r else float("nan"))


def runs(ts) -> str:
    """``"0.123, 0.131, ..."``"""
    return ", ".join(f"{t:.3f}" for t in ts)


def summary(emit: Report, rows: list, width: int = 18, counted: str = "") -> None:
    """The summary table of ``(key, ours s, glmmTMB s, ratio, logLik ours, logLik peer)`` rows and
    the ratio statistics (the issues' target: ratio <= 0.5)."""
    emit("")
    emit("Summary (median seconds; ratio = bayes_glmm / glmmTMB; target <= 0.5)")
    emit(f"  {'model':{width}s} {'ours':>8s} {'glmmTMB':>8s} {'ratio':>7s} {'dlogLik':>10s}")
    for key, mo, mr, ratio, llo, llr in rows:
        emit(f"  {key:{width}s} {mo:8.3f} {mr:8.3f} {ratio:7.3f} {llo - llr:10.2e}")
    finite = [x[3] for x in rows if np.isfinite(x[3])]
    if finite:
        emit(f"  {counted}ratio <= 0.5 on {sum(x <= 0.5 for x in finite)} of {len(finite)}; geometric mean ratio "
             f"{float(np.exp(np.mean(np.log(finite)))):.3f}; worst {max(finite):.3f}")


def reference_main(argv, *, doc: str, name: str, ref_path: Path, root: Path, keys: tuple, r_worker: str,
                   data: Callable, ours: Callable, describe: Callable, version: str) -> int:
    """The whole command line of a reference benchmark (``--repeats``, ``--keys``, ``--out``).

    ``data(ref, key) -> DataFrame``; ``ours(r, data) -> (seconds, logLik)`` one timed fit of the
    reference entry ``r``; ``describe(key, r) -> str`` the model's line in the report.
    """
    import argparse
    import json
    import tempfile

    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--keys", nargs="*", choices=keys, help="reference keys (default: all)")
    ap.add_argument("--out", type=Path, help="also write the report here")
    args = ap.parse_args(argv)
    ref = json.loads(Path(ref_path).read_text())
    have_r = r_available()
    emit = Report()
    emit(header(version, args.repeats, have_r, f"reference made with glmmTMB {ref['glmmTMB_version']}"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        worker = RWorker(r_worker, name, Path(tmp), ref_path, root) if have_r else None
        try:
            for key in args.keys or list(keys):
                r, d = ref[key], data(ref, key)
                m = time_interleaved(key, lambda: ours(r, d), worker, args.repeats)
                rows.append((key, m["mo"], m["mr"], m["ratio"], m["ll_ours"], m["ll_r"] if m["t_r"] else r["loglik"]))
                emit(describe(key, r))
                emit(f"    bayes_glmm median {m['mo']:7.3f} s (runs {runs(m['t_ours'])}); logLik {m['ll_ours']:.6f}")
                if m["t_r"]:
                    emit(f"    glmmTMB    median {m['mr']:7.3f} s (runs {runs(m['t_r'])}); logLik {m['ll_r']:.6f}")
        finally:
            if worker is not None:
                worker.close()
    summary(emit, rows)
    emit.save(args.out)
    return 0

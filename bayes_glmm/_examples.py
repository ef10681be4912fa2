"""Settings shared by the scripts in ``examples/`` (not part of the modelling API).

Each example reads the same environment variables; keeping them here keeps the scripts
about their statistics.
"""
from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

__all__ = ["example_settings"]


def _flag(name: str, default: str) -> bool:
    return os.environ.get(name, default).lower() not in ("", "0", "false", "no")


def example_settings(script_file: str | None = None):
    """``(FAST, RUN_NUTS, OUT)`` for an example script.

    Parameters
    ----------
    script_file : str, optional
        The script's ``__file__`` (None in a notebook): the default output folder is
        ``output/`` beside it.

    Returns
    -------
    FAST : bool
        ``BAYES_GLMM_FAST=1``: fewer draws and quadrature orders (what the tests run).
    RUN_NUTS : bool
        ``BAYES_GLMM_NUTS=0`` skips the NUTS sections.
    OUT : pathlib.Path
        ``BAYES_GLMM_OUT`` or ``output/`` beside the script; created.
    """
    if "ipykernel" not in sys.modules:  # scripts and tests have no screen
        import matplotlib
        import matplotlib.pyplot as plt

        plt.switch_backend("Agg")
        matplotlib.use("Agg")
    warnings.filterwarnings("ignore", message=".*PyTensor.*")
    warnings.filterwarnings("ignore", message=".*BLAS.*")
    env = os.environ.get("BAYES_GLMM_OUT")
    if env:
        out = Path(env)
    elif script_file:
        out = Path(script_file).resolve().parent / "output"
    else:
        out = Path("output")
    out.mkdir(parents=True, exist_ok=True)
    fast = _flag("BAYES_GLMM_FAST", "0")
    run_nuts = _flag("BAYES_GLMM_NUTS", "1")
    print(f"mode: {'FAST' if fast else 'full'}; output: {out}")
    return fast, run_nuts, out

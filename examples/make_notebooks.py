"""Convert the example scripts to notebooks and execute them into examples/notebooks/.

    python examples/make_notebooks.py            # full mode (slow: NUTS with 4 chains x 1000 draws)
    python examples/make_notebooks.py --fast     # fast mode (BAYES_GLMM_FAST=1), labelled as such
    python examples/make_notebooks.py --fast 01_toenail 05_skin_cancer   # a subset

Each notebook gets a first cell saying in which mode it was executed. Figures and the
key-number JSON files go to examples/output/ (git-ignored); the figures are also embedded in
the executed notebooks.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import time

import jupytext
import nbformat
from nbclient import NotebookClient

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent


def build(name: str, fast: bool, timeout: int) -> float:
    nb = jupytext.read(HERE / f"{name}.py")
    mode = ("**fast mode** (`BAYES_GLMM_FAST=1`: one short NUTS chain, fewer quadrature orders, "
            "smaller simulations); run `python examples/%s.py` without `BAYES_GLMM_FAST` for the "
            "full-mode numbers" % name) if fast else "**full mode**"
    null_reps = os.environ.get("BAYES_GLMM_NULL_REPS")
    if null_reps is not None and name == "03_horse_farms":
        mode += f" with `BAYES_GLMM_NULL_REPS={null_reps}`"
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(
        f"> Executed notebook generated from `examples/{name}.py` by `examples/make_notebooks.py`, "
        f"in {mode}."))
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    os.environ["BAYES_GLMM_FAST"] = "1" if fast else "0"
    os.environ.setdefault("BAYES_GLMM_OUT", str(HERE / "output"))
    os.environ["PYTHONPATH"] = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(HERE)}}).execute()
    out = HERE / "notebooks" / f"{name}.ipynb"
    out.parent.mkdir(exist_ok=True)
    nbformat.write(nb, out)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="examples to build (default: all NN_*.py)")
    ap.add_argument("--fast", action="store_true", help="execute with BAYES_GLMM_FAST=1")
    ap.add_argument("--timeout", type=int, default=3600, help="per-cell timeout in seconds")
    args = ap.parse_args()
    names = args.names or sorted(p.stem for p in HERE.glob("[0-9][0-9]_*.py"))
    for name in names:
        secs = build(name, args.fast, args.timeout)
        print(f"{name}: executed in {secs:.0f} s -> examples/notebooks/{name}.ipynb", flush=True)


if __name__ == "__main__":
    main()

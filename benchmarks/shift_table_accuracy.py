"""Accuracy of the generated C's table of ``lgamma(a + k) - lgamma(a)`` and its derivative
(``bayes.codegen`` ``bg_shift_table``: running sums of ``log(a + j)`` and ``1 / (a + j)``), against
40-digit decimal sums, next to the difference of two lgamma / digamma (SciPy) that the per-row code
takes for counts over 24 (issue 19 item 5).  The table is compiled with the model's flags
(``-ffast-math -march=native``).

Run::

    python benchmarks/shift_table_accuracy.py
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

import numpy as np  # noqa: E402
from scipy import special  # noqa: E402

from test_shift_table import _reference, _table, _table_lib  # noqa: E402

THETAS = [1e-300, 1e-250, 1e-100, 1e-8, 1e-3, 1.0, 10.0, 1e3, 1e6, 1e9, 1e12, 1e15]
KS = [1, 2, 10, 24, 25, 100, 1000, 4096]


def main() -> None:
    lib = _table_lib()
    print("relative errors against 40-digit decimal sums (T: lgamma(a + k) - lgamma(a); D: its derivative in a);\n"
          "'lgamma diff' = scipy gammaln(a + k) - gammaln(a), 'digamma diff' likewise (the per-row code's beyond k = 24)")
    print(f"{'a':>8s} {'k':>5s} {'T':>22s} {'T table':>9s} {'lgamma diff':>11s} {'D table':>9s} {'digamma diff':>12s}")
    worst = {}
    for a in THETAS:
        T, D = _table(lib, a, max(KS) + 1)
        rt, rd = _reference(a, KS)
        for k, t, d in zip(KS, rt, rd):
            scale = max(abs(t), k * max(1.0, abs(np.log(a))) * 1e-2)
            et = abs(T[k] - t) / scale
            ed = abs(D[k] - d) / abs(d)
            lg = abs(special.gammaln(a + k) - special.gammaln(a) - t) / scale
            dg = abs(special.digamma(a + k) - special.digamma(a) - d) / abs(d)
            worst[a] = max(worst.get(a, 0.0), et, ed)
            print(f"{a:8.0e} {k:5d} {t:22.15g} {et:9.1e} {lg:11.1e} {ed:9.1e} {dg:12.1e}")
    print("\nworst relative error of the table (T and D, k <= 4096) per a: "
          + ", ".join(f"{a:.0e}: {e:.1e}" for a, e in worst.items()))


if __name__ == "__main__":
    main()

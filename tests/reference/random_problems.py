"""Seeded generator of random GLMM problems for the randomized agreement test.

Every problem is a (family, structure) cell of the grid

* families: gaussian ML, gaussian REML, bernoulli, binomial (``cbind(s, n - s)``), poisson,
  poisson with an offset (``offset(log(t))``);
* structures: scalar ``(1 | g)``, correlated ``(x | g)``, uncorrelated ``(x || g)``, crossed
  ``(1 | g) + (1 | h)``, nested ``(1 | g/h)``;

with group counts from 5 to 300, random-effect SDs drawn from a set that includes 0 (and
correlations up to +-0.99), and at most 600 rows per data set.  The generator is pure NumPy
and deterministic: ``generate()`` returns the same problems on every platform (values are
rounded to 4 decimals so that the CSV/JSON round trip is exact).

Use (from the repository root)::

    python tests/reference/random_problems.py /tmp/random_problems.json
    Rscript tests/reference/make_random_agreement.R /tmp/random_problems.json

The R script fits every problem with lme4 and glmmTMB and writes
``tests/reference/random_agreement.json`` (problems, data column-wise and both reference
fits); ``tests/test_random_agreement.py`` reads only that file.
"""
from __future__ import annotations

import json
import sys

import numpy as np

SEED = 20261202
REPLICATES = 10
MAX_ROWS = 600

FAMILIES = ("gaussian_ml", "gaussian_reml", "bernoulli", "binomial", "poisson", "poisson_offset")
STRUCTURES = ("scalar", "correlated", "uncorrelated", "crossed", "nested")

#: SDs of the random effects (latent scale; relative to sigma = 1 for the gaussian family)
SD_CHOICES = (0.0, 0.0, 0.01, 0.05, 0.2, 0.5, 1.0, 2.0, 3.0)

_RHS = {
    "scalar": "x + z + (1 | g)",
    "correlated": "x + z + (x | g)",
    "uncorrelated": "x + z + (x || g)",
    "crossed": "x + z + (1 | g) + (1 | h)",
    "nested": "x + z + (1 | g/h)",
}


def _log_uniform_int(rng, lo: int, hi: int) -> int:
    return int(np.clip(np.round(np.exp(rng.uniform(np.log(lo), np.log(hi)))), lo, hi))


def _group_codes(rng, n_groups: int, n: int) -> np.ndarray:
    """Codes 0..n_groups-1, every level used at least once, unbalanced otherwise."""
    extra = rng.choice(n_groups, size=n - n_groups, p=rng.dirichlet(np.full(n_groups, 2.0)))
    codes = np.concatenate([np.arange(n_groups), extra])
    return np.sort(codes)


def _problem(rng, family: str, structure: str, rep: int) -> dict:
    key = f"{family}-{structure}-{rep}"
    slopes = structure in ("correlated", "uncorrelated")
    # group count: 5..300, the row count keeps at least 2 (3 with slopes) rows per level
    min_per = 3 if slopes else 2
    if structure == "nested":
        n_g = _log_uniform_int(rng, 5, 80)
        sub = int(rng.integers(2, 5))  # subgroups per group
        n_cells = n_g * sub
        while n_cells * 2 > MAX_ROWS:
            n_g -= 1
            n_cells = n_g * sub
        n = int(min(MAX_ROWS, n_cells * rng.integers(2, 6)))
        cell = _group_codes(rng, n_cells, n)
        g = cell // sub
        h = cell % sub  # labels reused across groups: only g/h identifies the cell
        n_h = sub
    else:
        n_g = _log_uniform_int(rng, 5, MAX_ROWS // min_per)
        n_g = min(n_g, 300)
        if rep == REPLICATES - 1 and structure in ("scalar", "correlated", "crossed"):
            n_g = MAX_ROWS // min_per  # the extreme: 300 (200 with slopes) levels, min_per rows each
        lo = max(n_g * min_per, 40)
        n = int(rng.integers(lo, max(lo + 1, min(MAX_ROWS, n_g * 12)) + 1))
        n = min(n, MAX_ROWS)
        g = _group_codes(rng, n_g, n)
        h = None
        n_h = 0
        if structure == "crossed":
            n_h = min(_log_uniform_int(rng, 5, 60), n // 2)
            h = rng.integers(0, n_h, size=n)
            h[rng.permutation(n)[:n_h]] = np.arange(n_h)  # every level used
    x = np.round(rng.normal(size=n), 4)
    z = rng.integers(0, 2, size=n).astype(float)

    sd = [float(rng.choice(SD_CHOICES)) for _ in range(2)]
    corr = 0.0
    if structure == "correlated":
        corr = float(np.round(rng.uniform(-0.9, 0.9), 3))
        if rng.uniform() < 1 / 3:
            corr = float(np.sign(corr) * 0.99)  # near the boundary of the correlation
    u0 = rng.normal(size=n_g)
    u1 = rng.normal(size=n_g)
    b0 = sd[0] * u0
    b1 = sd[1] * (corr * u0 + np.sqrt(1 - corr ** 2) * u1)
    family_r = family.split("_")[0]
    beta = np.round(rng.normal(0.0, 0.5, size=3), 3)
    if family_r == "poisson":
        beta[0] = np.round(rng.uniform(-0.5, 1.5), 3)
    eta = beta[0] + beta[1] * x + beta[2] * z + b0[g]
    if slopes:
        eta = eta + b1[g] * x
    truth = {"beta": beta.tolist(), "sd": [sd[0]] + ([sd[1]] if slopes or h is not None else []),
             "corr": corr}
    if h is not None:
        if structure == "nested":
            c = rng.normal(size=n_g * n_h) * sd[1]
            eta = eta + c[g * n_h + h]
        else:
            c = rng.normal(size=n_h) * sd[1]
            eta = eta + c[h]

    cols = {"x": x.tolist(), "z": z.tolist(), "g": [f"g{int(v):03d}" for v in g]}
    if h is not None:
        cols["h"] = [f"h{int(v):02d}" for v in h]
    if family_r == "gaussian":
        y = np.round(eta + rng.normal(size=n), 4)
        cols["y"] = y.tolist()
        lhs, fam = "y", "gaussian"
    elif family == "bernoulli":
        y = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(int)
        cols["y"] = y.tolist()
        lhs, fam = "y", "bernoulli"
    elif family == "binomial":
        size = rng.integers(1, 21, size=n)
        s = rng.binomial(size, 1 / (1 + np.exp(-eta)))
        cols["s"] = s.tolist()
        cols["size"] = size.tolist()
        lhs, fam = "cbind(s, size - s)", "binomial"
    else:
        rhs_off = ""
        if family == "poisson_offset":
            t = np.round(rng.uniform(0.2, 5.0, size=n), 2)
            cols["t"] = t.tolist()
            eta = eta + np.log(t)
        y = rng.poisson(np.exp(np.minimum(eta, 8.0)))
        cols["y"] = y.tolist()
        lhs, fam = "y", "poisson"
    rhs = _RHS[structure]
    if family == "poisson_offset":
        rhs = rhs.replace("x + z", "x + z + offset(log(t))", 1)
    return {
        "key": key,
        "family": fam,
        "cell_family": family,
        "structure": structure,
        "reml": family == "gaussian_reml",
        "formula": f"{lhs} ~ {rhs}",
        "n_obs": int(n),
        "n_groups": int(n_g),
        "n_groups_h": int(n_h),
        "truth": truth,
        "data": cols,
    }


def generate(seed: int = SEED, replicates: int = REPLICATES) -> list:
    """All problems, in a fixed order (family, structure, replicate)."""
    out = []
    for fi, family in enumerate(FAMILIES):
        for si, structure in enumerate(STRUCTURES):
            for rep in range(replicates):
                rng = np.random.default_rng([seed, fi, si, rep])
                out.append(_problem(rng, family, structure, rep))
    return out


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    path = argv[0] if argv else "random_problems.json"
    probs = generate()
    with open(path, "w") as fh:
        json.dump({"seed": SEED, "replicates": REPLICATES, "problems": probs}, fh)
    print(f"wrote {len(probs)} problems to {path}")


if __name__ == "__main__":
    main()

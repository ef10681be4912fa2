"""``sampler="native"``: NUTS in C on a log-density generated from the model's definitions.

The model is the PyMC graph of :mod:`bayes_glmm.bayes.graph`; this module samples the same
density, on the same unconstrained coordinates (the layout of
:class:`bayes_glmm.bayes.density.GlmmDensity`, :meth:`~GlmmDensity.value_var_slices`), with

* C for the log-density and its gradient, *generated* per model structure: the row
  log-density, the priors and the LKJ/CPC factor come from their single Python
  definitions through :mod:`bayes_glmm.bayes.codegen` (forward-mode differentiation of
  :meth:`Family.loglik`, :data:`~bayes_glmm.bayes.codegen.PRIOR_LOGDENS`,
  :func:`~bayes_glmm.bayes.corr.cpc_rows`, and of the random effects per level,
  :func:`~bayes_glmm.bayes.layout.level_effects` / :func:`~bayes_glmm.bayes.layout.level_logp`);
  what is written here is the linear predictor ``eta = Xc beta + sum_t (Xr_t * b_t[codes_t]).sum(1)``
  (a gather, and its transpose a scatter-add) and the loops that apply those pieces, in one
  fused pass over the rows;
* the NUTS of ``csrc/nuts.c`` (multinomial NUTS with Stan's windowed warm-up), one C call
  per chain, chains in parallel threads (ctypes releases the GIL).

No user text reaches the C: names of columns, terms, levels and priors select *indices*
(``P[k]``, ``S[k]``, ``sd<ti>``), never identifiers or comments, and
:func:`~bayes_glmm.bayes.codegen.check_c_source` checks every generated source against the
package's own vocabulary before it is compiled.  :mod:`bayes_glmm.bayes.build` compiles it
with the system C compiler (``$CC``, else ``cc``/``gcc``/``clang``) into a private, verified
cache folder (``$BAYES_GLMM_CACHE_DIR``, else ``~/.cache/bayes_glmm``): a model structure is
compiled once (about 0.5 s), data of any size reuse it.
Without a C compiler :func:`available` is False and ``sampler="auto"`` falls back.
``tests/test_bayes_contract.py`` holds this density equal to the graph, value and gradient.
"""
from __future__ import annotations

import ctypes
import os
import sys
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from .build import _LOADED, available, cache_dir, compiler, load  # noqa: F401 (native's public names)
from .codegen import C_HELPERS, C_OPS, Emitter, RowProgram, check_c_source, cpc_program, prior_params, prior_program
from .density import GlmmDensity
from .layout import HIERARCHICAL, directions, level_effects, level_logp, mode_of

__all__ = ["available", "compiler", "NativeModel", "cache_dir", "STAT_NAMES"]

#: rows per chunk of the row pass (its per-row output, 16 KiB, stays in L1 cache)
_CHUNK = 2048
#: sample_stats names of the columns of nuts.c's per-draw statistics
STAT_NAMES = ("lp", "acceptance_rate", "step_size", "tree_depth", "n_steps", "diverging", "energy",
              "energy_error")


class _Arrays:
    """Runtime arrays handed to C as ``P[k]`` (the generated code knows each k)."""

    def __init__(self):
        self.items = []

    def add(self, a, dtype=np.float64) -> int:
        arr = np.ascontiguousarray(a, dtype=dtype)
        self.items.append(arr)
        return len(self.items) - 1

    def pointers(self):
        ptrs = (ctypes.c_void_p * len(self.items))()
        for i, a in enumerate(self.items):
            ptrs[i] = a.ctypes.data
        return ptrs


def _prior_block(blk, arrays: _Arrays, positive: bool, tag: str, S_expr: str, value_to=None):
    """C for one prior block: a loop over its elements adding the log-density and d/dx
    (generated from :data:`~bayes_glmm.bayes.codegen.PRIOR_LOGDENS`); the prior's parameters,
    broadcast to the block, are runtime arrays; ``value_to`` stores the natural-scale value."""
    size = blk.sl.stop - blk.sl.start
    a = prior_params(blk.prior.name, blk.prior.args)
    ks = [arrays.add(np.broadcast_to(np.asarray(v, dtype=float), (size,))) for v in a]
    code, val, der = prior_program(blk.prior.name, "x[st + i]", ["A0[i]", "A1[i]", "A2[i]"], positive, f"{tag}_")
    lines = ["    {",  # no comment naming the block: names are user text
             f"      const int64_t st = {S_expr};",
             f"      const double *A0 = (const double *)P[{ks[0]}], *A1 = (const double *)P[{ks[1]}],"
             f" *A2 = (const double *)P[{ks[2]}];",
             f"      for (int64_t i = 0; i < {size}; i++) {{",
             "  " + code.replace("\n", "\n  "),
             f"        lp += {val}; g[st + i] += {der};"]
    if value_to is not None:
        lines.append(f"        {value_to}")
    lines += ["      }", "    }"]
    return "\n".join(lines)


def _chain_prior(blk, arrays: _Arrays, i: int, ax: str, prev, S_expr: str) -> str:
    """C for one parameter of an ordered chain: its value ``ax`` (``x[st]`` for the first,
    ``prev + exp(x[st])`` with the Jacobian ``x[st]`` after it) and its prior at that value,
    whose derivative in the value goes to ``gor<i>`` (the chain rule is applied at the end)."""
    a = prior_params(blk.prior.name, blk.prior.args)
    ks = [arrays.add(np.broadcast_to(np.asarray(v, dtype=float), (1,))) for v in a]
    code, val, der = prior_program(blk.prior.name, ax, ["A0[0]", "A1[0]", "A2[0]"], False, f"{ax}_")
    value = f"{ax} = {prev} + exp(x[st]); lp += x[st]; g[st] += 1.0;" if prev is not None else f"{ax} = x[st];"
    return "\n".join(["    {",
                      f"      const int64_t st = {S_expr};",
                      f"      const double *A0 = (const double *)P[{ks[0]}], *A1 = (const double *)P[{ks[1]}],"
                      f" *A2 = (const double *)P[{ks[2]}];",
                      f"      {value}",
                      "  " + code.replace("\n", "\n  "),
                      f"      lp += {val}; gor{i} += {der};",
                      "    }"])


def _term_row(ti: int, info: dict, codes: str, xr: str, stmt) -> str:
    """C of one random term at row ``r``: ``stmt(index into the level x coef array, "Xr * "
    or "")`` for each of its q columns (no multiply for an intercept-only term)."""
    q = info["q"]
    if info["ones"] and q == 1:
        return "        " + stmt(f"{codes}{ti}[r]", "")
    return (f"        {{ const int64_t cl = {codes}{ti}[r];"
            + "".join(" " + stmt(f"cl * {q} + {k}", f"{xr}{ti}[{k} * n + r] * ") for k in range(q)) + " }")


def _term_runs(ti: int, info: dict) -> str:
    """The scatter of one term for rows grouped by its levels: the sums of a run of equal
    codes stay in registers and reach memory once per run (a ``GB[code] += ...`` per row
    waits on the previous store to the same address: 40% of a gradient at 10^6 rows)."""
    q = info["q"]
    xr = (lambda k: "") if (info["ones"] and q == 1) else (lambda k: f"XRs{ti}[{k} * n + r] * ")
    flush = " ".join(f"GB{ti}[(int64_t)cur * {q} + {k}] += a{k};" for k in range(q))
    return "\n".join([
        f"      {{ int32_t cur = CDs{ti}[lo]; " + " ".join(f"double a{k} = 0.0;" for k in range(q)),
        "        for (int64_t r = lo; r < hi; r++) {",
        f"          const int32_t c = CDs{ti}[r]; const double d0 = D0c[r - lo];",
        f"          if (c != cur) {{ {flush} cur = c; " + " ".join(f"a{k} = 0.0;" for k in range(q)) + " }",
        "          " + " ".join(f"a{k} += {xr(k)}d0;" for k in range(q)),
        "        }",
        f"        {flush} }}"])


def _layout_program(ti: int, q: int, corr: bool, centered, mu_expr: str | None = None) -> dict:
    """C of one level of term ``ti``: :func:`~bayes_glmm.bayes.layout.level_effects` and
    :func:`~bayes_glmm.bayes.layout.level_logp` on symbolic dual numbers.

    Directions (:func:`~bayes_glmm.bayes.layout.directions`): ``u_m`` = ``el[m]``,
    ``sd_k`` = ``sd<ti>[k]``, for a correlated term ``L[k][m]`` = ``L<ti>[k][m]`` (``tri``) and,
    for a hierarchically centred one, the intercept ``mu`` = ``mu_expr`` (direction 2q), with the
    level's location and scale the data ``HA<ti>[l]``, ``HS<ti>[l]``.  What
    depends on sd and L only goes to ``pre``, evaluated once per gradient before the loop
    over the levels.  ``total(j)`` is the C of ``d/d direction_j`` of
    ``sum_k gl[k] b_k + log p(u)``: the chain rule back from the effects' gradient ``gl``.
    """
    hier = mode_of(centered) == HIERARCHICAL
    nd, tri = directions(q, corr, hier)
    em = Emitter(nd, f"y{ti}_")
    u = [em.var(f"el[{m}]", m) for m in range(q)]
    sd = [em.var(f"sd{ti}[{k}]", q + k, inv=True) for k in range(q)]
    L = [[em.var(f"L{ti}[{k}][{m}]", tri[(k, m)], inv=True) if m <= k else None for m in range(q)]
         for k in range(q)] if corr else None
    lev = (em.var(mu_expr, 2 * q, inv=True), em.data(f"HA{ti}[l]"), em.data(f"HS{ti}[l]")) if hier else None
    b = [em.lift(v) for v in level_effects(u, sd, L, centered, lev)]
    lpu = em.lift(level_logp(u, sd, centered, C_OPS, lev))

    def total(j):
        parts = [f"gl[{k}] * ({bk.d[j]})" for k, bk in enumerate(b) if bk.d[j] is not None]
        if lpu.d[j] is not None:
            parts.append(lpu.d[j])
        return " + ".join(parts) or "0.0"

    return dict(pre="\n".join("      " + ln for ln in em.pre), lines="\n".join("        " + ln for ln in em.lines),
                b=[bk.v for bk in b], lp=lpu.v, tri=tri, total=total, mu_dir=2 * q if hier else None)


#: the largest count looked up in a table of lgamma(a + k) - lgamma(a) (RowProgram.tables): the
#: running sums stay within 5e-14 relative up to there (codegen.C_HELPERS, bg_shift_table)
_TABLE_MAX = 4096


def _table_length(v, n: int) -> int:
    """Length ``max(v) + 1`` of a table over the counts ``v`` (a data column), or 0 when ``v``
    is not all integers in ``[0, 4096]`` or the table would cost more than the rows it serves.

    A table entry costs a log and a division once per gradient (~4.4 ns), a row ~16 ns less than
    its short product (NB2, 400 rows: break-even near 3.7 n entries,
    ``benchmarks/results/bench_nuts_2026-12-07e_nbtable_grad.txt``): at most ``2 n + 64`` entries.
    """
    if v is None:
        return 0
    v = np.asarray(v, dtype=float)
    if v.size == 0 or not np.all(np.isfinite(v)):
        return 0
    top = float(v.max())
    if float(v.min()) < 0.0 or top > min(_TABLE_MAX, 2 * n + 64) or not np.all(v == np.floor(v)):
        return 0
    return int(top) + 1


def generate(density: GlmmDensity):
    """C source of a model's log-density and entry points, with its runtime data.

    The source depends on the model's structure only (family, link, zi, priors, terms,
    which columns are constant); sizes, offsets and data are runtime arrays ``P[k]``
    (``P[0]`` = the int64 table ``S`` of sizes and offsets), so one compiled library serves
    any data set of the same structure.

    Returns
    -------
    (source, arrays, work_size, n_precomputed)
        ``arrays``: the runtime arrays (:class:`_Arrays`); ``work_size``: doubles of
        per-chain workspace W (effects and their gradients); ``n_precomputed``: data-only
        values per row (the table PC).
    """
    spec, d = density.spec, density
    A = _Arrays()
    S = [spec.n, d.ndim]  # runtime sizes: S[k]
    s_idx = A.add(np.zeros(1), np.int64)  # placeholder, replaced at the end

    def S_add(v):
        S.append(int(v))
        return f"S[{len(S) - 1}]"

    p = spec.p
    fam = spec.family
    # integer counts up to a cap: lgamma(a + y) - lgamma(a) of a row-invariant a from a table
    tab_len = {col: _table_length(v, spec.n) for col, v in
               (("yr", d.resp.y), ("nr", d.resp.n_trials if fam.needs_trials else None))}
    rows = RowProgram(fam, spec.has_zi, spec.has_disp, counts=tuple(c for c, k in tab_len.items() if k))
    body = []
    # ---- priors of the fixed effects (and zero inflation)
    for j, (blk, cols) in enumerate(d.fixed_blocks):
        body.append(_prior_block(blk, A, False, f"f{j}", S_add(blk.sl.start)))
    for j, (blk, cols) in enumerate(d.zi_blocks):
        body.append(_prior_block(blk, A, False, f"z{j}", S_add(blk.sl.start)))
    for j, (blk, cols) in enumerate(d.disp_blocks):  # a dispersion formula's coefficients
        body.append(_prior_block(blk, A, False, f"dp{j}", S_add(blk.sl.start)))
    # ---- the family's auxiliary parameters (sigma, a dispersion, ...): ax<i> on the natural scale
    aux_pos = []
    chains, i = [], 0  # ordered chains of the aux blocks: a parameter and the ordered ones after it
    while i < len(d.aux):
        j = i + 1
        while j < len(d.aux) and d.aux[j].ordered:
            j += 1
        if j > i + 1:
            chains.append((i, j))
        i = j
    in_chain = {i for a, b in chains for i in range(a, b)}
    for i, (blk, ax) in enumerate(zip(d.aux, rows.aux)):
        body.append(f"    double {ax} = 0.0;")
        if i in in_chain:  # an ordered chain: the prior at the value, d/d(value) into gor<i>
            body.append(f"    double gor{i} = 0.0;")
            body.append(_chain_prior(blk, A, i, ax, rows.aux[i - 1] if blk.ordered else None,
                                     S_add(blk.sl.start)))
        else:
            body.append(_prior_block(blk, A, blk.positive, ax, S_add(blk.sl.start),
                                     value_to=f"{ax} = {'exp(x[st])' if blk.positive else 'x[st]'};"))
        aux_pos.append(S_add(blk.sl.start))
    # ---- random terms: SDs, L, effects b into W
    term_info = []
    for ti, (t, scale, eff, cen, _) in enumerate(d.terms):
        q, L = t.q, t.n_levels
        is_var = scale.name.startswith("var_")
        st_sd = S_add(scale.sl.start)
        st_e = S_add(eff.sl.start)
        SL = S_add(L)
        wb, wg = S_add(0), S_add(0)  # offsets into W, filled below
        term_info.append(dict(t=t, q=q, SL=SL, wb=wb, wg=wg, wb_at=len(S) - 2, wg_at=len(S) - 1, st_sd=st_sd, st_e=st_e, is_var=is_var, cen=cen,
                              corr=d.corr.get(t.ident), ones=bool(np.all(np.asarray(t.Xr) == 1.0)),
                              # rows grouped by level (runs of >= 4 equal codes on average)
                              runs=bool(np.count_nonzero(np.diff(t.codes)) + 1 <= len(t.codes) / 4),
                              kXrT=A.add(np.ascontiguousarray(np.asarray(t.Xr).T))))
        idx = d.sd_index.get(t.ident)
        term_info[-1]["sd_index"] = idx
        if idx is None:
            body.append(f"    double sd{ti}[{q}];")
            body.append(_prior_block(scale, A, True, f"sd{ti}", st_sd,
                                     value_to=f"sd{ti}[i] = {'exp(0.5 * x[st + i])' if is_var else 'exp(x[st + i])'};"))
        else:  # SDs shared by coefficients (ar1): the free ones after the q used, then mapped
            body.append(f"    double sd{ti}[{q + scale.sl.stop - scale.sl.start}];")
            body.append(_prior_block(scale, A, True, f"sd{ti}", st_sd, value_to=f"sd{ti}[{q} + i] = exp(x[st + i]);"))
            body.append("    " + " ".join(f"sd{ti}[{j}] = sd{ti}[{q + int(idx[j])}];" for j in range(q)))
        ch = d.corr.get(t.ident)
        e = f"(x + {st_e})"
        B, GB = f"(W + {wb})", f"(W + {wg})"
        if ch is not None:
            st_c = S_add(ch.sl.start)
            code, Lm, dL, lkj, dlkj = cpc_program(q, ch.a, ch.const, f"xc{ti}", f"c{ti}_", ch.cov)
            term_info[-1].update(dL=dL, dlkj=dlkj, st_c=st_c)
            body.append(f"    const double *xc{ti} = x + {st_c};")
            body.append(code)
            body.append(f"    double L{ti}[{q}][{q}];")
            for i in range(q):
                for m in range(q):
                    body.append(f"    L{ti}[{i}][{m}] = {Lm[i][m]};")
            body.append(f"    lp += {lkj};")
        # a hierarchically centred term's levels are centred at the intercept (b = c - mu)
        mu_at = S_add(d.mu_idx) if mode_of(cen) == HIERARCHICAL else None
        term_info[-1]["mu_at"] = mu_at
        if mu_at is not None:  # the levels' locations and scales, runtime data
            ha, hs = (A.add(v) for v in d.level_scales[t.ident])
            body.append(f"    const double *HA{ti} = (const double *)P[{ha}], *HS{ti} = (const double *)P[{hs}];")
        lay = _layout_program(ti, q, ch is not None, cen, None if mu_at is None else f"x[{mu_at}]")
        term_info[-1]["layout"] = lay
        # b of every level, and log p(u), from layout.level_effects / level_logp
        body.append("    { double lpu = 0.0;")
        body.append(lay["pre"])
        body.append(f"      for (int64_t l = 0; l < {SL}; l++) {{ const double *el = {e} + l * {q};"
                    f" double *bl = {B} + l * {q};")
        body.append(lay["lines"])
        body.append("        " + " ".join(f"bl[{k}] = {v};" for k, v in enumerate(lay["b"])) + f" lpu += {lay['lp']}; }}")
        body.append("      lp += lpu; }")
        body.append(f"    memset({GB}, 0, sizeof(double) * {SL} * {q});")
    # W layout: per term B then GB
    off = 0
    for info in term_info:
        n_el = info["t"].n_levels * info["q"]
        S[info["wb_at"]] = off
        S[info["wg_at"]] = off + n_el
        off += 2 * n_el
    wsize = off
    tab_at = []  # the tables of RowProgram.tables: (offset into W, length), runtime sizes
    for a, col in rows.tables:
        tab_at.append((S_add(wsize), S_add(tab_len[col])))
        wsize += 2 * tab_len[col]
    # ---- the rows
    # Data layout for the pass over the rows (memory-bound at 10^6 rows): column-major copies
    # (unit stride), constant-1 columns (the intercept) not stored at all, 32-bit level codes,
    # and the response / trials as float32 when that is exact (counts, 0/1).
    def exact32(v):
        v = np.asarray(v, dtype=float)
        return bool(np.all(v.astype(np.float32).astype(float) == v))

    Xc = np.asarray(d.Xc, dtype=float)
    ones = [bool(np.all(Xc[:, j] == 1.0)) for j in range(p)]
    kX = {j: A.add(Xc[:, j]) for j in range(p) if not ones[j]}
    kcidx = A.add(d.coef_idx, np.int64)
    yt = "float" if exact32(d.resp.y) else "double"
    ky = A.add(d.resp.y, np.float32 if yt == "float" else np.float64)
    nt_t = "float" if (fam.needs_trials and exact32(d.resp.n_trials)) else "double"
    knt = A.add(d.resp.n_trials, np.float32 if nt_t == "float" else np.float64) if fam.needs_trials else None
    kpw = None if d.unit else A.add(d.resp.pw)
    koff = None if d.offset is None else A.add(d.offset)
    pz = spec.p_zi if spec.has_zi else 0
    if pz:
        Xz = np.asarray(d.Xzc, dtype=float)
        zones = [bool(np.all(Xz[:, j] == 1.0)) for j in range(pz)]
        kXz = {j: A.add(Xz[:, j]) for j in range(pz) if not zones[j]}
        kzidx = A.add(d.zi_idx, np.int64)
    pd_ = spec.p_disp
    if pd_:
        Xd = np.asarray(d.Xdc, dtype=float)
        dones = [bool(np.all(Xd[:, j] == 1.0)) for j in range(pd_)]
        kXd = {j: A.add(Xd[:, j]) for j in range(pd_) if not dones[j]}
        kdidx = A.add(d.disp_idx, np.int64)
    for info in term_info:
        info["kcodes"] = A.add(info["t"].codes, np.int32)
    # The pass over the rows is its own function with restrict parameters: the compiler then
    # knows the gathered effects, the data and the per-row output do not alias, and vectorizes
    # it (exp/log included).  It runs on chunks of CHUNK rows, each followed by the scatter-add
    # of d ll / d eta into the effects' gradients, so the per-row output stays in L1 cache.
    params, args = ["const int64_t lo", "const int64_t hi"] + [f"const double {ax}" for ax in rows.aux], \
        ["lo", "hi"] + list(rows.aux)

    def arr(name, k, ctype="double", out=False):
        params.append(f"{'' if out else 'const '}{ctype} *restrict {name}")
        args.append(k if isinstance(k, str) else f"(const {ctype} *)P[{k}]")

    for j, k in kX.items():
        arr(f"X{j}", k)
    arr("Y", ky, yt)
    if knt is not None:
        arr("NT", knt, nt_t)
    if kpw is not None:
        arr("PW", kpw)
    if koff is not None:
        arr("OFF", koff)
    if rows.npc:
        arr("PC", "PC")
    for i in range(len(rows.tables)):
        arr(f"tv{i}", f"tv{i}")
        arr(f"td{i}", f"td{i}")
    if pz:
        for j, k in kXz.items():
            arr(f"XZ{j}", k)
    if pd_:
        for j, k in kXd.items():
            arr(f"XD{j}", k)
    for ti, info in enumerate(term_info):
        arr(f"CD{ti}", info["kcodes"], "int32_t")
        if not (info["ones"] and info["q"] == 1):
            arr(f"XR{ti}", info["kXrT"])
        arr(f"B{ti}", f"W + {info['wb']}")
    if term_info:
        arr("D0", "D0c", out=True)
    for j in range(p):
        params.append(f"const double bt{j}")
        args.append(f"x[cidx[{j}]]")
    for j in range(pz):
        params.append(f"const double bz{j}")
        args.append(f"x[zidx[{j}]]")
    for j in range(pd_):
        params.append(f"const double bd{j}")
        args.append(f"x[didx[{j}]]")
    for nm in rows.pre_names:  # the dispersion-only values, computed once per gradient
        params.append(f"const double {nm}")
        args.append(nm)
    params.append("double *restrict acc")
    args.append("acc")
    na = len(rows.aux)
    nacc = 1 + na + p + pz + pd_  # ll_sum, gax_i, gbt_j, gbz_j, gbd_j
    def xj(j):
        return "1.0" if ones[j] else f"X{j}[r]"

    def xzj(j):
        return "1.0" if zones[j] else f"XZ{j}[r]"

    def xdj(j):
        return "1.0" if dones[j] else f"XD{j}[r]"

    rp = [f"static void bg_rowpass({', '.join(params)}) {{",
          "    double ll_sum = 0.0;"]
    rp += [f"    double gax{i} = 0.0;" for i in range(na)]
    rp += [f"    double gbt{j} = 0.0;" for j in range(p)] + [f"    double gbz{j} = 0.0;" for j in range(pz)]
    rp += [f"    double gbd{j} = 0.0;" for j in range(pd_)]
    rp.append("    for (int64_t r = lo; r < hi; r++) {")
    rp.append("        double eta = " + ("OFF[r]" if koff is not None else "0.0")
              + "".join(f" + {xj(j)} * bt{j}" for j in range(p)) + ";")
    for ti, info in enumerate(term_info):  # eta += (Xr * b[codes]).sum(1)
        rp.append(_term_row(ti, info, "CD", "XR", lambda i, xr, t=ti: f"eta += {xr}B{t}[{i}];"))
    if pz:
        rp.append("        const double ez = 0.0" + "".join(f" + {xzj(j)} * bz{j}" for j in range(pz)) + ";")
    if pd_:
        rp.append("        const double ed = 0.0" + "".join(f" + {xdj(j)} * bd{j}" for j in range(pd_)) + ";")
    rp.append("        const double yr = (double)Y[r];")
    rp.append("        const double nr = " + ("(double)NT[r]" if knt is not None else "1.0") + ";")
    rp.append("        (void)nr;")
    rp.append(rows.code)
    w = "PW[r] * " if kpw is not None else ""
    rp.append(f"        ll_sum += {w}{rows.ll};")
    rp.append(f"        const double d0 = {w}{rows.d_eta};")
    rp += [f"        gbt{j} += d0 * {xj(j)};" for j in range(p)]
    if term_info:
        rp.append("        D0[r - lo] = d0;")
    rp += [f"        gax{i} += {w}{da};" for i, da in enumerate(rows.d_aux)]
    if pz:
        rp.append(f"        {{ const double d2 = {w}{rows.d_zi};" + "".join(
            f" gbz{j} += d2 * {xzj(j)};" for j in range(pz)) + " }")
    if pd_:
        rp.append(f"        {{ const double d3 = {w}{rows.d_disp};" + "".join(
            f" gbd{j} += d3 * {xdj(j)};" for j in range(pd_)) + " }")
    rp.append("    }")
    rp.append("    acc[0] += ll_sum;")
    rp += [f"    acc[{1 + i}] += gax{i};" for i in range(na)]
    rp += [f"    acc[{1 + na + j}] += gbt{j};" for j in range(p)]
    rp += [f"    acc[{1 + na + p + j}] += gbz{j};" for j in range(pz)]
    rp += [f"    acc[{1 + na + p + pz + j}] += gbd{j};" for j in range(pd_)]
    rp.append("}")
    # XR columns are read as XR[k * n + r] inside: n must be known there
    rowpass = "\n".join(rp).replace("static void bg_rowpass(", "static void bg_rowpass(const int64_t n, ", 1)
    args.insert(0, "n")

    body.append(f"    const int64_t *cidx = (const int64_t *)P[{kcidx}]; (void)cidx;")
    if pz:
        body.append(f"    const int64_t *zidx = (const int64_t *)P[{kzidx}];")
    if pd_:
        body.append(f"    const int64_t *didx = (const int64_t *)P[{kdidx}];")
    body.append(rows.pre)
    for i, ((a, col), (wo, kk)) in enumerate(zip(rows.tables, tab_at)):
        body.append(f"    double *tv{i} = W + {wo}, *td{i} = tv{i} + {kk}; bg_shift_table({a}, {kk}, tv{i}, td{i});")
    body.append(f"    double acc[{nacc}];")
    body.append(f"    for (int j = 0; j < {nacc}; j++) acc[j] = 0.0;")
    for ti, info in enumerate(term_info):
        body.append(f"    double *GB{ti} = W + {info['wg']};")
        body.append(f"    const int32_t *CDs{ti} = (const int32_t *)P[{info['kcodes']}];")
        if not (info["ones"] and info["q"] == 1):
            body.append(f"    const double *XRs{ti} = (const double *)P[{info['kXrT']}];")
    body.append(f"    double D0c[{_CHUNK}]; (void)D0c;")
    body.append(f"    for (int64_t lo = 0; lo < n; lo += {_CHUNK}) {{")
    body.append(f"      const int64_t hi = lo + {_CHUNK} < n ? lo + {_CHUNK} : n;")
    body.append(f"      bg_rowpass({', '.join(args)});")
    if term_info:
        plain = [ti for ti, info in enumerate(term_info) if not info["runs"]]
        if plain:
            body.append("      for (int64_t r = lo; r < hi; r++) {")
            body.append("        const double d0 = D0c[r - lo];")
            for ti in plain:  # d b += Xr * d0, scattered to the levels
                body.append(_term_row(ti, term_info[ti], "CDs", "XRs", lambda i, xr, t=ti: f"GB{t}[{i}] += {xr}d0;"))
            body.append("      }")
        for ti, info in enumerate(term_info):
            if info["runs"]:
                body.append(_term_runs(ti, info))
    body.append("    }")
    body.append("    lp += acc[0];")
    for j in range(p):
        body.append(f"    g[cidx[{j}]] += acc[{1 + na + j}];")
    for j in range(pz):
        body.append(f"    g[zidx[{j}]] += acc[{1 + na + p + j}];")
    for j in range(pd_):
        body.append(f"    g[didx[{j}]] += acc[{1 + na + p + pz + j}];")
    for i, (blk, ax, at) in enumerate(zip(d.aux, rows.aux, aux_pos)):  # positive: d/d log(v) = v d/dv
        if i in in_chain:
            body.append(f"    gor{i} += acc[{1 + i}];")
        else:
            body.append(f"    g[{at}] += acc[{1 + i}]{' * ' + ax if blk.positive else ''};")
    for a, b in chains:  # value_k = value_a + sum_{a < j <= k} exp(x_j): d/dx_j sums d/d(value_k), k >= j
        for k in range(b - 2, a - 1, -1):
            body.append(f"    gor{k} += gor{k + 1};")
        for k in range(a, b):
            body.append(f"    g[{aux_pos[k]}] += gor{k}{f' * exp(x[{aux_pos[k]}])' if k > a else ''};")
    # ---- back through the layout (b = diag(sd) L u) to u, the SDs and L
    for ti, info in enumerate(term_info):
        q, SL, st_e, st_sd, lay = info["q"], info["SL"], info["st_e"], info["st_sd"], info["layout"]
        body.append(f"    {{ /* term {ti} */")
        body.append(f"      const double *e = x + {st_e}; double *ge = g + {st_e}; double dsd[{q}];")
        body.append(f"      for (int k = 0; k < {q}; k++) dsd[k] = 0.0;")
        if lay["mu_dir"] is not None:
            body.append("      double dmu = 0.0;")
        if info["corr"] is not None:
            body.append(f"      double GL[{q}][{q}]; for (int k = 0; k < {q}; k++) for (int m = 0; m < {q}; m++) GL[k][m] = 0.0;")
        body.append(lay["pre"])
        body.append(f"      for (int64_t l = 0; l < {SL}; l++) {{ const double *el = e + l * {q};"
                    f" const double *gl = GB{ti} + l * {q};")
        body.append(lay["lines"])
        # d/d direction of sum_k gl[k] b_k + log p(u)
        for m in range(q):
            body.append(f"        ge[l * {q} + {m}] += {lay['total'](m)};")
        for k in range(q):
            body.append(f"        dsd[{k}] += {lay['total'](q + k)};")
        for (k, m), j in lay["tri"].items():
            body.append(f"        GL[{k}][{m}] += {lay['total'](j)};")
        if lay["mu_dir"] is not None:
            body.append(f"        dmu += {lay['total'](lay['mu_dir'])};")
        body.append("      }")
        if lay["mu_dir"] is not None:  # b = c - mu: back to the intercept
            body.append(f"      g[{info['mu_at']}] += dmu;")
        if info["corr"] is not None:
            for j in range(len(info["dlkj"])):
                terms = [f"GL[{i}][{m}] * ({info['dL'][i][m][j]})" for i in range(q) for m in range(q)
                         if info["dL"][i][m][j] is not None]
                dl = info["dlkj"][j] or "0.0"
                body.append(f"      g[{info['st_c']} + {j}] += {dl}" + "".join(" + " + s for s in terms) + ";")
        dz = "0.5 * sd{ti}[k]".format(ti=ti) if info["is_var"] else f"sd{ti}[k]"
        if info["sd_index"] is None:
            body.append(f"      for (int k = 0; k < {q}; k++) g[{st_sd} + k] += dsd[k] * {dz};")
        else:  # a shared SD collects its coefficients' derivatives (d/d log sd)
            body.append("      " + " ".join(f"g[{st_sd} + {int(info['sd_index'][k])}] += dsd[{k}] * sd{ti}[{k}];"
                                            for k in range(q)))
        body.append("    }")
    A.items[s_idx] = np.asarray(S, dtype=np.int64)
    # the pointwise log-likelihood builds its tables per draw, on its stack (at most 2 x 4097 doubles each)
    tabs_ll = ([f"    double tv{i}[{kk}], td{i}[{kk}];" for i, (wo, kk) in enumerate(tab_at)],
               [f"    bg_shift_table({a}, {kk}, tv{i}, td{i});" for i, ((a, col), (wo, kk)) in
                enumerate(zip(rows.tables, tab_at))])
    src = _assemble(body, rows, knt, ky, rowpass, yt, nt_t, tabs_ll)
    check_c_source(src)  # structural: only the package's identifiers, characters and comments
    return src, A, wsize, rows.npc


def _assemble(body, rows, knt, ky, rowpass, yt="double", nt_t="double", tabs_ll=((), ())) -> str:
    pre = ["#include <math.h>", "#include <stdint.h>", "#include <string.h>", '#include "nuts.h"',
           C_HELPERS, f"#define NPC {max(rows.npc, 1)}", rowpass,
           "typedef struct { const void *const *P; double *W; const double *PC; } bg_ctx;",
           "static double bg_logp(void *vctx, const double *x, double *g) {",
           "    const bg_ctx *c = (const bg_ctx *)vctx;",
           "    const void *const *P = c->P; double *W = c->W; const double *PC = c->PC; (void)PC;",
           "    const int64_t *S = (const int64_t *)P[0];",
           "    const int64_t n = S[0];",
           "    memset(g, 0, sizeof(double) * S[1]);",
           "    double lp = 0.0;"]
    post = ["    return lp;", "}", "",
            "void bg_precompute(const void *const *P, double *PC) {",
            "    const int64_t *S = (const int64_t *)P[0]; const int64_t n = S[0];",
            f"    const {yt} *Y = (const {yt} *)P[{ky}];",
            (f"    const {nt_t} *NT = (const {nt_t} *)P[{knt}];" if knt is not None else ""),
            "    for (int64_t r = 0; r < n; r++) {",
            "        const double yr = (double)Y[r]; const double nr = " + ("(double)NT[r]" if knt is not None else "1.0") + ";",
            "        (void)yr; (void)nr;",
            rows.pre_code, "    }", "}", "",
            "/* the conditional log-density of every row at D linear predictors (pointwise log-likelihood) */",
            "void bg_rows_ll(const void *const *P, const double *PC, const double *ETA, const double *EZ,",
            "                const double *ED, const double *SC, int64_t D, double *OUT) {",
            "    const int64_t *S = (const int64_t *)P[0]; const int64_t n = S[0];",
            f"    const {yt} *Y = (const {yt} *)P[{ky}];",
            (f"    const {nt_t} *NT = (const {nt_t} *)P[{knt}];" if knt is not None else ""),
            *tabs_ll[0],
            "    for (int64_t s = 0; s < D; s++) {",
            *[f"    const double {ax} = SC[s * {len(rows.aux)} + {i}];" for i, ax in enumerate(rows.aux)],
            rows.pre,
            *tabs_ll[1],
            "    for (int64_t r = 0; r < n; r++) {",
            "        const double eta = ETA[s * n + r]; const double ez = EZ ? EZ[s * n + r] : 0.0; (void)ez;",
            "        const double ed = ED ? ED[s * n + r] : 0.0; (void)ed;",
            "        const double yr = (double)Y[r]; const double nr = " + ("(double)NT[r]" if knt is not None else "1.0") + "; (void)nr;",
            rows.code,
            f"        OUT[s * n + r] = {rows.ll};",
            "    }", "    }", "}", "",
            "double bg_logp_grad(const void *const *P, double *W, const double *PC, const double *x, double *g) {",
            "    bg_ctx c = {P, W, PC}; return bg_logp(&c, x, g);", "}", "",
            "int bg_sample(const void *const *P, double *W, const double *PC, const bg_nuts_cfg *cfg, const double *init,",
            "              double *draws, double *stats, double *inv_mass, volatile int *progress, volatile int *stop) {",
            "    bg_ctx c = {P, W, PC};",
            "    return bg_nuts_sample(bg_logp, &c, cfg, init, draws, stats, inv_mass, progress, stop);", "}", ""]
    return "\n".join(pre + body + post)


class _Cfg(ctypes.Structure):
    """``bg_nuts_cfg`` of ``csrc/nuts.h``."""
    _fields_ = [("ndim", ctypes.c_int), ("tune", ctypes.c_int), ("draws", ctypes.c_int),
                ("max_depth", ctypes.c_int), ("target_accept", ctypes.c_double), ("init_step", ctypes.c_double),
                ("seed", ctypes.c_uint64), ("chain", ctypes.c_int), ("adapt_start", ctypes.c_int),
                ("n_windows", ctypes.c_int), ("window_ends", ctypes.POINTER(ctypes.c_int)),
                ("state_out", ctypes.c_void_p), ("seconds_out", ctypes.c_void_p),
                ("init_inv_mass", ctypes.c_void_p)]


def _build(src: str) -> ctypes.CDLL:
    """The model's library, compiled, cached and verified by :func:`bayes_glmm.bayes.build.load`,
    with the argument types of its entry points."""
    lib = load(src)
    lib.bg_logp_grad.restype = ctypes.c_double
    lib.bg_logp_grad.argtypes = [ctypes.c_void_p] * 5
    lib.bg_precompute.restype = None
    lib.bg_precompute.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.bg_rows_ll.restype = None
    lib.bg_rows_ll.argtypes = [ctypes.c_void_p] * 6 + [ctypes.c_int64, ctypes.c_void_p]
    lib.bg_sample.restype = ctypes.c_int
    lib.bg_sample.argtypes = [ctypes.c_void_p] * 10
    return lib


def _ptr(a) -> ctypes.c_void_p:
    return ctypes.c_void_p(a.ctypes.data)


class NativeModel:
    """A GLMM's log-density compiled to C with its NUTS.

    Parameters
    ----------
    density : GlmmDensity
        The model's layout (unconstrained coordinates, blocks and priors).
    """

    def __init__(self, density: GlmmDensity):
        self.density = density
        self.ndim = density.ndim
        self.source, self._arrays, self._wsize, npc = generate(density)
        self.lib = _build(self.source)
        self._P = self._arrays.pointers()
        self._PC = np.zeros(max(npc, 1) * density.spec.n)
        self.lib.bg_precompute(self._P, _ptr(self._PC))

    def _work(self):
        return np.zeros(max(self._wsize, 1))

    def logp_grad(self, x):
        """(log-density, gradient) at the unconstrained point ``x`` (same constants as
        :meth:`GlmmDensity.logp_grad` up to data-only terms)."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        g = np.empty(self.ndim)
        W = self._work()
        lp = self.lib.bg_logp_grad(self._P, _ptr(W), _ptr(self._PC), _ptr(x), _ptr(g))
        return float(lp), g

    def rows_loglik(self, eta, eta_zi=None, aux=None, eta_disp=None) -> np.ndarray:
        """Unweighted conditional log-density of every row, (D, n), at linear predictors ``eta``
        (D, n), zero-inflation predictors ``eta_zi`` and the family's auxiliary parameters
        ``aux`` ((D, A), ``family.aux_params`` order, natural scale; None without any; with a
        dispersion formula without the first, which is ``exp(eta_disp)`` (D, n) per row):
        :meth:`Family.loglik` (with :func:`~bayes_glmm.families.zi_loglik`) as the generated C."""
        eta = np.ascontiguousarray(eta, dtype=np.float64)
        D = eta.shape[0]
        ez = None if eta_zi is None else np.ascontiguousarray(eta_zi, dtype=np.float64)
        ed = None if eta_disp is None else np.ascontiguousarray(eta_disp, dtype=np.float64)
        if (ed is None) == bool(self.density.disp_blocks):
            raise ValueError("rows_loglik: eta_disp= (D, n) is needed with a dispersion formula, and only then")
        na = len(self.density.aux)
        if (aux is None) != (na == 0):
            raise ValueError(f"rows_loglik: aux= must hold the family's {na} auxiliary parameter(s) per draw, "
                             f"shape (D, {na})" if na else "rows_loglik: the family has no auxiliary parameter; aux=None")
        sc = None if aux is None else np.ascontiguousarray(np.reshape(aux, (D, na)), dtype=np.float64)
        out = np.empty_like(eta)
        self.lib.bg_rows_ll(self._P, _ptr(self._PC), _ptr(eta), None if ez is None else _ptr(ez),
                            None if ed is None else _ptr(ed),
                            None if sc is None else _ptr(sc), ctypes.c_int64(D), _ptr(out))
        return out

    def sample(self, draws: int, tune: int, chains: int, *, seed: int, target_accept: float = 0.8,
               max_depth: int = 10, cores: int | None = None, init=None, init_step: float = -1.0,
               progressbar: bool = False, inv_mass=None):
        """Run ``chains`` NUTS chains (in parallel threads, ``cores`` at a time).

        Parameters
        ----------
        draws, tune, chains : int
            Kept iterations, warm-up iterations and chains.
        seed : int
            Chain ``c`` runs the stream ``SeedSequence(seed).spawn(chains)[c]``: identical
            draws for the same seed, in parallel or not.
        target_accept : float
            Dual averaging target of the mean acceptance statistic.
        max_depth : int
            Largest tree depth (at most ``2**max_depth`` gradients per iteration).
        cores : int, optional
            Threads (default: all CPUs, at most ``chains``).
        init : list of ndarray, optional
            Starting points (default :meth:`GlmmDensity.initial_point`).
        init_step : float
            First step size (<= 0: Stan's heuristic).
        progressbar : bool
            Print the iterations done on stderr while sampling.
        inv_mass : ndarray (ndim,), optional
            Initial diagonal inverse metric (:mod:`bayes_glmm.bayes.laplace_init`); the
            warm-up windows' estimates are shrunk towards it.  Default: the unit metric and
            Stan's regularization towards 1e-3.

        Returns
        -------
        x : ndarray (chains, draws, ndim)
            Draws of the unconstrained coordinates.
        stats : dict of ndarray (chains, draws)
            :data:`STAT_NAMES`; and ``warmup_seconds``, ``sampling_seconds`` (chains,): the CPU
            seconds of each chain's thread in the warm-up and in the kept draws.

        Raises
        ------
        bayes_glmm.bayes.failures.SamplerError
            A chain failed (no finite starting point, a failed step-size search -- the
            posterior may be improper --, a non-finite metric); it names the parameters
            involved, and the other chains are stopped.  No draws are returned.
        KeyboardInterrupt
            On Ctrl-C: every chain stops within one leapfrog step (one gradient) and nothing
            is returned.

        Notes
        -----
        The warm-up follows :func:`bayes_glmm.bayes.adaptation.windows` (Stan's windows),
        handed to the C engine as the list of window ends.
        """
        from .adaptation import window_ends, windows
        from .failures import RC_OK, RC_STEP_ZERO, RC_STOPPED, coordinate_names, engine_error

        ss = np.random.SeedSequence(seed)
        seeds = [int(s.generate_state(1, np.uint64)[0]) for s in ss.spawn(chains)]
        if init is None:
            init = [self.density.initial_point(int(s % (2 ** 32)), self.logp_grad) for s in seeds]
        sched = windows(int(tune))
        ends = window_ends(sched)
        ends_c = (ctypes.c_int * max(1, len(ends)))(*ends)
        # the chains write into these directly: after a stop nothing is copied
        out = np.empty((chains, draws, self.ndim))
        st = np.empty((chains, draws, len(STAT_NAMES)))
        last = np.zeros((chains, self.ndim))
        inv_mass0 = None if inv_mass is None else np.ascontiguousarray(inv_mass, dtype=np.float64).reshape(self.ndim)
        inv_mass = np.ones((chains, self.ndim))
        seconds = np.zeros((chains, 2))  # per chain: CPU seconds of the warm-up and of the draws
        stop = (ctypes.c_int * chains)()
        prog = (ctypes.c_int * chains)()
        results = [None] * chains

        def run(c):
            cfg = _Cfg(self.ndim, int(tune), int(draws), int(max_depth), float(target_accept), float(init_step),
                       seeds[c], c, sched.init_buffer, len(ends), ctypes.cast(ends_c, ctypes.POINTER(ctypes.c_int)),
                       last[c].ctypes.data, seconds[c].ctypes.data,
                       None if inv_mass0 is None else inv_mass0.ctypes.data)
            x0 = np.ascontiguousarray(init[c], dtype=np.float64)
            W = self._work()
            rc = self.lib.bg_sample(self._P, _ptr(W), _ptr(self._PC), ctypes.byref(cfg), _ptr(x0), _ptr(out[c]),
                                    _ptr(st[c]), _ptr(inv_mass[c]),
                                    ctypes.byref(prog, c * ctypes.sizeof(ctypes.c_int)),
                                    ctypes.byref(stop, c * ctypes.sizeof(ctypes.c_int)))
            results[c] = rc
            if rc not in (RC_OK, RC_STOPPED):
                for k in range(chains):  # one chain failed: no point running the others
                    stop[k] = 1

        workers = max(1, min(chains, cores or os.cpu_count() or 1))
        pool = ThreadPoolExecutor(max_workers=workers)
        futs = [pool.submit(run, c) for c in range(chains)]
        total = chains * (int(tune) + int(draws))
        shown, outcome = False, "interrupted"
        line = f"NUTS (native): {{}}/{total} iterations, {chains} chain(s) on {workers} thread(s)"
        try:
            while True:
                done, pending = wait(futs, timeout=0.5)
                if progressbar and pending:  # a line on stderr, redrawn every half second
                    sys.stderr.write("\r" + line.format(sum(int(prog[c]) for c in range(chains))))
                    sys.stderr.flush()
                    shown = True
                if not pending:
                    break
            for f in futs:
                f.result()
            outcome = "complete" if all(rc == RC_OK for rc in results) else "failed"
        except BaseException:  # KeyboardInterrupt: ask every chain to stop, then re-raise
            for c in range(chains):
                stop[c] = 1
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            if shown:  # an interrupted or failed run is never reported as complete
                it = sum(int(prog[c]) for c in range(chains))
                tail = "" if outcome == "complete" else f" -- {outcome}, no draws returned"
                sys.stderr.write("\r" + line.format(it) + tail + "\n")
        pool.shutdown(wait=True)
        failed = [c for c, rc in enumerate(results) if rc not in (RC_OK, RC_STOPPED)]
        if failed:
            code = results[failed[0]]
            same = [c for c in failed if results[c] == code]
            grad = self.logp_grad(last[same[0]])[1] if code == RC_STEP_ZERO else None
            raise engine_error(code, same, coordinate_names(self.density), state=last[same[0]],
                               inv_mass=inv_mass[same[0]], grad=grad, tune=tune)
        if any(rc != RC_OK for rc in results):  # stopped from outside: the arrays are not filled
            raise KeyboardInterrupt("native NUTS stopped before the end; no draws returned")
        stats = {n: st[..., i] for i, n in enumerate(STAT_NAMES)}
        stats["warmup_seconds"], stats["sampling_seconds"] = seconds[:, 0].copy(), seconds[:, 1].copy()
        return out, stats

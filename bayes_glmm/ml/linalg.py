"""The random-effects system ``A = Lambda' Z' W Z Lambda + I`` and its Cholesky factor.

Z is never formed: each term is the pair (codes, Xr), so every product with Z is a
``np.bincount`` over the level codes (O(n q^2) per term, no dense n x q work).

Structure exploited (Bates et al. 2015, JSS, sec. 3; the same block Cholesky):

* the *first block* is the term with the most levels; its part of A is block-diagonal
  with J blocks of q x q, factorized in one batched ``np.linalg.cholesky`` call (pure
  vector arithmetic when q = 1);
* all other terms (crossed or nested factors, usually few levels) form a dense block
  handled through the Schur complement ``S = A22 - A21 A11^{-1} A12``.

So ``L = [[L1, 0], [V', L2]]`` with ``L1`` batched, ``V = L1^{-1} A12`` and
``L2 = chol(S)``.  The u vector is laid out as in ``ModelSpec.Z()``: terms in spec
order, each level-major ``(J_k, q_k)``.

Products with Z' W Z do not depend on Lambda, so :func:`crossprods` (O(n)) is split from
:func:`factorize` (independent of n): the LMM computes the former once per fit.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = ["ReStructure", "build_structure", "crossprods", "zt_r", "lam_t", "lam",
           "z_lam_u", "factorize", "ReFactor", "Raw"]

#: largest dense Schur block (number of random effects outside the first term)
MAX_DENSE = 6000


@dataclass(frozen=True, eq=False)
class ReStructure:
    """Index structures of the random-effects design, built once per fit.

    Attributes
    ----------
    codes, Xr, J, q : tuples per term (spec order)
    first : int
        Index of the block-diagonal term (most levels).
    rest : tuple of int
        The other terms, in spec order.
    starts : tuple of int
        Start of each term in the u vector (spec order).
    pair_codes : dict
        ``(k, l) -> codes_k * J_l + codes_l`` for dense cross-term blocks.
    pairs : dict
        ``(k, l) -> (inv, rows, cols)`` for *sparse* cross-term blocks: the distinct
        co-occurring level pairs ``(rows[p], cols[p])`` and each observation's pair index.
    sparse_v : bool
        Every block between the first term and the others is sparse, so ``V = L1^{-1} A12``
        is kept sparse (nested factors, or crossed ones with few co-occurrences).
    nested : bool
        ``sparse_v`` with one other term and each first-term level meeting at most one of
        its levels (the first term nested in it): the Schur complement is block-diagonal.
    v_rows, v_cols : ndarray
        Scalar (row, column) positions of the entries of the sparse ``V`` (``sparse_v``).
    """

    codes: tuple
    Xr: tuple
    J: tuple
    q: tuple
    first: int
    rest: tuple
    starts: tuple
    pair_codes: dict
    pairs: dict
    sparse_v: bool
    nested: bool
    v_rows: np.ndarray
    v_cols: np.ndarray

    @property
    def m(self) -> int:
        return int(sum(j * q for j, q in zip(self.J, self.q)))

    @property
    def m_rest(self) -> int:
        return int(sum(self.J[k] * self.q[k] for k in self.rest))

    @cached_property
    def v_pairs_unique(self):
        """``(uniq, inv)``: the distinct positions of :attr:`v_pairs`'s ``flat`` and each pair's
        index among them, so that ``V'V`` is accumulated into an array of that size
        instead of one of m_rest^2 (200 MB at 5,000 levels) per evaluation."""
        uniq, inv = np.unique(self.v_pairs[2], return_inverse=True)
        return uniq, inv.ravel().astype(self.v_pairs[0].dtype)

    @cached_property
    def v_pairs(self):
        """The pairs of entries of the sparse ``V`` in the same row, each pair once.

        Returns ``(pa, pb, flat)`` with ``v_cols[pa] < v_cols[pb]`` and ``flat = v_cols[pa] *
        m_rest + v_cols[pb]``: the position of the pair's column pair in the lower triangle of
        an (m_rest, m_rest) Fortran-ordered array (the upper triangle of a C-ordered one), the
        triangle that LAPACK's ``potrf``/``potri`` read and write in :mod:`bayes_glmm.ml.factor`.
        So ``V'V``'s strict triangle is ``bincount(flat, Vdata[pa] * Vdata[pb])`` and the
        quadratic forms with ``S^{-1}`` that the Laplace gradient needs gather ``S^{-1}`` at
        ``flat`` (:func:`bayes_glmm.ml.multigrad._inverse_entries_crossed`), with no sparse
        matrix per evaluation.  Built once per fit.
        """
        rows = self.v_rows
        order = np.argsort(rows, kind="stable")
        cnt = np.bincount(rows)
        first = np.concatenate([[0], np.cumsum(cnt)[:-1]])
        rep = cnt[rows[order]]  # each entry meets every entry of its row
        pa = np.repeat(order, rep)
        pos = np.arange(pa.size) - np.repeat(np.cumsum(rep) - rep, rep)
        pb = order[first[rows[pa]] + pos]
        keep = self.v_cols[pa] < self.v_cols[pb]
        pa, pb = pa[keep], pb[keep]
        flat = self.v_cols[pa] * np.int64(self.m_rest) + self.v_cols[pb]
        small = np.int32 if max(rows.size, self.m_rest ** 2) < 2 ** 31 else np.int64
        return pa.astype(small), pb.astype(small), flat.astype(small)


#: a cross-term block with at most this fraction of its level pairs present is kept sparse
SPARSE_DENSITY = 0.25


def build_structure(terms, sparse: bool | None = None) -> ReStructure:
    """Precompute codes, level counts and cross-term pair structures for a tuple of RandomTerm.

    ``sparse``: None chooses per block by density (:data:`SPARSE_DENSITY`); True makes every
    cross block sparse, False every one dense (the results agree to rounding).
    """
    codes = tuple(np.asarray(t.codes, dtype=np.int64) for t in terms)
    Xr = tuple(np.ascontiguousarray(t.Xr, dtype=float) for t in terms)
    J = tuple(int(t.n_levels) for t in terms)
    q = tuple(int(x.shape[1]) for x in Xr)
    first = int(np.argmax([j * qq for j, qq in zip(J, q)]))
    rest = tuple(k for k in range(len(terms)) if k != first)
    starts = tuple(int(s) for s in np.concatenate([[0], np.cumsum([j * qq for j, qq in zip(J, q)])[:-1]]))
    m_rest = sum(J[k] * q[k] for k in rest)
    order = (first,) + rest
    pair, pairs = {}, {}
    for a, k in enumerate(order):
        for l in order[a + 1:]:
            pc = codes[k] * J[l] + codes[l]
            uniq, inv = np.unique(pc, return_inverse=True)
            use_sparse = (uniq.size <= SPARSE_DENSITY * J[k] * J[l]) if sparse is None else bool(sparse)
            if use_sparse:
                pairs[(k, l)] = (inv.astype(np.int64).ravel(), uniq // J[l], uniq % J[l])
            else:
                pair[(k, l)] = pc
    sparse_v = bool(rest) and all((first, k) in pairs for k in rest)
    nested = False
    v_rows = v_cols = np.zeros(0, dtype=np.int64)
    if sparse_v:
        q1 = q[first]
        nested = len(rest) == 1 and np.unique(pairs[(first, rest[0])][1]).size == pairs[(first, rest[0])][1].size
        rr, cc, off = [], [], 0
        for k in rest:
            _, prow, pcol = pairs[(first, k)]
            a = np.arange(q1)[None, :, None]
            b = np.arange(q[k])[None, None, :]
            rr.append(np.broadcast_to(prow[:, None, None] * q1 + a, (prow.size, q1, q[k])).ravel())
            cc.append(np.broadcast_to(off + pcol[:, None, None] * q[k] + b, (prow.size, q1, q[k])).ravel())
            off += J[k] * q[k]
        v_rows, v_cols = np.concatenate(rr), np.concatenate(cc)
    if m_rest > MAX_DENSE and not nested:
        raise ValueError(
            f"{m_rest} random effects outside the largest term exceed the dense Schur-complement limit "
            f"({MAX_DENSE}); this crossed design is too large for the ML path")
    return ReStructure(codes, Xr, J, q, first, rest, starts, pair, pairs, sparse_v, nested, v_rows, v_cols)


# ---------------------------------------------------------------------------------------
# products with Z and Lambda
# ---------------------------------------------------------------------------------------
def z_lam_u(s: ReStructure, lambdas, u: np.ndarray) -> np.ndarray:
    """Row-wise ``Z Lambda u`` (n,) for u in the spec layout."""
    out = np.zeros(s.codes[0].shape[0]) if s.codes else 0.0
    for k in range(len(s.codes)):
        uk = u[s.starts[k]: s.starts[k] + s.J[k] * s.q[k]].reshape(s.J[k], s.q[k])
        if s.q[k] == 1:
            out = out + s.Xr[k][:, 0] * (uk[:, 0] * lambdas[k][0, 0])[s.codes[k]]
        else:
            bk = uk @ lambdas[k].T
            out = out + np.einsum("nq,nq->n", s.Xr[k], bk[s.codes[k]])
    return out


def zt_r(s: ReStructure, r: np.ndarray) -> np.ndarray:
    """``Z' r`` for r of shape (n,) or (n, p); returns (m,) or (m, p), spec layout."""
    r2 = r[:, None] if r.ndim == 1 else r
    p = r2.shape[1]
    out = np.empty((s.m, p))
    for k in range(len(s.codes)):
        J, q = s.J[k], s.q[k]
        blk = np.empty((J, q, p))
        for a in range(q):
            xa = s.Xr[k][:, a]
            for c in range(p):
                blk[:, a, c] = np.bincount(s.codes[k], weights=xa * r2[:, c], minlength=J)
        out[s.starts[k]: s.starts[k] + J * q] = blk.reshape(J * q, p)
    return out[:, 0] if r.ndim == 1 else out


def _lam_apply(s: ReStructure, lambdas, v: np.ndarray, transpose: bool) -> np.ndarray:
    v2 = v[:, None] if v.ndim == 1 else v
    out = np.empty_like(v2)
    for k in range(len(s.J)):
        J, q = s.J[k], s.q[k]
        sl = slice(s.starts[k], s.starts[k] + J * q)
        blk = v2[sl].reshape(J, q, -1)
        Lk = lambdas[k].T if transpose else lambdas[k]
        out[sl] = (Lk @ blk).reshape(J * q, -1)
    return out[:, 0] if v.ndim == 1 else out


def lam_t(s: ReStructure, lambdas, v: np.ndarray) -> np.ndarray:
    """``Lambda' v`` (block-diagonal Lambda, spec layout)."""
    return _lam_apply(s, lambdas, v, True)


def lam(s: ReStructure, lambdas, v: np.ndarray) -> np.ndarray:
    """``Lambda v`` (block-diagonal Lambda, spec layout)."""
    return _lam_apply(s, lambdas, v, False)


# ---------------------------------------------------------------------------------------
# weighted cross products Z' W Z (Lambda-free)
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Raw:
    """``Z' W Z`` in pieces: ``diag[k]`` (J_k, q_k, q_k); ``off[(k, l)]`` (J_k, q_k, J_l, q_l)
    for dense cross blocks, or (nnz, q_k, q_l) per present level pair for sparse ones."""

    diag: tuple
    off: dict


def crossprods(s: ReStructure, w: np.ndarray) -> Raw:
    """Weighted cross products of the Z blocks, by bincount over level codes.

    Parameters
    ----------
    s : ReStructure
    w : ndarray (n,)
        Working (IRLS) or prior weights.
    """
    diag = []
    for k in range(len(s.J)):
        J, q, X, c = s.J[k], s.q[k], s.Xr[k], s.codes[k]
        M = np.empty((J, q, q))
        for a in range(q):
            wa = w * X[:, a]
            for b in range(a, q):
                M[:, a, b] = np.bincount(c, weights=wa * X[:, b], minlength=J)
                M[:, b, a] = M[:, a, b]
        diag.append(M)
    off = {}
    for (k, l), pc in s.pair_codes.items():
        Jk, Jl, qk, ql = s.J[k], s.J[l], s.q[k], s.q[l]
        C = np.empty((Jk, qk, Jl, ql))
        for a in range(qk):
            wa = w * s.Xr[k][:, a]
            for b in range(ql):
                C[:, a, :, b] = np.bincount(pc, weights=wa * s.Xr[l][:, b], minlength=Jk * Jl).reshape(Jk, Jl)
        off[(k, l)] = C
    for (k, l), (inv, prow, _) in s.pairs.items():
        qk, ql, nnz = s.q[k], s.q[l], prow.size
        C = np.empty((nnz, qk, ql))
        for a in range(qk):
            wa = w * s.Xr[k][:, a]
            for b in range(ql):
                C[:, a, b] = np.bincount(inv, weights=wa * s.Xr[l][:, b], minlength=nnz)
        off[(k, l)] = C
    return Raw(tuple(diag), off)


# ---------------------------------------------------------------------------------------
# factorization
# ---------------------------------------------------------------------------------------


# The factorization lives in its own module (it never touches the n rows); re-exported here
# so callers see one interface for the random-effects system.
from .factor import ReFactor, factorize  # noqa: E402

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
        out[sl] = np.einsum("ab,jbc->jac", Lk, blk).reshape(J * q, -1)
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
def _bsolve(L: np.ndarray, r: np.ndarray, trans: bool = False) -> np.ndarray:
    """Batched solve with lower-triangular blocks L (J, q, q) (or L' when ``trans``); r (J, q, k)."""
    if L.shape[1] == 1:
        return r / L
    A = np.swapaxes(L, 1, 2) if trans else L
    return np.linalg.solve(A, r)


def _chol_checked(A: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.cholesky(A)
    except np.linalg.LinAlgError:
        # A = Lambda'Z'WZLambda + I is positive definite in exact arithmetic; a failure
        # means non-finite weights (overflowing eta), which the caller treats as a bad step.
        raise FloatingPointError("random-effects system is not positive definite (non-finite weights?)")


@dataclass(frozen=True, eq=False)
class ReFactor:
    """Block Cholesky factor of ``A = Lambda' Z' W Z Lambda + I``.

    Attributes
    ----------
    s : ReStructure
    L1 : ndarray (J1, q1, q1)
        Batched factor of the first term's block.
    V : ndarray (J1, q1, m2) or None
        ``L1^{-1} A12`` (dense); empty when there is one term, None when kept sparse.
    L2 : ndarray
        Cholesky factor of the Schur complement: (m2, m2), or batched (J, q, q) blocks
        when ``s.nested`` (block-diagonal Schur complement).
    logdet : float
        ``log det A`` (= ``2 sum log diag L``).
    Vdata : ndarray or None
        Values of the sparse ``V`` at ``(s.v_rows, s.v_cols)`` (when ``s.sparse_v``).
    """

    s: ReStructure
    L1: np.ndarray
    V: np.ndarray | None
    L2: np.ndarray
    logdet: float
    Vdata: np.ndarray | None = None

    # permutation helpers: internal order is [first term, rest terms in spec order]
    def _split(self, r: np.ndarray):
        s = self.s
        k = s.first
        r2 = r.reshape(r.shape[0], -1)
        r1 = r2[s.starts[k]: s.starts[k] + s.J[k] * s.q[k]].reshape(s.J[k], s.q[k], -1)
        parts = [r2[s.starts[j]: s.starts[j] + s.J[j] * s.q[j]] for j in s.rest]
        rr = np.concatenate(parts, axis=0) if parts else np.zeros((0, r2.shape[1]))
        return r1, rr

    def _merge(self, x1: np.ndarray, xr: np.ndarray, shape) -> np.ndarray:
        s = self.s
        out = np.empty((s.m, x1.shape[-1]))
        k = s.first
        out[s.starts[k]: s.starts[k] + s.J[k] * s.q[k]] = x1.reshape(-1, x1.shape[-1])
        pos = 0
        for j in s.rest:
            n = s.J[j] * s.q[j]
            out[s.starts[j]: s.starts[j] + n] = xr[pos: pos + n]
            pos += n
        return out.reshape(shape)

    # products with V and solves with L2, dense or structured
    def _vt_mul(self, y1: np.ndarray, m2: int) -> np.ndarray:
        """``V' y1`` for y1 (J1, q1, k) -> (m2, k)."""
        if self.Vdata is None:
            return np.einsum("jam,jak->mk", self.V, y1)
        s = self.s
        y = y1.reshape(-1, y1.shape[-1])
        out = np.empty((m2, y.shape[1]))
        for c in range(y.shape[1]):
            out[:, c] = np.bincount(s.v_cols, weights=self.Vdata * y[s.v_rows, c], minlength=m2)
        return out

    def _v_mul(self, xr: np.ndarray) -> np.ndarray:
        """``V xr`` for xr (m2, k) -> (J1, q1, k)."""
        if self.Vdata is None:
            return np.einsum("jam,mk->jak", self.V, xr)
        s = self.s
        J1, q1 = s.J[s.first], s.q[s.first]
        out = np.empty((J1 * q1, xr.shape[1]))
        for c in range(xr.shape[1]):
            out[:, c] = np.bincount(s.v_rows, weights=self.Vdata * xr[s.v_cols, c], minlength=J1 * q1)
        return out.reshape(J1, q1, -1)

    def _l2_solve(self, b: np.ndarray, trans: bool) -> np.ndarray:
        if self.L2.ndim == 3:
            J, q = self.L2.shape[0], self.L2.shape[1]
            return _bsolve(self.L2, b.reshape(J, q, -1), trans=trans).reshape(b.shape)
        return _tri_solve(self.L2.T if trans else self.L2, b, lower=not trans)

    def dense_V(self) -> np.ndarray:
        """``V`` as a dense (J1, q1, m2) array."""
        if self.Vdata is None:
            return self.V
        s = self.s
        J1, q1 = s.J[s.first], s.q[s.first]
        m2 = s.m_rest
        Vd = np.zeros((J1 * q1, m2))
        np.add.at(Vd, (s.v_rows, s.v_cols), self.Vdata)
        return Vd.reshape(J1, q1, m2)

    def forward(self, r: np.ndarray) -> np.ndarray:
        """``L^{-1} r`` for r (m,) or (m, k)."""
        r1, rr = self._split(r)
        y1 = _bsolve(self.L1, r1)
        if rr.shape[0]:
            rhs = rr - self._vt_mul(y1, rr.shape[0])
            yr = self._l2_solve(rhs, trans=False)
        else:
            yr = rr
        return self._merge(y1, yr, r.shape)

    def backward(self, y: np.ndarray) -> np.ndarray:
        """``L'^{-1} y`` for y (m,) or (m, k)."""
        y1, yr = self._split(y)
        if yr.shape[0]:
            xr = self._l2_solve(yr, trans=True)
            y1 = y1 - self._v_mul(xr)
        else:
            xr = yr
        x1 = _bsolve(self.L1, y1, trans=True)
        return self._merge(x1, xr, y.shape)

    def solve(self, r: np.ndarray) -> np.ndarray:
        """``A^{-1} r``."""
        return self.backward(self.forward(r))

    def inv_diag_blocks(self) -> list:
        """Diagonal q_k x q_k blocks of ``A^{-1}`` per term (spec order), each (J_k, q_k, q_k)."""
        s = self.s
        out = [None] * len(s.J)
        L1inv = _bsolve(self.L1, np.broadcast_to(np.eye(s.q[s.first]), self.L1.shape).copy())
        B11 = np.einsum("jba,jbc->jac", L1inv, L1inv)  # L1^{-T} L1^{-1}
        if s.rest and self.L2.ndim == 3:
            # nested: one pair (row j, column level c) per first-term level
            k = s.rest[0]
            _, prow, pcol = s.pairs[(s.first, k)]
            q1, q = s.q[s.first], s.q[k]
            Vp = self.Vdata.reshape(prow.size, q1, q)
            Wp = _bsolve(self.L1[prow], Vp, trans=True)  # rows of L1^{-T} V
            Gp = _bsolve(self.L2[pcol], np.ascontiguousarray(np.swapaxes(Wp, 1, 2)))  # (nnz, q, q1)
            np.add.at(B11, prow, np.einsum("pma,pmb->pab", Gp, Gp))
            L2inv = _bsolve(self.L2, np.broadcast_to(np.eye(q), self.L2.shape).copy())
            out[k] = np.einsum("jba,jbc->jac", L2inv, L2inv)
        elif s.rest:
            V = self.dense_V()
            m2 = self.L2.shape[0]
            # A^{-1}_11 = A11^{-1} + W S^{-1} W' with W = L1^{-T} V
            Wt = _bsolve(self.L1, V, trans=True)  # (J1, q1, m2)
            G = _tri_solve(self.L2, Wt.reshape(-1, m2).T, lower=True)  # (m2, J1 q1)
            G = G.T.reshape(Wt.shape[0], Wt.shape[1], m2)
            B11 = B11 + np.einsum("jam,jbm->jab", G, G)
            L2inv = _tri_solve(self.L2, np.eye(m2), lower=True)
            Sinv = L2inv.T @ L2inv
            pos = 0
            for k in s.rest:
                J, q = s.J[k], s.q[k]
                blk = Sinv[pos: pos + J * q, pos: pos + J * q].reshape(J, q, J, q)
                out[k] = blk[np.arange(J), :, np.arange(J), :]
                pos += J * q
        out[s.first] = B11
        return out


def _tri_solve(L: np.ndarray, b: np.ndarray, lower: bool) -> np.ndarray:
    from scipy.linalg import solve_triangular
    return solve_triangular(L, b, lower=lower, check_finite=False)


def _off_block(s: ReStructure, raw: Raw, k: int, l: int, Lk: np.ndarray, Ll: np.ndarray) -> np.ndarray:
    """Dense ``Lambda_k' (Z_k' W Z_l) Lambda_l`` as (J_k q_k, J_l q_l)."""
    if (k, l) not in raw.off:
        return _off_block(s, raw, l, k, Ll, Lk).T
    C = raw.off[(k, l)]
    Jk, Jl, qk, ql = s.J[k], s.J[l], s.q[k], s.q[l]
    if (k, l) in s.pairs:
        _, prow, pcol = s.pairs[(k, l)]
        D = np.zeros((Jk, qk, Jl, ql))
        D[prow, :, pcol, :] = np.einsum("ba,pbc,cd->pad", Lk, C, Ll)
        return D.reshape(Jk * qk, Jl * ql)
    return np.einsum("ba,jbkc,cd->jakd", Lk, C, Ll).reshape(Jk * qk, Jl * ql)


def _check_pos(S: np.ndarray) -> None:
    if not np.all(np.isfinite(S)) or np.any(S <= 0):
        raise FloatingPointError("random-effects system is not positive definite (non-finite weights?)")


def factorize(s: ReStructure, raw: Raw, lambdas) -> ReFactor:
    """Cholesky factor of ``Lambda' Z' W Z Lambda + I`` from Lambda-free cross products.

    Sparse cross blocks (``s.sparse_v``) keep ``V = L1^{-1} A12`` sparse, so ``V'V`` costs
    O(nnz) (nested designs: the Schur complement is then block-diagonal and factorized
    batched) instead of O(J1 m2^2).

    Parameters
    ----------
    s : ReStructure
    raw : Raw
        From :func:`crossprods`.
    lambdas : sequence of (q_k, q_k) lower-triangular arrays, spec order.

    Raises
    ------
    FloatingPointError
        When the system is not numerically positive definite (non-finite weights).
    """
    k1 = s.first
    Lk = lambdas[k1]
    q1 = s.q[k1]
    if q1 == 1:
        A11 = raw.diag[k1] * (Lk[0, 0] ** 2) + 1.0
        _check_pos(A11)
        L1 = np.sqrt(A11)
    else:
        A11 = np.einsum("ba,jbc,cd->jad", Lk, raw.diag[k1], Lk) + np.eye(q1)
        L1 = _chol_checked(A11)
    logdet = 2.0 * float(np.sum(np.log(np.einsum("jaa->ja", L1))))
    if not s.rest:
        return ReFactor(s, L1, np.zeros((s.J[k1], q1, 0)), np.zeros((0, 0)), logdet)
    # diagonal blocks of the other terms: Lambda' D Lambda + I, batched per level
    dblk = []
    for k in s.rest:
        Lam, q = lambdas[k], s.q[k]
        if q == 1:
            dblk.append(raw.diag[k] * (Lam[0, 0] ** 2) + 1.0)
        else:
            dblk.append(np.einsum("ba,jbc,cd->jad", Lam, raw.diag[k], Lam) + np.eye(q))
    Vdata = None
    if s.sparse_v:
        vals = []
        for k in s.rest:
            _, prow, _ = s.pairs[(k1, k)]
            if q1 == 1 and s.q[k] == 1:
                B = raw.off[(k1, k)] * (Lk[0, 0] * lambdas[k][0, 0])
            else:
                B = np.einsum("ba,pbc,cd->pad", Lk, raw.off[(k1, k)], lambdas[k])
            vals.append(_bsolve(L1[prow], B))  # block row j of V = L1_j^{-1} A12_j
        if s.nested:
            k = s.rest[0]
            _, _, pcol = s.pairs[(k1, k)]
            Vp, S = vals[0], dblk[0]
            if q1 == 1 and s.q[k] == 1:
                S = S - np.bincount(pcol, weights=Vp[:, 0, 0] ** 2, minlength=s.J[k])[:, None, None]
                _check_pos(S)
                L2 = np.sqrt(S)
            else:
                S = S.copy()
                np.add.at(S, pcol, -np.einsum("pab,pac->pbc", Vp, Vp))
                L2 = _chol_checked(S)
            logdet += 2.0 * float(np.sum(np.log(np.einsum("jaa->ja", L2))))
            return ReFactor(s, L1, None, L2, logdet, Vp.ravel())
        Vdata = np.concatenate([v.ravel() for v in vals])
    # dense Schur complement over the other terms, in internal order
    sizes = [s.J[k] * s.q[k] for k in s.rest]
    offs = np.concatenate([[0], np.cumsum(sizes)])
    m2 = int(offs[-1])
    A22 = np.zeros((m2, m2))
    for i, k in enumerate(s.rest):
        J, q = s.J[k], s.q[k]
        sub = np.zeros((J, q, J, q))
        sub[np.arange(J), :, np.arange(J), :] = dblk[i]
        A22[offs[i]:offs[i + 1], offs[i]:offs[i + 1]] = sub.reshape(J * q, J * q)
        for i2 in range(i + 1, len(s.rest)):
            l = s.rest[i2]
            D = _off_block(s, raw, k, l, lambdas[k], lambdas[l])
            A22[offs[i]:offs[i + 1], offs[i2]:offs[i2 + 1]] = D
            A22[offs[i2]:offs[i2 + 1], offs[i]:offs[i + 1]] = D.T
    if Vdata is not None:
        from scipy import sparse as sp
        Vs = sp.csr_matrix((Vdata, (s.v_rows, s.v_cols)), shape=(s.J[k1] * q1, m2))
        S = A22 - (Vs.T @ Vs).toarray()
        V = None
    else:
        A12 = np.empty((s.J[k1], q1, m2))
        for i, k in enumerate(s.rest):
            A12[:, :, offs[i]:offs[i + 1]] = _off_block(s, raw, k1, k, Lk, lambdas[k]).reshape(s.J[k1], q1, -1)
        V = _bsolve(L1, A12)
        Vf = V.reshape(-1, V.shape[-1])
        S = A22 - Vf.T @ Vf  # a BLAS syrk-like product; einsum here was the bottleneck for nested fits
    L2 = _chol_checked(S)
    logdet += 2.0 * float(np.sum(np.log(np.diag(L2))))
    return ReFactor(s, L1, V, L2, logdet, Vdata)

"""Cholesky factor of the random-effects system ``A = Lambda' Z' W Z Lambda + I``.

``L = [[L1, 0], [V', L2]]``: ``L1`` batched over the levels of the largest term,
``V = L1^{-1} A12`` (dense, or sparse for nested / sparsely crossed designs) and
``L2 = chol(S)`` of the Schur complement. The structure and the cross-products it works from
are built in :mod:`bayes_glmm.ml.linalg`; this module depends on n only through them.
"""
from __future__ import annotations

from dataclasses import dataclass
import numpy as np

# The structure (linalg.ReStructure) and cross-products (linalg.Raw) are passed in, never
# imported: linalg re-exports this module, and a back-import would make an import cycle.

__all__ = ["ReFactor", "factorize"]


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


def _chol_dense(S: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a symmetric (m, m) matrix, overwriting it (LAPACK potrf on
    the Fortran-ordered view of the symmetric C array: no copy; the upper triangle zeroed)."""
    from scipy.linalg.lapack import dpotrf
    L, info = dpotrf(S.T, lower=1, clean=1, overwrite_a=1)
    if info != 0 or not np.all(np.isfinite(np.diag(L))):
        raise FloatingPointError("random-effects system is not positive definite (non-finite weights?)")
    return L


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

    s: object  # linalg.ReStructure
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
        if s.rest and self._crossed_scalar():
            Sl, _, B11 = self.crossed_inverse()
            dS = np.diag(Sl)
            pos = 0
            for k in s.rest:
                out[k] = dS[pos: pos + s.J[k]].reshape(-1, 1, 1).copy()
                pos += s.J[k]
            out[s.first] = B11.reshape(-1, 1, 1)
            return out
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


    def crossed_inverse(self):
        """Parts of ``A^{-1}`` for scalar crossed terms with a sparse ``V`` (``s.sparse_v``, not
        nested, every q = 1): ``(Sl, X12, B11)``.

        ``Sl`` is the lower triangle of ``S^{-1}`` in Fortran order (LAPACK ``potri`` on the
        Schur factor), ``X12`` the entries of ``(A^{-1})_12 = -W S^{-1}`` (``W = L1^{-1} V``) on
        V's pattern and ``B11`` the diagonal of ``(A^{-1})_11 = A11^{-1} + W S^{-1} W'``.  A row
        meets the first term's level ``g`` and a level ``c`` of each other term, and ``(g, c)``
        is an entry of V's pattern, so these are all the entries the Laplace gradient and the
        conditional variances read; each sums over the entries of a row of ``W``
        (:attr:`bayes_glmm.ml.linalg.ReStructure.v_pairs`), never forming the dense (m1, m2)
        ``W S^{-1}``.
        """
        from scipy.linalg.lapack import dpotri

        s = self.s
        m2 = s.m_rest
        Sl, info = dpotri(self.L2, lower=1)
        if info != 0:
            raise FloatingPointError("Schur complement inverse failed")
        Sf = Sl.ravel(order="F")
        L1 = self.L1.ravel()
        Wd = self.Vdata / L1[s.v_rows]
        pa, pb, flat = s.v_pairs  # each pair of entries of a row once (v_cols[pa] < v_cols[pb])
        Sp = Sf[flat]
        X12 = -(np.bincount(pa, weights=Wd[pb] * Sp, minlength=Wd.size)
                + np.bincount(pb, weights=Wd[pa] * Sp, minlength=Wd.size) + Wd * Sf[s.v_cols * np.int64(m2 + 1)])
        B11 = 1.0 / (L1 * L1) - np.bincount(s.v_rows, weights=Wd * X12, minlength=L1.size)
        return Sl, X12, B11

    def _crossed_scalar(self) -> bool:
        s = self.s
        return self.Vdata is not None and self.L2.ndim == 2 and all(q == 1 for q in s.q)

    def inv_block_sums(self) -> list:
        """Sums over levels of the diagonal blocks of ``A^{-1}``, per term (spec order), each
        (q_k, q_k): ``sum_j (A^{-1})_jj``.

        A crossed design with a sparse ``V`` and a scalar first term takes one inverse of the
        Schur complement (from its factor) and, for the first term,
        ``tr(L1^{-T} V S^{-1} V' L1^{-1}) = <W'W, S^{-1}>`` with ``W = L1^{-1} V`` on V's
        pattern: no product of ``S^{-1}`` with the first term's levels.  Other layouts sum
        :meth:`inv_diag_blocks`.
        """
        s = self.s
        if not (self.Vdata is not None and self.L2.ndim == 2 and s.q[s.first] == 1):
            return [b.sum(axis=0) for b in self.inv_diag_blocks()]
        from scipy.linalg.lapack import dpotri
        # lower triangle of S^{-1} (the factor's upper triangle is 0, and stays 0 here)
        Sl, info = dpotri(self.L2, lower=1)
        if info != 0:
            raise FloatingPointError("Schur complement inverse failed")
        dS = np.diag(Sl)
        out = [None] * len(s.J)
        pos = 0
        for k in s.rest:
            J, q = s.J[k], s.q[k]
            if q == 1:
                out[k] = np.array([[float(np.sum(dS[pos: pos + J]))]])
            else:
                blk = Sl[pos: pos + J * q, pos: pos + J * q].reshape(J, q, J, q)
                lo = np.einsum("jajb->ab", blk)  # lower triangle of the summed blocks
                out[k] = lo + np.tril(lo, -1).T
            pos += J * q
        L1 = self.L1.ravel()
        Wd = self.Vdata / L1[s.v_rows]  # W = L1^{-1} V (L1 diagonal), on V's pattern
        # <W'W, S^{-1}> = sum over rows of w' S^{-1} w, from the pairs of entries per row
        pa, pb, flat = s.v_pairs
        inner = 2.0 * float(np.dot(Wd[pa] * Wd[pb], Sl.ravel(order="F")[flat])) + float(np.dot(Wd * Wd, dS[s.v_cols]))
        out[s.first] = np.array([[float(np.sum(1.0 / (L1 * L1))) + inner]])
        return out

def _tri_solve(L: np.ndarray, b: np.ndarray, lower: bool) -> np.ndarray:
    from scipy.linalg import solve_triangular
    return solve_triangular(L, b, lower=lower, check_finite=False)


def _off_block(s, raw, k: int, l: int, Lk: np.ndarray, Ll: np.ndarray) -> np.ndarray:
    """Dense ``Lambda_k' (Z_k' W Z_l) Lambda_l`` as (J_k q_k, J_l q_l)."""
    if (k, l) not in raw.off:
        return _off_block(s, raw, l, k, Ll, Lk).T
    C = raw.off[(k, l)]
    Jk, Jl, qk, ql = s.J[k], s.J[l], s.q[k], s.q[l]
    if (k, l) in s.pairs:
        _, prow, pcol = s.pairs[(k, l)]
        D = np.zeros((Jk, qk, Jl, ql))
        D[prow, :, pcol, :] = Lk.T @ C @ Ll  # batched matmul: a 3-operand einsum is ~50x slower
        return D.reshape(Jk * qk, Jl * ql)
    return np.einsum("ba,jbkd->jakd", Lk, C @ Ll).reshape(Jk * qk, Jl * ql)


def _check_pos(S: np.ndarray) -> None:
    if not np.all(np.isfinite(S)) or np.any(S <= 0):
        raise FloatingPointError("random-effects system is not positive definite (non-finite weights?)")


def factorize(s, raw, lambdas) -> ReFactor:
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
        # Lambda' D_j Lambda per level as batched matmuls (a 3-operand einsum is ~50x slower)
        A11 = Lk.T @ raw.diag[k1] @ Lk + np.eye(q1)
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
            dblk.append(Lam.T @ raw.diag[k] @ Lam + np.eye(q))
    Vdata = None
    if s.sparse_v:
        vals = []
        for k in s.rest:
            _, prow, _ = s.pairs[(k1, k)]
            if q1 == 1 and s.q[k] == 1:
                B = raw.off[(k1, k)] * (Lk[0, 0] * lambdas[k][0, 0])
            else:
                B = Lk.T @ raw.off[(k1, k)] @ lambdas[k]
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
        if q == 1:  # a diagonal block: no (J, J) temporary
            A22[np.arange(offs[i], offs[i + 1]), np.arange(offs[i], offs[i + 1])] = dblk[i].ravel()
        else:
            sub = np.zeros((J, q, J, q))
            sub[np.arange(J), :, np.arange(J), :] = dblk[i]
            A22[offs[i]:offs[i + 1], offs[i]:offs[i + 1]] = sub.reshape(J * q, J * q)
        for i2 in range(i + 1, len(s.rest)):
            l = s.rest[i2]
            D = _off_block(s, raw, k, l, lambdas[k], lambdas[l])
            A22[offs[i]:offs[i + 1], offs[i2]:offs[i2 + 1]] = D
            A22[offs[i2]:offs[i2 + 1], offs[i]:offs[i + 1]] = D.T
    if Vdata is not None:
        # V'V from the structure's pairs of entries per row (one symbolic pass per fit, no
        # sparse matrix per evaluation); only the triangle _chol_dense reads is formed
        pa, pb, _ = s.v_pairs
        uniq, inv = s.v_pairs_unique
        S = A22.ravel()
        S[uniq] -= np.bincount(inv, weights=Vdata[pa] * Vdata[pb], minlength=uniq.size)
        S[:: m2 + 1] -= np.bincount(s.v_cols, weights=Vdata * Vdata, minlength=m2)  # the diagonal
        S = S.reshape(m2, m2)
        V = None
    else:
        A12 = np.empty((s.J[k1], q1, m2))
        for i, k in enumerate(s.rest):
            A12[:, :, offs[i]:offs[i + 1]] = _off_block(s, raw, k1, k, Lk, lambdas[k]).reshape(s.J[k1], q1, -1)
        V = _bsolve(L1, A12)
        Vf = V.reshape(-1, V.shape[-1])
        S = A22 - Vf.T @ Vf  # a BLAS syrk-like product; einsum here was the bottleneck for nested fits
    L2 = _chol_dense(S)
    logdet += 2.0 * float(np.sum(np.log(np.diag(L2))))
    return ReFactor(s, L1, V, L2, logdet, Vdata)

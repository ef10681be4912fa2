"""The covariance-structure extension point: each structure's one definition of C(y) and
Lambda(theta) (bayes_glmm.covariance), the formula keywords and the registry."""
import pickle

import numpy as np
import pytest
from scipy.linalg import toeplitz

from bayes_glmm.covariance import STRUCTURES, CovStructure, get_structure, register_structure
from bayes_glmm.covariance.lkj import tanh_sech
from bayes_glmm.covariance.toeplitz import acf_to_pacf, pacf_to_acf
from bayes_glmm.spec.formula import parse_formula
from bayes_glmm.ops.numpy_ops import NUMPY_OPS

QS = (1, 2, 3, 5)


def _random_theta(cov, q, rng):
    th = cov.theta_start(q).copy()
    lo = cov.theta_lower(q)
    th += rng.normal(0.0, 0.7, th.size)
    return np.where(np.isfinite(lo), np.abs(th) + 0.1, th)


@pytest.mark.parametrize("name", sorted(STRUCTURES))
@pytest.mark.parametrize("q", QS)
def test_correlation_factor_is_a_cholesky_factor(name, q):
    cov = get_structure(name)
    rng = np.random.default_rng(q)
    for _ in range(5):
        y = rng.normal(0.0, 1.5, cov.n_corr(q))
        C = cov.corr_chol(y, q)
        assert np.allclose(np.triu(C, 1), 0.0)
        assert np.all(np.diag(C) > 0)
        R = C @ C.T
        np.testing.assert_allclose(np.diag(R), 1.0, rtol=1e-12)
        assert np.linalg.eigvalsh(R).min() > 0
        # the inverse map finds the same correlation matrix (the starts and theta_from_lambda use it)
        if cov.n_corr(q):
            np.testing.assert_allclose(cov.corr_matrix_from_y(cov.y_from_corr(R), q), R, atol=1e-6)


def test_structured_correlation_matrices():
    q = 5
    z = np.tanh(np.array([0.4]))
    C = get_structure("ar1").corr_chol(np.array([0.4]), q)
    np.testing.assert_allclose(C @ C.T, z[0] ** np.abs(np.subtract.outer(np.arange(q), np.arange(q))), rtol=1e-12)
    R = get_structure("cs").corr_matrix_from_y(np.array([-0.3]), q)
    off = R[np.tril_indices(q, -1)]
    assert np.ptp(off) < 1e-12 and -1.0 / (q - 1) < off[0] < 1.0
    # toep: the lag correlations are those of the partial autocorrelations (Durbin-Levinson)
    phi = np.array([0.5, -0.3, 0.2, 0.6])
    r = np.array(pacf_to_acf(phi, np.sqrt(1 - phi ** 2)))
    np.testing.assert_allclose(acf_to_pacf(r), phi, rtol=1e-10)
    R = get_structure("toep").corr_matrix_from_y(np.arctanh(phi), q)
    np.testing.assert_allclose(R, toeplitz(r), rtol=1e-10)
    # AR(1) is the Toeplitz matrix with partial autocorrelations (rho, 0, 0, ...)
    np.testing.assert_allclose(pacf_to_acf([0.4, 0.0], [np.sqrt(1 - 0.16), 1.0]), [1.0, 0.4, 0.16], rtol=1e-12)


@pytest.mark.parametrize("name", sorted(STRUCTURES))
@pytest.mark.parametrize("q", QS)
def test_lambda_jacobian_is_the_derivative(name, q):
    cov = get_structure(name)
    rng = np.random.default_rng(10 + q)
    th = _random_theta(cov, q, rng)
    J = cov.lambda_jacobian(th, q)
    assert J.shape == (cov.n_theta(q), q, q)
    h = 1e-6
    for k in range(th.size):
        e = np.zeros_like(th)
        e[k] = h
        fd = (cov.lambda_(th + e, q) - cov.lambda_(th - e, q)) / (2 * h)
        np.testing.assert_allclose(J[k], fd, atol=1e-7, rtol=1e-6)
    if cov.linear:  # constant directions
        np.testing.assert_allclose(cov.lambda_jacobian(_random_theta(cov, q, rng), q), J, atol=1e-14)


@pytest.mark.parametrize("name", sorted(STRUCTURES))
@pytest.mark.parametrize("q", QS)
def test_theta_from_lambda_round_trip(name, q):
    cov = get_structure(name)
    th = _random_theta(cov, q, np.random.default_rng(20 + q))
    L = cov.lambda_(th, q)
    S = L @ L.T
    L2 = cov.lambda_(cov.theta_from_lambda(L), q)
    np.testing.assert_allclose(L2 @ L2.T, S, rtol=1e-6, atol=1e-9)
    assert cov.theta_start(q).size == cov.n_theta(q) == cov.theta_lower(q).size == len(
        cov.theta_names([f"c{i}" for i in range(q)]))
    np.testing.assert_allclose(cov.lambda_(cov.theta_start(q), q), np.eye(q), atol=1e-12)


def test_us_and_diag_keep_lme4_theta():
    from bayes_glmm.covariance import theta_to_chol

    th = np.array([1.0, 0.3, -0.2, 0.8, 0.1, 0.5])
    np.testing.assert_allclose(get_structure("us").lambda_(th, 3), theta_to_chol(th, 3, True))
    np.testing.assert_allclose(get_structure("diag").lambda_(th[:3], 3), np.diag(th[:3]))


def test_rows_on_every_namespace_are_the_numpy_values():
    """corr_rows on the dual numbers gives the NumPy values (the ML gradient and the NumPy
    sampler evaluate this definition; C and PyTensor are held equal in the contract tests)."""
    from bayes_glmm.ops.dual import ND_OPS, seed, value

    for name in ("cs", "ar1", "toep", "us"):
        cov, q = get_structure(name), 4
        y = np.random.default_rng(3).normal(size=cov.n_corr(q))
        z, s = tanh_sech(seed(y, 0, 1), ND_OPS)
        rows = cov.corr_rows([z.__class__(z.v[k], [d[k] if d is not None else None for d in z.d])
                              for k in range(y.size)],
                             [s.__class__(s.v[k], [d[k] if d is not None else None for d in s.d])
                              for k in range(y.size)], q, ND_OPS)
        got = np.array([[float(value(v)) if hasattr(v, "v") else float(v) for v in row] for row in rows])
        np.testing.assert_allclose(got, cov.corr_chol(y, q, NUMPY_OPS), rtol=1e-13)


def test_formula_keywords():
    p = parse_formula("y ~ x + ar1(0 + factor(t) | g) + cs(1 + x | h) + diag(x | k) + us(x | m) + (x || n)")
    assert [(r.group, r.structure, r.correlated) for r in p.random] == [
        ("g", "ar1", True), ("h", "cs", True), ("k", "diag", False), ("m", "us", True), ("n", "diag", False)]
    with pytest.raises(ValueError, match="single '|'"):
        parse_formula("y ~ cs(x || g)")
    with pytest.raises(ValueError, match="unknown covariance structure"):
        get_structure("arma")


def test_design_attaches_the_structure():
    import pandas as pd

    from bayes_glmm import GLMM

    rng = np.random.default_rng(0)
    d = pd.DataFrame({"g": np.repeat(np.arange(10), 4), "t": np.tile(np.arange(4), 10)})
    d["y"] = rng.normal(size=len(d))
    m = GLMM("y ~ 1 + ar1(0 + factor(t) | g)", d)
    (t,) = m.spec.terms
    assert t.cov == get_structure("ar1") and t.q == 4 and t.n_theta == 2
    assert GLMM("y ~ 1 + cs(1 | g)", d).spec.terms[0].cov == get_structure("diag")  # scalar: one SD
    with pytest.raises(ValueError, match=r"ar1\(0 \+ factor\(time\) \| group\)"):
        GLMM("y ~ 1 + ar1(1 + t | g)", d)
    assert pickle.loads(pickle.dumps(t.cov)) == t.cov


def test_a_new_structure_is_one_class_and_one_registry_line():
    """A homogeneous compound symmetry (glmmTMB's ``homcs``) defined here: one SD, one
    correlation; the registry makes it a formula keyword and its Lambda follows."""
    from bayes_glmm.covariance.compound import CompoundSymmetry

    class HomCS(CompoundSymmetry):
        name = "homcs_test"

        def n_sd(self, q):
            return 1

        def sd_index(self, q):
            return np.zeros(q, dtype=int)

    try:
        register_structure(HomCS())
        assert isinstance(get_structure("homcs_test"), CovStructure)
        (r,) = parse_formula("y ~ homcs_test(0 + f | g)").random
        assert r.structure == "homcs_test"
        cov = get_structure("homcs_test")
        L = cov.lambda_(np.array([2.0, 0.3]), 3)
        S = L @ L.T
        np.testing.assert_allclose(np.diag(S), 4.0)
        assert np.ptp(S[np.tril_indices(3, -1)]) < 1e-12
    finally:
        STRUCTURES.pop("homcs_test", None)

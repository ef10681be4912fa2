"""The family's auxiliary parameters as coordinates of the ML optimizer (GLMM path).

The outer parameter vector of the Laplace/AGQ fit is ``x = (theta, beta, beta_zi, a)`` with one
coordinate per :class:`~bayes_glmm.families.base.AuxParam` of the family, in the order the
family declares them (``family.aux_params``): the log of a parameter with positive support
(as both paths estimate it), the parameter itself for a real one, ``log(value - previous)``
for an ``"ordered"`` one (an ordinal model's thresholds).  Its lower bound comes
from the AuxParam's ``bounds`` (``-inf`` on the log scale for the usual ``(0, inf)``); the
optimizers here bound from below only, so a finite upper bound is refused at the boundary.

Pure functions of the family's declaration: nothing here tests a family's name.
"""
from __future__ import annotations

import numpy as np

__all__ = ["aux_lower", "aux_coords", "aux_natural", "aux_starts", "aux_jacobian", "check_aux_params",
           "fit_coords", "ordered_values"]

_SUPPORTS = ("positive", "real", "ordered")


def check_aux_params(family) -> None:
    """ValueError naming the parameter when the ML path cannot carry one of its auxiliary
    parameters (an unknown support, a finite upper bound)."""
    for a in family.aux_params:
        if a.support not in _SUPPORTS:
            raise ValueError(f"family {family.name!r}: auxiliary parameter {a.name!r} has support "
                             f"{a.support!r}; the ML path estimates {list(_SUPPORTS)} parameters only "
                             f"(use the Bayesian path, GLMM.sample)")
        if np.isfinite(float(a.bounds[1])):
            raise ValueError(f"family {family.name!r}: auxiliary parameter {a.name!r} has a finite upper "
                             f"bound {a.bounds[1]!r}; the ML optimizer bounds parameters from below only "
                             f"(reparametrise it, e.g. on the logit scale, or use GLMM.sample)")


def aux_lower(family) -> np.ndarray:
    """Lower bound of each auxiliary coordinate (``-inf`` where unbounded)."""
    out = []
    for a in family.aux_params:
        lo = float(a.bounds[0])
        if a.support == "positive":
            out.append(np.log(lo) if lo > 0.0 else -np.inf)
        else:
            out.append(lo if np.isfinite(lo) else -np.inf)
    return np.array(out, dtype=float)


def aux_natural(family, coords) -> dict:
    """``{name: value}`` on the natural scale from the coordinates ``a`` (one per parameter):
    floats for one point ``(A,)``; for many points ``(P, A)`` arrays ``(P,)`` (a batch of points,
    :mod:`bayes_glmm.ml.batch_scalar`)."""
    z = np.asarray(coords, dtype=float)
    if z.ndim > 1:
        cols, exp = [z[..., i] for i in range(z.shape[-1])], np.exp
    else:
        cols, exp = z, _exp_float
    out, prev = {}, 0.0
    for a, zi in zip(family.aux_params, cols):
        v = exp(zi) if a.support == "positive" else prev + exp(zi) if a.support == "ordered" \
            else (zi if z.ndim > 1 else float(zi))
        out[a.name] = prev = v
    return out


def _exp_float(t) -> float:
    return float(np.exp(t))


def ordered_values(z):
    """The values of an ordered chain from its coordinates (..., k): ``cumsum(z_0, exp(z_1), ...)``
    (the same map as :func:`aux_natural` for a chain, on arrays of points)."""
    z = np.asarray(z, dtype=float)
    return np.cumsum(np.concatenate([z[..., :1], np.exp(z[..., 1:])], axis=-1), axis=-1)


def aux_coords(family, values) -> np.ndarray:
    """The coordinates ``a`` from natural-scale values (a mapping by name, or a sequence in the
    family's order)."""
    if isinstance(values, dict):
        values = [values[a.name] for a in family.aux_params]
    out, prev = [], 0.0
    for a, v in zip(family.aux_params, values):
        v = float(v)
        out.append(np.log(v) if a.support == "positive" else np.log(v - prev) if a.support == "ordered" else v)
        prev = v
    return np.array(out, dtype=float)


def aux_jacobian(family, coords) -> np.ndarray:
    """d natural value / d coordinate (A x A): diagonal but for the ordered parameters, each
    of which moves with every coordinate of its chain (``tau_k = tau_1 + sum exp(a_j)``).
    For many points ``(P, A)`` of coordinates, ``(P, A, A)``."""
    z = np.asarray(coords, dtype=float)
    vals = list(aux_natural(family, z).values())
    A = len(vals)
    J = np.zeros(z.shape[:-1] + (A, A))
    for i, a in enumerate(family.aux_params):
        if a.support == "positive":
            J[..., i, i] = vals[i]
        elif a.support == "ordered" and i > 0:
            J[..., i, :] = J[..., i - 1, :]
            J[..., i, i] = np.exp(z[..., i])
        else:
            J[..., i, i] = 1.0
    return J


def aux_starts(family, m: float, v: float) -> dict:
    """``{name: ML start}`` from the response's weighted mean ``m`` and variance ``v``
    (each :meth:`AuxParam.ml_start`, clipped to its range)."""
    return {a.name: a.ml_start(m, v) for a in family.aux_params}


def fit_coords(family, aux, beta_disp=None) -> np.ndarray:
    """The family's optimizer coordinates of a fit: :func:`aux_coords` of ``aux``, or with a
    dispersion formula ``(beta_disp, the other parameters' coordinates)``."""
    if beta_disp is None:
        return aux_coords(family, aux)
    rest = [np.log(float(aux[a.name])) if a.support == "positive" else float(aux[a.name])
            for a in family.aux_params[1:]]
    return np.concatenate([np.asarray(beta_disp, dtype=float), np.array(rest, dtype=float)])

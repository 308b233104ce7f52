"""Numba-compatible bundles of the tables a kernel reads (``typing.NamedTuple`` of arrays and
scalars), so that a compiled function takes one argument per concept instead of twenty.

Numba types a NamedTuple by its class and its field types: the constructors (``make``) cast every
scalar, so that all calls hit the same compiled specialisation and the same on-disk cache entry.
Python objects (the problems) assemble the bundles; the kernels only read them.

=========  ====================================================================================
Xi         ξ(t) of the step-size schedule as :func:`.xi.xi_at` evaluates it: (kind, params)
LowRank    the 1-D interaction Ψ = V + Σ_k λ_k f_k m_k: (v (n,), feats (K, n), lam (K,))
Grid1      the cell-centred 1-D grid: cell size h, centres r (n,)
Noise      the drift–diffusion constants: R#, confinement λ, inverse temperature β, weight
           exponent m (density of r^m)
Grid3      the cell-centred (a, s, r) grid: centres a_c, s_c, r_c, cell sizes h_a, h_s, h_r
Kernel3    the 3-D interaction φ = φ0 + Σ_q w_q M_q F_q: (phi0 (n_s, n_r), feats (Q, n_s n_r),
           w (Q,))
StepSizes  the adaptive step of the semi-implicit drivers: (dt_init, dt_max)
=========  ====================================================================================
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Xi", "LowRank", "Grid1", "Noise", "Grid3", "Kernel3", "StepSizes"]


def _f64(x) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64)


class Xi(NamedTuple):
    """ξ(t): integer kind and flat parameters (:mod:`.xi`)."""

    kind: int
    params: np.ndarray

    @classmethod
    def make(cls, kind: int, params) -> Xi:
        """The bundle with its arrays as contiguous float64 (the kernels' types)."""
        return cls(int(kind), _f64(params))


class LowRank(NamedTuple):
    """Ψ_i = V_i + Σ_k λ_k f_k(r_i) m_k on a 1-D grid (:mod:`.lowrank`)."""

    v: np.ndarray
    feats: np.ndarray
    lam: np.ndarray

    @classmethod
    def make(cls, v, feats, lam) -> LowRank:
        """The bundle with its arrays as contiguous float64 (the kernels' types)."""
        return cls(_f64(v), _f64(feats), _f64(lam))


class Grid1(NamedTuple):
    """Uniform cell-centred 1-D grid: cell size h, centres r_i = (i + ½) h."""

    h: float
    r: np.ndarray

    @classmethod
    def make(cls, h: float, r) -> Grid1:
        """The bundle with its arrays as contiguous float64 (the kernels' types)."""
        return cls(float(h), _f64(r))


class Noise(NamedTuple):
    """Constants of the drift–diffusion equations: R#, λ (confinement), β, m (weight r^m)."""

    r_sharp: float
    lam: float
    beta: float
    m: float

    @classmethod
    def make(cls, r_sharp: float, lam: float, beta: float, m: float) -> Noise:
        """The bundle with its arrays as contiguous float64 (the kernels' types)."""
        return cls(float(r_sharp), float(lam), float(beta), float(m))


class Grid3(NamedTuple):
    """Uniform cell-centred (a, s, r) grid: centres and cell sizes."""

    a_c: np.ndarray
    s_c: np.ndarray
    r_c: np.ndarray
    h_a: float
    h_s: float
    h_r: float

    @classmethod
    def make(cls, a_c, s_c, r_c, h_a: float, h_s: float, h_r: float) -> Grid3:
        """The bundle with its arrays as contiguous float64 (the kernels' types)."""
        return cls(_f64(a_c), _f64(s_c), _f64(r_c), float(h_a), float(h_s), float(h_r))


class Kernel3(NamedTuple):
    """φ(s, r) = φ0 + Σ_q w_q M_q F_q with M_q = h³ Σ a ρ F_q (:mod:`.stepper3d`)."""

    phi0: np.ndarray
    feats: np.ndarray
    w: np.ndarray

    @classmethod
    def make(cls, phi0, feats, w) -> Kernel3:
        """The bundle with its arrays as contiguous float64 (the kernels' types)."""
        return cls(_f64(phi0), _f64(feats), _f64(w))


class StepSizes(NamedTuple):
    """dt_init (<= 0: start at dt_max) and dt_max of the semi-implicit drivers."""

    dt_init: float
    dt_max: float

    @classmethod
    def make(cls, dt_init: float, dt_max: float) -> StepSizes:
        """The bundle with its arrays as contiguous float64 (the kernels' types)."""
        return cls(float(dt_init), float(dt_max))

"""Tensor quadrature rules for the initial law of the single neuron (MATH.md §3, §6).

ρ̄_0 = P_A ⊗ N(s0, κ²/d) ⊗ (κ/√d) χ_{d−1} is a product law; each factor gets a Gauss rule that is
exact for polynomials of degree 2n − 1 in its natural variable:

* a: a point mass → the node a0; N(a0, σ²) → Gauss–Hermite (probabilists'); U[a0 − h, a0 + h] →
  Gauss–Legendre;
* s ~ N(s0, κ²/d) → Gauss–Hermite;
* r = (κ/√d) χ_{d−1}: with u = r² d/(2κ²) ~ Gamma((d − 1)/2, 1), the generalised Gauss–Laguerre
  rule of α = (d − 1)/2 − 1 in u, r = κ sqrt(2u/d) (exact for polynomials in r² of degree
  2n − 1, i.e. every even moment E r^{2k}, k <= 2n − 1).

The product nodes z_p = (a, s, r) with weights w_p = w_a w_s w_r; nodes whose weight is below
``WEIGHT_FLOOR`` (far tails: their total is < 1e-13, far below every accuracy asked for) are
dropped and the rest renormalised to total mass 1, so that Σ_p w_p = 1 to round-off.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.polynomial import hermite_e, legendre
from scipy import linalg

__all__ = ["WEIGHT_FLOOR", "rule_a", "rule_s", "rule_r", "product_rule"]

WEIGHT_FLOOR = 1e-15  # product weights below this are dropped


def _gauss_normal(n: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = hermite_e.hermegauss(n)
    return x, w / math.sqrt(2.0 * math.pi)


def rule_a(law: str, a0: float, std: float, halfwidth: float, n: int) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """Nodes and weights of P_A: ``law`` in {"point", "gaussian", "uniform"} (a zero width is
    a point mass)."""
    if law == "point" or (law == "gaussian" and std == 0.0) or (law == "uniform"
                                                                and halfwidth == 0.0):
        return np.array([float(a0)]), np.array([1.0])
    if law == "gaussian":
        x, w = _gauss_normal(n)
        return a0 + std * x, w
    x, w = legendre.leggauss(n)
    return a0 + halfwidth * x, 0.5 * w


def rule_s(s0: float, kappa: float, dof: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Hermite rule of N(s0, κ²/dof)."""
    x, w = _gauss_normal(n)
    return s0 + kappa / math.sqrt(dof) * x, w


def rule_r(kappa: float, dof: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Generalised Gauss–Laguerre rule of r = (κ/√dof) χ_{dof−1} (module docstring)."""
    alpha = 0.5 * (dof - 1) - 1.0
    # Golub–Welsch for the normalised weight u^α e^(−u)/Γ(α+1) (no Γ(α+1) to overflow)
    k = np.arange(n, dtype=np.float64)
    diag = 2.0 * k + alpha + 1.0
    off = np.sqrt(k[1:] * (k[1:] + alpha))
    u, vec = linalg.eigh_tridiagonal(diag, off)
    w = vec[0] ** 2
    return kappa * np.sqrt(2.0 * u / dof), w / math.fsum(w)


def product_rule(rules: tuple[tuple[np.ndarray, np.ndarray], ...],
                 floor: float = WEIGHT_FLOOR) -> tuple[np.ndarray, np.ndarray]:
    """Tensor product of the 1-D rules (a, s, r): positions (P, 3) and weights (P,), nodes of
    weight < ``floor`` dropped, the rest renormalised to Σ w = 1."""
    (xa, wa), (xs, ws), (xr, wr) = rules
    w = wa[:, None, None] * ws[None, :, None] * wr[None, None, :]
    z = np.stack(np.meshgrid(xa, xs, xr, indexing="ij"), axis=-1).reshape(-1, 3)
    w = w.ravel()
    keep = w >= floor * w.max()
    z, w = np.ascontiguousarray(z[keep]), w[keep]
    return z, w / math.fsum(w)

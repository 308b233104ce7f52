"""Low-rank evaluation of the interaction potential and the risk.

With a kernel written as a finite sum of products u(r, r') = Σ_k λ_k f_k(r) f_k(r'),

    m_k = Σ_i f_k(r_i) ρ_i h                (moments of the cell-average density ρ)
    Ψ_i = V_i + Σ_k λ_k m_k f_k(r_i)
    R   = R# + 2 Σ_i V_i ρ_i h + Σ_k λ_k m_k²

costs O(n K) for n cells and K terms, never O(n²).  ``feats`` has shape (K, n) so that both
passes run over contiguous memory.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def potential(rho, h, v, feats, lam, psi, moments):
    """Fill ``psi`` with Ψ_i = V_i + Σ_k λ_k m_k f_k(r_i) and ``moments`` with m_k = h Σ_i f_k ρ_i.

    Both contractions are BLAS matrix–vector products (about 4× the hand-written loops).
    """
    m = np.dot(feats, rho)
    for k in range(m.size):
        moments[k] = m[k] * h
        m[k] = lam[k] * moments[k]
    g = np.dot(m, feats)
    for i in range(psi.size):
        psi[i] = v[i] + g[i]


@numba.njit(cache=True)
def risk(rho, h, v, feats, lam, r_sharp):
    """R(ρ) = R# + 2 h Σ_i V_i ρ_i + Σ_k λ_k m_k² (midpoint rule, exact for the discrete ψ)."""
    nk, n = feats.shape
    acc = 0.0
    for i in range(n):
        acc += v[i] * rho[i]
    out = r_sharp + 2.0 * h * acc
    for k in range(nk):
        m = 0.0
        for i in range(n):
            m += feats[k, i] * rho[i]
        m *= h
        out += lam[k] * m * m
    return out


def potential_numpy(rho: np.ndarray, h: float, v: np.ndarray, feats: np.ndarray,
                    lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plain numpy version of :func:`potential` (reference for tests)."""
    moments = feats @ rho * h
    return v + (lam * moments) @ feats, moments

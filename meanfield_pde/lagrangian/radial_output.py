"""What a radial Lagrangian state (node positions X_p of fixed-mass cells) says about ρ̄_t.

* cell averages Δm_i / (X_{i+1} − X_i) (exact; their minimum is the positivity check),
* their conservative deposit on a fixed grid (exact cell averages of the piecewise-constant
  density: Σ_i Δm_i |[X_i, X_{i+1}] ∩ cell| / (X_{i+1} − X_i)),
* the mass beyond a point r (the wall check), with the same piecewise-constant density.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["cell_densities", "deposit", "mass_beyond"]


def cell_densities(edges_x: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Δm_i / (X_{i+1} − X_i) (negative if two edges crossed: a positivity violation)."""
    return masses / np.diff(edges_x)


@numba.njit(cache=True)
def _deposit(xe, masses, grid, out):
    """out[c] += mass of the piecewise-constant cells [xe_i, xe_{i+1}] inside grid cell c."""
    nc = grid.size - 1
    for i in range(masses.size):
        a, b = xe[i], xe[i + 1]
        if not b > a:
            continue
        dens = masses[i] / (b - a)
        c = np.searchsorted(grid, a, side="right") - 1
        if c < 0:
            c = 0
        while c < nc and grid[c] < b:
            lo = max(a, grid[c])
            hi = min(b, grid[c + 1])
            if hi > lo:
                out[c] += dens * (hi - lo)
            c += 1


def deposit(edges_x: np.ndarray, masses: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Cell averages on ``grid`` (edges) of the piecewise-constant density of the cells;
    mass outside the grid is not deposited (the wall check reports it first)."""
    out = np.zeros(grid.size - 1)
    _deposit(np.ascontiguousarray(edges_x), np.ascontiguousarray(masses),
             np.ascontiguousarray(grid), out)
    return out / np.diff(grid)


def mass_beyond(edges_x: np.ndarray, masses: np.ndarray, r: float) -> float:
    """Mass of the piecewise-constant cells beyond r."""
    a, b = edges_x[:-1], edges_x[1:]
    frac = np.clip((b - np.maximum(a, r)) / np.maximum(b - a, 1e-300), 0.0, 1.0)
    return float(np.sum(masses * frac))

"""Mass cells of the radial Lagrangian solver and their Gauss–Lobatto quadrature (MATH.md §6).

Points are labelled by their initial position r_0 (equivalently by their mass coordinate
m = F_0(r_0), F_0 the CDF of ρ̄_0).  The labels [a, b] carry all the mass but < ``TAIL`` at each
end; they are split into cells [e_i, e_{i+1}] (edges shared by neighbours), and each cell carries
``order`` Gauss–Lobatto nodes (its two edges and order − 2 interior nodes).  The weights are the
Lobatto rule of ∫_cell f(X(r_0, t)) ρ̄_0(r_0) dr_0, rescaled per cell to the exact cell mass
Δm_i = F_0(e_{i+1}) − F_0(e_i) (the mass beyond a and b goes to the end cells), so that

    ∫ f dρ̄_t = ∫ f(X(r_0, t)) ρ̄_0(dr_0) ≈ Σ_p w_p f(X_p(t)),      Σ_p w_p = 1,

with the error of the Lobatto rule, O(h^(2·order − 2)) in the cell width h, while X(·, t) is
smooth in the label.  The cell average of ρ̄_t is Δm_i / (X_{i+1}(t) − X_i(t)), exact.

The cell widths in the label follow a resolution density g(r_0) (cells at equal increments of
∫g): a floor that resolves the label range uniformly, plus a term ∝ the stretch ∂X/∂r_0 of a
coarse pilot run (where the law splits) and the initial density, so that both r and m are resolved.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.polynomial import legendre

__all__ = ["MassCells", "lobatto", "place_edges"]

TAIL = 1e-17  # mass left outside the labels at each end (added to the end cells)


def lobatto(order: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Lobatto nodes and weights on [0, 1] (``order`` >= 2 nodes, both ends included),
    exact for polynomials of degree <= 2·order − 3."""
    n = order - 1
    interior = legendre.Legendre.basis(n).deriv().roots() if n >= 2 else np.empty(0)
    x = np.concatenate([[-1.0], np.sort(interior.real), [1.0]])
    pn = legendre.Legendre.basis(n)(x)
    w = 2.0 / (n * (n + 1) * pn**2)
    return 0.5 * (x + 1.0), 0.5 * w


def place_edges(lo: float, hi: float, n_cells: int, density: np.ndarray,
                grid: np.ndarray) -> np.ndarray:
    """n_cells + 1 edges on [lo, hi] at equal increments of ∫ g, g = ``density`` sampled on
    ``grid`` (piecewise linear, > 0): cells are narrow where g is large."""
    g = np.maximum(density, 1e-300)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (g[1:] + g[:-1]) * np.diff(grid))])
    edges = np.interp(np.linspace(0.0, cum[-1], n_cells + 1), cum, grid)
    edges[0], edges[-1] = lo, hi
    return edges


@dataclass
class MassCells:
    """The cells in the label r_0: ``edges`` (n + 1,), ``masses`` Δm_i (n,), the node labels
    ``nodes`` ((order − 1) n + 1,) and weights ``weights`` (same size; sum 1)."""

    edges: np.ndarray
    masses: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    order: int

    @property
    def n_cells(self) -> int:
        """Number of mass cells."""
        return self.masses.size

    @classmethod
    def build(cls, edges: np.ndarray, order: int, pdf: Callable[[np.ndarray], np.ndarray],
              cdf_diff: Callable[[np.ndarray], np.ndarray]) -> MassCells:
        """Cells on ``edges``: ``pdf`` = ρ̄_0 (smooth inside every cell), ``cdf_diff(edges)`` =
        the exact masses of the cells (the tails beyond the end edges added to the end cells,
        total exactly 1 up to one rounding)."""
        x, wq = lobatto(order)
        h = np.diff(edges)
        nodes = (edges[:-1, None] + h[:, None] * x[None, :])  # (n, order)
        inside = nodes.copy()  # ρ̄_0 of this cell at its ends (a law may jump at cell edges)
        inside[:, 0] += 1e-12 * h
        inside[:, -1] -= 1e-12 * h
        raw = wq[None, :] * h[:, None] * pdf(inside)
        masses = np.asarray(cdf_diff(edges), dtype=np.float64)
        masses = masses / math.fsum(masses)
        scale = np.where(raw.sum(axis=1) > 0, masses / np.maximum(raw.sum(axis=1), 1e-300), 0.0)
        cellw = raw * scale[:, None]
        bad = raw.sum(axis=1) <= 0  # pdf vanishes at every node: the mass goes to the edges
        cellw[bad] = 0.0
        cellw[bad, 0] = cellw[bad, -1] = 0.5 * masses[bad]
        return cls._assemble(edges, masses, nodes, cellw, order)

    @classmethod
    def _assemble(cls, edges, masses, nodes, cellw, order) -> MassCells:
        n = masses.size
        flat_nodes = np.concatenate([nodes[:, :-1].ravel(), [edges[-1]]])
        w = np.zeros(n * (order - 1) + 1)
        idx = np.arange(n)[:, None] * (order - 1) + np.arange(order)[None, :]
        np.add.at(w, idx.ravel(), cellw.ravel())
        return cls(np.asarray(edges, dtype=np.float64), masses, flat_nodes, w, order)

    def edge_positions(self, x: np.ndarray) -> np.ndarray:
        """The cell edges X(e_i, t) from the state of all node positions."""
        return x[:: self.order - 1]

    def densities(self, x: np.ndarray) -> np.ndarray:
        """Cell averages Δm_i / (X_{i+1} − X_i) of ρ̄_t."""
        return self.masses / np.diff(self.edge_positions(x))

    def positions_at(self, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """X(r_0, t) at the labels r_0 by the Lagrange interpolant through the nodes of the cell
        holding each label (order of the cell's Lobatto rule); labels outside are clipped."""
        labels = np.clip(np.asarray(labels, dtype=np.float64), self.edges[0], self.edges[-1])
        k = self.order - 1
        cell = np.clip(np.searchsorted(self.edges, labels, side="right") - 1, 0,
                       self.n_cells - 1)
        idx = cell[:, None] * k + np.arange(k + 1)[None, :]
        lab, xs = self.nodes[idx], x[idx]
        out = np.zeros(labels.size)
        for j in range(k + 1):
            basis = np.ones(labels.size)
            for i in range(k + 1):
                if i != j:
                    basis *= (labels - lab[:, i]) / (lab[:, j] - lab[:, i])
            out += basis * xs[:, j]
        return out

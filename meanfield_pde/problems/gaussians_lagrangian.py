"""The Lagrangian method of the problem "gaussians" (MATH.md §6): mass cells, as the problem
class and the result file see them.

State: the positions of the Gauss–Lobatto nodes of ``lagrangian.mass_cells`` fixed-mass cells
(``lagrangian.cell_order`` nodes per cell, edges shared), graded by a pilot run to
``lagrangian.pilot_t_end`` (:mod:`meanfield_pde.lagrangian.radial_pilot`).

Result file (in addition to the finite-volume fields, which are deposited from the cells):

* ``grid/cell_masses`` (n_cells,): the fixed masses Δm_i of the cells (sum 1);
* ``grid/cell_labels`` (n_cells + 1,): the initial positions of the cell edges;
* ``grid/node_weights`` (P,): the quadrature weight of every tracked node (sum 1);
* ``cell_edges`` (K, n_cells + 1): the cell edges X(m_i, t) per snapshot;
* ``nodes`` (K, P): every tracked node (edges and interior Lobatto nodes) per snapshot — the
  exact state: risk and moments are Σ_p w_p f(X_p);
* ``density``: the cell averages Δm_i / (X_{i+1} − X_i) deposited conservatively on the
  output grid; ``risk``, ``mass``, ``mean_r`` from the quadrature of the nodes.

Measured orders of the risk error in the resolution (against converged references: the same
solver with 640 cells × 8 nodes at rtol 1e-13, self-consistent to 3e-14 with 480 cells, and
agreeing with the finite-volume errors the issue quotes), used as the p of the Richardson estimate
|R − R_companion| / (2^p − 1) with the companion at half the resolution:

* finite volumes, grid.n → grid.n/2 (default setting, t <= 20): max-norm orders 1.70, 1.88, 1.95
  for n = 600 → 1200 → 2400 → 4800, pointwise medians 1.0 → 1.9 (the error changes sign in time);
  FV_ORDER = 1.5: at n = 2400 the estimate is within [0.02, 52] × the actual error at every output
  but the 5 (of 200) where the error crosses zero.
* finite volumes with noise (semi-implicit, solver.dt_max = 0.01; β = 100, λ = 0.01, t <= 20):
  the first-order time error dominates (risk error 1.5e-2; n = 2400 is within 5.7e-4 of
  n = 9600 at equal dt), so the companion also doubles dt_max; NOISY_ORDER = 1.0 gives an
  estimate within [0.94, 59] × the actual error (Richardson reference from n = 4800/9600 at
  dt = 0.0025/0.00125) at every output.
* Lagrangian, 8 Lobatto nodes, mass cells 25 → 50 → 100 → 200: max-norm risk errors 7.3e-5,
  4.6e-6, 2.5e-8, 1.8e-11 (observed orders 4.0, 7.5, 10.4; the formal order is 14).  The
  convergence is faster than algebraic and irregular: from one doubling to the next the error
  falls 4× … 1200× (and more on other settings), and it changes sign in time.  With a companion
  at half the cells no fixed p keeps the estimate honest: |R − R̃| over the error spans more than
  the window [1/3, 100] allows (p = 6: the curve's error reached 7.4× its estimate at 50 cells;
  p = 3: the estimate reached 112× the error at 60 cells, t <= 8).  The companion therefore has
  ⌊3n/4⌋ cells (q = n/⌊3n/4⌋ ≈ 4/3, where one refinement changes the error by 1.8× … 19×) and
  LAGRANGIAN_ORDER = 4 (factor 1/(q^4 − 1) ≈ 0.46).  Measured on the ladders 25, 50, 100, 200
  cells (companions 18, 37, 75, 150) of three settings (default; Δ = 0.6, d = 20, κ = 0.5;
  ℓ2 term λ = 0.05, κ = 1.2) against 480 cells at rtol 1e-13: max_{j<=k}|actual_j| <= 1.7 ×
  risk_error_k at every output, and risk_error at t_end <= 13 × the run's largest error
  (+ 1e-10).
  Limitation: with init.kind = "from_file" the cells also take every jump of the file's density
  as an edge, so the companion may be barely coarser and the estimate too small.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError
from ..lagrangian.radial import InitialLaw
from ..lagrangian.radial_method import RadialLagrangian, RadialSetup

if TYPE_CHECKING:
    from .gaussians import GaussiansProblem, RadialKernel

__all__ = ["FV_ORDER", "LAGRANGIAN_ORDER", "NOISY_ORDER", "GaussiansLagrangian", "build_lagrangian",
           "companion_cells"]

FV_ORDER = 1.5
NOISY_ORDER = 1.0
LAGRANGIAN_ORDER = 4.0
KERNEL_POINTS = 400  # points of [0, big] on which the kernel series' truncation is decided


def companion_cells(n: int) -> int:
    """Mass cells of the companion behind risk_error: ⌊3n/4⌋, at least 2 (module docstring)."""
    return max(2, (3 * n) // 4)


def initial_law(problem: GaussiansProblem, ini: dict) -> tuple[InitialLaw, tuple | None]:
    """ρ̄_0 of the configuration and a key identifying it (None: not cached)."""
    if ini["kind"] == "chi":
        dof = problem._chi_dof(ini)
        return InitialLaw.chi(ini["kappa"], dof), ("chi", ini["kappa"], dof)
    if ini["kind"] == "gaussian":
        if not ini["std"] > 0.0:
            raise ConfigError("init.std = 0 is a point mass: the Lagrangian method needs a law "
                              "with a density; set init.std > 0")
        return (InitialLaw.gaussian(ini["mean"], ini["std"]),
                ("gaussian", ini["mean"], ini["std"]))
    edges, dens = problem._source
    return InitialLaw.piecewise(edges, dens), None


class GaussiansLagrangian(RadialLagrangian):
    """:class:`RadialLagrangian` with the problem's file layout (module docstring)."""

    pilot_t_end: float = 0.0
    kernel: RadialKernel | None = None  # the truncated series (rank, truncation error)

    @property
    def grid(self) -> dict[str, np.ndarray]:
        """The fixed arrays of the file: cell masses, cell labels, node weights."""
        c = self.cells
        return {"cell_masses": c.masses, "cell_labels": c.edges, "node_weights": c.weights}

    @property
    def fields(self) -> dict[str, tuple[int, ...]]:
        """Per-snapshot fields beyond the FV ones: cell edges and nodes."""
        return {"cell_edges": (self.cells.n_cells + 1,), "nodes": (self.cells.nodes.size,)}

    def snapshot(self, x: np.ndarray, out_edges: np.ndarray) -> dict[str, float | np.ndarray]:
        """Risk, mass, mean r, the density's cell averages on ``out_edges``,
        the cell edges and the nodes at the node positions ``x``."""
        return {
            "risk": self.risk(x),
            "mass": self.mass,
            "mean_r": self.mean_r(x),
            "density": self.deposit(x, out_edges),
            "cell_edges": self.edges(x).copy(),
            "nodes": x.copy(),
        }

    def potential(self, x: np.ndarray, r: np.ndarray) -> np.ndarray:
        """ψ(r; ρ̂_t) at the points r (without the ℓ2 term)."""
        f = self.flow.features
        l2, f.l2 = f.l2, 0.0
        try:
            return f.potential(r, x, self.cells.weights)
        finally:
            f.l2 = l2

    def attrs(self) -> dict[str, object]:
        """Root attributes of the method: cells, order, pilot, kernel series."""
        c = self.cells
        return {"mass_cells": c.n_cells, "cell_order": c.order, "nodes": int(c.nodes.size),
                "pilot_t_end": self.pilot_t_end, "pilot_max_stretch": self.grading.max_stretch,
                "kernel_terms": self.kernel.n_terms, "kernel_rank": 2 * self.kernel.n_terms,
                "kernel_truncation_error": self.kernel.truncation_error}


def build_lagrangian(problem: GaussiansProblem, ini: dict, lag: dict) -> GaussiansLagrangian:
    """The Lagrangian method for ``problem``'s configuration (pilot run included)."""
    from .gaussians import radial_kernel

    law, key = initial_law(problem, ini)
    cfg = problem.config
    big = max(10.0 * law.hi, law.hi + 10.0)
    kc = cfg.section("kernel")
    kern = radial_kernel(problem.activation, problem.delta, problem.d,
                         np.linspace(0.0, big, KERNEL_POINTS), kc["tol"], kc["max_terms"])
    setup = RadialSetup(problem.activation, problem.delta, kern.n_terms, kern.lam,
                        problem.lam, problem.schedule)
    t_end = lag["pilot_t_end"]
    t_end = cfg["time.t_end"] if t_end == "auto" else float(t_end)
    if not math.isfinite(t_end):
        raise ConfigError(f"lagrangian.pilot_t_end = {t_end} is not finite")
    out = GaussiansLagrangian(law, setup, lag["mass_cells"], lag["cell_order"], t_end,
                              None if key is None else (key, problem.d))
    out.pilot_t_end = t_end
    out.kernel = kern
    return out

"""The Lagrangian method of the radial problem, as the problem class uses it (MATH.md §6).

Assembles the pieces: the initial law's labels, the kernel's rank, the pilot's grading
(:mod:`.radial_pilot`), the fixed-mass cells with their Lobatto nodes (:mod:`.radial_cells`), the
flow of the nodes (:mod:`.radial`) and what a state says about ρ̄_t (:mod:`.radial_output`).

State: the positions X_p of all nodes, shape ((order − 1)·n_cells + 1,), fixed for the run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..activations import Activation
from ..schedule import Schedule
from .ode import OdeStepper
from .radial import InitialLaw, RadialFlow
from .radial_cells import MassCells
from .radial_output import cell_densities, deposit, mass_beyond
from .radial_pilot import Grading, pilot_grading

__all__ = ["RadialLagrangian", "RadialSetup"]

ATOL_SCALE = 1.0  # atol = rtol × ATOL_SCALE × (the labels' upper end): rtol of the domain


@dataclass(frozen=True)
class RadialSetup:
    """Everything that defines the flow of the nodes (hashable parts form the pilot cache key)."""

    act: Activation
    delta: float
    n_terms: int
    lam: np.ndarray
    l2: float
    schedule: Schedule

    def key(self) -> tuple:
        """The hashable parts of the setup: the pilot cache's key."""
        return (self.act.name, tuple(sorted(self.act.params.items())), self.delta,
                self.n_terms, self.lam.tobytes(), self.l2, self.schedule.kind,
                self.schedule.params.tobytes())

    def flow(self, cells: MassCells) -> RadialFlow:
        """The ODE of the nodes of ``cells`` under this setup (:class:`RadialFlow`)."""
        return RadialFlow(cells, self.act, self.delta, self.n_terms, self.lam, self.l2,
                          self.schedule)


class RadialLagrangian:
    """Fixed-mass cells of ``n_cells`` (graded by the pilot to ``pilot_t_end``) with ``order``
    Gauss–Lobatto nodes each, for the initial law ``law``."""

    def __init__(self, law: InitialLaw, setup: RadialSetup, n_cells: int, order: int,
                 pilot_t_end: float, law_key: tuple | None):
        self.law, self.setup = law, setup
        key = None if law_key is None else (law_key, setup.key())
        self.grading: Grading = pilot_grading(law, setup.flow, order, pilot_t_end, key)
        edges = self.grading.edges(n_cells, law.breaks)
        self.cells = MassCells.build(edges, order, law.pdf, law.masses)
        self.flow = setup.flow(self.cells)
        self.mass = float(np.sum(self.cells.masses))

    @property
    def reach(self) -> float:
        """The pilot's largest position of the outermost edge (the automatic wall's base)."""
        return self.grading.reach

    def initial_state(self) -> np.ndarray:
        """A copy of the nodes' initial positions X(e, 0) (the state)."""
        return self.cells.nodes.copy()

    def stepper(self, rtol: float) -> OdeStepper:
        """DOP853 on the nodes (:meth:`RadialFlow.stepper`), atol relative to ρ̄_0's reach."""
        return self.flow.stepper(rtol, rtol * ATOL_SCALE * self.law.hi)

    def edges(self, x: np.ndarray) -> np.ndarray:
        """Cell edges X(e_i, t)."""
        return self.cells.edge_positions(x)

    def densities(self, x: np.ndarray) -> np.ndarray:
        """Exact cell averages Δm_i / (X_{i+1} − X_i) of ρ̄_t at the nodes ``x``."""
        return cell_densities(self.edges(x), self.cells.masses)

    def risk(self, x: np.ndarray) -> float:
        """The risk R(ρ̄_t) of the node positions ``x`` (Lobatto quadrature)."""
        return self.flow.risk(x)

    def mean_r(self, x: np.ndarray) -> float:
        """∫ r dρ̄_t by the Lobatto quadrature."""
        return float(np.dot(self.cells.weights, x) / np.sum(self.cells.weights))

    def deposit(self, x: np.ndarray, grid: np.ndarray) -> np.ndarray:
        """Cell averages of ρ̄_t on the output grid (edges ``grid``)."""
        return deposit(self.edges(x), self.cells.masses, grid)

    def mass_beyond(self, x: np.ndarray, r: float) -> float:
        """Mass of ρ̄_t beyond the radius ``r`` (the wall test)."""
        return mass_beyond(self.edges(x), self.cells.masses, r)

"""Where to put the mass cells: a coarse pilot run that measures the stretch ∂X/∂r_0.

The Lobatto rule on a cell of label width h, mass Δm and extent ΔX = S h at time t (S = ∂X/∂r_0,
the stretch) integrates f(X(r_0, t)) ρ̄_0(r_0) with an error ~ Δm (ΔX/ℓ)^p, p = 2·order − 2
(ℓ the length scale of the features).  Equidistributing Δm (ΔX)^p = ρ̄_0 h (S h)^p over cells
gives cell widths h ∝ g(r_0)^(-1) with

    g(r_0) = ( ρ̄_0(r_0) · S_max(r_0)^p )^(1/(p+1)) / ∫(...)  +  FLOOR / (b − a),

S_max(r_0) = max over the run of the stretch, and a floor keeping every label range resolved.
Where the law splits, S_max is large (its peak narrows like exp(−γt) around the separatrix
label): one pilot on uniform cells smears the peak, so the pilot is repeated ``PILOT_ROUNDS``
times, each on the cells graded by the previous one (the measured peak sharpens each round).
The pilot is deterministic (fixed cells, tolerance and times), so a resume rebuilds the same
cells; its results are cached per configuration (the companion run reuses them).
It also records the reach: the largest position of the outermost edge over the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .radial import InitialLaw, RadialFlow
from .radial_cells import MassCells, place_edges

__all__ = ["Grading", "pilot_grading"]

PILOT_CELLS = 60  # cells of each pilot round
PILOT_ORDER = 3  # Lobatto nodes per pilot cell
PILOT_ROUNDS = 4  # pilot runs, each on the cells graded by the previous one
PILOT_RTOL = 1e-5  # tolerance of the pilot's time integration
PILOT_TIMES = 21  # times at which the stretch is measured (uniform on [0, t_end])
FLOOR = 0.05  # share of the resolution density spread uniformly over the labels
FINE = 20001  # points of the label grid on which the resolution density is tabulated
CACHE_SIZE = 16  # gradings kept (a run and its companion share one)

_CACHE: dict[tuple, Grading] = {}


@dataclass(frozen=True)
class Grading:
    """The resolution density g on the label grid, and the pilot's reach."""

    grid: np.ndarray
    density: np.ndarray
    reach: float
    max_stretch: float

    def edges(self, n_cells: int, breaks: np.ndarray) -> np.ndarray:
        """n_cells + 1 cell edges at equal increments of ∫g, plus the law's ``breaks``."""
        e = place_edges(self.grid[0], self.grid[-1], n_cells, self.density, self.grid)
        if breaks.size:
            e = np.union1d(e, breaks[(breaks > e[0]) & (breaks < e[-1])])
        return e


def resolution_density(law: InitialLaw, grid: np.ndarray, edges: np.ndarray,
                       stretch: np.ndarray, order: int) -> np.ndarray:
    """g on ``grid`` from the stretch per pilot cell (module docstring)."""
    centers = 0.5 * (edges[1:] + edges[:-1])
    s = np.exp(np.interp(grid, centers, np.log(np.maximum(stretch, 1e-300))))
    p = 2 * order - 2
    g = (law.pdf(grid) * s**p) ** (1.0 / (p + 1))
    g = g / np.trapezoid(g, grid)
    return g + FLOOR / (grid[-1] - grid[0])


def _pilot_run(law: InitialLaw, edges: np.ndarray, make_flow: Callable[[MassCells], RadialFlow],
               times: np.ndarray) -> tuple[np.ndarray, float]:
    """(max over ``times`` of the stretch per cell, max position of the last edge)."""
    cells = MassCells.build(edges, PILOT_ORDER, law.pdf, law.masses)
    flow = make_flow(cells)
    stepper = flow.stepper(PILOT_RTOL, PILOT_RTOL * law.hi)
    x = cells.nodes.copy()
    stretch = np.ones(cells.n_cells)
    from ..runner.trackers import PILOT_MAX_STEPS, advance_guarded

    reach = float(x[-1])
    budget = [PILOT_MAX_STEPS]
    for a, b in zip(times[:-1], times[1:], strict=True):
        rep = advance_guarded(stepper, x, float(a), float(b), "the pilot run that grades the "
                              "mass cells", budget)
        if rep is None or rep.t != b or not np.all(np.isfinite(x)):
            break  # the stretch so far: a grading, not a result
        e = cells.edge_positions(x)
        stretch = np.maximum(stretch, np.diff(e) / np.diff(edges))
        reach = max(reach, float(np.max(x)))
    return stretch, reach


def pilot_grading(law: InitialLaw, make_flow: Callable[[MassCells], RadialFlow], order: int,
                  t_end: float, key: tuple | None = None) -> Grading:
    """The grading of the mass cells for a run to ``t_end`` (module docstring); ``key``
    identifies the flow for the cache (None: no caching)."""
    if key is not None and (key, order, t_end) in _CACHE:
        return _CACHE[(key, order, t_end)]
    grid = np.linspace(law.lo, law.hi, FINE)
    if law.breaks.size:
        grid = np.union1d(grid, law.breaks)
    times = np.linspace(0.0, t_end, PILOT_TIMES)
    edges = np.linspace(law.lo, law.hi, PILOT_CELLS + 1)
    g = np.ones(grid.size)
    reach, smax = law.hi, 1.0
    for _ in range(PILOT_ROUNDS if t_end > 0 else 0):
        stretch, reach = _pilot_run(law, edges, make_flow, times)
        smax = float(stretch.max())
        g = resolution_density(law, grid, edges, stretch, order)
        edges = place_edges(law.lo, law.hi, PILOT_CELLS, g, grid)
    out = Grading(grid, g, reach, smax)
    if key is not None:
        if len(_CACHE) >= CACHE_SIZE:  # forget the oldest
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[(key, order, t_end)] = out
    return out

"""A problem that lives only in the tests: 1-D transport towards the origin with a known solution.

    ∂_t ρ = ξ(t) ∂_x(ρ ∂_x V),   V(x) = x²/2,   on [−x_max, x_max] with no-flux walls,

a Wasserstein gradient flow of the energy E(ρ) = ∫ V ρ (a closed-form potential, no interaction).
Its characteristics are x(t) = x_0 e^{−I(t)}, I(t) = ∫_0^t ξ, so

    ρ(t, x) = e^{I(t)} ρ_0(x e^{I(t)}),

and a Gaussian N(m, s²) stays Gaussian: N(m e^{−I}, s² e^{−2I}), with E = (m² + s²) e^{−2I} / 2.

The scheme is deliberately simple and written here, in numpy: first-order upwind fluxes with
the exact face velocity u = −ξ(t) x, forward Euler in time, dt = cfl h / (ξ x_max) (cfl <= 1
keeps ρ >= 0), steps landing exactly on every stop time.  It is first order in h (dt ∝ h): the
L1 error of the cell averages halves when the grid is refined twice.

The class declares everything the package asks of a problem (name, schema, walls, plots) and is
registered by the tests (:func:`meanfield_pde.problems.registry.register`); nothing in the
package knows it.  It records no particle coordinates: SGD and validation of it need a particle
model, which the generic particle engine is to provide.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

from meanfield_pde.config import CHECKPOINT, SCHEDULE, STEADY, TIME, Config, Float, Int, Schema
from meanfield_pde.errors import ConfigError, SolverError
from meanfield_pde.fv.stepper1d import MAX_STEPS, REACHED
from meanfield_pde.plotting import heatmap_over_time, require, set_time_axis, use_log_time
from meanfield_pde.problems.base import Problem, Stepper, StepReport
from meanfield_pde.schedule import Schedule

NAME = "toy-transport"

SCHEMA: Schema = {
    "init": {
        "mean": Float(0.5, doc="mean m of the Gaussian initial law"),
        "std": Float(0.25, lo=0.0, doc="standard deviation s of the Gaussian initial law"),
    },
    "grid": {
        "n": Int(200, lo=8, hi=1_000_000, doc="cells in x"),
        "x_max": Float(2.0, lo=0.0, doc="walls at -x_max and x_max"),
        "wall_cells": Int(2, lo=1, doc="cells next to each wall that must stay empty"),
        "wall_tol": Float(1e-6, lo=0.0, hi=1.0, doc="mass allowed in those cells"),
    },
    "time": {**TIME, **STEADY, "t_end": Float(1.0, lo=0.0, doc="final time of the run"),
             "n_outputs": Int(11, lo=2, hi=1_000_000, doc="number of output times")},
    "schedule": SCHEDULE,
    "solver": {
        "cfl": Float(0.5, lo=0.0, hi=1.0, hi_closed=True, doc="dt = cfl h / (xi x_max)"),
        "max_steps": Int(10_000_000, lo=1, doc="stop with an error after this many steps"),
    },
    "checkpoint": CHECKPOINT,
}


def gaussian_cells(edges: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Exact cell averages of the density of N(mean, std²) on the cells ``edges``."""
    cdf = ndtr((edges - mean) / std)
    return np.diff(cdf) / np.diff(edges)


def exact_cells(cfg: Config, edges: np.ndarray, t: float) -> np.ndarray:
    """Exact cell averages of ρ(t) (the initial Gaussian transported by x -> x e^{-I(t)})."""
    shrink = math.exp(-Schedule.from_config(cfg).integral(t))
    return gaussian_cells(edges, cfg["init.mean"] * shrink, cfg["init.std"] * shrink)


def exact_energy(cfg: Config, t: float) -> float:
    """E(ρ(t)) = (m² + s²) e^{−2I(t)} / 2."""
    shrink = math.exp(-Schedule.from_config(cfg).integral(t))
    return 0.5 * (cfg["init.mean"] ** 2 + cfg["init.std"] ** 2) * shrink**2


def diffusion_bound(cfg: Config, h: float, t: float, n_times: int = 400) -> float:
    """(h/2) ∫_0^t ξ(s) ||∂_x(|x| ∂_x ρ(s))||_1 ds: the scheme's numerical diffusion
    (h/2)|u|(1 − ν)ρ_x integrated along the exact solution (an upper bound to first order in h
    of the L1 error, the factor 1 − ν <= 1 dropped)."""
    sched = Schedule.from_config(cfg)
    m, s = cfg["init.mean"], cfg["init.std"]
    x = np.linspace(-cfg["grid.x_max"], cfg["grid.x_max"], 40001)
    total, ds = 0.0, t / n_times
    for si in (np.arange(n_times) + 0.5) * ds:  # midpoint rule in s
        shrink = math.exp(-sched.integral(si))
        mu, sd = m * shrink, s * shrink
        rho = np.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * math.sqrt(2.0 * math.pi))
        g = np.gradient(np.abs(x) * (-(x - mu) / sd**2) * rho, x)
        total += sched(si) * np.trapezoid(np.abs(g), x) * ds
    return 0.5 * h * total


class UpwindStepper(Stepper):
    """Forward Euler with upwind fluxes of u = −ξ(t) x; no state carried between calls."""

    def __init__(self, problem: ToyTransport):
        self.p = problem

    def advance(self, state: np.ndarray, t: float, t_stop: float, max_steps: int) -> StepReport:
        p = self.p
        x = p.edges[1:-1]  # inner faces; the walls carry no flux
        flux = np.zeros(p.edges.size)
        steps, dt = 0, 0.0
        while t < t_stop and steps < max_steps:
            xi = p.schedule(t)
            dt = min(p.cfl * p.h / (xi * p.x_max), t_stop - t)
            u = -xi * x
            flux[1:-1] = np.where(u > 0.0, u * state[:-1], u * state[1:])
            state -= dt / p.h * np.diff(flux)
            t = t_stop if t_stop - t <= dt else t + dt
            steps += 1
        status = REACHED if t >= t_stop else MAX_STEPS
        return StepReport(t, steps, 0, status, dt, p.schedule(t) * p.x_max)


def plot_run(result, fig) -> None:
    """The density of x over time and the energy E(ρ) = ∫ x²/2 ρ against t."""
    require(result, ("risk", "density"), ("x_edges",))
    t = np.asarray(result.t, dtype=float)
    log = use_log_time(t)
    shown = t > 0 if log else np.ones(t.size, dtype=bool)
    ax_map, ax_risk = fig.subplots(1, 2)
    heatmap_over_time(fig, ax_map, t, shown, log, np.asarray(result.grid["x_edges"]),
                      np.asarray(result["density"], dtype=float), "x")
    ax_map.set_title("density of x")
    ax_risk.plot(t[shown], np.asarray(result["risk"])[shown], color="C0")
    set_time_axis(ax_risk, log, not shown.all())
    ax_risk.set_ylabel("E = ∫ x²/2 ρ")


class ToyTransport(Problem):
    """∂_t ρ = ξ(t) ∂_x(ρ x) on n cells of [−x_max, x_max]."""

    name = NAME
    aliases = ("toy",)
    schema = SCHEMA
    walls = ("x_max",)
    plot_run = staticmethod(plot_run)
    figsize = (12.0, 4.5)

    def __init__(self, cfg: Config):
        if cfg.problem != self.name:
            raise ConfigError(f"configuration is for {cfg.problem!r}, not {self.name!r}")
        self.config = cfg
        self.schedule = Schedule.from_config(cfg)
        self.x_max, n = cfg["grid.x_max"], cfg["grid.n"]
        self.edges = np.linspace(-self.x_max, self.x_max, n + 1)
        self.centers = 0.5 * (self.edges[1:] + self.edges[:-1])
        self.h = 2.0 * self.x_max / n
        self.cfl = cfg["solver.cfl"]

    @property
    def grid(self) -> dict[str, np.ndarray]:
        return {"x_edges": self.edges, "x_centers": self.centers}

    @property
    def fields(self) -> dict[str, tuple[int, ...]]:
        return {"risk": (), "mass": (), "density": (self.centers.size,)}

    def initial_state(self) -> np.ndarray:
        return gaussian_cells(self.edges, self.config["init.mean"], self.config["init.std"])

    def snapshot(self, state: np.ndarray) -> dict[str, float | np.ndarray]:
        # ∫ x²/2 over each cell, exactly, times the cell average
        cell_v = (self.edges[1:] ** 3 - self.edges[:-1] ** 3) / 6.0
        return {"risk": float(cell_v @ state), "mass": float(state.sum() * self.h),
                "density": state.copy()}

    def make_stepper(self) -> Stepper:
        return UpwindStepper(self)

    def check_walls(self, state: np.ndarray, t: float) -> None:
        k = self.config["grid.wall_cells"]
        mass = float((state[:k].sum() + state[-k:].sum()) * self.h)
        if mass > self.config["grid.wall_tol"]:
            raise SolverError(f"mass {mass:.2g} reached a wall at t = {t:.6g}; raise "
                              "grid.x_max")

    def attrs(self) -> dict[str, object]:
        return {"x_max": self.x_max}

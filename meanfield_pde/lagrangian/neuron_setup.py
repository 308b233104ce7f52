"""The single-neuron problem's side of the characteristic solver: building the particle system,
the particle pilot that places the automatic walls, and a snapshot of the particles.

* :func:`characteristics` — the tensor Gauss rule of ρ̄_0 (``[lagrangian] n_a, n_s, n_r``) and
  the Chebyshev table of v and the kernel on [s_min, s_max] × [0, r_max] (``table_s, table_r``).
  The pilot uses a coarse rule (``PILOT_NODES``), a coarse table (``PILOT_TABLE``, kernel tol
  ``PILOT_KERNEL_TOL``) and zero-weight tracers at the extreme main particles of weight >=
  ``TRACER_WEIGHT`` (less mass than that per particle lies beyond them).
* :func:`pilot_walls` — the pilot runs on a wide box to t_end; each automatic wall goes
  ``pad`` × (reached span) beyond the reach of the pilot's particles; a wall the pilot comes
  within 10 % of is pushed out (the span doubled on that side) and the pilot repeated.
* :func:`particle_snapshot` — the snapshot fields (MATH.md §6): risk and means from the
  particles, density and marginals deposited on the output grid, the positions themselves.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..errors import SolverError
from ..schedule import stop_times
from . import neuron as ln
from . import neuron_field as nf

if TYPE_CHECKING:
    from ..problems.single_neuron import SingleNeuronProblem

__all__ = ["characteristics", "pilot_walls", "particle_snapshot"]

PILOT_NODES = (4, 10, 10)  # particle pilot: at most this many nodes in a, s, r
PILOT_TABLE = (24, 12)  # particle pilot: Chebyshev table nodes in s, r²
PILOT_RTOL = 1e-6
PILOT_KERNEL_TOL = 1e-8  # the pilot's table needs the reach only
TRACER_WEIGHT = 1e-8  # pilot tracers: the extreme main particles of at least this weight
# threaded particle kernels from here on (measured +10 % at 4000 particles on a loaded 2-core
# machine, where a barrier can also cost several times): serial below
PARALLEL_PARTICLES = 20000


def characteristics(p: SingleNeuronProblem, lag: dict, box: tuple[float, ...],
                    pilot: bool = False) -> ln.NeuronCharacteristics:
    """The particle system of problem ``p`` on the table box [box[2], box[3]] × [0, box[4]]
    (the main run, or the pilot: module docstring)."""
    ini = p.config.section("init")
    main = ln.initial_particles(ini, p._dof, lag["n_a"], lag["n_s"], lag["n_r"])
    if pilot:
        parts = ln.initial_particles(ini, p._dof, min(lag["n_a"], PILOT_NODES[0]),
                                     *PILOT_NODES[1:])
        tr = ln.extreme_tracers(main.z, main.w, TRACER_WEIGHT)
        parts = ln.NeuronParticles(np.concatenate([parts.z, tr]),
                                   np.concatenate([parts.w, np.zeros(len(tr))]))
        sizes = PILOT_TABLE
    else:
        parts, sizes = main, (lag["table_s"], lag["table_r"])
    tol = max(p.config["kernel.tol"], PILOT_KERNEL_TOL) if pilot else None
    table = nf.ChebTable.build(lambda s, r: p._kernel_on(s, r, tol), box[2], box[3], box[4],
                               *sizes)
    parallel = p.config["solver.parallel"] and parts.n >= PARALLEL_PARTICLES
    return ln.NeuronCharacteristics(parts, table, p.schedule, p.lam, parallel)


def pilot_walls(p: SingleNeuronProblem, support: tuple[float, ...], fixed: dict[str, float],
                walls: tuple[str, ...], pad: float) -> dict[str, float]:
    """The automatic walls (those not in ``fixed``) from the particle pilot (module docstring);
    ``support`` = (a_lo, a_hi, s_lo, s_hi, r_hi) of ρ̄_0."""
    a_lo, a_hi, s_lo, s_hi, r_hi = support
    span_s = max(s_hi - s_lo, 1.0)
    wide = [a_lo - 1.0, a_hi + 1.0, s_lo - 0.25 * span_s, s_hi + 0.25 * span_s,
            max(1.25 * r_hi, 1.0)]
    times = stop_times(p.config, p.schedule)[1:]
    lag = p.config.section("lagrangian")
    for _ in range(6):
        box = tuple(fixed.get(k, w) for k, w in zip(walls, wide, strict=True))
        system = characteristics(p, lag, box, pilot=True)
        y = system.particles.z.ravel().copy()
        reach = ln.pilot_reach(system, y, times, PILOT_RTOL)
        near = [walls[i] not in fixed and i >= 2 and not (
            abs(reach[i] - box[i]) >= 0.1 * (box[3] - box[2] if i < 4 else box[4]))
            for i in range(5)]
        near[4] = near[4] or not np.all(np.isfinite(y))
        if not any(near):
            break
        for i, hit in enumerate(near):
            if hit:  # double the box towards that wall
                span = wide[3] - wide[2] if i < 4 else wide[4]
                wide[i] += -span if i == 2 else span
    else:
        raise SolverError(
            "particles keep moving towards the walls of the pilot box; set grid.s_min, "
            "grid.s_max and grid.r_max explicitly or shorten time.t_end")
    lo_a, hi_a, lo_s, hi_s, hi_r = reach
    pad_a, pad_s = pad * (hi_a - lo_a) + 1e-3, pad * (hi_s - lo_s)
    return {"a_min": lo_a - pad_a, "a_max": hi_a + pad_a, "s_min": lo_s - pad_s,
            "s_max": hi_s + pad_s, "r_max": (1 + pad) * hi_r}


def particle_snapshot(p: SingleNeuronProblem, state: np.ndarray) -> dict[str, float | np.ndarray]:
    """Risk, mass and means from the particles; marginals and density deposited on the output
    grid (each weight in the cell holding its particle); the (P, 3) positions."""
    sysm = p.lagrangian
    z = state.reshape(-1, 3)
    w = sysm.w
    mass = math.fsum(w)
    rho = p.density(state)
    ma, ms, mr = (rho.sum(axis=(1, 2)) * p.h_s * p.h_r, rho.sum(axis=(0, 2)) * p.h_a * p.h_r,
                  rho.sum(axis=(0, 1)) * p.h_a * p.h_s)
    risk = sysm.risk(state)
    extra = {"free_energy": 0.5 * risk + 0.5 * p.lam * sysm.l2(state)} if p.lam > 0 else {}
    means = {f"mean_{x}": float(np.dot(w, z[:, c]) / mass) for c, x in enumerate("asr")}
    return {"risk": risk, "mass": mass, **extra, **means, "marginal_a": ma, "marginal_s": ms,
            "marginal_r": mr, "density": rho, "particles": z.copy()}

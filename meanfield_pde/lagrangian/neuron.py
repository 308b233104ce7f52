"""Characteristics of the noiseless single-neuron flow (MATH.md §6): weighted particles.

For ρ̂_t = Σ_p w_p δ_{z_p(t)} the continuity equation ∂_t ρ̄ = 2ξ ∇·(ρ̄ ∇Ψ_λ) is solved exactly by

    dz_p/dt = −2ξ(t) ∇_z Ψ_λ(z_p; ρ̂_t),   Ψ_λ = a φ(s, r; ρ̂) + λ(a² + s² + r²)/2,

with fixed weights.  z_p(0), w_p: the tensor Gauss rule of ρ̄_0 (:mod:`.tensor_quadrature`), so
every moment, the risk and the marginals converge with the quadrature.  φ and ∇φ at the particles
come from the Chebyshev table of :mod:`.neuron_field` (one O(P N) evaluation per right-hand
side); time integration by DOP853 (:class:`.ode.OdeStepper`) with rtol = solver.rtol.

The state is the flat array of the positions (P, 3) (columns a, s, r; C order).

Accuracy of the characteristics (default, tanh, d = 30, κ = 0.5, a = 1, t <= 8, on the same
walls against 48 × 48 (16 in a) nodes, a 64 × 32 table and rtol 1e-12): quadrature errors in
the risk 1.3e-9 / 4.7e-10 / 5e-12 / 1e-13 at 6 / 8 / 12 / 16 nodes per direction; table errors
7e-6 / 2.6e-6 / 4e-8 / 7e-11 / 1.2e-13 at 12×6 / 16×8 / 24×12 / 32×16 / 48×24 nodes; time
error (rtol 1e-6 .. 1e-10) <= 1e-13 (the steps are set by the output times).  relu (a corner
singularity of the features at s = r = 0): table 24×12 / 32×16 / 48×24 → 2e-5 / 3.7e-6 / 9e-8.

Against that reference, the default resolution (32 × 32 nodes, 8 in a non-point a, 48 × 24
table): risk relative error <= 5e-11 (tanh default), 1.5e-12 (Gaussian a, s0 = 0.3), 1.7e-5
(relu, uniform a), 9e-7 (d = 10, κ = 0.8: a wide box), means <= 1e-6, W1 of the deposited
marginals <= 1.7e-3.  Wall time of the default after compilation: setup 0.45 s (pilot and
table), run 1.2 s (566 particles, ~1050 right-hand sides of 0.7 ms: the 81 output times, each
landed on exactly, set the steps — 3 outputs need 351).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import neuron_field as nf
from . import tensor_quadrature as tq
from .ode import OdeStepper

__all__ = ["NeuronParticles", "NeuronCharacteristics", "initial_particles"]

ATOL_SCALE = 1e-2  # atol = rtol × ATOL_SCALE (positions are O(0.1 .. 1))


@dataclass
class NeuronParticles:
    """Initial positions z (P, 3) and fixed weights w (P,)."""

    z: np.ndarray
    w: np.ndarray

    @property
    def n(self) -> int:
        """Number of particles P."""
        return self.w.size


def initial_particles(ini: dict, dof: int, n_a: int, n_s: int, n_r: int,
                      floor: float = tq.WEIGHT_FLOOR) -> NeuronParticles:
    """The tensor rule of ρ̄_0 for the ``[init]`` section ``ini`` (init.d resolved to ``dof``)."""
    ra = tq.rule_a(ini["a_law"], ini["a"], ini["a_std"], ini["a_halfwidth"], n_a)
    rs = tq.rule_s(ini["s0"], ini["kappa"], dof, n_s)
    rr = tq.rule_r(ini["kappa"], dof, n_r)
    z, w = tq.product_rule((ra, rs, rr), floor)
    return NeuronParticles(z, w)


class NeuronCharacteristics:
    """The particle system: right-hand side, risk, energy (module docstring).

    ``table`` a :class:`.neuron_field.ChebTable`; ``xi`` a callable ξ(t); ``lam`` the ℓ2
    coefficient λ; ``parallel`` the threaded kernels."""

    def __init__(self, particles: NeuronParticles, table: nf.ChebTable, xi, lam: float,
                 parallel: bool):
        self.particles, self.table, self.xi, self.lam = particles, table, xi, float(lam)
        self.w = np.ascontiguousarray(particles.w)
        ns, nr = table.shape
        self._b = np.empty(ns * nr)
        self._phi = np.empty((ns, nr))
        self._vel = nf.velocity_par if parallel else nf.velocity
        self.coords = table.coords()

    def rhs(self, t: float, y: np.ndarray) -> np.ndarray:
        """dz/dt of the flat state y."""
        z = y.reshape(-1, 3)
        out = np.empty_like(z)
        sc, sh, rmax = self.coords
        tb = self.table
        self._vel(z, self.w, tb.cv, tb.E, sc, sh, rmax, 2.0 * self.xi(t), self.lam, self._b,
                  self._phi, out)
        return out.reshape(-1)

    def risk(self, y: np.ndarray) -> float:
        """R(ρ̂) of the tabulated kernel (:func:`.neuron_field.table_risk`)."""
        sc, sh, rmax = self.coords
        tb = self.table
        return float(nf.table_risk(y.reshape(-1, 3), self.w, tb.cv, tb.E, sc, sh, rmax,
                                   tb.r_sharp))

    def l2(self, y: np.ndarray) -> float:
        """∫ (a² + s² + r²) dρ̂."""
        z = y.reshape(-1, 3)
        return float(np.dot(self.w, np.einsum("pi,pi->p", z, z)))

    def stepper(self, rtol: float) -> OdeStepper:
        """DOP853 on :meth:`rhs` with rtol and atol = rtol × ATOL_SCALE."""
        return OdeStepper(self.rhs, rtol, rtol * ATOL_SCALE)

    def reach(self, y: np.ndarray) -> tuple[float, float, float, float, float]:
        """(a_lo, a_hi, s_lo, s_hi, r_hi) over all particles."""
        z = y.reshape(-1, 3)
        return (float(z[:, 0].min()), float(z[:, 0].max()), float(z[:, 1].min()),
                float(z[:, 1].max()), float(z[:, 2].max()))


def deposit(z: np.ndarray, w: np.ndarray, edges: tuple[np.ndarray, np.ndarray, np.ndarray]
            ) -> np.ndarray:
    """Cell masses of the particle measure on the tensor grid ``edges`` (a, s, r): each weight
    goes to the cell holding its particle (particles beyond a wall to the wall cell), so the
    masses sum to Σ w exactly up to round-off and are >= 0."""
    shape = tuple(e.size - 1 for e in edges)
    idx = []
    for c, e in enumerate(edges):
        h = (e[-1] - e[0]) / (e.size - 1)
        i = np.floor((z[:, c] - e[0]) / h).astype(np.int64)
        idx.append(np.clip(i, 0, e.size - 2))
    flat = np.ravel_multi_index(tuple(idx), shape)
    return np.bincount(flat, weights=w, minlength=math.prod(shape)).reshape(shape)


def extreme_tracers(z: np.ndarray, w: np.ndarray, min_weight: float) -> np.ndarray:
    """Among the particles of weight >= ``min_weight``, those extreme in a, s, r, s + r and
    s − r (zero-weight tracers of a pilot run)."""
    z = z[w >= min_weight]
    keys = (z[:, 0], z[:, 1], z[:, 2], z[:, 1] + z[:, 2], z[:, 1] - z[:, 2])
    idx = sorted({int(f(k)) for k in keys for f in (np.argmin, np.argmax)})
    return z[idx].copy()


def pilot_reach(system: NeuronCharacteristics, y: np.ndarray, times: np.ndarray,
                rtol: float) -> tuple[float, float, float, float, float]:
    """(a_lo, a_hi, s_lo, s_hi, r_hi) reached by the particles of ``system`` over ``times``
    (y, the start, is changed in place)."""
    from ..runner.trackers import PILOT_MAX_STEPS, advance_guarded

    stepper = system.stepper(rtol)
    reach = list(system.reach(y))
    t, budget = 0.0, [PILOT_MAX_STEPS]
    for t_next in times:
        rep = advance_guarded(stepper, y, t, float(t_next), "the pilot run that sizes the "
                              "automatic walls", budget)
        t = float(t_next)
        if not np.all(np.isfinite(y)) or rep is None or rep.t != t:
            break  # the reach so far (a budget spent: the main run's walls report the rest)
        e = system.reach(y)
        reach = [min(reach[0], e[0]), max(reach[1], e[1]), min(reach[2], e[2]),
                 max(reach[3], e[3]), max(reach[4], e[4])]
    return tuple(reach)

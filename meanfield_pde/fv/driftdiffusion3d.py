"""Scharfetter–Gummel finite volumes for the noisy 3-D single-neuron equation (MATH.md §3, §4).

State: cell averages ρ[i, j, k] on the uniform cell-centred n_a × n_s × n_r grid of
:mod:`.stepper3d` (centres a_c, s_c, r_c with r_c > 0, cell sizes h_a, h_s, h_r, h³ = h_a h_s h_r),
no-flux walls on all six faces:

    ∂_t ρ = 2ξ(t) ∇_z·[ ρ ∇_z( Ψ + λ(a² + s² + r²)/2 + β⁻¹ log(ρ / r^m) ) ],   z = (a, s, r),
    Ψ = a φ(s, r),   φ = φ0 + Σ_q w_q M_q F_q,   M_q = h³ Σ_ijk a_i ρ_ijk F_q[j n_r + k],

with a real weight exponent m >= 0 (m = d − 2 for the single neuron).  Diffusion coefficient 1/β in
the effective potential (cell centres r_k > 0, so the log is finite)

    Φ_ijk = a_i φ_jk + λ(a_i² + s_j² + r_k²)/2 − (m/β) log r_k.

Scharfetter–Gummel flux, dimension by dimension (c = 2ξ, B(x) = x/(eˣ − 1) of
:func:`.driftdiffusion1d.bernoulli`), e.g. along a

    F_{i+1/2,j,k} = (c/(β h_a)) [ B(βΔΦ) ρ_ijk − B(−βΔΦ) ρ_{i+1,j,k} ],  ΔΦ = Φ_{i+1,j,k} − Φ_ijk,
    dρ_ijk/dt = −Σ_{axes x} (F_{x,+} − F_{x,−}) / h_x,   F = 0 on the walls.

Properties (checked in tests/test_driftdiffusion3d.py):

* mass is conserved (the fluxes telescope);
* B(x)/B(−x) = e^{−x}: the discrete Gibbs state ρ ∝ exp(−βΦ) has zero flux through every face;
* with μ = Φ + β⁻¹ log ρ, F = −(c/(βh_x)) B(βΔΦ) ρ_− expm1(βΔμ), hence the semi-discrete
  dissipation  h³ Σ μ dρ/dt = Σ_x (h³/h_x) Σ_faces F Δμ <= 0.

Discrete free energy (the Lyapunov functional of the scheme; R as in :func:`.stepper3d.risk3d`
plus R#)

    F(ρ) = ½R(ρ) + (λ/2) h³ Σ (a_i² + s_j² + r_k²) ρ_ijk + β⁻¹ h³ Σ ρ_ijk log(ρ_ijk / r_k^m),
    R(ρ) = R# + 2 h³ Σ a_i φ0_jk ρ_ijk + Σ_q w_q M_q²,     (0 log 0 = 0)
    δF/δρ_ijk = h³ (Ψ_ijk + λ|z|²/2 + β⁻¹ (log(ρ_ijk / r_k^m) + 1)).

Time stepping (:func:`advance_noisy3d`): φ (hence Φ) frozen at ρⁿ, ξ at the midpoint of the step,
and a sequential (Lie) splitting of the three 1-D linearly implicit SG operators A_a, A_s, A_r:

    ρ' = (I + dt A_a)⁻¹ ρⁿ,   ρ'' = (I + dt A_s)⁻¹ ρ',   ρⁿ⁺¹ = (I + dt A_r)⁻¹ ρ''.

Each factor is a set of independent tridiagonal M-matrix solves with unit column sums, one per
line of its axis (the positive-term Thomas elimination of :mod:`.driftdiffusion1d`; lines along r
use its ``_solve_implicit`` directly, lines along a and s the same operations vectorised over k).
Hence ρⁿ⁺¹ >= 0 and Σ ρⁿ⁺¹ = Σ ρⁿ up to round-off for every dt: no parabolic limit
dt <= h²β/(4ξ).  Every factor annihilates the flux of the frozen Gibbs state exp(−βΦⁿ) along its
own axis, so each preserves it; the fixed points of the step are exactly the discrete
self-consistent Gibbs states, whatever dt (a fixed point has zero dissipation in every factor, i.e.
zero flux through every face).  First order in time (implicit Euler and Lie splitting).

Exact energy balance.  With the frozen free energy F_fr(ρ) = h³ Σ ρ (Φⁿ + β⁻¹ log ρ) (convex),
each factor (I + dt A_x) ρ⁺ = ρ⁻ satisfies exactly

    F_fr(ρ⁻) − F_fr(ρ⁺) = dt D_x(ρ⁺) + Breg(ρ⁻, ρ⁺),
    D_x(ρ⁺)   = −(h³/h_x) Σ_faces F_x(ρ⁺) Δμ⁺ >= 0,   μ⁺ = Φⁿ + β⁻¹ log ρ⁺,
    Breg(ρ⁻, ρ⁺) = β⁻¹ h³ Σ [ρ⁻ log(ρ⁻/ρ⁺) − ρ⁻ + ρ⁺] >= 0,

and, the interaction being quadratic, F(ρⁿ⁺¹) − F(ρⁿ) = F_fr(ρⁿ⁺¹) − F_fr(ρⁿ) + ½ Σ_q w_q ΔM_q².
So the true change is

    F(ρⁿ⁺¹) − F(ρⁿ) = ½ Σ_q w_q ΔM_q² − Σ_{x=a,s,r} [dt D_x(ρ^{(x)}) + Breg(ρ^{(x−1)}, ρ^{(x)})],

every term a sum of non-negative products computed without cancellation (as in
:func:`.driftdiffusion1d.step_energy_balance`).  The adaptive loop accepts a step only if the
values of F do not increase beyond their round-off and, whenever those values cannot resolve the
change (near equilibrium), this balance is <= 0 to relative precision; the Picard-type
instability of large frozen-interaction steps under a strong interaction is caught this way.
Away from equilibrium ½ Σ w ΔM² = O(dt²) against a decrease dt D + Breg of order dt, so small
enough steps are accepted.

Layout: :mod:`.splitstep3d` holds Φ, the Bernoulli factors and the line solves of the split
step; :mod:`.energy3d` the free energy and the exact balance; this module the explicit SG
right-hand side, the scheme's hooks for :mod:`.semi_implicit` and the Python entry points.

Parallelism: every kernel works on slabs (a-lines: one slab per j; s- and r-lines, logs, free
energy and dissipation: one slab per i).  The serial and the ``prange`` versions run the same slab
code, and reductions go through per-slab partial sums added in slab order, so the two are
bit-identical.  The potential reuses the hand-written contractions of :mod:`.stepper3d`
(no BLAS: see there).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .bundles import StepSizes, Xi
from .energy3d import _balance, _free_energy_core, _free_energy_parts, _logs, _logs_par
from .gibbs import GibbsResult, gibbs_core
from .rk import COPY, DT_UNDERFLOW, MAX_STEPS, NONFINITE, REACHED, STATUS_TEXT, stage, stage_par
from .semi_implicit import (
    SemiImplicitControl,
    SemiImplicitOps,
    SteadyState,
    make_frozen_implicit,
    steady_state_loop,
)
from .splitstep3d import (
    _LOG,
    _NEW,
    _PHI,
    N_CELLS,
    _bern_pair,
    _faces_from_phi,
    _geometry,
    _phi_at,
    _prepare,
    _prepare_par,
    _split_step,
    upper_neighbour,
)
from .stepper3d import field3d, field3d_par
from .xi import xi_at

__all__ = [
    "DT_UNDERFLOW", "MAX_STEPS", "NONFINITE", "REACHED", "STATUS_TEXT", "SteadyState",
    "effective_potential3d", "sg_rhs3d", "free_energy3d", "frozen_step3d", "make_noisy3d_work",
    "advance_noisy3d", "gibbs_state3d", "steady_state3d",
]

# The exact balance (b) is evaluated when the values of F change by less than this (relative to
# max(|F|, Σ|terms of F|)); a larger decrease is resolved by the values themselves (their round-off
# is ~1e-15 of that scale), so (b) would hold there and need not be computed.
BALANCE_BAND = 1e-10


@numba.njit(cache=True)
def _pot(parallel, rho, grid, kern, A, M, phi):
    """A, M and φ of ρ (:func:`.stepper3d.field3d`, serial or threaded)."""
    if parallel:
        field3d_par(rho, grid, kern, A, M, phi)
    else:
        field3d(rho, grid, kern, A, M, phi)


# ----------------------------------------------------------------------------------------------
# compiled entry points: the split scheme as :class:`.semi_implicit.SemiImplicitOps` on the model
# (parallel, grid, kern, noise, cells, planes, qv, part, geo) of :func:`make_noisy3d_work`.


@numba.njit(cache=True)
def _logs_of(parallel, x, cells, part):
    if parallel:
        return _logs_par(x, cells[_LOG], part)
    return _logs(x, cells[_LOG], part)


@numba.njit(cache=True)
def _si_init(model, rho):
    parallel, grid, kern, noise, cells, planes, qv, part, geo = model
    _geometry(grid.a_c, grid.s_c, grid.r_c, noise.lam, noise.beta, noise.m, geo)
    _pot(parallel, rho, grid, kern, planes[0], qv[0], planes[1])
    if _logs_of(parallel, rho, cells, part) > 0:
        return math.nan, math.nan
    return _free_energy_parts(parallel, rho, cells[_LOG], grid, kern, geo, qv[0], noise, part)


@numba.njit(cache=True)
def _si_freeze(model):
    parallel, grid, kern, noise, cells, planes, qv, part, geo = model
    if parallel:
        _prepare_par(grid.a_c, planes[1], geo, noise.beta, cells)
    else:
        _prepare(grid.a_c, planes[1], geo, noise.beta, cells)


@numba.njit(cache=True)
def _si_solve(model, rho, step, c):
    parallel, grid, kern, noise, cells, planes, qv, part, geo = model
    cb = step * c / noise.beta
    _split_step(parallel, rho, cb, grid.h_a, grid.h_s, grid.h_r, cells)
    return _logs_of(parallel, cells[_NEW], cells, part) == 0


@numba.njit(cache=True)
def _si_energy(model):
    parallel, grid, kern, noise, cells, planes, qv, part, geo = model
    _pot(parallel, cells[_NEW], grid, kern, planes[0], qv[0], planes[1])
    return _free_energy_parts(parallel, cells[_NEW], cells[_LOG], grid, kern, geo, qv[0], noise,
                              part)


@numba.njit(cache=True)
def _si_balance(model, rho, step, c):
    parallel, grid, kern, noise, cells, planes, qv, part, geo = model
    cb = step * c / noise.beta
    return _balance(parallel, rho, cells, grid, kern, noise.beta, cb, planes, qv, part)


@numba.njit(cache=True)
def _si_accept(model, rho):
    parallel, grid, kern, noise, cells, planes, qv, part, geo = model
    n = rho.size
    newf = cells[_NEW].reshape(n)
    if parallel:
        stage_par(COPY, newf, newf, newf, 0.0, rho.reshape(n))
    else:
        stage(COPY, newf, newf, newf, 0.0, rho.reshape(n))


@numba.njit(cache=True)
def _si_restore(model, rho):
    parallel, grid, kern, noise, cells, planes, qv, part, geo = model
    _pot(parallel, rho, grid, kern, planes[0], qv[0], planes[1])


_frozen_implicit = make_frozen_implicit(SemiImplicitOps(
    _si_init, _si_freeze, _si_solve, _si_energy, _si_balance, _si_accept, _si_restore))


@numba.njit(cache=True)
def _advance(rho, t, t_stop, max_steps, model, xi, ctl):
    """The adaptive loop of :func:`advance_noisy3d` (the driver of :mod:`.semi_implicit`)."""
    return _frozen_implicit(model, xi, rho, t, t_stop, max_steps, ctl)


@numba.njit(cache=True)
def _face_flux(rm, rp, x, a):
    """SG flux a [B(x) ρ_− − B(−x) ρ_+] and the outflow coefficients (a B(x), a B(−x))."""
    bp, bm = _bern_pair(x)
    return a * (bp * rm - bm * rp), a * bp, a * bm


@numba.njit(cache=True)
def _sg_rhs_core(rho, t, grid, kern, noise, xi, out):
    na, ns, nr = rho.shape
    a_c, h_a, h_s, h_r, beta = grid.a_c, grid.h_a, grid.h_s, grid.h_r, noise.beta
    geo = np.zeros((3, max(na, ns, nr)))
    _geometry(a_c, grid.s_c, grid.r_c, noise.lam, beta, noise.m, geo)
    A = np.empty((ns, nr))
    phi = np.empty((ns, nr))
    M = np.empty(kern.feats.shape[0])
    field3d(rho, grid, kern, A, M, phi)
    c = 2.0 * xi_at(xi.kind, xi.params, t)
    outrate = np.zeros_like(rho)  # Σ of the outflow coefficients / h of each cell
    out[:, :, :] = 0.0
    hs = (h_a, h_s, h_r)
    for ax in range(3):
        h = hs[ax]
        a = c / (beta * h)
        for i in range(na):
            for j in range(ns):
                for k in range(nr):
                    inside, i2, j2, k2 = upper_neighbour(ax, i, j, k, na, ns, nr)
                    if not inside:
                        continue
                    x = beta * (_phi_at(i2, j2, k2, a_c, phi, geo) - _phi_at(i, j, k, a_c, phi,
                                                                             geo))
                    f, op, om = _face_flux(rho[i, j, k], rho[i2, j2, k2], x, a)
                    out[i, j, k] -= f / h
                    out[i2, j2, k2] += f / h
                    outrate[i, j, k] += op / h
                    outrate[i2, j2, k2] += om / h
    rate = 0.0
    for i in range(na):
        for j in range(ns):
            for k in range(nr):
                d = outrate[i, j, k] + 0.0 * rho[i, j, k]
                if not d <= rate:
                    rate = d
    return rate


# ----------------------------------------------------------------------------------------------
# Python entry points


def _f64(x: np.ndarray, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if not (isinstance(x, np.ndarray) and x.dtype == np.float64 and x.flags.c_contiguous):
        raise ValueError(f"{name} must be a C-contiguous float64 array")
    if x.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {x.shape}")
    return x


def _check_inputs(rho, grid, kern) -> None:
    if not (isinstance(rho, np.ndarray) and rho.ndim == 3):
        raise ValueError("rho must be a 3-D array (n_a, n_s, n_r)")
    na, ns, nr = rho.shape
    _f64(rho, "rho", (na, ns, nr))
    _f64(grid.a_c, "a_c", (na,))
    _f64(grid.s_c, "s_c", (ns,))
    _f64(grid.r_c, "r_c", (nr,))
    _f64(kern.phi0, "phi0", (ns, nr))
    feats = kern.feats
    q = feats.shape[0] if isinstance(feats, np.ndarray) and feats.ndim == 2 else -1
    _f64(feats, "feats", (max(q, 0), ns * nr))
    _f64(kern.w, "w", (feats.shape[0],))
    if not np.all(grid.r_c > 0.0):
        raise ValueError("r cell centres must be > 0 (the weight r^m is taken at them)")


def effective_potential3d(rho: np.ndarray, grid, kern, noise) -> np.ndarray:
    """Φ_ijk = a_i φ_jk(ρ) + λ(a_i² + s_j² + r_k²)/2 − (m/β) log r_k, shape (n_a, n_s, n_r).

    ``grid``, ``kern``, ``noise``: :class:`.bundles.Grid3`, :class:`.bundles.Kernel3`,
    :class:`.bundles.Noise`.  Computed with the operations of the compiled kernels (the same
    floating-point values).
    """
    _check_inputs(rho, grid, kern)
    na, ns, nr = rho.shape
    work = make_noisy3d_work(na, ns, nr, kern.feats.shape[0])
    cells, planes, qv, _, geo = work
    _geometry(grid.a_c, grid.s_c, grid.r_c, noise.lam, noise.beta, noise.m, geo)
    field3d(rho, grid, kern, planes[0], qv[0], planes[1])
    _prepare(grid.a_c, planes[1], geo, noise.beta, cells)
    return cells[_PHI].copy()


def sg_rhs3d(rho: np.ndarray, t: float, grid, kern, noise, xi, out: np.ndarray) -> float:
    """out = dρ/dt, the explicit SG right-hand side with φ = φ(ρ) (module doc; serial, for tests).

    Returns the forward-Euler positivity rate max_cells Σ_faces (outflow coefficient)/h_x, with
    outflow coefficients (c/(βh_x)) B(βΔΦ) through an upper face and (c/(βh_x)) B(−βΔΦ) through a
    lower one: dt · rate <= 1 keeps ρ >= 0 (= 12ξ/(βh²) for flat Φ and equal h: the explicit
    parabolic limit).  nan if ρ is not finite.
    """
    _check_inputs(rho, grid, kern)
    _f64(out, "out", rho.shape)
    return float(_sg_rhs_core(rho, float(t), grid, kern, noise, xi, out))


def free_energy3d(rho: np.ndarray, grid, kern, noise) -> float:
    """F(ρ) = ½R(ρ) + (λ/2) h³ Σ |z|² ρ + β⁻¹ h³ Σ ρ log(ρ / r^m)  (module doc; 0 log 0 = 0).

    Compensated summation (round-off a few ulp of Σ|terms|); nan if some ρ < 0 or is not finite.
    """
    _check_inputs(rho, grid, kern)
    return float(_free_energy_core(rho, grid, kern, noise))


def make_noisy3d_work(n_a: int, n_s: int, n_r: int, Q: int) -> tuple[np.ndarray, ...]:
    """Work arrays of :func:`advance_noisy3d`: (cells, planes, qv, part, geo).

    cells (12, n_a, n_s, n_r): the two split stages, the new state, Φ, the six Bernoulli
    factors, pivots and logs; planes (3, n_s, n_r): A, φ, ΔA; qv (2, Q): M, ΔM; part
    (max(n_a, 1), 3): per-slab partial sums; geo (3, max n): the separable parts of Φ.
    After :func:`advance_noisy3d` returns, planes[0], planes[1] and qv[0] hold A, φ and M of the
    returned state.
    """
    n = max(n_a, n_s, n_r, 1)
    return (np.zeros((N_CELLS, n_a, n_s, n_r)), np.zeros((3, n_s, n_r)), np.zeros((2, Q)),
            np.zeros((max(n_a, 1), 3)), np.zeros((3, n)))


def _check_work(work, shape: tuple[int, int, int], Q: int) -> None:
    na, ns, nr = shape
    want = ((N_CELLS, na, ns, nr), (3, ns, nr), (2, Q), (max(na, 1), 3),
            (3, max(na, ns, nr, 1)))
    if len(work) != 5:
        raise ValueError("work must come from make_noisy3d_work")
    for arr, shp in zip(work, want, strict=True):
        _f64(arr, "work array", shp)


def frozen_step3d(rho: np.ndarray, phi_eff: np.ndarray, h_a: float, h_s: float, h_r: float,
                  c: float, beta: float, dt: float, parallel: bool = False) -> np.ndarray:
    """One split implicit step with a given frozen effective potential Φ (n_a, n_s, n_r).

    Returns ρ' = (I + dt A_r)⁻¹ (I + dt A_s)⁻¹ (I + dt A_a)⁻¹ ρ for the SG generators of Φ with
    c = 2ξ.  (A building block and a test handle; :func:`advance_noisy3d` does the same with
    Φ = Φ(ρⁿ).)
    """
    na, ns, nr = rho.shape
    _f64(rho, "rho", (na, ns, nr))
    _f64(phi_eff, "phi_eff", (na, ns, nr))
    cells = np.zeros((N_CELLS, na, ns, nr))
    _faces_from_phi(phi_eff, float(beta), cells)
    _split_step(bool(parallel), rho, float(dt) * float(c) / float(beta), float(h_a), float(h_s),
                float(h_r), cells)
    return cells[_NEW].copy()


def advance_noisy3d(rho, t, t_stop, max_steps, grid, kern, noise, xi, dt, work, *,
                    parallel=False) -> tuple[float, int, int, int, float, float]:
    """Advance ``rho`` (n_a, n_s, n_r) in place from ``t`` to ``t_stop`` by split implicit SG steps.

    Step (module doc): φ = φ(ρⁿ) frozen, ξ = ξ(t + dt/2),
    ρⁿ⁺¹ = (I + dt A_r)⁻¹ (I + dt A_s)⁻¹ (I + dt A_a)⁻¹ ρⁿ.  The adaptive loop and its acceptance
    test are those of :func:`.semi_implicit.make_frozen_implicit`: (a) on the values of F, (b) the
    exact balance of the module doc, evaluated only when (a) holds with F(ρⁿ) − F(ρⁿ⁺¹) <=
    ``BALANCE_BAND`` · max(|F|, Σ|terms|): a larger decrease is certain from the values (their
    round-off is ~1e-15 of that scale), so (b) holds there, and skipping it saves about 60% of
    the cost of a step.

    Bundles: ``grid`` :class:`.bundles.Grid3`, ``kern`` :class:`.bundles.Kernel3`, ``noise``
    :class:`.bundles.Noise`, ``xi`` :class:`.bundles.Xi`, ``dt`` :class:`.bundles.StepSizes`.
    Guarantees: ρ >= 0 and mass conserved to round-off for every dt, F non-increasing at every
    accepted step, no parabolic limit.  First order in time; the long-time limit is the discrete
    self-consistent Gibbs state exactly, whatever dt.

    ``parallel`` runs the slab kernels under ``prange`` (bit-identical to serial).  ``work`` from
    :func:`make_noisy3d_work`.  Returns (t, steps, rejected, status, dt_next, F_last) with the
    status codes of :mod:`.rk`; dt_next is the step to pass as dt_init to the next call,
    F_last the free energy of the returned state.
    """
    _check_inputs(rho, grid, kern)
    _check_work(work, rho.shape, kern.feats.shape[0])
    if not (noise.beta > 0.0 and noise.lam >= 0.0 and noise.m >= 0.0):
        raise ValueError("need beta > 0, lam >= 0 and m >= 0")
    if not dt.dt_max > 0.0:
        raise ValueError(f"dt_max must be > 0, got {dt.dt_max}")
    cells, planes, qv, part, geo = work
    model = (bool(parallel), grid, kern, noise, cells, planes, qv, part, geo)
    ctl = SemiImplicitControl(float(dt.dt_init), float(dt.dt_max), BALANCE_BAND)
    out = _advance(rho, float(t), float(t_stop), int(max_steps), model, xi, ctl)
    t_new, steps, rejected, status, dt_next, f = out
    return float(t_new), int(steps), int(rejected), int(status), float(dt_next), float(f)


# ----------------------------------------------------------------------------------------------
# Gibbs state and steady state


def gibbs_state3d(grid, kern, noise, *, mass: float = 1.0, m0: np.ndarray | None = None,
                  tol: float = 1e-14, max_iter: int = 100) -> GibbsResult:
    """The discrete self-consistent Gibbs state of the noisy 3-D equation on the cell centres:

        ρ*_ijk = r_k^m exp(−β(a_i φ_jk(ρ*) + λ(a_i² + s_j² + r_k²)/2)) / Z,   h³ Σ ρ* = mass,

    the zero-flux state of the SG scheme and the unique minimiser of :func:`free_energy3d`
    (w_q >= 0).  A thin wrapper over :func:`..gibbs.gibbs_core` with external potential
    a_i φ0_jk + λ|z|²/2, log weight m log r_k, features a_i F_q(s_j, r_k) and weights w_q.
    Returns its :class:`..gibbs.GibbsResult` with ``density`` of shape (n_a, n_s, n_r) and
    ``moments`` = M_q(ρ*).  Memory: the features are expanded to (Q, n_a n_s n_r).
    """
    a_c, s_c, r_c = (np.asarray(x, dtype=np.float64) for x in (grid.a_c, grid.s_c, grid.r_c))
    lam, beta, m = noise.lam, noise.beta, noise.m
    na, ns, nr = a_c.size, s_c.size, r_c.size
    phi0 = np.asarray(kern.phi0, dtype=np.float64).reshape(ns, nr)
    feats = np.asarray(kern.feats, dtype=np.float64).reshape(-1, ns * nr)
    a2, s2, r2 = a_c**2, s_c**2, r_c**2
    ext = (a_c[:, None, None] * phi0[None]
           + 0.5 * lam * (a2[:, None, None] + s2[None, :, None] + r2[None, None, :]))
    log_r = m * np.log(r_c) if m != 0.0 else np.zeros(nr)
    log_w = np.broadcast_to(log_r[None, None, :], (na, ns, nr))
    f = (a_c[None, :, None] * feats[:, None, :]).reshape(feats.shape[0], na * ns * nr)
    return gibbs_core(ext, log_w, f, np.asarray(kern.w, dtype=np.float64), beta,
                      grid.h_a * grid.h_s * grid.h_r, r_sharp=noise.r_sharp, mass=mass, m0=m0,
                      tol=tol, max_iter=max_iter)


def steady_state3d(rho: np.ndarray, grid, kern, noise, *, xi=None, tol: float = 1e-12,
                   tol_rho: float | None = None, t_chunk: float = 1.0, t_max: float = 1e4,
                   dt_init: float = 0.0, dt_max: float | None = None, max_steps: int = 10**7,
                   parallel: bool = False) -> SteadyState:
    """Run :func:`advance_noisy3d` (on a copy of ``rho``) in chunks of length ``t_chunk`` from
    t = 0 until the relative free-energy decrease per unit time is <= ``tol`` (and, if given, the
    L1 rate of change h³ Σ|Δρ|/Δt <= ``tol_rho``), or until ``t_max``
    (:func:`.semi_implicit.steady_state_loop`; ``xi`` defaults to ξ = 1).

    The free-energy criterion alone certifies ρ only to about sqrt(β · 1e-16) in L1; use
    ``tol_rho`` to demand more.  dt_max defaults to t_chunk.
    """
    xi = Xi.make(0, [1.0]) if xi is None else xi
    rho = np.array(rho, dtype=np.float64, order="C")
    work = make_noisy3d_work(*rho.shape, kern.feats.shape[0])
    dmax = t_chunk if dt_max is None else dt_max

    def advance(rho, t, t_stop, dt):
        return advance_noisy3d(rho, t, t_stop, max_steps, grid, kern, noise, xi,
                               StepSizes.make(dt, dmax), work, parallel=parallel)

    return steady_state_loop(advance, rho, free_energy3d(rho, grid, kern, noise), tol=tol,
                             tol_rho=tol_rho,
                             t_chunk=t_chunk, t_max=t_max, dt_init=dt_init)

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
from .driftdiffusion1d import _excess_series, _solve_implicit, bernoulli
from .gibbs import GibbsResult, gibbs_core
from .rk import COPY, DT_UNDERFLOW, MAX_STEPS, NONFINITE, REACHED, STATUS_TEXT, stage, stage_par
from .semi_implicit import (
    SemiImplicitControl,
    SemiImplicitOps,
    SteadyState,
    make_frozen_implicit,
    steady_state_loop,
)
from .stepper3d import _feature_moment, field3d, field3d_par
from .variants import serial_and_parallel
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

# indices into the (N_CELLS, n_a, n_s, n_r) work block
_W1, _W2, _NEW, _PHI, _BPA, _BMA, _BPS, _BMS, _BPR, _BMR, _PIV, _LOG = range(12)
N_CELLS = 12


# ----------------------------------------------------------------------------------------------
# pointwise and per-slab pieces (shared by the serial and the parallel drivers)


@numba.njit(cache=True, inline="always")
def _bern_pair(x):
    """(B(x), B(−x)) with one expm1: the smaller one is B(|x|), the other B(|x|) + |x|.

    B(−y) = B(y) + y adds two non-negative numbers for y >= 0 (no cancellation), so the ratio
    B(x)/B(−x) = e^{−x} holds to a few ulp.
    """
    if x >= 0.0:
        b = bernoulli(x)
        return b, b + x
    b = bernoulli(-x)
    return b - x, b


@numba.njit(cache=True)
def _geometry(a_c, s_c, r_c, lam, beta, m, geo):
    """geo[0, i] = λa_i²/2, geo[1, j] = λs_j²/2, geo[2, k] = λr_k²/2 − (m/β) log r_k."""
    mb = m / beta
    for i in range(a_c.shape[0]):
        geo[0, i] = 0.5 * lam * a_c[i] * a_c[i]
    for j in range(s_c.shape[0]):
        geo[1, j] = 0.5 * lam * s_c[j] * s_c[j]
    for k in range(r_c.shape[0]):
        x = 0.5 * lam * r_c[k] * r_c[k]
        geo[2, k] = x - mb * math.log(r_c[k]) if m != 0.0 else x


@numba.njit(cache=True, inline="always")
def _phi_at(i, j, k, a_c, phi, geo):
    """Φ_ijk = a_i φ_jk + (λa_i²/2 + λs_j²/2) + (λr_k²/2 − (m/β) log r_k)."""
    return a_c[i] * phi[j, k] + ((geo[0, i] + geo[1, j]) + geo[2, k])


@numba.njit(cache=True)
def _slab_prepare(slab, a_c, phi, geo, beta, cells):
    """Φ[i] and the Bernoulli factors of the faces i+1/2 (a), j+1/2 (s), k+1/2 (r) of slab i.

    b?[i, j, k] belong to the face on the upper side of cell ijk along that axis (0 at walls).
    """
    Phi, bpa, bma, bps = cells[_PHI], cells[_BPA], cells[_BMA], cells[_BPS]
    bms, bpr, bmr = cells[_BMS], cells[_BPR], cells[_BMR]
    i = np.int64(slab)  # a prange index may be unsigned: keep the index arithmetic in int64
    na = a_c.shape[0]
    ns, nr = phi.shape
    for j in range(ns):
        for k in range(nr):
            p0 = _phi_at(i, j, k, a_c, phi, geo)
            Phi[i, j, k] = p0
            if i + 1 < na:
                bpa[i, j, k], bma[i, j, k] = _bern_pair(beta * (_phi_at(i + 1, j, k, a_c, phi,
                                                                         geo) - p0))
            else:
                bpa[i, j, k] = 0.0
                bma[i, j, k] = 0.0
            if j + 1 < ns:
                bps[i, j, k], bms[i, j, k] = _bern_pair(beta * (_phi_at(i, j + 1, k, a_c, phi,
                                                                         geo) - p0))
            else:
                bps[i, j, k] = 0.0
                bms[i, j, k] = 0.0
            if k + 1 < nr:
                bpr[i, j, k], bmr[i, j, k] = _bern_pair(beta * (_phi_at(i, j, k + 1, a_c, phi,
                                                                         geo) - p0))
            else:
                bpr[i, j, k] = 0.0
                bmr[i, j, k] = 0.0


@numba.njit(cache=True)
def _sweep_a(j, src, kappa, bp, bm, piv, qs, dst):
    """dst[:, j, :] = (I + dt A_a)⁻¹ src[:, j, :]: the n_r lines along a of slab j.

    The positive-term Thomas elimination of :func:`.driftdiffusion1d._solve_implicit`, same
    operations in the same order, vectorised over k (``qs`` holds the q_i, ``piv`` the pivots).
    """
    na, _, nr = src.shape
    last = na - 1
    for k in range(nr):
        qs[0, j, k] = 1.0
        p = 1.0 + (kappa * bp[0, j, k] if last > 0 else 0.0)
        piv[0, j, k] = p
        dst[0, j, k] = src[0, j, k] / p
    for i in range(1, na):
        for k in range(nr):
            q = 1.0 + kappa * bm[i - 1, j, k] * (qs[i - 1, j, k] / piv[i - 1, j, k])
            p = q + (kappa * bp[i, j, k] if i < last else 0.0)
            qs[i, j, k] = q
            piv[i, j, k] = p
            dst[i, j, k] = (src[i, j, k] + kappa * bp[i - 1, j, k] * dst[i - 1, j, k]) / p
    for i in range(na - 2, -1, -1):
        for k in range(nr):
            dst[i, j, k] += (kappa * bm[i, j, k] / piv[i, j, k]) * dst[i + 1, j, k]


@numba.njit(cache=True)
def _sweep_s(i, src, kappa, bp, bm, piv, qs, dst):
    """dst[i] = (I + dt A_s)⁻¹ src[i]: the n_r lines along s of slab i (as :func:`_sweep_a`)."""
    _, ns, nr = src.shape
    last = ns - 1
    for k in range(nr):
        qs[i, 0, k] = 1.0
        p = 1.0 + (kappa * bp[i, 0, k] if last > 0 else 0.0)
        piv[i, 0, k] = p
        dst[i, 0, k] = src[i, 0, k] / p
    for j in range(1, ns):
        for k in range(nr):
            q = 1.0 + kappa * bm[i, j - 1, k] * (qs[i, j - 1, k] / piv[i, j - 1, k])
            p = q + (kappa * bp[i, j, k] if j < last else 0.0)
            qs[i, j, k] = q
            piv[i, j, k] = p
            dst[i, j, k] = (src[i, j, k] + kappa * bp[i, j - 1, k] * dst[i, j - 1, k]) / p
    for j in range(ns - 2, -1, -1):
        for k in range(nr):
            dst[i, j, k] += (kappa * bm[i, j, k] / piv[i, j, k]) * dst[i, j + 1, k]


@numba.njit(cache=True)
def _sweep_r(i, src, kappa, bp, bm, piv, dst):
    """dst[i] = (I + dt A_r)⁻¹ src[i]: the n_s contiguous lines along r of slab i."""
    for j in range(src.shape[1]):
        _solve_implicit(src[i, j], kappa, bp[i, j], bm[i, j], piv[i, j], dst[i, j])


@numba.njit(cache=True)
def _slab_log(i, x, lg):
    """lg[i] = log x[i] (−inf where x = 0); returns the number of negative / non-finite cells."""
    _, ns, nr = x.shape
    bad = 0
    for j in range(ns):
        for k in range(nr):
            v = x[i, j, k]
            if v > 0.0 and v < math.inf:
                lg[i, j, k] = math.log(v)
            elif v == 0.0:
                lg[i, j, k] = -math.inf
            else:
                lg[i, j, k] = math.nan
                bad += 1
    return bad


@numba.njit(cache=True)
def _slab_dis_breg(slab, axis, old, new, lg, Phi, bp, bm, beta):
    """(Σ dissipation terms over the faces on the upper side of the cells of slab i along
    ``axis``, Σ Bregman terms over the cells of slab i), both unscaled and >= 0.

    Face term (x = βΔΦ, βΔμ = x + Δlog ρ⁺, cells ρ⁺_−, ρ⁺_+ both > 0):
    B(x) ρ⁺_− expm1(βΔμ) βΔμ for x <= 0, −B(−x) ρ⁺_+ expm1(−βΔμ) βΔμ for x > 0 (the same
    number, written with the factor that cannot overflow).  Cell term ρ⁺ [(1 + u) log(1 + u) − u],
    u = (ρ⁻ − ρ⁺)/ρ⁺ (cells with ρ⁺ = 0 skipped: a lower bound, hence conservative).
    """
    i = np.int64(slab)
    na, ns, nr = new.shape
    dis = 0.0
    breg = 0.0
    for j in range(ns):
        for k in range(nr):
            n0 = new[i, j, k]
            if not n0 > 0.0:
                continue
            breg += n0 * _excess_series((old[i, j, k] - n0) / n0)
            if axis == 0:
                if i + 1 >= na:
                    continue
                i2, j2, k2 = i + 1, j, k
            elif axis == 1:
                if j + 1 >= ns:
                    continue
                i2, j2, k2 = i, j + 1, k
            else:
                if k + 1 >= nr:
                    continue
                i2, j2, k2 = i, j, k + 1
            n1 = new[i2, j2, k2]
            if n1 > 0.0:
                x = beta * (Phi[i2, j2, k2] - Phi[i, j, k])
                bdm = x + (lg[i2, j2, k2] - lg[i, j, k])
                if x <= 0.0:
                    dis += bp[i, j, k] * n0 * math.expm1(bdm) * bdm
                else:
                    dis -= bm[i, j, k] * n1 * math.expm1(-bdm) * bdm
    return dis, breg


@numba.njit(cache=True)
def _slab_free_energy(i, rho, lg, a_c, phi0, geo, inv_beta, h3):
    """Neumaier sum (s, compensation, Σ|terms|) of h³ ρ (a φ0 + λ|z|²/2 + β⁻¹ log(ρ/r^m)) over
    slab i; nan if some ρ < 0 or is nan."""
    _, ns, nr = rho.shape
    ai = a_c[i]
    s = 0.0
    comp = 0.0
    scale = 0.0
    for j in range(ns):
        gij = geo[0, i] + geo[1, j]
        for k in range(nr):
            p = rho[i, j, k]
            if p > 0.0:
                term = h3 * p * (ai * phi0[j, k] + (gij + geo[2, k]) + inv_beta * lg[i, j, k])
            elif p == 0.0:
                continue
            else:
                return math.nan, math.nan, math.nan
            y = s + term
            if abs(s) >= abs(term):
                comp += (s - y) + term
            else:
                comp += (term - y) + s
            s = y
            scale += abs(term)
    return s, comp, scale


@numba.njit(cache=True)
def _column_diff_row(j, new, old, a_c, h_a, dA):
    """dA[j, :] = h_a Σ_i a_c[i] (new − old)[i, j, :], i summed in increasing order."""
    na, _, nr = new.shape
    for k in range(nr):
        dA[j, k] = 0.0
    for i in range(na):
        ai = a_c[i]
        for k in range(nr):
            dA[j, k] += ai * (new[i, j, k] - old[i, j, k])
    for k in range(nr):
        dA[j, k] *= h_a


# ----------------------------------------------------------------------------------------------
# phases: serial and prange versions (same slab code, partial sums per slab)


# Each phase below is one source with ``prange`` over slabs, compiled serially and threaded
# (:func:`.variants.serial_and_parallel`); partial sums go through ``part`` in slab order.


def _dmoments_src(new, old, a_c, h_a, h_s, h_r, feats, dA, dM):
    """dM_q = M_q(new) − M_q(old), computed from new − old (no cancellation of the M_q)."""
    ns, nr = dA.shape
    for j in numba.prange(ns):
        _column_diff_row(j, new, old, a_c, h_a, dA)
    dAf = dA.reshape(ns * nr)
    for q in numba.prange(feats.shape[0]):
        dM[q] = _feature_moment(q, feats, dAf, h_s * h_r)


def _prepare_src(a_c, phi, geo, beta, cells):
    """Φ and the Bernoulli factors of every face (:func:`_slab_prepare`, one slab per i)."""
    for i in numba.prange(a_c.shape[0]):
        _slab_prepare(i, a_c, phi, geo, beta, cells)


def _sweep_src(axis, src, kappa, cells, dst):
    """dst = (I + dt A_axis)⁻¹ src (κ = dt c/(β h_axis²)); ``cells[_LOG]`` is scratch."""
    na, ns, _ = src.shape
    if axis == 0:
        for j in numba.prange(ns):
            _sweep_a(j, src, kappa, cells[_BPA], cells[_BMA], cells[_PIV], cells[_LOG], dst)
    elif axis == 1:
        for i in numba.prange(na):
            _sweep_s(i, src, kappa, cells[_BPS], cells[_BMS], cells[_PIV], cells[_LOG], dst)
    else:
        for i in numba.prange(na):
            _sweep_r(i, src, kappa, cells[_BPR], cells[_BMR], cells[_PIV], dst)


def _logs_src(x, lg, part):
    """lg = log x (−inf where x = 0); returns the number of negative / non-finite cells."""
    na = x.shape[0]
    for i in numba.prange(na):
        part[i, 0] = _slab_log(i, x, lg)
    bad = 0
    for i in range(na):
        bad += int(part[i, 0])
    return bad


def _dis_breg_src(axis, old, new, cells, bp, bm, beta, part):
    """(Σ dissipation terms, Σ Bregman terms) of one split factor (:func:`_slab_dis_breg`)."""
    na = new.shape[0]
    for i in numba.prange(na):
        part[i, 0], part[i, 1] = _slab_dis_breg(i, axis, old, new, cells[_LOG], cells[_PHI], bp,
                                                bm, beta)
    dis = 0.0
    breg = 0.0
    for i in range(na):
        dis += part[i, 0]
        breg += part[i, 1]
    return dis, breg


def _fe_slabs_src(rho, lg, a_c, phi0, geo, inv_beta, h3, part):
    """part[i] = the Neumaier sum of the free-energy terms of slab i (:func:`_slab_free_energy`)."""
    for i in numba.prange(rho.shape[0]):
        part[i, 0], part[i, 1], part[i, 2] = _slab_free_energy(i, rho, lg, a_c, phi0, geo,
                                                               inv_beta, h3)


_dmoments, _dmoments_par = serial_and_parallel(_dmoments_src)
_prepare, _prepare_par = serial_and_parallel(_prepare_src)
_sweep, _sweep_par = serial_and_parallel(_sweep_src)
_logs, _logs_par = serial_and_parallel(_logs_src)
_dis_breg, _dis_breg_par = serial_and_parallel(_dis_breg_src)
_fe_slabs, _fe_slabs_par = serial_and_parallel(_fe_slabs_src)


@numba.njit(cache=True)
def _neumaier(s, comp, term):
    y = s + term
    if abs(s) >= abs(term):
        comp += (s - y) + term
    else:
        comp += (term - y) + s
    return y, comp


@numba.njit(cache=True)
def _free_energy_parts(parallel, rho, lg, grid, kern, geo, M, noise, part):
    """(F, Σ|terms of F|) of ρ given lg = log ρ and the moments M of ρ (module doc).

    Compensated summation: per-slab Neumaier sums combined in slab order.  nan if ρ < 0 or nan.
    """
    a_c, phi0, w = grid.a_c, kern.phi0, kern.w
    r_sharp, beta = noise.r_sharp, noise.beta
    h3 = grid.h_a * grid.h_s * grid.h_r
    if parallel:
        _fe_slabs_par(rho, lg, a_c, phi0, geo, 1.0 / beta, h3, part)
    else:
        _fe_slabs(rho, lg, a_c, phi0, geo, 1.0 / beta, h3, part)
    s = 0.5 * r_sharp
    comp = 0.0
    scale = abs(s)
    for q in range(M.shape[0]):
        term = 0.5 * w[q] * M[q] * M[q]
        s, comp = _neumaier(s, comp, term)
        scale += abs(term)
    for i in range(rho.shape[0]):
        if not math.isfinite(part[i, 0]):
            return math.nan, math.nan
        s, comp = _neumaier(s, comp, part[i, 0])
        comp += part[i, 1]
        scale += part[i, 2]
    return s + comp, scale


@numba.njit(cache=True)
def _pot(parallel, rho, grid, kern, A, M, phi):
    """A, M and φ of ρ (:func:`.stepper3d.field3d`, serial or threaded)."""
    if parallel:
        field3d_par(rho, grid, kern, A, M, phi)
    else:
        field3d(rho, grid, kern, A, M, phi)


@numba.njit(cache=True)
def _solve(parallel, axis, src, kappa, cells, dst):
    if parallel:
        _sweep_par(axis, src, kappa, cells, dst)
    else:
        _sweep(axis, src, kappa, cells, dst)


@numba.njit(cache=True)
def _split_step(parallel, rho, cb, h_a, h_s, h_r, cells):
    """cells[_NEW] = ρⁿ⁺¹ of the split step from ρ = ``rho``, cb = dt c/β (Φ in ``cells``)."""
    _solve(parallel, 0, rho, cb / (h_a * h_a), cells, cells[_W1])
    _solve(parallel, 1, cells[_W1], cb / (h_s * h_s), cells, cells[_W2])
    _solve(parallel, 2, cells[_W2], cb / (h_r * h_r), cells, cells[_NEW])


@numba.njit(cache=True)
def _balance(parallel, rho, cells, grid, kern, beta, cb, planes, qv, part):
    """(ok, quad, dt·D, Breg) of the split step ρ → W1 → W2 → NEW (module doc).

    ok is False if a stage is negative or not finite.  On return ``cells[_LOG]`` = log NEW.
    dt·D_x = (dt c/β) h³/(β h_x²) Σ face terms, Breg = β⁻¹ h³ Σ cell terms.  planes[2] and qv[1]
    receive ΔA and ΔM.
    """
    h_a, h_s, h_r = grid.h_a, grid.h_s, grid.h_r
    h3 = h_a * h_s * h_r
    a_c, feats, w = grid.a_c, kern.feats, kern.w
    dA, dM = planes[2], qv[1]
    stages = (rho, cells[_W1], cells[_W2], cells[_NEW])
    bps = ((cells[_BPA], cells[_BMA]), (cells[_BPS], cells[_BMS]), (cells[_BPR], cells[_BMR]))
    hh = (h_a * h_a, h_s * h_s, h_r * h_r)
    dis = 0.0
    breg = 0.0
    for x in range(3):
        old = stages[x]
        new = stages[x + 1]
        bp, bm = bps[x]
        if parallel:
            bad = _logs_par(new, cells[_LOG], part)
        else:
            bad = _logs(new, cells[_LOG], part)
        if bad > 0:
            return False, math.nan, math.nan, math.nan
        if parallel:
            d, b = _dis_breg_par(x, old, new, cells, bp, bm, beta, part)
        else:
            d, b = _dis_breg(x, old, new, cells, bp, bm, beta, part)
        dis += cb * (h3 / (beta * hh[x])) * d
        breg += b
    breg *= h3 / beta
    if parallel:
        _dmoments_par(cells[_NEW], rho, a_c, h_a, h_s, h_r, feats, dA, dM)
    else:
        _dmoments(cells[_NEW], rho, a_c, h_a, h_s, h_r, feats, dA, dM)
    quad = 0.0
    for q in range(dM.shape[0]):
        quad += 0.5 * w[q] * dM[q] * dM[q]
    return True, quad, dis, breg


# ----------------------------------------------------------------------------------------------
# compiled entry points


# The split scheme as :class:`.semi_implicit.SemiImplicitOps` on the model
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
def _free_energy_core(rho, grid, kern, noise):
    na, ns, nr = rho.shape
    geo = np.zeros((3, max(na, ns, nr)))
    _geometry(grid.a_c, grid.s_c, grid.r_c, noise.lam, noise.beta, noise.m, geo)
    A = np.empty((ns, nr))
    phi = np.empty((ns, nr))
    M = np.empty(kern.feats.shape[0])
    field3d(rho, grid, kern, A, M, phi)
    lg = np.empty_like(rho)
    part = np.empty((na, 3))
    if _logs(rho, lg, part) > 0:
        return math.nan
    return _free_energy_parts(False, rho, lg, grid, kern, geo, M, noise, part)[0]


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
                    if ax == 0:
                        if i + 1 >= na:
                            continue
                        i2, j2, k2 = i + 1, j, k
                    elif ax == 1:
                        if j + 1 >= ns:
                            continue
                        i2, j2, k2 = i, j + 1, k
                    else:
                        if k + 1 >= nr:
                            continue
                        i2, j2, k2 = i, j, k + 1
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


@numba.njit(cache=True)
def _faces_from_phi(Phi, beta, cells):
    """cells[_PHI] = Φ and the Bernoulli factors of its faces (as :func:`_slab_prepare`)."""
    na, ns, nr = Phi.shape
    for i in range(na):
        for j in range(ns):
            for k in range(nr):
                p0 = Phi[i, j, k]
                cells[_PHI, i, j, k] = p0
                if i + 1 < na:
                    cells[_BPA, i, j, k], cells[_BMA, i, j, k] = _bern_pair(
                        beta * (Phi[i + 1, j, k] - p0))
                if j + 1 < ns:
                    cells[_BPS, i, j, k], cells[_BMS, i, j, k] = _bern_pair(
                        beta * (Phi[i, j + 1, k] - p0))
                if k + 1 < nr:
                    cells[_BPR, i, j, k], cells[_BMR, i, j, k] = _bern_pair(
                        beta * (Phi[i, j, k + 1] - p0))


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

    return steady_state_loop(advance, rho, free_energy3d(rho, grid, kern, noise),
                             grid.h_a * grid.h_s * grid.h_r, tol=tol, tol_rho=tol_rho,
                             t_chunk=t_chunk, t_max=t_max, dt_init=dt_init)

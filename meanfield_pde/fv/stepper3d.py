"""Finite volumes and SSP-RK3 for the 3-D (a, s, r) transport equation of MATH.md §3.

State: cell averages ρ[i, j, k] on a uniform n_a × n_s × n_r grid (C-contiguous float64), cell
sizes h_a, h_s, h_r, a-centres ``a_c``.  The potential is linear in a,

    Ψ(a, s, r) = a φ(s, r),   φ = φ0 + Σ_q w_q M_q F_q,
    M_q = h_a h_s h_r Σ_{i,j,k} a_c[i] ρ[i,j,k] F_q[j n_r + k],

evaluated in O(cells + Q n_s n_r) as A[j,k] = h_a Σ_i a_c[i] ρ[i,j,k] (i summed in order),
M = h_s h_r F·A and φ = φ0 + (w M)·F.  The two matrix–vector products are written out in a fixed
summation order (four interleaved partial sums for M, q ascending for φ) instead of calling BLAS:
about 2× slower than single-threaded OpenBLAS on these products (a few per cent of a step), but
bit-identical under ``prange`` and free of the clash between OpenBLAS' and Numba's spinning
thread pools, which made BLAS inside the parallel kernel up to 25× slower on 2 cores.  The equation

    ∂_t ρ = 2ξ(t) [ ∂_a(ρ ∂_aΨ) + ∂_s(ρ ∂_sΨ) + ∂_r(ρ ∂_rΨ) ]

is discretised dimension by dimension with the upwind flux of :mod:`.transport` (generalised
minmod reconstruction along the axis of the face, first order in the boundary cells, no-flux walls
on all six faces) and the face velocities (c = 2ξ(t))

    u^a_{i+1/2,j,k} = −c (Ψ_{i+1,j,k} − Ψ_{i,j,k})/h_a = −c φ[j,k]          (Ψ is linear in a),
    u^s_{i,j+1/2,k} = −c a_c[i] (φ[j+1,k] − φ[j,k])/h_s,
    u^r_{i,j,k+1/2} = −c a_c[i] (φ[j,k+1] − φ[j,k])/h_r,
    F_{i+1/2} = max(u, 0) ρ^E_i + min(u, 0) ρ^W_{i+1},  ρ^{E,W} = ρ ± s/2 (slope s along that
    axis, s = 0 in its two boundary cells),  F = 0 on the walls,
    dρ_ijk/dt = −(F^a_{i+1/2} − F^a_{i−1/2})/h_a − (F^s_{j+1/2} − F^s_{j−1/2})/h_s
                − (F^r_{k+1/2} − F^r_{k−1/2})/h_r.

Properties (checked in tests/test_stepper3d.py):

* mass is conserved (the fluxes telescope);
* with the CFL rate  λ = max|u^a|/h_a + max|u^s|/h_s + max|u^r|/h_r,  a forward-Euler step with
  dt λ <= 1/2 keeps ρ >= 0 (the outflow of cell ijk is at most 2 ρ_ijk Σ_axes |u|/h);
* with R(ρ) = 2 h³ Σ a_c φ0 ρ + Σ_q w_q M_q²  (h³ = h_a h_s h_r), δR/δρ_ijk = 2 h³ Ψ_ijk and
  summing by parts (u = −c ΔΨ/h_axis at every face, exactly up to round-off),
  dR/dt = 2 h³ Σ Ψ_ijk dρ_ijk/dt = −(2h³/c) Σ_faces u F <= 0, since u F >= 0 at every face
  (the semi-discrete energy dissipation).

Time stepping is the Shu–Osher SSP-RK3 driver of :mod:`.rk` with dt = cfl/λ(ρⁿ) (cfl <= 1/2),
rejection and retry with dt/2 when a stage has dt λ > 1/2 or the result is negative or
non-finite, exact landing on ``t_stop`` and the same status codes.

``rhs3d`` and ``rhs3d_parallel`` are the serial and the threaded variant of one source
(:mod:`.variants`): ``prange`` over the a-slices, and over j for A, with i summed in the same
order, so the two are bit-identical (no reduction changes its order).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .rk import (
    DT_UNDERFLOW,
    MAX_STEPS,
    NONFINITE,
    REACHED,
    STATUS_TEXT,
    RK3Control,
    make_ssp_rk3,
    stage,
    stage_par,
)
from .transport import limited_slope
from .variants import serial_and_parallel
from .xi import xi_at

__all__ = [
    "DT_UNDERFLOW", "MAX_STEPS", "NONFINITE", "REACHED", "STATUS_TEXT",
    "rhs3d", "rhs3d_parallel", "advance3d", "make_work", "rhs3d_numpy", "potential3d", "risk3d",
    "field3d", "field3d_par",
]


# ---------------------------------------------------------------------------------------------
# Potential φ(s, r) and the CFL rate (shared by the serial and the parallel right-hand side)
# ---------------------------------------------------------------------------------------------

@numba.njit(cache=True)
def _column_moment_row(j, rho, a_c, h_a, A):
    """A[j, :] = h_a Σ_i a_c[i] ρ[i, j, :], i summed in increasing order."""
    na, _, nr = rho.shape
    for k in range(nr):
        A[j, k] = 0.0
    for i in range(na):
        ai = a_c[i]
        for k in range(nr):
            A[j, k] += ai * rho[i, j, k]
    for k in range(nr):
        A[j, k] *= h_a


_BLOCK = 512  # entries of φ per block of the second contraction (fits in L1 with a row segment)


@numba.njit(cache=True)
def _feature_moment(q, feats, A, scale):
    """scale Σ_n F[q, n] A[n] with four interleaved partial sums in a fixed order."""
    f = feats[q]
    n = A.size
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    m = n - n % 4
    for p in range(0, m, 4):
        s0 += f[p] * A[p]
        s1 += f[p + 1] * A[p + 1]
        s2 += f[p + 2] * A[p + 2]
        s3 += f[p + 3] * A[p + 3]
    for p in range(m, n):
        s0 += f[p] * A[p]
    return scale * ((s0 + s1) + (s2 + s3))


@numba.njit(cache=True)
def _potential_block(b, feats, w, M, phi0, phi):
    """φ[n] = φ0[n] + Σ_q (w_q M_q) F[q, n] for n in block b (flat views), q summed in order."""
    nq = feats.shape[0]
    lo = b * _BLOCK
    hi = min(lo + _BLOCK, phi.size)
    g = phi[lo:hi]
    g[:] = 0.0
    for q in range(nq):
        x = w[q] * M[q]
        f = feats[q, lo:hi]
        for n in range(hi - lo):
            g[n] += x * f[n]
    for n in range(hi - lo):
        g[n] = phi0[lo + n] + g[n]


@numba.njit(cache=True)
def _rate(A, t, grid, xi, phi, na):
    """(c = 2ξ(t), CFL rate λ) from φ; λ is nan when A, φ or ξ is not finite.

    A non-finite ρ always makes A non-finite, also when Q = 0.
    """
    a_c, h_a, h_s, h_r = grid.a_c, grid.h_a, grid.h_s, grid.h_r
    ns, nr = phi.shape
    bad = False
    for j in range(ns):
        for k in range(nr):
            if not math.isfinite(A[j, k]):
                bad = True
    c = 2.0 * xi_at(xi.kind, xi.params, t)
    # Maxima of |u| over the faces, with the operations of the flux kernel: rounding is monotone,
    # so |c a_max| |Δφ|_max reproduces the largest face value exactly.
    amax = 0.0
    for i in range(na):
        x = abs(a_c[i])
        if not x <= amax:
            amax = x
    pmax = 0.0
    dsmax = 0.0
    drmax = 0.0
    for j in range(ns):
        for k in range(nr):
            x = abs(phi[j, k])
            if not x <= pmax:
                pmax = x
            if j + 1 < ns:
                x = abs(phi[j + 1, k] - phi[j, k])
                if not x <= dsmax:
                    dsmax = x
            if k + 1 < nr:
                x = abs(phi[j, k + 1] - phi[j, k])
                if not x <= drmax:
                    drmax = x
    ca = abs(c)
    inv_ha, inv_hs, inv_hr = 1.0 / h_a, 1.0 / h_s, 1.0 / h_r
    rate = 0.0
    if na > 1:
        rate += ca * pmax * inv_ha
    if ns > 1:
        rate += (ca * amax) * dsmax * inv_hs * inv_hs
    if nr > 1:
        rate += (ca * amax) * drmax * inv_hr * inv_hr
    if bad or not math.isfinite(c):
        rate = math.nan
    return c, rate


# ---------------------------------------------------------------------------------------------
# Fluxes: one a-slice at a time
# ---------------------------------------------------------------------------------------------

@numba.njit(cache=True, inline="always")
def _slope_a(rho, i, j, k, theta):
    if i == 0 or i == rho.shape[0] - 1:
        return 0.0
    return limited_slope(rho[i - 1, j, k], rho[i, j, k], rho[i + 1, j, k], theta)


@numba.njit(cache=True, inline="always")
def _slope_s(rho, i, j, k, theta):
    if j == 0 or j == rho.shape[1] - 1:
        return 0.0
    return limited_slope(rho[i, j - 1, k], rho[i, j, k], rho[i, j + 1, k], theta)


@numba.njit(cache=True, inline="always")
def _slope_r(rho, i, j, k, theta):
    if k == 0 or k == rho.shape[2] - 1:
        return 0.0
    return limited_slope(rho[i, j, k - 1], rho[i, j, k], rho[i, j, k + 1], theta)


@numba.njit(cache=True)
def _slice_rhs(i, rho, c, a_c, inv_h, phi, theta, fs, out):
    """out[i, :, :] = −Σ_axes (F_+ − F_−)/h_axis for the a-slice i; inv_h = (1/h_a, 1/h_s, 1/h_r).

    The s- and r-face fluxes are computed once (``fs`` carries the flux through the face j − 1/2
    along the slice, a scalar the one through k − 1/2); the two a-faces of the slice are computed
    here and again, with the same operations, by the neighbouring slice, so that the slices are
    independent (``prange``) and the fluxes still telescope.
    """
    na, ns, nr = rho.shape
    inv_ha, inv_hs, inv_hr = inv_h
    cai = c * a_c[i]
    for k in range(nr):
        fs[k] = 0.0  # wall at j = −1/2
    for j in range(ns):
        fr_m = 0.0  # wall at k = −1/2
        for k in range(nr):
            r0 = rho[i, j, k]
            # a faces i ± 1/2 (u^a does not depend on i: one upwind direction for both)
            ua = -c * phi[j, k]
            fa_p = 0.0
            fa_m = 0.0
            if ua > 0.0:
                if i + 1 < na:
                    fa_p = ua * (r0 + 0.5 * _slope_a(rho, i, j, k, theta))
                if i > 0:
                    fa_m = ua * (rho[i - 1, j, k] + 0.5 * _slope_a(rho, i - 1, j, k, theta))
            else:
                if i + 1 < na:
                    fa_p = ua * (rho[i + 1, j, k] - 0.5 * _slope_a(rho, i + 1, j, k, theta))
                if i > 0:
                    fa_m = ua * (r0 - 0.5 * _slope_a(rho, i, j, k, theta))
            # s face j + 1/2
            fs_p = 0.0
            if j + 1 < ns:
                us = -cai * (phi[j + 1, k] - phi[j, k]) * inv_hs
                if us > 0.0:
                    fs_p = us * (r0 + 0.5 * _slope_s(rho, i, j, k, theta))
                else:
                    fs_p = us * (rho[i, j + 1, k] - 0.5 * _slope_s(rho, i, j + 1, k, theta))
            # r face k + 1/2
            fr_p = 0.0
            if k + 1 < nr:
                ur = -cai * (phi[j, k + 1] - phi[j, k]) * inv_hr
                if ur > 0.0:
                    fr_p = ur * (r0 + 0.5 * _slope_r(rho, i, j, k, theta))
                else:
                    fr_p = ur * (rho[i, j, k + 1] - 0.5 * _slope_r(rho, i, j, k + 1, theta))
            out[i, j, k] = (-(fa_p - fa_m) * inv_ha - (fs_p - fs[k]) * inv_hs
                            - (fr_p - fr_m) * inv_hr)
            fs[k] = fs_p
            fr_m = fr_p


def _field3d(rho, grid, kern, A, M, phi):
    """A[j,k] = h_a Σ_i a_c[i] ρ[i,j,k], M_q = h_s h_r F_q·A and φ = φ0 + Σ_q (w_q M_q) F_q
    (module doc; the one compiled evaluation of the 3-D potential).  ``prange`` over j, q and the
    blocks of φ; every sum keeps its serial order."""
    ns, nr = phi.shape
    for j in numba.prange(ns):
        _column_moment_row(j, rho, grid.a_c, grid.h_a, A)
    Af, phif, phi0f = A.reshape(ns * nr), phi.reshape(ns * nr), kern.phi0.reshape(ns * nr)
    feats = kern.feats
    for q in numba.prange(feats.shape[0]):
        M[q] = _feature_moment(q, feats, Af, grid.h_s * grid.h_r)
    for b in numba.prange((ns * nr + _BLOCK - 1) // _BLOCK):
        _potential_block(b, feats, kern.w, M, phi0f, phif)


field3d, field3d_par = serial_and_parallel(_field3d)


def _rhs3d(rho, t, grid, kern, xi, theta, A, M, phi, out):
    """out = L(ρ, t), the finite-volume right-hand side (module docstring).

    ``grid`` a :class:`.bundles.Grid3`, ``kern`` a :class:`.bundles.Kernel3`, ``xi`` a
    :class:`.bundles.Xi`.  Work arrays A (n_s, n_r), M (Q,), φ (n_s, n_r) are overwritten with
    the column moments, the feature moments M_q and the potential φ of ρ.  Returns the CFL rate
    λ = max|u^a|/h_a + max|u^s|/h_s + max|u^r|/h_r (nan if ρ, φ or ξ is not finite).
    ``prange`` over the a-slices (and in :func:`field3d`); serial = threaded bit for bit.
    """
    na, ns, nr = rho.shape
    field3d(rho, grid, kern, A, M, phi)
    c, rate = _rate(A, t, grid, xi, phi, na)
    fs = np.empty((na, nr))
    inv_h = (1.0 / grid.h_a, 1.0 / grid.h_s, 1.0 / grid.h_r)
    a_c = grid.a_c
    for i in numba.prange(na):
        _slice_rhs(i, rho, c, a_c, inv_h, phi, theta, fs[i], out)
    return rate


rhs3d, rhs3d_parallel = serial_and_parallel(_rhs3d, swap={"field3d": field3d_par})


# ---------------------------------------------------------------------------------------------
# SSP-RK3 (the driver of :mod:`.rk` on flat views; serial and threaded entry points)
# ---------------------------------------------------------------------------------------------

def _model_rhs_src(model, x, t, out):
    shape, grid, kern, xi, theta, A, M, phi = model
    return rhs3d(x.reshape(shape), t, grid, kern, xi, theta, A, M, phi, out.reshape(shape))


_model_rhs, _model_rhs_par = serial_and_parallel(_model_rhs_src, swap={"rhs3d": rhs3d_parallel},
                                                 prange=False)
_ssp_rk3 = make_ssp_rk3(_model_rhs, stage)
_ssp_rk3_par = make_ssp_rk3(_model_rhs_par, stage_par)


def _advance_src(rho, t, t_stop, max_steps, grid, kern, xi, cfl, theta, work):
    """The SSP-RK3 loop of :func:`advance3d` (threaded variant: the threaded kernels)."""
    w1, w2, l0, l1, A, M, phi = work
    n = rho.size
    model = (rho.shape, grid, kern, xi, theta, A, M, phi)
    flat = (w1.reshape(n), w2.reshape(n), l0.reshape(n), l1.reshape(n))
    return _ssp_rk3(model, rho.reshape(n), t, t_stop, max_steps, RK3Control(cfl, 1.0, 0.5, True),
                    flat)


_advance, _advance_par = serial_and_parallel(_advance_src, swap={"_ssp_rk3": _ssp_rk3_par},
                                             prange=False)


# ---------------------------------------------------------------------------------------------
# Python entry points
# ---------------------------------------------------------------------------------------------

def make_work(n_a: int, n_s: int, n_r: int, Q: int) -> tuple:
    """Work arrays for :func:`advance3d`: (w1, w2, l0, l1, A, M, φ).

    w1, w2, l0, l1 have the shape of ρ (n_a, n_s, n_r); A and φ are (n_s, n_r); M is (Q,).
    After a call, A, M and φ hold the moments and potential of the last right-hand side evaluated
    (a later stage, not the returned state).
    """
    cells = [np.empty((n_a, n_s, n_r)) for _ in range(4)]
    return (*cells, np.empty((n_s, n_r)), np.empty(Q), np.empty((n_s, n_r)))


def advance3d(rho, t, t_stop, max_steps, grid, kern, xi, cfl, theta, work, *,
              parallel=False) -> tuple[float, int, int, int, float, float]:
    """Advance ``rho`` in place from ``t`` towards ``t_stop`` with SSP-RK3 (module docstring).

    ``grid``, ``kern``, ``xi``: :class:`.bundles.Grid3`, :class:`.bundles.Kernel3`,
    :class:`.bundles.Xi` (only a_c and the cell sizes of the grid are read).  Returns (t, steps,
    rejected, status, dt_last, rate_last) with status one of REACHED, MAX_STEPS, NONFINITE,
    DT_UNDERFLOW (:mod:`.rk`); ``t == t_stop`` exactly when REACHED.  ``work`` comes from
    :func:`make_work`; ``parallel`` runs the threaded kernels (bit-identical).  The loop runs
    inside Numba; scalars are cast here so that every call uses the same compiled
    specialisation.
    """
    if not 0.0 < cfl <= 0.5:
        raise ValueError(f"cfl must be in (0, 0.5], got {cfl}")
    if not 1.0 <= theta <= 2.0:
        raise ValueError(f"theta must be in [1, 2], got {theta}")
    na, ns, nr = rho.shape
    work = tuple(work)
    w1, w2, l0, l1, A, M, phi = work
    q = kern.feats.shape[0]
    if not (rho.flags.c_contiguous and rho.dtype == np.float64):
        raise ValueError("rho must be a C-contiguous float64 array")
    for name, arr, shape in (("w1", w1, rho.shape), ("w2", w2, rho.shape), ("l0", l0, rho.shape),
                             ("l1", l1, rho.shape), ("A", A, (ns, nr)), ("phi", phi, (ns, nr)),
                             ("M", M, (q,)), ("phi0", kern.phi0, (ns, nr)),
                             ("a_c", grid.a_c, (na,)), ("feats", kern.feats, (q, ns * nr)),
                             ("w", kern.w, (q,))):
        if arr.shape != shape or not arr.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous with shape {shape}, got {arr.shape}")
    run = _advance_par if parallel else _advance
    out = run(rho, float(t), float(t_stop), int(max_steps), grid, kern, xi, float(cfl),
              float(theta), work)
    t_new, steps, rejected, status, dt, rate = out
    return float(t_new), int(steps), int(rejected), int(status), float(dt), float(rate)


# ---------------------------------------------------------------------------------------------
# Plain numpy references (for tests and diagnostics)
# ---------------------------------------------------------------------------------------------

def potential3d(rho, a_c, h_a, h_s, h_r, phi0, feats, w) -> tuple[np.ndarray, np.ndarray]:
    """(φ (n_s, n_r), M (Q,)): φ = φ0 + Σ_q w_q M_q F_q, M_q = h³ Σ a_c ρ F_q (numpy)."""
    ns, nr = phi0.shape
    A = h_a * np.tensordot(a_c, rho, axes=(0, 0))
    M = h_s * h_r * (feats @ A.reshape(ns * nr))
    phi = phi0 + ((w * M) @ feats).reshape(ns, nr)
    return phi, M


@numba.njit(cache=True)
def discrete_risk(rho, grid, kern, r_sharp, A):
    """R(ρ) = R# + 2 h³ Σ a_c φ0 ρ + Σ_q w_q M_q² (the discrete energy the scheme dissipates),
    with the kernels of the stepper and no BLAS (whose spinning threads would compete with the
    parallel stepper for the cores).  ``A`` (n_s, n_r) is work space."""
    a_c, h_a, h_s, h_r = grid.a_c, grid.h_a, grid.h_s, grid.h_r
    phi0, feats, w = kern.phi0, kern.feats, kern.w
    ns = rho.shape[1]
    for j in range(ns):
        _column_moment_row(j, rho, a_c, h_a, A)
    lin = 0.0
    flat_a = A.ravel()
    flat_p = phi0.ravel()
    for n in range(flat_a.size):
        lin += flat_p[n] * flat_a[n]
    out = r_sharp + 2.0 * h_s * h_r * lin
    for q in range(feats.shape[0]):
        m = _feature_moment(q, feats, flat_a, h_s * h_r)
        out += w[q] * m * m
    return out


def risk3d(rho, a_c, h_a, h_s, h_r, phi0, feats, w) -> float:
    """R(ρ) = 2 h³ Σ a_c φ0 ρ + Σ_q w_q M_q² (δR/δρ_ijk = 2 h³ Ψ_ijk; no constant R#)."""
    h3 = h_a * h_s * h_r
    _, M = potential3d(rho, a_c, h_a, h_s, h_r, phi0, feats, w)
    lin = 2.0 * h3 * float(np.einsum("i,jk,ijk->", a_c, phi0, rho))
    return lin + float(w @ M**2)


def _divergence_numpy(rho, u, h, theta, axis):
    """−(F_+ − F_−)/h along ``axis`` for face velocities u (n − 1 faces along that axis)."""
    r = np.moveaxis(rho, axis, 0)
    u = np.moveaxis(u, axis, 0)
    s = np.zeros_like(r)
    if r.shape[0] > 2:
        p = theta * (r[2:] - r[1:-1])
        q = 0.5 * (r[2:] - r[:-2])
        m = theta * (r[1:-1] - r[:-2])
        s[1:-1] = np.where((p > 0) & (q > 0) & (m > 0), np.minimum(np.minimum(p, q), m),
                           np.where((p < 0) & (q < 0) & (m < 0),
                                    np.maximum(np.maximum(p, q), m), 0.0))
    east, west = r + 0.5 * s, r - 0.5 * s
    face = np.maximum(u, 0.0) * east[:-1] + np.minimum(u, 0.0) * west[1:]
    wall = np.zeros((1,) + r.shape[1:])
    flux = np.concatenate([wall, face, wall])
    return np.moveaxis(-np.diff(flux, axis=0) / h, 0, axis)


def rhs3d_numpy(rho, grid, kern, xi, theta) -> np.ndarray:
    """Plain numpy version of :func:`rhs3d` with the value ξ given, vectorised per axis."""
    a_c, h_a, h_s, h_r = grid.a_c, grid.h_a, grid.h_s, grid.h_r
    phi, _ = potential3d(rho, a_c, h_a, h_s, h_r, kern.phi0, kern.feats, kern.w)
    na, ns, nr = rho.shape
    c = 2.0 * xi
    ua = np.broadcast_to(-c * phi, (na - 1, ns, nr))
    us = -c * a_c[:, None, None] * np.diff(phi, axis=0)[None] / h_s
    ur = -c * a_c[:, None, None] * np.diff(phi, axis=1)[None] / h_r
    return (_divergence_numpy(rho, ua, h_a, theta, 0) + _divergence_numpy(rho, us, h_s, theta, 1)
            + _divergence_numpy(rho, ur, h_r, theta, 2))

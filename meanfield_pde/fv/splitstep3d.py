"""The split implicit step of the noisy 3-D equation (MATH.md §4; :mod:`.driftdiffusion3d`).

With the effective potential Φ frozen, ρⁿ⁺¹ = (I + dt A_r)⁻¹ (I + dt A_s)⁻¹ (I + dt A_a)⁻¹ ρⁿ,
each A_x the Scharfetter–Gummel generator along one axis,

    (A_x ρ)_cell = (F_{x,+} − F_{x,−})/h_x,  F_{x,+} = (c/(β h_x)) [B(βΔΦ) ρ_− − B(−βΔΦ) ρ_+],

solved line by line with the positive-term Thomas elimination of
:func:`.driftdiffusion1d._solve_implicit` (lines along r call it directly; lines along a and s
run the same operations vectorised over k).  Every factor is an M-matrix with unit column sums:
ρⁿ⁺¹ >= 0 and mass is conserved for every dt.

Work block: ``cells`` (N_CELLS, n_a, n_s, n_r) holds the two intermediate stages, the new state,
Φ, the six Bernoulli factors (upper face of each cell along a, s, r; 0 at the walls), the pivots
and the logs, at the indices below.  Slab kernels (one slab per i or per j) are written once
with ``prange`` and compiled serially and threaded (:mod:`.variants`).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .driftdiffusion1d import _solve_implicit, bernoulli
from .variants import serial_and_parallel

# indices into the (N_CELLS, n_a, n_s, n_r) work block
_W1, _W2, _NEW, _PHI, _BPA, _BMA, _BPS, _BMS, _BPR, _BMR, _PIV, _LOG = range(12)
N_CELLS = 12



@numba.njit(cache=True, inline="always")
def upper_neighbour(axis, i, j, k, na, ns, nr):
    """(inside, i', j', k'): the cell after (i, j, k) along ``axis`` (0 = a, 1 = s, 2 = r) and
    whether it exists (False at the upper wall: no face there).  Inlined at Numba-IR level."""
    if axis == 0:
        return i + 1 < na, i + 1, j, k
    if axis == 1:
        return j + 1 < ns, i, j + 1, k
    return k + 1 < nr, i, j, k + 1

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


_prepare, _prepare_par = serial_and_parallel(_prepare_src)
_sweep, _sweep_par = serial_and_parallel(_sweep_src)


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

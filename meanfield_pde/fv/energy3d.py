"""The discrete free energy of the noisy 3-D equation and the exact energy balance of the split
step (MATH.md §4; :mod:`.driftdiffusion3d`).

    F(ρ) = ½R(ρ) + (λ/2) h³ Σ (a² + s² + r²) ρ + β⁻¹ h³ Σ ρ log(ρ / r^m),
    F(ρⁿ⁺¹) − F(ρⁿ) = ½ Σ_q w_q ΔM_q² − Σ_{x=a,s,r} [dt D_x(ρ^{(x)}) + Breg(ρ^{(x−1)}, ρ^{(x)})],

every term a sum of non-negative products computed without cancellation (module doc of
:mod:`.driftdiffusion3d`).  Sums run per slab (Neumaier-compensated for F) and the slab sums are
added in slab order, so the serial and the threaded variants (:mod:`.variants`) agree bit for
bit.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .driftdiffusion1d import _excess_series, _interaction_sum, _neumaier
from .splitstep3d import (
    _BMA,
    _BMR,
    _BMS,
    _BPA,
    _BPR,
    _BPS,
    _LOG,
    _NEW,
    _PHI,
    _W1,
    _W2,
    _geometry,
    upper_neighbour,
)
from .stepper3d import _feature_moment, field3d
from .variants import serial_and_parallel


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
            inside, i2, j2, k2 = upper_neighbour(axis, i, j, k, na, ns, nr)
            if not inside:
                continue
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


def _dmoments_src(new, old, a_c, h_a, h_s, h_r, feats, dA, dM):
    """dM_q = M_q(new) − M_q(old), computed from new − old (no cancellation of the M_q)."""
    ns, nr = dA.shape
    for j in numba.prange(ns):
        _column_diff_row(j, new, old, a_c, h_a, dA)
    dAf = dA.reshape(ns * nr)
    for q in numba.prange(feats.shape[0]):
        dM[q] = _feature_moment(q, feats, dAf, h_s * h_r)


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
_logs, _logs_par = serial_and_parallel(_logs_src)
_dis_breg, _dis_breg_par = serial_and_parallel(_dis_breg_src)
_fe_slabs, _fe_slabs_par = serial_and_parallel(_fe_slabs_src)


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
    s, comp, scale = _interaction_sum(0.5 * r_sharp, w, M)
    for i in range(rho.shape[0]):
        if not math.isfinite(part[i, 0]):
            return math.nan, math.nan
        s, comp = _neumaier(s, comp, part[i, 0])
        comp += part[i, 1]
        scale += part[i, 2]
    return s + comp, scale


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

"""The single-neuron potential at weighted particles, from a Chebyshev table (MATH.md §3, §6).

Ψ(z; ρ̂) = a φ(s, r) with φ = −v + Σ_q w_q M_q F_q,  M_q = Σ_p w_p a_p F_q(s_p, r_p).

**Table.**  On the box [s_lo, s_hi] × [0, R], v and the features F_q (even in r) are interpolated
by tensor Chebyshev series in x = (2s − s_lo − s_hi)/(s_hi − s_lo) and y = 2(r/R)² − 1
(polynomials in r², so even in r and ∂_rφ(s, 0) = 0 exactly: particles never cross r = 0;
beyond the box the field is continued by its value at the nearest point of the box):

    F_q(s, r) ≈ Σ_{i<n_s, k<n_r} C^q_ik T_i(x) T_k(y),

from their values at the first-kind Chebyshev nodes (x_i = cos(π(i + ½)/n_s), likewise y_k),
computed once by :func:`~meanfield_pde.problems.neuron_kernel.neuron_kernel`.  The kernel in
coefficient space, K = Σ_q w_q vec C^q (vec C^q)ᵀ (N × N, N = n_s n_r, positive semi-definite),
is factored as K = E Eᵀ, E = C V (N × k) from the eigenvectors V of the Q × Q Gram matrix
Cᵀ C, dropping directions below ``RANK_TOL`` of its largest eigenvalue.  Then with the particle
moments B_ik = Σ_p w_p a_p T_i(x_p) T_k(y_p):

    m = Eᵀ vec B (k,),   Φ = −C^v + E m  (coefficients of φ),   φ(z_p) = Σ_ik Φ_ik T_i T_k,
    R(ρ̂) = R# − 2⟨C^v, B⟩ + |m|²      (the risk of the interpolated kernel),

one right-hand side costing O(P N + k N).  The interpolated kernel is an exact positive
semi-definite kernel, so the particle system is an exact gradient flow of this R: the risk is
non-increasing along its trajectories.

Velocity (noiseless, with the ℓ2 term λ): dz/dt = −2ξ(t) (φ + λa, a ∂_sφ + λs, a ∂_rφ + λr).

Why a table (measured, default problem, 566 particles): evaluating the features at the particles
(:func:`..problems.neuron_kernel._feature_rows` and v) costs 62 ms per evaluation of the values
alone (the derivatives need at least as much again), against 0.7 ms for a whole right-hand side
here — the run takes ~1050 evaluations.  Accuracy of the 48 × 24 table on the default box
(max over scattered points, against the directly computed kernel): tanh |Δv| 5e-10, |ΔK| 7e-10
(rank k = 55); erf 1e-12; relu 4e-4 near the corner s = r = 0 of its homogeneous features, which
no particle visits (risk error ~1e-7).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from threadpoolctl import threadpool_limits

from ..fv.variants import serial_and_parallel

__all__ = ["ChebTable", "chebyshev_nodes", "velocity", "velocity_par", "moments_b",
           "table_risk", "phi_at"]

RANK_TOL = 1e-16  # eigenvalues of K below RANK_TOL × the largest are dropped


def chebyshev_nodes(n: int) -> np.ndarray:
    """First-kind Chebyshev nodes cos(π(i + ½)/n), i = 0..n−1 (decreasing)."""
    return np.cos(np.pi * (np.arange(n) + 0.5) / n)


def _inverse_vandermonde(n: int) -> np.ndarray:
    """Values at :func:`chebyshev_nodes` → Chebyshev coefficients (the discrete cosine sum)."""
    th = np.pi * (np.arange(n) + 0.5) / n
    t = np.cos(np.outer(np.arange(n), th)) * (2.0 / n)  # (k, i)
    t[0] *= 0.5
    return t


@dataclass
class ChebTable:
    """Chebyshev coefficients of v and the factored kernel on the box (module docstring)."""

    s_lo: float
    s_hi: float
    r_max: float
    cv: np.ndarray  # (n_s, n_r) coefficients of v
    E: np.ndarray  # (n_s n_r, k) kernel factor
    r_sharp: float

    @property
    def shape(self) -> tuple[int, int]:
        """(n_s, n_r): the table's Chebyshev coefficients per axis."""
        return self.cv.shape

    @classmethod
    def build(cls, kernel_fn, s_lo: float, s_hi: float, r_max: float, n_s: int,
              n_r: int) -> ChebTable:
        """``kernel_fn(s_nodes, r_nodes)`` returns a
        :class:`~meanfield_pde.problems.neuron_kernel.NeuronKernel` on that tensor grid."""
        x, y = chebyshev_nodes(n_s), chebyshev_nodes(n_r)
        s = 0.5 * (s_lo + s_hi) + 0.5 * (s_hi - s_lo) * x
        r = r_max * np.sqrt(np.clip(0.5 * (y + 1.0), 0.0, None))
        k = kernel_fn(s, r)
        ts, tr = _inverse_vandermonde(n_s), _inverse_vandermonde(n_r)
        cv = ts @ k.v @ tr.T
        q = k.feats.shape[0]
        f = k.feats.reshape(q, n_s, n_r) * np.sqrt(k.weights)[:, None, None]
        # one BLAS thread: OpenBLAS' spinning threads cost up to 40x on a loaded machine
        with threadpool_limits(limits=1, user_api="blas"):
            c = np.ascontiguousarray(((ts @ f) @ tr.T).transpose(1, 2, 0)).reshape(n_s * n_r, q)
            # K = C Cᵀ = (C V)(C V)ᵀ with Cᵀ C = V Λ Vᵀ (Q × Q: cheaper than an SVD of C)
            lam, vec = np.linalg.eigh(c.T @ c)
            top = float(lam[-1]) if lam.size else 0.0
            keep = lam > RANK_TOL * top if top > 0 else lam > 0
            e = np.ascontiguousarray(c @ vec[:, keep])
        table = cls(float(s_lo), float(s_hi), float(r_max), np.ascontiguousarray(cv), e,
                    float(k.r_sharp))
        table.kernel = k
        return table

    def coords(self) -> tuple[float, float, float]:
        """(centre, half width) of s and R, the arguments of the compiled kernels."""
        return 0.5 * (self.s_lo + self.s_hi), 0.5 * (self.s_hi - self.s_lo), self.r_max


@numba.njit(cache=True, inline="always")
def _cheb(x, n, t, dt):
    """T_i(x) and T_i'(x), i < n, into t and dt (|x| may exceed 1 slightly)."""
    t[0] = 1.0
    dt[0] = 0.0
    if n > 1:
        t[1] = x
        dt[1] = 1.0
    for i in range(2, n):
        t[i] = 2.0 * x * t[i - 1] - t[i - 2]
        dt[i] = 2.0 * t[i - 1] + 2.0 * x * dt[i - 1] - dt[i - 2]


@numba.njit(cache=True, inline="always")
def _basis(s, r, sc, sh, rmax, ts, dts, tr, dtr):
    """Chebyshev values and d/ds, d/dr factors at (s, r); returns (dx/ds, dy/dr).  A point
    beyond the box is evaluated at the nearest point of the box (the field is continued
    constantly: a polynomial would explode there; mass out there is a wall error anyway)."""
    x = min(max((s - sc) / sh, -1.0), 1.0)
    yr = min(abs(r) / rmax, 1.0)
    y = 2.0 * yr * yr - 1.0
    _cheb(x, ts.size, ts, dts)
    _cheb(y, tr.size, tr, dtr)
    return 1.0 / sh, 4.0 * yr / rmax


def _moments_b(z, wts, sc, sh, rmax, ns, nr, out):
    """out = vec B, B_ik = Σ_p w_p a_p T_i(x_p) T_k(y_p) (per-slab partial sums, in order)."""
    P = z.shape[0]
    nslab = 8
    part = np.zeros((nslab, ns * nr))
    for b in numba.prange(nslab):
        ts, dts = np.empty(ns), np.empty(ns)
        tr, dtr = np.empty(nr), np.empty(nr)
        acc = part[b]
        for p in range(b * P // nslab, (b + 1) * P // nslab):
            _basis(z[p, 1], z[p, 2], sc, sh, rmax, ts, dts, tr, dtr)
            wa = wts[p] * z[p, 0]
            for i in range(ns):
                c = wa * ts[i]
                for k in range(nr):
                    acc[i * nr + k] += c * tr[k]
    for n in range(ns * nr):
        s = 0.0
        for b in range(nslab):
            s += part[b, n]
        out[n] = s


def _field_velocity(z, phi_c, sc, sh, rmax, c, lam, out):
    """out[p] = −c (φ + λa, a ∂_sφ + λs, a ∂_rφ + λr) at every particle (c = 2ξ)."""
    P = z.shape[0]
    ns, nr = phi_c.shape
    for p in numba.prange(P):
        ts, dts = np.empty(ns), np.empty(ns)
        tr, dtr = np.empty(nr), np.empty(nr)
        fs, fr = _basis(z[p, 1], z[p, 2], sc, sh, rmax, ts, dts, tr, dtr)
        f = 0.0
        f_s = 0.0
        f_r = 0.0
        for i in range(ns):
            y0 = 0.0
            y1 = 0.0
            for k in range(nr):
                y0 += phi_c[i, k] * tr[k]
                y1 += phi_c[i, k] * dtr[k]
            f += ts[i] * y0
            f_s += dts[i] * y0
            f_r += ts[i] * y1
        a = z[p, 0]
        out[p, 0] = -c * (f + lam * a)
        out[p, 1] = -c * (a * f_s * fs + lam * z[p, 1])
        out[p, 2] = -c * (a * f_r * fr + lam * z[p, 2])


_moments_b_s, _moments_b_p = serial_and_parallel(_moments_b)
_field_velocity_s, _field_velocity_p = serial_and_parallel(_field_velocity)


@numba.njit(cache=True)
def _potential_coeffs(b, cv, E, phi_c):
    """m = Eᵀ b, Φ = −C^v + E m (into phi_c); returns |m|²."""
    N, k = E.shape
    m = np.zeros(k)
    for n in range(N):
        bn = b[n]
        for j in range(k):
            m[j] += E[n, j] * bn
    flat = phi_c.reshape(N)
    cvf = cv.reshape(N)
    for n in range(N):
        acc = -cvf[n]
        for j in range(k):
            acc += E[n, j] * m[j]
        flat[n] = acc
    mm = 0.0
    for j in range(k):
        mm += m[j] * m[j]
    return mm


def _velocity(z, wts, cv, E, sc, sh, rmax, c, lam, b, phi_c, out):
    """dz/dt at every particle into ``out`` (P, 3) (module docstring); b, phi_c: work."""
    ns, nr = cv.shape
    _moments_b_s(z, wts, sc, sh, rmax, ns, nr, b)
    _potential_coeffs(b, cv, E, phi_c)
    _field_velocity_s(z, phi_c, sc, sh, rmax, c, lam, out)


velocity, velocity_par = serial_and_parallel(
    _velocity, swap={"_moments_b_s": _moments_b_p, "_field_velocity_s": _field_velocity_p},
    prange=False)


@numba.njit(cache=True)
def moments_b(z, wts, sc, sh, rmax, ns, nr):
    """vec B of the particles (serial)."""
    out = np.empty(ns * nr)
    _moments_b_s(z, wts, sc, sh, rmax, ns, nr, out)
    return out


@numba.njit(cache=True)
def table_risk(z, wts, cv, E, sc, sh, rmax, r_sharp):
    """R(ρ̂) = R# − 2⟨C^v, B⟩ + |Eᵀ B|² (module docstring)."""
    ns, nr = cv.shape
    b = moments_b(z, wts, sc, sh, rmax, ns, nr)
    phi_c = np.empty((ns, nr))
    mm = _potential_coeffs(b, cv, E, phi_c)
    lin = 0.0
    cvf = cv.reshape(ns * nr)
    for n in range(ns * nr):
        lin += cvf[n] * b[n]
    return r_sharp - 2.0 * lin + mm


def phi_at(table: ChebTable, coeffs: np.ndarray, s: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Σ_ik coeffs_ik T_i(x) T_k(y) at points (s, r) (numpy; for tests and diagnostics)."""
    sc, sh, rmax = table.coords()
    x = (np.asarray(s) - sc) / sh
    y = 2.0 * (np.asarray(r) / rmax) ** 2 - 1.0
    ns, nr = coeffs.shape
    tx = np.polynomial.chebyshev.chebvander(x, ns - 1)
    ty = np.polynomial.chebyshev.chebvander(y, nr - 1)
    return np.einsum("pi,ik,pk->p", tx, coeffs, ty)

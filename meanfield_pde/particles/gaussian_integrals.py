"""Gaussian integrals of activations in closed form (or exact quadrature), for the population risk.

For X, Y centred normals with Var X = sx², Var Y = sy² and correlation rho:

* :func:`_bvn_upper` — P(U > h, V > k) for a standard bivariate normal (Genz 2004);
* :func:`_hinge_pair` — E[(U − h)_+ (V − k)_+] (truncated bivariate moments, Rosenbaum 1961);
* :func:`_pl_pair` — E[σ(X) σ(Y)] for piecewise-linear σ (Stein's lemma + hinge pairs);
* :func:`_erf_pair` — E[erf(X) erf(Y)] = (2/π) arcsin(2 Cov / sqrt((1 + 2 sx²)(1 + 2 sy²)));
* :func:`_pl_diag`, :func:`_smooth_diag` — the diagonal E σ(tG)².
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..activations import Activation
from ..quadrature import graded_gauss_legendre

T_MIN = 1e-100  # below this scale a neuron is constant to double precision: Mehler (exact)

_INV_SQRT_2PI = 0.3989422804014327
_SQRT_HALF = 0.7071067811865476


@numba.njit(cache=True)
def _q(x: float) -> float:
    """Upper normal tail Q(x) = P(G > x)."""
    return 0.5 * math.erfc(x * _SQRT_HALF)


@numba.njit(cache=True)
def _phi(x: float) -> float:
    return _INV_SQRT_2PI * math.exp(-0.5 * x * x)


_GL_X = np.array([
    [0.9324695142031522, 0.6612093864662647, 0.2386191860831970, 0, 0, 0, 0, 0, 0, 0],
    [0.9815606342467191, 0.9041172563704750, 0.7699026741943050, 0.5873179542866171,
     0.3678314989981802, 0.1252334085114692, 0, 0, 0, 0],
    [0.9931285991850949, 0.9639719272779138, 0.9122344282513259, 0.8391169718222188,
     0.7463319064601508, 0.6360536807265150, 0.5108670019508271, 0.3737060887154196,
     0.2277858511416451, 0.07652652113349733]])
_GL_W = np.array([
    [0.1713244923791705, 0.3607615730481384, 0.4679139345726904, 0, 0, 0, 0, 0, 0, 0],
    [0.04717533638651177, 0.1069393259953183, 0.1600783285433464, 0.2031674267230659,
     0.2334925365383547, 0.2491470458134029, 0, 0, 0, 0],
    [0.01761400713915212, 0.04060142980038694, 0.06267204833410906, 0.08327674157670475,
     0.1019301198172404, 0.1181945319615184, 0.1316886384491766, 0.1420961093183821,
     0.1491729864726037, 0.1527533871307259]])


@numba.njit(cache=True)
def _bvn_upper(h: float, k: float, r: float) -> float:
    """P(U > h, V > k) for a standard bivariate normal with correlation r, |r| < 1.

    The method of Drezner & Wesolowsky (1989) in the double-precision form of Genz (2004,
    Statistics and Computing 14: 251–260): Gauss–Legendre (6, 12 or 20 points) on the
    integral over the correlation for |r| < 0.925, and for |r| >= 0.925 the asymptotic expansion
    in 1 − r² plus a quadrature of the remainder (accurate near |r| = 1).
    """
    ar = abs(r)
    if ar < 0.3:
        ng, lg = 0, 3
    elif ar < 0.75:
        ng, lg = 1, 6
    else:
        ng, lg = 2, 10
    hk = h * k
    bvn = 0.0
    if ar < 0.925:
        hs = 0.5 * (h * h + k * k)
        asr = math.asin(r)
        for i in range(lg):
            for sgn in (-1.0, 1.0):
                sn = math.sin(asr * (1.0 + sgn * _GL_X[ng, i]) * 0.5)
                bvn += _GL_W[ng, i] * math.exp((sn * hk - hs) / (1.0 - sn * sn))
        return bvn * asr / (4.0 * math.pi) + _q(h) * _q(k)
    if r < 0.0:
        k = -k
        hk = -hk
    if ar < 1.0:
        as_ = (1.0 - r) * (1.0 + r)
        a = math.sqrt(as_)
        bs = (h - k) * (h - k)
        c = (4.0 - hk) / 8.0
        dd = (12.0 - hk) / 16.0
        asr = -0.5 * (bs / as_ + hk)
        if asr > -100.0:
            bvn = a * math.exp(asr) * (1.0 - c * (bs - as_) * (1.0 - dd * bs / 5.0) / 3.0
                                       + c * dd * as_ * as_ / 5.0)
        if hk > -100.0:
            b = math.sqrt(bs)
            sp = math.sqrt(2.0 * math.pi) * _q(b / a)  # sqrt(2π) Φ(−b/a)
            bvn -= math.exp(-0.5 * hk) * sp * b * (1.0 - c * bs * (1.0 - dd * bs / 5.0) / 3.0)
        a *= 0.5
        for i in range(lg):
            for sgn in (-1.0, 1.0):
                xs = (a + a * sgn * _GL_X[ng, i]) ** 2
                rs = math.sqrt(1.0 - xs)
                asr = -0.5 * (bs / xs + hk)
                if asr > -100.0:
                    sp = 1.0 + c * xs * (1.0 + dd * xs)
                    ep = math.exp(-hk * (1.0 - rs) / (2.0 * (1.0 + rs))) / rs
                    bvn += a * _GL_W[ng, i] * math.exp(asr) * (ep - sp)
        bvn = -bvn / (2.0 * math.pi)
    if r > 0.0:
        bvn += _q(max(h, k))
    else:
        bvn = -bvn + max(0.0, _q(h) - _q(k))
    return min(1.0, max(0.0, bvn))


@numba.njit(cache=True)
def _hinge_pair(h: float, k: float, rho: float) -> float:
    """E[(U − h)_+ (V − k)_+] for standard normals with correlation rho.

    With L = P(U > h, V > k), s = sqrt(1 − rho²), q_a = Q((k − rho h)/s), q_b = Q((h − rho k)/s):
    E[U 1] = φ(h) q_a + rho φ(k) q_b, E[V 1] = φ(k) q_b + rho φ(h) q_a,
    E[UV 1] = rho L + rho h φ(h) q_a + rho k φ(k) q_b + s φ(h) φ((k − rho h)/s), and the result is
    E[UV 1] − k E[U 1] − h E[V 1] + hk L.  rho = ±1 in closed form (V = ±U).
    """
    if rho >= 1.0:
        m = max(h, k)
        pm, qm = _phi(m), _q(m)
        return (m * pm + qm) - (h + k) * pm + h * k * qm
    if rho <= -1.0:  # V = −U: the integral of (u − h)(−u − k) φ(u) over h < u < −k
        lo, hi = h, -k
        if lo >= hi:
            return 0.0
        p = _q(lo) - _q(hi)
        i2 = lo * _phi(lo) - hi * _phi(hi) + p
        i1 = _phi(lo) - _phi(hi)
        return -(i2 + (k - h) * i1 - h * k * p)
    s = math.sqrt((1.0 - rho) * (1.0 + rho))
    big_l = _bvn_upper(h, k, rho)
    xa = (k - rho * h) / s
    xb = (h - rho * k) / s
    qa, qb = _q(xa), _q(xb)
    ph, pk = _phi(h), _phi(k)
    m10 = ph * qa + rho * pk * qb
    m01 = pk * qb + rho * ph * qa
    m11 = rho * big_l + rho * h * ph * qa + rho * k * pk * qb + s * ph * _phi(xa)
    return m11 - k * m10 - h * m01 + h * k * big_l


@numba.njit(cache=True)
def _pl_mean(p: np.ndarray, sx: float) -> float:
    """E σ(sx G) for σ(u) = A + B u + Σ D_m (u − κ_m)_+ (sx > 0)."""
    nk = int(p[2])
    out = p[0]
    for m in range(nk):
        h = p[3 + m] / sx
        out += p[3 + nk + m] * sx * (_phi(h) - h * _q(h))
    return out


@numba.njit(cache=True)
def _pl_pair(p: np.ndarray, sx: float, sy: float, rho: float) -> float:
    """E[σ(X) σ(Y)] in closed form, Var X = sx², Var Y = sy², corr rho (sx, sy > 0).

    σ = A + B u + Σ_m D_m (u − κ_m)_+; Stein's lemma gives E[X (Y − κ)_+] = rho sx sy Q(κ/sy),
    and E[(X − κ)_+ (Y − κ')_+] = sx sy :func:`_hinge_pair` (κ/sx, κ'/sy, rho).
    """
    nk = int(p[2])
    a_, b_ = p[0], p[1]
    cov = rho * sx * sy
    out = a_ * (_pl_mean(p, sx) + _pl_mean(p, sy)) - a_ * a_ + b_ * b_ * cov
    for m in range(nk):
        dm = p[3 + nk + m]
        if b_ != 0.0:
            out += b_ * dm * cov * (_q(p[3 + m] / sy) + _q(p[3 + m] / sx))
        for m2 in range(nk):
            out += dm * p[3 + nk + m2] * sx * sy * _hinge_pair(p[3 + m] / sx, p[3 + m2] / sy,
                                                              rho)
    return out


@numba.njit(cache=True)
def _erf_pair(sx: float, sy: float, rho: float) -> float:
    """E[erf(X) erf(Y)] = (2/π) arcsin(2 rho sx sy / sqrt((1 + 2 sx²)(1 + 2 sy²)))."""
    arg = 2.0 * rho * sx * sy / math.sqrt((1.0 + 2.0 * sx * sx) * (1.0 + 2.0 * sy * sy))
    return 2.0 / math.pi * math.asin(min(1.0, max(-1.0, arg)))



@numba.njit(cache=True)
def _pl_diag(p: np.ndarray, t: np.ndarray, sigma0_sq: float) -> np.ndarray:
    """E σ(t_i G)² for piecewise-linear σ: the closed form at c = 1 (σ(0)² for t_i <= T_MIN)."""
    out = np.empty(t.size)
    for i in range(t.size):
        out[i] = _pl_pair(p, t[i], t[i], 1.0) if t[i] > T_MIN else sigma0_sq
    return out


def _smooth_diag(act: Activation, t: np.ndarray) -> np.ndarray:
    """E σ(tG)² by composite Gauss–Legendre on [−14, 14], panels graded towards 0 (where the
    nearest complex singularities of σ(t·), at distance pole/t, lie)."""
    tmax = float(np.max(t)) if t.size else 0.0
    pole = getattr(act, "pole", 1.0)
    hmin = min(0.5, pole / max(tmax, 1e-300))
    z, w = graded_gauss_legendre(0.0, hmin, 0.5, 14.0, 16)
    wz = w * np.exp(-0.5 * z * z) * _INV_SQRT_2PI
    out = np.empty(t.size)
    for start in range(0, t.size, 256):
        sl = slice(start, start + 256)
        vals = act.value(t[sl, None] * z[None, :])
        out[sl] = (vals * vals) @ wz
    return out


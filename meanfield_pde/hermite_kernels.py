"""Compiled kernels of the Hermite coefficients of the activations (:mod:`.activations`).

    alpha_k(t; b) = E[ sigma(b + t Z) He_k(Z) ] / sqrt(k!),   Z ~ N(0, 1),

for a block of (t_i, b_i): the closed forms of the piecewise-linear activations (Stein's lemma at
the kinks) and of erf, and the graded composite Gauss-Legendre rule of the smooth activations
(tanh, sigmoid, softplus), whose recurrence runs on exp(-z^2/4) h_k(z).  The formulas and the
choice between the rules are in the docstring of :mod:`.activations`.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .quadrature import _graded_breakpoints, _inv_sqrt_table, _sqrt_table

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

_BLOCK = 512  # t values per cache block in the closed-form kernels
#: the centred form (:func:`pl_alphas_centred`) takes over when every |x_m| <= this: there the
#: kink terms t D_m φ(x_m) h_j(x_m), each ~ t, cancel to ~ κ²/t and the plain sum would lose
#: eps × t absolutely (the ramp's α_0 at t = 1e17 came out 0 instead of 2.5)
X_CENTRED = 1.0 / 64.0
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)


@numba.njit(cache=True, nogil=True)
def pl_all_kinks_near(t, b, kinks):
    """True when every x_m = (κ_m − b)/t is within ±X_CENTRED (so the centred form is used)."""
    for m in range(kinks.size):
        if abs(kinks[m] - b) > X_CENTRED * t:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def pl_alphas_centred(t, b, intercept, slope, kinks, jumps, kmax, out, col, stride):
    """α_k(t; b), k = 0, stride, 2 stride, ... <= kmax, of A + B u + Σ_m D_m (u − κ_m)_+ into
    out[k // stride, col], in a form without cancellation when every x_m = (κ_m − b)/t is small.

    With S = Σ_m D_m, φ0 = φ(0), Q(x) − ½ = −½ erf(x/√2), φ(x) − φ0 = φ0 expm1(−x²/2):

        α_0 = A + B b + t φ0 S + Σ_m D_m [t φ0 expm1(−x_m²/2) + ½ (κ_m − b)(erf(x_m/√2) − 1)],
        α_1 = t (B + S/2) − ½ t Σ_m D_m erf(x_m/√2),
        α_k = t / √(k(k−1)) [Σ_m D_m φ0 (expm1(−x_m²/2) h_j(x_m) + d_j(x_m)) + φ0 h_j(0) S],

    j = k − 2, d_j = h_j(x) − h_j(0) by d_j = (x h_{j−1} − √(j−1) d_{j−2})/√j (d_0 = 0,
    d_1 = x): every term is of the size of the result (the bracket's ~ x² cancellations happen
    inside expm1 and d_j).  Valid for any x; |x| <= 1 keeps the unscaled h_j bounded."""
    phi0 = _INV_SQRT_2PI
    ssum = 0.0
    a0 = intercept + slope * b
    a1 = 0.0
    for m in range(kinks.size):
        x = (kinks[m] - b) / t
        e = math.erf(x * _INV_SQRT_2)
        ssum += jumps[m]
        a0 += jumps[m] * (t * phi0 * math.expm1(-0.5 * x * x) + 0.5 * (kinks[m] - b) * (e - 1.0))
        a1 -= 0.5 * t * jumps[m] * e
    out[0, col] = a0 + t * phi0 * ssum
    if stride == 1 and kmax >= 1:
        out[1, col] = a1 + t * (slope + 0.5 * ssum)
    for k in range(2, kmax + 1):
        if k % stride == 0:
            out[k // stride, col] = 0.0
    for m in range(kinks.size):
        x = (kinks[m] - b) / t
        em = math.expm1(-0.5 * x * x)
        h0, h1, d0, d1, c0, c1 = 1.0, x, 0.0, x, 1.0, 0.0  # h_j(x), d_j(x), h_j(0): j−2, j−1
        for k in range(2, kmax + 1):
            j = k - 2
            if j == 0:
                h, d, c = 1.0, 0.0, 1.0
            elif j == 1:
                h, d, c = x, x, 0.0
            else:
                sj, sj1 = math.sqrt(float(j)), math.sqrt(j - 1.0)
                h = (x * h1 - sj1 * h0) / sj
                d = (x * h1 - sj1 * d0) / sj
                c = -sj1 * c0 / sj
                h0, h1, d0, d1, c0, c1 = h1, h, d1, d, c1, c
            if k % stride == 0:
                out[k // stride, col] += (t / math.sqrt(k * (k - 1.0)) * phi0
                                          * (jumps[m] * (em * h + d) + (c * ssum if m == 0
                                                                        else 0.0)))


@numba.njit(cache=True)
def _pl_hermite_kernel(t, b, intercept, slope, kinks, jumps, kmax):
    """Closed-form ``alpha_k(t_i; b_i)`` of ``A + B u + sum_m D_m (u - kappa_m)_+`` for t_i > 0.

    Returns ``out[k, i]``.  k = 0, 1 via normal pdf/tail; k >= 2 via
    ``alpha_k = t sum_m D_m phi(x_m) h_{k-2}(x_m) / sqrt(k(k-1))``, ``x_m = (kappa_m - b)/t``,
    with the recurrence run on ``exp(-x^2/4) h_j(x)`` (bounded), vectorised over blocks of i;
    points whose kinks all have |x_m| <= X_CENTRED (t large against κ_m − b, where the kink terms
    cancel) are recomputed by :func:`pl_alphas_centred`.
    """
    n = t.size
    nk = kinks.size
    out = np.zeros((kmax + 1, n))
    sq = _sqrt_table(kmax)
    isq = _inv_sqrt_table(kmax)
    x = np.empty((nk, _BLOCK))
    g0 = np.zeros((nk, _BLOCK))
    g1 = np.zeros((nk, _BLOCK))
    f = np.zeros((nk, _BLOCK))
    for i0 in range(0, n, _BLOCK):
        nb = min(_BLOCK, n - i0)
        for i in range(i0, i0 + nb):
            out[0, i] = intercept + slope * b[i]
            if kmax >= 1:
                out[1, i] = t[i] * slope
        for m in range(nk):
            for ii in range(nb):
                i = i0 + ii
                xm = (kinks[m] - b[i]) / t[i]
                if abs(xm) <= 40.0:  # E(b + tZ - kappa)_+ = t (phi(x) - x Q(x))
                    tail = 0.5 * math.erfc(xm * 0.7071067811865476)
                    pdf = _INV_SQRT_2PI * math.exp(-0.5 * xm * xm)
                    out[0, i] += jumps[m] * t[i] * (pdf - xm * tail)
                elif xm < 0.0:  # Q(x) = 1, phi(x) = 0 to double precision
                    tail = 1.0
                    out[0, i] += jumps[m] * (b[i] - kinks[m])
                else:
                    tail = 0.0
                if kmax >= 1:
                    out[1, i] += t[i] * jumps[m] * tail
                if abs(xm) > 50.0:  # |phi h_j| < 1e-271: no contribution (and no inf * 0)
                    xm = 0.0
                    e = 0.0
                else:
                    e = math.exp(-0.25 * xm * xm)
                x[m, ii] = xm
                g0[m, ii] = e
                g1[m, ii] = xm * e
                f[m, ii] = t[i] * jumps[m] * e * _INV_SQRT_2PI
        for k in range(2, kmax + 1):
            j = k - 2  # degree of h_j
            c = isq[k] * isq[k - 1]
            row = out[k, i0:i0 + nb]
            for m in range(nk):
                xm_, g0m, g1m, fm = x[m], g0[m], g1[m], f[m]
                if j >= 2:
                    a = sq[j - 1]
                    ij = isq[j]
                    for ii in range(nb):
                        g2 = (xm_[ii] * g1m[ii] - a * g0m[ii]) * ij
                        g0m[ii] = g1m[ii]
                        g1m[ii] = g2
                gj = g0m if j == 0 else g1m
                for ii in range(nb):
                    row[ii] += c * fm[ii] * gj[ii]
        for i in range(i0, i0 + nb):  # every kink near b: the cancellation-free form
            if pl_all_kinks_near(t[i], b[i], kinks):
                pl_alphas_centred(t[i], b[i], intercept, slope, kinks, jumps, kmax, out, i, 1)
    return out


@numba.njit(cache=True)
def _erf_hermite_kernel(t, b, kmax):
    """Closed-form ``alpha_k(t_i; b_i)`` of erf (see the module docstring), ``out[k, i]``.

    The recurrence runs on ``g_n = a^n h_n(y)``:
    ``g_n = (a y g_{n-1} - a^2 sqrt(n-1) g_{n-2}) / sqrt(n)``.
    """
    n = t.size
    out = np.empty((kmax + 1, n))
    sq = _sqrt_table(kmax)
    isq = _inv_sqrt_table(kmax)
    ay = np.empty(n)
    a2 = np.empty(n)
    g0 = np.empty(n)
    g1 = np.empty(n)
    f = np.empty(n)
    for i in range(n):
        # s = 1/√(1 + 2t²) and t s without overflowing t² (t up to the largest double)
        if t[i] > 1.0:
            ts = 1.0 / math.sqrt(1.0 / (t[i] * t[i]) + 2.0)
            s = ts / t[i]
        else:
            s = 1.0 / math.sqrt(1.0 + 2.0 * t[i] * t[i])
            ts = t[i] * s
        a = math.sqrt(2.0) * ts
        y = -math.sqrt(2.0) * b[i] * s
        out[0, i] = math.erf(b[i] * s)
        f[i] = 2.0 / math.sqrt(math.pi) * ts * math.exp(-b[i] * b[i] * s * s)
        ay[i] = a * y
        a2[i] = a * a
        g0[i] = 1.0
        g1[i] = a * y
    for k in range(1, kmax + 1):
        nn = k - 1  # degree of h_n
        if nn >= 2:
            for i in range(n):
                g2 = (ay[i] * g1[i] - a2[i] * sq[nn - 1] * g0[i]) * isq[nn]
                g0[i] = g1[i]
                g1[i] = g2
        c = isq[k]
        if nn == 0:
            for i in range(n):
                out[k, i] = c * f[i] * g0[i]
        else:
            for i in range(n):
                out[k, i] = c * f[i] * g1[i]
    return out


@numba.njit(cache=True)
def _smooth_value(code, u):
    """sigma(u) for code 0 = tanh, 1 = sigmoid, 2 = softplus (overflow-free forms); code 3 is
    softplus minus relu, log1p(exp(-|u|)) (bounded: the large-scale split of softplus)."""
    if code == 0:
        return math.tanh(u)
    e = math.exp(-abs(u))
    if code == 1:
        return 1.0 / (1.0 + e) if u >= 0.0 else e / (1.0 + e)
    if code == 3:
        return math.log1p(e)
    return max(u, 0.0) + math.log1p(e)


@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def _smooth_composite_kernel(code, t, b, grading, rule, kmax):
    """``out[k, i] = sum_j w_j phi(z_j) sigma(b_i + t_i z_j) h_k(z_j)`` for t_i > 0.

    Per t_i the nodes z_j form a composite Gauss-Legendre rule (``rule`` = (nodes, weights) on
    [-1, 1]) on [-L, L] graded towards ``z0 = -b_i/t_i`` from width ``hmin_factor * pole / t_i``
    to ``hmax``; ``grading`` = (pole, L, hmax, hmin_factor, ratio).  The sum over nodes is
    vectorised; the recurrence runs on ``exp(-z^2/4) h_k(z)``.
    """
    pole, half_width, hmax, hmin_factor, ratio = grading
    xg, wg = rule
    n = t.size
    p = xg.size
    out = np.empty((kmax + 1, n))
    sq = _sqrt_table(kmax)
    isq = _inv_sqrt_table(kmax)
    for i in range(n):
        ti = t[i]
        bi = b[i]
        br = _graded_breakpoints(-bi / ti, hmin_factor * pole / ti, hmax, half_width, ratio)
        nn = (br.size - 1) * p
        z = np.empty(nn)
        f = np.empty(nn)
        g0 = np.empty(nn)
        g1 = np.empty(nn)
        for q in range(br.size - 1):
            mid = 0.5 * (br[q + 1] + br[q])
            half = 0.5 * (br[q + 1] - br[q])
            for r in range(p):
                j = q * p + r
                zj = mid + half * xg[r]
                e = math.exp(-0.25 * zj * zj)
                z[j] = zj
                f[j] = half * wg[r] * e * _INV_SQRT_2PI * _smooth_value(code, bi + ti * zj)
                g0[j] = e
                g1[j] = zj * e
        acc = 0.0
        for j in range(nn):
            acc += f[j] * g0[j]
        out[0, i] = acc
        if kmax >= 1:
            acc = 0.0
            for j in range(nn):
                acc += f[j] * g1[j]
            out[1, i] = acc
        for k in range(2, kmax + 1):
            a = sq[k - 1]
            c = isq[k]
            acc = 0.0
            for j in range(nn):
                g2 = (z[j] * g1[j] - a * g0[j]) * c
                g0[j] = g1[j]
                g1[j] = g2
                acc += f[j] * g2
            out[k, i] = acc
    return out

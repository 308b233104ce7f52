"""The external potential of the single-neuron problem and the Hermite coefficients it shares
with the kernel features (:mod:`.neuron_kernel`, whose module docstring derives both).

    V(s, r) = −v(s, r),  v(s, r) = E[σ(s G1 + r G2) f_*(G1)],     R# = v(1, 0)|_{σ = f_*} + ν²,

(G1, G2 independent standard normals): v by conditioning on G1 (a composite Gauss–Legendre rule
graded towards every kink and singularity of the integrand) or by the Mehler expansion
Σ_k α_k(s; 0) β_k with the Hermite coefficients ``_hermite_coeffs`` = α_k(t; b) of
E[σ(b + t Z) He_k(Z)]/sqrt(k!) on Gauss–Hermite rules in Z (closed forms where the activation has
them).
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np

from ..activations import Activation, Erf, PiecewiseLinearActivation, SmoothActivation
from ..errors import ConfigError
from ..quadrature import _graded_breakpoints, gauss_hermite, gauss_legendre, hermite_normalized

# Gauss-Hermite rule in Z for smooth activations: n >= GH_C0 + GH_CK kmax + GH_CP (t / pole)^2
GH_C0 = 24.0
GH_CK = 0.75
GH_CP = 450.0
GH_DROP = 1e-21  # drop Z-nodes with w exp(z^2/4) (1 + |z|) below this (Cramer bound on h_k)
_Z_LEVELS = (16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
             448, 512, 640, 768, 896, 1024, 1280, 1536, 1792, 2048)
_CHUNK_ELEMS = 4_000_000  # entries of sigma(b + t z) evaluated per matrix product

# v(s, r) by conditioning: composite Gauss-Legendre
V_ORDER = 20
V_HALF_WIDTH = 14.0
V_HMAX = 1.0
V_RATIO = 2.0
V_HMIN_FLOOR = 1e-7
MEHLER_TOL = 1e-16
MEHLER_MAX = 4096


@functools.lru_cache(maxsize=64)
def _z_rule(n: int, kmax: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Hermite nodes z (negligible ones dropped) and ``H[i, j] = w_j h_{i·step}(z_j)``."""
    z, w = gauss_hermite(n)
    with np.errstate(divide="ignore"):
        logw = np.log(w)
    keep = logw + 0.25 * z * z + np.log1p(np.abs(z)) > math.log(GH_DROP)
    z, w = z[keep], w[keep]
    h = hermite_normalized(z, kmax)[::step] * w[None, :]
    z.setflags(write=False)
    h.setflags(write=False)
    return z, h


def _hermite_coeffs(act: Activation, t: np.ndarray | float, b: np.ndarray | float, kmax: int,
                    step: int = 1) -> np.ndarray:
    """``α_k(t; b) = E[σ(b + tZ) He_k(Z)] / sqrt(k!)`` for k = 0, step, 2 step, ... <= kmax.

    ``t >= 0`` and ``b`` broadcast to flat arrays of size P; returns shape
    ``(len(range(0, kmax + 1, step)), P)``.
    Smooth activations: Gauss–Hermite in Z with ``n = GH_C0 + GH_CK kmax + GH_CP (t/pole)²`` nodes
    (module docstring), one matrix product per node level; beyond 2048 nodes and for every other
    activation :meth:`Activation.hermite`.
    """
    ta, ba = np.broadcast_arrays(np.asarray(t, dtype=np.float64), np.asarray(b, dtype=np.float64))
    ta, ba = ta.ravel(), ba.ravel()
    if not isinstance(act, SmoothActivation):
        return act.hermite(ta, kmax, ba)[::step]
    nk = len(range(0, kmax + 1, step))
    out = np.empty((nk, ta.size))
    need = GH_C0 + GH_CK * kmax + GH_CP * (ta / act.pole) ** 2
    level = np.searchsorted(_Z_LEVELS, need)
    for lev in np.unique(level):
        sel = np.flatnonzero(level == lev)
        if lev >= len(_Z_LEVELS):
            out[:, sel] = act.hermite(ta[sel], kmax, ba[sel])[::step]
            continue
        z, h = _z_rule(_Z_LEVELS[lev], kmax, step)
        chunk = max(1, _CHUNK_ELEMS // z.size)
        for start in range(0, sel.size, chunk):
            idx = sel[start:start + chunk]
            tt = ta[idx]
            if np.all(tt == tt[0]):  # one t (a feature group): a single temporary
                arg = np.add.outer(z * tt[0], ba[idx])
            else:
                arg = ba[None, idx] + z[:, None] * tt[None, :]
            out[:, idx] = h @ act.value(arg)
    return out


def _is_pl(act: Activation) -> bool:
    return isinstance(act, PiecewiseLinearActivation)


def _closed_form(act: Activation) -> bool:
    return isinstance(act, PiecewiseLinearActivation | Erf)


def _kinks(act: Activation) -> np.ndarray:
    return act.pieces[2]  # piecewise-linear activations only


def _value_centers(act: Activation, kappa: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grading centres of ``x ↦ act(κ x)``: kinks (a breakpoint) or the real part 0 of the nearest
    complex singularity at distance pole/κ (erf: its scale 1/κ)."""
    big = np.abs(kappa) > 0
    safe = np.where(big, np.abs(kappa), 1.0)
    out = []
    if _is_pl(act):
        for k in _kinks(act):
            centre = np.where(big, k / np.where(big, kappa, 1.0), np.nan)
            out.append((centre, np.full(kappa.shape, V_HMAX)))
    else:
        width = act.pole if isinstance(act, SmoothActivation) else 1.0
        out.append((np.where(big, 0.0, np.nan), width / safe))
    return out


def _hermite_centers(act: Activation, t: np.ndarray,
                     beta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grading centres of ``x ↦ E act(β x + t Z)``: smoothed kinks at κ/β of width t/|β|
    (at least V_HMIN_FLOOR); analytic act: 0 with the strip width (pole or erf scale) / |β|."""
    big = np.abs(beta) > 0
    safe = np.where(big, np.abs(beta), 1.0)
    out = []
    if _is_pl(act):
        for k in _kinks(act):
            c = np.where(big, k / np.where(big, beta, 1.0), np.nan)
            out.append((c, np.maximum(t / safe, V_HMIN_FLOOR)))
    elif isinstance(act, Erf):
        out.append((np.where(big, 0.0, np.nan), np.sqrt(1.0 + 2.0 * t * t) / safe))
    else:
        width = act.pole if isinstance(act, SmoothActivation) else 1.0
        out.append((np.where(big, 0.0, np.nan), width / safe))
    return out


@numba.njit(cache=True)
def _union_breakpoints(centers, hmins, hmax, half_width, ratio):
    """Sorted union of uniform panels of width hmax and of the graded breakpoints about every
    finite centre inside [-L, L]."""
    base = _graded_breakpoints(0.0, hmax, hmax, half_width, ratio)
    n = base.size
    for c in range(centers.size):
        if math.isfinite(centers[c]) and abs(centers[c]) <= half_width:
            n += _graded_breakpoints(centers[c], hmins[c], hmax, half_width, ratio).size
    buf = np.empty(n)
    buf[:base.size] = base
    k = base.size
    for c in range(centers.size):
        if math.isfinite(centers[c]) and abs(centers[c]) <= half_width:
            br = _graded_breakpoints(centers[c], hmins[c], hmax, half_width, ratio)
            buf[k:k + br.size] = br
            k += br.size
    buf.sort()
    out = np.empty(n)
    out[0] = buf[0]
    m = 1
    for i in range(1, n):
        if buf[i] - out[m - 1] > 1e-15 * (1.0 + abs(buf[i])):
            out[m] = buf[i]
            m += 1
    return out[:m]


@numba.njit(cache=True)
def _composite_nodes(centers, hmins, hmax, half_width, ratio, xg, wg):
    """Per point p: composite Gauss–Legendre nodes on the union of graded panels, weights times
    the normal density.  Returns flat nodes, weights and offsets (P + 1)."""
    npts = centers.shape[0]
    p_ = xg.size
    offsets = np.zeros(npts + 1, dtype=np.int64)
    for p in range(npts):
        br = _union_breakpoints(centers[p], hmins[p], hmax, half_width, ratio)
        offsets[p + 1] = offsets[p] + (br.size - 1) * p_
    x = np.empty(offsets[npts])
    w = np.empty(offsets[npts])
    for p in range(npts):
        br = _union_breakpoints(centers[p], hmins[p], hmax, half_width, ratio)
        k = offsets[p]
        for q in range(br.size - 1):
            mid = 0.5 * (br[q + 1] + br[q])
            half = 0.5 * (br[q + 1] - br[q])
            for i in range(p_):
                xi = mid + half * xg[i]
                x[k] = xi
                w[k] = half * wg[i] * math.exp(-0.5 * xi * xi) * 0.3989422804014327
                k += 1
    return x, w, offsets


def _v_conditioned(sigma: Activation, target: Activation, s: np.ndarray,
                   r: np.ndarray) -> np.ndarray:
    """v(s_p, r_p) with one Gaussian integrated in closed form (module docstring)."""
    out = np.empty(s.size)
    rho = np.hypot(s, r)
    pos = rho > 0
    c = np.where(pos, s / np.where(pos, rho, 1.0), 0.0)
    t = np.where(pos, r / np.where(pos, rho, 1.0), 1.0)
    if _closed_form(target):  # v = E_Y[ σ(ϱY) E f_*(cY + tW) ]
        cents = _value_centers(sigma, rho) + _hermite_centers(target, t, c)
    else:  # σ closed form: v = E_G[ f_*(G) E σ(sG + rZ) ]
        cents = _value_centers(target, np.ones_like(s)) + _hermite_centers(sigma, r, s)
    centers = np.ascontiguousarray(np.column_stack([cc for cc, _ in cents]))
    hmins = np.ascontiguousarray(np.column_stack([hh for _, hh in cents]))
    xg, wg = gauss_legendre(V_ORDER)
    xg, wg = np.ascontiguousarray(xg), np.ascontiguousarray(wg)
    chunk = 2000
    for start in range(0, s.size, chunk):
        sl = slice(start, start + chunk)
        x, w, off = _composite_nodes(centers[sl], hmins[sl], V_HMAX, V_HALF_WIDTH, V_RATIO, xg, wg)
        cnt = np.diff(off)
        if _closed_form(target):
            a = sigma.value(np.repeat(rho[sl], cnt) * x)
            b = target.hermite(np.repeat(t[sl], cnt), 0, np.repeat(c[sl], cnt) * x)[0]
        else:
            a = target.value(x)
            b = sigma.hermite(np.repeat(r[sl], cnt), 0, np.repeat(s[sl], cnt) * x)[0]
        out[sl] = np.add.reduceat(w * a * b, off[:-1])
    return out


def _v_mehler(sigma: Activation, target: Activation, s: np.ndarray, r: np.ndarray) -> np.ndarray:
    """v(s_p, r_p) = Σ_k c^k f̂_k α_k(ϱ) for analytic σ and f_* (module docstring)."""
    rho = np.hypot(s, r)
    pos = rho > 0
    c = np.where(pos, s / np.where(pos, rho, 1.0), 0.0)
    # ϱ(s) = ϱ(−s): merge values equal to 1e-14 (a change below 1e-14 in v)
    urho, inv = np.unique(np.round(rho, 14), return_inverse=True)
    kmax = 128
    while True:
        fhat = target.hermite(1.0, kmax)
        alpha = _hermite_coeffs(sigma, urho, 0.0, kmax)[:, inv]
        powers = np.cumprod(np.vstack([np.ones_like(c), np.broadcast_to(c, (kmax, c.size))]),
                            axis=0)
        terms = fhat[:, None] * alpha * powers
        v = terms.sum(axis=0)
        tail = float(np.max(np.sum(np.abs(terms[-8:]), axis=0)))
        if tail <= MEHLER_TOL * (1.0 + float(np.max(np.abs(v)))) or kmax >= MEHLER_MAX:
            return v
        kmax *= 2


def _v_points(sigma: Activation, target: Activation, s: np.ndarray, r: np.ndarray) -> np.ndarray:
    """v(s_p, r_p) = E[f_*(G1) σ(s_p G1 + r_p Z)] for flat arrays (r >= 0)."""
    s = np.ascontiguousarray(s, dtype=np.float64).ravel()
    r = np.ascontiguousarray(r, dtype=np.float64).ravel()
    if np.any(r < 0) or not (np.all(np.isfinite(s)) and np.all(np.isfinite(r))):
        raise ConfigError("v(s, r) needs finite s and r >= 0")
    if _is_pl(sigma) or _is_pl(target):
        return _v_conditioned(sigma, target, s, r)
    return _v_mehler(sigma, target, s, r)


def r_sharp(target: Activation, label_noise: float = 0.0) -> float:
    """R# = E f_*(G)² + ν², with ``label_noise`` = ν² the variance of the label noise (the
    config key ``model.label_noise``), and E f_*(G)² = v(1, 0) for σ = f_*."""
    if not (math.isfinite(label_noise) and label_noise >= 0):
        raise ConfigError(f"label_noise must be a finite number >= 0, got {label_noise!r}")
    return float(_v_points(target, target, np.array([1.0]), np.array([0.0]))[0]) + label_noise

"""Quadrature rules and special sequences used by the reductions of MATH.md.

Conventions (MATH.md section 1):

* ``G ~ N(0, 1)``, ``phi(x) = exp(-x^2/2) / sqrt(2 pi)``;
* ``He_k`` are the probabilists' Hermite polynomials and ``h_k = He_k / sqrt(k!)`` their
  normalisation, orthonormal for the weight ``phi``: ``E[h_j(G) h_k(G)] = delta_jk``;
* ``mu_2j(m) = E c^{2j}`` for ``c`` one coordinate of a uniform point on ``S^{m-1}``.

Public rules:

* :func:`gauss_hermite` -- ``E f(G) ~= sum_i w_i f(x_i)``, exact for polynomials of degree
  ``<= 2n - 1``;
* :func:`graded_gauss_legendre` -- a composite Gauss-Legendre rule on ``[-L, L]`` whose panels
  are graded geometrically towards a point (where an integrand varies on a short scale); used
  with the weight ``phi`` for Gaussian expectations of nearly-kinked functions;
* :func:`hermite_normalized` / :func:`phi_hermite` -- ``h_k(x)`` and ``phi(x) h_k(x)`` by the
  three-term recurrence.

Numba kernels (names starting with ``_``) take flat float64 arrays and plain scalars only.

Size bound used throughout (Cramer's inequality): for every ``k >= 0`` and real ``x``,
``|h_k(x)| <= K_CRAMER exp(x^2/4)`` with ``K_CRAMER = 1.0865``; hence
``|phi(x) h_k(x)| <= 0.434 exp(-x^2/4)`` uniformly in ``k``.
"""

from __future__ import annotations

import functools
import math
import numbers

import numba
import numpy as np
from numpy.polynomial import legendre
from scipy import linalg

from .errors import ConfigError

__all__ = [
    "K_CRAMER",
    "PHI_HERMITE_CUTOFF",
    "gauss_hermite",
    "gauss_legendre",
    "graded_breakpoints",
    "graded_gauss_legendre",
    "hermite_normalized",
    "phi_hermite",
    "sphere_moments",
]

K_CRAMER = 1.0865
"""Cramer's constant: ``|He_k(x)| exp(-x^2/4) <= K_CRAMER sqrt(k!)`` for all k, x."""

PHI_HERMITE_CUTOFF = 50.0
"""For ``|x| > 50``, ``|phi(x) h_k(x)| <= 0.434 exp(-625) < 1e-271``: there phi_hermite is 0."""


# ----------------------------------------------------------------------------- validation


def _check_kmax(kmax: int) -> int:
    if isinstance(kmax, bool) or not isinstance(kmax, numbers.Integral) or kmax < 0:
        raise ConfigError(f"kmax must be an integer >= 0, got {kmax!r}")
    return int(kmax)


def _check_n(n: int, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ConfigError(f"{what} must be an integer >= 1, got {n!r}")
    return int(n)


# ----------------------------------------------------------------------------- Gauss rules


@numba.njit(cache=True)
def _scaled_hermite_pair(x, n):
    """``(g_{n-1}, g_n)`` with ``g_k = exp(-x^2/4) h_k(x)`` (bounded by Cramer), by recurrence."""
    e = math.exp(-0.25 * x * x)
    g0 = e
    g1 = x * e
    if n == 1:
        return g0, g1
    for k in range(2, n + 1):
        g2 = (x * g1 - math.sqrt(k - 1.0) * g0) / math.sqrt(float(k))
        g0 = g1
        g1 = g2
    return g0, g1


@numba.njit(cache=True)
def _gauss_hermite_refine(x, n):
    """Newton steps on the roots of ``h_n`` and weights ``w_i = 1 / (n h_{n-1}(x_i)^2)``.

    Uses ``h_n' = sqrt(n) h_{n-1}``; the weight is evaluated as
    ``exp(-x^2/2) / (n g_{n-1}^2)`` with ``g = exp(-x^2/4) h`` so that it never overflows.
    Nodes with ``|x| > 50`` (only for n > ~600) keep their eigenvalue and get weight 0 (their
    true weight is of order ``exp(-x^2/2) < 1e-500``).
    """
    w = np.zeros(n)
    for i in range(x.size):
        xi = x[i]
        if abs(xi) > 50.0:
            continue
        for _ in range(3):
            gm, gn = _scaled_hermite_pair(xi, n)
            xi -= gn / (math.sqrt(float(n)) * gm)
        gm, gn = _scaled_hermite_pair(xi, n)
        x[i] = xi
        w[i] = math.exp(-0.5 * xi * xi) / (n * gm * gm)
    return x, w


@functools.lru_cache(maxsize=64)
def _gauss_hermite_cached(n: int) -> tuple[np.ndarray, np.ndarray]:
    # Golub-Welsch: the nodes are the eigenvalues of the Jacobi matrix of the h_k recurrence
    off = np.sqrt(np.arange(1.0, n))
    x0 = linalg.eigh_tridiagonal(np.zeros(n), off, eigvals_only=True) if n > 1 else np.zeros(1)
    x, w = _gauss_hermite_refine(np.sort(x0), n)
    x = 0.5 * (x - x[::-1])  # exact symmetry x_i = -x_{n-1-i}
    w = 0.5 * (w + w[::-1])
    x.setflags(write=False)
    w.setflags(write=False)
    return x, w


def gauss_hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilists' Gauss-Hermite rule for the standard normal law.

    Returns nodes ``x`` (roots of ``He_n``, ascending, exactly symmetric) and weights ``w``
    (``sum w = 1`` to rounding) with ``E f(G) = sum_i w_i f(x_i)`` exactly for polynomials of
    degree ``<= 2n - 1``.  Nodes: eigenvalues of the Jacobi matrix (Golub-Welsch) polished by
    Newton on ``h_n``; weights ``w_i = 1 / (n h_{n-1}(x_i)^2)`` computed overflow-free (tiny
    weights of outer nodes underflow to 0 for large n).  Cached per ``n``; arrays are read-only.
    """
    return _gauss_hermite_cached(_check_n(n, "number of Gauss-Hermite nodes"))


@functools.lru_cache(maxsize=16)
def _gauss_legendre_cached(p: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = legendre.leggauss(p)
    x = 0.5 * (x - x[::-1])
    w = 0.5 * (w + w[::-1])
    x.setflags(write=False)
    w.setflags(write=False)
    return x, w


def gauss_legendre(p: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre rule on [-1, 1]: ``int f = sum w_i f(x_i)``, exact to degree ``2p - 1``.

    Cached per ``p``; the arrays are read-only.
    """
    return _gauss_legendre_cached(_check_n(p, "number of Gauss-Legendre nodes"))


@numba.njit(cache=True)
def _graded_breakpoints(center, hmin, hmax, half_width, ratio):
    """Panel ends on [-L, L] (L = half_width) graded geometrically away from ``center``.

    Panels adjacent to ``center`` (clipped into [-L, L]) have width ``hmin``; each further
    panel is ``ratio`` times wider, up to ``hmax``; the outermost panels are cut at +-L.
    Returns the sorted breakpoints (first -L, last +L).
    """
    c = min(max(center, -half_width), half_width)
    hmin = min(hmin, hmax)
    # count panels on each side first (no Python lists in nopython mode)
    n_right = 0
    z = c
    h = hmin
    while z < half_width:
        z += h
        h = min(h * ratio, hmax)
        n_right += 1
    n_left = 0
    z = c
    h = hmin
    while z > -half_width:
        z -= h
        h = min(h * ratio, hmax)
        n_left += 1
    out = np.empty(n_left + n_right + 1)
    out[n_left] = c
    z = c
    h = hmin
    for i in range(n_right):
        z += h
        h = min(h * ratio, hmax)
        out[n_left + 1 + i] = min(z, half_width)
    z = c
    h = hmin
    for i in range(n_left):
        z -= h
        h = min(h * ratio, hmax)
        out[n_left - 1 - i] = max(z, -half_width)
    return out


def graded_breakpoints(
    center: float, hmin: float, hmax: float, half_width: float, ratio: float = 2.0
) -> np.ndarray:
    """Breakpoints of panels on ``[-L, L]`` graded geometrically towards ``center``.

    Panel widths are ``hmin, ratio*hmin, ratio^2*hmin, ...`` capped at ``hmax``, going outwards
    on both sides of ``center`` (clipped into ``[-L, L]``); the last panel on each side is cut at
    the interval end.  A function analytic in a strip of half-width ``d`` around the real axis,
    with its nearest singularity at ``center + i d``, is integrated by ``p``-point Gauss-Legendre on
    each panel with error ``O(rho^{-2p})``: for ``hmin = d`` and ``ratio = 2`` the singularity lies
    outside the Bernstein ellipse ``rho = 4.3`` of every panel.
    """
    if not (hmin > 0 and hmax > 0 and half_width > 0 and ratio >= 1.0):
        raise ConfigError("graded_breakpoints needs hmin > 0, hmax > 0, half_width > 0, ratio >= 1")
    args = (float(center), float(hmin), float(hmax), float(half_width), float(ratio))
    return _graded_breakpoints(*args)


def graded_gauss_legendre(
    center: float,
    hmin: float,
    hmax: float,
    half_width: float = 14.0,
    order: int = 16,
    ratio: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss-Legendre rule for ``int_{-L}^{L} f(z) dz`` on graded panels.

    ``order`` Gauss-Legendre nodes on each panel of :func:`graded_breakpoints` (widths
    ``hmin * ratio^j`` capped at ``hmax`` away from ``center``); returns nodes (ascending) and
    weights with ``int_{-L}^{L} f ~= sum_i w_i f(z_i)``.  For a Gaussian expectation
    ``E f(G) ~= sum_i w_i phi(z_i) f(z_i)``; the neglected tails are below
    ``sup|f| * 2 Phi(-L)`` (``< 1e-43`` at ``L = 14`` for bounded ``f``).
    """
    xg, wg = gauss_legendre(order)
    br = graded_breakpoints(center, hmin, hmax, half_width, ratio)
    mid = 0.5 * (br[1:] + br[:-1])
    half = 0.5 * (br[1:] - br[:-1])
    nodes = (mid[:, None] + half[:, None] * xg[None, :]).ravel()
    weights = (half[:, None] * wg[None, :]).ravel()
    return nodes, weights


# ----------------------------------------------------------------------------- Hermite


@numba.njit(cache=True)
def _sqrt_table(kmax):
    """``sq[k] = sqrt(k)`` for k = 0..kmax (at least 2 entries)."""
    sq = np.empty(max(kmax + 1, 2))
    for k in range(sq.size):
        sq[k] = math.sqrt(k)
    return sq


@numba.njit(cache=True)
def _inv_sqrt_table(kmax):
    """``isq[k] = 1 / sqrt(k)`` for k = 1..kmax (``isq[0] = 0``, at least 2 entries)."""
    isq = np.zeros(max(kmax + 1, 2))
    for k in range(1, isq.size):
        isq[k] = 1.0 / math.sqrt(k)
    return isq


@numba.njit(cache=True)
def _hermite_table(x, kmax):
    """``out[k, i] = h_k(x_i)``; ``h_k = (x h_{k-1} - sqrt(k-1) h_{k-2}) / sqrt(k)``."""
    n = x.size
    out = np.empty((kmax + 1, n))
    sq = _sqrt_table(kmax)
    isq = _inv_sqrt_table(kmax)
    for i in range(n):
        out[0, i] = 1.0
    if kmax >= 1:
        for i in range(n):
            out[1, i] = x[i]
    for k in range(2, kmax + 1):
        a = sq[k - 1]
        c = isq[k]
        for i in range(n):
            out[k, i] = (x[i] * out[k - 1, i] - a * out[k - 2, i]) * c
    return out


def hermite_normalized(x: np.ndarray, kmax: int) -> np.ndarray:
    """Normalised Hermite polynomials ``h_k(x) = He_k(x) / sqrt(k!)``, k = 0..kmax.

    Returns an array of shape ``(kmax + 1, *x.shape)``, computed by the stable recurrence
    ``h_0 = 1, h_1 = x, h_k = (x h_{k-1} - sqrt(k-1) h_{k-2}) / sqrt(k)``.

    Range: by Cramer's inequality ``|h_k(x)| <= 1.0865 exp(x^2/4)`` for every k, so all entries
    are finite for ``|x| <= 53`` whatever ``kmax`` (e.g. 20000).  This covers every x where
    ``phi(x) h_k(x)`` is representable (``|phi h_k| <= 0.434 exp(-x^2/4) < 1e-305`` beyond).
    For larger ``|x|`` entries of high degree can overflow to ``+-inf`` (and then ``nan``);
    use :func:`phi_hermite` for ``phi(x) h_k(x)``, which is finite for every x.
    """
    kmax = _check_kmax(kmax)
    xa = np.asarray(x, dtype=np.float64)
    out = _hermite_table(np.ascontiguousarray(xa).ravel(), kmax)
    return out.reshape((kmax + 1, *xa.shape))


@numba.njit(cache=True)
def _phi_hermite_add(x, scale, sq, isq, acc):
    """``acc[k] += scale * phi(x) * h_k(x)`` for k = 0..acc.size-1, overflow-free.

    The recurrence runs on ``g_k = exp(-x^2/4) h_k(x)`` (``|g_k| <= 1.0865`` by Cramer) and adds
    ``scale * g_k * exp(-x^2/4) / sqrt(2 pi)``.  Nothing is added for ``|x| > 50``
    (``PHI_HERMITE_CUTOFF``): the true terms are below ``0.434 exp(-625) |scale|``.
    ``sq``, ``isq`` are ``_sqrt_table(n)``, ``_inv_sqrt_table(n)`` with ``n >= acc.size - 1``.
    """
    kk = acc.size
    if abs(x) > 50.0 or scale == 0.0:
        return
    e = math.exp(-0.25 * x * x)  # >= exp(-625): a normal double
    f = scale * e * 0.3989422804014327  # 1/sqrt(2 pi)
    g0 = e
    acc[0] += f * g0
    if kk == 1:
        return
    g1 = x * e
    acc[1] += f * g1
    for k in range(2, kk):
        g2 = (x * g1 - sq[k - 1] * g0) * isq[k]
        acc[k] += f * g2
        g0 = g1
        g1 = g2


@numba.njit(cache=True)
def _phi_hermite_table(x, kmax):
    """``out[k, i] = phi(x_i) h_k(x_i)`` (see :func:`_phi_hermite_add`)."""
    n = x.size
    sq = _sqrt_table(kmax)
    isq = _inv_sqrt_table(kmax)
    row = np.empty(kmax + 1)
    out = np.empty((kmax + 1, n))
    for i in range(n):
        row[:] = 0.0
        _phi_hermite_add(x[i], 1.0, sq, isq, row)
        for k in range(kmax + 1):
            out[k, i] = row[k]
    return out


def phi_hermite(x: np.ndarray, kmax: int) -> np.ndarray:
    """Hermite functions for the Gaussian weight: ``phi(x) h_k(x)``, shape ``(kmax+1, *x.shape)``.

    Same recurrence as :func:`hermite_normalized`, run on ``exp(-x^2/4) h_k(x)`` (bounded by 1.0865
    for every k), so no entry overflows for any x and any kmax; entries for ``|x| > 50`` are 0
    (their true magnitude is below ``1e-271``).
    """
    kmax = _check_kmax(kmax)
    xa = np.asarray(x, dtype=np.float64)
    out = _phi_hermite_table(np.ascontiguousarray(xa).ravel(), kmax)
    return out.reshape((kmax + 1, *xa.shape))


# ----------------------------------------------------------------------------- sphere moments


def sphere_moments(m: int | float, jmax: int) -> np.ndarray:
    """Even moments ``mu_2j(m) = E c^{2j}``, j = 0..jmax, of one coordinate c of a uniform point
    on the sphere ``S^{m-1}`` (density of c proportional to ``(1 - c^2)^{(m-3)/2}``).

    ``mu_2j(m) = (2j-1)!! / prod_{i=0}^{j-1} (m + 2i)``, evaluated by the ratio recurrence
    ``mu_0 = 1, mu_2j = mu_{2j-2} (2j - 1) / (m + 2j - 2)`` (no overflow for any jmax; the
    sequence decreases to 0 and may underflow).  Valid for real ``m >= 2`` (the density formula
    with non-integer m); ``m = math.inf`` gives ``[1, 0, 0, ...]``.
    """
    if isinstance(m, bool) or not isinstance(m, numbers.Real) or not (m >= 2):
        raise ConfigError(f"sphere dimension m must be a real number >= 2 or math.inf, got {m!r}")
    if isinstance(jmax, bool) or not isinstance(jmax, numbers.Integral) or jmax < 0:
        raise ConfigError(f"jmax must be an integer >= 0, got {jmax!r}")
    mu = np.zeros(int(jmax) + 1)
    mu[0] = 1.0
    if math.isinf(m):
        return mu
    m = float(m)
    for j in range(1, int(jmax) + 1):
        mu[j] = mu[j - 1] * (2 * j - 1) / (m + 2 * j - 2)
    return mu

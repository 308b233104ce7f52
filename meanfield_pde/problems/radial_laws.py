"""Laws of r = |w| on a radial grid, as exact cell averages (the finite-volume initial states of
the problem "gaussians", reused by "single-neuron"), and the conservative remap between grids."""

from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["chi_law", "chi_quantile", "gaussian_law", "remap"]


def _cell_averages(edges: np.ndarray, cdf: np.ndarray, sf: np.ndarray) -> np.ndarray:
    """(F(e_{i+1}) − F(e_i))/h, differencing the CDF on the left and the survival function on the
    right of the median so that far tails keep their relative accuracy."""
    left = np.diff(cdf)
    right = -np.diff(sf)
    mid = 0.5 * (cdf[:-1] + cdf[1:])
    return np.where(mid < 0.5, left, right) / np.diff(edges)


def chi_law(edges: np.ndarray, kappa: float, dof: int) -> np.ndarray:
    """Cell averages of the law of r = (κ/√k) χ_k, i.e. |w| for w ~ N(0, κ²/k I_k):
    P(r <= x) = P(a, k x²/(2κ²)) with a = k/2 (regularised incomplete gamma)."""
    x = 0.5 * dof * (edges / kappa) ** 2  # (not κ²: it overflows for κ > 1e154)
    return _cell_averages(edges, special.gammainc(dof / 2, x), special.gammaincc(dof / 2, x))


def chi_quantile(p_upper: float, kappa: float, dof: int) -> float:
    """The r with P(r > x) = p_upper under (κ/√k) χ_k."""
    return float(kappa * np.sqrt(2.0 * special.gammainccinv(dof / 2, p_upper) / dof))


def gaussian_law(edges: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Cell averages of N(mean, std²) conditioned on r >= 0."""
    z = (edges - mean) / std
    z0 = -mean / std
    norm = special.ndtr(-z0)  # P(r >= 0)
    cdf = (special.ndtr(z) - special.ndtr(z0)) / norm
    sf = special.ndtr(-z) / norm
    return _cell_averages(edges, cdf, sf)


def remap(src_edges: np.ndarray, src_density: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Conservative remap of a piecewise-constant density: exact cell averages on ``edges``.

    Sums density × overlap length over the intervals of the union of both edge sets (no CDF
    differences, so far tails keep their relative accuracy); mass beyond ``src_edges`` is zero.
    """
    if src_edges.shape == edges.shape and np.array_equal(src_edges, edges):
        return src_density.copy()
    pts = np.union1d(src_edges, edges)
    pts = pts[(pts >= edges[0]) & (pts <= edges[-1])]
    mid, length = 0.5 * (pts[1:] + pts[:-1]), np.diff(pts)
    src = np.searchsorted(src_edges, mid) - 1
    inside = (src >= 0) & (src < src_density.size)
    out = np.zeros(edges.size - 1)
    np.add.at(out, np.searchsorted(edges, mid[inside]) - 1,
              src_density[src[inside]] * length[inside])
    return out / np.diff(edges)

"""Gauss rules, normalised Hermite polynomials and sphere moments against independent formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.polynomial import hermite_e
from roundoff import U
from scipy import integrate

from meanfield_pde.errors import ConfigError
from meanfield_pde.quadrature import (
    gauss_hermite,
    graded_breakpoints,
    graded_gauss_legendre,
    hermite_normalized,
    phi_hermite,
    sphere_moments,
)


def double_factorial(n: int) -> int:
    """n!! with (-1)!! = 0!! = 1."""
    return math.prod(range(n, 0, -2)) if n > 0 else 1


def gaussian_moment(p: int) -> float:
    """E G^p = (p-1)!! for even p, 0 for odd p."""
    return 0.0 if p % 2 else float(double_factorial(p - 1))


# ----------------------------------------------------------------------------- Gauss-Hermite


def gh_moment_bound(n: int, p: int, terms: np.ndarray) -> float:
    """Round-off bound for ``fsum(w * x**p)`` with the computed n-point Gauss-Hermite rule.

    Each term ``w_i x_i^p`` carries a relative error of at most
      * ``2p u`` from the nodes: Newton-polished and symmetrised, ``|dx_i| <= 2u |x_i|``, which
        the p-th power multiplies by p;
      * ``4n u`` from the weights ``exp(-x^2/2) / (n g_{n-1}^2)``: the n-step recurrence for
        ``g_{n-1}`` (bounded by Cramer, so no growth) costs ~n u, doubled by the square, and
        ``exp(-x^2/2)`` amplifies the rounding of its argument by ``x^2/2 <= 2n + 1``;
      * ``4u`` from ``x**p`` (any libm/SIMD pow is within a few ulps, but it need not be odd:
        ``(-x)**p == -(x**p)`` is NOT assumed) and ``u`` from the product ``w * x**p``;
    and ``math.fsum`` adds one correctly rounded ``u |sum|``.  Summing the absolute errors:
    ``|got - exact| <= u (2p + 4n + 6) sum_i |w_i x_i^p|``.  Observed errors reach ~25% of it
    (n = 10) on AVX-512 numpy, ~50% with ``x**p`` computed as ``exp(p log|x|)``; it fails if a
    single weight is off by 1e-12 relative or the nodes by 1e-13.
    """
    return U * (2 * p + 4 * n + 6) * math.fsum(np.abs(terms))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 10, 20, 40])
def test_gauss_hermite_exact_to_degree_2n_minus_1(n):
    x, w = gauss_hermite(n)
    assert x.shape == w.shape == (n,)
    assert np.all(np.diff(x) > 0) and np.all(w > 0)
    # exact by construction: gauss_hermite symmetrises x = 0.5 * (x - x[::-1])
    assert np.array_equal(x, -x[::-1]) and np.array_equal(w, w[::-1])
    for p in range(2 * n):
        exact = gaussian_moment(p)
        terms = w * x**p
        got = math.fsum(terms)
        assert abs(got - exact) <= gh_moment_bound(n, p, terms), (n, p, got, exact)
    # degree 2n is not integrated exactly: E G^{2n} - GH = E He_n(G)^2 = n! (the test is sharp:
    # the round-off bound stays below 1% of n!, 0.35% at n = 40)
    terms = w * x ** (2 * n)
    bound = gh_moment_bound(n, 2 * n, terms)
    assert bound < 1e-2 * math.factorial(n)
    assert abs(gaussian_moment(2 * n) - math.fsum(terms) - math.factorial(n)) <= bound


def test_gauss_hermite_cached_and_read_only():
    x1, w1 = gauss_hermite(17)
    x2, w2 = gauss_hermite(17)
    assert x1 is x2 and w1 is w2
    with pytest.raises(ValueError):
        x1[0] = 0.0


@pytest.mark.parametrize("n", [300, 1000])
def test_gauss_hermite_large_n(n):
    x, w = gauss_hermite(n)
    assert np.all(np.isfinite(x)) and np.all(np.isfinite(w)) and np.all(w >= 0)
    assert np.all(np.diff(x) > 0)
    # the round-off bound of the exactness test (4n u from the weights dominates: 1.3e-13 for
    # n = 300, 4.5e-13 for n = 1000; a fixed 1e-13 was below it)
    assert abs(math.fsum(w) - 1.0) <= gh_moment_bound(n, 0, w)
    for p in (2, 4, 8, 20):
        terms = w * x**p
        assert abs(math.fsum(terms) - gaussian_moment(p)) <= gh_moment_bound(n, p, terms)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "4"])
def test_gauss_hermite_rejects_bad_n(bad):
    with pytest.raises(ConfigError, match="integer >= 1"):
        gauss_hermite(bad)


# ----------------------------------------------------------------------------- Hermite polynomials


def test_hermite_orthonormal_under_gauss_hermite():
    x, w = gauss_hermite(40)
    h = hermite_normalized(x, 30)
    gram = (h * w) @ h.T
    # round-off: sum_i |w_i h_j h_k| <= 1 (Cauchy-Schwarz, sum_i w_i h_j^2 = 1), so per entry
    # u times: node error 2u|x| through (h_j h_k)' = sqrt(j) h_{j-1} h_k + sqrt(k) h_j h_{k-1},
    # i.e. 2 max|x| (sqrt j + sqrt k); recurrence errors <= k^2; weights 4n; matmul n; 8 roundings
    kmax, n = 30, 40
    tol = U * (4 * np.abs(x).max() * math.sqrt(kmax) + kmax**2 + 5 * n + 8)
    assert np.abs(gram - np.eye(31)).max() <= tol


def test_hermite_matches_numpy_hermite_e():
    x = np.linspace(-7.0, 7.0, 57)
    h = hermite_normalized(x, 30)
    for k in range(31):
        ref = hermite_e.hermeval(x, np.eye(31)[k]) / math.sqrt(math.factorial(k))
        assert np.allclose(h[k], ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max()), k


def test_hermite_shapes():
    assert hermite_normalized(0.3, 4).shape == (5,)
    assert hermite_normalized(np.zeros((2, 3)), 0).shape == (1, 2, 3)
    # correctly rounded IEEE operations only (sqrt, *, /): <= 2 roundings per recurrence step;
    # the odd ones are exactly 0 (0 * h_k)
    np.testing.assert_allclose(hermite_normalized(0.0, 4), [1, 0, -1 / math.sqrt(2), 0,
                                                            3 / math.sqrt(24)], rtol=8 * U, atol=0)
    with pytest.raises(ConfigError, match="kmax"):
        hermite_normalized(0.0, -1)


def test_hermite_large_kmax_no_overflow_and_cramer_bound():
    """kmax = 20000: finite for |x| <= 53 and |h_k(x)| exp(-x^2/4) <= 1.0865 (Cramer)."""
    x = np.array([0.0, 0.7, 3.0, 12.0, 38.0, 53.0, -53.0])
    h = hermite_normalized(x, 20000)
    assert np.all(np.isfinite(h))
    assert np.abs(h * np.exp(-(x**2) / 4)).max() <= 1.0865
    # the product with phi agrees with the overflow-free phi_hermite
    ph = phi_hermite(x, 20000)
    phi = np.exp(-(x**2) / 2) / math.sqrt(2 * math.pi)
    assert np.abs(ph - h * phi).max() <= 1e-13


def test_phi_hermite_finite_everywhere():
    x = np.array([-1e6, -400.0, -50.5, 0.0, 2.0, 50.5, 400.0, 1e300])
    ph = phi_hermite(x, 5000)
    assert np.all(np.isfinite(ph))
    assert np.all(ph[:, np.abs(x) > 50] == 0.0)
    xs = np.array([-3.0, 0.0, 2.0])
    phi = np.exp(-(xs**2) / 2) / math.sqrt(2 * math.pi)
    # np.exp vs numba's exp (2u each) and k = 40 recurrence steps of round-off u at the
    # Cramer scale |phi h_k| <= 0.434
    tol = (40 + 8) * U * 0.434
    assert np.abs(phi_hermite(xs, 40) - hermite_normalized(xs, 40) * phi).max() <= tol


# ------------------------------------------------------------------------ graded Gauss-Legendre


def test_graded_breakpoints_geometric():
    br = graded_breakpoints(0.3, 0.01, 1.0, 14.0, 2.0)
    assert br[0] == -14.0 and br[-1] == 14.0 and np.all(np.diff(br) > 0)
    i0 = int(np.flatnonzero(br == 0.3)[0])
    widths = np.diff(br[i0:])
    np.testing.assert_allclose(widths[:7], 0.01 * 2.0 ** np.arange(7), rtol=1e-12)
    assert widths[:-1].max() <= 1.0 + 1e-12
    with pytest.raises(ConfigError):
        graded_breakpoints(0.0, -1.0, 1.0, 14.0)


def test_graded_gauss_legendre_gaussian_expectations():
    """E tanh(20 G + 0.4)^2 and E G^4 against adaptive quadrature / exact values."""
    z, w = graded_gauss_legendre(-0.02, math.pi / 40, 1.0, 14.0, 16)
    assert abs(w.sum() - 28.0) < 1e-12
    phi = np.exp(-(z**2) / 2) / math.sqrt(2 * math.pi)
    assert abs(np.sum(w * phi * z**4) - 3.0) < 1e-13

    def f(g):
        return math.tanh(20 * g + 0.4) ** 2 * math.exp(-g * g / 2) / math.sqrt(2 * math.pi)

    pieces = [-14, -1, -0.2, -0.02, 0.2, 1, 14]
    ref = sum(integrate.quad(f, a, b, epsabs=1e-15, epsrel=1e-13, limit=200)[0]
              for a, b in zip(pieces[:-1], pieces[1:], strict=True))
    assert abs(np.sum(w * phi * np.tanh(20 * z + 0.4) ** 2) - ref) < 1e-14


# ----------------------------------------------------------------------------- sphere moments


def exact_sphere_moment(m: int, j: int) -> float:
    return double_factorial(2 * j - 1) / math.prod(m + 2 * i for i in range(j))


def quad_sphere_moment(m: float, j: int) -> float:
    """E c^{2j} for the density proportional to (1 - c^2)^a, a = (m - 3)/2, by adaptive quadrature.

    The algebraic weight ``(1 - c)^f (1 + c)^f`` (``weight='alg'``) takes the fractional part
    ``f`` of ``a`` (the endpoint singularity for m = 2); the integer part stays in the integrand.
    """
    a = (m - 3) / 2
    a_int = max(0, math.floor(a))
    a_frac = a - a_int

    def integrate_alg(f):
        return integrate.quad(f, -1, 1, weight="alg", wvar=(a_frac, a_frac), epsabs=0,
                              epsrel=1e-12, limit=200)[0]

    num = integrate_alg(lambda c: c ** (2 * j) * (1 - c * c) ** a_int)
    return num / integrate_alg(lambda c: (1 - c * c) ** a_int)


@pytest.mark.parametrize("m", [2, 3, 5, 40, 320])
def test_sphere_moments_exact_and_quadrature(m):
    jmax = 12
    mu = sphere_moments(m, jmax)
    assert mu.shape == (jmax + 1,)
    for j in range(jmax + 1):
        assert abs(mu[j] - exact_sphere_moment(m, j)) <= 1e-14 * exact_sphere_moment(m, j)
        q = quad_sphere_moment(m, j)
        assert abs(mu[j] - q) <= 1e-12 * q, (m, j, mu[j], q)


def test_sphere_moments_known_values_and_real_m():
    np.testing.assert_allclose(sphere_moments(2, 2), [1, 1 / 2, 3 / 8], rtol=1e-15)
    np.testing.assert_allclose(sphere_moments(3, 2), [1, 1 / 3, 1 / 5], rtol=1e-15)
    mu = sphere_moments(2.5, 6)
    for j in range(7):
        assert abs(mu[j] / quad_sphere_moment(2.5, j) - 1) < 1e-10
    # large jmax: no overflow, decreasing to 0
    mu = sphere_moments(40, 5000)
    assert np.all(np.isfinite(mu)) and np.all(np.diff(mu) <= 0)


def test_sphere_moments_infinite_dimension():
    np.testing.assert_array_equal(sphere_moments(math.inf, 4), [1, 0, 0, 0, 0])  # set exactly
    # and the finite-m moments tend to it
    assert sphere_moments(1e12, 3)[1:].max() < 1e-11


@pytest.mark.parametrize("m", [1.999, 1, 0, -3, math.nan, -math.inf, "40", True])
def test_sphere_moments_rejects_small_m(m):
    with pytest.raises(ConfigError, match=">= 2"):
        sphere_moments(m, 3)


def test_sphere_moments_rejects_bad_jmax():
    with pytest.raises(ConfigError, match="jmax"):
        sphere_moments(3, -1)

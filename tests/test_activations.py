"""Activations: registry, values, derivatives, Hermite coefficients against adaptive quadrature."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from roundoff import U
from scipy import integrate, special

from meanfield_pde.activations import (
    GH_MAX,
    available_activations,
    get_activation,
    hermite_plain_gh,
)
from meanfield_pde.errors import ConfigError
from meanfield_pde.quadrature import gauss_hermite

NAMES = ["ramp", "relu", "tanh", "erf", "sigmoid", "softplus"]
T_GRID = [1e-8, 1e-3, 0.1, 0.5, 1.0, 2.7, 5.0, 10.0, 20.0]
B_GRID = [-1.3, 0.4, 2.0]
T_WITH_B = [0.3, 1.0, 3.0]
KMAX = 30
TOL = 1e-10

# textbook definitions, independent of the package (ramp with the MMN18 defaults)
SIGMA = {
    "ramp": lambda u: np.clip(-2.5 + 10.0 * (u - 0.5), -2.5, 7.5),
    "relu": lambda u: np.maximum(u, 0.0),
    "tanh": np.tanh,
    "erf": special.erf,
    "sigmoid": special.expit,
    "softplus": lambda u: np.logaddexp(0.0, u),
}
KINKS = {"ramp": [0.5, 1.5], "relu": [0.0]}  # smooth ones: transition at u = 0


def breakpoints(name: str, t: float, b: float, half_width: float) -> list[float]:
    """Split points in z: the kinks (kappa - b)/t, or the transition -b/t and a few widths 1/t."""
    pts = []
    for kappa in KINKS.get(name, [0.0]):
        z0 = (kappa - b) / t
        for d in (0.0, 0.5, 1.0, 2.0, 4.0, 8.0):
            pts += [z0 - d / t, z0 + d / t]
    return sorted({p for p in pts if -half_width < p < half_width})


def reference_alpha(name: str, t: float, b: float, kmax: int, half_width: float = 16.0):
    """alpha_k = int sigma(b + t z) He_k(z) phi(z) dz / sqrt(k!) by adaptive Gauss-Kronrod
    (scipy quad_vec, all k at once) on pieces split at the kinks / transition point."""
    ks = np.arange(kmax + 1)
    log_norm = 0.5 * np.array([math.lgamma(k + 1.0) for k in ks])

    def integrand(z):
        h = special.eval_hermitenorm(ks, z) * np.exp(-0.5 * z * z - log_norm)
        return SIGMA[name](b + t * z) * h / math.sqrt(2 * math.pi)

    grid = [-half_width, *breakpoints(name, t, b, half_width), half_width]
    total = np.zeros(kmax + 1)
    for lo, hi in zip(grid[:-1], grid[1:], strict=True):
        total += integrate.quad_vec(integrand, lo, hi, epsabs=1e-15, epsrel=1e-14, limit=2000)[0]
    return total


def scalar_quad_alpha(name: str, t: float, b: float, k: int, half_width: float = 16.0) -> float:
    """One coefficient with scipy.integrate.quad (scalar, adaptive), split as above."""
    norm = math.sqrt(2 * math.pi * math.factorial(k))

    def integrand(z):
        return float(SIGMA[name](b + t * z)) * special.eval_hermitenorm(k, z) * math.exp(
            -0.5 * z * z) / norm

    grid = [-half_width, *breakpoints(name, t, b, half_width), half_width]
    return math.fsum(
        integrate.quad(integrand, lo, hi, epsabs=1e-13, epsrel=1e-12, limit=500)[0]
        for lo, hi in zip(grid[:-1], grid[1:], strict=True))


def max_error(name: str) -> float:
    act = get_activation(name)
    cases = [(t, 0.0) for t in T_GRID] + [(t, b) for b in B_GRID for t in T_WITH_B]
    t = np.array([c[0] for c in cases])
    b = np.array([c[1] for c in cases])
    got = act.hermite(t, KMAX, b)  # one vectorised call over all (t, b)
    ref = np.stack([reference_alpha(name, ti, bi, KMAX) for ti, bi in cases], axis=1)
    return float(np.abs(got - ref).max())


# ----------------------------------------------------------------------------- Hermite accuracy


@pytest.mark.parametrize("name", NAMES)
def test_hermite_matches_adaptive_quadrature(name):
    err = max_error(name)
    print(f"{name}: max |alpha_k - quad| over k <= {KMAX}, t and (t, b) grids = {err:.2e}")
    assert err <= TOL


@pytest.mark.parametrize("name", NAMES)
def test_hermite_spot_values_scalar_quad(name):
    act = get_activation(name)
    for t, b in [(1.0, 0.0), (20.0, 0.0), (1.0, 0.4)]:
        got = act.hermite(t, KMAX, b)
        for k in (0, 1, 2, 5, 30):
            ref = scalar_quad_alpha(name, t, b, k)
            assert abs(got[k] - ref) <= TOL, (name, t, b, k, got[k], ref)


def test_relu_closed_form_values():
    relu = get_activation("relu")
    t = 1.7
    a = relu.hermite(t, 4)
    c = 1 / math.sqrt(2 * math.pi)
    expected = [t * c, t / 2, t * c / math.sqrt(2), 0.0, -t * c / math.sqrt(24)]
    np.testing.assert_allclose(a, expected, rtol=1e-14, atol=1e-16)
    # with a bias: E relu(b + tZ) = b Phi(b/t) + t phi(b/t), E relu' = Phi(b/t)
    b = -0.6
    a = relu.hermite(t, 1, b)
    x = b / t
    phi_x = math.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    # numba's erfc vs scipy's ndtr (different libraries, each within a few ulps): per side
    # u (x = b/t, |x Phi'/Phi| < 1) + 4u (Phi, phi) + 3u (products, sum) on each term
    cdf = special.ndtr(x)
    assert abs(a[0] - (b * cdf + t * phi_x)) <= 16 * U * (abs(b) * cdf + t * phi_x)
    assert abs(a[1] - t * cdf) <= 12 * U * t * cdf


def test_erf_closed_form_values():
    erf = get_activation("erf")
    t, b = 0.8, 0.7
    a = erf.hermite(t, 1, b)
    s = 1 / math.sqrt(1 + 2 * t * t)
    # numba's erf/exp vs libm's (each within a few ulps): per side 4u for s, b s (|y erf'/erf| <= 1)
    # and 4u for erf; the derivative has 5 rounded factors and exp's argument error (4u) b^2 s^2
    ref1 = 2 / math.sqrt(math.pi) * t * s * math.exp(-b * b * s * s)
    assert abs(a[0] - math.erf(b * s)) <= 16 * U * abs(a[0])
    assert abs(a[1] - ref1) <= (20 + 8 * b * b * s * s) * U * abs(ref1)


def test_hermite_t_zero_negative_t_and_broadcasting():
    for name in NAMES:
        act = get_activation(name)
        a0 = act.hermite(0.0, 6, 0.9)
        # act.value vs the textbook sigma (other libraries/SIMD paths): each within 4 ulps
        assert a0[0] == pytest.approx(float(SIGMA[name](0.9)), rel=8 * U, abs=0.0)
        assert np.all(a0[1:] == 0.0)  # exact by construction: hermite sets alpha_k(0; b) = 0
        t = np.array([[0.4], [1.3], [6.0]])
        b = np.array([-0.5, 0.0, 0.3, 2.0])
        pos = act.hermite(t, 8, b)
        neg = act.hermite(-t, 8, b)
        assert pos.shape == neg.shape == (9, 3, 4)
        sign = (-1.0) ** np.arange(9)
        # exact by construction: hermite(-t) runs the same kernel on the same |t| and flips signs
        np.testing.assert_array_equal(neg, sign[:, None, None] * pos)
        # entry-by-entry equals the scalar calls: a batch may take another BLAS kernel (gemm vs
        # gemv) and SIMD path, so allow twice the round-off of sum_j w_j h_k(x_j) sigma(b + t x_j)
        # over <= GH_MAX nodes, bounded by (GH_MAX + kmax + 8) u sqrt(E sigma^2) (Cauchy-Schwarz,
        # sum_j w_j h_k(x_j)^2 = 1); a wrong entry would be off by >= 1e-3
        xg, wg = gauss_hermite(GH_MAX)
        rms = math.sqrt(math.fsum(wg * act.value(0.3 + 1.3 * xg) ** 2))
        tol = 2 * (GH_MAX + 8 + 8) * U * rms
        assert np.abs(pos[:, 1, 2] - act.hermite(1.3, 8, 0.3)).max() <= tol


def test_plain_gauss_hermite_fails_on_the_kink():
    """200-node Gauss-Hermite on the ramp at t = 1 misses 1e-10: the closed form is needed."""
    ramp = get_activation("ramp")
    exact = ramp.hermite(1.0, KMAX)
    plain = hermite_plain_gh(ramp, 1.0, KMAX, 200)
    assert plain.shape == exact.shape
    err = np.abs(plain - exact).max()
    print(f"plain GH (200 nodes) on the ramp at t = 1: max error {err:.2e}")
    assert err > 1e-10
    # more nodes do not fix it (algebraic, non-monotone convergence); outer nodes stay finite
    plain = hermite_plain_gh(ramp, 1.0, KMAX, 1500)
    assert np.all(np.isfinite(plain)) and np.abs(plain - exact).max() > 1e-6
    # ... while on a smooth activation at moderate t it is spectrally accurate
    tanh = get_activation("tanh")
    assert np.abs(hermite_plain_gh(tanh, 0.5, KMAX, 200) - tanh.hermite(0.5, KMAX)).max() < 1e-13


def test_ramp_large_kmax_parseval():
    """kmax = 4000: finite, and sum_k alpha_k^2 = E sigma(tZ)^2 up to the tail bound.

    Tail bound (Cramer): |phi h_j| <= 0.434 exp(-x^2/4) gives |alpha_k| <= B / sqrt(k(k-1)) with
    B = 0.434 t sum_m |D_m| exp(-x_m^2/4), so sum_{k>K} alpha_k^2 <= B^2 / K.  The true tail
    decays like K^{-3/2}: the deficit at K = 1000 is ~8 times the deficit at K = 4000.
    """
    ramp = get_activation("ramp")
    kmax = 4000
    for t in (0.5, 1.0, 3.0):
        a = ramp.hermite(t, kmax)
        assert np.all(np.isfinite(a))

        def second_moment(z, t=t):
            return float(SIGMA["ramp"](t * z)) ** 2 * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)

        pieces = [-40.0, 0.5 / t, 1.5 / t, 40.0]
        e2 = math.fsum(integrate.quad(second_moment, lo, hi, epsabs=1e-14, epsrel=1e-13)[0]
                       for lo, hi in zip(pieces[:-1], pieces[1:], strict=True))
        deficit = e2 - math.fsum(a**2)
        slope = 10.0
        bound = (0.434 * t * slope * (math.exp(-(0.5 / t) ** 2 / 4)
                                      + math.exp(-(1.5 / t) ** 2 / 4))) ** 2 / kmax
        assert -1e-12 <= deficit <= bound, (t, deficit, bound)
        deficit_1000 = e2 - math.fsum(a[:1001] ** 2)
        assert 4.0 < deficit_1000 / deficit < 16.0, (t, deficit_1000, deficit)


def test_hermite_vectorised_over_many_t():
    t = np.linspace(0.0, 20.0, 10_000)
    for name in NAMES:
        a = get_activation(name).hermite(t, KMAX)
        assert a.shape == (KMAX + 1, t.size)
        assert np.all(np.isfinite(a))
    a = get_activation("ramp").hermite(t, 500, 0.3)
    assert a.shape == (501, t.size) and np.all(np.isfinite(a))


# ----------------------------------------------------------------------------- value / derivative


@pytest.mark.parametrize("name", NAMES)
def test_value_and_derivative(name):
    act = get_activation(name)
    x = np.linspace(-6.0, 6.0, 241) + 1e-3 * np.pi  # away from the kinks
    np.testing.assert_allclose(act.value(x), SIGMA[name](x), rtol=1e-14, atol=1e-14)
    h = 1e-6
    fd = (act.value(x + h) - act.value(x - h)) / (2 * h)
    # central difference: truncation h^2/6 max|σ'''| (<= 2.3 for every activation here: erf's
    # 2/√π |4x² − 2| exp(−x²) is the largest; 0 on linear pieces) plus round-off: σ(x ± h) is
    # evaluated to 4u|σ| and its argument rounded (u|x| |σ'|), both divided by 2h, twice
    fp = act.derivative(x)
    bound = h * h / 6 * 2.3 + U * (4 * np.abs(act.value(x)) + np.abs(x * fp)) / h
    assert np.all(np.abs(fp - fd) <= bound)  # observed: at most 0.37 of it
    big = np.array([-800.0, 800.0])  # no overflow warnings (they are errors under pytest)
    assert np.all(np.isfinite(act.derivative(big)))
    assert np.all(np.isfinite(act.value(big)))


def test_derivative_at_kinks_is_mean_of_one_sided_slopes():
    ramp = get_activation("ramp")
    np.testing.assert_allclose(ramp.derivative(np.array([0.5, 1.0, 1.5, 2.0])), [5, 10, 5, 0])
    assert get_activation("relu").derivative(0.0) == 0.5  # a convention, set exactly


# ----------------------------------------------------------------------------- registry


def test_registry_names_params_bounded():
    assert sorted(available_activations()) == sorted(NAMES)
    bounded = {n: get_activation(n).bounded for n in NAMES}
    assert bounded == {"ramp": True, "relu": False, "tanh": True, "erf": True,
                       "sigmoid": True, "softplus": False}
    ramp = get_activation("ramp")
    assert ramp.name == "ramp"
    assert ramp.params == {"s1": -2.5, "s2": 7.5, "t1": 0.5, "t2": 1.5}
    json.dumps(ramp.params)
    custom = get_activation("ramp", {"s2": 1, "t2": 3})
    assert custom.params == {"s1": -2.5, "s2": 1.0, "t1": 0.5, "t2": 3.0}
    assert all(type(v) is float for v in custom.params.values())
    # exact: interpolation between dyadic points at a dyadic x, every operation exact
    assert custom.value(np.array([-1.0, 1.75, 9.0])).tolist() == [-2.5, -0.75, 1.0]
    assert get_activation("tanh").params == {}


def test_unknown_name_lists_known_names():
    with pytest.raises(ConfigError) as info:
        get_activation("gelu")
    msg = str(info.value)
    assert "gelu" in msg and all(n in msg for n in NAMES) and "\n" not in msg


def test_unknown_parameter_lists_accepted():
    with pytest.raises(ConfigError) as info:
        get_activation("ramp", {"slope": 2.0})
    msg = str(info.value)
    assert "slope" in msg and all(p in msg for p in ("s1", "s2", "t1", "t2"))
    with pytest.raises(ConfigError, match="accepted: none"):
        get_activation("relu", {"alpha": 0.1})


@pytest.mark.parametrize(
    "params, words",
    [
        ({"t1": 1.5, "t2": 1.5}, ["t1 < t2"]),
        ({"t1": 2.0}, ["t1 < t2"]),
        ({"s1": math.inf}, ["s1", "finite"]),
        ({"t2": math.nan}, ["t2", "finite"]),
        ({"s2": "7.5"}, ["s2", "number"]),
        ({"s2": True}, ["s2", "number"]),
        ({"s2": 1e308, "s1": -1e308}, ["slope", "finite"]),
    ],
)
def test_invalid_parameter_values(params, words):
    with pytest.raises(ConfigError) as info:
        get_activation("ramp", params)
    assert all(w in str(info.value) for w in words)


def test_hermite_rejects_bad_arguments():
    act = get_activation("tanh")
    with pytest.raises(ConfigError, match="kmax"):
        act.hermite(1.0, -1)
    with pytest.raises(ConfigError, match="finite"):
        act.hermite(np.array([1.0, np.inf]), 3)

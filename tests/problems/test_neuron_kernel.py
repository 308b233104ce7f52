"""The reduced potential of the single-neuron problem (MATH.md §3) against brute force."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest
from brute_neuron import X300, r_sharp_brute, u_brute, v_brute, v_tanh_tensor
from roundoff import U

from meanfield_pde.activations import get_activation
from meanfield_pde.errors import ConfigError
from meanfield_pde.problems.neuron_kernel import (
    _hermite_coeffs,
    interaction_U,
    neuron_kernel,
    potential_V,
    r_sharp,
)

TANH = get_activation("tanh")
RELU = get_activation("relu")
S = np.array([-0.7, 0.1, 0.9])
R = np.array([0.2, 0.6, 1.0])
R_RELU = np.array([0.3, 0.6, 1.0])
PAIRS = [(0, 0), (0, 4), (2, 6), (4, 8), (8, 8), (3, 7), (1, 5), (6, 2)]  # flat indices i*3 + k


def _points(s, r):
    return list(itertools.product(s, r))


@pytest.fixture(scope="module", params=[3, 10, 100, math.inf], ids=lambda d: f"d={d}")
def tanh_case(request):
    d = request.param
    return d, neuron_kernel(TANH, TANH, 0.0, d, S, R)


# ------------------------------------------------------------------------------ V
def test_v_tanh_matches_two_dimensional_quadrature():
    """v(s, r) = E[tanh(G1) tanh(s G1 + r Z)] on the 3 × 3 points: point-wise, on the grid, and
    against two independent rules (rotated pair and plain tensor Gauss–Hermite)."""
    k = neuron_kernel(TANH, TANH, 0.0, 30, S, R)
    for i, k_ in itertools.product(range(3), range(3)):
        s, r = S[i], R[k_]
        ref = v_tanh_tensor(s, r)
        # two 114 x 114-node rules through BLAS (W @ vals @ W), |tanh tanh| <= 1: each within
        # (2n + 8) u of its exact sum (tanh and products a few ulps, two length-n sums)
        assert abs(v_brute("tanh", s, r) - ref) <= 2 * (2 * X300.size + 8) * U
        assert abs(potential_V(TANH, TANH, s, r) - ref) <= 1e-13
        assert abs(k.v[i, k_] - ref) <= 1e-13


@pytest.mark.parametrize("s", [-1.5, -0.4, 0.3, 1.0, 1.5])
@pytest.mark.parametrize("r", [0.0, 1e-9, 1e-4, 0.005])
def test_v_accurate_as_r_goes_to_zero(s, r):
    """Near r = 0 the G1 integrand has a transition of width r/|s| (a kink for relu); v is
    computed by the Mehler series (tanh) or kink-aware quadrature (relu), not a G1 rule."""
    assert abs(potential_V(TANH, TANH, s, r) - v_brute("tanh", s, r)) <= 1e-13
    assert abs(potential_V(RELU, RELU, s, r) - v_brute("relu", s, r)) <= 1e-13


def test_v_on_the_grid_reaches_r_near_zero():
    s = np.linspace(-1.5, 1.5, 7)
    r = np.array([1e-6, 0.003, 0.5])
    k = neuron_kernel(RELU, RELU, 0.0, math.inf, s, r, max_nodes=40)
    ref = np.array([[v_brute("relu", a, b) for b in r] for a in s])
    assert np.max(np.abs(k.v - ref)) <= 1e-13


def test_r_sharp():
    assert r_sharp(TANH) == pytest.approx(r_sharp_brute("tanh"), abs=1e-14)
    assert r_sharp(RELU, 0.3) == pytest.approx(0.5 + 0.3, abs=1e-14)  # 0.3 is the variance ν²


# ------------------------------------------------------------------------------ U and Ψ
def test_u_tanh_matches_brute_force(tanh_case):
    """U(z, z')/(a a') from the separable form vs ∫ p_d(c) E[σ(ϱA) σ(ϱ'B)] dc (no series)."""
    d, k = tanh_case
    assert k.converged
    pts = _points(S, R)
    errs = [abs(k.u(p, q) - u_brute("tanh", d, (1, *pts[p]), (1, *pts[q]))) for p, q in PAIRS]
    assert max(errs) <= 1e-11
    # the point-wise function with output weights
    z1, z2 = (0.7, *pts[1]), (-1.3, *pts[8])
    assert interaction_U(TANH, d, z1, z2) == pytest.approx(
        -0.91 * u_brute("tanh", d, (1, *pts[1]), (1, *pts[8])), abs=1e-11)


def test_psi_for_point_masses(tanh_case):
    """Ψ(z; ρ) = V(z) + Σ_p w_p U(z, z_p) for ρ = Σ_p w_p δ_{z_p}, through phi (A = Σ w_p a_p at the
    cells of the z_p, cell_volume = 1)."""
    d, k = tanh_case
    pts = _points(S, R)
    masses = [(0.5, 1.2, 2), (0.3, -0.8, 4), (0.2, 2.0, 6)]  # (w_p, a_p, flat index)
    A = np.zeros((3, 3))
    for w, a, p in masses:
        A[p // 3, p % 3] += w * a
    phi = k.phi(A, 1.0)
    assert phi.shape == (3, 3)
    a = 1.7
    for p in (0, 5, 7):
        s, r = pts[p]
        ref = -a * v_brute("tanh", s, r) + sum(
            w * u_brute("tanh", d, (a, s, r), (ap, *pts[q])) for w, ap, q in masses)
        assert abs(a * phi[p // 3, p % 3] - ref) <= 1e-11


def test_phi_is_the_low_rank_sum():
    """phi = −v + h_s h_r Σ_{p'} u(p, p') A_{p'} with the kernel matrix of the features."""
    s, r = np.linspace(-1, 1, 5), np.linspace(0.1, 1.1, 4)
    k = neuron_kernel(TANH, TANH, 0.0, 10, s, r)
    rng = np.random.default_rng(0)
    A = rng.normal(size=(5, 4))
    umat = k.u(np.arange(20)[:, None], np.arange(20)[None, :])
    ref = -k.v + (umat @ A.ravel() * 0.06).reshape(5, 4)
    # the same sums over K features in two orders (moments then features vs the u matrix):
    # <= 2 (K + 24) u times the sum of |terms|
    uabs = (np.abs(k.feats).T * np.abs(k.weights)) @ np.abs(k.feats)
    scale = np.abs(k.v) + 0.06 * (uabs @ np.abs(A.ravel())).reshape(5, 4)
    assert np.all(np.abs(k.phi(A, 0.06) - ref) <= 2 * (k.weights.size + 24) * U * scale)
    assert k.feats.flags.c_contiguous and k.feats.shape == (k.weights.size, 20)


def test_relu_kernel_at_r_at_least_0_3():
    """Kinked σ = f_* = relu, d = 100: V and U against the arc-cosine kernel; the G1 rule
    converges here (|s|/r <= 3)."""
    k = neuron_kernel(RELU, RELU, 0.0, 100, S, R_RELU)
    assert k.converged and k.truncation_error <= 3e-12
    pts = _points(S, R_RELU)
    errs = [abs(k.u(p, q) - u_brute("relu", 100, (1, *pts[p]), (1, *pts[q]))) for p, q in PAIRS]
    assert max(errs) <= 1e-12
    ref_v = np.array([v_brute("relu", s, r) for s, r in pts]).reshape(3, 3)
    assert np.max(np.abs(k.v - ref_v)) <= 1e-14


# ------------------------------------------------------------------------------ risk
def test_risk_vanishes_when_the_student_is_the_teacher():
    """ρ = δ at z = (1, 1, 0), σ = f_* = tanh, ν = 0: R = E(f − σ)² = 0."""
    k = neuron_kernel(TANH, TANH, 0.0, 30, np.array([1.0]), np.array([1e-9]))
    rho = np.ones((1, 1, 1))
    assert abs(k.risk(rho, np.array([1.0]), 1.0, 1.0, 1.0)) <= 1e-12
    z = (1.0, 1.0, 0.0)
    point = r_sharp(TANH) - 2.0 * potential_V(TANH, TANH, 1.0, 0.0) + interaction_U(TANH, 30, z, z)
    assert abs(point) <= 1e-12


@pytest.mark.parametrize("d", [10, math.inf])
def test_risk_of_a_point_mass(d):
    """R(δ_z) = R# + 2V(z) + U(z, z) through risk(), with label noise, against brute force."""
    nu = 0.3
    k = neuron_kernel(TANH, TANH, nu, d, S, R)
    a = -0.8
    for i, j in [(0, 1), (2, 2), (1, 0)]:
        rho = np.zeros((2, 3, 3))
        rho[1, i, j] = 1.0 / 0.5  # unit mass in a cell of volume h_a h_s h_r = 0.5
        z = (a, S[i], R[j])
        ref = r_sharp_brute("tanh", nu) - 2 * a * v_brute("tanh", S[i], R[j]) + u_brute(
            "tanh", d, z, z)
        assert abs(k.risk(rho, np.array([0.4, a]), 0.5, 1.0, 1.0) - ref) <= 1e-11


def test_risk_of_a_spread_density_is_the_double_sum():
    s, r, a = np.linspace(-1.2, 1.2, 6), np.linspace(0.1, 1.0, 4), np.array([-1.0, 0.5, 2.0])
    h_a, h_s, h_r = 0.7, 0.4, 0.3
    k = neuron_kernel(TANH, TANH, 0.1, 30, s, r)
    rho = np.random.default_rng(1).random((3, 6, 4))
    A = h_a * np.tensordot(a, rho, axes=(0, 0)).ravel()
    umat = k.u(np.arange(24)[:, None], np.arange(24)[None, :])
    ref = k.r_sharp - 2 * h_s * h_r * A @ k.v.ravel() + (h_s * h_r) ** 2 * A @ umat @ A
    assert k.risk(rho, a, h_a, h_s, h_r) == pytest.approx(ref, rel=1e-13, abs=1e-13)


# ------------------------------------------------------------------------------ rules
def test_rules_report_convergence_and_d_inf_keeps_one_term():
    k = neuron_kernel(TANH, TANH, 0.0, math.inf, S, R)
    assert k.n_terms == 1 and k.series_error == 0.0 and k.converged
    assert set(k.rows[:, 0]) == {0}
    terms = [neuron_kernel(TANH, TANH, 0.0, d, S, R).n_terms for d in (300, 30, 3)]
    assert 1 < terms[0] < terms[1] < terms[2] < 512
    k3 = neuron_kernel(TANH, TANH, 0.0, 3, S, R)
    assert k3.converged and k3.series_error <= 1e-12 and k3.node_error <= 1e-12
    assert k3.truncation_error <= 3e-12


def test_odd_sigma_stores_only_odd_parts_at_the_nodes():
    """For odd σ the features are m_2j(s, r; g_ℓ) themselves (checked against Activation.hermite)
    at nodes g_ℓ >= 0 with weight 2 μ_2j(d−1) ω_ℓ."""
    k = neuron_kernel(TANH, TANH, 0.0, 10, S, R)
    assert np.all(k.rows[:, 2] == 1) and np.all(k.rows[:, 1] > 0)
    for q in range(0, k.rows.shape[0], 7):
        j, g = int(k.rows[q, 0]), k.rows[q, 1]
        ref = np.array([TANH.hermite(r, 2 * j, s * g)[2 * j] for s, r in _points(S, R)])
        assert np.max(np.abs(k.feats[q] - ref)) <= 2e-14


def test_caps_are_reported():
    k = neuron_kernel(TANH, TANH, 0.0, 30, np.array([-1.5, 1.5]), np.array([0.01]), max_nodes=40)
    assert not k.nodes_converged and not k.converged and k.n_nodes == 40
    assert k.node_error > 1e-12 and k.truncation_error >= k.node_error
    k = neuron_kernel(RELU, RELU, 0.0, 3, S, R_RELU, max_terms=20, max_nodes=64)
    assert not k.series_converged and not k.converged and k.n_terms == 20
    assert k.series_error > 1e-12


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "softplus"])
def test_feature_quadrature_matches_activation_hermite(name):
    """The Gauss–Hermite rule in Z used for smooth σ vs the activation's own accurate rule."""
    act = get_activation(name)
    b = np.linspace(-15, 15, 61)
    for t, kmax in [(0.0, 6), (1e-3, 10), (0.3, 40), (1.2, 30), (2.0, 100), (3.0, 60)]:
        ref = act.hermite(t, kmax, b)
        got = _hermite_coeffs(act, t, b, kmax)
        assert np.max(np.abs(got - ref)) <= 2e-14 * (1 + np.max(np.abs(ref)))


def test_default_grid_builds_quickly():
    """σ = f_* = tanh, d = 30, 64 × 64 cells on [−1.5, 1.5] × (0, 1.2]."""
    s = np.linspace(-1.5, 1.5, 65)
    r = np.linspace(0.0, 1.2, 65)
    s, r = 0.5 * (s[1:] + s[:-1]), 0.5 * (r[1:] + r[:-1])
    t0 = time.process_time()
    k = neuron_kernel(TANH, TANH, 0.0, 30, s, r)
    assert time.process_time() - t0 < 20.0  # about 0.6 s of CPU on one core
    assert k.converged and k.feats.shape[1] == 64 * 64 and k.feats.shape[0] < 1000
    assert k.v.shape == (64, 64) and np.all(np.isfinite(k.feats))


def test_invalid_input():
    with pytest.raises(ConfigError):
        neuron_kernel(TANH, TANH, 0.0, 2, S, R)
    with pytest.raises(ConfigError):
        neuron_kernel(TANH, TANH, 0.0, 10.5, S, R)
    with pytest.raises(ConfigError):
        neuron_kernel(TANH, TANH, 0.0, 10, S, np.array([-0.1, 0.2]))
    with pytest.raises(ConfigError):
        r_sharp(TANH, -1.0)

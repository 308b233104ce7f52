"""3-D finite volumes on the (a, s, r) grid (meanfield_pde.fv.stepper3d).

Agreement with the numpy reference, serial = parallel bit for bit, conservation, positivity, exact
landing, status codes, semi-discrete and fully discrete energy dissipation, second order against an
exact solution, and the drift of a concentrated blob.

Exact solution used twice: with Q = 0 and φ0 = b0 + b_s s + b_r r the velocity
v(z) = −2ξ(φ0(s, r), a b_s, a b_r) = B z + e is affine with tr B = 0, so the flow map
z ↦ E z + d (E = exp(tB), [E d; 0 1] = exp(t [B e; 0 0])) carries N(m, Σ) to N(E m + d, E Σ Eᵀ),
and the mean of any law moves exactly as m(t) = E m(0) + d.
"""

import numpy as np
import pytest
from helpers import cell_centres
from scipy.linalg import expm

from meanfield_pde.fv import stepper3d as S
from meanfield_pde.fv.bundles import Grid3, Kernel3, Xi
from meanfield_pde.schedule import CONSTANT, PIECEWISE

XI = 0.7
CONST = np.array([XI])


def _random_problem(rng, shape=(10, 12, 14), q=6):
    """Rough data: random ρ >= 0 with zeros, random φ0, features and weights of both signs."""
    na, ns, nr = shape
    a_c, h_a = cell_centres(-1.1, 1.9, na)  # a changes sign
    _, h_s = cell_centres(-1.0, 1.4, ns)
    _, h_r = cell_centres(0.0, 2.1, nr)
    rho = rng.random(shape)
    rho[rng.random(shape) < 0.15] = 0.0  # zeros and kinks stress the limiter
    phi0 = rng.standard_normal((ns, nr))
    feats = rng.standard_normal((q, ns * nr))
    w = rng.standard_normal(q)
    return rho, a_c, h_a, h_s, h_r, phi0, feats, w


def _smooth_problem(shape=(12, 14, 10), q=9, seed=5):
    """A Gaussian blob, smooth φ0 and cosine features with w >= 0 (convex risk)."""
    rng = np.random.default_rng(seed)
    na, ns, nr = shape
    a_c, h_a = cell_centres(-1.0, 2.0, na)
    s_c, h_s = cell_centres(-1.4, 1.4, ns)
    r_c, h_r = cell_centres(0.0, 2.2, nr)
    a, s, r = np.meshgrid(a_c, s_c, r_c, indexing="ij")
    rho = np.exp(-((a - 0.3) ** 2 / 0.4 + (s - 0.2) ** 2 / 0.3 + (r - 1.0) ** 2 / 0.3))
    rho /= rho.sum() * h_a * h_s * h_r
    phi0 = np.sin(2 * s_c[:, None]) * np.cos(1.5 * r_c[None, :]) + 0.3 * s_c[:, None]
    arg = np.add.outer(s_c, 2 * r_c).ravel()
    feats = np.ascontiguousarray(np.cos(0.5 * np.outer(np.arange(q), arg)))
    w = 0.5 * rng.random(q)
    return rho, a_c, h_a, h_s, h_r, phi0, feats, w


def _tables(rho, a_c, h_a, h_s, h_r, phi0, feats, w):
    """(Grid3, Kernel3) bundles (the transport reads no s or r centres: placeholders)."""
    del rho  # shapes from φ0 (callers may pass None)
    ns, nr = np.shape(phi0)
    return (Grid3.make(a_c, np.zeros(ns), np.zeros(nr), h_a, h_s, h_r),
            Kernel3.make(phi0, feats, w))


def _rhs(fn, rho, a_c, h_a, h_s, h_r, phi0, feats, w, theta=2.0, params=CONST):
    na, ns, nr = rho.shape
    A, M, phi, out = np.empty((ns, nr)), np.empty(len(w)), np.empty((ns, nr)), np.empty(rho.shape)
    grid, kern = _tables(rho, a_c, h_a, h_s, h_r, phi0, feats, w)
    rate = fn(rho, 0.3, grid, kern, Xi.make(CONSTANT, params), theta, A, M, phi, out)
    return rate, out, phi, M, A


def _numpy_rhs(rho, a_c, h_a, h_s, h_r, phi0, feats, w, xi, theta):
    grid, kern = _tables(rho, a_c, h_a, h_s, h_r, phi0, feats, w)
    return S.rhs3d_numpy(rho, grid, kern, xi, theta)


def _advance(rho, t, t_stop, prob, work, *, parallel=False, max_steps=10**6, kind=CONSTANT,
             params=CONST, cfl=0.4, theta=2.0):
    grid, kern = _tables(*prob)
    return S.advance3d(rho, t, t_stop, max_steps, grid, kern, Xi.make(kind, params), cfl, theta,
                       work, parallel=parallel)


def _mass(rho, prob):
    return rho.sum() * prob[2] * prob[3] * prob[4]


# ---------------------------------------------------------------------------------------------
# right-hand side
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(10, 12, 14), (2, 3, 1), (1, 5, 6)])
@pytest.mark.parametrize("theta", [1.0, 1.5, 2.0])
def test_rhs_matches_numpy_reference(shape, theta):
    rng = np.random.default_rng(0)
    rho, a_c, h_a, h_s, h_r, phi0, feats, w = _random_problem(rng, shape)
    rate, out, phi, M, _ = _rhs(S.rhs3d, rho, a_c, h_a, h_s, h_r, phi0, feats, w, theta)
    # the potential on its own (its differences over h would amplify round-off in the rhs)
    phi_np, M_np = S.potential3d(rho, a_c, h_a, h_s, h_r, phi0, feats, w)
    assert np.max(np.abs(M - M_np)) <= 1e-12 * np.max(np.abs(M_np))
    assert np.max(np.abs(phi - phi_np)) <= 1e-12 * np.max(np.abs(phi_np))
    # the fluxes, for the same φ (handed to numpy as φ0 with no features)
    ref = _numpy_rhs(rho, a_c, h_a, h_s, h_r, phi, feats[:0], w[:0], XI, theta)
    assert np.max(np.abs(out - ref)) <= 1e-12 * max(np.max(np.abs(ref)), 1e-300)
    # CFL rate = Σ_axes max|u|/h over the interior faces
    c = 2 * XI
    ua = np.broadcast_to(c * phi, (shape[0] - 1, *phi.shape))
    us = c * a_c[:, None, None] * np.diff(phi, axis=0)[None] / h_s
    ur = c * a_c[:, None, None] * np.diff(phi, axis=1)[None] / h_r
    expect = sum(np.max(np.abs(u), initial=0.0) / h
                 for u, h in ((ua, h_a), (us, h_s), (ur, h_r)))
    assert rate == pytest.approx(expect, rel=1e-14)
    # the fluxes telescope
    assert abs(out.sum()) <= 1e-13 * np.abs(out).sum() + 1e-300


def test_rhs_without_features_and_nonfinite_rate():
    rng = np.random.default_rng(1)
    rho, a_c, h_a, h_s, h_r, phi0, feats, w = _random_problem(rng, q=0)
    rate, out, phi, _, _ = _rhs(S.rhs3d, rho, a_c, h_a, h_s, h_r, phi0, feats, w)
    assert np.array_equal(phi, phi0) and np.isfinite(rate)  # Q = 0: φ is φ0 copied (exact)
    ref = _numpy_rhs(rho, a_c, h_a, h_s, h_r, phi0, feats, w, XI, 2.0)
    assert np.max(np.abs(out - ref)) <= 1e-12 * np.max(np.abs(ref))
    rho[3, 4, 5] = np.nan  # does not reach φ when Q = 0, but must still be reported
    assert np.isnan(_rhs(S.rhs3d, rho, a_c, h_a, h_s, h_r, phi0, feats, w)[0])
    assert np.isnan(_rhs(S.rhs3d_parallel, rho, a_c, h_a, h_s, h_r, phi0, feats, w)[0])


def test_parallel_rhs_is_bit_identical_to_serial():
    rng = np.random.default_rng(2)
    prob = _random_problem(rng, (17, 20, 23), q=11)
    ser = _rhs(S.rhs3d, *prob)
    par = _rhs(S.rhs3d_parallel, *prob)
    assert ser[0] == par[0]
    for x, y in zip(ser[1:], par[1:], strict=True):
        assert np.array_equal(x, y)  # out, φ, M, A: the same summation order everywhere


# ---------------------------------------------------------------------------------------------
# time stepping
# ---------------------------------------------------------------------------------------------

def test_parallel_advance_is_bit_identical_to_serial():
    prob = _smooth_problem()
    rho = prob[0]
    work = S.make_work(*rho.shape, len(prob[7]))
    r1, r2 = rho.copy(), rho.copy()
    o1 = _advance(r1, 0.0, 0.2, prob, work, parallel=False)
    o2 = _advance(r2, 0.0, 0.2, prob, work, parallel=True)
    assert o1 == o2 and o1[1] > 20
    assert np.array_equal(r1, r2)  # the same summation order in both kernels (by construction)


@pytest.mark.parametrize("parallel", [False, True])
def test_run_conserves_mass_stays_positive_and_lands_exactly(parallel):
    prob = _smooth_problem()
    rho = prob[0].copy()
    work = S.make_work(*rho.shape, len(prob[7]))
    m0 = _mass(rho, prob)
    t, steps = 0.0, 0
    for t_stop in [0.05, 0.1, 1.0 / 7.0, 0.3, 0.6]:
        t, n, rej, status, dt, rate = _advance(rho, t, t_stop, prob, work, parallel=parallel)
        steps += n
        assert status == S.REACHED and t == t_stop  # exact landing
        assert rho.min() >= 0.0
        assert 0.0 < dt and rate > 0.0
    assert steps > 50
    assert abs(_mass(rho, prob) - m0) <= 1e-13 * m0
    # the flow has moved mass (so the checks above were not vacuous)
    assert np.abs(rho - prob[0]).sum() > 0.1 * prob[0].sum()


@pytest.mark.parametrize("parallel", [False, True])
def test_rough_state_with_zeros_stays_nonnegative(parallel):
    rng = np.random.default_rng(4)
    prob = _random_problem(rng, (8, 9, 10), q=4)
    rho = prob[0].copy()
    work = S.make_work(*rho.shape, 4)
    m0 = _mass(rho, prob)
    t, steps, rej, status, _, _ = _advance(rho, 0.0, 0.05, prob, work, parallel=parallel)
    assert status == S.REACHED and t == 0.05 and steps > 20
    assert rho.min() >= 0.0 and abs(_mass(rho, prob) - m0) <= 1e-13 * m0
    assert np.mean(rho == 0.0) < np.mean(prob[0] == 0.0)  # mass flowed into the empty cells


def test_step_budget_and_nonfinite_statuses():
    prob = _smooth_problem()
    rho = prob[0].copy()
    work = S.make_work(*rho.shape, len(prob[7]))
    t, steps, _, status, _, _ = _advance(rho, 0.0, 10.0, prob, work, max_steps=3)
    assert status == S.MAX_STEPS and steps == 3 and 0.0 < t < 10.0
    for q in (len(prob[7]), 0):  # with and without features (NaN reaches φ only through M)
        p = (prob[0], prob[1], *prob[2:5], prob[5], prob[6][:q], prob[7][:q])
        bad = prob[0].copy()
        bad[4, 5, 6] = np.nan
        out = _advance(bad, 0.0, 1.0, p, S.make_work(*bad.shape, q))
        assert out[3] == S.NONFINITE and out[1] == 0 and out[0] == 0.0


def test_rejection_when_xi_jumps_and_dt_underflow():
    prob = _smooth_problem(q=3)
    rho = prob[0].copy()
    work = S.make_work(*rho.shape, 3)
    m0 = _mass(rho, prob)
    # with ξ ≡ 1 and cfl = 0.4 no step is rejected ...
    out = _advance(rho.copy(), 0.0, 0.07, prob, work)
    assert out[3] == S.REACHED and out[2] == 0
    # ... but when ξ jumps from 1 to 30 at t = 0.05, the steps across the jump violate the CFL
    # bound in a later stage and are retried with dt/2
    params = np.array([1.0, 0.05, 1.0, 30.0])
    t, steps, rej, status, _, _ = _advance(rho, 0.0, 0.07, prob, work, kind=PIECEWISE,
                                           params=params)
    assert status == S.REACHED and t == 0.07 and rej >= 3
    assert rho.min() >= 0.0 and abs(_mass(rho, prob) - m0) <= 1e-13 * m0
    # ξ = ∞ after t = 0.01: steps shrink towards the jump until dt underflows
    rho = prob[0].copy()
    params = np.array([1.0, 0.01, 1.0, np.inf])
    t, steps, rej, status, dt, _ = _advance(rho, 0.0, 1.0, prob, work, kind=PIECEWISE,
                                            params=params)
    assert status == S.DT_UNDERFLOW and 0.0099 < t < 0.01 and dt <= 1e-15
    assert np.all(np.isfinite(rho)) and rho.min() >= 0.0


def test_invalid_arguments_are_rejected():
    prob = _smooth_problem()
    rho = prob[0].copy()
    work = S.make_work(*rho.shape, len(prob[7]))
    with pytest.raises(ValueError, match="cfl"):
        _advance(rho, 0.0, 1.0, prob, work, cfl=0.6)
    with pytest.raises(ValueError, match="w1"):
        _advance(rho, 0.0, 1.0, prob, S.make_work(3, 4, 5, len(prob[7])))


# ---------------------------------------------------------------------------------------------
# energy
# ---------------------------------------------------------------------------------------------

def test_semi_discrete_energy_dissipation_and_euler_positivity():
    """R(ρ) = 2h³ Σ a_c φ0 ρ + Σ_q w_q M_q² has δR/δρ = 2h³Ψ, and Σ Ψ L(ρ) <= 0."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        rho, a_c, h_a, h_s, h_r, phi0, feats, w = prob = _random_problem(rng, (9, 11, 8), q=5)
        rate, out, phi, _, _ = _rhs(S.rhs3d, *prob)
        psi = a_c[:, None, None] * phi[None]
        h3 = h_a * h_s * h_r
        # R is quadratic: the central difference is its exact directional derivative
        eta, eps = rng.standard_normal(rho.shape), 1e-3
        dr = (S.risk3d(rho + eps * eta, *prob[1:]) - S.risk3d(rho - eps * eta, *prob[1:]))
        assert dr / (2 * eps) == pytest.approx(2 * h3 * np.sum(psi * eta), rel=1e-9, abs=1e-12)
        # dR/dt = 2h³ Σ Ψ L(ρ) = −(2h³/c) Σ_faces u F <= 0
        assert np.sum(psi * out) <= 1e-13 * np.sum(np.abs(psi * out))
        # forward Euler at the CFL limit dt λ = 1/2 keeps ρ >= 0
        assert (rho + (0.5 / rate) * out).min() >= -1e-15 * rho.max()


def test_risk_does_not_increase_along_a_run():
    prob = _smooth_problem()
    rho = prob[0].copy()
    work = S.make_work(*rho.shape, len(prob[7]))
    risks, t = [S.risk3d(rho, *prob[1:])], 0.0
    for _ in range(100):
        t, *_ = _advance(rho, t, 10.0, prob, work, max_steps=1, cfl=0.5)
        risks.append(S.risk3d(rho, *prob[1:]))
    d = np.diff(risks)
    assert d.max() <= 1e-13 * np.max(np.abs(risks))
    assert risks[-1] < risks[0] - 0.5  # a real descent, not a stalled run


# ---------------------------------------------------------------------------------------------
# accuracy: exact affine transport (Q = 0, φ0 linear)
# ---------------------------------------------------------------------------------------------

_GL_X = np.array([-np.sqrt(0.6), 0.0, np.sqrt(0.6)])
_GL_W = np.array([5.0, 8.0, 5.0]) / 18.0


def _gaussian_cell_averages(lo, hi, n, m, cov):
    """Cell averages of N(m, cov) by the 3-point Gauss–Legendre rule per axis (error O(h⁶))."""
    pts = []
    for d in range(3):
        c, h = cell_centres(lo[d], hi[d], n[d])
        pts.append((c[:, None] + 0.5 * h * _GL_X[None, :]).ravel())
    x = np.stack(np.meshgrid(*pts, indexing="ij"), axis=-1) - m
    quad = np.einsum("...a,ab,...b->...", x, np.linalg.inv(cov), x)
    f = np.exp(-0.5 * quad) / np.sqrt((2 * np.pi) ** 3 * np.linalg.det(cov))
    f = f.reshape(n[0], 3, n[1], 3, n[2], 3)
    return np.einsum("iajbkc,a,b,c->ijk", f, _GL_W, _GL_W, _GL_W)


def _affine_flow(b, xi, t):
    """(E, d) of the exact flow map z ↦ E z + d for φ0 = b0 + b_s s + b_r r, Q = 0."""
    gen = np.zeros((4, 4))
    gen[:3, :3] = -2 * xi * np.array([[0.0, b[1], b[2]], [b[1], 0.0, 0.0], [b[2], 0.0, 0.0]])
    gen[0, 3] = -2 * xi * b[0]
    x = expm(t * gen)
    return x[:3, :3], x[:3, 3]


def _linear_problem(lo, hi, n, b):
    (a_c, h_a), (s_c, h_s), (r_c, h_r) = (cell_centres(lo[d], hi[d], n[d]) for d in range(3))
    phi0 = b[0] + b[1] * s_c[:, None] + b[2] * r_c[None, :]
    return a_c, s_c, r_c, (None, a_c, h_a, h_s, h_r, phi0, np.zeros((0, n[1] * n[2])),
                           np.zeros(0))


def test_second_order_in_l1_against_the_exact_solution():
    lo, hi = (-1.5, -2.2, -1.8), (2.5, 2.0, 2.0)
    b, xi, t_end = (0.3, 0.6, -0.4), 1.0, 0.25
    m0, cov0 = np.array([0.5, 0.1, -0.1]), np.diag([0.35, 0.35, 0.35]) ** 2
    E, d = _affine_flow(b, xi, t_end)
    errors = []
    for n in (32, 64):
        shape = (n, n, n)
        *_, prob = _linear_problem(lo, hi, shape, b)
        rho = _gaussian_cell_averages(lo, hi, shape, m0, cov0)
        out = _advance(rho, 0.0, t_end, prob, S.make_work(*shape, 0), parallel=True,
                       params=np.array([xi]))
        assert out[3] == S.REACHED
        exact = _gaussian_cell_averages(lo, hi, shape, E @ m0 + d, E @ cov0 @ E.T)
        errors.append(np.abs(rho - exact).sum() * prob[2] * prob[3] * prob[4])
    order = np.log2(errors[0] / errors[1])
    assert order >= 1.8, (errors, order)  # observed 1.93 (1.81 from 16 to 32)


@pytest.mark.parametrize("n", [16, 32])
def test_concentrated_blob_moves_with_the_velocity(n):
    """A blob one a-cell thick at a = 1, a few cells wide in s and r: its mean follows
    dm/dt = −2ξ(∂_aΨ, ∂_sΨ, ∂_rΨ)(m) = B m + e to O(h) (the one-cell profile in a is
    reconstructed to first order only)."""
    b, xi, t_end = (0.4, 0.5, -0.3), 0.8, 0.5
    lo, hi = (-0.5 * 2.0 / n, -1.0, -0.8), (2.0 - 0.5 * 2.0 / n, 1.0, 0.8)  # a_c[n/2] = 1
    a_c, s_c, r_c, prob = _linear_problem(lo, hi, (n, n, n), b)
    h = np.array(prob[2:5])
    i0 = n // 2
    assert abs(a_c[i0] - 1.0) < 1e-14
    rho = np.zeros((n, n, n))
    rho[i0] = np.outer(np.exp(-0.5 * ((s_c - 0.05) / h[1]) ** 2),
                       np.exp(-0.5 * ((r_c - 0.1) / h[2]) ** 2))
    rho /= rho.sum() * np.prod(h)

    def mean(x):
        return np.prod(h) * np.array([np.einsum("ijk,i->", x, a_c), np.einsum("ijk,j->", x, s_c),
                                      np.einsum("ijk,k->", x, r_c)])

    m0 = mean(rho)
    out = _advance(rho, 0.0, t_end, prob, S.make_work(n, n, n, 0), params=np.array([xi]))
    assert out[3] == S.REACHED
    E, d = _affine_flow(b, xi, t_end)
    exact = E @ m0 + d
    moved = np.abs(exact - m0)
    assert np.all(moved > h)  # the displacement is resolved
    assert np.all(np.abs(mean(rho) - exact) <= 0.5 * h), (mean(rho) - exact) / h  # ≈ 0.2 h in a
